/* log: the one place that writes log lines (logfmt on stderr). */
#ifndef DOWNLOADER_LOG_H
#define DOWNLOADER_LOG_H

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

#define log_debug(c, m, ...) log_write(LOG_DEBUG, c, m, __VA_ARGS__)
#define log_info(c, m, ...) log_write(LOG_INFO, c, m, __VA_ARGS__)
#define log_warn(c, m, ...) log_write(LOG_WARN, c, m, __VA_ARGS__)
#define log_error(c, m, ...) log_write(LOG_ERROR, c, m, __VA_ARGS__)

#endif
