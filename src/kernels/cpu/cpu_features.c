/* Run-time choice of the CPU kernel set: the best one this CPU (and OS) supports, or the one a caller forced.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "core/error.h"
#include "kernels/cpu/kernels.h"

#if defined(__x86_64__)
/* Not every compiler knows "f16c" as a __builtin_cpu_supports name, so ask CPUID leaf 1 directly. */
static int has_f16c(void) {
    unsigned eax, ebx, ecx, edx;
    return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C);
}
#endif

/* The first CPU feature a kernel set needs that this CPU lacks, or NULL when it can run here.
 * __builtin_cpu_supports also checks that the OS saves the wider registers (XGETBV). */
static const char *missing_feature(const sq_cpu_kernels *set) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (set == &sq_kernels_avx512 && !__builtin_cpu_supports("avx512f")) return "avx512f";
    if (set == &sq_kernels_avx512 || set == &sq_kernels_avx2) {
        if (!__builtin_cpu_supports("avx2")) return "avx2";
        if (!__builtin_cpu_supports("fma")) return "fma";
        if (!has_f16c()) return "f16c";
    }
#endif
    (void)set;
    return NULL;
}

/* Best first. */
static const sq_cpu_kernels *const all_sets[] = {
#if defined(__x86_64__)
    &sq_kernels_avx512,
    &sq_kernels_avx2,
#endif
    &sq_kernels_scalar,
};
enum { N_SETS = sizeof all_sets / sizeof *all_sets };

static _Atomic(const sq_cpu_kernels *) active_set;

/* The set SQ_KERNELS names, when this CPU can run it (callers that must know check with sq_cpu_force_kernels,
 * as the CLI and the test launcher do), else NULL. */
static const sq_cpu_kernels *set_from_environment(void) {
    const char *name = getenv("SQ_KERNELS");
    for (int i = 0; name && i < N_SETS; i++)
        if (strcmp(all_sets[i]->name, name) == 0 && !missing_feature(all_sets[i])) return all_sets[i];
    return NULL;
}

const sq_cpu_kernels *sq_cpu_kernels_active(void) {
    const sq_cpu_kernels *set = atomic_load_explicit(&active_set, memory_order_acquire);
    if (set) return set;
    set = set_from_environment();
    for (int i = 0; !set && i < N_SETS; i++)
        if (!missing_feature(all_sets[i])) set = all_sets[i];
    const sq_cpu_kernels *expected = NULL;
    /* A racing sq_cpu_force_kernels wins. */
    if (!atomic_compare_exchange_strong(&active_set, &expected, set)) return expected;
    return set;
}

const char *sq_cpu_kernel_name(void) { return sq_cpu_kernels_active()->name; }

sq_error *sq_cpu_force_kernels(const char *name) {
    if (!name) return sq_errorf(SQ_ERR_INVALID_ARG, "CPU kernel set: no name given");
    static const char *const known[] = {"avx512", "avx2", "scalar"};
    for (int i = 0; i < N_SETS; i++) {
        if (strcmp(all_sets[i]->name, name) != 0) continue;
        const char *missing = missing_feature(all_sets[i]);
        if (missing)
            return sq_errorf(SQ_ERR_UNSUPPORTED,
                             "CPU kernel set %s needs the %s instruction set, which this CPU lacks", name,
                             missing);
        atomic_store_explicit(&active_set, all_sets[i], memory_order_release);
        return NULL;
    }
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (strcmp(known[i], name) == 0)
            return sq_errorf(SQ_ERR_UNSUPPORTED, "CPU kernel set %s is not built for this architecture",
                             name);
    return sq_errorf(SQ_ERR_INVALID_ARG, "unknown CPU kernel set \"%s\" (expected scalar, avx2 or avx512)",
                     name);
}
