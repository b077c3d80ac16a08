"""Steering stage: control vectors made from contrasting prompts, applied, and what they changed.

- ``make(model, positive, negative, method="mean"|"pca", layers="4-14", position="last"|"mean",
  out="NAME.gguf")``: a control vector in llama.cpp's ``--control-vector`` format (``make``);
- ``sweep(model, "NAME.gguf", "-4,0,4", prompt, out=...)``: one capture, one trial per strength,
  each with its residual projection on the vector's direction (``sweep``).

Applying a vector is the capturing stage's (``capture(..., control=("NAME.gguf", strength))``,
``Session.set_control``); the file format is the store's (``spectra_vis.store.control_vector``).
Also reachable as ``spectra_vis.steer``. Sits beside ``comparing``: it imports the capturing, store
and record stages, never a UI or web package. docs/STEERING.md has the worked example.
"""

from spectra_vis.steering.make import make, read_prompts
from spectra_vis.steering.sweep import parse_strengths, sweep
from spectra_vis.store.control_vector import ControlVector, read_control_vector, write_control_vector

__all__ = [
    "ControlVector",
    "make",
    "parse_strengths",
    "read_control_vector",
    "read_prompts",
    "sweep",
    "write_control_vector",
]
