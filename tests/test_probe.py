"""spectra_vis.capturing.probe: a real decode in a child process before the first model load, cached per
llama.cpp build, and the one-line error instead of a native crash.

The crash itself cannot be made on a CPU without AMX, so a child that kills itself with SIGSEGV
stands for it; the real probe's decode runs too (it must pass here), and a crash record for the
installed libraries' hash checks what capture(), Session and Llama do with one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from spectra_vis.capturing import probe
from spectra_vis.errors import LlamaBuildError, ProbeUnavailable

SELF_KILL = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"]


@pytest.fixture
def probe_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache folder of its own (the native callback's cache too), and a fresh per-process memo."""
    from spectra_vis.capturing import _native

    real = _native.cache_dir()
    cache = tmp_path / "cache"
    cache.mkdir()
    for built in real.glob("spectra_native-*"):  # keep the compiled callback: no rebuild per test
        (cache / built.name).symlink_to(built)
    monkeypatch.setenv("SPECTRA_VIS_CACHE", str(cache))
    monkeypatch.delenv(probe.ENV, raising=False)
    probe._checked.cache_clear()
    yield cache
    probe._checked.cache_clear()


def test_a_child_killed_by_a_signal_is_reported_as_a_crash() -> None:
    result = probe.run_probe(SELF_KILL)
    assert (result.ok, result.crash) == (False, "SIGSEGV")
    message = result.message()
    assert "\n" not in message
    assert "crashes on this CPU" in message and "SIGSEGV" in message and "scripts/setup.sh" in message
    assert "CMAKE_ARGS=" in message and f"{probe.ENV}=0" in message


def test_a_child_that_cannot_start_is_not_a_crash() -> None:
    cmd = [sys.executable, "-c", "import sys; sys.exit('OSError: [Errno 28] No space left on device')"]
    with pytest.raises(ProbeUnavailable) as err:
        probe.run_probe(cmd)
    assert "No space left on device" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ProbeUnavailable, match="could not start"):
        probe.run_probe(["/nonexistent/python"])


def test_the_real_probe_decodes_and_is_cached_by_library_hash(probe_cache: Path) -> None:
    result = probe.probe_build(fresh=True)
    assert result.ok, result
    assert "decoded" in result.detail and result.library == probe.library_hash()
    assert result.seconds < 60  # generous: the budget (about 2 s) is measured in the benchmark, not here
    saved = json.loads((probe_cache / "probe" / f"{result.library}.json").read_text())
    assert saved["ok"] is True
    assert (probe_cache / "probe").glob("probe-model-*.gguf")
    # the second call reads the cache: a crashing child command would be run otherwise
    again = probe.probe_build(cmd=SELF_KILL)
    assert again.ok and again.seconds == result.seconds


def test_the_probe_model_is_quantized_with_shapes_ggml_gives_to_its_amx_kernels(probe_cache: Path) -> None:
    import gguf

    path = probe.probe_model()
    reader = gguf.GGUFReader(str(path))
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.attn_q.weight"] in ("Q4_K", "Q5_K", "Q6_K")  # types with AMX kernels
    shape = next(t for t in reader.tensors if t.name == "blk.0.ffn_up.weight").shape
    assert shape[0] % 256 == 0 and shape[1] % 32 == 0  # AMX: K % 256 (K-quants), N % 32


def _record_crash(cache: Path) -> None:
    lib_hash = probe.library_hash()
    crash = probe.ProbeResult(False, "SIGSEGV", "killed by a signal", 0.5, lib_hash, "0.3.36")
    folder = cache / "probe"
    folder.mkdir(exist_ok=True)
    (folder / f"{lib_hash}.json").write_text(json.dumps(crash.__dict__))


def test_capture_session_and_llama_refuse_a_build_that_crashes(probe_cache: Path, tiny_llama: Path) -> None:
    from spectra_vis import Llama, Session, capture

    _record_crash(probe_cache)
    for attempt in (
        lambda: Llama(model_path=str(tiny_llama), verbose=False),
        lambda: Session(tiny_llama, preset="observe"),
        lambda: capture(tiny_llama, "hello", preset="observe", max_tokens=2),
    ):
        with pytest.raises(LlamaBuildError) as err:
            attempt()
        text = str(err.value)
        assert "\n" not in text and "crashes on this CPU" in text and "SIGSEGV" in text


def test_probe_off_skips_the_check(probe_cache: Path, tiny_llama: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from spectra_vis import Llama

    _record_crash(probe_cache)
    monkeypatch.setenv(probe.ENV, "0")
    llm = Llama(model_path=str(tiny_llama), n_ctx=64, verbose=False)
    assert llm.n_ctx() >= 64 and llm.tokenize(b"hello")


def test_module_cli_exit_codes(probe_cache: Path) -> None:
    env_run = {"env": {**__import__("os").environ}, "capture_output": True, "text": True}
    ok = subprocess.run([sys.executable, "-m", "spectra_vis.capturing.probe"], **env_run)
    assert ok.returncode == 0 and "a real decode passed" in ok.stdout
    _record_crash(probe_cache)
    crashed = subprocess.run([sys.executable, "-m", "spectra_vis.capturing.probe"], **env_run)
    assert crashed.returncode == probe.EXIT_CRASHED
    assert "died with SIGSEGV" in crashed.stderr and len(crashed.stderr.strip().splitlines()) == 1
