/* metrics.c — a list of series under one lock; each series has its own lock
 * so hot-path updates never contend with rendering for long. */
#include "metrics.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double default_bounds[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                        0.25,  0.5,   1,    2.5,   5,    10};

struct ingest_metric {
    metric_type type;
    char *name, *help, *labels;
    const void *owner;
    int hidden;
    pthread_mutex_t lock;
    double value;
    double *bounds;
    size_t n_bounds;
    unsigned long long *buckets; /* cumulative at render time */
    unsigned long long count;
    double sum;
    struct ingest_metric *next;
};

struct metrics_registry {
    pthread_mutex_t lock;
    ingest_metric *head, *tail;
};

metrics_registry *metrics_new(void)
{
    metrics_registry *reg = calloc(1, sizeof *reg);
    if (reg)
        pthread_mutex_init(&reg->lock, NULL);
    return reg;
}

static void metric_free(ingest_metric *m)
{
    pthread_mutex_destroy(&m->lock);
    free(m->name);
    free(m->help);
    free(m->labels);
    free(m->bounds);
    free(m->buckets);
    free(m);
}

void metrics_free(metrics_registry *reg)
{
    if (!reg)
        return;
    for (ingest_metric *m = reg->head, *next; m; m = next) {
        next = m->next;
        metric_free(m);
    }
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

int metrics_valid_name(const char *name)
{
    if (!name || !*name || isdigit((unsigned char)name[0]))
        return 0;
    for (const char *p = name; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_' || *p == ':'))
            return 0;
    return 1;
}

static ingest_metric *metric_new(metric_type type, const char *name, const char *help,
                                 const char *labels, const void *owner, const double *bounds,
                                 size_t n_bounds)
{
    ingest_metric *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    pthread_mutex_init(&m->lock, NULL);
    m->type = type;
    m->owner = owner;
    m->name = strdup(name);
    m->help = strdup(help ? help : "");
    m->labels = strdup(labels ? labels : "");
    int ok = m->name && m->help && m->labels;
    if (ok && type == METRIC_HISTOGRAM) {
        if (!bounds || n_bounds == 0) {
            bounds = default_bounds;
            n_bounds = sizeof default_bounds / sizeof default_bounds[0];
        }
        m->bounds = malloc(n_bounds * sizeof *m->bounds);
        m->buckets = calloc(n_bounds, sizeof *m->buckets);
        ok = m->bounds && m->buckets;
        if (ok)
            memcpy(m->bounds, bounds, n_bounds * sizeof *m->bounds);
        m->n_bounds = n_bounds;
    }
    if (!ok) {
        metric_free(m);
        return NULL;
    }
    return m;
}

ingest_metric *metrics_register(metrics_registry *reg, metric_type type, const char *name,
                                const char *help, const char *labels, const void *owner,
                                const double *bounds, size_t n_bounds)
{
    if (!metrics_valid_name(name))
        return NULL;
    pthread_mutex_lock(&reg->lock);
    for (ingest_metric *m = reg->head; m; m = m->next) {
        if (m->owner == owner && strcmp(m->name, name) == 0 &&
            strcmp(m->labels, labels ? labels : "") == 0) {
            pthread_mutex_unlock(&reg->lock);
            return m->type == type ? m : NULL;
        }
    }
    ingest_metric *m = metric_new(type, name, help, labels, owner, bounds, n_bounds);
    if (m) {
        if (reg->tail)
            reg->tail->next = m;
        else
            reg->head = m;
        reg->tail = m;
    }
    pthread_mutex_unlock(&reg->lock);
    return m;
}

void metrics_add(ingest_metric *m, double delta)
{
    if (!m || m->type == METRIC_HISTOGRAM || !isfinite(delta))
        return;
    if (m->type == METRIC_COUNTER && delta < 0)
        return; /* counters only go up */
    pthread_mutex_lock(&m->lock);
    m->value += delta;
    pthread_mutex_unlock(&m->lock);
}

void metrics_set(ingest_metric *m, double value)
{
    if (!m || m->type != METRIC_GAUGE || !isfinite(value))
        return;
    pthread_mutex_lock(&m->lock);
    m->value = value;
    pthread_mutex_unlock(&m->lock);
}

void metrics_observe(ingest_metric *m, double value)
{
    if (!m || m->type != METRIC_HISTOGRAM || !isfinite(value))
        return;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->n_bounds; i++)
        if (value <= m->bounds[i]) {
            m->buckets[i]++;
            break;
        }
    m->count++;
    m->sum += value;
    pthread_mutex_unlock(&m->lock);
}

double metrics_value(ingest_metric *m)
{
    pthread_mutex_lock(&m->lock);
    double v = m->type == METRIC_HISTOGRAM ? (double)m->count : m->value;
    pthread_mutex_unlock(&m->lock);
    return v;
}

void metrics_hide_owner(metrics_registry *reg, const void *owner)
{
    pthread_mutex_lock(&reg->lock);
    for (ingest_metric *m = reg->head; m; m = m->next)
        if (m->owner == owner)
            m->hidden = 1;
    pthread_mutex_unlock(&reg->lock);
}

void metrics_remove_owner(metrics_registry *reg, const void *owner)
{
    pthread_mutex_lock(&reg->lock);
    ingest_metric **link = &reg->head;
    reg->tail = NULL;
    while (*link) {
        ingest_metric *m = *link;
        if (m->owner == owner) {
            *link = m->next;
            metric_free(m);
        } else {
            reg->tail = m;
            link = &m->next;
        }
    }
    pthread_mutex_unlock(&reg->lock);
}

static const char *type_name(metric_type t)
{
    return t == METRIC_COUNTER ? "counter" : t == METRIC_GAUGE ? "gauge" : "histogram";
}

typedef struct text_buf {
    char *data;
    size_t len, cap;
    int failed;
} text_buf;

static void tb_printf(text_buf *tb, const char *fmt, ...) INGEST_PRINTF(2, 3);
static void tb_printf(text_buf *tb, const char *fmt, ...)
{
    if (tb->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(tb->data + tb->len, tb->cap - tb->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            tb->failed = 1;
            return;
        }
        if ((size_t)n < tb->cap - tb->len) {
            tb->len += (size_t)n;
            return;
        }
        size_t cap = (tb->cap + (size_t)n + 1) * 2;
        char *grown = realloc(tb->data, cap);
        if (!grown) {
            tb->failed = 1;
            return;
        }
        tb->data = grown;
        tb->cap = cap;
    }
}

/* Shortest text that reads back as the same double: 0.1, not 0.10000000000000001. */
static void format_number(double v, char out[32])
{
    for (int precision = 15; precision <= 17; precision++) {
        snprintf(out, 32, "%.*g", precision, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

/* HELP text escapes backslash and newline (exposition format 0.0.4). */
static void tb_help(text_buf *tb, const char *help)
{
    for (const char *p = help; *p; p++) {
        if (*p == '\\')
            tb_printf(tb, "\\\\");
        else if (*p == '\n')
            tb_printf(tb, "\\n");
        else
            tb_printf(tb, "%c", *p);
    }
}

static void render_series(text_buf *tb, ingest_metric *m)
{
    char num[32];
    const char *l = m->labels;
    pthread_mutex_lock(&m->lock);
    if (m->type != METRIC_HISTOGRAM) {
        format_number(m->value, num);
        tb_printf(tb, "%s%s%s%s %s\n", m->name, *l ? "{" : "", l, *l ? "}" : "", num);
    } else {
        unsigned long long cumulative = 0;
        for (size_t i = 0; i < m->n_bounds; i++) {
            cumulative += m->buckets[i];
            format_number(m->bounds[i], num);
            tb_printf(tb, "%s_bucket{%s%sle=\"%s\"} %llu\n", m->name, l, *l ? "," : "", num,
                      cumulative);
        }
        tb_printf(tb, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", m->name, l, *l ? "," : "", m->count);
        format_number(m->sum, num);
        tb_printf(tb, "%s_sum%s%s%s %s\n", m->name, *l ? "{" : "", l, *l ? "}" : "", num);
        tb_printf(tb, "%s_count%s%s%s %llu\n", m->name, *l ? "{" : "", l, *l ? "}" : "", m->count);
    }
    pthread_mutex_unlock(&m->lock);
}

char *metrics_render(metrics_registry *reg)
{
    text_buf tb = {malloc(4096), 0, 4096, 0};
    if (!tb.data)
        return NULL;
    tb.data[0] = '\0';
    pthread_mutex_lock(&reg->lock);
    /* Families in order of first registration, HELP/TYPE once per name. */
    for (ingest_metric *first = reg->head; first; first = first->next) {
        int seen = 0;
        for (ingest_metric *p = reg->head; p != first; p = p->next)
            if (!p->hidden && strcmp(p->name, first->name) == 0)
                seen = 1;
        if (seen || first->hidden)
            continue;
        tb_printf(&tb, "# HELP %s ", first->name);
        tb_help(&tb, first->help);
        tb_printf(&tb, "\n# TYPE %s %s\n", first->name, type_name(first->type));
        for (ingest_metric *m = first; m; m = m->next)
            if (!m->hidden && strcmp(m->name, first->name) == 0 && m->type == first->type)
                render_series(&tb, m);
    }
    pthread_mutex_unlock(&reg->lock);
    if (tb.failed) {
        free(tb.data);
        return NULL;
    }
    return tb.data;
}
