"""The serving part of `make demo`: starts `squeeze serve` on a free port, sends a completion, a streamed chat
and three parallel samples through the official `openai` client, prints the answers and the server's
metrics, and stops the server (SIGTERM: a graceful exit).

    .venv/bin/python scripts/demo_serve.py SQUEEZE_BIN MODEL"""
import re
import signal
import subprocess
import sys
import urllib.request

import openai

binary, model = sys.argv[1], sys.argv[2]
proc = subprocess.Popen([binary, "serve", "-m", model, "--port", "0"], stdout=subprocess.PIPE, text=True)
try:
    line = proc.stdout.readline()
    print(line.strip())
    port = int(re.search(r":(\d+) ", line)[1])
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0)

    r = client.completions.create(model="squeeze", prompt="Once upon a time", max_tokens=48, temperature=0)
    print(f"\ncompletion (greedy): Once upon a time{r.choices[0].text}\n  usage: {r.usage.prompt_tokens} prompt + "
          f"{r.usage.completion_tokens} completion tokens, finish_reason {r.choices[0].finish_reason}")

    print("\nchat (streamed): ", end="", flush=True)
    for chunk in client.chat.completions.create(model="squeeze", messages=[
            {"role": "user", "content": "Tell me a story about a cat."}], max_tokens=48, stream=True, seed=1):
        if chunk.choices and chunk.choices[0].delta.content:
            print(chunk.choices[0].delta.content, end="", flush=True)
    print()

    r = client.completions.create(model="squeeze", prompt="The little dog", max_tokens=24, n=3, seed=7,
                                  temperature=0.9, stop=["."])
    for c in r.choices:
        print(f"\nsample {c.index} (stop at '.'): The little dog{c.text}")

    print("\nmetrics:")
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    for line in metrics.splitlines():
        if line.startswith("squeeze_") and "_bucket" not in line:
            print("  " + line)
finally:
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=60)
print(f"\nserver stopped (exit status {rc})")
