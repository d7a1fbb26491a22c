#!/usr/bin/env bash
# Quality of the calibrated methods on the default model (stories15M): RTN, GPTQ and AWQ at the same format,
# perplexity, and KL divergence and top-1 agreement against the fp32 model (squeeze ppl --ref, the same
# protocol for every file), with bits per weight and the time quantization took. Calibration: 128 windows of
# 256 tokens (the model's context) from Grimm's fairy tales, seed 0; evaluation: the first TEXT_BYTES of
# TinyStories valid-a (text the calibration never saw). Files: squeeze quantize for the GGUF formats;
# bench_grid_quantize for int4/int3 per group of 128 (squeeze's asymmetric grids, which have no storage format
# yet: their values are stored as fp32, so only their quality is measured). Prints a markdown table
# (docs/benchmarks.md).
#
#   bench/gptq_quality.sh [TEXT_BYTES]   (default 50000; OUT, THREADS)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bytes="${1:-50000}"
out="${OUT:-$root/build/gptq-quality}"
threads="${THREADS:-2}"
sq="$root/build/squeeze"
grid="$root/build/bench/bench_grid_quantize"
shared="$root/../shared"
model="$shared/models/stories15M.bin"
calib="$shared/data/classics/grimms_fairy_tales.txt"
mkdir -p "$out"
head -c "$bytes" "$shared/data/tinystories/valid-a.txt" | sed '$d' >"$out/text.txt" # whole lines
"$sq" convert -m "$model" -o "$out/f32.gguf" --to gguf >/dev/null 2>&1
cal=(--calib "$calib" --calib-samples 128 --calib-len 256 --seed 0)
declare -A secs
quantize() { # name, then squeeze quantize's flags
  local name="$1"
  shift
  "$sq" quantize -m "$model" -o "$out/$name.gguf" --json "$out/$name.quant.json" --quiet --no-progress \
    -t "$threads" "$@" 2>/dev/null
  secs[$name]="$("$root/.venv/bin/python" -c "import json,sys; print(f\"{json.load(open(sys.argv[1]))['seconds']:.1f}\")" "$out/$name.quant.json")"
}
for t in q8_0 q4_0 q4_1; do
  quantize "$t-rtn" --type "$t"
  quantize "$t-gptq" --type "$t" --method gptq "${cal[@]}"
  quantize "$t-awq" --type "$t" --method awq "${cal[@]}"
done
quantize q4_0-gptq-act --type q4_0 --method gptq "${cal[@]}" --act-order
for t in int4 int3; do
  secs[$t-g128-rtn]="$("$grid" "$model" "$out/$t-g128-rtn.gguf" rtn "$t" 128)"
  secs[$t-g128-gptq]="$("$grid" "$model" "$out/$t-g128-gptq.gguf" gptq "$t" 128 "$calib" 128 256 0 0)"
  secs[$t-g128-gptq-act]="$("$grid" "$model" "$out/$t-g128-gptq-act.gguf" gptq "$t" 128 "$calib" 128 256 0 1)"
  secs[$t-g128-awq]="$("$grid" "$model" "$out/$t-g128-awq.gguf" awq "$t" 128 "$calib" 128 256 0 0)"
done
echo "| file | method | bits per weight | ppl | ppl ratio | mean KL (nats) | top-1 agreement | quantization (s) |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for f in f32 q8_0-rtn q8_0-gptq q8_0-awq q4_1-rtn q4_1-gptq q4_1-awq q4_0-rtn q4_0-gptq q4_0-gptq-act q4_0-awq \
  int4-g128-rtn int4-g128-gptq int4-g128-gptq-act int4-g128-awq int3-g128-rtn int3-g128-gptq int3-g128-gptq-act \
  int3-g128-awq; do
  "$sq" ppl -m "$out/$f.gguf" --ref "$out/f32.gguf" -f "$out/text.txt" -t "$threads" --json "$out/$f.ppl.json" \
    --no-progress >/dev/null 2>&1
  "$root/.venv/bin/python" - "$out/$f.gguf" "$out/$f.ppl.json" "${secs[$f]:--}" <<'PY'
import json, os, sys
import gguf
path, rep, secs = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3]
name = os.path.basename(path)[:-5]
if name.startswith("int"):  # values on the grid, stored as fp32: the grid's nominal size, f16 scale + zero per group
    bits = int(name[3]) + 32 / 128
    bpw = f"{bits:.2f} (values only)"
else:
    ts = gguf.GGUFReader(path).tensors
    bpw = f"{8 * sum(int(t.n_bytes) for t in ts) / sum(int(t.n_elements) for t in ts):.2f}"
fmt, _, method = name.replace("-g128", " g128").partition("-")
method = {"": "fp32", "rtn": "RTN", "gptq": "GPTQ", "gptq-act": "GPTQ act-order", "awq": "AWQ"}[method]
r = rep["reference"]
print(f"| {fmt} | {method} | {bpw} | {rep['ppl']:.4f} | {rep['ppl'] / r['ppl']:.4f} | {r['kl_mean']:.5f} | "
      f"{100 * r['top1_agreement']:.2f}% | {secs} |")
PY
done
echo
