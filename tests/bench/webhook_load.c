/*
 * webhook_load.c — an HTTP/1.1 load generator for ingest-hostd's webhook
 * ingress (and, for a baseline, any GET route) on loopback. One thread, one
 * libevent loop, C keep-alive connections with at most one request in flight
 * each (no pipelining); a hand-rolled request writer and a response parser
 * that reads the status line, the headers (Content-Length, Connection) and
 * the body.
 *
 *   webhook_load --target 127.0.0.1:8080 [options]
 *
 *   --target HOST:PORT    the daemon (IPv4 literal)
 *   --path PATH           default /webhooks/hook_hmac
 *   --method POST|GET     default POST; POST sends a signed webhook, GET sends
 *                         a bare request (--path /healthz for the baseline)
 *   --secret S            HMAC-SHA256 key (POST; required for POST)
 *   --mode closed|open    default closed
 *   --connections C       default 64 (closed), 256 (open)
 *   --requests N          closed: requests in all (default 100000)
 *   --rate R              open: requests per second, scheduled at fixed
 *                         intervals whatever the answers
 *   --duration S          open: seconds of schedule (default 20)
 *   --drain S             seconds to wait for outstanding answers at the end
 *                         (default 30); those still missing count as errors
 *   --pad BYTES           padding in the body, default 150 (body ~200 bytes)
 *   --events N            NDJSON bodies of N events (one line each, padded as
 *                         above), Content-Type application/x-ndjson, for the
 *                         HTTP push source; also sent: Idempotency-Key (=
 *                         X-Hook-Delivery) and X-Signature-256 (= the HMAC)
 *   --key-prefix P        X-Hook-Delivery is "P-<seq>" (default "wl")
 *   --seq-start N         first seq (default 0)
 *   --acked-file F        write the X-Hook-Delivery of every 2xx answer, one
 *                         per line
 *   --rss-pid PID         sample /proc/PID/status VmRSS every --rss-every 2xx
 *   --rss-every N         answers (default 100000); printed to stderr as
 *                         "webhook_load: rss ok=N vmrss_kb=K"
 *   --progress            a line on stderr every second (answers in that
 *                         second, worst 2xx latency in it)
 *   --timeout S           per-request read timeout (default 60)
 *   --prime-path P        GET sent once on every connection before the clock
 *                         starts, not counted (default /healthz; must answer
 *                         200)
 *
 * Each POST body is unique: {"event":"bench","seq":N,"pad":"xxx..."}, signed
 * X-Hook-Signature: sha256=<hex HMAC-SHA256(secret, body)>, with a unique
 * X-Hook-Delivery, Content-Type: application/json.
 *
 * A request that meets a keep-alive connection the daemon has just closed as
 * idle (EOF before any byte of the answer) goes out once more on a new
 * connection, as HTTP clients do for requests with an idempotency key; its
 * latency still counts from its first start, and "resent" counts them.
 *
 * Connections are opened in waves of 64 and each is primed with one GET
 * (--prime-path) before the clock starts, so none is still waiting in the
 * daemon's listen backlog when the measured requests go out.
 *
 * closed  each connection sends its next request when the previous answer
 *         has arrived (saturation); latency from the actual send.
 * open    request i is due at start + i/R. A due request goes out on an idle
 *         connection at once, or waits (in order) for the next connection to
 *         become idle; its latency runs from the time it was DUE, not sent,
 *         so a slow answer cannot hide the requests it delayed (coordinated
 *         omission). Requests sent more than 1 ms after they were due are
 *         counted: "late_conn" when every connection was busy (use more
 *         connections), "late" otherwise (the generator itself — timer,
 *         CPU — was slow); "lag_max_ms" is the worst delay, and behind=1 is
 *         printed when either count is not 0.
 *
 * Output: one line on stdout, key=value pairs:
 *   mode method path conns sent done ok_2xx s202 s200 non2xx status=CODE:N,..
 *   errors elapsed_s rate (2xx answers per second) p50_ms p90_ms p99_ms
 *   max_ms (latency of 2xx answers), and for open: offered planned late
 *   late_conn lag_max_ms behind; last cpu_s, the generator's own CPU seconds.
 *   Exit status 0 if the run completed (whatever the answers), 1 on a
 *   usage or setup error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

enum { MODE_CLOSED, MODE_OPEN };
enum { P_STATUS, P_HEADERS, P_BODY };

typedef struct bench bench;

typedef struct conn {
    bench *b;
    int idx;
    struct bufferevent *bev;
    int connected;
    int busy;      /* a request is in flight */
    uint64_t seq;  /* its seq */
    int64_t t0_us; /* latency origin: send time (closed) or due time (open) */
    int pstate;    /* response parser */
    int status;
    long remaining; /* body bytes still to read */
    int close_after;
    int in_idle; /* listed in bench.idle */
    int resend;  /* the in-flight request goes again once reconnected */
    int retried; /* the in-flight request is already going for the second time */
    int priming; /* the in-flight request is the uncounted priming GET */
} conn;

