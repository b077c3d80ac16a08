"""Capture stage: ``TensorCollector``, the public facade of a capture, and ``create_callback``.

A collector is a ``Recorder`` (catalogue, trials, steps) with the lifecycle a user drives
(``start_trial`` / ``end_trial`` / ``save_to_json``) and the hooks ``spectra_vis.Llama`` calls
around each decode. ``create_callback`` picks the engine that fills it (``engines.PythonEngine``
or ``native_engine.NativeEngine``). Extend a capture with ``on_tensor=fn`` (see
``recorder.TensorHook``), the way TransformerLens's ``add_hook`` works.

Rules kept here: the callback never raises into C (everything is caught and recorded),
and always returns True in the data phase (False there corrupts the logits).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from spectra_vis.capturing import _ggml
from spectra_vis.capturing._ggml import llama_cpp_version
from spectra_vis.capturing.engines import Engine, PythonEngine
from spectra_vis.capturing.native_engine import native_engine
from spectra_vis.capturing.recorder import Recorder, TensorHook
from spectra_vis.record.naming import FINAL_NORM_LAYER
from spectra_vis.record.presets import Preset, make_preset
from spectra_vis.record.profiles import read_model_card
from spectra_vis.record.records import Step, TrialData
from spectra_vis.store import vectors
from spectra_vis.store.capture_file import Capture, blank_card

StepHook = Callable[[TrialData, list[Step], int | None], None]
"""``fn(trial, steps, token)``: ``steps`` of ``trial`` are finished (their data read), and
``token`` is the token sampled from the last one's logits (None when no token followed: the
trial ended). Called in the decoding thread, between decodes: keep it short."""


class TensorCollector(Recorder):
    """Collects named, per-token tensor data from llama.cpp's eval callback.

    ``model_family="auto"`` reads the family from the GGUF file of the model the
    collector is attached to; ``preset`` chooses what is read (see ``presets``);
    ``on_tensor`` hooks see every array the preset reads (see ``recorder.TensorHook``).
    """

    def __init__(
        self,
        model_family: str = "auto",
        verbose: bool = False,
        preset: str | Preset = "standard",
        *,
        patterns: list[str] | None = None,
        categories: list[str] | None = None,
        top_k: int | None = None,
        full_attention: bool | None = None,
        vectors: list[str] | None = None,
        vector_dtype: str | None = None,
        max_vector_bytes: int | None = None,
        on_tensor: TensorHook | Iterable[TensorHook] = (),
    ) -> None:
        chosen = make_preset(
            preset,
            patterns=patterns,
            categories=categories,
            top_k=top_k,
            full_attention=full_attention,
            vectors=vectors,
            vector_dtype=vector_dtype,
            max_vector_bytes=max_vector_bytes,
        )
        super().__init__(chosen, verbose=verbose, on_tensor=on_tensor)
        self.model_family = model_family.lower()
        self.model_card: Any = None
        self.model_path: str | None = None
        self.n_ctx: int | None = None
        self.engine: Engine = PythonEngine(self)
        self._trial_t0 = 0.0
        self.step_hook: StepHook | None = None  # live runs: each step as soon as its token is sampled
        self._unreported: list[Step] = []
        self.decoded_at = 0.0
        _ggml.self_check()

    @property
    def callback_kind(self) -> str:
        """Which engine fills this collector: "python" or "native"."""
        return self.engine.kind

    def add_hook(self, fn: TensorHook) -> None:
        """Also call ``fn`` for every array read; only before ``create_callback`` (the native engine
        decides per node, once, whether Python sees its data)."""
        if self.engine.kind == "native":
            raise RuntimeError("add hooks before create_callback(collector), or pass on_tensor= to TensorCollector")
        self.hooks.append(fn)

    # ----- lifecycle -------------------------------------------------------------
    def attach(self, model: Any) -> None:
        """Bind to a spectra_vis.Llama: tokens, texts, resets and the model card come from it."""
        self.bind_model(model)
        self.model_path = str(model.model_path)
        self.n_ctx = int(model.n_ctx())
        self.model_card = read_model_card(self.model_path, self.model_family)

    def enable(self) -> None:
        self.enabled = True

    def disable(self) -> None:
        self.enabled = False

    def clear(self) -> None:
        self.trials.clear()
        self.current_trial = None

    def new_capture(self) -> None:
        """Start another capture on the same model: no trials, the vector budget whole again
        (the catalogue stays: same model, same graph)."""
        self.clear()
        self.vector_bytes = 0
        self.vectors_stopped = None
        self._unreported = []

    def start_trial(self, prompt: str = "") -> None:
        """Begin a trial. The attached model's KV cache is reset so the prefill covers the whole prompt."""
        model = self.model
        if model is not None:
            model.reset()
        self.current_trial = TrialData(trial_id=len(self.trials), prompt=prompt)
        self.graph = None
        self._pending = None
        self._sampled_any = False
        self.interrupt_requested = False
        self._unreported = []
        self._trial_t0 = time.perf_counter()
        self.engine.start_trial()
        self.enable()
        self._log(f"started trial {self.current_trial.trial_id}")

    def end_trial(self, response: Any = "", interrupted: bool = False) -> TrialData:
        """Finish the current trial; ``response`` may be text or a completion dict."""
        self.disable()
        trial = self.current_trial
        if trial is None:
            raise RuntimeError("no active trial to end; call start_trial(prompt) first")
        self.engine.end_trial(trial)
        self.close_graph_timing()
        self._report(None)
        trial.inference_time_ms = (time.perf_counter() - self._trial_t0) * 1000
        trial.response = _response_text(response)
        trial.interrupted = interrupted
        self._finish_tokens(trial)
        trial.tensor_counts = {self.tensors[i].key: n for i, n in trial.counts.items()}
        self.trials.append(trial)
        self.current_trial = None
        self.graph = None
        self._log(
            f"ended trial {trial.trial_id}: {len(trial.tensor_counts)} unique tensors, "
            f"{len(trial.steps)} steps, {trial.inference_time_ms:.1f} ms"
        )
        return trial

    def to_capture(self, options: dict[str, Any] | None = None) -> Capture:
        """The capture (format v2) of everything collected so far."""
        card = self.model_card.to_dict() if self.model_card is not None else self._unknown_card()
        return Capture.build(
            model=card,
            preset=self.preset.to_dict(),
            options={"n_ctx": self.n_ctx, **(options or {})},
            tensors=[t.to_dict() for t in self.tensors],
            trials=[t.to_dict(len(self.tensors)) for t in self.trials],
            llama_cpp_python=llama_cpp_version(),
            arrays=_vector_arrays(self.trials),
        )

    def save_to_json(self, filepath: str) -> str:
        """Write the capture (format v2) atomically; returns the path written."""
        return str(self.to_capture().save(filepath))

    def get_statistics(self) -> dict[str, Any]:
        return {
            "total_callbacks": self.total_callbacks,
            "unique_tensors": len(self.tensors),
            "total_trials": len(self.trials),
            "model_family": self.model_family,
            "preset": self.preset.name,
        }

    # ----- hooks called by spectra_vis.Llama ---------------------------------------
    def before_decode(self, token_ids: list[int], positions: list[int]) -> None:
        self.expect_batch(token_ids, positions)
        self.engine.boundary()

    def after_decode(self, elapsed_ms: float, steps_before: int) -> None:
        self.decoded_at = time.time()  # when the last decode ended (unix seconds): live event latency
        self.engine.flush()
        trial = self.current_trial
        if trial is not None:
            new = trial.steps[steps_before:]
            for s in new:
                s.ms = elapsed_ms / len(new)
            if self.step_hook is not None:
                self._unreported.extend(new)
        self.batch_done()

    def on_sample(self, token: int) -> None:
        if self.current_trial is not None and self.enabled:
            self.current_trial.sampled.append(int(token))
            self._sampled_any = True
            self._report(int(token))

    def _report(self, token: int | None) -> None:
        """Hand the steps finished since the last report to ``step_hook`` (never raises)."""
        if self.step_hook is None or not self._unreported or self.current_trial is None:
            return
        steps, self._unreported = self._unreported, []
        self.guarded(None, self.step_hook, self.current_trial, steps, token)

    # ----- internals ----------------------------------------------------------------
    def _finish_tokens(self, trial: TrialData) -> None:
        prompt_ids = [i for s in trial.steps if s.phase == "prefill" for i in s.token_ids]
        trial.n_prompt = len(prompt_ids) or sum(s.n_tokens for s in trial.steps if s.phase == "prefill")
        generated = trial.sampled or [i for s in trial.steps if s.phase == "decode" for i in s.token_ids]
        trial.token_ids = prompt_ids + generated
        trial.token_texts = [self.token_text(i) for i in trial.token_ids]

    def _unknown_card(self) -> dict[str, Any]:
        """Card for a collector never attached to a model (e.g. a patched llama-cpp-python's Llama)."""
        n_layer = len({t.layer for t in self.tensors if 0 <= t.layer < FINAL_NORM_LAYER})
        family = self.model_family if self.model_family != "auto" else "generic"
        return blank_card(os.path.basename(self.model_path or "unknown.gguf"), family, "unknown", n_layer)


