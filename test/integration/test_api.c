/* API integration tests: the real binary (`downloader api`) against a private
 * redis-server. Checks what enqueue writes (docs/redis.md), validation over HTTP,
 * /retry, /hb, /stats, dashboard endpoints, 1,000 concurrent POSTs, and 503 while
 * Redis is down followed by recovery without a restart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "harness.h"

static h_env_t env;
static redisContext *rc;

static int setup(void **state)
{
    (void)state;
    if (h_env_start(&env, NULL, NULL, NULL) < 0) return -1;
    if (h_env_run(&env, "api") < 0) return -1;
    rc = h_redis_connect(&env.redis);
    return rc ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    redisFree(rc);
    h_env_stop(&env);
    return 0;
}

static void request(const char *method, const char *path, const char *body, h_resp_t *r)
{
    char url[512];
    h_api_url(&env, url, sizeof url, path);
    assert_int_equal(h_http(method, url, body, NULL, r), 0);
}

static void test_enqueue_writes_layout(void **state)
{
    (void)state;
    char id[16];
    long st =
        h_post_job(&env,
                   "{\"url\":\"http://example.com/a.png\",\"aggr_id\":\"agg:1\",\"aggr_limit\":3,"
                   "\"callback_url\":\"http://cb.example/x\",\"extra\":\"foo\",\"max_retries\":1,"
                   "\"request_headers\":{\"X-A\":\"b\"},\"mime_type\":\"image/*\"}",
                   id);
    assert_int_equal(st, 201);
    assert_int_equal(strlen(id), 14);
    char *v = h_redis_str(rc, "HGET job:%s URL", id);
    assert_string_equal(v, "http://example.com/a.png");
    free(v);
    v = h_redis_str(rc, "HGET job:%s DownloadState", id);
    assert_string_equal(v, "Pending");
    free(v);
    v = h_redis_str(rc, "HGET job:%s Extra", id);
    assert_string_equal(v, "foo");
    free(v);
    v = h_redis_str(rc, "HGET job:%s MaxRetries", id);
    assert_string_equal(v, "1");
    free(v);
    v = h_redis_str(rc, "HGET job:%s RequestHeaders", id);
    assert_non_null(strstr(v, "\"X-A\""));
    free(v);
    v = h_redis_str(rc, "HGET aggr:agg:1 limit");
    assert_string_equal(v, "3");
    free(v);
    v = h_redis_str(rc, "LINDEX q:agg:1 -1");
    assert_string_equal(v, id);
    free(v);
    assert_int_equal(h_redis_int(rc, "SISMEMBER aggrs agg:1"), 1);
    assert_true(h_redis_int(rc, "ZSCORE ready agg:1") > 0);
}

static void test_aggregation_update(void **state)
{
    (void)state;
    assert_int_equal(
        h_post_job(&env,
                   "{\"url\":\"http://e/1\",\"aggr_id\":\"upd\",\"aggr_limit\":2,"
                   "\"aggr_proxy\":\"http://u:secret@proxy:3128\",\"callback_url\":\"http://c/\"}",
                   NULL),
        201);
    char *v = h_redis_str(rc, "HGET aggr:upd proxy");
    assert_string_equal(v, "http://u:secret@proxy:3128");
    free(v);
    /* a later job with another limit updates it; without aggr_proxy the proxy stays */
    assert_int_equal(h_post_job(&env,
                                "{\"url\":\"http://e/2\",\"aggr_id\":\"upd\",\"aggr_limit\":7,"
                                "\"callback_url\":\"http://c/\"}",
                                NULL),
                     201);
    v = h_redis_str(rc, "HGET aggr:upd limit");
    assert_string_equal(v, "7");
    free(v);
    v = h_redis_str(rc, "HGET aggr:upd proxy");
    assert_string_equal(v, "http://u:secret@proxy:3128");
    free(v);
    /* an empty aggr_proxy clears it */
    assert_int_equal(h_post_job(&env,
                                "{\"url\":\"http://e/3\",\"aggr_id\":\"upd\",\"aggr_limit\":7,"
                                "\"aggr_proxy\":\"\",\"callback_url\":\"http://c/\"}",
                                NULL),
                     201);
    v = h_redis_str(rc, "HGET aggr:upd proxy");
    assert_string_equal(v, "");
    free(v);
    /* the dashboard masks credentials */
    h_resp_t r;
    request("GET", "/dashboard/aggregations", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body, "secret"));
    assert_non_null(strstr(r.body, "\"name\":\"jobs:upd\""));
    assert_non_null(strstr(r.headers, "Access-Control-Allow-Origin: *"));
    h_resp_free(&r);
}

