/* hostctl.c — ingest-hostctl: the operator's command line for a running
 * ingest-hostd, over its Unix control socket. */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "config.h"
#include "migrations.h"

#define EXIT_FAILED 1 /* the daemon answered: command failed or degraded */
#define EXIT_USAGE 2  /* bad arguments, or the daemon is unreachable */
#define EXIT_UNREACHABLE 2

typedef struct options {
    const char *socket_path;
    const char *config_path;
    int json;
    int timeout_s;
    /* connection-add */
    const char *tenant;
    const char *name;
    const char *auth_kind;
    const char *config_json;
    /* deadletters, replay */
    const char *provider;
    int all;
    int limit;
    /* sync, jobs */
    int full;
    const char *stream;
    const char *state;
    char **args; /* positional arguments after the command */
    int n_args;
} options;

typedef int (*print_fn)(json_object *result, const options *o);
/* Build the request for the daemon; NULL (with a message printed) on bad input. */
typedef json_object *(*request_fn)(const options *o);

typedef struct command {
    const char *name; /* as typed */
    const char *wire; /* "cmd" sent to the daemon; NULL = handled locally */
    const char *help;
    int n_args; /* positional arguments required; -1: zero or one */
    request_fn build;
    print_fn print;
} command;

static int print_list(json_object *result, const options *o);
static int print_reload(json_object *result, const options *o);
static int print_health(json_object *result, const options *o);
static int print_ping(json_object *result, const options *o);
static int print_connection(json_object *result, const options *o);
static int print_rotate(json_object *result, const options *o);
static json_object *build_connection_add(const options *o);
static int print_deadletters(json_object *result, const options *o);
static int print_replay(json_object *result, const options *o);
static json_object *build_deadletters(const options *o);
static json_object *build_replay(const options *o);
static json_object *build_sync(const options *o);
static int print_sync(json_object *result, const options *o);
static json_object *build_jobs(const options *o);
static int print_jobs(json_object *result, const options *o);
static json_object *build_connections(const options *o);
static int print_connections(json_object *result, const options *o);

static const command commands[] = {
    {"list", "list", "plugins: name, version, file, state, since, last error, counts", 0, NULL,
     print_list},
    {"reload", "reload", "re-read the config and rescan the plugins directory; says what changed",
     0, NULL, print_reload},
    {"health", "health", "daemon, database and plugins (exit 0 healthy, 1 degraded, 2 unreachable)",
     0, NULL, print_health},
    {"ping", "ping", "check that the daemon answers", 0, NULL, print_ping},
    {"connection-add", "connection_add",
     "PROVIDER --tenant UUID [--name N] [--auth-kind K] [--config-json JSON]: create a "
     "connection;\n"
     "           its secrets are read from stdin as a JSON object {\"field\": \"value\"}\n"
     "           (K: none, token, oauth2, basic, aws or app, one the plugin accepts;\n"
     "           default: the plugin's own kind; app takes app_id, installation_id and\n"
     "           private_key)",
     1, build_connection_add, print_connection},
    {"rotate-key", "rotate_key", "re-encrypt every stored secret under the current key", 0, NULL,
     print_rotate},
    {"deadletters", "deadletters",
     "[--provider P] [--all] [--limit N]: deliveries and jobs that kept failing, newest first\n"
     "           (--all includes those already replayed)",
     0, build_deadletters, print_deadletters},
    {"replay", "replay", "ID | --all: queue dead letters again (attempts reset)", -1, build_replay,
     print_replay},
    {"sync", "sync",
     "CONNECTION_ID [--full] [--stream S]: queue sync jobs now (every stream of the\n"
     "           connection's plugin by default); prints one job id per line",
     1, build_sync, print_sync},
    {"jobs", "jobs",
     "[--state S] [--provider P] [--limit N]: recent sync jobs, newest first (default 50)", 0,
     build_jobs, print_jobs},
    {"connections", "connections",
     "[--tenant T] [--provider P] [--state active|needs_reauth|disabled] [--limit N]:\n"
     "           connections, newest first, with their status and why (no secrets)",
     0, build_connections, print_connections},
    {"migrate", NULL, "apply database migrations now (talks to PostgreSQL, not the daemon)", 0,
     NULL, NULL},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
    fprintf(out, "usage: ingest-hostctl [-s SOCKET | -c CONFIG] [--json] [--timeout SECONDS] "
                 "COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-14s %s\n", commands[i].name, commands[i].help);
    fprintf(out, "\noptions:\n"
                 "  -s, --socket PATH   control socket (default: INGEST_CONTROL_SOCKET, then the\n"
                 "                      config file's control_socket)\n"
                 "  -c, --config FILE   read control_socket from this config file\n"
                 "  -j, --json          print the daemon's JSON answer\n"
                 "  -t, --timeout S     give up after S seconds (default 60)\n"
                 "exit status: 0 ok, 1 failed or degraded, 2 usage error or daemon unreachable\n");
}

