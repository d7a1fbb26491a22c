#!/usr/bin/env bash
# Mixed precision (quantize --budget-bpw) against llama.cpp's fixed presets on the default model (stories15M),
# at the same bits per weight: each preset written with the imatrix, then the same --type (so token_embd,
# output and norms are identical) with --budget-bpw set to the preset file's bits per weight, the blocks'
# matrices chosen by sensitivity: estimated (the relative output error), and measured (--calib: the KL of
# the output with each matrix alone quantized at each candidate, on KL_SAMPLES windows of 128 tokens). Then
# at 4.5 bits per weight: uniform q4_0 against mixed, token_embd (= output) kept at q4_0 in both (stories15M's
# 32000 x 288 embedding is 60% of its weights: without that the file cannot go below about 5 bits). Each file
# against the fp32 model on TinyStories (squeeze ppl --ref). The imatrix and the KL windows come from Grimm's
# fairy tales (not the evaluation text). Prints a markdown table (docs/benchmarks.md).
#
#   bench/mixed_quality.sh [TEXT_BYTES]   (default 60000; OUT, THREADS, SAMPLES (64 windows of 256 tokens),
#                                          KL_SAMPLES (default 8), PRESETS (default "q4_0 q4_k_m q5_k_m"))
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bytes="${1:-60000}"
out="${OUT:-$root/build/mixed-quality}"
threads="${THREADS:-2}" samples="${SAMPLES:-64}" presets="${PRESETS:-q4_0 q4_k_m q5_k_m}"
kl_samples="${KL_SAMPLES:-8}"
sq="$root/build/squeeze" py="$root/.venv/bin/python"
model="$("$root/scripts/find-model.sh")"
mkdir -p "$out"
head -c "$bytes" "$root/../shared/data/tinystories/valid-a.txt" >"$out/text.txt"
"$sq" imatrix -m "$model" -f "$root/../shared/data/classics/grimms_fairy_tales.txt" -o "$out/stories15M.imatrix" \
  --calib-samples "$samples" --calib-len 256 -t "$threads" --no-progress 2>"$out/imatrix.log"
kl=(--calib "$root/../shared/data/classics/grimms_fairy_tales.txt" --calib-samples "$kl_samples" --calib-len 128 --seed 0)
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
  "$sq" quantize -m "$model" -o "$out/$t-mixed-kl.gguf" --type "$t" --imatrix "$out/stories15M.imatrix" \
    --budget-bpw "$bpw" "${kl[@]}" --no-progress -t "$threads" 2>"$out/$t-mixed-kl.log"
  row "mixed at $bpw, measured KL ($t's other tensors) + imatrix" "$out/$t-mixed-kl.gguf" "$out/$t-mixed-kl.log"
done
keep=(--keep token_embd.weight=q4_0 --imatrix "$out/stories15M.imatrix")
"$sq" quantize -m "$model" -o "$out/q4_0-4.5.gguf" --type q4_0 "${keep[@]}" --quiet --no-progress -t "$threads" \
  2>"$out/q4_0-4.5.log"
row "q4_0, token_embd q4_0 + imatrix" "$out/q4_0-4.5.gguf" "$out/q4_0-4.5.log"
"$sq" quantize -m "$model" -o "$out/mixed-4.5.gguf" --type q4_0 "${keep[@]}" --budget-bpw 4.5 --no-progress \
  -t "$threads" 2>"$out/mixed-4.5.log"
row "mixed at 4.5, token_embd q4_0 + imatrix" "$out/mixed-4.5.gguf" "$out/mixed-4.5.log"
"$sq" quantize -m "$model" -o "$out/mixed-kl-4.5.gguf" --type q4_0 "${keep[@]}" --budget-bpw 4.5 "${kl[@]}" \
  --no-progress -t "$threads" 2>"$out/mixed-kl-4.5.log"
row "mixed at 4.5, measured KL, token_embd q4_0 + imatrix" "$out/mixed-kl-4.5.gguf" "$out/mixed-kl-4.5.log"
echo
echo "imatrix: $samples windows of 256 tokens of Grimm's fairy tales (seed 0); measured KL: $kl_samples windows of 128 tokens of them (seed 0); text: first $bytes bytes of TinyStories valid-a; the mixed files' per-tensor formats are in $out/*-mixed.log"
