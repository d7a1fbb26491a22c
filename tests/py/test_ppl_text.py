"""squeeze ppl on a text file with stories15M and its tokenizer, against numpy over `squeeze logits`.

The reference tokenizes with sentencepiece (ids = [BOS] + encode(text), the documented protocol), cuts
windows of 64 tokens, and computes perplexity in float64 from each window's logits: agreement to 1e-4
relative, for the default protocol and --score-second-half (whose windows start with BOS). The same text with
CRLF line endings gives the same result.
"""
import json
import os
import subprocess
import sys

import numpy as np
import sentencepiece as spm

SHARED, BIN, WORK = (os.environ[k] for k in ("SQ_SHARED", "SQ_BIN", "SQ_WORK"))
MODEL = os.path.join(SHARED, "models", "stories15M.bin")
work = os.path.join(WORK, "py_ppl_text")
os.makedirs(work, exist_ok=True)
sp = spm.SentencePieceProcessor(model_file=os.path.join(SHARED, "models", "tokenizer.model"))
from checks import check, failures

text = open(os.path.join(SHARED, "data", "tinystories", "valid-a.txt"), encoding="utf-8").read()[:900]
text = text[: text.rfind(" ")]
lf, crlf = os.path.join(work, "lf.txt"), os.path.join(work, "crlf.txt")
open(lf, "w", encoding="utf-8", newline="").write(text)
open(crlf, "w", encoding="utf-8", newline="").write(text.replace("\n", "\r\n"))
ids = [1] + sp.encode(text)
CTX = 64



def reference(second_half):
    nll = []
    for k in range(len(ids) // CTX):
        toks = ids[k * CTX:(k + 1) * CTX]
        if second_half:
            toks = [1] + toks[1:]
        out = os.path.join(work, "logits.f32")
        subprocess.run([BIN, "logits", "-m", MODEL, "--tokens", " ".join(map(str, toks)), "-o", out, "-t", "2"],
                       check=True, capture_output=True)
        z = np.fromfile(out, dtype="<f4").reshape(CTX, -1).astype(np.float64)
        m = z.max(axis=1, keepdims=True)
        lp = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))
        first = CTX // 2 + 1 if second_half else 1
        nll += [-lp[p - 1, toks[p]] for p in range(first, CTX)]
    return float(np.exp(np.mean(nll))), len(nll)


for flags, second_half in (([], False), (["--score-second-half"], True)):
    want, n = reference(second_half)
    for path in (lf, crlf):
        out = os.path.join(work, "report.json")
        p = subprocess.run([BIN, "ppl", "-m", MODEL, "-f", path, "--ctx", str(CTX), "--batch", "2", "-t", "2",
                            "--no-progress", "--json", out] + flags, capture_output=True, text=True)
        print(p.stdout, p.stderr)
        if p.returncode != 0:
            raise SystemExit("squeeze ppl failed")
        r = json.load(open(out))
        name = f"{'second-half' if second_half else 'windows'} {os.path.basename(path)}"
        check(r["text"]["tokens"] == len(ids), f"{name}: {r['text']['tokens']} ids, sentencepiece gives {len(ids)}")
        check(r["tokens_scored"] == n, f"{name}: {r['tokens_scored']} scored")
        check(abs(r["ppl"] - want) <= 1e-4 * want, f"{name}: ppl {r['ppl']:.6f} vs reference {want:.6f}")

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
