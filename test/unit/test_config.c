/* Unit tests of config: defaults, every kind of value, units, case-insensitive keys,
 * the fatal messages that name the offending key, JSON syntax errors with their line
 * and column, the warnings for unknown and misplaced keys, and the reference's own
 * config.json.sample (download_url under notifier) loading unchanged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"

static const char *good =
    "{\"redis\": {\"addr\": \"10.0.0.1:6380\"},"
    " \"api\": {\"heartbeat_path\": \"/tmp/hb\", \"max_body\": 2048, \"read_timeout\": \"2s\"},"
    " \"processor\": {\"storage_dir\": \"/tmp/x\", \"download_url\": \"http://h/foo\","
    "   \"request_headers\": {\"User-Agent\": \"UA\"}, \"stats_interval\": 300, "
    "\"max_concurrency\": 7,"
    "   \"lease\": 20, \"retry_base\": \"500ms\", \"max_file_size\": 1000,"
    "   \"tmp_sweep_interval\": \"90s\","
    "   \"filestorage\": {\"type\": \"filesystem\", \"rootdir\": \"/tmp/files\"}},"
    " \"notifier\": {\"concurrency\": 10, \"deletion_interval\": 2, \"max_attempts\": 4,"
    "   \"retention\": \"1d\", \"unknown\": [1,2]},"
    " \"backends\": {\"http\": {\"timeout\": 30}, \"kafka\": {\"bootstrap.servers\": \"b:9092\","
    "   \"go.delivery.reports\": false, \"go.events.channel.enable\": true, \"acks\": 1, \"x\": "
    "true}},"
    " \"whatever\": {}}";

static void test_good_file(void **state)
{
    (void)state;
    config_t c;
    char err[512];
    assert_int_equal(config_parse(good, strlen(good),
                                  CONFIG_API | CONFIG_PROCESSOR | CONFIG_NOTIFIER, &c, err,
                                  sizeof err),
                     0);
    assert_string_equal(c.redis_addr, "10.0.0.1:6380");
    assert_string_equal(c.heartbeat_path, "/tmp/hb");
    assert_int_equal(c.api_max_body, 2048);
    assert_int_equal(c.api_read_timeout_ms, 2000);
    assert_string_equal(c.storage_dir, "/tmp/x");
    assert_string_equal(c.fs_rootdir, "/tmp/files");
    assert_string_equal(c.download_url, "http://h/foo");
    assert_int_equal(c.request_headers.n, 1);
    assert_string_equal(c.request_headers.items[0].value, "UA");
    assert_int_equal(c.processor_stats_interval_ms, 300);
    assert_int_equal(c.max_concurrency, 7);
    assert_int_equal(c.download_lease_ms, 20000);
    assert_int_equal(c.tmp_sweep_interval_ms, 90000);
    assert_int_equal(c.download_retry_base_ms, 500);
    assert_int_equal(c.max_file_size, 1000);
    assert_int_equal(c.notifier_concurrency, 10);
    assert_int_equal(c.deletion_interval_ms, 120000);
    assert_int_equal(c.callback_max_attempts, 4);
    assert_int_equal(c.retention_ms, 86400000);
    assert_true(c.http_enabled);
    assert_int_equal(c.http_timeout_ms, 30000);
    assert_true(c.kafka_enabled);
    assert_false(c.kafka_delivery_reports);
    assert_int_equal(c.n_kafka_props, 3); /* go.* keys never reach librdkafka */
    assert_string_equal(c.kafka_props[0].name, "bootstrap.servers");
    assert_string_equal(c.kafka_props[1].value, "1");
    assert_string_equal(c.kafka_props[2].value, "true");
    /* every key of the document is known but these two */
    assert_int_equal(c.n_warnings, 2);
    assert_string_equal(c.warnings[0].name, "whatever");
    assert_string_equal(c.warnings[0].value, "whatever is not a known key and is ignored");
    assert_string_equal(c.warnings[1].name, "notifier.unknown");
    config_free(&c);
}

