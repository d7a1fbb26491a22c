/* How long this process's threads were kept off a CPU they wanted: the benchmark's measure of a disturbed
 * repetition (another process on the same cores, or a hypervisor running another guest on our vCPUs). */
#pragma once

#include <stdint.h>

typedef struct sq_cpu_wait_sample {
    int valid;             /* 0 where /proc does not tell (then every difference is unknown) */
    double wall_s;         /* sq_monotonic_seconds() */
    uint64_t run_delay_ns; /* summed over the process's threads: runnable, waiting on a run queue */
    uint64_t steal_ns;     /* summed over all CPUs: time the hypervisor gave them to someone else */
    int n_cpus;            /* CPUs the steal figure covers */
} sq_cpu_wait_sample;

void sq_cpu_wait_sample_now(sq_cpu_wait_sample *s);

/* The fraction of n_threads threads' time from a to b that they spent kept off a CPU: run-queue delay plus
 * the steal share of n_threads CPUs. NAN when either sample is invalid or no time passed. A thread that died
 * between the samples takes its delay with it, so read both samples while the same threads live. */
double sq_cpu_wait_fraction(const sq_cpu_wait_sample *a, const sq_cpu_wait_sample *b, int n_threads);
