"""Mixture-of-experts models (Mixtral, Qwen2-MoE, Qwen3-MoE) beyond the logits that test_logits.py and
test_logits_gguf.py check against the float64 reference:

  - expert-grouped batches: `squeeze logits --mode prefill` (every expert runs once on all the tokens routed
    to it) against `--mode decode` (one token per call: token-by-token routing), both squeeze's fp32, within
    1e-5 relative (they differ only in how the batched matmul sums; measured ~3e-7) with the same argmax; the
    fixtures are shown to exercise grouping (an expert with several tokens of the batch) and experts that get
    no token at all (their weights are not read);
  - quantization: `squeeze quantize --type q8_0 / q4_0` writes each expert's matrix of a 3-D ffn_*_exps tensor
    byte for byte as the gguf package's quantizer (llama.cpp's) writes that matrix alone, keeps the routers
    f32, and the quantized file's logits match the reference on the gguf package's dequantized weights
    (1e-4 relative, as test_logits_gguf.py); q4_k_m gives the experts llama.cpp's per-layer types;
  - GPTQ per expert: each expert's matrices quantized with the Hessian of only its routed tokens, checked
    against the reference's routing (per_expert_gptq's docstring); experts without tokens fall back to RTN
    with a warning naming them;
  - Wanda and SparseGPT per expert likewise (per_expert_pruning's docstring), and the imatrix (llama.cpp's
    per-expert layout of ffn_*_exps entries, per_expert_imatrix's docstring);
  - methods that do not handle experts refuse clearly: AWQ (calibration), width pruning;
  - expert pruning by routing frequency removes each block's least chosen experts, and the pruned model equals
    the reference without them;
  - `squeeze info` reports the experts and the active parameters, counted independently from the tensors;
    Mixtral's sliding_window absent or null means full attention (MixtralConfig's default, unlike Mistral's);
  - bad input, each refused with an error naming the key or tensor: top-k above the expert count, an expert
    count that disagrees with the expert tensors (HF: experts missing or beyond it; GGUF: the 3-D tensors'
    outer dimension), zero experts, a missing router, in HF directories and GGUF files.
"""

import dataclasses
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402

import engine_harness as H  # noqa: E402
import reference as R  # noqa: E402
import tiny_models  # noqa: E402
from test_arch_errors import expect_error, with_tensors  # noqa: E402

TOL_GROUPED = H.FP32_LOGIT_TOL
TOL_REF = 1e-4
MOE_VARIANTS = [n for n, s in tiny_models.VARIANTS.items() if s["arch"] in tiny_models.MOE]


def routing_counts(model, tokens):
    """Tokens of the batch each expert receives, per MoE layer, as the reference routes them."""
    counts, real = [], R.moe_ffn

    def spy(m, h, act):
        logits = R.linear(h, m.router)
        top = np.argsort(-logits, axis=-1, kind="stable")[:, : m.top_k]
        counts.append(np.bincount(top.ravel(), minlength=len(m.gate)))
        return real(m, h, act)

    R.moe_ffn = spy
    try:
        R.forward(model, tokens)
    finally:
        R.moe_ffn = real
    return counts


