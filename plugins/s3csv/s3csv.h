/* s3csv.h — the S3/CSV connector's parts and what they share.
 *
 * One sync job imports every new or changed CSV object under a bucket and
 * prefix of one connection, in key order, as one signal per row:
 *
 *   s3csv.c     descriptor, plugin config, init, the sync loop, check_connection
 *   settings.c  the connection's config (api->connection_config) -> s3csv_settings
 *   schema.c    column -> field mapping and typed validation of one value
 *   s3.c        URLs (path or virtual-host style), ListObjectsV2, S3 errors
 *   s3_xml.c    the few XML documents S3 answers with
 *   cursor.c    the cursor: finished objects and the offset in the current one
 *   import.c    one object: ranged streaming GET -> CSV parser -> batches
 *   rows.c      one CSV record -> a signal or a dead letter
 *
 * Nothing here is global: everything lives in the job (s3csv_job) or in the
 * state returned by init. */
#ifndef S3CSV_H
#define S3CSV_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "csv_parser.h"
#include "ingest/plugin.h"

#define S3CSV_VERSION "1.0.0"
#define S3CSV_STREAM "objects"
#define S3CSV_DEFAULT_KIND "s3csv.row"

/* ---- plugin group config (hostd.conf plugins.s3csv) --------------------- */

typedef struct s3csv_conf {
    int64_t batch_rows;       /* rows (and dead letters) per commit */
    int64_t list_page_size;   /* ListObjectsV2 max-keys */
    int64_t max_record_bytes; /* largest CSV record accepted */
    int64_t stall_timeout_ms; /* a download with no byte for this long fails */
} s3csv_conf;

typedef struct s3csv_state {
    const ingest_host_api *api; /* valid until unload */
    ingest_ctx *ctx;            /* valid until shutdown() returns */
    const s3csv_conf *conf;     /* host-owned, valid until shutdown() returns */
    ingest_metric *m_rows, *m_rejected, *m_objects, *m_bytes;
} s3csv_state;

/* ---- schema (schema.c) ------------------------------------------------- */

typedef enum s3csv_type {
    S3CSV_STRING = 0,
    S3CSV_INT,
    S3CSV_FLOAT,
    S3CSV_BOOL,
    S3CSV_TIMESTAMP,
    S3CSV_ENUM,
} s3csv_type;

/* How timestamps are read and written; the host's functions, so the
 * connector and the host agree on RFC 3339. */
typedef struct s3csv_clock {
    int (*parse_time)(const char *text, int64_t *out_us);
    void (*format_time)(int64_t us, char out[32]);
} s3csv_clock;

/* One mapped column. Strings are owned by the column (s3csv_column_free). */
typedef struct s3csv_column {
    char *column; /* header name; NULL when addressed by index */
    size_t index; /* 1-based column number when column is NULL */
    char *field;  /* payload member name */
    s3csv_type type;
    char *format;  /* timestamp: strptime format, "unix", "unix_ms"; NULL = RFC 3339 */
    char **values; /* enum: the allowed values */
    size_t n_values;
    int required;       /* an empty value is an error (unless a default is given) */
    char *default_text; /* used for an empty or missing value; validated at parse time */
} s3csv_column;

/* Parse one schema entry (a JSON object) into *col; 0, or -1 with why. */
int s3csv_column_parse(json_object *entry, size_t position, const s3csv_clock *clock,
                       s3csv_column *col, char *why, size_t why_len);
void s3csv_column_free(s3csv_column *col);

/* Convert `len` bytes of text (NUL-terminated at text[len]) to the
 * column's type: *out is a new json-c value the caller owns (NULL for an
 * empty optional value without default, i.e. JSON null). 0, or -1 with a
 * reason in why (never holding more than 64 bytes of the value). */
int s3csv_convert(const s3csv_column *col, const s3csv_clock *clock, const char *text, size_t len,
                  json_object **out, char *why, size_t why_len);

