/*
 * slack_users.c — user ids to names, with a cache.
 *
 * Messages carry user ids only. users.info (Tier 4) resolves one; the
 * answer is kept per (workspace, user) for user_cache_ttl_s, so a channel
 * full of one person's messages costs one call. A failed lookup is cached
 * too (as "no name"): a deleted user or a missing users:read scope must not
 * cost a call per message. The cache is direct-mapped and bounded, so it
 * never grows with the workspace; a collision only costs a lookup.
 * Lookups are single-flight per user: webhooks of one person arrive
 * together and run on several workers, and the second waits for the
 * first's answer instead of spending its own call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "slack.h"

#define SLOTS 2048
#define KEY_LEN 64
#define WAIT_S 15 /* longest wait for another worker's lookup */

typedef struct slot {
    char key[KEY_LEN]; /* "<team>:<user>", "" = empty */
    char *name;        /* NULL: resolved to no name */
    int64_t expires_us;
    int pending; /* a worker is asking users.info for `key` */
} slot;

struct sl_user_cache {
    pthread_mutex_t lock;
    pthread_cond_t done; /* a pending lookup finished */
    slot slots[SLOTS];
};

typedef enum claim_result { CLAIM_HIT, CLAIM_OWNER, CLAIM_NONE } claim_result;

sl_user_cache *sl_users_new(void)
{
    sl_user_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c);
        return NULL;
    }
    if (pthread_cond_init(&c->done, NULL) != 0) {
        pthread_mutex_destroy(&c->lock);
        free(c);
        return NULL;
    }
    return c;
}

void sl_users_free(sl_user_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < SLOTS; i++)
        free(c->slots[i].name);
    pthread_cond_destroy(&c->done);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static size_t slot_of(const char *key)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *key; key++)
        h = (h ^ (unsigned char)*key) * 16777619u;
    return h % SLOTS;
}

/* CLAIM_HIT with *name (malloc'd copy or NULL) when the key is cached and
 * fresh; CLAIM_OWNER when the caller is to look it up (and then call
 * store); CLAIM_NONE when another key's lookup holds the slot, or this
 * key's outlasted WAIT_S: look it up without caching. */
static claim_result claim(sl_user_cache *c, const char *key, int64_t now, char **name)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_S;
    claim_result r = CLAIM_NONE;
    pthread_mutex_lock(&c->lock);
    slot *s = &c->slots[slot_of(key)];
    while (s->pending && strcmp(s->key, key) == 0)
        if (pthread_cond_timedwait(&c->done, &c->lock, &until) != 0)
            break;
    if (!s->pending && strcmp(s->key, key) == 0 && s->expires_us > now) {
        r = CLAIM_HIT;
        *name = s->name ? strdup(s->name) : NULL;
    } else if (!s->pending) {
        r = CLAIM_OWNER;
        snprintf(s->key, sizeof s->key, "%s", key);
        free(s->name);
        s->name = NULL;
        s->expires_us = 0;
        s->pending = 1;
    }
    pthread_mutex_unlock(&c->lock);
    return r;
}

/* The owner's answer: kept until expires_us (0: not kept, ask again). */
static void store(sl_user_cache *c, const char *key, const char *name, int64_t expires_us)
{
    char *copy = name ? strdup(name) : NULL;
    pthread_mutex_lock(&c->lock);
    slot *s = &c->slots[slot_of(key)];
    if (strcmp(s->key, key) == 0) {
        free(s->name);
        s->name = copy;
        copy = NULL;
        s->expires_us = expires_us;
        s->pending = 0;
    }
    pthread_cond_broadcast(&c->done);
    pthread_mutex_unlock(&c->lock);
    free(copy);
}

/* The name people see: display name, else real name, else the handle. */
static const char *name_of(json_object *user)
{
    static const char *const paths[] = {"profile.display_name", "real_name", "profile.real_name",
                                        "name"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        const char *v = ingest_json_str(user, paths[i]);
        if (v && *v)
            return v;
    }
    return NULL;
}

static int user_id_ok(const char *u)
{
    size_t n = strlen(u);
    if (n < 2 || n > 24)
        return 0;
    for (; *u; u++)
        if (!((*u >= 'A' && *u <= 'Z') || (*u >= '0' && *u <= '9')))
            return 0;
    return 1;
}

char *sl_user_name(slack_state *st, ingest_run *run, const sl_settings *set, const char *user)
{
    if (!st->conf->resolve_users || !user || !user_id_ok(user))
        return NULL;
    char key[KEY_LEN], *name = NULL;
    snprintf(key, sizeof key, "%s:%s", set->team_id[0] ? set->team_id : "-", user);
    int64_t now = st->api->now_us();
    claim_result cr = claim(st->users, key, now, &name);
    if (cr == CLAIM_HIT)
        return name;
    char query[64], err[256];
    snprintf(query, sizeof query, "user=%s", user);
    sl_call call = {.method = "users.info",
                    .query = query,
                    .per_minute = SL_TIER4,
                    .user_token = set->user_token};
    json_object *body = NULL;
    st->api->metric_add(st->m_user_lookups, 1);
    int rc = sl_api_call(st, run, set, &call, &body, err, sizeof err);
    /* A definite answer (a name, or none to be had) is kept; a transient
     * failure only releases the slot. */
    int definite = rc == INGEST_OK || rc == INGEST_ENOTFOUND || rc == INGEST_EAUTH;
    const char *n = body ? name_of(ingest_json_get(body, "user")) : NULL;
    if (cr == CLAIM_OWNER)
        store(st->users, key, n, definite ? now + st->conf->user_cache_ttl_s * 1000000 : 0);
    name = n ? strdup(n) : NULL;
    if (rc != INGEST_OK)
        st->api->log(st->ctx, run, INGEST_LOG_DEBUG, "user %s not resolved: %s", user, err);
    json_object_put(body);
    return name;
}
