/* Forward and backward steps of the Llama block's operations for training (train_ops.h). */
#include "train/train_ops.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------- matrix products */

typedef struct gemm_job {
    int ta, tb, M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int lda, ldb, ldc;
} gemm_job;

static void gemm_slice(void *p, int ith, int nth) {
    const gemm_job *j = p;
    long m0, m1;
    sq_split_range(j->M, ith, nth, &m0, &m1);
    if (m1 <= m0) return;
    /* row m of op(A) is row m of A, or column m of A when transposed */
    const float *a = j->ta ? j->A + m0 : j->A + m0 * (long)j->lda;
    cblas_sgemm(CblasRowMajor, j->ta ? CblasTrans : CblasNoTrans, j->tb ? CblasTrans : CblasNoTrans,
                (int)(m1 - m0), j->N, j->K, j->alpha, a, j->lda, j->B, j->ldb, j->beta,
                j->C + m0 * (long)j->ldc, j->ldc);
}

void tr_gemm(sq_threadpool *pool, int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
             int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    gemm_job j = {trans_a, trans_b, M, N, K, alpha, beta, A, B, C, lda, ldb, ldc};
    sq_threadpool_run(pool, gemm_slice, &j);
}

/* ---------------------------------------------------------------- RMSNorm */

typedef struct norm_job {
    const float *x, *w, *dy, *rstd_in;
    float *y, *rstd, *dx;
    int n, d;
    float eps;
} norm_job;

static void rmsnorm_fwd_slice(void *p, int ith, int nth) {
    const norm_job *j = p;
    long r0, r1;
    sq_split_range(j->n, ith, nth, &r0, &r1);
    for (long r = r0; r < r1; r++) {
        const float *x = j->x + r * j->d;
        float ss = 0;
        for (int i = 0; i < j->d; i++) ss += x[i] * x[i];
        float rs = 1.0f / sqrtf(ss / j->d + j->eps);
        j->rstd[r] = rs;
        for (int i = 0; i < j->d; i++) j->y[r * j->d + i] = x[i] * rs * j->w[i];
    }
}

void tr_rmsnorm_fwd(sq_threadpool *pool, const float *x, const float *w, int n, int d, float eps, float *y,
                    float *rstd) {
    norm_job j = {.x = x, .w = w, .y = y, .rstd = rstd, .n = n, .d = d, .eps = eps};
    sq_threadpool_run(pool, rmsnorm_fwd_slice, &j);
}

/* y_i = x_i r w_i, r = (mean x^2 + eps)^-1/2:  dx_i = r w_i dy_i - x_i r^3 / d * sum_k w_k dy_k x_k */
static void rmsnorm_bwd_slice(void *p, int ith, int nth) {
    const norm_job *j = p;
    long r0, r1;
    sq_split_range(j->n, ith, nth, &r0, &r1);
    for (long r = r0; r < r1; r++) {
        const float *x = j->x + r * j->d, *dy = j->dy + r * j->d;
        float rs = j->rstd_in[r], dot = 0;
        for (int i = 0; i < j->d; i++) dot += j->w[i] * dy[i] * x[i];
        float c = dot * rs * rs * rs / j->d;
        for (int i = 0; i < j->d; i++) j->dx[r * j->d + i] += rs * j->w[i] * dy[i] - x[i] * c;
    }
}

void tr_rmsnorm_bwd(sq_threadpool *pool, const float *x, const float *w, const float *rstd, const float *dy,
                    int n, int d, float *dx, float *dw) {
    norm_job j = {.x = x, .w = w, .dy = dy, .rstd_in = rstd, .dx = dx, .n = n, .d = d};
    sq_threadpool_run(pool, rmsnorm_bwd_slice, &j);
    if (!dw) return;
    for (int r = 0; r < n; r++)
        for (int i = 0; i < d; i++) dw[i] += dy[(long)r * d + i] * x[(long)r * d + i] * rstd[r];
}

/* ---------------------------------------------------------------- RoPE */

