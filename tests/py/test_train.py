"""The trainer's backward pass (src/train) against float64 finite differences of the independent reference
forward (reference.py, numpy, written from transformers' modelling code and llama2.c's run.c).

For tiny random models of awkward shapes covering each feature the block's backward must get right (llama2.c
interleaved RoPE with MHA; Hugging Face rotate-half RoPE with grouped-query attention stored in f16; Qwen2
q/k/v biases with tied embeddings; Mistral's sliding window shorter than the sequence), random token batches
(2 sequences of 7 tokens) and random LoRA adapters on every linear layer (B non-zero, so that both A's and B's
gradients are exercised), tests/tools/train_tool runs one forward + backward with cross-entropy, distillation
(KL with temperature 2 against random teacher logits) and both combined, and writes the loss and the
gradients of every adapter and every block weight. The reference computes the same loss in float64 with the
adapters folded into the weights (W + alpha/r * B A) and central differences (step 1e-4) on random entries of
every array (4 per array).

Tolerances: the loss within 1e-5 relative; each checked gradient entry within
    |g - g_fd| <= 1e-3 * |g_fd| + 1e-4 * max|g over its array|
(the trainer computes in fp32: the worst error measured is 2.3e-6 of the array's largest gradient).
"""

import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine_harness as H  # noqa: E402
import reference as R  # noqa: E402
import tiny_models  # noqa: E402

TOOL = os.environ.get("SQ_TRAIN_TOOL") or os.path.join(H.REPO, "build", "tests", "train_tool")
LINEAR = ["wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down"]
RANK, ALPHA = 3, 5.0
N_SEQS, SEQ_LEN = 2, 7
REL, ARRAY = 1e-3, 1e-4


def ref_loss(model, tokens, adapters, ce_w, kd_w, kd_t, teacher):
    """The loss in float64, adapters (per layer: {linear: (A, B)}) folded into a copy of the weights."""
    layers = []
    for li, L in enumerate(model.layers):
        kw = {}
        for name in LINEAR:
            w = getattr(L, name)
            if name in adapters[li]:
                a, b = adapters[li][name]
                w = w + (ALPHA / RANK) * (b @ a)
            kw[name] = w
        layers.append(R.replace(L, **kw))
    m = R.replace(model, layers=layers)
    ce = kd = 0.0
    for s in range(N_SEQS):
        z = R.forward(m, tokens[s])
        lp = z - np.log(np.sum(np.exp(z - z.max(-1, keepdims=True)), -1, keepdims=True)) - z.max(-1, keepdims=True)
        ce -= sum(lp[t, tokens[s][t + 1]] for t in range(SEQ_LEN - 1))
        if kd_w:
            zs, zt = z / kd_t, teacher[s].astype(np.float64) / kd_t
            ls = zs - np.log(np.sum(np.exp(zs - zs.max(-1, keepdims=True)), -1, keepdims=True)) - zs.max(-1, keepdims=True)
            lt = zt - np.log(np.sum(np.exp(zt - zt.max(-1, keepdims=True)), -1, keepdims=True)) - zt.max(-1, keepdims=True)
            kd += np.sum(np.exp(lt) * (lt - ls))
    ce /= N_SEQS * (SEQ_LEN - 1)
    kd /= N_SEQS * SEQ_LEN
    return ce_w * ce + kd_w * kd_t * kd_t * kd


def run_tool(path, work, tokens, adapters_flat, ce_w, kd_w, kd_t, teacher):
    tok_path, ad_path, te_path = (os.path.join(work, n) for n in ("tokens.i32", "adapters.f32", "teacher.f32"))
    np.asarray(tokens, dtype="<i4").tofile(tok_path)
    np.asarray(adapters_flat, dtype="<f4").tofile(ad_path)
    teacher.astype("<f4").tofile(te_path)
    out = os.path.join(work, "out")
    subprocess.run([TOOL, path, tok_path, str(N_SEQS), str(SEQ_LEN), str(RANK), str(ALPHA),
                    "q,k,v,o,gate,up,down", str(ce_w), str(kd_w), str(kd_t), te_path, ad_path, out], check=True)
    loss = float(open(out + ".loss").read().split()[0])
    return loss, np.fromfile(out + ".lora", dtype="<f4"), np.fromfile(out + ".weights", dtype="<f4")


