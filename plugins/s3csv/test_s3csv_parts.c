/* test_s3csv_parts.c — the S3/CSV connector's host-independent parts:
 * connection settings, schema values, S3 URLs and XML, the cursor. The
 * end-to-end behaviour (a daemon, PostgreSQL and an S3 server) is tested
 * in tests/integration/test_s3csv.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../host/util.h"
#include "s3csv.h"

static int parse_time(const char *text, int64_t *us) { return util_parse_time(text, us); }

static const s3csv_clock clock_ = {parse_time, util_format_time};

static void parses(const char *json, s3csv_settings *s)
{
    char why[300] = "";
    int rc = s3csv_settings_parse(json, &clock_, s, why, sizeof why);
    if (rc != 0)
        print_error("%s: %s\n", json, why);
    assert_int_equal(rc, 0);
}

static void refused(const char *json, const char *because)
{
    s3csv_settings s;
    char why[300] = "";
    assert_int_equal(s3csv_settings_parse(json, &clock_, &s, why, sizeof why), -1);
    if (!strstr(why, because))
        print_error("%s: '%s' lacks '%s'\n", json, why, because);
    assert_non_null(strstr(why, because));
}

/* ---- settings ---------------------------------------------------------------- */

static void test_settings_defaults(void **state)
{
    (void)state;
    s3csv_settings s;
    parses("{\"bucket\": \"data\", \"schedule\": {\"*\": {\"enabled\": false}}}", &s);
    assert_string_equal(s.bucket, "data");
    assert_null(s.prefix);
    assert_string_equal(s.region, "us-east-1");
    assert_string_equal(s.endpoint, "https://s3.us-east-1.amazonaws.com");
    assert_false(s.force_path_style);
    assert_int_equal(s.delimiter, ',');
    assert_true(s.has_header);
    assert_string_equal(s.kind, "s3csv.row");
    assert_string_equal(s.sigv4, "aws:amz:us-east-1:s3");
    assert_int_equal(s.n_columns, 0);
    s3csv_settings_free(&s);

    parses("{\"bucket\": \"a.b\", \"region\": \"eu-west-1\", \"delimiter\": \"\\t\", "
           "\"endpoint\": \"http://127.0.0.1:9000/\", \"has_header\": false, "
           "\"schema\": [{\"column\": 2, \"field\": \"n\", \"type\": \"int\"}]}",
           &s);
    assert_string_equal(s.endpoint, "http://127.0.0.1:9000");
    assert_int_equal(s.delimiter, '\t');
    assert_false(s.force_path_style); /* http: no certificate to break */
    assert_string_equal(s.sigv4, "aws:amz:eu-west-1:s3");
    s3csv_settings_free(&s);

    /* a dotted bucket on https is addressed by path */
    parses("{\"bucket\": \"a.b\"}", &s);
    assert_true(s.force_path_style);
    s3csv_settings_free(&s);
}

static void test_settings_refused(void **state)
{
    (void)state;
    refused("[]", "not a JSON object");
    refused("{}", "bucket is required");
    refused("{\"bucket\": \"a/b\"}", "bucket is required");
    refused("{\"bucket\": \"b\", \"buckets\": 1}", "unknown config key 'buckets'");
    refused("{\"bucket\": \"b\", \"endpoint\": \"ftp://x\"}", "endpoint must be");
    refused("{\"bucket\": \"b\", \"endpoint\": \"http://u:p@x\"}", "endpoint must be");
    refused("{\"bucket\": \"b\", \"region\": \"US EAST\"}", "region must be");
    refused("{\"bucket\": \"b\", \"delimiter\": \"\\\"\"}", "delimiter must be");
    refused("{\"bucket\": \"b\", \"delimiter\": \";;\"}", "delimiter must be");
    refused("{\"bucket\": \"b\", \"force_path_style\": \"yes\"}", "force_path_style");
    refused("{\"bucket\": \"b\", \"schema\": []}", "schema must be");
    refused("{\"bucket\": \"b\", \"schema\": [{\"field\": \"x\"}]}", "needs a column");
    refused("{\"bucket\": \"b\", \"schema\": [{\"column\": \"a\", \"type\": \"money\"}]}",
            "bad 'type'");
    refused("{\"bucket\": \"b\", \"schema\": [{\"column\": \"a\", \"colour\": 1}]}",
            "unknown member 'colour'");
    refused("{\"bucket\": \"b\", \"schema\": [{\"column\": \"a\"}, {\"column\": \"b\", "
            "\"field\": \"a\"}]}",
            "repeats field 'a'");
    refused("{\"bucket\": \"b\", \"schema\": [{\"column\": \"a\", \"type\": \"enum\"}]}",
            "values go with type enum");
    refused("{\"bucket\": \"b\", \"schema\": [{\"column\": \"a\", \"type\": \"int\", "
            "\"default\": \"x\"}]}",
            "schema[0] default not an integer");
    refused("{\"bucket\": \"b\", \"schema\": [{\"column\": \"a\", \"format\": \"%Y\"}]}",
            "format is only for timestamps");
    refused("{\"bucket\": \"b\", \"schema\": [{\"column\": \"a\"}], \"key_fields\": [\"id\"]}",
            "'id' is not a field of the schema");
    refused("{\"bucket\": \"b\", \"schema\": [{\"column\": \"a\"}], \"occurred_at_field\": "
            "\"a\"}",
            "must be a timestamp field");
    refused("{\"bucket\": \"b\", \"has_header\": false, \"schema\": [{\"column\": \"a\"}]}",
            "must name its column by number");
}

