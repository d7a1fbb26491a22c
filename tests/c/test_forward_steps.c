/* The forward pass one layer at a time, its calibration tap and layer mask, token trees, weight reloads, and
 * the device discipline of the operation path, on stories260K (grouped-query attention) and stories15M.
 *
 * The oracle is a plain C forward pass written here in the shape of llama2.c's run.c (one token at a time,
 * unpaged key/value arrays, naive attention in double, the reference operations of kernels/ref), itself
 * checked against the golden logits of the independent float64 implementation (../shared/golden).
 *
 * Tolerances: the engine against this reference, 1e-4 of max |logit| (the golden contract of test_forward.c;
 * tap inputs alike, per layer and point); two fp32 runs of the engine whose batches differ (a tree against
 * the plain run of one of its paths), 2e-5 (each is within FP32_LOGIT_TOL = 1e-5 of exact); runs that must
 * do the very same operations (steps against sq_forward, a staged device against the CPU), bit for bit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tensor.h"
#include "kernels/cpu/matmul.h"
#include "kernels/ref/ref.h"
#include "model/model.h"
#include "runtime/context.h"
#include "testlib.h"

#define REF_TOL       1e-4
#define FP32_PAIR_TOL 2e-5

static int32_t golden_ids[64];
static int n_golden;

static sq_model *load(const char *rel) {
    sq_model *m;
    sq_test_ok(sq_model_load(sq_test_shared(rel), NULL, &m));
    return m;
}

static int read_golden_tokens(void **state) {
    (void)state;
    FILE *fp = fopen(sq_test_shared("golden/stories260K.tokens.txt"), "r");
    if (!fp) return -1;
    n_golden = 0;
    while (n_golden < 64 && fscanf(fp, "%d", &golden_ids[n_golden]) == 1) n_golden++;
    fclose(fp);
    return n_golden == 48 ? 0 : -1;
}

static float *alloc_floats(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    assert_non_null(p);
    return p;
}

static void check_rows(const float *got, const float *want, int rows, int width, double tol,
                       const char *what) {
    for (int r = 0; r < rows; r++) {
        double err = sq_test_rel_err(got + (size_t)r * width, want + (size_t)r * width, (size_t)width);
        if (!(err <= tol)) fail_msg("%s: row %d: relative error %.3g exceeds %g", what, r, err, tol);
    }
}

/* ---------------------------------------------------------------- the reference forward pass */

typedef void (*ref_tap_fn)(void *user, int layer, sq_tap_point point, int token, const float *x, int width);

typedef struct ref_state {
    const sq_model *m;
    const unsigned char *skip; /* [n_layers] or NULL */
    int n;                     /* tokens read */
    float **key, **value;      /* per layer [n_ctx][kv_dim], keys after RoPE */
    double *inv_freq;
    ref_tap_fn tap;
    void *user;
} ref_state;

static ref_state ref_open(const sq_model *m) {
    const sq_model_config *c = &m->cfg;
    ref_state r = {.m = m};
    r.key = calloc((size_t)c->n_layers, sizeof *r.key);
    r.value = calloc((size_t)c->n_layers, sizeof *r.value);
    for (int l = 0; l < c->n_layers; l++) {
        r.key[l] = alloc_floats((size_t)c->max_seq_len * m->layers[l].n_kv_heads * c->head_dim);
        r.value[l] = alloc_floats((size_t)c->max_seq_len * m->layers[l].n_kv_heads * c->head_dim);
    }
    r.inv_freq = malloc((size_t)c->head_dim / 2 * sizeof *r.inv_freq);
    for (int i = 0; i < c->head_dim / 2; i++) r.inv_freq[i] = pow(c->rope_theta, -2.0 * i / c->head_dim);
    return r;
}

static void ref_close(ref_state *r) {
    for (int l = 0; l < r->m->cfg.n_layers; l++) {
        free(r->key[l]);
        free(r->value[l]);
    }
    free(r->key);
    free(r->value);
    free(r->inv_freq);
}

static void ref_tap(ref_state *r, int layer, sq_tap_point point, const float *x, int width) {
    if (r->tap) r->tap(r->user, layer, point, r->n, x, width);
}

static void linear(const sq_tensor *w, const sq_tensor *bias, const float *x, float *y) {
    sq_ref_matmul(w, x, 1, y);
    if (bias) sq_ref_add(y, bias->data, sq_tensor_n_rows(w));
}

/* Reads one token at position r->n and writes its logits [vocab]. */
static void ref_token(ref_state *r, int32_t token, float *logits) {
    const sq_model *m = r->m;
    const sq_model_config *c = &m->cfg;
    const int dim = c->dim, hd = c->head_dim, pos = r->n;
    float x[4096], xb[4096], q[4096], k[4096], v[4096], att[4096], gate[8192], up[8192];
    assert_true(dim <= 4096 && c->ffn_dim <= 8192);
    sq_tensor_row_to_f32(m->tok_embd, token, x);
    for (int l = 0; l < c->n_layers; l++) {
        if (r->skip && r->skip[l]) continue;
        const sq_layer *L = &m->layers[l];
        const int kv_dim = L->n_kv_heads * hd, group = L->n_heads / L->n_kv_heads;
        sq_ref_rmsnorm(x, L->attn_norm->data, c->norm_eps, 1, dim, xb);
        ref_tap(r, l, SQ_TAP_ATTN_IN, xb, dim);
        linear(L->wq, L->bq, xb, q);
        linear(L->wk, L->bk, xb, k);
        linear(L->wv, L->bv, xb, v);
        const int32_t p = pos;
        sq_ref_rope(q, L->n_heads, 1, hd, c->rope_dims, &p, r->inv_freq, c->rope_style);
        sq_ref_rope(k, L->n_kv_heads, 1, hd, c->rope_dims, &p, r->inv_freq, c->rope_style);
        memcpy(r->key[l] + (size_t)pos * kv_dim, k, (size_t)kv_dim * sizeof *k);
        memcpy(r->value[l] + (size_t)pos * kv_dim, v, (size_t)kv_dim * sizeof *v);
        for (int h = 0; h < L->n_heads; h++) {
            const int off = h / group * hd, first = c->sliding_window ? pos - c->sliding_window + 1 : 0;
            double score[4096], max = -INFINITY, sum = 0;
            for (int s = first > 0 ? first : 0; s <= pos; s++) {
                double d = 0;
                for (int i = 0; i < hd; i++)
                    d += (double)q[h * hd + i] * r->key[l][(size_t)s * kv_dim + off + i];
                score[s] = d / sqrt(hd);
                max = score[s] > max ? score[s] : max;
            }
            for (int s = first > 0 ? first : 0; s <= pos; s++) sum += score[s] = exp(score[s] - max);
            for (int i = 0; i < hd; i++) {
                double acc = 0;
                for (int s = first > 0 ? first : 0; s <= pos; s++)
                    acc += score[s] * r->value[l][(size_t)s * kv_dim + off + i];
                att[h * hd + i] = (float)(acc / sum);
            }
        }
        ref_tap(r, l, SQ_TAP_ATTN_OUT, att, L->n_heads * hd);
        linear(L->wo, NULL, att, xb);
        sq_ref_add(x, xb, dim);
        sq_ref_rmsnorm(x, L->ffn_norm->data, c->norm_eps, 1, dim, xb);
        ref_tap(r, l, SQ_TAP_FFN_IN, xb, dim);
        linear(L->w_gate, NULL, xb, gate);
        linear(L->w_up, NULL, xb, up);
        sq_ref_swiglu(gate, up, L->ffn_dim);
        ref_tap(r, l, SQ_TAP_FFN_DOWN, gate, L->ffn_dim);
        linear(L->w_down, NULL, gate, xb);
        sq_ref_add(x, xb, dim);
    }
    sq_ref_rmsnorm(x, m->out_norm->data, c->norm_eps, 1, dim, xb);
    ref_tap(r, -1, SQ_TAP_OUTPUT, xb, dim);
    linear(m->output, NULL, xb, logits);
    r->n++;
}

