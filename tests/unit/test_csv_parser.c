/* test_csv_parser.c — the S3/CSV connector's streaming CSV parser.
 *
 * Every fixtures/csv/NAME.csv is parsed and compared with NAME.json (the
 * expected records and errors), fed whole, one byte at a time, split at
 * every single position, and in random chunks (fixed seeds): all must agree
 * exactly. Then, for every record boundary of every fixture, the parse is
 * stopped after that record and resumed from its end offset and line with
 * the saved header: the resumed parser must produce exactly the rest.
 *
 * Records are compared as one canonical line of text each (see describe()),
 * so a mismatch prints both sides in full. The fixture directory comes from
 * $CSV_FIXTURE_DIR, else the CSV_FIXTURE_DIR the build passes in. */
#include "unit_helpers.h"

#include <dirent.h>
#include <json-c/json.h>

#include "csv_parser.h"

#ifndef CSV_FIXTURE_DIR
#define CSV_FIXTURE_DIR "tests/unit/fixtures/csv"
#endif

/* ---- a growable string ---------------------------------------------------- */

typedef struct strbuf {
    char *s;
    size_t len, cap;
} strbuf;

static void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(strbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        assert_true(n >= 0);
        if (b->s && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = (b->cap + (size_t)n + 1) * 2;
        b->s = realloc(b->s, b->cap);
        assert_non_null(b->s);
    }
}

/* ---- canonical record text ------------------------------------------------ */

static const char *const error_names[] = {
    [CSV_OK] = "ok",
    [CSV_ERR_UNTERMINATED_QUOTE] = "unterminated_quote",
    [CSV_ERR_QUOTE_IN_FIELD] = "quote_in_field",
    [CSV_ERR_TEXT_AFTER_QUOTE] = "text_after_quote",
    [CSV_ERR_INVALID_UTF8] = "invalid_utf8",
    [CSV_ERR_FIELD_COUNT] = "field_count",
    [CSV_ERR_RECORD_TOO_LARGE] = "record_too_large",
};
#define N_ERRORS (sizeof error_names / sizeof error_names[0])

static void describe_field(strbuf *b, const csv_field *f)
{
    sb_printf(b, "\"");
    for (size_t i = 0; i < f->len; i++) {
        unsigned char c = (unsigned char)f->data[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            sb_printf(b, "%c", c);
        else
            sb_printf(b, "\\x%02x", c);
    }
    sb_printf(b, "\"");
}

/* One line saying everything about a record; malloc'd. */
static char *describe(const csv_record *r)
{
    strbuf b = {0};
    sb_printf(&b, "line %llu-%llu bytes %llu-%llu%s expect %zu fields %zu [",
              (unsigned long long)r->line, (unsigned long long)r->next_line,
              (unsigned long long)r->offset, (unsigned long long)r->end_offset,
              r->is_header ? " header" : "", r->expected_fields, r->nfields);
    for (size_t i = 0; i < r->nfields; i++) {
        if (i)
            sb_printf(&b, ",");
        describe_field(&b, &r->fields[i]);
    }
    sb_printf(&b, "]");
    if (r->error != CSV_OK)
        sb_printf(&b, " error %s field %zu at %llu line %llu",
                  (size_t)r->error < N_ERRORS ? error_names[r->error] : "?", r->error_field,
                  (unsigned long long)r->error_offset, (unsigned long long)r->error_line);
    return b.s;
}

/* ---- collecting what a parse delivers --------------------------------------- */

typedef struct collected {
    char **text; /* describe() of each record */
    uint64_t *end_offset, *next_line;
    size_t n, cap;
    size_t stop_after; /* the callback stops after this many records; 0: never */
} collected;

static void collected_free(collected *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->text[i]);
    free(c->text);
    free(c->end_offset);
    free(c->next_line);
    memset(c, 0, sizeof *c);
}

