/* Unit tests for job: every validation row and exact message of §3.1.1 (Job) and
 * §3.1.2 (Aggregation) in their order, Go's JSON syntax/type error texts and decoding
 * rules (§12), the §10.2/§10.3 cases, ids (§3.6), the debug rendering, state names,
 * request-headers JSON, download_url (§7.4) and the callback payload (§7.3). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "job.h"

/* A valid job; later duplicate keys override its fields (last key wins). */
#define NOCB "\"aggr_id\":\"foo\",\"aggr_limit\":8,\"url\":\"https://httpbin.org/image/png\""
#define OKJOB NOCB ",\"callback_url\":\"http://localhost:8080\""
#define GO_MAP "map[string]interface {}"
#define HDR_MSG "Values of request headers keys must be either strings or ints.Given value is "

typedef struct {
    const char *body;
    const char *reason;
} err_case_t;

static void expect_err_n(const char *body, size_t len, job_err_t kind, const char *reason)
{
    static char err[1 << 16], want[1 << 16];
    job_t job;
    snprintf(want, sizeof want, "Error unmarshalling body '%.*s' to %s: %s", (int)len, body,
             kind == JOB_ERR_JOB ? "Job" : "Aggregation", reason);
    job_err_t rc = job_parse(body, len, &job, err, sizeof err);
    if (rc != kind || strcmp(err, want) != 0)
        print_error("body %.*s\n got %d %s\nwant %d %s\n", (int)len, body, rc, err, kind, want);
    assert_int_equal(rc, kind);
    assert_string_equal(err, want);
    assert_null(job.url);
    assert_null(job.aggr_id);
}

static void run_errs(const err_case_t *cases, size_t n, job_err_t kind)
{
    for (size_t i = 0; i < n; i++)
        expect_err_n(cases[i].body, strlen(cases[i].body), kind, cases[i].reason);
}

#define RUN_JOB_ERRS(c) run_errs(c, sizeof c / sizeof c[0], JOB_ERR_JOB)
#define RUN_AGGR_ERRS(c) run_errs(c, sizeof c / sizeof c[0], JOB_ERR_AGGR)

static void parse_ok(const char *body, job_t *job)
{
    char err[4096] = "";
    job_err_t rc = job_parse(body, strlen(body), job, err, sizeof err);
    if (rc != JOB_OK) print_error("%s\n", err);
    assert_int_equal(rc, JOB_OK);
}

/* ---- JSON level ---- */

/* gojson's texts (test_gojson has them all) reach the client wrapped as a Job error. */
static void test_json_syntax_errors(void **state)
{
    (void)state;
    static const err_case_t cases[] = {
        {"", "unexpected end of JSON input"},
        {"meh", "invalid character 'm' looking for beginning of value"},
        {"{\"foo\"}", "invalid character '}' after object key"},
        {"{\"a\":\"\\u12g4\"}", "invalid character 'g' in \\u hexadecimal character escape"},
    };
    RUN_JOB_ERRS(cases);
}

static void test_json_type_errors(void **state)
{
    (void)state;
    static const err_case_t cases[] = {
        {"[1,2]", "json: cannot unmarshal array into Go value of type " GO_MAP},
        {" []", "json: cannot unmarshal array into Go value of type " GO_MAP},
        {"\"x\"", "json: cannot unmarshal string into Go value of type " GO_MAP},
        {"12", "json: cannot unmarshal number into Go value of type " GO_MAP},
        {"-1e999", "json: cannot unmarshal number into Go value of type " GO_MAP},
        {"true", "json: cannot unmarshal bool into Go value of type " GO_MAP},
        {"false", "json: cannot unmarshal bool into Go value of type " GO_MAP},
        {"null", "URL must be a string"},
        {" null\n", "URL must be a string"},
        {"{}", "URL must be a string"},
        {"{\"foo\":\"bar\"}", "URL must be a string"},
        {"{\"goo\":\"bar\"}", "URL must be a string"},
        /* A float64 overflow anywhere fails the whole decode, before any field rule. */
        {"{\"a\":1e400}", "json: cannot unmarshal number 1e400 into Go value of type float64"},
        {"{\"url\":5,\"x\":[{\"y\":-1E+999}]}",
         "json: cannot unmarshal number -1E+999 into Go value of type float64"},
        {"{" OKJOB ",\"x\":1e309,\"y\":2e309}",
         "json: cannot unmarshal number 1e309 into Go value of type float64"},
    };
    RUN_JOB_ERRS(cases);
}

/* The body is the raw bytes given (len), not up to a NUL; the message echoes it. */
static void test_json_raw_bytes(void **state)
{
    (void)state;
    expect_err_n("{\0}", 3, JOB_ERR_JOB,
                 "invalid character '\\x00' looking for beginning of object key string");
    char err[256];
    job_t job;
    assert_int_equal(job_parse("{}garbage", 2, &job, err, sizeof err), JOB_ERR_JOB);
    assert_string_equal(err, "Error unmarshalling body '{}' to Job: URL must be a string");
    assert_int_equal(job_parse(NULL, 0, &job, err, sizeof err), JOB_ERR_JOB);
    assert_string_equal(err, "Error unmarshalling body '' to Job: unexpected end of JSON input");
    /* Truncated to errlen, still terminated; a NULL err is allowed. */
    char small[16];
    assert_int_equal(job_parse("meh", 3, &job, small, sizeof small), JOB_ERR_JOB);
    assert_string_equal(small, "Error unmarshal");
    assert_int_equal(job_parse("meh", 3, &job, NULL, 0), JOB_ERR_JOB);
    const char *multi = "{\n  \"url\": \"foo\"\n}";
    expect_err_n(multi, strlen(multi), JOB_ERR_JOB,
                 "Could not parse URL: parse \"foo\": invalid URI for request");
}