static void test_validation_errors(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        long status;
        const char *msg;
    } cases[] = {
        {"meh", 400,
         "Error unmarshalling body 'meh' to Job: invalid character 'm' looking for beginning of "
         "value\n"},
        {"{\"goo\":\"bar\"}", 400,
         "Error unmarshalling body '{\"goo\":\"bar\"}' to Job: URL must be a string\n"},
        {"{\"url\":\"http://a/\",\"aggr_id\":\"x\",\"callback_url\":\"http://c/\"}", 400,
         "Error unmarshalling body "
         "'{\"url\":\"http://a/\",\"aggr_id\":\"x\",\"callback_url\":\"http://c/\"}' to "
         "Aggregation: Aggregation limit must be a number\n"},
        {"{\"url\":\"http://a/\",\"aggr_id\":\"x\",\"aggr_limit\":1}", 400,
         "Error unmarshalling body '{\"url\":\"http://a/\",\"aggr_id\":\"x\",\"aggr_limit\":1}' to "
         "Job: "
         "callback_type must be a string\n"},
        {"{\"url\":\"http://a/\",\"aggr_id\":\"x\",\"callback_type\":\"\",\"callback_dst\":\"\"}",
         400,
         "Error unmarshalling body "
         "'{\"url\":\"http://a/\",\"aggr_id\":\"x\",\"callback_type\":\"\",\"callback_dst\":\"\"}' "
         "to Job: You need to provide both callback_type (\"\") and callback_dst (\"\")\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        h_resp_t r;
        request("POST", "/download", cases[i].body, &r);
        assert_int_equal(r.status, cases[i].status);
        assert_string_equal(r.body, cases[i].msg);
        assert_non_null(strstr(r.headers, "text/plain; charset=utf-8"));
        h_resp_free(&r);
    }
    h_resp_t r;
    request("GET", "/download", NULL, &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(r.body, "Invalid request method\n");
    h_resp_free(&r);
}

/* Issue 13 §5: what can never run as sent is refused with a 400 naming the field,
 * instead of a 201 for a truncated or doomed job. */
static void test_refused_at_the_door(void **state)
{
    (void)state;
    static const struct {
        const char *body, *reason;
    } cases[] = {
        {"{\"url\":\"http://a/x\\u0000.png\",\"aggr_id\":\"door\",\"aggr_limit\":1}",
         "to Job: url must not contain a NUL character (\\u0000)\n"},
        {"{\"url\":\"http://a/\",\"aggr_id\":\"door\\u0000x\",\"aggr_limit\":1}",
         "to Job: aggr_id must not contain a NUL character (\\u0000)\n"},
        {"{\"url\":\"ftp://a/\",\"aggr_id\":\"door\",\"aggr_limit\":1}",
         "to Job: url must be an http or https URL with a host\n"},
        {"{\"url\":\"http://a/\",\"aggr_id\":\"door\",\"aggr_limit\":1,\"callback_url\":\"http://c/"
         "\","
         "\"request_headers\":{\"X\":\"a\\r\\nHost: b\"}}",
         "to Job: request_headers: \"X\" has CR or LF in its value\n"},
        {"{\"url\":\"http://a/\",\"aggr_id\":\"door\",\"aggr_limit\":2.5,\"callback_url\":\"http://"
         "c/\"}",
         "to Aggregation: Aggregation limit must be a whole number\n"},
        {"{\"url\":\"http://a/\",\"aggr_id\":\"door\",\"callback_url\":3}",
         "to Job: callback_url must be a string\n"},
        {"{\"url\":\"http://a/"
         "\",\"aggr_id\":\"door\",\"aggr_limit\":9223372036854775808,\"callback_url\":\"http://c/"
         "\"}",
         "to Aggregation: Aggregation limit is out of range\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        h_resp_t r;
        request("POST", "/download", cases[i].body, &r);
        assert_int_equal(r.status, 400);
        size_t bl = strlen(r.body), rl = strlen(cases[i].reason);
        if (bl < rl || strcmp(r.body + bl - rl, cases[i].reason) != 0)
            fail_msg("%s: answered %s", cases[i].body, r.body);
        h_resp_free(&r);
    }
    /* a 900 kB aggr_id would have become a Redis key and a metrics label */
    size_t n = 900 * 1000;
    char *body = malloc(n + 128);
    assert_non_null(body);
    int k = snprintf(body, n + 128, "{\"url\":\"http://a/\",\"aggr_limit\":1,\"aggr_id\":\"");
    memset(body + k, 'a', n);
    snprintf(body + k + n, 128, "\"}");
    h_resp_t r;
    request("POST", "/download", body, &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "to Job: aggr_id is longer than 256 bytes\n"));
    h_resp_free(&r);
    free(body);
    assert_int_equal(h_redis_int(rc, "EXISTS jobs:door"), 0);
    assert_int_equal(h_redis_int(rc, "EXISTS aggr:door"), 0);
}

/* Every route answers 405 with Allow to a method it does not implement; the routes
 * the reference serves to any method (/hb, /stats/, /dashboard/aggregations) still do. */
static void test_methods(void **state)
{
    (void)state;
    static const struct {
        const char *method, *path, *allow;
    } not_allowed[] = {
        {"GET", "/download", "POST"},
        {"PUT", "/download", "POST"},
        {"GET", "/retry/AqUCDp0PUWAKAw", "POST"},
        {"DELETE", "/retry/x", "POST"},
        {"POST", "/download/NSb4FOAs9fVaQw", "GET, HEAD, DELETE"},
        {"PUT", "/download/NSb4FOAs9fVaQw", "GET, HEAD, DELETE"},
        {"PUT", "/failed", "GET, HEAD"},
        {"GET", "/failed/retry", "POST"},
        {"PATCH", "/aggregations/x/jobs", "GET, HEAD, DELETE"},
        {"DELETE", "/aggregations/x", "GET, HEAD, PATCH"},
        {"POST", "/dashboard/instances", "GET, HEAD"},
        {"POST", "/dashboard/history", "GET, HEAD"},
        {"PUT", "/dashboard/failed", "GET, HEAD"},
        {"POST", "/metrics", "GET, HEAD"},
        {"POST", "/files/NSb/NSb4FOAs9fVaQw", "GET, HEAD"},
        {"POST", "/", "GET, HEAD"},
        {"PATCH", "/app.js", "GET, HEAD"},
    };
    for (size_t i = 0; i < sizeof not_allowed / sizeof not_allowed[0]; i++) {
        h_resp_t r;
        request(not_allowed[i].method, not_allowed[i].path, NULL, &r);
        if (r.status != 405)
            fail_msg("%s %s answered %ld", not_allowed[i].method, not_allowed[i].path, r.status);
        char allow[128];
        snprintf(allow, sizeof allow, "Allow: %s\r\n", not_allowed[i].allow);
        if (!strstr(r.headers, allow))
            fail_msg("%s %s: no %s in %s", not_allowed[i].method, not_allowed[i].path, allow,
                     r.headers);
        assert_string_equal(r.body, "Invalid request method\n");
        h_resp_free(&r);
    }
    static const struct {
        const char *method, *path;
        long status;
    } allowed[] = {
        {"POST", "/hb", 200},
        {"DELETE", "/hb", 200},
        {"POST", "/stats/nothing-here", 404},
        {"PUT", "/dashboard/aggregations", 200},
        {"HEAD", "/dashboard/instances", 200},
        {"HEAD", "/", 200},
        {"GET", "/nothing-here", 404},
    };
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
        h_resp_t r;
        request(allowed[i].method, allowed[i].path, NULL, &r);
        if (r.status != allowed[i].status)
            fail_msg("%s %s answered %ld", allowed[i].method, allowed[i].path, r.status);
        h_resp_free(&r);
    }
}

