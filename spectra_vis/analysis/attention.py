"""Attention per query token (top-k edges, fingerprints, zones) and the trial interpretation."""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from spectra_vis.analysis import interpret
from spectra_vis.analysis import payloads as P
from spectra_vis.analysis._common import InvalidArgument, NotFound, _step, _trial
from spectra_vis.analysis.digest import TrialDigest, digest, step_of_token
from spectra_vis.store.capture_file import Capture


# ----- attention and interpretation ------------------------------------------------------
def attention(
    cap: Capture,
    trial_id: int = 0,
    step: int | None = None,
    layer: int | None = None,
    head: int | None = None,
    token: int | None = None,
    zones: list[dict[str, Any]] | None = None,
) -> P.Attention:
    """Per query token: top-k edges (with token texts, sinks marked), entropy, fingerprint, zone.

    Filters: one step (else every step), one layer (else every attention layer), one head
    (else every head's edges and the head-averaged fingerprint), one query position.
    Each token's top-level ``zone`` is its token-strip zone (``interpret.token_zones``, which
    a caller that has it may pass as ``zones``; else those of the chosen steps are computed),
    independent of the filters.
    """
    doc = cap.data
    trial = _trial(cap, trial_id)
    att_layers = interpret.attention_tensors(doc)
    d = digest(cap, trial_id) if trial["steps"] and not cap.legacy else None
    if step is not None:
        steps = [_step(trial, step)]
    elif token is not None and d is not None:  # the one step that evaluated the token
        at = step_of_token(d, token)
        steps = [_step(trial, at)] if at is not None else []
    else:
        steps = list(trial["steps"])
    if layer is not None and layer not in att_layers:
        raise NotFound(f"no attention captured for layer {layer}; attention layers: {sorted(att_layers) or 'none'}")
    layers = [layer] if layer is not None else sorted(att_layers)
    texts = trial["tokens"]["texts"]
    n_prompt = trial["tokens"]["n_prompt"]
    n_head = d.n_head if d is not None else 0
    if head is not None and not 0 <= head < n_head:
        raise NotFound(f"no head {head}; this capture has {n_head} heads per layer (0..{max(n_head - 1, 0)})")
    if zones is None and d is not None:  # the trial's, computed once (analysis.digest)
        zones = [{"pos": z[0], "step": z[1], "zone": z[2]} for z in d.zones]
    strip_zone = {z["pos"]: z["zone"] for z in zones or []}
    tokens: dict[int, P.TokenAttention] = {}
    for st in steps:
        for L in layers:
            if str(att_layers[L]) not in st["attention"]:
                continue
            att = st["attention"][str(att_layers[L])]
            computed = interpret.token_attention(doc, trial_id, st["index"], L, head)
            for r, tok in enumerate(computed["tokens"]):
                q = tok["pos"]
                if token is not None and q != token:
                    continue
                entry = tokens.setdefault(
                    q,
                    {
                        "pos": q,
                        "text": texts[q] if q < len(texts) else "",
                        "step": st["index"],
                        "prompt": q < n_prompt,
                        "zone": strip_zone.get(q),
                        "layers": [],
                    },
                )
                heads = range(len(att["entropy"])) if head is None else [head]
                entry["layers"].append(
                    {
                        "layer": L,
                        "entropy": [att["entropy"][h][r] for h in heads],
                        "coverage": tok["coverage"],
                        "fingerprint": tok["fingerprint"],
                        "periodicity": tok["periodicity"],
                        "zone": tok["zone"],
                        "edges": [
                            {
                                "head": e["head"],
                                "pos": e["pos"],
                                "p": e["p"],
                                "distance": e["distance"],
                                "token_text": e["text"],
                                "sink": e["sink"],
                            }
                            for e in tok["edges"]
                            if e["distance"] >= 0  # future positions: masked (p = 0), filling early rows' top-k
                        ],
                    }
                )
    if token is not None and token not in tokens:
        where = f"step {step}" if step is not None else f"trial {trial_id}"
        raise NotFound(f"no attention for a query token at position {token} in {where}")
    return {
        "trial_id": trial_id,
        "step": step,
        "layer": layer,
        "head": head,
        "n_head": n_head,
        "top_k": doc["preset"].get("top_k"),
        "attention_layers": sorted(att_layers),
        "fingerprint_names": list(interpret.FINGERPRINT_NAMES),
        "tokens": [tokens[q] for q in sorted(tokens)],
    }


def interpretation(
    cap: Capture,
    trial_id: int,
    zones: list[dict[str, Any]] | None = None,
    start: int = 0,
    stop: int | None = None,
    delta: bool = True,
) -> P.Interpretation:
    """Zone per token, cognitive state (with the delta bar) per step, and the zone distribution.

    ``start``/``stop``: only the states of steps start..stop-1 and the zones of their tokens (the
    distribution and the dominant zone are always the whole trial's); ``delta=False`` leaves each
    state's delta bar empty (it lists every tensor: most of the payload of a long trial).
    ``zones``: the trial's zones (``interpret.token_zones``), when the caller has them already;
    else the trial's digest gives them (``analysis.digest``: computed once per trial).
    """
    trial = _trial(cap, trial_id)
    texts = trial["tokens"]["texts"]
    n_steps = len(trial["steps"])
    if start < 0 or (stop is not None and stop < start):
        raise InvalidArgument(f"steps {start}..{stop} is not a range; give 0 <= start <= stop")
    stop = n_steps if stop is None else min(stop, n_steps)
    d = digest(cap, trial_id) if n_steps and not cap.legacy else None
    if zones is None:
        zones = [{"pos": z[0], "step": z[1], "zone": z[2]} for z in d.zones] if d is not None else []
    distribution = interpret.zone_distribution(zones)
    shown = [
        {**z, "text": texts[z["pos"]] if z["pos"] < len(texts) else ""} for z in zones if start <= z["step"] < stop
    ]
    states: list[P.StepState] = []
    if d is not None:
        for j in range(start, stop):
            states.append(cast(P.StepState, {**d.states[j], "delta": _delta(cap, d, j) if delta else []}))
    return {
        "trial_id": trial_id,
        "n_steps": n_steps,
        "start": start,
        "stop": stop,
        "zone_names": list(interpret.ZONES),
        "state_names": list(interpret.STATES),
        "zones": cast(list[P.TokenZone], shown),
        "zone_distribution": distribution,
        "dominant_zone": max(distribution, key=lambda z: distribution[z]) if zones else None,
        "states": states,
    }


def _delta(cap: Capture, d: TrialDigest, j: int) -> list[P.DeltaEntry]:
    """The delta bar of step j: each tensor's relative change of L2 from step j - 1 (catalogue order)."""
    if j == 0:
        return []
    prev, cur = d.l2[j - 1], d.l2[j]
    both = np.flatnonzero(~np.isnan(prev) & ~np.isnan(cur))
    values = (cur[both] - prev[both]) / np.maximum(np.abs(prev[both]), 1e-9)
    catalogue = cap.data["tensors"]
    out: list[P.DeltaEntry] = []
    for tid, v in sorted(zip(d.ids[both].tolist(), values.tolist(), strict=True)):
        t = catalogue[tid]
        out.append({"id": tid, "name": t["name"], "layer": t["layer"], "type": t["type"], "value": v})
    return out
