/* csv_parser.c — streaming RFC 4180 CSV parser (see csv_parser.h for the
 * accepted syntax and the error recovery rules).
 *
 * Shape: a small state machine whose states are only visited at the bytes
 * that matter (delimiter, quote, CR, LF). Between them, runs of field bytes
 * are found and copied into the record buffer by copy_run(), 16 bytes at a
 * time with SSE2 where available (a byte table otherwise). UTF-8 is checked
 * only where a block has bytes >= 0x80: the SSE2 scan validates complete
 * sequences from its high-bit mask, and utf8_check() takes the rest (bad
 * sequences, ones cut by a chunk boundary, the portable build), skipping
 * ASCII 8 bytes at a time. Pure ASCII costs nothing more.
 *
 * Every state (a UTF-8 sequence, a CR waiting for its LF, a partial BOM
 * included) survives a chunk boundary and nothing is ever re-parsed:
 * feeding one byte at a time yields the same records as feeding the whole
 * object, in linear time either way. */
#include "csv_parser.h"

#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define CSV_HOT_INLINE inline __attribute__((always_inline))
#else
#define CSV_HOT_INLINE inline
#endif

#if defined(__SSE2__) && !defined(CSV_PARSER_NO_SIMD)
#include <emmintrin.h>
#define CSV_SIMD 1
#else
#define CSV_SIMD 0
#endif

typedef unsigned char uchar;

/* Far above any sane setting; keeps offset + size arithmetic from wrapping. */
#define CSV_MAX_RECORD_LIMIT ((size_t)1 << 40)
#define CSV_MAX_FIELDS_LIMIT ((size_t)1 << 28)

enum csv_state {
    S_BOM,         /* at offset 0, matching a possible byte order mark */
    S_REC_START,   /* between records: a line break here is a blank line */
    S_FIELD_START, /* after a delimiter (or at a record's first byte) */
    S_UNQUOTED,    /* inside an unquoted field */
    S_QUOTED,      /* inside a quoted field */
    S_QUOTE_SEEN,  /* a '"' inside a quoted field: "" or the closing quote */
    S_CR,          /* after a CR line break: swallow one LF, then go on */
    S_SKIP,        /* dropping an oversized record up to the next line break */
};

struct csv_parser {
    csv_record_fn cb;
    void *user;
    uchar delim;
    size_t max_record;
    size_t max_fields;
    enum csv_state state;
    bool dead;         /* finished, stopped or failed: only free is allowed */
    csv_status fail;   /* why the current feed failed (STOPPED or NOMEM) */
    bool rec_pending;  /* S_CR: a record (not a blank line) ends here */
    const uchar *base; /* the chunk being parsed (valid during feed_core) */
    uint64_t offset;   /* object offset of base[0] */
    uint64_t line;     /* physical line of the next byte */

    /* the record being parsed */
    uint64_t rec_offset, rec_line;
    uint64_t quote_offset, quote_line; /* opening quote of the current field */
    bool quoted_cr;                    /* last byte in a quoted field was CR */
    csv_error err;
    size_t err_field;
    uint64_t err_offset, err_line;
    char *buf; /* field bytes, each field followed by a NUL */
    size_t blen, bcap;
    size_t *starts;    /* where each field starts in buf */
    csv_field *fields; /* filled from starts when the record is delivered */
    size_t nfields;    /* completed fields */
    size_t fcap;

    /* a UTF-8 sequence in progress: bytes still expected, range of the next */
    unsigned u8_need;
    uchar u8_lo, u8_hi;
    uint64_t u8_offset, u8_line;

    uchar bom[3]; /* the part of a BOM seen so far */
    size_t bom_len;

    bool header_pending; /* the next record is the header row */
    csv_field *header;
    char *header_data;
    size_t header_count;

#if !CSV_SIMD
    uchar stop_unquoted[256]; /* non-zero: copy_run stops at this byte */
    uchar stop_quoted[256];
#endif
};

/* ---- small helpers -------------------------------------------------------- */

