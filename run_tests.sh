#!/usr/bin/env bash
# Set up everything and run every test: lint and types, the Python suite (real llama-cpp-python,
# tiny GGUF models, the real Gemma 3 270M end to end, the API over HTTP), then the frontend's
# unit and browser tests when the frontend exists.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh cli,server,demo,test
. .venv/bin/activate
echo "== ruff"; ruff check . && ruff format --check .
echo "== mypy"; mypy spectra_vis backend scripts/llama_build.py
echo "== import layers"; lint-imports --no-cache
echo "== pytest"
set +e
python -m pytest -q "$@"
status=$?
set -e
if [ $status -ne 0 ]; then exit $status; fi
if [ -f frontend/package.json ] && [ -x scripts/test_frontend.sh ]; then
  echo "== frontend"; scripts/test_frontend.sh
fi
