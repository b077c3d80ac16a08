"""The payloads of the analysis stage, each defined once: the functions of ``spectra_vis.analysis``
build them (mypy checks every key), the REST routes declare them as response models (capture-scoped
ones with the ``capture_id`` the backend adds: ``backend/schemas.py``), and the viewer's TypeScript
types are generated from that OpenAPI schema (``frontend/scripts/gen-types.mjs``).

TypedDicts from ``typing_extensions``: pydantic reads them on Python < 3.12, and building a payload
costs nothing at run time (no validation of megabytes of grid cells).
"""

from __future__ import annotations

from typing import Any, Literal

from typing_extensions import NotRequired, TypedDict

from spectra_vis.store.capture_file import CaptureSummary


class ModelsOut(TypedDict):
    models: list[str]
    profiles: dict[str, dict[str, Any]]
    metrics: list[str]
    """what the views can colour by: the capture's statistics, then count"""
    depth_levels: list[str]
    """labels of the depth selector's levels, 0 (layer outputs) first"""
    special_layers: dict[str, int]
    """layer numbers of the embedding, the final norm and the output"""


class ColorsOut(TypedDict):
    categories: dict[str, str]
    flows: dict[str, str]
    zones: dict[str, str]
    states: dict[str, str]
    scale: list[str]


class FlowsOut(TypedDict):
    family: str
    flows: dict[str, list[list[str]]]
    colors: dict[str, str]


class StatGroup(TypedDict):
    tensors: int
    captured: int
    evaluations: int
    stats: dict[str, float | None]


class LayerGroup(StatGroup):
    layer: int


class CategoryGroup(StatGroup):
    category: str
    color: str


class TopTensor(TypedDict):
    id: int
    name: str
    layer: int
    type: str
    category: str
    l2: float | None
    absmax: float | None


class Analysis(TypedDict):
    model_family: str
    profile: dict[str, Any]
    trial_id: int | None
    stat_names: list[str]
    totals: dict[str, int]
    layers: list[LayerGroup]
    categories: list[CategoryGroup]
    top_tensors: list[TopTensor]


class GridCell(TypedDict):
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


class Grid(TypedDict):
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


class HeatmapCol(TypedDict):
    index: int
    label: str
    type: NotRequired[str | None]
    category: NotRequired[str | None]
    text: NotRequired[str | None]
    prompt: NotRequired[bool | None]
    step: NotRequired[int | None]


class HeatmapBody(TypedDict):
    rows: list[int]
    cols: list[HeatmapCol]
    values: list[list[float | None]]


class Heatmap(HeatmapBody):
    trial_id: int
    metric: str
    axis: Literal["types", "tokens"]
    step: int | None
    type: str | None
    min: float | None
    max: float | None


class TokenOut(TypedDict):
    pos: int
    id: int
    text: str
    prompt: bool
    template: bool
    """a prompt token the chat template or the tokenizer added, not the user's text"""
    step: int | None


class NextToken(TypedDict):
    id: int
    logit: float


class StepSummary(TypedDict):
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


class TrialDetail(TypedDict):
    id: int
    prompt: str
    chat: bool
    """the prompt was sent as a user message in the model's chat template"""
    prompt_text: str
    """the exact text sent to the model (the rendered template, or the prompt)"""
    response: str
    n_prompt: int
    interrupted: bool
    errors: list[str]
    timings: dict[str, float | None]
    tokens: list[TokenOut]
    steps: list[StepSummary]


class StepTensor(TypedDict):
    id: int
    name: str
    layer: int
    type: str
    category: str
    stats: list[float | None]
    rows: list[list[float | None]] | None


class StepAttention(TypedDict):
    layer: int
    tensor_id: int
    n_kv: int
    n_head: int
    mean_entropy: list[float | None]


class StepDetail(TypedDict):
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


class Edge(TypedDict):
    head: int
    pos: int
    p: float
    distance: int
    token_text: str
    sink: bool


class TokenLayerAttention(TypedDict):
    layer: int
    entropy: list[float]
    coverage: float
    fingerprint: list[float]
    """exactly 20 values"""
    periodicity: float
    zone: str
    edges: list[Edge]