static inline uint64_t pos(const csv_parser *p, const uchar *s)
{
    return p->offset + (uint64_t)(s - p->base);
}

static bool fail_nomem(csv_parser *p)
{
    p->fail = CSV_STATUS_NOMEM;
    return false;
}

/* Make room for `extra` more bytes in the record buffer. */
static bool buf_reserve(csv_parser *p, size_t extra)
{
    if (p->bcap - p->blen >= extra)
        return true;
    size_t cap = p->bcap ? p->bcap : 256;
    while (cap - p->blen < extra)
        cap *= 2;
    char *grown = realloc(p->buf, cap);
    if (!grown)
        return fail_nomem(p);
    p->buf = grown;
    p->bcap = cap;
    return true;
}

static const uchar *append_byte(csv_parser *p, const uchar *s)
{
    if (!buf_reserve(p, 1))
        return NULL;
    p->buf[p->blen++] = (char)*s;
    return s + 1;
}

/* Keep the first problem of a record; the caller's position is the culprit. */
static void note_error(csv_parser *p, csv_error err, uint64_t offset, uint64_t line)
{
    if (p->err != CSV_OK)
        return;
    p->err = err;
    p->err_field = p->nfields + 1;
    p->err_offset = offset;
    p->err_line = line;
}

/* The first byte of the chunk (ending at e) that would make the current
 * record longer than max_record: bytes from there on are only allowed when
 * they end the record. */
static const uchar *record_limit(const csv_parser *p, const uchar *e)
{
    uint64_t end = p->rec_offset + p->max_record;
    if (end <= p->offset)
        return p->base;
    if (end - p->offset >= (uint64_t)(e - p->base))
        return e;
    return p->base + (end - p->offset);
}

static void record_reset(csv_parser *p)
{
    p->blen = 0;
    p->nfields = 0;
    p->err = CSV_OK;
    p->err_field = 0;
    p->err_offset = 0;
    p->err_line = 0;
    p->rec_pending = false;
}

static CSV_HOT_INLINE bool field_begin(csv_parser *p)
{
    if (p->nfields == p->fcap) {
        size_t cap = p->fcap ? p->fcap * 2 : 16;
        size_t *starts = realloc(p->starts, cap * sizeof *starts);
        if (!starts)
            return fail_nomem(p);
        p->starts = starts;
        csv_field *fields = realloc(p->fields, cap * sizeof *fields);
        if (!fields)
            return fail_nomem(p);
        p->fields = fields;
        p->fcap = cap;
    }
    p->starts[p->nfields] = p->blen;
    return true;
}

/* Close the current field: its length, then the NUL that follows it. */
static CSV_HOT_INLINE bool field_end(csv_parser *p)
{
    if (!buf_reserve(p, 1))
        return false;
    p->fields[p->nfields].len = p->blen - p->starts[p->nfields];
    p->buf[p->blen++] = '\0';
    p->nfields++;
    return true;
}

/* Drop the record being parsed: from here on, skip to the next line break. */
static void too_large(csv_parser *p, uint64_t offset)
{
    p->err = CSV_OK; /* this one replaces any earlier problem */
    note_error(p, CSV_ERR_RECORD_TOO_LARGE, offset, p->line);
    p->err_field = 0;
    p->blen = 0;
    p->nfields = 0;
    p->u8_need = 0;
    p->state = S_SKIP;
}

/* ---- delivering a record -------------------------------------------------- */

/* Keep a private copy of the header row's fields (one block, NUL-separated
 * like a record). */
static bool header_save(csv_parser *p, const csv_field *fields, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += fields[i].len + 1;
    csv_field *hdr = malloc(n * sizeof *hdr);
    char *data = malloc(total ? total : 1);
    if (!hdr || !data) {
        free(hdr);
        free(data);
        return fail_nomem(p);
    }
    char *d = data;
    for (size_t i = 0; i < n; i++) {
        if (fields[i].len)
            memcpy(d, fields[i].data, fields[i].len);
        d[fields[i].len] = '\0';
        hdr[i].data = d;
        hdr[i].len = fields[i].len;
        d += fields[i].len + 1;
    }
    free(p->header);
    free(p->header_data);
    p->header = hdr;
    p->header_data = data;
    p->header_count = n;
    return true;
}

