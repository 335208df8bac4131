/* test_util.c — hashing, time parsing/formatting, UUIDs, string and file helpers. */
#include "unit_helpers.h"

#include "util.h"

/* ---- hashing ----------------------------------------------------------- */

static void test_sha256_hex_abc(void **state)
{
    (void)state;
    char out[65];
    util_sha256_hex("abc", 3, out);
    assert_string_equal(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_sha256_hex_empty(void **state)
{
    (void)state;
    char out[65];
    util_sha256_hex("", 0, out);
    assert_string_equal(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

/* GitHub's documented webhook signature example. */
static void test_hmac_sha256_github_vector(void **state)
{
    (void)state;
    const char *secret = "It's a Secret to Everybody";
    const char *payload = "Hello, World!";
    char out[65];
    util_hmac_sha256_hex(secret, strlen(secret), payload, strlen(payload), out);
    assert_string_equal(out, "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
}

/* RFC 4231 test case 2 (short key, shows the key length is honoured). */
static void test_hmac_sha256_rfc4231_case2(void **state)
{
    (void)state;
    const char *data = "what do ya want for nothing?";
    char out[65];
    util_hmac_sha256_hex("Jefe", 4, data, strlen(data), out);
    assert_string_equal(out, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

/* ---- util_parse_time ---------------------------------------------------- */

/* Parse `text`, asserting success, and return the microseconds. */
static int64_t parse_ok(const char *text)
{
    int64_t us = 12345;
    if (util_parse_time(text, &us) != 0) {
        print_error("util_parse_time(\"%s\") was refused\n", text);
        fail();
    }
    return us;
}

static void assert_time_refused(const char *text)
{
    int64_t us = 777;
    if (util_parse_time(text, &us) != -1) {
        print_error("util_parse_time(\"%s\") was accepted as %lld\n", text ? text : "(null)",
                    (long long)us);
        fail();
    }
    assert_int_equal(us, 777); /* untouched on failure */
}

#define T_2024_01_02_030405 INT64_C(1704164645000000)

static void test_parse_time_utc_z(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("2024-01-02T03:04:05Z"), T_2024_01_02_030405);
    assert_int_equal(parse_ok("2024-01-02t03:04:05z"), T_2024_01_02_030405);
    assert_int_equal(parse_ok("1970-01-01T00:00:00Z"), 0);
}

static void test_parse_time_fractional_seconds(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("2024-01-02T03:04:05.5Z"), T_2024_01_02_030405 + 500000);
    assert_int_equal(parse_ok("2024-01-02T03:04:05.123456Z"), T_2024_01_02_030405 + 123456);
    assert_int_equal(parse_ok("2024-01-02T03:04:05.000001Z"), T_2024_01_02_030405 + 1);
    /* digits beyond microseconds are dropped, not rounded */
    assert_int_equal(parse_ok("2024-01-02T03:04:05.1234569Z"), T_2024_01_02_030405 + 123456);
    /* comma is the ISO 8601 alternative decimal sign */
    assert_int_equal(parse_ok("2024-01-02T03:04:05,25Z"), T_2024_01_02_030405 + 250000);
}

static void test_parse_time_offsets(void **state)
{
    (void)state;
    /* 03:04:05+02:00 is 01:04:05 UTC */
    assert_int_equal(parse_ok("2024-01-02T03:04:05+02:00"),
                     T_2024_01_02_030405 - INT64_C(7200000000));
    /* 03:04:05-05:30 is 08:34:05 UTC */
    assert_int_equal(parse_ok("2024-01-02T03:04:05-0530"), INT64_C(1704184445000000));
    assert_int_equal(parse_ok("2024-01-02T03:04:05-05:30"), INT64_C(1704184445000000));
    assert_int_equal(parse_ok("2024-01-02T03:04:05+00:00"), T_2024_01_02_030405);
    assert_int_equal(parse_ok("2024-01-02T03:04:05.5+01:00"),
                     T_2024_01_02_030405 - INT64_C(3600000000) + 500000);
}

static void test_parse_time_date_only(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("2024-01-02"), INT64_C(1704153600000000));
}

static void test_parse_time_space_separator_and_no_zone(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("2024-01-02 03:04:05Z"), T_2024_01_02_030405);
    assert_int_equal(parse_ok("2024-01-02 03:04:05"), T_2024_01_02_030405);
    /* seconds are optional */
    assert_int_equal(parse_ok("2024-01-02T03:04Z"), T_2024_01_02_030405 - 5000000);
}

static void test_parse_time_leap_day_and_pre_epoch(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("2024-02-29T12:00:00Z"), INT64_C(1709208000000000));
    assert_int_equal(parse_ok("1969-12-31T23:59:59Z"), -1000000);
    assert_int_equal(parse_ok("1969-12-31T23:59:59.5Z"), -500000);
    assert_int_equal(parse_ok("1900-01-01T00:00:00Z"), INT64_C(-2208988800000000));
}

static void test_parse_time_leap_second_mid_day(void **state)
{
    (void)state;
    /* second 60 is accepted and lands on the next minute */
    assert_int_equal(parse_ok("2024-01-02T03:04:60Z"), T_2024_01_02_030405 + 55000000);
}

static void test_parse_time_leap_second_end_of_day(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("2016-12-31T23:59:60Z"), INT64_C(1483228800000000));
}

static void test_parse_time_rejects_malformed(void **state)
{
    (void)state;
    assert_time_refused("2024-13-01");
    assert_time_refused("2024-00-10");
    assert_time_refused("2024-01-00");
    assert_time_refused("2024-01-32");
    assert_time_refused("2024-02-30T00:00:00Z");
    assert_time_refused("2023-02-29");
    assert_time_refused("2024-04-31");
    assert_time_refused("garbage");
    assert_time_refused("2024-01-02T03:04:05Zjunk");
    assert_time_refused("2024-01-02T03:04:05+02:00junk");
    assert_time_refused("");
    assert_time_refused(NULL);
    assert_time_refused("2024-01-02T");
    assert_time_refused("2024-01-02T24:00:00Z");
    assert_time_refused("2024-01-02T03:60:00Z");
    assert_time_refused("2024-01-02T03:04:05.Z");
    assert_time_refused("2024-01-02T03:04:05+24:00");
    assert_time_refused("2024-01-02T03:04:05+02:60");
    assert_time_refused("24-01-02");
    assert_time_refused("2024/01/02");
    assert_time_refused("2024-01-02Z");
}

/* ---- util_format_time --------------------------------------------------- */

static void assert_formats_as(int64_t us, const char *expected)
{
    char out[32];
    memset(out, 'x', sizeof out);
    util_format_time(us, out);
    assert_string_equal(out, expected);
}

static void test_format_time_values(void **state)
{
    (void)state;
    assert_formats_as(0, "1970-01-01T00:00:00.000000Z");
    assert_formats_as(T_2024_01_02_030405 + 123456, "2024-01-02T03:04:05.123456Z");
    assert_formats_as(-1, "1969-12-31T23:59:59.999999Z");
    assert_formats_as(-500000, "1969-12-31T23:59:59.500000Z");
    assert_formats_as(-1000000, "1969-12-31T23:59:59.000000Z");
    assert_formats_as(INT64_C(-2208988800000000), "1900-01-01T00:00:00.000000Z");
}

static void test_format_parse_round_trip(void **state)
{
    (void)state;
    const int64_t values[] = {
        0,
        1,
        -1,
        999999,
        -999999,
        -1000001,
        T_2024_01_02_030405,
        T_2024_01_02_030405 + 654321,
        INT64_C(-2208988800000000) + 42,
        INT64_C(951782400000000),   /* 2000-02-29 */
        INT64_C(253402300799999999) /* 9999-12-31T23:59:59.999999Z */
    };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char text[32];
        util_format_time(values[i], text);
        int64_t back = 0;
        if (util_parse_time(text, &back) != 0 || back != values[i]) {
            print_error("round trip of %lld via \"%s\" gave %lld\n", (long long)values[i], text,
                        (long long)back);
            fail();
        }
    }
}

