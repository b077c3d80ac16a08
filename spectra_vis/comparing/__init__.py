"""Comparing stage: two trials side by side, token by token and layer by layer.

``compare(cap_a, trial_a, cap_b, trial_b)`` aligns the trials by token (the shared prefix of
their token ids; where they differ, ``diverge_at`` says where) and gives:

- per layer x tensor type, the signed relative change of each statistic's mean over the shared
  tokens, ``(mean_b - mean_a) / |mean_a|``;
- per layer x token, the relative change of the residual stream's L2 (``l_out`` statistics, in
  every capture), and where both trials hold vectors its cosine similarity and relative L2 error
  ``|b - a| / |a|`` (``blocks.L.hook_resid_post``);
- per token, where both hold final-norm vectors (``ln_final.hook_normalized``: the rows llama.cpp
  turns into logits) and both models' output heads are at hand, the exact next-token comparison
  through the lens's head over the whole vocabulary: KL(a || b), top-1 agreement, and the
  probability each run gives to the other's next token;
- summaries: per-layer means and the drift curve (mean residual cosine against layer).

Trial a is the reference. A pair made by ``spectra-vis compare`` stores its next-token block in
the candidate trial (``trials[].pair.next_token``), so that the comparison of the pair needs no
model file later; a trial compared with itself reads its block from its logit lens; other pairs
need the two GGUF files (``models=``). The next-token block: ``comparing.next_token``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spectra_vis.analysis.digest import digest, token_stats_step
from spectra_vis.analysis.payloads import CompareSide, CompareSummary, ComparisonOut, NextTokenComparison
from spectra_vis.capturing.lens import LogitLens
from spectra_vis.comparing.next_token import (
    FINAL_NORM_HOOK,
    NEXT_TOKEN_FIELDS,
    NextTokenInputs,
    lens_self_block,
    next_token_block,
    next_token_inputs,
    same_trial,
    stored_next_token,
)
from spectra_vis.constants import FINAL_NORM_LAYER, STAT_NAMES
from spectra_vis.errors import NotFound
from spectra_vis.store.capture_file import Capture, trial_of
from spectra_vis.store.lazy import LazySteps

__all__ = [
    "FINAL_NORM_HOOK",
    "NEXT_TOKEN_FIELDS",
    "Comparison",
    "NextTokenInputs",
    "compare",
    "next_token_block",
    "next_token_inputs",
    "same_trial",
    "stored_next_token",
    "trial_model",
]

RESIDUAL = "l_out"


@dataclass
class Comparison:
    """Two trials compared; every array is float64 with NaN where a value is missing."""

    a: CompareSide  # {"trial": id, "model": name, "n_tokens": n}
    b: CompareSide
    n_shared: int  # tokens compared (the shared prefix)
    diverge_at: int | None  # the first position where the token ids differ (None: one is a prefix of the other)
    tokens: list[str]  # texts of the shared tokens (a's)
    n_prompt: int
    layers: list[int]
    types: list[str]
    stats: dict[str, np.ndarray]  # stat -> (layers, types) signed relative change of the mean
    resid_l2_change: np.ndarray  # (layers, tokens) signed relative change of the residual's L2
    cosine: np.ndarray | None = None  # (layers, tokens) residual cosine similarity
    rel_l2: np.ndarray | None = None  # (layers, tokens) |b - a| / |a| of the residual
    next_token: dict[str, np.ndarray] | None = None  # NEXT_TOKEN_FIELDS -> (tokens,)
    notices: list[str] = field(default_factory=list)
    pending: NextTokenInputs | None = field(default=None, repr=False)  # defer_heads: what the head pass needs

    @property
    def next_token_pending(self) -> bool:
        """compare(defer_heads=True) left ``next_token`` to a pass over the heads (``pending.compute``)."""
        return self.pending is not None

    # ----- summaries ---------------------------------------------------------------------------
    @property
    def drift(self) -> np.ndarray | None:
        """The drift curve: per layer, the mean residual cosine over the shared tokens."""
        return None if self.cosine is None else _nanmean(self.cosine, axis=1)

    @property
    def layer_rel_l2(self) -> np.ndarray | None:
        return None if self.rel_l2 is None else _nanmean(self.rel_l2, axis=1)

    def summary(self) -> CompareSummary:
        out: CompareSummary = {"n_shared": self.n_shared, "diverge_at": self.diverge_at}
        if self.next_token is not None:
            kl, agree = self.next_token["kl"], self.next_token["top1_a"] == self.next_token["top1_b"]
            have = ~np.isnan(kl)
            out["mean_kl"] = _num(kl[have].mean()) if have.any() else None
            out["top1_agreement"] = _num(agree[have].mean()) if have.any() else None
            out["n_next_token"] = int(have.sum())
        if self.cosine is not None:
            out["mean_cosine"] = _num(np.nanmean(self.cosine)) if np.isfinite(self.cosine).any() else None
        return out

    def to_dict(self) -> ComparisonOut:
        """JSON-ready: arrays as lists, NaN as null."""
        nt: NextTokenComparison | None = None
        if self.next_token is not None:
            lists: dict[str, Any] = {k: _lists(v) for k, v in self.next_token.items()}
            ids = {k: [None if v is None else int(v) for v in lists[k]] for k in ("top1_a", "top1_b")}
            nt = {"kl": lists["kl"], "top1_a": ids["top1_a"], "top1_b": ids["top1_b"],
                  "p_b_of_a": lists["p_b_of_a"], "p_a_of_b": lists["p_a_of_b"]}  # fmt: skip
        return {
            "a": self.a,
            "b": self.b,
            "n_shared": self.n_shared,
            "diverge_at": self.diverge_at,
            "tokens": self.tokens,
            "n_prompt": self.n_prompt,
            "layers": self.layers,
            "types": self.types,
            "stats": {k: _lists(v) for k, v in self.stats.items()},
            "resid_l2_change": _lists(self.resid_l2_change),
            "cosine": _lists(self.cosine),
            "rel_l2": _lists(self.rel_l2),
            "drift": _lists(self.drift),
            "layer_rel_l2": _lists(self.layer_rel_l2),
            "next_token": nt,
            "next_token_progress": {"done": 0, "total": 0} if self.next_token_pending else None,
            "summary": self.summary(),
            "notices": self.notices,
        }


def compare(
    cap_a: Capture,
    trial_a: int,
    cap_b: Capture,
    trial_b: int,
    *,
    models: tuple[str | os.PathLike[str] | None, str | os.PathLike[str] | None] | None = None,
    heads: tuple[LogitLens, LogitLens] | None = None,
    defer_heads: bool = False,
) -> Comparison:
    """Compare trial ``trial_a`` of ``cap_a`` (the reference) with ``trial_b`` of ``cap_b``.

    The next-token block comes from the pair's stored values when the two trials are a pair made by
    ``spectra-vis compare``, else from ``heads`` (two LogitLens) or ``models`` (their GGUF paths);
    without them it is None and a notice says why. A trial compared with itself takes its block from
    its logit lens where it has one (no head pass). ``defer_heads``: no head pass here; where one
    would fill the block, ``pending`` holds what it needs (a server runs the pass in the background:
    ``pending.compute(heads)``). NotFound for an unknown trial."""
    ta, tb = trial_of(cap_a.data, trial_a), trial_of(cap_b.data, trial_b)
    ids_a, ids_b = ta["tokens"]["ids"], tb["tokens"]["ids"]
    n = min(len(ids_a), len(ids_b))
    diverge = next((i for i in range(n) if ids_a[i] != ids_b[i]), None)
    n_shared = n if diverge is None else diverge
    notices: list[str] = list(dict.fromkeys(cap_a.notices + cap_b.notices))  # e.g. a missing vectors file
    if same_trial(cap_a, trial_a, cap_b, trial_b):
        notices.append("a trial compared with itself: every difference is zero")
    if diverge is not None:
        notices.append(f"the token sequences diverge at position {diverge}: the first {n_shared} tokens are compared")
    model_a, model_b = trial_model(cap_a, trial_a), trial_model(cap_b, trial_b)
    same_shape = model_a.get("architecture") == model_b.get("architecture") and model_a.get("n_layer") == model_b.get(
        "n_layer"
    )
    if not same_shape:
        notices.append(
            f"different models ({model_a.get('architecture')} x {model_a.get('n_layer')} layers and "
            f"{model_b.get('architecture')} x {model_b.get('n_layer')}): statistics only, vectors are not comparable"
        )
    layers = list(range(int(model_a.get("n_layer") or 0)))
    by_key_b = {t["key"]: t for t in cap_b.tensors}
    pairs = [(t, by_key_b[t["key"]]) for t in cap_a.tensors if t["key"] in by_key_b]
    types = _types(pairs)
    stats, resid = _stat_changes((cap_a, trial_a), (cap_b, trial_b), pairs, layers, types, n_shared)
    out = Comparison(
        a={"trial": trial_a, "model": model_a.get("file_name") or model_a.get("name"), "n_tokens": len(ids_a)},
        b={"trial": trial_b, "model": model_b.get("file_name") or model_b.get("name"), "n_tokens": len(ids_b)},
        n_shared=n_shared,
        diverge_at=diverge,
        tokens=list(ta["tokens"]["texts"][:n_shared]),
        n_prompt=int(ta["tokens"].get("n_prompt", 0)),
        layers=layers,
        types=types,
        stats=stats,
        resid_l2_change=resid,
        notices=notices,
    )
    if same_shape:
        _vector_changes(out, cap_a, trial_a, cap_b, trial_b)
        _next_token(out, cap_a, trial_a, cap_b, trial_b, models, heads, defer_heads)
    return out


# ----- statistics ------------------------------------------------------------------------------
Pairs = list[tuple[dict[str, Any], dict[str, Any]]]  # (tensor of a, tensor of b) with the same key


def token_stats(trial: dict[str, Any], tids: list[int], n: int) -> np.ndarray:
    """The statistics of tensors ``tids`` per token position ``(len(tids), n, 8)``, in one pass over
    the steps: a step's per-token rows, or a one-token step's statistics; NaN where neither."""
    out = np.full((len(tids), n, len(STAT_NAMES)), np.nan)
    index = {str(t): i for i, t in enumerate(tids)}
    for step in trial["steps"]:
        token_stats_step(step, index, out, n)
    return out


def side_stats(cap: Capture, trial_id: int, tids: list[int], n: int) -> np.ndarray:
    """``token_stats`` of one side: from the trial's digest (its columns, no step read) when the
    capture's steps are read lazily from its file, else from a walk of the steps in memory."""
    if _digest_backed(cap, trial_id):
        return digest(cap, trial_id).token_stats(tids, n)
    return token_stats(trial_of(cap.data, trial_id), tids, n)


