#!/usr/bin/env bash
# squeeze quantize against llama.cpp's llama-quantize on the same fp32 GGUF, for every llama.cpp file type
# squeeze names: both files must hold every tensor in the same format, and (RTN is ggml's reference
# quantizers, no imatrix) the same bytes. Prints one line per type; exit status 1 on any difference.
#
#   bench/quant_vs_llamacpp.sh [MODEL]      (default: stories15M from ../shared/models; OUT=build/quant-vs-llamacpp)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
model="${1:-$("$root/scripts/find-model.sh")}"
out="${OUT:-$root/build/quant-vs-llamacpp}"
bin="$("$root/bench/llamacpp.sh")"
mkdir -p "$out"
"$root/build/squeeze" convert -m "$model" -o "$out/f32.gguf" --to gguf >/dev/null 2>&1
status=0
for type in q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q6_k q3_k_m q4_k_s q4_k_m q5_k_m; do
  "$root/build/squeeze" quantize -m "$out/f32.gguf" -o "$out/squeeze-$type.gguf" --type "$type" --quiet \
    --no-progress 2>"$out/squeeze-$type.log"
  "$bin/llama-quantize" "$out/f32.gguf" "$out/llama-$type.gguf" "${type^^}" >"$out/llama-$type.log" 2>&1
  if "$root/.venv/bin/python" "$root/bench/gguf_tensors_diff.py" "$out/squeeze-$type.gguf" "$out/llama-$type.gguf" \
      >"$out/diff-$type.txt"; then
    echo "$type: $(tail -1 "$out/diff-$type.txt")"
  else
    echo "$type: $(tail -1 "$out/diff-$type.txt") (see $out/diff-$type.txt)"; status=1
  fi
  grep -q "tensors byte-identical" "$out/diff-$type.txt" && ! grep -q "blocks differ" "$out/diff-$type.txt" || status=1
done
echo "llama.cpp: llama-cpp-python $(cat "$root/build-llamacpp/version") ($bin)"
exit $status
