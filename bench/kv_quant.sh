#!/usr/bin/env bash
# KV-cache quantization (--kv-type) on the default model (stories15M): KV bytes per token, the quality cost
# against an f32 cache (squeeze ppl --ref the same model, whose reference run keeps f32 keys and values: ppl
# ratio, mean KL, top-1 agreement), and decode speed at a long context, each type against f32 in one run
# (squeeze bench --vs the same model --vs-kv-type TYPE, repetitions interleaved). The speed runs use a copy of
# the model whose GGUF context_length says 4096: stories15M was trained on 256 positions, so its text there is
# meaningless, but the arithmetic, and so the speed, is that of any model with these shapes at that context.
# Prints markdown tables (docs/benchmarks.md).
#
#   bench/kv_quant.sh [TEXT_BYTES]   (default 60000: the first 60 kB of TinyStories valid-a; OUT, THREADS,
#                                     CTX (decode context, default 2048), REPS (default 3))
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bytes="${1:-60000}"
out="${OUT:-$root/build/kv-quant}"
threads="${THREADS:-2}" ctx="${CTX:-2048}" reps="${REPS:-3}"
sq="$root/build/squeeze" py="$root/.venv/bin/python"
model="$("$root/scripts/find-model.sh")"
mkdir -p "$out"
head -c "$bytes" "$root/../shared/data/tinystories/valid-a.txt" >"$out/text.txt"
echo "| KV type | bytes per token | vs f32 | ppl | ppl ratio | mean KL (nats) | top-1 agreement |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for t in f32 f16 q8_0 q4_0; do
  "$sq" ppl -m "$model" --ref "$model" -f "$out/text.txt" --kv-type "$t" -t "$threads" --json "$out/ppl-$t.json" \
    --no-progress >/dev/null 2>&1
  "$py" - "$t" "$out/ppl-$t.json" <<'PY'
import json, sys
t, rep = sys.argv[1], json.load(open(sys.argv[2]))
# stories15M: 6 layers, keys and values of 288 values each per layer and token
per = {"f32": 4 * 288, "f16": 2 * 288, "q8_0": 9 * 34, "q4_0": 9 * 18}[t] * 2 * 6
r = rep["reference"]
print(f"| {t} | {per} | {per / (2 * 6 * 4 * 288):.3f} | {rep['ppl']:.4f} | {rep['ppl'] / r['ppl']:.5f} | "
      f"{r['kl_mean']:.6f} | {100 * r['top1_agreement']:.2f}% |")
PY
done
echo
echo "text: first $bytes bytes of TinyStories valid-a; bytes per token: 2 (keys, values) x 6 layers x 288 values"
echo
"$sq" convert -m "$model" -o "$out/long.gguf" --to gguf >/dev/null 2>&1
"$root/.venv/bin/gguf-set-metadata" --force "$out/long.gguf" llama.context_length 4096 >/dev/null 2>&1
echo "| KV type B | decode tok/s f32 (A) | decode tok/s B | B/A | KV cache MiB A | KV cache MiB B |"
echo "|---|---:|---:|---:|---:|---:|"
for t in f16 q8_0 q4_0; do
  "$sq" bench -m "$out/long.gguf" --vs "$out/long.gguf" --vs-kv-type "$t" -p "$((ctx - 64))" -n 64 \
    --reps "$reps" --warmup 1 -t "$threads" --json "$out/bench-$t.json" --no-progress >/dev/null 2>&1
  "$py" - "$t" "$out/bench-$t.json" <<'PY'
import json, sys
t, rep = sys.argv[1], json.load(open(sys.argv[2]))
a, b = (v["results"][0] for v in rep["variants"])
print(f"| {t} | {a['decode_tok_s']['median']:.1f} | {b['decode_tok_s']['median']:.1f} | "
      f"{b['decode_tok_s']['median'] / a['decode_tok_s']['median']:.3f} | {a['kv_bytes'] / 2**20:.2f} | "
      f"{b['kv_bytes'] / 2**20:.2f} |")
PY
done
echo
echo "decode: $((ctx - 64)) prompt tokens then 64 decode steps (contexts $((ctx - 63))..$ctx), batch 1, $threads threads, median of $reps interleaved repetitions; $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
