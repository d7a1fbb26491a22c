#!/bin/bash
# The CUDA backend's evidence (docs/benchmarks.md, "CUDA backend on an NVIDIA H200"), in two halves:
#
#   bench/cuda_h200.sh pack DIR   here (nvcc, no GPU needed): build, then put into DIR the stripped binaries,
#                                 the shared libraries they need beyond glibc and CUDA (the GPU machine has
#                                 none of squeeze's Debian dependencies), stories15M-f16/stories260K and the
#                                 golden files, xz-compressed: about 45 MB
#   bash DIR/run.sh               on the GPU machine (CUDA 13 runtime and cuBLAS under /usr/local/cuda/lib64):
#                                 the GPU tests, stories15M on both devices, bench_cuda, and Llama-2-7B shapes
#                                 made there by squeeze synth in f16/q4_0/q8_0/q4_k: TTFT at 1024 and decode,
#                                 the step breakdowns (1 and 64 sequences), prefill at 512 and 2048, the batch
#                                 curve. Logs in $OUT (or DIR/out).
set -euo pipefail
if [ "${1:-}" != pack ] || [ -z "${2:-}" ]; then
    sed -n '2,12p' "$0"
    exit 2
fi
dir=$2
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${SQ_SHARED:-$root/../shared}
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release -DSQUEEZE_CUDA=ON >/dev/null
cmake --build "$root/build" -j 2 --target squeeze test_cuda test_backend_ops bench_cuda
mkdir -p "$dir/shared/models" "$dir/shared/golden" "$dir/bin" "$dir/lib"
for b in squeeze tests/test_cuda tests/test_backend_ops bench/bench_cuda; do
    strip -o "$dir/bin/$(basename $b)" "$root/build/$b"
done
# every library the binaries load that is neither glibc's nor CUDA's
ldd "$dir"/bin/* | awk '/=> \// {print $3}' | sort -u |
    grep -v -E '/(libc|libm|libdl|librt|libpthread|ld-linux[^/]*|libstdc\+\+|libgcc_s)\.so|/cuda' |
    while read -r lib; do cp -L "$lib" "$dir/lib/"; done
tar -C "$dir" -cf - bin lib | xz -T2 -6 >"$dir/payload.tar.xz"
rm -rf "$dir/bin" "$dir/lib"
cp "$shared/models/stories15M-f16.gguf" "$shared/models/stories260K.bin" "$dir/shared/models/"
cp "$shared/golden/stories15M.tokens.txt" "$shared"/golden/stories260K.* "$dir/shared/golden/"
cat >"$dir/run.sh" <<'RUN'
#!/bin/bash
cd "$(dirname "$0")"
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
tar xJf payload.tar.xz
export LD_LIBRARY_PATH=$PWD/lib:/usr/local/cuda/lib64 SQ_SHARED=$PWD/shared
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem,driver_version --format=csv,noheader | tee $OUT/gpu.txt
timeout 120 bin/test_cuda >$OUT/test_cuda.txt 2>&1; grep -E "attention|stories|PASSED|FAILED|rror" $OUT/test_cuda.txt
timeout 120 bin/test_backend_ops 2>&1 | grep -E "PASSED|FAILED|rror|skipping"
M=shared/models/stories15M-f16.gguf
for d in cpu cuda; do bin/squeeze run --device $d -m $M -p "Once upon a time" -n 60 --temp 0 -s 1 >$OUT/run_$d.txt 2>/dev/null; done
cmp $OUT/run_cpu.txt $OUT/run_cuda.txt && echo "stories15M greedy text identical"
timeout 150 bin/bench_cuda bw,gemv,batch,gemm >$OUT/bench_cuda.txt 2>&1; cat $OUT/bench_cuda.txt
for t in f16 q4_0 q8_0 q4_k; do
    timeout 120 bin/squeeze synth --preset llama-2-7b --type $t -o /tmp/l7-$t.gguf >/dev/null 2>&1
    timeout 150 bin/squeeze bench --device cuda -m /tmp/l7-$t.gguf -p 1024 -n 128 -b 1 --reps 3 --warmup 1 \
        --kv-type f16 --no-progress >$OUT/b7_$t.txt 2>&1
    echo "== $t"; grep -E "first|per output|decode \(|prefill \(|weights" $OUT/b7_$t.txt
    if [ $t = f16 ]; then
        timeout 150 bin/bench_cuda step,batchstep /tmp/l7-f16.gguf 2>&1 | tail -24 | tee $OUT/step_f16.txt
        for p in 512 2048; do
            timeout 100 bin/squeeze bench --device cuda -m /tmp/l7-f16.gguf -p $p -n 0 -b 1 --reps 3 --kv-type f16 \
                --no-progress 2>&1 | grep -E "first|prefill \(" | sed "s/^/p=$p /"
        done | tee $OUT/b7_f16_prefill.txt
        timeout 200 bin/squeeze bench --device cuda -m /tmp/l7-f16.gguf -p 128 -n 32 -b 1,8,32,64,128 --reps 2 \
            --warmup 1 --kv-type f16 --no-progress >$OUT/b7_f16_batch.txt 2>&1
        grep -E "###|decode \(" $OUT/b7_f16_batch.txt
    fi
    rm -f /tmp/l7-$t.gguf
done
RUN
chmod +x "$dir/run.sh"
du -sh "$dir"
