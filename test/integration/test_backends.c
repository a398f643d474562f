/* Backend integration tests: the HTTP callback backend against the test sink
 * (test/origin.py) and the Kafka backend against librdkafka's mock cluster
 * (build/test/tools/kafka_mock), both driven from a libuv loop in this process exactly
 * as the notifier drives them. Covers delivery, failure texts, Retry-After, timeouts,
 * connection reuse, redirects, Standard Webhooks signatures (verified here with
 * libcrypto), Kafka delivery reports (consumed back with a librdkafka consumer),
 * unknown topic, unreachable broker, and the flush/purge on close. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "curlm.h"
#include "harness.h"
#include "kafka.h"
#include "log.h"

#define RAW_KEY "test-signing-key-0123456789abcdef"

/* ---------- shared fixtures: the sink and the mock Kafka cluster ---------- */

static h_env_t sink; /* only origin/origin_port are used: h_origin_* helpers */
static kmock_t kmock;

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    log_init();
    memset(&sink, 0, sizeof sink);
    sink.origin_port = h_free_port();
    char port[16], script[512];
    snprintf(port, sizeof port, "%d", sink.origin_port);
    snprintf(script, sizeof script, "%s/test/origin.py", h_src());
    char *argv[] = {"python3", script, "--port", port, NULL};
    sink.origin = h_spawn(argv, NULL, NULL);
    if (h_wait_port(sink.origin_port, 10000) < 0) {
        print_error("test/origin.py did not start (DOWNLOADER_SRC=%s)\n", h_src());
        return -1;
    }
    if (kmock_start(&kmock, "callbacks:3") < 0) {
        char tool[512];
        h_tool(tool, sizeof tool, "kafka_mock");
        print_error("%s did not print BOOTSTRAP=...\n", tool);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    kmock_stop(&kmock);
    h_stop(sink.origin, SIGTERM, 3000);
    curl_global_cleanup();
    return 0;
}

static int reset_sink(void **state)
{
    (void)state;
    return h_origin_post(&sink, "/_reset", "{}") == 200 ? 0 : -1;
}

/* ---------- a loop with one backend, as the notifier runs it ---------- */

typedef struct {
    uv_loop_t loop;
    curlm_t *m;
    backend_t *b;
    config_t cfg;
    config_kv_t props[8];
    uv_timer_t guard;
    bool expired;
    int done;
    bool closed;
    backend_result_t *res; /* one per send, indexed by the send's arg */
    int n;
} ctx_t;

/* A send's done argument: the context and the index of its result. */
typedef struct {
    ctx_t *c;
    int i;
} slot_t;

static void on_slot_done(const backend_result_t *res, void *arg)
{
    slot_t *s = arg;
    s->c->res[s->i] = *res;
    s->c->done++;
}

static void ctx_init(ctx_t *c, int n)
{
    memset(c, 0, sizeof *c);
    assert_int_equal(uv_loop_init(&c->loop), 0);
    uv_timer_init(&c->loop, &c->guard);
    c->guard.data = c;
    c->res = calloc((size_t)n, sizeof *c->res);
    c->n = n;
    c->cfg.http_timeout_ms = 5000;
    c->cfg.kafka_delivery_reports = true;
    c->cfg.kafka_props = c->props;
}

/* The http backend on c->cfg as set so far. */
static void ctx_http_start(ctx_t *c)
{
    char err[256] = "";
    c->m = curlm_new(&c->loop, 0);
    assert_non_null(c->m);
    c->b = backend_http_new(&c->loop, c->m, &c->cfg, err, sizeof err);
    assert_non_null(c->b);
}

static void ctx_http(ctx_t *c, int n, uint64_t timeout_ms, const char *secret)
{
    ctx_init(c, n);
    c->cfg.http_timeout_ms = timeout_ms;
    c->cfg.http_signing_secret = (char *)secret;
    ctx_http_start(c);
}

static void ctx_prop(ctx_t *c, const char *name, const char *value)
{
    c->props[c->cfg.n_kafka_props].name = (char *)name;
    c->props[c->cfg.n_kafka_props].value = (char *)value;
    c->cfg.n_kafka_props++;
}

static void ctx_kafka(ctx_t *c)
{
    char err[512] = "";
    c->b = backend_kafka_new(&c->loop, &c->cfg, err, sizeof err);
    if (!c->b) fail_msg("backend_kafka_new: %s", err);
}

static void on_guard(uv_timer_t *t)
{
    ((ctx_t *)t->data)->expired = true;
}

