/* test_pagination.c — Link header parsing, JSON cursors and page/offset URLs. */
#include "unit_helpers.h"

#include <ctype.h>

#include "pagination.h"

/* assert that a malloc'd result equals `expected` (or is NULL), then free it. */
static void check_and_free(char *got, const char *expected)
{
    if (!expected) {
        if (got)
            print_error("expected NULL, got \"%s\"\n", got);
        assert_null(got);
        return;
    }
    assert_non_null(got);
    assert_string_equal(got, expected);
    free(got);
}

/* ---- Link header ---------------------------------------------------------- */

static void test_github_link_header(void **state)
{
    (void)state;
    const char *link = "<https://api.github.com/repositories/1/issues?page=2>; rel=\"next\", "
                       "<https://api.github.com/repositories/1/issues?page=5>; rel=\"last\"";
    check_and_free(pagination_link_next(link, NULL),
                   "https://api.github.com/repositories/1/issues?page=2");
    check_and_free(pagination_link_rel(link, "last", NULL),
                   "https://api.github.com/repositories/1/issues?page=5");
    check_and_free(pagination_link_rel(link, "prev", NULL), NULL);
}

static void test_github_link_header_with_prev_first(void **state)
{
    (void)state;
    const char *link = "<https://api.github.com/repositories/1/issues?page=1>; rel=\"prev\", "
                       "<https://api.github.com/repositories/1/issues?page=3>; rel=\"next\", "
                       "<https://api.github.com/repositories/1/issues?page=5>; rel=\"last\", "
                       "<https://api.github.com/repositories/1/issues?page=1>; rel=\"first\"";
    check_and_free(pagination_link_next(link, NULL),
                   "https://api.github.com/repositories/1/issues?page=3");
}

static void test_last_page_has_no_next(void **state)
{
    (void)state;
    const char *link = "<https://api.github.com/repositories/1/issues?page=4>; rel=\"prev\", "
                       "<https://api.github.com/repositories/1/issues?page=1>; rel=\"first\"";
    check_and_free(pagination_link_next(link, NULL), NULL);
    check_and_free(pagination_link_next(NULL, NULL), NULL);
    check_and_free(pagination_link_next("", NULL), NULL);
}

static void test_unquoted_rel(void **state)
{
    (void)state;
    check_and_free(pagination_link_next("<https://x.test/a?p=2>; rel=next", NULL),
                   "https://x.test/a?p=2");
}

static void test_multiple_rel_values(void **state)
{
    (void)state;
    check_and_free(pagination_link_next("<https://x.test/2>; rel=\"last next\"", NULL),
                   "https://x.test/2");
    /* a relation type is a whole word, not a prefix */
    check_and_free(pagination_link_next("<https://x.test/2>; rel=\"nextpage\"", NULL), NULL);
}

static void test_spaces_and_case(void **state)
{
    (void)state;
    check_and_free(
        pagination_link_next("  <https://x.test/1> ;rel=\"prev\" ,\t<https://x.test/3>  ;  "
                             "title=\"page three\" ;  REL = \"Next\"  ",
                             NULL),
        "https://x.test/3");
}

static void test_separators_inside_target_and_quotes(void **state)
{
    (void)state;
    /* commas inside <...> and ';' / ',' inside a quoted title do not split links */
    const char *link = "<https://x.test/a?ids=1,2;3>; title=\"a, b; rel=next\"; rel=\"prev\", "
                       "<https://x.test/b?ids=4,5>; rel=\"next\"";
    check_and_free(pagination_link_next(link, NULL), "https://x.test/b?ids=4,5");
}

static void test_escaped_quote_in_parameter(void **state)
{
    (void)state;
    check_and_free(
        pagination_link_next("<https://x.test/n>; title=\"say \\\"hi\\\"\"; rel=next", NULL),
        "https://x.test/n");
}

static void test_only_first_rel_counts(void **state)
{
    (void)state;
    check_and_free(pagination_link_next("<https://x.test/n>; rel=\"prev\"; rel=\"next\"", NULL),
                   NULL);
}

