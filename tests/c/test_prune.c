/* Pruning (squeeze.h "pruning"): the mask chooses exactly the lowest scores (count, threshold, ties, N:M
 * groups) on random matrices of awkward shapes; magnitude pruning zeroes exactly those weights of a real
 * model and leaves the rest bit for bit; 0% pruning leaves the logits identical after a save and load;
 * invalid requests fail before any change; depth pruning's ppl scores equal brute force (each block really
 * removed and the perplexity measured) and the pruned model computes exactly what the original does with
 * those blocks skipped. The float64 reference checks of pruned models are in tests/py/test_prune.py. */
#include <math.h>

#include "compress/prune/prune.h"
#include "test_formats_util.h"

static const char *stories260k(void) { return sq_test_shared("models/stories260K.bin"); }

/* ---------------------------------------------------------------- the mask */

typedef struct chk {
    float s;
    int64_t i;
    int zeroed;
} chk;

/* Inside one scope [first, first+count): the zeroed are exactly k, and each zeroed one precedes each kept one
 * in (score, index) order. */
static void check_scope(const float *w, const float *score, int64_t first, int64_t count, int64_t k) {
    int64_t zeroed = 0;
    float max_zeroed_s = -INFINITY, min_kept_s = INFINITY;
    for (int64_t i = first; i < first + count; i++) {
        if (w[i] == 0.0f) {
            zeroed++;
            if (score[i] > max_zeroed_s) max_zeroed_s = score[i];
        } else if (score[i] < min_kept_s) {
            min_kept_s = score[i];
        }
    }
    assert_int_equal(zeroed, k);
    assert_true(max_zeroed_s <= min_kept_s);
    /* ties: at the threshold score, the zeroed come before the kept */
    int64_t last_zeroed_at_t = -1, first_kept_at_t = INT64_MAX;
    for (int64_t i = first; i < first + count; i++) {
        if (score[i] != max_zeroed_s) continue;
        if (w[i] == 0.0f)
            last_zeroed_at_t = i;
        else if (i < first_kept_at_t)
            first_kept_at_t = i;
    }
    assert_true(last_zeroed_at_t < first_kept_at_t);
}

static void test_mask(void **state) {
    (void)state;
    uint64_t seed = 77;
    for (int trial = 0; trial < 60; trial++) {
        int64_t rows = 1 + (int64_t)(sq_test_rand_u64(&seed) % 37);
        int m_choices[] = {2, 4, 8, 16};
        int m = trial % 3 == 0 ? m_choices[sq_test_rand_u64(&seed) % 4] : 0;
        int n = m ? 1 + (int)(sq_test_rand_u64(&seed) % (uint64_t)(m - 1)) : 0;
        int64_t cols = m ? m * (1 + (int64_t)(sq_test_rand_u64(&seed) % 9))
                         : 1 + (int64_t)(sq_test_rand_u64(&seed) % 67);
        double sparsity = sq_test_rand_uniform(&seed, 0, 0.999f);
        sq_mask_scope scope = trial % 2 ? SQ_MASK_PER_ROW : SQ_MASK_PER_MATRIX;
        int64_t len = rows * cols;
        float *w = malloc((size_t)len * sizeof *w), *score = malloc((size_t)len * sizeof *score);
        for (int64_t i = 0; i < len; i++) {
            w[i] = sq_test_rand_uniform(&seed, 0.5f, 2); /* never zero before the mask */
            float s = sq_test_rand_uniform(&seed, -1, 1);
            score[i] = trial % 4 == 1 ? roundf(s * 3) : s; /* every fourth: many ties */
        }
        int64_t chosen = sq_prune_mask(w, score, rows, cols, scope, sparsity, n, m);
        if (m) {
            assert_int_equal(chosen, len / m * (m - n));
            for (int64_t g = 0; g < len; g += m) check_scope(w, score, g, m, m - n);
        } else {
            int64_t scope_len = scope == SQ_MASK_PER_ROW ? cols : len;
            int64_t k = (int64_t)floor(sparsity * (double)scope_len);
            assert_int_equal(chosen, k * (len / scope_len));
            for (int64_t f = 0; f < len; f += scope_len) check_scope(w, score, f, scope_len, k);
        }
        free(w);
        free(score);
    }
}

