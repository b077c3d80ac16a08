#!/usr/bin/env python3
"""Build and install a llama-cpp-python that runs on this machine's CPU (setup stage, stdlib only).

Why: ``pip install llama-cpp-python`` compiles llama.cpp with ``GGML_NATIVE``, which on an Intel
CPU with AMX (Sapphire Rapids and later) builds ggml's AMX kernels; the first decode of a
quantized model then dies with SIGSEGV in ``ggml_backend_amx_mul_mat`` (llama.cpp issue 20824).
And pip's wheel cache keys a wheel it built by the source archive, not by ``CMAKE_ARGS``, so a
crashing wheel in ``~/.cache/pip`` comes back whatever flags are set later.

So this script picks the flags from the CPU's features (``choose_build``), builds the wheel
with pip's cache off into its own cache (``~/.cache/spectra-vis/wheels/<key>/``, keyed by the
llama-cpp-python version, the flags, the CPU features and the Python/platform tag), installs
it into the running interpreter's environment, and records what it installed next to it
(``<prefix>/spectra-llama-build.json``, read by ``spectra-vis doctor``).

    python scripts/llama_build.py install [--portable]   # choose, build or reuse, install
    python scripts/llama_build.py verify -- PROBE CMD     # run the probe; rebuild portable if it crashes
    python scripts/llama_build.py plan                    # print the choice, change nothing

It runs before Spectra Vis and its dependencies are installed, so it imports only the standard
library. ``CMAKE_ARGS`` from the environment (CUDA, Metal, ...) is used as given.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

VERSION = os.environ.get("SPECTRA_LLAMA_CPP_PYTHON", "0.3.36")  # the version the project is verified with
AMX = ("amx_tile", "amx_int8", "amx_bf16")
NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
STAMP = "spectra-llama-build.json"
CRASHED = "CRASHED"  # marker in a wheel's cache folder: the probe died with this build
EXIT_PROBE_CRASHED = 3  # what ``python -m spectra_vis.capturing.probe`` exits with when its child died by a signal
# Which CPU feature (as /proc/cpuinfo spells it) each portable GGML option needs.
PORTABLE_OPTIONS = (
    ("GGML_SSE42", "sse4_2"),
    ("GGML_AVX", "avx"),
    ("GGML_AVX2", "avx2"),
    ("GGML_BMI2", "bmi2"),
    ("GGML_FMA", "fma"),
    ("GGML_F16C", "f16c"),
    ("GGML_AVX512", "avx512f"),
    ("GGML_AVX512_VBMI", "avx512vbmi"),
    ("GGML_AVX512_VNNI", "avx512_vnni"),
    ("GGML_AVX512_BF16", "avx512_bf16"),
)


@dataclass(frozen=True)
class BuildPlan:
    """One way to build llama-cpp-python: ``cmake_args`` for CMAKE_ARGS, and why it was chosen."""

    kind: str  # "native", "native-no-amx", "portable" or "user"
    cmake_args: str
    reason: str


def is_x86(machine: str) -> bool:
    return machine.lower() in ("x86_64", "amd64", "i386", "i686", "x86")


def cpu_features(system: str | None = None) -> frozenset[str]:
    """The CPU's feature flags, lower case, as /proc/cpuinfo spells them (empty when unknown)."""
    system = system or platform.system()
    try:
        if system == "Linux":
            text = Path("/proc/cpuinfo").read_text(errors="replace")
            for line in text.splitlines():
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
        elif system == "Darwin":
            done = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.features", "machdep.cpu.leaf7_features"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            # macOS spells them AVX2, AVX512F, AMX... ; bring them to the Linux spelling
            names = done.stdout.lower().replace(".", "_").split()
            return frozenset({"amx_tile" if n == "amx" else n for n in names})
    except (OSError, subprocess.SubprocessError):
        pass
    return frozenset()


def portable_args(features: frozenset[str]) -> str:
    """GGML_NATIVE off, every x86 option the CPU has on and the rest off (AVX-512 only where present).

    With no feature list (Windows), AVX, AVX2, FMA and F16C, which every x86-64 CPU of the last
    decade has, are on and AVX-512 off.
    """
    known = bool(features)
    parts = ["-DGGML_NATIVE=OFF"]
    for option, feature in PORTABLE_OPTIONS:
        on = feature in features if known else option in ("GGML_AVX", "GGML_AVX2", "GGML_FMA", "GGML_F16C")
        parts.append(f"-D{option}={'ON' if on else 'OFF'}")
    return " ".join(parts)


