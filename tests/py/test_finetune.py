"""squeeze finetune through the CLI, on stories260K (a real llama2.c checkpoint, interleaved RoPE, GQA) with
data the teacher (stories260K itself) generates:

  - a run stopped at step 3 (--stop-at) and resumed (--resume) to step 6 writes the same adapters and
    checkpoint, byte for byte, as an uninterrupted 6-step run;
  - the adapter files follow PEFT's conventions, checked with numpy on the safetensors bytes: keys
    base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight ([r][in]) / lora_B.weight ([out][r]) for
    every target, adapter_config.json with peft_type LORA, r, lora_alpha, target_modules; and the merged model
    (--merge), converted to a Hugging Face directory, has exactly W_hf + lora_alpha / r * B @ A with W_hf the
    base model's Hugging Face weights (rotate-half q/k rows: the adapter's B rows are in Hugging Face's order)
    within 1e-6 relative to the weights' scale;
  - `squeeze ppl --lora DIR` equals the merged model's perplexity;
  - refused requests: distillation without a teacher (usage error 2), resuming with another rank (1, naming
    the ranks), an adapter whose shapes do not fit the model (1).
"""

import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine_harness as H  # noqa: E402
import safetensors_np  # noqa: E402

S260K = os.path.join(H.SQ_SHARED, "models", "stories260K.bin")
PEFT = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
        "mlp.up_proj", "mlp.down_proj"]
COMMON = ["--teacher", S260K, "--steps", "6", "--batch", "2", "--seq", "16", "--gen-samples", "5", "--lr", "3e-3",
          "--warmup", "2", "--lora-rank", "4", "--lora-alpha", "6", "-t", "2", "--no-progress", "--seed", "7"]


def cli(args, expect=0):
    p = subprocess.run([H.SQ_BIN] + [str(a) for a in args], capture_output=True, text=True, timeout=600)
    assert p.returncode == expect, f"exit {p.returncode} (wanted {expect}): {args}\n{p.stderr[-2000:]}"
    return p.stdout + p.stderr


def read(path):
    with open(path, "rb") as f:
        return f.read()


def main():
    work = os.path.join(H.SQ_WORK, "finetune")
    os.makedirs(work, exist_ok=True)
    full, part, merged = (os.path.join(work, n) for n in ("full", "part", "merged.bin"))
    cli(["finetune", "-m", S260K, "-o", full, "--merge", merged] + COMMON)
    cli(["finetune", "-m", S260K, "-o", part, "--stop-at", "3"] + COMMON)
    out = cli(["finetune", "-m", S260K, "-o", part, "--resume", part] + COMMON)
    assert "resuming at step 3 of 6" in out, out
    for name in ("adapter_model.safetensors", "state.bin"):
        assert read(os.path.join(full, name)) == read(os.path.join(part, name)), f"{name} differs after resume"
    print("ok  stopped at step 3 and resumed: adapters and checkpoint identical to an uninterrupted run")

    cfg = json.load(open(os.path.join(full, "adapter_config.json")))
    assert cfg["peft_type"] == "LORA" and cfg["r"] == 4 and cfg["lora_alpha"] == 6, cfg
    assert sorted(cfg["target_modules"]) == sorted(p.split(".")[1] for p in PEFT), cfg
    assert cfg.get("use_dora") in (None, False) and cfg.get("bias", "none") == "none"
    ad = {k: safetensors_np.to_f64(dt, a) for k, (dt, a) in
          safetensors_np.load(os.path.join(full, "adapter_model.safetensors")).items()}
    base_hf, merged_hf = os.path.join(work, "base-hf"), os.path.join(work, "merged-hf")
    cli(["convert", "-m", S260K, "-o", base_hf, "--to", "hf"])
    cli(["convert", "-m", merged, "-o", merged_hf, "--to", "hf"])
    base = {k: safetensors_np.to_f64(dt, a) for k, (dt, a) in
            safetensors_np.load(os.path.join(base_hf, "model.safetensors")).items()}
    new = {k: safetensors_np.to_f64(dt, a) for k, (dt, a) in
           safetensors_np.load(os.path.join(merged_hf, "model.safetensors")).items()}
    n_layers = 5
    assert len(ad) == 2 * len(PEFT) * n_layers, sorted(ad)[:4]
    worst = 0.0
    for layer in range(n_layers):
        for mod in PEFT:
            key = f"base_model.model.model.layers.{layer}.{mod}"
            a, b = ad[key + ".lora_A.weight"], ad[key + ".lora_B.weight"]
            w = base[f"model.layers.{layer}.{mod}.weight"]
            assert a.shape == (4, w.shape[1]) and b.shape == (w.shape[0], 4), (key, a.shape, b.shape, w.shape)
            assert np.abs(b).max() > 0, f"{key}: B never trained"
            want = w + 6 / 4 * (b @ a)
            err = np.abs(new[f"model.layers.{layer}.{mod}.weight"] - want).max() / np.abs(want).max()
            worst = max(worst, err)
            assert err <= 1e-6, f"{key}: merged weight off by {err:.3g} of its scale"
    print(f"ok  PEFT keys, shapes and config; merged = W_hf + alpha/r B A (worst {worst:.2e})")

    tok = os.path.join(work, "tokens.txt")
    rng = np.random.default_rng(5)
    with open(tok, "w") as f:
        f.write(" ".join(str(x) for x in rng.integers(3, 512, size=300)))
    ppl_lora = cli(["ppl", "-m", S260K, "--lora", full, "--ids-file", tok, "--ctx", "64", "--no-progress"])
    ppl_merged = cli(["ppl", "-m", merged, "--ids-file", tok, "--ctx", "64", "--no-progress"])
    line = [ln for ln in ppl_lora.splitlines() if ln.startswith("perplexity")]
    assert line and line == [ln for ln in ppl_merged.splitlines() if ln.startswith("perplexity")], (ppl_lora,
                                                                                                      ppl_merged)
    print(f"ok  ppl --lora equals the merged model: {line[0]}")

    out = cli(["finetune", "-m", S260K, "-o", os.path.join(work, "x"), "--loss", "kd", "--data", tok], expect=2)
    assert "--teacher" in out, out
    bad = COMMON[:]
    bad[bad.index("--lora-rank") + 1] = "8"
    out = cli(["finetune", "-m", S260K, "-o", os.path.join(work, "y"), "--resume", full] + bad, expect=1)
    assert "rank 4" in out and "rank 8" in out, out
    cfg["r"] = 2
    json.dump(cfg, open(os.path.join(full, "adapter_config.json"), "w"))
    out = cli(["ppl", "-m", S260K, "--lora", full, "--ids-file", tok, "--no-progress"], expect=1)
    assert "should be [2," in out, out
    print("ok  refusals")
    print("4 passed, 0 failed")


if __name__ == "__main__":
    main()
