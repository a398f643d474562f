/* notifier: the callback side. It claims ready callbacks with store_cb_claim (lease per
 * callback, so a killed notifier's work comes back without any keyspace scan), builds
 * the §7.3 payload, sends it through the job's backend (backend.h: http or kafka) and
 * records the outcome with store_cb_finish: delivered (the job leaves Redis and its
 * file deletion is scheduled), retried later with backoff, or Failed after the last
 * attempt. Wakes on pub/sub and on timers at the next due retry or lease deadline. */
#include "notifier.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backoff.h"
#include "curlm.h"
#include "log.h"
#include "metrics.h"
#include "stats.h"

#define CLAIM_BATCH 128
#define RETRY_CAP_MS (6ULL * 3600 * 1000)

typedef struct cbjob cbjob_t;

struct notifier {
    app_t *app;
    const config_t *cfg;
    store_t *store;
    curlm_t *curlm;
    backend_t *http, *kafka;
    stats_t *stats;
    cbjob_t *active;
    int n_active;
    bool claiming, again, stopping, stop_begun;
    int store_calls; /* claim/renew replies outstanding: the notifier outlives them */
    uv_timer_t wake, renew, grace;
    int open_handles, closing_backends;
    void (*stopped)(void *);
    void *stopped_arg;
};

struct cbjob {
    notifier_t *n;
    job_t job;
    bool sending, lost, abandoned, waiting;
    uint64_t started; /* delivery start (loop ms), for metrics */
    store_cb_op_t op;
    uint64_t delay;
    char **kv;
    cbjob_t *prev, *next;
};

static void maybe_claim(notifier_t *n);
static void stop_check(notifier_t *n);

/* ---------- bookkeeping ---------- */

static void kv_free(char **kv)
{
    for (size_t i = 0; kv && kv[i]; i++)
        free(kv[i]);
    free(kv);
}

static void cj_free(cbjob_t *c)
{
    job_free(&c->job);
    kv_free(c->kv);
    free(c);
}

static void cj_unlink(cbjob_t *c)
{
    notifier_t *n = c->n;
    if (c->prev)
        c->prev->next = c->next;
    else
        n->active = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    n->n_active--;
}

static void cj_done(cbjob_t *c)
{
    notifier_t *n = c->n;
    cj_unlink(c);
    cj_free(c);
    if (n->stopping)
        stop_check(n);
    else
        maybe_claim(n);
}

/* ---------- recording outcomes ---------- */

static void finish_send(cbjob_t *c);

static void on_finished(store_rc_t rc, const char *err, void *arg)
{
    cbjob_t *c = arg;
    if (rc == STORE_DOWN && !c->n->stopping) {
        c->waiting = true;
        return;
    }
    if (rc == STORE_CONFLICT)
        log_warn("notifier", "callback lease lost before the outcome was recorded", "job_id=%s",
                 c->job.id);
    else if (rc != STORE_OK)
        log_error("notifier", "could not record callback outcome", "job_id=%s error=%s", c->job.id,
                  log_q(err ? err : "redis unavailable"));
    cj_done(c);
}

static void finish_send(cbjob_t *c)
{
    notifier_t *n = c->n;
    store_cb_finish(n->store, c->job.id, n->app->instance, c->op, c->delay, n->cfg->retention_ms,
                    n->cfg->deletion_interval_ms, (const char *const *)c->kv, on_finished, c);
}

static void finish(cbjob_t *c, store_cb_op_t op, uint64_t delay, const char *const *kv)
{
    size_t k = 0;
    while (kv && kv[k])
        k++;
    c->kv = calloc(k + 1, sizeof *c->kv);
    for (size_t i = 0; i < k; i++)
        c->kv[i] = strdup(kv[i]);
    c->op = op;
    c->delay = delay;
    metrics_callback(&c->job, op, uv_now(c->n->app->loop) - c->started);
    if (c->lost || c->abandoned) {
        cj_done(c);
        return;
    }
    finish_send(c);
}

