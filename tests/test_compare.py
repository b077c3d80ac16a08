"""Comparing two runs, and the quantization lens: llama.cpp's own quantizer makes the variants,
the same tokens go through two models (teacher forcing), and every number the comparison gives
is checked against a numpy recomputation from full logits and vectors. Real llama-cpp-python,
tiny GGUF models, the REST API over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from spectra_vis import analysis, capture, compare, load_capture
from spectra_vis.capturing.lens import LogitLens
from spectra_vis.capturing.quantize import quantize
from spectra_vis.comparing.pair import capture_pair
from spectra_vis.errors import InvalidArgument, NotFound
from spectra_vis.record.profiles import read_model_card
from spectra_vis.testing.tiny_gguf import write_tiny_model

REPO = Path(__file__).resolve().parents[1]
PROMPT = "The capital of France is"
N = 8


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An F32 tiny llama (wider than the default, so that every layer quantizes) and its Q8_0 and
    Q4_0, made by llama.cpp's quantizer; the progress it reported, per type."""
    d = tmp_path_factory.mktemp("quant")
    src = write_tiny_model(d / "tiny-f32.gguf", arch="llama", n_layer=4, n_embd=128, n_ff=256, seed=3)
    out: dict[str, Any] = {"F32": src, "progress": {}}
    for qtype in ("Q8_0", "Q4_0"):
        seen: list[tuple[int, int, str]] = []
        out[qtype] = quantize(src, qtype, on_progress=lambda i, n, name, seen=seen: seen.append((i, n, name)))
        out["progress"][qtype] = seen
    return out


@pytest.fixture(scope="module")
def pairs(variants: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pairs")
    out = {}
    for q in ("Q8_0", "Q4_0"):
        out[q] = d / f"pair_{q}.json"
        capture_pair(variants["F32"], variants[q], PROMPT, max_tokens=N, n_ctx=128, out=out[q])
    return out


# ----- quantize ----------------------------------------------------------------------------------
def test_quantize_writes_a_model_llama_cpp_loads_with_progress_per_tensor(variants: dict[str, Any]) -> None:
    from spectra_vis.record.profiles import open_gguf

    for qtype in ("Q8_0", "Q4_0"):
        path = variants[qtype]
        card = read_model_card(path)
        assert card.file_type == qtype and card.requantized_from is None
        n_tensors = len(open_gguf(path).tensors)
        seen = variants["progress"][qtype]
        assert [i for i, _, _ in seen] == list(range(1, n_tensors + 1)) and {n for _, n, _ in seen} == {n_tensors}
        assert {name for _, _, name in seen} == {t.name for t in open_gguf(path).tensors}
        types = {t.tensor_type.name for t in open_gguf(path).tensors if len(t.shape) == 2}
        assert qtype in types
    assert not [p for p in variants["F32"].parent.iterdir() if p.name.endswith(".tmp")]


def test_an_unknown_type_and_a_silent_requantization_are_refused(variants: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match=r"unknown quantization type 'Q9_9'; llama.cpp knows: .*Q4_K_M") as e:
        quantize(variants["F32"], "Q9_9", tmp_path / "x.gguf")
    assert "\n" not in str(e.value)
    with pytest.raises(InvalidArgument, match="already quantized .*--allow-requantize"):
        quantize(variants["Q8_0"], "Q4_0", tmp_path / "y.gguf")
    assert list(tmp_path.iterdir()) == []


def test_a_requantized_model_says_so_in_its_metadata_and_its_captures(variants: dict[str, Any], tmp_path: Path) -> None:
    out = quantize(variants["Q8_0"], "Q4_0", tmp_path / "requant.gguf", allow_requantize=True)
    card = read_model_card(out)
    assert card.requantized_from == "Q8_0" and card.file_type == "Q4_0"
    cap = capture(out, [PROMPT], preset="observe", max_tokens=2, n_ctx=64)
    assert cap.model["requantized_from"] == "Q8_0" and len(cap.trials[0]["steps"]) == 2


def test_a_disk_that_fills_leaves_no_partial_file(variants: dict[str, Any], tmp_path: Path) -> None:
    """A file-size limit stands in for a full disk: writes past it fail with EFBIG."""
    code = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, resource.RLIM_INFINITY))\n"
        "from spectra_vis.capturing.quantize import quantize\n"
        "from spectra_vis.errors import ModelFileError\n"
        "try:\n"
        f"    quantize({str(variants['F32'])!r}, 'Q8_0', {str(tmp_path / 'full.gguf')!r})\n"
        "except ModelFileError as exc:\n"
        "    print('ERROR', exc); sys.exit(3)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "could not quantize tiny-f32.gguf to Q8_0" in r.stdout
    assert list(tmp_path.iterdir()) == []