def edited_gguf(src, out, keys=None, tensors=None):
    """A copy of GGUF file src with metadata keys replaced ({key: value}, None drops it) and tensors edited
    (tensors(name, array) returns the new array, or None to drop it)."""
    import gguf as G

    r = G.GGUFReader(src)
    arch = r.fields["general.architecture"].contents()
    w = G.GGUFWriter(out, arch)
    keys = keys or {}
    for f in r.fields.values():
        if f.name.startswith("GGUF.") or f.name == "general.architecture":
            continue
        vtype = f.types[0]
        if f.name in keys:
            if keys[f.name] is not None:
                w.add_key_value(f.name, keys[f.name], vtype)
        elif vtype == G.GGUFValueType.ARRAY:
            w.add_key_value(f.name, f.contents(), vtype, sub_type=f.types[-1])
        else:
            w.add_key_value(f.name, f.contents(), vtype)
    for t in r.tensors:
        data = np.asarray(t.data) if tensors is None else tensors(t.name, np.asarray(t.data))
        if data is not None:
            w.add_tensor(t.name, data, raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


def grouped_vs_token_by_token(checks, root):
    for name in MOE_VARIANTS:
        path = tiny_models.generate(name, root)
        model = R.load(path)
        rng = np.random.default_rng(13)
        tokens = [1] + [int(t) for t in rng.integers(3, model.vocab_size, 31)]
        counts = routing_counts(model, tokens)
        checks.check(max(c.max() for c in counts) >= 2, f"{name}: the batch groups several tokens on one expert",
                     f"most tokens on one expert in one layer: {max(c.max() for c in counts)}")
        batches = [tokens]
        if name == "mixtral_e5k1":  # top-1 of 5 on 6 tokens: experts left without a token
            idle = sum(int((c == 0).sum()) for c in routing_counts(model, tokens[:6]))
            checks.check(idle > 0, f"{name}: on 6 tokens some expert receives no token of the batch",
                         f"{idle} (layer, expert) pairs without a token")
            batches.append(tokens[:6])
        for batch in batches:
            try:
                grouped = H.engine_logits(path, batch, "prefill", model.vocab_size)
                single = H.engine_logits(path, batch, "decode", model.vocab_size)
            except H.EngineError as e:
                checks.fail(f"{name}: squeeze logits", e)
                continue
            checks.close(f"{name}: expert-grouped prefill vs token-by-token decode ({len(batch)} tokens)", grouped,
                         single, TOL_GROUPED)


def quantized(checks, root):
    import gguf as G

    src = tiny_models.generate("mixtral_f32", root)
    hf = R.load(src)
    for qtype in ["q8_0", "q4_0"]:
        out = os.path.join(root, f"mixtral_f32-{qtype}.gguf")
        try:
            H.run_cli(["quantize", "-m", src, "-o", out, "--type", qtype, "--no-progress"])
        except H.EngineError as e:
            checks.fail(f"quantize mixtral_f32 --type {qtype}", e)
            continue
        r = G.GGUFReader(out)
        by_name = {t.name: t for t in r.tensors}
        routers = [t for n, t in by_name.items() if "ffn_gate_inp" in n]
        checks.check(routers and all(t.tensor_type == G.GGMLQuantizationType.F32 for t in routers),
                     f"{qtype}: routers stay f32", ", ".join(t.tensor_type.name for t in routers))
        qt = G.GGMLQuantizationType[qtype.upper()]
        same, total = 0, 0
        for l, layer in enumerate(hf.layers):
            for kind, mats in (("gate", layer.moe.gate), ("up", layer.moe.up), ("down", layer.moe.down)):
                t = by_name[f"blk.{l}.ffn_{kind}_exps.weight"]
                stored = np.asarray(t.data).reshape(len(mats), -1)
                for e, m in enumerate(mats):
                    total += 1
                    want = G.quants.quantize(m.astype(np.float32), qt).reshape(-1)
                    same += t.tensor_type == qt and np.array_equal(stored[e].view(np.uint8), want.view(np.uint8))
        checks.check(same == total, f"{qtype}: every expert matrix quantized as llama.cpp quantizes it alone",
                     f"{same}/{total} byte-identical")
        model = R.load_gguf(out)
        rng = np.random.default_rng(17)
        tokens = [1] + [int(t) for t in rng.integers(3, model.vocab_size, 23)]
        ref = R.forward(model, tokens)
        for mode in ["prefill", "decode"]:
            try:
                got = H.engine_logits(out, tokens, mode, model.vocab_size)
            except H.EngineError as e:
                checks.fail(f"{qtype} --mode {mode}", e)
                continue
            checks.close(f"quantized {qtype} --mode {mode} vs reference on dequantized weights", got, ref, TOL_REF)
    # q4_k_m: llama.cpp's per-layer rules reach the experts (ffn_down_exps as ffn_down: more bits in the last
    # layer of 2, where Q6_K falls back to Q8_0 on these 96-value rows; Q4_K -> Q5_0 elsewhere). Logits are not
    # compared with the fp32-activation reference here: Q5_0's integer-dot GEMV quantizes activations to 8 bits
    # (as llama.cpp does), and experts see fewer tokens than the fp32 GEMM path takes.
    out = os.path.join(root, "mixtral_f32-q4_k_m.gguf")
    try:
        H.run_cli(["quantize", "-m", src, "-o", out, "--type", "q4_k_m", "--no-progress"])
        types = {t.name: t.tensor_type.name for t in G.GGUFReader(out).tensors}
        want = {"blk.0.ffn_down_exps.weight": "Q5_0", "blk.1.ffn_down_exps.weight": "Q8_0",
                "blk.1.ffn_gate_exps.weight": "Q5_0", "blk.0.ffn_gate_inp.weight": "F32"}
        got = {k: types.get(k) for k in want}
        checks.check(got == want, "q4_k_m: expert tensors get llama.cpp's per-layer types", str(got))
    except H.EngineError as e:
        checks.fail("quantize mixtral_f32 --type q4_k_m", e)


def layer0_expert_inputs(model, tokens):
    """Block 0's MoE input h [n][dim] (the FFN norm's output) and each expert's tokens, from the float64
    reference: what the calibration tap hands GPTQ for block 0 (its statistics are gathered before the block
    is quantized)."""
    seen = []
    orig = R.moe_ffn

    def capture(m, h, act):
        seen.append(h)
        return orig(m, h, act)
    R.moe_ffn = capture
    try:
        R.forward(dataclasses.replace(model, layers=model.layers[:1]), tokens)
    finally:
        R.moe_ffn = orig
    h, m = seen[0], model.layers[0].moe
    logits = R.linear(h, m.router)
    routed = [[] for _ in m.gate]
    for t in range(len(tokens)):
        for e in np.argsort(-logits[t], kind="stable")[: m.top_k]:  # softmax keeps the order
            routed[e].append(t)
    return h, [np.asarray(r, dtype=np.int64) for r in routed]


def per_expert_gptq(checks, root):
    """GPTQ on a mixture of experts: each expert's matrices of the 3-D ffn_*_exps tensors are quantized with
    the X^T X of only the tokens routed to that expert. On one calibration window (the whole text, so the
    tokens are known here), block 0's experts are checked against the float64 reference's routing: for every
    expert with tokens, the GPTQ objective ||X_e (W - Q)^T||^2 on its own inputs X_e (gate/up: the routed rows
    of the FFN input; down: act(gate x) * up x of the original weights) must come out below round-to-nearest's
    on the same format, summed per tensor (the ordering is measured, not assumed: reported per tensor); the
    MoE block's output error on the calibration tokens must be lower too; experts no token reached must be
    rounded to nearest (bytes identical to RTN's) and named in a warning; and the GPTQ file's logits must match
    the reference on its dequantized weights (the packed bytes hold what GPTQ chose)."""
    import gguf as G

    # a long window, the shared expert (its down input tapped apart), and a window of a few tokens where top-2
    # of 8 leaves experts without any (the fallback)
    n_idle = 0
    for name, chars, qtype in [("mixtral_f32", 400, "q4_0"), ("qwen2moe", 400, "q4_0"), ("qwen3moe_bf16", 5, "q8_0")]:
        src = tiny_models.generate(name, root)
        calib, tokens = calib_window(root, src, chars)
        label = f"{name} {qtype}, {len(tokens)} calibration tokens"
        files = {}
        try:
            for method in ["rtn", "gptq"]:
                files[method] = os.path.join(root, f"{name}-{chars}-{method}.gguf")
                args = ["quantize", "-m", src, "-o", files[method], "--type", qtype, "--method", method, "--no-progress"]
                if method == "gptq":
                    args += ["--calib", calib, "--calib-samples", "1", "--calib-len", str(len(tokens))]
                p = subprocess.run([H.SQ_BIN] + args, capture_output=True, text=True, timeout=600)
                if p.returncode:
                    raise H.EngineError(p.stderr)
                stderr = p.stderr
        except H.EngineError as e:
            checks.fail(f"{label}: quantize", e)
            continue
        model = R.load(src)
        h, routed = layer0_expert_inputs(model, tokens)
        act = R.silu
        m = model.layers[0].moe
        q = {k: R.load_gguf(f).layers[0].moe for k, f in files.items()}
        raw = {k: {t.name: np.asarray(t.data) for t in G.GGUFReader(f).tensors} for k, f in files.items()}
        idle = [e for e, r in enumerate(routed) if len(r) == 0]
        n_idle += len(idle)
        for kind in ["gate", "up", "down"]:
            err = {}
            for k in files:
                total = 0.0
                for e, rows in enumerate(routed):
                    if not len(rows):
                        continue
                    x = h[rows]
                    if kind == "down":
                        x = act(R.linear(x, m.gate[e])) * R.linear(x, m.up[e])
                    d = getattr(m, kind)[e] - getattr(q[k], kind)[e]
                    total += float(np.sum((x @ d.T) ** 2))
                err[k] = total
            checks.check(err["gptq"] < err["rtn"], f"{label}: blk.0.ffn_{kind}_exps: GPTQ's per-expert error on "
                         "each expert's own tokens below RTN's", f"{err['gptq']:.4g} vs {err['rtn']:.4g}")
            tname = f"blk.0.ffn_{kind}_exps.weight"
            same = [e for e in idle if np.array_equal(raw["gptq"][tname][e], raw["rtn"][tname][e])]
            checks.check(same == idle, f"{label}: {tname}: experts without calibration tokens rounded to nearest",
                         f"idle experts {idle}, identical to RTN {same}")
        want = R.moe_ffn(m, h, act)
        out_err = {k: float(np.sum((R.moe_ffn(q[k], h, act) - want) ** 2)) for k in files}
        checks.check(out_err["gptq"] < out_err["rtn"], f"{label}: block 0's MoE output error on the calibration "
                     "tokens: GPTQ below RTN", f"{out_err['gptq']:.4g} vs {out_err['rtn']:.4g}")
        warned = all(f"blk.0.ffn_{k}_exps.weight: no calibration token was routed to expert" in stderr
                     for k in ("gate", "up", "down")) if idle else "no calibration token" not in stderr
        checks.check(warned, f"{label}: a warning names the experts without tokens (idle in block 0: {idle})",
                     stderr.strip().splitlines()[-1])
        if idle:
            line = next(x for x in stderr.splitlines() if "blk.0.ffn_gate_exps.weight: no calibration" in x)
            want = f"routed to expert{'s' if len(idle) > 1 else ''} {' '.join(map(str, idle))}; rounded to nearest"
            checks.check(want in line, f"{label}: the warning lists experts {idle}", line)
        qm = R.load_gguf(files["gptq"])
        ref = R.forward(qm, tokens[:24])
        try:
            got = H.engine_logits(files["gptq"], tokens[:24], "prefill", qm.vocab_size)
            checks.close(f"{label}: GPTQ file's logits vs the reference on its dequantized weights", got, ref, TOL_REF)
        except H.EngineError as e:
            checks.fail(f"{label}: logits of the GPTQ file", e)
    checks.check(n_idle > 0, "some expert of block 0 received no calibration token (the fallback is exercised)",
                 f"{n_idle} idle experts")


def calib_window(root, src, chars):
    """A calibration text of the first `chars` characters of a book and its token ids (BOS first): with
    --calib-samples 1 --calib-len len(ids) the one window is the whole text."""
    text = open(os.path.join(H.SQ_SHARED, "data", "classics", "alice_in_wonderland.txt"), encoding="utf-8").read()
    calib = os.path.join(root, f"calib-{chars}.txt")
    with open(calib, "w", encoding="utf-8") as f:
        f.write(text[:chars])
    return calib, [int(t) for t in H.run_cli(["tokenize", "-m", src, "-f", calib, "--ids"]).split()]


def per_expert_pruning(checks, root):
    """Wanda and SparseGPT on a mixture of experts: each expert's matrices pruned with the statistics of only
    the tokens routed to it. Block 0's expert matrices against numpy: Wanda's mask (|W| times the norm of each
    input channel over the expert's routed rows, the floor(s * cols) lowest of every row; ties to the lower
    index) exactly; experts without tokens pruned by magnitude (the lowest |W| of the whole matrix) and named in
    a warning; SparseGPT leaves exactly half of every expert row (50%, 2:4 per group)."""
    for name, chars in [("mixtral_f32", 400), ("qwen3moe_bf16", 5)]:
        src = tiny_models.generate(name, root)
        calib, tokens = calib_window(root, src, chars)
        model = R.load(src)
        h, routed = layer0_expert_inputs(model, tokens)
        m = model.layers[0].moe
        idle = [e for e, r in enumerate(routed) if len(r) == 0]
        label = f"{name}, {len(tokens)} calibration tokens"
        for method, extra in [("wanda", ["--sparsity", "0.5"]), ("sparsegpt", ["--nm", "2:4"])]:
            out = os.path.join(root, f"{name}-{chars}-{method}.gguf")
            p = subprocess.run([H.SQ_BIN, "prune", "-m", src, "-o", out, "--method", method, "--calib", calib,
                                "--calib-samples", "1", "--calib-len", str(len(tokens)), "--no-progress"] + extra,
                               capture_output=True, text=True, timeout=600)
            if p.returncode:
                checks.fail(f"{label}: prune --method {method}", p.stderr)
                continue
            pruned = R.load_gguf(out).layers[0].moe
            for kind in ["gate", "up", "down"]:
                bad = []
                for e in range(len(m.gate)):
                    w = getattr(m, kind)[e].astype(np.float32)
                    got = getattr(pruned, kind)[e] == 0
                    if method == "sparsegpt":
                        if not (got.reshape(w.shape[0], -1, 4).sum(axis=2) == 2).all():
                            bad.append(e)
                        continue
                    if e in idle:  # magnitude over the whole matrix
                        want = np.zeros(w.size, dtype=bool)
                        want[np.argsort(np.abs(w).reshape(-1), kind="stable")[: w.size // 2]] = True
                        want = want.reshape(w.shape)
                    else:
                        x = h[routed[e]]
                        if kind == "down":
                            x = R.silu(R.linear(x, m.gate[e])) * R.linear(x, m.up[e])
                        want = wanda_mask(w, (x ** 2).sum(axis=0), 0.5)
                    if not np.array_equal(got, want):
                        bad.append((e, int((got != want).sum())))
                what = "2:4 in every group of every expert row" if method == "sparsegpt" else \
                    "each expert's mask equals numpy's (Wanda on its routed tokens; magnitude where none)"
                checks.check(not bad, f"{label}: {method}: blk.0.ffn_{kind}_exps: {what}",
                             f"experts differing: {bad}" if bad else f"idle experts {idle}")
            warned = [x for x in p.stderr.splitlines() if "blk.0.ffn_gate_exps.weight: expert" in x]
            want = f"expert{'s' if len(idle) > 1 else ''} {' '.join(map(str, idle))} received no calibration token"
            checks.check(bool(warned) == bool(idle) and (not idle or want in warned[0]),
                         f"{label}: {method}: the warning names block 0's experts without tokens {idle}",
                         warned[0] if warned else "no warning")


def read_imatrix(path):
    """squeeze's imatrix file (docs/formats.md): {name: (n_tokens, values)}."""
    import struct
    data = open(path, "rb").read()
    assert data[:8] == b"SQIMATRX"
    _, n = struct.unpack_from("<II", data, 8)
    at, out = 16, {}
    for _ in range(n):
        (k,) = struct.unpack_from("<I", data, at)
        name = data[at + 4: at + 4 + k].decode()
        at += 4 + k
        n_tokens, n_values = struct.unpack_from("<QI", data, at)
        at += 12
        out[name] = (n_tokens, np.frombuffer(data, "<f4", n_values, at))
        at += 4 * n_values
    return out


def per_expert_imatrix(checks, root):
    """`squeeze imatrix` on a mixture of experts: each ffn_*_exps entry holds every expert's mean x^2 per input
    channel over the tokens routed to it, one expert after another (llama.cpp's layout), 1s for an expert no
    token reached; the shared expert's entries are over every token. Block 0 against the float64 reference
    (relative 1e-4: fp32 activations); then quantize --imatrix takes the 3-D entries (each expert's slice)."""
    for name, chars in [("qwen2moe", 400), ("qwen3moe_bf16", 5)]:
        src = tiny_models.generate(name, root)
        calib, tokens = calib_window(root, src, chars)
        model = R.load(src)
        h, routed = layer0_expert_inputs(model, tokens)
        m = model.layers[0].moe
        out = os.path.join(root, f"{name}-{chars}.imatrix")
        label = f"{name}, {len(tokens)} calibration tokens"
        try:
            H.run_cli(["imatrix", "-m", src, "-f", calib, "-o", out, "--calib-samples", "1", "--calib-len",
                       str(len(tokens)), "--no-progress"])
            im = read_imatrix(out)
        except H.EngineError as e:
            checks.fail(f"{label}: squeeze imatrix", e)
            continue
        worst = 0.0
        for kind in ["gate", "up", "down"]:
            want = []
            for e, rows in enumerate(routed):
                x = h[rows]
                if kind == "down":
                    x = R.silu(R.linear(x, m.gate[e])) * R.linear(x, m.up[e])
                want.append((x ** 2).mean(axis=0) if len(rows) else np.ones(x.shape[1]))
            got = im[f"blk.0.ffn_{kind}_exps.weight"][1]
            want = np.concatenate(want)
            worst = max(worst, float(np.abs(got - want).max() / np.abs(want).max()))
        if m.shared is not None:
            g, u, _ = m.shared
            sd = (R.silu(R.linear(h, g)) * R.linear(h, u)) ** 2
            for tname, want in [("ffn_gate_shexp", (h ** 2).mean(axis=0)), ("ffn_down_shexp", sd.mean(axis=0))]:
                got = im[f"blk.0.{tname}.weight"][1]
                worst = max(worst, float(np.abs(got - want).max() / np.abs(want).max()))
        checks.check(worst < 1e-4, f"{label}: block 0's expert entries (each expert's routed tokens; 1s where "
                     "none) match the reference", f"max relative difference {worst:.3g}")
        q = os.path.join(root, f"{name}-{chars}-imatrix-q4_k.gguf")
        try:
            H.run_cli(["quantize", "-m", src, "-o", q, "--type", "q4_k", "--imatrix", out, "--json",
                       q + ".json", "--no-progress"])
            import json
            rep = json.load(open(q + ".json"))
            exps = [t for t in rep["tensors"] if "_exps." in t["name"]]
            checks.check(exps and all(t["imatrix"] for t in exps),
                         f"{label}: quantize --imatrix weighs every expert tensor by its entry",
                         f"{sum(t['imatrix'] for t in exps)}/{len(exps)}")
        except (H.EngineError, KeyError) as e:
            checks.fail(f"{label}: quantize --imatrix", e)


def wanda_mask(w, sum_sq, sparsity):
    """Wanda's mask of w [rows][cols] in float32 scores as squeeze computes them: the floor(sparsity * cols)
    lowest |W_ij| sqrt(sum_sq_j) of each row, ties to the lower index."""
    score = (np.abs(w.astype(np.float64)) * np.sqrt(sum_sq)[None, :]).astype(np.float32)
    k = int(np.floor(sparsity * w.shape[1]))
    mask = np.zeros(w.shape, dtype=bool)
    for r in range(w.shape[0]):
        mask[r, np.argsort(score[r], kind="stable")[:k]] = True
    return mask


def refusals(checks, root):
    src = tiny_models.generate("mixtral_f32", root)
    calib = os.path.join(H.SQ_SHARED, "README.md")
    for what, args, needle in [
        ("AWQ", ["quantize", "-m", src, "-o", os.path.join(root, "a.gguf"), "--type", "q4_0", "--method", "awq",
                 "--calib", calib], "does not support expert tensors"),
        ("width pruning", ["prune", "-m", src, "-o", os.path.join(root, "p"), "--method", "width", "--ffn", "0.5",
                           "--calib", calib], "not this method"),
    ]:
        try:
            H.run_cli(args + ["--no-progress"] if args[0] == "quantize" else args)
            checks.check(False, f"{what} on a mixture of experts: refused", "it ran")
        except H.EngineError as e:
            checks.check(needle in str(e) and "mixture-of-experts" in str(e),
                         f"{what} on a mixture of experts: refused by name", str(e).splitlines()[-1])


def expert_pruning(checks, root):
    """`prune --method experts`: every block loses its least chosen experts (the report's routing frequencies,
    which sum to top_k per block: each token picks k), and the pruned model's logits equal the float64 reference
    of the original weights without those experts (their matrices and router rows dropped: the softmax over the
    kept router logits is the original's with the removed ones at minus infinity), within 1e-4 relative."""
    import json

    calib = os.path.join(H.SQ_SHARED, "README.md")
    for name in ["mixtral_f32", "qwen2moe"]:
        src = tiny_models.generate(name, root)
        out, report = os.path.join(root, f"{name}-experts.gguf"), os.path.join(root, f"{name}-experts.json")
        try:
            H.run_cli(["prune", "-m", src, "-o", out, "--method", "experts", "--remove-experts", "2", "--calib", calib,
                       "--calib-samples", "6", "--calib-len", "32", "--scores-json", report, "--no-progress"])
        except H.EngineError as e:
            checks.fail(f"{name}: prune --method experts", e)
            continue
        blocks = json.load(open(report))["blocks"]
        model = R.load(src)
        lowest_ok = True
        for b, layer in zip(blocks, model.layers):
            freq, gone = b["routing_frequency"], b["removed_experts"]
            lowest_ok &= abs(sum(freq) - layer.moe.top_k) < 1e-9
            lowest_ok &= gone == sorted(sorted(range(len(freq)), key=lambda e: (freq[e], e))[:2])
            m = layer.moe
            keep = [e for e in range(len(m.gate)) if e not in gone]
            m.router = m.router[keep]
            m.gate, m.up, m.down = [m.gate[e] for e in keep], [m.up[e] for e in keep], [m.down[e] for e in keep]
        checks.check(lowest_ok, f"{name}: each block's removed experts are its two least chosen",
                     str([(b["routing_frequency"], b["removed_experts"]) for b in blocks]))
        rng = np.random.default_rng(19)
        tokens = [1] + [int(t) for t in rng.integers(3, model.vocab_size, 23)]
        try:
            got = H.engine_logits(out, tokens, "prefill", model.vocab_size)
        except H.EngineError as e:
            checks.fail(f"{name}: logits of the expert-pruned model", e)
            continue
        checks.close(f"{name}: expert-pruned logits vs reference without the removed experts", got,
                     R.forward(model, tokens), TOL_REF)
    for what, src, k, needle in [
        ("more experts than routing leaves", tiny_models.generate("mixtral_f32", root), "3",
         "removing 3 of 4 experts per block; with 2 used per token remove 1 to 2"),
        ("a dense model", tiny_models.generate("llama_mha_f32", root), "1",
         "expert pruning needs a mixture-of-experts model"),
    ]:
        try:
            H.run_cli(["prune", "-m", src, "-o", os.path.join(root, "x.gguf"), "--method", "experts",
                       "--remove-experts", k, "--calib", calib, "--no-progress"])
            checks.check(False, f"expert pruning of {what}: refused", "it ran")
        except H.EngineError as e:
            checks.check(needle in str(e), f"expert pruning of {what}: refused", str(e).splitlines()[-1])


def info(checks, root):
    for name in ["qwen2moe", "mixtral_e8k3_bf16"]:
        path = tiny_models.generate(name, root)
        spec = tiny_models.VARIANTS[name]
        t = {k: a for k, (dt, a) in tiny_models._weights(spec).items()}
        total = sum(a.size for a in t.values())
        unused = sum(a.size for k, a in t.items() if ".experts." in k) * (spec["n_experts"] - spec["top_k"]) \
            // spec["n_experts"]
        out = H.run_cli(["info", "-m", path])
        line = next((x for x in out.splitlines() if x.startswith("experts:")), "")
        want = f"{spec['n_experts']} per block, {spec['top_k']} active per token"
        checks.check(want in line and f"active parameters {total - unused} " in line and f"{total} (" in out,
                     f"{name}: info reports experts and active parameters ({total - unused} of {total})", line)


def mixtral_window(checks, root):
    """MixtralConfig's sliding_window defaults to None (Mistral's to 4096): absent or null is full attention."""
    base = tiny_models.generate("mixtral_e8k3_bf16", root)  # sliding_window 6
    for what, rewrite, want in [("absent", lambda c: {k: v for k, v in c.items() if k != "sliding_window"}, "none"),
                                ("null", lambda c: {**c, "sliding_window": None}, "none"), ("6", lambda c: c, "6")]:
        path = tiny_models.with_config(base, os.path.join(root, "window"), rewrite)
        line = next((x for x in H.run_cli(["info", "-m", path]).splitlines() if x.startswith("sliding window:")), "")
        checks.check(line.split()[-1] == want, f"Mixtral sliding_window {what}: window {want}", line)


def bad_input(checks, root):
    mixtral = tiny_models.generate("mixtral_f32", root)
    qwen = tiny_models.generate("qwen2moe", root)

    def cfg(rewrite):
        return lambda c: {**c, **rewrite}

    for what, base, rewrite, needles in [
        ("top-k above the expert count", mixtral, {"num_experts_per_tok": 5},
         ["num_experts_per_tok = 5 exceeds num_local_experts = 4"]),
        ("zero experts", mixtral, {"num_local_experts": 0}, ["num_local_experts must be an integer in [1"]),
        ("fewer experts in the config than the checkpoint holds", mixtral, {"num_local_experts": 3},
         ["block_sparse_moe.experts.3.", "is expert 3 but config field num_local_experts is 3"]),
        ("more experts in the config than the checkpoint holds", qwen, {"num_experts": 7},
         ["has 6 experts' matrices but config field num_experts is 7"]),
        ("dense layers among the sparse ones", qwen, {"mlp_only_layers": [1]}, ["mlp_only_layers"]),
    ]:
        expect_error(checks, f"HF: {what}",
                     tiny_models.with_config(base, os.path.join(root, "bad-cfg"), cfg(rewrite)), needles)
    expect_error(checks, "HF: router tensor missing",
                 with_tensors(mixtral, os.path.join(root, "no-router"),
                              lambda t: {k: v for k, v in t.items() if k != "model.layers.1.block_sparse_moe.gate.weight"}),
                 ["router tensor blk.1.ffn_gate_inp.weight is missing"])
    expect_error(checks, "HF: one expert matrix missing",
                 with_tensors(mixtral, os.path.join(root, "no-expert"),
                              lambda t: {k: v for k, v in t.items() if k != "model.layers.0.block_sparse_moe.experts.2.w3.weight"}),
                 ["expert 2 of blk.0.ffn_up_exps.weight is missing"])
    expect_error(checks, "HF: Qwen2-MoE without its shared expert",
                 with_tensors(qwen, os.path.join(root, "no-shared"),
                              lambda t: {k: v for k, v in t.items() if "shared_expert" not in k}),
                 ["lacks a shared expert", "qwen2moe"])

    gdir = os.path.join(root, "gguf")
    src = tiny_models.generate_gguf("mixtral_f32", gdir, "F32")
    qsrc = tiny_models.generate_gguf("qwen2moe", gdir, "F32")
    for what, base, keys, needles in [
        ("top-k above the expert count", src, {"llama.expert_used_count": 5},
         ["llama.expert_used_count = 5 must be 1..llama.expert_count (4)"]),
        ("expert count disagreeing with the 3-D tensors", src, {"llama.expert_count": 3},
         ["tensor blk.0.ffn_gate_exps.weight has shape [4,96,64] but the config implies [3,-1,64]"]),
        ("qwen2moe with no experts", qsrc, {"qwen2moe.expert_count": None},
         ["qwen2moe.expert_count is 0 or missing"]),
        ("expert_used_count missing", src, {"llama.expert_used_count": None}, ["llama.expert_used_count"]),
    ]:
        expect_error(checks, f"GGUF: {what}", edited_gguf(base, os.path.join(gdir, "bad.gguf"), keys=keys), needles)
    expect_error(checks, "GGUF: router tensor missing",
                 edited_gguf(src, os.path.join(gdir, "bad.gguf"),
                             tensors=lambda n, a: None if n == "blk.0.ffn_gate_inp.weight" else a),
                 ["router tensor blk.0.ffn_gate_inp.weight is missing"])
    expect_error(checks, "GGUF: an expert tensor with one expert too few",
                 edited_gguf(src, os.path.join(gdir, "bad.gguf"),
                             tensors=lambda n, a: a[:-1] if n == "blk.1.ffn_down_exps.weight" else a),
                 ["blk.1.ffn_down_exps.weight has shape [3,64,96] but the config implies [4,64,96]"])


def main():
    checks = H.Checks("mixture of experts: grouped batches, quantization, refusals, info, bad input")
    root = os.path.join(H.SQ_WORK, "moe")
    grouped_vs_token_by_token(checks, root)
    quantized(checks, root)
    per_expert_gptq(checks, root)
    per_expert_pruning(checks, root)
    per_expert_imatrix(checks, root)
    refusals(checks, root)
    expert_pruning(checks, root)
    info(checks, root)
    mixtral_window(checks, root)
    bad_input(checks, root)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
