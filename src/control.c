/* control: the operator routes (issue 15): DELETE /download/<id>, GET/PATCH
 * /aggregations/<id>, GET/DELETE /aggregations/<id>/jobs, GET /failed and POST
 * /failed/retry. It parses and checks the request (a 400 names the bad field), calls
 * one store operation (one Lua script; a purge is a chain of bounded chunks) and
 * renders JSON. Aggregation ids are taken from the raw request target and
 * percent-decoded here, so an id may contain '/' when it is sent as %2F. */
#include "control.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "job.h"
#include "json.h"
#include "log.h"
#include "reply.h"

#define PAGE_DEFAULT 50
#define PAGE_MAX 500
#define PURGE_CHUNK 250
#define RETRY_IDS_MAX 1000

/* 503 for Redis away, 500 for any other store failure. */
static void respond_store_error(httpd_req_t *req, store_rc_t rc, const char *what)
{
    char msg[256];
    snprintf(msg, sizeof msg, "Error %s in Redis", what);
    reply_store_error(req, rc == STORE_DOWN, msg);
}

/* A page: {"jobs":[...rows...],"next_cursor":"..."}; page_open writes up to the rows. */
static yajl_gen page_open(void)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    yajl_gen_map_open(g);
    json_str(g, "jobs");
    yajl_gen_array_open(g);
    return g;
}

static void page_respond(httpd_req_t *req, yajl_gen g, const char *next)
{
    yajl_gen_array_close(g);
    json_kv_str(g, "next_cursor", next);
    yajl_gen_map_close(g);
    reply_json(req, 200, g);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0:len) into out ('+' stays '+'). -1 on a bad escape, a NUL or
 * overflow. */
static int pct_decode(const char *s, size_t len, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= len) return -1;
            int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
            if (h < 0 || l < 0) return -1;
            c = (char)(h * 16 + l);
            i += 2;
        }
        if (c == '\0' || o + 1 >= outlen) return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

/* A query parameter, percent-decoded. 1 found, 0 absent, -1 undecodable. */
static int query_get(const char *query, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    for (const char *q = query; q && *q;) {
        size_t seg = strcspn(q, "&");
        if (seg > nl && strncmp(q, name, nl) == 0 && q[nl] == '=')
            return pct_decode(q + nl + 1, seg - nl - 1, out, outlen) == 0 ? 1 : -1;
        if (seg == nl && strncmp(q, name, nl) == 0) {
            out[0] = '\0';
            return 1;
        }
        q += seg;
        if (*q) q++;
    }
    return 0;
}

/* count and cursor of a paged listing; false after answering 400. */
static bool page_params(httpd_req_t *req, long *offset, long *count)
{
    char buf[64];
    char *end;
    *count = PAGE_DEFAULT;
    *offset = 0;
    int r = query_get(req->query, "count", buf, sizeof buf);
    if (r != 0) {
        long v = r > 0 ? strtol(buf, &end, 10) : 0;
        if (r < 0 || !*buf || *end || v < 1) {
            httpd_respond_error(req, 400, "count: must be an integer from 1 to 500");
            return false;
        }
        *count = v > PAGE_MAX ? PAGE_MAX : v;
    }
    r = query_get(req->query, "cursor", buf, sizeof buf);
    if (r != 0 && !(r > 0 && !*buf)) {
        long v = r > 0 ? strtol(buf, &end, 10) : -1;
        if (r < 0 || *end || v < 0) {
            httpd_respond_error(req, 400,
                                "cursor: must be a next_cursor of a previous page (or empty)");
            return false;
        }
        *offset = v;
    }
    return true;
}

/* ---------- DELETE /download/<id> ---------- */

uint64_t control_cancel_keep_ms(const config_t *cfg)
{
    uint64_t lease = cfg->download_lease_ms > cfg->callback_lease_ms ? cfg->download_lease_ms
                                                                     : cfg->callback_lease_ms;
    return cfg->history_ms > 2 * lease ? cfg->history_ms : 2 * lease;
}

static void on_cancelled(store_rc_t rc, const char *state, void *arg)
{
    httpd_req_t *req = arg;
    if (rc == STORE_OK) return httpd_respond(req, 204, NULL, 0, NULL, 0);
    if (rc == STORE_NOTFOUND)
        return httpd_respond_error(req, 404,
                                   "Job not found (unknown id, or delivered and removed)");
    if (rc == STORE_CONFLICT && strcmp(state, "delivered") == 0)
        return httpd_respond_error(req, 409, "Job already delivered: its callback was sent");
    if (rc == STORE_CONFLICT)
        return httpd_respond_error(req, 409,
                                   "Job is being delivered: its callback is being sent now");
    respond_store_error(req, rc, "cancelling the job");
}

