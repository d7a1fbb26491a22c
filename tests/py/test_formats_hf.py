"""Hugging Face checkpoints generated here with numpy (an independent safetensors writer), through squeeze:

  llama  GQA, f16, untied, single model.safetensors
  qwen2  bf16, q/k/v biases, tied, sharded in two files with model.safetensors.index.json
  mistral f32, sliding window, explicit head_dim != hidden/heads, untied, plus a rotary inv_freq buffer
  llama  bf16, Llama-3 rope scaling, tied but with a redundant lm_head copy in the file

Each goes HF -> GGUF, read by the `gguf` package: metadata keys as llama.cpp names them, llama/mistral q/k
weights (and biases) in llama.cpp's convert_hf_to_gguf permutation, qwen2 unpermuted, rope_freqs.weight equal
to llama.cpp's Llama-3 factors (rtol 1e-6), norms widened to f32 exactly. Then GGUF -> HF, read by our numpy
reader: every matrix byte-identical to the input with its dtype, norms/biases equal as f32, config.json
fields as given (Llama-3 parameters within 1e-3, as GGUF stores them only as factors); all three copies give
the same logits (relative 1e-5) for 40 random tokens. `squeeze info` reports each. Bad checkpoints fail with exit 1 and a message naming the problem."""
import json
import os
import shutil
import sys

import gguf
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from formats_common import (check, finish, squeeze, work, permute, f32_to_bf16, bf16_to_f32, write_safetensors,
                            read_safetensors, llama3_factors)

rng = np.random.default_rng(20261122)

CASES = [
    dict(name="llama-gqa-f16", arch="LlamaForCausalLM", dtype="F16", hidden=64, heads=4, kv=2, head_dim=None,
         inter=96, layers=2, vocab=50, tied=False, bias=False, shards=1),
    dict(name="qwen2-bf16-sharded", arch="Qwen2ForCausalLM", dtype="BF16", hidden=64, heads=4, kv=2, head_dim=None,
         inter=96, layers=3, vocab=60, tied=True, bias=True, shards=2),
    dict(name="mistral-f32-window", arch="MistralForCausalLM", dtype="F32", hidden=64, heads=4, kv=1, head_dim=24,
         inter=64, layers=2, vocab=40, tied=False, bias=False, shards=1, window=32, inv_freq=True),
    dict(name="llama3-scaling-bf16", arch="LlamaForCausalLM", dtype="BF16", hidden=128, heads=2, kv=1,
         head_dim=None, inter=64, layers=1, vocab=30, tied=True, bias=False, shards=1, llama3=True,
         lm_head_copy=True),
]


def as_dtype(x, dt):
    return {"F32": lambda: x.astype(np.float32), "F16": lambda: x.astype(np.float16),
            "BF16": lambda: f32_to_bf16(x)}[dt]()


def to_f32(dt, a):
    return bf16_to_f32(a) if dt == "BF16" else a.astype(np.float32)