/* Mark the header record, or check a data record's width against it. */
static bool header_apply(csv_parser *p, csv_record *r)
{
    if (p->header_pending) {
        p->header_pending = false;
        r->is_header = true;
        r->expected_fields = r->nfields;
        return r->error == CSV_ERR_RECORD_TOO_LARGE || header_save(p, r->fields, r->nfields);
    }
    r->expected_fields = p->header_count;
    if (p->header_count && r->error == CSV_OK && r->nfields != p->header_count) {
        r->error = CSV_ERR_FIELD_COUNT;
        r->error_field = 0;
        r->error_offset = r->offset;
        r->error_line = r->line;
    }
    return true;
}

/* Hand the finished record (ending at object offset `end`) to the callback
 * and start afresh. */
static bool emit(csv_parser *p, uint64_t end)
{
    for (size_t i = 0; i < p->nfields; i++)
        p->fields[i].data = p->buf + p->starts[i];
    csv_record r = {
        .fields = p->nfields ? p->fields : NULL,
        .nfields = p->nfields,
        .line = p->rec_line,
        .next_line = p->line,
        .offset = p->rec_offset,
        .end_offset = end,
        .error = p->err,
        .error_field = p->err_field,
        .error_offset = p->err_offset,
        .error_line = p->err_line,
    };
    if (!header_apply(p, &r))
        return false;
    int stop = p->cb(&r, p->user);
    record_reset(p);
    if (stop) {
        p->fail = CSV_STATUS_STOPPED;
        return false;
    }
    return true;
}

/* ---- scanning ------------------------------------------------------------- */

/* What lead byte c starts: the number of continuation bytes (0 when c
 * cannot start a sequence) and the range of the first one, which per
 * Unicode table 3-7 rules out overlongs, surrogates and > U+10FFFF. */
static inline unsigned utf8_lead(uchar c, uchar *lo, uchar *hi)
{
    *lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
    *hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        return 1;
    if (c >= 0xE0 && c <= 0xEF)
        return 2;
    if (c >= 0xF0 && c <= 0xF4)
        return 3;
    return 0;
}

/* The length of the valid, complete UTF-8 sequence at s (before t), or 0
 * when it is invalid or runs past t: the fast path of both UTF-8 checks. */
