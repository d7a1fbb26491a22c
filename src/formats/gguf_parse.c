/* GGUF container parsing and typed metadata access. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "formats/gguf.h"

uint32_t sq_gguf_ggml_type(sq_dtype dtype) { return (uint32_t)sq_dtype_info(dtype)->ggml_type; }

int sq_gguf_dtype_from_ggml(uint32_t t) {
    for (int d = 0; d < SQ_DTYPE_COUNT; d++)
        if (sq_dtype_info((sq_dtype)d)->ggml_type >= 0 &&
            (uint32_t)sq_dtype_info((sq_dtype)d)->ggml_type == t)
            return d;
    return -1;
}

const char *sq_gguf_ggml_type_name(uint32_t t) {
    static const char *const names[] = {
        "F32",   "F16",    "Q4_0", "Q4_1", "Q4_2", "Q4_3",    "Q5_0",   "Q5_1",    "Q8_0",  "Q8_1",   "Q2_K",
        "Q3_K",  "Q4_K",   "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S",
        "IQ2_S", "IQ4_XS", "I8",   "I16",  "I32",  "I64",     "F64",    "IQ1_M",   "BF16",
    };
    if (t < sizeof names / sizeof *names) return names[t];
    static const char *const own[SQ_DTYPE_COUNT] = {/* squeeze's own types */
                                                    [SQ_DTYPE_W8A8] = "W8A8",
                                                    [SQ_DTYPE_INT4_G32] = "INT4_G32",
                                                    [SQ_DTYPE_INT4_G64] = "INT4_G64",
                                                    [SQ_DTYPE_INT4_G128] = "INT4_G128",
                                                    [SQ_DTYPE_INT3_G32] = "INT3_G32",
                                                    [SQ_DTYPE_INT3_G64] = "INT3_G64",
                                                    [SQ_DTYPE_INT3_G128] = "INT3_G128",
                                                    [SQ_DTYPE_INT2_G32] = "INT2_G32",
                                                    [SQ_DTYPE_INT2_G64] = "INT2_G64",
                                                    [SQ_DTYPE_INT2_G128] = "INT2_G128",
                                                    [SQ_DTYPE_INT4_G0] = "INT4_G0",
                                                    [SQ_DTYPE_INT3_G0] = "INT3_G0",
                                                    [SQ_DTYPE_INT2_G0] = "INT2_G0",
                                                    [SQ_DTYPE_SPARSE24_Q8] = "SPARSE24_Q8",
                                                    [SQ_DTYPE_SPARSE24_Q4] = "SPARSE24_Q4",
                                                    [SQ_DTYPE_SPARSE24_F16] = "SPARSE24_F16"};
    const int d = sq_gguf_dtype_from_ggml(t);
    return t >= SQ_GGUF_OWN_TYPE_BASE && d >= 0 && own[d] ? own[d] : "unknown";
}

/* A bounds-checked cursor over the mapped file. */
typedef struct cursor {
    const unsigned char *data;
    size_t size, pos;
    const char *path;
} cursor;

static SQ_NODISCARD sq_error *truncated(const cursor *c, const char *what) {
    return sq_errorf(SQ_ERR_FORMAT, "%s: GGUF file truncated: %s at byte %zu runs past the end (%zu bytes)",
                     c->path, what, c->pos, c->size);
}

static SQ_NODISCARD sq_error *take(cursor *c, size_t n, const char *what, const unsigned char **p) {
    *p = NULL;
    if (n > c->size - c->pos) return truncated(c, what);
    *p = c->data + c->pos;
    c->pos += n;
    return NULL;
}

static SQ_NODISCARD sq_error *read_u32(cursor *c, const char *what, uint32_t *v) {
    const unsigned char *p;
    SQ_TRY(take(c, 4, what, &p));
    memcpy(v, p, 4);
    return NULL;
}

static SQ_NODISCARD sq_error *read_u64(cursor *c, const char *what, uint64_t *v) {
    const unsigned char *p;
    SQ_TRY(take(c, 8, what, &p));
    memcpy(v, p, 8);
    return NULL;
}