static void collected_push(collected *c, char *text, uint64_t end, uint64_t next_line)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->text = realloc(c->text, c->cap * sizeof *c->text);
        c->end_offset = realloc(c->end_offset, c->cap * sizeof *c->end_offset);
        c->next_line = realloc(c->next_line, c->cap * sizeof *c->next_line);
        assert_non_null(c->text);
        assert_non_null(c->end_offset);
        assert_non_null(c->next_line);
    }
    c->text[c->n] = text;
    c->end_offset[c->n] = end;
    c->next_line[c->n] = next_line;
    c->n++;
}

/* Also checks the layout promise: each field NUL-terminated, all back to back. */
static int on_record(const csv_record *r, void *user)
{
    collected *c = user;
    assert_true(r->nfields == 0 ? r->fields == NULL : r->fields != NULL);
    for (size_t i = 0; i < r->nfields; i++) {
        assert_int_equal(r->fields[i].data[r->fields[i].len], '\0');
        if (i + 1 < r->nfields)
            assert_ptr_equal(r->fields[i + 1].data, r->fields[i].data + r->fields[i].len + 1);
    }
    collected_push(c, describe(r), r->end_offset, r->next_line);
    return c->stop_after && c->n == c->stop_after;
}

static void assert_same_records(const collected *got, char *const *want, size_t nwant,
                                const char *what)
{
    size_t n = got->n < nwant ? got->n : nwant;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(got->text[i], want[i]) != 0) {
            print_error("%s: record %zu differs\n  want: %s\n  got:  %s\n", what, i + 1, want[i],
                        got->text[i]);
            fail();
        }
    }
    if (got->n != nwant) {
        print_error("%s: %zu records, want %zu\n", what, got->n, nwant);
        if (got->n > nwant)
            print_error("  first extra: %s\n", got->text[nwant]);
        else
            print_error("  first missing: %s\n", want[got->n]);
        fail();
    }
}

/* ---- feeding ---------------------------------------------------------------- */

/* A deterministic generator (xorshift64*), local so tests stay independent. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

typedef struct plan {
    const char *name;
    size_t fixed;    /* chunk size; 0: random */
    size_t max_rand; /* random sizes in [0, max_rand] (0 = an empty feed) */
    uint64_t seed;
    size_t split_at; /* when non-zero: two chunks, split there */
} plan;

static size_t plan_next(const plan *pl, uint64_t *rng, size_t done, size_t left)
{
    size_t n;
    if (pl->split_at)
        n = done < pl->split_at ? pl->split_at - done : left;
    else if (pl->fixed)
        n = pl->fixed;
    else
        n = (size_t)(rng_next(rng) % (pl->max_rand + 1));
    return n < left ? n : left;
}

/* Feed data per the plan, each chunk in its own exact-size allocation (so
 * ASan catches any read past a chunk), then finish unless stopped. Returns
 * the first status that was not OK, or OK. */
static csv_status feed_plan(csv_parser *p, const char *data, size_t len, const plan *pl)
{
    uint64_t rng = pl->seed ? pl->seed : 1;
    size_t done = 0;
    while (done < len) {
        size_t n = plan_next(pl, &rng, done, len - done);
        char *chunk = malloc(n ? n : 1);
        assert_non_null(chunk);
        memcpy(chunk, data + done, n);
        csv_status st = csv_parser_feed(p, chunk, n);
        free(chunk);
        if (st != CSV_STATUS_OK)
            return st;
        done += n;
    }
    return csv_parser_finish(p);
}

static void parse_with(const char *data, size_t len, const csv_options *o, const plan *pl,
                       collected *out)
{
    csv_parser *p = NULL;
    assert_int_equal(csv_parser_new(o, on_record, out, &p), CSV_STATUS_OK);
    csv_status st = feed_plan(p, data, len, pl);
    assert_int_equal(st, out->stop_after && out->n == out->stop_after ? CSV_STATUS_STOPPED
                                                                      : CSV_STATUS_OK);
    csv_parser_free(p);
}

