"""``spectra-vis quantize`` and ``spectra-vis compare``: flags in, one library call out, rich progress.

- ``quantize MODEL.gguf --type Q8_0 [--type Q4_K_M ...] [--out-dir DIR] [--allow-requantize]``:
  llama.cpp's own quantizer (``spectra_vis.capturing.quantize``), a progress bar per type.
- ``compare --models A.gguf B.gguf --prompt TEXT [--preset P] --out FILE``: A generates, B reads A's
  tokens (``spectra_vis.comparing.pair.capture_pair``); one capture file holding the pair.
- ``compare CAPTURE[:TRIAL] CAPTURE[:TRIAL] [--models A B] [--json FILE]``: two trials already
  captured (``spectra_vis.compare``).

Both print a summary: per layer the residual drift (cosine, relative L2), then the mean KL and
the top-1 agreement of the next-token distributions.

- ``index CAPTURE.json [...] [--force]``: write the index file beside captures saved elsewhere (or
  whose index was deleted), with a progress bar over their steps, so that their first load is quick.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from spectra_vis.capturing.chat import ChatMode
from spectra_vis.errors import SpectraVisError
from spectra_vis.record.presets import PRESETS
from spectra_vis.store.files import atomic_write
from spectra_vis.wizard.scripted import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, TOOL_ERRORS, fail, tool_error


def quantize_main(argv: list[str], prog: str = "spectra-vis quantize") -> int:
    from spectra_vis.capturing.quantize import quant_types, quantize

    p = argparse.ArgumentParser(prog=prog, description="Quantize a GGUF model with llama.cpp's own quantizer.")
    p.add_argument("model", help="the GGUF model to quantize (F16 or F32; a quantized one needs --allow-requantize)")
    p.add_argument("--type", action="append", required=True, dest="types", help="Q8_0, Q4_K_M, Q2_K, ... (repeatable)")
    p.add_argument("--out-dir", help="where the outputs go (default: beside the model)")
    p.add_argument("--allow-requantize", action="store_true", help="quantize an already quantized model")
    p.add_argument("--threads", type=int, default=None, help="quantizer threads (default: all cores)")
    args = p.parse_args(argv)
    console = Console(highlight=False, stderr=True)
    src = Path(args.model)
    known = quant_types()
    unknown = [t for t in args.types if t.upper() not in known]
    if unknown:  # every type checked before the first is made
        return fail(prog, f"unknown quantization type {unknown[0]!r}; llama.cpp knows: {', '.join(sorted(known))}")
    written: list[Path] = []
    for qtype in args.types:
        out = Path(args.out_dir or src.parent) / f"{src.stem}-{qtype.upper()}.gguf"
        try:
            with _bar(console, f"{src.name} -> {qtype.upper()}") as (progress, task):

                def step(done: int, total: int, name: str, progress: Any = progress, task: Any = task) -> None:
                    progress.update(task, completed=done, total=total, name=name)

                written.append(
                    quantize(
                        src,
                        qtype,
                        out,
                        allow_requantize=args.allow_requantize,
                        n_threads=args.threads,
                        on_progress=step,
                    )  # fmt: skip
                )
        except SpectraVisError as exc:
            return fail(prog, str(exc), EXIT_USAGE)
        except KeyboardInterrupt:
            console.print("Cancelled (Ctrl-C); no partial model was left.")
            return EXIT_INTERRUPTED
        console.print(f"wrote {written[-1]} ({written[-1].stat().st_size / 2**20:.1f} MiB)")
    return EXIT_OK


def compare_main(argv: list[str], prog: str = "spectra-vis compare") -> int:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Compare two runs: capture the same tokens through two models (--models A B --prompt), "
        "or compare two captured trials (CAPTURE[:TRIAL] CAPTURE[:TRIAL]).",
    )
    p.add_argument("trials", nargs="*", help="two captured trials, CAPTURE.json[:TRIAL] (trial 0 by default)")
    p.add_argument("--models", nargs=2, metavar=("A", "B"), help="the reference and the candidate GGUF model")
    p.add_argument("--prompt", help="the prompt A generates from (B reads A's tokens)")
    p.add_argument("--preset", default="standard", choices=[k for k in PRESETS if k != "observe"])
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--n-ctx", type=int, default=512)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--chat", choices=("auto", "on", "off"), default="auto", help="use A's chat template for the prompt")
    p.add_argument("--out", help="the pair capture to write (with --models)")
    p.add_argument("--json", help="also write the comparison as JSON to this file")
    args = p.parse_args(argv)
    console = Console(highlight=False)
    try:
        if args.trials:
            if len(args.trials) != 2:
                return fail(prog, f"give two trials (CAPTURE[:TRIAL] CAPTURE[:TRIAL]), not {len(args.trials)}")
            cmp = _compare_captured(args)
        else:
            if not args.models or not args.prompt or not args.out:
                return fail(prog, "give --models A B --prompt TEXT --out FILE, or two captured trials")
            cmp = _compare_models(args, console)
    except TOOL_ERRORS as exc:
        return tool_error(prog, console, exc, args.out)
    print_summary(console, cmp)
    if args.json:
        import orjson

        atomic_write(Path(args.json), orjson.dumps(cmp.to_dict()))
        console.print(f"wrote {args.json}")
    return EXIT_OK


def _compare_captured(args: argparse.Namespace) -> Any:
    from spectra_vis.comparing import compare
    from spectra_vis.store.capture_file import Capture

    (pa, ta), (pb, tb) = (_trial_ref(t) for t in args.trials)
    cap_a = Capture.load(pa, lazy=True)  # as the server reads it: the steps through the index, not parsed whole
    cap_b = cap_a if Path(pb).resolve() == Path(pa).resolve() else Capture.load(pb, lazy=True)
    return compare(cap_a, ta, cap_b, tb, models=tuple(args.models) if args.models else None)


def _compare_models(args: argparse.Namespace, console: Console) -> Any:
    from spectra_vis.comparing import compare
    from spectra_vis.comparing.pair import capture_pair

    chat: ChatMode = {"auto": "auto", "on": True, "off": False}[args.chat]  # type: ignore[assignment]
    steps = {"n": 0}
    with _bar(console, "capturing") as (progress, task):
        progress.update(task, total=2 * args.max_tokens)

        def on_event(kind: str, payload: Any) -> None:
            if kind == "trial_start":
                progress.update(task, name=("reference (generating)", "candidate (reading its tokens)")[payload[0]])
                if payload[0] == 1:  # the candidate reads as many tokens as the reference made
                    progress.update(task, total=2 * steps["n"])
            elif kind == "token":
                steps["n"] += 1
                progress.update(task, completed=steps["n"])

        cap = capture_pair(
            args.models[0], args.models[1], args.prompt, preset=args.preset, max_tokens=args.max_tokens,
            n_ctx=args.n_ctx, n_threads=args.threads, chat=chat, out=args.out, on_event=on_event,
        )  # fmt: skip
    console.print(f"wrote {args.out} (trial 0: {Path(args.models[0]).name}, trial 1: {Path(args.models[1]).name})")
    return compare(cap, 0, cap, 1)


def index_main(argv: list[str], prog: str = "spectra-vis index") -> int:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Write the index file (NAME.index.safetensors) beside capture files, so that their first load "
        "in the viewer reads no step. Captures saved by spectra-vis carry one already; this is for captures "
        "from elsewhere or whose index was deleted.",
    )
    p.add_argument("captures", nargs="+", help="capture files (.json)")
    p.add_argument("--force", action="store_true", help="build it again even when an up-to-date index is there")
    args = p.parse_args(argv)
    console = Console(highlight=False, stderr=True)
    for name in args.captures:
        try:
            _index_one(Path(name), args.force, console)
        except TOOL_ERRORS as exc:
            return tool_error(prog, console, exc, None, "could not write the index: ")
    return EXIT_OK


def _index_one(path: Path, force: bool, console: Console) -> None:
    from spectra_vis.analysis import digest
    from spectra_vis.errors import CaptureError
    from spectra_vis.store import index_file
    from spectra_vis.store.capture_file import Capture

    cap = Capture.load(path, vectors=False, lazy=True)
    if cap.legacy:
        raise CaptureError(f"{path.name} is a version 1.0 capture: it has no steps to index")
    target = path.with_name(index_file.index_name(path))
    if force:
        cap.index = None
    if not digest.needs_build(cap):
        console.print(f"{path.name}: {target.name} is up to date (--force builds it again)", soft_wrap=True)
        return
    for notice in cap.notices:
        console.print(f"[yellow]note:[/] {notice}")
    before = len(cap.notices)
    with _bar(console, path.name) as (progress, task):

        def step(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total, name="steps")

        digest.prepare(cap, step)
    for notice in cap.notices[before:]:
        console.print(f"[yellow]note:[/] {notice}")
    if cap.index is None:
        raise OSError(f"no index file was written beside {path.name}")
    console.print(f"wrote {target}", soft_wrap=True)


def _trial_ref(text: str) -> tuple[str, int]:
    path, _, trial = text.rpartition(":")
    if path and trial.isdigit():
        return path, int(trial)
    return text, 0


class _bar:
    """A rich progress bar for one task, as a context: (progress, task id)."""

    def __init__(self, console: Console, label: str) -> None:
        self.progress = Progress(
            TextColumn(f"{label} [dim]{{task.fields[name]}}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console, transient=False,
        )  # fmt: skip

    def __enter__(self) -> tuple[Progress, Any]:
        self.progress.start()
        return self.progress, self.progress.add_task("", total=None, name="")

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def print_summary(console: Console, cmp: Any) -> None:
    """Per layer: residual cosine and relative L2 (the drift curve); then the next-token summary."""
    for notice in cmp.notices:
        console.print(f"[yellow]note:[/] {notice}")
    table = Table(title=f"trial {cmp.a['trial']} ({cmp.a['model']}) vs trial {cmp.b['trial']} ({cmp.b['model']})")
    for col in ("layer", "residual cosine", "relative L2", "L2 change"):
        table.add_column(col, justify="right")
    drift, rel = cmp.drift, cmp.layer_rel_l2
    for i, layer in enumerate(cmp.layers):
        l2 = cmp.resid_l2_change[i]
        have = l2[~(l2 != l2)]
        table.add_row(
            str(layer),
            "-" if drift is None else f"{drift[i]:.6f}",
            "-" if rel is None else f"{rel[i]:.4f}",
            f"{have.mean():+.4f}" if len(have) else "-",
        )
    console.print(table)
    s = cmp.summary()
    line = f"{s['n_shared']} tokens compared"
    if s.get("diverge_at") is not None:
        line += f" (the sequences diverge at {s['diverge_at']})"
    if s.get("mean_kl") is not None:
        line += f"; next token over {s['n_next_token']} positions: mean KL {s['mean_kl']:.5f} nats"
        line += f", top-1 agreement {100 * s['top1_agreement']:.1f}%"
    console.print(line)
