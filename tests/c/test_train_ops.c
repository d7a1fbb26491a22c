/* Each backward step of the training ops (src/train/train_ops.h) against central finite differences of a
 * plain double-precision forward written here from the definitions (not from train_ops.c), on random inputs
 * of awkward shapes: RMSNorm (input and weight), RoPE in both pairings, causal grouped-query attention with
 * and without a sliding window (q, k and v), SwiGLU, and the loss rows (cross-entropy, distillation at a
 * temperature, both). Every op's forward is also checked against the double forward.
 *
 * The scalar checked is L = sum(c * y) for a random c (the loss itself for the loss rows). Tolerances: the
 * forward within 1e-5 of the outputs' scale; each gradient entry within 1e-3 |g_fd| + 1e-4 max|g| (fp32
 * arithmetic against double; step 1e-5). The whole model's gradients are checked against the numpy
 * reference forward in tests/py/test_train.py. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "train/train_ops.h"

static sq_threadpool *pool;

static int setup(void **state) {
    (void)state;
    pool = sq_threadpool_create(3);
    return pool ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    sq_threadpool_free(pool);
    return 0;
}

static void fill(float *x, int n, uint64_t *seed, float scale) {
    for (int i = 0; i < n; i++) x[i] = sq_test_rand_uniform(seed, -scale, scale);
}

/* A double forward: y = f(x) for every input array, as doubles. */
typedef void (*fwd_fn)(void *ctx, double *const *in, double *out);

typedef struct op_case {
    const char *name;
    int n_in, n_out;
    int in_len[4];
    fwd_fn fwd;
    void *ctx;
} op_case;

static double dot_c(const double *y, const float *c, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += y[i] * c[i];
    return s;
}

/* Checks the forward output and the gradients grad[k] of L = sum(c * y) against the double forward. */
static void check_op(const op_case *oc, float *const *in, const float *out, const float *c,
                     float *const *grad) {
    double *din[4], *y = malloc((size_t)oc->n_out * sizeof *y);
    for (int k = 0; k < oc->n_in; k++) {
        din[k] = malloc((size_t)oc->in_len[k] * sizeof(double));
        for (int i = 0; i < oc->in_len[k]; i++) din[k][i] = in[k][i];
    }
    oc->fwd(oc->ctx, din, y);
    double ymax = 0, err = 0;
    for (int i = 0; i < oc->n_out; i++) {
        ymax = fmax(ymax, fabs(y[i]));
        err = fmax(err, fabs(y[i] - out[i]));
    }
    if (err > 1e-5 * ymax + 1e-6) fail_msg("%s: forward off by %g (scale %g)", oc->name, err, ymax);
    const double h = 1e-5;
    for (int k = 0; k < oc->n_in; k++) {
        if (!grad[k]) continue;
        double gmax = 0;
        for (int i = 0; i < oc->in_len[k]; i++) gmax = fmax(gmax, fabs(grad[k][i]));
        for (int i = 0; i < oc->in_len[k]; i++) {
            double x0 = din[k][i];
            din[k][i] = x0 + h;
            oc->fwd(oc->ctx, din, y);
            double lp = dot_c(y, c, oc->n_out);
            din[k][i] = x0 - h;
            oc->fwd(oc->ctx, din, y);
            double lm = dot_c(y, c, oc->n_out);
            din[k][i] = x0;
            double fd = (lp - lm) / (2 * h);
            if (fabs(fd - grad[k][i]) > 1e-3 * fabs(fd) + 1e-4 * gmax)
                fail_msg("%s: input %d entry %d: gradient %.8g, finite difference %.8g", oc->name, k, i,
                         grad[k][i], fd);
        }
    }
    for (int k = 0; k < oc->n_in; k++) free(din[k]);
    free(y);
}

/* ---------------------------------------------------------------- RMSNorm */

typedef struct norm_ctx {
    int n, d;
    float eps;
} norm_ctx;

