#!/usr/bin/env bash
# Prefill speed against llama.cpp's llama-bench, same GGUF files, same threads, in one run: squeeze bench
# (-p 128 -n 0, median of REPS) beside llama-bench pp128 (mean of REPS), one file after the other, for stories15M
# and SmolLM2-135M-Instruct at f32, f16, q8_0, q4_0 and q4_k_m (every file written by `squeeze quantize` from one
# source, so both engines read the very same bytes), at each thread count of THREADS. Prints a markdown table
# (docs/benchmarks.md) with the ratio squeeze / llama.cpp. SQ_PREFILL_INT8=1 in the environment turns on
# the integer prefill GEMM for the non-W8A8 formats (docs/architecture.md, "Prefill GEMM").
#
#   bench/prefill_vs_llamacpp.sh     (environment: THREADS, default "1 2"; REPS, default 5; MODELS, default
#                                     "stories15M smollm2"; TYPES, default "f32 f16 q8_0 q4_0 q4_k_m";
#                                     OUT, default build/prefill-bench; BASE, a second squeeze binary, e.g.
#                                     main's build, measured in the same run: the before/after columns)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${OUT:-$root/build/prefill-bench}"
reps="${REPS:-5}"
sq="$root/build/squeeze"
bin="$("$root/bench/llamacpp.sh")"
mkdir -p "$out"

# The source of each model: stories15M's fp32 llama2.c checkpoint; SmolLM2's published Q4_1 file (its f32 and
# f16 copies lie on a 4-bit grid: harmless for speed).
source_of() {
  case "$1" in
  stories15M) "$root/scripts/find-model.sh" ;;
  smollm2) "$root/scripts/get-gguf-models.sh" smollm2-135m-instruct ;;
  *) echo "error: unknown model '$1' (stories15M, smollm2)" >&2; exit 2 ;;
  esac
}

base="${BASE:-}"
if [ -n "$base" ]; then
  echo "| model | file | threads | squeeze pp128 tok/s (min-max) | BASE pp128 tok/s | llama.cpp pp128 tok/s (± sd) | squeeze / llama.cpp | BASE / llama.cpp |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|"
else
  echo "| model | file | threads | squeeze pp128 tok/s (min-max) | llama.cpp pp128 tok/s (± sd) | squeeze / llama.cpp |"
  echo "|---|---|---:|---:|---:|---:|"
fi
for m in ${MODELS:-stories15M smollm2}; do
  src="$(source_of "$m")"
  for t in ${TYPES:-f32 f16 q8_0 q4_0 q4_k_m}; do
    f="$out/$m-$t.gguf"
    case "$t" in # the float files: every matrix kept in that float type
    f32 | f16 | bf16) args=(--type q8_0 --keep "*=$t") ;;
    *) args=(--type "$t") ;;
    esac
    [ -f "$f" ] || "$sq" quantize -m "$src" -o "$f" "${args[@]}" --quiet --no-progress >/dev/null 2>&1
    for th in ${THREADS:-1 2}; do
      "$sq" bench -m "$f" -p 128 -n 0 -t "$th" --reps "$reps" --no-progress --json "$out/$m-$t-$th.bench.json" >/dev/null 2>&1
      [ -z "$base" ] || "$base" bench -m "$f" -p 128 -n 0 -t "$th" --reps "$reps" --no-progress --json "$out/$m-$t-$th.base.json" >/dev/null 2>&1
      "$bin/llama-bench" -m "$f" -p 128 -n 0 -t "$th" -r "$reps" -o json >"$out/$m-$t-$th.llama-bench.json" 2>/dev/null
      "$root/.venv/bin/python" - "$m" "$t" "$th" "$out/$m-$t-$th.bench.json" "$out/$m-$t-$th.llama-bench.json" ${base:+"$out/$m-$t-$th.base.json"} <<'PY'
import json, sys
model, t, th, sq, ll = sys.argv[1], sys.argv[2], sys.argv[3], json.load(open(sys.argv[4])), json.load(open(sys.argv[5]))
p = sq["variants"][0]["results"][0]["prefill_tok_s"]
pp = [r for r in ll if r["n_prompt"] == 128][0]["avg_ts"]
sd = [r for r in ll if r["n_prompt"] == 128][0]["stddev_ts"]
if len(sys.argv) > 6:
    b = json.load(open(sys.argv[6]))["variants"][0]["results"][0]["prefill_tok_s"]["median"]
    print(f"| {model} | {t} | {th} | {p['median']:.0f} ({p['min']:.0f}-{p['max']:.0f}) | {b:.0f} | {pp:.0f} (± {sd:.0f}) | "
          f"{p['median'] / pp:.2f} | {b / pp:.2f} |")
else:
    print(f"| {model} | {t} | {th} | {p['median']:.0f} ({p['min']:.0f}-{p['max']:.0f}) | {pp:.0f} (± {sd:.0f}) | "
          f"{p['median'] / pp:.2f} |")
PY
    done
  done
done
echo
echo "llama.cpp: llama-cpp-python $(cat "$root/build-llamacpp/version") (GGML_NATIVE); CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2); SQ_KERNELS: ${SQ_KERNELS:-unset (the best the CPU runs)}; SQ_PREFILL_INT8: ${SQ_PREFILL_INT8:-unset (0)}; load average: $(cut -d" " -f1-3 /proc/loadavg)"