static void retry_or_fail(cbjob_t *c, const char *error, long retry_after_ms)
{
    notifier_t *n = c->n;
    int count = c->job.callback_count + 1;
    char cnt[16];
    snprintf(cnt, sizeof cnt, "%d", count);
    if (count >= n->cfg->callback_max_attempts) {
        stats_incr(n->stats, "failedCallbacks", 1);
        log_info("notifier", "callback failed", "job_id=%s attempts=%d error=%s", c->job.id, count,
                 log_q(error));
        const char *kv[] = {"CallbackState", "Failed", "CallbackCount", cnt, "CallbackMeta",
                            error,           NULL};
        finish(c, STORE_CB_FAILED, 0, kv);
        return;
    }
    uint64_t delay = backoff_delay(n->cfg->callback_retry_base_ms, count, RETRY_CAP_MS);
    if (retry_after_ms > 0 && (uint64_t)retry_after_ms > delay) delay = (uint64_t)retry_after_ms;
    stats_incr(n->stats, "retriedCallbacks", 1);
    log_info("notifier", "callback failed, retrying", "job_id=%s attempt=%d delay_ms=%llu error=%s",
             c->job.id, count, (unsigned long long)delay, log_q(error));
    const char *kv[] = {"CallbackState", "Pending", "CallbackCount", cnt, "CallbackMeta",
                        error,           NULL};
    finish(c, STORE_CB_DELAY, delay, kv);
}

/* ---------- delivery ---------- */

static void on_sent(const backend_result_t *res, void *arg)
{
    cbjob_t *c = arg;
    notifier_t *n = c->n;
    c->sending = false;
    if (c->abandoned) { /* handed back at the end of the grace period; no longer listed */
        cj_free(c);
        return;
    }
    if (res->ok) {
        stats_incr(n->stats, "successfulCallbacks", 1);
        finish(c, STORE_CB_DELIVERED, 0, NULL);
        return;
    }
    if (res->unknown_topic) stats_incr(n->stats, "unknownTopicOrPartition", 1);
    retry_or_fail(c, res->error, res->retry_after_ms);
}

static backend_t *pick_backend(notifier_t *n, const job_t *j, const char **dst)
{
    if (j->callback_url && *j->callback_url) {
        *dst = j->callback_url;
        return n->http;
    }
    *dst = j->callback_dst;
    const char *type = j->callback_type ? j->callback_type : "";
    if (strcmp(type, "http") == 0) return n->http;
    if (strcmp(type, "kafka") == 0) return n->kafka;
    return NULL;
}

static void deliver(cbjob_t *c)
{
    notifier_t *n = c->n;
    job_t *j = &c->job;
    size_t len;
    c->started = uv_now(n->app->loop);
    char *payload = job_callback_payload(j, &len);
    if (!payload) { /* W14: nothing is sent for a job in an invalid state */
        char msg[128];
        snprintf(msg, sizeof msg, "Invalid job download state: '%s'",
                 job_dl_state_name(j->download_state));
        const char *kv[] = {"CallbackState", "Failed", "CallbackMeta", msg, NULL};
        stats_incr(n->stats, "failedCallbacks", 1);
        finish(c, STORE_CB_FAILED, 0, kv);
        return;
    }
    const char *dst;
    backend_t *b = pick_backend(n, j, &dst);
    if (!b) {
        char msg[2048], js[1536];
        stats_incr(n->stats, "undefinedBackendWithCallback", 1);
        snprintf(msg, sizeof msg, "Undefined backend %s for job %s",
                 j->callback_type ? j->callback_type : "", job_to_string(j, js, sizeof js));
        free(payload);
        retry_or_fail(c, msg, 0);
        return;
    }
    c->sending = true;
    if (backend_send(b, dst, j->id, payload, len, on_sent, c) < 0) {
        c->sending = false;
        retry_or_fail(c, "backend is shutting down", 0);
    }
    free(payload);
}

/* ---------- claiming ---------- */

static void on_wake_timer(uv_timer_t *t)
{
    maybe_claim(t->data);
}

static void arm_wake(notifier_t *n, long long next_due, long long next_lease, long long now)
{
    long long at = next_due;
    if (next_lease > 0 && (at == 0 || next_lease < at)) at = next_lease;
    if (at <= 0) {
        uv_timer_stop(&n->wake);
        return;
    }
    long long in = at - now + 5;
    uv_timer_start(&n->wake, on_wake_timer, in < 1 ? 1 : (uint64_t)in, 0);
}

