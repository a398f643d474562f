/* SSRF guard integration tests: the real binary (`downloader all`) with
 * processor.block_private_networks on. Without an allow list a job to the local
 * origin fails for good after one attempt with the "refused to connect" error, and
 * its callback, to the same loopback origin, is refused too (the guard covers
 * callbacks): the sink never sees it and the job shows the error; with allow_cidrs
 * ["127.0.0.0/8"] downloads and callbacks work, but a redirect from the allowed origin
 * to the cloud metadata address or to ::1 is refused the same way. */
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

#define GUARD_MSG(addr)                                                                            \
    "Error while performing request, refused to connect to " addr ": private or loopback "         \
    "address (processor.block_private_networks), retriable: false, internal: false"

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* POSTs a job for an origin path. With `sink` its callback goes to the origin's sink;
 * without, to a dead port, so that the job stays in Redis for GET /download/<id>. */
static void post(h_env_t *e, const char *path, bool sink, char *id)
{
    char url[256], cb[256], body[1024];
    h_origin_url(e, url, sizeof url, path);
    h_origin_url(e, cb, sizeof cb, "/callback/guard");
    snprintf(body, sizeof body,
             "{\"url\":\"%s\",\"aggr_id\":\"guard\",\"aggr_limit\":4,\"callback_url\":\"%s\"}", url,
             sink ? cb : "http://127.0.0.1:1/dead");
    assert_int_equal(h_post_job(e, body, id), 201);
}

/* Polls GET /download/<id> until done(status) holds; returns the status object
 * (caller frees). */
static yajl_val wait_status(h_env_t *e, const char *id, bool (*done)(yajl_val v, const char *id),
                            const char *what)
{
    char url[256], path[64];
    snprintf(path, sizeof path, "/download/%s", id);
    h_api_url(e, url, sizeof url, path);
    long end = now_ms() + 15000;
    while (now_ms() < end) {
        h_resp_t r;
        yajl_val v =
            h_http("GET", url, NULL, NULL, &r) == 0 && r.status == 200 ? h_json(r.body) : NULL;
        h_resp_free(&r);
        if (v && done(v, id)) return v;
        yajl_tree_free(v);
        usleep(50000);
    }
    fail_msg("job %s: %s not in time", id, what);
    return NULL;
}

static bool download_failed(yajl_val v, const char *id)
{
    const char *state = h_jstr(v, "download_state");
    if (state && strcmp(state, "Success") == 0) fail_msg("job %s succeeded", id);
    return state && strcmp(state, "Failed") == 0;
}

static bool callback_failed(yajl_val v, const char *id)
{
    (void)id;
    const char *err = h_jstr(v, "callback_error");
    return err && *err;
}

static void assert_refused(h_env_t *e, const char *id, const char *msg)
{
    yajl_val v = wait_status(e, id, download_failed, "download failure");
    assert_string_equal(h_jstr(v, "download_error"), msg);
    assert_int_equal(h_jint(v, "download_attempts"), 1); /* final: never retried */
    assert_int_equal(h_jint(v, "response_code"), 0);
    yajl_tree_free(v);
}

static int start_env(void **state, const char *processor_extra)
{
    h_env_t *e = calloc(1, sizeof *e);
    *state = e;
    if (!e || h_env_start(e, processor_extra, NULL, NULL) < 0) return -1;
    return h_env_run(e, "all") > 0 ? 0 : -1;
}

static int setup_guard(void **state)
{
    return start_env(state, "\"block_private_networks\": true");
}

static int setup_guard_allow(void **state)
{
    return start_env(state, "\"block_private_networks\": true, \"allow_cidrs\": [\"127.0.0.0/8\"]");
}

static int teardown(void **state)
{
    h_env_t *e = *state;
    if (e && e->dir) h_env_stop(e);
    free(e);
    return 0;
}

static void test_guard_without_allow_list(void **state)
{
    h_env_t *e = *state;
    char id[16], cb[16];
    post(e, "/data/10?tag=guarded", false, id);
    post(e, "/data/10?tag=guarded", true, cb);
    assert_refused(e, id, GUARD_MSG("127.0.0.1"));
    /* the callback to the loopback sink is refused by the same guard */
    yajl_val v = wait_status(e, cb, callback_failed, "callback error");
    char want[512], sink[256];
    h_origin_url(e, sink, sizeof sink, "/callback/guard");
    snprintf(want, sizeof want,
             "Post \"%s\": refused to connect to 127.0.0.1: private or loopback address "
             "(processor.block_private_networks)",
             sink);
    assert_string_equal(h_jstr(v, "callback_error"), want);
    yajl_tree_free(v);
    int ok = 0;
    assert_int_equal(h_callbacks(e, cb, &ok, NULL), 0);
    /* the origin never saw a download request */
    yajl_val reqs = h_origin_json(e, "/_requests");
    assert_non_null(reqs);
    for (size_t i = 0; i < reqs->u.array.len; i++) {
        const char *target = h_jstr(reqs->u.array.values[i], "target");
        assert_true(!target || !strstr(target, "guarded"));
    }
    yajl_tree_free(reqs);
}

static void test_guard_with_allow_list(void **state)
{
    h_env_t *e = *state;
    char ok[16], meta[16], v6[16], script[512];
    assert_int_equal(h_origin_post(e, "/_script",
                                   "{\"path\": \"/to-metadata\", \"responses\": [{\"status\": 302, "
                                   "\"headers\": {\"Location\": "
                                   "\"http://169.254.169.254/latest/meta-data/\"}}]}"),
                     200);
    snprintf(script, sizeof script,
             "{\"path\": \"/to-v6-loopback\", \"responses\": [{\"status\": 302, \"headers\": "
             "{\"Location\": \"http://[::1]:%d/data/10\"}}]}",
             e->origin_port);
    assert_int_equal(h_origin_post(e, "/_script", script), 200);
    post(e, "/data/10", true, ok);
    post(e, "/to-metadata", false, meta);
    post(e, "/to-v6-loopback", false, v6);
    yajl_val p = h_wait_callback(e, ok, 15000);
    assert_non_null(p);
    assert_int_equal(h_jbool(p, "success"), 1);
    assert_int_equal(h_jint(p, "response_code"), 200);
    yajl_tree_free(p);
    assert_refused(e, meta, GUARD_MSG("169.254.169.254"));
    assert_refused(e, v6, GUARD_MSG("::1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_guard_without_allow_list, setup_guard, teardown),
        cmocka_unit_test_setup_teardown(test_guard_with_allow_list, setup_guard_allow, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
