/* Reference log-prob files: what --save-logits writes and --ref-logits reads, so a reference model's
 * distributions are computed once and reused across many compressed variants.
 *
 * Little-endian. A 64-byte header (magic "SQREFLP1", then uint32 version=1, n_vocab, n_ctx, protocol,
 * stride, top_k, then uint64 n_ids, ids_hash (FNV-1a over the int32 ids), n_records, reserved=0), then one
 * record per scored token in (window, position) order: float32 log-prob of the scored token, float32 mass
 * outside the top k, int32 ids[top_k] and float32 log-probs[top_k], most probable first. Log-probs are
 * computed in double precision and stored as float32. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/mapped_file.h"
#include "eval/eval.h"

#define REF_MAGIC "SQREFLP1"
enum { REF_HEADER_BYTES = 64, REF_VERSION = 1 };

typedef struct ref_header {
    char magic[8];
    uint32_t version, n_vocab, n_ctx, protocol, stride, top_k;
    uint64_t n_ids, ids_hash, n_records, reserved;
} ref_header;
_Static_assert(sizeof(ref_header) == REF_HEADER_BYTES, "reference file header is 64 bytes");

struct sq_ref_file {
    char *path;
    int fd;              /* writing */
    sq_mapped_file *map; /* reading */
    int top_k, n_vocab;
    size_t record_bytes;
};

uint64_t sq_ids_hash(const int32_t *ids, int64_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (int64_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)ids[i];
        for (int b = 0; b < 4; b++) h = (h ^ ((v >> (8 * b)) & 0xff)) * 1099511628211ULL;
    }
    return h;
}

static size_t record_bytes(int top_k) { return 8 + (size_t)top_k * 8; }

static sq_ref_file *ref_file_new(const char *path, int top_k, int n_vocab) {
    sq_ref_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return NULL;
    }
    f->fd = -1;
    f->top_k = top_k;
    f->n_vocab = n_vocab;
    f->record_bytes = record_bytes(top_k);
    return f;
}

