/* config: parses config.json with yajl's tree API into config_t. Keys match
 * case-insensitively (as Go's decoder did), and every wrong type or value is fatal with
 * a message naming the key; a JSON syntax error names its line and column. Durations
 * accept a number in the key's documented unit or a string with a unit ("500ms", "10s",
 * "5m", "2h", "7d"). Unknown keys are ignored with a warning naming their path, and
 * where the key exists in another section, the warning says where it belongs: the
 * parser records every key it looks up, per section, so the parser itself is the
 * schema the warnings use. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_parse.h>
#include <yajl/yajl_tree.h>

#include "log.h"
#include "netguard.h"
#include "uri.h"

#define KNOWN_MAX 160 /* keys the parser looks up (about 90) */

typedef struct {
    const char *section, *key;
} known_t;

typedef struct {
    char *err;
    size_t errlen;
    const char *section;      /* "processor" etc., for messages; NULL: the top level */
    known_t known[KNOWN_MAX]; /* every (section, key) looked up */
    size_t n_known;
} ctx_t;

/* In a variadic function: its printf-style arguments after fmt into the array buf. */
#define FORMAT_ARGS(buf, fmt)                                                                      \
    do {                                                                                           \
        va_list ap_;                                                                               \
        va_start(ap_, fmt);                                                                        \
        vsnprintf(buf, sizeof buf, fmt, ap_);                                                      \
        va_end(ap_);                                                                               \
    } while (0)

static int fail(ctx_t *c, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(ctx_t *c, const char *key, const char *fmt, ...)
{
    char msg[512];
    FORMAT_ARGS(msg, fmt);
    if (key)
        snprintf(c->err, c->errlen, "config: %s%s%s %s", c->section ? c->section : "",
                 c->section ? "." : "", key, msg);
    else
        snprintf(c->err, c->errlen, "config: %s", msg);
    return -1;
}

/* Case-insensitive member lookup; the last duplicate wins. */
static yajl_val find(yajl_val obj, const char *key)
{
    yajl_val found = NULL;
    if (!obj || !YAJL_IS_OBJECT(obj)) return NULL;
    for (size_t i = 0; i < obj->u.object.len; i++)
        if (strcasecmp(obj->u.object.keys[i], key) == 0) found = obj->u.object.values[i];
    return found;
}

/* find, recording `key` as a key of the current section (whether present or not). */
static yajl_val get(ctx_t *c, yajl_val obj, const char *key)
{
    if (c->n_known < KNOWN_MAX) c->known[c->n_known++] = (known_t){c->section, key};
    return find(obj, key);
}

static int get_string(ctx_t *c, yajl_val obj, const char *key, char **out)
{
    yajl_val v = get(c, obj, key);
    if (!v) return 0;
    if (!YAJL_IS_STRING(v)) return fail(c, key, "must be a string");
    free(*out);
    *out = strdup(v->u.string);
    return 0;
}

static int get_bool(ctx_t *c, yajl_val obj, const char *key, bool *out)
{
    yajl_val v = get(c, obj, key);
    if (!v) return 0;
    if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)) return fail(c, key, "must be true or false");
    *out = YAJL_IS_TRUE(v);
    return 0;
}

/* Integer in [min, max]; `what` describes the range for the message. */
static int get_int(ctx_t *c, yajl_val obj, const char *key, long long min, long long max,
                   const char *what, long long *out)
{
    yajl_val v = get(c, obj, key);
    if (!v) return 0;
    if (!YAJL_IS_INTEGER(v) || v->u.number.i < min || v->u.number.i > max)
        return fail(c, key, "must be %s", what);
    *out = v->u.number.i;
    return 0;
}

static int get_int_field(ctx_t *c, yajl_val obj, const char *key, int min, int *out)
{
    long long v = *out;
    const char *what = min > 0 ? "a positive integer" : "a non-negative integer";
    if (get_int(c, obj, key, min, INT_MAX, what, &v) < 0) return -1;
    *out = (int)v;
    return 0;
}

/* Parses "<number><unit>" with unit ms|s|m|h|d into milliseconds. */
static int parse_duration(const char *s, uint64_t *ms)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || v < 0 || !isfinite(v)) return -1;
    static const struct {
        const char *unit;
        double ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].unit) == 0) {
            double r = v * units[i].ms;
            if (r > 1e15) return -1;
            *ms = (uint64_t)r;
            return 0;
        }
    }
    return -1;
}