static void ref_run(ref_state *r, const int32_t *ids, int n, float *logits) {
    for (int t = 0; t < n; t++) ref_token(r, ids[t], logits + (size_t)t * r->m->cfg.vocab_size);
}

/* The reference itself against the golden float64 logits. */
static void test_reference_is_golden(void **state) {
    (void)state;
    sq_model *m = load("models/stories260K.bin");
    const int vocab = m->cfg.vocab_size;
    float *want = alloc_floats((size_t)n_golden * vocab), *got = alloc_floats((size_t)n_golden * vocab);
    FILE *fp = fopen(sq_test_shared("golden/stories260K.logits.f32"), "rb");
    assert_non_null(fp);
    assert_int_equal(fread(want, sizeof *want, (size_t)n_golden * vocab, fp), (size_t)n_golden * vocab);
    fclose(fp);
    ref_state r = ref_open(m);
    ref_run(&r, golden_ids, n_golden, got);
    check_rows(got, want, n_golden, vocab, 1e-5, "C reference vs golden");
    ref_close(&r);
    free(want);
    free(got);
    sq_model_free(m);
}

/* ---------------------------------------------------------------- steps, hidden state, tap, mask */

static sq_context *context(const sq_model *m, int n_seq, int n_batch_max) {
    sq_context *ctx;
    sq_test_ok(sq_context_create(
        m, &(sq_context_options){.n_seq_max = n_seq, .n_batch_max = n_batch_max, .n_threads = 2}, &ctx));
    return ctx;
}

static sq_seq_batch all_logits(int seq, const int32_t *ids, int n, float *out) {
    return (sq_seq_batch){
        .seq_id = seq, .tokens = ids, .n_tokens = n, .logits_mode = SQ_LOGITS_ALL, .logits = out};
}

/* Two sequences in one batch, through begin/layer/end and through sq_forward: the same bits; and the hidden
 * state: read after begin it is the embedding, and re-running a layer on restored inputs repeats its output.
 */
static void test_steps_equal_forward(void **state) {
    (void)state;
    const char *models[] = {"models/stories260K.bin", "models/stories15M.bin"};
    for (int mi = 0; mi < 2; mi++) {
        sq_model *m = load(models[mi]);
        const int vocab = m->cfg.vocab_size, dim = m->cfg.dim, n0 = 11, n1 = 6, n = n0 + n1;
        const int32_t *ids = golden_ids;
        float *a = alloc_floats((size_t)n * vocab), *b = alloc_floats((size_t)n * vocab);
        sq_context *one = context(m, 2, 0), *steps = context(m, 2, 0);
        sq_seq_batch batch[2] = {all_logits(0, ids, n0, a),
                                 all_logits(1, ids + 3, n1, a + (size_t)n0 * vocab)};
        sq_test_ok(sq_forward(one, batch, 2));
        batch[0].logits = b;
        batch[1].logits = b + (size_t)n0 * vocab;
        assert_int_equal(sq_forward_n_tokens(steps), 0);
        sq_test_ok(sq_forward_begin(steps, batch, 2));
        assert_int_equal(sq_forward_n_tokens(steps), n);
        float *h0 = alloc_floats((size_t)n * dim), *h1 = alloc_floats((size_t)n * dim),
              *h = alloc_floats((size_t)n * dim);
        sq_test_ok(sq_forward_get_hidden(steps, h0));
        for (int t = 0; t < n; t++) {
            float row[4096];
            sq_tensor_row_to_f32(m->tok_embd, t < n0 ? ids[t] : ids[3 + t - n0], row);
            assert_memory_equal(h0 + (size_t)t * dim, row, (size_t)dim * sizeof *row);
        }
        sq_test_ok(sq_forward_layer(steps, 0));
        sq_test_ok(sq_forward_get_hidden(steps, h1));
        /* GPTQ's loop: restore the layer's inputs and run it again */
        sq_test_ok(sq_forward_set_hidden(steps, h0));
        sq_test_ok(sq_forward_layer(steps, 0));
        sq_test_ok(sq_forward_get_hidden(steps, h));
        assert_memory_equal(h, h1, (size_t)n * dim * sizeof *h);
        /* while a step is open, nothing else may change the sequences */
        sq_test_fails_with(sq_forward(steps, batch, 1), "in progress");
        sq_test_fails_with(sq_seq_truncate(steps, 0, 0), "in progress");
        sq_test_fails_with(sq_forward_begin(steps, batch, 1), "in progress");
        sq_test_fails_with(sq_forward_layer(steps, m->cfg.n_layers), "outside");
        for (int l = 1; l < m->cfg.n_layers; l++) sq_test_ok(sq_forward_layer(steps, l));
        sq_test_ok(sq_forward_end(steps));
        assert_memory_equal(a, b, (size_t)n * vocab * sizeof *a);
        assert_int_equal(sq_seq_len(steps, 0), n0);
        assert_int_equal(sq_seq_len(steps, 1), n1);
        sq_test_fails_with(sq_forward_end(steps), "no forward step");
        sq_test_fails_with(sq_forward_get_hidden(steps, h), "no forward step");
        /* begin takes one chunk only */
        sq_context *small = context(m, 1, 4);
        sq_test_fails_with(sq_forward_begin(small, batch, 1), "n_batch_max");
        assert_int_equal(sq_seq_len(small, 0), 0);
        sq_context_free(small);
        sq_context_free(one);
        sq_context_free(steps);
        free(a);
        free(b);
        free(h0);
        free(h1);
        free(h);
        sq_model_free(m);
    }
}

