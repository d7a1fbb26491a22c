"""Checkpoints that claim an architecture their weights or config contradict are refused with an error naming
the key or tensor, never loaded half-right.

On tiny_models checkpoints with one thing changed:
  - an unknown architectures / model_type: the class, the model_type and the supported list named;
  - Qwen3 without its q/k norms (a Qwen2-shaped file called Qwen3), with only one of them, with norms of the
    wrong width, and a Llama whose blocks carry q/k norms it never has: the tensor named;
  - Gemma 3 with a negative soft-cap, another activation, a layer_types list of the wrong length, or one
    post-norm; a Llama with soft-capping (only the Gemma families compute it: test_logits checks them);
  - the same through GGUF (general.architecture qwen3 without attn_q_norm; an unknown architecture);
  - Phi-3 whose fused qkv_proj / gate_up_proj (GGUF attn_qkv / ffn_up) rows disagree with the config's heads
    and FFN width, and a Phi-3 checkpoint holding unfused q_proj (a Llama-shaped file called Phi-3).
"""

import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402

import engine_harness as H  # noqa: E402
import safetensors_np  # noqa: E402
import tiny_models  # noqa: E402


def expect_error(checks, what, model, needles):
    try:
        H.run_cli(["info", "-m", model])
    except H.EngineError as e:
        msg = str(e)
        missing = [n for n in needles if n not in msg]
        checks.check("exit 1" in msg and not missing, f"{what}: refused naming {needles}",
                     msg.splitlines()[-1] if not missing else f"message lacks {missing}: {msg}")
        return
    checks.check(False, f"{what}: refused", "squeeze info accepted it")


def with_tensors(src, out, edit):
    """A copy of HF checkpoint src at out whose model.safetensors is edit(tensors)."""
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(src, out)
    path = os.path.join(out, "model.safetensors")
    tensors = edit(dict(safetensors_np.load(path)))
    safetensors_np.save(path, tensors, {"format": "pt"})
    return out


