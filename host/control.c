/* control.c — line-delimited JSON over a Unix stream socket, served on the
 * event loop. Slow commands (reload, health) finish asynchronously. */
#include "control.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "admin.h"
#include "health.h"
#include "log.h"
#include "registry.h"
#include "reload.h"
#include "sync_scheduler.h"

#define MAX_REQUEST_BYTES 65536

typedef struct client client;

struct control_server {
    hostd *h;
    char *path;
    struct evconnlistener *listener;
    client *clients;
};

struct client {
    control_server *cs;
    struct bufferevent *bev;
    int busy;   /* an async command is running for this client */
    int closed; /* peer went away while busy */
    client *next;
};

static void client_free(client *c)
{
    control_server *cs = c->cs;
    for (client **link = &cs->clients; *link; link = &(*link)->next) {
        if (*link == c) {
            *link = c->next;
            break;
        }
    }
    if (c->bev)
        bufferevent_free(c->bev);
    free(c);
}

static void client_close(client *c)
{
    if (c->busy) {
        /* The async command still holds c: drop the socket, free later. */
        if (c->bev)
            bufferevent_free(c->bev);
        c->bev = NULL;
        c->closed = 1;
        return;
    }
    client_free(c);
}

static void send_json(client *c, json_object *reply)
{
    if (!c->bev)
        return;
    const char *text = json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PLAIN);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add(out, text, strlen(text));
    evbuffer_add(out, "\n", 1);
}

static void reply_ok(client *c, json_object *result)
{
    json_object *r = json_object_new_object();
    json_object_object_add(r, "ok", json_object_new_boolean(1));
    json_object_object_add(r, "result", result);
    send_json(c, r);
    json_object_put(r);
}

static void reply_error(client *c, const char *fmt, ...) INGEST_PRINTF(2, 3);
static void reply_error(client *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_object *r = json_object_new_object();
    json_object_object_add(r, "ok", json_object_new_boolean(0));
    json_object_object_add(r, "error", json_object_new_string(msg));
    send_json(c, r);
    json_object_put(r);
}

static void on_read(struct bufferevent *bev, void *arg);

/* An async command finished: answer if the client is still there, then serve
 * any request it pipelined meanwhile. */
static void finish_async(client *c, json_object *result)
{
    c->busy = 0;
    if (c->closed) {
        json_object_put(result);
        client_free(c);
        return;
    }
    reply_ok(c, result);
    on_read(c->bev, c);
}

static void on_reload_done(json_object *report, void *arg)
{
    finish_async(arg, json_object_get(report));
}

static void on_health_done(json_object *report, void *arg) { finish_async(arg, report); }

static void cmd_list(client *c, json_object *req)
{
    (void)req;
    reply_ok(c, registry_list_json(c->cs->h->plugins));
}

static void cmd_reload(client *c, json_object *req)
{
    (void)req;
    c->busy = 1;
    reload_request(c->cs->h, on_reload_done, c);
}

static void cmd_health(client *c, json_object *req)
{
    (void)req;
    c->busy = 1;
    if (health_check_async(c->cs->h, on_health_done, c) < 0) {
        c->busy = 0;
        reply_error(c, "health check could not start: worker queue full");
    }
}

/* Run an admin action on a worker; answer when it is done. */
typedef struct admin_task {
    client *c;
    hostd *h;
    admin_fn fn;
    json_object *req;
    json_object *result;
    char err[512];
} admin_task;

static void admin_done(void *arg)
{
    admin_task *t = arg;
    if (t->result) {
        finish_async(t->c, t->result);
    } else {
        t->c->busy = 0;
        if (t->c->closed)
            client_free(t->c);
        else
            reply_error(t->c, "%s", t->err);
    }
    json_object_put(t->req);
    free(t);
}

static void admin_work(void *arg)
{
    admin_task *t = arg;
    t->result = t->fn(t->h, t->req, t->err, sizeof t->err);
    loop_post(t->h->mailbox, admin_done, t);
}

static void run_admin(client *c, json_object *req, admin_fn fn)
{
    admin_task *t = calloc(1, sizeof *t);
    if (!t) {
        reply_error(c, "out of memory");
        return;
    }
    *t = (admin_task){.c = c, .h = c->cs->h, .fn = fn, .req = json_object_get(req)};
    c->busy = 1;
    if (workers_submit(c->cs->h->workers, admin_work, t) < 0) {
        c->busy = 0;
        json_object_put(t->req);
        free(t);
        reply_error(c, "busy: the worker queue is full, try again");
    }
}

static void cmd_connection_add(client *c, json_object *req)
{
    run_admin(c, req, admin_connection_add);
}

