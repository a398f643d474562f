/* Unit tests of the small helpers: backoff delays, the string counter map and the
 * response header helpers of curlm. */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backoff.h"
#include "curlm.h"
#include "strmap.h"

static void test_backoff_grows_and_caps(void **state)
{
    (void)state;
    unsetenv("DOWNLOADER_TEST_TIME");
    for (int round = 0; round < 200; round++) {
        for (int attempt = 1; attempt <= 10; attempt++) {
            uint64_t full = 1000ULL << (attempt - 1);
            if (full > 60000) full = 60000;
            uint64_t d = backoff_delay(1000, attempt, 60000);
            assert_true(d >= full / 2); /* equal jitter: half fixed ... */
            assert_true(d <= full);     /* ... half random */
        }
    }
    assert_true(backoff_delay(1000, 0, 60000) <= 1000); /* attempt < 1 counts as 1 */
    assert_true(backoff_delay(1000, 1000, 60000) <= 60000);
}

static void test_backoff_jitters(void **state)
{
    (void)state;
    unsetenv("DOWNLOADER_TEST_TIME");
    uint64_t first = backoff_delay(100000, 3, UINT64_MAX / 4);
    bool differs = false;
    for (int i = 0; i < 50 && !differs; i++)
        differs = backoff_delay(100000, 3, UINT64_MAX / 4) != first;
    assert_true(differs);
}

static void test_backoff_test_time(void **state)
{
    (void)state;
    setenv("DOWNLOADER_TEST_TIME", "1", 1);
    uint64_t d = backoff_delay(120000, 1, 3600000);
    assert_true(d >= 100 && d <= 200); /* the unit becomes 200 ms */
    d = backoff_delay(120000, 2, 3600000);
    assert_true(d >= 200 && d <= 400);
    unsetenv("DOWNLOADER_TEST_TIME");
}

static void test_strmap(void **state)
{
    (void)state;
    strmap_t m = {0};
    assert_int_equal(strmap_get(&m, "a"), 0);
    assert_int_equal(strmap_add(&m, "a", 1), 1);
    assert_int_equal(strmap_add(&m, "a", 2), 3);
    assert_int_equal(strmap_add(&m, "b", 5), 5);
    assert_int_equal(strmap_size(&m), 2);
    assert_int_equal(strmap_add(&m, "a", -3), 0); /* drops out */
    assert_int_equal(strmap_size(&m), 1);
    assert_int_equal(strmap_get(&m, "a"), 0);
    assert_int_equal(strmap_add(&m, "zero", 0), 0); /* adding 0 creates nothing */
    assert_int_equal(strmap_size(&m), 1);
    char key[32];
    for (int i = 0; i < 10000; i++) { /* growth and tombstone reuse */
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(strmap_add(&m, key, i + 1), i + 1);
    }
    for (int i = 0; i < 10000; i += 2) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(strmap_add(&m, key, -(i + 1)), 0);
    }
    assert_int_equal(strmap_size(&m), 1 + 5000);
    for (int i = 1; i < 10000; i += 2) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(strmap_get(&m, key), i + 1);
    }
    strmap_free(&m);
}

static void test_curlm_header_lines(void **state)
{
    (void)state;
    char v[16];
    const char *st = "HTTP/1.1 503 Service Unavailable\r\n";
    assert_true(curlm_status_line(st, strlen(st), v, sizeof v));
    assert_string_equal(v, "503 Service Una"); /* truncated to fit */
    const char *h = "retry-after:  120 \r\n";
    assert_false(curlm_status_line(h, strlen(h), v, sizeof v));
    assert_true(curlm_header_value(h, strlen(h), "Retry-After", v, sizeof v));
    assert_string_equal(v, "120");
    assert_false(curlm_header_value(h, strlen(h), "Retry", v, sizeof v));
    const char *e = "ETag:\r\n";
    assert_true(curlm_header_value(e, strlen(e), "ETag", v, sizeof v));
    assert_string_equal(v, "");
}

static void test_curlm_retry_after(void **state)
{
    (void)state;
    time_t now = 784111777; /* Sun, 06 Nov 1994 08:49:37 GMT */
    assert_int_equal(curlm_retry_after_ms("120", now), 120000);
    assert_int_equal(curlm_retry_after_ms("0", now), 0);
    assert_int_equal(curlm_retry_after_ms("999999999", now), 86400L * 1000); /* one day cap */
    assert_int_equal(curlm_retry_after_ms("", now), 0);
    assert_int_equal(curlm_retry_after_ms("12x", now), 0);
    assert_int_equal(curlm_retry_after_ms("-5", now), 0);
    assert_int_equal(curlm_retry_after_ms("Sun, 06 Nov 1994 08:50:07 GMT", now), 30000);
    assert_int_equal(curlm_retry_after_ms("Sun, 06 Nov 1994 08:49:07 GMT", now), 0); /* past */
    assert_int_equal(curlm_retry_after_ms("soon", now), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_grows_and_caps), cmocka_unit_test(test_backoff_jitters),
        cmocka_unit_test(test_backoff_test_time),      cmocka_unit_test(test_strmap),
        cmocka_unit_test(test_curlm_header_lines),     cmocka_unit_test(test_curlm_retry_after),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
