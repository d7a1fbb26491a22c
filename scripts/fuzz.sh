#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan) and fuzzes every parser for FUZZ_SECONDS each (default 15),
# starting from small valid seeds made by fuzz/make_seeds.py. Crashing inputs are left in build-fuzz/crashes/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-15}"
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DSQ_FUZZ=ON \
  -DSQ_PYTHON="$PWD/.venv/bin/python" >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target $(sed -n 's/^set(SQ_FUZZ_KINDS \(.*\))/\1/p' fuzz/CMakeLists.txt | sed 's/\([a-z_0-9]*\)/fuzz_\1/g')
data=build-fuzz/fuzz-data
[ -d "$data/seeds" ] || .venv/bin/python fuzz/make_seeds.py "$data" >/dev/null
mkdir -p build-fuzz/crashes
export SQ_FUZZ_FIXTURES="$PWD/$data/fixtures" SQ_SHARED="${SQ_SHARED:-$PWD/../shared}"
export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1
failed=0
for target in build-fuzz/fuzz/fuzz_*; do
  kind=${target##*/fuzz_}
  mkdir -p "$data/corpus/$kind"
  if "$target" "$data/corpus/$kind" "$data/seeds/$kind" -max_total_time="$seconds" -max_len=300000 \
       -timeout=10 -rss_limit_mb=4096 -artifact_prefix=build-fuzz/crashes/"$kind"- -print_final_stats=0 \
       >"build-fuzz/$kind.log" 2>&1; then
    echo "fuzz $kind: $(grep -o 'Done [0-9]* runs' "build-fuzz/$kind.log" | tail -1), no failures"
  else
    echo "fuzz $kind: FAILED (log build-fuzz/$kind.log)"; tail -30 "build-fuzz/$kind.log"; failed=1
  fi
done
exit $failed
