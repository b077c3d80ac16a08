#!/usr/bin/env bash
# Set up the Python environment in .venv: the package (editable) with the extras asked for.
# Usage: scripts/setup.sh [extras]   (default: cli,server,demo)
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
  echo "Setting up .venv (extras: $extras); llama-cpp-python builds from source the first time (about 5 minutes)..."
  export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[$extras]"
  echo "$want" > "$stamp"
fi
# Build the native capture callback now rather than at the first capture (cached in ~/.cache/spectra-vis;
# without a C compiler captures still work, with the slower Python callback).
.venv/bin/python -m spectra_vis._native >/dev/null || echo "note: the native capture callback could not be built; captures will use the Python callback"