/* A duration: a non-negative number in `unit_ms` units, or a string with a unit. */
static int get_duration(ctx_t *c, yajl_val obj, const char *key, uint64_t unit_ms,
                        const char *unit_name, bool positive, uint64_t *out)
{
    yajl_val v = get(c, obj, key);
    if (!v) return 0;
    uint64_t ms;
    if (YAJL_IS_NUMBER(v) && YAJL_IS_DOUBLE(v) && v->u.number.d >= 0 && v->u.number.d < 1e12)
        ms = (uint64_t)(v->u.number.d * (double)unit_ms);
    else if (YAJL_IS_INTEGER(v) && v->u.number.i >= 0 && v->u.number.i < 1000000000000LL)
        ms = (uint64_t)v->u.number.i * unit_ms;
    else if (YAJL_IS_STRING(v) && parse_duration(v->u.string, &ms) == 0)
        ;
    else
        return fail(c, key, "must be a duration: a number of %s or a string such as \"30s\"",
                    unit_name);
    if (positive && ms == 0) return fail(c, key, "must be greater than 0");
    *out = ms;
    return 0;
}

static int get_headers(ctx_t *c, yajl_val obj, const char *key, headers_t *h)
{
    yajl_val v = get(c, obj, key);
    if (!v || YAJL_IS_NULL(v)) return 0;
    if (!YAJL_IS_OBJECT(v)) return fail(c, key, "must be an object of strings");
    job_headers_free(h);
    h->items = calloc(v->u.object.len + 1, sizeof *h->items);
    for (size_t i = 0; i < v->u.object.len; i++) {
        yajl_val hv = v->u.object.values[i];
        if (!YAJL_IS_STRING(hv))
            return fail(c, key, "must be an object of strings (%s is not a string)",
                        v->u.object.keys[i]);
        h->items[h->n].name = strdup(v->u.object.keys[i]);
        h->items[h->n].value = strdup(hv->u.string);
        h->n++;
    }
    return 0;
}

static int get_string_list(ctx_t *c, yajl_val obj, const char *key, char ***out, size_t *n)
{
    yajl_val v = get(c, obj, key);
    if (!v || YAJL_IS_NULL(v)) return 0;
    if (!YAJL_IS_ARRAY(v)) return fail(c, key, "must be an array of strings");
    *out = calloc(v->u.array.len + 1, sizeof **out);
    for (size_t i = 0; i < v->u.array.len; i++) {
        if (!YAJL_IS_STRING(v->u.array.values[i]))
            return fail(c, key, "must be an array of strings");
        (*out)[(*n)++] = strdup(v->u.array.values[i]->u.string);
    }
    return 0;
}

static int check_object(ctx_t *c, yajl_val root, const char *key, yajl_val *out)
{
    *out = get(c, root, key);
    if (*out && !YAJL_IS_OBJECT(*out) && !YAJL_IS_NULL(*out))
        return fail(c, key, "must be an object");
    if (*out && YAJL_IS_NULL(*out)) *out = NULL;
    return 0;
}

static void set_defaults(config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->redis_addr = strdup("localhost:6379");
    cfg->redis_command_timeout_ms = 5000;
    cfg->redis_wait_timeout_ms = 1000;
    cfg->heartbeat_path = strdup("");
    cfg->api_max_body = 1 << 20;
    cfg->api_max_header = 16 << 10;
    cfg->api_read_timeout_ms = 10000;
    cfg->api_idle_timeout_ms = 60000;
    cfg->api_max_connections = 10000;
    cfg->api_shutdown_grace_ms = 10000;
    cfg->api_idempotency_ttl_ms = 24 * 3600 * 1000;
    cfg->storage_dir = strdup("");
    cfg->fs_type = strdup("filesystem");
    cfg->s3_multipart_threshold = 64ULL << 20;
    cfg->s3_part_size = 16ULL << 20;
    cfg->processor_stats_interval_ms = 5000;
    cfg->download_url = strdup("");
    cfg->max_concurrency = 1024;
    cfg->download_lease_ms = 30000;
    cfg->connect_timeout_ms = 10000;
    cfg->low_speed_limit = 1;
    cfg->low_speed_time_ms = 60000;
    cfg->max_file_size = 0;
    cfg->download_retry_base_ms = 120000;
    cfg->max_pause_ms = 3600000;
    cfg->adaptive_limits = true;
    cfg->processor_shutdown_grace_ms = 10000;
    cfg->disk_high = 95;
    cfg->disk_low = 90;
    cfg->disk_check_interval_ms = 60000;
    cfg->tmp_sweep_interval_ms = 600000;
    cfg->notifier_stats_interval_ms = 5000;
    cfg->callback_max_attempts = 6;
    cfg->callback_retry_base_ms = 60000;
    cfg->retention_ms = 7ULL * 86400000;
    cfg->history_ms = 3600000;
    cfg->callback_lease_ms = 60000;
    cfg->notifier_shutdown_grace_ms = 10000;
    cfg->http_timeout_ms = 30000;
    cfg->kafka_delivery_reports = true;
}

