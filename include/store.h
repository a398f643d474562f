/* store: all Redis access. One command connection and one pub/sub connection per
 * process (hiredis async on libuv), reconnect with backoff, a watchdog for hung
 * commands, the Lua scripts of src/lua loaded once and run with EVALSHA (EVAL on
 * NOSCRIPT), and typed operations for the api, processor, notifier and reaper.
 * The key layout is documented in docs/redis.md. */
#ifndef DOWNLOADER_STORE_H
#define DOWNLOADER_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "job.h"

typedef struct store store_t;

/* Result codes of store operations. */
typedef enum {
    STORE_OK = 0,
    STORE_DOWN,      /* no connection to Redis (or it dropped during the call) */
    STORE_ERROR,     /* Redis answered with an error, or an unexpected reply */
    STORE_EXISTS,    /* enqueue: the id is taken */
    STORE_NOTFOUND,  /* no such job / stats */
    STORE_CONFLICT,  /* retry: callback not in state Failed; finish: lease lost; enqueue:
                        the Idempotency-Key was used with another body */
    STORE_REPLAYED,  /* enqueue: the Idempotency-Key was used with this body: nothing created */
    STORE_UNKNOWN,   /* enqueue: sent, but the connection was lost before the answer: Redis
                        may still run it (it hung, or WAIT was cut off) */
    STORE_CANCELLED, /* dl_finish: the job was cancelled (its stored file is reaped) */
} store_rc_t;

/* Wake-up kinds published on the pub/sub channel. */
typedef enum {
    STORE_WAKE_ALL = 0,
    STORE_WAKE_DL,
    STORE_WAKE_CB,
    STORE_WAKE_REAP,
    STORE_WAKE_BW /* a processor joined or left an aggregation with a bandwidth cap */
} store_wake_t;

typedef void (*store_wake_fn)(store_wake_t kind, void *arg);
typedef void (*store_state_fn)(bool up, void *arg);

/* Connects in the background; `name` goes into CLIENT SETNAME (e.g.
 * "downloader-processor-host-1234"). Never fails for a down Redis. With redis.sentinel
 * and redis.master_name it finds the master through the sentinels (sentinel.h), checks
 * it with ROLE, follows +switch-master, and asks the sentinels again whenever a
 * connection is lost; store_up() is false while no master is known. */
store_t *store_new(uv_loop_t *loop, const config_t *cfg, const char *name);

/* True while the command connection is up and the scripts are loaded. */
bool store_up(const store_t *s);

/* How often the command connection came back after it had been up (for /metrics). */
uint64_t store_reconnects(const store_t *s);

/* Enqueues answered although WAIT (redis.wait_replicas) timed out (for /metrics). */
uint64_t store_unreplicated(const store_t *s);

/* Listeners. Wake listeners get STORE_WAKE_ALL after every (re)subscribe. State
 * listeners are told on every transition. Up to 8 of each. */
void store_on_wake(store_t *s, store_wake_fn fn, void *arg);
void store_on_state(store_t *s, store_state_fn fn, void *arg);

/* A running job was cancelled (DELETE /download/<id>, message "cancel:<id>" on the
 * wake-up channel): whoever runs it aborts it. Up to 8 listeners. */
typedef void (*store_cancel_msg_fn)(const char *id, void *arg);
void store_on_cancel(store_t *s, store_cancel_msg_fn fn, void *arg);

/* Removes every wake, state and cancel listener registered with this arg. */
void store_forget(store_t *s, void *arg);

/* Closes both connections; outstanding callbacks get STORE_DOWN. */
void store_close(store_t *s, void (*closed)(void *arg), void *arg);

/* ---- api ---- */
typedef void (*store_done_fn)(store_rc_t rc, const char *err, void *arg);

/* An Idempotency-Key of POST /download: the record idem:<key> = "<digest>:<id>" lives
 * for ttl_ms and is checked and written in the enqueue script itself. */
typedef struct {
    const char *key;    /* the header's value */
    const char *digest; /* hex SHA-256 of the request body */
    uint64_t ttl_ms;
} store_idem_t;

/* Writes the job hash, creates/updates the aggregation, queues and wakes: one script
 * call. job->id must be set. With redis.wait_replicas, done runs after WAIT. idem (NULL:
 * none; must stay valid until done): a key seen with the same digest answers REPLAYED
 * with the first job's id copied to job->id, with another digest CONFLICT; nothing is
 * created then. DOWN: not sent, nothing happened; UNKNOWN: sent, no answer. */
