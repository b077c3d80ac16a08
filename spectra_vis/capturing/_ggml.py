"""Bindings stage: every ctypes declaration and raw pointer read of Spectra Vis.

Mirrors the C declarations of ggml (``ggml.h``, ``ggml-backend.h``) as shipped in
llama-cpp-python's ``lib/`` folder. Nothing else in the package touches raw
pointers: callers get names, ops, shapes (numpy order) and numpy arrays.

The ``struct ggml_tensor`` layout is checked once, at first use, against a tensor
made by ggml itself (``self_check``); a mismatch raises ``LayoutError`` naming the
installed llama-cpp-python version instead of reading garbage.
"""

from __future__ import annotations

import ctypes
import functools
import os
import pathlib
from ctypes import c_bool, c_char, c_char_p, c_int, c_int32, c_int64, c_size_t, c_void_p
from typing import Any

import numpy as np

GGML_MAX_DIMS = 4
GGML_MAX_SRC = 10
GGML_MAX_NAME = 64
GGML_TYPE_F32 = 0
GGML_TYPE_F16 = 1


class LayoutError(RuntimeError):
    """The installed ggml's tensor struct is not the layout these bindings read."""


# struct ggml_tensor { enum ggml_type type; struct ggml_backend_buffer * buffer;
#   int64_t ne[4]; size_t nb[4]; enum ggml_op op; int32_t op_params[16]; int32_t flags;
#   struct ggml_tensor * src[10]; struct ggml_tensor * view_src; size_t view_offs;
#   void * data; char name[64]; void * extra; char padding[8]; };
class GgmlTensor(ctypes.Structure):
    _fields_ = [
        ("type", c_int),
        ("buffer", c_void_p),
        ("ne", c_int64 * GGML_MAX_DIMS),
        ("nb", c_size_t * GGML_MAX_DIMS),
        ("op", c_int),
        ("op_params", c_int32 * 16),
        ("flags", c_int32),
        ("src", c_void_p * GGML_MAX_SRC),
        ("view_src", c_void_p),
        ("view_offs", c_size_t),
        ("data", c_void_p),
        ("name", c_char * GGML_MAX_NAME),
        ("extra", c_void_p),
        ("padding", c_char * 8),
    ]


# struct ggml_init_params { size_t mem_size; void * mem_buffer; bool no_alloc; };
class GgmlInitParams(ctypes.Structure):
    _fields_ = [("mem_size", c_size_t), ("mem_buffer", c_void_p), ("no_alloc", c_bool)]


def llama_cpp_version() -> str:
    try:
        import llama_cpp

        return str(llama_cpp.__version__)
    except Exception:  # pragma: no cover - reported, not raised
        return "unknown"


def ggml_version() -> str:
    """ggml's version and commit as the library reports them (llama.cpp's vendored copy), or "unknown"."""
    try:
        so = lib()
        version, commit = (
            getattr(so, n)().decode() if hasattr(so, n) else "?" for n in ("ggml_version", "ggml_commit")
        )
    except (LayoutError, OSError):
        return "unknown"
    return f"ggml {version} (commit {commit})"


def llama_lib_dir() -> pathlib.Path:
    override = os.environ.get("LLAMA_CPP_LIB_PATH")
    if override:
        return pathlib.Path(override)
    import llama_cpp

    return pathlib.Path(llama_cpp.__file__).parent / "lib"


def _open(stem: str) -> ctypes.CDLL:
    """llama-cpp-python's ``lib/<stem>`` shared library, as this platform names it."""
    d = llama_lib_dir()
    candidates = [d / n for n in (f"lib{stem}.so", f"lib{stem}.dylib", f"{stem}.dll")]
    path = next((p for p in candidates if p.exists()), None)
    if path is None:
        raise LayoutError(f"lib{stem} not found in {d} (llama-cpp-python {llama_cpp_version()})")
    return ctypes.CDLL(str(path))


@functools.cache
def lib() -> ctypes.CDLL:
    """libggml-base with the functions Spectra Vis calls declared."""
    so = _open("ggml-base")
    _declare(so)
    return so