/* ---- UUIDs -------------------------------------------------------------- */

static void test_uuid4_format(void **state)
{
    (void)state;
    char seen[8][37];
    for (int i = 0; i < 8; i++) {
        char *u = seen[i];
        util_uuid4(u);
        assert_int_equal(strlen(u), 36);
        assert_true(util_is_uuid(u));
        assert_int_equal(u[14], '4');           /* version 4 */
        assert_non_null(strchr("89ab", u[19])); /* RFC 4122 variant */
        for (int j = 0; j < 36; j++)
            if (j != 8 && j != 13 && j != 18 && j != 23)
                assert_non_null(strchr("0123456789abcdef", u[j])); /* lower-case hex */
        for (int j = 0; j < i; j++)
            assert_string_not_equal(u, seen[j]);
    }
}

/* Version 7: the first 48 bits are the unix milliseconds, so ids made in
 * later milliseconds sort after earlier ones (as text, too). */
static void test_uuid7_time_ordered(void **state)
{
    (void)state;
    char a[37], b[37];
    int64_t before_ms = util_now_us() / 1000;
    util_uuid7(a);
    assert_true(util_is_uuid(a));
    assert_int_equal(a[14], '7');
    assert_non_null(strchr("89ab", a[19]));
    char hex[13];
    memcpy(hex, a, 8);
    memcpy(hex + 8, a + 9, 4);
    hex[12] = '\0';
    long long stamped = strtoll(hex, NULL, 16);
    assert_true(stamped >= before_ms && stamped <= util_now_us() / 1000);
    usleep(2000);
    util_uuid7(b);
    assert_true(strcmp(a, b) < 0);
    assert_memory_not_equal(a + 19, b + 19, 17); /* the random part differs */
}

