"""Analysis stage: pages of a long trial's whole-trial views (attention, interpretation).

A view of a whole trial grows with the trial (one layer's attention of a 4,000-token trial of a
32-head model is 91 MB of JSON). The library's ``attention`` and ``interpretation`` still give the
whole trial by default (or steps ``start..stop-1``); a server that wants bounded responses asks
``attention_page`` / ``interpretation_stop`` where a page from ``start`` should end so that its JSON
stays within a byte budget, and ``fit_attention`` / ``fit_page`` check the serialised page and
shrink it if the estimate was short. An attention page is a run of query tokens, so a step too
large for one page (a long prompt's prefill) is split between pages; an interpretation page is a
run of whole steps. The estimates are upper bounds from the capture's shapes (layers x heads x
top-k edges, token text lengths, tensor names), not from computing the payload. Pure numpy; no UI.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import orjson

from spectra_vis.analysis import interpret
from spectra_vis.analysis._common import _trial
from spectra_vis.analysis.digest import TrialDigest, digest
from spectra_vis.errors import InvalidArgument
from spectra_vis.store.capture_file import Capture

Spans = tuple[np.ndarray, np.ndarray]  # each step's first query position and the one after its last
PAGE_BYTES = 4 * 2**20  # default budget of one page of JSON: a short trial (the demo's) comes whole

# Upper bounds of the JSON bytes of each part of a payload, without its token texts.
_TOKEN = 120  # {"pos", "text", "step", "prompt", "zone", "layers"} of a token of /api/attention
_LAYER = 460  # {"layer", "coverage", "fingerprint" (20 rounded floats), "periodicity", "zone", "edges"}
_ENTROPY = 26  # one head's entropy
_EDGE = 110  # {"head", "pos", "p", "distance", "token_text", "sink"}
_STATE = 320  # one step's state of /api/trials/{id}/interpretation, without its delta bar
_ZONE = 90  # one token's zone entry
_DELTA = 110  # one delta-bar entry, without its name and type


def check_range(start: int, stop: int | None, n_steps: int) -> int:
    """``stop`` clamped to the trial (None: its end); InvalidArgument for a range that is not one."""
    if start < 0 or start > n_steps:
        raise InvalidArgument(f"start={start} is outside the trial's {n_steps} steps; give 0 <= start <= {n_steps}")
    if stop is not None and stop < start:
        raise InvalidArgument(
            f"stop={stop} is before start={start}; give start <= stop (stop: the step after the last one)"
        )
    return n_steps if stop is None else min(stop, n_steps)


def next_start(stop: int, n_steps: int) -> int | None:
    """Where the page after one ending at ``stop`` starts; None when it reaches the trial's end."""
    return stop if stop < n_steps else None


def page_stop(costs: np.ndarray, start: int, budget: int) -> int:
    """The last ``stop`` such that steps ``start..stop-1`` cost at most ``budget`` in all (at least
    one step, however much it costs; never past the end)."""
    n = len(costs)
    if start >= n:
        return n
    k = int(np.searchsorted(np.cumsum(costs[start:]), budget, side="right"))
    return start + max(k, 1)


def fit_page(build: Callable[[int], bytes], start: int, stop: int, budget: int) -> tuple[bytes, int]:
    """The serialised page ``build(stop)`` and its stop, shrunk while it is over ``budget`` (down to
    one unit: a step of the interpretation, a query token of the attention)."""
    body = build(stop)
    while len(body) > budget and stop > start + 1:
        stop = start + max(1, min(stop - start - 1, int((stop - start) * budget / len(body) * 0.9)))
        body = build(stop)
    return body, stop


@dataclass(frozen=True)
class Page:
    """A page of a whole trial's attention: the query tokens at positions ``pos..pos_stop-1``, which
    steps ``start..stop-1`` evaluated (the first and the last step may be in it only in part: a step
    too large for one page is split between pages by its tokens)."""

    start: int
    stop: int
    pos: int
    pos_stop: int


