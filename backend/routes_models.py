"""Route for the models the server may run: the GGUF files of --models-dir and the demo model."""

from __future__ import annotations

from fastapi import APIRouter

from backend import schemas as S
from backend.deps import OrjsonResponse, StoreDep

router = APIRouter(prefix="/api/models", tags=["models"])


@router.get("/files", response_model=S.ModelFilesOut)
def model_files(store: StoreDep) -> OrjsonResponse:
    """GGUF files directly inside the models directory, plus the demo model when installed. Always
    allowed: it only lists (names, sizes, architectures)."""
    return OrjsonResponse({"models_dir": str(store.models_root), "files": store.model_files()})
