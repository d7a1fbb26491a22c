#include "formats/safetensors.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "formats/out_file.h"

#define MAX_HEADER (100u << 20) /* the reference implementation's limit */

/* Every dtype the format defines, with its element size, so that any entry's byte range can be checked; which
 * squeeze dtype each is comes from the table of weight formats (core/dtype.h). */
static const struct {
    const char *name;
    size_t size;
} dtypes[] = {
    {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8},  {"U64", 8},     {"I32", 4},     {"U32", 4},
    {"I16", 2}, {"U16", 2}, {"I8", 1},  {"U8", 1},   {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
};

/* The squeeze dtype safetensors calls `name`, or -1. */
static int dtype_of(const char *name) {
    for (int d = 0; d < SQ_DTYPE_COUNT; d++) {
        const char *st = sq_dtype_info((sq_dtype)d)->safetensors;
        if (st && !strcmp(st, name)) return d;
    }
    return -1;
}

static SQ_NODISCARD sq_error *parse_entry(const char *path, const cJSON *item, size_t data_size,
                                          sq_st_entry *e) {
    const char *name = item->string;
    if (!cJSON_IsObject(item))
        return sq_errorf(SQ_ERR_FORMAT, "%s: safetensors entry %.96s is not an object", path, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return sq_errorf(SQ_ERR_FORMAT,
                         "%s: safetensors entry %.96s needs dtype, shape and data_offsets [begin, end]", path,
                         name);
    size_t elem = 0;
    for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
        if (!strcmp(dt->valuestring, dtypes[i].name)) {
            elem = dtypes[i].size;
            e->dtype = dtype_of(dtypes[i].name);
            snprintf(e->dtype_name, sizeof e->dtype_name, "%s", dtypes[i].name);
        }
    if (!elem)
        return sq_errorf(SQ_ERR_FORMAT, "%s: safetensors entry %.96s has unknown dtype '%.32s'", path, name,
                         dt->valuestring);
    int nd = cJSON_GetArraySize(shape);
    if (nd > SQ_MAX_DIMS)
        return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: safetensors entry %.96s has %d dimensions (at most %d)",
                         path, name, nd, SQ_MAX_DIMS);
    e->ndim = nd;
    uint64_t count = 1;
    const double limit = (double)((uint64_t)1 << 40);
    for (int d = 0; d < nd; d++) {
        const cJSON *v = cJSON_GetArrayItem(shape, d);
        double x = cJSON_IsNumber(v) ? v->valuedouble : -1;
        if (!(x >= 0 && x <= limit && x == floor(x)))
            return sq_errorf(SQ_ERR_FORMAT, "%s: safetensors entry %.96s has an invalid dimension", path,
                             name);
        e->shape[d] = (int64_t)x;
        if (e->shape[d] && count > ((uint64_t)1 << 40) / (uint64_t)e->shape[d])
            return sq_errorf(SQ_ERR_FORMAT, "%s: safetensors entry %.96s: shape product overflows", path,
                             name);
        count *= (uint64_t)e->shape[d];
    }
    double b[2];
    for (int i = 0; i < 2; i++) {
        const cJSON *v = cJSON_GetArrayItem(offs, i);
        b[i] = cJSON_IsNumber(v) ? v->valuedouble : -1;
        if (!(b[i] >= 0 && b[i] == floor(b[i]) && b[i] <= (double)data_size))
            return sq_errorf(SQ_ERR_FORMAT,
                             "%s: safetensors entry %.96s: data_offsets lie outside the %zu data bytes", path,
                             name, data_size);
    }
    if (b[1] < b[0] || (uint64_t)(b[1] - b[0]) != count * elem)
        return sq_errorf(
            SQ_ERR_FORMAT,
            "%s: safetensors entry %.96s: data_offsets [%.0f, %.0f] do not hold %llu %s elements", path, name,
            b[0], b[1], (unsigned long long)count, e->dtype_name);
    e->data = (const unsigned char *)(uintptr_t)(size_t)b[0]; /* relative until the caller rebases it */
    e->nbytes = (size_t)(b[1] - b[0]);
    e->name = strdup(name);
    if (!e->name) return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", path);
    return NULL;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const sq_st_entry *)a)->name, ((const sq_st_entry *)b)->name);
}

static int cmp_begin(const void *a, const void *b) {
    const sq_st_entry *x = a, *y = b;
    return x->data < y->data ? -1 : x->data > y->data;
}