static void test_created_response(void **state)
{
    (void)state;
    h_resp_t r;
    request(
        "POST", "/download",
        "{\"url\":\"http://a/\",\"aggr_id\":\"x\",\"aggr_limit\":1,\"callback_url\":\"http://c/\"}",
        &r);
    assert_int_equal(r.status, 201);
    assert_int_equal(r.body_len, 23);
    assert_non_null(strstr(r.headers, "Content-Type: application/json"));
    h_resp_free(&r);
}

static void test_retry_rules(void **state)
{
    (void)state;
    h_resp_t r;
    redisReply *x = h_redis(rc, "HSET job:AqUCDp0PUWAKAw ID AqUCDp0PUWAKAw CallbackState Failed");
    freeReplyObject(x);
    x = h_redis(rc, "HSET job:PendingState ID PendingState CallbackState Pending");
    freeReplyObject(x);
    x = h_redis(
        rc, "HSET job:FailedWithCb01 ID FailedWithCb01 CallbackState Failed CallbackURL http://c/ "
            "DownloadState Success CallbackCount 2 CallbackMeta boom");
    freeReplyObject(x);
    request("POST", "/retry/AqUCDp0PUWAKAw", NULL, &r);
    assert_int_equal(r.status, 204);
    h_resp_free(&r);
    request("POST", "/retry/PendingState", NULL, &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "Error with callback state of the job Job{ID:PendingState"));
    assert_non_null(strstr(r.body, ": Pending\n"));
    h_resp_free(&r);
    request("POST", "/retry/NonExisting", NULL, &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(r.body, "Error fetching NonExisting from Redis: Not Found\n");
    h_resp_free(&r);
    request("POST", "/retry/", NULL, &r);
    assert_int_equal(r.status, 400);
    h_resp_free(&r);
    request("GET", "/retry/AqUCDp0PUWAKAw", NULL, &r);
    assert_int_equal(r.status, 405);
    h_resp_free(&r);
    /* a failed callback with a destination is queued again with its count reset */
    request("POST", "/retry/FailedWithCb01", NULL, &r);
    assert_int_equal(r.status, 204);
    h_resp_free(&r);
    char *v = h_redis_str(rc, "HGET job:FailedWithCb01 CallbackState");
    assert_string_equal(v, "Pending");
    free(v);
    assert_int_equal(h_redis_int(rc, "HGET job:FailedWithCb01 CallbackCount"), 0);
    assert_int_equal(h_redis_int(rc, "LPOS cb:q FailedWithCb01"), 0);
}