def choose_build(
    machine: str, system: str, features: frozenset[str], user_cmake_args: str = "", portable: bool = False
) -> BuildPlan:
    """The build for a CPU: native with every feature it has, except ggml's AMX kernels on x86."""
    if user_cmake_args.strip():
        return BuildPlan("user", user_cmake_args.strip(), "CMAKE_ARGS from your environment, used as given")
    if not is_x86(machine):
        return BuildPlan("native", "", f"native build for {machine} (ggml's AMX kernels exist only on x86)")
    if portable:
        return BuildPlan(
            "portable",
            portable_args(features),
            "portable build: GGML_NATIVE off, each x86 feature of this CPU named explicitly, no AMX",
        )
    amx = [f for f in AMX if f in features]
    if not amx:
        return BuildPlan("native", "", "native build: this CPU has no AMX, so ggml builds no AMX kernels")
    if system == "Windows":  # MSVC's native detection (FindSIMD) never turns AMX on
        return BuildPlan("native", "", "native MSVC build: ggml enables no AMX kernels with MSVC")
    flags = shlex.quote(f"-DCMAKE_C_FLAGS={NO_AMX}") + " " + shlex.quote(f"-DCMAKE_CXX_FLAGS={NO_AMX}")
    return BuildPlan(
        "native-no-amx",
        f"-DGGML_NATIVE=ON {flags}",
        f"native build without AMX: this CPU has {' '.join(amx)}, and ggml's AMX kernels crash in the first "
        "decode (llama.cpp issue 20824)",
    )


def cache_root() -> Path:
    """The same cache folder as the native capture callback's ($SPECTRA_VIS_CACHE, else ~/.cache/spectra-vis)."""
    override = os.environ.get("SPECTRA_VIS_CACHE")
    if override:
        return Path(override)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "spectra-vis"