/* Every tap call, stored by layer, point and token. */
typedef struct tap_store {
    int n_layers, n_tokens, max_width;
    float *x;  /* [n_layers + 1][5][n_tokens][max_width] */
    int *seen; /* [n_layers + 1][5][n_tokens] times written */
    int calls;
    const struct staged *device; /* when set: the tap must see host copies, never its memory */
} tap_store;

static size_t tap_index(const tap_store *s, int layer, sq_tap_point point, int token) {
    return ((size_t)(layer < 0 ? s->n_layers : layer) * 5 + point) * s->n_tokens + token;
}

static void tap_store_init(tap_store *s, const sq_model *m, int n_tokens) {
    s->n_layers = m->cfg.n_layers;
    s->n_tokens = n_tokens;
    s->max_width = m->cfg.dim > m->cfg.ffn_dim ? m->cfg.dim : m->cfg.ffn_dim;
    if (m->cfg.n_heads * m->cfg.head_dim > s->max_width) s->max_width = m->cfg.n_heads * m->cfg.head_dim;
    size_t slots = (size_t)(s->n_layers + 1) * 5 * n_tokens;
    s->x = calloc(slots * s->max_width, sizeof *s->x);
    s->seen = calloc(slots, sizeof *s->seen);
    s->calls = 0;
    s->device = NULL;
}

static int in_backend(const struct staged *s, const void *p);

static void engine_tap(void *user, int layer, sq_tap_point point, int expert, const float *x, int n_tokens,
                       int width) {
    tap_store *s = user;
    (void)expert;
    s->calls++;
    if (s->device && in_backend(s->device, x)) fail_msg("the tap was handed device memory");
    assert_true(n_tokens <= s->n_tokens && width <= s->max_width);
    for (int t = 0; t < n_tokens; t++) {
        size_t i = tap_index(s, layer, point, t);
        memcpy(s->x + i * s->max_width, x + (size_t)t * width, (size_t)width * sizeof *x);
        s->seen[i]++;
    }
}

static void reference_tap(void *user, int layer, sq_tap_point point, int token, const float *x, int width) {
    tap_store *s = user;
    size_t i = tap_index(s, layer, point, token);
    memcpy(s->x + i * s->max_width, x, (size_t)width * sizeof *x);
    s->seen[i]++;
}

/* The tap sees, at every linear layer, the inputs the reference computes; a masked run equals the reference
 * with those blocks removed, whether the mask is sq_forward_ex's or the steps leave the blocks out. */
static void test_tap_and_layer_mask(void **state) {
    (void)state;
    sq_model *m = load("models/stories260K.bin");
    const int vocab = m->cfg.vocab_size, n = 20, L = m->cfg.n_layers;
    float *got = alloc_floats((size_t)n * vocab), *want = alloc_floats((size_t)n * vocab);
    tap_store engine, reference;
    tap_store_init(&engine, m, n);
    tap_store_init(&reference, m, n);
    sq_context *ctx = context(m, 1, 0);
    sq_context_set_tap(ctx, engine_tap, &engine);
    sq_seq_batch b = all_logits(0, golden_ids, n, got);
    sq_test_ok(sq_forward(ctx, &b, 1));
    ref_state r = ref_open(m);
    r.tap = reference_tap;
    r.user = &reference;
    ref_run(&r, golden_ids, n, want);
    check_rows(got, want, n, vocab, REF_TOL, "logits with a tap");
    assert_int_equal(engine.calls, 4 * L + 1); /* one call per point and layer: the batch is one chunk */
    const int widths[5] = {m->cfg.dim, m->cfg.n_heads * m->cfg.head_dim, m->cfg.dim, m->cfg.ffn_dim,
                           m->cfg.dim};
    for (int l = -1; l < L; l++)
        for (int p = 0; p < 5; p++) {
            if ((l < 0) != (p == SQ_TAP_OUTPUT)) continue;
            for (int t = 0; t < n; t++) {
                size_t i = tap_index(&engine, l, p, t);
                assert_int_equal(engine.seen[i], 1);
                assert_int_equal(reference.seen[i], 1);
                char what[64];
                snprintf(what, sizeof what, "tap layer %d point %d token %d", l, p, t);
                check_rows(engine.x + i * engine.max_width, reference.x + i * reference.max_width, 1,
                           widths[p], REF_TOL, what);
            }
        }
    sq_context_set_tap(ctx, NULL, NULL);

    /* blocks 1 and 3 removed */
    unsigned char skip[16] = {0};
    skip[1] = skip[3] = 1;
    ref_close(&r);
    r = ref_open(m);
    r.skip = skip;
    ref_run(&r, golden_ids, n, want);
    sq_test_ok(sq_seq_truncate(ctx, 0, 0));
    sq_test_ok(sq_forward_ex(ctx, &b, 1, &(sq_forward_options){.skip_layers = skip}));
    check_rows(got, want, n, vocab, REF_TOL, "blocks 1 and 3 skipped");
    float *steps = alloc_floats((size_t)n * vocab);
    sq_test_ok(sq_seq_truncate(ctx, 0, 0));
    b.logits = steps;
    sq_test_ok(sq_forward_begin(ctx, &b, 1));
    for (int l = 0; l < L; l++)
        if (!skip[l]) sq_test_ok(sq_forward_layer(ctx, l));
    sq_test_ok(sq_forward_end(ctx));
    assert_memory_equal(steps, got, (size_t)n * vocab * sizeof *got);
    /* and the skip really matters: the full model differs */
    float *full = alloc_floats((size_t)n * vocab);
    sq_test_ok(sq_seq_truncate(ctx, 0, 0));
    b.logits = full;
    sq_test_ok(sq_forward(ctx, &b, 1));
    assert_true(sq_test_rel_err(full, got, (size_t)n * vocab) > 100 * REF_TOL);
    ref_close(&r);
    sq_context_free(ctx);
    free(engine.x);
    free(engine.seen);
    free(reference.x);
    free(reference.seen);
    free(got);
    free(want);
    free(steps);
    free(full);
    sq_model_free(m);
}

