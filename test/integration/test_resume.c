/* Issue 16 end to end: resume of partial downloads with HTTP ranges (after a reset,
 * after kill -9 of the processor, an origin that ignores Range, an ETag that changed),
 * checksums (match, mismatch, bad format; sha256 and size recorded) and the
 * aggregation bandwidth cap measured at the origin with one and two processors. The
 * origin is test/origin.py (ranges=1, cut_once, ignore_range, /_etag, /_served). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "harness.h"

static h_env_t env;
static pid_t processor_pid, notifier_pid;

static int setup(void **state)
{
    (void)state;
    if (h_env_start(&env, "\"max_concurrency\": 2", "\"max_attempts\": 3", NULL) < 0) return -1;
    if (h_env_run(&env, "api") < 0) return -1;
    processor_pid = h_env_run(&env, "processor");
    return processor_pid > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    h_env_stop(&env);
    return 0;
}

/* Posts a job (aggr_limit 4, callback to the sink); it must be accepted. */
static void post(const char *origin_path, const char *aggr, const char *extra, char *id)
{
    char url[512], cb[256], body[2048];
    h_origin_url(&env, url, sizeof url, origin_path);
    h_origin_url(&env, cb, sizeof cb, "/callback/resume");
    snprintf(body, sizeof body,
             "{\"url\":\"%s\",\"aggr_id\":\"%s\",\"aggr_limit\":4,\"callback_url\":\"%s\"%s%s}",
             url, aggr, cb, extra ? "," : "", extra ? extra : "");
    assert_int_equal(h_post_job(&env, body, id), 201);
}

/* GET /download/<id>, parsed. */
static yajl_val status_of(const char *id)
{
    char url[256], path[64];
    snprintf(path, sizeof path, "/download/%s", id);
    h_api_url(&env, url, sizeof url, path);
    h_resp_t r;
    if (h_http("GET", url, NULL, NULL, &r) != 0) return NULL;
    yajl_val v = r.status == 200 ? h_json(r.body) : NULL;
    h_resp_free(&r);
    return v;
}

static bool finished(void *arg)
{
    yajl_val v = status_of(arg);
    const char *s = v ? h_jstr(v, "download_state") : NULL;
    bool done = s && (strcmp(s, "Success") == 0 || strcmp(s, "Failed") == 0);
    yajl_tree_free(v);
    return done;
}

/* Waits for the end of the download; returns its status (caller frees). */
static yajl_val wait_finished(const char *id, int timeout_ms)
{
    assert_true(h_wait_for(finished, (void *)id, timeout_ms));
    return status_of(id);
}

/* The Range header of each request the origin got for path, in order ("" = none). */
static int ranges_of(const char *path, char out[][64], int max)
{
    yajl_val list = h_origin_json(&env, "/_requests");
    int n = 0;
    for (size_t i = 0; list && i < list->u.array.len && n < max; i++) {
        yajl_val r = list->u.array.values[i];
        if (!h_jstr(r, "path") || strcmp(h_jstr(r, "path"), path) != 0) continue;
        const char *k[] = {"headers", "Range", NULL};
        yajl_val v = yajl_tree_get(r, k, yajl_t_string);
        snprintf(out[n++], 64, "%s", v ? YAJL_GET_STRING(v) : "");
    }
    yajl_tree_free(list);
    return n;
}

/* Two requests for path, the second asking for the rest: the offset it asked for. */
static long long resumed_from(const char *path)
{
    char ranges[4][64];
    long long n = -1;
    assert_int_equal(ranges_of(path, ranges, 4), 2);
    assert_string_equal(ranges[0], "");
    assert_int_equal(sscanf(ranges[1], "bytes=%lld-", &n), 1);
    return n;
}

static long long served(const char *key)
{
    yajl_val s = h_origin_json(&env, "/_served");
    const char *k[] = {key, "bytes", NULL};
    yajl_val v = s ? yajl_tree_get(s, k, yajl_t_number) : NULL;
    long long n = v ? YAJL_GET_INTEGER(v) : 0;
    yajl_tree_free(s);
    return n;
}

