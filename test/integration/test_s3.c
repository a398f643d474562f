/* S3 storage end to end (§2.1, §6.7, §6.10): api, processor and notifier of the real
 * binary against test/s3server.js, s3rver (a real S3 API server from npm) on loopback
 * with AWS's SigV4 signature and region checks added. Covers the configured S3 store
 * (single and multipart uploads byte for byte, Content-Type, reaping after
 * deletion_interval, /files not serving objects), per-job buckets (metadata from
 * extra, download_url pointing at the object, never reaped, virtual-host addressing,
 * credentials from the environment with a session token) and the error texts of
 * refused credentials, a missing bucket, a wrong region and a non-object extra. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "s3.h"

#define REGION "us-east-1"
#define MULTIPART_SIZE (12 * 1024 * 1024 + 4321) /* 3 parts of 5 MiB at most */

static pid_t s3_pid;
static int s3_port;
static char *s3_dir;
static char s3_log[600];

static int group_setup(void **state)
{
    (void)state;
    char script[512], port[16];
    s3_dir = h_tmpdir("s3");
    s3_port = h_free_port();
    snprintf(port, sizeof port, "%d", s3_port);
    snprintf(script, sizeof script, "%s/test/s3server.js", h_src());
    snprintf(s3_log, sizeof s3_log, "%s.log", s3_dir);
    char *argv[] = {"node", script,     "--port", port,       "--directory", s3_dir, "--region",
                    REGION, "--bucket", "store",  "--bucket", "jobs",        NULL};
    s3_pid = h_spawn(argv, s3_log, NULL);
    return h_wait_port(s3_port, 20000);
}

static int group_teardown(void **state)
{
    (void)state;
    h_stop(s3_pid, SIGTERM, 5000);
    if (!getenv("KEEP_TEST_DIRS")) {
        h_rmtree(s3_dir);
        unlink(s3_log);
    }
    free(s3_dir);
    return 0;
}

/* Where s3rver keeps an object and its metadata. */
static void object_path(char *buf, size_t len, const char *bucket, const char *id, const char *what)
{
    snprintf(buf, len, "%s/%s/%.3s/%s._S3rver_%s", s3_dir, bucket, id, id, what);
}

static bool object_exists(const char *bucket, const char *id)
{
    char path[800];
    object_path(path, sizeof path, bucket, id, "object");
    return access(path, F_OK) == 0;
}

static void assert_object(const char *bucket, const char *id, size_t size)
{
    char path[800];
    size_t len = 0;
    object_path(path, sizeof path, bucket, id, "object");
    char *data = h_read_file(path, &len);
    assert_non_null(data);
    assert_int_equal(len, size);
    assert_int_equal(h_pattern_mismatch(data, len), -1);
    free(data);
}

/* The object's stored metadata (JSON object of header names to values). */
static yajl_val object_meta(const char *bucket, const char *id)
{
    char path[800];
    size_t len;
    object_path(path, sizeof path, bucket, id, "metadata.json");
    char *text = h_read_file(path, &len);
    yajl_val v = text ? h_json(text) : NULL;
    free(text);
    return v;
}

/* Requests the S3 server saw whose target contains needle. */
static int s3_requests(const char *needle)
{
    size_t len;
    char *log = h_read_file(s3_log, &len);
    int n = 0;
    for (char *p = log; p && (p = strstr(p, "request ")); p++) {
        char *eol = strchr(p, '\n');
        if (eol) *eol = '\0';
        n += strstr(p, needle) != NULL;
        if (eol) *eol = '\n';
    }
    free(log);
    return n;
}

/* A service whose processor has the given filestorage object and more members. */
static void start_env(h_env_t *env, const char *filestorage, const char *processor_more)
{
    char proc[2048];
    snprintf(proc, sizeof proc, "\"filestorage\": %s%s%s", filestorage, processor_more ? ", " : "",
             processor_more ? processor_more : "");
    assert_int_equal(h_env_start(env, proc, "\"deletion_interval\": \"1s\"", NULL), 0);
    assert_true(h_env_run(env, "api") > 0);
    assert_true(h_env_run(env, "processor") > 0);
    assert_true(h_env_run(env, "notifier") > 0);
}

