/* rows.c — one CSV record becomes one signal, or one dead letter that says
 * where it was (object, line, column) and why. What stays the same for a
 * whole object (column positions, payload names, the provenance members)
 * is worked out once when its header is known. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3csv.h"

#define TEXT_MAX 256 /* bytes of an offending value kept in a dead letter */
#define ABSENT ((size_t)-1)

/* ---- dead letters ------------------------------------------------------- */

/* At most TEXT_MAX bytes cut on a UTF-8 boundary, NULs shown as U+FFFD
 * (PostgreSQL's jsonb cannot hold \u0000). malloc'd. */
static char *safe_text(const char *text, size_t len)
{
    size_t n = len;
    if (n > TEXT_MAX) {
        n = TEXT_MAX;
        while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
            n--;
    }
    char *out = malloc(n * 3 + 1), *o = out;
    for (size_t i = 0; out && i < n; i++) {
        if (text[i] == '\0') {
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3;
        } else {
            *o++ = text[i];
        }
    }
    if (out)
        *o = '\0';
    return out;
}

typedef struct reject_info {
    uint64_t line;
    const char *column; /* NULL: the record or object as a whole */
    const char *reason;
    const char *text; /* the offending value, or NULL */
    size_t text_len;
} reject_info;

static int reject(s3csv_job *jb, const s3csv_object *obj, const reject_info *r)
{
    json_object *d = json_object_new_object();
    int with_text = r->text && r->text_len; /* an empty value says nothing more */
    char *uri = NULL, *text = with_text ? safe_text(r->text, r->text_len) : NULL;
    if (!d || asprintf(&uri, "s3://%s/%s", jb->settings.bucket, obj->key) < 0 ||
        (with_text && !text)) {
        json_object_put(d);
        free(text);
        return INGEST_ENOMEM;
    }
    json_object_object_add(d, "object", json_object_new_string(uri));
    json_object_object_add(d, "bucket", json_object_new_string(jb->settings.bucket));
    json_object_object_add(d, "key", json_object_new_string(obj->key));
    json_object_object_add(d, "etag", json_object_new_string(obj->etag));
    json_object_object_add(d, "line", json_object_new_int64((int64_t)r->line));
    json_object_object_add(d, "column", r->column ? json_object_new_string(r->column) : NULL);
    json_object_object_add(d, "reason", json_object_new_string(r->reason));
    if (text)
        json_object_object_add(d, "text", json_object_new_string(text));
    char *error = NULL;
    int rc = INGEST_ENOMEM;
    if (asprintf(&error, "%s line %" PRIu64 "%s%s: %s", uri, r->line, r->column ? ", column " : "",
                 r->column ? r->column : "", r->reason) >= 0)
        rc = jb->api->reject(jb->run, error,
                             json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN));
    if (rc == INGEST_OK) {
        jb->rejected++;
        jb->api->metric_add(jb->st->m_rejected, 1);
    }
    free(error);
    free(uri);
    free(text);
    json_object_put(d);
    return rc;
}

int s3csv_reject_object(s3csv_job *jb, const s3csv_object *obj, uint64_t line, const char *column,
                        const char *reason)
{
    reject_info r = {.line = line, .column = column, .reason = reason};
    return reject(jb, obj, &r);
}

/* ---- per object ---------------------------------------------------------- */

void s3csv_rows_end(s3csv_rows *rows)
{
    free(rows->uri);
    free(rows->prov_tail);
    free(rows->positions);
    for (size_t i = 0; i < rows->n_names; i++)
        free(rows->names[i]);
    free(rows->names);
    free(rows->scratch);
    memset(rows, 0, sizeof *rows);
}

/* The object's provenance members, as JSON text without the braces, so
 * each row only prepends its line. The host adds the rest (source_uri
 * s3://bucket/key, source_id, content_sha256, batch_id, job_id, the
 * plugin's name and version, ingested_at); every byte here is stored with
 * every row, so nothing the host already records is repeated. */
