"""GET /api/loading over real HTTP: while a load (or an upload) builds the index of a capture saved
without one, the server reports the file and how many of its steps are read; nothing before or
after, also when the load fails.

A real capture of the tiny llama, its index file left out, loaded by a real uvicorn in a thread.
The build is real (every step read and digested by ``digest.prepare``); it is held at one point, the
store's own progress seam (``Builds.report``, wrapped to wait on a threading.Event after it has
recorded a report), so that a GET is sure to arrive mid-build whatever the machine's speed. The
runs of steps are made small (``lazy.CHUNK``) so that the build has many of them. The step count is
the capture file's own, read with orjson.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import TypeAdapter

from backend import schemas as S
from backend.server import create_app
from spectra_vis.errors import CaptureError
from spectra_vis.store import index_file, lazy
from tests.test_backend import serve
from tests.test_scale import _corrupt_step, copy_of

WAIT = 60  # seconds any one wait may take before the test fails (never reached when all is well)


@pytest.fixture(scope="module")
def saved(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three trials (standard preset: with its vectors file), saved with its index by this tool."""
    from spectra_vis import capture

    out = tmp_path_factory.mktemp("loading") / "three.json"
    capture(tiny_llama, ["Once upon a time", "1, 2, 3, 4,", "Hello"], preset="standard", max_tokens=10,
            out=out, n_ctx=256, chat=False)  # fmt: skip
    return out