static void test_defaults_and_case(void **state)
{
    (void)state;
    const char *doc =
        "{\"PROCESSOR\": {\"Storage_Dir\": \"/tmp/s\", \"download_url\": \"http://h\"}}";
    config_t c;
    char err[512];
    assert_int_equal(
        config_parse(doc, strlen(doc), CONFIG_API | CONFIG_PROCESSOR, &c, err, sizeof err), 0);
    assert_string_equal(c.redis_addr, "localhost:6379");
    assert_string_equal(c.storage_dir, "/tmp/s");
    assert_string_equal(c.fs_rootdir, "/tmp/s"); /* no filestorage section: storage_dir */
    assert_int_equal(c.processor_stats_interval_ms, 5000);
    assert_int_equal(c.tmp_sweep_interval_ms, 600000);
    assert_int_equal(c.api_max_body, 1 << 20);
    assert_int_equal(c.download_retry_base_ms, 120000);
    assert_int_equal(c.callback_max_attempts, 6);
    assert_int_equal(c.retention_ms, 7ULL * 86400000);
    config_free(&c);
}

static void expect_error(const char *doc, int comps, const char *msg)
{
    config_t c;
    char err[512] = "";
    int rc = config_parse(doc, strlen(doc), comps, &c, err, sizeof err);
    config_free(&c);
    if (rc == 0) fail_msg("accepted: %s", doc);
    if (strcmp(err, msg) != 0) fail_msg("got  %s\nwant %s", err, msg);
}

static void test_bad_values(void **state)
{
    (void)state;
    const int N = CONFIG_NOTIFIER, P = CONFIG_PROCESSOR;
    const char *nb = "\"backends\": {\"http\": {\"timeout\": 1}}";
    char doc[1024];
    expect_error("{", N, "config: invalid JSON at line 1, column 2: parse error: premature EOF");
    expect_error("[]", N, "config: the top level must be a JSON object");
    expect_error("{\"redis\": 5}", N, "config: redis must be an object");
    expect_error("{\"redis\": {\"addr\": 6379}}", N, "config: redis.addr must be a string");
    snprintf(doc, sizeof doc, "{\"notifier\": {\"concurrency\": 0, \"deletion_interval\": 1}, %s}",
             nb);
    expect_error(doc, N, "config: notifier.concurrency must be a positive integer");
    snprintf(doc, sizeof doc,
             "{\"notifier\": {\"concurrency\": \"10\", \"deletion_interval\": 1}, %s}", nb);
    expect_error(doc, N, "config: notifier.concurrency must be a positive integer");
    snprintf(doc, sizeof doc,
             "{\"notifier\": {\"concurrency\": 2.5, \"deletion_interval\": 1}, %s}", nb);
    expect_error(doc, N, "config: notifier.concurrency must be a positive integer");
    snprintf(doc, sizeof doc, "{\"notifier\": {\"concurrency\": 1}, %s}", nb);
    expect_error(
        doc, N,
        "config: notifier.deletion_interval must be a positive number of minutes: the time "
        "after a delivered callback before the job's file is deleted");
    expect_error("{\"notifier\": {\"concurrency\": 1, \"deletion_interval\": 1}}", N,
                 "config: backends must enable at least one backend (http or kafka) with a "
                 "non-empty object");
    expect_error("{\"notifier\": {\"concurrency\": 1, \"deletion_interval\": 1}, \"backends\": "
                 "{\"http\": {}}}",
                 N,
                 "config: backends must enable at least one backend (http or kafka) with a "
                 "non-empty object");
    expect_error("{\"backends\": {\"sqs\": {\"q\": 1}}}", 0,
                 "config: backends.sqs is an unknown backend (known: http, kafka)");
    expect_error("{\"backends\": {\"http\": {\"timeout\": \"soon\"}}}", 0,
                 "config: backends.http.timeout must be a duration: a number of seconds or a "
                 "string such as \"30s\"");
    expect_error("{\"notifier\": {\"retry_base\": -1}}", 0,
                 "config: notifier.retry_base must be a duration: a number of seconds or a string "
                 "such as \"30s\"");
    expect_error("{\"processor\": {\"storage_dir\": \"/tmp\"}}", P,
                 "config: processor.download_url must be a valid URL (Could not parse Download "
                 "URL, parse \"\": empty url)");
    expect_error("{\"processor\": {\"download_url\": \"http://h\"}}", P,
                 "config: processor.storage_dir must be set to a writable directory");
    expect_error("{\"processor\": {\"storage_dir\": \"/t\", \"download_url\": \"http://h\", "
                 "\"filestorage\": {\"type\": \"ftp\"}}}",
                 P,
                 "config: processor.filestorage.type must be \"filesystem\" or \"s3\" (Unknown "
                 "filestorage type ftp)");
    expect_error(
        "{\"processor\": {\"request_headers\": {\"A\": 1}}}", 0,
        "config: processor.request_headers must be an object of strings (A is not a string)");
    expect_error("{\"processor\": {\"max_concurrency\": 0}}", 0,
                 "config: processor.max_concurrency must be a positive integer");
    expect_error("{\"processor\": {\"disk_low\": 95, \"disk_high\": 90}}", 0,
                 "config: processor.disk_low must be smaller than processor.disk_high");
    expect_error("{\"processor\": {\"lease\": 1}}", 0,
                 "config: processor.lease must be at least 3 seconds");
    expect_error("{\"processor\": {\"tmp_sweep_interval\": \"often\"}}", 0,
                 "config: processor.tmp_sweep_interval must be a duration: a number of seconds or "
                 "a string such as \"30s\"");
    expect_error("{\"processor\": {\"tmp_sweep_interval\": 0}}", 0,
                 "config: processor.tmp_sweep_interval must be greater than 0");
    expect_error(
        "{\"redis\": {\"master_name\": \"m\"}}", 0,
        "config: redis.sentinel must list at least one sentinel when redis.master_name is set");
    expect_error("{\"backends\": {\"kafka\": {\"go.delivery.reports\": \"yes\"}}}", 0,
                 "config: backends.kafka.go.delivery.reports must be true or false");
}