/* The daemon's settings: -c FILE, else the default file if present, with
 * INGEST_* environment overrides applied (config_load does that). */
static hostd_config *load_config(const options *o)
{
    const char *path = o->config_path;
    if (!path && access(INGEST_DEFAULT_CONFIG, R_OK) == 0)
        path = INGEST_DEFAULT_CONFIG;
    char err[1024];
    hostd_config *cfg = config_load(path, err, sizeof err);
    if (!cfg)
        fprintf(stderr, "ingest-hostctl: %s\n", err);
    return cfg;
}

/* Socket path: -s, else INGEST_CONTROL_SOCKET / the config file. */
static char *resolve_socket(const options *o)
{
    if (o->socket_path)
        return strdup(o->socket_path);
    hostd_config *cfg = load_config(o);
    if (!cfg)
        return NULL;
    char *out = strdup(cfg->control_socket);
    config_free(cfg);
    return out;
}

static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static int connect_socket(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Read one line (the reply) within the timeout; malloc'd, NULL on failure. */
static char *read_line(int fd, int timeout_s)
{
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    time_t deadline = time(NULL) + timeout_s;
    while (buf) {
        int left = (int)(deadline - time(NULL));
        struct pollfd p = {fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, left * 1000) <= 0) {
            errno = ETIMEDOUT;
            break;
        }
        if (len + 1 >= cap) {
            char *grown = realloc(buf, cap * 2);
            if (!grown)
                break;
            buf = grown;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            errno = n == 0 ? ECONNRESET : errno;
            break;
        }
        len += (size_t)n;
        char *nl = memchr(buf, '\n', len);
        if (nl) {
            *nl = '\0';
            return buf;
        }
    }
    free(buf);
    return NULL;
}

/* Send `req` (consumed) and wait for the one-line answer. */
static json_object *request(const char *path, json_object *req, int timeout_s)
{
    int fd = connect_socket(path);
    if (fd < 0) {
        fprintf(stderr, "ingest-hostctl: daemon unreachable at %s: %s\n", path, strerror(errno));
        json_object_put(req);
        return NULL;
    }
    char *line = NULL;
    if (asprintf(&line, "%s\n", json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN)) < 0)
        line = NULL;
    json_object_put(req);
    char *reply = line && write_all(fd, line, strlen(line)) == 0 ? read_line(fd, timeout_s) : NULL;
    int saved = errno;
    free(line);
    close(fd);
    if (!reply) {
        fprintf(stderr, "ingest-hostctl: no answer from %s: %s\n", path, strerror(saved));
        return NULL;
    }
    json_object *obj = json_tokener_parse(reply);
    free(reply);
    if (!obj || !json_object_is_type(obj, json_type_object))
        fprintf(stderr, "ingest-hostctl: the daemon sent an unreadable answer\n");
    return obj;
}

static const char *str(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v) || !v)
        return NULL;
    return json_object_get_string(v);
}

static long long num(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static void print_json(json_object *o)
{
    printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                         JSON_C_TO_STRING_NOSLASHESCAPE));
}

static int print_list(json_object *result, const options *o)
{
    if (o->json) {
        print_json(result);
        return 0;
    }
    size_t n = json_object_array_length(result);
    printf("%-16s %-10s %-9s %-20s %8s %8s  %s\n", "NAME", "VERSION", "STATE", "SINCE", "TICKS",
           "SIGNALS", "FILE");
    for (size_t i = 0; i < n; i++) {
        json_object *p = json_object_array_get_idx(result, i);
        json_object *counts = json_object_object_get(p, "counts");
        char since[21];
        /* Seconds are enough on a terminal: 2026-01-02T03:04:05Z */
        snprintf(since, sizeof since, "%.19sZ", str(p, "since") ? str(p, "since") : "-");
        printf("%-16s %-10s %-9s %-20s %8lld %8lld  %s\n", str(p, "name"),
               str(p, "version") ? str(p, "version") : "-", str(p, "state"), since,
               num(counts, "ticks"), num(counts, "signals_stored"), str(p, "file"));
        if (str(p, "error"))
            printf("    error: %s\n", str(p, "error"));
    }
    if (n == 0)
        printf("(no plugins)\n");
    return 0;
}

