/* backend: callback delivery backends (§7.5 http, §7.6 kafka) behind one interface.
 * The notifier picks a backend per job and calls backend_send; the result arrives
 * asynchronously on the loop thread. */
#ifndef DOWNLOADER_BACKEND_H
#define DOWNLOADER_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "config.h"
#include "curlm.h"

typedef struct backend backend_t;

typedef struct {
    bool ok;             /* delivered (HTTP 2xx / Kafka delivery report without error) */
    bool retriable;      /* worth another attempt (false e.g. for Kafka unknown topic? see docs) */
    long retry_after_ms; /* from Retry-After on 429/503, 0 when none */
    long status;         /* HTTP status (0 for kafka or transport errors) */
    bool unknown_topic;  /* Kafka "Broker: Unknown topic or partition" */
    char error[512]; /* e.g. "Received Status: 500 Internal Server Error" or a transport error */
} backend_result_t;

typedef void (*backend_done_fn)(const backend_result_t *res, void *arg);

/* HTTP backend: POST JSON over curlm (timeout = backends.http.timeout, connections
 * reused, responses drained; Standard Webhooks signing when signing_secret is set). */
backend_t *backend_http_new(uv_loop_t *loop, curlm_t *m, const config_t *cfg, char *err,
                            size_t errlen);

/* Kafka backend: producer from backends.kafka properties; delivery reports served
 * from the libuv loop. NULL with err on failure (fatal at start). */
backend_t *backend_kafka_new(uv_loop_t *loop, const config_t *cfg, char *err, size_t errlen);

/* Sends one callback. dst: URL (http) or topic (kafka); key: the job id (Kafka message
 * key, webhook-id); payload: JSON. done is always called exactly once, asynchronously.
 * Returns 0, or -1 if the backend is closing (done not called). */
int backend_send(backend_t *b, const char *dst, const char *key, const char *payload, size_t len,
                 backend_done_fn done, void *arg);

/* Deliveries in flight. */
int backend_inflight(const backend_t *b);

/* Stops the backend: kafka flushes for up to 5 s; pending sends still complete
 * (with an error if they could not be delivered). `closed` runs when all is released. */
void backend_close(backend_t *b, void (*closed)(void *arg), void *arg);

#endif
