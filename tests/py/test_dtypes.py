"""The table of weight formats (src/core/dtype.h) against ggml's own definitions, through the gguf package
(llama.cpp's Python library), read from the table and run through its reference conversions by
tests/tools/dtype_tool:

  - every format with a ggml type: the number names the same type in gguf.GGMLQuantizationType (its name is
    the format's, upper case), the block is gguf.GGML_QUANT_SIZES' (elements, bytes), and the GGUF file type is
    gguf.LlamaFileType's ALL_F32 / MOSTLY_<NAME>;
  - the reference conversions, where gguf.quants implements them (it dequantizes every format squeeze has but
    Q8_K, an activation format; it quantizes none of the K-quants: their bytes are compared with llama.cpp's
    own llama-quantize by bench/quant_vs_llamacpp.sh): random float32 rows of awkward kinds (uniform, constant, zeros, one outlier,
    one sign, alternating extremes, values halfway between the steps of the Q8_0 and Q4_1 grids; magnitudes
    from 2^-20 to 2^15) quantize to exactly the bytes gguf.quants.quantize writes, and those bytes
    dequantize to exactly gguf.quants.dequantize's values; for the K-quants, the bytes squeeze writes and
    random bytes (every scale and bit pattern; NaN where both give NaN) dequantize to gguf's values. (No negative zeros: which zero a block's minimum
    or signed maximum is, when zeros of both signs tie, differs between numpy's reductions and ggml's C code,
    which squeeze follows; the values are equal either way.)
  - squeeze's own formats (GGUF type numbers from 1024, docs/formats.md), which gguf does not know, against
    numpy definitions written from docs/formats.md (tests/py/own_formats.py): one row at a time, the reference
    quantizer writes numpy's bytes (W8A8: Q8_0's blocks with the row's scale in each; int4_gG: GPTQ's
    asymmetric scale and zero point per group, 4-, 3- or 2-bit; intN_g0 per row, repeated in every block), and those bytes and random ones dequantize to numpy's values
    (W8A8 through gguf's Q8_0, the same layout; the 2:4 formats on rows of every pattern, which their
    quantizers make 2:4 by keeping each group's two largest magnitudes, and on random bytes, whose positions
    may repeat)."""
import os
import subprocess
import sys

import gguf
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import own_formats
from checks import check, failures

TOOL = os.environ.get("SQ_DTYPE_TOOL", "build/tests/dtype_tool")
rng = np.random.default_rng(20261124)


def tool(*args, data=b""):
    p = subprocess.run([TOOL, *args], input=data, capture_output=True)
    if p.returncode != 0:
        raise RuntimeError(f"dtype_tool {' '.join(args)}: {p.stderr.decode()}")
    return p.stdout


def table():
    rows = []
    for line in tool("table").decode().splitlines():
        name, ggml, ftype, elems, nbytes, st, torch = line.split("\t")
        rows.append(dict(name=name, ggml=int(ggml), ftype=int(ftype), elems=int(elems), bytes=int(nbytes)))
    return rows


# Ties: values halfway between two steps of a format's grid, for a block spanning [-a, a]: (step, start) in
# units of a. Q4_0 has none: ggml's C code rounds its x * id + 8.5 fused into an FMA or not depending on the
# build, gguf.quants emulates the fused form in float64 (its FIXME says so), squeeze evaluates it as written.
# Q5_0 has none for the same reason. The K-quants' values come out of a search, so no grid has ties to aim at.
TIE_GRIDS = {"q8_0": (1 / 127, 0), "q4_1": (2 / 15, -1), "q5_1": (2 / 31, -1)}


def awkward_rows(block, tie_grid, n_rows=24, blocks_per_row=9):
    """Rows of whole blocks; each block one of seven kinds at its own scale (ties only with a grid)."""
    x = np.empty((n_rows, blocks_per_row, block), dtype=np.float32)
    for r in range(n_rows):
        for b in range(blocks_per_row):
            a = np.float32(2.0 ** rng.integers(-20, 15) * rng.uniform(1, 2))
            kind = (r * blocks_per_row + b) % 7
            if kind == 0:
                v = rng.uniform(-a, a, block)
            elif kind == 1:
                v = np.full(block, a)
            elif kind == 2:
                v = np.zeros(block)
            elif kind == 3:
                v = rng.uniform(-a / 100, a / 100, block)
                v[rng.integers(block)] = -a
            elif kind == 4:
                v = rng.uniform(a / 2, a, block)
            elif kind == 5:
                v = np.where(np.arange(block) % 2, a, -a)
            elif tie_grid:
                step, start = tie_grid[0] * a, tie_grid[1] * a
                v = np.clip(start + (rng.integers(-16, 16, block) + 0.5) * step, -a, a)
                v[:2] = a, -a
            else:
                v = rng.uniform(-a, a, block)
            x[r, b] = v
    return x.reshape(n_rows, blocks_per_row * block)