static void cmd_rotate_key(client *c, json_object *req) { run_admin(c, req, admin_rotate_key); }
static void cmd_deadletters(client *c, json_object *req) { run_admin(c, req, admin_deadletters); }
static void cmd_replay(client *c, json_object *req) { run_admin(c, req, admin_replay); }
static void cmd_sync(client *c, json_object *req) { run_admin(c, req, sync_scheduler_admin_sync); }
static void cmd_jobs(client *c, json_object *req) { run_admin(c, req, sync_scheduler_admin_jobs); }
static void cmd_connections(client *c, json_object *req) { run_admin(c, req, admin_connections); }

static void cmd_ping(client *c, json_object *req)
{
    (void)req;
    json_object *r = json_object_new_object();
    json_object_object_add(r, "version", json_object_new_string(HOSTD_VERSION));
    json_object_object_add(r, "pid", json_object_new_int(getpid()));
    reply_ok(c, r);
}

typedef struct command {
    const char *name;
    void (*run)(client *c, json_object *req);
} command;

static const command commands[] = {
    {"list", cmd_list},
    {"reload", cmd_reload},
    {"health", cmd_health},
    {"ping", cmd_ping},
    {"connection_add", cmd_connection_add},
    {"rotate_key", cmd_rotate_key},
    {"deadletters", cmd_deadletters},
    {"replay", cmd_replay},
    {"sync", cmd_sync},
    {"jobs", cmd_jobs},
    {"connections", cmd_connections},
};

static void dispatch(client *c, const char *line)
{
    json_object *req = json_tokener_parse(line);
    json_object *cmd = NULL;
    if (!req || !json_object_object_get_ex(req, "cmd", &cmd) ||
        !json_object_is_type(cmd, json_type_string)) {
        reply_error(c, "bad request: expected a JSON object with a \"cmd\" string");
        json_object_put(req);
        return;
    }
    const char *name = json_object_get_string(cmd);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(commands[i].name, name) == 0) {
            commands[i].run(c, req);
            json_object_put(req);
            return;
        }
    }
    reply_error(c, "unknown command '%.64s'", name);
    json_object_put(req);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    client *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (!c->busy) {
        size_t len;
        char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
        if (!line) {
            if (evbuffer_get_length(in) > MAX_REQUEST_BYTES) {
                reply_error(c, "request too large");
                client_close(c);
            }
            return;
        }
        dispatch(c, line);
        free(line);
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        client_close(arg);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr, int len,
                      void *arg)
{
    (void)l;
    (void)addr;
    (void)len;
    control_server *cs = arg;
    client *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    c->cs = cs;
    c->bev = bufferevent_socket_new(cs->h->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) {
        close(fd);
        free(c);
        return;
    }
    c->next = cs->clients;
    cs->clients = c;
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* A socket file that no daemon answers on is stale and may be replaced. */
static int socket_in_use(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    close(fd);
    return rc == 0;
}

control_server *control_start(hostd *h, const char *path, char *err, size_t err_len)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        snprintf(err, err_len, "control_socket path is too long (max %zu bytes): %s",
                 sizeof sa.sun_path - 1, path);
        return NULL;
    }
    if (socket_in_use(path)) {
        snprintf(err, err_len, "control_socket %s is in use by another daemon", path);
        return NULL;
    }
    unlink(path);
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    control_server *cs = calloc(1, sizeof *cs);
    if (!cs || !(cs->path = strdup(path))) {
        free(cs);
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    cs->h = h;
    /* Create the socket file with 0660 from the start: no window where it is wider. */
    mode_t old_mask = umask(0117);
    cs->listener = evconnlistener_new_bind(h->base, on_accept, cs,
                                           LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16,
                                           (struct sockaddr *)&sa, sizeof sa);
    int saved = errno;
    umask(old_mask);
    if (!cs->listener) {
        snprintf(err, err_len, "cannot listen on control_socket %s: %s", path, strerror(saved));
        free(cs->path);
        free(cs);
        return NULL;
    }
    chmod(path, 0660);
    return cs;
}

void control_stop_accepting(control_server *cs)
{
    if (cs && cs->listener) {
        evconnlistener_free(cs->listener);
        cs->listener = NULL;
        unlink(cs->path);
    }
}

void control_free(control_server *cs)
{
    if (!cs)
        return;
    control_stop_accepting(cs);
    while (cs->clients) {
        client *c = cs->clients;
        if (c->busy)
            reload_cancel_waiter(cs->h, c);
        c->busy = 0;
        client_free(c);
    }
    free(cs->path);
    free(cs);
}