/* The stored file equals the origin's body for an etag whose bytes sum to shift. */
static void assert_stored(const char *id, size_t size, unsigned shift)
{
    char path[700];
    snprintf(path, sizeof path, "%s/files/%.3s/%s", env.dir, id, id);
    size_t len = 0;
    unsigned char *data = (unsigned char *)h_read_file(path, &len);
    assert_non_null(data);
    assert_int_equal(len, size);
    for (size_t i = 0; i < len; i++)
        if (data[i] != h_pattern_byte(i + shift)) fail_msg("byte %zu differs", i);
    free(data);
}

static void assert_success(yajl_val st, long long size)
{
    assert_non_null(st);
    if (strcmp(h_jstr(st, "download_state"), "Success") != 0)
        fail_msg("%s: %s", h_jstr(st, "download_state"), h_jstr(st, "download_error"));
    assert_non_null(h_jstr(st, "sha256"));
    assert_int_equal(h_jint(st, "size"), size);
    assert_int_equal(strlen(h_jstr(st, "sha256")), 64);
}

/* The checks of a resumed download: the second request asked for bytes=<n>-
 * with n >= 50% of the file, GET /download/<id> shows n as kept_bytes, the origin
 * served at most 1.1x the file, and the stored file is the origin's. */
static void assert_resumed(const char *id, const char *path, long long size, int timeout_ms)
{
    yajl_val st = wait_finished(id, timeout_ms);
    assert_success(st, size);
    long long n = resumed_from(path);
    assert_true(n >= size / 2);
    assert_int_equal(h_jint(st, "kept_bytes"), n);
    yajl_tree_free(st);
    assert_true(served(path) <= size * 11 / 10);
    assert_stored(id, size, 0);
}

/* The reset comes at 60% of the body; the retry asks for the rest. */
static void test_resume_after_reset(void **state)
{
    (void)state;
    char id[16];
    const char *path = "/data/2000000";
    post("/data/2000000?ranges=1&cut_once=1200000&chunk=65536&chunk_delay_ms=5", "rs", NULL, id);
    assert_resumed(id, path, 2000000, 20000);
}

static bool served_60pct(void *arg)
{
    (void)arg;
    return served("/data/20000000") >= 12000000;
}

/* kill -9 at 60% of a 20 MB body: the temp file and its xattr survive, the next
 * processor resumes once the lease expired. */
static void test_resume_after_kill9(void **state)
{
    (void)state;
    char id[16];
    const char *path = "/data/20000000";
    post("/data/20000000?ranges=1&chunk=65536&chunk_delay_ms=8", "k9", NULL, id);
    assert_true(h_wait_for(served_60pct, NULL, 30000));
    h_env_kill(&env, processor_pid, SIGKILL, 2000);
    processor_pid = h_env_run(&env, "processor");
    assert_resumed(id, path, 20000000, 40000);
}

/* Accept-Ranges advertised, Range ignored: the 200 starts over. */
static void test_origin_ignores_range(void **state)
{
    (void)state;
    char id[16];
    const char *path = "/data/1500000";
    post("/data/1500000?ranges=1&ignore_range=1&cut_once=900000", "ir", NULL, id);
    yajl_val st = wait_finished(id, 20000);
    assert_success(st, 1500000);
    assert_int_equal(h_jint(st, "kept_bytes"), 0);
    yajl_tree_free(st);
    assert_true(resumed_from(path) > 0); /* asked for the rest, and got everything */
    assert_true(served(path) >= 900000 + 1500000);
    assert_stored(id, 1500000, 0);
}

static bool served_some(void *arg)
{
    return served(arg) >= 300000;
}