static inline size_t utf8_valid_len(const uchar *s, const uchar *t)
{
    uchar lo, hi;
    unsigned need = utf8_lead(s[0], &lo, &hi);
    if (need == 0 || (size_t)(t - s) <= need || s[1] < lo || s[1] > hi)
        return 0;
    for (unsigned i = 2; i <= need; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return need + 1;
}

#if CSV_SIMD
/* Validate the UTF-8 sequences starting in one 16-byte block, whose bytes
 * >= 0x80 are the set bits of `top`; a sequence may run on past the block
 * (up to lim). *carry: continuation bytes at the start of this block that
 * the previous block's last sequence already covered, and on return those
 * at the start of the next. False when a sequence is bad or cut by lim:
 * then the caller validates the whole run the slow way instead. */
static CSV_HOT_INLINE bool utf8_block_ok(const uchar *s, const uchar *lim, unsigned top,
                                         unsigned *carry)
{
    top &= ~((1u << *carry) - 1);
    *carry = 0;
    while (top) {
        unsigned i = (unsigned)__builtin_ctz(top);
        size_t n = utf8_valid_len(s + i, lim);
        if (n == 0)
            return false;
        if (i + n >= 16) {
            *carry = (unsigned)(i + n - 16);
            return true;
        }
        top &= ~(((1u << n) - 1) << i);
    }
    return true;
}
#endif

/* Copy the run of field bytes starting at s into the record buffer and
 * return where it stops: at lim, or at the first byte that is `a`, '"', CR
 * or LF (for a quoted field pass a = '"'). *high is set non-zero when the
 * run holds bytes >= 0x80 that still need validating by utf8_check: the
 * SSE2 scan validates complete, valid sequences itself, so only runs with
 * bad ones, or ones cut by a chunk or the scalar tail, go the slow way.
 * NULL when out of memory. */
static CSV_HOT_INLINE const uchar *copy_run(csv_parser *p, const uchar *s, const uchar *lim,
                                            uchar a, unsigned *high)
{
    unsigned hi = 0;
#if CSV_SIMD
    /* Locals, not p->...: a store through the char buffer may alias p's
     * fields, which would make the compiler reload them for every block. */
    char *buf = p->buf;
    size_t blen = p->blen, bcap = p->bcap;
    unsigned carry = 0;
    const __m128i va = _mm_set1_epi8((char)a);
    const __m128i vq = _mm_set1_epi8('"');
    const __m128i vcr = _mm_set1_epi8('\r');
    const __m128i vlf = _mm_set1_epi8('\n');
    while (lim - s >= 16) {
        if (bcap - blen < 16) {
            p->blen = blen;
            if (!buf_reserve(p, 16))
                return NULL;
            buf = p->buf;
            bcap = p->bcap;
        }
        /* Store the block before knowing where the run ends: bytes past it
         * are overwritten later, and this saves a memcpy per field. */
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)s);
        _mm_storeu_si128((__m128i *)(void *)(buf + blen), v);
        __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, va), _mm_cmpeq_epi8(v, vq)),
                                   _mm_or_si128(_mm_cmpeq_epi8(v, vcr), _mm_cmpeq_epi8(v, vlf)));
        unsigned stop = (unsigned)_mm_movemask_epi8(hit);
        unsigned top = (unsigned)_mm_movemask_epi8(v); /* bytes >= 0x80 */
        unsigned k = stop ? (unsigned)__builtin_ctz(stop) : 16;
        top &= (1u << k) - 1; /* only the run's own bytes */
        if (top && !hi && !utf8_block_ok(s, lim, top, &carry))
            hi = 0x80;
        if (stop) {
            *high = hi;
            p->blen = blen + k;
            return s + k;
        }
        s += 16;
        blen += 16;
    }
    p->blen = blen;
    /* the last < 16 bytes: any byte >= 0x80 here sends the run the slow way */
    const uchar *t = s;
    for (; t < lim && *t != a && *t != '"' && *t != '\r' && *t != '\n'; t++)
        hi |= *t;
#else
    const uchar *stop = a == '"' ? p->stop_quoted : p->stop_unquoted;
    const uchar *t = s;
    for (; lim - t >= 4 && !(stop[t[0]] | stop[t[1]] | stop[t[2]] | stop[t[3]]); t += 4)
        hi |= t[0] | t[1] | t[2] | t[3];
    for (; t < lim && !stop[*t]; t++)
        hi |= *t;
#endif
    *high = hi & 0x80;
    size_t n = (size_t)(t - s);
    if (n) {
        if (!buf_reserve(p, n))
            return NULL;
        memcpy(p->buf + p->blen, s, n);
        p->blen += n;
    }
    return t;
}

/* The first byte >= 0x80 in [s, t), or t; 8 bytes at a time. */
static const uchar *skip_ascii(const uchar *s, const uchar *t)
{
    for (; t - s >= 8; s += 8) {
        uint64_t w;
        memcpy(&w, s, sizeof w);
        w &= 0x8080808080808080ULL;
        if (w) {
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            return s + (__builtin_ctzll(w) >> 3);
#else
            break;
#endif
        }
    }
    while (s < t && *s < 0x80)
        s++;
    return s;
}

/* One byte through the sequence state machine (for bad sequences and ones
 * a chunk boundary cuts). Returns the bytes consumed: 0 when the byte ended
 * a bad sequence and must be looked at again as a start. */
