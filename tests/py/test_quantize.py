"""squeeze quantize on stories15M (a real llama2.c checkpoint: rows of 288 and 768 values) against independent
oracles:

  - every type and preset: the file holds each tensor in the format the JSON report names (matrices only;
    norms stay F32), the report's sizes and bits per weight are the file's, and squeeze's logits of the file
    (a 32-token prefill, which multiplies dequantized weights in fp32) equal the float64 reference forward of
    the same file with every tensor dequantized by the gguf package (reference.py), within the fp32 contract
    (engine_harness.FP32_LOGIT_TOL) and with the same argmax: squeeze loads what it writes and its
    dequantization is the gguf package's, K-quants included;
  - the presets' per-tensor choices on this model, where 288-value rows do not hold 256-value super-blocks:
    q4_k_m puts ffn_down (768-value rows) in Q4_K, and Q6_K in the layers llama.cpp gives more bits, and the
    rest falls back to Q5_0 (Q8_0 for Q6_K's attn_v and the tied token_embd/output);
  - with an imatrix (squeeze imatrix), with mixed precision (--budget-bpw) and with GPTQ into q4_k_m's ggml
    block types (--method gptq --imatrix), the same checks of the file, every block matrix quantized with its
    entry, the budget kept with more than one format chosen;
  - bad requests fail before any work with a message naming the problem, leaving no file under the output
    name and no temporary file beside it.
(Byte equality with llama.cpp's own llama-quantize, which needs llama.cpp built: bench/quant_vs_llamacpp.sh.)"""
import glob
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine_harness as H  # noqa: E402
import reference as R  # noqa: E402

MODEL = os.path.join(H.SQ_SHARED, "models", "stories15M.bin")
TYPES = ["q5_1", "q2_k", "q3_k", "q5_k", "q6_k", "q4_k_m"]  # every format squeeze adds, Q4_K, Q5_0 and Q8_0 in q4_k_m


def quantize(*args):
    return subprocess.run([H.SQ_BIN, "quantize", "-m", MODEL, "--no-progress", "--quiet", *args],
                          capture_output=True, text=True)


