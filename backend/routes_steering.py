"""Routes for steering: what a control vector did to a trial (capture format 2.3). The sweep's
trials are found through the overview's trial list (``trial_list[].control`` / ``.sweep`` of
GET /api/captures/{id} and /api/load); GET /api/compare compares a sweep's trial with its baseline.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from backend import schemas as S
from backend.deps import OrjsonResponse, StoreDep
from spectra_vis import analysis

router = APIRouter(prefix="/api", tags=["steering"])

CaptureIdQuery = Annotated[str | None, Query(max_length=64, description="Loaded capture id; default: the last loaded")]
TrialPath = Annotated[int, Path(ge=0, le=2**31, description="Trial index")]


@router.get("/trials/{trial_id}/projection", response_model=S.ProjectionOut)
def projection(store: StoreDep, trial_id: TrialPath, capture_id: CaptureIdQuery = None) -> OrjsonResponse:
    """The trial's residual stream (l_out) projected on its control vector's unit direction, per layer
    and token, in residual units; 404 when the trial was not run with a control vector."""
    loaded = store.get(capture_id)
    payload = loaded.cached(("projection", trial_id), lambda: analysis.projection(loaded.capture, trial_id))
    return OrjsonResponse({"capture_id": loaded.capture_id, **payload})
