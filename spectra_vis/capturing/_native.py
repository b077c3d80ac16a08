"""Bindings stage: the native eval callback (``native/spectra_native.c``) built and loaded with ctypes.

The C file is compiled lazily, on first use, with the system C compiler (``$CC``, else
``cc``, ``gcc`` or ``clang``) into a cache directory (``$SPECTRA_VIS_CACHE``, else
``$XDG_CACHE_HOME/spectra-vis`` or ``~/.cache/spectra-vis``), one file per hash of the
source, compiler and flags, written atomically so parallel processes can share it.
``python -m spectra_vis.capturing._native`` builds it ahead of time (e.g. in a setup script).
``SPECTRA_VIS_NATIVE=0`` disables it. Failing any of this raises ``NativeUnavailable``
with a one-line reason; the capture stage then uses the pure-Python callback.

Like ``_ggml``, this module owns raw pointers: callers get numpy arrays and ints.
Every struct and function mirrors the C declaration written above it.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from ctypes import CFUNCTYPE, POINTER, c_bool, c_char, c_int32, c_int64, c_uint32, c_void_p
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spectra_vis.capturing import _ggml
from spectra_vis.errors import NativeUnavailable

SOURCE = Path(__file__).parent / "native" / "spectra_native.c"
BASE_FLAGS = ("-O3", "-std=c99", "-fPIC", "-shared", "-fvisibility=hidden")
FLAG_SETS = (BASE_FLAGS, BASE_FLAGS + ("-DSV_NO_CLONES",))  # target_clones needs ifunc support
MAX_LOGITS = 64

# Entry flags (SV_* in the C file)
WANT, PYDATA, ATTN, LOGITS, ROWAX1, VEC = 1, 2, 4, 8, 16, 32
DONE_BIT = 1 << 30  # set in the tid C gives on_data when it read the statistics itself (VEC nodes)


# typedef int32_t (*sv_graph_fn)(void *tensor);
GRAPH_FN = CFUNCTYPE(c_int32, c_void_p)
# typedef int64_t (*sv_node_fn)(void *tensor, int32_t pos);
NODE_FN = CFUNCTYPE(c_int64, c_void_p, c_int32)
# typedef void (*sv_data_fn)(void *tensor, int32_t tid);
DATA_FN = CFUNCTYPE(None, c_void_p, c_int32)


# typedef struct { void *p; int64_t cap; } sv_buf;
class SvBuf(ctypes.Structure):
    _fields_ = [("p", c_void_p), ("cap", c_int64)]


# typedef struct { int64_t calls, n_errors; char error[256]; int64_t n_stats; sv_buf stat_tid, stat_val;
#   int64_t n_rowsets; sv_buf rowset; int64_t n_rows; sv_buf row_val; int64_t n_att; sv_buf att_meta, att_lost;
#   int64_t n_att_k; sv_buf att_pos, att_p; int64_t n_att_e; sv_buf att_ent; int64_t logits_k;
#   int32_t logit_ids[64]; float logit_vals[64]; int64_t n_vecs; sv_buf vec_meta; int64_t n_vec_vals;
#   sv_buf vec_val; int64_t n_vec_rows; sv_buf vec_scale; } sv_out;
class SvOut(ctypes.Structure):
    _fields_ = [
        ("calls", c_int64),
        ("n_errors", c_int64),
        ("error", c_char * 256),
        ("n_stats", c_int64),
        ("stat_tid", SvBuf),
        ("stat_val", SvBuf),
        ("n_rowsets", c_int64),
        ("rowset", SvBuf),
        ("n_rows", c_int64),
        ("row_val", SvBuf),
        ("n_att", c_int64),
        ("att_meta", SvBuf),
        ("att_lost", SvBuf),
        ("n_att_k", c_int64),
        ("att_pos", SvBuf),
        ("att_p", SvBuf),
        ("n_att_e", c_int64),
        ("att_ent", SvBuf),
        ("logits_k", c_int64),
        ("logit_ids", c_int32 * MAX_LOGITS),
        ("logit_vals", ctypes.c_float * MAX_LOGITS),
        ("n_vecs", c_int64),
        ("vec_meta", SvBuf),
        ("n_vec_vals", c_int64),
        ("vec_val", SvBuf),
        ("n_vec_rows", c_int64),
        ("vec_scale", SvBuf),
    ]


def cache_dir() -> Path:
    override = os.environ.get("SPECTRA_VIS_CACHE")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "spectra-vis"


def find_compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _compiler_id(cc: str) -> str:
    try:
        done = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30)
        return done.stdout.splitlines()[0] if done.stdout else cc
    except (OSError, subprocess.SubprocessError):
        return cc


def library_path(cc: str, flags: tuple[str, ...]) -> Path:
    """Where the library built from the current source with ``cc`` and ``flags`` lives."""
    digest = hashlib.sha256()
    for part in (SOURCE.read_bytes(), _compiler_id(cc).encode(), " ".join(flags).encode()):
        digest.update(part)
    digest.update(f"{platform.system()}-{platform.machine()}".encode())
    suffix = ".dylib" if sys.platform == "darwin" else ".so"
    return cache_dir() / f"spectra_native-{digest.hexdigest()[:16]}{suffix}"


def build() -> Path:
    """The compiled library (built now if the cache has no copy for this source); NativeUnavailable if not."""
    cc = find_compiler()
    if cc is None:
        raise NativeUnavailable("no C compiler found (install gcc or clang, or set CC)")
    errors = []
    for flags in FLAG_SETS:
        target = library_path(cc, flags)
        if target.exists():
            return target
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise NativeUnavailable(
                f"cannot create the cache directory {target.parent} ({exc}); set SPECTRA_VIS_CACHE"
            ) from exc
        fd, tmp = tempfile.mkstemp(prefix=".build-", suffix=target.suffix, dir=target.parent)
        os.close(fd)
        try:
            done = subprocess.run(
                [cc, *flags, "-o", tmp, str(SOURCE), "-lm"], capture_output=True, text=True, timeout=300
            )
            if done.returncode == 0:
                os.replace(tmp, target)
                return target
            errors.append(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}")
        except (OSError, subprocess.SubprocessError) as exc:
            errors.append(str(exc))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise NativeUnavailable(f"{cc} could not build {SOURCE.name}: {errors[-1]}")


def _declare(so: ctypes.CDLL) -> None:
    # void sv_init(sv_is_host_fn is_host, sv_f16_fn f16);
    so.sv_init.argtypes, so.sv_init.restype = [c_void_p, c_void_p], None
    # int32_t sv_fast_f16(void);
    so.sv_fast_f16.argtypes, so.sv_fast_f16.restype = [], c_int32
    # void sv_tensor_layout(int64_t *out);
    so.sv_tensor_layout.argtypes, so.sv_tensor_layout.restype = [POINTER(c_int64)], None
    # int64_t sv_sizeof_out(void);
    so.sv_sizeof_out.argtypes, so.sv_sizeof_out.restype = [], c_int64
    # sv_state *sv_new(sv_graph_fn on_graph, sv_node_fn on_node, sv_data_fn on_data, int32_t logits_k);
    so.sv_new.argtypes, so.sv_new.restype = [GRAPH_FN, NODE_FN, DATA_FN, c_int32], c_void_p
    # void *sv_callback(sv_state *s);
    so.sv_callback.argtypes, so.sv_callback.restype = [c_void_p], c_void_p
    # void sv_free(sv_state *s);
    so.sv_free.argtypes, so.sv_free.restype = [c_void_p], None
    # void sv_boundary(sv_state *s);
    so.sv_boundary.argtypes, so.sv_boundary.restype = [c_void_p], None
    # void sv_set_step(sv_state *s, int32_t pos, int32_t n_tokens, int32_t top_k);
    so.sv_set_step.argtypes, so.sv_set_step.restype = [c_void_p, c_int32, c_int32, c_int32], None
    # void sv_f16_rows(const float *x, int64_t rows, int64_t width, uint16_t *y, float *scale);
    so.sv_f16_rows.argtypes, so.sv_f16_rows.restype = [c_void_p, c_int64, c_int64, c_void_p, c_void_p], None
    # void sv_set_vec_f16(sv_state *s, int32_t on);
    so.sv_set_vec_f16.argtypes, so.sv_set_vec_f16.restype = [c_void_p, c_int32], None
    # sv_out *sv_output(sv_state *s);
    so.sv_output.argtypes, so.sv_output.restype = [c_void_p], POINTER(SvOut)
    # void sv_clear_output(sv_state *s);
    so.sv_clear_output.argtypes, so.sv_clear_output.restype = [c_void_p], None
    # const int64_t *sv_counts(sv_state *s, int64_t *n);
    so.sv_counts.argtypes, so.sv_counts.restype = [c_void_p, POINTER(c_int64)], c_void_p
    # void sv_reset_counts(sv_state *s);
    so.sv_reset_counts.argtypes, so.sv_reset_counts.restype = [c_void_p], None
    # int32_t sv_prefix(sv_state *s, int32_t from, int32_t to, void **ptrs, int32_t *tids);
    so.sv_prefix.argtypes = [c_void_p, c_int32, c_int32, c_void_p, c_void_p]
    so.sv_prefix.restype = c_int32
    # int32_t sv_stats_tensor(const void *tensor, int32_t n_tokens, uint32_t flags, float *whole, float *rows);
    so.sv_stats_tensor.argtypes = [c_void_p, c_int32, c_uint32, c_void_p, c_void_p]
    so.sv_stats_tensor.restype = c_int32
    # int32_t sv_topk_f32(const float *x, int64_t n, int32_t k, int32_t *idx, float *val);
    so.sv_topk_f32.argtypes = [c_void_p, c_int64, c_int32, c_void_p, c_void_p]
    so.sv_topk_f32.restype = c_int32
    # void sv_lens_block(const float *lg, int64_t n, int64_t m, int64_t offset, int32_t k, const int64_t *want,
    #   const float *next_logit, int32_t *idx, float *val, int32_t *n_top, double *mx, double *s, double *t,
    #   int64_t *above);
    so.sv_lens_block.argtypes = [c_void_p, c_int64, c_int64, c_int64, c_int32, *([c_void_p] * 9)]
    so.sv_lens_block.restype = None
    # bool sv_ask_all(void *t, bool ask, void *ud);
    so.sv_ask_all.argtypes, so.sv_ask_all.restype = [c_void_p, c_bool, c_void_p], c_bool


def _check_layout(so: ctypes.CDLL) -> None:
    """The C mirror of ggml_tensor must match the ctypes layout _ggml checked against ggml itself."""
    _ggml.self_check()
    got = (c_int64 * 7)()
    so.sv_tensor_layout(got)
    t = _ggml.GgmlTensor
    want = [ctypes.sizeof(t)] + [getattr(t, f).offset for f in ("type", "buffer", "ne", "nb", "data", "name")]
    if list(got) != want:
        raise NativeUnavailable(f"the C tensor layout {list(got)} differs from the checked one {want}")
    if so.sv_sizeof_out() != ctypes.sizeof(SvOut):
        raise NativeUnavailable("the C output struct differs from its ctypes mirror")


def enabled_by_env() -> bool:
    return os.environ.get("SPECTRA_VIS_NATIVE", "1").strip().lower() not in ("0", "false", "no", "off")


@functools.cache
def lib() -> ctypes.CDLL:
    """The loaded native library (built on first use); NativeUnavailable with the reason if not."""
    if not enabled_by_env():
        raise NativeUnavailable("disabled by SPECTRA_VIS_NATIVE=0")
    path = build()
    try:
        so = ctypes.CDLL(str(path))
    except OSError as exc:
        raise NativeUnavailable(f"cannot load {path}: {exc}") from exc
    _declare(so)
    _check_layout(so)
    ggml = _ggml.lib()
    so.sv_init(
        ctypes.cast(ggml.ggml_backend_buffer_is_host, c_void_p).value,
        ctypes.cast(ggml.ggml_fp16_to_fp32_row, c_void_p).value,
    )
    return so


def available() -> str | None:
    """None when the native callback can be used, else the one-line reason it cannot."""
    try:
        lib()
        return None
    except NativeUnavailable as exc:
        return str(exc)


def ask_all_address() -> int:
    """Address of a cb_eval that asks for every node and reads nothing (the benchmark's baseline)."""
    return int(ctypes.cast(lib().sv_ask_all, c_void_p).value or 0)


@dataclass
class StepOutput:
    """What the native callback produced since the last take (copies; numpy shapes in comments)."""

    calls: int = 0
    n_errors: int = 0
    error: str = ""
    stat_tids: list[int] = field(default_factory=list)
    stat_vals: np.ndarray | None = None  # (n, 8) float32
    rowsets: list[list[int]] = field(default_factory=list)  # [tid, first row, n rows]
    row_vals: np.ndarray | None = None  # (rows, 8) float32
    att_meta: list[list[int]] = field(default_factory=list)  # [tid, heads, rows, k, n_kv, pos off, ent off]
    att_lost: list[float] = field(default_factory=list)
    att_pos: np.ndarray | None = None  # (n,) int32
    att_p: np.ndarray | None = None  # (n,) float32
    att_ent: np.ndarray | None = None  # (n,) float32
    logit_ids: list[int] | None = None
    logit_vals: np.ndarray | None = None
    vec_meta: list[list[int]] = field(default_factory=list)  # [tid, first value, rows, width]
    vec_vals: np.ndarray | None = None  # (n,) float32, or float16 (scaled) when vec_scales is set
    vec_scales: np.ndarray | None = None  # (rows,) float32: each float16 row's scale (row = stored * scale)


_CTYPE = {
    np.dtype(np.float32): ctypes.c_float,
    np.dtype(np.int32): ctypes.c_int32,
    np.dtype(np.int64): ctypes.c_int64,
    np.dtype(np.uint16): ctypes.c_uint16,
}


class NativeState:
    """One C capture state and its cb_eval trampoline. ``free()`` it when the callback goes."""

    def __init__(self, on_graph: Any, on_node: Any, on_data: Any, logits_k: int) -> None:
        self._so = lib()
        # Strong references: C holds only the raw function pointers.
        self._hooks = (GRAPH_FN(on_graph), NODE_FN(on_node), DATA_FN(on_data))
        ptr = self._so.sv_new(*self._hooks, min(logits_k, MAX_LOGITS))
        if not ptr:
            raise NativeUnavailable("all native callback slots are in use (64 live models)")
        self.ptr: int | None = ptr
        self._out = self._so.sv_output(ptr).contents
        self._views: dict[tuple[str, Any], tuple[int, int, np.ndarray]] = {}
        self._vec_f16 = False

    @property
    def callback_address(self) -> int:
        return int(self._so.sv_callback(self.ptr))

    def free(self) -> None:
        if self.ptr:
            self._so.sv_free(self.ptr)
            self.ptr = None

    def boundary(self) -> None:
        self._so.sv_boundary(self.ptr)

    def set_step(self, pos: int, n_tokens: int, top_k: int) -> None:
        self._so.sv_set_step(self.ptr, pos, n_tokens, top_k)

    def set_vec_f16(self, on: bool) -> None:
        """Vectors from now on as float16 rows scaled by powers of two, converted in C as they are
        copied (``recorder._f16_packed``'s rule), or float32."""
        if on != self._vec_f16:
            self._so.sv_set_vec_f16(self.ptr, int(on))
            self._vec_f16 = on

    def counts(self) -> np.ndarray:
        """Evaluations per tensor id since the last reset (int64 copy)."""
        n = c_int64()
        p = self._so.sv_counts(self.ptr, ctypes.byref(n))
        if not p or n.value == 0:
            return np.zeros(0, dtype=np.int64)
        return np.ctypeslib.as_array((c_int64 * n.value).from_address(p)).copy()

    def reset_counts(self) -> None:
        self._so.sv_reset_counts(self.ptr)

    def prefix(self, start: int, stop: int) -> tuple[list[int], list[int]]:
        """Node pointers and tensor ids of this graph's positions [start, stop)."""
        n = max(stop - start, 0)
        ptrs = (c_void_p * n)()
        tids = (c_int32 * n)()
        got = self._so.sv_prefix(self.ptr, start, stop, ptrs, tids)
        return [int(p or 0) for p in ptrs[:got]], list(tids[:got])

    def _view(self, name: str, n: int, dtype: Any) -> np.ndarray:
        buf: SvBuf = getattr(self._out, name)
        key = (name, np.dtype(dtype))
        cached = self._views.get(key)
        if cached is None or cached[0] != buf.p or cached[1] != buf.cap:
            raw = (_CTYPE[key[1]] * buf.cap).from_address(buf.p)
            cached = (buf.p, buf.cap, np.ctypeslib.as_array(raw))
            self._views[key] = cached
        return cached[2][:n]

    def take_output(self) -> StepOutput | None:
        """Copy out and clear what was produced; None when there is nothing but call counts."""
        o = self._out
        if not (o.n_stats or o.n_att or o.n_errors or o.logits_k >= 0 or o.n_vecs):
            calls = o.calls
            o.calls = 0
            return StepOutput(calls=calls) if calls else None
        f32, i32 = np.float32, np.int32
        out = StepOutput(calls=o.calls, n_errors=o.n_errors, error=o.error.decode("utf-8", "replace"))
        if o.n_stats:
            out.stat_tids = self._view("stat_tid", o.n_stats, i32).tolist()
            out.stat_vals = self._view("stat_val", o.n_stats * 8, f32).reshape(-1, 8).copy()
        if o.n_rowsets:
            out.rowsets = self._view("rowset", o.n_rowsets * 3, i32).reshape(-1, 3).tolist()
            out.row_vals = self._view("row_val", o.n_rows * 8, f32).reshape(-1, 8).copy()
        if o.n_att:
            out.att_meta = self._view("att_meta", o.n_att * 7, i32).reshape(-1, 7).tolist()
            out.att_lost = self._view("att_lost", o.n_att, f32).tolist()
            out.att_pos = self._view("att_pos", o.n_att_k, i32).copy()
            out.att_p = self._view("att_p", o.n_att_k, f32).copy()
            out.att_ent = self._view("att_ent", o.n_att_e, f32).copy()
        if o.n_vecs:
            out.vec_meta = self._view("vec_meta", o.n_vecs * 4, np.int64).reshape(-1, 4).tolist()
            if self._vec_f16:  # views: copied by the recorder
                out.vec_vals = self._view("vec_val", o.n_vec_vals, np.uint16).view(np.float16)
                out.vec_scales = self._view("vec_scale", o.n_vec_rows, f32)
            else:
                out.vec_vals = self._view("vec_val", o.n_vec_vals, f32)
        if o.logits_k >= 0:
            k = o.logits_k
            out.logit_ids = list(o.logit_ids[:k])
            out.logit_vals = np.array(o.logit_vals[:k], dtype=np.float32)
        self._so.sv_clear_output(self.ptr)
        return out


def tensor_stats(ptr: int, n_tokens: int = 1, rows_axis1: bool = False) -> tuple[np.ndarray, np.ndarray | None] | None:
    """The statistics the native data phase computes for the ggml tensor at ``ptr``: whole (8,) and
    per token row (n_tokens, 8) or None; None if the tensor is not readable here."""
    whole = np.zeros(8, dtype=np.float32)
    rows = np.zeros((max(n_tokens, 1), 8), dtype=np.float32)
    got = lib().sv_stats_tensor(ptr, n_tokens, ROWAX1 if rows_axis1 else 0, whole.ctypes.data, rows.ctypes.data)
    if got < 0:
        return None
    return whole, (rows if got > 0 else None)


def top_k(x: np.ndarray, k: int) -> tuple[list[int], np.ndarray]:
    """The native top-k of a 1-D float32 array: (indices, values), value descending, ties by index."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    idx = np.zeros(max(k, 1), dtype=np.int32)
    val = np.zeros(max(k, 1), dtype=np.float32)
    n = lib().sv_topk_f32(x.ctypes.data, x.size, k, idx.ctypes.data, val.ctypes.data)
    return idx[:n].tolist(), val[:n]


def f16_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float32 rows ``(rows, width)`` as the native data phase keeps vectors: float16 rows divided
    by their power-of-two scales, and the scales (float32)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = np.empty(x.shape, dtype=np.float16)
    scale = np.empty(x.shape[0], dtype=np.float32)
    lib().sv_f16_rows(x.ctypes.data, x.shape[0], x.shape[1], y.ctypes.data, scale.ctypes.data)
    return y, scale


class LensReduction:
    """The running logit-lens state of n rows over one pass of the vocabulary, reduced in C block
    by block (``sv_lens_block``): top-k, max, sum of exp and of exp times logit, and the count of
    logits above each row's next token."""

    def __init__(self, n: int, k: int, want: np.ndarray, next_logit: np.ndarray) -> None:
        self._so = lib()
        self.k = k
        self.want = np.ascontiguousarray(want, dtype=np.int64)
        self.next_logit = np.ascontiguousarray(next_logit, dtype=np.float32)
        self.idx = np.zeros((n, k), dtype=np.int32)
        self.val = np.full((n, k), -np.inf, dtype=np.float32)
        self.n_top = np.zeros(n, dtype=np.int32)
        self.mx = np.full(n, -np.inf)
        self.s = np.zeros(n)
        self.t = np.zeros(n)
        self.above = np.zeros(n, dtype=np.int64)

    def update(self, logits: np.ndarray, offset: int, rows: tuple[int, int] | None = None) -> None:
        """Fold ``logits`` (rows x block, float32) of vocabulary columns from ``offset`` into the
        state; only the rows ``rows = (start, stop)`` if given. The C call releases the GIL: threads
        may fold disjoint row ranges of one block at once."""
        lg = np.ascontiguousarray(logits, dtype=np.float32)
        n, m = lg.shape
        r0, r1 = rows if rows is not None else (0, n)
        if not 0 <= r0 <= r1 <= n:
            raise ValueError(f"LensReduction.update: rows {r0}..{r1} outside 0..{n}")

        def at(a: np.ndarray, per_row: int = 1) -> int:
            return int(a.ctypes.data) + r0 * per_row * a.itemsize

        self._so.sv_lens_block(
            at(lg, m), r1 - r0, m, offset, self.k, at(self.want), at(self.next_logit),
            at(self.idx, self.k), at(self.val, self.k), at(self.n_top), at(self.mx),
            at(self.s), at(self.t), at(self.above),
        )  # fmt: skip

    def top(self) -> tuple[np.ndarray, np.ndarray]:
        """The top-k ids (int64) and logits of every row, most probable first."""
        return self.idx.astype(np.int64), self.val


if __name__ == "__main__":  # python -m spectra_vis.capturing._native: build ahead of time
    try:
        lib()
        cc = find_compiler()
        print(library_path(cc, FLAG_SETS[0]) if cc else "built")
    except NativeUnavailable as exc:
        print(f"native callback unavailable: {exc}", file=sys.stderr)
        sys.exit(1)
