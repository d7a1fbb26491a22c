#!/usr/bin/env bash
# Gemma-3-270M (the Q4_K_M GGUF from PyPI, scripts/get-gguf-models.sh) in squeeze and in llama.cpp (built by
# bench/llamacpp.sh from the llama-cpp-python sdist) on the same file: greedy continuations of a few prompts, and
# perplexity under llama.cpp's protocol (the first TEXT_BYTES of WikiText-2 test in whole lines, CRLF to LF,
# ctx 512, each window starting with BOS and scoring its second half: llama-perplexity and squeeze ppl
# --score-second-half), both with an f32 KV cache; on the file and on its weights dequantized to f32. Prints
# markdown (docs/benchmarks.md). Where greedy texts part, the table gives the first token that differs and
# squeeze's top-2 logit margin there (squeeze logits on the shared prefix).
#
#   bench/gemma3_vs_llamacpp.sh [TEXT_BYTES]    (default 50000; OUT, THREADS, N_PREDICT)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bytes="${1:-50000}"
out="${OUT:-$root/build/gemma3-vs-llamacpp}"
threads="${THREADS:-2}"
n="${N_PREDICT:-32}"
sq="$root/build/squeeze"
bin="${LLAMACPP_BIN:-$("$root/bench/llamacpp.sh")}"
model="$("$root/scripts/get-gguf-models.sh" gemma3-270m)"
mkdir -p "$out"
head -c "$bytes" "$root/../shared/data/wikitext-2/wiki.test.raw" | tr -d '\r' | sed '$d' >"$out/text.txt" # whole lines

# The same weights dequantized to f32 (the gguf package): both engines then multiply fp32 activations, so
# what remains between them is summation order; on the Q4_K_M file each also quantizes activations its own way
# (llama.cpp to Q8_K/Q8_0 at every batch size, squeeze for single-token GEMVs only).
f32="$out/gemma-3-270m-dequantized-f32.gguf"
[ -f "$f32" ] || "$root/.venv/bin/python" - "$model" "$f32" <<'PY'
import sys
import numpy as np
import gguf
r = gguf.GGUFReader(sys.argv[1])
w = gguf.GGUFWriter(sys.argv[2], "gemma3")
for f in r.fields.values():
    if f.name.startswith("GGUF.") or f.name in ("general.architecture", "general.file_type"):
        continue
    if f.types[0] == gguf.GGUFValueType.ARRAY:
        w.add_key_value(f.name, f.contents(), f.types[0], sub_type=f.types[-1])
    else:
        w.add_key_value(f.name, f.contents(), f.types[0])
for t in r.tensors:
    shape = tuple(int(s) for s in reversed(t.shape))
    w.add_tensor(t.name, np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(shape))
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
PY

prompts=("The capital of France is" "Once upon a time, there was a little" "The three primary colors are"
         "def fibonacci(n):" "In 1969, astronauts" "Water boils at a temperature of")
for file in "$model" "$f32"; do
name="$(basename "$file")"
echo "greedy, $n tokens, $name (llama.cpp with an f32 KV cache as squeeze's):"
echo
echo "| prompt | tokens equal | first difference (token index) | squeeze's top-2 margin there |"
echo "|---|---:|---|---:|"
for i in "${!prompts[@]}"; do
  p="${prompts[$i]}"
  "$bin/llama-completion" -m "$file" -p "$p" -n "$n" --temp 0 -t "$threads" -no-cnv --no-warmup \
    --no-display-prompt -ctk f32 -ctv f32 -s 1 2>/dev/null >"$out/llama-$i.txt" || true
  "$sq" run -m "$file" -p "$p" -n "$n" --temp 0 -t "$threads" --no-echo 2>/dev/null >"$out/squeeze-$i.txt"
  "$root/.venv/bin/python" - "$sq" "$file" "$p" "$out/llama-$i.txt" "$out/squeeze-$i.txt" "$out/logits-$i.f32" <<'PY'
import subprocess, sys
import numpy as np
sq, model, prompt, llama_path, squeeze_path, logits_path = sys.argv[1:]
def ids(text):
    out = subprocess.run([sq, "tokenize", "-m", model, "-p", text], capture_output=True, text=True, check=True)
    return [int(line.split("\t")[0]) for line in out.stdout.splitlines() if line.strip()]
base = ids(prompt)
# the texts re-tokenized, without trailing whitespace (where a cut-off run of newlines tokenizes differently)
a, b = open(llama_path).read().rstrip(), open(squeeze_path).read().rstrip()
ta, tb = ids(prompt + a)[len(base):], ids(prompt + b)[len(base):]
m = min(len(ta), len(tb))
k = next((j for j in range(m) if ta[j] != tb[j]), None)
if k is None:
    print(f"| {prompt} | {m}/{m} | none | |")
else:
    prefix = base + tb[:k]
    subprocess.run([sq, "logits", "-m", model, "--tokens", " ".join(map(str, prefix)), "-o", logits_path,
                    "--mode", "decode"], capture_output=True, check=True)
    last = np.fromfile(logits_path, dtype=np.float32).reshape(len(prefix), -1)[-1]
    top = np.sort(last)[-2:]
    print(f"| {prompt} | {k}/{m} | {k} (llama.cpp {ta[k]}, squeeze {tb[k]}) | {top[1] - top[0]:.4f} |")
PY
done
echo
done

echo "| perplexity, first $bytes bytes of WikiText-2 test (ctx 512, second half, BOS) | llama.cpp | squeeze | difference |"
echo "|---|---:|---:|---:|"
for file in "$model" "$f32"; do
  name="$(basename "$file")"
  "$bin/llama-perplexity" -m "$file" -f "$out/text.txt" -c 512 -t "$threads" -ctk f32 -ctv f32 \
    >"$out/llama-perplexity-$name.log" 2>&1
  llama_ppl="$(grep -o 'Final estimate: PPL = [0-9.]*' "$out/llama-perplexity-$name.log" | awk '{print $5}')"
  "$sq" ppl -m "$file" -f "$out/text.txt" -c 512 --score-second-half -t "$threads" --json "$out/squeeze-ppl.json" \
    --no-progress >/dev/null 2>&1
  "$root/.venv/bin/python" - "$name" "$llama_ppl" "$out/squeeze-ppl.json" <<'PY'
import json, sys
name, a, b = sys.argv[1], float(sys.argv[2]), json.load(open(sys.argv[3]))["ppl"]
print(f"| {name} | {a:.4f} | {b:.4f} | {100 * (b - a) / a:+.3f}% |")
PY
done
echo
echo "llama.cpp: llama-cpp-python $(cat "$(dirname "$(dirname "$bin")")/version" 2>/dev/null || echo '?'); threads $threads"
