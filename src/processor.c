/* processor: the download side. It claims work with store_claim (a Lua script that
 * enforces each aggregation's limit across all processors and records a lease),
 * renews the leases of running downloads, and records every outcome with
 * store_dl_finish under the lease. It wakes on pub/sub messages and on timers set to
 * the next delayed retry or lease deadline, never by polling. Transfers run in fetch
 * (curl multi on this loop); finalising (fsync, rename, image size) runs in files on
 * the thread pool; files bound for S3 (the configured store or the job's own bucket)
 * are uploaded from the temp file by s3 instead of renamed. The reaper and the disk
 * guard live in reaper.c / here.
 *
 * Bandwidth caps (aggr_bandwidth, issue 16): the processors running downloads of an
 * aggregation with a cap are counted in Redis (bwp:<aggr>, by claim.lua and
 * dl_finish.lua); each takes cap / that count and divides its share evenly among its
 * own transfers of the aggregation with CURLOPT_MAX_RECV_SPEED_LARGE. Its own
 * transfers starting or ending re-divide at once; a processor joining or leaving the
 * aggregation publishes a 'bw' wake-up, on which every processor reads the count
 * again (one HLEN per capped aggregation it runs). */
#include "processor.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backoff.h"
#include "curlm.h"
#include "fetch.h"
#include "files.h"
#include "glob.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "mime.h"
#include "reaper.h"
#include "s3.h"
#include "stats.h"
#include "strmap.h"

#define CLAIM_BATCH 64
#define MAX_LOST_LEASES 10
#define RETRY_CAP_MS (6ULL * 3600 * 1000)
#define INFLIGHT_REPORT 20
#define SMALL_BODY (16 * 1024) /* bodies up to this stay in memory until they are stored */
#define S3_HOST_CONNECTIONS 32L
#define PHASE_STORE "storing file to default storage backend"
#define PHASE_JOB_S3 "storing file to job specified AWS S3 bucket"

typedef struct dl dl_t;

struct processor {
    app_t *app;
    const config_t *cfg;
    store_t *store;
    curlm_t *curlm;
    mime_t *mime;
    stats_t *stats;
    reaper_t *reaper;
    s3_t *s3;              /* uploads and deletions of objects */
    bool s3_store;         /* processor.filestorage.type is "s3" */
    const char *s3_region; /* of the configured bucket */
    fetch_opts_t fopts;
    char reap_key[PATH_MAX];
    dl_t *active;
    int n_active;
    strmap_t per_aggr;
    strmap_t held; /* members ("<id>:<aggr>") of the downloads whose lease is still ours */
    bool claiming, again, stopping, stop_begun, sick;
    bool drained;    /* the last claim left `ready` empty: a freed slot alone is no reason
                        to claim (whatever becomes claimable publishes a wake-up), but a
                        scheduled retry is (its due time arms the wake timer) */
    int store_calls; /* claim/renew replies outstanding: the processor outlives them */
    bool sweeping;   /* a round of the orphan sweep is under way: the processor outlives it */
    uv_timer_t wake, renew, disk, grace, bw, sweep;
    int open_handles;
    void (*stopped)(void *);
    void *stopped_arg;
};

typedef enum { PH_FETCH, PH_FINALIZE, PH_UPLOAD, PH_FINISH } phase_t;

struct dl {
    processor_t *p;
    store_claimed_t c;
    fetch_t *fetch;
    phase_t phase;
    bool lost;
    bool fresh;     /* the origin refused to resume: the next fetch starts at byte 0 */
    bool partial;   /* the failed fetch kept its temp file for a later attempt */
    uint64_t kept;  /* bytes the fetch resumed from, or kept for the next attempt */
    bool cancelled; /* DELETE /download/<id>: lost, but its outcome still goes to Redis */
    bool waiting;   /* outcome not recorded because Redis was down; resent on reconnect */
    char member[JOB_ID_LEN + 2 + 256];
    char *tmp, *final; /* <storage_dir>/<id>.tmp and <rootdir>/<id[0:3]>/<id> (NULL for S3) */
    bool own_bucket;   /* the job's s3_bucket: uploaded there with its metadata, never reaped */
    char **meta;       /* its x-amz-meta-* header lines */
    s3_op_t *upload;
    char mime[128];
    uint64_t started;
    /* the pending store_dl_finish, kept to resend after a reconnect */
    store_dl_op_t op;
    uint64_t delay;
    store_origin_t origin; /* what the attempt said about the origin (signal static) */
    char **kv;
    dl_t *prev, *next;
};

static void maybe_claim(processor_t *p);
static void on_bw_timer(uv_timer_t *t);
static void bw_local(processor_t *p, const dl_t *changed);
static void on_renew_timer(uv_timer_t *t);
static void finish_send(dl_t *d);

/* ---------- bookkeeping ---------- */

/* A lease's member in Redis (leases, delayed): "<id>:<aggr>". */
static void lease_member(char *buf, size_t len, const job_t *j)
{
    snprintf(buf, len, "%s:%s", j->id, j->aggr_id);
}

static void dl_link(processor_t *p, dl_t *d)
{
    d->next = p->active;
    if (p->active) p->active->prev = d;
    p->active = d;
    p->n_active++;
    strmap_add(&p->held, d->member, 1);
    if (strmap_add(&p->per_aggr, d->c.job.aggr_id, 1) == 1)
        stats_incr(p->stats, "spawnedWorkerPools", 1);
    stats_incr(p->stats, "spawnedWorkers", 1);
    stats_max(p->stats, "maxWorkers", p->n_active);
    stats_max(p->stats, "maxWorkerPools", (long long)strmap_size(&p->per_aggr));
}

static void kv_free(char **kv)
{
    for (size_t i = 0; kv && kv[i]; i++)
        free(kv[i]);
    free(kv);
}

static void stop_check(processor_t *p);

static void dl_done(dl_t *d)
{
    processor_t *p = d->p;
    store_dl_op_t op = d->op;
    if (d->prev)
        d->prev->next = d->next;
    else
        p->active = d->next;
    if (d->next) d->next->prev = d->prev;
    p->n_active--;
    if (!d->lost) strmap_add(&p->held, d->member, -1);
    strmap_add(&p->per_aggr, d->c.job.aggr_id, -1);
    store_claimed_free(&d->c);
    kv_free(d->kv);
    s3_headers_free(d->meta);
    free(d->tmp);
    free(d->final);
    free(d);
    if (p->stopping)
        stop_check(p);
    else if (!p->drained || op != STORE_DL_DONE) /* a retry: learn its due time */
        maybe_claim(p);
}