typedef struct rope_job {
    float *x;
    int n, heads, hd, rope_dims, sign;
    const int32_t *pos;
    const double *inv_freq;
    sq_rope_style style;
} rope_job;

static void rope_slice(void *p, int ith, int nth) {
    const rope_job *j = p;
    long r0, r1;
    sq_split_range(j->n, ith, nth, &r0, &r1);
    const int half = j->rope_dims / 2;
    for (long r = r0; r < r1; r++) {
        for (int i = 0; i < half; i++) {
            double angle = j->pos[r] * j->inv_freq[i];
            float c = (float)cos(angle), s = (float)(j->sign * sin(angle));
            for (int h = 0; h < j->heads; h++) {
                float *x = j->x + (r * j->heads + h) * j->hd;
                int ia = j->style == SQ_ROPE_INTERLEAVED ? 2 * i : i;
                int ib = j->style == SQ_ROPE_INTERLEAVED ? 2 * i + 1 : i + half;
                float a = x[ia], b = x[ib];
                x[ia] = a * c - b * s;
                x[ib] = a * s + b * c;
            }
        }
    }
}

void tr_rope(sq_threadpool *pool, float *x, int n, int heads, int head_dim, int rope_dims, const int32_t *pos,
             const double *inv_freq, sq_rope_style style, int sign) {
    rope_job j = {x, n, heads, head_dim, rope_dims, sign, pos, inv_freq, style};
    sq_threadpool_run(pool, rope_slice, &j);
}

/* ---------------------------------------------------------------- attention */

typedef struct attn_job {
    const tr_attn_shape *s;
    const float *q, *k, *v, *out, *lse, *dout;
    float *o, *lse_out, *dq, *dk, *dv;
    float *scratch; /* [nth][seq_len] each slice's scores */
} attn_job;

static int first_key(const tr_attn_shape *s, int i) {
    return s->window > 0 && i - s->window + 1 > 0 ? i - s->window + 1 : 0;
}

/* One (sequence, query head) per task. */
static void attn_fwd_slice(void *p, int ith, int nth) {
    attn_job *j = p;
    const tr_attn_shape *s = j->s;
    const int hd = s->head_dim, T = s->seq_len, group = s->n_heads / s->n_kv_heads;
    const int qw = s->n_heads * hd, kw = s->n_kv_heads * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    float *sc = j->scratch + (long)ith * T; /* [T] one row's scores */
    long t0, t1;
    sq_split_range((long)s->n_seqs * s->n_heads, ith, nth, &t0, &t1);
    for (long task = t0; task < t1; task++) {
        int b = (int)(task / s->n_heads), h = (int)(task % s->n_heads), kh = h / group;
        const long base = (long)b * T;
        for (int i = 0; i < T; i++) {
            const float *qi = j->q + (base + i) * qw + h * hd;
            int j0 = first_key(s, i);
            float mx = -INFINITY;
            for (int jj = j0; jj <= i; jj++) {
                const float *kj = j->k + (base + jj) * kw + kh * hd;
                float dot = 0;
                for (int c = 0; c < hd; c++) dot += qi[c] * kj[c];
                sc[jj] = dot * scale;
                if (sc[jj] > mx) mx = sc[jj];
            }
            float sum = 0;
            for (int jj = j0; jj <= i; jj++) sum += sc[jj] = expf(sc[jj] - mx);
            float *oi = j->o + (base + i) * qw + h * hd;
            memset(oi, 0, (size_t)hd * sizeof *oi);
            for (int jj = j0; jj <= i; jj++) {
                const float *vj = j->v + (base + jj) * kw + kh * hd;
                float pj = sc[jj] / sum;
                for (int c = 0; c < hd; c++) oi[c] += pj * vj[c];
            }
            j->lse_out[((long)b * s->n_heads + h) * T + i] = mx + logf(sum);
        }
    }
}

void tr_attention_fwd(sq_threadpool *pool, const tr_attn_shape *s, const float *q, const float *k,
                      const float *v, float *out, float *lse, float *scratch) {
    attn_job j = {.s = s, .q = q, .k = k, .v = v, .o = out, .lse_out = lse, .scratch = scratch};
    sq_threadpool_run(pool, attn_fwd_slice, &j);
}

