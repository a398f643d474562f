/* End-to-end tests: api, processor and notifier as separate processes of the real
 * binary, a private redis-server, and test/origin.py as download origin and callback
 * sink. Covers the download rules of §5/§6, global aggregation limits with two
 * processors, kill -9 and SIGTERM of a processor, and callback retries. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

static h_env_t env;
static redisContext *rc;
static pid_t processor_pid, notifier_pid;

static int setup(void **state)
{
    (void)state;
    if (h_env_start(
            &env,
            "\"request_headers\": {\"User-Agent\": \"Downloader-Agent\", \"Accept\": \"*/*\"}, "
            "\"shutdown_grace\": 1",
            "\"max_attempts\": 3", NULL) < 0)
        return -1;
    if (h_env_run(&env, "api") < 0) return -1;
    processor_pid = h_env_run(&env, "processor");
    notifier_pid = h_env_run(&env, "notifier");
    rc = h_redis_connect(&env.redis);
    return rc && processor_pid > 0 && notifier_pid > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    redisFree(rc);
    h_env_stop(&env);
    return 0;
}

/* Posts a job for an origin path with extra JSON members; returns the id in id. */
static void post(const char *origin_path, const char *aggr, int limit, const char *extra, char *id)
{
    char url[512], body[2048];
    h_origin_url(&env, url, sizeof url, origin_path);
    char cb[256];
    h_origin_url(&env, cb, sizeof cb, "/callback/test");
    snprintf(body, sizeof body,
             "{\"url\":\"%s\",\"aggr_id\":\"%s\",\"aggr_limit\":%d,\"callback_url\":\"%s\"%s%s}",
             url, aggr, limit, cb, extra ? "," : "", extra ? extra : "");
    assert_int_equal(h_post_job(&env, body, id), 201);
}

static int requests_for(const char *path)
{
    yajl_val list = h_origin_json(&env, "/_requests");
    int n = 0;
    for (size_t i = 0; list && i < list->u.array.len; i++) {
        const char *p = h_jstr(list->u.array.values[i], "path");
        n += p && strcmp(p, path) == 0;
    }
    yajl_tree_free(list);
    return n;
}

/* A delivered job: only its history is left, expiring within notifier.history. */
static void assert_delivered_history(const char *id)
{
    char *cs = h_redis_str(rc, "HGET job:%s CallbackState", id);
    assert_non_null(cs);
    assert_string_equal(cs, "Delivered");
    free(cs);
    long long ttl = h_redis_int(rc, "PTTL job:%s", id);
    assert_true(ttl > 0 && ttl <= 3600000);
    assert_true(h_redis_int(rc, "HGET job:%s DeliveredAt", id) > 0);
}

static void assert_stored(const char *id, size_t size)
{
    char path[700];
    snprintf(path, sizeof path, "%s/files/%.3s/%s", env.dir, id, id);
    size_t len = 0;
    char *data = h_read_file(path, &len);
    assert_non_null(data);
    assert_int_equal(len, size);
    assert_int_equal(h_pattern_mismatch(data, len), -1);
    free(data);
}

static void assert_no_temp_files(void)
{
    char path[700];
    snprintf(path, sizeof path, "%s/tmp", env.dir);
    DIR *d = opendir(path);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp")) fail_msg("temp file left: %s", e->d_name);
    closedir(d);
}

