"""What the index file of a capture costs to build (issue 14), in one run, as ratios to a baseline.

- **First load** of a capture saved without its index (copied alone to a temporary folder): the
  lazy load plus the build of every trial's digest (``analysis.digest.prepare``), against
  ``orjson.loads`` of the whole file in the same run (the cyclic collector paused, as in the build).
- **Save**: the capture loaded whole and saved again, without the index (``index=False``: the
  write alone) and with it (what this project's tools do), best of ``--reps``.

Wall and CPU seconds (the CPU time is steadier on a shared machine). The captures are those of
``benchmarks/bench_backend.py --scale`` (``~/.cache/spectra-vis/bench-backend``); a missing one is
skipped. ``--report docs/PERFORMANCE.md`` writes the table there. No timing goes into a test.

    python benchmarks/bench_index.py [--captures gemma_bench_700.json ...] [--report docs/PERFORMANCE.md]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from spectra_vis.analysis import digest
from spectra_vis.store.capture_file import Capture

WORK = Path.home() / ".cache" / "spectra-vis" / "bench-backend"
SAVE_LIMIT = 200 << 20  # captures larger than this are not loaded whole to time a save


def timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall, CPU) seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def parse_whole(path: Path) -> None:
    raw = path.read_bytes()
    gc.disable()
    try:
        orjson.loads(raw)
    finally:
        gc.enable()


def first_load(path: Path) -> None:
    cap = Capture.load(path, vectors=False, lazy=True)
    if not digest.needs_build(cap):
        raise SystemExit(f"{path.name} has an index beside it: the build would not be measured")
    digest.prepare(cap)


def measure(src: Path, reps: int) -> list[str]:
    size = src.stat().st_size
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        bare = Path(tmp) / src.name
        shutil.copy(src, bare)
        parse = timed(lambda: parse_whole(bare))
        build = timed(lambda: first_load(bare))
        cells = [f"{src.name} ({size / 1e6:.1f} MB)", "first load without index: lazy load + build",
                 f"{build[0]:.2f} / {build[1]:.2f}", f"orjson.loads of the whole file: {parse[0]:.2f} / {parse[1]:.2f}",
                 f"{build[1] / parse[1]:.2f} x"]  # fmt: skip
        rows.append("| " + " | ".join(cells) + " |")
    if size > SAVE_LIMIT:
        return rows
    cap = Capture.load(src)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "again.json"
        best: dict[bool, tuple[float, float]] = {}
        for _ in range(reps):
            for index in (False, True):
                for f in Path(tmp).iterdir():
                    f.unlink()
                t = timed(lambda index=index: cap.save(out, index=index))
                best[index] = min(best.get(index, t), t)
        if cap.notices:
            print(f"notices: {cap.notices}", file=sys.stderr)
    w, c = best[True], best[False]
    vectors_mb = sum(a.nbytes for a in cap.arrays.values()) / 1e6
    cells = [f"{src.name} ({size / 1e6:.1f} MB, vectors {vectors_mb:.0f} MB)", "save with the index",
             f"{w[0]:.2f} / {w[1]:.2f}", f"save without (the write alone): {c[0]:.2f} / {c[1]:.2f}",
             f"{w[1] / c[1]:.2f} x"]  # fmt: skip
    rows.append("| " + " | ".join(cells) + " |")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--work", type=Path, default=WORK, help=f"where the captures are (default {WORK})")
    p.add_argument("--captures", nargs="+", default=["gemma_bench_700.json", "long_bench_4000.json"])
    p.add_argument("--reps", type=int, default=3, help="saves of each kind; the best is kept")
    p.add_argument("--report", type=Path, default=None, help="write the table into this markdown report")
    args = p.parse_args(argv)
    rows = []
    for name in args.captures:
        src = args.work / name
        if not src.is_file():
            print(f"skipped {name}: not in {args.work} (benchmarks/bench_backend.py --scale makes it)", file=sys.stderr)
            continue
        mine = measure(src, args.reps)
        print("\n".join(mine))
        rows += mine
    when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"`python benchmarks/bench_index.py`, {when}, {os.cpu_count()} cores (load average "
        f"{os.getloadavg()[0]:.1f} at the end: timings are noisy, CPU seconds less so). The index of a capture "
        "saved by this project's tools is written at save time from the capture in memory; a capture saved "
        "elsewhere builds it on its first load (or in `spectra-vis index`), reading its steps in runs.",
        "",
        "| capture | what | seconds (wall / CPU) | baseline in the same run (wall / CPU) | CPU ratio |",
        "|---|---|---|---|---|",
        *rows,
    ]
    if args.report is not None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_backend import write_section

        write_section(args.report, "Building the index of a capture", lines)
        print(f"wrote {args.report}")
    else:
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
