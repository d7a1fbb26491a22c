#!/usr/bin/env bash
# The recipes table of docs/benchmarks.md: every recipe shipped in recipes/ run by squeeze compress on one
# model with one calibration set (Grimms' fairy tales), measured after every step against the original on
# held-out TinyStories text (perplexity, KL, top-1) and in speed (decode / prefill against the original in the
# same run). Prints each recipe's table as squeeze compress prints it.
#
#   bench/recipes.sh [MODEL [CALIB_TEXT [EVAL_TEXT]]]
#     defaults: scripts/find-model.sh (stories15M), ../shared Grimms' fairy tales, ../shared TinyStories
#     valid-a.txt (its first EVAL_TOKENS tokens)
#   environment: THREADS (all online cores), CALIB_SAMPLES (32), CALIB_LEN (256), EVAL_TOKENS (16384),
#                REPS (5), WORK (a fresh temporary folder), ONLY (a regex on recipe file names)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
sq="$root/build/squeeze"
shared="$root/../shared"
model="${1:-$("$root/scripts/find-model.sh")}"
calib="${2:-$shared/data/classics/grimms_fairy_tales.txt}"
eval_text="${3:-$shared/data/tinystories/valid-a.txt}"
work="${WORK:-$(mktemp -d)}"
mkdir -p "$work"
echo "model $model, calibration $calib (${CALIB_SAMPLES:-32} x ${CALIB_LEN:-256} tokens), evaluation $eval_text"
echo "(first ${EVAL_TOKENS:-16384} tokens), commit $(git -C "$root" rev-parse --short HEAD)"
for recipe in "$root"/recipes/*.json; do
  name=$(basename "$recipe" .json)
  [[ -n "${ONLY:-}" && ! "$name" =~ ${ONLY} ]] && continue
  echo
  "$sq" compress -m "$model" -o "$work/$name.gguf" --recipe "$recipe" --calib "$calib" \
    --calib-samples "${CALIB_SAMPLES:-32}" --calib-len "${CALIB_LEN:-256}" --eval "$eval_text" \
    --eval-tokens "${EVAL_TOKENS:-16384}" --bench-reps "${REPS:-5}" -t "${THREADS:-$(nproc)}" --no-progress
done
