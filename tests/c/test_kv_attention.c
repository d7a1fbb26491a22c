/* The CPU backend's attention and kv_store over paged, typed KV views (kernels/backend.h's sq_kv_view), on
 * random inputs of awkward shapes: head dims 8 to 264 (past the 128 where f16 tiles shorten), grouped-query
 * and multi-head, blocks of 1, 3 and 16 positions placed at random in the pool, sliding windows, several
 * sequences and query positions in one call.
 *
 *  - f32 rows against a naive attention written here (float64, full softmax, rows found with the interface's
 *    address formula): max|diff| / max|ref| <= 1e-5 per output row (fp32 dot products of at most 264 terms
 *    and a softmax over at most 90 positions: errors near 1e-6).
 *  - f16 rows against f32 rows that hold the same rounded values: attention reads f16 rows by converting them
 *    exactly to fp32, so the results are bitwise equal while the tiles are the same (head_dim <= 128) and
 *    within 1e-6 once f16 tiles are shorter (the same sums, grouped differently). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

#include "kernels/backend.h"

enum { N_SEQ = 3, N_CTX = 90, PER_SEQ = 4 }; /* sequences, positions each, query positions each */

typedef struct paged {
    sq_kv_view view;
    int32_t *table; /* [n_seq][max_blocks] */
} paged;

/* A view over n_blocks blocks whose order is shuffled, so no sequence's blocks are contiguous. */
static paged make_paged(const sq_backend *be, sq_dtype type, int kv_dim, int n_seq, int max_blocks, int bs,
                        uint64_t *rng) {
    const int n_blocks = n_seq * max_blocks;
    paged p = {.table = malloc((size_t)n_blocks * sizeof(int32_t))};
    assert_non_null(p.table);
    for (int i = 0; i < n_blocks; i++) p.table[i] = i;
    for (int i = n_blocks - 1; i > 0; i--) {
        int j = (int)(sq_test_rand_u64(rng) % (uint64_t)(i + 1));
        int32_t t = p.table[i];
        p.table[i] = p.table[j];
        p.table[j] = t;
    }
    size_t row = (size_t)kv_dim * (type == SQ_DTYPE_F16 ? 2 : 4), pool = (size_t)n_blocks * bs * row;
    p.view = (sq_kv_view){.k = be->alloc(be->impl, pool),
                          .v = be->alloc(be->impl, pool),
                          .block_table = p.table,
                          .max_blocks = max_blocks,
                          .block_size = bs,
                          .row_bytes = row,
                          .row_type = type,
                          .kv_dim = kv_dim};
    assert_true(p.view.k && p.view.v);
    return p;
}

static void free_paged(const sq_backend *be, paged *p) {
    be->free(be->impl, p->view.k);
    be->free(be->impl, p->view.v);
    free(p->table);
}

/* Row element i of slot pos of seq, through the interface's formula (f32 rows). */
static float elem(const sq_kv_view *kv, const uint8_t *pool, int seq, int pos, int i) {
    int32_t block = kv->block_table[(size_t)seq * kv->max_blocks + pos / kv->block_size];
    float f;
    memcpy(&f, pool + ((size_t)block * kv->block_size + pos % kv->block_size) * kv->row_bytes + 4 * (size_t)i,
           4);
    return f;
}

/* Tokens of plain runs (no tree): token t is slot pos[t] of sequence seq[t] and sees slots [0, pos[t]]. */
static sq_token_batch plain_tokens(int n, const int32_t *seq, const int32_t *pos, int32_t *parent) {
    for (int t = 0; t < n; t++) parent[t] = -1;
    return (sq_token_batch){
        .n_tokens = n, .id = pos, .seq = seq, .pos = pos, .slot = pos, .n_prefix = pos, .parent = parent};
}

