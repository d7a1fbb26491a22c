#!/usr/bin/env bash
# Prints the path of the default model (stories15M): ../shared/models first, else models/ (downloaded there by
# scripts/get-model.sh).
here="$(cd "$(dirname "$0")/.." && pwd)"
for p in "$here/../shared/models/stories15M.bin" "$here/models/stories15M.bin"; do
  [ -f "$p" ] && { echo "$p"; exit 0; }
done
echo "$here/models/stories15M.bin"
