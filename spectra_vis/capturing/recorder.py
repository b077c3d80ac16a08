"""Capture stage: the recorder, which turns eval-callback calls into a catalogue, trials and steps.

llama.cpp calls the eval callback twice per wanted node: an *ask* call for every graph node and a
*data* call, once the values are computed, for the nodes we asked for. An engine (``engines``: the
Python one, or ``native_engine``: the C one) receives those calls and drives the recorder through
its public methods:

- ``new_graph(first)``: a new evaluation starts; makes its Step (tokens, phase, position);
- ``register(ptr, tensor, graph)``: the catalogue id of the graph's next node (registered if new);
- ``wants(tid)``: whether the preset reads that node;
- ``read(ptr, tid, step)``: read a node whose data is ready (statistics, rows, attention, logits),
  then call the ``on_tensor`` hooks;
- ``record_error(message)``: an error kept on the trial (never raised into C);
- ``guarded(default, fn, *args)``: run ``fn`` for a caller in C, catching everything.

Depends on ``_ggml`` (pointers), ``record`` (naming, presets, records, stats); imports no engine.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from spectra_vis.capturing import _ggml
from spectra_vis.record.naming import EMBED_LAYER, FINAL_NORM_LAYER, parse_name, parse_weight, type_info, variant_type
from spectra_vis.record.presets import Preset
from spectra_vis.record.records import Step, TensorInfo, TrialData
from spectra_vis.record.stats import attention_summary, drop_future, rows_stats, tensor_stats, top_logits

GRAPH_START_NAMES = (b"inp_embd", b"embd")
MAX_ERRORS = 200
LOGITS_TOP_K = 10
# The node llama.cpp names for the logits it returns: the last op of the head (Granite: the SCALE
# after the matmul, whose type is then result_output.scale), not every node of type result_output.
LOGITS_NODE = "result_output"
ROW_AXIS_FROM_END = {"kq": 2, "kq_soft_max": 2, "kqv": 2}  # (head, token, kv) tensors

TensorHook = Callable[[TensorInfo, np.ndarray, Step], None]
"""``fn(info, array, step)``, called for every node the preset reads, after its statistics.

