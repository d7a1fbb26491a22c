#!/usr/bin/env bash
# Recovery after depth pruning (docs/benchmarks.md): the model with K blocks removed by the ppl criterion
# (Shortened LLaMA), then LoRA-finetuned by distillation from the original on data the original generates
# (squeeze finetune --loss kd --data generate: nothing from the evaluation text), merged. For the original,
# each pruned model and each recovered one: perplexity on held-out text, KL divergence and top-1 agreement
# against the original (squeeze ppl --ref), the share of the pruned model's gap the recovery closed, the
# training tokens/s, and the recovered (merged) model's decode / prefill speed against the pruned model's in
# the same run (squeeze bench --vs). Prints a Markdown table.
#
#   bench/recovery.sh [MODEL [CALIB_TEXT [EVAL_TEXT]]]
#     defaults: scripts/find-model.sh (stories15M), ../shared Grimms' fairy tales (block scores), the first
#     EVAL_BYTES (100000) bytes of ../shared TinyStories valid-a.txt (evaluation only)
#   environment: REMOVE ("1 2": blocks removed per variant), STEPS (120), BATCH (4), SEQ (64), LR (1e-3),
#                RANK (8), ALPHA (16), GEN_SAMPLES (256), THREADS (all online cores), PROMPT (64), GEN (64),
#                REPS (5), WORK (a fresh temporary folder)
set -euo pipefail
# shellcheck source=bench/quality_args.sh
source "$(dirname "$0")/quality_args.sh"
"$sq" ppl -m "$model" -f "$eval_text" "${threads[@]}" --no-progress --json "$work/original-ppl.json" >/dev/null
for k in ${REMOVE:-1 2}; do
  echo "recovery.sh: removing $k block(s)" >&2
  pruned="$work/pruned-$k.gguf" recovered="$work/recovered-$k.gguf"
  "$sq" prune -m "$model" -o "$pruned" --method depth --remove "$k" --criterion ppl --calib "$calib" \
    "${threads[@]}" --no-progress >/dev/null
  "$sq" finetune -m "$pruned" --teacher "$model" -o "$work/adapter-$k" --loss kd --data generate \
    --gen-samples "${GEN_SAMPLES:-256}" --steps "${STEPS:-120}" --batch "${BATCH:-4}" --seq "${SEQ:-64}" \
    --lr "${LR:-1e-3}" --lora-rank "${RANK:-8}" --lora-alpha "${ALPHA:-16}" --merge "$recovered" "${threads[@]}" \
    --no-progress >"$work/finetune-$k.txt" 2>"$work/finetune-$k.log"
  for v in pruned recovered; do
    "$sq" ppl -m "$work/$v-$k.gguf" -f "$eval_text" --ref "$model" "${threads[@]}" --no-progress \
      --json "$work/$v-$k-ppl.json" >/dev/null
  done
  "$sq" bench -m "$pruned" --vs "$recovered" -p "${PROMPT:-64}" -n "${GEN:-64}" --reps "${REPS:-5}" \
    "${threads[@]}" --no-progress --json "$work/bench-$k.json" >/dev/null
done
python3 - "$work" "${REMOVE:-1 2}" <<'PY'
import json, re, sys
work, ks = sys.argv[1], sys.argv[2].split()
load = lambda p: json.load(open(f"{work}/{p}"))
orig = load("original-ppl.json")["ppl"]
print("| model | ppl | KL vs original (nats/token) | top-1 agreement | gap closed (ppl / KL) | training tok/s | decode tok/s vs pruned | prefill tok/s vs pruned |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
print(f"| original | {orig:.3f} | 0 | 100% | | | | |")
for k in ks:
    p, r = load(f"pruned-{k}-ppl.json"), load(f"recovered-{k}-ppl.json")
    kl = lambda x: x["reference"]["kl_mean"]
    top1 = lambda x: 100 * x["reference"]["top1_agreement"]
    tps = re.search(r"\(([0-9.]+) tokens/s\)", open(f"{work}/finetune-{k}.txt").read()).group(1)
    res = load(f"bench-{k}.json")["variants"]
    ratio = lambda key: res[1]["results"][0][key]["median"] / res[0]["results"][0][key]["median"]
    print(f"| {k} block(s) removed | {p['ppl']:.3f} | {kl(p):.4f} | {top1(p):.1f}% | | | 1 | 1 |")
    gap_ppl = (p["ppl"] - r["ppl"]) / (p["ppl"] - orig)
    gap_kl = (kl(p) - kl(r)) / kl(p)
    print(f"| {k} removed + LoRA KD | {r['ppl']:.3f} | {kl(r):.4f} | {top1(r):.1f}% | "
          f"{100 * gap_ppl:.0f}% / {100 * gap_kl:.0f}% | {tps} | {ratio('decode_tok_s'):.3f} | {ratio('prefill_tok_s'):.3f} |")
PY