static void on_renew_timer(uv_timer_t *t);

static void on_claimed(store_rc_t rc, job_t *jobs, size_t count, long long next_due,
                       long long next_lease, long long now, void *arg)
{
    notifier_t *n = arg;
    n->claiming = false;
    n->store_calls--;
    if (rc != STORE_OK) {
        free(jobs);
        if (rc == STORE_ERROR && !n->stopping) uv_timer_start(&n->wake, on_wake_timer, 1000, 0);
        stop_check(n);
        return;
    }
    for (size_t i = 0; i < count; i++) {
        cbjob_t *c = calloc(1, sizeof *c);
        c->n = n;
        c->job = jobs[i];
        c->next = n->active;
        if (n->active) n->active->prev = c;
        n->active = c;
        n->n_active++;
        if (n->stopping) {
            const char *kv[] = {"CallbackState", "Pending", NULL};
            finish(c, STORE_CB_REQUEUE, 0, kv);
        } else {
            deliver(c);
        }
    }
    free(jobs);
    arm_wake(n, next_due, next_lease, now);
    if (count > 0 && !uv_is_active((uv_handle_t *)&n->renew)) {
        uint64_t every = n->cfg->callback_lease_ms / 3;
        uv_timer_start(&n->renew, on_renew_timer, every, every);
    }
    if (n->again || count == (size_t)CLAIM_BATCH) {
        n->again = false;
        maybe_claim(n);
    }
    stop_check(n);
}

static void maybe_claim(notifier_t *n)
{
    if (n->stopping || !store_up(n->store)) return;
    int free_slots = n->cfg->notifier_concurrency - n->n_active;
    if (free_slots <= 0) return;
    if (n->claiming) {
        n->again = true;
        return;
    }
    n->claiming = true;
    n->again = false;
    n->store_calls++;
    store_cb_claim(n->store, n->app->instance, free_slots < CLAIM_BATCH ? free_slots : CLAIM_BATCH,
                   n->cfg->callback_lease_ms, on_claimed, n);
}

static void on_wake(store_wake_t kind, void *arg)
{
    if (kind == STORE_WAKE_CB || kind == STORE_WAKE_ALL) maybe_claim(arg);
}

static void on_state(bool up, void *arg)
{
    notifier_t *n = arg;
    if (!up) return;
    for (cbjob_t *c = n->active, *next; c; c = next) {
        next = c->next;
        if (c->waiting) {
            c->waiting = false;
            finish_send(c);
        }
    }
    maybe_claim(n);
}

/* ---------- leases ---------- */

static void on_renewed(store_rc_t rc, const char *const *lost, size_t count, void *arg)
{
    notifier_t *n = arg;
    n->store_calls--;
    for (size_t i = 0; rc == STORE_OK && i < count; i++)
        for (cbjob_t *c = n->active; c; c = c->next)
            if (strcmp(c->job.id, lost[i]) == 0) c->lost = true;
    stop_check(n);
}

static void on_renew_timer(uv_timer_t *t)
{
    notifier_t *n = t->data;
    if (n->n_active == 0) {
        uv_timer_stop(t);
        return;
    }
    const char **ids = calloc((size_t)n->n_active + 1, sizeof *ids);
    size_t k = 0;
    for (cbjob_t *c = n->active; c; c = c->next)
        if (!c->lost && !c->abandoned) ids[k++] = c->job.id;
    if (k) {
        n->store_calls++;
        store_cb_renew(n->store, n->app->instance, n->cfg->callback_lease_ms, ids, k, on_renewed,
                       n);
    }
    free(ids);
}

/* ---------- start / stop ---------- */

static void timer_init(notifier_t *n, uv_timer_t *t)
{
    uv_timer_init(n->app->loop, t);
    t->data = n;
}

static void refresh_stats(stats_t *s, void *arg)
{
    notifier_t *n = arg;
    stats_gauge(s, "inflightCallbacks", n->n_active);
}

static void on_backend_closed(void *arg);

