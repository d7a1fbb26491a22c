/* Perplexity, KL divergence and reference log-prob files, checked against plain per-window references
 * computed from the fake model's logits (fake_lm.h), and the text reader's UTF-8 and CRLF handling. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eval/eval.h"
#include "fake_lm.h"
#include "testlib.h"

enum { VOCAB = 61, CTX = 24 };

static int32_t *random_ids(int n, uint64_t seed) {
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    for (int i = 0; i < n; i++) ids[i] = (int32_t)(sq_test_rand_u64(&seed) % VOCAB);
    return ids;
}

/* log-softmax of one row in double */
static void log_softmax(const float *z, int n, double *out) {
    double mx = z[0], s = 0;
    for (int i = 1; i < n; i++) mx = z[i] > mx ? z[i] : mx;
    for (int i = 0; i < n; i++) s += exp(z[i] - mx);
    for (int i = 0; i < n; i++) out[i] = z[i] - mx - log(s);
}

typedef struct reference {
    double nll, ref_nll, kl, kl_max, kl_topk, tail;
    long n, agree;
} reference;

/* Plain reference: windows written out by hand from the protocol's definition, every row computed from
 * scratch; KL exact, and coarse-grained over the reference's top k (+ one tail bucket) when top_k > 0. */
static reference reference_ppl(const fake_lm *m, const fake_lm *r, const int32_t *ids, int n,
                               sq_ppl_protocol proto, int stride, int bos, int top_k) {
    reference out = {0};
    float z[VOCAB], zr[VOCAB];
    double lm[VOCAB], lr[VOCAB];
    int32_t win[CTX];
    long prev_end = 0;
    for (long begin = 0; begin < n; begin += proto == SQ_PPL_STRIDE ? stride : CTX) {
        long end = begin + CTX, first;
        if (proto == SQ_PPL_STRIDE) {
            if (end > n) end = n;
            first = prev_end > begin + 1 ? prev_end : begin + 1;
        } else {
            if (end > n) break;
            first = proto == SQ_PPL_WINDOWS ? begin + 1 : begin + CTX / 2 + 1;
        }
        memcpy(win, ids + begin, (size_t)(end - begin) * sizeof *win);
        if (proto == SQ_PPL_SECOND_HALF && bos >= 0) win[0] = bos;
        for (long p = first; p < end; p++) {
            fake_logits(m, win, (int)(p - begin), z);
            log_softmax(z, VOCAB, lm);
            out.nll -= lm[ids[p]];
            out.n++;
            if (!r) continue;
            fake_logits(r, win, (int)(p - begin), zr);
            log_softmax(zr, VOCAB, lr);
            out.ref_nll -= lr[ids[p]];
            double kl = 0;
            for (int v = 0; v < VOCAB; v++) kl += exp(lr[v]) * (lr[v] - lm[v]);
            out.kl += kl;
            out.kl_max = kl > out.kl_max ? kl : out.kl_max;
            out.agree += sq_argmax(z, VOCAB) == sq_argmax(zr, VOCAB);
            if (top_k > 0) {
                /* the top k of the reference by selection sort on a copy */
                double pr[VOCAB];
                int used[VOCAB] = {0};
                memcpy(pr, lr, sizeof pr);
                double topkl = 0, p_top = 0, q_top = 0;
                for (int k = 0; k < top_k; k++) {
                    int best = -1;
                    for (int v = 0; v < VOCAB; v++)
                        if (!used[v] && (best < 0 || pr[v] > pr[best])) best = v;
                    used[best] = 1;
                    topkl += exp(lr[best]) * (lr[best] - lm[best]);
                    p_top += exp(lr[best]), q_top += exp(lm[best]);
                }
                double tail = 1 - p_top;
                if (tail > 0) topkl += tail * log(tail / (1 - q_top));
                out.kl_topk += topkl;
                out.tail += tail;
            }
        }
        prev_end = end;
        if (proto == SQ_PPL_STRIDE && end == n) break;
    }
    return out;
}

static void check_close(double got, double want, double rel, const char *what) {
    if (fabs(got - want) > rel * fmax(fabs(want), 1e-12))
        fail_msg("%s: got %.12g, want %.12g (tolerance %g relative)", what, got, want, rel);
}

