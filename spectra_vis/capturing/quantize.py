"""Capture stage: quantize a GGUF model with llama.cpp's own quantizer (``llama_model_quantize``).

Progress comes from the quantizer's own log: it reports every tensor as ``[ i/ n] name ...``.
The output is written to a temporary file beside the target and renamed into place, so a failure
(an unknown type, a full disk, Ctrl-C) leaves no partial model. Quantizing an already quantized
model ("requantizing") compounds two roundings; it needs ``allow_requantize=True``, and the
output then says so in its metadata (``spectra_vis.requantized_from``: the source's file type),
which the model card of every capture made with it carries.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from spectra_vis.errors import InvalidArgument, ModelFileError
from spectra_vis.record.profiles import REQUANTIZED_KEY, check_gguf_file, open_gguf, read_model_card

ProgressHook = Callable[[int, int, str], None]  # (tensors done, tensors in all, the current tensor's name)
UNQUANTIZED = {"F32", "F16", "BF16"}
_TENSOR_LINE = re.compile(r"\[\s*(\d+)\s*/\s*(\d+)\]\s+(\S+)")


def quant_types() -> dict[str, int]:
    """The quantization types llama.cpp knows, by name (``Q8_0``, ``Q4_K_M``, ...) -> llama_ftype."""
    import llama_cpp

    prefix = "LLAMA_FTYPE_MOSTLY_"
    out = {name[len(prefix) :]: int(getattr(llama_cpp, name)) for name in dir(llama_cpp) if name.startswith(prefix)}
    out["F32"] = int(llama_cpp.LLAMA_FTYPE_ALL_F32)
    return out


def quantize(
    src: str | os.PathLike[str],
    qtype: str,
    out: str | os.PathLike[str] | None = None,
    *,
    allow_requantize: bool = False,
    n_threads: int | None = None,
    on_progress: ProgressHook | None = None,
) -> Path:
    """Quantize ``src`` to ``qtype`` into ``out`` (default: ``<stem>-<qtype>.gguf`` beside it);
    the path written. InvalidArgument for an unknown type or a refused requantization,
    ModelFileError when llama.cpp fails (with its reason)."""
    import llama_cpp

    source = check_gguf_file(src)
    types = quant_types()
    name = qtype.upper()
    if name not in types:
        raise InvalidArgument(f"unknown quantization type {qtype!r}; llama.cpp knows: {', '.join(sorted(types))}")
    card = read_model_card(source)
    quantized = _quantized_types(source)
    if quantized and not allow_requantize:
        raise InvalidArgument(
            f"{source.name} is already quantized ({card.file_type}: {', '.join(sorted(quantized))} tensors); "
            "requantizing rounds twice and drifts more than quantizing from F16: "
            "pass --allow-requantize to do it anyway"
        )
    target = Path(out) if out is not None else source.with_name(f"{source.stem}-{name}.gguf")
    if target.resolve() == source.resolve():
        raise InvalidArgument(f"the output {target} is the input: choose another --out-dir or name")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = types[name]
    params.allow_requantize = bool(quantized)
    params.nthread = n_threads or 0
    try:
        with _quantizer_log(on_progress) as log:
            rc = llama_cpp.llama_model_quantize(str(source).encode(), str(tmp).encode(), ctypes.byref(params))
        if rc != 0 or not tmp.exists():
            reason = next((line for line in reversed(log) if line), "no reason given")
            raise ModelFileError(f"llama.cpp could not quantize {source.name} to {name}: {reason}")
        if quantized:
            marked = tmp.with_name(tmp.name + ".meta")
            try:
                _copy_with_metadata(tmp, marked, {REQUANTIZED_KEY: card.requantized_from or card.file_type})
                os.replace(marked, tmp)
            finally:
                marked.unlink(missing_ok=True)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)  # nothing partial stays, whatever stopped it
    return target


def _quantized_types(path: Path) -> set[str]:
    """The ggml types of the model's weight matrices that are quantized already (empty: F16/F32)."""
    reader = open_gguf(path)
    return {t.tensor_type.name for t in reader.tensors if len(t.shape) >= 2 and t.tensor_type.name not in UNQUANTIZED}


@contextlib.contextmanager
def _quantizer_log(on_progress: ProgressHook | None) -> Iterator[list[str]]:
    """llama.cpp's log while it quantizes: each tensor line goes to ``on_progress``, the last lines
    are kept (the reason when it fails), nothing reaches the terminal."""
    import llama_cpp.llama_cpp as llama_lib
    from llama_cpp import _logger

    lines: list[str] = []

    @llama_lib.llama_log_callback
    def keep(level: int, text: bytes, user_data: Any) -> None:
        line = text.decode("utf-8", "replace").strip()
        if not line:
            return
        lines.append(line)
        del lines[:-20]
        m = _TENSOR_LINE.search(line)
        if m and on_progress is not None:
            with contextlib.suppress(Exception):  # a UI error must not reach C
                on_progress(int(m.group(1)), int(m.group(2)), m.group(3).rstrip(","))

    llama_lib.llama_log_set(keep, ctypes.c_void_p(0))
    try:
        yield lines
    finally:
        llama_lib.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))


def _copy_with_metadata(src: Path, dst: Path, extra: dict[str, str]) -> None:
    """``src`` rewritten to ``dst`` with string metadata ``extra`` added (tensor data copied as is)."""
    import gguf

    reader = gguf.GGUFReader(src)
    arch = str(reader.get_field("general.architecture").contents())  # type: ignore[union-attr]
    writer = gguf.GGUFWriter(dst, arch)
    alignment = reader.get_field("general.alignment")
    if alignment is not None:
        writer.data_alignment = int(alignment.contents())  # type: ignore[arg-type]
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name == "general.architecture" or field.name in extra:
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), vtype, sub_type=sub)
    for key, value in extra.items():
        writer.add_string(key, value)
    for t in reader.tensors:
        writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, raw_dtype=t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for t in reader.tensors:
        writer.write_tensor_data(t.data)
    writer.close()
    if not dst.exists():
        raise ModelFileError(f"could not write {dst}")
    check_gguf_file(dst)
