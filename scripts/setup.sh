#!/usr/bin/env bash
# Set up the Python environment in .venv: llama-cpp-python built for this CPU, then the package
# (editable) with the extras asked for, then a probe that runs a real decode.
# Usage: scripts/setup.sh [extras]   (default: cli,server,demo)
#
# llama-cpp-python comes from scripts/llama_build.py: flags chosen from this CPU's features (no
# ggml AMX kernels on x86: they crash, llama.cpp issue 20824), built with pip's wheel cache off
# into ~/.cache/spectra-vis/wheels/<key>, reused from there by the next setup. Your own CMAKE_ARGS
# (CUDA, Metal, ...) are used as given. If the probe's decode dies by a signal, the portable build
# (GGML_NATIVE off, explicit AVX/AVX2/FMA/F16C/AVX-512) replaces it and is probed again.
# Re-runs pip only when pyproject.toml or the extras change, so a second start is fast.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-cli,server,demo}"
py="${PYTHON:-python3}"
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "error: Python 3.10 or newer is needed (found: $("$py" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 2
fi
[ -x .venv/bin/python ] || "$py" -m venv .venv
stamp=".venv/.spectra-setup"
want="$(cat pyproject.toml | sha256sum | cut -c1-16) $extras"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
.venv/bin/python scripts/llama_build.py install
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "Setting up .venv (extras: $extras)..."
  .venv/bin/python -m pip install --quiet -e ".[$extras]"
  echo "$want" > "$stamp"
fi
.venv/bin/python scripts/llama_build.py verify -- .venv/bin/python -m spectra_vis.capturing.probe
# Build the native capture callback now rather than at the first capture (cached in ~/.cache/spectra-vis;
# without a C compiler captures still work, with the slower Python callback).
.venv/bin/python -m spectra_vis.capturing._native >/dev/null || echo "note: the native capture callback could not be built; captures will use the Python callback"
