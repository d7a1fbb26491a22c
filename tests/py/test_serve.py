"""`squeeze serve` on stories15M through real clients on loopback: the official `openai` package (completions,
chat, streaming, n > 1, logprobs, stop strings, usage) and raw HTTP for hostile input (malformed JSON, wrong
types, unknown fields, invalid UTF-8, a 100 MB body, prompts longer than the context, absurd max_tokens and n,
slow and half-open clients, 500 connections at once, a client that leaves mid-stream), each answered with the
right status and an OpenAI-style error body while the server keeps serving. A greedy request returns exactly
what `squeeze run --temp 0` prints, alone and while 15 other requests run; streaming equals non-streaming.
Servers listen on a free port (--port 0, read back from their first line) and are stopped with SIGTERM,
whose graceful exit is checked; none is left running."""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import openai

SQ_BIN = os.environ["SQ_BIN"]
SHARED = os.environ.get("SQ_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared"))
MODEL = os.path.join(SHARED, "models", "stories15M.bin")
PROMPT = "Once upon a time"
N_CTX = 256

failures = []
checks = 0
servers = []


def check(ok, what):
    global checks
    checks += 1
    if not ok:
        failures.append(what)
    return ok


class Server:
    """squeeze serve on a free port; stop() sends SIGTERM and returns the exit status"""

    def __init__(self, *extra):
        self.proc = subprocess.Popen([SQ_BIN, "serve", "-m", MODEL, "--port", "0", "-t", "1", "-c", str(N_CTX),
                                      *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        servers.append(self)
        line = self.proc.stdout.readline()
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r} {self.proc.stderr.read()!r}")
        self.port = int(m[1])
        self.base = f"http://127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None

    def client(self, key="none"):
        return openai.OpenAI(base_url=self.base + "/v1", api_key=key, max_retries=0, timeout=600)

    def request(self, method, path, body=None, headers=None):
        """one request; returns (status, parsed JSON or text)"""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        c.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        r = c.getresponse()
        data = r.read()
        c.close()
        try:
            return r.status, json.loads(data)
        except ValueError:
            return r.status, data.decode("utf-8", "replace")

    def metrics(self):
        status, text = self.request("GET", "/metrics")
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                values[name] = float(value)
        return values


def squeeze_run(prompt, n):
    r = subprocess.run([SQ_BIN, "run", "-m", MODEL, "-p", prompt, "-n", str(n), "--temp", "0", "--no-echo",
                        "-t", "1", "-c", str(N_CTX)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return r.stdout[:-1]  # run ends its text with a newline


def is_openai_error(body, param=None):
    return (isinstance(body, dict) and isinstance(body.get("error"), dict) and
            body["error"].get("type") == "invalid_request_error" and isinstance(body["error"].get("message"), str)
            and (param is None or body["error"].get("param") == param))


def test_greedy_matches_run(srv):
    want = squeeze_run(PROMPT, 60)
    cl = srv.client()
    got = cl.completions.create(model="squeeze", prompt=PROMPT, max_tokens=60, temperature=0)
    check(got.choices[0].text == want, f"greedy alone: {got.choices[0].text!r} != run's {want!r}")
    check(got.usage.prompt_tokens == 5 and got.usage.completion_tokens == 60 and got.usage.total_tokens == 65,
          f"usage {got.usage}")
    check(got.choices[0].finish_reason == "length", f"finish_reason {got.choices[0].finish_reason}")
    # the same request while 15 others (sampled, streamed or not, of mixed lengths) run
    others = ["The little dog", "Tom and Lily went to the park", "One day, a big bird", "Sara had a red ball"]
    results = {}

    def other(i):
        try:
            c = srv.client()
            if i % 2:
                s = c.completions.create(model="squeeze", prompt=others[i % 4], max_tokens=30 + 10 * i,
                                         temperature=0.8, seed=i, stream=True)
                results[i] = "".join(ch.choices[0].text for ch in s)
            else:
                results[i] = c.completions.create(model="squeeze", prompt=others[i % 4], max_tokens=30 + 10 * i,
                                                  temperature=0.8, seed=i).choices[0].text
        except Exception as e:  # noqa: BLE001 - reported as a failure
            results[i] = e

    threads = [threading.Thread(target=other, args=(i,)) for i in range(15)]
    for t in threads[:8]:
        t.start()
    greedy = {}
    t_greedy = threading.Thread(target=lambda: greedy.setdefault(
        "text", cl.completions.create(model="squeeze", prompt=PROMPT, max_tokens=60, temperature=0).choices[0].text))
    t_greedy.start()
    for t in threads[8:]:
        t.start()
    for t in threads + [t_greedy]:
        t.join()
    check(greedy.get("text") == want, f"greedy among 15 others: {greedy.get('text')!r} != {want!r}")
    check(all(isinstance(v, str) and v for v in results.values()) and len(results) == 15,
          f"the 15 others: {results}")
    print(f"greedy request = squeeze run --temp 0, alone and among 15 others: {want[:40]!r}...")


def test_openai_client(srv):
    cl = srv.client()
    # streaming equals non-streaming, completions and chat
    whole = cl.completions.create(model="squeeze", prompt=PROMPT, max_tokens=40, temperature=0)
    parts = list(cl.completions.create(model="squeeze", prompt=PROMPT, max_tokens=40, temperature=0, stream=True,
                                       stream_options={"include_usage": True}))
    text = "".join(p.choices[0].text for p in parts if p.choices)
    check(text == whole.choices[0].text, f"stream {text!r} != whole {whole.choices[0].text!r}")
    check(parts[-1].usage is not None and parts[-1].usage.completion_tokens == 40 and not parts[-1].choices,
          f"include_usage: the last chunk carries the usage: {parts[-1]}")
    finals = [p.choices[0].finish_reason for p in parts if p.choices and p.choices[0].finish_reason]
    check(finals == ["length"], f"one finish_reason at the end: {finals}")

    messages = [{"role": "system", "content": "You tell stories."}, {"role": "user", "content": "Tell me a story."}]
    chat = cl.chat.completions.create(model="squeeze", messages=messages, max_tokens=30, temperature=0)
    stream = list(cl.chat.completions.create(model="squeeze", messages=messages, max_tokens=30, temperature=0,
                                             stream=True))
    check(stream[0].choices[0].delta.role == "assistant", "the first chat chunk names the role")
    streamed = "".join(c.choices[0].delta.content or "" for c in stream)
    check(chat.choices[0].message.content == streamed and streamed,
          f"chat stream {streamed!r} != whole {chat.choices[0].message.content!r}")
    check(chat.choices[0].message.role == "assistant" and chat.object == "chat.completion", "chat response shape")
    # the fallback template's prompt: "System: ...\n\nUser: ...\n\nAssistant:" tokenized with BOS
    r = subprocess.run([SQ_BIN, "tokenize", "--tokenizer", os.path.join(SHARED, "models", "tokenizer.model"),
                        "-p", "System: You tell stories.\n\nUser: Tell me a story.\n\nAssistant:", "--ids"],
                       capture_output=True, text=True)
    n_prompt = len(r.stdout.split()) if r.returncode == 0 else -1  # BOS included, as the tokenizer adds it
    check(chat.usage.prompt_tokens == n_prompt, f"chat prompt tokens {chat.usage.prompt_tokens} vs the fallback "
          f"rendering's {n_prompt}")

    # n > 1 with a seed: n different samples, reproducible
    a = cl.completions.create(model="squeeze", prompt=PROMPT, max_tokens=25, temperature=1.0, n=3, seed=11)
    b = cl.completions.create(model="squeeze", prompt=PROMPT, max_tokens=25, temperature=1.0, n=3, seed=11)
    ta, tb = [c.text for c in a.choices], [c.text for c in b.choices]
    check([c.index for c in a.choices] == [0, 1, 2], "n=3 gives choices 0, 1, 2")
    check(ta == tb, f"the same seed gives the same choices: {ta} vs {tb}")
    check(len(set(ta)) > 1, f"n=3 samples differ: {ta}")
    if all(c.finish_reason == "length" for c in a.choices):
        check(a.usage.completion_tokens == 75, f"usage counts every choice's 25 tokens: {a.usage}")
    cs = list(cl.chat.completions.create(model="squeeze", messages=messages, max_tokens=10, temperature=1.0, n=2,
                                         seed=3, stream=True))
    check({c.choices[0].index for c in cs if c.choices} == {0, 1}, "streamed n=2 chunks name both choices")

    # logprobs: completions (top N as dicts), chat (content entries with top_logprobs)
    lp = cl.completions.create(model="squeeze", prompt=PROMPT, max_tokens=8, temperature=0, logprobs=3)
    L = lp.choices[0].logprobs
    check(len(L.tokens) == 8 and len(L.token_logprobs) == 8 and len(L.top_logprobs) == 8,
          f"completion logprobs for each token: {L}")
    check("".join(L.tokens) == lp.choices[0].text, f"logprob tokens spell the text: {L.tokens}")
    check(all(v <= 0 for v in L.token_logprobs), "log-probabilities are <= 0")
    check(all(abs(max(d.values()) - t) < 1e-6 for d, t in zip(L.top_logprobs, L.token_logprobs)),
          "greedy: the chosen token is the top alternative")
    check(L.text_offset == sorted(L.text_offset) and L.text_offset[0] == 0, f"text offsets {L.text_offset}")
    clp = cl.chat.completions.create(model="squeeze", messages=messages, max_tokens=6, temperature=0, logprobs=True,
                                     top_logprobs=4)
    content = clp.choices[0].logprobs.content
    check(len(content) == 6 and all(len(c.top_logprobs) == 4 for c in content),
          f"chat logprobs: 6 tokens with 4 alternatives: {content}")
    check(all(c.top_logprobs[0].logprob >= c.top_logprobs[-1].logprob for c in content), "alternatives sorted")

    # stop strings: split across tokens, never leaked, streamed or not
    full = cl.completions.create(model="squeeze", prompt=PROMPT, max_tokens=30, temperature=0).choices[0].text
    cut = full.index("le gi")
    s = cl.completions.create(model="squeeze", prompt=PROMPT, max_tokens=30, temperature=0, stop=["le gi", "zz"])
    check(s.choices[0].text == full[:cut] and s.choices[0].finish_reason == "stop",
          f"stop 'le gi': {s.choices[0].text!r} ({s.choices[0].finish_reason})")
    chunks = [c.choices[0].text for c in cl.completions.create(model="squeeze", prompt=PROMPT, max_tokens=30,
                                                               temperature=0, stop="le gi", stream=True)]
    check("".join(chunks) == full[:cut] and not any("le" in c for c in chunks[-2:]),
          f"streamed stop: {chunks}")
    # penalties change the text; models list
    pen = cl.completions.create(model="squeeze", prompt=PROMPT, max_tokens=60, temperature=0, frequency_penalty=2)
    check(pen.choices[0].text != squeeze_run(PROMPT, 60), "a frequency penalty changes the greedy text")
    models = cl.models.list()
    check([m.id for m in models.data] == ["squeeze"], f"models: {models}")
    print("openai client: completions, chat, streaming = whole, n>1 with seeds, logprobs, stop strings, penalties")


def raw(srv, payload, headers=None):
    """sends bytes as one request on its own socket; returns (status, body)"""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=120)
    head = (f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n")
    for k, v in (headers or {}).items():
        head += f"{k}: {v}\r\n"
    s.sendall(head.encode() + b"\r\n" + payload)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else None
    body = data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


def test_hostile_input(srv):
    cases = [
        (b"{not json", 400, None),
        (b'{"prompt": "a", "max_tokens": "7"}', 400, "max_tokens"),
        (b'{"prompt": 17}', 400, "prompt"),
        (b'{"prompt": "a", "colour": "red"}', 400, "colour"),
        (b'{"prompt": "a\xff\xfe"}', 400, None),
        (b'{"prompt": "a", "n": 100000}', 400, "n"),
        (b'{"prompt": "a", "max_tokens": 1000000000}', 400, "max_tokens"),
        (b'{"prompt": "a", "temperature": -1}', 400, "temperature"),
        (json.dumps({"prompt": "word " * 2000}).encode(), 400, "prompt"),
        (json.dumps({"prompt": list(range(N_CTX + 5))}).encode(), 400, "prompt"),
        (b'{"prompt": [1, 99999999]}', 400, None),
        (b'{"prompt": "a", "model": "gpt-4"}', 404, "model"),
        (b"[" * 100000 + b"]" * 100000, 400, None),
    ]
    for payload, status, param in cases:
        got, body = raw(srv, payload)
        check(got == status and (is_openai_error(body, param) if status == 400 else "error" in body),
              f"{payload[:60]!r}: want {status} param {param}, got {got} {str(body)[:200]}")
    st, body = srv.request("GET", "/v1/completions")
    check(st == 405 and "error" in body, f"GET on a POST endpoint: {st}")
    st, body = srv.request("GET", "/v2/nothing")
    check(st == 404 and "error" in body, f"unknown path: {st}")
    st, body = srv.request("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": 5}]})
    check(st == 400 and is_openai_error(body, "messages[0]"), f"chat content of the wrong type: {st} {body}")

    # a 100 MB body: refused from its Content-Length, before it is read
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=120)
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 104857600\r\n\r\n" + b"{" + b" " * 65536)
    reply = s.recv(65536)
    s.close()
    check(reply.startswith(b"HTTP/1.1 413"), f"100 MB body: {reply[:80]!r}")
    # the same without a length (chunked): read and dropped, then refused
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=120)
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    block = b" " * (1 << 20)
    for _ in range(10):
        s.sendall(b"%x\r\n" % len(block) + block + b"\r\n")
    s.sendall(b"0\r\n\r\n")
    reply = s.recv(65536)
    s.close()
    check(reply.startswith(b"HTTP/1.1 413"), f"10 MB chunked body: {reply[:80]!r}")
    print(f"{len(cases) + 6} hostile requests answered with their status and an OpenAI error body")


