"""Low-rank factorisation (squeeze prune --method lowrank|asvd) against independent oracles:

  - the SVD of one matrix (tests/tools/prune_tool svd, i.e. lowrank.c's sq_lowrank_svd) on random matrices of
    awkward shapes, plain and with ASVD's input-channel scales: the singular values equal numpy.linalg.svd's
    within 1e-9 of the largest; B A is numpy's truncated reconstruction within 1e-5 of max|W|; and
    Eckart-Young: ||(W - B A) D||_F^2 equals the sum of the discarded sigma^2 within 1e-4 relative (1e-3 for
    sums under 1e-6 of the total: float32 factors);
  - ASVD beats plain SVD on the error that matters, ||(W - W_r) X^T||_F over calibration inputs X, on a
    synthetic layer whose inputs have a few outlier channels (as LLM activations do), at every rank tried;
  - squeeze prune of stories260K (rank ratio 0.4), written as GGUF and read by the `gguf` package: squeeze's
    logits equal the float64 reference forward (reference.py) with every factorised weight multiplied out as
    B A in float64 (ASVD changes only the factors' values; tests/c/test_lowrank.c runs it on stories260K);
  - ASVD through the CLI on stories15M, and convert of its output: both say llama.cpp cannot load the file;
  - refused requests (both ratios, a rank ratio above 1, asvd without --calib, a quantized model, Hugging Face
    output) exit with a usage error (2) or a clear error (1) naming the problem, and write no output file.

Logit tolerance: engine_harness.FP32_LOGIT_TOL (max|diff| / max|ref|) and the same argmax everywhere.
"""

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
Q8 = os.path.join(H.SQ_SHARED, "models", "stories15M-q8_0.gguf")
CALIB = os.path.join(H.SQ_SHARED, "data", "classics", "grimms_fairy_tales.txt")
PRUNE_TOOL = os.environ.get("SQ_PRUNE_TOOL") or os.path.join(H.REPO, "build", "tests", "prune_tool")


def svd_tool(w, rank, scale=None):
    """sq_lowrank_svd through prune_tool: (A [rank][cols], B [rows][rank], sigma)."""
    d = H.SQ_WORK
    os.makedirs(d, exist_ok=True)
    wp, sp, ap, bp, gp = (os.path.join(d, f"lowrank-tool-{x}") for x in ("w.f32", "s.f64", "a.f32", "b.f32", "g.f64"))
    w.astype("<f4").tofile(wp)
    if scale is not None:
        scale.astype("<f8").tofile(sp)
    rows, cols = w.shape
    args = [PRUNE_TOOL, "svd", rows, cols, rank, wp, sp if scale is not None else "-", ap, bp, gp]
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if p.returncode != 0:
        raise H.EngineError(p.stderr)
    a = np.fromfile(ap, dtype="<f4").astype(np.float64).reshape(rank, cols)
    b = np.fromfile(bp, dtype="<f4").astype(np.float64).reshape(rows, rank)
    return a, b, np.fromfile(gp, dtype="<f8")


def eckart_young(checks):
    rng = np.random.default_rng(9)
    cases = [(37, 96, 5, False), (96, 37, 20, True), (64, 64, 63, False), (29, 200, 1, True), (133, 70, 34, True)]
    for rows, cols, rank, asvd in cases:
        w = (rng.standard_normal((rows, cols)) * rng.uniform(0.1, 3, cols)).astype(np.float32)
        scale = rng.uniform(0.05, 4, cols) if asvd else None
        what = f"{'asvd' if asvd else 'svd'} {rows}x{cols} rank {rank}"
        try:
            a, b, sigma = svd_tool(w, rank, scale)
        except H.EngineError as e:
            checks.fail(what, e)
            continue
        d = np.ones(cols) if scale is None else scale
        ws = w.astype(np.float64) * d[None, :]
        u, s, vt = np.linalg.svd(ws, full_matrices=False)
        checks.check(np.max(np.abs(sigma - s)) <= 1e-9 * s[0], f"{what}: singular values equal numpy's",
                     f"max diff {np.max(np.abs(sigma - s)):.3g}")
        ref = (u[:, :rank] * s[:rank]) @ vt[:rank] / d[None, :]
        diff = np.max(np.abs(b @ a - ref)) / np.max(np.abs(w))
        checks.check(diff <= 1e-5, f"{what}: B A equals numpy's truncated reconstruction", f"{diff:.3g}")
        err = np.sum(((w - b @ a) * d[None, :]) ** 2)
        tail = np.sum(s[rank:] ** 2)
        tol = 1e-4 if tail > 1e-6 * np.sum(s**2) else 1e-3
        checks.check(abs(err - tail) <= tol * max(tail, 1e-6 * np.sum(s**2)),
                     f"{what}: Eckart-Young, ||(W - BA) D||^2 = sum of the discarded sigma^2",
                     f"{err:.6g} vs {tail:.6g}")


