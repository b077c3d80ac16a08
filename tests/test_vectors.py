"""Activation vectors (capture format 2.1) on real llama-cpp-python: what is kept, against the arrays
llama.cpp handed to an independent hook and against the captured row statistics; the companion
file's round trip, memory-mapping and refusals; the byte budget; TransformerLens names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from spectra_vis import Capture, Llama, TensorCollector, capture, create_callback, load_capture
from spectra_vis.capturing.recorder import _f16_packed
from spectra_vis.errors import CaptureError, NotFound
from spectra_vis.store import vectors as V

PROMPT = "The capital of France is"
F16 = dict(rtol=2e-3, atol=2e-3)


def hooked(path: Path, native: bool | None = None, **options: Any) -> tuple[Capture, dict[tuple[int, int], np.ndarray]]:
    """A standard capture of 4 greedy tokens, and every array the preset read (an independent copy)."""
    seen: dict[tuple[int, int], np.ndarray] = {}

    def keep(info: Any, arr: np.ndarray, step: Any) -> None:
        seen[(step.index, info.id)] = np.array(arr, dtype=np.float32)

    collector = TensorCollector(preset="standard", on_tensor=keep, **options)
    model = Llama(model_path=str(path), n_ctx=128, n_threads=2, seed=0, cb_eval=create_callback(collector, native),
                  verbose=False)  # fmt: skip
    collector.start_trial(PROMPT)
    collector.end_trial(model(PROMPT, max_tokens=4, temperature=0.0))
    return collector.to_capture(), seen


@pytest.fixture(scope="module")
def saved(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("vec") / "run.json"
    capture(tiny_llama, [PROMPT, "Hi"], preset="standard", max_tokens=4, n_ctx=128, out=out)
    return out


def test_standard_keeps_the_residual_stream_and_block_outputs_by_transformerlens_name(saved: Path) -> None:
    cap = load_capture(saved)
    n_layer = cap.model["n_layer"]
    names = set(cap.hook_names(0))
    want = {"hook_embed", "blocks.0.hook_resid_pre", "ln_final.hook_normalized"}
    for L in range(n_layer):
        want |= {f"blocks.{L}.hook_resid_post", f"blocks.{L}.hook_attn_out", f"blocks.{L}.hook_mlp_out"}
    assert names == want
    kept = {t["type"] for t in cap.tensors if t.get("vector")}
    assert kept == {"embd", "l_out", "attn_out", "ffn_out", "result_norm"}


def test_vectors_are_the_arrays_llama_cpp_handed_over(tiny_llama: Path) -> None:
    for native in (True, False):
        cap, seen = hooked(tiny_llama, native=native)
        trial = cap.trials[0]
        for t in (t for t in cap.tensors if t.get("vector")):
            got = cap.vectors(0, t["key"])
            assert got.shape[0] == len(trial["tokens"]["ids"])
            for step in trial["steps"]:
                arr = seen.get((step["index"], t["id"]))
                if arr is None:
                    continue
                rows = arr.reshape(-1, got.shape[1])
                end = step["pos"] + step["n_tokens"]
                np.testing.assert_allclose(got[end - len(rows) : end], rows, **F16)


def test_row_norms_equal_the_captured_l2_statistics(saved: Path) -> None:
    """The statistics and the vectors are two independent reads of the same rows."""
    cap = load_capture(saved)
    l2 = cap.data["stat_names"].index("l2")
    for trial in cap.trials:
        for t in (t for t in cap.tensors if t["type"] == "l_out" and 0 <= t["layer"] < 998):
            vec = cap.vectors(trial["id"], t["key"])
            checked = 0
            for step in trial["steps"]:
                if step["n_tokens"] > 1 and str(t["id"]) in step["rows"]:
                    for r, stats in enumerate(step["rows"][str(t["id"])]):
                        norm = np.linalg.norm(vec[step["pos"] + r].astype(np.float64))
                        assert norm == pytest.approx(stats[l2], rel=2e-3)
                        checked += 1
                elif str(t["id"]) in step["stats"] and step["n_tokens"] == 1:
                    assert np.linalg.norm(vec[step["pos"]]) == pytest.approx(step["stats"][str(t["id"])][l2], rel=2e-3)
                    checked += 1
            assert checked >= 3


def test_the_companion_file_is_memory_mapped_and_its_rows_are_in_token_order(saved: Path) -> None:
    cap = load_capture(saved)
    block = cap.data["vectors"]
    assert block["file"] == "run.vectors.safetensors" and (saved.parent / block["file"]).is_file()
    assert all(isinstance(a, np.memmap) for a in cap.arrays.values() if a.size)
    from safetensors.numpy import load_file  # an independent reader

    plain = load_file(str(saved.parent / block["file"]))
    assert plain.keys() == cap.arrays.keys()
    for k, a in plain.items():
        np.testing.assert_array_equal(np.asarray(cap.arrays[k]), a)
    last = max(t["layer"] for t in cap.tensors if t["type"] == "l_out" and t["layer"] < 998)
    vec = cap.vectors(0, f"blocks.{last}.hook_resid_post")
    n_prompt = cap.trials[0]["tokens"]["n_prompt"]
    # the last layer: llama.cpp computes only the prompt's last row, then one row per decoded token
    assert np.isnan(vec[: n_prompt - 1]).all() and not np.isnan(vec[n_prompt - 1 : -1]).any()
    assert np.isnan(vec[-1]).all()  # the last sampled token is never evaluated


def test_a_capture_without_its_companion_loads_with_a_notice(saved: Path, tmp_path: Path) -> None:
    lone = tmp_path / "lone.json"
    lone.write_bytes(saved.read_bytes())
    cap = load_capture(lone)
    assert cap.trials[0]["steps"][0]["stats"] and not cap.arrays
    assert len(cap.notices) == 1 and "run.vectors.safetensors is missing" in cap.notices[0]
    with pytest.raises(NotFound, match="holds no vectors: vectors file run.vectors.safetensors is missing"):
        cap.vectors(0, "blocks.0.hook_resid_post")


def test_a_companion_that_does_not_match_is_refused_in_one_line(saved: Path, tmp_path: Path) -> None:
    companion = saved.parent / "run.vectors.safetensors"
    (tmp_path / "run.json").write_bytes(saved.read_bytes())
    raw = bytearray(companion.read_bytes())
    raw[-1] ^= 0xFF
    (tmp_path / "run.vectors.safetensors").write_bytes(bytes(raw))
    with pytest.raises(CaptureError, match="sha256 differs") as info:
        load_capture(tmp_path / "run.json")
    assert "\n" not in str(info.value)
    # a shape the file does not have
    (tmp_path / "run.vectors.safetensors").write_bytes(companion.read_bytes())
    doc = orjson.loads(saved.read_bytes())
    first = next(iter(doc["vectors"]["arrays"]))
    doc["vectors"]["arrays"][first]["shape"][0] += 1
    (tmp_path / "run.json").write_bytes(orjson.dumps(doc))
    with pytest.raises(CaptureError, match=f"array {first} is shape"):
        load_capture(tmp_path / "run.json")
    doc["vectors"]["file"] = "../elsewhere.safetensors"
    (tmp_path / "run.json").write_bytes(orjson.dumps(doc))
    with pytest.raises(CaptureError):
        load_capture(tmp_path / "run.json")


def test_an_unknown_vector_name_lists_the_available_ones(saved: Path) -> None:
    with pytest.raises(NotFound, match="no vectors 'blocks.99.hook_resid_post' in trial 0; available: hook_embed"):
        load_capture(saved).vectors(0, "blocks.99.hook_resid_post")


def test_the_byte_budget_stops_vectors_and_statistics_go_on(tiny_llama: Path) -> None:
    full, _ = hooked(tiny_llama)
    budget = 3000
    cut, _ = hooked(tiny_llama, max_vector_bytes=budget)
    dropped = cut.trials[0]["vectors_dropped"]
    assert dropped["reason"].startswith("max_vector_bytes (3,000 bytes) reached")
    assert 0 <= dropped["step"] < len(cut.trials[0]["steps"])
    assert sum(a.nbytes for a in cut.arrays.values()) <= budget < sum(a.nbytes for a in full.arrays.values())
    for a, b in zip(full.trials[0]["steps"], cut.trials[0]["steps"], strict=True):
        assert a["stats"].keys() == b["stats"].keys()


def test_f32_vectors_are_exact_and_none_can_be_asked_for(tiny_llama: Path) -> None:
    cap, seen = hooked(tiny_llama, vector_dtype="f32")
    t = next(t for t in cap.tensors if t["type"] == "l_out")
    step0 = cap.trials[0]["steps"][0]
    rows = seen[(0, t["id"])].reshape(step0["n_tokens"], -1)
    np.testing.assert_array_equal(cap.vectors(0, t["key"])[: step0["n_tokens"]], rows)
    none, _ = hooked(tiny_llama, vectors=[])
    assert not none.arrays and not any(t.get("vector") for t in none.tensors)


def test_float16_rows_beyond_its_range_are_scaled_by_powers_of_two() -> None:
    """Two nodes packed in one buffer, as the native data phase writes them: (tid, first, rows, width)."""
    rows = np.array([[1e5, -3.0, 0.5], [1.0, 2.0, -4.0], [np.inf, 1.0, 0.0]], dtype=np.float32)
    extra = np.array([[7.0, -70000.0]], dtype=np.float32)
    packed = np.concatenate([rows.reshape(-1), extra.reshape(-1)])
    stored, scales = _f16_packed(packed, [(0, 0, 3, 3), (1, 9, 1, 2)])
    assert scales.tolist() == [4.0, 1.0, 1.0, 4.0]  # node 0's three rows, then node 1's one
    first = stored[:9].reshape(3, 3).astype(np.float32) * scales[:3, None]
    np.testing.assert_allclose(first[:2], rows[:2], rtol=1e-3)
    np.testing.assert_allclose(stored[9:].astype(np.float32) * scales[3], extra[0], rtol=1e-3)
    assert np.isfinite(stored[:6]).all() and np.isfinite(stored[9:]).all()


def test_version_2_0_files_still_load(saved: Path) -> None:
    doc = orjson.loads(saved.read_bytes())
    doc["version"] = "2.0"
    del doc["vectors"]
    for key in ("vectors", "vector_dtype", "max_vector_bytes"):
        del doc["preset"][key]
    for t in doc["tensors"]:
        del t["vector"]
    old = Capture.from_bytes(orjson.dumps(doc))
    assert old.data["version"] == "2.0" and not old.arrays
    assert V.companion_name(Path("x/run.json")) == "run.vectors.safetensors"


@pytest.mark.parametrize("fmt", ["npz", "safetensors"])
def test_export_round_trips_through_numpy_or_safetensors_alone(saved: Path, tmp_path: Path, fmt: str) -> None:
    import json
    import subprocess
    import sys

    out = tmp_path / f"t1.{fmt}"
    cli = [sys.executable, "-m", "spectra_vis.cli", "export", str(saved), "--trial", "1", "--format", fmt]
    cli += ["--out", str(out)]
    run = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and f"wrote {out}" in run.stdout, run.stderr
    cap = load_capture(saved)
    trial = cap.trials[1]
    if fmt == "npz":
        with np.load(out) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(str(arrays.pop("__metadata__")[0]))
    else:
        from safetensors import safe_open
        from safetensors.numpy import load_file

        arrays = load_file(str(out))
        with safe_open(str(out), framework="numpy") as f:
            meta = f.metadata()
    assert arrays.pop("token_ids").tolist() == trial["tokens"]["ids"]
    assert json.loads(meta["tokens"]) == trial["tokens"]["texts"] and json.loads(meta["model"]) == cap.model
    assert sorted(json.loads(meta["names"])) == sorted(arrays) == sorted(cap.hook_names(1))
    for name, arr in arrays.items():
        np.testing.assert_array_equal(arr, cap.vectors(1, name))


def test_export_of_a_capture_without_vectors_is_a_one_line_error(tiny_llama: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "obs.json"
    capture(tiny_llama, [PROMPT], preset="observe", max_tokens=2, n_ctx=128, out=out)
    run = subprocess.run([sys.executable, "-m", "spectra_vis.cli", "export", str(out)], capture_output=True, text=True)
    assert run.returncode == 2 and len(run.stderr.splitlines()) == 1
    assert "nothing to export from trial 0" in run.stderr and not list(tmp_path.glob("*.npz"))


def test_the_c_engine_copies_the_same_rows_the_python_engine_reads(tiny_model) -> None:
    """Without hooks, the native engine copies vector rows in C: the same arrays as the Python engine."""

    def run(path: Path, native: bool) -> Capture:
        collector = TensorCollector(preset="standard")
        model = Llama(model_path=str(path), n_ctx=128, n_threads=2, seed=0,
                      cb_eval=create_callback(collector, native=native), verbose=False)  # fmt: skip
        assert collector.callback_kind == ("native" if native else "python")
        for prompt in (PROMPT, "Hi"):
            collector.start_trial(prompt)
            collector.end_trial(model(prompt, max_tokens=4, temperature=0.0))
        return collector.to_capture()

    for arch in ("llama", "gemma3"):
        c, py = run(tiny_model(arch), True), run(tiny_model(arch), False)
        assert c.arrays.keys() == py.arrays.keys() and len(c.arrays) > 10
        for key, arr in py.arrays.items():
            np.testing.assert_array_equal(c.arrays[key], arr, err_msg=f"{arch} {key}")


def test_the_companion_file_is_an_ordinary_file_like_its_capture(saved: Path) -> None:
    """Both are written through the same atomic writer: same permissions, no temporary left."""
    companion = saved.with_name("run.vectors.safetensors")
    assert companion.stat().st_mode & 0o777 == saved.stat().st_mode & 0o777
    assert not [p for p in saved.parent.iterdir() if p.name.endswith(".tmp")]


def test_the_c_float16_rows_equal_numpys() -> None:
    """The native data phase converts vector rows to float16 as it copies them: the same bits and
    scales as the numpy rule (``_f16_packed``), over halfway ties, subnormals, rows past float16's
    range (to powers of two exactly at the limit), and rows with Inf or NaN (scale 1)."""
    from spectra_vis.capturing._native import f16_rows

    rng = np.random.default_rng(11)
    width = 37  # not a multiple of 8: the scalar tail runs too
    rows = [rng.standard_normal(width) * 10.0 ** rng.integers(-9, 6) for _ in range(200)]
    half = np.float16(1.0) + np.finfo(np.float16).eps  # 1 + 2^-10
    rows.append(np.full(width, (1.0 + float(half)) / 2))  # exactly halfway between 1 and 1 + 2^-10
    rows.append(np.full(width, 2.0**-24 * 1.5))  # halfway between two float16 subnormals
    rows.append(np.linspace(-65536.0, 65536.0, width))  # max exactly 2 x the limit: scale 2
    rows.append(np.r_[np.inf, np.ones(width - 1)])
    rows.append(np.r_[np.nan, np.ones(width - 1) * 1e6])
    x = np.asarray(rows, dtype=np.float32)
    y, scale = f16_rows(x)
    with np.errstate(over="ignore"):  # the NaN row's 1e6 values: scale 1, infinite in float16
        want_y, want_scale = _f16_packed(x.reshape(-1), [(0, 0, len(x), width)])
    np.testing.assert_array_equal(scale, want_scale)
    finite = ~np.isnan(x).any(axis=1)
    np.testing.assert_array_equal(y[finite].view(np.uint16), want_y.reshape(x.shape)[finite].view(np.uint16))
    assert np.isnan(y[~finite][:, 0]).all()
    ok = np.isfinite(x).all(axis=1)
    assert scale[-3] == 2.0 and (scale > 1).sum() > 10 and np.abs(y[ok].astype(np.float32)).max() <= 32768
