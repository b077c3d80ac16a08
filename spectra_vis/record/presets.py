"""Capture presets: which graph nodes the callback asks llama.cpp to hand over.

- observe: none (names, ops, shapes, counts and order only; inference is not split)
- standard: per layer the residual stream, attention output, FFN output and attention
  probabilities, plus embedding, final norm and logits
- full: every node
- custom: glob patterns on raw names or tensor types, and/or categories
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

PRESETS = ("observe", "standard", "full", "custom")

STANDARD_TYPES = frozenset(
    {
        "embd",
        "inp_scaled",
        "l_out",
        "attn_out",
        "ffn_out",
        "attn_post_norm",  # Gemma: what attention actually adds to the residual stream
        "ffn_post_norm",  # Gemma: what the FFN actually adds
        "kq_soft_max",
        "result_norm",
        "result_output",
    }
)

# What standard keeps as whole rows (activation vectors): the residual stream before and after every
# block, what attention and the FFN add to it, and the final norm's output (the logit lens's input).
STANDARD_VECTOR_TYPES = frozenset(
    {"embd", "inp_scaled", "l_out", "attn_out", "ffn_out", "attn_post_norm", "ffn_post_norm", "result_norm"}
)
VECTOR_DTYPES = ("f16", "f32")
DEFAULT_MAX_VECTOR_BYTES = 512 * 2**20

PRESET_HELP = {
    "observe": "names, ops, shapes and counts only; reads no values and does not slow inference",
    "standard": "per layer: residual stream, attention and FFN outputs, attention patterns; plus logits",
    "full": "every node with statistics: the most detail, the largest files and the slowest run",
    "custom": "nodes chosen by glob patterns on names/types and by category",
}


@dataclass
class Preset:
    """What to read. ``top_k`` attended positions per head; ``full_attention`` keeps whole matrices."""

    name: str = "standard"
    patterns: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    top_k: int = 8
    full_attention: bool = False
    vectors: list[str] | None = None  # patterns of nodes whose rows are kept; None: the preset's own
    vector_dtype: str = "f16"
    max_vector_bytes: int = DEFAULT_MAX_VECTOR_BYTES

    def __post_init__(self) -> None:
        if self.name not in PRESETS:
            raise ValueError(f"unknown preset {self.name!r}; choose one of: {', '.join(PRESETS)}")
        if self.name == "custom" and not (self.patterns or self.categories):
            raise ValueError("the custom preset needs patterns (e.g. 'l_out*') and/or categories")
        if self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}")
        if self.vector_dtype not in VECTOR_DTYPES:
            raise ValueError(f"vector_dtype must be f16 or f32, not {self.vector_dtype!r}")
        if self.max_vector_bytes < 0:
            raise ValueError(f"max_vector_bytes must be 0 or more, got {self.max_vector_bytes}")

    def wants(self, raw_name: str, tensor_type: str, category: str, view: bool) -> bool:
        """Whether the callback asks for this node's data."""
        if self.name == "observe":
            return False
        if self.name == "full":
            return True
        if self.name == "standard":
            return tensor_type in STANDARD_TYPES and not view
        return category in self.categories or _matches(self.patterns, raw_name, tensor_type)

    def wants_vector(self, raw_name: str, tensor_type: str, category: str, view: bool) -> bool:
        """Whether the rows of a node this preset reads are kept whole (activation vectors)."""
        if self.vectors is not None:
            return _matches(self.vectors, raw_name, tensor_type)
        if self.name == "standard":
            return tensor_type in STANDARD_VECTOR_TYPES and not view
        return self.name in ("full", "custom") and self.wants(raw_name, tensor_type, category, view)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "patterns": list(self.patterns),
            "categories": list(self.categories),
            "top_k": self.top_k,
            "full_attention": self.full_attention,
            "vectors": None if self.vectors is None else list(self.vectors),
            "vector_dtype": self.vector_dtype,
            "max_vector_bytes": self.max_vector_bytes,
        }


def _matches(patterns: list[str], raw_name: str, tensor_type: str) -> bool:
    """Whether a glob pattern matches the node's raw name or its tensor type."""
    return any(fnmatch.fnmatchcase(raw_name, p) or fnmatch.fnmatchcase(tensor_type, p) for p in patterns)


def make_preset(preset: str | Preset | None = None, **options: Any) -> Preset:
    """A Preset from a name (or an existing Preset), with options overriding its fields."""
    if isinstance(preset, Preset):
        return preset
    name = preset or "standard"
    if options.get("patterns") or options.get("categories"):
        name = "custom" if name == "standard" else name
    return Preset(name=name, **{k: v for k, v in options.items() if v is not None})