/* Runs the loop until cond holds (checked after every loop turn) or timeout_ms. */
static bool run_until(ctx_t *c, bool (*cond)(ctx_t *c), int timeout_ms)
{
    c->expired = false;
    uv_timer_start(&c->guard, on_guard, (uint64_t)timeout_ms, 0);
    while (!cond(c) && !c->expired)
        uv_run(&c->loop, UV_RUN_ONCE);
    uv_timer_stop(&c->guard);
    return cond(c);
}

static bool all_done(ctx_t *c)
{
    return c->done >= c->n;
}

static bool is_closed(ctx_t *c)
{
    return c->closed;
}

static void on_closed(void *arg)
{
    ((ctx_t *)arg)->closed = true;
}

static void on_curlm_closed(void *arg)
{
    (void)arg;
}

/* Closes the backend (waiting for `closed`), the curl driver and the loop; the
 * results stay readable until ctx_free. */
static void ctx_close(ctx_t *c, int timeout_ms)
{
    backend_close(c->b, on_closed, c);
    assert_true(run_until(c, is_closed, timeout_ms));
    if (c->m) curlm_close(c->m, on_curlm_closed, NULL);
    uv_close((uv_handle_t *)&c->guard, NULL);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&c->loop), 0);
}

/* Sends payload i (job id "job<i>") to dst; slots must live until done. */
static void send_one(ctx_t *c, slot_t *slots, int i, const char *dst)
{
    char key[32], body[256];
    snprintf(key, sizeof key, "job%05d", i);
    snprintf(body, sizeof body,
             "{\"job_id\":\"%s\",\"success\":true,\"n\":%d,\"extra\":\"caf\xc3\xa9\"}", key, i);
    slots[i].c = c;
    slots[i].i = i;
    assert_int_equal(backend_send(c->b, dst, key, body, strlen(body), on_slot_done, &slots[i]), 0);
}

static void send_all(ctx_t *c, slot_t *slots, const char *dst)
{
    for (int i = 0; i < c->n; i++)
        send_one(c, slots, i, dst);
}

/* ---------- HTTP ---------- */

static void sink_url(char *buf, size_t len, const char *path)
{
    h_origin_url(&sink, buf, len, path);
}

/* The recorded callbacks (GET /_callbacks) to one path: their number, and the first
 * one in *first (the whole list in *list, which the caller frees). Filtering on the
 * path keeps late recordings of earlier tests' delayed callbacks out. */
static size_t callbacks_to(const char *path, yajl_val *list, yajl_val *first)
{
    *list = h_origin_json(&sink, "/_callbacks");
    assert_non_null(*list);
    assert_true(YAJL_IS_ARRAY(*list));
    size_t n = 0;
    *first = NULL;
    for (size_t i = 0; i < (*list)->u.array.len; i++) {
        yajl_val cb = (*list)->u.array.values[i];
        const char *p = h_jstr(cb, "path");
        if (!p || strcmp(p, path) != 0) continue;
        if (n++ == 0) *first = cb;
    }
    return n;
}

static yajl_val headers_of(yajl_val cb)
{
    const char *path[] = {"headers", NULL};
    return yajl_tree_get(cb, path, yajl_t_object);
}

/* One send on a fresh context; its result, then the context closed and freed. */
static void send_single(ctx_t *c, const char *dst, backend_result_t *out)
{
    slot_t slots[1];
    send_all(c, slots, dst);
    assert_true(run_until(c, all_done, 10000));
    *out = c->res[0];
    ctx_close(c, 5000);
    free(c->res);
}

static void test_http_delivered(void **state)
{
    (void)state;
    ctx_t c;
    slot_t slots[1];
    char url[256];
    sink_url(url, sizeof url, "/callback/ok");
    ctx_http(&c, 1, 5000, NULL);
    send_all(&c, slots, url);
    assert_int_equal(backend_inflight(c.b), 1);
    assert_int_equal(c.done, 0); /* never called from inside send */
    assert_true(run_until(&c, all_done, 10000));
    assert_true(c.res[0].ok);
    assert_int_equal(c.res[0].status, 200);
    assert_string_equal(c.res[0].error, "");
    assert_int_equal(backend_inflight(c.b), 0);
    ctx_close(&c, 5000);

    yajl_val list, cb;
    assert_int_equal(callbacks_to("/callback/ok", &list, &cb), 1);
    assert_string_equal(h_jstr(cb, "path"), "/callback/ok");
    assert_string_equal(
        h_jstr(cb, "body"),
        "{\"job_id\":\"job00000\",\"success\":true,\"n\":0,\"extra\":\"caf\xc3\xa9\"}");
    yajl_val hd = headers_of(cb);
    assert_string_equal(h_jstr(hd, "Content-Type"), "application/json");
    assert_null(h_jstr(hd, "Expect"));
    assert_null(h_jstr(hd, "webhook-signature"));
    yajl_tree_free(list);
    free(c.res);
}

