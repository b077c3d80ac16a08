"""Capture stage: the logit lens, what each layer's residual stream would predict.

A row of the residual stream goes through the model's own final norm (``output_norm.weight`` and
the architecture's epsilon) and output head (``output.weight``, or ``token_embd.weight`` where the
embedding is tied, as in Gemma), then through the logit transforms llama.cpp applies for that
architecture (Gemma 2 soft-capping, Granite's logit scale). At the last layer this is what
llama.cpp computed; the tests hold it to that.

The head is read from the GGUF memory-mapped, a block of vocabulary rows at a time: each block is
converted to float32 once by ggml's own row converter (``_ggml.to_float``, llama.cpp's
dequantization), then multiplied with every residual row at once by numpy's BLAS (one
multi-threaded sgemm per block). The rows first go through what ggml's CPU product does to them
(``_ggml.as_dot_type``: quantized to the head's dot type, 8 bits per value in blocks of 32 for Q8_0
and Q4_0 heads, by the backend's own quantizer, and back), so the products are llama.cpp's up to
float32 rounding. Where ggml cannot be called, the gguf package dequantizes the head (the same
values) and the rows stay float32: those logits differ from llama.cpp's by about 1%. The memory a
lens needs is bounded by the block, not the vocabulary: one pass over the head keeps a running
top-k, log-sum-exp and entropy per row, reduced in C (``_native.LensReduction``, its rows split over
the cores) or, without the native library, in numpy (``NumpyReduction``).
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from spectra_vis.capturing import _ggml, _native
from spectra_vis.errors import InvalidArgument, ModelFileError, NativeUnavailable, Unsupported
from spectra_vis.record.profiles import open_gguf
from spectra_vis.store.capture_file import Capture, trial_of

# Architectures whose output path the lens mirrors: RMS final norm, a linear head, and at most
# soft-capping or a logit scale after it (llama.cpp's build_* graph of each).
RMS_NORM_ARCHS = ("llama", "mistral", "qwen2", "qwen3", "phi3", "gemma", "gemma2", "gemma3", "granite")
VOCAB_BLOCK = 8192  # head rows dequantized at once: 8192 x n_embd float32 (21 MB for n_embd 640)
LENS_THREADS = max(1, min(4, os.cpu_count() or 1))  # the reduction's row parts (BLAS has its own threads)
DIVERGENCE_BYTES = 64 * 1024 * 1024  # float64 temporaries of a divergence block: rows x block x 8 bytes x 6
MIN_PART_ROWS = 32  # fewer rows per part: the reduction runs in one thread


@dataclass
class LensRows:
    """The lens of n residual rows: top-k tokens and probabilities, entropy (nats), and the rank
    (0: top-1) and probability of a given next token per row (-1 and nan where none was given)."""

    top_ids: np.ndarray  # (n, k) int64, most probable first
    top_p: np.ndarray  # (n, k) float32
    entropy: np.ndarray  # (n,) float32
    next_rank: np.ndarray  # (n,) int64
    next_p: np.ndarray  # (n,) float32


class LogitLens:
    """The final norm and output head of one GGUF model."""

    def __init__(
        self,
        arch: str,
        norm_weight: np.ndarray,
        eps: float,
        head: Any,
        head_type: Any,
        softcap: float | None = None,
        logit_scale: float | None = None,
    ) -> None:
        self.arch = arch
        self.norm_weight = norm_weight.astype(np.float32)
        self.eps = eps
        self._head = head  # memory-mapped GGUF data, (n_vocab, n_embd) values or (n_vocab, bytes) blocks
        self._head_type = head_type
        self.softcap = softcap
        self.logit_scale = logit_scale
        self.n_vocab = int(head.shape[0])
        self.n_embd = int(norm_weight.shape[0])
        self.use_ggml = _ggml_usable(int(head_type))

    @classmethod
    def from_gguf(cls, path: str | os.PathLike[str]) -> LogitLens:
        """The lens of the model in ``path``; Unsupported for an architecture it cannot mirror,
        ModelFileError when the file lacks the final norm or an output head."""
        reader = open_gguf(path)

        def field(key: str, default: Any = None) -> Any:
            f = reader.get_field(key)
            return default if f is None else f.contents()

        arch = str(field("general.architecture", "unknown"))
        if arch not in RMS_NORM_ARCHS:
            supported = ", ".join(RMS_NORM_ARCHS)
            raise Unsupported(f"logit lens not supported for {arch} (it mirrors {supported})")
        tensors = {t.name: t for t in reader.tensors}
        norm = tensors.get("output_norm.weight")
        head = tensors.get("output.weight") or tensors.get("token_embd.weight")
        if norm is None or head is None:
            missing = "output_norm.weight" if norm is None else "output.weight or token_embd.weight"
            raise ModelFileError(f"{os.fspath(path)} has no {missing}: the logit lens needs the final norm and head")
        eps = float(field(f"{arch}.attention.layer_norm_rms_epsilon", 1e-5))
        softcap = field(f"{arch}.final_logit_softcapping") if arch == "gemma2" else None
        scale = field(f"{arch}.logit_scale") if arch == "granite" else None
        lens = cls(
            arch,
            np.asarray(_dequantize(norm.data, norm.tensor_type), dtype=np.float32).reshape(-1),
            eps,
            head.data,
            head.tensor_type,
            softcap=float(softcap) if softcap else None,
            logit_scale=float(scale) if scale else None,
        )
        try:
            lens._head_logits(np.zeros((1, lens.n_embd), dtype=np.float32), lens._head[0:1])
        except Exception as exc:  # noqa: BLE001 - any failure of ggml or the gguf package on the head
            raise ModelFileError(f"the output head of {os.fspath(path)} cannot be dequantized ({exc})") from exc
        return lens

    # ----- the computation ---------------------------------------------------------------------
    def normed(self, rows: np.ndarray) -> np.ndarray:
        """The final norm of residual rows ``(n, n_embd)``: x / sqrt(mean(x^2) + eps) * w."""
        x = np.asarray(rows, dtype=np.float32).reshape(-1, self.n_embd)
        scale = 1.0 / np.sqrt(np.mean(np.square(x, dtype=np.float64), axis=1) + self.eps)
        return (x * scale[:, None].astype(np.float32)) * self.norm_weight

    def logits(self, rows: np.ndarray) -> np.ndarray:
        """All logits ``(n, n_vocab)`` of residual rows (for a small vocabulary or a few rows)."""
        hd = self._as_dot(self.normed(rows))
        return np.concatenate([self._product(hd, self._head[a:b]) for a, b in self._blocks()], axis=1)

    def read(
        self,
        rows: np.ndarray,
        k: int = 5,
        next_ids: list[int | None] | None = None,
        on_block: Callable[[int, int], None] | None = None,
    ) -> LensRows:
        """Top-k, entropy and the next token's rank and probability of each row, in one pass over the
        head; ``on_block(done, total)`` after each block of the vocabulary (progress)."""
        hd = self._as_dot(self.normed(rows))
        n = hd.shape[0]
        k = max(1, min(k, self.n_vocab))
        want = np.array([-1 if i is None else int(i) for i in (next_ids or [None] * n)], dtype=np.int64)
        has = (want >= 0) & (want < self.n_vocab)
        want[~has] = -1
        next_logit = np.full(n, np.nan, dtype=np.float32)
        if has.any():  # each wanted head row once, through the same kernel as the blocks
            uniq, where = np.unique(want[has], return_inverse=True)
            part = self._product(hd[has], self._rows(uniq))
            next_logit[has] = part[np.arange(len(where)), where]
        red = _reduction(n, k, want, next_logit)
        width = min(VOCAB_BLOCK, self.n_vocab)
        out = np.empty((n, width), dtype=np.float32)
        weights = np.empty((width, self.n_embd), dtype=np.float32)
        blocks = self._blocks()
        parts = _row_parts(n) if isinstance(red, _native.LensReduction) else []
        with ThreadPoolExecutor(max(1, len(parts) - 1)) as pool:
            for i, (a, b) in enumerate(blocks):
                lg = self._product(hd, self._head[a:b], out if b - a == width else None, weights)
                _fold(red, np.ascontiguousarray(lg), a, parts, pool)
                if on_block is not None:
                    on_block(i + 1, len(blocks))
        log_z = red.mx + np.log(red.s)
        top_ids, top_val = red.top()
        return LensRows(
            top_ids=top_ids,
            top_p=np.exp(top_val - log_z[:, None]).astype(np.float32),
            entropy=(log_z - red.t / red.s).astype(np.float32),
            next_rank=np.where(has, red.above, -1),
            next_p=np.where(has, np.exp(next_logit - log_z), np.nan).astype(np.float32),
        )

    def divergence(
        self,
        h_self: np.ndarray,
        other: LogitLens,
        h_other: np.ndarray,
        next_self: np.ndarray,
        next_other: np.ndarray,
        on_block: Callable[[int, int], None] | None = None,
    ) -> dict[str, np.ndarray]:
        """The next-token distributions of this model at final-norm rows ``h_self`` (the reference)
        and of ``other`` at ``h_other``, compared exactly over the whole vocabulary in one pass over
        both heads: KL(reference || other) in nats, each one's top-1 id, and the probability each
        gives to the other's next token (``next_*``: -1 where none). Rows are already normed
        (``ln_final.hook_normalized``). The same lens and the same rows (a trial with itself): one
        product per block, not two. ``on_block(done, total)`` after each block of the vocabulary."""
        if other.n_vocab != self.n_vocab:
            raise InvalidArgument(
                f"the models' vocabularies differ ({self.n_vocab} and {other.n_vocab} tokens): "
                "a next-token comparison needs the same tokenizer"
            )
        same = other is self and h_other is h_self
        ha = self._as_dot(h_self)
        hb = ha if same else other._as_dot(h_other)
        n = ha.shape[0]
        m_a, m_b = np.full(n, -np.inf), np.full(n, -np.inf)
        s_a, s_b, u = np.zeros(n), np.zeros(n), np.zeros(n)
        top_a, top_b = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        best_a, best_b = np.full(n, -np.inf), np.full(n, -np.inf)
        want_b, want_a = np.full(n, np.nan), np.full(n, np.nan)  # B's logit of A's next token, and A's of B's
        rows = np.arange(n)
        blocks = self._blocks(_divergence_block(n))
        for i, (a, b) in enumerate(blocks):
            la = self._product(ha, self._head[a:b]).astype(np.float64)
            lb = la if same else other._product(hb, other._head[a:b]).astype(np.float64)
            for lg, best, top in ((la, best_a, top_a), (lb, best_b, top_b)):
                arg = lg.argmax(axis=1)
                val = lg[rows, arg]
                better = val > best
                best[better], top[better] = val[better], arg[better] + a
            for ids, lg, out in ((next_self, lb, want_b), (next_other, la, want_a)):
                inside = (ids >= a) & (ids < b)
                out[inside] = lg[rows[inside], ids[inside] - a]
            new_a = np.maximum(m_a, la.max(axis=1))
            shift = np.exp(m_a - new_a)
            e = np.exp(la - new_a[:, None])
            s_a = s_a * shift + e.sum(axis=1)
            if not same:  # else la - lb is 0: KL 0
                u = u * shift + np.einsum("ij,ij->i", e, la - lb)
            m_a = new_a
            if not same:
                new_b = np.maximum(m_b, lb.max(axis=1))
                s_b = s_b * np.exp(m_b - new_b) + np.exp(lb - new_b[:, None]).sum(axis=1)
                m_b = new_b
            _release(self._head[a:b])
            if not same and other is not self:
                _release(other._head[a:b])
            if on_block is not None:
                on_block(i + 1, len(blocks))
        log_za = m_a + np.log(s_a)
        log_zb = log_za if same else m_b + np.log(s_b)
        kl = np.maximum(u / s_a - log_za + log_zb, 0.0)  # never below 0 (rounding)
        return {
            "kl": kl,
            "top1_self": top_a,
            "top1_other": top_b,
            "p_other_of_next": np.exp(want_b - log_zb),
            "p_self_of_next": np.exp(want_a - log_za),
        }

    # ----- internals -----------------------------------------------------------------------------
    def _blocks(self, size: int | None = None) -> list[tuple[int, int]]:
        size = size or VOCAB_BLOCK  # read when called (the module constant can be changed)
        return [(a, min(a + size, self.n_vocab)) for a in range(0, self.n_vocab, size)]

    def _rows(self, ids: np.ndarray) -> np.ndarray:
        """Head rows ``ids`` as stored (quantized blocks or values)."""
        return np.ascontiguousarray(self._head[ids])

    def _weights(self, stored: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Head rows as stored, as float32 ``(len(stored), n_embd)``: float32 heads as they are, the
        others converted by ggml's own row converter where it can be called (into ``out``, a
        buffer of at least as many rows), else by the gguf package's dequantization."""
        m = stored.shape[0]
        if stored.dtype == np.float32:
            return stored.reshape(m, self.n_embd)
        if self.use_ggml:
            buf = out[:m] if out is not None and out.shape[0] >= m else np.empty((m, self.n_embd), np.float32)
            return _ggml.to_float(np.ascontiguousarray(stored), int(self._head_type), self.n_embd, buf)
        return np.asarray(_dequantize(stored, self._head_type), dtype=np.float32).reshape(m, self.n_embd)

    def _as_dot(self, h: np.ndarray) -> np.ndarray:
        """Normed rows as llama.cpp's product with this head sees them (float32, C-contiguous): through
        the head's dot type where ggml can be called, else as they are."""
        h = np.ascontiguousarray(h, dtype=np.float32)
        return _ggml.as_dot_type(h, int(self._head_type)) if self.use_ggml else h

    def _head_logits(self, h: np.ndarray, stored: np.ndarray) -> np.ndarray:
        """Logits ``(len(h), len(stored))`` of normed rows ``h`` against head rows ``stored``."""
        return self._product(self._as_dot(h), stored)

    def _product(
        self, hd: np.ndarray, stored: np.ndarray, out: np.ndarray | None = None, weights: np.ndarray | None = None
    ) -> np.ndarray:
        """Logits of rows already through ``_as_dot`` against head rows ``stored``: the rows
        dequantized once (into ``weights`` if given), then one BLAS product (into ``out``)."""
        w = self._weights(stored, weights)
        if out is None:
            return self._transform(hd @ w.T)
        np.matmul(hd, w.T, out=out)
        return self._transform(out)

    def _transform(self, logits: np.ndarray) -> np.ndarray:
        """The architecture's logit transforms, in place."""
        if self.softcap:
            np.multiply(np.tanh(np.divide(logits, self.softcap, out=logits), out=logits), self.softcap, out=logits)
        if self.logit_scale:
            np.divide(logits, self.logit_scale, out=logits)
        return logits


