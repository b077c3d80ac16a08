"""Routes for the server itself and for capture files: health, status, files, load, upload, captures."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Path, UploadFile
from starlette.concurrency import run_in_threadpool

from backend import schemas as S
from backend.deps import OrjsonResponse, StoreDep
from backend.store import Loaded
from spectra_vis import analysis
from spectra_vis.errors import TooLarge, WrongFileType
from spectra_vis.store.capture_file import tool_version

router = APIRouter(prefix="/api", tags=["captures"])

# Declared content types an upload part may have; anything else (image/png, text/html, ...) is 415.
UPLOAD_TYPES = {"", "application/json", "text/json", "application/x-json", "application/octet-stream", "text/plain"}
UPLOAD_TYPES |= {"application/x-ndjson", "application/jsonl", "application/x-jsonlines"}  # JSONL traces
CHUNK = 1024 * 1024


def load_payload(loaded: Loaded) -> S.LoadOut:
    summary = analysis.summary(loaded.capture)
    return {
        "capture_id": loaded.capture_id,
        "name": loaded.name,
        "path": loaded.path,
        "notices": list(loaded.capture.notices),
        **summary,
    }


@router.get("/health", response_model=S.HealthOut)
def health() -> OrjsonResponse:
    return OrjsonResponse({"ok": True})


@router.get("/status", response_model=S.StatusOut)
def status(store: StoreDep) -> OrjsonResponse:
    s = store.settings
    return OrjsonResponse(
        {
            "ok": True,
            "version": tool_version(),
            "data_dir": str(store.root),
            "current": store.current,
            "loaded": [c.info() for c in store.loaded()],
            "limits": {
                "max_upload_bytes": s.max_upload_bytes,
                "max_load_bytes": s.max_load_bytes,
                "max_captures": s.max_captures,
            },
        }
    )


@router.get("/captures", response_model=S.CapturesOut)
def captures(store: StoreDep) -> OrjsonResponse:
    return OrjsonResponse({"current": store.current, "captures": [c.info() for c in store.loaded()]})


@router.delete("/captures/{capture_id}", response_model=S.DropOut)
def drop_capture(store: StoreDep, capture_id: Annotated[str, Path(max_length=64)]) -> OrjsonResponse:
    return OrjsonResponse({"ok": True, "current": store.drop(capture_id)})


@router.get("/files", response_model=S.FilesOut)
def files(store: StoreDep) -> OrjsonResponse:
    return OrjsonResponse({"data_dir": str(store.root), "files": store.list_files()})


@router.get("/loading", response_model=S.LoadingOut)
async def loading(store: StoreDep) -> OrjsonResponse:  # on the event loop, not in the loads' thread pool
    """The index builds running now (a capture loaded or uploaded without its index file is read
    step by step on its first load): file, steps read, steps in the capture. Empty when none."""
    return OrjsonResponse({"loading": store.builds.now()})


@router.post("/load", response_model=S.LoadOut)
def load(store: StoreDep, body: S.LoadRequest) -> OrjsonResponse:
    """Load a capture by file name or path relative to the data directory; it becomes current."""
    return OrjsonResponse(load_payload(store.load(body.filepath)))


@router.post("/upload", response_model=S.UploadOut)
async def upload(
    store: StoreDep,
    file: Annotated[UploadFile, File(description="A capture JSON file")],
    vectors: Annotated[UploadFile | None, File(description="Its .vectors.safetensors companion (format 2.1)")] = None,
) -> OrjsonResponse:
    """Add a capture to the data directory (validated first, never overwriting) and load it; with
    ``vectors``, its companion file too (checked against the capture, saved under the new name)."""
    declared = (file.content_type or "").split(";")[0].strip().lower()
    if declared not in UPLOAD_TYPES:
        raise WrongFileType(f"uploads must be capture JSON files, not {declared!r}")
    limit = store.settings.max_upload_bytes
    raw = await _read_limited(file, limit)
    vec = await _read_limited(vectors, limit - len(raw)) if vectors is not None else None
    saved_as, loaded = await run_in_threadpool(store.save_upload, file.filename, raw, vec)
    return OrjsonResponse({**load_payload(loaded), "saved_as": saved_as})


async def _read_limited(file: UploadFile, limit: int) -> bytes:
    """The upload's bytes, refused (TooLarge) as soon as they pass ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await file.read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"upload is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
