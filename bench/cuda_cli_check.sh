#!/bin/bash
# --device cuda for ppl, eval and serve against the CPU, on a GPU machine, from the pack that
# bench/cuda_h200.sh pack DIR made:   bash bench/cuda_cli_check.sh DIR
R=$(cd "$(dirname "$0")/.." && pwd); cd "${1:?the pack folder}"
tar xJf payload.tar.xz
export LD_LIBRARY_PATH=$PWD/lib:/usr/local/cuda/lib64
M=shared/models/stories15M-f16.gguf
cat $R/README.md $R/docs/serving.md $R/docs/architecture.md | head -c 60000 > /tmp/text.txt
for d in cpu cuda; do
  for b in 1 4; do
    timeout 120 bin/squeeze ppl --device $d -m $M -f /tmp/text.txt --ctx 256 --batch $b --no-progress 2>&1 | grep -iE "perplexity|error|squeeze:" | head -3 | sed "s/^/ppl $d batch $b: /"
  done
done
timeout 120 bin/squeeze ppl --device cuda -m $M -f /tmp/text.txt --ctx 256 --ref $M --no-progress 2>&1 | grep -iE "KL|perplexity|error|squeeze:" | head -4 | sed "s/^/ppl cuda --ref: /"
for d in cpu cuda; do
  timeout 120 bin/squeeze eval --device $d -m $M --data-dir $R/tests/data/eval/stories --tasks piqa,winogrande,lambada --no-progress 2>&1 | grep -E "piqa|winogrande|lambada|rror" | head -6 | sed "s/^/eval $d: /"
done
bin/squeeze run --device cuda -m $M -p "Once upon a time" -n 48 --temp 0 --no-echo > /tmp/run.txt 2>/dev/null
for spec in none ngram; do
  bin/squeeze serve --device cuda -m $M --port 0 --max-seqs 4 --max-batch-tokens 64 --spec $spec > /tmp/serve.out 2>/tmp/serve.err &
  pid=$!; for i in $(seq 50); do grep -q listening /tmp/serve.out && break; sleep 0.2; done
  port=$(grep -o ':[0-9]*' /tmp/serve.out | tail -1 | tr -d :)
  python3 - "$port" "$spec" <<'PY'
import sys, json, http.client, threading
port, spec = int(sys.argv[1]), sys.argv[2]
want = open("/tmp/run.txt").read()[:-1]
def req(res, i):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.request("POST", "/v1/completions", json.dumps({"prompt": "Once upon a time", "max_tokens": 48, "temperature": 0}), {"Content-Type": "application/json"})
    res[i] = json.loads(c.getresponse().read())["choices"][0]["text"]
res = {}
ts = [threading.Thread(target=req, args=(res, i)) for i in range(6)]
[t.start() for t in ts]; [t.join() for t in ts]
c = http.client.HTTPConnection("127.0.0.1", port); c.request("GET", "/metrics")
m = [l for l in c.getresponse().read().decode().splitlines() if l.startswith("squeeze_spec_") or l.startswith("squeeze_generation_tokens_total")]
print(f"serve cuda --spec {spec}: 6 concurrent greedy completions equal run --device cuda: {all(v == want for v in res.values())}; {m}")
if not all(v == want for v in res.values()): print(repr(want), res)
PY
  kill $pid; wait $pid 2>/dev/null
  grep -iE "error" /tmp/serve.err | head -3
done
