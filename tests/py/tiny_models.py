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
import math
import os
import shutil
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
    # Qwen3: per-head q/k RMSNorm, no biases, head_dim 32 != dim / n_heads as in the real models (2048/16 =
    # 128 there); bf16 with untied output, and an fp32 tied one (Qwen3-0.6B ties its embeddings).
    "qwen3_bf16": dict(arch="qwen3", dim=64, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=32, hidden=160,
                       vocab=512, dtype="BF16", seed=109, rope_theta=1000000.0, norm_eps=1e-6,
                       sliding_window=4, use_sliding_window=False),
    # Gemma 3 (text): sandwich norms stored as w for x * (1 + w), GeGLU, embeddings x sqrt(dim), q/k norms,
    # sliding layers with their own RoPE base. gemma3_bf16: transformers' defaults for the pattern (every 6th
    # layer global) as llama.cpp assumes, so it is also written as GGUF; gemma3_layer_types: layer_types named,
    # query_pre_attn_scalar != head_dim, an untied output.
    "gemma3_bf16": dict(arch="gemma3", dim=64, n_layers=6, n_heads=4, n_kv_heads=2, head_dim=32, hidden=160,
                        vocab=512, dtype="BF16", seed=111, tied=True, rope_theta=1000000.0, norm_eps=1e-6,
                        sliding_window=5, rope_local_base_freq=10000.0, query_pre_attn_scalar=32),
    # Fewer layers than the pattern's period: every layer local (rope_local_base_freq everywhere, in HF and
    # as llama.cpp reads the GGUF).
    "gemma3_local": dict(arch="gemma3", dim=64, n_layers=2, n_heads=2, n_kv_heads=1, head_dim=32, hidden=128,
                         vocab=512, dtype="F32", seed=113, tied=True, rope_theta=1000000.0, norm_eps=1e-6,
                         sliding_window=6, rope_local_base_freq=10000.0, query_pre_attn_scalar=32),
    "gemma3_layer_types": dict(arch="gemma3", dim=64, n_layers=3, n_heads=4, n_kv_heads=1, head_dim=16,
                               hidden=176, vocab=512, dtype="F32", seed=112, rope_theta=500000.0, norm_eps=1e-6,
                               sliding_window=4, rope_local_base_freq=100.0, query_pre_attn_scalar=24,
                               layer_types=["sliding_attention", "full_attention", "sliding_attention"]),
    # Phi-3: q/k/v fused into qkv_proj and gate/up into gate_up_proj (split by squeeze at load); phi3_gqa has
    # fewer kv heads than heads (as Phi-3-medium) and no window; phi3_swa_bf16 a window far shorter than the
    # test sequence (Phi-3-mini's configs set 2047).
    "phi3_gqa": dict(arch="phi3", dim=64, n_layers=2, n_heads=4, n_kv_heads=2, hidden=160, vocab=512,
                     dtype="F32", seed=114),
    "phi3_swa_bf16": dict(arch="phi3", dim=64, n_layers=2, n_heads=4, n_kv_heads=4, hidden=176, vocab=512,
                          dtype="BF16", seed=115, sliding_window=7),
    # Phi-3-mini-128k-style LongRoPE: the original context (16) is shorter than the test sequence, so the long
    # factors apply, and the attention factor is sqrt(1 + ln(256/16) / ln 16) = sqrt(2).
    "phi3_longrope": dict(arch="phi3", dim=64, n_layers=2, n_heads=4, n_kv_heads=4, hidden=160, vocab=512,
                          dtype="F32", seed=116, original_max_position_embeddings=16,
                          rope_scaling={"type": "longrope", "short_factor": [1.0 + 0.1 * i for i in range(8)],
                                        "long_factor": [1.0 + 3.0 * i for i in range(8)]}),
    # Phi-4-mini: partial rotary (partial_rotary_factor 0.75: RoPE on the first 24 of each head's 32 dims, the
    # rest unrotated), LongRoPE with one factor per rotated pair (12), GQA, tied embeddings
    "phi4_partial": dict(arch="phi3", dim=64, n_layers=2, n_heads=2, n_kv_heads=1, hidden=160, vocab=512,
                         dtype="F32", seed=119, tied=True, original_max_position_embeddings=16,
                         partial_rotary_factor=0.75,
                         rope_scaling={"type": "longrope", "short_factor": [1.0 + 0.1 * i for i in range(12)],
                                       "long_factor": [1.0 + 2.0 * i for i in range(12)]}),
    # Gemma 3 with Gemma 2 style soft-capping set (transformers applies both where the config sets them); caps
    # low enough to bite on these activations
    "gemma3_softcap": dict(arch="gemma3", dim=64, n_layers=2, n_heads=2, n_kv_heads=1, head_dim=32, hidden=128,
                           vocab=512, dtype="F32", seed=117, tied=True, rope_theta=1000000.0, norm_eps=1e-6,
                           sliding_window=6, rope_local_base_freq=10000.0, query_pre_attn_scalar=32,
                           attn_logit_softcapping=2.0, final_logit_softcapping=4.0),
    # Gemma 2: Gemma 3's block without q/k norms, every 2nd layer global with one RoPE base, both soft-caps
    # (transformers' defaults 50 / 30 would barely bite here, so lower ones are set)
    "gemma2_softcap": dict(arch="gemma2", dim=64, n_layers=4, n_heads=4, n_kv_heads=2, head_dim=16, hidden=160,
                           vocab=512, dtype="BF16", seed=118, tied=True, rope_theta=10000.0, norm_eps=1e-6,
                           sliding_window=5, query_pre_attn_scalar=16, attn_logit_softcapping=3.0,
                           final_logit_softcapping=6.0),
    "qwen3_tied": dict(arch="qwen3", dim=64, n_layers=2, n_heads=8, n_kv_heads=2, hidden=160, vocab=512,
                       dtype="F32", seed=110, tied=True, rope_theta=1000000.0, norm_eps=1e-6),
    # Mixture of experts: `hidden` is each expert's width. Mixtral: 4 experts, top-2 (as Mixtral-8x7B's
    # ratio); 8 experts top-3 in bf16; 5 experts top-1, where most experts get few tokens and some none.
    "mixtral_f32": dict(arch="mixtral", dim=64, n_layers=2, n_heads=4, n_kv_heads=2, hidden=96, vocab=512,
                        dtype="F32", seed=120, n_experts=4, top_k=2, rope_theta=1000000.0),
    "mixtral_e8k3_bf16": dict(arch="mixtral", dim=64, n_layers=2, n_heads=4, n_kv_heads=1, hidden=64, vocab=512,
                              dtype="BF16", seed=121, n_experts=8, top_k=3, sliding_window=6),
    "mixtral_e5k1": dict(arch="mixtral", dim=64, n_layers=3, n_heads=2, n_kv_heads=2, hidden=48, vocab=512,
                         dtype="F32", seed=122, n_experts=5, top_k=1),
    # Qwen2-MoE: q/k/v biases, top-k weights not renormalised (norm_topk_prob false), a shared expert of its
    # own width with a sigmoid gate. Qwen3-MoE: q/k norms, head_dim 32, renormalised top-k.
    "qwen2moe": dict(arch="qwen2_moe", dim=64, n_layers=2, n_heads=4, n_kv_heads=2, hidden=32, vocab=512,
                     dtype="F32", seed=123, n_experts=6, top_k=2, shared_hidden=96, norm_topk=False,
                     rope_theta=1000000.0, norm_eps=1e-6, tied=True),
    "qwen3moe_bf16": dict(arch="qwen3_moe", dim=64, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=32, hidden=32,
                          vocab=512, dtype="BF16", seed=124, n_experts=8, top_k=2, norm_topk=True,
                          rope_theta=1000000.0, norm_eps=1e-6),
}
MOE = {"mixtral", "qwen2_moe", "qwen3_moe"}

