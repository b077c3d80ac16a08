"""The capture wizard (``capture_tensors.py``, ``spectra-vis capture``): questions or flags in,
one call to ``spectra_vis.capture`` out. The only part of the package that uses rich and
questionary (the ``cli`` extra); it adds no capture logic of its own.

Modules: ``paths`` (drag-and-drop paths, GGUF check), ``config`` (settings, defaults, file
name), ``estimate`` (capture size per token), ``scripted`` (flags), ``interactive``
(questions), ``run`` (live display and summary), ``main`` (entry).
"""

from __future__ import annotations

from spectra_vis.wizard.main import main

__all__ = ["main"]