def own_q8_0_layout(data, bytes_per_block):
    return np.asarray(gguf.quants.dequantize(np.frombuffer(data, dtype=np.uint8).reshape(-1, bytes_per_block),
                                             gguf.GGMLQuantizationType.Q8_0), dtype=np.float32).ravel()


# squeeze's own formats: (quantize one row, dequantize bytes), from tests/py/own_formats.py
OWN = {
    "w8a8": (own_formats.w8a8_quantize, lambda data: own_q8_0_layout(data, 34)),
}
for bits in (4, 3, 2):  # intN_gG and intN_g0 (per row)
    for group in (32, 64, 128, 0):
        OWN[f"int{bits}_g{group}"] = (lambda r, b=bits, g=group: own_formats.intn_quantize(r, b, g),
                                      lambda data, b=bits, g=group: own_formats.intn_dequantize(data, b, g))
for _kind in ("q8", "q4", "f16"):  # the 2:4 formats: rows of any pattern, each group's two largest kept
    OWN["sparse24_" + _kind] = (lambda r, k=_kind: own_formats.sparse24_quantize(r, k),
                                lambda data, k=_kind: own_formats.sparse24_dequantize(data, k))

rows = table()
check(len(rows) > 0, f"dtype_tool lists {len(rows)} formats")
for f in rows:
    if f["ggml"] >= 1024:
        quantize_row, dequantize = OWN[f["name"]]
        x = awkward_rows(f["elems"], TIE_GRIDS.get("q8_0") if f["name"] == "w8a8" else None)
        ours = tool("quantize", f["name"], str(x.shape[1]), data=x.tobytes())  # a call per row
        check(ours == b"".join(quantize_row(row) for row in x),
              f"{f['name']}: reference from_f32 of {x.shape[0]} rows writes numpy's bytes")
        raw = rng.integers(0, 256, (64, f["bytes"]), dtype=np.uint8)
        for data in (ours, raw.tobytes()):
            back = np.frombuffer(tool("dequantize", f["name"], data=data), dtype=np.float32)
            with np.errstate(invalid="ignore", over="ignore"):
                want = dequantize(data)
            check(np.array_equal(back, want, equal_nan=True),
                  f"{f['name']}: reference to_f32 of {len(data) // f['bytes']} blocks gives numpy's values")
        continue
    if f["ggml"] < 0:
        continue
    qt = gguf.GGMLQuantizationType(f["ggml"])
    check(qt.name == f["name"].upper(), f"{f['name']}: ggml type {f['ggml']} is ggml's {qt.name}")
    check(gguf.GGML_QUANT_SIZES[qt] == (f["elems"], f["bytes"]),
          f"{f['name']}: block of {f['elems']} elements in {f['bytes']} bytes, gguf says {gguf.GGML_QUANT_SIZES[qt]}")
    if f["ftype"] >= 0:
        ft = gguf.LlamaFileType(f["ftype"])
        want = "ALL_F32" if f["name"] == "f32" else "MOSTLY_" + f["name"].upper()
        check(ft.name == want, f"{f['name']}: GGUF file type {f['ftype']} is llama.cpp's {ft.name}")

    x = awkward_rows(f["elems"] if f["elems"] > 1 else 32, TIE_GRIDS.get(f["name"]))
    ours = tool("quantize", f["name"], data=x.tobytes())
    try:
        theirs = np.ascontiguousarray(gguf.quants.quantize(x, qt)).tobytes()
    except NotImplementedError:
        theirs = None
        print(f"  {f['name']}: gguf.quants cannot quantize it; its dequantization is checked on squeeze's bytes")
    if theirs is not None:
        same = ours == theirs
        if not same:
            n = f["bytes"]
            first = next(i for i in range(0, len(ours), n) if ours[i:i + n] != theirs[i:i + n]) // n
            print(f"  first differing block {first}: ours {ours[first * n:(first + 1) * n].hex()} "
                  f"gguf {theirs[first * n:(first + 1) * n].hex()}")
        check(same, f"{f['name']}: reference from_f32 of {x.size} values writes gguf.quants.quantize's bytes")
    blocks = [theirs if theirs is not None else ours]
    if f["elems"] > 1:  # random bytes: every bit pattern, including non-finite f16 scales
        raw = rng.integers(0, 256, (64, f["bytes"]), dtype=np.uint8)
        blocks.append(raw.tobytes())
    for data in blocks:
        try:
            with np.errstate(invalid="ignore", over="ignore"):
                want = np.asarray(gguf.quants.dequantize(np.frombuffer(data, dtype=np.uint8).reshape(-1, f["bytes"]), qt),
                                  dtype=np.float32).ravel()
        except NotImplementedError:
            print(f"  {f['name']}: gguf.quants cannot dequantize it")
            break
        back = np.frombuffer(tool("dequantize", f["name"], data=data), dtype=np.float32)
        same = back.shape == want.shape and np.array_equal(back, want, equal_nan=True)
        check(same, f"{f['name']}: reference to_f32 of {len(data) // f['bytes']} blocks gives gguf.quants.dequantize's values")

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
