/* backend_impl: what backend.c shares with backend_http.c and backend_kafka.c only.
 * Every backend embeds `struct backend` as its first member and fills a small vtable;
 * backend.c owns the common part: the closing flag, the in-flight count, and a queue
 * of results delivered on the next loop turn (so done never runs inside a send). */
#ifndef DOWNLOADER_BACKEND_IMPL_H
#define DOWNLOADER_BACKEND_IMPL_H

#include <stdbool.h>

#include "backend.h"

typedef struct backend_ops {
    /* Accepts one send (done must be reached exactly once, later); -1 = not accepted. */
    int (*send)(backend_t *b, const char *dst, const char *key, const char *payload, size_t len,
                backend_done_fn done, void *arg);
    /* Starts closing: every accepted send still completes; when nothing is left and the
     * implementation's own handles are closed it calls backend_impl_closed. */
    void (*close)(backend_t *b);
    /* Frees the implementation (the base's handles are closed by then). */
    void (*destroy)(backend_t *b);
} backend_ops_t;

/* A result waiting for the next loop turn. Embedded in the backends' per-send
 * structs so deferring never allocates; `release` frees that struct (may be NULL) and
 * runs before done is called. */
typedef struct backend_pending {
    struct backend_pending *next;
    backend_done_fn done;
    void *arg;
    backend_result_t res;
    void (*release)(struct backend_pending *p);
} backend_pending_t;

struct backend {
    const backend_ops_t *ops;
    uv_loop_t *loop;
    int inflight;     /* accepted sends whose done has not run yet */
    bool closing;     /* backend_close called: no more sends */
    bool impl_closed; /* the implementation has finished closing */
    int dispatching;  /* inside the deferred-result loop */
    bool base_closed; /* the defer timer is being closed */
    uv_timer_t defer; /* zero timer that delivers queued results */
    backend_pending_t *head, *tail;
    void (*closed)(void *arg);
    void *closed_arg;
};

/* Initialises the common part; cannot fail (call it after all fallible set-up). */
void backend_init(backend_t *b, const backend_ops_t *ops, uv_loop_t *loop);

/* Runs done now (only from a loop callback, never from inside send/close). */
void backend_complete(backend_t *b, backend_done_fn done, void *arg, const backend_result_t *res);

/* Queues p (done/arg/res filled in) for the next loop turn. */
void backend_defer(backend_t *b, backend_pending_t *p);

/* The implementation has nothing in flight and its handles are closed. */
void backend_impl_closed(backend_t *b);

/* Fills a failed result: res is zeroed first, error printf-formatted. */
void backend_fail(backend_result_t *res, bool retriable, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
