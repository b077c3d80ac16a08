"""Naming stage: raw llama.cpp graph-node names become typed keys.

This is the one place that parses llama.cpp names (``l_out-3``, ``kq_soft_max-3``,
``Qcur-0 (view)``, ``cache_k_l0 (view)``, ``blk.0.attn_output.weight``) into a
layer, a tensor type, a category and a depth level.  Pure functions and tables
only: it depends on ``constants`` and the standard library.

Layer convention (as the original Spectra Vis): -1 embedding, 0..N-1 blocks,
998 final norm, 999 output/logits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from spectra_vis.constants import (
    DEPTH_ALL,
    DEPTH_BLOCKS,
    DEPTH_NORMS,
    DEPTH_OUTPUTS,
    DEPTH_PROJECTIONS,
    EMBED_LAYER,
    FINAL_NORM_LAYER,
    OUTPUT_LAYER,
)

CATEGORIES = ("embedding", "attention", "feedforward", "norm", "residual", "output", "other")

# type -> (category, depth, plain-words description)
TENSOR_TYPES: dict[str, tuple[str, int, str]] = {
    "embd": ("embedding", DEPTH_OUTPUTS, "Token embeddings: one vector per input token."),
    "inp_scaled": ("embedding", DEPTH_BLOCKS, "Embeddings scaled by sqrt(n_embd) (Gemma)."),
    "attn_norm": ("norm", DEPTH_NORMS, "Normalised residual stream entering attention."),
    "Qcur": ("attention", DEPTH_PROJECTIONS, "Query projection: what each token looks for."),
    "Kcur": ("attention", DEPTH_PROJECTIONS, "Key projection: what each token offers."),
    "Vcur": ("attention", DEPTH_PROJECTIONS, "Value projection: what each token passes on."),
    "Qcur_normed": ("norm", DEPTH_NORMS, "Queries after per-head RMS norm."),
    "Kcur_normed": ("norm", DEPTH_NORMS, "Keys after per-head RMS norm."),
    "wqkv": ("attention", DEPTH_PROJECTIONS, "Fused Q/K/V projection."),
    "bqkv": ("attention", DEPTH_PROJECTIONS, "Fused Q/K/V projection plus bias."),
    "cache_k": ("attention", DEPTH_ALL, "Keys written into the KV cache."),
    "cache_v": ("attention", DEPTH_ALL, "Values written into the KV cache."),
    "kq": ("attention", DEPTH_PROJECTIONS, "Raw attention scores Q·K."),
    "kq_soft_max": ("attention", DEPTH_BLOCKS, "Attention probabilities (softmax of scores)."),
    "kqv": ("attention", DEPTH_PROJECTIONS, "Attention-weighted sum of values, per head."),
    "kqv_out": ("attention", DEPTH_PROJECTIONS, "Heads concatenated, before the output projection."),
    "attn_out": ("attention", DEPTH_BLOCKS, "Attention output projection: what attention adds."),
    "attn_post_norm": ("norm", DEPTH_NORMS, "Attention output after its post-norm (Gemma)."),
    "sa_out": ("residual", DEPTH_BLOCKS, "Residual stream after the attention add (Gemma)."),
    "ffn_inp": ("residual", DEPTH_BLOCKS, "Residual stream after the attention add."),
    "ffn_norm": ("norm", DEPTH_NORMS, "Normalised residual stream entering the FFN."),
    "ffn_gate": ("feedforward", DEPTH_PROJECTIONS, "FFN gate projection."),
    "ffn_up": ("feedforward", DEPTH_PROJECTIONS, "FFN up projection."),
    "ffn_act": ("feedforward", DEPTH_PROJECTIONS, "FFN activation."),
    "ffn_gelu": ("feedforward", DEPTH_PROJECTIONS, "FFN GELU activation."),
    "ffn_silu": ("feedforward", DEPTH_PROJECTIONS, "FFN SiLU activation."),
    "ffn_geglu": ("feedforward", DEPTH_PROJECTIONS, "Gated GELU: gelu(gate) * up."),
    "ffn_swiglu": ("feedforward", DEPTH_PROJECTIONS, "Gated SiLU: silu(gate) * up."),
    "ffn_out": ("feedforward", DEPTH_BLOCKS, "FFN down projection: what the FFN adds."),
    "ffn_post_norm": ("norm", DEPTH_NORMS, "FFN output after its post-norm (Gemma)."),
    "l_out": ("residual", DEPTH_OUTPUTS, "Residual stream after the block: the layer output."),
    "norm": ("norm", DEPTH_ALL, "RMS/layer norm before its weight is applied."),
    "result_norm": ("output", DEPTH_OUTPUTS, "Final norm of the residual stream."),
    "result_output": ("output", DEPTH_OUTPUTS, "Logits: one score per vocabulary token."),
    "out_rows": ("other", DEPTH_ALL, "Rows kept for output (last layer only)."),
    "other": ("other", DEPTH_ALL, "A node llama.cpp did not name and we could not attribute."),
}

# GGUF weight names (blk.N.<w>.weight) -> the type of the node that multiplies by them.
WEIGHT_TYPES = {
    "attn_q": "Qcur",
    "attn_k": "Kcur",
    "attn_v": "Vcur",
    "attn_qkv": "wqkv",
    "attn_output": "attn_out",
    "attn_norm": "attn_norm",
    "attn_q_norm": "Qcur_normed",
    "attn_k_norm": "Kcur_normed",
    "post_attention_norm": "attn_post_norm",
    "ffn_norm": "ffn_norm",
    "ffn_gate": "ffn_gate",
    "ffn_up": "ffn_up",
    "ffn_down": "ffn_out",
    "post_ffw_norm": "ffn_post_norm",
    "output_norm": "result_norm",
    "output": "result_output",
    "token_embd": "embd",
}

_EMBED_NAMES = {"embd", "inp_embd", "inp_scaled", "inp_embd_scaled"}
_SUFFIX = re.compile(r"\s+\((?:view|reshaped|permuted|transposed|cont|copy|[a-z ]+)\)$")
_LAYERED = re.compile(r"^(?P<base>.+?)(?:-|_l)(?P<layer>\d+)$")
_WEIGHT = re.compile(r"^blk\.(?P<layer>\d+)\.(?P<w>[a-z0-9_]+)\.(?:weight|bias)$")
_TOP_WEIGHT = re.compile(r"^(?P<w>token_embd|output_norm|output)\.(?:weight|bias)$")
_UNNAMED = re.compile(r"^(?:node_\d+|leaf_\d+)?$")


@dataclass(frozen=True)
class ParsedName:
    """A raw name split into its parts. ``layer`` is None when the name has none."""

    raw: str
    base: str
    layer: int | None
    view: bool
    unnamed: bool


def strip_suffixes(name: str) -> tuple[str, bool]:
    """Remove ``(view)``-style suffixes; return the bare name and whether any was found."""
    stripped = name
    while True:
        new = _SUFFIX.sub("", stripped)
        if new == stripped:
            return stripped, stripped != name
        stripped = new


def parse_name(raw: str) -> ParsedName:
    """Parse a graph-node name into base, layer and view flag."""
    bare, view = strip_suffixes(raw.strip())
    if _UNNAMED.match(bare):
        return ParsedName(raw, "", None, view, True)
    m = _LAYERED.match(bare)
    if m:
        return ParsedName(raw, m.group("base"), int(m.group("layer")), view, False)
    if bare in _EMBED_NAMES:
        base = "embd" if bare in ("embd", "inp_embd") else "inp_scaled"
        return ParsedName(raw, base, EMBED_LAYER, view, False)
    if bare == "result_norm":
        return ParsedName(raw, bare, FINAL_NORM_LAYER, view, False)
    if bare == "result_output":
        return ParsedName(raw, "result_output", OUTPUT_LAYER, view, False)
    return ParsedName(raw, bare, None, view, False)


def parse_weight(name: str) -> tuple[int | None, str] | None:
    """``blk.3.attn_output.weight`` -> (3, "attn_out"); None for non-weight names."""
    m = _WEIGHT.match(name)
    if m:
        return int(m.group("layer")), WEIGHT_TYPES.get(m.group("w"), m.group("w"))
    m = _TOP_WEIGHT.match(name)
    if m:
        wtype = WEIGHT_TYPES[m.group("w")]
        layer = {"embd": EMBED_LAYER, "result_norm": FINAL_NORM_LAYER}.get(wtype, OUTPUT_LAYER)
        return layer, wtype
    return None


def type_info(tensor_type: str) -> tuple[str, int]:
    """(category, depth) of a tensor type, including ``base.op`` variants and unknown bases."""
    base = tensor_type.split(".", 1)[0].split("#", 1)[0]
    known = TENSOR_TYPES.get(base)
    if known:
        depth = known[1] if base == tensor_type else max(known[1], DEPTH_ALL)
        return known[0], depth
    return guess_category(base), DEPTH_ALL


def guess_category(base: str) -> str:
    """Category of a type llama.cpp named but the table does not list."""
    low = base.lower()
    if "norm" in low:
        return "norm"
    if low.startswith(("attn", "kq", "q", "k", "v", "wqkv", "cache")):
        return "attention"
    if low.startswith(("ffn", "moe")):
        return "feedforward"
    if low.startswith(("inp", "embd")):
        return "embedding"
    if low.startswith("result"):
        return "output"
    return "other"


def variant_type(base: str, op: str, seen: dict[tuple[str, str], int], seen_base: dict[str, int]) -> str:
    """Name repeats of a base apart: ``Qcur``, ``Qcur.reshape``, ``Qcur.rope``; ``norm``, ``norm.rms_norm``.

    ``seen``/``seen_base`` are per-(graph, layer) counters the caller owns.
    """
    n_base = seen_base.get(base, 0)
    seen_base[base] = n_base + 1
    if n_base == 0:
        return base
    op_key = op.lower()
    n_op = seen.get((base, op_key), 0)
    seen[(base, op_key)] = n_op + 1
    return f"{base}.{op_key}" if n_op == 0 else f"{base}.{op_key}{n_op + 1}"