/* ---------- recording outcomes ---------- */

static void on_finished(store_rc_t rc, const char *err, void *arg)
{
    dl_t *d = arg;
    processor_t *p = d->p;
    if (rc == STORE_DOWN && !p->stopping) {
        /* kept; finish_send runs again when Redis is back (the lease may still hold) */
        log_warn("processor", "redis down, outcome kept for retry", "job_id=%s", d->c.job.id);
        d->waiting = true;
        return;
    }
    if (rc == STORE_CANCELLED)
        log_info("processor", "job cancelled, its stored file is queued for deletion", "job_id=%s",
                 d->c.job.id);
    else if (rc == STORE_CONFLICT)
        log_warn("processor", "lease lost before the outcome was recorded", "job_id=%s",
                 d->c.job.id);
    else if (rc != STORE_OK)
        log_error("processor", "could not record outcome", "job_id=%s error=%s", d->c.job.id,
                  log_q(err ? err : "redis unavailable"));
    dl_done(d);
}

static void finish_send(dl_t *d)
{
    processor_t *p = d->p;
    store_dl_finish(p->store, d->c.job.id, d->c.job.aggr_id, p->app->instance, d->op, d->delay,
                    p->cfg->retention_ms, &d->origin, (const char *const *)d->kv, on_finished, d);
}

/* Records an outcome: kv is a NULL-terminated list of field, value, ... (copied). */
static void finish(dl_t *d, store_dl_op_t op, uint64_t delay, const char *const *kv)
{
    size_t n = 0;
    while (kv[n])
        n++;
    d->kv = calloc(n + 1, sizeof *d->kv);
    for (size_t i = 0; i < n; i++)
        d->kv[i] = strdup(kv[i]);
    d->op = op;
    d->delay = delay;
    d->phase = PH_FINISH;
    /* a cancelled job's outcome is still sent: dl_finish.lua reaps a file it stored */
    if (d->lost && !d->cancelled) {
        dl_done(d);
        return;
    }
    finish_send(d);
}

static void fmt_int(char *buf, size_t len, long long v)
{
    snprintf(buf, len, "%lld", v);
}

static void record_failure(dl_t *d, const char *error, bool retriable, bool internal,
                           long retry_after_ms, long code)
{
    processor_t *p = d->p;
    job_t *j = &d->c.job;
    char count[16], rc[16];
    int attempts = j->download_count + (internal ? 0 : 1);
    char kept[24];
    fmt_int(kept, sizeof kept, d->partial ? (long long)d->kept : 0);
    fmt_int(count, sizeof count, attempts);
    fmt_int(rc, sizeof rc, code);
    if (internal) stats_incr(p->stats, "failures", 1);
    if (retriable && (internal || attempts <= job_max_retries(j))) {
        uint64_t delay =
            backoff_delay(p->cfg->download_retry_base_ms, attempts ? attempts : 1, RETRY_CAP_MS);
        if ((uint64_t)retry_after_ms > delay) delay = (uint64_t)retry_after_ms;
        stats_incr(p->stats, "downloads.retried", 1);
        metrics_download(METRICS_DL_RETRIED, uv_now(p->app->loop) - d->started);
        log_info("processor", "download failed, retrying",
                 "job_id=%s attempt=%d delay_ms=%llu error=%s", j->id, attempts,
                 (unsigned long long)delay, log_q(error));
        const char *kv[] = {"DownloadState",
                            "Pending",
                            "DownloadCount",
                            count,
                            "ResponseCode",
                            rc,
                            "LastError",
                            error,
                            "DownloadMeta",
                            "",
                            "KeptBytes",
                            kept,
                            NULL};
        finish(d, STORE_DL_DELAY, delay, kv);
        return;
    }
    if (d->partial) files_unlink(p->app->loop, d->tmp, NULL, NULL); /* nobody resumes it */
    stats_incr(p->stats, "downloads.failed", 1);
    metrics_download(METRICS_DL_FAILED, uv_now(p->app->loop) - d->started);
    log_info("processor", "download failed", "job_id=%s attempts=%d error=%s", j->id, attempts,
             log_q(error));
    const char *kv[] = {"DownloadState",
                        "Failed",
                        "DownloadCount",
                        count,
                        "ResponseCode",
                        rc,
                        "LastError",
                        error,
                        "DownloadMeta",
                        error,
                        "DownloadURL",
                        "",
                        NULL};
    finish(d, STORE_DL_DONE, 0, kv);
}

static void record_success(dl_t *d, const char *image_size, long code, uint64_t bytes,
                           const char *sha256)
{
    processor_t *p = d->p;
    job_t *j = &d->c.job;
    char count[16], rc[16], size[24], kept[24], bucket_url[512];
    const char *url = p->cfg->download_url, *store_key = p->reap_key;
    if (d->own_bucket) { /* the callback points at the object; the caller owns it */
        if (s3_bucket_url(p->s3, j->s3_bucket, j->s3_region, bucket_url, sizeof bucket_url) < 0)
            bucket_url[0] = '\0';
        url = bucket_url;
        store_key = "";
    }
    fmt_int(count, sizeof count, j->download_count + 1);
    fmt_int(rc, sizeof rc, code);
    fmt_int(size, sizeof size, (long long)bytes);
    fmt_int(kept, sizeof kept, (long long)d->kept);
    stats_incr(p->stats, "downloads.success", 1);
    metrics_download(METRICS_DL_SUCCESS, uv_now(p->app->loop) - d->started);
    stats_incr(p->stats, "downloads.bytes", (long long)bytes);
    const char *kv[] = {"DownloadState",
                        "Success",
                        "DownloadCount",
                        count,
                        "ResponseCode",
                        rc,
                        "DownloadURL",
                        url,
                        "DownloadMeta",
                        "",
                        "LastError",
                        "",
                        "ImageSize",
                        image_size,
                        "StoreKey",
                        store_key,
                        "MimeDetected",
                        d->mime,
                        "Size",
                        size,
                        "Sha256",
                        sha256,
                        "KeptBytes",
                        kept,
                        NULL};
    finish(d, STORE_DL_DONE, 0, kv);
}

