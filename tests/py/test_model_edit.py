"""Models changed through the public editing calls (tests/tools/edit_model: sq_model_set_layers,
sq_model_edit_tensors) against independent oracles, on stories260K (a real llama2.c checkpoint with grouped-query
attention: 5 blocks, 8 query / 4 key-value heads of 8, FFN 172):

  - depth pruning: blocks dropped or reordered and saved as GGUF, Hugging Face and llama2.c; squeeze's logits
    of each saved file equal the float64 reference run of the original weights with the same block list
    (reference.py's layer list), and the reference itself shows that dropping a block changes the logits;
  - width pruning: block 0 keeps 2 of its 4 key/value heads (and their 4 query heads), block 3 keeps 100 of
    172 FFN units; the GGUF file, read by the `gguf` package, holds per-layer arrays
    {arch}.attention.head_count / head_count_kv / feed_forward_length (uint32, one value per block, as
    llama.cpp's loader reads them) and tensors equal to the original's slices; squeeze's logits equal the
    reference of the sliced numpy weights;
  - quantization: a tensor re-encoded as Q4_0, Q4_1 and Q8_0 holds exactly the bytes of llama.cpp's reference
    quantizers (gguf.quants.quantize) applied to the original values, and squeeze's logits equal the
    reference of the quantized file, dequantized exactly.

Logit tolerance: the fp32 contract of engine_harness.FP32_LOGIT_TOL (max|diff| / max|ref| <= 1e-5) and the
same argmax at every position.
"""

import dataclasses
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine_harness as H  # noqa: E402
import reference as R  # noqa: E402

TOL = H.FP32_LOGIT_TOL
EDIT = os.environ.get("SQ_EDIT_MODEL") or os.path.join(H.REPO, "build", "tests", "edit_model")
MODEL = os.path.join(H.SQ_SHARED, "models", "stories260K.bin")
FORMATS = {"gguf": ".gguf", "hf": "-hf", "llama2c": ".bin"}


def edit(checks, name, fmt, *ops):
    """Runs edit_model on stories260K; returns the output path, or None after recording the failure."""
    out = os.path.join(H.SQ_WORK, f"model-edit-{name}{FORMATS[fmt]}")
    p = subprocess.run([EDIT, MODEL, out, fmt, *ops], capture_output=True, text=True)
    if p.returncode != 0:
        checks.check(False, f"edit_model {name} ({fmt})", p.stderr.strip())
        return None
    return out


def compare(checks, what, path, model, tokens):
    ref = R.forward(model, tokens)
    try:
        got = H.engine_logits(path, tokens, "prefill", model.vocab_size)
    except H.EngineError as e:
        return checks.fail(what, e)
    return checks.close(what, got, ref, TOL)


def depth_pruning(checks, base, tokens):
    full = R.forward(base, tokens)
    for name, order in [("drop2", [0, 1, 3, 4]), ("reorder", [4, 0, 2, 1, 3]), ("first", [0])]:
        model = dataclasses.replace(base, layers=[base.layers[i] for i in order])
        r = H.rel_diff(R.forward(model, tokens), full)
        checks.check(r > 100 * TOL, f"reference sensitivity: blocks {order} instead of all five",
                     f"changes logits by {r:.3g}")
        for fmt in FORMATS:
            path = edit(checks, name, fmt, "layers=" + ",".join(map(str, order)))
            if path:
                compare(checks, f"blocks {order} saved as {fmt} vs reference", path, model, tokens)


