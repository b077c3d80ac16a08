"""Store stage: the binary companion file of a capture, which holds its activation vectors.

Format: safetensors (one file, many named arrays, a JSON header with each array's dtype, shape and
byte range; readable with numpy and the ``safetensors`` package alone). Chosen over ``.npy`` because
a capture has hundreds of arrays (one per trial and tensor), which would be hundreds of ``.npy``
files or an ``.npz`` zip that cannot be memory-mapped. The capture's JSON names the file, its
sha256 and every array's shape (``docs/CAPTURE_FORMAT.md``).

Per trial and tensor, three arrays: ``t<trial>.<tensor id>`` with the rows in step order, ``(n, width)``
in float16 or float32, ``.pos`` with each row's token position (int32) and ``.scale`` with each row's
scale (float32; the row is the stored values times it: a power of two, 1 unless float16 would overflow).
Loading memory-maps the file: nothing is read until an array is used.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from spectra_vis.errors import CaptureError
from spectra_vis.store.files import atomic_write_with

SUFFIX = ".vectors.safetensors"
PARTS = ("pos", "scale")  # the arrays beside each tensor's rows


def array_name(trial_id: int, tensor_id: int, part: str | None = None) -> str:
    """The companion file's name of a trial's rows of one tensor (``part``: one of PARTS)."""
    return f"t{trial_id}.{tensor_id}" + (f".{part}" if part else "")


def rows_of(name: str) -> tuple[int, int] | None:
    """(trial id, tensor id) of an array of rows; None for the ``.pos`` and ``.scale`` arrays."""
    trial, _, rest = name[1:].partition(".")
    return (int(trial), int(rest)) if rest.isdigit() else None


_DTYPES = {"F16": np.float16, "F32": np.float32, "I32": np.int32}


def companion_name(json_path: Path) -> str:
    """The companion file's name beside ``json_path`` (``run.json`` -> ``run.vectors.safetensors``)."""
    stem = json_path.name[: -len(".json")] if json_path.name.endswith(".json") else json_path.name
    return stem + SUFFIX


def write(target: Path, arrays: dict[str, np.ndarray]) -> str:
    """Write ``arrays`` atomically (``files.atomic_write_with``); the file's sha256."""
    from safetensors.numpy import save_file

    atomic_write_with(target, lambda path: save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, path))
    return sha256_of(target)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def open_mapped(path: Path, index: dict[str, Any]) -> dict[str, np.ndarray]:
    """The arrays of a companion file, memory-mapped, after checking its sha256 and that it holds
    every array of ``index`` (the capture's ``vectors`` block) with the shape recorded there."""
    name = path.name
    if sha256_of(path) != index["sha256"]:
        raise CaptureError(f"{name} does not match its capture (sha256 differs): it belongs to another capture")
    with path.open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    out: dict[str, np.ndarray] = {}
    for key, spec in index["arrays"].items():
        for array in (key, *(f"{key}.{part}" for part in PARTS)):
            entry = header.get(array)
            shape = spec["shape"] if array == key else spec["shape"][:1]
            if entry is None or list(entry["shape"]) != list(shape):
                got = "missing" if entry is None else f"shape {entry['shape']}"
                raise CaptureError(f"{name}: array {array} is {got}, the capture says shape {shape}")
            start, end = entry["data_offsets"]
            dtype = _DTYPES[entry["dtype"]]
            out[array] = (
                np.memmap(path, dtype=dtype, mode="r", offset=8 + n + start, shape=tuple(shape))
                if end > start
                else np.zeros(shape, dtype=dtype)
            )
    return out
