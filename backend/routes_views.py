"""Routes for what the viewer shows: models, colours, flows, analysis, grid, heat maps,
trials, steps, attention and interpretation. Each is one call into ``spectra_vis.analysis``
on a loaded capture; computed payloads are cached per capture.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import StreamingResponse

from backend import schemas as S
from backend.comparisons import ComparisonEntry, start_comparison
from backend.deps import OrjsonResponse, StoreDep
from backend.store import Loaded
from spectra_vis import analysis
from spectra_vis.analysis import paging
from spectra_vis.analysis import payloads as P
from spectra_vis.analysis.trace import trace_lines
from spectra_vis.constants import EMBED_LAYER, OUTPUT_LAYER
from spectra_vis.errors import InvalidArgument

router = APIRouter(prefix="/api", tags=["views"])

CaptureIdQuery = Annotated[str | None, Query(max_length=64, description="Loaded capture id; default: the last loaded")]
TrialQuery = Annotated[int, Query(ge=0, le=2**31, description="Trial index")]
TrialPath = Annotated[int, Path(ge=0, le=2**31, description="Trial index")]
StepQuery = Annotated[int | None, Query(ge=0, le=2**31, description="Step index within the trial")]


def _reply(capture_id: str, payload: Mapping[str, Any]) -> OrjsonResponse:
    """A capture-scoped payload with the id of its capture (the ``...Out`` models of schemas.py)."""
    return OrjsonResponse({"capture_id": capture_id, **payload})


def _cached_reply(loaded: Loaded, key: tuple[Any, ...], compute: Callable[[], Mapping[str, Any]]) -> Response:
    """A capture-scoped payload computed once: the cache keeps its JSON bytes, not the objects (a whole
    trial's attention is ~90 MB of JSON and several times that as Python objects)."""
    body = loaded.cached(key, lambda: OrjsonResponse({"capture_id": loaded.capture_id, **compute()}).body)
    return Response(body, media_type="application/json")


@router.get("/models", response_model=S.ModelsOut)
def models() -> OrjsonResponse:
    return OrjsonResponse(analysis.models())


@router.get("/colors", response_model=S.ColorsOut)
def colors() -> OrjsonResponse:
    return OrjsonResponse(analysis.colors())


@router.get("/flows", response_model=S.FlowsOut)
def flows(store: StoreDep, model_family: Annotated[str | None, Query(max_length=64)] = None) -> OrjsonResponse:
    """Data-flow edges between tensor types; default family: the current capture's, else llama."""
    family = model_family
    if family is None:
        family = store.get().capture.data["model"].get("family", "llama") if store.current else "llama"
    return OrjsonResponse(analysis.flows(family.lower().strip()))


@router.post("/analyze", response_model=S.AnalyzeOut)
def analyze(store: StoreDep, body: S.AnalyzeRequest) -> Response:
    loaded = store.get(body.capture_id)
    key = ("analyze", body.trial_id, body.model_family)
    return _cached_reply(loaded, key, lambda: analysis.analyze(loaded.capture, body.trial_id, body.model_family))


@router.post("/tensor-grid", response_model=S.GridOut)
def tensor_grid(store: StoreDep, body: S.GridRequest) -> OrjsonResponse:
    loaded = store.get(body.capture_id)
    return _reply(
        loaded.capture_id, analysis.tensor_grid(loaded.capture, body.trial_id, body.step, body.metric, body.depth)
    )


@router.get("/heatmap", response_model=S.HeatmapOut)
def heatmap(
    store: StoreDep,
    capture_id: CaptureIdQuery = None,
    trial_id: TrialQuery = 0,
    metric: S.Metric = "l2",
    axis: analysis.HeatmapAxis = "types",
    step: Annotated[int, Query(ge=0, le=2**31, description="Step (axis=types)")] = 0,
    tensor_type: Annotated[str, Query(alias="type", max_length=100, description="Tensor type (axis=tokens)")] = "l_out",
) -> OrjsonResponse:
    """Layers x tensor types at one step, or layers x tokens (the timeline) for one tensor type."""
    loaded = store.get(capture_id)
    return _reply(loaded.capture_id, analysis.heatmap(loaded.capture, trial_id, metric, axis, step, tensor_type))


@router.get("/trials/{trial_id}", response_model=S.TrialOut)
def trial(store: StoreDep, trial_id: TrialPath, capture_id: CaptureIdQuery = None) -> OrjsonResponse:
    loaded = store.get(capture_id)
    return _reply(loaded.capture_id, analysis.trial_detail(loaded.capture, trial_id))


@router.get("/trials/{trial_id}/steps/{n}", response_model=S.StepOut)
def step(
    store: StoreDep,
    trial_id: TrialPath,
    n: Annotated[int, Path(ge=0, le=2**31, description="Step index")],
    capture_id: CaptureIdQuery = None,
) -> OrjsonResponse:
    loaded = store.get(capture_id)
    return _reply(loaded.capture_id, analysis.step_detail(loaded.capture, trial_id, n))


@router.get(
    "/trials/{trial_id}/trace",
    response_class=Response,
    responses={200: {"content": {"application/x-ndjson": {}}, "description": "The trial as a JSONL trace"}},
)
def trace(store: StoreDep, trial_id: TrialPath, capture_id: CaptureIdQuery = None) -> Response:
    """The trial as a JSONL trace (header, tokens, steps with fingerprints, metrics; docs/ATTENTION.md).
    Uploading the file (POST /api/upload) turns it back into a one-trial capture."""
    loaded = store.get(capture_id)
    lines = trace_lines(loaded.capture, trial_id)  # errors before the first byte; then streamed line by line
    stem = loaded.name.removesuffix(".json")
    return StreamingResponse(
        lines,
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="{stem}_trial{trial_id}.jsonl"'},
    )


StartQuery = Annotated[int, Query(ge=0, le=2**31, description="First step of the page (default 0)")]
StopQuery = Annotated[
    int | None,
    Query(ge=0, le=2**31, description="Step after the last sent; default: as many as fit the page budget"),
]


def _paged_reply(
    store: StoreDep,
    loaded: Loaded,
    key: tuple[Any, ...],
    start: int,
    estimate: Callable[[int], int],
    compute: Callable[[int], Mapping[str, Any]],
) -> Response:
    """The page of a whole-trial view from step ``start``: as many steps as the server's page budget
    holds (``estimate(budget)``: where the page ends; ``compute(stop)``: its payload), cached."""
    budget = store.settings.page_bytes

    def body() -> bytes:
        return paging.fit_page(lambda s: _json(loaded, compute(s)), start, estimate(budget - _WRAP), budget)[0]

    return Response(loaded.cached((*key, start, "page", budget), body), media_type="application/json")


_WRAP = 100  # {"capture_id": ...} around a payload, in bytes


@router.get("/trials/{trial_id}/interpretation", response_model=S.InterpretationOut)
def interpretation(
    store: StoreDep,
    trial_id: TrialPath,
    capture_id: CaptureIdQuery = None,
    start: StartQuery = 0,
    stop: StopQuery = None,
    delta: Annotated[bool, Query(description="Send each state's delta bar (every tensor); false: empty")] = True,
) -> Response:
    """Zone per token, cognitive state and delta bar per step, zone distribution (docs/ATTENTION.md);
    steps ``start..stop-1`` (the distribution is always the whole trial's). Without ``stop``: a page of
    as many steps as fit the page budget; ``next`` says where the next page starts."""
    loaded = store.get(capture_id)
    cap = loaded.capture
    if stop is None:
        return _paged_reply(
            store,
            loaded,
            ("interpretation", trial_id, delta),
            start,
            lambda budget: paging.interpretation_stop(cap, trial_id, start, budget, delta=delta),
            lambda s: analysis.interpretation(cap, trial_id, start=start, stop=s, delta=delta),
        )
    return _cached_reply(
        loaded,
        ("interpretation", trial_id, start, stop, delta),
        lambda: analysis.interpretation(cap, trial_id, start=start, stop=stop, delta=delta),
    )


@router.get("/trials/{trial_id}/lens", response_model=S.LensGridOut | S.LensCellOut)
def lens(
    store: StoreDep,
    trial_id: TrialPath,
    capture_id: CaptureIdQuery = None,
    layer: Annotated[int | None, Query(ge=0, le=4096, description="With token: one cell's top-k")] = None,
    token: Annotated[int | None, Query(ge=0, le=2**31, description="Token position (with layer)")] = None,
    k: Annotated[int, Query(ge=1, le=64, description="Tokens of the cell (at most what the capture kept)")] = 5,
) -> Response:
    """The logit lens: the layers x tokens grid of top-1 tokens (no layer/token), or one cell's top-k."""
    loaded = store.get(capture_id)
    if (layer is None) != (token is None):
        raise InvalidArgument("give both layer and token for one cell, or neither for the grid")
    if layer is not None and token is not None:
        return _reply(loaded.capture_id, analysis.lens_cell(loaded.capture, trial_id, layer, token, k))
    return _cached_reply(loaded, ("lens", trial_id), lambda: analysis.lens_grid(loaded.capture, trial_id))


SideQuery = Annotated[
    str, Query(max_length=80, pattern=r"^[A-Za-z0-9_.-]+:[0-9]{1,9}$", description="capture_id:trial")
]


@router.get("/compare", response_model=S.ComparisonOut)
def compare_trials(store: StoreDep, a: SideQuery, b: SideQuery) -> Response:
    """Two trials of loaded captures compared token by token and layer by layer (a: the reference):
    statistics, residual cosine and relative L2, and the next-token block (KL, top-1s) of a pair
    made by ``spectra-vis compare``, of a trial with itself (its logit lens), or through both models'
    heads in the models directory. Computed once per pair of trials and cached; a pass over the heads
    runs in the background: ``next_token`` is null and ``next_token_progress`` set until it is done."""
    (id_a, trial_a), (id_b, trial_b) = (_side(x) for x in (a, b))
    la, lb = store.get(id_a), store.get(id_b)

    def compute() -> ComparisonEntry:
        sides = (la.capture_id, la.capture, trial_a), (lb.capture_id, lb.capture, trial_b)
        return start_comparison(store.compare_jobs, store.head_paths, *sides)

    entry: ComparisonEntry = la.cached(("compare", trial_a, lb.capture_id, trial_b), compute)
    return Response(entry.body(), media_type="application/json")


def _side(text: str) -> tuple[str, int]:
    capture_id, _, trial = text.rpartition(":")
    return capture_id, int(trial)


@router.get("/attention", response_model=S.AttentionOut)
def attention(
    store: StoreDep,
    capture_id: CaptureIdQuery = None,
    trial_id: TrialQuery = 0,
    step: StepQuery = None,
    layer: Annotated[
        int | None, Query(ge=EMBED_LAYER, le=OUTPUT_LAYER, description="Layer; default: every attention layer")
    ] = None,
    head: Annotated[int | None, Query(ge=0, le=4096, description="Head; default: all heads")] = None,
    token: Annotated[int | None, Query(ge=0, le=2**31, description="Query token position")] = None,
    target: Annotated[int | None, Query(ge=0, le=2**31, description="Only edges to this position")] = None,
    start: StartQuery = 0,
    stop: StopQuery = None,
    pos: Annotated[int | None, Query(ge=0, le=2**31, description="First query position, within step start")] = None,
) -> Response:
    """Per query token: top-k edges with token texts (sinks marked), entropy, fingerprint and zone;
    ``target``: only the edges pointing at a position (who attends to it). Without ``step`` and
    ``token``: the query tokens of steps ``start..stop-1`` (from position ``pos`` of step ``start``);
    without ``stop``, a page of as many tokens as fit the page budget (``next`` and ``next_pos`` say
    where the next page starts)."""
    loaded = store.get(capture_id)
    cap = loaded.capture
    if pos is not None and step is None and token is None:
        paging.check_pos(paging.spans_of(cap, trial_id), start, pos)
    if step is None and token is None and stop is None:
        budget = store.settings.page_bytes

        def page() -> bytes:
            first = paging.attention_page(cap, trial_id, start, budget - _WRAP, layer, head, target, pos)
            return paging.fit_attention(cap, trial_id, first, budget, lambda p: _json(loaded, attention_of(p)))

        def attention_of(p: paging.Page) -> P.Attention:
            return analysis.attention(cap, trial_id, None, layer, head, None, target=target, start=p.start,
                                      stop=p.stop, positions=(p.pos, p.pos_stop))  # fmt: skip

        key = ("attention", trial_id, layer, head, target, start, pos, "page", budget)
        return Response(loaded.cached(key, page), media_type="application/json")
    positions = (pos, 2**62) if pos is not None else None
    return _cached_reply(
        loaded,
        ("attention", trial_id, step, layer, head, token, target, start, stop, pos),
        lambda: analysis.attention(
            cap, trial_id, step, layer, head, token, target=target, start=start, stop=stop, positions=positions
        ),
    )


def _json(loaded: Loaded, payload: Mapping[str, Any]) -> bytes:
    return bytes(OrjsonResponse({"capture_id": loaded.capture_id, **payload}).body)