static void post(h_env_t *env, const char *origin_path, const char *more, char *id)
{
    char url[512], cb[512], body[4096];
    h_origin_url(env, url, sizeof url, origin_path);
    h_origin_url(env, cb, sizeof cb, "/callback/s3");
    snprintf(body, sizeof body,
             "{\"url\":\"%s\",\"aggr_id\":\"s3\",\"aggr_limit\":4,\"callback_url\":\"%s\"%s%s}",
             url, cb, more ? "," : "", more ? more : "");
    assert_int_equal(h_post_job(env, body, id), 201);
}

static yajl_val run_job(h_env_t *env, const char *origin_path, const char *more, char *id)
{
    post(env, origin_path, more, id);
    yajl_val p = h_wait_callback(env, id, 30000);
    assert_non_null(p);
    return p;
}

static void assert_no_temp_files(const h_env_t *env)
{
    char cmd[800];
    snprintf(cmd, sizeof cmd, "ls %s/tmp | grep -q '\\.tmp$'", env->dir);
    assert_int_not_equal(system(cmd), 0);
}

static void filestorage_store(char *buf, size_t len, const char *endpoint_host, bool path_style,
                              const char *access, const char *secret)
{
    snprintf(buf, len,
             "{\"type\": \"s3\", \"bucket\": \"store\", \"region\": \"" REGION "\", "
             "\"endpoint\": \"http://%s:%d\", \"path_style\": %s, \"access_key_id\": \"%s\", "
             "\"secret_access_key\": \"%s\", \"multipart_threshold\": 6291456, "
             "\"part_size\": 5242880}",
             endpoint_host, s3_port, path_style ? "true" : "false", access, secret);
}

static bool gone_from_store(void *arg)
{
    return !object_exists("store", arg);
}

/* The configured S3 store: a small file and a multipart one arrive byte for byte,
 * typed, the callback carries processor.download_url, /files does not serve them,
 * and both are deleted deletion_interval after delivery. */
