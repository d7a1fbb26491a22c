"""squeeze's forward pass on tiny random Hugging Face checkpoints vs the float64 reference.

For every variant in tiny_models.VARIANTS (MHA fp32, GQA fp16, tied bf16, llama3 rope scaling, Mistral
sliding window, Qwen2 biases, head_dim != hidden/heads, sharded safetensors, Qwen3, Gemma 3, Phi-3 with fused
projections, a window and LongRoPE, Phi-4-mini's partial rotary, the mixture-of-experts Mixtral, Qwen2-MoE and Qwen3-MoE), `squeeze logits`
in three modes (prefill: one call; decode: one token per call through the KV cache; chunks:3; for MoE prefill
runs each expert once on all its tokens, decode routes token by token) must match the reference run on the same
stored weights (fp16/bf16 upcast exactly, so only squeeze's fp32 arithmetic differs):
    max|diff| / max|ref| <= 1e-4, and the same argmax at every position.
Before that, the reference itself is shown to be sensitive to each variant's feature (dropping the window,
the biases, the rope scaling, or using the other RoPE pairing changes its logits by far more than the bound),
so a pass means the engine implements the feature. LongRoPE is also run in a context of its original length
(--ctx 16), where the short factors apply; partial rotary also through `run --spec ngram|self|tree` (the same
greedy text as plain decoding). `--greedy 40` must also continue the 24 tokens exactly as
the reference does (near-ties within the logit tolerance excepted, see engine_harness.Checks.greedy).
Three llama variants are also written as llama2.c checkpoints (interleaved q/k rows; an unshared classifier for
the untied one) and checked the same way.
"""

import dataclasses
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine_harness as H  # noqa: E402
import reference as R  # noqa: E402
import tiny_models  # noqa: E402

TOL = 1e-4
N_TOKENS = 24  # > the Mistral window (5), so the window really cuts attention
MODES = ["prefill", "decode", "chunks:3"]
N_GREEDY = 40  # generation runs the KV cache to position 64, far past the window
# Also written as llama2.c checkpoints: an unshared classifier (negative vocab_size), and GQA with a shared one.
LLAMA2C = ["llama_mha_f32", "llama_gqa_f16", "llama_tied_bf16"]


def with_layers(model, **changes):
    return dataclasses.replace(model, layers=[dataclasses.replace(L, **changes) for L in model.layers])