static const plan plans[] = {
    {"whole", SIZE_MAX, 0, 0, 0},
    {"one byte at a time", 1, 0, 0, 0},
    {"two bytes at a time", 2, 0, 0, 0},
    {"random chunks 0-7, seed 1", 0, 7, 1, 0},
    {"random chunks 0-7, seed 2", 0, 7, 2, 0},
    {"random chunks 0-40, seed 3", 0, 40, 3, 0},
    {"random chunks 0-300, seed 4", 0, 300, 4, 0},
};
#define N_PLANS (sizeof plans / sizeof plans[0])

/* ---- fixtures ------------------------------------------------------------- */

typedef struct fixture {
    char *data;
    size_t len;
    csv_options opts;
    char **want; /* canonical text of the expected records */
    size_t nwant;
    json_object *doc;
} fixture;

static const char *fixture_dir(void)
{
    const char *env = getenv("CSV_FIXTURE_DIR");
    return env && *env ? env : CSV_FIXTURE_DIR;
}

static char *read_binary(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    strbuf b = {0};
    sb_printf(&b, "%s", ""); /* allocate */
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) {
        if (b.cap - b.len < n + 1) {
            b.cap = (b.len + n + 1) * 2;
            b.s = realloc(b.s, b.cap);
            assert_non_null(b.s);
        }
        memcpy(b.s + b.len, tmp, n);
        b.len += n;
    }
    fclose(f);
    *len = b.len;
    return b.s;
}

static json_object *jget(json_object *obj, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(obj, key, &v) ? v : NULL;
}

static uint64_t jget_u64(json_object *obj, const char *key)
{
    json_object *v = jget(obj, key);
    return v ? (uint64_t)json_object_get_int64(v) : 0;
}

static csv_error error_by_name(const char *name)
{
    for (size_t i = 0; i < N_ERRORS; i++)
        if (strcmp(error_names[i], name) == 0)
            return (csv_error)i;
    print_error("unknown error name \"%s\" in fixture\n", name);
    fail();
    return CSV_OK;
}

static char *hex_decode(const char *hex, size_t *len)
{
    size_t n = strlen(hex) / 2;
    char *out = malloc(n + 1);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (char)v;
    }
    out[n] = '\0';
    *len = n;
    return out;
}

/* The expected record `jr` as canonical text. */
static char *expected_text(json_object *jr)
{
    json_object *jf = jget(jr, "fields");
    bool hex = jf == NULL;
    if (hex)
        jf = jget(jr, "fields_hex");
    assert_non_null(jf);
    size_t n = json_object_array_length(jf);
    csv_field *fields = calloc(n ? n : 1, sizeof *fields);
    assert_non_null(fields);
    for (size_t i = 0; i < n; i++) {
        json_object *s = json_object_array_get_idx(jf, i);
        if (hex) {
            fields[i].data = hex_decode(json_object_get_string(s), &fields[i].len);
        } else {
            fields[i].data = json_object_get_string(s);
            fields[i].len = (size_t)json_object_get_string_len(s);
        }
    }
    json_object *jerr = jget(jr, "error");
    json_object *jhdr = jget(jr, "header");
    csv_record r = {
        .fields = n ? fields : NULL,
        .nfields = n,
        .expected_fields = (size_t)jget_u64(jr, "expected_fields"),
        .is_header = jhdr && json_object_get_boolean(jhdr),
        .line = jget_u64(jr, "line"),
        .next_line = jget_u64(jr, "next_line"),
        .offset = jget_u64(jr, "offset"),
        .end_offset = jget_u64(jr, "end_offset"),
        .error = jerr ? error_by_name(json_object_get_string(jerr)) : CSV_OK,
        .error_field = (size_t)jget_u64(jr, "error_field"),
        .error_offset = jget_u64(jr, "error_offset"),
        .error_line = jget_u64(jr, "error_line"),
    };
    char *text = describe(&r);
    if (hex)
        for (size_t i = 0; i < n; i++)
            free((char *)fields[i].data);
    free(fields);
    return text;
}

