"""The viewer backend over real HTTP: a real uvicorn process (``python backend/server.py``) and
apps built with ``create_app`` served by uvicorn in a thread, against captures the engine made
from tiny GGUF models and a hand-written version 1.0 file.

Numbers are checked against the capture JSON read directly (orjson, not the Capture class)
and recomputed with numpy; every 200 payload is also validated against the response model
the OpenAPI schema declares.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from pydantic import TypeAdapter

from backend import schemas as S
from spectra_vis.analysis import interpret
from spectra_vis.store.capture_file import VERSION

REPO = Path(__file__).resolve().parent.parent
STATS = ["l2", "mean", "std", "min", "max", "absmax", "sparsity", "nonfinite"]

# The original tool's format: tensors keyed by memory address, counts only.
LEGACY = {
    "version": "1.0",
    "created": "2024-05-01T10:00:00",
    "model_family": "llama",
    "tensor_order": ["0x7f00a000", "0x7f00a100", "0x7f00a200"],
    "trials": [
        {
            "trial_id": 0,
            "prompt": "What is the capital of France?",
            "response": " Paris.",
            "inference_time_ms": 123.5,
            "tensor_counts": {"0x7f00a000": 7, "0x7f00a100": 14, "0x7f00a200": 7},
        }
    ],
}


# ----- fixtures ------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_up(base: str, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise RuntimeError(f"server exited with {proc.returncode}: {out[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"server at {base} did not come up")


@contextlib.contextmanager
def serve(app: Any, timeout: float = 10) -> Iterator[httpx.Client]:
    """A create_app() app served by a real uvicorn in a thread; yields a client (``timeout`` per request)."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_up(base)
        with httpx.Client(base_url=base, timeout=timeout) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(max(10, timeout / 20))


