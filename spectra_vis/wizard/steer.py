"""``spectra-vis steer make`` and ``spectra-vis steer try``: flags in, one library call out, rich output.

- ``steer make --model M.gguf --positive FILE --negative FILE [--method mean|pca] [--layers 4-14]
  [--position last|mean] --out NAME.gguf``: a control vector (``spectra_vis.steering.make``), a
  progress bar over the prompts, then per layer the projection gap it found;
- ``steer try --model M.gguf --control NAME.gguf --strengths -4,0,4 --prompt TEXT --out FILE``: one
  capture, one trial per strength (``spectra_vis.steering.sweep``), then the responses side by side
  and the mean projection per layer and strength.

Exit codes as the capture wizard's: 0 done, 2 bad input (one line on stderr), 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from spectra_vis.wizard.scripted import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, TOOL_ERRORS, fail, tool_error

USAGE = "give a subcommand: make (a control vector from two prompt files) or try (a sweep of strengths)"


def main(argv: list[str], prog: str = "spectra-vis steer") -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: {prog} {{make,try}} ...\n\n  make  a control vector from contrasting prompts\n"
              "  try   one prompt at several strengths of a control vector, as one capture")  # fmt: skip
        return EXIT_OK if argv else EXIT_USAGE
    if argv[0] == "make":
        return make_main(argv[1:], f"{prog} make")
    if argv[0] == "try":
        return try_main(argv[1:], f"{prog} try")
    return fail(prog, f"unknown subcommand {argv[0]!r}; {USAGE}")


class _LazyBar:
    """A progress bar that appears with the first update: input refused before any work starts
    leaves stderr with its one line only."""

    def __init__(self, console: Console, label: str) -> None:
        self.progress = Progress(
            TextColumn(f"{label} [dim]{{task.fields[name]}}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console, transient=False,
        )  # fmt: skip
        self.task: Any = None

    def update(self, **fields: Any) -> None:
        if self.task is None:
            self.progress.start()
            self.task = self.progress.add_task("", total=None, name="")
        self.progress.update(self.task, **fields)

    def __enter__(self) -> _LazyBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.task is not None:
            self.progress.stop()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        raise SystemExit(fail(self.prog, f"{message} (see --help)"))


def _model(text: str) -> str:
    if text.strip().lower() == "demo":
        from spectra_vis.wizard.config import demo_model_path

        return str(demo_model_path())
    return text


def make_main(argv: list[str], prog: str = "spectra-vis steer make") -> int:
    p = _Parser(
        prog=prog,
        description="Make a control vector (llama.cpp's --control-vector GGUF) from two prompt files: one prompt "
        "per line, the concept in the positive file, its opposite in the negative.",
    )
    p.add_argument("--model", required=True, help="the GGUF model ('demo': Gemma 3 270M)")
    p.add_argument("--positive", required=True, metavar="FILE", help="prompts showing the concept, one per line")
    p.add_argument("--negative", required=True, metavar="FILE", help="prompts showing its opposite, one per line")
    p.add_argument("--method", choices=("mean", "pca"), default="mean",
                   help="mean of differences (default; the files may differ in length) or the first principal "
                   "component of the paired differences (line i with line i)")  # fmt: skip
    p.add_argument("--layers", metavar="FIRST-LAST", help="blocks to make directions for (default: 1..n_layer-1)")
    p.add_argument("--position", choices=("last", "mean"), default="last",
                   help="the residual row of the last prompt token (default), or the prompt tokens' mean")  # fmt: skip
    p.add_argument("--chat", action="store_true", help="send the prompts in the model's chat template (default raw)")
    p.add_argument("--n-ctx", type=int, default=512)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", required=True, metavar="NAME.gguf", help="the control vector file to write")
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    from spectra_vis.steering import make

    console = Console(highlight=False, stderr=True)
    if Path(args.out).is_dir():
        return fail(prog, f"--out {args.out} is a directory; give a file name such as {Path(args.out) / 'sea.gguf'}")
    try:
        with _LazyBar(console, "capturing prompts") as bar:

            def on_event(kind: str, payload: Any) -> None:
                if kind == "prompt":
                    bar.update(completed=payload[0], total=payload[1])

            vector = make(_model(args.model), Path(args.positive), Path(args.negative), method=args.method,
                          layers=args.layers, position=args.position, out=args.out, chat=args.chat,
                          n_ctx=args.n_ctx, n_threads=args.threads, on_event=on_event)  # fmt: skip
    except KeyboardInterrupt:
        console.print("Cancelled (Ctrl-C); no control vector was written.")
        return EXIT_INTERRUPTED
    except TOOL_ERRORS as exc:
        return tool_error(prog, console, exc, None, f"could not write {args.out}: ")
    table = Table(title=f"{Path(args.out).name}: {args.method} of {args.position}-token residuals")
    for col in ("layer", "gap (residual units)", "gap / residual norm"):
        table.add_column(col, justify="right")
    for layer in vector.layers:
        table.add_row(str(layer), f"{vector.scale(layer):.3f}", f"{vector.relative_gap.get(layer, float('nan')):.4f}")
    Console(highlight=False).print(table)
    print(f"wrote {args.out} ({len(vector.layers)} layers, n_embd {vector.n_embd})", flush=True)
    return EXIT_OK


def try_main(argv: list[str], prog: str = "spectra-vis steer try") -> int:
    p = _Parser(
        prog=prog,
        description="Capture one prompt at several strengths of a control vector: one capture, one trial per "
        "strength (a sweep), each with its residual projection on the vector.",
    )
    p.add_argument("--model", required=True, help="the GGUF model ('demo': Gemma 3 270M)")
    p.add_argument("--control", required=True, metavar="NAME.gguf", help="the control vector (steer make)")
    p.add_argument("--strengths", default="-4,0,4", help="comma-separated strengths (default -4,0,4; 0 is always run)")
    p.add_argument("--prompt", required=True, help="the prompt")
    p.add_argument("--layers", metavar="FIRST-LAST", help="blocks to apply it to (default: every block it has)")
    p.add_argument("--preset", default="standard", choices=("standard", "full"))
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--n-ctx", type=int, default=512)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--chat", choices=("auto", "on", "off"), default="auto", help="use the model's chat template")
    p.add_argument("--out", required=True, metavar="FILE", help="the capture to write")
    try:
        args = p.parse_args(_joined(argv, "--strengths"))
    except SystemExit as exc:
        return int(exc.code or 0)
    from spectra_vis.steering import sweep

    console = Console(highlight=False, stderr=True)
    chat = {"auto": "auto", "on": True, "off": False}[args.chat]
    try:
        with _LazyBar(console, "sweep") as bar:
            tokens = {"n": 0}

            def on_event(kind: str, payload: Any) -> None:
                if kind == "trial_start":
                    tokens["n"] = 0
                    bar.update(name=payload[1], completed=0, total=None)
                elif kind == "token":
                    tokens["n"] += 1
                    bar.update(completed=tokens["n"])

            cap = sweep(_model(args.model), args.control, args.strengths, args.prompt, control_layers=args.layers,
                        preset=args.preset, max_tokens=args.max_tokens, n_ctx=args.n_ctx, n_threads=args.threads,
                        chat=chat, out=args.out, on_event=on_event)  # type: ignore[arg-type]  # fmt: skip
    except TOOL_ERRORS as exc:
        return tool_error(prog, console, exc, args.out, f"could not save the capture to {args.out}: ")
    print_sweep(Console(highlight=False), cap)
    print(f"wrote {args.out}", flush=True)
    return EXIT_OK


def _joined(argv: list[str], flag: str) -> list[str]:
    """``--strengths -4,0,4`` as ``--strengths=-4,0,4`` (argparse would read -4,0,4 as a flag)."""
    out: list[str] = []
    it = iter(argv)
    for a in it:
        out.append(f"{a}={next(it, '')}" if a == flag else a)
    return out


def print_sweep(console: Console, cap: Any) -> None:
    """The responses per strength, then the mean projection per layer (prompt and response tokens)."""
    trials = [cap.trial(i) for i in range(len(cap.data["trials"]))]
    responses = Table(title="responses")
    responses.add_column("trial", justify="right")
    responses.add_column("strength", justify="right")
    responses.add_column("response")
    for t in trials:
        responses.add_row(str(t["id"]), f"{t['control']['strength']:g}", t["response"].strip() or "(nothing)")
    console.print(responses)
    proj = Table(title="mean projection on the direction (residual units): prompt / response tokens")
    proj.add_column("layer", justify="right")
    for t in trials:
        proj.add_column(f"{t['control']['strength']:g}", justify="right")
    layers = trials[0].get("projection", {}).get("layers", [])
    for i, layer in enumerate(layers):
        cells = []
        for t in trials:
            values = np.array(t["projection"]["values"][i], dtype=float)
            n = int(t["tokens"]["n_prompt"])
            cells.append(f"{_mean(values[:n])} / {_mean(values[n:])}")
        proj.add_row(str(layer), *cells)
    console.print(proj)


def _mean(x: np.ndarray) -> str:
    have = x[~np.isnan(x)]
    return f"{have.mean():.1f}" if len(have) else "-"