/* ---------------------------------------------------------------- magnitude on a real model */

static float *read_all(const sq_model *m, const char *name, int64_t *n) {
    sq_tensor_info ti;
    sq_model_tensor_info(m, sq_model_tensor_index(m, name), &ti);
    *n = ti.shape[0] * (ti.ndim > 1 ? ti.shape[1] : 1);
    float *v = malloc((size_t)*n * sizeof *v);
    sq_test_ok(sq_model_read_tensor(m, name, v, *n));
    return v;
}

/* Every linear weight of the pruned model is the original's or exactly zero, zero exactly where the mask
 * (recomputed here from |W| of the original) puts it; norms and embeddings untouched. */
static void check_magnitude(double sparsity, int n, int m) {
    sq_model *orig, *pruned;
    sq_test_ok(sq_model_load(stories260k(), NULL, &orig));
    sq_test_ok(sq_model_load(stories260k(), NULL, &pruned));
    sq_prune_options o = {.method = SQ_PRUNE_MAGNITUDE, .sparsity = sparsity, .nm_n = n, .nm_m = m};
    sq_prune_result r;
    sq_test_ok(sq_prune(pruned, &o, &r));
    int64_t expect_zero = 0;
    for (int i = 0; i < sq_model_n_tensors(orig); i++) {
        sq_tensor_info ti;
        sq_model_tensor_info(orig, i, &ti);
        int64_t len, len2;
        float *a = read_all(orig, ti.name, &len), *b = read_all(pruned, ti.name, &len2);
        assert_int_equal(len, len2);
        int linear = !strncmp(ti.name, "blk.", 4) && ti.ndim == 2;
        if (!linear) {
            assert_memory_equal(a, b, (size_t)len * sizeof *a);
        } else {
            float *score = malloc((size_t)len * sizeof *score);
            for (int64_t k = 0; k < len; k++) score[k] = fabsf(a[k]);
            if (m) {
                for (int64_t g = 0; g < len; g += m) {
                    int nz = 0;
                    for (int k = 0; k < m; k++) nz += b[g + k] != 0;
                    assert_true(nz <= n); /* really N:M */
                    check_scope(b, score, g, m, m - n);
                }
                expect_zero += len / m * (m - n);
            } else {
                int64_t k = (int64_t)floor(sparsity * (double)len);
                check_scope(b, score, 0, len, k);
                expect_zero += k;
            }
            for (int64_t k = 0; k < len; k++) assert_true(b[k] == 0.0f || b[k] == a[k]);
            free(score);
        }
        free(a);
        free(b);
    }
    assert_int_equal(r.n_pruned, expect_zero);
    assert_int_equal(r.params_before, r.params_after);
    assert_int_equal(r.nonzero_before - r.nonzero_after, expect_zero); /* stories260K has no zero weight */
    assert_null(r.scores);
    sq_prune_result_free(&r);
    sq_model_free(orig);
    sq_model_free(pruned);
}

static void test_magnitude_unstructured(void **state) {
    (void)state;
    check_magnitude(0.5, 0, 0);
    check_magnitude(0.237, 0, 0);
}

static void test_magnitude_nm(void **state) {
    (void)state;
    check_magnitude(0, 2, 4);
    check_magnitude(0, 1, 4);
}

static void random_ids(int32_t *ids, int n, int vocab, uint64_t seed) {
    ids[0] = 1;
    for (int i = 1; i < n; i++) ids[i] = 3 + (int32_t)(sq_test_rand_u64(&seed) % (uint64_t)(vocab - 3));
}

