"""An independent float64 numpy implementation of the decoder forward pass, used as the oracle for squeeze.

Written from the definitions in Hugging Face transformers' modeling code (modeling_llama.py,
modeling_mistral.py, modeling_qwen2.py, modeling_rope_utils.py, masking_utils.py) and llama2.c's run.c,
never from squeeze's C code. Weights are upcast exactly from their stored dtype (f16/bf16/quantized GGUF blocks
are dequantized to their exact values) and every operation runs in float64.

  LlamaForCausalLM   h = x + o_proj(attn(rope(q_proj(n1(x))), rope(k_proj(..)), v_proj(..)))
                     out = h + down(silu(gate(n2(h))) * up(n2(h)))
                     RMSNorm(x) = x / sqrt(mean(x^2) + eps) * w
                     RoPE: inv_freq[i] = theta^(-2i/head_dim), "rotate_half" pairs (i, i + head_dim/2);
                     rope_type "llama3" rescales inv_freq by wavelength (_compute_llama3_parameters)
                     attention: softmax(q.k / sqrt(head_dim)) with GQA (kv head = q head // (n_heads/n_kv))
  MistralForCausalLM the same with a sliding window: query i sees keys j with  i - window < j <= i
                     (masking_utils.sliding_window_overlay: kv_idx > q_idx - sliding_window, AND causal
                     kv_idx <= q_idx), i.e. `window` keys including itself (the eager/sdpa masks; an old
                     flash-attention path saw window + 1, fixed upstream: transformers#29623, #39408)
  Qwen2ForCausalLM   the same with q/k/v biases; the window only applies when use_sliding_window is true, and
                     then to layers >= max_window_layers
  Qwen3ForCausalLM   Qwen2's attention without biases (attention_bias, default false) and with per-head
                     RMSNorm of q and k over head_dim before RoPE (modeling_qwen3.Qwen3Attention:
                     q_norm(q_proj(x).view(.., head_dim)), likewise k), eps rms_norm_eps
  Gemma3ForCausalLM  (modeling_gemma3.py, text part) embeddings x sqrt(hidden_size) (Gemma3TextScaledWordEmbedding,
                     the scale in float32 as an fp32 model and llama.cpp have it); Gemma3RMSNorm x * (1 + w);
                     h = x + post_attention_layernorm(o_proj(attn(...))) with Qwen3's q/k norms, scores scaled
                     by query_pre_attn_scalar^-0.5; out = h + post_feedforward_layernorm(down(gelu_tanh(gate(
                     pre_feedforward_layernorm(h))) * up(..))); sliding layers (layer_types, else every
                     sliding_window_pattern-th layer global, default 6) use the window and RoPE base
                     rope_local_base_freq unscaled, global ones rope_theta; GGUF gemma3: norms hold 1 + w
                     (llama.cpp's converter adds 1), pattern 6 and local base 10000 as llama.cpp assumes
  llama2.c (.bin)    Llama with RoPE on interleaved pairs (2i, 2i+1), theta 10000, eps 1e-5
  GGUF llama         interleaved pairs (llama.cpp's converter permutes HF q/k rows); GGUF qwen2: halves

Usage as a tool:  python reference.py MODEL --tokens "1 2 3" [-o logits.f32] [--greedy N]
"""

import argparse
import json
import math
import os
import struct
import sys
from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np  # noqa: E402


@dataclass
class Layer:
    attn_norm: np.ndarray
    wq: np.ndarray  # [n_heads * head_dim, dim]
    wk: np.ndarray  # [n_kv_heads * head_dim, dim]
    wv: np.ndarray
    wo: np.ndarray  # [dim, n_heads * head_dim]
    ffn_norm: np.ndarray
    w_gate: np.ndarray  # [hidden, dim]
    w_up: np.ndarray
    w_down: np.ndarray  # [dim, hidden]
    bq: Optional[np.ndarray] = None
    bk: Optional[np.ndarray] = None
    bv: Optional[np.ndarray] = None
    bo: Optional[np.ndarray] = None
    q_norm: Optional[np.ndarray] = None  # [head_dim] (Qwen3, Gemma 3)
    k_norm: Optional[np.ndarray] = None
    attn_post_norm: Optional[np.ndarray] = None  # [dim] (Gemma 3)
    ffn_post_norm: Optional[np.ndarray] = None
    window: int = 0  # 0: full causal attention
    rope_local: bool = False  # RoPE with the model's local base, unscaled (Gemma 3's sliding layers)
    moe: Optional["Moe"] = None  # a mixture-of-experts FFN instead of w_gate/w_up/w_down (then None)


@dataclass
class Moe:
    """transformers' MixtralSparseMoeBlock / Qwen2MoeSparseMoeBlock / Qwen3MoeSparseMoeBlock."""
    router: np.ndarray  # [n_experts, dim] (the block's `gate`)
    gate: list  # per expert [hidden, dim] (Mixtral w1, Qwen gate_proj)
    up: list  # per expert [hidden, dim] (w3, up_proj)
    down: list  # per expert [dim, hidden] (w2, down_proj)
    top_k: int
    norm_topk: bool  # Mixtral always; Qwen: norm_topk_prob
    shared: Optional[tuple] = None  # (gate, up, down) of Qwen2-MoE's shared_expert
    shared_gate: Optional[np.ndarray] = None  # [1, dim] shared_expert_gate


