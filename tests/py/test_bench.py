"""squeeze bench on stories260K through the CLI: the JSON report has every metric, positive and consistent
(decode tok/s = b*n / decode time, TTFT <= e2e, rates from times), the memory figures match the checkpoint's
shapes read here from its header, the printed table agrees with the JSON, --vs adds B/A ratios, and bad flags
or files give clear errors."""
import json
import math
import os
import struct
import subprocess
import sys

BIN = os.environ["SQ_BIN"]
SHARED = os.environ["SQ_SHARED"]
WORK = os.path.join(os.environ["SQ_WORK"], "bench")
os.makedirs(WORK, exist_ok=True)
from checks import check, failures



def bench(*args):
    return subprocess.run([BIN, "bench", *args], capture_output=True, text=True)


MODEL = os.path.join(SHARED, "models", "stories260K.bin")
dim, hidden, layers, heads, kv_heads, vocab, seq_len = struct.unpack("7i", open(MODEL, "rb").read(28))
kv_dim = dim // heads * kv_heads
n_params = (abs(vocab) * dim + layers * (2 * dim + 2 * dim * dim + 2 * kv_dim * dim + 3 * hidden * dim) + dim
            + (abs(vocab) * dim if vocab < 0 else 0))

STATS = ["ttft_s", "tpot_s", "e2e_s", "prefill_tok_s", "decode_tok_s", "requests_s"]
P, N, REPS = 16, 8, 3


def rel_close(a, b, tol=1e-9):
    return math.isclose(a, b, rel_tol=tol)


def check_result(label, res, p, n):
    b = res["n_seqs"]
    for k in STATS:
        s = res.get(k, {})
        check(all(x in s for x in ("median", "min", "max")) and 0 < s["min"] <= s["median"] <= s["max"],
              f"{label} b={b}: {k} has 0 < min <= median <= max ({s})")
    # odd repetitions: each median is one repetition's value, so rates are exactly workload / time
    check(rel_close(res["decode_tok_s"]["median"], b * n / (res["tpot_s"]["median"] * n)),
          f"{label} b={b}: decode tok/s = b*n / decode time")
    check(rel_close(res["prefill_tok_s"]["median"], b * p / res["ttft_s"]["median"]),
          f"{label} b={b}: prefill tok/s = b*p / TTFT")
    check(rel_close(res["requests_s"]["median"], b / res["e2e_s"]["median"]), f"{label} b={b}: requests/s = b / e2e")
    check(res["ttft_s"]["median"] <= res["e2e_s"]["median"] and res["ttft_s"]["max"] <= res["e2e_s"]["max"],
          f"{label} b={b}: TTFT <= end-to-end")
    lo = res["ttft_s"]["min"] + n * res["tpot_s"]["min"]
    hi = res["ttft_s"]["max"] + n * res["tpot_s"]["max"]
    check(lo * (1 - 1e-9) <= res["e2e_s"]["min"] and res["e2e_s"]["max"] <= hi * (1 + 1e-9),
          f"{label} b={b}: e2e = prefill + decode within the repetitions' bounds")
    per_position = 2 * layers * kv_dim * 4
    kv_min = per_position * b * (p + n)
    check(kv_min <= res["kv_bytes"] <= kv_min + per_position * b * 16,
          f"{label} b={b}: KV cache {res['kv_bytes']} bytes for {b} x {p + n} positions of {per_position} bytes")
    check(res["peak_rss_bytes"] >= res["kv_bytes"], f"{label} b={b}: peak RSS {res['peak_rss_bytes']} bytes")


# ---- one model, two batch sizes
out = os.path.join(WORK, "one.json")
r = bench("-m", MODEL, "-p", str(P), "-n", str(N), "-b", "1,3", "--reps", str(REPS), "--warmup", "1", "-t", "1",
          "--json", out, "--label", "fp32")
check(r.returncode == 0, f"bench exits 0 ({r.stderr.strip()})")
rep = json.load(open(out))
check(rep["kind"] == "bench" and rep["version"] == 1, "kind is bench, version 1")
s = rep["settings"]
check((s["n_prompt"], s["n_gen"], s["n_reps"], s["n_warmup"], s["n_threads"]) == (P, N, REPS, 1, 1),
      f"settings echo the flags {s}")
check(s["prompt"] == "random token ids" and s["seed"] == 1234 and isinstance(s["kernels"], str), "settings: prompt, seed, kernels")
check(len(rep["variants"]) == 1 and "ratios" not in rep, "one variant, no ratios")
v = rep["variants"][0]
m = v["model"]
check(m["path"] == MODEL and v["label"] == "fp32" and m["file_format"] == "llama2c" and m["arch"] == "llama",
      "variant names the model")
