"""Capture stage: the native engine, the C eval callback driving a ``Recorder``.

The C callback (``native/spectra_native.c`` via ``_native``) asks, counts and computes
statistics, attention summaries and top logits for every node without entering Python.
This module gives it what only Python knows, and nothing per node:

- a new graph: ``Recorder.new_graph`` makes the Step (tokens, phase, position);
- a node C has never seen at its place in a graph: ``Recorder.register``, after replaying
  the nodes C handled before it (``Graph.skip``);
- a read C cannot do (non-host buffers, other dtypes, full attention matrices) or one that
  ``on_tensor`` hooks must see: ``Recorder.read``;
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
from spectra_vis.capturing.recorder import LOGITS_NODE, LOGITS_TOP_K, ROW_AXIS_FROM_END, Recorder
from spectra_vis.record.records import Step, TrialData
from spectra_vis.record.stats import drop_future

_warned: list[str] = []


def native_engine(recorder: Recorder, native: bool | None = None) -> NativeEngine | None:
    """The C engine for ``recorder``, or None for the Python one.

    None when ``native`` is False, when ``SPECTRA_VIS_NATIVE=0`` (and ``native`` is not True), or
    when the C callback cannot be built (a warning, once). ``native=True`` raises instead.
    """
    if native is False or (native is None and not _native.enabled_by_env()):
        return None
    try:
        return NativeEngine(recorder)
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


def _hook(ref: weakref.ref[NativeEngine], name: str, default: Any) -> Callable[..., Any]:
    """What C calls: the engine's method ``name``, guarded by its recorder (never raises)."""

    def call(*args: Any) -> Any:
        engine = ref()
        return default if engine is None else engine.recorder.guarded(default, getattr(engine, name), *args)

    return call


class NativeEngine:
    """The C state of one recorder and the Python side of its protocol."""

    kind = "native"

    def __init__(self, recorder: Recorder) -> None:
        from llama_cpp import llama_cpp

        self.recorder = recorder
        ref = weakref.ref(self)
        self.state = _native.NativeState(
            _hook(ref, "_on_graph", 0), _hook(ref, "_on_node", -1), _hook(ref, "_on_data", None), LOGITS_TOP_K
        )
        weakref.finalize(self, self.state.free)
        self.callback = llama_cpp.ggml_backend_sched_eval_callback(self.state.callback_address)
        self._step: Step | None = None
        self._seen = 0  # nodes of this graph the recorder's Graph has been advanced past

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
        rec = self.recorder
        rec.total_callbacks += out.calls
        if out.n_errors:
            more = f" (and {out.n_errors - 1} more)" if out.n_errors > 1 else ""
            rec.record_error(f"native callback: {out.error}{more}")
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
                rec.check_lost_mass(max(out.att_lost))
        if out.logit_ids is not None:
            step.logits = {"ids": out.logit_ids, "logits": out.logit_vals}
        if out.vec_vals is not None:
            rec.keep_packed(out.vec_vals, out.vec_meta, step, out.vec_scales)

    # ----- called by C (through _hook, which keeps anything from propagating into C) ----------
    def _on_graph(self, ptr: int) -> int:
        rec = self.recorder
        self.flush()
        self._step, self._seen = None, 0
        if not rec.recording:
            return 0
        g = rec.new_graph(_ggml.tensor(ptr))
        assert g.step is not None
        self._step = g.step
        self.state.set_step(g.step.pos, g.step.n_tokens, rec.preset.top_k)
        self.state.set_vec_f16(rec.preset.vector_dtype == "f16")
        return 1

    def _on_node(self, ptr: int, pos: int) -> int:
        rec = self.recorder
        g = rec.graph
        if g is None:
            return -1
        seen, self._seen = self._seen, pos + 1  # past this node even if what follows fails
        if seen < pos:
            ptrs, tids = self.state.prefix(seen, pos)
            for p, tid in zip(ptrs, tids, strict=True):
                g.skip(p, _ggml.tensor(p).name, tid)
        tid = rec.register(ptr, _ggml.tensor(ptr), g)
        return tid | (self._flags(tid) << 32)

    def _on_data(self, ptr: int, tid: int) -> None:
        if self._step is None:
            return
        if tid & _native.DONE_BIT:  # C has the statistics: only the rows are Python's
            self.recorder.keep_vector(ptr, tid & ~_native.DONE_BIT, self._step)
        else:
            self.recorder.read(ptr, tid, self._step)

    def _flags(self, tid: int) -> int:
        """What C does with node ``tid``; its data phase is Python's when the recorder has
        ``on_tensor`` hooks (they see every array) or keeps full attention matrices."""
        rec = self.recorder
        ttype = rec.tensors[tid].type
        wanted = rec.wants(tid)
        flags = _native.WANT if wanted else 0
        if wanted and rec.hooks:
            flags |= _native.PYDATA
        if rec.keeps_vector(tid):
            flags |= _native.VEC
        if ttype == "kq_soft_max":
            flags |= _native.ATTN
            if rec.preset.full_attention:
                flags |= _native.PYDATA
        if rec.tensors[tid].name == LOGITS_NODE:
            flags |= _native.LOGITS
        if ttype in ROW_AXIS_FROM_END:
            flags |= _native.ROWAX1
        return flags
