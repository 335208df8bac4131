/* instance.h — one loaded generation of one plugin .so (or a failed attempt). */
#ifndef HOSTD_INSTANCE_H
#define HOSTD_INSTANCE_H

#include <stdatomic.h>
#include <stdint.h>

#include "hostd.h"
#include "ingest/plugin.h"
#include "plugin_config.h"

typedef enum {
    INSTANCE_LOADED,   /* serving: new work goes here */
    INSTANCE_FAILED,   /* refused: only the error is known */
    INSTANCE_DRAINING, /* replaced or removed: finishing in-flight work */
} instance_status;

typedef struct schedule schedule;

/* The host's side of ingest_ctx. Fields marked (reg) are read and written
 * under the registry lock; counters are atomics; the rest is fixed after load. */
struct ingest_ctx {
    hostd *host;
    char *name;
    char *file;      /* path in the plugins directory */
    char *copy_path; /* private copy that was dlopen()ed */
    char *version;
    char *description;
    char sha256[65];
    void *dl;
    ingest_plugin desc; /* host-sized copy; strings point into the .so */
    plugin_conf *conf;
    void *state;
    int initialized; /* init() succeeded: shutdown() is owed */
    int in_init;
    char init_error[512];

    instance_status status; /* (reg) */
    int64_t since_us;       /* (reg) */
    char *error;            /* (reg) last error, or NULL */
    int64_t drain_started_ms;
    int drain_warned; /* loop thread: "still draining" was logged */

    atomic_int inflight;
    atomic_ullong ticks, tick_failures, ticks_skipped, signals_emitted, signals_stored;

    schedule *schedules;
    ingest_metric *m_ticks, *m_tick_failures, *m_signals, *m_rejected;
    struct ingest_ctx *next; /* (reg) */
};
typedef struct ingest_ctx instance;

/* A placeholder recording why `file` could not be loaded. */
instance *instance_new_failed(hostd *h, const char *name, const char *file, const char *version,
                              const char *error);
/* Take / drop a reference that keeps the instance from being unloaded. */
void instance_acquire(instance *inst);
void instance_release(instance *inst);

/* Replace the (reg) error text; NULL clears it. Takes the registry lock. */
void instance_set_error(instance *inst, const char *fmt, ...) INGEST_PRINTF(2, 3);

/* Call shutdown() if owed, drop metrics and schedules, dlclose, remove the
 * private copy, free. The instance must be out of the registry and idle. */
void instance_destroy(instance *inst);

const char *instance_status_name(instance_status s);

/* The i-th stream of the plugin (i < desc.n_streams), read with the
 * descriptor's own element size; NULL when it has no name. Borrowed from
 * the loaded .so: valid while the instance is. */
const ingest_stream *instance_stream(const instance *inst, size_t i);
/* Whether the plugin declares a stream of that name. */
int instance_has_stream(const instance *inst, const char *name);

/* Auth kinds. A connection's kind is stored by name in connections.auth_kind:
 * "none", "token", "oauth2", "basic", "aws", "app". */
#define INSTANCE_AUTH_KNOWN (INGEST_AUTH_BIT(INGEST_AUTH_APP + 1) - 1u)

/* The stored name of a kind; NULL for a kind this host does not know. */
const char *instance_auth_kind_name(ingest_auth_kind kind);
/* The kind of a stored name: 0, or -1 for NULL or an unknown name. */
int instance_auth_kind_parse(const char *name, ingest_auth_kind *kind);
/* The kinds a connection of this plugin may use: auth.kind plus
 * auth_kinds_also, as a set of INGEST_AUTH_BIT()s. */
unsigned instance_auth_kinds(const instance *inst);
int instance_accepts_auth(const instance *inst, ingest_auth_kind kind);
/* Those kinds' names, comma-separated, auth.kind first ("token, oauth2"). */
void instance_auth_kinds_text(const instance *inst, char *out, size_t out_len);
/* The kind a connection whose stored auth_kind is `stored` uses with this
 * plugin: the stored one when the plugin accepts it. A plugin that declares
 * one kind only (no auth_kinds_also) always uses its auth.kind, as hosts
 * before ABI minor 2 did whatever the row said. INGEST_EUNSUPPORTED, with a
 * reason in err (may be NULL), when the plugin accepts several kinds but not
 * that one. */
int instance_connection_auth(const instance *inst, const char *stored, ingest_auth_kind *kind,
                             char *err, size_t err_len);

#endif
