/* imatrix files (docs/formats.md, "imatrix files"): squeeze's own little-endian layout
 *
 *   "SQIMATRX"  u32 version (1)  u32 n_entries (<= 65536)
 *   per entry:  u32 name_len (1..1024)  name (no NUL)  u64 n_tokens (< 2^63)  u32 n_values (1..2^24)
 *               f32 values[n_values] (finite, >= 0)
 *
 * and nothing after the last entry. The reader checks every length against the bytes left before it reads.
 * Reading also takes llama.cpp's GGUF imatrix (llama-imatrix's default output since 2025): general.type
 * "imatrix", and per weight W the F32 tensors W.in_sum2 (sum over tokens of x_j^2, GGUF ne [n_values, n_mat])
 * and W.counts (the tokens, ne [1, n_mat]); n_mat > 1 (a mixture of experts' per-expert sums) is refused. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compress/imatrix.h"
#include "core/error.h"
#include "formats/gguf.h"
#include "formats/out_file.h"

#define MAGIC "SQIMATRX"
enum { VERSION = 1, MAX_ENTRIES = 65536, MAX_NAME = 1024, MAX_VALUES = 1 << 24 };

typedef struct reader {
    const uint8_t *p;
    size_t left;
} reader;

static int take(reader *r, void *dst, size_t n) {
    if (r->left < n) return 0;
    memcpy(dst, r->p, n);
    r->p += n;
    r->left -= n;
    return 1;
}

static int ends_with(const char *s, const char *suffix) {
    const size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* The entry of weight `base` from its in_sum2 tensor s and counts tensor c: mean x^2 = in_sum2 / count, as
 * llama-quantize computes it; a count of 0 (a weight the calibration never reached) gives no entry. */
static SQ_NODISCARD sq_error *gguf_entry(sq_imatrix *im, const char *src, const char *base,
                                         const sq_gguf_tensor *s, const sq_gguf_tensor *c) {
    if (s->ggml_type != 0 || c->ggml_type != 0)
        return sq_errorf(SQ_ERR_FORMAT, "%s: %s.in_sum2 and %s.counts must be F32 (they are %s and %s)", src,
                         base, base, sq_gguf_ggml_type_name(s->ggml_type),
                         sq_gguf_ggml_type_name(c->ggml_type));
    const int64_t n_mat = s->ndim == 2 ? s->shape[0] : 1, n_values = s->shape[s->ndim - 1];
    if (s->ndim > 2 || c->ndim > 2 || (c->ndim == 2 ? c->shape[0] * c->shape[1] : c->shape[0]) != n_mat)
        return sq_errorf(SQ_ERR_FORMAT, "%s: %s: in_sum2 and counts do not agree on the number of matrices",
                         src, base);
    if (n_mat != 1)
        return sq_errorf(SQ_ERR_UNSUPPORTED,
                         "%s: %s holds the sums of %lld matrices (a mixture of experts' per-expert entries); "
                         "squeeze reads one matrix per weight",
                         src, base, (long long)n_mat);
    if (n_values < 1 || n_values > MAX_VALUES)
        return sq_errorf(SQ_ERR_FORMAT, "%s: %s.in_sum2: %lld values (1..%d)", src, base, (long long)n_values,
                         MAX_VALUES);
    float count;
    memcpy(&count, c->data, sizeof count);
    if (!isfinite(count) || count < 0 || count >= 0x1p63f)
        return sq_errorf(SQ_ERR_FORMAT, "%s: %s.counts is %g (a number of tokens)", src, base, (double)count);
    if (count == 0) return NULL;
    float *values = malloc((size_t)n_values * sizeof *values); /* [n_values] */
    if (!values) return sq_errorf(SQ_ERR_NOMEM, "imatrix: out of memory");
    memcpy(values, s->data, (size_t)n_values * sizeof *values);
    sq_error *err = NULL;
    for (int64_t j = 0; j < n_values && !err; j++) {
        if (!isfinite(values[j]) || values[j] < 0)
            err =
                sq_errorf(SQ_ERR_FORMAT, "%s: %s.in_sum2: value %lld is %g (a sum of squares: finite, >= 0)",
                          src, base, (long long)j, (double)values[j]);
        values[j] /= count;
    }
    if (!err) err = sq_imatrix_add(im, base, strlen(base), (int64_t)count, values, (int)n_values);
    free(values);
    return err;
}