def test_quantize_cli_one_line_error(variants: dict[str, Any]) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "spectra_vis.cli", "quantize", str(variants["F32"]), "--type", "Q7_Z"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "unknown quantization type 'Q7_Z'" in lines[0]


# ----- the pair ----------------------------------------------------------------------------------
def test_the_candidate_reads_the_references_tokens_and_records_its_own_choice(pairs: dict[str, Path]) -> None:
    cap = load_capture(pairs["Q4_0"])
    ref, cand = cap.trials
    assert ref["pair"] == {"role": "reference", "candidate": 1, "forced": False}
    assert cand["pair"]["role"] == "candidate" and cand["pair"]["forced"] is True and cand["pair"]["reference"] == 0
    assert cand["tokens"]["ids"] == ref["tokens"]["ids"] and cand["tokens"]["n_prompt"] == ref["tokens"]["n_prompt"]
    assert len(cand["steps"]) == len(ref["steps"])
    for s_ref, s_cand in zip(ref["steps"], cand["steps"], strict=True):
        assert s_cand["token_ids"] == s_ref["token_ids"] and s_cand["pos"] == s_ref["pos"]
    assert ref["model"]["file_type"] == "ALL_F32" and cand["model"]["file_type"] == "Q4_0"
    assert cap.model["file_type"] == "ALL_F32"
    assert ref["lens"]["layers"] == cand["lens"]["layers"] == [0, 1, 2, 3]


def test_the_overviews_trial_list_marks_the_pair(pairs: dict[str, Path]) -> None:
    """The viewer opens a pair in its Compare view from the trial list (GET /api/load)."""
    cap = load_capture(pairs["Q4_0"])
    brief = [t["pair"] for t in analysis.summary(cap)["trial_list"]]
    assert brief == [
        {"role": "reference", "reference": None, "candidate": 1, "forced": False},
        {"role": "candidate", "reference": 0, "candidate": None, "forced": True},
    ]


def test_next_token_block_equals_a_numpy_recomputation(pairs: dict[str, Path], variants: dict[str, Any]) -> None:
    """KL, top-1 and the other's token probability against softmaxes of the full logits of both heads,
    computed by the gguf package's dequantization and numpy."""
    cap = load_capture(pairs["Q4_0"])
    block = cap.trials[1]["pair"]["next_token"]
    lens_a, lens_b = LogitLens.from_gguf(variants["F32"]), LogitLens.from_gguf(variants["Q4_0"])
    lens_a.use_ggml = lens_b.use_ggml = False
    va = cap.vectors(0, "ln_final.hook_normalized")
    vb = cap.vectors(1, "ln_final.hook_normalized")
    ids = cap.trials[0]["tokens"]["ids"]
    have = [p for p in range(len(ids)) if not np.isnan(va[p]).any()]
    assert len(have) == N and all(block["kl"][p] is None for p in range(len(ids)) if p not in have)
    for p in have:
        la = lens_a._head_logits(va[p : p + 1], lens_a._head[:])[0].astype(np.float64)
        lb = lens_b._head_logits(vb[p : p + 1], lens_b._head[:])[0].astype(np.float64)
        pa, pb = np.exp(la - la.max()), np.exp(lb - lb.max())
        pa, pb = pa / pa.sum(), pb / pb.sum()
        assert block["kl"][p] == pytest.approx(float((pa * np.log(pa / pb)).sum()), rel=2e-2, abs=2e-4)
        assert block["top1_a"][p] == int(la.argmax()) and block["top1_b"][p] == int(lb.argmax())
        if p + 1 < len(ids):
            assert block["p_b_of_a"][p] == pytest.approx(float(pb[ids[p + 1]]), rel=2e-2, abs=1e-5)
    # the candidate's own stored logits agree with its top-1 (its greedy choice)
    cand = cap.trials[1]
    for step in cand["steps"]:
        last = step["pos"] + step["n_tokens"] - 1
        assert step["logits"]["ids"][0] == block["top1_b"][last]