static void expect_failure(int fail, long status, const char *retry_after, backend_result_t *out)
{
    char cfg[256], url[256];
    snprintf(cfg, sizeof cfg, "{\"fail\": %d, \"status\": %ld%s%s%s}", fail, status,
             retry_after ? ", \"retry_after\": \"" : "", retry_after ? retry_after : "",
             retry_after ? "\"" : "");
    assert_int_equal(h_origin_post(&sink, "/_sink", cfg), 200);
    ctx_t c;
    sink_url(url, sizeof url, "/callback/fail");
    ctx_http(&c, 1, 5000, NULL);
    send_single(&c, url, out);
}

static void test_http_500(void **state)
{
    (void)state;
    backend_result_t r;
    expect_failure(1, 500, NULL, &r);
    assert_false(r.ok);
    assert_true(r.retriable);
    assert_int_equal(r.status, 500);
    assert_int_equal(r.retry_after_ms, 0);
    assert_string_equal(r.error, "Received Status: 500 Internal Server Error");
}

static void test_http_404_is_retriable(void **state)
{
    (void)state;
    backend_result_t r;
    expect_failure(1, 404, NULL, &r);
    assert_false(r.ok);
    assert_true(r.retriable);
    assert_string_equal(r.error, "Received Status: 404 Not Found");
}

static void test_http_429_retry_after_seconds(void **state)
{
    (void)state;
    backend_result_t r;
    expect_failure(1, 429, "1", &r);
    assert_false(r.ok);
    assert_true(r.retriable);
    assert_int_equal(r.status, 429);
    assert_int_equal(r.retry_after_ms, 1000);
    assert_string_equal(r.error, "Received Status: 429 Too Many Requests");
}

static void test_http_503_retry_after_date(void **state)
{
    (void)state;
    char date[64];
    time_t t = time(NULL) + 120;
    struct tm tm;
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&t, &tm));
    backend_result_t r;
    expect_failure(1, 503, date, &r);
    assert_false(r.ok);
    assert_int_equal(r.status, 503);
    assert_in_range(r.retry_after_ms, 115000, 121000);
    assert_string_equal(r.error, "Received Status: 503 Service Unavailable");
}

static void test_http_retry_after_ignored_on_500(void **state)
{
    (void)state;
    backend_result_t r;
    expect_failure(1, 500, "7", &r);
    assert_int_equal(r.retry_after_ms, 0);
}

static void test_http_timeout(void **state)
{
    (void)state;
    char url[256], prefix[300];
    assert_int_equal(h_origin_post(&sink, "/_sink", "{\"delay_ms\": 1500}"), 200);
    ctx_t c;
    slot_t slots[1];
    sink_url(url, sizeof url, "/callback/slow");
    ctx_http(&c, 1, 500, NULL);
    long t0 = now_ms();
    send_all(&c, slots, url);
    assert_true(run_until(&c, all_done, 10000));
    long took = now_ms() - t0;
    ctx_close(&c, 5000);
    assert_int_equal(h_origin_post(&sink, "/_sink", "{\"delay_ms\": 0}"), 200);
    assert_false(c.res[0].ok);
    assert_true(c.res[0].retriable);
    assert_int_equal(c.res[0].status, 0);
    assert_in_range(took, 450, 2500);
    snprintf(prefix, sizeof prefix, "Post \"%s\": ", url);
    assert_memory_equal(c.res[0].error, prefix, strlen(prefix));
    assert_non_null(strstr(c.res[0].error, "timed out"));
    free(c.res);
}

static void test_http_connection_refused(void **state)
{
    (void)state;
    char url[256], prefix[300];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/callback/x", h_free_port());
    ctx_t c;
    slot_t slots[1];
    ctx_http(&c, 1, 5000, NULL);
    send_all(&c, slots, url);
    assert_true(run_until(&c, all_done, 10000));
    ctx_close(&c, 5000);
    assert_false(c.res[0].ok);
    assert_true(c.res[0].retriable);
    snprintf(prefix, sizeof prefix, "Post \"%s\": ", url);
    assert_memory_equal(c.res[0].error, prefix, strlen(prefix));
    assert_true(strlen(c.res[0].error) > strlen(prefix));
    free(c.res);
}