/* The ETag (and the body) changed between the attempts: If-Range makes it a 200. */
static void test_etag_changed(void **state)
{
    (void)state;
    char id[16];
    const char *path = "/data/1600000";
    post("/data/1600000?ranges=1&cut_once=1000000&chunk=65536&chunk_delay_ms=20", "et", NULL, id);
    assert_true(h_wait_for(served_some, (void *)path, 10000));
    assert_int_equal(
        h_origin_post(&env, "/_etag", "{\"path\": \"/data/1600000\", \"etag\": \"v2\"}"), 200);
    yajl_val st = wait_finished(id, 20000);
    assert_success(st, 1600000);
    yajl_tree_free(st);
    assert_true(resumed_from(path) > 0);
    assert_stored(id, 1600000, 'v' + '2'); /* the new body, whole */
}

/* Last-Modified alone is a validator too; the resumed part still goes through the
 * MIME check with the first bytes of the file. */
static void test_resume_last_modified_mime(void **state)
{
    (void)state;
    char id[16];
    const char *path = "/data/1000000";
    post("/data/1000000?ranges=1&validator=lm&cut_once=700000", "lm",
         "\"mime_type\":\"application/octet-stream\"", id);
    yajl_val st = wait_finished(id, 20000);
    assert_success(st, 1000000);
    assert_string_equal(h_jstr(st, "mime_type"), "application/octet-stream");
    yajl_tree_free(st);
    assert_true(resumed_from(path) > 0);
    assert_stored(id, 1000000, 0);
}

static void pattern_digest(const EVP_MD *md, size_t n, char *hex)
{
    unsigned char *data = malloc(n), out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    for (size_t i = 0; i < n; i++)
        data[i] = h_pattern_byte(i);
    EVP_Digest(data, n, out, &len, md, NULL);
    for (unsigned int i = 0; i < len; i++)
        sprintf(hex + 2 * i, "%02x", out[i]);
    free(data);
}

static void start_notifier(void)
{
    if (!notifier_pid) notifier_pid = h_env_run(&env, "notifier");
    assert_true(notifier_pid > 0);
}

static void test_checksum_match(void **state)
{
    (void)state;
    char id[16], id2[16], sha[65], md5[33], extra[128];
    start_notifier();
    pattern_digest(EVP_sha256(), 300000, sha);
    pattern_digest(EVP_md5(), 300000, md5);
    snprintf(extra, sizeof extra, "\"checksum\":\"sha256:%s\"", sha);
    post("/data/300000", "ck", extra, id);
    snprintf(extra, sizeof extra, "\"checksum\":\"md5:%s\"", md5);
    post("/data/300000?resumed=1&ranges=1&cut_once=200000", "ck", extra, id2);
    yajl_val p = h_wait_callback(&env, id, 15000);
    assert_non_null(p);
    assert_int_equal(h_jbool(p, "success"), 1);
    assert_int_equal(p->u.object.len, 12);
    assert_string_equal(h_jstr(p, "sha256"), sha);
    assert_int_equal(h_jint(p, "size"), 300000);
    yajl_tree_free(p);
    /* md5, and resumed: the kept part is digested when the second attempt starts */
    p = h_wait_callback(&env, id2, 15000);
    assert_non_null(p);
    assert_int_equal(h_jbool(p, "success"), 1);
    assert_string_equal(h_jstr(p, "sha256"), sha);
    yajl_tree_free(p);
}

static void test_checksum_mismatch_is_final(void **state)
{
    (void)state;
    char id[16], sha[65], extra[128], want[256];
    const char *zero = "0000000000000000000000000000000000000000000000000000000000000000";
    start_notifier();
    pattern_digest(EVP_sha256(), 70000, sha);
    snprintf(extra, sizeof extra, "\"checksum\":\"sha256:%s\"", zero);
    post("/data/70000?mm=1", "cm", extra, id);
    yajl_val p = h_wait_callback(&env, id, 15000);
    assert_non_null(p);
    assert_int_equal(h_jbool(p, "success"), 0);
    snprintf(want, sizeof want, "checksum mismatch: expected sha256:%s, got sha256:%s", zero, sha);
    assert_non_null(strstr(h_jstr(p, "error"), want));
    assert_non_null(strstr(h_jstr(p, "error"), "retriable: false"));
    assert_string_equal(h_jstr(p, "sha256"), "");
    yajl_tree_free(p);
    char ranges[4][64];
    assert_int_equal(ranges_of("/data/70000", ranges, 4), 1); /* one attempt */
}