``array`` is a view of llama.cpp's memory, valid only during the call: copy what you keep.
An exception in a hook is recorded on the trial as an error; the capture goes on."""


class Graph:
    """Per-evaluation state: which pointer is which tensor, name occurrences, the current step."""

    __slots__ = ("ptr_tid", "occ", "anchor", "offset", "step", "anchor_layer", "started")

    def __init__(self, step: Step | None) -> None:
        self.ptr_tid: dict[int, int] = {}
        self.occ: dict[bytes, int] = {}
        self.anchor: tuple[Any, ...] = ("<start>", 0)
        self.offset = 0
        self.step = step
        self.anchor_layer = EMBED_LAYER
        self.started = False  # a start name (embd, inp_embd) was seen: the next one begins a new graph

    def next_key(self, raw: bytes) -> tuple[Any, ...]:
        """Advance past a node named ``raw``; its key: (name, occurrence), or (anchor, offset) if unnamed."""
        n = self.occ.get(raw, 0)
        self.occ[raw] = n + 1
        if not raw or raw.startswith(b"node_"):
            self.offset += 1
            return (self.anchor, self.offset)
        self.anchor, self.offset = (raw, n), 0
        return self.anchor

    def skip(self, ptr: int, raw: bytes, tid: int) -> None:
        """Advance past a node another engine already identified as ``tid``."""
        self.next_key(raw)
        self.ptr_tid[ptr] = tid


class Recorder:
    """The catalogue of nodes, the trials and their steps, kept from eval-callback calls."""

    def __init__(
        self, preset: Preset, verbose: bool = False, on_tensor: TensorHook | Iterable[TensorHook] = ()
    ) -> None:
        self.preset = preset
        self.verbose = verbose
        self.hooks: list[TensorHook] = [on_tensor] if callable(on_tensor) else list(on_tensor)
        self.enabled = False
        self.tensors: list[TensorInfo] = []
        self.trials: list[TrialData] = []
        self.current_trial: TrialData | None = None
        self.total_callbacks = 0
        self.interrupt_requested = False
        self.graph: Graph | None = None
        self._tids: dict[Any, int] = {}
        self._keys: set[str] = set()
        self._want: list[bool] = []
        self._vec: list[bool] = []  # per tid: its rows are kept whole
        self.vector_bytes = 0  # kept so far, over the whole capture (the preset's max_vector_bytes)
        self.vectors_stopped: str | None = None  # why vectors stopped, once the budget is reached
        self._vec_width: dict[int, int] = {}  # tid -> its row width (a node whose width changes keeps its first)
        self._variants: dict[int, tuple[dict[tuple[str, str], int], dict[str, int]]] = {}
        self._model_ref: Callable[[], Any] | None = None
        self._pending: tuple[list[int], list[int], int] | None = None
        self._graph_t0 = 0.0
        self._sampled_any = False
        self._texts: dict[int, str] = {}  # token id -> text, for the attached model

    @property
    def model(self) -> Any:
        return self._model_ref() if self._model_ref else None

    def bind_model(self, model: Any) -> None:
        self._model_ref = weakref.ref(model)
        self._texts = {}

    # ----- what engines call ------------------------------------------------------------------
    def guarded(self, default: Any, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` for a caller in C: nothing propagates into llama.cpp. Ctrl-C is kept for
        after the decode (``interrupt_requested``), any other error is recorded on the trial;
        both give ``default``."""
        try:
            return fn(*args)
        except KeyboardInterrupt:
            self.interrupt_requested = True
        except BaseException as exc:  # noqa: BLE001 - nothing may propagate into C
            self.record_error(f"{type(exc).__name__}: {exc}")
        return default

    @property
    def recording(self) -> bool:
        return self.enabled and self.current_trial is not None

    def new_graph(self, first: _ggml.GgmlTensor) -> Graph:
        """A new evaluation begins with node ``first``: its Step, appended to the current trial."""
        trial = self.current_trial
        assert trial is not None
        self.close_graph_timing()
        n_tokens = int(first.ne[1]) if first.name in GRAPH_START_NAMES else 0
        if not n_tokens and self._pending is not None:
            n_tokens = len(self._pending[0]) - self._pending[2]
        step = Step(index=len(trial.steps), phase=self._phase(trial, n_tokens), pos=0, n_tokens=n_tokens)
        prev = trial.steps[-1] if trial.steps else None
        step.pos = prev.pos + prev.n_tokens if prev else 0
        if self._pending is not None:
            ids, positions, offset = self._pending
            step.token_ids = [int(i) for i in ids[offset : offset + n_tokens]]
            if offset < len(positions):
                step.pos = int(positions[offset])
            self._pending = (ids, positions, offset + n_tokens)
            step.token_texts = [self.token_text(i) for i in step.token_ids]
        trial.steps.append(step)
        self.graph = Graph(step)
        self._graph_t0 = time.perf_counter()
        return self.graph

    def register(self, ptr: int, t: _ggml.GgmlTensor, g: Graph) -> int:
        """The catalogue id of node ``t``, the next node of graph ``g`` (registered when new)."""
        raw = t.name
        key = g.next_key(raw)
        tid = self._tids.get(key)
        if tid is None:
            tid = self._add(ptr, t, raw, key, g)
        g.ptr_tid[ptr] = tid
        return tid

    def count(self, tid: int) -> None:
        counts = self.current_trial.counts  # type: ignore[union-attr]
        counts[tid] = counts.get(tid, 0) + 1

    def wants(self, tid: int) -> bool:
        return self._want[tid]

    def keeps_vector(self, tid: int) -> bool:
        return self._vec[tid]

    def keep_vector(self, ptr: int, tid: int, step: Step) -> None:
        """Keep the rows of node ``tid`` (its data is ready; the statistics were read elsewhere)."""
        arr = _ggml.read_array(ptr, _ggml.tensor(ptr))
        if arr is not None:
            self.keep_rows(arr, tid, step)

    def read(self, ptr: int, tid: int, step: Step) -> None:
        """Read node ``tid`` (its data is ready) into ``step``: statistics, rows, attention, logits;
        then the ``on_tensor`` hooks see it."""
        info = self.tensors[tid]
        t = _ggml.tensor(ptr)
        arr = _ggml.read_array(ptr, t)
        if arr is None:
            self.record_error(f"{info.key}: {info.dtype} tensor not readable on the host")
            return
        if info.type == "kq_soft_max":
            step.attention[tid] = self._attention(arr, step)
        else:
            step.stats[tid] = tensor_stats(arr)
            rows = _token_rows(arr, step.n_tokens, ROW_AXIS_FROM_END.get(info.type))
            if rows is not None:
                step.rows[tid] = rows_stats(rows)
            if info.name == LOGITS_NODE:
                step.logits = top_logits(arr, LOGITS_TOP_K)
            if self._vec[tid]:
                self.keep_rows(arr, tid, step)
        for hook in self.hooks:
            self.guarded(None, hook, info, arr, step)

    def record_error(self, message: str) -> None:
        """Keep ``message`` on the current trial, with its step (at most MAX_ERRORS)."""
        trial = self.current_trial
        if trial is not None and len(trial.errors) < MAX_ERRORS:
            step = trial.steps[-1].index if trial.steps else None
            trial.errors.append(f"step {step}: {message}")

    def keep_rows(self, arr: np.ndarray, tid: int, step: Step) -> None:
        """The step's rows of ``arr`` as vectors (see ``keep_packed``). A tensor with fewer rows than
        the step's tokens holds its last ones: llama.cpp computes only the rows it outputs in the
        last layer (``inp_out_ids``)."""
        if self.vectors_stopped is None and (rows := _vector_rows(arr, step.n_tokens)) is not None:
            self.keep_packed(rows.reshape(-1), [(tid, 0, rows.shape[0], rows.shape[1])], step)

    def keep_packed(
        self, vals: np.ndarray, meta: Sequence[Sequence[int]], step: Step, scales: np.ndarray | None = None
    ) -> None:
        """Vectors of several nodes packed in one float32 buffer: ``meta`` holds (tid, first value,
        rows, width) per node, in buffer order with no gaps (as the native data phase writes them).
        Converted once per step, copied out of ``vals`` (llama.cpp's or C's memory), and kept within
        the byte budget: past it, none, and the trial says where and why. With ``scales`` (one per
        row), ``vals`` is already float16, each row divided by its scale (the native data phase
        converts as it copies, by ``_f16_packed``'s rule)."""
        if self.vectors_stopped is not None or not meta:
            return
        f16 = self.preset.vector_dtype == "f16"
        itemsize = 2 if f16 else 4
        if f16 and scales is not None and vals.dtype == np.float16:
            stored, scales = vals.copy(), scales.copy()
        elif f16:
            stored, scales = _f16_packed(vals, meta)
        else:
            stored = np.array(vals, dtype=np.float32)
            scales = np.ones(sum(int(m[2]) for m in meta), dtype=np.float32)
        budget = self.preset.max_vector_bytes
        row0 = 0  # the node's first row in ``scales``
        for tid, first, rows, width in meta:
            scale, row0 = scales[row0 : row0 + rows], row0 + rows
            if self._vec_width.setdefault(tid, width) != width:
                continue
            size = rows * width * itemsize + 4 * rows
            if self.vector_bytes + size > budget:
                self.vectors_stopped = f"max_vector_bytes ({budget:,} bytes) reached at {self.tensors[tid].key}"
                if self.current_trial is not None:
                    self.current_trial.vectors_dropped = {"step": step.index, "reason": self.vectors_stopped}
                return
            step.vectors[tid] = stored[first : first + rows * width].reshape(rows, width)
            step.vector_scales[tid] = scale
            self.vector_bytes += size

    def check_lost_mass(self, lost: float) -> None:
        """Attention probability beyond the cropped sequence means KV cells are not positions."""
        if lost > 1e-3:
            self.record_error(f"attention mass {lost:.3g} beyond the sequence (KV cells are not positions)")

    # ----- what the decode loop tells it --------------------------------------------------------
    def expect_batch(self, token_ids: list[int], positions: list[int]) -> None:
        self._pending = (token_ids, positions, 0)
        self.graph = None  # the next node starts a new graph

    def batch_done(self) -> None:
        self._pending = None

    def close_graph_timing(self) -> None:
        trial = self.current_trial
        if trial and trial.steps and trial.steps[-1].ms is None and self._pending is None and self.graph:
            trial.steps[-1].ms = (time.perf_counter() - self._graph_t0) * 1000

    def token_text(self, token: int) -> str:
        model = self.model
        if model is None:
            return ""
        text = self._texts.get(token)
        if text is None:
            try:
                text = model.detokenize([token], special=True).decode("utf-8", "replace")
            except Exception:  # noqa: BLE001 - a special token with no text
                text = ""
            self._texts[token] = text
        return text

    # ----- internals ------------------------------------------------------------------------------
    def _phase(self, trial: TrialData, n_tokens: int) -> str:
        if self.model is not None:
            return "decode" if self._sampled_any else "prefill"
        return "prefill" if not trial.steps or (n_tokens > 1 and trial.steps[-1].phase == "prefill") else "decode"

    def _add(self, ptr: int, t: _ggml.GgmlTensor, raw: bytes, key: tuple[Any, ...], g: Graph) -> int:
        name = raw.decode("utf-8", "replace") or "(unnamed)"
        parsed = parse_name(name)
        op = _ggml.op_desc(ptr)
        layer, base = parsed.layer, parsed.base
        if layer is None or parsed.unnamed:
            layer, base = self._attribute(t, op, base, g)
        if not parsed.unnamed:
            g.anchor_layer = layer
        seen = self._variants.setdefault(layer, ({}, {}))
        ttype = variant_type(base, op, seen[0], seen[1])
        category, depth = type_info(ttype)
        tid = len(self.tensors)
        ukey = self._unique_key(name if key[1] == 0 or parsed.unnamed else f"{name}#{key[1]}")
        info = TensorInfo(
            id=tid,
            key=ukey,
            name=name,
            op=op,
            dtype=_ggml.type_name(t.type),
            shape=list(_ggml.shape(t)),
            layer=layer,
            type=ttype,
            category=category,
            depth=depth,
            order=tid,
            view=parsed.view or op in ("VIEW", "RESHAPE", "PERMUTE", "TRANSPOSE"),
            captured=False,
        )
        info.captured = self.preset.wants(name, ttype, category, info.view)
        info.vector = (  # activations are float32; float16 nodes are the KV cache and its views, not token rows
            info.captured
            and t.type == _ggml.GGML_TYPE_F32
            and ttype not in ROW_AXIS_FROM_END
            and self.preset.wants_vector(name, ttype, category, info.view)
        )
        self.tensors.append(info)
        self._want.append(info.captured)
        self._vec.append(info.vector)
        self._tids[key] = tid
        return tid

    def _attribute(self, t: _ggml.GgmlTensor, op: str, base: str, g: Graph) -> tuple[int, str]:
        """Layer and type of a node with no layer in its name, from its sources.

        A weight source names it (``blk.0.attn_output.weight`` -> layer 0, attn_out);
        otherwise it takes the layer of its graph sources and, when unnamed, the type
        of its first one (``SCALE(Qcur)`` -> ``Qcur.scale``). A bare ``norm`` of the
        last residual stream is the final norm.
        """
        srcs: list[TensorInfo] = []
        for src in _ggml.src_pointers(t):
            tid = g.ptr_tid.get(src)
            if tid is not None:
                srcs.append(self.tensors[tid])
                continue
            src_name = _ggml.tensor(src).name.decode("utf-8", "replace")
            weight = parse_weight(src_name)
            if weight is not None and op in ("MUL_MAT", "MUL_MAT_ID", "MUL", "ADD"):
                return weight[0] if weight[0] is not None else g.anchor_layer, base or weight[1]
            if src_name == "inp_out_ids" and op == "GET_ROWS":
                base = base or "out_rows"
        if base == "norm" and srcs and srcs[0].type in ("l_out", "out_rows"):
            return FINAL_NORM_LAYER, base
        block = [s.layer for s in srcs if 0 <= s.layer < FINAL_NORM_LAYER]
        layer = max(block) if block else (srcs[0].layer if srcs else g.anchor_layer)
        if not base and srcs:
            base = srcs[0].type.split(".", 1)[0]
        return layer, base or "other"

    def _unique_key(self, key: str) -> str:
        out, n = key, 1
        while out in self._keys:
            n += 1
            out = f"{key}~{n}"
        self._keys.add(out)
        return out

    def _attention(self, arr: np.ndarray, step: Step) -> dict[str, Any]:
        """Top-k positions, probabilities and entropy per head and token row, padding cropped."""
        probs = arr.reshape((-1,) + arr.shape[-2:])  # (head, token, kv)
        n_real = min(step.pos + step.n_tokens, probs.shape[-1])
        cropped = probs[..., :n_real]
        out = drop_future(attention_summary(cropped, self.preset.top_k), step.pos)
        out["n_kv"] = n_real
        self.check_lost_mass(float(probs[..., n_real:].sum(axis=-1).max()) if probs.shape[-1] > n_real else 0.0)
        if self.preset.full_attention:
            out["full"] = cropped.astype(np.float32).copy()
        return out

    def _log(self, message: str) -> None:
        if self.verbose:
            print(f"[Spectra Vis] {message}")


