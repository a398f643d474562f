/* Operator control routes (issue 15) end to end: api, two processors and a notifier
 * as processes of the real binary, a private redis-server and test/origin.py as origin
 * and sink, with api.auth_token set. Covers DELETE /download/<id> (queued, running,
 * delivered, and races with claim, download and finalisation: never a callback, never
 * a stored file left), GET/PATCH /aggregations/<id> (pause across two processors),
 * queue pages, purge of 100,000 jobs (its longest Redis call from SLOWLOG), the failed
 * lists and their retry, history of delivered jobs and its expiry, auth and 405. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define TOKEN "ctl-secret"

static h_env_t env;
static redisContext *rc;
static const char *const auth_hdr[] = {"Authorization: Bearer " TOKEN, NULL};

static int setup(void **state)
{
    (void)state;
    if (h_env_start_ex(&env, "\"max_concurrency\": 64", "\"max_attempts\": 1, \"history\": 3", NULL,
                       "\"auth_token\": \"" TOKEN "\"") < 0)
        return -1;
    if (h_env_run(&env, "api") < 0) return -1;
    if (h_env_run(&env, "processor") < 0 || h_env_run(&env, "processor") < 0) return -1;
    if (h_env_run(&env, "notifier") < 0) return -1;
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

static long long now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

/* A request on the API (with the token unless bare); returns the status, the body
 * parsed into *json when asked (NULL if not JSON). */
static long api(const char *method, const char *path, const char *body, bool bare, yajl_val *json,
                char **text)
{
    char url[2048];
    h_api_url(&env, url, sizeof url, path);
    h_resp_t r;
    if (h_http(method, url, body, bare ? NULL : auth_hdr, &r) < 0) {
        h_resp_free(&r);
        return -1;
    }
    if (json) *json = h_json(r.body);
    if (text) *text = strdup(r.body ? r.body : "");
    long status = r.status;
    h_resp_free(&r);
    return status;
}

/* 400 whose text names `field`. */
static void assert_400(const char *method, const char *path, const char *body, const char *field)
{
    char *text = NULL;
    assert_int_equal(api(method, path, body, false, NULL, &text), 400);
    if (!strstr(text, field))
        fail_msg("400 for %s %s does not name %s: %s", method, path, field, text);
    free(text);
}

static void post(const char *aggr, int limit, const char *origin_path, const char *callback,
                 char *id)
{
    char url[512], cb[512], body[2048];
    h_origin_url(&env, url, sizeof url, origin_path);
    if (callback)
        snprintf(cb, sizeof cb, "%s", callback);
    else
        h_origin_url(&env, cb, sizeof cb, "/callback/ctl");
    snprintf(body, sizeof body,
             "{\"url\":\"%s\",\"aggr_id\":\"%s\",\"aggr_limit\":%d,\"callback_url\":\"%s\"}", url,
             aggr, limit, cb);
    char *text = NULL;
    assert_int_equal(api("POST", "/download", body, false, NULL, &text), 201);
    const char *p = strstr(text, "\"id\":\"");
    assert_non_null(p);
    snprintf(id, 15, "%.14s", p + 6);
    free(text);
}

static yajl_val get_json(const char *path)
{
    yajl_val j = NULL;
    assert_int_equal(api("GET", path, NULL, false, &j, NULL), 200);
    assert_non_null(j);
    return j;
}

static long long aggr_field(const char *aggr, const char *field)
{
    char path[512];
    snprintf(path, sizeof path, "/aggregations/%s", aggr);
    yajl_val j = get_json(path);
    long long v = h_jint(j, field);
    yajl_tree_free(j);
    return v;
}

/* The origin's /_stats for requests tagged aggr=<aggr>: "current" or "count". */
static int origin_stat(const char *aggr, const char *field)
{
    yajl_val s = h_origin_json(&env, "/_stats");
    const char *path[] = {aggr, field, NULL};
    yajl_val v = s ? yajl_tree_get(s, path, yajl_t_number) : NULL;
    int n = v ? (int)YAJL_GET_INTEGER(v) : 0;
    yajl_tree_free(s);
    return n;
}

typedef struct {
    const char *aggr;
    const char *field;
    long long want;
} aggr_cond_t;

static bool aggr_is(void *arg)
{
    aggr_cond_t *c = arg;
    return aggr_field(c->aggr, c->field) == c->want;
}

static void wait_aggr(const char *aggr, const char *field, long long want)
{
    aggr_cond_t c = {aggr, field, want};
    if (!h_wait_for(aggr_is, &c, 10000))
        fail_msg("aggregation %s: %s is %lld, want %lld", aggr, field, aggr_field(aggr, field),
                 want);
}

static bool file_stored(const char *id)
{
    char path[700];
    struct stat st;
    snprintf(path, sizeof path, "%s/files/%.3s/%s", env.dir, id, id);
    return stat(path, &st) == 0;
}

