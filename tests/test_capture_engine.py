"""The capture engine on real llama-cpp-python with tiny GGUF models of several architectures.

Checks, each against something independent: the layer map against the names llama.cpp
gave, statistics against numpy on the same tensor, attention rows against the
probabilities themselves, logits against the sampled tokens and llama.cpp's own logits
buffer, generated text against plain llama-cpp-python.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np
import pytest

from spectra_vis import Capture, Llama, TensorCollector, capture, create_callback, load_capture
from spectra_vis.store.capture_file import validate
from spectra_vis.testing.tiny_gguf import SUPPORTED_ARCHS
from tests.conftest import patched_llama
from tests.test_stats import reference_stats

PROMPT = "What is the capital of France?"
CORE_ARCHS = ["llama", "qwen2", "phi3", "gemma3"]
SPECIAL = {-1, 998, 999}


class KeepingCollector(TensorCollector):
    """Keeps a copy of every tensor read (the public ``on_tensor`` hook), for independent recomputation."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.kept: dict[tuple[int, int], np.ndarray] = {}
        super().__init__(*args, on_tensor=self._keep, **kwargs)

    def _keep(self, info: Any, arr: np.ndarray, step: Any) -> None:
        self.kept[(step.index, info.id)] = arr.copy()


def run(path: Path, collector: TensorCollector, prompt: str = PROMPT, max_tokens: int = 5) -> tuple[Any, Any]:
    model = Llama(
        model_path=str(path), n_ctx=128, n_threads=2, seed=0, cb_eval=create_callback(collector), verbose=False
    )
    collector.start_trial(prompt)
    response = model(prompt, max_tokens=max_tokens, temperature=0.0)
    return model, collector.end_trial(response)


@pytest.mark.parametrize("arch", CORE_ARCHS + [a for a in SUPPORTED_ARCHS if a not in CORE_ARCHS])
def test_layer_map_per_architecture(arch: str, tiny_model, tmp_path: Path) -> None:
    out = tmp_path / f"{arch}.json"
    cap = capture(tiny_model(arch), [PROMPT], preset="full", max_tokens=3, out=out, n_ctx=128)
    n_layer = cap.model["n_layer"]
    assert n_layer >= 2 and cap.model["architecture"] == arch
    layers = {t["layer"] for t in cap.tensors}
    assert layers == set(range(n_layer)) | SPECIAL, f"{arch}: layers {sorted(layers)}"
    for t in cap.tensors:
        m = re.match(r"^(.+?)(?:-|_l)(\d+)(?: \(.*)?$", t["name"])
        if m:  # a name that carries its layer must be in that layer
            assert t["layer"] == int(m.group(2)), t
    types_by_layer = {L: {t["type"] for t in cap.tensors if t["layer"] == L} for L in range(n_layer)}
    for L, types in types_by_layer.items():
        assert {"l_out", "attn_out", "ffn_out", "kq_soft_max"} <= types, f"{arch} layer {L}: {sorted(types)}"
    assert any(t["type"] == "result_output" and t["layer"] == 999 for t in cap.tensors)
    assert any(t["layer"] == 998 and t["type"] in ("result_norm", "norm") for t in cap.tensors)
    assert load_capture(out).summary()["unique_tensors"] == len(cap.tensors)


def test_statistics_equal_numpy_on_the_same_tensor(tiny_llama: Path) -> None:
    collector = KeepingCollector(preset="full")
    _, trial = run(tiny_llama, collector)
    assert collector.kept, "nothing was read"
    checked_rows = 0
    for step in trial.steps:
        for tid, stats in step.stats.items():
            x = collector.kept[(step.index, tid)]
            np.testing.assert_allclose(stats, reference_stats(x), rtol=2e-4, atol=1e-5)
            if tid in step.rows:
                rows = step.rows[tid]
                assert len(rows) == step.n_tokens
                axis = x.ndim - 2 if collector.tensors[tid].type in ("kq", "kqv") else 0
                per_token = np.moveaxis(x, axis, 0).reshape(step.n_tokens, -1)
                for t in range(step.n_tokens):
                    np.testing.assert_allclose(rows[t], reference_stats(per_token[t]), rtol=2e-4, atol=1e-5)
                checked_rows += 1
    assert checked_rows > 0


