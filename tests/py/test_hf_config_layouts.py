"""config.json in the layouts transformers has written, on tiny random checkpoints, against the float64 reference.

transformers v5 moved the RoPE settings under rope_parameters ({"rope_theta": ..., "rope_type": ...}, llama3
scaling likewise), older releases spelled rope_scaling's rope_type as "type", and a v5 rope_parameters may be
nested per layer type. Each variant below is the same weights as a tiny_models checkpoint with only config.json
rewritten; `squeeze logits` must match reference.py (which resolves every layout as transformers'
modeling_rope_utils does) within the fp32 bound of test_logits.py, and the reference itself must be sensitive
to what the variant changes (theta 10000 instead, or no llama3 scaling, or no window), so a pass means squeeze
read the key. LongRoPE (Phi-3) in its "su" and "longrope" spellings, under rope_scaling and rope_parameters.
Qwen2's use_sliding_window with max_window_layers (all layers windowed, or none) and Mistral's
default window of 4096 when the key is absent follow the transformers config classes."""

import dataclasses
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine_harness as H  # noqa: E402
import reference as R  # noqa: E402
import tiny_models  # noqa: E402

TOL = 1e-4
N_TOKENS = 24
LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0}


def v5(cfg, params, drop=("rope_theta", "rope_scaling")):
    """cfg with the RoPE keys moved into rope_parameters, as transformers v5 writes them."""
    cfg = {k: v for k, v in cfg.items() if k not in drop}
    cfg["rope_parameters"] = params
    return cfg


# name, tiny_models variant, config rewrite, what the reference must be sensitive to, info line
VARIANTS = [
    ("v5-default-theta", "llama3_rope", lambda c: v5(c, {"rope_type": "default", "rope_theta": 500000.0}),
     "theta", "theta 500000, halves pairs\n"),
    ("v5-theta-at-top-level", "llama3_rope",
     lambda c: {**v5(c, {"rope_type": "default"}, drop=("rope_scaling",)), "rope_theta": 500000.0},
     "theta", "theta 500000, halves pairs\n"),
    ("v5-llama3", "llama3_rope",
     lambda c: v5(c, {**LLAMA3, "rope_theta": 500000.0, "original_max_position_embeddings": 128}), "llama3",
     "llama3 scaling (factor 8, low 1, high 4, original context 128)"),
    ("v5-llama3-default-original-context", "llama3_rope", lambda c: v5(c, {**LLAMA3, "rope_theta": 500000.0}),
     "llama3", "llama3 scaling (factor 8, low 1, high 4, original context 256)"),
    ("v4-type-key", "llama3_rope",
     lambda c: {**c, "rope_scaling": {"type": "llama3", **{k: v for k, v in c["rope_scaling"].items()
                                                            if k != "rope_type"}}},
     "llama3", "original context 128"),
    ("v5-nested-per-layer-type", "llama3_rope",
     lambda c: {**v5(c, {"full_attention": {**LLAMA3, "rope_theta": 500000.0,
                                            "original_max_position_embeddings": 128}}),
                "layer_types": ["full_attention"] * c["num_hidden_layers"]},
     "llama3", "original context 128"),
    ("hidden-act-swish", "llama3_rope", lambda c: {**c, "hidden_act": "swish"}, None, "llama3 scaling"),
    ("qwen2-window-on-every-layer", "qwen2_bias",
     lambda c: {**c, "use_sliding_window": True, "sliding_window": 4, "max_window_layers": 0}, "window",
     "sliding window:  4\n"),
    ("qwen2-window-from-past-the-last-layer", "qwen2_bias",
     lambda c: {**c, "use_sliding_window": True, "sliding_window": 4, "max_window_layers": c["num_hidden_layers"]},
     None, "sliding window:  none\n"),
    # LongRoPE: Phi-3-mini-128k's "su" spelling, v5's rope_parameters holding the original context, and an
    # explicit attention_factor (the default is sqrt(1 + ln(256/16) / ln 16))
    ("v4-su-type", "phi3_longrope",
     lambda c: {**c, "rope_scaling": {**c["rope_scaling"], "type": "su"}}, "longrope",
     "longrope scaling (attention factor 1.41421; long factors in contexts over 16)"),
    ("v5-longrope", "phi3_longrope",
     lambda c: v5({k: v for k, v in c.items() if k != "original_max_position_embeddings"},
                  {"rope_type": "longrope", "rope_theta": 10000.0, "original_max_position_embeddings": 16,
                   **{k: c["rope_scaling"][k] for k in ("short_factor", "long_factor")}}),
     "longrope", "long factors in contexts over 16"),
    ("longrope-attention-factor", "phi3_longrope",
     lambda c: {**c, "rope_scaling": {**c["rope_scaling"], "attention_factor": 1.25}}, "longrope-attn",
     "attention factor 1.25"),
    # partial rotary (Phi-4-mini): at the top level, and inside v5's rope_parameters
    ("partial-rotary-top-level", "llama3_rope", lambda c: {**c, "partial_rotary_factor": 0.5}, "partial",
     "partial: the first 16 of 32 dims"),
    ("v5-partial-rotary", "llama3_rope",
     lambda c: v5(c, {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.75}), "partial",
     "partial: the first 24 of 32 dims"),
    ("mistral-window-key-absent", "mistral_swa", lambda c: {k: v for k, v in c.items() if k != "sliding_window"},
     None, "sliding window:  4096\n"),
]