/* ---------------------------------------------------------------- token trees */

/* A tree of 9 draft tokens after a 7-token prefix:       0 -> 1 -> 2 -> 3
 *                                                          \-> 4 -> 5
 *                                                     6 -> 7 -> 8
 * with two roots; the path 0, 4, 5 is checked against a plain run of its tokens. */
static const int32_t tree_parents[9] = {-1, 0, 1, 2, 0, 4, -1, 6, 7};

static void test_token_tree(void **state) {
    (void)state;
    sq_model *m = load("models/stories260K.bin");
    const int vocab = m->cfg.vocab_size, P = 7, N = 9;
    const int32_t *prefix = golden_ids, *drafts = golden_ids + 20;
    const int path[3] = {0, 4, 5};
    const int32_t path_ids[4] = {drafts[0], drafts[4], drafts[5], golden_ids[40]};
    float *tree_logits = alloc_floats((size_t)N * vocab), *plain = alloc_floats((size_t)4 * vocab);
    float *want = alloc_floats((size_t)(P + 4) * vocab), *after = alloc_floats(vocab);
    /* two sequences share a batch: 0 a plain prefill of the prefix then the path, 1 the prefix then the tree
     */
    sq_context *ctx = context(m, 2, 0);
    sq_seq_batch pre[2] = {all_logits(0, prefix, P, want), all_logits(1, prefix, P, want)};
    sq_test_ok(sq_forward(ctx, pre, 2));
    sq_seq_batch mixed[2] = {all_logits(0, path_ids, 3, plain), all_logits(1, drafts, N, tree_logits)};
    mixed[1].parents = tree_parents;
    sq_test_ok(sq_forward(ctx, mixed, 2));
    assert_int_equal(sq_seq_len(ctx, 1), P + N);
    for (int i = 0; i < 3; i++)
        check_rows(tree_logits + (size_t)path[i] * vocab, plain + (size_t)i * vocab, 1, vocab, FP32_PAIR_TOL,
                   "tree node against the plain run of its path");
    /* the other branches see other prefixes: node 6 (a root) matches a plain run of itself alone */
    ref_state r = ref_open(m);
    ref_run(&r, prefix, P, want);
    float *root = alloc_floats(vocab);
    ref_token(&r, drafts[6], root);
    check_rows(tree_logits + (size_t)6 * vocab, root, 1, vocab, REF_TOL, "second root against the reference");
    ref_close(&r);

    /* nothing may follow a tree until a path is kept */
    sq_seq_batch next = all_logits(1, path_ids + 3, 1, after);
    sq_test_fails_with(sq_forward(ctx, &next, 1), "ends in a token tree");
    assert_int_equal(sq_seq_len(ctx, 1), P + N);
    sq_test_fails_with(sq_seq_keep_path(ctx, 1, (int[]){0, 5}, 2), "not a child");
    sq_test_fails_with(sq_seq_keep_path(ctx, 1, (int[]){4}, 1), "not a root");
    sq_test_fails_with(sq_seq_keep_path(ctx, 0, path, 3), "does not end in a token tree");
    sq_test_ok(sq_seq_keep_path(ctx, 1, path, 3));
    assert_int_equal(sq_seq_len(ctx, 1), P + 3);
    /* the kept path continues as if it had been run plainly: against the reference over prefix + path */
    sq_test_ok(sq_forward(ctx, &next, 1));
    r = ref_open(m);
    ref_run(&r, prefix, P, want);
    ref_run(&r, path_ids, 4, want + (size_t)P * vocab);
    check_rows(after, want + (size_t)(P + 3) * vocab, 1, vocab, REF_TOL, "after keeping the path");
    ref_close(&r);

    /* truncating into a tree leaves a smaller tree; truncating before it removes it */
    sq_test_ok(sq_seq_truncate(ctx, 1, P));
    mixed[1].n_tokens = N;
    sq_test_ok(sq_forward(ctx, &mixed[1], 1));
    sq_test_ok(sq_seq_truncate(ctx, 1, P + 5));
    sq_test_fails_with(sq_seq_keep_path(ctx, 1, (int[]){6}, 1), "node 6");
    sq_test_ok(sq_seq_keep_path(ctx, 1, (int[]){0, 1}, 2));
    sq_test_ok(sq_forward(ctx, &mixed[1], 1));
    sq_test_ok(sq_seq_truncate(ctx, 1, P));
    sq_test_ok(sq_forward(ctx, &next, 1));

    /* bad trees are rejected and change nothing */
    const int32_t bad[3] = {-1, 1, 0};
    sq_seq_batch b = all_logits(1, drafts, 3, tree_logits);
    b.parents = bad;
    int len = sq_seq_len(ctx, 1);
    sq_test_fails_with(sq_forward(ctx, &b, 1), "parent 1 is not -1 or an earlier token");
    sq_context *small = context(m, 1, 4);
    b.seq_id = 0;
    b.parents = tree_parents;
    b.n_tokens = 5;
    sq_test_fails_with(sq_forward(small, &b, 1), "exceeds n_batch_max");
    assert_int_equal(sq_seq_len(ctx, 1), len);
    assert_int_equal(sq_seq_len(small, 0), 0);
    sq_context_free(small);
    sq_context_free(ctx);
    free(tree_logits);
    free(plain);
    free(want);
    free(after);
    free(root);
    sq_model_free(m);
}

