#!/usr/bin/env bash
# squeeze's int4/int3/int2 formats on the default model (stories15M), stored and run: RTN, GPTQ and AWQ at
# --group 32 and --group 0 (one scale and zero point per output channel), each against the fp32 model
# (squeeze ppl --ref: ppl, mean KL, top-1 agreement), calibrated on Grimm's fairy tales (CALIB_SAMPLES windows
# of 256 tokens, seed 0), evaluated on TinyStories. Prints a markdown table (docs/benchmarks.md).
#
#   bench/intn_quality.sh [TEXT_BYTES]   (default 50000; environment: OUT, default build/intn-quality; THREADS,
#                                         default 2; CALIB_SAMPLES, default 128)
set -euo pipefail
NAME=intn-quality
. "$(dirname "$0")/quant_table.sh"
samples="${CALIB_SAMPLES:-128}"
files=(f32)
for bits in 4 3 2; do
  for g in 32 0; do
    for m in rtn gptq awq; do
      cal=()
      [ "$m" = rtn ] || cal=(--calib "$calib" --calib-samples "$samples" --calib-len 256 --seed 0)
      "$sq" quantize -m "$out/f32.gguf" -o "$out/int$bits-g$g-$m.gguf" --type "int$bits" --group "$g" \
        --method "$m" "${cal[@]}" --json "$out/int$bits-g$g-$m.quant.json" -t "$threads" --quiet --no-progress \
        2>/dev/null
      files+=("int$bits-g$g-$m")
    done
  done
done
quality_table "${files[@]}"
echo
echo "text: first $bytes bytes of TinyStories valid-a ($(wc -c <"$out/text.txt") bytes, whole lines);" \
  "calibration: $samples windows of 256 tokens"
