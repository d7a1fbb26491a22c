"""Generation stops at every end-of-generation id a model's files name, not only the first.

On a tiny random checkpoint (tiny_models llama_gqa_f16), the greedy continuation of a prompt is computed first
(`squeeze logits --greedy`, which never stops); then a token of it that occurs there for the first time, at
step k, is declared an end-of-generation id in one place per case, and `squeeze run --temp 0` must stop right
before it: exactly k tokens generated. The places are those chat models use: config.json eos_token_id as a
list ([2, id]: Llama 3.1 Instruct names three), generation_config.json eos_token_id (read on top of
config.json), and in a GGUF file (written by the gguf package) tokenizer.ggml.eot_token_id (Llama 3's
<|eot_id|>, Qwen's <|im_end|>) or eom_token_id. `squeeze info` lists the set."""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine_harness as H  # noqa: E402
import tiny_models  # noqa: E402

PROMPT = "Once upon a time"
N = 16
STOPS = {1, 2}  # BOS (a new document) and the tokenizer's EOS </s> always stop generation


def greedy(path):
    return [int(x) for x in H.run_cli(["logits", "-m", path, "-p", PROMPT, "--greedy", N, "-t", "1"]).split()]


def first_stop(ids, stops):
    return next((i for i, t in enumerate(ids) if t in stops), len(ids))


def pick(ids):
    """A step k >= 2 whose token appears there first and after no BOS/EOS: the one to declare a stop id."""
    for k in range(2, len(ids)):
        if ids[k] not in ids[:k] and ids[k] not in STOPS and first_stop(ids, STOPS) > k:
            return k
    return None


def generated(path):
    """Tokens `squeeze run` generates greedily from PROMPT (its stats line), or the error."""
    p = subprocess.run([H.SQ_BIN, "run", "-m", path, "-p", PROMPT, "-n", str(N), "--temp", "0", "-t", "1"],
                       capture_output=True, timeout=600)
    m = re.search(rb"generated (\d+) tokens", p.stderr)
    return int(m[1]) if p.returncode == 0 and m else p.stderr.decode(errors="replace").strip()


def hf_variant(base, name, config, generation=None):
    return tiny_models.with_config(base, os.path.join(H.SQ_WORK, "eos-sets", name), lambda c: {**c, **config},
                                   {"generation_config.json": generation} if generation else None)


def main():
    checks = H.Checks("generation stops at every end-of-generation id")
    root = os.path.join(H.SQ_WORK, "eos-sets-tiny")  # not tiny/: test_logits rewrites it meanwhile
    base = tiny_models.generate("llama_gqa_f16", root)
    ids = greedy(base)
    k = pick(ids)
    if not checks.check(k is not None, "the greedy continuation has a fresh token to declare a stop id", f"{ids}"):
        return checks.finish()
    stop = ids[k]
    checks.check(generated(base) == first_stop(ids, STOPS), "without it, run generates the whole continuation",
                 f"{ids}")
    cases = [
        ("config.json eos_token_id [2, id]", hf_variant(base, "config-list", {"eos_token_id": [2, stop]})),
        ("generation_config.json eos_token_id", hf_variant(base, "generation-config", {"eos_token_id": 2},
                                                           {"eos_token_id": [2, stop], "do_sample": False})),
    ]
    # the GGUF's own continuation (its q/k rows are in interleaved order: fp32 rounding may differ)
    g = greedy(tiny_models.generate_gguf("llama_gqa_f16", root, "F16"))
    kg = pick(g)
    if checks.check(kg is not None, "GGUF: a fresh token to declare", f"{g}"):
        for key in ("eot", "eom"):
            path = tiny_models.generate_gguf("llama_gqa_f16", root, "F16", {f"tokenizer.ggml.{key}_token_id": g[kg]},
                                             tag=f"-{key}")
            cases.append((f"GGUF tokenizer.ggml.{key}_token_id", path, g, kg))
    for case in cases:
        what, path = case[0], case[1]
        seq, at = (case[2], case[3]) if len(case) > 2 else (ids, k)
        try:
            info = H.run_cli(["info", "-m", path])
            line = next((l for l in info.splitlines() if l.startswith("eos ids:")), "no eos ids line")
            checks.check(line == f"eos ids:         2, {seq[at]}", f"{what}: info lists the set", line)
        except H.EngineError as e:
            checks.fail(f"{what}: info", e)
        got = generated(path)
        checks.check(got == at, f"{what}: run stops before the declared id", f"generated {got}, expected {at}")
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
