#!/usr/bin/env bash
# Builds llama.cpp's tools (llama-bench, llama-perplexity, llama-quantize, llama-imatrix, llama-completion) from the
# llama-cpp-python source distribution on PyPI, the peer squeeze's CPU benchmarks run beside. Nothing of it is
# committed; it lives in build-llamacpp/. Prints the folder holding the binaries.
#
#   bench/llamacpp.sh            (environment: LLAMACPP_VERSION, default 0.3.36; JOBS, default nproc)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
version="${LLAMACPP_VERSION:-0.3.36}"
dir="$root/build-llamacpp"
bin="$dir/build/bin"
tools=(llama-bench llama-perplexity llama-quantize llama-imatrix llama-completion)
if [ -x "$bin/llama-bench" ] && [ "$(cat "$dir/version" 2>/dev/null)" = "$version" ]; then
  echo "$bin"; exit 0
fi
"$root/scripts/install-deps.sh" >&2
mkdir -p "$dir"
sdist="$dir/llama_cpp_python-$version.tar.gz"
if [ ! -f "$sdist" ]; then
  "$root/.venv/bin/pip" download -q --disable-pip-version-check --no-binary :all: --no-deps \
    "llama-cpp-python==$version" -d "$dir" >&2
fi
if [ "$(cat "$dir/src/.version" 2>/dev/null)" != "$version" ]; then # unpacked once: a rebuild stays incremental
  rm -rf "$dir/src" && mkdir -p "$dir/src"
  tar -xzf "$sdist" -C "$dir/src" --strip-components=1
  echo "$version" > "$dir/src/.version"
fi
# GGML_NATIVE: the CPU's own instruction sets, as a llama.cpp user building from source gets them.
cmake -S "$dir/src/vendor/llama.cpp" -B "$dir/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
  -DBUILD_SHARED_LIBS=OFF >&2
cmake --build "$dir/build" -j "${JOBS:-$(nproc)}" --target "${tools[@]}" >&2
echo "$version" > "$dir/version"
echo "$bin"