@pytest.fixture
def bare(saved: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The capture and its vectors file without the index, alone in a data directory; steps read in
    runs of about 20 KB."""
    monkeypatch.setattr(lazy, "CHUNK", 20_000)
    path = copy_of(saved, tmp_path)
    assert not path.with_name(index_file.index_name(path)).exists()
    return path


def n_steps(path: Path) -> int:
    return sum(len(t["steps"]) for t in orjson.loads(path.read_bytes())["trials"])


class Gate:
    """The store's progress reports recorded, and the build held after the first one that is not
    the last until ``release``; with ``fail``, that report raises it instead (a build that fails)."""

    def __init__(self, app: Any, monkeypatch: pytest.MonkeyPatch, fail: Exception | None = None) -> None:
        self.reports: list[tuple[int, int]] = []
        self.reached, self.released = threading.Event(), threading.Event()
        builds = app.state.store.builds
        original = builds.report

        def report(key: int, done: int, total: int) -> None:
            original(key, done, total)
            self.reports.append((done, total))
            if done < total and not self.reached.is_set():
                self.reached.set()
                if fail is not None:
                    raise fail
                assert self.released.wait(WAIT), "the test never released the build"

        monkeypatch.setattr(builds, "report", report)

    def release(self) -> None:
        self.released.set()


@pytest.fixture
def app(bare: Path) -> Any:
    return create_app(bare.parent)


@pytest.fixture
def client(app: Any) -> Iterator[httpx.Client]:
    with serve(app, timeout=WAIT) as c:
        yield c


def in_thread(send: Any) -> tuple[threading.Thread, dict[str, httpx.Response]]:
    """``send()`` (a request) in a thread of its own; its response in the dict under "r"."""
    out: dict[str, httpx.Response] = {}
    thread = threading.Thread(target=lambda: out.update(r=send()), daemon=True)
    thread.start()
    return thread, out


def loading(client: httpx.Client) -> list[S.LoadingInfo]:
    r = client.get("/api/loading")
    assert r.status_code == 200, r.text
    body = TypeAdapter(S.LoadingOut).validate_python(r.json())
    return body["loading"]


def test_a_load_that_builds_the_index_reports_its_progress(
    bare: Path, app: Any, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate(app, monkeypatch)
    total = n_steps(bare)
    assert loading(client) == []
    thread, out = in_thread(
        lambda: httpx.post(f"{client.base_url}/api/load", json={"filepath": bare.name}, timeout=WAIT)
    )
    try:
        assert gate.reached.wait(WAIT), "the load never reported progress"
        [entry] = loading(client)  # answered while the load is held mid-build
        assert entry == {"path": bare.name, "name": bare.name, "done": gate.reports[-1][0], "total": total}
        assert 0 < entry["done"] < total
    finally:
        gate.release()
    thread.join(WAIT)
    assert out["r"].status_code == 200, out["r"].text
    assert out["r"].json()["steps"] == total
    assert loading(client) == []
    done = [d for d, _ in gate.reports]
    assert done == sorted(done) and gate.reports[-1] == (total, total) and len(done) > 3
    assert {t for _, t in gate.reports} == {total}
    assert bare.with_name(index_file.index_name(bare)).is_file()
    # Loaded again (dropped first), the capture reads its index: no build, nothing reported.
    client.delete(f"/api/captures/{out['r'].json()['capture_id']}")
    before = len(gate.reports)
    assert client.post("/api/load", json={"filepath": bare.name}).status_code == 200
    assert len(gate.reports) == before and loading(client) == []


def test_a_load_in_a_folder_reports_its_path(saved: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lazy, "CHUNK", 20_000)
    (tmp_path / "runs").mkdir()
    path = copy_of(saved, tmp_path / "runs")
    app = create_app(tmp_path)
    gate = Gate(app, monkeypatch)
    with serve(app, timeout=WAIT) as client:
        thread, out = in_thread(
            lambda: httpx.post(f"{client.base_url}/api/load", json={"filepath": "runs/three.json"}, timeout=WAIT)
        )
        try:
            assert gate.reached.wait(WAIT)
            [entry] = loading(client)
            assert (entry["path"], entry["name"], entry["total"]) == ("runs/three.json", "three.json", n_steps(path))
        finally:
            gate.release()
        thread.join(WAIT)
        assert out["r"].status_code == 200 and loading(client) == []


def test_an_upload_reports_the_build_under_the_name_it_is_saved_as(
    bare: Path, app: Any, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate(app, monkeypatch)
    raw = bare.read_bytes()
    files = {"file": ("three.json", raw, "application/json")}  # taken: saved as three-1.json
    thread, out = in_thread(lambda: httpx.post(f"{client.base_url}/api/upload", files=files, timeout=WAIT))
    try:
        assert gate.reached.wait(WAIT)
        [entry] = loading(client)
        assert (entry["path"], entry["total"]) == ("three-1.json", n_steps(bare)) and entry["done"] < entry["total"]
    finally:
        gate.release()
    thread.join(WAIT)
    assert out["r"].status_code == 200, out["r"].text
    assert out["r"].json()["saved_as"] == "three-1.json" and loading(client) == []


def test_a_build_that_fails_is_no_longer_reported(
    bare: Path, app: Any, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A build that raises half-way (from the progress seam): the load answers the one error shape
    and the entry is gone; loaded again, the capture builds its index from the start."""
    gate = Gate(app, monkeypatch, fail=CaptureError("the build broke off (test)"))
    r = client.post("/api/load", json={"filepath": bare.name})
    assert r.status_code == 422 and r.json() == {"ok": False, "status": 422, "error": "the build broke off (test)"}
    assert gate.reached.is_set() and loading(client) == []
    assert not bare.with_name(index_file.index_name(bare)).exists()
    monkeypatch.undo()  # the seam as it was (and lazy.CHUNK back to its size)
    assert client.post("/api/load", json={"filepath": bare.name}).status_code == 200
    assert loading(client) == [] and bare.with_name(index_file.index_name(bare)).is_file()


def test_a_load_whose_vectors_do_not_match_fails_after_its_build_and_is_not_reported(
    bare: Path, app: Any, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    [companion] = bare.parent.glob("*.vectors.safetensors")
    raw = bytearray(companion.read_bytes())
    raw[-1] ^= 0xFF  # its sha256 no longer matches the capture's
    companion.write_bytes(bytes(raw))
    gate = Gate(app, monkeypatch)
    gate.release()  # not held: the build runs through
    r = client.post("/api/load", json={"filepath": bare.name})
    assert r.status_code == 422 and "sha256" in r.json()["error"]
    assert gate.reports and gate.reports[-1][0] == n_steps(bare) and loading(client) == []


def test_a_corrupt_step_is_named_and_the_build_is_not_reported_after(
    bare: Path, app: Any, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A corrupt step does not fail a load (it is named, the rest is read): the build reads past it,
    reports every step and is gone from the list when the load answers."""
    _corrupt_step(bare, 1, 3)
    gate = Gate(app, monkeypatch)
    thread, out = in_thread(
        lambda: httpx.post(f"{client.base_url}/api/load", json={"filepath": bare.name}, timeout=WAIT)
    )
    try:
        assert gate.reached.wait(WAIT)
        assert [e["path"] for e in loading(client)] == [bare.name]
    finally:
        gate.release()
    thread.join(WAIT)
    assert out["r"].status_code == 200, out["r"].text
    assert any("trial 1 step 3" in n for n in out["r"].json()["notices"])
    assert gate.reports[-1] == (n_steps(bare), n_steps(bare)) and loading(client) == []
