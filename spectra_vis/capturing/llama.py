"""``spectra_vis.Llama``: stock ``llama_cpp.Llama`` that honours ``cb_eval`` without a patch.

Stock llama-cpp-python swallows unknown keyword arguments, so ``cb_eval`` would be
silently ignored. ``Llama.__init__`` reads its context parameters from
``llama_cpp.llama_cpp.llama_context_default_params()``; we wrap that function for
the duration of the constructor so the params it returns carry the callback, and
always restore it.  Before the first model loads with a llama.cpp build, ``spectra_vis.capturing.probe``
checks in a child process that the build does not crash on this CPU.  When the callback comes
from ``create_callback``, the model also reports each decode batch and each sampled token to
its collector (tokens, texts, positions and timings of every step).
"""

from __future__ import annotations

import contextlib
import ctypes
import time
from collections.abc import Iterator
from typing import Any

import llama_cpp
import llama_cpp.llama_cpp as llama_lib

from spectra_vis.capturing._ggml import llama_cpp_version
from spectra_vis.capturing.collector import collector_of
from spectra_vis.capturing.probe import check_build
from spectra_vis.record.profiles import ModelFileError

GGML_LOG_LEVEL_WARN = 3  # ggml's enum: NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5


@contextlib.contextmanager
def _llama_log(verbose: bool) -> Iterator[list[str]]:
    """While a model loads: keep llama.cpp's log lines (the reason when loading fails) and
    pass them on only when ``verbose``; llama-cpp-python's own logger is back afterwards.
    Without it, a failed load says only "Failed to load model" and, with verbose=False,
    llama.cpp's warnings still reach stderr."""
    from llama_cpp import _logger

    lines: list[str] = []

    @llama_lib.llama_log_callback
    def keep(level: int, text: bytes, user_data: Any) -> None:
        if level >= GGML_LOG_LEVEL_WARN:
            lines.append(text.decode("utf-8", "replace").strip())
        if verbose:
            _logger.llama_log_callback(level, text, user_data)

    llama_lib.llama_log_set(keep, ctypes.c_void_p(0))
    try:
        yield lines
    finally:
        llama_lib.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))


def _load_error(path: Any, lines: list[str]) -> ModelFileError:
    """A one-line error naming llama.cpp's reason for refusing ``path``."""
    reasons = [line.rsplit("error loading model: ", 1)[-1] for line in lines if "error loading model" in line]
    errors = [line for line in lines if "error" in line.lower() or "fail" in line.lower()]
    reason = (reasons or errors or ["no reason given by llama.cpp"])[-1]
    hint = (
        "this llama.cpp does not know the architecture; a newer llama-cpp-python may"
        if "architecture" in reason
        else "is the file complete and a model llama.cpp supports?"
    )
    return ModelFileError(
        f"llama.cpp (llama-cpp-python {llama_cpp_version()}) could not load {path}: {reason} ({hint})"
    )


@contextlib.contextmanager
def _params_with_callback(cb_eval: Any, user_data: Any) -> Iterator[None]:
    original = llama_lib.llama_context_default_params

    def patched() -> Any:
        params = original()
        params.cb_eval = cb_eval
        params.cb_eval_user_data = user_data
        return params

    llama_lib.llama_context_default_params = patched
    try:
        yield
    finally:
        llama_lib.llama_context_default_params = original


class Llama(llama_cpp.Llama):
    """Exactly ``llama_cpp.Llama``, plus ``cb_eval`` / ``cb_eval_user_data`` that work."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Llama:
        check_build()  # a build that crashes on this CPU is explained here, before it can crash
        return super().__new__(cls)

    def __init__(self, *args: Any, cb_eval: Any = None, cb_eval_user_data: Any = None, **kwargs: Any) -> None:
        self._spectra_cb = cb_eval  # a strong reference for the life of the context
        self._spectra_collector = collector_of(cb_eval)
        if self._spectra_collector is not None and self._spectra_collector.preset.name != "observe":
            if kwargs.get("flash_attn"):
                raise ValueError("flash_attn=True hides the attention probabilities; capture needs flash_attn=False")
            kwargs["flash_attn"] = False
        path = kwargs.get("model_path", args[0] if args else None)
        with _llama_log(bool(kwargs.get("verbose", True))) as log:
            try:
                if cb_eval is None:
                    super().__init__(*args, **kwargs)
                else:
                    with _params_with_callback(cb_eval, cb_eval_user_data):
                        super().__init__(*args, **kwargs)
            except ValueError as exc:
                if "Failed to load model" in str(exc):
                    raise _load_error(path, log) from None
                raise
        if self._spectra_collector is not None:
            self._spectra_collector.attach(self)
            self._wrap_decode()

    def _wrap_decode(self) -> None:
        ctx = self._ctx
        decode = ctx.decode
        collector = self._spectra_collector
        assert collector is not None

        def traced_decode(batch: Any) -> Any:
            b = batch.batch
            n = int(b.n_tokens)
            ids = [int(b.token[i]) for i in range(n)] if b.token else []
            positions = [int(b.pos[i]) for i in range(n)] if b.pos else []
            steps_before = len(collector.current_trial.steps) if collector.current_trial else 0
            collector.before_decode(ids, positions)
            t0 = time.perf_counter()
            try:
                return decode(batch)
            finally:
                collector.after_decode((time.perf_counter() - t0) * 1000, steps_before)
                if collector.interrupt_requested:
                    collector.interrupt_requested = False
                    raise KeyboardInterrupt

        ctx.decode = traced_decode  # type: ignore[method-assign]

    def sample(self, *args: Any, **kwargs: Any) -> int:
        token = super().sample(*args, **kwargs)
        if self._spectra_collector is not None:
            self._spectra_collector.on_sample(token)
        return token
