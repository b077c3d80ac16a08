"""The tensor grid and the heat maps (layers x types at a step, layers x tokens for a type)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from spectra_vis.analysis import payloads as P
from spectra_vis.analysis._common import (
    HEATMAP_AXES,
    HeatmapAxis,
    InvalidArgument,
    NotFound,
    _finite,
    _intensity,
    _metric_index,
    _ordered_types,
    _range,
    _step,
    _trial,
)
from spectra_vis.analysis.digest import digest
from spectra_vis.analysis.trials import token_steps
from spectra_vis.constants import MAX_DEPTH
from spectra_vis.record.profiles import CATEGORY_COLORS
from spectra_vis.store.capture_file import Capture


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


def tensor_grid(cap: Capture, trial_id: int = 0, step: int = 0, metric: str = "l2", depth: int = MAX_DEPTH) -> P.Grid:
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
    cells: list[P.GridCell] = [
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
    axis: HeatmapAxis = "types",
    step: int = 0,
    tensor_type: str = "l_out",
) -> P.Heatmap:
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


def _heatmap_types(cap: Capture, trial: dict[str, Any], step: int, metric: str) -> P.HeatmapBody:
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


def _heatmap_tokens(cap: Capture, trial: dict[str, Any], metric: str, tensor_type: str) -> P.HeatmapBody:
    """Per layer, each token's value of the type's tensor: the first finite one in catalogue order,
    from the trial's digest (every step's rows, read once: ``analysis.digest``)."""
    idx = _metric_index(cap, metric)
    if idx is None:
        raise InvalidArgument("metric=count is per trial, not per token; use it with axis=types")
    tensors = [t for t in cap.data["tensors"] if t["type"] == tensor_type]
    if not tensors:
        raise NotFound(f"no tensor of type {tensor_type!r} in this capture")
    texts = trial["tokens"]["texts"]
    n_prompt = trial["tokens"]["n_prompt"]
    d = digest(cap, trial["id"]) if trial["steps"] else None
    grid: dict[int, np.ndarray] = {}
    if d is not None:
        row = d.row()
        for t in tensors:
            if t["id"] not in row:
                continue
            values = np.asarray(d.tok[row[t["id"]], idx, : len(texts)], dtype=np.float64)
            have = grid.get(t["layer"])
            grid[t["layer"]] = values if have is None else np.where(np.isfinite(have), have, values)
    rows = sorted(L for L, v in grid.items() if np.isfinite(v).any())
    step_of = token_steps(d.steps) if d is not None else {}
    cols: list[P.HeatmapCol] = [
        {"index": j, "label": text, "text": text, "prompt": j < n_prompt, "step": step_of.get(j)}
        for j, text in enumerate(texts)
    ]
    cells = [[v if math.isfinite(v) else None for v in grid[L].tolist()] for L in rows]
    return {"rows": rows, "cols": cols, "values": cells}
