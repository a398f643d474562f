/* Rate limits per aggregation (issue 14): aggr_rate spacing of starts across two
 * processors, the pause of an aggregation after a 429/503 (Retry-After, or 1 s
 * doubling), AIMD effective concurrency against an origin that struggles, and the
 * 400 for a bad aggr_rate. Real binary (api, two processors, notifier), a private
 * redis-server, and test/origin.py, which records every request's arrival time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "harness.h"

static h_env_t env;

static int setup(void **state)
{
    (void)state;
    if (h_env_start(&env, "\"shutdown_grace\": 1", NULL, NULL) < 0) return -1;
    if (h_env_run(&env, "api") < 0) return -1;
    bool ok = h_env_run(&env, "processor") > 0 && h_env_run(&env, "processor") > 0 &&
              h_env_run(&env, "notifier") > 0;
    return ok ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    h_env_stop(&env);
    return 0;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec * 1000 + (double)ts.tv_nsec / 1e6;
}

/* Posts a job; aggr_rate and max_retries are left out when negative. */
static void post(const char *origin_path, const char *aggr, int limit, const char *extra, char *id)
{
    char url[512], cb[256], body[2048];
    h_origin_url(&env, url, sizeof url, origin_path);
    h_origin_url(&env, cb, sizeof cb, "/callback/rate");
    snprintf(body, sizeof body,
             "{\"url\":\"%s\",\"aggr_id\":\"%s\",\"aggr_limit\":%d,\"callback_url\":\"%s\"%s%s}",
             url, aggr, limit, cb, extra ? "," : "", extra ? extra : "");
    assert_int_equal(h_post_job(&env, body, id), 201);
}

/* Posts n jobs of one aggregation for /data/100?aggr=<aggr>&n=<i><query>. */
static void post_many(int n, const char *aggr, const char *query, int limit, const char *extra,
                      char (*ids)[16])
{
    for (int i = 0; i < n; i++) {
        char path[192];
        snprintf(path, sizeof path, "/data/100?aggr=%s&n=%d%s", aggr, i, query);
        post(path, aggr, limit, extra, ids[i]);
    }
}

/* Waits for every job's successful callback and checks it reports no error. */
static void wait_success(char (*ids)[16], int n, int timeout_ms)
{
    for (int i = 0; i < n; i++) {
        yajl_val p = h_wait_callback(&env, ids[i], timeout_ms);
        assert_non_null(p);
        assert_string_equal(h_jstr(p, "error"), "");
        yajl_tree_free(p);
    }
}

/* Arrival times (ms, ascending) of the origin's requests with aggr=<aggr>, optionally
 * only those for one path. Returns the count. */
static int arrivals(const char *aggr, const char *path, double *t, int max)
{
    char want[128];
    snprintf(want, sizeof want, "aggr=%s", aggr);
    yajl_val list = h_origin_json(&env, "/_requests");
    int n = 0;
    for (size_t i = 0; list && i < list->u.array.len && n < max; i++) {
        yajl_val r = list->u.array.values[i];
        const char *q = h_jstr(r, "query"), *p = h_jstr(r, "path");
        const char *at = q ? strstr(q, want) : NULL;
        if (!at || (at[strlen(want)] && at[strlen(want)] != '&')) continue;
        if (path && (!p || strcmp(p, path) != 0)) continue;
        const char *k[] = {"t", NULL};
        t[n++] = YAJL_GET_DOUBLE(yajl_tree_get(r, k, yajl_t_number));
    }
    yajl_tree_free(list);
    return n;
}

static long long origin_stat(const char *aggr, const char *field)
{
    yajl_val st = h_origin_json(&env, "/_stats");
    const char *k[] = {aggr, field, NULL};
    yajl_val v = st ? yajl_tree_get(st, k, yajl_t_number) : NULL;
    long long n = v ? YAJL_GET_INTEGER(v) : -1;
    yajl_tree_free(st);
    return n;
}

