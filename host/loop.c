/* loop.c — a mutex-protected FIFO drained by one libevent event, activated
 * from other threads (safe because the base was made thread-aware). */
#include "loop.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>

typedef struct post_item {
    loop_fn fn;
    void *arg;
    struct post_item *next;
} post_item;

struct loop_mailbox {
    pthread_mutex_t lock;
    post_item *head, *tail;
    struct event *wake;
};

static post_item *take_all(loop_mailbox *mb)
{
    pthread_mutex_lock(&mb->lock);
    post_item *items = mb->head;
    mb->head = mb->tail = NULL;
    pthread_mutex_unlock(&mb->lock);
    return items;
}

static void run_items(post_item *items)
{
    while (items) {
        post_item *next = items->next;
        items->fn(items->arg);
        free(items);
        items = next;
    }
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    run_items(take_all(arg));
}

loop_mailbox *loop_mailbox_new(struct event_base *base)
{
    loop_mailbox *mb = calloc(1, sizeof *mb);
    if (!mb)
        return NULL;
    pthread_mutex_init(&mb->lock, NULL);
    mb->wake = event_new(base, -1, 0, on_wake, mb);
    if (!mb->wake) {
        pthread_mutex_destroy(&mb->lock);
        free(mb);
        return NULL;
    }
    return mb;
}

int loop_post(loop_mailbox *mb, loop_fn fn, void *arg)
{
    post_item *item = malloc(sizeof *item);
    if (!item)
        return -1;
    item->fn = fn;
    item->arg = arg;
    item->next = NULL;
    pthread_mutex_lock(&mb->lock);
    if (mb->tail)
        mb->tail->next = item;
    else
        mb->head = item;
    mb->tail = item;
    pthread_mutex_unlock(&mb->lock);
    event_active(mb->wake, EV_READ, 0);
    return 0;
}

void loop_event_del(struct event *ev)
{
    if (ev)
        event_del(ev);
}

void loop_event_free(struct event *ev)
{
    if (ev)
        event_free(ev);
}

void loop_mailbox_free(loop_mailbox *mb)
{
    if (!mb)
        return;
    run_items(take_all(mb));
    event_free(mb->wake);
    pthread_mutex_destroy(&mb->lock);
    free(mb);
}