/* A tree forked into a second sequence (the tree comes along, its blocks shared): each sequence keeps a
 * different path, and each continues as a plain run of its own path would, against the reference. The two
 * paths move rows into the one shared block, so the first keep_path must copy it (copy-on-write) or the
 * second would overwrite the first's rows. */
static void test_token_tree_fork(void **state) {
    (void)state;
    sq_model *m = load("models/stories260K.bin");
    const int vocab = m->cfg.vocab_size, P = 7, N = 9;
    const int32_t *prefix = golden_ids, *drafts = golden_ids + 20;
    const int paths[2][3] = {{0, 4, 5}, {6, 7, 8}};
    float *tree_logits = alloc_floats((size_t)N * vocab), *want = alloc_floats((size_t)(P + 4) * vocab);
    float *after[2] = {alloc_floats(vocab), alloc_floats(vocab)};
    sq_context *ctx = context(m, 3, 0);
    sq_seq_batch pre = all_logits(1, prefix, P, want);
    sq_test_ok(sq_forward(ctx, &pre, 1));
    sq_seq_batch tree = all_logits(1, drafts, N, tree_logits);
    tree.parents = tree_parents;
    sq_test_ok(sq_forward(ctx, &tree, 1));
    const int free_before = sq_context_kv_blocks_free(ctx);
    sq_test_ok(sq_seq_fork(ctx, 1, 2));
    assert_int_equal(sq_context_kv_blocks_free(ctx), free_before); /* shared, not copied */
    assert_int_equal(sq_seq_len(ctx, 2), P + N);
    sq_seq_batch next = all_logits(2, golden_ids + 40, 1, after[1]);
    sq_test_fails_with(sq_forward(ctx, &next, 1), "ends in a token tree");
    sq_test_ok(sq_seq_keep_path(ctx, 1, paths[0], 3));
    assert_int_equal(sq_context_kv_blocks_free(ctx), free_before - 1); /* the written block was copied */
    sq_test_ok(sq_seq_keep_path(ctx, 2, paths[1], 3));
    for (int s = 0; s < 2; s++) {
        next = all_logits(1 + s, golden_ids + 40, 1, after[s]);
        sq_test_ok(sq_forward(ctx, &next, 1));
        int32_t ids[4] = {drafts[paths[s][0]], drafts[paths[s][1]], drafts[paths[s][2]], golden_ids[40]};
        ref_state r = ref_open(m);
        ref_run(&r, prefix, P, want);
        ref_run(&r, ids, 4, want + (size_t)P * vocab);
        check_rows(after[s], want + (size_t)(P + 3) * vocab, 1, vocab, REF_TOL,
                   s ? "the fork's path after keeping both" : "the source's path after keeping both");
        ref_close(&r);
    }
    sq_context_free(ctx);
    free(tree_logits);
    free(want);
    free(after[0]);
    free(after[1]);
    sq_model_free(m);
}

/* A rejected batch changes nothing, even when its failure is found after other sequences were checked. */
static void test_rejected_batch(void **state) {
    (void)state;
    sq_model *m = load("models/stories260K.bin");
    sq_context *ctx;
    sq_test_ok(sq_context_create(m, &(sq_context_options){.n_ctx = 16, .n_seq_max = 2}, &ctx));
    float logits[512];
    sq_seq_batch ok = all_logits(0, golden_ids, 10, NULL);
    ok.logits_mode = SQ_LOGITS_NONE;
    sq_test_ok(sq_forward(ctx, &ok, 1));
    sq_seq_batch two[2] = {all_logits(1, golden_ids, 4, NULL), all_logits(0, golden_ids, 7, logits)};
    two[0].logits_mode = SQ_LOGITS_NONE;
    sq_test_fails_with(sq_forward(ctx, two, 2), "exceed the context");
    assert_int_equal(sq_seq_len(ctx, 0), 10);
    assert_int_equal(sq_seq_len(ctx, 1), 0);
    sq_context *bad;
    sq_test_fails_with(sq_context_create(m, &(sq_context_options){.device = "gpu0"}, &bad),
                       "unknown device 'gpu0'");
    sq_test_ok(sq_context_create(m, &(sq_context_options){.device = "cpu"}, &bad));
    sq_context_free(bad);
    sq_context_free(ctx);
    sq_model_free(m);
}

/* ---------------------------------------------------------------- a device backend, staged in host memory */

/* The CPU backend as a device would present it: its own memory (separate allocations, reached only through
 * upload/download), so the context must upload weights and tokens and download logits, taps and hidden
 * states. Every operation checks that each pointer it receives lies in memory the backend allocated (the
 * cache's block table excepted: the cache owns it), and the table may offer fused entries built from the
 * reference operations. */
typedef struct staged {
    sq_backend cpu;
    struct {
        const char *p;
        size_t n;
    } live[4096];
    int n_live;
    size_t uploaded;
    int fused_blocks, fused_forwards;
    sq_op refuse; /* an operation it claims not to have; SQ_OP_COUNT: none */
} staged;

static int in_backend(const staged *s, const void *p) {
    for (int i = 0; i < s->n_live; i++)
        if ((const char *)p >= s->live[i].p && (const char *)p < s->live[i].p + s->live[i].n) return 1;
    return 0;
}

static void owned(const staged *s, const void *p, const char *what) {
    if (!in_backend(s, p)) fail_msg("staged backend: %s at %p is not backend memory", what, p);
}

