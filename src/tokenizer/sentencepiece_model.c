/* SentencePiece tokenizer.model: a protobuf ModelProto, read with a small bounds-checked wire-format reader.
 * Fields used (sentencepiece_model.proto): pieces = 1 {piece = 1, score = 2, type = 3}, trainer_spec = 2
 * {model_type = 3, byte_fallback = 35, unk_id = 40, bos_id = 41, eos_id = 42, pad_id = 43}, normalizer_spec =
 * 3 {name = 1, precompiled_charsmap = 2, add_dummy_prefix = 3, remove_extra_whitespaces = 4,
 * escape_whitespaces = 5}. Only BPE models with the identity normaliser are supported (Llama-2's kind). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/error.h"
#include "tokenizer/tokenizer_internal.h"

typedef struct pb_reader {
    const unsigned char *p, *end;
} pb_reader;

typedef struct pb_field {
    uint32_t number;
    int wire;
    uint64_t value;          /* varint and fixed fields */
    const unsigned char *at; /* length-delimited fields */
    size_t len;
} pb_field;

static int read_varint(pb_reader *r, uint64_t *v) {
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) return -1;
        unsigned char b = *r->p++;
        x |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* 1: a field was read, 0: end of message, -1: malformed. */
static int next_field(pb_reader *r, pb_field *f) {
    if (r->p == r->end) return 0;
    uint64_t key;
    if (read_varint(r, &key) || (key >> 3) == 0 || (key >> 3) > UINT32_MAX) return -1;
    f->number = (uint32_t)(key >> 3);
    f->wire = (int)(key & 7);
    switch (f->wire) {
    case 0:
        return read_varint(r, &f->value) ? -1 : 1;
    case 1:
    case 5: {
        size_t n = f->wire == 1 ? 8 : 4;
        if ((size_t)(r->end - r->p) < n) return -1;
        f->value = 0;
        for (size_t i = 0; i < n; i++) f->value |= (uint64_t)r->p[i] << (8 * i);
        r->p += n;
        return 1;
    }
    case 2: {
        uint64_t len;
        if (read_varint(r, &len) || len > (uint64_t)(r->end - r->p)) return -1;
        f->at = r->p;
        f->len = (size_t)len;
        r->p += len;
        return 1;
    }
    default:
        return -1; /* groups (3, 4) are not used by sentencepiece; 6 and 7 do not exist */
    }
}

static float fixed32_float(uint64_t v) {
    uint32_t u = (uint32_t)v;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

typedef struct spm_model {
    int n;
    size_t cap_pieces, cap_scores, cap_types;
    char **pieces;
    float *scores;
    int32_t *types;
    int64_t model_type, byte_fallback, unk_id, bos_id, eos_id, pad_id;
    int64_t add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces;
    char *normalizer_name;
    size_t charsmap_len;
} spm_model;

static void spm_model_free(spm_model *m) {
    for (int i = 0; i < m->n; i++) free(m->pieces[i]);
    free(m->pieces);
    free(m->scores);
    free(m->types);
    free(m->normalizer_name);
}

static char *dup_bytes(const unsigned char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n), d[n] = 0;
    return d;
}