def _token_rows(arr: np.ndarray, n_tokens: int, axis_from_end: int | None) -> np.ndarray | None:
    """The tensor as (n_tokens, -1) rows when it has a token axis of that size, else None."""
    if n_tokens <= 1 or arr.ndim < 2:
        return None
    axis = arr.ndim - axis_from_end if axis_from_end else 0
    if axis < 0 or arr.shape[axis] != n_tokens:
        return None
    return np.moveaxis(arr, axis, 0).reshape(n_tokens, -1)


def _vector_rows(arr: np.ndarray, n_tokens: int) -> np.ndarray | None:
    """The tensor as (m, width) token rows: m == n_tokens along axis 0, or a single row (the last
    token: the output row of the last layer, or a one-token step); else None."""
    if arr.ndim == 1:  # one row (ggml's shape drops size-1 dims): the step's last token
        return arr.reshape(1, -1)
    if arr.ndim < 2 or not (arr.shape[0] == n_tokens or (arr.ndim == 2 and arr.shape[0] == 1)):
        return None
    return arr.reshape(arr.shape[0], -1)


F16_LIMIT = 32768.0  # rows are scaled so that no stored value is above this (float16's max is 65504)


def _f16_packed(vals: np.ndarray, meta: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """``vals`` as float16 and every row's scale, in ``meta`` order (node by node): a power of two that
    brings it inside float16's range (1 for almost every row; Gemma's residual stream reaches 1e5),
    stored = row / scale. Powers of two scale without rounding anything."""
    m = np.asarray(meta, dtype=np.int64).reshape(-1, 4)
    counts, widths = m[:, 2], np.repeat(m[:, 3], m[:, 2])
    row_in_node = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    starts = (np.repeat(m[:, 1], counts) + row_in_node * widths).astype(np.intp)
    absmax = np.maximum.reduceat(np.abs(vals), starts) if len(vals) else np.zeros(0, dtype=np.float32)
    finite = np.where(np.isfinite(absmax), absmax, 0.0)
    frac, exp = np.frexp(np.maximum(finite, F16_LIMIT) / F16_LIMIT)  # = frac * 2^exp, frac in [0.5, 1)
    scale = np.ldexp(np.float32(1.0), np.where(frac == 0.5, exp - 1, exp)).astype(np.float32)
    if (scale == 1.0).all():
        stored = vals.astype(np.float16)
    else:  # rare: a row past float16's range
        stored = (vals / np.repeat(scale, widths)).astype(np.float16)
    return stored, scale
