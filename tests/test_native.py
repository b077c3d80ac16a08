"""The native (C) capture callback against the Python one and against numpy.

- its statistics and top-k kernels on hand-built ggml tensors (strides, F16, NaN/Inf,
  token rows) against numpy recomputation;
- its per-layout decision cache on synthetic graphs built to break it: pointers reused
  for other nodes, layouts that alternate, grow, shrink and diverge mid-graph, token
  counts that change; the catalogue, counts and statistics must equal the Python path's;
- both paths on real tiny models: the same capture;
- the fallback: no compiler, SPECTRA_VIS_NATIVE=0, a collector with its own Python hooks.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from spectra_vis import Llama, TensorCollector, create_callback
from spectra_vis.capturing import _ggml, _native
from spectra_vis.capturing import native_engine as native_capture
from spectra_vis.capturing.engines import PythonEngine
from spectra_vis.record.stats import top_k_desc
from tests.conftest import patched_llama
from tests.test_stats import reference_stats

PROMPT = "What is the capital of France?"

needs_native = pytest.mark.skipif(_native.available() is not None, reason=f"native: {_native.available()}")


# ----- hand-built ggml tensors over numpy arrays --------------------------------------------
def ggml_view(arr: np.ndarray, name: bytes = b"x", t: Any = None) -> Any:
    """A ggml_tensor struct describing ``arr`` (any strides; float32 or float16), no buffer (host)."""
    t = t if t is not None else _ggml.GgmlTensor()
    t.type = _ggml.GGML_TYPE_F32 if arr.dtype == np.float32 else _ggml.GGML_TYPE_F16
    ne = list(reversed(arr.shape)) + [1] * (4 - arr.ndim)
    nb = list(reversed(arr.strides))
    while len(nb) < 4:
        nb.append(nb[-1] * ne[len(nb) - 1])
    t.ne[:], t.nb[:] = ne, nb
    t.data = arr.ctypes.data
    t.buffer = None
    t.name = name
    t.src[:] = [None] * _ggml.GGML_MAX_SRC
    return t


@needs_native
@pytest.mark.parametrize(
    "make",
    [
        lambda a: a,
        lambda a: a.transpose(2, 0, 1),
        lambda a: a[:, ::2, :],
        lambda a: a.astype(np.float16),
        lambda a: a.astype(np.float16).transpose(1, 2, 0),
        lambda a: a.reshape(1, -1),
        lambda a: a.reshape(-1, 1),
        lambda a: a.reshape(3, 2, 5, 7),
    ],
)
def test_native_statistics_equal_numpy_for_any_layout(make: Any) -> None:
    rng = np.random.default_rng(3)
    base = rng.normal(1.0, 2.0, size=(3, 10, 7)).astype(np.float32)
    base[0, 0, :3] = 0.0
    base[1, 2, 4] = np.nan
    base[2, 5, 1] = np.inf
    base[2, 6, 2] = -np.inf
    arr = make(base)
    t = ggml_view(arr)
    whole, rows = _native.tensor_stats(ctypes.addressof(t), n_tokens=arr.shape[0])
    values = arr.astype(np.float32)
    np.testing.assert_allclose(whole, reference_stats(values), rtol=1e-5, atol=1e-6)
    if arr.shape[0] > 1 and arr.ndim >= 2:
        assert rows is not None and rows.shape == (arr.shape[0], 8)
        for i in range(arr.shape[0]):
            np.testing.assert_allclose(rows[i], reference_stats(values[i]), rtol=1e-5, atol=1e-6)
    else:
        assert rows is None


@needs_native
def test_native_rows_along_the_token_axis_of_attention_tensors() -> None:
    rng = np.random.default_rng(4)
    kq = rng.normal(size=(4, 6, 9)).astype(np.float32)  # (head, token, kv)
    t = ggml_view(kq)  # kept alive while C reads it
    got = _native.tensor_stats(ctypes.addressof(t), n_tokens=6, rows_axis1=True)
    assert got is not None
    whole, rows = got
    assert rows is not None
    for tok in range(6):
        np.testing.assert_allclose(rows[tok], reference_stats(kq[:, tok, :]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(whole, reference_stats(kq), rtol=1e-5, atol=1e-6)


@needs_native
def test_native_top_k_equals_python_top_k_with_ties_and_nan() -> None:
    rng = np.random.default_rng(5)
    for trial in range(50):
        x = rng.integers(0, 6, size=rng.integers(1, 300)).astype(np.float32) / 4  # many ties; blocks of 16 skipped
        if trial % 7 == 0:
            x[rng.integers(0, x.size)] = np.nan
        for k in (1, 3, 8, 64):
            ids, vals = _native.top_k(x, k)
            ref_ids, ref_vals = top_k_desc(x, k)
            assert ids == ref_ids.tolist(), (x, k)
            np.testing.assert_array_equal(vals, ref_vals)
            assert vals.tolist() == sorted(vals.tolist(), reverse=True)


# ----- the decision cache on synthetic graphs -----------------------------------------------
class SyntheticRun:
    """Feeds graphs of fake tensors (names, shapes and data chosen by the test) to a cb_eval.

    All graphs share one pool of tensor structs, as llama.cpp rebuilds graphs in the same
    memory: a pointer carries different nodes from one graph to the next.
    """

    def __init__(self, preset: str, native: bool) -> None:
        self.collector = TensorCollector(preset=preset)
        self.cb = create_callback(self.collector, native=native)
        self.pool = (_ggml.GgmlTensor * 64)()
        self.keep: list[np.ndarray] = []
        self.pos = 0  # position of the next graph's first token

    def graph(self, names: list[str], n_tokens: int, seed: int, shift: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.keep.clear()
        for i, name in enumerate(names):
            slot = self.pool[(i + shift) % len(self.pool)]
            if name.startswith("kq_soft_max"):
                # causal, as llama.cpp's: query row r (position pos + r) sees positions 0..pos + r;
                # the KV cells after the sequence are padding, as in a real cache
                n_kv = max(16, self.pos + n_tokens)
                logits = rng.normal(size=(2, n_tokens, n_kv)).astype(np.float32)
                future = np.arange(n_kv)[None, :] > self.pos + np.arange(n_tokens)[:, None]
                logits[:, future] = -np.inf
                arr = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype(np.float32)
            elif name == "embd":
                arr = rng.normal(size=(n_tokens, 8)).astype(np.float32)
            else:
                arr = rng.normal(size=(n_tokens, 8 + i % 3)).astype(np.float32)
            self.keep.append(arr)
            t = ggml_view(arr, name.encode(), slot)
            ptr = ctypes.addressof(t)
            if self.cb(ptr, True, None):
                assert self.cb(ptr, False, None) is True
        self.pos += n_tokens

    def run(self, plan: list[tuple[list[str], int, int]]) -> dict[str, Any]:
        self.collector.start_trial("synthetic")
        self.pos = 0
        for i, (names, n_tokens, shift) in enumerate(plan):
            self.graph(names, n_tokens, seed=i, shift=shift)
        self.collector.end_trial("")
        doc = self.collector.to_capture().data
        for trial in doc["trials"]:
            trial.pop("timings")
            for step in trial["steps"]:
                step.pop("ms")
        doc.pop("created")
        return doc


LAYER = ["attn_norm-{L}", "Qcur-{L}", "Qcur-{L}", "node_7", "kq_soft_max-{L}", "kqv_out-{L}", "node_9", "l_out-{L}"]


def names(n_layer: int, extra: dict[int, str] | None = None, drop: int = 0) -> list[str]:
    out = ["embd"] + [n.format(L=L) for L in range(n_layer) for n in LAYER] + ["result_norm", "result_output"]
    for at, name in sorted((extra or {}).items(), reverse=True):
        out.insert(at, name)
    return out[: len(out) - drop] if drop else out


@needs_native
@pytest.mark.parametrize("preset", ["standard", "full", "observe"])
def test_decision_cache_equals_python_when_graphs_alternate_change_and_reuse_memory(preset: str) -> None:
    a, b = names(2), names(2, extra={5: "node_3", 11: "ffn_inp-0"})
    c, d = names(2, drop=3), names(3)
    plan = [
        (a, 5, 0),  # prefill
        (a, 1, 0),  # decode: same names, other shapes
        (a, 1, 0),
        (b, 1, 0),  # diverges mid-graph (unnamed node shifts every anchor/offset after it)
        (a, 1, 0),  # back to the first layout
        (b, 3, 7),  # the other layout again, nodes in other memory
        (c, 1, 0),  # a shorter graph: a prefix of the first
        (d, 2, 0),  # a longer one: extends it
        (a, 4, 13),
        (b, 1, 1),
    ]
    nat, py = SyntheticRun(preset, native=True), SyntheticRun(preset, native=False)
    assert nat.collector.callback_kind == "native" and py.collector.callback_kind == "python"
    got, want = nat.run(plan * 2), py.run(plan * 2)
    assert got["tensors"] == want["tensors"]
    for g_trial, w_trial in zip(got["trials"], want["trials"], strict=True):
        assert g_trial["counts"] == w_trial["counts"]
        assert g_trial["errors"] == w_trial["errors"] == []
        for gs, ws in zip(g_trial["steps"], w_trial["steps"], strict=True):
            assert_same_step(gs, ws)
    assert nat.collector.total_callbacks == py.collector.total_callbacks


def assert_same_step(gs: dict[str, Any], ws: dict[str, Any]) -> None:
    for key in ("index", "phase", "pos", "n_tokens", "token_ids"):
        assert gs[key] == ws[key], key
    assert gs["stats"].keys() == ws["stats"].keys()
    for tid in ws["stats"]:
        np.testing.assert_allclose(gs["stats"][tid], ws["stats"][tid], rtol=1e-5, atol=1e-6, err_msg=tid)
    assert gs["rows"].keys() == ws["rows"].keys()
    for tid in ws["rows"]:
        np.testing.assert_allclose(gs["rows"][tid], ws["rows"][tid], rtol=1e-5, atol=1e-6, err_msg=tid)
    assert gs["attention"].keys() == ws["attention"].keys()
    for tid, att in ws["attention"].items():
        assert gs["attention"][tid]["pos"] == att["pos"] and gs["attention"][tid]["n_kv"] == att["n_kv"]
        for g_head, w_head in zip(gs["attention"][tid]["p"], att["p"], strict=True):
            for g_row, w_row in zip(g_head, w_head, strict=True):  # rows are ragged early in a prefill
                np.testing.assert_allclose(g_row, w_row, rtol=1e-6)
        np.testing.assert_allclose(gs["attention"][tid]["entropy"], att["entropy"], rtol=1e-5, atol=1e-6)
    if ws["logits"] is None:
        assert gs["logits"] is None
    else:
        assert gs["logits"]["ids"] == ws["logits"]["ids"]
        np.testing.assert_allclose(gs["logits"]["logits"], ws["logits"]["logits"], rtol=1e-6)


@needs_native
def test_python_is_only_called_for_nodes_new_at_their_place() -> None:
    run = SyntheticRun("standard", native=True)
    engine = run.collector.engine
    calls: list[int] = []
    original = engine._on_node

    def counting(ptr: int, pos: int) -> int:
        calls.append(pos)
        return original(ptr, pos)

    engine._on_node = counting
    a, b = names(2), names(2, extra={9: "node_3"})
    run.run([(a, 4, 0), (a, 1, 0), (a, 1, 5)])
    assert len(calls) == len(a)  # the first graph only
    calls.clear()
    run.run([(b, 3, 0), (a, 1, 0), (b, 1, 0), (a, 2, 0)])
    assert calls == list(range(9, len(b)))  # b's tail once; then both layouts are cached


# ----- both paths on real models --------------------------------------------------------------
def hooked_model(path: Path, collector: TensorCollector, native: bool) -> Llama:
    """The model with the collector's callback (C or Python, as asked: checked)."""
    model = Llama(
        model_path=str(path),
        n_ctx=128,
        n_threads=2,
        seed=0,
        cb_eval=create_callback(collector, native=native),
        verbose=False,
    )
    assert collector.callback_kind == ("native" if native else "python")
    return model


