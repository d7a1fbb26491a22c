#!/usr/bin/env bash
# Do two builds compute the same logits, bit for bit? `squeeze logits` of BASE_BIN and NEW_BIN on stories15M
# (fp32 and Q8_0), stories260K (GQA) and every tiny Hugging Face variant of tests/py/tiny_models.py (biases,
# sliding window, llama3 RoPE, f16/bf16, tied, head_dim, shards), in the three ways of feeding tokens
# (prefill, decode, chunks:5), under every CPU kernel set this machine has. For refactors that must not
# change a single result. Exits non-zero when any pair differs.
#
#   tests/tools/same_logits.sh BASE_BIN NEW_BIN        (environment: SQ_SHARED, default ../shared)
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
base="$1" new="$2"
shared="${SQ_SHARED:-$root/../shared}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$root/.venv/bin/python" "$root/tests/py/tiny_models.py" "$work/tiny" >/dev/null || exit 1
long="1 9038 2501 263 931 29892 727 471 263 2217 7826 4257 365 2354 29889 2296 18012 304 1708 5377"
short="1 5 9 33 100 7 200 300 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62"
models=("$shared/models/stories15M.bin|$long" "$shared/models/stories15M-q8_0.gguf|$long"
        "$shared/models/stories260K.bin|$short")
for d in "$work"/tiny/*/; do models+=("$d|$short"); done
same=0 differ=0
for kernels in scalar avx2 avx512; do
  # the CLI refuses a kernel set this CPU lacks
  SQ_KERNELS=$kernels "$new" logits -m "$shared/models/stories260K.bin" --tokens 1 >/dev/null 2>&1 || continue
  for mode in prefill decode chunks:5; do
    for entry in "${models[@]}"; do
      model="${entry%%|*}" tokens="${entry#*|}"
      for b in base new; do
        SQ_KERNELS=$kernels "${!b}" logits -m "$model" --tokens "$tokens" --mode $mode -o "$work/$b.f32" || exit 1
      done
      if cmp -s "$work/base.f32" "$work/new.f32"; then
        same=$((same + 1))
      else
        differ=$((differ + 1))
        echo "DIFFER: $kernels $mode $model"
      fi
    done
  done
done
echo "same_logits.sh: $same identical, $differ different"
[ "$differ" -eq 0 ]