def test_clients_that_misbehave(srv):
    """slow and half-open clients, 500 connections at once, a client leaving mid-stream"""
    slow = []
    for _ in range(20):  # slowloris: headers that never end
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=120)
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")
        slow.append(s)
    half = []
    for _ in range(10):  # half-open: a body announced, part sent, the writing side closed
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=120)
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"pro")
        s.shutdown(socket.SHUT_WR)
        half.append(s)
    # meanwhile everyone else is served
    cl = srv.client()
    r = cl.completions.create(model="squeeze", prompt=PROMPT, max_tokens=5, temperature=0)
    check(r.choices[0].finish_reason == "length", "served while slow clients hang on")
    # the server closes them (idle timeout): recv sees the end
    closed = 0
    for s in slow + half:
        try:
            closed += s.recv(4096) == b""  # the end of the stream: closed by the server
        except ConnectionResetError:
            closed += 1
        except socket.timeout:
            pass
        s.close()
    check(closed == 30, f"slow and half-open connections closed by the server: {closed}/30")

    # 500 connections at once, each asking /health
    socks = []
    for _ in range(500):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=120)
        socks.append(s)
    for s in socks:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    ok = 0
    for s in socks:
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        ok += data.startswith(b"HTTP/1.1 200") and b'"ok"' in data
        s.close()
    check(ok == 500, f"500 connections at once: {ok} answered")

    # a client that leaves mid-stream: its request is cancelled and its sequence freed
    before = srv.metrics()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=120)
    body = json.dumps({"prompt": PROMPT, "max_tokens": 200, "temperature": 0.8, "stream": True}).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    got = b""
    while got.count(b"data: ") < 3:
        got += s.recv(4096)
    s.close()
    deadline = time.time() + 60
    m = srv.metrics()
    while time.time() < deadline and (m["squeeze_requests_running"] or m["squeeze_requests_waiting"]):
        time.sleep(0.05)
        m = srv.metrics()
    check(m['squeeze_choices_finished_total{reason="cancelled"}'] ==
          before['squeeze_choices_finished_total{reason="cancelled"}'] + 1,
          "the abandoned stream is cancelled")
    check(m["squeeze_requests_running"] == 0 and m["squeeze_generation_tokens_total"] -
          before["squeeze_generation_tokens_total"] < 200, f"and stops generating: {m}")
    print("slow, half-open and 500 simultaneous clients; an abandoned stream frees its sequence")


