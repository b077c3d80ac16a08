"""Shared pieces of the routes: the orjson response class, the store and runs dependencies, and the
check that a request may use the live runs."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import Depends, Request
from fastapi.responses import JSONResponse

from backend.run_access import TOKEN_HEADER, RunAccess
from backend.store import CaptureStore
from spectra_vis.live import RunManager


class OrjsonResponse(JSONResponse):
    """JSON serialised with orjson (numpy-aware; NaN and infinities become null)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def get_store(request: Request) -> CaptureStore:
    store: CaptureStore = request.app.state.store
    return store


StoreDep = Annotated[CaptureStore, Depends(get_store)]


def error_payload(status: int, message: str) -> dict[str, Any]:
    """The one error shape of every non-2xx response."""
    return {"ok": False, "status": status, "error": message}


def get_runs(request: Request) -> RunManager:
    runs: RunManager = request.app.state.runs
    return runs


RunsDep = Annotated[RunManager, Depends(get_runs)]


def check_runs(request: Request) -> None:
    """Refuse (403) a request that may not use the live runs (``backend.run_access``)."""
    access: RunAccess = request.app.state.run_access
    client = request.client.host if request.client else None
    access.check(client, request.headers.get("host"), request.headers.get(TOKEN_HEADER))