static int parse_redis(ctx_t *c, yajl_val r, config_t *cfg)
{
    c->section = "redis";
    if (get_string(c, r, "addr", &cfg->redis_addr) < 0) return -1;
    if (!*cfg->redis_addr) {
        free(cfg->redis_addr);
        cfg->redis_addr = strdup("localhost:6379");
    }
    if (!strchr(cfg->redis_addr, ':')) return fail(c, "addr", "must be host:port");
    if (get_string_list(c, r, "sentinel", &cfg->sentinels, &cfg->n_sentinels) < 0) return -1;
    if (get_string(c, r, "master_name", &cfg->master_name) < 0) return -1;
    if (get_string(c, r, "password", &cfg->redis_password) < 0) return -1;
    if (get_int_field(c, r, "wait_replicas", 0, &cfg->redis_wait_replicas) < 0 ||
        get_duration(c, r, "wait_timeout", 1, "milliseconds", true, &cfg->redis_wait_timeout_ms) <
            0)
        return -1;
    return get_duration(c, r, "command_timeout", 1, "milliseconds", true,
                        &cfg->redis_command_timeout_ms);
}

static int parse_api(ctx_t *c, yajl_val a, config_t *cfg)
{
    long long v;
    c->section = "api";
    if (get_string(c, a, "heartbeat_path", &cfg->heartbeat_path) < 0) return -1;
    v = (long long)cfg->api_max_body;
    if (get_int(c, a, "max_body", 1, 1LL << 32, "a positive integer (bytes)", &v) < 0) return -1;
    cfg->api_max_body = (size_t)v;
    v = (long long)cfg->api_max_header;
    if (get_int(c, a, "max_header", 1024, 1 << 24, "an integer of at least 1024 (bytes)", &v) < 0)
        return -1;
    cfg->api_max_header = (size_t)v;
    if (get_duration(c, a, "read_timeout", 1, "milliseconds", true, &cfg->api_read_timeout_ms) <
            0 ||
        get_duration(c, a, "idle_timeout", 1, "milliseconds", true, &cfg->api_idle_timeout_ms) <
            0 ||
        get_duration(c, a, "shutdown_grace", 1, "milliseconds", false,
                     &cfg->api_shutdown_grace_ms) < 0 ||
        get_duration(c, a, "idempotency_ttl", 1000, "seconds", true, &cfg->api_idempotency_ttl_ms) <
            0)
        return -1;
    if (get_int_field(c, a, "max_connections", 1, &cfg->api_max_connections) < 0) return -1;
    if (get_int_field(c, a, "max_connections_per_client", 0, &cfg->api_max_connections_per_client) <
        0)
        return -1;
    if (cfg->api_max_connections_per_client >= cfg->api_max_connections)
        return fail(c, "max_connections_per_client",
                    "must be less than api.max_connections (%d), so that one client cannot take "
                    "every connection",
                    cfg->api_max_connections);
    if (get_string(c, a, "auth_token", &cfg->api_auth_token) < 0) return -1;
    return get_bool(c, a, "auth_read", &cfg->api_auth_read);
}

