#!/usr/bin/env bash
# Makes sure the default model (stories15M, llama2.c format) and its tokenizer are available.
# Uses ../shared/models when present; otherwise downloads both into models/ and checks their sha256:
#   stories15M.bin   from Hugging Face, karpathy/tinyllamas (the model's public home)
#   tokenizer.model  the Llama-2 SentencePiece tokenizer, from karpathy/llama2.c (published beside the model code)
# SQ_MODEL_URL / SQ_TOKENIZER_URL override the sources (the tests serve them from a local HTTP server).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
if [ -f "$here/../shared/models/stories15M.bin" ] && [ -f "$here/../shared/models/tokenizer.model" ]; then
  exit 0
fi
model_url="${SQ_MODEL_URL:-https://huggingface.co/karpathy/tinyllamas/resolve/main/stories15M.bin}"
tokenizer_url="${SQ_TOKENIZER_URL:-https://raw.githubusercontent.com/karpathy/llama2.c/master/tokenizer.model}"
mkdir -p "$here/models"

fetch() { # url destination sha256
  if [ -f "$2" ] && echo "$3  $2" | sha256sum -c --status; then return 0; fi
  echo "downloading $1" >&2
  if ! curl -fsSL --retry 3 --connect-timeout 20 --speed-limit 1024 --speed-time 60 -o "$2.part" "$1"; then
    rm -f "$2.part"
    echo "error: could not download $1" >&2
    echo "       copy stories15M.bin and tokenizer.model into $here/models/ by hand, or place them in ../shared/models" >&2
    exit 1
  fi
  if ! echo "$3  $2.part" | sha256sum -c --status; then
    rm -f "$2.part"
    echo "error: $1 is not the expected file (sha256 should be $3)" >&2
    exit 1
  fi
  mv "$2.part" "$2"
}
fetch "$model_url" "$here/models/stories15M.bin" cd590644d963867a2b6e5a1107f51fad663c41d79c149fbecbbb1f95fa81f49a
fetch "$tokenizer_url" "$here/models/tokenizer.model" 9e556afd44213b6bd1be2b850ebbbd98f5481437a8021afaf58ee7fb1818d347
