/* test_store_array.c — array literals for text[]/uuid[]/jsonb[]/bytea[]
 * parameters: every item quoted, quotes and backslashes escaped, NULLs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store.h"

static void assert_array(char *const *items, size_t n, const char *expected)
{
    char *got = store_text_array(items, n);
    assert_non_null(got);
    assert_string_equal(got, expected);
    free(got);
}

static void test_empty_and_plain(void **state)
{
    (void)state;
    assert_array(NULL, 0, "{}");
    char *plain[] = {"github", "slack"};
    assert_array(plain, 2, "{\"github\",\"slack\"}");
}

static void test_separators_are_data(void **state)
{
    (void)state;
    char *items[] = {"a,b", "{x}", " spaced ", ""};
    assert_array(items, 4, "{\"a,b\",\"{x}\",\" spaced \",\"\"}");
}

static void test_quotes_and_backslashes_escaped(void **state)
{
    (void)state;
    char *items[] = {"say \"hi\"", "\\x00ff", "{\"k\": \"v\\\\n\"}"};
    assert_array(items, 3,
                 "{\"say \\\"hi\\\"\",\"\\\\x00ff\",\"{\\\"k\\\": \\\"v\\\\\\\\n\\\"}\"}");
}

static void test_null_items(void **state)
{
    (void)state;
    char *items[] = {NULL, "NULL", NULL};
    /* the SQL NULL unquoted; the text "NULL" quoted */
    assert_array(items, 3, "{NULL,\"NULL\",NULL}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_and_plain),
        cmocka_unit_test(test_separators_are_data),
        cmocka_unit_test(test_quotes_and_backslashes_escaped),
        cmocka_unit_test(test_null_items),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