static void record_requeue(dl_t *d, const char *why)
{
    stats_incr(d->p->stats, "downloads.requeued", 1);
    metrics_download(METRICS_DL_REQUEUED, 0);
    const char *kv[] = {"DownloadState", "Pending", "LastError", why, NULL};
    finish(d, STORE_DL_REQUEUE, 0, kv);
}

/* ---------- one download ---------- */

typedef struct {
    dl_t *d;
    long code;
    uint64_t bytes;
    char image_size[32];
    char sha256[65];
} fin_ctx_t;

/* ---------- object storage ---------- */

static bool to_s3(const dl_t *d)
{
    return d->own_bucket || d->p->s3_store;
}

static void on_uploaded(const s3_result_t *res, void *arg)
{
    fin_ctx_t *fc = arg;
    dl_t *d = fc->d;
    d->upload = NULL;
    files_unlink(d->p->app->loop, d->tmp, NULL, NULL); /* uploaded or not, it is done with */
    if (res->cancelled && d->lost) {
        dl_done(d);
    } else if (res->cancelled) {
        record_requeue(d, "upload interrupted by shutdown");
    } else if (!res->ok) {
        /* an outage of our own store must not use up the job's attempts */
        bool internal = res->internal || (!d->own_bucket && res->retriable);
        char msg[1024];
        fetch_format_error(msg, sizeof msg, d->own_bucket ? PHASE_JOB_S3 : PHASE_STORE, res->detail,
                           res->retriable, internal);
        record_failure(d, msg, res->retriable, internal, 0, fc->code);
    } else {
        record_success(d, fc->image_size, fc->code, fc->bytes, fc->sha256);
    }
    free(fc);
}

/* Uploads the finalised temp file to the job's bucket or the configured one. */
static void upload_start(dl_t *d, fin_ctx_t *fc)
{
    processor_t *p = d->p;
    job_t *j = &d->c.job;
    char key[2 * JOB_ID_LEN + 2];
    bool grace_over = p->stopping && !uv_is_active((uv_handle_t *)&p->grace);
    s3_job_key(key, sizeof key, j->id);
    s3_loc_t loc = {d->own_bucket ? j->s3_bucket : p->cfg->s3_bucket,
                    d->own_bucket ? j->s3_region : p->s3_region, key};
    d->phase = PH_UPLOAD;
    if (!d->lost && !grace_over)
        d->upload = s3_put_file(p->s3, &loc, d->tmp, d->mime, (const char *const *)d->meta,
                                on_uploaded, fc);
    if (d->upload) return;
    files_unlink(p->app->loop, d->tmp, NULL, NULL);
    free(fc);
    if (d->lost)
        dl_done(d);
    else if (grace_over)
        record_requeue(d, "upload interrupted by shutdown");
    else
        record_failure(d,
                       "Error while " PHASE_STORE ", out of memory, retriable: true, "
                       "internal: true",
                       true, true, 0, 0);
}

static void on_finalized(const files_result_t *res, void *arg)
{
    fin_ctx_t *fc = arg;
    dl_t *d = fc->d;
    if (res->err) {
        char msg[1024];
        bool internal = res->internal || res->err == ENOSPC || res->err == EDQUOT;
        fetch_format_error(msg, sizeof msg, res->phase, res->detail, internal, internal);
        record_failure(d, msg, internal, internal, 0, fc->code);
    } else if (to_s3(d)) {
        snprintf(fc->image_size, sizeof fc->image_size, "%s", res->image_size);
        upload_start(d, fc);
        return;
    } else {
        record_success(d, res->image_size, fc->code, fc->bytes, fc->sha256);
    }
    free(fc);
}

static bool is_image_type(const char *m)
{
    return strcmp(m, "image/jpeg") == 0 || strcmp(m, "image/png") == 0 ||
           strcmp(m, "image/gif") == 0;
}

static int on_head(void *arg, const unsigned char *head, size_t len, char *err, size_t errlen,
                   const char **phase, const char **stat)
{
    dl_t *d = arg;
    const char *pattern = d->c.job.mime_type;
    mime_detect(d->p->mime, head, len, d->mime, sizeof d->mime);
    if (!pattern || !*pattern) return 0; /* only extract_image_size: a mismatch is ignored */
    if (glob_mime_check(pattern, d->mime, err, errlen) == 0) return 0;
    *phase = "validating mime type";
    *stat = "download.response.mime";
    return -1;
}

/* Every received status counts as download.response.<code>, besides the failure's
 * own stat (tls, body, mime); internal failures are counted by record_failure. */
static void count_response(stats_t *s, const fetch_result_t *res)
{
    char code[48];
    snprintf(code, sizeof code, "download.response.%ld", res->response_code);
    if (res->response_code > 0) stats_incr(s, code, 1);
    if (res->stat[0] && strcmp(res->stat, code) != 0 && strcmp(res->stat, "failures") != 0)
        stats_incr(s, res->stat, 1);
}

static void fetch_begin(dl_t *d);

/* What the attempt tells about the origin, for dl_finish.lua: a 429/503 pauses the
 * aggregation (Retry-After or exponential, capped at processor.max_pause); with
 * processor.adaptive_limits those and timeouts halve its effective concurrency and
 * successes grow it back. Set before the outcome is recorded; finalising errors later
 * (ours, not the origin's) keep "ok": the origin answered well. */
static void origin_signal(dl_t *d, const fetch_result_t *res)
{
    const char *sig = res->ok                     ? "ok"
                      : res->response_code == 429 ? "429"
                      : res->response_code == 503 ? "503"
                      : res->timed_out            ? "timeout"
                                                  : "";
    d->origin = (store_origin_t){sig, res->ok ? 0 : (uint64_t)res->retry_after_ms,
                                 d->p->cfg->max_pause_ms, d->p->cfg->adaptive_limits};
    if (!res->ok && *sig) metrics_pushback(sig);
}

