"""The running runs' captures so far, served by the view routes under capture ids ``run-<run id>``.

``LiveCaptureStore`` is the server's ``CaptureStore``: a capture id of the form ``run-r3`` is the
partial capture of run r3 (``RunManager.partial``: the trials so far, the current one with its steps
so far, refreshed at most every half second while it runs), held as a loaded capture is (its digest
prepared, its own payload cache); every other id is the store's. Reading it does not make it current.
"""

from __future__ import annotations

import datetime as _dt
import threading
from collections import OrderedDict

from backend.store import CaptureStore, Loaded, Settings
from spectra_vis.analysis import digest
from spectra_vis.live import RunManager

PREFIX = "run-"
KEEP = 2  # runs whose last snapshot is held here (the manager keeps only the newest run's)


class LiveCaptureStore(CaptureStore):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.runs: RunManager | None = None
        self._live: OrderedDict[str, Loaded] = OrderedDict()
        self._live_lock = threading.Lock()

    def get(self, capture_id: str | None = None) -> Loaded:
        if capture_id is not None and capture_id.startswith(PREFIX) and self.runs is not None:
            return self.live(capture_id[len(PREFIX) :])
        return super().get(capture_id)

    def live(self, run_id: str) -> Loaded:
        """The run's capture so far as a loaded capture (a new one whenever the snapshot changed)."""
        assert self.runs is not None
        capture = self.runs.partial(run_id)
        with self._live_lock:
            held = self._live.get(run_id)
            if held is not None and held.capture is capture:
                return held
            digest.prepare(capture)
            n_steps = sum(len(t["steps"]) for t in capture.data["trials"])
            loaded = Loaded(
                capture_id=PREFIX + run_id,
                capture=capture,
                name=f"run {run_id} (live)",
                path="",
                key=(PREFIX + run_id, n_steps, id(capture)),
                loaded_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            )
            self._live[run_id] = loaded
            self._live.move_to_end(run_id)
            while len(self._live) > KEEP:
                self._live.popitem(last=False)
            return loaded