static void fixture_options(json_object *jo, csv_options *o)
{
    memset(o, 0, sizeof *o);
    if (!jo)
        return;
    json_object *v;
    if ((v = jget(jo, "delimiter"))) {
        assert_int_equal(json_object_get_string_len(v), 1);
        o->delimiter = json_object_get_string(v)[0];
    }
    if ((v = jget(jo, "has_header")))
        o->has_header = json_object_get_boolean(v);
    o->max_record_bytes = (size_t)jget_u64(jo, "max_record_bytes");
    o->max_fields = (size_t)jget_u64(jo, "max_fields");
}

static void fixture_load(const char *csv_path, fixture *fx)
{
    memset(fx, 0, sizeof *fx);
    fx->data = read_binary(csv_path, &fx->len);
    if (!fx->data)
        print_error("cannot read %s\n", csv_path);
    assert_non_null(fx->data);

    char *json_path = NULL; /* NAME.csv -> NAME.json */
    assert_true(asprintf(&json_path, "%.*s.json", (int)(strlen(csv_path) - 4), csv_path) > 0);
    fx->doc = json_object_from_file(json_path);
    if (!fx->doc)
        print_error("cannot parse %s: %s\n", json_path, json_util_get_last_err());
    assert_non_null(fx->doc);
    free(json_path);

    fixture_options(jget(fx->doc, "options"), &fx->opts);
    json_object *recs = jget(fx->doc, "records");
    assert_non_null(recs);
    fx->nwant = json_object_array_length(recs);
    fx->want = calloc(fx->nwant ? fx->nwant : 1, sizeof *fx->want);
    assert_non_null(fx->want);
    for (size_t i = 0; i < fx->nwant; i++)
        fx->want[i] = expected_text(json_object_array_get_idx(recs, i));
}

static void fixture_free(fixture *fx)
{
    for (size_t i = 0; i < fx->nwant; i++)
        free(fx->want[i]);
    free(fx->want);
    free(fx->data);
    json_object_put(fx->doc);
}

/* Every chunking plan, plus every two-chunk split, gives the golden records. */
static void check_all_plans(const fixture *fx)
{
    for (size_t i = 0; i < N_PLANS; i++) {
        collected got = {0};
        parse_with(fx->data, fx->len, &fx->opts, &plans[i], &got);
        assert_same_records(&got, fx->want, fx->nwant, plans[i].name);
        collected_free(&got);
    }
    for (size_t k = 1; k < fx->len; k++) {
        plan split = {"split in two", 0, 0, 0, k};
        collected got = {0};
        parse_with(fx->data, fx->len, &fx->opts, &split, &got);
        assert_same_records(&got, fx->want, fx->nwant, "split in two");
        collected_free(&got);
    }
}

/* Stop after record k, resume from its end with the saved header, get the
 * rest exactly (fed whole and one byte at a time). */
static void check_resume_after(const fixture *fx, size_t k)
{
    collected first = {.stop_after = k};
    csv_parser *p = NULL;
    assert_int_equal(csv_parser_new(&fx->opts, on_record, &first, &p), CSV_STATUS_OK);
    assert_int_equal(feed_plan(p, fx->data, fx->len, &plans[0]), CSV_STATUS_STOPPED);
    assert_int_equal(first.n, k);
    /* a stopped parser takes nothing more */
    assert_int_equal(csv_parser_feed(p, "x", 1), CSV_STATUS_INVALID);
    assert_int_equal(csv_parser_finish(p), CSV_STATUS_INVALID);

    csv_options o = fx->opts;
    o.start_offset = first.end_offset[k - 1];
    o.start_line = first.next_line[k - 1];
    o.header = csv_parser_header(p, &o.header_count);
    if (!o.header)
        o.has_header = false; /* the header row was dropped as too large */
    assert_true(o.start_offset <= fx->len);

    for (size_t i = 0; i < 2; i++) {
        collected rest = {0};
        parse_with(fx->data + o.start_offset, fx->len - o.start_offset, &o, &plans[i], &rest);
        char what[64];
        snprintf(what, sizeof what, "resume after record %zu (%s)", k, plans[i].name);
        assert_same_records(&rest, fx->want + k, fx->nwant - k, what);
        collected_free(&rest);
    }
    csv_parser_free(p); /* the header it lent must live until here */
    collected_free(&first);
}

