"""The command line as a whole: every verb's --help comes from its flag table (and `squeeze help VERB` is the
same text), every verb refuses unknown options the same way, and the limits several verbs share (threads,
context length, batch size, seed) are one definition: the same value gets the same message everywhere. Usage
errors exit 2 before any model is loaded."""
import os
import subprocess
import sys

from checks import check, failures

BIN = os.environ["SQ_BIN"]
VERBS = ["run", "info", "convert", "tokenize", "logits", "ppl", "eval", "bench", "report", "chat-template"]
MISSING = "no-such-model.bin"  # never opened: usage errors come first


def squeeze(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=60)


for verb in VERBS:
    h = squeeze(verb, "--help")
    check(h.returncode == 0 and h.stdout.startswith(f"usage: squeeze {verb} ") and
          "  -h, --help                print this help\n" in h.stdout and h.stderr == "",
          f"{verb} --help: {h.returncode} {h.stdout[:80]!r}")
    check(squeeze("help", verb).stdout == h.stdout, f"squeeze help {verb} is squeeze {verb} --help")
    check(squeeze(verb, "-h").stdout == h.stdout, f"{verb} -h is {verb} --help")
    r = squeeze(verb, "--bogus=1")
    check(r.returncode == 2 and r.stdout == "" and
          r.stderr == f"squeeze {verb}: unknown option '--bogus' (see 'squeeze {verb} --help')\n",
          f"{verb} --bogus=1: {r.returncode} {r.stderr!r}")

# every verb that takes a model spells it -m and --model
for verb in ["run", "info", "convert", "tokenize", "logits", "ppl", "eval", "bench", "chat-template"]:
    h = squeeze(verb, "--help").stdout
    check("  -m, --model MODEL " in h, f"{verb}: -m, --model MODEL")

# one definition of each shared limit: the same message from every verb that has the flag
shared = [
    (["-t", "0"], "-t '0' must be an integer in [1, 1024]", ["run", "logits", "ppl", "eval", "bench"]),
    (["--threads", "1025"], "--threads '1025' must be an integer in [1, 1024]", ["run", "logits", "ppl", "eval", "bench"]),
    (["-c", "1"], "-c '1' must be an integer in [2, 1048576]", ["run", "ppl", "eval"]),
    (["--ctx", "1048577"], "--ctx '1048577' must be an integer in [2, 1048576]", ["run", "ppl", "eval"]),
    (["-b", "4097"], "-b '4097' must be", ["ppl", "eval", "bench"]),
    (["--seed", "-2"], "--seed '-2' must be an integer in [-1, 9007199254740992]", ["run", "bench"]),
    (["--json"], "--json needs a value", ["ppl", "eval", "bench"]),
]
for args, message, verbs in shared:
    for verb in verbs:
        r = squeeze(verb, "-m", MISSING, *args)
        check(r.returncode == 2 and message in r.stderr, f"{verb} {' '.join(args)}: {r.returncode} {r.stderr!r}")

r = squeeze("frobnicate")
check(r.returncode == 2 and "unknown command 'frobnicate'" in r.stderr, f"unknown verb: {r.stderr!r}")
r = squeeze("help", "frobnicate")
check(r.returncode == 2 and "unknown command 'frobnicate'" in r.stderr, f"help for an unknown verb: {r.stderr!r}")
r = squeeze("logits", "-m", MISSING, "--tokens", "1 2,,3")
check(r.returncode == 2 and "--tokens '1 2,,3' must be integers in [0, 2147483647]" in r.stderr and
      "item 3 is empty" in r.stderr, f"logits --tokens: {r.stderr!r}")
r = squeeze("logits", "-m", MISSING, "--tokens", "1", "--mode", "chunks:0")
check(r.returncode == 2 and "--mode 'chunks:0' must be prefill, decode or chunks:N" in r.stderr,
      f"logits --mode: {r.stderr!r}")

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