/* Plain causal attention in float64 over an f32 view. */
static void naive_attention(const sq_attention_args *a, double *out) {
    const int hd = a->head_dim, group = a->n_heads / a->n_kv_heads;
    const sq_kv_view *kv = &a->kv;
    const sq_token_batch *tb = a->tokens;
    for (int t = 0; t < tb->n_tokens; t++)
        for (int h = 0; h < a->n_heads; h++) {
            const float *q = a->q + ((size_t)t * a->n_heads + h) * hd;
            int pos = tb->pos[t], first = a->window > 0 && pos - a->window + 1 > 0 ? pos - a->window + 1 : 0;
            int kvh = h / group;
            double *o = out + ((size_t)t * a->n_heads + h) * hd, scores[N_CTX], max = -INFINITY, sum = 0;
            for (int j = first; j <= pos; j++) {
                double s = 0;
                for (int i = 0; i < hd; i++) s += (double)q[i] * elem(kv, kv->k, tb->seq[t], j, kvh * hd + i);
                scores[j - first] = s / sqrt((double)hd);
                max = fmax(max, scores[j - first]);
            }
            for (int j = first; j <= pos; j++) sum += scores[j - first] = exp(scores[j - first] - max);
            for (int i = 0; i < hd; i++) {
                double acc = 0;
                for (int j = first; j <= pos; j++)
                    acc += scores[j - first] * elem(kv, kv->v, tb->seq[t], j, kvh * hd + i);
                o[i] = acc / sum;
            }
        }
}

