"""Record stage: TransformerLens hook names for llama.cpp's graph nodes, defined once (docs/HOOKS.md
has the table per architecture, checked against real captures by tests/test_hooks_doc.py).

| llama.cpp node (type) | TransformerLens hook | note |
| --- | --- | --- |
| `embd` / `inp_embd` (layer -1) | `hook_embed` | the token embedding rows |
| `inp_scaled` (Gemma, layer -1) | `blocks.0.hook_resid_pre` | Gemma scales the embedding by sqrt(n_embd) first |
| `embd` where there is no `inp_scaled` | also `blocks.0.hook_resid_pre` | the same rows |
| `l_out` (layer L) | `blocks.L.hook_resid_post` | also `blocks.{L+1}.hook_resid_pre` in TransformerLens |
| `attn_post_norm` (Gemma 2/3) else `attn_out` | `blocks.L.hook_attn_out` | what attention adds to the residual stream |
| `ffn_post_norm` (Gemma 2/3) else `ffn_out` | `blocks.L.hook_mlp_out` | what the FFN adds |
| `ffn_inp`, Gemma's `sa_out` | `blocks.L.hook_resid_mid` | the residual between attention and FFN (`full` keeps it) |
| `result_norm` (layer 998) | `ln_final.hook_normalized` | the final norm's output, the logit lens's input |
| `kq_soft_max` (full attention only) | `blocks.L.attn.hook_pattern` | kept in the capture's steps, not as vectors |

No TransformerLens hook corresponds to: Gemma's `attn_out` / `ffn_out` before their post-norms, llama.cpp's
intermediate views and reshapes, Phi-3's residual between attention and FFN (an unnamed node), and the output
logits (`result_output`, TransformerLens returns them from the forward pass rather than a hook).
Nodes without a hook are reached by their capture key (e.g. ``ffn_up-3``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from spectra_vis.constants import EMBED_LAYER, FINAL_NORM_LAYER

RESID_MID_TYPES = ("ffn_inp", "sa_out")  # the residual between attention and the FFN (Gemma's is sa_out)


def hook_names(tensors: Iterable[dict[str, Any]]) -> dict[str, int]:
    """TransformerLens hook name -> tensor id, over a capture's catalogue (first node of each)."""
    catalogue = list(tensors)
    types = {t["type"] for t in catalogue}
    out: dict[str, int] = {}
    for t in catalogue:
        for name in _names(t, types):
            out.setdefault(name, t["id"])
    return out


def _names(t: dict[str, Any], types: set[str]) -> list[str]:
    ttype, layer = t["type"], t["layer"]
    if layer == EMBED_LAYER:
        if ttype == "embd":
            return ["hook_embed"] + ([] if "inp_scaled" in types else ["blocks.0.hook_resid_pre"])
        return ["blocks.0.hook_resid_pre"] if ttype == "inp_scaled" else []
    if layer == FINAL_NORM_LAYER:
        return ["ln_final.hook_normalized"] if ttype == "result_norm" else []
    if not 0 <= layer < FINAL_NORM_LAYER:
        return []
    if ttype == "l_out":
        return [f"blocks.{layer}.hook_resid_post"]
    if ttype in RESID_MID_TYPES:
        return [f"blocks.{layer}.hook_resid_mid"]
    post = {"attn_out": "attn_post_norm", "ffn_out": "ffn_post_norm"}
    hook = {
        "attn_out": "hook_attn_out",
        "ffn_out": "hook_mlp_out",
        "attn_post_norm": "hook_attn_out",
        "ffn_post_norm": "hook_mlp_out",
    }.get(ttype)
    if hook is None or (ttype in post and post[ttype] in types):
        return []
    return [f"blocks.{layer}.{hook}"]
