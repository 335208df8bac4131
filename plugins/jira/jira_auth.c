/*
 * jira_auth.c — which site a connection reads, and whether it may.
 *
 * OAuth 2.0 (3LO): the host runs the authorization-code flow and refreshes
 * the (rotating) tokens; an access token is not tied to one site, so after
 * the code exchange (on_authorized) we ask
 *   GET {api_base_url}/oauth/token/accessible-resources
 *   -> [{"id": "<cloud id>", "url": "https://x.atlassian.net", "name": "x",
 *        "scopes": ["read:jira-work", ...], "avatarUrl": "..."}]
 * and keep the chosen site's cloud id and URL in the connection's config
 * (api->connection_config_merge): the connection's own site_url if it
 * named one, else the first resource granted a Jira scope. Every request
 * then goes to {api_base_url}/ex/jira/{cloud_id}/rest/api/3/....
 *
 * Basic auth (account email as username, API token as password) talks to
 * the connection's site_url directly. Both are checked with
 * GET /rest/api/3/myself before the connection is kept.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jira.h"

static int has_jira_scope(json_object *resource)
{
    json_object *scopes = ingest_json_get(resource, "scopes");
    for (size_t i = 0;
         json_object_is_type(scopes, json_type_array) && i < json_object_array_length(scopes);
         i++) {
        const char *s = json_object_get_string(json_object_array_get_idx(scopes, i));
        if (s && strstr(s, "jira"))
            return 1;
    }
    return 0;
}

/* Same site: scheme and host equal ignoring case and a trailing '/'. */
static int same_site(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    while (na > 0 && a[na - 1] == '/')
        na--;
    while (nb > 0 && b[nb - 1] == '/')
        nb--;
    return na == nb && strncasecmp(a, b, na) == 0;
}

/* The resource to use, or NULL. */
static json_object *choose(json_object *list, const char *site_url)
{
    for (size_t i = 0;
         json_object_is_type(list, json_type_array) && i < json_object_array_length(list); i++) {
        json_object *r = json_object_array_get_idx(list, i);
        const char *url = ingest_json_str(r, "url");
        if (!ingest_json_str(r, "id") || !url)
            continue;
        if (site_url ? same_site(url, site_url) : has_jira_scope(r))
            return r;
    }
    return NULL;
}

static int remember_site(jira_state *st, ingest_run *run, json_object *r)
{
    json_object *merge = json_object_new_object();
    if (!merge)
        return INGEST_ENOMEM;
    ingest_json_copy(merge, "cloud_id", r, "id");
    ingest_json_copy(merge, "site_url", r, "url");
    ingest_json_copy(merge, "site_name", r, "name");
    char *text = ingest_json_text(merge);
    json_object_put(merge);
    int rc = text ? st->api->connection_config_merge(run, text) : INGEST_ENOMEM;
    free(text);
    return rc;
}

int jira_on_authorized(ingest_run *run, void *state, const char *token_reply_json)
{
    jira_state *st = state;
    (void)token_reply_json; /* Atlassian's reply has nothing beyond the tokens */
    if (!INGEST_API_HAS(st->api, connection_config_merge)) {
        st->api->set_error(st->ctx, "the host cannot store the Jira site (no "
                                    "connection_config_merge)");
        return INGEST_EUNSUPPORTED;
    }
    jira_settings set;
    char err[256], url[700];
    int rc = jira_settings_load(st, run, 0, &set, err, sizeof err);
    if (rc != INGEST_OK) {
        st->api->set_error(st->ctx, "%s", err);
        return rc;
    }
    snprintf(url, sizeof url, "%s/oauth/token/accessible-resources", st->api_base);
    json_object *list = NULL;
    rc = jira_get_json(st, run, url, &list);
    json_object *r = rc == INGEST_OK ? choose(list, set.site_url) : NULL;
    if (rc == INGEST_OK && !r) {
        st->api->set_error(st->ctx, "the grant covers no Jira site%s%.200s",
                           set.site_url ? " named " : "", set.site_url ? set.site_url : "");
        rc = INGEST_EAUTH;
    } else if (rc == INGEST_OK) {
        rc = remember_site(st, run, r);
        st->api->log(st->ctx, run, INGEST_LOG_INFO, "OAuth connection reads %.200s (status %d)",
                     ingest_json_str(r, "url"), rc);
    } else {
        st->api->set_error(st->ctx, "accessible-resources could not be read (status %d)", rc);
    }
    json_object_put(list);
    jira_settings_free(&set);
    return rc;
}

/* GET /rest/api/3/myself with the new credentials. */
int jira_check_connection(ingest_run *run, void *state)
{
    jira_state *st = state;
    jira_settings set;
    char err[256], url[1200];
    int rc = jira_settings_load(st, run, 1, &set, err, sizeof err);
    if (rc != INGEST_OK) {
        st->api->log(st->ctx, run, INGEST_LOG_ERROR, "checking the connection: %s", err);
        st->api->set_error(st->ctx, "%s", err);
        return rc;
    }
    snprintf(url, sizeof url, "%s/rest/api/3/myself", set.rest_base);
    jira_settings_free(&set);
    ingest_http_request req = {.hdr = INGEST_ABI_HEADER(ingest_http_request),
                               .method = "GET",
                               .url = url,
                               .auth = INGEST_HTTP_AUTH_CONNECTION};
    ingest_http_response *resp = NULL;
    rc = st->api->http_request(run, &req, &resp);
    if (rc == INGEST_OK && resp->status != 200) {
        rc = resp->status == 403 ? INGEST_EAUTH : ingest_http_status_rc(resp->status);
        rc = rc == INGEST_OK ? INGEST_EIO : rc;
    }
    if (rc != INGEST_OK) {
        char why[320];
        jira_describe(resp, why, sizeof why);
        st->api->set_error(st->ctx, "checking the connection at Jira failed: %s", why);
        st->api->log(st->ctx, run, INGEST_LOG_WARN, "checking the connection at Jira failed: %s",
                     why);
    }
    st->api->http_response_free(resp);
    return rc;
}