def main():
    import gguf

    checks = H.Checks(f"squeeze quantize vs the gguf package and the float64 reference (tolerance {H.FP32_LOGIT_TOL:g})")
    os.makedirs(H.SQ_WORK, exist_ok=True)
    rng = np.random.default_rng(8)
    tokens = [1] + [int(t) for t in rng.integers(3, 32000, 31)]
    # an imatrix (squeeze imatrix on a little of the text) for the importance-weighted and mixed variants
    imatrix = os.path.join(H.SQ_WORK, "quantize.imatrix")
    p = subprocess.run([H.SQ_BIN, "imatrix", "-m", MODEL, "-f", os.path.join(H.SQ_SHARED, "data", "tinystories", "valid-a.txt"),
                        "-o", imatrix, "--calib-samples", "4", "--calib-len", "64", "--no-progress"],
                       capture_output=True, text=True)
    checks.check(p.returncode == 0 and "42 entries" in p.stderr, "squeeze imatrix: 42 entries", p.stderr[-300:])
    variants = [(t, ["--type", t]) for t in TYPES] + [
        ("q3_k+imatrix", ["--type", "q3_k", "--imatrix", imatrix]),  # Q3_K ffn_down, Q4_0 elsewhere, weighted
        ("mixed", ["--type", "q4_0", "--imatrix", imatrix, "--budget-bpw", "7"]),
        # GPTQ into Q4_K, Q6_K, Q5_0 and Q8_0, each block's scales by the format's weighted search
        ("q4_k_m+gptq+imatrix", ["--type", "q4_k_m", "--method", "gptq", "--imatrix", imatrix, "--calib",
                                 os.path.join(H.SQ_SHARED, "data", "classics", "grimms_fairy_tales.txt"),
                                 "--calib-samples", "4", "--calib-len", "64"]),
    ]
    for t, args in variants:
        out, report = os.path.join(H.SQ_WORK, f"quantize-{t}.gguf"), os.path.join(H.SQ_WORK, f"quantize-{t}.json")
        p = quantize("-o", out, "--json", report, *args)
        if not checks.check(p.returncode == 0, f"quantize --type {t}", p.stderr[-500:]):
            continue
        rep = json.load(open(report))
        file_types = {ti.name: ti.tensor_type.name.lower() for ti in gguf.GGUFReader(out).tensors}
        want = {x["name"]: x["type"] for x in rep["tensors"]}
        checks.check(file_types == want, f"{t}: every tensor in the file has the report's type",
                     str({k: (file_types.get(k), v) for k, v in want.items() if file_types.get(k) != v})[:300])
        norms_f32 = all(v == "f32" for k, v in file_types.items() if k.endswith("norm.weight"))
        checks.check(norms_f32 and rep["n_quantized"] == 43, f"{t}: the 43 matrices quantized, norms kept F32",
                     f"{rep['n_quantized']} quantized")
        if "--imatrix" in args:
            checks.check(rep["n_imatrix"] == 42 and all(x["imatrix"] == x["name"].startswith("blk.")
                                                        for x in rep["tensors"] if x["type"] != x["from"]),
                         f"{t}: the 42 blocks' matrices quantized with their imatrix entries", str(rep["n_imatrix"]))
        if "--budget-bpw" in args:
            checks.check(rep["bits_per_weight"] <= 7 and len({x["type"] for x in rep["tensors"]
                                                               if x["name"].startswith("blk.") and x["type"] != "f32"}) > 1,
                         f"{t}: within 7 bits per weight, with more than one format in the blocks",
                         f"{rep['bits_per_weight']:.3f}")
        data_bytes = sum(int(ti.n_bytes) for ti in gguf.GGUFReader(out).tensors)
        bpw = 8 * data_bytes / rep["n_elems"]
        checks.check(rep["bytes_after"] == data_bytes and abs(rep["bits_per_weight"] - bpw) < 1e-9,
                     f"{t}: {rep['bits_per_weight']:.3f} bits per weight, the file's tensor bytes",
                     f"report {rep['bytes_after']} bytes, file {data_bytes}")
        ref = R.forward(R.load(out), tokens)
        try:
            got = H.engine_logits(out, tokens, "prefill", 32000)
            checks.close(f"{t}: squeeze's logits of its file vs the reference of the same file", got, ref,
                         H.FP32_LOGIT_TOL)
        except H.EngineError as e:
            checks.fail(f"{t}: squeeze logits", e)

    rep = json.load(open(os.path.join(H.SQ_WORK, "quantize-q4_k_m.json")))
    types = {x["name"]: x["type"] for x in rep["tensors"]}
    more_bits = [2, 5]  # llama.cpp's use_more_bits for 6 layers: i >= 7 * 6 / 8 or (i - 6 / 8) % 3 == 2
    want = {f"blk.{i}.ffn_down.weight": "q6_k" if i in more_bits else "q4_k" for i in range(6)}
    want.update({f"blk.{i}.attn_v.weight": "q8_0" if i in more_bits else "q5_0" for i in range(6)})
    want.update({f"blk.{i}.attn_q.weight": "q5_0" for i in range(6)})
    want["token_embd.weight"] = "q8_0"
    checks.check(all(types[k] == v for k, v in want.items()) and rep["n_fallbacks"] == 36,
                 "q4_k_m: llama.cpp's choices for stories15M (36 fallbacks)",
                 str({k: types[k] for k, v in want.items() if types[k] != v}) + f" fallbacks {rep['n_fallbacks']}")

    bad = os.path.join(H.SQ_WORK, "quantize-bad.gguf")
    for args, message in [
        (["--type", "q4_k_x"], 'unknown type "q4_k_x"'),
        (["--type", "int3", "--group", "48"], "--group 48: int3 takes groups of 32, 64, 128 or 0 (per output channel)"),
        (["--type", "q4_k", "--keep", "blk.*.attn_q.weight=q4_k"], "blk.0.attn_q.weight has rows of 288 values, not whole q4_k blocks of 256"),
        (["--type", "q4_0", "--keep", "blk.9.*=q8_0"], "keep blk.9.*=q8_0: the pattern matches no weight matrix"),
        (["--type", "q4_0", "--keep", "output_norm.weight=q8_0"], "the pattern matches no weight matrix"),
        (["--type", "q4_0", "--keep", "token_embd.weight=q9_9"], 'unknown type "q9_9"'),
        (["--type", "q4_0", "--keep", "token_embd.weight"], "expected PATTERN=TYPE"),
        (["--type", "q4_0", "--budget-bpw", "3"], "a budget of 3.000 bits per weight is below the smallest types'"),
        (["--type", "q4_0", "--imatrix", MODEL], "not an imatrix file"),
        (["--type", "q4_0", "--imatrix", os.path.join(H.SQ_WORK, "no-such.imatrix")], "no-such.imatrix"),
    ]:
        if os.path.exists(bad):
            os.remove(bad)
        p = quantize("-o", bad, *args)
        checks.check(p.returncode in (1, 2) and message in p.stderr and not os.path.exists(bad),
                     f"refused: {' '.join(args)}", p.stderr.strip()[-300:])
    p = quantize("-o", os.path.join(H.SQ_WORK, "no-such-dir", "x.gguf"), "--type", "q8_0")
    checks.check(p.returncode == 1 and "cannot create" in p.stderr and "quantized" not in p.stderr,
                 "an output that cannot be created is refused before quantizing", p.stderr.strip()[-300:])
    p = quantize("-o", H.SQ_WORK, "--type", "q8_0")
    checks.check(p.returncode == 1 and "is a directory" in p.stderr, "an output that is a directory is refused",
                 p.stderr.strip()[-300:])
    left = glob.glob(os.path.join(H.SQ_WORK, "*.partial-*"))
    checks.check(not left, "no temporary files left behind", str(left))
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
