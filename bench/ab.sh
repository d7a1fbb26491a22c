#!/usr/bin/env bash
# Speed of a change: two squeeze binaries (a build of the base commit and one of the change) benchmarked on
# one model in alternating runs of `squeeze bench`, so both see the same machine conditions. Prints, per
# batch size, the median over the rounds of each run's median prefill and decode tokens/s, and new/base.
#
#   bench/ab.sh BASE_BIN NEW_BIN [MODEL]       (default model: scripts/find-model.sh, i.e. stories15M)
#   environment: ROUNDS (6), PROMPT (128), GEN (64), BATCHES (1,8), REPS (3), THREADS (all online cores)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
base="$1" new="$2"
model="${3:-$("$root/scripts/find-model.sh")}"
rounds="${ROUNDS:-6}"
out="$(mktemp -d)"
args=(bench -m "$model" -p "${PROMPT:-128}" -n "${GEN:-64}" -b "${BATCHES:-1,8}" --reps "${REPS:-3}" --warmup 1
      -t "${THREADS:-$(nproc)}")
for ((r = 1; r <= rounds; r++)); do
  echo "ab.sh: round $r/$rounds" >&2
  "$base" "${args[@]}" --json "$out/base-$r.json" >/dev/null
  "$new" "${args[@]}" --json "$out/new-$r.json" >/dev/null
done
python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def load(which):
    runs = [json.load(open(f"{out}/{which}-{r}.json"))["variants"][0]["results"] for r in range(1, rounds + 1)]
    return {res["n_seqs"]: {k: [run[i][k]["median"] for run in runs] for k in ("prefill_tok_s", "decode_tok_s")}
            for i, res in enumerate(runs[0])}
base, new = load("base"), load("new")
print(f"| batch | metric | base (tokens/s) | new (tokens/s) | new/base | per-round new/base |")
print(f"|---:|---|---:|---:|---:|---|")
for b in base:
    for k, name in (("prefill_tok_s", "prefill"), ("decode_tok_s", "decode")):
        mb, mn = statistics.median(base[b][k]), statistics.median(new[b][k])
        per = " ".join(f"{n / o:.3f}" for o, n in zip(base[b][k], new[b][k]))
        print(f"| {b} | {name} | {mb:.1f} | {mn:.1f} | {mn / mb:.3f} | {per} |")
PY