static void test_heartbeat(void **state)
{
    (void)state;
    h_resp_t r;
    char path[600];
    snprintf(path, sizeof path, "%s/hb", env.dir);
    request("GET", "/hb", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "OK");
    h_resp_free(&r);
    h_write_file(path, "");
    request("GET", "/hb", NULL, &r);
    assert_int_equal(r.status, 503);
    char msg[700];
    snprintf(msg, sizeof msg, "Service disabled, '%s' exists!\n", path);
    assert_string_equal(r.body, msg);
    h_resp_free(&r);
    unlink(path);
}

static void test_stats_and_status(void **state)
{
    (void)state;
    h_resp_t r;
    request("GET", "/stats/nobody", NULL, &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "Could not find stats for entity nobody\n");
    h_resp_free(&r);
    redisReply *x = h_redis(rc, "HSET stats:processor spawnedWorkers 5 failures 1");
    freeReplyObject(x);
    request("GET", "/stats/processor", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"alive\": 0, \"failures\": 1, \"spawnedWorkers\": 5}");
    h_resp_free(&r);
    char id[16];
    assert_int_equal(
        h_post_job(&env,
                   "{\"url\":\"http://a/"
                   "s\",\"aggr_id\":\"st\",\"aggr_limit\":1,\"callback_url\":\"http://c/\"}",
                   id),
        201);
    char path[64];
    snprintf(path, sizeof path, "/download/%s", id);
    request("GET", path, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"download_state\":\"Pending\""));
    assert_non_null(strstr(r.body, "\"url\":\"http://a/s\""));
    h_resp_free(&r);
    request("GET", "/download/AAAAAAAAAAAAAA", NULL, &r);
    assert_int_equal(r.status, 404);
    h_resp_free(&r);
}

