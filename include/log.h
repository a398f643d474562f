/* log: the one place that writes log lines (logfmt on stderr). */
#ifndef DOWNLOADER_LOG_H
#define DOWNLOADER_LOG_H

#include <stdbool.h>
#include <stdint.h>

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level_t;

/* Sets the minimum level (default info; DOWNLOADER_LOG_LEVEL=debug|info|warn|error). */
void log_init(void);
void log_set_level(log_level_t level);

/* Writes `ts=… level=… component=<component> msg="<msg>" <fmt…>`. `fmt` holds more
 * logfmt pairs, e.g. "job_id=%s status=%d"; wrap free text values in log_q(). */
void log_write(log_level_t level, const char *component, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Quotes and escapes a value for logfmt. Returns a thread-local buffer that stays
 * valid for the next 7 calls; long values are truncated. NULL becomes "". */
const char *log_q(const char *value);

/* Copies a URL with any user:password@ credentials replaced by "***@" (thread-local,
 * same lifetime rules as log_q). Use it for every URL that may carry secrets. */
const char *log_redact_url(const char *url);

/* An outage of something the process depends on (Redis, the sentinels), told at the
 * default level without flooding the log: the first failed attempt gets a warn line at
 * once, later ones at most one every LOG_OUTAGE_INTERVAL_MS, and the first success
 * after a warn an info line. The caller writes the lines (with the address and the
 * error) when these functions say so; times are the loop's milliseconds. */
#define LOG_OUTAGE_INTERVAL_MS 30000

typedef struct {
    bool active;        /* failing since since_ms */
    uint64_t since_ms;  /* first failed attempt of this outage */
    uint64_t warned_ms; /* last warn line */
    uint64_t attempts;  /* failed attempts in this outage */
} log_outage_t;

/* A failed attempt at now_ms: true when a warn line is due. */
bool log_outage_failed(log_outage_t *o, uint64_t now_ms);

/* A success at now_ms: true when it ends an outage (then an info line is due; *down_ms
 * and *attempts tell how long it lasted and how many attempts failed). Resets o. */
bool log_outage_ended(log_outage_t *o, uint64_t now_ms, uint64_t *down_ms, uint64_t *attempts);

#define log_debug(c, m, ...) log_write(LOG_DEBUG, c, m, __VA_ARGS__)
#define log_info(c, m, ...) log_write(LOG_INFO, c, m, __VA_ARGS__)
#define log_warn(c, m, ...) log_write(LOG_WARN, c, m, __VA_ARGS__)
#define log_error(c, m, ...) log_write(LOG_ERROR, c, m, __VA_ARGS__)

#endif
