/* config: config.json (§2 of the reference, plus our keys) parsed with yajl into one
 * immutable struct. Every fatal problem is reported as "config: <key> <problem>";
 * unknown and misplaced keys are warnings (config_t.warnings). */
#ifndef DOWNLOADER_CONFIG_H
#define DOWNLOADER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "job.h"

typedef struct {
    char *name;
    char *value;
} config_kv_t;

typedef struct {
    /* redis */
    char *redis_addr; /* "host:port" */
    char **sentinels;
    size_t n_sentinels;
    char *master_name;
    char *redis_password;
    uint64_t redis_command_timeout_ms;
    int redis_wait_replicas;        /* > 0: POST /download answers after WAIT <n> */
    uint64_t redis_wait_timeout_ms; /* ... <timeout> */

    /* api */
    char *heartbeat_path;
    size_t api_max_body;
    size_t api_max_header;
    uint64_t api_read_timeout_ms;
    uint64_t api_idle_timeout_ms;
    int api_max_connections;
    int api_max_connections_per_client; /* 0: httpd's default */
    uint64_t api_shutdown_grace_ms;
    char *api_auth_token;
    bool api_auth_read;
    uint64_t api_idempotency_ttl_ms; /* how long an Idempotency-Key is remembered */

    /* processor */
    char *storage_dir;
    char *fs_type; /* "filesystem" (default) or "s3" */
    char *fs_rootdir;
    char *s3_bucket, *s3_region, *s3_endpoint, *s3_access_key, *s3_secret_key;
    bool s3_path_style;
    uint64_t s3_multipart_threshold, s3_part_size; /* bytes */
    headers_t request_headers;
    uint64_t processor_stats_interval_ms;
    char *download_url;
    int max_concurrency;
    uint64_t download_lease_ms;
    uint64_t connect_timeout_ms;
    long low_speed_limit;
    uint64_t low_speed_time_ms;
    int64_t max_file_size;
    uint64_t download_retry_base_ms;
    uint64_t max_pause_ms; /* cap of an aggregation's pause after a 429/503 */
    bool adaptive_limits;  /* AIMD effective concurrency per aggregation */
    uint64_t processor_shutdown_grace_ms;
    int disk_high, disk_low;
    uint64_t disk_check_interval_ms;
    uint64_t tmp_sweep_interval_ms; /* periodic sweep of orphaned partial files */
    bool block_private_networks;
    char **allow_cidrs;
    size_t n_allow_cidrs;

    /* notifier */
    int notifier_concurrency;
    uint64_t notifier_stats_interval_ms;
    uint64_t deletion_interval_ms; /* configured in minutes */
    int callback_max_attempts;
    uint64_t callback_retry_base_ms;
    uint64_t retention_ms;
    uint64_t history_ms; /* delivered jobs answer GET /download/<id> this long (0: off) */
    uint64_t callback_lease_ms;
    uint64_t notifier_shutdown_grace_ms;

    /* backends */
    bool http_enabled;
    uint64_t http_timeout_ms;
    char *http_signing_secret;
    bool kafka_enabled;
    bool kafka_delivery_reports;
    config_kv_t *kafka_props;
    size_t n_kafka_props;

    /* What was accepted with a warning (an unknown or misplaced key, the reference's
     * notifier.download_url): name is the key's path, value the message. config_load
     * logs them; they are kept after a fatal error too. */
    config_kv_t *warnings;
    size_t n_warnings;
} config_t;

/* Which components will run: selects the keys that are required. */
enum { CONFIG_API = 1, CONFIG_PROCESSOR = 2, CONFIG_NOTIFIER = 4 };

/* Parses a JSON document. Returns 0, or -1 with "config: ..." in err. */
int config_parse(const char *json, size_t len, int components, config_t *cfg, char *err,
                 size_t errlen);

/* Reads and parses a file, and logs the warnings (component config). */
int config_load(const char *path, int components, config_t *cfg, char *err, size_t errlen);

void config_free(config_t *cfg);

/* The unit of retry backoff: 200 ms when DOWNLOADER_TEST_TIME is set, else 0 (use
 * the configured base). */
uint64_t config_test_time_unit_ms(void);

#endif