struct bench {
    struct event_base *base;
    struct sockaddr_in addr;
    char hostport[64];
    const char *path, *method, *secret, *key_prefix;
    int is_post, mode, n_conns, pad, progress, events;
    uint64_t requests, seq_start;
    double rate, duration, drain, timeout;
    /* counters */
    uint64_t next;    /* index of the next request to send */
    uint64_t planned; /* requests in the run */
    uint64_t sent, done, ok, s202, s200, non2xx, errors, late, late_conn, resent;
    int64_t no_idle_us; /* last time a due request found no idle connection */
    uint64_t status_count[600];
    int64_t lag_max_us;
    uint32_t *lat_us; /* latency of 2xx answers, microseconds */
    uint64_t n_lat;
    int64_t start_us, end_us;
    int in_flight;
    int opened, primed; /* connections opened / primed before the start */
    const char *prime_path;
    int started, finished;
    conn *conns;
    int *idle; /* stack of idle connection indices */
    int n_idle;
    struct event *tick, *progress_ev, *deadline_ev;
    /* signing */
    EVP_MAC *mac;
    EVP_MAC_CTX *mac_ctx;
    char *body_buf, *req_buf, *pad_buf;
    size_t req_cap;
    /* outputs */
    FILE *acked;
    int rss_pid;
    uint64_t rss_every, rss_next;
    uint64_t prog_last_done;
    int64_t prog_max_us; /* worst 2xx latency since the last progress line */
};

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void die(const char *msg)
{
    fprintf(stderr, "webhook_load: %s\n", msg);
    exit(1);
}

static void conn_open(conn *c);

/* ---------------------------------------------------------------- output */