static void test_fixture(void **state)
{
    const char *path = *state;
    fixture fx;
    fixture_load(path, &fx);
    check_all_plans(&fx);
    for (size_t k = 1; k <= fx.nwant; k++)
        check_resume_after(&fx, k);
    fixture_free(&fx);
}

/* ---- fixture discovery ----------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && strcmp(s + n - m, suffix) == 0;
}

/* Sorted NAME.csv file names in the fixture directory; caller frees. */
static char **list_fixtures(size_t *count)
{
    DIR *d = opendir(fixture_dir());
    *count = 0;
    if (!d)
        return NULL;
    char **names = NULL;
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!has_suffix(de->d_name, ".csv"))
            continue;
        if (*count == cap) {
            cap = cap ? cap * 2 : 64;
            names = realloc(names, cap * sizeof *names);
            if (!names)
                abort();
        }
        if (!(names[*count] = strdup(de->d_name)))
            abort();
        ++*count;
    }
    closedir(d);
    if (names)
        qsort(names, *count, sizeof *names, cmp_str);
    return names;
}

/* ---- API behaviour beyond the fixtures ---------------------------------------- */

static int count_record(const csv_record *r, void *user)
{
    (void)r;
    ++*(size_t *)user;
    return 0;
}

static void test_fixture_dir_complete(void **state)
{
    (void)state;
    size_t n = 0;
    char **names = list_fixtures(&n);
    if (n < 40)
        print_error("only %zu fixtures in %s\n", n, fixture_dir());
    assert_true(n >= 40);
    for (size_t i = 0; i < n; i++) {
        char *json = NULL;
        assert_true(asprintf(&json, "%s/%.*s.json", fixture_dir(), (int)(strlen(names[i]) - 4),
                             names[i]) > 0);
        if (access(json, R_OK) != 0)
            print_error("no expectations for %s\n", names[i]);
        assert_int_equal(access(json, R_OK), 0);
        free(json);
        free(names[i]);
    }
    free(names);
}

static void test_bad_options(void **state)
{
    (void)state;
    size_t n = 0;
    csv_parser *p = (csv_parser *)&n; /* must be reset to NULL on failure */
    csv_options o = {.delimiter = '"'};
    assert_int_equal(csv_parser_new(&o, count_record, &n, &p), CSV_STATUS_INVALID);
    assert_null(p);
    const char bad_delims[] = {'\r', '\n', (char)0x80, (char)0xff};
    for (size_t i = 0; i < sizeof bad_delims; i++) {
        o.delimiter = bad_delims[i];
        assert_int_equal(csv_parser_new(&o, count_record, &n, &p), CSV_STATUS_INVALID);
    }
    assert_int_equal(csv_parser_new(NULL, NULL, &n, &p), CSV_STATUS_INVALID);
    assert_int_equal(csv_parser_new(NULL, count_record, &n, NULL), CSV_STATUS_INVALID);
    /* resuming a file with a header needs the saved header */
    o = (csv_options){.has_header = true, .start_offset = 10};
    assert_int_equal(csv_parser_new(&o, count_record, &n, &p), CSV_STATUS_INVALID);
    csv_field h = {"a", 1};
    o = (csv_options){.header = &h, .header_count = 0};
    assert_int_equal(csv_parser_new(&o, count_record, &n, &p), CSV_STATUS_INVALID);
    o = (csv_options){.max_record_bytes = SIZE_MAX};
    assert_int_equal(csv_parser_new(&o, count_record, &n, &p), CSV_STATUS_INVALID);
    /* defaults */
    assert_int_equal(csv_parser_new(NULL, count_record, &n, &p), CSV_STATUS_OK);
    assert_int_equal(csv_parser_feed(p, "a,b\n", 4), CSV_STATUS_OK);
    assert_int_equal(n, 1);
    csv_parser_free(p);
    csv_parser_free(NULL);
}

