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


def intn_params(x, qmax):
    """GPTQ's find_params on one group, the scale then stored as f16: (d, z)."""
    lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    if lo == 0 and hi == 0:
        lo, hi = -1.0, 1.0
    s = (hi - lo) / qmax
    return np.float32(np.float16(np.float32(s))), int(np.round(-lo / s))


def pack_run(q, bits):
    """32 unsigned values: 4-bit in ggml's nibble order (byte j: element j low, j + 16 high); 2-bit in pair
    planes (byte j < 8: elements j, j + 8, j + 16, j + 24 in bits 0-1, 2-3, 4-5, 6-7); 3-bit the low two bits
    so, then the third bit of element j in bit j of a little-endian uint32."""
    q = q.astype(np.uint32)
    if bits == 4:
        return (q[:16] | (q[16:] << 4)).astype(np.uint8).tobytes()
    planes = (q & 3).reshape(4, 8)
    out = (planes[0] | planes[1] << 2 | planes[2] << 4 | planes[3] << 6).astype(np.uint8).tobytes()
    if bits == 3:
        out += np.uint32(np.sum(((q >> 2) & 1) << np.arange(32, dtype=np.uint32))).astype("<u4").tobytes()
    return out


def unpack_run(b, bits):
    b = np.frombuffer(b, dtype=np.uint8)
    if bits == 4:
        return np.concatenate([b & 15, b >> 4])
    q = np.concatenate([(b[:8] >> (2 * p)) & 3 for p in range(4)])
    if bits == 3:
        word = int(np.frombuffer(b[8:12].tobytes(), dtype="<u4")[0])
        q = q | (((word >> np.arange(32)) & 1) << 2).astype(np.uint8)
    return q


def intn_quantize(row, bits, group):
    """Groups of `group` (0: the whole row, in blocks of 32 each carrying its d and z): per block f16 d, byte
    z, a zero byte, then q = clip(round((x + z d) / d), 0, 2^bits - 1) in runs of 32 (pack_run)."""
    qmax, block = (1 << bits) - 1, group or 32
    out = bytearray()
    for x in row.reshape(-1, group or len(row)):
        d, z = intn_params(x, qmax)
        m = -np.float64(z) * np.float64(d)
        q = np.clip(np.round((x.astype(np.float64) - m) / np.float64(d)), 0, qmax) if d else np.zeros(len(x))
        q = q.astype(np.uint8)
        for b in range(0, len(x), block):
            out += np.float16(d).tobytes() + bytes([z, 0])
            for r in range(b, b + block, 32):
                out += pack_run(q[r:r + 32], bits)
    return bytes(out)


def intn_dequantize(data, bits, group):
    """value = q * d - z * d (exact in float32), block by block."""
    block = group or 32
    size = 4 + block * bits // 8
    vals = []
    for i in range(0, len(data), size):
        blk = data[i:i + size]
        d = np.float32(np.frombuffer(blk[:2], dtype="<f2")[0])
        m = -np.float32(blk[2]) * d
        for r in range(block // 32):
            q = unpack_run(blk[4 + r * 4 * bits:4 + (r + 1) * 4 * bits], bits).astype(np.float32)
            vals.append((q * d + m).astype(np.float32))
    return np.concatenate(vals).astype(np.float32)


def _sparse24_select(row):
    """Per 32 columns: each group of four keeps its two largest magnitudes (NaN largest; ties: lower position
    first), in column order; positions as 2-bit fields of a little-endian word (bits 2k: kept value k)."""
    g = row.reshape(-1, 8, 4)
    mag = np.where(np.isnan(g), np.inf, np.abs(g))
    top2 = np.sort(np.argsort(-mag, axis=2, kind="stable")[:, :, :2], axis=2)  # [blocks][8][2]
    kept = np.take_along_axis(g, top2, axis=2).reshape(-1, 16).astype(np.float32)
    pos = top2.reshape(-1, 16).astype(np.uint32)
    idx = np.bitwise_or.reduce(pos << (2 * np.arange(16, dtype=np.uint32)), axis=1).astype("<u4")
    return kept, idx


def _sparse24_place(kept, idx, zero):
    """Kept value k at column 4 (k // 2) + its position (value 2g + 1 after 2g), `zero` elsewhere."""
    out = np.repeat(zero[:, None], 32, axis=1).astype(np.float32)
    for k in range(16):
        out[np.arange(len(kept)), 4 * (k // 2) + ((idx >> (2 * k)) & 3).astype(np.int64)] = kept[:, k]
    return out.ravel()


def sparse24_quantize(row, kind):
    """sparse24_q8: d = f16(max |kept| / 127), q = roundf(kept * (1 / d)); sparse24_q4: Q4_0's rule on the
    kept values, d = f16(max / -8) with max the first kept value of largest magnitude, q = min(15,
    trunc(kept * (1 / d) + 8.5)), value k in the low nibble of byte k (k < 8) or high nibble of byte k - 8;
    sparse24_f16: the kept values as f16. Block: [d,] the index word, the values."""
    kept, idx = _sparse24_select(row)
    out = bytearray()
    for v, i in zip(kept, idx):
        if kind == "f16":
            out += i.tobytes() + v.astype("<f2").tobytes()
            continue
        if kind == "q8":
            d = np.float32(np.max(np.abs(v))) / np.float32(127)
            inv = np.float32(1) / d if d else np.float32(0)
            q = round_away(v * inv).astype(np.int8).tobytes()
        else:
            big = v[int(np.argmax(np.abs(v)))]
            d = np.float32(big) / np.float32(-8)
            inv = np.float32(1) / d if d else np.float32(0)
            q = np.minimum(np.trunc(v * inv + np.float32(8.5)), 15).astype(np.uint8)
            q = (q[:8] | (q[8:] << 4)).tobytes()
        out += np.float16(d).tobytes() + i.tobytes() + q
    return bytes(out)


def sparse24_dequantize(data, kind):
    """Pruned columns are 0 * d (f16: +0); kept values q * d (q8), (nibble - 8) * d (q4), the f16 (f16)."""
    if kind == "f16":
        b = np.frombuffer(data, dtype=[("idx", "<u4"), ("v", "<f2", 16)])
        return _sparse24_place(b["v"].astype(np.float32), b["idx"], np.zeros(len(b), np.float32))
    if kind == "q8":
        b = np.frombuffer(data, dtype=[("d", "<f2"), ("idx", "<u4"), ("qs", "i1", 16)])
        q = b["qs"].astype(np.float32)
    else:
        b = np.frombuffer(data, dtype=[("d", "<f2"), ("idx", "<u4"), ("qs", "u1", 8)])
        q = np.concatenate([b["qs"] & 15, b["qs"] >> 4], axis=1).astype(np.float32) - np.float32(8)
    d = b["d"].astype(np.float32)
    return _sparse24_place(q * d[:, None], b["idx"], np.float32(0) * d)
