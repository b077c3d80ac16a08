"""The logit lens against its own oracle: at the last layer it must give the logits llama.cpp
computed (real llama-cpp-python, tiny GGUF models of every profiled architecture), and its
final norm must equal the graph's own final-norm node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from spectra_vis import Llama, TensorCollector, create_callback
from spectra_vis.capturing.lens import VOCAB_BLOCK, LogitLens
from spectra_vis.errors import ModelFileError, NotFound, Unsupported
from spectra_vis.testing.tiny_gguf import SUPPORTED_ARCHS, write_tiny_model

PROMPT = "The capital of France is"


def headless_gguf(out: Path, arch: str) -> Path:
    """A GGUF of ``arch`` holding only a final norm: enough for the lens to refuse it."""
    from gguf import GGUFWriter

    w = GGUFWriter(str(out), arch)
    w.add_tensor("output_norm.weight", np.ones(8, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


def run_keeping(path: Path, types: set[str], max_tokens: int = 4) -> tuple[Any, dict[tuple[int, str, int], np.ndarray]]:
    """A greedy trial; every array of the given types, by (step, type, layer)."""
    kept: dict[tuple[int, str, int], np.ndarray] = {}

    def keep(info: Any, arr: np.ndarray, step: Any) -> None:
        if info.type in types:
            kept[(step.index, info.type, info.layer)] = np.array(arr, dtype=np.float32)

    collector = TensorCollector(preset="full", on_tensor=keep)
    model = Llama(
        model_path=str(path), n_ctx=128, n_threads=2, seed=0, cb_eval=create_callback(collector), verbose=False
    )
    collector.start_trial(PROMPT)
    trial = collector.end_trial(model(PROMPT, max_tokens=max_tokens, temperature=0.0))
    return trial, kept


@pytest.mark.parametrize("arch", SUPPORTED_ARCHS)
def test_last_layer_lens_is_llama_cpps_logits(tiny_model, arch: str) -> None:
    path = tiny_model(arch)
    lens = LogitLens.from_gguf(path)
    trial, kept = run_keeping(path, {"l_out", "result_norm", "norm"})
    last = max(L for (_, t, L) in kept if t == "l_out" and L < 998)
    assert len(trial.steps) == len(trial.sampled) >= 3
    for step in trial.steps:
        row = kept[(step.index, "l_out", last)].reshape(-1, lens.n_embd)[-1:]
        # the final norm: the graph's own node of it
        final = next(v for (s, t, L), v in kept.items() if s == step.index and L == 998)
        np.testing.assert_allclose(lens.normed(row)[0], final.reshape(-1, lens.n_embd)[-1], rtol=1e-4, atol=1e-5)
        got = lens.read(row, k=10, next_ids=[trial.sampled[step.index]])
        stored = step.logits
        assert stored is not None
        assert got.top_ids[0, 0] == stored["ids"][0] == trial.sampled[step.index], f"step {step.index}"
        assert got.next_rank[0] == 0
        full = lens.logits(row)[0]
        np.testing.assert_allclose(full[np.asarray(stored["ids"])], stored["logits"], rtol=2e-2, atol=1e-4)
        # probabilities and entropy against a direct numpy softmax of the same logits
        p = np.exp(full - full.max())
        p /= p.sum()
        np.testing.assert_allclose(got.top_p[0], p[got.top_ids[0]], rtol=1e-4)
        assert got.entropy[0] == pytest.approx(float(-(p * np.log(p)).sum()), rel=1e-4)
        assert got.next_p[0] == pytest.approx(float(p[trial.sampled[step.index]]), rel=1e-4)


def test_one_pass_over_blocks_equals_all_logits_at_once(tiny_llama: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Streaming top-k, log-sum-exp and ranks across vocabulary blocks equal the whole-vocabulary answer."""
    lens = LogitLens.from_gguf(tiny_llama)
    rows = np.random.default_rng(0).normal(size=(7, lens.n_embd)).astype(np.float32)
    want = lens.read(rows, k=5, next_ids=[3, None, 10, 0, 50, 7, 99])
    monkeypatch.setattr("spectra_vis.capturing.lens.VOCAB_BLOCK", 7)  # many small blocks
    got = lens.read(rows, k=5, next_ids=[3, None, 10, 0, 50, 7, 99])
    assert VOCAB_BLOCK > lens.n_vocab > 7 * 5
    np.testing.assert_array_equal(got.top_ids, want.top_ids)
    np.testing.assert_allclose(got.top_p, want.top_p, rtol=1e-5)
    np.testing.assert_allclose(got.entropy, want.entropy, rtol=1e-5)
    np.testing.assert_array_equal(got.next_rank, want.next_rank)
    full = lens.logits(rows)
    ranks = [(full[i] > full[i, t]).sum() if t is not None else -1 for i, t in enumerate([3, None, 10, 0, 50, 7, 99])]
    np.testing.assert_array_equal(got.next_rank, ranks)
    assert np.isnan(got.next_p[1]) and got.next_rank[1] == -1


