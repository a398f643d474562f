/* intake: the job routes of the reference (§3): POST /download (validated by job_parse,
 * enqueued with one store call, an Idempotency-Key looked up and recorded with it, and
 * an honest 503 naming the job id when Redis did not answer in time), GET /download/<id>
 * (ours: the job's status and history) and POST /retry/<id> (a failed callback sent
 * again). */
#include "intake.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <yajl/yajl_gen.h>

#include "dashboard.h"
#include "job.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "reply.h"
#include "uri.h"

#define ENQUEUE_TRIES 3
#define IDEM_HEADER "Idempotency-Key"
#define IDEM_KEY_MAX 255

/* ---------- POST /download ---------- */

typedef struct {
    app_t *app;
    httpd_req_t *req;
    job_t job;
    int tries;
    store_idem_t idem; /* idem.key NULL: no Idempotency-Key */
    char digest[2 * EVP_MAX_MD_SIZE + 1];
} enq_t;

static void enq_free(enq_t *e)
{
    job_free(&e->job);
    free(e);
}

static void respond_job_error(httpd_req_t *req, int status, const char *prefix, const job_t *job,
                              const char *suffix)
{
    char js_buf[4096], msg[4600];
    snprintf(msg, sizeof msg, "%s%s%s", prefix, job_to_string(job, js_buf, sizeof js_buf), suffix);
    httpd_respond_error(req, status, msg);
}

/* 201 {"id"}: a new job, or the first job of a repeated Idempotency-Key (replayed). */
static void respond_created(httpd_req_t *req, const char *id, bool replayed)
{
    static const httpd_header_t h[] = {{"Content-Type", "application/json"},
                                       {"Idempotent-Replayed", "true"}};
    char body[64];
    int n = snprintf(body, sizeof body, "{\"id\":\"%s\"}", id);
    httpd_respond(req, 201, h, replayed ? 2 : 1, body, (size_t)n);
}

/* 503 when the enqueue was sent but Redis did not answer (it hung past
 * redis.command_timeout, or WAIT was cut off): the job may exist, so the answer names
 * its id, in X-Job-Id too, instead of inviting a blind retry. */
static void respond_unknown(httpd_req_t *req, const char *id)
{
    const httpd_header_t h[] = {{"Content-Type", "text/plain; charset=utf-8"},
                                {"X-Content-Type-Options", "nosniff"},
                                {"Access-Control-Allow-Origin", "*"},
                                {"X-Job-Id", id}};
    char body[512];
    int n = snprintf(body, sizeof body,
                     "Service unavailable: Redis did not answer in time, the outcome is unknown: "
                     "job %s may have been created. Check GET /download/%s, or retry with the "
                     "same " IDEM_HEADER "\n",
                     id, id);
    httpd_respond(req, 503, h, 4, body, (size_t)n);
}

static void on_enqueued(store_rc_t rc, const char *err, void *arg)
{
    enq_t *e = arg;
    const store_idem_t *idem = e->idem.key ? &e->idem : NULL;
    if (rc == STORE_EXISTS && ++e->tries < ENQUEUE_TRIES && job_new_id(e->job.id) == 0) {
        store_enqueue(e->app->store, &e->job, idem, on_enqueued, e);
        return;
    }
    metrics_enqueue(rc == STORE_OK || rc == STORE_REPLAYED    ? 201
                    : rc == STORE_CONFLICT                    ? 422
                    : rc == STORE_DOWN || rc == STORE_UNKNOWN ? 503
                                                              : 500);
    if (rc == STORE_OK || rc == STORE_REPLAYED) {
        respond_created(e->req, e->job.id, rc == STORE_REPLAYED);
        log_debug("api", rc == STORE_OK ? "job enqueued" : "enqueue replayed",
                  "job_id=%s aggregation_id=%s", e->job.id, log_q(e->job.aggr_id));
    } else if (rc == STORE_CONFLICT) {
        char msg[IDEM_KEY_MAX + 128];
        snprintf(msg, sizeof msg,
                 IDEM_HEADER " '%s' was already used with a different request body", e->idem.key);
        httpd_respond_error(e->req, 422, msg);
    } else if (rc == STORE_UNKNOWN) {
        respond_unknown(e->req, e->job.id);
    } else if (rc == STORE_EXISTS) {
        respond_job_error(e->req, 500, "Could not find unique ID after 3 tries for ", &e->job, "");
    } else if (rc == STORE_DOWN) {
        reply_down(e->req);
    } else {
        char suffix[512];
        snprintf(suffix, sizeof suffix, ": %s", err ? err : "unexpected reply");
        respond_job_error(e->req, 500, "Error queueing ", &e->job, suffix);
    }
    enq_free(e);
}