static SQ_NODISCARD sq_error *read_piece(const char *path, spm_model *m, const unsigned char *at,
                                         size_t len) {
    int i = m->n;
    if (m->n == 1 << 26) return sq_errorf(SQ_ERR_FORMAT, "%s: more than %d pieces", path, 1 << 26);
    size_t need = (size_t)m->n + 1;
    if (SQ_ARRAY_RESERVE(m->pieces, m->cap_pieces, need) ||
        SQ_ARRAY_RESERVE(m->scores, m->cap_scores, need) || SQ_ARRAY_RESERVE(m->types, m->cap_types, need))
        return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", path);
    pb_reader r = {at, at + len};
    pb_field f;
    int rc, have_piece = 0;
    m->pieces[i] = NULL;
    m->scores[i] = 0;
    m->types[i] = SQ_TOKEN_NORMAL;
    m->n++;
    while ((rc = next_field(&r, &f)) == 1) {
        if (f.number == 1 && f.wire == 2) {
            free(m->pieces[i]); /* a repeated field replaces the earlier value */
            m->pieces[i] = NULL;
            if (!f.len || memchr(f.at, 0, f.len))
                return sq_errorf(SQ_ERR_FORMAT, "%s: piece %d is empty or contains a NUL byte", path, i);
            if (!(m->pieces[i] = dup_bytes(f.at, f.len)))
                return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", path);
            have_piece = 1;
        } else if (f.number == 2 && f.wire == 5) {
            m->scores[i] = fixed32_float(f.value);
            if (!isfinite(m->scores[i]))
                return sq_errorf(SQ_ERR_FORMAT, "%s: piece %d has a non-finite score", path, i);
        } else if (f.number == 3 && f.wire == 0) {
            if (f.value < SQ_TOKEN_NORMAL || f.value > SQ_TOKEN_BYTE)
                return sq_errorf(SQ_ERR_FORMAT, "%s: piece %d has unknown type %llu", path, i,
                                 (unsigned long long)f.value);
            m->types[i] = (int32_t)f.value;
        }
    }
    if (rc < 0) return sq_errorf(SQ_ERR_FORMAT, "%s: piece %d is malformed protobuf", path, i);
    if (!have_piece) return sq_errorf(SQ_ERR_FORMAT, "%s: piece %d has no text", path, i);
    return NULL;
}

static SQ_NODISCARD sq_error *read_trainer_spec(const char *path, spm_model *m, const unsigned char *at,
                                                size_t len) {
    pb_reader r = {at, at + len};
    pb_field f;
    int rc;
    while ((rc = next_field(&r, &f)) == 1) {
        if (f.wire != 0) continue;
        int64_t v = (int64_t)f.value; /* negative int32 values arrive sign-extended to 64 bits */
        switch (f.number) {
        case 3:
            m->model_type = v;
            break;
        case 35:
            m->byte_fallback = v;
            break;
        case 40:
            m->unk_id = v;
            break;
        case 41:
            m->bos_id = v;
            break;
        case 42:
            m->eos_id = v;
            break;
        case 43:
            m->pad_id = v;
            break;
        default:
            break;
        }
    }
    return rc < 0 ? sq_errorf(SQ_ERR_FORMAT, "%s: trainer_spec is malformed protobuf", path) : NULL;
}

static SQ_NODISCARD sq_error *read_normalizer_spec(const char *path, spm_model *m, const unsigned char *at,
                                                   size_t len) {
    pb_reader r = {at, at + len};
    pb_field f;
    int rc;
    while ((rc = next_field(&r, &f)) == 1) {
        if (f.number == 1 && f.wire == 2) {
            free(m->normalizer_name);
            if (!(m->normalizer_name = dup_bytes(f.at, f.len)))
                return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", path);
        } else if (f.number == 2 && f.wire == 2) {
            m->charsmap_len = f.len;
        } else if (f.wire == 0 && f.number == 3) {
            m->add_dummy_prefix = (int64_t)f.value;
        } else if (f.wire == 0 && f.number == 4) {
            m->remove_extra_whitespaces = (int64_t)f.value;
        } else if (f.wire == 0 && f.number == 5) {
            m->escape_whitespaces = (int64_t)f.value;
        }
    }
    return rc < 0 ? sq_errorf(SQ_ERR_FORMAT, "%s: normalizer_spec is malformed protobuf", path) : NULL;
}