void control_cancel(app_t *app, httpd_req_t *req)
{
    const char *id = req->path + strlen("/download/");
    if (!job_id_valid(id, strlen(id)))
        return httpd_respond_error(req, 404,
                                   "Job not found (unknown id, or delivered and removed)");
    store_cancel(app->store, id, control_cancel_keep_ms(&app->cfg), on_cancelled, req);
}

/* ---------- /aggregations/<id>[/jobs] ---------- */

typedef enum { AGGR_BAD, AGGR_SELF, AGGR_JOBS } aggr_path_t;

/* Splits the raw target /aggregations/<id>[/jobs][?...] and decodes the id. */
static aggr_path_t aggr_path(const httpd_req_t *req, char *id, size_t idlen)
{
    const char *p = req->target + strlen("/aggregations/");
    size_t plen = strcspn(p, "?");
    size_t seg = strcspn(p, "/?");
    aggr_path_t kind = seg == plen ? AGGR_SELF : AGGR_BAD;
    if (plen - seg == 5 && strncmp(p + seg, "/jobs", 5) == 0) kind = AGGR_JOBS;
    if (strncmp(req->target, "/aggregations/", 14) != 0 || seg == 0 ||
        pct_decode(p, seg, id, idlen) < 0)
        return AGGR_BAD;
    return kind;
}

static void aggr_not_found(httpd_req_t *req, const char *id)
{
    char msg[1200];
    snprintf(msg, sizeof msg, "Aggregation not found: %s", id);
    httpd_respond_error(req, 404, msg);
}

static void on_aggr_info(store_rc_t rc, const store_aggr_info_t *a, void *arg)
{
    httpd_req_t *req = arg;
    if (rc == STORE_NOTFOUND) return aggr_not_found(req, a->id);
    if (rc != STORE_OK) return respond_store_error(req, rc, "reading the aggregation");
    yajl_gen g = yajl_gen_alloc(NULL);
    yajl_gen_map_open(g);
    json_kv_str(g, "id", a->id);
    json_kv_int(g, "limit", a->limit);
    json_str(g, "rate");
    double rate = strtod(a->rate, NULL);
    if (rate == (double)(long long)rate)
        yajl_gen_integer(g, (long long)rate);
    else
        yajl_gen_double(g, rate);
    json_kv_str(g, "proxy", log_redact_url(a->proxy));
    json_str(g, "paused");
    yajl_gen_bool(g, a->paused);
    json_kv_int(g, "ready", a->ready);
    json_kv_int(g, "delayed", a->delayed);
    json_kv_int(g, "inflight", a->inflight);
    yajl_gen_map_close(g);
    reply_json(req, 200, g);
}

static void on_jobs(store_rc_t rc, const store_job_row_t *rows, size_t n, const char *next,
                    void *arg)
{
    httpd_req_t *req = arg;
    if (rc != STORE_OK) return respond_store_error(req, rc, "listing jobs");
    yajl_gen g = page_open();
    for (size_t i = 0; i < n; i++) {
        if (!rows[i].id) continue;
        yajl_gen_map_open(g);
        json_kv_str(g, "id", rows[i].id);
        json_kv_str(g, "url", log_redact_url(rows[i].url));
        json_kv_int(g, "attempts", rows[i].attempts);
        json_kv_int(g, "next_attempt_at_ms", rows[i].next_attempt_at_ms);
        json_kv_int(g, "created_at_ms", rows[i].created_at_ms);
        json_kv_int(g, "started_at_ms", rows[i].started_at_ms);
        json_kv_str(g, "download_state", rows[i].state);
        json_kv_str(g, "last_error", rows[i].last_error);
        yajl_gen_map_close(g);
    }
    page_respond(req, g, next);
}