def test_cosine_and_relative_l2_equal_numpy(pairs: dict[str, Path]) -> None:
    cap = load_capture(pairs["Q8_0"])
    cmp = compare(cap, 0, cap, 1)
    assert cmp.cosine is not None and cmp.rel_l2 is not None
    for i, layer in enumerate(cmp.layers):
        a = cap.vectors(0, f"blocks.{layer}.hook_resid_post").astype(np.float64)
        b = cap.vectors(1, f"blocks.{layer}.hook_resid_post").astype(np.float64)
        for p in range(cmp.n_shared):
            if np.isnan(a[p]).any():
                assert np.isnan(cmp.cosine[i, p])
                continue
            cos = a[p] @ b[p] / np.linalg.norm(a[p]) / np.linalg.norm(b[p])
            assert cmp.cosine[i, p] == pytest.approx(cos, abs=1e-9)
            assert cmp.rel_l2[i, p] == pytest.approx(np.linalg.norm(b[p] - a[p]) / np.linalg.norm(a[p]), rel=1e-9)
    assert np.nanmin(cmp.cosine) < 1.0  # a real quantization drifts


def test_q4_0_drifts_more_than_q8_0_at_every_layer_and_has_the_larger_kl(pairs: dict[str, Path]) -> None:
    got = {}
    for q, path in pairs.items():
        cap = load_capture(path)
        got[q] = compare(cap, 0, cap, 1)
    d8, d4 = got["Q8_0"].drift, got["Q4_0"].drift
    assert d8 is not None and d4 is not None
    assert (d4 < d8).all(), (d4, d8)
    assert got["Q4_0"].summary()["mean_kl"] > got["Q8_0"].summary()["mean_kl"] > 0


def test_a_trial_compared_with_itself_is_zero_everywhere(pairs: dict[str, Path], variants: dict[str, Any]) -> None:
    cap = load_capture(pairs["Q4_0"])
    cmp = compare(cap, 1, cap, 1, models=(variants["Q4_0"], variants["Q4_0"]))
    assert "compared with itself" in cmp.notices[0]
    for values in cmp.stats.values():
        assert np.nanmax(np.abs(values)) == 0.0
    assert np.nanmax(np.abs(cmp.resid_l2_change)) == 0.0
    assert cmp.cosine is not None and cmp.rel_l2 is not None
    have = ~np.isnan(cmp.cosine)
    assert have.any() and (cmp.cosine[have] == 1.0).all() and (cmp.rel_l2[have] == 0.0).all()
    assert cmp.next_token is not None
    kl = cmp.next_token["kl"]
    assert (kl[~np.isnan(kl)] == 0.0).all()
    s = cmp.summary()
    assert s["mean_kl"] == 0.0 and s["top1_agreement"] == 1.0 and s["diverge_at"] is None


def test_different_vocabularies_are_refused(variants: dict[str, Any], tmp_path: Path) -> None:
    other = write_tiny_model(tmp_path / "other.gguf", arch="llama", n_layer=4, n_embd=128, n_ff=256, seed=3,
                             extra_tokens=["<|tool|>"])  # fmt: skip
    with pytest.raises(InvalidArgument, match="another vocabulary .*the same tokenizer") as e:
        capture_pair(variants["F32"], other, PROMPT, max_tokens=2, n_ctx=64, out=tmp_path / "x.json")
    assert "\n" not in str(e.value) and not (tmp_path / "x.json").exists()


