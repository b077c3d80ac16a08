"""Index builds in progress: which capture files the store is building the index of, and how far
each is (``GET /api/loading``).

A capture saved without its index (elsewhere, by an older version, or its index deleted) is read
step by step on its first load (``digest.prepare``): seconds for a large file. Loads and uploads run
in FastAPI's thread pool while a GET of the progress runs in another thread, so every change and
every read holds the one lock; an entry lives exactly as long as its build (``track``), also when
the build fails.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from backend.schemas import LoadingInfo

Progress = Callable[[int, int], None]  # (steps read, steps in the capture): digest.prepare's callback


class Builds:
    """The index builds running now, in the order they started."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[int, LoadingInfo] = {}
        self._keys = itertools.count()

    @contextmanager
    def track(self, path: str, name: str, total: int) -> Iterator[Progress]:
        """An entry for the build of capture ``path`` (relative to the data directory) of ``total``
        steps while the block runs; yields the progress callback that updates it. Removed when the
        block ends, whether the build finished or raised."""
        key = next(self._keys)
        with self._lock:
            self._running[key] = {"path": path, "name": name, "done": 0, "total": total}
        try:
            yield lambda done, total: self.report(key, done, total)
        finally:
            with self._lock:
                del self._running[key]

    def report(self, key: int, done: int, total: int) -> None:
        """Build ``key`` has read ``done`` of its ``total`` steps."""
        with self._lock:
            entry = self._running.get(key)
            if entry is not None:
                entry["done"], entry["total"] = done, total

    def now(self) -> list[LoadingInfo]:
        """Copies of the running builds' entries (safe to serialise while the builds go on)."""
        with self._lock:
            return [entry.copy() for entry in self._running.values()]
