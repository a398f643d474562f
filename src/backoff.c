/* backoff: retry delays (exponential, capped, jittered) for the processor and the
 * notifier, with the DOWNLOADER_TEST_TIME switch of the reference (unit 200 ms). */
#include "backoff.h"

#include <stdlib.h>
#include <sys/random.h>

#include "config.h"

static uint64_t random_below(uint64_t n)
{
    uint64_t r = 0;
    if (n == 0) return 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != sizeof r) r = (uint64_t)rand();
    return r % n;
}

uint64_t backoff_delay(uint64_t base_ms, int attempt, uint64_t cap_ms)
{
    uint64_t unit = config_test_time_unit_ms();
    if (unit) base_ms = unit;
    if (attempt < 1) attempt = 1;
    uint64_t d = base_ms;
    for (int i = 1; i < attempt && d < cap_ms; i++)
        d *= 2;
    if (d > cap_ms) d = cap_ms;
    return d / 2 + random_below(d / 2 + 1);
}
