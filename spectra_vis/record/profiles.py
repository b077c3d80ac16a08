"""Profiles stage: model families, the model card read from GGUF metadata, colours, flows.

Reads GGUF metadata with the ``gguf`` package (never guesses sizes from a dropdown).
Depends on ``naming`` for the tensor-type table; imports no UI or web package.
"""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spectra_vis.constants import SPECIAL_LAYERS
from spectra_vis.errors import ModelFileError
from spectra_vis.record.naming import CATEGORIES, TENSOR_TYPES, type_info

GGUF_MAGIC = b"GGUF"

SUPPORTED_MODELS = ["llama", "granite", "qwen", "phi", "mistral", "gemma"]
GENERIC_FAMILY = "generic"

# GGUF general.architecture -> family
ARCH_FAMILY = {
    "llama": "llama",
    "granite": "granite",
    "qwen": "qwen",
    "qwen2": "qwen",
    "qwen3": "qwen",
    "phi2": "phi",
    "phi3": "phi",
    "gemma": "gemma",
    "gemma2": "gemma",
    "gemma3": "gemma",
}

CATEGORY_COLORS = {
    "embedding": "#4a90d9",
    "attention": "#50c878",
    "feedforward": "#ff7f50",
    "norm": "#ffd700",
    "residual": "#e8e8e8",
    "output": "#da70d6",
    "other": "#808080",
}

FLOW_COLORS = {
    "attention_flow": "#50c878",
    "ffn_flow": "#ff7f50",
    "layer_flow": "#ffffff",
    "output_flow": "#da70d6",
}

# Which tensor type feeds which: the data path through one block and the model ends.
_BLOCK_ATTN = [
    ("l_out.prev", "attn_norm"),
    ("attn_norm", "Qcur"),
    ("attn_norm", "Kcur"),
    ("attn_norm", "Vcur"),
    ("Qcur", "kq"),
    ("Kcur", "kq"),
    ("kq", "kq_soft_max"),
    ("kq_soft_max", "kqv"),
    ("Vcur", "kqv"),
    ("kqv", "kqv_out"),
    ("kqv_out", "attn_out"),
]
_BLOCK_FFN = [
    ("ffn_norm", "ffn_gate"),
    ("ffn_norm", "ffn_up"),
    ("ffn_gate", "ffn_act"),
    ("ffn_up", "ffn_act"),
    ("ffn_act", "ffn_out"),
]

_FAMILY_BASE: dict[str, dict[str, Any]] = {
    "llama": {"description": "Llama / Llama 2 / Llama 3 (Meta)", "qkv": "separate", "residual_mid": "ffn_inp"},
    "granite": {"description": "Granite (IBM)", "qkv": "separate", "residual_mid": "ffn_inp"},
    "qwen": {"description": "Qwen 2 / 2.5 / 3 (Alibaba)", "qkv": "separate", "residual_mid": "ffn_inp"},
    "phi": {"description": "Phi-2 / Phi-3 (Microsoft): fused QKV", "qkv": "fused", "residual_mid": "ffn_inp"},
    "mistral": {
        "description": "Mistral / Mixtral (Mistral AI), llama architecture",
        "qkv": "separate",
        "residual_mid": "ffn_inp",
    },
    "gemma": {
        "description": "Gemma / Gemma 2 / Gemma 3 (Google): post-norms, scaled embeddings",
        "qkv": "separate",
        "residual_mid": "sa_out",
        "post_norms": True,
    },
    GENERIC_FAMILY: {"description": "Any architecture, mapped from llama.cpp's name-N suffixes", "qkv": "separate"},
}


