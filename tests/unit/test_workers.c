/* test_workers.c — the bounded worker pool: every task once, backpressure, busy counts, stop. */
#include "unit_helpers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "workers.h"

/* ---- tasks ----------------------------------------------------------------- */

/* Counts how often each slot's task ran. */
typedef struct tally {
    atomic_int total;
    atomic_int per_task[2000];
} tally;

typedef struct counted_arg {
    tally *t;
    int index;
} counted_arg;

static void counted_task(void *arg)
{
    counted_arg *a = arg;
    atomic_fetch_add(&a->t->per_task[a->index], 1);
    atomic_fetch_add(&a->t->total, 1);
}

/* A gate that blocking tasks wait on until the test opens it. */
typedef struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int open;
    atomic_int waiting; /* tasks that have started and are blocked */
    atomic_int passed;  /* tasks that went through */
} gate;

static void gate_init(gate *g)
{
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
    g->open = 0;
    atomic_init(&g->waiting, 0);
    atomic_init(&g->passed, 0);
}

static void gate_destroy(gate *g)
{
    pthread_cond_destroy(&g->cond);
    pthread_mutex_destroy(&g->lock);
}

static void gate_open(gate *g)
{
    pthread_mutex_lock(&g->lock);
    g->open = 1;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

static void blocking_task(void *arg)
{
    gate *g = arg;
    atomic_fetch_add(&g->waiting, 1);
    pthread_mutex_lock(&g->lock);
    while (!g->open)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
    atomic_fetch_sub(&g->waiting, 1);
    atomic_fetch_add(&g->passed, 1);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Wait (up to 5 s) until *counter reaches want. */
static void wait_for_count(atomic_int *counter, int want)
{
    for (int i = 0; i < 5000 && atomic_load(counter) < want; i++)
        sleep_ms(1);
    assert_int_equal(atomic_load(counter), want);
}

/* Wait (up to 5 s) until the pool is idle. */
static void wait_idle(worker_pool *pool)
{
    for (int i = 0; i < 5000 && workers_busy(pool) > 0; i++)
        sleep_ms(1);
    assert_int_equal(workers_busy(pool), 0);
}

/* ---- tests ------------------------------------------------------------------- */

static void test_every_task_runs_exactly_once(void **state)
{
    (void)state;
    enum { N = 2000 };
    tally *t = calloc(1, sizeof *t);
    counted_arg *args = calloc(N, sizeof *args);
    assert_non_null(t);
    assert_non_null(args);
    worker_pool *pool = workers_new(4, N);
    assert_non_null(pool);
    for (int i = 0; i < N; i++) {
        args[i] = (counted_arg){t, i};
        assert_int_equal(workers_submit(pool, counted_task, &args[i]), 0);
    }
    workers_stop(pool); /* finishes the queue, joins */
    assert_int_equal(atomic_load(&t->total), N);
    for (int i = 0; i < N; i++)
        if (atomic_load(&t->per_task[i]) != 1) {
            print_error("task %d ran %d times\n", i, atomic_load(&t->per_task[i]));
            fail();
        }
    assert_int_equal(workers_busy(pool), 0);
    workers_free(pool);
    free(args);
    free(t);
}

static void test_submit_fails_when_queue_full(void **state)
{
    (void)state;
    gate g;
    gate_init(&g);
    worker_pool *pool = workers_new(1, 2);
    assert_non_null(pool);

    /* occupy the only thread */
    assert_int_equal(workers_submit(pool, blocking_task, &g), 0);
    wait_for_count(&g.waiting, 1);
    assert_int_equal(workers_queued(pool), 0);

    /* fill the queue of two, then one more is refused */
    assert_int_equal(workers_submit(pool, blocking_task, &g), 0);
    assert_int_equal(workers_submit(pool, blocking_task, &g), 0);
    assert_int_equal(workers_queued(pool), 2);
    assert_int_equal(workers_submit(pool, blocking_task, &g), -1);
    assert_int_equal(workers_submit(pool, blocking_task, &g), -1);
    assert_int_equal(workers_busy(pool), 3);

    gate_open(&g);
    wait_idle(pool);
    assert_int_equal(atomic_load(&g.passed), 3); /* refused tasks never ran */

    /* space again after draining */
    assert_int_equal(workers_submit(pool, blocking_task, &g), 0);
    workers_free(pool);
    assert_int_equal(atomic_load(&g.passed), 4);
    gate_destroy(&g);
}

static void test_busy_counts_running_and_queued(void **state)
{
    (void)state;
    gate g;
    gate_init(&g);
    worker_pool *pool = workers_new(2, 8);
    assert_non_null(pool);
    assert_int_equal(workers_busy(pool), 0);
    assert_int_equal(workers_queued(pool), 0);

    for (int i = 0; i < 5; i++)
        assert_int_equal(workers_submit(pool, blocking_task, &g), 0);
    wait_for_count(&g.waiting, 2); /* both threads blocked */
    assert_int_equal(workers_busy(pool), 5);
    assert_int_equal(workers_queued(pool), 3);

    gate_open(&g);
    wait_idle(pool);
    assert_int_equal(workers_queued(pool), 0);
    assert_int_equal(atomic_load(&g.passed), 5);
    workers_free(pool);
    gate_destroy(&g);
}

static void test_stop_finishes_queue_and_joins(void **state)
{
    (void)state;
    gate g;
    gate_init(&g);
    tally *t = calloc(1, sizeof *t);
    counted_arg args[5];
    worker_pool *pool = workers_new(1, 16);
    assert_non_null(pool);
    assert_int_equal(workers_submit(pool, blocking_task, &g), 0);
    wait_for_count(&g.waiting, 1);
    for (int i = 0; i < 5; i++) {
        args[i] = (counted_arg){t, i};
        assert_int_equal(workers_submit(pool, counted_task, &args[i]), 0);
    }
    gate_open(&g);
    workers_stop(pool);
    /* joined: everything queued before stop has run, nothing is running */
    assert_int_equal(atomic_load(&g.passed), 1);
    assert_int_equal(atomic_load(&t->total), 5);
    assert_int_equal(workers_busy(pool), 0);

    /* a stopped pool refuses work; stopping again is harmless */
    assert_int_equal(workers_submit(pool, counted_task, &args[0]), -1);
    workers_stop(pool);
    assert_int_equal(atomic_load(&t->total), 5);
    workers_free(pool);
    free(t);
    gate_destroy(&g);
}

static void test_free_without_stop(void **state)
{
    (void)state;
    tally *t = calloc(1, sizeof *t);
    counted_arg a = {t, 0};
    worker_pool *pool = workers_new(3, 4);
    assert_non_null(pool);
    assert_int_equal(workers_submit(pool, counted_task, &a), 0);
    workers_free(pool); /* stops and joins itself */
    assert_int_equal(atomic_load(&t->total), 1);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_task_runs_exactly_once),
        cmocka_unit_test(test_submit_fails_when_queue_full),
        cmocka_unit_test(test_busy_counts_running_and_queued),
        cmocka_unit_test(test_stop_finishes_queue_and_joins),
        cmocka_unit_test(test_free_without_stop),
    };
    return cmocka_run_group_tests_name("workers", tests, NULL, NULL);
}
