#!/usr/bin/env bash
# Engine speed: squeeze's fast path (the kernel set the dispatcher picks, all cores) against its own scalar
# single-thread path, on stories15M, both measured in this run with `squeeze bench`. The two configurations
# alternate for ROUNDS rounds (kernel choice and thread count are per process), and each figure is the median
# over the rounds of each run's median. Prints a Markdown section for docs/benchmarks.md.
#
#   bench/engine.sh [MODEL]          (default: scripts/find-model.sh, i.e. stories15M)
#   environment: SQ_BIN (build/squeeze), PROMPT (128), GEN (64), BATCHES (1,8), REPS (3), ROUNDS (3),
#                THREADS (all online cores), OUT (folder for the JSON reports; default: a temporary one)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
model="${1:-$("$root/scripts/find-model.sh")}"
bin="${SQ_BIN:-$root/build/squeeze}"
prompt="${PROMPT:-128}" gen="${GEN:-64}" batches="${BATCHES:-1,8}" reps="${REPS:-3}" rounds="${ROUNDS:-3}"
threads="${THREADS:-$(nproc)}"
out="${OUT:-$(mktemp -d)}"
mkdir -p "$out"

[ -x "$bin" ] || { echo "engine.sh: $bin not found: build first (make build)" >&2; exit 1; }
[ -e "$model" ] || { echo "engine.sh: model $model not found (scripts/get-model.sh fetches stories15M)" >&2; exit 1; }

common=(-m "$model" -p "$prompt" -n "$gen" -b "$batches" --reps "$reps" --warmup 1)
baseline=("$bin" bench "${common[@]}" -t 1 --kernels scalar)
fast=("$bin" bench "${common[@]}" -t "$threads")

for ((r = 1; r <= rounds; r++)); do
  echo "engine.sh: round $r/$rounds: scalar, 1 thread" >&2
  "${baseline[@]}" --json "$out/baseline-$r.json" >/dev/null
  echo "engine.sh: round $r/$rounds: fast path, $threads threads" >&2
  "${fast[@]}" --json "$out/fast-$r.json" >/dev/null
done

cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)"
commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
python3 "$root/bench/engine_table.py" --cpu "${cpu:-unknown CPU}" --cores "$(nproc)" --commit "$commit" \
  --command "bench/engine.sh $model  (each round: ${baseline[*]:1} ; ${fast[*]:1})" \
  --baseline "$out"/baseline-*.json --fast "$out"/fast-*.json