def make_checkpoint(c):
    d = work(f"formats-hf-{c['name']}")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    hd = c["head_dim"] or c["hidden"] // c["heads"]
    q, kv = c["heads"] * hd, c["kv"] * hd
    dt = c["dtype"]
    t = {}

    def add(name, shape, dtype=dt):
        t[name] = (dtype, as_dtype(rng.uniform(-1, 1, size=shape).astype(np.float32), dtype))

    add("model.embed_tokens.weight", (c["vocab"], c["hidden"]))
    for l in range(c["layers"]):
        p = f"model.layers.{l}."
        add(p + "input_layernorm.weight", (c["hidden"],))
        add(p + "self_attn.q_proj.weight", (q, c["hidden"]))
        add(p + "self_attn.k_proj.weight", (kv, c["hidden"]))
        add(p + "self_attn.v_proj.weight", (kv, c["hidden"]))
        if c["bias"]:
            add(p + "self_attn.q_proj.bias", (q,))
            add(p + "self_attn.k_proj.bias", (kv,))
            add(p + "self_attn.v_proj.bias", (kv,))
        add(p + "self_attn.o_proj.weight", (c["hidden"], q))
        add(p + "post_attention_layernorm.weight", (c["hidden"],))
        add(p + "mlp.gate_proj.weight", (c["inter"], c["hidden"]))
        add(p + "mlp.up_proj.weight", (c["inter"], c["hidden"]))
        add(p + "mlp.down_proj.weight", (c["hidden"], c["inter"]))
    add("model.norm.weight", (c["hidden"],))
    if not c["tied"]:
        add("lm_head.weight", (c["vocab"], c["hidden"]))
    weights = dict(t)
    if c.get("lm_head_copy"):
        t["lm_head.weight"] = t["model.embed_tokens.weight"]
    if c.get("inv_freq"):
        t["model.layers.0.self_attn.rotary_emb.inv_freq"] = ("F32", np.arange(hd // 2, dtype=np.float32))
    cfg = {"architectures": [c["arch"]], "hidden_size": c["hidden"], "intermediate_size": c["inter"],
           "num_hidden_layers": c["layers"], "num_attention_heads": c["heads"], "num_key_value_heads": c["kv"],
           "vocab_size": c["vocab"], "max_position_embeddings": 128, "rms_norm_eps": 1e-6, "rope_theta": 500000.0,
           "tie_word_embeddings": c["tied"], "bos_token_id": 1, "eos_token_id": [2, 3],
           "torch_dtype": {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[dt]}
    if c["head_dim"]:
        cfg["head_dim"] = c["head_dim"]
    if c.get("window"):
        cfg["sliding_window"] = c["window"]
    if c["arch"] == "Qwen2ForCausalLM":
        cfg.update(use_sliding_window=False, sliding_window=4096)
    if c.get("llama3"):
        cfg["rope_scaling"] = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                               "original_max_position_embeddings": 64}
    json.dump(cfg, open(f"{d}/config.json", "w"), indent=1)
    names = list(t)
    if c["shards"] == 1:
        write_safetensors(f"{d}/model.safetensors", t)
    else:
        parts = np.array_split(np.arange(len(names)), c["shards"])
        wm = {}
        for i, idx in enumerate(parts):
            fn = f"model-{i + 1:05d}-of-{c['shards']:05d}.safetensors"
            write_safetensors(f"{d}/{fn}", {names[j]: t[names[j]] for j in idx})
            wm.update({names[j]: fn for j in idx})
        json.dump({"metadata": {}, "weight_map": wm}, open(f"{d}/model.safetensors.index.json", "w"))
    return d, cfg, weights, hd


GGUF_OF = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
           "lm_head.weight": "output.weight", "input_layernorm.weight": "attn_norm.weight",
           "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
           "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
           "self_attn.q_proj.bias": "attn_q.bias", "self_attn.k_proj.bias": "attn_k.bias",
           "self_attn.v_proj.bias": "attn_v.bias", "post_attention_layernorm.weight": "ffn_norm.weight",
           "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
           "mlp.down_proj.weight": "ffn_down.weight"}


def gguf_name(hf):
    if hf.startswith("model.layers."):
        _, _, l, rest = hf.split(".", 3)
        return f"blk.{l}.{GGUF_OF[rest]}"
    return GGUF_OF[hf]


def run_case(c):
    label = c["name"]
    d, cfg, weights, hd = make_checkpoint(c)
    rc, out, err = squeeze("info", "-m", d)
    check(rc == 0, f"{label}: info exits 0 ({err.strip()})")
    arch = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral", "Qwen2ForCausalLM": "qwen2"}[c["arch"]]
    check(f"architecture:    {arch}" in out and "file format:     safetensors" in out
          and f"heads {c['heads']}, kv heads {c['kv']}, head dim {hd}" in out and "halves pairs" in out
          and f"tied embeddings: {'yes' if c['tied'] else 'no'}" in out, f"{label}: info header")
    if c.get("llama3"):
        check("llama3 scaling (factor 8, low 1, high 4, original context 64)" in out, f"{label}: info shows llama3")

    gg = work(f"formats-hf-{label}.gguf")
    rc, _, err = squeeze("convert", "-m", d, "-o", gg)
    check(rc == 0, f"{label}: HF -> GGUF ({err.strip()})")
    r = gguf.GGUFReader(gg)
    f = lambda k: r.fields[k].contents() if k in r.fields else None
    ga = "qwen2" if arch == "qwen2" else "llama"
    check(f("general.architecture") == ga, f"{label}: GGUF architecture {ga}")
    check(f("tokenizer.ggml.eos_token_id") == 2 and f("tokenizer.ggml.eot_token_id") == 3,
          f"{label}: eos_token_id [2, 3] as GGUF eos and eot ids")
    want = {"embedding_length": c["hidden"], "feed_forward_length": c["inter"], "block_count": c["layers"],
            "attention.head_count": c["heads"], "attention.head_count_kv": c["kv"], "context_length": 128,
            "rope.dimension_count": hd, "vocab_size": c["vocab"]}
    if c["head_dim"]:
        want["attention.key_length"] = want["attention.value_length"] = hd
    if c.get("window"):
        want["attention.sliding_window"] = c["window"]
    got = {k: f(f"{ga}.{k}") for k in want}
    check(got == want, f"{label}: GGUF hyperparameters {got}")
    check(np.isclose(f(f"{ga}.rope.freq_base"), 500000.0) and np.isclose(f(f"{ga}.attention.layer_norm_rms_epsilon"),
          1e-6), f"{label}: GGUF rope base and norm epsilon")
    check("sliding_window" not in str(list(r.fields)) or c.get("window"), f"{label}: no sliding window unless Mistral")
    gt = {t.name: t for t in r.tensors}
    ok, bad = True, []
    for name, (dt, a) in weights.items():
        g = gt.get(gguf_name(name))
        if g is None:
            ok, bad = False, bad + [name]
            continue
        exp = a
        if arch != "qwen2" and (".q_proj." in name or ".k_proj." in name):
            exp = permute(a, c["heads"] if ".q_proj." in name else c["kv"])
        data = np.asarray(g.data)
        if a.ndim == 1:
            good = g.tensor_type == gguf.GGMLQuantizationType.F32 and np.array_equal(data, to_f32(dt, exp))
        else:
            good = g.tensor_type.name == dt and data.tobytes() == np.ascontiguousarray(exp).tobytes()
        ok &= good
        if not good:
            bad.append(name)
    extra = set(gt) - {gguf_name(n) for n in weights} - {"rope_freqs.weight"}
    check(ok and not extra, f"{label}: GGUF tensors in llama.cpp's layout (wrong: {bad[:3]}, extra: {sorted(extra)[:3]})")
    if c.get("llama3"):
        rf = gt.get("rope_freqs.weight")
        exp = llama3_factors(500000.0, hd, 8.0, 1.0, 4.0, 64)
        check(rf is not None and np.allclose(np.asarray(rf.data), exp, rtol=1e-6, atol=0),
              f"{label}: rope_freqs.weight equals llama.cpp's Llama-3 factors")

    back = work(f"formats-hf-{label}-back")
    shutil.rmtree(back, ignore_errors=True)
    rc, _, err = squeeze("convert", "-m", gg, "-o", back)
    check(rc == 0, f"{label}: GGUF -> HF ({err.strip()})")
    st = read_safetensors(f"{back}/model.safetensors")
    ok = set(st) == set(weights)
    for name, (dt, a) in weights.items():
        if name not in st:
            continue
        bdt, b = st[name]
        ok &= (bdt == "F32" and np.array_equal(b, to_f32(dt, a))) if a.ndim == 1 else (bdt == dt and np.array_equal(b, a))
    check(ok, f"{label}: GGUF -> HF restores every tensor (matrices bit-identical in {c['dtype']}, norms as f32)")
    bc = json.load(open(f"{back}/config.json"))
    same = {k: (bc.get(k), cfg[k]) for k in ["architectures", "hidden_size", "intermediate_size", "num_hidden_layers",
                                              "num_attention_heads", "num_key_value_heads", "vocab_size",
                                              "max_position_embeddings", "rms_norm_eps", "rope_theta",
                                              "tie_word_embeddings", "bos_token_id"] if bc.get(k) != cfg[k]}
    # both EOS ids survive: GGUF carries the second as tokenizer.ggml.eot_token_id (llama.cpp stops at both)
    check(not same and bc["eos_token_id"] == [2, 3] and bc["head_dim"] == hd, f"{label}: config.json round trip {same}")
    if c.get("window"):
        check(bc.get("sliding_window") == c["window"], f"{label}: sliding_window kept")
    if c.get("llama3"):
        rs = bc.get("rope_scaling") or {}
        check(rs.get("rope_type") == "llama3" and rs.get("original_max_position_embeddings") == 64
              and all(abs(rs.get(k, 0) - v) < 1e-3 for k, v in [("factor", 8), ("low_freq_factor", 1), ("high_freq_factor", 4)]),
              f"{label}: llama3 rope_scaling recovered from rope_freqs ({rs})")
    check(bc["torch_dtype"] == cfg["torch_dtype"], f"{label}: torch_dtype {bc['torch_dtype']}")

    # the three copies are one model: same logits for 40 tokens (past the Mistral window of 32)
    tokens = " ".join(str(x) for x in rng.integers(0, c["vocab"], 40))
    logits = []
    for m in (d, gg, back):
        out = work(f"formats-hf-{label}-logits.f32")
        rc, _, err = squeeze("logits", "-m", m, "--tokens", tokens, "-o", out, "-t", "2")
        logits.append(np.fromfile(out, dtype=np.float32) if rc == 0 else None)
        check(rc == 0, f"{label}: logits from {os.path.basename(m)} ({err.strip()[-200:]})")
    if all(x is not None for x in logits):
        rel = max(np.abs(x - logits[0]).max() for x in logits[1:]) / np.abs(logits[0]).max()
        check(rel < 1e-5, f"{label}: HF, GGUF and HF-again logits agree (relative {rel:.1e} < 1e-5)")


def bad_inputs():
    d, cfg, weights, _ = make_checkpoint(CASES[0])
    cases = [
        ("unknown architecture", {"architectures": ["FalconForCausalLM"]}, "architecture FalconForCausalLM is not supported"),
        ("missing field", {"num_hidden_layers": None}, "num_hidden_layers is missing"),
        ("shape vs config", {"intermediate_size": 128}, "but the config implies"),
        ("unsupported rope scaling", {"rope_scaling": {"type": "linear", "factor": 2.0}}, "rope_scaling type linear"),
    ]
    for what, edit, needle in cases:
        c2 = dict(cfg)
        c2.update(edit)
        c2 = {k: v for k, v in c2.items() if v is not None}
        json.dump(c2, open(f"{d}/config.json", "w"))
        rc, _, err = squeeze("info", "-m", d)
        check(rc == 1 and needle in err and d in err, f"bad HF checkpoint ({what}): {err.strip()}")
    open(f"{d}/config.json", "w").write('{"architectures": ["LlamaForCausalLM"], ')
    rc, _, err = squeeze("convert", "-m", d, "-o", work("x.gguf"))
    check(rc == 1 and "config.json: not a JSON object" in err, f"bad HF checkpoint (malformed JSON): {err.strip()}")
    json.dump(cfg, open(f"{d}/config.json", "w"))
    raw = open(f"{d}/model.safetensors", "rb").read()
    open(f"{d}/model.safetensors", "wb").write(raw[: len(raw) // 2])
    rc, _, err = squeeze("info", "-m", d)
    check(rc == 1 and "model.safetensors" in err, f"bad HF checkpoint (truncated safetensors): {err.strip()}")
    s = work("formats-hf-qwen2-bf16-sharded")
    os.remove(f"{s}/model-00002-of-00002.safetensors")
    rc, _, err = squeeze("info", "-m", s)
    check(rc == 1 and "model-00002-of-00002.safetensors: cannot open" in err, f"missing shard: {err.strip()}")


def main():
    for c in CASES:
        run_case(c)
    bad_inputs()
    finish()


main()