def _may_have_stats(cap: Capture, trial_id: int, tids: list[int]) -> list[bool]:
    """Per tensor, False when the trial surely has no statistics of it (not a row of a lazily loaded
    capture's digest: it was not captured), so that its cells are left NaN without reading them."""
    if _digest_backed(cap, trial_id):
        row = digest(cap, trial_id).row()
        return [int(t) in row for t in tids]
    return [True] * len(tids)


CELL_CHUNK = 32  # layer x type cells read at once from the digests' columns


def _digest_backed(cap: Capture, trial_id: int) -> bool:
    return isinstance(trial_of(cap.data, trial_id)["steps"], LazySteps) and not cap.legacy


def _mean_change(sa: np.ndarray, sb: np.ndarray, same: bool) -> np.ndarray:
    """Per cell, the signed relative change of each statistic's mean over the tokens both sides have
    it for ``(cells, 8)``; NaN where they share none. Zeroes the unshared entries of its arguments."""
    both = ~np.isnan(sa[:, :, 0]) & ~np.isnan(sb[:, :, 0])  # (cells, n)
    count = both.sum(axis=1)
    for side in (sa,) if same else (sa, sb):  # in place: the arrays are the caller's to give (no copies)
        side[~both] = 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        ma = sa.sum(axis=1) / count[:, None]
        mb = ma if same else sb.sum(axis=1) / count[:, None]
    return np.where(count[:, None] > 0, _relative(mb, ma), np.nan)