static void norm_fwd(void *p, double *const *in, double *y) {
    const norm_ctx *c = p;
    for (int r = 0; r < c->n; r++) {
        double ss = 0;
        for (int i = 0; i < c->d; i++) ss += in[0][r * c->d + i] * in[0][r * c->d + i];
        double rs = 1 / sqrt(ss / c->d + c->eps);
        for (int i = 0; i < c->d; i++) y[r * c->d + i] = in[0][r * c->d + i] * rs * in[1][i];
    }
}

static void test_rmsnorm(void **state) {
    (void)state;
    uint64_t seed = 1;
    norm_ctx nc = {5, 37, 1e-5f};
    const int n = nc.n * nc.d;
    float *x = malloc(n * sizeof *x), *w = malloc(nc.d * sizeof *w), *y = malloc(n * sizeof *y);
    float *c = malloc(n * sizeof *c), *dx = calloc(n, sizeof *dx), *dw = calloc(nc.d, sizeof *dw), rstd[5];
    fill(x, n, &seed, 2), fill(w, nc.d, &seed, 1.5f), fill(c, n, &seed, 1);
    tr_rmsnorm_fwd(pool, x, w, nc.n, nc.d, nc.eps, y, rstd);
    tr_rmsnorm_bwd(pool, x, w, rstd, c, nc.n, nc.d, dx, dw);
    op_case oc = {"rmsnorm", 2, n, {n, nc.d}, norm_fwd, &nc};
    check_op(&oc, (float *[]){x, w}, y, c, (float *[]){dx, dw});
    free(x), free(w), free(y), free(c), free(dx), free(dw);
}

/* ---------------------------------------------------------------- RoPE */

typedef struct rope_ctx {
    int n, heads, hd, rd; /* rd: the rotated dims of each head (partial rotary when < hd) */
    const int32_t *pos;
    const double *inv_freq;
    sq_rope_style style;
} rope_ctx;

static void rope_fwd(void *p, double *const *in, double *y) {
    const rope_ctx *c = p;
    const int half = c->rd / 2;
    for (int r = 0; r < c->n; r++)
        for (int h = 0; h < c->heads; h++) {
            const double *x = in[0] + (r * c->heads + h) * c->hd;
            double *o = y + (r * c->heads + h) * c->hd;
            for (int i = 0; i < c->hd; i++) o[i] = x[i];
            for (int i = 0; i < half; i++) {
                int a = c->style == SQ_ROPE_INTERLEAVED ? 2 * i : i;
                int b = c->style == SQ_ROPE_INTERLEAVED ? 2 * i + 1 : i + half;
                double t = c->pos[r] * c->inv_freq[i];
                o[a] = x[a] * cos(t) - x[b] * sin(t);
                o[b] = x[a] * sin(t) + x[b] * cos(t);
            }
        }
}

static void test_rope(void **state) {
    (void)state;
    uint64_t seed = 2;
    int32_t pos[6];
    double inv_freq[5];
    for (int i = 0; i < 6; i++) pos[i] = (int32_t)(sq_test_rand_u64(&seed) % 300);
    for (int i = 0; i < 5; i++) inv_freq[i] = pow(10000.0, -2.0 * i / 10);
    for (int rd = 10; rd >= 6; rd -= 4) /* whole heads, and partial rotary */
        for (int style = 0; style < 2; style++) {
            rope_ctx rc = {6, 3, 10, rd, pos, inv_freq, style ? SQ_ROPE_HALVES : SQ_ROPE_INTERLEAVED};
            const int n = 6 * 3 * 10;
            float x[180], y[180], c[180], dx[180];
            fill(x, n, &seed, 2), fill(c, n, &seed, 1);
            memcpy(y, x, sizeof y);
            tr_rope(pool, y, rc.n, rc.heads, rc.hd, rd, pos, inv_freq, rc.style, 1);
            memcpy(dx, c, sizeof dx);
            tr_rope(pool, dx, rc.n, rc.heads, rc.hd, rd, pos, inv_freq, rc.style, -1);
            op_case oc = {style ? "rope halves" : "rope interleaved", 1, n, {n}, rope_fwd, &rc};
            check_op(&oc, (float *[]){x}, y, c, (float *[]){dx});
        }
}