static void test_zero_sparsity_identical_logits(void **state) {
    (void)state;
    sq_model *orig, *pruned, *back;
    sq_test_ok(sq_model_load(stories260k(), NULL, &orig));
    sq_test_ok(sq_model_load(stories260k(), NULL, &pruned));
    sq_prune_result r;
    sq_test_ok(sq_prune(pruned, &(sq_prune_options){.method = SQ_PRUNE_MAGNITUDE, .sparsity = 0}, &r));
    assert_int_equal(r.n_pruned, 0);
    assert_int_equal(r.nonzero_after, r.nonzero_before);
    sq_prune_result_free(&r);
    sq_test_ok(sq_model_save(pruned, sq_test_work("prune-zero.gguf"), SQ_FORMAT_GGUF));
    sq_test_ok(load_plain(sq_test_work("prune-zero.gguf"), &back));
    enum { N = 40 };
    int32_t ids[N];
    random_ids(ids, N, 512, 5);
    float *a = sq_test_logits(orig, ids, N, NULL), *b = sq_test_logits(back, ids, N, NULL);
    assert_memory_equal(a, b, (size_t)N * 512 * sizeof *a);
    free(a), free(b);
    sq_model_free(orig), sq_model_free(pruned), sq_model_free(back);
}

/* ---------------------------------------------------------------- refused requests */

static void refused(sq_model *m, const sq_prune_options *o, const char *needle) {
    sq_tensor_info ti;
    int n_tensors = sq_model_n_tensors(m);
    int64_t len;
    float *before = read_all(m, "blk.0.attn_q.weight", &len);
    sq_test_fails_with(sq_prune_check(m, o), needle);
    sq_prune_result r;
    sq_test_fails_with(sq_prune(m, o, &r), needle);
    assert_null(r.scores);
    assert_int_equal(sq_model_n_tensors(m), n_tensors);
    float *after = read_all(m, "blk.0.attn_q.weight", &len);
    assert_memory_equal(before, after, (size_t)len * sizeof *after);
    sq_model_tensor_info(m, 0, &ti);
    free(before), free(after);
}

static void test_invalid_requests(void **state) {
    (void)state;
    sq_model *m;
    sq_test_ok(sq_model_load(stories260k(), NULL, &m)); /* 5 blocks, FFN 172 (a multiple of 4, not of 8) */
    const sq_prune_method mag = SQ_PRUNE_MAGNITUDE, depth = SQ_PRUNE_DEPTH;
    refused(m, &(sq_prune_options){.method = mag, .sparsity = -0.1}, "outside [0, 1)");
    refused(m, &(sq_prune_options){.method = mag, .sparsity = 1}, "outside [0, 1)");
    refused(m, &(sq_prune_options){.method = mag, .sparsity = NAN}, "outside [0, 1)");
    refused(m, &(sq_prune_options){.method = mag, .nm_n = 4, .nm_m = 4}, "0 < N < M");
    refused(m, &(sq_prune_options){.method = mag, .nm_n = 5, .nm_m = 4}, "0 < N < M");
    refused(m, &(sq_prune_options){.method = mag, .nm_n = 0, .nm_m = 4}, "0 < N < M");
    refused(m, &(sq_prune_options){.method = mag, .nm_n = 2, .nm_m = 512}, "0 < N < M");
    refused(m, &(sq_prune_options){.method = mag, .sparsity = 0.5, .nm_n = 2, .nm_m = 4}, "not both");
    refused(m, &(sq_prune_options){.method = mag, .nm_n = 4, .nm_m = 8}, "blk.0.ffn_down.weight has 172");
    refused(m, &(sq_prune_options){.method = (sq_prune_method)9}, "unknown method");
    refused(m, &(sq_prune_options){.method = depth, .n_remove = 0, .criterion = SQ_DEPTH_MAGNITUDE},
            "removing 0 of 5");
    refused(m, &(sq_prune_options){.method = depth, .n_remove = 5, .criterion = SQ_DEPTH_MAGNITUDE},
            "removing 5 of 5 blocks; remove 1 to 4");
    refused(m, &(sq_prune_options){.method = depth, .n_remove = 1},
            "the ppl criterion needs calibration samples");
    refused(m, &(sq_prune_options){.method = SQ_PRUNE_WANDA, .sparsity = 0.5},
            "Wanda needs calibration samples");
    refused(m, &(sq_prune_options){.method = SQ_PRUNE_SPARSEGPT, .nm_n = 2, .nm_m = 4},
            "SparseGPT needs calibration samples");
    int32_t ids[64];
    random_ids(ids, 64, 512, 3);
    sq_calib_samples one = {.n_samples = 2, .seq_len = 1, .ids = ids};
    refused(m, &(sq_prune_options){.method = depth, .n_remove = 1, .calib = &one}, "samples of 1 tokens");
    sq_calib_samples long_ones = {.n_samples = 1, .seq_len = 600, .ids = ids};
    refused(m, &(sq_prune_options){.method = SQ_PRUNE_WANDA, .sparsity = 0.5, .calib = &long_ones},
            "samples of 600 tokens; the model takes 2 to 512");
    ids[40] = 512;
    sq_calib_samples bad = {.n_samples = 2, .seq_len = 32, .ids = ids};
    refused(m, &(sq_prune_options){.method = SQ_PRUNE_SPARSEGPT, .sparsity = 0.5, .calib = &bad},
            "sample 1, token 8 is id 512");
    refused(m, &(sq_prune_options){.method = SQ_PRUNE_WANDA, .sparsity = 1.5, .calib = &bad},
            "outside [0, 1)");
    refused(m, &(sq_prune_options){.method = depth, .n_remove = 1, .criterion = (sq_depth_criterion)5},
            "unknown depth criterion");
    sq_model_free(m);
    /* a format without an exact zero */
    static const tiny_spec q41 = {
        "llama", 64, 2, 4, 2, 16, 96, 70, SQ_DTYPE_Q4_1, 0, 0, 0, 0, SQ_ROPE_INTERLEAVED};
    m = tiny_model(&q41, 9);
    sq_test_fails_with(sq_prune_check(m, &(sq_prune_options){.method = mag, .sparsity = 0.5}),
                       "blk.0.attn_q.weight is q4_1");
    sq_model_free(m);
}