def test_an_architecture_the_lens_cannot_mirror_is_refused(tmp_path: Path) -> None:
    out = headless_gguf(tmp_path / "cohere.gguf", "command-r")
    with pytest.raises(Unsupported, match="logit lens not supported for command-r"):
        LogitLens.from_gguf(out)


def test_a_model_without_an_output_head_is_a_one_line_error(tmp_path: Path) -> None:
    out = headless_gguf(tmp_path / "headless.gguf", "llama")
    with pytest.raises(ModelFileError, match="has no output.weight or token_embd.weight") as info:
        LogitLens.from_gguf(out)
    assert "\n" not in str(info.value)


def test_quantized_head_is_dequantized(tmp_path: Path) -> None:
    """A Q8_0 model made with llama.cpp's own quantizer: the lens still reproduces its top-1."""
    import llama_cpp

    src = write_tiny_model(tmp_path / "f32.gguf", arch="llama", seed=1)
    dst = tmp_path / "q8.gguf"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0
    assert llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), params) == 0
    lens = LogitLens.from_gguf(dst)
    assert lens._head_type.name not in ("F32", "F16")
    trial, kept = run_keeping(dst, {"l_out"}, max_tokens=3)
    last = max(L for (_, t, L) in kept if t == "l_out" and L < 998)
    rows = np.concatenate([kept[(step.index, "l_out", last)].reshape(-1, lens.n_embd)[-1:] for step in trial.steps])
    assert lens.use_ggml  # ggml's own row converter dequantizes the head
    got = lens.read(rows, k=3)
    assert got.top_ids[:, 0].tolist() == [trial.sampled[step.index] for step in trial.steps]
    # ggml's converter and the gguf package's dequantization (the fallback) give the same values
    via_ggml = lens._weights(lens._head[:])
    lens.use_ggml = False
    via_gguf = lens._weights(lens._head[:])
    np.testing.assert_array_equal(via_ggml, via_gguf)
    assert np.unique(via_gguf[0]).size > 8  # real values, not a constant
    # the rows go through the head's dot type as ggml's CPU product sends them: Q8_0, 8 bits per
    # value with a float16 scale per block of 32, here against a numpy quantizer
    lens.use_ggml = True
    h = lens.normed(rows)
    hd = lens._as_dot(h)
    blocks = h.reshape(len(h), -1, 32).astype(np.float32)
    d = np.abs(blocks).max(axis=2, keepdims=True) / 127
    q = np.round(blocks / np.where(d == 0, 1, d))
    ref = (q * d.astype(np.float16).astype(np.float32)).reshape(h.shape)
    step = d.astype(np.float16).astype(np.float32).repeat(32, axis=2).reshape(h.shape)
    assert (np.abs(hd - ref) <= step * 1.001).all() and (hd == ref).mean() > 0.99  # rounding ties aside
    assert not np.array_equal(hd, h)
    # the logits are those rows times the dequantized head (float32 rounding), against float64
    exact = hd.astype(np.float64) @ via_gguf.astype(np.float64).T
    np.testing.assert_allclose(lens.logits(rows), exact, rtol=1e-4, atol=1e-5 * np.abs(exact).max())
    np.testing.assert_array_equal(lens.read(rows, k=3).top_ids[:, 0], exact.argmax(axis=1))
    # without ggml (the gguf package's values, rows left float32): within the 8-bit rounding
    lens.use_ggml = False
    plain = lens.logits(rows)
    assert np.abs(plain - exact).max() < 2e-2 * np.abs(exact).max()


