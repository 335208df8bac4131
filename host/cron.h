/* cron.h — 5-field cron expressions (Vixie syntax) and their next fire time, in UTC.
 *
 * Fields: minute (0-59) hour (0-23) day-of-month (1-31) month (1-12 or JAN-DEC)
 * day-of-week (0-7 or SUN-SAT; 0 and 7 are both Sunday). Each field is a list
 * `a,b,c` of items; an item is `*`, a number or name, a range `a-b`, or one of
 * those with a step `/n`: the star with a step (every n-th value), `a-b/n`, or
 * `a/n` (meaning a-max/n, as in cronie). Names are three letters, any case.
 * Macros (any case): @hourly, @daily, @midnight, @weekly, @monthly, @yearly,
 * @annually. Six-field (seconds or year) expressions and @reboot are rejected.
 *
 * Day matching follows Vixie cron: if either day field starts with a star (a
 * plain star, or a star with a step: both count as unrestricted), a day must
 * match both fields; if both are restricted, a day matches when EITHER
 * does ("0 0 13 * FRI" fires on every 13th and on every Friday).
 *
 * A parsed expression is immutable: cron_next may be called on it from any
 * number of threads at once. */
#ifndef HOSTD_CRON_H
#define HOSTD_CRON_H

#include <stddef.h>
#include <stdint.h>

typedef struct cron_expr cron_expr;

/* Parse `text` (not retained; the caller keeps ownership). Returns a new
 * expression owned by the caller, freed with cron_free; NULL on error, with a
 * NUL-terminated message naming the field and the bad token written to `err`
 * (truncated to err_len; err may be NULL when err_len is 0), e.g.
 * "cron: minute field: 61 is out of range 0-59". */
cron_expr *cron_parse(const char *text, char *err, size_t err_len);

/* Free an expression from cron_parse. NULL is a no-op. */
void cron_free(cron_expr *c);

/* The first fire time strictly after `after_us` (unix microseconds, UTC), always
 * at second 0 of a minute, in unix microseconds; -1 if there is none within five
 * years after `after_us` (e.g. "0 0 30 2 *"), or if the answer would not fit in
 * an int64_t (-1 is never a real answer: those are whole minutes). Skips whole
 * months and days, so even an impossible expression costs only a few thousand
 * steps, not millions. `c` is only read (borrowed for the call). */
int64_t cron_next(const cron_expr *c, int64_t after_us);

#endif