/* ---- schema values ----------------------------------------------------------- */

static char *convert(const char *column_json, const char *text, char *why)
{
    json_object *entry = json_tokener_parse(column_json);
    s3csv_column col;
    char err[200];
    assert_int_equal(s3csv_column_parse(entry, 0, &clock_, &col, err, sizeof err), 0);
    json_object_put(entry);
    json_object *v = NULL;
    why[0] = '\0';
    int rc = s3csv_convert(&col, &clock_, text, text ? strlen(text) : 0, &v, why, 200);
    s3csv_column_free(&col);
    if (rc < 0)
        return NULL;
    char *out = strdup(v ? json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN) : "null");
    json_object_put(v);
    return out;
}

#define CONVERTS(col, text, expect)                                                                \
    do {                                                                                           \
        char why_[200];                                                                            \
        const char *text_ = (text);                                                                \
        char *got_ = convert(col, text_, why_);                                                    \
        if (!got_)                                                                                 \
            print_error("%s <- '%s': %s\n", col, text_ ? text_ : "(null)", why_);                  \
        assert_non_null(got_);                                                                     \
        assert_string_equal(got_, expect);                                                         \
        free(got_);                                                                                \
    } while (0)

#define REFUSES(col, text, because)                                                                \
    do {                                                                                           \
        char why_[200];                                                                            \
        char *got_ = convert(col, text, why_);                                                     \
        if (got_)                                                                                  \
            print_error("%s <- '%s' gave %s\n", col, text, got_);                                  \
        assert_null(got_);                                                                         \
        assert_non_null(strstr(why_, because));                                                    \
    } while (0)

