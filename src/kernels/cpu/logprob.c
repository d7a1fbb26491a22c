/* Row reductions over the vocabulary in double precision, two 2-lane vectors at a time (GCC vector
 * extensions, compiled once for AVX2 and once for the baseline and chosen at load time). ISO C mode keeps
 * floating-point contraction off, so both versions give the same bits. */
#include "kernels/cpu/logprob.h"

#include <math.h>
#include <string.h>

typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

/* Clones are chosen by CPU feature: "arch=..." would match a CPU model only (never an AMD one). Clang 14
 * leaves an external cloned function undefined at link (the fuzz build): there the baseline serves, same
 * bits. */
#if defined(__clang__)
#define SQ_ROW_KERNEL
#else
#define SQ_ROW_KERNEL __attribute__((target_clones("avx2", "default")))
#endif
#define SQ_INLINE static inline __attribute__((always_inline))

SQ_INLINE sq_v2d load2(const float *p) { return (sq_v2d){p[0], p[1]}; }

SQ_INLINE double hsum2(sq_v2d a, sq_v2d b) { return (a[0] + a[1]) + (b[0] + b[1]); }

SQ_ROW_KERNEL static float row_max(const float *z, int n) {
    float mx = z[0];
    int i = 0;
    if (n >= 4) {
        v4f m;
        memcpy(&m, z, sizeof m);
        for (i = 4; i + 4 <= n; i += 4) {
            v4f v;
            memcpy(&v, z + i, sizeof v);
            v4i gt = v > m;
            m = (v4f)(((v4i)v & gt) | ((v4i)m & ~gt));
        }
        mx = m[0];
        for (int l = 1; l < 4; l++) mx = m[l] > mx ? m[l] : mx;
    }
    for (; i < n; i++) mx = z[i] > mx ? z[i] : mx;
    return mx;
}

/* sum_i exp(z_i - shift), every term <= 1 */
SQ_ROW_KERNEL static double row_sum_exp(const float *z, int n, double shift) {
    sq_v2d acc0 = {0, 0}, acc1 = {0, 0};
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        acc0 += sq_exp2_nonpos(load2(z + i) - shift);
        acc1 += sq_exp2_nonpos(load2(z + i + 2) - shift);
    }
    double s = hsum2(acc0, acc1);
    for (; i < n; i++) s += sq_exp_nonpos(z[i] - shift);
    return s;
}

double sq_logsumexp(const float *z, int n) {
    float mx = row_max(z, n);
    return mx + log(row_sum_exp(z, n, mx));
}

SQ_ROW_KERNEL double sq_kl_row(const float *zr, double lse_r, const float *z, double lse_m, int n) {
    sq_v2d acc0 = {0, 0}, acc1 = {0, 0};
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        sq_v2d lr0 = load2(zr + i) - lse_r, lr1 = load2(zr + i + 2) - lse_r;
        acc0 += sq_exp2_nonpos(lr0) * (lr0 - (load2(z + i) - lse_m));
        acc1 += sq_exp2_nonpos(lr1) * (lr1 - (load2(z + i + 2) - lse_m));
    }
    double kl = hsum2(acc0, acc1);
    for (; i < n; i++) {
        double lr = zr[i] - lse_r;
        kl += sq_exp_nonpos(lr) * (lr - (z[i] - lse_m));
    }
    return kl;
}

int sq_argmax(const float *z, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (z[i] > z[best]) best = i;
    return best;
}
