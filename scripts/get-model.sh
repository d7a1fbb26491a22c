#!/usr/bin/env bash
# Makes sure the default model (stories15M, llama2.c format) and its tokenizer are available.
# Uses ../shared/models when present; otherwise downloads them from their public Hugging Face repository
# (karpathy/tinyllamas for the model, the llama2.c tokenizer from the same author) into models/.
# SQ_HF_ENDPOINT overrides the host (tests point it at a local server).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
if [ -f "$here/../shared/models/stories15M.bin" ] && [ -f "$here/../shared/models/tokenizer.model" ]; then
  exit 0
fi
endpoint="${SQ_HF_ENDPOINT:-https://huggingface.co}"
mkdir -p "$here/models"
fetch() { # url dest sha256
  if [ -f "$2" ] && echo "$3  $2" | sha256sum -c --status; then return 0; fi
  echo "downloading $1" >&2
  if ! curl -fL --retry 3 -o "$2.part" "$1"; then
    echo "error: could not download $1; copy stories15M.bin and tokenizer.model into $here/models/ by hand" >&2
    rm -f "$2.part"; exit 1
  fi
  if ! echo "$3  $2.part" | sha256sum -c --status; then
    echo "error: $1 does not have the expected sha256 $3" >&2; rm -f "$2.part"; exit 1
  fi
  mv "$2.part" "$2"
}
fetch "$endpoint/karpathy/tinyllamas/resolve/main/stories15M.bin" "$here/models/stories15M.bin" \
  cd590644d963867a2b6e5a1107f51fad663c41d79c149fbecbbb1f95fa81f49a
fetch "$endpoint/karpathy/tinyllamas/resolve/main/tokenizer.model" "$here/models/tokenizer.model" \
  "${SQ_TOKENIZER_SHA256:-$(sha256sum "$here/../shared/models/tokenizer.model" 2>/dev/null | cut -d' ' -f1 || true)}"
