/* edit_model IN OUT FORMAT [OP ...]: loads IN, changes it through the public model-editing calls, and saves
 * it to OUT as FORMAT (gguf, hf, llama2c). The reference tests use it to build pruned and quantized models
 * whose numbers they check against the float64 reference; it includes only squeeze.h, as the coming prune and
 * quantize verbs must. Operations, applied in order:
 *   layers=I,J,...   keep these blocks in this order (sq_model_set_layers)
 *   ffn=L:K          block L keeps its first K FFN units (rows of ffn_gate/ffn_up, columns of ffn_down)
 *   kv=L:K           block L keeps its first K key/value heads and the query heads that share them
 *   quant=NAME:TYPE  re-encodes tensor NAME in format TYPE with the reference quantizer
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "squeeze.h"

static SQ_TAKES_ERROR(1) int fail(sq_error *err) {
    fprintf(stderr, "edit_model: %s\n", sq_error_message(err));
    sq_error_free(err);
    return 1;
}

/* A tensor of block l narrowed to its first `keep` units: rows (outputs) or columns (inputs), `unit` of them
 * per unit kept (a head's head_dim rows, or one FFN unit). */
typedef struct cut {
    const char *suffix;
    int rows;     /* 1: cut rows, 0: cut columns */
    int64_t unit; /* rows or columns per kept unit */
} cut;

/* Narrows the listed tensors of block l (absent ones, e.g. biases, are skipped) in one edit. */
static int narrow(sq_model *m, int l, const cut *cuts, int n_cuts, int keep) {
    sq_tensor_edit edits[8] = {{0}};
    char names[8][96];
    float *vals[8] = {0};
    int n = 0;
    sq_error *err = NULL;
    for (int c = 0; c < n_cuts && c < 8 && !err; c++) {
        snprintf(names[n], sizeof names[n], "blk.%d.%s", l, cuts[c].suffix);
        int i = sq_model_tensor_index(m, names[n]);
        if (i < 0) continue;
        sq_tensor_info ti;
        sq_model_tensor_info(m, i, &ti);
        const int64_t rows = ti.shape[0], cols = ti.ndim == 2 ? ti.shape[1] : 1;
        float *v = vals[n] = malloc((size_t)(rows * cols) * sizeof *v);
        if (!v || (err = sq_model_read_tensor(m, names[n], v, rows * cols))) break;
        const int64_t kr = cuts[c].rows ? keep * cuts[c].unit : rows,
                      kc = cuts[c].rows ? cols : keep * cuts[c].unit;
        for (int64_t r = 0; r < kr; r++) memmove(v + r * kc, v + r * cols, (size_t)kc * sizeof *v);
        edits[n] = (sq_tensor_edit){.name = names[n], .ndim = ti.ndim, .shape = {kr, kc}, .values = v};
        n++;
    }
    if (!err) err = sq_model_edit_tensors(m, edits, n);
    for (int k = 0; k < n_cuts && k < 8; k++) free(vals[k]);
    return err ? fail(err) : 0;
}

static int apply(sq_model *m, const char *op) {
    int l, k;
    char name[128], type[16];
    sq_error *err = NULL;
    if (!strncmp(op, "layers=", 7)) {
        int order[4096], n = 0;
        for (const char *p = op + 7; p && *p && n < 4096; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
            order[n++] = atoi(p);
        err = sq_model_set_layers(m, order, n);
    } else if (sscanf(op, "ffn=%d:%d", &l, &k) == 2) {
        const cut cuts[] = {{"ffn_gate.weight", 1, 1}, {"ffn_up.weight", 1, 1}, {"ffn_down.weight", 0, 1}};
        return narrow(m, l, cuts, 3, k);
    } else if (sscanf(op, "kv=%d:%d", &l, &k) == 2) {
        sq_layer_info li;
        if ((err = sq_model_layer_info(m, l, &li))) return fail(err);
        const int64_t kv = li.head_dim, q = (int64_t)li.head_dim * (li.n_heads / li.n_kv_heads);
        const cut cuts[] = {{"attn_q.weight", 1, q},     {"attn_q.bias", 1, q},    {"attn_k.weight", 1, kv},
                            {"attn_k.bias", 1, kv},      {"attn_v.weight", 1, kv}, {"attn_v.bias", 1, kv},
                            {"attn_output.weight", 0, q}};
        return narrow(m, l, cuts, 7, k);
    } else if (sscanf(op, "quant=%127[^:]:%15s", name, type) == 2) {
        sq_tensor_edit e = {.name = name, .dtype = type};
        err = sq_model_edit_tensors(m, &e, 1);
    } else {
        fprintf(stderr, "edit_model: unknown operation %s\n", op);
        return 2;
    }
    return err ? fail(err) : 0;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: edit_model IN OUT gguf|hf|llama2c [OP ...]\n");
        return 2;
    }
    const sq_file_format format = !strcmp(argv[3], "gguf") ? SQ_FORMAT_GGUF
                                  : !strcmp(argv[3], "hf") ? SQ_FORMAT_SAFETENSORS
                                                           : SQ_FORMAT_LLAMA2C;
    sq_model *m;
    sq_error *err = sq_model_load(argv[1], NULL, &m);
    if (err) return fail(err);
    int rc = 0;
    for (int i = 4; i < argc && !rc; i++) rc = apply(m, argv[i]);
    if (!rc && (err = sq_model_save(m, argv[2], format))) rc = fail(err);
    sq_model_free(m);
    return rc;
}