static void test_values(void **state)
{
    (void)state;
    const char *i = "{\"column\": \"n\", \"type\": \"int\"}";
    CONVERTS(i, "42", "42");
    CONVERTS(i, " -7 ", "-7");
    CONVERTS(i, "", "null");
    REFUSES(i, "4x", "not an integer: '4x'");
    REFUSES(i, "1.5", "not an integer");
    REFUSES(i, "99999999999999999999", "integer out of range");
    const char *f = "{\"column\": \"x\", \"type\": \"float\"}";
    CONVERTS(f, "0.1", "0.1");
    CONVERTS(f, "-2.5e3", "-2.5e3");
    CONVERTS(f, "1.", "1.0");
    REFUSES(f, "inf", "not a finite number");
    REFUSES(f, "0x10", "not a number");
    const char *b = "{\"column\": \"b\", \"type\": \"bool\"}";
    CONVERTS(b, "TRUE", "true");
    CONVERTS(b, "no", "false");
    REFUSES(b, "maybe", "not a boolean");
    const char *t = "{\"column\": \"t\", \"type\": \"timestamp\"}";
    CONVERTS(t, "2024-03-01T12:00:00+01:00", "\"2024-03-01T11:00:00.000000Z\"");
    REFUSES(t, "yesterday", "not a timestamp in format RFC 3339");
    const char *tf = "{\"column\": \"t\", \"type\": \"timestamp\", \"format\": \"%d/%m/%Y %H:%M\"}";
    CONVERTS(tf, "31/12/2023 23:59", "\"2023-12-31T23:59:00.000000Z\"");
    REFUSES(tf, "2023-12-31", "not a timestamp in format %d/%m/%Y %H:%M");
    const char *tz =
        "{\"column\": \"t\", \"type\": \"timestamp\", \"format\": \"%Y-%m-%d %H:%M %z\"}";
    CONVERTS(tz, "2024-01-01 10:00 +0200", "\"2024-01-01T08:00:00.000000Z\"");
    const char *tu = "{\"column\": \"t\", \"type\": \"timestamp\", \"format\": \"unix_ms\"}";
    CONVERTS(tu, "1700000000123", "\"2023-11-14T22:13:20.123000Z\"");
    const char *e = "{\"column\": \"c\", \"type\": \"enum\", \"values\": [\"red\", \"green\"]}";
    CONVERTS(e, "green", "\"green\"");
    REFUSES(e, "Green", "not one of the allowed values: 'Green'");
    const char *req = "{\"column\": \"s\", \"required\": true}";
    CONVERTS(req, "x", "\"x\"");
    REFUSES(req, "", "required value is empty");
    const char *dflt = "{\"column\": \"n\", \"type\": \"int\", \"required\": true, \"default\": "
                       "\"0\"}";
    CONVERTS(dflt, "", "0");
    CONVERTS(dflt, NULL, "0"); /* a missing column */
    CONVERTS("{\"column\": \"s\"}", "", "\"\"");

    /* the quoted value in a reason is cut at 64 bytes */
    char long_text[200];
    memset(long_text, 'z', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    char why[200];
    assert_null(convert(i, long_text, why));
    assert_true(strlen(why) < 120);

    /* a NUL byte cannot be stored in jsonb */
    json_object *entry = json_tokener_parse("{\"column\": \"s\"}");
    s3csv_column col;
    assert_int_equal(s3csv_column_parse(entry, 0, &clock_, &col, why, sizeof why), 0);
    json_object *v = NULL;
    assert_int_equal(s3csv_convert(&col, &clock_, "a\0b", 3, &v, why, sizeof why), -1);
    assert_non_null(strstr(why, "NUL"));
    s3csv_column_free(&col);
    json_object_put(entry);
}

/* ---- S3 addressing ------------------------------------------------------------ */

static void test_urls(void **state)
{
    (void)state;
    char *enc = s3csv_uri_encode("a b/ä+=&~.csv", 1);
    assert_string_equal(enc, "a%20b/%C3%A4%2B%3D%26~.csv");
    free(enc);
    enc = s3csv_uri_encode("x/y", 0);
    assert_string_equal(enc, "x%2Fy");
    free(enc);

    s3csv_settings s;
    parses("{\"bucket\": \"bkt\", \"endpoint\": \"http://127.0.0.1:9000\", "
           "\"force_path_style\": true}",
           &s);
    char *url = s3csv_url(&s, "in/a b.csv");
    assert_string_equal(url, "http://127.0.0.1:9000/bkt/in/a%20b.csv");
    free(url);
    url = s3csv_url(&s, NULL);
    assert_string_equal(url, "http://127.0.0.1:9000/bkt");
    free(url);
    s3csv_settings_free(&s);

    parses("{\"bucket\": \"bkt\", \"endpoint\": \"http://localhost:9000\"}", &s);
    url = s3csv_url(&s, "k.csv");
    assert_string_equal(url, "http://bkt.localhost:9000/k.csv");
    free(url);
    url = s3csv_url(&s, NULL);
    assert_string_equal(url, "http://bkt.localhost:9000/");
    free(url);
    s3csv_settings_free(&s);

    parses("{\"bucket\": \"bkt\", \"region\": \"eu-central-1\"}", &s);
    url = s3csv_url(&s, "k.csv");
    assert_string_equal(url, "https://bkt.s3.eu-central-1.amazonaws.com/k.csv");
    free(url);
    s3csv_settings_free(&s);
}

static void test_listing_xml(void **state)
{
    (void)state;
    const char *xml =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Name>bkt</Name><Prefix>in/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>"
        "<IsTruncated>true</IsTruncated>"
        "<Contents><Key>in/a&amp;b &lt;1&gt;.csv</Key>"
        "<LastModified>2024-05-01T10:00:00.000Z</LastModified>"
        "<ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag><Size>1234</Size>"
        "<StorageClass>STANDARD</StorageClass></Contents>"
        "<Contents><Key>in/&#xE4;&#252;.csv</Key>"
        "<LastModified>2024-05-02T10:00:00Z</LastModified>"
        "<ETag>\"abc-2\"</ETag><Size>0</Size></Contents>"
        "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</"
        "NextContinuationToken>"
        "</ListBucketResult>";
    s3csv_listing l;
    assert_int_equal(s3csv_parse_listing(xml, strlen(xml), &clock_, &l), 0);
    assert_int_equal(l.n_objects, 2);
    assert_string_equal(l.objects[0].key, "in/a&b <1>.csv");
    assert_string_equal(l.objects[0].etag, "9b2cf535f27731c974343645a3985328");
    assert_int_equal(l.objects[0].size, 1234);
    assert_int_equal(l.objects[0].last_modified_us, 1714557600000000LL);
    assert_string_equal(l.objects[1].key, "in/\xC3\xA4\xC3\xBC.csv");
    assert_string_equal(l.objects[1].etag, "abc-2");
    assert_true(l.truncated);
    assert_string_equal(l.next_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
    s3csv_listing_free(&l);

    const char *empty = "<ListBucketResult><Name>b</Name><IsTruncated>false</IsTruncated>"
                        "<NextContinuationToken/></ListBucketResult>";
    assert_int_equal(s3csv_parse_listing(empty, strlen(empty), &clock_, &l), 0);
    assert_int_equal(l.n_objects, 0);
    assert_false(l.truncated);
    assert_null(l.next_token);
    s3csv_listing_free(&l);

    const char *bad = "<ListBucketResult><Contents><Key>k</Key><Size>x</Size>"
                      "<LastModified>2024-05-02T10:00:00Z</LastModified></Contents>"
                      "</ListBucketResult>";
    assert_int_equal(s3csv_parse_listing(bad, strlen(bad), &clock_, &l), -1);
    assert_int_equal(s3csv_parse_listing("<html/>", 7, &clock_, &l), -1);

    const char *err = "<?xml version=\"1.0\"?><Error><Code>InvalidAccessKeyId</Code>"
                      "<Message>The AWS Access Key Id you provided does not exist.</Message>"
                      "<AWSAccessKeyId>AKIA</AWSAccessKeyId></Error>";
    char code[64], message[128];
    s3csv_parse_error(err, strlen(err), code, sizeof code, message, sizeof message);
    assert_string_equal(code, "InvalidAccessKeyId");
    assert_string_equal(message, "The AWS Access Key Id you provided does not exist.");
    s3csv_parse_error("", 0, code, sizeof code, message, sizeof message);
    assert_string_equal(code, "");
}

/* ---- cursor ------------------------------------------------------------------- */

static void test_cursor_round_trip(void **state)
{
    (void)state;
    s3csv_cursor c;
    assert_int_equal(s3csv_cursor_parse(NULL, &c), 0);
    assert_false(c.in_pass);
    assert_int_equal(c.since_us, 0);
    c.in_pass = 1;
    c.started_us = 1700000000000000LL;
    c.full = 1;
    c.job_id = strdup("0b1c7e4a-9d35-4b67-a0a5-5f4c6a1e2d3f");
    c.after = strdup("in/a.csv");
    c.cur.key = strdup("in/b \"quoted\".csv");
    c.cur.etag = strdup("e1");
    c.cur.offset = 123456789012LL;
    c.cur.line = 77;
    c.cur.n_header = 2;
    c.cur.header = calloc(2, sizeof(char *));
    c.cur.header[0] = strdup("id");
    c.cur.header[1] = strdup("naïve, \"name\"");
    char *text = s3csv_cursor_text(&c);
    s3csv_cursor_free(&c);
    assert_non_null(text);

    assert_int_equal(s3csv_cursor_parse(text, &c), 0);
    free(text);
    assert_true(c.in_pass);
    assert_true(c.full);
    assert_int_equal(c.started_us, 1700000000000000LL);
    assert_string_equal(c.job_id, "0b1c7e4a-9d35-4b67-a0a5-5f4c6a1e2d3f");
    assert_string_equal(c.after, "in/a.csv");
    assert_string_equal(c.cur.key, "in/b \"quoted\".csv");
    assert_int_equal(c.cur.offset, 123456789012LL);
    assert_int_equal(c.cur.line, 77);
    assert_int_equal(c.cur.n_header, 2);
    assert_string_equal(c.cur.header[1], "naïve, \"name\"");

    /* between two passes */
    c.in_pass = 0;
    c.since_us = 42;
    text = s3csv_cursor_text(&c);
    s3csv_cursor_free(&c);
    assert_string_equal(text, "{\"v\":1,\"since\":42,\"recent\":[],\"pass\":null}");
    assert_int_equal(s3csv_cursor_parse(text, &c), 0);
    assert_false(c.in_pass);
    assert_int_equal(c.since_us, 42);
    free(text);
    s3csv_cursor_free(&c);

    assert_int_equal(s3csv_cursor_parse("12345", &c), -1);
    assert_int_equal(s3csv_cursor_parse("{\"v\":2,\"since\":1}", &c), -1);
    assert_int_equal(
        s3csv_cursor_parse("{\"v\":1,\"since\":1,\"pass\":{\"started\":1,\"after\":\"\","
                           "\"cur\":{\"key\":\"k\",\"etag\":\"e\",\"offset\":-1,\"line\":1}}}",
                           &c),
        -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_settings_defaults),
        cmocka_unit_test(test_settings_refused),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_listing_xml),
        cmocka_unit_test(test_cursor_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
