/* Idempotency-Key on POST /download and the honest 503: the real binary (`downloader
 * api`) against a private redis-server. A repeated key with the same body answers the
 * first job's id (Idempotent-Replayed: true) and creates nothing; another body answers
 * 422; ten concurrent identical requests make one job; a Redis stopped with SIGSTOP
 * gives a 503 that says the outcome is unknown and names the job id, and a retry with
 * the same key after Redis wakes (and runs the queued enqueue) creates no second job. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "harness.h"

#define TTL_MS 600000 /* api.idempotency_ttl below: 10 minutes */

static h_env_t env;
static redisContext *rc;

static int setup(void **state)
{
    (void)state;
    h_env_opts_t o = {.api_extra = "\"idempotency_ttl\": \"10m\"",
                      .redis_extra = "\"command_timeout\": \"800ms\""};
    if (h_env_start_opts(&env, &o) < 0) return -1;
    if (h_env_run(&env, "api") < 0) return -1;
    rc = h_redis_connect(&env.redis);
    return rc ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    if (rc) redisFree(rc);
    h_env_stop(&env);
    return 0;
}

/* POST /download with an Idempotency-Key header line (NULL: none). */
static void post(const char *key_header, const char *body, h_resp_t *r)
{
    char url[256];
    h_api_url(&env, url, sizeof url, "/download");
    const char *headers[] = {key_header, NULL};
    assert_int_equal(h_http("POST", url, body, headers, r), 0);
}

/* The id of a 201 {"id":"..."} body, or "" */
static const char *body_id(const h_resp_t *r, char id[16])
{
    const char *p = strstr(r->body, "\"id\":\"");
    snprintf(id, 16, "%.14s", p ? p + 6 : "");
    return id;
}

static bool replayed(const h_resp_t *r)
{
    return strstr(r->headers, "Idempotent-Replayed: true\r\n") != NULL;
}

/* POST with that key: asserts 201 {"id"} and whether Idempotent-Replayed is there. */
static void post_created(const char *key_header, const char *body, bool replay, char id[16])
{
    h_resp_t r;
    post(key_header, body, &r);
    assert_int_equal(r.status, 201);
    if (replayed(&r) != replay)
        fail_msg("%s: Idempotent-Replayed %s", key_header, replay ? "missing" : "unexpected");
    assert_non_null(strstr(r.headers, "Content-Type: application/json"));
    assert_int_equal(strlen(body_id(&r, id)), 14);
    h_resp_free(&r);
}

#define JOB(aggr, n)                                                                               \
    "{\"url\":\"http://a/" #n "\",\"aggr_id\":\"" aggr "\",\"aggr_limit\":1,\"callback_url\":"     \
    "\"http://c/\"}"

static void test_replay_same_body(void **state)
{
    (void)state;
    char first[16], again[16];
    post_created("Idempotency-Key: order-17", JOB("rep", 1), false, first);
    for (int i = 0; i < 2; i++) {
        post_created("Idempotency-Key: order-17", JOB("rep", 1), true, again);
        assert_string_equal(again, first);
    }
    assert_int_equal(h_redis_int(rc, "LLEN q:rep"), 1);
    char *rec = h_redis_str(rc, "GET idem:order-17");
    assert_non_null(rec);
    assert_int_equal(strlen(rec), 64 + 1 + 14); /* "<sha256 hex>:<id>" */
    assert_string_equal(rec + 65, first);
    free(rec);
    long long ttl = h_redis_int(rc, "PTTL idem:order-17");
    assert_true(ttl > TTL_MS - 60000 && ttl <= TTL_MS);
    /* another key is another job */
    post_created("Idempotency-Key: order-18", JOB("rep", 1), false, again);
    assert_string_not_equal(again, first);
    assert_int_equal(h_redis_int(rc, "LLEN q:rep"), 2);
    /* once the record expired, the key creates a new job */
    assert_int_equal(h_redis_int(rc, "PEXPIRE idem:order-17 1"), 1);
    usleep(20000);
    post_created("Idempotency-Key: order-17", JOB("rep", 1), false, again);
    assert_string_not_equal(again, first);
    assert_int_equal(h_redis_int(rc, "LLEN q:rep"), 3);
}

