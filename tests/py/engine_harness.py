"""Running the squeeze CLI from the forward-pass tests and comparing its logits with the float64 reference.

Every check is printed as one line (PASS/FAIL, what, the measured value and the bound) and counted; a test
script ends with `sys.exit(checks.finish())`, which is non-zero when anything failed. A failing engine call
(missing feature, crash, bad output size) is a failure, never a skip.
"""

import os
import shlex
import subprocess
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))


def env_path(var, default):
    return os.environ.get(var) or default


SQ_BIN = env_path("SQ_BIN", os.path.join(REPO, "build", "squeeze"))
SQ_SHARED = env_path("SQ_SHARED", os.path.normpath(os.path.join(REPO, "..", "shared")))
SQ_TEST_DATA = env_path("SQ_TEST_DATA", os.path.join(REPO, "tests", "data"))
SQ_WORK = env_path("SQ_WORK", os.path.join(tempfile.gettempdir(), "sq-test-work"))


# The accuracy contract of squeeze's fp32 forward pass: every logit within FP32_LOGIT_TOL * max|logit| of a
# float64 evaluation of the same model, whatever the kernel set, batch shape or thread count (asserted on the
# llama2.c checkpoints by test_logits_stories.py; measured there at most 2.8e-6). Tests that compare two fp32
# runs derive their tolerances from it.
FP32_LOGIT_TOL = 1e-5


class EngineError(Exception):
    pass


def run_cli(args, timeout=600):
    """Runs `squeeze ARGS`; returns stdout, raises EngineError with the command and its stderr on failure."""
    cmd = [SQ_BIN] + [str(a) for a in args]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise EngineError(f"timed out after {timeout}s: {shlex.join(cmd)}")
    except OSError as e:
        raise EngineError(f"cannot run {shlex.join(cmd)}: {e}")
    if p.returncode != 0:
        raise EngineError(f"exit {p.returncode}: {shlex.join(cmd)}\n{p.stderr.strip()[-2000:]}")
    return p.stdout


def engine_logits(model, tokens, mode, vocab, extra=()):
    """`squeeze logits` for tokens in the given mode (prefill | decode | chunks:N) as float32 [n][vocab]."""
    os.makedirs(SQ_WORK, exist_ok=True)
    fd, out = tempfile.mkstemp(suffix=".f32", dir=SQ_WORK)
    os.close(fd)
    try:
        run_cli(["logits", "-m", model, "--tokens", " ".join(map(str, tokens)), "-o", out, "--mode", mode,
                 *extra])
        data = np.fromfile(out, dtype="<f4")
    finally:
        os.remove(out)
    if data.size != len(tokens) * vocab:
        raise EngineError(f"squeeze logits wrote {data.size} floats for {len(tokens)} tokens x vocab {vocab} "
                          f"(expected {len(tokens) * vocab})")
    return data.reshape(len(tokens), vocab)


def engine_greedy(model, tokens, n):
    out = run_cli(["logits", "-m", model, "--tokens", " ".join(map(str, tokens)), "--greedy", n])
    try:
        return [int(x) for x in out.split()]
    except ValueError:
        raise EngineError(f"squeeze logits --greedy printed something other than ids: {out[:200]!r}")


def convert(src, dst, to):
    run_cli(["convert", "-m", src, "-o", dst, "--to", to])
    if not os.path.exists(dst):
        raise EngineError(f"squeeze convert --to {to} exited 0 but wrote no {dst}")
    return dst


def rel_diff(got, ref):
    """max |got - ref| / max |ref|."""
    got, ref = np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    return float(np.abs(got - ref).max() / np.abs(ref).max())


def log_softmax(x):
    x = np.asarray(x, dtype=np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def kl_and_top1(p_logits, q_logits):
    """Mean KL(P || Q) per position and top-1 agreement between two logit sets [n][vocab]."""
    lp, lq = log_softmax(p_logits), log_softmax(q_logits)
    kl = (np.exp(lp) * (lp - lq)).sum(axis=-1)
    agree = np.mean(np.argmax(p_logits, -1) == np.argmax(q_logits, -1))
    return float(kl.mean()), float(agree)


def read_tokens(path):
    with open(path) as f:
        return [int(x) for x in f.read().split()]


class Checks:
    def __init__(self, title):
        self.failed = []
        self.n = 0
        print(f"== {title}", flush=True)

    def check(self, ok, what, detail=""):
        self.n += 1
        print(f"{'PASS' if ok else 'FAIL'}  {what}" + (f"  [{detail}]" if detail else ""), flush=True)
        if not ok:
            self.failed.append(what)
        return ok

    def fail(self, what, err):
        msg = str(err).replace("\n", "\n        ")
        return self.check(False, what, msg)

    def close(self, what, got, ref, tol, argmax=True):
        """got vs ref logits: relative max error within tol and (optionally) the same argmax everywhere."""
        r = rel_diff(got, ref)
        detail = f"max|diff|/max|ref| = {r:.3g} <= {tol:g}"
        ok = r <= tol
        if argmax:
            ga, ra = np.argmax(got, -1), np.argmax(ref, -1)
            bad = np.flatnonzero(np.atleast_1d(ga != ra))
            detail += f"; argmax equal at {np.size(ga) - bad.size}/{np.size(ga)} positions"
            if bad.size:
                detail += f" (first mismatch at {bad[0]}: {np.atleast_1d(ga)[bad[0]]} vs {np.atleast_1d(ra)[bad[0]]})"
            ok = ok and bad.size == 0
        return self.check(ok, what, detail)

    def greedy(self, what, model, prompt, ids, ref_ids, tol):
        """The engine's greedy ids vs the reference's. Identical passes. Where they part, the choice must have
        been a near-tie that tol allows to flip: every engine token, fed back through the reference
        (teacher forcing), must be within 2 * tol * max|logit| of the reference's best logit."""
        import reference as R

        if ids == ref_ids:
            return self.check(True, what, f"all {len(ids)} ids identical")
        if len(ids) != len(ref_ids):
            return self.check(False, what, f"{len(ids)} ids, expected {len(ref_ids)}")
        first = next(i for i, (a, b) in enumerate(zip(ids, ref_ids)) if a != b)
        lg = R.forward(model, list(prompt) + list(ids[:-1]))[len(prompt) - 1 :]
        gaps = lg.max(axis=1) - lg[np.arange(len(ids)), ids]
        allowed = 2 * tol * np.abs(lg).max()
        return self.check(
            bool(gaps.max() <= allowed),
            what,
            f"first differs at step {first} (engine {ids[first]}, reference {ref_ids[first]}); along the engine's "
            f"path its tokens trail the reference argmax by at most {gaps.max():.3g} (allowed near-tie "
            f"{allowed:.3g} = 2 * {tol:g} * max|logit|)",
        )

    def finish(self):
        print(f"== {self.n - len(self.failed)}/{self.n} checks passed", flush=True)
        for f in self.failed:
            print(f"FAILED: {f}")
        return 1 if self.failed else 0