_HF_CLASS = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM",
             "qwen3": "Qwen3ForCausalLM", "gemma3": "Gemma3ForCausalLM", "phi3": "Phi3ForCausalLM",
             "gemma2": "Gemma2ForCausalLM", "mixtral": "MixtralForCausalLM",
             "qwen2_moe": "Qwen2MoeForCausalLM", "qwen3_moe": "Qwen3MoeForCausalLM"}
_TORCH_DTYPE = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}


def _store(x, dtype):
    """float values -> (safetensors dtype, array in that dtype)."""
    x = np.asarray(x, dtype=np.float32)
    if dtype == "F32":
        return dtype, x
    if dtype == "F16":
        return dtype, x.astype(np.float16)
    return dtype, safetensors_np.bf16_bits(x)


def _experts(spec, p, lin):
    """A sparse MoE block's tensors under transformers' names. The router's gain makes routing decisive (top-k
    probabilities well apart), so float32 and float64 pick the same experts."""
    d, hid, mixtral = spec["dim"], spec["hidden"], spec["arch"] == "mixtral"
    pre, names = ((p + "block_sparse_moe.", ("w1", "w3", "w2")) if mixtral
                  else (p + "mlp.", ("gate_proj", "up_proj", "down_proj")))
    w = {pre + "gate.weight": lin(spec["n_experts"], d, 4.0)}
    for e in range(spec["n_experts"]):
        w[f"{pre}experts.{e}.{names[0]}.weight"] = lin(hid, d)
        w[f"{pre}experts.{e}.{names[1]}.weight"] = lin(hid, d)
        w[f"{pre}experts.{e}.{names[2]}.weight"] = lin(d, hid)
    if "shared_hidden" in spec:
        sh = spec["shared_hidden"]
        w[pre + "shared_expert.gate_proj.weight"] = lin(sh, d)
        w[pre + "shared_expert.up_proj.weight"] = lin(sh, d)
        w[pre + "shared_expert.down_proj.weight"] = lin(d, sh)
        w[pre + "shared_expert_gate.weight"] = lin(1, d, 2.0)
    return w