static void on_fetched(fetch_t *f, const fetch_result_t *res, void *arg)
{
    (void)f;
    dl_t *d = arg;
    processor_t *p = d->p;
    d->fetch = NULL;
    bw_local(p, d);
    count_response(p->stats, res);
    metrics_download_response(res);
    d->partial = res->partial_kept;
    d->kept = res->partial_kept ? res->bytes : res->kept;
    if (res->restart && !d->lost && !p->stopping) { /* not an attempt: at once, from 0 */
        log_info("processor", "origin refused to resume, starting over", "job_id=%s error=%s",
                 d->c.job.id, log_q(res->error));
        d->fresh = true;
        fetch_begin(d);
        return;
    }
    if (res->cancelled) {
        if (d->lost)
            dl_done(d);
        else
            record_requeue(d, "download interrupted by shutdown");
        return;
    }
    origin_signal(d, res);
    if (!res->ok) {
        record_failure(d, res->error, res->retriable, res->internal, res->retry_after_ms,
                       res->response_code);
        return;
    }
    fin_ctx_t *fc = malloc(sizeof *fc);
    *fc = (fin_ctx_t){.d = d, .code = res->response_code, .bytes = res->bytes};
    snprintf(fc->sha256, sizeof fc->sha256, "%s", res->sha256);
    d->phase = PH_FINALIZE;
    const char *img = d->c.job.extract_image_size && is_image_type(d->mime) ? d->mime : NULL;
    const char *final = to_s3(d) ? NULL : d->final; /* S3: measured, then uploaded */
    int rc = res->mem ? files_finalize_mem(p->app->loop, d->tmp, final, d->mime, img, res->mem,
                                           res->mem_len, on_finalized, fc)
                      : files_finalize(p->app->loop, d->tmp, final, d->mime, img, on_finalized, fc);
    if (rc < 0) {
        free(res->mem); /* not queued: still ours */
        free(fc);
        record_failure(d,
                       "Error while storing file to default storage backend, could not queue work, "
                       "retriable: true, internal: true",
                       true, true, 0, res->response_code);
    }
}

static dl_t *dl_new(processor_t *p, store_claimed_t *c)
{
    dl_t *d = calloc(1, sizeof *d);
    d->p = p;
    d->c = *c;
    d->started = uv_now(p->app->loop);
    lease_member(d->member, sizeof d->member, &c->job);
    const job_t *j = &c->job;
    d->own_bucket = j->s3_bucket && *j->s3_bucket && j->s3_region && *j->s3_region;
    if (asprintf(&d->tmp, "%s/%s.tmp", p->cfg->storage_dir, c->job.id) < 0) d->tmp = NULL;
    if (!to_s3(d)) {
        size_t flen = strlen(p->cfg->fs_rootdir) + 2 * JOB_ID_LEN + 8;
        d->final = malloc(flen);
        if (d->final) files_job_path(d->final, flen, p->cfg->fs_rootdir, c->job.id);
    }
    dl_link(p, d);
    return d;
}

static void dl_start(processor_t *p, store_claimed_t *c)
{
    dl_t *d = dl_new(p, c);
    char err[256], msg[512];
    if (d->own_bucket && s3_meta_from_extra(c->job.extra, &d->meta, err, sizeof err) < 0) {
        /* the reference found this only after downloading (W32; its phase was "Could not
         * unmarhal Extra") */
        fetch_format_error(msg, sizeof msg, "unmarshalling Extra", err, false, false);
        record_failure(d, msg, false, false, 0, 0);
        return;
    }
    fetch_begin(d);
}

/* Starts (or, after a refused resume, restarts) the transfer of a download. */
static void fetch_begin(dl_t *d)
{
    processor_t *p = d->p;
    const store_claimed_t *c = &d->c;
    /* sniffed only when the job needs the type (libmagic on the loop costs 20-700 us);
     * S3 objects get it as their Content-Type, files as the xattr that GET /files/...
     * serves, which otherwise detects the type at the first serve (serve.c) */
    bool check = (c->job.mime_type && *c->job.mime_type) || c->job.extract_image_size || to_s3(d);
    /* only a job claimed before can have a partial file here (one thread-pool job) */
    bool resume = c->job.tried && !d->fresh;
    fetch_req_t req = {
        .url = c->job.url,
        .proxy = c->proxy,
        .headers = &c->job.request_headers,
        .timeout_s = c->job.download_timeout,
        .tmp_path = d->tmp,
        .on_head = check ? on_head : NULL,
        .head_arg = d,
        .mem_limit = SMALL_BODY, /* small files: one thread-pool job (write, fsync, rename) */
        .checksum = c->job.checksum && *c->job.checksum ? c->job.checksum : NULL,
        .resume = resume,
    };
    bool ready = d->tmp && (d->final || to_s3(d));
    d->fetch = ready ? fetch_start(p->app->loop, p->curlm, &p->fopts, &req, on_fetched, d) : NULL;
    if (d->fetch) bw_local(p, d);
    if (!d->fetch)
        record_failure(
            d, "Error while creating request, out of memory, retriable: true, internal: true", true,
            true, 0, 0);
}

/* ---------- bandwidth caps ---------- */

static bool bw_capped(const dl_t *d, const char *aggr)
{
    return d->fetch && d->c.job.aggr_bandwidth > 0 && strcmp(d->c.job.aggr_id, aggr) == 0;
}

/* Divides aggr's share (its cap over procs processors) among this processor's running
 * transfers of it. The cap is the one the latest claim brought (the list is newest
 * first). */
static void bw_apply(processor_t *p, const char *aggr, long long procs)
{
    long long cap = 0, mine = 0;
    for (dl_t *d = p->active; d; d = d->next) {
        if (!bw_capped(d, aggr)) continue;
        if (!mine++) cap = d->c.job.aggr_bandwidth;
    }
    if (!mine) return;
    long long rate = cap / (procs > 0 ? procs : 1) / mine;
    for (dl_t *d = p->active; d; d = d->next) {
        if (!bw_capped(d, aggr)) continue;
        d->c.bw_procs = procs;
        fetch_set_max_speed(d->fetch, rate > 0 ? rate : 1);
    }
}

/* A download of a capped aggregation started or ended here: re-divide with the last
 * known number of processors. */
static void bw_local(processor_t *p, const dl_t *changed)
{
    if (changed->c.job.aggr_bandwidth <= 0) return;
    long long procs = changed->c.bw_procs;
    for (dl_t *d = p->active; d; d = d->next)
        if (bw_capped(d, changed->c.job.aggr_id) && d->c.bw_procs > procs) procs = d->c.bw_procs;
    bw_apply(p, changed->c.job.aggr_id, procs);
}

typedef struct {
    processor_t *p;
    char aggr[];
} bw_query_t;

