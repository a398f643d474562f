/* backoff: exponential retry delays with jitter, shared by downloads and callbacks. */
#ifndef DOWNLOADER_BACKOFF_H
#define DOWNLOADER_BACKOFF_H

#include <stdint.h>

/* Delay before attempt `attempt + 1` after `attempt` failures (attempt >= 1):
 * base * 2^(attempt-1), capped at cap_ms, with "equal jitter" (half fixed, half
 * random). With DOWNLOADER_TEST_TIME set, base is 200 ms. */
uint64_t backoff_delay(uint64_t base_ms, int attempt, uint64_t cap_ms);

#endif