static void test_http_bad_url(void **state)
{
    (void)state;
    ctx_t c;
    slot_t slots[1];
    ctx_http(&c, 1, 5000, NULL);
    send_all(&c, slots, "ftp://127.0.0.1/x");
    assert_true(run_until(&c, all_done, 10000));
    ctx_close(&c, 5000);
    assert_false(c.res[0].ok);
    assert_memory_equal(c.res[0].error, "Post \"ftp://127.0.0.1/x\": ", 26);
    free(c.res);
}

/* processor.block_private_networks covers callbacks: the loopback sink is refused
 * (for good, nothing reaches it) unless processor.allow_cidrs lets it through. */
static void guarded_send(const char *url, char **cidrs, size_t n, backend_result_t *res)
{
    ctx_t c;
    ctx_init(&c, 1);
    c.cfg.block_private_networks = true;
    c.cfg.allow_cidrs = cidrs;
    c.cfg.n_allow_cidrs = n;
    ctx_http_start(&c);
    send_single(&c, url, res);
}

static void test_http_ssrf_guard(void **state)
{
    (void)state;
    char url[256], want[512];
    sink_url(url, sizeof url, "/callback/guarded");
    backend_result_t res;
    char *other[] = {"10.0.0.0/8"}, *loop[] = {"10.0.0.0/8", "127.0.0.0/8"};
    guarded_send(url, NULL, 0, &res);
    assert_false(res.ok);
    assert_false(res.retriable);
    snprintf(want, sizeof want,
             "Post \"%s\": refused to connect to 127.0.0.1: private or loopback address "
             "(processor.block_private_networks)",
             url);
    assert_string_equal(res.error, want);
    guarded_send(url, other, 1, &res);
    assert_false(res.ok);
    assert_string_equal(res.error, want);
    yajl_val reqs = h_origin_json(&sink, "/_requests");
    assert_non_null(reqs);
    assert_int_equal(reqs->u.array.len, 0); /* nothing reached the sink */
    yajl_tree_free(reqs);
    guarded_send(url, loop, 2, &res);
    assert_true(res.ok);
    assert_int_equal(res.status, 200);
}

/* POST -> 302 -> GET -> 302 -> GET 200: delivered, like Go's client. */
static void test_http_redirect_post_becomes_get(void **state)
{
    (void)state;
    char url[256];
    sink_url(url, sizeof url, "/redirect/1");
    ctx_t c;
    slot_t slots[1];
    ctx_http(&c, 1, 5000, NULL);
    send_all(&c, slots, url);
    assert_true(run_until(&c, all_done, 10000));
    ctx_close(&c, 5000);
    assert_true(c.res[0].ok);
    assert_int_equal(c.res[0].status, 200);
    yajl_val reqs = h_origin_json(&sink, "/_requests");
    assert_non_null(reqs);
    assert_int_equal(reqs->u.array.len, 3);
    assert_string_equal(h_jstr(reqs->u.array.values[0], "method"), "POST");
    assert_string_equal(h_jstr(reqs->u.array.values[2], "method"), "GET");
    assert_string_equal(h_jstr(reqs->u.array.values[2], "path"), "/data/10");
    yajl_tree_free(reqs);
    free(c.res);
}

/* Sequential callbacks to one host share one connection (responses are drained). */
static void test_http_connection_reuse(void **state)
{
    (void)state;
    char url[256];
    sink_url(url, sizeof url, "/callback/reuse");
    ctx_t c;
    slot_t slots[20];
    ctx_http(&c, 20, 5000, NULL);
    for (int i = 0; i < 20; i++) {
        send_one(&c, slots, i, url);
        c.n = i + 1; /* wait for this one before sending the next */
        assert_true(run_until(&c, all_done, 10000));
        assert_true(c.res[i].ok);
    }
    ctx_close(&c, 5000);
    yajl_val reqs = h_origin_json(&sink, "/_requests");
    assert_int_equal(reqs->u.array.len, 20);
    long long conn = h_jint(reqs->u.array.values[0], "conn");
    for (size_t i = 1; i < reqs->u.array.len; i++)
        assert_int_equal(h_jint(reqs->u.array.values[i], "conn"), conn);
    yajl_tree_free(reqs);
    free(c.res);
}

