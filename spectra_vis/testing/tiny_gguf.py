"""Tiny random-weight GGUF models that real llama.cpp loads and runs, for tests and benchmarks.

``write_tiny_model(path, arch)`` writes a complete model file with the ``gguf`` package: the
architecture's metadata, every tensor its llama.cpp graph needs (seeded random weights,
norms of one) and a small SentencePiece-style vocabulary with byte fallback, so any text
tokenizes. The weights are random, so the text generated is nonsense, but the graph, the
tensor names, the shapes and the attention are those of a real model of that architecture.

    >>> write_tiny_model("tiny.gguf", arch="gemma3", n_layer=2)   # doctest: +SKIP

``n_embd`` and ``n_layer`` scale it: ``n_embd=2048, n_layer=16, n_ff=5632`` gives a model of
about 1B parameters for benchmarks (write it with ``weight_type="f16"`` to halve the file).

``chat_template=CHAT_TEMPLATE`` makes it look like an instruct model: the Jinja template in
``tokenizer.chat_template`` and ``<|end|>`` as its end-of-turn token (``tokenizer.ggml.eot_token_id``).
``prefer_token="<|end|>"`` makes greedy decoding pick that token at every step (one embedding
dimension dominates the normed residual stream and the token's output row reads only it), which
is how an instruct model answers a bare prompt: its end-of-turn token first.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Words whose pieces the vocabulary holds, so common English tokenizes into real pieces.
_WORDS = (
    "the of and to in is was for on that with as by at from it be this are or his an which have "
    "what capital france spain paris madrid city country write python function adds two numbers "
    "once upon time story list three colors red green blue one four five plus equals def return "
    "hello world model token layer attention answer question"
).split()
SPACE = "\u2581"  # SentencePiece's word-start marker

CHAT_TOKENS = ("<|endoftext|>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>")
END_OF_TURN = "<|end|>"
# A small phi-style template over the vocabulary's chat markers, the way instruct GGUFs carry theirs.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|{{ message['role'] }}|>\n"
    "{{ message['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
PREFERRED_LOGIT_WEIGHT = 20.0  # the preferred token's output row on the dominant dimension
DOMINANT_EMBEDDING = 50.0  # that dimension's value in every token embedding
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_BYTE = 1, 2, 3, 6


@dataclass(frozen=True)
class Dims:
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    n_ff: int
    n_vocab: int

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def n_embd_kv(self) -> int:
        return self.head_dim * self.n_head_kv


def vocabulary() -> tuple[list[str], list[float], list[int]]:
    """Tokens, scores and token types of the tiny SentencePiece vocabulary.

    Ids 0-2 are <unk>, <s>, </s>; then the 256 byte tokens; a few chat markers; then single characters and
    every prefix of every word in ``_WORDS`` (with and without the word-start marker),
    longer pieces scoring higher so the tokenizer merges them first.
    """
    tokens = ["<unk>", "<s>", "</s>"]
    types = [TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_CONTROL]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [TOKEN_BYTE] * 256
    pieces: list[str] = [SPACE]
    pieces += [chr(c) for c in range(33, 127)]
    for word in _WORDS:
        for form in (SPACE + word, word):
            pieces += [form[:i] for i in range(2, len(form) + 1)]
    seen = set(tokens)
    for special in CHAT_TOKENS:  # chat markers some architectures look up by text (phi3: <|end|>)
        seen.add(special)
        tokens.append(special)
        types.append(TOKEN_CONTROL)
    for piece in pieces:
        if piece not in seen:
            seen.add(piece)
            tokens.append(piece)
            types.append(TOKEN_NORMAL)
    first_piece = 259 + len(CHAT_TOKENS)
    scores = [0.0] * first_piece + [-100.0 + len(t) for t in tokens[first_piece:]]
    return tokens, scores, types


# ----- per-architecture layout ----------------------------------------------------------------

Add = Callable[[str, tuple[int, ...], str], None]  # add(name, numpy shape, kind "w" | "norm" | "bias")


def _attention(add: Add, p: str, d: Dims, bias: bool = False) -> None:
    add(f"{p}.attn_q.weight", (d.n_embd, d.n_embd), "w")
    add(f"{p}.attn_k.weight", (d.n_embd_kv, d.n_embd), "w")
    add(f"{p}.attn_v.weight", (d.n_embd_kv, d.n_embd), "w")
    add(f"{p}.attn_output.weight", (d.n_embd, d.n_embd), "w")
    if bias:
        add(f"{p}.attn_q.bias", (d.n_embd,), "bias")
        add(f"{p}.attn_k.bias", (d.n_embd_kv,), "bias")
        add(f"{p}.attn_v.bias", (d.n_embd_kv,), "bias")


def _gated_ffn(add: Add, p: str, d: Dims) -> None:
    add(f"{p}.ffn_gate.weight", (d.n_ff, d.n_embd), "w")
    add(f"{p}.ffn_up.weight", (d.n_ff, d.n_embd), "w")
    add(f"{p}.ffn_down.weight", (d.n_embd, d.n_ff), "w")


def _llama_block(add: Add, p: str, d: Dims) -> None:
    add(f"{p}.attn_norm.weight", (d.n_embd,), "norm")
    _attention(add, p, d)
    add(f"{p}.ffn_norm.weight", (d.n_embd,), "norm")
    _gated_ffn(add, p, d)


def _qwen2_block(add: Add, p: str, d: Dims) -> None:
    add(f"{p}.attn_norm.weight", (d.n_embd,), "norm")
    _attention(add, p, d, bias=True)
    add(f"{p}.ffn_norm.weight", (d.n_embd,), "norm")
    _gated_ffn(add, p, d)


def _phi3_block(add: Add, p: str, d: Dims) -> None:
    add(f"{p}.attn_norm.weight", (d.n_embd,), "norm")
    add(f"{p}.attn_qkv.weight", (d.n_embd + 2 * d.n_embd_kv, d.n_embd), "w")
    add(f"{p}.attn_output.weight", (d.n_embd, d.n_embd), "w")
    add(f"{p}.ffn_norm.weight", (d.n_embd,), "norm")
    add(f"{p}.ffn_up.weight", (2 * d.n_ff, d.n_embd), "w")
    add(f"{p}.ffn_down.weight", (d.n_embd, d.n_ff), "w")


def _gemma3_block(add: Add, p: str, d: Dims) -> None:
    add(f"{p}.attn_norm.weight", (d.n_embd,), "norm")
    _attention(add, p, d)
    add(f"{p}.attn_q_norm.weight", (d.head_dim,), "norm")
    add(f"{p}.attn_k_norm.weight", (d.head_dim,), "norm")
    add(f"{p}.post_attention_norm.weight", (d.n_embd,), "norm")
    add(f"{p}.ffn_norm.weight", (d.n_embd,), "norm")
    _gated_ffn(add, p, d)
    add(f"{p}.post_ffw_norm.weight", (d.n_embd,), "norm")


@dataclass(frozen=True)
class _Arch:
    block: Callable[[Add, str, Dims], None]
    output: bool  # a separate output.weight (else tied to token_embd)
    extra: Callable[[object, str, Dims], None] | None = None  # more metadata: (writer, arch, dims)


def _granite_meta(w: object, arch: str, d: Dims) -> None:
    w.add_float32(f"{arch}.residual_scale", 0.22)  # type: ignore[attr-defined]
    w.add_float32(f"{arch}.embedding_scale", 12.0)  # type: ignore[attr-defined]
    w.add_float32(f"{arch}.attention.scale", 1.0 / d.head_dim)  # type: ignore[attr-defined]
    w.add_float32(f"{arch}.logit_scale", 8.0)  # type: ignore[attr-defined]


def _gemma3_meta(w: object, arch: str, d: Dims) -> None:
    w.add_uint32(f"{arch}.attention.key_length", d.head_dim)  # type: ignore[attr-defined]
    w.add_uint32(f"{arch}.attention.value_length", d.head_dim)  # type: ignore[attr-defined]
    w.add_uint32(f"{arch}.attention.sliding_window", 64)  # type: ignore[attr-defined]


ARCHS: dict[str, _Arch] = {
    "llama": _Arch(_llama_block, output=True),
    "qwen2": _Arch(_qwen2_block, output=True),
    "phi3": _Arch(_phi3_block, output=True),
    "gemma3": _Arch(_gemma3_block, output=False, extra=_gemma3_meta),
    "granite": _Arch(_llama_block, output=True, extra=_granite_meta),
}
SUPPORTED_ARCHS: tuple[str, ...] = tuple(ARCHS)


def write_tiny_model(
    path: str | os.PathLike[str],
    arch: str = "llama",
    *,
    n_layer: int = 2,
    n_embd: int = 64,
    n_head: int = 4,
    n_head_kv: int = 2,
    n_ff: int = 128,
    n_ctx_train: int = 512,
    seed: int = 0,
    name: str | None = None,
    weight_type: str = "f32",
    chat_template: str | None = None,
    prefer_token: str | None = None,
    extra_tokens: list[str] | None = None,
) -> Path:
    """Write a tiny random-weight GGUF model of architecture ``arch`` to ``path``; returns the path.

    The file appears atomically (written next to it, then renamed). ``weight_type`` is
    ``"f32"`` or ``"f16"`` for the matrices; norms and biases stay F32, as in real files.
    ``chat_template`` is stored as ``tokenizer.chat_template``, with ``<|end|>`` as the
    end-of-turn token; ``prefer_token`` (a token of the vocabulary, on an architecture with its
    own output matrix) is what greedy decoding then generates at every step. ``extra_tokens`` are
    appended to the vocabulary (another tokenizer, for tests that must tell two apart).
    """
    import gguf  # the writer is only needed here

    if arch not in ARCHS:
        raise ValueError(f"unknown tiny architecture {arch!r}; choose one of {', '.join(SUPPORTED_ARCHS)}")
    if weight_type not in ("f32", "f16"):
        raise ValueError(f"weight_type must be 'f32' or 'f16', not {weight_type!r}")
    if n_embd % n_head or n_head % n_head_kv:
        raise ValueError("n_embd must be a multiple of n_head, and n_head a multiple of n_head_kv")
    spec = ARCHS[arch]
    tokens, scores, types = vocabulary()
    for extra in extra_tokens or []:
        tokens, scores, types = [*tokens, extra], [*scores, -100.0 + len(extra)], [*types, types[-1]]
    preferred = _preferred_id(tokens, prefer_token, spec.output)
    d = Dims(n_layer, n_embd, n_head, n_head_kv, n_ff, len(tokens))
    rng = np.random.default_rng(seed)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        w = gguf.GGUFWriter(tmp, arch)
        w.add_name(name or f"tiny-{arch}")
        w.add_context_length(n_ctx_train)
        w.add_embedding_length(n_embd)
        w.add_block_count(n_layer)
        w.add_feed_forward_length(n_ff)
        w.add_head_count(n_head)
        w.add_head_count_kv(n_head_kv)
        w.add_layer_norm_rms_eps(1e-6)
        w.add_rope_dimension_count(d.head_dim)
        w.add_rope_freq_base(10000.0)
        w.add_vocab_size(d.n_vocab)
        w.add_file_type(gguf.LlamaFileType.ALL_F32 if weight_type == "f32" else gguf.LlamaFileType.MOSTLY_F16)
        if spec.extra:
            spec.extra(w, arch, d)
        w.add_tokenizer_model("llama")
        w.add_token_list(tokens)
        w.add_token_scores(scores)
        w.add_token_types(types)
        w.add_unk_token_id(0)
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_add_bos_token(True)
        w.add_add_eos_token(False)
        if chat_template is not None:
            w.add_chat_template(chat_template)
            w.add_eot_token_id(tokens.index(END_OF_TURN))

        def add(tname: str, shape: tuple[int, ...], kind: str) -> None:
            if kind == "norm":
                data = np.ones(shape, dtype=np.float32)
            elif kind == "bias":
                data = (rng.standard_normal(shape) * 0.02).astype(np.float32)
            else:
                data = (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32)
                if weight_type == "f16":
                    data = data.astype(np.float16)
            if preferred is not None and tname == "token_embd.weight":
                data[:, 0] = DOMINANT_EMBEDDING
            elif preferred is not None and tname == "output.weight":
                data[preferred] = 0
                data[preferred, 0] = PREFERRED_LOGIT_WEIGHT
            w.add_tensor(tname, data)

        add("token_embd.weight", (d.n_vocab, n_embd), "w")
        for i in range(n_layer):
            spec.block(add, f"blk.{i}", d)
        add("output_norm.weight", (n_embd,), "norm")
        if spec.output:
            add("output.weight", (d.n_vocab, n_embd), "w")
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def _preferred_id(tokens: list[str], prefer_token: str | None, has_output: bool) -> int | None:
    if prefer_token is None:
        return None
    if prefer_token not in tokens:
        raise ValueError(f"prefer_token {prefer_token!r} is not in the tiny vocabulary")
    if not has_output:
        raise ValueError("prefer_token needs an architecture with its own output matrix (not tied embeddings)")
    return tokens.index(prefer_token)
