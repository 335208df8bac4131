/* oauth_refresh.h — keeps the OAuth2 access tokens of connections fresh.
 *
 * Applies to connections of plugins whose descriptor declares
 * INGEST_AUTH_OAUTH2 with a token_url. A connection's tokens live in its
 * encrypted secrets (fields "access_token", "refresh_token"); its
 * connections.token_expires_at says when the access token expires.
 *
 * A refresh POSTs grant_type=refresh_token (form-encoded) to the plugin's
 * token_url, or to the plugin group's host-reserved key oauth_token_url when
 * set, with the client credentials from that group (host-reserved keys
 * oauth_client_id and oauth_client_secret), on a libcurl handle of its own
 * (not the rate-limited plugin client; no redirects are followed, so the
 * client secret goes nowhere else). The new access token, the new refresh
 * token when the provider rotates it, and the new expiry are stored in one
 * transaction (secrets_put_with_expiry). Concurrent callers for one
 * connection share one refresh (single-flight): they wait for it and get
 * its outcome; a refresh that succeeded less than 10 s ago satisfies the
 * next caller, forced or not. A refresh the provider refuses for good (HTTP 400/401
 * with error invalid_grant, or unauthorized_client) marks the connection
 * status = 'needs_reauth' with a reason, after which it is no longer
 * scheduled and its jobs fail without retry — unless the stored refresh
 * token changed meanwhile (another daemon on the same database refreshed
 * first), which counts as success.
 *
 * Metrics: ingest_token_refreshes_total{provider, outcome="ok|failed|invalid_grant"}.
 * Nothing here logs or returns a token or a client secret. */
#ifndef HOSTD_OAUTH_REFRESH_H
#define HOSTD_OAUTH_REFRESH_H

#include <stddef.h>

#include "hostd.h"
#include "instance.h"

typedef struct oauth_refresher oauth_refresher;

/* Create the daemon's refresher (h->oauth); -1 on OOM. Any thread, before
 * workers run jobs. */
int oauth_refresher_start(hostd *h);
void oauth_refresher_free(hostd *h);

/* Make sure the connection's access token is usable before a run uses it:
 * refresh when it expires within the configured threshold
 * (oauth_refresh_threshold_s, default 300, read at start: a restart key), or
 * unconditionally when `force` (after the provider answered 401 to the
 * current token). token_expires_at NULL means unknown / non-expiring: then
 * only a forced call refreshes. A connection whose status is not 'active'
 * gives INGEST_EAUTH without asking the provider. Blocks on HTTP
 * and the store: workers only. `inst` is the connection's plugin instance,
 * borrowed for the call.
 *   INGEST_OK             token fresh (or not an OAuth2 connection)
 *   INGEST_EAUTH          refused for good; connection now needs_reauth
 *   INGEST_EAGAIN/EIO     transient failure (token endpoint or store down;
 *                         EIO also for other refusals, e.g. invalid_client)
 *   INGEST_EINVAL         oauth_client_id / token URL not configured
 *   INGEST_ENOTFOUND      no such connection of this plugin
 * err (may be NULL) gets a reason without secrets. */
int oauth_ensure_fresh(hostd *h, instance *inst, const char *connection_id, int force, char *err,
                       size_t err_len);

#endif