# Keys whose values change the arithmetic beyond what squeeze computes: refused, naming the key (never run with a
# silent default). And ids squeeze can do without: a warning, not a failure.
REFUSED = [
    ("hidden-act-gelu", "llama3_rope", lambda c: {**c, "hidden_act": "gelu"}, "hidden_act = gelu"),
    ("v5-yarn", "llama3_rope", lambda c: v5(c, {"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e6}),
     "rope_parameters type yarn"),
    ("v4-linear", "llama3_rope", lambda c: {**c, "rope_scaling": {"type": "linear", "factor": 2.0}},
     "rope_scaling type linear"),
    ("partial-rotary-odd", "llama3_rope", lambda c: {**c, "partial_rotary_factor": 0.3},
     "partial_rotary_factor = 0.3 gives 9 rotated dims"),
    ("partial-rotary-above-one", "llama3_rope", lambda c: {**c, "partial_rotary_factor": 1.5},
     "partial_rotary_factor = 1.5"),
    ("longrope-factors-for-whole-heads", "phi4_partial",
     lambda c: {**c, "rope_scaling": {**c["rope_scaling"], "long_factor": [1.0] * 16}},
     "rope_scaling.long_factor must list 12 factors"),
    ("mlp-bias", "llama3_rope", lambda c: {**c, "mlp_bias": True}, "mlp_bias = true"),
    ("gptq", "llama3_rope", lambda c: {**c, "quantization_config": {"quant_method": "gptq", "bits": 4}},
     "quantization_config (quant_method gptq)"),
    ("longrope-short-list", "phi3_longrope",
     lambda c: {**c, "rope_scaling": {**c["rope_scaling"], "long_factor": [1.0] * 7}},
     "rope_scaling.long_factor must list 8 factors"),
    ("longrope-zero-factor", "phi3_longrope",
     lambda c: {**c, "rope_scaling": {**c["rope_scaling"], "short_factor": [0.0] * 8}},
     "rope_scaling.short_factor[0] must be a positive number"),
    ("qwen2-window-on-some-layers", "qwen2_bias",
     lambda c: {**c, "use_sliding_window": True, "sliding_window": 4, "max_window_layers": 1},
     "max_window_layers = 1 of 2 layers windowed"),
]
WARNED = [
    ("eos-minus-one", "llama3_rope", lambda c: {**c, "eos_token_id": -1}, "eos_token_id -1 is not a token id"),
    ("bos-past-vocab", "llama3_rope", lambda c: {**c, "bos_token_id": 100000}, "bos_token_id 100000 is not a token id"),
]


def sensitivity(model, what):
    """The reference model without the feature the variant exercises."""
    if what == "theta":
        return dataclasses.replace(model, rope_theta=10000.0)
    if what == "llama3":
        return dataclasses.replace(model, rope_scaling=None)
    if what == "longrope":
        return dataclasses.replace(model, longrope=None)
    if what == "partial":
        return dataclasses.replace(model, rope_dims=None)
    if what == "longrope-attn":
        return dataclasses.replace(model, longrope={**model.longrope, "attn": 2 ** 0.5})
    return dataclasses.replace(model, layers=[dataclasses.replace(L, window=0) for L in model.layers])


def make(name, base, rewrite):
    return tiny_models.with_config(base, os.path.join(H.SQ_WORK, "hf-layouts", name), rewrite)


def main():
    checks = H.Checks(f"config.json layouts vs the float64 reference (tolerance {TOL:g} relative)")
    root = os.path.join(H.SQ_WORK, "hf-layouts-tiny")  # not tiny/: test_logits rewrites it meanwhile
    bases = {}
    for name, variant, rewrite, sensitive_to, shown in VARIANTS:
        if variant not in bases:
            bases[variant] = tiny_models.generate(variant, root)
        path = make(name, bases[variant], rewrite)
        model = R.load(path)
        rng = np.random.default_rng(11)
        tokens = [1] + [int(t) for t in rng.integers(3, model.vocab_size, N_TOKENS - 1)]
        ref = R.forward(model, tokens)
        if sensitive_to:
            r = H.rel_diff(R.forward(sensitivity(model, sensitive_to), tokens), ref)
            checks.check(r > 100 * TOL, f"{name}: reference sensitivity to the {sensitive_to}", f"{r:.3g}")
        try:
            info = H.run_cli(["info", "-m", path])
            checks.check(shown in info, f"{name}: info shows {shown.strip()!r}")
            got = H.engine_logits(path, tokens, "prefill", model.vocab_size)
            checks.close(f"{name}: logits vs reference", got, ref, TOL)
        except H.EngineError as e:
            checks.fail(name, e)
    for refused, cases in ((True, REFUSED), (False, WARNED)):
        for name, variant, rewrite, needle in cases:
            if variant not in bases:
                bases[variant] = tiny_models.generate(variant, root)
            path = make(name, bases[variant], rewrite)
            p = subprocess.run([H.SQ_BIN, "info", "-m", path], capture_output=True, text=True, timeout=600)
            if refused:
                checks.check(p.returncode == 1 and needle in p.stderr and "config.json" in p.stderr,
                             f"{name}: refused naming the key", p.stderr.strip())
            else:
                checks.check(p.returncode == 0 and f"squeeze: warning: {path}/config.json: {needle}" in p.stderr,
                             f"{name}: loads with a warning", p.stderr.strip())
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