def ablations(name, model):
    """(what, altered reference model) pairs: each must change the logits well beyond TOL."""
    if name == "mistral_swa":
        return [("full attention instead of the sliding window", with_layers(model, window=0))]
    if name == "qwen2_bias":
        return [
            ("q/k/v biases dropped", with_layers(model, bq=None, bk=None, bv=None)),
            ("sliding_window applied although use_sliding_window is false", with_layers(model, window=4)),
        ]
    if name == "gemma2_softcap":
        return [("attention soft-capping dropped", dataclasses.replace(model, attn_softcap=None)),
                ("final soft-capping dropped", dataclasses.replace(model, final_softcap=None)),
                ("full attention on the sliding layers", with_layers(model, window=0)),
                ("post-norms dropped", with_layers(model, attn_post_norm=None, ffn_post_norm=None))]
    if name == "gemma3_softcap":
        return [("attention soft-capping dropped", dataclasses.replace(model, attn_softcap=None)),
                ("final soft-capping dropped", dataclasses.replace(model, final_softcap=None))]
    if name.startswith("gemma3"):
        return [
            ("SwiGLU instead of GeGLU", dataclasses.replace(model, act="silu")),
            ("embeddings not scaled", dataclasses.replace(model, embd_scale=1.0)),
            ("post-norms dropped", with_layers(model, attn_post_norm=None, ffn_post_norm=None)),
            ("full attention on the sliding layers", with_layers(model, window=0)),
            ("the global RoPE base on the sliding layers", with_layers(model, rope_local=False)),
            ("norm weights w instead of 1 + w", with_layers(model, attn_norm=model.layers[0].attn_norm - 1)),
        ] + ([("scores / sqrt(head_dim) instead of query_pre_attn_scalar",
               dataclasses.replace(model, attn_scalar=None))] if model.attn_scalar != model.head_dim else [])
    if name.startswith("qwen3"):
        return [("q/k norms dropped", with_layers(model, q_norm=None, k_norm=None))]
    if name in tiny_models.VARIANTS and tiny_models.VARIANTS[name]["arch"] in tiny_models.MOE:
        m = model.layers[0].moe

        def moe(**changes):
            return dataclasses.replace(model, layers=[dataclasses.replace(L, moe=dataclasses.replace(L.moe, **changes))
                                                      for L in model.layers])
        out = [(f"top-{m.top_k} weights {'not ' if m.norm_topk else ''}renormalised", moe(norm_topk=not m.norm_topk)),
               (f"top-{m.top_k + 1} instead of top-{m.top_k}", moe(top_k=m.top_k + 1))]
        if m.shared is not None:
            out.append(("shared expert dropped", moe(shared=None)))
            out.append(("shared expert ungated", moe(shared_gate=np.full_like(m.shared_gate, 0.0))))
        return out
    if name.startswith(("phi3", "phi4")):  # the split of the fused tensors: k and v rows swapped, gate and up swapped
        def swapped(L):
            return dataclasses.replace(L, wk=L.wv, wv=L.wk, w_gate=L.w_up, w_up=L.w_gate)
        alt = [("k/v rows of qkv_proj swapped, gate/up halves swapped",
                dataclasses.replace(model, layers=[swapped(L) for L in model.layers]))]
        if model.longrope is not None:
            alt += [("short LongRoPE factors instead of the long ones", dataclasses.replace(model, rope_ctx=16)),
                    ("LongRoPE attention factor ignored",
                     dataclasses.replace(model, longrope={**model.longrope, "attn": 1.0}))]
        if model.rot_dims < model.head_dim:  # the unrotated rest rotated too, with factors of 1
            pad = np.ones((model.head_dim - model.rot_dims) // 2)
            lr = model.longrope
            alt.append((f"RoPE on whole heads instead of the first {model.rot_dims} dims",
                        dataclasses.replace(model, rope_dims=None, longrope=lr and {
                            **lr, "short": np.concatenate([lr["short"], pad]),
                            "long": np.concatenate([lr["long"], pad])})))
        return alt + ([("full attention instead of the sliding window", with_layers(model, window=0))]
                      if model.layers[0].window else [])
    if name == "llama3_rope":
        return [("llama3 rope scaling ignored", dataclasses.replace(model, rope_scaling=None))]
    if name == "llama_mha_f32":
        return [("RoPE on interleaved pairs instead of halves", dataclasses.replace(model, rope_interleaved=True))]
    return []


def main():
    checks = H.Checks(f"forward pass on tiny HF checkpoints vs float64 reference (tolerance {TOL:g} relative)")
    root = os.path.join(H.SQ_WORK, "tiny")
    for name in tiny_models.VARIANTS:
        path = tiny_models.generate(name, root)
        model = R.load(path)
        rng = np.random.default_rng(7)
        tokens = [1] + [int(t) for t in rng.integers(3, model.vocab_size, N_TOKENS - 1)]
        ref = R.forward(model, tokens)
        for what, alt in ablations(name, model):
            r = H.rel_diff(R.forward(alt, tokens), ref)
            checks.check(r > 100 * TOL, f"{name}: reference sensitivity: {what}", f"changes logits by {r:.3g}")
        for mode in MODES:
            try:
                got = H.engine_logits(path, tokens, mode, model.vocab_size)
            except H.EngineError as e:
                checks.fail(f"{name} --mode {mode}", e)
                continue
            checks.close(f"{name} --mode {mode} vs reference", got, ref, TOL)
        ref_ids, _ = R.greedy(model, tokens, N_GREEDY)
        try:
            ids = H.engine_greedy(path, tokens, N_GREEDY)
            checks.greedy(f"{name} --greedy {N_GREEDY} vs the reference continuation", model, tokens, ids, ref_ids,
                          TOL)
        except H.EngineError as e:
            checks.fail(f"{name} --greedy {N_GREEDY}", e)
    # LongRoPE's short factors: a context no longer than the original (--ctx 16), as transformers uses them on
    # any call of at most 16 positions
    path = os.path.join(root, "phi3_longrope")
    model = dataclasses.replace(R.load(path), rope_ctx=16)
    tokens = [1] + [int(t) for t in np.random.default_rng(9).integers(3, model.vocab_size, 11)]
    ref = R.forward(model, tokens)
    r = H.rel_diff(R.forward(dataclasses.replace(model, rope_ctx=17), tokens), ref)
    checks.check(r > 100 * TOL, "phi3_longrope: reference sensitivity: long factors in a context of 16", f"{r:.3g}")
    for mode in MODES:
        try:
            got = H.engine_logits(path, tokens, mode, model.vocab_size, extra=["--ctx", "16"])
            checks.close(f"phi3_longrope --ctx 16 (short factors) --mode {mode} vs reference", got, ref, TOL)
        except H.EngineError as e:
            checks.fail(f"phi3_longrope --ctx 16 --mode {mode}", e)
    # partial rotary through speculative decoding (the verifier's batched RoPE over drafted tokens at their
    # positions, a token tree's too): greedy text identical to plain greedy decoding
    path = os.path.join(root, "phi4_partial")
    try:
        plain = H.run_cli(["run", "-m", path, "-p", "Once upon a time", "-n", "40", "--temp", "0"])
        for spec in (["--spec", "ngram"], ["--spec", "self", "--skip-layers", "1"], ["--spec", "tree"]):
            got = H.run_cli(["run", "-m", path, "-p", "Once upon a time", "-n", "40", "--temp", "0"] + spec)
            checks.check(got == plain and len(plain) > 0, f"phi4_partial: run {' '.join(spec)} prints plain greedy's text")
    except H.EngineError as e:
        checks.fail("phi4_partial: speculative decoding", e)
    for name in LLAMA2C:
        path = tiny_models.generate_llama2c(name, root)
        model = R.load_llama2c(path)
        diff = R.weight_difference(R.load(os.path.join(root, name)), model)
        checks.check(diff is None, f"{name} as llama2.c: fixture holds the HF weights exactly", diff or "")
        rng = np.random.default_rng(8)
        tokens = [1] + [int(t) for t in rng.integers(3, model.vocab_size, N_TOKENS - 1)]
        ref = R.forward(model, tokens)
        for mode in MODES:
            try:
                got = H.engine_logits(path, tokens, mode, model.vocab_size)
            except H.EngineError as e:
                checks.fail(f"{name} as llama2.c --mode {mode}", e)
                continue
            checks.close(f"{name} as llama2.c --mode {mode} vs reference", got, ref, TOL)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
