"""squeeze compress (docs/recipes.md) through the CLI, against independent oracles:

  - a recipe of magnitude 2:4 then Q8_0 on stories15M, measured on held-out TinyStories text (1024 tokens): the written GGUF,
    read by the `gguf` package, holds every block's linear weights in Q8_0 with two of every four consecutive
    weights of a row zero (numpy's check of the mask), and the table's last row gives the perplexity and KL
    that `squeeze ppl --ref` measures on the written file over the same windows (4 decimals as printed);
  - refusals exit with a usage error (2) or an error (1) naming the problem and write no output: a malformed
    recipe (naming the step and key), a calibrated step without --calib, a missing recipe file.
"""

import json
import os
import re
import subprocess
import sys

import numpy as np
import sentencepiece as spm
from gguf import GGUFReader
from gguf.quants import dequantize

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine_harness as H  # noqa: E402

S15M = os.path.join(H.SQ_SHARED, "models", "stories15M.bin")
TEXT = os.path.join(H.SQ_SHARED, "data", "tinystories", "valid-a.txt")
LINEAR = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


def write(name, text):
    path = os.path.join(H.SQ_WORK, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def row(stdout, label):
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == label:
            return cells
    return None


def recipe_run(checks):
    recipe = write("compress-nm-q8.json", '{"steps": [{"prune": {"method": "magnitude", "nm": "2:4"}},'
                                          ' {"quantize": {"type": "q8_0"}}]}')
    out = os.path.join(H.SQ_WORK, "compress-nm-q8.gguf")
    if os.path.exists(out):
        os.remove(out)
    p = subprocess.run([H.SQ_BIN, "compress", "-m", S15M, "-o", out, "--recipe", recipe, "--eval", TEXT,
                        "--eval-tokens", "1024", "--eval-ctx", "256", "--no-bench", "-t", "1"],
                       capture_output=True, text=True, timeout=600)
    print(p.stdout)
    if p.returncode != 0:
        return checks.fail("compress magnitude 2:4 + q8_0", p.stderr)
    reader = GGUFReader(out)
    ok, n = True, 0
    for t in reader.tensors:
        if t.name.split(".")[-2] not in LINEAR:
            continue
        n += 1
        w = dequantize(t.data, t.tensor_type).reshape(-1, 4)
        ok &= t.tensor_type.name == "Q8_0" and bool(np.all((w == 0).sum(axis=1) >= 2))
    checks.check(ok and n == 42, "compress: every block's linear weight is Q8_0 with 2 of every 4 zero", f"{n} tensors")
    last = row(p.stdout, "quantize q8_0 rtn")
    # the same 1024 ids (BOS, then sentencepiece's encoding of the text) through squeeze ppl --ids-file
    sp = spm.SentencePieceProcessor(model_file=os.path.join(H.SQ_SHARED, "models", "tokenizer.model"))
    with open(TEXT, encoding="utf-8") as f:
        ids = ([1] + sp.encode(f.read()))[:1024]
    ids_file = write("compress-ids.txt", " ".join(map(str, ids)))
    report = os.path.join(H.SQ_WORK, "compress-ppl.json")
    p2 = subprocess.run([H.SQ_BIN, "ppl", "-m", out, "--ids-file", ids_file, "--ref", S15M, "--ctx", "256",
                         "-t", "1", "--json", report, "--no-progress"], capture_output=True, text=True, timeout=600)
    if p2.returncode != 0 or last is None:
        return checks.fail("compress: squeeze ppl on the written file", p2.stderr + f" row {last}")
    with open(report) as f:
        rep = json.load(f)
    ppl, kl = rep["ppl"], rep["reference"]["kl_mean"]
    checks.check(abs(float(last[7]) - ppl) <= 1e-4 * ppl and abs(float(last[9]) - kl) <= 1e-4,
                 "compress: the last row's perplexity and KL equal squeeze ppl --ref on the written file",
                 f"row {last[7]} / {last[9]}, ppl --ref {ppl:.4f} / {kl:.4f}")


def refused(checks):
    out = os.path.join(H.SQ_WORK, "compress-refused.gguf")
    bad = write("compress-bad.json", '{"steps": [{"prune": {"method": "wanda", "sparsity": 1.5}}]}')
    calib = write("compress-calib.json", '{"steps": [{"prune": {"method": "wanda", "nm": "2:4"}}]}')
    cases = [
        (["--recipe", bad], 1, 'step 1 (prune): "sparsity": expected a number in [0, 1)'),
        (["--recipe", calib], 2, "need calibration text (--calib TEXT)"),
        (["--recipe", os.path.join(H.SQ_WORK, "no-such-recipe.json")], 1, "no-such-recipe.json"),
    ]
    for args, code, needle in cases:
        if os.path.exists(out):
            os.remove(out)
        p = subprocess.run([H.SQ_BIN, "compress", "-m", S15M, "-o", out, *args], capture_output=True, text=True)
        checks.check(p.returncode == code and needle in p.stderr and not os.path.exists(out),
                     f"refused: compress {' '.join(os.path.basename(a) for a in args)} -> exit {code}, names "
                     f"'{needle}', no output", f"exit {p.returncode}: {p.stderr.strip()}")


def main():
    checks = H.Checks("squeeze compress: recipe steps vs gguf's reading of the output and squeeze ppl; refusals")
    recipe_run(checks)
    refused(checks)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
