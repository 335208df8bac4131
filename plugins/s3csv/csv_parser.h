/* csv_parser.h — streaming RFC 4180 CSV parser for the S3/CSV connector.
 *
 * The parser is fed an object (an S3 download) in byte chunks of any size, in
 * order; a chunk boundary may fall anywhere (inside a quoted field, between CR
 * and LF, inside a UTF-8 sequence or the BOM). It calls back once per complete
 * record with its fields, the physical line it started on and its byte range
 * in the object. It never holds more than one record plus a few bytes of
 * carry-over, never the whole object: whatever the input, its memory stays
 * under about 3 * max_record_bytes + 70 * max_fields bytes (the record
 * buffers and the saved header; 3.3 MiB with the defaults).
 *
 * A parse can start at any record boundary of an object (a ranged GET after a
 * crash): give the record's byte offset, its line number and the header row
 * saved from the first parse, and the records come out exactly as they would
 * have in one pass.
 *
 * Syntax accepted
 * ---------------
 * - Records end at LF, CRLF or a lone CR; each of these is one physical line
 *   break, inside quoted fields too (so line numbers match what an editor
 *   shows). A record's terminator belongs to it: end_offset is past the LF of
 *   a CRLF even when CR and LF arrive in different chunks.
 * - Fields are separated by the configured one-byte delimiter (',' default;
 *   ';' and '\t' are common). A field that starts with '"' is quoted: it may
 *   hold delimiters, CR, LF and '""' (one '"'); the quotes are removed.
 * - Empty fields are fields: "a,,b" has three, "a," has two, '""' is an empty
 *   field.
 * - A blank line (a line break where a record would start) is NOT a record:
 *   it is skipped but counted in line numbers. So blank and trailing empty
 *   lines pass silently instead of becoming records of one empty field, and
 *   a one-column file writes an empty value as "". A line holding only
 *   spaces is a record (one field of spaces): spaces are data.
 * - The last record needs no line break; "a\n" is one record, not two.
 * - A UTF-8 byte order mark (EF BB BF) at offset 0 is skipped; offsets stay
 *   offsets in the object, so the first record then starts at offset 3.
 * - Field bytes must be valid UTF-8 (no overlongs, surrogates or code points
 *   above U+10FFFF). NUL bytes are valid data.
 * - With has_header, the first record is the header row. It is delivered
 *   too (is_header set) and kept for csv_parser_header and width checks.
 *
 * Malformed input, and the recovery for each (csv_error)
 * ------------------------------------------------------
 * Errors are per record: the record is still delivered (csv_record.error
 * says what was wrong, error_field/error_offset/error_line where) and parsing
 * goes on with the next record. Only the first error of a record is kept,
 * except that CSV_ERR_RECORD_TOO_LARGE and CSV_ERR_UNTERMINATED_QUOTE replace
 * an earlier one and CSV_ERR_FIELD_COUNT is reported only for an otherwise
 * clean record.
 * - CSV_ERR_QUOTE_IN_FIELD: '"' inside an unquoted field (a"b). The quote is
 *   kept as a literal character and the field goes on.
 * - CSV_ERR_TEXT_AFTER_QUOTE: a closing quote followed by something other
 *   than a delimiter or line break ("ab"c). What follows is appended to the
 *   field as unquoted text ("abc") up to the next delimiter or line break.
 * - CSV_ERR_INVALID_UTF8: the bytes are delivered unchanged; error_field is
 *   the 1-based column and error_offset the first byte of the bad sequence.
 * - CSV_ERR_UNTERMINATED_QUOTE: input ended inside a quoted field. The field
 *   holds everything from its opening quote (error_offset) to the end of
 *   input, line breaks included; this is the last record of the input. (If
 *   that is more than max_record_bytes, the cap below strikes first.)
 * - CSV_ERR_RECORD_TOO_LARGE: the record's bytes (terminator excluded) pass
 *   max_record_bytes, or it has more than max_fields fields. What was
 *   buffered is dropped; the parser skips raw bytes, quotes or not, to the
 *   next line break and starts a new record after it. The record is
 *   delivered with no fields, once the line break is found, with its full
 *   byte range and lines; error_offset is the first byte over the cap. If
 *   the cap was hit inside a quoted field, the rest of that field is then
 *   read as new records (usually flagged themselves). If the header row is
 *   too large there is no header, so no width checks.
 * - CSV_ERR_FIELD_COUNT: a record's field count differs from the header's
 *   (nfields vs expected_fields). Nothing is changed: the caller decides
 *   whether to pad, truncate or reject.
 *
 * Threading: a parser is used by one thread at a time; there is no global
 * state, so separate parsers may run in parallel. */
#ifndef S3CSV_CSV_PARSER_H
#define S3CSV_CSV_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Defaults used when the corresponding option is 0. */
#define CSV_DEFAULT_MAX_RECORD_BYTES ((size_t)1 << 20)
#define CSV_DEFAULT_MAX_FIELDS ((size_t)4096)

/* Results of the parser's calls. */
typedef enum csv_status {
    CSV_STATUS_OK = 0,
    CSV_STATUS_STOPPED, /* the record callback returned non-zero */
    CSV_STATUS_NOMEM,   /* out of memory; the parser is unusable */
    CSV_STATUS_INVALID, /* bad argument, or a call after finish/stop/failure */
} csv_status;

