/* workers.c — fixed threads around a ring buffer of tasks. */
#include "workers.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct task {
    worker_fn fn;
    void *arg;
} task;

struct worker_pool {
    pthread_mutex_t lock;
    pthread_cond_t nonempty;
    task *ring;
    size_t capacity, head, count, running;
    int stopping;
    pthread_t *threads;
    int n_threads;
};

static void *worker_main(void *arg)
{
    worker_pool *pool = arg;
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (pool->count == 0 && !pool->stopping)
            pthread_cond_wait(&pool->nonempty, &pool->lock);
        if (pool->count == 0 && pool->stopping)
            break;
        task t = pool->ring[pool->head];
        pool->head = (pool->head + 1) % pool->capacity;
        pool->count--;
        pool->running++;
        pthread_mutex_unlock(&pool->lock);
        t.fn(t.arg);
        pthread_mutex_lock(&pool->lock);
        pool->running--;
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

worker_pool *workers_new(int threads, size_t queue_capacity)
{
    worker_pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return NULL;
    pool->ring = calloc(queue_capacity, sizeof *pool->ring);
    pool->threads = calloc((size_t)threads, sizeof *pool->threads);
    if (!pool->ring || !pool->threads) {
        free(pool->ring);
        free(pool->threads);
        free(pool);
        return NULL;
    }
    pool->capacity = queue_capacity;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->nonempty, NULL);
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&pool->threads[i], NULL, worker_main, pool) != 0)
            break;
        pool->n_threads++;
    }
    if (pool->n_threads == 0) {
        workers_free(pool);
        return NULL;
    }
    return pool;
}

int workers_submit(worker_pool *pool, worker_fn fn, void *arg)
{
    pthread_mutex_lock(&pool->lock);
    if (pool->stopping || pool->count == pool->capacity) {
        pthread_mutex_unlock(&pool->lock);
        return -1;
    }
    pool->ring[(pool->head + pool->count) % pool->capacity] = (task){fn, arg};
    pool->count++;
    pthread_cond_signal(&pool->nonempty);
    pthread_mutex_unlock(&pool->lock);
    return 0;
}

size_t workers_busy(worker_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    size_t n = pool->count + pool->running;
    pthread_mutex_unlock(&pool->lock);
    return n;
}

size_t workers_queued(worker_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    size_t n = pool->count;
    pthread_mutex_unlock(&pool->lock);
    return n;
}

void workers_stop(worker_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    int was_stopping = pool->stopping;
    pool->stopping = 1;
    pthread_cond_broadcast(&pool->nonempty);
    pthread_mutex_unlock(&pool->lock);
    if (was_stopping)
        return;
    for (int i = 0; i < pool->n_threads; i++)
        pthread_join(pool->threads[i], NULL);
    pool->n_threads = 0;
}

void workers_free(worker_pool *pool)
{
    if (!pool)
        return;
    workers_stop(pool);
    pthread_cond_destroy(&pool->nonempty);
    pthread_mutex_destroy(&pool->lock);
    free(pool->ring);
    free(pool->threads);
    free(pool);
}