def test_native_reduction_equals_numpys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The C reduction of a pass over the head (top-k, log-sum-exp, entropy sums, ranks) against the
    numpy one, block by block, with next tokens in several blocks, absent (-1), and NaN logits."""
    from spectra_vis.capturing._native import LensReduction
    from spectra_vis.capturing.lens import NumpyReduction

    rng = np.random.default_rng(3)
    n, m, blocks = 37, 1003, 4  # a width that is not a multiple of 8: the scalar tails run too
    logits = [(rng.standard_normal((n, m)) * 4).astype(np.float32) for _ in range(blocks)]
    want = rng.integers(0, m * blocks, n)
    want[::5] = -1
    full = np.concatenate(logits, axis=1)
    next_logit = np.where(want >= 0, full[np.arange(n), np.maximum(want, 0)], np.nan).astype(np.float32)
    c, ref = LensReduction(n, 6, want, next_logit), NumpyReduction(n, 6, want, next_logit)
    for i, lg in enumerate(logits):
        c.update(lg, i * m)
        ref.update(lg, i * m)
    for a, b in zip(c.top(), ref.top(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(c.mx, ref.mx)
    np.testing.assert_allclose(c.s, ref.s, rtol=1e-5)
    np.testing.assert_allclose(c.t, ref.t, rtol=1e-5)
    np.testing.assert_array_equal(c.above[want >= 0], ref.above[want >= 0])
    direct = (full > next_logit[:, None]).sum(axis=1)  # and against a direct count
    np.testing.assert_array_equal(c.above[want >= 0], direct[want >= 0])
    assert c.above[want >= 0].max() > 0


def test_numpy_fallback_lens_equals_the_native_one(tiny_llama: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ggml or the native library (a machine without a C compiler), the same lens."""
    from spectra_vis.capturing import lens as lens_mod

    lens = LogitLens.from_gguf(tiny_llama)
    rows = np.random.default_rng(1).normal(size=(9, lens.n_embd)).astype(np.float32)
    nexts = [1, 2, None, 40, 5, 6, 7, 8, 0]
    fast = lens.read(rows, k=4, next_ids=nexts)
    lens.use_ggml = False
    monkeypatch.setattr(lens_mod, "_reduction", lens_mod.NumpyReduction)
    slow = lens.read(rows, k=4, next_ids=nexts)
    np.testing.assert_array_equal(fast.top_ids, slow.top_ids)
    np.testing.assert_array_equal(fast.next_rank, slow.next_rank)
    np.testing.assert_allclose(fast.top_p, slow.top_p, rtol=1e-4)
    np.testing.assert_allclose(fast.entropy, slow.entropy, rtol=1e-4)


def test_a_standard_capture_carries_its_lens_and_the_last_layer_predicts_the_next_token(tiny_llama: Path) -> None:
    from spectra_vis import capture

    cap = capture(tiny_llama, [PROMPT], preset="standard", max_tokens=4, n_ctx=128)
    trial = cap.trials[0]
    grid = cap.logit_lens(0)
    n_layer = cap.model["n_layer"]
    assert grid["layers"] == list(range(n_layer)) and grid["k"] == 5
    ids, n_prompt = trial["tokens"]["ids"], trial["tokens"]["n_prompt"]
    last = grid["layers"].index(n_layer - 1)
    for pos in range(n_prompt - 1, len(ids) - 1):  # greedy: the last layer's top-1 is the next token
        assert grid["ids"][last][pos][0] == ids[pos + 1] and grid["next_rank"][last][pos] == 0
        assert grid["next_p"][last][pos] == pytest.approx(grid["p"][last][pos][0], rel=1e-4)
    for L in range(len(grid["layers"])):
        for cell in grid["p"][L]:
            if cell is not None:
                assert all(a >= b for a, b in zip(cell, cell[1:], strict=False)) and 0 < sum(cell) <= 1 + 1e-5
    assert grid["ids"][last][0] is None and grid["ids"][0][0] is not None  # the last layer's prompt rows
    top2 = cap.logit_lens(0, layers=[0], k=2)
    assert top2["layers"] == [0] and all(c is None or len(c) == 2 for c in top2["ids"][0])
    with pytest.raises(NotFound, match="no lens for layer"):
        cap.logit_lens(0, layers=[99])


def test_a_capture_whose_architecture_the_lens_cannot_mirror_says_so(tiny_llama: Path, tmp_path: Path) -> None:
    from spectra_vis import capture
    from spectra_vis.capturing.lens import add_lens

    cap = capture(tiny_llama, [PROMPT], preset="standard", max_tokens=2, n_ctx=128, lens=False)
    assert "lens" not in cap.trials[0]
    other = headless_gguf(tmp_path / "cohere.gguf", "command-r")
    add_lens(cap, other)
    with pytest.raises(NotFound, match="no logit lens for trial 0: logit lens not supported for command-r"):
        cap.logit_lens(0)
    observe = capture(tiny_llama, [PROMPT], preset="observe", max_tokens=2, n_ctx=128)
    with pytest.raises(NotFound, match="kept no residual-stream vectors"):
        observe.logit_lens(0)


