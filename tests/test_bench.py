"""The overhead benchmark's short form runs end to end on a tiny model (issue 7). No timing
assertions: only that every mode ran, produced finite numbers and a consistent report."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

from spectra_vis import bench

ROOT = Path(__file__).resolve().parents[1]


def test_quick_benchmark_measures_every_mode(tiny_llama: Path, tmp_path: Path, capsys) -> None:
    report = tmp_path / "perf.md"
    code = bench.main(["--model", str(tiny_llama), "--quick", "--memory-tokens", "24", "--out", str(report)])
    assert code == 0
    printed = capsys.readouterr().out
    text = report.read_text()
    for mode in bench.all_modes():
        assert f"| {mode.name} |" in printed and f"| {mode.name} |" in text, mode.name
    rows = [line.split("|")[1:-1] for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    by_mode = {r[0].strip(): r for r in rows if r[0].strip() in {m.name for m in bench.all_modes()}}
    assert by_mode["plain"][4].strip() == "1.000"
    for name, cells in by_mode.items():
        ratio = float(cells[4])
        assert math.isfinite(ratio) and ratio > 0, name
    # capture modes report their capture size per token, the baseline does not
    assert by_mode["plain"][6].strip() == "-"
    sizes = {m: float(by_mode[m][6].replace(",", "")) for m in ("observe", "standard", "full")}
    assert sizes["observe"] < sizes["standard"] < sizes["full"]
    # vectors: standard keeps them (bytes per evaluated token), the same preset without them keeps none
    assert float(by_mode["standard"][7].replace(",", "")) > 0 and by_mode["standard-novec"][7].strip() == "-"
    assert "Vectors: standard / standard-novec decode time per token" in text and "## Logit lens" in text
    assert "standard capture of 24 generated tokens" in text


def test_script_rejects_a_missing_model(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/bench_overhead.py"), "--quick", "--model", str(tmp_path / "x.gguf")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert "model not found" in run.stdout + run.stderr


def test_standard_capture_grows_linearly_not_with_the_context(tiny_llama: Path) -> None:
    """Issue 7 memory bound: a decode step's share of the capture does not grow with the context
    (top-k attention, not rows of n_kv), so 1,000 tokens cost 1,000 times a constant."""
    m = bench.memory_run(str(tiny_llama), 300, 16, 2)
    assert m["tokens"] == 300 and m["callback"] in ("native", "python")
    assert m["step_bytes_last100"] <= 1.15 * m["step_bytes_first100"]  # digits of larger positions only
    assert m["file_bytes"] <= m["prefill_step_bytes"] * 4 + 300 * m["step_bytes_last100"] * 1.5


def test_lens_only_rewrites_the_lens_section_alone(tiny_llama: Path, tmp_path: Path, capsys) -> None:
    """``--lens-only`` runs the lens alone and replaces only the report's logit-lens section: every
    other line stays, the new section holds wall and CPU times and the baseline of the same run."""
    report = tmp_path / "perf.md"
    before = ["# Performance", "", "## Table", "", "| a | b |", "", "## Logit lens: old", "", "old numbers", ""]
    before += ["## Memory: kept", "", "- kept line", "", bench.KEPT_MARK, "", "## Other benchmark", "", "kept too"]
    report.write_text("\n".join(before) + "\n")
    assert bench.main(["--model", str(tiny_llama), "--lens-only", "--lens-tokens", "6", "--out", str(report)]) == 0
    assert "| plain |" not in capsys.readouterr().out  # no overhead run
    lines = report.read_text().splitlines()
    start = lines.index(next(line for line in lines if line.startswith("## Logit lens")))
    end = lines.index("## Memory: kept")
    assert lines[:start] == before[:6] and lines[end:] == before[10:]
    section = "\n".join(lines[start:end])
    assert "old numbers" not in section and "x 6 tokens" in section
    assert "wall" in section and "CPU" in section and "Baseline, alternating with it in the same run" in section
    lens = bench.lens_run(str(tiny_llama), 6, 2, reps=2)
    # every layer's 6 rows, but the last layer's: llama.cpp computes only the output row there
    assert (lens["layers"] - 1) * 6 < lens["cells"] <= lens["layers"] * 6
    assert lens["cpu_seconds"] > 0 and lens["matmul_cpu_seconds"] > 0 and lens["reps"] == 2
    assert lens["cpu_ratio"] > 0 and lens["wall_ratio"] > 0