static char *provenance_tail(s3csv_job *jb, const s3csv_object *obj)
{
    const s3csv_settings *s = &jb->settings;
    json_object *p = json_object_new_object();
    json_object_object_add(p, "etag", json_object_new_string(obj->etag));
    if (s->purpose)
        json_object_object_add(p, "purpose", json_object_new_string(s->purpose));
    if (s->classification)
        json_object_object_add(p, "classification", json_object_new_string(s->classification));
    const char *text =
        json_object_to_json_string_ext(p, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    size_t n = text ? strlen(text) : 0;
    char *tail = n >= 2 ? strndup(text + 1, n - 2) : NULL; /* drop '{' and '}' */
    json_object_put(p);
    return tail;
}

static size_t header_index(const csv_field *header, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (header[i].len == strlen(name) && memcmp(header[i].data, name, header[i].len) == 0)
            return i;
    return ABSENT;
}

/* Schema columns -> positions in this object's records. */
static int resolve_columns(s3csv_rows *rows, const csv_field *header, size_t n_header,
                           uint64_t line)
{
    const s3csv_settings *s = &rows->jb->settings;
    rows->positions = calloc(s->n_columns, sizeof *rows->positions);
    if (!rows->positions)
        return INGEST_ENOMEM;
    for (size_t i = 0; i < s->n_columns; i++) {
        const s3csv_column *c = &s->columns[i];
        rows->positions[i] = c->column ? header_index(header, n_header, c->column) : c->index - 1;
        if (rows->positions[i] == ABSENT && c->required && !c->default_text) {
            rows->rejected_whole = 1;
            return s3csv_reject_object(rows->jb, rows->obj, line, c->column,
                                       "required column is not in the header row");
        }
    }
    return INGEST_OK;
}

static int name_taken(const s3csv_rows *rows, const char *name)
{
    for (size_t i = 0; i < rows->n_names; i++)
        if (strcmp(rows->names[i], name) == 0)
            return 1;
    return 0;
}

/* Payload member names from the header: an empty name becomes column_N,
 * a repeated one name_N (N its column, then counting up), so every member
 * is unique. */
static int name_columns(s3csv_rows *rows, const csv_field *header, size_t n_header)
{
    rows->names = calloc(n_header ? n_header : 1, sizeof *rows->names);
    if (!rows->names)
        return INGEST_ENOMEM;
    for (size_t i = 0; i < n_header; i++) {
        char *name = header[i].len ? strdup(header[i].data) : NULL;
        for (size_t n = i + 1; !name || name_taken(rows, name); n++) {
            free(name);
            if (asprintf(&name, "%s_%zu", header[i].len ? header[i].data : "column", n) < 0)
                return INGEST_ENOMEM;
        }
        rows->names[rows->n_names++] = name;
    }
    return INGEST_OK;
}

/* Named fields the config relies on must be in a schema-less object's header. */
static int check_named_fields(s3csv_rows *rows, uint64_t line)
{
    const s3csv_settings *s = &rows->jb->settings;
    for (size_t i = 0; i <= s->n_key_fields; i++) {
        const char *f = i < s->n_key_fields ? s->key_fields[i] : s->occurred_at_field;
        int found = !f;
        for (size_t j = 0; !found && j < rows->n_names; j++)
            found = strcmp(rows->names[j], f) == 0;
        if (!found && (rows->n_names || s->has_header)) {
            rows->rejected_whole = 1;
            return s3csv_reject_object(rows->jb, rows->obj, line, f,
                                       "a key or occurred_at field is not in the header row");
        }
    }
    return INGEST_OK;
}

int s3csv_rows_begin(s3csv_rows *rows, s3csv_job *jb, const s3csv_object *obj,
                     const csv_field *header, size_t n_header, uint64_t header_line)
{
    memset(rows, 0, sizeof *rows);
    rows->jb = jb;
    rows->obj = obj;
    if (asprintf(&rows->uri, "s3://%s/%s", jb->settings.bucket, obj->key) < 0) {
        rows->uri = NULL;
        return INGEST_ENOMEM;
    }
    rows->prov_tail = provenance_tail(jb, obj);
    if (!rows->prov_tail)
        return INGEST_ENOMEM;
    for (size_t i = 0; i < n_header; i++)
        if (memchr(header[i].data, '\0', header[i].len)) {
            rows->rejected_whole = 1;
            return s3csv_reject_object(jb, obj, header_line, NULL,
                                       "the header row holds a NUL byte");
        }
    /* The names also label the columns in dead letters, schema or not. */
    int rc = name_columns(rows, header, n_header);
    if (rc != INGEST_OK)
        return rc;
    if (jb->settings.n_columns)
        return resolve_columns(rows, header, n_header, header_line);
    return check_named_fields(rows, header_line);
}

/* ---- per record ---------------------------------------------------------- */

/* The payload member name of column i of a schema-less object without a
 * header row ("column_<i+1>"), made when first needed. */
static const char *column_name(s3csv_rows *rows, size_t i)
{
    if (i < rows->n_names)
        return rows->names[i];
    char **grown = realloc(rows->names, (i + 1) * sizeof *grown);
    if (!grown)
        return NULL;
    rows->names = grown;
    while (rows->n_names <= i) {
        if (asprintf(&rows->names[rows->n_names], "column_%zu", rows->n_names + 1) < 0)
            return NULL;
        rows->n_names++;
    }
    return rows->names[i];
}

static const char *schema_column_name(const s3csv_column *c, char buf[32])
{
    if (c->column)
        return c->column;
    snprintf(buf, 32, "%zu", c->index);
    return buf;
}

/* A record's values by the schema. 0, or a status; a bad value rejects the
 * record (*rejected set). */
static int payload_by_schema(s3csv_rows *rows, const csv_record *rec, json_object *payload,
                             int *rejected)
{
    s3csv_job *jb = rows->jb;
    for (size_t i = 0; i < jb->settings.n_columns; i++) {
        const s3csv_column *c = &jb->settings.columns[i];
        size_t pos = rows->positions[i];
        const csv_field *f = pos != ABSENT && pos < rec->nfields ? &rec->fields[pos] : NULL;
        json_object *v = NULL;
        char why[200], name[32];
        if (s3csv_convert(c, &jb->clock, f ? f->data : NULL, f ? f->len : 0, &v, why, sizeof why) <
            0) {
            *rejected = 1;
            reject_info r = {rec->line, schema_column_name(c, name), why, f ? f->data : NULL,
                             f ? f->len : 0};
            return reject(jb, rows->obj, &r);
        }
        json_object_object_add_ex(payload, c->field, v,
                                  JSON_C_OBJECT_ADD_KEY_IS_NEW | JSON_C_OBJECT_KEY_IS_CONSTANT);
    }
    return INGEST_OK;
}

static int payload_as_strings(s3csv_rows *rows, const csv_record *rec, json_object *payload,
                              int *rejected)
{
    for (size_t i = 0; i < rec->nfields; i++) {
        const csv_field *f = &rec->fields[i];
        const char *name = column_name(rows, i);
        if (!name)
            return INGEST_ENOMEM;
        if (memchr(f->data, '\0', f->len)) {
            *rejected = 1;
            reject_info r = {rec->line, name,
                             "holds a NUL byte, which PostgreSQL cannot store "
                             "in JSON",
                             f->data, f->len};
            return reject(rows->jb, rows->obj, &r);
        }
        json_object_object_add_ex(payload, name, json_object_new_string_len(f->data, (int)f->len),
                                  JSON_C_OBJECT_ADD_KEY_IS_NEW | JSON_C_OBJECT_KEY_IS_CONSTANT);
    }
    return INGEST_OK;
}

/* A parser problem with the record as a whole (or a column of it). */
static int reject_malformed(s3csv_rows *rows, const csv_record *rec)
{
    char reason[160], name[32];
    const char *column = NULL;
    if (rec->error == CSV_ERR_FIELD_COUNT)
        snprintf(reason, sizeof reason, "has %zu fields, the header row has %zu", rec->nfields,
                 rec->expected_fields);
    else
        snprintf(reason, sizeof reason, "malformed CSV: %s", csv_error_str(rec->error));
    if (rec->error_field) {
        snprintf(name, sizeof name, "%zu", rec->error_field);
        column = rec->error_field <= rows->n_names ? rows->names[rec->error_field - 1] : name;
    }
    reject_info r = {rec->error_line ? rec->error_line : rec->line, column, reason, NULL, 0};
    return reject(rows->jb, rows->obj, &r);
}

/* ---- identity -------------------------------------------------------------- */

static int scratch_reserve(s3csv_rows *rows, size_t need)
{
    if (need <= rows->scratch_cap)
        return 0;
    size_t cap = rows->scratch_cap ? rows->scratch_cap : 1024;
    while (cap < need)
        cap *= 2;
    char *grown = realloc(rows->scratch, cap);
    if (!grown)
        return -1;
    rows->scratch = grown;
    rows->scratch_cap = cap;
    return 0;
}

/* Append to the scratch buffer at *used. */
static int scratch_add(s3csv_rows *rows, size_t *used, const void *data, size_t len)
{
    if (scratch_reserve(rows, *used + len + 1) < 0)
        return -1;
    memcpy(rows->scratch + *used, data, len);
    *used += len;
    rows->scratch[*used] = '\0';
    return 0;
}

/* The row's SHA-256: its fields back to back, each with its NUL (the
 * parser stores them so; no field holds a NUL by now). */
static void row_sha256(s3csv_rows *rows, const csv_record *rec, char out[65])
{
    if (!rec->nfields) {
        rows->jb->api->sha256_hex("", 0, out);
        return;
    }
    const csv_field *last = &rec->fields[rec->nfields - 1];
    size_t len = (size_t)(last->data + last->len + 1 - rec->fields[0].data);
    rows->jb->api->sha256_hex(rec->fields[0].data, len, out);
}

/* The key fields' typed values as a JSON array text ([1001] or
 * ["a",2]) into the scratch buffer; *source_id gets them comma-separated
 * (malloc'd). -1 with *empty naming a key field without a value. */
static int key_material(s3csv_rows *rows, json_object *payload, size_t *used, char **source_id,
                        const char **empty)
{
    const s3csv_settings *s = &rows->jb->settings;
    size_t id_len = 0;
    char *id = NULL;
    FILE *f = open_memstream(&id, &id_len);
    int rc = f ? scratch_add(rows, used, "[", 1) : -1;
    for (size_t i = 0; rc == 0 && i < s->n_key_fields; i++) {
        json_object *v = NULL;
        json_object_object_get_ex(payload, s->key_fields[i], &v);
        if (!v || (json_object_is_type(v, json_type_string) && !json_object_get_string_len(v))) {
            *empty = s->key_fields[i];
            rc = -1;
            break;
        }
        const int flags = JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE;
        const char *typed = json_object_to_json_string_ext(v, flags);
        const char *text =
            json_object_is_type(v, json_type_string) ? json_object_get_string(v) : typed;
        rc = i ? scratch_add(rows, used, ",", 1) : 0;
        if (rc == 0)
            rc = scratch_add(rows, used, typed, strlen(typed));
        fprintf(f, "%s%s", i ? "," : "", text);
    }
    if (rc == 0)
        rc = scratch_add(rows, used, "]", 1);
    if (f && fclose(f) != 0)
        rc = -1;
    if (rc < 0)
        free(id);
    else
        *source_id = id;
    return rc;
}

/* Key material longer than this is hashed in the dedupe key. */
#define KEY_TEXT_MAX 200

typedef struct identity {
    char dedupe[KEY_TEXT_MAX + 32];
    char row_sha[65]; /* "" when the key fields identify the row */
    char *source_id;
} identity;

/* Dedupe key: "k:<ns>:<key values as a JSON array>" (their SHA-256 as
 * "k:<ns>:sha256:<hex>" when longer than KEY_TEXT_MAX), else
 * "r:<ns>:<the row's SHA-256>", where <ns> stands for the connection's
 * bucket, prefix and kind. So the same row from another object or an
 * upload of the same file again stores nothing new. Key values are kept
 * readable when short: short keys, often in order, are cheaper for the
 * unique index than hashes. */
static int key_identity(s3csv_rows *rows, const csv_record *rec, json_object *payload, identity *id,
                        int *rejected)
{
    s3csv_job *jb = rows->jb;
    size_t used = 0;
    const char *empty = NULL;
    if (key_material(rows, payload, &used, &id->source_id, &empty) < 0) {
        if (!empty)
            return INGEST_ENOMEM;
        *rejected = 1;
        reject_info r = {rec->line, empty, "key field has no value", NULL, 0};
        return reject(jb, rows->obj, &r);
    }
    if (used <= KEY_TEXT_MAX) {
        snprintf(id->dedupe, sizeof id->dedupe, "k:%s:%s", jb->ns_tag, rows->scratch);
        return INGEST_OK;
    }
    char hex[65];
    jb->api->sha256_hex(rows->scratch, used, hex);
    snprintf(id->dedupe, sizeof id->dedupe, "k:%s:sha256:%s", jb->ns_tag, hex);
    return INGEST_OK;
}

static int row_identity(s3csv_rows *rows, const csv_record *rec, json_object *payload, identity *id,
                        int *rejected)
{
    s3csv_job *jb = rows->jb;
    if (jb->settings.n_key_fields)
        return key_identity(rows, rec, payload, id, rejected);
    row_sha256(rows, rec, id->row_sha);
    snprintf(id->dedupe, sizeof id->dedupe, "r:%s:%s", jb->ns_tag, id->row_sha);
    if (asprintf(&id->source_id, "%s:%" PRIu64, rows->obj->key, rec->line) < 0) {
        id->source_id = NULL;
        return INGEST_ENOMEM;
    }
    return INGEST_OK;
}

/* When the row happened: occurred_at_field, else the object's LastModified. */
static int occurred_at(s3csv_rows *rows, const csv_record *rec, json_object *payload, int64_t *us,
                       int *rejected)
{
    s3csv_job *jb = rows->jb;
    json_object *v = NULL;
    *us = rows->obj->last_modified_us;
    const char *field = jb->settings.occurred_at_field;
    if (!field || !json_object_object_get_ex(payload, field, &v) || !v ||
        json_object_get_string_len(v) == 0)
        return INGEST_OK;
    if (jb->clock.parse_time(json_object_get_string(v), us) == INGEST_OK)
        return INGEST_OK;
    *rejected = 1;
    reject_info r = {rec->line, field, "occurred_at field is not an RFC 3339 timestamp",
                     json_object_get_string(v), (size_t)json_object_get_string_len(v)};
    return reject(jb, rows->obj, &r);
}

static int emit_row(s3csv_rows *rows, const csv_record *rec, json_object *payload,
                    const identity *id, int64_t occurred_us)
{
    s3csv_job *jb = rows->jb;
    char *prov = NULL;
    int n = id->row_sha[0]
                ? asprintf(&prov, "{\"line\":%" PRIu64 ",\"row_sha256\":\"%s\",%s}", rec->line,
                           id->row_sha, rows->prov_tail)
                : asprintf(&prov, "{\"line\":%" PRIu64 ",%s}", rec->line, rows->prov_tail);
    if (n < 0)
        return INGEST_ENOMEM;
    const char *text = json_object_to_json_string_ext(payload, JSON_C_TO_STRING_PLAIN |
                                                                   JSON_C_TO_STRING_NOSLASHESCAPE);
    ingest_signal sig = {
        .hdr = INGEST_ABI_HEADER(ingest_signal),
        .kind = jb->settings.kind,
        .dedupe_key = id->dedupe,
        .occurred_at_us = occurred_us,
        .payload_json = text,
        .source_id = id->source_id,
        .source_type = "s3",
        .source_uri = rows->uri,
        .provenance_json = prov,
    };
    int rc = text ? jb->api->emit(jb->run, &sig) : INGEST_ENOMEM;
    free(prov);
    if (rc == INGEST_OK) {
        jb->rows++;
        jb->api->metric_add(jb->st->m_rows, 1);
    }
    return rc;
}

int s3csv_rows_record(s3csv_rows *rows, const csv_record *rec)
{
    if (rec->error != CSV_OK)
        return reject_malformed(rows, rec);
    json_object *payload = json_object_new_object();
    if (!payload)
        return INGEST_ENOMEM;
    int rejected = 0;
    identity id = {.row_sha = ""};
    int64_t occurred_us = 0;
    int rc = rows->jb->settings.n_columns ? payload_by_schema(rows, rec, payload, &rejected)
                                          : payload_as_strings(rows, rec, payload, &rejected);
    if (rc == INGEST_OK && !rejected)
        rc = occurred_at(rows, rec, payload, &occurred_us, &rejected);
    if (rc == INGEST_OK && !rejected)
        rc = row_identity(rows, rec, payload, &id, &rejected);
    if (rc == INGEST_OK && !rejected)
        rc = emit_row(rows, rec, payload, &id, occurred_us);
    free(id.source_id);
    json_object_put(payload);
    return rc;
}