static void test_store_roundtrip_and_reaping(void **state)
{
    (void)state;
    h_env_t env;
    char fs[1024], small[16], big[16], expect[512], path[600], url[512];
    filestorage_store(fs, sizeof fs, "127.0.0.1", true, "S3RVER", "S3RVER");
    start_env(&env, fs, NULL);
    int parts_before = s3_requests("partNumber="), creates_before = s3_requests("?uploads=");

    yajl_val p = run_job(&env, "/data/50000", NULL, small);
    assert_int_equal(h_jbool(p, "success"), 1);
    snprintf(expect, sizeof expect, "http://127.0.0.1:%d/files/%.3s/%s", env.origin_port, small,
             small);
    assert_string_equal(h_jstr(p, "download_url"), expect);
    yajl_tree_free(p);
    assert_object("store", small, 50000);
    yajl_val meta = object_meta("store", small);
    assert_non_null(meta);
    assert_string_equal(h_jstr(meta, "content-type"), "application/octet-stream");
    yajl_tree_free(meta);

    snprintf(path, sizeof path, "/data/%d", MULTIPART_SIZE);
    p = run_job(&env, path, NULL, big);
    assert_int_equal(h_jbool(p, "success"), 1);
    yajl_tree_free(p);
    assert_object("store", big, MULTIPART_SIZE);
    assert_int_equal(s3_requests("partNumber=") - parts_before, 3);
    assert_int_equal(s3_requests("?uploads=") - creates_before, 1);
    assert_no_temp_files(&env);

    /* GET /files serves only the filesystem store */
    snprintf(path, sizeof path, "/files/%.3s/%s", small, small);
    h_api_url(&env, url, sizeof url, path);
    h_resp_t r;
    assert_int_equal(h_http("GET", url, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 404);
    h_resp_free(&r);

    assert_true(h_wait_for(gone_from_store, small, 15000));
    assert_true(h_wait_for(gone_from_store, big, 15000));
    h_env_stop(&env);
}

/* Per-job buckets: metadata from extra, download_url at the object (virtual-host
 * addressing here), never reaped; credentials and a session token from the
 * environment. */
static void test_job_bucket(void **state)
{
    (void)state;
    h_env_t env;
    char fs[512], id[16], expect[512];
    setenv("AWS_ACCESS_KEY_ID", "S3RVER", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "S3RVER", 1);
    setenv("AWS_SESSION_TOKEN", "session-token-123", 1);
    snprintf(fs, sizeof fs, "{\"type\": \"filesystem\", \"endpoint\": \"http://s3.localhost:%d\"}",
             s3_port);
    start_env(&env, fs, NULL);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_SESSION_TOKEN");

    yajl_val p =
        run_job(&env, "/file/image.png",
                "\"s3_bucket\":\"jobs\",\"s3_region\":\"" REGION "\","
                "\"extract_image_size\":true,"
                "\"extra\":\"{\\\"a\\\":\\\"b\\\",\\\"n\\\":5.7,\\\"x\\\":true,\\\"o\\\":{}}\"",
                id);
    assert_int_equal(h_jbool(p, "success"), 1);
    assert_string_equal(h_jstr(p, "image_size"), "10x10");
    snprintf(expect, sizeof expect, "http://jobs.s3.localhost:%d/%.3s/%s", s3_port, id, id);
    assert_string_equal(h_jstr(p, "download_url"), expect);
    yajl_tree_free(p);

    /* the object as S3 serves it at download_url */
    h_resp_t r;
    assert_int_equal(h_http("HEAD", expect, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.headers, "x-amz-meta-a: b\r\n"));
    assert_non_null(strstr(r.headers, "x-amz-meta-n: 5\r\n"));
    assert_null(strstr(r.headers, "x-amz-meta-x"));
    assert_null(strstr(r.headers, "x-amz-meta-o"));
    assert_non_null(strstr(r.headers, "Content-Type: image/png\r\n"));
    h_resp_free(&r);
    assert_no_temp_files(&env);

    /* caller-owned: still there well after deletion_interval */
    sleep(3);
    assert_true(object_exists("jobs", id));
    h_env_stop(&env);
}

static void assert_error(h_env_t *env, const char *more, const char *expect)
{
    char id[16];
    yajl_val p = run_job(env, "/data/2000", more, id);
    assert_int_equal(h_jbool(p, "success"), 0);
    assert_string_equal(h_jstr(p, "download_url"), "");
    const char *err = h_jstr(p, "error");
    if (!err || strcmp(err, expect) != 0) fail_msg("error is %s\nexpected %s", err, expect);
    yajl_tree_free(p);
}

/* Error texts (§5.5) of per-job buckets: missing bucket, wrong region, bad extra. */
static void test_job_bucket_errors(void **state)
{
    (void)state;
    h_env_t env;
    char fs[512];
    snprintf(fs, sizeof fs,
             "{\"endpoint\": \"http://127.0.0.1:%d\", \"path_style\": true, "
             "\"access_key_id\": \"S3RVER\", \"secret_access_key\": \"S3RVER\"}",
             s3_port);
    start_env(&env, fs, NULL);
    assert_error(&env, "\"s3_bucket\":\"missing\",\"s3_region\":\"" REGION "\"",
                 "Error while storing file to job specified AWS S3 bucket, NoSuchBucket: The "
                 "specified bucket does not exist (bucket missing, region us-east-1), retriable: "
                 "false, internal: false");
    assert_error(&env, "\"s3_bucket\":\"jobs\",\"s3_region\":\"eu-west-1\"",
                 "Error while storing file to job specified AWS S3 bucket, "
                 "AuthorizationHeaderMalformed: The authorization header is malformed; the region "
                 "'eu-west-1' is wrong; expecting 'us-east-1' (bucket jobs, region eu-west-1), "
                 "retriable: false, internal: false");
    assert_error(&env, "\"s3_bucket\":\"jobs\",\"s3_region\":\"" REGION "\",\"extra\":\"order-17\"",
                 "Error while unmarshalling Extra, extra must be a JSON object for a job with "
                 "s3_bucket (invalid JSON: lexical error: invalid char in json text.), "
                 "retriable: false, internal: false");
    assert_error(&env, "\"s3_bucket\":\"jobs\",\"s3_region\":\"" REGION "\",\"extra\":\"[1]\"",
                 "Error while unmarshalling Extra, extra must be a JSON object for a job with "
                 "s3_bucket, not an array, retriable: false, internal: false");
    assert_no_temp_files(&env);
    h_env_stop(&env);
}

/* Refused credentials fail the download for good with S3's reason. */
static void test_store_credentials_refused(void **state)
{
    (void)state;
    h_env_t env;
    char fs[1024];
    filestorage_store(fs, sizeof fs, "127.0.0.1", true, "S3RVER", "wrong-secret");
    start_env(&env, fs, NULL);
    assert_error(&env, NULL,
                 "Error while storing file to default storage backend, SignatureDoesNotMatch: The "
                 "request signature we calculated does not match the signature you provided. "
                 "Check your key and signing method. (bucket store, region us-east-1), "
                 "retriable: false, internal: false");
    h_env_stop(&env);

    filestorage_store(fs, sizeof fs, "127.0.0.1", true, "NOSUCHKEY", "S3RVER");
    start_env(&env, fs, NULL);
    assert_error(&env, NULL,
                 "Error while storing file to default storage backend, InvalidAccessKeyId: The "
                 "AWS Access Key Id you provided does not exist in our records. (bucket store, "
                 "region us-east-1), retriable: false, internal: false");
    assert_no_temp_files(&env);
    h_env_stop(&env);
}

/* An S3 store without any credentials is a configuration error at start. */
static void test_store_without_credentials(void **state)
{
    (void)state;
    h_env_t env;
    char fs[512], log[700];
    snprintf(fs, sizeof fs, "\"filestorage\": {\"type\": \"s3\", \"bucket\": \"store\"}");
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    assert_int_equal(h_env_start(&env, fs, NULL, NULL), 0);
    pid_t pid = h_env_run(&env, "processor");
    int status = h_stop(pid, 0, 10000); /* signal 0: only waits for the exit */
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
    env.nprocs = 0;
    snprintf(log, sizeof log, "%s/processor-0.log", env.dir);
    size_t len;
    char *text = h_read_file(log, &len);
    assert_non_null(text);
    assert_non_null(strstr(text, "config: processor.filestorage: no S3 credentials"));
    free(text);
    h_env_stop(&env);
}

/* ---- the client itself (src/s3.c) on a private loop ---- */

typedef struct {
    int calls;
    s3_result_t res;
} client_done_t;

static void on_client_done(const s3_result_t *res, void *arg)
{
    client_done_t *d = arg;
    d->calls++;
    d->res = *res;
}

static void on_cancel_timer(uv_timer_t *t)
{
    s3_cancel(t->data);
}

static s3_t *client_new(uv_loop_t *loop)
{
    char ep[64], err[256];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", s3_port);
    s3_opts_t o = {.endpoint = ep,
                   .path_style = true,
                   .access_key = "S3RVER",
                   .secret_key = "S3RVER",
                   .multipart_threshold = 6 << 20,
                   .part_size = 5 << 20,
                   .low_speed_limit = 1,
                   .low_speed_time_s = 10};
    s3_t *c = s3_new(loop, &o, err, sizeof err);
    if (!c) fail_msg("s3_new: %s", err);
    return c;
}

static void client_close(uv_loop_t *loop, s3_t *c)
{
    s3_close(c, NULL, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

/* A multipart upload cancelled while its parts go up: done reports it once, and the
 * upload is aborted at the server. Then a missing object deletes fine. */
static void test_client_cancel_and_delete(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    s3_t *c = client_new(&loop);
    char path[700];
    snprintf(path, sizeof path, "%s.big", s3_dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (size_t i = 0; i < (size_t)40 << 20; i++)
        fputc(h_pattern_byte(i), f);
    fclose(f);
    int aborts = s3_requests("DELETE /store/can/cancelled?uploadId=");
    client_done_t put = {0}, del = {0};
    s3_loc_t loc = {"store", REGION, "can/cancelled"};
    s3_op_t *op = s3_put_file(c, &loc, path, NULL, NULL, on_client_done, &put);
    assert_non_null(op);
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    t.data = op;
    while (s3_requests("PUT /store/can/cancelled?partNumber=") == 0 && put.calls == 0) {
        uv_run(&loop, UV_RUN_NOWAIT); /* until the first part is on its way */
        usleep(1000);
    }
    uv_timer_start(&t, on_cancel_timer, 20, 0);
    while (put.calls == 0)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(put.calls, 1);
    assert_true(put.res.cancelled);
    assert_false(put.res.ok);
    assert_int_equal(s3_requests("DELETE /store/can/cancelled?uploadId=") - aborts, 1);
    unlink(path);

    s3_loc_t missing = {"store", REGION, "no/such-object"};
    assert_non_null(s3_delete_object(c, &missing, on_client_done, &del));
    while (del.calls == 0)
        uv_run(&loop, UV_RUN_ONCE);
    assert_true(del.res.ok);
    uv_close((uv_handle_t *)&t, NULL);
    client_close(&loop, c);
    assert_int_equal(put.calls, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_roundtrip_and_reaping),
        cmocka_unit_test(test_job_bucket),
        cmocka_unit_test(test_job_bucket_errors),
        cmocka_unit_test(test_store_credentials_refused),
        cmocka_unit_test(test_store_without_credentials),
        cmocka_unit_test(test_client_cancel_and_delete),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
