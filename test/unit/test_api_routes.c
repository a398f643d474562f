/* Unit tests of the API's route table lookup: first matching pattern wins, exact and
 * prefix patterns, GET serving HEAD, "*" serving any method, the Allow list of a route,
 * and the auth level checked before a 405 (the route's strictest). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api.h"

static void h_a(app_t *app, httpd_req_t *req)
{
    (void)app;
    (void)req;
}

static void h_b(app_t *app, httpd_req_t *req)
{
    (void)app;
    (void)req;
}

static const api_route_t table[] = {
    {"POST", "/things", h_a, AUTH_WRITE},     {"GET", "/things", h_b, AUTH_READ},
    {"GET", "/things/*", h_b, AUTH_READ},     {"*", "/ping", h_a, AUTH_OPEN},
    {"DELETE", "/things/*", h_a, AUTH_WRITE}, {"GET", "/*", h_b, AUTH_READ},
};

#define N (sizeof table / sizeof table[0])

static void test_match(void **state)
{
    (void)state;
    api_match_t m = api_route_match(table, N, "POST", "/things");
    assert_ptr_equal(m.route, &table[0]);
    assert_int_equal(m.auth, AUTH_WRITE);
    m = api_route_match(table, N, "GET", "/things");
    assert_ptr_equal(m.route, &table[1]);
    assert_int_equal(m.auth, AUTH_READ);
    m = api_route_match(table, N, "HEAD", "/things");
    assert_ptr_equal(m.route, &table[1]);
    m = api_route_match(table, N, "GET", "/things/1");
    assert_ptr_equal(m.route, &table[2]);
    /* entries with the route's pattern are its methods, wherever they stand */
    m = api_route_match(table, N, "DELETE", "/things/1");
    assert_ptr_equal(m.route, &table[4]);
    assert_int_equal(m.auth, AUTH_WRITE);
    m = api_route_match(table, N, "BREW", "/ping");
    assert_ptr_equal(m.route, &table[3]);
    assert_int_equal(m.auth, AUTH_OPEN);
    m = api_route_match(table, N, "GET", "/ping/");
    assert_ptr_equal(m.route, &table[5]);
    m = api_route_match(table, N, "GET", "/thing");
    assert_ptr_equal(m.route, &table[5]);
}

static void test_not_allowed(void **state)
{
    (void)state;
    api_match_t m = api_route_match(table, N, "PUT", "/things");
    assert_null(m.route);
    assert_string_equal(m.allow, "POST, GET, HEAD");
    assert_int_equal(m.auth, AUTH_WRITE); /* the strictest of the route */
    m = api_route_match(table, N, "POST", "/things/1");
    assert_null(m.route);
    assert_string_equal(m.allow, "GET, HEAD, DELETE");
    assert_int_equal(m.auth, AUTH_WRITE);
    m = api_route_match(table, N, "POST", "/x");
    assert_null(m.route);
    assert_string_equal(m.allow, "GET, HEAD");
    assert_int_equal(m.auth, AUTH_READ);
    m = api_route_match(table, N, "GET", NULL);
    assert_null(m.route);
    assert_int_equal(m.auth, AUTH_WRITE);
}

/* The service's own table: the reference's routes keep their methods. */
static void test_service_table(void **state)
{
    (void)state;
    assert_int_equal(api_route_auth("POST", "/download"), AUTH_WRITE);
    assert_int_equal(api_route_auth("GET", "/download"), AUTH_WRITE);
    assert_int_equal(api_route_auth("GET", "/retry/x"), AUTH_WRITE);
    assert_int_equal(api_route_auth("POST", "/hb"), AUTH_OPEN);
    assert_int_equal(api_route_auth("GET", "/download/x"), AUTH_READ);
    assert_int_equal(api_route_auth("POST", "/metrics"), AUTH_READ);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_not_allowed),
        cmocka_unit_test(test_service_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
