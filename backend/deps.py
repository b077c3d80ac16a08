"""Shared pieces of the routes: the orjson response class and the store dependency."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import Depends, Request
from fastapi.responses import JSONResponse

from backend.store import CaptureStore


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
