"""The comparisons ``GET /api/compare`` serves, their next-token blocks computed in the background.

A comparison answers at once with every part that needs no model file (statistics, residual
cosine and relative L2, and the next-token block of a stored pair or of a trial compared with
itself through its logit lens). Where the block needs a pass over both output heads (KL over the
whole vocabulary: seconds for Gemma's 262k tokens), the first answer has ``next_token`` null and
``next_token_progress`` set; one worker thread runs the passes one after the other, never two for
the same comparison, and the comparison takes the block when it is done (the first answer never
does: it is always the one without the block). The heads are opened for
the pass and dropped after it (they are memory-mapped GGUF data: the resident memory falls back).
A pass that fails becomes a notice of the comparison, never an error response.
"""

from __future__ import annotations

import ctypes
import gc
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from spectra_vis.analysis.payloads import NextTokenProgress
from spectra_vis.capturing.lens import LogitLens
from spectra_vis.comparing import Comparison, NextTokenInputs, compare, trial_model
from spectra_vis.comparing.next_token import Block
from spectra_vis.store.capture_file import Capture

JobKey = tuple[str, int, str, int]  # capture id and trial of a, of b
HeadPaths = Callable[..., list[Path] | None]  # model file names -> their paths, None when not all readable


@dataclass
class HeadJob:
    """One pass over the heads: its progress (blocks of the vocabulary), then its block or error."""

    done: int = 0
    total: int = 0
    block: Block | None = None
    error: str | None = None
    finished: threading.Event = field(default_factory=threading.Event)

    def progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total


class CompareJobs:
    """The head passes of a server, run by one daemon worker thread in the order they came."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[JobKey, HeadJob] = {}
        self._queue: queue.Queue[tuple[JobKey, HeadJob, NextTokenInputs, tuple[Path, Path]]] = queue.Queue()
        self._worker: threading.Thread | None = None
        self.started = 0  # jobs queued since the server started

    def submit(self, key: JobKey, inputs: NextTokenInputs, paths: tuple[Path, Path]) -> HeadJob:
        """The job of comparison ``key``: the one queued or running, else a new one."""
        with self._lock:
            job = self._pending.get(key)
            if job is None:
                job = self._pending[key] = HeadJob()
                self.started += 1
                self._queue.put((key, job, inputs, paths))
                if self._worker is None:
                    self._worker = threading.Thread(target=self._work, name="compare-heads", daemon=True)
                    self._worker.start()
            return job

    def _work(self) -> None:
        while True:
            key, job, inputs, paths = self._queue.get()
            try:
                job.block = _head_pass(inputs, paths, job.progress)
            except Exception as exc:  # noqa: BLE001 - any failure of a model file or of the pass: a notice
                job.error = " ".join(f"{type(exc).__name__}: {exc}".split())
            finally:
                del inputs
                with self._lock:
                    self._pending.pop(key, None)
                job.finished.set()
                gc.collect()  # the heads' memory maps go now, not at some later collection
                _trim()


def _trim() -> None:
    """Give the heap's free memory back to the system (glibc; elsewhere nothing): the pass's
    blocks of logits and weights (tens of MB each) would otherwise stay resident."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _head_pass(inputs: NextTokenInputs, paths: tuple[Path, Path], on_block: Callable[[int, int], None]) -> Block:
    """The block through both models' heads, opened here and dropped on return (one head when both
    sides are the same model file)."""
    head_a = LogitLens.from_gguf(paths[0])
    head_b = head_a if paths[0] == paths[1] else LogitLens.from_gguf(paths[1])
    return inputs.compute((head_a, head_b), on_block)


class ComparisonEntry:
    """A comparison as the server caches it: the Comparison, and its head pass while one is pending."""

    def __init__(self, cmp: Comparison, capture_ids: tuple[str, str], job: HeadJob | None) -> None:
        self.cmp = cmp
        self.capture_ids = capture_ids
        self._job = job
        self._out: bytes | None = None  # the comparison's JSON without next_token_progress
        self._served = False  # the first answer is always the one without the pending block
        self._lock = threading.Lock()

    def body(self) -> bytes:
        """The comparison as it stands (``ComparisonOut`` as JSON): with the block once its pass is done
        (or a notice saying why there is none), else ``next_token_progress``. The first answer never
        waits for nor takes the block, however quick its pass: a client meets the same sequence
        whatever the machine. Serialised once per state: a client polling the progress costs the
        server (and the pass it runs) next to nothing."""
        with self._lock:
            job = self._job
            if job is not None and job.finished.is_set() and self._served:
                if job.block is not None:
                    self.cmp.next_token = job.block
                else:
                    self.cmp.notices.append(f"the next-token comparison failed: {job.error}")
                self.cmp.pending = None
                self._job, self._out, job = None, None, None
            if self._out is None:
                out: dict[str, Any] = dict(self.cmp.to_dict())
                out["a"]["capture_id"], out["b"]["capture_id"] = self.capture_ids
                del out["next_token_progress"]  # added last, as it stands
                self._out = orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
            progress: NextTokenProgress | None = None if job is None else {"done": job.done, "total": job.total}
            self._served = True
            return self._out[:-1] + b',"next_token_progress":' + orjson.dumps(progress) + b"}"


def start_comparison(
    jobs: CompareJobs, head_paths: HeadPaths, side_a: tuple[str, Capture, int], side_b: tuple[str, Capture, int]
) -> ComparisonEntry:
    """Compare trial ``side_a`` (capture id, capture, trial; the reference) with ``side_b`` without a
    head pass, and queue the pass where the block needs one and both models are readable."""
    (id_a, cap_a, trial_a), (id_b, cap_b, trial_b) = side_a, side_b
    cmp = compare(cap_a, trial_a, cap_b, trial_b, defer_heads=True)
    job = None
    if cmp.pending is not None:
        names = [trial_model(cap_a, trial_a).get("file_name") or "", trial_model(cap_b, trial_b).get("file_name") or ""]
        paths = head_paths(*names) if all(names) else None
        if paths is None:
            cmp.pending = None
            want = f"put {names[0]} and {names[1]} in the models directory" if all(names) else "no model file named"
            cmp.notices.append(f"the next-token comparison (KL) needs both models' output heads: {want}")
        else:
            job = jobs.submit((id_a, trial_a, id_b, trial_b), cmp.pending, (paths[0], paths[1]))
    return ComparisonEntry(cmp, (id_a, id_b), job)
