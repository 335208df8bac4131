/* cron.c — 5-field cron expressions (Vixie syntax) and their next fire time, in UTC.
 *
 * An expression is five bitsets, one per field, plus the two "day field was a
 * star" flags that Vixie cron uses to choose between AND and OR day matching.
 * cron_next walks the civil calendar (proleptic Gregorian, UTC, so no DST
 * gaps) a month, a day or an hour at a time, never a minute at a time. */
#include "cron.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cron_expr {
    uint64_t minutes; /* bit m: minute m (0-59) */
    uint32_t hours;   /* bit h: hour h (0-23) */
    uint32_t days;    /* bit d: day-of-month d (1-31) */
    uint16_t months;  /* bit m: month m (1-12) */
    uint8_t weekdays; /* bit w: weekday w (0 = Sunday .. 6); a parsed 7 lands on bit 0 */
    bool dom_star;    /* day-of-month field started with '*' */
    bool dow_star;    /* day-of-week field started with '*' */
};

enum { F_MINUTE, F_HOUR, F_DOM, F_MONTH, F_DOW, F_COUNT };

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const dow_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

typedef struct field_spec {
    const char *name;
    int min, max;             /* day-of-week allows 7 (Sunday again) */
    const char *const *names; /* names[i] is the value min + i; NULL if none */
    int name_count;
} field_spec;

static const field_spec specs[F_COUNT] = {
    {"minute", 0, 59, NULL, 0},          {"hour", 0, 23, NULL, 0},
    {"day-of-month", 1, 31, NULL, 0},    {"month", 1, 12, month_names, 12},
    {"day-of-week", 0, 7, dow_names, 7},
};

