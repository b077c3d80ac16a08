#!/usr/bin/env bash
# Set up everything and open the viewer: creates .venv, installs Spectra Vis, builds the
# frontend when needed, captures a demo with Gemma 3 270M when data/ has no capture yet,
# then serves http://127.0.0.1:8000. A second run starts in seconds.
#   ./start_server.sh            serve on 127.0.0.1:8000 (HOST/PORT to change; DATA_DIR for captures)
#   ./start_server.sh --dev      also run Vite on :3000 with /api proxied (frontend development)
set -euo pipefail
cd "$(dirname "$0")"
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"
DATA_DIR="${DATA_DIR:-${SPECTRA_DATA_DIR:-data}}"
scripts/setup.sh cli,server,demo
. .venv/bin/activate
mkdir -p "$DATA_DIR"
if ! ls "$DATA_DIR"/*.json >/dev/null 2>&1; then
  echo "No capture in $DATA_DIR yet: capturing a demo with Gemma 3 270M..."
  SPECTRA_DATA_DIR="$DATA_DIR" python capture_tensors.py --model demo --max-tokens 24 \
    --prompt "What is the capital of France?" --prompt "Write a Python function that adds two numbers."
fi
if [ -x scripts/build_frontend.sh ]; then scripts/build_frontend.sh; fi
if [ ! -f backend/server.py ]; then
  echo "The viewer backend is not in this checkout yet; captures are in $DATA_DIR/."
  exit 0
fi
if [ "${1:-}" = "--dev" ]; then
  (cd frontend && npx vite --port 3000) &
  trap 'kill $! 2>/dev/null' EXIT
  echo "Frontend (dev): http://127.0.0.1:3000"
fi
echo "Spectra Vis: http://$HOST:$PORT   (API docs: http://$HOST:$PORT/docs; Ctrl-C to stop)"
exec python backend/server.py --host "$HOST" --port "$PORT" --data-dir "$DATA_DIR"
