"""The viewer backend: a FastAPI app over loaded captures (the REST API of docs/API.md).

    python backend/server.py [--host 127.0.0.1] [--port 8000] [--data-dir data] [--models-dir DIR]
                             [--allow-runs --run-token T]
    uvicorn backend.server:app          # data directory from SPECTRA_DATA_DIR (default data/)

Thin layer: the store (``backend.store``) owns files and the data-directory boundary, the
payloads come from ``spectra_vis.analysis``. Every non-2xx response has one shape,
``{"ok": false, "status": N, "error": "..."}``, made by the handlers below. CORS allows
only the server's own origin unless origins are configured. ``frontend/dist`` is served at
``/`` when it exists, with a fallback to its ``index.html`` for the single-page app. Live runs
(``spectra_vis.live.RunManager``) are allowed on loopback, or with ``--allow-runs`` and a token
(``backend.run_access``); Ctrl-C stops the current run after its decode, saves it, then exits.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend import routes_files, routes_models, routes_runs, routes_steering, routes_views
from backend.deps import OrjsonResponse, error_payload
from backend.live_captures import LiveCaptureStore
from backend.run_access import TOKEN_ENV, TOKEN_HEADER, RunAccess
from backend.schemas import ErrorOut
from backend.store import (
    DEFAULT_MAX_CAPTURES,
    DEFAULT_MAX_LOAD,
    DEFAULT_MAX_UPLOAD,
    MB,
    Settings,
)
from spectra_vis.analysis.paging import PAGE_BYTES
from spectra_vis.errors import (
    Busy,
    CaptureError,
    Forbidden,
    InvalidArgument,
    ModelFileError,
    NotFound,
    SpectraVisError,
    TooLarge,
    Unsupported,
    WrongFileType,
)
from spectra_vis.live import RunManager
from spectra_vis.live.manager import MAX_QUEUED
from spectra_vis.live.stream import DEFAULT_LIMIT
from spectra_vis.store.capture_file import tool_version

log = logging.getLogger("spectra_vis.backend")

REPO_ROOT = Path(__file__).resolve().parent.parent
FRONTEND_DIST = REPO_ROOT / "frontend" / "dist"
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8000
JSON_BODY_PATHS = {"/api/load", "/api/analyze", "/api/tensor-grid", "/api/runs"}
MULTIPART_SLACK = 64 * 1024  # multipart headers around the file, allowed above the upload limit


def default_data_dir() -> Path:
    return Path(os.environ.get("SPECTRA_DATA_DIR") or "data")


def create_app(
    data_dir: str | os.PathLike[str] | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD,
    cors_origins: list[str] | None = None,
    max_load_bytes: int = DEFAULT_MAX_LOAD,
    max_captures: int = DEFAULT_MAX_CAPTURES,
    frontend_dir: str | os.PathLike[str] | None = None,
    models_dir: str | os.PathLike[str] | None = None,
    *,
    listen_host: str = DEFAULT_HOST,
    allow_runs: bool = False,
    run_token: str | None = None,
    max_queued_runs: int = MAX_QUEUED,
    run_event_limit: int = DEFAULT_LIMIT,
    page_bytes: int = PAGE_BYTES,
) -> FastAPI:
    """The app over the captures in ``data_dir`` (default: SPECTRA_DATA_DIR, else ``data/``).
    ``listen_host``: where the server listens (runs are allowed on loopback without a token);
    ``allow_runs`` with ``run_token``: runs for clients that send it as X-Spectra-Token;
    ``page_bytes``: the JSON budget of the default page of a whole trial's attention or
    interpretation (docs/API.md, "Pages of a long trial")."""
    settings = Settings(
        data_dir=Path(data_dir) if data_dir is not None else default_data_dir(),
        max_upload_bytes=max_upload_bytes,
        max_load_bytes=max_load_bytes,
        max_captures=max_captures,
        cors_origins=list(cors_origins or []),
        models_dir=Path(models_dir) if models_dir is not None else None,
        page_bytes=page_bytes,
    )
    access = RunAccess(listen_host=listen_host, allow_runs=allow_runs, token=run_token)
    app = FastAPI(
        lifespan=_lifespan,
        title="Spectra Vis",
        version=tool_version(),
        description="Captures of what llama.cpp computes inside a GGUF model. See docs/API.md.",
        default_response_class=OrjsonResponse,
        responses={400: {"model": ErrorOut}, 404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
    )
    app.state.store = LiveCaptureStore(settings)
    app.state.run_access = access
    app.state.runs = RunManager(app.state.store.root, max_queued=max_queued_runs, event_limit=run_event_limit)
    app.state.store.runs = app.state.runs  # capture ids run-<id>: a running run's capture so far
    app.state.frontend_dir = Path(frontend_dir) if frontend_dir is not None else FRONTEND_DIST
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Content-Type", TOKEN_HEADER, "Last-Event-ID"],
        )
    _add_upload_limit(app, settings.max_upload_bytes)
    _add_error_handlers(app)
    app.include_router(routes_files.router)
    app.include_router(routes_views.router)
    app.include_router(routes_steering.router)
    app.include_router(routes_models.router)
    app.include_router(routes_runs.router)
    _add_frontend(app)
    return app


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.openapi()  # pydantic builds the response schemas now (~0.2 s), not in the first request of a view
    yield
    runs: RunManager = app.state.runs
    runs.shutdown()  # the current run stops after its decode and is saved
    runs.join(120)


# What each of Spectra Vis's errors means to an HTTP client: the only place status codes are chosen.
STATUS: tuple[tuple[type[SpectraVisError], int], ...] = (
    (WrongFileType, 415),  # before InvalidArgument, its base
    (InvalidArgument, 400),
    (ModelFileError, 400),
    (Forbidden, 403),
    (NotFound, 404),
    (TooLarge, 413),
    (Busy, 429),
    (CaptureError, 422),
    (Unsupported, 422),
)


def status_of(exc: SpectraVisError) -> int:
    """The HTTP status of a refused request (500 for an error no request should cause)."""
    return next((status for kind, status in STATUS if isinstance(exc, kind)), 500)


def _error(status: int, message: str) -> OrjsonResponse:
    return OrjsonResponse(error_payload(status, message), status_code=status)


def _add_upload_limit(app: FastAPI, limit: int) -> None:
    """Refuse an upload whose declared length is over the limit before its body is read."""

    @app.middleware("http")
    async def upload_limit(request: Request, call_next: Any) -> Response:
        if request.url.path == "/api/upload" and request.method == "POST":
            length = request.headers.get("content-length", "")
            if length.isdigit() and int(length) > limit + MULTIPART_SLACK:
                return _error(413, f"upload is {length} bytes, over the limit of {limit}")
        response: Response = await call_next(request)
        return response


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SpectraVisError)
    async def refused(request: Request, exc: SpectraVisError) -> OrjsonResponse:
        return _error(status_of(exc), str(exc))

    @app.exception_handler(RequestValidationError)
    async def validation(request: Request, exc: RequestValidationError) -> OrjsonResponse:
        if request.url.path in JSON_BODY_PATHS:
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != "application/json":
                return _error(415, f"send a JSON body with Content-Type: application/json (got {ctype or 'none'!r})")
        return _error(422, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> OrjsonResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such route: {request.method} {request.url.path}"
        return _error(exc.status_code, message)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> OrjsonResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return _error(500, f"internal error ({type(exc).__name__}: {str(exc)[:200]})")


def _validation_message(exc: RequestValidationError) -> str:
    """The first validation problem, on one line: where and what."""
    errors = exc.errors()
    if not errors:
        return "invalid request"
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "request"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg', 'invalid')}{more}"


def _add_frontend(app: FastAPI) -> None:
    """Serve the built viewer at / with a single-page-app fallback; unknown /api paths stay 404 JSON."""

    @app.get("/{full_path:path}", include_in_schema=False)
    def frontend(full_path: str, request: Request) -> Response:
        if full_path == "api" or full_path.startswith("api/"):
            return _error(404, f"no such route: {request.method} /{full_path}")
        dist = Path(app.state.frontend_dir).resolve()
        index = dist / "index.html"
        if not index.is_file():
            if full_path in ("", "index.html"):
                return HTMLResponse(_NO_FRONTEND)
            return _error(404, f"not found: /{full_path} (the viewer is not built: frontend/dist is missing)")
        parts = [p for p in full_path.replace("\\", "/").split("/") if p not in ("", ".")]
        if ".." in parts or any(":" in p for p in parts):
            return _error(400, "invalid path")
        target = dist.joinpath(*parts).resolve() if parts else index
        if target.is_relative_to(dist) and target.is_file():
            return FileResponse(target)
        if parts and "." in parts[-1]:
            return _error(404, f"not found: /{full_path}")
        return FileResponse(index)


_NO_FRONTEND = """<!doctype html><html><head><meta charset="utf-8"><title>Spectra Vis</title></head>
<body><h1>Spectra Vis API</h1><p>The web viewer is not built (frontend/dist is missing):
run <code>scripts/build_frontend.sh</code>. The API is at <a href="/docs">/docs</a>.</p></body></html>"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="backend/server.py", description="Serve Spectra Vis captures and the viewer.")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"interface to listen on (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument(
        "--data-dir", default=None, help="folder of capture files (default: $SPECTRA_DATA_DIR, else data/)"
    )
    parser.add_argument(
        "--models-dir",
        default=None,
        help="GGUF models the server may read: live runs and /api/compare heads (default: DATA_DIR/models)",
    )
    parser.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD / MB, help="upload limit (200)")
    parser.add_argument("--max-load-mb", type=float, default=DEFAULT_MAX_LOAD / MB, help="load limit (2048)")
    parser.add_argument(
        "--cors-origin",
        action="append",
        default=None,
        help="allow this origin (repeatable; also $SPECTRA_CORS_ORIGINS, comma-separated). Default: same origin only",
    )
    parser.add_argument(
        "--allow-runs",
        action="store_true",
        help="allow live runs (POST /api/runs) from any client that sends the token as header "
        f"{TOKEN_HEADER}; needed when --host is not a loopback address. Default: runs on loopback only",
    )
    parser.add_argument("--run-token", default=None, help=f"the token --allow-runs requires (default: ${TOKEN_ENV})")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    args = parser.parse_args(argv)
    token = args.run_token or os.environ.get(TOKEN_ENV) or None
    if args.allow_runs and not token:
        parser.error(f"--allow-runs needs a token: --run-token T or the environment variable {TOKEN_ENV}")
    env_origins = os.environ.get("SPECTRA_CORS_ORIGINS", "").split(",")
    origins = args.cors_origin or [o.strip() for o in env_origins if o.strip()]
    application = create_app(
        data_dir=args.data_dir,
        max_upload_bytes=int(args.max_upload_mb * MB),
        max_load_bytes=int(args.max_load_mb * MB),
        cors_origins=origins,
        models_dir=args.models_dir,
        listen_host=args.host,
        allow_runs=args.allow_runs,
        run_token=token,
    )
    _serve(application, args.host, args.port, args.log_level)


def _serve(application: FastAPI, host: str, port: int, log_level: str) -> None:
    """uvicorn, with Ctrl-C first stopping the live runs: the current one stops after its decode and
    is saved, which ends the event streams that would otherwise keep the server waiting."""
    import uvicorn

    runs: RunManager = application.state.runs

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            runs.shutdown()
            super().handle_exit(sig, frame)

    try:
        Server(uvicorn.Config(application, host=host, port=port, log_level=log_level)).run()
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the Ctrl-C it handled, once it has shut down
    finally:
        runs.join(120)


app = create_app()

if __name__ == "__main__":
    main()
