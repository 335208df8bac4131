/* pagination.h — pure helpers for the common pagination styles of vendor
 * APIs: RFC 8288 Link headers (rel="next"), cursors inside JSON bodies, and
 * page/offset query parameters. No I/O, no global state; thread-safe. */
#ifndef HOSTD_PAGINATION_H
#define HOSTD_PAGINATION_H

#include <stddef.h>
#include <stdint.h>

/* The target of the first link in an RFC 8288 Link field value whose rel
 * parameter lists `rel` (relation types compare case-insensitively; rel may
 * be quoted or not and may hold several space-separated types). A relative
 * target is resolved against `base_url` when one is given (may be NULL).
 * Both arguments are borrowed for the call. Returns a malloc'd string the
 * caller frees, or NULL when there is no such link, the field is malformed
 * or memory ran out. */
char *pagination_link_rel(const char *link_header, const char *rel, const char *base_url);

/* pagination_link_rel(link_header, "next", base_url). */
char *pagination_link_next(const char *link_header, const char *base_url);

/* Read the cursor at a dotted `path` ("response_metadata.next_cursor",
 * "nextPageToken", "meta.next"; an all-digit segment indexes an array) from
 * a JSON document of `len` bytes (need not be NUL-terminated). All inputs
 * are borrowed for the call.
 *
 * Returns 0 and sets *cursor to a malloc'd string (the caller frees it), or
 * to NULL when the path is absent, null or "" (the last page). Numbers and
 * booleans come back as their JSON text. Returns -1 (and *cursor = NULL)
 * when the body is not valid JSON or memory ran out. */
int pagination_json_cursor(const char *body, size_t len, const char *path, char **cursor);

/* `url` with the query parameter `name` set to `value` (URL-encoded here;
 * pass it unencoded): earlier occurrences of name are removed, the new
 * pair is appended, every other parameter and the fragment are kept.
 * Arguments are borrowed. Returns a malloc'd URL the caller frees, or NULL
 * when url is not a valid absolute URL or memory ran out. */
char *pagination_url_set_param(const char *url, const char *name, const char *value);

/* pagination_url_set_param() with a decimal number, for page=N / offset=N. */
char *pagination_url_set_int(const char *url, const char *name, int64_t value);

#endif
