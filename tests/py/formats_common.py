"""Helpers for the format tests: environment, running the CLI, pass/fail bookkeeping, and independent numpy
implementations of safetensors, llama2.c and llama.cpp's q/k permutation (the oracles our C code must agree
with)."""
import json
import os
import struct
import subprocess
import sys

import numpy as np

SHARED = os.environ.get("SQ_SHARED", "../shared")
BIN = os.environ.get("SQ_BIN", "build/squeeze")
WORK = os.environ.get("SQ_WORK", "/tmp")
DATA = os.environ.get("SQ_TEST_DATA", "tests/data")

failures = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        failures.append(what)


def finish():
    if failures:
        print(f"\n{len(failures)} check(s) failed:")
        for f in failures:
            print("  " + f)
        sys.exit(1)
    print("\nall checks passed")


def squeeze(*args):
    p = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def work(name):
    return os.path.join(WORK, name)


def permute(w, n_head):
    """llama.cpp convert_hf_to_gguf.py LlamaModel.permute: Hugging Face (halves) -> GGUF llama (interleaved)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def f32_to_bf16(x):
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_to_f32(b):
    return (b.astype(np.uint32) << 16).view(np.float32)


ST_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}


def write_safetensors(path, tensors):
    """tensors: {name: (dtype string, numpy array)} written in order."""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, (dt, arr) in tensors.items():
        b = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def read_safetensors(path):
    """{name: (dtype string, numpy array)}."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, e2 = e["data_offsets"]
        arr = np.frombuffer(raw[8 + n + b : 8 + n + e2], dtype=ST_DTYPES[e["dtype"]]).reshape(e["shape"])
        out[name] = (e["dtype"], arr)
    return out


def read_llama2c(path):
    """(header dict, {canonical name: array}, byte offset where the RoPE tables start) of a llama2.c file."""
    raw = np.fromfile(path, dtype=np.uint8)
    dim, hid, L, H, KV, V, T = struct.unpack("<7i", raw[:28].tobytes())
    shared, V = V > 0, abs(V)
    hd = dim // H
    f = raw[28:].view(np.float32) if (len(raw) - 28) % 4 == 0 else raw[28 : 28 + (len(raw) - 28) // 4 * 4].view(np.float32)
    pos, t = 0, {}

    def take(shape):
        nonlocal pos
        n = int(np.prod(shape))
        a = f[pos : pos + n].reshape(shape)
        pos += n
        return a

    t["token_embd.weight"] = take((V, dim))
    for name, shape in [("attn_norm", (dim,)), ("attn_q", (dim, dim)), ("attn_k", (KV * hd, dim)),
                        ("attn_v", (KV * hd, dim)), ("attn_output", (dim, dim)), ("ffn_norm", (dim,)),
                        ("ffn_gate", (hid, dim)), ("ffn_down", (dim, hid)), ("ffn_up", (hid, dim))]:
        for l in range(L):
            t[f"blk.{l}.{name}.weight"] = take(shape)
    t["output_norm.weight"] = take((dim,))
    tables = 28 + 4 * pos
    pos += T * hd  # two tables of [T][hd/2]
    if not shared:
        t["output.weight"] = take((V, dim))
    hdr = dict(dim=dim, hidden=hid, layers=L, heads=H, kv_heads=KV, vocab=V, seq_len=T, shared=shared)
    return hdr, t, tables


HF_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight", "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight", "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight", "attn_output.weight": "self_attn.o_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias", "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.bias": "self_attn.v_proj.bias", "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight", "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}


def hf_name(canonical):
    if canonical.startswith("blk."):
        _, l, rest = canonical.split(".", 2)
        return f"model.layers.{l}.{HF_NAMES[rest]}"
    return HF_NAMES[canonical]


def llama3_factors(theta, head_dim, factor, low, high, orig):
    """llama.cpp convert_hf_to_gguf.py LlamaModel.generate_extra_tensors (rope_freqs.weight)."""
    freqs = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim))
    low_wl, high_wl = orig / low, orig / high
    out = []
    for f in freqs:
        wl = 2 * np.pi / f
        if wl < high_wl:
            out.append(1)
        elif wl > low_wl:
            out.append(factor)
        else:
            smooth = (orig / wl - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)
