"""squeeze prune against independent oracles:

  - Wanda and SparseGPT on random layers of awkward shapes (rows not a multiple of anything, columns spanning
    one, two and a partial lazy block of 128, dead and outlier input channels), unstructured and N:M, through
    tests/tools/prune_tool, against numpy implementations of the papers' reference code (Wanda: |W| * ||X_j||
    per output row; SparseGPT: H = 2 X^T X / n dampened by 1% of its mean diagonal, the upper Cholesky factor of
    H^-1, lazy column blocks with the OBS update): the same weights zeroed, the rest within 1e-5 relative;
  - magnitude pruning of stories260K (a real llama2.c checkpoint: 5 blocks, GQA, FFN 172) at 50% and 2:4, written
    as GGUF and read back by the `gguf` package: every block's linear weight equals the original times a numpy
    mask (per matrix, the floor(s * n) smallest |W| zero, ties to the lower index; N:M: the M - N smallest of
    every M consecutive weights of a row zero), everything else equals the original, and squeeze's logits of the
    pruned file equal the float64 reference forward (reference.py) of the numpy-masked weights;
  - depth pruning of stories15M by the ppl criterion (calibrated on Grimms' fairy tales): the --scores-json
    report names the K lowest-scored blocks as removed, and squeeze's logits of the pruned file equal the float64
    reference forward of the original with those blocks removed;
  - width pruning of stories15M (a third of the heads, a quarter of the FFN channels of every block): the GGUF
    file's blocks are slices of the original (whole heads: the same kept heads in attn_q, attn_k, attn_v rows and
    attn_output columns; the same kept channels in ffn_gate, ffn_up rows and ffn_down columns), and squeeze's logits
    of it equal the float64 reference forward of those sliced weights;
  - the published ordering on stories15M at 50% unstructured sparsity: calibrated on Grimms' fairy tales, Wanda's
    and SparseGPT's perplexity on held-out TinyStories text lies far (at least 25%) below magnitude pruning's;
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
PRUNE_TOOL = os.environ.get("SQ_PRUNE_TOOL") or os.path.join(H.REPO, "build", "tests", "prune_tool")


def lowest(score, k):
    """Indices of the k lowest of a flat float32 score array, ties to the lower index."""
    return np.argsort(score, kind="stable")[:k]


def wanda_ref(w, sum_sq, sparsity, nm):
    """Wanda (Sun et al. 2023): score |W_ij| * ||X_j||_2, compared within each output row."""
    score = (np.abs(w.astype(np.float64)) * np.sqrt(sum_sq)[None, :]).astype(np.float32)
    out = w.copy()
    if nm is None:
        k = int(np.floor(sparsity * w.shape[1]))
        for r in range(w.shape[0]):
            out[r, lowest(score[r], k)] = 0
    else:
        n, m = nm
        for r in range(w.shape[0]):
            for g in range(0, w.shape[1], m):
                out[r, g + lowest(score[r, g : g + m], m - n)] = 0
    return out


def sparsegpt_ref(w, xtx, n_tokens, sparsity, nm):
    """SparseGPT's fasterprune (Frantar & Alistarh 2023, reference code), in float64."""
    W = w.astype(np.float64).copy()
    rows, cols = W.shape
    H = 2 * xtx / n_tokens
    dead = np.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H[np.arange(cols), np.arange(cols)] += 0.01 * np.mean(np.diag(H))
    U = np.linalg.cholesky(np.linalg.inv(H)).T  # H^-1 = U^T U
    m = nm[1] if nm else 0
    bs = max(m, 128 // m * m) if m else 128
    for i1 in range(0, cols, bs):
        i2 = min(i1 + bs, cols)
        W1, Hinv1 = W[:, i1:i2].copy(), U[i1:i2, i1:i2]
        Q1, Err1 = np.zeros_like(W1), np.zeros_like(W1)
        mask1 = np.zeros(W1.shape, dtype=bool)
        if not nm:
            tmp = (W1**2 / np.diag(Hinv1)[None, :] ** 2).astype(np.float32).ravel()
            mask1.ravel()[lowest(tmp, int(np.floor(sparsity * tmp.size)))] = True
        for i in range(i2 - i1):
            if nm and i % m == 0:
                tmp = (W1[:, i : i + m] ** 2 / np.diag(Hinv1)[i : i + m][None, :] ** 2).astype(np.float32)
                for r in range(rows):
                    mask1[r, i + lowest(tmp[r], m - nm[0])] = True
            w_col, d = W1[:, i], Hinv1[i, i]
            q = np.where(mask1[:, i], 0.0, w_col)
            Q1[:, i] = q
            err1 = (w_col - q) / d
            W1[:, i:] -= np.outer(err1, Hinv1[i, i:])
            Err1[:, i] = err1
        W[:, i1:i2] = Q1
        W[:, i2:] -= Err1 @ U[i1:i2, i2:]
    return W


def run_tool(method, w, stats, sparsity, nm, n_tokens=None):
    d = H.SQ_WORK
    os.makedirs(d, exist_ok=True)
    wp, sp, op = (os.path.join(d, f"prune-tool-{x}") for x in ("w.f32", "stats.f64", "out.f32"))
    w.astype("<f4").tofile(wp)
    stats.astype("<f8").tofile(sp)
    n, m = nm if nm else (0, 0)
    args = [PRUNE_TOOL, method, w.shape[0], w.shape[1], repr(sparsity if not nm else 0.0), n, m, wp, sp]
    args += [n_tokens] if method == "sparsegpt" else []
    p = subprocess.run([str(a) for a in args + [op]], capture_output=True, text=True)
    if p.returncode != 0:
        raise H.EngineError(p.stderr)
    return np.fromfile(op, dtype="<f4").reshape(w.shape)


def calibrated_methods(checks):
    rng = np.random.default_rng(2024)
    cases = [(37, 96, 0.5, None), (29, 200, 0.37, None), (41, 256, None, (2, 4)), (23, 136, None, (1, 4)),
             (17, 264, None, (4, 8)), (5, 40, 0.9, None)]
    for rows, cols, sparsity, nm in cases:
        w = rng.standard_normal((rows, cols)).astype(np.float32)
        n_tokens = 3 * cols
        x = rng.standard_normal((n_tokens, cols)) * np.exp(rng.standard_normal(cols))  # channel scales vary
        x[:, rng.choice(cols, 3, replace=False)] *= 20  # outlier channels
        x[:, rng.choice(cols, 2, replace=False)] = 0  # dead channels
        x = x.astype(np.float32).astype(np.float64)
        label = f"{rows}x{cols} " + (f"{nm[0]}:{nm[1]}" if nm else f"sparsity {sparsity}")
        for method, stats, ref in [
            ("wanda", (x**2).sum(axis=0), lambda st: wanda_ref(w, st, sparsity, nm)),
            ("sparsegpt", x.T @ x, lambda st: sparsegpt_ref(w, st, n_tokens, sparsity, nm)),
        ]:
            try:
                got = run_tool(method, w, stats, sparsity, nm, n_tokens)
            except H.EngineError as e:
                checks.fail(f"{method} {label}", e)
                continue
            want = ref(stats)
            same_mask = np.array_equal(got == 0, want == 0)
            if nm:
                same_mask &= bool(((got.reshape(-1, nm[1]) != 0).sum(axis=1) <= nm[0]).all())
            r = H.rel_diff(got, want)
            checks.check(same_mask and r <= 1e-5, f"{method} {label}: same zeros as numpy, values within 1e-5",
                         f"zeros {int((got == 0).sum())} vs {int((want == 0).sum())}, rel diff {r:.3g}")


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


def kept_rows(small, big, width):
    """Which groups of `width` rows of big the rows of small are (in order), or None."""
    groups = big.reshape(-1, width, big.shape[-1]) if big.ndim == 2 else big.reshape(-1, width)
    out = []
    for g in (small.reshape(-1, width, small.shape[-1]) if small.ndim == 2 else small.reshape(-1, width)):
        hit = [i for i, b in enumerate(groups) if np.array_equal(g, b)]
        if len(hit) != 1:
            return None
        out.append(hit[0])
    return out


def width(checks):
    out = os.path.join(H.SQ_WORK, "prune-width.gguf")
    try:
        H.run_cli(["prune", "-m", S15M, "-o", out, "--method", "width", "--heads", "0.34", "--ffn", "0.25",
                   "--calib", CALIB, "--calib-samples", "8", "--calib-len", "128", "--no-progress"])
        got = R.load(out)
    except (H.EngineError, Exception) as e:
        return checks.fail("width: prune and load", e)
    base = R.load(S15M)
    hd = base.head_dim
    ok, detail = True, []
    for l, (lb, lg) in enumerate(zip(base.layers, got.layers)):
        heads = kept_rows(lg.wk, lb.wk, hd)
        chans = kept_rows(lg.w_gate, lb.w_gate, 1)
        if heads is None or chans is None:
            ok = False
            detail.append(f"blk.{l}: rows are not whole original heads / channels")
            continue
        cols = np.concatenate([np.arange(h * hd, (h + 1) * hd) for h in heads])
        ok &= len(heads) == 4 and len(chans) == 576 and heads == sorted(heads) and chans == sorted(chans)
        ok &= np.array_equal(lg.wq, lb.wq[cols]) and np.array_equal(lg.wv, lb.wv[cols])
        ok &= np.array_equal(lg.wo, lb.wo[:, cols])
        ok &= np.array_equal(lg.w_up, lb.w_up[chans]) and np.array_equal(lg.w_down, lb.w_down[:, chans])
        detail.append(f"blk.{l} heads {heads}")
    checks.check(ok, "width: every block is whole original heads (q, k, v rows, o columns) and FFN channels",
                 "; ".join(detail))
    tokens = H.read_tokens(os.path.join(H.SQ_SHARED, "golden", "stories15M.tokens.txt"))
    try:
        logits = H.engine_logits(out, tokens, "prefill", base.vocab_size)
    except H.EngineError as e:
        return checks.fail("width: logits", e)
    checks.close("width: logits vs float64 reference of the sliced weights", logits, R.forward(got, tokens), TOL)


def ppl(model, text):
    out = H.run_cli(["ppl", "-m", model, "-f", text, "--no-progress"])
    return float(next(line.split()[1] for line in out.splitlines() if line.startswith("perplexity")))


def published_ordering(checks):
    text = os.path.join(H.SQ_WORK, "prune-eval.txt")
    with open(os.path.join(H.SQ_SHARED, "data", "tinystories", "valid-a.txt"), encoding="utf-8") as f:
        stories = f.read()
    with open(text, "w", encoding="utf-8") as f:
        f.write(stories[:40000])
    got = {}
    try:
        got["dense"] = ppl(S15M, text)
        for method in ("magnitude", "wanda", "sparsegpt"):
            out = os.path.join(H.SQ_WORK, f"prune-order-{method}.gguf")
            calib = [] if method == "magnitude" else ["--calib", CALIB, "--calib-samples", "16", "--calib-len", "128"]
            H.run_cli(["prune", "-m", S15M, "-o", out, "--method", method, "--sparsity", "0.5", *calib,
                       "--no-progress"])
            got[method] = ppl(out, text)
    except H.EngineError as e:
        return checks.fail("stories15M at 50%: prune and measure", e)
    detail = ", ".join(f"{k} {v:.3f}" for k, v in got.items())
    checks.check(got["dense"] < got["wanda"] and got["dense"] < got["sparsegpt"]
                 and got["wanda"] < 0.75 * got["magnitude"] and got["sparsegpt"] < 0.75 * got["magnitude"],
                 "stories15M at 50%: Wanda and SparseGPT perplexity far below magnitude's", detail)


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
        (["--method", "wanda", "--sparsity", "0.5"], 2, "wanda needs --calib"),
        (["--method", "sparsegpt", "--nm", "2:4"], 2, "sparsegpt needs --calib"),
        (["--method", "sparsegpt", "--nm", "2:4", "--calib", CALIB], 1, "has no tokenizer to encode"),
    ]
    for args, code, needle in cases:
        if os.path.exists(out):
            os.remove(out)
        p = subprocess.run([H.SQ_BIN, "prune", "-m", S260K, "-o", out, *args], capture_output=True, text=True)
        checks.check(p.returncode == code and needle in p.stderr and not os.path.exists(out),
                     f"refused: prune {' '.join(args)} -> exit {code}, names '{needle}', no output",
                     f"exit {p.returncode}: {p.stderr.strip()}")


def main():
    checks = H.Checks(f"squeeze prune vs numpy methods and masks and the float64 reference (logits within {TOL:g})")
    base = R.load(S260K)
    rng = np.random.default_rng(3)
    tokens = [1] + [int(t) for t in rng.integers(3, base.vocab_size, 31)]
    calibrated_methods(checks)
    magnitude(checks, base, tokens, "s50", ["--sparsity", "0.5"], sparsity=0.5)
    magnitude(checks, base, tokens, "nm24", ["--nm", "2:4"], nm=(2, 4))
    depth(checks)
    width(checks)
    published_ordering(checks)
    refused(checks)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