static void test_http_concurrent(void **state)
{
    (void)state;
    enum { N = 2000 };
    char url[256];
    sink_url(url, sizeof url, "/callback/many");
    ctx_t c;
    slot_t *slots = calloc(N, sizeof *slots);
    ctx_http(&c, N, 20000, NULL);
    long t0 = now_ms();
    send_all(&c, slots, url);
    assert_true(run_until(&c, all_done, 60000));
    long took = now_ms() - t0;
    int ok = 0;
    for (int i = 0; i < N; i++)
        ok += c.res[i].ok;
    ctx_close(&c, 5000);
    free(slots);
    assert_int_equal(ok, N);
    yajl_val list, first;
    assert_int_equal(callbacks_to("/callback/many", &list, &first), N);
    yajl_tree_free(list);
    print_message("http: %d callbacks in %ld ms (%.0f/s)\n", N, took,
                  N * 1000.0 / (took ? took : 1));
    free(c.res);
}

/* Closing aborts POSTs in flight: they complete (later) as retriable failures. */
static void test_http_close_aborts_inflight(void **state)
{
    (void)state;
    char url[256];
    assert_int_equal(h_origin_post(&sink, "/_sink", "{\"delay_ms\": 1500}"), 200);
    sink_url(url, sizeof url, "/callback/abort");
    ctx_t c;
    slot_t slots[3];
    ctx_http(&c, 3, 10000, NULL);
    send_all(&c, slots, url);
    for (int i = 0; i < 5; i++)
        uv_run(&c.loop, UV_RUN_NOWAIT);
    backend_close(c.b, on_closed, &c);
    assert_int_equal(c.done, 0); /* not from inside close */
    assert_int_equal(backend_send(c.b, url, "k", "{}", 2, on_slot_done, &slots[0]), -1);
    long t0 = now_ms();
    assert_true(run_until(&c, is_closed, 2000));
    assert_true(now_ms() - t0 < 1000);
    assert_int_equal(c.done, 3);
    for (int i = 0; i < 3; i++) {
        assert_false(c.res[i].ok);
        assert_true(c.res[i].retriable);
        assert_non_null(strstr(c.res[i].error, "closing"));
    }
    curlm_close(c.m, on_curlm_closed, NULL);
    uv_close((uv_handle_t *)&c.guard, NULL);
    uv_run(&c.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&c.loop), 0);
    free(c.res);
    assert_int_equal(h_origin_post(&sink, "/_sink", "{\"delay_ms\": 0}"), 200);
}

/* ---------- HTTP signing (Standard Webhooks) ---------- */

/* "v1,<base64 HMAC-SHA256(key, id.ts.body)>" computed independently. */
static void webhook_sig(const unsigned char *key, size_t keylen, const char *id, const char *ts,
                        const char *body, char *out)
{
    char *msg = NULL;
    size_t n = (size_t)asprintf(&msg, "%s.%s.%s", id, ts, body);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    assert_non_null(HMAC(EVP_sha256(), key, (int)keylen, (unsigned char *)msg, n, mac, &maclen));
    free(msg);
    strcpy(out, "v1,");
    EVP_EncodeBlock((unsigned char *)out + 3, mac, (int)maclen);
}