static void test_paged_typed_attention(void **state) {
    (void)state;
    sq_backend be;
    sq_test_ok(sq_backend_create("cpu", 2, &be));
    uint64_t rng = 12345;
    const int head_dims[] = {8, 24, 64, 136, 264}, block_sizes[] = {1, 3, 16};
    const int heads[][2] = {{4, 4}, {6, 2}, {3, 1}}; /* MHA, GQA, MQA */
    int n_cases = 0;
    for (int hi = 0; hi < 5; hi++)
        for (int bi = 0; bi < 3; bi++)
            for (int g = 0; g < 3; g++) {
                const int hd = head_dims[hi], bs = block_sizes[bi], n_heads = heads[g][0], n_kv = heads[g][1];
                const int kv_dim = n_kv * hd, max_blocks = (N_CTX + bs - 1) / bs;
                const int window = (hi + bi + g) % 2 ? 0 : 5 + hi;
                paged p32 = make_paged(&be, SQ_DTYPE_F32, kv_dim, N_SEQ, max_blocks, bs, &rng);
                paged p16 = make_paged(&be, SQ_DTYPE_F16, kv_dim, N_SEQ, max_blocks, bs, &rng);
                paged r32 = make_paged(&be, SQ_DTYPE_F32, kv_dim, N_SEQ, max_blocks, bs, &rng);
                /* every slot of every sequence: random keys and values, stored in all three views */
                const int n_rows = N_SEQ * N_CTX;
                float *k = malloc((size_t)n_rows * kv_dim * sizeof *k),
                      *v = malloc((size_t)n_rows * kv_dim * sizeof *v);
                int32_t *seq = malloc((size_t)n_rows * sizeof *seq),
                        *pos = malloc((size_t)n_rows * sizeof *pos);
                int32_t *parent = malloc((size_t)n_rows * sizeof *parent);
                assert_true(k && v && seq && pos && parent);
                for (int r = 0; r < n_rows; r++) {
                    seq[r] = r / N_CTX;
                    pos[r] = r % N_CTX;
                    for (int i = 0; i < kv_dim; i++) {
                        k[(size_t)r * kv_dim + i] = sq_test_rand_uniform(&rng, -2, 2);
                        v[(size_t)r * kv_dim + i] = sq_test_rand_uniform(&rng, -1, 1);
                    }
                }
                const sq_token_batch rows = plain_tokens(n_rows, seq, pos, parent);
                be.kv_store(be.impl, &p32.view, k, v, &rows);
                be.kv_store(be.impl, &p16.view, k, v, &rows);
                /* r32: f32 rows holding exactly the values the f16 rows hold */
                const sq_dtype_traits *half = sq_dtype_info(SQ_DTYPE_F16);
                uint16_t *h = malloc((size_t)kv_dim * sizeof *h);
                assert_non_null(h);
                for (int r = 0; r < n_rows; r++)
                    for (int kv = 0; kv < 2; kv++) {
                        float *x = (kv ? v : k) + (size_t)r * kv_dim;
                        half->from_f32(x, h, kv_dim);
                        half->to_f32(h, x, kv_dim);
                    }
                be.kv_store(be.impl, &r32.view, k, v, &rows);

                /* queries: a few positions of each sequence (the first, the last, some between) */
                const int n_tok = N_SEQ * PER_SEQ, q_dim = n_heads * hd;
                int32_t tseq[N_SEQ * PER_SEQ], tpos[N_SEQ * PER_SEQ], tparent[N_SEQ * PER_SEQ];
                float *q = malloc((size_t)n_tok * q_dim * sizeof *q);
                float *o32 = malloc((size_t)n_tok * q_dim * sizeof *o32),
                      *o16 = malloc((size_t)n_tok * q_dim * sizeof *o16);
                float *or32 = malloc((size_t)n_tok * q_dim * sizeof *or32);
                double *ref = malloc((size_t)n_tok * q_dim * sizeof *ref);
                assert_true(q && o32 && o16 && or32 && ref);
                for (int t = 0; t < n_tok; t++) {
                    tseq[t] = t / PER_SEQ;
                    int j = t % PER_SEQ;
                    tpos[t] = j == 0 ? 0 : j == 1 ? N_CTX - 1 : (int)(sq_test_rand_u64(&rng) % N_CTX);
                }
                for (int i = 0; i < n_tok * q_dim; i++) q[i] = sq_test_rand_uniform(&rng, -1, 1);
                const sq_token_batch queries = plain_tokens(n_tok, tseq, tpos, tparent);
                sq_attention_args a = {.q = q,
                                       .kv = p32.view,
                                       .tokens = &queries,
                                       .n_heads = n_heads,
                                       .n_kv_heads = n_kv,
                                       .head_dim = hd,
                                       .window = window,
                                       .out = o32};
                be.attention(be.impl, &a);
                naive_attention(&a, ref);
                a.kv = p16.view;
                a.out = o16;
                be.attention(be.impl, &a);
                a.kv = r32.view;
                a.out = or32;
                be.attention(be.impl, &a);

                for (int t = 0; t < n_tok * n_heads; t++) {
                    float want[264];
                    for (int i = 0; i < hd; i++) want[i] = (float)ref[(size_t)t * hd + i];
                    double e = sq_test_rel_err(o32 + (size_t)t * hd, want, hd);
                    if (e > 1e-5)
                        fail_msg(
                            "head_dim %d, blocks of %d, %d/%d heads, window %d: f32 rows, (token, head) %d: "
                            "relative error %.3g against the naive attention",
                            hd, bs, n_heads, n_kv, window, t, e);
                }
                if (hd <= 128)
                    assert_memory_equal(o16, or32, (size_t)n_tok * q_dim * sizeof *o16);
                else if (sq_test_rel_err(o16, or32, (size_t)n_tok * q_dim) > 1e-6)
                    fail_msg("head_dim %d: f16 rows differ from f32 rows of the same values by %.3g", hd,
                             sq_test_rel_err(o16, or32, (size_t)n_tok * q_dim));
                free_paged(&be, &p32);
                free_paged(&be, &p16);
                free_paged(&be, &r32);
                void *bufs[] = {k, v, seq, pos, parent, h, q, o32, o16, or32, ref};
                for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
                n_cases++;
            }
    assert_int_equal(n_cases, 45);
    sq_backend_destroy(&be);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paged_typed_attention),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
