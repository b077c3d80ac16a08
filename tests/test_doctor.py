"""``spectra-vis doctor``: one screen, every item the troubleshooting section names, exit 0 only when
captures can run (a real probe here; a recorded crash of the installed build makes it 1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from spectra_vis.capturing import probe

ITEMS = (
    "Python",
    "llama-cpp-python",
    "llama.cpp",
    "system info",
    "build",
    "probe",
    "native callback",
    "demo model",
    "frontend",
    "C compiler",
    "Node",
    "chromium",
)


def _doctor(cache: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "SPECTRA_VIS_PROBE"}
    full.update(SPECTRA_VIS_CACHE=str(cache), **env)
    return subprocess.run(
        [sys.executable, "-m", "spectra_vis.cli", "doctor"], capture_output=True, text=True, env=full, timeout=300
    )


def test_doctor_reports_everything_on_one_screen_and_exits_0(tmp_path: Path) -> None:
    done = _doctor(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) <= 24
    named = {line[5:].split("  ")[0].strip() for line in lines[1:-1]}
    assert set(ITEMS) <= named
    probe_line = next(line for line in lines if line[5:].startswith("probe"))
    assert probe_line.startswith("ok") and "a real decode passed" in probe_line
    assert "SSE3" in next(line for line in lines if "system info" in line)  # llama.cpp's own report
    assert lines[-1] == "captures can run here"


def test_doctor_exits_1_when_the_build_crashes(tmp_path: Path) -> None:
    lib_hash = probe.library_hash()
    (tmp_path / "probe").mkdir()
    crash = probe.ProbeResult(False, "SIGSEGV", "killed by a signal", 0.4, lib_hash, "0.3.36")
    (tmp_path / "probe" / f"{lib_hash}.json").write_text(json.dumps(crash.__dict__))
    done = _doctor(tmp_path)
    assert done.returncode == 1
    probe_line = next(line for line in done.stdout.splitlines() if line[5:].startswith("probe"))
    assert probe_line.startswith("FAIL") and "SIGSEGV" in probe_line
    assert "cannot run" in done.stdout.strip().splitlines()[-1]
    skipped = _doctor(tmp_path, SPECTRA_VIS_PROBE="0")
    assert skipped.returncode == 0 and "skipped (SPECTRA_VIS_PROBE=0)" in skipped.stdout