def cache_key(version: str, plan: BuildPlan, features: frozenset[str], python_tag: str, platform_tag: str) -> str:
    """A wheel's key: any change of version, flags, CPU features or interpreter gives another wheel."""
    blob = json.dumps(
        {"v": version, "cmake": plan.cmake_args, "cpu": sorted(features), "py": python_tag, "plat": platform_tag},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Target:
    """Where a plan's wheel lives, for the interpreter running this script."""

    plan: BuildPlan
    version: str
    key: str
    folder: Path

    @classmethod
    def of(cls, plan: BuildPlan, features: frozenset[str], version: str = VERSION) -> Target:
        key = cache_key(version, plan, features, sys.implementation.cache_tag or "py", sysconfig.get_platform())
        return cls(plan, version, key, cache_root() / "wheels" / key)

    def wheel(self) -> Path | None:
        found = sorted(self.folder.glob("llama_cpp_python-*.whl"))
        return found[-1] if found else None

    @property
    def crashed(self) -> bool:
        return (self.folder / CRASHED).exists()


def build_wheel(target: Target, pip: list[str] | None = None) -> Path:
    """Build the wheel with pip's cache off, into a temporary folder renamed into the cache when done.

    Interrupted or failed, nothing reaches the cache and the environment is untouched.
    """
    pip = pip or [sys.executable, "-m", "pip"]
    target.folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.key}.", dir=target.folder.parent))
    env = dict(os.environ, CMAKE_ARGS=target.plan.cmake_args, FORCE_CMAKE="1")
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
    cmd = [*pip, "wheel", "--no-cache-dir", "--no-deps", "--no-binary", "llama-cpp-python", "--quiet"]
    cmd += ["-w", str(tmp), f"llama-cpp-python=={target.version}"]
    try:
        subprocess.run(cmd, env=env, check=True)
        if not list(tmp.glob("llama_cpp_python-*.whl")):
            raise RuntimeError(f"pip wheel made no llama_cpp_python wheel in {tmp}")
        if target.folder.exists():
            shutil.rmtree(target.folder)
        os.replace(tmp, target.folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    wheel = target.wheel()
    assert wheel is not None
    return wheel


def stamp_path(prefix: Path | None = None) -> Path:
    """The record of the installed build, in the environment it was installed into."""
    return (prefix or Path(sys.prefix)) / STAMP


def read_stamp(prefix: Path | None = None) -> dict[str, str]:
    try:
        data = json.loads(stamp_path(prefix).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def write_stamp(target: Target, wheel: Path, prefix: Path | None = None) -> None:
    data = {"key": target.key, "version": target.version, "wheel": wheel.name, **asdict(target.plan)}
    path = stamp_path(prefix)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{STAMP}.")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def installed_ok(target: Target, prefix: Path | None = None) -> bool:
    if prefix is None and importlib.util.find_spec("llama_cpp") is None:
        return False
    return read_stamp(prefix).get("key") == target.key


def install(target: Target, pip: list[str] | None = None, prefix: Path | None = None) -> str:
    """Install ``target``'s wheel into the environment at ``prefix`` (built first unless cached).

    ``pip`` is the pip command of that environment (default: this interpreter's); returns how
    the wheel was got. The environment is only touched once a complete wheel is in the cache.
    """
    pip = pip or [sys.executable, "-m", "pip"]
    if installed_ok(target, prefix):
        return "already installed"
    wheel = target.wheel()
    how = f"cached wheel {target.key}"
    if wheel is None:
        print(
            f"Building llama-cpp-python {target.version} from source (about 5 minutes; pip's wheel cache bypassed)...",
            flush=True,
        )
        wheel = build_wheel(target, pip)
        how = f"built now, cached as {target.key}"
    subprocess.run([*pip, "install", "--quiet", "--no-deps", "--force-reinstall", str(wheel)], check=True)
    write_stamp(target, wheel, prefix)
    return how


def mark_crashed(target: Target, crash: str) -> None:
    """Remember that ``target`` crashed here, so the next setup goes straight to the portable build."""
    target.folder.mkdir(parents=True, exist_ok=True)
    (target.folder / CRASHED).write_text(crash)


def current_target(portable: bool = False) -> Target:
    """The plan for this machine; the portable one when the native plan already crashed here."""
    features = cpu_features()
    machine, system = platform.machine(), platform.system()
    user = os.environ.get("CMAKE_ARGS", "")
    target = Target.of(choose_build(machine, system, features, user, portable), features)
    if target.crashed and target.plan.kind in ("native", "native-no-amx"):
        target = Target.of(choose_build(machine, system, features, user, portable=True), features)
    return target


def describe(target: Target, how: str) -> str:
    flags = target.plan.cmake_args or "default flags"
    return f"llama.cpp build: {target.plan.reason} [{flags}] ({how})"


def reproduce(target: Target) -> str:
    return (
        f"CMAKE_ARGS={shlex.quote(target.plan.cmake_args)} pip install --no-cache-dir --force-reinstall "
        f"--no-binary llama-cpp-python llama-cpp-python=={target.version}"
    )


def _load_died_by_signal() -> Any:
    """``spectra_vis/_proc.py``'s rule, loaded by path: the package is not installed yet."""
    path = Path(__file__).resolve().parent.parent / "spectra_vis" / "capturing" / "_proc.py"
    spec = importlib.util.spec_from_file_location("spectra_vis_proc", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.died_by_signal


died_by_signal = _load_died_by_signal()


def probe_crash(cmd: list[str]) -> tuple[str | None, str]:
    """Run the probe command: (the crash's signal or None, the last line it printed)."""
    done = subprocess.run(cmd, capture_output=True, text=True)
    text = (done.stdout + done.stderr).strip().splitlines()
    last = text[-1].removeprefix("error: ") if text else ""
    crash = died_by_signal(done.returncode)
    if crash is None and done.returncode == EXIT_PROBE_CRASHED:
        crash = last.split("died with ", 1)[-1].split()[0] if "died with " in last else "a signal"
    if crash is None and done.returncode != 0:
        raise RuntimeError(last or f"the probe exited with {done.returncode}")
    return crash, last


def verify(probe: list[str], pip: list[str] | None = None, prefix: Path | None = None) -> int:
    """Probe the installed build; on a crash mark it, install the portable build and probe again."""
    target = current_target()
    try:
        crash, line = probe_crash(probe)
    except RuntimeError as exc:
        print(f"error: the llama.cpp probe could not run: {exc} (reproduce: {shlex.join(probe)})", file=sys.stderr)
        return 1
    if crash is None:
        print(f"llama.cpp probe: {line}")
        return 0
    mark_crashed(target, crash)
    if target.plan.kind in ("portable", "user"):
        print(
            f"error: llama-cpp-python built with {target.plan.kind} flags crashes on this CPU ({crash} in a test "
            f"decode); reproduce: {shlex.join(probe)}; rebuild with: {reproduce(target)}",
            file=sys.stderr,
        )
        return 1
    portable = current_target(portable=True)
    print(f"llama.cpp probe: the {target.plan.kind} build died with {crash} in a test decode; building portable")
    how = install(portable, pip, prefix)
    print(describe(portable, how))
    try:
        crash, line = probe_crash(probe)
    except RuntimeError as exc:
        print(f"error: the llama.cpp probe could not run: {exc} (reproduce: {shlex.join(probe)})", file=sys.stderr)
        return 1
    if crash is not None:
        mark_crashed(portable, crash)
        print(
            f"error: the portable llama.cpp build crashes on this CPU too ({crash}); reproduce: {shlex.join(probe)}; "
            f"it was built with: {reproduce(portable)}",
            file=sys.stderr,
        )
        return 1
    print(f"llama.cpp probe: the portable build works: {line}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llama_build.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_install = sub.add_parser("install", help="choose the build, build it or take it from the cache, install it")
    p_install.add_argument("--portable", action="store_true", help="GGML_NATIVE off, explicit CPU features")
    sub.add_parser("plan", help="print the build this machine gets")
    p_verify = sub.add_parser("verify", help="run the probe command given after --; rebuild portable on a crash")
    p_verify.add_argument("probe", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    try:
        if args.command == "plan":
            target = current_target()
            print(describe(target, f"key {target.key}, {'cached' if target.wheel() else 'not built yet'}"))
            return 0
        if args.command == "install":
            target = current_target(args.portable)
            print(describe(target, install(target)), flush=True)
            return 0
        probe = [a for a in args.probe if a != "--"]
        if not probe:
            parser.error("verify needs the probe command after --")
        return verify(probe)
    except KeyboardInterrupt:
        print(
            "\ninterrupted: nothing half-built was kept; the environment still has its previous llama-cpp-python",
            file=sys.stderr,
        )
        return 130
    except subprocess.CalledProcessError as exc:
        print(f"error: {shlex.join(map(str, exc.cmd))} failed with exit code {exc.returncode}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
