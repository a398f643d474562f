/* Recovery from dead instances (live.c, live.lua): with the default leases (30 s for
 * downloads, 60 s for callbacks), the work of a process killed with kill -9 is taken
 * over within seconds, by a restarted instance or by another live one; a live instance
 * keeps its work; held reap entries come back; a cleanly stopped instance deregisters.
 * Real binary, private redis-server, test/origin.py as origin and sink. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define N 10
/* the defaults: the takeover must not rely on short leases */
#define DEFAULT_LEASES_P "\"lease\": \"30s\""
#define DEFAULT_LEASES_N "\"lease\": \"60s\""

static h_env_t env;
static redisContext *rc;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int start_env(const char *processor_extra)
{
    if (h_env_start(&env, processor_extra, DEFAULT_LEASES_N, NULL) < 0) return -1;
    if (h_env_run(&env, "api") < 0) return -1;
    rc = h_redis_connect(&env.redis);
    return rc ? 0 : -1;
}

static int setup(void **state)
{
    (void)state;
    return start_env(DEFAULT_LEASES_P);
}

/* Two processors of 5 slots each, so that both hold downloads. */
static int setup_two(void **state)
{
    (void)state;
    return start_env(DEFAULT_LEASES_P ", \"max_concurrency\": 5");
}

static int teardown(void **state)
{
    (void)state;
    redisFree(rc);
    rc = NULL;
    h_env_stop(&env);
    return 0;
}

/* Posts n jobs (aggregation limit N) for origin path <path>&j=<i> (one origin path per
 * job). */
static void post_jobs(const char *path, const char *aggr, char (*ids)[16], int n)
{
    for (int i = 0; i < n; i++) {
        char p[256], url[512], cb[256], body[1024];
        snprintf(p, sizeof p, "%s&j=%d", path, i);
        h_origin_url(&env, url, sizeof url, p);
        h_origin_url(&env, cb, sizeof cb, "/callback/rec");
        snprintf(body, sizeof body,
                 "{\"url\":\"%s\",\"aggr_id\":\"%s\",\"aggr_limit\":%d,\"callback_url\":\"%s\"}",
                 url, aggr, N, cb);
        assert_int_equal(h_post_job(&env, body, ids[i]), 201);
    }
}

static void post_n(const char *path, const char *aggr, char ids[N][16])
{
    post_jobs(path, aggr, ids, N);
}

typedef struct {
    const char *key;
    long long want;
} card_t;

static bool card_is(void *arg)
{
    card_t *c = arg;
    return h_redis_int(rc, "ZCARD %s", c->key) == c->want;
}

typedef struct {
    char (*ids)[16];
    int n;
} ids_t;

/* Every job has a successful callback at the sink and, delivery recorded, is only
 * remembered as Delivered (notifier.history) or has left Redis (the sink also records
 * posts of a killed notifier that never learned the answer). */
static bool all_delivered(void *arg)
{
    ids_t *x = arg;
    for (int i = 0; i < x->n; i++) {
        char *cs = h_redis_str(rc, "HGET job:%s CallbackState", x->ids[i]);
        bool recorded = h_redis_int(rc, "EXISTS job:%s", x->ids[i]) == 0 ||
                        (cs && strcmp(cs, "Delivered") == 0);
        free(cs);
        if (!recorded) return false;
        int ok = 0;
        h_callbacks(&env, x->ids[i], &ok, NULL);
        if (ok < 1) return false;
    }
    return true;
}

static int duplicates(char ids[][16], int n)
{
    return h_duplicates(&env, (const char(*)[16])ids, n);
}

/* Kills pid with SIGKILL once `set` holds N leases, starts `cmd` again at once and
 * waits up to wait_ms for every job to be delivered; returns the seconds from the kill. */
static double kill9_restart(pid_t pid, const char *set, const char *cmd, char ids[N][16],
                            int wait_ms)
{
    card_t held = {set, N};
    assert_true(h_wait_for(card_is, &held, 10000)); /* all N in flight */
    usleep(300000);
    h_env_kill(&env, pid, SIGKILL, 2000);
    double t0 = now_s();
    assert_true(h_env_run(&env, cmd) > 0);
    ids_t x = {ids, N};
    assert_true(h_wait_for(all_delivered, &x, wait_ms));
    return now_s() - t0;
}

/* Origin requests per path (the job's index i in "&j=<i>"). */
static void requests_per_job(int counts[N])
{
    memset(counts, 0, N * sizeof *counts);
    yajl_val list = h_origin_json(&env, "/_requests");
    for (size_t k = 0; list && k < list->u.array.len; k++) {
        const char *p = h_jstr(list->u.array.values[k], "target");
        const char *j = p ? strstr(p, "&j=") : NULL;
        if (j && atoi(j + 3) >= 0 && atoi(j + 3) < N) counts[atoi(j + 3)]++;
    }
    yajl_tree_free(list);
}

