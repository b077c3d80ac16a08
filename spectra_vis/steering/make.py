"""Steering stage: make a control vector from two contrasting sets of prompts.

Each prompt is captured (a ``Session`` reading only ``l_out`` and keeping its rows as float32
vectors) and its residual stream read per block, ``Capture.vectors(trial, "blocks.L.hook_resid_post")``:
the last prompt token's row (``position="last"``) or the mean of the prompt's own tokens' rows
(``"mean"``; tokens the tokenizer added, such as BOS, left out). Per block layer L:

- ``method="mean"``: the direction is the difference of the two sets' mean rows (the sets may have
  different sizes);
- ``method="pca"``: the first principal component of the paired differences (positive line i minus
  negative line i), uncentered, as llama.cpp's cvector-generator computes it;

its sign fixed so that the positive prompts project higher than the negative ones. The layer's scale
is the mean projection gap, ``mean(pos . u) - mean(neg . u)`` in residual units, and the vector
written is ``u x gap``: strength 1 moves the residual stream by the gap the prompts showed, at
every chosen layer. The relative gap (gap / mean residual norm at that layer) says where the
concept separates best. The file is llama.cpp's control-vector GGUF (``store.control_vector``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from spectra_vis.capturing.control import check_range, parse_layers
from spectra_vis.capturing.session import Session
from spectra_vis.errors import InvalidArgument
from spectra_vis.record.presets import Preset
from spectra_vis.store.capture_file import Capture
from spectra_vis.store.control_vector import ControlVector, file_sha256, write_control_vector

Method = Literal["mean", "pca"]
Position = Literal["last", "mean"]
METHODS = ("mean", "pca")
POSITIONS = ("last", "mean")
Prompts = str | os.PathLike[str] | Sequence[str]
EventHook = Callable[[str, Any], None]


def read_prompts(source: Prompts, label: str) -> list[str]:
    """One prompt per line of a file (blank lines skipped), or the strings given."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise InvalidArgument(f"{label} prompt file {path} does not exist; give a text file, one prompt per line")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidArgument(f"{label} prompt file {path} could not be read as UTF-8 text ({exc})") from None
        prompts = [line.strip() for line in text.splitlines() if line.strip()]
        where = f"{label} prompt file {path}"
    else:
        prompts = [str(p).strip() for p in source if str(p).strip()]
        where = f"the {label} prompts"
    if not prompts:
        raise InvalidArgument(f"{where} has no prompts; write one prompt per line")
    return prompts


def check_sets(pos: list[str], neg: list[str], method: str, position: str) -> None:
    if method not in METHODS:
        raise InvalidArgument(f"unknown method {method!r}; choose mean or pca")
    if position not in POSITIONS:
        raise InvalidArgument(f"unknown position {position!r}; choose last or mean")
    if method == "pca" and len(pos) != len(neg):
        raise InvalidArgument(
            f"pca pairs the prompts line by line, but there are {len(pos)} positive and {len(neg)} negative "
            "prompts; give as many of each (or use --method mean)"
        )


def make(
    model_path: str | os.PathLike[str],
    positive: Prompts,
    negative: Prompts,
    *,
    method: Method = "mean",
    layers: str | tuple[int, int] | None = None,
    position: Position = "last",
    out: str | os.PathLike[str] | None = None,
    chat: bool = False,
    n_ctx: int = 512,
    n_threads: int | None = None,
    on_event: EventHook | None = None,
) -> ControlVector:
    """A control vector from ``positive`` and ``negative`` prompts (files, one prompt per line, or
    lists), for block layers ``layers`` (``"4-14"`` or ``(4, 14)``, inclusive; default every block
    a vector can reach, 1..n_layer-1); written atomically to ``out`` when given. ``on_event("prompt",
    (done, total))`` follows the captures. InvalidArgument (one line) for empty or unequal prompt sets
    (pca), a layer range outside the model, an unknown method or position."""
    pos, neg = read_prompts(positive, "positive"), read_prompts(negative, "negative")
    check_sets(pos, neg, method, position)
    emit = on_event or (lambda kind, payload: None)
    preset = Preset(name="custom", patterns=["l_out"], vectors=["l_out"], vector_dtype="f32")
    with Session(model_path, preset, n_ctx=n_ctx, n_threads=n_threads, lens=False) as s:
        card = s.collector.model_card
        n_layer = int(card.n_layer)
        chosen = parse_layers(layers) or (1, n_layer - 1)
        check_range(chosen, n_layer)
        prompts = pos + neg
        for i, prompt in enumerate(prompts):
            emit("prompt", (i, len(prompts)))
            s.run(prompt, max_tokens=1, chat=chat)
        emit("prompt", (len(prompts), len(prompts)))
        cap = s.capture()
        model_hint = str(card.architecture)
    rows = {L: _rows(cap, L, len(prompts), position) for L in range(chosen[0], chosen[1] + 1)}
    directions, relative = {}, {}
    for layer, r in rows.items():
        directions[layer], relative[layer] = _direction(r[: len(pos)], r[len(pos) :], method, layer)
    vector = ControlVector(
        directions=directions, model_hint=model_hint, n_layer=n_layer, method=method, position=position,
        relative_gap=relative,
    )  # fmt: skip
    if out is not None:
        vector.path = write_control_vector(vector, out)
        vector.sha256 = file_sha256(vector.path)
    return vector


def _rows(cap: Capture, layer: int, n_trials: int, position: str) -> np.ndarray:
    """Per trial, its row of block ``layer``: the last prompt token's, or the mean of the prompt's own."""
    out = []
    for t in range(n_trials):
        trial = cap.trial(t)
        n_prompt = int(trial["tokens"]["n_prompt"])
        v = cap.vectors(t, f"blocks.{layer}.hook_resid_post")[:n_prompt].astype(np.float64)
        if position == "last":
            out.append(v[n_prompt - 1])
            continue
        marks = list(trial["tokens"].get("template") or [False] * n_prompt)
        own = [i for i in range(n_prompt) if not marks[i] and not np.isnan(v[i]).any()]
        have = own or [i for i in range(n_prompt) if not np.isnan(v[i]).any()]
        out.append(v[have].mean(axis=0))
    return np.asarray(out)


def _direction(pos: np.ndarray, neg: np.ndarray, method: str, layer: int) -> tuple[np.ndarray, float]:
    """The layer's vector (unit direction x mean projection gap, float32) and its relative gap."""
    if method == "pca":
        diffs = pos - neg
        _, _, vt = np.linalg.svd(diffs, full_matrices=False)
        unit = vt[0]
    else:
        diff = pos.mean(axis=0) - neg.mean(axis=0)
        norm = float(np.linalg.norm(diff))
        unit = diff / norm if norm > 0 else diff
    gap = float((pos @ unit).mean() - (neg @ unit).mean())
    if gap < 0:  # the sign rule: positive prompts project higher
        unit, gap = -unit, -gap
    if not gap > 0 or not np.isfinite(gap):
        raise InvalidArgument(
            f"at layer {layer} the positive and negative prompts give the same residual stream; "
            "use prompts that differ in the concept"
        )
    norms = np.linalg.norm(np.concatenate([pos, neg]), axis=1)
    return (unit * gap).astype(np.float32), gap / float(norms.mean())
