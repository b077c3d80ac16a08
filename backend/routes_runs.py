"""Routes for live runs: start, list, inspect, cancel, and follow one as Server-Sent Events.

Thin: ``spectra_vis.live.RunManager`` queues and executes runs and numbers their events;
``backend.run_access`` decides who may use them (every route here depends on it: 403 otherwise).
Why SSE and not WebSocket: the stream is one-way, plain HTTP (the same token header and error
shape as every route), and SSE's event ids give resumption (``?after=N`` or ``Last-Event-ID``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query
from fastapi.responses import StreamingResponse

from backend import schemas as S
from backend.deps import OrjsonResponse, RunsDep, StoreDep, check_runs
from backend.live_captures import PREFIX
from backend.routes_files import load_payload
from backend.store import CaptureStore
from spectra_vis.live import RunControl, RunRequest, Subscriber

router = APIRouter(prefix="/api/runs", tags=["runs"], dependencies=[Depends(check_runs)])
RunId = Annotated[str, Path(max_length=32, description="A run id from POST /api/runs")]
REFUSED: dict[int | str, dict[str, Any]] = {403: {"model": S.ErrorOut}, 404: {"model": S.ErrorOut}}
SSE: dict[int | str, dict[str, Any]] = {
    200: {"description": "Server-Sent Events (docs/API.md)", "content": {"text/event-stream": {}}}
}


@router.get("", response_model=S.RunsOut, responses=REFUSED)
def list_runs(runs: RunsDep) -> OrjsonResponse:
    return OrjsonResponse({"runs": [r.info() for r in runs.runs()], "allowed": True})


@router.post("", status_code=202, response_model=S.RunInfo, responses={**REFUSED, 429: {"model": S.ErrorOut}})
def start_run(store: StoreDep, runs: RunsDep, body: S.RunIn) -> OrjsonResponse:
    """Queue a capture run on a model from GET /api/models/files (429 when 8 runs already wait)."""
    path, prepare = store.run_model(body.model)
    request = RunRequest(
        model=body.model,
        model_path=path,
        prompts=list(body.prompts),
        preset=body.preset,
        max_tokens=body.max_tokens,
        temperature=body.temperature,
        seed=body.seed,
        chat=body.chat,
        prepare=prepare,
        control=_control(store, body.control),
    )
    return OrjsonResponse(runs.submit(request).info(), status_code=202)


@router.get("/{run_id}", response_model=S.RunInfo, responses=REFUSED)
def get_run(runs: RunsDep, run_id: RunId) -> OrjsonResponse:
    return OrjsonResponse(runs.get(run_id).info())


@router.delete("/{run_id}", response_model=S.RunInfo, responses=REFUSED)
def cancel_run(runs: RunsDep, run_id: RunId) -> OrjsonResponse:
    """Cancel: a queued run never starts; a running one stops after the current decode and saves
    what it captured (state "cancelled")."""
    return OrjsonResponse(runs.cancel(run_id).info())


@router.get("/{run_id}/events", response_class=StreamingResponse, responses={**SSE, **REFUSED})
async def run_events(
    runs: RunsDep,
    run_id: RunId,
    after: Annotated[int | None, Query(ge=0, le=2**31, description="Replay events with a larger id")] = None,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> StreamingResponse:
    """The run's events as Server-Sent Events: the backlog (ids above ``after`` or Last-Event-ID),
    then live ones; the stream ends after "done"."""
    run = runs.get(run_id)
    start = after if after is not None else _event_id(last_event_id)
    loop = asyncio.get_running_loop()
    woken = asyncio.Event()

    def wake() -> None:
        loop.call_soon_threadsafe(woken.set)

    sub = run.log.subscribe(start, wake)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(_frames(sub, woken), media_type="text/event-stream", headers=headers)


async def _frames(sub: Subscriber, woken: asyncio.Event) -> AsyncIterator[bytes]:
    try:
        while True:
            woken.clear()
            chunk, over = sub.take()
            if chunk:
                yield chunk
            if over:
                return
            if not chunk:
                await woken.wait()
    finally:
        sub.close()


@router.get("/{run_id}/capture", response_model=S.LoadOut, responses=REFUSED)
def run_capture(store: StoreDep, run_id: RunId) -> OrjsonResponse:
    """The run's capture so far, as POST /api/load answers for a file: its capture id is
    ``run-<run id>``, which every view route takes; a new snapshot at most every half second while
    the run goes on (the current trial with its steps so far). 404 before the run's first step."""
    return OrjsonResponse(load_payload(store.get(PREFIX + run_id)))


def _event_id(header: str | None) -> int:
    value = (header or "").strip()
    return int(value) if value.isdigit() else 0


def _control(store: CaptureStore, body: S.RunControlIn | None) -> RunControl | None:
    """The run's control vector, read from the models directory by name, under the same rules as a model."""
    if body is None:
        return None
    return RunControl(body.file, store.model_file(body.file), body.strength, body.layers)
