"""Tiny random Hugging Face checkpoints, one per architecture feature the forward pass must get right.

Each variant is a directory with config.json, model.safetensors (or shards + model.safetensors.index.json),
tokenizer.json and tokenizer_config.json. The tokenizer is the Llama-2 one cut down to 512 tokens (specials, the
256 byte-fallback tokens, the commonest characters and the first merges among them): a real, consistent BPE.

Weights are random with fixed seeds, scaled so activations stay O(1): embeddings ~ N(0, 1), every linear
layer ~ N(0, 1/in_features) (times `gain`), norm weights ~ 1 + N(0, 0.1^2). That keeps attention scores and
logits spread (not uniform, not saturated), so argmax is well defined and small engine errors show.

Usage: python tiny_models.py OUTDIR [VARIANT ...]
"""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np  # noqa: E402

TOKENIZER_VOCAB = 512

# name -> (architecture and shape, storage dtype, extras). Every variant differs from a plain llama in one or
# two features, named by the variant.
VARIANTS = {
    # MHA in fp32; odd vocab and FFN sizes exercise the kernels' row tails.
    "llama_mha_f32": dict(arch="llama", dim=64, n_layers=2, n_heads=4, n_kv_heads=4, hidden=176, vocab=515,
                          dtype="F32", seed=101),
    "llama_gqa_f16": dict(arch="llama", dim=64, n_layers=2, n_heads=8, n_kv_heads=2, hidden=160, vocab=512,
                          dtype="F16", seed=102),
    "llama_tied_bf16": dict(arch="llama", dim=64, n_layers=2, n_heads=4, n_kv_heads=2, hidden=160, vocab=512,
                            dtype="BF16", seed=103, tied=True),
    # llama3 rope scaling: original_max_position_embeddings is small, so that at head_dim 32 and theta 5e5
    # the test positions see all three wavelength bands (kept, smoothed, divided by factor).
    "llama3_rope": dict(arch="llama", dim=64, n_layers=2, n_heads=2, n_kv_heads=1, hidden=160, vocab=512,
                        dtype="F32", seed=104, rope_theta=500000.0,
                        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                      "high_freq_factor": 4.0, "original_max_position_embeddings": 128}),
    # Mistral with a window far shorter than the test sequence.
    "mistral_swa": dict(arch="mistral", dim=64, n_layers=2, n_heads=4, n_kv_heads=2, hidden=160, vocab=512,
                        dtype="F32", seed=105, sliding_window=5),
    # Qwen2: q/k/v biases and tied embeddings like the small Qwen2 models. sliding_window is set small but
    # use_sliding_window is false, as in real Qwen2 configs: attention must stay full.
    "qwen2_bias": dict(arch="qwen2", dim=64, n_layers=2, n_heads=4, n_kv_heads=2, hidden=160, vocab=512,
                       dtype="F32", seed=106, tied=True, rope_theta=1000000.0, norm_eps=1e-6,
                       sliding_window=4, use_sliding_window=False),
    # head_dim 32 with 4 heads on a 64-wide model: q/o are 128 wide, not hidden_size.
    "llama_head_dim": dict(arch="llama", dim=64, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=32, hidden=160,
                           vocab=512, dtype="F32", seed=107),
    # The same model layout stored as three safetensors shards with an index.
    "llama_sharded": dict(arch="llama", dim=64, n_layers=3, n_heads=4, n_kv_heads=4, hidden=160, vocab=512,
                          dtype="F32", seed=108, shards=3),
}

_HF_CLASS = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM"}
_TORCH_DTYPE = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}


def _store(x, dtype):
    """float values -> (safetensors dtype, array in that dtype)."""
    x = np.asarray(x, dtype=np.float32)
    if dtype == "F32":
        return dtype, x
    if dtype == "F16":
        return dtype, x.astype(np.float16)
    return dtype, safetensors_np.bf16_bits(x)


