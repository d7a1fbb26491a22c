"""`squeeze serve --spec draft|self` on stories15M through the official `openai` client and raw HTTP. The draft
model is a depth-pruned copy made here (`squeeze prune --method depth`, 3 of 6 blocks: it often disagrees with
the target, so drafts are rejected as well as kept); self-speculation skips blocks 2 and 3. For each: greedy
completions of four prompts of different lengths, requested at once, two streamed and two not, are exactly
`squeeze run --temp 0`'s text; a client leaving mid-stream is cancelled and both its sequences are freed (the
target's and the draft model's KV blocks back to zero in /metrics); seeded sampled requests are reproducible,
stop at max_tokens, and end before a stop string taken from their own text; /metrics counts drafts by position
and SIGTERM prints the acceptance line. A draft with another vocabulary, token trees and --draft-k auto are
refused at start."""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from test_serve import MODEL, SHARED, SQ_BIN, Server, check, failures, servers, squeeze_run  # noqa: E402
import test_serve  # noqa: E402

PROMPTS = [("Once upon a time", 60), ("Lily and Ben played with the ball. Lily and Ben", 35),
           ("The little dog", 20), ("Tom and Lily went to the park", 48)]
SPEC_LINE = re.compile(r"^speculative (draft|self): (\d+) target steps, \d+\.\d\d tokens per step \(\d+\.\d\d drafts "
                       r"accepted of \d+\.\d\d\) \| acceptance by position:(?: \d\.\d\d)+ \| draft ")


def concurrent_greedy(srv, want, label):
    results = {}

    def one(i):
        prompt, n = PROMPTS[i]
        c = srv.client()
        if i % 2:
            s = c.completions.create(model="squeeze", prompt=prompt, max_tokens=n, temperature=0, stream=True)
            results[i] = "".join(ch.choices[0].text for ch in s)
        else:
            results[i] = c.completions.create(model="squeeze", prompt=prompt, max_tokens=n,
                                              temperature=0).choices[0].text

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(PROMPTS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, (prompt, n) in enumerate(PROMPTS):
        check(results.get(i) == want[i], f"{label}: greedy {'streamed' if i % 2 else 'whole'} {prompt!r}: "
                                         f"{results.get(i)!r} != run's {want[i]!r}")


def wait_idle(srv):
    deadline = time.time() + 60
    m = srv.metrics()
    while time.time() < deadline and (m["squeeze_requests_running"] or m["squeeze_requests_waiting"]):
        time.sleep(0.05)
        m = srv.metrics()
    return m


def disconnect_frees_both(srv, label, has_draft_pool):
    before = srv.metrics()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=120)
    body = json.dumps({"prompt": PROMPTS[0][0], "max_tokens": 200, "temperature": 0, "stream": True}).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    got = b""
    while got.count(b"data: ") < 3:
        got += s.recv(4096)
    during = srv.metrics()
    s.close()
    m = wait_idle(srv)
    check(m['squeeze_choices_finished_total{reason="cancelled"}'] ==
          before['squeeze_choices_finished_total{reason="cancelled"}'] + 1, f"{label}: the abandoned stream is cancelled")
    check(m["squeeze_generation_tokens_total"] - before["squeeze_generation_tokens_total"] < 200,
          f"{label}: and stops generating")
    check(during["squeeze_kv_blocks_used"] > 0, f"{label}: the stream held target blocks while running")
    check(m["squeeze_kv_blocks_used"] == 0, f"{label}: target KV blocks freed: {m['squeeze_kv_blocks_used']}")
    if has_draft_pool:
        check(during["squeeze_spec_draft_kv_blocks_used"] > 0, f"{label}: the stream held draft blocks")
        check(m["squeeze_spec_draft_kv_blocks_used"] == 0,
              f"{label}: draft KV blocks freed: {m['squeeze_spec_draft_kv_blocks_used']}")


