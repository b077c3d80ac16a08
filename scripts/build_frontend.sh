#!/usr/bin/env bash
# Build the viewer (frontend/dist) only when needed: npm ci when package-lock.json changed since the
# last install, vite build when the sources changed since the last build. A second run with nothing
# changed compares two hashes and returns in about a second.
#   scripts/build_frontend.sh          build if needed
#   scripts/build_frontend.sh --force  always install and build
set -euo pipefail
cd "$(dirname "$0")/../frontend"
FORCE="${1:-}"
if ! command -v npm >/dev/null 2>&1; then
  echo "error: Node.js 18+ with npm is needed to build the viewer (frontend/); install it from https://nodejs.org and run again" >&2
  exit 1
fi
hash_files() { sha256sum "$@" | sha256sum | cut -d' ' -f1; }

lock_hash=$(hash_files package.json package-lock.json)
lock_stamp=node_modules/.spectra-lock-hash
if [ "$FORCE" = "--force" ] || [ ! -f "$lock_stamp" ] || [ "$(cat "$lock_stamp")" != "$lock_hash" ]; then
  echo "Installing frontend dependencies (npm ci)..."
  npm ci --no-audit --no-fund --prefer-offline --loglevel=error
  echo "$lock_hash" > "$lock_stamp"
fi

src_hash=$(hash_files package-lock.json index.html vite.config.ts tsconfig.json $(find src public -type f 2>/dev/null | LC_ALL=C sort))
build_stamp=dist/.build-hash
if [ "$FORCE" != "--force" ] && [ -f "$build_stamp" ] && [ "$(cat "$build_stamp")" = "$src_hash" ]; then
  echo "Viewer is up to date (frontend/dist)."
  exit 0
fi
echo "Building the viewer (vite build)..."
npx vite build --logLevel warn
echo "$src_hash" > "$build_stamp.tmp" && mv "$build_stamp.tmp" "$build_stamp"
echo "Built frontend/dist."