def _weights(spec):
    rng = np.random.default_rng(spec["seed"])
    d, hid, V = spec["dim"], spec["hidden"], spec["vocab"]
    hd = spec.get("head_dim", d // spec["n_heads"])
    q_out, kv_out = spec["n_heads"] * hd, spec["n_kv_heads"] * hd

    def lin(out_f, in_f, gain=1.0):
        return rng.standard_normal((out_f, in_f)) * (gain / np.sqrt(in_f))

    def norm():
        return 1.0 + 0.1 * rng.standard_normal(d)

    w = {"model.embed_tokens.weight": rng.standard_normal((V, d))}
    for l in range(spec["n_layers"]):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = norm()
        w[p + "self_attn.q_proj.weight"] = lin(q_out, d, 1.5)  # sharper than uniform attention
        w[p + "self_attn.k_proj.weight"] = lin(kv_out, d, 1.5)
        w[p + "self_attn.v_proj.weight"] = lin(kv_out, d)
        w[p + "self_attn.o_proj.weight"] = lin(d, q_out)
        if spec["arch"] == "qwen2":
            w[p + "self_attn.q_proj.bias"] = 0.5 * rng.standard_normal(q_out)
            w[p + "self_attn.k_proj.bias"] = 0.5 * rng.standard_normal(kv_out)
            w[p + "self_attn.v_proj.bias"] = 0.5 * rng.standard_normal(kv_out)
        w[p + "post_attention_layernorm.weight"] = norm()
        w[p + "mlp.gate_proj.weight"] = lin(hid, d)
        w[p + "mlp.up_proj.weight"] = lin(hid, d)
        w[p + "mlp.down_proj.weight"] = lin(d, hid)
    w["model.norm.weight"] = norm()
    if not spec.get("tied"):
        w["lm_head.weight"] = lin(V, d, 3.0)
    return {k: _store(v, spec["dtype"]) for k, v in w.items()}


def _config(spec):
    d = spec["dim"]
    cfg = {
        "architectures": [_HF_CLASS[spec["arch"]]],
        "model_type": spec["arch"],
        "hidden_size": d,
        "intermediate_size": spec["hidden"],
        "num_hidden_layers": spec["n_layers"],
        "num_attention_heads": spec["n_heads"],
        "num_key_value_heads": spec["n_kv_heads"],
        "head_dim": spec.get("head_dim", d // spec["n_heads"]),
        "hidden_act": "silu",
        "max_position_embeddings": 256,
        "rms_norm_eps": spec.get("norm_eps", 1e-5),
        "rope_theta": spec.get("rope_theta", 10000.0),
        "rope_scaling": spec.get("rope_scaling"),
        "tie_word_embeddings": bool(spec.get("tied", False)),
        "vocab_size": spec["vocab"],
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": _TORCH_DTYPE[spec["dtype"]],
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "use_cache": True,
    }
    if spec["arch"] == "llama":
        cfg.update(attention_bias=False, mlp_bias=False, pretraining_tp=1)
    if spec["arch"] == "mistral":
        cfg["sliding_window"] = spec.get("sliding_window")
    if spec["arch"] == "qwen2":
        cfg.update(sliding_window=spec.get("sliding_window"), use_sliding_window=spec.get("use_sliding_window"),
                   max_window_layers=spec["n_layers"])
    return cfg


def shared_dir():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.environ.get("SQ_SHARED") or os.path.normpath(os.path.join(here, "..", "..", "..", "shared"))


def write_tokenizer(outdir, n=TOKENIZER_VOCAB, n_chars=80):
    """A Llama-2-style tokenizer.json of n tokens: the three specials, the 256 byte-fallback tokens, the
    n_chars most frequent single characters of the Llama-2 vocabulary, then the Llama-2 merges (in their order)
    whose parts are already in, until n tokens. Ids are renumbered densely in that order."""
    src = os.path.join(shared_dir(), "tokenizers", "llama2")
    with open(os.path.join(src, "tokenizer.json"), encoding="utf-8") as f:
        tok = json.load(f)
    full = sorted(tok["model"]["vocab"].items(), key=lambda kv: kv[1])
    pieces = [p for p, i in full if i < 259]  # <unk> <s> </s> <0x00>..<0xFF>
    pieces += [p for p, i in full if i >= 259 and len(p) == 1][:n_chars]  # Llama-2 lists characters by frequency
    have = set(pieces)
    merges = []
    for m in tok["model"]["merges"]:
        if len(pieces) >= n:
            break
        a, b = m.split(" ") if isinstance(m, str) else m
        if a in have and b in have and a + b not in have:
            pieces.append(a + b)
            have.add(a + b)
            merges.append(m)
    tok["model"]["vocab"] = {p: i for i, p in enumerate(pieces)}
    tok["model"]["merges"] = merges
    with open(os.path.join(outdir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False)
    with open(os.path.join(src, "tokenizer_config.json"), encoding="utf-8") as f:
        tcfg = json.load(f)
    with open(os.path.join(outdir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tcfg, f, indent=2)


def generate(name, outroot):
    """Writes variant `name` to outroot/name (rewritten each time: same seed, same bytes); returns the path."""
    spec = VARIANTS[name]
    out = os.path.join(outroot, name)
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        os.remove(os.path.join(out, f))
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(_config(spec), f, indent=2)
    tensors = _weights(spec)
    shards = spec.get("shards", 1)
    if shards == 1:
        safetensors_np.save(os.path.join(out, "model.safetensors"), tensors, {"format": "pt"})
    else:
        names = list(tensors)
        parts = np.array_split(np.arange(len(names)), shards)
        weight_map, total = {}, 0
        for i, idx in enumerate(parts):
            fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            part = {names[j]: tensors[names[j]] for j in idx}
            total += safetensors_np.save(os.path.join(out, fname), part, {"format": "pt"})
            weight_map.update({k: fname for k in part})
        with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    write_tokenizer(out)
    return out


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    names = sys.argv[2:] or list(VARIANTS)
    for n in names:
        print(generate(n, sys.argv[1]))


if __name__ == "__main__":
    main()
