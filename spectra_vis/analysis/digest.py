"""Analysis stage: what the views need of every step of a trial, computed in one pass and kept.

A view of a whole trial (the layers x tokens heat map, the interpretation's zones and states, the
trial's step list, the analysis's means) would otherwise read every step of the capture at its
first request: seconds on a long trial. ``digest(cap, trial_id)`` reads each step once, computes
those numbers and keeps them: in the capture's index file (``store.index_file``, beside it, memory-
mapped: a loaded capture holds what the views ask for, not the file) when the capture was loaded
from a file lazily, else in memory. ``prepare(cap)`` does every trial (the server, when it loads a
capture; ``spectra-vis index``, with a progress bar). The steps are read in runs and each run is
computed with numpy (``digest_build``). ``keep_index``, run after every save, writes the index from
the capture in memory and the step ranges the writer counted: the file is not read back. Per trial:

- ``tok``: float64 ``[tensor, stat, position]``: the statistics of each token's row, from the
  first step that has one (the layers x tokens heat map); NaN where none
- ``l2``: float64 ``[step, tensor]``: the first number of each tensor's statistics per step (the
  delta bar); NaN where the step has none
- ``sum``, ``cnt``: ``[tensor, stat]`` sums and counts of each finite statistic over the steps
- ``cdi``, ``cdv``: where the comparison's per-token statistics (``token_stats_step``: the last
  step's one-token statistics or per-token rows) differ from ``tok``: int64 ``[k, 2]`` (row,
  position) and float64 ``[k, stat]`` their values; few (a prefill's output-only rows), so that
  ``TrialDigest.token_stats`` gives the comparing stage exactly what a walk of the steps gives
- ``ids``: the tensor ids of those rows; metadata: each step's summary, state and token zones
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from spectra_vis.analysis.digest_build import Run, TrialBuilder, TrialDigest, token_stats_step
from spectra_vis.errors import CaptureError
from spectra_vis.store import capture_file, index_file
from spectra_vis.store.capture_file import Capture, trial_of
from spectra_vis.store.lazy import LazySteps
from spectra_vis.store.scan import TrialLayout

__all__ = ["TrialDigest", "digest", "keep_index", "prepare", "step_of_token", "token_stats_step", "write_index"]

VERSION = 3
COLUMNS = ("apos", "ap", "aent", "akv")
RUN = 256  # steps in memory digested at a time
_LOCK = threading.Lock()
Progress = Callable[[int, int], None]  # (steps digested, steps in the capture)


def digest(cap: Capture, trial_id: int, progress: Progress | None = None) -> TrialDigest:
    """The trial's digest: from the index file or memory when there, else computed (and kept).
    ``progress``: told how many steps are digested while they are (when they have to be)."""
    trial_of(cap.data, trial_id)
    kept = cap.derived.get("digest")
    if kept is None:
        with _LOCK:
            kept = cap.derived.get("digest")
            if kept is None:
                kept = _restore(cap) or _compute_all(cap, progress)
                cap.derived["digest"] = kept
    return kept[trial_id]  # type: ignore[no-any-return]


def prepare(cap: Capture, progress: Progress | None = None) -> None:
    """Every trial's digest, now (reading the index file, or every step once and writing it)."""
    if cap.data["trials"] and not cap.legacy:
        digest(cap, 0, progress)


def needs_build(cap: Capture) -> bool:
    """Whether ``prepare`` has to read the steps (no usable index file, nothing computed yet)."""
    if cap.legacy or not cap.data["trials"] or cap.derived.get("digest") is not None:
        return False
    index = cap.index
    return index is None or index.derived.get("version") != VERSION


def keep_index(cap: Capture, path: Path, layout: list[TrialLayout]) -> str | None:
    """After ``cap`` was saved to ``path`` (``capture_file.SAVED``, with where each step lies in
    the bytes written): write the index file and every trial's digest beside it, computed from the
    capture in memory (the file is not read back), so that the server's first load of it reads no
    step. It equals the index a load of the file alone builds. A notice instead of an error when
    that fails (the server then builds the index on first load, as for a capture saved elsewhere)."""
    if cap.legacy or not cap.data["trials"]:
        return None
    try:
        lazy = any(isinstance(t["steps"], LazySteps) for t in cap.data["trials"])
        kept = cap.derived.get("digest") if lazy else None  # a lazy capture's digest has the index's rows
        notices: list[str] = []
        with _no_gc():
            digests = kept or [_compute(cap, i, notices, _ids_of(cap.data)) for i in range(len(cap.data["trials"]))]
        write_index(path, layout, digests, notices)
    except (OSError, CaptureError, ValueError) as exc:
        return f"no index file written beside {path.name} ({exc}): the first load builds it"
    return None


capture_file.SAVED[:] = [h for h in capture_file.SAVED if getattr(h, "__name__", "") != "keep_index"] + [keep_index]


