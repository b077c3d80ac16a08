"""The running run's capture so far, as an ordinary (in-memory) Capture the views can read.

Nothing is copied while nobody asks: a reader calls ``PartialCapture.get``, which raises a flag; the
decoding thread sees it at its next finished step (``take``) and copies what the capture needs
(the finished trials, the current one's steps so far and its tokens) in that thread, so the copy
never races the collector; the reader then builds the Capture from that copy in its own thread. A
snapshot younger than ``max_age`` is served again without asking.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import Any

from spectra_vis.capturing._ggml import llama_cpp_version
from spectra_vis.capturing.collector import TensorCollector, _vector_arrays
from spectra_vis.record.records import TrialData
from spectra_vis.store.capture_file import Capture

MAX_AGE = 0.5  # seconds a snapshot is served again before a newer one is asked for
WAIT = 3.0  # seconds a reader waits for the decoding thread's next step


@dataclass
class Snapshot:
    capture: Capture
    serial: int  # increases with each snapshot of the run
    steps: int  # steps in all its trials
    taken: float


@dataclass
class _Parts:
    model: dict[str, Any]
    preset: dict[str, Any]
    n_ctx: int | None
    tensors: list[dict[str, Any]]
    trials: list[TrialData]


class PartialCapture:
    def __init__(self) -> None:
        self._wanted = False
        self._ready = threading.Event()
        self._parts: _Parts | None = None
        self._lock = threading.Lock()  # one reader builds at a time
        self.last: Snapshot | None = None

    @property
    def wanted(self) -> bool:
        return self._wanted

    def take(self, collector: TensorCollector, current: TrialData | None) -> None:
        """In the decoding thread, when a reader asked: copy the trials so far (``current`` with
        its steps so far, its tokens made as ending the trial would make them)."""
        if not self._wanted:
            return
        trials = list(collector.trials)
        if current is not None and current.steps:
            steps, sampled = list(current.steps), list(current.sampled)
            cur = replace(current, steps=steps, sampled=sampled, errors=list(current.errors))
            collector._finish_tokens(cur)  # noqa: SLF001 - the collector's own rule for a trial's tokens
            cur.counts = _counts(cur)
            trials.append(cur)
        c = collector
        card = c.model_card.to_dict() if c.model_card is not None else c._unknown_card()  # noqa: SLF001
        self._parts = _Parts(card, c.preset.to_dict(), c.n_ctx, [t.to_dict() for t in c.tensors], trials)
        self._wanted = False
        self._ready.set()

    def get(
        self, running: bool, options: dict[str, Any], max_age: float = MAX_AGE, wait: float = WAIT
    ) -> Snapshot | None:
        """The newest snapshot: a new one when the run is running and the last is older than
        ``max_age`` (waiting up to ``wait`` s for the decoding thread), else the last (None: none)."""
        with self._lock:
            last = self.last
            if running and (last is None or time.time() - last.taken >= max_age):
                self._ready.clear()
                self._wanted = True
                if self._ready.wait(wait) and self._parts is not None:
                    self.last = _build(self._parts, options, 1 if last is None else last.serial + 1)
                    self._parts = None
            return self.last


def _counts(trial: TrialData) -> dict[int, int]:
    """Per tensor, the steps that read it (a trial's counts are only known at its end)."""
    out: dict[int, int] = {}
    for s in trial.steps:
        for tid in set(s.stats) | set(s.rows) | set(s.attention):
            out[tid] = out.get(tid, 0) + 1
    return out


def _build(parts: _Parts, options: dict[str, Any], serial: int) -> Snapshot:
    n = len(parts.tensors)
    cap = Capture.build(
        model=parts.model,
        preset=parts.preset,
        options={"n_ctx": parts.n_ctx, **options},
        tensors=parts.tensors,
        trials=[t.to_dict(n) for t in parts.trials],
        llama_cpp_python=llama_cpp_version(),
        arrays=_vector_arrays(parts.trials),
    )
    return Snapshot(cap, serial, sum(len(t.steps) for t in parts.trials), time.time())
