"""Does this llama.cpp build run on this CPU? A real decode in a child process, once per build.

Some builds die with a native crash on some CPUs (llama-cpp-python compiled with ggml's AMX
kernels segfaults in the first decode on Intel Sapphire Rapids and later, llama.cpp issue
20824). A crash inside the user's process gives them "Segmentation fault" and nothing else, so
before the first model load with a given llama.cpp shared library, ``check_build()`` runs the
decode in a child process and keeps the result in the cache folder, keyed by the hash of the
library files. When the child died by a signal, it raises ``LlamaBuildError`` with the cause and
the fix instead. ``SPECTRA_VIS_PROBE=0`` skips it.

The child writes (once, cached) a tiny random-weight llama with 256-wide matrices, quantizes it
to Q4_K_M with llama.cpp's own quantizer (the shapes and types for which ggml picks its AMX
kernels), loads it with stock ``llama_cpp.Llama`` on every core and decodes a few tokens.

Stage: capture (before a model loads). Depends on llama-cpp-python and the tiny-model writer only.

    python -m spectra_vis.capturing.probe          # probe (or the cached result); exit 0 ok, 3 crashed, 4 could not run
    python -m spectra_vis.capturing.probe --fresh  # ignore the cached result
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from spectra_vis.capturing._ggml import llama_cpp_version, llama_lib_dir
from spectra_vis.capturing._native import cache_dir
from spectra_vis.capturing._proc import died_by_signal
from spectra_vis.errors import LlamaBuildError, ProbeUnavailable

ENV = "SPECTRA_VIS_PROBE"
MODEL_VERSION = 1  # bump when the probe model changes
TIMEOUT_S = 120.0
EXIT_CRASHED, EXIT_UNAVAILABLE = 3, 4
FIX = (
    "run scripts/setup.sh (it rebuilds llama-cpp-python for this CPU), or reinstall it with "
    'CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" '
    "pip install --no-cache-dir --force-reinstall llama-cpp-python"
)


@dataclass(frozen=True)
class ProbeResult:
    """What the child did: ``crash`` names the signal it died of (None when it decoded)."""

    ok: bool
    crash: str | None
    detail: str
    seconds: float
    library: str = ""
    llama_cpp_python: str = ""

    def message(self) -> str:
        if self.ok:
            return f"a real decode passed in {self.seconds:.1f} s ({self.detail})"
        return (
            f"this llama.cpp build crashes on this CPU: a test decode in a child process died with {self.crash} "
            f"(llama-cpp-python {self.llama_cpp_python}); fix: {FIX}; or set {ENV}=0 to skip this check"
        )


def library_files() -> list[Path]:
    """The llama.cpp shared libraries llama-cpp-python loads (libllama, libggml*)."""
    d = llama_lib_dir()
    return sorted(p for p in d.glob("*") if p.is_file() and ("llama" in p.name or "ggml" in p.name))


def library_hash() -> str:
    digest = hashlib.sha256()
    for path in library_files():
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def child_command() -> list[str]:
    return [sys.executable, "-m", "spectra_vis.capturing.probe", "--child"]


def run_probe(cmd: Sequence[str] | None = None, timeout: float = TIMEOUT_S) -> ProbeResult:
    """Run the probe child ``cmd`` (default: the real decode) and report how it ended.

    A child killed by a signal gives ``ok=False`` with the signal's name; a child that exits
    with an error (no space for the model, llama-cpp-python missing) raises ProbeUnavailable.
    """
    cmd = list(cmd or child_command())
    t0 = time.perf_counter()
    env = dict(os.environ, **{ENV: "0"})
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise ProbeUnavailable(
            f"the llama.cpp probe did not finish in {timeout:.0f} s (command: {' '.join(cmd)}); set {ENV}=0 to skip it"
        ) from None
    except OSError as exc:
        raise ProbeUnavailable(f"the llama.cpp probe could not start: {exc}; set {ENV}=0 to skip it") from None
    seconds = time.perf_counter() - t0
    crash = died_by_signal(done.returncode)
    version = llama_cpp_version()
    if crash is not None:
        return ProbeResult(False, crash, "killed by a signal", seconds, llama_cpp_python=version)
    lines = (done.stdout.strip() or done.stderr.strip()).splitlines()
    if done.returncode != 0:
        reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit code {done.returncode}"
        raise ProbeUnavailable(f"the llama.cpp probe could not run: {reason}; set {ENV}=0 to skip it")
    return ProbeResult(True, None, lines[-1] if lines else "", seconds, llama_cpp_python=version)


def _cache_file(lib_hash: str) -> Path:
    return cache_dir() / "probe" / f"{lib_hash}.json"


def cached_result(lib_hash: str) -> ProbeResult | None:
    try:
        return ProbeResult(**json.loads(_cache_file(lib_hash).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _save(result: ProbeResult) -> None:
    path = _cache_file(result.library)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(result), f)
        os.replace(tmp, path)
    except OSError:
        pass  # not cached: the next process probes again


def probe_build(fresh: bool = False, cmd: Sequence[str] | None = None) -> ProbeResult:
    """The probe's result for the installed llama.cpp libraries: cached by their hash, else run now."""
    lib_hash = library_hash()
    result = None if fresh else cached_result(lib_hash)
    if result is None:
        result = run_probe(cmd)
        result = ProbeResult(**{**asdict(result), "library": lib_hash})
        _save(result)
    return result