static void *st_alloc(void *impl, size_t n) {
    staged *s = impl;
    assert_true(s->n_live < 4096);
    void *p = s->cpu.alloc(s->cpu.impl, n);
    s->live[s->n_live].p = p;
    s->live[s->n_live++].n = n ? n : 1;
    return p;
}
static void st_free(void *impl, void *p) {
    staged *s = impl;
    if (!p) return;
    for (int i = 0; i < s->n_live; i++)
        if (s->live[i].p == p) {
            s->live[i] = s->live[--s->n_live];
            s->cpu.free(s->cpu.impl, p);
            return;
        }
    fail_msg("staged backend: freeing %p, which it did not allocate", p);
}
static void st_upload(void *impl, void *dst, const void *src, size_t n) {
    staged *s = impl;
    if (n) owned(s, dst, "upload destination");
    s->uploaded += n;
    memcpy(dst, src, n);
}
static void st_download(void *impl, void *dst, const void *src, size_t n) {
    if (n) owned(impl, src, "download source");
    memcpy(dst, src, n);
}
static void st_copy(void *impl, void *dst, const void *src, size_t n) {
    if (n) {
        owned(impl, dst, "copy destination");
        owned(impl, src, "copy source");
    }
    memmove(dst, src, n);
}
static void st_sync(void *impl) { (void)impl; }
static int st_supports(void *impl, sq_op op, sq_dtype dt) {
    staged *s = impl;
    return op != s->refuse && s->cpu.supports(s->cpu.impl, op, dt);
}
static void st_destroy(void *impl) {
    staged *s = impl;
    assert_int_equal(s->n_live, 0); /* the context freed all it allocated */
    sq_backend_destroy(&s->cpu);
    free(s);
}

static void owned_tokens(const staged *s, const sq_token_batch *tb) {
    if (tb->n_tokens == 0) return;
    const int32_t *arrays[] = {tb->id, tb->seq, tb->pos, tb->slot, tb->n_prefix, tb->parent};
    for (int i = 0; i < 6; i++) owned(s, arrays[i], "token array");
}
static void owned_kv(const staged *s, const sq_kv_view *kv) {
    owned(s, kv->k, "key pool");
    owned(s, kv->v, "value pool");
}

#define CPU(s) (&((staged *)(s))->cpu)
static void st_matmul(void *impl, const sq_tensor *w, const float *x, int n, float *y) {
    owned(impl, w->data, w->name[0] ? w->name : "weights");
    owned(impl, x, "matmul input");
    owned(impl, y, "matmul output");
    CPU(impl)->matmul(CPU(impl)->impl, w, x, n, y);
}
static void st_get_rows(void *impl, const sq_tensor *src, const int32_t *rows, int n, float *out) {
    owned(impl, src->data, "rows source");
    owned(impl, rows, "row indices");
    owned(impl, out, "rows output");
    CPU(impl)->get_rows(CPU(impl)->impl, src, rows, n, out);
}
static void st_rmsnorm(void *impl, const float *x, const float *w, float eps, int n, int dim, float *out) {
    owned(impl, x, "norm input");
    owned(impl, w, "norm weight");
    owned(impl, out, "norm output");
    CPU(impl)->rmsnorm(CPU(impl)->impl, x, w, eps, n, dim, out);
}
static void st_rope(void *impl, float *q, int nq, float *k, int nk, int n, int hd, int rope_dims,
                    const int32_t *pos, const double *inv_freq, sq_rope_style style) {
    owned(impl, q, "rope q");
    owned(impl, k, "rope k");
    owned(impl, pos, "rope positions");
    owned(impl, inv_freq, "rope frequencies");
    CPU(impl)->rope(CPU(impl)->impl, q, nq, k, nk, n, hd, rope_dims, pos, inv_freq, style);
}
static void st_add(void *impl, float *x, const float *y, int64_t n) {
    owned(impl, x, "add x");
    owned(impl, y, "add y");
    CPU(impl)->add(CPU(impl)->impl, x, y, n);
}
static void st_add_bias(void *impl, float *y, const float *b, int n, int width) {
    owned(impl, y, "bias target");
    owned(impl, b, "bias");
    CPU(impl)->add_bias(CPU(impl)->impl, y, b, n, width);
}
static void st_swiglu(void *impl, float *gate, const float *up, int64_t n) {
    owned(impl, gate, "gate");
    owned(impl, up, "up");
    CPU(impl)->swiglu(CPU(impl)->impl, gate, up, n);
}
static void st_geglu(void *impl, float *gate, const float *up, int64_t n) {
    owned(impl, gate, "gate");
    owned(impl, up, "up");
    CPU(impl)->geglu(CPU(impl)->impl, gate, up, n);
}
static void st_scale(void *impl, float *x, float s, int64_t n) {
    owned(impl, x, "scaled");
    CPU(impl)->scale(CPU(impl)->impl, x, s, n);
}
static void st_kv_store(void *impl, const sq_kv_view *kv, const float *k, const float *v,
                        const sq_token_batch *tb) {
    owned_kv(impl, kv);
    owned(impl, k, "keys");
    owned(impl, v, "values");
    owned_tokens(impl, tb);
    CPU(impl)->kv_store(CPU(impl)->impl, kv, k, v, tb);
}
static void st_kv_copy(void *impl, const sq_kv_view *kv, int seq, const int32_t *src, const int32_t *dst,
                       int n) {
    owned_kv(impl, kv);
    if (n) {
        owned(impl, src, "copy slots");
        owned(impl, dst, "copy slots");
    }
    CPU(impl)->kv_copy(CPU(impl)->impl, kv, seq, src, dst, n);
}
static void st_attention(void *impl, const sq_attention_args *a) {
    owned_kv(impl, &a->kv);
    owned(impl, a->q, "queries");
    owned(impl, a->out, "attention output");
    owned_tokens(impl, a->tokens);
    CPU(impl)->attention(CPU(impl)->impl, a);
}

