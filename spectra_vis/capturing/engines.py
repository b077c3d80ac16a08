"""Capture stage: the engine protocol, and the Python engine.

An engine is what llama.cpp's eval callback calls. It drives a ``Recorder`` through its public
methods and nothing else. Two engines exist: ``PythonEngine`` here (every node through Python)
and ``native_engine.NativeEngine`` (the C callback; Python only for what C cannot do). Both make
the same capture; ``collector.create_callback`` picks one.
"""

from __future__ import annotations

from typing import Any, Protocol

from spectra_vis.capturing import _ggml
from spectra_vis.capturing.recorder import GRAPH_START_NAMES, Recorder
from spectra_vis.record.records import TrialData


class Engine(Protocol):
    """What the collector tells an engine, and the ctypes ``cb_eval`` llama.cpp calls."""

    kind: str  # "python" or "native"
    callback: Any

    def start_trial(self) -> None:
        """A trial begins: forget any state of the last one."""

    def boundary(self) -> None:
        """A decode batch is about to be evaluated: the next node starts a new graph."""

    def flush(self) -> None:
        """A decode batch was evaluated: everything read for it is in its steps afterwards."""

    def end_trial(self, trial: TrialData) -> None:
        """The trial ends: its node counts are in ``trial.counts`` afterwards."""


class PythonEngine:
    """Every ask and data call through Python: ``Recorder.register`` and ``Recorder.read``."""

    kind = "python"

    def __init__(self, recorder: Recorder) -> None:
        from llama_cpp import llama_cpp

        self.recorder = recorder

        @llama_cpp.ggml_backend_sched_eval_callback
        def callback(tensor_ptr: int, ask: bool, _user_data: int) -> bool:
            return self.on_eval(tensor_ptr, ask)

        self.callback = callback

    def on_eval(self, ptr: int, ask: bool) -> bool:
        """The eval callback. Never raises; True in the data phase always (False corrupts the logits)."""
        rec = self.recorder
        default = not ask  # read nothing when in doubt; never abort the data phase
        if not rec.recording:
            return default
        rec.total_callbacks += 1
        return bool(rec.guarded(default, self._ask if ask else self._data, ptr))

    def _ask(self, ptr: int) -> bool:
        rec = self.recorder
        t = _ggml.tensor(ptr)
        g = rec.graph
        start = t.name in GRAPH_START_NAMES
        if g is None or start and g.started:  # Granite's graph opens with an unnamed GET_ROWS, then embd
            g = rec.new_graph(t)
        g.started = g.started or start
        tid = rec.register(ptr, t, g)
        rec.count(tid)
        return rec.wants(tid)

    def _data(self, ptr: int) -> bool:
        g = self.recorder.graph
        tid = g.ptr_tid.get(ptr) if g else None
        if g is not None and tid is not None and g.step is not None:
            self.recorder.read(ptr, tid, g.step)
        return True

    # the counts are kept as nodes are asked; nothing is buffered
    def start_trial(self) -> None:
        pass

    def boundary(self) -> None:
        pass

    def flush(self) -> None:
        pass

    def end_trial(self, trial: TrialData) -> None:
        pass
