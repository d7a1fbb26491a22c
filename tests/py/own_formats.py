"""squeeze's own weight formats (docs/formats.md, "squeeze's own types in GGUF"), written here in numpy from
that text and nothing else, for the reference tests (test_dtypes.py, test_gptq.py): the gguf package does not
know them."""
import numpy as np


def round_away(p):
    """C's roundf: halves away from zero."""
    return np.sign(p) * np.floor(np.abs(p) + np.float32(0.5))


def w8a8_quantize(row):
    """One row: d = f16(max |x| / 127) in every 32-value block, q = roundf(x * (1 / d)) with 1/d in float32."""
    d = np.float32(np.max(np.abs(row))) / np.float32(127)
    inv = np.float32(1) / d if d else np.float32(0)
    q = round_away(row * inv).astype(np.int8).reshape(-1, 32)
    blocks = np.empty(len(q), dtype=[("d", "<f2"), ("qs", "i1", 32)])
    blocks["d"], blocks["qs"] = np.float16(d), q
    return blocks.tobytes()


def int4_params(x, qmax=15):
    """GPTQ's find_params on one group, the scale then stored as f16: (d, z)."""
    lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    if lo == 0 and hi == 0:
        lo, hi = -1.0, 1.0
    s = (hi - lo) / qmax
    return np.float32(np.float16(np.float32(s))), int(np.round(-lo / s))


def int4_quantize(row, group):
    """Groups of `group`: f16 d, byte z, a zero byte, then q = clip(round((x + z d) / d), 0, 15) in ggml's
    nibble order (in each run of 32, byte j holds element j low and j + 16 high)."""
    out = bytearray()
    for x in row.reshape(-1, group):
        d, z = int4_params(x)
        m = -np.float64(z) * np.float64(d)
        q = np.clip(np.round((x.astype(np.float64) - m) / np.float64(d)), 0, 15) if d else np.zeros(group)
        q = q.astype(np.uint8).reshape(-1, 32)
        out += np.float16(d).tobytes() + bytes([z, 0]) + (q[:, :16] | (q[:, 16:] << 4)).tobytes()
    return bytes(out)


def int4_dequantize(data, group):
    """value = q * d - z * d (exact in float32)."""
    blocks = np.frombuffer(data, dtype=[("d", "<f2"), ("z", "u1"), ("pad", "u1"), ("qs", "u1", group // 2)])
    d = blocks["d"].astype(np.float32)[:, None]
    qs = blocks["qs"].reshape(len(blocks), -1, 16)
    q = np.concatenate([qs & 15, qs >> 4], axis=2).reshape(len(blocks), group).astype(np.float32)
    return (q * d + (-blocks["z"].astype(np.float32)[:, None] * d)).astype(np.float32).ravel()
