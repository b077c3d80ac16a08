"""Capture stage: the eval callback and the collector that turns its calls into trials and steps.

llama.cpp calls the callback twice per wanted node: an *ask* call for every graph
node (we register the node and decide), and a *data* call for the nodes we asked
for, once their values are computed (we read them and compute statistics).
Depends on ``_ggml`` (pointers), ``naming`` and ``presets``; imports no UI package.

Rules kept here: the callback never raises into C (everything is caught and recorded),
and always returns True in the data phase (False there corrupts the logits).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from spectra_vis.capturing import _ggml
from spectra_vis.record.naming import EMBED_LAYER, FINAL_NORM_LAYER, parse_name, parse_weight, type_info, variant_type
from spectra_vis.record.presets import Preset, make_preset
from spectra_vis.record.records import Step, TensorInfo, TrialData
from spectra_vis.record.stats import attention_summary, drop_future, rows_stats, tensor_stats, top_logits

GRAPH_START_NAMES = (b"inp_embd", b"embd")
MAX_ERRORS = 200
LOGITS_TOP_K = 10
ROW_AXIS_FROM_END = {"kq": 2, "kq_soft_max": 2, "kqv": 2}  # (head, token, kv) tensors


class _Graph:
    """Per-evaluation state: which pointer is which tensor, name occurrences, the current step."""

    __slots__ = ("ptr_tid", "occ", "anchor", "offset", "step", "anchor_layer")

    def __init__(self, step: Step | None) -> None:
        self.ptr_tid: dict[int, int] = {}
        self.occ: dict[bytes, int] = {}
        self.anchor: tuple[Any, ...] = ("<start>", 0)
        self.offset = 0
        self.step = step
        self.anchor_layer = EMBED_LAYER


class TensorCollector:
    """Collects named, per-token tensor data from llama.cpp's eval callback.

    ``model_family="auto"`` reads the family from the GGUF file of the model the
    collector is attached to; ``preset`` chooses what is read (see ``presets``).
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
    ) -> None:
        self.model_family = model_family.lower()
        self.verbose = verbose
        self.preset = make_preset(
            preset, patterns=patterns, categories=categories, top_k=top_k, full_attention=full_attention
        )
        self.enabled = False
        self.tensors: list[TensorInfo] = []
        self._tids: dict[Any, int] = {}
        self._keys: set[str] = set()
        self._want: list[bool] = []
        self._variants: dict[int, tuple[dict[tuple[str, str], int], dict[str, int]]] = {}
        self.trials: list[TrialData] = []
        self.current_trial: TrialData | None = None
        self.model_card: Any = None
        self.model_path: str | None = None
        self.n_ctx: int | None = None
        self.total_callbacks = 0
        self.interrupt_requested = False
        self._graph: _Graph | None = None
        self._model_ref: Callable[[], Any] | None = None
        self._pending: tuple[list[int], list[int], int] | None = None
        self._trial_t0 = 0.0
        self._graph_t0 = 0.0
        self._sampled_any = False
        self._texts: dict[int, str] = {}  # token id -> text, for the attached model
        self._native: Any = None  # native_capture.NativeCallback when the C callback drives this collector
        self.callback_kind = "python"
        _ggml.self_check()

    # ----- lifecycle -------------------------------------------------------------
    def attach(self, model: Any) -> None:
        """Bind to a spectra_vis.Llama: tokens, texts, resets and the model card come from it."""
        from spectra_vis.record.profiles import read_model_card

        self._model_ref = weakref.ref(model)
        self._texts = {}
        self.model_path = str(model.model_path)
        self.n_ctx = int(model.n_ctx())
        self.model_card = read_model_card(self.model_path, self.model_family)

    @property
    def model(self) -> Any:
        return self._model_ref() if self._model_ref else None

    def enable(self) -> None:
        self.enabled = True

    def disable(self) -> None:
        self.enabled = False

    def clear(self) -> None:
        self.trials.clear()
        self.current_trial = None

    def start_trial(self, prompt: str = "") -> None:
        """Begin a trial. The attached model's KV cache is reset so the prefill covers the whole prompt."""
        model = self.model
        if model is not None:
            model.reset()
        self.current_trial = TrialData(trial_id=len(self.trials), prompt=prompt)
        self._graph = None
        self._pending = None
        self._sampled_any = False
        self.interrupt_requested = False
        self._trial_t0 = time.perf_counter()
        if self._native is not None:
            self._native.start_trial()
        self.enable()
        self._log(f"started trial {self.current_trial.trial_id}")

    def end_trial(self, response: Any = "", interrupted: bool = False) -> TrialData:
        """Finish the current trial; ``response`` may be text or a completion dict."""
        self.disable()
        trial = self.current_trial
        if trial is None:
            raise RuntimeError("no active trial to end; call start_trial(prompt) first")
        if self._native is not None:
            self._native.end_trial(trial)
        self._close_graph_timing()
        trial.inference_time_ms = (time.perf_counter() - self._trial_t0) * 1000
        trial.response = _response_text(response)
        trial.interrupted = interrupted
        self._finish_tokens(trial)
        trial.tensor_counts = {self.tensors[i].key: n for i, n in trial.counts.items()}
        self.trials.append(trial)
        self.current_trial = None
        self._graph = None
        self._log(
            f"ended trial {trial.trial_id}: {len(trial.tensor_counts)} unique tensors, "
            f"{len(trial.steps)} steps, {trial.inference_time_ms:.1f} ms"
        )
        return trial

    def save_to_json(self, filepath: str) -> str:
        """Write the capture (format v2) atomically; returns the path written."""
        from spectra_vis.store.capture_file import Capture

        return str(Capture.from_collector(self).save(filepath))

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
        self._pending = (token_ids, positions, 0)
        self._graph = None  # the next node starts a new graph
        if self._native is not None:
            self._native.boundary()

    def after_decode(self, elapsed_ms: float, steps_before: int) -> None:
        if self._native is not None:
            self._native.flush()
        trial = self.current_trial
        if trial is not None:
            new = trial.steps[steps_before:]
            for s in new:
                s.ms = elapsed_ms / len(new)
        self._pending = None

    def on_sample(self, token: int) -> None:
        if self.current_trial is not None and self.enabled:
            self.current_trial.sampled.append(int(token))
            self._sampled_any = True

    # ----- the callback ---------------------------------------------------------------
    def record_tensor(self, ptr: int, ask: bool) -> bool:
        """Entry point from the C callback. Never raises; True in the data phase always."""
        default = not ask  # read nothing when in doubt; never abort the data phase
        if not self.enabled or self.current_trial is None:
            return default
        self.total_callbacks += 1
        return self.guarded(default, self._on_ask if ask else self._on_data, ptr)

    def guarded(self, default: Any, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` for a caller in C: nothing propagates into llama.cpp. Ctrl-C is kept for
        after the decode (``interrupt_requested``), any other error is recorded on the trial;
        both give ``default``."""
        try:
            return fn(*args)
        except KeyboardInterrupt:
            self.interrupt_requested = True
        except BaseException as exc:  # noqa: BLE001 - nothing may propagate into C
            self._error(f"{type(exc).__name__}: {exc}")
        return default

    def _on_ask(self, ptr: int) -> bool:
        t = _ggml.tensor(ptr)
        raw = t.name
        g = self._graph
        if g is None or raw in GRAPH_START_NAMES and g.ptr_tid:
            g = self._new_graph(t)
        tid = self._node_tid(ptr, t, raw, g)
        counts = self.current_trial.counts  # type: ignore[union-attr]
        counts[tid] = counts.get(tid, 0) + 1
        return self._want[tid]

    def _node_tid(self, ptr: int, t: _ggml.GgmlTensor, raw: bytes, g: _Graph) -> int:
        """The catalogue id of node ``t``, the next node of graph ``g`` (registered when new)."""
        key = _next_key(g, raw)
        tid = self._tids.get(key)
        if tid is None:
            tid = self._register(ptr, t, raw, key, g)
        g.ptr_tid[ptr] = tid
        return tid

    def _on_data(self, ptr: int) -> bool:
        g = self._graph
        tid = g.ptr_tid.get(ptr) if g else None
        if g is None or tid is None or g.step is None:
            return True
        self._read_node(ptr, tid, g.step)
        return True

    def _read_node(self, ptr: int, tid: int, step: Step) -> None:
        """Read node ``tid`` (its data is ready) into ``step``: statistics, rows, attention, logits."""
        info = self.tensors[tid]
        t = _ggml.tensor(ptr)
        arr = _ggml.read_array(ptr, t)
        if arr is None:
            self._error(f"{info.key}: {info.dtype} tensor not readable on the host")
            return
        if info.type == "kq_soft_max":
            step.attention[tid] = self._attention(arr, step)
            return
        step.stats[tid] = tensor_stats(arr)
        rows = _token_rows(arr, step.n_tokens, ROW_AXIS_FROM_END.get(info.type))
        if rows is not None:
            step.rows[tid] = rows_stats(rows)
        if info.type == "result_output":
            step.logits = top_logits(arr, LOGITS_TOP_K)

    # ----- internals ----------------------------------------------------------------
    def _new_graph(self, first: _ggml.GgmlTensor) -> _Graph:
        trial = self.current_trial
        assert trial is not None
        self._close_graph_timing()
        n_tokens = int(first.ne[1]) if first.name in GRAPH_START_NAMES else 0
        if not n_tokens and self._pending is not None:
            n_tokens = len(self._pending[0]) - self._pending[2]
        step = Step(index=len(trial.steps), phase=self._phase(trial, n_tokens), pos=0, n_tokens=n_tokens)
        prev = trial.steps[-1] if trial.steps else None
        step.pos = prev.pos + prev.n_tokens if prev else 0
        if self._pending is not None:
            ids, positions, offset = self._pending
            step.token_ids = [int(i) for i in ids[offset : offset + n_tokens]]
            if offset < len(positions):
                step.pos = int(positions[offset])
            self._pending = (ids, positions, offset + n_tokens)
            step.token_texts = [self._token_text(i) for i in step.token_ids]
        trial.steps.append(step)
        self._graph = _Graph(step)
        self._graph_t0 = time.perf_counter()
        return self._graph

    def _close_graph_timing(self) -> None:
        trial = self.current_trial
        if trial and trial.steps and trial.steps[-1].ms is None and self._pending is None and self._graph:
            trial.steps[-1].ms = (time.perf_counter() - self._graph_t0) * 1000

    def _phase(self, trial: TrialData, n_tokens: int) -> str:
        if self.model is not None:
            return "decode" if self._sampled_any else "prefill"
        return "prefill" if not trial.steps or (n_tokens > 1 and trial.steps[-1].phase == "prefill") else "decode"

    def _register(self, ptr: int, t: _ggml.GgmlTensor, raw: bytes, key: tuple[Any, ...], g: _Graph) -> int:
        name = raw.decode("utf-8", "replace") or "(unnamed)"
        parsed = parse_name(name)
        op = _ggml.op_desc(ptr)
        layer, base = parsed.layer, parsed.base
        if layer is None or parsed.unnamed:
            layer, base = self._attribute(t, op, base, g)
        if not parsed.unnamed:
            g.anchor_layer = layer
        seen = self._variants.setdefault(layer, ({}, {}))
        ttype = variant_type(base, op, seen[0], seen[1])
        category, depth = type_info(ttype)
        tid = len(self.tensors)
        ukey = self._unique_key(name if key[1] == 0 or parsed.unnamed else f"{name}#{key[1]}")
        info = TensorInfo(
            id=tid,
            key=ukey,
            name=name,
            op=op,
            dtype=_ggml.type_name(t.type),
            shape=list(_ggml.shape(t)),
            layer=layer,
            type=ttype,
            category=category,
            depth=depth,
            order=tid,
            view=parsed.view or op in ("VIEW", "RESHAPE", "PERMUTE", "TRANSPOSE"),
            captured=False,
        )
        info.captured = self.preset.wants(name, ttype, category, info.view)
        self.tensors.append(info)
        self._want.append(info.captured)
        self._tids[key] = tid
        return tid

    def _attribute(self, t: _ggml.GgmlTensor, op: str, base: str, g: _Graph) -> tuple[int, str]:
        """Layer and type of a node with no layer in its name, from its sources.

        A weight source names it (``blk.0.attn_output.weight`` -> layer 0, attn_out);
        otherwise it takes the layer of its graph sources and, when unnamed, the type
        of its first one (``SCALE(Qcur)`` -> ``Qcur.scale``). A bare ``norm`` of the
        last residual stream is the final norm (998).
        """
        srcs: list[TensorInfo] = []
        for src in _ggml.src_pointers(t):
            tid = g.ptr_tid.get(src)
            if tid is not None:
                srcs.append(self.tensors[tid])
                continue
            src_name = _ggml.tensor(src).name.decode("utf-8", "replace")
            weight = parse_weight(src_name)
            if weight is not None and op in ("MUL_MAT", "MUL_MAT_ID", "MUL", "ADD"):
                return weight[0] if weight[0] is not None else g.anchor_layer, base or weight[1]
            if src_name == "inp_out_ids" and op == "GET_ROWS":
                base = base or "out_rows"
        if base == "norm" and srcs and srcs[0].type in ("l_out", "out_rows"):
            return FINAL_NORM_LAYER, base
        block = [s.layer for s in srcs if 0 <= s.layer < FINAL_NORM_LAYER]
        layer = max(block) if block else (srcs[0].layer if srcs else g.anchor_layer)
        if not base and srcs:
            base = srcs[0].type.split(".", 1)[0]
        return layer, base or "other"

    def _unique_key(self, key: str) -> str:
        out, n = key, 1
        while out in self._keys:
            n += 1
            out = f"{key}~{n}"
        self._keys.add(out)
        return out

    def _attention(self, arr: np.ndarray, step: Step) -> dict[str, Any]:
        """Top-k positions, probabilities and entropy per head and token row, padding cropped."""
        probs = arr.reshape((-1,) + arr.shape[-2:])  # (head, token, kv)
        n_real = min(step.pos + step.n_tokens, probs.shape[-1])
        cropped = probs[..., :n_real]
        out = drop_future(attention_summary(cropped, self.preset.top_k), step.pos)
        out["n_kv"] = n_real
        self._check_lost_mass(float(probs[..., n_real:].sum(axis=-1).max()) if probs.shape[-1] > n_real else 0.0)
        if self.preset.full_attention:
            out["full"] = cropped.astype(np.float32).copy()
        return out

    def _check_lost_mass(self, lost: float) -> None:
        """Attention probability beyond the cropped sequence means KV cells are not positions."""
        if lost > 1e-3:
            self._error(f"attention mass {lost:.3g} beyond the sequence (KV cells are not positions)")

    def _token_text(self, token: int) -> str:
        model = self.model
        if model is None:
            return ""
        text = self._texts.get(token)
        if text is None:
            try:
                text = model.detokenize([token], special=True).decode("utf-8", "replace")
            except Exception:  # noqa: BLE001 - a special token with no text
                text = ""
            self._texts[token] = text
        return text

    def _finish_tokens(self, trial: TrialData) -> None:
        prompt_ids = [i for s in trial.steps if s.phase == "prefill" for i in s.token_ids]
        trial.n_prompt = len(prompt_ids) or sum(s.n_tokens for s in trial.steps if s.phase == "prefill")
        generated = trial.sampled or [i for s in trial.steps if s.phase == "decode" for i in s.token_ids]
        trial.token_ids = prompt_ids + generated
        trial.token_texts = [self._token_text(i) for i in trial.token_ids]

    def _error(self, message: str) -> None:
        trial = self.current_trial
        if trial is not None and len(trial.errors) < MAX_ERRORS:
            step = trial.steps[-1].index if trial.steps else None
            trial.errors.append(f"step {step}: {message}")

    def _log(self, message: str) -> None:
        if self.verbose:
            print(f"[Spectra Vis] {message}")


def _next_key(g: _Graph, raw: bytes) -> tuple[Any, ...]:
    """Advance ``g`` past a node named ``raw``; its key: (name, occurrence), or (anchor, offset) if unnamed."""
    n = g.occ.get(raw, 0)
    g.occ[raw] = n + 1
    if not raw or raw.startswith(b"node_"):
        g.offset += 1
        return (g.anchor, g.offset)
    g.anchor, g.offset = (raw, n), 0
    return g.anchor


def _token_rows(arr: np.ndarray, n_tokens: int, axis_from_end: int | None) -> np.ndarray | None:
    """The tensor as (n_tokens, -1) rows when it has a token axis of that size, else None."""
    if n_tokens <= 1 or arr.ndim < 2:
        return None
    axis = arr.ndim - axis_from_end if axis_from_end else 0
    if axis < 0 or arr.shape[axis] != n_tokens:
        return None
    return np.moveaxis(arr, axis, 0).reshape(n_tokens, -1)


def _response_text(response: Any) -> str:
    if isinstance(response, dict):
        try:
            return str(response["choices"][0]["text"])
        except (KeyError, IndexError, TypeError):
            return ""
    return "" if response is None else str(response)


def create_callback(collector: TensorCollector, native: bool | None = None) -> Any:
    """A ctypes cb_eval for ``collector``. Keep a reference for the life of the model.

    ``native=None`` uses the C callback (``native_capture``) when it can be built and
    ``SPECTRA_VIS_NATIVE`` is not 0, else this module's Python callback (with a warning
    once if the C one was wanted but is unavailable); True requires it, False refuses it.
    ``collector.callback_kind`` says which one runs.
    """
    from llama_cpp import llama_cpp

    from spectra_vis.capturing.native_engine import native_callback

    callback: Any = native_callback(collector, native)
    if callback is None:

        @llama_cpp.ggml_backend_sched_eval_callback
        def callback(tensor_ptr: int, ask: bool, _user_data: int) -> bool:
            return collector.record_tensor(tensor_ptr, ask)

        collector.callback_kind = "python"
    callback.collector = collector  # type: ignore[attr-defined]
    return callback


def collector_of(callback: Any) -> TensorCollector | None:
    """The collector behind a callback made by create_callback, if any."""
    found = getattr(callback, "collector", None)
    return found if isinstance(found, TensorCollector) else None