static SQ_NODISCARD sq_error *parse_gguf(const sq_gguf_file *g, const char *src, sq_imatrix *im) {
    char *type;
    int found;
    SQ_TRY(sq_gguf_get_string(g, "general.type", &type, &found));
    const int is_imatrix = found && !strcmp(type, "imatrix");
    sq_error *err = found && !is_imatrix ? sq_errorf(SQ_ERR_FORMAT,
                                                     "%s: not an imatrix file (a GGUF file of general.type "
                                                     "\"%s\", not \"imatrix\")",
                                                     src, type)
                                         : NULL;
    free(type);
    if (!err && !found)
        err = sq_errorf(SQ_ERR_FORMAT,
                        "%s: not an imatrix file (a GGUF file without general.type \"imatrix\")", src);
    for (uint64_t i = 0; i < g->n_tensors && !err; i++) {
        const sq_gguf_tensor *t = &g->tensors[i];
        const int sums = ends_with(t->name, ".in_sum2");
        if (!sums && !ends_with(t->name, ".counts")) {
            err = sq_errorf(SQ_ERR_FORMAT, "%s: tensor %s is neither a .in_sum2 nor a .counts", src, t->name);
            break;
        }
        char base[SQ_TENSOR_NAME_MAX], want[SQ_TENSOR_NAME_MAX + 16];
        const size_t n = strlen(t->name) - strlen(sums ? ".in_sum2" : ".counts");
        memcpy(base, t->name, n);
        base[n] = 0;
        snprintf(want, sizeof want, "%s%s", base, sums ? ".counts" : ".in_sum2");
        const sq_gguf_tensor *pair = NULL;
        for (uint64_t k = 0; k < g->n_tensors && !pair; k++)
            if (!strcmp(g->tensors[k].name, want)) pair = &g->tensors[k];
        if (!err && !pair) err = sq_errorf(SQ_ERR_FORMAT, "%s: %s has no %s beside it", src, t->name, want);
        if (!err && n > MAX_NAME)
            err = sq_errorf(SQ_ERR_FORMAT, "%s: a name of %zu bytes (1..%d)", src, n, MAX_NAME);
        if (!err && sums) err = gguf_entry(im, src, base, t, pair);
    }
    if (!err && g->n_tensors == 0) err = sq_errorf(SQ_ERR_FORMAT, "%s: an imatrix GGUF without tensors", src);
    return err;
}

/* llama.cpp's GGUF imatrix, through the GGUF container parser (which validates every length first). */
static SQ_NODISCARD sq_error *parse_gguf_bytes(const void *data, size_t size, const char *src,
                                               sq_imatrix *im) {
    char *path = strdup(src); /* the container parser names the file in its errors */
    if (!path) return sq_errorf(SQ_ERR_NOMEM, "imatrix: out of memory");
    const sq_mapped_file f = {.data = data, .size = size, .path = path};
    sq_gguf_file *g;
    sq_error *err = sq_gguf_parse(&f, &g);
    if (!err) {
        err = parse_gguf(g, src, im);
        sq_gguf_free(g);
    }
    free(path);
    return err;
}