def test_metrics_and_health(srv):
    st, body = srv.request("GET", "/health")
    check(st == 200 and body == {"status": "ok"}, f"/health {st} {body}")
    m = srv.metrics()
    for key in ["squeeze_requests_total{endpoint=\"completions\"}", "squeeze_prompt_tokens_total",
                "squeeze_generation_tokens_total", "squeeze_kv_blocks_total", "squeeze_kv_blocks_used",
                "squeeze_requests_waiting", "squeeze_time_to_first_token_seconds_count",
                "squeeze_time_per_output_token_seconds_bucket{le=\"+Inf\"}", "squeeze_prefix_cache_hit_tokens_total"]:
        check(key in m, f"/metrics lacks {key}")
    check(m.get("squeeze_time_to_first_token_seconds_count", 0) > 0 and m.get("squeeze_request_errors_total", 0) > 0,
          "counters have counted")
    check(m.get("squeeze_prefix_cache_hit_tokens_total", 0) > 0, "repeated prompts hit the prefix cache")


def test_api_key():
    srv = Server("--api-key", "s3cret", "--max-seqs", "2", "--max-batch-tokens", "64")
    try:
        st, body = srv.request("POST", "/v1/completions", {"prompt": PROMPT, "max_tokens": 2})
        check(st == 401 and "error" in body, f"no key: {st}")
        st, body = srv.request("POST", "/v1/completions", {"prompt": PROMPT, "max_tokens": 2},
                               {"Authorization": "Bearer s3cret!"})
        check(st == 401, f"wrong key: {st}")
        st, body = srv.request("GET", "/health")
        check(st == 200, "/health needs no key")
        r = srv.client("s3cret").completions.create(model="squeeze", prompt=PROMPT, max_tokens=3, temperature=0)
        check(len(r.choices) == 1, "the right key is served")
        try:
            srv.client("wrong").completions.create(model="squeeze", prompt=PROMPT, max_tokens=3)
            check(False, "the openai client with a wrong key must fail")
        except openai.AuthenticationError:
            pass
    finally:
        check(srv.stop() == 0, "SIGTERM stops the server with status 0")
    print("API key: 401 without it or with a wrong one, served with it")


