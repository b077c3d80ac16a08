"""Spectra Vis: capture what llama.cpp computes while a GGUF model runs, and show it.

Pipeline (imports point upstream only): ``_ggml`` (ctypes bindings) -> ``collector``
(eval callback) -> ``naming``/``profiles`` -> ``capture`` (schema and store) ->
analysis -> backend -> frontend.  ``Llama`` is imported lazily so that reading
captures never needs llama.cpp loaded.
"""

from __future__ import annotations

from typing import Any

from .api import Session, capture
from .capture_file import Capture, CaptureError, load_capture
from .collector import TensorCollector, create_callback
from .naming import parse_name
from .presets import PRESETS, Preset
from .profiles import SUPPORTED_MODELS, ModelFileError, get_model_profile, get_supported_models, read_model_card
from .records import TrialData

__all__ = [
    "PRESETS",
    "SUPPORTED_MODELS",
    "Capture",
    "CaptureError",
    "Llama",
    "ModelFileError",
    "Preset",
    "Session",
    "TensorCollector",
    "TrialData",
    "capture",
    "create_callback",
    "get_model_profile",
    "get_supported_models",
    "load_capture",
    "parse_name",
    "read_model_card",
]

_LAZY = {"Llama": ("llama", "Llama")}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'spectra_vis' has no attribute {name!r}")
