"""Wizard entry: flags, or questions when there are none (or a required one is missing in a terminal).

``main(argv)`` returns the exit code: 0 saved, 2 bad input (one line on stderr), 130 Ctrl-C.
When stdin is not a terminal nothing is asked: a missing value is an error, never a wait.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from spectra_vis.record.profiles import ModelFileError
from spectra_vis.wizard import config as C
from spectra_vis.wizard.paths import check_model
from spectra_vis.wizard.scripted import (
    EXIT_INTERRUPTED,
    UsageError,
    check_control,
    check_out,
    fail,
    parse,
    read_prompts,
)

NO_TTY = "stdin is not a terminal, so nothing can be asked"


def main(argv: list[str] | None = None, prog: str = "capture_tensors.py") -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parse(argv, prog)
        console_class, questions, runner = _load_ui()
        console = console_class(highlight=False)
        interactive = sys.stdin.isatty()
        if not argv:
            if not interactive:
                raise UsageError(f"no arguments and {NO_TTY}; give --model PATH --prompt TEXT (see --help)")
            cfg = questions.wizard(console)
        else:
            cfg = _from_flags(args, console, questions if interactive else None)
    except UsageError as exc:
        return fail(prog, str(exc))
    except KeyboardInterrupt:
        print("\nCancelled (Ctrl-C); nothing was captured.", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except EOFError:
        return fail(prog, "input ended before every question was answered; nothing was captured")
    return int(runner.run(cfg, console, prog))


def _load_ui() -> tuple[Any, ModuleType, ModuleType]:
    """rich and questionary live in the cli extra; a clear message when they are missing."""
    try:
        from rich.console import Console

        from spectra_vis.wizard import interactive, run
    except ImportError as exc:
        raise UsageError(
            f"the wizard needs rich and questionary ({exc.name} is missing); run: pip install -e .[cli]"
        ) from None
    return Console, interactive, run


def _from_flags(args: argparse.Namespace, console: Any, questions: ModuleType | None) -> C.WizardConfig:
    """A config from the flags; with ``questions`` (a terminal) a missing model or prompt is asked for."""
    prompts = read_prompts(args)
    out = check_out(args.out)
    if args.model is not None:
        model = _model_from_flag(args.model)
    elif questions is not None:
        model, card = questions.ask_model(console)
        questions.show_card(console, card)
    else:
        raise UsageError(f"--model is required ({NO_TTY}); give --model PATH or --model demo")
    if not prompts:
        if questions is None:
            raise UsageError(f"no prompt given ({NO_TTY}); give --prompt TEXT or --prompts-file FILE")
        prompts = questions.ask_prompts(console)
    return C.WizardConfig(
        model=model,
        prompts=prompts,
        family=args.family,
        preset=args.preset,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        seed=args.seed,
        n_ctx=args.n_ctx,
        chat=args.chat,
        out=out,
        control=check_control(args.control),
        strength=args.strength,
        control_layers=args.control_layers,
        quiet=args.quiet,
    )


def _model_from_flag(text: str) -> Path:
    if C.is_demo(text):
        try:
            return C.demo_model_path()
        except ModuleNotFoundError as exc:
            raise UsageError(str(exc)) from None
    try:
        return check_model(text)
    except ModelFileError as exc:
        raise UsageError(f"--model: {exc}") from None