@functools.cache
def cpu_lib() -> ctypes.CDLL:
    """libggml-cpu (the CPU backend: the row quantizers its matrix products use) with the functions
    Spectra Vis calls declared."""
    lib()  # its symbols first
    so = _open("ggml-cpu")
    # void ggml_cpu_init(void);
    so.ggml_cpu_init.argtypes, so.ggml_cpu_init.restype = [], None
    # const struct ggml_type_traits_cpu * ggml_get_type_traits_cpu(enum ggml_type type);
    so.ggml_get_type_traits_cpu.argtypes, so.ggml_get_type_traits_cpu.restype = [c_int], c_void_p
    so.ggml_cpu_init()
    return so


# struct ggml_type_traits { const char * type_name; int64_t blck_size; int64_t blck_size_interleave;
#   size_t type_size; bool is_quantized; ggml_to_float_t to_float; ggml_from_float_t from_float_ref; };
class GgmlTypeTraits(ctypes.Structure):
    _fields_ = [
        ("type_name", c_void_p),
        ("blck_size", c_int64),
        ("blck_size_interleave", c_int64),
        ("type_size", c_size_t),
        ("is_quantized", c_bool),
        ("to_float", c_void_p),
        ("from_float_ref", c_void_p),
    ]


# typedef void (*ggml_to_float_t)(const void * x, float * y, int64_t k);  (ctypes releases the GIL around it)
_ToFloat = ctypes.CFUNCTYPE(None, c_void_p, c_void_p, c_int64)


@functools.cache
def _row_converter(ggml_type: int) -> Any:
    """ggml's own converter of values of ``ggml_type`` to float32 (its type traits' ``to_float``),
    after checking the traits struct against ggml's other accessors; LayoutError if they differ or
    ggml has no converter for the type."""
    so = lib()
    traits = so.ggml_get_type_traits(ggml_type)
    if not traits:
        raise LayoutError(f"ggml has no type traits for type {ggml_type}")
    t = GgmlTypeTraits.from_address(traits)
    name = ctypes.cast(t.type_name, c_char_p).value if t.type_name else None
    if (name, t.blck_size, t.type_size) != (so.ggml_type_name(ggml_type), so.ggml_blck_size(ggml_type),
                                            so.ggml_type_size(ggml_type)):  # fmt: skip
        raise LayoutError(
            f"llama-cpp-python {llama_cpp_version()}: ggml_type_traits differs from what Spectra Vis reads"
        )
    if t.to_float:
        return _ToFloat(t.to_float)
    # types only products use (q8_K) have no to_float in the traits, but ggml exports their dequantizer
    fn = getattr(so, f"dequantize_row_{type_name(ggml_type)}", None)
    address = ctypes.cast(fn, c_void_p).value if fn is not None else None
    if not address:
        raise LayoutError(f"ggml has no float32 converter for {type_name(ggml_type)}")
    return _ToFloat(address)


# struct ggml_type_traits_cpu { ggml_from_float_t from_float; ggml_vec_dot_t vec_dot;
#   enum ggml_type vec_dot_type; int64_t nrows; };
class GgmlTypeTraitsCpu(ctypes.Structure):
    _fields_ = [("from_float", c_void_p), ("vec_dot", c_void_p), ("vec_dot_type", c_int), ("nrows", c_int64)]


# typedef void (*ggml_from_float_t)(const float * x, void * y, int64_t k);
_FromFloat = ctypes.CFUNCTYPE(None, c_void_p, c_void_p, c_int64)


@functools.cache
def dot_type(ggml_type: int) -> int:
    """The type ggml's CPU matrix product converts float32 rows to before multiplying them with
    weights of ``ggml_type`` (Q8_0 for Q8_0 and Q4_0 weights, Q8_K for the K-quants, F16 for F16...)."""
    traits = cpu_lib().ggml_get_type_traits_cpu(ggml_type)
    t = GgmlTypeTraitsCpu.from_address(traits) if traits else None
    if t is None or not t.vec_dot or not 0 <= t.vec_dot_type < 64 or t.nrows not in (1, 2, 4):
        raise LayoutError(
            f"llama-cpp-python {llama_cpp_version()}: ggml_type_traits_cpu differs from what Spectra Vis reads"
        )
    return int(t.vec_dot_type)