check((m["vocab_size"], m["max_seq_len"]) == (vocab, seq_len), "model: vocabulary and context from the header")
check(m["bytes"] == os.path.getsize(MODEL), f"model: {m['bytes']} bytes on disk")
check(m["n_params"] == n_params and m["weight_bytes"] == 4 * n_params,
      f"weights: {m['n_params']} parameters, {m['weight_bytes']} bytes (header says {n_params} fp32)")
check([x["n_seqs"] for x in v["results"]] == [1, 3], "results for batch sizes 1 and 3")
for res in v["results"]:
    check_result("A", res, P, N)
b1, b3 = v["results"]
check(b3["kv_bytes"] == 3 * b1["kv_bytes"], "KV cache grows with the batch")

# the printed table carries the same medians
for res in v["results"]:
    block = r.stdout.split(f"### batch {res['n_seqs']}:")[1].split("###")[0]
    row = next(l for l in block.splitlines() if l.startswith("| decode (tokens/s)"))
    shown = float(row.split("|")[2])
    check(rel_close(shown, res["decode_tok_s"]["median"], 1e-3), f"table b={res['n_seqs']}: decode {shown}")
for name in ["time to first token (ms)", "time per output token (ms)", "end-to-end latency (ms)", "prefill (tokens/s)",
             "decode (tokens/s)", "requests/s", "weights (MiB)", "KV cache (MiB)", "peak RSS (MiB)"]:
    check(r.stdout.count(f"| {name} |") == 2, f"table row '{name}' in both batch tables")

# ---- --vs: the same model against itself, interleaved
out = os.path.join(WORK, "vs.json")
r = bench("-m", MODEL, "--vs", MODEL, "--vs-label", "again", "-p", "8", "-n", "4", "-b", "2", "--reps", "3",
          "--warmup", "1", "-t", "1", "--json", out)
check(r.returncode == 0, f"bench --vs exits 0 ({r.stderr.strip()})")
rep = json.load(open(out))
check(len(rep["variants"]) == 2 and rep["variants"][1]["label"] == "again", "two variants")
for label, var in zip("AB", rep["variants"]):
    check_result(label, var["results"][0], 8, 4)
ratios = rep.get("ratios", [])
check(len(ratios) == 1 and ratios[0]["n_seqs"] == 2, "one ratio entry per batch size")
for k in STATS:
    a, b = (var["results"][0][k]["median"] for var in rep["variants"])
    got = ratios[0].get(k, -1) if ratios else -1
    check(got > 0 and rel_close(got, b / a), f"ratio {k} = B/A = {got:.3f}")
check(ratios and ratios[0].get("weight_bytes") == 1.0 and ratios[0].get("kv_bytes") == 1.0, "same model: size ratios 1")
check("| B/A |" in r.stdout and "| decode (tokens/s) |" in r.stdout, "table has the B/A column")

# ---- --kernels forces the kernel set the report names
out = os.path.join(WORK, "scalar.json")
r = bench("-m", MODEL, "-p", "8", "-n", "4", "--reps", "1", "-t", "1", "--kernels", "scalar", "--json", out)
check(r.returncode == 0 and json.load(open(out))["settings"]["kernels"] == "scalar" and "scalar kernels" in r.stdout,
      f"--kernels scalar runs the scalar kernels ({r.stderr.strip()})")

# ---- --kv-type f16: the report says so and the KV cache takes half the bytes of the f32 one
out16 = os.path.join(WORK, "kv16.json")
r = bench("-m", MODEL, "-p", "8", "-n", "4", "--reps", "1", "-t", "1", "--kv-type", "f16", "--json", out16)
check(r.returncode == 0 and "f16 KV cache" in r.stdout, f"--kv-type f16 runs ({r.stderr.strip()})")
r32 = bench("-m", MODEL, "-p", "8", "-n", "4", "--reps", "1", "-t", "1", "--json", os.path.join(WORK, "kv32.json"))
if r.returncode == 0 and r32.returncode == 0:
    a, b = json.load(open(os.path.join(WORK, "kv32.json"))), json.load(open(out16))
    check(a["settings"]["kv_type"] == "f32" and b["settings"]["kv_type"] == "f16", "settings.kv_type names the rows")
    check(2 * b["variants"][0]["results"][0]["kv_bytes"] == a["variants"][0]["results"][0]["kv_bytes"],
          "f16 rows: half the KV bytes")

