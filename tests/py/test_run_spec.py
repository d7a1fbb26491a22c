"""`squeeze run --spec` on stories15M: every method and its tree form prints exactly plain greedy decoding's
text at temperature 0 (the draft model: the independently converted Q8_0 GGUF copy from ../shared); sampling
runs are reproducible by seed; the acceptance statistics line is well formed; --spec-compare prints a speedup;
flags that do not fit together are usage errors (exit 2) and a draft with another vocabulary or a block outside
the model are clear errors (exit 1). `squeeze bench --spec` runs both decodings in each repetition: its table,
statistics line and JSON report agree with each other and say the greedy texts were identical."""
import json
import os
import re
import subprocess
import sys
import tempfile

SQ_BIN = os.environ["SQ_BIN"]
SHARED = os.environ.get("SQ_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared"))
MODEL = os.path.join(SHARED, "models", "stories15M.bin")
DRAFT = os.path.join(SHARED, "models", "stories15M-q8_0.gguf")
OTHER = os.path.join(SHARED, "models", "stories260K.bin")
PROMPTS = ["Once upon a time",
           "Tom had a red ball. Tom liked the red ball. One day Tom lost the red ball. Tom looked for the"]
SPEC_LINE = re.compile(r"^speculative (\w+): (\d+) target steps, (\d+\.\d\d) tokens per step \((\d+\.\d\d) drafts "
                       r"accepted of (\d+\.\d\d)\) \| acceptance by position:((?: \d\.\d\d)*) \| draft \d+\.\d+ s "
                       r"\(\d+%\), target \d+\.\d+ s \(\d+%\)( \| k at the end \d+)?$")
METHODS = [["--spec", "ngram"], ["--spec", "ngram", "--ngram-n", "1", "--draft-k", "6"],
           ["--spec", "self", "--skip-layers", "2,3"], ["--spec", "draft", "--draft", DRAFT],
           ["--spec", "draft", "--draft", DRAFT, "--draft-k", "auto"], ["--spec", "tree"],
           ["--spec", "tree", "--draft", DRAFT, "--tree-width", "4"], ["--spec", "tree", "--skip-layers", "1"]]

failures = []
checks = 0


def check(ok, what):
    global checks
    checks += 1
    if not ok:
        failures.append(what)


def run(*args):
    return subprocess.run([SQ_BIN, "run", "-t", "1", "-m", MODEL, "--no-echo", *args], capture_output=True,
                          text=True, timeout=600)


def spec_line(r):
    lines = r.stderr.strip().splitlines()
    m = SPEC_LINE.match(lines[-2]) if len(lines) >= 2 else None
    check(m is not None, f"no well-formed speculative line before the stats line: {r.stderr!r}")
    return m


def test_greedy_identical():
    for prompt in PROMPTS:
        plain = run("-p", prompt, "--temp", "0", "-n", "64")
        check(plain.returncode == 0 and plain.stdout, f"plain run failed: {plain.stderr}")
        for method in METHODS:
            r = run("-p", prompt, "--temp", "0", "-n", "64", *method)
            check(r.returncode == 0, f"{method}: exit {r.returncode}: {r.stderr}")
            check(r.stdout == plain.stdout, f"{method}: greedy text differs from plain decoding:\n{r.stdout!r}\n"
                                            f"{plain.stdout!r}")
            m = spec_line(r)
            if m:
                steps, per_step = int(m[2]), float(m[3])
                check(steps >= 1 and per_step >= 1, f"{method}: implausible steps: {m[0]}")
                check(float(m[4]) <= float(m[5]), f"{method}: more accepted than drafted: {m[0]}")
                rates = [float(x) for x in m[6].split()]
                check(all(0 <= x <= 1 for x in rates), f"{method}: acceptance rates outside [0, 1]: {m[0]}")


def test_sampling_reproducible():
    for method in METHODS[2:5]:
        a = run("-p", PROMPTS[0], "-n", "40", "--seed", "5", *method)
        b = run("-p", PROMPTS[0], "-n", "40", "--seed", "5", *method)
        check(a.returncode == 0 and a.stdout == b.stdout, f"{method}: the same seed gave different text")
        spec_line(a)


def test_compare():
    r = run("-p", PROMPTS[0], "--temp", "0", "-n", "40", "--spec", "draft", "--draft", DRAFT, "--spec-compare")
    lines = r.stderr.strip().splitlines()
    m = re.match(r"^plain decoding: generated 40 tokens, decode \d+\.\d tok/s \| speedup \d+\.\d\dx$",
                 lines[-2] if len(lines) >= 2 else "")
    check(r.returncode == 0 and m is not None, f"--spec-compare line missing: {r.stderr!r}")
    check(len(lines) >= 3 and SPEC_LINE.match(lines[-3]), f"speculative line missing: {r.stderr!r}")


