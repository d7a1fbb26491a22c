/* The devices this build has, and the one place a backend is chosen by name. Adding a backend adds a row. */
#include "kernels/backend.h"

#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "kernels/cpu/cpu_ops.h"
#ifdef SQ_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#else
/* Builds without CUDA still name the device, to say how to get it. */
static sq_error *sq_cuda_backend_create(int n_threads, sq_backend *out) {
    (void)n_threads;
    (void)out;
    return sq_errorf(
        SQ_ERR_UNSUPPORTED,
        "device cuda: this squeeze was built without CUDA (configure with -DSQUEEZE_CUDA=ON where "
        "nvcc is installed)");
}
#endif

static const struct {
    const char *name;
    SQ_NODISCARD sq_error *(*create)(int n_threads, sq_backend *out);
} devices[] = {
    {"cpu", sq_cpu_backend_create},
    {"cuda", sq_cuda_backend_create},
};
enum { N_DEVICES = sizeof devices / sizeof *devices };

const char *sq_op_name(sq_op op) {
    static const char *const names[SQ_OP_COUNT] = {
        [SQ_OP_MATMUL] = "matmul",     [SQ_OP_GET_ROWS] = "get_rows", [SQ_OP_RMSNORM] = "rmsnorm",
        [SQ_OP_ROPE] = "rope",         [SQ_OP_ADD] = "add",           [SQ_OP_ADD_BIAS] = "add_bias",
        [SQ_OP_SWIGLU] = "swiglu",     [SQ_OP_GEGLU] = "geglu",       [SQ_OP_SCALE] = "scale",
        [SQ_OP_KV_STORE] = "kv_store", [SQ_OP_KV_COPY] = "kv_copy",   [SQ_OP_ATTENTION] = "attention",
        [SQ_OP_ADD_ROWS] = "add_rows"};
    return (unsigned)op < SQ_OP_COUNT ? names[op] : "unknown operation";
}

sq_error *sq_backend_create(const char *device, int n_threads, sq_backend *out) {
    memset(out, 0, sizeof *out);
    if (!device) device = "cpu";
    for (int i = 0; i < N_DEVICES; i++)
        if (!strcmp(devices[i].name, device)) return devices[i].create(n_threads, out);
    char names[256] = "";
    for (int i = 0; i < N_DEVICES; i++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", devices[i].name);
    return sq_errorf(SQ_ERR_INVALID_ARG, "unknown device '%.64s' (this build has: %s)", device, names);
}

void sq_backend_destroy(sq_backend *be) {
    if (be && be->destroy) be->destroy(be->impl);
    if (be) memset(be, 0, sizeof *be);
}