void store_enqueue(store_t *s, job_t *job, const store_idem_t *idem, store_done_fn done, void *arg);

/* POST /retry: rc OK (queued or not), NOTFOUND, or CONFLICT with *job filled (for the
 * message) and `state` the callback state text. */
typedef void (*store_retry_fn)(store_rc_t rc, const job_t *job, const char *state, void *arg);
void store_retry_callback(store_t *s, const char *id, store_retry_fn done, void *arg);

typedef struct {
    const char *id;
    long limit;
    const char *proxy;
    long long ready, delayed, inflight;
    double rate;               /* starts per second, 0 = no rate limit */
    long effective;            /* concurrency allowed now (limit, or less after pushback) */
    long long paused_until_ms; /* Redis ms time the pause ends, 0 when not paused */
    const char *waiting;       /* "pause", "rate" (queued jobs wait for it) or "" */
} store_aggr_t;

typedef void (*store_hash_fn)(store_rc_t rc, const char *const *kv, size_t n, long long ttl_ms,
                              void *arg);
/* GET /download/<id>: the raw job hash as field/value pairs, its TTL in ms (-1 none) and
 * its aggregation's throttle state (limit, rate, effective, paused_until_ms, waiting;
 * id, proxy and counts not filled), NULL when the hash names none. */
typedef void (*store_status_fn)(store_rc_t rc, const char *const *kv, size_t n, long long ttl_ms,
                                const store_aggr_t *aggr, void *arg);
void store_job_status(store_t *s, const char *id, store_status_fn done, void *arg);

/* GET /stats/<name>: totals as field/value pairs (NOTFOUND when nothing is known). */
void store_stats_get(store_t *s, const char *component, store_hash_fn done, void *arg);
typedef void (*store_aggrs_fn)(store_rc_t rc, const store_aggr_t *a, size_t n, void *arg);
void store_aggregations(store_t *s, size_t max, store_aggrs_fn done, void *arg);
/* qsort order for store_aggr_t: most queued first, then most in flight, then by id. */
int store_aggr_cmp(const void *x, const void *y);

/* Jobs whose callback failed for good, newest first (from cb:failed). */
typedef struct {
    const char *id, *url, *aggr_id, *callback_error;
    long long updated_at_ms;
} store_failed_t;
typedef void (*store_failed_fn)(store_rc_t rc, const store_failed_t *f, size_t n, void *arg);
void store_failed(store_t *s, size_t max, store_failed_fn done, void *arg);

/* Callbacks waiting for a retry (cb:delayed): their number, Redis's clock, and the first
 * max by due time with the latest error (CallbackMeta). O(max) in Redis. */
typedef struct {
    const char *id, *url, *aggr_id;
    long long callback_count;
    const char *last_error;
    long long due_ms;
} store_retrying_t;
typedef void (*store_retrying_fn)(store_rc_t rc, long long total, long long now_ms,
                                  const store_retrying_t *r, size_t n, void *arg);
void store_retrying(store_t *s, size_t max, store_retrying_fn done, void *arg);

typedef struct {
    const char *name;      /* "<component>:<instance>" */
    long long live_until;  /* ms */
    const char *info_json; /* as published */
} store_instance_t;
typedef void (*store_instances_fn)(store_rc_t rc, long long now_ms, const store_instance_t *in,
                                   size_t n, void *arg);
void store_instances(store_t *s, store_instances_fn done, void *arg);

/* Per-minute counter history: rows[m * nfields + f] for `minutes` minutes. */
typedef void (*store_history_fn)(store_rc_t rc, long long first_minute, const long long *rows,
                                 size_t minutes, size_t nfields, void *arg);
void store_history(store_t *s, const char *component, int minutes, const char *const *fields,
                   size_t nfields, store_history_fn done, void *arg);

/* Queue depths for /metrics and checks: ready jobs, delayed jobs, leases, callbacks
 * ready/delayed/leased. */
typedef struct {
    long long dl_delayed, dl_leased, cb_ready, cb_delayed, cb_leased, aggregations;
} store_depths_t;
typedef void (*store_depths_fn)(store_rc_t rc, const store_depths_t *d, void *arg);
void store_depths(store_t *s, store_depths_fn done, void *arg);

/* ---- processor ---- */
typedef struct {
    job_t job;          /* fields decoded from the job hash (job.id, job.aggr_id set) */
    char *proxy;        /* the aggregation's proxy, "" for none */
    long long bw_procs; /* with a bandwidth cap (job.aggr_bandwidth): processors sharing it */
} store_claimed_t;

