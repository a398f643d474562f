/* api: routes HTTP requests from httpd. POST /download validates with job_parse and
 * enqueues with one store call; /hb, /retry, /stats and /dashboard/aggregations behave
 * as the reference does (§3); /download/<id>, /dashboard/instances, /dashboard/history,
 * /dashboard/failed and /files/... are ours. The static UI from web/ is compiled in, and
 * the api publishes its own instance heartbeat ("api", counter "requests"). Redis being
 * away gives 503 with a clear message, never a hang. api.c only dispatches: one table
 * (method, path pattern, handler, auth level) decides auth and 405 for every route, so a
 * new route, in a module of its own, is one line of that table. */
#include "api.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <yajl/yajl_gen.h>

#include "auth.h"
#include "control.h"
#include "embedded.h"
#include "files.h"
#include "httpd.h"
#include "json.h"
#include "mime.h"
#include "job.h"
#include "log.h"
#include "metrics.h"
#include "stats.h"
#include "uri.h"

#define ENQUEUE_TRIES 3
#define REDIS_DOWN_MSG "Service unavailable: Redis is not reachable, try again later"
#define IDEM_HEADER "Idempotency-Key"
#define IDEM_KEY_MAX 255
#define STATS_INTERVAL_MS 5000
#define FAILED_DEFAULT 20
#define FAILED_MAX 200

struct api {
    app_t *app;
    httpd_t *httpd;
    stats_t *stats;
    void (*stopped)(void *);
    void *stopped_arg;
};

static const httpd_header_t json_cors[] = {{"Content-Type", "application/json"},
                                           {"Access-Control-Allow-Origin", "*"}};
static const httpd_header_t json_only[] = {{"Content-Type", "application/json"}};

static void respond_gen(httpd_req_t *req, yajl_gen g, bool cors)
{
    const unsigned char *buf;
    size_t len;
    yajl_gen_get_buf(g, &buf, &len);
    httpd_respond(req, 200, cors ? json_cors : json_only, cors ? 2 : 1, (const char *)buf, len);
    yajl_gen_free(g);
}

/* 503 as httpd_respond_error sends it, plus CORS so that a dashboard merging several
 * hosts can tell "Redis down" from "host unreachable". */
static void respond_down(httpd_req_t *req)
{
    static const httpd_header_t h[] = {{"Content-Type", "text/plain; charset=utf-8"},
                                       {"X-Content-Type-Options", "nosniff"},
                                       {"Access-Control-Allow-Origin", "*"}};
    static const char body[] = REDIS_DOWN_MSG "\n";
    httpd_respond(req, 503, h, 3, body, sizeof body - 1);
}

/* Masks credentials in a proxy URL for display. */
static const char *mask_proxy(const char *p)
{
    return log_redact_url(p);
}

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
        respond_down(e->req);
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

static void route_download(app_t *app, httpd_req_t *req)
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

/* An aggregation's throttle state, as the dashboard and job status show it. */
static void gen_throttle(yajl_gen g, const store_aggr_t *a)
{
    json_kv_double(g, "rate", a->rate);
    json_kv_int(g, "effective_limit", a->effective);
    json_kv_int(g, "paused_until_ms", a->paused_until_ms);
}

static void on_status(store_rc_t rc, const char *const *kv, size_t n, long long ttl,
                      const store_aggr_t *aggr, void *arg)
{
    httpd_req_t *req = arg;
    if (rc == STORE_DOWN) return respond_down(req);
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
        gen_throttle(g, aggr);
        yajl_gen_map_close(g);
    } else {
        yajl_gen_null(g);
    }
    yajl_gen_map_close(g);
    respond_gen(req, g, true);
}

/* ---------- GET /hb ---------- */

typedef struct {
    uv_fs_t fs;
    httpd_req_t *req;
    char *path;
} hb_t;

static void on_hb_stat(uv_fs_t *fs)
{
    hb_t *h = fs->data;
    static const httpd_header_t text[] = {{"Content-Type", "text/plain; charset=utf-8"}};
    if (fs->result == UV_ENOENT) {
        httpd_respond(h->req, 200, text, 1, "OK", 2);
    } else {
        char msg[4200];
        snprintf(msg, sizeof msg, "Service disabled, '%s' exists!", h->path);
        httpd_respond_error(h->req, 503, msg);
    }
    uv_fs_req_cleanup(fs);
    free(h->path);
    free(h);
}