static void on_bw_procs(store_rc_t rc, long long n, void *arg)
{
    bw_query_t *q = arg;
    processor_t *p = q->p;
    p->store_calls--;
    if (rc == STORE_OK) bw_apply(p, q->aggr, n);
    free(q);
    stop_check(p);
}

/* A processor joined or left a capped aggregation: read the count of every capped
 * aggregation running here again. */
static void on_bw_timer(uv_timer_t *t)
{
    processor_t *p = t->data;
    strmap_t seen = {0};
    if (p->stop_begun) return;
    for (dl_t *d = p->active; d; d = d->next) {
        if (!bw_capped(d, d->c.job.aggr_id) || strmap_add(&seen, d->c.job.aggr_id, 1) != 1)
            continue;
        size_t len = strlen(d->c.job.aggr_id) + 1;
        bw_query_t *q = malloc(sizeof *q + len);
        if (!q) continue;
        q->p = p;
        memcpy(q->aggr, d->c.job.aggr_id, len);
        p->store_calls++;
        store_bw_procs(p->store, q->aggr, on_bw_procs, q);
    }
    strmap_free(&seen);
}

/* ---------- claiming ---------- */

/* A wake-up (timer or message) that finds no free slot is kept for the next freed one. */
static void woken(processor_t *p)
{
    p->drained = false;
    maybe_claim(p);
}

static void on_wake_timer(uv_timer_t *t)
{
    woken(t->data);
}

/* Arms the wake timer for the earliest of the next delayed retry, lease deadline and
 * throttled aggregation (its pause ends or its rate allows the next start). The last
 * is a start that must not come late (each late start lowers the rate): 1 ms slack,
 * for the loop's and Redis' clocks turning their milliseconds at different instants,
 * where the others get 5 ms. */
static void arm_wake(processor_t *p, const store_claim_times_t *t)
{
    long long at = 0;
    if (t->next_due > 0) at = t->next_due + 5;
    if (t->next_lease > 0 && (at == 0 || t->next_lease + 5 < at)) at = t->next_lease + 5;
    if (t->next_throttled > 0 && (at == 0 || t->next_throttled + 1 < at))
        at = t->next_throttled + 1;
    if (at == 0) {
        uv_timer_stop(&p->wake);
        return;
    }
    long long in = at - t->now;
    uv_timer_start(&p->wake, on_wake_timer, in < 1 ? 1 : (uint64_t)in, 0);
}

/* A claim can hand back a job this processor is still downloading: its lease expired
 * (Redis was away longer than processor.lease) and claim.lua took it back. The running
 * download keeps the new lease (same member, same owner); a second one would share its
 * temp file (corrupting the stored file) and exceed the aggregation limit. */
static bool running_here(processor_t *p, const store_claimed_t *c)
{
    char member[sizeof((dl_t *)0)->member];
    lease_member(member, sizeof member, &c->job);
    return strmap_get(&p->held, member) > 0;
}

static void on_claimed(store_rc_t rc, store_claimed_t *jobs, size_t n, const store_claim_times_t *t,
                       void *arg)
{
    processor_t *p = arg;
    p->claiming = false;
    p->store_calls--;
    p->drained = rc == STORE_OK && t->ready_left == 0;
    if (rc != STORE_OK) {
        free(jobs);
        if (rc == STORE_ERROR && !p->stopping) uv_timer_start(&p->wake, on_wake_timer, 1000, 0);
        stop_check(p);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (p->stopping)
            record_requeue(dl_new(p, &jobs[i]), "claimed during shutdown");
        else if (running_here(p, &jobs[i]))
            store_claimed_free(&jobs[i]);
        else
            dl_start(p, &jobs[i]);
    }
    free(jobs);
    metrics_rate_waits(t->rate_waits);
    arm_wake(p, t);
    if (n > 0 && !uv_is_active((uv_handle_t *)&p->renew)) {
        uint64_t every = p->cfg->download_lease_ms / 3;
        uv_timer_start(&p->renew, on_renew_timer, every, every);
    }
    if (p->again || n == (size_t)CLAIM_BATCH) {
        p->again = false;
        maybe_claim(p);
    }
    stop_check(p);
}

static void maybe_claim(processor_t *p)
{
    if (p->stopping || p->sick || !store_up(p->store)) return;
    int free_slots = p->cfg->max_concurrency - p->n_active;
    if (free_slots <= 0) return;
    if (p->claiming) {
        p->again = true;
        return;
    }
    p->claiming = true;
    p->again = false;
    p->store_calls++;
    store_claim(p->store, p->app->instance, free_slots < CLAIM_BATCH ? free_slots : CLAIM_BATCH,
                p->cfg->download_lease_ms, MAX_LOST_LEASES, p->cfg->retention_ms, on_claimed, p);
}

static void on_wake(store_wake_t kind, void *arg)
{
    processor_t *p = arg;
    if (kind == STORE_WAKE_BW && !uv_is_active((uv_handle_t *)&p->bw))
        uv_timer_start(&p->bw, on_bw_timer, 0, 0); /* once for a burst of wake-ups */
    if (kind == STORE_WAKE_DL || kind == STORE_WAKE_ALL) woken(p);
}

static void on_state(bool up, void *arg)
{
    processor_t *p = arg;
    if (!up) return;
    for (dl_t *d = p->active, *next; d; d = next) {
        next = d->next;
        if (d->waiting) {
            d->waiting = false;
            finish_send(d);
        }
    }
    /* renew before claiming: a lease that expired while Redis was away is still ours
     * until a claim takes it back, and commands run in order on the connection */
    if (p->n_active > 0) on_renew_timer(&p->renew);
    woken(p);
}

/* ---------- leases ---------- */

/* The lease is gone (lost, or the job cancelled): abort the transfer or upload; fetch
 * removes its temp file. */
static void dl_abandon(dl_t *d)
{
    d->lost = true;
    strmap_add(&d->p->held, d->member, -1);
    if (d->fetch) fetch_cancel(d->fetch);
    if (d->upload) s3_cancel(d->upload);
}

static void on_renewed(store_rc_t rc, const char *const *lost, size_t n, void *arg)
{
    processor_t *p = arg;
    p->store_calls--;
    for (size_t i = 0; rc == STORE_OK && i < n; i++) {
        for (dl_t *d = p->active; d; d = d->next) {
            if (strcmp(d->member, lost[i]) != 0 || d->lost) continue;
            log_warn("processor", "lease lost, abandoning download", "job_id=%s", d->c.job.id);
            dl_abandon(d);
        }
    }
    stop_check(p);
}