static void test_checksum_bad_format(void **state)
{
    (void)state;
    const char *bad[] = {"\"sha256:abc\"", "\"sha1:0000000000000000000000000000000000000000\"",
                         "\"md5:0123456789abcdef0123456789abcdeg\"", "42"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char url[512], body[2048], api[256];
        h_origin_url(&env, url, sizeof url, "/data/10");
        snprintf(body, sizeof body,
                 "{\"url\":\"%s\",\"aggr_id\":\"bf\",\"aggr_limit\":1,\"callback_url\":\"%s\","
                 "\"checksum\":%s}",
                 url, url, bad[i]);
        h_api_url(&env, api, sizeof api, "/download");
        h_resp_t r;
        assert_int_equal(h_http("POST", api, body, NULL, &r), 0);
        assert_int_equal(r.status, 400);
        assert_non_null(strstr(r.body, "checksum must be"));
        h_resp_free(&r);
    }
}

/* Rate at the origin while the middle 60% of the bytes of `key` were served (the
 * socket buffers' head start and the tail of the last transfer left out). */
static double served_rate(const char *key)
{
    yajl_val s = h_origin_json(&env, "/_served");
    const char *k[] = {key, "samples", NULL};
    yajl_val v = s ? yajl_tree_get(s, k, yajl_t_array) : NULL;
    assert_non_null(v);
    size_t n = v->u.array.len;
    double total = YAJL_GET_DOUBLE(v->u.array.values[n - 1]->u.array.values[1]);
    double t1 = -1, b1 = 0, t2 = -1, b2 = 0;
    for (size_t i = 0; i < n; i++) {
        double t = YAJL_GET_DOUBLE(v->u.array.values[i]->u.array.values[0]);
        double b = YAJL_GET_DOUBLE(v->u.array.values[i]->u.array.values[1]);
        if (t1 < 0 && b >= 0.2 * total) t1 = t, b1 = b;
        if (t2 < 0 && b >= 0.8 * total) t2 = t, b2 = b;
    }
    yajl_tree_free(s);
    assert_true(t2 > t1);
    return (b2 - b1) / (t2 - t1);
}

/* n downloads of `size` bytes at once (max_concurrency 2 per processor) under a
 * 2 MB/s cap: no download waits for a slot, so the measured window has no gap. */
static void bandwidth_run(const char *aggr, int n, long size)
{
    char ids[4][16], path[128];
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "/data/%ld?sndbuf=65536&aggr=%s&n=%d", size, aggr, i);
        post(path, aggr, "\"aggr_bandwidth\":2000000", ids[i]);
    }
    for (int i = 0; i < n; i++) {
        yajl_val st = wait_finished(ids[i], 30000);
        assert_success(st, size);
        yajl_tree_free(st);
    }
    double rate = served_rate(aggr);
    print_message("aggregate rate at the origin: %.0f bytes/s (cap 2000000)\n", rate);
    assert_true(rate >= 1600000 && rate <= 2400000);
}

static void test_bandwidth_one_processor(void **state)
{
    (void)state;
    bandwidth_run("bw1", 2, 4000000);
}

static void test_bandwidth_two_processors(void **state)
{
    (void)state;
    pid_t second = h_env_run(&env, "processor");
    assert_true(second > 0);
    bandwidth_run("bw2", 4, 2000000); /* two per processor */
    h_env_kill(&env, second, SIGTERM, 10000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_after_reset),
        cmocka_unit_test(test_resume_after_kill9),
        cmocka_unit_test(test_origin_ignores_range),
        cmocka_unit_test(test_etag_changed),
        cmocka_unit_test(test_resume_last_modified_mime),
        cmocka_unit_test(test_bandwidth_one_processor),
        cmocka_unit_test(test_bandwidth_two_processors),
        cmocka_unit_test(test_checksum_match), /* from here on callbacks remove jobs */
        cmocka_unit_test(test_checksum_mismatch_is_final),
        cmocka_unit_test(test_checksum_bad_format),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
