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


def token_attention(doc: dict[str, Any], trial_id: int, step_index: int, layer: int, head: int | None = None) -> dict:
    """Attention of each token of one step at one layer: edges, fingerprints and zones.

    ``head`` None averages fingerprints over heads and lists every head's edges.
    """
    trial = trial_of(doc, trial_id)
    step = trial["steps"][step_index]
    tid = attention_tensors(doc).get(layer)
    att = step["attention"].get(str(tid)) if tid is not None else None
    if att is None:
        raise NotFound(f"no attention captured for layer {layer} at step {step_index}")
    texts = trial["tokens"]["texts"]
    heads = range(len(att["pos"])) if head is None else [head]
    if head is not None and not 0 <= head < len(att["pos"]):
        raise NotFound(f"no head {head}; layer {layer} has {len(att['pos'])}")
    tokens = []
    for r in range(step["n_tokens"]):
        q = step["pos"] + r
        fps, edges = [], []
        for h in heads:
            pos, p = att["pos"][h][r], att["p"][h][r]
            fp = fingerprint(pos, p, q, att["entropy"][h][r], att["n_kv"])
            fps.append((fp, periodicity(pos, p, q)))
            edges += [
                {
                    "head": h,
                    "pos": int(k),
                    "p": float(v),
                    "distance": q - int(k),
                    "sink": int(k) == 0,
                    "text": texts[k] if k < len(texts) else "",
                }
                for k, v in zip(pos, p, strict=True)
            ]
        mean_fp = np.mean([f for f, _ in fps], axis=0)
        ripple = float(np.mean([r_ for _, r_ in fps]))
        tokens.append(
            {
                "pos": q,
                "text": texts[q] if q < len(texts) else "",
                "edges": edges,
                "coverage": float(sum(e["p"] for e in edges) / len(fps)),
                "fingerprint": [round(float(v), 6) for v in mean_fp],
                "periodicity": round(ripple, 6),
                "zone": zone(mean_fp, ripple),
            }
        )
    return {"trial_id": trial_id, "step": step_index, "layer": layer, "head": head, "tokens": tokens}


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
    n_layer = max(int(doc["model"].get("n_layer", 0)), 1)
    captured = {t["type"] for t in doc["tensors"] if t["captured"]}
    # What a block adds to the residual stream: after the post-norm where the model has one (Gemma).
    attn_types = {"attn_post_norm"} if "attn_post_norm" in captured else {"attn_out"}
    ffn_types = {"ffn_post_norm"} if "ffn_post_norm" in captured else {"ffn_out"}
    prev: dict[str, float] | None = None
    states = []
    for step in trial["steps"]:
        attn = _energy(doc, step, attn_types)
        ffn = _energy(doc, step, ffn_types)
        per_layer = {L: attn.get(L, 0.0) + ffn.get(L, 0.0) for L in set(attn) | set(ffn)}
        depth = [0.0, 0.0, 0.0]
        for layer, v in per_layer.items():
            depth[min(3 * layer // n_layer, 2)] += v
        current = {str(k): float(v[0]) for k, v in step["stats"].items()}
        delta = _delta(prev, current)
        prev = current
        a, f = sum(attn.values()), sum(ffn.values())
        label, confidence = label_state(a, f, depth, list(per_layer.values()))
        states.append(
            {
                "step": step["index"],
                "phase": step["phase"],
                "attention_energy": a,
                "ffn_energy": f,
                "depth_energy": depth,
                "delta": delta,
                "label": label,
                "confidence": confidence,
            }
        )
    return states


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