@pytest.fixture(scope="module")
def full_capture_path(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A capture that keeps whole attention rows, for an independent numpy recomputation."""
    from spectra_vis import capture

    out = tmp_path_factory.mktemp("full") / "full_attention.json"
    prompt = "one two three four five six seven eight nine ten eleven twelve"
    capture(tiny_llama, [prompt], preset="standard", max_tokens=4, out=out, n_ctx=128, full_attention=True, top_k=4)
    return out


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory, tiny_capture_path: Path, full_capture_path: Path) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("backend")
    data, outside = base / "data", base / "outside"
    (data / "bad").mkdir(parents=True)
    outside.mkdir()
    shutil.copy(tiny_capture_path, data / "tiny.json")
    shutil.copy(full_capture_path, data / "full_attention.json")
    (data / "legacy_v1.json").write_bytes(orjson.dumps(LEGACY))
    raw = tiny_capture_path.read_bytes()
    (data / "bad" / "garbage.json").write_text("this is not JSON at all")
    (data / "bad" / "truncated.json").write_bytes(raw[: len(raw) // 2])
    wrong = orjson.loads(raw)
    del wrong["tensors"]
    (data / "bad" / "wrong_schema.json").write_bytes(orjson.dumps(wrong))
    (data / "bad" / "not_capture.json").write_text('{"hello": "world"}')
    (data / "bad" / "empty.json").write_bytes(b"")
    (data / "sub").mkdir()
    shutil.copy(tiny_capture_path, data / "sub" / "nested.json")
    shutil.copy(tiny_capture_path, outside / "secret.json")
    os.mkfifo(outside / "fifo.json")  # opening it would block: proves a refused path is never opened
    (data / "link_out.json").symlink_to(outside / "secret.json")
    (data / "fifo_out.json").symlink_to(outside / "fifo.json")
    (data / "dir_out").symlink_to(outside, target_is_directory=True)
    (data / "alias.json").symlink_to(data / "tiny.json")  # a symlink that stays inside is fine
    companion = tiny_capture_path.with_name("capture_tiny.vectors.safetensors")
    shutil.copy(companion, data / companion.name)  # tiny.json's vectors, beside it
    (data / "linked").mkdir()
    shutil.copy(tiny_capture_path, data / "linked" / "linked.json")
    shutil.copy(companion, outside / companion.name)
    (data / "linked" / companion.name).symlink_to(outside / companion.name)  # its vectors lead outside
    return {"data": data, "outside": outside}


@pytest.fixture(scope="module")
def server(dirs: dict[str, Path]) -> Iterator[httpx.Client]:
    """``python backend/server.py`` in a real process."""
    port = _free_port()
    cmd = [sys.executable, "backend/server.py", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--data-dir", str(dirs["data"]), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_up(base, proc)
        with httpx.Client(base_url=base, timeout=10) as client:
            yield client
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def raw(tiny_capture_path: Path) -> dict[str, Any]:
    return orjson.loads(tiny_capture_path.read_bytes())


@pytest.fixture(scope="module")
def tiny_id(server: httpx.Client) -> str:
    return ok(server.post("/api/load", json={"filepath": "tiny.json"}), S.LoadOut)["capture_id"]


def ok(response: httpx.Response, model: type | None = None) -> Any:
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    if model is not None:
        TypeAdapter(model).validate_python(body)  # the payload is what the OpenAPI schema declares
    return body


def refused(response: httpx.Response, status: int, *words: str) -> str:
    assert response.status_code == status, response.text[:500]
    body = response.json()
    assert body["ok"] is False and body["status"] == status and isinstance(body["error"], str)
    assert "\n" not in body["error"]
    for w in words:
        assert w.lower() in body["error"].lower(), body["error"]
    return str(body["error"])


def stat(values: list[Any] | None, metric: str) -> float | None:
    return None if values is None else values[STATS.index(metric)]


# ----- the real process --------------------------------------------------------------------
class TestServerProcess:
    def test_health_status_docs(self, server: httpx.Client, tiny_id: str) -> None:
        assert ok(server.get("/api/health")) == {"ok": True}
        status = ok(server.get("/api/status"), S.StatusOut)
        assert status["current"] is not None and tiny_id in [c["capture_id"] for c in status["loaded"]]
        assert status["limits"]["max_upload_bytes"] == 200 * 1024 * 1024
        assert "swagger" in server.get("/docs").text.lower()
        paths = set(ok(server.get("/openapi.json"))["paths"])
        for p in ("/api/models", "/api/files", "/api/load", "/api/upload", "/api/status", "/api/health",
                  "/api/analyze", "/api/tensor-grid", "/api/heatmap", "/api/flows", "/api/colors",
                  "/api/trials/{trial_id}", "/api/trials/{trial_id}/steps/{n}", "/api/attention",
                  "/api/trials/{trial_id}/interpretation", "/api/captures"):  # fmt: skip
            assert p in paths

    def test_every_route_is_documented(self, server: httpx.Client) -> None:
        doc = (REPO / "docs" / "API.md").read_text()
        for path, methods in ok(server.get("/openapi.json"))["paths"].items():
            for method in methods:
                assert f"`{method.upper()} {path}" in doc, f"{method.upper()} {path} missing from docs/API.md"

    def test_files_newest_first_with_validity(self, server: httpx.Client, dirs: dict[str, Path]) -> None:
        files = ok(server.get("/api/files"), S.FilesOut)["files"]
        by_path = {f["path"]: f for f in files}
        assert by_path["tiny.json"]["valid"] and by_path["tiny.json"]["model"] == "tiny-llama"
        assert by_path["tiny.json"]["trials"] == 2 and by_path["tiny.json"]["version"] == VERSION
        assert by_path["legacy_v1.json"]["legacy"] is True and by_path["legacy_v1.json"]["version"] == "1.0"
        assert by_path["sub/nested.json"]["valid"]
        assert by_path["bad/garbage.json"]["valid"] is False and "JSON" in by_path["bad/garbage.json"]["error"]
        assert by_path["bad/not_capture.json"]["valid"] is False
        assert by_path["tiny.json"]["size"] == (dirs["data"] / "tiny.json").stat().st_size
        assert not any(p.startswith(("link_out", "fifo_out", "dir_out")) for p in by_path)  # leading out: unlisted
        modified = [f["modified"] for f in files]
        assert modified == sorted(modified, reverse=True)

    def test_load_summary_matches_file(self, server: httpx.Client, raw: dict[str, Any]) -> None:
        body = ok(server.post("/api/load", json={"filepath": "tiny.json"}), S.LoadOut)
        assert body["trials"] == len(raw["trials"]) == 2
        assert body["unique_tensors"] == len(raw["tensors"])
        assert body["captured_tensors"] == sum(t["captured"] for t in raw["tensors"])
        assert body["steps"] == sum(len(t["steps"]) for t in raw["trials"])
        assert body["model"]["n_layer"] == raw["model"]["n_layer"] and body["preset"] == "standard"
        assert body["attention_layers"] == [0, 1] and body["stat_names"] == raw["stat_names"]
        assert [t["prompt"] for t in body["trial_list"]] == [t["prompt"] for t in raw["trials"]]

    def test_capture_ids_and_switching(self, server: httpx.Client, tiny_id: str) -> None:
        again = ok(server.post("/api/load", json={"filepath": "tiny.json"}))["capture_id"]
        assert again == tiny_id  # the same unchanged file keeps its id
        full = ok(server.post("/api/load", json={"filepath": "full_attention.json"}))["capture_id"]
        assert full != tiny_id
        listed = ok(server.get("/api/captures"), S.CapturesOut)
        assert listed["current"] == full and {tiny_id, full} <= {c["capture_id"] for c in listed["captures"]}
        default = ok(server.get("/api/trials/0"))  # no capture_id: the last loaded
        chosen = ok(server.get("/api/trials/0", params={"capture_id": tiny_id}))
        assert default["capture_id"] == full and default["prompt"].startswith("one two")
        assert chosen["capture_id"] == tiny_id and chosen["prompt"] == "What is the capital of France?"
        refused(server.get("/api/trials/0", params={"capture_id": "c999"}), 404, "c999")
        ok(server.post("/api/load", json={"filepath": "tiny.json"}))  # leave tiny current for later tests

    def test_unknown_ids_are_404(self, server: httpx.Client, tiny_id: str) -> None:
        q = {"capture_id": tiny_id}
        refused(server.get("/api/trials/7", params=q), 404, "trial 7")
        refused(server.get("/api/trials/0/steps/99", params=q), 404, "step 99")
        refused(server.get("/api/trials/9/interpretation", params=q), 404, "trial 9")
        refused(server.post("/api/tensor-grid", json={"capture_id": tiny_id, "step": 50}), 404, "step 50")
        refused(server.get("/api/heatmap", params={**q, "trial_id": 3}), 404, "trial 3")
        refused(server.get("/api/heatmap", params={**q, "axis": "tokens", "type": "nope"}), 404, "nope")
        refused(server.get("/api/attention", params={**q, "layer": 5}), 404, "layer 5")
        refused(server.get("/api/attention", params={**q, "head": 4}), 404, "head 4")
        refused(server.get("/api/attention", params={**q, "step": 0, "token": 40}), 404, "40")
        refused(server.get("/api/nothing-here"), 404, "no such route")
        refused(server.delete("/api/captures/zz"), 404, "zz")

    def test_bad_parameters(self, server: httpx.Client, tiny_id: str) -> None:
        refused(server.post("/api/tensor-grid", json={"capture_id": tiny_id, "metric": "bogus"}), 422, "metric")
        refused(server.get("/api/heatmap", params={"axis": "diagonal"}), 422, "axis")
        refused(server.get("/api/heatmap", params={"axis": "tokens", "metric": "count"}), 400, "count")
        refused(server.post("/api/analyze", json={"model_family": "zzz"}), 400, "zzz")
        refused(server.get("/api/flows", params={"model_family": "zzz"}), 400, "zzz")
        refused(server.get("/api/trials/-1"), 422)
        refused(server.post("/api/load", content=b'{"filepath": "tiny.json"}', headers={"content-type": "text/plain"}),
                415, "application/json")  # fmt: skip
        refused(server.post("/api/load", content=b"{not json", headers={"content-type": "application/json"}), 422)

    # ----- numbers against the capture file ------------------------------------------------
    @pytest.mark.parametrize("metric", ["l2", "absmax", "sparsity", "mean"])
    @pytest.mark.parametrize("step", [0, 2])
    def test_tensor_grid_values(self, server: httpx.Client, tiny_id: str, raw: dict, metric: str, step: int) -> None:
        body = ok(server.post("/api/tensor-grid", json={"capture_id": tiny_id, "step": step, "metric": metric}),
                  S.GridOut)  # fmt: skip
        stats = raw["trials"][0]["steps"][step]["stats"]
        assert len(body["cells"]) == len(raw["tensors"])
        expected = {t["id"]: stat(stats.get(str(t["id"])), metric) for t in raw["tensors"]}
        present = [v for v in expected.values() if v is not None]
        assert body["min"] == pytest.approx(min(present)) and body["max"] == pytest.approx(max(present))
        assert body["phase"] == raw["trials"][0]["steps"][step]["phase"]
        for cell in body["cells"]:
            t = raw["tensors"][cell["id"]]
            assert (cell["layer"], cell["type"], cell["category"], cell["name"]) == (
                t["layer"], t["type"], t["category"], t["name"])  # fmt: skip
            assert body["layers"][cell["layer_index"]] == t["layer"] and body["types"][cell["type_index"]] == t["type"]
            want = expected[cell["id"]]
            if want is None:
                assert cell["value"] is None and cell["intensity"] is None
            else:
                assert cell["value"] == pytest.approx(want)
                span = max(present) - min(present)
                assert cell["intensity"] == pytest.approx((want - min(present)) / span if span else 0.5)
        assert body["layers"] == sorted({t["layer"] for t in raw["tensors"]})

    def test_tensor_grid_count_and_depth(self, server: httpx.Client, tiny_id: str, raw: dict) -> None:
        body = ok(server.post("/api/tensor-grid", json={"capture_id": tiny_id, "trial_id": 1, "metric": "count"}))
        counts = raw["trials"][1]["counts"]
        assert all(c["value"] == (counts[c["id"]] or None) for c in body["cells"])
        shallow = ok(server.post("/api/tensor-grid", json={"capture_id": tiny_id, "depth": 0}))
        assert {c["id"] for c in shallow["cells"]} == {t["id"] for t in raw["tensors"] if t["depth"] == 0}

    def test_heatmap_types(self, server: httpx.Client, tiny_id: str, raw: dict) -> None:
        body = ok(server.get("/api/heatmap", params={"capture_id": tiny_id, "step": 1, "metric": "std"}), S.HeatmapOut)
        stats = raw["trials"][0]["steps"][1]["stats"]
        read = [t for t in raw["tensors"] if str(t["id"]) in stats]
        assert body["rows"] == sorted({t["layer"] for t in read})
        assert {c["type"] for c in body["cols"]} == {t["type"] for t in read}
        for i, layer in enumerate(body["rows"]):
            for j, col in enumerate(body["cols"]):
                match = [t for t in read if t["layer"] == layer and t["type"] == col["type"]]
                want = stat(stats[str(match[0]["id"])], "std") if match else None
                assert body["values"][i][j] == (pytest.approx(want) if want is not None else None)

    def test_heatmap_tokens_timeline(self, server: httpx.Client, tiny_id: str, raw: dict) -> None:
        body = ok(server.get("/api/heatmap", params={"capture_id": tiny_id, "axis": "tokens", "type": "l_out"}),
                  S.HeatmapOut)  # fmt: skip
        trial = raw["trials"][0]
        texts, n_prompt = trial["tokens"]["texts"], trial["tokens"]["n_prompt"]
        assert body["rows"] == [0, 1] and [c["text"] for c in body["cols"]] == texts
        assert [c["prompt"] for c in body["cols"]] == [j < n_prompt for j in range(len(texts))]
        l_out = {t["layer"]: str(t["id"]) for t in raw["tensors"] if t["type"] == "l_out"}
        prefill = trial["steps"][0]
        for j in range(n_prompt):  # layer 0: one row per prompt token
            assert body["values"][0][j] == pytest.approx(prefill["rows"][l_out[0]][j][0])
        # last block: llama.cpp keeps only the prompt's last row
        assert body["values"][1][: n_prompt - 1] == [None] * (n_prompt - 1)
        assert body["values"][1][n_prompt - 1] == pytest.approx(prefill["stats"][l_out[1]][0])
        for st in trial["steps"][1:]:
            for i, layer in enumerate(body["rows"]):
                assert body["values"][i][st["pos"]] == pytest.approx(st["stats"][l_out[layer]][0])
        assert body["values"][0][-1] is None  # the last generated token was never evaluated

    def test_analyze_against_numpy(self, server: httpx.Client, tiny_id: str, raw: dict) -> None:
        body = ok(server.post("/api/analyze", json={"capture_id": tiny_id, "model_size": "7b"}), S.AnalyzeOut)
        assert body["model_family"] == "llama" and body["trial_id"] is None
        per_tensor: dict[int, list[list[float]]] = {}
        for trial in raw["trials"]:
            for st in trial["steps"]:
                for k, v in st["stats"].items():
                    per_tensor.setdefault(int(k), []).append(v)
        means = {k: np.mean(np.asarray(v, dtype=np.float64), axis=0) for k, v in per_tensor.items()}
        for group in body["layers"]:
            ids = [t["id"] for t in raw["tensors"] if t["layer"] == group["layer"]]
            assert group["tensors"] == len(ids)
            assert group["evaluations"] == sum(tr["counts"][i] for tr in raw["trials"] for i in ids)
            have = [means[i] for i in ids if i in means]
            for s, name in enumerate(STATS):
                want = float(np.mean([m[s] for m in have])) if have else None
                assert group["stats"][name] == (pytest.approx(want, rel=1e-6) if want is not None else None)
        top = body["top_tensors"]
        l2 = sorted(((float(m[0]), k) for k, m in means.items()), reverse=True)
        assert [t["id"] for t in top] == [k for _, k in l2[: len(top)]]
        assert top[0]["l2"] == pytest.approx(l2[0][0])
        one = ok(server.post("/api/analyze", json={"capture_id": tiny_id, "trial_id": 1}))
        assert one["totals"]["steps"] == len(raw["trials"][1]["steps"])

    def test_trial_and_step(self, server: httpx.Client, tiny_id: str, raw: dict) -> None:
        trial = raw["trials"][1]
        body = ok(server.get("/api/trials/1", params={"capture_id": tiny_id}), S.TrialOut)
        assert [t["text"] for t in body["tokens"]] == trial["tokens"]["texts"]
        assert [t["id"] for t in body["tokens"]] == trial["tokens"]["ids"]
        assert body["response"] == trial["response"] and body["n_prompt"] == trial["tokens"]["n_prompt"]
        for s, st in zip(body["steps"], trial["steps"], strict=True):
            assert s["phase"] == st["phase"] and s["positions"] == list(range(st["pos"], st["pos"] + st["n_tokens"]))
            assert s["next_token"]["id"] == st["logits"]["ids"][0]
            for p in s["positions"]:
                assert body["tokens"][p]["step"] == st["index"]
        step = ok(server.get("/api/trials/1/steps/0", params={"capture_id": tiny_id}), S.StepOut)
        st = trial["steps"][0]
        assert {t["id"] for t in step["tensors"]} == {int(k) for k in st["stats"]}
        for t in step["tensors"]:
            assert t["stats"] == pytest.approx(st["stats"][str(t["id"])])
            assert t["rows"] == st["rows"].get(str(t["id"]))
            assert t["name"] == raw["tensors"][t["id"]]["name"]
        for a in step["attention"]:
            ent = st["attention"][str(a["tensor_id"])]["entropy"]
            assert a["mean_entropy"] == pytest.approx([float(np.mean(h)) for h in ent])

    def test_attention_matches_capture(self, server: httpx.Client, tiny_id: str, raw: dict) -> None:
        body = ok(server.get("/api/attention", params={"capture_id": tiny_id, "step": 0}), S.AttentionOut)
        trial = raw["trials"][0]
        texts = trial["tokens"]["texts"]
        st = trial["steps"][0]
        att_ids = {t["layer"]: str(t["id"]) for t in raw["tensors"] if t["type"] == "kq_soft_max"}
        assert body["fingerprint_names"] == list(interpret.FINGERPRINT_NAMES)
        assert [t["pos"] for t in body["tokens"]] == list(range(st["n_tokens"]))
        strip = {z["pos"]: z["zone"] for z in interpret.token_zones(raw, 0)}
        for tok in body["tokens"]:
            r = tok["pos"]
            assert tok["text"] == texts[r] and tok["zone"] == strip[r]
            assert [lay["layer"] for lay in tok["layers"]] == [0, 1]
            for lay in tok["layers"]:
                att = st["attention"][att_ids[lay["layer"]]]
                heads = len(att["pos"])
                assert lay["entropy"] == pytest.approx([att["entropy"][h][r] for h in range(heads)])
                for h in range(heads):
                    edges = [e for e in lay["edges"] if e["head"] == h]
                    # top-k in capture order; masked future positions (p = 0) are left out
                    kept = [(k, p) for k, p in zip(att["pos"][h][r], att["p"][h][r], strict=True) if k <= r]
                    assert all(p == 0 for k, p in zip(att["pos"][h][r], att["p"][h][r], strict=True) if k > r)
                    assert [e["pos"] for e in edges] == [k for k, _ in kept]
                    assert [e["p"] for e in edges] == pytest.approx([p for _, p in kept])
                    for e in edges:
                        assert e["distance"] == r - e["pos"] and e["sink"] == (e["pos"] == 0)
                        assert e["token_text"] == texts[e["pos"]]
                fp = _numpy_fingerprint(att, r, st["pos"])
                assert lay["fingerprint"] == pytest.approx(fp, abs=1e-5)
                assert lay["coverage"] == pytest.approx(float(np.mean([sum(att["p"][h][r]) for h in range(heads)])))

    def test_attention_filters(self, server: httpx.Client, tiny_id: str, raw: dict) -> None:
        q = {"capture_id": tiny_id, "layer": 1, "head": 2, "token": 17}
        body = ok(server.get("/api/attention", params=q), S.AttentionOut)
        (tok,) = body["tokens"]
        (lay,) = tok["layers"]
        st = next(s for s in raw["trials"][0]["steps"] if s["pos"] == 17)
        att = st["attention"][next(str(t["id"]) for t in raw["tensors"] if t["name"] == "kq_soft_max-1")]
        assert tok["step"] == st["index"] and lay["layer"] == 1
        assert {e["head"] for e in lay["edges"]} == {2} and [e["pos"] for e in lay["edges"]] == att["pos"][2][0]
        assert all(e["distance"] == 17 - e["pos"] >= 0 for e in lay["edges"])
        assert lay["entropy"] == pytest.approx([att["entropy"][2][0]])
        whole = ok(server.get("/api/attention", params={"capture_id": tiny_id}))
        n_evaluated = sum(s["n_tokens"] for s in raw["trials"][0]["steps"])
        assert len(whole["tokens"]) == n_evaluated and all(len(t["layers"]) == 2 for t in whole["tokens"])

    def test_interpretation(self, server: httpx.Client, tiny_id: str, raw: dict) -> None:
        body = ok(server.get("/api/trials/1/interpretation", params={"capture_id": tiny_id}), S.InterpretationOut)
        zones = interpret.token_zones(raw, 1)
        assert [(z["pos"], z["zone"]) for z in body["zones"]] == [(z["pos"], z["zone"]) for z in zones]
        assert [z["text"] for z in body["zones"]] == [raw["trials"][1]["tokens"]["texts"][z["pos"]] for z in zones]
        assert body["zone_distribution"] == pytest.approx(interpret.zone_distribution(zones))
        dist = body["zone_distribution"]
        assert body["dominant_zone"] == max(dist, key=lambda z: dist[z])
        states = interpret.cognitive_states(raw, 1)
        assert [s["label"] for s in body["states"]] == [s["label"] for s in states]
        assert [s["confidence"] for s in body["states"]] == pytest.approx([s["confidence"] for s in states])
        assert body["states"][0]["delta"] == []
        names = {t["id"]: t["name"] for t in raw["tensors"]}
        for mine, ref in zip(body["states"][1:], states[1:], strict=True):
            assert {d["id"]: d["value"] for d in mine["delta"]} == pytest.approx(
                {int(k): v for k, v in ref["delta"].items()})  # fmt: skip
            assert all(d["name"] == names[d["id"]] for d in mine["delta"])

    def test_logit_lens_grid_and_cell(self, server: httpx.Client, tiny_id: str, tiny_capture_path: Path) -> None:
        grid = ok(server.get("/api/trials/0/lens", params={"capture_id": tiny_id}), S.LensGridOut)
        doc = orjson.loads(tiny_capture_path.read_bytes())
        trial = doc["trials"][0]
        ids, n_prompt = trial["tokens"]["ids"], trial["tokens"]["n_prompt"]
        assert grid["layers"] == list(range(doc["model"]["n_layer"])) and grid["tokens"] == trial["tokens"]["texts"]
        last = grid["top_ids"][-1]
        for pos in range(n_prompt - 1, len(ids) - 1):  # greedy: the last layer predicts the next token
            assert last[pos] == ids[pos + 1] and grid["next_rank"][-1][pos] == 0
            assert grid["first_final_layer"][pos] is not None and grid["first_final_layer"][pos] <= grid["layers"][-1]
            L = grid["first_final_layer"][pos]
            assert grid["top_ids"][grid["layers"].index(L)][pos] == last[pos]
            assert all(row[pos] != last[pos] for row in grid["top_ids"][: grid["layers"].index(L)])
        cell = ok(server.get("/api/trials/0/lens", params={"capture_id": tiny_id, "layer": 0, "token": 2, "k": 3}),
                  S.LensCellOut)  # fmt: skip
        assert [t["id"] for t in cell["top"]][0] == grid["top_ids"][0][2] and len(cell["top"]) == 3
        assert [t["p"] for t in cell["top"]] == sorted((t["p"] for t in cell["top"]), reverse=True)
        assert cell["next_id"] == ids[3] and cell["top"][0]["text"] == grid["top_texts"][0][2]
        bad = server.get("/api/trials/0/lens", params={"capture_id": tiny_id, "layer": 0})
        assert bad.status_code == 400 and "give both layer and token" in bad.json()["error"]
        far = server.get("/api/trials/0/lens", params={"capture_id": tiny_id, "layer": 40, "token": 0})
        assert far.status_code == 404 and "no lens for layer" in far.json()["error"]

    def test_models_colors_flows(self, server: httpx.Client, tiny_id: str) -> None:
        from spectra_vis.record.profiles import CATEGORY_COLORS, SUPPORTED_MODELS, flows_for

        models = ok(server.get("/api/models"), S.ModelsOut)
        assert models["models"] == SUPPORTED_MODELS and models["profiles"]["gemma"]["post_norms"] is True
        # the facts the viewer does not retype, against a real capture: its statistics, its depths, its layers
        loaded = ok(server.post("/api/load", json={"filepath": "tiny.json"}))
        assert models["metrics"] == [*loaded["stat_names"], "count"]
        grid = ok(server.post("/api/tensor-grid", json={"capture_id": loaded["capture_id"]}))
        assert max(c["depth"] for c in grid["cells"]) == len(models["depth_levels"]) - 1
        block = {L for L in loaded["layers"] if 0 <= L < loaded["model"]["n_layer"]}
        assert set(models["special_layers"].values()) == set(loaded["layers"]) - block
        colors = ok(server.get("/api/colors"), S.ColorsOut)
        assert colors["categories"] == CATEGORY_COLORS and set(colors["zones"]) == set(interpret.ZONES)
        assert set(colors["states"]) == set(interpret.STATES)
        gemma = ok(server.get("/api/flows", params={"model_family": "gemma"}), S.FlowsOut)
        assert gemma["flows"]["ffn_flow"] == [list(e) for e in flows_for("gemma")["ffn_flow"]]
        assert ok(server.get("/api/flows"))["family"] == "llama"  # the current capture's family

    # ----- version 1.0 ----------------------------------------------------------------------
    def test_legacy_capture(self, server: httpx.Client) -> None:
        body = ok(server.post("/api/load", json={"filepath": "legacy_v1.json"}), S.LoadOut)
        cid = body["capture_id"]
        assert body["legacy"] is True and body["version"] == "1.0" and body["unique_tensors"] == 3
        grid = ok(server.post("/api/tensor-grid", json={"capture_id": cid, "metric": "count"}), S.GridOut)
        counts = LEGACY["trials"][0]["tensor_counts"]  # type: ignore[index]
        assert {c["name"]: c["value"] for c in grid["cells"]} == {k: float(v) for k, v in counts.items()}
        assert grid["min"] == 7 and grid["max"] == 14
        refused(server.post("/api/tensor-grid", json={"capture_id": cid}), 404, "metric=count")
        heat = ok(server.get("/api/heatmap", params={"capture_id": cid, "metric": "count"}), S.HeatmapOut)
        assert heat["rows"] == [-1] and heat["values"] == [[7.0]]  # three "other" tensors: the first wins
        trial = ok(server.get("/api/trials/0", params={"capture_id": cid}), S.TrialOut)
        assert trial["prompt"] == "What is the capital of France?" and trial["timings"]["total_ms"] == 123.5
        att = ok(server.get("/api/attention", params={"capture_id": cid}), S.AttentionOut)
        assert att["tokens"] == [] and att["attention_layers"] == []
        interp = ok(server.get("/api/trials/0/interpretation", params={"capture_id": cid}), S.InterpretationOut)
        assert interp["zones"] == [] and interp["dominant_zone"] is None and interp["states"] == []
        ok(server.post("/api/analyze", json={"capture_id": cid}), S.AnalyzeOut)

    # ----- safety -------------------------------------------------------------------------
    @pytest.mark.parametrize(
        ("path", "status", "word"),
        [
            ("../outside/secret.json", 400, ".."),
            ("sub/../../outside/secret.json", 400, ".."),
            ("..\\outside\\secret.json", 400, ".."),
            ("/etc/passwd", 400, "absolute"),
            ("\\\\server\\share\\x.json", 400, "absolute"),
            ("C:\\Windows\\win.ini", 400, "absolute"),
            ("~/secret.json", 400, "absolute"),
            ("", 400, "empty"),
            ("link_out.json", 403, "outside"),
            ("fifo_out.json", 403, "outside"),  # opening the FIFO would hang: it is refused unopened
            ("dir_out/secret.json", 403, "outside"),
            ("bad", 400, "not a file"),
            ("missing.json", 404, "no file"),
        ],
    )
    def test_paths_outside_refused(self, server: httpx.Client, path: str, status: int, word: str) -> None:
        refused(server.post("/api/load", json={"filepath": path}), status, word)

    def test_symlink_inside_is_fine(self, server: httpx.Client) -> None:
        assert ok(server.post("/api/load", json={"filepath": "alias.json"}))["trials"] == 2
        assert ok(server.post("/api/load", json={"filepath": "sub/nested.json"}))["trials"] == 2

    @pytest.mark.parametrize(
        ("name", "words"),
        [
            ("garbage.json", ["garbage.json", "not valid JSON"]),
            ("truncated.json", ["truncated"]),
            ("wrong_schema.json", [f"format v{VERSION}", "tensors"]),
            ("not_capture.json", ["not a Spectra Vis capture"]),
            ("empty.json", ["empty"]),
        ],
    )
    def test_bad_files_are_422(self, server: httpx.Client, name: str, words: list[str]) -> None:
        refused(server.post("/api/load", json={"filepath": f"bad/{name}"}), 422, *words)

    def test_vectors_load_beside_their_capture_and_upload_as_a_pair(
        self, server: httpx.Client, dirs: dict[str, Path], tiny_capture_path: Path
    ) -> None:
        data = dirs["data"]
        assert ok(server.post("/api/load", json={"filepath": "tiny.json"}), S.LoadOut)["notices"] == []
        nested = ok(server.post("/api/load", json={"filepath": "sub/nested.json"}), S.LoadOut)
        assert len(nested["notices"]) == 1 and "capture_tiny.vectors.safetensors is missing" in nested["notices"][0]
        outside = server.post("/api/load", json={"filepath": "linked/linked.json"})
        assert outside.status_code == 403 and "outside the data directory" in outside.json()["error"]
        raw = tiny_capture_path.read_bytes()
        vec = tiny_capture_path.with_name("capture_tiny.vectors.safetensors").read_bytes()
        octet = "application/octet-stream"
        pair = {"file": ("pair.json", raw, "application/json"), "vectors": ("any.safetensors", vec, octet)}
        up = ok(server.post("/api/upload", files=pair), S.UploadOut)
        saved = data / up["saved_as"]
        companion = saved.with_name(saved.name.removesuffix(".json") + ".vectors.safetensors")
        assert up["notices"] == [] and companion.read_bytes() == vec
        assert orjson.loads(saved.read_bytes())["vectors"]["file"] == companion.name
        listing = sorted(p.name for p in data.iterdir())
        broken = {"file": ("broken.json", raw, "application/json"), "vectors": ("v", vec[:-1] + b"\x00", octet)}
        refused = server.post("/api/upload", files=broken)
        assert refused.status_code == 422 and "sha256 differs" in refused.json()["error"]
        assert sorted(p.name for p in data.iterdir()) == listing  # nothing left behind
        alone = ok(server.post("/api/upload", files={"file": ("alone.json", raw, "application/json")}), S.UploadOut)
        assert alone["notices"] == ["no vectors file was uploaded with alone.json: statistics only"]

    def test_upload_validates_and_never_overwrites(
        self, server: httpx.Client, dirs: dict[str, Path], tiny_capture_path: Path
    ) -> None:
        data = dirs["data"]
        before = (data / "tiny.json").read_bytes()
        content = tiny_capture_path.read_bytes()
        body = ok(server.post("/api/upload", files={"file": ("tiny.json", content, "application/json")}), S.UploadOut)
        assert body["saved_as"] == "tiny-1.json" and body["trials"] == 2
        assert (data / "tiny.json").read_bytes() == before and (data / "tiny-1.json").read_bytes() == content
        second = ok(server.post("/api/upload", files={"file": ("tiny.json", content, "application/octet-stream")}))
        assert second["saved_as"] == "tiny-2.json"
        evil = {"file": ("../../outside/evil.json", content, "application/json")}
        sneaky = ok(server.post("/api/upload", files=evil))
        assert sneaky["saved_as"] == "evil.json" and (data / "evil.json").exists()
        assert not (dirs["outside"] / "evil.json").exists()
        assert ok(server.get("/api/trials/0", params={"capture_id": second["capture_id"]}))["id"] == 0
        listing = sorted(p.name for p in data.iterdir())
        refused(server.post("/api/upload", files={"file": ("x.json", content[:5000], "application/json")}), 422,
                "x.json", "truncated")  # fmt: skip
        refused(server.post("/api/upload", files={"file": ("x.json", b'{"a": 1}', "application/json")}), 422, "x.json")
        refused(server.post("/api/upload", files={"file": ("x.png", b"\x89PNG....", "image/png")}), 415, "image/png")
        refused(server.post("/api/upload", json={"filepath": "tiny.json"}), 422, "file")
        assert sorted(p.name for p in data.iterdir()) == listing  # refused uploads leave nothing behind

    def test_cors_same_origin_only(self, server: httpx.Client) -> None:
        r = server.get("/api/health", headers={"Origin": "http://evil.example"})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
        preflight = {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
        pre = server.options("/api/load", headers=preflight)
        assert "access-control-allow-origin" not in pre.headers

    def test_no_frontend_notice(self, server: httpx.Client) -> None:
        if (REPO / "frontend" / "dist" / "index.html").exists():
            pytest.skip("the frontend is built in this checkout")
        r = server.get("/")
        assert r.status_code == 200 and "/docs" in r.text


def _numpy_fingerprint(att: dict[str, Any], r: int, step_pos: int) -> list[float]:
    """The 20-number fingerprint averaged over heads, recomputed from the capture (docs/ATTENTION.md)."""
    q = step_pos + r
    fps = []
    for h in range(len(att["pos"])):
        pos = np.asarray(att["pos"][h][r])
        p = np.asarray(att["p"][h][r], dtype=np.float64)
        d = q - pos
        p, d = p[d >= 0], d[d >= 0]  # masked future positions carry no mass
        fp = np.zeros(20)
        fp[0], fp[1], fp[2] = p[d < 8].sum(), p[(d >= 8) & (d < 256)].sum(), p[d >= 256].sum()
        fp[3] = att["entropy"][h][r] / math.log(att["n_kv"]) if att["n_kv"] > 1 else 0.0
        np.add.at(fp, 4 + np.minimum(np.floor(np.log2(d + 1)).astype(int), 15), p)
        fps.append(fp)
    return list(np.mean(fps, axis=0))


# ----- apps built with create_app ----------------------------------------------------------
class TestConfiguredApps:
    def test_full_attention_topk_and_entropy_from_whole_rows(self, full_capture_path: Path, dirs: dict) -> None:
        """Top-k edges and entropies the API serves agree with numpy over the captured whole rows."""
        from backend.server import create_app

        raw = orjson.loads(full_capture_path.read_bytes())
        with serve(create_app(dirs["data"])) as client:
            cid = ok(client.post("/api/load", json={"filepath": "full_attention.json"}))["capture_id"]
            body = ok(client.get("/api/attention", params={"capture_id": cid}), S.AttentionOut)
        steps = raw["trials"][0]["steps"]
        att_ids = {t["layer"]: str(t["id"]) for t in raw["tensors"] if t["type"] == "kq_soft_max"}
        checked = 0
        for tok in body["tokens"]:
            st = steps[tok["step"]]
            r = tok["pos"] - st["pos"]
            for lay in tok["layers"]:
                full = np.asarray(st["attention"][att_ids[lay["layer"]]]["full"], dtype=np.float64)
                for h in range(full.shape[0]):
                    row = full[h][r]
                    nz = row[row > 0]
                    assert lay["entropy"][h] == pytest.approx(float(-(nz * np.log(nz)).sum()), abs=1e-4)
                    edges = [e for e in lay["edges"] if e["head"] == h]
                    top = np.sort(row)[::-1][: len(edges)]
                    assert [e["p"] for e in edges] == pytest.approx(list(top), abs=1e-6)
                    for e in edges:
                        assert e["p"] == pytest.approx(row[e["pos"]], abs=1e-6)
                    checked += 1
        assert checked == sum(s["n_tokens"] for s in steps) * 2 * 4

    def test_trace_export_and_upload_round_trip(self, server: httpx.Client, tiny_id: str, dirs: dict) -> None:
        reply = server.get("/api/trials/1/trace", params={"capture_id": tiny_id})
        assert reply.status_code == 200 and reply.headers["content-type"].startswith("application/x-ndjson")
        assert 'filename="tiny_trial1.jsonl"' in reply.headers["content-disposition"]
        # streamed as it is produced (no length known up front), and the same bytes as the export
        assert reply.headers.get("transfer-encoding") == "chunked" and "content-length" not in reply.headers
        from spectra_vis import load_capture
        from spectra_vis.analysis.trace import export_trial

        assert reply.content == export_trial(load_capture(dirs["data"] / "tiny.json"), 1)
        records = [orjson.loads(line) for line in reply.content.splitlines()]
        assert [r["record_type"] for r in records[:1] + records[-1:]] == ["header", "metrics"]
        original = ok(server.get("/api/trials/1", params={"capture_id": tiny_id}), S.TrialOut)
        assert sum(r["record_type"] == "token" for r in records) == len(original["tokens"])
        back = ok(server.post("/api/upload", files={"file": ("t.jsonl", reply.content, "application/x-ndjson")}))
        assert back["saved_as"] == "t.json" and back["trials"] == 1
        again = ok(server.get("/api/trials/0", params={"capture_id": back["capture_id"]}), S.TrialOut)
        assert {k: v for k, v in again.items() if k not in ("id", "capture_id")} == {
            k: v for k, v in original.items() if k not in ("id", "capture_id")
        }
        refused(server.get("/api/trials/9/trace", params={"capture_id": tiny_id}), 404, "trial")
        legacy = ok(server.post("/api/load", json={"filepath": "legacy_v1.json"}))["capture_id"]
        refused(server.get("/api/trials/0/trace", params={"capture_id": legacy}), 422, "1.0")
        bad = b'{"record_type": "token", "index": 0}\n{"record_type": "step"}\n'
        refused(server.post("/api/upload", files={"file": ("b.jsonl", bad, "application/x-ndjson")}), 422, "header")

    def test_upload_limit_413(self, dirs: dict, tmp_path: Path, tiny_capture_path: Path) -> None:
        from backend.server import create_app

        content = tiny_capture_path.read_bytes()
        with serve(create_app(tmp_path, max_upload_bytes=len(content) - 1, max_load_bytes=1000)) as client:
            refused(client.post("/api/upload", files={"file": ("big.json", content, "application/json")}), 413, "limit")
            assert list(tmp_path.iterdir()) == []
            big = b"{" + b" " * (3 * len(content)) + b"}"  # refused from its Content-Length, body unread
            refused(client.post("/api/upload", files={"file": ("big.json", big, "application/json")}), 413, "limit")
            shutil.copy(tiny_capture_path, tmp_path / "on_disk.json")
            refused(client.post("/api/load", json={"filepath": "on_disk.json"}), 413, "limit")
            assert client.get("/api/status").json()["limits"]["max_upload_bytes"] == len(content) - 1

    def test_capture_limit_and_drop(self, tmp_path: Path, tiny_capture_path: Path) -> None:
        from backend.server import create_app

        for name in ("a.json", "b.json", "c.json"):
            shutil.copy(tiny_capture_path, tmp_path / name)
        with serve(create_app(tmp_path, max_captures=2)) as client:
            a, b, c = (
                ok(client.post("/api/load", json={"filepath": n}))["capture_id"] for n in ("a.json", "b.json", "c.json")
            )
            assert len({a, b, c}) == 3
            assert [x["capture_id"] for x in ok(client.get("/api/captures"))["captures"]] == [b, c]
            refused(client.get("/api/trials/0", params={"capture_id": a}), 404, a)  # the oldest was dropped
            assert ok(client.delete(f"/api/captures/{c}"), S.DropOut) == {"ok": True, "current": b}
            assert ok(client.get("/api/trials/0"))["capture_id"] == b
            assert ok(client.delete(f"/api/captures/{b}"))["current"] is None
            refused(client.get("/api/trials/0"), 404, "no capture is loaded")
            assert ok(client.get("/api/flows"))["family"] == "llama"

    def test_cors_configured(self, tmp_path: Path) -> None:
        from backend.server import create_app

        with serve(create_app(tmp_path, cors_origins=["http://localhost:3000"])) as client:
            good = client.get("/api/health", headers={"Origin": "http://localhost:3000"})
            assert good.headers["access-control-allow-origin"] == "http://localhost:3000"
            bad = client.get("/api/health", headers={"Origin": "http://evil.example"})
            assert "access-control-allow-origin" not in bad.headers

    def test_frontend_served_with_spa_fallback(self, tmp_path: Path) -> None:
        from backend.server import create_app

        dist = tmp_path / "dist"
        (dist / "assets").mkdir(parents=True)
        (dist / "index.html").write_text("<!doctype html><div id=root>viewer</div>")
        (dist / "assets" / "app.js").write_text("console.log('viewer')")
        (tmp_path / "secret.txt").write_text("outside dist")
        with serve(create_app(tmp_path / "data", frontend_dir=dist)) as client:
            assert "viewer" in client.get("/").text
            js = client.get("/assets/app.js")
            assert js.status_code == 200 and "console.log" in js.text
            assert "id=root" in client.get("/trials/3/lens").text  # client-side route: index.html
            refused(client.get("/assets/missing.js"), 404)
            refused(client.get("/api/unknown"), 404, "no such route")
            assert "outside dist" not in client.get("/..%2fsecret.txt").text
            assert "outside dist" not in client.get("/assets/..%2f..%2fsecret.txt").text
            assert ok(client.get("/api/health")) == {"ok": True}

    def test_data_dir_from_environment(self, tmp_path: Path, tiny_capture_path: Path) -> None:
        shutil.copy(tiny_capture_path, tmp_path / "env.json")
        code = "from backend.server import app; print(app.state.store.root)"
        out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                             env={**os.environ, "SPECTRA_DATA_DIR": str(tmp_path)})  # fmt: skip
        assert out.stdout.strip() == str(tmp_path.resolve())


class TestChatCapture:
    def test_trial_payload_carries_chat_prompt_text_and_template_marks(
        self, chat_capture_path: Path, tmp_path: Path
    ) -> None:
        """A capture of a templated tiny model over real HTTP: the fields and marks are the capture's."""
        from backend.server import create_app

        shutil.copy(chat_capture_path, tmp_path / "chat.json")
        raw = orjson.loads(chat_capture_path.read_bytes())
        trial = raw["trials"][0]
        with serve(create_app(tmp_path)) as client:
            loaded = ok(client.post("/api/load", json={"filepath": "chat.json"}), S.LoadOut)
            body = ok(client.get("/api/trials/0", params={"capture_id": loaded["capture_id"]}), S.TrialOut)
        assert loaded["model"]["chat_template"] is True and loaded["trial_list"][0]["chat"] is True
        assert body["chat"] is True and body["prompt_text"] == trial["prompt_text"] != trial["prompt"]
        n = trial["tokens"]["n_prompt"]
        marks = [t["template"] for t in body["tokens"]]
        assert marks[:n] == trial["tokens"]["template"] and not any(marks[n:])
        assert len(marks) == len(trial["tokens"]["ids"]) > n
        user = [t["text"] for t in body["tokens"] if t["prompt"] and not t["template"]]
        assert "".join(user) == trial["prompt"]  # the user's tokens spell the user's message
        assert {"<s>", "<|user|>", "<|end|>", "<|assistant|>"} <= {t["text"] for t in body["tokens"] if t["template"]}


def test_each_error_of_the_library_has_one_status_chosen_by_the_server() -> None:
    """Status codes live only in backend/server.py; the library's errors know none."""
    from backend.server import status_of
    from spectra_vis import errors as E

    expected = {
        E.InvalidArgument: 400,
        E.ModelFileError: 400,
        E.WrongFileType: 415,
        E.Forbidden: 403,
        E.NotFound: 404,
        E.TooLarge: 413,
        E.CaptureError: 422,
        E.LlamaBuildError: 500,
    }
    for kind, status in expected.items():
        assert status_of(kind("x")) == status, kind
    assert str(E.NotFound("no trial 9")) == "no trial 9"  # a KeyError, printed without quotes
    assert not any("status" in vars(k) for k in vars(E).values() if isinstance(k, type))


def test_response_payloads_are_typed_dicts_defined_once() -> None:
    """Requests are pydantic models; every response is a TypedDict of analysis.payloads or schemas."""
    import typing

    from pydantic import BaseModel
    from typing_extensions import is_typeddict

    from backend import schemas
    from spectra_vis.analysis import payloads

    for name, obj in vars(schemas).items():
        if isinstance(obj, type) and name.endswith("Out"):
            assert is_typeddict(obj) and not issubclass(obj, BaseModel), name
    models = {n: o for n, o in vars(schemas).items() if isinstance(o, type) and issubclass(o, BaseModel)}
    requests = {n for n, o in models.items() if o is not BaseModel}
    assert requests == {"LoadRequest", "AnalyzeRequest", "GridRequest", "RunIn", "RunControlIn"}
    # a capture-scoped reply is its analysis payload plus capture_id, nothing retyped
    for out, base in [(schemas.GridOut, payloads.Grid), (schemas.TrialOut, payloads.TrialDetail)]:
        assert set(typing.get_type_hints(out)) == set(typing.get_type_hints(base)) | {"capture_id"}
