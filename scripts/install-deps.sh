#!/usr/bin/env bash
# Installs everything squeeze needs to build and test on a fresh Debian 12 machine.
# C dependencies come from Debian; the Python oracles used only by tests live in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(build-essential clang libclang-rt-14-dev cmake pkg-config libopenblas-dev liblapacke-dev libcjson-dev libcmocka-dev
  libpcre2-dev libutf8proc-dev libbz2-dev libmicrohttpd-dev python3 python3-venv python3-numpy
  python3-sentencepiece curl ca-certificates
  clang-tidy clang-tools jq) # scripts/check-errors.sh

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Python oracles for the reference tests: Debian's numpy and sentencepiece, PyPI's tokenizers, gguf and jinja2
# (the version transformers' apply_chat_template requires at least), and OpenAI's own client, which the server
# is tested with (tests/py/test_serve.py) and the load benchmark drives (bench/serve_load.py).
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import numpy, sentencepiece, tokenizers, gguf, jinja2, openai
assert jinja2.__version__ == '3.1.6' and openai.__version__ == '1.109.1'" 2>/dev/null; then
  /usr/bin/python3 -m venv --system-site-packages .venv
  .venv/bin/pip install -q --disable-pip-version-check "tokenizers==0.22.*" "gguf==0.17.*" "jinja2==3.1.6" \
    "openai==1.109.1"
fi