static void print_names(json_object *report, const char *key, const char *label)
{
    json_object *arr = json_object_object_get(report, key);
    for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
        json_object *e = json_object_array_get_idx(arr, i);
        if (json_object_is_type(e, json_type_string)) {
            printf("%-10s %s\n", label, json_object_get_string(e));
        } else if (str(e, "from")) {
            printf("%-10s %s %s -> %s\n", label, str(e, "name"), str(e, "from"), str(e, "to"));
        } else if (str(e, "error")) {
            printf("%-10s %s: %s%s%s\n", label, str(e, "name"), str(e, "error"),
                   str(e, "kept_version") ? " (still serving version " : "",
                   str(e, "kept_version") ? str(e, "kept_version") : "");
            if (str(e, "kept_version"))
                printf(")\n");
        } else {
            printf("%-10s %s %s\n", label, str(e, "name"),
                   str(e, "version") ? str(e, "version") : "");
        }
    }
}

static int print_reload(json_object *result, const options *o)
{
    json_object *failed = json_object_object_get(result, "failed");
    int ok = json_object_get_boolean(json_object_object_get(result, "ok"));
    int bad = !ok || (failed && json_object_array_length(failed) > 0);
    if (o->json) {
        print_json(result);
        return bad ? EXIT_FAILED : 0;
    }
    if (!ok) {
        printf("reload refused, running configuration kept: %s\n", str(result, "error"));
        return EXIT_FAILED;
    }
    print_names(result, "added", "added");
    print_names(result, "replaced", "replaced");
    print_names(result, "removed", "removed");
    print_names(result, "failed", "failed");
    print_names(result, "unchanged", "unchanged");
    const char *restart = str(result, "restart_required");
    if (restart && *restart)
        printf("restart required for: %s\n", restart);
    return bad ? EXIT_FAILED : 0;
}

static int print_health(json_object *result, const options *o)
{
    int healthy = str(result, "status") && strcmp(str(result, "status"), "healthy") == 0;
    if (o->json) {
        print_json(result);
        return healthy ? 0 : EXIT_FAILED;
    }
    json_object *db = json_object_object_get(result, "database");
    json_object *daemon = json_object_object_get(result, "daemon");
    printf("status:   %s\n", str(result, "status"));
    printf("daemon:   %s (pid %lld, up %llds, version %s)\n", str(daemon, "status"),
           num(daemon, "pid"), num(daemon, "uptime_s"), str(daemon, "version"));
    printf("database: %s%s%s\n", str(db, "status"), str(db, "error") ? " — " : "",
           str(db, "error") ? str(db, "error") : "");
    json_object *plugins = json_object_object_get(result, "plugins");
    for (size_t i = 0; plugins && i < json_object_array_length(plugins); i++) {
        json_object *p = json_object_array_get_idx(plugins, i);
        printf("plugin %-12s %-9s %s%s%s\n", str(p, "name"), str(p, "status"),
               str(p, "version") ? str(p, "version") : "", str(p, "detail") ? " — " : "",
               str(p, "detail") ? str(p, "detail") : "");
        if (str(p, "circuit"))
            printf("       %-12s circuit %s (%lld consecutive failed job(s))\n", "",
                   str(p, "circuit"), num(p, "circuit_failures"));
    }
    return healthy ? 0 : EXIT_FAILED;
}

static int print_ping(json_object *result, const options *o)
{
    if (o->json)
        print_json(result);
    else
        printf("ingest-hostd %s answering (pid %lld)\n", str(result, "version"),
               num(result, "pid"));
    return 0;
}

/* Secrets come from stdin, never from the command line (visible in ps). */
static json_object *read_secrets(void)
{
    if (isatty(STDIN_FILENO))
        return json_object_new_object();
    json_tokener *tok = json_tokener_new();
    json_object *obj = NULL;
    char buf[4096];
    size_t n;
    enum json_tokener_error jerr = json_tokener_continue;
    while (jerr == json_tokener_continue && (n = fread(buf, 1, sizeof buf, stdin)) > 0) {
        obj = json_tokener_parse_ex(tok, buf, (int)n);
        jerr = json_tokener_get_error(tok);
    }
    if (jerr == json_tokener_continue) /* stdin ended: empty input means no secrets */
        obj = tok->char_offset == 0 ? json_object_new_object() : NULL;
    json_tokener_free(tok);
    if (!obj || !json_object_is_type(obj, json_type_object)) {
        fprintf(stderr, "ingest-hostctl: stdin must hold a JSON object of secrets, e.g. "
                        "{\"access_token\": \"...\"}\n");
        json_object_put(obj);
        return NULL;
    }
    return obj;
}

