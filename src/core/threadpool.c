#include "core/threadpool.h"

#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "squeeze.h"
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* How long a waiting thread spins before it sleeps on a futex. Long enough to bridge the gaps between the
 * parallel regions of one decode step (a few microseconds of serial work each), short enough that a thread
 * with nothing to do gives its core back at once when the machine is busy: a spinning thread is runnable and
 * takes its share of a core the other programs (and this pool's own caller) could use. */
#define SPIN_NS 50000
/* Spins between two looks at the clock. */
#define SPINS_PER_CLOCK_READ 64

struct sq_threadpool {
    int n_threads;
    pthread_t *workers; /* [n_threads - 1]: the caller of sq_threadpool_run is the n_threads-th thread */
    sq_task_fn fn;
    void *ctx;
    /* Futex words are 32-bit. Workers sleep on `generation`, bumped once per run; the caller sleeps on
     * `slices_done`. `sleepers` and `caller_sleeps` tell the other side whether a wake-up call is needed. */
    atomic_uint generation;
    atomic_uint next_slice;  /* the next slice to claim; >= n_threads: all claimed */
    atomic_uint slices_done; /* slices finished in this run */
    atomic_int sleepers;
    atomic_int caller_sleeps;
    atomic_bool stop;
};

static void futex_wait(atomic_uint *word, unsigned expected) {
    syscall(SYS_futex, (unsigned *)word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void futex_wake_all(atomic_uint *word) {
    syscall(SYS_futex, (unsigned *)word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Spins up to SPIN_NS while *word == value; returns whether it changed. */
static bool spin_while_equal(atomic_uint *word, unsigned value) {
    long long deadline = 0;
    for (unsigned i = 1;; i++) {
        if (atomic_load_explicit(word, memory_order_acquire) != value) return true;
        cpu_relax();
        if (i % SPINS_PER_CLOCK_READ == 0) {
            long long t = now_ns();
            if (!deadline)
                deadline = t + SPIN_NS;
            else if (t > deadline)
                return false;
        }
    }
}

/* Runs unclaimed slices of the current run until none is left. A slice is claimed, not assigned: a thread
 * that the scheduler has not run yet leaves its share to the threads that are running, so a busy machine
 * slows a run down by the CPU it takes instead of stalling it until every thread has had its turn. */
static void run_slices(sq_threadpool *pool) {
    const unsigned n = (unsigned)pool->n_threads;
    for (;;) {
        /* acq_rel: a slice claimed in this run comes with this run's fn and ctx (stored before the claim
         * counter was reset) */
        unsigned i = atomic_fetch_add_explicit(&pool->next_slice, 1, memory_order_acq_rel);
        if (i >= n) return;
        pool->fn(pool->ctx, (int)i, (int)n);
        if (atomic_fetch_add(&pool->slices_done, 1) + 1 == n && atomic_load(&pool->caller_sleeps))
            futex_wake_all(&pool->slices_done);
    }
}

static void *worker_main(void *arg) {
    sq_threadpool *pool = arg;
    unsigned seen = 0;
    for (;;) {
        if (!spin_while_equal(&pool->generation, seen)) {
            atomic_fetch_add(&pool->sleepers, 1); /* seq_cst: pairs with start_run's bump, then its check */
            while (atomic_load(&pool->generation) == seen) futex_wait(&pool->generation, seen);
            atomic_fetch_sub(&pool->sleepers, 1);
        }
        seen = atomic_load_explicit(&pool->generation, memory_order_acquire);
        if (atomic_load(&pool->stop)) return NULL;
        run_slices(pool);
    }
}

static void start_run(sq_threadpool *pool) {
    atomic_fetch_add(&pool->generation, 1); /* seq_cst: pairs with the sleepers count in the workers */
    if (atomic_load(&pool->sleepers) > 0) futex_wake_all(&pool->generation);
}

sq_threadpool *sq_threadpool_create(int n_threads) {
    if (n_threads <= 0) n_threads = sq_cpu_count();
    sq_threadpool *pool = calloc(1, sizeof *pool);
    if (!pool) return NULL;
    pool->n_threads = 1;
    atomic_store(&pool->next_slice, UINT_MAX / 2); /* nothing to claim before the first run */
    pool->workers = calloc((size_t)n_threads, sizeof *pool->workers);
    if (!pool->workers) {
        free(pool);
        return NULL;
    }
    for (int i = 0; i < n_threads - 1; i++) {
        if (pthread_create(&pool->workers[i], NULL, worker_main, pool) != 0) {
            sq_threadpool_free(pool); /* stops the ones already started */
            return NULL;
        }
        pool->n_threads++;
    }
    return pool;
}

void sq_threadpool_free(sq_threadpool *pool) {
    if (!pool) return;
    atomic_store(&pool->stop, true);
    start_run(pool);
    for (int i = 0; i < pool->n_threads - 1; i++) pthread_join(pool->workers[i], NULL);
    free(pool->workers);
    free(pool);
}

int sq_threadpool_size(const sq_threadpool *pool) { return pool ? pool->n_threads : 1; }

void sq_threadpool_run(sq_threadpool *pool, sq_task_fn fn, void *ctx) {
    if (!pool || pool->n_threads == 1) {
        fn(ctx, 0, 1);
        return;
    }
    const unsigned n = (unsigned)pool->n_threads;
    pool->fn = fn;
    pool->ctx = ctx;
    atomic_store(&pool->slices_done, 0);
    atomic_store_explicit(&pool->next_slice, 0, memory_order_release);
    start_run(pool);
    run_slices(pool);
    /* Every slice is claimed; wait for the ones other threads are still running. */
    for (unsigned done; (done = atomic_load_explicit(&pool->slices_done, memory_order_acquire)) != n;) {
        if (spin_while_equal(&pool->slices_done, done)) continue;
        atomic_store(&pool->caller_sleeps, 1); /* seq_cst: pairs with the last worker's count, then check */
        if (atomic_load(&pool->slices_done) == done) futex_wait(&pool->slices_done, done);
        atomic_store(&pool->caller_sleeps, 0);
    }
}
