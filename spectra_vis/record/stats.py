"""Statistics stage: numbers computed from one tensor's values.

Pure numpy; it knows nothing of ggml, llama.cpp or the capture format beyond the
order of ``STAT_NAMES``.  Every number the viewer shows comes from here, and the
tests recompute each one independently.

Units and definitions (documented in docs/CAPTURE_FORMAT.md):
- l2: sqrt(sum x^2) over the finite values
- mean, std (population, ddof=0), min, max, absmax: over the finite values
- sparsity: fraction of finite values with |x| <= NEAR_ZERO
- nonfinite: count of NaN and +/-Inf values
"""

from __future__ import annotations

from typing import Any

import numpy as np

from spectra_vis.constants import STAT_NAMES

NEAR_ZERO = 1e-6


def tensor_stats(x: np.ndarray) -> np.ndarray:
    """The eight statistics of all values of ``x``, in ``STAT_NAMES`` order (float32)."""
    return rows_stats(x.reshape(1, -1))[0]


def rows_stats(x: np.ndarray) -> np.ndarray:
    """The eight statistics of each row of a 2-D array (rows = tokens): (n_rows, 8) float32."""
    x = np.asarray(x, dtype=np.float32)
    finite = np.isfinite(x)
    if finite.all():
        return _finite_rows_stats(x)
    out = np.zeros((x.shape[0], len(STAT_NAMES)), dtype=np.float32)
    for i, (row, ok) in enumerate(zip(x, finite, strict=False)):
        vals = row[ok]
        if vals.size:
            out[i] = _finite_rows_stats(vals.reshape(1, -1))[0]
        out[i, 7] = row.size - vals.size
    return out


def _finite_rows_stats(x: np.ndarray) -> np.ndarray:
    n = x.shape[1]
    x64 = x.astype(np.float64)
    sq = np.einsum("ij,ij->i", x64, x64)
    mean = x64.sum(axis=1) / max(n, 1)
    var = np.maximum(sq / max(n, 1) - mean * mean, 0.0)
    mn = x.min(axis=1) if n else np.zeros(x.shape[0])
    mx = x.max(axis=1) if n else np.zeros(x.shape[0])
    absmax = np.maximum(np.abs(mn), np.abs(mx))
    sparsity = (np.abs(x) <= NEAR_ZERO).sum(axis=1) / max(n, 1)
    cols = np.stack([np.sqrt(sq), mean, np.sqrt(var), mn, mx, absmax, sparsity, np.zeros_like(mean)], axis=1)
    return cols.astype(np.float32)


def attention_summary(probs: np.ndarray, top_k: int) -> dict[str, Any]:
    """Top-k attended positions, their probabilities and the row entropy (nats).

    ``probs``: (n_head, n_rows, n_kv) attention probabilities, padding already cropped.
    Returns arrays shaped [head][row][k] for ``pos`` (list) and ``p`` (float32) and
    [head][row] for ``entropy``; positions are sorted by descending probability.
    """
    idx, vals = top_k_desc(probs, top_k)
    p = probs.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=-1)
    return {
        "pos": idx.astype(int).tolist(),
        "p": vals.astype(np.float32),
        "entropy": ent.astype(np.float32),
    }


def drop_future(att: dict[str, Any], first_pos: int) -> dict[str, Any]:
    """Remove the positions after each query row from a top-k attention summary, in place.

    Row ``r`` of a step is the query at position ``first_pos + r``; the causal mask gives
    later positions probability 0, and a row with fewer than k earlier positions would
    otherwise list some of them. Ties go to the lower position (``top_k_desc``), so what
    remains is the whole top-k of what the query can see. Only the first k - 1 - first_pos
    rows can be affected; when there are any, ``pos`` and ``p`` become lists (head) of
    rows (arrays), the short rows trimmed.
    """
    heads = att["pos"]  # [head][row][k], nested lists (Python path) or an array (native path)
    k = len(heads[0][0]) if len(heads) and len(heads[0]) else 0
    if first_pos + 1 >= k:  # every row sees at least k positions: the usual case, every decode step
        return att
    pos = np.asarray(heads)
    n_short = min(k - 1 - first_pos, pos.shape[1])
    p = np.asarray(att["p"], dtype=np.float32)
    pos_rows = [list(head) for head in pos]
    p_rows = [list(head) for head in p]
    for r in range(n_short):
        for h in range(pos.shape[0]):
            keep = pos[h, r] <= first_pos + r
            pos_rows[h][r] = pos[h, r][keep]
            p_rows[h][r] = p[h, r][keep]
    att["pos"], att["p"] = pos_rows, p_rows
    return att


def top_logits(logits: np.ndarray, k: int) -> dict[str, Any]:
    """Top-k token ids and logits of the last row of a (n_rows, n_vocab) array."""
    row = np.asarray(logits, dtype=np.float32).reshape(-1, logits.shape[-1])[-1]
    idx, vals = top_k_desc(row, k)
    return {"ids": idx.astype(int).tolist(), "logits": vals.astype(np.float32)}


def top_k_desc(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest values along the last axis and their indices, largest first.

    Ties go to the lower index, so the choice is deterministic (the native callback
    picks the same); NaN counts as -inf. O(n) per row: a partition, not a sort.
    """
    x = np.asarray(x)
    nan = np.isnan(x)
    if nan.any():
        x = np.where(nan, -np.inf, x)
    n = x.shape[-1]
    k = min(k, n)
    if k == n:
        idx = np.argsort(-x, axis=-1, kind="stable")
        return idx, np.take_along_axis(x, idx, axis=-1)
    kth = np.partition(x, n - k, axis=-1)[..., n - k : n - k + 1]
    equal = x == kth
    take = (x > kth) | (equal & (np.cumsum(equal, axis=-1) <= k - (x > kth).sum(axis=-1, keepdims=True)))
    idx = np.nonzero(take)[-1].reshape(x.shape[:-1] + (k,))
    vals = np.take_along_axis(x, idx, axis=-1)
    order = np.argsort(-vals, axis=-1, kind="stable")
    return np.take_along_axis(idx, order, axis=-1), np.take_along_axis(vals, order, axis=-1)
