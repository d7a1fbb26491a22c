/* Plain references of the log-prob row kernels (see ref.h): libm's expl/logl over long double sums. */
#include <math.h>

#include "kernels/ref/ref.h"

double sq_ref_logsumexp(const float *z, int n) {
    long double mx = z[0], s = 0;
    for (int i = 1; i < n; i++) mx = z[i] > mx ? z[i] : mx;
    for (int i = 0; i < n; i++) s += expl(z[i] - mx);
    return (double)(mx + logl(s));
}

double sq_ref_kl(const float *zr, const float *z, int n) {
    long double lse_r = sq_ref_logsumexp(zr, n), lse_m = sq_ref_logsumexp(z, n), kl = 0;
    for (int i = 0; i < n; i++) {
        long double lr = zr[i] - lse_r;
        kl += expl(lr) * (lr - (z[i] - lse_m));
    }
    return (double)kl;
}
