/* sq_cpu_matmul: splits the weight rows across the pool's threads and runs the active kernel set on them.
 *
 * One token (decode) is a GEMV: each thread streams its share of the rows once. A few tokens (batched decode,
 * drafts) run through the same GEMV kernels, several tokens per pass over cache-sized row chunks. Many tokens
 * (prefill) run as a GEMM through OpenBLAS's single-threaded sgemm on each thread's rows: fp32 weights
 * directly, other dtypes a cache-sized tile at a time, dequantized into a buffer on the thread's stack (no
 * allocation per call). A format a kernel set marks reference-only runs the same way with its rows
 * dequantized by the format's reference to_f32.
 *
 * Formats whose GEMV takes integer dot products (a dot_dtype in core/dtype.h: Q5_0, Q5_1, the K-quants) get
 * their activations quantized here, once per call for all threads, by the dot format's reference from_f32
 * (so every kernel set sees the same 8-bit activations, and the oracle can too: sq_cpu_matmul_x_dtype). Their
 * prefill (the GEMM path) multiplies dequantized weights with fp32 activations, as every other format's does;
 * W8A8, whose activations are quantized for every product (its dot_dtype is itself), runs its integer GEMV
 * for any number of tokens: several tokens per pass over cache-sized row chunks.
 * Except: the formats of 32-value blocks (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, W8A8, int4) run their prefill through
 * squeeze's integer GEMM (gemm.h) where the kernel set has one (AVX2, AVX-512), activations quantized to 8
 * bits. The pool's threads are the only ones: OpenBLAS runs single-threaded, and its own helper threads are
 * stopped as the program starts (single_thread_openblas). */
#include "kernels/cpu/matmul.h"

#include <cblas.h>
#include <pthread.h>
#include <stdlib.h>

#include "kernels/cpu/gemm.h"
#include "kernels/cpu/kernels.h"

/* Fewer tokens than this run through the GEMV kernels: sgemm packs the weights again on every call, which
 * only pays off from about 16 tokens (measured on Zen 3). */
#define GEMM_MIN_TOKENS 16
/* Bytes of weight rows per GEMV chunk when several token groups pass over it: the chunk stays in L1/L2. */
#define SMALL_BATCH_CHUNK_BYTES (32 * 1024)
/* The dequantized weight tile of the GEMM path: it and the activations' panel fit in a core's L2. */
#define GEMM_TILE_FLOATS (32 * 1024)
/* Thread shares are whole multiples of this many rows (the GEMV's row step, the sgemm's register tile). */
#define ROW_ALIGN 16
/* Quantized activations up to this size stay on the caller's stack (Q8_K: rows of about 14000 values). */
#define X_STACK_BYTES (16 * 1024)
/* A reference-only format's GEMV dequantizes this many floats of a row at a time (at least one block). */
#define REFERENCE_PIECE_FLOATS 1024

typedef struct matmul_job {
    const sq_cpu_kernels *set;
    const sq_format_kernels *kernels; /* the set's entry for the weights' format */
    sq_dtype dtype;
    const uint8_t *w;
    size_t row_bytes;
    int64_t rows, cols;
    const float *x;
    const void *gemv_x; /* x in the format's dot_dtype (x itself for fp32) */
    int n_tokens;
    float *y;
} matmul_job;

static void thread_rows(const matmul_job *job, int ith, int nth, int64_t *r0, int64_t *r1) {
    long groups = (long)((job->rows + ROW_ALIGN - 1) / ROW_ALIGN), b, e;
    sq_split_range(groups, ith, nth, &b, &e);
    *r0 = (int64_t)b * ROW_ALIGN;
    *r1 = (int64_t)e * ROW_ALIGN < job->rows ? (int64_t)e * ROW_ALIGN : job->rows;
}

/* The GEMV of a reference-only format: rows dequantized a piece of whole blocks at a time, then dotted. */
static void reference_gemv(const matmul_job *job, const uint8_t *w, int64_t n_rows, float *y) {
    const sq_dtype_traits *f = sq_dtype_info(job->dtype);
    const int64_t piece = REFERENCE_PIECE_FLOATS / f->block_elems * f->block_elems;
    float buf[REFERENCE_PIECE_FLOATS];
    for (int64_t r = 0; r < n_rows; r++) {
        double acc[GEMM_MIN_TOKENS] = {0}; /* the slow path: accurate for long rows */
        for (int64_t c = 0; c < job->cols; c += piece) {
            const int64_t n = job->cols - c < piece ? job->cols - c : piece;
            f->to_f32(w + (size_t)r * job->row_bytes + sq_row_bytes(job->dtype, c), buf, n);
            for (int t = 0; t < job->n_tokens; t++)
                for (int64_t i = 0; i < n; i++)
                    acc[t] += (double)buf[i] * job->x[(size_t)t * job->cols + c + i];
        }
        for (int t = 0; t < job->n_tokens; t++) y[(size_t)t * job->rows + r] = (float)acc[t];
    }
}