/* The verifier itself against the Standard Webhooks reference vector. */
static void test_signature_reference_vector(void **state)
{
    (void)state;
    unsigned char key[64];
    const char *b64 = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    int n = EVP_DecodeBlock(key, (const unsigned char *)b64, (int)strlen(b64));
    char sig[128];
    webhook_sig(key, (size_t)n, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330",
                "{\"test\": 2432232314}", sig);
    assert_string_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

/* Sends one signed callback and checks its headers against key. */
static void check_signed(const char *secret, const unsigned char *key, size_t keylen)
{
    char url[256];
    sink_url(url, sizeof url, "/callback/signed");
    ctx_t c;
    slot_t slots[1];
    ctx_http(&c, 1, 5000, secret);
    time_t before = time(NULL);
    send_all(&c, slots, url);
    assert_true(run_until(&c, all_done, 10000));
    ctx_close(&c, 5000);
    assert_true(c.res[0].ok);

    yajl_val list, cb;
    assert_int_equal(callbacks_to("/callback/signed", &list, &cb), 1);
    yajl_val hd = headers_of(cb);
    const char *id = h_jstr(hd, "webhook-id"), *ts = h_jstr(hd, "webhook-timestamp");
    const char *sig = h_jstr(hd, "webhook-signature"), *body = h_jstr(cb, "body");
    assert_non_null(id);
    assert_non_null(ts);
    assert_non_null(sig);
    assert_string_equal(id, "job00000");
    assert_in_range(strtoll(ts, NULL, 10), before - 1, time(NULL) + 1);
    char want[128];
    webhook_sig(key, keylen, id, ts, body, want);
    assert_string_equal(sig, want);

    /* tampering with the body or the timestamp breaks verification */
    char *tampered = NULL, ts2[32];
    assert_true(asprintf(&tampered, "%s ", body) > 0);
    webhook_sig(key, keylen, id, ts, tampered, want);
    assert_string_not_equal(sig, want);
    free(tampered);
    snprintf(ts2, sizeof ts2, "%lld", strtoll(ts, NULL, 10) + 1);
    webhook_sig(key, keylen, id, ts2, body, want);
    assert_string_not_equal(sig, want);
    yajl_tree_free(list);
    free(c.res);
}

static void test_http_signed_whsec(void **state)
{
    (void)state;
    const unsigned char key[] = RAW_KEY;
    char secret[128] = "whsec_";
    EVP_EncodeBlock((unsigned char *)secret + 6, key, (int)strlen(RAW_KEY));
    check_signed(secret, key, strlen(RAW_KEY));
}

static void test_http_signed_raw_secret(void **state)
{
    (void)state;
    check_signed(RAW_KEY, (const unsigned char *)RAW_KEY, strlen(RAW_KEY));
}

static void test_http_bad_whsec_secret(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    curlm_t *m = curlm_new(&loop, 0);
    config_t cfg = {.http_timeout_ms = 1000, .http_signing_secret = "whsec_not*base64!"};
    char err[256] = "";
    assert_null(backend_http_new(&loop, m, &cfg, err, sizeof err));
    assert_non_null(strstr(err, "signing_secret"));
    assert_null(strstr(err, "not*base64")); /* the secret is never echoed */
    curlm_close(m, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---------- Kafka ---------- */

static void test_kafka_deliver_and_consume(void **state)
{
    (void)state;
    enum { N = 100 };
    ctx_t c;
    slot_t slots[N];
    ctx_init(&c, N);
    ctx_prop(&c, "bootstrap.servers", kmock.bootstrap);
    ctx_kafka(&c);
    send_all(&c, slots, "callbacks");
    assert_int_equal(backend_inflight(c.b), N);
    assert_int_equal(c.done, 0);
    assert_true(run_until(&c, all_done, 20000));
    for (int i = 0; i < N; i++) {
        assert_true(c.res[i].ok);
        assert_string_equal(c.res[i].error, "");
    }
    assert_int_equal(backend_inflight(c.b), 0);
    ctx_close(&c, 10000);

    kconsumed_t got;
    kconsume(kmock.bootstrap, "callbacks", N, NULL, &got);
    assert_int_equal(got.count, N);
    bool seen[N] = {false};
    for (int i = 0; i < got.count; i++) {
        int n = -1;
        assert_int_equal(sscanf(got.keys[i], "job%05d", &n), 1);
        assert_in_range(n, 0, N - 1);
        assert_false(seen[n]);
        seen[n] = true;
        char want[256];
        snprintf(want, sizeof want,
                 "{\"job_id\":\"%s\",\"success\":true,\"n\":%d,\"extra\":\"caf\xc3\xa9\"}",
                 got.keys[i], n);
        assert_string_equal(got.values[i], want);
    }
    kconsumed_free(&got);
    free(c.res);
}

/* A topic the cluster does not have (and may not auto-create): the delivery report
 * carries the broker's error, which sets unknown_topic; still retriable. */
static void test_kafka_unknown_topic(void **state)
{
    (void)state;
    ctx_t c;
    slot_t slots[1];
    ctx_init(&c, 1);
    ctx_prop(&c, "bootstrap.servers", kmock.bootstrap);
    ctx_prop(&c, "allow.auto.create.topics", "false");
    ctx_prop(&c, "topic.metadata.propagation.max.ms", "100");
    ctx_kafka(&c);
    assert_int_equal(kmock_cmd(&kmock, "topic_error no-such-topic 3"),
                     0); /* UNKNOWN_TOPIC_OR_PART */
    send_all(&c, slots, "no-such-topic");
    assert_true(run_until(&c, all_done, 20000));
    ctx_close(&c, 10000);
    assert_false(c.res[0].ok);
    assert_true(c.res[0].retriable);
    assert_true(c.res[0].unknown_topic);
    assert_string_equal(c.res[0].error, "Broker: Unknown topic or partition");
    free(c.res);
}

/* A produce request failing at the broker (no retries configured): retriable. */
static void test_kafka_produce_error(void **state)
{
    (void)state;
    ctx_t c;
    slot_t slots[1];
    ctx_init(&c, 1);
    ctx_prop(&c, "bootstrap.servers", kmock.bootstrap);
    ctx_prop(&c, "message.send.max.retries", "0");
    ctx_kafka(&c);
    assert_int_equal(kmock_cmd(&kmock, "produce_errors 1 87"), 0); /* INVALID_RECORD */
    send_all(&c, slots, "callbacks");
    assert_true(run_until(&c, all_done, 20000));
    ctx_close(&c, 10000);
    assert_false(c.res[0].ok);
    assert_true(c.res[0].retriable);
    assert_false(c.res[0].unknown_topic);
    assert_string_equal(c.res[0].error, rd_kafka_err2str(RD_KAFKA_RESP_ERR_INVALID_RECORD));
    free(c.res);
}

static void test_kafka_unreachable_broker(void **state)
{
    (void)state;
    char bootstrap[64];
    snprintf(bootstrap, sizeof bootstrap, "127.0.0.1:%d", h_free_port());
    ctx_t c;
    slot_t slots[2];
    ctx_init(&c, 2);
    ctx_prop(&c, "bootstrap.servers", bootstrap);
    ctx_prop(&c, "message.timeout.ms", "1000");
    ctx_kafka(&c);
    send_all(&c, slots, "callbacks");
    assert_true(run_until(&c, all_done, 10000));
    ctx_close(&c, 10000);
    for (int i = 0; i < 2; i++) {
        assert_false(c.res[i].ok);
        assert_true(c.res[i].retriable);
        assert_false(c.res[i].unknown_topic);
        assert_string_equal(c.res[i].error, "Local: Message timed out");
    }
    free(c.res);
}

static void test_kafka_bad_property(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    config_kv_t props[] = {{"bootstrap.servers", "127.0.0.1:1"}, {"no.such.property", "1"}};
    config_t cfg = {.kafka_props = props, .n_kafka_props = 2, .kafka_delivery_reports = true};
    char err[512] = "";
    assert_null(backend_kafka_new(&loop, &cfg, err, sizeof err));
    assert_string_equal(err, "Error while initializing backend kafka. Error details: "
                             "No such configuration property: \"no.such.property\"");
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* Closing right after producing still delivers everything (flush), then releases. */
static void test_kafka_close_flushes(void **state)
{
    (void)state;
    enum { N = 50 };
    ctx_t c;
    slot_t slots[N];
    ctx_init(&c, N);
    ctx_prop(&c, "bootstrap.servers", kmock.bootstrap);
    ctx_prop(&c, "linger.ms", "200");
    ctx_kafka(&c);
    send_all(&c, slots, "flushed");
    backend_close(c.b, on_closed, &c);
    assert_int_equal(c.done, 0);
    assert_int_equal(backend_send(c.b, "flushed", "k", "{}", 2, on_slot_done, &slots[0]), -1);
    assert_true(run_until(&c, is_closed, 10000));
    assert_int_equal(c.done, N);
    for (int i = 0; i < N; i++)
        assert_true(c.res[i].ok);
    uv_close((uv_handle_t *)&c.guard, NULL);
    uv_run(&c.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&c.loop), 0);
    free(c.res);
    kconsumed_t got;
    kconsume(kmock.bootstrap, "flushed", N, NULL, &got);
    assert_int_equal(got.count, N);
    kconsumed_free(&got);
}

/* A broker that never answers: close flushes 5 s, then fails what is left. */
static void test_kafka_close_gives_up_after_5s(void **state)
{
    (void)state;
    char bootstrap[64];
    snprintf(bootstrap, sizeof bootstrap, "127.0.0.1:%d", h_free_port());
    ctx_t c;
    slot_t slots[3];
    ctx_init(&c, 3);
    ctx_prop(&c, "bootstrap.servers", bootstrap);
    ctx_prop(&c, "message.timeout.ms", "60000");
    ctx_kafka(&c);
    send_all(&c, slots, "callbacks");
    for (int i = 0; i < 5; i++)
        uv_run(&c.loop, UV_RUN_NOWAIT);
    long t0 = now_ms();
    backend_close(c.b, on_closed, &c);
    assert_true(run_until(&c, is_closed, 15000));
    long took = now_ms() - t0;
    assert_in_range(took, 4900, 7500);
    assert_int_equal(c.done, 3);
    for (int i = 0; i < 3; i++) {
        assert_false(c.res[i].ok);
        assert_true(c.res[i].retriable);
        assert_non_null(strstr(c.res[i].error, "Purged"));
    }
    uv_close((uv_handle_t *)&c.guard, NULL);
    uv_run(&c.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&c.loop), 0);
    free(c.res);
}

/* go.delivery.reports=false: an accepted produce counts as delivered. */
static void test_kafka_without_delivery_reports(void **state)
{
    (void)state;
    ctx_t c;
    slot_t slots[5];
    ctx_init(&c, 5);
    c.cfg.kafka_delivery_reports = false;
    ctx_prop(&c, "bootstrap.servers", kmock.bootstrap);
    ctx_kafka(&c);
    send_all(&c, slots, "noreports");
    assert_int_equal(c.done, 0);
    assert_true(run_until(&c, all_done, 5000));
    for (int i = 0; i < 5; i++)
        assert_true(c.res[i].ok);
    ctx_close(&c, 10000);
    kconsumed_t got;
    kconsume(kmock.bootstrap, "noreports", 5, NULL, &got);
    assert_int_equal(got.count, 5);
    kconsumed_free(&got);
    free(c.res);
}

/* Messages the cluster holds in partition 0 of topic (its high watermark). */
static long long topic_size(const char *topic)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[256];
    kconf_set(conf, "bootstrap.servers", kmock.bootstrap);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    assert_non_null(rk);
    int64_t lo = -1, hi = -1;
    rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, topic, 0, &lo, &hi, 10000);
    rd_kafka_destroy(rk);
    return e ? -1 : (long long)hi;
}