static SQ_NODISCARD sq_error *parse(const sq_mapped_file *f, sq_st_file *st) {
    if (f->size < 8)
        return sq_errorf(SQ_ERR_FORMAT, "%s: %zu bytes is too short for a safetensors file", f->path,
                         f->size);
    uint64_t hlen;
    memcpy(&hlen, f->data, 8);
    if (hlen > MAX_HEADER || hlen > f->size - 8)
        return sq_errorf(SQ_ERR_FORMAT,
                         "%s: safetensors header length %llu runs past the end of the file (%zu bytes)",
                         f->path, (unsigned long long)hlen, f->size);
    const char *header = (const char *)f->data + 8;
    cJSON *root = cJSON_ParseWithLength(header, (size_t)hlen);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return sq_errorf(SQ_ERR_FORMAT, "%s: safetensors header is not a JSON object", f->path);
    }
    const size_t data_start = 8 + (size_t)hlen, data_size = f->size - data_start;
    int n = cJSON_GetArraySize(root);
    st->entries = calloc((size_t)(n ? n : 1), sizeof *st->entries);
    if (!st->entries) {
        cJSON_Delete(root);
        return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", f->path);
    }
    sq_error *err = NULL;
    for (const cJSON *item = root->child; item && !err; item = item->next) {
        if (!strcmp(item->string, "__metadata__")) {
            if (!cJSON_IsObject(item))
                err = sq_errorf(SQ_ERR_FORMAT, "%s: safetensors __metadata__ is not an object", f->path);
            continue;
        }
        err = parse_entry(f->path, item, data_size, &st->entries[st->n_entries]);
        if (!err) st->n_entries++;
    }
    cJSON_Delete(root);
    if (err) return err;
    /* no two tensors may share bytes (relative offsets are still stored in data) */
    sq_st_entry *sorted = malloc((size_t)(st->n_entries ? st->n_entries : 1) * sizeof *sorted);
    if (!sorted) return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", f->path);
    memcpy(sorted, st->entries, (size_t)st->n_entries * sizeof *sorted);
    qsort(sorted, (size_t)st->n_entries, sizeof *sorted, cmp_begin);
    for (int i = 1; i < st->n_entries && !err; i++)
        if ((uintptr_t)sorted[i - 1].data + sorted[i - 1].nbytes > (uintptr_t)sorted[i].data)
            err = sq_errorf(SQ_ERR_FORMAT, "%s: safetensors entries %.96s and %.96s overlap", f->path,
                            sorted[i - 1].name, sorted[i].name);
    qsort(sorted, (size_t)st->n_entries, sizeof *sorted, cmp_name);
    for (int i = 1; i < st->n_entries && !err; i++)
        if (!strcmp(sorted[i - 1].name, sorted[i].name))
            err = sq_errorf(SQ_ERR_FORMAT, "%s: safetensors entry %.96s appears twice", f->path,
                            sorted[i].name);
    free(sorted);
    for (int i = 0; i < st->n_entries; i++)
        st->entries[i].data = f->data + data_start + (uintptr_t)st->entries[i].data;
    return err;
}

sq_error *sq_st_parse(const sq_mapped_file *f, sq_st_file **out) {
    *out = NULL;
    sq_st_file *st = calloc(1, sizeof *st);
    if (!st) return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", f->path);
    st->file = f;
    sq_error *err = parse(f, st);
    if (err) {
        sq_st_free(st);
        return err;
    }
    *out = st;
    return NULL;
}

void sq_st_free(sq_st_file *st) {
    if (!st) return;
    if (st->entries)
        for (int i = 0; i < st->n_entries; i++) free(st->entries[i].name);
    free(st->entries);
    free(st);
}

static SQ_NODISCARD sq_error *build_header(const sq_st_tensor *t, int n, char **json) {
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
    int ok = root && meta && cJSON_AddStringToObject(meta, "format", "pt");
    uint64_t offset = 0;
    for (int i = 0; i < n && ok; i++) {
        cJSON *e = cJSON_AddObjectToObject(root, t[i].name);
        cJSON *shape = e ? cJSON_AddArrayToObject(e, "shape") : NULL;
        cJSON *offs = e ? cJSON_AddArrayToObject(e, "data_offsets") : NULL;
        const char *dt = sq_dtype_info(t[i].dtype)->safetensors;
        ok = e && shape && offs && dt && cJSON_AddStringToObject(e, "dtype", dt);
        for (int d = 0; ok && d < t[i].ndim; d++)
            ok = cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t[i].shape[d]));
        if (ok) ok = cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)offset));
        offset += t[i].nbytes;
        if (ok) ok = cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)offset));
    }
    *json = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return *json ? NULL : sq_errorf(SQ_ERR_NOMEM, "out of memory building a safetensors header");
}

sq_error *sq_st_write(const char *path, const sq_st_tensor *t, int n, sq_st_fetch fetch, void *user) {
    for (int i = 0; i < n; i++)
        if (!sq_dtype_info(t[i].dtype)->safetensors)
            return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: safetensors cannot hold %s tensor %s", path,
                             sq_dtype_info(t[i].dtype)->name, t[i].name);
    char *json;
    SQ_TRY(sq_error_wrap(build_header(t, n, &json), "%s", path));
    sq_out_file o;
    sq_error *err = sq_out_open(&o, path);
    if (err) {
        free(json);
        return err;
    }
    /* the header is padded with spaces so the data starts 8-byte aligned, as the reference writer does */
    uint64_t len = strlen(json), padded = (len + 7) / 8 * 8;
    sq_out_u64(&o, padded);
    sq_out_write(&o, json, (size_t)len);
    for (uint64_t i = len; i < padded; i++) sq_out_write(&o, " ", 1);
    free(json);
    for (int i = 0; i < n && !err; i++) {
        const void *data;
        void *scratch = NULL;
        err = fetch(user, i, &data, &scratch);
        if (!err) sq_out_write(&o, data, t[i].nbytes);
        free(scratch);
    }
    return sq_out_close(&o, err);
}