def _stat_changes(
    side_a: tuple[Capture, int], side_b: tuple[Capture, int], pairs: Pairs, layers: list[int], types: list[str], n: int
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per layer x type, the signed relative change of each statistic's mean over the tokens both
    trials have it for; and per layer x token the residual L2's relative change."""
    chosen: dict[tuple[int, str], tuple[int, int]] = {}
    for a, b in pairs:
        if a["layer"] in layers and a["type"] in types:
            chosen.setdefault((a["layer"], a["type"]), (a["id"], b["id"]))
    cells = list(chosen)
    held_a = _may_have_stats(*side_a, [chosen[c][0] for c in cells])
    held_b = _may_have_stats(*side_b, [chosen[c][1] for c in cells])
    cells = [c for c, ha, hb in zip(cells, held_a, held_b, strict=True) if ha and hb]  # others stay NaN
    same = same_trial(*side_a, *side_b)  # a trial with itself: read once
    # Cells in chunks where both sides read their digest's columns (a chunk costs no more than its
    # share: its arrays stay small and in cache); in one go where a side walks its steps in memory.
    step = CELL_CHUNK if _digest_backed(*side_a) and _digest_backed(*side_b) else max(1, len(cells))
    change = np.full((len(cells), len(STAT_NAMES)), np.nan)
    resid = np.full((len(layers), n), np.nan)
    for lo in range(0, len(cells), step):
        part = cells[lo : lo + step]
        sa = side_stats(*side_a, [chosen[c][0] for c in part], n)
        sb = sa if same else side_stats(*side_b, [chosen[c][1] for c in part], n)
        for c, (layer, ttype) in enumerate(part):
            if ttype == RESIDUAL:
                resid[layers.index(layer)] = _relative(sb[c, :, 0], sa[c, :, 0])
        change[lo : lo + len(part)] = _mean_change(sa, sb, same)
    stats = {s: np.full((len(layers), len(types)), np.nan) for s in STAT_NAMES}
    for c, (layer, ttype) in enumerate(cells):
        i, j = layers.index(layer), types.index(ttype)
        for k, stat in enumerate(STAT_NAMES):
            stats[stat][i, j] = change[c, k]
    return stats, resid


# ----- vectors -----------------------------------------------------------------------------------
def _vector_changes(out: Comparison, cap_a: Capture, trial_a: int, cap_b: Capture, trial_b: int) -> None:
    held_a, held_b = set(_hooks(cap_a, trial_a)), set(_hooks(cap_b, trial_b))
    names = [f"blocks.{L}.hook_resid_post" for L in out.layers]
    if not any(name in held_a and name in held_b for name in names):
        why = "no residual vectors in " + ("either trial" if not held_a and not held_b else "one of the trials")
        out.notices.append(f"{why}: cosine and relative L2 need captures with vectors (preset standard or full)")
        return
    n = out.n_shared
    cos, rel = np.full((len(names), n), np.nan), np.full((len(names), n), np.nan)
    for i, name in enumerate(names):
        if name in held_a and name in held_b:
            va = cap_a.vectors(trial_a, name, n).astype(np.float64)
            same = same_trial(cap_a, trial_a, cap_b, trial_b)  # a trial with itself: read once
            vb = va if same else cap_b.vectors(trial_b, name, n).astype(np.float64)
            cos[i], rel[i] = _cosine_rel(va, vb)
    out.cosine, out.rel_l2 = cos, rel


def _cosine_rel(va: np.ndarray, vb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: cosine similarity and |b - a| / |a| (exactly 1 and 0 for equal rows)."""
    na, nb = np.einsum("ij,ij->i", va, va), np.einsum("ij,ij->i", vb, vb)
    diff = vb - va
    d2 = np.einsum("ij,ij->i", diff, diff)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.clip((na + nb - d2) / (2.0 * np.sqrt(na * nb)), -1.0, 1.0)
        rel = np.sqrt(d2) / np.sqrt(na)
    cos = np.where(d2 == 0.0, 1.0, cos)
    return np.where(np.isnan(d2), np.nan, cos), rel


# ----- the next token --------------------------------------------------------------------------
def _next_token(
    out: Comparison, cap_a: Capture, trial_a: int, cap_b: Capture, trial_b: int,
    models: tuple[Any, Any] | None, heads: tuple[LogitLens, LogitLens] | None, defer: bool,
) -> None:  # fmt: skip
    stored = stored_next_token(cap_a, trial_a, cap_b, trial_b)
    if stored is not None:
        out.next_token = {k: v[: out.n_shared] for k, v in stored.items()}
        return
    if same_trial(cap_a, trial_a, cap_b, trial_b):
        n_layer = int(trial_model(cap_a, trial_a).get("n_layer") or 0)
        out.next_token = lens_self_block(cap_a, trial_a, out.n_shared, n_layer)
        if out.next_token is not None:
            return
    held_a, held_b = _hooks(cap_a, trial_a), _hooks(cap_b, trial_b)
    if FINAL_NORM_HOOK not in held_a or FINAL_NORM_HOOK not in held_b:
        out.notices.append("no final-norm vectors in both trials: no next-token comparison (KL, top-1 agreement)")
        return
    inputs = next_token_inputs(cap_a, trial_a, cap_b, trial_b, out.n_shared)
    if not inputs.needs_heads:  # e.g. no shared token: no head to open
        out.notices.append(
            "no shared token position where both trials computed logits (final-norm rows): no next-token comparison"
        )
        return
    if defer:
        out.pending = inputs
        return
    if heads is None:
        if models is None or not all(p and os.path.isfile(p) for p in models):
            out.notices.append(
                "the next-token comparison needs both models' GGUF files (their output heads): pass models=(a, b)"
            )
            return
        heads = _open_heads(models[0], models[1])
    out.next_token = inputs.compute(heads)


def _open_heads(path_a: Any, path_b: Any) -> tuple[LogitLens, LogitLens]:
    """Both models' heads; one object when both are the same file (a trial with itself: one pass)."""
    a = LogitLens.from_gguf(path_a)
    return (a, a) if os.path.samefile(path_a, path_b) else (a, LogitLens.from_gguf(path_b))


# ----- helpers -----------------------------------------------------------------------------------
def trial_model(cap: Capture, trial_id: int) -> dict[str, Any]:
    """The trial's own model card (a pair's candidate carries one), else the capture's."""
    return dict(trial_of(cap.data, trial_id).get("model") or cap.model)


def _hooks(cap: Capture, trial_id: int) -> list[str]:
    try:
        return cap.hook_names(trial_id)
    except NotFound:
        return []


def _types(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[str]:
    seen: dict[str, None] = {}
    for a, _ in pairs:
        if 0 <= a["layer"] < FINAL_NORM_LAYER:
            seen.setdefault(a["type"], None)
    return list(seen)


def _relative(b: np.ndarray, a: np.ndarray) -> np.ndarray:
    """(b - a) / |a|: 0 where equal (also both 0), NaN where a is 0 and b is not."""
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (b - a) / np.abs(a)
    return np.where(b == a, 0.0, r)


def _nanmean(x: np.ndarray, axis: int) -> np.ndarray:
    have = ~np.isnan(x)
    total = np.where(have, x, 0.0).sum(axis=axis)
    count = have.sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _num(x: Any) -> float | None:
    v = float(x)
    return v if np.isfinite(v) else None


def _lists(x: np.ndarray | None) -> Any:
    """Nested lists of Python floats, null where not finite."""
    if x is None:
        return None
    obj = x.astype(object)
    obj[~np.isfinite(x)] = None
    return obj.tolist()
