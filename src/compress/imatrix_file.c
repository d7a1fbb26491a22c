/* imatrix files (docs/formats.md, "imatrix files"): squeeze's own little-endian layout
 *
 *   "SQIMATRX"  u32 version (1)  u32 n_entries (<= 65536)
 *   per entry:  u32 name_len (1..1024)  name (no NUL)  u64 n_tokens (< 2^63)  u32 n_values (1..2^24)
 *               f32 values[n_values] (finite, >= 0)
 *
 * and nothing after the last entry. The reader checks every length against the bytes left before it reads. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compress/imatrix.h"
#include "core/error.h"
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

sq_error *sq_imatrix_parse(const void *data, size_t size, const char *source, sq_imatrix **out) {
    *out = NULL;
    const char *src = source ? source : "imatrix";
    reader r = {data, size};
    char magic[8];
    uint32_t version, n_entries;
    if (!take(&r, magic, 8) || memcmp(magic, MAGIC, 8))
        return sq_errorf(SQ_ERR_FORMAT, "%s: not an imatrix file (no \"" MAGIC "\" magic)", src);
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