/* cancel.lua published "cancel:<id>": abort it if it runs here; otherwise drop the
 * partial file an earlier attempt may have kept here for a resume (nobody resumes a
 * cancelled job). */
static void on_cancel(const char *id, void *arg)
{
    processor_t *p = arg;
    bool running = false;
    for (dl_t *d = p->active; d; d = d->next) {
        if (strcmp(d->c.job.id, id) != 0) continue;
        running = true;
        if (d->lost) continue;
        log_info("processor", "job cancelled, aborting download", "job_id=%s", id);
        d->cancelled = true;
        dl_abandon(d);
    }
    char *tmp = NULL;
    if (!running && job_id_valid(id, strlen(id)) &&
        asprintf(&tmp, "%s/%s.tmp", p->cfg->storage_dir, id) >= 0) {
        files_unlink(p->app->loop, tmp, NULL, NULL);
        free(tmp);
    }
}

static void on_renew_timer(uv_timer_t *t)
{
    processor_t *p = t->data;
    if (p->n_active == 0) {
        uv_timer_stop(t);
        return;
    }
    const char **members = calloc((size_t)p->n_active + 1, sizeof *members);
    size_t n = 0;
    for (dl_t *d = p->active; d; d = d->next)
        if (!d->lost) members[n++] = d->member;
    if (n) {
        p->store_calls++;
        store_renew(p->store, p->app->instance, p->cfg->download_lease_ms, members, n, on_renewed,
                    p);
    }
    free(members);
}

/* ---------- disk guard ---------- */

static void on_usage(int pct, void *arg)
{
    processor_t *p = arg;
    if (pct < 0) {
        log_warn("processor", "disk check failed", "dir=%s error=%s", log_q(p->cfg->storage_dir),
                 log_q(strerror(-pct)));
        return;
    }
    stats_gauge(p->stats, "diskUsage", pct);
    if (!p->sick && pct > p->cfg->disk_high) {
        p->sick = true;
        log_warn("processor", "disk above high watermark, pausing claims", "usage=%d", pct);
    } else if (p->sick && pct <= p->cfg->disk_low) {
        p->sick = false;
        log_info("processor", "disk below low watermark, resuming", "usage=%d", pct);
        maybe_claim(p);
    }
}

static void on_disk_timer(uv_timer_t *t)
{
    processor_t *p = t->data;
    files_disk_usage(p->app->loop, p->cfg->storage_dir, on_usage, p);
}

static void on_swept(int removed, void *arg)
{
    (void)arg;
    if (removed > 0) log_info("processor", "removed stale temp files", "count=%d", removed);
}

/* ---------- orphaned partial files ---------- */

/* A temp file untouched for longer than any live transfer may stall is no running
 * transfer's: at start every such file goes, later only orphans (below). */
static long stale_tmp_s(const config_t *cfg)
{
    return (long)((cfg->low_speed_time_ms + 2 * cfg->download_lease_ms) / 1000);
}

/* One round of the periodic sweep of partial files kept for a resume
 * (processor.tmp_sweep_interval). A kept <id>.tmp becomes an orphan when its job will
 * not come back to this host: it finished elsewhere, was purged, expired or deleted.
 * The round lists the stale temp files (files_list_tmp, the start-up sweep's test),
 * asks Redis in batches which of their jobs can no longer resume
 * (store_tmp_orphans: no hash, Success, Failed, Cancelled; Pending and InProgress
 * keep theirs, however long the retry is delayed), and removes those on the pool;
 * files of downloads running here are left out before asking and again before
 * removing, and a file written to meanwhile is no longer stale and stays. A round
 * whose Redis call fails removes nothing. */
typedef struct {
    processor_t *p;
    char **names; /* the stale temp files listed (owned) */
    size_t n_names;
    const char **ids;      /* of those, the candidates (into names) */
    size_t n, from, asked; /* the batch asked about last: ids[from..asked) */
    const char **gone;     /* the orphans Redis named (into names) */
    size_t n_gone;
} sweep_t;

/* Keeps the ids of ids[0..n) that are job ids and no download running here has (their
 * files are theirs, however old; other names are left to the start-up sweep);
 * returns their number. */
static size_t sweep_idle(processor_t *p, const char **ids, size_t n)
{
    strmap_t running = {0};
    size_t kept = 0;
    for (dl_t *d = p->active; d; d = d->next)
        strmap_add(&running, d->c.job.id, 1);
    for (size_t i = 0; i < n; i++)
        if (job_id_valid(ids[i], strlen(ids[i])) && !strmap_get(&running, ids[i]))
            ids[kept++] = ids[i];
    strmap_free(&running);
    return kept;
}

static void sweep_end(sweep_t *sw)
{
    processor_t *p = sw->p;
    files_names_free(sw->names, sw->n_names);
    free(sw->ids);
    free(sw->gone);
    free(sw);
    p->sweeping = false;
    stop_check(p);
}

static void on_orphans_removed(int removed, uint64_t bytes, void *arg)
{
    sweep_t *sw = arg;
    if (removed > 0) {
        log_info("processor", "removed orphaned partial files", "count=%d bytes=%llu", removed,
                 (unsigned long long)bytes);
        stats_incr(sw->p->stats, "orphanedTmpRemoved", removed);
    }
    sweep_end(sw);
}

static void sweep_remove(sweep_t *sw)
{
    processor_t *p = sw->p;
    /* a job may have been claimed here again meanwhile (a failed one retried) */
    sw->n_gone = sweep_idle(p, sw->gone, sw->n_gone);
    if (sw->n_gone == 0 || files_remove_tmp(p->app->loop, p->cfg->storage_dir, sw->gone, sw->n_gone,
                                            stale_tmp_s(p->cfg), on_orphans_removed, sw) < 0)
        sweep_end(sw);
}

static void sweep_ask(sweep_t *sw);

static void on_orphans(store_rc_t rc, const char *const *ids, size_t n, void *arg)
{
    sweep_t *sw = arg;
    if (rc != STORE_OK) { /* never without Redis' answer: the next round asks again */
        sweep_end(sw);
        return;
    }
    /* the script answers a subset of the batch in its order: point into names */
    size_t j = sw->from;
    for (size_t i = 0; i < n; i++) {
        while (j < sw->asked && strcmp(sw->ids[j], ids[i]) != 0)
            j++;
        if (j < sw->asked) sw->gone[sw->n_gone++] = sw->ids[j++];
    }
    if (sw->asked < sw->n && !sw->p->stopping)
        sweep_ask(sw);
    else if (sw->p->stopping)
        sweep_end(sw);
    else
        sweep_remove(sw);
}