/* ---------------------------------------------------------------- attention */

static void attn_fwd(void *p, double *const *in, double *y) {
    const tr_attn_shape *s = p;
    const int hd = s->head_dim, T = s->seq_len, qw = s->n_heads * hd, kw = s->n_kv_heads * hd;
    const int group = s->n_heads / s->n_kv_heads;
    double sc[64];
    for (int b = 0; b < s->n_seqs; b++)
        for (int h = 0; h < s->n_heads; h++)
            for (int i = 0; i < T; i++) {
                const double *q = in[0] + (b * T + i) * qw + h * hd;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j <= i; j++) {
                    sc[j] = -INFINITY;
                    if (s->window > 0 && j <= i - s->window) continue;
                    const double *k = in[1] + (b * T + j) * kw + (h / group) * hd;
                    double d = 0;
                    for (int e = 0; e < hd; e++) d += q[e] * k[e];
                    sc[j] = d / sqrt(hd);
                    mx = fmax(mx, sc[j]);
                }
                for (int j = 0; j <= i; j++) sum += sc[j] = exp(sc[j] - mx);
                double *o = y + (b * T + i) * qw + h * hd;
                for (int e = 0; e < hd; e++) {
                    o[e] = 0;
                    for (int j = 0; j <= i; j++)
                        o[e] += sc[j] / sum * in[2][(b * T + j) * kw + (h / group) * hd + e];
                }
            }
}

static void test_attention(void **state) {
    (void)state;
    uint64_t seed = 3;
    for (int window = 0; window <= 3; window += 3) {
        tr_attn_shape s = {2, 7, 6, 2, 5, window};
        const int n = s.n_seqs * s.seq_len, qn = n * s.n_heads * s.head_dim,
                  kn = n * s.n_kv_heads * s.head_dim;
        float *q = malloc(qn * sizeof *q), *k = malloc(kn * sizeof *k), *v = malloc(kn * sizeof *v);
        float *o = malloc(qn * sizeof *o), *c = malloc(qn * sizeof *c),
              *lse = malloc(n * s.n_heads * sizeof *lse);
        float *dq = malloc(qn * sizeof *dq), *dk = malloc(kn * sizeof *dk), *dv = malloc(kn * sizeof *dv);
        float *scratch = malloc(3 * s.seq_len * sizeof *scratch);
        fill(q, qn, &seed, 1.5f), fill(k, kn, &seed, 1.5f), fill(v, kn, &seed, 1), fill(c, qn, &seed, 1);
        tr_attention_fwd(pool, &s, q, k, v, o, lse, scratch);
        tr_attention_bwd(pool, &s, q, k, v, o, lse, c, dq, dk, dv);
        op_case oc = {window ? "attention, window 3" : "attention", 3, qn, {qn, kn, kn}, attn_fwd, &s};
        check_op(&oc, (float *[]){q, k, v}, o, c, (float *[]){dq, dk, dv});
        free(q), free(k), free(v), free(o), free(c), free(lse), free(dq), free(dk), free(dv), free(scratch);
    }
}

/* ---------------------------------------------------------------- SwiGLU */

static void swiglu_fwd(void *p, double *const *in, double *y) {
    const int *n = p;
    for (int i = 0; i < *n; i++) y[i] = in[0][i] / (1 + exp(-in[0][i])) * in[1][i];
}