@functools.cache
def _row_quantizer(ggml_type: int) -> Any:
    """The CPU backend's own converter of float32 to ``ggml_type`` (the one its products use)."""
    traits = cpu_lib().ggml_get_type_traits_cpu(ggml_type)
    t = GgmlTypeTraitsCpu.from_address(traits) if traits else None
    if t is None or not t.from_float:
        raise LayoutError(f"ggml's CPU backend has no float32 converter to {type_name(ggml_type)}")
    return _FromFloat(t.from_float)


def check_converters(weight_type: int) -> None:
    """LayoutError unless ``to_float`` and ``as_dot_type`` can serve weights of ``weight_type``."""
    if weight_type != GGML_TYPE_F32:
        _row_converter(weight_type)
    target = dot_type(weight_type)
    if target != GGML_TYPE_F32:
        _row_quantizer(target)
        _row_converter(target)


def as_dot_type(x: np.ndarray, weight_type: int) -> np.ndarray:
    """Float32 rows ``x`` (C-contiguous ``(n, n_per_row)``) as ggml's CPU matrix product sees them
    against weights of ``weight_type``: converted to that product's dot type by the backend's own
    row quantizer, then back to float32 (``x`` itself where the dot type is float32). Multiplying
    these by the dequantized weights in float32 gives ggml's products up to float32 rounding."""
    target = dot_type(weight_type)
    if target == GGML_TYPE_F32:
        return x
    n, n_per_row = x.shape
    if x.dtype != np.float32 or not x.flags.c_contiguous or n_per_row % lib().ggml_blck_size(target):
        raise ValueError(f"as_dot_type: x must be C-contiguous float32 rows of whole {type_name(target)} blocks")
    buf = np.empty(lib().ggml_row_size(target, n_per_row) * n, dtype=np.uint8)
    _row_quantizer(target)(x.ctypes.data, buf.ctypes.data, x.size)
    return to_float(buf, target, n_per_row, np.empty_like(x))


def to_float(data: np.ndarray, ggml_type: int, n_per_row: int, out: np.ndarray) -> np.ndarray:
    """Rows of a GGUF tensor of ggml type ``ggml_type`` as stored (``data``: quantized blocks or
    values, C-contiguous, e.g. a slice of the memory-mapped file) converted to float32 into ``out``
    (C-contiguous ``(rows, n_per_row)``) by ggml's own row converter, the one llama.cpp uses."""
    rows = out.shape[0]
    if out.dtype != np.float32 or out.shape != (rows, n_per_row) or not out.flags.c_contiguous:
        raise ValueError("to_float: out must be C-contiguous float32 (rows, n_per_row)")
    if not data.flags.c_contiguous or lib().ggml_row_size(ggml_type, n_per_row) * rows != data.nbytes:
        raise ValueError(f"to_float: {data.nbytes} bytes are not {rows} rows of {type_name(ggml_type)}[{n_per_row}]")
    _row_converter(ggml_type)(data.ctypes.data, out.ctypes.data, rows * n_per_row)
    return out


# LLAMA_API int32_t llama_set_adapter_cvec(struct llama_context * ctx, const float * data, size_t len,
#   int32_t n_embd, int32_t il_start, int32_t il_end);
# (llama-cpp-python binds it as llama_cpp.llama_set_adapter_cvec; the old name llama_apply_adapter_cvec
# is a deprecated wrapper.) ``data`` holds n_embd floats per block from block 1 (block 0 has no slot);
# il_start..il_end (inclusive) gate which blocks get theirs; NULL clears the vector.
def set_control_vector(ctx: Any, data: np.ndarray | None, n_embd: int, il_start: int, il_end: int) -> int:
    """Apply (``data``: float32, C-contiguous, ``(n_layer - 1) * n_embd``) or clear (None) the
    control vector of llama context ``ctx``; llama.cpp copies the values. Returns its status (0: done)."""
    import llama_cpp

    fn: Any = getattr(llama_cpp, "llama_set_adapter_cvec", None) or llama_cpp.llama_apply_adapter_cvec
    if data is None:
        return int(fn(ctx, None, 0, n_embd, -1, -1))
    if data.dtype != np.float32 or not data.flags.c_contiguous:
        raise ValueError("set_control_vector: data must be C-contiguous float32")
    ptr = data.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
    return int(fn(ctx, ptr, data.size, n_embd, il_start, il_end))


