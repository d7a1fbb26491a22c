"""squeeze prune against independent oracles:

  - magnitude pruning of stories260K (a real llama2.c checkpoint: 5 blocks, GQA, FFN 172) at 50% and 2:4, written
    as GGUF and read back by the `gguf` package: every block's linear weight equals the original times a numpy
    mask (per matrix, the floor(s * n) smallest |W| zero, ties to the lower index; N:M: the M - N smallest of
    every M consecutive weights of a row zero), everything else equals the original, and squeeze's logits of the
    pruned file equal the float64 reference forward (reference.py) of the numpy-masked weights;
  - depth pruning of stories15M by the ppl criterion (calibrated on Grimms' fairy tales): the --scores-json
    report names the K lowest-scored blocks as removed, and squeeze's logits of the pruned file equal the float64
    reference forward of the original with those blocks removed;
  - refused requests (sparsity outside (0, 1), N >= M, malformed N:M, removing every block) exit with a usage
    error (2) or a clear error (1) naming the problem, and write no output file.

Logit tolerance: engine_harness.FP32_LOGIT_TOL (max|diff| / max|ref| <= 1e-5) and the same argmax everywhere.
"""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine_harness as H  # noqa: E402
import reference as R  # noqa: E402

TOL = H.FP32_LOGIT_TOL
S260K = os.path.join(H.SQ_SHARED, "models", "stories260K.bin")
S15M = os.path.join(H.SQ_SHARED, "models", "stories15M.bin")
CALIB = os.path.join(H.SQ_SHARED, "data", "classics", "grimms_fairy_tales.txt")
LINEAR = ["wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down"]


def numpy_mask(w, sparsity=None, nm=None):
    """The weights magnitude pruning keeps, computed independently: a stable sort of |W| (ties: lower index)."""
    keep = np.ones(w.size, dtype=bool)
    a = np.abs(w.ravel())
    if nm is None:
        k = int(np.floor(sparsity * w.size))
        keep[np.argsort(a, kind="stable")[:k]] = False
    else:
        n, m = nm
        groups = a.reshape(-1, m)
        low = np.argsort(groups, axis=1, kind="stable")[:, : m - n]
        keep = keep.reshape(-1, m)
        np.put_along_axis(keep, low, False, axis=1)
    return keep.reshape(w.shape)


def magnitude(checks, base, tokens, label, args, sparsity=None, nm=None):
    out = os.path.join(H.SQ_WORK, f"prune-{label}.gguf")
    try:
        H.run_cli(["prune", "-m", S260K, "-o", out, "--method", "magnitude", *args, "--no-progress"])
        got = R.load(out)
    except (H.EngineError, Exception) as e:
        return checks.fail(f"magnitude {label}: prune and load", e)
    layers = []
    exact = True
    for lb, lg in zip(base.layers, got.layers):
        fields = {}
        for name in LINEAR:
            w = getattr(lb, name)
            keep = numpy_mask(w, sparsity, nm)
            want = np.where(keep, w, 0.0)
            fields[name] = want
            g = getattr(lg, name)
            exact &= g.shape == w.shape and np.array_equal(g, want)
            if nm is not None:
                exact &= bool(((g.reshape(-1, nm[1]) != 0).sum(axis=1) <= nm[0]).all())
        exact &= np.array_equal(lg.attn_norm, lb.attn_norm) and np.array_equal(lg.ffn_norm, lb.ffn_norm)
        layers.append(dataclasses.replace(lb, **fields))
    exact &= np.array_equal(got.tok_embd, base.tok_embd) and np.array_equal(got.output, base.output)
    checks.check(exact, f"magnitude {label}: weights = original x numpy mask (zero exactly there, else unchanged)")
    model = dataclasses.replace(base, layers=layers)
    try:
        logits = H.engine_logits(out, tokens, "prefill", base.vocab_size)
    except H.EngineError as e:
        return checks.fail(f"magnitude {label}: logits", e)
    checks.close(f"magnitude {label}: logits vs float64 reference of the masked weights", logits,
                 R.forward(model, tokens), TOL)


