/* GGUF containers (v2 and v3), as specified in ggml's docs/gguf.md.
 *
 * sq_gguf_parse validates a whole mapped file up front: every string, array and tensor range is checked
 * against the file size before anything is allocated or read, so later accessors need no bounds checks. */
#ifndef SQ_FORMATS_GGUF_H
#define SQ_FORMATS_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "core/mapped_file.h"
#include "core/tensor.h"
#include "model/model.h"
#include "squeeze.h"

#define SQ_GGUF_DEFAULT_ALIGNMENT 32

typedef enum sq_gguf_type {
    SQ_GGUF_UINT8 = 0,
    SQ_GGUF_INT8 = 1,
    SQ_GGUF_UINT16 = 2,
    SQ_GGUF_INT16 = 3,
    SQ_GGUF_UINT32 = 4,
    SQ_GGUF_INT32 = 5,
    SQ_GGUF_FLOAT32 = 6,
    SQ_GGUF_BOOL = 7,
    SQ_GGUF_STRING = 8,
    SQ_GGUF_ARRAY = 9,
    SQ_GGUF_UINT64 = 10,
    SQ_GGUF_INT64 = 11,
    SQ_GGUF_FLOAT64 = 12,
    SQ_GGUF_TYPE_COUNT
} sq_gguf_type;

/* ggml type number of a dtype (its row in core/dtype.h), and back (-1 when squeeze does not handle it); the
 * name ggml gives any type number (ggml.c's type traits), for messages; squeeze's own types (from
 * SQ_GGUF_OWN_TYPE_BASE, docs/formats.md) by their names in upper case. */
uint32_t sq_gguf_ggml_type(sq_dtype dtype);
int sq_gguf_dtype_from_ggml(uint32_t ggml_type);
const char *sq_gguf_ggml_type_name(uint32_t ggml_type);

typedef struct sq_gguf_kv {
    char *key;
    uint32_t type;
    const unsigned char *value; /* scalars: the value; strings: the u64 length; arrays: the first element */
    uint32_t elem_type;         /* arrays only */
    uint64_t n_elems;           /* arrays only */
} sq_gguf_kv;

typedef struct sq_gguf_tensor {
    char name[SQ_TENSOR_NAME_MAX];
    int ndim;
    int64_t shape[SQ_MAX_DIMS]; /* outermost first (GGUF's ne reversed) */
    uint32_t ggml_type;
    const unsigned char *data;
    size_t nbytes; /* 0 for types squeeze does not handle */
} sq_gguf_tensor;

typedef struct sq_gguf_file {
    const sq_mapped_file *file;
    uint32_t version;
    sq_gguf_kv *kvs;
    uint64_t n_kvs;
    sq_gguf_tensor *tensors;
    uint64_t n_tensors;
    size_t alignment;
} sq_gguf_file;

/* Parses and validates the container (f is borrowed and must outlive the result). */
SQ_NODISCARD sq_error *sq_gguf_parse(const sq_mapped_file *f, sq_gguf_file **out);
void sq_gguf_free(sq_gguf_file *g);

const sq_gguf_kv *sq_gguf_find(const sq_gguf_file *g, const char *key);
/* Typed reads; each names the file and key in its error. `found` (may be NULL) reports presence; a missing
 * key is an error only when found is NULL. Integers accept any integer type whose value fits. */
SQ_NODISCARD sq_error *sq_gguf_get_int(const sq_gguf_file *g, const char *key, int64_t lo, int64_t hi,
                                       int64_t *v, int *found);
/* n values in [lo, hi] (lo >= INT_MIN, hi <= INT_MAX): an integer array of exactly n elements, or one integer
 * that holds for all n (llama.cpp's per-layer keys such as {arch}.attention.head_count take either). */
SQ_NODISCARD sq_error *sq_gguf_get_ints(const sq_gguf_file *g, const char *key, int64_t lo, int64_t hi,
                                        int *v, uint64_t n, int *found);
SQ_NODISCARD sq_error *sq_gguf_get_float(const sq_gguf_file *g, const char *key, double *v, int *found);
SQ_NODISCARD sq_error *sq_gguf_get_bool(const sq_gguf_file *g, const char *key, int *v, int *found);
/* A string value as a new NUL-terminated heap string (caller frees). */
SQ_NODISCARD sq_error *sq_gguf_get_string(const sq_gguf_file *g, const char *key, char **v, int *found);
/* The elements of a string array as heap strings (caller frees each and the array). */
SQ_NODISCARD sq_error *sq_gguf_get_strings(const sq_gguf_file *g, const char *key, char ***v, uint64_t *n,
                                           int *found);

/* The model part of a parsed file: config from {arch}.* metadata and the tensors (borrowed from the mapping,
 * which the caller keeps alive). */
SQ_NODISCARD sq_error *sq_gguf_read_model(const sq_gguf_file *g, sq_model *m);
/* The vocabulary in tokenizer.ggml.*, built into a tokenizer; *out is NULL when the file has none. Special
 * ids outside the vocabulary become the tokenizer's warnings. */
SQ_NODISCARD sq_error *sq_gguf_read_vocab(const sq_gguf_file *g, sq_tokenizer **out);
/* The vocabulary of a GGUF file alone (sq_tokenizer_load of a .gguf): the tensors are not read. */
SQ_NODISCARD sq_error *sq_gguf_load_tokenizer(const char *path, sq_tokenizer **out);

#define SQ_GGUF_BOS_ID "tokenizer.ggml.bos_token_id"
#define SQ_GGUF_EOS_ID "tokenizer.ggml.eos_token_id"
/* A special-token id (tokenizer.ggml.*_token_id) of any integer type, -1 when absent. One outside
 * [0, n_tokens) is metadata squeeze can do without: treated as absent and reported in w (may be NULL), as
 * llama.cpp warns and goes on (hub files carry 0xFFFFFFFF for "none"). A non-integer value is an error. */
SQ_NODISCARD sq_error *sq_gguf_special_id(const sq_gguf_file *g, const char *key, int n_tokens,
                                          sq_warnings *w, int *id);

/* Reads a GGUF string (u64 length + bytes) at p; the parser has already validated it. */
static inline uint64_t sq_gguf_string_len(const unsigned char *p) {
    uint64_t n;
    __builtin_memcpy(&n, p, 8);
    return n;
}

#endif
