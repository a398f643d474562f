/* dashboard: the read routes the dashboard (web/) polls: per-entity stats, aggregations,
 * instances, the last hour's history, failed and retrying callbacks. api.c's route table
 * dispatches to these handlers (auth and 405 are decided there); Redis reads go through
 * store.h. */
#ifndef DOWNLOADER_DASHBOARD_H
#define DOWNLOADER_DASHBOARD_H

#include <yajl/yajl_gen.h>

#include "app.h"
#include "httpd.h"

/* GET /stats/<name> (any method): an instance's counters, expvar style. */
void dashboard_stats(app_t *app, httpd_req_t *req);

/* GET /dashboard/aggregations (any method): every aggregation with work, sorted. */
void dashboard_aggregations(app_t *app, httpd_req_t *req);

/* GET /dashboard/instances: every instance's heartbeat and info. */
void dashboard_instances(app_t *app, httpd_req_t *req);

/* GET /dashboard/history: downloads and callbacks per minute, the last 60 minutes. */
void dashboard_history(app_t *app, httpd_req_t *req);

/* GET /dashboard/failed?limit=N: the newest jobs whose callback failed for good. */
void dashboard_failed(app_t *app, httpd_req_t *req);

/* GET /dashboard/retrying: callbacks waiting for their next attempt. */
void dashboard_retrying(app_t *app, httpd_req_t *req);

/* An aggregation's throttle state as members (rate, effective_limit, paused_until_ms),
 * as the dashboard and a job's status (intake) show it. */
void dashboard_throttle_json(yajl_gen g, const store_aggr_t *a);

#endif