void control_aggr_get(app_t *app, httpd_req_t *req)
{
    char id[1024], state[16];
    aggr_path_t kind = aggr_path(req, id, sizeof id);
    if (kind == AGGR_BAD) return httpd_respond_error(req, 404, "404 page not found");
    if (kind == AGGR_SELF) return store_aggr_get(app->store, id, on_aggr_info, req);
    int r = query_get(req->query, "state", state, sizeof state);
    if (r == 0) snprintf(state, sizeof state, "ready");
    if (r < 0 || (strcmp(state, "ready") && strcmp(state, "delayed") && strcmp(state, "running")))
        return httpd_respond_error(req, 400, "state: must be ready, delayed or running");
    long offset, count;
    if (!page_params(req, &offset, &count)) return;
    store_aggr_jobs(app->store, id, state, offset, count, on_jobs, req);
}

/* Parses a JSON object body; NULL after answering 400. */
static yajl_val body_object(httpd_req_t *req, const char *expect)
{
    char err[256], msg[512];
    yajl_val root = req->body_len ? yajl_tree_parse(req->body, err, sizeof err) : NULL;
    if (root && YAJL_IS_OBJECT(root)) return root;
    yajl_tree_free(root);
    snprintf(msg, sizeof msg, "body: must be a JSON object %s", expect);
    httpd_respond_error(req, 400, msg);
    return NULL;
}

void control_aggr_patch(app_t *app, httpd_req_t *req)
{
    char id[1024], rate[64], msg[300];
    aggr_path_t kind = aggr_path(req, id, sizeof id);
    if (kind == AGGR_JOBS) return httpd_respond_405(req, "GET, HEAD, DELETE");
    if (kind == AGGR_BAD) return httpd_respond_error(req, 404, "404 page not found");
    yajl_val root = body_object(req, "with any of limit, rate, paused");
    if (!root) return;
    long limit = 0;
    int paused = -1;
    bool has_rate = false;
    const char *bad = NULL;
    for (size_t i = 0; i < root->u.object.len && !bad; i++) {
        const char *k = root->u.object.keys[i];
        yajl_val v = root->u.object.values[i];
        if (strcmp(k, "limit") == 0) {
            if (!YAJL_IS_INTEGER(v) || v->u.number.i < 1 || v->u.number.i > 1000000)
                bad = "limit: must be an integer from 1 to 1000000";
            else
                limit = (long)v->u.number.i;
        } else if (strcmp(k, "rate") == 0) {
            if (!YAJL_IS_NUMBER(v) || YAJL_GET_DOUBLE(v) < 0 || YAJL_GET_DOUBLE(v) > 1e6)
                bad = "rate: must be a number of starts per second from 0 (none) to 1000000";
            else
                snprintf(rate, sizeof rate, "%.6g", YAJL_GET_DOUBLE(v)), has_rate = true;
        } else if (strcmp(k, "paused") == 0) {
            if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v))
                bad = "paused: must be true or false";
            else
                paused = YAJL_IS_TRUE(v);
        } else {
            snprintf(msg, sizeof msg, "%.200s: unknown field (expected limit, rate, paused)", k);
            bad = msg;
        }
    }
    if (!bad && limit == 0 && paused < 0 && !has_rate)
        bad = "body: must have any of limit, rate, paused";
    yajl_tree_free(root);
    if (bad) return httpd_respond_error(req, 400, bad);
    store_aggr_patch(app->store, id, limit, has_rate ? rate : NULL, paused, on_aggr_info, req);
}

/* DELETE /aggregations/<id>/jobs: chunks of PURGE_CHUNK jobs, one script call each, until
 * nothing queued or delayed is left; jobs enqueued during the purge are purged too, up
 * to twice the chunks the first call saw left. */
typedef struct {
    app_t *app;
    httpd_req_t *req;
    char id[1024];
    long long deleted;
    long long calls_left;
} purge_t;

static void on_purged(store_rc_t rc, long long deleted, long long left, void *arg)
{
    purge_t *p = arg;
    if (rc != STORE_OK) {
        respond_store_error(p->req, rc, "purging jobs");
        free(p);
        return;
    }
    if (p->calls_left < 0) p->calls_left = 2 * (left / PURGE_CHUNK + 1);
    p->deleted += deleted;
    if (left > 0 && deleted > 0 && p->calls_left-- > 0) {
        store_aggr_purge(p->app->store, p->id, PURGE_CHUNK, on_purged, p);
        return;
    }
    char body[64];
    int n = snprintf(body, sizeof body, "{\"deleted\":%lld}", p->deleted);
    reply_json_buf(p->req, 200, body, (size_t)n);
    log_info("control", "aggregation purged", "aggregation_id=%s deleted=%lld", log_q(p->id),
             p->deleted);
    free(p);
}

