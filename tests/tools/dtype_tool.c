/* dtype_tool: the table of weight formats (core/dtype.h) and its reference conversions, for the reference
 * test against ggml's own definitions (tests/py/test_dtypes.py).
 *
 *   dtype_tool table             one line per format, tab-separated: name, ggml_type, gguf_file_type,
 *                                block_elems, block_bytes, safetensors dtype, torch_dtype ("-" for none)
 *   dtype_tool quantize NAME [ROW]  float32 values on stdin -> the format's blocks on stdout (from_f32, one
 *                                call for all, or one per ROW values: a scale per row for W8A8)
 *   dtype_tool dequantize NAME   the format's blocks on stdin -> float32 values on stdout (to_f32) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"

/* All of stdin, malloc'ed. */
static unsigned char *read_stdin(size_t *len) {
    size_t cap = 1 << 16;
    unsigned char *buf = malloc(cap);
    *len = 0;
    for (size_t n; buf && (n = fread(buf + *len, 1, cap - *len, stdin)) > 0;) {
        *len += n;
        if (*len < cap) continue;
        unsigned char *grown = realloc(buf, cap *= 2);
        if (!grown) free(buf);
        buf = grown;
    }
    return buf;
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "table")) {
        for (int d = 0; d < SQ_DTYPE_COUNT; d++) {
            const sq_dtype_traits *f = sq_dtype_info((sq_dtype)d);
            printf("%s\t%d\t%d\t%d\t%zu\t%s\t%s\n", f->name, f->ggml_type, f->gguf_file_type, f->block_elems,
                   f->block_bytes, f->safetensors ? f->safetensors : "-",
                   f->torch_dtype ? f->torch_dtype : "-");
        }
        return 0;
    }
    const int quantize = (argc == 3 || argc == 4) && !strcmp(argv[1], "quantize");
    if ((argc != 3 && !quantize) || (!quantize && strcmp(argv[1], "dequantize"))) {
        fprintf(stderr, "usage: dtype_tool table | quantize NAME [ROW] | dequantize NAME\n");
        return 2;
    }
    const int d = sq_dtype_from_name(argv[2]);
    if (d < 0) {
        fprintf(stderr, "dtype_tool: no format named %s\n", argv[2]);
        return 2;
    }
    const sq_dtype_traits *f = sq_dtype_info((sq_dtype)d);
    size_t len, unit = quantize ? (size_t)f->block_elems * sizeof(float) : f->block_bytes;
    unsigned char *in = read_stdin(&len);
    if (!in || len % unit) {
        fprintf(stderr, "dtype_tool: input is not whole blocks of %s\n", f->name);
        free(in);
        return 2;
    }
    const int64_t n = (int64_t)(len / unit) * f->block_elems, row = argc == 4 ? atoll(argv[3]) : n;
    if (n > 0 && (row <= 0 || row % f->block_elems || n % row)) {
        fprintf(stderr, "dtype_tool: rows of %s values do not split %lld values into whole blocks\n",
                argc == 4 ? argv[3] : "?", (long long)n);
        free(in);
        return 2;
    }
    const size_t out_len = quantize ? len / unit * f->block_bytes : (size_t)n * sizeof(float);
    void *out = malloc(out_len ? out_len : 1);
    if (quantize)
        for (int64_t r = 0; n > 0 && r < n / row; r++)
            f->from_f32((const float *)in + r * row,
                        (uint8_t *)out + r * (row / f->block_elems) * f->block_bytes, row);
    else
        f->to_f32(in, out, n);
    fwrite(out, 1, out_len, stdout);
    free(in);
    free(out);
    return 0;
}