static void test_malformed_link_header(void **state)
{
    (void)state;
    check_and_free(pagination_link_next("https://x.test/n; rel=\"next\"", NULL), NULL);
    check_and_free(pagination_link_next("<https://x.test/n; rel=\"next\"", NULL), NULL);
    check_and_free(pagination_link_next("<https://x.test/n>; rel=\"next", NULL), NULL);
}

static void test_relative_target_resolved_against_base(void **state)
{
    (void)state;
    const char *base = "https://api.x.test/v1/items?page=2";
    check_and_free(pagination_link_next("</v1/items?page=3>; rel=\"next\"", base),
                   "https://api.x.test/v1/items?page=3");
    check_and_free(pagination_link_next("<items?page=3>; rel=\"next\"", base),
                   "https://api.x.test/v1/items?page=3");
    /* absolute targets are left as they are */
    check_and_free(pagination_link_next("<https://other.test/p>; rel=next", base),
                   "https://other.test/p");
}

/* ---- JSON cursors ------------------------------------------------------- */

static void expect_cursor(const char *json, const char *path, const char *expected)
{
    char *cursor = (char *)"unset";
    assert_int_equal(pagination_json_cursor(json, strlen(json), path, &cursor), 0);
    check_and_free(cursor, expected);
}

static void test_slack_next_cursor(void **state)
{
    (void)state;
    expect_cursor("{\"ok\":true,\"channels\":[],\"response_metadata\":"
                  "{\"next_cursor\":\"dGVhbTpDMDYxRkE1UEI=\"}}",
                  "response_metadata.next_cursor", "dGVhbTpDMDYxRkE1UEI=");
    /* Slack's last page: an empty cursor */
    expect_cursor("{\"ok\":true,\"response_metadata\":{\"next_cursor\":\"\"}}",
                  "response_metadata.next_cursor", NULL);
}

static void test_google_page_token(void **state)
{
    (void)state;
    expect_cursor("{\"items\":[1,2],\"nextPageToken\":\"CiAKGjBpNDd2Nmp2Zml2cXRwYjBpOXA\"}",
                  "nextPageToken", "CiAKGjBpNDd2Nmp2Zml2cXRwYjBpOXA");
    expect_cursor("{\"items\":[1,2]}", "nextPageToken", NULL);
}

static void test_null_and_missing_mean_end(void **state)
{
    (void)state;
    expect_cursor("{\"meta\":{\"next\":null}}", "meta.next", NULL);
    expect_cursor("{\"meta\":{}}", "meta.next", NULL);
    expect_cursor("{}", "meta.next", NULL);
    expect_cursor("{\"meta\":\"text\"}", "meta.next", NULL); /* path runs into a scalar */
    expect_cursor("{\"meta\":{\"next\":{\"a\":1}}}", "meta.next", NULL); /* not a cursor */
}

static void test_numeric_and_indexed_cursors(void **state)
{
    (void)state;
    expect_cursor("{\"meta\":{\"next\":42}}", "meta.next", "42");
    expect_cursor("{\"data\":[{\"id\":\"a\"},{\"id\":\"b\"}]}", "data.1.id", "b");
    expect_cursor("{\"data\":[{\"id\":\"a\"}]}", "data.5.id", NULL);
}

static void test_invalid_json(void **state)
{
    (void)state;
    char *cursor = (char *)"unset";
    const char *bad[] = {"{\"meta\":", "not json", "{\"a\":1} trailing", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(pagination_json_cursor(bad[i], strlen(bad[i]), "a", &cursor), -1);
        assert_null(cursor);
    }
}

static void test_body_not_nul_terminated(void **state)
{
    (void)state;
    const char buf[] = {'{', '"', 'n', '"', ':', '"', 'x', '"', '}', 'J', 'U', 'N', 'K'};
    char *cursor = NULL;
    assert_int_equal(pagination_json_cursor(buf, 9, "n", &cursor), 0);
    check_and_free(cursor, "x");
    /* trailing whitespace is fine */
    const char *spaced = "{\"n\":\"y\"}\r\n ";
    assert_int_equal(pagination_json_cursor(spaced, strlen(spaced), "n", &cursor), 0);
    check_and_free(cursor, "y");
}

