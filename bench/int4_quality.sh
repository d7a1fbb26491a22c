#!/usr/bin/env bash
# squeeze's int4 group formats on the default model (stories15M), stored and run: RTN, GPTQ and AWQ at
# int4 --group 32 and --group 128 (288-wide rows are not whole groups of 128: those fall back to groups of 32,
# the 768-wide ffn_down keeps 128; token_embd, the tied classifier, is int4 too), each against the fp32 model
# (squeeze ppl --ref: ppl, mean KL, top-1 agreement), calibrated on Grimm's fairy tales (128 windows of 256
# tokens, seed 0), evaluated on TinyStories; then decode and prefill speed of int4 g32 against f32 in one run
# (squeeze bench --vs). Prints markdown tables (docs/benchmarks.md).
#
#   bench/int4_quality.sh [TEXT_BYTES]   (default 50000; environment: OUT, default build/int4-quality; THREADS,
#                                         default 2)
set -euo pipefail
NAME=int4-quality
. "$(dirname "$0")/quant_table.sh"
files=(f32)
for g in 32 128; do
  for m in rtn gptq awq; do
    cal=()
    [ "$m" = rtn ] || cal=(--calib "$calib" --calib-samples 128 --calib-len 256 --seed 0)
    "$sq" quantize -m "$out/f32.gguf" -o "$out/int4-g$g-$m.gguf" --type int4 --group "$g" --method "$m" \
      "${cal[@]}" --json "$out/int4-g$g-$m.quant.json" -t "$threads" --quiet --no-progress 2>/dev/null
    files+=("int4-g$g-$m")
  done
done
quality_table "${files[@]}"
echo
echo "text: first $bytes bytes of TinyStories valid-a ($(wc -c <"$out/text.txt") bytes, whole lines)"
echo
"$sq" bench -m "$out/f32.gguf" --vs "$out/int4-g32-rtn.gguf" -p 128 -n 64 -t "$threads" --reps 5 --no-progress \
  --json "$out/bench.json" >/dev/null 2>&1
"$root/.venv/bin/python" - "$out/bench.json" <<'PY'
import json, sys
rep = json.load(open(sys.argv[1]))
a, b = (v["results"][0] for v in rep["variants"][:2])
p = [x["prefill_tok_s"]["median"] for x in (a, b)]
d = [x["decode_tok_s"]["median"] for x in (a, b)]
print("| A | B | prefill tok/s A | prefill tok/s B | B/A prefill | decode tok/s A | decode tok/s B | B/A decode |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
print(f"| f32 | int4 g32 | {p[0]:.0f} | {p[1]:.0f} | {p[1] / p[0]:.2f} | {d[0]:.1f} | {d[1]:.1f} | {d[1] / d[0]:.2f} |")
PY
echo
echo "squeeze bench -p 128 -n 64, batch 1, median of 5 interleaved repetitions, threads: $threads; CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
