/* API authentication and secret hygiene, against the real binary (`downloader all`).
 * With api.auth_token set, POST /download and POST /retry/<id> need the bearer token
 * (401 "Unauthorized" + WWW-Authenticate otherwise) while read-only routes stay open;
 * with api.auth_read they need it too; /hb and /ready never do. Then a service configured
 * with every kind of secret (auth token, proxy and URL credentials, callback signing
 * secret, Kafka sasl.password) runs a job at debug log level, and neither its logs
 * nor its stats and dashboard answers contain any of them. */
#include <setjmp.h>
#include <signal.h>
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

#define TOKEN "s3cr3t-T0KEN-abcdef"
#define PROXY_SECRET "PrOxYpAsS-42"
#define URL_SECRET "UrLpAsS-42"
#define SIGNING_SECRET "SiGnInG-sEcReT-42"
#define KAFKA_SECRET "KaFkA-sAsL-42"

/* One request; auth is the whole Authorization value (NULL: none). */
static void request(h_env_t *e, const char *method, const char *path, const char *body,
                    const char *auth, h_resp_t *r)
{
    char url[512], hdr[256];
    h_api_url(e, url, sizeof url, path);
    snprintf(hdr, sizeof hdr, "Authorization: %s", auth ? auth : "");
    const char *headers[] = {hdr, NULL};
    assert_int_equal(h_http(method, url, body, auth ? headers : NULL, r), 0);
}

static long status_of(h_env_t *e, const char *method, const char *path, const char *body,
                      const char *auth)
{
    h_resp_t r;
    request(e, method, path, body, auth, &r);
    long st = r.status;
    h_resp_free(&r);
    return st;
}

static int start_env(void **state, const char *processor_extra, const char *backends,
                     const char *api_extra)
{
    h_env_t *e = calloc(1, sizeof *e);
    *state = e;
    if (!e || h_env_start_ex(e, processor_extra, NULL, backends, api_extra) < 0) return -1;
    return h_env_run(e, "all") > 0 ? 0 : -1;
}

static int setup_token(void **state)
{
    return start_env(state, NULL, NULL, "\"auth_token\": \"" TOKEN "\"");
}

static int setup_token_read(void **state)
{
    return start_env(state, NULL, NULL, "\"auth_token\": \"" TOKEN "\", \"auth_read\": true");
}

static int teardown(void **state)
{
    h_env_t *e = *state;
    if (e && e->dir) h_env_stop(e);
    free(e);
    return 0;
}

static void job_body(h_env_t *e, char *buf, size_t len)
{
    char url[256], cb[256];
    h_origin_url(e, url, sizeof url, "/data/10");
    h_origin_url(e, cb, sizeof cb, "/callback/auth");
    snprintf(buf, len,
             "{\"url\":\"%s\",\"aggr_id\":\"auth\",\"aggr_limit\":2,\"callback_url\":\"%s\"}", url,
             cb);
}

static void assert_unauthorized(const h_resp_t *r)
{
    assert_int_equal(r->status, 401);
    assert_string_equal(r->body, "Unauthorized\n");
    assert_non_null(strstr(r->headers, "WWW-Authenticate: Bearer\r\n"));
    assert_non_null(strstr(r->headers, "Content-Type: text/plain; charset=utf-8\r\n"));
    assert_non_null(strstr(r->headers, "X-Content-Type-Options: nosniff\r\n"));
}