def width_pruning(checks, base, tokens):
    import gguf

    hd, group = base.head_dim, 2  # 8 query heads share 4 key/value heads: groups of 2
    L0, L3 = base.layers[0], base.layers[3]
    layers = list(base.layers)
    layers[0] = dataclasses.replace(L0, wq=L0.wq[: 2 * group * hd], wk=L0.wk[: 2 * hd], wv=L0.wv[: 2 * hd],
                                    wo=L0.wo[:, : 2 * group * hd])
    layers[3] = dataclasses.replace(L3, w_gate=L3.w_gate[:100], w_up=L3.w_up[:100], w_down=L3.w_down[:, :100])
    model = dataclasses.replace(base, layers=layers)
    path = edit(checks, "widths", "gguf", "kv=0:2", "ffn=3:100")
    if not path:
        return
    r = gguf.GGUFReader(path)
    want = {"llama.attention.head_count": [4, 8, 8, 8, 8], "llama.attention.head_count_kv": [2, 4, 4, 4, 4],
            "llama.feed_forward_length": [172, 172, 172, 100, 172]}
    for key, values in want.items():
        f = r.fields.get(key)
        ok = f is not None and f.types == [gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.UINT32]
        checks.check(ok and f.contents() == values, f"gguf package reads {key} as a uint32 array",
                     f"{f.contents() if f else None} (want {values})")
    info = subprocess.run([H.SQ_BIN, "info", "-m", path], capture_output=True, text=True).stdout
    line = "per layer:       heads/kv heads/ffn dim 4/2/172, 8/4/172, 8/4/172, 8/4/100, 8/4/172"
    checks.check(line in info, "squeeze info lists the per-layer widths", line)
    kl = r.fields.get("llama.attention.key_length")
    checks.check(kl is not None and kl.contents() == hd, "attention.key_length states the head size",
                 f"{kl.contents() if kl else None}")
    # llama.cpp's GGUF llama rows are interleaved, like llama2.c's: the slices compare directly
    tensors = {t.name: np.asarray(t.data).reshape([int(d) for d in reversed(t.shape)]) for t in r.tensors}
    for name, arr in [("blk.0.attn_q.weight", layers[0].wq), ("blk.0.attn_k.weight", layers[0].wk),
                      ("blk.0.attn_v.weight", layers[0].wv), ("blk.0.attn_output.weight", layers[0].wo),
                      ("blk.3.ffn_gate.weight", layers[3].w_gate), ("blk.3.ffn_down.weight", layers[3].w_down),
                      ("blk.2.ffn_up.weight", layers[2].w_up)]:
        got = tensors.get(name)
        ok = got is not None and got.shape == arr.shape and np.array_equal(got.astype(np.float64), arr)
        checks.check(ok, f"{name} holds the kept slice of the original",
                     f"shape {None if got is None else got.shape} (want {arr.shape})")
    compare(checks, "width-pruned GGUF vs reference of the sliced weights", path, model, tokens)
    compare(checks, "width-pruned GGUF vs reference reading the same file", path, R.load(path), tokens)
    other = gguf_package_writes(model, "ok")
    compare(checks, "the same pruned model written by the gguf package (int32 arrays) vs reference", other, model,
            tokens)
    heads = [L.wq.shape[0] // model.head_dim for L in model.layers]
    for label, bad, why in [
        ("short", heads[:4], "llama.attention.head_count holds 4 values, expected one per layer (5)"),
        ("strings", [str(h) for h in heads], "llama.attention.head_count is an array of string, expected integers"),
        ("zero", [0] + heads[1:], "llama.attention.head_count = 0 is outside [1, 65536]"),
        ("unpruned", [8] * 5, "tensor blk.0.attn_q.weight has 32 rows but the config implies 64 (heads x head_dim)"),
    ]:
        path = gguf_package_writes(model, label, heads=bad)
        p = subprocess.run([H.SQ_BIN, "info", "-m", path], capture_output=True, text=True)
        checks.check(p.returncode == 1 and why in p.stderr, f"per-layer head counts {label}: refused clearly",
                     p.stderr.strip()[-300:])


def gguf_package_writes(model, label, heads=None):
    """The model as GGUF written by the gguf package's own writer: per-layer widths as its arrays (int32);
    `heads` replaces the head counts (to write malformed files)."""
    import gguf

    path = os.path.join(H.SQ_WORK, f"model-edit-gguf-package-{label}.gguf")
    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(256)
    w.add_embedding_length(model.dim)
    w.add_block_count(len(model.layers))
    w.add_feed_forward_length([L.w_gate.shape[0] for L in model.layers])
    w.add_head_count(heads if heads is not None else [L.wq.shape[0] // model.head_dim for L in model.layers])
    w.add_head_count_kv([L.wk.shape[0] // model.head_dim for L in model.layers])
    w.add_key_length(model.head_dim)
    w.add_value_length(model.head_dim)
    w.add_layer_norm_rms_eps(model.norm_eps)
    w.add_rope_freq_base(model.rope_theta)
    w.add_tensor("token_embd.weight", model.tok_embd.astype(np.float32))
    w.add_tensor("output_norm.weight", model.out_norm.astype(np.float32))
    for i, L in enumerate(model.layers):
        for name, arr in [("attn_norm", L.attn_norm), ("attn_q", L.wq), ("attn_k", L.wk), ("attn_v", L.wv),
                          ("attn_output", L.wo), ("ffn_norm", L.ffn_norm), ("ffn_gate", L.w_gate),
                          ("ffn_up", L.w_up), ("ffn_down", L.w_down)]:
            w.add_tensor(f"blk.{i}.{name}.weight", arr.astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def quantization(checks, base, tokens):
    import gguf

    Q = gguf.GGMLQuantizationType
    for qtype, name in [(Q.Q4_0, "q4_0"), (Q.Q4_1, "q4_1"), (Q.Q8_0, "q8_0")]:
        path = edit(checks, name, "gguf", f"quant=blk.1.ffn_up.weight:{name}", f"quant=blk.4.attn_v.weight:{name}")
        if not path:
            continue
        r = gguf.GGUFReader(path)
        tensors = {t.name: t for t in r.tensors}
        for tname, orig in [("blk.1.ffn_up.weight", base.layers[1].w_up), ("blk.4.attn_v.weight", base.layers[4].wv)]:
            t = tensors.get(tname)
            want = gguf.quants.quantize(orig.astype(np.float32), qtype)
            ok = t is not None and t.tensor_type == qtype and np.array_equal(np.asarray(t.data), want)
            checks.check(ok, f"{tname} as {name}: bytes equal llama.cpp's reference quantizer (gguf.quants)",
                         f"type {t.tensor_type.name if t is not None else None}")
        compare(checks, f"{name}-quantized GGUF vs reference of the same file", path, R.load(path), tokens)


def main():
    checks = H.Checks(f"edited models vs float64 reference and the gguf package (tolerance {TOL:g} relative)")
    base = R.load(MODEL)
    rng = np.random.default_rng(11)
    tokens = [1] + [int(t) for t in rng.integers(3, base.vocab_size, 31)]
    depth_pruning(checks, base, tokens)
    width_pruning(checks, base, tokens)
    quantization(checks, base, tokens)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
