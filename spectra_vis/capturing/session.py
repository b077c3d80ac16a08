"""One-call capture: load a GGUF model, run prompts, return (and optionally save) a Capture.

The wizard, the benchmark and the examples call this; it adds no capture logic of
its own beyond running trials in order and keeping what was captured on Ctrl-C.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spectra_vis.capturing import control as steer
from spectra_vis.capturing.chat import (
    ChatMode,
    FormattedPrompt,
    check_mode,
    deferred_template_errors,
    format_prompt,
    template_marks,
)
from spectra_vis.capturing.collector import TensorCollector, create_callback
from spectra_vis.capturing.lens import add_lens
from spectra_vis.record.presets import Preset
from spectra_vis.record.profiles import check_gguf_file
from spectra_vis.record.records import TrialData
from spectra_vis.store.capture_file import Capture


@dataclass
class RunOptions:
    """Generation settings of a capture run."""

    max_tokens: int = 32
    temperature: float = 0.0
    seed: int = 0
    n_ctx: int = 512
    n_threads: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be 0 or more, got {self.temperature}")
        if self.n_ctx < 16:
            raise ValueError(f"n_ctx must be at least 16, got {self.n_ctx}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "seed": self.seed,
            "n_threads": self.n_threads,
        }


# on_event(kind, payload): "collector" (the TensorCollector, for live counts of steps and tensors),
# "model" (card), "trial_start" (index, prompt), "token" (trial, text), "trial_end" (TrialData),
# "lens" (trial, blocks done, blocks in all: the logit lens computed as the capture is made);
# lets a UI show progress without the library importing one.
EventHook = Callable[[str, Any], None]


class StopAfterDecode:
    """Ctrl-C, handled where a capture can stop cleanly.

    A KeyboardInterrupt raised by Python's default handler can land inside a ctypes
    callback, where ctypes drops it and generation goes on. Inside this context the first
    Ctrl-C only sets the collector's ``interrupt_requested``: ``spectra_vis.Llama`` raises
    KeyboardInterrupt right after the current decode (every finished step stays whole), and
    ``Session.run`` / ``capture`` raise it when no decode follows. A second Ctrl-C raises at
    once; none does while ``saving`` (what was captured is being written). Installed only in
    the main thread and only over Python's default handler, so an outer one (a notebook's,
    or ``capture``'s around ``Session.run``) stays in charge.
    """

    def __init__(self, collector: TensorCollector) -> None:
        self.collector = collector
        self.saving = False
        self._previous: Any = None

    def __enter__(self) -> StopAfterDecode:
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.saving:
            return
        if self.collector.interrupt_requested:
            raise KeyboardInterrupt
        self.collector.interrupt_requested = True

    def check(self) -> None:
        """Raise the Ctrl-C asked for, at a point between decodes."""
        if self.collector.interrupt_requested:
            raise KeyboardInterrupt


class Session:
    """A model loaded for capture, with its collector and callback: ``with`` owns their lifetime.

    ::

        with Session("model.gguf", preset="standard") as s:
            trial = s.run("What is the capital of France?", max_tokens=16)
            print(trial.response, len(trial.steps))
            cap = s.capture(out="data/capture.json")

    Closing frees the llama.cpp context before the callback it calls (the other order can
    crash). ``run`` keeps a trial's steps on Ctrl-C (the trial is marked interrupted) and
    re-raises.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        preset: str | Preset = "standard",
        *,
        model_family: str = "auto",
        n_ctx: int = 512,
        n_threads: int | None = None,
        seed: int = 0,
        lens: bool = True,
        control: steer.ControlSpec | None = None,
        control_layers: str | tuple[int, int] | None = None,
        **preset_options: Any,
    ) -> None:
        from spectra_vis.capturing.llama import Llama

        RunOptions(n_ctx=n_ctx)  # validates n_ctx before anything loads
        path = str(check_gguf_file(model_path))
        self.collector = TensorCollector(model_family=model_family, preset=preset, **preset_options)
        self._callback = create_callback(self.collector)
        with deferred_template_errors():  # a broken chat template must not stop raw prompts
            self.model: Any = Llama(
                model_path=path, n_ctx=n_ctx, n_threads=n_threads, seed=seed, cb_eval=self._callback, verbose=False
            )
        self.n_threads = n_threads
        self._load = {"n_ctx": n_ctx, "n_threads": n_threads, "seed": seed}
        self.lens = lens  # the logit lens of every trial goes into the capture (when it keeps vectors)
        self.control: steer.Control | None = None
        try:
            self.set_control(control, control_layers)
        except BaseException:
            self.close()
            raise

    def set_control(
        self, control: steer.ControlSpec | None, layers: str | tuple[int, int] | None = None
    ) -> steer.Control | None:
        """Apply a control vector to the trials that follow: ``(file or ControlVector, strength)``,
        ``layers`` an inclusive block range (default: the vector's own). llama.cpp adds ``strength x
        direction.L`` to block L's output at every token; strength 0 is exactly the unsteered run.
        None removes it. Each trial records the vector and its residual projection on it. A vector
        of another width or layer count, a range outside the model or a non-finite strength is an
        InvalidArgument (one line); a file that is not a control vector a WrongFileType."""
        card = self.collector.model_card
        chosen = None if control is None else steer.resolve(control, int(card.n_layer), int(card.n_embd), layers)
        steer.apply(self.model, chosen, int(card.n_layer))
        self.control = chosen
        return chosen

    def format(self, prompt: str, chat: ChatMode = "auto") -> FormattedPrompt:
        """``prompt`` as ``run`` would send it (see ``spectra_vis.capturing.chat.format_prompt``); ValueError
        (one line) when ``chat=True`` and the model has no template, or the template fails."""
        if self.model is None:
            raise RuntimeError("this session is closed")
        return format_prompt(self.model, prompt, chat)

    def run(
        self,
        prompt: str,
        max_tokens: int = 32,
        temperature: float = 0.0,
        seed: int = 0,
        emit: EventHook | None = None,
        *,
        chat: ChatMode | FormattedPrompt = "auto",
    ) -> TrialData:
        """One trial: ``prompt`` and its generated continuation, streamed; returns the TrialData.

        ``chat="auto"`` sends the prompt as a one-message user conversation in the model's chat
        template when its GGUF has one, else raw; True requires a template, False sends it raw
        (or pass what ``format`` returned). Generation stops at the template's end-of-turn token.
        """
        sent = chat if isinstance(chat, FormattedPrompt) else self.format(prompt, chat)
        opts = RunOptions(max_tokens=max_tokens, temperature=temperature, seed=seed)
        emit = emit or (lambda kind, payload: None)
        collector = self.collector
        collector.start_trial(prompt)
        trial = collector.current_trial
        assert trial is not None
        trial.chat, trial.prompt_text = sent.chat, sent.text
        try:
            with StopAfterDecode(collector) as stop:
                settings = {"max_tokens": opts.max_tokens, "temperature": opts.temperature, "seed": opts.seed}
                kwargs = sent.generation_kwargs()
                limit = _token_limit(opts.max_tokens, self._n_ctx(), kwargs.get("stopping_criteria"))
                kwargs["stopping_criteria"] = limit
                for chunk in self.model(sent.prompt_input(), stream=True, **settings, **kwargs):
                    text = chunk["choices"][0]["text"]
                    trial.response += text
                    emit("token", (trial.trial_id, text))
                stop.check()  # Ctrl-C after the last decode
        except KeyboardInterrupt:
            emit("trial_end", self.end_trial(sent, interrupted=True))
            raise
        done = self.end_trial(sent)
        emit("trial_end", done)
        return done

    def _n_ctx(self) -> int:
        """Tokens the context holds: the smaller of what was asked and what llama.cpp reports
        (it may pad its figure past the KV cache it allocated)."""
        return min(int(self.model.n_ctx()), int(self.model.context_params.n_ctx))

    def end_trial(self, sent: FormattedPrompt, interrupted: bool = False) -> TrialData:
        """End the collector's current trial and mark its prompt tokens (template or the user's)."""
        current = self.collector.current_trial
        done = self.collector.end_trial(current.response if current else "", interrupted=interrupted)
        try:
            done.template = template_marks(self.model, sent, done.token_ids[: done.n_prompt])
        except Exception as exc:  # noqa: BLE001 - the marks are extra; never lose a captured trial over them
            done.errors.append(f"template marks: {type(exc).__name__}: {exc}")
        self._mark_control(done)
        return done

    def _mark_control(self, done: TrialData) -> None:
        """Record the control vector on the trial, and its residual projection on the directions."""
        if self.control is None:
            return
        done.control = self.control.record()
        done.projection = steer.projection(done, self.collector.tensors, self.control.vector, self.control.file)
        if done.projection is None:
            done.errors.append("no projection: the preset kept no l_out rows (use the standard or full preset)")

    def swap_model(self, model_path: str | os.PathLike[str]) -> None:
        """Load another GGUF model into this session, on the same collector and callback: the trials
        so far stay, the catalogue is shared (same architecture, same graph names), and the model
        card becomes the new model's. The old model is freed first."""
        from spectra_vis.capturing.llama import Llama

        path = str(check_gguf_file(model_path))
        self.model = None  # the old context goes before another loads (memory, and the callback's order)
        with deferred_template_errors():
            self.model = Llama(model_path=path, cb_eval=self._callback, verbose=False, **self._load)
        self.control = None  # a new context has no control vector

    def vocabulary(self) -> tuple[int, str]:
        """The loaded model's vocabulary size and a sha256 over every token's text (and type): two
        models with the same pair read the same token ids the same way."""
        inner = self.model._model
        digest = hashlib.sha256()
        n = int(inner.n_vocab())
        for i in range(n):
            text = inner.token_get_text(i) or ""
            digest.update(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
            digest.update(b"\0%d\0" % int(inner.token_get_attr(i)))
        return n, digest.hexdigest()

    def force(self, prompt: str, token_ids: list[int], n_prompt: int, emit: EventHook | None = None) -> TrialData:
        """A teacher-forced trial: the model reads ``token_ids`` (the prompt's ``n_prompt``, then one
        response token per step) instead of sampling, so its steps align with the run that produced
        them. At each step the token it would have chosen greedily (the argmax of its logits) is
        recorded as its sampled token; the trial's tokens are the given ones. Ctrl-C keeps the
        steps so far (the trial is marked interrupted) and re-raises."""
        import llama_cpp

        if not 0 < n_prompt <= len(token_ids):
            raise ValueError(f"n_prompt must be 1..{len(token_ids)}, got {n_prompt}")
        emit = emit or (lambda kind, payload: None)
        collector, model = self.collector, self.model
        collector.start_trial(prompt)
        n_vocab = int(model.n_vocab())
        response = token_ids[n_prompt:]
        interrupted = False
        try:
            with StopAfterDecode(collector) as stop:
                model.eval(token_ids[:n_prompt])
                for i, token in enumerate(response):
                    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(model._ctx.ctx, -1), shape=(n_vocab,))
                    collector.on_sample(int(np.argmax(logits)))
                    emit("token", (collector.current_trial.trial_id if collector.current_trial else -1, ""))
                    if i + 1 < len(response):
                        model.eval([token])
                stop.check()
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            text = model.detokenize(response).decode("utf-8", "replace") if response else ""
            done = collector.end_trial(text, interrupted=interrupted)
            done.token_ids = list(token_ids)
            done.token_texts = [collector.token_text(i) for i in token_ids]
            done.n_prompt = n_prompt
            emit("trial_end", done)
        return done

    def capture(
        self,
        out: str | os.PathLike[str] | None = None,
        options: dict[str, Any] | None = None,
        emit: EventHook | None = None,
    ) -> Capture:
        """The trials so far as a Capture (validated); saved atomically to ``out`` when given.
        ``emit("lens", (trial_id, done, total))`` follows the logit lens's pass over the head."""
        result = self.collector.to_capture(options=options or {"n_threads": self.n_threads})
        if self.lens:
            lens_progress = None if emit is None else (lambda t, done, total: emit("lens", (t, done, total)))
            add_lens(result, self.collector.model_path or "", self.collector.token_text, on_progress=lens_progress)
        if out is not None:
            result.save(out)
        return result

    def close(self) -> None:
        self.model = None  # the context goes before the callback it calls
        self._callback = None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _token_limit(max_tokens: int, n_ctx: int, others: Any = None) -> Any:
    """A stopping criterion that ends generation after ``max_tokens`` sampled tokens or when the
    context is full, whatever else stops it. llama-cpp-python's own ``max_tokens`` check is skipped
    while the text ends in an incomplete UTF-8 sequence (a byte token), so a model that keeps
    sampling byte tokens would otherwise run until ``llama_decode`` fails on a full context."""
    from llama_cpp import StoppingCriteriaList

    sampled = 0

    def limit(input_ids: Any, logits: Any) -> bool:
        nonlocal sampled
        sampled += 1
        return sampled > max_tokens or len(input_ids) >= n_ctx

    return StoppingCriteriaList([limit, *(others or [])])


