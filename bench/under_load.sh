#!/usr/bin/env bash
# Decode speed idle and under a fixed background load: squeeze against llama.cpp's llama-bench, the same GGUF
# file, threads and tokens, in one run. The load is LOAD busy-looping processes at nice 0, started and
# stopped by this script around each loaded measurement. Idle and loaded runs alternate for ROUNDS rounds
# (squeeze and llama-bench take turns going first), so both tools and both conditions share the machine's
# drift. Each figure is the median over the rounds of each run's median decode tokens/s; "loaded / idle" is
# the share of its idle speed a tool keeps. Prints a Markdown section for docs/benchmarks.md.
#
#   bench/under_load.sh [MODEL]      (default: scripts/find-model.sh, i.e. stories15M; converted to GGUF with
#                                     `squeeze convert --to gguf` unless it is one)
#   environment: SQ_BIN (build/squeeze), LLAMA_BENCH (llama-bench; default: built by bench/llamacpp.sh),
#                GEN (128 decode tokens), REPS (5), ROUNDS (3), THREADS (all online cores), LOAD (busy loops;
#                default: one per online core), OUT (folder for the reports; default: a temporary one)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
model="${1:-$("$root/scripts/find-model.sh")}"
bin="${SQ_BIN:-$root/build/squeeze}"
gen="${GEN:-128}" reps="${REPS:-5}" rounds="${ROUNDS:-3}" threads="${THREADS:-$(nproc)}" load="${LOAD:-$(nproc)}"
out="${OUT:-$(mktemp -d)}"
mkdir -p "$out"

[ -x "$bin" ] || { echo "under_load.sh: $bin not found: build first (make build)" >&2; exit 1; }
[ -e "$model" ] || { echo "under_load.sh: model $model not found (scripts/get-model.sh fetches stories15M)" >&2; exit 1; }
llama="${LLAMA_BENCH:-$("$root/bench/llamacpp.sh")/llama-bench}"
[ -x "$llama" ] || { echo "under_load.sh: llama-bench not found at $llama" >&2; exit 1; }

gguf="$model"
if [[ "$model" != *.gguf ]]; then
  name="$(basename "${model%/}")"
  gguf="$out/${name%.*}.gguf"
  [ -s "$gguf" ] || "$bin" convert -m "$model" -o "$gguf" --to gguf >&2
fi

busy=()
stop_load() {
  for pid in "${busy[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${busy[@]}"; do wait "$pid" 2>/dev/null || true; done
  busy=()
}
trap stop_load EXIT
start_load() {
  for ((i = 0; i < load; i++)); do
    nice -n 0 sh -c 'while :; do :; done' &
    busy+=($!)
  done
  sleep 0.5 # the scheduler has spread them before the measurement starts
}

# llama-bench's KV cache default is f16: squeeze's is set to match. -p 0: decoding alone, from one token.
squeeze_run() {
  "$bin" bench -m "$gguf" -p 0 -n "$gen" --reps "$reps" --warmup 1 -t "$threads" --kv-type f16 --no-progress \
    --json "$1" >/dev/null
}
llama_run() { "$llama" -m "$gguf" -p 0 -n "$gen" -r "$reps" -t "$threads" -o json >"$1" 2>/dev/null; }

loadavg() { cut -d' ' -f1 /proc/loadavg; }
echo "round,condition,tool,loadavg_before" >"$out/loadavg.csv"
for ((r = 1; r <= rounds; r++)); do
  for cond in idle loaded; do
    [ "$cond" = loaded ] && start_load
    tools=(squeeze llama)
    ((r % 2 == 0)) && tools=(llama squeeze)
    for tool in "${tools[@]}"; do
      echo "under_load.sh: round $r/$rounds, $cond, $tool (load average $(loadavg))" >&2
      echo "$r,$cond,$tool,$(loadavg)" >>"$out/loadavg.csv"
      "${tool}_run" "$out/$tool-$cond-$r.json"
    done
    [ "$cond" = loaded ] && stop_load
  done
done

cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)"
commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
python3 - "$out" "$rounds" <<EOF
import csv, json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def squeeze(path):
    return json.load(open(path))["variants"][0]["results"][0]["decode_tok_s"]["median"]
def llama(path):
    return statistics.median(json.load(open(path))[0]["samples_ts"])
read = {"squeeze": squeeze, "llama": llama}
names = {"squeeze": "squeeze", "llama": "llama.cpp (llama-bench)"}
print("## Decode speed under load: squeeze against llama.cpp\n")
print("Measured on ${cpu:-an unknown CPU} (${threads} threads of $(nproc) online cores), commit ${commit}, with\n")
print("    bench/under_load.sh $model  (GEN=$gen REPS=$reps ROUNDS=$rounds LOAD=$load)\n")
print("Model file: \`$gguf\` for both tools; $gen decode tokens from an empty context (squeeze bench -p 0 -n $gen "
      "--kv-type f16; llama-bench -p 0 -n $gen), $reps repetitions per run; loaded: $load busy-looping processes "
      "(nice 0) beside the run. Each figure is the median over $rounds alternating rounds of each run's median "
      "decode tokens/s, with the range over rounds.\n")
print("| tool | idle tokens/s | loaded tokens/s | loaded / idle |")
print("|---|---:|---:|---:|")
for tool in ("squeeze", "llama"):
    fig = {c: [read[tool](f"{out}/{tool}-{c}-{r}.json") for r in range(1, rounds + 1)] for c in ("idle", "loaded")}
    med = {c: statistics.median(v) for c, v in fig.items()}
    cell = lambda c: f"{med[c]:,.0f} ({min(fig[c]):,.0f}–{max(fig[c]):,.0f})"
    print(f"| {names[tool]} | {cell('idle')} | {cell('loaded')} | {med['loaded'] / med['idle']:.0%} |")
loads = [float(row["loadavg_before"]) for row in csv.DictReader(open(f"{out}/loadavg.csv"))]
print(f"\n1-minute load average before the runs (this script's own load included once it is running): "
      f"{min(loads):.2f} to {max(loads):.2f}.")
EOF