/* Parses the POST /download body into job; on a bad field answers 400 naming it. */
static bool parse_or_reject(httpd_req_t *req, job_t *job)
{
    /* Go-quoted renderings can grow the body 8.5x; small bodies' texts fit the stack */
    char small[4096];
    size_t errlen = 10 * req->body_len + 512;
    char *err = errlen > sizeof small ? malloc(errlen) : NULL;
    if (!err) { /* small, or a truncated text at worst */
        err = small;
        errlen = sizeof small;
    }
    bool ok = job_parse(req->body, req->body_len, job, err, errlen) == JOB_OK;
    if (!ok) {
        metrics_enqueue(400);
        httpd_respond_error(req, 400, err);
    }
    if (err != small) free(err);
    return ok;
}

/* An Idempotency-Key is 1 to 255 printable ASCII characters. */
static bool idem_key_ok(const char *k)
{
    size_t n = 0;
    for (; k[n]; n++)
        if (k[n] < 0x20 || k[n] > 0x7e || n == IDEM_KEY_MAX) return false;
    return n > 0;
}

/* Hex SHA-256 of the request body: what a repeated key must match. The digest is
 * fetched once (EVP_sha256() would fetch it again on every call: twice the time). */
static bool body_digest(const httpd_req_t *req, char *hex)
{
    static EVP_MD *sha256;
    if (!sha256) sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!sha256 || !EVP_Digest(req->body, req->body_len, md, &n, sha256, NULL)) return false;
    uri_hex(md, n, hex);
    return true;
}

void intake_download(app_t *app, httpd_req_t *req)
{
    const char *key = httpd_req_header(req, IDEM_HEADER);
    if (key && !idem_key_ok(key)) {
        metrics_enqueue(400);
        return httpd_respond_error(req, 400,
                                   IDEM_HEADER " must be 1 to 255 printable ASCII characters");
    }
    enq_t *e = calloc(1, sizeof *e);
    e->app = app;
    e->req = req;
    if (!parse_or_reject(req, &e->job)) {
        enq_free(e);
        return;
    }
    const char *fail = job_new_id(e->job.id) != 0            ? "Could not generate a job id"
                       : key && !body_digest(req, e->digest) ? "Could not hash the request body"
                                                             : NULL;
    if (fail) {
        httpd_respond_error(req, 500, fail);
        enq_free(e);
        return;
    }
    if (key) e->idem = (store_idem_t){key, e->digest, app->cfg.api_idempotency_ttl_ms};
    store_enqueue(app->store, &e->job, key ? &e->idem : NULL, on_enqueued, e);
}

/* ---------- GET /download/<id> ---------- */

static const char *kv_get(const char *const *kv, size_t n, const char *key)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        if (strcmp(kv[i], key) == 0) return kv[i + 1];
    return NULL;
}

static void status_field_str(yajl_gen g, const char *const *kv, size_t n, const char *name,
                             const char *field)
{
    const char *v = kv_get(kv, n, field);
    const char *masked = v && strcmp(field, "URL") == 0 ? log_redact_url(v) : NULL;
    if (masked && strstr(masked, "***@") && !strstr(v, "***@")) v = masked; /* credentials */
    json_kv_str(g, name, v ? v : "");
}

static void status_field_int(yajl_gen g, const char *const *kv, size_t n, const char *name,
                             const char *field)
{
    const char *v = kv_get(kv, n, field);
    json_kv_int(g, name, v ? atoll(v) : 0);
}