/* The name of a type for messages ("int", ...). */
const char *s3csv_type_name(s3csv_type t);

/* ---- connection settings (settings.c) ---------------------------------- */

typedef struct s3csv_settings {
    char *bucket, *prefix, *region, *endpoint; /* endpoint: no trailing '/' */
    int force_path_style;
    char delimiter;
    int has_header;
    char *suffix;                   /* only keys ending with it; NULL = all */
    char *kind;                     /* signal kind */
    char *purpose, *classification; /* provenance; NULL when not configured */
    char **key_fields; /* payload fields whose values identify a row; none = the row's SHA-256 */
    size_t n_key_fields;
    char *occurred_at_field; /* a timestamp field; NULL = the object's LastModified */
    s3csv_column *columns;   /* the schema; none = every column as a string */
    size_t n_columns;
    char *sigv4; /* "aws:amz:<region>:s3" */
} s3csv_settings;

/* Parse the connection's config JSON text; 0, or -1 with why. */
int s3csv_settings_parse(const char *json_text, const s3csv_clock *clock, s3csv_settings *out,
                         char *why, size_t why_len);
void s3csv_settings_free(s3csv_settings *s);

/* ---- S3 (s3.c, s3_xml.c) ----------------------------------------------- */

typedef struct s3csv_object {
    char *key;
    char *etag; /* without its quotes */
    uint64_t size;
    int64_t last_modified_us;
} s3csv_object;

typedef struct s3csv_listing {
    s3csv_object *objects;
    size_t n_objects;
    int truncated;
    char *next_token; /* NextContinuationToken, or NULL */
} s3csv_listing;

/* Parse a ListBucketResult document. 0, or -1 when it is not one. */
int s3csv_parse_listing(const char *xml, size_t len, const s3csv_clock *clock, s3csv_listing *out);
void s3csv_listing_free(s3csv_listing *l);
/* The Code and Message of an S3 Error document into the buffers ("" when
 * absent). */
void s3csv_parse_error(const char *xml, size_t len, char *code, size_t code_len, char *message,
                       size_t message_len);

/* Percent-encode as SigV4 wants it: unreserved characters as they are,
 * '/' too when keep_slash, everything else %XX (upper case). malloc'd. */
char *s3csv_uri_encode(const char *text, int keep_slash);

/* The URL of the bucket (key NULL) or of an object; malloc'd, NULL on OOM. */
char *s3csv_url(const s3csv_settings *s, const char *key);

struct s3csv_job;
/* One GET of `url` signed with the connection's credentials (headers
 * borrowed; sink may be NULL). *resp as api->http_request leaves it. */
int s3csv_get(struct s3csv_job *jb, const char *url, const ingest_header *headers, size_t n_headers,
              int (*sink)(void *, const void *, size_t), void *arg, ingest_http_response **resp);
/* One ListObjectsV2 page into *out (free with s3csv_listing_free). */
int s3csv_list_page(struct s3csv_job *jb, const char *start_after, const char *token,
                    int64_t max_keys, s3csv_listing *out);
/* The status for a failed request (rc, or an HTTP error in resp), logged
 * with S3's error code and message and set as the plugin's last error. */
int s3csv_status(struct s3csv_job *jb, int rc, const ingest_http_response *resp, const char *what);

/* ---- cursor (cursor.c) -------------------------------------------------- */

/* The object being imported, as committed with its last batch. */
typedef struct s3csv_position {
    char *key, *etag;
    uint64_t offset; /* first byte not yet imported */
    uint64_t line;   /* the physical line at offset */
    char **header;   /* the header row, to resume mid-object */
    size_t n_header;
} s3csv_position;

/* An object version already imported, by key and ETag. */
typedef struct s3csv_seen {
    char *key, *etag;
    int64_t last_modified_us;
} s3csv_seen;

typedef struct s3csv_seen_list {
    s3csv_seen *items;
    size_t n, cap;
} s3csv_seen_list;