/* What was wrong with one record (see the recovery rules above). */
typedef enum csv_error {
    CSV_OK = 0,
    CSV_ERR_UNTERMINATED_QUOTE,
    CSV_ERR_QUOTE_IN_FIELD,
    CSV_ERR_TEXT_AFTER_QUOTE,
    CSV_ERR_INVALID_UTF8,
    CSV_ERR_FIELD_COUNT,
    CSV_ERR_RECORD_TOO_LARGE,
} csv_error;

/* One field: `len` bytes at `data`, quotes removed and "" unescaped.
 * data[len] is a NUL (handy for strtol & co.; a field may hold NULs itself).
 * The fields of one record are stored back to back, each followed by its
 * NUL, so fields[0].data up to fields[n-1].data + fields[n-1].len is one
 * contiguous block: a row can be hashed in one call. */
typedef struct csv_field {
    const char *data;
    size_t len;
} csv_field;

/* One record as passed to the callback. Everything it points to is owned by
 * the parser and valid only until the callback returns. */
typedef struct csv_record {
    const csv_field *fields; /* nfields entries; NULL when nfields is 0 */
    size_t nfields;
    size_t expected_fields; /* the header's field count (the header row: its
                               own); 0 without a header */
    bool is_header;         /* this record is the header row */
    uint64_t line;          /* 1-based physical line the record starts on */
    uint64_t next_line;     /* line + the line breaks in the record, its
                               terminator included: the line of end_offset */
    uint64_t offset;        /* byte offset in the object of its first byte */
    uint64_t end_offset;    /* just past its terminator (or the end of input).
                               To resume after this record, save end_offset,
                               next_line and the header row */
    csv_error error;        /* CSV_OK, or the problem with this record */
    size_t error_field;     /* 1-based column of the problem; 0 when the
                               problem is the record as a whole */
    uint64_t error_offset;  /* byte offset in the object of the problem */
    uint64_t error_line;    /* physical line of error_offset */
} csv_record;

/* Called once per record, in order. `rec` and all it points to are borrowed
 * and valid only during the call; `user` is the pointer given to
 * csv_parser_new. Return 0 to go on; anything else stops the parser (the call
 * that was feeding it returns CSV_STATUS_STOPPED). */
typedef int (*csv_record_fn)(const csv_record *rec, void *user);

/* Parser settings. Zero-initialise, then set what you need. */
typedef struct csv_options {
    char delimiter;          /* 0 means ','; may not be '"', CR, LF or >= 0x80 */
    bool has_header;         /* the first record is the header row */
    size_t max_record_bytes; /* 0 means CSV_DEFAULT_MAX_RECORD_BYTES; > 2^40
                                is INVALID */
    size_t max_fields;       /* 0 means CSV_DEFAULT_MAX_FIELDS; > 2^28 is
                                INVALID */
    /* Resuming. The first byte fed is at start_offset in the object and on
     * physical line start_line (0 means 1). A BOM is only looked for at
     * offset 0. `header` (header_count fields, borrowed for the call: the
     * parser copies it) is the saved header row; when it is given, no record
     * of the input is taken as the header. has_header with start_offset > 0
     * requires it. */
    uint64_t start_offset;
    uint64_t start_line;
    const csv_field *header;
    size_t header_count;
} csv_options;

typedef struct csv_parser csv_parser;

/* Create a parser. `opts` is borrowed for the call (NULL means all defaults);
 * `on_record` is required; `user` is passed through untouched and never
 * dereferenced. On CSV_STATUS_OK *out is a parser the caller frees with
 * csv_parser_free; on failure *out is NULL (INVALID: bad options; NOMEM). */
csv_status csv_parser_new(const csv_options *opts, csv_record_fn on_record, void *user,
                          csv_parser **out);

/* Free a parser and all it owns (NULL is fine). */
void csv_parser_free(csv_parser *p);

/* Feed the next `len` bytes of the object (`data` is borrowed for the call;
 * it may be NULL when len is 0). Calls the callback for every record these
 * bytes complete. Returns CSV_STATUS_OK, STOPPED (the callback asked; the
 * rest of the chunk is not parsed), NOMEM, or INVALID after a stop, a
 * failure or csv_parser_finish. After anything but OK the parser only
 * accepts csv_parser_header and csv_parser_free: to go on, start a new one
 * at the last delivered record's end_offset. */
csv_status csv_parser_feed(csv_parser *p, const void *data, size_t len);

/* End of input: delivers the last record if it had no line break (with
 * CSV_ERR_UNTERMINATED_QUOTE, a truncated UTF-8 sequence or a pending
 * oversized record as applicable). Returns like csv_parser_feed; afterwards
 * the parser only accepts csv_parser_header and csv_parser_free. */
csv_status csv_parser_finish(csv_parser *p);

/* The header row: the one given in the options, else the first record once
 * it has been read (its fields as delivered). NULL with *count = 0 before
 * that, without a header, or when the header record was too large. The
 * fields are owned by the parser and valid until csv_parser_free; save them
 * (with a record's end_offset and next_line) to resume later. */
const csv_field *csv_parser_header(const csv_parser *p, size_t *count);

/* Static English text for an error or status (never NULL). */
const char *csv_error_str(csv_error err);
const char *csv_status_str(csv_status st);

#endif