/* gojson decodes strings the Go way (test_gojson has the cases); the job keeps that. */
static void test_json_string_decoding(void **state)
{
    (void)state;
    static const struct {
        const char *extra_json, *want;
    } cases[] = {
        {"\"caf\\u00e9\"", "caf\xc3\xa9"},
        {"\"\\ud800\\u0041\"", "\xef\xbf\xbd"
                               "A"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[512];
        job_t job;
        snprintf(body, sizeof body, "{" OKJOB ",\"extra\":%s}", cases[i].extra_json);
        parse_ok(body, &job);
        assert_string_equal(job.extra, cases[i].want);
        job_free(&job);
    }
}

/* ---- §3.1.1 rows ---- */

static void test_row1_url(void **state)
{
    (void)state;
    static const err_case_t cases[] = {
        {"{\"aggr_id\":\"foo\",\"aggr_limit\":8,\"callback_url\":\"http://localhost:8080\"}",
         "URL must be a string"},
        {"{" OKJOB ",\"url\":5}", "URL must be a string"},
        {"{" OKJOB ",\"url\":null}", "URL must be a string"},
        {"{" OKJOB ",\"url\":[\"http://x\"]}", "URL must be a string"},
        {"{" OKJOB ",\"url\":\"foo\"}",
         "Could not parse URL: parse \"foo\": invalid URI for request"},
        {"{" OKJOB ",\"url\":\"\"}", "Could not parse URL: parse \"\": empty url"},
        {"{" OKJOB ",\"url\":\"http://a b\"}",
         "Could not parse URL: parse \"http://a b\": invalid character \" \" in host name"},
        {"{" OKJOB ",\"url\":\"http://x/\\n\"}",
         "Could not parse URL: parse \"http://x/\\n\": net/url: invalid control character in URL"},
        {"{" OKJOB ",\"url\":\"http://h:x/\"}",
         "Could not parse URL: parse \"http://h:x/\": invalid port \":x\" after host"},
        {"{" OKJOB ",\"url\":\"http://[::1/\"}",
         "Could not parse URL: parse \"http://[::1/\": missing ']' in host"},
    };
    RUN_JOB_ERRS(cases);
}

static void test_row2_aggr_id(void **state)
{
    (void)state;
    static const err_case_t cases[] = {
        {"{\"url\":\"http://x\",\"callback_url\":\"http://y\",\"aggr_limit\":1}",
         "aggr_id must be a string"},
        {"{" OKJOB ",\"aggr_id\":true}", "aggr_id must be a string"},
        {"{" OKJOB ",\"aggr_id\":4}", "aggr_id must be a string"},
        {"{" OKJOB ",\"aggr_id\":null}", "aggr_id must be a string"},
        {"{" OKJOB ",\"aggr_id\":\"\"}", "aggr_id cannot be empty"},
    };
    RUN_JOB_ERRS(cases);
}

static void test_row3_s3(void **state)
{
    (void)state;
    static const err_case_t cases[] = {
        {"{" OKJOB ",\"s3_region\":\"eu-west-1\"}", "s3_region provided without an s3_bucket"},
        {"{" OKJOB ",\"s3_bucket\":\"b\"}", "s3_bucket provided without an s3_region"},
        {"{" OKJOB ",\"s3_bucket\":5,\"s3_region\":\"eu\"}",
         "s3_region provided without an s3_bucket"},
        {"{" OKJOB ",\"s3_bucket\":\"b\",\"s3_region\":\"\"}",
         "s3_bucket provided without an s3_region"},
        {"{" OKJOB ",\"s3_bucket\":\"b\",\"s3_region\":null}",
         "s3_bucket provided without an s3_region"},
        /* checked before the callback fields */
        {"{\"url\":\"http://x\",\"aggr_id\":\"a\",\"s3_region\":\"r\"}",
         "s3_region provided without an s3_bucket"},
    };
    RUN_JOB_ERRS(cases);

    job_t job;
    parse_ok("{" NOCB ",\"s3_bucket\":\"b\",\"s3_region\":\"eu\"}", &job);
    assert_string_equal(job.s3_bucket, "b");
    assert_string_equal(job.s3_region, "eu");
    assert_null(job.callback_type);
    assert_null(job.callback_dst);
    assert_false(job_has_callback(&job));
    job_free(&job);
    /* non-strings are silently absent */
    parse_ok("{" OKJOB ",\"s3_bucket\":5,\"s3_region\":[]}", &job);
    assert_null(job.s3_bucket);
    assert_null(job.s3_region);
    job_free(&job);
}

static void test_row4_callback_url(void **state)
{
    (void)state;
    static const err_case_t cases[] = {
        {"{" OKJOB ",\"callback_url\":\"fijfij\"}",
         "Could not parse callback URL: parse \"fijfij\": invalid URI for request"},
        {"{" OKJOB ",\"callback_url\":\"\"}",
         "Could not parse callback URL: parse \"\": empty url"},
        {"{" OKJOB ",\"callback_url\":\"http://a b/\"}",
         "Could not parse callback URL: parse \"http://a b/\": invalid character \" \" in host "
         "name"},
    };
    RUN_JOB_ERRS(cases);

    /* callback_type/dst are ignored and not stored when callback_url is given */
    job_t job;
    parse_ok("{" OKJOB ",\"callback_type\":5,\"callback_dst\":\"\"}", &job);
    assert_string_equal(job.callback_url, "http://localhost:8080");
    assert_null(job.callback_type);
    assert_null(job.callback_dst);
    assert_true(job_has_callback(&job));
    job_free(&job);
}

static void test_row5_callback_pair(void **state)
{
    (void)state;
    static const err_case_t cases[] = {
        {"{" NOCB "}", "callback_type must be a string"},
        {"{" NOCB ",\"callback_type\":\"http\"}", "callback_dst must be a string"},
        {"{" NOCB ",\"callback_dst\":\"http://x\"}", "callback_type must be a string"},
        {"{" NOCB ",\"callback_type\":5,\"callback_dst\":\"http://x\"}",
         "callback_type must be a string"},
        {"{" NOCB ",\"callback_type\":\"http\",\"callback_dst\":null}",
         "callback_dst must be a string"},
        /* ours: the reference says "callback_type must be a string" here */
        {"{" NOCB ",\"callback_url\":5}", "callback_url must be a string"},
        {"{" NOCB ",\"callback_url\":null}", "callback_type must be a string"},
        {"{" NOCB ",\"callback_url\":null,\"callback_type\":\"\",\"callback_dst\":\"x\"}",
         "You need to provide both callback_type (\"\") and callback_dst (\"x\")"},
        {"{" NOCB ",\"callback_type\":\"http\",\"callback_dst\":\"\"}",
         "You need to provide both callback_type (\"http\") and callback_dst (\"\")"},
        {"{" NOCB ",\"callback_type\":\"\",\"callback_dst\":\"\"}",
         "You need to provide both callback_type (\"\") and callback_dst (\"\")"},
        {"{" NOCB ",\"callback_type\":\"a\\\"b\\u00e9\\t\",\"callback_dst\":\"\"}",
         "You need to provide both callback_type (\"a\\\"b\xc3\xa9\\t\") and callback_dst (\"\")"},
        {"{" NOCB ",\"callback_type\":\"http\",\"callback_dst\":\"httpfoo\"}",
         "Could not parse URL: parse \"httpfoo\": invalid URI for request"},
        {"{" NOCB ",\"callback_type\":\"http\",\"callback_dst\":\"http://a b\"}",
         "Could not parse URL: parse \"http://a b\": invalid character \" \" in host name"},
        {"{" NOCB ",\"s3_bucket\":\"b\",\"s3_region\":\"r\",\"callback_dst\":\"httpx\"}",
         "Could not parse URL: parse \"httpx\": invalid URI for request"},
    };
    RUN_JOB_ERRS(cases);
}

static void test_row5_accepted(void **state)
{
    (void)state;
    job_t job;
    parse_ok("{" NOCB ",\"callback_type\":\"kafka\",\"callback_dst\":\"topic\"}", &job);
    assert_null(job.callback_url);
    assert_string_equal(job.callback_type, "kafka");
    assert_string_equal(job.callback_dst, "topic");
    assert_true(job_has_callback(&job));
    job_free(&job);
    /* the type is not checked against known backends here */
    parse_ok("{" NOCB ",\"callback_type\":\"foo\",\"callback_dst\":\"bar\"}", &job);
    assert_string_equal(job.callback_type, "foo");
    job_free(&job);
    parse_ok("{" NOCB ",\"callback_type\":\"http\",\"callback_dst\":\"http://cb/x\"}", &job);
    assert_string_equal(job.callback_dst, "http://cb/x");
    job_free(&job);
    /* with an own S3 bucket both are optional and may be anything */
    parse_ok("{" NOCB ",\"s3_bucket\":\"b\",\"s3_region\":\"r\",\"callback_type\":5,"
             "\"callback_dst\":\"\"}",
             &job);
    assert_null(job.callback_type);
    assert_string_equal(job.callback_dst, "");
    assert_false(job_has_callback(&job));
    job_free(&job);
}

static void test_row6_extra(void **state)
{
    (void)state;
    static const struct {
        const char *json, *want;
    } cases[] = {
        {",\"extra\":\"foobar\"", "foobar"},
        {",\"extra\":\"{\\\"info\\\":\\\"foobar\\\"}\"", "{\"info\":\"foobar\"}"},
        {",\"extra\":\"\"", ""},
        {"", NULL},
        {",\"extra\":{\"info\":\"foobar\"}", NULL},
        {",\"extra\":5", NULL},
        {",\"extra\":null", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[512];
        job_t job;
        snprintf(body, sizeof body, "{" OKJOB "%s}", cases[i].json);
        parse_ok(body, &job);
        if (cases[i].want)
            assert_string_equal(job.extra, cases[i].want);
        else
            assert_null(job.extra);
        job_free(&job);
    }
}

static void test_row7_mime_type(void **state)
{
    (void)state;
    static const err_case_t cases[] = {
        {"{" OKJOB ",\"mime_type\":5}", "MimeType pattern must be a string"},
        {"{" OKJOB ",\"mime_type\":null}", "MimeType pattern must be a string"},
        {"{" OKJOB ",\"mime_type\":[\"image/*\"]}", "MimeType pattern must be a string"},
        {"{" OKJOB ",\"mime_type\":\"[]a]\"}", "Invalid MimeType Pattern, \"[]a]\""},
        {"{" OKJOB ",\"mime_type\":\"\\\\\"}", "Invalid MimeType Pattern, \"\\\\\""},
        {"{" OKJOB ",\"mime_type\":\"image/*, !\\\\\"}", "Invalid MimeType Pattern, \"!\\\\\""},
        {"{" OKJOB ",\"mime_type\":\"image/jpeg, image/[ \"}",
         "Invalid MimeType Pattern, \"image/[\""},
    };
    RUN_JOB_ERRS(cases);

    static const char *const valid[] = {
        "",
        "image/*",
        "!application/xml",
        "!image/vnd.adobe.photoshop,image/*",
        "image/jpeg,image/png",
    };
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
        char body[512];
        job_t job;
        snprintf(body, sizeof body, "{" OKJOB ",\"mime_type\":\"%s\"}", valid[i]);
        parse_ok(body, &job);
        assert_string_equal(job.mime_type, valid[i]);
        job_free(&job);
    }
}

static void test_row8_max_retries(void **state)
{
    (void)state;
    static const err_case_t cases[] = {
        {"{" OKJOB ",\"max_retries\":\"3\"}", "Max retries must be a number, was: string"},
        {"{" OKJOB ",\"max_retries\":true}", "Max retries must be a number, was: bool"},
        {"{" OKJOB ",\"max_retries\":null}", "Max retries must be a number, was: <nil>"},
        {"{" OKJOB ",\"max_retries\":{}}", "Max retries must be a number, was: " GO_MAP},
        {"{" OKJOB ",\"max_retries\":[]}", "Max retries must be a number, was: []interface {}"},
        {"{" OKJOB ",\"max_retries\":-1}", "Max retries must not be negative"},
        {"{" OKJOB ",\"max_retries\":-1.5}", "Max retries must not be negative"},
        {"{" OKJOB ",\"max_retries\":1e300}", "Max retries must not be negative"},
    };
    RUN_JOB_ERRS(cases);

    static const struct {
        const char *json;
        int want, effective;
    } ok[] = {
        {"", -1, JOB_DEFAULT_MAX_RETRIES}, {",\"max_retries\":0", 0, 0},
        {",\"max_retries\":-0.5", 0, 0},   {",\"max_retries\":2.9", 2, 2},
        {",\"max_retries\":5", 5, 5},      {",\"max_retries\":1e10", 2147483647, 2147483647},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char body[512];
        job_t job;
        snprintf(body, sizeof body, "{" OKJOB "%s}", ok[i].json);
        parse_ok(body, &job);
        assert_int_equal(job.max_retries, ok[i].want);
        assert_int_equal(job_max_retries(&job), ok[i].effective);
        job_free(&job);
    }
}

static void test_row9_extract_image_size(void **state)
{
    (void)state;
    static const err_case_t cases[] = {
        {"{" OKJOB ",\"extract_image_size\":\"true\"}", "ExtractImageSize must be a boolean"},
        {"{" OKJOB ",\"extract_image_size\":null}", "ExtractImageSize must be a boolean"},
        {"{" OKJOB ",\"extract_image_size\":1}", "ExtractImageSize must be a boolean"},
    };
    RUN_JOB_ERRS(cases);
    job_t job;
    parse_ok("{" OKJOB ",\"extract_image_size\":true}", &job);
    assert_true(job.extract_image_size);
    job_free(&job);
    parse_ok("{" OKJOB ",\"extract_image_size\":false}", &job);
    assert_false(job.extract_image_size);
    job_free(&job);
    parse_ok("{" OKJOB "}", &job);
    assert_false(job.extract_image_size);
    job_free(&job);
}

static void test_row10_download_timeout(void **state)
{
    (void)state;
    static const err_case_t cases[] = {
        {"{" OKJOB ",\"download_timeout\":null}", "Download timeout must be a number"},
        {"{" OKJOB ",\"download_timeout\":\"4\"}", "Download timeout must be a number"},
        {"{" OKJOB ",\"download_timeout\":true}", "Download timeout must be a number"},
        {"{" OKJOB ",\"download_timeout\":0}", "Download timeout must be greater than 0"},
        {"{" OKJOB ",\"download_timeout\":-2}", "Download timeout must be greater than 0"},
        {"{" OKJOB ",\"download_timeout\":0.5}", "Download timeout must be greater than 0"},
        {"{" OKJOB ",\"download_timeout\":1e300}", "Download timeout must be greater than 0"},
    };
    RUN_JOB_ERRS(cases);
    job_t job;
    parse_ok("{" OKJOB ",\"download_timeout\":12}", &job);
    assert_int_equal(job.download_timeout, 12);
    job_free(&job);
    parse_ok("{" OKJOB ",\"download_timeout\":12.9}", &job);
    assert_int_equal(job.download_timeout, 12);
    job_free(&job);
    parse_ok("{" OKJOB "}", &job);
    assert_int_equal(job.download_timeout, 0);
    job_free(&job);
}

static void test_row11_request_headers(void **state)
{
    (void)state;
    static const err_case_t cases[] = {
        {"{" OKJOB ",\"request_headers\":1}", "request_headers must be a dictionary"},
        {"{" OKJOB ",\"request_headers\":\"x\"}", "request_headers must be a dictionary"},
        {"{" OKJOB ",\"request_headers\":null}", "request_headers must be a dictionary"},
        {"{" OKJOB ",\"request_headers\":[]}", "request_headers must be a dictionary"},
        {"{" OKJOB ",\"request_headers\":{\"A\":5}}", HDR_MSG "%!s(float64=5)"},
        {"{" OKJOB ",\"request_headers\":{\"A\":true}}", HDR_MSG "%!s(bool=true)"},
        {"{" OKJOB ",\"request_headers\":{\"A\":false}}", HDR_MSG "%!s(bool=false)"},
        {"{" OKJOB ",\"request_headers\":{\"A\":null}}", HDR_MSG "%!s(<nil>)"},
        {"{" OKJOB ",\"request_headers\":{\"A\":{\"b\":1,\"a\":\"x\",\"b\":2}}}",
         HDR_MSG "map[a:x b:%!s(float64=2)]"},
        {"{" OKJOB ",\"request_headers\":{\"A\":{}}}", HDR_MSG "map[]"},
        {"{" OKJOB ",\"request_headers\":{\"A\":[1,\"x\",null,true,{}]}}",
         HDR_MSG "[%!s(float64=1) x <nil> %!s(bool=true) map[]]"},
        {"{" OKJOB ",\"request_headers\":{\"A\":1.5e6}}", HDR_MSG "%!s(float64=1.5e+06)"},
        {"{" OKJOB ",\"request_headers\":{\"A\":1234567}}", HDR_MSG "%!s(float64=1.234567e+06)"},
        /* the first offending value in document order; repeated keys: last wins */
        {"{" OKJOB ",\"request_headers\":{\"B\":1,\"A\":2}}", HDR_MSG "%!s(float64=1)"},
        {"{" OKJOB ",\"request_headers\":{\"A\":\"ok\",\"A\":5}}", HDR_MSG "%!s(float64=5)"},
    };
    RUN_JOB_ERRS(cases);
}

static void test_row11_headers_accepted(void **state)
{
    (void)state;
    job_t job;
    parse_ok("{" OKJOB ",\"request_headers\":{\"User-Agent\":\"Test-Agent\"}}", &job);
    assert_int_equal(job.request_headers.n, 1);
    assert_string_equal(job.request_headers.items[0].name, "User-Agent");
    assert_string_equal(job.request_headers.items[0].value, "Test-Agent");
    job_free(&job);
    parse_ok("{" OKJOB ",\"request_headers\":{\"User-Agent\":\"Test-Agent\","
             "\"Accept-Encoding\":\"gzip\",\"User-Agent\":\"Last\",\"A\":5,\"A\":\"\"}}",
             &job);
    assert_int_equal(job.request_headers.n, 3);
    assert_string_equal(job.request_headers.items[0].name, "A");
    assert_string_equal(job.request_headers.items[0].value, "");
    assert_string_equal(job.request_headers.items[1].name, "Accept-Encoding");
    assert_string_equal(job.request_headers.items[1].value, "gzip");
    assert_string_equal(job.request_headers.items[2].name, "User-Agent");
    assert_string_equal(job.request_headers.items[2].value, "Last");
    job_free(&job);
    parse_ok("{" OKJOB ",\"request_headers\":{}}", &job);
    assert_int_equal(job.request_headers.n, 0);
    job_free(&job);
}

/* First failure wins, in table order. */
static void test_rule_order(void **state)
{
    (void)state;
    static const err_case_t cases[] = {
        {"{\"url\":\"foo\",\"aggr_id\":\"\"}",
         "Could not parse URL: parse \"foo\": invalid URI for request"},
        {"{\"url\":\"http://x/\",\"aggr_id\":\"\",\"s3_region\":\"r\"}", "aggr_id cannot be empty"},
        {"{" OKJOB ",\"callback_url\":\"x\",\"mime_type\":5}",
         "Could not parse callback URL: parse \"x\": invalid URI for request"},
        {"{" OKJOB ",\"mime_type\":\"[\",\"max_retries\":-1}", "Invalid MimeType Pattern, \"[\""},
        {"{" OKJOB ",\"max_retries\":-1,\"extract_image_size\":1}",
         "Max retries must not be negative"},
        {"{" OKJOB ",\"extract_image_size\":1,\"download_timeout\":0}",
         "ExtractImageSize must be a boolean"},
        {"{" OKJOB ",\"download_timeout\":0,\"request_headers\":1}",
         "Download timeout must be greater than 0"},
        {"{\"url\":\"foo\"}", "Could not parse URL: parse \"foo\": invalid URI for request"},
    };
    RUN_JOB_ERRS(cases);
}

/* TestUnmarshalJSON / TestHandler accepted bodies, and every field's default. */
static void test_accepted_minimal(void **state)
{
    (void)state;
    job_t job;
    parse_ok("{\"aggr_id\":\"foo\",\"aggr_limit\":8,\"url\":\"https://httpbin.org/image/png\","
             "\"callback_url\":\"http://localhost:8080\",\"user_agent\":\"ignored\"}",
             &job);
    assert_string_equal(job.id, "");
    assert_string_equal(job.url, "https://httpbin.org/image/png");
    assert_string_equal(job.aggr_id, "foo");
    assert_string_equal(job.callback_url, "http://localhost:8080");
    assert_null(job.callback_type);
    assert_null(job.callback_dst);
    assert_null(job.extra);
    assert_null(job.mime_type);
    assert_int_equal(job.max_retries, -1);
    assert_false(job.extract_image_size);
    assert_int_equal(job.download_timeout, 0);
    assert_int_equal(job.request_headers.n, 0);
    assert_null(job.s3_bucket);
    assert_null(job.s3_region);
    assert_int_equal(job.aggr_limit, 8);
    assert_null(job.aggr_proxy);
    assert_int_equal(job.download_state, DL_PENDING);
    assert_int_equal(job.callback_state, CB_NONE);
    assert_null(job.download_url);
    job_free(&job);
    /* whitespace, repeated keys (last wins), tiny numbers (underflow is not an error) */
    parse_ok(" \n{" OKJOB ",\"url\":\"http://x/2\",\"x\":1e-400}\t ", &job);
    assert_string_equal(job.url, "http://x/2");
    job_free(&job);
    /* schemes in any case; with user info */
    parse_ok("{" OKJOB ",\"url\":\"HTTPS://u:p@x/2\",\"callback_url\":\"Http://c:1\"}", &job);
    assert_string_equal(job.url, "HTTPS://u:p@x/2");
    assert_string_equal(job.callback_url, "Http://c:1");
    job_free(&job);
}

/* Ours, refused at the door (docs/api.md, deliberate differences): escaped NULs in any
 * string field, schemes other than http(s), bad request header names and values, and
 * fields over their length caps. */
static char *big(const char *fmt, size_t n)
{
    char *fill = malloc(n + 1), *out = malloc(n + 512);
    assert_non_null(fill);
    assert_non_null(out);
    memset(fill, 'a', n);
    fill[n] = '\0';
    snprintf(out, n + 512, fmt, fill);
    free(fill);
    return out;
}

static void test_door(void **state)
{
    (void)state;
    static const err_case_t cases[] = {
        {"{" OKJOB ",\"url\":\"http://a/\\u0000.png\"}",
         "url must not contain a NUL character (\\u0000)"},
        {"{" OKJOB ",\"aggr_id\":\"x\\u0000y\"}",
         "aggr_id must not contain a NUL character (\\u0000)"},
        {"{" OKJOB ",\"extra\":\"\\u0000\"}", "extra must not contain a NUL character (\\u0000)"},
        {"{" OKJOB ",\"callback_url\":\"http://c/\\u0000\"}",
         "callback_url must not contain a NUL character (\\u0000)"},
        {"{" NOCB ",\"callback_type\":\"http\\u0000\",\"callback_dst\":\"http://c/\"}",
         "callback_type must not contain a NUL character (\\u0000)"},
        {"{" NOCB ",\"callback_type\":\"kafka\",\"callback_dst\":\"t\\u0000\"}",
         "callback_dst must not contain a NUL character (\\u0000)"},
        {"{" OKJOB ",\"mime_type\":\"image/*\\u0000\"}",
         "mime_type must not contain a NUL character (\\u0000)"},
        {"{" OKJOB ",\"s3_bucket\":\"b\\u0000\",\"s3_region\":\"r\"}",
         "s3_bucket must not contain a NUL character (\\u0000)"},
        {"{" OKJOB ",\"request_headers\":{\"A\":\"b\\u0000c\"}}",
         "request_headers must not contain a NUL character (\\u0000)"},
        {"{" OKJOB ",\"request_headers\":{\"A\\u0000\":\"b\"}}",
         "request_headers must not contain a NUL character (\\u0000)"},
        {"{" OKJOB ",\"url\":\"ftp://a/b\"}", "url must be an http or https URL with a host"},
        {"{" OKJOB ",\"url\":\"file:///etc/passwd\"}",
         "url must be an http or https URL with a host"},
        {"{" OKJOB ",\"url\":\"/x\"}", "url must be an http or https URL with a host"},
        {"{" OKJOB ",\"url\":\"http:///x\"}", "url must be an http or https URL with a host"},
        {"{" OKJOB ",\"url\":\"gopher://a:70/\"}", "url must be an http or https URL with a host"},
        {"{" OKJOB ",\"callback_url\":\"localhost:8080\"}",
         "callback_url must be an http or https URL with a host"},
        {"{" OKJOB ",\"callback_url\":\"dict://c:11/\"}",
         "callback_url must be an http or https URL with a host"},
        {"{" OKJOB ",\"request_headers\":{\"X Y\":\"v\"}}",
         "request_headers: \"X Y\" is not a valid header name"},
        {"{" OKJOB ",\"request_headers\":{\"X:Y\":\"v\"}}",
         "request_headers: \"X:Y\" is not a valid header name"},
        {"{" OKJOB ",\"request_headers\":{\"\":\"v\"}}",
         "request_headers: \"\" is not a valid header name"},
        {"{" OKJOB ",\"request_headers\":{\"X\\r\\nY\":\"v\"}}",
         "request_headers: \"X\\r\\nY\" is not a valid header name"},
        {"{" OKJOB ",\"request_headers\":{\"A\":\"ok\",\"X\":\"v\\r\\nHost: evil\"}}",
         "request_headers: \"X\" has CR or LF in its value"},
        {"{" OKJOB ",\"request_headers\":{\"X\":\"v\\n\"}}",
         "request_headers: \"X\" has CR or LF in its value"},
    };
    RUN_JOB_ERRS(cases);
    static const struct {
        const char *fmt;
        size_t ok;
        const char *reason;
    } caps[] = {
        {"{" OKJOB ",\"url\":\"http://a/%s\"}", 8192 - 9, "url is longer than 8192 bytes"},
        {"{" OKJOB ",\"callback_url\":\"http://a/%s\"}", 8192 - 9,
         "callback_url is longer than 8192 bytes"},
        {"{" OKJOB ",\"aggr_id\":\"%s\"}", 256, "aggr_id is longer than 256 bytes"},
        {"{" OKJOB ",\"extra\":\"%s\"}", 65536, "extra is longer than 65536 bytes"},
        {"{" OKJOB ",\"request_headers\":{\"%s\":\"v\"}}", 256,
         "request_headers: a header name is longer than 256 bytes"},
        {"{" OKJOB ",\"request_headers\":{\"X\":\"%s\"}}", 8192,
         "request_headers: \"X\" has a value longer than 8192 bytes"},
    };
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
        job_t job;
        char *body = big(caps[i].fmt, caps[i].ok);
        parse_ok(body, &job);
        job_free(&job);
        free(body);
        body = big(caps[i].fmt, caps[i].ok + 1);
        expect_err_n(body, strlen(body), JOB_ERR_JOB, caps[i].reason);
        free(body);
    }
}

