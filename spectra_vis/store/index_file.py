"""Store stage: the index file beside a capture (``run.index.safetensors`` beside ``run.json``).

It holds what makes a large capture quick to open: the byte range of every step in the JSON
(``store.scan`` finds them once) and arrays that other stages derive from the steps once, so that no
view has to read every step (``analysis.digest``: per-token statistics, zones, states). It is a cache:
the JSON stays the capture; a missing, stale or corrupt index is rebuilt (a stale or corrupt one with
a notice naming it). safetensors, like the vectors file: arrays are memory-mapped, read when used.

Arrays: ``t<trial>.spans`` (int64 ``[n_steps, 2]``: start, end of each step object) and whatever the
deriving stage adds. Metadata (``__metadata__``, JSON strings): ``index`` with the format, the JSON's
size and the sha256 of its first and last MiB (what ties the index to its capture), each trial's
steps-array and lens ranges; and ``derived`` (the deriving stage's own, with its version).
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
from spectra_vis.store.scan import TrialLayout

SUFFIX = ".index.safetensors"
FORMAT = "spectra-vis-index"
VERSION = 1
EDGE = 1 << 20  # bytes at each end of the JSON that the index's fingerprint covers
_DTYPES = {"F64": np.float64, "F32": np.float32, "I64": np.int64, "I32": np.int32, "U8": np.uint8}


def index_name(json_path: Path) -> str:
    stem = json_path.name[: -len(".json")] if json_path.name.endswith(".json") else json_path.name
    return stem + SUFFIX


def fingerprint(json_path: Path) -> dict[str, Any]:
    """What ties an index to one version of a capture file: its size and the hash of both ends."""
    size = json_path.stat().st_size
    h = hashlib.sha256()
    with json_path.open("rb") as f:
        h.update(f.read(EDGE))
        f.seek(max(size - EDGE, 0))
        h.update(f.read(EDGE))
    return {"size": size, "edges": h.hexdigest()}


class Index:
    """An index file read back: the layout of every trial, the derived arrays (memory-mapped) and
    the deriving stage's metadata."""

    def __init__(self, layout: list[TrialLayout], arrays: dict[str, np.ndarray], derived: dict[str, Any]) -> None:
        self.layout = layout
        self.arrays = arrays
        self.derived = derived


def write(json_path: Path, layout: list[TrialLayout], arrays: dict[str, np.ndarray], derived: dict[str, Any]) -> Path:
    """Write the index beside ``json_path`` atomically (a reader never sees half of it)."""
    from safetensors.numpy import save_file

    target = json_path.with_name(index_name(json_path))
    out = {f"t{i}.spans": np.asarray(t.step_spans, dtype=np.int64).reshape(-1, 2) for i, t in enumerate(layout)}
    out.update({k: np.ascontiguousarray(v) for k, v in arrays.items()})
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "capture": fingerprint(json_path),
        "trials": [{"steps": list(t.steps), "lens": list(t.lens) if t.lens else None} for t in layout],
    }
    metadata = {"index": json.dumps(meta), "derived": json.dumps(derived)}
    atomic_write_with(target, lambda path: save_file(out, path, metadata=metadata))
    return target


def read(json_path: Path) -> Index | None:
    """The index beside ``json_path``: None when there is none; CaptureError naming it when it is
    corrupt or belongs to another version of the capture (the caller rebuilds it)."""
    path = json_path.with_name(index_name(json_path))
    if not path.is_file():
        return None
    name = path.name
    try:
        with path.open("rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > 1 << 28:
                raise ValueError("header too large")
            header = json.loads(f.read(n))
        metadata = header.pop("__metadata__", {})
        meta = json.loads(metadata["index"])
        derived = json.loads(metadata.get("derived", "{}"))
    except (OSError, ValueError, KeyError, struct.error) as exc:
        raise CaptureError(f"index {name} is corrupt ({str(exc)[:80]}); it is rebuilt from the capture") from None
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise CaptureError(f"index {name} is of another format or version; it is rebuilt from the capture")
    if meta.get("capture") != fingerprint(json_path):
        raise CaptureError(f"index {name} belongs to another version of {json_path.name}; it is rebuilt")
    arrays = _mapped(path, header, 8 + n)
    layout = []
    for i, t in enumerate(meta["trials"]):
        spans = arrays.get(f"t{i}.spans")
        if spans is None:
            raise CaptureError(f"index {name} has no step ranges for trial {i}; it is rebuilt from the capture")
        lens = (int(t["lens"][0]), int(t["lens"][1])) if t["lens"] else None
        layout.append(TrialLayout(steps=(int(t["steps"][0]), int(t["steps"][1])), step_spans=spans, lens=lens))  # type: ignore[arg-type]
    return Index(layout, {k: v for k, v in arrays.items() if not k.endswith(".spans")}, derived)


def _mapped(path: Path, header: dict[str, Any], base: int) -> dict[str, np.ndarray]:
    size = path.stat().st_size
    out: dict[str, np.ndarray] = {}
    for key, entry in header.items():
        dtype = _DTYPES.get(entry.get("dtype"))
        start, end = entry["data_offsets"]
        shape = tuple(entry["shape"])
        if dtype is None or base + end > size or end - start != int(np.prod(shape)) * np.dtype(dtype).itemsize:
            raise CaptureError(f"index {path.name}: array {key} is corrupt; it is rebuilt from the capture")
        out[key] = (
            np.memmap(path, dtype=dtype, mode="r", offset=base + start, shape=shape)
            if end > start
            else np.zeros(shape, dtype=dtype)
        )
    return out