static void test_is_uuid(void **state)
{
    (void)state;
    assert_true(util_is_uuid("00000000-0000-4000-8000-000000000001"));
    assert_true(util_is_uuid("123E4567-E89B-12D3-A456-426614174000"));
    assert_false(util_is_uuid(NULL));
    assert_false(util_is_uuid(""));
    assert_false(util_is_uuid("00000000-0000-4000-8000-00000000000"));   /* 35 chars */
    assert_false(util_is_uuid("00000000-0000-4000-8000-0000000000011")); /* 37 chars */
    assert_false(util_is_uuid("00000000-0000-4000-8000_000000000001"));  /* bad dash */
    assert_false(util_is_uuid("0000000g-0000-4000-8000-000000000001"));  /* not hex */
    assert_false(util_is_uuid("000000000000-4000-8000-0000-00000001"));  /* dashes moved */
    assert_false(util_is_uuid("{0000000-0000-4000-8000-000000000001"));
}

/* ---- util_split / util_join -------------------------------------------- */

static void test_split_trims_and_drops_empty_items(void **state)
{
    (void)state;
    size_t count = 99;
    char **v = util_split("  a , b,,\tc  ,  , d ", ',', &count);
    assert_non_null(v);
    assert_int_equal(count, 4);
    assert_string_equal(v[0], "a");
    assert_string_equal(v[1], "b");
    assert_string_equal(v[2], "c");
    assert_string_equal(v[3], "d");
    assert_null(v[4]);
    util_strv_free(v);
}

static void test_split_keeps_inner_blanks(void **state)
{
    (void)state;
    size_t count = 0;
    char **v = util_split("hello world ; x", ';', &count);
    assert_non_null(v);
    assert_int_equal(count, 2);
    assert_string_equal(v[0], "hello world");
    assert_string_equal(v[1], "x");
    assert_null(v[2]);
    util_strv_free(v);
}

