"""Steering stage: one prompt at several strengths of one control vector, as one capture (a sweep).

``sweep(model, control, strengths, prompt)`` runs the prompt once per strength on one loaded model
(the context is reset before each trial), each trial marked ``sweep: {id, strength, baseline}``
and carrying its ``control`` and its residual ``projection`` on the vector's direction (capture
format 2.3). Strength 0 is always run (added first when missing): it is the sweep's baseline,
exactly the unsteered run, which the viewer's Compare view opens the other strengths against.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from spectra_vis.capturing.chat import ChatMode
from spectra_vis.capturing.control import check_strength
from spectra_vis.capturing.session import RunOptions, Session, StopAfterDecode
from spectra_vis.errors import InvalidArgument
from spectra_vis.record.records import TrialData
from spectra_vis.store.capture_file import Capture
from spectra_vis.store.control_vector import ControlVector, read_control_vector

EventHook = Callable[[str, Any], None]


def parse_strengths(text: str | Iterable[Any]) -> list[float]:
    """``"-4,0,4"`` (or numbers) as finite floats, in order, without repeats; 0 added first when missing."""
    items = [x for x in str(text).split(",")] if isinstance(text, str) else list(text)
    if not [x for x in items if str(x).strip()]:
        raise InvalidArgument("give at least one strength, e.g. --strengths -4,0,4")
    values = [check_strength(str(x).strip() if isinstance(x, str) else x) for x in items if str(x).strip()]
    unique = list(dict.fromkeys(values))
    return unique if 0.0 in unique else [0.0, *unique]


def sweep(
    model_path: str | os.PathLike[str],
    control: str | os.PathLike[str] | ControlVector,
    strengths: str | Iterable[float],
    prompt: str,
    *,
    control_layers: str | tuple[int, int] | None = None,
    preset: str = "standard",
    max_tokens: int = 32,
    temperature: float = 0.0,
    seed: int = 0,
    n_ctx: int = 512,
    n_threads: int | None = None,
    chat: ChatMode = "auto",
    out: str | os.PathLike[str] | None = None,
    on_event: EventHook | None = None,
) -> Capture:
    """Capture ``prompt`` at each of ``strengths`` of ``control``: one trial per strength, saved to
    ``out`` when given. Bad strengths, a vector that does not fit the model or a range outside it
    are refused (one line) before anything runs. On Ctrl-C what was captured is saved (and attached
    to the KeyboardInterrupt as ``.capture``)."""
    if not prompt or not prompt.strip():
        raise InvalidArgument("give a non-empty prompt")
    values = parse_strengths(strengths)
    vector = control if isinstance(control, ControlVector) else read_control_vector(control)
    opts = RunOptions(max_tokens=max_tokens, temperature=temperature, seed=seed, n_ctx=n_ctx, n_threads=n_threads)
    sweep_id = uuid.uuid4().hex[:12]
    options = {**opts.to_dict(), "chat": chat if isinstance(chat, str) else bool(chat), "sweep": sweep_id}
    emit = on_event or (lambda kind, payload: None)
    with Session(
        model_path, preset, n_ctx=n_ctx, n_threads=n_threads, seed=seed, control=(vector, values[0]),
        control_layers=control_layers,
    ) as s, StopAfterDecode(s.collector) as stop:  # fmt: skip
        layers = s.control.layers if s.control else None
        sent = s.format(prompt, chat)
        emit("collector", s.collector)
        emit("model", s.collector.model_card)
        done: list[TrialData] = []
        try:
            for i, strength in enumerate(values):
                stop.check()
                s.set_control((vector, strength), layers)
                emit("trial_start", (i, f"strength {strength:g}"))
                done.append(s.run(prompt, opts.max_tokens, opts.temperature, opts.seed, emit, chat=sent))
        except KeyboardInterrupt as interrupt:
            stop.saving = True
            _mark(s.collector.trials, sweep_id)
            interrupt.capture = s.capture(out, options, emit)  # type: ignore[attr-defined]
            raise
        _mark(done, sweep_id)
        return s.capture(out, options, emit)


def _mark(trials: list[TrialData], sweep_id: str) -> None:
    """Every trial's place in the sweep; the baseline is the strength-0 trial."""
    baseline = next((t.trial_id for t in trials if t.control and t.control["strength"] == 0.0), None)
    for t in trials:
        if t.control is not None and baseline is not None:
            t.sweep = {"id": sweep_id, "strength": float(t.control["strength"]), "baseline": baseline}
