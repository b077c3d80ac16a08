"""Wizard: run the capture through ``spectra_vis.capture`` with a rich live display, then the summary.

The display follows the library's events (``collector``, ``trial_start``, ``token``,
``trial_end``): per trial the tokens generated, tokens/s, unique tensors seen, steps
captured, and the response as it is generated. On Ctrl-C the library (``StopAfterDecode``)
stops after the current decode, keeps and saves what was captured; this module says where
and returns 130.
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from spectra_vis.capturing.session import capture
from spectra_vis.store.capture_file import Capture
from spectra_vis.wizard import config as C
from spectra_vis.wizard.estimate import human_size
from spectra_vis.wizard.scripted import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, fail

RESPONSE_TAIL = 600  # characters of the running response shown


@dataclass
class _Row:
    prompt: str
    status: str = "waiting"
    t0: float = 0.0
    text: str = ""
    tokens: int = 0
    seconds: float = 0.0
    tensors: int = 0
    steps: int = 0


class Progress:
    """Live state of the run, fed by the library's events; renders itself for rich.Live."""

    def __init__(self, cfg: C.WizardConfig, out: Path, console: Console) -> None:
        self.cfg, self.out, self.console = cfg, out, console
        self.rows = [_Row(p) for p in cfg.prompts]
        self.current = -1
        self.collector: Any = None
        self.lens: tuple[int, int, int] | None = None  # trial, vocabulary blocks done, in all

    def on_event(self, kind: str, payload: Any) -> None:
        if kind == "collector":
            self.collector = payload
        elif kind == "trial_start":
            self.current = payload[0]
            row = self.rows[self.current]
            row.status, row.t0 = "running", time.perf_counter()
        elif kind == "token":
            self.rows[self.current].text += payload[1]
        elif kind == "trial_end":
            self._finish(payload)
        elif kind == "lens":
            self.lens = payload

    def _finish(self, trial: Any) -> None:
        row = self.rows[trial.trial_id]
        row.status = "interrupted" if trial.interrupted else "done"
        row.text = trial.response
        row.tokens, row.seconds = len(trial.sampled), trial.inference_time_ms / 1000
        row.tensors, row.steps = len(trial.counts), len(trial.steps)
        if not self.console.is_terminal and not self.cfg.quiet:
            self.console.print(
                f"trial {trial.trial_id}: {row.tokens} tokens in {row.seconds:.2f} s, "
                f"{row.tensors} tensors, {row.steps} steps ({row.status})"
            )

    def _live_numbers(self, row: _Row) -> tuple[int, float, int, int]:
        trial = self.collector.current_trial if self.collector is not None else None
        if row.status != "running" or trial is None:
            return row.tokens, row.seconds, row.tensors, row.steps
        # the native callback fills a trial's counts when it ends; meanwhile the catalogue shows what was seen
        seen = len(trial.counts) or len(self.collector.tensors)
        return len(trial.sampled), time.perf_counter() - row.t0, seen, len(trial.steps)

    def __rich__(self) -> Group:
        table = Table(title=f"Capturing to {self.out}", title_justify="left", expand=False)
        for name, justify in (
            ("#", "right"),
            ("prompt", "left"),
            ("tokens", "right"),
            ("tok/s", "right"),
            ("tensors", "right"),
            ("steps", "right"),
            ("status", "left"),
        ):
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        for i, row in enumerate(self.rows):
            tokens, seconds, tensors, steps = self._live_numbers(row)
            rate = f"{tokens / seconds:.1f}" if seconds > 0 and tokens else "-"
            table.add_row(str(i), _short(row.prompt, 40), str(tokens), rate, str(tensors), str(steps), row.status)
        parts: list[Any] = [table]
        if 0 <= self.current < len(self.rows):
            row = self.rows[self.current]
            shown = row.text[-RESPONSE_TAIL:].lstrip()
            parts.append(Panel(Text(shown or "…"), title=f"trial {self.current}: {_short(row.prompt, 60)}"))
        if self.lens is not None:
            trial, done, total = self.lens
            line = Table.grid(padding=(0, 1))
            line.add_row(f"logit lens of trial {trial}", ProgressBar(total=total, completed=done, width=30),
                         f"{done}/{total} blocks of the vocabulary")  # fmt: skip
            parts.append(line)
        return Group(*parts)


