/* inbox.h — the durable webhook inbox. Verified deliveries queue here; inbox
 * threads take everything queued at once and store it in PostgreSQL with one
 * self-committing statement (group commit), recording each delivery's
 * idempotency key so a redelivery is recognised. Each delivery's completion
 * then runs on the event loop, where its HTTP reply is sent. */
#ifndef HOSTD_INBOX_H
#define HOSTD_INBOX_H

#include <stddef.h>
#include <stdint.h>

#include "hostd.h"

typedef enum inbox_outcome {
    INBOX_STORED,    /* committed as a new delivery */
    INBOX_DUPLICATE, /* its idempotency key was already stored */
    INBOX_FAILED,    /* not stored (database down or refused it) */
} inbox_outcome;

typedef struct inbox_item inbox_item;
/* Runs on the loop thread once the item's transaction has ended. The
 * callback owns the item from then on (free it with inbox_item_free). */
typedef void (*inbox_done_fn)(inbox_item *item, void *arg);

struct inbox_item {
    char id[37];         /* the delivery's uuid, chosen before the insert */
    char *provider;      /* owned */
    char *scope;         /* owned: idempotency scope, provider[/connection] */
    char *delivery_key;  /* owned: idempotency key */
    char *tenant_id;     /* owned, may be NULL */
    char *connection_id; /* owned, may be NULL */
    char *headers_json;  /* owned: JSON object of the stored headers */
    unsigned char *body; /* owned */
    size_t body_len;
    char *content_type; /* owned, may be NULL */
    char *remote_addr;  /* owned, may be NULL: the sender's address */
    int64_t received_at_us;
    inbox_outcome outcome; /* set before done runs */
    int leased;            /* set by the inbox: stored leased to this host's dispatcher, which
                              has its body and content type (NULL by the time done runs) */
    inbox_done_fn done;
    void *done_arg;
    int64_t queued_us; /* set by the inbox: monotonic time it was queued */
    inbox_item *next;
};

typedef struct inbox inbox;

/* capacity: queued items at most; threads: inbox threads, each committing
 * its own batches over its own connection to `database_url` (the inbox does
 * not share connections with the rest of the store, so an ack never waits
 * behind a sync's page). Threads start at once; connections are retried
 * with backoff up to retry_max_s apart. */
inbox *inbox_new(hostd *h, const char *database_url, int capacity, int threads, int retry_max_s);

/* Queue an item (ownership passes to the inbox on success). Returns -1 when
 * the queue is full, the store is not connected or the inbox is stopping:
 * the caller keeps the item and answers 503. Any thread. */
int inbox_submit(inbox *ib, inbox_item *item);

/* Whether the inbox's own connections are up (some of them). */
int inbox_ready(inbox *ib);

/* Items queued or being committed right now. */
size_t inbox_depth(inbox *ib);

/* Stop taking items, commit what is queued, join the threads. Completions
 * are posted to the loop; run the loop's mailbox afterwards to deliver them. */
void inbox_stop(inbox *ib);
void inbox_free(inbox *ib);

void inbox_item_free(inbox_item *item);

#endif