/* The S3 keys of processor.filestorage (also used by jobs with their own bucket). */
static int parse_s3(ctx_t *c, yajl_val fs, config_t *cfg)
{
    long long th = (long long)cfg->s3_multipart_threshold, ps = (long long)cfg->s3_part_size;
    if (get_int(c, fs, "multipart_threshold", 1, 5LL << 30,
                "an integer from 1 to 5368709120 (bytes)", &th) < 0 ||
        get_int(c, fs, "part_size", 5LL << 20, 5LL << 30,
                "an integer from 5242880 to 5368709120 (bytes)", &ps) < 0)
        return -1;
    cfg->s3_multipart_threshold = (uint64_t)th;
    cfg->s3_part_size = (uint64_t)ps;
    const char *ep = cfg->s3_endpoint;
    if (ep && *ep && strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0)
        return fail(c, "endpoint", "must be an http:// or https:// URL");
    bool ak = cfg->s3_access_key && *cfg->s3_access_key;
    bool sk = cfg->s3_secret_key && *cfg->s3_secret_key;
    if (ak != sk)
        return fail(c, ak ? "secret_access_key" : "access_key_id",
                    "must be set together with processor.filestorage.%s",
                    ak ? "access_key_id" : "secret_access_key");
    return 0;
}

static int parse_filestorage(ctx_t *c, yajl_val fs, config_t *cfg)
{
    c->section = "processor.filestorage";
    if (get_string(c, fs, "type", &cfg->fs_type) < 0 ||
        get_string(c, fs, "rootdir", &cfg->fs_rootdir) < 0 ||
        get_string(c, fs, "bucket", &cfg->s3_bucket) < 0 ||
        get_string(c, fs, "region", &cfg->s3_region) < 0 ||
        get_string(c, fs, "endpoint", &cfg->s3_endpoint) < 0 ||
        get_string(c, fs, "access_key_id", &cfg->s3_access_key) < 0 ||
        get_string(c, fs, "secret_access_key", &cfg->s3_secret_key) < 0 ||
        get_bool(c, fs, "path_style", &cfg->s3_path_style) < 0)
        return -1;
    if (strcmp(cfg->fs_type, "filesystem") != 0 && strcmp(cfg->fs_type, "s3") != 0)
        return fail(c, "type", "must be \"filesystem\" or \"s3\" (Unknown filestorage type %s)",
                    cfg->fs_type);
    return parse_s3(c, fs, cfg);
}

static int parse_processor_limits(ctx_t *c, yajl_val p, config_t *cfg)
{
    long long v = cfg->max_file_size;
    if (get_int(c, p, "max_file_size", 0, LLONG_MAX, "a non-negative integer (bytes)", &v) < 0)
        return -1;
    cfg->max_file_size = v;
    v = cfg->low_speed_limit;
    if (get_int(c, p, "low_speed_limit", 0, LONG_MAX, "a non-negative integer (bytes/s)", &v) < 0)
        return -1;
    cfg->low_speed_limit = (long)v;
    if (get_int_field(c, p, "max_concurrency", 1, &cfg->max_concurrency) < 0) return -1;
    long long hi = cfg->disk_high, lo = cfg->disk_low;
    if (get_int(c, p, "disk_high", 1, 100, "an integer between 1 and 100", &hi) < 0 ||
        get_int(c, p, "disk_low", 0, 100, "an integer between 0 and 100", &lo) < 0)
        return -1;
    if (lo >= hi) return fail(c, "disk_low", "must be smaller than processor.disk_high");
    cfg->disk_high = (int)hi;
    cfg->disk_low = (int)lo;
    if (get_bool(c, p, "block_private_networks", &cfg->block_private_networks) < 0 ||
        get_bool(c, p, "adaptive_limits", &cfg->adaptive_limits) < 0 ||
        get_string_list(c, p, "allow_cidrs", &cfg->allow_cidrs, &cfg->n_allow_cidrs) < 0)
        return -1;
    for (size_t i = 0; i < cfg->n_allow_cidrs; i++) {
        netguard_cidr_t cidr;
        if (netguard_cidr_parse(cfg->allow_cidrs[i], &cidr) < 0)
            return fail(c, "allow_cidrs", "entry \"%s\" is not a valid CIDR", cfg->allow_cidrs[i]);
    }
    return 0;
}

