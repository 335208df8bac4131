/* util.h — small helpers shared by host modules (hashing via OpenSSL, time, strings). */
#ifndef HOSTD_UTIL_H
#define HOSTD_UTIL_H

#include <stddef.h>
#include <stdint.h>

void util_sha256_hex(const void *data, size_t len, char out[65]);
void util_hmac_sha256_hex(const void *key, size_t key_len, const void *data, size_t len,
                          char out[65]);
/* SHA-256 of a file's content as hex; -1 with errno on I/O failure. */
int util_sha256_file(const char *path, char out[65]);

struct json_object;
/* Strict JSON as PostgreSQL's jsonb accepts it (no comments, trailing
 * commas or text after the value) of at most max_len bytes, parsed with
 * json-c; the caller owns the result (json_object_put). NULL if invalid. */
struct json_object *util_json_parse_strict(const char *text, size_t max_len);

int64_t util_now_us(void);
/* Monotonic clock in milliseconds / microseconds. */
int64_t util_mono_ms(void);
int64_t util_mono_us(void);
/* RFC 3339 / ISO 8601 ("2024-01-02T03:04:05Z", fractions, offsets, "T" or
 * space). -1 if malformed. */
int util_parse_time(const char *text, int64_t *out_us);
/* "2024-01-02T03:04:05.123456Z" */
void util_format_time(int64_t us, char out[32]);

/* Random version-4 UUID text into out[37]. */
void util_uuid4(char out[37]);
/* A version 7 UUID (RFC 9562): unix milliseconds first, then 74 random
 * bits. Ids made one after the other sort by time, so a B-tree index on
 * them grows at its right edge instead of at random pages. */
void util_uuid7(char out[37]);
/* Non-zero if text is a UUID in canonical 8-4-4-4-12 hex form. */
int util_is_uuid(const char *text);

/* Split on sep, trimming blanks, dropping empty items. Returns a malloc'd
 * NULL-terminated array of malloc'd strings (count in *count); NULL on OOM. */
char **util_split(const char *text, char sep, size_t *count);
void util_strv_free(char **v);
/* Join with sep; malloc'd. */
char *util_join(char *const *items, size_t count, const char *sep);

/* Copy src to dst (both paths) with mode 0600 via a temporary name; -1 with errno. */
int util_copy_file(const char *src, const char *dst);
/* Remove a directory and the regular files directly in it. */
void util_rmdir_flat(const char *dir);

/* Uniform random double in [0, 1), from OpenSSL's RNG. */
double util_random01(void);

#endif