static void gemv_task(void *p, int ith, int nth) {
    const matmul_job *job = p;
    int64_t r0, r1;
    thread_rows(job, ith, nth, &r0, &r1);
    /* Row chunks that stay in cache while every token group passes over them. */
    int64_t chunk = r1 - r0;
    if (job->n_tokens > 1) {
        chunk = SMALL_BATCH_CHUNK_BYTES / (int64_t)job->row_bytes;
        chunk = chunk < ROW_ALIGN ? ROW_ALIGN : chunk / ROW_ALIGN * ROW_ALIGN;
    }
    for (int64_t r = r0; r < r1; r += chunk) {
        int64_t n = r1 - r < chunk ? r1 - r : chunk;
        const uint8_t *w = job->w + (size_t)r * job->row_bytes;
        if (job->kernels->reference_only)
            reference_gemv(job, w, n, job->y + r);
        else
            job->kernels->gemv(w, job->row_bytes, n, job->cols, job->gemv_x, job->n_tokens, job->y + r,
                               (size_t)job->rows);
    }
}

/* y[:, r0:r0+n] (+)= x[:, k0:k0+kn] . wt^T, where wt holds n rows of kn fp32 weights, ldw apart. */
static void sgemm_rows(const matmul_job *job, const float *wt, int64_t ldw, int64_t r0, int64_t n, int64_t k0,
                       int64_t kn) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, job->n_tokens, (int)n, (int)kn, 1.0f, job->x + k0,
                (int)job->cols, wt, (int)ldw, k0 ? 1.0f : 0.0f, job->y + r0, (int)job->rows);
}

static void gemm_task(void *p, int ith, int nth) {
    const matmul_job *job = p;
    int64_t r0, r1;
    thread_rows(job, ith, nth, &r0, &r1);
    if (r1 <= r0) return;
    if (job->dtype == SQ_DTYPE_F32) {
        sgemm_rows(job, (const float *)(job->w + (size_t)r0 * job->row_bytes), job->cols, r0, r1 - r0, 0,
                   job->cols);
        return;
    }
    const sq_dtype_traits *f = sq_dtype_info(job->dtype);
    sq_to_f32_fn to_f32 = sq_cpu_to_f32(job->set, job->dtype);
    /* Whole rows when ROW_ALIGN of them fit, else slices of the reduction dimension (whole blocks). */
    int64_t kc = job->cols, tile_rows = GEMM_TILE_FLOATS / job->cols;
    if (tile_rows < ROW_ALIGN) {
        kc = GEMM_TILE_FLOATS / ROW_ALIGN / f->block_elems * f->block_elems;
        tile_rows = ROW_ALIGN;
    } else {
        tile_rows = tile_rows / ROW_ALIGN * ROW_ALIGN;
    }
    float tile[GEMM_TILE_FLOATS];
    for (int64_t r = r0; r < r1; r += tile_rows) {
        int64_t n = r1 - r < tile_rows ? r1 - r : tile_rows;
        const uint8_t *rows = job->w + (size_t)r * job->row_bytes;
        if (kc == job->cols) {
            to_f32(rows, tile, n * job->cols); /* the rows are contiguous */
            sgemm_rows(job, tile, kc, r, n, 0, kc);
            continue;
        }
        for (int64_t k = 0; k < job->cols; k += kc) {
            int64_t kn = job->cols - k < kc ? job->cols - k : kc;
            size_t offset = sq_row_bytes(job->dtype, k);
            for (int64_t i = 0; i < n; i++)
                to_f32(rows + (size_t)i * job->row_bytes + offset, tile + i * kn, kn);
            sgemm_rows(job, tile, kn, r, n, k, kn);
        }
    }
}

