#!/usr/bin/env bash
# The main job on the default model (stories15M): inspect it, run it, compress it (GPTQ 4-bit; Wanda 2:4;
# a recipe of depth pruning then GPTQ, measured after every step), measure what that cost and bought —
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

text="$shared/data/tinystories/valid-a.txt"
pruned="$out/stories15M-wanda-2of4.gguf" recipe_out="$out/stories15M-depth1-gptq-q4_0.gguf"
rm -f "$pruned" "$recipe_out"
if [ -f "$calib" ]; then
  step "squeeze prune: Wanda 2:4 (half of every block's weights, two of every four), calibrated likewise"
  "$bin" prune -m "$model" -o "$pruned" --method wanda --nm 2:4 --calib "$calib" --calib-samples 32 \
    --calib-len 256 --no-progress
  if [ -f "$text" ]; then
    step "squeeze compress: a recipe (recipes/demo.json), measured after every step against the original"
    "$bin" compress -m "$model" -o "$recipe_out" --recipe "$here/recipes/demo.json" --calib "$calib" \
      --calib-samples 16 --calib-len 256 --eval "$text" --eval-tokens 8192 --no-progress
  fi
fi

if [ -f "$text" ]; then
  step "squeeze ppl: perplexity on TinyStories validation text (in-domain)"
  "$bin" ppl -m "$model" -f "$text" --label fp32 --json "$out/fp32-ppl.json" --no-progress
  if [ -f "$q8" ]; then
    step "squeeze ppl: the Q8_0 copy against the fp32 original (KL divergence, top-1 agreement)"
    "$bin" ppl -m "$q8" -f "$text" --ref "$model" --label q8_0 --json "$out/q8_0-ppl.json" --no-progress
  fi
  for variant in "gptq-q4_0:$gptq" "wanda-2of4:$pruned" "depth1-gptq-q4_0:$recipe_out"; do
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