/* The number of processors running downloads of an aggregation with a bandwidth cap
 * (the size of bwp:<aggr>, kept by claim.lua and dl_finish.lua). */
typedef void (*store_count_fn)(store_rc_t rc, long long n, void *arg);
void store_bw_procs(store_t *s, const char *aggr, store_count_fn done, void *arg);

/* next_*: absolute Redis ms time of the earliest delayed item / lease deadline /
 * throttled aggregation (paused or waiting for its rate), or 0 when there is none; now:
 * Redis' clock at the claim; rate_waits: starts the claim left waiting for a rate;
 * ready_left: aggregations left claimable (-1: unknown). */
typedef struct {
    long long next_due, next_lease, now, next_throttled, rate_waits, ready_left;
} store_claim_times_t;
/* Claimed jobs are owned by the callee (free with store_claimed_free) until their finish. */
typedef void (*store_claim_fn)(store_rc_t rc, store_claimed_t *jobs, size_t n,
                               const store_claim_times_t *t, void *arg);
void store_claim(store_t *s, const char *owner, int n, uint64_t lease_ms, int max_lost,
                 uint64_t retention_ms, store_claim_fn done, void *arg);
void store_claimed_free(store_claimed_t *c);

/* Renews leases of "<id>:<aggr>" members; lost members are passed to done. */
typedef void (*store_lost_fn)(store_rc_t rc, const char *const *lost, size_t n, void *arg);
void store_renew(store_t *s, const char *owner, uint64_t lease_ms, const char *const *members,
                 size_t n, store_lost_fn done, void *arg);

/* The processor's sweep of partial files: of these job ids (at most
 * STORE_ORPHANS_BATCH), the ones that can no longer resume a kept <id>.tmp, as `lost`:
 * no job hash, or DownloadState Success, Failed or Cancelled (tmp_orphans.lua). One
 * script call. */
#define STORE_ORPHANS_BATCH 500
void store_tmp_orphans(store_t *s, const char *const *ids, size_t n, store_lost_fn done, void *arg);

typedef enum { STORE_DL_DONE, STORE_DL_DELAY, STORE_DL_REQUEUE } store_dl_op_t;
typedef enum {
    STORE_CB_DELIVERED,
    STORE_CB_DELAY,
    STORE_CB_FAILED,
    STORE_CB_REQUEUE
} store_cb_op_t;

/* What an attempt tells about the origin, for the aggregation's pause and AIMD limit
 * (dl_finish.lua): signal "ok" (a success), "429"/"503" (pushback), "timeout" or "";
 * retry_after_ms: its Retry-After (0 none); the pause is capped at max_pause_ms;
 * adaptive: processor.adaptive_limits. */
typedef struct {
    const char *signal;
    uint64_t retry_after_ms, max_pause_ms;
    bool adaptive;
} store_origin_t;

/* Applies a download outcome under the lease. kv: job field/value pairs to set
 * (NULL-terminated list of strings, pairs). CONFLICT when the lease was lost. */
void store_dl_finish(store_t *s, const char *id, const char *aggr, const char *owner,
                     store_dl_op_t op, uint64_t delay_ms, uint64_t retention_ms,
                     const store_origin_t *origin, const char *const *kv, store_done_fn done,
                     void *arg);

/* ---- notifier ---- */
typedef void (*store_cb_claim_fn)(store_rc_t rc, job_t *jobs, size_t n, long long next_due,
                                  long long next_lease, long long now_ms, void *arg);
void store_cb_claim(store_t *s, const char *owner, int n, uint64_t lease_ms, store_cb_claim_fn done,
                    void *arg);
void store_cb_renew(store_t *s, const char *owner, uint64_t lease_ms, const char *const *ids,
                    size_t n, store_lost_fn done, void *arg);
void store_cb_finish(store_t *s, const char *id, const char *owner, store_cb_op_t op,
                     uint64_t delay_ms, uint64_t retention_ms, uint64_t deletion_ms,
                     const char *const *kv, store_done_fn done, void *arg);

/* ---- reaper ---- */
typedef void (*store_reap_fn)(store_rc_t rc, const char *const *ids, size_t n, long long deadline,
                              long long next_due, void *arg);
