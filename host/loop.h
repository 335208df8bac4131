/* loop.h — run a function on the event loop thread from any thread. */
#ifndef HOSTD_LOOP_H
#define HOSTD_LOOP_H

struct event_base;
typedef struct loop_mailbox loop_mailbox;

typedef void (*loop_fn)(void *arg);

/* The base must have been created after evthread_use_pthreads(). */
loop_mailbox *loop_mailbox_new(struct event_base *base);
/* Queue fn(arg) to run on the loop thread. Thread-safe; never blocks on the
 * loop. Returns -1 only when out of memory. */
int loop_post(loop_mailbox *mb, loop_fn fn, void *arg);
/* Runs whatever is still queued, then frees. Call on the loop thread. */
void loop_mailbox_free(loop_mailbox *mb);

struct event;
/* event_del() and event_free() for an event that may never have been made
 * (NULL: nothing to do), as in a module freed after a failed start. */
void loop_event_del(struct event *ev);
void loop_event_free(struct event *ev);

#endif
