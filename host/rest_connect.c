/* rest_connect.c — the OAuth2 authorization code flow (RFC 6749 4.1, PKCE
 * RFC 7636). POST /connect/{provider} hands out the provider's authorize
 * URL with a `state` sealed by the daemon's keyring; the state carries the
 * tenant, provider, expiry, a nonce and the PKCE verifier, so it needs no
 * table: only this daemon (or one with the same key) can read or forge it,
 * and the verifier never reaches the browser in clear. The callback opens
 * it, exchanges the code at the token endpoint on a worker and stores the
 * connection with its tokens encrypted. */
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "rest_connections.h"
#include "rest_cursor.h"
#include "rest_routes.h"
#include "util.h"

#define STATE_TTL_S 600
#define EXCHANGE_TIMEOUT_MS 30000L
#define MAX_TOKEN_REPLY (1u << 20)
#define MAX_STATE_EXTRA 2048 /* name + config carried through the state */

static const char *host_or(const char *configured, const char *declared)
{
    return configured && *configured ? configured : declared;
}

static char *random_b64url(size_t bytes)
{
    unsigned char buf[64];
    if (bytes > sizeof buf || RAND_bytes(buf, (int)bytes) != 1)
        return NULL;
    return rest_b64url_encode(buf, bytes);
}

/* code_challenge = base64url(SHA-256(verifier)), method S256. */
static char *pkce_challenge(const char *verifier)
{
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)verifier, strlen(verifier), digest);
    return rest_b64url_encode(digest, sizeof digest);
}

/* ---------------------------------------------------------------- start */

typedef struct authorize {
    const char *url, *client_id, *redirect_uri, *scopes, *state, *challenge;
} authorize;

static int append(CURLU *u, const char *key, const char *value)
{
    if (!value || !*value)
        return 0;
    char *pair = NULL;
    if (asprintf(&pair, "%s=%s", key, value) < 0)
        return -1;
    CURLUcode rc = curl_url_set(u, CURLUPART_QUERY, pair, CURLU_APPENDQUERY | CURLU_URLENCODE);
    free(pair);
    return rc == CURLUE_OK ? 0 : -1;
}

static char *authorize_url(const authorize *a)
{
    CURLU *u = curl_url();
    char *out = NULL, *text = NULL;
    int ok = u && curl_url_set(u, CURLUPART_URL, a->url, 0) == CURLUE_OK &&
             append(u, "response_type", "code") == 0 && append(u, "client_id", a->client_id) == 0 &&
             append(u, "redirect_uri", a->redirect_uri) == 0 &&
             append(u, "scope", a->scopes) == 0 && append(u, "state", a->state) == 0 &&
             append(u, "code_challenge", a->challenge) == 0 &&
             append(u, "code_challenge_method", a->challenge ? "S256" : NULL) == 0 &&
             curl_url_get(u, CURLUPART_URL, &text, 0) == CURLUE_OK;
    if (ok)
        out = strdup(text);
    curl_free(text);
    curl_url_cleanup(u);
    return out;
}

static char *redirect_uri(rest_req *r)
{
    const hostd_config *cfg = r->h->cfg;
    char *out = NULL;
    int n = cfg->public_url[0]
                ? asprintf(&out, "%s/connect/%s/callback", cfg->public_url, r->inst->name)
                : asprintf(&out, "http://%s/connect/%s/callback", cfg->listen, r->inst->name);
    return n < 0 ? NULL : out;
}

/* The sealed state: who asked, for what, until when, and the verifier. */
static char *make_state(rest_req *r, const char *verifier, const char *redirect, int64_t expires)
{
    char nonce_buf[32];
    char *nonce = random_b64url(16);
    snprintf(nonce_buf, sizeof nonce_buf, "%s", nonce ? nonce : "");
    free(nonce);
    json_object *s = json_object_new_object(), *v = NULL;
    json_object_object_add(s, "p", json_object_new_string(r->inst->name));
    json_object_object_add(s, "t", json_object_new_string(r->tenant));
    json_object_object_add(s, "x", json_object_new_int64(expires));
    json_object_object_add(s, "n", json_object_new_string(nonce_buf));
    json_object_object_add(s, "r", json_object_new_string(redirect));
    if (verifier)
        json_object_object_add(s, "v", json_object_new_string(verifier));
    if (r->body && json_object_object_get_ex(r->body, "name", &v))
        json_object_object_add(s, "name", json_object_get(v));
    if (r->body && json_object_object_get_ex(r->body, "config", &v))
        json_object_object_add(s, "config", json_object_get(v));
    const char *plain = json_object_to_json_string_ext(s, JSON_C_TO_STRING_PLAIN);
    char *sealed = rest_seal(r->kr, "oauth-state", r->inst->name, plain);
    json_object_put(s);
    return nonce_buf[0] ? sealed : (free(sealed), NULL);
}

