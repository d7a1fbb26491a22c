#!/usr/bin/env bash
# What an imatrix buys squeeze quantize on the default model (stories15M): the importance matrix computed on
# Grimm's fairy tales (../shared/data/classics; not the evaluation text), then q4_k, q3_k and q4_k_m written
# without and with it (--imatrix), each measured against the fp32 model on TinyStories (squeeze ppl --ref: ppl
# ratio, mean KL, top-1 agreement). On stories15M most rows (288 values) do not hold 256-value super-blocks, so
# most matrices fall back to Q5_0 / Q8_0, whose importance-weighted search the imatrix drives too. Prints a
# markdown table (docs/benchmarks.md).
#
#   bench/imatrix_quality.sh [TEXT_BYTES]   (default 60000: the first 60 kB of TinyStories valid-a; OUT,
#                                            THREADS, SAMPLES (64 calibration windows of 256 tokens))
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bytes="${1:-60000}"
out="${OUT:-$root/build/imatrix-quality}"
threads="${THREADS:-2}" samples="${SAMPLES:-64}"
sq="$root/build/squeeze"
model="$("$root/scripts/find-model.sh")"
mkdir -p "$out"
head -c "$bytes" "$root/../shared/data/tinystories/valid-a.txt" >"$out/text.txt"
"$sq" imatrix -m "$model" -f "$root/../shared/data/classics/grimms_fairy_tales.txt" -o "$out/stories15M.imatrix" \
  --calib-samples "$samples" --calib-len 256 -t "$threads" --no-progress 2>"$out/imatrix.log"
echo "| type | imatrix | bits per weight | ppl | ppl ratio | mean KL (nats) | top-1 agreement |"
echo "|---|---|---:|---:|---:|---:|---:|"
for t in q4_k q3_k q4_k_m; do
  for im in no yes; do
    f="$out/$t-$im.gguf"
    "$sq" quantize -m "$model" -o "$f" --type "$t" --quiet --no-progress -t "$threads" \
      $([ $im = yes ] && echo --imatrix "$out/stories15M.imatrix") 2>"$f.log"
    "$sq" ppl -m "$f" --ref "$model" -f "$out/text.txt" -t "$threads" --json "$f.ppl.json" --no-progress \
      >/dev/null 2>&1
    "$root/.venv/bin/python" - "$t" "$im" "$f.ppl.json" "$f.log" <<'PY'
import json, re, sys
t, im, rep, log = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3])), open(sys.argv[4]).read()
bpw = re.search(r"([0-9.]+) bits per weight", log).group(1)
r = rep["reference"]
print(f"| {t} | {im} | {bpw} | {rep['ppl']:.4f} | {rep['ppl'] / r['ppl']:.4f} | {r['kl_mean']:.5f} | "
      f"{100 * r['top1_agreement']:.2f}% |")
PY
  done
done
echo
echo "imatrix: $samples windows of 256 tokens of Grimm's fairy tales (seed 0); text: first $bytes bytes of TinyStories valid-a"
