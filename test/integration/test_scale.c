/* Many instances on one Redis: 2 APIs, 3 processors and 2 notifiers (separate
 * processes of the real binary) run 2,000 jobs over 8 aggregations with limits 1..11
 * against a slow origin (150 ms per download). Checks that the limits hold across the
 * processors (the origin's maximum concurrency per aggregation equals the limit:
 * never above, and reached), that every job is downloaded once and called back
 * exactly once (duplicates are counted and reported; at-least-once allows them, none
 * should happen without crashes), that Redis is clean afterwards, and that any API's
 * /metrics sees all seven instances. Prints jobs/s. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define N_JOBS 2000
#define N_AGGR 8
#define DELAY_MS 150

static const int limits[N_AGGR] = {1, 2, 3, 4, 5, 6, 8, 11}; /* sum 40 */
static h_env_t env;
static int api_ports[2];
static char ids[N_JOBS][16];

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static int setup(void **state)
{
    (void)state;
    if (h_env_start(&env, "\"max_concurrency\": 32, \"shutdown_grace\": 1", "\"concurrency\": 16",
                    NULL) < 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        if (h_env_run(&env, "api") < 0) return -1;
        api_ports[i] = env.api_port;
    }
    for (int i = 0; i < 3; i++)
        if (h_env_run(&env, "processor") < 0) return -1;
    for (int i = 0; i < 2; i++)
        if (h_env_run(&env, "notifier") < 0) return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    h_env_stop(&env);
    return 0;
}

static long post(int api_port, int aggr, char *id)
{
    char url[512], cb[256], body[2048], api[128];
    char path[128];
    snprintf(path, sizeof path, "/data/100?delay_ms=%d&aggr=scale-%d", DELAY_MS, aggr);
    h_origin_url(&env, url, sizeof url, path);
    h_origin_url(&env, cb, sizeof cb, "/callback/scale?aggr=sink");
    snprintf(body, sizeof body,
             "{\"url\":\"%s\",\"aggr_id\":\"scale-%d\",\"aggr_limit\":%d,\"callback_url\":\"%s\"}",
             url, aggr, limits[aggr], cb);
    snprintf(api, sizeof api, "http://127.0.0.1:%d/download", api_port);
    h_resp_t r;
    long st = h_http("POST", api, body, NULL, &r) == 0 ? r.status : -1;
    const char *p = strstr(r.body ? r.body : "", "\"id\":\"");
    if (st == 201 && p) snprintf(id, 15, "%.14s", p + 6);
    h_resp_free(&r);
    return st;
}

static long long origin_stat(const char *aggr, const char *field)
{
    yajl_val st = h_origin_json(&env, "/_stats");
    const char *path[] = {aggr, field, NULL};
    yajl_val v = st ? yajl_tree_get(st, path, yajl_t_number) : NULL;
    long long n = v && YAJL_IS_INTEGER(v) ? v->u.number.i : 0;
    if (st) yajl_tree_free(st);
    return n;
}

static bool all_delivered(void *arg)
{
    (void)arg;
    return origin_stat("sink", "count") >= N_JOBS;
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Counts successful callbacks per posted id: returns the duplicates, fails on a
 * missing or unknown id. */
static int check_callbacks(void)
{
    yajl_val list = h_origin_json(&env, "/_callbacks");
    assert_non_null(list);
    static int seen[N_JOBS];
    memset(seen, 0, sizeof seen);
    int unknown = 0;
    for (size_t i = 0; i < list->u.array.len; i++) {
        yajl_val cb = list->u.array.values[i];
        if (h_jint(cb, "status") != 200) continue;
        const char *body = h_jstr(cb, "body"), *p = body ? strstr(body, "\"job_id\":\"") : NULL;
        char id[16] = "";
        if (p) snprintf(id, sizeof id, "%.14s", p + 10);
        char(*hit)[16] = bsearch(id, ids, N_JOBS, sizeof ids[0], cmp_id);
        if (hit)
            seen[hit - ids]++;
        else
            unknown++;
    }
    yajl_tree_free(list);
    int dup = 0, missing = 0;
    for (int i = 0; i < N_JOBS; i++) {
        missing += seen[i] == 0;
        dup += seen[i] > 1 ? seen[i] - 1 : 0;
    }
    if (missing || unknown)
        fail_msg("%d jobs without a callback, %d unknown callbacks", missing, unknown);
    return dup;
}

static bool redis_clean(void *arg)
{
    redisContext *c = arg;
    return h_redis_int(c, "SCARD aggrs") == 0 && h_redis_int(c, "ZCARD leases") == 0 &&
           h_redis_int(c, "LLEN cb:q") == 0 && h_redis_int(c, "ZCARD cb:leases") == 0;
}

/* Live instances of a component as an API's /metrics reports them (from heartbeats:
 * the APIs publish theirs every 5 s). */
static long long instances(const char *component)
{
    char url[256], needle[128];
    h_resp_t r;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", api_ports[0]);
    snprintf(needle, sizeof needle, "\ndownloader_instances{component=\"%s\"} ", component);
    long long n = -1;
    if (h_http("GET", url, NULL, NULL, &r) == 0 && strstr(r.body, needle))
        n = atoll(strstr(r.body, needle) + strlen(needle));
    h_resp_free(&r);
    return n;
}

static bool all_instances_seen(void *arg)
{
    (void)arg;
    return instances("api") == 2 && instances("processor") == 3 && instances("notifier") == 2;
}

static void test_many_instances(void **state)
{
    (void)state;
    int want[N_AGGR], posted[N_AGGR] = {0}, total = 0;
    for (int a = 0; a < N_AGGR; a++)
        want[a] = N_JOBS * limits[a] / 40;
    long t0 = now_ms();
    /* round-robin over the aggregations (limit jobs each per round), alternating APIs */
    while (total < N_JOBS) {
        for (int a = 0; a < N_AGGR; a++)
            for (int k = 0; k < limits[a] && posted[a] < want[a]; k++, posted[a]++, total++)
                assert_int_equal(post(api_ports[total % 2], a, ids[total]), 201);
    }
    long t_posted = now_ms();
    assert_true(h_wait_for(all_delivered, NULL, 90000));
    long t_done = now_ms();
    qsort(ids, N_JOBS, sizeof ids[0], cmp_id);
    int dup = check_callbacks();
    printf("# %d jobs, 2 APIs + 3 processors + 2 notifiers, %d ms per download, limits sum 40: "
           "posted in %.1f s, all called back after %.1f s: %.0f jobs/s (ideal %.0f); "
           "duplicate callbacks: %d\n",
           N_JOBS, DELAY_MS, (t_posted - t0) / 1000.0, (t_done - t0) / 1000.0,
           N_JOBS * 1000.0 / (double)(t_done - t0), 40 * 1000.0 / DELAY_MS, dup);
    assert_int_equal(dup, 0);
    for (int a = 0; a < N_AGGR; a++) {
        char name[32];
        snprintf(name, sizeof name, "scale-%d", a);
        long long max = origin_stat(name, "max"), count = origin_stat(name, "count");
        if (max != limits[a] || count != want[a])
            fail_msg("%s: origin saw max %lld at once (limit %d), %lld downloads (jobs %d)", name,
                     max, limits[a], count, want[a]);
    }
    redisContext *c = h_redis_connect(&env.redis);
    assert_non_null(c);
    assert_true(h_wait_for(redis_clean, c, 10000));
    redisFree(c);
    assert_true(h_wait_for(all_instances_seen, NULL, 15000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_many_instances)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