sq_error *sq_imatrix_parse(const void *data, size_t size, const char *source, sq_imatrix **out) {
    *out = NULL;
    const char *src = source ? source : "imatrix";
    if (size >= 4 && !memcmp(data, "GGUF", 4)) { /* llama.cpp's */
        sq_imatrix *im = calloc(1, sizeof *im);
        if (!im) return sq_errorf(SQ_ERR_NOMEM, "imatrix: out of memory");
        sq_error *err = parse_gguf_bytes(data, size, src, im);
        if (err) {
            sq_imatrix_free(im);
            return err;
        }
        *out = im;
        return NULL;
    }
    reader r = {data, size};
    char magic[8];
    uint32_t version, n_entries;
    if (!take(&r, magic, 8) || memcmp(magic, MAGIC, 8))
        return sq_errorf(SQ_ERR_FORMAT,
                         "%s: not an imatrix file (no \"" MAGIC "\" magic, nor llama.cpp's GGUF)", src);
    if (!take(&r, &version, 4) || !take(&r, &n_entries, 4))
        return sq_errorf(SQ_ERR_FORMAT, "%s: truncated header", src);
    if (version != VERSION)
        return sq_errorf(SQ_ERR_FORMAT, "%s: version %u (expected %d)", src, version, VERSION);
    if (n_entries > MAX_ENTRIES)
        return sq_errorf(SQ_ERR_FORMAT, "%s: %u entries (at most %d)", src, n_entries, MAX_ENTRIES);
    sq_imatrix *im = calloc(1, sizeof *im);
    if (!im) return sq_errorf(SQ_ERR_NOMEM, "imatrix: out of memory");
    sq_error *err = NULL;
    for (uint32_t e = 0; e < n_entries && !err; e++) {
        uint32_t name_len, n_values;
        uint64_t n_tokens;
        if (!take(&r, &name_len, 4) || name_len > r.left) {
            err = sq_errorf(SQ_ERR_FORMAT, "%s: entry %u: truncated name", src, e);
            break;
        }
        const char *name = (const char *)r.p;
        if (name_len == 0 || name_len > MAX_NAME || memchr(name, 0, name_len)) {
            err = sq_errorf(SQ_ERR_FORMAT, "%s: entry %u: a name of %u bytes (1..%d, no NUL)", src, e,
                            name_len, MAX_NAME);
            break;
        }
        r.p += name_len;
        r.left -= name_len;
        for (int i = 0; i < im->n_entries && !err; i++)
            if (strlen(im->entries[i].name) == name_len && !memcmp(im->entries[i].name, name, name_len))
                err = sq_errorf(SQ_ERR_FORMAT, "%s: entry %u: the name %s appears twice", src, e,
                                im->entries[i].name);
        if (err) break;
        if (!take(&r, &n_tokens, 8) || !take(&r, &n_values, 4)) {
            err = sq_errorf(SQ_ERR_FORMAT, "%s: entry %u: truncated counts", src, e);
            break;
        }
        if (n_tokens >> 63 || n_values == 0 || n_values > MAX_VALUES) {
            err = sq_errorf(SQ_ERR_FORMAT, "%s: entry %u: %u values (1..%d) over %llu tokens", src, e,
                            n_values, MAX_VALUES, (unsigned long long)n_tokens);
            break;
        }
        if ((size_t)n_values * 4 > r.left) {
            err = sq_errorf(SQ_ERR_FORMAT, "%s: entry %u: truncated values (%u expected)", src, e, n_values);
            break;
        }
        float *values = malloc((size_t)n_values * sizeof *values); /* [n_values] */
        if (!values) {
            err = sq_errorf(SQ_ERR_NOMEM, "imatrix: out of memory");
            break;
        }
        take(&r, values, (size_t)n_values * 4);
        for (uint32_t j = 0; j < n_values && !err; j++)
            if (!isfinite(values[j]) || values[j] < 0)
                err = sq_errorf(SQ_ERR_FORMAT, "%s: entry %u: value %u is %g (a mean square: finite, >= 0)",
                                src, e, j, (double)values[j]);
        if (!err) err = sq_imatrix_add(im, name, name_len, (int64_t)n_tokens, values, (int)n_values);
        free(values);
    }
    if (!err && r.left) err = sq_errorf(SQ_ERR_FORMAT, "%s: %zu bytes after the last entry", src, r.left);
    if (err) {
        sq_imatrix_free(im);
        return err;
    }
    *out = im;
    return NULL;
}

sq_error *sq_imatrix_load(const char *path, sq_imatrix **out) {
    *out = NULL;
    char *data;
    size_t size;
    SQ_TRY(sq_read_file(path, (size_t)1 << 34, &data, &size));
    sq_error *err = sq_imatrix_parse(data, size, path, out);
    free(data);
    return err;
}

sq_error *sq_imatrix_save(const sq_imatrix *im, const char *path) {
    sq_out_file o;
    SQ_TRY(sq_out_open(&o, path));
    sq_out_write(&o, MAGIC, 8);
    sq_out_u32(&o, VERSION);
    sq_out_u32(&o, (uint32_t)im->n_entries);
    for (int i = 0; i < im->n_entries; i++) {
        const sq_imatrix_entry *e = &im->entries[i];
        sq_out_u32(&o, (uint32_t)strlen(e->name));
        sq_out_write(&o, e->name, strlen(e->name));
        sq_out_u64(&o, (uint64_t)e->n_tokens);
        sq_out_u32(&o, (uint32_t)e->n_values);
        sq_out_write(&o, e->values, (size_t)e->n_values * sizeof *e->values);
    }
    return sq_out_close(&o, NULL);
}
