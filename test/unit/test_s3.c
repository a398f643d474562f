/* Unit tests of the s3 module's pure parts: bucket and region rules, the bucket and
 * object URLs of each addressing style, job keys, endpoint checks and the metadata
 * made from a job's extra (§6.7). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "s3.h"

static s3_t *client(uv_loop_t *loop, const char *endpoint, bool path_style)
{
    char err[256];
    s3_opts_t o = {.endpoint = endpoint,
                   .path_style = path_style,
                   .access_key = "AK",
                   .secret_key = "SK",
                   .multipart_threshold = 1,
                   .part_size = 1};
    s3_t *c = s3_new(loop, &o, err, sizeof err);
    if (!c) fail_msg("s3_new: %s", err);
    return c;
}

static void close_client(uv_loop_t *loop, s3_t *c)
{
    s3_close(c, NULL, NULL);
    assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
}

static void test_names(void **state)
{
    (void)state;
    assert_true(s3_valid_bucket("my-bucket.v2"));
    assert_true(s3_valid_bucket("abc"));
    assert_false(s3_valid_bucket("ab"));
    assert_false(s3_valid_bucket("My-Bucket"));
    assert_false(s3_valid_bucket("-bucket"));
    assert_false(s3_valid_bucket("bucket/x"));
    assert_false(s3_valid_bucket("evil.com#"));
    assert_false(s3_valid_bucket(NULL));
    assert_true(s3_valid_region("eu-west-1"));
    assert_false(s3_valid_region(""));
    assert_false(s3_valid_region("eu.evil.com"));
    char key[64];
    s3_job_key(key, sizeof key, "NSb4FOAs9fVaQw");
    assert_string_equal(key, "NSb/NSb4FOAs9fVaQw");
}

static void test_urls(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char url[256];
    s3_loc_t loc = {"bk1", "eu-west-1", "NSb/NSb4FOAs9fVaQw"};
    struct {
        const char *endpoint;
        bool path;
        const char *bucket, *object;
    } cases[] = {
        {NULL, false, "https://bk1.s3.eu-west-1.amazonaws.com",
         "https://bk1.s3.eu-west-1.amazonaws.com/NSb/NSb4FOAs9fVaQw"},
        {"", true, "https://s3.eu-west-1.amazonaws.com/bk1",
         "https://s3.eu-west-1.amazonaws.com/bk1/NSb/NSb4FOAs9fVaQw"},
        {"http://127.0.0.1:9000/", true, "http://127.0.0.1:9000/bk1",
         "http://127.0.0.1:9000/bk1/NSb/NSb4FOAs9fVaQw"},
        {"https://minio.example/s3", false, "https://bk1.minio.example/s3",
         "https://bk1.minio.example/s3/NSb/NSb4FOAs9fVaQw"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s3_t *c = client(&loop, cases[i].endpoint, cases[i].path);
        assert_int_equal(s3_bucket_url(c, "bk1", "eu-west-1", url, sizeof url), 0);
        assert_string_equal(url, cases[i].bucket);
        assert_int_equal(s3_object_url(c, &loc, url, sizeof url), 0);
        assert_string_equal(url, cases[i].object);
        assert_int_equal(s3_bucket_url(c, "B!", "eu-west-1", url, sizeof url), -1);
        assert_int_equal(s3_bucket_url(c, "bk1", "x/y", url, sizeof url), -1);
        close_client(&loop, c);
    }
    s3_loc_t odd = {"bk1", "eu-west-1", "a b/ü+"};
    s3_t *c = client(&loop, "http://h", true);
    assert_int_equal(s3_object_url(c, &odd, url, sizeof url), 0);
    assert_string_equal(url, "http://h/bk1/a%20b/%C3%BC%2B");
    close_client(&loop, c);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_endpoint_and_credentials(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256];
    const char *bad[] = {"minio:9000", "http://", "http://user:pw@h", "http://h/?x=1", "ftp://h"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s3_opts_t o = {.endpoint = bad[i]};
        assert_null(s3_new(&loop, &o, err, sizeof err));
        assert_non_null(strstr(err, "processor.filestorage.endpoint"));
    }
    unsetenv("AWS_ACCESS_KEY_ID");
    s3_opts_t o = {.require_credentials = true};
    assert_null(s3_new(&loop, &o, err, sizeof err));
    assert_non_null(strstr(err, "no S3 credentials"));
    setenv("AWS_ACCESS_KEY_ID", "AK", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "SK", 1);
    s3_t *c = s3_new(&loop, &o, err, sizeof err);
    assert_non_null(c);
    assert_true(s3_has_credentials(c));
    close_client(&loop, c);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void expect_meta(const char *extra, const char *const *want)
{
    char **h = NULL, err[256] = "";
    if (s3_meta_from_extra(extra, &h, err, sizeof err) < 0) fail_msg("%s: %s", extra, err);
    size_t n = 0;
    for (; want && want[n]; n++) {
        assert_non_null(h);
        assert_non_null(h[n]);
        assert_string_equal(h[n], want[n]);
    }
    if (n == 0)
        assert_null(h);
    else
        assert_null(h[n]);
    s3_headers_free(h);
}

static void expect_meta_error(const char *extra, const char *msg)
{
    char **h = NULL, err[256] = "";
    assert_int_equal(s3_meta_from_extra(extra, &h, err, sizeof err), -1);
    assert_null(h);
    if (strcmp(err, msg) != 0) fail_msg("got  %s\nwant %s", err, msg);
}

static void test_meta_from_extra(void **state)
{
    (void)state;
    expect_meta(NULL, NULL);
    expect_meta("", NULL);
    expect_meta("{}", NULL);
    expect_meta(
        "{\"a\":\"b\",\"n\":5,\"f\":-5.9,\"big\":1e30,\"t\":true,\"z\":null,\"o\":{},\"l\":[1]}",
        (const char *const[]){"x-amz-meta-a: b", "x-amz-meta-n: 5", "x-amz-meta-f: -5", NULL});
    expect_meta("{\"Order-Id\":\"\"}", (const char *const[]){"x-amz-meta-Order-Id: ", NULL});
    expect_meta_error("order-17",
                      "extra must be a JSON object for a job with s3_bucket (invalid JSON: lexical "
                      "error: invalid char in json text.)");
    expect_meta_error("\"s\"",
                      "extra must be a JSON object for a job with s3_bucket, not a string");
    expect_meta_error("[1]", "extra must be a JSON object for a job with s3_bucket, not an array");
    expect_meta_error("{\"a b\":\"c\"}", "extra key \"a b\" is not a valid S3 metadata name");
    expect_meta_error("{\"a\":\"x\\r\\nx-amz-acl: public-read\"}",
                      "extra value of \"a\" must be printable US-ASCII to be S3 metadata");
    expect_meta_error("{\"a\":\"caf\\u00e9\"}",
                      "extra value of \"a\" must be printable US-ASCII to be S3 metadata");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_endpoint_and_credentials),
        cmocka_unit_test(test_meta_from_extra),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