/* One (sequence, key/value head) per task: it owns the rows of dk, dv of that head and dq of its query
 * heads. p_ij = exp(s_ij - lse_i); dp_ij = dout_i . v_j; ds_ij = p_ij (dp_ij - dout_i . out_i). */
static void attn_bwd_slice(void *p, int ith, int nth) {
    attn_job *j = p;
    const tr_attn_shape *s = j->s;
    const int hd = s->head_dim, T = s->seq_len, group = s->n_heads / s->n_kv_heads;
    const int qw = s->n_heads * hd, kw = s->n_kv_heads * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    long t0, t1;
    sq_split_range((long)s->n_seqs * s->n_kv_heads, ith, nth, &t0, &t1);
    for (long task = t0; task < t1; task++) {
        int b = (int)(task / s->n_kv_heads), kh = (int)(task % s->n_kv_heads);
        const long base = (long)b * T;
        for (int i = 0; i < T; i++) {
            memset(j->dk + (base + i) * kw + kh * hd, 0, (size_t)hd * sizeof(float));
            memset(j->dv + (base + i) * kw + kh * hd, 0, (size_t)hd * sizeof(float));
        }
        for (int h = kh * group; h < (kh + 1) * group; h++) {
            for (int i = 0; i < T; i++) {
                const float *qi = j->q + (base + i) * qw + h * hd;
                const float *doi = j->dout + (base + i) * qw + h * hd;
                const float *oi = j->out + (base + i) * qw + h * hd;
                float *dqi = j->dq + (base + i) * qw + h * hd;
                float lse = j->lse[((long)b * s->n_heads + h) * T + i];
                float D = 0;
                for (int c = 0; c < hd; c++) D += doi[c] * oi[c];
                memset(dqi, 0, (size_t)hd * sizeof *dqi);
                for (int jj = first_key(s, i); jj <= i; jj++) {
                    const float *kj = j->k + (base + jj) * kw + kh * hd;
                    const float *vj = j->v + (base + jj) * kw + kh * hd;
                    float *dkj = j->dk + (base + jj) * kw + kh * hd;
                    float *dvj = j->dv + (base + jj) * kw + kh * hd;
                    float dot = 0, dp = 0;
                    for (int c = 0; c < hd; c++) {
                        dot += qi[c] * kj[c];
                        dp += doi[c] * vj[c];
                    }
                    float pij = expf(dot * scale - lse);
                    float ds = pij * (dp - D) * scale;
                    for (int c = 0; c < hd; c++) {
                        dqi[c] += ds * kj[c];
                        dkj[c] += ds * qi[c];
                        dvj[c] += pij * doi[c];
                    }
                }
            }
        }
    }
}

void tr_attention_bwd(sq_threadpool *pool, const tr_attn_shape *s, const float *q, const float *k,
                      const float *v, const float *out, const float *lse, const float *dout, float *dq,
                      float *dk, float *dv) {
    attn_job j = {
        .s = s, .q = q, .k = k, .v = v, .out = out, .lse = lse, .dout = dout, .dq = dq, .dk = dk, .dv = dv};
    sq_threadpool_run(pool, attn_bwd_slice, &j);
}

/* ---------------------------------------------------------------- SwiGLU */

typedef struct swiglu_job {
    const float *g, *u, *dh;
    float *h, *dg, *du;
    int64_t n;
} swiglu_job;

static void swiglu_fwd_slice(void *p, int ith, int nth) {
    const swiglu_job *j = p;
    long i0, i1;
    sq_split_range((long)j->n, ith, nth, &i0, &i1);
    for (long i = i0; i < i1; i++) j->h[i] = j->g[i] / (1.0f + expf(-j->g[i])) * j->u[i];
}

