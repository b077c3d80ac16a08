"""scripts/llama_build.py: the build chosen for a CPU, its cache key, pip's cache bypassed, and the
probe-then-rebuild path, tested on any machine (a CPU with AMX is described, not needed).

pip is replaced by a small script at the one seam the builder has for it (its pip command);
the compiler check runs the real gcc with ``-march=sapphirerapids`` to stand for an AMX CPU.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("llama_build", ROOT / "scripts" / "llama_build.py")
assert _spec is not None and _spec.loader is not None
lb = importlib.util.module_from_spec(_spec)
sys.modules["llama_build"] = lb
_spec.loader.exec_module(lb)

SAPPHIRE = frozenset(
    "sse4_2 avx avx2 bmi2 fma f16c avx512f avx512vbmi avx512_vnni avx512_bf16 amx_tile amx_int8 amx_bf16".split()
)
HASWELL = frozenset("sse4_2 avx avx2 bmi2 fma f16c".split())


def test_amx_cpu_gets_native_build_without_amx() -> None:
    plan = lb.choose_build("x86_64", "Linux", SAPPHIRE)
    assert plan.kind == "native-no-amx"
    args = shlex.split(plan.cmake_args)  # how scikit-build-core splits CMAKE_ARGS
    assert "-DGGML_NATIVE=ON" in args
    for lang in ("C", "CXX"):
        flags = next(a for a in args if a.startswith(f"-DCMAKE_{lang}_FLAGS="))
        assert flags.split("=", 1)[1].split() == ["-mno-amx-tile", "-mno-amx-int8", "-mno-amx-bf16"]
    assert "amx_tile amx_int8 amx_bf16" in plan.reason and "20824" in plan.reason


@pytest.mark.parametrize(
    ("machine", "system", "features", "kind"),
    [
        ("x86_64", "Linux", HASWELL, "native"),
        ("AMD64", "Windows", SAPPHIRE, "native"),  # MSVC never enables AMX
        ("aarch64", "Linux", frozenset({"neon", "asimd"}), "native"),
        ("arm64", "Darwin", frozenset(), "native"),
    ],
)
def test_cpus_without_the_crash_keep_the_default_native_build(machine, system, features, kind) -> None:
    plan = lb.choose_build(machine, system, features)
    assert (plan.kind, plan.cmake_args) == (kind, "")


def test_portable_build_names_each_feature_the_cpu_has() -> None:
    args = dict(
        a[2:].split("=") for a in shlex.split(lb.choose_build("x86_64", "Linux", SAPPHIRE, portable=True).cmake_args)
    )
    assert args["GGML_NATIVE"] == "OFF"
    for option, feature in lb.PORTABLE_OPTIONS:
        assert args[option] == ("ON" if feature in SAPPHIRE else "OFF")
    assert not any("AMX" in k for k in args)
    haswell = dict(a[2:].split("=") for a in shlex.split(lb.portable_args(HASWELL)))
    assert haswell["GGML_AVX2"] == "ON" and haswell["GGML_AVX512"] == "OFF"
    unknown = dict(a[2:].split("=") for a in shlex.split(lb.portable_args(frozenset())))
    assert [k for k, v in unknown.items() if v == "ON"] == ["GGML_AVX", "GGML_AVX2", "GGML_FMA", "GGML_F16C"]


def test_user_cmake_args_win() -> None:
    plan = lb.choose_build("x86_64", "Linux", SAPPHIRE, user_cmake_args=" -DGGML_CUDA=on ")
    assert (plan.kind, plan.cmake_args) == ("user", "-DGGML_CUDA=on")


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_the_flags_really_turn_off_the_macro_that_guards_ggml_amx_code() -> None:
    """ggml compiles its AMX kernels under ``#if defined(__AMX_INT8__)``; -march=sapphirerapids stands for
    -march=native on such a CPU."""

    def macros(extra: list[str]) -> str:
        cmd = ["gcc", "-march=sapphirerapids", *extra, "-dM", "-E", "-x", "c", os.devnull]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"this gcc does not know sapphirerapids: {done.stderr.strip()[:80]}")
        return done.stdout

    assert "__AMX_INT8__" in macros([])
    c_flags = next(
        a
        for a in shlex.split(lb.choose_build("x86_64", "Linux", SAPPHIRE).cmake_args)
        if a.startswith("-DCMAKE_C_FLAGS=")
    )
    without = macros(c_flags.split("=", 1)[1].split())
    assert "__AMX_INT8__" not in without and "__AMX_TILE__" not in without
    assert "__AVX512F__" in without and "__AVX512VNNI__" in without  # every other feature stays


def test_cache_key_changes_with_version_flags_cpu_and_python() -> None:
    plan = lb.choose_build("x86_64", "Linux", SAPPHIRE)
    base = lb.cache_key("0.3.36", plan, SAPPHIRE, "cpython-311", "linux-x86_64")
    assert base == lb.cache_key("0.3.36", plan, SAPPHIRE, "cpython-311", "linux-x86_64")
    others = {
        lb.cache_key("0.3.37", plan, SAPPHIRE, "cpython-311", "linux-x86_64"),
        lb.cache_key(
            "0.3.36",
            lb.choose_build("x86_64", "Linux", SAPPHIRE, portable=True),
            SAPPHIRE,
            "cpython-311",
            "linux-x86_64",
        ),
        lb.cache_key("0.3.36", plan, SAPPHIRE - {"avx512_bf16"}, "cpython-311", "linux-x86_64"),
        lb.cache_key("0.3.36", plan, SAPPHIRE, "cpython-312", "linux-x86_64"),
    }
    assert base not in others and len(others) == 4


FAKE_PIP = r"""
import json, os, sys, time, pathlib, signal
log = pathlib.Path(os.environ["FAKE_PIP_LOG"])
with log.open("a") as f:
    f.write(json.dumps({"argv": sys.argv[1:], "cmake_args": os.environ.get("CMAKE_ARGS")}) + "\n")