static json_object *build_connection_add(const options *o)
{
    if (!o->tenant) {
        fprintf(stderr, "ingest-hostctl: connection-add needs --tenant UUID\n");
        return NULL;
    }
    json_object *config = NULL;
    if (o->config_json && !(config = json_tokener_parse(o->config_json))) {
        fprintf(stderr, "ingest-hostctl: --config is not valid JSON\n");
        return NULL;
    }
    json_object *secrets = read_secrets();
    if (!secrets) {
        json_object_put(config);
        return NULL;
    }
    json_object *req = json_object_new_object();
    json_object_object_add(req, "provider", json_object_new_string(o->args[0]));
    json_object_object_add(req, "tenant_id", json_object_new_string(o->tenant));
    if (o->name)
        json_object_object_add(req, "name", json_object_new_string(o->name));
    if (o->auth_kind)
        json_object_object_add(req, "auth_kind", json_object_new_string(o->auth_kind));
    if (config)
        json_object_object_add(req, "config", config);
    json_object_object_add(req, "secrets", secrets);
    return req;
}

static int print_connection(json_object *result, const options *o)
{
    if (o->json)
        print_json(result);
    else
        printf("%s\n", str(result, "id"));
    return 0;
}

static int print_rotate(json_object *result, const options *o)
{
    long long failed = num(result, "failed");
    if (o->json)
        print_json(result);
    else
        printf("re-encrypted %lld secret(s) under key %s%s\n", num(result, "rotated"),
               str(result, "key_id"), failed ? "" : "; none left under older keys");
    if (failed && !o->json)
        printf("%lld secret(s) could not be decrypted with any configured key\n", failed);
    return failed ? EXIT_FAILED : 0;
}

static json_object *build_deadletters(const options *o)
{
    json_object *req = json_object_new_object();
    if (o->provider)
        json_object_object_add(req, "provider", json_object_new_string(o->provider));
    json_object_object_add(req, "include_replayed", json_object_new_boolean(o->all));
    json_object_object_add(req, "limit", json_object_new_int(o->limit > 0 ? o->limit : 100));
    return req;
}

static int print_deadletters(json_object *result, const options *o)
{
    json_object *list = json_object_object_get(result, "dead_letters");
    if (o->json) {
        print_json(list);
        return 0;
    }
    size_t n = list ? json_object_array_length(list) : 0;
    if (n == 0)
        printf("no dead letters\n");
    for (size_t i = 0; i < n; i++) {
        json_object *d = json_object_array_get_idx(list, i);
        printf("%s %-7s %-12s attempts %lld  %s%s\n    %s\n", str(d, "id"), str(d, "kind"),
               str(d, "provider"), num(d, "attempts"), str(d, "created_at"),
               str(d, "replayed_at") ? " (replayed)" : "", str(d, "error"));
    }
    return 0;
}

static json_object *build_replay(const options *o)
{
    if ((o->n_args == 1) == (o->all != 0)) {
        fprintf(stderr, "ingest-hostctl: replay needs a dead letter ID or --all (not both)\n");
        return NULL;
    }
    json_object *req = json_object_new_object();
    if (o->n_args == 1)
        json_object_object_add(req, "id", json_object_new_string(o->args[0]));
    return req;
}

static int print_replay(json_object *result, const options *o)
{
    if (o->json)
        print_json(result);
    else
        printf("replayed %lld dead letter(s)\n", num(result, "replayed"));
    return 0;
}

static json_object *build_sync(const options *o)
{
    json_object *req = json_object_new_object();
    json_object_object_add(req, "connection_id", json_object_new_string(o->args[0]));
    json_object_object_add(req, "full", json_object_new_boolean(o->full));
    if (o->stream)
        json_object_object_add(req, "stream", json_object_new_string(o->stream));
    return req;
}

/* One line per job: id, stream, kind, and whether it was already queued. */
static int print_sync(json_object *result, const options *o)
{
    json_object *list = json_object_object_get(result, "jobs");
    if (o->json) {
        print_json(list);
        return 0;
    }
    for (size_t i = 0; list && i < json_object_array_length(list); i++) {
        json_object *j = json_object_array_get_idx(list, i);
        int created = json_object_get_boolean(json_object_object_get(j, "created"));
        printf("%s %s %s%s\n", str(j, "id"), str(j, "stream"), str(j, "kind"),
               created ? "" : " (already queued or running)");
    }
    return 0;
}

