#!/usr/bin/env python3
"""Load test of `squeeze serve` on loopback: N clients at once, each streaming its requests one after another.

Measures, per concurrency level, request and token throughput, time to first token (TTFT: request sent to the
first streamed text) and time per output token (TPOT: the mean gap between a request's later chunks)
percentiles, and checks that every response is complete and none is lost. Then:
  - continuous batching against serving the same requests one at a time (a server with --max-seqs 1, the same
    16 clients), in tokens per second;
  - the TTFT that prefix caching saves on requests sharing a long system prompt (one client, so that TTFT is
    the prompt's own prefill), against a server started with --no-prefix-cache;
  - speculative decoding by prompt lookup (--spec ngram) against plain decoding on input-grounded requests
    (a story, then the request to tell it again: the answer copies its input), greedy, at 1 and 4 clients,
    the two servers alternating; the texts must be identical;
  - the n-gram pool (--spec ngram --ngram-pool N: drafts from other requests' generated text) against prompt
    lookup alone and plain decoding, on story openings that recur across requests and on distinct ones;
  - with --only-draft: draft models (--spec draft --draft D, each D of --drafts) and self-speculation
    (--spec self --skip-layers of --skip) against plain decoding on distinct greedy story requests, at 1 and 4
    clients, servers alternating: tokens/s, TTFT and TPOT, acceptance; the texts must be identical.
Prints a Markdown section for docs/benchmarks.md.

    .venv/bin/python bench/serve_load.py [-m MODEL] [--bin build/squeeze] [--requests 64] [--max-tokens 64]
                                         [--concurrency 1,4,16,64] [-t THREADS]
                                         [--only-spec | --only-pool | --only-draft [--drafts D1,D2 --skip 2,3]]
"""
import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPTS = ["Once upon a time", "The little dog", "Tom and Lily went to the park", "One day, a big bird",
           "Sara had a red ball", "The sun was hot and", "There was a cat named", "Ben liked to play with"]
SYSTEM = ("Lily and Ben were best friends. They lived in a small house near a big forest. Every day they went to "
          "the forest to play. They liked to climb trees, pick flowers and look for animals. One day they found a "
          "little bird that could not fly. Its wing was hurt. Lily said, we have to help the bird. Ben said, yes, "
          "let us take it home. They made a soft bed for the bird in a box and gave it water and seeds. ")
QUESTIONS = ["What did the bird eat?", "Where did they live?", "Who found the bird?", "What did Ben say?",
             "Why could the bird not fly?", "What did they make?", "What did they like?", "Where did they play?"]


