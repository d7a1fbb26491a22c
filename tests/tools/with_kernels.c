/* with_kernels SET COMMAND [ARGS...]: runs COMMAND with the CPU kernel set SET (scalar, avx2, avx512) forced
 * through SQ_KERNELS (or, for SET "native", with the set the dispatcher picks), which the library and the CLI
 * honour. Exits 77 (CTest's "skipped") when this CPU cannot run SET, so a numeric test registered once per
 * kernel set runs every set the machine has.
 *
 * OpenBLAS (the prefill GEMM) picks its own kernels by CPU model, so it is pinned to the core type a CPU of
 * that class gets (OPENBLAS_CORETYPE, unless already set): an AVX2 run here then computes what a Zen 3 or
 * Haswell machine computes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "squeeze.h"

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: with_kernels SET COMMAND [ARGS...]\n");
        return 2;
    }
    if (!strcmp(argv[1], "native")) { /* the dispatcher's own choice, nothing forced */
        execvp(argv[2], argv + 2);
        perror("with_kernels: execvp");
        return 2;
    }
    sq_error *err = sq_cpu_force_kernels(argv[1]);
    if (err) {
        int unsupported = sq_error_code_of(err) == SQ_ERR_UNSUPPORTED;
        fprintf(stderr, "with_kernels: %s%s\n", sq_error_message(err), unsupported ? " (test skipped)" : "");
        sq_error_free(err);
        return unsupported ? 77 : 2;
    }
    static const char *const blas_core[][2] = {
        {"scalar", "Prescott"}, {"avx2", "Haswell"}, {"avx512", "SkylakeX"}};
    for (size_t i = 0; i < sizeof blas_core / sizeof *blas_core; i++)
        if (!strcmp(argv[1], blas_core[i][0])) setenv("OPENBLAS_CORETYPE", blas_core[i][1], 0);
    if (setenv("SQ_KERNELS", argv[1], 1) != 0) {
        perror("with_kernels: setenv");
        return 2;
    }
    execvp(argv[2], argv + 2);
    fprintf(stderr, "with_kernels: cannot run %s\n", argv[2]);
    perror("execvp");
    return 2;
}