/* ---------------------------------------------------------------- depth */

/* The calibration perplexity as depth pruning measures it (4 windows per forward call, so that the same
 * kernels see the same shapes and the scores must agree to the bit). */
static double ppl_of(const sq_model *m, const int32_t *ids, int64_t n, int len) {
    sq_ppl_result r;
    sq_test_ok(sq_perplexity(
        m, ids, n, &(sq_ppl_options){.protocol = SQ_PPL_WINDOWS, .n_ctx = len, .n_batch = 4, .bos_id = -1},
        &r));
    double p = r.ppl;
    sq_ppl_result_free(&r);
    return p;
}

static void test_depth_ppl_equals_brute_force(void **state) {
    (void)state;
    enum { LEN = 24, N_IDS = 5 * LEN, L = 5 };
    int32_t ids[N_IDS];
    random_ids(ids, N_IDS, 512, 21);
    sq_model *orig, *pruned;
    sq_test_ok(sq_model_load(stories260k(), NULL, &orig));
    sq_test_ok(sq_model_load(stories260k(), NULL, &pruned));
    sq_calib_samples calib = {.n_samples = N_IDS / LEN, .seq_len = LEN, .ids = ids};
    sq_prune_options o = {
        .method = SQ_PRUNE_DEPTH, .n_remove = 2, .criterion = SQ_DEPTH_PPL, .calib = &calib};
    sq_prune_result r;
    sq_test_ok(sq_prune(pruned, &o, &r));
    assert_int_equal(r.n_layers_before, L);
    assert_int_equal(r.n_layers_after, L - 2);
    assert_int_equal(r.n_removed, 2);
    assert_true(r.base_score == ppl_of(orig, ids, N_IDS, LEN));
    /* brute force: each block really removed */
    for (int l = 0; l < L; l++) {
        sq_model *cut;
        sq_test_ok(sq_model_load(stories260k(), NULL, &cut));
        int keep[L - 1], n = 0;
        for (int k = 0; k < L; k++)
            if (k != l) keep[n++] = k;
        sq_test_ok(sq_model_set_layers(cut, keep, n));
        double brute = ppl_of(cut, ids, N_IDS, LEN);
        assert_true(r.scores[l] == brute);
        sq_model_free(cut);
    }
    /* the two removed are the two least important */
    for (int l = 0; l < L; l++) {
        int gone = l == r.removed[0] || l == r.removed[1];
        if (gone) continue;
        assert_true(r.scores[l] >= r.scores[r.removed[0]] && r.scores[l] >= r.scores[r.removed[1]]);
    }
    assert_true(r.removed[0] < r.removed[1]);
    /* the pruned model computes exactly the original with those blocks skipped */
    unsigned char skip[L] = {0};
    skip[r.removed[0]] = skip[r.removed[1]] = 1;
    enum { T = 33 };
    int32_t toks[T];
    random_ids(toks, T, 512, 8);
    float *a = sq_test_logits(orig, toks, T, skip), *b = sq_test_logits(pruned, toks, T, NULL);
    assert_memory_equal(a, b, (size_t)T * 512 * sizeof *a);
    float *full = sq_test_logits(orig, toks, T, NULL);
    assert_true(sq_test_rel_err(full, a, (size_t)T * 512) > 1e-3); /* skipping blocks does change them */
    free(a), free(b), free(full);
    sq_prune_result_free(&r);
    sq_model_free(orig), sq_model_free(pruned);
}