/* Asks about the next batch of at most STORE_ORPHANS_BATCH ids. */
static void sweep_ask(sweep_t *sw)
{
    size_t k = sw->n - sw->asked;
    if (k > STORE_ORPHANS_BATCH) k = STORE_ORPHANS_BATCH;
    sw->from = sw->asked;
    sw->asked += k;
    store_tmp_orphans(sw->p->store, sw->ids + sw->from, k, on_orphans, sw);
}

static void on_tmp_listed(int err, char **names, size_t n, void *arg)
{
    processor_t *p = arg;
    sweep_t *sw = calloc(1, sizeof *sw);
    if (!sw) {
        files_names_free(names, n);
        p->sweeping = false;
        stop_check(p);
        return;
    }
    *sw = (sweep_t){.p = p, .names = names, .n_names = n};
    if (err < 0)
        log_warn("processor", "temp file sweep failed", "dir=%s error=%s",
                 log_q(p->cfg->storage_dir), log_q(strerror(-err)));
    sw->ids = n ? malloc(n * sizeof *sw->ids) : NULL;
    sw->gone = n ? malloc(n * sizeof *sw->gone) : NULL;
    for (size_t i = 0; sw->ids && sw->gone && i < n; i++)
        sw->ids[sw->n++] = names[i];
    sw->n = sweep_idle(p, sw->ids, sw->n);
    if (sw->n == 0 || p->stopping || !store_up(p->store))
        sweep_end(sw);
    else
        sweep_ask(sw);
}

/* Idle cost: one readdir per interval; nothing while Redis is away. */
static void on_sweep_timer(uv_timer_t *t)
{
    processor_t *p = t->data;
    if (p->sweeping || p->stopping || !store_up(p->store)) return;
    p->sweeping = true;
    if (files_list_tmp(p->app->loop, p->cfg->storage_dir, stale_tmp_s(p->cfg), on_tmp_listed, p) <
        0)
        p->sweeping = false;
}

/* ---------- stats ---------- */

static void refresh_stats(stats_t *s, void *arg)
{
    processor_t *p = arg;
    stats_gauge(s, "workers", p->n_active);
    stats_gauge(s, "workerPools", (long long)strmap_size(&p->per_aggr));
}

/* The slowest running downloads for the dashboard's in-flight panel. */
static void extra_inflight(yajl_gen g, void *arg)
{
    processor_t *p = arg;
    dl_t *top[INFLIGHT_REPORT];
    size_t n = 0;
    for (dl_t *d = p->active; d; d = d->next) {
        if (d->phase != PH_FETCH || !d->fetch) continue;
        size_t i = n < INFLIGHT_REPORT ? n++ : INFLIGHT_REPORT;
        while (i > 0 && top[i - 1]->started > d->started) {
            if (i < INFLIGHT_REPORT) top[i] = top[i - 1];
            i--;
        }
        if (i < INFLIGHT_REPORT) top[i] = d;
    }
    uint64_t now = uv_now(p->app->loop);
    json_kv_str(g, "inflight_sample", "slowest");
    json_str(g, "inflight");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < n; i++) {
        uint64_t got, kept;
        int64_t total;
        fetch_progress(top[i]->fetch, &got, &total, &kept);
        yajl_gen_map_open(g);
        json_kv_str(g, "id", top[i]->c.job.id);
        json_kv_str(g, "url", log_redact_url(top[i]->c.job.url));
        json_kv_str(g, "aggr", top[i]->c.job.aggr_id);
        json_kv_int(g, "elapsed_ms", (long long)(now - top[i]->started));
        json_kv_int(g, "bytes", (long long)got);
        json_kv_int(g, "total", (long long)total);
        json_kv_int(g, "kept", (long long)kept);
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
}

/* ---------- start / stop ---------- */

static int check_storage(const config_t *cfg, char *err, size_t errlen)
{
    char path[PATH_MAX];
    if (mkdir(cfg->storage_dir, 0755) < 0 && errno != EEXIST) goto bad;
    snprintf(path, sizeof path, "%s/write-check-XXXXXX", cfg->storage_dir);
    int fd = mkstemp(path);
    if (fd < 0) goto bad;
    ssize_t w = write(fd, "x", 1);
    close(fd);
    unlink(path);
    if (w != 1) goto bad;
    if (cfg->fs_rootdir && mkdir(cfg->fs_rootdir, 0755) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "config: processor.filestorage.rootdir %s cannot be created: %s",
                 cfg->fs_rootdir, strerror(errno));
        return -1;
    }
    return 0;
bad:
    snprintf(err, errlen,
             "config: processor.storage_dir %s is not writable: %s (Error verifying storage "
             "directory is writable)",
             cfg->storage_dir, strerror(errno));
    return -1;
}

/* The S3 client (per-job buckets may come with any store) and, for an S3 store, its
 * bucket, region, credentials and reap queue ("reap:s3:<bucket URL>"). */
static int open_s3(processor_t *p, char *err, size_t errlen)
{
    const config_t *cfg = p->cfg;
    char url[600], id[700];
    p->s3_store = strcmp(cfg->fs_type, "s3") == 0;
    p->s3_region = cfg->s3_region && *cfg->s3_region ? cfg->s3_region : "us-east-1";
    if (p->s3_store && !s3_valid_bucket(cfg->s3_bucket)) {
        snprintf(err, errlen,
                 "config: processor.filestorage.bucket \"%s\" is not a valid S3 bucket name",
                 cfg->s3_bucket);
        return -1;
    }
    if (p->s3_store && !s3_valid_region(p->s3_region)) {
        snprintf(err, errlen, "config: processor.filestorage.region \"%s\" is not a valid region",
                 p->s3_region);
        return -1;
    }
    s3_opts_t o = {
        .endpoint = cfg->s3_endpoint,
        .path_style = cfg->s3_path_style,
        .access_key = cfg->s3_access_key,
        .secret_key = cfg->s3_secret_key,
        .require_credentials = p->s3_store,
        .multipart_threshold = cfg->s3_multipart_threshold,
        .part_size = cfg->s3_part_size,
        .connect_timeout_ms = (long)cfg->connect_timeout_ms,
        .low_speed_limit = cfg->low_speed_limit,
        .low_speed_time_s = (long)((cfg->low_speed_time_ms + 999) / 1000),
        .max_host_connections = S3_HOST_CONNECTIONS,
    };
    p->s3 = s3_new(p->app->loop, &o, err, errlen);
    if (!p->s3) return -1;
    if (p->s3_store) {
        s3_bucket_url(p->s3, cfg->s3_bucket, p->s3_region, url, sizeof url);
        snprintf(id, sizeof id, "s3:%s", url);
        store_reap_key(p->reap_key, sizeof p->reap_key, id);
        log_info("processor", "storing files in S3", "bucket=%s region=%s url=%s", cfg->s3_bucket,
                 p->s3_region, log_q(url));
    } else {
        store_reap_key(p->reap_key, sizeof p->reap_key, cfg->download_url);
    }
    return 0;
}

