"""Request and response models of the REST API: the OpenAPI schema the frontend's types and
the schema-driven tests are generated from. Requests are pydantic models (FastAPI validates them).
Responses are TypedDicts, each defined once: the analysis payloads in ``spectra_vis.analysis.payloads``
(re-exported here; capture-scoped ones gain the ``capture_id`` the routes add) and the store's own
below, which ``backend/store.py`` builds (mypy checks every key).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from spectra_vis.analysis import payloads as P
from spectra_vis.analysis.payloads import ColorsOut, FlowsOut, ModelsOut, Summary
from spectra_vis.constants import MAX_DEPTH, Metric

CaptureIdField = Field(default=None, max_length=64, description="Loaded capture id; default: the last loaded")


# ----- requests ----------------------------------------------------------------------------
class LoadRequest(BaseModel):
    filepath: str = Field(max_length=4096, description="File name or path relative to the data directory")


class AnalyzeRequest(BaseModel):
    capture_id: str | None = CaptureIdField
    model_family: str | None = Field(default=None, max_length=64)
    trial_id: int | None = Field(default=None, ge=0, description="Default: all trials")


class GridRequest(BaseModel):
    capture_id: str | None = CaptureIdField
    trial_id: int = Field(default=0, ge=0)
    step: int = Field(default=0, ge=0)
    metric: Metric = "l2"
    depth: int = Field(
        default=MAX_DEPTH, ge=0, le=MAX_DEPTH, description="Viewer depth level: 0 layer outputs .. 4 everything"
    )


# ----- responses ---------------------------------------------------------------------------
class ErrorOut(TypedDict):
    ok: Literal[False]
    status: int
    error: str


class HealthOut(TypedDict):
    ok: bool


class CaptureInfo(TypedDict):
    capture_id: str
    name: str
    path: str
    model: str | None
    family: str | None
    version: str
    legacy: bool
    preset: str
    trials: int
    loaded_at: str


class StatusOut(TypedDict):
    ok: bool
    version: str
    data_dir: str
    current: str | None
    loaded: list[CaptureInfo]
    limits: dict[str, int]


class CapturesOut(TypedDict):
    current: str | None
    captures: list[CaptureInfo]


class DropOut(TypedDict):
    ok: bool
    current: str | None


class FileInfo(TypedDict):
    name: str
    path: str
    size: int
    modified: str
    valid: bool
    error: str | None
    version: str | None
    legacy: bool | None
    model: str | None
    family: str | None
    preset: str | None
    trials: int | None


class FilesOut(TypedDict):
    data_dir: str
    files: list[FileInfo]


class LoadingInfo(TypedDict):
    path: str  # relative to the data directory
    name: str
    done: int  # steps read so far
    total: int  # steps in the capture


class LoadingOut(TypedDict):
    loading: list[LoadingInfo]


class LoadOut(Summary):
    capture_id: str
    name: str
    path: str
    notices: list[str]
    """what loading could not give (a missing vectors file), one line each"""


class UploadOut(LoadOut):
    saved_as: str


# ----- analysis payloads of one loaded capture ------------------------------------------------
class AnalyzeOut(P.Analysis):
    capture_id: str


class GridOut(P.Grid):
    capture_id: str


class HeatmapOut(P.Heatmap):
    capture_id: str


class TrialOut(P.TrialDetail):
    capture_id: str


class StepOut(P.StepDetail):
    capture_id: str


class AttentionOut(P.Attention):
    capture_id: str


class InterpretationOut(P.Interpretation):
    capture_id: str


class LensGridOut(P.LensGrid):
    capture_id: str


class LensCellOut(P.LensCell):
    capture_id: str


class ComparisonOut(P.ComparisonOut):
    pass


class ProjectionOut(P.Projection):
    capture_id: str


__all__ = ["ColorsOut", "FlowsOut", "ModelsOut"]  # served as analysis builds them

# Field docstrings of the analysis payloads become descriptions here too (pydantic's attribute docstrings).
_DESCRIBED = (LoadOut, AnalyzeOut, GridOut, HeatmapOut, TrialOut, StepOut, AttentionOut, InterpretationOut, LensGridOut)
for _out in (*_DESCRIBED, ComparisonOut):
    setattr(_out, "__pydantic_config__", {"use_attribute_docstrings": True})  # noqa: B010


# ----- live runs (issue 15; docs/API.md "Live runs") --------------------------------------------
RunState = Literal["queued", "loading", "running", "saving", "done", "cancelled", "failed"]


class RunControlIn(BaseModel):
    model_config = {"extra": "forbid"}

    file: str = Field(min_length=1, max_length=255, description="A control vector GGUF in the models directory")
    strength: float = Field(default=1.0, ge=-100, le=100, allow_inf_nan=False, description="0: exactly unsteered")
    layers: str | None = Field(
        default=None, pattern=r"^[0-9]{1,4}-[0-9]{1,4}$", description="Inclusive block range, e.g. 4-14"
    )


class RunIn(BaseModel):
    model_config = {"extra": "forbid"}

    model: str = Field(min_length=1, max_length=255, description="A name from GET /api/models/files, never a path")
    prompts: list[Annotated[str, Field(min_length=1, max_length=4000)]] = Field(
        min_length=1, max_length=8, description="1 to 8 prompts of at most 4000 characters; one trial each"
    )
    preset: Literal["observe", "standard", "full"] = "standard"
    max_tokens: int = Field(default=32, ge=1, le=1024)
    temperature: float = Field(default=0.0, ge=0, le=10, allow_inf_nan=False)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1, description="Default: a random seed (in RunInfo)")
    chat: Literal["auto", "chat", "raw"] = "auto"
    control: RunControlIn | None = Field(default=None, description="Steer the run with a control vector")


class RunControl(TypedDict):
    file: str
    strength: float
    layers: str | None


class RunInfo(TypedDict):
    id: str
    model: str
    preset: str
    prompts: list[str]
    max_tokens: int
    temperature: float
    seed: int
    chat: str
    control: RunControl | None
    state: RunState
    trial: int
    n_trials: int
    step: int
    tokens: int
    tokens_per_s: float | None
    progress: float
    file: str | None
    error: str | None
    created: float
    finished: float | None
    events: int
    """the sequence number of the run's last event so far"""
    subscribers: int


class RunsOut(TypedDict):
    runs: list[RunInfo]
    allowed: bool


class ModelFileInfo(TypedDict):
    name: str
    size: int
    architecture: str | None
    demo: bool


class ModelFilesOut(TypedDict):
    models_dir: str
    files: list[ModelFileInfo]