/* A piece of the input text: fields and items are not NUL-terminated. */
typedef struct span {
    const char *p;
    size_t n;
} span;

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t err_len,
                                                          const char *fmt, ...)
{
    if (!err || err_len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

/* ---- parsing ------------------------------------------------------------ */

/* Everything the item parsers need to report an error against. */
typedef struct parse_ctx {
    const field_spec *spec;
    char *err;
    size_t err_len;
} parse_ctx;

static bool all_digits(span s)
{
    if (s.n == 0)
        return false;
    for (size_t i = 0; i < s.n; i++)
        if (!isdigit((unsigned char)s.p[i]))
            return false;
    return true;
}

/* Decimal value of an all-digit span, saturated so a huge number still reads
 * as "out of range" instead of wrapping into range. */
static int digits_value(span s)
{
    long v = 0;
    for (size_t i = 0; i < s.n && v < 1000000; i++)
        v = v * 10 + (s.p[i] - '0');
    return (int)(v < 1000000 ? v : 1000000);
}

/* A name of this field (three letters, any case); -1 if it is not one. */
static int name_value(const field_spec *spec, span s)
{
    if (s.n != 3)
        return -1;
    for (int i = 0; i < spec->name_count; i++)
        if (strncasecmp(s.p, spec->names[i], 3) == 0)
            return spec->min + i;
    return -1;
}

/* One value (number or name) checked against the field's range; -1 on error. */
static int parse_value(const parse_ctx *ctx, span s)
{
    const field_spec *spec = ctx->spec;
    int v = all_digits(s) ? digits_value(s) : name_value(spec, s);
    if (v < 0) {
        set_err(ctx->err, ctx->err_len, "cron: %s field: \"%.*s\" is not a %s", spec->name,
                (int)s.n, s.p, spec->names ? "number or name" : "number");
        return -1;
    }
    if (v < spec->min || v > spec->max) {
        set_err(ctx->err, ctx->err_len, "cron: %s field: %.*s is out of range %d-%d", spec->name,
                (int)s.n, s.p, spec->min, spec->max);
        return -1;
    }
    return v;
}

/* The step after '/': 1 .. the field's span (a larger step could only ever
 * hit the first value, which is almost certainly a typo). -1 on error. */
static int parse_step(const parse_ctx *ctx, span item, span s)
{
    const field_spec *spec = ctx->spec;
    int span_len = spec->max - spec->min + 1;
    if (!all_digits(s)) {
        set_err(ctx->err, ctx->err_len, "cron: %s field: step \"%.*s\" in \"%.*s\" is not a number",
                spec->name, (int)s.n, s.p, (int)item.n, item.p);
        return -1;
    }
    int step = digits_value(s);
    if (step < 1 || step > span_len) {
        set_err(ctx->err, ctx->err_len,
                "cron: %s field: step %.*s in \"%.*s\" is out of range 1-%d", spec->name, (int)s.n,
                s.p, (int)item.n, item.p, span_len);
        return -1;
    }
    return step;
}

static const char *span_find(span s, char c) { return memchr(s.p, c, s.n); }

/* The base of an item (before any '/'): '*', a value, or a range a-b.
 * `has_step` turns a lone value a into a..max (cronie's "a/n"). */
static bool parse_base(const parse_ctx *ctx, span base, bool has_step, int *lo, int *hi)
{
    if (base.n == 1 && base.p[0] == '*') {
        *lo = ctx->spec->min;
        *hi = ctx->spec->max;
        return true;
    }
    const char *dash = span_find(base, '-');
    if (!dash) {
        *lo = parse_value(ctx, base);
        *hi = has_step ? ctx->spec->max : *lo;
        return *lo >= 0;
    }
    span a = {base.p, (size_t)(dash - base.p)};
    span b = {dash + 1, base.n - a.n - 1};
    if (a.n == 0 || b.n == 0 || span_find(b, '-')) {
        set_err(ctx->err, ctx->err_len, "cron: %s field: \"%.*s\" is not a valid range",
                ctx->spec->name, (int)base.n, base.p);
        return false;
    }
    if ((*lo = parse_value(ctx, a)) < 0 || (*hi = parse_value(ctx, b)) < 0)
        return false;
    if (*lo > *hi) {
        set_err(ctx->err, ctx->err_len, "cron: %s field: %.*s is a reversed range (%d > %d)",
                ctx->spec->name, (int)base.n, base.p, *lo, *hi);
        return false;
    }
    return true;
}

/* One comma-separated item; its values are OR-ed into *bits. */
static bool parse_item(const parse_ctx *ctx, span item, uint64_t *bits)
{
    if (item.n == 0) {
        set_err(ctx->err, ctx->err_len, "cron: %s field: empty list element", ctx->spec->name);
        return false;
    }
    const char *slash = span_find(item, '/');
    span base = {item.p, slash ? (size_t)(slash - item.p) : item.n};
    int step = 1, lo, hi;
    if (slash) {
        span s = {slash + 1, item.n - base.n - 1};
        if ((step = parse_step(ctx, item, s)) < 0)
            return false;
    }
    if (!parse_base(ctx, base, slash != NULL, &lo, &hi))
        return false;
    for (int v = lo; v <= hi; v += step)
        *bits |= UINT64_C(1) << v;
    return true;
}

/* A whole field: a comma-separated list of items. */
static bool parse_field(const parse_ctx *ctx, span field, uint64_t *bits)
{
    *bits = 0;
    const char *p = field.p, *end = field.p + field.n;
    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *item_end = comma ? comma : end;
        if (!parse_item(ctx, (span){p, (size_t)(item_end - p)}, bits))
            return false;
        if (!comma)
            return true;
        p = comma + 1;
    }
}

/* Split on blanks into at most `max` spans; returns how many there were (it
 * keeps counting past max so the error can say "got 6"). */
static int split_fields(const char *text, span *out, int max)
{
    int count = 0;
    const char *p = text;
    for (;;) {
        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            return count;
        const char *start = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        if (count < max)
            out[count] = (span){start, (size_t)(p - start)};
        count++;
    }
}

/* Fill `c` from the five fields. */
static bool parse_fields(cron_expr *c, const span *fields, char *err, size_t err_len)
{
    uint64_t bits[F_COUNT];
    for (int f = 0; f < F_COUNT; f++) {
        parse_ctx ctx = {&specs[f], err, err_len};
        if (!parse_field(&ctx, fields[f], &bits[f]))
            return false;
    }
    c->minutes = bits[F_MINUTE];
    c->hours = (uint32_t)bits[F_HOUR];
    c->days = (uint32_t)bits[F_DOM];
    c->months = (uint16_t)bits[F_MONTH];
    /* 7 is Sunday too: fold bit 7 onto bit 0. */
    c->weekdays = (uint8_t)((bits[F_DOW] | (bits[F_DOW] >> 7)) & 0x7f);
    c->dom_star = fields[F_DOM].p[0] == '*';
    c->dow_star = fields[F_DOW].p[0] == '*';
    return true;
}

static const struct {
    const char *name;
    const char *expansion;
} macros[] = {
    {"@hourly", "0 * * * *"},   {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
    {"@weekly", "0 0 * * 0"},   {"@monthly", "0 0 1 * *"}, {"@yearly", "0 0 1 1 *"},
    {"@annually", "0 0 1 1 *"},
};

/* The five-field text behind a macro; NULL (with err set) if unknown. */
static const char *expand_macro(const span *words, int count, char *err, size_t err_len)
{
    if (count != 1) {
        set_err(err, err_len, "cron: %.*s takes no fields after it, got %d", (int)words[0].n,
                words[0].p, count - 1);
        return NULL;
    }
    for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++)
        if (strlen(macros[i].name) == words[0].n &&
            strncasecmp(macros[i].name, words[0].p, words[0].n) == 0)
            return macros[i].expansion;
    set_err(err, err_len, "cron: unknown macro \"%.*s\"", (int)words[0].n, words[0].p);
    return NULL;
}

cron_expr *cron_parse(const char *text, char *err, size_t err_len)
{
    set_err(err, err_len, "%s", "");
    span fields[F_COUNT];
    int count = split_fields(text ? text : "", fields, F_COUNT);
    if (count == 0) {
        set_err(err, err_len, "cron: empty expression");
        return NULL;
    }
    if (fields[0].p[0] == '@') {
        const char *expansion = expand_macro(fields, count, err, err_len);
        return expansion ? cron_parse(expansion, err, err_len) : NULL;
    }
    if (count != F_COUNT) {
        set_err(err, err_len,
                "cron: expected 5 fields (minute hour day-of-month month day-of-week), got %d",
                count);
        return NULL;
    }
    cron_expr *c = calloc(1, sizeof *c);
    if (!c) {
        set_err(err, err_len, "cron: out of memory");
        return NULL;
    }
    if (!parse_fields(c, fields, err, err_len)) {
        free(c);
        return NULL;
    }
    return c;
}

void cron_free(cron_expr *c) { free(c); }

/* ---- next fire time ----------------------------------------------------- */

#define US_PER_MINUTE INT64_C(60000000)
#define MINUTES_PER_DAY 1440

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil), so the search needs no time_t range or timegm calls. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The inverse of days_from_civil. */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static bool is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int days_in_month(int64_t y, int m)
{
    static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* The search position: a civil UTC minute. */
typedef struct cursor {
    int64_t y;
    int m, d, h, mi;
} cursor;

static int64_t cursor_minutes(const cursor *t)
{
    return days_from_civil(t->y, t->m, t->d) * MINUTES_PER_DAY + t->h * 60 + t->mi;
}

static cursor cursor_from_minutes(int64_t minutes)
{
    cursor t;
    int64_t days = floor_div(minutes, MINUTES_PER_DAY);
    int rem = (int)(minutes - days * MINUTES_PER_DAY);
    civil_from_days(days, &t.y, &t.m, &t.d);
    t.h = rem / 60;
    t.mi = rem % 60;
    return t;
}

static void next_month(cursor *t)
{
    t->d = 1;
    t->h = t->mi = 0;
    if (++t->m > 12) {
        t->m = 1;
        t->y++;
    }
}

static void next_day(cursor *t)
{
    t->h = t->mi = 0;
    if (++t->d > days_in_month(t->y, t->m))
        next_month(t);
}

/* Vixie's rule: AND when either day field is a star, OR when both are restricted. */
static bool day_matches(const cron_expr *c, const cursor *t)
{
    int64_t days = days_from_civil(t->y, t->m, t->d);
    int64_t wd = days + 4 - floor_div(days + 4, 7) * 7; /* 1970-01-01 was a Thursday */
    bool dom = c->days >> t->d & 1;
    bool dow = c->weekdays >> wd & 1;
    return (c->dom_star || c->dow_star) ? dom && dow : dom || dow;
}

/* The lowest set bit at or above `from` (and at most `max`), or -1. */
static int next_bit(uint64_t bits, int from, int max)
{
    for (int v = from; v <= max; v++)
        if (bits >> v & 1)
            return v;
    return -1;
}

/* The first matching hour:minute at or after t's time of day; false if there
 * is none left today. The minute set is never empty, so only the current hour
 * can fail on minutes. */
static bool seek_time(const cron_expr *c, cursor *t)
{
    for (int h = next_bit(c->hours, t->h, 23); h >= 0; h = next_bit(c->hours, h + 1, 23)) {
        int mi = next_bit(c->minutes, h == t->h ? t->mi : 0, 59);
        if (mi >= 0) {
            t->h = h;
            t->mi = mi;
            return true;
        }
    }
    return false;
}

/* Move *t to the first matching minute at or after it, giving up past
 * `limit`. Each step skips a whole month or day unless it finds the answer,
 * so five years cost at most about 60 + 1830 steps. */
static bool seek(const cron_expr *c, cursor *t, int64_t limit)
{
    while (cursor_minutes(t) <= limit) {
        if (!(c->months >> t->m & 1))
            next_month(t);
        else if (!day_matches(c, t) || !seek_time(c, t))
            next_day(t);
        else
            return cursor_minutes(t) <= limit;
    }
    return false;
}

int64_t cron_next(const cron_expr *c, int64_t after_us)
{
    if (!c)
        return -1;
    /* The next whole minute strictly after after_us. */
    int64_t start = floor_div(after_us, US_PER_MINUTE) + 1;
    cursor t = cursor_from_minutes(start);
    cursor end = t;
    end.y += 5;
    if (end.d > days_in_month(end.y, end.m))
        end.d = days_in_month(end.y, end.m); /* Feb 29 + 5 years */
    int64_t limit = cursor_minutes(&end);
    if (!seek(c, &t, limit))
        return -1;
    int64_t found = cursor_minutes(&t);
    if (found > INT64_MAX / US_PER_MINUTE)
        return -1;
    return found * US_PER_MINUTE;
}
