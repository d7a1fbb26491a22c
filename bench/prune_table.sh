#!/usr/bin/env bash
# The pruning table of docs/benchmarks.md: every pruning method at two strengths on one model, each variant's
# parameters (all and non-zero), perplexity on held-out text, KL divergence and top-1 agreement against the
# original (squeeze ppl --ref), and decode / prefill tokens/s against the original in the same run (squeeze
# bench --vs: repetitions interleaved). Prints a Markdown table.
#
#   bench/prune_table.sh [MODEL [CALIB_TEXT [EVAL_TEXT]]]
#     defaults: scripts/find-model.sh (stories15M), ../shared Grimms' fairy tales (calibration), the first
#     EVAL_BYTES (100000) bytes of ../shared TinyStories valid-a.txt (evaluation)
#   environment: THREADS (all online cores), CALIB_SAMPLES (32), CALIB_LEN (256), PROMPT (64), GEN (64),
#                REPS (5), WORK (a fresh temporary folder), ONLY (a regex: run only the variants it matches)
set -euo pipefail
# shellcheck source=bench/quality_args.sh
source "$(dirname "$0")/quality_args.sh"
cal=(--calib "$calib" --calib-samples "${CALIB_SAMPLES:-32}" --calib-len "${CALIB_LEN:-256}")

# name | prune arguments
variants=(
  "magnitude 50%|--method magnitude --sparsity 0.5"
  "magnitude 2:4|--method magnitude --nm 2:4"
  "wanda 50%|--method wanda --sparsity 0.5 ${cal[*]}"
  "wanda 2:4|--method wanda --nm 2:4 ${cal[*]}"
  "sparsegpt 50%|--method sparsegpt --sparsity 0.5 ${cal[*]}"
  "sparsegpt 2:4|--method sparsegpt --nm 2:4 ${cal[*]}"
  "wanda 70%|--method wanda --sparsity 0.7 ${cal[*]}"
  "wanda 70% + OWL 0.08|--method wanda --sparsity 0.7 --owl 0.08 ${cal[*]}"
  "sparsegpt 70%|--method sparsegpt --sparsity 0.7 ${cal[*]}"
  "sparsegpt 70% + OWL 0.08|--method sparsegpt --sparsity 0.7 --owl 0.08 ${cal[*]}"
  "width heads 1/6, ffn 1/8|--method width --heads 0.167 --ffn 0.125 ${cal[*]}"
  "width heads 1/3, ffn 1/4|--method width --heads 0.34 --ffn 0.25 ${cal[*]}"
  "depth ppl -1 block|--method depth --remove 1 --criterion ppl --calib $calib"
  "depth ppl -2 blocks|--method depth --remove 2 --criterion ppl --calib $calib"
  "lowrank SVD, 0.9 of the linear parameters|--method lowrank --param-ratio 0.9"
  "lowrank ASVD, 0.9 of the linear parameters|--method asvd --param-ratio 0.9 ${cal[*]}"
  "lowrank SVD, 0.8 of the linear parameters|--method lowrank --param-ratio 0.8"
  "lowrank ASVD, 0.8 of the linear parameters|--method asvd --param-ratio 0.8 ${cal[*]}"
  "lowrank SVD, 0.7 of the linear parameters|--method lowrank --param-ratio 0.7"
  "lowrank ASVD, 0.7 of the linear parameters|--method asvd --param-ratio 0.7 ${cal[*]}"
)
"$sq" ppl -m "$model" -f "$eval_text" "${threads[@]}" --no-progress --json "$work/dense-ppl.json" >/dev/null
i=0
for v in "${variants[@]}"; do
  name="${v%%|*}" args="${v#*|}"
  [[ -n "${ONLY:-}" && ! "$name" =~ $ONLY ]] && continue
  i=$((i + 1))
  out="$work/v$i.gguf"
  echo "prune_table.sh: $name" >&2
  # shellcheck disable=SC2086 # args are words
  "$sq" prune -m "$model" -o "$out" $args "${threads[@]}" --no-progress --scores-json "$work/v$i-prune.json" >/dev/null
  "$sq" ppl -m "$out" -f "$eval_text" --ref "$model" "${threads[@]}" --no-progress --json "$work/v$i-ppl.json" >/dev/null
  "$sq" bench -m "$model" --vs "$out" -p "${PROMPT:-64}" -n "${GEN:-64}" --reps "${REPS:-5}" "${threads[@]}" \
    --no-progress --json "$work/v$i-bench.json" >/dev/null
  echo "$name" >"$work/v$i.name"
done
python3 - "$work" "$i" <<'PY'
import json, sys
work, n = sys.argv[1], int(sys.argv[2])
load = lambda p: json.load(open(f"{work}/{p}"))
dense = load("dense-ppl.json")
print("| variant | params | non-zero | ppl | KL vs original (nats/token) | top-1 agreement | decode tok/s vs original | prefill tok/s vs original |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
first = load("v1-prune.json")["before"]
print(f"| original | {first['params'] / 1e6:.2f}M | {first['nonzero'] / 1e6:.2f}M | {dense['ppl']:.3f} | 0 | 100% | 1 | 1 |")
for i in range(1, n + 1):
    name = open(f"{work}/v{i}.name").read().strip()
    pr, pp, b = load(f"v{i}-prune.json")["after"], load(f"v{i}-ppl.json"), load(f"v{i}-bench.json")
    res = b["variants"]
    ratio = lambda k: res[1]["results"][0][k]["median"] / res[0]["results"][0][k]["median"]
    print(f"| {name} | {pr['params'] / 1e6:.2f}M | {pr['nonzero'] / 1e6:.2f}M | {pp['ppl']:.3f} | "
          f"{pp['reference']['kl_mean']:.4f} | {100 * pp['reference']['top1_agreement']:.1f}% | "
          f"{ratio('decode_tok_s'):.3f} | "
          f"{ratio('prefill_tok_s'):.3f} |")
PY