@dataclass
class Model:
    arch: str
    head_dim: int
    norm_eps: float
    rope_theta: float
    rope_interleaved: bool
    tok_embd: np.ndarray  # [vocab, dim]
    out_norm: np.ndarray
    output: np.ndarray  # [vocab, dim]; the same array as tok_embd when tied
    layers: list = field(default_factory=list)
    rope_scaling: Optional[dict] = None  # HF rope_scaling dict (rope_type "llama3") or None
    rope_freq_factors: Optional[np.ndarray] = None  # GGUF rope_freqs.weight: inv_freq is divided by these
    act: str = "silu"  # the FFN's gate activation: "silu" or "gelu_tanh"
    embd_scale: float = 1.0
    attn_scalar: Optional[float] = None  # scores are q.k / sqrt(attn_scalar); None: head_dim
    rope_local_theta: Optional[float] = None
    # LongRoPE (Phi-3): {"short", "long": per-pair divisors [head_dim/2], "original": context, "attn": factor}.
    # The long factors apply when rope_ctx > original: rope_ctx is the context the model runs in (squeeze's
    # n_ctx, llama.cpp's rule); transformers decides by the current call's length, which agrees for any one
    # call over a whole sequence when rope_ctx is that sequence's length (or both sides of the original).
    longrope: Optional[dict] = None
    rope_ctx: int = 0
    # Gemma 2 style soft-capping (eager_attention_forward, Gemma2ForCausalLM.forward): x -> cap tanh(x / cap)
    attn_softcap: Optional[float] = None  # of the scaled scores, before the mask and softmax
    final_softcap: Optional[float] = None  # of the output logits
    # Partial rotary (Phi-4-mini; transformers' partial_rotary_factor, GGUF rope.dimension_count): RoPE on the
    # first rope_dims of each head only, frequencies theta^(-2i/rope_dims); None: the whole head
    rope_dims: Optional[int] = None

    @property
    def vocab_size(self):
        return self.output.shape[0]

    @property
    def dim(self):
        return self.tok_embd.shape[1]

    @property
    def rot_dims(self):
        return self.rope_dims or self.head_dim

    def inv_freq_local(self):
        d = self.rot_dims
        return 1.0 / (self.rope_local_theta ** (np.arange(0, d, 2, dtype=np.float64) / d))

    def inv_freq(self):
        d = self.rot_dims
        inv = 1.0 / (self.rope_theta ** (np.arange(0, d, 2, dtype=np.float64) / d))
        if self.rope_scaling is not None:
            inv = llama3_inv_freq(inv, self.rope_scaling)
        if self.rope_freq_factors is not None:
            inv = inv / self.rope_freq_factors
        if self.longrope is not None:
            lr = self.longrope
            inv = inv / np.asarray(lr["long"] if self.rope_ctx > lr["original"] else lr["short"], dtype=np.float64)
        return inv


def llama3_inv_freq(inv_freq, rs):
    """modeling_rope_utils._compute_llama3_parameters: long wavelengths are slowed by `factor`, short ones
    kept, and those in between interpolated smoothly by wavelength."""
    factor = float(rs["factor"])
    low, high = float(rs["low_freq_factor"]), float(rs["high_freq_factor"])
    old_ctx = float(rs["original_max_position_embeddings"])
    low_wavelen, high_wavelen = old_ctx / low, old_ctx / high
    wavelen = 2 * math.pi / inv_freq
    scaled = np.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_ctx / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
    return np.where(medium, smoothed, scaled)


# ---------------------------------------------------------------------------------------------- forward


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def silu(x):
    return x / (1.0 + np.exp(-x))


def gelu_tanh(x):  # transformers' gelu_pytorch_tanh (PytorchGELUTanh)
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def apply_rope(x, positions, inv_freq, interleaved):
    """x: [heads, n, head_dim]; positions: [n]. Rotates the first 2 len(inv_freq) dims of each head, the rest
    passed through (transformers' apply_rotary_pos_emb with rotary_dim = cos.shape[-1], as Phi-3 has it)."""
    rd = 2 * len(inv_freq)
    if rd < x.shape[-1]:
        return np.concatenate([apply_rope(x[..., :rd], positions, inv_freq, interleaved), x[..., rd:]], axis=-1)
    ang = positions[:, None].astype(np.float64) * inv_freq[None, :]  # [n, head_dim/2]
    cos, sin = np.cos(ang), np.sin(ang)
    out = np.empty_like(x)
    if interleaved:
        a, b = x[..., 0::2], x[..., 1::2]
        out[..., 0::2] = a * cos - b * sin
        out[..., 1::2] = a * sin + b * cos
    else:  # rotate_half: x * cos + cat(-x2, x1) * sin
        h = x.shape[-1] // 2
        a, b = x[..., :h], x[..., h:]
        out[..., :h] = a * cos - b * sin
        out[..., h:] = b * cos + a * sin
    return out


class KVCache:
    """Keys (after RoPE) and values of every position read so far, per layer: [n_kv_heads, pos, head_dim]."""

    def __init__(self, model):
        self.k = [None] * len(model.layers)
        self.v = [None] * len(model.layers)
        self.pos = 0


def linear(x, w, b=None):
    y = x @ w.T
    return y if b is None else y + b