static void route_hb(app_t *app, httpd_req_t *req)
{
    static const httpd_header_t text[] = {{"Content-Type", "text/plain; charset=utf-8"}};
    const char *path = app->cfg.heartbeat_path;
    if (!path || !*path) {
        httpd_respond(req, 200, text, 1, "OK", 2);
        return;
    }
    hb_t *h = calloc(1, sizeof *h);
    h->req = req;
    h->path = strdup(path);
    h->fs.data = h;
    if (uv_fs_stat(app->loop, &h->fs, h->path, on_hb_stat) < 0) {
        h->fs.result = UV_EIO;
        on_hb_stat(&h->fs);
    }
}

/* ---------- GET /ready ---------- */

/* Readiness, as a load balancer or an orchestrator asks it: 200 once this instance holds
 * a Redis connection, 503 while it has none (at start-up, and during an outage). */
static void route_ready(app_t *app, httpd_req_t *req)
{
    static const httpd_header_t text[] = {{"Content-Type", "text/plain; charset=utf-8"}};
    if (store_up(app->store))
        httpd_respond(req, 200, text, 1, "OK", 2);
    else
        httpd_respond_error(req, 503, REDIS_DOWN_MSG);
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
        respond_down(r->req);
    } else {
        snprintf(msg, sizeof msg, "Error rescheduling callback for job with id '%s': redis error",
                 r->id);
        httpd_respond_error(r->req, 500, msg);
    }
    free(r);
}

static const char *last_element(const char *path)
{
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        len--;
    const char *p = path + len;
    while (p > path && p[-1] != '/')
        p--;
    return p;
}

static void route_retry(app_t *app, httpd_req_t *req)
{
    retry_t *r = calloc(1, sizeof *r);
    r->req = req;
    const char *id = last_element(req->path);
    snprintf(r->id, sizeof r->id, "%.*s", (int)strcspn(id, "/"), id);
    store_retry_callback(app->store, r->id, on_retried, r);
}

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
        respond_down(s->req);
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
        httpd_respond(s->req, 200, json_cors, 2, body, (size_t)(p - body));
        free(body);
        free(sorted);
    }
    free(s);
}

static void route_stats(app_t *app, httpd_req_t *req)
{
    stats_req_t *s = calloc(1, sizeof *s);
    s->req = req;
    /* the reference takes the last element of the raw target, query included */
    snprintf(s->name, sizeof s->name, "%s", last_element(req->target));
    store_stats_get(app->store, s->name, on_stats, s);
}

/* ---------- dashboard ---------- */

static void on_aggrs(store_rc_t rc, const store_aggr_t *list, size_t n, void *arg)
{
    httpd_req_t *req = arg;
    if (rc == STORE_DOWN) return respond_down(req);
    if (rc != STORE_OK)
        return httpd_respond_error(req, 500, "Error scanning for aggregation keys: redis error");
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
        json_kv_str(g, "proxy", mask_proxy(sorted[i].proxy));
        json_kv_int(g, "ready", sorted[i].ready);
        json_kv_int(g, "delayed", sorted[i].delayed);
        json_kv_int(g, "inflight", sorted[i].inflight);
        gen_throttle(g, &sorted[i]);
        json_kv_str(g, "waiting", sorted[i].waiting);
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
    free(sorted);
    respond_gen(req, g, true);
}

static void on_instances(store_rc_t rc, long long now, const store_instance_t *in, size_t n,
                         void *arg)
{
    httpd_req_t *req = arg;
    if (rc == STORE_DOWN) return respond_down(req);
    if (rc != STORE_OK) return httpd_respond_error(req, 500, "Error fetching instances from Redis");
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
    httpd_respond(req, 200, json_cors, 2, body, (size_t)(p - body));
    free(body);
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
            respond_down(h->req);
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
    respond_gen(h->req, h->g, true);
    free(h);
}

static void route_history(app_t *app, httpd_req_t *req)
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
    if (rc == STORE_DOWN) return respond_down(req);
    if (rc != STORE_OK)
        return httpd_respond_error(req, 500, "Error fetching failed callbacks from Redis");
    yajl_gen g = yajl_gen_alloc(NULL);
    yajl_gen_array_open(g);
    control_failed_json(g, f, n, "callback_error", "updated_at_ms");
    yajl_gen_array_close(g);
    respond_gen(req, g, true);
}

static void route_failed(app_t *app, httpd_req_t *req)
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
    if (rc == STORE_DOWN) return respond_down(req);
    if (rc != STORE_OK)
        return httpd_respond_error(req, 500, "Error fetching retrying callbacks from Redis");
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
    respond_gen(req, g, true);
}