static void test_other_body_conflicts(void **state)
{
    (void)state;
    h_resp_t r;
    post("Idempotency-Key: k/422 x", JOB("mis", 1), &r);
    assert_int_equal(r.status, 201);
    h_resp_free(&r);
    post("Idempotency-Key: k/422 x", JOB("mis", 2), &r);
    assert_int_equal(r.status, 422);
    assert_string_equal(r.body,
                        "Idempotency-Key 'k/422 x' was already used with a different request "
                        "body\n");
    assert_non_null(strstr(r.headers, "text/plain; charset=utf-8"));
    assert_false(replayed(&r));
    h_resp_free(&r);
    assert_int_equal(h_redis_int(rc, "LLEN q:mis"), 1);
}

static void test_bad_keys(void **state)
{
    (void)state;
    char longest[300], too_long[300];
    snprintf(longest, sizeof longest, "Idempotency-Key: %0255d", 7);
    snprintf(too_long, sizeof too_long, "Idempotency-Key: %0256d", 7);
    /* (a control character is refused by the HTTP parser already: 400 Bad Request) */
    const char *bad[] = {"Idempotency-Key;" /* empty */, too_long, "Idempotency-Key: caf\xc3\xa9",
                         "Idempotency-Key: a\tb"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        h_resp_t r;
        post(bad[i], JOB("bad", 1), &r);
        if (r.status != 400) fail_msg("%s answered %ld", bad[i], r.status);
        assert_string_equal(r.body,
                            "Idempotency-Key must be 1 to 255 printable ASCII characters\n");
        h_resp_free(&r);
    }
    assert_int_equal(h_redis_int(rc, "EXISTS q:bad"), 0);
    h_resp_t r;
    post(longest, JOB("bad", 1), &r);
    assert_int_equal(r.status, 201);
    h_resp_free(&r);
    /* a bad body is still the body's 400, and records nothing */
    post("Idempotency-Key: bad-body", "{\"goo\":1}", &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "URL must be a string"));
    h_resp_free(&r);
    assert_int_equal(h_redis_int(rc, "EXISTS idem:bad-body"), 0);
}

/* Without the header nothing changes: the same body twice is two jobs, no record. */
static void test_no_header(void **state)
{
    (void)state;
    char a[16], b[16];
    assert_int_equal(h_post_job(&env, JOB("plain", 1), a), 201);
    assert_int_equal(h_post_job(&env, JOB("plain", 1), b), 201);
    assert_string_not_equal(a, b);
    assert_int_equal(h_redis_int(rc, "LLEN q:plain"), 2);
    redisReply *k = h_redis(rc, "KEYS idem:*");
    size_t before = k->elements;
    freeReplyObject(k);
    assert_int_equal(h_post_job(&env, JOB("plain", 2), NULL), 201);
    k = h_redis(rc, "KEYS idem:*");
    assert_int_equal(k->elements, before);
    freeReplyObject(k);
}

static size_t collect(char *p, size_t s, size_t n, void *arg)
{
    char *buf = arg;
    size_t len = strlen(buf), add = s * n;
    if (len + add < 256) {
        memcpy(buf + len, p, add);
        buf[len + add] = 0;
    }
    return s * n;
}

static size_t count_replayed(char *p, size_t s, size_t n, void *arg)
{
    if (s * n >= 20 && strncmp(p, "Idempotent-Replayed:", 20) == 0) ++*(int *)arg;
    return s * n;
}

