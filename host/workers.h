/* workers.h — the bounded worker pool that runs plugin callbacks. */
#ifndef HOSTD_WORKERS_H
#define HOSTD_WORKERS_H

#include <stddef.h>

typedef struct worker_pool worker_pool;
typedef void (*worker_fn)(void *arg);

worker_pool *workers_new(int threads, size_t queue_capacity);
/* Queue fn(arg). Returns -1 when the queue is full or the pool is stopping:
 * that is backpressure, the caller decides what to answer. */
int workers_submit(worker_pool *pool, worker_fn fn, void *arg);
/* Tasks queued plus tasks running. */
size_t workers_busy(worker_pool *pool);
size_t workers_queued(worker_pool *pool);
/* Finish what is queued, stop the threads and join them. */
void workers_stop(worker_pool *pool);
void workers_free(worker_pool *pool);

#endif
