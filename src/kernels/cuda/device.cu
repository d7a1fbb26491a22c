/* The CUDA backend's memory half and state: device, one stream, cuBLAS, scratch, error recording; and the
 * copy-bandwidth probe benchmarks compare against. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_common.cuh"

void sq_cuda_note(sq_cuda *c, cudaError_t e, const char *what) {
    if (e == cudaSuccess || c->error[0]) return;
    snprintf(c->error, sizeof c->error, "%s: %s", what, cudaGetErrorString(e));
}

void sq_cuda_note_blas(sq_cuda *c, cublasStatus_t s, const char *what) {
    if (s == CUBLAS_STATUS_SUCCESS || c->error[0]) return;
    snprintf(c->error, sizeof c->error, "%s: cuBLAS status %d", what, (int)s);
}

const char *sq_cuda_take_error(sq_cuda *c) {
    sq_cuda_note(c, cudaGetLastError(), "CUDA");
    if (!c->error[0]) return NULL;
    static __thread char last[sizeof c->error];
    memcpy(last, c->error, sizeof last);
    c->error[0] = 0;
    return last;
}

int sq_cuda_open(sq_cuda **out, char *msg, size_t msg_size) {
    *out = NULL;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        snprintf(msg, msg_size, "no CUDA GPU found (%s)",
                 e != cudaSuccess ? cudaGetErrorString(e) : "the driver reports none");
        return -1;
    }
    sq_cuda *c = (sq_cuda *)calloc(1, sizeof *c);
    if (!c) {
        snprintf(msg, msg_size, "out of host memory");
        return -1;
    }
    cudaDeviceProp prop;
    e = cudaGetDeviceProperties(&prop, 0);
    if (e == cudaSuccess && prop.major < 8) {
        snprintf(msg, msg_size, "GPU %s has compute capability %d.%d; this build needs 8.0 or later",
                 prop.name, prop.major, prop.minor);
        free(c);
        return -1;
    }
    if (e == cudaSuccess) e = cudaSetDevice(0);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking);
    if (e != cudaSuccess) {
        snprintf(msg, msg_size, "cannot start CUDA on device 0: %s", cudaGetErrorString(e));
        free(c);
        return -1;
    }
    c->n_sm = prop.multiProcessorCount;
    cublasStatus_t s = cublasCreate(&c->blas);
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetStream(c->blas, c->stream);
    /* fp32 GEMMs stay fp32 (no TF32): the f32 path is the exact one */
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH);
    if (s != CUBLAS_STATUS_SUCCESS) {
        snprintf(msg, msg_size, "cannot start cuBLAS (status %d)", (int)s);
        cudaStreamDestroy(c->stream);
        free(c);
        return -1;
    }
    *out = c;
    return 0;
}

void sq_cuda_close(sq_cuda *c) {
    if (!c) return;
    cudaStreamSynchronize(c->stream);
    sq_cuda_graphs_free(c);
    cudaFree(c->scratch);
    cublasDestroy(c->blas);
    cudaStreamDestroy(c->stream);
    free(c);
}

void sq_cuda_describe(sq_cuda *c, char *name, size_t name_size, size_t *free_bytes, size_t *total_bytes) {
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, c->device) == cudaSuccess)
        snprintf(name, name_size, "%s", prop.name);
    else
        snprintf(name, name_size, "CUDA device %d", c->device);
    *free_bytes = *total_bytes = 0;
    cudaMemGetInfo(free_bytes, total_bytes);
}

void *sq_cuda_alloc(sq_cuda *c, size_t nbytes) {
    (void)c;
    void *p = NULL;
    /* cudaMalloc aligns to 256 bytes, more than the 64 the table promises; whole 256-byte granules, so that
     * the GEMV's 16-byte staging loads of a row's last bytes stay inside the allocation */
    if (cudaMalloc(&p, ((nbytes ? nbytes : 1) + 255) & ~(size_t)255) != cudaSuccess) {
        cudaGetLastError(); /* out of memory is an answer (NULL), not a sticky error */
        return NULL;
    }
    return p;
}

void sq_cuda_free(sq_cuda *c, void *p) {
    if (p) sq_cuda_note(c, cudaFree(p), "cudaFree");
}

void sq_cuda_upload(sq_cuda *c, void *dst, const void *src, size_t nbytes) {
    /* from pageable memory the copy is staged before the call returns: the caller may reuse src at once */
    if (nbytes)
        sq_cuda_note(c, cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyHostToDevice, c->stream), "upload");
}

void sq_cuda_download(sq_cuda *c, void *dst, const void *src, size_t nbytes) {
    if (nbytes)
        sq_cuda_note(c, cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToHost, c->stream), "download");
    sq_cuda_note(c, cudaStreamSynchronize(c->stream), "download");
}

void sq_cuda_copy(sq_cuda *c, void *dst, const void *src, size_t nbytes) {
    if (nbytes && dst != src)
        sq_cuda_note(c, cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice, c->stream), "copy");
}

void sq_cuda_synchronize(sq_cuda *c) { sq_cuda_note(c, cudaStreamSynchronize(c->stream), "synchronize"); }

void *sq_cuda_scratch(sq_cuda *c, size_t nbytes) {
    if (nbytes <= c->scratch_bytes) return c->scratch;
    /* cudaFree waits for the kernels that may still read the old buffer */
    cudaFree(c->scratch);
    c->scratch = NULL;
    c->scratch_bytes = 0;
    size_t want = nbytes + nbytes / 4;
    cudaError_t e = cudaMalloc(&c->scratch, want);
    if (e != cudaSuccess) {
        cudaGetLastError();
        char what[96];
        snprintf(what, sizeof what, "scratch of %zu bytes", want);
        sq_cuda_note(c, e, what);
        c->scratch = NULL;
        return NULL;
    }
    c->scratch_bytes = want;
    return c->scratch;
}

/* A plain 16-byte copy kernel: every byte read once and written once. */
__global__ void copy_kernel(const uint4 *__restrict__ src, uint4 *__restrict__ dst, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = src[i];
}

static int cmp_float(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

double sq_cuda_copy_bandwidth(sq_cuda *c, size_t nbytes, int reps) {
    nbytes &= ~(size_t)15;
    void *a = NULL, *b = NULL;
    if (cudaMalloc(&a, nbytes) != cudaSuccess || cudaMalloc(&b, nbytes) != cudaSuccess) {
        cudaGetLastError();
        cudaFree(a);
        return 0;
    }
    cudaMemsetAsync(a, 0x5a, nbytes, c->stream); /* data, not zeros */
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    if (reps < 1) reps = 1;
    float *ms = (float *)malloc((size_t)reps * sizeof *ms);
    int n_ms = 0;
    const size_t n = nbytes / 16;
    for (int r = -1; r < reps; r++) {
        cudaEventRecord(e0, c->stream);
        copy_kernel<<<c->n_sm * 8, 512, 0, c->stream>>>((const uint4 *)a, (uint4 *)b, n);
        cudaEventRecord(e1, c->stream);
        cudaEventSynchronize(e1);
        float t = 0;
        cudaEventElapsedTime(&t, e0, e1);
        if (r >= 0 && ms) ms[n_ms++] = t;
    }
    SQ_CUDA_LAUNCHED(c, "copy bandwidth");
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cudaFree(a);
    cudaFree(b);
    if (!ms) return 0;
    qsort(ms, (size_t)n_ms, sizeof *ms, cmp_float);
    const double med = ms[n_ms / 2];
    free(ms);
    return med > 0 ? 2.0 * nbytes / (med * 1e-3) : 0;
}
