/* import.c — one object: a streamed GET feeds the CSV parser, each record
 * becomes a signal or a dead letter, and every batch_rows of them commit
 * with the cursor position after them (the first byte and line not yet
 * imported, and the header row). Nothing but one record and the current
 * batch is ever in memory.
 *
 * Resuming, after a crash or a cut transfer: a one-byte ranged probe first
 * checks that the object is still the one the cursor describes (its ETag)
 * and that the server honours ranges on its plain bytes (no 200 for a
 * range, no Content-Encoding); then "Range: bytes=<offset>-" streams the
 * rest. When ranges cannot be trusted the object is read again from its
 * start and the records already committed are skipped. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "s3csv.h"

#define MAX_CUTS 5 /* transfers cut in a row without progress before giving up */

/* How one read of the object ended. */
typedef enum read_end {
    READ_DONE,    /* to its end, or the object is gone or refused whole */
    READ_CUT,     /* the transfer broke after some bytes: resume */
    READ_CHANGED, /* replaced since it was listed: the next pass imports it */
    READ_FAILED,  /* im->rc says why */
} read_end;

typedef struct import {
    s3csv_job *jb;
    const s3csv_object *obj;
    csv_parser *parser;
    s3csv_rows rows;
    int rows_ready;
    uint64_t done_offset, done_line; /* just after the last record handled */
    uint64_t skip_to;                /* records ending at or before this are already stored */
    int64_t pending;                 /* records handled since the last commit */
    int rc;                          /* why a callback stopped the parse */
    int refused;                     /* the object was refused whole */
} import;

int s3csv_commit(s3csv_job *jb)
{
    char *text = s3csv_cursor_text(&jb->cursor);
    if (!text)
        return INGEST_ENOMEM;
    int rc = jb->api->cursor_set(jb->run, S3CSV_STREAM, text);
    free(text);
    return rc;
}

/* Keep the header row in the cursor position, to parse from the middle. */
static int save_header(s3csv_position *pos, const csv_field *fields, size_t n)
{
    for (size_t i = 0; i < pos->n_header; i++)
        free(pos->header[i]);
    free(pos->header);
    pos->n_header = 0;
    pos->header = n ? calloc(n, sizeof *pos->header) : NULL;
    if (n && !pos->header)
        return INGEST_ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (!(pos->header[pos->n_header++] = strndup(fields[i].data, fields[i].len)))
            return INGEST_ENOMEM;
    return INGEST_OK;
}

static int commit_position(import *im)
{
    s3csv_position *pos = &im->jb->cursor.cur;
    pos->offset = im->done_offset;
    pos->line = im->done_line;
    im->pending = 0;
    return s3csv_commit(im->jb);
}

static int begin_rows(import *im, const csv_field *header, size_t n, uint64_t line)
{
    if (im->rows_ready)
        s3csv_rows_end(&im->rows); /* read again from the start: the header comes again */
    int rc = s3csv_rows_begin(&im->rows, im->jb, im->obj, header, n, line);
    im->rows_ready = 1;
    im->refused = im->rows.rejected_whole;
    return rc;
}

static int on_header(import *im, const csv_record *rec)
{
    if (rec->error != CSV_OK) {
        char reason[160];
        snprintf(reason, sizeof reason, "the header row is malformed (%s)",
                 csv_error_str(rec->error));
        im->refused = 1;
        return s3csv_reject_object(im->jb, im->obj, rec->line, NULL, reason);
    }
    int rc = save_header(&im->jb->cursor.cur, rec->fields, rec->nfields);
    if (rc == INGEST_OK)
        rc = begin_rows(im, rec->fields, rec->nfields, rec->line);
    return rc;
}

/* The parser's callback: returns non-zero to stop (a failure in im->rc,
 * or the object refused). */
static int on_record(const csv_record *rec, void *arg)
{
    import *im = arg;
    int rc = INGEST_OK, handled = 0;
    if (rec->is_header)
        rc = on_header(im, rec);
    else if (!im->rows_ready)
        rc = begin_rows(im, NULL, 0, rec->line);
    if (rc == INGEST_OK && !im->refused && !rec->is_header && rec->end_offset > im->skip_to) {
        rc = s3csv_rows_record(&im->rows, rec);
        handled = 1;
    }
    if (rc != INGEST_OK || im->refused) {
        im->rc = rc;
        return 1;
    }
    im->done_offset = rec->end_offset;
    im->done_line = rec->next_line;
    if (handled && ++im->pending >= im->jb->st->conf->batch_rows &&
        (rc = commit_position(im)) != INGEST_OK) {
        im->rc = rc;
        return 1;
    }
    return 0;
}

/* The body sink: every chunk straight into the parser. */
static int on_body(void *arg, const void *data, size_t len)
{
    import *im = arg;
    csv_status st = csv_parser_feed(im->parser, data, len);
    if (st == CSV_STATUS_NOMEM)
        im->rc = INGEST_ENOMEM;
    im->jb->api->metric_add(im->jb->st->m_bytes, (double)len);
    return st != CSV_STATUS_OK;
}