static int check_start_body(rest_req *r)
{
    static const char *const keys[] = {"name", "config", NULL};
    json_object *v = NULL;
    if (!r->body)
        return 0;
    if (rest_body_keys(r, keys) < 0)
        return -1;
    if (json_object_object_get_ex(r->body, "name", &v) &&
        (!json_object_is_type(v, json_type_string) || json_object_get_string_len(v) > 200)) {
        rest_bad_param(r, "name", "name must be a string of at most 200 characters");
        return -1;
    }
    if (json_object_object_get_ex(r->body, "config", &v) &&
        (!json_object_is_type(v, json_type_object) ||
         strlen(json_object_to_json_string(v)) > MAX_STATE_EXTRA)) {
        rest_bad_param(r, "config", "config must be an object of at most %d bytes",
                       MAX_STATE_EXTRA);
        return -1;
    }
    return 0;
}

static int oauth_plugin(rest_req *r)
{
    if (!rest_plugin(r, r->arg[0], 404))
        return -1;
    /* OAuth2 may be one of several kinds the plugin accepts (auth_kinds_also). */
    if (!instance_accepts_auth(r->inst, INGEST_AUTH_OAUTH2)) {
        rest_fail(r, 409, "not_oauth2",
                  "provider %s does not use OAuth2; create its connections with "
                  "POST /connections",
                  r->inst->name);
        return -1;
    }
    if (!r->inst->conf->host.oauth_client_id) {
        rest_fail(r, 503, "oauth_not_configured",
                  "OAuth is not configured for %s: set plugins.%s.oauth_client_id", r->inst->name,
                  r->inst->name);
        return -1;
    }
    return 0;
}

static void start_answer(rest_req *r, const authorize *a, int64_t expires)
{
    char *url = authorize_url(a);
    if (!url) {
        rest_fail(r, 500, "bad_authorize_url", "the authorization endpoint of %s is not a URL",
                  r->inst->name);
        return;
    }
    char when[32];
    util_format_time(expires * 1000000, when);
    json_object *out = json_object_new_object();
    json_object_object_add(out, "authorize_url", json_object_new_string(url));
    json_object_object_add(out, "state", json_object_new_string(a->state));
    json_object_object_add(out, "redirect_uri", json_object_new_string(a->redirect_uri));
    json_object_object_add(out, "expires_at", json_object_new_string(when));
    rest_ok(r, 200, out);
    free(url);
}

/* Everything here is in memory: it answers on the loop thread. */
void rest_connect_start(rest_req *r)
{
    if (oauth_plugin(r) < 0 || check_start_body(r) < 0) {
        rest_reply(r);
        return;
    }
    const ingest_plugin *d = &r->inst->desc;
    const plugin_host_conf *hc = &r->inst->conf->host;
    int64_t expires = util_now_us() / 1000000 + STATE_TTL_S;
    char *verifier = d->auth.pkce ? random_b64url(32) : NULL;
    char *challenge = verifier ? pkce_challenge(verifier) : NULL;
    char *redirect = redirect_uri(r);
    char *state =
        redirect && (verifier || !d->auth.pkce) ? make_state(r, verifier, redirect, expires) : NULL;
    authorize a = {host_or(hc->oauth_authorize_url, d->auth.authorize_url),
                   hc->oauth_client_id,
                   redirect,
                   d->auth.scopes,
                   state,
                   challenge};
    if (!state || (d->auth.pkce && !challenge))
        rest_fail(r, 503, "busy", "out of memory");
    else if (!a.url)
        rest_fail(r, 500, "bad_authorize_url", "%s declares no authorization endpoint",
                  r->inst->name);
    else
        start_answer(r, &a, expires);
    crypto_wipe_free(verifier, 0);
    free(challenge);
    free(redirect);
    free(state);
    rest_reply(r);
}

/* ------------------------------------------------------------- callback */

typedef struct exchange {
    json_object *state; /* the opened state */
    char *code;
    char *reply;
    size_t reply_len;
} exchange;