notifier_t *notifier_start(app_t *app, char *err, size_t errlen)
{
    const config_t *cfg = &app->cfg;
    notifier_t *n = calloc(1, sizeof *n);
    n->app = app;
    n->cfg = cfg;
    n->store = app->store;
    n->curlm = curlm_new(app->loop, 0);
    timer_init(n, &n->wake);
    timer_init(n, &n->renew);
    timer_init(n, &n->grace);
    if ((cfg->http_enabled &&
         !(n->http = backend_http_new(app->loop, n->curlm, cfg, err, errlen))) ||
        (cfg->kafka_enabled && !(n->kafka = backend_kafka_new(app->loop, cfg, err, errlen)))) {
        /* release what was created, through the normal close chain */
        n->stop_begun = true;
        n->closing_backends = 1 + (n->http != NULL);
        if (n->http) backend_close(n->http, on_backend_closed, n);
        on_backend_closed(n);
        return NULL;
    }
    n->stats = stats_new(app, "notifier", cfg->notifier_stats_interval_ms);
    stats_on_publish(n->stats, refresh_stats, NULL, n);
    store_on_wake(n->store, on_wake, n);
    store_on_state(n->store, on_state, n);
    log_info("notifier", "started", "instance=%s concurrency=%d http=%d kafka=%d", app->instance,
             cfg->notifier_concurrency, cfg->http_enabled, cfg->kafka_enabled);
    maybe_claim(n);
    return n;
}

static void on_handle_closed(uv_handle_t *h)
{
    notifier_t *n = h->data;
    if (--n->open_handles > 0) return;
    void (*cb)(void *) = n->stopped;
    void *arg = n->stopped_arg;
    free(n);
    if (cb) cb(arg);
}

static void on_curlm_closed(void *arg)
{
    notifier_t *n = arg;
    uv_timer_t *timers[] = {&n->wake, &n->renew, &n->grace};
    n->open_handles = 3;
    for (int i = 0; i < 3; i++)
        uv_close((uv_handle_t *)timers[i], on_handle_closed);
}

static void on_backend_closed(void *arg)
{
    notifier_t *n = arg;
    if (--n->closing_backends > 0) return;
    curlm_close(n->curlm, on_curlm_closed, n);
}

static void stop_check(notifier_t *n)
{
    if (!n->stopping || n->n_active > 0 || n->store_calls > 0 || n->stop_begun) return;
    n->stop_begun = true;
    uv_timer_stop(&n->grace);
    uv_timer_stop(&n->renew);
    stats_close(n->stats);
    n->closing_backends = 1 + (n->http != NULL) + (n->kafka != NULL);
    if (n->http) backend_close(n->http, on_backend_closed, n);
    if (n->kafka) backend_close(n->kafka, on_backend_closed, n);
    on_backend_closed(n);
}

/* Grace over: callbacks still sending are handed back at once (at-least-once: the
 * receiver may still get this attempt, and the job id lets it deduplicate). */
static void on_grace(uv_timer_t *t)
{
    notifier_t *n = t->data;
    for (cbjob_t *c = n->active, *next; c; c = next) {
        next = c->next;
        if (!c->sending || c->abandoned) continue;
        const char *kv[] = {"CallbackState", "Pending", NULL};
        c->abandoned = true;
        store_cb_finish(n->store, c->job.id, n->app->instance, STORE_CB_REQUEUE, 0, 0, 0, kv, NULL,
                        NULL);
        cj_unlink(c); /* freed by on_sent when the backend lets go of it */
    }
    stop_check(n);
}

void notifier_stop(notifier_t *n, void (*done)(void *arg), void *arg)
{
    n->stopping = true;
    store_forget(n->store, n);
    n->stopped = done;
    n->stopped_arg = arg;
    uv_timer_stop(&n->wake);
    log_info("notifier", "stopping", "running=%d", n->n_active);
    for (cbjob_t *c = n->active, *next; c; c = next) {
        next = c->next;
        if (c->waiting) cj_done(c);
    }
    uv_timer_start(&n->grace, on_grace, n->cfg->notifier_shutdown_grace_ms, 0);
    stop_check(n);
}