static void test_components_select_required_keys(void **state)
{
    (void)state;
    config_t c;
    char err[256];
    /* the api alone needs no processor or notifier keys */
    assert_int_equal(config_parse("{}", 2, CONFIG_API, &c, err, sizeof err), 0);
    config_free(&c);
}

static void test_load_missing_file(void **state)
{
    (void)state;
    config_t c;
    char err[512];
    assert_int_equal(config_load("/nonexistent/config.json", CONFIG_API, &c, err, sizeof err), -1);
    assert_string_equal(err,
                        "config: cannot read /nonexistent/config.json: No such file or directory");
    config_free(&c);
}

/* api.idempotency_ttl: 24 h by default, a duration in seconds or with a unit, > 0. */
static void test_idempotency_ttl(void **state)
{
    (void)state;
    config_t c;
    char err[512];
    assert_int_equal(config_parse("{}", 2, 0, &c, err, sizeof err), 0);
    assert_int_equal(c.api_idempotency_ttl_ms, 86400000);
    config_free(&c);
    const char *doc = "{\"api\": {\"idempotency_ttl\": 90}}";
    assert_int_equal(config_parse(doc, strlen(doc), 0, &c, err, sizeof err), 0);
    assert_int_equal(c.api_idempotency_ttl_ms, 90000);
    config_free(&c);
    doc = "{\"api\": {\"idempotency_ttl\": \"2h\"}}";
    assert_int_equal(config_parse(doc, strlen(doc), 0, &c, err, sizeof err), 0);
    assert_int_equal(c.api_idempotency_ttl_ms, 7200000);
    config_free(&c);
    expect_error("{\"api\": {\"idempotency_ttl\": 0}}", 0,
                 "config: api.idempotency_ttl must be greater than 0");
    expect_error("{\"api\": {\"idempotency_ttl\": \"soon\"}}", 0,
                 "config: api.idempotency_ttl must be a duration: a number of seconds or a string "
                 "such as \"30s\"");
}

