#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan; fuzz/harness.h lists them) and fuzzes every parser from the
# seeds fuzz/make_seeds.py writes. Inputs that make a target fail are left in build-fuzz/crashes/.
#
#   scripts/fuzz.sh [TARGET...]     (make fuzz, part of make test) a fixed seed and FUZZ_RUNS (default 6000)
#                                   runs per target from the seeds alone: the same inputs on every machine, so a
#                                   red result always means a regression, never a lucky draw
#   scripts/fuzz.sh --seconds N [--runs R] [--corpus DIR] [--parallel P] [--table FILE] [TARGET...]
#                                   (make fuzz-explore) exploration: every target for N seconds (or R
#                                   executions, whichever comes first) from a random seed, growing a lasting
#                                   corpus in DIR/<target> (default build-fuzz/corpus), which is then minimised
#                                   (libFuzzer -merge=1); P targets run at once (default 1). Prints, and writes
#                                   to FILE, a Markdown table of executions, time, corpus size and failures
#                                   per target.
# FUZZ_SECONDS=N in the environment selects exploration too. The exit status is non-zero when any target
# failed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

seconds=${FUZZ_SECONDS:-} runs=-1 corpus_root=build-fuzz/corpus parallel=1 table="" targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --corpus) corpus_root=$2; shift 2 ;;
    --parallel) parallel=$2; shift 2 ;;
    --table) table=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
all=$(sed -n '/^set(SQ_FUZZ_TARGETS/,/)/p' fuzz/CMakeLists.txt | tr -d '()' | sed 's/set\|SQ_FUZZ_TARGETS//g')
[ ${#targets[@]} -gt 0 ] || read -r -a targets <<<"$(echo $all)"
for t in "${targets[@]}"; do
  [[ " $(echo $all) " == *" $t "* ]] || { echo "fuzz.sh: no target $t (targets: $(echo $all))" >&2; exit 2; }
done

cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DSQ_FUZZ=ON \
  -DSQ_PYTHON="$root/.venv/bin/python" >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target $(printf 'fuzz_%s ' "${targets[@]}") >/dev/null
# the seeds are remade whenever the generator (or the test data it reads) is newer than them
data=build-fuzz/fuzz-data
if [ ! -f "$data/stamp" ] || [ -n "$(find fuzz/make_seeds.py tests/data/eval tests/data/report tests/data/chat recipes -newer "$data/stamp")" ]; then
  rm -rf "$data" && mkdir -p "$data"
  .venv/bin/python fuzz/make_seeds.py "$data" >/dev/null
  touch "$data/stamp"
fi
mkdir -p build-fuzz/crashes build-fuzz/logs
export SQ_FUZZ_FIXTURES="$root/$data/fixtures" SQ_SHARED="${SQ_SHARED:-$root/../shared}"
export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
common=(-max_len=300000 -timeout=10 -rss_limit_mb=4096 -print_final_stats=1)

# One target: prints "target|executions|seconds|corpus files|corpus KiB|failures|log".
run_target() {
  local t=$1 bin=build-fuzz/fuzz/fuzz_$1 log=build-fuzz/logs/$1.log rc=0 start end
  local crashes=build-fuzz/crashes/$t- before
  before=$(ls "$crashes"* 2>/dev/null | wc -l)
  start=$(date +%s)
  if [ -n "$seconds" ]; then
    local corpus=$corpus_root/$t
    mkdir -p "$corpus"
    # libFuzzer adds new inputs to the first folder: the lasting corpus; the seeds stay as they are
    "$bin" "$corpus" "$data/seeds/$t" -max_total_time="$seconds" -runs="$runs" "${common[@]}" \
      -artifact_prefix="$crashes" >"$log" 2>&1 || rc=$?
    if [ $rc -eq 0 ]; then # minimise: keep the smallest set of inputs with the same coverage
      rm -rf "$corpus.merging" && mkdir "$corpus.merging"
      if "$bin" -merge=1 "$corpus.merging" "$corpus" "${common[@]}" >"$log.merge" 2>&1; then
        rm -rf "$corpus" && mv "$corpus.merging" "$corpus"
      else
        rm -rf "$corpus.merging"; rc=1; cat "$log.merge" >>"$log"
      fi
    fi
  else
    local corpus=build-fuzz/corpus-fixed/$t
    rm -rf "$corpus" && mkdir -p "$corpus"
    "$bin" "$corpus" "$data/seeds/$t" -seed=1 -runs="${FUZZ_RUNS:-6000}" "${common[@]}" \
      -artifact_prefix="$crashes" >"$log" 2>&1 || rc=$?
  fi
  end=$(date +%s)
  local execs failures
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  failures=$(( $(ls "$crashes"* 2>/dev/null | wc -l) - before ))
  [ $rc -eq 0 ] || [ "$failures" -gt 0 ] || failures=1 # a failure that left no input (e.g. a broken build)
  echo "$t|${execs:-0}|$((end - start))|$(ls "$corpus" | wc -l)|$(( $(du -sk "$corpus" | cut -f1) ))|$failures|$log"
}

results=$(mktemp)
trap 'rm -f "$results"' EXIT
export -f run_target
export seconds runs corpus_root data root
for t in "${targets[@]}"; do echo "$t"; done |
  xargs -P "$parallel" -I{} bash -c "$(declare -p common); run_target {}" >>"$results"

failed=0
{
  echo "| target | executions | seconds | exec/s | corpus files | corpus KiB | failures |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
  for t in "${targets[@]}"; do
    IFS='|' read -r _ execs secs files kib fails log < <(grep "^$t|" "$results")
    echo "| $t | $execs | $secs | $(( execs / (secs > 0 ? secs : 1) )) | $files | $kib | $fails |"
  done
} >"$results.table"
cat "$results.table"
[ -z "$table" ] || cp "$results.table" "$table"
rm -f "$results.table"
while IFS='|' read -r t _ _ _ _ fails log; do
  if [ "$fails" -gt 0 ]; then
    failed=1
    echo "fuzz $t: FAILED ($log; inputs in build-fuzz/crashes/$t-*)"
    grep -m1 -A25 -E '^==[0-9]+==ERROR|runtime error|fuzz: broken promise|ERROR: libFuzzer' "$log" || tail -30 "$log"
  fi
done <"$results"
exit $failed