def flows_for(family: str) -> dict[str, list[tuple[str, str]]]:
    """The flow definition (edges between tensor types) of a family."""
    base = _FAMILY_BASE.get(family, _FAMILY_BASE[GENERIC_FAMILY])
    mid = base.get("residual_mid", "ffn_inp")
    attn = list(_BLOCK_ATTN)
    if base["qkv"] == "fused":
        attn = [e for e in attn if e[1] not in ("Qcur", "Kcur", "Vcur")]
        attn += [("attn_norm", "wqkv"), ("wqkv", "Qcur"), ("wqkv", "Kcur"), ("wqkv", "Vcur")]
    post = base.get("post_norms", False)
    attn_tail = [("attn_out", "attn_post_norm"), ("attn_post_norm", mid)] if post else [("attn_out", mid)]
    ffn_tail = [("ffn_out", "ffn_post_norm"), ("ffn_post_norm", "l_out")] if post else [("ffn_out", "l_out")]
    return {
        "attention_flow": attn + attn_tail + [("l_out.prev", mid)],
        "ffn_flow": [(mid, "ffn_norm")] + _BLOCK_FFN + ffn_tail + [(mid, "l_out")],
        "layer_flow": [("l_out", "l_out.next")],
        "output_flow": [("embd", "attn_norm"), ("l_out", "result_norm"), ("result_norm", "result_output")],
    }


def get_model_profile(model_family: str) -> dict[str, Any] | None:
    """The profile of a family (description, tensor types, categories, colours, flows), or None."""
    family = model_family.lower().strip()
    if family not in _FAMILY_BASE:
        return None
    types = list(TENSOR_TYPES)
    categories: dict[str, list[str]] = {c: [] for c in CATEGORIES}
    for t in types:
        categories[type_info(t)[0]].append(t)
    return {
        "family": family,
        **_FAMILY_BASE[family],
        "tensor_types": types,
        "special_layers": dict(SPECIAL_LAYERS),
        "tensor_categories": categories,
        "colors": CATEGORY_COLORS,
        "flows": {k: [list(e) for e in v] for k, v in flows_for(family).items()},
    }


def get_supported_models() -> list[str]:
    """The family names a user may choose (plus ``generic``, used automatically)."""
    return SUPPORTED_MODELS.copy()


REQUANTIZED_KEY = "spectra_vis.requantized_from"  # GGUF metadata written by spectra-vis quantize --allow-requantize