/* The dashboard's entry for one aggregation (caller frees the returned root). */
static yajl_val dashboard_aggr(const char *aggr, yajl_val *root)
{
    char url[256];
    h_resp_t r;
    h_api_url(&env, url, sizeof url, "/dashboard/aggregations");
    assert_int_equal(h_http("GET", url, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    *root = h_json(r.body);
    h_resp_free(&r);
    for (size_t i = 0; *root && i < (*root)->u.array.len; i++) {
        yajl_val a = (*root)->u.array.values[i];
        if (strcmp(h_jstr(a, "id"), aggr) == 0) return a;
    }
    return NULL;
}

static double jdouble(yajl_val o, const char *key)
{
    const char *k[] = {key, NULL};
    yajl_val v = yajl_tree_get(o, k, yajl_t_number);
    return v ? YAJL_GET_DOUBLE(v) : -1;
}

/* aggr_rate 5 with two processors: starts spaced 200 ms apart (no 1 s window with
 * more than 6, 16 starts over at least 2.7 s), all succeed; the dashboard shows it. */
static void test_rate_spaces_starts_across_processors(void **state)
{
    (void)state;
    static char ids[16][16];
    post_many(16, "r5", "", 16, "\"aggr_rate\":5", ids);
    yajl_val root;
    yajl_val a = dashboard_aggr("r5", &root);
    assert_non_null(a);
    assert_true(jdouble(a, "rate") == 5);
    assert_int_equal(h_jint(a, "effective_limit"), 16);
    assert_int_equal(h_jint(a, "paused_until_ms"), 0);
    yajl_tree_free(root);
    wait_success(ids, 16, 30000);
    double t[32];
    int n = arrivals("r5", NULL, t, 32);
    assert_int_equal(n, 16);
    double span = t[n - 1] - t[0];
    print_message("rate 5: 16 starts over %.0f ms\n", span);
    assert_true(span >= 2700);
    for (int i = 0; i < n; i++) {
        int in_window = 0;
        for (int j = i; j < n && t[j] < t[i] + 1000; j++)
            in_window++;
        assert_true(in_window <= 6);
    }
}

/* aggr_rate 0.5: two jobs submitted together start 2 s (±10%) apart. */
static void test_fractional_rate(void **state)
{
    (void)state;
    static char ids[2][16];
    post_many(2, "r05", "", 4, "\"aggr_rate\":0.5", ids);
    wait_success(ids, 2, 15000);
    double t[4];
    assert_int_equal(arrivals("r05", NULL, t, 4), 2);
    print_message("rate 0.5: starts %.0f ms apart\n", t[1] - t[0]);
    assert_true(t[1] - t[0] >= 1800 && t[1] - t[0] <= 2200);
}

/* The origin answers the next requests for path with these responses (JSON list items). */
static void script(const char *path, const char *responses)
{
    char body[512];
    snprintf(body, sizeof body, "{\"path\":\"%s\",\"responses\":[%s]}", path, responses);
    assert_int_equal(h_origin_post(&env, "/_script", body), 200);
}

static bool got_request(void *arg)
{
    double t[4];
    return arrivals("p429", arg, t, 4) > 0;
}

/* A 429 with Retry-After: 2 pauses the whole aggregation for 2 s on both processors
 * (requests already running finish); another aggregation runs meanwhile; then all
 * succeed. The pause shows on the dashboard and in the queued jobs' status. */
static void test_429_retry_after_pauses_aggregation(void **state)
{
    (void)state;
    script("/data/101", "{\"status\":429,\"headers\":{\"Retry-After\":\"2\"}}");
    static char ids[9][16], other[4][16];
    post("/data/101?aggr=p429", "p429", 3, NULL, ids[0]);
    post_many(8, "p429", "&delay_ms=300", 3, NULL, ids + 1);
    assert_true(h_wait_for(got_request, "/data/101", 10000));
    double t429;
    assert_int_equal(arrivals("p429", "/data/101", &t429, 1), 1);
    post_many(4, "other", "", 2, NULL, other);
    wait_success(other, 4, 10000);
    double done = now_ms();
    print_message("429: the other aggregation done %.0f ms after the 429\n", done - t429);
    assert_true(done < t429 + 2000);

    yajl_val root;
    yajl_val a = dashboard_aggr("p429", &root);
    assert_non_null(a);
    assert_true(h_jint(a, "paused_until_ms") >= (long long)t429 + 2000);
    assert_string_equal(h_jstr(a, "waiting"), "pause");
    yajl_tree_free(root);
    char url[256];
    h_resp_t r;
    h_api_url(&env, url, sizeof url, "/download/");
    strcat(url, ids[8]); /* queued behind the pause */
    assert_int_equal(h_http("GET", url, NULL, NULL, &r), 0);
    yajl_val st = h_json(r.body);
    h_resp_free(&r);
    assert_string_equal(h_jstr(st, "download_state"), "Pending");
    assert_string_equal(h_jstr(st, "waiting"), "pause");
    const char *k[] = {"aggregation", "paused_until_ms", NULL};
    assert_true(YAJL_GET_INTEGER(yajl_tree_get(st, k, yajl_t_number)) >= (long long)t429 + 2000);
    yajl_tree_free(st);

    wait_success(ids, 9, 20000);
    double t[32];
    int n = arrivals("p429", NULL, t, 32);
    assert_int_equal(n, 10); /* 9 jobs, the 429 one twice */
    for (int i = 0; i < n; i++) {
        if (t[i] <= t429 + 50) continue; /* started with the 429 one: running */
        if (t[i] < t429 + 2000)
            fail_msg("request %.0f ms after the 429, inside the pause", t[i] - t429);
    }
}

/* 429 without Retry-After three times in a row: pauses of 1, 2 and 4 s. */
static void test_429_pauses_double(void **state)
{
    (void)state;
    script("/data/102", "{\"status\":429},{\"status\":429},{\"status\":429}");
    static char ids[1][16];
    post("/data/102?aggr=p3", "p3", 1, "\"max_retries\":5", ids[0]);
    wait_success(ids, 1, 20000);
    double t[8];
    assert_int_equal(arrivals("p3", NULL, t, 8), 4);
    double g1 = t[1] - t[0], g2 = t[2] - t[1], g3 = t[3] - t[2];
    print_message("429 x3: gaps %.0f, %.0f, %.0f ms\n", g1, g2, g3);
    assert_true(g1 >= 1000 && g1 < 1800);
    assert_true(g2 >= 2000 && g2 < 3000);
    assert_true(g3 >= 4000 && g3 < 5500);
}

/* AIMD: an origin answering 503 while more than 2 of the aggregation's requests are in
 * flight, aggr_limit 8: few 503s (the effective limit settles at 2), all succeed. */
static void test_adaptive_concurrency(void **state)
{
    (void)state;
    static char ids[16][16];
    post_many(16, "ad", "&busy_over=2&delay_ms=200", 8, "\"max_retries\":20", ids);
    wait_success(ids, 16, 60000);
    long long rejected = origin_stat("ad", "rejected");
    print_message("adaptive: %lld 503s for 16 jobs\n", rejected);
    assert_true(rejected >= 1);  /* the origin did push back */
    assert_true(rejected <= 16); /* without AIMD, each resumption starts 8 again */
}

static void test_bad_aggr_rate(void **state)
{
    (void)state;
    char url[512], api[256], body[2048];
    h_origin_url(&env, url, sizeof url, "/data/10");
    h_api_url(&env, api, sizeof api, "/download");
    const char *bad[] = {"\"5\"", "-1", "true", "{}", "[1]", "-0.5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(body, sizeof body,
                 "{\"url\":\"%s\",\"aggr_id\":\"bad\",\"aggr_limit\":1,\"aggr_rate\":%s,"
                 "\"callback_url\":\"%s\"}",
                 url, bad[i], url);
        h_resp_t r;
        assert_int_equal(h_http("POST", api, body, NULL, &r), 0);
        assert_int_equal(r.status, 400);
        if (!strstr(r.body, "aggr_rate")) fail_msg("reason without aggr_rate: %s", r.body);
        assert_non_null(strstr(r.body, "Error unmarshalling body"));
        h_resp_free(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_aggr_rate),
        cmocka_unit_test(test_rate_spaces_starts_across_processors),
        cmocka_unit_test(test_fractional_rate),
        cmocka_unit_test(test_429_retry_after_pauses_aggregation),
        cmocka_unit_test(test_429_pauses_double),
        cmocka_unit_test(test_adaptive_concurrency),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