def _declare(so: ctypes.CDLL) -> None:
    # size_t ggml_row_size(enum ggml_type type, int64_t ne);
    so.ggml_row_size.argtypes, so.ggml_row_size.restype = [c_int, c_int64], c_size_t
    # const struct ggml_type_traits * ggml_get_type_traits(enum ggml_type type);
    so.ggml_get_type_traits.argtypes, so.ggml_get_type_traits.restype = [c_int], c_void_p
    # int64_t ggml_blck_size(enum ggml_type type);  size_t ggml_type_size(enum ggml_type type);
    so.ggml_blck_size.argtypes, so.ggml_blck_size.restype = [c_int], c_int64
    so.ggml_type_size.argtypes, so.ggml_type_size.restype = [c_int], c_size_t
    # const char * ggml_get_name(const struct ggml_tensor * tensor);
    so.ggml_get_name.argtypes, so.ggml_get_name.restype = [c_void_p], c_char_p
    # const char * ggml_op_desc(const struct ggml_tensor * t);
    so.ggml_op_desc.argtypes, so.ggml_op_desc.restype = [c_void_p], c_char_p
    # const char * ggml_type_name(enum ggml_type type);
    so.ggml_type_name.argtypes, so.ggml_type_name.restype = [c_int], c_char_p
    # int64_t ggml_nelements(const struct ggml_tensor * tensor);
    so.ggml_nelements.argtypes, so.ggml_nelements.restype = [c_void_p], c_int64
    # bool ggml_is_contiguous(const struct ggml_tensor * tensor);
    so.ggml_is_contiguous.argtypes, so.ggml_is_contiguous.restype = [c_void_p], c_bool
    # bool ggml_backend_buffer_is_host(ggml_backend_buffer_t buffer);
    so.ggml_backend_buffer_is_host.argtypes, so.ggml_backend_buffer_is_host.restype = [c_void_p], c_bool
    # void ggml_backend_tensor_get(const struct ggml_tensor * tensor, void * data, size_t offset, size_t size);
    so.ggml_backend_tensor_get.argtypes = [c_void_p, c_void_p, c_size_t, c_size_t]
    so.ggml_backend_tensor_get.restype = None
    # struct ggml_context * ggml_init(struct ggml_init_params params);
    so.ggml_init.argtypes, so.ggml_init.restype = [GgmlInitParams], c_void_p
    # void ggml_free(struct ggml_context * ctx);
    so.ggml_free.argtypes, so.ggml_free.restype = [c_void_p], None
    # struct ggml_tensor * ggml_new_tensor_2d(struct ggml_context * ctx, enum ggml_type type, int64_t ne0, int64_t ne1);
    so.ggml_new_tensor_2d.argtypes, so.ggml_new_tensor_2d.restype = [c_void_p, c_int, c_int64, c_int64], c_void_p
    # struct ggml_tensor * ggml_set_name(struct ggml_tensor * tensor, const char * name);
    so.ggml_set_name.argtypes, so.ggml_set_name.restype = [c_void_p, c_char_p], c_void_p
    # void * ggml_get_data(const struct ggml_tensor * tensor);
    so.ggml_get_data.argtypes, so.ggml_get_data.restype = [c_void_p], c_void_p
    # const char * ggml_version(void);  const char * ggml_commit(void);  (absent from older ggml)
    for name in ("ggml_version", "ggml_commit"):
        if hasattr(so, name):
            getattr(so, name).argtypes, getattr(so, name).restype = [], c_char_p


