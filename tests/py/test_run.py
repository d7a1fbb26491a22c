"""`squeeze run` on stories15M: the greedy continuation documented in shared/README.md, seeds (the same seed
gives the same text, different seeds differ, the printed default seed reproduces its run), the stats line,
prompt files, the context limit, and strict flag validation with clear messages and exit codes."""
import os
import re
import subprocess
import sys
import tempfile

SQ_BIN = os.environ["SQ_BIN"]
SHARED = os.environ.get("SQ_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared"))
MODEL = os.path.join(SHARED, "models", "stories15M.bin")
PROMPT = "Once upon a time"
GREEDY = ", there was a little girl named Lily. She loved to play outside in the sunshine."
STATS = re.compile(r"^prompt (\d+) tokens, prefill (\d+\.\d) tok/s \| generated (\d+) tokens, "
                   r"decode (\d+\.\d) tok/s \| peak memory (\d+\.\d) MiB \| seed (\d+)$")

failures = []
checks = 0


def check(ok, what):
    global checks
    checks += 1
    if not ok:
        failures.append(what)


def run(*args, threads="1"):
    """squeeze run with args; one thread unless told (the test suite shares its cores)"""
    extra = ["-t", threads] if threads and args and args[0] != "--help" else []
    return subprocess.run([SQ_BIN, "run", *extra, *args], capture_output=True, text=True, timeout=600)


def stats_of(r):
    lines = r.stderr.strip().splitlines()
    m = STATS.match(lines[-1]) if lines else None
    check(m is not None, f"no well-formed stats line at the end of stderr: {r.stderr!r}")
    return m


def test_greedy():
    r = run("-m", MODEL, "-p", PROMPT, "--temp", "0", "-n", "40")
    check(r.returncode == 0, f"greedy run failed: {r.returncode} {r.stderr}")
    check(r.stdout.startswith(PROMPT + GREEDY), f"greedy continuation differs: {r.stdout!r}")
    m = stats_of(r)
    if m:
        check(int(m[1]) == 5, f"prompt should be BOS + 4 tokens: {m[0]}")
        check(int(m[3]) == 40, f"-n 40 should generate 40 tokens: {m[0]}")
        check(float(m[2]) > 0 and float(m[4]) > 0, f"speeds must be positive: {m[0]}")
        check(10 < float(m[5]) < 4096, f"implausible peak memory for a 60 MB model: {m[0]}")
    quiet = run("-m", MODEL, "-p", PROMPT, "--temp", "0", "-n", "40", "--no-echo")
    check(quiet.returncode == 0 and quiet.stdout.startswith(GREEDY), f"--no-echo output: {quiet.stdout!r}")
    check(PROMPT + quiet.stdout == r.stdout, "--no-echo must print exactly the generated text")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", dir=os.environ.get("SQ_WORK")) as f:
        f.write(PROMPT)
        f.flush()
        from_file = run("-m", MODEL, "-f", f.name, "--temp", "0", "-n", "40")
        check(from_file.returncode == 0 and from_file.stdout == r.stdout, f"-f differs from -p: {from_file.stdout!r}")
    # f16 keys and values (half the KV memory) keep the greedy story (their logits: tests/c/test_kv_forward.c)
    half = run("-m", MODEL, "-p", PROMPT, "--temp", "0", "-n", "40", "--kv-type", "f16")
    check(half.returncode == 0 and half.stdout == r.stdout, f"--kv-type f16 greedy: {half.returncode} {half.stdout!r}")
    # a GGUF file carries its vocabulary inside: nothing beside it is needed
    for gguf in ("stories15M-f16.gguf", "stories15M-q8_0.gguf"):
        g = run("-m", os.path.join(SHARED, "models", gguf), "-p", PROMPT, "--temp", "0", "-n", "25", "--no-echo")
        check(g.returncode == 0 and g.stdout.startswith(GREEDY), f"{gguf} greedy: {g.returncode} {g.stdout!r}")
    print(f"greedy: {r.stdout.strip()!r}")