/* Skips a string, leaving *p at its length field and *len its byte count. */
static SQ_NODISCARD sq_error *skip_string(cursor *c, const char *what, const unsigned char **p,
                                          uint64_t *len) {
    *p = c->data + c->pos;
    SQ_TRY(read_u64(c, what, len));
    if (*len > c->size - c->pos) return truncated(c, what);
    c->pos += (size_t)*len;
    return NULL;
}

static size_t scalar_size(uint32_t type) {
    switch (type) {
    case SQ_GGUF_UINT8:
    case SQ_GGUF_INT8:
    case SQ_GGUF_BOOL:
        return 1;
    case SQ_GGUF_UINT16:
    case SQ_GGUF_INT16:
        return 2;
    case SQ_GGUF_UINT32:
    case SQ_GGUF_INT32:
    case SQ_GGUF_FLOAT32:
        return 4;
    case SQ_GGUF_UINT64:
    case SQ_GGUF_INT64:
    case SQ_GGUF_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

/* Validates one value of `type` at the cursor and moves past it; nested arrays recurse (to a small depth). */
static SQ_NODISCARD sq_error *skip_value(cursor *c, const char *key, uint32_t type, int depth,
                                         uint32_t *elem_type, uint64_t *n_elems) {
    if (type >= SQ_GGUF_TYPE_COUNT)
        return sq_errorf(SQ_ERR_FORMAT, "%s: GGUF key %s has unknown value type %u", c->path, key, type);
    if (type == SQ_GGUF_STRING) {
        const unsigned char *p;
        uint64_t len;
        return skip_string(c, key, &p, &len);
    }
    if (type != SQ_GGUF_ARRAY) {
        const unsigned char *p;
        return take(c, scalar_size(type), key, &p);
    }
    if (depth >= 4) return sq_errorf(SQ_ERR_FORMAT, "%s: GGUF key %s nests arrays too deeply", c->path, key);
    uint32_t et;
    uint64_t n;
    SQ_TRY(read_u32(c, key, &et));
    SQ_TRY(read_u64(c, key, &n));
    if (et >= SQ_GGUF_TYPE_COUNT)
        return sq_errorf(SQ_ERR_FORMAT, "%s: GGUF key %s is an array of unknown type %u", c->path, key, et);
    /* every element takes at least this many bytes, which bounds the count before looping over it */
    size_t min_elem = et == SQ_GGUF_STRING ? 8 : et == SQ_GGUF_ARRAY ? 12 : scalar_size(et);
    if (n > (c->size - c->pos) / min_elem)
        return sq_errorf(SQ_ERR_FORMAT,
                         "%s: GGUF key %s claims %llu array elements, more than the file holds", c->path, key,
                         (unsigned long long)n);
    if (elem_type) *elem_type = et, *n_elems = n;
    if (et != SQ_GGUF_STRING && et != SQ_GGUF_ARRAY) {
        c->pos += (size_t)n * min_elem;
        return NULL;
    }
    for (uint64_t i = 0; i < n; i++) SQ_TRY(skip_value(c, key, et, depth + 1, NULL, NULL));
    return NULL;
}

static int cmp_offset(const void *a, const void *b) {
    const sq_gguf_tensor *x = *(sq_gguf_tensor *const *)a, *y = *(sq_gguf_tensor *const *)b;
    return x->data < y->data ? -1 : x->data > y->data;
}

static const char *kv_key(const void *p) { return ((const sq_gguf_kv *)p)->key; }
static const char *tensor_name(const void *p) { return ((const sq_gguf_tensor *)p)->name; }
static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Rejects repeated names (sorting keeps this fast for files that claim very many entries). */
static SQ_NODISCARD sq_error *check_unique(const char *path, const char *what, const void *items, uint64_t n,
                                           size_t stride, const char *(*name_of)(const void *)) {
    const char **names = malloc((n ? n : 1) * sizeof *names);
    if (!names) return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", path);
    for (uint64_t i = 0; i < n; i++) names[i] = name_of((const char *)items + i * stride);
    qsort(names, n, sizeof *names, cmp_str);
    sq_error *err = NULL;
    for (uint64_t i = 1; i < n && !err; i++)
        if (!strcmp(names[i - 1], names[i]))
            err = sq_errorf(SQ_ERR_FORMAT, "%s: GGUF %s %s appears twice", path, what, names[i]);
    free(names);
    return err;
}

static SQ_NODISCARD sq_error *parse_tensor_info(cursor *c, sq_gguf_tensor *t, uint64_t *offset) {
    const unsigned char *p;
    uint64_t len;
    SQ_TRY(skip_string(c, "tensor name", &p, &len));
    if (len == 0 || len >= SQ_TENSOR_NAME_MAX || memchr(p + 8, 0, (size_t)len))
        return sq_errorf(SQ_ERR_FORMAT,
                         "%s: GGUF tensor name of %llu bytes is empty, too long or contains NUL", c->path,
                         (unsigned long long)len);
    memcpy(t->name, p + 8, (size_t)len);
    t->name[len] = 0;
    uint32_t nd;
    SQ_TRY(read_u32(c, t->name, &nd));
    if (nd < 1 || nd > SQ_MAX_DIMS)
        return sq_errorf(SQ_ERR_FORMAT, "%s: GGUF tensor %s has %u dimensions (1 to %d supported)", c->path,
                         t->name, nd, SQ_MAX_DIMS);
    t->ndim = (int)nd;
    for (uint32_t d = 0; d < nd; d++) {
        uint64_t ne;
        SQ_TRY(read_u64(c, t->name, &ne));
        if (ne == 0 || ne > ((uint64_t)1 << 40))
            return sq_errorf(SQ_ERR_FORMAT, "%s: GGUF tensor %s has an absurd dimension %llu", c->path,
                             t->name, (unsigned long long)ne);
        t->shape[nd - 1 - d] = (int64_t)ne; /* GGUF lists the innermost dimension first */
    }
    SQ_TRY(read_u32(c, t->name, &t->ggml_type));
    SQ_TRY(read_u64(c, t->name, offset));
    int dtype = sq_gguf_dtype_from_ggml(t->ggml_type);
    if (dtype >= 0) {
        t->nbytes = sq_tensor_bytes_for((sq_dtype)dtype, t->ndim, t->shape);
        if (!t->nbytes)
            return sq_errorf(SQ_ERR_FORMAT,
                             "%s: GGUF tensor %s: shape overflows or rows are not whole %s blocks", c->path,
                             t->name, sq_gguf_ggml_type_name(t->ggml_type));
    }
    return NULL;
}

static SQ_NODISCARD sq_error *parse(const sq_mapped_file *f, sq_gguf_file *g) {
    cursor c = {f->data, f->size, 0, f->path};
    const unsigned char *magic;
    SQ_TRY(take(&c, 4, "magic", &magic));
    if (memcmp(magic, "GGUF", 4) != 0)
        return sq_errorf(SQ_ERR_FORMAT, "%s: not a GGUF file (bad magic)", f->path);
    SQ_TRY(read_u32(&c, "version", &g->version));
    if (g->version == 0x02000000 || g->version == 0x03000000)
        return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: big-endian GGUF files are not supported", f->path);
    if (g->version != 2 && g->version != 3)
        return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: unsupported GGUF version %u (2 and 3 are supported)",
                         f->path, g->version);
    SQ_TRY(read_u64(&c, "tensor count", &g->n_tensors));
    SQ_TRY(read_u64(&c, "metadata count", &g->n_kvs));
    /* a key/value pair takes at least 8 + 4 + 1 bytes and a tensor info 8 + 4 + 8 + 4 + 8 */
    if (g->n_kvs > (c.size - c.pos) / 13 || g->n_tensors > (c.size - c.pos) / 32)
        return sq_errorf(SQ_ERR_FORMAT,
                         "%s: GGUF header claims %llu metadata entries and %llu tensors, more "
                         "than the file can hold",
                         f->path, (unsigned long long)g->n_kvs, (unsigned long long)g->n_tensors);
    g->kvs = calloc(g->n_kvs ? g->n_kvs : 1, sizeof *g->kvs);
    g->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *g->tensors);
    if (!g->kvs || !g->tensors) return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", f->path);

    for (uint64_t i = 0; i < g->n_kvs; i++) {
        sq_gguf_kv *kv = &g->kvs[i];
        const unsigned char *p;
        uint64_t len;
        SQ_TRY(skip_string(&c, "metadata key", &p, &len));
        if (len == 0 || len > 65535 || memchr(p + 8, 0, (size_t)len))
            return sq_errorf(SQ_ERR_FORMAT, "%s: GGUF metadata key %llu is empty, too long or contains NUL",
                             f->path, (unsigned long long)i);
        kv->key = strndup((const char *)p + 8, (size_t)len);
        if (!kv->key) return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", f->path);
        SQ_TRY(read_u32(&c, kv->key, &kv->type));
        kv->value = c.data + c.pos;
        SQ_TRY(skip_value(&c, kv->key, kv->type, 0, &kv->elem_type, &kv->n_elems));
        if (kv->type == SQ_GGUF_ARRAY) kv->value += 12;
    }

    SQ_TRY(check_unique(f->path, "metadata key", g->kvs, g->n_kvs, sizeof *g->kvs, kv_key));

    int64_t align = SQ_GGUF_DEFAULT_ALIGNMENT;
    int found;
    SQ_TRY(sq_gguf_get_int(g, "general.alignment", 1, 1 << 30, &align, &found));
    if (align & (align - 1))
        return sq_errorf(SQ_ERR_FORMAT, "%s: GGUF general.alignment %lld is not a power of two", f->path,
                         (long long)align);
    g->alignment = (size_t)align;

    uint64_t *offsets = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *offsets);
    if (!offsets) return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", f->path);
    sq_error *err = NULL;
    for (uint64_t i = 0; i < g->n_tensors && !err; i++) {
        err = parse_tensor_info(&c, &g->tensors[i], &offsets[i]);
    }
    if (!err)
        err = check_unique(f->path, "tensor", g->tensors, g->n_tensors, sizeof *g->tensors, tensor_name);
    size_t data_start = (c.pos + g->alignment - 1) / g->alignment * g->alignment;
    for (uint64_t i = 0; i < g->n_tensors && !err; i++) {
        sq_gguf_tensor *t = &g->tensors[i];
        if (offsets[i] % g->alignment)
            err = sq_errorf(SQ_ERR_FORMAT, "%s: GGUF tensor %s offset %llu is not aligned to %zu", f->path,
                            t->name, (unsigned long long)offsets[i], g->alignment);
        else if (data_start > c.size || offsets[i] > c.size - data_start ||
                 t->nbytes > c.size - data_start - offsets[i])
            err =
                sq_errorf(SQ_ERR_FORMAT,
                          "%s: GGUF tensor %s (%zu bytes at data offset %llu) lies past the end of the file "
                          "(%zu bytes)",
                          f->path, t->name, t->nbytes, (unsigned long long)offsets[i], c.size);
        else
            t->data = c.data + data_start + offsets[i];
        const int dt = sq_gguf_dtype_from_ggml(t->ggml_type);
        const int64_t bad =
            !err && t->data && dt >= 0 && sq_dtype_info((sq_dtype)dt)->nm_m
                ? sq_nm_bad_block((sq_dtype)dt, t->data,
                                  (int64_t)(t->nbytes / sq_dtype_info((sq_dtype)dt)->block_bytes))
                : -1;
        if (bad >= 0)
            err = sq_errorf(SQ_ERR_FORMAT,
                            "%s: GGUF tensor %s: %s block %lld names a position twice or out of order in a "
                            "group of 4 (positions must ascend)",
                            f->path, t->name, sq_gguf_ggml_type_name(t->ggml_type), (long long)bad);
    }
    free(offsets);
    if (err) return err;
    /* tensors must not overlap (only those of known size can be checked) */
    sq_gguf_tensor **order = malloc((g->n_tensors ? g->n_tensors : 1) * sizeof *order);
    if (!order) return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", f->path);
    for (uint64_t i = 0; i < g->n_tensors; i++) order[i] = &g->tensors[i];
    qsort(order, g->n_tensors, sizeof *order, cmp_offset);
    for (uint64_t i = 1; i < g->n_tensors && !err; i++)
        if (order[i - 1]->data + order[i - 1]->nbytes > order[i]->data)
            err = sq_errorf(SQ_ERR_FORMAT, "%s: GGUF tensors %s and %s overlap", f->path, order[i - 1]->name,
                            order[i]->name);
    free(order);
    return err;
}

