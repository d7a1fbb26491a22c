"""BOS in ppl and eval follows the model's tokenizer (issue 7 item 6), and ppl --stride scores a text shorter than
one window (item 7); on tiny models the test writes itself.

Models: one tiny random llama (tiny_models.py) as a Hugging Face directory with tokenizer_config.json
add_bos_token true and a copy with it false, and as GGUF files with tokenizer.ggml.add_bos_token true and false.
The reference encodes with Hugging Face `tokenizers` (tokenizer.json), puts BOS (id 1) first exactly where the
file says (or --bos / --no-bos force), takes each window's or request's logits from `squeeze logits` and
computes perplexity in float64: ppl to 1e-4 relative, the token count and the BOS id in the JSON report
exactly. The second-half protocol puts BOS first in each window only where the text starts with it (llama.cpp's
perplexity tool does the same: without add_bos each chunk keeps its own first token). eval's lambada perplexity
(a continuous score) is checked the same way. Also: --bos on a vocabulary without BOS, --bos with --no-bos."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
from tokenizers import Tokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tiny_models  # noqa: E402
from checks import check, failures  # noqa: E402

BIN, WORK = os.environ["SQ_BIN"], os.environ["SQ_WORK"]
work = os.path.join(WORK, "py_bos")
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
BOS = 1

hf_bos = tiny_models.generate("llama_mha_f32", work)
hf_nobos = os.path.join(work, "llama_mha_f32_nobos")
os.makedirs(hf_nobos)
for f in os.listdir(hf_bos):
    if f != "tokenizer_config.json":
        os.symlink(os.path.join(hf_bos, f), os.path.join(hf_nobos, f))
tcfg = json.load(open(os.path.join(hf_bos, "tokenizer_config.json")))
check(tcfg.get("add_bos_token") is True, "the Llama-2 tokenizer_config.json says add_bos_token true")
json.dump(dict(tcfg, add_bos_token=False), open(os.path.join(hf_nobos, "tokenizer_config.json"), "w"))
gguf_bos = tiny_models.generate_gguf("llama_mha_f32", work, "F32", tag="-bos", add_bos=True)
gguf_nobos = tiny_models.generate_gguf("llama_mha_f32", work, "F32", tag="-nobos", add_bos=False)
MODELS = [(hf_bos, True), (hf_nobos, False), (gguf_bos, True), (gguf_nobos, False)]

hf = Tokenizer.from_file(os.path.join(hf_bos, "tokenizer.json"))
story = ("Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, "
         "she saw a big red ball under a tree. She ran to it and picked it up. Her friend Tom came to play too. "
         "They threw the ball high in the sky and laughed. Then it started to rain, so they went home.")
text_path = os.path.join(work, "story.txt")
open(text_path, "w").write(story)
ids = hf.encode(story, add_special_tokens=False).ids
CTX = 48
check(len(ids) >= 3 * CTX, f"the story is {len(ids)} tokens: several windows of {CTX}")

_cache = {}


def log_probs(model, tokens):
    key = (model, tuple(tokens))
    if key not in _cache:
        out = os.path.join(work, "logits.f32")
        subprocess.run([BIN, "logits", "-m", model, "--tokens", " ".join(map(str, tokens)), "-o", out, "-t", "2"],
                       check=True, capture_output=True)
        z = np.fromfile(out, dtype="<f4").reshape(len(tokens), -1).astype(np.float64)
        m = z.max(axis=1, keepdims=True)
        _cache[key] = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))
    return _cache[key]


def reference_ppl(model, seq, protocol, bos, ctx=CTX, stride=None):
    """float64 perplexity of the protocol's windows over seq (docs/eval.md)."""
    nll = []
    if protocol == "stride":
        prev_end, begin = 0, 0
        while True:
            end = min(begin + ctx, len(seq))
            lp = log_probs(model, seq[begin:end])
            nll += [-lp[p - 1 - begin, seq[p]] for p in range(max(prev_end, begin + 1), end)]
            if end == len(seq):
                break
            prev_end, begin = end, begin + stride
    else:
        for k in range(len(seq) // ctx):
            win = seq[k * ctx:(k + 1) * ctx]
            if protocol == "second-half" and bos:
                win = [BOS] + win[1:]
            lp = log_probs(model, win)
            first = ctx // 2 + 1 if protocol == "second-half" else 1
            nll += [-lp[p - 1, win[p]] for p in range(first, ctx)]
    return float(np.exp(np.mean(nll))), len(nll)


def squeeze(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True)


def ppl(model, *flags):
    out = os.path.join(work, "ppl.json")
    p = squeeze("ppl", "-m", model, "-f", text_path, "--ctx", str(CTX), "-t", "2", "--no-progress", "--json", out,
                *flags)
    if p.returncode != 0:
        print(p.stdout, p.stderr)
        return None
    return json.load(open(out))


for model, adds_bos in MODELS:
    name = os.path.basename(model)
    for flags, want_bos in (((), adds_bos), (("--bos",), True), (("--no-bos",), False)):
        seq = ([BOS] if want_bos else []) + ids
        for protocol, pflags in (("windows", ()), ("second-half", ("--score-second-half",)),
                                 ("stride", ("--stride", "20"))):
            r = ppl(model, *flags, *pflags)
            what = f"{name} {' '.join(flags) or '(default)'} {protocol}"
            check(r is not None, f"{what}: ppl runs")
            if r is None:
                continue
            want, n = reference_ppl(model, seq, protocol, want_bos, stride=20)
            check(r["text"]["tokens"] == len(seq), f"{what}: {r['text']['tokens']} tokens, want {len(seq)}")
            check(r["protocol"].get("bos_id", "absent") == (BOS if want_bos else None),
                  f"{what}: report's bos_id {r['protocol'].get('bos_id', 'absent')}")
            check(r["tokens_scored"] == n, f"{what}: {r['tokens_scored']} scored, want {n}")
            check(abs(r["ppl"] - want) <= 1e-4 * want, f"{what}: ppl {r['ppl']:.6f}, reference {want:.6f}")

# item 7: a text shorter than one window is one short window for --stride, an error for the windows protocols
short = os.path.join(work, "short.txt")
open(short, "w").write("Lily saw a big red ball.")
short_ids = [BOS] + hf.encode("Lily saw a big red ball.", add_special_tokens=False).ids
for model in (hf_bos, gguf_bos):
    out = os.path.join(work, "short.json")
    p = squeeze("ppl", "-m", model, "-f", short, "--ctx", "64", "--stride", "16", "-t", "2", "--no-progress",
                "--json", out)
    check(p.returncode == 0, f"{model}: --stride on a {len(short_ids)}-token text with ctx 64: {p.stderr.strip()}")
    if p.returncode == 0:
        r = json.load(open(out))
        want, n = reference_ppl(model, short_ids, "stride", True, ctx=64, stride=16)
        check(r["windows"] == 1 and r["tokens_scored"] == n == len(short_ids) - 1,
              f"short text: {r['windows']} window, {r['tokens_scored']} scored, want 1 and {n}")
        check(abs(r["ppl"] - want) <= 1e-4 * want, f"short text: ppl {r['ppl']:.6f}, reference {want:.6f}")
    for flags in ((), ("--score-second-half",)):
        p = squeeze("ppl", "-m", model, "-f", short, "--ctx", "64", "-t", "2", "--no-progress", *flags)
        check(p.returncode == 1 and "fewer than one window of 64" in p.stderr,
              f"{' '.join(flags) or 'windows'} on a short text fails naming the window: {p.stderr.strip()}")

# eval: lambada's perplexity is exp(-mean summed log-prob of the continuations), BOS as for ppl
data = os.path.join(work, "tasks")
os.makedirs(data)
lambada = [("Lily went to the park with her", "mom"), ("The ball was big and", "red"),
           ("Tom and Lily played with the", "ball"), ("She saw a little bird in the", "tree")]
with open(os.path.join(data, "lambada_openai.jsonl"), "w") as f:
    for context, word in lambada:
        f.write(json.dumps({"context": context, "continuation": word}) + "\n")


def lambada_ppl(model, bos):
    total = 0.0
    for context, word in lambada:
        pre = [BOS] if bos else []
        ctx_ids = pre + hf.encode(context, add_special_tokens=False).ids
        whole = pre + hf.encode(context + " " + word, add_special_tokens=False).ids
        start = 0
        while start < min(len(ctx_ids), len(whole)) and ctx_ids[start] == whole[start]:
            start += 1
        lp = log_probs(model, whole)
        total += sum(lp[p - 1, whole[p]] for p in range(start, len(whole)))
    return float(np.exp(-total / len(lambada)))


for model, adds_bos in MODELS:
    name = os.path.basename(model)
    for flags, want_bos in (((), adds_bos), (("--bos",), True), (("--no-bos",), False)):
        out = os.path.join(work, "eval.json")
        p = squeeze("eval", "-m", model, "--tasks", "lambada", "--data-dir", data, "-t", "2", "--no-progress",
                    "--json", out, *flags)
        what = f"eval {name} {' '.join(flags) or '(default)'}"
        check(p.returncode == 0, f"{what}: runs {p.stderr.strip()}")
        if p.returncode != 0:
            continue
        r = json.load(open(out))
        want = lambada_ppl(model, want_bos)
        got = r["tasks"][0]["ppl"]
        check(r.get("bos_id", "absent") == (BOS if want_bos else None), f"{what}: report's bos_id {r.get('bos_id', 'absent')}")
        check(abs(got - want) <= 1e-4 * want, f"{what}: lambada ppl {got:.6f}, reference {want:.6f}")

# forcing BOS where the vocabulary has none is an error naming it; --bos with --no-bos is a usage error
gpt2_dir = os.path.join(work, "nobos_vocab")
os.makedirs(gpt2_dir)
for f in ("config.json", "model.safetensors"):
    os.symlink(os.path.join(hf_bos, f), os.path.join(gpt2_dir, f))
tj = json.load(open(os.path.join(hf_bos, "tokenizer.json")))
tj["post_processor"] = None
json.dump(tj, open(os.path.join(gpt2_dir, "tokenizer.json"), "w"))
json.dump({"bos_token": None, "eos_token": "</s>", "add_bos_token": False},
          open(os.path.join(gpt2_dir, "tokenizer_config.json"), "w"))
for verb, extra in (("ppl", ("-f", text_path, "--ctx", str(CTX))), ("eval", ("--tasks", "lambada", "--data-dir", data))):
    p = squeeze(verb, "-m", gpt2_dir, *extra, "--bos", "--no-progress")
    info = squeeze("tokenize", "--tokenizer", os.path.join(gpt2_dir, "tokenizer.json"), "--info")
    if "bos=-1" in info.stdout:
        check(p.returncode == 1 and "no BOS token" in p.stderr, f"{verb} --bos without a BOS: {p.stderr.strip()}")
    else:
        check(False, f"the BOS-less vocabulary still has one: {info.stdout.strip()}")
    p = squeeze(verb, "-m", hf_bos, *extra, "--bos", "--no-bos")
    check(p.returncode == 2 and "--bos and --no-bos exclude each other" in p.stderr,
          f"{verb} --bos --no-bos: exit {p.returncode}, {p.stderr.strip()}")

sys.exit(1 if failures else 0)
