/* RTN: every block rounded on its own by its format's reference quantizer (core/dtype_ref.c), which for
 * ggml's formats is ggml's own reference algorithm (the K-quants' scale searches included), so that the
 * bytes equal llama-quantize's without an imatrix; given one (stats->mean_sq), by the format's
 * importance-weighted search, as llama-quantize's with it. */
#include "compress/quant/method.h"

#include <string.h>

#include "core/tensor.h"

static void rtn_rows(void *p, int ith, int nth) {
    const sq_quant_job *job = p;
    long r0, r1;
    sq_split_range((long)job->rows, ith, nth, &r0, &r1);
    const size_t row_bytes = sq_row_bytes(job->dtype, job->cols);
    const sq_dtype_traits *f = sq_dtype_info(job->dtype);
    /* with an imatrix, the format's importance-weighted search (llama-quantize --imatrix) */
    const float *qw = job->stats && f->from_f32_weighted ? job->stats->mean_sq : NULL;
    for (long r = r0; r < r1; r++) {
        const float *row = job->w + (size_t)r * (size_t)job->cols;
        uint8_t *out = (uint8_t *)job->out + (size_t)r * row_bytes;
        if (qw)
            f->from_f32_weighted(row, out, job->cols, qw);
        else
            f->from_f32(row, out, job->cols);
    }
}

static SQ_NODISCARD sq_error *rtn_quantize(const sq_quant_job *job, sq_threadpool *pool) {
    sq_threadpool_run(pool, rtn_rows, (void *)job);
    return NULL;
}

const sq_quant_method sq_quant_rtn = {.name = "rtn", .quantize = rtn_quantize};
