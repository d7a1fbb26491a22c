#!/usr/bin/env bash
# Quality of squeeze quantize on the default model (stories15M): perplexity, and KL divergence and top-1
# agreement against the fp32 model (squeeze ppl --ref, the same protocol for every file), with bits per weight,
# for q8_0, q4_0, q4_k_m written by squeeze and q4_k_m written by llama.cpp's llama-quantize from the same fp32
# GGUF. Prints a markdown table (docs/benchmarks.md).
#
#   bench/quant_quality.sh [TEXT_BYTES]   (default 50000: the first 50 kB of TinyStories valid-a; OUT, THREADS)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bytes="${1:-50000}"
out="${OUT:-$root/build/quant-quality}"
threads="${THREADS:-2}"
sq="$root/build/squeeze"
bin="$("$root/bench/llamacpp.sh")"
mkdir -p "$out"
head -c "$bytes" "$root/../shared/data/tinystories/valid-a.txt" | sed '$d' >"$out/text.txt" # whole lines
"$sq" convert -m "$("$root/scripts/find-model.sh")" -o "$out/f32.gguf" --to gguf >/dev/null 2>&1
for t in q8_0 q4_0 q4_k_m; do
  "$sq" quantize -m "$out/f32.gguf" -o "$out/squeeze-$t.gguf" --type "$t" --json "$out/squeeze-$t.quant.json" \
    --quiet --no-progress 2>/dev/null
done
"$bin/llama-quantize" "$out/f32.gguf" "$out/llama.cpp-q4_k_m.gguf" Q4_K_M >"$out/llama-quantize.log" 2>&1
echo "| file | bits per weight | size (MiB) | ppl | ppl ratio | mean KL (nats) | top-1 agreement |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for f in f32 squeeze-q8_0 squeeze-q4_0 squeeze-q4_k_m llama.cpp-q4_k_m; do
  "$sq" ppl -m "$out/$f.gguf" --ref "$out/f32.gguf" -f "$out/text.txt" -t "$threads" --json "$out/$f.ppl.json" \
    --no-progress >/dev/null 2>&1
  "$root/.venv/bin/python" - "$out/$f.gguf" "$out/$f.ppl.json" <<'PY'
import json, os, sys
import gguf
path, rep = sys.argv[1], json.load(open(sys.argv[2]))
ts = gguf.GGUFReader(path).tensors
n = sum(int(t.n_elements) for t in ts)
b = sum(int(t.n_bytes) for t in ts)
r = rep["reference"]
print(f"| {os.path.basename(path)} | {8 * b / n:.2f} | {os.path.getsize(path) / 2**20:.2f} | {rep['ppl']:.4f} | "
      f"{rep['ppl'] / r['ppl']:.4f} | {r['kl_mean']:.5f} | {100 * r['top1_agreement']:.2f}% |")
PY
done
echo
echo "text: first $bytes bytes of TinyStories valid-a ($(wc -c <"$out/text.txt") bytes, whole lines); llama.cpp: llama-cpp-python $(cat "$root/build-llamacpp/version")"