void control_aggr_purge(app_t *app, httpd_req_t *req)
{
    purge_t *p = calloc(1, sizeof *p);
    aggr_path_t kind = aggr_path(req, p->id, sizeof p->id);
    if (kind != AGGR_JOBS) {
        free(p);
        if (kind == AGGR_SELF) return httpd_respond_405(req, "GET, HEAD, PATCH");
        return httpd_respond_error(req, 404, "404 page not found");
    }
    p->app = app;
    p->req = req;
    p->calls_left = -1;
    store_aggr_purge(app->store, p->id, PURGE_CHUNK, on_purged, p);
}

/* ---------- /failed ---------- */

void control_failed_json(yajl_gen g, const store_failed_t *f, size_t n, const char *error_key,
                         const char *time_key)
{
    for (size_t i = 0; i < n; i++) {
        if (!f[i].id) continue;
        yajl_gen_map_open(g);
        json_kv_str(g, "id", f[i].id);
        json_kv_str(g, "url", log_redact_url(f[i].url));
        json_kv_str(g, "aggr_id", f[i].aggr_id);
        json_kv_str(g, error_key, f[i].callback_error);
        json_kv_int(g, time_key, f[i].updated_at_ms);
        yajl_gen_map_close(g);
    }
}

static void on_failed_page(store_rc_t rc, const store_failed_t *f, size_t n, const char *next,
                           void *arg)
{
    httpd_req_t *req = arg;
    if (rc != STORE_OK) return respond_store_error(req, rc, "listing failed jobs");
    yajl_gen g = page_open();
    control_failed_json(g, f, n, "error", "failed_at_ms");
    page_respond(req, g, next);
}

void control_failed(app_t *app, httpd_req_t *req)
{
    char kind[16];
    int r = query_get(req->query, "kind", kind, sizeof kind);
    if (r <= 0 || (strcmp(kind, "download") && strcmp(kind, "callback")))
        return httpd_respond_error(req, 400, "kind: must be download or callback");
    long offset, count;
    if (!page_params(req, &offset, &count)) return;
    store_failed_page(app->store, strcmp(kind, "callback") == 0, offset, count, on_failed_page,
                      req);
}

static void on_requeued(store_rc_t rc, long long n, void *arg)
{
    httpd_req_t *req = arg;
    if (rc != STORE_OK) return respond_store_error(req, rc, "re-queueing failed jobs");
    char body[64];
    int len = snprintf(body, sizeof body, "{\"requeued\":%lld}", n);
    reply_json_buf(req, 200, body, (size_t)len);
}

void control_failed_retry(app_t *app, httpd_req_t *req)
{
    yajl_val root = body_object(req, "such as {\"kind\":\"download\",\"ids\":[...]}");
    if (!root) return;
    const char *kpath[] = {"kind", NULL}, *ipath[] = {"ids", NULL};
    yajl_val kind = yajl_tree_get(root, kpath, yajl_t_any);
    yajl_val ids = yajl_tree_get(root, ipath, yajl_t_any);
    const char *bad = NULL;
    bool callbacks = kind && YAJL_IS_STRING(kind) && strcmp(kind->u.string, "callback") == 0;
    if (!callbacks && !(kind && YAJL_IS_STRING(kind) && strcmp(kind->u.string, "download") == 0))
        bad = "kind: must be \"download\" or \"callback\"";
    else if (ids && (!YAJL_IS_ARRAY(ids) || ids->u.array.len > RETRY_IDS_MAX))
        bad = "ids: must be an array of at most 1000 job ids";
    for (size_t i = 0; !bad && ids && i < ids->u.array.len; i++)
        if (!YAJL_IS_STRING(ids->u.array.values[i]) ||
            !job_id_valid(ids->u.array.values[i]->u.string,
                          strlen(ids->u.array.values[i]->u.string)))
            bad = "ids: must be an array of at most 1000 job ids";
    if (bad || (ids && ids->u.array.len == 0)) {
        yajl_tree_free(root);
        if (bad) return httpd_respond_error(req, 400, bad);
        return on_requeued(STORE_OK, 0, req);
    }
    size_t n = ids ? ids->u.array.len : 0;
    const char **list = calloc(n + 1, sizeof *list);
    for (size_t i = 0; i < n; i++)
        list[i] = ids->u.array.values[i]->u.string;
    store_failed_retry(app->store, callbacks, list, n, on_requeued, req);
    free(list);
    yajl_tree_free(root);
}