/* A fused block from the reference operations: what a device's one-kernel layer must compute. */
static void st_block(void *impl, const sq_block_args *a) {
    staged *s = impl;
    s->fused_blocks++;
    const sq_block_weights *w = a->w;
    const int n = a->tokens->n_tokens, hd = a->head_dim, q_dim = w->n_heads * hd, kv_dim = w->n_kv_heads * hd;
    sq_ref_rmsnorm(a->x, w->attn_norm.data, a->norm_eps, n, a->dim, a->xb);
    sq_ref_matmul(&w->wq, a->xb, n, a->q);
    sq_ref_matmul(&w->wk, a->xb, n, a->k);
    sq_ref_matmul(&w->wv, a->xb, n, a->v);
    if (w->bq.data) sq_ref_add_bias(a->q, w->bq.data, n, q_dim);
    if (w->bk.data) sq_ref_add_bias(a->k, w->bk.data, n, kv_dim);
    if (w->bv.data) sq_ref_add_bias(a->v, w->bv.data, n, kv_dim);
    sq_ref_rope(a->q, w->n_heads, n, hd, a->rope_dims, a->tokens->pos, a->inv_freq, a->rope_style);
    sq_ref_rope(a->k, w->n_kv_heads, n, hd, a->rope_dims, a->tokens->pos, a->inv_freq, a->rope_style);
    sq_ref_kv_store(&a->kv, a->k, a->v, a->tokens);
    sq_ref_attention(&(sq_attention_args){a->q, a->kv, a->tokens, w->n_heads, w->n_kv_heads, hd, a->window,
                                          a->attn_softcap, a->attn_out});
    sq_ref_matmul(&w->wo, a->attn_out, n, a->xb);
    sq_ref_add(a->x, a->xb, (int64_t)n * a->dim);
    sq_ref_rmsnorm(a->x, w->ffn_norm.data, a->norm_eps, n, a->dim, a->xb);
    sq_ref_matmul(&w->w_gate, a->xb, n, a->gate);
    sq_ref_matmul(&w->w_up, a->xb, n, a->up);
    sq_ref_swiglu(a->gate, a->up, (int64_t)n * w->ffn_dim);
    sq_ref_matmul(&w->w_down, a->gate, n, a->xb);
    sq_ref_add(a->x, a->xb, (int64_t)n * a->dim);
}

static void st_forward(void *impl, const sq_forward_args *a) {
    staged *s = impl;
    s->fused_forwards++;
    sq_ref_get_rows(a->tok_embd, a->tokens->id, a->tokens->n_tokens, a->x);
    for (int l = 0; l < a->n_layers; l++)
        if (!a->skip || !a->skip[l]) st_block(impl, &a->blocks[l]);
}

static sq_backend staged_backend(int fused_block, int fused_forward, staged **state) {
    staged *s = calloc(1, sizeof *s);
    assert_non_null(s);
    sq_test_ok(sq_backend_create("cpu", 2, &s->cpu));
    s->refuse = SQ_OP_COUNT;
    *state = s;
    return (sq_backend){.name = "staged",
                        .impl = s,
                        .host_memory = 0,
                        .destroy = st_destroy,
                        .supports = st_supports,
                        .alloc = st_alloc,
                        .free = st_free,
                        .upload = st_upload,
                        .download = st_download,
                        .copy = st_copy,
                        .synchronize = st_sync,
                        .matmul = st_matmul,
                        .get_rows = st_get_rows,
                        .rmsnorm = st_rmsnorm,
                        .rope = st_rope,
                        .add = st_add,
                        .add_bias = st_add_bias,
                        .swiglu = st_swiglu,
                        .geglu = st_geglu,
                        .scale = st_scale,
                        .kv_store = st_kv_store,
                        .kv_copy = st_kv_copy,
                        .attention = st_attention,
                        .block = fused_block ? st_block : NULL,
                        .forward = fused_forward ? st_forward : NULL};
}

/* A workload touching every path: two sequences, chunks (n_batch_max 7), a token tree kept to a path, a
 * step with hidden-state reads and writes, the tap. Writes every logit it gets into out [n_rows][vocab]. */
enum { WORK_ROWS = 40 };

static void workload(sq_context *ctx, tap_store *taps, float *out) {
    const int vocab = 512;
    sq_seq_batch b[2] = {all_logits(0, golden_ids, 12, out),
                         all_logits(1, golden_ids + 5, 9, out + (size_t)12 * vocab)};
    sq_test_ok(sq_forward(ctx, b, 2));
    sq_seq_batch t = all_logits(1, golden_ids + 30, 6, out + (size_t)21 * vocab);
    t.parents = (const int32_t[]){-1, 0, 0, 2, -1, 4};
    sq_test_ok(sq_forward(ctx, &t, 1));
    sq_test_ok(sq_seq_keep_path(ctx, 1, (int[]){0, 2, 3}, 3));
    sq_seq_batch s[2] = {all_logits(0, golden_ids + 40, 3, out + (size_t)27 * vocab),
                         all_logits(1, golden_ids + 43, 4, out + (size_t)30 * vocab)};
    sq_context_set_tap(ctx, taps ? engine_tap : NULL, taps);
    sq_test_ok(sq_forward_begin(ctx, s, 2));
    float hidden[7 * 64];
    sq_test_ok(sq_forward_layer(ctx, 0));
    sq_test_ok(sq_forward_get_hidden(ctx, hidden));
    for (int i = 0; i < 7 * 64; i++) hidden[i] *= 0.5f;
    sq_test_ok(sq_forward_set_hidden(ctx, hidden));
    for (int l = 1; l < 5; l++) sq_test_ok(sq_forward_layer(ctx, l));
    sq_test_ok(sq_forward_end(ctx));
    sq_context_set_tap(ctx, NULL, NULL);
    unsigned char skip[5] = {0, 1, 0, 0, 1};
    sq_seq_batch last = all_logits(0, golden_ids + 47, 1, out + (size_t)34 * vocab);
    sq_test_ok(sq_forward_ex(ctx, &last, 1, &(sq_forward_options){.skip_layers = skip}));
    sq_seq_batch tail = all_logits(1, golden_ids + 2, 5, out + (size_t)35 * vocab);
    sq_test_ok(sq_forward(ctx, &tail, 1));
}

