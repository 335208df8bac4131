/* http_deadline.c — see http_deadline.h.
 *
 * evhttp 2.1 has no hook for "new connection", only one to make its
 * bufferevent. So each connection's state is created there and watches the
 * bufferevent's buffers (bytes in arm the deadline, bytes out clear it).
 * Its lifetime is tied to the connection through evhttp's close callback,
 * which can only be set once evhttp has put its connection object on the
 * bufferevent: that happens later in the same accept callback, so the
 * binding runs from an event activated here, holding a reference on the
 * bufferevent meanwhile in case evhttp gave up on the connection first. */
#include "http_deadline.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdlib.h>

#include "log.h"
#include "loop.h"

typedef struct deadline {
    struct bufferevent *bev;
    struct event *timer, *bind;
    struct evbuffer_cb_entry *on_in, *on_out;
    struct timeval limit;
    int armed;
} deadline;

static void unwatch(deadline *d)
{
    evbuffer_remove_cb_entry(bufferevent_get_input(d->bev), d->on_in);
    evbuffer_remove_cb_entry(bufferevent_get_output(d->bev), d->on_out);
}

static void deadline_free(deadline *d)
{
    loop_event_free(d->timer);
    loop_event_free(d->bind);
    free(d);
}

/* evhttp frees the connection (and the bufferevent right after). */
static void on_close(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    deadline *d = arg;
    unwatch(d);
    deadline_free(d);
}

/* Closes the connection the way evhttp's read timeout does; that runs
 * on_close, so nothing here may touch `d` after the trigger. */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    deadline *d = arg;
    log_debug("http: a request was not received and answered within its deadline; closing "
              "its connection");
    bufferevent_trigger_event(d->bev, BEV_EVENT_READING | BEV_EVENT_TIMEOUT, 0);
}

static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    (void)buf;
    deadline *d = arg;
    if (info->n_added > 0 && !d->armed) {
        d->armed = 1;
        event_add(d->timer, &d->limit);
    }
}

static void on_output(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    (void)buf;
    deadline *d = arg;
    if (info->n_added > 0 && d->armed) {
        d->armed = 0;
        event_del(d->timer);
    }
}

/* evhttp's callbacks carry its connection as their argument; freed
 * bufferevents have their callbacks cleared. */
static void on_bind(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    deadline *d = arg;
    struct bufferevent *bev = d->bev;
    bufferevent_event_cb eventcb = NULL;
    void *conn = NULL;
    bufferevent_getcb(bev, NULL, NULL, &eventcb, &conn);
    event_free(d->bind);
    d->bind = NULL;
    if (eventcb && conn) {
        evhttp_connection_set_closecb(conn, on_close, d);
    } else {
        unwatch(d);
        deadline_free(d);
    }
    bufferevent_decref(bev);
}

/* NULL makes evhttp fall back to a bufferevent of its own (no deadline). */
static struct bufferevent *make_bufferevent(struct event_base *base, void *arg)
{
    deadline *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->limit = *(const struct timeval *)arg;
    /* Not BEV_OPT_CLOSE_ON_FREE: evhttp shuts the socket down after freeing
     * the bufferevent and closes it itself when the option is absent. */
    d->bev = bufferevent_socket_new(base, -1, 0);
    d->timer = evtimer_new(base, on_deadline, d);
    d->bind = event_new(base, -1, 0, on_bind, d);
    if (d->bev) {
        d->on_in = evbuffer_add_cb(bufferevent_get_input(d->bev), on_input, d);
        d->on_out = evbuffer_add_cb(bufferevent_get_output(d->bev), on_output, d);
    }
    if (!d->bev || !d->timer || !d->bind || !d->on_in || !d->on_out) {
        log_warn("http: no request deadline for a new connection (out of memory)");
        if (d->bev)
            bufferevent_free(d->bev); /* its buffers, and our callbacks on them, go too */
        deadline_free(d);
        return NULL;
    }
    bufferevent_incref(d->bev);
    event_active(d->bind, EV_TIMEOUT, 1);
    return d->bev;
}

void http_deadline_attach(struct evhttp *http, const struct timeval *limit)
{
    evhttp_set_bevcb(http, make_bufferevent, (void *)limit);
}
