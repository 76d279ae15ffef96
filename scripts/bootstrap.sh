#!/usr/bin/env bash
# Installs whatever hasup needs that is missing, and nothing that is present.
# Safe to run any number of times; `npm run demo` and `npm test` call it first.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'bootstrap: %s\n' "$*" >&2; }

# --- Node dependencies -------------------------------------------------------
# Reinstall when node_modules is missing or older than the lockfile.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
fi
