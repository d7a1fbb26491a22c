#!/usr/bin/env bash
# Mixed precision (quantize --budget-bpw) against llama.cpp's fixed presets on the default model (stories15M),
# at the same bits per weight: each preset written with the imatrix, then the same --type (so token_embd,
# output and norms are identical) with --budget-bpw set to the preset file's bits per weight, the blocks'
# matrices chosen by sensitivity. Each file against the fp32 model on TinyStories (squeeze ppl --ref). The
# imatrix is computed on Grimm's fairy tales (not the evaluation text). Prints a markdown table
# (docs/benchmarks.md).
#
#   bench/mixed_quality.sh [TEXT_BYTES]   (default 60000; OUT, THREADS, SAMPLES (64 windows of 256 tokens),
#                                          PRESETS (default "q4_0 q4_k_m q5_k_m"))
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bytes="${1:-60000}"
out="${OUT:-$root/build/mixed-quality}"
threads="${THREADS:-2}" samples="${SAMPLES:-64}" presets="${PRESETS:-q4_0 q4_k_m q5_k_m}"
sq="$root/build/squeeze" py="$root/.venv/bin/python"
model="$("$root/scripts/find-model.sh")"
mkdir -p "$out"
head -c "$bytes" "$root/../shared/data/tinystories/valid-a.txt" >"$out/text.txt"
"$sq" imatrix -m "$model" -f "$root/../shared/data/classics/grimms_fairy_tales.txt" -o "$out/stories15M.imatrix" \
  --calib-samples "$samples" --calib-len 256 -t "$threads" --no-progress 2>"$out/imatrix.log"
row() { # name file log
  "$sq" ppl -m "$2" --ref "$model" -f "$out/text.txt" -t "$threads" --json "$2.ppl.json" --no-progress \
    >/dev/null 2>&1
  "$py" - "$1" "$2.ppl.json" "$3" <<'PY'
import json, re, sys
name, rep, log = sys.argv[1], json.load(open(sys.argv[2])), open(sys.argv[3]).read()
bpw = re.search(r"([0-9.]+) bits per weight", log).group(1)
r = rep["reference"]
print(f"| {name} | {bpw} | {rep['ppl']:.4f} | {rep['ppl'] / r['ppl']:.4f} | {r['kl_mean']:.5f} | "
      f"{100 * r['top1_agreement']:.2f}% |")
PY
}
echo "| file | bits per weight | ppl | ppl ratio | mean KL (nats) | top-1 agreement |"
echo "|---|---:|---:|---:|---:|---:|"
for t in $presets; do
  "$sq" quantize -m "$model" -o "$out/$t.gguf" --type "$t" --imatrix "$out/stories15M.imatrix" --quiet \
    --no-progress -t "$threads" 2>"$out/$t.log"
  row "$t + imatrix" "$out/$t.gguf" "$out/$t.log"
  bpw="$(grep -o '[0-9.]* bits per weight' "$out/$t.log" | cut -d' ' -f1)"
  "$sq" quantize -m "$model" -o "$out/$t-mixed.gguf" --type "$t" --imatrix "$out/stories15M.imatrix" \
    --budget-bpw "$bpw" --no-progress -t "$threads" 2>"$out/$t-mixed.log"
  row "mixed at $bpw ($t's other tensors) + imatrix" "$out/$t-mixed.gguf" "$out/$t-mixed.log"
done
echo
echo "imatrix: $samples windows of 256 tokens of Grimm's fairy tales (seed 0); text: first $bytes bytes of TinyStories valid-a; the mixed files' per-tensor formats are in $out/*-mixed.log"