static void test_split_empty_and_blank_inputs(void **state)
{
    (void)state;
    const char *inputs[] = {"", ",", " , ,, ", "   "};
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        size_t count = 99;
        char **v = util_split(inputs[i], ',', &count);
        assert_non_null(v);
        assert_int_equal(count, 0);
        assert_null(v[0]);
        util_strv_free(v);
    }
}

static void test_split_single_item_without_separator(void **state)
{
    (void)state;
    size_t count = 0;
    char **v = util_split("only", ',', &count);
    assert_non_null(v);
    assert_int_equal(count, 1);
    assert_string_equal(v[0], "only");
    assert_null(v[1]);
    util_strv_free(v);
}

static void test_join(void **state)
{
    (void)state;
    char *items[] = {"a", "bc", "", "d"};
    char *s = util_join(items, 4, ", ");
    assert_string_equal(s, "a, bc, , d");
    free(s);
    s = util_join(items, 1, ",");
    assert_string_equal(s, "a");
    free(s);
    s = util_join(items, 0, ",");
    assert_string_equal(s, "");
    free(s);
    s = util_join(items, 2, "");
    assert_string_equal(s, "abc");
    free(s);
}

static void test_split_join_round_trip(void **state)
{
    (void)state;
    size_t count = 0;
    char **v = util_split("x, y ,z", ',', &count);
    char *s = util_join(v, count, ",");
    assert_string_equal(s, "x,y,z");
    free(s);
    util_strv_free(v);
}

/* ---- files -------------------------------------------------------------- */

typedef struct file_fixture {
    char *dir;
} file_fixture;

