#!/usr/bin/env bash
# Decode speed of quantized files, squeeze against llama.cpp's llama-bench on the same GGUF files and threads:
# squeeze bench (1-token prompt, 128 decode steps, median of 5) and llama-bench tg128 (mean of 5), one file after
# the other in one run. Files: stories15M in f32, and squeeze's q8_0 and q4_k_m (on stories15M q4_k_m is mostly
# Q5_0 with Q4_K/Q6_K ffn_down and a Q8_0 classifier: 288-value rows do not hold 256-value super-blocks). Prints a
# markdown table (docs/benchmarks.md).
#
#   bench/quant_speed.sh            (environment: THREADS, default 1; OUT, default build/quant-quality)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${OUT:-$root/build/quant-quality}"
threads="${THREADS:-1}"
sq="$root/build/squeeze"
bin="$("$root/bench/llamacpp.sh")"
mkdir -p "$out"
[ -f "$out/f32.gguf" ] || "$sq" convert -m "$("$root/scripts/find-model.sh")" -o "$out/f32.gguf" --to gguf >/dev/null 2>&1
for t in q8_0 q4_k_m; do
  [ -f "$out/squeeze-$t.gguf" ] || "$sq" quantize -m "$out/f32.gguf" -o "$out/squeeze-$t.gguf" --type "$t" --quiet --no-progress 2>/dev/null
done
echo "| file | squeeze decode tok/s (min-max) | llama.cpp tg128 tok/s (± sd) | squeeze / llama.cpp |"
echo "|---|---:|---:|---:|"
for f in f32 squeeze-q8_0 squeeze-q4_k_m; do
  "$sq" bench -m "$out/$f.gguf" -p 1 -n 128 -t "$threads" --reps 5 --no-progress --json "$out/$f.bench.json" >/dev/null 2>&1
  "$bin/llama-bench" -m "$out/$f.gguf" -p 0 -n 128 -t "$threads" -r 5 -o json >"$out/$f.llama-bench.json" 2>/dev/null
  "$root/.venv/bin/python" - "$f" "$out/$f.bench.json" "$out/$f.llama-bench.json" <<'PY'
import json, sys
name, sq, ll = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
d = sq["variants"][0]["results"][0]["decode_tok_s"]
tg = [r for r in ll if r["n_gen"] == 128][0]
print(f"| {name}.gguf | {d['median']:.1f} ({d['min']:.1f}-{d['max']:.1f}) | {tg['avg_ts']:.1f} (± {tg['stddev_ts']:.1f}) | "
      f"{d['median'] / tg['avg_ts']:.2f} |")
PY
done
echo
echo "threads: $threads; llama.cpp: llama-cpp-python $(cat "$root/build-llamacpp/version") (GGML_NATIVE); CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