def test_the_lens_reports_its_progress_block_by_block(tiny_llama: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A long trial's lens takes a while: capture's on_event follows it, trial by trial, and the
    wizard's live display shows it."""
    from rich.console import Console

    from spectra_vis import capture
    from spectra_vis.wizard.run import Progress

    monkeypatch.setattr("spectra_vis.capturing.lens.VOCAB_BLOCK", 64)  # several blocks of the tiny vocabulary
    events: list[tuple[str, Any]] = []
    cap = capture(tiny_llama, [PROMPT, "Once upon a time"], max_tokens=3, n_ctx=128,
                  on_event=lambda kind, payload: events.append((kind, payload)))  # fmt: skip
    lens = [p for k, p in events if k == "lens"]
    total = -(-int(cap.model["n_vocab"]) // 64)
    assert [p for p in lens if p[0] == 0] == [(0, i, total) for i in range(1, total + 1)]
    assert lens[-1] == (1, total, total) and total > 1
    view = Progress.__new__(Progress)
    view.rows, view.current, view.lens, view.collector = [], -1, lens[3], None
    view.out = Path("capture.json")
    console = Console(width=120, record=True)
    console.print(view)
    text = console.export_text()
    assert "logit lens of trial 0" in text and f"4/{total} blocks of the vocabulary" in text


def test_reduction_in_row_parts_on_threads_equals_one_pass() -> None:
    """The C reduction folded in row parts on several threads at once (as the lens does on a large
    block) leaves exactly the state of one whole-block fold."""
    from concurrent.futures import ThreadPoolExecutor

    from spectra_vis.capturing import lens as lens_mod
    from spectra_vis.capturing._native import LensReduction

    rng = np.random.default_rng(5)
    n, m = 150, 517
    logits = [(rng.standard_normal((n, m)) * 3).astype(np.float32) for _ in range(3)]
    want = rng.integers(-1, 3 * m, n)
    full = np.concatenate(logits, axis=1)
    next_logit = np.where(want >= 0, full[np.arange(n), np.maximum(want, 0)], np.nan).astype(np.float32)
    whole, split = LensReduction(n, 4, want, next_logit), LensReduction(n, 4, want, next_logit)
    parts = [(0, 37), (37, 100), (100, 150)]
    with ThreadPoolExecutor(2) as pool:
        for i, lg in enumerate(logits):
            whole.update(lg, i * m)
            lens_mod._fold(split, lg, i * m, parts, pool)
    for name in ("idx", "val", "n_top", "mx", "s", "t", "above"):
        np.testing.assert_array_equal(getattr(split, name), getattr(whole, name), err_msg=name)
    np.testing.assert_array_equal(whole.top()[0][:, 0], full.argmax(axis=1))
    with pytest.raises(ValueError, match="outside"):
        whole.update(logits[0], 0, (100, 151))


@pytest.mark.parametrize("ftype", ["MOSTLY_Q4_K_M", "MOSTLY_F16"])
def test_k_quant_and_f16_heads_give_llama_cpps_logits_to_float_rounding(tmp_path: Path, ftype: str) -> None:
    """Heads whose product rounds the rows to another dot type (Q6_K: Q8_K blocks of 256; F16:
    float16) through llama.cpp's own quantizer: the last layer's lens is the step's stored logits to
    float32 rounding, not only within the 8-bit rounding's 2e-2."""
    import llama_cpp

    src = write_tiny_model(tmp_path / "f32.gguf", arch="llama", seed=1, n_embd=256, n_ff=512)
    dst = tmp_path / "quantized.gguf"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_{ftype}")
    assert llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), params) == 0
    lens = LogitLens.from_gguf(dst)
    assert lens._head_type.name == ("Q6_K" if "K_M" in ftype else "F16") and lens.use_ggml
    trial, kept = run_keeping(dst, {"l_out"}, max_tokens=3)
    last = max(L for (_, t, L) in kept if t == "l_out" and L < 998)
    for step in trial.steps:
        row = kept[(step.index, "l_out", last)].reshape(-1, lens.n_embd)[-1:]
        full = lens.logits(row)[0]
        np.testing.assert_allclose(full[np.asarray(step.logits["ids"])], step.logits["logits"], rtol=1e-5, atol=1e-5)
        assert lens.read(row, k=1).top_ids[0, 0] == trial.sampled[step.index]
