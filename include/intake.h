/* intake: the job routes of the reference (§3): enqueue a download, read a job's status,
 * retry its failed callback. api.c's route table dispatches to these handlers (auth and
 * 405 are decided there); Redis work goes through store.h. */
#ifndef DOWNLOADER_INTAKE_H
#define DOWNLOADER_INTAKE_H

#include "app.h"
#include "httpd.h"

/* POST /download: 201 {"id"} (Idempotent-Replayed on a repeated Idempotency-Key), 400
 * naming the bad field, 422 for a key reused with another body, 503 when Redis is away
 * or did not answer (then naming the job id). */
void intake_download(app_t *app, httpd_req_t *req);

/* GET /download/<id>: the job's state, attempts, errors, file and aggregation. */
void intake_status(app_t *app, httpd_req_t *req);

/* POST /retry/<id>: 204 once the failed callback is queued again. */
void intake_retry(app_t *app, httpd_req_t *req);

#endif
