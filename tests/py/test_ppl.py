"""squeeze ppl against an independent numpy reference.

The reference takes every window's logits from `squeeze logits` (one forward call per window, no batching)
and computes log-softmax, NLL, KL and top-1 agreement in float64. Checked: the three protocols (windows,
--stride, --score-second-half) and --batch to 1e-4 relative in ppl; KL of a model against itself (0, 100%
agreement) and against a perturbed copy (mean and max KL, agreement, reference ppl); --save-logits /
--ref-logits (top-k KL equals the coarse-grained reference KL and is a lower bound on the exact KL; with k =
vocab it equals the exact KL); refusals of mismatched reference files; invalid UTF-8 and too-short input.
Uses stories260K (vocab 512) on random token ids, so it needs no tokenizer and runs in seconds.
"""
import json
import os
import subprocess
import sys

import numpy as np

SHARED, BIN, WORK = os.environ["SQ_SHARED"], os.environ["SQ_BIN"], os.environ["SQ_WORK"]
work = os.path.join(WORK, "py_ppl")
os.makedirs(work, exist_ok=True)
from checks import check, failures



def close(got, want, rel, what, abs_tol=0.0):
    check(abs(got - want) <= rel * abs(want) + abs_tol, f"{what}: {got:.10g} vs reference {want:.10g}")


def model_link(name, target):
    """The model alone in a folder (a symlink), so no tokenizer beside it is picked up."""
    path = os.path.join(work, name)
    if not os.path.lexists(path):
        os.symlink(target, path)
    return path


MODEL = model_link("stories260K.bin", os.path.join(SHARED, "models", "stories260K.bin"))
VOCAB = 512

# A perturbed copy: every float after the header scaled by (1 + 3% noise).
PERTURBED = os.path.join(work, "perturbed260K.bin")
raw = open(os.path.join(SHARED, "models", "stories260K.bin"), "rb").read()
rng = np.random.default_rng(1234)
weights = np.frombuffer(raw[28:], dtype="<f4").copy()
weights *= 1 + 0.03 * rng.standard_normal(weights.size).astype(np.float32)
open(PERTURBED, "wb").write(raw[:28] + weights.tobytes())

ids = rng.integers(3, VOCAB, size=300)
ids[0] = 1
IDS = os.path.join(work, "ids.txt")
open(IDS, "w").write(" ".join(map(str, ids)))


def run(args, expect_ok=True):
    p = subprocess.run([BIN] + args, capture_output=True, text=True)
    if expect_ok and p.returncode != 0:
        print(p.stdout, p.stderr)
        raise SystemExit(f"squeeze {' '.join(args)} failed")
    return p


def ppl(*extra, model=MODEL):
    out = os.path.join(work, "report.json")
    run(["ppl", "-m", model, "--ids", IDS, "--ctx", "64", "-t", "2", "--no-progress", "--json", out] + list(extra))
    return json.load(open(out))


logit_cache = {}


def logits(model, tokens):
    key = (model, tuple(tokens))
    if key not in logit_cache:
        out = os.path.join(work, "logits.f32")
        run(["logits", "-m", model, "--tokens", " ".join(map(str, tokens)), "-o", out, "-t", "2"])
        logit_cache[key] = np.fromfile(out, dtype="<f4").reshape(len(tokens), VOCAB).astype(np.float64)
    return logit_cache[key]