/* ---- §3.1.2 ---- */

static void test_aggregation_via_job_parse(void **state)
{
    (void)state;
    static const err_case_t cases[] = {
        {"{" NOCB ",\"callback_url\":\"http://localhost:8080\",\"aggr_limit\":null}",
         "Aggregation limit must be a number"},
        {"{\"aggr_id\":\"foo\",\"url\":\"https://x/\",\"callback_url\":\"http://localhost:8080\"}",
         "Aggregation limit must be a number"},
        {"{" OKJOB ",\"aggr_limit\":-2}", "Aggregation limit must be greater than 0"},
        {"{" OKJOB ",\"aggr_proxy\":\"http://p\\u0000:1\"}",
         "aggr_proxy must not contain a NUL character (\\u0000)"},
        {"{" OKJOB ",\"aggr_proxy\":null}", "Aggregation proxy must be a string"},
        {"{" OKJOB ",\"aggr_proxy\":\"example\"}",
         "Aggregation proxy must be a valid URI: parse \"example\": invalid URI for request"},
        {"{" OKJOB ",\"expiresAt\":5}", "Aggregation expiresAt must be a string"},
    };
    RUN_AGGR_ERRS(cases);
}

static void expect_aggr_err(const char *body, const char *reason)
{
    char err[1024], want[1024];
    job_t job = {0};
    job.aggr_limit = 7;
    job.aggr_proxy = strdup("http://keep");
    snprintf(want, sizeof want, "Error unmarshalling body '%s' to Aggregation: %s", body, reason);
    assert_int_equal(job_parse_aggr(body, strlen(body), &job, err, sizeof err), JOB_ERR_AGGR);
    assert_string_equal(err, want);
    /* a failure leaves the job as it was */
    assert_int_equal(job.aggr_limit, 7);
    assert_string_equal(job.aggr_proxy, "http://keep");
    job_free(&job);
}

