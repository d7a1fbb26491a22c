#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan) and fuzzes every parser from small valid seeds made by
# fuzz/make_seeds.py. Crashing inputs are left in build-fuzz/crashes/.
#   default (make test):  a fixed seed and a fixed number of runs per target: the same inputs on every machine,
#                         so a red result always means a regression, never a lucky draw
#   FUZZ_SECONDS=N:       exploration: N seconds per target from a random seed, growing build-fuzz/fuzz-data/corpus
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${FUZZ_SECONDS:-}" ]; then
  budget=(-max_total_time="$FUZZ_SECONDS")
else
  budget=(-seed=1 -runs="${FUZZ_RUNS:-6000}")
fi
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DSQ_FUZZ=ON \
  -DSQ_PYTHON="$PWD/.venv/bin/python" >/dev/null
kinds=$(sed -n 's/^set(SQ_FUZZ_KINDS \(.*\))/\1/p' fuzz/CMakeLists.txt)
cmake --build build-fuzz -j "$(nproc)" --target $(for kind in $kinds; do echo "fuzz_$kind"; done)
data=build-fuzz/fuzz-data
for kind in $kinds; do # a target added since the seeds were made needs them made again
  [ -d "$data/seeds/$kind" ] || { rm -rf "$data/seeds" "$data/fixtures"; break; }
done
[ -d "$data/seeds" ] || .venv/bin/python fuzz/make_seeds.py "$data" >/dev/null
mkdir -p build-fuzz/crashes
export SQ_FUZZ_FIXTURES="$PWD/$data/fixtures" SQ_SHARED="${SQ_SHARED:-$PWD/../shared}"
export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1
failed=0
for target in build-fuzz/fuzz/fuzz_*; do
  kind=${target##*/fuzz_}
  # libFuzzer writes new inputs into its first folder: a lasting corpus when exploring, a fresh one otherwise
  corpus="$data/corpus/$kind"
  [ -n "${FUZZ_SECONDS:-}" ] || rm -rf "$corpus"
  mkdir -p "$corpus"
  if "$target" "$corpus" "$data/seeds/$kind" "${budget[@]}" -max_len=300000 \
       -timeout=10 -rss_limit_mb=4096 -artifact_prefix=build-fuzz/crashes/"$kind"- -print_final_stats=0 \
       >"build-fuzz/$kind.log" 2>&1; then
    echo "fuzz $kind: $(grep -o 'Done [0-9]* runs' "build-fuzz/$kind.log" | tail -1), no failures"
  else
    echo "fuzz $kind: FAILED (log build-fuzz/$kind.log)"; tail -30 "build-fuzz/$kind.log"; failed=1
  fi
done
exit $failed