static long vmrss_kb(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_ms(const uint32_t *v, uint64_t n, double p)
{
    if (n == 0)
        return 0;
    /* nearest rank */
    uint64_t rank = (uint64_t)(p / 100.0 * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return v[rank - 1] / 1000.0;
}

static void report(bench *b)
{
    double elapsed = (double)(b->end_us - b->start_us) / 1e6;
    qsort(b->lat_us, b->n_lat, sizeof *b->lat_us, cmp_u32);
    char statuses[1024] = "";
    size_t off = 0;
    for (int s = 0; s < 600; s++)
        if (b->status_count[s] && (s < 200 || s >= 300) && off < sizeof statuses - 32)
            off += (size_t)snprintf(statuses + off, sizeof statuses - off, "%s%d:%llu",
                                    off ? "," : "", s, (unsigned long long)b->status_count[s]);
    printf("mode=%s method=%s path=%s conns=%d sent=%llu done=%llu ok_2xx=%llu s202=%llu s200=%llu"
           " non2xx=%llu status=%s errors=%llu resent=%llu elapsed_s=%.3f rate=%.1f"
           " p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f",
           b->mode == MODE_OPEN ? "open" : "closed", b->method, b->path, b->n_conns,
           (unsigned long long)b->sent, (unsigned long long)b->done, (unsigned long long)b->ok,
           (unsigned long long)b->s202, (unsigned long long)b->s200, (unsigned long long)b->non2xx,
           statuses[0] ? statuses : "-", (unsigned long long)b->errors,
           (unsigned long long)b->resent, elapsed, elapsed > 0 ? (double)b->ok / elapsed : 0,
           pct_ms(b->lat_us, b->n_lat, 50), pct_ms(b->lat_us, b->n_lat, 90),
           pct_ms(b->lat_us, b->n_lat, 99), b->n_lat ? b->lat_us[b->n_lat - 1] / 1000.0 : 0);
    if (b->mode == MODE_OPEN) {
        double lag_ms = (double)b->lag_max_us / 1000.0;
        /* Behind: a request went out more than 1 ms late (late: the
         * generator was slow; late_conn: all connections were busy), or not
         * all were sent. */
        int behind = b->late > 0 || b->late_conn > 0 || b->sent < b->planned;
        printf(" offered=%.1f planned=%llu late=%llu late_conn=%llu lag_max_ms=%.3f behind=%d",
               b->rate, (unsigned long long)b->planned, (unsigned long long)b->late,
               (unsigned long long)b->late_conn, lag_ms, behind);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf(" cpu_s=%.2f\n", (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                                (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
    fflush(stdout);
}

/* --------------------------------------------------------------- requests */

static void hex(const unsigned char *in, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[in[i] >> 4];
        out[2 * i + 1] = d[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static void sign(bench *b, const char *body, size_t len, char *out_hex)
{
    unsigned char mac[32];
    size_t mac_len = 0;
    /* A NULL key re-initialises with the key set at setup. */
    if (EVP_MAC_init(b->mac_ctx, NULL, 0, NULL) != 1 ||
        EVP_MAC_update(b->mac_ctx, (const unsigned char *)body, len) != 1 ||
        EVP_MAC_final(b->mac_ctx, mac, &mac_len, sizeof mac) != 1 || mac_len != 32)
        die("HMAC failed");
    hex(mac, 32, out_hex);
}

static size_t body_cap(const bench *b)
{
    return (size_t)(b->events > 0 ? b->events : 1) * ((size_t)b->pad + 96);
}

/* One unique body: a JSON object, or b->events NDJSON lines. */
static int write_body(bench *b, uint64_t seq)
{
    size_t cap = body_cap(b), len = 0;
    int lines = b->events > 0 ? b->events : 1;
    for (int k = 0; k < lines; k++) {
        int n = snprintf(b->body_buf + len, cap - len,
                         "{\"event\":\"bench\",\"seq\":%llu,\"i\":%d,\"pad\":\"%s\"}%s",
                         (unsigned long long)seq, k, b->pad_buf, b->events > 0 ? "\n" : "");
        if (n < 0 || (size_t)n >= cap - len)
            die("body too large");
        len += (size_t)n;
    }
    return (int)len;
}

static void send_request(bench *b, conn *c, uint64_t i, int64_t t0)
{
    uint64_t seq = b->seq_start + i;
    int n;
    if (b->is_post) {
        int blen = write_body(b, seq);
        char sig[65];
        sign(b, b->body_buf, (size_t)blen, sig);
        n = snprintf(b->req_buf, b->req_cap,
                     "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\n"
                     "X-Hook-Delivery: %s-%llu\r\nIdempotency-Key: %s-%llu\r\n"
                     "X-Hook-Signature: sha256=%s\r\nX-Signature-256: sha256=%s\r\n"
                     "Content-Length: %d\r\n\r\n%s",
                     b->path, b->hostport,
                     b->events > 0 ? "application/x-ndjson" : "application/json", b->key_prefix,
                     (unsigned long long)seq, b->key_prefix, (unsigned long long)seq, sig, sig,
                     blen, b->body_buf);
    } else {
        n = snprintf(b->req_buf, b->req_cap, "%s %s HTTP/1.1\r\nHost: %s\r\n\r\n", b->method,
                     b->path, b->hostport);
    }
    if (n < 0 || (size_t)n >= b->req_cap)
        die("request too large");
    c->busy = 1;
    c->retried = 0;
    c->seq = seq;
    c->t0_us = t0;
    c->pstate = P_STATUS;
    c->status = 0;
    c->remaining = -1;
    c->close_after = 0;
    b->in_flight++;
    b->sent++;
    bufferevent_write(c->bev, b->req_buf, (size_t)n);
}

/* Before the clock starts every connection gets one GET (not counted), so
 * each is accepted and served by the daemon once: a connection still
 * waiting in the listen backlog would otherwise cost its first request a
 * TCP retransmission (200 ms). */
static void send_prime(bench *b, conn *c)
{
    int n = snprintf(b->req_buf, b->req_cap, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", b->prime_path,
                     b->hostport);
    if (n < 0 || (size_t)n >= b->req_cap)
        die("request too large");
    c->busy = 1;
    c->priming = 1;
    c->pstate = P_STATUS;
    c->status = 0;
    c->remaining = -1;
    c->close_after = 0;
    bufferevent_write(c->bev, b->req_buf, (size_t)n);
}

/* Open loop: due time of request i. */
static int64_t due_us(const bench *b, uint64_t i)
{
    return b->start_us + (int64_t)((double)i * 1e6 / b->rate);
}

static void maybe_finish(bench *b)
{
    if (b->finished)
        return;
    if (b->next < b->planned || b->in_flight > 0)
        return;
    b->finished = 1;
    b->end_us = now_us();
    event_base_loopbreak(b->base);
}

static void push_idle(bench *b, conn *c)
{
    if (!c->in_idle) {
        c->in_idle = 1;
        b->idle[b->n_idle++] = c->idx;
    }
}

/* An idle, connected connection, or NULL. Entries of connections that
 * failed or went busy since they were pushed are dropped on the way. */
static conn *pop_idle(bench *b)
{
    while (b->n_idle > 0) {
        conn *c = &b->conns[b->idle[--b->n_idle]];
        c->in_idle = 0;
        if (c->connected && !c->busy)
            return c;
    }
    return NULL;
}

/* Send every request that may go now on idle connections; in open mode arm
 * the timer for the next due one. A due request with no idle connection
 * waits for the next answer (which calls pump again). */
static void pump(bench *b)
{
    if (!b->started || b->finished)
        return;
    int64_t now = now_us();
    while (b->next < b->planned) {
        int64_t due = b->mode == MODE_OPEN ? due_us(b, b->next) : now;
        if (due > now) {
            if (!evtimer_pending(b->tick, NULL)) {
                int64_t wait = due - now;
                struct timeval tv = {(time_t)(wait / 1000000), (suseconds_t)(wait % 1000000)};
                evtimer_add(b->tick, &tv);
            }
            break;
        }
        conn *c = pop_idle(b);
        if (!c) {
            b->no_idle_us = now;
            break;
        }
        if (b->mode == MODE_OPEN) {
            int64_t lag = now - due;
            if (lag > 1000) {
                /* Late because every connection was busy, or because the
                 * generator itself (timer, CPU) was slow. */
                if (b->no_idle_us >= due)
                    b->late_conn++;
                else
                    b->late++;
            }
            if (lag > b->lag_max_us)
                b->lag_max_us = lag;
        }
        send_request(b, c, b->next++, due);
    }
    maybe_finish(b);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pump(arg);
}

/* --------------------------------------------------------------- answers */

static void prime_done(bench *b, conn *c)
{
    c->busy = 0;
    c->priming = 0;
    if (c->status != 200) {
        fprintf(stderr, "webhook_load: priming GET %s answered %d\n", b->prime_path, c->status);
        exit(1);
    }
    push_idle(b, c);
    if (b->opened < b->n_conns) {
        conn_open(&b->conns[b->opened]);
        b->opened++;
    }
    if (++b->primed == b->n_conns) {
        b->started = 1;
        b->start_us = now_us();
        pump(b);
    }
}

static void complete(bench *b, conn *c)
{
    int64_t lat = now_us() - c->t0_us;
    c->busy = 0;
    b->in_flight--;
    b->done++;
    int s = c->status;
    if (s >= 0 && s < 600)
        b->status_count[s]++;
    if (s >= 200 && s < 300) {
        b->ok++;
        if (s == 202)
            b->s202++;
        else if (s == 200)
            b->s200++;
        if (b->n_lat < b->planned)
            b->lat_us[b->n_lat++] = lat > UINT32_MAX ? UINT32_MAX : (uint32_t)lat;
        if (lat > b->prog_max_us)
            b->prog_max_us = lat;
        if (b->acked && b->is_post)
            fprintf(b->acked, "%s-%llu\n", b->key_prefix, (unsigned long long)c->seq);
        if (b->rss_pid > 0 && b->ok >= b->rss_next) {
            fprintf(stderr, "webhook_load: rss ok=%llu vmrss_kb=%ld\n", (unsigned long long)b->ok,
                    vmrss_kb(b->rss_pid));
            b->rss_next += b->rss_every;
        }
    } else {
        b->non2xx++;
    }
}

static void conn_fail(conn *c, const char *why)
{
    bench *b = c->b;
    if (c->priming) {
        fprintf(stderr, "webhook_load: connection %d, priming GET %s: %s\n", c->idx, b->prime_path,
                why);
        exit(1);
    }
    /* A keep-alive connection the server closed as idle just as a request
     * went out on it: nothing of the answer came, so the request goes again
     * on a new connection (as HTTP clients do for a request with an
     * idempotency key), its latency still counted from its first start. */
    int closed_idle = c->busy && !c->priming && !c->retried && c->pstate == P_STATUS && c->bev &&
                      evbuffer_get_length(bufferevent_get_input(c->bev)) == 0 &&
                      strcmp(why, "closed by the server") == 0;
    if (closed_idle) {
        c->resend = 1;
        b->resent++;
    } else if (c->busy) {
        c->busy = 0;
        c->resend = 0;
        b->in_flight--;
        b->done++;
        b->errors++;
        if (b->errors <= 5)
            fprintf(stderr, "webhook_load: connection %d: %s (request seq %llu lost)\n", c->idx,
                    why, (unsigned long long)c->seq);
    }
    /* An idle connection closed by the server (its keep-alive timeout) is
     * no error: it is opened again below. */
    if (c->bev)
        bufferevent_free(c->bev);
    c->bev = NULL;
    c->connected = 0;
    if (!b->finished && (c->resend || b->next < b->planned)) {
        conn_open(c); /* reconnect; it sends when connected */
    }
    maybe_finish(b);
}

/* Parse as much of the answer as is buffered; 1 when one is complete. */
static int parse(conn *c, struct evbuffer *in)
{
    for (;;) {
        if (c->pstate == P_BODY) {
            size_t have = evbuffer_get_length(in);
            size_t take = (size_t)c->remaining < have ? (size_t)c->remaining : have;
            evbuffer_drain(in, take);
            c->remaining -= (long)take;
            return c->remaining == 0;
        }
        size_t len;
        char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
        if (!line)
            return 0;
        if (c->pstate == P_STATUS) {
            if (len == 0) { /* stray CRLF */
                free(line);
                continue;
            }
            if (strncmp(line, "HTTP/1.", 7) != 0 || len < 12) {
                free(line);
                return -1;
            }
            c->status = atoi(line + 9);
            c->pstate = P_HEADERS;
        } else if (len == 0) {
            free(line);
            if (c->remaining < 0)
                c->remaining = 0; /* evhttp always sends Content-Length */
            c->pstate = P_BODY;
            if (c->remaining == 0)
                return 1;
            continue;
        } else if (strncasecmp(line, "Content-Length:", 15) == 0) {
            c->remaining = strtol(line + 15, NULL, 10);
        } else if (strncasecmp(line, "Connection:", 11) == 0) {
            if (strcasestr(line + 11, "close"))
                c->close_after = 1;
        } else if (strncasecmp(line, "Transfer-Encoding:", 18) == 0) {
            free(line);
            return -1; /* not sent by evhttp for these routes */
        }
        free(line);
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    conn *c = arg;
    bench *b = c->b;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (evbuffer_get_length(in) > 0) {
        if (!c->busy) {
            conn_fail(c, "unexpected bytes from the server");
            return;
        }
        int r = parse(c, in);
        if (r < 0) {
            conn_fail(c, "malformed answer");
            return;
        }
        if (r == 0)
            return;
        if (c->priming) {
            prime_done(b, c);
            return;
        }
        complete(b, c);
        if (c->close_after) {
            conn_fail(c, "server closed the connection");
            return;
        }
        push_idle(b, c);
        pump(b);
        if (!c->busy)
            return;
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    conn *c = arg;
    bench *b = c->b;
    if (what & BEV_EVENT_CONNECTED) {
        c->connected = 1;
        evutil_socket_t fd = bufferevent_getfd(c->bev);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (!b->started) {
            send_prime(b, c);
        } else if (c->resend) {
            c->resend = 0;
            b->in_flight--;
            b->sent--;
            send_request(b, c, c->seq - b->seq_start, c->t0_us);
            c->retried = 1;
        } else {
            push_idle(b, c);
            pump(b);
        }
        return;
    }
    char why[128];
    snprintf(why, sizeof why, "%s%s",
             what & BEV_EVENT_TIMEOUT ? "timed out"
             : what & BEV_EVENT_EOF   ? "closed by the server"
                                      : "socket error: ",
             what & (BEV_EVENT_TIMEOUT | BEV_EVENT_EOF)
                 ? ""
                 : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    if (!b->started) {
        fprintf(stderr, "webhook_load: cannot connect to %s: %s\n", b->hostport, why);
        exit(1);
    }
    conn_fail(c, why);
}

static void conn_open(conn *c)
{
    bench *b = c->b;
    c->bev = bufferevent_socket_new(b->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev)
        die("bufferevent_socket_new failed");
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    struct timeval tv = {(time_t)b->timeout, 0};
    bufferevent_set_timeouts(c->bev, &tv, &tv);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&b->addr, sizeof b->addr) < 0) {
        bufferevent_free(c->bev);
        c->bev = NULL;
        if (!b->started)
            die("connect failed");
        b->errors++;
        if (c->resend) { /* the request waiting for this connection is lost */
            c->resend = 0;
            c->busy = 0;
            b->in_flight--;
            b->done++;
        }
    }
}

static void on_progress(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    bench *b = arg;
    if (!b->started)
        return;
    fprintf(stderr,
            "webhook_load: %.0fs sent=%llu done=%llu ok=%llu non2xx=%llu errors=%llu"
            " in_flight=%d (%llu/s, max %.1f ms)\n",
            (double)(now_us() - b->start_us) / 1e6, (unsigned long long)b->sent,
            (unsigned long long)b->done, (unsigned long long)b->ok, (unsigned long long)b->non2xx,
            (unsigned long long)b->errors, b->in_flight,
            (unsigned long long)(b->done - b->prog_last_done), (double)b->prog_max_us / 1000);
    b->prog_last_done = b->done;
    b->prog_max_us = 0;
}

/* Open loop: stop waiting for answers after duration + drain. */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    bench *b = arg;
    if (b->finished)
        return;
    fprintf(stderr, "webhook_load: drain timeout: %d request(s) unanswered, %llu never sent\n",
            b->in_flight, (unsigned long long)(b->planned - b->next));
    b->errors += (uint64_t)b->in_flight;
    b->done += (uint64_t)b->in_flight;
    b->in_flight = 0;
    b->next = b->planned;
    b->finished = 1;
    b->end_us = now_us();
    event_base_loopbreak(b->base);
}

/* ------------------------------------------------------------------ main */

static void usage(void)
{
    fprintf(stderr,
            "usage: webhook_load --target HOST:PORT [--path P] [--method POST|GET] [--secret S]\n"
            "       [--mode closed|open] [--connections C] [--requests N] [--rate R]\n"
            "       [--duration S] [--drain S] [--pad BYTES] [--key-prefix P] [--seq-start N]\n"
            "       [--acked-file F] [--rss-pid PID] [--rss-every N] [--progress] [--timeout S]\n"
            "       [--prime-path P] [--events N]\n");
    exit(1);
}

int main(int argc, char **argv)
{
    bench B = {0}, *b = &B;
    const char *target = NULL, *acked_path = NULL;
    b->path = "/webhooks/hook_hmac";
    b->prime_path = "/healthz";
    b->method = "POST";
    b->key_prefix = "wl";
    b->mode = MODE_CLOSED;
    b->n_conns = 0;
    b->requests = 100000;
    b->duration = 20;
    b->drain = 30;
    b->timeout = 60;
    b->pad = 150;
    b->rss_every = 100000;
    static const struct option opts[] = {{"target", required_argument, 0, 't'},
                                         {"path", required_argument, 0, 'p'},
                                         {"method", required_argument, 0, 'm'},
                                         {"secret", required_argument, 0, 's'},
                                         {"mode", required_argument, 0, 'M'},
                                         {"connections", required_argument, 0, 'c'},
                                         {"requests", required_argument, 0, 'n'},
                                         {"rate", required_argument, 0, 'r'},
                                         {"duration", required_argument, 0, 'd'},
                                         {"drain", required_argument, 0, 'D'},
                                         {"pad", required_argument, 0, 'P'},
                                         {"key-prefix", required_argument, 0, 'k'},
                                         {"seq-start", required_argument, 0, 'S'},
                                         {"acked-file", required_argument, 0, 'a'},
                                         {"rss-pid", required_argument, 0, 'R'},
                                         {"rss-every", required_argument, 0, 'E'},
                                         {"progress", no_argument, 0, 'g'},
                                         {"timeout", required_argument, 0, 'T'},
                                         {"prime-path", required_argument, 0, 'G'},
                                         {"events", required_argument, 0, 'V'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 't':
            target = optarg;
            break;
        case 'p':
            b->path = optarg;
            break;
        case 'm':
            b->method = optarg;
            break;
        case 's':
            b->secret = optarg;
            break;
        case 'M':
            if (strcmp(optarg, "open") == 0)
                b->mode = MODE_OPEN;
            else if (strcmp(optarg, "closed") == 0)
                b->mode = MODE_CLOSED;
            else
                usage();
            break;
        case 'c':
            b->n_conns = atoi(optarg);
            break;
        case 'n':
            b->requests = strtoull(optarg, NULL, 10);
            break;
        case 'r':
            b->rate = strtod(optarg, NULL);
            break;
        case 'd':
            b->duration = strtod(optarg, NULL);
            break;
        case 'D':
            b->drain = strtod(optarg, NULL);
            break;
        case 'P':
            b->pad = atoi(optarg);
            break;
        case 'k':
            b->key_prefix = optarg;
            break;
        case 'S':
            b->seq_start = strtoull(optarg, NULL, 10);
            break;
        case 'a':
            acked_path = optarg;
            break;
        case 'R':
            b->rss_pid = atoi(optarg);
            break;
        case 'E':
            b->rss_every = strtoull(optarg, NULL, 10);
            break;
        case 'g':
            b->progress = 1;
            break;
        case 'T':
            b->timeout = strtod(optarg, NULL);
            break;
        case 'G':
            b->prime_path = optarg;
            break;
        case 'V':
            b->events = atoi(optarg);
            break;
        default:
            usage();
        }
    }
    if (!target || optind != argc)
        usage();
    b->is_post = strcasecmp(b->method, "POST") == 0;
    if (b->is_post && !b->secret)
        die("--secret is required for POST");
    if (b->n_conns <= 0)
        b->n_conns = b->mode == MODE_OPEN ? 256 : 64;
    if (b->pad < 0 || b->pad > 1 << 20 || b->rss_every == 0 || b->timeout < 1 || b->events < 0 ||
        b->events > 100000)
        usage();
    if (b->mode == MODE_OPEN) {
        if (b->rate <= 0 || b->duration <= 0)
            die("open mode needs --rate and --duration");
        b->planned = (uint64_t)(b->rate * b->duration);
    } else {
        b->planned = b->requests;
    }
    if (b->planned == 0)
        die("nothing to send");

    const char *colon = strrchr(target, ':');
    if (!colon)
        usage();
    char host[64];
    snprintf(host, sizeof host, "%.*s", (int)(colon - target), target);
    b->addr.sin_family = AF_INET;
    b->addr.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &b->addr.sin_addr) != 1)
        die("--target must be an IPv4 address and a port");
    snprintf(b->hostport, sizeof b->hostport, "%s", target);

    b->lat_us = malloc(b->planned * sizeof *b->lat_us);
    b->pad_buf = malloc((size_t)b->pad + 1);
    b->body_buf = malloc(body_cap(b));
    b->req_cap = body_cap(b) + 1024;
    b->req_buf = malloc(b->req_cap);
    b->conns = calloc((size_t)b->n_conns, sizeof *b->conns);
    b->idle = calloc((size_t)b->n_conns, sizeof *b->idle);
    if (!b->pad_buf || !b->idle || !b->lat_us || !b->body_buf || !b->req_buf || !b->conns)
        die("out of memory");
    memset(b->pad_buf, 'x', (size_t)b->pad);
    b->pad_buf[b->pad] = '\0';
    if (b->is_post) {
        b->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
        b->mac_ctx = b->mac ? EVP_MAC_CTX_new(b->mac) : NULL;
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
            OSSL_PARAM_construct_end()};
        if (!b->mac_ctx || EVP_MAC_init(b->mac_ctx, (const unsigned char *)b->secret,
                                        strlen(b->secret), params) != 1)
            die("cannot set up HMAC-SHA256");
    }
    if (acked_path) {
        b->acked = fopen(acked_path, "w");
        if (!b->acked)
            die("cannot open --acked-file");
        static char accbuf[1 << 16];
        setvbuf(b->acked, accbuf, _IOFBF, sizeof accbuf);
    }
    b->rss_next = b->rss_every;

    struct event_config *cfg = event_config_new();
    event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    b->base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (!b->base)
        die("event_base_new failed");
    b->tick = evtimer_new(b->base, on_tick, b);
    if (b->progress) {
        b->progress_ev = event_new(b->base, -1, EV_PERSIST, on_progress, b);
        struct timeval one = {1, 0};
        event_add(b->progress_ev, &one);
    }
    if (b->mode == MODE_OPEN) {
        b->deadline_ev = evtimer_new(b->base, on_deadline, b);
        double s = b->duration + b->drain + 5; /* +5: connecting */
        struct timeval tv = {(time_t)s, (suseconds_t)((s - (double)(time_t)s) * 1e6)};
        evtimer_add(b->deadline_ev, &tv);
    }
    /* Connect in waves of at most 64 (the daemon's listen backlog is
     * small); each primed connection opens the next. */
    for (int i = 0; i < b->n_conns; i++) {
        b->conns[i].b = b;
        b->conns[i].idx = i;
    }
    while (b->opened < b->n_conns && b->opened < 64) {
        conn_open(&b->conns[b->opened]);
        b->opened++;
    }
    event_base_dispatch(b->base);
    if (!b->finished) {
        b->end_us = now_us();
        fprintf(stderr, "webhook_load: the loop ended early\n");
    }
    if (b->rss_pid > 0)
        fprintf(stderr, "webhook_load: rss ok=%llu vmrss_kb=%ld (end)\n", (unsigned long long)b->ok,
                vmrss_kb(b->rss_pid));
    report(b);
    if (b->acked && fclose(b->acked) != 0)
        die("cannot write --acked-file");
    for (int i = 0; i < b->n_conns; i++)
        if (b->conns[i].bev)
            bufferevent_free(b->conns[i].bev);
    if (b->tick)
        event_free(b->tick);
    if (b->progress_ev)
        event_free(b->progress_ev);
    if (b->deadline_ev)
        event_free(b->deadline_ev);
    event_base_free(b->base);
    EVP_MAC_CTX_free(b->mac_ctx);
    EVP_MAC_free(b->mac);
    free(b->lat_us);
    free(b->body_buf);
    free(b->pad_buf);
    free(b->req_buf);
    free(b->conns);
    free(b->idle);
    return 0;
}