def capture(
    model_path: str | os.PathLike[str],
    prompts: str | Iterable[str],
    preset: str | Preset = "standard",
    max_tokens: int = 32,
    out: str | os.PathLike[str] | None = None,
    *,
    model_family: str = "auto",
    temperature: float = 0.0,
    seed: int = 0,
    n_ctx: int = 512,
    n_threads: int | None = None,
    chat: ChatMode = "auto",
    on_event: EventHook | None = None,
    control: steer.ControlSpec | None = None,
    control_layers: str | tuple[int, int] | None = None,
    **preset_options: Any,
) -> Capture:
    """Capture ``prompts`` on the model at ``model_path``; save to ``out`` when given.

    ``control=("NAME.gguf", strength)`` steers every trial with that control vector (llama.cpp's
    ``--control-vector`` format), on the blocks ``control_layers`` (inclusive ``(first, last)`` or
    ``"4-14"``; default: the vector's own); see ``Session.set_control``.

    ``chat`` as in ``Session.run`` ("auto": the model's chat template when it has one). Every
    prompt is formatted before the first trial runs, so a template error stops the capture
    before anything is captured. On KeyboardInterrupt the trials and steps captured so far are
    kept, saved to ``out`` (if given) and the interrupt is re-raised with ``.capture`` attached.
    """
    opts = RunOptions(max_tokens=max_tokens, temperature=temperature, seed=seed, n_ctx=n_ctx, n_threads=n_threads)
    options = {**opts.to_dict(), "chat": check_mode(chat)}
    prompt_list = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompt_list or not all(isinstance(p, str) and p for p in prompt_list):
        raise ValueError("give at least one non-empty prompt")
    emit = on_event or (lambda kind, payload: None)
    with (
        Session(
            model_path,
            preset,
            model_family=model_family,
            n_ctx=n_ctx,
            n_threads=n_threads,
            seed=seed,
            control=control,
            control_layers=control_layers,
            **preset_options,
        ) as session,
        StopAfterDecode(session.collector) as stop,
    ):
        sent = [session.format(p, chat) for p in prompt_list]
        emit("collector", session.collector)
        emit("model", session.collector.model_card)
        i = 0
        try:
            for i, prompt in enumerate(prompt_list):
                stop.check()  # Ctrl-C between trials
                emit("trial_start", (i, prompt))
                session.run(prompt, opts.max_tokens, opts.temperature, opts.seed, emit, chat=sent[i])
        except KeyboardInterrupt as interrupt:
            stop.saving = True
            if session.collector.current_trial is not None:  # interrupted outside generation
                emit("trial_end", session.end_trial(sent[i], interrupted=True))
            interrupt.capture = session.capture(out, options, emit)  # type: ignore[attr-defined]
            raise
        return session.capture(out, options, emit)