class TokenAttention(TypedDict):
    pos: int
    text: str
    step: int
    prompt: bool
    zone: str | None
    layers: list[TokenLayerAttention]


class Attention(TypedDict):
    trial_id: int
    step: int | None
    layer: int | None
    head: int | None
    n_head: int
    top_k: int | None
    attention_layers: list[int]
    fingerprint_names: list[str]
    n_steps: int
    """steps in the trial; ``tokens`` are the query tokens of steps start..stop-1"""
    start: int
    stop: int
    next: int | None
    """the start of the next page (ask again with start=next); null: this reaches the trial's end,
    or the request named a step or a token"""
    next_pos: int | None
    """the query position within step ``next`` where the next page begins (ask with pos=next_pos);
    null: at that step's first token (a step too large for one page is split by its tokens)"""
    tokens: list[TokenAttention]


class TokenZone(TypedDict):
    pos: int
    step: int
    zone: str
    text: str


class DeltaEntry(TypedDict):
    id: int
    name: str
    layer: int
    type: str
    value: float


class StepState(TypedDict):
    step: int
    phase: str
    label: str
    confidence: float
    attention_energy: float
    ffn_energy: float
    depth_energy: list[float]
    delta: list[DeltaEntry]


class Interpretation(TypedDict):
    trial_id: int
    n_steps: int
    """steps in the trial; zones and states are those of steps start..stop-1"""
    start: int
    stop: int
    next: int | None
    """the start of the next page (ask again with start=next); null: this reaches the trial's end"""
    zone_names: list[str]
    state_names: list[str]
    zones: list[TokenZone]
    zone_distribution: dict[str, float]
    dominant_zone: str | None
    states: list[StepState]


class LensGrid(TypedDict):
    trial_id: int
    layers: list[int]
    tokens: list[str]
    n_prompt: int
    top_ids: list[list[int | None]]
    """[layer][token position]: the lens's top-1 token; null where llama.cpp computed no row"""
    top_texts: list[list[str | None]]
    top_p: list[list[float | None]]
    entropy: list[list[float | None]]
    next_rank: list[list[int | None]]
    """rank of the token that came next (0: top-1)"""
    first_final_layer: list[int | None]
    """per position: the first layer whose top-1 is the last layer's (the final prediction)"""


class LensToken(TypedDict):
    id: int
    text: str
    p: float


class LensCell(TypedDict):
    trial_id: int
    layer: int
    pos: int
    top: list[LensToken]
    entropy: float | None
    next_id: int | None
    next_text: str | None
    next_rank: int | None
    next_p: float | None


class ControlInfo(TypedDict):
    """A control vector applied during a trial (capture format 2.3, ``trials[].control``)."""

    file: str
    """the control vector's file name"""
    sha256: str
    layers: list[int]
    """[first, last], inclusive: the llama.cpp blocks whose output the vector was added to"""
    strength: float
    """0: the unsteered run"""
    n_embd: int


class SweepInfo(TypedDict):
    """The trial's place in a sweep (``spectra-vis steer try``; ``trials[].sweep``)."""

    id: str
    """shared by the trials of one sweep"""
    strength: float
    baseline: int
    """the trial id of the sweep's strength-0 trial"""


class PairInfo(TypedDict):
    """The trial's place in a pair made by ``spectra-vis compare`` (capture format 2.2, ``trials[].pair``)."""

    role: Literal["reference", "candidate"]
    reference: int | None
    """the candidate: its reference trial's id"""
    candidate: int | None
    """the reference: its candidate trial's id"""
    forced: bool
    """the trial read given tokens (the reference's) rather than sampling"""


class TrialBrief(TypedDict):
    id: int
    prompt: str
    chat: bool
    """the prompt was sent in the model's chat template"""
    response: str
    n_tokens: int
    n_prompt: int
    n_steps: int
    control: ControlInfo | None
    """the control vector applied during the trial (null: unsteered)"""
    sweep: SweepInfo | None
    """the trial is one strength of a sweep (null: not)"""
    pair: PairInfo | None
    """the trial is one of a pair made by spectra-vis compare (null: not)"""