def real_run(path: Path, preset: str, native: bool, prompts: list[str], **options: Any) -> dict[str, Any]:
    collector = TensorCollector(preset=preset, **options)
    model = hooked_model(path, collector, native)
    for prompt in prompts:
        collector.start_trial(prompt)
        collector.end_trial(model(prompt, max_tokens=4, temperature=0.0))
    return collector.to_capture().data


@needs_native
@pytest.mark.parametrize(
    ("arch", "preset"),
    [("llama", "standard"), ("llama", "full"), ("gemma3", "standard"), ("granite", "standard")],
)
def test_native_and_python_paths_make_the_same_capture(tiny_model, arch: str, preset: str) -> None:
    prompts = [PROMPT, "Hi", "The capital of Spain is Madrid and the capital of Italy is"]  # n_tokens changes
    got = real_run(tiny_model(arch), preset, True, prompts)
    want = real_run(tiny_model(arch), preset, False, prompts)
    assert got["tensors"] == want["tensors"]
    assert sum(t["captured"] for t in got["tensors"]) > 5
    for gt, wt in zip(got["trials"], want["trials"], strict=True):
        assert gt["response"] == wt["response"] and gt["tokens"] == wt["tokens"]
        assert gt["counts"] == wt["counts"] and gt["errors"] == wt["errors"]
        assert len(gt["steps"]) == len(wt["steps"]) > 1
        for gs, ws in zip(gt["steps"], wt["steps"], strict=True):
            assert gs["token_texts"] == ws["token_texts"]
            assert_same_step(gs, ws)


