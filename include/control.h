/* control: the operator routes of the API (issue 15): cancel a job, read and change an
 * aggregation (limit, rate, pause), browse and purge its queues, list and retry what
 * failed for good. api.c's route table dispatches to these handlers (auth and 405 for
 * methods a path lacks are decided there; control answers 405 for the methods of a
 * sub-path, e.g. PATCH /aggregations/<id>/jobs). Redis work goes through store.h. */
#ifndef DOWNLOADER_CONTROL_H
#define DOWNLOADER_CONTROL_H

#include <yajl/yajl_gen.h>

#include "app.h"
#include "httpd.h"

/* DELETE /download/<id>: 204, 404 unknown, 409 already delivered (or being delivered). */
void control_cancel(app_t *app, httpd_req_t *req);

/* GET /aggregations/<id> and GET /aggregations/<id>/jobs?state=&count=&cursor=. */
void control_aggr_get(app_t *app, httpd_req_t *req);

/* PATCH /aggregations/<id> {"limit","rate","paused"}. */
void control_aggr_patch(app_t *app, httpd_req_t *req);

/* DELETE /aggregations/<id>/jobs: purges queued and delayed jobs in chunks. */
void control_aggr_purge(app_t *app, httpd_req_t *req);

/* GET /failed?kind=download|callback&count=&cursor=. */
void control_failed(app_t *app, httpd_req_t *req);

/* The entries of a failed list as JSON objects {id, url (masked), aggr_id, <error_key>,
 * <time_key>} (also for the dashboard's /dashboard/failed, with its own names). */
void control_failed_json(yajl_gen g, const store_failed_t *f, size_t n, const char *error_key,
                         const char *time_key);

/* POST /failed/retry {"kind":"download"|"callback"[,"ids":[...]]}. */
void control_failed_retry(app_t *app, httpd_req_t *req);

/* How long a cancelled job stays readable: notifier.history, but at least twice the
 * longest lease, so that the processor still running it sees the cancellation. */
uint64_t control_cancel_keep_ms(const config_t *cfg);

#endif
