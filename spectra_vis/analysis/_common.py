"""Shared pieces of the analysis payloads: metric names, colours, errors and small lookups."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Literal

from spectra_vis.constants import METRICS
from spectra_vis.errors import InvalidArgument, NotFound
from spectra_vis.record.profiles import get_model_profile, get_supported_models
from spectra_vis.store.capture_file import Capture, trial_of

HEATMAP_AXES = ("types", "tokens")
HeatmapAxis = Literal["types", "tokens"]
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


# ----- small helpers ---------------------------------------------------------------------
def _trial(cap: Capture, trial_id: int) -> dict[str, Any]:
    return trial_of(cap.data, trial_id)


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