static void route_retrying(app_t *app, httpd_req_t *req)
{
    store_retrying(app->store, RETRYING_PAGE, on_retrying, req);
}

/* ---------- static files and stored files ---------- */

static const char *content_type(const char *name)
{
    static const char *types[][2] = {{".html", "text/html; charset=utf-8"},
                                     {".css", "text/css; charset=utf-8"},
                                     {".js", "text/javascript; charset=utf-8"},
                                     {".svg", "image/svg+xml"},
                                     {".png", "image/png"},
                                     {".ico", "image/x-icon"},
                                     {".json", "application/json"}};
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i][0]) == 0) return types[i][1];
    return "application/octet-stream";
}

static void route_static(app_t *app, httpd_req_t *req)
{
    (void)app;
    const char *path = req->path;
    if (strcmp(path, "/index.html") == 0) {
        static const httpd_header_t loc[] = {{"Location", "/"}};
        httpd_respond(req, 301, loc, 1, NULL, 0);
        return;
    }
    const char *name = strcmp(path, "/") == 0 ? "index.html" : path + 1;
    for (const embed_file_t *f = embed_web; f->name; f++) {
        if (strcmp(f->name, name) != 0) continue;
        httpd_header_t h[] = {{"Content-Type", content_type(f->name)},
                              {"Cache-Control", "no-cache"}};
        httpd_respond(req, 200, h, 2, (const char *)f->data, f->size);
        return;
    }
    httpd_respond_error(req, 404, "404 page not found");
}

typedef struct {
    uv_fs_t fs;
    uv_work_t work;
    httpd_req_t *req;
    int fd;
    bool regular;
    uint64_t size;
    char type[128]; /* FILES_XATTR_MIME, "" when absent or not a plain type */
} file_t;

/* A stored type becomes a header: only printable ASCII without CR/LF, or nothing. */
static bool header_safe(const char *s)
{
    for (; *s; s++)
        if (*s < 0x20 || *s > 0x7e) return false;
    return true;
}

/* Pool thread: fstat and the type stored as xattr (files.h). A file without one (the
 * processor sniffs only jobs that need the type) is sniffed here like a download, from
 * its first 1024 bytes with this thread's libmagic cookie, and the type cached as the
 * xattr for later serves (a file system without user xattrs just sniffs every time). */
static void file_inspect(uv_work_t *w)
{
    file_t *f = w->data;
    struct stat st;
    f->regular = fstat(f->fd, &st) == 0 && S_ISREG(st.st_mode);
    f->size = f->regular ? (uint64_t)st.st_size : 0;
    if (!f->regular) return;
    ssize_t n = fgetxattr(f->fd, FILES_XATTR_MIME, f->type, sizeof f->type - 1);
    f->type[n > 0 ? n : 0] = 0;
    if (n <= 0) {
        unsigned char head[1024];
        ssize_t len = pread(f->fd, head, sizeof head, 0);
        mime_t *m = mime_thread();
        if (len >= 0 && m && mime_detect(m, head, (size_t)len, f->type, sizeof f->type) == 0)
            (void)fsetxattr(f->fd, FILES_XATTR_MIME, f->type, strlen(f->type), 0);
        else
            f->type[0] = 0;
    }
    if (!header_safe(f->type)) f->type[0] = 0;
}

static void file_inspected(uv_work_t *w, int status)
{
    file_t *f = w->data;
    if (status < 0 || !f->regular) {
        uv_fs_close(NULL, &f->fs, f->fd, NULL);
        httpd_respond_error(f->req, 404, "404 page not found");
    } else {
        const httpd_header_t h[] = {
            {"Content-Type", f->type[0] ? f->type : "application/octet-stream"}};
        httpd_respond_fd(f->req, 200, h, 1, f->fd, f->size);
    }
    free(f);
}

static void on_file_open(uv_fs_t *fs)
{
    file_t *f = fs->data;
    if (fs->result < 0) {
        uv_fs_req_cleanup(fs);
        httpd_respond_error(f->req, 404, "404 page not found");
        free(f);
        return;
    }
    f->fd = (int)fs->result;
    uv_fs_req_cleanup(fs);
    f->work.data = f;
    if (uv_queue_work(fs->loop, &f->work, file_inspect, file_inspected) < 0)
        file_inspected(&f->work, UV_ENOMEM);
}