def test_bad_usage():
    usage = [["--spec", "draft"], ["--spec", "self"], ["--spec", "ngram", "--draft", DRAFT],
             ["--spec", "ngram", "--skip-layers", "1"], ["--spec", "tree", "--draft", DRAFT, "--skip-layers", "1"],
             ["--spec", "ngram", "--draft-k", "0"], ["--spec", "ngram", "--draft-k", "17"],
             ["--spec", "ngram", "--draft-k", "abc"], ["--spec", "ngram", "--ngram-n", "9"],
             ["--spec", "tree", "--tree-width", "9"], ["--spec", "magic"], ["--spec-compare"]]
    for flags in usage:
        r = run("-p", PROMPTS[0], "-n", "4", *flags)
        check(r.returncode == 2 and "squeeze run:" in r.stderr, f"{flags}: want a usage error: {r.returncode} "
                                                                 f"{r.stderr!r}")
    errors = [(["--spec", "draft", "--draft", OTHER], "the draft has 512 token ids, the target 32000"),
              (["--spec", "self", "--skip-layers", "6"], "skipped block 6 is outside the model's blocks 0..5"),
              (["--spec", "self", "--skip-layers", "0,1,2,3,4,5"], "cannot skip all 6 blocks"),
              (["--spec", "draft", "--draft", "/nonexistent.gguf"], "/nonexistent.gguf")]
    for flags, needle in errors:
        r = run("-p", PROMPTS[0], "-n", "4", *flags)
        check(r.returncode == 1 and needle in r.stderr and not r.stdout,
              f"{flags}: want exit 1 naming {needle!r}: {r.returncode} {r.stderr!r}")


def bench(*args):
    return subprocess.run([SQ_BIN, "bench", "-t", "1", "-m", MODEL, "--no-progress", *args], capture_output=True,
                          text=True, timeout=600)


def test_bench_spec():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "spec.json")
        r = bench("--spec", "draft", "--draft", DRAFT, "--prompt", PROMPTS[1], "-n", "24", "--reps", "2",
                  "--warmup", "0", "--json", out)
        check(r.returncode == 0, f"bench --spec: exit {r.returncode}: {r.stderr}")
        rows = dict(re.findall(r"^\| (plain decode \(tokens/s\)|speculative decode \(tokens/s\)|speedup "
                               r"\(per repetition\)) \| (\d+\.\d+) \|", r.stdout, re.M))
        check(len(rows) == 3, f"bench --spec: table rows missing: {r.stdout!r}")
        m = SPEC_LINE.match(next((l for l in r.stdout.splitlines() if l.startswith("speculative ")), ""))
        check(m is not None, f"bench --spec: no well-formed statistics line: {r.stdout!r}")
        check("greedy output identical to plain decoding's" in r.stdout, f"bench --spec: {r.stdout!r}")
        if r.returncode or not m or len(rows) != 3:
            return
        rep = json.load(open(out))
        res, st = rep["results"], rep["settings"]
        check(rep["kind"] == "bench_spec" and st["method"] == "draft" and st["draft"] == DRAFT and
              st["n_gen"] == 24 and st["n_reps"] == 2 and st["temperature"] == 0, f"bench --spec settings: {st}")
        check(res["greedy_identical"] is True, f"bench --spec: {res}")
        check(res["target_steps"] == int(m[2]) and abs(res["tokens_per_step"] - float(m[3])) < 0.01,
              f"bench --spec: JSON {res} disagrees with {m[0]}")
        check(abs(res["tokens_per_step"] - 1 - res["accepted_per_step"]) < 1e-9, f"bench --spec: {res}")
        for key, row in (("plain_decode_tok_s", "plain decode (tokens/s)"),
                         ("spec_decode_tok_s", "speculative decode (tokens/s)"),
                         ("speedup", "speedup (per repetition)")):
            s = res[key]
            check(s["min"] <= s["median"] <= s["max"] and abs(s["median"] - float(rows[row])) < 0.01,
                  f"bench --spec: {key} {s} against the table's {rows[row]}")
        rates = res["acceptance_by_position"]
        check(1 <= len(rates) <= 4 and all(0 <= x <= 1 for x in rates), f"bench --spec: {rates}")
    for flags in (["--spec", "ngram"], ["--prompt", "x"], ["--temp", "0.5"],
                  ["--spec", "ngram", "--prompt", "x", "-b", "2"], ["--spec", "ngram", "--prompt", "x", "--vs", MODEL]):
        r = bench(*flags)
        check(r.returncode == 2 and "squeeze bench:" in r.stderr, f"bench {flags}: want a usage error: "
                                                                   f"{r.returncode} {r.stderr!r}")


def main():
    for t in (test_greedy_identical, test_sampling_reproducible, test_compare, test_bad_usage, test_bench_spec):
        t()
    for f in failures:
        print("FAIL:", f)
    print(f"{checks - len(failures)}/{checks} checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