/* owner: the instance leasing; its held entries are recorded for live.lua. */
void store_reap_claim(store_t *s, const char *queue, const char *owner, int n, uint64_t lease_ms,
                      store_reap_fn done, void *arg);
void store_reap_done(store_t *s, const char *queue, const char *owner, long long deadline,
                     const char *const *ids, size_t n, store_done_fn done, void *arg);

/* ---- liveness (live.lua) ---- */
/* Refreshes owner's liveness deadline to live_ms ahead and releases the work of owners
 * whose deadline passed, unless no instance got through for gap_ms (then everyone gets
 * a fresh deadline). live_ms 0: owner leaves, its remaining work is released now.
 * done gets {owner, downloads, callbacks, deletions, ...} for each owner released. */
void store_live(store_t *s, const char *owner, uint64_t live_ms, uint64_t gap_ms,
                store_lost_fn done, void *arg);

/* ---- stats / instances ---- */
/* kv: counter deltas as name/value pairs (NULL-terminated). live_ms 0: the instance
 * deregisters (stopped cleanly); the counters are still added. */
void store_stats_put(store_t *s, const char *component, const char *instance, uint64_t live_ms,
                     uint64_t keep_ms, const char *info_json, const char *const *kv,
                     store_done_fn done, void *arg);

/* ---- operator control (control.c) ---- */
/* DELETE /download/<id>: rc OK (state: the DownloadState before), NOTFOUND, or
 * CONFLICT with state "delivered" or "delivering" (a callback is being sent). The
 * cancelled job stays readable keep_ms. */
typedef void (*store_cancel_fn)(store_rc_t rc, const char *state, void *arg);
void store_cancel(store_t *s, const char *id, uint64_t keep_ms, store_cancel_fn done, void *arg);

typedef struct {
    const char *id;
    long limit;
    const char *rate, *proxy;
    bool paused;
    long long ready, delayed, inflight;
} store_aggr_info_t;
typedef void (*store_aggr_info_fn)(store_rc_t rc, const store_aggr_info_t *a, void *arg);
/* GET /aggregations/<id>: OK or NOTFOUND. */
void store_aggr_get(store_t *s, const char *aggr, store_aggr_info_fn done, void *arg);
/* PATCH: limit (<= 0 unchanged), rate (NULL unchanged), paused (-1 unchanged, 0, 1);
 * answers the new state, or NOTFOUND. */
void store_aggr_patch(store_t *s, const char *aggr, long limit, const char *rate, int paused,
                      store_aggr_info_fn done, void *arg);

/* One job of a queue page. */
typedef struct {
    const char *id, *url;
    long long attempts, next_attempt_at_ms, created_at_ms, started_at_ms;
    const char *state, *last_error;
} store_job_row_t;
typedef void (*store_jobs_fn)(store_rc_t rc, const store_job_row_t *rows, size_t n,
                              const char *next_cursor, void *arg);
/* A page of an aggregation's "ready", "delayed" or "running" jobs from offset. */
void store_aggr_jobs(store_t *s, const char *aggr, const char *state, long offset, long count,
                     store_jobs_fn done, void *arg);

/* One purge chunk: deletes up to chunk queued then delayed jobs of the aggregation. */
typedef void (*store_purge_fn)(store_rc_t rc, long long deleted, long long left, void *arg);
void store_aggr_purge(store_t *s, const char *aggr, int chunk, store_purge_fn done, void *arg);

/* A page of jobs whose download (callbacks false) or callback failed for good, newest
 * first; the entries' callback_error holds the failure of that kind. */
typedef void (*store_failed_page_fn)(store_rc_t rc, const store_failed_t *f, size_t n,
                                     const char *next_cursor, void *arg);
void store_failed_page(store_t *s, bool callbacks, long offset, long count,
                       store_failed_page_fn done, void *arg);

/* Re-queues the listed failed callbacks, or failed downloads as new jobs (callbacks
 * false), skipping ids that are not failed of that kind (n == 0: all of cb:failed or
 * dl:failed); done gets how many. */
typedef void (*store_count_fn)(store_rc_t rc, long long n, void *arg);
void store_failed_retry(store_t *s, bool callbacks, const char *const *ids, size_t n,
                        store_count_fn done, void *arg);

/* Decodes a job hash (field/value pairs) into job (unknown fields ignored: W27). */
void store_job_decode(const char *const *kv, size_t n, job_t *job);

/* The reap queue key of a filesystem store identified by its download_url base. */
void store_reap_key(char *buf, size_t len, const char *download_url);

#endif
