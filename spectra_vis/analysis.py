"""Analysis stage: the views the viewer shows, computed from a loaded ``Capture``.

Pure functions returning plain JSON-ready dicts: the tensor grid, heat maps, per-layer and
per-category analysis, trial and step details, attention per token and the trial's
interpretation. The REST API (``backend/``) serves these payloads unchanged, so a script
gets the same numbers from ``spectra_vis.analysis`` as from the server. Fingerprints,
zones and cognitive states come from ``interpret`` (defined once there). Depends on the
capture, profiles and interpret stages only; imports no web or UI package.

Lookups of things a capture does not have (trial, step, layer, head, token) raise
``NotFound``; invalid arguments raise ``InvalidArgument`` (a ValueError). Messages are one line.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Literal

from . import interpret
from .capture_file import LEGACY_VERSION, Capture
from .profiles import CATEGORY_COLORS, FLOW_COLORS, flows_for, get_model_profile, get_supported_models

METRICS = ("l2", "mean", "std", "min", "max", "absmax", "sparsity", "nonfinite", "count")
HEATMAP_AXES = ("types", "tokens")
HeatmapAxis = Literal["types", "tokens"]
MAX_DEPTH = 4
TOP_TENSORS = 10

ZONE_COLORS = {
    "syntax_floor": "#4a90d9",
    "semantic_bridge": "#50c878",
    "long_range": "#da70d6",
    "structure_ripple": "#ffa500",
    "diffuse": "#808080",
}
STATE_COLORS = {
    "Attending": "#50c878",
    "Reasoning": "#da70d6",
    "Structuring": "#4a90d9",
    "Recalling": "#ffa500",
    "Searching": "#ffd700",
    "Generating": "#ff7f50",
    "Processing": "#808080",
}
INTENSITY_SCALE = ["#0d0887", "#7e03a8", "#cc4778", "#f89540", "#f0f921"]  # plasma, intensity 0 -> 1


class InvalidArgument(ValueError):
    """An argument out of its domain (unknown metric, axis, depth or model family)."""


class NotFound(LookupError):
    """The capture has no such trial, step, layer, head or token."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


# ----- small helpers ---------------------------------------------------------------------
def _trial(cap: Capture, trial_id: int) -> dict[str, Any]:
    trials = cap.data["trials"]
    if not 0 <= trial_id < len(trials):
        raise NotFound(f"no trial {trial_id}; this capture has {len(trials)} (ids 0..{len(trials) - 1})")
    return trials[trial_id]


def trial_exists(cap: Capture, trial_id: int) -> None:
    """Raise NotFound unless the capture has this trial."""
    _trial(cap, trial_id)


def _step(trial: dict[str, Any], step: int) -> dict[str, Any]:
    steps = trial["steps"]
    if not 0 <= step < len(steps):
        if not steps:
            raise NotFound(
                f"trial {trial['id']} has no steps (a version 1.0 capture has counts only): use metric=count"
            )
        raise NotFound(f"no step {step} in trial {trial['id']}; it has {len(steps)} (0..{len(steps) - 1})")
    return steps[step]


