/* Unit tests for the pure parts of fetch: the §6.5 header merge (job replaces
 * default case-insensitively, canonical capitalisation, Host dropped, empty values
 * as curl's "Name;") and the §5.5 error text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fetch.h"

static void assert_list(char **list, size_t n, const char *const *want)
{
    size_t i = 0;
    assert_non_null(list);
    for (; want[i]; i++) {
        assert_true(i < n);
        assert_string_equal(list[i], want[i]);
    }
    assert_int_equal(n, i);
}

static void test_merge_empty(void **state)
{
    (void)state;
    size_t n = 99;
    char **list = fetch_merge_headers(NULL, NULL, &n);
    assert_non_null(list);
    assert_int_equal(n, 0);
    fetch_headers_free(list, n);
    headers_t none = {NULL, 0};
    list = fetch_merge_headers(&none, &none, &n);
    assert_int_equal(n, 0);
    fetch_headers_free(list, n);
}

static void test_merge_defaults_canonical(void **state)
{
    (void)state;
    header_t d[] = {{"user-agent", "ua/1"}, {"x-FORWARDED-for", "1.2.3.4"}, {"accept", "*/*"}};
    headers_t defaults = {d, 3};
    size_t n;
    char **list = fetch_merge_headers(&defaults, NULL, &n);
    const char *want[] = {"User-Agent: ua/1", "X-Forwarded-For: 1.2.3.4", "Accept: */*", NULL};
    assert_list(list, n, want);
    fetch_headers_free(list, n);
}

static void test_merge_job_replaces_case_insensitively(void **state)
{
    (void)state;
    header_t d[] = {{"User-Agent", "default"}, {"X-Keep", "k"}, {"ACCEPT", "text/html"}};
    header_t j[] = {{"user-agent", "job"}, {"x-new", "n"}, {"Accept", "image/*"}};
    headers_t defaults = {d, 3}, job = {j, 3};
    size_t n;
    char **list = fetch_merge_headers(&defaults, &job, &n);
    const char *want[] = {"User-Agent: job", "X-Keep: k", "Accept: image/*", "X-New: n", NULL};
    assert_list(list, n, want);
    fetch_headers_free(list, n);
}

static void test_merge_duplicates_last_wins(void **state)
{
    (void)state;
    header_t d[] = {{"x-a", "1"}, {"X-A", "2"}};
    header_t j[] = {{"x-b", "3"}, {"X-b", "4"}};
    headers_t defaults = {d, 2}, job = {j, 2};
    size_t n;
    char **list = fetch_merge_headers(&defaults, &job, &n);
    const char *want[] = {"X-A: 2", "X-B: 4", NULL};
    assert_list(list, n, want);
    fetch_headers_free(list, n);
}

static void test_merge_host_dropped(void **state)
{
    (void)state;
    header_t d[] = {{"Host", "a.example"}};
    header_t j[] = {{"host", "b.example"}, {"X-A", "a"}};
    headers_t defaults = {d, 1}, job = {j, 2};
    size_t n;
    char **list = fetch_merge_headers(&defaults, &job, &n);
    const char *want[] = {"X-A: a", NULL};
    assert_list(list, n, want);
    fetch_headers_free(list, n);
}

static void test_merge_values(void **state)
{
    (void)state;
    header_t j[] = {
        {"X-Empty", ""}, {"X-Spaces", "  padded value \t"}, {"X-Null", NULL}, {"X-Colon", "a: b"}};
    headers_t job = {j, 4};
    size_t n;
    char **list = fetch_merge_headers(NULL, &job, &n);
    const char *want[] = {"X-Empty;", "X-Spaces: padded value", "X-Null;", "X-Colon: a: b", NULL};
    assert_list(list, n, want);
    fetch_headers_free(list, n);
}

static void test_merge_canonical_edge_cases(void **state)
{
    (void)state;
    /* Go leaves names with non-token bytes alone; digits and a leading '-' are kept */
    header_t j[] = {{"x-1a-b2", "1"}, {"-x", "2"}, {"x y", "3"}, {"dnt", "4"}, {"A--b", "5"}};
    headers_t job = {j, 5};
    size_t n;
    char **list = fetch_merge_headers(NULL, &job, &n);
    const char *want[] = {"X-1a-B2: 1", "-X: 2", "x y: 3", "Dnt: 4", "A--B: 5", NULL};
    assert_list(list, n, want);
    fetch_headers_free(list, n);
}

static void test_format_error(void **state)
{
    (void)state;
    char buf[256];
    fetch_format_error(buf, sizeof buf, "processing response", "Received status code 404 Not Found",
                       false, false);
    assert_string_equal(buf, "Error while processing response, Received status code 404 Not "
                             "Found, retriable: false, internal: false");
    fetch_format_error(buf, sizeof buf, "creating tmp file", "permission denied", true, true);
    assert_string_equal(
        buf, "Error while creating tmp file, permission denied, retriable: true, internal: true");
    /* a long detail is cut, the tail stays complete */
    char detail[300];
    memset(detail, 'x', sizeof detail - 1);
    detail[sizeof detail - 1] = 0;
    fetch_format_error(buf, 100, "performing request", detail, true, false);
    assert_int_equal(strlen(buf), 99);
    assert_string_equal(buf + 99 - 34, ", retriable: true, internal: false");
    assert_memory_equal(buf, "Error while performing request, xxx", 35);
    fetch_format_error(buf, 16, "downloading file", "unexpected EOF", true, false);
    assert_string_equal(buf, "Error while dow"); /* too small: truncated, terminated */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_empty),
        cmocka_unit_test(test_merge_defaults_canonical),
        cmocka_unit_test(test_merge_job_replaces_case_insensitively),
        cmocka_unit_test(test_merge_duplicates_last_wins),
        cmocka_unit_test(test_merge_host_dropped),
        cmocka_unit_test(test_merge_values),
        cmocka_unit_test(test_merge_canonical_edge_cases),
        cmocka_unit_test(test_format_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