static void test_kafka_throughput(void **state)
{
    (void)state;
    enum { N = 20000 };
    assert_int_equal(kmock_cmd(&kmock, "topic bulk 1"), 0);
    ctx_t c;
    slot_t *slots = calloc(N, sizeof *slots);
    ctx_init(&c, N);
    ctx_prop(&c, "bootstrap.servers", kmock.bootstrap);
    ctx_kafka(&c);
    long t0 = now_ms();
    send_all(&c, slots, "bulk");
    assert_true(run_until(&c, all_done, 60000));
    long took = now_ms() - t0;
    int ok = 0;
    for (int i = 0; i < N; i++)
        ok += c.res[i].ok;
    ctx_close(&c, 10000);
    free(slots);
    assert_int_equal(ok, N);
    assert_int_equal(topic_size("bulk"), N); /* the reports were not optimistic */
    print_message("kafka: %d callbacks in %ld ms (%.0f/s)\n", N, took,
                  N * 1000.0 / (took ? took : 1));
    free(c.res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_http_delivered, reset_sink),
        cmocka_unit_test_setup(test_http_ssrf_guard, reset_sink),
        cmocka_unit_test_setup(test_http_500, reset_sink),
        cmocka_unit_test_setup(test_http_404_is_retriable, reset_sink),
        cmocka_unit_test_setup(test_http_429_retry_after_seconds, reset_sink),
        cmocka_unit_test_setup(test_http_503_retry_after_date, reset_sink),
        cmocka_unit_test_setup(test_http_retry_after_ignored_on_500, reset_sink),
        cmocka_unit_test_setup(test_http_timeout, reset_sink),
        cmocka_unit_test_setup(test_http_connection_refused, reset_sink),
        cmocka_unit_test_setup(test_http_bad_url, reset_sink),
        cmocka_unit_test_setup(test_http_redirect_post_becomes_get, reset_sink),
        cmocka_unit_test_setup(test_http_connection_reuse, reset_sink),
        cmocka_unit_test_setup(test_http_concurrent, reset_sink),
        cmocka_unit_test_setup(test_http_close_aborts_inflight, reset_sink),
        cmocka_unit_test(test_signature_reference_vector),
        cmocka_unit_test_setup(test_http_signed_whsec, reset_sink),
        cmocka_unit_test_setup(test_http_signed_raw_secret, reset_sink),
        cmocka_unit_test(test_http_bad_whsec_secret),
        cmocka_unit_test(test_kafka_deliver_and_consume),
        cmocka_unit_test(test_kafka_unknown_topic),
        cmocka_unit_test(test_kafka_produce_error),
        cmocka_unit_test(test_kafka_unreachable_broker),
        cmocka_unit_test(test_kafka_bad_property),
        cmocka_unit_test(test_kafka_close_flushes),
        cmocka_unit_test(test_kafka_close_gives_up_after_5s),
        cmocka_unit_test(test_kafka_without_delivery_reports),
        cmocka_unit_test(test_kafka_throughput),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