/* processor.block_private_networks / allow_cidrs and api.auth_token / auth_read. */
static void test_security_keys(void **state)
{
    (void)state;
    const char *doc = "{\"api\": {\"auth_token\": \"t0k\", \"auth_read\": true},"
                      " \"processor\": {\"block_private_networks\": true,"
                      " \"allow_cidrs\": [\"127.0.0.0/8\", \"fd00::/8\", \"10.1.2.3\"]}}";
    config_t c;
    char err[512];
    assert_int_equal(config_parse(doc, strlen(doc), 0, &c, err, sizeof err), 0);
    assert_string_equal(c.api_auth_token, "t0k");
    assert_true(c.api_auth_read);
    assert_true(c.block_private_networks);
    assert_int_equal(c.n_allow_cidrs, 3);
    assert_string_equal(c.allow_cidrs[1], "fd00::/8");
    config_free(&c);
    assert_int_equal(config_parse("{}", 2, 0, &c, err, sizeof err), 0);
    assert_false(c.block_private_networks); /* off by default: drop-in compatible */
    assert_int_equal(c.n_allow_cidrs, 0);
    assert_null(c.api_auth_token);
    assert_false(c.api_auth_read);
    config_free(&c);
    expect_error("{\"processor\": {\"allow_cidrs\": [\"127.0.0.0/8\", \"10.0.0.0/33\"]}}", 0,
                 "config: processor.allow_cidrs entry \"10.0.0.0/33\" is not a valid CIDR");
    expect_error("{\"processor\": {\"allow_cidrs\": [\"localhost\"]}}", 0,
                 "config: processor.allow_cidrs entry \"localhost\" is not a valid CIDR");
    expect_error("{\"processor\": {\"allow_cidrs\": \"10.0.0.0/8\"}}", 0,
                 "config: processor.allow_cidrs must be an array of strings");
    expect_error("{\"processor\": {\"block_private_networks\": 1}}", 0,
                 "config: processor.block_private_networks must be true or false");
    expect_error("{\"api\": {\"auth_token\": 5}}", 0, "config: api.auth_token must be a string");
    /* one client must not be able to take every connection */
    expect_error("{\"api\": {\"max_connections\": 100, \"max_connections_per_client\": 100}}", 0,
                 "config: api.max_connections_per_client must be less than api.max_connections "
                 "(100), so that one client cannot take every connection");
    expect_error("{\"api\": {\"max_connections_per_client\": -1}}", 0,
                 "config: api.max_connections_per_client must be a non-negative integer");
    const char *cap = "{\"api\": {\"max_connections_per_client\": 40}}";
    assert_int_equal(config_parse(cap, strlen(cap), 0, &c, err, sizeof err), 0);
    assert_int_equal(c.api_max_connections_per_client, 40);
    config_free(&c);
}

/* processor.max_pause and adaptive_limits (rate limits, issue 14). */
static void test_rate_limit_keys(void **state)
{
    (void)state;
    config_t c;
    char err[512];
    assert_int_equal(config_parse("{}", 2, 0, &c, err, sizeof err), 0);
    assert_int_equal(c.max_pause_ms, 3600000);
    assert_true(c.adaptive_limits);
    config_free(&c);
    const char *doc = "{\"processor\": {\"max_pause\": \"90s\", \"adaptive_limits\": false}}";
    assert_int_equal(config_parse(doc, strlen(doc), 0, &c, err, sizeof err), 0);
    assert_int_equal(c.max_pause_ms, 90000);
    assert_false(c.adaptive_limits);
    config_free(&c);
    expect_error("{\"processor\": {\"max_pause\": 0}}", 0,
                 "config: processor.max_pause must be greater than 0");
    expect_error("{\"processor\": {\"adaptive_limits\": \"no\"}}", 0,
                 "config: processor.adaptive_limits must be true or false");
}

/* Found by fuzz_config: a repeated "kafka" backend key (keys match case-insensitively)
 * with fewer properties than the first wrote past the end of the property array. The
 * last one wins, as for every other key. */
