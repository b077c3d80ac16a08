"""Live stage: runs of captures, queued and executed one at a time on one warm model.

``RunManager`` keeps one ``capturing.session.Session`` loaded between runs (reloaded only when a run
asks for another model or preset), runs queue behind the current one, and a worker thread executes
them so a server stays responsive. Each step of a run becomes an event as soon as its token is
sampled: the decoding thread only hands the finished step to a second, publishing thread
(``TensorCollector.step_hook``), which builds the event (``events.StepEvents``) and appends it to
the run's ``stream.EventLog``. Cancelling stops a run after the current decode
(``interrupt_requested``, as Ctrl-C does in the wizard) and keeps what it captured. Every run that
captured something is saved as an ordinary capture (with its vectors file), atomically, in
``<data dir>/runs/``. A model llama.cpp refuses fails its run with llama.cpp's reason.

Imports no web package: the server's routes call ``submit``, ``get``, ``runs``, ``cancel``.
"""

from __future__ import annotations

import itertools
import logging
import queue
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spectra_vis.capturing.chat import ChatMode, FormattedPrompt
from spectra_vis.capturing.lens import LogitLens
from spectra_vis.capturing.session import Session
from spectra_vis.errors import Busy, NotFound, SpectraVisError, Unsupported
from spectra_vis.live.events import StepEvents
from spectra_vis.live.partial import PartialCapture
from spectra_vis.live.stream import DEFAULT_LIMIT, EventLog
from spectra_vis.record.records import Step, TrialData
from spectra_vis.store.capture_file import Capture

log = logging.getLogger("spectra_vis.live")

STATES = ("queued", "loading", "running", "saving", "done", "cancelled", "failed")
FINAL = ("done", "cancelled", "failed")
CHAT_MODES: dict[str, ChatMode] = {"auto": "auto", "chat": True, "raw": False}
MAX_QUEUED = 8
KEEP_RUNS = 16  # finished runs kept (with their backlog of events); older ones are forgotten
N_CTX = 2048  # context of the warm model: the longest prompt plus max_tokens must fit
LENS_SHARE = 0.05  # the live lens may use this share of the run's time (it reads the whole head)
RUNS_FOLDER = "runs"


@dataclass
class RunControl:
    """A control vector to steer a run with: ``file`` the name shown, ``path`` the checked file."""

    file: str
    path: Path
    strength: float = 1.0
    layers: str | None = None


@dataclass
class RunRequest:
    """What to run: ``model`` is the name shown, ``model_path`` the checked file it names
    (``prepare``, when given, makes that file first: the demo model is assembled on first use)."""

    model: str
    model_path: Path
    prompts: list[str]
    preset: str = "standard"
    max_tokens: int = 32
    temperature: float = 0.0
    seed: int | None = None
    chat: str = "auto"
    prepare: Callable[[], Path] | None = None
    control: RunControl | None = None


@dataclass
class Run:
    id: str
    request: RunRequest
    seed: int
    created: float = field(default_factory=time.time)
    state: str = "queued"
    trial: int = 0
    step: int = 0
    tokens: int = 0
    trials_done: int = 0
    trial_tokens: int = 0
    file: str | None = None
    error: str | None = None
    started: float | None = None  # decoding began
    decoded: float | None = None  # decoding ended
    finished: float | None = None
    cancel_requested: bool = False
    log: EventLog = field(default_factory=EventLog)
    partial: PartialCapture = field(default_factory=PartialCapture)  # the capture so far, when asked

    def info(self) -> dict[str, Any]:
        """The run's RunInfo (docs/API.md)."""
        r = self.request
        n_trials = len(r.prompts)
        end = self.decoded or self.finished or time.time()
        elapsed = end - self.started if self.started is not None else 0.0
        if self.state == "done":
            progress = 1.0
        else:
            partial = min(self.trial_tokens, r.max_tokens) / r.max_tokens
            progress = min(1.0, (self.trials_done + (0 if self.trials_done >= n_trials else partial)) / n_trials)
        return {
            "id": self.id,
            "model": r.model,
            "preset": r.preset,
            "prompts": list(r.prompts),
            "max_tokens": r.max_tokens,
            "temperature": r.temperature,
            "seed": self.seed,
            "chat": r.chat,
            "control": None
            if r.control is None
            else {"file": r.control.file, "strength": r.control.strength, "layers": r.control.layers},
            "state": self.state,
            "trial": self.trial,
            "n_trials": n_trials,
            "step": self.step,
            "tokens": self.tokens,
            "tokens_per_s": round(self.tokens / elapsed, 3) if elapsed > 0 and self.tokens else None,
            "progress": round(progress, 4),
            "file": self.file,
            "error": self.error,
            "created": self.created,
            "finished": self.finished,
            "events": self.log.last_seq,
            "subscribers": self.log.subscribers,
        }


