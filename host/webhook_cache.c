/* webhook_cache.c — a fixed-size table indexed by a hash of the connection
 * id; a collision simply replaces the older entry (it is only a cache). */
#include "webhook_cache.h"

#include <stdlib.h>
#include <string.h>

#include "crypto.h"

#define SLOTS 4096
#define FOUND_TTL_MS 30000
#define MISSING_TTL_MS 5000

struct webhook_cache {
    webhook_conn slots[SLOTS];
};

static size_t slot_of(const char *provider, const char *connection_id)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const char *p = connection_id; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    for (const char *p = provider; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return (size_t)(h % SLOTS);
}

static void clear(webhook_conn *e)
{
    for (int i = 0; i < 2; i++)
        if (e->secrets[i])
            crypto_wipe_free(e->secrets[i], strlen(e->secrets[i]));
    memset(e, 0, sizeof *e);
}

webhook_cache *webhook_cache_new(void) { return calloc(1, sizeof(webhook_cache)); }

void webhook_cache_free(webhook_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < SLOTS; i++)
        clear(&c->slots[i]);
    free(c);
}

const webhook_conn *webhook_cache_get(webhook_cache *c, const char *provider,
                                      const char *connection_id, int64_t now_ms)
{
    webhook_conn *e = &c->slots[slot_of(provider, connection_id)];
    if (strcmp(e->connection_id, connection_id) != 0 || strcmp(e->provider, provider) != 0)
        return NULL;
    if (now_ms - e->fetched_ms > (e->found ? FOUND_TTL_MS : MISSING_TTL_MS))
        return NULL;
    return e;
}

void webhook_cache_put(webhook_cache *c, webhook_conn *e)
{
    webhook_conn *slot = &c->slots[slot_of(e->provider, e->connection_id)];
    clear(slot);
    *slot = *e;
    e->secrets[0] = e->secrets[1] = NULL;
}

void webhook_cache_drop(webhook_cache *c, const char *provider, const char *connection_id)
{
    webhook_conn *e = &c->slots[slot_of(provider, connection_id)];
    if (strcmp(e->connection_id, connection_id) == 0 && strcmp(e->provider, provider) == 0)
        clear(e);
}
