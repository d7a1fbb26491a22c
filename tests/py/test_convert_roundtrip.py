"""`squeeze convert` round trips keep the model: stories15M.bin -> HF directory -> GGUF -> llama2.c .bin, and
tiny Qwen2 (biases, tied), tiny GQA fp16 Llama, tiny Qwen3 (q/k norms; bf16 untied, fp32 tied), Gemma 3,
Phi-3 (fused qkv and gate_up, split at load and joined again on write; LongRoPE factors as GGUF tensors and
back into config.json), Phi-4-mini's partial rotary (partial_rotary_factor <-> rope.dimension_count), Gemma 2 (soft-capping) and the mixture-of-experts Mixtral, Qwen2-MoE and Qwen3-MoE
(experts as one matrix each in HF, 3-D in GGUF) HF checkpoints -> GGUF -> HF.

At every step:
  - weights: the converted file, read by the independent reference loaders (numpy safetensors reader with HF
    conventions, the gguf package with llama.cpp conventions, the llama2.c layout), holds exactly the source's
    values (after mapping both to RoPE-on-halves row order, see reference.as_halves), with the same head_dim,
    norm epsilon and RoPE frequencies (relative 1e-6: GGUF stores them as float32) and attention windows.
    This proves the written files follow each format's conventions, not merely that squeeze reads back
    what it wrote;
  - logits: `squeeze logits` on the converted file vs on the source, on the same tokens.
      * where the file keeps the source's q/k row convention (llama2.c <-> GGUF llama: both interleaved;
        HF <-> GGUF qwen2 or qwen3, HF -> GGUF -> HF: both halves) the arithmetic is the same: bitwise identical;
      * where it changes (interleaved <-> halves), q.k sums run in another order, so fp32 rounding
        differs: a float32 simulation of stories15M measures 9.8e-7 relative between the two orders (the
        fp32-vs-fp64 error itself is 1.1e-6), so the bound is 1e-5 relative with identical argmax (bitwise
        equality is reported when the engine gets it, e.g. by permuting rows at load time).
"""

import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine_harness as H  # noqa: E402
import reference as R  # noqa: E402
import tiny_models  # noqa: E402

TOL_REORDERED = 1e-5
TOL_REFERENCE = 1e-4


def chain(checks, label, src, steps, tokens):
    """Converts src through steps [(--to, output path)], checking weights and logits after each step."""
    src_model = R.load(src)
    V = src_model.vocab_size
    ref = R.forward(src_model, tokens)
    try:
        base = H.engine_logits(src, tokens, "prefill", V)
    except H.EngineError as e:
        return checks.fail(f"{label}: squeeze logits on the source", e)
    checks.close(f"{label}: source {os.path.basename(src)} vs reference", base, ref, TOL_REFERENCE)
    prev = src
    for to, out in steps:
        what = f"{label}: {os.path.basename(prev)} -> --to {to}"
        if os.path.isdir(out):
            shutil.rmtree(out)
        elif os.path.exists(out):
            os.remove(out)
        try:
            H.convert(prev, out, to)
        except H.EngineError as e:
            return checks.fail(what, e)
        try:
            model = R.load(out)
            diff = R.weight_difference(src_model, model)
        except Exception as e:  # an unreadable file is a conversion failure
            diff = f"the reference cannot read it: {type(e).__name__}: {e}"
        checks.check(diff is None, f"{what}: the file holds the source's exact weights (read independently)",
                     diff or "")
        try:
            got = H.engine_logits(out, tokens, "prefill", V)
        except H.EngineError as e:
            checks.fail(f"{what}: squeeze logits", e)
            prev = out
            continue
        same_layout = model.rope_interleaved == src_model.rope_interleaved
        bitwise = np.array_equal(got, base)
        if same_layout:
            r = H.rel_diff(got, base)
            checks.check(bitwise, f"{what}: logits bitwise identical to the source's (same q/k row order)",
                         "bitwise" if bitwise else f"not bitwise: max|diff|/max|ref| = {r:.3g}")
        elif bitwise:
            checks.check(True, f"{what}: logits vs the source's (q/k rows reordered)", "bitwise identical")
        else:
            checks.close(f"{what}: logits vs the source's (q/k rows reordered, fp32 sums reassociated)", got, base,
                         TOL_REORDERED)
        prev = out


def main():
    checks = H.Checks("squeeze convert round trips: exact weights, identical logits")
    work = os.path.join(H.SQ_WORK, "roundtrip")
    os.makedirs(work, exist_ok=True)

    stories = os.path.join(H.SQ_SHARED, "models", "stories15M.bin")
    tokens = H.read_tokens(os.path.join(H.SQ_SHARED, "golden", "stories15M.tokens.txt"))
    chain(checks, "stories15M", stories,
          [("hf", os.path.join(work, "stories15M-hf")), ("gguf", os.path.join(work, "stories15M.gguf")),
           ("llama2c", os.path.join(work, "stories15M-roundtrip.bin"))], tokens)

    for name in ["qwen2_bias", "llama_gqa_f16", "qwen3_bf16", "qwen3_tied", "gemma3_bf16", "phi3_gqa",
                 "phi3_swa_bf16", "phi3_longrope", "phi4_partial", "gemma2_softcap", "mixtral_e8k3_bf16", "qwen2moe", "qwen3moe_bf16"]:
        src = tiny_models.generate(name, os.path.join(work, "tiny"))
        rng = np.random.default_rng(11)
        tokens = [1] + [int(t) for t in rng.integers(3, tiny_models.VARIANTS[name]["vocab"], 23)]
        chain(checks, name, src,
              [("gguf", os.path.join(work, f"{name}.gguf")), ("hf", os.path.join(work, f"{name}-roundtrip"))],
              tokens)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
