/* oauth_refresh.h — keeps the access tokens of connections fresh: OAuth2
 * connections by the refresh grant, app connections (INGEST_AUTH_APP) by
 * the plugin's mint_token.
 *
 * Applies to connections whose auth kind (as their plugin uses it, see
 * instance_connection_auth) is oauth2, of plugins that accept
 * INGEST_AUTH_OAUTH2 (auth.kind or auth_kinds_also) with a token_url, and
 * to connections of kind app. A connection's tokens live in its encrypted
 * secrets (fields "access_token", "refresh_token"); its
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
 * An app connection's token is minted by calling the plugin's mint_token on
 * the run that needs it, under the same single-flight: one mint per
 * connection at a time, the others wait for its outcome. mint_token
 * returning INGEST_EAUTH (the provider refused the app credentials) marks
 * the connection needs_reauth with a reason, like invalid_grant.
 *
 * Connections being validated by REST POST /connections (status 'disabled',
 * reason 'validating') may renew too: the check is what needs the first
 * token of an app connection.
 *
 * Metrics: ingest_token_refreshes_total{provider, kind="oauth2|app",
 * outcome="ok|failed|invalid_grant"}; invalid_grant counts every renewal
 * refused for good (the connection became needs_reauth), app ones included.
 * Nothing here logs or returns a token or a client secret. */
#ifndef HOSTD_OAUTH_REFRESH_H
#define HOSTD_OAUTH_REFRESH_H

#include <stddef.h>
#include <stdint.h>

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

/* The same for the app connection of `run` (its plugin's mint_token is
 * called with this run when a mint is due): mint when no access token is
 * stored or it expires within the threshold, or unconditionally when
 * `force` (after a 401); a mint that succeeded less than 10 s ago satisfies
 * a forced call too. INGEST_OK also when the run's connection is not of
 * kind app. INGEST_EAUTH: refused for good, the connection is now
 * needs_reauth (or was not active); INGEST_EIO when mint_token said OK but
 * stored no access_token; otherwise mint_token's own failure status.
 * Workers only. */
int oauth_ensure_minted(hostd *h, ingest_run *run, int force, char *err, size_t err_len);

/* Whether a token expiring at expires_us (unix µs; 0 = unknown) expires
 * within the threshold: a cheap check on a cached expiry before asking the
 * store. */
int oauth_token_due(const hostd *h, int64_t expires_us);

#endif
