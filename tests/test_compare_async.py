"""The next-token block of a comparison without a stall: a trial compared with itself reads it from
its logit lens (checked against the pass over the head), and ``GET /api/compare`` answers at once
and computes a head pass in the background (polled over real HTTP until it equals the synchronous
``compare(..., models=...)``; a damaged model file becomes a notice). Real llama-cpp-python, tiny
GGUF models, a real uvicorn server."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from spectra_vis import capture, compare, load_capture
from spectra_vis.capturing.lens import LogitLens
from spectra_vis.comparing import next_token_block
from spectra_vis.testing.tiny_gguf import write_tiny_model

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same tiny llama with float32 and float16 matrices: two models whose runs differ a little."""
    d = tmp_path_factory.mktemp("async_models")
    make = lambda w: write_tiny_model(d / f"tiny-{w}.gguf", n_embd=128, n_ff=256, seed=5, weight_type=w)  # noqa: E731
    return {w: make(w) for w in ("f32", "f16")}


@pytest.fixture(scope="module")
def data(models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory with a capture of each model (same prompt, greedy, vectors and lens) and a
    models directory holding both models."""
    d = tmp_path_factory.mktemp("async_data")
    for w, path in models.items():
        capture(path, [PROMPT], preset="standard", max_tokens=5, n_ctx=64, out=d / f"{w}.json")
    (d / "models").mkdir()
    for path in models.values():
        shutil.copy(path, d / "models" / path.name)
    return d


def _poll(client: httpx.Client, params: dict[str, str], first: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Ask again until the block is no longer pending; the final answer and how many answers were pending."""
    body, pending = first, 0
    deadline = time.monotonic() + 120
    while body["next_token_progress"] is not None:
        pending += 1
        assert body["next_token"] is None
        progress = body["next_token_progress"]
        assert 0 <= progress["done"] <= progress["total"] or progress["total"] == 0
        assert time.monotonic() < deadline, "the next-token pass never finished"
        time.sleep(0.05)
        r = client.get("/api/compare", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
    return body, pending


# ----- a trial with itself ------------------------------------------------------------------------
def test_a_self_comparison_reads_its_lens_and_equals_the_pass_over_the_head(
    data: Path, models: dict[str, Path]
) -> None:
    cap = load_capture(data / "f32.json")
    assert cap.trials[0].get("lens") is not None
    from_lens = compare(cap, 0, cap, 0).next_token  # no model given: the lens alone
    assert from_lens is not None
    head = LogitLens.from_gguf(models["f32"])
    n = len(cap.trials[0]["tokens"]["ids"])
    one_pass = next_token_block(cap, 0, cap, 0, (head, head), n)  # the same head and rows: one pass
    two_heads = next_token_block(cap, 0, cap, 0, (head, LogitLens.from_gguf(models["f32"])), n)
    have = ~np.isnan(one_pass["kl"])
    assert have.sum() >= 5 and (have == ~np.isnan(from_lens["kl"])).all()
    for got in (one_pass, from_lens):
        assert (got["kl"][have] == 0.0).all()
        assert (got["top1_a"][have] == two_heads["top1_a"][have]).all()
        assert (got["top1_b"][have] == two_heads["top1_b"][have]).all()
        for key in ("p_b_of_a", "p_a_of_b"):
            assert np.array_equal(np.isnan(got[key]), np.isnan(two_heads[key]))
            np.testing.assert_allclose(got[key][have], two_heads[key][have], atol=1e-5, equal_nan=True)
    np.testing.assert_array_equal(two_heads["kl"][have], 0.0)
    # the lens's probability of the next token is the softmax of the head's logits (numpy)
    rows = cap.vectors(0, "ln_final.hook_normalized")
    ids = cap.trials[0]["tokens"]["ids"]
    for p in np.flatnonzero(have):
        logits = head._head_logits(rows[p : p + 1], head._head[:])[0].astype(np.float64)
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        assert from_lens["top1_a"][p] == int(logits.argmax())
        if p + 1 < len(ids):
            assert from_lens["p_b_of_a"][p] == pytest.approx(float(probs[ids[p + 1]]), abs=1e-5)


def test_without_a_lens_a_self_comparison_takes_one_pass_over_the_head(data: Path, models: dict[str, Path]) -> None:
    cap = load_capture(data / "f32.json")
    with_lens = compare(cap, 0, cap, 0).next_token
    del cap.trials[0]["lens"]
    assert compare(cap, 0, cap, 0).next_token is None  # no lens, no model: nothing to read it from
    blocks: list[tuple[int, int]] = []
    head = LogitLens.from_gguf(models["f32"])
    n = len(cap.trials[0]["tokens"]["ids"])
    computed = next_token_block(cap, 0, cap, 0, (head, head), n, on_block=lambda d, t: blocks.append((d, t)))
    via_models = compare(cap, 0, cap, 0, models=(models["f32"], models["f32"])).next_token
    assert blocks and blocks[-1][0] == blocks[-1][1] == len(head._blocks())
    assert via_models is not None and with_lens is not None
    for key in ("kl", "top1_a", "top1_b"):
        np.testing.assert_array_equal(via_models[key], computed[key])
        np.testing.assert_array_equal(via_models[key], with_lens[key])


# ----- over HTTP ------------------------------------------------------------------------------------
def test_api_compare_answers_at_once_and_fills_the_block_in_the_background(data: Path, models: dict[str, Path]) -> None:
    from backend.server import create_app
    from tests.test_backend import serve

    want = compare(load_capture(data / "f32.json"), 0, load_capture(data / "f16.json"), 0,
                   models=(models["f32"], models["f16"])).to_dict()  # fmt: skip
    assert want["next_token"] is not None and want["next_token_progress"] is None
    app = create_app(data)
    with serve(app, timeout=60) as client:
        ids = [client.post("/api/load", json={"filepath": f"{w}.json"}).json()["capture_id"] for w in ("f32", "f16")]
        params = {"a": f"{ids[0]}:0", "b": f"{ids[1]}:0"}
        first = client.get("/api/compare", params=params)
        assert first.status_code == 200, first.text
        body = first.json()
        assert body["next_token"] is None and body["next_token_progress"] is not None
        assert "mean_kl" not in body["summary"] and body["cosine"] == want["cosine"]  # the rest is there at once
        again = client.get("/api/compare", params=params).json()  # asked twice: the same job, not two
        final, pending = _poll(client, params, again)
        assert pending >= 0 and final["next_token_progress"] is None
        assert final["next_token"] == want["next_token"] and final["summary"] == want["summary"]
        assert final["notices"] == want["notices"]
        assert client.get("/api/compare", params=params).json() == final  # kept
        maps = Path("/proc/self/maps")
        if maps.exists():  # the server (this process) opened the heads from its models directory for the pass only
            assert str(data / "models") not in maps.read_text()
        assert app.state.store.compare_jobs.started == 1
        same = client.get("/api/compare", params={"a": f"{ids[0]}:0", "b": f"{ids[0]}:0"}).json()
        assert same["next_token_progress"] is None and same["summary"]["mean_kl"] == 0.0  # the lens: no pass


def test_a_damaged_model_file_becomes_a_notice(data: Path, models: dict[str, Path], tmp_path: Path) -> None:
    from backend.server import create_app
    from tests.test_backend import serve

    d = tmp_path / "data"
    shutil.copytree(data, d)
    raw = models["f16"].read_bytes()
    (d / "models" / models["f16"].name).write_bytes(raw[: len(raw) // 3])  # a GGUF cut short: the magic is right
    with serve(create_app(d), timeout=60) as client:
        ids = [client.post("/api/load", json={"filepath": f"{w}.json"}).json()["capture_id"] for w in ("f32", "f16")]
        params = {"a": f"{ids[0]}:0", "b": f"{ids[1]}:0"}
        first = client.get("/api/compare", params=params)
        assert first.status_code == 200, first.text
        assert first.json()["next_token_progress"] is not None
        final, _ = _poll(client, params, first.json())
        assert final["next_token"] is None
        failed = [n for n in final["notices"] if "next-token comparison failed" in n]
        assert len(failed) == 1 and models["f16"].name in failed[0] and "\n" not in failed[0]