def _vector_arrays(trials: list[TrialData]) -> dict[str, np.ndarray]:
    """Per trial and tensor, its rows in step order, each row's token position and scale
    (``store.vectors``'s names): a step of m rows holds its last m tokens."""
    out: dict[str, np.ndarray] = {}
    for trial in trials:
        rows: dict[int, list[np.ndarray]] = {}
        pos: dict[int, list[np.ndarray]] = {}
        scales: dict[int, list[np.ndarray]] = {}
        for step in trial.steps:
            end = step.pos + step.n_tokens
            for tid, r in step.vectors.items():
                rows.setdefault(tid, []).append(r)
                pos.setdefault(tid, []).append(np.arange(end - len(r), end, dtype=np.int32))
                scales.setdefault(tid, []).append(step.vector_scales[tid])
        for tid, parts in rows.items():
            out[vectors.array_name(trial.trial_id, tid)] = np.concatenate(parts)
            out[vectors.array_name(trial.trial_id, tid, "pos")] = np.concatenate(pos[tid])
            out[vectors.array_name(trial.trial_id, tid, "scale")] = np.concatenate(scales[tid])
    return out


def _response_text(response: Any) -> str:
    if isinstance(response, dict):
        try:
            return str(response["choices"][0]["text"])
        except (KeyError, IndexError, TypeError):
            return ""
    return "" if response is None else str(response)


def create_callback(collector: TensorCollector, native: bool | None = None) -> Any:
    """A ctypes cb_eval for ``collector``. Keep a reference for the life of the model.

    ``native=None`` uses the C engine (``native_engine``) when it can be built and
    ``SPECTRA_VIS_NATIVE`` is not 0, else the Python engine (with a warning once if the C one
    was wanted but is unavailable); True requires it, False refuses it.
    ``collector.callback_kind`` says which one runs.
    """
    engine: Engine | None = native_engine(collector, native)
    collector.engine = engine if engine is not None else PythonEngine(collector)
    callback: Any = collector.engine.callback
    callback.collector = collector
    return callback


def collector_of(callback: Any) -> TensorCollector | None:
    """The collector behind a callback made by create_callback, if any."""
    found = getattr(callback, "collector", None)
    return found if isinstance(found, TensorCollector) else None