static void test_exp_and_logsumexp(void **state) {
    (void)state;
    uint64_t seed = 99;
    double worst = 0;
    for (int i = 0; i < 200000; i++) {
        double x = -720.0 * sq_test_rand_uniform(&seed, 0, 1), want = exp(x), got = sq_exp_nonpos(x);
        if (x < -708)
            assert_true(got == 0);
        else
            worst = fmax(worst, fabs(got - want) / want);
    }
    if (worst > 1e-15) fail_msg("sq_exp_nonpos: relative error %g", worst);
    assert_true(sq_exp_nonpos(0) == 1.0);
    /* the vectorised row reduction against a plain long-double sum, on rows of every length mod 4 */
    for (int n = 1; n < 40; n++) {
        float z[40];
        for (int v = 0; v < n; v++) z[v] = sq_test_rand_uniform(&seed, -30, 30);
        long double mx = z[0], s = 0;
        for (int v = 1; v < n; v++) mx = z[v] > mx ? z[v] : mx;
        for (int v = 0; v < n; v++) s += expl(z[v] - mx);
        double want = (double)(mx + logl(s));
        check_close(sq_logsumexp(z, n), want, 1e-15, "logsumexp");
        int best = 0;
        for (int v = 1; v < n; v++) best = z[v] > z[best] ? v : best;
        assert_int_equal(sq_argmax(z, n), best);
    }
}

static void test_plan(void **state) {
    (void)state;
    sq_ppl_plan_window *w;
    int n;
    sq_test_ok(sq_ppl_plan(SQ_PPL_WINDOWS, 100, 24, 0, &w, &n));
    assert_int_equal(n, 4); /* 100/24: the partial fifth window is dropped */
    assert_int_equal(w[3].start, 72);
    assert_int_equal(w[3].score_from, 1);
    free(w);
    sq_test_ok(sq_ppl_plan(SQ_PPL_SECOND_HALF, 100, 24, 0, &w, &n));
    assert_int_equal(w[1].score_from, 13);
    free(w);
    /* stride: every token after the first is scored exactly once */
    for (int stride = 1; stride <= 24; stride += 5) {
        sq_test_ok(sq_ppl_plan(SQ_PPL_STRIDE, 100, 24, stride, &w, &n));
        int seen[100] = {0};
        for (int k = 0; k < n; k++) {
            assert_true(w[k].len <= 24 && w[k].start + w[k].len <= 100);
            for (int p = w[k].score_from; p < w[k].len; p++) seen[w[k].start + p]++;
        }
        for (int i = 1; i < 100; i++) assert_int_equal(seen[i], 1);
        assert_int_equal(seen[0], 0);
        free(w);
    }
    sq_test_fails_with(sq_ppl_plan(SQ_PPL_WINDOWS, 23, 24, 0, &w, &n), "fewer than one window");
    sq_test_fails_with(sq_ppl_plan(SQ_PPL_STRIDE, 100, 24, 25, &w, &n), "stride 25");
    sq_test_fails_with(sq_ppl_plan(SQ_PPL_STRIDE, 100, 24, 0, &w, &n), "stride 0");
}

static void test_ppl_matches_reference(void **state) {
    (void)state;
    const int n = 173;
    int32_t *ids = random_ids(n, 7);
    const sq_ppl_protocol protos[] = {SQ_PPL_WINDOWS, SQ_PPL_STRIDE, SQ_PPL_SECOND_HALF};
    for (size_t pi = 0; pi < 3; pi++) {
        double first_ppl = 0;
        for (int batch = 1; batch <= 4; batch += 3) {
            for (int threads = 1; threads <= 2; threads++) {
                fake_lm m;
                sq_lm lm = fake_lm_open(&m, VOCAB, CTX, batch, 11, 0);
                sq_ppl_options o = {.protocol = protos[pi],
                                    .n_ctx = CTX,
                                    .stride = 10,
                                    .n_batch = batch,
                                    .n_threads = threads,
                                    .bos_id = 1};
                sq_ppl_result r;
                sq_test_ok(sq_ppl_run(&lm, NULL, ids, n, &o, &r));
                reference ref = reference_ppl(&m, NULL, ids, n, protos[pi], 10, 1, 0);
                assert_int_equal(r.n_scored, ref.n);
                check_close(r.ppl, exp(ref.nll / ref.n), 1e-12, "ppl");
                assert_false(r.has_ref);
                /* results do not depend on batch size or threads: sums run in window order */
                if (first_ppl == 0) first_ppl = r.ppl;
                assert_true(r.ppl == first_ppl);
                assert_true(r.ppl_lo < r.ppl && r.ppl < r.ppl_hi);
                long scored = 0;
                for (int w = 0; w < r.n_windows; w++) scored += r.windows[w].n_scored;
                assert_int_equal(scored, r.n_scored);
                sq_ppl_result_free(&r);
                fake_lm_close(&m);
            }
        }
    }
    free(ids);
}