static void test_writes_need_the_token(void **state)
{
    h_env_t *e = *state;
    char body[1024];
    job_body(e, body, sizeof body);
    static const char *wrong[] = {NULL,
                                  "",
                                  "Bearer",
                                  "Bearer ",
                                  "Bearer wrong",
                                  "Bearer s3cr3t-T0KEN-abcde",   /* a prefix */
                                  "Bearer s3cr3t-T0KEN-abcdefg", /* longer */
                                  "Bearer S3CR3T-T0KEN-ABCDEF",  /* case matters */
                                  "Basic " TOKEN,
                                  "Bearer" TOKEN,
                                  TOKEN};
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        h_resp_t r;
        request(e, "POST", "/download", body, wrong[i], &r);
        assert_unauthorized(&r);
        h_resp_free(&r);
        request(e, "POST", "/retry/NSb4FOAs9fVaQw", NULL, wrong[i], &r);
        assert_unauthorized(&r);
        h_resp_free(&r);
    }
    /* nothing was queued */
    redisContext *rc = h_redis_connect(&e->redis);
    assert_non_null(rc);
    assert_int_equal(h_redis_int(rc, "SCARD aggrs"), 0);
    redisFree(rc);
    assert_int_equal(status_of(e, "POST", "/download", body, "Bearer " TOKEN), 201);
    assert_int_equal(status_of(e, "POST", "/download", body, "bearer   " TOKEN), 201);
    /* past auth, /retry answers as usual */
    assert_int_equal(status_of(e, "POST", "/retry/NSb4FOAs9fVaQw", NULL, "Bearer " TOKEN), 400);
    assert_int_equal(status_of(e, "GET", "/download", NULL, "Bearer " TOKEN), 405);
    /* a method a write route does not implement still needs the token first */
    assert_int_equal(status_of(e, "GET", "/download", NULL, NULL), 401);
    assert_int_equal(status_of(e, "DELETE", "/retry/NSb4FOAs9fVaQw", NULL, NULL), 401);
}

static void test_reads_stay_open(void **state)
{
    h_env_t *e = *state;
    static const char *open_paths[] = {"/hb",
                                       "/stats/nothing-here",
                                       "/dashboard/aggregations",
                                       "/dashboard/instances",
                                       "/download/NSb4FOAs9fVaQw",
                                       "/"};
    for (size_t i = 0; i < sizeof open_paths / sizeof open_paths[0]; i++) {
        long st = status_of(e, "GET", open_paths[i], NULL, NULL);
        if (st == 401 || st >= 500) fail_msg("GET %s answered %ld", open_paths[i], st);
    }
}

static void test_auth_read(void **state)
{
    h_env_t *e = *state;
    assert_int_equal(status_of(e, "GET", "/hb", NULL, NULL), 200);    /* always open */
    assert_int_equal(status_of(e, "GET", "/ready", NULL, NULL), 200); /* as is readiness */
    static const char *paths[] = {"/stats/nothing-here",
                                  "/dashboard/aggregations",
                                  "/dashboard/instances",
                                  "/download/NSb4FOAs9fVaQw",
                                  "/",
                                  "/files/NSb/NSb4FOAs9fVaQw"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        h_resp_t r;
        request(e, "GET", paths[i], NULL, NULL, &r);
        assert_unauthorized(&r);
        h_resp_free(&r);
        request(e, "GET", paths[i], NULL, "Bearer nope", &r);
        assert_unauthorized(&r);
        h_resp_free(&r);
        long st = status_of(e, "GET", paths[i], NULL, "Bearer " TOKEN);
        if (st == 401 || st >= 500) fail_msg("GET %s with the token answered %ld", paths[i], st);
    }
    char body[1024];
    job_body(e, body, sizeof body);
    assert_int_equal(status_of(e, "POST", "/download", body, NULL), 401);
    assert_int_equal(status_of(e, "POST", "/download", body, "Bearer " TOKEN), 201);
}

/* ---- secrets ---------------------------------------------------------------- */

static int setup_secrets(void **state)
{
    /* the notifier's Kafka client never reaches a broker: it only has to start */
    static const char backends[] =
        "{\"http\": {\"timeout\": 5, \"signing_secret\": \"" SIGNING_SECRET "\"},"
        " \"kafka\": {\"bootstrap.servers\": \"127.0.0.1:1\", \"security.protocol\": "
        "\"SASL_PLAINTEXT\", \"sasl.mechanisms\": \"PLAIN\", \"sasl.username\": \"u\","
        " \"sasl.password\": \"" KAFKA_SECRET "\", \"debug\": \"conf,security,broker\"}}";
    setenv("DOWNLOADER_LOG_LEVEL", "debug", 1); /* the most verbose logs */
    int rc = start_env(state, NULL, backends, "\"auth_token\": \"" TOKEN "\"");
    unsetenv("DOWNLOADER_LOG_LEVEL");
    return rc;
}

