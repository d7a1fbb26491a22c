#!/usr/bin/env bash
# W8A8 on the default model (stories15M): quality of w8a8 round to nearest and w8a8 SmoothQuant (alpha 0.5,
# the paper's default, and 0.8) beside q8_0 weight-only, each against the fp32 model (squeeze ppl --ref: ppl,
# mean KL, top-1 agreement; the same protocol for every file), SmoothQuant calibrated on the classics (not the
# evaluation text); then decode and prefill speed of w8a8 against q8_0 and against f32, each pair in one run
# (squeeze bench --vs, repetitions interleaved). Prints markdown tables (docs/benchmarks.md).
#
#   bench/w8a8_quality.sh [TEXT_BYTES]   (default 50000: the first 50 kB of TinyStories valid-a;
#                                         environment: OUT, default build/w8a8-quality; THREADS, default 2)
set -euo pipefail
NAME=w8a8-quality
. "$(dirname "$0")/quant_table.sh"
q() { "$sq" quantize -m "$out/f32.gguf" -o "$out/$1.gguf" --json "$out/$1.quant.json" --quiet --no-progress "${@:2}" 2>/dev/null; }
q q8_0 --type q8_0
q w8a8-rtn --type w8a8
for a in 0.5 0.8; do
  q "w8a8-smoothquant-$a" --type w8a8 --method smoothquant --alpha "$a" --calib "$calib" --calib-samples 128 --calib-len 256
done
quality_table f32 q8_0 w8a8-rtn w8a8-smoothquant-0.5 w8a8-smoothquant-0.8
echo
echo "text: first $bytes bytes of TinyStories valid-a ($(wc -c <"$out/text.txt") bytes, whole lines); calibration (smoothquant): 128 windows of 256 tokens of $(basename "$calib")"
echo
echo "| A | B | prefill tok/s A | prefill tok/s B | B/A prefill | decode tok/s A | decode tok/s B | B/A decode |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for a in q8_0 f32; do
  "$sq" bench -m "$out/$a.gguf" --vs "$out/w8a8-smoothquant-0.5.gguf" -p 128 -n 64 -t "$threads" --reps 5 \
    --no-progress --json "$out/bench-$a.json" >/dev/null 2>&1
  "$root/.venv/bin/python" - "$a" "$out/bench-$a.json" <<'PY'
import json, sys
name, rep = sys.argv[1], json.load(open(sys.argv[2]))
a, b = (v["results"][0] for v in rep["variants"][:2])
p = [x["prefill_tok_s"]["median"] for x in (a, b)]
d = [x["decode_tok_s"]["median"] for x in (a, b)]
print(f"| {name} | w8a8 | {p[0]:.0f} | {p[1]:.0f} | {p[1] / p[0]:.2f} | {d[0]:.1f} | {d[1]:.1f} | {d[1] / d[0]:.2f} |")
PY
done
echo
echo "squeeze bench -p 128 -n 64, batch 1, median of 5 interleaved repetitions, threads: $threads; kernels: the best this CPU runs (AVX-512 VNNI: $(grep -qm1 avx512_vnni /proc/cpuinfo && echo yes || echo no)); CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
