"""docs/HOOKS.md's tables against the mapping on real captures of tiny models of each architecture."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from spectra_vis import capture
from spectra_vis.record.hooks import hook_names
from spectra_vis.testing.tiny_gguf import SUPPORTED_ARCHS

DOC = Path(__file__).resolve().parents[1] / "docs" / "HOOKS.md"


def documented(arch: str) -> set[tuple[str, str]]:
    text = DOC.read_text()
    section = next(s for s in text.split("\n## ")[1:] if re.search(rf"(^|[ ,]){arch}([ ,(]|$)", s.splitlines()[0]))
    return set(re.findall(r"^\| `([^`]+)` \| `([^`]+)` \|$", section, re.M))


@pytest.mark.parametrize("arch", SUPPORTED_ARCHS)
def test_the_table_is_what_a_capture_maps(tiny_model, arch: str) -> None:
    cap = capture(tiny_model(arch), ["hi there"], max_tokens=1, n_ctx=64, lens=False)
    types = {t["id"]: t["type"] for t in cap.tensors}
    got = {(re.sub(r"^blocks\.\d+\.", "blocks.L.", name), types[tid]) for name, tid in hook_names(cap.tensors).items()}
    assert got == documented(arch)
    kept = {n for n in hook_names(cap.tensors) if not n.endswith("hook_resid_mid")}
    assert set(cap.hook_names(0)) == kept  # standard keeps every mapped node but the residual mid-block
    if arch != "phi3":
        full = capture(tiny_model(arch), ["hi there"], preset="full", max_tokens=1, n_ctx=64, lens=False)
        mid = full.vectors(0, "blocks.0.hook_resid_mid")
        key = next(t["key"] for t in full.tensors if t["type"] in ("ffn_inp", "sa_out") and t["layer"] == 0)
        np.testing.assert_array_equal(mid, full.vectors(0, key))
        # the residual after attention: l_out minus what the FFN added (within float16 rounding)
        post, mlp = full.vectors(0, "blocks.0.hook_resid_post"), full.vectors(0, "blocks.0.hook_mlp_out")
        if arch != "granite":  # Granite scales what the FFN adds before the residual add
            np.testing.assert_allclose(mid, post - mlp, rtol=2e-2, atol=2e-2)
