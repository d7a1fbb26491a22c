#!/usr/bin/env bash
# Mixture of experts against a dense model of the same parameters per token, in one run (squeeze bench --vs,
# repetitions interleaved): random-weight models of real shapes (squeeze synth: mixtral-8x7b and
# qwen1.5-moe-a2.7b, LAYERS blocks of them, TYPE weights) and their --dense-active twins (one FFN as wide as the
# experts a token uses, plus the shared expert). Decode at batch 1 reads the same weight bytes per token in both;
# at larger batches and in prefill the MoE reads every expert some token chose. Prints squeeze bench's tables.
#
#   bench/moe_vs_dense.sh   (OUT, LAYERS (default 2), TYPE (default q4_0), THREADS (default 2), REPS (3),
#                            PROMPT (default 64), GEN (default 32), BATCH (default 1,8))
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${OUT:-$root/build/moe-bench}"
layers="${LAYERS:-2}" type="${TYPE:-q4_0}" threads="${THREADS:-2}" reps="${REPS:-3}"
prompt="${PROMPT:-64}" gen="${GEN:-32}" batch="${BATCH:-1,8}"
sq="$root/build/squeeze"
mkdir -p "$out"
for preset in mixtral-8x7b qwen1.5-moe-a2.7b; do
  "$sq" synth --preset "$preset" --type "$type" --layers "$layers" -o "$out/$preset.gguf" 2>/dev/null
  "$sq" synth --preset "$preset" --type "$type" --layers "$layers" --dense-active -o "$out/$preset-dense.gguf" \
    2>/dev/null
  echo "## $preset ($layers blocks, $type): A dense twin, B mixture of experts"
  "$sq" bench -m "$out/$preset-dense.gguf" --label "dense, same active parameters" --vs "$out/$preset.gguf" \
    --vs-label "$preset" -p "$prompt" -n "$gen" -b "$batch" --reps "$reps" --warmup 1 -t "$threads" --no-progress
  echo
done
