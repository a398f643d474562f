/* reaper: part of the processor. It leases due entries of its store's reap queue
 * (store_reap_claim), unlinks the files on the thread pool (files_unlink), or deletes
 * the objects of an S3 store (s3_delete_object; a missing object counts), and confirms
 * only the deletions that worked (store_reap_done); an unconfirmed entry comes back
 * when its lease ends (or at once when this instance dies: the entries it holds are
 * recorded under its instance id for live.lua), so a failed delete is retried, never
 * dropped (W21). It sleeps
 * until the queue's next due time or a pub/sub wake-up. */
#include "reaper.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "files.h"
#include "log.h"
#include "s3.h"

#define REAP_BATCH 100
#define REAP_LEASE_MS 60000
#define REAP_RETRY_MS 5000

struct reaper {
    app_t *app;
    stats_t *stats;
    char queue[PATH_MAX];
    s3_t *s3; /* NULL: the filesystem store */
    char *bucket, *region;
    uv_timer_t timer;
    bool busy, again, stopping;
    void (*stopped)(void *);
    void *stopped_arg;
};

typedef struct {
    reaper_t *r;
    long long deadline;
    size_t pending, n_ok;
    char **ids;
    char **ok;
} batch_t;

static void reap(reaper_t *r);

static void finish_stop(reaper_t *r);

static void on_timer(uv_timer_t *t)
{
    reap(t->data);
}

static void on_confirmed(store_rc_t rc, const char *err, void *arg)
{
    (void)err;
    batch_t *b = arg;
    reaper_t *r = b->r;
    if (rc == STORE_OK) stats_incr(r->stats, "reaperSuccessfulDeletions", (long long)b->n_ok);
    for (size_t i = 0; b->ids[i]; i++)
        free(b->ids[i]);
    free(b->ids);
    free(b->ok);
    free(b);
    r->busy = false;
    /* claim again: more may be due (a full batch), and otherwise the answer arms the
     * timer for the next due entry, which the claim of this batch did not */
    if (r->stopping)
        finish_stop(r);
    else
        reap(r);
}

typedef struct {
    batch_t *b;
    size_t i;
} item_t;

static void item_done(item_t *it, const char *error)
{
    batch_t *b = it->b;
    if (error) {
        stats_incr(b->r->stats, "reaperFailures", 1);
        log_warn("reaper", "could not delete file, will retry", "job_id=%s error=%s", b->ids[it->i],
                 log_q(error));
    } else {
        b->ok[b->n_ok++] = b->ids[it->i];
    }
    free(it);
    if (--b->pending > 0) return;
    if (b->n_ok == 0) {
        on_confirmed(STORE_OK, NULL, b);
        return;
    }
    store_reap_done(b->r->app->store, b->r->queue, b->r->app->instance, b->deadline,
                    (const char *const *)b->ok, b->n_ok, on_confirmed, b);
}

static void on_unlinked(const files_result_t *res, void *arg)
{
    item_done(arg, res->err ? res->detail : NULL);
}

static void on_object_deleted(const s3_result_t *res, void *arg)
{
    item_done(arg, res->ok ? NULL : res->detail);
}

/* Deletes one job's file or object; the outcome comes to item_done. */
static void delete_one(reaper_t *r, item_t *it, const char *id)
{
    char path[PATH_MAX];
    if (r->s3) {
        s3_loc_t loc = {r->bucket, r->region, path};
        s3_job_key(path, sizeof path, id);
        if (!s3_delete_object(r->s3, &loc, on_object_deleted, it)) item_done(it, "out of memory");
        return;
    }
    files_job_path(path, sizeof path, r->app->cfg.fs_rootdir, id);
    if (files_unlink(r->app->loop, path, on_unlinked, it) < 0)
        item_done(it, "could not queue work");
}

static void on_claimed(store_rc_t rc, const char *const *ids, size_t n, long long deadline,
                       long long next_due, void *arg)
{
    reaper_t *r = arg;
    r->again = false;
    if (rc != STORE_OK || n == 0) {
        r->busy = false;
        if (r->stopping) {
            finish_stop(r);
            return;
        }
        if (rc == STORE_ERROR) uv_timer_start(&r->timer, on_timer, REAP_RETRY_MS, 0);
        if (rc == STORE_OK && next_due > 0) {
            long long now = (long long)app_now_ms();
            uv_timer_start(&r->timer, on_timer, next_due > now ? (uint64_t)(next_due - now) + 5 : 5,
                           0);
        }
        return;
    }
    batch_t *b = calloc(1, sizeof *b);
    b->r = r;
    b->deadline = deadline;
    b->pending = n;
    b->ids = calloc(n + 1, sizeof *b->ids);
    b->ok = calloc(n + 1, sizeof *b->ok);
    for (size_t i = 0; i < n; i++)
        b->ids[i] = strdup(ids[i]);
    for (size_t i = 0; i < n; i++) {
        item_t *it = malloc(sizeof *it);
        *it = (item_t){b, i};
        delete_one(r, it, ids[i]);
    }
}

static void reap(reaper_t *r)
{
    if (r->stopping || !store_up(r->app->store)) return;
    if (r->busy) {
        r->again = true;
        return;
    }
    r->busy = true;
    store_reap_claim(r->app->store, r->queue, r->app->instance, REAP_BATCH, REAP_LEASE_MS,
                     on_claimed, r);
}

static void on_wake(store_wake_t kind, void *arg)
{
    if (kind == STORE_WAKE_REAP || kind == STORE_WAKE_ALL) reap(arg);
}

static void on_state(bool up, void *arg)
{
    if (up) reap(arg);
}

reaper_t *reaper_start(app_t *app, const char *queue, stats_t *stats, s3_t *s3, const char *bucket,
                       const char *region)
{
    reaper_t *r = calloc(1, sizeof *r);
    r->app = app;
    r->stats = stats;
    if (s3) {
        r->s3 = s3;
        r->bucket = strdup(bucket);
        r->region = strdup(region);
    }
    snprintf(r->queue, sizeof r->queue, "%s", queue);
    uv_timer_init(app->loop, &r->timer);
    r->timer.data = r;
    store_on_wake(app->store, on_wake, r);
    store_on_state(app->store, on_state, r);
    reap(r);
    return r;
}

static void on_closed(uv_handle_t *h)
{
    reaper_t *r = h->data;
    void (*cb)(void *) = r->stopped;
    void *arg = r->stopped_arg;
    free(r->bucket);
    free(r->region);
    free(r);
    if (cb) cb(arg);
}

static void finish_stop(reaper_t *r)
{
    if (r->busy || uv_is_closing((uv_handle_t *)&r->timer)) return;
    uv_close((uv_handle_t *)&r->timer, on_closed);
}

void reaper_stop(reaper_t *r, void (*done)(void *arg), void *arg)
{
    r->stopping = true;
    store_forget(r->app->store, r);
    r->stopped = done;
    r->stopped_arg = arg;
    uv_timer_stop(&r->timer);
    finish_stop(r);
}
