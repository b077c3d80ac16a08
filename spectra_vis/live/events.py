"""Live stage: the data of a run's events, built from what the recorder keeps of each step.

A step event is small and taken from the step's own records, read by nothing else than this:
the residual stream's L2 per layer (``l_out``: the statistics of the step's last row), the mean
attention entropy over heads of that row per layer (``kq_soft_max``), the logits' top-k (the
recorder's ``logits``) and, when the capture keeps the residual rows and the model's head is at
hand, the logit lens's top-1 per layer for that row (``capturing.lens.LogitLens``, one pass over
the head for all layers at once) when that pass is cheap (``LIVE_LENS_MAX_MACS``). Runs in the
publishing thread, never in the decoding one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from spectra_vis.capturing.collector import TensorCollector
from spectra_vis.capturing.lens import LogitLens
from spectra_vis.record.naming import FINAL_NORM_LAYER
from spectra_vis.record.records import Step, TensorInfo, TrialData

RESIDUAL, ATTENTION = "l_out", "kq_soft_max"
TOP_K = 10
# The live lens reads the whole output head for every layer's row: layers x n_vocab x n_embd
# multiply-adds a step. Above this it is left to the saved capture (Gemma 3 270M: 18 x 262,144 x 640
# = 3.0e9, 2.8 s a step on 2 shared cores, 30x its decode); below it (small vocabularies) it is cheap.
LIVE_LENS_MAX_MACS = 50_000_000


class StepEvents:
    """Builds the ``trial`` and ``step`` events of one capture's collector."""

    def __init__(self, collector: TensorCollector, lens: LogitLens | None = None) -> None:
        self.collector = collector
        self.lens = lens
        self._seen = 0
        self._residual: dict[int, int] = {}  # layer -> tid of its l_out
        self._attention: dict[int, int] = {}  # layer -> tid of its kq_soft_max

    def _catalogue(self) -> None:
        """Layer -> node, for nodes registered since the last look (the catalogue only grows)."""
        tensors: list[TensorInfo] = self.collector.tensors
        for info in tensors[self._seen :]:
            if 0 <= info.layer < FINAL_NORM_LAYER and info.type == RESIDUAL:
                self._residual.setdefault(info.layer, info.id)
            elif 0 <= info.layer < FINAL_NORM_LAYER and info.type == ATTENTION:
                self._attention.setdefault(info.layer, info.id)
        self._seen = len(tensors)

    def trial(self, trial: TrialData, prompt_steps: list[Step]) -> dict[str, Any]:
        """A trial begins: its prompt, the text sent and the prompt's tokens (its prefill steps)."""
        text = self.collector.token_text
        ids = [i for s in prompt_steps if s.phase == "prefill" for i in s.token_ids]
        return {
            "trial": trial.trial_id,
            "prompt": trial.prompt,
            "prompt_text": trial.prompt_text if trial.prompt_text is not None else trial.prompt,
            "tokens": [text(i) for i in ids],
            "token_ids": ids,
        }

    def step(self, trial_id: int, step: Step, token: int | None, with_lens: bool = True) -> dict[str, Any]:
        """One step: the token sampled from it, the per-layer summaries of its last row, the logits'
        top-k and (``with_lens`` and vectors kept) the lens's top-1 per layer."""
        self._catalogue()
        layers = sorted(L for L, tid in self._residual.items() if tid in step.rows or tid in step.stats)
        l2 = [_last_row_stat(step, self._residual[L], 0) for L in layers]
        out: dict[str, Any] = {
            "trial": trial_id,
            "index": step.index,
            "kind": step.phase,
            "pos": step.pos + step.n_tokens - 1,
            "n_tokens": step.n_tokens,
            "ms": step.ms,
            "token": self.collector.token_text(token) if token is not None else None,
            "token_id": token,
            "layers": layers,
            "l2": l2,
            "attn_entropy": self._entropy(step, layers),
            "top": self._top(step),
            "lens_top1": self._lens(step, layers) if with_lens else None,
        }
        return out

    def _entropy(self, step: Step, layers: list[int]) -> list[float | None] | None:
        if not any(self._attention.get(L) in step.attention for L in layers):
            return None
        out: list[float | None] = []
        for L in layers:
            att = step.attention.get(self._attention.get(L, -1))
            if att is None:
                out.append(None)
                continue
            ent = np.asarray(att["entropy"], dtype=np.float64)  # (head, row)
            out.append(float(ent[:, -1].mean()) if ent.size else None)
        return out

    def _top(self, step: Step) -> list[dict[str, Any]]:
        if step.logits is None:
            return []
        text = self.collector.token_text
        ids = list(step.logits["ids"])[:TOP_K]
        vals = np.asarray(step.logits["logits"], dtype=np.float64)[:TOP_K]
        return [{"id": int(i), "text": text(int(i)), "logit": float(v)} for i, v in zip(ids, vals, strict=False)]

    def lens_ready(self, step: Step) -> bool:
        """Whether the lens can read this step (a head, and the residual rows of every layer kept)."""
        self._catalogue()
        if self.lens is None or not self._residual:
            return False
        if len(self._residual) * self.lens.n_vocab * self.lens.n_embd > LIVE_LENS_MAX_MACS:
            return False
        return all(t in step.vectors for t in self._residual.values())

    def _lens(self, step: Step, layers: list[int]) -> list[dict[str, Any]] | None:
        if self.lens is None or not self.lens_ready(step):
            return None
        chosen = [L for L in sorted(self._residual) if self._residual[L] in step.vectors]
        rows = np.stack([_last_vector(step, self._residual[L]) for L in chosen])
        read = self.lens.read(rows, k=1)
        text = self.collector.token_text
        ids = [int(i) for i in read.top_ids[:, 0]]
        return [
            {"layer": L, "id": ids[j], "text": text(ids[j]), "p": float(read.top_p[j, 0])} for j, L in enumerate(chosen)
        ]


def _last_row_stat(step: Step, tid: int, column: int) -> float:
    """A statistic of the step's last token row of node ``tid``: its per-row statistics when the step
    has several rows, else the node's own (one row: a decode step, or the last layer's output rows)."""
    rows = step.rows.get(tid)
    if rows is not None and len(rows):
        return float(np.asarray(rows)[-1, column])
    return float(np.asarray(step.stats[tid])[column])


def _last_vector(step: Step, tid: int) -> np.ndarray:
    """The step's last row of node ``tid`` as float32 (stored values times the row's scale)."""
    rows = step.vectors[tid]
    return np.asarray(rows[-1], dtype=np.float32) * np.float32(step.vector_scales[tid][-1])