static json_object *build_jobs(const options *o)
{
    static const char *const states[] = {"queued", "running",  "succeeded",
                                         "failed", "retrying", "dead"};
    int known = !o->state;
    for (size_t i = 0; !known && i < sizeof states / sizeof states[0]; i++)
        known = strcmp(o->state, states[i]) == 0;
    if (!known) {
        fprintf(stderr, "ingest-hostctl: --state must be one of queued, running, succeeded, "
                        "failed, retrying, dead\n");
        return NULL;
    }
    json_object *req = json_object_new_object();
    if (o->state)
        json_object_object_add(req, "state", json_object_new_string(o->state));
    if (o->provider)
        json_object_object_add(req, "provider", json_object_new_string(o->provider));
    json_object_object_add(req, "limit", json_object_new_int(o->limit > 0 ? o->limit : 50));
    return req;
}

static int print_jobs(json_object *result, const options *o)
{
    json_object *list = json_object_object_get(result, "jobs");
    if (o->json) {
        print_json(list);
        return 0;
    }
    size_t n = list ? json_object_array_length(list) : 0;
    if (n == 0) {
        printf("no jobs\n");
        return 0;
    }
    printf("%-36s %-36s %-12s %-36s %-12s %-11s %-9s %-5s %-19s %s\n", "ID", "TENANT", "PROVIDER",
           "CONNECTION", "STREAM", "KIND", "STATE", "TRIES", "RUN AFTER", "LAST ERROR");
    for (size_t i = 0; i < n; i++) {
        json_object *j = json_object_array_get_idx(list, i);
        char tries[24];
        snprintf(tries, sizeof tries, "%lld/%lld", num(j, "attempts"), num(j, "max_attempts"));
        printf("%-36s %-36s %-12s %-36s %-12s %-11s %-9s %-5s %.19s %s\n", str(j, "id"),
               str(j, "tenant_id"), str(j, "provider"),
               str(j, "connection_id") ? str(j, "connection_id") : "-", str(j, "stream"),
               str(j, "kind"), str(j, "state"), tries, str(j, "run_after"),
               str(j, "last_error") ? str(j, "last_error") : "");
    }
    return 0;
}

static json_object *build_connections(const options *o)
{
    json_object *req = json_object_new_object();
    if (o->tenant)
        json_object_object_add(req, "tenant_id", json_object_new_string(o->tenant));
    if (o->provider)
        json_object_object_add(req, "provider", json_object_new_string(o->provider));
    if (o->state)
        json_object_object_add(req, "status", json_object_new_string(o->state));
    json_object_object_add(req, "limit", json_object_new_int(o->limit > 0 ? o->limit : 100));
    return req;
}

static int print_connections(json_object *result, const options *o)
{
    json_object *list = json_object_object_get(result, "connections");
    if (o->json) {
        print_json(list);
        return 0;
    }
    size_t n = list ? json_object_array_length(list) : 0;
    if (n == 0) {
        printf("no connections\n");
        return 0;
    }
    printf("%-36s %-36s %-12s %-16s %-12s %-19s %s\n", "ID", "TENANT", "PROVIDER", "NAME", "STATUS",
           "TOKEN EXPIRES", "REASON");
    for (size_t i = 0; i < n; i++) {
        json_object *c = json_object_array_get_idx(list, i);
        printf("%-36s %-36s %-12s %-16s %-12s %-19.19s %s\n", str(c, "id"), str(c, "tenant_id"),
               str(c, "provider"), str(c, "name") ? str(c, "name") : "-", str(c, "status"),
               str(c, "token_expires_at") ? str(c, "token_expires_at") : "-",
               str(c, "status_reason") ? str(c, "status_reason") : "");
    }
    return 0;
}

