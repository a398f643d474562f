/* stats: keeps a component's counters and gauges in memory and publishes them with the
 * instance heartbeat (store_stats_put) every interval. Counters are sent as deltas
 * since the last acknowledged publish, so nothing is lost or counted twice when Redis
 * is briefly away; gauges and instance facts travel in the instance's JSON. A clean
 * stop sends the last deltas with a deregistration, so the dashboard does not list the
 * stopped instance as dead. */
#include "stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "log.h"
#include "metrics.h"

typedef struct {
    char *name;
    long long value;
    long long sent;  /* part of value included in the publish in flight */
    long long acked; /* part of value Redis has */
    bool gauge;
} metric_t;

struct stats {
    app_t *app;
    char component[32];
    uint64_t interval_ms;
    uv_timer_t timer;
    metric_t *m;
    size_t n, cap;
    bool in_flight, closing, timer_closed; /* freed once both the reply and the timer are done */
    bool left;                             /* the deregistering publish was sent */
    stats_refresh_fn refresh;
    stats_extra_fn extra;
    void *arg;
};

static metric_t *metric(stats_t *s, const char *name, bool gauge)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->m[i].name, name) == 0) return &s->m[i];
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 32;
        s->m = realloc(s->m, s->cap * sizeof *s->m);
    }
    s->m[s->n] = (metric_t){strdup(name), 0, 0, 0, gauge};
    return &s->m[s->n++];
}

void stats_incr(stats_t *s, const char *name, long long by)
{
    metric(s, name, false)->value += by;
}

void stats_gauge(stats_t *s, const char *name, long long value)
{
    metric(s, name, true)->value = value;
}

void stats_max(stats_t *s, const char *name, long long value)
{
    metric_t *m = metric(s, name, true);
    if (value > m->value) m->value = value;
}

long long stats_value(const stats_t *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->m[i].name, name) == 0) return s->m[i].value;
    return 0;
}

static void gen_metrics(stats_t *s, yajl_gen g, const char *key, bool gauges)
{
    json_str(g, key);
    yajl_gen_map_open(g);
    for (size_t i = 0; i < s->n; i++)
        if (s->m[i].gauge == gauges) json_kv_int(g, s->m[i].name, s->m[i].value);
    yajl_gen_map_close(g);
}

static char *info_json(stats_t *s)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    yajl_gen_map_open(g);
    json_kv_str(g, "component", s->component);
    json_kv_str(g, "instance", s->app->instance);
    json_kv_str(g, "host", s->app->host);
    json_kv_int(g, "pid", s->app->pid);
    json_kv_str(g, "version", DOWNLOADER_VERSION);
    json_kv_int(g, "started_ms", (long long)s->app->started_ms);
    json_kv_int(g, "seen_ms", (long long)app_now_ms());
    json_kv_int(g, "interval_ms", (long long)s->interval_ms);
    gen_metrics(s, g, "gauges", true);
    gen_metrics(s, g, "counters", false);
    if (s->extra) s->extra(g, s->arg);
    metrics_gen_json(g, s->component, s->app);
    yajl_gen_map_close(g);
    const unsigned char *buf;
    size_t len;
    yajl_gen_get_buf(g, &buf, &len);
    char *out = strndup((const char *)buf, len);
    yajl_gen_free(g);
    return out;
}

static void free_stats(stats_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->m[i].name);
    free(s->m);
    free(s);
}

static void on_closed(uv_handle_t *h)
{
    stats_t *s = h->data;
    s->timer_closed = true;
    if (!s->in_flight) free_stats(s);
}

static void publish(stats_t *s);

static void on_put(store_rc_t rc, const char *err, void *arg)
{
    (void)err;
    stats_t *s = arg;
    s->in_flight = false;
    for (size_t i = 0; i < s->n; i++) {
        if (rc == STORE_OK) s->m[i].acked += s->m[i].sent;
        s->m[i].sent = 0;
    }
    if (s->closing && !s->left) publish(s); /* the stop came while this one was in flight */
    if (s->closing && s->timer_closed && !s->in_flight) free_stats(s);
}

static void publish(stats_t *s)
{
    if (s->in_flight || !store_up(s->app->store)) return;
    if (s->refresh) s->refresh(s, s->arg);
    char *info = info_json(s);
    const char **kv = calloc(2 * s->n + 1, sizeof *kv);
    char(*nums)[24] = calloc(s->n + 1, sizeof *nums);
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++) {
        metric_t *m = &s->m[i];
        if (m->gauge || m->value == m->acked) continue;
        m->sent = m->value - m->acked;
        snprintf(nums[i], sizeof nums[i], "%lld", m->sent);
        kv[k++] = m->name;
        kv[k++] = nums[i];
    }
    uint64_t keep = s->interval_ms * 12 < 60000 ? 60000 : s->interval_ms * 12;
    s->in_flight = true;
    s->left = s->closing;
    store_stats_put(s->app->store, s->component, s->app->instance,
                    s->closing ? 0 : 2 * s->interval_ms + 1000, keep, info, kv, on_put, s);
    free(nums);
    free(kv);
    free(info);
}

void stats_publish(stats_t *s)
{
    if (!s->closing) publish(s);
}

static void tick(uv_timer_t *t)
{
    stats_publish(t->data);
}

static void on_state(bool up, void *arg)
{
    if (up) stats_publish(arg);
}

stats_t *stats_new(app_t *app, const char *component, uint64_t interval_ms)
{
    stats_t *s = calloc(1, sizeof *s);
    s->app = app;
    snprintf(s->component, sizeof s->component, "%s", component);
    s->interval_ms = interval_ms ? interval_ms : 5000;
    uv_timer_init(app->loop, &s->timer);
    s->timer.data = s;
    uv_timer_start(&s->timer, tick, s->interval_ms, s->interval_ms);
    store_on_state(app->store, on_state, s);
    return s;
}

void stats_on_publish(stats_t *s, stats_refresh_fn refresh, stats_extra_fn extra, void *arg)
{
    s->refresh = refresh;
    s->extra = extra;
    s->arg = arg;
}

void stats_close(stats_t *s)
{
    s->closing = true;
    publish(s); /* the last deltas, and the deregistration */
    store_forget(s->app->store, s);
    s->refresh = NULL;
    s->extra = NULL;
    uv_close((uv_handle_t *)&s->timer, on_closed);
}