static void test_notifier_kill9_restart(void **state)
{
    (void)state;
    static char ids[N][16];
    pid_t processor = h_env_run(&env, "processor");
    pid_t notifier = h_env_run(&env, "notifier");
    assert_true(processor > 0 && notifier > 0);
    assert_int_equal(h_origin_post(&env, "/_sink", "{\"delay_ms\": 2000}"), 200);
    post_n("/data/10?x=1", "nk", ids); /* the callbacks then wait on the sink */
    double took = kill9_restart(notifier, "cb:leases", "notifier", ids, 15000);
    int dup = duplicates(ids, N);
    fprintf(stderr,
            "recovery: notifier kill -9 + restart: %d callbacks delivered %.1f s after "
            "the kill, %d duplicates\n",
            N, took, dup);
    assert_true(took < 15.0);
    assert_true(dup <= N);
}

static void test_processor_kill9_restart(void **state)
{
    (void)state;
    static char ids[N][16];
    pid_t processor = h_env_run(&env, "processor");
    assert_true(processor > 0 && h_env_run(&env, "notifier") > 0);
    /* 3 s bodies: 10 chunks of 2 kB, 300 ms apart */
    post_n("/data/20000?chunk=2000&chunk_delay_ms=300", "pk", ids);
    double took = kill9_restart(processor, "leases", "processor", ids, 20000);
    int counts[N];
    requests_per_job(counts);
    int redownloads = 0;
    for (int i = 0; i < N; i++) {
        assert_in_range(counts[i], 1, 2);
        redownloads += counts[i] - 1;
    }
    fprintf(stderr,
            "recovery: processor kill -9 + restart: %d callbacks %.1f s after the kill, "
            "%d re-downloads, %d duplicate callbacks\n",
            N, took, redownloads, duplicates(ids, N));
    assert_true(took < 20.0);
    assert_int_equal(duplicates(ids, N), 0);
}

/* How many of the first n jobs does the processor with the given pid hold (its
 * instance id is their Owner)? mine[i]: job i is one of them. */
static int held_by(pid_t pid, char (*ids)[16], int n_ids, bool *mine)
{
    char needle[32];
    snprintf(needle, sizeof needle, "-%d-", (int)pid);
    int n = 0;
    for (int i = 0; i < n_ids; i++) {
        char *o = h_redis_str(rc, "HGET job:%s Owner", ids[i]);
        mine[i] = o && strstr(o, needle);
        n += mine[i];
        free(o);
    }
    return n;
}

static void test_takeover_without_restart(void **state)
{
    (void)state;
    static char ids[N][16];
    pid_t a = h_env_run(&env, "processor");
    pid_t b = h_env_run(&env, "processor");
    assert_true(a > 0 && b > 0 && h_env_run(&env, "notifier") > 0);
    /* 4 s bodies: longer than the takeover, so the survivor is busy with its own */
    post_n("/data/20000?chunk=2000&chunk_delay_ms=400", "tk", ids);
    card_t held = {"leases", N};
    assert_true(h_wait_for(card_is, &held, 10000));
    bool mine_a[N];
    assert_int_equal(held_by(a, ids, N, mine_a), 5);
    usleep(500000);
    h_env_kill(&env, a, SIGKILL, 2000);
    double t0 = now_s();
    ids_t x = {ids, N};
    assert_true(h_wait_for(all_delivered, &x, 15000));
    double took = now_s() - t0;
    int counts[N];
    requests_per_job(counts);
    for (int i = 0; i < N; i++) /* the survivor kept its own: one request each */
        assert_int_equal(counts[i], mine_a[i] ? 2 : 1);
    fprintf(stderr,
            "recovery: takeover without restart: the survivor finished all %d, %.1f s "
            "after the kill (5 re-downloads)\n",
            N, took);
    assert_true(took < 15.0);
    assert_int_equal(duplicates(ids, N), 0);
}

static bool log_has(void *arg)
{
    char path[700];
    size_t len = 0;
    snprintf(path, sizeof path, "%s/processor-%d.log", env.dir, *(int *)arg);
    char *text = h_read_file(path, &len);
    /* found by its renewal ("lease lost, abandoning download") or, when the body was
     * complete first, refused at the outcome ("lease lost before the outcome ...") */
    bool has = text && strstr(text, "msg=\"lease lost");
    free(text);
    return has;
}

typedef struct {
    pid_t by;
    char (*ids)[16];
} taken_t;

static bool taken_over(void *arg)
{
    taken_t *t = arg;
    bool mine[5];
    return held_by(t->by, t->ids, 5, mine) == 5;
}

/* A processor cut off (SIGSTOP: alive but silent, like a partition) is taken for gone
 * after 5 s; the other takes its downloads over; when it comes back, it learns that the
 * leases are lost and abandons them: every job is called back exactly once. */