def test_defaults_only_model_and_prompt():
    r = run("-m", MODEL, "-p", PROMPT, threads=None)
    check(r.returncode == 0, f"the default run (-m, -p only) failed: {r.returncode} {r.stderr}")
    check(r.stdout.startswith(PROMPT) and len(r.stdout) > len(PROMPT) + 20, f"default run output: {r.stdout!r}")
    m = stats_of(r)
    if m:
        generated = int(m[3])
        check(0 < generated <= 256, f"default -n is 256: {m[0]}")
        # the printed (clock) seed reproduces the run: its first 20 tokens are the same draws
        again = run("-m", MODEL, "-p", PROMPT, "--seed", m[6], "-n", "20")
        check(again.returncode == 0 and r.stdout.startswith(again.stdout.rstrip("\n")),
              f"rerunning with the printed seed differs:\n{r.stdout!r}\n{again.stdout!r}")
        print(f"default run: {generated} tokens, seed {m[6]} reproduces it")


def test_seeds():
    common = ["-m", MODEL, "-p", PROMPT, "-n", "40", "--temp", "1", "--top-k", "0", "--top-p", "1", "--min-p", "0"]
    a = run(*common, "--seed", "42")
    b = run(*common, "--seed", "42")
    c = run(*common, "--seed", "43")
    check(a.returncode == 0 and b.returncode == 0 and c.returncode == 0, "seeded runs failed: " + a.stderr)
    check(a.stdout == b.stdout, f"same seed, different text:\n{a.stdout!r}\n{b.stdout!r}")
    check(a.stdout != c.stdout, f"seeds 42 and 43 gave the same text: {a.stdout!r}")
    m = stats_of(a)
    check(m is not None and m[6] == "42", "the stats line must print the seed given")
    pen = run(*common, "--seed", "42", "--repeat-penalty", "1.3", "--repeat-last-n", "-1")
    check(pen.returncode == 0 and pen.stdout.startswith(PROMPT), f"penalised run failed: {pen.stderr}")
    print(f"seed 42: {a.stdout.strip()!r}\nseed 43: {c.stdout.strip()!r}")


def test_context_limits():
    r = run("-m", MODEL, "-p", PROMPT, "--temp", "0", "-n", "-1", "-c", "32")
    m = stats_of(r)
    check(r.returncode == 0 and m is not None and int(m[1]) + int(m[3]) <= 32,
          f"-n -1 -c 32 must stop at the context: {r.stderr}")
    check(r.stdout.startswith(PROMPT + GREEDY[:40]), f"-c 32 greedy output: {r.stdout!r}")
    r = run("-m", MODEL, "-p", PROMPT + " there was a little girl", "-c", "4")
    check(r.returncode == 1 and "context holds only 4" in r.stderr, f"over-long prompt: {r.returncode} {r.stderr}")
    r = run("-m", MODEL, "-p", PROMPT, "-c", "100000")
    check(r.returncode == 1 and "squeeze:" in r.stderr, f"-c above the model's maximum: {r.returncode} {r.stderr}")


def test_long_flags_and_stdin():
    """llama.cpp's long spellings, --flag=value and a prompt from /dev/stdin give the same text as the short forms"""
    short = run("-m", MODEL, "-p", PROMPT, "--temp", "0", "-n", "40", "--no-echo")
    long = run("--model", MODEL, "--prompt", PROMPT, "--temp=0", "--n-predict=40", "--threads", "1",
               "--ctx-size", "64", "--seed", "7", "--no-echo", threads=None)
    check(short.returncode == 0 and long.returncode == 0 and long.stdout == short.stdout and
          long.stdout.startswith(GREEDY), f"long flags: {long.returncode} {long.stdout!r} {long.stderr!r}")
    piped = subprocess.run([SQ_BIN, "run", "-t", "1", "-m", MODEL, "-f", "/dev/stdin", "--temp", "0", "-n", "40",
                            "--no-echo"], input=PROMPT, capture_output=True, text=True, timeout=600)
    check(piped.returncode == 0 and piped.stdout == short.stdout, f"-f /dev/stdin: {piped.stderr!r}")


