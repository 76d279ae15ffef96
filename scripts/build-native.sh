#!/usr/bin/env bash
# Compiles hasup's two C programs into dist/bin when a source is newer than its binary:
#   native/fence/hasup-fence.c    the fence that holds without a live supervisor (docs/fence.md says why C)
#   native/ndsend/hasup-ndsend.c  unsolicited IPv6 neighbour advertisements for the leader VIP (docs/vip.md)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p dist/bin
for src in native/fence/hasup-fence.c native/ndsend/hasup-ndsend.c; do
  out="dist/bin/$(basename "$src" .c)"
  if [ -x "$out" ] && [ "$out" -nt "$src" ]; then
    continue
  fi
  command -v cc >/dev/null || {
    echo "build-native: no C compiler (cc); run scripts/bootstrap.sh (installs gcc) or install gcc" >&2
    exit 1
  }
  cc -O2 -Wall -Wextra -Werror -std=c11 -o "$out.tmp" "$src"
  mv "$out.tmp" "$out"
done