static size_t utf8_byte(csv_parser *p, const uchar *s)
{
    uchar c = *s;
    if (p->u8_need) {
        if (c >= p->u8_lo && c <= p->u8_hi) {
            p->u8_need--;
            p->u8_lo = 0x80;
            p->u8_hi = 0xBF;
            return 1;
        }
        note_error(p, CSV_ERR_INVALID_UTF8, p->u8_offset, p->u8_line);
        p->u8_need = 0;
        return 0;
    }
    if (c < 0x80)
        return 1;
    p->u8_need = utf8_lead(c, &p->u8_lo, &p->u8_hi);
    if (p->u8_need) {
        p->u8_offset = pos(p, s);
        p->u8_line = p->line;
    } else {
        note_error(p, CSV_ERR_INVALID_UTF8, pos(p, s), p->line);
    }
    return 1;
}

/* Validate the UTF-8 of one run of field bytes [s, t), carrying a sequence
 * still open at its end over to the next run (in the next chunk). `cut`:
 * the run ends at an ASCII byte, which no sequence may straddle. A bad
 * sequence is flagged (note_error keeps the first) and kept as it is. */
static void utf8_check(csv_parser *p, const uchar *s, const uchar *t, bool cut)
{
    while (s < t) {
        if (!p->u8_need) {
            s = skip_ascii(s, t);
            if (s == t)
                break;
            size_t n = utf8_valid_len(s, t);
            if (n) {
                s += n;
                continue;
            }
        }
        s += utf8_byte(p, s);
    }
    if (cut && p->u8_need) {
        note_error(p, CSV_ERR_INVALID_UTF8, p->u8_offset, p->u8_line);
        p->u8_need = 0;
    }
}

/* copy_run, then UTF-8 validation where the run needs it. */
static CSV_HOT_INLINE const uchar *field_run(csv_parser *p, const uchar *s, const uchar *e,
                                             const uchar *lim, uchar a)
{
    unsigned high;
    const uchar *t = copy_run(p, s, lim, a, &high);
    if (t && (high || p->u8_need))
        utf8_check(p, s, t, t < e);
    return t;
}

/* ---- states --------------------------------------------------------------- */

/* The line break at s ends the record (fields already closed). */
static const uchar *record_break(csv_parser *p, const uchar *s)
{
    p->line++;
    if (*s == '\r') {
        /* a following LF belongs to this record: deliver it in S_CR */
        p->rec_pending = true;
        p->state = S_CR;
        return s + 1;
    }
    p->state = S_REC_START;
    return emit(p, pos(p, s + 1)) ? s + 1 : NULL;
}

/* A line break (at s) ends the record after its current field. */
static const uchar *end_record_at_break(csv_parser *p, const uchar *s)
{
    return field_end(p) ? record_break(p, s) : NULL;
}

static const uchar *leave(csv_parser *p, enum csv_state state, const uchar *s)
{
    p->state = state;
    return s;
}

static const uchar *too_large_at(csv_parser *p, const uchar *s)
{
    too_large(p, pos(p, s));
    return s;
}

/* The cap is hit at s inside a quoted field. */
static const uchar *too_large_in_quotes(csv_parser *p, const uchar *s)
{
    bool crlf = *s == '\n' && p->quoted_cr;
    too_large(p, pos(p, s));
    if (crlf) {
        /* this LF ends the record, and its CR was counted already */
        p->rec_pending = true;
        p->state = S_CR;
    }
    return s;
}

/* A line break, CR or LF, inside quotes: data, and still a physical line
 * break (a CRLF counts once). */
static const uchar *quoted_break(csv_parser *p, const uchar *s)
{
    if (*s == '\r' || !p->quoted_cr)
        p->line++;
    p->quoted_cr = *s == '\r';
    return append_byte(p, s);
}

/* Inside a record: its fields, quoted or not, until the record ends, the
 * chunk ends or the record is dropped as too large. p->state (FIELD_START,
 * UNQUOTED, QUOTED or QUOTE_SEEN) says where to resume and is set on the way
 * out. One function with direct jumps between those states, because sending
 * every field transition through feed_core's switch (an indirect jump the
 * CPU mispredicts) cost a third of the parse time. */