static void test_repeated_kafka_backend(void **state)
{
    (void)state;
    const char *doc = "{\"backends\": {\"kafka\": {\"a\": \"1\", \"b\": \"2\","
                      " \"go.delivery.reports\": false}, \"Kafka\": {\"c\": 3}}}";
    config_t c;
    char err[512];
    assert_int_equal(config_parse(doc, strlen(doc), 0, &c, err, sizeof err), 0);
    assert_true(c.kafka_enabled);
    assert_int_equal(c.n_kafka_props, 1);
    assert_string_equal(c.kafka_props[0].name, "c");
    assert_string_equal(c.kafka_props[0].value, "3");
    assert_true(c.kafka_delivery_reports);
    config_free(&c);
    /* the fuzzer's input itself (first byte: components), kept in its seed corpus */
    char path[1024];
    const char *src = getenv("DOWNLOADER_SRC");
    snprintf(path, sizeof path, "%s/test/fuzz/corpus/fuzz_config/crash_duplicate_kafka",
             src ? src : ".");
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_true(n > 1);
    config_parse(buf + 1, n - 1, buf[0] & 7, &c, err, sizeof err);
    config_free(&c);
}

static void test_s3_keys(void **state)
{
    (void)state;
    const char *doc =
        "{\"processor\": {\"storage_dir\": \"/t\", \"download_url\": \"http://h\","
        " \"filestorage\": {\"type\": \"s3\", \"bucket\": \"b1\", \"region\": \"eu-west-1\","
        " \"endpoint\": \"http://127.0.0.1:9000\", \"path_style\": true,"
        " \"access_key_id\": \"AK\", \"secret_access_key\": \"SK\","
        " \"multipart_threshold\": 10485760, \"part_size\": 8388608}}}";
    config_t c;
    char err[512];
    assert_int_equal(config_parse(doc, strlen(doc), CONFIG_PROCESSOR, &c, err, sizeof err), 0);
    assert_string_equal(c.fs_type, "s3");
    assert_string_equal(c.s3_bucket, "b1");
    assert_string_equal(c.s3_region, "eu-west-1");
    assert_string_equal(c.s3_endpoint, "http://127.0.0.1:9000");
    assert_true(c.s3_path_style);
    assert_string_equal(c.s3_access_key, "AK");
    assert_string_equal(c.s3_secret_key, "SK");
    assert_int_equal(c.s3_multipart_threshold, 10 << 20);
    assert_int_equal(c.s3_part_size, 8 << 20);
    assert_null(c.fs_rootdir);
    config_free(&c);
    doc = "{\"processor\": {}}";
    assert_int_equal(config_parse(doc, strlen(doc), 0, &c, err, sizeof err), 0);
    assert_int_equal(c.s3_multipart_threshold, 64 << 20);
    assert_int_equal(c.s3_part_size, 16 << 20);
    config_free(&c);
    int P = CONFIG_PROCESSOR;
    expect_error("{\"processor\": {\"storage_dir\": \"/t\", \"download_url\": \"http://h\", "
                 "\"filestorage\": {\"type\": \"s3\"}}}",
                 P, "config: processor.filestorage.bucket must be set when type is \"s3\"");
    expect_error("{\"processor\": {\"filestorage\": {\"part_size\": 1000}}}", 0,
                 "config: processor.filestorage.part_size must be an integer from 5242880 to "
                 "5368709120 (bytes)");
    expect_error("{\"processor\": {\"filestorage\": {\"multipart_threshold\": 0}}}", 0,
                 "config: processor.filestorage.multipart_threshold must be an integer from 1 to "
                 "5368709120 (bytes)");
    expect_error("{\"processor\": {\"filestorage\": {\"endpoint\": \"minio:9000\"}}}", 0,
                 "config: processor.filestorage.endpoint must be an http:// or https:// URL");
    expect_error("{\"processor\": {\"filestorage\": {\"access_key_id\": \"AK\"}}}", 0,
                 "config: processor.filestorage.secret_access_key must be set together with "
                 "processor.filestorage.access_key_id");
}

