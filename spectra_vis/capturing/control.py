"""Capturing stage: a control vector applied to a loaded model while it is captured, and what it
did to the residual stream.

``resolve`` checks a control vector against the model (width, layer count, layer range, a finite
strength) and gives a ``Control``; ``apply`` hands it to llama.cpp (``llama_set_adapter_cvec``
through the bindings), which adds ``strength x direction.L`` to the output of block L. Strength 0
clears the vector instead, so the graph and every number are exactly the unsteered run's.
``projection`` projects a trial's ``l_out`` rows (its kept vectors) on each layer's unit direction.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from spectra_vis.capturing import _ggml
from spectra_vis.errors import InvalidArgument
from spectra_vis.record.records import TensorInfo, TrialData
from spectra_vis.store.control_vector import ControlVector, read_control_vector

RESIDUAL = "l_out"
ControlSpec = tuple["str | os.PathLike[str] | ControlVector", float]


@dataclass
class Control:
    """A control vector, its strength and the inclusive block range it is applied to."""

    vector: ControlVector
    strength: float
    layers: tuple[int, int]

    @property
    def file(self) -> str:
        return self.vector.path.name if self.vector.path is not None else "(in memory)"

    def record(self) -> dict[str, Any]:
        """The trial's ``control`` field (capture format 2.3)."""
        return {
            "file": self.file,
            "sha256": self.vector.sha256,
            "layers": list(self.layers),
            "strength": float(self.strength),
            "n_embd": self.vector.n_embd,
        }


def check_strength(strength: Any) -> float:
    try:
        value = float(strength)
    except (TypeError, ValueError):
        raise InvalidArgument(f"strength {strength!r} is not a number (give e.g. 4, -2.5 or 0)") from None
    if not math.isfinite(value):
        raise InvalidArgument(f"strength {strength!r} is not a finite number (give e.g. 4, -2.5 or 0)")
    return value


def parse_layers(text: str | tuple[int, int] | list[int] | None) -> tuple[int, int] | None:
    """``"4-14"`` (or ``"7"``, or a pair) as an inclusive (first, last); None stays None."""
    if text is None:
        return None
    if isinstance(text, (tuple, list)):
        if len(text) != 2:
            raise InvalidArgument(f"a layer range is two numbers (first, last), not {list(text)}")
        first, last = int(text[0]), int(text[1])
    else:
        parts = str(text).replace(" ", "").split("-")
        if not 1 <= len(parts) <= 2 or not all(p.isdigit() for p in parts):
            raise InvalidArgument(f"layer range {text!r} is not FIRST-LAST (e.g. 4-14) or one layer")
        first, last = int(parts[0]), int(parts[-1])
    if first > last:
        raise InvalidArgument(f"layer range {first}-{last} runs backwards; give FIRST-LAST with FIRST <= LAST")
    return first, last


def check_range(layers: tuple[int, int], n_layer: int, first_allowed: int = 1) -> None:
    """A layer range inside the blocks a control vector can reach (1..n_layer-1: block 0 has no slot)."""
    lo, hi = layers
    if lo < first_allowed or hi > n_layer - 1:
        raise InvalidArgument(
            f"layer range {lo}-{hi} is outside the model: it has {n_layer} blocks, and a control vector "
            f"reaches blocks {first_allowed}..{n_layer - 1}"
        )


def resolve(spec: ControlSpec, n_layer: int, n_embd: int, layers: str | tuple[int, int] | None = None) -> Control:
    """``(file or ControlVector, strength)`` checked against a model of ``n_layer`` blocks and width
    ``n_embd``; ``layers`` defaults to the vector's own range. InvalidArgument / WrongFileType (one line)."""
    if not isinstance(spec, (tuple, list)) or len(spec) != 2:
        raise InvalidArgument("control must be a pair (control vector file, strength)")
    source, strength = spec
    value = check_strength(strength)
    vector = source if isinstance(source, ControlVector) else read_control_vector(source)
    name = vector.path.name if vector.path is not None else "the control vector"
    if vector.n_embd != n_embd:
        raise InvalidArgument(f"{name} has width n_embd={vector.n_embd} but the model has n_embd={n_embd}")
    if min(vector.layers) < 1:
        first = min(vector.layers)
        raise InvalidArgument(f"{name} has a direction for block {first}; llama.cpp steers blocks 1 and up only")
    top = max(vector.layers)
    if (vector.n_layer is not None and vector.n_layer != n_layer) or top > n_layer - 1:
        made = vector.n_layer if vector.n_layer is not None else f"at least {top + 1}"
        raise InvalidArgument(f"{name} was made for a model of {made} layers but this model has {n_layer} layers")
    chosen = parse_layers(layers) or (min(vector.layers), top)
    check_range(chosen, n_layer)
    return Control(vector=vector, strength=value, layers=chosen)


def apply(model: Any, control: Control | None, n_layer: int) -> None:
    """Set (or clear, for None or strength 0) the control vector of a loaded ``Llama``."""
    ctx = model._ctx.ctx
    if control is None or control.strength == 0.0:
        rc = _ggml.set_control_vector(ctx, None, 0, -1, -1)
    else:
        buf = control.vector.buffer(n_layer, control.strength)
        rc = _ggml.set_control_vector(ctx, buf, control.vector.n_embd, *control.layers)
    if rc != 0:
        raise InvalidArgument(f"llama.cpp refused the control vector {control.file if control else ''} (status {rc})")


def projection(trial: TrialData, tensors: list[TensorInfo], vector: ControlVector, file: str) -> dict[str, Any] | None:
    """The trial's ``projection`` field: per layer of ``vector`` and per token, the kept ``l_out`` row
    dotted with the layer's unit direction (residual units); None when no ``l_out`` rows were kept."""
    tids = {t.layer: t.id for t in tensors if t.type == RESIDUAL and t.layer in vector.directions}
    n = len(trial.token_ids) or sum(s.n_tokens for s in trial.steps)
    values = np.full((len(vector.layers), n), np.nan)
    units = {layer: vector.unit(layer) for layer in vector.layers}
    for step in trial.steps:
        end = step.pos + step.n_tokens
        for i, layer in enumerate(vector.layers):
            tid = tids.get(layer)
            if tid is None or tid not in step.vectors:
                continue
            rows = step.vectors[tid].astype(np.float64) * step.vector_scales[tid].astype(np.float64)[:, None]
            first = end - len(rows)
            keep = slice(max(0, -first), max(0, min(len(rows), n - first)))
            values[i, first + keep.start : first + keep.stop] = rows[keep] @ units[layer]
    if np.isnan(values).all():
        return None
    return {
        "layers": list(vector.layers),
        "values": [[None if math.isnan(v) else float(v) for v in row] for row in values],
        "direction_file": file,
    }