static int parse_processor(ctx_t *c, yajl_val p, config_t *cfg)
{
    yajl_val fs;
    c->section = "processor";
    if (get_string(c, p, "storage_dir", &cfg->storage_dir) < 0 ||
        get_string(c, p, "download_url", &cfg->download_url) < 0 ||
        get_headers(c, p, "request_headers", &cfg->request_headers) < 0 ||
        get_duration(c, p, "stats_interval", 1, "milliseconds", true,
                     &cfg->processor_stats_interval_ms) < 0 ||
        get_duration(c, p, "lease", 1000, "seconds", true, &cfg->download_lease_ms) < 0 ||
        get_duration(c, p, "connect_timeout", 1000, "seconds", true, &cfg->connect_timeout_ms) <
            0 ||
        get_duration(c, p, "low_speed_time", 1000, "seconds", true, &cfg->low_speed_time_ms) < 0 ||
        get_duration(c, p, "retry_base", 1000, "seconds", true, &cfg->download_retry_base_ms) < 0 ||
        get_duration(c, p, "max_pause", 1000, "seconds", true, &cfg->max_pause_ms) < 0 ||
        get_duration(c, p, "shutdown_grace", 1000, "seconds", false,
                     &cfg->processor_shutdown_grace_ms) < 0 ||
        get_duration(c, p, "disk_check_interval", 1000, "seconds", true,
                     &cfg->disk_check_interval_ms) < 0 ||
        get_duration(c, p, "tmp_sweep_interval", 1000, "seconds", true,
                     &cfg->tmp_sweep_interval_ms) < 0 ||
        parse_processor_limits(c, p, cfg) < 0 || check_object(c, p, "filestorage", &fs) < 0 ||
        parse_filestorage(c, fs, cfg) < 0) /* also without one: records its keys */
        return -1;
    c->section = "processor";
    if (cfg->download_lease_ms < 3000) return fail(c, "lease", "must be at least 3 seconds");
    return 0;
}

static int parse_notifier(ctx_t *c, yajl_val n, config_t *cfg)
{
    c->section = "notifier";
    long long conc = 0;
    if (get_int(c, n, "concurrency", 1, 1000000, "a positive integer", &conc) < 0) return -1;
    cfg->notifier_concurrency = (int)conc;
    if (get_duration(c, n, "stats_interval", 1, "milliseconds", true,
                     &cfg->notifier_stats_interval_ms) < 0 ||
        get_duration(c, n, "deletion_interval", 60000, "minutes", true,
                     &cfg->deletion_interval_ms) < 0 ||
        get_duration(c, n, "retry_base", 1000, "seconds", true, &cfg->callback_retry_base_ms) < 0 ||
        get_duration(c, n, "retention", 1000, "seconds", true, &cfg->retention_ms) < 0 ||
        get_duration(c, n, "history", 1000, "seconds", false, &cfg->history_ms) < 0 ||
        get_duration(c, n, "lease", 1000, "seconds", true, &cfg->callback_lease_ms) < 0 ||
        get_duration(c, n, "shutdown_grace", 1000, "seconds", false,
                     &cfg->notifier_shutdown_grace_ms) < 0 ||
        get_int_field(c, n, "max_attempts", 1, &cfg->callback_max_attempts) < 0)
        return -1;
    if (cfg->callback_lease_ms < 3000) return fail(c, "lease", "must be at least 3 seconds");
    return 0;
}

static int kafka_prop(ctx_t *c, config_t *cfg, const char *key, yajl_val v)
{
    char buf[64];
    const char *text;
    if (strncmp(key, "go.", 3) == 0) {
        if (strcmp(key, "go.delivery.reports") == 0) {
            if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)) return fail(c, key, "must be true or false");
            cfg->kafka_delivery_reports = YAJL_IS_TRUE(v);
        }
        return 0; /* other go.* client properties mean nothing to librdkafka */
    }
    if (YAJL_IS_STRING(v))
        text = v->u.string;
    else if (YAJL_IS_NUMBER(v))
        text = v->u.number.r;
    else if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v))
        text = strcpy(buf, YAJL_IS_TRUE(v) ? "true" : "false");
    else
        return fail(c, key, "must be a string, number or boolean");
    cfg->kafka_props[cfg->n_kafka_props].name = strdup(key);
    cfg->kafka_props[cfg->n_kafka_props].value = strdup(text);
    cfg->n_kafka_props++;
    return 0;
}

static void free_kafka_props(config_t *cfg)
{
    for (size_t i = 0; i < cfg->n_kafka_props; i++) {
        free(cfg->kafka_props[i].name);
        free(cfg->kafka_props[i].value);
    }
    free(cfg->kafka_props);
    cfg->kafka_props = NULL;
    cfg->n_kafka_props = 0;
}