static const uchar *in_record(csv_parser *p, const uchar *s, const uchar *e, const uchar *lim)
{
    const uchar *run;
    uchar c;
    switch (p->state) {
    case S_UNQUOTED:
        goto unquoted;
    case S_QUOTED:
        goto quoted;
    case S_QUOTE_SEEN:
        goto quote_seen;
    default:
        break;
    }
field_start:
    if (s == e)
        return leave(p, S_FIELD_START, s);
    if (p->nfields >= p->max_fields || (*s == '"' && s >= lim))
        return too_large_at(p, s);
    if (!field_begin(p))
        return NULL;
    if (*s == '"') {
        p->quote_offset = pos(p, s);
        p->quote_line = p->line;
        p->quoted_cr = false;
        s++;
        goto quoted;
    }
unquoted:
    if (!(s = field_run(p, s, e, lim, p->delim)))
        return NULL;
    if (s == e)
        return leave(p, S_UNQUOTED, s);
    c = *s;
    if (c == '\n' || c == '\r')
        return end_record_at_break(p, s);
    if (s >= lim)
        return too_large_at(p, s);
    if (c == p->delim) {
        if (!field_end(p))
            return NULL;
        s++;
        goto field_start;
    }
    /* c == '"': lenient, the quote is data */
    note_error(p, CSV_ERR_QUOTE_IN_FIELD, pos(p, s), p->line);
    if (!(s = append_byte(p, s)))
        return NULL;
    goto unquoted;
quoted:
    run = s;
    if (!(s = field_run(p, s, e, lim, '"')))
        return NULL;
    if (s != run)
        p->quoted_cr = false;
    if (s == e)
        return leave(p, S_QUOTED, s);
    if (s >= lim)
        return too_large_in_quotes(p, s);
    c = *s;
    if (c == '"') {
        p->quoted_cr = false; /* CR "" LF is two line breaks */
        s++;
        goto quote_seen;
    }
    /* c is CR or LF */
    if (!(s = quoted_break(p, s)))
        return NULL;
    goto quoted;
quote_seen:
    if (s == e)
        return leave(p, S_QUOTE_SEEN, s);
    c = *s;
    if (c == '\n' || c == '\r')
        return end_record_at_break(p, s);
    if (s >= lim)
        return too_large_at(p, s);
    if (c == p->delim) {
        if (!field_end(p))
            return NULL;
        s++;
        goto field_start;
    }
    if (c == '"') {
        /* "" inside quotes: one literal quote */
        if (!(s = append_byte(p, s)))
            return NULL;
        goto quoted;
    }
    /* "ab"c: go on as an unquoted field, which takes the c */
    note_error(p, CSV_ERR_TEXT_AFTER_QUOTE, pos(p, s), p->line);
    goto unquoted;
}

static const uchar *st_rec_start(csv_parser *p, const uchar *s, const uchar *e, const uchar **lim)
{
    if (*s == '\n' || *s == '\r') {
        /* a blank line: counted, not a record */
        p->line++;
        if (*s == '\r')
            p->state = S_CR;
        return s + 1;
    }
    p->rec_offset = pos(p, s);
    p->rec_line = p->line;
    *lim = record_limit(p, e);
    p->state = S_FIELD_START;
    return in_record(p, s, e, *lim);
}

/* After a CR line break: an LF right after it is part of the same break. */
static const uchar *st_cr(csv_parser *p, const uchar *s)
{
    if (*s == '\n')
        s++;
    p->state = S_REC_START;
    if (!p->rec_pending)
        return s;
    return emit(p, pos(p, s)) ? s : NULL;
}

static const uchar *st_skip(csv_parser *p, const uchar *s, const uchar *e)
{
    while (s < e && *s != '\n' && *s != '\r')
        s++;
    if (s == e)
        return s;
    return record_break(p, s);
}

/* Parse `len` bytes at `data`, which sit at p->offset in the object.
 * Returns OK, or p->fail (STOPPED or NOMEM). */
