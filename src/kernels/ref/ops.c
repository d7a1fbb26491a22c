/* Plain references of the backend's row, norm, rotary and elementwise operations (see ref.h). */
#include <math.h>
#include <string.h>

#include "kernels/ref/ref.h"

void sq_ref_get_rows(const sq_tensor *src, const int32_t *rows, int n_rows, float *out) {
    const int64_t cols = sq_tensor_row_len(src);
    for (int i = 0; i < n_rows; i++) sq_tensor_row_to_f32(src, rows[i], out + (size_t)i * cols);
}

void sq_ref_rmsnorm(const float *x, const float *weight, float eps, int n_tokens, int dim, float *out) {
    for (int t = 0; t < n_tokens; t++) {
        const float *r = x + (size_t)t * dim;
        double ss = 0;
        for (int i = 0; i < dim; i++) ss += (double)r[i] * r[i];
        double inv = 1.0 / sqrt(ss / dim + eps);
        for (int i = 0; i < dim; i++) out[(size_t)t * dim + i] = (float)(r[i] * inv * weight[i]);
    }
}

void sq_ref_rope(float *x, int n_heads, int n_tokens, int head_dim, int rope_dims, const int32_t *pos,
                 const double *inv_freq, sq_rope_style style) {
    const int half = rope_dims / 2;
    for (int t = 0; t < n_tokens; t++)
        for (int h = 0; h < n_heads; h++) {
            float *v = x + ((size_t)t * n_heads + h) * head_dim;
            for (int i = 0; i < half; i++) {
                int ia = style == SQ_ROPE_INTERLEAVED ? 2 * i : i;
                int ib = style == SQ_ROPE_INTERLEAVED ? 2 * i + 1 : i + half;
                double angle = pos[t] * inv_freq[i], a = v[ia], b = v[ib];
                v[ia] = (float)(a * cos(angle) - b * sin(angle));
                v[ib] = (float)(a * sin(angle) + b * cos(angle));
            }
        }
}

void sq_ref_add(float *x, const float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] += y[i];
}

void sq_ref_add_bias(float *y, const float *bias, int n_tokens, int width) {
    for (int t = 0; t < n_tokens; t++) sq_ref_add(y + (size_t)t * width, bias, width);
}

void sq_ref_add_rows(float *x, const float *y, const int32_t *rows, const float *scale, int n_rows,
                     int width) {
    for (int i = 0; i < n_rows; i++)
        for (int c = 0; c < width; c++)
            x[(size_t)rows[i] * width + c] =
                (float)((double)x[(size_t)rows[i] * width + c] + (double)scale[i] * y[(size_t)i * width + c]);
}

void sq_ref_swiglu(float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double g = gate[i];
        gate[i] = (float)(g / (1.0 + exp(-g)) * up[i]);
    }
}

void sq_ref_geglu(float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double x = gate[i];
        gate[i] = (float)(0.5 * x *
                          (1.0 + tanh(0.79788456080286535588 /* sqrt(2/pi) */ * (x + 0.044715 * x * x * x))) *
                          up[i]);
    }
}

void sq_ref_scale(float *x, float s, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)((double)x[i] * s);
}

/* Each row through its format's reference quantizer (f16: round to nearest even; q8_0, q4_0: ggml's). */
void sq_ref_kv_store(const sq_kv_view *kv, const float *k, const float *v, const sq_token_batch *tokens) {
    const sq_dtype_traits *row = sq_dtype_info(kv->row_type);
    for (int t = 0; t < tokens->n_tokens; t++) {
        row->from_f32(k + (size_t)t * kv->kv_dim, sq_kv_row(kv, kv->k, tokens->seq[t], tokens->slot[t]),
                      kv->kv_dim);
        row->from_f32(v + (size_t)t * kv->kv_dim, sq_kv_row(kv, kv->v, tokens->seq[t], tokens->slot[t]),
                      kv->kv_dim);
    }
}

void sq_ref_kv_copy(const sq_kv_view *kv, int seq, const int32_t *src, const int32_t *dst, int n) {
    for (int i = 0; i < n; i++)
        for (size_t b = 0; b < kv->row_bytes; b++) {
            sq_kv_row(kv, kv->k, seq, dst[i])[b] = sq_kv_row(kv, kv->k, seq, src[i])[b];
            sq_kv_row(kv, kv->v, seq, dst[i])[b] = sq_kv_row(kv, kv->v, seq, src[i])[b];
        }
}
