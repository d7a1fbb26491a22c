#!/usr/bin/env bash
# 2:4 sparse storage against dense storage of the same pruned weights (issue 9, "Execution"): magnitude 2:4
# pruning of the default model (stories15M) and of a synthetic model with llama-2-7b's shapes (--layers
# LAYERS blocks; its embeddings and output in q8_0 like the dense file's), then each dense format against its
# 2:4 counterpart (q8_0 / sparse24_q8, q4_0 / sparse24_q4, f16 / sparse24_f16; the tensors outside the blocks
# identical), decode (and stories15M's prefill) tokens/s through squeeze bench --vs, repetitions interleaved
# in one run. Prints a markdown table (docs/benchmarks.md).
#
#   bench/sparse_speed.sh   (OUT, THREADS (default 1), REPS (default 5), LAYERS (default 4))
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${OUT:-$root/build/sparse-speed}"
threads="${THREADS:-1}" reps="${REPS:-5}" layers="${LAYERS:-4}"
sq="$root/build/squeeze"
mkdir -p "$out"
"$sq" prune -m "$("$root/scripts/find-model.sh")" -o "$out/stories15M-24.gguf" --nm 2:4 --no-progress >/dev/null
"$sq" synth --preset llama-2-7b --layers "$layers" --type q8_0 -o "$out/synth.gguf" -t "$threads" >/dev/null
"$sq" prune -m "$out/synth.gguf" -o "$out/synth-24.gguf" --nm 2:4 -t "$threads" --no-progress >/dev/null
rm "$out/synth.gguf"
# the dense formats, the tensors outside the blocks as the 2:4 types store them (q4_0's rules would give
# the output layer q6_k; f16 is no quantize type of its own)
dense_args() {
  case "$1" in
  q8_0) echo "--type q8_0" ;;
  q4_0) echo "--type q4_0 --keep token_embd.weight=q4_0 --keep output.weight=q4_0" ;;
  f16) echo "--type q8_0 --keep *=f16" ;;
  esac
}
echo "| model | A: dense | B: 2:4 | weights MiB A | B | decode tok/s A | B | B/A |"
echo "|---|---|---|---:|---:|---:|---:|---:|"
for m in stories15M synth; do
  for pair in q8_0:sparse24_q8 q4_0:sparse24_q4 f16:sparse24_f16; do
    d="${pair%%:*}" s="${pair##*:}"
    [ "$m" = stories15M ] && [ "$d" = q4_0 ] && keep="--type q4_0 --keep token_embd.weight=q4_0" || keep="$(dense_args "$d")"
    # shellcheck disable=SC2086
    "$sq" quantize -m "$out/$m-24.gguf" -o "$out/$m-$d.gguf" $keep -t "$threads" --no-progress >/dev/null
    "$sq" quantize -m "$out/$m-24.gguf" -o "$out/$m-$s.gguf" --type "$s" -t "$threads" --no-progress >/dev/null
    n=128
    [ "$m" = synth ] && n=32
    "$sq" bench -m "$out/$m-$d.gguf" --vs "$out/$m-$s.gguf" -p 0 -n "$n" -t "$threads" --reps "$reps" \
      --no-progress >"$out/bench-$m-$d.txt" 2>&1
    awk -v m="$m" -v d="$d" -v s="$s" -F'|' '
      /^\| decode \(tokens\/s\)/ { a = $3; b = $5; r = $7 }
      /^\| weights \(MiB\)/ { wa = $3; wb = $5 }
      END { gsub(/ /, "", a); gsub(/ /, "", b); gsub(/ /, "", r); gsub(/ /, "", wa); gsub(/ /, "", wb)
            printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", m, d, s, wa, wb, a, b, r }' "$out/bench-$m-$d.txt"
    [ "$m" = synth ] && rm "$out/$m-$d.gguf" "$out/$m-$s.gguf"
  done
done
# prefill: the 2:4 formats dequantize tiles for sgemm, q8_0 has squeeze's integer GEMM
"$sq" bench -m "$out/stories15M-q8_0.gguf" --vs "$out/stories15M-sparse24_q8.gguf" -p 128 -n 0 -t "$threads" \
  --reps "$reps" --no-progress 2>&1 | grep -E "^\| prefill|^squeeze bench"