/* ---- page / offset URLs ------------------------------------------------- */

static void test_add_page_parameter(void **state)
{
    (void)state;
    check_and_free(pagination_url_set_int("https://x.test/items", "page", 2),
                   "https://x.test/items?page=2");
}

static void test_replace_page_parameter(void **state)
{
    (void)state;
    check_and_free(pagination_url_set_int("https://x.test/items?per_page=100&page=1", "page", 2),
                   "https://x.test/items?per_page=100&page=2");
    /* every earlier occurrence goes; similar names stay */
    check_and_free(
        pagination_url_set_int("https://x.test/i?page=1&pages=9&page=3&pagex", "page", 4),
        "https://x.test/i?pages=9&pagex&page=4");
}

static void test_offset_parameter_and_fragment(void **state)
{
    (void)state;
    check_and_free(pagination_url_set_int("https://x.test/i?limit=50&offset=0#top", "offset", 50),
                   "https://x.test/i?limit=50&offset=50#top");
}

static void test_value_is_url_encoded(void **state)
{
    (void)state;
    char *url = pagination_url_set_param("https://x.test/i?a=1", "cursor", "a b&c=d/+");
    assert_non_null(url);
    assert_contains(url, "https://x.test/i?a=1&cursor=a");
    /* neither the '&' nor the '=' nor the '+' of the value survive unencoded */
    const char *value = strstr(url, "cursor=") + strlen("cursor=");
    assert_null(strchr(value, '&'));
    assert_null(strchr(value, '='));
    assert_null(strchr(value, ' '));
    assert_contains(value, "%26");
    assert_contains(value, "%2b");
    free(url);
}

static void test_encoded_name_is_matched(void **state)
{
    (void)state;
    char *url = pagination_url_set_int("https://x.test/i?page%5Bnumber%5D=1&page%5Bsize%5D=10",
                                       "page[number]", 2);
    assert_non_null(url);
    /* curl may normalise percent-encodings to lower case */
    for (char *p = url; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    assert_string_equal(url, "https://x.test/i?page%5bsize%5d=10&page%5bnumber%5d=2");
    free(url);
}

static void test_invalid_url(void **state)
{
    (void)state;
    check_and_free(pagination_url_set_int("not a url", "page", 2), NULL);
    check_and_free(pagination_url_set_param(NULL, "page", "2"), NULL);
    check_and_free(pagination_url_set_param("https://x.test/", "", "2"), NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_github_link_header),
        cmocka_unit_test(test_github_link_header_with_prev_first),
        cmocka_unit_test(test_last_page_has_no_next),
        cmocka_unit_test(test_unquoted_rel),
        cmocka_unit_test(test_multiple_rel_values),
        cmocka_unit_test(test_spaces_and_case),
        cmocka_unit_test(test_separators_inside_target_and_quotes),
        cmocka_unit_test(test_escaped_quote_in_parameter),
        cmocka_unit_test(test_only_first_rel_counts),
        cmocka_unit_test(test_malformed_link_header),
        cmocka_unit_test(test_relative_target_resolved_against_base),
        cmocka_unit_test(test_slack_next_cursor),
        cmocka_unit_test(test_google_page_token),
        cmocka_unit_test(test_null_and_missing_mean_end),
        cmocka_unit_test(test_numeric_and_indexed_cursors),
        cmocka_unit_test(test_invalid_json),
        cmocka_unit_test(test_body_not_nul_terminated),
        cmocka_unit_test(test_add_page_parameter),
        cmocka_unit_test(test_replace_page_parameter),
        cmocka_unit_test(test_offset_parameter_and_fragment),
        cmocka_unit_test(test_value_is_url_encoded),
        cmocka_unit_test(test_encoded_name_is_matched),
        cmocka_unit_test(test_invalid_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
