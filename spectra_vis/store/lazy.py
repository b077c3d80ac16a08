"""Store stage: a capture file's steps read one at a time, from byte ranges (``store.scan``).

``LazySteps`` stands where a trial's ``steps`` list stands in the capture document: ``len``,
indexing, slicing and iteration work as on the list, but a step is read from the file (``os.pread``:
nothing of the file is mapped into the process), parsed with orjson and checked against the
schema's Step only when it is asked for; a few recently used steps are kept. A step that does not
parse or does not match the schema is a CaptureError naming the file, the trial and the step; the
other steps stay readable. Imports numpy, orjson and the store's schema only.
"""

from __future__ import annotations

import functools
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np
import orjson

from spectra_vis.errors import CaptureError

KEEP = 16  # parsed steps kept per trial (the last used)
CHUNK = 4 << 20  # bytes of steps parsed at once when every step is read in order (``LazySteps.chunks``)


class StepFile:
    """An open capture file, read by byte ranges (shared by the trials of one capture)."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        self.parsed = 0  # steps parsed so far (tests count them)

    def read(self, start: int, end: int) -> bytes:
        if not 0 <= start < end <= self.size:
            raise CaptureError(f"{self.path.name}: byte range {start}..{end} is outside the file ({self.size} bytes)")
        return os.pread(self._fd, end - start, start)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()


@functools.cache
def _step_validator() -> Any:
    from spectra_vis.store.capture_file import schema

    full = schema()
    sub = {"$schema": full["$schema"], "$defs": full["$defs"], "$ref": "#/$defs/Step"}
    try:
        import jsonschema_rs

        return jsonschema_rs.Draft202012Validator(sub)
    except ImportError:
        import jsonschema

        return jsonschema.Draft202012Validator(sub)


def check_step(step: Any, where: str) -> None:
    """CaptureError naming ``where`` and the first schema violation of one step, if any."""
    error = next(iter(_step_validator().iter_errors(step)), None)
    if error is not None:
        path = getattr(error, "instance_path", None) or list(getattr(error, "absolute_path", []))
        at = "/".join(str(p) for p in path) or "(the step)"
        raise CaptureError(f"{where} does not match the capture format at {at}: {error.message[:160]}")


class LazySteps(Sequence[dict[str, Any]]):
    """The steps of one trial, parsed from ``file`` on demand (``spans``: each step's byte range)."""

    def __init__(self, file: StepFile, trial_id: int, spans: Sequence[tuple[int, int]]) -> None:
        self.file = file
        self.trial_id = trial_id
        self.spans = spans
        self._kept: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.spans)

    @overload
    def __getitem__(self, i: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, i: slice) -> list[dict[str, Any]]: ...
    def __getitem__(self, i: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(i, slice):
            return [self._step(j) for j in range(*i.indices(len(self)))]
        n = len(self)
        j = i + n if i < 0 else i
        if not 0 <= j < n:
            raise IndexError(f"step {i} out of range (trial {self.trial_id} has {n})")
        return self._step(j)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self._step(j) for j in range(len(self)))

    def _step(self, j: int) -> dict[str, Any]:
        with self._lock:
            kept = self._kept.get(j)
            if kept is not None:
                self._kept.move_to_end(j)
                return kept
        step = self.parse(j)
        with self._lock:
            self._kept[j] = step
            while len(self._kept) > KEEP:
                self._kept.popitem(last=False)
        return step

    def parse(self, j: int) -> dict[str, Any]:
        """Step ``j`` read and checked (not kept): CaptureError naming it when it is corrupt."""
        where = f"{self.file.path.name}: trial {self.trial_id} step {j}"
        start, end = (int(x) for x in self.spans[j])
        raw = self.file.read(start, end)
        self.file.parsed += 1
        try:
            step = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            why = str(exc)[:80]
            raise CaptureError(f"{where} is corrupt (not JSON: {why}); the other steps are readable") from None
        return self._checked(step, j)

    def _checked(self, step: Any, j: int) -> dict[str, Any]:
        where = f"{self.file.path.name}: trial {self.trial_id} step {j}"
        check_step(step, where)
        if step["index"] != j:
            raise CaptureError(f"{where} says it is step {step['index']}: the step index does not match the file")
        return step  # type: ignore[no-any-return]

    def chunks(self, max_bytes: int | None = None) -> Iterator[tuple[int, list[dict[str, Any] | CaptureError]]]:
        """Every step in order, read and checked as ``parse`` does but many at a time: ``(first,
        steps)`` for runs of consecutive steps of about ``max_bytes``, each step parsed, or the
        CaptureError naming it when it is corrupt (``max_bytes``: CHUNK when None). The steps of a
        run lie side by side in the file (one array, commas between them), so one read and one parse
        serve the run; a run that does not parse as that many steps is parsed step by step, to name
        the corrupt one. Not kept."""
        spans = np.asarray(self.spans, dtype=np.int64).reshape(-1, 2)
        ends = np.searchsorted(spans[:, 1], spans[:, 0] + (CHUNK if max_bytes is None else max_bytes), side="right")
        first = 0
        while first < len(spans):
            stop = max(int(ends[first]), first + 1)
            yield first, self._run(spans, first, stop)
            first = stop

    def _run(self, spans: np.ndarray, first: int, stop: int) -> list[dict[str, Any] | CaptureError]:
        try:
            steps = orjson.loads(b"[" + self.file.read(int(spans[first, 0]), int(spans[stop - 1, 1])) + b"]")
        except (orjson.JSONDecodeError, CaptureError):
            steps = None
        out: list[dict[str, Any] | CaptureError] = []
        for j in range(first, stop):
            try:
                if steps is None or len(steps) != stop - first:
                    out.append(self.parse(j))
                    continue
                self.file.parsed += 1
                out.append(self._checked(steps[j - first], j))
            except CaptureError as exc:
                out.append(exc)
        return out

    def __repr__(self) -> str:
        return f"LazySteps(trial {self.trial_id}, {len(self)} steps of {self.file.path.name})"


