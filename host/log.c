/* log.c — JSON log lines, written with one write() so concurrent lines never interleave. */
#include "log.h"

#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define REDACTED "[REDACTED]"
#define MIN_SECRET_LEN 4

static int log_fd = 2;
static ingest_log_level log_min = INGEST_LOG_INFO;
static pthread_mutex_t redact_lock = PTHREAD_MUTEX_INITIALIZER;
/* Secrets with a reference count: an old and a new generation of a plugin
 * share a secret during a reload, and unloading one must not unmask it. */
static char **redact_list;
static unsigned *redact_refs;
static size_t redact_count;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_setup(int fd, ingest_log_level min_level)
{
    log_fd = fd;
    log_min = min_level;
}

void log_set_level(ingest_log_level min_level) { log_min = min_level; }
ingest_log_level log_get_level(void) { return log_min; }

int log_level_parse(const char *text)
{
    for (size_t i = 0; text && i < sizeof level_names / sizeof level_names[0]; i++)
        if (strcmp(text, level_names[i]) == 0)
            return (int)i;
    return -1;
}

void log_redact_add(const char *secret)
{
    if (!secret || strlen(secret) < MIN_SECRET_LEN)
        return;
    pthread_mutex_lock(&redact_lock);
    for (size_t i = 0; i < redact_count; i++) {
        if (strcmp(redact_list[i], secret) == 0) {
            redact_refs[i]++;
            pthread_mutex_unlock(&redact_lock);
            return;
        }
    }
    char **list = realloc(redact_list, (redact_count + 1) * sizeof *list);
    if (list)
        redact_list = list;
    unsigned *refs = realloc(redact_refs, (redact_count + 1) * sizeof *refs);
    if (refs)
        redact_refs = refs;
    char *copy = strdup(secret);
    if (list && refs && copy) {
        redact_list[redact_count] = copy;
        redact_refs[redact_count++] = 1;
    } else {
        free(copy);
    }
    pthread_mutex_unlock(&redact_lock);
}

void log_redact_remove(const char *secret)
{
    if (!secret)
        return;
    pthread_mutex_lock(&redact_lock);
    for (size_t i = 0; i < redact_count; i++) {
        if (strcmp(redact_list[i], secret) == 0) {
            if (--redact_refs[i] == 0) {
                free(redact_list[i]);
                redact_count--;
                redact_list[i] = redact_list[redact_count];
                redact_refs[i] = redact_refs[redact_count];
            }
            break;
        }
    }
    pthread_mutex_unlock(&redact_lock);
}

void log_redact_clear(void)
{
    pthread_mutex_lock(&redact_lock);
    for (size_t i = 0; i < redact_count; i++)
        free(redact_list[i]);
    free(redact_list);
    free(redact_refs);
    redact_list = NULL;
    redact_refs = NULL;
    redact_count = 0;
    pthread_mutex_unlock(&redact_lock);
}

/* Replace every occurrence of needle in *text (malloc'd) by REDACTED. */
static void replace_all(char **text, const char *needle)
{
    size_t nlen = strlen(needle), rlen = strlen(REDACTED);
    char *hit = strstr(*text, needle);
    while (hit) {
        size_t prefix = (size_t)(hit - *text);
        size_t rest = strlen(hit + nlen);
        char *out = malloc(prefix + rlen + rest + 1);
        if (!out)
            return;
        memcpy(out, *text, prefix);
        memcpy(out + prefix, REDACTED, rlen);
        memcpy(out + prefix + rlen, hit + nlen, rest + 1);
        free(*text);
        *text = out;
        hit = strstr(out + prefix + rlen, needle);
    }
}

char *log_redact(const char *text)
{
    char *out = strdup(text ? text : "");
    if (!out)
        return NULL;
    pthread_mutex_lock(&redact_lock);
    /* Longest first: a secret that is a prefix of another must not leave the
     * longer one's tail behind. */
    size_t done_len = (size_t)-1;
    for (size_t pass = 0; pass < redact_count; pass++) {
        size_t best = redact_count, best_len = 0;
        for (size_t i = 0; i < redact_count; i++) {
            size_t len = strlen(redact_list[i]);
            if (len < done_len && len > best_len)
                best = i, best_len = len;
        }
        if (best == redact_count)
            break;
        for (size_t i = 0; i < redact_count; i++)
            if (strlen(redact_list[i]) == best_len)
                replace_all(&out, redact_list[i]);
        done_len = best_len;
    }
    pthread_mutex_unlock(&redact_lock);
    return out;
}

static void format_now(char buf[40])
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(buf, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, 40 - n, ".%03ldZ", (long)(tv.tv_usec / 1000));
}

static void add_field(json_object *obj, const char *key, const char *value)
{
    if (value)
        json_object_object_add(obj, key, json_object_new_string(value));
}

void log_writev(ingest_log_level level, const log_fields *fields, const char *fmt, va_list ap)
{
    if (level < log_min || level > INGEST_LOG_ERROR)
        return;
    char *raw = NULL;
    if (vasprintf(&raw, fmt, ap) < 0)
        return;
    char *msg = log_redact(raw);
    free(raw);
    if (!msg)
        return;

    char ts[40];
    format_now(ts);
    json_object *line = json_object_new_object();
    add_field(line, "ts", ts);
    add_field(line, "level", level_names[level]);
    add_field(line, "msg", msg);
    if (fields) {
        add_field(line, "plugin", fields->plugin);
        add_field(line, "tenant", fields->tenant);
        add_field(line, "job", fields->job);
        add_field(line, "delivery", fields->delivery);
    }
    const char *text = json_object_to_json_string_ext(line, JSON_C_TO_STRING_PLAIN |
                                                                JSON_C_TO_STRING_NOSLASHESCAPE);
    size_t len = strlen(text);
    char *out = malloc(len + 2);
    if (out) {
        memcpy(out, text, len);
        out[len] = '\n';
        /* One write per line keeps lines whole across threads. */
        ssize_t ignored = write(log_fd, out, len + 1);
        (void)ignored;
        free(out);
    }
    json_object_put(line);
    free(msg);
}

void log_write(ingest_log_level level, const log_fields *fields, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_writev(level, fields, fmt, ap);
    va_end(ap);
}