@functools.cache
def self_check() -> None:
    """Verify the struct layout against a tensor made by ggml; raise LayoutError if it differs."""
    check_layout(GgmlTensor)


def check_layout(layout: type[ctypes.Structure]) -> None:
    """Compare ``layout`` with a tensor made and named by ggml itself."""
    so = lib()
    ctx = so.ggml_init(GgmlInitParams(1 << 16, None, False))
    if not ctx:
        raise LayoutError("ggml_init failed during the tensor layout self-check")
    try:
        t = so.ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 3, 5)
        so.ggml_set_name(t, b"spectra_selfcheck")
        s: Any = layout.from_address(t)
        problems = []
        if ctypes.sizeof(layout) != 336:
            problems.append("struct size")
        if s.name != so.ggml_get_name(t):
            problems.append("name")
        if tuple(s.ne) != (3, 5, 1, 1) or s.nb[0] != 4 or s.nb[1] != 12:
            problems.append("ne/nb")
        if s.type != GGML_TYPE_F32 or s.data != so.ggml_get_data(t):
            problems.append("type/data")
        if problems:
            raise LayoutError(
                f"llama-cpp-python {llama_cpp_version()}: ggml_tensor layout differs from what Spectra Vis "
                f"reads ({', '.join(problems)} at the wrong offset); install llama-cpp-python 0.3.x "
                "or report this version"
            )
    finally:
        so.ggml_free(ctx)


def tensor(ptr: int) -> GgmlTensor:
    """A zero-copy view of the ggml_tensor struct at ``ptr`` (valid while the graph lives)."""
    return GgmlTensor.from_address(ptr)


@functools.cache
def type_name(ggml_type: int) -> str:
    return (lib().ggml_type_name(ggml_type) or b"?").decode()


def op_desc(ptr: int) -> str:
    """The op of a node as ggml names it (unary and GLU ops by their own name)."""
    return (lib().ggml_op_desc(ptr) or b"?").decode()


def shape(t: GgmlTensor) -> tuple[int, ...]:
    """numpy-order shape with ggml's unused trailing dims (size-1 leading in numpy) dropped."""
    ne = list(t.ne)
    while len(ne) > 1 and ne[-1] == 1:
        ne.pop()
    return tuple(reversed(ne))


def src_pointers(t: GgmlTensor) -> list[int]:
    return [p for p in t.src if p]


def read_array(ptr: int, t: GgmlTensor, copy: bool = False) -> np.ndarray | None:
    """The tensor's values as float32 in numpy shape order, or None if it cannot be read.

    Host buffers are read in place (zero-copy unless ``copy``), honouring ``nb`` strides;
    other buffers are copied out with ggml_backend_tensor_get (contiguous only).
    Only F32 and F16 tensors are read (activations are F32).
    """
    if t.type not in (GGML_TYPE_F32, GGML_TYPE_F16) or not t.data:
        return None
    dtype = np.float32 if t.type == GGML_TYPE_F32 else np.float16
    itemsize = np.dtype(dtype).itemsize
    shp = tuple(reversed(t.ne))
    so = lib()
    if not t.buffer or so.ggml_backend_buffer_is_host(t.buffer):  # no buffer: a plain ggml context
        extent = itemsize + sum((n - 1) * s for n, s in zip(t.ne, t.nb, strict=False))
        base = np.frombuffer((ctypes.c_char * extent).from_address(t.data), dtype=dtype)
        arr = np.lib.stride_tricks.as_strided(base, shape=shp, strides=tuple(reversed(t.nb)), writeable=False)
    elif so.ggml_is_contiguous(ptr):
        n = int(np.prod(shp))
        arr = np.empty(shp, dtype=dtype)
        so.ggml_backend_tensor_get(ptr, arr.ctypes.data, 0, n * itemsize)
        copy = False
    else:
        return None
    arr = arr.reshape(shape(t))
    if dtype is np.float16:
        return arr.astype(np.float32)
    return arr.copy() if copy else arr