static void test_partitioned_processor_abandons(void **state)
{
    (void)state;
    static char ids[5][16];
    int log_a = env.nprocs;
    pid_t a = h_env_run(&env, "processor");
    assert_true(a > 0 && h_env_run(&env, "notifier") > 0);
    /* 6 s bodies, posted while only a runs: it holds all five */
    post_jobs("/data/30000?chunk=1000&chunk_delay_ms=200", "pt", ids, 5);
    card_t held = {"leases", 5};
    assert_true(h_wait_for(card_is, &held, 10000));
    taken_t t = {h_env_run(&env, "processor"), ids};
    assert_true(t.by > 0);
    kill(a, SIGSTOP);
    double t0 = now_s();
    bool taken = h_wait_for(taken_over, &t, 15000); /* b downloads them */
    double took = now_s() - t0;
    kill(a, SIGCONT);
    assert_true(taken);
    assert_true(h_wait_for(log_has, &log_a, 12000)); /* renewal every 10 s */
    ids_t x = {ids, 5};
    assert_true(h_wait_for(all_delivered, &x, 20000));
    fprintf(stderr,
            "recovery: silent processor: its 5 downloads taken over %.1f s after it stopped "
            "answering, all delivered %.1f s after; it abandoned its copies\n",
            took, now_s() - t0);
    assert_int_equal(duplicates(ids, 5), 0);
}

static bool reap_gone(void *arg)
{
    struct stat st;
    redisReply *r = h_redis(rc, "ZSCORE reap:http://127.0.0.1:%d/files wanted", env.origin_port);
    bool gone = r && r->type == REDIS_REPLY_NIL;
    freeReplyObject(r);
    return gone && stat(arg, &st) < 0;
}

/* A dead owner's reap entries (leased, deadline a minute ahead) are released and deleted
 * by the live processor's reaper at once; a live owner's stay leased. */
static void test_dead_owner_reaps_come_back(void **state)
{
    (void)state;
    assert_true(h_env_run(&env, "processor") > 0);
    char q[128], dir[700], path[800];
    snprintf(q, sizeof q, "reap:http://127.0.0.1:%d/files", env.origin_port);
    snprintf(dir, sizeof dir, "%s/files", env.dir);
    mkdir(dir, 0755);
    snprintf(dir, sizeof dir, "%s/files/wan", env.dir);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/wanted", dir);
    assert_int_equal(h_write_file(path, "x"), 0);
    redisReply *t = h_redis(rc, "TIME");
    long long now = atoll(t->element[0]->str) * 1000;
    freeReplyObject(t);
    long long deadline = now + 60000;
    freeReplyObject(h_redis(rc, "ZADD %s %lld wanted %lld kept", q, deadline, deadline));
    freeReplyObject(h_redis(rc, "HSET live:reap:gone-1 wanted:%s %lld", q, deadline));
    freeReplyObject(h_redis(rc, "HSET live:reap:alive-1 kept:%s %lld", q, deadline));
    freeReplyObject(h_redis(rc, "ZADD live %lld gone-1 %lld alive-1", now - 1, now + 60000));
    double t0 = now_s();
    assert_true(h_wait_for(reap_gone, path, 5000));
    fprintf(stderr, "recovery: a dead owner's held deletion done %.1f s later\n", now_s() - t0);
    char *s = h_redis_str(rc, "ZSCORE %s kept", q);
    assert_non_null(s);
    assert_int_equal(atoll(s), deadline);
    free(s);
    assert_int_equal(h_redis_int(rc, "EXISTS live:reap:gone-1"), 0);
    assert_int_equal(h_redis_int(rc, "EXISTS live:reap:alive-1"), 1);
    redisReply *r = h_redis(rc, "ZSCORE live gone-1");
    assert_int_equal(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
}

static bool instance_listed(void *arg)
{
    char url[256];
    h_resp_t r;
    h_api_url(&env, url, sizeof url, "/dashboard/instances");
    bool listed = h_http("GET", url, NULL, NULL, &r) == 0 && r.status == 200 &&
                  strstr(r.body, (const char *)arg);
    h_resp_free(&r);
    return listed;
}

static void test_clean_stop_deregisters(void **state)
{
    (void)state;
    pid_t p = h_env_run(&env, "processor");
    char needle[64];
    snprintf(needle, sizeof needle, "\"pid\":%d", (int)p);
    assert_true(h_wait_for(instance_listed, needle, 5000));
    assert_int_equal(h_redis_int(rc, "ZCARD live"), 2); /* api and processor */
    assert_int_equal(h_env_kill(&env, p, SIGTERM, 10000), 0);
    assert_false(instance_listed(needle));
    assert_int_equal(h_redis_int(rc, "ZCARD live"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_notifier_kill9_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_processor_kill9_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_takeover_without_restart, setup_two, teardown),
        cmocka_unit_test_setup_teardown(test_partitioned_processor_abandons, setup_two, teardown),
        cmocka_unit_test_setup_teardown(test_dead_owner_reaps_come_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clean_stop_deregisters, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