typedef struct s3csv_cursor {
    int64_t since_us; /* objects modified before this were imported by a finished pass */
    /* Imported objects modified at or after since_us: a later pass, which
     * looks at them again (the look-back covers clock skew), skips these
     * exact versions instead of importing them (and their dead letters)
     * once more. */
    s3csv_seen_list recent;
    s3csv_seen_list pass_recent; /* the same, gathered by the pass under way */
    int in_pass;                 /* a pass is under way */
    int64_t started_us;          /* when it started listing */
    int full;                    /* it re-reads everything (a full refresh) */
    char *job_id;                /* the job that started it */
    char *after;                 /* the last object it finished ("" = none yet) */
    s3csv_position cur;          /* cur.key NULL = between objects */
} s3csv_cursor;

/* Parse a cursor value; NULL text is a fresh cursor. 0, or -1 when the
 * text is not a cursor of this connector (then *c is fresh). */
int s3csv_cursor_parse(const char *text, s3csv_cursor *c);
/* The cursor as JSON text, malloc'd; NULL on OOM. */
char *s3csv_cursor_text(const s3csv_cursor *c);
void s3csv_cursor_free(s3csv_cursor *c);
/* Add a version to a list (copied); 0, or -1 on OOM. */
int s3csv_seen_add(s3csv_seen_list *l, const char *key, const char *etag, int64_t last_modified_us);
/* Whether the list holds this key with this ETag. */
int s3csv_seen_has(const s3csv_seen_list *l, const char *key, const char *etag);
void s3csv_seen_free(s3csv_seen_list *l);
void s3csv_position_free(s3csv_position *p);

/* ---- a job (s3csv.c, import.c, rows.c) ---------------------------------- */

typedef struct s3csv_job {
    s3csv_state *st;
    const ingest_host_api *api;
    ingest_run *run;
    const ingest_job *job;
    s3csv_settings settings;
    s3csv_clock clock;
    s3csv_cursor cursor;
    char *ns;            /* dedupe namespace: bucket, prefix and kind */
    char ns_tag[17];     /* its SHA-256, 16 hex digits, in every dedupe key */
    int64_t lookback_us; /* a finished pass's since: its start minus this */
    long long rows, rejected, objects;
} s3csv_job;

/* Import one object from the cursor's position in it (or from its start),
 * committing as it goes; the last commit marks it finished in the cursor.
 * A status: INGEST_OK also when the object vanished or was rejected whole. */
int s3csv_import_object(s3csv_job *jb, const s3csv_object *obj);

/* Commit queued rows and dead letters with the cursor as it stands. */
int s3csv_commit(s3csv_job *jb);

/* Per-object row context (rows.c). */
typedef struct s3csv_rows {
    s3csv_job *jb;
    const s3csv_object *obj;
    char *uri;         /* s3://bucket/key */
    char *prov_tail;   /* the object's constant provenance members, JSON text without braces */
    size_t *positions; /* schema column -> 0-based position; SIZE_MAX = absent */
    char **names;      /* no schema: payload member per column */
    size_t n_names;
    char *scratch; /* hashing buffer */
    size_t scratch_cap;
    int rejected_whole; /* the object was refused at its header */
} s3csv_rows;

/* Prepare for an object (after its header is known, `header` may be NULL
 * without one). 0, or a negative status; an object refused whole (a
 * required column missing, a bad header) gets one dead letter and
 * rows->rejected_whole. */
int s3csv_rows_begin(s3csv_rows *rows, s3csv_job *jb, const s3csv_object *obj,
                     const csv_field *header, size_t n_header, uint64_t header_line);
/* One data record -> a signal or a dead letter. A status. */
int s3csv_rows_record(s3csv_rows *rows, const csv_record *rec);
/* Dead letter for a problem with the object as a whole. */
int s3csv_reject_object(s3csv_job *jb, const s3csv_object *obj, uint64_t line, const char *column,
                        const char *reason);
void s3csv_rows_end(s3csv_rows *rows);

#endif