/* silu'(g) = sigma(g) (1 + g (1 - sigma(g))) */
static void swiglu_bwd_slice(void *p, int ith, int nth) {
    const swiglu_job *j = p;
    long i0, i1;
    sq_split_range((long)j->n, ith, nth, &i0, &i1);
    for (long i = i0; i < i1; i++) {
        float g = j->g[i], sg = 1.0f / (1.0f + expf(-g));
        j->dg[i] = j->dh[i] * j->u[i] * sg * (1.0f + g * (1.0f - sg));
        j->du[i] = j->dh[i] * g * sg;
    }
}

void tr_swiglu_fwd(sq_threadpool *pool, const float *g, const float *u, int64_t n, float *h) {
    swiglu_job j = {.g = g, .u = u, .h = h, .n = n};
    sq_threadpool_run(pool, swiglu_fwd_slice, &j);
}

void tr_swiglu_bwd(sq_threadpool *pool, const float *g, const float *u, const float *dh, int64_t n, float *dg,
                   float *du) {
    swiglu_job j = {.g = g, .u = u, .dh = dh, .dg = dg, .du = du, .n = n};
    sq_threadpool_run(pool, swiglu_bwd_slice, &j);
}

/* ---------------------------------------------------------------- losses */

typedef struct loss_job {
    float *z;
    const float *zt;
    const int32_t *target;
    int n, vocab;
    const tr_loss_spec *spec;
    double *ce, *kd; /* [nth] per-slice sums */
} loss_job;

/* log sum_i exp(z_i / T); the terms in float (exp is the loss's hot spot), their sum in double */
static double log_sum_exp(const float *z, int n, float inv_t) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = fmaxf(mx, z[i] * inv_t);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += expf(z[i] * inv_t - mx);
    return mx + log(sum);
}

static void loss_slice(void *p, int ith, int nth) {
    const loss_job *j = p;
    const tr_loss_spec *sp = j->spec;
    const float inv_t = 1.0f / sp->kd_temp;
    long r0, r1;
    sq_split_range(j->n, ith, nth, &r0, &r1);
    double ce = 0, kd = 0;
    for (long r = r0; r < r1; r++) {
        float *z = j->z + r * j->vocab;
        const float *zt = j->zt ? j->zt + r * j->vocab : NULL;
        const int y = j->target ? j->target[r] : -1;
        const double lse1 = log_sum_exp(z, j->vocab, 1.0f);
        const double lse_s = zt ? (inv_t == 1.0f ? lse1 : log_sum_exp(z, j->vocab, inv_t)) : 0;
        const double lse_t = zt ? log_sum_exp(zt, j->vocab, inv_t) : 0;
        if (y >= 0) ce += lse1 - z[y];
        const float gce = y >= 0 ? (float)(sp->ce_weight * sp->ce_scale) : 0;
        const float gkd = (float)(sp->kd_weight * sp->kd_scale * sp->kd_temp);
        for (int i = 0; i < j->vocab; i++) {
            float g = gce ? gce * expf((float)(z[i] - lse1)) : 0;
            if (zt) {
                float lps = (float)(z[i] * inv_t - lse_s), lpt = (float)(zt[i] * inv_t - lse_t),
                      pt = expf(lpt);
                kd += (double)pt * (lpt - lps);
                g += gkd * (expf(lps) - pt);
            }
            z[i] = g;
        }
        if (y >= 0) z[y] -= gce;
    }
    j->ce[ith] = ce;
    j->kd[ith] = kd;
}

void tr_loss_rows(sq_threadpool *pool, float *z, const float *zt, const int32_t *target, int n, int vocab,
                  const tr_loss_spec *spec, double *partial, double *ce_sum, double *kd_sum) {
    const int nth = sq_threadpool_size(pool);
    double *ce = partial, *kd = partial + nth;
    loss_job j = {z, zt, target, n, vocab, spec, ce, kd};
    sq_threadpool_run(pool, loss_slice, &j);
    *ce_sum = *kd_sum = 0;
    for (int i = 0; i < nth; i++) {
        *ce_sum += ce[i];
        *kd_sum += kd[i];
    }
}
