/* A fixed pool of worker threads for data-parallel kernels.
 *
 * sq_threadpool_run calls fn(ctx, ith, nth) once on each of the nth threads (the caller is thread 0) and
 * returns when all have finished: each call works out its own slice of the work, as in ggml. Workers spin
 * briefly between calls, so the many small parallel regions of a decode step do not pay a sleep/wake-up. */
#ifndef SQ_CORE_THREADPOOL_H
#define SQ_CORE_THREADPOOL_H

typedef struct sq_threadpool sq_threadpool;
typedef void (*sq_task_fn)(void *ctx, int ith, int nth);

/* n_threads <= 0 means sq_cpu_count() threads. Returns NULL if threads cannot be created. */
sq_threadpool *sq_threadpool_create(int n_threads);
void sq_threadpool_free(sq_threadpool *pool);
int sq_threadpool_size(const sq_threadpool *pool);
void sq_threadpool_run(sq_threadpool *pool, sq_task_fn fn, void *ctx);

/* Splits [0, n) into nth near-equal contiguous ranges; thread ith gets [*begin, *end). */
static inline void sq_split_range(long n, int ith, int nth, long *begin, long *end) {
    long per = n / nth, extra = n % nth;
    *begin = ith * per + (ith < extra ? ith : extra);
    *end = *begin + per + (ith < extra ? 1 : 0);
}

#endif
