#!/usr/bin/env bash
# The viewer's tests: install chromium when missing, npm ci and build (scripts/build_frontend.sh, from
# the npm cache when it can), generated types up to date, typecheck, Vitest, then the browser tests (real backend,
# real captures of a tiny GGUF, Debian chromium through playwright-core). Saves docs/screenshots/.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ] && [ -z "${CHROMIUM_PATH:-}" ]; then
  echo "Installing chromium (apt-get)..."
  SUDO=""; if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
echo "== install and build"; scripts/build_frontend.sh   # npm ci and vite build, each only when needed
cd frontend
echo "== generated types"; node scripts/gen-types.mjs --check
echo "== tsc"; npx tsc --noEmit
echo "== vitest"; npx vitest run
echo "== browser (chromium)"; node --test --test-concurrency=1 --test-reporter=spec e2e/*.test.mjs
