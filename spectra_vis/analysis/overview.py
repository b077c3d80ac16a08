"""Capture-level payloads: summary, colours, flows, models, and the per-layer / per-category analysis."""

from __future__ import annotations

from typing import Any

import numpy as np

from spectra_vis.analysis import interpret, steering
from spectra_vis.analysis import payloads as P
from spectra_vis.analysis._common import (
    INTENSITY_SCALE,
    STATE_COLORS,
    TOP_TENSORS,
    ZONE_COLORS,
    InvalidArgument,
    _family,
    _trial,
)
from spectra_vis.analysis.digest import digest
from spectra_vis.constants import DEPTH_LEVELS, METRICS, SPECIAL_LAYERS
from spectra_vis.record.profiles import CATEGORY_COLORS, FLOW_COLORS, flows_for, get_model_profile, get_supported_models
from spectra_vis.store.capture_file import LEGACY_VERSION, Capture


# ----- capture-level ---------------------------------------------------------------------
def summary(cap: Capture) -> P.Summary:
    """The capture's summary (``Capture.summary``) plus its trials, layers and attention layers."""
    doc = cap.data
    return {
        **cap.summary(),
        "version": LEGACY_VERSION if cap.legacy else doc["version"],
        "trial_list": [
            {
                "id": i,
                "prompt": t["prompt"],
                "chat": bool(t.get("chat", False)),
                "response": t["response"],
                "n_tokens": len(t["tokens"]["ids"]),
                "n_prompt": t["tokens"]["n_prompt"],
                "n_steps": len(t["steps"]),
                "control": steering.control_info(t),
                "sweep": steering.sweep_info(t),
                "pair": _pair_info(t),
            }
            for i, t in enumerate(doc["trials"])
        ],
        "layers": sorted({t["layer"] for t in doc["tensors"]}),
        "attention_layers": sorted(interpret.attention_tensors(doc)),
        "stat_names": list(doc["stat_names"]),
    }


def _pair_info(trial: dict[str, Any]) -> P.PairInfo | None:
    p = trial.get("pair")
    if not p:
        return None
    return {"role": p["role"], "reference": p.get("reference"), "candidate": p.get("candidate"),
            "forced": bool(p["forced"])}  # fmt: skip


def colors() -> P.ColorsOut:
    return {
        "categories": dict(CATEGORY_COLORS),
        "flows": dict(FLOW_COLORS),
        "zones": dict(ZONE_COLORS),
        "states": dict(STATE_COLORS),
        "scale": list(INTENSITY_SCALE),
    }


def flows(family: str) -> P.FlowsOut:
    """The data-flow edges between tensor types of a family, and the flow colours."""
    if get_model_profile(family) is None:
        raise InvalidArgument(f"unknown model family {family!r}; choose one of {', '.join(get_supported_models())}")
    return {
        "family": family,
        "flows": {k: [list(e) for e in v] for k, v in flows_for(family).items()},
        "colors": dict(FLOW_COLORS),
    }


def models() -> P.ModelsOut:
    names = get_supported_models()
    return {
        "models": names,
        "profiles": {n: p for n in names if (p := get_model_profile(n)) is not None},
        "metrics": list(METRICS),
        "depth_levels": list(DEPTH_LEVELS),
        "special_layers": dict(SPECIAL_LAYERS),
    }


# ----- analyze ---------------------------------------------------------------------------
def _mean_stats(cap: Capture, trial_ids: list[int]) -> dict[int, list[float | None]]:
    """tensor id -> each statistic averaged over the steps that read it (the digests' sums)."""
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, np.ndarray] = {}
    for trial_id in trial_ids:
        if cap.legacy or not cap.data["trials"][trial_id]["steps"]:
            continue
        d = digest(cap, trial_id)
        for i, tid in enumerate(d.ids.tolist()):
            if tid in sums:
                sums[tid] = sums[tid] + d.sums[i]
                counts[tid] = counts[tid] + d.counts[i]
            else:
                sums[tid], counts[tid] = np.array(d.sums[i]), np.array(d.counts[i])
    return {
        k: [float(s) / int(c) if c else None for s, c in zip(sums[k], counts[k], strict=True)]
        for k in sums
        if counts[k].any()
    }


def _group(
    cap: Capture, members: list[dict[str, Any]], means: dict[int, list[float | None]], evals: list[int]
) -> P.StatGroup:
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


def analyze(cap: Capture, trial_id: int | None = None, model_family: str | None = None) -> P.Analysis:
    """Per-layer and per-category analysis: counts, the mean of each statistic, top tensors.

    Per tensor, each statistic is averaged over the selected steps that read it (all trials
    when ``trial_id`` is None); a group's statistic is the mean over its tensors that have one.
    """
    doc = cap.data
    family = _family(cap, model_family)
    trials = [_trial(cap, trial_id)] if trial_id is not None else list(doc["trials"])
    trial_ids = [trial_id] if trial_id is not None else list(range(len(doc["trials"])))
    tensors = doc["tensors"]
    evals = [0] * len(tensors)
    for trial in trials:
        for i, n in enumerate(trial["counts"][: len(tensors)]):
            evals[i] += int(n)
    means = _mean_stats(cap, trial_ids)
    layers = sorted({t["layer"] for t in tensors})
    categories = list(dict.fromkeys(t["category"] for t in tensors))
    l2 = list(doc["stat_names"]).index("l2")
    l2_mean = {k: v[l2] for k, v in means.items() if v[l2] is not None}
    ranked = sorted((t for t in tensors if t["id"] in l2_mean), key=lambda t: -float(l2_mean[t["id"]] or 0.0))
    absmax = list(doc["stat_names"]).index("absmax")
    profile = get_model_profile(family)
    assert profile is not None  # _family checked it
    return {
        "model_family": family,
        "profile": profile,
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
