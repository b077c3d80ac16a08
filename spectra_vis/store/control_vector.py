"""Store stage: control-vector files, in the GGUF format llama.cpp's ``--control-vector`` reads.

The format (llama.cpp ``common/common.cpp`` ``common_control_vector_load_one``, ``src/llama-adapter.cpp``,
``tools/cvector-generator``): metadata ``general.architecture = "controlvector"``,
``controlvector.model_hint`` (the model's architecture) and ``controlvector.layer_count`` (how many
tensors); one F32 tensor of ``n_embd`` values per layer, named ``direction.L``. llama.cpp adds
``strength x direction.L`` to the output of block L (``l_out-L``, after the block's last residual
add, every token), for L from 1 (block 0 has no slot) to ``n_layer - 1``. Note that llama.cpp's own
``cvector-generator`` writes the direction it measured at ``l_out-(L-1)`` as ``direction.L``; Spectra
Vis writes the direction measured at ``l_out-L`` as ``direction.L``, so that the layer a direction
is measured at is the layer it is added to.

Spectra Vis adds its own keys (llama.cpp ignores keys it does not read): ``spectra_vis.method``,
``spectra_vis.position``, ``spectra_vis.n_layer`` (the model's block count), ``spectra_vis.layers``
(the layer of each tensor, in file order),
``spectra_vis.scale`` (per layer, the mean projection gap between positive and negative prompts, in
residual units: the length of the written direction) and ``spectra_vis.relative_gap`` (that gap
divided by the mean residual norm at the layer). Files are written atomically. Imports no UI package.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spectra_vis.errors import InvalidArgument, WrongFileType
from spectra_vis.store.files import atomic_write_with

ARCH = "controlvector"
PREFIX = "direction."


@dataclass
class ControlVector:
    """Per block layer L (llama.cpp numbering, 1..n_layer-1), the vector added to block L's output.
    ``directions[L]`` is float32 ``(n_embd,)``; its length is the layer's scale (a unit direction
    times the mean projection gap the prompts showed)."""

    directions: dict[int, np.ndarray]
    model_hint: str = ""
    n_layer: int | None = None  # the block count of the model it was made on (None: not recorded)
    method: str = ""
    position: str = ""
    relative_gap: dict[int, float] = field(default_factory=dict)
    path: Path | None = None
    sha256: str = ""

    @property
    def n_embd(self) -> int:
        return int(next(iter(self.directions.values())).shape[0])

    @property
    def layers(self) -> list[int]:
        return sorted(self.directions)

    def scale(self, layer: int) -> float:
        return float(np.linalg.norm(self.directions[layer].astype(np.float64)))

    def unit(self, layer: int) -> np.ndarray:
        """The layer's unit direction (float64)."""
        v = self.directions[layer].astype(np.float64)
        return v / np.linalg.norm(v)

    def buffer(self, n_layer: int, strength: float) -> np.ndarray:
        """What ``llama_set_adapter_cvec`` takes: ``(n_layer - 1) * n_embd`` float32, the row of block
        L at ``(L - 1) * n_embd``, scaled by ``strength``; zero for layers without a direction."""
        out = np.zeros((n_layer - 1, self.n_embd), dtype=np.float32)
        for layer, v in self.directions.items():
            out[layer - 1] = np.float32(strength) * v
        return out.reshape(-1)


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_control_vector(cv: ControlVector, out: str | os.PathLike[str]) -> Path:
    """Write ``cv`` to ``out`` atomically (a Ctrl-C or a full disk leaves no partial file)."""
    import gguf

    target = Path(out)
    layers = cv.layers
    if not layers or layers[0] < 1:
        raise InvalidArgument("a control vector needs directions for block layers 1 and up (block 0 has no slot)")

    def write(tmp: str) -> None:
        writer = gguf.GGUFWriter(tmp, ARCH)
        writer.add_string(f"{ARCH}.model_hint", cv.model_hint)
        writer.add_int32(f"{ARCH}.layer_count", len(layers))
        if cv.n_layer is not None:
            writer.add_int32("spectra_vis.n_layer", int(cv.n_layer))
        writer.add_string("spectra_vis.method", cv.method)
        writer.add_string("spectra_vis.position", cv.position)
        writer.add_array("spectra_vis.layers", [int(x) for x in layers])
        writer.add_array("spectra_vis.scale", [cv.scale(x) for x in layers])
        writer.add_array("spectra_vis.relative_gap", [float(cv.relative_gap.get(x, float("nan"))) for x in layers])
        for layer in layers:
            writer.add_tensor(f"{PREFIX}{layer}", np.ascontiguousarray(cv.directions[layer], dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()

    atomic_write_with(target, write)
    return target


def read_control_vector(path: str | os.PathLike[str]) -> ControlVector:
    """A control-vector file; WrongFileType (one line) for a file that is not one."""
    import gguf

    p = Path(path)
    if not p.is_file():
        raise InvalidArgument(f"control vector {p} does not exist (make one with spectra-vis steer make)")
    try:
        reader = gguf.GGUFReader(p)
    except Exception as exc:  # noqa: BLE001 - any parse failure means: not a GGUF file
        raise WrongFileType(f"{p.name} is not a control vector: not a GGUF file ({type(exc).__name__})") from None
    arch = _field(reader, "general.architecture")
    if arch != ARCH:
        raise WrongFileType(
            f"{p.name} is not a control vector: its architecture is {arch!r}, not 'controlvector' "
            "(is it a model? make a vector with spectra-vis steer make)"
        )
    directions: dict[int, np.ndarray] = {}
    for t in reader.tensors:
        layer = _layer_of(t.name)
        data = np.asarray(t.data)
        if layer is None or layer < 1 or t.tensor_type != gguf.GGMLQuantizationType.F32 or data.ndim != 1:
            raise WrongFileType(
                f"{p.name} is not a control vector llama.cpp reads: tensor {t.name!r} "
                "(want 1-D F32 tensors named direction.L with L >= 1)"
            )
        directions[layer] = directions.get(layer, 0) + data.astype(np.float32)  # llama.cpp sums repeats
    if not directions:
        raise WrongFileType(f"{p.name} is not a control vector: it has no direction.L tensors")
    if len({v.shape for v in directions.values()}) != 1:
        raise WrongFileType(f"{p.name} is not a control vector: its directions have different widths")
    if not all(np.isfinite(v).all() for v in directions.values()):
        raise WrongFileType(f"{p.name} is not a usable control vector: a direction holds NaN or infinity")
    layers = _field(reader, "spectra_vis.layers") or []
    rel = _field(reader, "spectra_vis.relative_gap") or []
    return ControlVector(
        directions=directions,
        model_hint=str(_field(reader, f"{ARCH}.model_hint") or ""),
        n_layer=None if _field(reader, "spectra_vis.n_layer") is None else int(_field(reader, "spectra_vis.n_layer")),
        method=str(_field(reader, "spectra_vis.method") or ""),
        position=str(_field(reader, "spectra_vis.position") or ""),
        relative_gap={int(x): float(g) for x, g in zip(layers, rel, strict=False)},
        path=p,
        sha256=file_sha256(p),
    )


def _layer_of(name: str) -> int | None:
    head, _, tail = name.partition(".")
    if head + "." != PREFIX or not tail.isdigit():
        return None
    return int(tail)


def _field(reader: Any, key: str) -> Any:
    f = reader.get_field(key)
    return None if f is None else f.contents()