@functools.cache
def _checked(files: tuple[tuple[str, int, int], ...]) -> None:
    """Once per process and set of library files (name, size, mtime): hashing them is not free."""
    result = probe_build()
    if not result.ok:
        raise LlamaBuildError(result.message())


def enabled() -> bool:
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def check_build() -> None:
    """Before a model loads: raise LlamaBuildError if this llama.cpp build crashes on this CPU."""
    if enabled():
        _checked(tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in library_files()))


# ---- the child ----------------------------------------------------------------------------------


def probe_model() -> Path:
    """The tiny Q4_K_M model the child decodes (written and quantized once, then cached)."""
    path = cache_dir() / "probe" / f"probe-model-v{MODEL_VERSION}-q4_k_m.gguf"
    if path.exists():
        return path
    import ctypes

    import llama_cpp

    from spectra_vis.testing.tiny_gguf import write_tiny_model

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        f32 = write_tiny_model(
            Path(tmp) / "probe-f32.gguf", "llama", n_layer=2, n_embd=256, n_head=4, n_head_kv=4, n_ff=512
        )
        out = Path(tmp) / "probe-q4_k_m.gguf"
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
        params.nthread = 1
        if llama_cpp.llama_model_quantize(str(f32).encode(), str(out).encode(), ctypes.byref(params)) != 0:
            raise RuntimeError("llama.cpp's quantizer failed on the probe model")
        os.replace(out, path)
    return path


def child() -> int:
    import llama_cpp

    model = probe_model()
    llm = llama_cpp.Llama(str(model), n_ctx=128, n_batch=32, n_threads=os.cpu_count() or 1, verbose=False)
    out = llm.create_completion(
        "the capital of france is paris and the capital of spain is", max_tokens=4, temperature=0.0
    )
    usage = out["usage"]  # type: ignore[index]
    print(
        f"tiny Q4_K_M llama, {usage['prompt_tokens']} prompt tokens and {usage['completion_tokens']} decoded "
        f"on {llm.n_threads} threads"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--child" in args:
        return child()
    try:
        result = probe_build(fresh="--fresh" in args)
    except ProbeUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    if not result.ok:
        print(f"error: {result.message()}", file=sys.stderr)
        return EXIT_CRASHED
    print(result.message())
    return 0


if __name__ == "__main__":
    sys.exit(main())
