"""`squeeze run --spec` on stories15M: every method and its tree form prints exactly plain greedy decoding's
text at temperature 0 (the draft model: the independently converted Q8_0 GGUF copy from ../shared); sampling
runs are reproducible by seed; the acceptance statistics line is well formed; --spec-compare prints a speedup;
flags that do not fit together are usage errors (exit 2) and a draft with another vocabulary or a block outside
the model are clear errors (exit 1)."""
import os
import re
import subprocess
import sys

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


def main():
    for t in (test_greedy_identical, test_sampling_reproducible, test_compare, test_bad_usage):
        t()
    for f in failures:
        print("FAIL:", f)
    print(f"{checks - len(failures)}/{checks} checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
