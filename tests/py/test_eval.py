"""squeeze eval on stories15M against an independent reference, on hand-made items (tests/data/eval/stories).

The reference tokenizes with sentencepiece (the Llama-2 tokenizer.model), applies the harness's request
rules (" " delimiter unless the context ends in whitespace; trailing whitespace moves to the continuation;
continuation tokens = those after the common prefix of [BOS]+encode(context) and
[BOS]+encode(context+continuation)), takes each sequence's logits from `squeeze logits`, and scores in
float64. Checked: piqa-layout acc and acc_norm (the items are chosen so that they disagree on some items),
winogrande partial scoring, lambada greedy accuracy and perplexity, standard errors, the average, and --batch 1
vs 3 giving the same report. Tolerances follow from the engine's fp32 accuracy contract (see below), so the
result does not depend on which kernel set runs.
"""
import json
import os
import subprocess
import sys

import numpy as np
import sentencepiece as spm

SHARED, BIN, WORK, DATA = (os.environ[k] for k in ("SQ_SHARED", "SQ_BIN", "SQ_WORK", "SQ_TEST_DATA"))
MODEL = os.path.join(SHARED, "models", "stories15M.bin")
TASKS = os.path.join(DATA, "eval", "stories")
work = os.path.join(WORK, "py_eval")
os.makedirs(work, exist_ok=True)
sp = spm.SentencePieceProcessor(model_file=os.path.join(SHARED, "models", "tokenizer.model"))
from checks import check, failures
import engine_harness as H



# The engine's accuracy contract (engine_harness.FP32_LOGIT_TOL, asserted against a float64 forward pass in
# test_logits_stories.py): every logit within TOL * max|logit| of the exact value. Two runs that differ only in fp32 summation order (batch sizes
# choose GEMV or GEMM; kernel sets differ in vector width) therefore differ by at most
# DELTA = 2 * TOL * max|logit| per logit, and a log-probability z_i - logsumexp(z) by at most 2 * DELTA.
TOL = H.FP32_LOGIT_TOL
max_logit = 0.0


def logits(tokens):
    global max_logit
    out = os.path.join(work, "logits.f32")
    subprocess.run([BIN, "logits", "-m", MODEL, "--tokens", " ".join(map(str, tokens)), "-o", out, "-t", "2"],
                   check=True, capture_output=True)
    z = np.fromfile(out, dtype="<f4").reshape(len(tokens), -1).astype(np.float64)
    max_logit = max(max_logit, float(np.abs(z).max()))
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def score(context, continuation):
    keep = len(context.rstrip(" \t\n\r"))
    context, continuation = context[:keep], context[keep:] + continuation
    ctx = [1] + sp.encode(context)
    whole = [1] + sp.encode(context + continuation)
    start = 0
    while start < min(len(ctx), len(whole)) and ctx[start] == whole[start]:
        start += 1
    lp = logits(whole)
    logp = sum(lp[p - 1, whole[p]] for p in range(start, len(whole)))
    greedy = all(np.argmax(lp[p - 1]) == whole[p] for p in range(start, len(whole)))
    # how far the greedy decision is from flipping: the smallest gap between the best and second-best log-prob
    gaps = [np.diff(np.sort(lp[p - 1])[-2:])[0] for p in range(start, len(whole))]
    n_scored.append(len(whole) - start)
    greedy_gaps.append(min(gaps))
    return logp, greedy


n_scored, greedy_gaps = [], []  # per scored continuation


def choice_gap(values):
    """How far an argmax over choices is from flipping: best minus second best."""
    v = np.sort(np.asarray(values))
    return v[-1] - v[-2]


def delimit(context, text):
    return text if not context or context[-1].isspace() else " " + text


def items(name):
    return [json.loads(line) for line in open(os.path.join(TASKS, name)) if line.strip()]


def stderr(p, n):
    return np.sqrt(p * (1 - p) / (n - 1))


want = {}
choice_gaps = []  # (gap, tokens scored for the item's choices) per decision
hits = hits_norm = differ = 0
piqa = items("piqa.jsonl")
for it in piqa:
    s = [score(it["query"], delimit(it["query"], c))[0] for c in it["choices"]]
    norm = [v / len(c.encode()) for v, c in zip(s, it["choices"])]
    choice_gaps += [(choice_gap(s), max(n_scored[-len(s):])), (choice_gap(norm), max(n_scored[-len(s):]))]
    hits += int(np.argmax(s)) == it["gold"]
    hits_norm += int(np.argmax(norm)) == it["gold"]
    differ += int(np.argmax(s)) != int(np.argmax(norm))
check(differ > 0, f"acc and acc_norm pick different choices on {differ} items")
want["piqa"] = {"acc": hits / len(piqa), "acc_norm": hits_norm / len(piqa), "n": len(piqa)}