/* TestAggregationUnmarshal and every row of §3.1.2 (the id rows are only reachable
 * through job_parse_aggr, since the Job rules check aggr_id first). */
static void test_aggregation_rows(void **state)
{
    (void)state;
    static const err_case_t cases[] = {
        {"{\"aggr_id\":4,\"aggr_limit\":4}", "Aggregation ID must be a string"},
        {"{\"aggr_limit\":4}", "Aggregation ID must be a string"},
        {"{\"aggr_id\":null,\"aggr_limit\":4}", "Aggregation ID must be a string"},
        {"{\"aggr_id\":\"\",\"aggr_limit\":4}", "Aggregation ID cannot be empty"},
        {"{\"aggr_id\":\"a\"}", "Aggregation limit must be a number"},
        {"{\"aggr_id\":\"a\",\"aggr_limit\":\"4\"}", "Aggregation limit must be a number"},
        {"{\"aggr_id\":\"a\",\"aggr_limit\":null}", "Aggregation limit must be a number"},
        {"{\"aggr_id\":\"a\",\"aggr_limit\":-2}", "Aggregation limit must be greater than 0"},
        {"{\"aggr_id\":\"a\",\"aggr_limit\":0}", "Aggregation limit must be greater than 0"},
        {"{\"aggr_id\":\"a\",\"aggr_limit\":0.9}", "Aggregation limit must be greater than 0"},
        /* ours: the reference truncates these (to INT64_MIN and 4) without notice */
        {"{\"aggr_id\":\"a\",\"aggr_limit\":1e300}", "Aggregation limit is out of range"},
        {"{\"aggr_id\":\"a\",\"aggr_limit\":9223372036854775808}",
         "Aggregation limit is out of range"},
        {"{\"aggr_id\":\"a\",\"aggr_limit\":4.7}", "Aggregation limit must be a whole number"},
        {"{\"aggr_id\":\"a\",\"aggr_limit\":1.5}", "Aggregation limit must be a whole number"},
        {"{\"aggr_id\":\"a\",\"aggr_limit\":4,\"aggr_proxy\":null}",
         "Aggregation proxy must be a string"},
        {"{\"aggr_id\":\"a\",\"aggr_limit\":4,\"aggr_proxy\":4}",
         "Aggregation proxy must be a string"},
        {"{\"aggr_id\":\"a\",\"aggr_limit\":4,\"aggr_proxy\":\"example\"}",
         "Aggregation proxy must be a valid URI: parse \"example\": invalid URI for request"},
        {"{\"aggr_id\":\"a\",\"aggr_limit\":4,\"aggr_proxy\":\"http://a b\"}",
         "Aggregation proxy must be a valid URI: parse \"http://a b\": invalid character \" \" "
         "in host name"},
        {"{\"aggr_id\":\"a\",\"aggr_limit\":4,\"expiresAt\":5}",
         "Aggregation expiresAt must be a string"},
        {"{\"aggr_id\":\"a\",\"aggr_limit\":4,\"expiresAt\":null}",
         "Aggregation expiresAt must be a string"},
        {"{\"aggr_id\":\"a\",\"aggr_limit\":-1,\"aggr_proxy\":5}",
         "Aggregation limit must be greater than 0"},
        {"meh", "invalid character 'm' looking for beginning of value"},
        {"[]", "json: cannot unmarshal array into Go value of type " GO_MAP},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_aggr_err(cases[i].body, cases[i].reason);
}

static void expect_aggr_ok(const char *body, long limit, const char *proxy)
{
    char err[512] = "";
    job_t job = {0};
    job.url = strdup("http://keep");
    job.aggr_proxy = strdup("http://old");
    assert_int_equal(job_parse_aggr(body, strlen(body), &job, err, sizeof err), JOB_OK);
    assert_int_equal(job.aggr_limit, limit);
    if (proxy)
        assert_string_equal(job.aggr_proxy, proxy);
    else
        assert_null(job.aggr_proxy);
    assert_string_equal(job.url, "http://keep");
    job_free(&job);
}

static void test_aggregation_accepted(void **state)
{
    (void)state;
    expect_aggr_ok("{\"aggr_id\":\"a\",\"aggr_limit\":4}", 4, NULL);
    expect_aggr_ok("{\"aggr_id\":\"a\",\"aggr_limit\":4.0}", 4, NULL);
    expect_aggr_ok("{\"aggr_id\":\"a\",\"aggr_limit\":9223372036854774784}", 9223372036854774784L,
                   NULL);
    expect_aggr_ok("{\"aggr_id\":\"a\",\"aggr_limit\":1e18}", 1000000000000000000L, NULL);
    expect_aggr_ok("{\"aggr_id\":\"a\",\"aggr_limit\":4,\"aggr_proxy\":\"\"}", 4, "");
    expect_aggr_ok("{\"aggr_id\":\"a\",\"aggr_limit\":4,\"aggr_proxy\":\"https://example.org\"}", 4,
                   "https://example.org");
    /* expiresAt is accepted when a string but never stored (W6 fixed) */
    expect_aggr_ok("{\"aggr_id\":\"a\",\"aggr_limit\":4,\"expiresAt\":\"9999999999\"}", 4, NULL);

    job_t job;
    parse_ok("{" OKJOB ",\"aggr_proxy\":\"http://proxy:3128\",\"expiresAt\":\"1\"}", &job);
    assert_int_equal(job.aggr_limit, 8);
    assert_string_equal(job.aggr_proxy, "http://proxy:3128");
    job_free(&job);
}

/* ---- ids, rendering, states ---- */

static void test_new_id(void **state)
{
    (void)state;
    /* 200 ids: the random bytes are read 64 ids at a time, so this crosses refills */
    static char ids[200][JOB_ID_LEN + 1];
    for (int i = 0; i < 200; i++) {
        assert_int_equal(job_new_id(ids[i]), 0);
        assert_int_equal(strlen(ids[i]), JOB_ID_LEN);
        assert_int_equal(strspn(ids[i], "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                        "0123456789-_"),
                         JOB_ID_LEN);
        /* 80 bits: the last character carries 2 bits, so it is one of A, Q, g, w */
        assert_non_null(strchr("AQgw", ids[i][JOB_ID_LEN - 1]));
        for (int j = 0; j < i; j++)
            assert_string_not_equal(ids[i], ids[j]);
    }
}

static void test_to_string(void **state)
{
    (void)state;
    char buf[512];
    job_t job = {0};
    assert_string_equal(job_to_string(&job, buf, sizeof buf),
                        "Job{ID:, Aggr:, URL:, ExtractImageSize:false, ImageSize: , "
                        "callback_url:, callback_type:, callback_dst:, Timeout:0, "
                        "RequestHeaders:map[], DownloadURL:}");
    header_t items[] = {{"User-Agent", "x y"}, {"Accept", "*/*"}};
    job_t full = {.id = "6QEywYsd0jrKAg",
                  .aggr_id = "ag",
                  .url = "http://x/a.jpg",
                  .extract_image_size = true,
                  .image_size = "10x20",
                  .callback_url = "http://cb",
                  .callback_type = "http",
                  .callback_dst = "http://dst",
                  .download_timeout = 12,
                  .request_headers = {items, 2},
                  .download_url = "http://localhost/foo"};
    assert_string_equal(job_to_string(&full, buf, sizeof buf),
                        "Job{ID:6QEywYsd0jrKAg, Aggr:ag, URL:http://x/a.jpg, "
                        "ExtractImageSize:true, ImageSize: 10x20, callback_url:http://cb, "
                        "callback_type:http, callback_dst:http://dst, Timeout:12, "
                        "RequestHeaders:map[Accept:*/* User-Agent:x y], "
                        "DownloadURL:http://localhost/foo}");
    char small[11];
    assert_ptr_equal(job_to_string(&full, small, sizeof small), small);
    assert_string_equal(small, "Job{ID:6QE");
    char tiny[1] = {'x'};
    job_to_string(&full, tiny, sizeof tiny);
    assert_int_equal(tiny[0], '\0');
}

static void test_state_names(void **state)
{
    (void)state;
    static const char *const dl[] = {"Pending", "InProgress", "Success", "Failed"};
    static const char *const cb[] = {"", "Pending", "InProgress", "Failed"};
    for (int i = 0; i < 4; i++) {
        assert_string_equal(job_dl_state_name((dl_state_t)i), dl[i]);
        assert_int_equal(job_dl_state_parse(dl[i]), i);
        assert_string_equal(job_cb_state_name((cb_state_t)i), cb[i]);
        assert_int_equal(job_cb_state_parse(cb[i]), i);
    }
    assert_int_equal(DL_PENDING, 0);
    assert_int_equal(CB_NONE, 0);
    assert_string_equal(job_dl_state_name((dl_state_t)9), "");
    assert_string_equal(job_cb_state_name((cb_state_t)9), "");
    assert_int_equal(job_dl_state_parse(""), -1);
    assert_int_equal(job_dl_state_parse("pending"), -1);
    assert_int_equal(job_dl_state_parse(NULL), -1);
    assert_int_equal(job_cb_state_parse("Success"), -1);
    assert_int_equal(job_cb_state_parse("Bogus"), -1);
}

static void test_has_callback(void **state)
{
    (void)state;
    job_t job = {0};
    assert_false(job_has_callback(&job));
    job.callback_url = "";
    job.callback_dst = "";
    assert_false(job_has_callback(&job));
    job.callback_dst = "topic";
    assert_true(job_has_callback(&job));
    job.callback_dst = NULL;
    job.callback_url = "http://x";
    assert_true(job_has_callback(&job));
}

/* ---- headers JSON ---- */

static void test_headers_json(void **state)
{
    (void)state;
    headers_t none = {0};
    char *s = job_headers_to_json(&none);
    assert_string_equal(s, "null");
    free(s);
    s = job_headers_to_json(NULL);
    assert_string_equal(s, "null");
    free(s);

    header_t items[] = {{"User-Agent", "Test \"Agent\""}, {"Accept", "*/*"}};
    headers_t h = {items, 2};
    s = job_headers_to_json(&h);
    assert_string_equal(s, "{\"Accept\":\"*/*\",\"User-Agent\":\"Test \\\"Agent\\\"\"}");

    headers_t back;
    assert_int_equal(job_headers_from_json(s, &back), 0);
    assert_int_equal(back.n, 2);
    assert_string_equal(back.items[0].name, "Accept");
    assert_string_equal(back.items[0].value, "*/*");
    assert_string_equal(back.items[1].name, "User-Agent");
    assert_string_equal(back.items[1].value, "Test \"Agent\"");
    job_headers_free(&back);
    assert_int_equal(back.n, 0);
    assert_null(back.items);
    free(s);

    assert_int_equal(job_headers_from_json("null", &back), 0);
    assert_int_equal(back.n, 0);
    assert_int_equal(job_headers_from_json("{}", &back), 0);
    assert_int_equal(back.n, 0);
    assert_int_equal(job_headers_from_json("{\"A\":1}", &back), -1);
    assert_int_equal(job_headers_from_json("{\"A\":null}", &back), -1);
    assert_int_equal(job_headers_from_json("[]", &back), -1);
    assert_int_equal(job_headers_from_json("\"x\"", &back), -1);
    assert_int_equal(job_headers_from_json("", &back), -1);
    assert_int_equal(job_headers_from_json("{", &back), -1);
    assert_int_equal(job_headers_from_json(NULL, &back), -1);
    assert_int_equal(back.n, 0);
}

/* ---- download_url and the callback payload ---- */

static void expect_file_url(const char *base, const char *id, const char *want)
{
    char *got = job_file_url(base, id);
    if (!want) {
        assert_null(got);
        return;
    }
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_file_url(void **state)
{
    (void)state;
    const char *id = "6QEywYsd0jrKAg";
    expect_file_url("http://localhost/foo", id, "http://localhost/foo/6QE/6QEywYsd0jrKAg");
    expect_file_url("http://cdn/x/", id, "http://cdn/x/6QE/6QEywYsd0jrKAg");
    expect_file_url("http://h", id, "http://h/6QE/6QEywYsd0jrKAg");
    expect_file_url("http://h//a/./b/", id, "http://h/a/b/6QE/6QEywYsd0jrKAg");
    expect_file_url("https://h:8443/a?x=1&y=2#frag", id,
                    "https://h:8443/a/6QE/6QEywYsd0jrKAg?x=1&y=2#frag");
    /* Always derived from the stored base: no W13 double append. */
    expect_file_url("http://localhost/foo", "NSb4FOAs9fVaQw",
                    "http://localhost/foo/NSb/NSb4FOAs9fVaQw");
    expect_file_url("http://a b/", id, NULL);
    expect_file_url("http://[::1", id, NULL);
    expect_file_url(NULL, id, NULL);
    expect_file_url("http://h", NULL, NULL);
}

static job_t payload_job(dl_state_t st)
{
    job_t job = {.id = "6QEywYsd0jrKAg",
                 .url = "http://x/a.jpg",
                 .extra = "foobar",
                 .image_size = "10x20",
                 .download_state = st,
                 .download_url = "http://localhost/foo",
                 .response_code = 200};
    return job;
}

static void test_payload(void **state)
{
    (void)state;
    size_t len = 0;
    job_t ok = payload_job(DL_SUCCESS);
    char *p = job_callback_payload(&ok, &len);
    const char *want_ok =
        "{\"success\":true,\"error\":\"\",\"extra\":\"foobar\",\"image_size\":\"10x20\","
        "\"resource_url\":\"http://x/a.jpg\","
        "\"download_url\":\"http://localhost/foo/6QE/6QEywYsd0jrKAg\","
        "\"job_id\":\"6QEywYsd0jrKAg\",\"response_code\":200,\"delivered\":true,"
        "\"delivery_error\":\"\"}";
    assert_string_equal(p, want_ok);
    assert_int_equal(len, strlen(want_ok));
    free(p);

    job_t failed = payload_job(DL_FAILED);
    failed.download_meta = "Error while processing response, Received status code 404 Not "
                           "Found, retriable: false, internal: false";
    failed.extra = NULL;
    failed.image_size = NULL;
    failed.response_code = 404;
    p = job_callback_payload(&failed, NULL);
    assert_string_equal(p, "{\"success\":false,\"error\":\"Error while processing response, "
                           "Received status code 404 Not Found, retriable: false, internal: "
                           "false\",\"extra\":\"\",\"image_size\":\"\","
                           "\"resource_url\":\"http://x/a.jpg\",\"download_url\":\"\","
                           "\"job_id\":\"6QEywYsd0jrKAg\",\"response_code\":404,"
                           "\"delivered\":true,\"delivery_error\":\"\"}");
    free(p);

    job_t pending = payload_job(DL_PENDING), running = payload_job(DL_IN_PROGRESS);
    assert_null(job_callback_payload(&pending, &len));
    assert_null(job_callback_payload(&running, &len));
}

/* Issue 16: checksum and aggr_bandwidth fields; the payload's extra keys only for
 * jobs with a checksum. */
#define CK_JOB                                                                                     \
    "{\"url\":\"http://x/a\",\"aggr_id\":\"a\",\"aggr_limit\":1,\"callback_url\":\"http://c/\""
#define CK_MSG "checksum must be \"sha256:<64 hex digits>\" or \"md5:<32 hex digits>\""
static void test_checksum_and_bandwidth(void **state)
{
    (void)state;
    static const err_case_t job_errs[] = {
        {CK_JOB ",\"checksum\":\"sha256:00\"}", CK_MSG},
        {CK_JOB ",\"checksum\":\"md5:0123456789abcdef0123456789abcdeX\"}", CK_MSG},
        {CK_JOB ",\"checksum\":\"sha1:0123456789abcdef0123456789abcdef01234567\"}", CK_MSG},
        {CK_JOB ",\"checksum\":7}", CK_MSG},
    };
    RUN_JOB_ERRS(job_errs);
    static const err_case_t aggr_errs[] = {
        {CK_JOB ",\"aggr_bandwidth\":0}", "aggr_bandwidth must be greater than 0"},
        {CK_JOB ",\"aggr_bandwidth\":\"1\"}", "aggr_bandwidth must be a number (bytes per second)"},
    };
    RUN_AGGR_ERRS(aggr_errs);
    job_t job;
    parse_ok(CK_JOB ",\"checksum\":\"md5:0123456789ABCDEF0123456789abcdef\","
                    "\"aggr_bandwidth\":1500.7}",
             &job);
    assert_string_equal(job.checksum, "md5:0123456789abcdef0123456789abcdef");
    assert_int_equal(job.aggr_bandwidth, 1500);
    job_free(&job);

    job_t ok = payload_job(DL_SUCCESS);
    ok.checksum = "sha256:ab";
    ok.sha256 = "ab";
    ok.size = 42;
    char *p = job_callback_payload(&ok, NULL);
    assert_non_null(strstr(p, "\"delivery_error\":\"\",\"sha256\":\"ab\",\"size\":42}"));
    free(p);
    ok.checksum = NULL; /* no checksum asked: the reference's 10 keys only */
    p = job_callback_payload(&ok, NULL);
    assert_null(strstr(p, "sha256"));
    free(p);
}

static void test_payload_escaping(void **state)
{
    (void)state;
    job_t job = payload_job(DL_SUCCESS);
    job.extra = "a\"b\\c\n\x01<&>\xff";
    job.download_url = "http://a b/";
    char *p = job_callback_payload(&job, NULL);
    assert_non_null(p);
    assert_non_null(strstr(p, "\"extra\":\"a\\\"b\\\\c\\n\\u0001<&>\xef\xbf\xbd\""));
    /* a base that does not parse yields an empty download_url */
    assert_non_null(strstr(p, "\"download_url\":\"\""));
    free(p);
}

static void test_free_parsed(void **state)
{
    (void)state;
    job_t job;
    parse_ok("{" NOCB ",\"callback_type\":\"kafka\",\"callback_dst\":\"t\",\"extra\":\"e\","
             "\"mime_type\":\"image/*\",\"max_retries\":1,\"extract_image_size\":true,"
             "\"download_timeout\":5,\"request_headers\":{\"A\":\"b\"},\"s3_bucket\":\"b\","
             "\"s3_region\":\"r\",\"aggr_proxy\":\"http://p\"}",
             &job);
    job.download_meta = strdup("m");
    job.callback_meta = strdup("c");
    job.download_url = strdup("http://d");
    job.image_size = strdup("1x1");
    job_free(&job);
    assert_null(job.url);
    assert_null(job.request_headers.items);
    assert_int_equal(job.request_headers.n, 0);
    job_free(&job);
    job_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_syntax_errors),
        cmocka_unit_test(test_json_type_errors),
        cmocka_unit_test(test_json_raw_bytes),
        cmocka_unit_test(test_json_string_decoding),
        cmocka_unit_test(test_row1_url),
        cmocka_unit_test(test_row2_aggr_id),
        cmocka_unit_test(test_row3_s3),
        cmocka_unit_test(test_row4_callback_url),
        cmocka_unit_test(test_row5_callback_pair),
        cmocka_unit_test(test_row5_accepted),
        cmocka_unit_test(test_row6_extra),
        cmocka_unit_test(test_row7_mime_type),
        cmocka_unit_test(test_row8_max_retries),
        cmocka_unit_test(test_row9_extract_image_size),
        cmocka_unit_test(test_row10_download_timeout),
        cmocka_unit_test(test_row11_request_headers),
        cmocka_unit_test(test_row11_headers_accepted),
        cmocka_unit_test(test_rule_order),
        cmocka_unit_test(test_accepted_minimal),
        cmocka_unit_test(test_door),
        cmocka_unit_test(test_aggregation_via_job_parse),
        cmocka_unit_test(test_aggregation_rows),
        cmocka_unit_test(test_aggregation_accepted),
        cmocka_unit_test(test_new_id),
        cmocka_unit_test(test_to_string),
        cmocka_unit_test(test_state_names),
        cmocka_unit_test(test_has_callback),
        cmocka_unit_test(test_headers_json),
        cmocka_unit_test(test_file_url),
        cmocka_unit_test(test_payload),
        cmocka_unit_test(test_payload_escaping),
        cmocka_unit_test(test_checksum_and_bandwidth),
        cmocka_unit_test(test_free_parsed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