/* Issue 7 item 7: the strided protocol scores a text shorter than one window as one short window (Hugging
 * Face's guide: its loop runs once with end = len); the windows protocols keep refusing it. */
static void test_stride_short_text(void **state) {
    (void)state;
    const int lens[] = {2, 3, 13, CTX - 1, CTX};
    for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
        int n = lens[li];
        int32_t *ids = random_ids(n, 40 + (uint64_t)n);
        for (int stride = 1; stride <= CTX; stride += 23) {
            fake_lm m;
            sq_lm lm = fake_lm_open(&m, VOCAB, CTX, 1, 13, 0);
            sq_ppl_options o = {
                .protocol = SQ_PPL_STRIDE, .n_ctx = CTX, .stride = stride, .n_batch = 1, .n_threads = 1};
            sq_ppl_result r;
            sq_test_ok(sq_ppl_run(&lm, NULL, ids, n, &o, &r));
            reference ref = reference_ppl(&m, NULL, ids, n, SQ_PPL_STRIDE, stride, -1, 0);
            assert_int_equal(r.n_windows, 1);
            assert_int_equal(r.windows[0].n_tokens, n);
            assert_int_equal(r.n_scored, n - 1);
            assert_int_equal(ref.n, n - 1);
            check_close(r.ppl, exp(ref.nll / ref.n), 1e-12, "short-text ppl");
            sq_ppl_result_free(&r);
            o.protocol = SQ_PPL_WINDOWS;
            if (n < CTX) sq_test_fails_with(sq_ppl_run(&lm, NULL, ids, n, &o, &r), "fewer than one window");
            o.protocol = SQ_PPL_SECOND_HALF;
            if (n < CTX) sq_test_fails_with(sq_ppl_run(&lm, NULL, ids, n, &o, &r), "fewer than one window");
            fake_lm_close(&m);
        }
        free(ids);
    }
    sq_ppl_plan_window *w;
    int n_w;
    sq_test_fails_with(sq_ppl_plan(SQ_PPL_STRIDE, 1, CTX, 4, &w, &n_w), "nothing to score");
    sq_test_fails_with(sq_ppl_plan(SQ_PPL_STRIDE, 0, CTX, 4, &w, &n_w), "nothing to score");
}

static void test_ci_from_token_nll(void **state) {
    (void)state;
    /* the 95% interval is exp(mean +- 1.96 sd / sqrt(n)) of per-token NLLs */
    const int n = 97;
    int32_t *ids = random_ids(n, 3);
    fake_lm m;
    sq_lm lm = fake_lm_open(&m, VOCAB, CTX, 1, 5, 0);
    sq_ppl_options o = {.protocol = SQ_PPL_WINDOWS, .n_ctx = CTX, .n_batch = 1, .n_threads = 1};
    sq_ppl_result r;
    sq_test_ok(sq_ppl_run(&lm, NULL, ids, n, &o, &r));
    float z[VOCAB];
    double l[VOCAB], s = 0, s2 = 0;
    long cnt = 0;
    for (int w = 0; w + CTX <= n; w += CTX)
        for (int p = 1; p < CTX; p++) {
            fake_logits(&m, ids + w, p, z);
            log_softmax(z, VOCAB, l);
            s += -l[ids[w + p]], s2 += l[ids[w + p]] * l[ids[w + p]], cnt++;
        }
    double mean = s / cnt, sd = sqrt((s2 - cnt * mean * mean) / (cnt - 1));
    check_close(r.nll_sd, sd, 1e-9, "nll sd");
    check_close(r.ppl_lo, exp(mean - 1.96 * sd / sqrt(cnt)), 1e-9, "ci low");
    check_close(r.ppl_hi, exp(mean + 1.96 * sd / sqrt(cnt)), 1e-9, "ci high");
    sq_ppl_result_free(&r);
    fake_lm_close(&m);
    free(ids);
}