def sampled(srv, label):
    cl = srv.client()
    prompt = PROMPTS[3][0]
    a = cl.completions.create(model="squeeze", prompt=prompt, max_tokens=30, temperature=0.8, seed=5)
    b = cl.completions.create(model="squeeze", prompt=prompt, max_tokens=30, temperature=0.8, seed=5)
    text = a.choices[0].text
    check(text == b.choices[0].text, f"{label}: a seeded sampled request is reproducible: {text!r} "
                                     f"{b.choices[0].text!r}")
    check(a.usage.completion_tokens <= 30 and (a.choices[0].finish_reason == "stop" or a.usage.completion_tokens == 30),
          f"{label}: max_tokens respected: {a.usage} {a.choices[0].finish_reason}")
    many = cl.completions.create(model="squeeze", prompt=prompt, max_tokens=12, temperature=1.0, seed=9, n=3)
    check(all(c.finish_reason in ("stop", "length") for c in many.choices) and many.usage.completion_tokens <= 36,
          f"{label}: n=3 sampled choices within max_tokens: {many.usage}")
    if len(text) > 20:
        stop = text[10:14]
        c = cl.completions.create(model="squeeze", prompt=prompt, max_tokens=30, temperature=0.8, seed=5, stop=[stop])
        check(c.choices[0].text == text[:text.index(stop)] and c.choices[0].finish_reason == "stop",
              f"{label}: stop {stop!r}: {c.choices[0].text!r} is not {text[:text.index(stop)]!r}")
    s = cl.completions.create(model="squeeze", prompt=prompt, max_tokens=30, temperature=0.8, seed=5, stream=True)
    check("".join(ch.choices[0].text for ch in s) == text, f"{label}: the seeded request streamed is the same")


def serve_method(label, args, has_draft_pool, want):
    srv = Server("--max-seqs", "4", "--max-batch-tokens", "64", "--no-prefix-cache", "--draft-k", "4", *args)
    try:
        concurrent_greedy(srv, want, label)
        disconnect_frees_both(srv, label, has_draft_pool)
        sampled(srv, label)
        m = srv.metrics()
        drafted, kept = m.get("squeeze_spec_draft_tokens_total", 0), m.get("squeeze_spec_accepted_tokens_total", 0)
        check(0 < kept < drafted, f"{label}: drafts kept and rejected: {kept} of {drafted}")
        check(m.get('squeeze_spec_position_drafts_total{position="0"}', 0) >=
              m.get('squeeze_spec_position_accepted_total{position="0"}', -1) > 0,
              f"{label}: acceptance by position counted")
    finally:
        rc = srv.stop()
        check(rc == 0, f"{label}: SIGTERM exit status 0, got {rc}")
    err = srv.proc.stderr.read()
    check(any(SPEC_LINE.match(line) for line in err.splitlines()), f"{label}: no acceptance line at exit: {err!r}")
    print(f"serve {label}: greedy texts = squeeze run's, 4 at once; {kept:.0f} of {drafted:.0f} drafts kept; "
          f"an abandoned stream frees its sequences")


def refused(args, status, what):
    r = subprocess.run([SQ_BIN, "serve", "-m", MODEL, "--port", "0", "-t", "1", "-c", "256", *args],
                       capture_output=True, text=True, timeout=120)
    check(r.returncode == status and what in r.stderr, f"serve {args}: exit {r.returncode}, {r.stderr!r}")


def main():
    want = [squeeze_run(p, n) for p, n in PROMPTS]
    with tempfile.TemporaryDirectory() as tmp:
        draft = os.path.join(tmp, "draft.gguf")
        r = subprocess.run([SQ_BIN, "prune", "-m", MODEL, "-o", draft, "--method", "depth", "--remove", "3",
                            "--criterion", "magnitude"], capture_output=True, text=True, timeout=600)
        check(r.returncode == 0, f"depth pruning failed: {r.stderr}")
        serve_method("draft", ["--spec", "draft", "--draft", draft], True, want)
    serve_method("self", ["--spec", "self", "--skip-layers", "2,3"], False, want)
    refused(["--spec", "draft", "--draft", os.path.join(SHARED, "models", "stories260K.bin")], 1,
            "the draft has 512 token ids, the target 32000")
    refused(["--spec", "tree"], 2, "--spec tree is not served")
    refused(["--spec", "draft", "--draft", MODEL, "--draft-k", "auto"], 2, "--draft-k auto is not served")
    refused(["--spec", "self"], 2, "--spec self needs --skip-layers")
    for f in failures:
        print("FAIL:", f)
    print(f"{test_serve.checks - len(failures)}/{test_serve.checks} checks passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    try:
        main()
    finally:
        for s in servers:
            if s.proc.poll() is None:
                s.proc.kill()