wino = items("winogrande.jsonl")
hits = 0
for it in wino:
    s = [score(c, delimit(c, it["continuation"]))[0] for c in it["context_options"]]
    choice_gaps.append((choice_gap(s), max(n_scored[-len(s):])))
    hits += int(np.argmax(s)) == it["gold"]
want["winogrande"] = {"acc": hits / len(wino), "n": len(wino)}

lam = items("lambada_openai.jsonl")
res = [score(it["context"], delimit(it["context"], it["continuation"])) for it in lam]
want["lambada"] = {"acc": float(np.mean([g for _, g in res])), "ppl": float(np.exp(-np.mean([l for l, _ in res]))),
                   "n": len(lam)}
check(0 < want["lambada"]["acc"] < 1, f"lambada items include greedy hits and misses ({want['lambada']['acc']:.3f})")

reports = []
for batch in ("1", "3"):
    out = os.path.join(work, f"eval{batch}.json")
    p = subprocess.run([BIN, "eval", "-m", MODEL, "--tasks", "piqa,winogrande,lambada", "--data-dir", TASKS,
                        "--batch", batch, "-t", "2", "--no-progress", "--json", out, "--label", f"batch{batch}"],
                       capture_output=True, text=True)
    print(p.stdout, p.stderr)
    if p.returncode != 0:
        raise SystemExit("squeeze eval failed")
    reports.append(json.load(open(out)))

r = reports[0]
check(r["kind"] == "eval" and r["version"] == 1, "report kind and version")
check(r.get("label") == "batch1", "--label names the variant in the report")
check(r.get("ctx") == 256 and r.get("limit") is None, "ctx (stories15M's 256 without --ctx) and limit (null) reported")
got = {t["task"]: t for t in r["tasks"]}
for task, w in want.items():
    g = got[task]
    check(g["n"] == w["n"], f"{task}: {g['n']} items")
    check(abs(g["acc"] - w["acc"]) < 1e-12, f"{task}: acc {g['acc']:.4f} vs reference {w['acc']:.4f}")
    check(abs(g["acc_stderr"] - stderr(w["acc"], w["n"])) < 1e-9, f"{task}: acc stderr")
    if "acc_norm" in w:
        check(abs(g["acc_norm"] - w["acc_norm"]) < 1e-12,
              f"{task}: acc_norm {g['acc_norm']:.4f} vs reference {w['acc_norm']:.4f}")
scores = [want["piqa"]["acc_norm"], want["winogrande"]["acc"], want["lambada"]["acc"]]
check(abs(r["average"]["score"] - np.mean(scores)) < 1e-12, f"average score {r['average']['score']:.4f}")
# Bounds from the accuracy contract above: a continuation of n tokens moves its log-likelihood by at most
# n * 2 * DELTA, so lambada's ln(ppl) (a mean over items) by at most max_n * 2 * DELTA.
# A choice or greedy decision can only flip when its gap is under twice what each side may move; every gap in
# these items is wider (checked), so counts and accuracies must come out identical whatever the summation order.
DELTA = 2 * TOL * max_logit
max_n = max(n_scored)
ppl_bound = np.expm1(max_n * 2 * DELTA)
print(f"max|logit| {max_logit:.3f}, DELTA {DELTA:.3g}, longest continuation {max_n} tokens, "
      f"ppl bound {ppl_bound:.3g} relative")
check(all(g > 2 * n * 2 * DELTA for g, n in choice_gaps),
      f"every choice decision is robust to summation order (smallest gap/bound "
      f"{min(g / (4 * n * DELTA) for g, n in choice_gaps):.3g} > 1)")
check(min(greedy_gaps) > 2 * 2 * DELTA,
      f"every lambada greedy decision is robust to summation order (smallest gap {min(greedy_gaps):.3g} "
      f"> {4 * DELTA:.3g})")
for r in reports:
    for t in r["tasks"]:
        if "ppl" in want[t["task"]]:
            check(abs(t["ppl"] - want[t["task"]]["ppl"]) <= ppl_bound * want[t["task"]]["ppl"],
                  f"{r['label']}: {t['task']} ppl {t['ppl']:.6g} vs reference within {ppl_bound:.3g}")


def same_report(a, b):
    for ta, tb in zip(a["tasks"], b["tasks"]):
        if set(ta) != set(tb):
            return False
        for k, va in ta.items():
            vb = tb[k]
            if k == "seconds":
                continue
            if k.startswith("ppl") and va is not None and vb is not None:
                if abs(va - vb) > ppl_bound * abs(vb):
                    return False
            elif va != vb:
                return False
    return len(a["tasks"]) == len(b["tasks"])
check(same_report(reports[0], reports[1]),
      f"--batch 1 and --batch 3 give the same counts and accuracies, perplexities within {ppl_bound:.3g}")

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