sq_error *sq_gguf_parse(const sq_mapped_file *f, sq_gguf_file **out) {
    *out = NULL;
    sq_gguf_file *g = calloc(1, sizeof *g);
    if (!g) return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", f->path);
    g->file = f;
    sq_error *err = parse(f, g);
    if (err) {
        sq_gguf_free(g);
        return err;
    }
    *out = g;
    return NULL;
}

void sq_gguf_free(sq_gguf_file *g) {
    if (!g) return;
    if (g->kvs)
        for (uint64_t i = 0; i < g->n_kvs; i++) free(g->kvs[i].key);
    free(g->kvs);
    free(g->tensors);
    free(g);
}

const sq_gguf_kv *sq_gguf_find(const sq_gguf_file *g, const char *key) {
    for (uint64_t i = 0; i < g->n_kvs; i++)
        if (g->kvs[i].key && !strcmp(g->kvs[i].key, key)) return &g->kvs[i];
    return NULL;
}

static const char *type_name(uint32_t t) {
    static const char *const names[] = {"uint8", "int8",   "uint16", "int16",  "uint32", "int32",  "float32",
                                        "bool",  "string", "array",  "uint64", "int64",  "float64"};
    return t < SQ_GGUF_TYPE_COUNT ? names[t] : "unknown";
}

