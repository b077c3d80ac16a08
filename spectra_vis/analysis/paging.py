"""Analysis stage: pages of a long trial's whole-trial views (attention, interpretation).

A view of a whole trial grows with the trial (one layer's attention of a 4,000-token trial of a
32-head model is 91 MB of JSON). The library's ``attention`` and ``interpretation`` still give the
whole trial by default (or steps ``start..stop-1``); a server that wants bounded responses asks
``attention_stop`` / ``interpretation_stop`` where a page from ``start`` should end so that its JSON
stays within a byte budget, and ``fit_page`` checks the serialised page and shrinks it if the
estimate was short. The estimates are upper bounds from the capture's shapes (layers x heads x
top-k edges, token text lengths, tensor names), not from computing the payload. Pure numpy; no UI.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import orjson

from spectra_vis.analysis import interpret
from spectra_vis.analysis._common import _trial
from spectra_vis.analysis.digest import TrialDigest, digest
from spectra_vis.errors import InvalidArgument
from spectra_vis.store.capture_file import Capture

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
    one step: a single step larger than the budget is sent whole)."""
    body = build(stop)
    while len(body) > budget and stop > start + 1:
        stop = start + max(1, min(stop - start - 1, int((stop - start) * budget / len(body) * 0.9)))
        body = build(stop)
    return body, stop


def attention_stop(
    cap: Capture, trial_id: int, start: int, budget: int, layer: int | None = None, head: int | None = None,
    target: int | None = None,
) -> int:  # fmt: skip
    """Where a page of ``analysis.attention`` of the whole trial from step ``start`` ends so that its
    JSON is at most ``budget`` bytes (an estimate; see ``fit_page``)."""
    trial = _trial(cap, trial_id)
    n_steps = len(trial["steps"])
    check_range(start, None, n_steps)
    d = digest(cap, trial_id) if n_steps and not cap.legacy else None
    if d is None:
        return n_steps
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
    per_token = np.where(kept, _TOKEN + _pad(texts, pos.size) + len(layers) * layer_cost + edges * edge, 0.0)
    return page_stop(_per_step(d, per_token), start, budget)


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