def attention_page(
    cap: Capture, trial_id: int, start: int, budget: int, layer: int | None = None, head: int | None = None,
    target: int | None = None, pos: int | None = None,
) -> Page:  # fmt: skip
    """The page of ``analysis.attention`` of the whole trial from step ``start`` (from its query
    position ``pos``, default its first) whose JSON is at most ``budget`` bytes: as many tokens as
    the estimate says fit, at least one (an estimate; ``fit_attention`` checks it). When the steps'
    positions are not in order, whole steps (at least one)."""
    trial = _trial(cap, trial_id)
    n_steps = len(trial["steps"])
    check_range(start, None, n_steps)
    d = digest(cap, trial_id) if n_steps and not cap.legacy else None
    spans = _spans(d) if d is not None else None
    if pos is not None:
        check_pos(spans, start, pos)
    if d is None:
        return Page(start, n_steps, 0, _NO_END)
    per_token = _attention_costs(cap, trial, d, layer, head, target)
    if spans is None:
        return Page(start, page_stop(_per_step(d, per_token), start, budget), 0, _NO_END)
    lo, hi = spans
    end = int(hi.max(initial=0))
    p0 = pos if pos is not None else int(lo[start]) if start < n_steps else end
    p1 = p0 + max(1, int(np.searchsorted(np.cumsum(per_token[p0:end]), budget, side="right"))) if p0 < end else end
    return page_of(spans, start, p0, min(p1, end))


def fit_attention(cap: Capture, trial_id: int, page: Page, budget: int, build: Callable[[Page], bytes]) -> bytes:
    """``build(page)`` (the serialised page), made smaller while it is over ``budget``: by query
    tokens, or by steps when the steps' positions are not in order."""
    spans = spans_of(cap, trial_id)
    if page.pos_stop == _NO_END or spans is None:
        return fit_page(lambda s: build(Page(page.start, s, 0, _NO_END)), page.start, page.stop, budget)[0]
    return fit_page(lambda p1: build(page_of(spans, page.start, page.pos, p1)), page.pos, page.pos_stop, budget)[0]


_NO_END = 1 << 62  # pos_stop of a page of whole steps


def page_of(spans: Spans, start: int, p0: int, p1: int) -> Page:
    """The page of positions ``p0..p1-1`` from step ``start``: the steps it takes tokens from."""
    lo, hi = spans
    if p1 >= int(hi.max(initial=0)):
        return Page(start, len(lo), p0, p1)
    j = int(np.flatnonzero(hi > p1)[0])  # the step of the first position after the page (or the next one)
    return Page(start, j + 1 if p1 > lo[j] else j, p0, p1)


def next_of(spans: Spans, stop: int, pos_stop: int) -> tuple[int | None, int | None]:
    """(next, next_pos) after a page that ends before step ``stop`` or, inside step ``stop - 1``,
    before position ``pos_stop``: the step and the query position within it where the next begins
    (next_pos None: at the step's first token; next None: at the trial's end)."""
    if 0 < stop <= len(spans[0]) and spans[0][stop - 1] < pos_stop < spans[1][stop - 1]:
        return stop - 1, pos_stop
    return next_start(stop, len(spans[0])), None


def check_pos(spans: Spans | None, start: int, pos: int) -> None:
    """InvalidArgument unless ``pos`` is a query position of step ``start``."""
    if spans is None or start >= len(spans[0]):
        raise InvalidArgument(f"pos={pos} is not a query position of step {start}; leave pos out")
    lo, hi = int(spans[0][start]), int(spans[1][start])
    if not lo <= pos < hi:
        where = f"its query positions are {lo}..{hi - 1}" if hi > lo else "it has no query tokens"
        raise InvalidArgument(f"pos={pos} is not a query position of step {start} ({where}); give one or leave pos out")


def spans_of(cap: Capture, trial_id: int) -> Spans | None:
    """Each step's first query position and the one after its last (``_spans``), or None."""
    n_steps = len(_trial(cap, trial_id)["steps"])
    return _spans(digest(cap, trial_id)) if n_steps and not cap.legacy else None


def _spans(d: TrialDigest) -> Spans | None:
    """(lo, hi): step j evaluated query positions lo[j]..hi[j]-1; None when the steps' positions are not
    in order (no page then splits a step)."""
    lo = np.asarray([s["pos"] for s in d.steps], dtype=np.int64)
    hi = lo + np.asarray([s["n_tokens"] for s in d.steps], dtype=np.int64)
    full = hi > lo
    if np.any(np.diff(lo[full]) < 0) or np.any(lo[full][1:] < hi[full][:-1]):
        return None
    return lo, hi


