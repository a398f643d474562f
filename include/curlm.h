/* curlm: drives a libcurl multi handle from libuv (curl_multi_socket_action with
 * uv_poll per socket and one uv_timer). Shared by downloads, HTTP callbacks and any
 * other transfer; each instance owns one multi handle and its connection cache. */
#ifndef DOWNLOADER_CURLM_H
#define DOWNLOADER_CURLM_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <uv.h>

typedef struct curlm curlm_t;

/* Called once when a transfer added with curlm_add finishes (any result). The easy
 * handle has already been removed from the multi; the callee owns it again. */
typedef void (*curlm_done_fn)(CURL *easy, CURLcode result, void *arg);

/* max_host_connections: 0 = unlimited. Returns NULL on allocation failure. */
curlm_t *curlm_new(uv_loop_t *loop, long max_host_connections);

/* Starts a transfer. Do not set CURLOPT_PRIVATE on the easy handle (curlm owns it).
 * Returns 0 or -1. */
int curlm_add(curlm_t *m, CURL *easy, curlm_done_fn done, void *arg);

/* Aborts a transfer without calling its done callback. Safe to call from any
 * callback except from inside curl's own callbacks for that same handle. */
void curlm_remove(curlm_t *m, CURL *easy);

/* An easy handle with default options: a reset one from the pool, or a new one. NULL
 * on allocation failure. Give it back with curlm_easy_release, not curl_easy_cleanup. */
CURL *curlm_easy(curlm_t *m);

/* Returns a handle from curlm_easy (NULL is ignored), removing its transfer first if
 * it still runs. Call it before curlm_close; the pool is freed by curlm_close. */
void curlm_easy_release(curlm_t *m, CURL *easy);

/* Number of transfers in progress. */
int curlm_active(const curlm_t *m);

/* Closes the multi handle and all uv handles; transfers still running are removed
 * without callbacks. `closed` is called when everything is released. */
void curlm_close(curlm_t *m, void (*closed)(void *arg), void *arg);

/* ---- response header lines, as CURLOPT_HEADERFUNCTION hands them over ---- */

/* A status line ("HTTP/1.1 503 Service Unavailable\r\n"): copies "503 Service
 * Unavailable" into dst and returns true; false (dst untouched) for any other line. */
bool curlm_status_line(const char *line, size_t len, char *dst, size_t dstlen);

/* "Name: value\r\n" with Name matched case-insensitively: copies the value without
 * surrounding white space into dst (truncated to fit) and returns true. */
bool curlm_header_value(const char *line, size_t len, const char *name, char *dst, size_t dstlen);

/* A Retry-After value (delay-seconds or an HTTP-date) in milliseconds from `now`,
 * capped at one day; 0 when empty, invalid or in the past. */
long curlm_retry_after_ms(const char *value, time_t now);

#endif
