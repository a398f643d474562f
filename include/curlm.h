/* curlm: drives a libcurl multi handle from libuv (curl_multi_socket_action with
 * uv_poll per socket and one uv_timer). Shared by downloads, HTTP callbacks and any
 * other transfer; each instance owns one multi handle and its connection cache. */
#ifndef DOWNLOADER_CURLM_H
#define DOWNLOADER_CURLM_H

#include <curl/curl.h>
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

/* Number of transfers in progress. */
int curlm_active(const curlm_t *m);

/* Closes the multi handle and all uv handles; transfers still running are removed
 * without callbacks. `closed` is called when everything is released. */
void curlm_close(curlm_t *m, void (*closed)(void *arg), void *arg);

#endif
