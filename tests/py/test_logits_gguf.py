"""squeeze's forward pass on the shared GGUF files stories15M-f16.gguf and stories15M-q8_0.gguf.

On 96 tokens (the golden prompt and the reference's greedy continuation of it):
  - `squeeze logits` (prefill, decode, chunks:7) vs the float64 reference run on the weights as the gguf
    package dequantizes them (F16 and Q8_0 blocks are exact in float64): max|diff|/max|ref| <= 1e-4 and
    the same argmax at every position;
  - informative: the quantized model vs the fp32 stories15M.bin, as KL(fp32 || quantized) per position and
    top-1 agreement, for the reference and for squeeze, with loose bounds (f16: KL <= 1e-4, top-1 >= 95%;
    q8_0: KL <= 5e-3, top-1 >= 90%; the reference measures about 3e-7 / 100% and 3e-4 / 100%).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine_harness as H  # noqa: E402
import reference as R  # noqa: E402

TOL = 1e-4
MODES = ["prefill", "decode", "chunks:7"]
LOOSE = {"f16": (1e-4, 0.95), "q8_0": (5e-3, 0.90)}  # (max mean KL, min top-1 agreement) vs fp32


def main():
    checks = H.Checks(f"forward pass on stories15M GGUF (f16, q8_0) vs float64 reference on dequantized weights "
                      f"(tolerance {TOL:g} relative)")
    models = os.path.join(H.SQ_SHARED, "models")
    tokens = H.read_tokens(os.path.join(H.SQ_SHARED, "golden", "stories15M.tokens.txt"))
    tokens += H.read_tokens(os.path.join(H.SQ_TEST_DATA, "reference", "stories15M.greedy64.txt"))
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
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