static void test_misuse_after_finish(void **state)
{
    (void)state;
    size_t n = 0;
    csv_parser *p = NULL;
    assert_int_equal(csv_parser_new(NULL, count_record, &n, &p), CSV_STATUS_OK);
    assert_int_equal(csv_parser_feed(p, NULL, 0), CSV_STATUS_OK);
    assert_int_equal(csv_parser_feed(p, "a", 1), CSV_STATUS_OK);
    assert_int_equal(csv_parser_finish(p), CSV_STATUS_OK);
    assert_int_equal(n, 1);
    assert_int_equal(csv_parser_feed(p, "b\n", 2), CSV_STATUS_INVALID);
    assert_int_equal(csv_parser_finish(p), CSV_STATUS_INVALID);
    csv_parser_free(p);
    assert_int_equal(csv_parser_feed(NULL, "a", 1), CSV_STATUS_INVALID);
    assert_int_equal(csv_parser_finish(NULL), CSV_STATUS_INVALID);

    assert_int_equal(csv_parser_new(NULL, count_record, &n, &p), CSV_STATUS_OK);
    assert_int_equal(csv_parser_feed(p, NULL, 3), CSV_STATUS_INVALID);
    assert_int_equal(csv_parser_feed(p, "a", 1), CSV_STATUS_INVALID);
    csv_parser_free(p);
}

static int stop_at_once(const csv_record *r, void *user)
{
    (void)r;
    ++*(size_t *)user;
    return 1;
}

/* The last record is delivered by finish, so a stop there shows in finish. */
static void test_stop_in_finish(void **state)
{
    (void)state;
    size_t n = 0;
    csv_parser *p = NULL;
    assert_int_equal(csv_parser_new(NULL, stop_at_once, &n, &p), CSV_STATUS_OK);
    assert_int_equal(csv_parser_feed(p, "a,b\r", 4), CSV_STATUS_OK);
    assert_int_equal(n, 0); /* waiting for a possible LF */
    assert_int_equal(csv_parser_finish(p), CSV_STATUS_STOPPED);
    assert_int_equal(n, 1);
    csv_parser_free(p);
}

static void test_header_accessor(void **state)
{
    (void)state;
    collected got = {0};
    csv_parser *p = NULL;
    csv_options o = {.has_header = true};
    assert_int_equal(csv_parser_new(&o, on_record, &got, &p), CSV_STATUS_OK);
    size_t count = 99;
    assert_null(csv_parser_header(p, &count));
    assert_int_equal(count, 0);
    assert_int_equal(csv_parser_feed(p, "\"i\"\"d\",,name\n1,2", 16), CSV_STATUS_OK);
    const csv_field *h = csv_parser_header(p, &count);
    assert_int_equal(count, 3);
    assert_string_equal(h[0].data, "i\"d");
    assert_int_equal(h[1].len, 0);
    assert_string_equal(h[1].data, "");
    assert_string_equal(h[2].data, "name");
    assert_int_equal(csv_parser_finish(p), CSV_STATUS_OK);
    assert_int_equal(got.n, 2);
    /* the header stays readable after finish, until free */
    assert_string_equal(csv_parser_header(p, NULL)[2].data, "name");
    csv_parser_free(p);
    collected_free(&got);
    assert_null(csv_parser_header(NULL, &count));
    assert_int_equal(count, 0);
}

/* A supplied header is used for width checks; no row is taken as header. */
static void test_supplied_header_at_offset_zero(void **state)
{
    (void)state;
    collected got = {0};
    csv_field hdr[2] = {{"a", 1}, {"b", 1}};
    csv_options o = {.has_header = true, .header = hdr, .header_count = 2};
    csv_parser *p = NULL;
    assert_int_equal(csv_parser_new(&o, on_record, &got, &p), CSV_STATUS_OK);
    assert_int_equal(csv_parser_feed(p, "1,2\n3\n", 6), CSV_STATUS_OK);
    assert_int_equal(csv_parser_finish(p), CSV_STATUS_OK);
    assert_int_equal(got.n, 2);
    assert_string_equal(got.text[0], "line 1-2 bytes 0-4 expect 2 fields 2 [\"1\",\"2\"]");
    assert_string_equal(got.text[1], "line 2-3 bytes 4-6 expect 2 fields 1 [\"3\"] error "
                                     "field_count field 0 at 4 line 2");
    csv_parser_free(p);
    collected_free(&got);
}