def _attention_costs(
    cap: Capture, trial: dict, d: TrialDigest, layer: int | None, head: int | None, target: int | None
) -> np.ndarray:
    """An upper bound of the JSON bytes of each query position's entry in ``analysis.attention``."""
    every = sorted(interpret.attention_tensors(cap.data))
    layers = every if layer is None else [layer] if layer in every else []
    n_heads = 1 if head is not None else max(d.n_head, 1)
    k = int(cap.data["preset"].get("top_k") or 0) or 64
    texts = _text_bytes(tuple(trial["tokens"]["texts"]))
    edge = _EDGE + (float(texts.mean()) if texts.size else 0.0)
    pos = np.arange(max(len(texts), _last_pos(d)))
    edges = _edge_counts(d, [every.index(L) for L in layers], head, target, pos, n_heads, k)  # [token], all layers
    kept = edges > 0 if target is not None else np.ones(pos.size, dtype=bool)
    layer_cost = _LAYER + n_heads * _ENTROPY
    return np.where(kept, _TOKEN + _pad(texts, pos.size) + len(layers) * layer_cost + edges * edge, 0.0)


def interpretation_stop(cap: Capture, trial_id: int, start: int, budget: int, delta: bool = True) -> int:
    """Where a page of ``analysis.interpretation`` from step ``start`` ends so that its JSON is at
    most ``budget`` bytes (an estimate; see ``fit_page``). The zone distribution is not paged."""
    trial = _trial(cap, trial_id)
    n_steps = len(trial["steps"])
    check_range(start, None, n_steps)
    d = digest(cap, trial_id) if n_steps and not cap.legacy else None
    if d is None:
        return n_steps
    texts = _text_bytes(tuple(trial["tokens"]["texts"]))
    per_token = _ZONE + _pad(texts, max(len(texts), _last_pos(d)))
    costs = _per_step(d, per_token) + _STATE
    if delta:
        catalogue = cap.data["tensors"]
        rows = [catalogue[int(t)] for t in d.ids]
        costs += sum(_DELTA + len(orjson.dumps(t["name"])) + len(orjson.dumps(t["type"])) for t in rows)
    return page_stop(costs, start, budget)


def _edge_counts(
    d: TrialDigest, layers: list[int], head: int | None, target: int | None, pos: np.ndarray, n_heads: int, k: int
) -> np.ndarray:
    """Per query position, an upper bound of its edges over ``layers`` (indices into the digest's
    attention columns, which are in layer order): each head's top-k positions
    at distance >= 0 (at most q + 1 of them); with ``target``, those pointing at it, counted in the
    digest's attention columns when there are some."""
    if target is None:
        return len(layers) * n_heads * np.minimum(k, pos + 1)
    col = d.columns
    if col is None:
        return np.where(pos >= target, len(layers) * n_heads, 0)
    out = np.zeros(pos.size, dtype=np.int64)
    for a in layers:
        apos = np.asarray(col["apos"][a])  # [position, head, k]
        if head is not None:
            apos = apos[:, head : head + 1]
        hits = (apos == target).sum(axis=(1, 2))
        m = min(out.size, hits.size)
        out[:m] += hits[:m]
    return out


def _per_step(d: TrialDigest, per_token: np.ndarray) -> np.ndarray:
    """Sum of ``per_token`` over each step's tokens (a step's tokens: pos..pos + n_tokens - 1)."""
    cum = np.concatenate([[0.0], np.cumsum(per_token)])
    lo = np.asarray([s["pos"] for s in d.steps], dtype=np.int64)
    hi = lo + np.asarray([s["n_tokens"] for s in d.steps], dtype=np.int64)
    lo, hi = np.clip(lo, 0, per_token.size), np.clip(hi, 0, per_token.size)
    return np.asarray(cum[hi] - cum[lo], dtype=np.float64)


def _last_pos(d: TrialDigest) -> int:
    return max((int(s["pos"]) + int(s["n_tokens"]) for s in d.steps), default=0)


def _pad(values: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n)
    out[: min(n, values.size)] = values[:n]
    return out


@lru_cache(maxsize=8)
def _text_bytes(texts: tuple[str, ...]) -> np.ndarray:
    """The JSON length of each token text (quotes and escapes included)."""
    return np.asarray([len(orjson.dumps(t)) for t in texts], dtype=np.float64)
