"""Capture records: what the collector builds, one tensor, one step, one trial.

Plain dataclasses with ``to_dict`` giving the capture format's JSON shapes
(docs/CAPTURE_FORMAT.md); numpy arrays stay arrays until saved. Depends on nothing in
the package, so the collector, the native callback and the capture file share them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class TensorInfo:
    """One graph node of the catalogue, keyed by position in the graph, not by name alone."""

    id: int
    key: str
    name: str
    op: str
    dtype: str
    shape: list[int]
    layer: int
    type: str
    category: str
    depth: int
    order: int
    view: bool
    captured: bool
    vector: bool = False  # its rows are kept whole (activation vectors, in the companion file)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Step:
    """One graph evaluation (a prefill batch or one decoded token)."""

    index: int
    phase: str
    pos: int
    n_tokens: int
    token_ids: list[int] = field(default_factory=list)
    token_texts: list[str] = field(default_factory=list)
    ms: float | None = None
    stats: dict[int, np.ndarray] = field(default_factory=dict)
    rows: dict[int, np.ndarray] = field(default_factory=dict)
    attention: dict[int, dict[str, Any]] = field(default_factory=dict)
    logits: dict[str, Any] | None = None
    vectors: dict[int, np.ndarray] = field(default_factory=dict)  # tid -> the step's last rows, (m, width)
    vector_scales: dict[int, np.ndarray] = field(default_factory=dict)  # tid -> (m,) float32: row = stored * scale

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "phase": self.phase,
            "pos": self.pos,
            "n_tokens": self.n_tokens,
            "token_ids": self.token_ids,
            "token_texts": self.token_texts,
            "ms": self.ms,
            "stats": {str(k): v for k, v in self.stats.items()},
            "rows": {str(k): v for k, v in self.rows.items()},
            "attention": {str(k): v for k, v in self.attention.items()},
            "logits": self.logits,
        }


@dataclass
class TrialData:
    """One prompt run: its tokens, timings and steps. ``tensor_counts`` maps tensor key to count.

    ``chat`` says whether the prompt was formatted with the model's chat template, ``prompt_text``
    is the exact text sent (None: ``prompt`` itself) and ``template``, when known, marks each prompt
    token True when the template or tokenizer added it rather than the user's text.
    """

    trial_id: int
    prompt: str = ""
    chat: bool = False
    prompt_text: str | None = None
    template: list[bool] | None = None
    response: str = ""
    inference_time_ms: float = 0.0
    steps: list[Step] = field(default_factory=list)
    counts: dict[int, int] = field(default_factory=dict)
    sampled: list[int] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    token_texts: list[str] = field(default_factory=list)
    n_prompt: int = 0
    interrupted: bool = False
    errors: list[str] = field(default_factory=list)
    tensor_counts: dict[str, int] = field(default_factory=dict)
    vectors_dropped: dict[str, Any] | None = None  # where and why vectors stopped (the byte budget)
    control: dict[str, Any] | None = None  # the control vector applied (format 2.3; docs/CAPTURE_FORMAT.md)
    projection: dict[str, Any] | None = None  # the l_out rows projected on the control vector's directions
    sweep: dict[str, Any] | None = None  # the trial's place in a sweep (spectra-vis steer try)

    def timings(self) -> dict[str, float | None]:
        pre = [s for s in self.steps if s.phase == "prefill"]
        dec = [s for s in self.steps if s.phase == "decode"]
        pre_ms = sum(s.ms or 0.0 for s in pre)
        dec_ms = sum(s.ms or 0.0 for s in dec)
        pre_tok = sum(s.n_tokens for s in pre)
        return {
            "total_ms": self.inference_time_ms,
            "prefill_ms": pre_ms,
            "decode_ms": dec_ms,
            "prefill_tokens": pre_tok,
            "decode_tokens": len(dec),
            "prefill_tokens_per_s": pre_tok / pre_ms * 1000 if pre_ms > 0 else None,
            "decode_tokens_per_s": len(dec) / dec_ms * 1000 if dec_ms > 0 else None,
        }

    def _steering(self) -> dict[str, Any]:
        """The steering fields (format 2.3) the trial has: control, sweep, projection."""
        fields = (("control", self.control), ("sweep", self.sweep), ("projection", self.projection))
        return {k: v for k, v in fields if v}

    def to_dict(self, n_tensors: int) -> dict[str, Any]:
        tokens: dict[str, Any] = {"ids": self.token_ids, "texts": self.token_texts, "n_prompt": self.n_prompt}
        if self.template is not None:
            tokens["template"] = self.template
        return {
            "id": self.trial_id,
            "prompt": self.prompt,
            "chat": self.chat,
            "prompt_text": self.prompt if self.prompt_text is None else self.prompt_text,
            "response": self.response,
            "tokens": tokens,
            "timings": self.timings(),
            "counts": [self.counts.get(i, 0) for i in range(n_tensors)],
            "interrupted": self.interrupted,
            "errors": self.errors,
            "steps": [s.to_dict() for s in self.steps],
            **({"vectors_dropped": self.vectors_dropped} if self.vectors_dropped else {}),
            **self._steering(),
        }
