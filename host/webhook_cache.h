/* webhook_cache.h — what webhook verification needs to know about a
 * connection (its tenant and its webhook secrets), kept in memory for a short
 * time so a busy endpoint does not decrypt secrets for every request. Loop
 * thread only: no locking. */
#ifndef HOSTD_WEBHOOK_CACHE_H
#define HOSTD_WEBHOOK_CACHE_H

#include <stdint.h>

typedef struct webhook_cache webhook_cache;

typedef struct webhook_conn {
    char connection_id[37];
    char provider[128];
    int found; /* 0: no such connection of this provider */
    char tenant_id[37];
    char *secrets[2];   /* owned; NULL when unset; wiped when dropped */
    int64_t fetched_ms; /* monotonic */
} webhook_conn;

webhook_cache *webhook_cache_new(void);
void webhook_cache_free(webhook_cache *c);

/* The entry for (provider, connection), or NULL if absent or older than its
 * time to live (found: 30 s, not found: 5 s). Borrowed until the next
 * put/drop. */
const webhook_conn *webhook_cache_get(webhook_cache *c, const char *provider,
                                      const char *connection_id, int64_t now_ms);
/* Insert or replace; the cache takes the secrets (and NULLs them in *e). */
void webhook_cache_put(webhook_cache *c, webhook_conn *e);
/* Forget one entry (a secret may have been rotated). */
void webhook_cache_drop(webhook_cache *c, const char *provider, const char *connection_id);

#endif