def test_bad_usage():
    usage_errors = [
        (["-p", PROMPT], "-m MODEL is required"),
        (["-m", MODEL], "exactly one of -p and -f"),
        (["-m", MODEL, "-p", PROMPT, "-f", "x.txt"], "exactly one of -p and -f"),
        (["-m", MODEL, "-p", PROMPT, "--bogus"], "unknown option '--bogus'"),
        (["-m", MODEL, "-p", PROMPT, "stray"], "unknown option 'stray'"),
        (["-m", MODEL, "-p"], "-p needs a value"),
        (["-m", MODEL, "-p", PROMPT, "-n", "12abc"], "-n '12abc'"),
        (["-m", MODEL, "-p", PROMPT, "-n", "-2"], "-n '-2'"),
        (["-m", MODEL, "-p", PROMPT, "--temp", "-0.5"], "--temp '-0.5'"),
        (["-m", MODEL, "-p", PROMPT, "--temp", "nan"], "--temp 'nan'"),
        (["-m", MODEL, "-p", PROMPT, "--top-k", "-1"], "--top-k '-1'"),
        (["-m", MODEL, "-p", PROMPT, "--top-p", "0"], "--top-p '0'"),
        (["-m", MODEL, "-p", PROMPT, "--top-p", "1.5"], "--top-p '1.5'"),
        (["-m", MODEL, "-p", PROMPT, "--min-p", "2"], "--min-p '2'"),
        (["-m", MODEL, "-p", PROMPT, "--repeat-penalty", "0"], "--repeat-penalty '0'"),
        (["-m", MODEL, "-p", PROMPT, "--repeat-last-n", "-5"], "--repeat-last-n '-5'"),
        (["-m", MODEL, "-p", PROMPT, "--seed", "abc"], "--seed 'abc'"),
        (["-m", MODEL, "-p", PROMPT, "-t", "0"], "-t '0'"),
        (["-m", MODEL, "-p", PROMPT, "-c", "0"], "-c '0'"),
        (["-m", MODEL, "-p", PROMPT, "--kv-type", "q8"], "--kv-type 'q8' must be one of f32, f16"),
    ]
    for args, message in usage_errors:
        r = run(*args)
        check(r.returncode == 2 and message in r.stderr and r.stdout == "",
              f"{args}: want exit 2 and {message!r}, got {r.returncode} {r.stderr!r}")
    missing = os.path.join(SHARED, "models", "no-such-model.bin")
    r = run("-m", missing, "-p", PROMPT)
    check(r.returncode == 1 and "no-such-model.bin" in r.stderr, f"missing model: {r.returncode} {r.stderr!r}")
    r = run("-m", MODEL, "-f", os.path.join(SHARED, "no-such-prompt.txt"))
    check(r.returncode == 1 and "no-such-prompt.txt" in r.stderr, f"missing prompt file: {r.stderr!r}")
    r = run("--help")
    check(r.returncode == 0 and r.stdout.startswith("usage: squeeze run"), "--help must print the usage")
    print(f"{len(usage_errors)} bad command lines exit 2 with their message; missing files exit 1")


def test_decode_counts_passes():
    """Decode speed counts the forward passes after the prompt's: -n 1 takes its token from the prefill and runs
    none, so it has no decode speed (0.0), where counting generated tokens gave one token over the sampling
    time. The help says where else generation stops."""
    r = run("-m", MODEL, "-p", PROMPT, "--temp", "0", "-n", "1")
    m = stats_of(r)
    check(r.returncode == 0 and m and int(m[3]) == 1 and m[4] == "0.0",
          f"-n 1: one generated token, no decode pass: {r.stderr.strip()!r}")
    r = run("--help")
    flag = next((l for l in r.stdout.splitlines() if "--n-predict" in l), "")
    text = " ".join(r.stdout.split())
    check("stops at an end-of-generation token (EOS, end of turn) and when the context is full" in text and flag,
          f"run --help says -n also stops at EOS and the context's end: {r.stdout!r}")


def main():
    test_greedy()
    test_decode_counts_passes()
    test_defaults_only_model_and_prompt()
    test_seeds()
    test_context_limits()
    test_long_flags_and_stdin()
    test_bad_usage()
    for f in failures:
        print("FAIL:", f)
    print(f"{checks - len(failures)}/{checks} checks passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