def _weights(spec):
    rng = np.random.default_rng(spec["seed"])
    d, hid, V = spec["dim"], spec["hidden"], spec["vocab"]
    hd = spec.get("head_dim", d // spec["n_heads"])
    q_out, kv_out = spec["n_heads"] * hd, spec["n_kv_heads"] * hd

    def lin(out_f, in_f, gain=1.0):
        return rng.standard_normal((out_f, in_f)) * (gain / np.sqrt(in_f))

    gemma = spec["arch"] in ("gemma3", "gemma2")

    def norm(n=d):  # Gemma stores w of x * (1 + w)
        return (0.0 if gemma else 1.0) + 0.1 * rng.standard_normal(n)

    w = {"model.embed_tokens.weight": rng.standard_normal((V, d))}
    for l in range(spec["n_layers"]):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = norm()
        w[p + "self_attn.q_proj.weight"] = lin(q_out, d, 1.5)  # sharper than uniform attention
        w[p + "self_attn.k_proj.weight"] = lin(kv_out, d, 1.5)
        w[p + "self_attn.v_proj.weight"] = lin(kv_out, d)
        w[p + "self_attn.o_proj.weight"] = lin(d, q_out)
        if spec["arch"] in ("qwen2", "qwen2_moe"):
            w[p + "self_attn.q_proj.bias"] = 0.5 * rng.standard_normal(q_out)
            w[p + "self_attn.k_proj.bias"] = 0.5 * rng.standard_normal(kv_out)
            w[p + "self_attn.v_proj.bias"] = 0.5 * rng.standard_normal(kv_out)
        if spec["arch"] in ("qwen3", "qwen3_moe", "gemma3"):  # per-head norms over head_dim; spread so that dropping them shows
            w[p + "self_attn.q_norm.weight"] = (0.0 if gemma else 1.0) + 0.5 * rng.standard_normal(hd)
            w[p + "self_attn.k_norm.weight"] = (0.0 if gemma else 1.0) + 0.5 * rng.standard_normal(hd)
        w[p + "post_attention_layernorm.weight"] = norm()
        if gemma:
            w[p + "pre_feedforward_layernorm.weight"] = norm()
            w[p + "post_feedforward_layernorm.weight"] = norm()
        if spec["arch"] in MOE:
            w.update(_experts(spec, p, lin))
            continue
        w[p + "mlp.gate_proj.weight"] = lin(hid, d)
        w[p + "mlp.up_proj.weight"] = lin(hid, d)
        w[p + "mlp.down_proj.weight"] = lin(d, hid)
    w["model.norm.weight"] = norm()
    if not spec.get("tied"):
        w["lm_head.weight"] = lin(V, d, 3.0)
    if spec["arch"] == "phi3":  # Phi3Attention.qkv_proj = [q; k; v] rows, Phi3MLP.gate_up_proj = [gate; up]
        for l in range(spec["n_layers"]):
            p = f"model.layers.{l}."
            w[p + "self_attn.qkv_proj.weight"] = np.concatenate(
                [w.pop(p + f"self_attn.{x}_proj.weight") for x in "qkv"])
            w[p + "mlp.gate_up_proj.weight"] = np.concatenate([w.pop(p + f"mlp.{x}_proj.weight") for x in ("gate", "up")])
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
    if spec["arch"] in ("qwen2", "qwen3"):
        cfg.update(sliding_window=spec.get("sliding_window"), use_sliding_window=spec.get("use_sliding_window"),
                   max_window_layers=spec["n_layers"])
    if spec["arch"] in ("qwen3", "qwen3_moe"):
        cfg.update(attention_bias=False)
    if spec["arch"] == "phi3":  # Phi3Config: no attention_bias key; sliding_window None unless set
        cfg.update(sliding_window=spec.get("sliding_window"), original_max_position_embeddings=spec.get(
            "original_max_position_embeddings", 256), resid_pdrop=0.0, embd_pdrop=0.0, pad_token_id=0)
        if "partial_rotary_factor" in spec:  # Phi-4-mini's config.json has it at the top level
            cfg["partial_rotary_factor"] = spec["partial_rotary_factor"]
    if spec["arch"] == "gemma2":  # Gemma2Config: hidden_activation, one rope_theta, no rope_local_base_freq
        cfg.update(attention_bias=False, hidden_activation="gelu_pytorch_tanh", sliding_window=spec["sliding_window"],
                   query_pre_attn_scalar=spec["query_pre_attn_scalar"],
                   attn_logit_softcapping=spec.get("attn_logit_softcapping"),
                   final_logit_softcapping=spec.get("final_logit_softcapping"))
        del cfg["hidden_act"]
    if spec["arch"] == "mixtral":
        cfg.update(sliding_window=spec.get("sliding_window"), num_local_experts=spec["n_experts"],
                   num_experts_per_tok=spec["top_k"], router_aux_loss_coef=0.02, output_router_logits=False)
    if spec["arch"] in ("qwen2_moe", "qwen3_moe"):
        cfg.update(sliding_window=None, use_sliding_window=False, max_window_layers=spec["n_layers"],
                   num_experts=spec["n_experts"], num_experts_per_tok=spec["top_k"],
                   moe_intermediate_size=spec["hidden"], intermediate_size=4 * spec["hidden"],
                   norm_topk_prob=spec["norm_topk"], decoder_sparse_step=1, mlp_only_layers=[])
        if "shared_hidden" in spec:
            cfg["shared_expert_intermediate_size"] = spec["shared_hidden"]
    if spec["arch"] == "gemma3":
        cfg.update(model_type="gemma3_text", attention_bias=False, hidden_activation="gelu_pytorch_tanh",
                   sliding_window=spec["sliding_window"], rope_local_base_freq=spec["rope_local_base_freq"],
                   query_pre_attn_scalar=spec["query_pre_attn_scalar"],
                   attn_logit_softcapping=spec.get("attn_logit_softcapping"),
                   final_logit_softcapping=spec.get("final_logit_softcapping"))
        del cfg["hidden_act"]
        if "layer_types" in spec:
            cfg["layer_types"] = spec["layer_types"]
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


def with_config(base, out, rewrite, extra_files=None):
    """A copy of checkpoint directory `base` at `out` whose config.json is rewrite(config) (the other files are
    symlinks to base's), plus extra_files {name: JSON value}. Returns out."""
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    for f in os.listdir(base):
        if f != "config.json":
            os.symlink(os.path.join(base, f), os.path.join(out, f))
    with open(os.path.join(base, "config.json")) as f:
        cfg = rewrite(json.load(f))
    for name, value in {"config.json": cfg, **(extra_files or {})}.items():
        with open(os.path.join(out, name), "w") as f:
            json.dump(value, f, indent=1)
    return out


def _gguf_vocab(writer, tokenizer_json):
    """The tokenizer.json vocabulary as GGUF tokenizer.ggml.* keys (SentencePiece-style "llama" model)."""
    with open(tokenizer_json, encoding="utf-8") as f:
        vocab = json.load(f)["model"]["vocab"]
    pieces = sorted(vocab, key=vocab.get)
    types, scores = [], []
    for i, p in enumerate(pieces):
        if i == 0:
            types.append(2)  # unknown
        elif i < 3:
            types.append(3)  # control
        elif p.startswith("<0x") and len(p) == 6:
            types.append(6)  # byte
        else:
            types.append(1)  # normal
        scores.append(0.0 if types[-1] != 1 else -float(i))  # earlier merges win, as in Llama-2's scores
    writer.add_tokenizer_model("llama")
    writer.add_token_list(pieces)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)