class Summary(CaptureSummary):
    """The capture's summary plus its trials, layers and attention layers."""

    trial_list: list[TrialBrief]
    layers: list[int]
    attention_layers: list[int]
    stat_names: list[str]


# Field docstrings become descriptions in the OpenAPI schema (pydantic's attribute docstrings).
for _payload in (
    ModelsOut, TrialDetail, TokenOut, TokenLayerAttention, TrialBrief, LensGrid, ControlInfo, SweepInfo, PairInfo,
):  # fmt: skip
    setattr(_payload, "__pydantic_config__", {"use_attribute_docstrings": True})  # noqa: B010


class CompareSide(TypedDict):
    trial: int
    model: str | None
    n_tokens: int
    capture_id: NotRequired[str]
    """the REST API: the loaded capture the trial is in"""


class NextTokenComparison(TypedDict):
    """Per token position: the exact next-token comparison through both output heads (null where a
    position has no final-norm row in both trials)."""

    kl: list[float | None]
    """KL(a || b) in nats"""
    top1_a: list[int | None]
    top1_b: list[int | None]
    p_b_of_a: list[float | None]
    """b's probability of the token that came next in a"""
    p_a_of_b: list[float | None]
    """a's probability of the token that came next in b"""


class NextTokenProgress(TypedDict):
    """How far the pass over the output heads that computes ``next_token`` has come (the server runs
    it in the background; poll the comparison until ``next_token_progress`` is null)."""

    done: int
    """blocks of the vocabulary done"""
    total: int
    """blocks of the vocabulary in all (0 until the heads are open)"""


class CompareSummary(TypedDict):
    n_shared: int
    diverge_at: int | None
    mean_kl: NotRequired[float | None]
    top1_agreement: NotRequired[float | None]
    """the fraction of positions where both top-1 tokens agree"""
    n_next_token: NotRequired[int]
    mean_cosine: NotRequired[float | None]


class ComparisonOut(TypedDict):
    """Two trials compared (``spectra_vis.compare``); a is the reference. Arrays [layer][token] run
    over the shared tokens; null where a value is missing."""

    a: CompareSide
    b: CompareSide
    n_shared: int
    """tokens compared: the shared prefix of the two token sequences"""
    diverge_at: int | None
    """the first position where the token ids differ (null: one is a prefix of the other)"""
    tokens: list[str]
    n_prompt: int
    layers: list[int]
    types: list[str]
    stats: dict[str, list[list[float | None]]]
    """statistic -> [layer][type]: (mean_b - mean_a) / |mean_a| over the shared tokens"""
    resid_l2_change: list[list[float | None]]
    """[layer][token]: relative change of the residual stream's L2 (l_out statistics)"""
    cosine: list[list[float | None]] | None
    """[layer][token]: cosine similarity of the residual vectors (null: no vectors)"""
    rel_l2: list[list[float | None]] | None
    """[layer][token]: |b - a| / |a| of the residual vectors"""
    drift: list[float | None] | None
    """the drift curve: per layer, the mean residual cosine"""
    layer_rel_l2: list[float | None] | None
    next_token: NextTokenComparison | None
    next_token_progress: NextTokenProgress | None
    """set while next_token is being computed (null then): poll until it is null"""
    summary: CompareSummary
    notices: list[str]


class Projection(TypedDict):
    """A steered trial's residual stream projected on the control vector's direction
    (``trials[].projection``): where the model "thinks along" the concept, steered or not."""

    trial: int
    layers: list[int]
    """the block layers the vector has a direction for"""
    n_tokens: int
    n_prompt: int
    tokens: list[str]
    values: list[list[float | None]]
    """[layer][token]: the l_out row projected on the layer's unit direction, in residual units (null: no row)"""
    strength: float | None
    """the strength the trial ran with (null: no control recorded)"""
    control_file: str | None
    """the control vector's file name"""


setattr(Projection, "__pydantic_config__", {"use_attribute_docstrings": True})  # noqa: B010