sq_error *sq_ref_file_create(const char *path, const sq_ref_file_key *key, sq_ref_file **out) {
    *out = NULL;
    if (key->top_k < 1 || key->top_k > key->n_vocab)
        return sq_errorf(SQ_ERR_INVALID_ARG, "%s: top-k %d is outside 1..%d", path, key->top_k, key->n_vocab);
    sq_ref_file *f = ref_file_new(path, key->top_k, key->n_vocab);
    if (!f) return sq_errorf(SQ_ERR_NOMEM, "out of memory");
    f->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (f->fd < 0) {
        sq_error *err = sq_errorf(SQ_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        sq_error_free(sq_ref_file_close(f, 1));
        return err;
    }
    ref_header h = {.version = REF_VERSION,
                    .n_vocab = (uint32_t)key->n_vocab,
                    .n_ctx = (uint32_t)key->n_ctx,
                    .protocol = (uint32_t)key->protocol,
                    .stride = (uint32_t)key->stride,
                    .top_k = (uint32_t)key->top_k,
                    .n_ids = (uint64_t)key->n_ids,
                    .ids_hash = key->ids_hash,
                    .n_records = (uint64_t)key->n_records};
    memcpy(h.magic, REF_MAGIC, 8);
    off_t total = REF_HEADER_BYTES + (off_t)key->n_records * (off_t)f->record_bytes;
    if (pwrite(f->fd, &h, sizeof h, 0) != (ssize_t)sizeof h || ftruncate(f->fd, total) != 0) {
        sq_error *err = sq_errorf(SQ_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
        sq_error_free(sq_ref_file_close(f, 1)); /* the write error says more */
        return err;
    }
    *out = f;
    return NULL;
}

static const char *protocol_name(uint32_t p) {
    return p == SQ_PPL_WINDOWS       ? "windows"
           : p == SQ_PPL_STRIDE      ? "stride"
           : p == SQ_PPL_SECOND_HALF ? "second-half"
                                     : "?";
}

/* A damaged record must neither steer reads out of bounds (an id outside the vocabulary) nor give a silently
 * wrong KL: log-probs are finite, <= 0 and best first, ids distinct, the tail mass in [0, 1], and the stored
 * distribution sums to 1 (float32 rounding aside). seen: NULL when out of memory. */
static SQ_NODISCARD sq_error *check_record(const sq_ref_file *f, uint64_t r, uint64_t *seen) {
    if (!seen) return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", f->path);
    const int32_t *ids;
    const float *lps;
    float lp, tail;
    sq_ref_file_read(f, (int64_t)r, &lp, &tail, &ids, &lps);
    if (!(isfinite(lp) && lp <= 0) || !(tail >= 0 && tail <= 1))
        return sq_errorf(SQ_ERR_FORMAT, "%s: record %llu: target log-prob %g or tail mass %g is out of range",
                         f->path, (unsigned long long)r, lp, tail);
    double mass = tail;
    for (int i = 0; i < f->top_k; i++) {
        int bad_id = ids[i] < 0 || ids[i] >= f->n_vocab || seen[ids[i]] == r + 1;
        if (bad_id || !(isfinite(lps[i]) && lps[i] <= 0) || (i > 0 && lps[i] > lps[i - 1]))
            return sq_errorf(SQ_ERR_FORMAT, "%s: record %llu holds an invalid entry %d (id %d, log-prob %g)",
                             f->path, (unsigned long long)r, i, ids[i], lps[i]);
        seen[ids[i]] = r + 1;
        mass += exp(lps[i]);
    }
    if (fabs(mass - 1) > 1e-3)
        return sq_errorf(SQ_ERR_FORMAT, "%s: record %llu: probabilities sum to %.6f, not 1", f->path,
                         (unsigned long long)r, mass);
    return NULL;
}

sq_error *sq_ref_file_open(const char *path, const sq_ref_file_key *expect, sq_ref_file **out) {
    *out = NULL;
    sq_mapped_file *map;
    SQ_TRY(sq_mapped_file_open(path, &map));
    ref_header h;
    sq_error *err = NULL;
    if (map->size < sizeof h || memcmp(map->data, REF_MAGIC, 8) != 0) {
        err = sq_errorf(SQ_ERR_FORMAT, "%s: not a squeeze reference logits file (bad magic)", path);
        goto fail;
    }
    memcpy(&h, map->data, sizeof h);
    if (h.version != REF_VERSION) {
        err = sq_errorf(SQ_ERR_FORMAT, "%s: version %u, expected %d", path, h.version, REF_VERSION);
        goto fail;
    }
    if (h.n_vocab != (uint32_t)expect->n_vocab) {
        err = sq_errorf(SQ_ERR_INVALID_ARG, "%s: made with a vocabulary of %u tokens, the model has %d", path,
                        h.n_vocab, expect->n_vocab);
        goto fail;
    }
    if (h.n_ids != (uint64_t)expect->n_ids || h.ids_hash != expect->ids_hash) {
        err = sq_errorf(
            SQ_ERR_INVALID_ARG,
            "%s: made from different tokens (%llu ids, hash %016llx; this text gives %lld, %016llx)", path,
            (unsigned long long)h.n_ids, (unsigned long long)h.ids_hash, (long long)expect->n_ids,
            (unsigned long long)expect->ids_hash);
        goto fail;
    }
    if (h.n_ctx != (uint32_t)expect->n_ctx || h.protocol != (uint32_t)expect->protocol ||
        h.stride != (uint32_t)expect->stride) {
        err = sq_errorf(SQ_ERR_INVALID_ARG,
                        "%s: made with ctx %u, protocol %s, stride %u; this run has ctx %d, "
                        "protocol %s, stride %d",
                        path, h.n_ctx, protocol_name(h.protocol), h.stride, expect->n_ctx,
                        protocol_name((uint32_t)expect->protocol), expect->stride);
        goto fail;
    }
    if (h.top_k < 1 || h.top_k > h.n_vocab || h.n_records != (uint64_t)expect->n_records ||
        (map->size - REF_HEADER_BYTES) / record_bytes((int)h.top_k) != h.n_records ||
        (map->size - REF_HEADER_BYTES) % record_bytes((int)h.top_k) != 0) {
        err = sq_errorf(SQ_ERR_FORMAT,
                        "%s: %zu bytes do not hold %llu records of top-%u (expected %lld records)", path,
                        map->size, (unsigned long long)h.n_records, h.top_k, (long long)expect->n_records);
        goto fail;
    }
    sq_ref_file *f = ref_file_new(path, (int)h.top_k, (int)h.n_vocab);
    if (!f) {
        err = sq_errorf(SQ_ERR_NOMEM, "out of memory");
        goto fail;
    }
    f->map = map;
    uint64_t *seen = calloc(h.n_vocab, sizeof *seen); /* [n_vocab] the last record (+1) naming each id */
    for (uint64_t r = 0; r < h.n_records && !err; r++) err = check_record(f, r, seen);
    free(seen);
    if (err) {
        sq_error_free(sq_ref_file_close(f, 1));
        return err;
    }
    *out = f;
    return NULL;
fail:
    sq_mapped_file_close(map);
    return err;
}

sq_error *sq_ref_file_write(sq_ref_file *f, int64_t index, const float *z, int32_t target) {
    int k = f->top_k, n = f->n_vocab;
    unsigned char *rec = malloc(f->record_bytes);
    if (!rec) return sq_errorf(SQ_ERR_NOMEM, "out of memory");
    int32_t *ids = (int32_t *)(rec + 8);
    float *lps = (float *)(rec + 8 + (size_t)k * 4);
    /* top k by insertion: ties keep the lower id first, as sq_argmax does */
    int have = 0;
    for (int v = 0; v < n; v++) {
        if (have == k && z[v] <= z[ids[k - 1]]) continue;
        int pos = have < k ? have++ : k - 1;
        while (pos > 0 && z[v] > z[ids[pos - 1]]) {
            ids[pos] = ids[pos - 1];
            pos--;
        }
        ids[pos] = v;
    }
    double lse = sq_logsumexp(z, n);
    for (int i = 0; i < k; i++) lps[i] = (float)(z[ids[i]] - lse);
    /* The tail is summed directly (not 1 - top mass) so it keeps its relative precision when tiny. Among
     * values tied with the k-th, the lowest ids are the ones in the top k. */
    float threshold = z[ids[k - 1]];
    int tied_in_top = 0;
    for (int i = 0; i < k; i++) tied_in_top += z[ids[i]] == threshold;
    double tail = 0;
    for (int v = 0; v < n; v++) {
        if (z[v] > threshold || (z[v] == threshold && tied_in_top-- > 0)) continue;
        tail += sq_exp_nonpos(z[v] - lse);
    }
    float head[2] = {(float)(z[target] - lse), (float)tail};
    memcpy(rec, head, sizeof head);
    off_t at = REF_HEADER_BYTES + (off_t)index * (off_t)f->record_bytes;
    ssize_t wrote = pwrite(f->fd, rec, f->record_bytes, at);
    free(rec);
    if (wrote != (ssize_t)f->record_bytes)
        return sq_errorf(SQ_ERR_IO, "%s: write failed at record %lld: %s", f->path, (long long)index,
                         wrote < 0 ? strerror(errno) : "short write");
    return NULL;
}

void sq_ref_file_read(const sq_ref_file *f, int64_t index, float *target_logp, float *tail_mass,
                      const int32_t **ids, const float **logps) {
    const unsigned char *rec = f->map->data + REF_HEADER_BYTES + (size_t)index * f->record_bytes;
    memcpy(target_logp, rec, 4);
    memcpy(tail_mass, rec + 4, 4);
    *ids = (const int32_t *)(rec + 8);
    *logps = (const float *)(rec + 8 + (size_t)f->top_k * 4);
}

int sq_ref_file_top_k(const sq_ref_file *f) { return f->top_k; }

sq_error *sq_ref_file_close(sq_ref_file *f, int discard) {
    if (!f) return NULL;
    sq_error *err = NULL;
    if (f->fd >= 0 && close(f->fd) != 0)
        err = sq_errorf(SQ_ERR_IO, "%s: close failed: %s", f->path, strerror(errno));
    if (f->fd >= 0 && discard) unlink(f->path);
    sq_mapped_file_close(f->map);
    free(f->path);
    free(f);
    return err;
}