static void exchange_free(void *p)
{
    exchange *x = p;
    if (!x)
        return;
    json_object *v = NULL;
    if (json_object_object_get_ex(x->state, "v", &v))
        OPENSSL_cleanse((void *)json_object_get_string(v), (size_t)json_object_get_string_len(v));
    json_object_put(x->state);
    crypto_wipe_free(x->code, 0);
    crypto_wipe_free(x->reply, x->reply_len);
    free(x);
}

static const char *state_str(const exchange *x, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(x->state, key, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    exchange *x = arg;
    size_t len = size * n;
    if (x->reply_len + len > MAX_TOKEN_REPLY)
        return 0;
    char *grown = realloc(x->reply, x->reply_len + len + 1);
    if (!grown)
        return 0;
    memcpy(grown + x->reply_len, data, len);
    x->reply = grown;
    x->reply_len += len;
    x->reply[x->reply_len] = '\0';
    return len;
}

/* "k=v&..." with every value escaped; NULL values are left out. */
static char *form(CURL *easy, const char *const *kv, size_t n)
{
    char *out = strdup("");
    for (size_t i = 0; out && i + 1 < n; i += 2) {
        if (!kv[i + 1])
            continue;
        char *esc = curl_easy_escape(easy, kv[i + 1], 0), *next = NULL;
        if (!esc || asprintf(&next, "%s%s%s=%s", out, *out ? "&" : "", kv[i], esc) < 0)
            next = NULL;
        curl_free(esc);
        crypto_wipe_free(out, 0);
        out = next;
    }
    return out;
}

static long post_token_request(rest_req *r, exchange *x, char *errbuf)
{
    const plugin_host_conf *hc = &r->inst->conf->host;
    const char *url = host_or(hc->oauth_token_url, r->inst->desc.auth.token_url);
    CURL *easy = curl_easy_init();
    const char *kv[] = {
        "grant_type",    "authorization_code",    "code",          x->code,
        "redirect_uri",  state_str(x, "r"),       "client_id",     hc->oauth_client_id,
        "client_secret", hc->oauth_client_secret, "code_verifier", state_str(x, "v")};
    char *body = easy ? form(easy, kv, sizeof kv / sizeof kv[0]) : NULL;
    struct curl_slist *hdrs = curl_slist_append(NULL, "Accept: application/json");
    long status = 0;
    if (body && hdrs && url) {
        curl_easy_setopt(easy, CURLOPT_URL, url);
        curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, EXCHANGE_TIMEOUT_MS);
        curl_easy_setopt(easy, CURLOPT_USERAGENT, "ingest-hostd/" HOSTD_VERSION);
        curl_easy_setopt(easy, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(easy, CURLOPT_WRITEDATA, x);
        curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
        if (curl_easy_perform(easy) == CURLE_OK)
            curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    }
    curl_slist_free_all(hdrs);
    crypto_wipe_free(body, 0);
    curl_easy_cleanup(easy);
    return status;
}

/* A short, safe word from the provider's error reply (never a token). */
static void provider_error(const exchange *x, char *out, size_t len)
{
    json_object *o = x->reply ? json_tokener_parse(x->reply) : NULL, *e = NULL;
    const char *word = o && json_object_object_get_ex(o, "error", &e) ? json_object_get_string(e)
                                                                      : "no error code";
    size_t n = 0;
    for (const char *p = word; *p && n + 1 < len && n < 64; p++)
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' || *p == '-' ||
            (*p >= '0' && *p <= '9'))
            out[n++] = *p;
    out[n] = '\0';
    json_object_put(o);
}

static json_object *token_secrets(json_object *reply, long long *expires_in)
{
    json_object *access = NULL, *refresh = NULL, *exp = NULL;
    if (!json_object_object_get_ex(reply, "access_token", &access) ||
        !json_object_is_type(access, json_type_string) || json_object_get_string_len(access) == 0)
        return NULL;
    json_object *secrets = json_object_new_object();
    json_object_object_add(secrets, "access_token", json_object_get(access));
    if (json_object_object_get_ex(reply, "refresh_token", &refresh) &&
        json_object_is_type(refresh, json_type_string))
        json_object_object_add(secrets, "refresh_token", json_object_get(refresh));
    *expires_in = json_object_object_get_ex(reply, "expires_in", &exp) &&
                          (json_object_is_type(exp, json_type_int) ||
                           json_object_is_type(exp, json_type_string))
                      ? json_object_get_int64(exp)
                      : -1;
    if (*expires_in <= 0)
        *expires_in = -1;
    return secrets;
}