def test_logits_match_llama_cpp_buffer_and_sampled_tokens(tiny_llama: Path) -> None:
    collector = TensorCollector(preset="standard")
    model, trial = run(tiny_llama, collector, max_tokens=6)
    assert len(trial.sampled) == 6
    for i, step in enumerate(trial.steps):
        assert step.logits is not None
        assert step.logits["ids"][0] == trial.sampled[i], f"step {i}"
    # llama.cpp's own logits buffer after the last decode: the same values we read from the graph.
    n_vocab = model.n_vocab()
    own = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(model._ctx.ctx, -1), shape=(n_vocab,))
    last = trial.steps[-1]
    out_id = next(t.id for t in collector.tensors if t.type == "result_output")
    np.testing.assert_allclose(last.stats[out_id], reference_stats(own), rtol=2e-4, atol=1e-5)
    assert int(np.argmax(own)) == last.logits["ids"][0]


def test_attention_rows_sum_to_one_and_never_look_ahead(tiny_llama: Path) -> None:
    collector = TensorCollector(preset="standard", full_attention=True, top_k=4)
    _, trial = run(tiny_llama, collector)
    n_layer = collector.model_card.n_layer
    for step in trial.steps:
        assert len(step.attention) == n_layer
        for att in step.attention.values():
            full = np.asarray(att["full"])  # (head, token, n_kv)
            assert att["n_kv"] == step.pos + step.n_tokens
            np.testing.assert_allclose(full.sum(-1), 1.0, atol=1e-4)
            for h in range(full.shape[0]):
                for r in range(step.n_tokens):
                    pos = att["pos"][h][r]
                    assert max(pos) <= step.pos + r, "attended a future position"
                    assert list(att["p"][h][r]) == sorted(att["p"][h][r], reverse=True)
                    row = full[h, r].astype(np.float64)
                    ent = -(row[row > 0] * np.log(row[row > 0])).sum()
                    assert abs(float(att["entropy"][h][r]) - ent) < 1e-3


def test_observe_reads_no_data_but_counts_everything(tiny_llama: Path) -> None:
    collector = TensorCollector(preset="observe")
    _, trial = run(tiny_llama, collector, max_tokens=3)
    assert len(trial.tensor_counts) == len(collector.tensors) > 20
    assert all(not t.captured for t in collector.tensors)
    assert all(not s.stats and not s.rows and not s.attention and s.logits is None for s in trial.steps)
    assert len(trial.steps) == 3 and trial.steps[0].phase == "prefill"
    assert all(s.phase == "decode" and s.n_tokens == 1 for s in trial.steps[1:])


def test_trials_sharing_a_prefix_both_capture_their_full_prefill(tiny_llama: Path, tmp_path: Path) -> None:
    prompts = ["The capital of France is", "The capital of France is not"]
    cap = capture(tiny_llama, prompts, max_tokens=2, out=tmp_path / "c.json", n_ctx=128)
    model = llama_cpp.Llama(model_path=str(tiny_llama), n_ctx=128, verbose=False, vocab_only=True)
    for trial, prompt in zip(cap.trials, prompts, strict=False):
        prefill = trial["steps"][0]
        expected = model.tokenize(prompt.encode())
        assert prefill["phase"] == "prefill" and prefill["pos"] == 0
        assert prefill["token_ids"] == expected
        assert trial["tokens"]["n_prompt"] == len(expected)


def test_capture_does_not_change_what_the_model_generates(tiny_model) -> None:
    path = tiny_model("gemma3")
    plain = llama_cpp.Llama(model_path=str(path), n_ctx=128, n_threads=2, seed=0, verbose=False)
    expected = plain(PROMPT, max_tokens=8, temperature=0.0)["choices"][0]["text"]
    del plain
    for preset in ("observe", "standard", "full"):
        cap = capture(path, [PROMPT], preset=preset, max_tokens=8, n_ctx=128, n_threads=2)
        assert cap.trials[0]["response"] == expected, preset


def test_error_inside_the_callback_is_recorded_and_inference_goes_on(tiny_llama: Path) -> None:
    def boom(info: Any, arr: np.ndarray, step: Any) -> None:
        if info.type == "kq_soft_max":
            raise RuntimeError("boom")

    reference = TensorCollector(preset="observe")
    _, ok = run(tiny_llama, reference)
    broken = TensorCollector(preset="standard", on_tensor=boom)
    _, trial = run(tiny_llama, broken)
    assert trial.response == ok.response
    assert trial.errors and "boom" in trial.errors[0]


def test_forced_family_that_contradicts_the_file_warns(tiny_llama: Path, tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="forced"):
        cap = capture(tiny_llama, [PROMPT], model_family="gemma", max_tokens=2, out=tmp_path / "f.json")
    assert cap.model["family"] == "gemma" and cap.model["family_warning"]
    assert {t["layer"] for t in cap.tensors} >= {0, 1, -1, 998, 999}