static int parse_http(ctx_t *c, yajl_val v, config_t *cfg)
{
    c->section = "backends.http";
    return get_duration(c, v, "timeout", 1000, "seconds", true, &cfg->http_timeout_ms) < 0 ||
                   get_string(c, v, "signing_secret", &cfg->http_signing_secret) < 0
               ? -1
               : 0;
}

static int parse_backends(ctx_t *c, yajl_val b, config_t *cfg)
{
    if (!find(b, "http") && parse_http(c, NULL, cfg) < 0) return -1; /* records its keys */
    for (size_t i = 0; b && i < b->u.object.len; i++) {
        const char *id = b->u.object.keys[i];
        yajl_val v = b->u.object.values[i];
        c->section = "backends";
        if (!YAJL_IS_OBJECT(v)) return fail(c, id, "must be an object");
        if (v->u.object.len == 0) continue; /* an empty object does not enable a backend */
        if (strcasecmp(id, "http") == 0) {
            cfg->http_enabled = true;
            if (parse_http(c, v, cfg) < 0) return -1;
        } else if (strcasecmp(id, "kafka") == 0) {
            c->section = "backends.kafka";
            cfg->kafka_enabled = true;
            free_kafka_props(cfg); /* a repeated "kafka" key: the last one wins */
            cfg->kafka_delivery_reports = true;
            cfg->kafka_props = calloc(v->u.object.len + 1, sizeof *cfg->kafka_props);
            for (size_t k = 0; k < v->u.object.len; k++)
                if (kafka_prop(c, cfg, v->u.object.keys[k], v->u.object.values[k]) < 0) return -1;
        } else {
            return fail(c, id, "is an unknown backend (known: http, kafka)");
        }
    }
    return 0;
}

/* ---------- warnings: unknown, misplaced and adopted keys ---------- */

static void warn(config_t *cfg, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void warn(config_t *cfg, const char *path, const char *fmt, ...)
{
    char msg[512];
    FORMAT_ARGS(msg, fmt);
    config_kv_t *w = realloc(cfg->warnings, (cfg->n_warnings + 1) * sizeof *w);
    if (!w) return;
    cfg->warnings = w;
    w[cfg->n_warnings].name = strdup(path);
    w[cfg->n_warnings].value = strdup(msg);
    cfg->n_warnings++;
}

static bool same_section(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static bool is_known(const ctx_t *c, const char *section, const char *key)
{
    for (size_t i = 0; i < c->n_known; i++)
        if (same_section(c->known[i].section, section) && strcasecmp(c->known[i].key, key) == 0)
            return true;
    return false;
}

/* Edit distance (insertions, deletions, substitutions; case-insensitive), capped: keys
 * longer than 63 bytes count as far from everything. */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[64];
    if (la > 63 || lb > 63) return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t sub =
                diag + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            size_t best = up + 1 < row[j - 1] + 1 ? up + 1 : row[j - 1] + 1;
            row[j] = sub < best ? sub : best;
            diag = up;
        }
    }
    return row[lb];
}

/* An unknown key at `path` (its section and key): says where it belongs, or the key of
 * the same section it is probably a misspelling of. */
static void warn_unknown(const ctx_t *c, config_t *cfg, const char *section, const char *key,
                         const char *path)
{
    char where[256] = "";
    size_t used = 0;
    for (size_t i = 0; i < c->n_known; i++) {
        const known_t *k = &c->known[i];
        if (same_section(k->section, section) || strcasecmp(k->key, key) != 0) continue;
        bool dup = false; /* looked up twice */
        for (size_t j = 0; j < i && !dup; j++)
            dup = same_section(c->known[j].section, k->section) &&
                  strcasecmp(c->known[j].key, key) == 0;
        if (dup) continue;
        const char *name = k->section ? k->section : "the top level";
        used += (size_t)snprintf(where + used, used < sizeof where ? sizeof where - used : 0,
                                 "%s%s", used ? " or " : "", name);
    }
    if (*where) {
        warn(cfg, path, "%s is ignored: it belongs in %s", path, where);
        return;
    }
    const known_t *best = NULL;
    size_t best_d = 3; /* at most 2 edits away */
    for (size_t i = 0; i < c->n_known; i++) {
        size_t d =
            same_section(c->known[i].section, section) ? distance(key, c->known[i].key) : SIZE_MAX;
        if (d < best_d) best = &c->known[i], best_d = d;
    }
    if (best)
        warn(cfg, path, "%s is not a known key and is ignored (did you mean %s%s%s?)", path,
             section ? section : "", section ? "." : "", best->key);
    else
        warn(cfg, path, "%s is not a known key and is ignored", path);
}