static void store_tokens(rest_req *r, exchange *x)
{
    json_object *reply = json_tokener_parse(x->reply ? x->reply : "");
    long long expires_in = -1;
    json_object *secrets = reply ? token_secrets(reply, &expires_in) : NULL;
    json_object *config = NULL;
    json_object_object_get_ex(x->state, "config", &config);
    char id[37];
    if (!secrets)
        rest_fail(r, 502, "oauth_exchange_failed",
                  "the token endpoint of %s answered without an access_token", r->inst->name);
    else if (rest_connection_store(r, "oauth2", state_str(x, "name"), config, secrets, expires_in,
                                   0, x->reply, id) == 0) {
        json_object *out = json_object_new_object();
        json_object_object_add(out, "id", json_object_new_string(id));
        json_object_object_add(out, "provider", json_object_new_string(r->inst->name));
        json_object_object_add(out, "status", json_object_new_string("active"));
        rest_ok(r, 201, out);
    }
    json_object_put(secrets);
    json_object_put(reply);
}

static void exchange_work(rest_req *r)
{
    exchange *x = r->ctx;
    char errbuf[CURL_ERROR_SIZE] = "";
    long status = post_token_request(r, x, errbuf);
    if (status == 0) {
        log_warn("rest: OAuth code exchange with %s failed: %s", r->inst->name, errbuf);
        rest_fail(r, 502, "oauth_exchange_failed", "the token endpoint of %s did not answer",
                  r->inst->name);
    } else if (status < 200 || status > 299) {
        char word[72];
        provider_error(x, word, sizeof word);
        rest_fail(r, status >= 500 ? 502 : 400, "oauth_exchange_failed",
                  "the token endpoint of %s refused the code with %ld (%s)", r->inst->name, status,
                  word);
    } else {
        store_tokens(r, x);
    }
}

/* Open and check the state; the tenant comes from it. */
static int take_state(rest_req *r, exchange *x, const char *state)
{
    char *plain = rest_open(r->kr, "oauth-state", r->arg[0], state);
    x->state = plain ? json_tokener_parse(plain) : NULL;
    crypto_wipe_free(plain, 0);
    json_object *v = NULL;
    int64_t expires = json_object_object_get_ex(x->state, "x", &v) ? json_object_get_int64(v) : 0;
    const char *provider = state_str(x, "p"), *tenant = state_str(x, "t");
    if (!provider || strcmp(provider, r->arg[0]) != 0 || !util_is_uuid(tenant) ||
        !state_str(x, "r")) {
        rest_bad_param(r, "state", "state is not one this daemon handed out for %.64s", r->arg[0]);
        return -1;
    }
    if (expires < util_now_us() / 1000000) {
        rest_bad_param(r, "state", "state has expired; start again with POST /connect/%.64s",
                       r->arg[0]);
        return -1;
    }
    snprintf(r->tenant, sizeof r->tenant, "%s", tenant);
    return 0;
}

static int callback_params(rest_req *r, const char **code, const char **state)
{
    const char *error = rest_query(r, "error");
    if (error) {
        char word[72] = "";
        for (size_t i = 0, n = 0; error[i] && n < 64; i++)
            if ((error[i] >= 'a' && error[i] <= 'z') || error[i] == '_')
                word[n++] = error[i], word[n] = '\0';
        rest_fail(r, 400, "oauth_denied", "the provider did not authorize the connection (%s)",
                  word);
        return -1;
    }
    *code = rest_query(r, "code");
    *state = rest_query(r, "state");
    if (!*code || !**code || strlen(*code) > 4096) {
        rest_bad_param(r, "code", "code is required");
        return -1;
    }
    if (!*state || !**state) {
        rest_bad_param(r, "state", "state is required");
        return -1;
    }
    return 0;
}

void rest_connect_callback(rest_req *r)
{
    exchange *x = calloc(1, sizeof *x);
    r->ctx = x;
    r->ctx_free = exchange_free;
    const char *code = NULL, *state = NULL;
    if (!x)
        rest_fail(r, 503, "busy", "out of memory");
    else if (callback_params(r, &code, &state) == 0 && take_state(r, x, state) == 0 &&
             oauth_plugin(r) == 0) {
        x->code = strdup(code);
        if (x->code) {
            rest_async(r, exchange_work);
            return;
        }
        rest_fail(r, 503, "busy", "out of memory");
    }
    rest_reply(r);
}