def asvd_beats_svd(checks):
    """A layer whose inputs have a few large channels: ASVD keeps what those channels carry."""
    rng = np.random.default_rng(17)
    rows, cols, n_tok = 80, 150, 2000
    w = rng.standard_normal((rows, cols)).astype(np.float32) / np.sqrt(cols)
    x = rng.standard_normal((n_tok, cols))
    outliers = rng.choice(cols, 6, replace=False)
    x[:, outliers] *= 40
    mean_abs = np.mean(np.abs(x), axis=0)
    for rank in (8, 24, 50):
        try:
            a1, b1, _ = svd_tool(w, rank)
            a2, b2, _ = svd_tool(w, rank, mean_abs**0.5)
        except H.EngineError as e:
            checks.fail(f"asvd vs svd rank {rank}", e)
            continue
        e_svd = np.linalg.norm((w - b1 @ a1) @ x.T)
        e_asvd = np.linalg.norm((w - b2 @ a2) @ x.T)
        checks.check(e_asvd < 0.8 * e_svd,
                     f"rank {rank}: ASVD's output error on the calibration inputs is well below plain SVD's",
                     f"||(W - W_r) X^T||: asvd {e_asvd:.4g}, svd {e_svd:.4g}")


def model_logits(checks, name, src, args, tokens):
    out = os.path.join(H.SQ_WORK, f"lowrank-{name}.gguf")
    try:
        H.run_cli(["prune", "-m", src, "-o", out, *args, "--no-progress"])
        got = R.load(out)
        logits = H.engine_logits(out, tokens, "prefill", got.vocab_size)
    except (H.EngineError, Exception) as e:
        return checks.fail(f"{name}: prune, load, logits", e)
    import gguf

    names = [t.name for t in gguf.GGUFReader(out).tensors]
    n_lr = sum(n.endswith(".weight_a") for n in names)
    checks.check(n_lr > 0 and n_lr == sum(n.endswith(".weight_b") for n in names),
                 f"{name}: the GGUF file holds factor pairs", f"{n_lr} pairs")
    checks.close(f"{name}: logits vs float64 reference with W = B A", logits, R.forward(got, tokens), TOL)


def asvd_cli(checks):
    """ASVD through the CLI on stories15M (calibration text needs its tokenizer), then convert: both say the
    file is squeeze's own."""
    out, again = (os.path.join(H.SQ_WORK, f"lowrank-asvd-{x}.gguf") for x in ("s15m", "convert"))
    p = subprocess.run([H.SQ_BIN, "prune", "-m", S15M, "-o", out, "--method", "asvd", "--param-ratio", "0.8",
                        "--calib", CALIB, "--calib-samples", "2", "--calib-len", "32", "--no-progress"],
                       capture_output=True, text=True)
    checks.check(p.returncode == 0 and "llama.cpp cannot load it" in p.stderr and "factorised" in p.stdout,
                 "asvd: prune writes the file and says llama.cpp cannot load it", p.stderr.strip())
    p = subprocess.run([H.SQ_BIN, "convert", "-m", out, "-o", again], capture_output=True, text=True)
    checks.check(p.returncode == 0 and "llama.cpp cannot load it" in p.stderr,
                 "asvd: convert to GGUF keeps the factors and says llama.cpp cannot load the file", p.stderr.strip())


def refused(checks):
    out = os.path.join(H.SQ_WORK, "lowrank-refused.gguf")
    cases = [
        (S260K, ["--method", "lowrank", "--rank-ratio", "0.5", "--param-ratio", "0.5"], 2, "exactly one of"),
        (S260K, ["--method", "lowrank"], 2, "exactly one of"),
        (S260K, ["--method", "lowrank", "--rank-ratio", "1.5"], 2, "--rank-ratio"),
        (S260K, ["--method", "asvd", "--param-ratio", "0.8"], 2, "asvd needs --calib"),
        (S260K, ["--method", "lowrank", "--param-ratio", "0.8", "--alpha", "1"], 2, "plain lowrank takes no"),
        (S260K, ["--method", "wanda", "--sparsity", "0.5", "--rank-ratio", "0.5"], 2, "belong to lowrank"),
        (S260K, ["--method", "lowrank", "--param-ratio", "0.01"], 1, "what rank 1 in every linear weight keeps"),
        (Q8, ["--method", "lowrank", "--rank-ratio", "0.5"], 1, "is q8_0; factorise f32, f16 or bf16"),
        (S260K, ["--method", "lowrank", "--rank-ratio", "0.5", "--to", "safetensors"], 1,
         "no low-rank (factorised) linear layers"),
    ]
    for src, args, code, needle in cases:
        if os.path.exists(out):
            os.remove(out)
        p = subprocess.run([H.SQ_BIN, "prune", "-m", src, "-o", out, *args, "--no-progress"], capture_output=True,
                           text=True)
        checks.check(p.returncode == code and needle in p.stderr and not os.path.exists(out),
                     f"refused: prune {' '.join(args)} -> exit {code}, names '{needle}', no output",
                     f"exit {p.returncode}: {p.stderr.strip()}")


def main():
    checks = H.Checks(f"squeeze low rank vs numpy's SVD and the float64 reference (logits within {TOL:g})")
    eckart_young(checks)
    asvd_beats_svd(checks)
    rng = np.random.default_rng(5)
    tokens = [1] + [int(t) for t in rng.integers(3, 512, 31)]
    model_logits(checks, "svd-s260k", S260K, ["--method", "lowrank", "--rank-ratio", "0.4"], tokens)
    asvd_cli(checks)
    refused(checks)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
