/* Unit tests of log's outage rate limit: a warn at the first failure, then at most one
 * per LOG_OUTAGE_INTERVAL_MS however often the attempts fail, and recovery reported
 * once, only after an outage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "log.h"

static void test_outage_rate_limit(void **state)
{
    (void)state;
    log_outage_t o = {0};
    uint64_t down, attempts;
    assert_false(log_outage_ended(&o, 1000, &down, &attempts)); /* no outage: no info line */
    assert_true(log_outage_failed(&o, 1000));                   /* at once */
    int warns = 0;
    /* attempts every 100 ms (the first reconnect backoff) for 65 s: two more warns */
    for (uint64_t t = 1100; t <= 66000; t += 100)
        warns += log_outage_failed(&o, t);
    assert_int_equal(warns, 2);
    assert_int_equal(o.warned_ms, 1000 + 2 * LOG_OUTAGE_INTERVAL_MS);
    assert_false(log_outage_failed(&o, 1000 + 3 * LOG_OUTAGE_INTERVAL_MS - 1));
    assert_true(log_outage_failed(&o, 1000 + 3 * LOG_OUTAGE_INTERVAL_MS));
    uint64_t failed = o.attempts;
    assert_true(log_outage_ended(&o, 100000, &down, &attempts));
    assert_int_equal(down, 99000);
    assert_int_equal(attempts, failed);
    assert_false(log_outage_ended(&o, 100100, &down, &attempts)); /* told once */
    assert_true(log_outage_failed(&o, 100200)); /* a new outage warns at once again */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outage_rate_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