mode = os.environ.get("FAKE_PIP_MODE", "ok")
if sys.argv[1] == "wheel":
    if mode == "fail":
        sys.exit(1)
    if mode == "interrupt":
        os.kill(os.getppid(), signal.SIGINT)
        time.sleep(30)
    out = pathlib.Path(sys.argv[sys.argv.index("-w") + 1])
    (out / "llama_cpp_python-0.3.36-cp311-cp311-linux_x86_64.whl").write_bytes(b"wheel")
"""


@pytest.fixture
def fake_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    script = tmp_path / "fake_pip.py"
    script.write_text(FAKE_PIP)
    log = tmp_path / "pip.log"
    monkeypatch.setenv("FAKE_PIP_LOG", str(log))
    monkeypatch.setenv("SPECTRA_VIS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CMAKE_ARGS", raising=False)
    prefix = tmp_path / "venv"
    prefix.mkdir()

    def calls() -> list[dict]:
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    return [sys.executable, str(script)], prefix, calls


def test_build_bypasses_pips_wheel_cache_and_second_setup_reuses_ours(fake_pip) -> None:
    pip, prefix, calls = fake_pip
    target = lb.Target.of(lb.choose_build("x86_64", "Linux", SAPPHIRE), SAPPHIRE)
    assert lb.install(target, pip, prefix).startswith("built now")
    wheel_call, install_call = calls()
    assert wheel_call["argv"][0] == "wheel" and "--no-cache-dir" in wheel_call["argv"]
    assert wheel_call["argv"][wheel_call["argv"].index("--no-binary") + 1] == "llama-cpp-python"
    assert wheel_call["cmake_args"] == target.plan.cmake_args
    assert install_call["argv"][:1] == ["install"] and "--force-reinstall" in install_call["argv"]
    assert target.wheel() is not None and target.wheel().parent == lb.cache_root() / "wheels" / target.key
    assert json.loads((prefix / lb.STAMP).read_text())["key"] == target.key
    assert lb.install(target, pip, prefix) == "already installed"
    (prefix / lb.STAMP).unlink()  # a new venv: the wheel comes from our cache, no build
    assert lb.install(target, pip, prefix) == f"cached wheel {target.key}"
    assert [c["argv"][0] for c in calls()] == ["wheel", "install", "install"]


@pytest.mark.parametrize("mode", ["fail", "interrupt"])
def test_failed_or_interrupted_build_keeps_the_previous_environment(fake_pip, monkeypatch, mode) -> None:
    pip, prefix, calls = fake_pip
    (prefix / lb.STAMP).write_text(json.dumps({"key": "previous"}))
    monkeypatch.setenv("FAKE_PIP_MODE", mode)
    target = lb.Target.of(lb.choose_build("x86_64", "Linux", SAPPHIRE), SAPPHIRE)
    expected = KeyboardInterrupt if mode == "interrupt" else subprocess.CalledProcessError
    with pytest.raises(expected):
        lb.install(target, pip, prefix)
    assert [c["argv"][0] for c in calls()] == ["wheel"]  # never reached install
    assert not target.folder.exists()
    assert list((lb.cache_root() / "wheels").iterdir()) == []  # no half-built temporary left
    assert json.loads((prefix / lb.STAMP).read_text()) == {"key": "previous"}


def test_signal_names_from_a_child_that_kills_itself() -> None:
    done = subprocess.run([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"])
    assert lb.died_by_signal(done.returncode) == "SIGSEGV"
    assert lb.died_by_signal(0) is None and lb.died_by_signal(1) is None
    assert lb.died_by_signal(0xC0000005) == "exception 0xC0000005"


PROBE = r"""
import os, pathlib, signal, sys
state = pathlib.Path(sys.argv[1])
runs = int(state.read_text()) if state.exists() else 0
state.write_text(str(runs + 1))
if runs < int(sys.argv[2]):
    os.kill(os.getpid(), signal.SIGSEGV)