def run(cfg: C.WizardConfig, console: Console, prog: str) -> int:
    """Capture as ``cfg`` says; the exit code (0 saved, 2 bad input, 130 Ctrl-C, 1 other failure)."""
    out = cfg.output_path()
    progress = Progress(cfg, out, console)
    kwargs: dict[str, Any] = {
        "on_event": progress.on_event,
        "preset": cfg.preset,
        "max_tokens": cfg.max_tokens,
        "out": out,
        "model_family": cfg.family,
        "temperature": cfg.temperature,
        "seed": cfg.seed,
        "n_ctx": cfg.context_size(),
        "chat": cfg.chat,
    }
    if cfg.control is not None:
        kwargs["control"], kwargs["control_layers"] = (cfg.control, cfg.strength), cfg.control_layers
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_printer(cfg)
            if cfg.quiet:
                result = capture(cfg.model, cfg.prompts, **kwargs)
            elif console.is_terminal:
                with Live(progress, console=console, refresh_per_second=8, vertical_overflow="visible"):
                    result = capture(cfg.model, cfg.prompts, **kwargs)
            else:
                console.print(f"Capturing {len(cfg.prompts)} prompt(s) on {cfg.model.name} to {out}")
                result = capture(cfg.model, cfg.prompts, **kwargs)
    except KeyboardInterrupt as interrupt:
        return _interrupted(getattr(interrupt, "capture", None), out, console, cfg.quiet)
    except ValueError as exc:  # llama.cpp refused the file, or a bad setting
        return fail(prog, f"{exc}", EXIT_USAGE)
    except OSError as exc:
        return fail(prog, f"could not save the capture to {out}: {exc}", EXIT_ERROR)
    if cfg.quiet:
        print(out, flush=True)
        return EXIT_OK
    summary(console, result, out)
    console.print(
        "\n[bold]Next:[/] open it in the viewer: [bold]./start_server.sh[/] "
        "(Windows: start_server.bat), then http://127.0.0.1:8000"
    )
    return EXIT_OK


def _warning_printer(cfg: C.WizardConfig) -> Any:
    """Library warnings (a forced family that contradicts the file) as one line on stderr."""

    def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        text = " ".join(str(message).split())
        if not (cfg.family_warning_shown and "was forced" in text):
            print(f"warning: {text}", file=sys.stderr, flush=True)

    return show


def _interrupted(partial: Capture | None, out: Path, console: Console, quiet: bool) -> int:
    if partial is None or partial.path is None:
        print("Interrupted (Ctrl-C) before anything was captured; nothing was saved.", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    if not quiet:
        summary(console, partial, out)
    s = partial.summary()
    print(
        f"Interrupted (Ctrl-C): kept {s['trials']} trial(s), {s['steps']} steps; saved to {partial.path}",
        file=sys.stderr,
        flush=True,
    )
    return EXIT_INTERRUPTED


def summary(console: Console, result: Capture, out: Path) -> None:
    table = Table(title="Capture summary", title_justify="left")
    for name in ("#", "prompt", "tokens", "time", "tensors", "steps"):
        table.add_column(name, justify="left" if name == "prompt" else "right")
    for t in result.trials:
        generated = len(t["tokens"]["ids"]) - t["tokens"]["n_prompt"]
        flag = " (interrupted)" if t["interrupted"] else ""
        table.add_row(
            str(t["id"]),
            _short(t["prompt"], 40) + flag,
            str(generated),
            f"{t['timings']['total_ms'] / 1000:.2f} s",
            str(sum(1 for c in t["counts"] if c)),
            str(len(t["steps"])),
        )
    console.print(table)
    steered = {(t["control"]["file"], t["control"]["strength"]) for t in result.trials if t.get("control")}
    for file, strength in sorted(steered):
        console.print(f"Steered with [bold]{file}[/] at strength {strength:g}")
    size = out.stat().st_size if out.exists() else 0
    console.print(f"Saved [bold]{out}[/] ({human_size(size)})", soft_wrap=True)


def _short(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"