def main():
    checks = H.Checks("architecture facts contradicted by the checkpoint: clear errors")
    root = os.path.join(H.SQ_WORK, "arch-errors")
    qwen3 = tiny_models.generate("qwen3_tied", root)
    llama = tiny_models.generate("llama_mha_f32", root)
    norm = "model.layers.1.self_attn.q_norm.weight"

    def cfg(rewrite):
        return lambda c: {**c, **rewrite}

    expect_error(checks, "unknown architecture",
                 tiny_models.with_config(qwen3, os.path.join(root, "unknown"),
                                         cfg({"architectures": ["Qwen9ForCausalLM"], "model_type": "qwen9"})),
                 ["architecture Qwen9ForCausalLM is not supported", "model_type qwen9", "Qwen3ForCausalLM"])
    expect_error(checks, "Qwen3 without q/k norms",
                 with_tensors(qwen3, os.path.join(root, "no-norms"),
                              lambda t: {k: v for k, v in t.items() if "_norm.weight" not in k or "self_attn" not in k}),
                 ["blk.0 lacks q/k norms (attn_q_norm, attn_k_norm)", "qwen3"])
    expect_error(checks, "Qwen3 with only a k norm in block 1",
                 with_tensors(qwen3, os.path.join(root, "one-norm"), lambda t: {k: v for k, v in t.items() if k != norm}),
                 ["blk.1 has only one of attn_q_norm and attn_k_norm"])

    def wide(t):
        dt, a = t[norm]
        t[norm] = (dt, a[:-2])
        return t

    expect_error(checks, "Qwen3 q norm narrower than head_dim", with_tensors(qwen3, os.path.join(root, "narrow"), wide),
                 ["tensor blk.1.attn_q_norm.weight has shape [6] but the config implies [8]"])

    def add_norms(t):  # of llama_mha_f32's head_dim, 16
        for l in range(2):
            for x in "qk":
                t[f"model.layers.{l}.self_attn.{x}_norm.weight"] = ("F32", np.ones(16, np.float32))
        return t

    for key in ("attn_logit_softcapping", "final_logit_softcapping"):
        expect_error(checks, f"Llama with {key}",
                     tiny_models.with_config(llama, os.path.join(root, "llama-softcap"), cfg({key: 50.0})),
                     [f"{key} = 50 (logit soft-capping) is not supported"])
    expect_error(checks, "Llama with q/k norms", with_tensors(llama, os.path.join(root, "llama-norms"), add_norms),
                 ["blk.0 has q/k norms", "a llama model never has"])

    gemma = tiny_models.generate("gemma3_layer_types", root)
    for what, rewrite, needles in [
        ("Gemma 3 with negative soft-capping", {"attn_logit_softcapping": -50.0},
         ["attn_logit_softcapping and final_logit_softcapping must be positive"]),
        ("Gemma 3 with exact GELU", {"hidden_activation": "gelu"},
         ["hidden_activation = gelu is not supported (gelu_pytorch_tanh)"]),
        ("Gemma 3 layer_types of the wrong length", {"layer_types": ["full_attention"]},
         ["layer_types must list one type per layer (3)"]),
    ]:
        expect_error(checks, what, tiny_models.with_config(gemma, os.path.join(root, "gemma-cfg"), cfg(rewrite)),
                     needles)
    expect_error(checks, "Gemma 3 without post-norms",
                 with_tensors(gemma, os.path.join(root, "gemma-no-post"),
                              lambda t: {k: v for k, v in t.items() if "post_feedforward" not in k}),
                 ["blk.0 has only one of post_attention_norm and post_ffw_norm"])

    gguf = tiny_models.generate_gguf("qwen3_tied", os.path.join(root, "gguf"), "F32")
    import gguf as G

    r = G.GGUFReader(gguf)
    for what, drop, arch, needles in [
        ("GGUF qwen3 without attn_q_norm/attn_k_norm", ("attn_q_norm", "attn_k_norm"), "qwen3",
         ["blk.0 lacks q/k norms"]),
        ("GGUF unknown architecture", (), "qwen9", ["general.architecture 'qwen9' is not supported", "qwen3"]),
    ]:
        out = os.path.join(root, "gguf", f"edited-{arch}-{len(drop)}.gguf")
        w = G.GGUFWriter(out, arch)
        for f in r.fields.values():
            if f.name.startswith("GGUF.") or f.name == "general.architecture":
                continue
            key = f.name.replace("qwen3.", f"{arch}.", 1)
            vtype = f.types[0]
            if vtype == G.GGUFValueType.ARRAY:
                w.add_key_value(key, f.contents(), vtype, sub_type=f.types[-1])
            else:
                w.add_key_value(key, f.contents(), vtype)
        for t in r.tensors:
            if not any(d in t.name for d in drop):
                w.add_tensor(t.name, t.data, raw_dtype=t.tensor_type)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        expect_error(checks, what, out, needles)
    phi3 = tiny_models.generate("phi3_gqa", root)  # 4 heads, 2 kv heads of 16, FFN 160
    qkv, gate_up = "model.layers.1.self_attn.qkv_proj.weight", "model.layers.0.mlp.gate_up_proj.weight"

    def cut(name, rows):
        def edit(t):
            dt, a = t[name]
            t[name] = (dt, a[:rows])
            return t
        return edit

    expect_error(checks, "Phi-3 qkv_proj one head short",
                 with_tensors(phi3, os.path.join(root, "phi3-qkv"), cut(qkv, 112)),
                 ["fused tensor blk.1.attn_qkv.weight must be [128][in]", "(heads + 2 kv heads) x head_dim",
                  "is 112 rows"])
    expect_error(checks, "Phi-3 gate_up_proj of one FFN width",
                 with_tensors(phi3, os.path.join(root, "phi3-gate-up"), cut(gate_up, 160)),
                 ["fused tensor blk.0.ffn_gate_up.weight must be [320][in] (2 x the FFN width)"])

    def unfuse(t):
        dt, a = t.pop(qkv)
        t[qkv.replace("qkv_proj", "q_proj")], t[qkv.replace("qkv_proj", "k_proj")] = (dt, a[:64]), (dt, a[64:96])
        t[qkv.replace("qkv_proj", "v_proj")] = (dt, a[96:])
        return t

    expect_error(checks, "Phi-3 with separate q/k/v projections",
                 with_tensors(phi3, os.path.join(root, "phi3-unfused"), unfuse),
                 ["unexpected tensor model.layers.1.self_attn.q_proj.weight in a phi3 checkpoint"])
    phi3_gguf = tiny_models.generate_gguf("phi3_gqa", os.path.join(root, "gguf"), "F32")
    r = G.GGUFReader(phi3_gguf)
    out = os.path.join(root, "gguf", "phi3-short-ffn-up.gguf")
    w = G.GGUFWriter(out, "phi3")
    for f in r.fields.values():
        if f.name.startswith("GGUF.") or f.name == "general.architecture":
            continue
        vtype = f.types[0]
        if vtype == G.GGUFValueType.ARRAY:
            w.add_key_value(f.name, f.contents(), vtype, sub_type=f.types[-1])
        else:
            w.add_key_value(f.name, f.contents(), vtype)
    for t in r.tensors:  # blk.1.ffn_up holding 3 x 160 rows: gate, up and one more
        data = np.concatenate([t.data, t.data[:160]]) if t.name == "blk.1.ffn_up.weight" else t.data
        w.add_tensor(t.name, data, raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    expect_error(checks, "GGUF phi3 ffn_up of three FFN widths", out,
                 ["GGUF tensor blk.1.ffn_up.weight", "fused tensor blk.1.ffn_gate_up.weight must be [320][in] (2 x the "
                  "FFN width) but is 480 rows"])
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