static void test_depth_magnitude(void **state) {
    (void)state;
    sq_model *m;
    sq_test_ok(sq_model_load(stories260k(), NULL, &m));
    double want[5] = {0};
    for (int l = 0; l < 5; l++)
        for (int i = 0; i < 7; i++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%d.%s", l, sq_prune_linear_names[i]);
            int64_t len;
            float *w = read_all(m, name, &len);
            for (int64_t k = 0; k < len; k++) want[l] += fabs(w[k]);
            free(w);
        }
    sq_prune_result r;
    sq_test_ok(sq_prune(
        m, &(sq_prune_options){.method = SQ_PRUNE_DEPTH, .n_remove = 1, .criterion = SQ_DEPTH_MAGNITUDE},
        &r));
    int lowest = 0;
    for (int l = 0; l < 5; l++) {
        assert_true(fabs(r.scores[l] - want[l]) <= 1e-9 * want[l]);
        if (want[l] < want[lowest]) lowest = l;
    }
    assert_int_equal(r.n_removed, 1);
    assert_int_equal(r.removed[0], lowest);
    assert_int_equal(r.n_layers_after, 4);
    assert_true(r.params_after < r.params_before && r.bytes_after < r.bytes_before);
    sq_prune_result_free(&r);
    sq_model_free(m);
}

/* ---------------------------------------------------------------- width */

typedef struct captured {
    double *sum_sq[4]; /* block 0's statistics by tap point */
    int width[4];
} captured;

static SQ_NODISCARD sq_error *capture_block0(void *user, sq_model *model, int layer,
                                             const sq_calib_stats *stats) {
    (void)model;
    captured *c = user;
    if (layer != 0) return NULL;
    for (int p = 0; p < 4; p++) {
        c->width[p] = stats[p].width;
        c->sum_sq[p] = malloc((size_t)stats[p].width * sizeof(double));
        memcpy(c->sum_sq[p], stats[p].sum_sq, (size_t)stats[p].width * sizeof(double));
    }
    return NULL;
}

/* Which rows of big [n][width * cols] the groups of small are, in order; -1 where none matches. */
static void match_groups(const float *small, int n_small, const float *big, int n_big, int64_t group_len,
                         int *which) {
    for (int s = 0; s < n_small; s++) {
        which[s] = -1;
        for (int b = 0; b < n_big && which[s] < 0; b++)
            if (!memcmp(small + s * group_len, big + b * group_len, (size_t)group_len * sizeof(float)))
                which[s] = b;
    }
}

/* stories260K (8 query heads sharing 4 KV heads, FFN 172): half the KV groups and a quarter of the channels
 * go; every block keeps whole groups; block 0 (whose inputs pruning does not change) keeps exactly the groups
 * and channels with the highest Wanda-sp scores computed here from its calibration statistics. */