static void test_static_ui(void **state)
{
    (void)state;
    h_resp_t r;
    request("GET", "/", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "Downloader"));
    assert_non_null(strstr(r.headers, "text/html"));
    h_resp_free(&r);
    request("GET", "/nope.txt", NULL, &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "404 page not found\n");
    h_resp_free(&r);
    request("GET", "/files/abc/../../etc", NULL, &r);
    assert_int_equal(r.status, 404);
    h_resp_free(&r);
}

static size_t discard(char *p, size_t s, size_t n, void *arg)
{
    (void)p, (void)arg;
    return s * n;
}

/* 1,000 concurrent POSTs over 50 connections give 1,000 distinct jobs in the right lists. */
static void test_concurrent_posts(void **state)
{
    (void)state;
    enum { N = 1000 };
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, 50L);
    static char bodies[N][160];
    CURL *e[N];
    char url[256];
    h_api_url(&env, url, sizeof url, "/download");
    struct curl_slist *hdr = curl_slist_append(NULL, "Expect:");
    for (int i = 0; i < N; i++) {
        snprintf(bodies[i], sizeof bodies[i],
                 "{\"url\":\"http://a/"
                 "%d\",\"aggr_id\":\"load%d\",\"aggr_limit\":5,\"callback_url\":\"http://c/\"}",
                 i, i % 10);
        e[i] = curl_easy_init();
        curl_easy_setopt(e[i], CURLOPT_URL, url);
        curl_easy_setopt(e[i], CURLOPT_POSTFIELDS, bodies[i]);
        curl_easy_setopt(e[i], CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(e[i], CURLOPT_WRITEFUNCTION, discard);
        curl_multi_add_handle(m, e[i]);
    }
    int running = 1;
    while (running) {
        curl_multi_perform(m, &running);
        curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    int ok = 0;
    for (int i = 0; i < N; i++) {
        long code = 0;
        curl_easy_getinfo(e[i], CURLINFO_RESPONSE_CODE, &code);
        ok += code == 201;
        curl_multi_remove_handle(m, e[i]);
        curl_easy_cleanup(e[i]);
    }
    curl_slist_free_all(hdr);
    curl_multi_cleanup(m);
    assert_int_equal(ok, N);
    long long total = 0;
    for (int a = 0; a < 10; a++) {
        long long len = h_redis_int(rc, "LLEN q:load%d", a);
        assert_int_equal(len, N / 10);
        total += len;
    }
    assert_int_equal(total, N);
    /* every queued id is distinct and has its job hash */
    for (int a = 0; a < 10; a++) {
        redisReply *l = h_redis(rc, "LRANGE q:load%d 0 -1", a);
        for (size_t i = 0; i < l->elements; i++)
            assert_int_equal(h_redis_int(rc, "EXISTS job:%s", l->element[i]->str), 1);
        freeReplyObject(l);
    }
    redisReply *x = h_redis(
        rc, "EVAL %s 0",
        "local s = {} local n = 0 for a = 0, 9 do for _, id in ipairs(redis.call('LRANGE', "
        "'q:load' .. a, 0, -1)) do if not s[id] then s[id] = 1 n = n + 1 end end end return n");
    assert_int_equal(x->integer, N);
    freeReplyObject(x);
}

/* Subscribers of the wake-up channel (PUBSUB NUMSUB). */
static long long wake_subscribers(redisContext *c)
{
    redisReply *r = redisCommand(c, "PUBSUB NUMSUB downloader:wake");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 2);
    long long n = r->element[1]->integer;
    freeReplyObject(r);
    return n;
}

/* An API-only process has no wake or cancel listener: it opens no pub/sub connection,
 * so it is not woken by every message published for processors and notifiers. */
static void test_api_does_not_subscribe(void **state)
{
    (void)state;
    assert_int_equal(h_post_job(&env,
                                "{\"url\":\"http://a/s\",\"aggr_id\":\"sub\",\"aggr_limit\":1,"
                                "\"callback_url\":\"http://c/\"}",
                                NULL),
                     201);
    assert_int_equal(wake_subscribers(rc), 0);
}