static void timer_init(processor_t *p, uv_timer_t *t)
{
    uv_timer_init(p->app->loop, t);
    t->data = p;
}

processor_t *processor_start(app_t *app, char *err, size_t errlen)
{
    const config_t *cfg = &app->cfg;
    if (check_storage(cfg, err, errlen) < 0) return NULL;
    processor_t *p = calloc(1, sizeof *p);
    p->app = app;
    p->cfg = cfg;
    p->store = app->store;
    p->mime = mime_open(err, errlen);
    if (!p->mime || open_s3(p, err, errlen) < 0) {
        if (p->mime) mime_close(p->mime);
        free(p);
        return NULL;
    }
    p->curlm = curlm_new(app->loop, 0);
    p->fopts = (fetch_opts_t){
        .connect_timeout_ms = (long)cfg->connect_timeout_ms,
        .default_timeout_s = 0,
        .low_speed_limit = cfg->low_speed_limit,
        .low_speed_time_s = (long)((cfg->low_speed_time_ms + 999) / 1000),
        .max_file_size = cfg->max_file_size,
        .default_headers = &cfg->request_headers,
        .block_private_networks = cfg->block_private_networks,
        .allow_cidrs = (const char *const *)cfg->allow_cidrs,
        .n_allow_cidrs = cfg->n_allow_cidrs,
    };
    p->stats = stats_new(app, "processor", cfg->processor_stats_interval_ms);
    stats_on_publish(p->stats, refresh_stats, extra_inflight, p);
    timer_init(p, &p->wake);
    timer_init(p, &p->renew);
    timer_init(p, &p->disk);
    timer_init(p, &p->grace);
    timer_init(p, &p->bw);
    timer_init(p, &p->sweep);
    uint64_t every = cfg->download_lease_ms / 3;
    uv_timer_start(&p->renew, on_renew_timer, every, every);
    uv_timer_start(&p->disk, on_disk_timer, 0, cfg->disk_check_interval_ms);
    p->reaper = reaper_start(app, p->reap_key, p->stats, p->s3_store ? p->s3 : NULL, cfg->s3_bucket,
                             p->s3_region);
    files_sweep_tmp(app->loop, cfg->storage_dir, stale_tmp_s(cfg), on_swept, p);
    uv_timer_start(&p->sweep, on_sweep_timer, cfg->tmp_sweep_interval_ms,
                   cfg->tmp_sweep_interval_ms);
    store_on_wake(p->store, on_wake, p);
    store_on_cancel(p->store, on_cancel, p);
    store_on_state(p->store, on_state, p);
    log_info("processor", "started", "instance=%s max_concurrency=%d", app->instance,
             cfg->max_concurrency);
    maybe_claim(p);
    return p;
}

static void on_handle_closed(uv_handle_t *h)
{
    processor_t *p = h->data;
    if (--p->open_handles > 0) return;
    void (*cb)(void *) = p->stopped;
    void *arg = p->stopped_arg;
    strmap_free(&p->per_aggr);
    strmap_free(&p->held);
    free(p);
    if (cb) cb(arg);
}

static void on_curlm_closed(void *arg)
{
    processor_t *p = arg;
    uv_timer_t *timers[] = {&p->wake, &p->renew, &p->disk, &p->grace, &p->bw, &p->sweep};
    p->open_handles = 6;
    for (int i = 0; i < 6; i++)
        uv_close((uv_handle_t *)timers[i], on_handle_closed);
}

static void on_s3_closed(void *arg)
{
    processor_t *p = arg;
    curlm_close(p->curlm, on_curlm_closed, p);
}

static void on_reaper_stopped(void *arg)
{
    processor_t *p = arg;
    stats_close(p->stats);
    mime_close(p->mime);
    s3_close(p->s3, on_s3_closed, p);
}

static void stop_check(processor_t *p)
{
    if (!p->stopping || p->n_active > 0 || p->store_calls > 0 || p->sweeping || p->stop_begun)
        return;
    p->stop_begun = true;
    uv_timer_stop(&p->grace);
    uv_timer_stop(&p->renew);
    uv_timer_stop(&p->bw);
    reaper_stop(p->reaper, on_reaper_stopped, p);
}

static void on_grace(uv_timer_t *t)
{
    processor_t *p = t->data;
    log_info("processor", "grace period over, requeueing running downloads", "running=%d",
             p->n_active);
    for (dl_t *d = p->active; d; d = d->next) {
        if (d->fetch) fetch_cancel(d->fetch);
        if (d->upload) s3_cancel(d->upload);
    }
}

void processor_stop(processor_t *p, void (*done)(void *arg), void *arg)
{
    p->stopping = true;
    store_forget(p->store, p);
    p->stopped = done;
    p->stopped_arg = arg;
    uv_timer_stop(&p->wake);
    uv_timer_stop(&p->disk);
    uv_timer_stop(&p->sweep);
    log_info("processor", "stopping", "running=%d grace_ms=%llu", p->n_active,
             (unsigned long long)p->cfg->processor_shutdown_grace_ms);
    for (dl_t *d = p->active, *next; d; d = next) {
        next = d->next;
        if (d->waiting) dl_done(d); /* live_stop releases its lease */
    }
    uv_timer_start(&p->grace, on_grace, p->cfg->processor_shutdown_grace_ms, 0);
    stop_check(p);
}
