"""Analysis stage: attention fingerprints, zones and cognitive-state labels, defined once.

Every number here is documented in docs/ATTENTION.md and used unchanged by the
backend, the frontend (which only displays what the API returns) and the tests.
Input is a capture document (``Capture.data``); pure numpy, no UI, no llama.cpp.

Fingerprint (20 numbers, in this order, ``FINGERPRINT_NAMES``):
  0 local   attention mass at distance < 8
  1 mid     mass at distance 8..255
  2 long    mass at distance >= 256
  3 entropy row entropy / ln(n_kv) (0 = one position, 1 = uniform); 0 when n_kv = 1
  4..19     16-bin histogram of mass by log2 distance: bin b holds distances d with
            floor(log2(d + 1)) = b (d = 0 -> bin 0, 1 -> 1, 2-3 -> 2, 4-7 -> 3, ...), last bin open
Masses are true probabilities of the captured top-k positions (they sum to the top-k
coverage, not necessarily to 1).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from spectra_vis.analysis._common import _step
from spectra_vis.constants import FINAL_NORM_LAYER
from spectra_vis.errors import NotFound
from spectra_vis.store.capture_file import trial_of

FINGERPRINT_NAMES = ("local", "mid", "long", "entropy") + tuple(f"hist{b}" for b in range(16))
ZONES = ("syntax_floor", "semantic_bridge", "long_range", "structure_ripple", "diffuse")
STATES = ("Attending", "Reasoning", "Structuring", "Recalling", "Searching", "Generating", "Processing")

LOCAL_MAX, MID_MAX = 8, 256
DIFFUSE_ENTROPY = 0.85  # normalised entropy at or above which a row is diffuse
RIPPLE_MIN = 0.6  # periodicity score at or above which a row is a structure ripple
RIPPLE_PERIODS = range(3, 65)
RIPPLE_MIN_HITS = 3
LONG_SHARE, MID_SHARE, LOCAL_SHARE = 0.3, 0.5, 0.5  # shares of the covered mass


def fingerprint(positions: list[int], probs: list[float], query_pos: int, entropy: float, n_kv: int) -> np.ndarray:
    """The 20-number fingerprint of one attention row (see module docstring)."""
    fp = np.zeros(20, dtype=np.float64)
    for pos, p in zip(positions, probs, strict=True):
        d = max(query_pos - int(pos), 0)
        fp[0 if d < LOCAL_MAX else 1 if d < MID_MAX else 2] += p
        fp[4 + min(int(math.floor(math.log2(d + 1))), 15)] += p
    fp[3] = entropy / math.log(n_kv) if n_kv > 1 else 0.0
    return fp


def periodicity(positions: list[int], probs: list[float], query_pos: int) -> float:
    """Share of covered mass on a regular comb of distances: p, 2p, 3p, ... for a period p in 3..64.

    Structure ripples are heads that attend every p-th token (list items, code lines,
    table rows). A comb needs at least three attended distances k*p, (k+1)*p, (k+2)*p with
    consecutive multipliers (a few scattered multiples happen by chance); the score is the
    largest share of covered mass one comb explains (0 if none).
    """
    total = float(sum(probs))
    mass = {query_pos - int(pos): float(p) for pos, p in zip(positions, probs, strict=True)}
    best = 0.0
    if total <= 0:
        return best
    for period in RIPPLE_PERIODS:
        run, run_mass = 0, 0.0
        for k in range(1, max(mass, default=0) // period + 2):
            p = mass.get(k * period)
            if p is None:
                run, run_mass = 0, 0.0
                continue
            run, run_mass = run + 1, run_mass + p
            if run >= RIPPLE_MIN_HITS:
                best = max(best, run_mass / total)
    return best


def zone(fp: np.ndarray, ripple: float) -> str:
    """The zone of a row from its fingerprint and periodicity. Rules, first match wins:

    1. diffuse if normalised entropy >= 0.85
    2. structure_ripple if the periodicity score >= 0.6
    3. long_range if long mass >= 0.3 of the covered mass
    4. semantic_bridge if mid mass >= 0.5 of it
    5. syntax_floor if local mass >= 0.5 of it
    6. diffuse otherwise (no band dominates)
    """
    covered = float(fp[:3].sum())
    if fp[3] >= DIFFUSE_ENTROPY or covered <= 0:
        return "diffuse"
    if ripple >= RIPPLE_MIN:
        return "structure_ripple"
    local, mid, long_ = (float(v) / covered for v in fp[:3])
    if long_ >= LONG_SHARE:
        return "long_range"
    if mid >= MID_SHARE:
        return "semantic_bridge"
    if local >= LOCAL_SHARE:
        return "syntax_floor"
    return "diffuse"


def attention_tensors(doc: dict[str, Any]) -> dict[int, int]:
    """layer -> id of its kq_soft_max tensor."""
    return {t["layer"]: t["id"] for t in doc["tensors"] if t["type"] == "kq_soft_max"}


def layer_fingerprints(att: dict[str, Any], q0: int, heads: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """``fingerprint`` and ``periodicity`` of every row of one attention record, vectorised: arrays
    ``[head, row, 20]`` and ``[head, row]`` for the heads asked for (row r is query position q0 + r)."""
    pos, p, ok = padded([att["pos"][h] for h in heads], [att["p"][h] for h in heads])
    n_h, n_r, k = pos.shape
    q = np.broadcast_to((q0 + np.arange(n_r))[None, :], (n_h, n_r))
    ent = np.asarray([att["entropy"][h] for h in heads], dtype=np.float64).reshape(n_h, n_r)
    fp, ripple = row_fingerprints(pos.reshape(-1, k), p.reshape(-1, k), ok.reshape(-1, k), q.reshape(-1),
                                  ent.reshape(-1), att["n_kv"])  # fmt: skip
    return fp.reshape(n_h, n_r, 20), ripple.reshape(n_h, n_r)


def row_fingerprints(
    pos: np.ndarray, p: np.ndarray, ok: np.ndarray, q: np.ndarray, entropy: np.ndarray, n_kv: int | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``fingerprint`` ``[n, 20]`` and ``periodicity`` ``[n]`` of n attention rows at once: edges
    ``[n, k]`` (positions, probabilities, and which are real edges rather than padding), each row's
    query position, entropy and n_kv. The same numbers as the one-row functions above."""
    n = pos.shape[0]
    dist = q[:, None] - pos
    d = np.maximum(dist, 0)
    pm = np.where(ok, p, 0.0)
    fp = np.zeros((n, 20), dtype=np.float64)
    band = np.where(d < LOCAL_MAX, 0, np.where(d < MID_MAX, 1, 2))
    hist = 4 + np.minimum(np.floor(np.log2(d + 1.0)).astype(np.int64), 15)
    rows = np.broadcast_to(np.arange(n)[:, None], d.shape)
    np.add.at(fp, (rows, band), pm)
    np.add.at(fp, (rows, hist), pm)
    log_kv = np.log(np.asarray(n_kv, dtype=np.float64))
    fp[:, 3] = np.where(log_kv > 0, entropy / np.where(log_kv > 0, log_kv, 1.0), 0.0)
    return fp, _combs(dist, pm, ok)