static int new_parser(import *im, uint64_t offset, uint64_t line)
{
    s3csv_job *jb = im->jb;
    const s3csv_position *pos = &jb->cursor.cur;
    csv_field *header = NULL;
    if (offset > 0 && pos->n_header) {
        header = calloc(pos->n_header, sizeof *header);
        if (!header)
            return INGEST_ENOMEM;
        for (size_t i = 0; i < pos->n_header; i++)
            header[i] = (csv_field){pos->header[i], strlen(pos->header[i])};
    }
    csv_options o = {.delimiter = jb->settings.delimiter,
                     .has_header = jb->settings.has_header,
                     .max_record_bytes = (size_t)jb->st->conf->max_record_bytes,
                     .start_offset = offset,
                     .start_line = line,
                     .header = header,
                     .header_count = header ? pos->n_header : 0};
    if (header && !im->rows_ready && begin_rows(im, header, pos->n_header, 1) != INGEST_OK) {
        free(header);
        return INGEST_ENOMEM;
    }
    csv_status st = csv_parser_new(&o, on_record, im, &im->parser);
    free(header);
    return st == CSV_STATUS_OK ? INGEST_OK : st == CSV_STATUS_NOMEM ? INGEST_ENOMEM : INGEST_EINVAL;
}

static int same_etag(const char *header_value, const char *etag)
{
    if (!header_value)
        return 1; /* nothing to compare with */
    size_t n = strlen(header_value);
    if (n >= 2 && header_value[0] == '"' && header_value[n - 1] == '"')
        return n - 2 == strlen(etag) && strncmp(header_value + 1, etag, n - 2) == 0;
    return strcmp(header_value, etag) == 0;
}

/* Can the object be read from `offset` with a range? READ_DONE when the
 * object ended or vanished, READ_CHANGED when it changed, READ_CUT when a
 * range is fine; im->skip_to set when ranges cannot be trusted. */
static read_end probe(import *im, const char *url, uint64_t offset)
{
    char range[64], if_match[300];
    snprintf(range, sizeof range, "bytes=%" PRIu64 "-%" PRIu64, offset, offset);
    snprintf(if_match, sizeof if_match, "\"%.250s\"", im->obj->etag);
    ingest_header h[] = {{"Range", range}, {"If-Match", if_match}};
    ingest_http_response *resp = NULL;
    int rc = s3csv_get(im->jb, url, h, im->obj->etag[0] ? 2 : 1, NULL, NULL, &resp);
    const ingest_host_api *api = im->jb->api;
    read_end end = READ_CUT;
    const char *encoding = rc == INGEST_OK ? api->http_header(resp, "Content-Encoding") : NULL;
    if (rc != INGEST_OK || (resp->status >= 300 && resp->status != 404 && resp->status != 412 &&
                            resp->status != 416)) {
        im->rc = s3csv_status(im->jb, rc, resp, "GetObject (range probe)");
        end = READ_FAILED;
    } else if (resp->status == 404 || resp->status == 416) {
        end = READ_DONE; /* gone, or nothing left after offset */
    } else if (resp->status == 412 || !same_etag(api->http_header(resp, "ETag"), im->obj->etag)) {
        end = READ_CHANGED;
    } else if (resp->status == 200 || (encoding && strcasecmp(encoding, "identity") != 0)) {
        im->skip_to = offset; /* ranges count other bytes than the parser's: re-read */
    }
    api->http_response_free(resp);
    return end;
}

/* The outcome of the streamed GET. */
static read_end stream_end(import *im, int rc, const ingest_http_response *resp)
{
    long status = resp ? resp->status : 0;
    if (rc == INGEST_OK && (status == 200 || status == 206)) {
        csv_status st = csv_parser_finish(im->parser);
        if (st == CSV_STATUS_OK || (st == CSV_STATUS_STOPPED && im->refused))
            return READ_DONE;
        im->rc = im->rc ? im->rc : INGEST_ENOMEM;
        return READ_FAILED;
    }
    if (rc == INGEST_ECANCELED && (im->rc || im->refused)) /* our callbacks stopped it */
        return im->refused && !im->rc ? READ_DONE : READ_FAILED;
    if (rc == INGEST_EIO && resp && status >= 200 && status < 300 && resp->body_len > 0)
        return READ_CUT;
    if (rc == INGEST_OK && (status == 404 || status == 416))
        return READ_DONE;
    if (rc == INGEST_OK && status == 412)
        return READ_CHANGED;
    im->rc = s3csv_status(im->jb, rc, resp, "GetObject");
    return READ_FAILED;
}