static void test_syntax_error_names_line_and_column(void **state)
{
    (void)state;
    expect_error("{\"redis\": {\n  \"addr\": \"h:1\",\n}}", 0,
                 "config: invalid JSON at line 3, column 1: parse error: invalid object key "
                 "(must be a string)");
    expect_error("{\"api\": {}\n \"processor\": {}}", 0,
                 "config: invalid JSON at line 2, column 2: parse error: after key and value, "
                 "inside map, I expect ',' or '}'");
    expect_error("/* comments are fine */\n{\"api\": {\"max_body\": 1O}}", 0,
                 "config: invalid JSON at line 2, column 22: lexical error: invalid char in json "
                 "text.");
}

/* The warning about `path`, or NULL. */
static const char *warning(const config_t *c, const char *path)
{
    for (size_t i = 0; i < c->n_warnings; i++)
        if (strcmp(c->warnings[i].name, path) == 0) return c->warnings[i].value;
    return NULL;
}

static void test_unknown_and_misplaced_keys(void **state)
{
    (void)state;
    const char *doc =
        "{\"redis\": {\"addr\": \"h:1\", \"Sentinels\": []},"
        " \"api\": {\"lease\": 3},"
        " \"storage_dir\": \"/t\", \"procesor\": {},"
        " \"processor\": {\"storage_dir\": \"/t\", \"download_url\": \"http://h\","
        "   \"max_concurency\": 4, \"rootdir\": \"/r\", \"filestorage\": {\"Type\": \"filesystem\","
        "   \"regoin\": \"x\"}},"
        " \"notifier\": {\"concurrency\": 1, \"deletion_interval\": 1, \"storage_dir\": \"/t\","
        "   \"filestorage\": {}, \"timeout\": 3},"
        " \"backends\": {\"http\": {\"timeout\": 1, \"signing_secrets\": \"s\"},"
        "   \"kafka\": {\"any.librdkafka.property\": 1}}}";
    config_t c;
    char err[512];
    assert_int_equal(config_parse(doc, strlen(doc), CONFIG_API | CONFIG_PROCESSOR | CONFIG_NOTIFIER,
                                  &c, err, sizeof err),
                     0);
    static const char *const want[][2] = {
        {"redis.Sentinels",
         "redis.Sentinels is not a known key and is ignored (did you mean redis.sentinel?)"},
        {"api.lease", "api.lease is ignored: it belongs in processor or notifier"},
        {"storage_dir", "storage_dir is ignored: it belongs in processor"},
        {"procesor", "procesor is not a known key and is ignored (did you mean processor?)"},
        {"processor.max_concurency", "processor.max_concurency is not a known key and is ignored "
                                     "(did you mean processor.max_concurrency?)"},
        {"processor.rootdir", "processor.rootdir is ignored: it belongs in processor.filestorage"},
        {"processor.filestorage.regoin", "processor.filestorage.regoin is not a known key and is "
                                         "ignored (did you mean processor.filestorage.region?)"},
        {"notifier.storage_dir", "notifier.storage_dir is ignored: it belongs in processor"},
        {"notifier.filestorage", "notifier.filestorage is ignored: it belongs in processor"},
        {"notifier.timeout", "notifier.timeout is ignored: it belongs in backends.http"},
        {"backends.http.signing_secrets",
         "backends.http.signing_secrets is not a known key and is ignored (did you mean "
         "backends.http.signing_secret?)"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *w = warning(&c, want[i][0]);
        if (!w || strcmp(w, want[i][1]) != 0)
            fail_msg("%s: got %s\nwant %s", want[i][0], w ? w : "(none)", want[i][1]);
    }
    assert_int_equal(c.n_warnings, sizeof want / sizeof want[0]);
    assert_int_equal(c.max_concurrency, 1024); /* the misspelt key did nothing */
    config_free(&c);

    /* a fatal problem still names its key, after the warning that explains it */
    const char *moved = "{\"processor\": {\"download_url\": \"http://h\"},"
                        " \"notifier\": {\"storage_dir\": \"/t\"}}";
    assert_int_equal(config_parse(moved, strlen(moved), CONFIG_PROCESSOR, &c, err, sizeof err), -1);
    assert_string_equal(err, "config: processor.storage_dir must be set to a writable directory");
    assert_string_equal(warning(&c, "notifier.storage_dir"),
                        "notifier.storage_dir is ignored: it belongs in processor");
    config_free(&c);
}

/* The reference's config.json.sample, as its spec describes it: download_url sits under
 * notifier (W33), where the reference ignores it and its processor exits. Ours runs it
 * unchanged, taking download_url from there, and says so. */
static const char *reference_sample =
    "{\n"
    "  \"redis\": {\n"
    "    \"addr\": \"localhost:6379\",\n"
    "    \"sentinel\": [],\n"
    "    \"master_name\": \"\"\n"
    "  },\n"
    "  \"api\": {\n"
    "    \"heartbeat_path\": \"/tmp/disable_api\"\n"
    "  },\n"
    "  \"processor\": {\n"
    "    \"storage_dir\": \"/tmp/\",\n"
    "    \"filestorage\": {\"type\": \"filesystem\", \"rootdir\": \"/tmp/files\"},\n"
    "    \"request_headers\": {\"Accept\": \"*/*\", \"User-Agent\": \"Downloader v1\"},\n"
    "    \"stats_interval\": 5000\n"
    "  },\n"
    "  \"notifier\": {\n"
    "    \"concurrency\": 10,\n"
    "    \"stats_interval\": 5000,\n"
    "    \"deletion_interval\": 60,\n"
    "    \"download_url\": \"http://localhost/foo\"\n"
    "  },\n"
    "  \"backends\": {\n"
    "    \"http\": {\"timeout\": 30},\n"
    "    \"kafka\": {\"bootstrap.servers\": \"localhost:9092\", \"go.delivery.reports\": true}\n"
    "  }\n"
    "}\n";

static void test_reference_sample_runs_unchanged(void **state)
{
    (void)state;
    config_t c;
    char err[512];
    for (int comps = CONFIG_API; comps <= CONFIG_NOTIFIER; comps <<= 1) {
        if (config_parse(reference_sample, strlen(reference_sample), comps, &c, err, sizeof err) <
            0)
            fail_msg("component %d: %s", comps, err);
        assert_string_equal(c.download_url, "http://localhost/foo");
        assert_int_equal(c.n_warnings, 1);
        assert_string_equal(c.warnings[0].name, "notifier.download_url");
        assert_string_equal(c.warnings[0].value,
                            "notifier.download_url is used as processor.download_url (as in the "
                            "reference's config.json.sample); move it to processor");
        config_free(&c);
    }
    /* with processor.download_url set, that one wins and the notifier's is ignored */
    const char *both = "{\"processor\": {\"storage_dir\": \"/t\", \"download_url\": \"http://p\"},"
                       " \"notifier\": {\"download_url\": \"http://n\"}}";
    assert_int_equal(config_parse(both, strlen(both), CONFIG_PROCESSOR, &c, err, sizeof err), 0);
    assert_string_equal(c.download_url, "http://p");
    assert_string_equal(warning(&c, "notifier.download_url"),
                        "notifier.download_url is ignored: it belongs in processor, and "
                        "processor.download_url is set");
    config_free(&c);
    expect_error("{\"notifier\": {\"download_url\": 5}}", 0,
                 "config: notifier.download_url must be a string");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_file),
        cmocka_unit_test(test_defaults_and_case),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_components_select_required_keys),
        cmocka_unit_test(test_load_missing_file),
        cmocka_unit_test(test_security_keys),
        cmocka_unit_test(test_rate_limit_keys),
        cmocka_unit_test(test_idempotency_ttl),
        cmocka_unit_test(test_repeated_kafka_backend),
        cmocka_unit_test(test_s3_keys),
        cmocka_unit_test(test_syntax_error_names_line_and_column),
        cmocka_unit_test(test_unknown_and_misplaced_keys),
        cmocka_unit_test(test_reference_sample_runs_unchanged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
