"""Attention per query token (top-k edges, fingerprints, zones) and the trial interpretation."""

from __future__ import annotations

from typing import Any, cast

from spectra_vis.analysis import interpret
from spectra_vis.analysis import payloads as P
from spectra_vis.analysis._common import NotFound, _step, _trial
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
    steps = [_step(trial, step)] if step is not None else list(trial["steps"])
    if layer is not None and layer not in att_layers:
        raise NotFound(f"no attention captured for layer {layer}; attention layers: {sorted(att_layers) or 'none'}")
    layers = [layer] if layer is not None else sorted(att_layers)
    texts = trial["tokens"]["texts"]
    n_prompt = trial["tokens"]["n_prompt"]
    n_head = _n_head(trial, att_layers)
    if head is not None and not 0 <= head < n_head:
        raise NotFound(f"no head {head}; this capture has {n_head} heads per layer (0..{max(n_head - 1, 0)})")
    if zones is None:  # only the steps asked for: a token's zone depends on its own step alone
        zones = [z for st in steps for z in interpret.step_zones(doc, trial_id, st["index"])]
    strip_zone = {z["pos"]: z["zone"] for z in zones}
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


def _n_head(trial: dict[str, Any], att_layers: dict[int, int]) -> int:
    for st in trial["steps"]:
        for key in st["attention"]:
            if int(key) in att_layers.values():
                return len(st["attention"][key]["pos"])
    return 0


def interpretation(cap: Capture, trial_id: int, zones: list[dict[str, Any]] | None = None) -> P.Interpretation:
    """Zone per token, cognitive state (with the delta bar) per step, and the zone distribution.

    ``zones``: the trial's ``interpret.token_zones``, when the caller has them already.
    """
    doc = cap.data
    trial = _trial(cap, trial_id)
    texts = trial["tokens"]["texts"]
    if zones is None:
        zones = interpret.token_zones(doc, trial_id)
    zones = [{**z, "text": texts[z["pos"]] if z["pos"] < len(texts) else ""} for z in zones]
    distribution = interpret.zone_distribution(zones)
    catalogue = doc["tensors"]
    states: list[P.StepState] = []
    for s in interpret.cognitive_states(doc, trial_id):
        delta: list[P.DeltaEntry] = [
            {
                "id": int(k),
                "name": catalogue[int(k)]["name"],
                "layer": catalogue[int(k)]["layer"],
                "type": catalogue[int(k)]["type"],
                "value": v,
            }
            for k, v in sorted(s["delta"].items(), key=lambda kv: int(kv[0]))
        ]
        states.append(
            {
                "step": s["step"],
                "phase": s["phase"],
                "label": s["label"],
                "confidence": s["confidence"],
                "attention_energy": s["attention_energy"],
                "ffn_energy": s["ffn_energy"],
                "depth_energy": s["depth_energy"],
                "delta": delta,
            }
        )
    return {
        "trial_id": trial_id,
        "zone_names": list(interpret.ZONES),
        "state_names": list(interpret.STATES),
        "zones": cast(list[P.TokenZone], zones),  # interpret builds them
        "zone_distribution": distribution,
        "dominant_zone": max(distribution, key=lambda z: distribution[z]) if zones else None,
        "states": states,
    }
