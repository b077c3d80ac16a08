"""Wizard: the questions (questionary) and the model card (rich), for people who would rather
not write Python. Builds a ``WizardConfig``; runs nothing itself.

Every question uses ``unsafe_ask`` so Ctrl-C reaches the caller (exit 130, nothing captured).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import questionary
from rich.console import Console
from rich.table import Table

from spectra_vis.capturing.chat import ChatMode
from spectra_vis.capturing.control import resolve
from spectra_vis.errors import SpectraVisError
from spectra_vis.record.presets import PRESET_HELP
from spectra_vis.record.profiles import SUPPORTED_MODELS, ModelCard, ModelFileError, force_family, read_model_card
from spectra_vis.wizard import config as C
from spectra_vis.wizard import estimate, scripted
from spectra_vis.wizard.paths import check_model

FAMILY_TITLES = {
    "llama": "Llama",
    "granite": "Granite",
    "qwen": "Qwen",
    "phi": "Phi",
    "mistral": "Mistral",
    "gemma": "Gemma",
    "generic": "Generic (any other architecture)",
}


def ask_gguf_path(message: str) -> str:
    """A path typed or dropped, Tab completing folders and .gguf files."""
    return str(
        questionary.path(
            message,
            file_filter=lambda p: os.path.isdir(p) or p.lower().endswith(".gguf"),
            complete_while_typing=False,
        ).unsafe_ask()
    )


def ask_model(console: Console) -> tuple[Path, ModelCard]:
    """Ask for the GGUF file until a readable one is given (empty means the demo model); its card."""
    console.print(
        "Drag the [bold].gguf[/] file into this window (or type its path; Tab completes). "
        f"Leave it empty to use the demo model, {C.DEMO_NAME}."
    )
    while True:
        text = ask_gguf_path("GGUF model file:")
        if not text.strip() or C.is_demo(text):
            try:
                with console.status(f"Preparing the demo model ({C.DEMO_NAME})..."):
                    path = C.demo_model_path()
            except ModuleNotFoundError as exc:
                console.print(f"[red]✗[/] {exc}; or give the path of a .gguf file.")
                continue
        else:
            try:
                path = check_model(text)
            except ModelFileError as exc:
                console.print(f"[red]✗[/] {exc}. Try again.")
                continue
        try:
            return path, read_card(console, path)
        except ModelFileError as exc:
            console.print(f"[red]✗[/] {exc}. Try again.")


def show_card(console: Console, card: ModelCard) -> None:
    table = Table(title=f"Model: {card.name}", show_header=False, title_justify="left")
    table.add_column(style="bold cyan")
    table.add_column()
    rows = [
        ("file", f"{card.file_name} ({estimate.human_size(card.file_size)})"),
        ("architecture", card.architecture),
        ("family (detected)", FAMILY_TITLES.get(card.family, card.family)),
        ("layers", str(card.n_layer)),
        ("attention heads", f"{card.n_head} (key/value heads: {card.n_head_kv})"),
        ("embedding size", str(card.n_embd)),
        ("context length", str(card.n_ctx_train)),
        ("quantization", card.file_type),
        ("chat template", "yes" if card.chat_template else "none (prompts are sent as raw text)"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)


def ask_family(card: ModelCard) -> str:
    """The family to use: "auto" when the user keeps the detected one."""
    families = list(SUPPORTED_MODELS) + (["generic"] if card.family not in SUPPORTED_MODELS else [])
    choices = [
        questionary.Choice(FAMILY_TITLES[f] + ("  (detected)" if f == card.family else ""), value=f) for f in families
    ]
    chosen = questionary.select("Model family:", choices=choices, default=choices[families.index(card.family)])
    family = chosen.unsafe_ask()
    return "auto" if family == card.family else family


def warn_family(console: Console, card: ModelCard, family: str) -> bool:
    """Say so when the chosen family contradicts the file (the capture records the same warning)."""
    if family == "auto":
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        forced = force_family(dataclasses.replace(card), family)
    if forced.family_warning:
        console.print(f"[yellow]warning:[/] {forced.family_warning}")
    return bool(forced.family_warning)


def ask_preset(card: ModelCard) -> str:
    choices = []
    for name in scripted.PRESET_CHOICES:
        size = estimate.human_size(estimate.bytes_per_token(card, name))
        choices.append(questionary.Choice(f"{name:9} ~{size}/token  {PRESET_HELP[name]}", value=name))
    default = choices[scripted.PRESET_CHOICES.index(C.DEFAULT_PRESET)]
    return questionary.select("Preset (what to read):", choices=choices, default=default).unsafe_ask()


def ask_chat(card: ModelCard) -> ChatMode:
    """How prompts are sent: asked only when the file has a chat template (else raw, "auto")."""
    if not card.chat_template:
        return C.DEFAULT_CHAT
    choices = [
        questionary.Choice("chat   the model's chat template, as a user message (instruct models)", value="auto"),
        questionary.Choice("raw    the prompt text as it is", value="raw"),
    ]
    answer = questionary.select("Prompt format:", choices=choices, default=choices[0]).unsafe_ask()
    return C.DEFAULT_CHAT if answer == "auto" else False


def ask_prompts(console: Console) -> list[str]:
    """Prompts one per line; an empty line ends; 'default' adds the sample prompts."""
    console.print("Prompts, one per line; an empty line finishes. Type [bold]default[/] for sample prompts.")
    prompts: list[str] = []
    while True:
        text = questionary.text(f"Prompt {len(prompts) + 1}:").unsafe_ask().strip()
        if text.lower() == "default":
            prompts += C.SAMPLE_PROMPTS
            for p in C.SAMPLE_PROMPTS:
                console.print(f"  [green]+[/] {p}")
        elif text:
            prompts.append(text)
        elif prompts:
            return prompts
        else:
            console.print("[red]✗[/] Give at least one prompt (or type default).")


def _validator(check: Callable[[str], Any]) -> Callable[[str], bool | str]:
    def validate(text: str) -> bool | str:
        try:
            check(text.strip())
        except argparse.ArgumentTypeError as exc:
            return str(exc)
        return True

    return validate


def ask_number(message: str, default: Any, check: Callable[[str], Any]) -> Any:
    text = questionary.text(message, default=str(default), validate=_validator(check)).unsafe_ask()
    return check(text.strip())


def ask_generation() -> tuple[int, float, int]:
    max_tokens = ask_number("Max tokens to generate per prompt:", C.DEFAULT_MAX_TOKENS, scripted.positive_int)
    temperature = ask_number("Temperature (0 = greedy):", C.DEFAULT_TEMPERATURE, scripted.temperature_value)
    seed = ask_number("Seed:", C.DEFAULT_SEED, scripted.seed_value)
    return max_tokens, temperature, seed


def ask_control(console: Console, card: ModelCard) -> tuple[Path | None, float]:
    """An optional control vector to steer with (empty: none), checked against the model until a
    usable one is given, and its strength."""
    while True:
        text = ask_gguf_path("Control vector to steer with (a .gguf from spectra-vis steer make; empty: none):")
        if not text.strip():
            return None, 1.0
        try:
            path = check_model(text)  # the same cleaning of pasted and dropped paths as the model's
            resolve((path, 0.0), card.n_layer, card.n_embd)
        except (ModelFileError, SpectraVisError) as exc:
            console.print(f"[red]✗[/] {exc}. Try again, or leave it empty.")
            continue
        strength = ask_number("Strength (0 = unsteered; negative steers the other way):", 1.0, scripted.finite_number)
        return path, strength


def wizard(console: Console) -> C.WizardConfig:
    """Every question, in order; returns the run's configuration."""
    console.rule("[bold]Spectra Vis capture wizard")
    model, card = ask_model(console)
    show_card(console, card)
    family = ask_family(card)
    warned = warn_family(console, card, family)
    preset = ask_preset(card)
    chat = ask_chat(card)
    prompts = ask_prompts(console)
    max_tokens, temperature, seed = ask_generation()
    control, strength = ask_control(console, card)
    return C.WizardConfig(
        model=model,
        prompts=prompts,
        family=family,
        preset=preset,
        max_tokens=max_tokens,
        temperature=temperature,
        seed=seed,
        chat=chat,
        family_warning_shown=warned,
        control=control,
        strength=strength,
    )


def read_card(console: Console, model: Path, family: str = "auto") -> ModelCard:
    with console.status("Reading the GGUF metadata..."):
        return read_model_card(model, family)