/* Looks a key up; a missing key is an error only when the caller cannot take "not found". */
static SQ_NODISCARD sq_error *lookup(const sq_gguf_file *g, const char *key, int *found,
                                     const sq_gguf_kv **kv) {
    *kv = sq_gguf_find(g, key);
    if (found) *found = *kv != NULL;
    if (!*kv && !found)
        return sq_errorf(SQ_ERR_FORMAT, "%s: GGUF metadata key %s is missing", g->file->path, key);
    return NULL;
}

static SQ_NODISCARD sq_error *wrong_type(const sq_gguf_file *g, const sq_gguf_kv *kv, const char *want) {
    return sq_errorf(SQ_ERR_FORMAT, "%s: GGUF key %s is a %s, expected %s", g->file->path, kv->key,
                     type_name(kv->type), want);
}

/* An integer value of GGUF type `type` at p; 0 when the type is not an integer. */
static int read_int(uint32_t type, const unsigned char *p, int64_t *x) {
    uint64_t u = 0;
    switch (type) {
    case SQ_GGUF_UINT8:
        *x = *p;
        return 1;
    case SQ_GGUF_INT8:
        *x = (int8_t)*p;
        return 1;
    case SQ_GGUF_UINT16:
        *x = (uint16_t)(p[0] | p[1] << 8);
        return 1;
    case SQ_GGUF_INT16:
        *x = (int16_t)(p[0] | p[1] << 8);
        return 1;
    case SQ_GGUF_UINT32: {
        uint32_t w;
        memcpy(&w, p, 4);
        *x = w;
        return 1;
    }
    case SQ_GGUF_INT32: {
        int32_t w;
        memcpy(&w, p, 4);
        *x = w;
        return 1;
    }
    case SQ_GGUF_UINT64:
        memcpy(&u, p, 8);
        *x = u > INT64_MAX ? INT64_MAX : (int64_t)u;
        return 1;
    case SQ_GGUF_INT64:
        memcpy(x, p, 8);
        return 1;
    default:
        return 0;
    }
}

