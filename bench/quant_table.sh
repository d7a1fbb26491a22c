# Sourced by bench/w8a8_quality.sh, bench/int4_quality.sh and bench/gptq_kquant_quality.sh after they set NAME
# (their output folder's default name under build/): the shared set-up and the quality table.
#   arguments [TEXT_BYTES] (default 50000); environment OUT (default build/NAME), THREADS (default 2)
#   sets root, bytes, out, threads, sq, calib; writes $out/text.txt (the first TEXT_BYTES of TinyStories
#   valid-a, whole lines) and $out/f32.gguf (the default model)
#   quality_table FILE...  ppl, KL and top-1 of each $out/FILE.gguf against f32.gguf on text.txt, as a
#                          markdown table (bits per weight and quantize seconds from FILE.quant.json if any)
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bytes="${1:-50000}"
out="${OUT:-$root/build/$NAME}"
threads="${THREADS:-2}"
sq="${SQ:-$root/build/squeeze}" # SQ: another binary, e.g. a copy while build/ changes
calib="$root/../shared/data/classics/grimms_fairy_tales.txt"
mkdir -p "$out"
head -c "$bytes" "$root/../shared/data/tinystories/valid-a.txt" | sed '$d' >"$out/text.txt" # whole lines
"$sq" convert -m "$("$root/scripts/find-model.sh")" -o "$out/f32.gguf" --to gguf >/dev/null 2>&1

quality_table() {
  echo "| file | bits per weight | ppl | ppl ratio | mean KL (nats) | top-1 agreement | quantize s |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  local f
  for f in "$@"; do
    "$sq" ppl -m "$out/$f.gguf" --ref "$out/f32.gguf" -f "$out/text.txt" -t "$threads" --json "$out/$f.ppl.json" \
      --no-progress >/dev/null 2>&1
    "$root/.venv/bin/python" - "$out/$f" <<'PY'
import json, os, sys
base = sys.argv[1]
rep = json.load(open(base + ".ppl.json"))
r = rep["reference"]
qs = json.load(open(base + ".quant.json")) if os.path.exists(base + ".quant.json") else None
bpw = f"{qs['bits_per_weight']:.2f}" if qs else "32.00"
secs = f"{qs['seconds']:.1f}" if qs else "—"
print(f"| {os.path.basename(base)}.gguf | {bpw} | {rep['ppl']:.4f} | {rep['ppl'] / r['ppl']:.4f} | "
      f"{r['kl_mean']:.5f} | {100 * r['top1_agreement']:.2f}% | {secs} |")
PY
  done
}
