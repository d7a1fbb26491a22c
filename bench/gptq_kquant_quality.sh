#!/usr/bin/env bash
# GPTQ into llama.cpp's block types on the default model (stories15M), beside llama.cpp's own files of the
# same type: squeeze quantize --type TYPE with RTN, RTN + imatrix, GPTQ, GPTQ + imatrix (and with act-order), and llama.cpp's
# llama-quantize TYPE without and with its own imatrix (llama-imatrix), every file measured by the same engine
# and protocol (squeeze ppl --ref against the fp32 model: ppl, mean KL, top-1 agreement), with bits per weight
# counted over every tensor of the file (gguf package). Calibration (both imatrices, GPTQ's Hessians): Grimm's
# fairy tales (../shared/data/classics), SAMPLES windows of 256 tokens; evaluation: the first TEXT_BYTES of
# TinyStories valid-a (text neither saw). llama-imatrix reads the same text in chunks of 256 tokens. Prints a
# markdown table (docs/benchmarks.md).
#
#   bench/gptq_kquant_quality.sh [TEXT_BYTES]   (default 50000; OUT, THREADS, SAMPLES (default 64), TYPES
#                                                (default q4_k_m), LLAMACPP_BIN (default: bench/llamacpp.sh's))
set -euo pipefail
NAME=gptq-kquant-quality
source "$(dirname "$0")/quant_table.sh" # root, bytes, out, threads, sq, calib; text.txt, f32.gguf
samples="${SAMPLES:-64}" types="${TYPES:-q4_k_m}"
bin="${LLAMACPP_BIN:-$("$root/bench/llamacpp.sh")}"
"$sq" imatrix -m "$out/f32.gguf" -f "$calib" -o "$out/squeeze.imatrix" --calib-samples "$samples" \
  --calib-len 256 --seed 0 -t "$threads" --no-progress 2>"$out/imatrix.log"
"$bin/llama-imatrix" -m "$out/f32.gguf" -f "$calib" -o "$out/llama.imatrix" -c 256 --chunks "$samples" \
  -t "$threads" >"$out/llama-imatrix.log" 2>&1
cal=(--calib "$calib" --calib-samples "$samples" --calib-len 256 --seed 0)
files=()
for t in $types; do
  q() { # name, then squeeze quantize's flags
    local name="$t-$1"
    shift
    "$sq" quantize -m "$out/f32.gguf" -o "$out/$name.gguf" --type "$t" --json "$out/$name.quant.json" --quiet \
      --no-progress -t "$threads" "$@" 2>"$out/$name.log"
    files+=("$name")
  }
  q rtn
  q rtn-imatrix --imatrix "$out/squeeze.imatrix"
  q gptq --method gptq "${cal[@]}"
  q gptq-imatrix --method gptq "${cal[@]}" --imatrix "$out/squeeze.imatrix"
  q gptq-imatrix-act --method gptq "${cal[@]}" --imatrix "$out/squeeze.imatrix" --act-order
  "$bin/llama-quantize" "$out/f32.gguf" "$out/$t-llama.gguf" "${t^^}" "$threads" >"$out/$t-llama.log" 2>&1
  "$bin/llama-quantize" --imatrix "$out/llama.imatrix" "$out/f32.gguf" "$out/$t-llama-imatrix.gguf" "${t^^}" \
    "$threads" >"$out/$t-llama-imatrix.log" 2>&1
  files+=("$t-llama" "$t-llama-imatrix")
done
echo "| file | bits per weight | ppl | ppl ratio | mean KL (nats) | top-1 agreement | quantize s |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for f in "${files[@]}"; do
  "$sq" ppl -m "$out/$f.gguf" --ref "$out/f32.gguf" -f "$out/text.txt" -t "$threads" --json "$out/$f.ppl.json" \
    --no-progress >/dev/null 2>&1
  "$root/.venv/bin/python" - "$out/$f" <<'PY'
import json, os, sys
import gguf
base = sys.argv[1]
rep, r = json.load(open(base + ".ppl.json")), json.load(open(base + ".ppl.json"))["reference"]
ts = gguf.GGUFReader(base + ".gguf").tensors
bpw = 8 * sum(int(t.n_bytes) for t in ts) / sum(int(t.n_elements) for t in ts)
secs = f"{json.load(open(base + '.quant.json'))['seconds']:.1f}" if os.path.exists(base + ".quant.json") else "—"
print(f"| {os.path.basename(base)} | {bpw:.3f} | {rep['ppl']:.4f} | {rep['ppl'] / r['ppl']:.4f} | "
      f"{r['kl_mean']:.5f} | {100 * r['top1_agreement']:.2f}% | {secs} |")
PY
done
echo
echo "calibration: $samples windows of 256 tokens of Grimm's fairy tales (seed 0); text: first $bytes bytes of" \
  "TinyStories valid-a; llama.cpp: llama-cpp-python $(cat "$bin/../../version" 2>/dev/null || echo "(unknown)")"