/* Ten identical requests at once, each on its own connection: one job. */
static void test_concurrent_identical(void **state)
{
    (void)state;
    enum { N = 10 };
    CURLM *m = curl_multi_init();
    CURL *e[N];
    char bodies[N][256] = {{0}}, url[256];
    int nreplayed = 0;
    h_api_url(&env, url, sizeof url, "/download");
    struct curl_slist *hdr = curl_slist_append(NULL, "Expect:");
    hdr = curl_slist_append(hdr, "Idempotency-Key: concurrent-1");
    for (int i = 0; i < N; i++) {
        e[i] = curl_easy_init();
        curl_easy_setopt(e[i], CURLOPT_URL, url);
        curl_easy_setopt(e[i], CURLOPT_POSTFIELDS, JOB("conc", 1));
        curl_easy_setopt(e[i], CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(e[i], CURLOPT_FRESH_CONNECT, 1L);
        curl_easy_setopt(e[i], CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(e[i], CURLOPT_WRITEDATA, bodies[i]);
        curl_easy_setopt(e[i], CURLOPT_HEADERFUNCTION, count_replayed);
        curl_easy_setopt(e[i], CURLOPT_HEADERDATA, &nreplayed);
        curl_multi_add_handle(m, e[i]);
    }
    int running = 1;
    while (running) {
        curl_multi_perform(m, &running);
        curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    for (int i = 0; i < N; i++) {
        long code = 0;
        curl_easy_getinfo(e[i], CURLINFO_RESPONSE_CODE, &code);
        assert_int_equal(code, 201);
        assert_string_equal(bodies[i], bodies[0]);
        curl_multi_remove_handle(m, e[i]);
        curl_easy_cleanup(e[i]);
    }
    curl_slist_free_all(hdr);
    curl_multi_cleanup(m);
    assert_int_equal(nreplayed, N - 1);
    assert_int_equal(h_redis_int(rc, "LLEN q:conc"), 1);
}

static bool job_exists(void *arg)
{
    return h_redis_int(rc, "EXISTS job:%s", (const char *)arg) == 1;
}

static bool api_serves(void *arg)
{
    (void)arg;
    return h_post_job(&env, JOB("wake", 1), NULL) == 201;
}

/* The 503 of an unknown outcome: its text and X-Job-Id name the same id (into id). */
static void expect_unknown(h_resp_t *r, char id[16])
{
    char want[512], header[64];
    assert_int_equal(r->status, 503);
    const char *p = strstr(r->body, "job ");
    assert_non_null(p);
    snprintf(id, 16, "%.14s", p + 4);
    snprintf(want, sizeof want,
             "Service unavailable: Redis did not answer in time, the outcome is unknown: job %s "
             "may have been created. Check GET /download/%s, or retry with the same "
             "Idempotency-Key\n",
             id, id);
    assert_string_equal(r->body, want);
    snprintf(header, sizeof header, "X-Job-Id: %s\r\n", id);
    assert_non_null(strstr(r->headers, header));
    h_resp_free(r);
}

/* A Redis that hangs (SIGSTOP) past redis.command_timeout: the API cannot know whether
 * the enqueue it sent will run, says so, and names the id; Redis runs it on waking, and
 * the retry with the same key gets that job back instead of a second one. */
static void test_hung_redis(void **state)
{
    (void)state;
    h_resp_t r;
    char id[16], again[16];
    redisFree(rc);
    rc = NULL;
    h_redis_pause(&env.redis);
    post("Idempotency-Key: hung-1", JOB("hung", 1), &r);
    expect_unknown(&r, id);
    /* meanwhile the connection is down: nothing is sent, the outcome is known */
    post("Idempotency-Key: hung-2", JOB("hung", 2), &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "Service unavailable: Redis is not reachable, try again later\n");
    assert_null(strstr(r.headers, "X-Job-Id"));
    h_resp_free(&r);
    h_redis_resume(&env.redis);
    rc = h_redis_connect(&env.redis);
    assert_non_null(rc);
    /* the enqueue answered 503 ran when Redis woke up */
    assert_true(h_wait_for(job_exists, id, 5000));
    assert_true(h_wait_for(api_serves, NULL, 10000));
    post_created("Idempotency-Key: hung-1", JOB("hung", 1), true, again);
    assert_string_equal(again, id);
    assert_int_equal(h_redis_int(rc, "LLEN q:hung"), 1);
}

/* With redis.wait_replicas, Redis hanging during the WAIT (no replica: WAIT waits out
 * its timeout, 400 ms) is no "Redis down" either: the master ran the enqueue, a
 * failover could still lose it. A second api with WAIT; Redis is stopped 150 ms into
 * the request. */
static void test_wait_cut_off(void **state)
{
    (void)state;
    char *json = h_read_file(env.config, NULL);
    const char *at = strstr(json, "\"command_timeout\": \"800ms\"");
    assert_non_null(at);
    assert_true(strlen(env.config) + sizeof ".wait" <= sizeof env.config);
    strcat(env.config, ".wait");
    FILE *f = fopen(env.config, "w");
    fprintf(f, "%.*s\"wait_replicas\": 1, \"wait_timeout\": 1000, %s", (int)(at - json), json, at);
    fclose(f);
    free(json);
    assert_true(h_env_run(&env, "api") > 0);
    pid_t stopper = fork();
    if (stopper == 0) {
        usleep(150000);
        h_redis_pause(&env.redis);
        _exit(0);
    }
    h_resp_t r;
    char id[16];
    post(NULL, JOB("wait", 1), &r);
    waitpid(stopper, NULL, 0);
    expect_unknown(&r, id);
    h_redis_resume(&env.redis);
    assert_true(h_wait_for(job_exists, id, 5000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_same_body),
        cmocka_unit_test(test_other_body_conflicts),
        cmocka_unit_test(test_bad_keys),
        cmocka_unit_test(test_no_header),
        cmocka_unit_test(test_concurrent_identical),
        cmocka_unit_test(test_hung_redis),
        cmocka_unit_test(test_wait_cut_off),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