static void test_kl(void **state) {
    (void)state;
    const int n = 150;
    int32_t *ids = random_ids(n, 9);
    for (int perturbed = 0; perturbed <= 1; perturbed++) {
        fake_lm m, r;
        sq_lm lm = fake_lm_open(&m, VOCAB, CTX, 3, 21, 0);
        sq_lm ref = fake_lm_open(&r, VOCAB, CTX, 3, 21, perturbed ? 1.5 : 0);
        sq_ppl_options o = {
            .protocol = SQ_PPL_STRIDE, .n_ctx = CTX, .stride = 7, .n_batch = 3, .n_threads = 2};
        sq_ppl_result res;
        sq_test_ok(sq_ppl_run(&lm, &ref, ids, n, &o, &res));
        reference want = reference_ppl(&m, &r, ids, n, SQ_PPL_STRIDE, 7, -1, 0);
        assert_true(res.has_ref);
        assert_int_equal(res.kl_top_k, 0);
        if (!perturbed) {
            assert_true(res.kl_mean < 1e-12 && res.kl_max < 1e-12);
            assert_true(res.top1_agreement == 1.0);
            check_close(res.ppl_ratio, 1, 1e-12, "self ppl ratio");
        } else {
            assert_true(res.kl_mean > 1e-3);
            check_close(res.kl_mean, want.kl / want.n, 1e-9, "kl mean");
            check_close(res.kl_max, want.kl_max, 1e-9, "kl max");
            check_close(res.top1_agreement, (double)want.agree / want.n, 1e-12, "top-1 agreement");
            check_close(res.ref_ppl, exp(want.ref_nll / want.n), 1e-12, "reference ppl");
            check_close(res.ppl_ratio, exp((want.nll - want.ref_nll) / want.n), 1e-9, "ppl ratio");
            assert_true(res.top1_agreement < 1.0);
        }
        sq_ppl_result_free(&res);
        fake_lm_close(&m);
        fake_lm_close(&r);
    }
    free(ids);
}

static void test_ref_file_roundtrip(void **state) {
    (void)state;
    const int n = 130;
    int32_t *ids = random_ids(n, 13);
    const char *path = sq_test_work("evalq_ref.bin");
    for (int top_k = 5; top_k <= VOCAB; top_k += VOCAB - 5) {
        fake_lm m, r;
        sq_lm lm = fake_lm_open(&m, VOCAB, CTX, 2, 31, 0);
        sq_lm ref = fake_lm_open(&r, VOCAB, CTX, 2, 31, 2.0);
        sq_ppl_options o = {.protocol = SQ_PPL_WINDOWS,
                            .n_ctx = CTX,
                            .n_batch = 2,
                            .n_threads = 2,
                            .ref_logits_out = path,
                            .ref_top_k = top_k};
        sq_ppl_result live, cached;
        sq_test_ok(sq_ppl_run(&lm, &ref, ids, n, &o, &live));
        o.ref_logits_out = NULL;
        o.ref_logits_in = path;
        o.n_batch = 1; /* records are in window order whatever the batch */
        sq_test_ok(sq_ppl_run(&lm, NULL, ids, n, &o, &cached));
        reference want = reference_ppl(&m, &r, ids, n, SQ_PPL_WINDOWS, 0, -1, top_k);
        assert_int_equal(cached.kl_top_k, top_k);
        check_close(cached.kl_mean, want.kl_topk / want.n, 1e-5, "top-k kl");
        assert_true(cached.kl_mean <= live.kl_mean * (1 + 1e-6)); /* a lower bound on the exact KL */
        if (top_k == VOCAB)
            check_close(cached.kl_mean, live.kl_mean, 1e-5, "full top-k kl");
        else
            assert_true(cached.kl_mean < live.kl_mean);
        check_close(cached.ref_tail_mass, want.tail / want.n, 1e-4, "tail mass");
        check_close(cached.ref_ppl, live.ref_ppl, 1e-6, "reference ppl from file");
        check_close(cached.top1_agreement, live.top1_agreement, 1e-12, "top-1 from file");
        check_close(cached.ppl, live.ppl, 1e-12, "ppl");
        sq_ppl_result_free(&live);
        sq_ppl_result_free(&cached);

        /* a file made for other tokens or another window length is refused */
        ids[5] = (ids[5] + 1) % VOCAB;
        sq_test_fails_with(sq_ppl_run(&lm, NULL, ids, n, &o, &cached), "different tokens");
        ids[5] = (ids[5] + VOCAB - 1) % VOCAB;
        o.n_ctx = CTX - 4;
        sq_test_fails_with(sq_ppl_run(&lm, NULL, ids, n, &o, &cached), "made with ctx 24");
        fake_lm_close(&m);
        fake_lm_close(&r);
    }
    /* a truncated file and a file that is not one */
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fclose(fp);
    assert_int_equal(truncate(path, size - 3), 0);
    fake_lm m;
    sq_lm lm = fake_lm_open(&m, VOCAB, CTX, 1, 31, 0);
    sq_ppl_options o = {
        .protocol = SQ_PPL_WINDOWS, .n_ctx = CTX, .n_batch = 1, .n_threads = 1, .ref_logits_in = path};
    sq_ppl_result res;
    sq_test_fails_with(sq_ppl_run(&lm, NULL, ids, n, &o, &res), "do not hold");
    fp = fopen(path, "wb");
    fputs("not a reference file at all, but long enough to hold a header......", fp);
    fclose(fp);
    sq_test_fails_with(sq_ppl_run(&lm, NULL, ids, n, &o, &res), "bad magic");
    fake_lm_close(&m);
    free(ids);
}