static void test_error_strings(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ERRORS; i++) {
        const char *s = csv_error_str((csv_error)i);
        assert_non_null(s);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(s, csv_error_str((csv_error)j));
    }
    assert_non_null(csv_error_str((csv_error)1000));
    for (int st = CSV_STATUS_OK; st <= CSV_STATUS_INVALID; st++)
        assert_non_null(csv_status_str((csv_status)st));
    assert_non_null(csv_status_str((csv_status)1000));
}

/* The default cap (1 MiB) applies when none is configured. */
static void test_default_record_cap(void **state)
{
    (void)state;
    size_t big = CSV_DEFAULT_MAX_RECORD_BYTES + 10;
    char *data = malloc(big + 6);
    assert_non_null(data);
    memset(data, 'x', big);
    memcpy(data + big, "\nok,1\n", 6);
    collected got = {0};
    parse_with(data, big + 6, NULL, &plans[0], &got);
    assert_int_equal(got.n, 2);
    assert_contains(got.text[0], "error record_too_large field 0 at 1048576 line 1");
    assert_contains(got.text[1], "[\"ok\",\"1\"]");
    collected_free(&got);
    free(data);
}

/* ---- round trip of a random document -------------------------------------- */

typedef struct gen_doc {
    strbuf csv;
    strbuf want; /* expected canonical records, one per line */
} gen_doc;

static const char *const pieces[] = {
    "a",
    "hello",
    " ",
    "12.50",
    "caf\xc3\xa9",
    "\xe6\x97\xa5\xe6\x9c\xac",
    "\xf0\x9f\x98\x80",
    ",",
    "\"",
    "\n",
    "\r\n",
    "\r",
    "x;y",
    "\t",
    "",
    "0123456789abcdefghijklmnop",
};

/* A random field value made of a few pieces. */
static void gen_field(uint64_t *rng, strbuf *value)
{
    value->len = 0;
    sb_printf(value, "%s", "");
    size_t parts = (size_t)(rng_next(rng) % 4);
    for (size_t i = 0; i < parts; i++)
        sb_printf(value, "%s", pieces[rng_next(rng) % (sizeof pieces / sizeof pieces[0])]);
}

/* Quote a value when it must be, and now and then when it need not be. */
static bool quote_it(const strbuf *v, uint64_t *rng)
{
    return strpbrk(v->s, ",\"\r\n") != NULL || rng_next(rng) % 4 == 0;
}

static unsigned line_breaks(const char *s)
{
    unsigned n = 0;
    for (; *s; s++)
        if (*s == '\n' || (*s == '\r' && s[1] != '\n'))
            n++;
    return n;
}

/* Append one record of nf random fields, and its expected description. */
static void gen_record(gen_doc *d, uint64_t *rng, size_t nf, uint64_t *line)
{
    strbuf v = {0};
    size_t start = d->csv.len;
    uint64_t first_line = *line;
    csv_field *fields = calloc(nf, sizeof *fields);
    char **copies = calloc(nf, sizeof *copies);
    assert_true(fields && copies);
    for (size_t f = 0; f < nf; f++) {
        gen_field(rng, &v);
        copies[f] = strdup(v.s);
        fields[f] = (csv_field){copies[f], v.len};
        if (f)
            sb_printf(&d->csv, ",");
        if (quote_it(&v, rng)) {
            sb_printf(&d->csv, "\"");
            for (const char *c = v.s; *c; c++)
                sb_printf(&d->csv, "%s%c", *c == '"' ? "\"" : "", *c);
            sb_printf(&d->csv, "\"");
        } else {
            sb_printf(&d->csv, "%s", v.s);
        }
        *line += line_breaks(v.s);
    }
    sb_printf(&d->csv, rng_next(rng) % 2 ? "\r\n" : "\n");
    ++*line;
    csv_record r = {.fields = fields,
                    .nfields = nf,
                    .expected_fields = nf,
                    .line = first_line,
                    .next_line = *line,
                    .offset = start,
                    .end_offset = d->csv.len};
    char *text = describe(&r);
    sb_printf(&d->want, "%s\n", text);
    free(text);
    for (size_t f = 0; f < nf; f++)
        free(copies[f]);
    free(copies);
    free(fields);
    free(v.s);
}

