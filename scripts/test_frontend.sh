#!/usr/bin/env bash
# The viewer's tests: install chromium when missing, npm ci (from the npm cache when it can),
# generated types up to date, typecheck, Vitest, build, then the browser tests (real backend,
# real captures of a tiny GGUF, Debian chromium through playwright-core). Saves docs/screenshots/.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ] && [ -z "${CHROMIUM_PATH:-}" ]; then
  echo "Installing chromium (apt-get)..."
  SUDO=""; if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
cd frontend
lock_hash=$(sha256sum package.json package-lock.json | sha256sum | cut -d' ' -f1)
if [ ! -f node_modules/.spectra-lock-hash ] || [ "$(cat node_modules/.spectra-lock-hash)" != "$lock_hash" ]; then
  echo "== npm ci"
  npm ci --no-audit --no-fund --prefer-offline --loglevel=error
  echo "$lock_hash" > node_modules/.spectra-lock-hash
fi
echo "== generated types"; node scripts/gen-types.mjs --check
echo "== tsc"; npx tsc --noEmit
echo "== vitest"; npx vitest run
echo "== build"; ../scripts/build_frontend.sh
echo "== browser (chromium)"; node --test --test-concurrency=1 --test-reporter=spec e2e/*.test.mjs
