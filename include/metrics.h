/* metrics: Prometheus metrics (text exposition format 0.0.4) for GET /metrics.
 * Components report events here (enqueue answers, download attempts and outcomes,
 * callback outcomes, with durations); each component's share travels in its instance
 * heartbeat (stats.c calls metrics_gen_json), so any API can render the series of
 * every live instance of the cluster, plus queue gauges read from Redis at scrape
 * time. See docs/operations.md for the list of series. */
#ifndef DOWNLOADER_METRICS_H
#define DOWNLOADER_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_gen.h>

#include "app.h"
#include "fetch.h"
#include "httpd.h"
#include "job.h"
#include "store.h"

typedef enum {
    METRICS_DL_SUCCESS,
    METRICS_DL_FAILED,  /* failed for good */
    METRICS_DL_RETRIED, /* failed, retried later */
    METRICS_DL_REQUEUED /* interrupted (shutdown), back in its queue */
} metrics_dl_outcome_t;

/* api: the status answered to a POST /download (201: enqueued). */
void metrics_enqueue(int http_status);

/* processor: one finished attempt's response, counted by class (2xx.., tls, mime,
 * body, blocked, none when no HTTP answer came); cancelled attempts are not counted. */
void metrics_download_response(const fetch_result_t *res);

/* processor: a download's outcome and how long it ran (claim to outcome). */
void metrics_download(metrics_dl_outcome_t outcome, uint64_t elapsed_ms);

/* processor: an origin pushback reported for an aggregation: cause "429", "503"
 * (the aggregation is paused) or "timeout" (only its effective limit drops). */
void metrics_pushback(const char *cause);

/* processor: starts a claim left waiting for their aggregation's rate. */
void metrics_rate_waits(long long n);

/* notifier: a callback's outcome (as recorded with store_cb_finish) and how long its
 * delivery took; the backend (http, kafka, none) is derived from the job. */
void metrics_callback(const job_t *job, store_cb_op_t op, uint64_t elapsed_ms);

/* Writes the member "metrics" with this process's share for `component` (api,
 * processor, notifier) into an instance heartbeat object. */
void metrics_gen_json(yajl_gen g, const char *component, const app_t *app);

/* GET /metrics: answers req (always 200 unless out of memory; without Redis only this
 * process's series, with downloader_redis_up 0). */
void metrics_serve(app_t *app, httpd_req_t *req);

/* Escapes a label value (\\, \", \n) into out (always NUL-terminated). Exposed for
 * tests. */
void metrics_escape(char *out, size_t len, const char *value);

#endif
