"""Compares the tensors of two GGUF files with the gguf package: for each tensor name, its type and whether its
bytes are identical, and for different bytes how many blocks differ and the largest difference of the values
gguf.quants dequantizes. Prints a table; exit status 1 when a type differs (or a tensor is missing).

    python bench/gguf_tensors_diff.py A.gguf B.gguf"""
import sys

import gguf
import numpy as np


def tensors(path):
    return {t.name: t for t in gguf.GGUFReader(path).tensors}


a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
bad = 0
same_bytes = 0
print(f"{'tensor':32} {'A':6} {'B':6} result")
for name in sorted(set(a) | set(b)):
    if name not in a or name not in b:
        print(f"{name:32} only in {'A' if name in a else 'B'}")
        bad += 1
        continue
    ta, tb = a[name], b[name]
    if ta.tensor_type != tb.tensor_type:
        print(f"{name:32} {ta.tensor_type.name:6} {tb.tensor_type.name:6} TYPE DIFFERS")
        bad += 1
        continue
    da, db = np.asarray(ta.data).tobytes(), np.asarray(tb.data).tobytes()
    if da == db:
        same_bytes += 1
        print(f"{name:32} {ta.tensor_type.name:6} {tb.tensor_type.name:6} identical bytes")
        continue
    _, nbytes = gguf.GGML_QUANT_SIZES[ta.tensor_type]
    blocks = sum(da[i:i + nbytes] != db[i:i + nbytes] for i in range(0, len(da), nbytes))
    va = gguf.quants.dequantize(np.asarray(ta.data), ta.tensor_type).astype(np.float64)
    vb = gguf.quants.dequantize(np.asarray(tb.data), tb.tensor_type).astype(np.float64)
    print(f"{name:32} {ta.tensor_type.name:6} {tb.tensor_type.name:6} {blocks} of {len(da) // nbytes} blocks differ, "
          f"max |A - B| {np.abs(va - vb).max():.3g} (values up to {np.abs(va).max():.3g})")
print(f"{same_bytes} of {len(set(a) | set(b))} tensors byte-identical; {bad} type or name mismatches")
sys.exit(1 if bad else 0)
