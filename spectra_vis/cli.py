"""The ``spectra-vis`` console script: one subcommand per tool, each a thin layer over the library.

``spectra-vis capture ...`` is the capture wizard (``spectra_vis.wizard``), ``spectra-vis bench ...``
the overhead benchmark (``spectra_vis.bench``). A new tool adds
one entry to ``COMMANDS``: its help line and a function ``(argv, prog) -> exit code``.
With no subcommand or an unknown one the help is printed (exit 2).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

Runner = Callable[[list[str], str], int]


def _capture(argv: list[str], prog: str) -> int:
    from spectra_vis.wizard import main

    return main(argv, prog=prog)


def _bench(argv: list[str], prog: str) -> int:
    from spectra_vis.bench import main

    return main(argv)


def _trace(argv: list[str], prog: str) -> int:
    from spectra_vis.analysis.trace import main

    return main(argv, prog=prog)


def _export(argv: list[str], prog: str) -> int:
    from spectra_vis.analysis.export import main

    return main(argv, prog=prog)


def _quantize(argv: list[str], prog: str) -> int:
    from spectra_vis.wizard.tools import quantize_main

    return quantize_main(argv, prog)


def _compare(argv: list[str], prog: str) -> int:
    from spectra_vis.wizard.tools import compare_main

    return compare_main(argv, prog)


def _index(argv: list[str], prog: str) -> int:
    from spectra_vis.wizard.tools import index_main

    return index_main(argv, prog)


def _steer(argv: list[str], prog: str) -> int:
    from spectra_vis.wizard.steer import main

    return main(argv, prog)


def _doctor(argv: list[str], prog: str) -> int:
    from spectra_vis.doctor import main

    return main(argv)


COMMANDS: dict[str, tuple[str, Runner]] = {
    "capture": ("capture tensors of a GGUF model: a wizard, or flags (spectra-vis capture --help)", _capture),
    "trace": ("export a trial as a JSONL trace, or import one (spectra-vis trace --help)", _trace),
    "export": ("a trial's activation vectors as .npz or safetensors, by TransformerLens name", _export),
    "quantize": ("make quantized variants of a GGUF model with llama.cpp's own quantizer", _quantize),
    "compare": ("compare two runs: the same tokens through two models, or two captured trials", _compare),
    "steer": ("steering: make a control vector from contrasting prompts, try it at several strengths", _steer),
    "index": ("write the index file beside captures saved elsewhere, so that they load quickly", _index),
    "doctor": ("can captures run here? versions, build, probe, native callback, demo, frontend", _doctor),
    "bench": ("capture overhead against plain llama-cpp-python (spectra-vis bench --help)", _bench),
}


def build_parser() -> argparse.ArgumentParser:
    from spectra_vis.store.capture_file import tool_version

    parser = argparse.ArgumentParser(
        prog="spectra-vis",
        description="See what llama.cpp computes inside a GGUF model.",
        epilog="Run 'spectra-vis COMMAND --help' for the flags of a command.",
    )
    parser.add_argument("--version", action="version", version=f"spectra-vis {tool_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, _) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]][1](argv[1:], f"spectra-vis {argv[0]}")
    parser = build_parser()
    if argv and argv[0] in ("-h", "--help", "--version"):
        parser.parse_args(argv[:1])  # prints and exits 0
    if argv:
        print(f"spectra-vis: error: unknown command {argv[0]!r}; choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