static void on_status(store_rc_t rc, const char *const *kv, size_t n, long long ttl,
                      const store_aggr_t *aggr, void *arg)
{
    httpd_req_t *req = arg;
    if (rc == STORE_DOWN) return reply_down(req);
    if (rc == STORE_NOTFOUND || (rc == STORE_OK && !kv_get(kv, n, "ID"))) {
        httpd_respond_error(req, 404, "Job not found (unknown id, or delivered and removed)");
        return;
    }
    if (rc != STORE_OK) return httpd_respond_error(req, 500, "Error fetching job from Redis");
    yajl_gen g = yajl_gen_alloc(NULL);
    yajl_gen_map_open(g);
    static const char *strs[][2] = {{"id", "ID"},
                                    {"url", "URL"},
                                    {"aggr_id", "AggrID"},
                                    {"download_state", "DownloadState"},
                                    {"download_error", "DownloadMeta"},
                                    {"last_error", "LastError"},
                                    {"callback_state", "CallbackState"},
                                    {"callback_error", "CallbackMeta"},
                                    {"image_size", "ImageSize"},
                                    {"mime_type", "MimeDetected"},
                                    {"sha256", "Sha256"},
                                    {"extra", "Extra"}};
    static const char *ints[][2] = {{"download_attempts", "DownloadCount"},
                                    {"callback_attempts", "CallbackCount"},
                                    {"response_code", "ResponseCode"},
                                    {"size", "Size"},
                                    {"created_at_ms", "CreatedAt"},
                                    {"updated_at_ms", "UpdatedAt"},
                                    {"next_attempt_at_ms", "NextAttemptAt"},
                                    {"lost_leases", "LostLeases"},
                                    {"kept_bytes", "KeptBytes"}};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        status_field_str(g, kv, n, strs[i][0], strs[i][1]);
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        status_field_int(g, kv, n, ints[i][0], ints[i][1]);
    const char *state = kv_get(kv, n, "DownloadState"), *base = kv_get(kv, n, "DownloadURL");
    char *file_url = state && strcmp(state, "Success") == 0 && base && *base
                         ? job_file_url(base, kv_get(kv, n, "ID"))
                         : NULL;
    json_kv_str(g, "file_url", file_url ? file_url : "");
    /* the outcome, as the callback reports it (kept notifier.history after delivery) */
    json_str(g, "success");
    yajl_gen_bool(g, state && strcmp(state, "Success") == 0);
    status_field_str(g, kv, n, "error", "DownloadMeta");
    json_kv_str(g, "download_url", file_url ? file_url : "");
    status_field_int(g, kv, n, "delivered_at_ms", "DeliveredAt");
    free(file_url);
    json_kv_int(g, "expires_in_ms", ttl);
    /* a job not yet started that waits for its aggregation's pause or rate says so */
    bool pending = state && strcmp(state, "Pending") == 0;
    json_kv_str(g, "waiting", pending && aggr ? aggr->waiting : "");
    json_str(g, "aggregation");
    if (aggr) {
        yajl_gen_map_open(g);
        json_kv_int(g, "limit", aggr->limit);
        dashboard_throttle_json(g, aggr);
        yajl_gen_map_close(g);
    } else {
        yajl_gen_null(g);
    }
    yajl_gen_map_close(g);
    reply_json(req, 200, g);
}

void intake_status(app_t *app, httpd_req_t *req)
{
    const char *id = req->path + strlen("/download/");
    if (!job_id_valid(id, strlen(id)))
        return httpd_respond_error(req, 404,
                                   "Job not found (unknown id, or delivered and removed)");
    store_job_status(app->store, id, on_status, req);
}

/* ---------- POST /retry/<id> ---------- */

typedef struct {
    httpd_req_t *req;
    char id[256];
} retry_t;

static void on_retried(store_rc_t rc, const job_t *job, const char *state, void *arg)
{
    retry_t *r = arg;
    char msg[4600], jsb[4096];
    if (rc == STORE_OK) {
        httpd_respond(r->req, 204, NULL, 0, NULL, 0);
    } else if (rc == STORE_NOTFOUND) {
        snprintf(msg, sizeof msg, "Error fetching %s from Redis: Not Found", r->id);
        httpd_respond_error(r->req, 400, msg);
    } else if (rc == STORE_CONFLICT) {
        snprintf(msg, sizeof msg, "Error with callback state of the job %s: %s",
                 job_to_string(job, jsb, sizeof jsb), state);
        httpd_respond_error(r->req, 400, msg);
    } else if (rc == STORE_DOWN) {
        reply_down(r->req);
    } else {
        snprintf(msg, sizeof msg, "Error rescheduling callback for job with id '%s': redis error",
                 r->id);
        httpd_respond_error(r->req, 500, msg);
    }
    free(r);
}

void intake_retry(app_t *app, httpd_req_t *req)
{
    retry_t *r = calloc(1, sizeof *r);
    r->req = req;
    const char *id = uri_last_element(req->path);
    snprintf(r->id, sizeof r->id, "%.*s", (int)strcspn(id, "/"), id);
    store_retry_callback(app->store, r->id, on_retried, r);
}
