"""Capture stage: the native (C) eval callback driving a TensorCollector.

The C callback (``native/spectra_native.c`` via ``_native``) asks, counts and computes
statistics, attention summaries and top logits for every node without entering Python.
This module gives it what only Python knows, and nothing per node:

- a new graph: the collector's ``_new_graph`` makes the Step (tokens, phase, position);
- a node C has never seen at its place in a graph: the collector's own keying and
  catalogue registration (``_node_tid``), after replaying the nodes C handled before it;
- a read C cannot do (non-host buffers, other dtypes, full attention matrices, a
  subclass's own ``_attention``): the collector's ``_read_node``;
- once per step, what C produced moves into the Step; at the end of a trial, the counts.

The result is the capture the Python callback makes (tests compare both). The hooks
C calls catch everything: nothing propagates into C. They hold the callback object
weakly, so dropping it frees the C state (``weakref.finalize``).
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable
from typing import Any

from spectra_vis.capturing import _ggml, _native
from spectra_vis.capturing.collector import LOGITS_TOP_K, ROW_AXIS_FROM_END, TensorCollector, _next_key
from spectra_vis.record.records import Step, TrialData
from spectra_vis.record.stats import drop_future

PYTHON_HOOKS = ("record_tensor", "_on_ask", "_on_data", "_read_node")
_warned: list[str] = []


def native_callback(collector: TensorCollector, native: bool | None = None) -> Any | None:
    """A cb_eval running the C callback for ``collector``, or None for the Python one.

    None when ``native`` is False, when ``SPECTRA_VIS_NATIVE=0`` (and ``native`` is not
    True), when the collector's class overrides a per-node Python hook, or when the C
    callback cannot be built (a warning, once). ``native=True`` raises instead.
    """
    if native is False or (native is None and not _native.enabled_by_env()):
        return None
    custom = [h for h in PYTHON_HOOKS if getattr(type(collector), h) is not getattr(TensorCollector, h)]
    if custom:
        if native:
            names = ", ".join(custom)
            raise ValueError(f"{type(collector).__name__} overrides {names}: only the Python callback runs it")
        return None
    try:
        engine = NativeCallback(collector)
    except _native.NativeUnavailable as exc:
        if native:
            raise
        if not _warned:
            _warned.append(str(exc))
            warnings.warn(
                f"Spectra Vis: the native capture callback is unavailable ({exc}); using the Python one, "
                "which slows decoding by about 10% or more",
                RuntimeWarning,
                stacklevel=3,
            )
        return None
    from llama_cpp import llama_cpp

    callback = llama_cpp.ggml_backend_sched_eval_callback(engine.state.callback_address)
    callback.native = engine  # type: ignore[attr-defined]
    return callback


def _hook(ref: weakref.ref[NativeCallback], name: str, default: Any) -> Callable[..., Any]:
    """What C calls: the engine's method ``name``, guarded by its collector (never raises)."""

    def call(*args: Any) -> Any:
        engine = ref()
        return default if engine is None else engine.collector.guarded(default, getattr(engine, name), *args)

    return call


class NativeCallback:
    """The C state of one collector and the Python side of its protocol."""

    def __init__(self, collector: TensorCollector) -> None:
        self.collector = collector
        ref = weakref.ref(self)
        self.state = _native.NativeState(
            _hook(ref, "_on_graph", 0), _hook(ref, "_on_node", -1), _hook(ref, "_on_data", None), LOGITS_TOP_K
        )
        weakref.finalize(self, self.state.free)
        self._step: Step | None = None
        self._seen = 0  # nodes of this graph the collector's _Graph has been advanced past
        self._python_attention = type(collector)._attention is not TensorCollector._attention
        collector._native = self
        collector.callback_kind = "native"

    # ----- called by the collector -------------------------------------------------------
    def start_trial(self) -> None:
        self.state.take_output()
        self.state.reset_counts()
        self.state.boundary()
        self._step = None

    def boundary(self) -> None:
        self.state.boundary()

    def end_trial(self, trial: TrialData) -> None:
        self.flush()
        counts = self.state.counts()
        trial.counts = {int(i): int(counts[i]) for i in counts.nonzero()[0]}
        self.state.boundary()
        self._step = None

    def flush(self) -> None:
        """Move what C produced for the current step into its Step."""
        out = self.state.take_output()
        if out is None:
            return
        c = self.collector
        c.total_callbacks += out.calls
        if out.n_errors:
            more = f" (and {out.n_errors - 1} more)" if out.n_errors > 1 else ""
            c._error(f"native callback: {out.error}{more}")
        step = self._step
        if step is None:
            return
        if out.stat_vals is not None:
            step.stats.update(zip(out.stat_tids, out.stat_vals, strict=True))
        if out.row_vals is not None:
            for tid, first, n in out.rowsets:
                step.rows[tid] = out.row_vals[first : first + n]
        if out.att_p is not None and out.att_pos is not None and out.att_ent is not None:
            # Views into the step's copied-out arrays, no Python list per tensor: this runs every token.
            pos_all, p_all, ent_all = out.att_pos, out.att_p, out.att_ent
            for tid, heads, rows, k, n_kv, po, eo in out.att_meta:
                n = heads * rows * k
                att = {
                    "pos": pos_all[po : po + n].reshape(heads, rows, k),
                    "p": p_all[po : po + n].reshape(heads, rows, k),
                    "entropy": ent_all[eo : eo + heads * rows].reshape(heads, rows),
                    "n_kv": n_kv,
                }
                step.attention[tid] = drop_future(att, step.pos)
            if out.att_lost:
                c._check_lost_mass(max(out.att_lost))
        if out.logit_ids is not None:
            step.logits = {"ids": out.logit_ids, "logits": out.logit_vals}

    # ----- called by C (through _hook, which keeps anything from propagating into C) ----------
    def _on_graph(self, ptr: int) -> int:
        c = self.collector
        self.flush()
        self._step, self._seen = None, 0
        if not c.enabled or c.current_trial is None:
            return 0
        g = c._new_graph(_ggml.tensor(ptr))
        assert g.step is not None
        self._step = g.step
        self.state.set_step(g.step.pos, g.step.n_tokens, c.preset.top_k)
        return 1

    def _on_node(self, ptr: int, pos: int) -> int:
        c = self.collector
        g = c._graph
        if g is None:
            return -1
        seen, self._seen = self._seen, pos + 1  # past this node even if what follows fails
        if seen < pos:
            ptrs, tids = self.state.prefix(seen, pos)
            for p, tid in zip(ptrs, tids, strict=True):
                _next_key(g, _ggml.tensor(p).name)
                g.ptr_tid[p] = tid
        t = _ggml.tensor(ptr)
        tid = c._node_tid(ptr, t, t.name, g)
        return tid | (self._flags(tid) << 32)

    def _on_data(self, ptr: int, tid: int) -> None:
        if self._step is not None:
            self.collector._read_node(ptr, tid, self._step)

    def _flags(self, tid: int) -> int:
        c = self.collector
        ttype = c.tensors[tid].type
        flags = _native.WANT if c._want[tid] else 0
        if ttype == "kq_soft_max":
            flags |= _native.ATTN
            if c.preset.full_attention or self._python_attention:
                flags |= _native.PYDATA
        if ttype == "result_output":
            flags |= _native.LOGITS
        if ttype in ROW_AXIS_FROM_END:
            flags |= _native.ROWAX1
        return flags