def padded(pos: list[list[list[int]]], p: list[list[list[float]]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[head][row][k] lists as arrays padded to the longest row (padding: p 0, not a real edge)."""
    k = max((len(r) for h in pos for r in h), default=0)
    if all(len(r) == k for h in pos for r in h):
        a = np.asarray(pos, dtype=np.int64).reshape(len(pos), -1, k)
        b = np.asarray(p, dtype=np.float64).reshape(a.shape)
        return a, b, np.ones(a.shape, dtype=bool)
    shape = (len(pos), len(pos[0]) if pos else 0, k)
    a, b, ok = np.zeros(shape, dtype=np.int64), np.zeros(shape), np.zeros(shape, dtype=bool)
    for h, rows in enumerate(pos):
        for r, row in enumerate(rows):
            a[h, r, : len(row)], b[h, r, : len(row)], ok[h, r, : len(row)] = row, p[h][r], True
    return a, b, ok


_DIVISORS: list[tuple[np.ndarray, np.ndarray]] = []  # (indptr, periods): the ripple periods dividing each d


def _divisors(limit: int) -> tuple[np.ndarray, np.ndarray]:
    """For every distance 0..limit, the periods of RIPPLE_PERIODS that divide it (CSR arrays)."""
    if _DIVISORS and len(_DIVISORS[0][0]) > limit + 1:
        return _DIVISORS[0]
    limit = max(limit, 4096)
    d = np.concatenate([np.arange(P, limit + 1, P) for P in RIPPLE_PERIODS])
    periods = np.concatenate([np.full(limit // P, P) for P in RIPPLE_PERIODS])
    order = np.argsort(d, kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(d, minlength=limit + 1))])
    _DIVISORS[:] = [(indptr, periods[order])]
    return _DIVISORS[0]


LINKED_MAX_K = 32  # rows of at most this many edges find their comb pairs through pairs of edges


def _divisor_pairs(dist: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, edge, period) for every real edge at a positive distance and every period dividing it."""
    rows, cols = np.nonzero(ok & (dist > 0))
    if not rows.size:
        return rows, cols, rows
    d = dist[rows, cols]
    indptr, periods = _divisors(int(d.max()))
    counts = indptr[d + 1] - indptr[d]
    first = np.repeat(indptr[d], counts)
    offset = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(rows, counts), np.repeat(cols, counts), periods[first + offset]


def _linked_pairs(dist: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs of ``_divisor_pairs`` that can be in a comb, in the same order: an edge at distance
    d with period p is in a run of three or more only if the row also has an edge at d - p or d + p,
    so only edges linked to another one (distances d and d + p, p in RIPPLE_PERIODS dividing d) are
    kept. The rest form runs of one and change no score; comparing the edges of a row pairwise costs
    k x k per row, far less than expanding every distance into its divisors."""
    n, k = dist.shape
    d = np.where(ok & (dist > 0), dist, -(1 << 24)).astype(np.int32)  # not an edge: far below any other
    first, second = np.triu_indices(k, 1)
    gap = d[:, second] - d[:, first]  # [row, pair]
    span = np.abs(gap) - RIPPLE_PERIODS.start
    at = np.flatnonzero(span.view(np.uint32) < len(RIPPLE_PERIODS))  # start <= |gap| < stop
    r, c, g = at // len(first), at % len(first), gap.ravel()[at]
    lo, hi = np.where(g > 0, first[c], second[c]), np.where(g > 0, second[c], first[c])  # the nearer edge, the farther
    p = np.abs(g)
    linked = d.ravel()[r * k + lo] % p == 0
    r, lo, hi, p = r[linked], lo[linked], hi[linked], p[linked].astype(np.int64)
    code = np.unique(np.concatenate([(r * k + lo) * 128 + p, (r * k + hi) * 128 + p]))
    return code // (128 * k), code // 128 % k, code % 128


def _combs(dist: np.ndarray, p: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """``periodicity`` of rows of edges ``[n, k]`` (distances, probabilities, real-edge mask): each
    positive distance is paired with the periods dividing it, the pairs sorted by (row, period,
    multiplier), and runs of consecutive multipliers summed in edge order, as ``periodicity`` does."""
    n = dist.shape[0]
    total = p.sum(-1)
    best = np.zeros(n)
    linked = dist.shape[1] <= LINKED_MAX_K and int(dist.max(initial=0)) < 1 << 23
    row, col, per = _linked_pairs(dist, ok) if linked else _divisor_pairs(dist, ok)
    if not row.size:
        return best
    dd, mass = dist[row, col], p[row, col]
    key, mult = row * 128 + per, dd // per
    order = np.lexsort((mult, key))
    key, mult, mass, row = key[order], mult[order], mass[order], row[order]
    brk = np.ones(key.size, dtype=bool)
    brk[1:] = (key[1:] != key[:-1]) | (mult[1:] != mult[:-1] + 1)
    starts = np.flatnonzero(brk)
    in_run = np.arange(key.size) - starts[np.cumsum(brk) - 1]
    run_mass = mass.copy()
    for t in range(1, int(in_run.max()) + 1):
        at = np.flatnonzero(in_run == t)
        run_mass[at] = run_mass[at - 1] + mass[at]
    long_ = in_run >= RIPPLE_MIN_HITS - 1
    np.maximum.at(best, row[long_], run_mass[long_])
    return np.where(total > 0, best / np.where(total > 0, total, 1.0), 0.0)


def token_attention(
    doc: dict[str, Any],
    trial_id: int,
    step_index: int,
    layer: int,
    head: int | None = None,
    step: dict[str, Any] | None = None,
) -> dict:
    """Attention of each token of one step at one layer: edges, fingerprints and zones.

    ``head`` None averages fingerprints over heads and lists every head's edges. ``step``: the
    step, when the caller has read it already.
    """
    trial = trial_of(doc, trial_id)
    step = trial["steps"][step_index] if step is None else step
    tid = attention_tensors(doc).get(layer)
    att = step["attention"].get(str(tid)) if tid is not None else None
    if att is None:
        raise NotFound(f"no attention captured for layer {layer} at step {step_index}")
    texts = trial["tokens"]["texts"]
    heads = list(range(len(att["pos"]))) if head is None else [head]
    if head is not None and not 0 <= head < len(att["pos"]):
        raise NotFound(f"no head {head}; layer {layer} has {len(att['pos'])}")
    fps, ripples = layer_fingerprints(att, step["pos"], heads)
    tokens = []
    for r in range(step["n_tokens"]):
        q = step["pos"] + r
        edges = [
            {
                "head": h,
                "pos": int(k),
                "p": float(v),
                "distance": q - int(k),
                "sink": int(k) == 0,
                "text": texts[k] if k < len(texts) else "",
            }
            for h in heads
            for k, v in zip(att["pos"][h][r], att["p"][h][r], strict=True)
        ]
        mean_fp = np.mean(fps[:, r], axis=0)
        ripple = float(np.mean(ripples[:, r]))
        tokens.append(
            {
                "pos": q,
                "text": texts[q] if q < len(texts) else "",
                "edges": edges,
                "coverage": float(sum(e["p"] for e in edges) / len(heads)),
                "fingerprint": [round(float(v), 6) for v in mean_fp],
                "periodicity": round(ripple, 6),
                "zone": zone(mean_fp, ripple),
            }
        )
    return {"trial_id": trial_id, "step": step_index, "layer": layer, "head": head, "tokens": tokens}


def records_fingerprints(
    step: dict[str, Any], records: list[dict[str, Any]]
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The fingerprint and periodicity of every row of a step's attention ``records`` (layers in order;
    rows ordered layer, head, token) in one ``row_fingerprints`` call; and each record's head count."""
    n_r = step["n_tokens"]
    pos, p, ok = padded([h for att in records for h in att["pos"]], [h for att in records for h in att["p"]])
    k = pos.shape[-1]
    heads = [len(att["pos"]) for att in records]
    q = np.broadcast_to((step["pos"] + np.arange(n_r))[None, :], pos.shape[:2]).reshape(-1)
    ent = np.asarray([h for att in records for h in att["entropy"]], dtype=np.float64).reshape(-1)
    n_kv = np.repeat([att["n_kv"] for att in records], [h * n_r for h in heads])
    fp, ripple = row_fingerprints(pos.reshape(-1, k), p.reshape(-1, k), ok.reshape(-1, k), q, ent, n_kv)
    return fp, ripple, heads


def step_zone_list(doc: dict[str, Any], step: dict[str, Any]) -> list[str]:
    """The zone of each token of one step (a parsed step; see ``step_zones``), every attention
    layer's rows at once: the mean over heads per layer (rounded as ``token_attention`` reports
    it), then the mean over layers."""
    layers = attention_tensors(doc)
    records = [step["attention"][str(layers[L])] for L in sorted(layers) if str(layers[L]) in step["attention"]]
    n_r = step["n_tokens"]
    if not records or not n_r:
        return []
    fp, ripple, heads = records_fingerprints(step, records)
    cuts = np.cumsum([h * n_r for h in heads])[:-1]
    fps = [f.reshape(-1, n_r, 20) for f in np.split(fp, cuts)]
    return zones_of(fps, [r.reshape(-1, n_r) for r in np.split(ripple, cuts)])


def zones_of(fps: list[np.ndarray], ripples: list[np.ndarray]) -> list[str]:
    """The zone of each of n tokens from every attention layer's fingerprints ``[head, n, 20]`` and
    periodicity ``[head, n]``: the mean over heads (added in head order, whatever n), rounded as
    ``token_attention`` reports it, then the mean over layers. ``step_zone_list`` for one step, and
    the digest for many steps at once, give the same zones."""
    n = fps[0].shape[1]
    fp_sum, ripple_sum = np.zeros((n, 20)), np.zeros(n)
    for fp, ripple in zip(fps, ripples, strict=True):
        fp_sum += np.round(_head_mean(fp), 6)
        ripple_sum += np.round(_head_mean(ripple), 6)
    return [zone(fp_sum[r] / len(fps), float(ripple_sum[r] / len(fps))) for r in range(n)]


def _head_mean(x: np.ndarray) -> np.ndarray:
    acc = np.array(x[0], dtype=np.float64)
    for h in range(1, len(x)):
        acc += x[h]
    return acc / len(x)


def token_zones(doc: dict[str, Any], trial_id: int) -> list[dict[str, Any]]:
    """Zone of every token of a trial, from its fingerprint averaged over heads and layers."""
    trial = trial_of(doc, trial_id)
    return [z for step in trial["steps"] for z in step_zones(doc, trial_id, step["index"])]


def step_zones(
    doc: dict[str, Any], trial_id: int, step_index: int, per_layer: list[list[dict[str, Any]]] | None = None
) -> list[dict[str, Any]]:
    """The zones of one step's tokens (``token_zones`` of that step alone: a token's zone depends on
    its own attention rows only). ``per_layer``: the step's ``token_attention`` tokens of every
    attention layer, when the caller has them."""
    step = _step(trial_of(doc, trial_id), step_index)
    if not step["attention"]:
        return []
    if per_layer is None:
        per_layer = [token_attention(doc, trial_id, step_index, L)["tokens"] for L in sorted(attention_tensors(doc))]
    out = []
    for r in range(step["n_tokens"]):
        fp = np.mean([np.asarray(tokens[r]["fingerprint"]) for tokens in per_layer], axis=0)
        ripple = float(np.mean([tokens[r]["periodicity"] for tokens in per_layer]))
        out.append({"pos": step["pos"] + r, "step": step_index, "zone": zone(fp, ripple)})
    return out


def zone_distribution(zones: list[dict[str, Any]]) -> dict[str, float]:
    n = max(len(zones), 1)
    return {z: sum(1 for t in zones if t["zone"] == z) / n for z in ZONES}


def _energy(doc: dict[str, Any], step: dict[str, Any], types: set[str]) -> dict[int, float]:
    """layer -> L2 norm of the given tensor types at a step (last token's row when available)."""
    out: dict[int, float] = {}
    for t in doc["tensors"]:
        if t["type"] in types and 0 <= t["layer"] < FINAL_NORM_LAYER:
            key = str(t["id"])
            rows = step["rows"].get(key)
            values = rows[-1] if rows else step["stats"].get(key)
            if values is not None:
                out[t["layer"]] = out.get(t["layer"], 0.0) + float(values[0])
    return out


def cognitive_states(doc: dict[str, Any], trial_id: int) -> list[dict[str, Any]]:
    """Per step: energy by component and by depth third, the delta from the previous step, a label.

    Energy is the L2 norm of what each block adds to the residual stream (``attn_out`` and
    ``ffn_out``, or their post-norms where the model has them; last token's row), summed;
    depth thirds split the model's real layer count. Always computed over every captured
    layer and tensor, never over a view's filter.
    """
    trial = trial_of(doc, trial_id)
    kinds = energy_types(doc)
    prev: dict[str, float] | None = None
    states = []
    for step in trial["steps"]:
        current = {str(k): float(v[0]) for k, v in step["stats"].items()}
        states.append({**step_state(doc, step, kinds), "delta": _delta(prev, current)})
        prev = current
    return states


def energy_types(doc: dict[str, Any]) -> tuple[set[str], set[str]]:
    """The tensor types whose L2 is a block's attention and FFN energy (``cognitive_states``)."""
    captured = {t["type"] for t in doc["tensors"] if t["captured"]}
    # What a block adds to the residual stream: after the post-norm where the model has one (Gemma).
    attn_types = {"attn_post_norm"} if "attn_post_norm" in captured else {"attn_out"}
    ffn_types = {"ffn_post_norm"} if "ffn_post_norm" in captured else {"ffn_out"}
    return attn_types, ffn_types


def step_state(doc: dict[str, Any], step: dict[str, Any], kinds: tuple[set[str], set[str]]) -> dict[str, Any]:
    """One step's state of ``cognitive_states`` without its delta (which needs the previous step)."""
    n_layer = max(int(doc["model"].get("n_layer", 0)), 1)
    attn = _energy(doc, step, kinds[0])
    ffn = _energy(doc, step, kinds[1])
    per_layer = {L: attn.get(L, 0.0) + ffn.get(L, 0.0) for L in set(attn) | set(ffn)}
    depth = [0.0, 0.0, 0.0]
    for layer, v in per_layer.items():
        depth[min(3 * layer // n_layer, 2)] += v
    a, f = sum(attn.values()), sum(ffn.values())
    label, confidence = label_state(a, f, depth, list(per_layer.values()))
    return {
        "step": step["index"],
        "phase": step["phase"],
        "attention_energy": a,
        "ffn_energy": f,
        "depth_energy": depth,
        "label": label,
        "confidence": confidence,
    }


def _delta(prev: dict[str, float] | None, current: dict[str, float]) -> dict[str, float]:
    """Relative change of each tensor's L2 norm from the previous step (the delta bar)."""
    if prev is None:
        return {}
    return {k: (v - prev[k]) / max(abs(prev[k]), 1e-9) for k, v in current.items() if k in prev}


ATTENDING_SHARE = 0.65  # attention share of (attention + FFN) energy
FFN_SHARE = 0.65
SEARCHING_CV = 0.25  # coefficient of variation of per-layer energy below which layers are "flat"
GENERATING_DEEP = 0.5  # deep third's share of energy


def label_state(attn: float, ffn: float, depth: list[float], layer_energy: list[float]) -> tuple[str, float]:
    """A cognitive-state label and a confidence in [0.5, 1]. Rules, first match wins:

    - Attending: attention >= 65% of attention + FFN energy
    - FFN >= 65% of it ("MLP dominant"), then by the depth third holding most energy:
      early -> Structuring, middle -> Recalling, deep -> Reasoning
    - Searching: per-layer energy is flat (coefficient of variation < 0.25)
    - Generating: the deep third holds > 50% of the energy
    - Processing: no dominant pattern
    Confidence: 0.5 + 0.5 x how far past its threshold the deciding number is (scaled to
    the room left above the threshold); Processing reports 0.5.
    """
    total = attn + ffn
    if total <= 0:
        return "Processing", 0.5
    a_share, f_share = attn / total, ffn / total
    if a_share >= ATTENDING_SHARE:
        return "Attending", _confidence(a_share, ATTENDING_SHARE, 1.0)
    d_total = sum(depth) or 1.0
    if f_share >= FFN_SHARE:
        third = int(np.argmax(depth))
        return ("Structuring", "Recalling", "Reasoning")[third], _confidence(f_share, FFN_SHARE, 1.0)
    energies = np.asarray(layer_energy, dtype=np.float64)
    if energies.size >= 2 and energies.mean() > 0:
        cv = float(energies.std() / energies.mean())
        if cv < SEARCHING_CV:
            return "Searching", _confidence(SEARCHING_CV - cv, 0.0, SEARCHING_CV)
    deep = depth[2] / d_total
    if deep > GENERATING_DEEP:
        return "Generating", _confidence(deep, GENERATING_DEEP, 1.0)
    return "Processing", 0.5


def _confidence(value: float, threshold: float, top: float) -> float:
    room = max(top - threshold, 1e-9)
    return round(0.5 + 0.5 * min(max((value - threshold) / room, 0.0), 1.0), 4)