static void test_swiglu(void **state) {
    (void)state;
    uint64_t seed = 4;
    int n = 41;
    float g[41], u[41], h[41], c[41], dg[41], du[41];
    fill(g, n, &seed, 4), fill(u, n, &seed, 2), fill(c, n, &seed, 1);
    tr_swiglu_fwd(pool, g, u, n, h);
    memcpy(du, c, sizeof du); /* dh may be du itself */
    tr_swiglu_bwd(pool, g, u, du, n, dg, du);
    op_case oc = {"swiglu", 2, n, {n, n}, swiglu_fwd, &n};
    check_op(&oc, (float *[]){g, u}, h, c, (float *[]){dg, du});
}

/* ---------------------------------------------------------------- losses */

typedef struct loss_ctx {
    int n, vocab;
    const int32_t *target;
    const float *zt;
    tr_loss_spec spec;
} loss_ctx;

static double log_softmax_at(const double *z, int n, double inv_t, int i) {
    double mx = -INFINITY, s = 0;
    for (int k = 0; k < n; k++) mx = fmax(mx, z[k] * inv_t);
    for (int k = 0; k < n; k++) s += exp(z[k] * inv_t - mx);
    return z[i] * inv_t - mx - log(s);
}

/* y[0] = the weighted, scaled loss */
static void loss_fwd(void *p, double *const *in, double *y) {
    const loss_ctx *c = p;
    const double T = c->spec.kd_temp;
    double ce = 0, kd = 0;
    double *zt = malloc((size_t)c->vocab * sizeof *zt);
    for (int r = 0; r < c->n; r++) {
        const double *z = in[0] + r * c->vocab;
        if (c->target[r] >= 0) ce -= log_softmax_at(z, c->vocab, 1, c->target[r]);
        if (!c->zt) continue;
        for (int k = 0; k < c->vocab; k++) zt[k] = c->zt[r * c->vocab + k];
        for (int k = 0; k < c->vocab; k++) {
            double lt = log_softmax_at(zt, c->vocab, 1 / T, k), ls = log_softmax_at(z, c->vocab, 1 / T, k);
            kd += exp(lt) * (lt - ls);
        }
    }
    free(zt);
    y[0] = c->spec.ce_weight * c->spec.ce_scale * ce + c->spec.kd_weight * c->spec.kd_scale * T * T * kd;
}

static void test_loss_rows(void **state) {
    (void)state;
    uint64_t seed = 5;
    enum { N = 6, VOC = 23 };
    int32_t target[N];
    float z[N * VOC], zt[N * VOC], dz[N * VOC], c = 1;
    for (int i = 0; i < N; i++) target[i] = i == 3 ? -1 : (int32_t)(sq_test_rand_u64(&seed) % VOC);
    double partial[6];
    const float weights[3][3] = {{1, 0, 1}, {0, 1, 1.7f}, {0.6f, 0.8f, 2.5f}}; /* ce, kd, T */
    for (int w = 0; w < 3; w++) {
        fill(z, N * VOC, &seed, 3), fill(zt, N * VOC, &seed, 3);
        loss_ctx lc = {N,
                       VOC,
                       target,
                       weights[w][1] ? zt : NULL,
                       {weights[w][0], weights[w][1], weights[w][2], 1.0 / 5, 1.0 / N}};
        memcpy(dz, z, sizeof dz);
        double ce, kd;
        tr_loss_rows(pool, dz, lc.zt, target, N, VOC, &lc.spec, partial, &ce, &kd);
        float loss = (float)(lc.spec.ce_weight * lc.spec.ce_scale * ce +
                             lc.spec.kd_weight * lc.spec.kd_scale * lc.spec.kd_temp * lc.spec.kd_temp * kd);
        op_case oc = {"loss rows", 1, 1, {N * VOC}, loss_fwd, &lc};
        check_op(&oc, (float *[]){z}, &loss, &c, (float *[]){dz});
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rmsnorm), cmocka_unit_test(test_rope),      cmocka_unit_test(test_attention),
        cmocka_unit_test(test_swiglu),  cmocka_unit_test(test_loss_rows),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
