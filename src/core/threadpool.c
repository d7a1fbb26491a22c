#include "core/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* Spins before a worker goes to sleep: long enough to bridge the gaps between kernels of one decode step. */
#define SPIN_ITERATIONS 20000
/* Spins before a waiting thread yields its core: when the machine is oversubscribed, the thread it waits for
 * may be descheduled, and spinning through a whole time slice would stall every parallel region. */
#define SPINS_BEFORE_YIELD 2000

typedef struct worker {
    sq_threadpool *pool;
    pthread_t thread;
    int ith;
} worker;

struct sq_threadpool {
    int n_threads;
    worker *workers;
    sq_task_fn fn;
    void *ctx;
    atomic_uint generation; /* bumped for each run; workers wait for it to change */
    atomic_int pending;     /* workers still busy with the current run */
    atomic_int sleepers;
    atomic_bool stop;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
};

int sq_online_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void wait_for_new_generation(sq_threadpool *pool, unsigned seen) {
    for (int i = 0; i < SPIN_ITERATIONS; i++) {
        if (atomic_load_explicit(&pool->generation, memory_order_acquire) != seen) return;
        if (i < SPINS_BEFORE_YIELD)
            cpu_relax();
        else
            sched_yield();
    }
    pthread_mutex_lock(&pool->mutex);
    atomic_fetch_add(&pool->sleepers, 1);
    while (atomic_load(&pool->generation) == seen) pthread_cond_wait(&pool->wake, &pool->mutex);
    atomic_fetch_sub(&pool->sleepers, 1);
    pthread_mutex_unlock(&pool->mutex);
}

static void *worker_main(void *arg) {
    worker *w = arg;
    sq_threadpool *pool = w->pool;
    unsigned seen = 0;
    for (;;) {
        wait_for_new_generation(pool, seen);
        seen = atomic_load_explicit(&pool->generation, memory_order_acquire);
        if (atomic_load(&pool->stop)) return NULL;
        pool->fn(pool->ctx, w->ith, pool->n_threads);
        atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_release);
    }
}

static void start_generation(sq_threadpool *pool) {
    atomic_fetch_add(&pool->generation, 1); /* seq_cst: pairs with the sleepers count in the workers */
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->mutex);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->mutex);
    }
}

sq_threadpool *sq_threadpool_create(int n_threads) {
    if (n_threads <= 0) n_threads = sq_online_cores();
    sq_threadpool *pool = calloc(1, sizeof *pool);
    if (!pool) return NULL;
    pool->n_threads = n_threads;
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pool->workers = calloc((size_t)n_threads, sizeof *pool->workers);
    if (!pool->workers) {
        free(pool);
        return NULL;
    }
    for (int i = 1; i < n_threads; i++) {
        pool->workers[i] = (worker){.pool = pool, .ith = i};
        if (pthread_create(&pool->workers[i].thread, NULL, worker_main, &pool->workers[i]) != 0) {
            pool->n_threads = i; /* stop the ones already started */
            sq_threadpool_free(pool);
            return NULL;
        }
    }
    return pool;
}

void sq_threadpool_free(sq_threadpool *pool) {
    if (!pool) return;
    atomic_store(&pool->stop, true);
    start_generation(pool);
    for (int i = 1; i < pool->n_threads; i++) pthread_join(pool->workers[i].thread, NULL);
    pthread_mutex_destroy(&pool->mutex);
    pthread_cond_destroy(&pool->wake);
    free(pool->workers);
    free(pool);
}

int sq_threadpool_size(const sq_threadpool *pool) { return pool ? pool->n_threads : 1; }

void sq_threadpool_run(sq_threadpool *pool, sq_task_fn fn, void *ctx) {
    if (!pool || pool->n_threads == 1) {
        fn(ctx, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->ctx = ctx;
    atomic_store(&pool->pending, pool->n_threads - 1);
    start_generation(pool);
    fn(ctx, 0, pool->n_threads);
    for (unsigned spins = 0; atomic_load_explicit(&pool->pending, memory_order_acquire) > 0; spins++) {
        if (spins < SPINS_BEFORE_YIELD)
            cpu_relax();
        else
            sched_yield();
    }
}