def log_softmax(z):
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def windows(protocol, ctx=64, stride=None):
    """(start, end, first scored position) per window, written out from each protocol's definition."""
    n = len(ids)
    if protocol == "stride":
        out, prev_end = [], 0
        for begin in range(0, n, stride):
            end = min(begin + ctx, n)
            out.append((begin, end, max(prev_end, begin + 1) - begin))
            prev_end = end
            if end == n:
                break
        return out
    first = 1 if protocol == "windows" else ctx // 2 + 1
    return [(k * ctx, k * ctx + ctx, first) for k in range(n // ctx)]


def reference(protocol, stride=None, ref_model=None, top_k=None):
    nll, ref_nll, kls, kls_topk, agree = [], [], [], [], []
    for begin, end, first in windows(protocol, stride=stride):
        toks = list(ids[begin:end])
        lm = log_softmax(logits(MODEL, toks))
        for p in range(first, end - begin):
            nll.append(-lm[p - 1, toks[p]])
        if ref_model is None:
            continue
        lr = log_softmax(logits(ref_model, toks))
        for p in range(first, end - begin):
            a, b = lr[p - 1], lm[p - 1]
            ref_nll.append(-a[toks[p]])
            kls.append(float(np.sum(np.exp(a) * (a - b))))
            agree.append(np.argmax(a) == np.argmax(b))
            if top_k:
                top = np.argsort(-a, kind="stable")[:top_k]
                tail = 1 - np.exp(a[top]).sum()
                q_rest = 1 - np.exp(b[top]).sum()
                k = float(np.sum(np.exp(a[top]) * (a[top] - b[top])))
                if tail > 0:
                    k += tail * np.log(tail / q_rest)
                kls_topk.append(k)
    r = {"ppl": float(np.exp(np.mean(nll))), "n": len(nll), "nll": np.array(nll)}
    if ref_model is not None:
        r.update(ref_ppl=float(np.exp(np.mean(ref_nll))), kl_mean=float(np.mean(kls)), kl_max=float(np.max(kls)),
                 agree=float(np.mean(agree)))
        if top_k:
            r["kl_topk"] = float(np.mean(kls_topk))
    return r


# --- protocols and batching
for protocol, flags, stride in [("windows", [], None), ("stride", ["--stride", "24"], 24),
                                ("second-half", ["--score-second-half"], None)]:
    want = reference(protocol, stride)
    for batch in ("1", "3"):
        got = ppl("--batch", batch, *flags)
        check(got["kind"] == "ppl" and got["protocol"]["name"] == protocol, f"{protocol}: report kind and protocol")
        check(got["tokens_scored"] == want["n"], f"{protocol} batch {batch}: {got['tokens_scored']} tokens scored, "
              f"reference {want['n']}")
        close(got["ppl"], want["ppl"], 1e-4, f"{protocol} batch {batch}: ppl")
    sd = want["nll"].std(ddof=1)
    half = 1.96 * sd / np.sqrt(want["n"])
    close(got["ppl_ci95"][0], float(np.exp(want["nll"].mean() - half)), 1e-4, f"{protocol}: CI low")
    close(got["ppl_ci95"][1], float(np.exp(want["nll"].mean() + half)), 1e-4, f"{protocol}: CI high")
    check(sum(w["scored"] for w in got["per_window"]) == want["n"], f"{protocol}: per-window counts add up")

# --- KL against itself and against a perturbed copy
got = ppl("--ref", MODEL, "--batch", "2")
check(got["reference"]["kl_mean"] < 1e-6 and got["reference"]["kl_max"] < 1e-5,
      f"self KL is 0 (mean {got['reference']['kl_mean']:.3g}, max {got['reference']['kl_max']:.3g})")
check(got["reference"]["top1_agreement"] == 1.0, "self top-1 agreement is 100%")
close(got["reference"]["ppl_ratio"], 1.0, 1e-6, "self ppl ratio")

want = reference("windows", ref_model=PERTURBED, top_k=16)
got = ppl("--ref", PERTURBED, "--batch", "2", "--save-logits", os.path.join(work, "ref16.bin"), "--save-top-k", "16")
r = got["reference"]
check(r["kl_method"] == "exact", "live reference: exact KL")
check(want["kl_mean"] > 1e-3, f"perturbed model: reference KL {want['kl_mean']:.4g} > 0")
close(r["kl_mean"], want["kl_mean"], 1e-4, "perturbed: KL mean", 1e-7)
close(r["kl_max"], want["kl_max"], 1e-4, "perturbed: KL max", 1e-7)
close(r["top1_agreement"], want["agree"], 0, "perturbed: top-1 agreement", 1e-9)
close(r["ppl"], want["ref_ppl"], 1e-4, "perturbed: reference ppl")
close(r["ppl_ratio"], want["ppl"] / want["ref_ppl"], 1e-4, "perturbed: ppl ratio")

# --- cached reference log-probs
cached = ppl("--ref-logits", os.path.join(work, "ref16.bin"), "--batch", "3")["reference"]
check(cached["kl_method"] == "top-k" and cached["top_k"] == 16, "cached reference: top-16 KL")
close(cached["kl_mean"], want["kl_topk"], 1e-4, "cached: top-k KL equals the coarse-grained reference", 1e-7)
check(cached["kl_mean"] <= r["kl_mean"] * (1 + 1e-5), "cached: top-k KL is a lower bound on the exact KL")
close(cached["ppl"], r["ppl"], 1e-5, "cached: reference ppl")
close(cached["top1_agreement"], r["top1_agreement"], 0, "cached: top-1 agreement", 1e-9)
ppl("--ref", PERTURBED, "--save-logits", os.path.join(work, "refall.bin"), "--save-top-k", str(VOCAB))
full = ppl("--ref-logits", os.path.join(work, "refall.bin"))["reference"]
close(full["kl_mean"], r["kl_mean"], 1e-4, "cached with k = vocab: exact KL", 1e-7)

# --- refusals
def fails(args, needle, what):
    p = run(args, expect_ok=False)
    check(p.returncode != 0 and needle in p.stderr, f"{what}: exit {p.returncode}, stderr {p.stderr.strip()!r}")


base = ["ppl", "-m", MODEL, "--no-progress"]
fails(base + ["--ids", IDS, "--ctx", "32", "--ref-logits", os.path.join(work, "ref16.bin")], "made with ctx 64",
      "reference file from another ctx")
other = os.path.join(work, "other_ids.txt")
open(other, "w").write(" ".join(map(str, ids[::-1])))
fails(base + ["--ids", other, "--ctx", "64", "--ref-logits", os.path.join(work, "ref16.bin")], "different tokens",
      "reference file from other tokens")
fails(base + ["--ids", IDS, "--ctx", "64", "--ref-logits", IDS], "bad magic", "not a reference file")
short = os.path.join(work, "short_ids.txt")
open(short, "w").write("1 2 3 4 5")
fails(base + ["--ids", short, "--ctx", "64"], "short_ids.txt: the text has 5 tokens, fewer than one window of 64",
      "ids shorter than a window")
out_of_vocab = os.path.join(work, "oov_ids.txt")
open(out_of_vocab, "w").write(" ".join(map(str, list(ids[:99]) + [VOCAB] + list(ids[100:]))))
fails(base + ["--ids", out_of_vocab, "--ctx", "64"], "oov_ids.txt: token 99 is id 512, outside the vocabulary",
      "id outside the vocabulary")
bad = os.path.join(work, "bad_utf8.txt")
open(bad, "wb").write(b"fine line\nbad \xc3\x28 here\n")
fails(base + ["-f", bad], "bad_utf8.txt: line 2, column 5 (byte 14): invalid UTF-8 (byte 0xc3)", "invalid UTF-8 text")
fails(base + ["--ids", IDS, "--stride", "8", "--score-second-half"], "exclude each other", "conflicting protocols")

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
