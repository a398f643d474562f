/* Unit tests of the Redis high-availability settings: the Sentinel keys and
 * redis.wait_replicas / wait_timeout in config, and sentinel address parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "sentinel.h"

static int parse(const char *json, config_t *c, char *err, size_t errlen)
{
    return config_parse(json, strlen(json), CONFIG_API, c, err, errlen);
}

static void test_sentinel_keys(void **state)
{
    (void)state;
    config_t c;
    char err[512];
    const char *j = "{\"redis\": {\"sentinel\": [\"10.0.0.1:26379\", \"s2\"], "
                    "\"master_name\": \"mymaster\", \"password\": \"pw\"}}";
    assert_int_equal(parse(j, &c, err, sizeof err), 0);
    assert_int_equal(c.n_sentinels, 2);
    assert_string_equal(c.sentinels[0], "10.0.0.1:26379");
    assert_string_equal(c.master_name, "mymaster");
    assert_int_equal(c.redis_wait_replicas, 0);
    assert_int_equal(c.redis_wait_timeout_ms, 1000);
    config_free(&c);
}

static void test_wait_keys(void **state)
{
    (void)state;
    config_t c;
    char err[512];
    assert_int_equal(parse("{\"redis\": {\"wait_replicas\": 2, \"wait_timeout\": \"250ms\"}}", &c,
                           err, sizeof err),
                     0);
    assert_int_equal(c.redis_wait_replicas, 2);
    assert_int_equal(c.redis_wait_timeout_ms, 250);
    config_free(&c);
    assert_int_equal(parse("{\"redis\": {\"wait_replicas\": -1}}", &c, err, sizeof err), -1);
    config_free(&c);
    assert_string_equal(err, "config: redis.wait_replicas must be a non-negative integer");
    assert_int_equal(parse("{\"redis\": {\"wait_timeout\": 0}}", &c, err, sizeof err), -1);
    config_free(&c);
    assert_string_equal(err, "config: redis.wait_timeout must be greater than 0");
}

static void split(const char *addr, const char *host, int port)
{
    char h[256];
    int p = 0;
    sentinel_split_addr(addr, 26379, h, sizeof h, &p);
    assert_string_equal(h, host);
    assert_int_equal(p, port);
}

static void test_split_addr(void **state)
{
    (void)state;
    split("10.0.0.1:26380", "10.0.0.1", 26380);
    split("sentinel-a", "sentinel-a", 26379);
    split("[::1]:5000", "::1", 5000);
    split("[fe80::1]", "fe80::1", 26379);
    split("::1", "::1", 26379);
    split(":26381", "localhost", 26381);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sentinel_keys),
        cmocka_unit_test(test_wait_keys),
        cmocka_unit_test(test_split_addr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
