"""Record stage: the vocabulary a capture is written in.

Tensor names and types (``naming``), model profiles and cards (``profiles``), what a preset
captures (``presets``), the statistics kept per tensor and token (``stats``) and the in-memory
trial and step records (``records``). Imports only ``errors``, ``constants`` and third-party
packages.
"""
