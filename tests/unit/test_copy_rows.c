/* test_copy_rows.c — COPY text framing: separators, NULL, escapes, reuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "copy_rows.h"

static void assert_rows(const copy_rows *rows, const char *expected)
{
    assert_int_equal(rows->len, strlen(expected));
    assert_memory_equal(rows->data, expected, rows->len);
}

static void test_fields_and_null(void **state)
{
    (void)state;
    copy_rows rows;
    copy_rows_init(&rows);
    copy_rows_field(&rows, "a");
    copy_rows_field(&rows, NULL);
    copy_rows_field(&rows, "");
    copy_rows_end(&rows);
    assert_rows(&rows, "a\t\\N\t\n");
    assert_int_equal(rows.n_rows, 1);
    copy_rows_free(&rows);
}

static void test_escapes(void **state)
{
    (void)state;
    copy_rows rows;
    copy_rows_init(&rows);
    copy_rows_field(&rows, "{\"s\": \"a\\\\b\"}\n\ttab\rcr");
    copy_rows_end(&rows);
    assert_rows(&rows, "{\"s\": \"a\\\\\\\\b\"}\\n\\ttab\\rcr\n");
    copy_rows_free(&rows);
}

static void test_reset_keeps_nothing(void **state)
{
    (void)state;
    copy_rows rows;
    copy_rows_init(&rows);
    copy_rows_field(&rows, "x");
    copy_rows_end(&rows);
    copy_rows_reset(&rows);
    assert_int_equal(rows.len, 0);
    assert_int_equal(rows.n_rows, 0);
    copy_rows_field(&rows, "y");
    copy_rows_end(&rows);
    assert_rows(&rows, "y\n");
    copy_rows_free(&rows);
}

static void test_drop_partial_row(void **state)
{
    (void)state;
    copy_rows rows;
    copy_rows_init(&rows);
    copy_rows_field(&rows, "kept");
    copy_rows_end(&rows);
    size_t start = rows.len;
    copy_rows_field(&rows, "half");
    copy_rows_drop_partial(&rows, start);
    copy_rows_field(&rows, "next");
    copy_rows_end(&rows);
    assert_rows(&rows, "kept\nnext\n");
    assert_int_equal(rows.n_rows, 2);
    copy_rows_free(&rows);
}

static void test_grows_past_first_block(void **state)
{
    (void)state;
    copy_rows rows;
    copy_rows_init(&rows);
    char big[10000];
    memset(big, '\\', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    for (int i = 0; i < 20; i++) {
        copy_rows_field(&rows, big);
        copy_rows_end(&rows);
    }
    assert_false(rows.failed);
    assert_int_equal(rows.n_rows, 20);
    assert_int_equal(rows.len, 20 * (2 * (sizeof big - 1) + 1));
    copy_rows_free(&rows);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_and_null),        cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_reset_keeps_nothing),    cmocka_unit_test(test_drop_partial_row),
        cmocka_unit_test(test_grows_past_first_block),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
