"""A minimal safetensors reader and writer on numpy (the `safetensors` package is not in the venv and would
pull torch). Format: 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}}
(offsets relative to the data section), optional "__metadata__", then the raw little-endian tensor bytes.

numpy has no bfloat16: BF16 tensors are carried as uint16 bit patterns (see bf16_bits / bf16_to_f32).
"""

import json
import struct

import numpy as np

_NP_OF_DTYPE = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
}


def bf16_bits(x):
    """Rounds float32 values to bfloat16 (nearest, ties to even) and returns the uint16 bit patterns."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def bf16_to_f32(bits):
    """Exact upcast of bfloat16 bit patterns (uint16) to float32."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def save(path, tensors, metadata=None):
    """Writes {name: (safetensors_dtype, array)} to path; arrays must already hold that dtype's values
    (uint16 bit patterns for BF16)."""
    header = {}
    blobs = []
    offset = 0
    for name, (dtype, arr) in tensors.items():
        want = _NP_OF_DTYPE[dtype]
        arr = np.ascontiguousarray(arr)
        if arr.dtype != want:
            raise ValueError(f"{name}: array dtype {arr.dtype} does not match {dtype}")
        data = arr.astype(want, copy=False).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata is not None:
        header["__metadata__"] = metadata
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the data section starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for data in blobs:
            f.write(data)
    return offset


def load(path):
    """Reads a safetensors file into {name: (safetensors_dtype, array)} (BF16 as uint16 bit patterns)."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: too short for a safetensors header")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise ValueError(f"{path}: header length {n} runs past the end")
    header = json.loads(blob[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = _NP_OF_DTYPE[info["dtype"]]
        begin, end = info["data_offsets"]
        count = int(np.prod(info["shape"], dtype=np.int64))
        if end - begin != count * dt.itemsize or base + end > len(blob):
            raise ValueError(f"{path}: tensor {name} has inconsistent offsets {begin}..{end}")
        arr = np.frombuffer(blob, dtype=dt, count=count, offset=base + begin).reshape(info["shape"])
        out[name] = (info["dtype"], arr)
    return out


def to_f64(dtype, arr):
    """A stored tensor as float64, upcast exactly."""
    if dtype == "BF16":
        return bf16_to_f32(arr).astype(np.float64)
    return np.asarray(arr, dtype=np.float64)