static void test_full_pipeline(void **state)
{
    (void)state;
    char id[16], url[512], expect[512];
    post("/data/50000", "pipe", 2, "\"extra\":\"foobar\"", id);
    yajl_val p = h_wait_callback(&env, id, 10000);
    assert_non_null(p);
    /* the processor and the notifier listen for wake-ups; the api does not */
    redisReply *sub = redisCommand(rc, "PUBSUB NUMSUB downloader:wake");
    assert_non_null(sub);
    assert_int_equal(sub->element[1]->integer, 2);
    freeReplyObject(sub);
    assert_int_equal(p->u.object.len, 10);
    assert_int_equal(h_jbool(p, "success"), 1);
    assert_string_equal(h_jstr(p, "error"), "");
    assert_string_equal(h_jstr(p, "extra"), "foobar");
    assert_string_equal(h_jstr(p, "image_size"), "");
    h_origin_url(&env, url, sizeof url, "/data/50000");
    assert_string_equal(h_jstr(p, "resource_url"), url);
    snprintf(expect, sizeof expect, "http://127.0.0.1:%d/files/%.3s/%s", env.origin_port, id, id);
    assert_string_equal(h_jstr(p, "download_url"), expect);
    assert_string_equal(h_jstr(p, "job_id"), id);
    assert_int_equal(h_jint(p, "response_code"), 200);
    assert_int_equal(h_jbool(p, "delivered"), 1);
    assert_string_equal(h_jstr(p, "delivery_error"), "");
    yajl_tree_free(p);
    assert_stored(id, 50000);
    assert_no_temp_files();
    usleep(300000);
    /* delivered: the job is only remembered (notifier.history, 1 h by default) and its
     * file deletion is scheduled */
    assert_delivered_history(id);
    char key[600];
    snprintf(key, sizeof key, "reap:http://127.0.0.1:%d/files", env.origin_port);
    assert_true(h_redis_int(rc, "ZSCORE %s %s", key, id) > 0);
    assert_int_equal(h_redis_int(rc, "EXISTS aggr:pipe"), 0);
}