static void test_staged_device(void **state) {
    (void)state;
    sq_model *m = load("models/stories260K.bin");
    assert_int_equal(m->cfg.dim, 64);
    const size_t n = (size_t)WORK_ROWS * 512;
    float *cpu = alloc_floats(n), *got = alloc_floats(n);
    tap_store cpu_taps, taps;
    tap_store_init(&cpu_taps, m, 7);
    tap_store_init(&taps, m, 7);
    const sq_context_options o = {.n_seq_max = 2, .n_batch_max = 7, .n_threads = 2};
    sq_context *ctx;
    sq_test_ok(sq_context_create(m, &o, &ctx));
    memset(cpu, 0, n * sizeof *cpu);
    workload(ctx, &cpu_taps, cpu);
    sq_context_free(ctx);

    /* the operation path in the device's memory: the same operations, the same bits */
    staged *s;
    sq_test_ok(sq_context_create_on(m, &o, staged_backend(0, 0, &s), &ctx));
    assert_true(s->uploaded >= 1000000); /* the weights were uploaded */
    taps.device = s;
    memset(got, 0, n * sizeof *got);
    workload(ctx, &taps, got);
    assert_memory_equal(got, cpu, n * sizeof *got);
    assert_memory_equal(taps.x, cpu_taps.x,
                        (size_t)(m->cfg.n_layers + 1) * 5 * 7 * taps.max_width * sizeof(float));
    assert_int_equal(taps.calls, cpu_taps.calls);
    sq_context_free(ctx);

    /* fused blocks and a fused forward (reference arithmetic): within the reference tolerance; while the tap
     * is set, the operation path runs instead */
    for (int fused = 0; fused < 2; fused++) {
        sq_test_ok(sq_context_create_on(m, &o, staged_backend(!fused, fused, &s), &ctx));
        memset(got, 0, n * sizeof *got);
        workload(ctx, NULL, got);
        check_rows(got, cpu, WORK_ROWS, 512, REF_TOL, fused ? "fused forward" : "fused blocks");
        assert_true(fused ? s->fused_forwards > 0 : s->fused_blocks > 0);
        int before = s->fused_blocks + s->fused_forwards;
        tap_store one;
        tap_store_init(&one, m, 7);
        sq_context_set_tap(ctx, engine_tap, &one);
        sq_test_ok(sq_seq_truncate(ctx, 0, 0));
        float row[512];
        sq_test_ok(sq_forward(ctx,
                              &(sq_seq_batch){.seq_id = 0,
                                              .tokens = golden_ids,
                                              .n_tokens = 1,
                                              .logits_mode = SQ_LOGITS_LAST,
                                              .logits = row},
                              1));
        assert_int_equal(s->fused_blocks + s->fused_forwards, before);
        assert_int_equal(one.calls, 4 * m->cfg.n_layers + 1);
        free(one.x);
        free(one.seen);
        sq_context_free(ctx);
    }
    free(cpu_taps.x);
    free(cpu_taps.seen);
    free(taps.x);
    free(taps.seen);
    free(cpu);
    free(got);
    sq_model_free(m);
}

/* A device without an operation the model needs is refused when the context is made, naming what it lacks. */
static void test_unsupported_device(void **state) {
    (void)state;
    sq_model *m = load("models/stories260K.bin");
    const struct {
        sq_op op;
        const char *message;
    } cases[] = {{SQ_OP_ATTENTION, "device staged cannot run attention on f32 data"},
                 {SQ_OP_GET_ROWS, "device staged cannot run get_rows on f32 data"},
                 {SQ_OP_SWIGLU, "cannot run swiglu"},
                 {SQ_OP_MATMUL, "device staged cannot multiply f32 weights (token_embd.weight)"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        staged *s;
        sq_backend be = staged_backend(0, 0, &s);
        s->refuse = cases[i].op;
        sq_context *ctx = NULL;
        sq_test_fails_with(sq_context_create_on(m, NULL, be, &ctx), cases[i].message);
        assert_null(ctx);
    }
    sq_model_free(m);
}

/* ---------------------------------------------------------------- reloading changed weights */

static void test_reload_weights(void **state) {
    (void)state;
    sq_model *m = load("models/stories260K.bin");
    const int vocab = m->cfg.vocab_size, n = 8;
    float *before = alloc_floats((size_t)n * vocab), *after = alloc_floats((size_t)n * vocab);
    float *fresh = alloc_floats((size_t)n * vocab);
    staged *s;
    sq_context *cpu = context(m, 1, 0), *dev;
    sq_test_ok(
        sq_context_create_on(m, &(sq_context_options){.n_threads = 2}, staged_backend(0, 0, &s), &dev));
    sq_seq_batch b = all_logits(0, golden_ids, n, before);
    sq_test_ok(sq_forward(cpu, &b, 1));

    /* a compression step replaces blk.2.ffn_down.weight (here: scaled by 0.5, in a buffer of its own) */
    sq_tensor *t = (sq_tensor *)m->layers[2].w_down;
    const void *old_data = t->data;
    float *scaled = malloc(t->nbytes);
    memcpy(scaled, old_data, t->nbytes);
    for (size_t i = 0; i < t->nbytes / sizeof *scaled; i++) scaled[i] *= 0.5f;
    t->data = scaled;

    const sq_context *ctxs[2] = {cpu, dev};
    for (int c = 0; c < 2; c++) {
        sq_context *ctx = (sq_context *)ctxs[c];
        size_t uploaded = s->uploaded;
        sq_test_ok(sq_context_reload_weights(ctx));
        if (c == 1) assert_int_equal(s->uploaded - uploaded, t->nbytes); /* only the changed tensor moved */
        sq_test_ok(sq_seq_truncate(ctx, 0, 0));
        b.logits = after;
        sq_test_ok(sq_forward(ctx, &b, 1));
        sq_context *new_ctx = context(m, 1, 0);
        b.logits = fresh;
        sq_test_ok(sq_forward(new_ctx, &b, 1));
        sq_context_free(new_ctx);
        assert_memory_equal(after, fresh, (size_t)n * vocab * sizeof *after);
        assert_true(sq_test_rel_err(after, before, (size_t)n * vocab) > 1e-3);
    }
    /* a pruned layer cannot be reloaded into a context sized for the old one */
    ((sq_layer *)&m->layers[1])->ffn_dim -= 4;
    sq_test_fails_with(sq_context_reload_weights(cpu), "layer 1 changed shape");
    ((sq_layer *)&m->layers[1])->ffn_dim += 4;
    t->data = (void *)old_data;
    sq_context_free(cpu);
    sq_context_free(dev);
    free(scaled);
    free(before);
    free(after);
    free(fresh);
    sq_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_is_golden), cmocka_unit_test(test_steps_equal_forward),
        cmocka_unit_test(test_tap_and_layer_mask),  cmocka_unit_test(test_token_tree),
        cmocka_unit_test(test_token_tree_fork),     cmocka_unit_test(test_rejected_batch),
        cmocka_unit_test(test_staged_device),       cmocka_unit_test(test_unsupported_device),
        cmocka_unit_test(test_reload_weights),
    };
    return cmocka_run_group_tests(tests, read_golden_tokens, NULL);
}