def _finite(v: Any) -> float | None:
    if v is None:
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _metric_index(cap: Capture, metric: str) -> int | None:
    """Index of ``metric`` in the capture's stat_names, None for ``count``."""
    if metric not in METRICS:
        raise InvalidArgument(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    return None if metric == "count" else list(cap.data["stat_names"]).index(metric)


def _range(values: Iterable[float | None]) -> tuple[float | None, float | None]:
    present = [v for v in values if v is not None]
    return (min(present), max(present)) if present else (None, None)


def _intensity(v: float | None, lo: float | None, hi: float | None) -> float | None:
    if v is None or lo is None or hi is None:
        return None
    return 0.5 if hi == lo else (v - lo) / (hi - lo)


def _ordered_types(tensors: Iterable[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(t["type"] for t in sorted(tensors, key=lambda t: t["order"])))


def _family(cap: Capture, model_family: str | None) -> str:
    family = (model_family or cap.data["model"].get("family") or "generic").lower().strip()
    if get_model_profile(family) is None:
        known = ", ".join(get_supported_models() + ["generic"])
        raise InvalidArgument(f"unknown model family {model_family!r}; choose one of {known}")
    return family


# ----- capture-level ---------------------------------------------------------------------
def summary(cap: Capture) -> dict[str, Any]:
    """The capture's summary (``Capture.summary``) plus its trials, layers and attention layers."""
    doc = cap.data
    return {
        **cap.summary(),
        "version": LEGACY_VERSION if cap.legacy else doc["version"],
        "trial_list": [
            {
                "id": i,
                "prompt": t["prompt"],
                "response": t["response"],
                "n_tokens": len(t["tokens"]["ids"]),
                "n_prompt": t["tokens"]["n_prompt"],
                "n_steps": len(t["steps"]),
            }
            for i, t in enumerate(doc["trials"])
        ],
        "layers": sorted({t["layer"] for t in doc["tensors"]}),
        "attention_layers": sorted(interpret.attention_tensors(doc)),
        "stat_names": list(doc["stat_names"]),
    }


def colors() -> dict[str, Any]:
    return {
        "categories": dict(CATEGORY_COLORS),
        "flows": dict(FLOW_COLORS),
        "zones": dict(ZONE_COLORS),
        "states": dict(STATE_COLORS),
        "scale": list(INTENSITY_SCALE),
    }


def flows(family: str) -> dict[str, Any]:
    """The data-flow edges between tensor types of a family, and the flow colours."""
    if get_model_profile(family) is None:
        raise InvalidArgument(f"unknown model family {family!r}; choose one of {', '.join(get_supported_models())}")
    return {
        "family": family,
        "flows": {k: [list(e) for e in v] for k, v in flows_for(family).items()},
        "colors": dict(FLOW_COLORS),
    }


def models() -> dict[str, Any]:
    names = get_supported_models()
    return {"models": names, "profiles": {n: get_model_profile(n) for n in names}}


# ----- analyze ---------------------------------------------------------------------------
def _mean_stats(cap: Capture, trials: list[dict[str, Any]]) -> dict[int, list[float | None]]:
    """tensor id -> each statistic averaged over the steps that read it."""
    n = len(cap.data["stat_names"])
    sums: dict[int, list[float]] = {}
    counts: dict[int, list[int]] = {}
    for trial in trials:
        for step in trial["steps"]:
            for key, values in step["stats"].items():
                s = sums.setdefault(int(key), [0.0] * n)
                c = counts.setdefault(int(key), [0] * n)
                for i, v in enumerate(values):
                    f = _finite(v)
                    if f is not None:
                        s[i] += f
                        c[i] += 1
    return {k: [s / c if c else None for s, c in zip(sums[k], counts[k], strict=True)] for k in sums}


def _group(
    cap: Capture, members: list[dict[str, Any]], means: dict[int, list[float | None]], evals: list[int]
) -> dict[str, Any]:
    names = cap.data["stat_names"]
    stats: dict[str, float | None] = {}
    for i, name in enumerate(names):
        vals = [means[t["id"]][i] for t in members if t["id"] in means and means[t["id"]][i] is not None]
        stats[name] = sum(v for v in vals if v is not None) / len(vals) if vals else None
    return {
        "tensors": len(members),
        "captured": sum(1 for t in members if t["captured"]),
        "evaluations": sum(evals[t["id"]] for t in members),
        "stats": stats,
    }


def analyze(cap: Capture, trial_id: int | None = None, model_family: str | None = None) -> dict[str, Any]:
    """Per-layer and per-category analysis: counts, the mean of each statistic, top tensors.

    Per tensor, each statistic is averaged over the selected steps that read it (all trials
    when ``trial_id`` is None); a group's statistic is the mean over its tensors that have one.
    """
    doc = cap.data
    family = _family(cap, model_family)
    trials = [_trial(cap, trial_id)] if trial_id is not None else list(doc["trials"])
    tensors = doc["tensors"]
    evals = [0] * len(tensors)
    for trial in trials:
        for i, n in enumerate(trial["counts"][: len(tensors)]):
            evals[i] += int(n)
    means = _mean_stats(cap, trials)
    layers = sorted({t["layer"] for t in tensors})
    categories = list(dict.fromkeys(t["category"] for t in tensors))
    l2 = list(doc["stat_names"]).index("l2")
    l2_mean = {k: v[l2] for k, v in means.items() if v[l2] is not None}
    ranked = sorted((t for t in tensors if t["id"] in l2_mean), key=lambda t: -float(l2_mean[t["id"]] or 0.0))
    absmax = list(doc["stat_names"]).index("absmax")
    return {
        "model_family": family,
        "profile": get_model_profile(family),
        "trial_id": trial_id,
        "stat_names": list(doc["stat_names"]),
        "totals": {
            "tensors": len(tensors),
            "captured": sum(1 for t in tensors if t["captured"]),
            "evaluations": sum(evals),
            "steps": sum(len(t["steps"]) for t in trials),
        },
        "layers": [{"layer": L, **_group(cap, [t for t in tensors if t["layer"] == L], means, evals)} for L in layers],
        "categories": [
            {
                "category": c,
                "color": CATEGORY_COLORS.get(c, CATEGORY_COLORS["other"]),
                **_group(cap, [t for t in tensors if t["category"] == c], means, evals),
            }
            for c in categories
        ],
        "top_tensors": [
            {
                "id": t["id"],
                "name": t["name"],
                "layer": t["layer"],
                "type": t["type"],
                "category": t["category"],
                "l2": l2_mean[t["id"]],
                "absmax": means[t["id"]][absmax],
            }
            for t in ranked[:TOP_TENSORS]
        ],
    }


# ----- tensor grid and heat maps ---------------------------------------------------------
def _values_at(cap: Capture, trial: dict[str, Any], step: dict[str, Any] | None, metric: str) -> dict[int, float]:
    """tensor id -> metric value at a step (``count``: evaluations in the trial)."""
    idx = _metric_index(cap, metric)
    if idx is None:
        return {i: float(n) for i, n in enumerate(trial["counts"]) if n}
    assert step is not None
    out = {}
    for key, values in step["stats"].items():
        v = _finite(values[idx])
        if v is not None:
            out[int(key)] = v
    return out


def tensor_grid(
    cap: Capture, trial_id: int = 0, step: int = 0, metric: str = "l2", depth: int = MAX_DEPTH
) -> dict[str, Any]:
    """One cell per catalogue tensor up to ``depth``: its place (layer, type), value and intensity."""
    if not 0 <= depth <= MAX_DEPTH:
        raise InvalidArgument(f"depth must be 0..{MAX_DEPTH}, not {depth}")
    _metric_index(cap, metric)
    trial = _trial(cap, trial_id)
    st = None if metric == "count" else _step(trial, step)
    values = _values_at(cap, trial, st, metric)
    tensors = [t for t in cap.data["tensors"] if t["depth"] <= depth]
    layers = sorted({t["layer"] for t in tensors})
    types = _ordered_types(tensors)
    layer_index = {L: i for i, L in enumerate(layers)}
    type_index = {t: i for i, t in enumerate(types)}
    lo, hi = _range(values.get(t["id"]) for t in tensors)
    cells = [
        {
            "id": t["id"],
            "key": t["key"],
            "name": t["name"],
            "layer": t["layer"],
            "layer_index": layer_index[t["layer"]],
            "type": t["type"],
            "type_index": type_index[t["type"]],
            "category": t["category"],
            "depth": t["depth"],
            "op": t["op"],
            "shape": t["shape"],
            "captured": t["captured"],
            "value": values.get(t["id"]),
            "intensity": _intensity(values.get(t["id"]), lo, hi),
            "color": CATEGORY_COLORS.get(t["category"], CATEGORY_COLORS["other"]),
        }
        for t in tensors
    ]
    return {
        "trial_id": trial_id,
        "step": step,
        "metric": metric,
        "depth": depth,
        "phase": st["phase"] if st else None,
        "n_tokens": st["n_tokens"] if st else None,
        "layers": layers,
        "types": types,
        "min": lo,
        "max": hi,
        "cells": cells,
    }


def heatmap(
    cap: Capture,
    trial_id: int = 0,
    metric: str = "l2",
    axis: str = "types",
    step: int = 0,
    tensor_type: str = "l_out",
) -> dict[str, Any]:
    """Layers x tensor types at one step (``axis="types"``) or layers x tokens for one type (``"tokens"``)."""
    if axis not in HEATMAP_AXES:
        raise InvalidArgument(f"unknown axis {axis!r}; choose types or tokens")
    _metric_index(cap, metric)
    trial = _trial(cap, trial_id)
    if axis == "types":
        body = _heatmap_types(cap, trial, step, metric)
    else:
        body = _heatmap_tokens(cap, trial, metric, tensor_type)
    flat = [v for row in body["values"] for v in row]
    lo, hi = _range(flat)
    return {
        "trial_id": trial_id,
        "metric": metric,
        "axis": axis,
        "step": step if axis == "types" else None,
        "type": tensor_type if axis == "tokens" else None,
        **body,
        "min": lo,
        "max": hi,
    }


def _heatmap_types(cap: Capture, trial: dict[str, Any], step: int, metric: str) -> dict[str, Any]:
    st = None if metric == "count" else _step(trial, step)
    values = _values_at(cap, trial, st, metric)
    tensors = [t for t in cap.data["tensors"] if t["id"] in values]
    rows = sorted({t["layer"] for t in tensors})
    types = _ordered_types(tensors)
    cell: dict[tuple[int, str], float] = {}
    for t in sorted(tensors, key=lambda t: t["id"]):
        cell.setdefault((t["layer"], t["type"]), values[t["id"]])
    category = {t["type"]: t["category"] for t in tensors}
    return {
        "rows": rows,
        "cols": [{"index": j, "label": ty, "type": ty, "category": category[ty]} for j, ty in enumerate(types)],
        "values": [[cell.get((L, ty)) for ty in types] for L in rows],
    }


def _heatmap_tokens(cap: Capture, trial: dict[str, Any], metric: str, tensor_type: str) -> dict[str, Any]:
    idx = _metric_index(cap, metric)
    if idx is None:
        raise InvalidArgument("metric=count is per trial, not per token; use it with axis=types")
    tensors = [t for t in cap.data["tensors"] if t["type"] == tensor_type]
    if not tensors:
        raise NotFound(f"no tensor of type {tensor_type!r} in this capture")
    texts = trial["tokens"]["texts"]
    n_prompt = trial["tokens"]["n_prompt"]
    step_of = _token_steps(trial)
    grid: dict[int, dict[int, float | None]] = {}
    for st in trial["steps"]:
        for t in tensors:
            for pos, values in _token_rows(st, t):
                v = _finite(values[idx])
                if v is not None and 0 <= pos < len(texts):
                    grid.setdefault(t["layer"], {}).setdefault(pos, v)
    rows = sorted(grid)
    cols = [
        {"index": j, "label": text, "text": text, "prompt": j < n_prompt, "step": step_of.get(j)}
        for j, text in enumerate(texts)
    ]
    return {"rows": rows, "cols": cols, "values": [[grid[L].get(j) for j in range(len(texts))] for L in rows]}


def _token_rows(step: dict[str, Any], tensor: dict[str, Any]) -> list[tuple[int, list[Any]]]:
    """(token position, stats) of one tensor at one step, for the tokens the capture has rows for."""
    key = str(tensor["id"])
    rows = step["rows"].get(key)
    if rows:
        return [(step["pos"] + r, row) for r, row in enumerate(rows)]
    stats = step["stats"].get(key)
    if stats is None:
        return []
    if step["n_tokens"] == 1:
        return [(step["pos"], stats)]
    # Last block of a prefill: llama.cpp keeps only the output row (the step's last token).
    shape = tensor["shape"]
    if len(shape) == 1 or (shape and shape[0] == 1):
        return [(step["pos"] + step["n_tokens"] - 1, stats)]
    return []


def _token_steps(trial: dict[str, Any]) -> dict[int, int]:
    """token position -> index of the step that evaluated it."""
    out: dict[int, int] = {}
    for st in trial["steps"]:
        for r in range(st["n_tokens"]):
            out.setdefault(st["pos"] + r, st["index"])
    return out


# ----- trials and steps ------------------------------------------------------------------
def trial_detail(cap: Capture, trial_id: int) -> dict[str, Any]:
    """A trial's tokens (with the step that evaluated each) and a summary of every step."""
    trial = _trial(cap, trial_id)
    tokens = trial["tokens"]
    step_of = _token_steps(trial)
    return {
        "id": trial_id,
        "prompt": trial["prompt"],
        "response": trial["response"],
        "n_prompt": tokens["n_prompt"],
        "interrupted": trial["interrupted"],
        "errors": list(trial["errors"]),
        "timings": trial["timings"],
        "tokens": [
            {"pos": i, "id": tid, "text": text, "prompt": i < tokens["n_prompt"], "step": step_of.get(i)}
            for i, (tid, text) in enumerate(zip(tokens["ids"], tokens["texts"], strict=False))
        ],
        "steps": [_step_summary(st) for st in trial["steps"]],
    }


def _step_summary(st: dict[str, Any]) -> dict[str, Any]:
    logits = st.get("logits")
    top = None
    if logits and logits.get("ids"):
        top = {"id": logits["ids"][0], "logit": logits["logits"][0]}
    return {
        "index": st["index"],
        "phase": st["phase"],
        "pos": st["pos"],
        "n_tokens": st["n_tokens"],
        "positions": list(range(st["pos"], st["pos"] + st["n_tokens"])),
        "token_texts": st["token_texts"],
        "ms": st.get("ms"),
        "n_stats": len(st["stats"]),
        "n_attention": len(st["attention"]),
        "next_token": top,
    }


def step_detail(cap: Capture, trial_id: int, step: int) -> dict[str, Any]:
    """Everything the capture holds for one step, with tensor names; attention summarised per layer."""
    trial = _trial(cap, trial_id)
    st = _step(trial, step)
    catalogue = cap.data["tensors"]
    tensors = []
    for key in sorted(st["stats"], key=int):
        t = catalogue[int(key)]
        tensors.append(
            {
                "id": t["id"],
                "name": t["name"],
                "layer": t["layer"],
                "type": t["type"],
                "category": t["category"],
                "stats": st["stats"][key],
                "rows": st["rows"].get(key),
            }
        )
    attention = []
    for key in sorted(st["attention"], key=int):
        att = st["attention"][key]
        attention.append(
            {
                "layer": catalogue[int(key)]["layer"],
                "tensor_id": int(key),
                "n_kv": att["n_kv"],
                "n_head": len(att["pos"]),
                "mean_entropy": [sum(h) / len(h) if h else None for h in att["entropy"]],
            }
        )
    return {
        "trial_id": trial_id,
        "index": st["index"],
        "phase": st["phase"],
        "pos": st["pos"],
        "n_tokens": st["n_tokens"],
        "positions": list(range(st["pos"], st["pos"] + st["n_tokens"])),
        "token_ids": st["token_ids"],
        "token_texts": st["token_texts"],
        "ms": st.get("ms"),
        "stat_names": list(cap.data["stat_names"]),
        "tensors": tensors,
        "attention": sorted(attention, key=lambda a: a["layer"]),
        "logits": st.get("logits"),
    }


# ----- attention and interpretation ------------------------------------------------------
def attention(
    cap: Capture,
    trial_id: int = 0,
    step: int | None = None,
    layer: int | None = None,
    head: int | None = None,
    token: int | None = None,
    zones: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Per query token: top-k edges (with token texts, sinks marked), entropy, fingerprint, zone.

    Filters: one step (else every step), one layer (else every attention layer), one head
    (else every head's edges and the head-averaged fingerprint), one query position.
    Each token's top-level ``zone`` is its token-strip zone (``interpret.token_zones``, which
    a caller that has it may pass as ``zones``), independent of the filters.
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
    if zones is None:
        zones = interpret.token_zones(doc, trial_id)
    strip_zone = {z["pos"]: z["zone"] for z in zones}
    tokens: dict[int, dict[str, Any]] = {}
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


def interpretation(cap: Capture, trial_id: int, zones: list[dict[str, Any]] | None = None) -> dict[str, Any]:
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
    states = []
    for s in interpret.cognitive_states(doc, trial_id):
        delta = [
            {
                "id": int(k),
                "name": catalogue[int(k)]["name"],
                "layer": catalogue[int(k)]["layer"],
                "type": catalogue[int(k)]["type"],
                "value": v,
            }
            for k, v in sorted(s["delta"].items(), key=lambda kv: int(kv[0]))
        ]
        states.append({**s, "delta": delta})
    return {
        "trial_id": trial_id,
        "zone_names": list(interpret.ZONES),
        "state_names": list(interpret.STATES),
        "zones": zones,
        "zone_distribution": distribution,
        "dominant_zone": max(distribution, key=lambda z: distribution[z]) if zones else None,
        "states": states,
    }