static bool no_path(void *arg)
{
    struct stat st;
    return stat(arg, &st) != 0;
}

static bool no_file(void *arg)
{
    return !file_stored(arg);
}

static int tmp_files(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s/tmp", env.dir);
    DIR *d = opendir(path);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

/* ---------- auth and methods ---------- */

static void test_auth_and_methods(void **state)
{
    (void)state;
    static const char *writes[][2] = {{"DELETE", "/download/AAAAAAAAAAAAAA"},
                                      {"PATCH", "/aggregations/x"},
                                      {"DELETE", "/aggregations/x/jobs"},
                                      {"POST", "/failed/retry"}};
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(api(writes[i][0], writes[i][1], "{}", true, NULL, NULL), 401);
    /* reads stay open without api.auth_read, like the other read routes */
    assert_int_equal(api("GET", "/failed?kind=download", NULL, true, NULL, NULL), 200);
    assert_int_equal(api("GET", "/aggregations/x/jobs", NULL, true, NULL, NULL), 200);
    assert_int_equal(api("GET", "/aggregations/none", NULL, true, NULL, NULL), 404);
    static const char *unimpl[][2] = {{"PUT", "/download/AAAAAAAAAAAAAA"},
                                      {"POST", "/aggregations/x"},
                                      {"PUT", "/aggregations/x/jobs"},
                                      {"PATCH", "/aggregations/x/jobs"},
                                      {"DELETE", "/aggregations/x"},
                                      {"DELETE", "/failed"},
                                      {"GET", "/failed/retry"}};
    for (size_t i = 0; i < sizeof unimpl / sizeof unimpl[0]; i++) {
        long st = api(unimpl[i][0], unimpl[i][1], "{}", false, NULL, NULL);
        if (st != 405) fail_msg("%s %s: %ld, want 405", unimpl[i][0], unimpl[i][1], st);
    }
}

/* ---------- aggregation: read, patch, pages, pause, cancel running, purge ---------- */

static void test_aggregation_control(void **state)
{
    (void)state;
    char stalled[16], ids[4][16];
    post("ctl-a", 1, "/data/1000?stall=1&aggr=ctl-a", NULL, stalled);
    wait_aggr("ctl-a", "inflight", 1);
    for (int i = 0; i < 4; i++)
        post("ctl-a", 1, "/data/10?aggr=ctl-a", NULL, ids[i]);

    yajl_val a = get_json("/aggregations/ctl-a");
    assert_string_equal(h_jstr(a, "id"), "ctl-a");
    assert_int_equal(h_jint(a, "limit"), 1);
    assert_int_equal(h_jint(a, "rate"), 0);
    assert_int_equal(h_jbool(a, "paused"), 0);
    assert_int_equal(h_jint(a, "ready"), 4);
    assert_int_equal(h_jint(a, "delayed"), 0);
    assert_int_equal(h_jint(a, "inflight"), 1);
    yajl_tree_free(a);

    /* pages of the ready queue, in order, and the running one */
    yajl_val p = get_json("/aggregations/ctl-a/jobs?state=ready&count=3");
    const char *jp[] = {"jobs", NULL};
    yajl_val jobs = yajl_tree_get(p, jp, yajl_t_array);
    assert_int_equal(jobs->u.array.len, 3);
    for (int i = 0; i < 3; i++)
        assert_string_equal(h_jstr(jobs->u.array.values[i], "id"), ids[i]);
    assert_non_null(strstr(h_jstr(jobs->u.array.values[0], "url"), "/data/10"));
    assert_int_equal(h_jint(jobs->u.array.values[0], "attempts"), 0);
    assert_string_equal(h_jstr(p, "next_cursor"), "3");
    yajl_tree_free(p);
    p = get_json("/aggregations/ctl-a/jobs?state=ready&count=3&cursor=3");
    jobs = yajl_tree_get(p, jp, yajl_t_array);
    assert_int_equal(jobs->u.array.len, 1);
    assert_string_equal(h_jstr(jobs->u.array.values[0], "id"), ids[3]);
    assert_string_equal(h_jstr(p, "next_cursor"), "");
    yajl_tree_free(p);
    p = get_json("/aggregations/ctl-a/jobs?state=running");
    jobs = yajl_tree_get(p, jp, yajl_t_array);
    assert_int_equal(jobs->u.array.len, 1);
    assert_string_equal(h_jstr(jobs->u.array.values[0], "id"), stalled);
    assert_string_equal(h_jstr(jobs->u.array.values[0], "download_state"), "InProgress");
    yajl_tree_free(p);
    assert_400("GET", "/aggregations/ctl-a/jobs?state=queued", NULL, "state");
    assert_400("GET", "/aggregations/ctl-a/jobs?count=x", NULL, "count");
    assert_400("GET", "/aggregations/ctl-a/jobs?count=0", NULL, "count");
    assert_400("GET", "/aggregations/ctl-a/jobs?cursor=-4", NULL, "cursor");

    /* bad PATCH bodies name the field; an unknown aggregation is 404 */
    assert_400("PATCH", "/aggregations/ctl-a", "{\"limit\":0}", "limit");
    assert_400("PATCH", "/aggregations/ctl-a", "{\"limit\":\"2\"}", "limit");
    assert_400("PATCH", "/aggregations/ctl-a", "{\"rate\":-1}", "rate");
    assert_400("PATCH", "/aggregations/ctl-a", "{\"paused\":1}", "paused");
    assert_400("PATCH", "/aggregations/ctl-a", "{\"color\":1}", "color");
    assert_400("PATCH", "/aggregations/ctl-a", "[1]", "body");
    assert_400("PATCH", "/aggregations/ctl-a", "{}", "body");
    assert_int_equal(api("PATCH", "/aggregations/nope", "{\"paused\":true}", false, NULL, NULL),
                     404);

    /* pause with a higher limit and a rate: nothing new starts on either processor */
    yajl_val j = NULL;
    assert_int_equal(api("PATCH", "/aggregations/ctl-a",
                         "{\"paused\":true,\"limit\":3,\"rate\":2.5}", false, &j, NULL),
                     200);
    assert_int_equal(h_jbool(j, "paused"), 1);
    assert_int_equal(h_jint(j, "limit"), 3);
    assert_int_equal(h_jint(j, "ready"), 4);
    yajl_tree_free(j);
    char *rate = h_redis_str(rc, "HGET aggr:ctl-a rate");
    assert_string_equal(rate, "2.5");
    free(rate);
    assert_int_equal(h_redis_int(rc, "ZRANK ready ctl-a"), -1);

    /* cancel the running one: the origin sees the connection closed within 1 s */
    long long t0 = now_us();
    assert_int_equal(api("DELETE", "/download/", NULL, false, NULL, NULL), 404);
    char path[700];
    snprintf(path, sizeof path, "/download/%s", stalled);
    assert_int_equal(api("DELETE", path, NULL, false, NULL, NULL), 204);
    while (origin_stat("ctl-a", "current") > 0 && now_us() - t0 < 5000000)
        h_sleep_ms(20);
    long long abort_ms = (now_us() - t0) / 1000;
    printf("running download aborted %lld ms after DELETE\n", abort_ms);
    assert_true(abort_ms < 1500);
    wait_aggr("ctl-a", "inflight", 0);
    h_sleep_ms(800);
    assert_int_equal(aggr_field("ctl-a", "ready"), 4);
    assert_int_equal(origin_stat("ctl-a", "count"), 1);
    yajl_val st = get_json(path);
    assert_string_equal(h_jstr(st, "download_state"), "Cancelled");
    yajl_tree_free(st);
    assert_int_equal(api("DELETE", path, NULL, false, NULL, NULL), 204); /* idempotent */
    int ok = 0;
    assert_int_equal(h_callbacks(&env, stalled, &ok, NULL), 0);
    assert_int_equal(tmp_files(), 0);

    /* cancel a queued one: out of the queue, and a partial file an earlier attempt kept
     * for a resume is deleted by the processors */
    char partial[700];
    snprintf(partial, sizeof partial, "%s/tmp/%s.tmp", env.dir, ids[3]);
    assert_int_equal(h_write_file(partial, "kept bytes"), 0);
    snprintf(path, sizeof path, "/download/%s", ids[3]);
    assert_int_equal(api("DELETE", path, NULL, false, NULL, NULL), 204);
    assert_int_equal(aggr_field("ctl-a", "ready"), 3);
    assert_true(h_wait_for(no_path, partial, 5000));

    /* purge: the paused aggregation stays known while empty, then resuming forgets it */
    assert_int_equal(api("DELETE", "/aggregations/ctl-a/jobs", NULL, false, &j, NULL), 200);
    assert_int_equal(h_jint(j, "deleted"), 3);
    yajl_tree_free(j);
    assert_int_equal(aggr_field("ctl-a", "ready"), 0);
    assert_int_equal(aggr_field("ctl-a", "paused"), -1); /* a bool, not an int */
    assert_int_equal(h_redis_int(rc, "EXISTS job:%s", ids[0]), 0);
    assert_int_equal(api("PATCH", "/aggregations/ctl-a", "{\"paused\":false}", false, NULL, NULL),
                     200);
    assert_int_equal(api("GET", "/aggregations/ctl-a", NULL, false, NULL, NULL), 404);
    assert_int_equal(origin_stat("ctl-a", "count"), 1);
}

/* ---------- pause across two processors ---------- */

static void test_pause_two_processors(void **state)
{
    (void)state;
    char anchor[16], a[6][16], b[6][16];
    post("ctl-p1", 10, "/data/1000?stall=1&aggr=ctl-p1", NULL, anchor);
    wait_aggr("ctl-p1", "inflight", 1);
    assert_int_equal(api("PATCH", "/aggregations/ctl-p1", "{\"paused\":true}", false, NULL, NULL),
                     200);
    for (int i = 0; i < 6; i++) {
        post("ctl-p1", 10, "/data/100?aggr=ctl-p1", NULL, a[i]);
        post("ctl-p2", 10, "/data/100?delay_ms=50&aggr=ctl-p2", NULL, b[i]);
    }
    for (int i = 0; i < 6; i++) {
        yajl_val cb = h_wait_callback(&env, b[i], 10000);
        assert_non_null(cb);
        yajl_tree_free(cb);
    }
    /* both processors served ctl-p2 (two live instances), none started ctl-p1 */
    assert_true(h_redis_int(rc, "ZCOUNT instances -inf +inf") >= 4);
    assert_int_equal(origin_stat("ctl-p1", "count"), 1);
    assert_int_equal(aggr_field("ctl-p1", "ready"), 6);
    assert_int_equal(h_redis_int(rc, "ZRANK ready ctl-p1"), -1);
    /* restart-proof: the flag lives in Redis */
    char *paused = h_redis_str(rc, "HGET aggr:ctl-p1 paused");
    assert_string_equal(paused, "1");
    free(paused);

    char path[700];
    snprintf(path, sizeof path, "/download/%s", anchor);
    assert_int_equal(api("DELETE", path, NULL, false, NULL, NULL), 204);
    assert_int_equal(api("PATCH", "/aggregations/ctl-p1", "{\"paused\":false}", false, NULL, NULL),
                     200);
    for (int i = 0; i < 6; i++) {
        yajl_val cb = h_wait_callback(&env, a[i], 10000);
        assert_non_null(cb);
        yajl_tree_free(cb);
    }
}

/* ---------- history, 409 after delivery ---------- */

static bool gone(void *arg)
{
    return api("GET", arg, NULL, false, NULL, NULL) == 404;
}

static void test_history_and_delivered(void **state)
{
    (void)state;
    char id[16], path[700];
    post("ctl-h", 2, "/data/100", NULL, id);
    yajl_val cb = h_wait_callback(&env, id, 10000);
    assert_non_null(cb);
    yajl_tree_free(cb);
    snprintf(path, sizeof path, "/download/%s", id);
    yajl_val st = NULL;
    for (int i = 0; i < 50; i++) { /* the sink answers before cb_finish records it */
        yajl_tree_free(st);
        st = get_json(path);
        if (strcmp(h_jstr(st, "callback_state"), "Delivered") == 0) break;
        h_sleep_ms(50);
    }
    assert_string_equal(h_jstr(st, "callback_state"), "Delivered");
    assert_string_equal(h_jstr(st, "download_state"), "Success");
    assert_int_equal(h_jbool(st, "success"), 1);
    assert_string_equal(h_jstr(st, "error"), "");
    assert_int_equal(h_jint(st, "response_code"), 200);
    assert_non_null(strstr(h_jstr(st, "download_url"), id));
    assert_true(h_jint(st, "delivered_at_ms") > 0);
    assert_true(h_jint(st, "expires_in_ms") <= 3000);
    yajl_tree_free(st);
    char key[64];
    snprintf(key, sizeof key, "job:%s", id);
    printf("redis bytes per remembered job: %lld\n", h_redis_int(rc, "MEMORY USAGE %s", key));
    assert_int_equal(api("DELETE", path, NULL, false, NULL, NULL), 409);
    assert_int_equal(api("DELETE", path, NULL, true, NULL, NULL), 401);

    /* a callback being sent cannot be unsent: 409 too */
    char slow[16], spath[700];
    assert_int_equal(h_origin_post(&env, "/_sink", "{\"delay_ms\": 1500}"), 200);
    post("ctl-h", 2, "/data/100", NULL, slow);
    snprintf(spath, sizeof spath, "/download/%s", slow);
    char *cs = NULL;
    for (int i = 0; i < 200; i++) {
        free(cs);
        cs = h_redis_str(rc, "HGET job:%s CallbackState", slow);
        if (cs && strcmp(cs, "InProgress") == 0) break;
        h_sleep_ms(10);
    }
    assert_string_equal(cs, "InProgress");
    free(cs);
    char *text = NULL;
    assert_int_equal(api("DELETE", spath, NULL, false, NULL, &text), 409);
    assert_non_null(strstr(text, "being delivered"));
    free(text);
    assert_int_equal(h_origin_post(&env, "/_sink", "{\"delay_ms\": 0}"), 200);
    /* notifier.history is 3 s here */
    assert_true(h_wait_for(gone, path, 8000));
    assert_int_equal(api("DELETE", path, NULL, false, NULL, NULL), 404);
    assert_int_equal(api("DELETE", "/download/not:an:id", NULL, false, NULL, NULL), 404);
}

/* ---------- failed lists and retry ---------- */

/* Whether the failed list of that kind shows the job; *at: its failed_at_ms. */
static bool listed_at(const char *kind, const char *id, long long *at)
{
    char path[128];
    snprintf(path, sizeof path, "/failed?kind=%s&count=500", kind);
    yajl_val j = get_json(path);
    const char *jp[] = {"jobs", NULL};
    yajl_val jobs = yajl_tree_get(j, jp, yajl_t_array);
    bool found = false;
    for (size_t i = 0; jobs && i < jobs->u.array.len; i++) {
        yajl_val e = jobs->u.array.values[i];
        if (strcmp(h_jstr(e, "id"), id) == 0) {
            found = true;
            assert_string_equal(h_jstr(e, "aggr_id"), "ctl-f");
            assert_true(strlen(h_jstr(e, "error")) > 0);
            assert_true(h_jint(e, "failed_at_ms") > 0);
            if (at) *at = h_jint(e, "failed_at_ms");
        }
    }
    yajl_tree_free(j);
    return found;
}

static bool listed(const char *kind, const char *id)
{
    return listed_at(kind, id, NULL);
}

typedef struct {
    const char *id;
    long long after;
} refail_t;

static bool failed_again(void *arg)
{
    refail_t *r = arg;
    long long at = 0;
    return listed_at("callback", r->id, &at) && at > r->after;
}

static bool cb_listed(void *arg)
{
    return listed("callback", arg);
}

static void test_failed_and_retry(void **state)
{
    (void)state;
    char dead[128], id[16], id2[16], body[256];
    snprintf(dead, sizeof dead, "http://127.0.0.1:%d/cb", h_free_port());
    post("ctl-f", 2, "/status/404", dead, id);
    post("ctl-f", 2, "/data/10", dead, id2);
    assert_true(h_wait_for(cb_listed, id, 10000));
    assert_true(h_wait_for(cb_listed, id2, 10000));
    assert_true(listed("download", id));
    assert_false(listed("download", id2));
    assert_400("GET", "/failed", NULL, "kind");
    assert_400("GET", "/failed?kind=both", NULL, "kind");
    assert_400("GET", "/failed?kind=callback&count=-1", NULL, "count");
    /* pages of one */
    yajl_val p = get_json("/failed?kind=callback&count=1");
    assert_string_equal(h_jstr(p, "next_cursor"), "1");
    yajl_tree_free(p);

    assert_400("POST", "/failed/retry", "{\"kind\":\"both\"}", "kind");
    assert_400("POST", "/failed/retry", "{}", "kind");
    assert_400("POST", "/failed/retry", "{\"kind\":\"callback\",\"ids\":\"x\"}", "ids");
    assert_400("POST", "/failed/retry", "{\"kind\":\"callback\",\"ids\":[1]}", "ids");
    assert_400("POST", "/failed/retry", "nope", "body");
    yajl_val j = NULL;
    refail_t rf = {id, 0};
    assert_true(listed_at("callback", id, &rf.after));
    h_sleep_ms(5);
    snprintf(body, sizeof body, "{\"kind\":\"callback\",\"ids\":[\"%s\"]}", id);
    assert_int_equal(api("POST", "/failed/retry", body, false, &j, NULL), 200);
    assert_int_equal(h_jint(j, "requeued"), 1);
    yajl_tree_free(j);
    /* failed again, later: the sink is still gone */
    assert_true(h_wait_for(failed_again, &rf, 10000));
    assert_int_equal(api("POST", "/failed/retry", "{\"kind\":\"callback\"}", false, &j, NULL), 200);
    assert_int_equal(h_jint(j, "requeued"), 2);
    yajl_tree_free(j);
    assert_true(h_wait_for(cb_listed, id2, 10000));
    /* cancelling a failed job drops it from the lists and reaps its file */
    assert_true(file_stored(id2));
    char path[700];
    snprintf(path, sizeof path, "/download/%s", id2);
    assert_int_equal(api("DELETE", path, NULL, false, NULL, NULL), 204);
    assert_false(listed("callback", id2));
    assert_true(h_wait_for(no_file, id2, 5000));
}

/* ---------- failed downloads re-queued ---------- */

static bool dl_listed(void *arg)
{
    return listed("download", arg);
}

/* A job of aggregation ctl-f (limit 3) whose first request gets `first` from the
 * origin (404: failed for good at once) and later ones the body. */
static void post_failing(const char *path, const char *first, char *id)
{
    char script[256];
    snprintf(script, sizeof script, "{\"path\":\"%s\",\"responses\":[{\"status\":%s}]}", path,
             first);
    assert_int_equal(h_origin_post(&env, "/_script", script), 200);
    post("ctl-f", 3, path, NULL, id);
}

static long long requeue(const char *body)
{
    yajl_val j = NULL;
    assert_int_equal(api("POST", "/failed/retry", body, false, &j, NULL), 200);
    long long n = h_jint(j, "requeued");
    yajl_tree_free(j);
    return n;
}

/* The sink's only successful callback for the job is a success, after one attempt of
 * the new download (the failed one no longer counts). */
static void assert_success_callback(const char *id)
{
    yajl_val p = h_wait_callback(&env, id, 10000);
    assert_non_null(p);
    assert_int_equal(h_jbool(p, "success"), 1);
    yajl_tree_free(p);
    int ok = 0;
    h_callbacks(&env, id, &ok, NULL);
    assert_int_equal(ok, 1);
    char path[64];
    snprintf(path, sizeof path, "/download/%s", id);
    yajl_val j = get_json(path);
    assert_string_equal(h_jstr(j, "download_state"), "Success");
    assert_int_equal(h_jint(j, "download_attempts"), 1);
    yajl_tree_free(j);
}

static void test_retry_failed_downloads(void **state)
{
    (void)state;
    char id[16], id2[16], body[256], key[64];
    /* retry by id after the failure callback went out: a new job, a new callback */
    post_failing("/data/21", "404", id);
    assert_true(h_wait_for(dl_listed, id, 10000));
    yajl_val p = h_wait_callback(&env, id, 10000);
    assert_non_null(p);
    assert_int_equal(h_jbool(p, "success"), 0);
    yajl_tree_free(p);
    /* the aggregation is forgotten; the failure recorded its settings */
    assert_int_equal(h_redis_int(rc, "SISMEMBER aggrs ctl-f"), 0);
    snprintf(key, sizeof key, "job:%s", id);
    redisReply *r = h_redis(rc, "HGET %s AggrSettings", key);
    assert_non_null(strstr(r->str, "\"3\""));
    freeReplyObject(r);
    assert_int_equal(h_origin_post(&env, "/_reset", "{}"), 200);
    /* within notifier.history (3 s) of the failure's delivery */
    assert_int_equal(api("POST", "/failed/retry", "{\"kind\":\"download\"}", true, NULL, NULL),
                     401);
    snprintf(body, sizeof body, "{\"kind\":\"download\",\"ids\":[\"%s\"]}", id);
    assert_int_equal(requeue(body), 1);
    assert_int_equal(requeue(body), 0); /* no longer failed */
    assert_success_callback(id);
    assert_false(listed("download", id));
    assert_int_equal(h_redis_int(rc, "HEXISTS %s AggrSettings", key), 0);
    /* delivered with success, and unknown: not counted */
    snprintf(body, sizeof body, "{\"kind\":\"download\",\"ids\":[\"%s\",\"AAAAAAAAAAAAAA\"]}", id);
    assert_int_equal(requeue(body), 0);

    /* retry-all while the failure callback failed for good (the sink was down): the
     * callback is dropped, the client gets only the new attempt's */
    assert_int_equal(h_origin_post(&env, "/_sink", "{\"down\":true}"), 200);
    post_failing("/data/22", "404", id2);
    assert_true(h_wait_for(cb_listed, id2, 10000));
    assert_true(listed("download", id2));
    assert_int_equal(h_origin_post(&env, "/_sink", "{\"down\":false}"), 200);
    yajl_val l = get_json("/failed?kind=download&count=500");
    const char *jp[] = {"jobs", NULL};
    long long n = (long long)yajl_tree_get(l, jp, yajl_t_array)->u.array.len;
    yajl_tree_free(l);
    assert_true(n >= 1);
    assert_int_equal(requeue("{\"kind\":\"download\"}"), n);
    assert_false(listed("callback", id2));
    assert_success_callback(id2);
    assert_false(listed("download", id2));
}

/* ---------- a delayed retry: listed, then cancelled ---------- */

static void test_delayed_page_and_cancel(void **state)
{
    (void)state;
    char id[16], path[700];
    post("ctl-d", 2, "/status/503?retry_after=30", NULL, id);
    wait_aggr("ctl-d", "delayed", 1);
    yajl_val p = get_json("/aggregations/ctl-d/jobs?state=delayed");
    const char *jp[] = {"jobs", NULL};
    yajl_val jobs = yajl_tree_get(p, jp, yajl_t_array);
    assert_int_equal(jobs->u.array.len, 1);
    yajl_val j = jobs->u.array.values[0];
    assert_string_equal(h_jstr(j, "id"), id);
    assert_int_equal(h_jint(j, "attempts"), 1);
    assert_true(h_jint(j, "next_attempt_at_ms") > h_jint(j, "created_at_ms") + 20000);
    assert_non_null(strstr(h_jstr(j, "last_error"), "503"));
    assert_string_equal(h_jstr(p, "next_cursor"), "");
    yajl_tree_free(p);
    snprintf(path, sizeof path, "/download/%s", id);
    assert_int_equal(api("DELETE", path, NULL, false, NULL, NULL), 204);
    assert_int_equal(h_redis_int(rc, "ZCARD delayed:ctl-d"), 0);
    assert_int_equal(h_redis_int(rc, "ZSCORE delayed %s:ctl-d", id), -1);
    /* nothing left: the aggregation is forgotten */
    assert_int_equal(api("GET", "/aggregations/ctl-d", NULL, false, NULL, NULL), 404);
}

/* ---------- cancel races ---------- */

static void test_cancel_races(void **state)
{
    (void)state;
    enum { N = 40 };
    char ids[N][16];
    long st[N];
    /* ~100-200 ms downloads, cancelled from before the claim to after the finish */
    for (int i = 0; i < N; i++) {
        post("ctl-r", N, "/data/200000?chunk=32768&chunk_delay_ms=15&aggr=ctl-r", NULL, ids[i]);
        h_sleep_ms(8 * i);
        char path[700];
        snprintf(path, sizeof path, "/download/%s", ids[i]);
        st[i] = api("DELETE", path, NULL, false, NULL, NULL);
        assert_true(st[i] == 204 || st[i] == 409);
    }
    h_sleep_ms(2500);
    int cancelled = 0;
    for (int i = 0; i < N; i++) {
        int ok = 0;
        int n = h_callbacks(&env, ids[i], &ok, NULL);
        if (st[i] == 204) {
            cancelled++;
            if (n != 0) fail_msg("job %s cancelled but called back", ids[i]);
            if (!h_wait_for(no_file, ids[i], 5000))
                fail_msg("job %s cancelled but its file stays", ids[i]);
        } else {
            assert_true(n >= 1);
        }
    }
    printf("cancel races: %d of %d cancelled\n", cancelled, N);
    assert_true(cancelled > 0);
    assert_true(cancelled < N); /* the later ones came after delivery: 409 */
    assert_int_equal(tmp_files(), 0);
    assert_int_equal(h_redis_int(rc, "ZCARD running:ctl-r"), 0);
    assert_int_equal(h_redis_int(rc, "EXISTS aggr:ctl-r"), 0);
}

/* Cancelled during finalisation, deterministically: a job under a lease whose processor
 * never hears the cancel message (a stand-in owner) stores its file, then reports
 * success through dl_finish.lua itself: refused as cancelled, no callback queued, the
 * file goes to the reap queue and the real processors' reaper deletes it. */
static char *script_text(const char *name)
{
    char lib[512], path[512];
    snprintf(lib, sizeof lib, "%s/src/lua/lib.lua", h_src());
    snprintf(path, sizeof path, "%s/src/lua/%s", h_src(), name);
    size_t a = 0, b = 0;
    char *l = h_read_file(lib, &a), *t = h_read_file(path, &b);
    char *out = malloc(a + b + 2);
    snprintf(out, a + b + 2, "%s\n%s", l, t);
    free(l);
    free(t);
    return out;
}

static void test_cancel_during_finalisation(void **state)
{
    (void)state;
    const char *id = "Fin0000000000A";
    char path[700], store[600], dir[600];
    freeReplyObject(h_redis(rc,
                            "HSET job:%s ID %s URL http://x/y AggrID ctl-fin DownloadState "
                            "InProgress Owner stand-in CreatedAt 1 CallbackURL http://x/cb",
                            id, id));
    freeReplyObject(h_redis(rc, "ZADD leases 99999999999999 %s:ctl-fin", id));
    freeReplyObject(h_redis(rc, "ZADD running:ctl-fin 1 %s", id));
    freeReplyObject(h_redis(rc, "HSET aggr:ctl-fin limit 1 inflight 1"));
    freeReplyObject(h_redis(rc, "SADD aggrs ctl-fin"));
    snprintf(dir, sizeof dir, "%s/files/%.3s", env.dir, id);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/%s", dir, id);
    assert_int_equal(h_write_file(path, "stored"), 0);

    snprintf(path, sizeof path, "/download/%s", id);
    assert_int_equal(api("DELETE", path, NULL, false, NULL, NULL), 204);
    /* the slot is freed: the aggregation, now empty, is forgotten */
    assert_int_equal(api("GET", "/aggregations/ctl-fin", NULL, false, NULL, NULL), 404);

    snprintf(store, sizeof store, "reap:http://127.0.0.1:%d/files", env.origin_port);
    char *lua = script_text("dl_finish.lua");
    redisReply *r = h_redis(rc,
                            "EVAL %s 0 %s ctl-fin stand-in done 0 60000 %s 0 0 0 "
                            "DownloadState Success StoreKey %s",
                            lua, id, "", store);
    free(lua);
    assert_non_null(r);
    assert_int_equal(r->integer, 2);
    freeReplyObject(r);
    char *ds = h_redis_str(rc, "HGET job:%s DownloadState", id);
    assert_string_equal(ds, "Cancelled");
    free(ds);
    assert_int_equal(h_redis_int(rc, "LPOS cb:q %s", id), -1);
    assert_true(h_wait_for(no_file, (void *)id, 5000));
}

/* ---------- 100,000 jobs: a page, then a purge in bounded chunks ---------- */

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

/* SLOWLOG (everything is logged here): the longest entry in us and its command, the
 * number of EVALSHA entries and their 95th percentile. */
typedef struct {
    long long longest, scripts, script_p95;
    char cmd[32];
} slow_t;

static slow_t slowlog(void)
{
    slow_t st = {0, 0, 0, ""};
    redisReply *r = h_redis(rc, "SLOWLOG GET 100000");
    long long *d = calloc(r ? r->elements + 1 : 1, sizeof *d);
    for (size_t i = 0; r && i < r->elements; i++) {
        redisReply *e = r->element[i];
        redisReply *argv = e->element[3];
        const char *cmd = argv->elements ? argv->element[0]->str : "";
        if (e->element[2]->integer > st.longest) {
            st.longest = e->element[2]->integer;
            snprintf(st.cmd, sizeof st.cmd, "%s", cmd);
        }
        if (strcasecmp(cmd, "evalsha") == 0) d[st.scripts++] = e->element[2]->integer;
    }
    qsort(d, (size_t)st.scripts, sizeof *d, cmp_ll);
    st.script_p95 = st.scripts ? d[(st.scripts * 95) / 100] : 0;
    free(d);
    freeReplyObject(r);
    return st;
}

static void test_page_and_purge_100k(void **state)
{
    (void)state;
    freeReplyObject(h_redis(rc, "HSET aggr:ctl-big limit 1 paused 1"));
    freeReplyObject(h_redis(rc, "SADD aggrs ctl-big"));
    static const char fill[] =
        "for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do "
        "local id = string.format('B%013d', i) "
        "redis.call('HSET', 'job:' .. id, 'ID', id, 'URL', 'http://example.com/' .. i, "
        "'AggrID', 'ctl-big', 'DownloadState', 'Pending', 'CreatedAt', 1) "
        "redis.call('RPUSH', KEYS[1], id) end return 1";
    for (int k = 0; k < 10; k++)
        freeReplyObject(
            h_redis(rc, "EVAL %s 1 q:ctl-big %d %d", fill, k * 10000, k * 10000 + 9999));
    assert_int_equal(aggr_field("ctl-big", "ready"), 100000);

    freeReplyObject(h_redis(rc, "CONFIG SET slowlog-log-slower-than 0"));
    freeReplyObject(h_redis(rc, "CONFIG SET slowlog-max-len 100000"));
    freeReplyObject(h_redis(rc, "SLOWLOG RESET"));
    yajl_val p = get_json("/aggregations/ctl-big/jobs?state=ready&count=50&cursor=60000");
    long long page_us = slowlog().script_p95;
    const char *jp[] = {"jobs", NULL};
    yajl_val jobs = yajl_tree_get(p, jp, yajl_t_array);
    assert_int_equal(jobs->u.array.len, 50);
    assert_string_equal(h_jstr(jobs->u.array.values[0], "id"), "B0000000060000");
    assert_string_equal(h_jstr(p, "next_cursor"), "60050");
    yajl_tree_free(p);
    printf("page of 50 at offset 60000 of 100000: script %lld us\n", page_us);
    assert_true(page_us < 20000);

    freeReplyObject(h_redis(rc, "SLOWLOG RESET"));
    long long t0 = now_us();
    yajl_val j = NULL;
    assert_int_equal(api("DELETE", "/aggregations/ctl-big/jobs", NULL, false, &j, NULL), 200);
    long long wall = (now_us() - t0) / 1000;
    assert_int_equal(h_jint(j, "deleted"), 100000);
    yajl_tree_free(j);
    slow_t st = slowlog();
    printf("purge of 100000 jobs: %lld ms, %lld script calls (95%% under %lld us), longest "
           "single Redis call %lld us (%s)\n",
           wall, st.scripts, st.script_p95, st.longest, st.cmd);
    /* in chunks (250 jobs: 400 calls), each well under 10 ms; the longest call is
     * reported, not asserted: on the shared VM a descheduled Redis shows up there */
    assert_true(st.scripts >= 200);
    assert_true(st.script_p95 < 10000);
    assert_int_equal(h_redis_int(rc, "LLEN q:ctl-big"), 0);
    assert_int_equal(h_redis_int(rc, "EXISTS job:B0000000099999"), 0);
    freeReplyObject(h_redis(rc, "CONFIG SET slowlog-log-slower-than 10000"));
    freeReplyObject(h_redis(rc, "SLOWLOG RESET"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_and_methods),
        cmocka_unit_test(test_aggregation_control),
        cmocka_unit_test(test_pause_two_processors),
        cmocka_unit_test(test_history_and_delivered),
        cmocka_unit_test(test_failed_and_retry),
        cmocka_unit_test(test_retry_failed_downloads),
        cmocka_unit_test(test_delayed_page_and_cancel),
        cmocka_unit_test(test_cancel_races),
        cmocka_unit_test(test_cancel_during_finalisation),
        cmocka_unit_test(test_page_and_purge_100k),
        /* one per line */
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
