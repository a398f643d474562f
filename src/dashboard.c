/* dashboard: the read routes behind the dashboard (web/). GET /stats/<name> and GET
 * /dashboard/aggregations answer as the reference does (§3); /dashboard/instances,
 * /dashboard/history, /dashboard/failed and /dashboard/retrying are ours. Each is one
 * store read rendered as JSON with CORS, so one dashboard can merge several hosts. */
#include "dashboard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "json.h"
#include "log.h"
#include "reply.h"
#include "uri.h"

#define FAILED_DEFAULT 20
#define FAILED_MAX 200

/* ---------- GET /stats/<name> ---------- */

typedef struct {
    httpd_req_t *req;
    char name[256];
} stats_req_t;

static int cmp_pairs(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

static void on_stats(store_rc_t rc, const char *const *kv, size_t n, long long ttl, void *arg)
{
    (void)ttl;
    stats_req_t *s = arg;
    if (rc == STORE_DOWN) {
        reply_down(s->req);
    } else if (rc == STORE_NOTFOUND) {
        char msg[400];
        snprintf(msg, sizeof msg, "Could not find stats for entity %s", s->name);
        httpd_respond_error(s->req, 404, msg);
    } else if (rc != STORE_OK) {
        httpd_respond_error(s->req, 500, "Error fetching stats from Redis");
    } else {
        /* expvar format: keys sorted, ": " and ", " separators */
        size_t pairs = n / 2, len = 2;
        const char **sorted = malloc((pairs + 1) * 2 * sizeof *sorted);
        memcpy(sorted, kv, pairs * 2 * sizeof *sorted);
        qsort(sorted, pairs, 2 * sizeof *sorted, cmp_pairs);
        for (size_t i = 0; i < pairs; i++)
            len += strlen(sorted[2 * i]) + strlen(sorted[2 * i + 1]) + 8;
        char *body = malloc(len + 1), *p = body;
        *p++ = '{';
        for (size_t i = 0; i < pairs; i++)
            p += sprintf(p, "%s\"%s\": %lld", i ? ", " : "", sorted[2 * i],
                         atoll(sorted[2 * i + 1]));
        *p++ = '}';
        reply_json_buf(s->req, 200, body, (size_t)(p - body));
        free(body);
        free(sorted);
    }
    free(s);
}

void dashboard_stats(app_t *app, httpd_req_t *req)
{
    stats_req_t *s = calloc(1, sizeof *s);
    s->req = req;
    /* the reference takes the last element of the raw target, query included */
    snprintf(s->name, sizeof s->name, "%s", uri_last_element(req->target));
    store_stats_get(app->store, s->name, on_stats, s);
}

/* ---------- /dashboard/... ---------- */

void dashboard_throttle_json(yajl_gen g, const store_aggr_t *a)
{
    json_kv_double(g, "rate", a->rate);
    json_kv_int(g, "effective_limit", a->effective);
    json_kv_int(g, "paused_until_ms", a->paused_until_ms);
}

static void on_aggrs(store_rc_t rc, const store_aggr_t *list, size_t n, void *arg)
{
    httpd_req_t *req = arg;
    if (rc != STORE_OK)
        return reply_store_error(req, rc == STORE_DOWN,
                                 "Error scanning for aggregation keys: redis error");
    store_aggr_t *sorted = malloc((n + 1) * sizeof *sorted);
    memcpy(sorted, list, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, store_aggr_cmp);
    yajl_gen g = yajl_gen_alloc(NULL);
    yajl_gen_array_open(g);
    for (size_t i = 0; i < n; i++) {
        char name[1024];
        snprintf(name, sizeof name, "jobs:%s", sorted[i].id);
        yajl_gen_map_open(g);
        json_kv_str(g, "name", name);
        json_kv_int(g, "size", sorted[i].ready + sorted[i].delayed);
        json_kv_str(g, "id", sorted[i].id);
        json_kv_int(g, "limit", sorted[i].limit);
        json_kv_str(g, "proxy", log_redact_url(sorted[i].proxy));
        json_kv_int(g, "ready", sorted[i].ready);
        json_kv_int(g, "delayed", sorted[i].delayed);
        json_kv_int(g, "inflight", sorted[i].inflight);
        dashboard_throttle_json(g, &sorted[i]);
        json_kv_str(g, "waiting", sorted[i].waiting);
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
    free(sorted);
    reply_json(req, 200, g);
}

void dashboard_aggregations(app_t *app, httpd_req_t *req)
{
    store_aggregations(app->store, 10000, on_aggrs, req);
}

static void on_instances(store_rc_t rc, long long now, const store_instance_t *in, size_t n,
                         void *arg)
{
    httpd_req_t *req = arg;
    if (rc != STORE_OK)
        return reply_store_error(req, rc == STORE_DOWN, "Error fetching instances from Redis");
    size_t len = 64;
    for (size_t i = 0; i < n; i++)
        len += strlen(in[i].info_json) + strlen(in[i].name) + 96;
    char *body = malloc(len), *p = body;
    p += sprintf(p, "{\"now_ms\":%lld,\"instances\":[", now);
    for (size_t i = 0; i < n; i++) {
        if (!in[i].name) continue;
        p += sprintf(p, "%s{\"name\":\"%s\",\"alive\":%s,\"live_until_ms\":%lld,\"info\":%s}",
                     i ? "," : "", in[i].name, in[i].live_until >= now ? "true" : "false",
                     in[i].live_until, *in[i].info_json ? in[i].info_json : "{}");
    }
    p += sprintf(p, "]}");
    reply_json_buf(req, 200, body, (size_t)(p - body));
    free(body);
}

void dashboard_instances(app_t *app, httpd_req_t *req)
{
    store_instances(app->store, on_instances, req);
}

typedef struct {
    app_t *app;
    httpd_req_t *req;
    yajl_gen g;
    int step;
} hist_t;

static const char *hist_dl[] = {"downloads.success", "downloads.failed"};
static const char *hist_cb[] = {"successfulCallbacks", "failedCallbacks"};

static void on_history(store_rc_t rc, long long first, const long long *rows, size_t minutes,
                       size_t nf, void *arg)
{
    hist_t *h = arg;
    if (rc != STORE_OK) {
        yajl_gen_free(h->g);
        if (rc == STORE_DOWN)
            reply_down(h->req);
        else
            httpd_respond_error(h->req, 500, "Error fetching history from Redis");
        free(h);
        return;
    }
    static const char *keys[2][2] = {{"downloads_ok", "downloads_failed"},
                                     {"callbacks_ok", "callbacks_failed"}};
    if (h->step == 0) {
        json_kv_int(h->g, "first_minute", first);
        json_kv_int(h->g, "minutes", (long long)minutes);
    }
    for (size_t f = 0; f < nf; f++) {
        json_str(h->g, keys[h->step][f]);
        yajl_gen_array_open(h->g);
        for (size_t m = 0; m < minutes; m++)
            yajl_gen_integer(h->g, rows[m * nf + f]);
        yajl_gen_array_close(h->g);
    }
    if (++h->step == 1) {
        store_history(h->app->store, "notifier", (int)minutes, hist_cb, 2, on_history, h);
        return;
    }
    yajl_gen_map_close(h->g);
    reply_json(h->req, 200, h->g);
    free(h);
}

void dashboard_history(app_t *app, httpd_req_t *req)
{
    hist_t *h = calloc(1, sizeof *h);
    h->app = app;
    h->req = req;
    h->g = yajl_gen_alloc(NULL);
    yajl_gen_map_open(h->g);
    store_history(app->store, "processor", 60, hist_dl, 2, on_history, h);
}

/* GET /dashboard/failed?limit=N: the newest jobs whose callback failed for good. */
static void on_failed(store_rc_t rc, const store_failed_t *f, size_t n, void *arg)
{
    httpd_req_t *req = arg;
    if (rc != STORE_OK)
        return reply_store_error(req, rc == STORE_DOWN,
                                 "Error fetching failed callbacks from Redis");
    yajl_gen g = yajl_gen_alloc(NULL);
    yajl_gen_array_open(g);
    control_failed_json(g, f, n, "callback_error", "updated_at_ms");
    yajl_gen_array_close(g);
    reply_json(req, 200, g);
}

void dashboard_failed(app_t *app, httpd_req_t *req)
{
    long limit = FAILED_DEFAULT;
    for (const char *q = req->query; q && *q;) {
        if (strncmp(q, "limit=", 6) == 0) limit = strtol(q + 6, NULL, 10);
        q += strcspn(q, "&");
        if (*q) q++;
    }
    if (limit < 1) limit = 1;
    if (limit > FAILED_MAX) limit = FAILED_MAX;
    store_failed(app->store, (size_t)limit, on_failed, req);
}

/* GET /dashboard/retrying: callbacks waiting for their next attempt (cb:delayed), how
 * many, and the RETRYING_PAGE due soonest with their latest error. */
#define RETRYING_PAGE 50

static void on_retrying(store_rc_t rc, long long total, long long now_ms, const store_retrying_t *r,
                        size_t n, void *arg)
{
    httpd_req_t *req = arg;
    if (rc != STORE_OK)
        return reply_store_error(req, rc == STORE_DOWN,
                                 "Error fetching retrying callbacks from Redis");
    yajl_gen g = yajl_gen_alloc(NULL);
    yajl_gen_map_open(g);
    json_kv_int(g, "count", total);
    json_kv_int(g, "now_ms", now_ms);
    json_str(g, "callbacks");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < n; i++) {
        yajl_gen_map_open(g);
        json_kv_str(g, "id", r[i].id);
        json_kv_str(g, "url", log_redact_url(r[i].url));
        json_kv_str(g, "aggr_id", r[i].aggr_id);
        json_kv_int(g, "attempts", r[i].callback_count);
        json_kv_str(g, "last_error", r[i].last_error);
        json_kv_int(g, "next_attempt_ms", r[i].due_ms);
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    reply_json(req, 200, g);
}

void dashboard_retrying(app_t *app, httpd_req_t *req)
{
    store_retrying(app->store, RETRYING_PAGE, on_retrying, req);
}
