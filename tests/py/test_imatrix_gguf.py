"""squeeze quantize --imatrix reads llama.cpp's GGUF imatrix (docs/formats.md, "imatrix files"), written here by
the gguf package (llama.cpp's Python library) as llama-imatrix writes it: general.type "imatrix", imatrix.*
metadata, and per weight W the F32 tensors W.in_sum2 (the sum of x_j^2 over the tokens, GGUF ne [n, 1]) and
W.counts (the tokens, ne [1, 1]).

  - random importances for stories15M's 42 block matrices, written once as llama.cpp's GGUF (sums over a
    power-of-two count of tokens, so that sum / count gives back each mean exactly) and once in squeeze's own
    format (the layout of docs/formats.md, written here with numpy): q4_k_m (K-quants and Q5_0 fallbacks, all
    with importance-weighted searches) from either file is tensor for tensor the same, 42 matrices quantized
    with their entries (every block matrix but q4_k_m's q8_0 ones, which have no weighted search), and
    differs from q4_k_m without an imatrix;
  - files that are not such an imatrix are refused before any work, naming the problem, leaving no file: a
    GGUF of another general.type, an in_sum2 without its counts, per-expert sums (two matrices), a negative sum.
"""
import os
import struct
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine_harness as H  # noqa: E402

MODEL = os.path.join(H.SQ_SHARED, "models", "stories15M.bin")
COUNT = 4096  # tokens: a power of two, so in_sum2 / counts is each mean exactly


def quantize(*args):
    return subprocess.run([H.SQ_BIN, "quantize", "-m", MODEL, "--no-progress", "--quiet", *args],
                          capture_output=True, text=True)


def entries(rng):
    widths = {"attn_q": 288, "attn_k": 288, "attn_v": 288, "attn_output": 288, "ffn_gate": 288, "ffn_up": 288,
              "ffn_down": 768}
    return {f"blk.{b}.{w}.weight": rng.uniform(0, 4, n).astype(np.float32) ** 2
            for b in range(6) for w, n in widths.items()}


def write_gguf(path, tensors, general_type="imatrix"):
    """tensors: name -> float32 array (numpy shape = GGUF ne reversed)."""
    import gguf
    w = gguf.GGUFWriter(path, "llama")
    w.add_type(general_type)
    w.add_array("imatrix.datasets", ["tinystories.txt"])
    w.add_uint32("imatrix.chunk_count", 8)
    w.add_uint32("imatrix.chunk_size", 512)
    for name, a in tensors.items():
        w.add_tensor(name, np.ascontiguousarray(a, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def llama_tensors(means):
    out = {}
    for name, m in means.items():
        out[name + ".in_sum2"] = (m * np.float32(COUNT)).reshape(1, -1)
        out[name + ".counts"] = np.array([[COUNT]], dtype=np.float32)
    return out


def write_squeeze(path, means):
    with open(path, "wb") as f:
        f.write(b"SQIMATRX" + struct.pack("<II", 1, len(means)))
        for name, m in means.items():
            f.write(struct.pack("<I", len(name)) + name.encode() + struct.pack("<QI", COUNT, len(m)))
            f.write(m.astype("<f4").tobytes())


def tensor_bytes(path):
    import gguf
    return {t.name: bytes(t.data.tobytes()) for t in gguf.GGUFReader(path).tensors}


def main():
    import json
    checks = H.Checks("squeeze quantize --imatrix with llama.cpp's GGUF imatrix (written by the gguf package)")
    os.makedirs(H.SQ_WORK, exist_ok=True)
    rng = np.random.default_rng(11)
    means = entries(rng)
    im_gguf, im_own = (os.path.join(H.SQ_WORK, f"imatrix-gguf.{e}") for e in ("gguf", "imatrix"))
    write_gguf(im_gguf, llama_tensors(means))
    write_squeeze(im_own, means)
    outs = {}
    for tag, args in [("gguf", ["--imatrix", im_gguf]), ("own", ["--imatrix", im_own]), ("none", [])]:
        out, rep = (os.path.join(H.SQ_WORK, f"imatrix-gguf-{tag}.{e}") for e in ("gguf", "json"))
        p = quantize("-o", out, "--type", "q4_k_m", "--json", rep, *args)
        if not checks.check(p.returncode == 0, f"quantize --type q4_k_m {' '.join(args)}", p.stderr[-400:]):
            return checks.finish()
        outs[tag] = (tensor_bytes(out), json.load(open(rep)))
    (t_gguf, r_gguf), (t_own, r_own), (t_none, _) = outs["gguf"], outs["own"], outs["none"]
    # every block matrix in a format with an importance-weighted search (all but q8_0) uses its entry
    weighted = [x["name"] for x in r_gguf["tensors"] if x["name"].startswith("blk.") and x["type"] != x["from"]
                and x["type"] != "q8_0"]
    checks.check(len(weighted) > 30 and r_gguf["n_imatrix"] == len(weighted)
                 and all(x["imatrix"] for x in r_gguf["tensors"] if x["name"] in weighted),
                 f"llama.cpp's GGUF imatrix: the {len(weighted)} block matrices with a weighted search quantized "
                 "with their entries", str(r_gguf["n_imatrix"]))
    same = [n for n in t_own if t_gguf.get(n) == t_own[n]]
    checks.check(len(same) == len(t_own) == len(t_gguf), "the same tensors, byte for byte, as from squeeze's own "
                 "imatrix file with the same means", f"{len(same)} of {len(t_own)} equal")
    differ = [n for n in weighted if t_none[n] != t_gguf[n]]
    checks.check(len(differ) == len(weighted), "and not those of q4_k_m without an imatrix (the entries are used)",
                 f"{len(differ)} of {len(weighted)} differ")

    first = next(iter(means))
    bad_cases = [
        ("a model GGUF", {first + ".in_sum2": means[first].reshape(1, -1)}, "model",
         'not an imatrix file (a GGUF file of general.type "model"'),
        ("an in_sum2 without counts", {first + ".in_sum2": means[first].reshape(1, -1)}, "imatrix",
         f"{first}.in_sum2 has no {first}.counts beside it"),
        ("per-expert sums", {first + ".in_sum2": np.stack([means[first]] * 2),
                             first + ".counts": np.array([[COUNT], [COUNT]], dtype=np.float32)}, "imatrix",
         f"{first} holds the sums of 2 matrices"),
        ("a negative sum", {first + ".in_sum2": -means[first].reshape(1, -1) - 1,
                            first + ".counts": np.array([[COUNT]], dtype=np.float32)}, "imatrix",
         "(a sum of squares: finite, >= 0)"),
    ]
    bad_out = os.path.join(H.SQ_WORK, "imatrix-gguf-bad.gguf")
    for what, tensors, general_type, message in bad_cases:
        path = os.path.join(H.SQ_WORK, "imatrix-bad.gguf")
        write_gguf(path, tensors, general_type)
        if os.path.exists(bad_out):
            os.remove(bad_out)
        p = quantize("-o", bad_out, "--type", "q4_0", "--imatrix", path)
        checks.check(p.returncode == 1 and message in p.stderr and not os.path.exists(bad_out),
                     f"refused: {what}", p.stderr.strip()[-300:])
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
