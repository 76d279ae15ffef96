#!/usr/bin/env bash
# Generates the static protobufjs module and its TypeScript declarations from
# proto/*.proto. The generated files are build output (src/gossip/gen is ignored):
# the .proto files are the single source of the wire types.
set -euo pipefail
cd "$(dirname "$0")/.."
out=src/gossip/gen
mkdir -p "$out"
stamp="$out/.stamp"
if [ -f "$stamp" ] && [ -z "$(find proto -name '*.proto' -newer "$stamp")" ]; then
  exit 0
fi
npx --no-install pbjs -t static-module -w es6 --no-create --no-verify --no-delimited --force-number \
  -o "$out/proto.js" proto/*.proto
npx --no-install pbts -o "$out/proto.d.ts" "$out/proto.js"
touch "$stamp"