/* OpenBLAS's pthread build starts a helper thread per core in its library constructor, before any code of
 * the program runs (OPENBLAS_NUM_THREADS is read there, so setting it from here is too late), and the
 * helpers spin in sched_yield for about 2^28 cycles before they sleep: beside the pool's workers they take
 * CPU and make `-t 1` two threads. openblas_set_num_threads(1) makes every call single-threaded but keeps the
 * helpers; blas_thread_shutdown_ (exported by the pthread build, which calls it itself before a fork) joins
 * them, and nothing restarts them while the thread count stays 1. It runs as a constructor, right after
 * OpenBLAS's own. Builds without it (serial, OpenMP: no helpers of their own) leave the weak symbol NULL. */
extern int blas_thread_shutdown_(void) __attribute__((weak));

__attribute__((constructor)) static void single_thread_openblas(void) {
    openblas_set_num_threads(1);
    if (blas_thread_shutdown_) blas_thread_shutdown_();
}

void sq_cpu_matmul_with(const sq_cpu_kernels *set, sq_threadpool *pool, const sq_tensor *w, const float *x,
                        int n_tokens, float *y) {
    if (n_tokens <= 0 || sq_tensor_n_rows(w) <= 0 || sq_tensor_row_len(w) <= 0) return;
    matmul_job job = {
        .set = set,
        .kernels = &set->formats[w->dtype],
        .dtype = w->dtype,
        .w = w->data,
        .row_bytes = sq_row_bytes(w->dtype, sq_tensor_row_len(w)),
        .rows = sq_tensor_n_rows(w),
        .cols = sq_tensor_row_len(w),
        .x = x,
        .n_tokens = n_tokens,
        .y = y,
    };
    /* Prefill of the 32-value block formats: squeeze's integer GEMM (gemm.h), where the set has one; should
     * its activations' buffer not fit in memory, the dequantize + sgemm path below, with fp32 activations. */
    const sq_gemm_kernels *gemm = n_tokens >= GEMM_MIN_TOKENS ? sq_cpu_gemm_for(set, w->dtype) : NULL;
    if (gemm && sq_cpu_gemm(gemm, pool, w, x, n_tokens, y) == 0) return;
    const sq_dtype x_dtype = gemm ? SQ_DTYPE_F32 : sq_cpu_matmul_x_dtype(set, w->dtype, n_tokens);
    if (n_tokens < GEMM_MIN_TOKENS || x_dtype != SQ_DTYPE_F32) {
        job.gemv_x = x;
        if (x_dtype == SQ_DTYPE_F32) {
            sq_threadpool_run(pool, gemv_task, &job);
            return;
        }
        /* The quantized activations: on the stack for the usual widths, else on the heap; if even that fails,
         * the format's reference path (fp32 activations) still gives the product (for many tokens the GEMM
         * path, as the reference GEMV takes fewer). */
        uint8_t stack[X_STACK_BYTES];
        const size_t xrow = sq_row_bytes(x_dtype, job.cols), xbytes = xrow * (size_t)n_tokens;
        uint8_t *qx = xbytes <= sizeof stack ? stack : malloc(xbytes);
        if (!qx && n_tokens >= GEMM_MIN_TOKENS) {
            sq_threadpool_run(pool, gemm_task, &job);
            return;
        }
        if (!qx) {
            static const sq_format_kernels reference = SQ_REFERENCE_ONLY;
            job.kernels = &reference;
        } else {
            for (int t = 0; t < n_tokens; t++)
                sq_dtype_info(x_dtype)->from_f32(x + (size_t)t * job.cols, qx + (size_t)t * xrow, job.cols);
            job.gemv_x = qx;
        }
        sq_threadpool_run(pool, gemv_task, &job);
        if (qx != stack) free(qx);
        return;
    }
    sq_threadpool_run(pool, gemm_task, &job);
}

sq_dtype sq_cpu_matmul_x_dtype(const sq_cpu_kernels *set, sq_dtype w_dtype, int n_tokens) {
    if (set->formats[w_dtype].reference_only) return SQ_DTYPE_F32;
    if (n_tokens >= GEMM_MIN_TOKENS && sq_cpu_gemm_for(set, w_dtype)) return sq_cpu_gemm_x_dtype(w_dtype);
    /* W8A8 quantizes its activations for every product: its prefill is its GEMV over many tokens */
    if (n_tokens >= GEMM_MIN_TOKENS && sq_dtype_info(w_dtype)->dot_dtype != w_dtype) return SQ_DTYPE_F32;
    return sq_dtype_info(w_dtype)->dot_dtype;
}

void sq_cpu_matmul(sq_threadpool *pool, const sq_tensor *w, const float *x, int n_tokens, float *y) {
    sq_cpu_matmul_with(sq_cpu_kernels_active(), pool, w, x, n_tokens, y);
}
