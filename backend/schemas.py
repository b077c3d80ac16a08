"""Request and response models of the REST API: the OpenAPI schema the frontend's types and
the schema-driven tests are generated from. Payloads are built by ``spectra_vis.analysis``
and the store; these models describe them (docs/API.md has examples).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from spectra_vis.analysis import METRICS

Metric = Literal["l2", "mean", "std", "min", "max", "absmax", "sparsity", "nonfinite", "count"]
assert set(METRICS) == set(Metric.__args__)  # type: ignore[attr-defined]

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
    depth: int = Field(default=4, ge=0, le=4, description="Viewer depth level: 0 layer outputs .. 4 everything")


# ----- responses ---------------------------------------------------------------------------
class ErrorOut(BaseModel):
    ok: Literal[False] = False
    status: int
    error: str


class HealthOut(BaseModel):
    ok: bool


class CaptureInfo(BaseModel):
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


class StatusOut(BaseModel):
    ok: bool
    version: str
    data_dir: str
    current: str | None
    loaded: list[CaptureInfo]
    limits: dict[str, int]


class CapturesOut(BaseModel):
    current: str | None
    captures: list[CaptureInfo]


class DropOut(BaseModel):
    ok: bool
    current: str | None


class FileInfo(BaseModel):
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


class FilesOut(BaseModel):
    data_dir: str
    files: list[FileInfo]


class TrialBrief(BaseModel):
    id: int
    prompt: str
    chat: bool = Field(description="the prompt was sent in the model's chat template")
    response: str
    n_tokens: int
    n_prompt: int
    n_steps: int


class LoadOut(BaseModel):
    capture_id: str
    name: str
    path: str
    version: str
    legacy: bool
    model: dict[str, Any]
    preset: str
    trials: int
    unique_tensors: int
    captured_tensors: int
    steps: int
    tokens: int
    trial_list: list[TrialBrief]
    layers: list[int]
    attention_layers: list[int]
    stat_names: list[str]


class UploadOut(LoadOut):
    saved_as: str


class ModelsOut(BaseModel):
    models: list[str]
    profiles: dict[str, dict[str, Any]]


class ColorsOut(BaseModel):
    categories: dict[str, str]
    flows: dict[str, str]
    zones: dict[str, str]
    states: dict[str, str]
    scale: list[str]


class FlowsOut(BaseModel):
    family: str
    flows: dict[str, list[list[str]]]
    colors: dict[str, str]


class StatGroup(BaseModel):
    tensors: int
    captured: int
    evaluations: int
    stats: dict[str, float | None]


class LayerGroup(StatGroup):
    layer: int


class CategoryGroup(StatGroup):
    category: str
    color: str


class TopTensor(BaseModel):
    id: int
    name: str
    layer: int
    type: str
    category: str
    l2: float | None
    absmax: float | None


class AnalyzeOut(BaseModel):
    capture_id: str
    model_family: str
    profile: dict[str, Any]
    trial_id: int | None
    stat_names: list[str]
    totals: dict[str, int]
    layers: list[LayerGroup]
    categories: list[CategoryGroup]
    top_tensors: list[TopTensor]


class GridCell(BaseModel):
    id: int
    key: str
    name: str
    layer: int
    layer_index: int
    type: str
    type_index: int
    category: str
    depth: int
    op: str
    shape: list[int]
    captured: bool
    value: float | None
    intensity: float | None
    color: str


class GridOut(BaseModel):
    capture_id: str
    trial_id: int
    step: int
    metric: str
    depth: int
    phase: str | None
    n_tokens: int | None
    layers: list[int]
    types: list[str]
    min: float | None
    max: float | None
    cells: list[GridCell]


class HeatmapCol(BaseModel):
    index: int
    label: str
    type: str | None = None
    category: str | None = None
    text: str | None = None
    prompt: bool | None = None
    step: int | None = None


class HeatmapOut(BaseModel):
    capture_id: str
    trial_id: int
    metric: str
    axis: Literal["types", "tokens"]
    step: int | None
    type: str | None
    rows: list[int]
    cols: list[HeatmapCol]
    values: list[list[float | None]]
    min: float | None
    max: float | None


class TokenOut(BaseModel):
    pos: int
    id: int
    text: str
    prompt: bool
    template: bool = Field(description="a prompt token the chat template or the tokenizer added, not the user's text")
    step: int | None


class NextToken(BaseModel):
    id: int
    logit: float


class StepSummary(BaseModel):
    index: int
    phase: str
    pos: int
    n_tokens: int
    positions: list[int]
    token_texts: list[str]
    ms: float | None
    n_stats: int
    n_attention: int
    next_token: NextToken | None


class TrialOut(BaseModel):
    capture_id: str
    id: int
    prompt: str
    chat: bool = Field(description="the prompt was sent as a user message in the model's chat template")
    prompt_text: str = Field(description="the exact text sent to the model (the rendered template, or the prompt)")
    response: str
    n_prompt: int
    interrupted: bool
    errors: list[str]
    timings: dict[str, float | None]
    tokens: list[TokenOut]
    steps: list[StepSummary]


class StepTensor(BaseModel):
    id: int
    name: str
    layer: int
    type: str
    category: str
    stats: list[float | None]
    rows: list[list[float | None]] | None


class StepAttention(BaseModel):
    layer: int
    tensor_id: int
    n_kv: int
    n_head: int
    mean_entropy: list[float | None]


class StepOut(BaseModel):
    capture_id: str
    trial_id: int
    index: int
    phase: str
    pos: int
    n_tokens: int
    positions: list[int]
    token_ids: list[int]
    token_texts: list[str]
    ms: float | None
    stat_names: list[str]
    tensors: list[StepTensor]
    attention: list[StepAttention]
    logits: dict[str, list[float]] | None


class Edge(BaseModel):
    head: int
    pos: int
    p: float
    distance: int
    token_text: str
    sink: bool


class TokenLayerAttention(BaseModel):
    layer: int
    entropy: list[float]
    coverage: float
    fingerprint: list[float] = Field(min_length=20, max_length=20)
    periodicity: float
    zone: str
    edges: list[Edge]


class TokenAttention(BaseModel):
    pos: int
    text: str
    step: int
    prompt: bool
    zone: str | None
    layers: list[TokenLayerAttention]


class AttentionOut(BaseModel):
    capture_id: str
    trial_id: int
    step: int | None
    layer: int | None
    head: int | None
    n_head: int
    top_k: int | None
    attention_layers: list[int]
    fingerprint_names: list[str]
    tokens: list[TokenAttention]


class TokenZone(BaseModel):
    pos: int
    step: int
    zone: str
    text: str


class DeltaEntry(BaseModel):
    id: int
    name: str
    layer: int
    type: str
    value: float


class StepState(BaseModel):
    step: int
    phase: str
    label: str
    confidence: float
    attention_energy: float
    ffn_energy: float
    depth_energy: list[float]
    delta: list[DeltaEntry]


class InterpretationOut(BaseModel):
    capture_id: str
    trial_id: int
    zone_names: list[str]
    state_names: list[str]
    zones: list[TokenZone]
    zone_distribution: dict[str, float]
    dominant_zone: str | None
    states: list[StepState]