def _ggml_usable(head_type: int) -> bool:
    """ggml can be called here (llama-cpp-python installed, its tensor and type-traits layouts the
    ones the bindings read), converts ``head_type`` and rows to its dot type; else the gguf package
    dequantizes the head and the rows stay float32."""
    try:
        _ggml.self_check()
        _ggml.check_converters(head_type)
    except (ImportError, OSError, AttributeError, _ggml.LayoutError):
        return False
    return True


def _release(stored: Any) -> None:
    """Drop the pages of a block of a memory-mapped head from the process's resident memory once it
    has been read (they stay in the page cache; a later read maps them again): a pass over a head of
    hundreds of MB then holds one block of it, not the whole. Nothing for a head not memory-mapped."""
    root = stored
    while isinstance(root, np.ndarray) and not isinstance(root.base, mmap.mmap):
        root = root.base
    if not isinstance(root, np.memmap) or not isinstance(root.base, mmap.mmap) or not stored.nbytes:
        return
    start = root.ctypes.data - root.offset % mmap.ALLOCATIONGRANULARITY  # where the mapping begins
    rel = stored.ctypes.data - start
    first = rel - rel % mmap.PAGESIZE
    try:
        root.base.madvise(mmap.MADV_DONTNEED, first, rel + stored.nbytes - first)
    except (OSError, ValueError, AttributeError):  # not on this platform, or not this mapping: keep the pages
        pass


