"""Spectra Vis: capture what llama.cpp computes while a GGUF model runs, and show it.

The package reads the way data flows through it; each stage imports only the stages below it
(checked by import-linter, see ``[tool.importlinter]`` in pyproject.toml):

- ``capturing``: bindings, native callback, recorder and engines, ``Llama``, ``Session``;
- ``comparing``: two trials side by side (``compare``), and the same tokens through two models;
- ``steering``: control vectors from contrasting prompts (``steer.make``), sweeps of strengths
  (``steer.sweep``); also reachable as ``spectra_vis.steer``;
- ``analysis``: every payload the viewer and the REST API show, computed from a capture;
- ``store``: the capture file (schema, load, validate, atomic save, version 1.0 read-only);
- ``record``: names, model profiles, presets, statistics, trial records;
- ``errors``, ``constants``, ``testing`` (tiny GGUF writer): below everything.

The tools (``cli``, ``wizard``, ``bench``, ``doctor``) sit on top. ``Llama`` is imported lazily so
that reading captures never needs llama.cpp loaded.
"""

from __future__ import annotations

from typing import Any

from spectra_vis.capturing.collector import TensorCollector, create_callback
from spectra_vis.capturing.session import Session, capture
from spectra_vis.comparing import Comparison, compare
from spectra_vis.record.naming import parse_name
from spectra_vis.record.presets import PRESETS, Preset
from spectra_vis.record.profiles import (
    SUPPORTED_MODELS,
    ModelFileError,
    get_model_profile,
    get_supported_models,
    read_model_card,
)
from spectra_vis.record.records import TrialData
from spectra_vis.store.capture_file import Capture, CaptureError, load_capture

__all__ = [
    "PRESETS",
    "SUPPORTED_MODELS",
    "Capture",
    "CaptureError",
    "Comparison",
    "Llama",
    "ModelFileError",
    "Preset",
    "Session",
    "TensorCollector",
    "TrialData",
    "capture",
    "compare",
    "create_callback",
    "get_model_profile",
    "get_supported_models",
    "load_capture",
    "parse_name",
    "read_model_card",
    "steer",
]

_LAZY = {"Llama": ("capturing.llama", "Llama"), "steer": ("steering", None)}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        loaded = importlib.import_module(f".{module}", __name__)
        return loaded if attr is None else getattr(loaded, attr)
    raise AttributeError(f"module 'spectra_vis' has no attribute {name!r}")
