/* Unit tests of auth: which routes need the API token (writes always, reads with
 * auth_read, /hb never), and the bearer-token comparison (scheme, spacing, prefixes,
 * longer and shorter tokens, case, empty and missing values). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api.h"
#include "auth.h"

static void test_required(void **state)
{
    (void)state;
    assert_true(auth_required(api_route_auth("GET", "/download"), false));
    assert_true(auth_required(api_route_auth("GET", "/retry/NSb4FOAs9fVaQw"), false));
    assert_true(auth_required(api_route_auth("GET", "/retry/"), false));
    assert_false(auth_required(api_route_auth("GET", "/hb"), false));
    assert_false(auth_required(api_route_auth("GET", "/hb"), true));
    assert_false(auth_required(api_route_auth("GET", "/download/NSb4FOAs9fVaQw"), false));
    assert_false(auth_required(api_route_auth("GET", "/stats/processor"), false));
    assert_false(auth_required(api_route_auth("GET", "/"), false));
    assert_false(
        auth_required(api_route_auth("GET", "/retry"), false)); /* not a route: the 404 page */
    assert_true(auth_required(api_route_auth("GET", "/download/NSb4FOAs9fVaQw"), true));
    assert_true(auth_required(api_route_auth("GET", "/dashboard/aggregations"), true));
    assert_true(auth_required(api_route_auth("GET", "/files/NSb/NSb4FOAs9fVaQw"), true));
    assert_true(auth_required(api_route_auth("GET", "/"), true));
    assert_true(auth_required(api_route_auth("GET", "/hb/"), true)); /* only /hb itself is exempt */
    assert_true(auth_required(api_route_auth("GET", NULL), false));
}

static void test_bearer(void **state)
{
    (void)state;
    const char *t = "s3cr3t";
    assert_true(auth_bearer_ok("Bearer s3cr3t", t));
    assert_true(auth_bearer_ok("bearer s3cr3t", t));
    assert_true(auth_bearer_ok("BEARER   s3cr3t", t));
    assert_false(auth_bearer_ok("Bearer s3cr3", t));
    assert_false(auth_bearer_ok("Bearer s3cr3tt", t));
    assert_false(auth_bearer_ok("Bearer S3CR3T", t));
    assert_false(auth_bearer_ok("Bearer s3cr3t ", t)); /* httpd trims; anything else counts */
    assert_false(auth_bearer_ok("Bearer ", t));
    assert_false(auth_bearer_ok("Bearer", t));
    assert_false(auth_bearer_ok("Bearers3cr3t", t));
    assert_false(auth_bearer_ok("Basic s3cr3t", t));
    assert_false(auth_bearer_ok("s3cr3t", t));
    assert_false(auth_bearer_ok("", t));
    assert_false(auth_bearer_ok(NULL, t));
    assert_false(auth_bearer_ok("Bearer ", ""));
    assert_false(auth_bearer_ok("Bearer x", NULL));
    /* a long token, and one that differs only in its last byte */
    char longtok[600], hdr[700];
    memset(longtok, 'a', sizeof longtok - 1);
    longtok[sizeof longtok - 1] = 0;
    snprintf(hdr, sizeof hdr, "Bearer %s", longtok);
    assert_true(auth_bearer_ok(hdr, longtok));
    hdr[strlen(hdr) - 1] = 'b';
    assert_false(auth_bearer_ok(hdr, longtok));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_required),
        cmocka_unit_test(test_bearer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
