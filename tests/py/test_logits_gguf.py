"""squeeze's forward pass on GGUF files: the shared stories15M-f16.gguf / stories15M-q8_0.gguf, and tiny random
models written by the gguf package (an independent writer) in F32, F16, BF16, Q8_0, Q4_0 and Q4_1.

On the 32 golden stories15M tokens:
  - `squeeze logits` (prefill, decode) vs the float64 reference run on the weights as the gguf
    package dequantizes them (F16 and Q8_0 blocks are exact in float64): max|diff|/max|ref| <= 1e-4 and
    the same argmax at every position;
  - informative: the quantized model vs the fp32 stories15M.bin, as KL(fp32 || quantized) per position and
    top-1 agreement, for the reference and for squeeze, with loose bounds (f16: KL <= 1e-4, top-1 >= 95%;
    q8_0: KL <= 5e-3, top-1 >= 90%; the reference measures about 2e-7 / 100% and 2e-4 / 100%).
Tiny GGUF models (llama GQA, llama head_dim != dim/heads, llama tied, qwen2 with biases, qwen3, gemma3, and the
mixture-of-experts Mixtral / Qwen2-MoE / Qwen3-MoE; llama q/k rows in llama.cpp's interleaved order), on 24
tokens:
  - for lossless storage (F32/F16/BF16 from weights stored that way) the file holds exactly the HF
    checkpoint's weights, read independently (a check of the fixture);
  - `squeeze logits` (prefill, decode) vs the reference on the dequantized weights: <= 1e-4, same argmax.
The 15M model runs only as often as needed: under ASan each call costs tens of seconds.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402

import engine_harness as H  # noqa: E402
import reference as R  # noqa: E402
import tiny_models  # noqa: E402

TOL = 1e-4
MODES = ["prefill", "decode"]  # chunked feeding is format-independent: test_logits*.py cover it
LOOSE = {"f16": (1e-4, 0.95), "q8_0": (5e-3, 0.90)}  # (max mean KL, min top-1 agreement) vs fp32
TINY = [("llama_gqa_f16", "F16"), ("llama_gqa_f16", "Q8_0"), ("llama_gqa_f16", "Q4_0"), ("llama_gqa_f16", "Q4_1"),
        ("llama_head_dim", "Q4_0"), ("llama_tied_bf16", "BF16"), ("qwen2_bias", "F32"), ("qwen2_bias", "Q8_0"),
        ("qwen3_bf16", "BF16"), ("qwen3_bf16", "Q8_0"), ("qwen3_tied", "F32"), ("gemma3_bf16", "BF16"),
        ("gemma3_bf16", "Q8_0"), ("gemma3_local", "F32"), ("phi3_gqa", "F32"), ("phi3_gqa", "Q4_0"),
        ("phi3_swa_bf16", "BF16"), ("phi3_longrope", "F32"), ("phi4_partial", "F32"),
        ("phi4_partial", "Q8_0"), ("gemma3_softcap", "F32"),
        ("gemma2_softcap", "BF16"), ("gemma2_softcap", "Q8_0"),
        # mixture of experts: experts as 3-D tensors (quantized per expert matrix), llama with expert_count read
        # as Mixtral, the shared expert's gate as llama.cpp's 1-D tensor
        ("mixtral_f32", "F32"), ("mixtral_f32", "Q8_0"), ("mixtral_e8k3_bf16", "BF16"), ("mixtral_e5k1", "F32"),
        ("qwen2moe", "F32"), ("qwen2moe", "Q4_0"), ("qwen3moe_bf16", "BF16")]
LOSSLESS = {"F32", "F16", "BF16"}


def tiny_cases(checks):
    root = os.path.join(H.SQ_WORK, "tiny-gguf")
    for name, qtype in TINY:
        path = tiny_models.generate_gguf(name, root, qtype)
        model = R.load_gguf(path)
        if qtype in LOSSLESS:
            diff = R.weight_difference(R.load(os.path.join(root, name)), model)
            checks.check(diff is None, f"{name} {qtype}: GGUF fixture holds the HF weights exactly", diff or "")
        rng = np.random.default_rng(5)
        tokens = [1] + [int(t) for t in rng.integers(3, model.vocab_size, 23)]
        ref = R.forward(model, tokens)
        for mode in ["prefill", "decode"]:
            try:
                got = H.engine_logits(path, tokens, mode, model.vocab_size)
            except H.EngineError as e:
                checks.fail(f"{name} {qtype} --mode {mode}", e)
                continue
            checks.close(f"{name} {qtype} --mode {mode} vs reference on dequantized weights", got, ref, TOL)


def main():
    checks = H.Checks(f"forward pass on GGUF files vs float64 reference on dequantized weights (tolerance {TOL:g} "
                      "relative)")
    models = os.path.join(H.SQ_SHARED, "models")
    tokens = H.read_tokens(os.path.join(H.SQ_SHARED, "golden", "stories15M.tokens.txt"))
    fp32_path = os.path.join(models, "stories15M.bin")
    fp32_ref = R.forward(R.load_llama2c(fp32_path), tokens)
    try:
        fp32_engine = H.engine_logits(fp32_path, tokens, "prefill", fp32_ref.shape[1])
    except H.EngineError as e:
        checks.fail("stories15M.bin --mode prefill (the fp32 baseline)", e)
        fp32_engine = None
    for quant, (max_kl, min_top1) in LOOSE.items():
        path = os.path.join(models, f"stories15M-{quant}.gguf")
        model = R.load_gguf(path)
        ref = R.forward(model, tokens)
        kl, top1 = H.kl_and_top1(fp32_ref, ref)
        checks.check(kl <= max_kl and top1 >= min_top1, f"{quant}: reference on dequantized weights vs fp32 reference",
                     f"mean KL {kl:.3g} <= {max_kl:g}, top-1 agreement {top1:.1%} >= {min_top1:.0%}")
        for mode in MODES:
            try:
                got = H.engine_logits(path, tokens, mode, model.vocab_size)
            except H.EngineError as e:
                checks.fail(f"{quant} --mode {mode}", e)
                continue
            checks.close(f"{quant} --mode {mode} vs reference on dequantized weights", got, ref, TOL)
            if mode == "prefill" and fp32_engine is not None:
                kl, top1 = H.kl_and_top1(fp32_engine, got)
                checks.check(kl <= max_kl and top1 >= min_top1, f"{quant}: squeeze on {quant} vs squeeze on fp32",
                             f"mean KL {kl:.3g} <= {max_kl:g}, top-1 agreement {top1:.1%} >= {min_top1:.0%}")
    tiny_cases(checks)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