/* Warns about each member of obj (the section `section`, NULL: top level) that the
 * parser did not look up. */
static void check_unknown(const ctx_t *c, config_t *cfg, yajl_val obj, const char *section)
{
    for (size_t i = 0; obj && YAJL_IS_OBJECT(obj) && i < obj->u.object.len; i++) {
        const char *key = obj->u.object.keys[i];
        if (is_known(c, section, key)) continue;
        char path[512];
        snprintf(path, sizeof path, "%s%s%s", section ? section : "", section ? "." : "", key);
        warn_unknown(c, cfg, section, key, path);
    }
}

/* The reference's own config.json.sample has download_url under notifier (W33), where
 * the reference ignores it and its processor then fails. Ours uses it when
 * processor.download_url is absent, and warns either way. */
static int adopt_download_url(ctx_t *c, yajl_val p, yajl_val n, config_t *cfg)
{
    c->section = "notifier";
    if (!get(c, n, "download_url")) return 0;
    if (find(p, "download_url")) {
        warn(cfg, "notifier.download_url",
             "notifier.download_url is ignored: it belongs in processor, and "
             "processor.download_url is set");
        return 0;
    }
    warn(cfg, "notifier.download_url",
         "notifier.download_url is used as processor.download_url (as in the reference's "
         "config.json.sample); move it to processor");
    return get_string(c, n, "download_url", &cfg->download_url);
}

static void check_all_unknown(const ctx_t *c, config_t *cfg, yajl_val root)
{
    static const char *sections[] = {"redis", "api", "processor", "notifier"};
    check_unknown(c, cfg, root, NULL);
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
        check_unknown(c, cfg, find(root, sections[i]), sections[i]);
    check_unknown(c, cfg, find(find(root, "processor"), "filestorage"), "processor.filestorage");
    /* backends: unknown ids are fatal; kafka's keys are librdkafka's to judge */
    check_unknown(c, cfg, find(find(root, "backends"), "http"), "backends.http");
}

static int check_required(ctx_t *c, int components, config_t *cfg)
{
    char uerr[256];
    if (cfg->master_name && *cfg->master_name && cfg->n_sentinels == 0) {
        c->section = "redis";
        return fail(c, "sentinel", "must list at least one sentinel when redis.master_name is set");
    }
    if (components & CONFIG_PROCESSOR) {
        c->section = "processor";
        if (uri_check_request(cfg->download_url, uerr, sizeof uerr) < 0)
            return fail(c, "download_url", "must be a valid URL (Could not parse Download URL, %s)",
                        uerr);
        if (!*cfg->storage_dir)
            return fail(c, "storage_dir", "must be set to a writable directory");
        if (!cfg->fs_rootdir && strcmp(cfg->fs_type, "filesystem") == 0)
            cfg->fs_rootdir = strdup(cfg->storage_dir);
        if (strcmp(cfg->fs_type, "s3") == 0 && (!cfg->s3_bucket || !*cfg->s3_bucket)) {
            c->section = "processor.filestorage";
            return fail(c, "bucket", "must be set when type is \"s3\"");
        }
    }
    if (components & CONFIG_NOTIFIER) {
        c->section = "notifier";
        if (cfg->notifier_concurrency <= 0)
            return fail(c, "concurrency", "must be a positive integer");
        if (cfg->deletion_interval_ms == 0)
            return fail(c, "deletion_interval",
                        "must be a positive number of minutes: the time after a delivered callback "
                        "before the job's file is deleted");
        if (!cfg->http_enabled && !cfg->kafka_enabled) {
            c->section = NULL;
            return fail(c, "backends",
                        "must enable at least one backend (http or kafka) with a non-empty object");
        }
    }
    return 0;
}

/* Where yajl stops on a document it rejects: a parse without callbacks (as
 * yajl_tree_parse does, comments allowed) tells the byte offset, counted here into a
 * line and a column (both from 1, the column in bytes). */