# ---- -p 0: decoding alone (llama-bench's tg test); -n 0: the prefill alone. The part left out has no figures:
# null in the JSON, "—" in the table; the rest is consistent as in a full run.
for p, n in [(0, 6), (12, 0)]:
    part = os.path.join(WORK, f"part-{p}-{n}.json")
    r = bench("-m", MODEL, "-p", str(p), "-n", str(n), "--reps", "3", "-t", "1", "--json", part)
    check(r.returncode == 0, f"-p {p} -n {n} exits 0 ({r.stderr.strip()})")
    if r.returncode:
        continue
    res = json.load(open(part))["variants"][0]["results"][0]
    absent = ["ttft_s", "prefill_tok_s"] if p == 0 else ["tpot_s", "decode_tok_s"]
    for k in absent:
        check(res[k] == {"median": None, "min": None, "max": None}, f"-p {p} -n {n}: {k} is null ({res[k]})")
    if p == 0:
        check(rel_close(res["decode_tok_s"]["median"], 1 / res["tpot_s"]["median"]), "-p 0: decode tok/s = 1 / tpot")
        check(rel_close(res["e2e_s"]["median"], n * res["tpot_s"]["median"]), "-p 0: e2e = decode time")
    else:
        check(rel_close(res["prefill_tok_s"]["median"], p / res["ttft_s"]["median"]), "-n 0: prefill tok/s = p / TTFT")
        check(rel_close(res["e2e_s"]["median"], res["ttft_s"]["median"]), "-n 0: e2e = TTFT")
    rows = {l.split("|")[1].strip(): l.split("|")[2].strip() for l in r.stdout.splitlines() if l.startswith("| ")}
    gone = ["time to first token (ms)", "prefill (tokens/s)"] if p == 0 else ["time per output token (ms)", "decode (tokens/s)"]
    check(all(rows.get(g) == "—" for g in gone), f"-p {p} -n {n}: the table shows — for {gone}")
    kept = "decode (tokens/s)" if p == 0 else "prefill (tokens/s)"
    check(rows.get(kept, "—") != "—" and float(rows[kept]) > 0, f"-p {p} -n {n}: the table shows {kept}")

# ---- bench/engine.sh's table reads real reports: the same run as baseline and fast path gives 1.0x
table = subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "..", "..", "bench", "engine_table.py"),
                        "--command", "test", "--baseline", out, "--fast", out], capture_output=True, text=True)
check(table.returncode == 0 and f"## Engine speed: {MODEL}" in table.stdout and
      table.stdout.count("| 1.0x |") == 2, f"engine_table.py on a real report ({table.stderr.strip()})")

# ---- errors
missing = os.path.join(WORK, "no-such-model.bin")
cases = [
    (["-m", MODEL, "-p", "500", "-n", "13"], 1, "500 prompt + 13 output tokens = 513 exceed its context of 512"),
    (["-m", missing, "-p", "4", "-n", "4"], 1, missing),
    (["-m", MODEL, "-p", "4", "-n", "4", "--reps", "1", "--json", os.path.join(WORK, "nodir", "x.json")], 1,
     os.path.join(WORK, "nodir", "x.json")),
    ([], 2, "-m MODEL is required"),
    (["-m", MODEL, "-b", "0"], 2, "-b '0' must be integers in [1, 4096]"),
    (["-m", MODEL, "-b", "1,,2"], 2, "-b '1,,2' must be integers in [1, 4096] separated by commas or spaces: item 2 is empty"),
    (["-m", MODEL, "-b", "2,"], 2, "-b '2,' must be integers in [1, 4096] separated by commas or spaces: item 2 is empty"),
    (["-m", MODEL, "-p", "-1"], 2, "-p '-1' must be an integer in [0, "),
    (["-m", MODEL, "-n", "many"], 2, "-n 'many' must be an integer"),
    (["-m", MODEL, "--reps", "0"], 2, "--reps '0' must be an integer in [1, "),
    (["-m", MODEL, "--warmup"], 2, "--warmup needs a value"),
    (["-m", MODEL, "--kernels", "neon"], 2, "--kernels 'neon' must be one of scalar, avx2, avx512"),
    (["-m", MODEL, "--kv-type", "bf16"], 2, "--kv-type 'bf16' must be one of f32, f16"),
    (["-m", MODEL, "--vs-label", "x"], 2, "--vs-label needs --vs"),
    (["-m", MODEL, "--colour"], 2, "unknown option '--colour'"),
    (["-m", MODEL, "-p", "0", "-n", "0"], 2, "-p and -n are both 0: nothing to measure"),
]
for args, code, message in cases:
    r = bench(*args)
    check(r.returncode == code and message in r.stderr, f"{' '.join(args) or '(no flags)'}: exit {r.returncode}: {r.stderr.strip()}")
r = bench("--help")
check(r.returncode == 0 and "--vs MODEL2" in r.stdout, "--help describes the flags")

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