def _divergence_block(n: int) -> int:
    """Vocabulary rows per block of ``divergence`` for ``n`` rows: its float64 logits, exponentials and
    differences (about six n x block arrays) within DIVERGENCE_BYTES, 512 to VOCAB_BLOCK rows."""
    fit = DIVERGENCE_BYTES // max(1, n * 8 * 6)
    return int(max(512, min(VOCAB_BLOCK, fit // 256 * 256)))


def _row_parts(n: int) -> list[tuple[int, int]]:
    """The rows of a block split for the reduction's threads (one part when there are few rows)."""
    count = max(1, min(LENS_THREADS, n // MIN_PART_ROWS))
    cuts = [n * i // count for i in range(count + 1)]
    return list(zip(cuts[:-1], cuts[1:], strict=True))


def _fold(red: Any, lg: np.ndarray, a: int, parts: list[tuple[int, int]], pool: ThreadPoolExecutor) -> None:
    """``red.update(lg, a)``, its row parts in parallel where there are several (the C reduction
    releases the GIL, and rows are independent)."""
    if len(parts) < 2:
        red.update(lg, a)
        return
    pending = [pool.submit(red.update, lg, a, part) for part in parts[1:]]
    red.update(lg, a, parts[0])
    for f in pending:
        f.result()


def _reduction(n: int, k: int, want: np.ndarray, next_logit: np.ndarray) -> Any:
    """The running state of a pass over the head: in C where the native library builds, else numpy."""
    try:
        return _native.LensReduction(n, k, want, next_logit)
    except NativeUnavailable:
        return NumpyReduction(n, k, want, next_logit)


class NumpyReduction:
    """``_native.LensReduction`` in numpy: the same state, updated block by block."""

    def __init__(self, n: int, k: int, want: np.ndarray, next_logit: np.ndarray) -> None:
        self.k, self.want, self.next_logit = k, want, next_logit
        self.ids = np.zeros((n, 0), dtype=np.int64)
        self.val = np.zeros((n, 0), dtype=np.float32)
        self.mx = np.full(n, -np.inf)
        self.s = np.zeros(n)
        self.t = np.zeros(n)
        self.above = np.zeros(n, dtype=np.int64)

    def update(self, lg: np.ndarray, a: int) -> None:
        b = a + lg.shape[1]
        want = self.want
        higher = lg > self.next_logit[:, None]
        own = (want >= a) & (want < b)  # the token itself: never above itself, whatever the rounding
        higher[np.flatnonzero(own), want[own] - a] = False
        self.above += higher.sum(axis=1)
        kb = min(self.k, b - a)  # this block's own top-k first (no copy of the block), then merged
        top = np.argpartition(lg, lg.shape[1] - kb, axis=1)[:, -kb:]
        cand_ids = np.concatenate([self.ids, top + a], axis=1)
        cand_val = np.concatenate([self.val, np.take_along_axis(lg, top, axis=1)], axis=1)
        keep = np.argpartition(cand_val, cand_val.shape[1] - min(self.k, cand_val.shape[1]), axis=1)[:, -self.k :]
        self.ids = np.take_along_axis(cand_ids, keep, axis=1)
        self.val = np.take_along_axis(cand_val, keep, axis=1)
        m_new = np.maximum(self.mx, lg.max(axis=1).astype(np.float64))
        shift = np.exp(self.mx - m_new)
        e = np.exp(lg - m_new[:, None].astype(np.float32))  # float32 terms, float64 sums
        self.s = self.s * shift + e.sum(axis=1, dtype=np.float64)
        self.t = self.t * shift + np.einsum("ij,ij->i", e, lg, dtype=np.float64)
        self.mx = m_new

    def top(self) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(-self.val, axis=1, kind="stable")
        return np.take_along_axis(self.ids, order, axis=1), np.take_along_axis(self.val, order, axis=1)


def _dequantize(data: np.ndarray, qtype: Any) -> np.ndarray:
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize

    if qtype in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
        return np.asarray(data, dtype=np.float32)
    return dequantize(np.asarray(data), qtype)


LENS_K = 5  # tokens kept per layer and position in a capture


def trial_lens(
    cap: Capture,
    trial_id: int,
    lens: LogitLens,
    k: int = LENS_K,
    on_block: Callable[[int, int], None] | None = None,
) -> dict[str, Any] | None:
    """The lens grid of one trial from its residual-stream vectors (``blocks.L.hook_resid_post``):
    per layer and token position, the top-k ids and probabilities, the entropy, and the rank and
    probability of the token that came next. Positions without a vector are null. None when the
    trial holds no residual vectors."""
    trial = trial_of(cap.data, trial_id)
    ids = trial["tokens"]["ids"]
    n = len(ids)
    held = set(cap.hook_names(trial_id))
    layers = [L for L in range(int(cap.model["n_layer"])) if f"blocks.{L}.hook_resid_post" in held]
    if not layers:
        return None
    grid: dict[str, Any] = {"k": k, "layers": layers, "ids": [], "p": [], "entropy": [], "next_rank": [], "next_p": []}
    # every layer's rows in one pass over the head: dequantizing it is the slow part
    vecs = [cap.vectors(trial_id, f"blocks.{L}.hook_resid_post") for L in layers]
    haves = [np.flatnonzero(~np.isnan(v).any(axis=1)) for v in vecs]
    rows = np.concatenate([v[h] for v, h in zip(vecs, haves, strict=True)])
    nexts = [ids[p + 1] if p + 1 < n else None for h in haves for p in h.tolist()]
    everything = lens.read(rows, k=k, next_ids=nexts, on_block=on_block)
    start = 0
    for have in haves:
        part = slice(start, start + len(have))
        start += len(have)
        out = LensRows(*(getattr(everything, f)[part] for f in ("top_ids", "top_p", "entropy", "next_rank", "next_p")))
        row: dict[str, list[Any]] = {key: [None] * n for key in ("ids", "p", "entropy", "next_rank", "next_p")}
        for j, p in enumerate(have.tolist()):
            row["ids"][p] = out.top_ids[j].tolist()
            row["p"][p] = [round(float(x), 6) for x in out.top_p[j]]
            row["entropy"][p] = round(float(out.entropy[j]), 5)
            if out.next_rank[j] >= 0:
                row["next_rank"][p] = int(out.next_rank[j])
                row["next_p"][p] = round(float(out.next_p[j]), 6)
        for key, values in row.items():
            grid[key].append(values)
    return grid


def add_lens(
    cap: Capture,
    model_path: str | os.PathLike[str],
    text_of: Callable[[int], str] | None = None,
    k: int = LENS_K,
    trials: Iterable[int] | None = None,
    on_progress: Callable[[int, int, int], None] | None = None,
) -> None:
    """Put each trial's lens grid (or those of ``trials``: the ones that ran on this model) into
    ``cap`` (``trial["lens"]``), with the text of every token it names (``vocab``, from
    ``text_of``); where the model's architecture is not mirrored, ``options["lens"]`` says so
    instead. Nothing when the capture has no vectors. ``on_progress(trial_id, done, total)``
    follows the pass over the head, block by block (a long trial's lens takes a while)."""
    if not cap.arrays:
        return
    try:
        lens = LogitLens.from_gguf(model_path)
    except (Unsupported, ModelFileError) as exc:
        cap.data["options"]["lens"] = str(exc)
        return
    chosen = None if trials is None else set(trials)
    for trial in cap.data["trials"]:
        if chosen is not None and trial["id"] not in chosen:
            continue
        tid = trial["id"]
        step = None if on_progress is None else (lambda done, total, tid=tid: on_progress(tid, done, total))
        grid = trial_lens(cap, tid, lens, k, on_block=step)
        if grid is not None:
            named = {i for layer in grid["ids"] for cell in layer if cell for i in cell}
            grid["vocab"] = {str(i): text_of(i) if text_of else "" for i in sorted(named)}
            trial["lens"] = grid
