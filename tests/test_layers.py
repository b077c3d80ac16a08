"""The pipeline's import contract (pyproject's [tool.importlinter]): it holds, and it catches a
back-import even when it hides inside a function, in a copy of the package."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LINT = str(Path(sys.executable).with_name("lint-imports"))


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [LINT, "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def copy_project(tmp_path: Path) -> Path:
    for name in ("spectra_vis", "backend"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_stages_import_only_upstream(tmp_path: Path) -> None:
    result = lint(copy_project(tmp_path))
    assert result.returncode == 0, result.stdout
    assert "Contracts: 3 kept, 0 broken." in result.stdout


def lint_with(tmp_path: Path, module: str, line: str) -> subprocess.CompletedProcess[str]:
    """lint-imports on a copy of the project whose ``module`` (a path) gains ``line`` inside a function."""
    root = copy_project(tmp_path)
    with (root / module).open("a") as f:
        f.write(f"\n\ndef _late() -> None:\n    {line}  # noqa: F401\n")
    return lint(root)


def test_a_function_level_back_import_breaks_the_contract(tmp_path: Path) -> None:
    result = lint_with(tmp_path, "spectra_vis/record/stats.py", "from spectra_vis.store.capture_file import Capture")
    assert result.returncode == 1
    assert "spectra_vis.record is not allowed to import spectra_vis.store" in result.stdout


def test_the_library_importing_the_server_breaks_the_contract(tmp_path: Path) -> None:
    result = lint_with(tmp_path, "spectra_vis/analysis/grid.py", "import fastapi")
    assert result.returncode == 1 and "The library never imports the server or a web package BROKEN" in result.stdout