static void assert_no_secret(const char *what, const char *text)
{
    static const char *secrets[] = {TOKEN, PROXY_SECRET, URL_SECRET, SIGNING_SECRET, KAFKA_SECRET};
    for (size_t i = 0; text && i < sizeof secrets / sizeof secrets[0]; i++)
        if (strstr(text, secrets[i])) fail_msg("%s contains the secret %s", what, secrets[i]);
}

static void assert_answer_clean(h_env_t *e, const char *path)
{
    h_resp_t r;
    request(e, "GET", path, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_no_secret(path, r.body);
    h_resp_free(&r);
}

static void test_secrets_stay_out_of_logs(void **state)
{
    h_env_t *e = *state;
    char body[2048], id[16], cb[256], status_path[64];
    h_origin_url(e, cb, sizeof cb, "/callback/secrets");
    /* through the origin acting as proxy, slowly, so that it is in flight for a while */
    snprintf(body, sizeof body,
             "{\"url\":\"http://user:" URL_SECRET "@proxied.invalid/data/10?delay_ms=1500\","
             "\"aggr_id\":\"secrets\",\"aggr_limit\":1,\"callback_url\":\"%s\","
             "\"aggr_proxy\":\"http://proxyuser:" PROXY_SECRET "@127.0.0.1:%d\"}",
             cb, e->origin_port);
    char url[256], hdr[] = "Authorization: Bearer " TOKEN;
    const char *headers[] = {hdr, NULL};
    h_resp_t r;
    h_api_url(e, url, sizeof url, "/download");
    assert_int_equal(h_http("POST", url, body, headers, &r), 0);
    assert_int_equal(r.status, 201);
    snprintf(id, sizeof id, "%.14s", strstr(r.body, "\"id\":\"") + 6);
    h_resp_free(&r);
    usleep(700000); /* in flight: listed in the dashboard */
    snprintf(status_path, sizeof status_path, "/download/%s", id);
    assert_answer_clean(e, status_path);
    assert_answer_clean(e, "/dashboard/aggregations");
    assert_answer_clean(e, "/dashboard/instances");
    assert_answer_clean(e, "/stats/processor");
    yajl_val p = h_wait_callback(e, id, 15000);
    assert_non_null(p);
    assert_int_equal(h_jbool(p, "success"), 1);
    yajl_tree_free(p);
    /* a failure too: its error text carries the URL */
    snprintf(body, sizeof body,
             "{\"url\":\"http://user:" URL_SECRET "@127.0.0.1:1/x\",\"aggr_id\":\"secrets2\","
             "\"aggr_limit\":1,\"max_retries\":0,\"callback_url\":\"%s\"}",
             cb);
    assert_int_equal(h_http("POST", url, body, headers, &r), 0);
    assert_int_equal(r.status, 201);
    snprintf(id, sizeof id, "%.14s", strstr(r.body, "\"id\":\"") + 6);
    h_resp_free(&r);
    p = h_wait_callback(e, id, 15000);
    assert_non_null(p);
    assert_int_equal(h_jbool(p, "success"), 0);
    assert_no_secret("the error text", h_jstr(p, "error"));
    yajl_tree_free(p);
    assert_answer_clean(e, "/dashboard/history");
    assert_answer_clean(e, "/dashboard/failed");
    /* stop the service so that its logs are complete, then read every one */
    for (int i = 0; i < e->nprocs; i++)
        h_stop(e->procs[i], SIGTERM, 15000);
    e->nprocs = 0;
    char path[700];
    snprintf(path, sizeof path, "%s/all-0.log", e->dir);
    size_t len = 0;
    char *log = h_read_file(path, &len);
    assert_non_null(log);
    assert_non_null(strstr(log, "level=debug")); /* the debug lines were there to check */
    assert_no_secret("the log", log);
    free(log);
    snprintf(path, sizeof path, "%s/config.json", e->dir);
    char *cfg = h_read_file(path, &len);
    assert_non_null(strstr(cfg, KAFKA_SECRET)); /* they were configured */
    free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_writes_need_the_token, setup_token, teardown),
        cmocka_unit_test_setup_teardown(test_reads_stay_open, setup_token, teardown),
        cmocka_unit_test_setup_teardown(test_auth_read, setup_token_read, teardown),
        cmocka_unit_test_setup_teardown(test_secrets_stay_out_of_logs, setup_secrets, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
