"""bench/engine_table.py: the Markdown table of bench/engine.sh, from synthetic `squeeze bench` reports whose
medians are chosen here: each cell must be the median over rounds with the range over rounds, the speed-up the
ratio of the two medians, and malformed reports must be named."""
import json
import os
import random
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "bench", "engine_table.py")
WORK = os.path.join(os.environ["SQ_WORK"], "engine_table")
os.makedirs(WORK, exist_ok=True)
from checks import check, failures



rng = random.Random(11)
BATCHES = [1, 8]


def report(kernels, threads, scale):
    values = {(b, m): rng.uniform(0.8, 1.2) * scale * (b if m == "decode_tok_s" else 4)
              for b in BATCHES for m in ("prefill_tok_s", "decode_tok_s")}
    results = [{"n_seqs": b, **{m: {"median": values[(b, m)], "min": 0, "max": 0}
                                for m in ("prefill_tok_s", "decode_tok_s")}} for b in BATCHES]
    rep = {"kind": "bench", "settings": {"n_prompt": 128, "n_gen": 64, "n_reps": 3, "n_warmup": 1,
                                         "n_threads": threads, "kernels": kernels},
           "variants": [{"model": {"path": "models/stories15M.bin"}, "results": results}]}
    return rep, values


paths = {"baseline": [], "fast": []}
medians = {"baseline": {}, "fast": {}}
for config, kernels, threads, scale in [("baseline", "scalar", 1, 100.0), ("fast", "avx2", 16, 2000.0)]:
    for r in range(3):
        rep, values = report(kernels, threads, scale)
        path = os.path.join(WORK, f"{config}-{r}.json")
        json.dump(rep, open(path, "w"))
        paths[config].append(path)
        for k, v in values.items():
            medians[config].setdefault(k, []).append(v)

cmd = [sys.executable, SCRIPT, "--command", "bench/engine.sh models/stories15M.bin", "--cpu", "Test CPU",
       "--cores", "16", "--baseline", *paths["baseline"], "--fast", *paths["fast"]]
r = subprocess.run(cmd, capture_output=True, text=True)
check(r.returncode == 0, f"engine_table.py exits 0 ({r.stderr.strip()})")
out = r.stdout
check("    bench/engine.sh models/stories15M.bin" in out, "the exact command is quoted as a code block")
check("Test CPU (16 online cores)" in out, "the machine is named")
check(out.startswith("## Engine speed: models/stories15M.bin\n"), "the heading names the model's path")
check("| metric | scalar, 1 thread | avx2, 16 threads | speed-up |" in out, f"header names both configurations")


def fmt(runs):
    return f"{statistics.median(runs):,.0f} ({min(runs):,.0f}–{max(runs):,.0f})"


rows = {l.split("|")[1].strip(): [c.strip() for c in l.split("|")[2:5]] for l in out.splitlines()
        if l.startswith("| prefill") or l.startswith("| decode")}
check(len(rows) == 2 * len(BATCHES), f"{len(rows)} rows: prefill and decode per batch size")
for b in BATCHES:
    for metric, word in [("prefill_tok_s", "prefill"), ("decode_tok_s", "decode")]:
        name = f"{word} tokens/s, batch {b}"
        base, fast = medians["baseline"][(b, metric)], medians["fast"][(b, metric)]
        ratio = statistics.median(fast) / statistics.median(base)
        want = [fmt(base), fmt(fast), f"{ratio:.1f}x"]
        check(rows.get(name) == want, f"{name}: {rows.get(name)} (expected {want})")

bad = os.path.join(WORK, "bad.json")
open(bad, "w").write('{"kind": "bench", "variants": []}')
r = subprocess.run(cmd[:-len(paths["fast"])] + [bad], capture_output=True, text=True)
check(r.returncode != 0 and bad in r.stderr and "not a squeeze bench report" in r.stderr,
      f"malformed report named: {r.stderr.strip()}")

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
