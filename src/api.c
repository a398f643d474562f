/* api: the HTTP API of an instance. Owns the one table of every route (method, path
 * pattern, handler, auth level) and the dispatch through it: the bearer token check and
 * the 405 with Allow for a method a route lacks are decided here, once for every route.
 * The handlers live in modules by concern: intake (the reference's job routes), health
 * (/hb, /ready), dashboard (/stats and /dashboard/...), control (operator routes),
 * metrics (/metrics) and serve (web UI and stored files); a new route, in a module of
 * its own, is one line of the table. It also starts and stops the HTTP server and
 * publishes the api's own instance heartbeat ("api", counter "requests"). */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "control.h"
#include "dashboard.h"
#include "health.h"
#include "httpd.h"
#include "intake.h"
#include "log.h"
#include "metrics.h"
#include "serve.h"
#include "stats.h"

#define STATS_INTERVAL_MS 5000

struct api {
    app_t *app;
    httpd_t *httpd;
    stats_t *stats;
    void (*stopped)(void *);
    void *stopped_arg;
};

/* Every route of the API, in matching order: the first whose pattern matches the path
 * is the route; entries with that same pattern are its methods. A pattern ending in '*'
 * matches as a prefix, any other exactly. Method "GET" also serves HEAD; "*" is every
 * method (the reference's routes that answer any method). A path whose route lacks the
 * method gets 405 with Allow, after the auth check of the route's strictest level. */
static const api_route_t routes[] = {
    {"POST", "/download", intake_download, AUTH_WRITE},
    {"GET", "/download/*", intake_status, AUTH_READ},
    {"DELETE", "/download/*", control_cancel, AUTH_WRITE},
    {"*", "/hb", health_hb, AUTH_OPEN},
    {"GET", "/ready", health_ready, AUTH_OPEN},
    {"POST", "/retry/*", intake_retry, AUTH_WRITE},
    {"*", "/stats/*", dashboard_stats, AUTH_READ},
    {"*", "/dashboard/aggregations", dashboard_aggregations, AUTH_READ},
    {"GET", "/dashboard/instances", dashboard_instances, AUTH_READ},
    {"GET", "/dashboard/history", dashboard_history, AUTH_READ},
    {"GET", "/dashboard/failed", dashboard_failed, AUTH_READ},
    {"GET", "/dashboard/retrying", dashboard_retrying, AUTH_READ},
    {"GET", "/aggregations/*", control_aggr_get, AUTH_READ},
    {"PATCH", "/aggregations/*", control_aggr_patch, AUTH_WRITE},
    {"DELETE", "/aggregations/*", control_aggr_purge, AUTH_WRITE},
    {"GET", "/failed", control_failed, AUTH_READ},
    {"POST", "/failed/retry", control_failed_retry, AUTH_WRITE},
    {"GET", "/metrics", metrics_serve, AUTH_READ},
    {"GET", "/files/*", serve_file, AUTH_READ},
    {"GET", "/*", serve_static, AUTH_READ},
};

static bool pattern_match(const char *pattern, const char *path)
{
    size_t n = strlen(pattern);
    if (n && pattern[n - 1] == '*') return strncmp(path, pattern, n - 1) == 0;
    return strcmp(path, pattern) == 0;
}

static bool method_match(const char *want, const char *method)
{
    return strcmp(want, "*") == 0 || strcmp(want, method) == 0 ||
           (strcmp(want, "GET") == 0 && strcmp(method, "HEAD") == 0);
}

/* The Allow list of the route whose first entry is table[first] (its others may follow
 * anywhere below). */
static void allow_list(api_match_t *m, const api_route_t *table, size_t n, size_t first)
{
    size_t len = 0;
    for (size_t i = first; i < n; i++) {
        if (strcmp(table[i].pattern, table[first].pattern) != 0) continue;
        const char *name = strcmp(table[i].method, "GET") == 0 ? "GET, HEAD" : table[i].method;
        int w = snprintf(m->allow + len, sizeof m->allow - len, "%s%s", len ? ", " : "", name);
        len = w < 0 || (size_t)w >= sizeof m->allow - len ? strlen(m->allow) : len + (size_t)w;
    }
}

api_match_t api_route_match(const api_route_t *table, size_t n, const char *method,
                            const char *path)
{
    api_match_t m = {NULL, AUTH_WRITE, ""};
    const char *pattern = NULL;
    size_t first = 0;
    for (size_t i = 0; path && i < n; i++) {
        if (pattern ? strcmp(table[i].pattern, pattern) != 0
                    : !pattern_match(table[i].pattern, path))
            continue;
        if (!pattern) {
            m.auth = AUTH_OPEN;
            pattern = table[i].pattern;
            first = i;
        }
        if (!m.route && method && method_match(table[i].method, method)) {
            m.route = &table[i];
            m.auth = table[i].auth;
        }
        if (!m.route && table[i].auth > m.auth) m.auth = table[i].auth;
    }
    /* only a 405 needs it: the requests that match pay nothing for it */
    if (pattern && !m.route) allow_list(&m, table, n, first);
    return m;
}

auth_level_t api_route_auth(const char *method, const char *path)
{
    return api_route_match(routes, sizeof routes / sizeof routes[0], method, path).auth;
}

static void handle(httpd_req_t *req, void *arg)
{
    api_t *a = arg;
    stats_incr(a->stats, "requests", 1);
    api_match_t m =
        api_route_match(routes, sizeof routes / sizeof routes[0], req->method, req->path);
    if (!auth_check(req, a->app->cfg.api_auth_token, a->app->cfg.api_auth_read, m.auth)) return;
    if (!m.route) return httpd_respond_405(req, m.allow);
    m.route->handler(a->app, req);
}

api_t *api_start(app_t *app, const char *host, int port, char *err, size_t errlen)
{
    const config_t *cfg = &app->cfg;
    httpd_limits_t limits = {
        .max_body = cfg->api_max_body,
        .max_header = cfg->api_max_header,
        .read_timeout_ms = cfg->api_read_timeout_ms,
        .idle_timeout_ms = cfg->api_idle_timeout_ms,
        .max_connections = cfg->api_max_connections,
        .max_per_client = cfg->api_max_connections_per_client,
        .stop_grace_ms = cfg->api_shutdown_grace_ms,
    };
    httpd_limits_default(&limits);
    api_t *a = calloc(1, sizeof *a);
    a->app = app;
    a->httpd = httpd_start(app->loop, host, port, &limits, handle, a, err, errlen);
    if (!a->httpd) {
        free(a);
        return NULL;
    }
    a->stats = stats_new(app, "api", STATS_INTERVAL_MS);
    log_info("api", "listening", "address=%s:%d", host && *host ? host : "", httpd_port(a->httpd));
    return a;
}

int api_port(const api_t *a)
{
    return httpd_port(a->httpd);
}

static void on_httpd_stopped(void *arg)
{
    api_t *a = arg;
    void (*cb)(void *) = a->stopped;
    void *cb_arg = a->stopped_arg;
    free(a);
    if (cb) cb(cb_arg);
}

void api_stop(api_t *a, void (*done)(void *arg), void *arg)
{
    a->stopped = done;
    a->stopped_arg = arg;
    stats_close(a->stats);
    httpd_stop(a->httpd, on_httpd_stopped, a);
}