static int file_setup(void **state)
{
    file_fixture *fx = calloc(1, sizeof *fx);
    if (!fx || !(fx->dir = unit_make_temp_dir("util"))) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int file_teardown(void **state)
{
    file_fixture *fx = *state;
    unit_remove_tree(fx->dir);
    free(fx->dir);
    free(fx);
    return 0;
}

static void test_sha256_file_matches_memory_hash(void **state)
{
    file_fixture *fx = *state;
    char *path = unit_path_join(fx->dir, "abc.txt");
    assert_int_equal(unit_write_file(path, "abc", 0644), 0);
    char out[65];
    assert_int_equal(util_sha256_file(path, out), 0);
    assert_string_equal(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    free(path);
}

static void test_sha256_file_larger_than_read_buffer(void **state)
{
    file_fixture *fx = *state;
    size_t len = 200000; /* > the 64 KiB read buffer: several reads */
    char *data = malloc(len + 1);
    assert_non_null(data);
    for (size_t i = 0; i < len; i++)
        data[i] = (char)('a' + i % 26);
    data[len] = '\0';
    char *path = unit_path_join(fx->dir, "big.bin");
    assert_int_equal(unit_write_file(path, data, 0600), 0);
    char from_file[65], from_mem[65];
    assert_int_equal(util_sha256_file(path, from_file), 0);
    util_sha256_hex(data, len, from_mem);
    assert_string_equal(from_file, from_mem);
    free(path);
    free(data);
}

static void test_sha256_file_missing(void **state)
{
    file_fixture *fx = *state;
    char *path = unit_path_join(fx->dir, "does-not-exist");
    char out[65];
    errno = 0;
    assert_int_equal(util_sha256_file(path, out), -1);
    assert_int_equal(errno, ENOENT);
    free(path);
}

static void test_copy_file_content_and_mode(void **state)
{
    file_fixture *fx = *state;
    char *src = unit_path_join(fx->dir, "src.txt");
    char *dst = unit_path_join(fx->dir, "dst.txt");
    const char *content = "line one\nline two\n";
    assert_int_equal(unit_write_file(src, content, 0644), 0);
    assert_int_equal(unit_write_file(dst, "old content that is longer than the new one", 0600), 0);

    assert_int_equal(util_copy_file(src, dst), 0);

    char *copied = unit_read_file(dst);
    assert_non_null(copied);
    assert_string_equal(copied, content);
    free(copied);
    struct stat st;
    assert_int_equal(stat(dst, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    char h1[65], h2[65];
    assert_int_equal(util_sha256_file(src, h1), 0);
    assert_int_equal(util_sha256_file(dst, h2), 0);
    assert_string_equal(h1, h2);
    /* no temporary left behind */
    char *tmp = unit_path_join(fx->dir, "dst.txt.tmp");
    assert_int_equal(access(tmp, F_OK), -1);
    free(tmp);
    free(src);
    free(dst);
}

static void test_copy_file_missing_source(void **state)
{
    file_fixture *fx = *state;
    char *src = unit_path_join(fx->dir, "nope");
    char *dst = unit_path_join(fx->dir, "dst");
    errno = 0;
    assert_int_equal(util_copy_file(src, dst), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(access(dst, F_OK), -1);
    free(src);
    free(dst);
}

static void test_copy_file_refuses_symlink_source(void **state)
{
    file_fixture *fx = *state;
    char *target = unit_path_join(fx->dir, "target");
    char *link = unit_path_join(fx->dir, "link");
    char *dst = unit_path_join(fx->dir, "dst");
    assert_int_equal(unit_write_file(target, "x", 0644), 0);
    assert_int_equal(symlink(target, link), 0);
    errno = 0;
    assert_int_equal(util_copy_file(link, dst), -1);
    assert_int_equal(errno, ELOOP);
    free(target);
    free(link);
    free(dst);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_hex_abc),
        cmocka_unit_test(test_sha256_hex_empty),
        cmocka_unit_test(test_hmac_sha256_github_vector),
        cmocka_unit_test(test_hmac_sha256_rfc4231_case2),
        cmocka_unit_test(test_parse_time_utc_z),
        cmocka_unit_test(test_parse_time_fractional_seconds),
        cmocka_unit_test(test_parse_time_offsets),
        cmocka_unit_test(test_parse_time_date_only),
        cmocka_unit_test(test_parse_time_space_separator_and_no_zone),
        cmocka_unit_test(test_parse_time_leap_day_and_pre_epoch),
        cmocka_unit_test(test_parse_time_leap_second_mid_day),
        cmocka_unit_test(test_parse_time_leap_second_end_of_day),
        cmocka_unit_test(test_parse_time_rejects_malformed),
        cmocka_unit_test(test_format_time_values),
        cmocka_unit_test(test_format_parse_round_trip),
        cmocka_unit_test(test_uuid4_format),
        cmocka_unit_test(test_uuid7_time_ordered),
        cmocka_unit_test(test_is_uuid),
        cmocka_unit_test(test_split_trims_and_drops_empty_items),
        cmocka_unit_test(test_split_keeps_inner_blanks),
        cmocka_unit_test(test_split_empty_and_blank_inputs),
        cmocka_unit_test(test_split_single_item_without_separator),
        cmocka_unit_test(test_join),
        cmocka_unit_test(test_split_join_round_trip),
        cmocka_unit_test_setup_teardown(test_sha256_file_matches_memory_hash, file_setup,
                                        file_teardown),
        cmocka_unit_test_setup_teardown(test_sha256_file_larger_than_read_buffer, file_setup,
                                        file_teardown),
        cmocka_unit_test_setup_teardown(test_sha256_file_missing, file_setup, file_teardown),
        cmocka_unit_test_setup_teardown(test_copy_file_content_and_mode, file_setup, file_teardown),
        cmocka_unit_test_setup_teardown(test_copy_file_missing_source, file_setup, file_teardown),
        cmocka_unit_test_setup_teardown(test_copy_file_refuses_symlink_source, file_setup,
                                        file_teardown),
    };
    return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