def write_index(path: Path, layout: list[TrialLayout], digests: list[TrialDigest], notices: list[str]) -> None:
    """The index file beside capture ``path``: its step ranges and every trial's digest."""
    arrays: dict[str, np.ndarray] = {}
    for i, d in enumerate(digests):
        arrays.update({f"t{i}.ids": d.ids, f"t{i}.tok": d.tok, f"t{i}.l2": d.l2, f"t{i}.sum": d.sums,
                       f"t{i}.cnt": d.counts})  # fmt: skip
        if d.cmp_at is not None and d.cmp_val is not None:
            arrays.update({f"t{i}.cdi": d.cmp_at, f"t{i}.cdv": d.cmp_val})
        arrays.update({f"t{i}.{k}": v for k, v in (d.columns or {}).items()})
    meta = {"version": VERSION, "notices": notices, "trials": [
        {"steps": d.steps, "states": d.states, "zones": d.zones, "n_head": d.n_head} for d in digests
    ]}  # fmt: skip
    index_file.write(path, layout, arrays, meta)


def _restore(cap: Capture) -> list[TrialDigest] | None:
    index = cap.index
    if index is None or index.derived.get("version") != VERSION:
        return None
    meta = index.derived["trials"]
    if len(meta) != len(cap.data["trials"]):
        return None
    a = index.arrays
    try:
        out = [
            TrialDigest(
                a[f"t{i}.ids"],
                a[f"t{i}.tok"],
                a[f"t{i}.l2"],
                a[f"t{i}.sum"],
                a[f"t{i}.cnt"],
                m["steps"],
                m["states"],
                m["zones"],
                m["n_head"],
                {k: a[f"t{i}.{k}"] for k in COLUMNS} if f"t{i}.apos" in a else None,
                a[f"t{i}.cdi"],
                a[f"t{i}.cdv"],
            )  # fmt: skip
            for i, m in enumerate(meta)
        ]
    except KeyError:
        return None
    cap.notices += [n for n in index.derived.get("notices", []) if n not in cap.notices]
    return out


def _compute_all(cap: Capture, progress: Progress | None = None) -> list[TrialDigest]:
    before = len(cap.notices)
    total = sum(len(t["steps"]) for t in cap.data["trials"])
    done = [0]

    def step_done(n: int) -> None:
        done[0] += n
        if progress is not None:
            progress(done[0], total)

    lazy = cap.layout is not None and cap.path is not None
    with _no_gc():
        ids = _ids_of(cap.data) if lazy else None
        out = [_compute(cap, i, cap.notices, ids, step_done) for i in range(len(cap.data["trials"]))]
    if lazy:
        assert cap.path is not None and cap.layout is not None
        try:
            write_index(cap.path, cap.layout, out, cap.notices[before:])
            cap.index = index_file.read(cap.path)
        except (OSError, CaptureError) as exc:
            cap.notices.append(f"could not keep the index beside {cap.path.name} ({exc}): it is kept in memory")
            return out
        restored = _restore(cap)
        if restored is not None:  # the memory-mapped arrays, not the ones computed in memory
            return restored
    return out


def _compute(
    cap: Capture,
    trial_id: int,
    notices: list[str],
    ids: list[int] | None,
    step_done: Callable[[int], None] | None = None,
) -> TrialDigest:
    """One trial's digest from its steps, read in runs (``digest_build``). ``ids``: the tensors it
    has rows for (None: those with statistics in some step, for a capture held in memory)."""
    doc = cap.data
    trial = trial_of(doc, trial_id)
    steps = trial["steps"]
    if ids is None:
        ids = sorted({int(k) for st in steps for k in st["stats"]})
    builder = TrialBuilder(doc, trial, ids, notices)
    for first, run in _runs(steps):
        builder.add(first, run)
        if step_done is not None:
            step_done(len(run))
    return builder.finish()


def _runs(steps: Any) -> Iterator[tuple[int, Run]]:
    if isinstance(steps, LazySteps):
        yield from steps.chunks()
        return
    for first in range(0, len(steps), RUN):
        yield first, list(steps[first : first + RUN])


@contextmanager
def _no_gc() -> Iterator[None]:
    """The cyclic garbage collector paused: parsing makes many containers that live a moment
    (refcounting frees them), and the collector's passes over them doubled the time of a build."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _ids_of(doc: dict[str, Any]) -> list[int]:
    """Tensor ids that can have statistics: the captured ones of the catalogue."""
    return [t["id"] for t in doc["tensors"] if t.get("captured", True)]


def step_of_token(d: TrialDigest, pos: int) -> int | None:
    """Index of the step that evaluated token ``pos`` (the first one), or None."""
    for s in d.steps:
        if s["pos"] <= pos < s["pos"] + s["n_tokens"]:
            return int(s["index"])
    return None
