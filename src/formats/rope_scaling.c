#include "formats/rope_scaling.h"

#include <math.h>

#include "core/error.h"

/* Rotation frequency of pair i, divided by 2*pi: the inverse wavelength. */
static double inv_wavelen(const sq_model_config *c, int i) {
    return pow(c->rope_theta, -2.0 * i / c->rope_dims) / (2 * M_PI);
}

void sq_llama3_rope_factors(const sq_model_config *c, float *out) {
    const sq_rope_scaling *s = &c->rope_scaling;
    const double lo_wavelen = s->original_max_pos / s->low_freq_factor;
    const double hi_wavelen = s->original_max_pos / s->high_freq_factor;
    for (int i = 0; i < c->rope_dims / 2; i++) {
        double wavelen = 1.0 / inv_wavelen(c, i);
        if (wavelen < hi_wavelen) {
            out[i] = 1.0f;
        } else if (wavelen > lo_wavelen) {
            out[i] = s->factor;
        } else {
            double smooth = (s->original_max_pos / wavelen - s->low_freq_factor) /
                            (s->high_freq_factor - s->low_freq_factor);
            out[i] = (float)(1.0 / ((1 - smooth) / s->factor + smooth));
        }
    }
}

sq_error *sq_llama3_from_factors(const char *path, const float *f, int original_ctx, sq_model_config *c) {
    const int n = c->rope_dims / 2;
    double factor = 1;
    for (int i = 0; i < n; i++) {
        if (!(f[i] >= 1 && f[i] < 1e6))
            return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: rope_freqs.weight[%d] = %g is not a Llama-3 divisor",
                             path, i, f[i]);
        if (f[i] > factor) factor = f[i];
    }
    if (factor == 1) return NULL; /* no scaling */
    /* Between the two plateaus the smoothing s = (1/f - 1/F) / (1 - 1/F) is linear in the inverse wavelength
     * u: s = p*u - q. Fit it through the outermost points that bound the transition. */
    const double tol = 1e-4;
    double u_lo = -1, s_lo = 0, u_hi = -1, s_hi = 1; /* last point at or below s=0, first at or above s=1 */
    double u_a = -1, s_a = 0, u_b = -1, s_b = 0;     /* first and last smooth points */
    for (int i = 0; i < n; i++) { /* u decreases with i: high frequencies (f = 1) come first */
        double u = inv_wavelen(c, i), s = (1 / f[i] - 1 / factor) / (1 - 1 / factor);
        if (fabs(f[i] - 1) <= tol) {
            u_hi = u;
        } else if (fabs(f[i] - factor) <= tol * factor) {
            if (u_lo < 0) u_lo = u;
        } else {
            if (u_a < 0) u_a = u, s_a = s;
            u_b = u, s_b = s;
        }
    }
    double p, q;
    if (u_a >= 0 && u_b != u_a) { /* two smooth points fix the line */
        p = (s_a - s_b) / (u_a - u_b);
    } else if (u_a >= 0) { /* one: through it and whichever plateau edge exists */
        p = u_lo >= 0 ? (s_a - s_lo) / (u_a - u_lo) : (s_hi - s_a) / (u_hi - u_a);
    } else if (u_lo >= 0 && u_hi >= 0) { /* none: from one plateau edge to the other */
        p = (s_hi - s_lo) / (u_hi - u_lo);
    } else {
        return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: rope_freqs.weight does not follow Llama-3 rope scaling",
                         path);
    }
    q = u_a >= 0 ? p * u_a - s_a : p * u_lo - s_lo;
    if (!(p > 0) || !(q > 0))
        return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: rope_freqs.weight does not follow Llama-3 rope scaling",
                         path);
    /* s = (old*u - low) / (high - low), so p = old / (high - low) and q = low / (high - low) */
    sq_model_config fit = *c;
    fit.rope_scaling.type = SQ_ROPE_SCALING_LLAMA3;
    fit.rope_scaling.factor = (float)factor;
    fit.rope_scaling.original_max_pos = original_ctx > 0 ? original_ctx : 8192;
    fit.rope_scaling.low_freq_factor = (float)(q * fit.rope_scaling.original_max_pos / p);
    fit.rope_scaling.high_freq_factor = (float)((q + 1) * fit.rope_scaling.original_max_pos / p);
    float check[4096];
    if (n > (int)(sizeof check / sizeof *check))
        return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: %d rotated dims too many for rope_freqs", path,
                         c->rope_dims);
    sq_llama3_rope_factors(&fit, check);
    for (int i = 0; i < n; i++)
        if (fabs(check[i] - f[i]) > 1e-3 * f[i])
            return sq_errorf(
                SQ_ERR_UNSUPPORTED,
                "%s: rope_freqs.weight does not follow Llama-3 rope scaling (pair %d: %g, fit %g)", path, i,
                f[i], check[i]);
    c->rope_scaling = fit.rope_scaling;
    return NULL;
}
