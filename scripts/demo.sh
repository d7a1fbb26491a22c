#!/usr/bin/env bash
# The main job on the default model (stories15M): inspect it, run it, compress it (GPTQ 4-bit; one block
# removed by the ppl criterion, then a short LoRA recovery; a recipe of Wanda 2:4 then GPTQ, measured after
# every step), measure what that cost and bought —
# perplexity on its in-domain text, KL divergence against the original, zero-shot accuracy, speed and memory
# —, serve it over OpenAI's API, and combine the measurements into a report.
# When ../shared also holds the Q8_0 GGUF copy of the model, it is measured as a compressed variant against
# the fp32 original: KL divergence and top-1 agreement, perplexity ratio, speed ratio in the same run.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
"$here/scripts/get-model.sh"
model="$("$here/scripts/find-model.sh")"
shared="$here/../shared"
q8="$shared/models/stories15M-q8_0.gguf"
bin="$here/build/squeeze"
out="$here/build/demo"
mkdir -p "$out"
rm -f "$out"/*.json

step() { printf '\n== %s\n' "$*"; }

step "squeeze info -m $model"
"$bin" info -m "$model" | head -16

step "squeeze run (greedy, 128 tokens)"
"$bin" run -m "$model" -p "Once upon a time" -n 128 --temp 0

calib="$shared/data/classics/grimms_fairy_tales.txt"
gptq="$out/stories15M-gptq-q4_0.gguf"
rm -f "$gptq"
if [ -f "$calib" ]; then
  step "squeeze quantize: 4-bit GPTQ (q4_0), calibrated on Grimm's fairy tales (not the evaluation text)"
  "$bin" quantize -m "$model" -o "$gptq" --type q4_0 --method gptq --calib "$calib" --calib-samples 32 \
    --calib-len 256 --quiet --no-progress
fi
depth="$out/stories15M-depth1.gguf" recovered="$out/stories15M-depth1-lora.gguf"
rm -f "$depth" "$recovered"
if [ -f "$calib" ]; then
  step "squeeze prune: one block removed (Shortened LLaMA, ppl criterion on Grimm's fairy tales)"
  "$bin" prune -m "$model" -o "$depth" --method depth --remove 1 --calib "$calib" --no-progress | grep -E "block|blocks"
  step "squeeze finetune: a short LoRA recovery, distilled from the original on text it generates itself"
  "$bin" finetune -m "$depth" --teacher "$model" -o "$out/depth1-adapter" --loss kd --data generate \
    --gen-samples 64 --steps 40 --batch 4 --seq 64 --lr 1e-3 --warmup 4 --merge "$recovered" --no-progress \
    2> >(grep -E "step (10|20|30|40)/" >&2)
fi

text="$shared/data/tinystories/valid-a.txt"
recipe_out="$out/stories15M-wanda24-gptq-q4_0.gguf"
rm -f "$recipe_out"
if [ -f "$calib" ] && [ -f "$text" ]; then
  step "squeeze compress: a recipe (recipes/demo.json: Wanda 2:4, then GPTQ q4_0), measured after every step"
  "$bin" compress -m "$model" -o "$recipe_out" --recipe "$here/recipes/demo.json" --calib "$calib" \
    --calib-samples 16 --calib-len 256 --eval "$text" --eval-tokens 8192 --no-progress
fi

if [ -f "$text" ]; then
  # the first quarter of the validation text (about 27,000 tokens) keeps the six evaluations below brief
  head -c 100000 "$text" >"$out/tinystories-valid-a-100k.txt"
  text="$out/tinystories-valid-a-100k.txt"
  step "squeeze ppl: perplexity on TinyStories validation text (in-domain; its first 100 KB)"
  "$bin" ppl -m "$model" -f "$text" --label fp32 --json "$out/fp32-ppl.json" --no-progress
  if [ -f "$q8" ]; then
    step "squeeze ppl: the Q8_0 copy against the fp32 original (KL divergence, top-1 agreement)"
    "$bin" ppl -m "$q8" -f "$text" --ref "$model" --label q8_0 --json "$out/q8_0-ppl.json" --no-progress
  fi
  for variant in "gptq-q4_0:$gptq" "wanda24-gptq-q4_0:$recipe_out" \
    "depth1:$depth" "depth1+lora:$recovered"; do
    label=${variant%%:*} file=${variant#*:}
    [ -f "$file" ] || continue
    step "squeeze ppl: $label against the fp32 original (KL divergence, top-1 agreement)"
    "$bin" ppl -m "$file" -f "$text" --ref "$model" --label "$label" --json "$out/$label-ppl.json" --no-progress
  done
else
  echo "(no TinyStories text in $shared/data: skipping perplexity)"
fi

if [ -d "$shared/data/tasks" ]; then
  step "squeeze eval: zero-shot tasks (first 200 items each)"
  "$bin" eval -m "$model" --tasks piqa,arc_easy,hellaswag,lambada --limit 200 --label fp32 \
    --json "$out/fp32-eval.json" --no-progress
fi

step "squeeze bench: time to first token, time per output token, throughput, memory"
if [ -f "$q8" ]; then
  "$bin" bench -m "$model" --label fp32 --vs "$q8" --vs-label q8_0 -p 128 -n 64 -b 1,4 --reps 3 \
    --json "$out/bench.json"
else
  "$bin" bench -m "$model" --label fp32 -p 128 -n 64 -b 1,4 --reps 3 --json "$out/bench.json"
fi

served="$model"
[ -f "$gptq" ] && served="$gptq"
step "squeeze serve: $(basename "$served") behind the OpenAI-compatible server, driven by the official openai client"
"$here/.venv/bin/python" "$here/scripts/demo_serve.py" "$bin" "$served"

step "squeeze report: quality against size and speed"
"$bin" report "$out"/*.json -o "$out/report.md" -o "$out/report.svg" --title "stories15M"
cat "$out/report.md"
echo
echo "plot: $out/report.svg"