/* One streamed GET from done_offset on (from 0 when re-reading). */
static read_end read_once(import *im, const char *url)
{
    uint64_t offset = im->skip_to ? 0 : im->done_offset;
    if (offset > 0) {
        read_end p = probe(im, url, offset);
        if (p != READ_CUT)
            return p;
        offset = im->skip_to ? 0 : offset;
    }
    if ((im->rc = new_parser(im, offset, offset ? im->done_line : 1)) != INGEST_OK)
        return READ_FAILED;
    char range[64], if_match[300];
    snprintf(range, sizeof range, "bytes=%" PRIu64 "-", offset);
    snprintf(if_match, sizeof if_match, "\"%.250s\"", im->obj->etag);
    ingest_header h[2];
    size_t n = 0;
    if (offset > 0)
        h[n++] = (ingest_header){"Range", range};
    if (im->obj->etag[0])
        h[n++] = (ingest_header){"If-Match", if_match};
    ingest_http_response *resp = NULL;
    int rc = s3csv_get(im->jb, url, h, n, on_body, im, &resp);
    read_end end = stream_end(im, rc, resp);
    im->jb->api->http_response_free(resp);
    csv_parser_free(im->parser);
    im->parser = NULL;
    return end;
}

/* Read until the object's end, resuming cut transfers where the last
 * handled record ended. An object replaced since it was listed is left
 * for the next pass (its new LastModified is after this pass began);
 * what was stored of the old one stays stored. */
static int read_all(import *im, const char *url)
{
    int cuts = 0;
    for (;;) {
        uint64_t before = im->done_offset;
        read_end end = read_once(im, url);
        if (end == READ_DONE)
            return INGEST_OK;
        if (end == READ_FAILED)
            return im->rc ? im->rc : INGEST_EIO;
        if (end == READ_CHANGED) {
            im->jb->api->log(im->jb->st->ctx, im->jb->run, INGEST_LOG_WARN,
                             "object s3://%s/%s changed since it was listed; the next run "
                             "imports the new version",
                             im->jb->settings.bucket, im->obj->key);
            return INGEST_OK;
        }
        if (im->skip_to)
            im->skip_to = im->done_offset; /* handled records are queued or stored */
        cuts = im->done_offset > before ? 0 : cuts + 1;
        if (cuts >= MAX_CUTS)
            return INGEST_EIO;
        im->jb->api->log(im->jb->st->ctx, im->jb->run, INGEST_LOG_INFO,
                         "object s3://%s/%s: transfer cut; resuming at byte %" PRIu64,
                         im->jb->settings.bucket, im->obj->key, im->done_offset);
    }
}

/* Where to start: the cursor's position when it is this very object. */
static int position_for(import *im)
{
    s3csv_job *jb = im->jb;
    s3csv_position *pos = &jb->cursor.cur;
    if (pos->key && strcmp(pos->key, im->obj->key) == 0 && strcmp(pos->etag, im->obj->etag) == 0) {
        im->done_offset = pos->offset;
        im->done_line = pos->line;
        /* without its header row the middle cannot be parsed: re-read */
        if (pos->offset > 0 && jb->settings.has_header && !pos->n_header)
            im->skip_to = pos->offset;
        return INGEST_OK;
    }
    if (pos->key)
        jb->api->log(jb->st->ctx, jb->run, INGEST_LOG_INFO,
                     "object s3://%s/%s changed or went away mid-import; moving on",
                     jb->settings.bucket, pos->key);
    s3csv_position_free(pos);
    pos->key = strdup(im->obj->key);
    pos->etag = strdup(im->obj->etag);
    pos->line = 1;
    im->done_line = 1;
    return pos->key && pos->etag ? INGEST_OK : INGEST_ENOMEM;
}

/* The object is done: the cursor moves past it, with the last batch. */
static int finish_object(s3csv_job *jb, const s3csv_object *obj)
{
    s3csv_position_free(&jb->cursor.cur);
    free(jb->cursor.after);
    jb->cursor.after = strdup(obj->key);
    if (!jb->cursor.after)
        return INGEST_ENOMEM;
    /* the next pass looks at it again: let it know this version is done */
    if (obj->last_modified_us >= jb->cursor.started_us - jb->lookback_us &&
        !s3csv_seen_has(&jb->cursor.pass_recent, obj->key, obj->etag) &&
        s3csv_seen_add(&jb->cursor.pass_recent, obj->key, obj->etag, obj->last_modified_us) < 0)
        return INGEST_ENOMEM;
    jb->objects++;
    jb->api->metric_add(jb->st->m_objects, 1);
    return s3csv_commit(jb);
}

int s3csv_import_object(s3csv_job *jb, const s3csv_object *obj)
{
import im = {.jb = jb, .obj = obj };
    int rc = position_for(&im);
    char *url = rc == INGEST_OK ? s3csv_url(&jb->settings, obj->key) : NULL;
    if (rc == INGEST_OK && !url)
        rc = INGEST_ENOMEM;
    long long rows = jb->rows, rejected = jb->rejected;
    if (rc == INGEST_OK && obj->size > 0 && im.done_offset < obj->size)
        rc = read_all(&im, url);
    if (rc == INGEST_OK)
        rc = finish_object(jb, obj);
    if (rc == INGEST_OK)
        jb->api->log(jb->st->ctx, jb->run, INGEST_LOG_INFO,
                     "object s3://%s/%s: %lld row(s) stored or already present, %lld dead "
                     "letter(s)%s",
                     jb->settings.bucket, obj->key, jb->rows - rows, jb->rejected - rejected,
                     im.refused ? " (refused whole)" : "");
    s3csv_rows_end(&im.rows);
    free(url);
    return rc;
}