@needs_native
def test_full_attention_matrices_come_from_python_and_match(tiny_llama: Path) -> None:
    got = real_run(tiny_llama, "standard", True, [PROMPT], full_attention=True, top_k=3)
    want = real_run(tiny_llama, "standard", False, [PROMPT], full_attention=True, top_k=3)
    for gs, ws in zip(got["trials"][0]["steps"], want["trials"][0]["steps"], strict=True):
        assert_same_step(gs, ws)
        for tid, att in ws["attention"].items():
            np.testing.assert_allclose(gs["attention"][tid]["full"], att["full"], rtol=1e-6)


# ----- the fallback ---------------------------------------------------------------------------
def test_no_compiler_is_a_one_line_reason(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CC", raising=False)
    with pytest.raises(_native.NativeUnavailable, match="no C compiler found"):
        _native.build()


def test_unavailable_native_warns_once_and_captures_with_python(
    monkeypatch: pytest.MonkeyPatch, tiny_llama: Path, tmp_path: Path
) -> None:
    def unavailable() -> None:
        raise _native.NativeUnavailable("no C compiler found (install gcc or clang, or set CC)")

    monkeypatch.setattr(_native, "lib", unavailable)
    monkeypatch.setattr(native_capture, "_warned", [])
    with pytest.warns(RuntimeWarning, match="no C compiler found"):
        first = TensorCollector(preset="standard")
        cb = create_callback(first)
    assert first.callback_kind == "python" and collector_kind(cb) == "python"
    second = TensorCollector(preset="standard")
    create_callback(second)  # no second warning (pytest's -W error would not be needed to see it)
    assert native_capture._warned == ["no C compiler found (install gcc or clang, or set CC)"]
    with pytest.raises(_native.NativeUnavailable):
        create_callback(TensorCollector(), native=True)
    cap = real_run(tiny_llama, "standard", False, [PROMPT])
    assert cap["trials"][0]["steps"][0]["stats"]


def collector_kind(cb: Any) -> str:
    return cb.collector.callback_kind


def test_environment_switch_selects_the_python_callback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECTRA_VIS_NATIVE", "0")
    collector = TensorCollector(preset="standard")
    create_callback(collector)
    assert collector.callback_kind == "python" and isinstance(collector.engine, PythonEngine)


@needs_native
def test_on_tensor_hooks_run_on_the_native_engine_and_see_what_python_sees(tiny_llama: Path) -> None:
    """The public extension point: with hooks, C hands every wanted node's data to Python."""

    def run(native: bool) -> tuple[TensorCollector, dict[tuple[int, str], np.ndarray]]:
        seen: dict[tuple[int, str], np.ndarray] = {}

        def keep(info: Any, arr: np.ndarray, step: Any) -> None:
            seen[(step.index, info.key)] = arr.astype(np.float64).copy()

        collector = TensorCollector(preset="standard", on_tensor=keep)
        model = hooked_model(tiny_llama, collector, native)
        collector.start_trial(PROMPT)
        collector.end_trial(model(PROMPT, max_tokens=3, temperature=0.0))
        return collector, seen

    native, got = run(True)
    _, want = run(False)
    wanted = {t.key for t in native.tensors if t.captured}
    assert got.keys() == want.keys() and {k for _, k in got} == wanted
    for key, arr in want.items():
        np.testing.assert_array_equal(got[key], arr)
    with pytest.raises(RuntimeError, match="before create_callback"):
        native.add_hook(lambda *_: None)


@needs_native
def test_build_is_cached_by_source_hash(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPECTRA_VIS_CACHE", str(tmp_path))
    first = _native.build()
    assert first.parent == tmp_path and first.exists()
    stamp = first.stat().st_mtime_ns
    assert _native.build() == first and first.stat().st_mtime_ns == stamp  # not rebuilt
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".build-")]  # no temporary left


@needs_native
def test_dropping_the_callback_frees_its_native_slot() -> None:
    import gc

    for _ in range(80):  # more than the 64 slots: only works if dropped callbacks free theirs
        c = TensorCollector(preset="observe")
        create_callback(c)
        assert c.callback_kind == "native"
        del c
        gc.collect()


@needs_native
def test_plain_llama_with_the_native_callback_in_its_params(tiny_llama: Path) -> None:
    """A patched llama-cpp-python passes cb_eval without user data: the slot trampoline needs none."""
    collector = TensorCollector(preset="standard")
    cb = create_callback(collector)
    model = patched_llama(tiny_llama, cb)
    collector.start_trial(PROMPT)
    model.reset()
    trial = collector.end_trial(model(PROMPT, max_tokens=3, temperature=0.0))
    assert collector.callback_kind == "native"
    assert len(trial.steps) == 3 and trial.steps[0].n_tokens > 1
    assert all(s.stats and s.attention and s.logits for s in trial.steps)
