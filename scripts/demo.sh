#!/usr/bin/env bash
# The main job on the default model: run it. (Grows as compression, measurement and serving land.)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
"$here/scripts/get-model.sh"
model="$("$here/scripts/find-model.sh")"
bin="$here/build/squeeze"
echo "== squeeze info"
"$bin" info -m "$model"
echo "== squeeze run (greedy)"
"$bin" run -m "$model" -p "Once upon a time" -n 128 --temp 0
