"""``spectra_vis.Llama``: stock ``llama_cpp.Llama`` that honours ``cb_eval`` without a patch.

Stock llama-cpp-python swallows unknown keyword arguments, so ``cb_eval`` would be
silently ignored. ``Llama.__init__`` reads its context parameters from
``llama_cpp.llama_cpp.llama_context_default_params()``; we wrap that function for
the duration of the constructor so the params it returns carry the callback, and
always restore it.  When the callback comes from ``create_callback``, the model also
reports each decode batch and each sampled token to its collector (tokens, texts,
positions and timings of every step).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import llama_cpp
import llama_cpp.llama_cpp as llama_lib

from .collector import collector_of


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

    def __init__(self, *args: Any, cb_eval: Any = None, cb_eval_user_data: Any = None, **kwargs: Any) -> None:
        self._spectra_cb = cb_eval  # a strong reference for the life of the context
        self._spectra_collector = collector_of(cb_eval)
        if self._spectra_collector is not None and self._spectra_collector.preset.name != "observe":
            if kwargs.get("flash_attn"):
                raise ValueError("flash_attn=True hides the attention probabilities; capture needs flash_attn=False")
            kwargs["flash_attn"] = False
        if cb_eval is None:
            super().__init__(*args, **kwargs)
        else:
            with _params_with_callback(cb_eval, cb_eval_user_data):
                super().__init__(*args, **kwargs)
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