/* GET /files/... of the api answers 200 with this Content-Type. */
static void assert_served_as(const char *id, const char *type)
{
    char path[128], url[256], want[160];
    snprintf(path, sizeof path, "/files/%.3s/%s", id, id);
    h_api_url(&env, url, sizeof url, path);
    h_resp_t r;
    assert_int_equal(h_http("GET", url, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    snprintf(want, sizeof want, "Content-Type: %s\r\n", type);
    if (!strcasestr(r.headers, want)) fail_msg("%s: want %s in\n%s", path, type, r.headers);
    h_resp_free(&r);
}

/* A job without mime_type is not sniffed by the processor (no user.mime_type after the
 * download); the first serve detects the type from the file and caches it as the xattr.
 * A file stored by an older version without the xattr is detected the same way. */
static void test_files_served_with_detected_type(void **state)
{
    (void)state;
    char gif[16], data[16], path[700];
    post("/file/image.gif?type=application/octet-stream", "ty", 2, NULL, gif);
    post("/file/text.txt", "ty", 2, NULL, data);
    yajl_val p = h_wait_callback(&env, gif, 10000);
    assert_non_null(p);
    assert_int_equal(h_jbool(p, "success"), 1);
    yajl_tree_free(p);
    p = h_wait_callback(&env, data, 10000);
    assert_non_null(p);
    yajl_tree_free(p);
    char t[64];
    snprintf(path, sizeof path, "%s/files/%.3s/%s", env.dir, gif, gif);
    assert_true(getxattr(path, "user.mime_type", t, sizeof t) < 0); /* not sniffed */
    assert_served_as(gif, "image/gif"); /* sniffed, not the origin's Content-Type */
    ssize_t n = getxattr(path, "user.mime_type", t, sizeof t - 1);
    assert_true(n > 0);
    t[n] = 0;
    assert_string_equal(t, "image/gif"); /* cached for later serves */
    assert_served_as(gif, "image/gif");
    assert_served_as(data, "text/plain");
    snprintf(path, sizeof path, "%s/files/old", env.dir);
    assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
    snprintf(path, sizeof path, "%s/files/old/oldfile0001", env.dir);
    assert_int_equal(h_write_file(path, "no type stored"), 0);
    assert_served_as("oldfile0001", "text/plain");
}

static void test_image_size_and_mime(void **state)
{
    (void)state;
    char ok[16], broken[16], mismatch[16];
    post("/file/image.png", "img", 4, "\"extract_image_size\":true", ok);
    post("/file/broken.png", "img", 4, "\"extract_image_size\":true", broken);
    post("/file/image.gif", "img", 4, "\"mime_type\":\"image/jpeg\"", mismatch);
    yajl_val p = h_wait_callback(&env, ok, 10000);
    assert_non_null(p);
    assert_int_equal(h_jbool(p, "success"), 1);
    assert_string_equal(h_jstr(p, "image_size"), "10x10");
    yajl_tree_free(p);
    p = h_wait_callback(&env, broken, 10000);
    assert_non_null(p);
    assert_int_equal(h_jbool(p, "success"), 1); /* W31: a corrupt header only loses the size */
    assert_string_equal(h_jstr(p, "image_size"), "");
    yajl_tree_free(p);
    p = h_wait_callback(&env, mismatch, 10000);
    assert_non_null(p);
    assert_int_equal(h_jbool(p, "success"), 0);
    assert_string_equal(h_jstr(p, "error"),
                        "Error while validating mime type, Expected mime-type to be "
                        "(image/jpeg), found (image/gif), retriable: false, internal: false");
    assert_string_equal(h_jstr(p, "download_url"), "");
    yajl_tree_free(p);
    assert_int_equal(requests_for("/file/image.gif"), 1);
    assert_served_as(ok, "image/png");
}

static void test_not_found_is_final(void **state)
{
    (void)state;
    char id[16];
    post("/status/404", "nf", 4, NULL, id);
    yajl_val p = h_wait_callback(&env, id, 10000);
    assert_non_null(p);
    assert_int_equal(h_jbool(p, "success"), 0);
    assert_string_equal(h_jstr(p, "error"), "Error while processing response, Received status code "
                                            "404 Not Found, retriable: false, internal: false");
    assert_int_equal(h_jint(p, "response_code"), 404);
    yajl_tree_free(p);
    assert_int_equal(requests_for("/status/404"), 1);
}

static void test_server_error_retries(void **state)
{
    (void)state;
    char id[16];
    post("/status/500", "se", 4, "\"max_retries\":2", id);
    yajl_val p = h_wait_callback(&env, id, 15000);
    assert_non_null(p);
    assert_int_equal(h_jbool(p, "success"), 0);
    assert_int_equal(h_jint(p, "response_code"), 500);
    assert_non_null(strstr(h_jstr(p, "error"), "500 Internal Server Error, retriable: true"));
    yajl_tree_free(p);
    assert_int_equal(requests_for("/status/500"), 3);
}

static void test_transient_error_then_success(void **state)
{
    (void)state;
    char id[16];
    assert_int_equal(h_origin_post(&env, "/_script",
                                   "{\"path\": \"/file/image.jpg\", \"responses\": [{\"status\": "
                                   "500}, {\"status\": 503}]}"),
                     200);
    post("/file/image.jpg", "tr", 4, NULL, id);
    yajl_val p = h_wait_callback(&env, id, 15000);
    assert_non_null(p);
    assert_int_equal(h_jbool(p, "success"), 1);
    assert_int_equal(h_jint(p, "response_code"), 200);
    yajl_tree_free(p);
}

static void test_exact_headers_on_wire(void **state)
{
    (void)state;
    char id[16];
    post("/echo", "hd", 4, "\"request_headers\":{\"accept\":\"image/png\",\"X-Foo\":\"bar\"}", id);
    yajl_val p = h_wait_callback(&env, id, 10000);
    assert_non_null(p);
    yajl_tree_free(p);
    yajl_val list = h_origin_json(&env, "/_requests");
    yajl_val hdrs = NULL;
    for (size_t i = 0; i < list->u.array.len; i++) {
        const char *path = h_jstr(list->u.array.values[i], "path");
        if (path && strcmp(path, "/echo") == 0) {
            const char *k[] = {"headers", NULL};
            hdrs = yajl_tree_get(list->u.array.values[i], k, yajl_t_object);
        }
    }
    assert_non_null(hdrs);
    const char *names[] = {"Host", "User-Agent", "Accept", "X-Foo", "Accept-Encoding"};
    assert_int_equal(hdrs->u.object.len, 5);
    for (size_t i = 0; i < 5; i++)
        assert_non_null(h_jstr(hdrs, names[i]));
    assert_string_equal(h_jstr(hdrs, "User-Agent"), "Downloader-Agent");
    assert_string_equal(h_jstr(hdrs, "Accept"), "image/png");
    assert_string_equal(h_jstr(hdrs, "X-Foo"), "bar");
    assert_string_equal(h_jstr(hdrs, "Accept-Encoding"), "gzip");
    yajl_tree_free(list);
}

static void test_gzip_stored_decoded(void **state)
{
    (void)state;
    char id[16];
    post("/data/200000?gzip=1", "gz", 4, NULL, id);
    yajl_val p = h_wait_callback(&env, id, 10000);
    assert_non_null(p);
    assert_int_equal(h_jbool(p, "success"), 1);
    yajl_tree_free(p);
    assert_stored(id, 200000);
}

static void test_stuck_origin_cut_off(void **state)
{
    (void)state;
    char id[16];
    post("/data/1000?stall=1", "stuck", 4, "\"download_timeout\":1,\"max_retries\":0", id);
    yajl_val p = h_wait_callback(&env, id, 10000);
    assert_non_null(p);
    assert_int_equal(h_jbool(p, "success"), 0);
    assert_non_null(strstr(h_jstr(p, "error"), "retriable: true"));
    yajl_tree_free(p);
}

typedef struct {
    const char (*ids)[16];
    int n;
} ids_t;

static bool all_delivered(void *arg)
{
    ids_t *x = arg;
    yajl_val list = h_origin_json(&env, "/_callbacks");
    int found = 0;
    for (int k = 0; k < x->n; k++) {
        for (size_t i = 0; list && i < list->u.array.len; i++) {
            yajl_val cb = list->u.array.values[i];
            const char *body = h_jstr(cb, "body");
            if (h_jint(cb, "status") == 200 && body && strstr(body, x->ids[k]) &&
                strstr(body, "\"success\":true")) {
                found++;
                break;
            }
        }
    }
    if (list) yajl_tree_free(list);
    return found == x->n;
}

static void test_limits_hold_across_two_processors(void **state)
{
    (void)state;
    pid_t second = h_env_run(&env, "processor");
    static char ids[60][16];
    for (int i = 0; i < 60; i++) {
        const char *aggr = i % 2 ? "lim5" : "lim3";
        char path[128];
        snprintf(path, sizeof path, "/data/2000?delay_ms=150&aggr=%s&n=%d", aggr, i);
        post(path, aggr, i % 2 ? 5 : 3, NULL, ids[i]);
    }
    ids_t x = {(const char(*)[16])ids, 60};
    assert_true(h_wait_for(all_delivered, &x, 30000));
    yajl_val st = h_origin_json(&env, "/_stats");
    const char *k3[] = {"lim3", "max", NULL}, *k5[] = {"lim5", "max", NULL};
    assert_int_equal(YAJL_GET_INTEGER(yajl_tree_get(st, k3, yajl_t_number)), 3);
    assert_int_equal(YAJL_GET_INTEGER(yajl_tree_get(st, k5, yajl_t_number)), 5);
    yajl_tree_free(st);
    h_stop(second, SIGTERM, 10000);
}

static bool origin_busy(void *arg)
{
    const char *aggr = arg;
    yajl_val st = h_origin_json(&env, "/_stats");
    const char *k[] = {aggr, "current", NULL};
    yajl_val v = st ? yajl_tree_get(st, k, yajl_t_number) : NULL;
    bool busy = v && YAJL_GET_INTEGER(v) > 0;
    if (st) yajl_tree_free(st);
    return busy;
}

static void test_kill9_processor_loses_nothing(void **state)
{
    (void)state;
    static char ids[20][16];
    for (int i = 0; i < 20; i++)
        post("/data/20000?chunk=2000&chunk_delay_ms=100&aggr=k9", "k9", 10, NULL, ids[i]);
    assert_true(h_wait_for(origin_busy, "k9", 10000));
    h_stop(processor_pid, SIGKILL, 2000);
    processor_pid = h_env_run(&env, "processor");
    ids_t x = {(const char(*)[16])ids, 20};
    assert_true(h_wait_for(all_delivered, &x, 40000));
    for (int i = 0; i < 20; i++)
        assert_stored(ids[i], 20000);
}

static void test_sigterm_requeues_without_attempt(void **state)
{
    (void)state;
    char id[16];
    post("/data/30000?chunk=1000&chunk_delay_ms=100&aggr=term", "term", 1, "\"max_retries\":0", id);
    assert_true(h_wait_for(origin_busy, "term", 10000));
    int status = h_stop(processor_pid, SIGTERM, 10000);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char *st = h_redis_str(rc, "HGET job:%s DownloadState", id);
    assert_string_equal(st, "Pending");
    free(st);
    assert_true(h_redis_int(rc, "HGET job:%s DownloadCount", id) <=
                0); /* absent or 0: no attempt used */
    processor_pid = h_env_run(&env, "processor");
    yajl_val p = h_wait_callback(&env, id, 20000);
    assert_non_null(p);
    assert_int_equal(h_jbool(p, "success"), 1);
    yajl_tree_free(p);
}

/* A job whose lease was lost more than 10 times (its processors keep dying or
 * stalling) is failed by the next claim instead of being queued again: final error,
 * callback sent; the processor still downloading it loses it (renewal or finish). */
static void test_lease_lost_too_often_fails_job(void **state)
{
    (void)state;
    char id[16], other[16];
    post("/data/20000?chunk=1000&chunk_delay_ms=100&aggr=ll", "ll", 1, NULL, id);
    assert_true(h_wait_for(origin_busy, "ll", 10000));
    /* as if ten earlier leases had expired, and the current one too */
    assert_true(h_redis_int(rc, "HSET job:%s LostLeases 10", id) >= 0);
    assert_int_equal(h_redis_int(rc, "ZADD leases XX CH 1 %s:ll", id), 1);
    post("/data/10", "ll2", 1, NULL, other); /* wakes the processor: a claim runs */
    yajl_val p = h_wait_callback(&env, id, 10000);
    assert_non_null(p);
    assert_int_equal(h_jbool(p, "success"), 0);
    assert_string_equal(h_jstr(p, "error"),
                        "Error while performing request, lease lost 11 times (processor crashed "
                        "or stalled), retriable: false, internal: true");
    yajl_tree_free(p);
    p = h_wait_callback(&env, other, 10000);
    assert_non_null(p);
    assert_int_equal(h_jbool(p, "success"), 1);
    yajl_tree_free(p);
    usleep(2500000); /* the abandoned download would have finished by now */
    assert_delivered_history(id);
    assert_int_equal(h_redis_int(rc, "ZCARD leases"), 0);
    assert_int_equal(h_redis_int(rc, "EXISTS aggr:ll"), 0);
}

static void test_callback_retried_until_delivered(void **state)
{
    (void)state;
    char id[16];
    assert_int_equal(h_origin_post(&env, "/_sink", "{\"fail\": 2, \"status\": 500}"), 200);
    post("/data/10", "cbr", 4, NULL, id);
    yajl_val p = h_wait_callback(&env, id, 15000);
    assert_non_null(p);
    yajl_tree_free(p);
    int ok = 0;
    assert_int_equal(h_callbacks(&env, id, &ok, NULL), 3);
    assert_int_equal(ok, 1);
}

static bool callback_failed(void *arg)
{
    char *st = h_redis_str(rc, "HGET job:%s CallbackState", (const char *)arg);
    bool failed = st && strcmp(st, "Failed") == 0;
    free(st);
    return failed;
}

static void test_callback_failed_then_retry(void **state)
{
    (void)state;
    char id[16], path[64], url[256];
    assert_int_equal(h_origin_post(&env, "/_sink", "{\"down\": true}"), 200);
    post("/data/10", "cbf", 4, NULL, id);
    assert_true(h_wait_for(callback_failed, id, 20000));
    assert_int_equal(h_callbacks(&env, id, NULL, NULL), 3); /* notifier.max_attempts */
    char *meta = h_redis_str(rc, "HGET job:%s CallbackMeta", id);
    assert_string_equal(meta, "Received Status: 503 Service Unavailable");
    free(meta);
    assert_int_equal(h_origin_post(&env, "/_sink", "{\"down\": false}"), 200);
    snprintf(path, sizeof path, "/retry/%s", id);
    h_api_url(&env, url, sizeof url, path);
    h_resp_t r;
    assert_int_equal(h_http("POST", url, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 204);
    h_resp_free(&r);
    yajl_val p = h_wait_callback(&env, id, 10000);
    assert_non_null(p);
    assert_int_equal(h_jbool(p, "success"), 1);
    yajl_tree_free(p);
}

static void test_callback_retry_after(void **state)
{
    (void)state;
    char id[16];
    assert_int_equal(
        h_origin_post(&env, "/_sink", "{\"fail\": 1, \"status\": 429, \"retry_after\": \"2\"}"),
        200);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    post("/data/10", "ra", 4, NULL, id);
    yajl_val p = h_wait_callback(&env, id, 15000);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_non_null(p);
    yajl_tree_free(p);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(secs >= 1.9);
}

static void test_kill9_notifier_delivers_everything(void **state)
{
    (void)state;
    static char ids[20][16];
    assert_int_equal(h_origin_post(&env, "/_sink", "{\"delay_ms\": 1500}"), 200);
    for (int i = 0; i < 20; i++)
        post("/data/10", "nk", 20, NULL, ids[i]);
    usleep(800000); /* callbacks are now waiting on the slow sink */
    h_stop(notifier_pid, SIGKILL, 2000);
    assert_int_equal(h_origin_post(&env, "/_sink", "{\"delay_ms\": 0}"), 200);
    notifier_pid = h_env_run(&env, "notifier");
    ids_t x = {(const char(*)[16])ids, 20};
    assert_true(h_wait_for(all_delivered, &x, 30000));
    int dup = 0;
    for (int i = 0; i < 20; i++) {
        int ok = 0;
        h_callbacks(&env, ids[i], &ok, NULL);
        dup += ok - 1;
    }
    fprintf(stderr, "kill -9 notifier: 20 callbacks delivered, %d duplicates (at-least-once)\n",
            dup);
}

static bool undefined_backend_counted(void *arg)
{
    (void)arg;
    char url[256];
    h_resp_t r;
    h_api_url(&env, url, sizeof url, "/stats/notifier");
    bool ok = h_http("GET", url, NULL, NULL, &r) == 0 &&
              strstr(r.body, "\"undefinedBackendWithCallback\": ");
    h_resp_free(&r);
    return ok;
}

static void test_unknown_callback_type(void **state)
{
    (void)state;
    char url[256], body[512];
    h_origin_url(&env, url, sizeof url, "/data/10");
    snprintf(body, sizeof body,
             "{\"url\":\"%s\",\"aggr_id\":\"ub\",\"aggr_limit\":1,\"callback_type\":\"foo\","
             "\"callback_dst\":\"x\"}",
             url);
    assert_int_equal(h_post_job(&env, body, NULL), 201);
    assert_true(h_wait_for(undefined_backend_counted, NULL, 10000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_pipeline),
        cmocka_unit_test(test_image_size_and_mime),
        cmocka_unit_test(test_files_served_with_detected_type),
        cmocka_unit_test(test_not_found_is_final),
        cmocka_unit_test(test_server_error_retries),
        cmocka_unit_test(test_transient_error_then_success),
        cmocka_unit_test(test_exact_headers_on_wire),
        cmocka_unit_test(test_gzip_stored_decoded),
        cmocka_unit_test(test_stuck_origin_cut_off),
        cmocka_unit_test(test_limits_hold_across_two_processors),
        cmocka_unit_test(test_kill9_processor_loses_nothing),
        cmocka_unit_test(test_sigterm_requeues_without_attempt),
        cmocka_unit_test(test_lease_lost_too_often_fails_job),
        cmocka_unit_test(test_callback_retried_until_delivered),
        cmocka_unit_test(test_callback_failed_then_retry),
        cmocka_unit_test(test_callback_retry_after),
        cmocka_unit_test(test_kill9_notifier_delivers_everything),
        cmocka_unit_test(test_unknown_callback_type),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