static SQ_NODISCARD sq_error *out_of_range(const sq_gguf_file *g, const char *key, int64_t x, int64_t lo,
                                           int64_t hi) {
    return sq_errorf(SQ_ERR_FORMAT, "%s: GGUF key %s = %lld is outside [%lld, %lld]", g->file->path, key,
                     (long long)x, (long long)lo, (long long)hi);
}

sq_error *sq_gguf_get_int(const sq_gguf_file *g, const char *key, int64_t lo, int64_t hi, int64_t *v,
                          int *found) {
    const sq_gguf_kv *kv;
    SQ_TRY(lookup(g, key, found, &kv));
    if (!kv) return NULL;
    int64_t x;
    if (!read_int(kv->type, kv->value, &x)) return wrong_type(g, kv, "an integer");
    if (x < lo || x > hi) return out_of_range(g, key, x, lo, hi);
    *v = x;
    return NULL;
}

sq_error *sq_gguf_get_ints(const sq_gguf_file *g, const char *key, int64_t lo, int64_t hi, int *v, uint64_t n,
                           int *found) {
    const sq_gguf_kv *kv;
    SQ_TRY(lookup(g, key, found, &kv));
    if (!kv) return NULL;
    if (kv->type != SQ_GGUF_ARRAY) {
        int64_t x;
        SQ_TRY(sq_gguf_get_int(g, key, lo, hi, &x, NULL));
        for (uint64_t i = 0; i < n; i++) v[i] = (int)x;
        return NULL;
    }
    if (kv->n_elems != n)
        return sq_errorf(SQ_ERR_FORMAT, "%s: GGUF key %s holds %llu values, expected one per layer (%llu)",
                         g->file->path, key, (unsigned long long)kv->n_elems, (unsigned long long)n);
    const size_t size = scalar_size(kv->elem_type);
    for (uint64_t i = 0; i < n; i++) {
        int64_t x;
        if (!read_int(kv->elem_type, kv->value + i * size, &x))
            return sq_errorf(SQ_ERR_FORMAT, "%s: GGUF key %s is an array of %s, expected integers",
                             g->file->path, key, type_name(kv->elem_type));
        if (x < lo || x > hi) return out_of_range(g, key, x, lo, hi);
        v[i] = (int)x;
    }
    return NULL;
}