static void test_width(void **state) {
    (void)state;
    enum { LEN = 32, N = 4 };
    int32_t ids[N * LEN];
    random_ids(ids, N * LEN, 512, 12);
    sq_calib_samples calib = {.n_samples = N, .seq_len = LEN, .ids = ids};
    sq_model *orig, *pruned;
    sq_test_ok(sq_model_load(stories260k(), NULL, &orig));
    sq_test_ok(sq_model_load(stories260k(), NULL, &pruned));
    captured cap = {0};
    sq_calib_method stats_only = {.stats = SQ_CALIB_SUM_SQ, .apply_block = capture_block0, .user = &cap};
    sq_test_ok(sq_calibrate(orig, &calib, &stats_only, NULL));
    sq_prune_result r;
    sq_test_ok(sq_prune(
        pruned, &(sq_prune_options){.method = SQ_PRUNE_WIDTH, .heads = 0.5, .ffn = 0.25, .calib = &calib},
        &r));
    const int hd = 8, dim = 64;
    for (int l = 0; l < 5; l++) {
        sq_layer_info li;
        sq_test_ok(sq_model_layer_info(pruned, l, &li));
        assert_int_equal(li.n_kv_heads, 2);
        assert_int_equal(li.n_heads, 4);
        assert_int_equal(li.ffn_dim, 172 - 43);
    }
    assert_int_equal(r.params_before - r.params_after,
                     5 * (int64_t)(4 * 2 * hd * dim + 2 * 2 * hd * dim + 3 * 43 * dim));
    /* block 0: the expected groups and channels */
    int64_t n;
    float *wo = read_all(orig, "blk.0.attn_output.weight", &n),
          *down = read_all(orig, "blk.0.ffn_down.weight", &n);
    double gscore[4] = {0}, fscore[172] = {0};
    for (int i = 0; i < dim; i++) {
        for (int j = 0; j < 64; j++)
            gscore[j / hd / 2] += fabs(wo[i * 64 + j]) * sqrt(cap.sum_sq[SQ_TAP_ATTN_OUT][j]);
        for (int j = 0; j < 172; j++)
            fscore[j] += fabs(down[i * 172 + j]) * sqrt(cap.sum_sq[SQ_TAP_FFN_DOWN][j]);
    }
    int g_lowest[2] = {-1, -1};
    for (int g = 0; g < 4; g++) /* the two lowest groups */
        if (g_lowest[0] < 0 || gscore[g] < gscore[g_lowest[0]])
            g_lowest[1] = g_lowest[0], g_lowest[0] = g;
        else if (g_lowest[1] < 0 || gscore[g] < gscore[g_lowest[1]])
            g_lowest[1] = g;
    float *k_orig = read_all(orig, "blk.0.attn_k.weight", &n),
          *k_new = read_all(pruned, "blk.0.attn_k.weight", &n);
    int kept[2];
    match_groups(k_new, 2, k_orig, 4, hd * dim, kept);
    for (int i = 0; i < 2; i++) assert_true(kept[i] >= 0 && kept[i] != g_lowest[0] && kept[i] != g_lowest[1]);
    assert_true(kept[0] < kept[1]);
    float *up_orig = read_all(orig, "blk.0.ffn_up.weight", &n),
          *up_new = read_all(pruned, "blk.0.ffn_up.weight", &n);
    int chans[129];
    match_groups(up_new, 129, up_orig, 172, dim, chans);
    double min_kept = INFINITY;
    int is_kept[172] = {0};
    for (int i = 0; i < 129; i++) {
        assert_true(chans[i] >= 0 && (i == 0 || chans[i] > chans[i - 1]));
        is_kept[chans[i]] = 1;
        if (fscore[chans[i]] < min_kept) min_kept = fscore[chans[i]];
    }
    for (int j = 0; j < 172; j++)
        if (!is_kept[j]) assert_true(fscore[j] <= min_kept);
    free(wo), free(down), free(k_orig), free(k_new), free(up_orig), free(up_new);
    for (int p = 0; p < 4; p++) free(cap.sum_sq[p]);
    sq_prune_result_free(&r);
    sq_model_free(orig), sq_model_free(pruned);
}

/* ---------------------------------------------------------------- OWL */

typedef struct captured_all {
    double *sum_sq[5][4]; /* every block's statistics by tap point, from the unpruned model */
} captured_all;