static csv_status feed_core(csv_parser *p, const uchar *data, size_t len)
{
    const uchar *s = data, *e = data + len;
    p->base = data;
    const uchar *lim = record_limit(p, e);
    while (s && s < e) {
        switch (p->state) {
        case S_REC_START:
            s = st_rec_start(p, s, e, &lim);
            break;
        case S_FIELD_START:
        case S_UNQUOTED:
        case S_QUOTED:
        case S_QUOTE_SEEN:
            s = in_record(p, s, e, lim);
            break;
        case S_CR:
            s = st_cr(p, s);
            break;
        case S_SKIP:
            s = st_skip(p, s, e);
            break;
        case S_BOM: /* handled by csv_parser_feed before we get here */
            p->state = S_REC_START;
            break;
        }
    }
    if (!s)
        return p->fail;
    p->offset += len;
    return CSV_STATUS_OK;
}

/* At offset 0: swallow a UTF-8 BOM, which may arrive a byte at a time. A
 * partial match that fails is parsed as ordinary data. */
static csv_status bom_step(csv_parser *p, const uchar **sp, const uchar *e, bool at_end)
{
    static const uchar bom[3] = {0xEF, 0xBB, 0xBF};
    const uchar *s = *sp;
    while (s < e && p->bom_len < 3 && *s == bom[p->bom_len])
        p->bom[p->bom_len++] = *s++;
    *sp = s;
    if (p->bom_len == 3) {
        p->offset = 3;
        p->state = S_REC_START;
        return CSV_STATUS_OK;
    }
    if (s == e && !at_end)
        return CSV_STATUS_OK; /* undecided until more bytes arrive */
    p->state = S_REC_START;
    return feed_core(p, p->bom, p->bom_len);
}

/* ---- public API ----------------------------------------------------------- */

static bool options_valid(const csv_options *o)
{
    uchar d = (uchar)o->delimiter;
    if (d == '"' || d == '\r' || d == '\n' || d >= 0x80)
        return false;
    if (o->max_record_bytes > CSV_MAX_RECORD_LIMIT || o->max_fields > CSV_MAX_FIELDS_LIMIT)
        return false;
    if (o->header && (o->header_count == 0 || o->header_count > CSV_MAX_FIELDS_LIMIT))
        return false;
    if (o->has_header && o->start_offset > 0 && !o->header)
        return false; /* resuming mid-object would take a data row as header */
    return o->start_offset <= UINT64_MAX - CSV_MAX_RECORD_LIMIT;
}

#if !CSV_SIMD
static void stop_tables_init(csv_parser *p)
{
    for (unsigned c = 0; c < 256; c++) {
        bool special = c == '"' || c == '\r' || c == '\n';
        p->stop_quoted[c] = special;
        p->stop_unquoted[c] = special || c == p->delim;
    }
}
#endif

csv_status csv_parser_new(const csv_options *opts, csv_record_fn on_record, void *user,
                          csv_parser **out)
{
    static const csv_options defaults = {0};
    if (!out)
        return CSV_STATUS_INVALID;
    *out = NULL;
    const csv_options *o = opts ? opts : &defaults;
    if (!on_record || !options_valid(o))
        return CSV_STATUS_INVALID;
    csv_parser *p = calloc(1, sizeof *p);
    if (!p)
        return CSV_STATUS_NOMEM;
    p->cb = on_record;
    p->user = user;
    p->delim = o->delimiter ? (uchar)o->delimiter : ',';
    p->max_record = o->max_record_bytes ? o->max_record_bytes : CSV_DEFAULT_MAX_RECORD_BYTES;
    p->max_fields = o->max_fields ? o->max_fields : CSV_DEFAULT_MAX_FIELDS;
    p->offset = o->start_offset;
    p->line = o->start_line ? o->start_line : 1;
    p->state = o->start_offset == 0 ? S_BOM : S_REC_START;
    p->header_pending = o->has_header && !o->header;
#if !CSV_SIMD
    stop_tables_init(p);
#endif
    if (o->header && !header_save(p, o->header, o->header_count)) {
        csv_parser_free(p);
        return CSV_STATUS_NOMEM;
    }
    *out = p;
    return CSV_STATUS_OK;
}