sq_error *sq_gguf_get_float(const sq_gguf_file *g, const char *key, double *v, int *found) {
    const sq_gguf_kv *kv;
    SQ_TRY(lookup(g, key, found, &kv));
    if (!kv) return NULL;
    if (kv->type == SQ_GGUF_FLOAT32) {
        float f;
        memcpy(&f, kv->value, 4);
        *v = f;
    } else if (kv->type == SQ_GGUF_FLOAT64) {
        memcpy(v, kv->value, 8);
    } else {
        return wrong_type(g, kv, "a float");
    }
    return NULL;
}

sq_error *sq_gguf_get_bool(const sq_gguf_file *g, const char *key, int *v, int *found) {
    const sq_gguf_kv *kv;
    SQ_TRY(lookup(g, key, found, &kv));
    if (!kv) return NULL;
    if (kv->type != SQ_GGUF_BOOL) return wrong_type(g, kv, "a bool");
    *v = kv->value[0] != 0;
    return NULL;
}

static SQ_NODISCARD sq_error *copy_string(const sq_gguf_file *g, const char *key, const unsigned char *p,
                                          char **v) {
    uint64_t len = sq_gguf_string_len(p);
    *v = malloc((size_t)len + 1);
    if (!*v) return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory reading %s", g->file->path, key);
    memcpy(*v, p + 8, (size_t)len);
    (*v)[len] = 0;
    return NULL;
}

sq_error *sq_gguf_get_string(const sq_gguf_file *g, const char *key, char **v, int *found) {
    const sq_gguf_kv *kv;
    *v = NULL;
    SQ_TRY(lookup(g, key, found, &kv));
    if (!kv) return NULL;
    if (kv->type != SQ_GGUF_STRING) return wrong_type(g, kv, "a string");
    return copy_string(g, key, kv->value, v);
}

sq_error *sq_gguf_get_strings(const sq_gguf_file *g, const char *key, char ***v, uint64_t *n, int *found) {
    const sq_gguf_kv *kv;
    *v = NULL;
    *n = 0;
    SQ_TRY(lookup(g, key, found, &kv));
    if (!kv) return NULL;
    if (kv->type != SQ_GGUF_ARRAY || kv->elem_type != SQ_GGUF_STRING)
        return wrong_type(g, kv, "a string array");
    char **list = calloc(kv->n_elems ? kv->n_elems : 1, sizeof *list);
    if (!list) return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory reading %s", g->file->path, key);
    const unsigned char *p = kv->value;
    for (uint64_t i = 0; i < kv->n_elems; i++) {
        sq_error *err = copy_string(g, key, p, &list[i]);
        if (err) {
            for (uint64_t j = 0; j < i; j++) free(list[j]);
            free(list);
            return err;
        }
        p += 8 + sq_gguf_string_len(p);
    }
    *v = list;
    *n = kv->n_elems;
    return NULL;
}