static SQ_NODISCARD sq_error *read_model(const char *path, const unsigned char *data, size_t size,
                                         spm_model *m) {
    /* proto2 defaults */
    m->model_type = 1;
    m->unk_id = 0, m->bos_id = 1, m->eos_id = 2, m->pad_id = -1;
    m->add_dummy_prefix = 1, m->remove_extra_whitespaces = 1, m->escape_whitespaces = 1;
    pb_reader r = {data, data + size};
    pb_field f;
    int rc;
    while ((rc = next_field(&r, &f)) == 1) {
        if (f.wire != 2) continue;
        if (f.number == 1)
            SQ_TRY(read_piece(path, m, f.at, f.len));
        else if (f.number == 2)
            SQ_TRY(read_trainer_spec(path, m, f.at, f.len));
        else if (f.number == 3)
            SQ_TRY(read_normalizer_spec(path, m, f.at, f.len));
    }
    if (rc < 0)
        return sq_errorf(SQ_ERR_FORMAT, "%s: not a SentencePiece model (malformed or truncated protobuf)",
                         path);
    return NULL;
}

static SQ_NODISCARD sq_error *check_model(const char *path, spm_model *m, sq_warnings *w) {
    if (m->n == 0) return sq_errorf(SQ_ERR_FORMAT, "%s: SentencePiece model has no pieces", path);
    static const char *const kinds[] = {"?", "unigram", "bpe", "word", "char"};
    if (m->model_type != 2)
        return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: SentencePiece model type %s is not supported (only BPE)",
                         path, m->model_type >= 1 && m->model_type <= 4 ? kinds[m->model_type] : "unknown");
    if ((m->normalizer_name && strcmp(m->normalizer_name, "identity")) || m->charsmap_len)
        return sq_errorf(SQ_ERR_UNSUPPORTED,
                         "%s: SentencePiece normaliser \"%s\" is not supported (only identity)", path,
                         m->normalizer_name ? m->normalizer_name : "");
    if (m->remove_extra_whitespaces || !m->escape_whitespaces)
        return sq_errorf(
            SQ_ERR_UNSUPPORTED,
            "%s: SentencePiece normaliser with remove_extra_whitespaces=%d escape_whitespaces=%d is not "
            "supported (Llama-2 uses 0 and 1)",
            path, (int)m->remove_extra_whitespaces, (int)m->escape_whitespaces);
    /* sentencepiece itself finds its special pieces by text, so a stray id here does not stop it: neither
     * does it stop squeeze, which treats it as absent */
    int64_t *ids[] = {&m->unk_id, &m->bos_id, &m->eos_id, &m->pad_id};
    const char *names[] = {"unk_id", "bos_id", "eos_id", "pad_id"};
    for (int k = 0; k < 4; k++)
        if (*ids[k] < -1 || *ids[k] >= m->n) {
            SQ_TRY(sq_warn(w, "%s: trainer_spec.%s %lld is outside the %d pieces; treated as absent", path,
                           names[k], (long long)*ids[k], m->n));
            *ids[k] = -1;
        }
    return NULL;
}

sq_error *sq_load_sentencepiece_model(const char *path, const unsigned char *data, size_t size,
                                      sq_tokenizer **out) {
    spm_model m = {0};
    sq_warnings warnings = {0};
    sq_error *err = read_model(path, data, size, &m);
    if (!err) err = check_model(path, &m, &warnings);
    if (!err) {
        sq_vocab_spec spec = {
            .type = SQ_TOKENIZER_SPM_BPE,
            .n_tokens = m.n,
            .tokens = (const char *const *)m.pieces,
            .scores = m.scores,
            .types = m.types,
            .add_space_prefix = m.add_dummy_prefix != 0,
            .bos_id = (int)m.bos_id,
            .eos_id = (int)m.eos_id,
            .unk_id = (int)m.unk_id,
            .pad_id = (int)m.pad_id,
            .add_bos = m.bos_id >= 0, /* Llama's convention: sentences start with BOS */
            .warnings = &warnings,
        };
        err = sq_tokenizer_from_spec(&spec, out);
        if (err) err = sq_error_wrap(err, "%s", path);
    }
    spm_model_free(&m);
    sq_warnings_free(&warnings);
    return err;
}