/* A reference file whose records were damaged is refused naming the record, not read into a wrong KL:
 * each case rewrites 4 bytes of a valid file (top 5: a record is 8 + 5 * 8 bytes after the 64-byte header).
 */
static void test_damaged_ref_records(void **state) {
    (void)state;
    const int n = 3 * CTX, top_k = 5;
    int32_t *ids = random_ids(n, 29);
    const char *path = sq_test_work("evalq_ref_damaged.bin");
    fake_lm m, r;
    sq_lm lm = fake_lm_open(&m, VOCAB, CTX, 1, 7, 0);
    sq_lm ref = fake_lm_open(&r, VOCAB, CTX, 1, 7, 1.5);
    sq_ppl_options o = {
        .protocol = SQ_PPL_WINDOWS, .n_ctx = CTX, .n_threads = 1, .ref_logits_out = path, .ref_top_k = top_k};
    sq_ppl_result res;
    sq_test_ok(sq_ppl_run(&lm, &ref, ids, n, &o, &res));
    sq_ppl_result_free(&res);
    o.ref_logits_out = NULL;
    o.ref_logits_in = path;
    const long record = 64 + 2 * (8 + top_k * 8); /* the third record */
    union {
        float f;
        int32_t i;
    } first_id;
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, record + 8, SEEK_SET), 0);
    assert_int_equal(fread(&first_id, 4, 1, fp), 1);
    fclose(fp);
    const struct {
        long offset;
        float f;
        int32_t i;
        int is_id;
        const char *needle;
    } cases[] = {
        {record, 0.25f, 0, 0, "record 2: target log-prob 0.25"},     /* a probability above 1 */
        {record, NAN, 0, 0, "record 2: target log-prob nan"},        /* not a number */
        {record + 4, 1.5f, 0, 0, "tail mass 1.5 is out of range"},   /* a tail above 1 */
        {record + 4, -0.1f, 0, 0, "tail mass -0.1 is out of range"}, /* a negative tail */
        {record + 8 + 4, 0, first_id.i, 1, "invalid entry 1 (id"},   /* an id twice */
        {record + 8 + 4, 0, VOCAB, 1, "invalid entry 1 (id 61"},     /* an id past the vocabulary */
        {record + 8 + top_k * 4 + 4, 0.0f, 0, 0, "invalid entry 1"}, /* a second log-prob above the first */
        {record + 8 + top_k * 4 + 4, -INFINITY, 0, 0, "invalid entry 1"},    /* an impossible token */
        {record + 8 + top_k * 4 + 16, -40.0f, 0, 0, "probabilities sum to"}, /* mass that went missing */
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        fp = fopen(path, "r+b");
        assert_non_null(fp);
        unsigned char saved[4], patch[4];
        assert_int_equal(fseek(fp, cases[c].offset, SEEK_SET), 0);
        assert_int_equal(fread(saved, 1, 4, fp), 4);
        memcpy(patch, cases[c].is_id ? (const void *)&cases[c].i : (const void *)&cases[c].f, 4);
        assert_int_equal(fseek(fp, cases[c].offset, SEEK_SET), 0);
        assert_int_equal(fwrite(patch, 1, 4, fp), 4);
        assert_int_equal(fclose(fp), 0);
        sq_test_fails_with(sq_ppl_run(&lm, NULL, ids, n, &o, &res), cases[c].needle);
        fp = fopen(path, "r+b"); /* undo: the next case damages a valid file again */
        assert_non_null(fp);
        assert_int_equal(fseek(fp, cases[c].offset, SEEK_SET), 0);
        assert_int_equal(fwrite(saved, 1, 4, fp), 4);
        assert_int_equal(fclose(fp), 0);
    }
    sq_test_ok(sq_ppl_run(&lm, NULL, ids, n, &o, &res)); /* the undamaged file still reads */
    assert_true(isfinite(res.kl_mean));
    sq_ppl_result_free(&res);
    fake_lm_close(&m);
    fake_lm_close(&r);
    free(ids);
}

