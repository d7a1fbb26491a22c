#!/usr/bin/env bash
# Long fuzzing on a bigger machine that has no clang: pack the libFuzzer targets that scripts/fuzz.sh built here
# (with every shared library they load, the dynamic loader included, their seeds, fixtures, lasting corpus and
# the two tokenizers tokenize_text reads), then run them there, many processes at once.
#
#   bench/fuzz_remote.sh pack DIR TARGET...   here, after scripts/fuzz.sh (or make fuzz): writes DIR/fp.tar.xz
#   P=4 RUNS=1000000 SECS=540 bench/fuzz_remote.sh run DIR TARGET...
#                                             there: each target in P processes (libFuzzer seeds 1..P) sharing
#                                             one corpus folder, each stopping after RUNS/P executions or SECS
#                                             seconds; prints one line per process; logs and any failing
#                                             inputs go to $OUT (or DIR/out)/logs.tgz
set -euo pipefail
mode=${1:?pack or run}; dir=${2:?folder}; shift 2
[ $# -gt 0 ] || { echo "fuzz_remote.sh: name the targets" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
case "$mode" in
pack)
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp"/bin "$tmp"/lib "$tmp"/corpus "$tmp"/shared/models "$tmp"/shared/tokenizers/qwen3 "$dir"
  for t in "$@"; do
    cp "$root/build-fuzz/fuzz/fuzz_$t" "$tmp/bin/"
    mkdir -p "$tmp/corpus/$t" && cp -r "$root/build-fuzz/corpus/$t/." "$tmp/corpus/$t/" 2>/dev/null || true
  done
  ldd "$root/build-fuzz/fuzz/fuzz_$1" | awk '/=>/ {print $3} /ld-linux/ {print $1}' | xargs -I{} cp -L {} "$tmp/lib/"
  cp -r "$root/build-fuzz/fuzz-data/fixtures" "$root/build-fuzz/fuzz-data/seeds" "$tmp/"
  cp "$root/../shared/models/tokenizer.model" "$tmp/shared/models/"
  cp "$root/../shared/tokenizers/qwen3/tokenizer.json" "$tmp/shared/tokenizers/qwen3/"
  tar -C "$tmp" -cJf "$dir/fp.tar.xz" . && ls -l "$dir/fp.tar.xz" ;;
run)
  work=$(mktemp -d) out=${OUT:-$dir/out}; mkdir -p "$out"
  tar -C "$work" -xJf "$dir/fp.tar.xz" && cd "$work"
  export SQ_FUZZ_FIXTURES=$work/fixtures SQ_SHARED=$work/shared
  export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
  mkdir -p crashes logs
  P=${P:-1}; R=$((${RUNS:-1000000} / P))
  for t in "$@"; do for p in $(seq 1 "$P"); do
    (s=$(date +%s); rc=0
     lib/ld-linux-x86-64.so.2 --library-path lib "bin/fuzz_$t" "corpus/$t" "seeds/$t" -seed="$p" -runs="$R" \
       -max_total_time="${SECS:-540}" -max_len=300000 -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
       -artifact_prefix="crashes/$t-" >"logs/$t.$p.log" 2>&1 || rc=$?
     echo "$t.$p rc=$rc seconds=$(($(date +%s) - s)) executions=$(grep -o 'number_of_executed_units: [0-9]*' \
       "logs/$t.$p.log" | awk '{print $2}')" >"logs/$t.$p.sum") &
  done; done
  wait
  cat logs/*.sum; tar -czf "$out/logs.tgz" logs crashes
  ! grep -q -v 'rc=0 ' logs/*.sum ;;
*) echo "fuzz_remote.sh: pack or run, not $mode" >&2; exit 2 ;;
esac
