"""Wizard: how many bytes one generated token adds to a capture, estimated from the model card.

Per decode step a capture stores a step header, one statistics record (8 float32 in JSON)
per tensor the preset reads, and per layer and head the top-k attended positions with
their probabilities and the row entropy (see docs/CAPTURE_FORMAT.md). The constants are
the JSON sizes of those records, fitted to real captures: per generated token Gemma 3 270M
measured 0.2 / 17.6 / 72.5 KB for observe / standard / full, estimated 0.2 / 17.9 / 71.8 KB;
tiny llama, gemma3 and phi3 models within 10%. A guide, not a promise. Imports no UI package.
"""

from __future__ import annotations

from typing import Any

STEP_BYTES = 200  # index, phase, pos, token ids/texts, ms, and the top-10 logits' framing
STATS_RECORD_BYTES = 95  # "id": [8 numbers]
LOGITS_BYTES = 220  # top-10 ids and logits
ATTN_POS_BYTES = 14  # one (position, probability) pair
ATTN_HEAD_BYTES = 14  # entropy and list framing per head
# Nodes llama.cpp evaluates per block (views included), fitted to real captures: Gemma 3 has post-norms.
NODES_PER_LAYER = {"gemma": 37, "phi": 27}
DEFAULT_NODES_PER_LAYER = 31
FIXED_NODES = 8  # embedding, final norm, logits and their views


def standard_records(card: Any) -> int:
    """Statistics records the standard preset writes per token: l_out, attn_out, ffn_out per layer
    (plus Gemma's two post-norms), the embedding, final norm and logits."""
    per_layer = 5 if _get(card, "family") == "gemma" else 3
    return _get(card, "n_layer") * per_layer + 3


def full_records(card: Any) -> int:
    per_layer = NODES_PER_LAYER.get(str(_get(card, "family")), DEFAULT_NODES_PER_LAYER)
    return _get(card, "n_layer") * per_layer + FIXED_NODES


def attention_bytes(card: Any, top_k: int = 8) -> int:
    return _get(card, "n_layer") * _get(card, "n_head") * (top_k * ATTN_POS_BYTES + ATTN_HEAD_BYTES)


def bytes_per_token(card: Any, preset: str, top_k: int = 8) -> int:
    """Estimated capture bytes per generated token for ``preset`` on the model of ``card``."""
    if preset == "observe":
        return STEP_BYTES
    records = standard_records(card) if preset == "standard" else full_records(card)
    return STEP_BYTES + LOGITS_BYTES + records * STATS_RECORD_BYTES + attention_bytes(card, top_k)


def human_size(n: float) -> str:
    """1536 -> '1.5 KB' (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _get(card: Any, key: str) -> Any:
    value = card.get(key) if isinstance(card, dict) else getattr(card, key)
    return value or 0 if key != "family" else value