def test_diverging_runs_compare_their_shared_prefix(variants: dict[str, Any], tmp_path: Path) -> None:
    a = capture(variants["F32"], [PROMPT, "A completely different start"], max_tokens=4, n_ctx=64)
    cmp = compare(a, 0, a, 1)
    ids0, ids1 = a.trials[0]["tokens"]["ids"], a.trials[1]["tokens"]["ids"]
    first = next(i for i in range(min(len(ids0), len(ids1))) if ids0[i] != ids1[i])
    assert cmp.diverge_at == first and cmp.n_shared == first
    assert any("diverge at position" in n for n in cmp.notices)
    # the shared tokens are prompt tokens before the last: llama.cpp computed no logits there, no head is needed
    assert cmp.next_token is None and any("no shared token position where both" in n for n in cmp.notices)
    with_models = compare(a, 0, a, 1, models=(variants["F32"], variants["F32"]))
    assert with_models.next_token is None and with_models.notices == cmp.notices


def test_other_architectures_compare_statistics_only(variants: dict[str, Any], tiny_model) -> None:
    a = capture(variants["F32"], [PROMPT], max_tokens=2, n_ctx=64)
    b = capture(tiny_model("qwen2"), [PROMPT], max_tokens=2, n_ctx=64)
    cmp = compare(a, 0, b, 0)
    assert any("statistics only, vectors are not comparable" in n for n in cmp.notices)
    assert cmp.cosine is None and cmp.next_token is None