def depth(checks):
    out = os.path.join(H.SQ_WORK, "prune-depth.gguf")
    scores_json = os.path.join(H.SQ_WORK, "prune-depth.json")
    try:
        H.run_cli(["prune", "-m", S15M, "-o", out, "--method", "depth", "--remove", "2", "--criterion", "ppl",
                   "--calib", CALIB, "--calib-samples", "4", "--calib-len", "64", "--scores-json", scores_json,
                   "--no-progress"])
        with open(scores_json) as f:
            rep = json.load(f)
    except (H.EngineError, OSError, ValueError) as e:
        return checks.fail("depth: prune", e)
    scores = [b["score"] for b in rep["blocks"]]
    removed = [b["block"] for b in rep["blocks"] if b["removed"]]
    lowest = sorted(np.argsort(scores, kind="stable")[:2].tolist())
    checks.check(rep["kind"] == "prune" and len(scores) == 6 and removed == lowest,
                 "depth: the report removes the two lowest-scored blocks", f"scores {scores}, removed {removed}")
    checks.check(rep["before"]["n_layers"] == 6 and rep["after"]["n_layers"] == 4
                 and rep["after"]["params"] < rep["before"]["params"], "depth: 6 -> 4 blocks, fewer parameters")
    base = R.load(S15M)
    cut = dataclasses.replace(base, layers=[lay for i, lay in enumerate(base.layers) if i not in removed])
    tokens = H.read_tokens(os.path.join(H.SQ_SHARED, "golden", "stories15M.tokens.txt"))
    try:
        logits = H.engine_logits(out, tokens, "prefill", base.vocab_size)
    except H.EngineError as e:
        return checks.fail("depth: logits", e)
    checks.close(f"depth: logits vs float64 reference without blocks {removed}", logits, R.forward(cut, tokens), TOL)


def refused(checks):
    out = os.path.join(H.SQ_WORK, "prune-refused.gguf")
    cases = [
        (["--sparsity", "0"], 2, "--sparsity"),
        (["--sparsity", "1"], 1, "sparsity 1 is outside [0, 1)"),  # the flag table has no open upper bound
        (["--sparsity", "-0.5"], 2, "--sparsity"),
        (["--nm", "2-4"], 2, "N:M"),
        (["--nm", "4:4"], 1, "0 < N < M"),
        (["--nm", "3:2"], 1, "0 < N < M"),
        (["--nm", "4:8"], 1, "not a multiple of N:M's M = 8"),
        (["--sparsity", "0.5", "--nm", "2:4"], 2, "exactly one of"),
        (["--method", "depth", "--remove", "5", "--criterion", "magnitude"], 1, "removing 5 of 5 blocks"),
        (["--method", "depth", "--remove", "1"], 2, "needs --calib"),
    ]
    for args, code, needle in cases:
        if os.path.exists(out):
            os.remove(out)
        p = subprocess.run([H.SQ_BIN, "prune", "-m", S260K, "-o", out, *args], capture_output=True, text=True)
        checks.check(p.returncode == code and needle in p.stderr and not os.path.exists(out),
                     f"refused: prune {' '.join(args)} -> exit {code}, names '{needle}', no output",
                     f"exit {p.returncode}: {p.stderr.strip()}")


def main():
    checks = H.Checks(f"squeeze prune vs numpy masks and the float64 reference (tolerance {TOL:g} relative)")
    base = R.load(S260K)
    rng = np.random.default_rng(3)
    tokens = [1] + [int(t) for t in rng.integers(3, base.vocab_size, 31)]
    magnitude(checks, base, tokens, "s50", ["--sparsity", "0.5"], sparsity=0.5)
    magnitude(checks, base, tokens, "nm24", ["--nm", "2:4"], nm=(2, 4))
    depth(checks)
    refused(checks)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