def test_ctrl_c_keeps_the_steps_captured_so_far(tiny_llama: Path, tmp_path: Path) -> None:
    """SIGINT arrives while llama.cpp is decoding (as a real Ctrl-C would), after 4 steps."""
    out = tmp_path / "interrupted.json"
    collectors: list[TensorCollector] = []
    done = threading.Event()

    def on_event(kind: str, payload: Any) -> None:
        if kind == "collector":
            collectors.append(payload)

    def press_ctrl_c() -> None:
        while not done.is_set():
            trial = collectors[0].current_trial if collectors else None
            if trial is not None and len(trial.steps) >= 4:
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.0005)

    watcher = threading.Thread(target=press_ctrl_c, daemon=True)
    watcher.start()
    try:
        with pytest.raises(KeyboardInterrupt) as info:
            capture(tiny_llama, [PROMPT, "second"], max_tokens=400, out=out, on_event=on_event, n_ctx=512)
    finally:
        done.set()
        watcher.join()
    saved = load_capture(out)
    assert info.value.capture.summary() == saved.summary()  # type: ignore[attr-defined]
    trial = saved.trials[-1]
    assert trial["interrupted"] and len(saved.trials) == 1
    assert 4 <= len(trial["steps"]) < 400
    assert [s["index"] for s in trial["steps"]] == list(range(len(trial["steps"])))


def test_saved_capture_is_schema_valid_and_round_trips(tiny_capture_path: Path) -> None:
    cap = load_capture(tiny_capture_path)
    validate(cap.data)
    again = Capture.from_bytes(tiny_capture_path.read_bytes())
    assert again.data == cap.data
    assert cap.summary()["trials"] == 2 and cap.data["preset"]["name"] == "standard"
    table = cap.layer_table(0, "l_out", "l2")
    assert set(table) == {0, 1} and all(v > 0 for v in table.values())


def test_original_v1_patched_llama_path_still_works(tiny_llama: Path, tmp_path: Path) -> None:
    """A collector used with a plain llama_cpp.Llama given cb_eval through its params (as a patched
    llama-cpp-python does): steps are found from the graph alone."""
    collector = TensorCollector(preset="standard")
    cb = create_callback(collector)
    model = patched_llama(tiny_llama, cb)
    collector.start_trial(PROMPT)
    model.reset()
    response = model(PROMPT, max_tokens=3, temperature=0.0)
    trial = collector.end_trial(response)
    assert len(trial.steps) == 3 and trial.steps[0].n_tokens > 1
    assert all(s.stats for s in trial.steps)
    path = collector.save_to_json(str(tmp_path / "patched.json"))
    assert load_capture(path).summary()["steps"] == 3


def test_a_model_llama_cpp_refuses_gets_its_reason(tiny_llama: Path, tmp_path: Path) -> None:
    """An unsupported architecture and a truncated file: llama.cpp's own reason, in one line."""
    import gguf

    from spectra_vis.record.profiles import ModelFileError

    unknown = tmp_path / "foo.gguf"
    w = gguf.GGUFWriter(str(unknown), "foo")
    w.add_block_count(2)
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(ModelFileError) as info:
        capture(unknown, PROMPT, max_tokens=2)
    message = str(info.value)
    assert "unknown model architecture: 'foo'" in message and "\n" not in message
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_llama.read_bytes()[: tiny_llama.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="corrupted or incomplete"):
        capture(cut, PROMPT, max_tokens=2)
    # llama-cpp-python's own logger is back: a good model still loads and captures
    assert capture(tiny_llama, PROMPT, max_tokens=2, n_ctx=64).summary()["steps"] >= 2


def test_session_owns_model_and_callback(tiny_llama: Path, tmp_path: Path) -> None:
    """The context manager: trials one by one, a capture at any point, the model freed on exit."""
    from spectra_vis import Session

    with Session(tiny_llama, preset="standard", n_ctx=128) as s:
        first = s.run(PROMPT, max_tokens=3)
        assert first.steps[0].phase == "prefill" and len(first.steps) >= 2
        s.run("Second prompt", max_tokens=2)
        cap = s.capture(out=tmp_path / "session.json")
    assert s.model is None
    with pytest.raises(RuntimeError, match="closed"):
        s.run(PROMPT)
    saved = load_capture(tmp_path / "session.json")
    assert saved.summary() == cap.summary() and saved.summary()["trials"] == 2
    assert [t["prompt"] for t in saved.trials] == [PROMPT, "Second prompt"]