/* migrate talks to PostgreSQL directly so a deploy can run it before start. */
static int run_migrate(const options *o)
{
    hostd_config *cfg = load_config(o);
    if (!cfg)
        return EXIT_USAGE;
    PGconn *conn = PQconnectdb(cfg->database_url);
    config_free(cfg);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "ingest-hostctl: cannot connect to the database: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return EXIT_UNREACHABLE;
    }
    PQsetNoticeProcessor(conn, ignore_notice, NULL);
    char err[1024];
    int applied = 0;
    int rc = migrations_apply(conn, &applied, err, sizeof err);
    PQfinish(conn);
    if (rc < 0) {
        fprintf(stderr, "ingest-hostctl: migration failed: %s\n", err);
        return EXIT_FAILED;
    }
    if (o->json) {
        json_object *out = json_object_new_object();
        json_object_object_add(out, "applied", json_object_new_int(applied));
        json_object_object_add(out, "version", json_object_new_int(migrations_latest()));
        print_json(out);
        json_object_put(out);
    } else
        printf("applied %d migration(s); schema at version %d\n", applied, migrations_latest());
    return 0;
}

/* Options are accepted before and after the command. */
static int parse_options(int argc, char **argv, options *o)
{
    static const struct option opts[] = {{"socket", required_argument, NULL, 's'},
                                         {"config", required_argument, NULL, 'c'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"tenant", required_argument, NULL, 'T'},
                                         {"name", required_argument, NULL, 'N'},
                                         {"auth-kind", required_argument, NULL, 'A'},
                                         {"config-json", required_argument, NULL, 'C'},
                                         {"provider", required_argument, NULL, 'P'},
                                         {"all", no_argument, NULL, 'a'},
                                         {"limit", required_argument, NULL, 'l'},
                                         {"full", no_argument, NULL, 'F'},
                                         {"stream", required_argument, NULL, 'S'},
                                         {"state", required_argument, NULL, 'E'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "s:c:jt:h", opts, NULL)) != -1) {
        switch (opt) {
        case 's':
            o->socket_path = optarg;
            break;
        case 'c':
            o->config_path = optarg;
            break;
        case 'j':
            o->json = 1;
            break;
        case 't':
            o->timeout_s = atoi(optarg);
            if (o->timeout_s <= 0) {
                fprintf(stderr, "ingest-hostctl: --timeout needs a positive number\n");
                return -1;
            }
            break;
        case 'T':
            o->tenant = optarg;
            break;
        case 'N':
            o->name = optarg;
            break;
        case 'A':
            o->auth_kind = optarg;
            break;
        case 'C':
            o->config_json = optarg;
            break;
        case 'P':
            o->provider = optarg;
            break;
        case 'a':
            o->all = 1;
            break;
        case 'l':
            o->limit = atoi(optarg);
            if (o->limit <= 0 || o->limit > 10000) {
                fprintf(stderr, "ingest-hostctl: --limit needs a number from 1 to 10000\n");
                return -1;
            }
            break;
        case 'F':
            o->full = 1;
            break;
        case 'S':
            o->stream = optarg;
            break;
        case 'E':
            o->state = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            return -1;
        }
    }
    return 0;
}

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    options o = {.timeout_s = 60};
    if (parse_options(argc, argv, &o) < 0) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const command *cmd = find_command(argv[optind]);
    if (!cmd) {
        fprintf(stderr, "ingest-hostctl: unknown command '%s'\n", argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
    }
    o.args = argv + optind + 1;
    o.n_args = argc - optind - 1;
    int n_ok = cmd->n_args < 0 ? o.n_args <= 1 : o.n_args == cmd->n_args;
    if (!n_ok) {
        int max = cmd->n_args < 0 ? 1 : cmd->n_args;
        if (o.n_args > max)
            fprintf(stderr, "ingest-hostctl: unexpected argument '%s'\n", o.args[max]);
        else
            fprintf(stderr, "ingest-hostctl: %s needs %d argument(s)\n", cmd->name, cmd->n_args);
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!cmd->wire)
        return run_migrate(&o);
    json_object *req = cmd->build ? cmd->build(&o) : json_object_new_object();
    if (!req)
        return EXIT_USAGE;
    json_object_object_add(req, "cmd", json_object_new_string(cmd->wire));
    char *path = resolve_socket(&o);
    if (!path) {
        json_object_put(req);
        return EXIT_USAGE;
    }
    json_object *reply = request(path, req, o.timeout_s);
    free(path);
    if (!reply)
        return EXIT_UNREACHABLE;
    int rc;
    json_object *ok = json_object_object_get(reply, "ok");
    if (!ok || !json_object_get_boolean(ok)) {
        const char *err = str(reply, "error");
        if (o.json)
            print_json(reply);
        fprintf(stderr, "ingest-hostctl: %s failed: %s\n", cmd->name, err ? err : "unknown error");
        rc = EXIT_FAILED;
    } else {
        rc = cmd->print(json_object_object_get(reply, "result"), &o);
    }
    json_object_put(reply);
    return rc;
}