/* Print the first line where two multi-line texts differ. */
static void report_first_difference(const char *want, const char *got, const char *what)
{
    size_t line_start = 0, i = 0, lineno = 1;
    for (; want[i] && want[i] == got[i]; i++) {
        if (want[i] == '\n') {
            line_start = i + 1;
            lineno++;
        }
    }
    print_error("round trip differs (%s), record %zu\n  want: %.*s\n  got:  %.*s\n", what, lineno,
                (int)strcspn(want + line_start, "\n"), want + line_start,
                (int)strcspn(got + line_start, "\n"), got + line_start);
}

/* Fields encoded the RFC 4180 way come back identical, however the
 * document is chunked. */
static void test_random_round_trip(void **state)
{
    (void)state;
    gen_doc d = {0};
    uint64_t rng = 42, line = 1;
    size_t nf = 6;
    /* a header row of plain names, so every record gets expected_fields */
    sb_printf(&d.csv, "c1,c2,c3,c4,c5,c6\n");
    sb_printf(&d.want, "line 1-2 bytes 0-18 header expect 6 fields 6 "
                       "[\"c1\",\"c2\",\"c3\",\"c4\",\"c5\",\"c6\"]\n");
    line = 2;
    while (d.csv.len < 300000)
        gen_record(&d, &rng, nf, &line);
    csv_options o = {.has_header = true};
    for (size_t i = 0; i < N_PLANS; i++) {
        collected got = {0};
        parse_with(d.csv.s, d.csv.len, &o, &plans[i], &got);
        strbuf all = {0};
        sb_printf(&all, "%s", "");
        for (size_t k = 0; k < got.n; k++)
            sb_printf(&all, "%s\n", got.text[k]);
        if (strcmp(all.s, d.want.s) != 0) {
            report_first_difference(d.want.s, all.s, plans[i].name);
            fail();
        }
        free(all.s);
        collected_free(&got);
    }
    free(d.csv.s);
    free(d.want.s);
}

int main(void)
{
    const struct CMUnitTest api_tests[] = {
        cmocka_unit_test(test_fixture_dir_complete),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_misuse_after_finish),
        cmocka_unit_test(test_stop_in_finish),
        cmocka_unit_test(test_header_accessor),
        cmocka_unit_test(test_supplied_header_at_offset_zero),
        cmocka_unit_test(test_error_strings),
        cmocka_unit_test(test_default_record_cap),
        cmocka_unit_test(test_random_round_trip),
    };
    int failed = cmocka_run_group_tests_name("csv_parser_api", api_tests, NULL, NULL);

    /* one test per fixture file, named after it */
    size_t n = 0;
    char **names = list_fixtures(&n);
    struct CMUnitTest *tests = calloc(n ? n : 1, sizeof *tests);
    char **paths = calloc(n ? n : 1, sizeof *paths);
    if (!tests || !paths)
        return 1;
    for (size_t i = 0; i < n; i++) {
        if (asprintf(&paths[i], "%s/%s", fixture_dir(), names[i]) < 0)
            return 1;
        tests[i] = (struct CMUnitTest){
            .name = names[i], .test_func = test_fixture, .initial_state = paths[i]};
    }
    failed += _cmocka_run_group_tests("csv_parser_fixtures", tests, n, NULL, NULL);
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
        free(paths[i]);
    }
    free(names);
    free(paths);
    free(tests);
    return failed;
}