/* GET /files/<id[0:3]>/<id>: a stored file of the filesystem store. */
static void route_files(app_t *app, httpd_req_t *req)
{
    const char *rest = req->path + strlen("/files/");
    const char *slash = strchr(rest, '/');
    const char *id = slash ? slash + 1 : "";
    size_t idlen = strlen(id);
    if (!slash || slash - rest != 3 || !job_id_valid(id, idlen) || idlen < 3 ||
        strncmp(rest, id, 3) != 0 || !app->cfg.fs_rootdir) {
        httpd_respond_error(req, 404, "404 page not found");
        return;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/%.3s/%s", app->cfg.fs_rootdir, id, id);
    file_t *f = calloc(1, sizeof *f);
    f->req = req;
    f->fs.data = f;
    if (uv_fs_open(app->loop, &f->fs, path, O_RDONLY | O_CLOEXEC, 0, on_file_open) < 0) {
        f->fs.result = UV_ENOENT;
        on_file_open(&f->fs);
    }
}

/* ---------- routing ---------- */

static void route_status(app_t *app, httpd_req_t *req)
{
    const char *id = req->path + strlen("/download/");
    if (!job_id_valid(id, strlen(id)))
        return httpd_respond_error(req, 404,
                                   "Job not found (unknown id, or delivered and removed)");
    store_job_status(app->store, id, on_status, req);
}

static void route_aggregations(app_t *app, httpd_req_t *req)
{
    store_aggregations(app->store, 10000, on_aggrs, req);
}

static void route_instances(app_t *app, httpd_req_t *req)
{
    store_instances(app->store, on_instances, req);
}

/* Every route of the API, in matching order: the first whose pattern matches the path
 * is the route; entries with that same pattern are its methods. A pattern ending in '*'
 * matches as a prefix, any other exactly. Method "GET" also serves HEAD; "*" is every
 * method (the reference's routes that answer any method). A path whose route lacks the
 * method gets 405 with Allow, after the auth check of the route's strictest level. */
static const api_route_t routes[] = {
    {"POST", "/download", route_download, AUTH_WRITE},
    {"GET", "/download/*", route_status, AUTH_READ},
    {"DELETE", "/download/*", control_cancel, AUTH_WRITE},
    {"*", "/hb", route_hb, AUTH_OPEN},
    {"GET", "/ready", route_ready, AUTH_OPEN},
    {"POST", "/retry/*", route_retry, AUTH_WRITE},
    {"*", "/stats/*", route_stats, AUTH_READ},
    {"*", "/dashboard/aggregations", route_aggregations, AUTH_READ},
    {"GET", "/dashboard/instances", route_instances, AUTH_READ},
    {"GET", "/dashboard/history", route_history, AUTH_READ},
    {"GET", "/dashboard/failed", route_failed, AUTH_READ},
    {"GET", "/dashboard/retrying", route_retrying, AUTH_READ},
    {"GET", "/aggregations/*", control_aggr_get, AUTH_READ},
    {"PATCH", "/aggregations/*", control_aggr_patch, AUTH_WRITE},
    {"DELETE", "/aggregations/*", control_aggr_purge, AUTH_WRITE},
    {"GET", "/failed", control_failed, AUTH_READ},
    {"POST", "/failed/retry", control_failed_retry, AUTH_WRITE},
    {"GET", "/metrics", metrics_serve, AUTH_READ},
    {"GET", "/files/*", route_files, AUTH_READ},
    {"GET", "/*", route_static, AUTH_READ},
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

api_match_t api_route_match(const api_route_t *table, size_t n, const char *method,
                            const char *path)
{
    api_match_t m = {NULL, AUTH_WRITE, ""};
    const char *pattern = NULL;
    size_t len = 0;
    for (size_t i = 0; path && i < n; i++) {
        if (pattern ? strcmp(table[i].pattern, pattern) != 0
                    : !pattern_match(table[i].pattern, path))
            continue;
        if (!pattern) m.auth = AUTH_OPEN;
        pattern = table[i].pattern;
        if (!m.route && method && method_match(table[i].method, method)) {
            m.route = &table[i];
            m.auth = table[i].auth;
        }
        if (!m.route && table[i].auth > m.auth) m.auth = table[i].auth;
        const char *name = strcmp(table[i].method, "GET") == 0 ? "GET, HEAD" : table[i].method;
        int w = snprintf(m.allow + len, sizeof m.allow - len, "%s%s", len ? ", " : "", name);
        len = w < 0 || (size_t)w >= sizeof m.allow - len ? strlen(m.allow) : len + (size_t)w;
    }
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