void csv_parser_free(csv_parser *p)
{
    if (!p)
        return;
    free(p->buf);
    free(p->starts);
    free(p->fields);
    free(p->header);
    free(p->header_data);
    free(p);
}

csv_status csv_parser_feed(csv_parser *p, const void *data, size_t len)
{
    if (!p || p->dead)
        return CSV_STATUS_INVALID;
    if (len == 0)
        return CSV_STATUS_OK;
    if (!data) {
        p->dead = true;
        return CSV_STATUS_INVALID;
    }
    const uchar *s = data, *e = s + len;
    csv_status st = CSV_STATUS_OK;
    if (p->state == S_BOM)
        st = bom_step(p, &s, e, false);
    if (st == CSV_STATUS_OK)
        st = feed_core(p, s, (size_t)(e - s));
    if (st != CSV_STATUS_OK)
        p->dead = true;
    return st;
}

/* End of input inside a record: close it as its state implies. */
static bool finish_record(csv_parser *p)
{
    switch (p->state) {
    case S_FIELD_START: /* "a," at the very end: an empty last field */
        if (p->nfields >= p->max_fields) {
            too_large(p, p->offset);
            break;
        }
        if (!field_begin(p) || !field_end(p))
            return false;
        break;
    case S_QUOTED:
        p->err = CSV_OK; /* this one replaces any earlier problem */
        note_error(p, CSV_ERR_UNTERMINATED_QUOTE, p->quote_offset, p->quote_line);
        if (!field_end(p))
            return false;
        break;
    case S_UNQUOTED:
    case S_QUOTE_SEEN:
        if (!field_end(p))
            return false;
        break;
    case S_CR:
        if (!p->rec_pending)
            return true;
        break;
    case S_SKIP:
        break;
    case S_BOM:
    case S_REC_START:
        return true;
    }
    p->state = S_REC_START;
    return emit(p, p->offset);
}

csv_status csv_parser_finish(csv_parser *p)
{
    if (!p || p->dead)
        return CSV_STATUS_INVALID;
    p->dead = true;
    if (p->state == S_BOM) {
        const uchar *s = p->bom;
        csv_status st = bom_step(p, &s, s, true);
        if (st != CSV_STATUS_OK)
            return st;
    }
    if (p->u8_need) {
        /* the input ends inside a UTF-8 sequence */
        note_error(p, CSV_ERR_INVALID_UTF8, p->u8_offset, p->u8_line);
        p->u8_need = 0;
    }
    return finish_record(p) ? CSV_STATUS_OK : p->fail;
}

const csv_field *csv_parser_header(const csv_parser *p, size_t *count)
{
    if (count)
        *count = p ? p->header_count : 0;
    return p ? p->header : NULL;
}

const char *csv_error_str(csv_error err)
{
    switch (err) {
    case CSV_OK:
        return "ok";
    case CSV_ERR_UNTERMINATED_QUOTE:
        return "unterminated quoted field at end of input";
    case CSV_ERR_QUOTE_IN_FIELD:
        return "quote inside an unquoted field";
    case CSV_ERR_TEXT_AFTER_QUOTE:
        return "characters after a closing quote";
    case CSV_ERR_INVALID_UTF8:
        return "invalid UTF-8";
    case CSV_ERR_FIELD_COUNT:
        return "field count differs from the header";
    case CSV_ERR_RECORD_TOO_LARGE:
        return "record larger than the size cap";
    }
    return "unknown CSV error";
}

const char *csv_status_str(csv_status st)
{
    switch (st) {
    case CSV_STATUS_OK:
        return "ok";
    case CSV_STATUS_STOPPED:
        return "stopped by the record callback";
    case CSV_STATUS_NOMEM:
        return "out of memory";
    case CSV_STATUS_INVALID:
        return "invalid argument or parser state";
    }
    return "unknown CSV status";
}