static void syntax_error_at(const char *text, size_t len, int *line, int *col)
{
    yajl_handle h = yajl_alloc(NULL, NULL, NULL);
    yajl_config(h, yajl_allow_comments, 1);
    size_t at = len; /* a premature end: at the end */
    if (yajl_parse(h, (const unsigned char *)text, len) != yajl_status_ok) {
        /* yajl points into or just past the offending token: back to where it starts */
        at = yajl_get_bytes_consumed(h);
        if (at > len) at = len;
        size_t start = at;
        while (start > 0 && !isspace((unsigned char)text[start - 1]) &&
               !strchr(",:{}[]", text[start - 1]))
            start--;
        if (start == at && at > 0 && strchr(",:{}[]", text[at - 1])) start--;
        at = start;
    }
    yajl_free(h);
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < at && i < len; i++) {
        if (text[i] == '\n') {
            ++*line;
            *col = 1;
        } else {
            ++*col;
        }
    }
}

int config_parse(const char *json, size_t len, int components, config_t *cfg, char *err,
                 size_t errlen)
{
    static ctx_t zero;
    ctx_t c = zero;
    c.err = err;
    c.errlen = errlen;
    char perr[256] = "";
    char *text = strndup(json, len);
    yajl_val root = yajl_tree_parse(text, perr, sizeof perr);
    set_defaults(cfg);
    if (!root) {
        int line, col;
        syntax_error_at(text, strlen(text), &line, &col);
        free(text);
        char *nl = strchr(perr, '\n');
        if (nl) *nl = 0;
        return fail(&c, NULL, "invalid JSON at line %d, column %d: %s", line, col, perr);
    }
    free(text);
    yajl_val r, a, p, n, b;
    int rc = -1;
    if (!YAJL_IS_OBJECT(root))
        fail(&c, NULL, "the top level must be a JSON object");
    else if (check_object(&c, root, "redis", &r) == 0 && check_object(&c, root, "api", &a) == 0 &&
             check_object(&c, root, "processor", &p) == 0 &&
             check_object(&c, root, "notifier", &n) == 0 &&
             check_object(&c, root, "backends", &b) == 0 && parse_redis(&c, r, cfg) == 0 &&
             parse_api(&c, a, cfg) == 0 && parse_processor(&c, p, cfg) == 0 &&
             parse_notifier(&c, n, cfg) == 0 && parse_backends(&c, b, cfg) == 0 &&
             adopt_download_url(&c, p, n, cfg) == 0) {
        check_all_unknown(&c, cfg, root);
        rc = check_required(&c, components, cfg);
    }
    yajl_tree_free(root);
    return rc;
}

int config_load(const char *path, int components, config_t *cfg, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_defaults(cfg);
        snprintf(err, errlen, "config: cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 65536, len = 0, n;
    char *buf = malloc(cap);
    while ((n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    int rc = config_parse(buf, len, components, cfg, err, errlen);
    free(buf);
    for (size_t i = 0; i < cfg->n_warnings; i++)
        log_warn("config", cfg->warnings[i].value, "key=%s file=%s", log_q(cfg->warnings[i].name),
                 log_q(path));
    return rc;
}

static void free_list(char **l, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(l[i]);
    free(l);
}

void config_free(config_t *cfg)
{
    char **strs[] = {&cfg->redis_addr,     &cfg->master_name,    &cfg->redis_password,
                     &cfg->heartbeat_path, &cfg->api_auth_token, &cfg->storage_dir,
                     &cfg->fs_type,        &cfg->fs_rootdir,     &cfg->s3_bucket,
                     &cfg->s3_region,      &cfg->s3_endpoint,    &cfg->s3_access_key,
                     &cfg->s3_secret_key,  &cfg->download_url,   &cfg->http_signing_secret};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        free(*strs[i]);
    free_list(cfg->sentinels, cfg->n_sentinels);
    free_list(cfg->allow_cidrs, cfg->n_allow_cidrs);
    job_headers_free(&cfg->request_headers);
    free_kafka_props(cfg);
    for (size_t i = 0; i < cfg->n_warnings; i++) {
        free(cfg->warnings[i].name);
        free(cfg->warnings[i].value);
    }
    free(cfg->warnings);
    memset(cfg, 0, sizeof *cfg);
}

uint64_t config_test_time_unit_ms(void)
{
    return getenv("DOWNLOADER_TEST_TIME") ? 200 : 0;
}