def check_grad(label, g, fd, scale):
    err = abs(g - fd)
    bound = REL * abs(fd) + ARRAY * scale
    assert err <= bound, f"{label}: gradient {g:.8g}, finite difference {fd:.8g} (|diff| {err:.3g} > {bound:.3g})"
    return err / max(scale, 1e-30)


def check_model(path, rng, work):
    model = R.load(path)
    V = model.vocab_size
    tokens = rng.integers(0, V, size=(N_SEQS, SEQ_LEN))
    # adapters in the trainer's order; values large enough that B A changes the outputs noticeably
    adapters, flat = [], []
    for L in model.layers:
        d = {}
        for name in LINEAR:
            out_f, in_f = getattr(L, name).shape
            a = rng.normal(0, 1 / np.sqrt(in_f), size=(RANK, in_f)).astype(np.float32).astype(np.float64)
            b = rng.normal(0, 0.2, size=(out_f, RANK)).astype(np.float32).astype(np.float64)
            d[name] = (a, b)
            flat += [a.ravel(), b.ravel()]
        adapters.append(d)
    flat = np.concatenate(flat)
    teacher = rng.normal(0, 2, size=(N_SEQS, SEQ_LEN, V)).astype(np.float32)
    worst = 0.0
    for ce_w, kd_w, kd_t in ((1.0, 0.0, 1.0), (0.0, 1.0, 2.0), (0.5, 0.7, 2.0)):
        loss, g_lora, g_w = run_tool(path, work, tokens, flat, ce_w, kd_w, kd_t, teacher)
        ref = ref_loss(model, tokens, adapters, ce_w, kd_w, kd_t, teacher)
        assert abs(loss - ref) <= 1e-5 * abs(ref), f"{path}: loss {loss} vs reference {ref}"

        def fd(perturb):
            return (ref_loss(*perturb(1e-4)) - ref_loss(*perturb(-1e-4))) / 2e-4

        off = 0  # adapters' gradients: perturb one entry of A or B
        for li, L in enumerate(model.layers):
            for name in LINEAR:
                for which in (0, 1):
                    arr = adapters[li][name][which]
                    g = g_lora[off:off + arr.size].reshape(arr.shape)
                    off += arr.size
                    for idx in zip(*(rng.integers(0, s, size=4) for s in arr.shape)):
                        def perturb(e, li=li, name=name, which=which, idx=idx):
                            ad = [dict(x) for x in adapters]
                            pair = list(ad[li][name])
                            pair[which] = pair[which].copy()
                            pair[which][idx] += e
                            ad[li][name] = tuple(pair)
                            return model, tokens, ad, ce_w, kd_w, kd_t, teacher
                        worst = max(worst, check_grad(f"{path} layer {li} {name} lora_{'AB'[which]}{idx}",
                                                      g[idx], fd(perturb), np.abs(g).max()))
        assert off == g_lora.size
        off = 0  # block weights: norms, then the seven linear layers
        for li, L in enumerate(model.layers):
            for name in ["attn_norm", "ffn_norm"] + LINEAR:
                arr = getattr(L, name)
                g = g_w[off:off + arr.size].reshape(arr.shape)
                off += arr.size
                for idx in zip(*(rng.integers(0, s, size=4) for s in arr.shape)):
                    def perturb(e, li=li, name=name, idx=idx):
                        w = arr.copy()
                        w[idx] += e
                        layers = list(model.layers)
                        layers[li] = R.replace(layers[li], **{name: w})
                        return R.replace(model, layers=layers), tokens, adapters, ce_w, kd_w, kd_t, teacher
                    worst = max(worst, check_grad(f"{path} layer {li} {name}{idx}", g[idx], fd(perturb),
                                                  np.abs(g).max()))
        assert off == g_w.size
    return worst


def main():
    rng = np.random.default_rng(13)
    root = os.path.join(H.SQ_WORK, "train")
    os.makedirs(root, exist_ok=True)
    paths = [tiny_models.generate_llama2c("llama_mha_f32", root)]
    paths += [tiny_models.generate(n, root) for n in ("llama_gqa_f16", "qwen2_bias", "mistral_swa")]
    with tempfile.TemporaryDirectory(dir=root) as work:
        for p in paths:
            worst = check_model(p, rng, work)
            print(f"ok  {os.path.basename(os.path.dirname(p)) if p.endswith('.bin') else os.path.basename(p)}: "
                  f"worst |g - fd| / max|g| = {worst:.2e}")
    print("4 passed, 0 failed")


if __name__ == "__main__":
    main()
