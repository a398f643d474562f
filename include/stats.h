/* stats: one component's counters and gauges (§8.1 keys and ours), published with
 * its instance heartbeat every interval: counter deltas accumulate in Redis across
 * restarts and instances; gauges are per instance and summed by the reader. */
#ifndef DOWNLOADER_STATS_H
#define DOWNLOADER_STATS_H

#include <stdint.h>
#include <yajl/yajl_gen.h>

#include "app.h"

typedef struct stats stats_t;

/* Adds component-specific members to the instance's JSON object (key, value, ...). */
typedef void (*stats_extra_fn)(yajl_gen g, void *arg);

/* Called just before each publish so the owner can refresh gauges. */
typedef void (*stats_refresh_fn)(stats_t *s, void *arg);

stats_t *stats_new(app_t *app, const char *component, uint64_t interval_ms);
void stats_on_publish(stats_t *s, stats_refresh_fn refresh, stats_extra_fn extra, void *arg);
void stats_incr(stats_t *s, const char *name, long long by);
void stats_gauge(stats_t *s, const char *name, long long value);
/* Raises a high-water gauge to value if it is larger. */
void stats_max(stats_t *s, const char *name, long long value);
long long stats_value(const stats_t *s, const char *name);
/* Publishes now (also done by the interval timer). */
void stats_publish(stats_t *s);
/* Publishes once more, deregistering the instance, then releases everything. */
void stats_close(stats_t *s);

#endif
