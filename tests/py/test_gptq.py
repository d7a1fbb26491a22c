"""GPTQ on one layer (src/compress/quant/gptq.c, through tests/tools/gptq_tool) against a plain numpy GPTQ written
from the paper's Algorithm 1 and the authors' gptq.py (`fasterquant`), in float64, on fresh random layers of
awkward shapes with correlated inputs (outlier channels, one dead input):

  - the same H, the same column order: the quantized weights equal the reference's (at least 99.9% of them
    bit for bit as float32, every other within one grid step: rounding ties may fall either way after
    differently ordered sums; in practice all are equal), for every grid (q8_0, q4_0, q4_1; int4/int3/int2
    per group, with a shorter last group, and per row; squeeze's intN_gG formats: int4/int3 g32 and g128, int2 g64, and per row intN_g0), with and without act-order (static groups), lazy blocks smaller than, equal to
    and larger than a group;
  - round to nearest on the same grid (sq_grid_rtn) equals numpy's, and GPTQ's reconstruction error
    ||(Q - W) X|| is below it;
  - packed bytes of the GGUF formats dequantize (gguf.quants, llama.cpp's own definitions; squeeze's own
    formats through tests/py/own_formats.py) to exactly the quantized weights;
  - ggml's other block formats (q4_k, q6_k, q5_k, q3_k, q2_k, q5_0, q5_1), whose scales the format's own
    reference search chooses per block: packed bytes on the grid (gguf), nearest rounding on those scales,
    GPTQ with H = I equal to it, GPTQ's output error below it;
  - a Hessian that damping cannot make positive definite is refused with a message saying so.

The reference chooses a group's parameters when the pass reaches its first column from the current weights
with every earlier column's update applied (as an unbatched pass has them), whatever the lazy block size."""
import os
import subprocess
import sys
import tempfile

import gguf
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import own_formats
from checks import check, failures

TOOL = os.environ.get("SQ_GPTQ_TOOL", "build/tests/gptq_tool")
rng = np.random.default_rng(20261130)
F16 = lambda v: np.float32(np.float16(np.float32(v)))  # noqa: E731  f16 rounding of a float32


# ---- grids: parameters (d, m) of one group of float32 values; value = d * q + m, q in [qmin, qmax]
def choose_q8_0(x):
    return F16(np.float32(np.max(np.abs(x))) / np.float32(127)), np.float32(0)


def choose_q4_0(x):
    mx = x[np.argmax(np.abs(x))]
    d = F16(np.float32(mx) / np.float32(-8))
    return d, np.float32(-8) * d


def choose_q4_1(x):
    return F16((np.float32(x.max()) - np.float32(x.min())) / np.float32(15)), F16(x.min())


def choose_int(bits):
    def choose(x):  # GPTQ's Quantizer.find_params, asymmetric
        lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
        if lo == 0 and hi == 0:
            lo, hi = -1.0, 1.0
        s = (hi - lo) / (2 ** bits - 1)
        z = np.round(-lo / s)
        return np.float32(s), np.float32(-s * z)
    return choose


def choose_intn_stored(bits):
    def choose(x):  # squeeze's intN_gG formats: GPTQ's parameters, the scale stored as f16
        d, z = own_formats.intn_params(x, 2 ** bits - 1)
        return d, np.float32(-z) * d
    return choose


GRIDS = {  # name: (choose, qmin, qmax, group or None (given), gguf type or a dequantizer of the bytes)
    "q8_0": (choose_q8_0, -127, 127, 32, gguf.GGMLQuantizationType.Q8_0),
    "q4_0": (choose_q4_0, 0, 15, 32, gguf.GGMLQuantizationType.Q4_0),
    "q4_1": (choose_q4_1, 0, 15, 32, gguf.GGMLQuantizationType.Q4_1),
    "int4": (choose_int(4), 0, 15, None, None),
    "int3": (choose_int(3), 0, 7, None, None),
    "int2": (choose_int(2), 0, 3, None, None),
}
for bits, group in ((4, 32), (4, 128), (3, 32), (3, 128), (2, 64), (4, 0), (3, 0), (2, 0)):  # g0: per row
    GRIDS[f"int{bits}_g{group}"] = (choose_intn_stored(bits), 0, 2 ** bits - 1, group or None,
                                    lambda data, b=bits, g=group: own_formats.intn_dequantize(data, b, g))


