#!/usr/bin/env bash
# Compiles the fence (native/fence/hasup-fence.c) into dist/bin/hasup-fence when
# the source is newer than the binary. See docs/fence.md for why it is C.
set -euo pipefail
cd "$(dirname "$0")/.."
src=native/fence/hasup-fence.c
out=dist/bin/hasup-fence
if [ -x "$out" ] && [ "$out" -nt "$src" ]; then
  exit 0
fi
command -v cc >/dev/null || {
  echo "build-fence: no C compiler (cc); run scripts/bootstrap.sh (installs gcc) or install gcc" >&2
  exit 1
}
mkdir -p "$(dirname "$out")"
cc -O2 -Wall -Wextra -Werror -std=c11 -o "$out.tmp" "$src"
mv "$out.tmp" "$out"