static SQ_NODISCARD sq_error *capture_all(void *user, sq_model *model, int layer,
                                          const sq_calib_stats *stats) {
    (void)model;
    captured_all *c = user;
    for (int p = 0; p < 4; p++) {
        c->sum_sq[layer][p] = malloc((size_t)stats[p].width * sizeof(double));
        memcpy(c->sum_sq[layer][p], stats[p].sum_sq, (size_t)stats[p].width * sizeof(double));
    }
    return NULL;
}

/* Wanda + OWL on stories260K: each block's outlier ratio recomputed here from the unpruned weights and inputs
 * (Wanda scores above 5x the block's mean, over its seven matrices), the sparsities from the paper's formula
 * (average S, spread 2 lambda, more outliers fewer zeros), and every row of every matrix of block l holding
 * exactly floor(s_l * cols) zeros (Wanda compares within rows). */
static void test_owl(void **state) {
    (void)state;
    enum { LEN = 32, N = 4, L = 5 };
    const double S = 0.5, lambda = 0.1;
    int32_t ids[N * LEN];
    random_ids(ids, N * LEN, 512, 21);
    sq_calib_samples calib = {.n_samples = N, .seq_len = LEN, .ids = ids};
    sq_model *orig, *pruned;
    sq_test_ok(sq_model_load(stories260k(), NULL, &orig));
    sq_test_ok(sq_model_load(stories260k(), NULL, &pruned));
    captured_all cap = {0};
    sq_calib_method stats_only = {.stats = SQ_CALIB_SUM_SQ, .apply_block = capture_all, .user = &cap};
    sq_test_ok(sq_calibrate(orig, &calib, &stats_only, NULL));
    sq_prune_result r;
    sq_test_ok(sq_prune(
        pruned,
        &(sq_prune_options){.method = SQ_PRUNE_WANDA, .sparsity = S, .owl_lambda = lambda, .calib = &calib},
        &r));
    static const int input[7] = {0, 0, 0, 1, 2, 2, 3};
    double lod[L], lo = 1, hi = 0, mean = 0;
    for (int l = 0; l < L; l++) {
        double sum = 0;
        int64_t total = 0, above = 0;
        float *w[7];
        int64_t n[7];
        for (int i = 0; i < 7; i++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%d.%s", l, sq_prune_linear_names[i]);
            w[i] = read_all(orig, name, &n[i]);
        }
        for (int pass = 0; pass < 2; pass++)
            for (int i = 0; i < 7; i++) {
                sq_tensor_info ti;
                char name[64];
                snprintf(name, sizeof name, "blk.%d.%s", l, sq_prune_linear_names[i]);
                sq_model_tensor_info(orig, sq_model_tensor_index(orig, name), &ti);
                for (int64_t k = 0; k < n[i]; k++) {
                    double score = fabs((double)w[i][k]) * sqrt(cap.sum_sq[l][input[i]][k % ti.shape[1]]);
                    if (pass == 0)
                        sum += score, total++;
                    else
                        above += score > 5 * sum / (double)total;
                }
            }
        for (int i = 0; i < 7; i++) free(w[i]);
        lod[l] = (double)above / (double)total;
        /* the library ranks fp32 scores: a score at the threshold may fall either way */
        if (!(fabs(r.owl_lod[l] - lod[l]) <= 2.0 / (double)total))
            fail_msg("block %d: outlier ratio %.8f, recomputed %.8f", l, r.owl_lod[l], lod[l]);
        lo = fmin(lo, lod[l]), hi = fmax(hi, lod[l]);
    }
    assert_true(hi > lo); /* the blocks differ, so the sparsities spread */
    for (int l = 0; l < L; l++) mean += (lod[l] - lo) / (hi - lo) * 2 * lambda / L;
    double smin = 1, smax = 0, savg = 0;
    for (int l = 0; l < L; l++) {
        double want = 1 - ((lod[l] - lo) / (hi - lo) * 2 * lambda - mean + (1 - S));
        if (!(fabs(r.layer_sparsity[l] - want) < 1e-6))
            fail_msg("block %d: sparsity %.8f, formula %.8f", l, r.layer_sparsity[l], want);
        smin = fmin(smin, r.layer_sparsity[l]), smax = fmax(smax, r.layer_sparsity[l]);
        savg += r.layer_sparsity[l] / L;
        for (int i = 0; i < 7; i++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%d.%s", l, sq_prune_linear_names[i]);
            sq_tensor_info ti;
            sq_model_tensor_info(pruned, sq_model_tensor_index(pruned, name), &ti);
            int64_t n;
            float *w = read_all(pruned, name, &n);
            const int64_t cols = ti.shape[1], k = (int64_t)floor(r.layer_sparsity[l] * (double)cols);
            for (int64_t row = 0; row < ti.shape[0]; row++) {
                int64_t zeros = 0;
                for (int64_t c = 0; c < cols; c++) zeros += w[row * cols + c] == 0.0f;
                if (zeros != k)
                    fail_msg("%s row %lld: %lld zeros, want %lld", name, (long long)row, (long long)zeros,
                             (long long)k);
            }
            free(w);
        }
        for (int p = 0; p < 4; p++) free(cap.sum_sq[l][p]);
    }
    assert_true(fabs(savg - S) < 1e-12 && fabs(smax - smin - 2 * lambda) < 1e-12);
    /* more outliers, fewer zeros */
    for (int a = 0; a < L; a++)
        for (int b = 0; b < L; b++)
            if (r.owl_lod[a] > r.owl_lod[b]) assert_true(r.layer_sparsity[a] < r.layer_sparsity[b]);
    sq_prune_result_free(&r);
    /* refusals: OWL beside magnitude or N:M, a lambda that would take a block outside [0, 1) */
    refused(pruned, &(sq_prune_options){.method = SQ_PRUNE_MAGNITUDE, .sparsity = 0.5, .owl_lambda = 0.1},
            "OWL applies to wanda and sparsegpt");
    refused(
        pruned,
        &(sq_prune_options){.method = SQ_PRUNE_WANDA, .sparsity = 0.3, .owl_lambda = 0.4, .calib = &calib},
        "OWL lambda 0.4 must lie in (0, 0.3]");
    sq_model_free(orig), sq_model_free(pruned);
}