def steps_list(value: Any) -> list[dict[str, Any]]:
    """orjson's ``default``: a LazySteps written out as the list it stands for."""
    if isinstance(value, LazySteps):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def open_document(path: Path, notices: list[str]) -> tuple[Any, list[Any], Any, list[LazySteps]]:
    """A capture file's document with every trial's steps left out (empty lists), its layout, its
    index (``store.index_file``; None when there was none or it could not be used: ``notices`` says
    why) and each trial's LazySteps, to put in place of the empty lists once the rest is validated.
    Only the bytes outside the steps are parsed here."""
    import mmap

    from spectra_vis.store import index_file
    from spectra_vis.store.scan import scan

    try:
        index = index_file.read(path)
    except CaptureError as exc:
        notices.append(str(exc))
        index = None
    size = path.stat().st_size
    if size == 0:
        raise CaptureError(f"{path.name} is empty")
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else _Empty() as buf:
        layout = index.layout if index is not None else scan(buf)
        cuts = sorted(t.steps for t in layout if t.steps[1] > t.steps[0])
        pieces, at = [], 0
        for start, end in cuts:
            pieces += [buf[at:start], b"[]"]
            at = end
        pieces.append(buf[at:size])
    skeleton = b"".join(pieces)
    try:
        doc = orjson.loads(skeleton)
    except orjson.JSONDecodeError as exc:
        raise CaptureError(f"{path.name} is not valid JSON outside its steps ({exc})") from None
    file = StepFile(path, size)
    return doc, layout, index, [LazySteps(file, i, lay.step_spans) for i, lay in enumerate(layout)]


class _Empty:
    def __enter__(self) -> bytes:
        return b""

    def __exit__(self, *exc: object) -> None:
        return None


HEAD = 1 << 20


def peek(path: Path) -> dict[str, Any]:
    """The top-level fields of a capture file before its tensors (format, version, model, preset,
    ...) and its number of trials, without reading the whole file: the head as this tool writes it
    (those fields first), the trial count from the index file beside it (or a scan of the file)."""
    from spectra_vis.store import index_file
    from spectra_vis.store.scan import scan

    with path.open("rb") as f:
        head = f.read(HEAD)
    cut = head.find(b',"tensors":')
    try:
        doc = orjson.loads(head[:cut] + b"}") if cut > 0 else None
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict):
        doc, _, _, _ = open_document(path, [])
        return doc if isinstance(doc, dict) else {}
    try:
        index = index_file.read(path)
    except CaptureError:
        index = None
    if index is not None:
        doc["trials"] = [None] * len(index.layout)
    else:
        import mmap

        with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            doc["trials"] = [None] * len(scan(buf))
    return doc