class Server:
    def __init__(self, binary, model, threads, *extra):
        cmd = [binary, "serve", "-m", model, "--port", "0", "-t", str(threads), *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        m = re.search(r":(\d+) ", self.proc.stdout.readline())
        if not m:
            self.proc.kill()
            sys.exit("serve_load: the server did not start")
        self.port = int(m[1])

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def stream_request(port, body):
    """one streamed completion; returns (ttft, chunk times, text, finish_reason, usage)"""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t0 = time.perf_counter()
    c.request("POST", "/v1/completions", body=json.dumps({**body, "stream": True,
                                                           "stream_options": {"include_usage": True}}),
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    assert r.status == 200, r.read()
    times, text, finish, usage, done = [], "", None, None, False
    buf = b""
    while not done:
        chunk = r.read1(65536)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            event, buf = buf.split(b"\n\n", 1)
            data = event[len(b"data: "):]
            if data == b"[DONE]":
                done = True
                break
            d = json.loads(data)
            if d.get("usage"):
                usage = d["usage"]
            for ch in d["choices"]:
                if ch["text"]:
                    times.append(time.perf_counter() - t0)
                    text += ch["text"]
                finish = ch["finish_reason"] or finish
    c.close()
    return (times[0] if times else None), times, text, finish, usage, done


def run_load(port, requests, concurrency):
    """concurrency clients take the requests in order; returns the per-request results and the wall time"""
    results, lock, next_i = [None] * len(requests), threading.Lock(), [0]

    def client():
        while True:
            with lock:
                i = next_i[0]
                next_i[0] += 1
            if i >= len(requests):
                return
            results[i] = stream_request(port, requests[i])

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, time.perf_counter() - t0


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else float("nan")


def summarize(results, wall, max_tokens):
    complete = [r for r in results if r and r[5] and r[3] in ("stop", "length") and r[4]]
    lost = len(results) - len(complete)
    tokens = sum(r[4]["completion_tokens"] for r in complete)
    full = sum(r[4]["completion_tokens"] == max_tokens or r[3] == "stop" for r in complete)
    ttft = [r[0] for r in complete if r[0] is not None]
    tpot = [(r[1][-1] - r[1][0]) / (len(r[1]) - 1) for r in complete if len(r[1]) > 1]
    return {"lost": lost, "complete": len(complete), "full": full, "tokens": tokens, "req_s": len(complete) / wall,
            "tok_s": tokens / wall, "ttft": ttft, "tpot": tpot, "wall": wall}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-m", "--model", default=None)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "squeeze"))
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--concurrency", default="1,4,16,64")
    ap.add_argument("-t", "--threads", type=int, default=os.cpu_count())
    ap.add_argument("--only-spec", action="store_true", help="only the speculative decoding comparison")
    ap.add_argument("--only-pool", action="store_true", help="only the n-gram pool comparison")
    ap.add_argument("--only-draft", action="store_true", help="only the draft-model / self-draft comparison")
    ap.add_argument("--drafts", default="", help="draft models for --only-draft, comma-separated")
    ap.add_argument("--skip", default="2,3", help="--only-draft: the self-draft's skipped blocks ('': none)")
    a = ap.parse_args()
    model = a.model or subprocess.run([os.path.join(ROOT, "scripts", "find-model.sh")], capture_output=True,
                                      text=True).stdout.strip()
    if a.only_pool:
        pool_section(a, model)
        return
    if a.only_draft:
        draft_section(a, model)
        return
    if a.only_spec:
        spec_section(a, model)
        return
    levels = [int(x) for x in a.concurrency.split(",")]
    requests = [{"prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": a.max_tokens, "temperature": 0.8, "seed": i}
                for i in range(a.requests)]
    print(f"serve_load: {os.path.basename(model)}, {a.requests} requests of {a.max_tokens} tokens, "
          f"{a.threads} threads", file=sys.stderr)

    rows = []
    srv = Server(a.bin, model, a.threads, "--max-seqs", str(max(levels)), "--max-batch-tokens", "512")
    try:
        stream_request(srv.port, requests[0])  # warm-up
        for c in levels:
            res, wall = run_load(srv.port, requests, c)
            rows.append((f"continuous batching, {c} client{'s' if c > 1 else ''}", summarize(res, wall, a.max_tokens)))
            print(f"  concurrency {c}: {rows[-1][1]['tok_s']:.1f} tok/s", file=sys.stderr)
    finally:
        srv.stop()
    srv = Server(a.bin, model, a.threads, "--max-seqs", "1", "--max-batch-tokens", "512")
    try:
        stream_request(srv.port, requests[0])
        res, wall = run_load(srv.port, requests, 16)
        rows.append(("one at a time (--max-seqs 1), 16 clients", summarize(res, wall, a.max_tokens)))
        print(f"  one at a time: {rows[-1][1]['tok_s']:.1f} tok/s", file=sys.stderr)
    finally:
        srv.stop()

    # prefix caching: a shared system prompt, one client, TTFT with and without the cache
    shared = [{"prompt": SYSTEM + QUESTIONS[i % len(QUESTIONS)], "max_tokens": 4, "temperature": 0}
              for i in range(24)]
    ttft = {}
    for label, extra in [("prefix cache", []), ("no prefix cache", ["--no-prefix-cache"])]:
        srv = Server(a.bin, model, a.threads, "--max-seqs", "4", *extra)
        try:
            stream_request(srv.port, shared[0])  # the first request fills the cache (or warms up)
            res, wall = run_load(srv.port, shared[1:], 1)
            s = summarize(res, wall, 4)
            ttft[label] = s
            m = {}
            c = http.client.HTTPConnection("127.0.0.1", srv.port)
            c.request("GET", "/metrics")
            for line in c.getresponse().read().decode().splitlines():
                if line.startswith("squeeze_prefix_cache_hit_tokens_total") or line.startswith("squeeze_prompt_tokens_total"):
                    k, v = line.split()
                    m[k] = float(v)
            s["hit"] = m.get("squeeze_prefix_cache_hit_tokens_total", 0) / max(1, m.get("squeeze_prompt_tokens_total", 1))
        finally:
            srv.stop()

    print("| workload | requests complete / lost | tokens/s | requests/s | TTFT p50 / p90 / p99 (ms) |"
          " TPOT p50 / p90 / p99 (ms) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, s in rows:
        print(f"| {label} | {s['complete']} / {s['lost']} | {s['tok_s']:.1f} | {s['req_s']:.2f} | "
              f"{pct(s['ttft'], 50) * 1e3:.1f} / {pct(s['ttft'], 90) * 1e3:.1f} / {pct(s['ttft'], 99) * 1e3:.1f} | "
              f"{pct(s['tpot'], 50) * 1e3:.2f} / {pct(s['tpot'], 90) * 1e3:.2f} / {pct(s['tpot'], 99) * 1e3:.2f} |")
    batched16 = next((s for label, s in rows if label.startswith("continuous batching, 16 ")), None)
    single = rows[-1][1]
    if batched16:
        print(f"\nContinuous batching at 16 clients: {batched16['tok_s'] / single['tok_s']:.2f}x the tokens/s of "
              f"the same requests served one at a time.")
    w, wo = ttft["prefix cache"], ttft["no prefix cache"]
    print(f"\nShared system prompt ({len(shared) - 1} requests after the first, one client): TTFT p50 "
          f"{pct(w['ttft'], 50) * 1e3:.1f} ms with the prefix cache ({w['hit'] * 100:.0f}% of prompt tokens from "
          f"the cache) against {pct(wo['ttft'], 50) * 1e3:.1f} ms without: "
          f"{pct(wo['ttft'], 50) / pct(w['ttft'], 50):.2f}x.")
    if any(s["lost"] for _, s in rows) or w["lost"] or wo["lost"]:
        sys.exit("serve_load: requests were lost")
    spec_section(a, model)
    pool_section(a, model)


def compare_servers(a, model, requests, modes, with_last=False):
    """Serves requests at 1 and 4 clients, a fresh server per mode ((label, flags)) and client count (warmed up
    with a request outside the workload, so that nothing of it is cached or pooled before), the modes
    alternating over 2 rounds; returns tokens/s per (label, clients) and round, and each mode's drafts kept and
    verified in the last round (/metrics); with_last, also the last round's summaries per (label, clients).
    Every mode's texts must equal the first mode's (greedy requests)."""
    tok_s = {(m, c): [] for m, _ in modes for c in (1, 4)}
    texts, kept, last = {}, {}, {}
    for rnd in range(2):
        for label, extra in modes:
            kept[label] = (0, 0)
            for c in (1, 4):
                srv = Server(a.bin, model, a.threads, "--max-seqs", "4", "--no-prefix-cache", *extra)
                try:
                    stream_request(srv.port, {"prompt": "Hello", "max_tokens": 4, "temperature": 0})  # warm-up
                    res, wall = run_load(srv.port, requests, c)
                    s = summarize(res, wall, a.max_tokens)
                    if s["lost"]:
                        sys.exit("serve_load: requests were lost")
                    tok_s[(label, c)].append(s["tok_s"])
                    last[(label, c)] = s
                    texts.setdefault(label, [r[2] for r in res])
                    m = {}
                    conn = http.client.HTTPConnection("127.0.0.1", srv.port)
                    conn.request("GET", "/metrics")
                    for line in conn.getresponse().read().decode().splitlines():
                        if line.startswith("squeeze_spec_"):
                            k, v = line.split()
                            m[k] = float(v)
                    kept[label] = (kept[label][0] + m.get("squeeze_spec_accepted_tokens_total", 0),
                                   kept[label][1] + m.get("squeeze_spec_draft_tokens_total", 0))
                finally:
                    srv.stop()
        print(f"  round {rnd + 1}: " + ", ".join(f"{k[0]} x{k[1]} {v[-1]:.1f}" for k, v in tok_s.items()),
              file=sys.stderr)
    for label, _ in modes:
        if texts[label] != texts[modes[0][0]]:
            sys.exit(f"serve_load: {label} changed a greedy text")
    return (tok_s, kept, last) if with_last else (tok_s, kept)


def draft_section(a, model):
    """draft models and self-speculation against plain decoding, distinct greedy story requests"""
    reqs = [{"prompt": f"{PROMPTS[i % len(PROMPTS)]} {w}", "max_tokens": a.max_tokens, "temperature": 0}
            for i, w in enumerate("red blue green small big old new happy sad tall short kind shy brave funny "
                                  "quiet".split())]
    modes = [("plain", [])]
    modes += [(f"draft {os.path.basename(d)}", ["--spec", "draft", "--draft", d, "--draft-k", "4"])
              for d in a.drafts.split(",") if d]
    if a.skip:
        modes.append((f"self --skip-layers {a.skip}", ["--spec", "self", "--skip-layers", a.skip, "--draft-k", "4"]))
    tok_s, kept, last = compare_servers(a, model, reqs, modes, with_last=True)
    print(f"\nDraft models in the server: {len(reqs)} distinct greedy story requests of {a.max_tokens} tokens, a "
          "fresh server (`--max-seqs 4 --no-prefix-cache`, `--draft-k 4`) per mode and client count, alternating "
          "over 2 rounds; texts identical in every mode. tokens/s: median of the rounds; TTFT and TPOT p50: the "
          "last round; kept/verified: drafts over both client counts of the last round.\n")
    print("| mode | clients | tokens/s | speedup over plain | TTFT p50 (ms) | TPOT p50 (ms) | drafts kept/verified |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for label, _ in modes:
        for c in (1, 4):
            med, base = statistics.median(tok_s[(label, c)]), statistics.median(tok_s[("plain", c)])
            s = last[(label, c)]
            k, d = kept[label]
            acc = f"{k:.0f}/{d:.0f} ({100 * k / d:.0f}%)" if d else "-"
            print(f"| {label} | {c} | {med:.1f} | {med / base:.2f}x | {pct(s['ttft'], 50) * 1e3:.1f} | "
                  f"{pct(s['tpot'], 50) * 1e3:.2f} | {acc} |", flush=True)


def spec_section(a, model):
    """--spec ngram against plain decoding, input-grounded greedy requests, servers alternating"""
    story = SYSTEM.strip()
    grounded = [{"prompt": f"{story}\n\nThe same story again: {story[:12 * (i % 4 + 1)]}",
                 "max_tokens": a.max_tokens, "temperature": 0} for i in range(16)]
    tok_s, kept = compare_servers(a, model, grounded,
                                  [("plain", []), ("--spec ngram", ["--spec", "ngram", "--draft-k", "4"])])
    print(f"\nInput-grounded greedy requests ({len(grounded)} of {a.max_tokens} tokens: a story, then the request "
          "to tell it again), plain against `--spec ngram --draft-k 4`, fresh servers alternating over 2 rounds; texts "
          "identical:\n")
    print("| clients | plain tokens/s (rounds) | --spec ngram tokens/s (rounds) | speedup (median of rounds) |")
    print("| --- | --- | --- | --- |")
    for c in (1, 4):
        p, q = tok_s[("plain", c)], tok_s[("--spec ngram", c)]
        print(f"| {c} | {', '.join(f'{x:.1f}' for x in p)} | {', '.join(f'{x:.1f}' for x in q)} | "
              f"{statistics.median(q) / statistics.median(p):.2f}x |")
    k, d = kept["--spec ngram"]
    print(f"\nDrafts kept (last round, both client counts): {k:.0f} of {d:.0f} ({100 * k / max(d, 1):.0f}%).")


def pool_section(a, model):
    """the n-gram pool against prompt lookup alone and plain decoding, greedy story requests"""
    workloads = [("recurring openings (4 openings x 4)", [PROMPTS[i % 4] for i in range(16)]),
                 ("distinct openings", [f"{PROMPTS[i % len(PROMPTS)]} {w}" for i, w in
                                        enumerate("red blue green small big old new happy sad tall short "
                                                  "kind shy brave funny quiet".split())])]
    modes = [("plain", []), ("lookup", ["--spec", "ngram", "--draft-k", "4"]),
             ("lookup + pool", ["--spec", "ngram", "--draft-k", "4", "--ngram-pool", "65536"])]
    print(f"\nThe n-gram pool: 16 greedy story requests of {a.max_tokens} tokens, a fresh server (`--max-seqs 4 "
          "--no-prefix-cache`) per mode and client count, alternating over 2 rounds; texts identical in every "
          "mode; kept/verified: drafts over both client counts of the last round:\n")
    print("| requests | clients | plain tokens/s | lookup tokens/s (kept/verified) | lookup + pool tokens/s "
          "(kept/verified) | pool's speedup over lookup |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, prompts in workloads:
        reqs = [{"prompt": p, "max_tokens": a.max_tokens, "temperature": 0} for p in prompts]
        tok_s, kept = compare_servers(a, model, reqs, modes)
        for c in (1, 4):
            med = {m: statistics.median(tok_s[(m, c)]) for m, _ in modes}
            print(f"| {name} | {c} | {med['plain']:.1f} | {med['lookup']:.1f} "
                  f"({kept['lookup'][0]:.0f}/{kept['lookup'][1]:.0f}) | {med['lookup + pool']:.1f} "
                  f"({kept['lookup + pool'][0]:.0f}/{kept['lookup + pool'][1]:.0f}) | "
                  f"{med['lookup + pool'] / med['lookup']:.2f}x |", flush=True)



if __name__ == "__main__":
    main()