static bool api_serves(void *arg)
{
    (void)arg;
    return h_post_job(&env,
                      "{\"url\":\"http://a/"
                      "r\",\"aggr_id\":\"rr\",\"aggr_limit\":1,\"callback_url\":\"http://c/\"}",
                      NULL) == 201;
}

static void test_redis_down_and_back(void **state)
{
    (void)state;
    redisFree(rc);
    rc = NULL;
    h_redis_kill(&env.redis);
    h_resp_t r;
    request("POST", "/download",
            "{\"url\":\"http://a/d\",\"aggr_id\":\"d\",\"aggr_limit\":1,\"callback_url\":\"http://"
            "c/\"}",
            &r);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "Redis"));
    h_resp_free(&r);
    request("GET", "/stats/processor", NULL, &r);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.headers, "Access-Control-Allow-Origin: *"));
    h_resp_free(&r);
    request("GET", "/aggregations/d", NULL, &r); /* the operator routes alike */
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "Redis is not reachable"));
    assert_non_null(strstr(r.headers, "Access-Control-Allow-Origin: *"));
    h_resp_free(&r);
    request("GET", "/hb", NULL, &r); /* the heartbeat does not need Redis */
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    request("GET", "/ready", NULL, &r); /* readiness does */
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "Redis is not reachable"));
    h_resp_free(&r);
    request("POST", "/ready", NULL, &r);
    assert_int_equal(r.status, 405);
    h_resp_free(&r);
    assert_int_equal(h_redis_restart(&env.redis), 0);
    assert_true(h_wait_for(api_serves, NULL, 10000));
    request("GET", "/ready", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "OK");
    h_resp_free(&r);
    rc = h_redis_connect(&env.redis);
    assert_non_null(rc);
}

/* A restarted Redis answers -LOADING while it reads its data: the API is 503 meanwhile
 * and serves again once loading is over (it used to stay 503 until the next disconnect,
 * since the ready check failed on a connection that stayed open). */
static void test_redis_loading_after_restart(void **state)
{
    (void)state;
    assert_int_equal(h_redis_int(rc, "EVAL %s 0",
                                 "for i = 1, 4000 do redis.call('SET', 'pad:' .. i, i) end "
                                 "return 1"),
                     1);
    redisReply *ok = h_redis(rc, "SAVE");
    assert_non_null(ok);
    freeReplyObject(ok);
    redisFree(rc);
    rc = NULL;
    h_redis_kill(&env.redis);
    char saved[sizeof env.redis.args];
    snprintf(saved, sizeof saved, "%s", env.redis.args);
    size_t n = strlen(saved); /* 1 ms per key: about 4 s of loading */
    assert_true(n + 80 < sizeof env.redis.args);
    snprintf(env.redis.args + n, sizeof env.redis.args - n,
             "%s--key-load-delay 1000 --loading-process-events-interval-bytes 1024", n ? " " : "");
    assert_int_equal(h_redis_restart(&env.redis), 0);
    snprintf(env.redis.args, sizeof env.redis.args, "%s", saved);
    rc = h_redis_connect(&env.redis);
    assert_non_null(rc);
    redisReply *ping = h_redis(rc, "PING");
    bool loading = ping && ping->type == REDIS_REPLY_ERROR && strstr(ping->str, "LOADING");
    if (ping) freeReplyObject(ping);
    assert_true(loading); /* the test sees the loading phase */
    assert_true(h_wait_for(api_serves, NULL, 20000));
    assert_int_equal(h_redis_int(rc, "EXISTS pad:4000"), 1);
    freeReplyObject(h_redis(rc, "FLUSHALL"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_enqueue_writes_layout),
        cmocka_unit_test(test_aggregation_update),
        cmocka_unit_test(test_validation_errors),
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_refused_at_the_door),
        cmocka_unit_test(test_created_response),
        cmocka_unit_test(test_retry_rules),
        cmocka_unit_test(test_heartbeat),
        cmocka_unit_test(test_stats_and_status),
        cmocka_unit_test(test_static_ui),
        cmocka_unit_test(test_concurrent_posts),
        cmocka_unit_test(test_api_does_not_subscribe),
        cmocka_unit_test(test_redis_down_and_back),
        cmocka_unit_test(test_redis_loading_after_restart),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