def generate_gguf(name, outroot, qtype, extra_ids=None, tag="", add_bos=None):
    """Writes variant `name` as a GGUF file with llama.cpp's conventions, written by the gguf package (an
    independent writer): 2-D weights in `qtype` ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1"), norms and
    biases in F32, and for the llama architecture q/k rows permuted to RoPE-on-interleaved-pairs order as
    llama.cpp's converter does. extra_ids: more uint32 metadata ({"tokenizer.ggml.eot_token_id": 7});
    add_bos: tokenizer.ggml.add_bos_token (None: not written); tag names such a file apart. Returns the path."""
    import gguf

    spec = VARIANTS[name]
    arch = {"mixtral": "llama", "qwen2_moe": "qwen2moe", "qwen3_moe": "qwen3moe"}.get(spec["arch"], spec["arch"])
    if arch not in ("llama", "qwen2", "qwen3", "gemma3", "phi3", "gemma2", "qwen2moe", "qwen3moe") or \
            spec.get("shards", 1) != 1 or (spec.get("rope_scaling") and arch != "phi3"):
        raise ValueError(f"{name}: only plain llama, mixtral, qwen2(moe), qwen3(moe), gemma3 and phi3 variants are "
                         "written as GGUF here")
    if arch in ("gemma3", "gemma2") and ("layer_types" in spec or spec["query_pre_attn_scalar"] != spec["head_dim"]):
        raise ValueError(f"{name}: GGUF gemma3 holds only llama.cpp's layer pattern and attention scale")
    src = generate(name, outroot)
    w = {k: safetensors_np.to_f64(dt, a).astype(np.float32) for k, (dt, a) in _weights(spec).items()}
    d, hd = spec["dim"], spec.get("head_dim", spec["dim"] // spec["n_heads"])

    def to_interleaved(x):  # halves row order (i, i + hd/2) -> interleaved pairs (2i, 2i+1), per head
        if arch != "llama":
            return x
        heads = x.shape[0] // hd
        order = np.empty(hd, dtype=np.int64)
        order[0::2], order[1::2] = np.arange(hd // 2), np.arange(hd // 2) + hd // 2
        return x[(np.arange(heads)[:, None] * hd + order[None, :]).ravel()]

    if arch in ("gemma3", "gemma2"):  # llama.cpp's converter stores 1 + w for every norm
        w = {k: (v + np.float32(1.0) if k.endswith("norm.weight") else v) for k, v in w.items()}
    qt = gguf.GGMLQuantizationType[qtype]
    path = os.path.join(outroot, f"{name}-{qtype.lower()}{tag}.gguf")
    writer = gguf.GGUFWriter(path, arch)
    writer.add_name(name)
    writer.add_context_length(256)
    writer.add_embedding_length(d)
    writer.add_block_count(spec["n_layers"])
    writer.add_feed_forward_length(spec["hidden"])
    writer.add_head_count(spec["n_heads"])
    writer.add_head_count_kv(spec["n_kv_heads"])
    writer.add_key_length(hd)
    writer.add_value_length(hd)
    writer.add_rope_dimension_count(int(hd * spec.get("partial_rotary_factor", 1.0)))  # convert_hf_to_gguf's n_rot
    writer.add_layer_norm_rms_eps(spec.get("norm_eps", 1e-5))
    writer.add_rope_freq_base(spec.get("rope_theta", 10000.0))
    if spec.get("rope_scaling"):  # convert_hf_to_gguf.py, Phi3MiniModel: LongRoPE factors as tensors
        original = spec["original_max_position_embeddings"]
        writer.add_rope_scaling_orig_ctx_len(original)
        writer.add_rope_scaling_attn_factors(math.sqrt(1 + math.log(256 / original) / math.log(original)))
        writer.add_tensor("rope_factors_long.weight", np.asarray(spec["rope_scaling"]["long_factor"], np.float32))
        writer.add_tensor("rope_factors_short.weight", np.asarray(spec["rope_scaling"]["short_factor"], np.float32))
    for key in ("attn_logit_softcapping", "final_logit_softcapping"):
        if spec.get(key):
            writer.add_float32(f"{arch}.{key}", spec[key])
    if arch in ("gemma3", "phi3", "gemma2") and spec.get("sliding_window"):
        writer.add_uint32(f"{arch}.attention.sliding_window", spec["sliding_window"])
    if spec["arch"] == "mixtral" and spec.get("sliding_window"):
        writer.add_sliding_window(spec["sliding_window"])
    if "n_experts" in spec:  # as llama.cpp's converter writes Mixtral / Qwen MoE
        writer.add_expert_count(spec["n_experts"])
        writer.add_expert_used_count(spec["top_k"])
        if arch != "llama":
            writer.add_expert_feed_forward_length(spec["hidden"])
        if "shared_hidden" in spec:
            writer.add_expert_shared_feed_forward_length(spec["shared_hidden"])
    writer.add_file_type({"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "BF16": 32}[qtype])
    _gguf_vocab(writer, os.path.join(src, "tokenizer.json"))
    for key, value in (extra_ids or {}).items():
        writer.add_uint32(key, value)
    if add_bos is not None:
        writer.add_add_bos_token(add_bos)

    def put(gname, x, quantize=True):
        if quantize and qt != gguf.GGMLQuantizationType.F32:
            writer.add_tensor(gname, gguf.quants.quantize(x, qt), raw_dtype=qt)
        else:
            writer.add_tensor(gname, x)

    put("token_embd.weight", w["model.embed_tokens.weight"])
    put("output_norm.weight", w["model.norm.weight"], False)
    if "lm_head.weight" in w:
        put("output.weight", w["lm_head.weight"])
    hf_to_gguf = [("input_layernorm.weight", "attn_norm.weight"), ("self_attn.q_proj.weight", "attn_q.weight"),
                  ("self_attn.k_proj.weight", "attn_k.weight"), ("self_attn.v_proj.weight", "attn_v.weight"),
                  ("self_attn.o_proj.weight", "attn_output.weight"),
                  ("post_attention_layernorm.weight", "ffn_norm.weight"), ("mlp.gate_proj.weight", "ffn_gate.weight"),
                  ("mlp.up_proj.weight", "ffn_up.weight"), ("mlp.down_proj.weight", "ffn_down.weight"),
                  ("self_attn.q_proj.bias", "attn_q.bias"), ("self_attn.k_proj.bias", "attn_k.bias"),
                  ("self_attn.v_proj.bias", "attn_v.bias"), ("self_attn.q_norm.weight", "attn_q_norm.weight"),
                  ("self_attn.k_norm.weight", "attn_k_norm.weight")]
    if arch in ("gemma3", "gemma2"):  # sandwich norms
        hf_to_gguf = [(h, g) for h, g in hf_to_gguf if not h.startswith("post_attention_layernorm")]
        hf_to_gguf += [("post_attention_layernorm.weight", "post_attention_norm.weight"),
                       ("pre_feedforward_layernorm.weight", "ffn_norm.weight"),
                       ("post_feedforward_layernorm.weight", "post_ffw_norm.weight")]

    if arch == "phi3":  # llama.cpp's converter keeps Phi-3's fused tensors; gate_up is called ffn_up
        hf_to_gguf += [("self_attn.qkv_proj.weight", "attn_qkv.weight"), ("mlp.gate_up_proj.weight", "ffn_up.weight")]
    for l in range(spec["n_layers"]):
        for hf, gg in hf_to_gguf:
            x = w.get(f"model.layers.{l}.{hf}")
            if x is None:
                continue
            if gg.startswith(("attn_q.", "attn_k.")):
                x = to_interleaved(x)
            put(f"blk.{l}.{gg}", x, x.ndim == 2)
        if "n_experts" not in spec:
            continue
        # experts stacked [n_experts][rows][cols] (ggml's 3-D ffn_*_exps), the router unquantized as llama.cpp's
        # converter keeps it; the shared expert's gate is 1-D [dim]
        mixtral, E = spec["arch"] == "mixtral", spec["n_experts"]
        pre = f"model.layers.{l}." + ("block_sparse_moe." if mixtral else "mlp.")
        put(f"blk.{l}.ffn_gate_inp.weight", w[pre + "gate.weight"], False)
        for gg, hf in zip(("gate", "up", "down"), ("w1", "w3", "w2") if mixtral else ("gate_proj", "up_proj",
                                                                                      "down_proj")):
            put(f"blk.{l}.ffn_{gg}_exps.weight", np.stack([w[f"{pre}experts.{e}.{hf}.weight"] for e in range(E)]))
            if "shared_hidden" in spec:
                put(f"blk.{l}.ffn_{gg}_shexp.weight", w[f"{pre}shared_expert.{hf}.weight"])
        if "shared_hidden" in spec:
            put(f"blk.{l}.ffn_gate_inp_shexp.weight", w[pre + "shared_expert_gate.weight"].reshape(-1), False)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def generate_llama2c(name, outroot):
    """Writes variant `name` as a llama2.c checkpoint (fp32, q/k rows in interleaved-pair order, an unshared
    classifier announced by a negative vocab_size when the variant is untied). The file sits in its own folder
    with no tokenizer beside it. Returns the path."""
    import struct

    spec = VARIANTS[name]
    d, hd = spec["dim"], spec.get("head_dim", spec["dim"] // spec["n_heads"])
    if spec["arch"] != "llama" or hd * spec["n_heads"] != d or spec.get("rope_scaling"):
        raise ValueError(f"{name}: llama2.c holds only plain llama models with head_dim = dim / n_heads")
    w = {k: safetensors_np.to_f64(dt, a).astype(np.float32) for k, (dt, a) in _weights(spec).items()}
    order = np.empty(hd, dtype=np.int64)
    order[0::2], order[1::2] = np.arange(hd // 2), np.arange(hd // 2) + hd // 2

    def interleaved(x):
        return x[(np.arange(x.shape[0] // hd)[:, None] * hd + order[None, :]).ravel()]

    L = range(spec["n_layers"])

    def stack(key, fn=lambda x: x):
        return [fn(w[f"model.layers.{l}.{key}"]) for l in L]

    tied = "lm_head.weight" not in w
    seq_len = 256
    arrays = [w["model.embed_tokens.weight"]]
    arrays += stack("input_layernorm.weight") + stack("self_attn.q_proj.weight", interleaved)
    arrays += stack("self_attn.k_proj.weight", interleaved) + stack("self_attn.v_proj.weight")
    arrays += stack("self_attn.o_proj.weight") + stack("post_attention_layernorm.weight")
    arrays += stack("mlp.gate_proj.weight") + stack("mlp.down_proj.weight") + stack("mlp.up_proj.weight")
    arrays += [w["model.norm.weight"], np.zeros((2, seq_len, hd // 2), np.float32)]  # unused RoPE tables
    if not tied:
        arrays.append(w["lm_head.weight"])
    folder = os.path.join(outroot, name + "-llama2c")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "model.bin")
    with open(path, "wb") as f:
        V = spec["vocab"]
        f.write(struct.pack("<7i", d, spec["hidden"], spec["n_layers"], spec["n_heads"], spec["n_kv_heads"],
                            V if tied else -V, seq_len))
        for a in arrays:
            f.write(np.ascontiguousarray(a, dtype="<f4").tobytes())
    return path


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    names = sys.argv[2:] or list(VARIANTS)
    for n in names:
        print(generate(n, sys.argv[1]))


if __name__ == "__main__":
    main()
