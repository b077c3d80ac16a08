"""Comparing stage: the next-token block of a comparison, per token position (KL(a || b) over the
whole vocabulary, each trial's top-1 and the probability each gives to the other's next token).

Three sources, cheapest first:
- a pair made by ``spectra-vis compare`` stored the block in its candidate trial;
- a trial compared with itself, where it carries a logit lens reaching the last layer: the lens's
  final-layer cells are what llama.cpp's logits give (``spectra_vis.capturing.lens``), so the block
  is KL 0, top-1 the lens's top-1 and both probabilities the lens's probability of the next token;
- else a pass over both output heads (``NextTokenInputs.compute``): the slow part, block by block of
  the vocabulary with progress, one head pass when a trial is compared with itself.

The inputs (the final-norm rows and next token ids) are read apart from the head pass, so that a
server can read them at once and run the pass in the background.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from spectra_vis.capturing.lens import LogitLens
from spectra_vis.store.capture_file import Capture, trial_of

FINAL_NORM_HOOK = "ln_final.hook_normalized"
NEXT_TOKEN_FIELDS = ("kl", "top1_a", "top1_b", "p_b_of_a", "p_a_of_b")
Block = dict[str, np.ndarray]  # NEXT_TOKEN_FIELDS -> (tokens,) float64, NaN where missing


@dataclass
class NextTokenInputs:
    """What a head pass needs: the final-norm rows of both trials at the positions where both hold
    one, and the token that came next there in each (-1: none)."""

    n: int  # token positions of the block
    have: np.ndarray  # (m,) positions < n with a final-norm row in both trials
    rows_a: np.ndarray  # (m, n_embd) float32
    rows_b: np.ndarray  # (m, n_embd) float32; the same object as rows_a for a trial with itself
    next_a: np.ndarray  # (m,) int64
    next_b: np.ndarray  # (m,) int64

    @property
    def needs_heads(self) -> bool:
        """Some position has rows in both trials (else the block is all NaN, no head is opened)."""
        return len(self.have) > 0

    @property
    def same(self) -> bool:
        """A trial compared with itself: one head pass gives both sides."""
        return self.rows_b is self.rows_a

    def compute(self, heads: tuple[LogitLens, LogitLens], on_block: Callable[[int, int], None] | None = None) -> Block:
        """The block through both heads over the whole vocabulary; ``on_block(done, total)`` after each
        block of the vocabulary (progress)."""
        block = _empty(self.n)
        if self.needs_heads:
            same = self.same and heads[0] is heads[1]
            rows_b = self.rows_a if same else self.rows_b
            got = heads[0].divergence(self.rows_a, heads[1], rows_b, self.next_a, self.next_b, on_block=on_block)
            have = self.have
            block["kl"][have] = got["kl"]
            block["top1_a"][have] = got["top1_self"]
            block["top1_b"][have] = got["top1_other"]
            block["p_b_of_a"][have] = np.where(self.next_a >= 0, got["p_other_of_next"], np.nan)
            block["p_a_of_b"][have] = np.where(self.next_b >= 0, got["p_self_of_next"], np.nan)
        elif on_block is not None:
            on_block(1, 1)
        return block


def next_token_inputs(cap_a: Capture, trial_a: int, cap_b: Capture, trial_b: int, n: int) -> NextTokenInputs:
    """The final-norm rows and next tokens of the first ``n`` positions of both trials (read once for
    a trial compared with itself)."""
    same = same_trial(cap_a, trial_a, cap_b, trial_b)
    va = cap_a.vectors(trial_a, FINAL_NORM_HOOK, n)
    vb = va if same else cap_b.vectors(trial_b, FINAL_NORM_HOOK, n)
    have = np.flatnonzero(~np.isnan(va).any(axis=1) & ~np.isnan(vb).any(axis=1))
    nxt_a = _next_ids(trial_of(cap_a.data, trial_a), n)[have]
    nxt_b = nxt_a if same else _next_ids(trial_of(cap_b.data, trial_b), n)[have]
    rows_a = np.ascontiguousarray(va[have])
    return NextTokenInputs(n, have, rows_a, rows_a if same else np.ascontiguousarray(vb[have]), nxt_a, nxt_b)


def next_token_block(
    cap_a: Capture,
    trial_a: int,
    cap_b: Capture,
    trial_b: int,
    heads: tuple[LogitLens, LogitLens],
    n: int,
    on_block: Callable[[int, int], None] | None = None,
) -> Block:
    """KL(a || b), top-1 of each and the probability each gives to the other's next token, per
    token position < ``n`` where both trials hold the final norm's output (NaN elsewhere)."""
    return next_token_inputs(cap_a, trial_a, cap_b, trial_b, n).compute(heads, on_block)


def stored_next_token(cap_a: Capture, trial_a: int, cap_b: Capture, trial_b: int) -> Block | None:
    """The next-token block a pair capture stored in its candidate trial, when (a, b) is that pair."""
    if cap_a is not cap_b and cap_a.data is not cap_b.data:
        return None
    pair = trial_of(cap_b.data, trial_b).get("pair") or {}
    block = pair.get("next_token")
    if pair.get("role") != "candidate" or pair.get("reference") != trial_a or not block:
        return None
    return {k: np.array([np.nan if v is None else v for v in block[k]], dtype=np.float64) for k in NEXT_TOKEN_FIELDS}


def lens_self_block(cap: Capture, trial_id: int, n: int, n_layer: int) -> Block | None:
    """The block of a trial compared with itself from its stored logit lens, no head pass: at each
    position < ``n`` with a last-layer lens cell, KL 0, both top-1s the cell's top-1, and both
    probabilities of the next token the cell's. None when the trial has no lens of layer
    ``n_layer - 1`` (the last layer's residual through the final norm and head: llama.cpp's logits)."""
    grid = trial_of(cap.data, trial_id).get("lens")
    if not grid or not grid.get("layers") or grid["layers"][-1] != n_layer - 1:
        return None
    ids, next_p = grid["ids"][-1], grid["next_p"][-1]
    block = _empty(n)
    for pos in range(min(n, len(ids))):
        cell = ids[pos]
        if not cell:
            continue
        block["kl"][pos] = 0.0
        block["top1_a"][pos] = block["top1_b"][pos] = cell[0]
        if next_p[pos] is not None:
            block["p_b_of_a"][pos] = block["p_a_of_b"][pos] = next_p[pos]
    return block


def same_trial(cap_a: Capture, trial_a: int, cap_b: Capture, trial_b: int) -> bool:
    """The two sides are one trial of one capture (compared with itself: read once)."""
    return cap_a is cap_b and trial_a == trial_b


def _empty(n: int) -> Block:
    return {k: np.full(n, np.nan) for k in NEXT_TOKEN_FIELDS}


def _next_ids(trial: dict[str, Any], n: int) -> np.ndarray:
    """Per position p < n, the token that came next in this trial (the sampled one at the end), or -1."""
    ids = list(trial["tokens"]["ids"])
    out = np.full(n, -1, dtype=np.int64)
    for p in range(n):
        if p + 1 < len(ids):
            out[p] = ids[p + 1]
    return out