class RunManager:
    """Runs queued and executed one at a time on a warm model; saved into ``data_dir/runs``."""

    def __init__(
        self,
        data_dir: str | Path,
        *,
        max_queued: int = MAX_QUEUED,
        keep_runs: int = KEEP_RUNS,
        n_ctx: int = N_CTX,
        event_limit: int = DEFAULT_LIMIT,
        lens_share: float = LENS_SHARE,
        n_threads: int | None = None,
    ) -> None:
        self.root = Path(data_dir).expanduser().resolve()
        self.max_queued = max_queued
        self.keep_runs = keep_runs
        self.n_ctx = n_ctx
        self.event_limit = event_limit
        self.lens_share = lens_share
        self.n_threads = n_threads
        self._runs: OrderedDict[str, Run] = OrderedDict()
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._queue: queue.Queue[Run | None] = queue.Queue()
        self._pub: queue.Queue[Callable[[], None]] = queue.Queue()
        self._current: Run | None = None
        self._session: Session | None = None
        self._session_key: tuple[str, str] | None = None
        self._lens: dict[str, LogitLens | None] = {}
        self._worker: threading.Thread | None = None
        self._publisher: threading.Thread | None = None
        self.closing = False

    # ----- what a server calls ---------------------------------------------------------------
    def submit(self, request: RunRequest) -> Run:
        """Queue a run; Busy when ``max_queued`` runs already wait (or the manager is shutting down)."""
        if request.chat not in CHAT_MODES:
            raise Unsupported(f"chat must be one of {', '.join(CHAT_MODES)}, not {request.chat!r}")
        with self._lock:
            if self.closing:
                raise Busy("the server is shutting down: no new runs")
            waiting = sum(1 for r in self._runs.values() if r.state == "queued")
            if waiting >= self.max_queued:
                raise Busy(f"{waiting} runs are already queued (the limit is {self.max_queued}); try again later")
            seed = request.seed if request.seed is not None else secrets.randbelow(2**31)
            run = Run(id=f"r{next(self._ids)}", request=request, seed=seed, log=EventLog(self.event_limit))
            self._runs[run.id] = run
            self._forget_old()
            self._start_threads()
        run.log.publish("state", run.info())
        self._queue.put(run)
        return run

    def get(self, run_id: str) -> Run:
        with self._lock:
            run = self._runs.get(run_id)
        if run is None:
            raise NotFound(f"no run {run_id!r} (GET /api/runs lists them)")
        return run

    def runs(self) -> list[Run]:
        with self._lock:
            return list(self._runs.values())

    def partial(self, run_id: str) -> Capture:
        """The run's capture so far (the current trial with its steps so far), refreshed at most
        every ``partial.MAX_AGE`` s while it runs; NotFound before its first step."""
        run = self.get(run_id)
        snap = run.partial.get(run.state == "running", {"run": run.id, "live": True})
        if snap is None:
            raise NotFound(f"run {run_id!r} has no step yet ({run.state}); its capture appears with its first step")
        return snap.capture

    def cancel(self, run_id: str) -> Run:
        """Cancel a run: a queued one never starts; a running one stops after the current decode and
        keeps what it captured (saved); a finished one stays as it is."""
        run = self.get(run_id)
        with self._lock:
            if run.state in FINAL or run.state == "saving":
                return run
            run.cancel_requested = True
            if run.state == "queued":
                self._finish(run, "cancelled")
                return run
            session = self._session
        if session is not None and run is self._current:
            session.collector.interrupt_requested = True
        return run

    def shutdown(self) -> None:
        """No new runs; queued ones are cancelled, the current one stops after its decode and is
        saved. Returns at once; ``join`` waits for the save."""
        with self._lock:
            self.closing = True
            pending = [r for r in self._runs.values() if r.state not in FINAL]
        for run in pending:
            self.cancel(run.id)
        self._queue.put(None)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the worker (after ``shutdown``), then free the model."""
        if self._worker is not None:
            self._worker.join(timeout)
        if self._publisher is not None:
            self._pub.put(_stop)
            self._publisher.join(timeout)
        if self._session is not None and (self._worker is None or not self._worker.is_alive()):
            self._session.close()
            self._session = None

    # ----- threads ------------------------------------------------------------------------------
    def _start_threads(self) -> None:
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="spectra-vis-runs", daemon=True)
            self._publisher = threading.Thread(target=self._publish_loop, name="spectra-vis-events", daemon=True)
            self._publisher.start()
            self._worker.start()

    def _work(self) -> None:
        while (run := self._queue.get()) is not None:
            if run.state != "queued":
                continue  # cancelled while it waited
            self._current = run
            try:
                self._execute(run)
            except BaseException as exc:  # noqa: BLE001 - a run's failure must not stop the worker
                log.exception("run %s failed", run.id)
                if run.state not in FINAL:
                    self._finish(run, "failed", error=f"{type(exc).__name__}: {exc}")
            finally:
                self._current = None
                self._pub.join()  # every event of this run is out before the next run begins

    def _publish_loop(self) -> None:
        while True:
            job = self._pub.get()
            try:
                if job is _stop:
                    return
                job()
            except Exception:  # noqa: BLE001 - an event that cannot be built is skipped, not fatal
                log.exception("live event")
            finally:
                self._pub.task_done()

    # ----- one run ------------------------------------------------------------------------------
    def _set(self, run: Run, state: str) -> None:
        run.state = state
        info = run.info()
        self._pub.put(lambda: _publish(run.log, "state", info))

    def _finish(self, run: Run, state: str, error: str | None = None) -> None:
        run.state, run.error, run.finished = state, error, time.time()
        info = run.info()
        self._pub.put(lambda: _publish(run.log, "done", info, final=True))
        self._start_threads()

    def _execute(self, run: Run) -> None:
        r = run.request
        self._set(run, "loading")
        try:
            session = self._load(r)
        except (SpectraVisError, ValueError, OSError) as exc:
            self._finish(run, "failed", error=str(exc))
            return
        if run.cancel_requested:
            self._finish(run, "cancelled")
            return
        try:  # every run sets its own vector (or none): the warm session must not carry one over
            c = r.control
            session.set_control(None if c is None else (c.path, c.strength), None if c is None else c.layers)
        except (SpectraVisError, ValueError) as exc:
            self._finish(run, "failed", error=str(exc))
            return
        try:
            sent = [session.format(p, CHAT_MODES[r.chat]) for p in r.prompts]
        except ValueError as exc:
            self._finish(run, "failed", error=str(exc))
            return
        error = self._capture(run, session, sent)
        if not session.collector.trials:
            self._finish(run, "failed" if error else "cancelled", error=error)
            return
        self._set(run, "saving")
        try:
            run.file = self._save(run, session)
        except (SpectraVisError, ValueError, OSError) as exc:
            error = error or f"the capture could not be saved: {exc}"
        state = "failed" if error else "cancelled" if run.cancel_requested else "done"
        self._finish(run, state, error=error)

    def _capture(self, run: Run, session: Session, sent: list[FormattedPrompt]) -> str | None:
        """The run's trials, one per prompt; stops on cancel (keeping the steps so far). Returns the
        error that stopped it, if any."""
        r = run.request
        collector = session.collector
        collector.new_capture()
        with self._lock:  # only the newest run keeps its last snapshot (a whole capture) in memory
            for other in self._runs.values():
                if other is not run:
                    other.partial.last = None
        events = StepEvents(collector, self._lens_of(r.model_path, session))
        lens_clock = [0.0]
        collector.step_hook = lambda trial, steps, token: self._on_steps(run, events, lens_clock, trial, steps, token)
        run.started = time.time()
        self._set(run, "running")
        try:
            for i, prompt in enumerate(r.prompts):
                if run.cancel_requested:
                    break
                run.trial, run.step, run.trial_tokens = i, 0, 0
                try:
                    session.run(prompt, r.max_tokens, r.temperature, run.seed, chat=sent[i])
                except KeyboardInterrupt:
                    break
                run.trials_done = i + 1
        except (SpectraVisError, ValueError, RuntimeError) as exc:
            if collector.current_trial is not None:
                session.end_trial(sent[run.trial], interrupted=True)
            return str(exc)
        finally:
            collector.step_hook = None
            run.partial.take(collector, None)  # a reader waiting now gets every trial, ended
            run.decoded = time.time()
        return None

    def _on_steps(
        self,
        run: Run,
        events: StepEvents,
        lens_clock: list[float],
        trial: TrialData,
        steps: list[Step],
        token: int | None,
    ) -> None:
        """In the decoding thread: count, and hand the finished steps to the publisher."""
        run.step = len(trial.steps)
        if run.partial.wanted:
            run.partial.take(events.collector, trial)
        if token is not None:
            run.tokens += 1
            run.trial_tokens += 1
        first = steps[0].index == 0
        decoded_at = events.collector.decoded_at

        def publish() -> None:
            if first:
                run.log.publish("trial", events.trial(trial, steps))
            for s in steps:
                lens = self._lens_now(run, events, lens_clock, s)
                t0 = time.perf_counter()
                data = events.step(trial.trial_id, s, token if s is steps[-1] else None, with_lens=lens)
                if lens:
                    lens_clock[0] += time.perf_counter() - t0
                data["decoded_at"] = decoded_at
                run.log.publish("step", data)

        self._pub.put(publish)

    def _lens_now(self, run: Run, events: StepEvents, lens_clock: list[float], step: Step) -> bool:
        """Whether this step's event carries the lens: vectors and a head, the publisher caught up
        (no newer step waiting), and the lens within its share of the run's time so far."""
        if not events.lens_ready(step) or not self._pub.empty():
            return False
        elapsed = time.time() - (run.started or time.time())
        return lens_clock[0] == 0.0 or lens_clock[0] <= self.lens_share * elapsed

    def _load(self, r: RunRequest) -> Session:
        """The warm session for this model and preset (loaded, or reloaded when either changed)."""
        path = r.model_path if r.prepare is None or r.model_path.is_file() else r.prepare()
        key = (str(path), r.preset)
        if self._session is not None and self._session_key == key:
            return self._session
        if self._session is not None:
            self._session.close()
            self._session, self._session_key = None, None
        self._session = Session(path, r.preset, n_ctx=self.n_ctx, n_threads=self.n_threads)
        self._session_key = key
        return self._session

    def _lens_of(self, path: Path, session: Session) -> LogitLens | None:
        if not session.lens:
            return None
        key = str(path)
        if key not in self._lens:
            try:
                self._lens[key] = LogitLens.from_gguf(path)
            except SpectraVisError:
                self._lens[key] = None  # an architecture the lens does not mirror: steps carry no lens
        return self._lens[key]

    def _save(self, run: Run, session: Session) -> str:
        """Save the run's capture into ``runs/`` (atomically, never over a file); its relative path."""
        r = run.request
        options: dict[str, Any] = {
            "max_tokens": r.max_tokens,
            "temperature": r.temperature,
            "seed": run.seed,
            "n_threads": self.n_threads,
            "chat": CHAT_MODES[r.chat],
            "run": run.id,
        }
        cap: Capture = session.capture(options=options)
        folder = self.root / RUNS_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{run.id}-{_safe(Path(r.model).stem)}"
        target = folder / f"{stem}.json"
        n = 1
        while target.exists():
            n += 1
            target = folder / f"{stem}-{n}.json"
        cap.save(target)
        return target.relative_to(self.root).as_posix()

    def _forget_old(self) -> None:
        finished = [r for r in self._runs.values() if r.state in FINAL]
        for run in finished[: max(0, len(finished) - self.keep_runs)]:
            del self._runs[run.id]


def _publish(log: EventLog, kind: str, data: Any, final: bool = False) -> None:
    log.publish(kind, data, final)


def _stop() -> None:
    """The publisher's end marker."""


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")[:60] or "model"
