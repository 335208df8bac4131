/* rest_docs.c — what the daemon offers: its providers, its OpenAPI document
 * (etc/openapi.json, compiled in so it always matches this binary) and a
 * page that renders it. */
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpd.h"
#include "log.h"
#include "registry.h"
#include "rest_routes.h"

/* Generated from etc/openapi.json by host/rest_embed.py. */
extern const char rest_openapi_json[];
extern const size_t rest_openapi_json_len;

#define MAX_ASSET_BYTES (8u << 20)
#define CDN_BASE "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5"

/* ----------------------------------------------------------- providers */

static const char *auth_kind_name(ingest_auth_kind k)
{
    const char *name = instance_auth_kind_name(k);
    return name ? name : "none";
}

/* Every kind a connection may use (the auth_kind of POST /connections),
 * auth.kind first. */
static json_object *auth_kinds_json(const instance *inst)
{
    json_object *arr = json_object_new_array();
    unsigned kinds = instance_auth_kinds(inst);
    json_object_array_add(arr, json_object_new_string(auth_kind_name(inst->desc.auth.kind)));
    for (unsigned k = 0; k <= INGEST_AUTH_APP; k++)
        if ((kinds & INGEST_AUTH_BIT(k)) && k != (unsigned)inst->desc.auth.kind)
            json_object_array_add(arr, json_object_new_string(auth_kind_name(k)));
    return arr;
}

static json_object *str_or_null(const char *s) { return s ? json_object_new_string(s) : NULL; }

static json_object *scopes_json(const char *scopes)
{
    json_object *arr = json_object_new_array();
    for (const char *p = scopes; p && *p;) {
        size_t n = strcspn(p, " ");
        if (n)
            json_object_array_add(arr, json_object_new_string_len(p, (int)n));
        p += n + (p[n] == ' ');
    }
    return arr;
}

static json_object *streams_json(const ingest_plugin *d)
{
    json_object *arr = json_object_new_array();
    for (size_t i = 0; d->streams && i < d->n_streams; i++) {
        const ingest_stream *s =
            (const ingest_stream *)((const char *)d->streams + i * d->stream_size);
        if (!s->name)
            continue;
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(s->name));
        json_object_object_add(o, "primary_key", str_or_null(s->primary_key));
        json_object_object_add(o, "cursor_field", str_or_null(s->cursor_field));
        json_object_object_add(o, "incremental", json_object_new_boolean(s->cursor_field != NULL));
        json_object_array_add(arr, o);
    }
    return arr;
}

static json_object *provider_json(const instance *inst)
{
    const ingest_plugin *d = &inst->desc;
    json_object *o = json_object_new_object(), *auth = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(inst->name));
    json_object_object_add(o, "version", str_or_null(inst->version));
    json_object_object_add(o, "description", str_or_null(inst->description));
    json_object_object_add(auth, "kind", json_object_new_string(auth_kind_name(d->auth.kind)));
    json_object_object_add(auth, "scopes", scopes_json(d->auth.scopes));
    json_object_object_add(auth, "pkce", json_object_new_boolean(d->auth.pkce != 0));
    json_object_object_add(o, "auth", auth);
    json_object_object_add(o, "auth_kinds", auth_kinds_json(inst));
    json_object_object_add(o, "streams", streams_json(d));
    json_object_object_add(o, "webhooks",
                           json_object_new_boolean(d->webhook.scheme != INGEST_WEBHOOK_NONE &&
                                                   d->handle_webhook != NULL));
    json_object_object_add(o, "sync", json_object_new_boolean(d->sync != NULL));
    json_object_object_add(o, "connection_check",
                           json_object_new_boolean(d->check_connection != NULL));
    return o;
}

static void add_provider(instance *inst, void *arg)
{
    if (inst->status == INSTANCE_LOADED)
        json_object_array_add(arg, provider_json(inst));
}

static int by_name(const void *a, const void *b)
{
    json_object *const *x = a, *const *y = b;
    json_object *nx = NULL, *ny = NULL;
    json_object_object_get_ex(*x, "name", &nx);
    json_object_object_get_ex(*y, "name", &ny);
    return strcmp(json_object_get_string(nx), json_object_get_string(ny));
}

/* The registry is in memory: this answers on the loop thread. */
void rest_get_providers(rest_req *r)
{
    json_object *items = json_object_new_array();
    registry_each(r->h->plugins, add_provider, items);
    json_object_array_sort(items, by_name);
    json_object *out = json_object_new_object();
    json_object_object_add(out, "items", items);
    json_object_object_add(out, "next_cursor", NULL);
    rest_ok(r, 200, out);
    rest_reply(r);
}

/* ------------------------------------------------------------- OpenAPI */