def test_chat_cli(srv):
    """squeeze chat: the same template and engine as the server; the reply to a first message is the server's
    greedy chat answer, and the conversation goes on with its history"""
    r = subprocess.run([SQ_BIN, "chat", "-m", MODEL, "--temp", "0", "-n", "20", "-t", "1", "-c", str(N_CTX)],
                       input="Tell me a story.\nAnd then?\n", capture_output=True, text=True, timeout=600)
    check(r.returncode == 0, f"squeeze chat failed: {r.returncode} {r.stderr}")
    turns = r.stdout.split("> ")
    check(len(turns) == 4 and turns[-1] == "", f"two replies, then the prompt at the end of input: {turns}")
    want = srv.client().chat.completions.create(model="squeeze", max_tokens=20, temperature=0, messages=[
        {"role": "user", "content": "Tell me a story."}]).choices[0].message.content
    check(len(turns) > 1 and turns[1] == want + "\n", f"chat's first reply {turns[1:2]} != the server's {want!r}")
    check(len(turns) > 2 and turns[2].strip(), "a second reply")
    check("no chat template" in r.stderr, "the fallback template is announced")
    print("squeeze chat: the server's greedy answer, and a second turn")


def test_spec_ngram():
    """serve --spec ngram: greedy completions (plain and streamed) are squeeze run's text, and /metrics counts
    drafts verified and kept"""
    srv = Server("--spec", "ngram", "--draft-k", "4", "--max-seqs", "4", "--max-batch-tokens", "64")
    try:
        cl = srv.client()
        for prompt in [PROMPT, "Lily and Ben played with the ball. Lily and Ben"]:
            want = squeeze_run(prompt, 60)
            got = cl.completions.create(model="squeeze", prompt=prompt, max_tokens=60, temperature=0)
            check(got.choices[0].text == want, f"--spec ngram greedy: {got.choices[0].text!r} != run's {want!r}")
            check(got.usage.completion_tokens == 60, f"--spec ngram usage {got.usage}")
            s = cl.completions.create(model="squeeze", prompt=prompt, max_tokens=60, temperature=0, stream=True)
            text = "".join(ch.choices[0].text for ch in s)
            check(text == want, f"--spec ngram streamed: {text!r} != {want!r}")
        m = srv.metrics()
        drafted, kept = m.get("squeeze_spec_draft_tokens_total", 0), m.get("squeeze_spec_accepted_tokens_total", 0)
        check(0 < kept <= drafted, f"--spec ngram drafts: {kept} kept of {drafted}")
    finally:
        check(srv.stop() == 0, "SIGTERM stops the --spec server with status 0")
    print(f"serve --spec ngram: greedy text = squeeze run's; {kept:.0f} of {drafted:.0f} drafts kept")


def main():
    srv = Server("--max-seqs", "16", "--max-batch-tokens", "256", "--timeout", "3")
    try:
        test_greedy_matches_run(srv)
        test_openai_client(srv)
        test_hostile_input(srv)
        test_clients_that_misbehave(srv)
        test_metrics_and_health(srv)
        test_chat_cli(srv)
        # after all that the server still answers correctly
        r = srv.client().completions.create(model="squeeze", prompt=PROMPT, max_tokens=60, temperature=0)
        check(r.choices[0].text == squeeze_run(PROMPT, 60), "the server still serves correctly at the end")
    finally:
        rc = srv.stop()
        check(rc == 0, f"SIGTERM: graceful exit status 0, got {rc}")
    test_api_key()
    test_spec_ngram()
    for f in failures:
        print("FAIL:", f)
    print(f"{checks - len(failures)}/{checks} checks passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    try:
        main()
    finally:
        for s in servers:
            if s.proc.poll() is None:
                s.proc.kill()
