#!/usr/bin/env bash
# Every sq_error * a caller receives is freed, returned or stored on every path. Checks every C file a build
# compiles (BUILD/compile_commands.json: src/, tools/, tests/, fuzz/, bench/) and the headers they include:
#  1. declarations, on the AST (clang-query): every function returning sq_error * is SQ_NODISCARD, so that the
#     compilers (-Werror) reject a call that drops the error; every function taking a non-const sq_error *
#     says SQ_TAKES_ERROR; and (on the sources) every function pointer returning one is SQ_NODISCARD;
#  2. paths, with clang's static analyzer (clang-tidy's clang-analyzer-unix.Malloc in optimistic mode, which
#     follows the ownership that SQ_NODISCARD and SQ_TAKES_ERROR declare under the analyzer, squeeze.h): no
#     path loses an error (or any other allocation), frees one twice or uses one after freeing it.
#
#   scripts/check-errors.sh BUILD      the error_paths test
#   scripts/check-errors.sh --self-test  the error_paths_self_test test: the checks find every mistake planted
#                                      in tests/data/error_paths/ and nothing in its correct code
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
for tool in clang-query clang-tidy jq perl; do
  command -v $tool >/dev/null || { echo "check-errors: $tool is missing (scripts/install-deps.sh)" >&2; exit 1; }
done

err_ptr='pointerType(pointee(hasUnqualifiedDesugaredType(recordType(hasDeclaration(recordDecl(hasName("sq_error")))))))'
# "file:line: what" for each declaration that lacks its attribute, in files under the repository
declarations() { # DB_DIR FILE...
  local db=$1
  shift
  clang-query -p "$db" --extra-arg=-DSQ_CHECK_DECLARATIONS \
    -c "match functionDecl(returns($err_ptr), unless(hasAttr(\"attr::WarnUnusedResult\")))" \
    -c "match functionDecl(hasAnyParameter(allOf(hasType($err_ptr), unless(hasType(pointsTo(isConstQualified()))))),
                           unless(hasAttr(\"attr::Ownership\")))" \
    "$@" 2>/dev/null |
    sed -n "s|^\($root/[^:]*\):\([0-9]*\):[0-9]*: note: \"root\" binds here|\1:\2: sq_error * in a declaration without SQ_NODISCARD / SQ_TAKES_ERROR|p" |
    sort -u
}

# function pointers returning sq_error * (clang-query has no matcher for a function type's result)
pointer_declarations() { # FILE...
  perl -0777 -ne '
    while (/(SQ_NODISCARD\s+)?sq_error\s*\*\s*\(\s*\*\s*\w+\s*\)/g) {
      next if $1;
      my $line = 1 + (() = substr($_, 0, $-[0]) =~ /\n/g);
      print "$ARGV:$line: function pointer returning sq_error * without SQ_NODISCARD\n";
    }' "$@"
}

tidy_config="{Checks: '-*,clang-analyzer-unix.Malloc', CheckOptions: [{key: 'clang-analyzer-unix.DynamicMemoryModeling:Optimistic', value: 'true'}]}"
# the analyzer's reports ("file:line:col: warning: ..." with the path that leads there)
paths() { # DB_DIR FILE...
  local db=$1
  shift
  printf '%s\n' "$@" | xargs -r -P "$(nproc)" -n 4 clang-tidy -p "$db" --quiet --config="$tidy_config" \
    --header-filter="^$root/(src|include|tools|tests|fuzz|bench)/" 2>/dev/null || true
}

if [ "${1:-}" = --self-test ]; then
  dir=tests/data/error_paths
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  jq -n --arg root "$root" '[("mistakes.c", "declarations.c") | {directory: $root,
     file: "\($root)/tests/data/error_paths/\(.)",
     command: "clang -std=c11 -D_GNU_SOURCE -I\($root)/include -I\($root)/src -c \($root)/tests/data/error_paths/\(.)"}]' \
    >"$tmp/compile_commands.json"
  status=0
  # the analyzer: a report in every bad_* function, none in a good_* one
  paths "$tmp" "$root/$dir/mistakes.c" >"$tmp/paths.out"
  reported=$(sed -n "s|^$root/$dir/mistakes.c:\([0-9]*\):[0-9]*: warning: .*|\1|p" "$tmp/paths.out" | sort -un |
    while read -r line; do
      awk -v l="$line" 'NR <= l && /^[a-z].*[ *](bad|good)_[a-z_]*\(/ { f = $0 } END { sub(/\(.*/, "", f); sub(/.*[ *]/, "", f); print f }' \
        "$dir/mistakes.c"
    done | sort -u)
  planted=$(sed -n 's/^[a-z].*[ *]\(bad_[a-z_]*\)(.*/\1/p' "$dir/mistakes.c" | sort -u)
  if [ "$reported" != "$planted" ]; then
    echo "check-errors self-test: the analyzer reported in: $(echo $reported)"
    echo "  but the planted mistakes are in: $(echo $planted)"
    cat "$tmp/paths.out"
    status=1
  fi
  # the declaration checks: exactly the lines marked "undeclared"
  found=$({ declarations "$tmp" "$root/$dir/declarations.c"; pointer_declarations "$root/$dir/declarations.c"; } | sed -n "s|^$root/$dir/declarations.c:\([0-9]*\):.*|\1|p" |
    sort -un)
  marked=$(grep -n 'undeclared \*/' "$dir/declarations.c" | cut -d: -f1 | sort -un)
  if [ "$found" != "$marked" ]; then
    echo "check-errors self-test: declarations reported on lines $(echo $found), planted on lines $(echo $marked)"
    status=1
  fi
  # the compiler: rejects exactly the lines marked "dropped"
  # (GCC diagnoses unused results after parsing: -fsyntax-only would hide them)
  rejected=$(${CC:-cc} -std=c11 -c -o /dev/null -Wall -Iinclude -Isrc "$dir/dropped.c" 2>&1 |
    sed -n 's/^[^:]*dropped.c:\([0-9]*\):[0-9]*: warning: .*unused-result.*/\1/p' | sort -un)
  marked=$(grep -n 'dropped \*/' "$dir/dropped.c" | cut -d: -f1 | sort -un)
  if [ "$rejected" != "$marked" ]; then
    echo "check-errors self-test: ${CC:-cc} flagged dropped errors on lines $(echo $rejected), planted on $(echo $marked)"
    status=1
  fi
  [ $status -ne 0 ] || echo "check-errors self-test: every planted mistake found, nothing else"
  exit $status
fi

build=${1:?usage: scripts/check-errors.sh BUILD_DIR | --self-test}
build=$(cd "$build" && pwd)
[ -f "$build/compile_commands.json" ] || { echo "check-errors: no $build/compile_commands.json" >&2; exit 1; }
mapfile -t files < <(jq -r '.[].file' "$build/compile_commands.json" | grep "^$root/.*\.c$" | sort -u) # C files (not the CUDA backend's .cu)
mapfile -t headers < <(find "$root"/{src,include,tools,tests,fuzz,bench} -name '*.h' | sort)
decl=$({ declarations "$build" "${files[@]}"; pointer_declarations "${files[@]}" "${headers[@]}"; } | sort -u)
analysis=$(paths "$build" "${files[@]}")
status=0
if [ -n "$decl" ]; then
  echo "$decl"
  status=1
fi
if grep -q ': warning: ' <<<"$analysis"; then
  echo "$analysis"
  status=1
fi
echo "check-errors: ${#files[@]} files: $(grep -c . <<<"$decl" || true) declaration findings," \
  "$(grep -c ': warning: ' <<<"$analysis" || true) analyzer findings"
exit $status