def moe_ffn(m, h, act):
    """The sparse MoE block's forward as transformers writes it: routing_weights = softmax(router_logits) over
    all experts, torch.topk(routing_weights, top_k) (ties: the lower index here), divided by their sum when
    norm_topk; the sum of the chosen experts' down(act(gate(h)) * up(h)) times their weights; plus, in
    Qwen2-MoE, sigmoid(shared_expert_gate(h)) * shared_expert(h). Token by token, in float64."""
    logits = linear(h, m.router)
    p = np.exp(logits - logits.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    out = np.zeros_like(h)
    for t in range(h.shape[0]):
        top = np.argsort(-p[t], kind="stable")[: m.top_k]
        w = p[t, top] / (p[t, top].sum() if m.norm_topk else 1.0)
        for e, we in zip(top, w):
            out[t] += we * linear(act(linear(h[t], m.gate[e])) * linear(h[t], m.up[e]), m.down[e])
    if m.shared is not None:
        g, u, d = m.shared
        s = linear(act(linear(h, g)) * linear(h, u), d)
        out += s / (1.0 + np.exp(-linear(h, m.shared_gate)))
    return out


def forward(model, tokens, cache=None):
    """Logits [n, vocab] (float64) for `tokens` read after the cache's positions (a fresh cache if None)."""
    if cache is None:
        cache = KVCache(model)
    tokens = np.asarray(tokens, dtype=np.int64)
    n, hd = len(tokens), model.head_dim
    if n == 0:
        return np.zeros((0, model.vocab_size))
    if tokens.min() < 0 or tokens.max() >= model.tok_embd.shape[0]:
        raise ValueError(f"token id out of range [0, {model.tok_embd.shape[0]})")
    p0 = cache.pos
    positions = np.arange(p0, p0 + n)
    x = model.tok_embd[tokens].astype(np.float64) * model.embd_scale
    act = {"silu": silu, "gelu_tanh": gelu_tanh}[model.act]
    scale = 1.0 / math.sqrt(model.attn_scalar or hd)
    for li, L in enumerate(model.layers):
        inv_freq = model.inv_freq_local() if L.rope_local else model.inv_freq()
        n_heads, n_kv = L.wq.shape[0] // hd, L.wk.shape[0] // hd
        h = rms_norm(x, L.attn_norm, model.norm_eps)
        q = linear(h, L.wq, L.bq).reshape(n, n_heads, hd).transpose(1, 0, 2)
        k = linear(h, L.wk, L.bk).reshape(n, n_kv, hd).transpose(1, 0, 2)
        v = linear(h, L.wv, L.bv).reshape(n, n_kv, hd).transpose(1, 0, 2)
        if L.q_norm is not None:
            q = rms_norm(q, L.q_norm, model.norm_eps)
        if L.k_norm is not None:
            k = rms_norm(k, L.k_norm, model.norm_eps)
        q = apply_rope(q, positions, inv_freq, model.rope_interleaved)
        k = apply_rope(k, positions, inv_freq, model.rope_interleaved)
        if model.longrope is not None and not L.rope_local:  # Phi3RotaryEmbedding: cos, sin *= attention_scaling
            q, k = q * model.longrope["attn"], k * model.longrope["attn"]
        if cache.k[li] is not None:
            k = np.concatenate([cache.k[li], k], axis=1)
            v = np.concatenate([cache.v[li], v], axis=1)
        cache.k[li], cache.v[li] = k, v
        total = p0 + n
        keys = np.arange(total)
        allowed = keys[None, :] <= positions[:, None]
        if L.window > 0:
            allowed &= keys[None, :] > positions[:, None] - L.window
        group = n_heads // n_kv
        kk = np.repeat(k, group, axis=0)  # repeat_kv: query head h uses kv head h // group
        vv = np.repeat(v, group, axis=0)
        scores = q @ kk.transpose(0, 2, 1) * scale  # [heads, n, total]
        if model.attn_softcap:
            scores = model.attn_softcap * np.tanh(scores / model.attn_softcap)
        scores = np.where(allowed[None], scores, -np.inf)
        scores -= scores.max(axis=-1, keepdims=True)
        p = np.exp(scores)
        p /= p.sum(axis=-1, keepdims=True)
        att = (p @ vv).transpose(1, 0, 2).reshape(n, n_heads * hd)
        o = linear(att, L.wo, L.bo)
        x = x + (o if L.attn_post_norm is None else rms_norm(o, L.attn_post_norm, model.norm_eps))
        h = rms_norm(x, L.ffn_norm, model.norm_eps)
        if L.moe is not None:
            f = moe_ffn(L.moe, h, act)
        else:
            f = linear(act(linear(h, L.w_gate)) * linear(h, L.w_up), L.w_down)
        x = x + (f if L.ffn_post_norm is None else rms_norm(f, L.ffn_post_norm, model.norm_eps))
    cache.pos += n
    logits = linear(rms_norm(x, model.out_norm, model.norm_eps), model.output)
    if model.final_softcap:
        logits = model.final_softcap * np.tanh(logits / model.final_softcap)
    return logits


def greedy(model, prompt, n_new):
    """Prefills the prompt, then appends the argmax token n_new times. Returns (ids, margins): margins[i] is
    the gap between the best and second-best logit when choosing ids[i] (how robust the choice is)."""
    cache = KVCache(model)
    logits = forward(model, prompt, cache)[-1]
    ids, margins = [], []
    for _ in range(n_new):
        top2 = np.partition(logits, -2)[-2:]
        nxt = int(np.argmax(logits))
        ids.append(nxt)
        margins.append(float(abs(top2[1] - top2[0])))
        logits = forward(model, [nxt], cache)[-1]
    return ids, margins


def as_halves(model):
    """The same model with RoPE on halves: within each head, the q/k rows (and biases) of interleaved pair
    (2i, 2i+1) move to rows (i, i + rope_dims/2) (the unrotated rest stays), as Hugging Face's llama
    conversion permutes them. Logits are unchanged; checkpoints of either convention can then be compared
    weight for weight."""
    if not model.rope_interleaved:
        return model
    hd, rd = model.head_dim, model.rot_dims
    order = np.concatenate([np.arange(0, rd, 2), np.arange(1, rd, 2), np.arange(rd, hd)])

    def permute(w):
        if w is None:
            return None
        heads = w.shape[0] // hd
        return w[(np.arange(heads)[:, None] * hd + order[None, :]).ravel()]

    layers = [replace(L, wq=permute(L.wq), wk=permute(L.wk), bq=permute(L.bq), bk=permute(L.bk),
                      q_norm=permute(L.q_norm), k_norm=permute(L.k_norm)) for L in model.layers]
    return replace(model, rope_interleaved=False, layers=layers)


def weight_difference(src, dst):
    """None when dst holds exactly src's weights and equivalent hyper-parameters, else what differs."""
    a, b = as_halves(src), as_halves(dst)
    if a.head_dim != b.head_dim:
        return f"head_dim {b.head_dim} != {a.head_dim}"
    if a.rot_dims != b.rot_dims:
        return f"RoPE dims {b.rot_dims} != {a.rot_dims}"
    if not np.isclose(a.norm_eps, b.norm_eps, rtol=1e-6, atol=0):
        return f"norm epsilon {b.norm_eps} != {a.norm_eps}"
    if not np.allclose(a.inv_freq(), b.inv_freq(), rtol=1e-6, atol=0):
        return "RoPE frequencies differ (theta or scaling)"
    if (a.longrope is None) != (b.longrope is None):
        return "longrope scaling on one side only"
    if a.longrope is not None:
        la, lb = a.longrope, b.longrope
        if la["original"] != lb["original"] or not np.isclose(la["attn"], lb["attn"], rtol=1e-6, atol=0) or any(
                not np.allclose(la[k], lb[k], rtol=1e-6, atol=0) for k in ("short", "long")):
            return "longrope factors, original context or attention factor differ"
    for f in ["act", "embd_scale", "attn_scalar", "rope_local_theta", "attn_softcap", "final_softcap"]:
        if getattr(a, f) != getattr(b, f):
            return f"{f} {getattr(b, f)} != {getattr(a, f)}"
    if len(a.layers) != len(b.layers):
        return f"{len(b.layers)} layers != {len(a.layers)}"
    pairs = [("token embedding", a.tok_embd, b.tok_embd), ("output norm", a.out_norm, b.out_norm),
             ("output", a.output, b.output)]
    for i, (la, lb) in enumerate(zip(a.layers, b.layers)):
        if la.window != lb.window or la.rope_local != lb.rope_local:
            return f"layer {i}: attention window {lb.window} != {la.window} or RoPE kind differs"
        for f in ["attn_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w_gate", "w_up", "w_down", "bq", "bk", "bv",
                  "bo", "q_norm", "k_norm", "attn_post_norm", "ffn_post_norm"]:
            pairs.append((f"layer {i} {f}", getattr(la, f), getattr(lb, f)))
        ma, mb = la.moe, lb.moe
        if (ma is None) != (mb is None):
            return f"layer {i}: experts {'missing' if mb is None else 'unexpected'}"
        if ma is not None:
            if (ma.top_k, ma.norm_topk, len(ma.gate)) != (mb.top_k, mb.norm_topk, len(mb.gate)):
                return f"layer {i}: routing (top-k, renormalisation, experts) differs"
            pairs.append((f"layer {i} router", ma.router, mb.router))
            for e in range(len(ma.gate)):
                for f in ["gate", "up", "down"]:
                    pairs.append((f"layer {i} expert {e} {f}", getattr(ma, f)[e], getattr(mb, f)[e]))
            for k, (x, y) in enumerate(zip(ma.shared or (None,) * 3, mb.shared or (None,) * 3)):
                pairs.append((f"layer {i} shared expert {k}", x, y))
            pairs.append((f"layer {i} shared expert gate", ma.shared_gate, mb.shared_gate))
    for what, x, y in pairs:
        if (x is None) != (y is None):
            return f"{what}: {'missing' if y is None else 'unexpected'}"
        if x is not None and (x.shape != y.shape or not np.array_equal(x, y)):
            return f"{what}: values differ" if x.shape == y.shape else f"{what}: shape {y.shape} != {x.shape}"
    return None


# ---------------------------------------------------------------------------------------------- loaders


def load_llama2c(path):
    """llama2.c checkpoint: 7 int32 header, then fp32 arrays (layout in ../shared/README.md)."""
    with open(path, "rb") as fp:
        dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = struct.unpack("<7i", fp.read(28))
    shared = vocab > 0
    vocab = abs(vocab)
    hd = dim // n_heads
    f = np.fromfile(path, dtype="<f4", offset=28)
    off = 0

    def take(*shape):
        nonlocal off
        count = int(np.prod(shape))
        if off + count > f.size:
            raise ValueError(f"{path}: truncated llama2.c checkpoint")
        a = f[off : off + count].reshape(shape).astype(np.float64)
        off += count
        return a

    tok = take(vocab, dim)
    attn_norm = take(n_layers, dim)
    wq = take(n_layers, n_heads * hd, dim)
    wk = take(n_layers, n_kv * hd, dim)
    wv = take(n_layers, n_kv * hd, dim)
    wo = take(n_layers, dim, n_heads * hd)
    ffn_norm = take(n_layers, dim)
    w1 = take(n_layers, hidden, dim)
    w2 = take(n_layers, dim, hidden)
    w3 = take(n_layers, hidden, dim)
    out_norm = take(dim)
    take(seq_len, hd // 2)  # legacy RoPE tables (cos, sin), unused
    take(seq_len, hd // 2)
    output = tok if shared else take(vocab, dim)
    layers = [
        Layer(attn_norm[l], wq[l], wk[l], wv[l], wo[l], ffn_norm[l], w1[l], w3[l], w2[l]) for l in range(n_layers)
    ]
    return Model("llama", hd, 1e-5, 10000.0, True, tok, out_norm, output, layers)


def _hf_tensors(dirpath):
    """All tensors of a HF directory (model.safetensors, or the shards named by model.safetensors.index.json)
    as float64."""
    index = os.path.join(dirpath, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    out = {}
    for name in files:
        for k, (dt, arr) in safetensors_np.load(os.path.join(dirpath, name)).items():
            if k in out:
                raise ValueError(f"{dirpath}: tensor {k} appears in two shards")
            out[k] = safetensors_np.to_f64(dt, arr)
    return out


def hf_rope(cfg):
    """(theta, llama3 parameters or None) as transformers resolves them in every config layout it has written
    (configuration_utils / modeling_rope_utils.convert_rope_params_to_dict and standardize_rope_params): a
    non-empty rope_scaling (v4) replaces rope_parameters (v5); within it rope_theta, else the top-level
    rope_theta, else 10000; rope_type, else the older "type", else "default"; llama3's original context
    defaults to max_position_embeddings."""
    p = dict(cfg.get("rope_scaling") or cfg.get("rope_parameters") or {})
    nested = [p[t] for t in dict.fromkeys(cfg.get("layer_types") or []) if isinstance(p.get(t), dict)]
    if nested:
        if any(n != nested[0] for n in nested):
            raise NotImplementedError("RoPE parameters that differ between layer types")
        p = dict(nested[0])
    theta = p.get("rope_theta", cfg.get("rope_theta", 10000.0))
    rope_type = p.get("rope_type", p.get("type", "default"))
    if rope_type == "default":
        return theta, None
    if rope_type in ("longrope", "su"):  # _compute_longrope_parameters
        original = p.get("original_max_position_embeddings", cfg.get("original_max_position_embeddings"))
        if original is not None:  # Phi-3: the ratio of the two contexts, not `factor`
            factor = cfg["max_position_embeddings"] / original
        else:
            original, factor = cfg["max_position_embeddings"], p.get("factor", 1.0)
        attn = p.get("attention_factor")
        if attn is None:
            attn = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(original))
        return theta, {"rope_type": "longrope", "short": np.asarray(p["short_factor"], dtype=np.float64),
                       "long": np.asarray(p["long_factor"], dtype=np.float64), "original": int(original),
                       "attn": float(attn)}
    if rope_type != "llama3":
        raise NotImplementedError(f"rope_type {rope_type}")
    p.setdefault("original_max_position_embeddings", cfg["max_position_embeddings"])
    return theta, p


def load_hf(dirpath):
    """A Hugging Face LlamaForCausalLM / MistralForCausalLM / Qwen2ForCausalLM directory, with the config
    defaults of the respective transformers Config classes."""
    with open(os.path.join(dirpath, "config.json")) as f:
        cfg = json.load(f)
    arch = cfg["model_type"]
    if arch not in ("llama", "mistral", "qwen2", "qwen3", "gemma3_text", "phi3", "gemma2", "mixtral", "qwen2_moe",
                    "qwen3_moe"):
        raise NotImplementedError(f"model_type {arch}")
    gemma = arch in ("gemma3_text", "gemma2")
    gemma2 = arch == "gemma2"  # Gemma2Config: every 2nd layer global, one rotary embedding, caps 50 / 30
    t = _hf_tensors(dirpath)
    dim, n_heads = cfg["hidden_size"], cfg["num_attention_heads"]
    hd = cfg.get("head_dim") or dim // n_heads
    n_layers = cfg["num_hidden_layers"]
    eps = cfg.get("rms_norm_eps", 1e-6)
    if gemma:
        if cfg.get("hidden_activation", "gelu_pytorch_tanh") != "gelu_pytorch_tanh":
            raise NotImplementedError(f"hidden_activation {cfg['hidden_activation']}")
    elif cfg.get("hidden_act", "silu") not in ("silu", "swish"):  # activations.py: both are SiLU
        raise NotImplementedError(f"hidden_act {cfg['hidden_act']}")
    theta, rs = hf_rope(cfg)
    # _compute_default_rope_parameters: dim = int(head_dim * partial_rotary_factor), from either place
    params = cfg.get("rope_scaling") or cfg.get("rope_parameters") or {}
    rope_dims = int(hd * params.get("partial_rotary_factor", cfg.get("partial_rotary_factor", 1.0)))
    # which layers slide: Mistral all (sliding_window defaults to 4096, null is none); Qwen2 only with
    # use_sliding_window, on the layers layer_types names, else those from max_window_layers on
    window, sliding = 0, [False] * n_layers
    if arch == "mistral":
        window = cfg.get("sliding_window", 4096) or 0
        sliding = [True] * n_layers
    elif arch in ("phi3", "mixtral"):  # Phi3Model / MixtralConfig: every layer unless sliding_window is None
        window = cfg.get("sliding_window") or 0
        sliding = [True] * n_layers
    elif arch in ("qwen2", "qwen3", "qwen2_moe", "qwen3_moe") and cfg.get("use_sliding_window", False):
        window = cfg.get("sliding_window", 4096) or 0
        types = cfg.get("layer_types") or ["sliding_attention" if l >= cfg.get("max_window_layers", 28)
                                           else "full_attention" for l in range(n_layers)]
        sliding = [t == "sliding_attention" for t in types]
    elif gemma:  # Gemma3TextConfig: layer_types, else every sliding_window_pattern-th layer global
        window = cfg.get("sliding_window", 4096) or 0
        pattern = cfg.get("sliding_window_pattern", 2 if gemma2 else 6)
        types = cfg.get("layer_types") or ["sliding_attention" if (l + 1) % pattern else "full_attention"
                                           for l in range(n_layers)]
        sliding = [t == "sliding_attention" for t in types]
    norm_add = 1.0 if gemma else 0.0  # Gemma3RMSNorm: x * (1 + w)
    used = set()

    def get(name, optional=False):
        if name not in t:
            if optional:
                return None
            raise KeyError(f"{dirpath}: missing tensor {name}")
        used.add(name)
        return t[name]

    def norm(name, optional=False):  # Gemma3RMSNorm: (1.0 + self.weight.float()), the sum in float32
        w = get(name, optional)
        if w is None or not norm_add:
            return w
        return (w.astype(np.float32) + np.float32(norm_add)).astype(np.float64)

    def hf_moe(p):  # MixtralSparseMoeBlock (block_sparse_moe, w1/w3/w2) or Qwen*MoeSparseMoeBlock (mlp)
        if arch not in ("mixtral", "qwen2_moe", "qwen3_moe"):
            return None
        if arch != "mixtral" and (cfg.get("decoder_sparse_step", 1) != 1 or cfg.get("mlp_only_layers")):
            raise NotImplementedError("dense layers among the sparse ones")
        n = cfg["num_local_experts" if arch == "mixtral" else "num_experts"]
        pre, names = ((p + "block_sparse_moe.", ("w1", "w3", "w2")) if arch == "mixtral"
                      else (p + "mlp.", ("gate_proj", "up_proj", "down_proj")))
        ex = [[get(f"{pre}experts.{e}.{nm}.weight") for e in range(n)] for nm in names]
        shared = shared_gate = None
        if arch == "qwen2_moe":  # Qwen2MoeSparseMoeBlock always has the shared expert
            shared = tuple(get(f"{pre}shared_expert.{nm}.weight") for nm in names)
            shared_gate = get(f"{pre}shared_expert_gate.weight")
        return Moe(get(pre + "gate.weight"), ex[0], ex[1], ex[2], cfg["num_experts_per_tok"],
                   True if arch == "mixtral" else cfg.get("norm_topk_prob", False), shared, shared_gate)

    def split_phi3(p):
        """Phi3Attention / Phi3MLP: qkv_proj rows are q (heads x head_dim), k, v (kv heads x head_dim);
        gate_up_proj.chunk(2) gives gate, then up."""
        if arch != "phi3":
            return
        qkv = get(p + "self_attn.qkv_proj.weight")
        nq, nkv = n_heads * hd, cfg.get("num_key_value_heads", n_heads) * hd
        if qkv.shape[0] != nq + 2 * nkv:
            raise ValueError(f"{p}qkv_proj has {qkv.shape[0]} rows, expected {nq + 2 * nkv}")
        t[p + "self_attn.q_proj.weight"], t[p + "self_attn.k_proj.weight"], t[p + "self_attn.v_proj.weight"] = (
            qkv[:nq], qkv[nq:nq + nkv], qkv[nq + nkv:])
        gate, up = np.split(get(p + "mlp.gate_up_proj.weight"), 2)
        t[p + "mlp.gate_proj.weight"], t[p + "mlp.up_proj.weight"] = gate, up
        for x in ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "mlp.gate_proj", "mlp.up_proj"]:
            used.add(p + x + ".weight")

    layers = []
    for l in range(n_layers):
        p = f"model.layers.{l}."
        moe = hf_moe(p)
        split_phi3(p)
        layers.append(
            Layer(
                moe=moe,
                attn_norm=norm(p + "input_layernorm.weight"),
                wq=get(p + "self_attn.q_proj.weight"),
                wk=get(p + "self_attn.k_proj.weight"),
                wv=get(p + "self_attn.v_proj.weight"),
                wo=get(p + "self_attn.o_proj.weight"),
                ffn_norm=norm(p + ("pre_feedforward_layernorm.weight" if gemma else "post_attention_layernorm.weight")),
                attn_post_norm=norm(p + "post_attention_layernorm.weight") if gemma else None,
                ffn_post_norm=norm(p + "post_feedforward_layernorm.weight") if gemma else None,
                w_gate=None if moe else get(p + "mlp.gate_proj.weight"),
                w_up=None if moe else get(p + "mlp.up_proj.weight"),
                w_down=None if moe else get(p + "mlp.down_proj.weight"),
                bq=get(p + "self_attn.q_proj.bias", True),
                bk=get(p + "self_attn.k_proj.bias", True),
                bv=get(p + "self_attn.v_proj.bias", True),
                bo=get(p + "self_attn.o_proj.bias", True),
                q_norm=norm(p + "self_attn.q_norm.weight", arch not in ("qwen3", "qwen3_moe", "gemma3_text")),
                k_norm=norm(p + "self_attn.k_norm.weight", arch not in ("qwen3", "qwen3_moe", "gemma3_text")),
                window=window if sliding[l] else 0,
                rope_local=gemma and sliding[l],
            )
        )
        used.add(p + "self_attn.rotary_emb.inv_freq")  # stored by old checkpoints, recomputed here
    tok = get("model.embed_tokens.weight")
    tied = cfg.get("tie_word_embeddings", gemma)  # Gemma3TextConfig ties by default
    output = tok if tied else get("lm_head.weight")
    if tied:
        used.add("lm_head.weight")
    out_norm = norm("model.norm.weight")
    unused = set(t) - used
    if unused:
        raise ValueError(f"{dirpath}: tensors the reference does not understand: {sorted(unused)}")
    extra = {}
    if gemma:
        extra = dict(act="gelu_tanh", embd_scale=float(np.float32(math.sqrt(dim))),
                     attn_softcap=cfg.get("attn_logit_softcapping", 50.0 if gemma2 else None),
                     final_softcap=cfg.get("final_logit_softcapping", 30.0 if gemma2 else None),
                     attn_scalar=float(cfg.get("query_pre_attn_scalar", 256)),
                     rope_local_theta=theta if gemma2 else float(cfg.get("rope_local_base_freq", 10000.0)))
    if rs is not None and rs.get("rope_type") == "longrope":
        extra.update(longrope=rs, rope_ctx=cfg["max_position_embeddings"])  # squeeze's default n_ctx
        rs = None
    return Model("gemma3" if arch == "gemma3_text" else arch, hd, eps, theta, False, tok, out_norm, output, layers, rope_scaling=rs,
                 rope_dims=rope_dims, **extra)


def load_gguf(path):
    """A GGUF file through the gguf package; every tensor dequantized to its exact values."""
    import gguf

    r = gguf.GGUFReader(path)

    def field(key, default=None):
        f = r.fields.get(key)
        return default if f is None else f.contents()

    arch = field("general.architecture")
    if arch not in ("llama", "qwen2", "qwen3", "gemma3", "phi3", "gemma2", "qwen2moe", "qwen3moe"):
        raise NotImplementedError(f"GGUF architecture {arch}")
    gemma = arch in ("gemma3", "gemma2")
    period = 2 if arch == "gemma2" else 6  # llama.cpp's swa pattern; gemma2's local layers use freq_base
    t = {}
    for ti in r.tensors:
        shape = tuple(int(s) for s in reversed(ti.shape))  # ggml lists the innermost dimension first
        t[ti.name] = np.asarray(gguf.quants.dequantize(ti.data, ti.tensor_type), dtype=np.float64).reshape(shape)
    n_layers = field(f"{arch}.block_count")
    dim = field(f"{arch}.embedding_length")
    n_heads = field(f"{arch}.attention.head_count")
    if isinstance(n_heads, list):  # one value per layer (a pruned model): llama.cpp sizes heads from layer 0
        n_heads = n_heads[0]
    hd = field(f"{arch}.attention.key_length", dim // n_heads)
    eps = float(np.float32(field(f"{arch}.attention.layer_norm_rms_epsilon")))
    theta = float(np.float32(field(f"{arch}.rope.freq_base", 10000.0)))
    window = field(f"{arch}.attention.sliding_window", 0) or 0
    used = set()
    if arch == "phi3":  # llama.cpp (llm_build_phi3): attn_qkv rows are q, k, v; ffn_up is [gate; up] (swiglu)
        n_kv = field(f"{arch}.attention.head_count_kv", n_heads)
        for l in range(n_layers):
            p = f"blk.{l}."
            qkv, nq, nkv = t.pop(p + "attn_qkv.weight"), n_heads * hd, n_kv * hd
            if qkv.shape[0] != nq + 2 * nkv:
                raise ValueError(f"{path}: {p}attn_qkv has {qkv.shape[0]} rows, expected {nq + 2 * nkv}")
            t[p + "attn_q.weight"], t[p + "attn_k.weight"], t[p + "attn_v.weight"] = (
                qkv[:nq], qkv[nq:nq + nkv], qkv[nq + nkv:])
            t[p + "ffn_gate.weight"], t[p + "ffn_up.weight"] = np.split(t[p + "ffn_up.weight"], 2)

    def get(name, optional=False):
        if name not in t and name + "_a" in t and name + "_b" in t:
            # squeeze's low-rank weights (docs/formats.md): W = B A, multiplied out in float64
            used.update((name + "_a", name + "_b"))
            return t[name + "_b"] @ t[name + "_a"]
        if name not in t:
            if optional:
                return None
            raise KeyError(f"{path}: missing tensor {name}")
        used.add(name)
        return t[name]

    n_experts = field(f"{arch}.expert_count", 0)
    # llama.cpp (llama-model.cpp build_moe_ffn calls): Mixtral and Qwen3-MoE renormalise the top-k weights,
    # Qwen2-MoE does not, unless {arch}.expert_weights_norm says
    norm_topk = field(f"{arch}.expert_weights_norm", arch != "qwen2moe")

    def gguf_moe(p):
        if not n_experts:
            return None
        ex = [get(p + f"ffn_{k}_exps.weight") for k in ("gate", "up", "down")]
        shared = shared_gate = None
        if p + "ffn_gate_shexp.weight" in t:
            shared = tuple(get(p + f"ffn_{k}_shexp.weight") for k in ("gate", "up", "down"))
            shared_gate = get(p + "ffn_gate_inp_shexp.weight").reshape(1, -1)
        return Moe(get(p + "ffn_gate_inp.weight"), list(ex[0]), list(ex[1]), list(ex[2]),
                   field(f"{arch}.expert_used_count"), bool(norm_topk), shared, shared_gate)

    layers = []
    for l in range(n_layers):
        p = f"blk.{l}."
        moe = gguf_moe(p)
        layers.append(
            Layer(
                moe=moe,
                attn_norm=get(p + "attn_norm.weight"),
                wq=get(p + "attn_q.weight"),
                wk=get(p + "attn_k.weight"),
                wv=get(p + "attn_v.weight"),
                wo=get(p + "attn_output.weight"),
                ffn_norm=get(p + "ffn_norm.weight"),
                w_gate=None if moe else get(p + "ffn_gate.weight"),
                w_up=None if moe else get(p + "ffn_up.weight"),
                w_down=None if moe else get(p + "ffn_down.weight"),
                bq=get(p + "attn_q.bias", True),
                bk=get(p + "attn_k.bias", True),
                bv=get(p + "attn_v.bias", True),
                bo=get(p + "attn_output.bias", True),
                q_norm=get(p + "attn_q_norm.weight", arch not in ("qwen3", "qwen3moe", "gemma3")),
                k_norm=get(p + "attn_k_norm.weight", arch not in ("qwen3", "qwen3moe", "gemma3")),
                attn_post_norm=get(p + "post_attention_norm.weight") if gemma else None,
                ffn_post_norm=get(p + "post_ffw_norm.weight") if gemma else None,
                # llama.cpp (llama-model.cpp, LLM_ARCH_GEMMA3): every 6th layer global, the others slide
                window=window if not gemma or (l + 1) % period else 0,
                rope_local=gemma and (l + 1) % period != 0,
            )
        )
    tok = get("token_embd.weight")
    output = get("output.weight", True)
    if output is None:
        output = tok
    freq_factors = get("rope_freqs.weight", True)
    longrope = None
    if "rope_factors_long.weight" in t:  # llama.cpp: attn_factor defaults to 1
        longrope = {"short": get("rope_factors_short.weight"), "long": get("rope_factors_long.weight"),
                    "original": field(f"{arch}.rope.scaling.original_context_length"),
                    "attn": float(np.float32(field(f"{arch}.rope.scaling.attn_factor", 1.0)))}
    out_norm = get("output_norm.weight")
    unused = set(t) - used
    if unused:
        raise ValueError(f"{path}: tensors the reference does not understand: {sorted(unused)}")
    return Model(
        arch,
        hd,
        eps,
        theta,
        arch == "llama",
        tok,
        out_norm,
        output,
        layers,
        rope_freq_factors=freq_factors,
        longrope=longrope,
        rope_ctx=field(f"{arch}.context_length"),
        rope_dims=field(f"{arch}.rope.dimension_count", hd),  # llama.cpp's n_rot
        **(dict(act="gelu_tanh", embd_scale=float(np.float32(math.sqrt(dim))), attn_scalar=float(hd),
                rope_local_theta=theta if arch == "gemma2" else 10000.0, attn_softcap=field(f"{arch}.attn_logit_softcapping", 50.0 if arch == "gemma2" else None),
                final_softcap=field(f"{arch}.final_logit_softcapping", 30.0 if arch == "gemma2" else None)) if gemma else {}),
    )


def load(path):
    """Any supported checkpoint: a HF directory, a GGUF file, or a llama2.c .bin."""
    if os.path.isdir(path):
        return load_hf(path)
    with open(path, "rb") as f:
        magic = f.read(4)
    return load_gguf(path) if magic == b"GGUF" else load_llama2c(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--tokens", required=True, help="space-separated token ids")
    ap.add_argument("-o", "--output", help="write float32 logits [n][vocab] here")
    ap.add_argument("--greedy", type=int, default=0, help="print this many greedy continuation ids")
    a = ap.parse_args()
    model = load(a.model)
    tokens = [int(x) for x in a.tokens.split()]
    if a.output:
        forward(model, tokens).astype("<f4").tofile(a.output)
    if a.greedy:
        ids, _ = greedy(model, tokens, a.greedy)
        print(" ".join(map(str, ids)))


if __name__ == "__main__":
    main()
