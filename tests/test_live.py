"""Live runs without HTTP: ``spectra_vis.live`` on real llama.cpp and tiny GGUF models.

The run manager executes a real capture in its worker; its events are checked against the capture it
saved (read back as JSON and through ``Capture.load``) and against numpy. The event log's backlog and
drop rules are checked on hand-published events.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from spectra_vis.errors import Busy, NotFound
from spectra_vis.live import EventLog, RunManager, RunRequest
from spectra_vis.store.capture_file import Capture

FINAL = ("done", "cancelled", "failed")


def parse(raw: bytes) -> list[dict[str, Any]]:
    """SSE frames -> [{"id", "event", "data"}]."""
    out = []
    for frame in raw.decode().split("\n\n"):
        if not frame.strip():
            continue
        fields = dict(line.split(": ", 1) for line in frame.split("\n"))
        out.append({"id": int(fields["id"]), "event": fields["event"], "data": orjson.loads(fields["data"])})
    return out


def wait_final(manager: RunManager, run_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = manager.get(run_id).info()
        if info["state"] in FINAL and manager.get(run_id).log.closed:
            return info
        time.sleep(0.02)
    raise AssertionError(f"run {run_id} did not end: {manager.get(run_id).info()}")


def saved_l2(raw: dict[str, Any], trial: int, index: int, layer: int) -> float:
    """The L2 of a step's last row of layer ``layer``'s l_out, as the saved capture has it."""
    tid = next(t["id"] for t in raw["tensors"] if t["type"] == "l_out" and t["layer"] == layer)
    step = raw["trials"][trial]["steps"][index]
    rows = step["rows"].get(str(tid))
    return float(rows[-1][0]) if rows else float(step["stats"][str(tid)][0])


@pytest.fixture()
def manager(tmp_path: Path):
    m = RunManager(tmp_path / "data")
    yield m
    m.shutdown()
    m.join(60)


def test_a_run_streams_what_it_saves(manager: RunManager, tiny_llama: Path) -> None:
    prompts = ["What is the capital of France?", "One two three"]
    run = manager.submit(RunRequest("tiny-llama.gguf", tiny_llama, prompts, "standard", max_tokens=6, seed=0))
    sub = run.log.subscribe(0)
    info = wait_final(manager, run.id)
    assert info["state"] == "done" and info["file"] and info["progress"] == 1.0, info
    events, over = parse(sub.take()[0]), True
    assert over and [e["id"] for e in events] == list(range(1, len(events) + 1))
    states = [e["data"]["state"] for e in events if e["event"] in ("state", "done")]
    assert states == ["queued", "loading", "running", "saving", "done"]
    path = manager.root / info["file"]
    raw = orjson.loads(path.read_bytes())
    cap = Capture.load(path)
    assert raw["options"]["run"] == run.id and len(raw["trials"]) == 2
    for t, trial in enumerate(raw["trials"]):
        steps = [e["data"] for e in events if e["event"] == "step" and e["data"]["trial"] == t]
        n_prompt = trial["tokens"]["n_prompt"]
        assert [s["token_id"] for s in steps if s["token_id"] is not None] == trial["tokens"]["ids"][n_prompt:]
        assert [s["index"] for s in steps] == list(range(len(trial["steps"])))
        header = next(e["data"] for e in events if e["event"] == "trial" and e["data"]["trial"] == t)
        assert header["token_ids"] == trial["tokens"]["ids"][:n_prompt] and header["prompt"] == prompts[t]
        for s in steps:
            assert s["top"][0]["id"] == s["token_id"]  # greedy: the sampled token is the logits' argmax
            for L, l2 in zip(s["layers"], s["l2"], strict=True):
                assert l2 == pytest.approx(saved_l2(raw, t, s["index"], L), rel=1e-6)
                row = cap.vectors(t, f"blocks.{L}.hook_resid_post")[s["pos"]]
                assert l2 == pytest.approx(float(np.linalg.norm(row.astype(np.float64))), rel=2e-3)
            if s["lens_top1"] is not None:  # the live lens is the saved lens's top-1 at that position
                for cell in s["lens_top1"]:
                    j = trial["lens"]["layers"].index(cell["layer"])
                    assert cell["id"] == trial["lens"]["ids"][j][s["pos"]][0]
                    assert cell["p"] == pytest.approx(trial["lens"]["p"][j][s["pos"]][0], abs=1e-5)
    assert any(e["data"]["lens_top1"] for e in events if e["event"] == "step"), "no step carried the lens"


def test_cancel_keeps_the_steps_and_a_queued_run_never_starts(manager: RunManager, tiny_llama: Path) -> None:
    long = RunRequest("tiny-llama.gguf", tiny_llama, ["Count: one two three"] * 8, "full", max_tokens=1024, seed=0)
    first = manager.submit(long)
    second = manager.submit(RunRequest("tiny-llama.gguf", tiny_llama, ["Hi"], "observe", max_tokens=2))
    assert manager.get(second.id).state == "queued"
    sub = first.log.subscribe(0)
    deadline = time.monotonic() + 60
    while not any(e["event"] == "step" for e in parse(sub.take()[0])):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    manager.cancel(second.id)
    manager.cancel(first.id)
    info = wait_final(manager, first.id)
    assert info["state"] == "cancelled" and info["file"], info
    assert manager.get(second.id).info()["state"] == "cancelled" and manager.get(second.id).info()["file"] is None
    assert not any(e["data"]["state"] == "running" for e in parse(second.log.subscribe(0).take()[0]))
    raw = orjson.loads((manager.root / info["file"]).read_bytes())
    generated = sum(len(t["tokens"]["ids"]) - t["tokens"]["n_prompt"] for t in raw["trials"])
    assert raw["trials"][-1]["interrupted"] and generated < 8 * 1024
    assert generated == info["tokens"]  # every token the run counted is in the saved capture


def test_a_model_that_fails_to_load_fails_its_run_only(manager: RunManager, tmp_path: Path, tiny_llama: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 64)
    bad = manager.submit(RunRequest("broken.gguf", broken, ["Hi"], max_tokens=2))
    good = manager.submit(RunRequest("tiny-llama.gguf", tiny_llama, ["Hi"], "observe", max_tokens=2))
    info = wait_final(manager, bad.id)
    assert info["state"] == "failed" and "llama.cpp" in info["error"] and info["file"] is None, info
    assert wait_final(manager, good.id)["state"] == "done"


def test_queue_limit_and_unknown_runs(tmp_path: Path, tiny_llama: Path) -> None:
    m = RunManager(tmp_path / "data", max_queued=1)
    try:
        req = RunRequest("tiny-llama.gguf", tiny_llama, ["Hi"] * 8, "full", max_tokens=1024)
        runs = [m.submit(req)]
        deadline = time.monotonic() + 60
        while m.get(runs[0].id).state == "queued":  # the first leaves the queue when it starts
            assert time.monotonic() < deadline
            time.sleep(0.01)
        runs.append(m.submit(req))
        with pytest.raises(Busy, match="limit is 1"):
            m.submit(req)
        with pytest.raises(NotFound):
            m.get("r999")
        for r in runs:
            m.cancel(r.id)
    finally:
        m.shutdown()
        m.join(60)
    assert all(m.get(r.id).state == "cancelled" for r in runs)


def test_event_log_backlog_and_drops() -> None:
    log = EventLog(limit=3)
    log.publish("state", {"state": "running"})
    woken: list[int] = []
    live = log.subscribe(1, wake=lambda: woken.append(1))
    live.take()
    for i in range(10):
        log.publish("step", {"index": i})
    log.publish("done", {"state": "done"}, final=True)
    assert len(woken) == 1  # woken once, not per event, while it does not read
    got, over = live.take()
    events = parse(got)
    assert over and [e["event"] for e in events] == ["dropped", "step", "step", "done"]
    assert events[0]["data"]["count"] == 8 and events[0]["id"] == 9
    assert [e["data"]["index"] for e in events[1:3]] == [8, 9]
    assert [e["id"] for e in events] == sorted({e["id"] for e in events})
    everything = parse(log.subscribe(0).take()[0])  # a late joiner: the backlog is never dropped
    assert [e["id"] for e in everything] == list(range(1, 13))
    resumed = parse(log.subscribe(10).take()[0])
    assert [e["id"] for e in resumed] == [11, 12]


def test_a_run_nobody_reads_takes_no_snapshot_and_one_asked_for_is_its_steps_so_far(
    manager: RunManager, tiny_llama: Path
) -> None:
    quiet = manager.submit(RunRequest("tiny.gguf", tiny_llama, ["Hello"], max_tokens=6, seed=0))
    assert wait_final(manager, quiet.id)["state"] == "done"
    assert quiet.partial.last is None and not quiet.partial.wanted  # no snapshot work without a reader
    with pytest.raises(NotFound, match="no step"):
        manager.partial(quiet.id)
    run = manager.submit(RunRequest("tiny.gguf", tiny_llama, ["Count"] * 8, preset="full", max_tokens=1024, seed=0))
    deadline = time.monotonic() + 60
    while run.step < 3:
        assert time.monotonic() < deadline and run.state not in ("done", "failed", "cancelled")
        time.sleep(0.01)
    cap = manager.partial(run.id)
    assert manager.partial(run.id) is cap  # served again within MAX_AGE
    manager.cancel(run.id)
    info = wait_final(manager, run.id)
    saved = Capture.load(Path(manager.root) / info["file"]).data["trials"]
    got = cap.data["trials"]
    assert got and len(got) <= len(saved)
    for mine, whole in zip(got, saved, strict=False):
        n = len(mine["steps"])
        assert 0 < n <= len(whole["steps"])
        assert mine["steps"] == whole["steps"][:n]
        assert mine["tokens"]["ids"] == whole["tokens"]["ids"][: len(mine["tokens"]["ids"])]
