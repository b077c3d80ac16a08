"""Wizard: the flags of ``capture_tensors.py`` / ``spectra-vis capture`` and their checks.

Bad input ends with exit code 2 and one line on stderr saying what was wrong and what to
do (argparse's own errors included). Imports no UI package.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from spectra_vis.errors import SpectraVisError
from spectra_vis.record.presets import PRESET_HELP, PRESETS
from spectra_vis.record.profiles import SUPPORTED_MODELS
from spectra_vis.wizard import config as C

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
PRESET_CHOICES = tuple(p for p in PRESETS if p != "custom")  # custom needs patterns: the Python API
FAMILY_CHOICES = ("auto", *SUPPORTED_MODELS)


class UsageError(Exception):
    """Bad input: the message is one line, the exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see --help)")


def _number(parse: Callable[[str], float], kind: str, low: float, high: float | None = None) -> Callable[[str], Any]:
    """A converter for flags and answers: ``parse(text)`` within [low, high], else a one-line reason."""

    def convert(text: str) -> Any:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind}") from None
        if value < low or (high is not None and value > high):
            limits = f"at least {low}" if high is None else f"between {low} and {high}"
            raise argparse.ArgumentTypeError(f"must be {limits}, got {text}")
        return value

    return convert


def finite_number(text: str) -> float:
    """A converter for a strength: any finite number (a control vector's scale)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


positive_int = _number(int, "whole number", 1)
seed_value = _number(int, "whole number", 0)
temperature_value = _number(float, "number", 0, 10)


def build_parser(prog: str = "capture_tensors.py") -> argparse.ArgumentParser:
    presets = "; ".join(f"{name}: {PRESET_HELP[name]}" for name in PRESET_CHOICES)
    p = _Parser(
        prog=prog,
        description=(
            "Capture what llama.cpp computes while a GGUF model answers prompts, and save it for the viewer. "
            "With no arguments (in a terminal) a wizard asks every question; with --model and --prompt it runs "
            "without questions."
        ),
        epilog=(
            "Exit codes: 0 success; 2 bad input (one line on stderr); 130 Ctrl-C (what was captured is saved). "
            "Next step: ./start_server.sh, then open http://127.0.0.1:8000."
        ),
    )
    p.add_argument(
        "--model",
        metavar="PATH",
        help="GGUF model file; quotes, backslash-escaped spaces, file:// URLs and ~ are accepted. "
        f"'demo' uses {C.DEMO_NAME} ({C.DEMO_INSTALL})",
    )
    p.add_argument("--prompt", action="append", default=[], metavar="TEXT", help="a prompt to run (repeat for several)")
    p.add_argument(
        "--prompts-file", metavar="FILE", help="a text file with one prompt per line (blank lines are skipped)"
    )
    p.add_argument(
        "--family",
        default="auto",
        type=str.lower,
        choices=FAMILY_CHOICES,
        help="model family; auto (default) reads it from the GGUF metadata",
    )
    p.add_argument(
        "--preset",
        default=C.DEFAULT_PRESET,
        type=str.lower,
        choices=PRESET_CHOICES,
        help=f"what to read (default {C.DEFAULT_PRESET}). {presets}",
    )
    p.add_argument(
        "--max-tokens",
        type=positive_int,
        default=C.DEFAULT_MAX_TOKENS,
        metavar="N",
        help=f"tokens to generate per prompt (default {C.DEFAULT_MAX_TOKENS})",
    )
    p.add_argument(
        "--temperature",
        type=temperature_value,
        default=C.DEFAULT_TEMPERATURE,
        metavar="T",
        help=f"sampling temperature, 0 = greedy (default {C.DEFAULT_TEMPERATURE})",
    )
    p.add_argument(
        "--seed", type=seed_value, default=C.DEFAULT_SEED, metavar="S", help=f"sampling seed (default {C.DEFAULT_SEED})"
    )
    p.add_argument(
        "--n-ctx",
        type=positive_int,
        default=None,
        metavar="N",
        help=f"context size (default: enough for the longest prompt plus --max-tokens, at least {C.MIN_CTX})",
    )
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument(
        "--chat",
        dest="chat",
        action="store_const",
        const=True,
        default=C.DEFAULT_CHAT,
        help="send each prompt as a one-message user conversation in the model's chat template "
        "(an error if the GGUF has none). Default: the template when the GGUF has one, else the raw text",
    )
    fmt.add_argument(
        "--raw",
        dest="chat",
        action="store_const",
        const=False,
        help="send each prompt as it is, without the model's chat template",
    )
    p.add_argument(
        "--out",
        metavar="FILE",
        help="where to save the capture (default data/capture_<model>_<timestamp>.json; "
        "the folder is $SPECTRA_DATA_DIR when set)",
    )
    p.add_argument(
        "--control",
        metavar="NAME.gguf",
        help="steer with this control vector (llama.cpp's --control-vector format; spectra-vis steer make makes one)",
    )
    p.add_argument(
        "--strength",
        type=finite_number,
        default=1.0,
        metavar="S",
        help="with --control: the factor the vector is scaled by (default 1; 0 is exactly the unsteered run)",
    )
    p.add_argument(
        "--control-layers",
        metavar="FIRST-LAST",
        help="with --control: the blocks it is added to (default: every block the vector has)",
    )
    p.add_argument("--quiet", action="store_true", help="no live display; print only the saved file's path")
    return p


def parse(argv: list[str], prog: str = "capture_tensors.py") -> argparse.Namespace:
    """Parse flags; raise UsageError (one line) on a bad flag or value."""
    return build_parser(prog).parse_args(argv)


def read_prompts(args: argparse.Namespace) -> list[str]:
    """--prompt values, then the lines of --prompts-file; UsageError if the file is unreadable."""
    prompts = [p for p in args.prompt if p.strip()]
    if args.prompt and not prompts:
        raise UsageError("--prompt is empty; give the text of a prompt")
    if args.prompts_file:
        path = Path(args.prompts_file).expanduser()
        if path.is_dir():
            raise UsageError(f"--prompts-file {path} is a directory; give a text file with one prompt per line")
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UsageError(f"--prompts-file {path} not found (check the path)") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--prompts-file {path} could not be read as UTF-8 text ({exc})") from None
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if not lines:
            raise UsageError(f"--prompts-file {path} has no prompts; write one prompt per line")
        prompts += lines
    return prompts


def check_out(text: str | None) -> Path | None:
    if text is None:
        return None
    out = Path(text).expanduser()
    if out.is_dir():
        raise UsageError(f"--out {out} is a directory; give a file name such as {out / 'capture.json'}")
    return out


def check_control(text: str | None) -> Path | None:
    if text is None:
        return None
    path = Path(text).expanduser()
    if not path.is_file():
        raise UsageError(f"--control {path} not found; give a control vector file (spectra-vis steer make)")
    return path


def fail(prog: str, message: str, code: int = EXIT_USAGE) -> int:
    """Print the one-line error and return ``code``."""
    print(f"{prog}: error: {' '.join(message.split())}", file=sys.stderr, flush=True)
    return code


TOOL_ERRORS = (SpectraVisError, ValueError, KeyboardInterrupt, OSError)


def tool_error(prog: str, console: Any, exc: BaseException, out: str | None, cannot_write: str = "") -> int:
    """What a tool command (compare, steer) that raised one of ``TOOL_ERRORS`` exits with: bad input
    2 (one line), Ctrl-C 130 (saying whether what was captured is in ``out``), a file that could not
    be written 1 (``cannot_write`` then the reason)."""
    if isinstance(exc, KeyboardInterrupt):
        saved = getattr(exc, "capture", None) is not None
        console.print("Interrupted (Ctrl-C)" + (f"; what was captured is in {out}" if saved else ""))
        return EXIT_INTERRUPTED
    if isinstance(exc, (SpectraVisError, ValueError)):
        return fail(prog, str(exc), EXIT_USAGE)
    return fail(prog, f"{cannot_write}{exc}", EXIT_ERROR)
