"""One-call capture: load a GGUF model, run prompts, return (and optionally save) a Capture.

The wizard, the benchmark and the examples call this; it adds no capture logic of
its own beyond running trials in order and keeping what was captured on Ctrl-C.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .capture_file import Capture
from .collector import TensorCollector, TrialData, create_callback
from .presets import Preset
from .profiles import check_gguf_file


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
# "model" (card), "trial_start" (index, prompt), "token" (trial, text), "trial_end" (TrialData);
# lets a UI show progress without the library importing one.
EventHook = Callable[[str, Any], None]


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
    on_event: EventHook | None = None,
    **preset_options: Any,
) -> Capture:
    """Capture ``prompts`` on the model at ``model_path``; save to ``out`` when given.

    On KeyboardInterrupt the trials and steps captured so far are kept, saved to
    ``out`` (if given) and the interrupt is re-raised with ``.capture`` attached.
    """
    from .llama import Llama

    opts = RunOptions(max_tokens=max_tokens, temperature=temperature, seed=seed, n_ctx=n_ctx, n_threads=n_threads)
    prompt_list = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompt_list or not all(isinstance(p, str) and p for p in prompt_list):
        raise ValueError("give at least one non-empty prompt")
    path = str(check_gguf_file(model_path))
    collector = TensorCollector(model_family=model_family, preset=preset, **preset_options)
    callback = create_callback(collector)
    model = Llama(
        model_path=path, n_ctx=opts.n_ctx, n_threads=opts.n_threads, seed=opts.seed, cb_eval=callback, verbose=False
    )
    emit = on_event or (lambda kind, payload: None)
    emit("collector", collector)
    emit("model", collector.model_card)
    try:
        for i, prompt in enumerate(prompt_list):
            emit("trial_start", (i, prompt))
            _run_trial(model, collector, prompt, opts, emit)
    except KeyboardInterrupt as interrupt:
        if collector.current_trial is not None:
            emit("trial_end", collector.end_trial(collector.current_trial.response, interrupted=True))
        result = _finish(collector, opts, out)
        interrupt.capture = result  # type: ignore[attr-defined]
        raise
    finally:
        del model  # the context goes before the callback it calls
    return _finish(collector, opts, out)


def _run_trial(model: Any, collector: TensorCollector, prompt: str, opts: RunOptions, emit: EventHook) -> TrialData:
    collector.start_trial(prompt)
    trial = collector.current_trial
    assert trial is not None
    for chunk in model(prompt, max_tokens=opts.max_tokens, temperature=opts.temperature, seed=opts.seed, stream=True):
        text = chunk["choices"][0]["text"]
        trial.response += text
        emit("token", (trial.trial_id, text))
    done = collector.end_trial(trial.response)
    emit("trial_end", done)
    return done


def _finish(collector: TensorCollector, opts: RunOptions, out: str | os.PathLike[str] | None) -> Capture:
    result = Capture.from_collector(collector, options=opts.to_dict())
    if out is not None:
        result.save(out)
    return result