static void send_static(rest_req *r, const char *content_type, const char *data, size_t len)
{
    struct evkeyvalq *headers = evhttp_request_get_output_headers(r->req);
    evhttp_add_header(headers, "Content-Type", content_type);
    evhttp_add_header(headers, "Cache-Control", "no-cache");
    struct evbuffer *buf = evbuffer_new();
    evbuffer_add(buf, data, len);
    evhttp_send_reply(r->req, 200, NULL, buf);
    evbuffer_free(buf);
}

void rest_get_openapi(rest_req *r)
{
    send_static(r, "application/json", rest_openapi_json, rest_openapi_json_len);
    rest_ok(r, 200, NULL); /* answered: only free the request */
    r->req = NULL;
    rest_reply(r);
}

/* ---------------------------------------------------------------- docs */

/* The page holds no data: it asks for the operator token, fetches
 * /openapi.json with it and renders it with swagger-ui, from this daemon's
 * local copy when docs_dir has one, else from a CDN. */
static const char docs_html[] =
    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<title>ingest-host operator API</title>\n"
    "<link rel=\"stylesheet\" href=\"/docs/swagger-ui.css\" "
    "onerror=\"this.onerror=null;this.href='" CDN_BASE "/swagger-ui.css'\">\n"
    "</head><body>\n"
    "<form id=\"auth\" style=\"font-family:sans-serif;margin:1em\">\n"
    "<label>Operator token <input id=\"token\" type=\"password\" autocomplete=\"off\"></label>\n"
    "<button type=\"submit\">Load API</button> <span id=\"msg\"></span></form>\n"
    "<div id=\"ui\"></div>\n<script>\n"
    "function load(src, fallback, done) {\n"
    "  var s = document.createElement('script'); s.src = src; s.onload = done;\n"
    "  s.onerror = function () { if (fallback) load(fallback, null, done); };\n"
    "  document.head.appendChild(s);\n}\n"
    "document.getElementById('auth').onsubmit = function (e) {\n"
    "  e.preventDefault();\n"
    "  var token = document.getElementById('token').value;\n"
    "  fetch('/openapi.json', {headers: {Authorization: 'Bearer ' + token}})\n"
    "    .then(function (r) { if (!r.ok) throw new Error('HTTP ' + r.status); return r.json(); })\n"
    "    .then(function (spec) {\n"
    "      load('/docs/swagger-ui-bundle.js', '" CDN_BASE "/swagger-ui-bundle.js', function () {\n"
    "        SwaggerUIBundle({spec: spec, dom_id: '#ui', requestInterceptor: function (q) {\n"
    "          q.headers.Authorization = 'Bearer ' + token; return q; }});\n"
    "      });\n"
    "    })\n"
    "    .catch(function (err) { document.getElementById('msg').textContent = String(err); });\n"
    "};\n</script>\n</body></html>\n";

void rest_get_docs(rest_req *r)
{
    send_static(r, "text/html; charset=utf-8", docs_html, sizeof docs_html - 1);
    rest_ok(r, 200, NULL);
    r->req = NULL;
    rest_reply(r);
}

typedef struct asset {
    char path[1024];
    const char *content_type;
    char *data;
    size_t len;
} asset;

static void asset_free(void *p)
{
    asset *a = p;
    if (a)
        free(a->data);
    free(a);
}

static void read_asset(rest_req *r)
{
    asset *a = r->ctx;
    FILE *f = fopen(a->path, "rb");
    long size = -1;
    if (f && fseek(f, 0, SEEK_END) == 0)
        size = ftell(f);
    if (size >= 0 && (unsigned long)size <= MAX_ASSET_BYTES && fseek(f, 0, SEEK_SET) == 0 &&
        (a->data = malloc((size_t)size + 1)) != NULL)
        a->len = fread(a->data, 1, (size_t)size, f);
    if (f)
        fclose(f);
    if (!a->data || a->len != (size_t)size)
        rest_fail(r, 404, "not_found", "no local copy of %s", r->arg[0]);
    else
        rest_ok(r, 200, NULL);
}

/* Loop: the file was read on a worker; send it. */
static void send_asset(rest_req *r)
{
    asset *a = r->ctx;
    if (r->status != 200)
        return;
    send_static(r, a->content_type, a->data, a->len);
    r->req = NULL;
}

void rest_get_docs_asset(rest_req *r)
{
    static const char *const names[][2] = {
        {"swagger-ui-bundle.js", "text/javascript"},
        {"swagger-ui.css", "text/css"},
    };
    const char *type = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !type; i++)
        if (strcmp(r->arg[0], names[i][0]) == 0)
            type = names[i][1];
    asset *a = type ? calloc(1, sizeof *a) : NULL;
    if (!a) {
        rest_fail(r, 404, "not_found", "no such document");
        rest_reply(r);
        return;
    }
    snprintf(a->path, sizeof a->path, "%s/%s", r->h->cfg->docs_dir, r->arg[0]);
    a->content_type = type;
    r->ctx = a;
    r->ctx_free = asset_free;
    r->on_loop = send_asset;
    rest_async(r, read_asset);
}