def test_a_missing_vectors_file_compares_statistics_and_says_why(pairs: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    shutil.copy(pairs["Q8_0"], tmp_path / "alone.json")  # without its .vectors.safetensors
    cap = load_capture(tmp_path / "alone.json")
    cmp = compare(cap, 0, cap, 1)
    assert cmp.cosine is None and any("vectors file" in n and "missing" in n for n in cmp.notices)
    assert cmp.next_token is not None  # the pair's stored KL needs no vectors
    assert np.isfinite(cmp.stats["l2"]).any()


def test_an_unknown_trial_is_not_found(pairs: dict[str, Path]) -> None:
    cap = load_capture(pairs["Q8_0"])
    with pytest.raises(NotFound):
        compare(cap, 0, cap, 7)


def test_compare_cli_makes_the_pair_and_prints_the_drift(variants: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "cli_pair.json"
    cmd = [sys.executable, "-m", "spectra_vis.cli", "compare", "--models", str(variants["F32"]), str(variants["Q8_0"])]
    cmd += ["--prompt", PROMPT, "--max-tokens", "4", "--n-ctx", "64", "--out", str(out)]
    cmd += ["--json", str(tmp_path / "c.json")]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300, env={**os.environ, "COLUMNS": "160"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "residual cosine" in r.stdout and "top-1 agreement" in r.stdout
    cap = load_capture(out)
    assert [t["pair"]["role"] for t in cap.trials] == ["reference", "candidate"]
    doc = json.loads((tmp_path / "c.json").read_text())
    assert doc["summary"]["n_next_token"] == 4 and len(doc["drift"]) == 4
    again = subprocess.run([sys.executable, "-m", "spectra_vis.cli", "compare", f"{out}:1", f"{out}:1"],
                           capture_output=True, text=True, cwd=REPO, timeout=120)  # fmt: skip
    assert again.returncode == 0 and "compared with itself" in again.stdout


def test_api_compare_serves_the_pair_and_refuses_unknown_ids(pairs: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    import httpx

    from tests.test_backend import _free_port, _wait_up

    data = tmp_path / "data"
    data.mkdir()
    for f in (pairs["Q4_0"], pairs["Q4_0"].with_name("pair_Q4_0.vectors.safetensors")):
        shutil.copy(f, data / f.name)
    port = _free_port()
    cmd = [sys.executable, "backend/server.py", "--port", str(port), "--data-dir", str(data), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_up(base, proc)
        with httpx.Client(base_url=base, timeout=30) as client:
            cid = client.post("/api/load", json={"filepath": "pair_Q4_0.json"}).json()["capture_id"]
            r = client.get("/api/compare", params={"a": f"{cid}:0", "b": f"{cid}:1"})
            assert r.status_code == 200, r.text
            body = r.json()
            cap = load_capture(data / "pair_Q4_0.json")
            want = compare(cap, 0, cap, 1).to_dict()
            assert body["summary"] == want["summary"] and body["drift"] == want["drift"]
            assert body["next_token"] == want["next_token"] and body["a"]["capture_id"] == cid
            assert client.get("/api/compare", params={"a": f"{cid}:0", "b": f"{cid}:1"}).json() == body
            same = client.get("/api/compare", params={"a": f"{cid}:1", "b": f"{cid}:1"}).json()
            assert same["summary"]["mean_cosine"] == 1.0
            for a, b, status in (("nope:0", f"{cid}:1", 404), (f"{cid}:0", f"{cid}:9", 404), ("x", f"{cid}:1", 422)):
                bad = client.get("/api/compare", params={"a": a, "b": b})
                assert bad.status_code == status, bad.text
                assert "\n" not in bad.json()["error"]
    finally:
        proc.terminate()
        proc.wait(10)


def test_api_compare_of_two_captures_reads_heads_only_from_the_models_directory(
    variants: dict[str, Any], tmp_path: Path
) -> None:
    """Two captures made apart (same prompt, greedy): the server computes their KL when both models
    are in its models directory, and not when one is a symlink leading out of it."""
    import shutil

    import httpx

    from tests.test_backend import _free_port, _wait_up

    data, models, outside = tmp_path / "data", tmp_path / "data" / "models", tmp_path / "outside"
    models.mkdir(parents=True)
    outside.mkdir()
    for name, q in (("a.json", "F32"), ("b.json", "Q8_0")):
        capture(variants[q], [PROMPT], max_tokens=4, n_ctx=64, out=data / name)
    shutil.copy(variants["F32"], models / variants["F32"].name)
    shutil.copy(variants["Q8_0"], outside / variants["Q8_0"].name)
    (models / variants["Q8_0"].name).symlink_to(outside / variants["Q8_0"].name)
    want = compare(load_capture(data / "a.json"), 0, load_capture(data / "b.json"), 0,
                   models=(variants["F32"], variants["Q8_0"])).to_dict()  # fmt: skip
    assert want["next_token"] is not None

    def serve_and_compare() -> dict[str, Any]:
        port = _free_port()
        cmd = [sys.executable, "backend/server.py", "--port", str(port), "--data-dir", str(data)]
        cmd += ["--log-level", "error"]
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            _wait_up(f"http://127.0.0.1:{port}", proc)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                ids = [
                    client.post("/api/load", json={"filepath": n}).json()["capture_id"] for n in ("a.json", "b.json")
                ]  # noqa: E501
                params = {"a": f"{ids[0]}:0", "b": f"{ids[1]}:0"}
                r = client.get("/api/compare", params=params)
                assert r.status_code == 200, r.text
                while r.json()["next_token_progress"] is not None:  # the pass over the heads runs in the background
                    time.sleep(0.05)
                    r = client.get("/api/compare", params=params)
                return dict(r.json())
        finally:
            proc.terminate()
            proc.wait(10)

    refused = serve_and_compare()  # the Q8_0 model is a symlink leading out: not read
    assert refused["next_token"] is None and any("models directory" in n for n in refused["notices"])
    (models / variants["Q8_0"].name).unlink()
    shutil.copy(variants["Q8_0"], models / variants["Q8_0"].name)
    got = serve_and_compare()
    assert got["next_token"] == want["next_token"] and got["summary"] == want["summary"]