print("a real decode passed")
"""


def test_verify_rebuilds_portable_when_the_probe_dies(fake_pip, tmp_path, capsys) -> None:
    pip, prefix, calls = fake_pip
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    assert lb.verify([sys.executable, str(probe), str(tmp_path / "runs"), "1"], pip, prefix) == 0
    out = capsys.readouterr().out
    assert "died with SIGSEGV" in out and "the portable build works" in out
    native = lb.current_target()
    assert native.plan.kind in ("native", "native-no-amx", "portable")
    portable = lb.Target.of(
        lb.choose_build(lb.platform.machine(), lb.platform.system(), lb.cpu_features(), portable=True),
        lb.cpu_features(),
    )
    assert json.loads((prefix / lb.STAMP).read_text())["key"] == portable.key
    assert [c["cmake_args"] for c in calls() if c["argv"][0] == "wheel"] == [portable.plan.cmake_args]
    assert lb.current_target().key == portable.key  # the next setup goes straight to the portable build


def test_verify_fails_with_the_reason_and_a_reproducing_command_when_portable_crashes_too(
    fake_pip, tmp_path, capsys
) -> None:
    pip, prefix, _ = fake_pip
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    cmd = [sys.executable, str(probe), str(tmp_path / "runs"), "9"]
    assert lb.verify(cmd, pip, prefix) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "crashes on this CPU too (SIGSEGV)" in err[0] and str(probe) in err[0] and "CMAKE_ARGS=" in err[0]


def test_verify_reports_a_probe_that_cannot_run(fake_pip, capsys) -> None:
    pip, prefix, _ = fake_pip
    cmd = [sys.executable, "-c", "import sys; sys.exit('no space left on device')"]
    assert lb.verify(cmd, pip, prefix) == 1
    err = capsys.readouterr().err.strip()
    assert "could not run" in err and "no space left on device" in err and len(err.splitlines()) == 1


def test_cli_plan_prints_one_line_with_the_reason(tmp_path) -> None:
    env = dict(os.environ, SPECTRA_VIS_CACHE=str(tmp_path))
    env.pop("CMAKE_ARGS", None)
    plan = [sys.executable, str(ROOT / "scripts" / "llama_build.py"), "plan"]
    done = subprocess.run(plan, capture_output=True, text=True, env=env, check=True)
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llama.cpp build: ") and "not built yet" in lines[0]
    env["CMAKE_ARGS"] = "-DGGML_VULKAN=ON"
    done = subprocess.run(plan, capture_output=True, text=True, env=env, check=True)
    assert "CMAKE_ARGS from your environment" in done.stdout and "-DGGML_VULKAN=ON" in done.stdout