static void test_width_refused(void **state) {
    (void)state;
    sq_model *m;
    sq_test_ok(sq_model_load(stories260k(), NULL, &m));
    int32_t ids[64];
    random_ids(ids, 64, 512, 4);
    sq_calib_samples calib = {.n_samples = 2, .seq_len = 32, .ids = ids};
    refused(m, &(sq_prune_options){.method = SQ_PRUNE_WIDTH, .heads = 1, .calib = &calib},
            "must lie in [0, 1)");
    refused(m, &(sq_prune_options){.method = SQ_PRUNE_WIDTH, .ffn = -0.25, .calib = &calib},
            "must lie in [0, 1)");
    refused(m, &(sq_prune_options){.method = SQ_PRUNE_WIDTH, .heads = 0.5},
            "width pruning needs calibration samples");
    sq_model_free(m);
    static const tiny_spec q8 = {
        "llama", 64, 2, 4, 2, 16, 96, 70, SQ_DTYPE_Q8_0, 0, 0, 0, 0, SQ_ROPE_INTERLEAVED};
    m = tiny_model(&q8, 9);
    sq_test_fails_with(
        sq_prune_check(m, &(sq_prune_options){.method = SQ_PRUNE_WIDTH, .ffn = 0.25, .calib = &calib}),
        "width leaves blk.0.ffn_down.weight 72 columns, not whole q8_0 blocks of 32");
    sq_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mask),
        cmocka_unit_test(test_magnitude_unstructured),
        cmocka_unit_test(test_magnitude_nm),
        cmocka_unit_test(test_zero_sparsity_identical_logits),
        cmocka_unit_test(test_invalid_requests),
        cmocka_unit_test(test_depth_ppl_equals_brute_force),
        cmocka_unit_test(test_depth_magnitude),
        cmocka_unit_test(test_width),
        cmocka_unit_test(test_width_refused),
        cmocka_unit_test(test_owl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