@dataclass
class ModelCard:
    """What the GGUF metadata says about a model. Sizes come from the file, not a guess."""

    file_name: str
    file_size: int
    architecture: str
    family: str
    name: str
    n_layer: int
    n_head: int
    n_head_kv: int
    n_embd: int
    n_ctx_train: int
    n_vocab: int
    file_type: str
    family_forced: bool = False
    family_warning: str | None = None
    chat_template: bool = False  # the GGUF carries tokenizer.chat_template
    requantized_from: str | None = None  # made by requantizing a model of this file type (spectra-vis quantize)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_gguf_file(path: str | os.PathLike[str]) -> Path:
    """Return the path if it is a readable GGUF file, else raise ModelFileError with a one-line reason."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelFileError(f"model file not found: {p} (check the path)")
    if p.is_dir():
        raise ModelFileError(f"{p} is a directory; give the path of a .gguf file inside it")
    with open(p, "rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise ModelFileError(f"{p} is not a GGUF file (its first bytes are {magic!r}, expected b'GGUF')")
    return p


def family_for_arch(arch: str, name: str = "") -> str:
    """Family of a GGUF architecture; Mistral models carry the llama architecture."""
    if arch == "llama" and ("mistral" in name.lower() or "mixtral" in name.lower()):
        return "mistral"
    return ARCH_FAMILY.get(arch, GENERIC_FAMILY)


def open_gguf(path: str | os.PathLike[str]) -> Any:
    """A ``gguf.GGUFReader`` of a checked GGUF file (memory-mapped; long metadata arrays skipped),
    or ModelFileError in one line."""
    import gguf  # heavy import, only when a model is read

    p = check_gguf_file(path)
    try:
        return _metadata_reader(gguf)(str(p), "r")
    except Exception as exc:  # the gguf package raises many kinds on a damaged file
        raise ModelFileError(f"{p} could not be read as GGUF ({exc}); is the file complete?") from exc


def read_model_card(path: str | os.PathLike[str], family: str = "auto") -> ModelCard:
    """Read the model card from GGUF metadata; ``family`` other than "auto" forces the family."""
    p = check_gguf_file(path)
    reader = open_gguf(p)

    def field(key: str, default: Any = None) -> Any:
        f = reader.get_field(key)
        return default if f is None else f.contents()

    arch = str(field("general.architecture", "unknown"))
    name = str(field("general.name", p.stem))
    tokens = reader.get_field("tokenizer.ggml.tokens")
    head = field(f"{arch}.attention.head_count", 0)
    head = max(head) if isinstance(head, list) else head  # some models list it per layer
    head_kv = field(f"{arch}.attention.head_count_kv", head)
    head_kv = max(head_kv) if isinstance(head_kv, list) else head_kv
    card = ModelCard(
        file_name=p.name,
        file_size=p.stat().st_size,
        architecture=arch,
        family=family_for_arch(arch, name),
        name=name,
        n_layer=int(field(f"{arch}.block_count", 0)),
        n_head=int(head),
        n_head_kv=int(head_kv),
        n_embd=int(field(f"{arch}.embedding_length", 0)),
        n_ctx_train=int(field(f"{arch}.context_length", 0)),
        n_vocab=int(tokens.parts[4][0]) if tokens is not None else 0,  # key length, key, type, item type, count
        file_type=_file_type_name(field("general.file_type")),
        chat_template=bool(field("tokenizer.chat_template")),
        requantized_from=field(REQUANTIZED_KEY),
    )
    return force_family(card, family)


LONG_ARRAY = 4096  # arrays longer than this (the vocabulary) are skipped, not parsed item by item


@functools.cache
def _metadata_reader(gguf: Any) -> type:
    """``gguf.GGUFReader`` that steps over long metadata arrays instead of parsing each item.

    The stock reader makes numpy views for every one of a vocabulary's 262,144 tokens,
    scores and types: about 10 s for Gemma 3 270M. A model card needs only their count,
    so a long array keeps ``parts`` = [item type, count] (what the stock reader puts
    first) and no items; everything else, and every short array, is read by the stock
    code. Big-endian files go through the stock code unchanged.
    """

    class MetadataReader(gguf.GGUFReader):  # type: ignore[misc, name-defined]
        def _get_field_parts(self, orig_offs: int, raw_type: int) -> Any:
            if raw_type != gguf.GGUFValueType.ARRAY or self.byte_order != "I":
                return super()._get_field_parts(orig_offs, raw_type)
            raw_itype = self._get(orig_offs, np.uint32)
            alen = self._get(orig_offs + 4, np.uint64)
            n, itype = int(alen[0]), gguf.GGUFValueType(int(raw_itype[0]))
            if n <= LONG_ARRAY or itype == gguf.GGUFValueType.ARRAY:
                return super()._get_field_parts(orig_offs, raw_type)
            offs = orig_offs + 12
            if itype == gguf.GGUFValueType.STRING:
                data = self.data
                for _ in range(n):  # each item: uint64 length, then the bytes
                    offs += 8 + int.from_bytes(data[offs : offs + 8].tobytes(), "little")
            else:
                offs += n * int(np.dtype(self.gguf_scalar_to_np[itype]).itemsize)
            return offs - orig_offs, [raw_itype, alen], [], [gguf.GGUFValueType.ARRAY, itype]

    return MetadataReader


def force_family(card: ModelCard, family: str) -> ModelCard:
    """Apply a user's family choice; warn (and record it) when it contradicts the file."""
    family = (family or "auto").lower().strip()
    if family == "auto":
        return card
    if family not in _FAMILY_BASE:
        raise ValueError(f"unknown model family {family!r}; choose one of: auto, {', '.join(SUPPORTED_MODELS)}")
    detected = card.family
    card.family, card.family_forced = family, True
    compatible = {detected, GENERIC_FAMILY} | ({"llama"} if detected == "mistral" else set())
    if family not in compatible and not (family == "mistral" and detected == "llama"):
        card.family_warning = (
            f"family {family!r} was forced but the file's architecture is {card.architecture!r} "
            f"(family {detected!r}); layers and types still come from llama.cpp's own node names"
        )
        warnings.warn(card.family_warning, stacklevel=2)
    return card


def _file_type_name(value: Any) -> str:
    if value is None:
        return "unknown"
    try:
        import gguf

        return gguf.LlamaFileType(int(value)).name.removeprefix("MOSTLY_")
    except (ValueError, ImportError):
        return f"type {value}"
