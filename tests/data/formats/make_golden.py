"""Writes stories15M-gguf-golden.txt: reference values of the shared stories15M GGUF tensors as the `gguf`
package (llama.cpp's own Python reader) dequantizes them, for test_formats_shared.c to compare against.

Usage: python make_golden.py SHARED_DIR > stories15M-gguf-golden.txt
(tests/py/test_formats_gguf.py regenerates this text and checks it matches the committed file.)

Each line: file tag, tensor name, element count, float64 sum of all values, then 16 "index:value" samples
(flat row-major index, value printed with 9 significant digits, enough to round-trip a float32)."""
import sys

import gguf
import numpy as np


def golden_lines(shared):
    lines = []
    for tag in ("f16", "q8_0"):
        reader = gguf.GGUFReader(f"{shared}/models/stories15M-{tag}.gguf")
        for t in reader.tensors:
            values = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32).ravel()
            n = values.size
            picks = sorted({(k * 7919 * 104729 + k * k * 31) % n for k in range(15)} | {n - 1})
            samples = " ".join(f"{i}:{values[i]:.9g}" for i in picks)
            lines.append(f"{tag} {t.name} {n} {values.astype(np.float64).sum():.17g} {samples}")
    return lines


if __name__ == "__main__":
    print("\n".join(golden_lines(sys.argv[1])))