static void test_failed_run_removes_ref_file(void **state) {
    (void)state;
    const int n = 130;
    int32_t *ids = random_ids(n, 17);
    const char *path = sq_test_work("evalq_ref_failed.bin");
    fake_lm m, r;
    sq_lm lm = fake_lm_open(&m, VOCAB, CTX, 1, 3, 0);
    sq_lm ref = fake_lm_open(&r, VOCAB, CTX, 1, 3, 1.0);
    r.fail_at_call = 3;
    sq_ppl_options o = {
        .protocol = SQ_PPL_WINDOWS, .n_ctx = CTX, .n_batch = 1, .n_threads = 1, .ref_logits_out = path};
    sq_ppl_result res;
    sq_test_fails_with(sq_ppl_run(&lm, &ref, ids, n, &o, &res),
                       "reference model: fake lm: failing on purpose");
    assert_int_equal(access(path, F_OK), -1);
    fake_lm_close(&m);
    fake_lm_close(&r);
    free(ids);
}

static void test_bad_inputs(void **state) {
    (void)state;
    int32_t ids[40];
    for (int i = 0; i < 40; i++) ids[i] = i;
    fake_lm m;
    sq_lm lm = fake_lm_open(&m, VOCAB, CTX, 2, 1, 0);
    sq_ppl_options o = {.protocol = SQ_PPL_WINDOWS, .n_ctx = CTX, .n_batch = 1, .n_threads = 1};
    sq_ppl_result r;
    sq_test_fails_with(sq_ppl_run(&lm, NULL, ids, 20, &o, &r), "fewer than one window");
    ids[30] = VOCAB;
    sq_test_fails_with(sq_ppl_run(&lm, NULL, ids, 40, &o, &r), "token 30 is id 61");
    ids[30] = 0;
    o.n_ctx = CTX + 1;
    sq_test_fails_with(sq_ppl_run(&lm, NULL, ids, 40, &o, &r), "exceeds the model's context");
    o.n_ctx = CTX;
    o.n_batch = 3;
    sq_test_fails_with(sq_ppl_run(&lm, NULL, ids, 40, &o, &r), "exceeds the context's 2 sequences");
    o.n_batch = 1;
    o.ref_logits_out = sq_test_work("never.bin");
    sq_test_fails_with(sq_ppl_run(&lm, NULL, ids, 40, &o, &r), "needs a reference model");
    fake_lm_close(&m);
}

static void test_read_text(void **state) {
    (void)state;
    char *text;
    size_t len;
    static const char good[] = "caf\xc3\xa9\r\nline two\r\n\xf0\x9f\x98\x80 and a lone \r stays\n";
    sq_test_ok(sq_eval_read_text(sq_test_write_file(sq_test_work("evalq_good.txt"), good, sizeof good - 1),
                                 &text, &len));
    static const char want[] = "caf\xc3\xa9\nline two\n\xf0\x9f\x98\x80 and a lone \r stays\n";
    assert_int_equal(len, sizeof want - 1);
    assert_memory_equal(text, want, len);
    free(text);
    /* each invalid sequence is reported with its line */
    static const char *const bad[] = {"ok\nok\nbad \xff here", "ok\nok\nover\xc0\xaflong",
                                      "ok\nok\nsurr\xed\xa0\x80", "ok\nok\nbig\xf4\x90\x80\x80",
                                      "ok\nok\ncut \xe2\x82"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *path = sq_test_write_file(sq_test_work("evalq_bad.txt"), bad[i], strlen(bad[i]));
        sq_error *err = sq_eval_read_text(path, &text, &len);
        assert_non_null(err);
        assert_non_null(strstr(sq_error_message(err), "evalq_bad.txt: line 3"));
        assert_non_null(strstr(sq_error_message(err), "invalid UTF-8"));
        sq_error_free(err);
    }
    sq_test_fails_with(sq_eval_read_text(sq_test_work("evalq_missing.txt"), &text, &len), "cannot open");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exp_and_logsumexp),
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_stride_short_text),
        cmocka_unit_test(test_ppl_matches_reference),
        cmocka_unit_test(test_ci_from_token_nll),
        cmocka_unit_test(test_kl),
        cmocka_unit_test(test_ref_file_roundtrip),
        cmocka_unit_test(test_damaged_ref_records),
        cmocka_unit_test(test_failed_run_removes_ref_file),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_read_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