def round_to(x, d, m, qmin, qmax):
    d, m = np.float64(d), np.float64(m)
    q = np.clip(np.round((x - m) / d), qmin, qmax) if d != 0 else np.zeros_like(x)
    return d * q + m


def rtn(W, name, G):
    choose, qmin, qmax = GRIDS[name][:3]
    Q = np.empty_like(W, dtype=np.float64)
    for r in range(W.shape[0]):
        for g in range(0, W.shape[1], G):
            d, m = choose(W[r, g:g + G].astype(np.float32))
            Q[r, g:g + G] = round_to(W[r, g:g + G].astype(np.float64), d, m, qmin, qmax)
    return Q


def gptq_ref(W, xtx, n, name, G, act_order, block, damp=0.01):
    choose, qmin, qmax = GRIDS[name][:3]
    rows, cols = W.shape
    W = W.astype(np.float64).copy()
    H = 2 * xtx / n
    dead = np.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    params = {}  # (row, group) -> (d, m)
    perm = np.arange(cols)
    if act_order:
        perm = np.argsort(-np.diag(H), kind="stable")
        for r in range(rows):  # static groups, from the weights before any update
            for g in range(-(-cols // G)):
                params[r, g] = choose(W[r, g * G:(g + 1) * G].astype(np.float32))
        W = W[:, perm]
        H = H[perm][:, perm]
    H[np.diag_indices(cols)] += damp * np.mean(np.diag(H))
    U = np.linalg.cholesky(np.linalg.inv(H)).T  # upper: H^-1 = U^T U
    Q = np.zeros_like(W)
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        W1 = W[:, i1:i2].copy()
        Err1 = np.zeros((rows, i2 - i1))
        for i in range(i2 - i1):
            c = perm[i1 + i]
            if not act_order and c % G == 0:
                # the group's current weights: this block's as updated so far, later ones with the pending
                # updates of this block's earlier columns applied
                cur = np.concatenate([W1[:, i:], W[:, i2:] - Err1[:, :i] @ U[i1:i1 + i, i2:]], axis=1)[:, :G]
                for r in range(rows):
                    params[r, c // G] = choose(cur[r].astype(np.float32))
            w = W1[:, i]
            q = np.array([round_to(w[r:r + 1], *params[r, c // G], qmin, qmax)[0] for r in range(rows)])
            Q[:, i1 + i] = q
            err = (w - q) / U[i1 + i, i1 + i]
            W1[:, i:] -= np.outer(err, U[i1 + i, i1 + i:i2])
            Err1[:, i] = err
        W[:, i2:] -= Err1 @ U[i1:i2, i2:]
    out = np.empty_like(Q)
    out[:, perm] = Q
    return out


def run_tool(name, group, act, block, W, xtx, n, damp=0.01, methods=("gptq",)):
    """{method: (values, packed bytes)} of each method run by one gptq_tool process, and its stderr."""
    with tempfile.TemporaryDirectory() as d:
        w, h, v, p = (os.path.join(d, f) for f in ("w", "h", "v", "p"))
        W.astype(np.float32).tofile(w)
        xtx.astype(np.float64).tofile(h)
        r = subprocess.run([TOOL, ",".join(methods), name, str(group), str(act), str(block), str(damp),
                            str(W.shape[0]), str(W.shape[1]), str(n), w, h, v, p], capture_output=True, text=True)
        if r.returncode != 0:
            return {}, r.stderr
        return {m: (np.fromfile(f"{v}.{m}", dtype=np.float32).reshape(W.shape), open(f"{p}.{m}", "rb").read())
                for m in methods}, ""


def inputs(n, cols):
    """Correlated activations with a few outlier channels and one dead channel."""
    X = rng.standard_normal((n, cols)) @ (np.eye(cols) + 0.3 * rng.standard_normal((cols, cols)) / np.sqrt(cols))
    X[:, rng.choice(cols, 3, replace=False)] *= 8
    X[:, rng.integers(cols)] = 0
    return X.astype(np.float32).astype(np.float64)


CASES = [  # grid, group (intN), rows, cols, act_order, lazy block
    ("q4_0", 0, 37, 96, 0, 40), ("q4_0", 0, 37, 96, 1, 128), ("q8_0", 0, 19, 160, 1, 128),
    ("q8_0", 0, 21, 64, 0, 32), ("q4_1", 0, 23, 64, 0, 128), ("int4", 32, 29, 96, 0, 128),
    ("int4", 32, 29, 96, 1, 128), ("int3", 0, 17, 72, 0, 16), ("int4", 64, 11, 256, 0, 128),
    ("int2", 128, 13, 384, 0, 64), ("int3", 128, 16, 256, 1, 128),
    ("int4", 128, 15, 288, 0, 128), ("int4", 128, 15, 288, 1, 128), ("int3", 64, 9, 200, 0, 100),  # short last group
    ("int4_g32", 0, 21, 96, 0, 64), ("int4_g128", 0, 13, 256, 1, 128), ("int4_g128", 0, 9, 384, 0, 96),
    ("int3_g32", 0, 17, 96, 0, 64), ("int3_g128", 0, 9, 256, 1, 128), ("int2_g64", 0, 11, 192, 0, 128),
    ("int4_g0", 0, 13, 96, 0, 64), ("int3_g0", 0, 9, 160, 1, 128), ("int2_g0", 0, 7, 288, 0, 128),
]

for name, group, rows, cols, act, block in CASES:
    G = GRIDS[name][3] or (group or cols)
    W = (rng.standard_normal((rows, cols)) * rng.uniform(0.01, 0.1)).astype(np.float32)
    n = 2 * cols + 7
    X = inputs(n, cols)
    xtx = X.T @ X
    out, msg = run_tool(name, group, act, block, W, xtx, n, methods=("gptq", "rtn"))
    what = f"{name} g{group} [{rows}][{cols}] act_order={act} block={block}"
    if not out:
        check(False, f"{what}: gptq_tool failed: {msg}")
        continue
    (got, packed), (got_rtn, packed_rtn) = out["gptq"], out["rtn"]
    # the reference's block size as the C code adjusts it does not matter: the reference is block-independent
    want = gptq_ref(W, xtx, n, name, G, act, 128).astype(np.float32)
    same = np.mean(got == want)
    step = np.max(np.abs(got - want))
    grid_step = np.max(np.abs(want)) / GRIDS[name][2] * 2
    check(same >= 0.999 and step <= grid_step, f"{what}: {same:.4%} of values equal the numpy GPTQ's "
          f"(largest difference {step:.3g}, a grid step about {grid_step:.3g})")
    Wd = W.astype(np.float64)
    e_gptq = np.linalg.norm((got.astype(np.float64) - Wd) @ X.T)
    want_rtn = rtn(W, name, G).astype(np.float32)
    check(np.array_equal(got_rtn, want_rtn), f"{what}: round to nearest on the grid equals numpy's")
    e_rtn = np.linalg.norm((want_rtn.astype(np.float64) - Wd) @ X.T)
    check(e_gptq < e_rtn, f"{what}: output error GPTQ {e_gptq:.4g} < RTN {e_rtn:.4g}")
    qt = GRIDS[name][4]
    if qt is not None:
        if isinstance(qt, gguf.GGMLQuantizationType):
            deq = lambda data, qt=qt: np.asarray(  # noqa: E731
                gguf.quants.dequantize(np.frombuffer(data, dtype=np.uint8).reshape(rows, -1), qt), dtype=np.float32)
        else:
            deq = lambda data, qt=qt: qt(data).reshape(rows, cols)  # noqa: E731
        back = deq(packed)
        # as values: ggml's (q - 8) * d gives -0 where d * q + m gives +0
        check(np.array_equal(back, got), f"{what}: packed bytes dequantize (gguf, own_formats) to the quantized values")
        back = deq(packed_rtn)
        check(np.array_equal(back, got_rtn), f"{what}: RTN's packed bytes dequantize (gguf, own_formats) to its values")
    else:
        check(packed == b"", f"{what}: no packed layout for {name}")

# ggml's block formats, whose block scales the format's own reference search chooses (no numpy copy of
# ggml's searches here): packed bytes dequantize (gguf) exactly to the quantized values; round to nearest on
# a block's reference scales is, value by value, never farther from W than the reference quantizer's own
# rounding on the same scales; with H = I (no error to feed forward; two formats) GPTQ is that rounding; with correlated
# inputs GPTQ's output error is below it.
KCASES = [("q4_k", 13, 512, 0, 1), ("q6_k", 7, 256, 1, 0), ("q5_k", 5, 256, 0, 0), ("q3_k", 6, 256, 0, 1),
          ("q2_k", 6, 256, 0, 0), ("q5_0", 11, 96, 0, 0), ("q5_1", 9, 64, 1, 0)]
for name, rows, cols, act, eye_case in KCASES:
    qt = getattr(gguf.GGMLQuantizationType, name.upper())
    what = f"{name} [{rows}][{cols}] act_order={act}"
    W = (rng.standard_normal((rows, cols)) * rng.uniform(0.01, 0.1)).astype(np.float32)
    W[0, :16] = 0  # an all-zero sub-block
    n = 2 * cols + 7
    X = inputs(n, cols)
    xtx = X.T @ X
    deq = lambda data: np.asarray(gguf.quants.dequantize(  # noqa: E731
        np.frombuffer(data, dtype=np.uint8).reshape(rows, -1), qt), dtype=np.float32)
    out, msg = run_tool(name, 0, act, 128, W, xtx, n, methods=("gptq", "rtn", "ref"))
    eye, msg2 = run_tool(name, 0, 0, 128, W, np.eye(cols) * n / 2, n) if eye_case else ({}, "")
    if not out or (eye_case and not eye):
        check(False, f"{what}: gptq_tool failed: {msg}{msg2}")
        continue
    (got, packed), (got_rtn, packed_rtn), (got_ref, packed_ref) = out["gptq"], out["rtn"], out["ref"]
    check(np.array_equal(deq(packed), got), f"{what}: GPTQ's packed bytes dequantize (gguf) to its values")
    check(np.array_equal(deq(packed_rtn), got_rtn), f"{what}: RTN's packed bytes dequantize (gguf) to its values")
    check(np.array_equal(deq(packed_ref), got_ref), f"{what}: the reference quantizer's bytes dequantize (gguf)")
    d_rtn, d_ref = np.abs(got_rtn.astype(np.float64) - W), np.abs(got_ref.astype(np.float64) - W)
    check(np.all(d_rtn <= d_ref * (1 + 1e-6) + 1e-12) and np.mean(got_rtn == got_ref) > 0.9,
          f"{what}: nearest on the reference's scales: {np.mean(got_rtn == got_ref):.2%} as the reference rounds, "
          f"none farther (worst {np.max(d_rtn - d_ref):.3g})")
    if eye_case:
        check(np.array_equal(eye["gptq"][0], got_rtn), f"{what}: GPTQ with H = I equals round to nearest on the grid")
    Wd = W.astype(np.float64)
    e_gptq = np.linalg.norm((got.astype(np.float64) - Wd) @ X.T)
    e_rtn = np.linalg.norm((got_rtn.astype(np.float64) - Wd) @ X.T)
    check(e_gptq < e_rtn, f"{what}: output error GPTQ {e_gptq:.4g} < RTN {e_rtn:.4g}")

# a "Hessian" no damping makes positive definite
_, msg = run_tool("q4_0", 0, 0, 128, np.ones((4, 32), np.float32), -np.eye(32), 10)
check("not positive definite" in msg, f"a negative definite Hessian is refused: {msg.strip()}")
_, msg = run_tool("q4_0", 0, 0, 128, np.ones((4, 48), np.float32), np.eye(48), 10)
check("whole number of 32-element groups" in msg, f"rows that are not whole blocks are refused: {msg.strip()}")

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
