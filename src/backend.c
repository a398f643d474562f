/* backend: the common half of the callback delivery backends (backend.h). Dispatches
 * send/close through each backend's vtable (backend_http.c, backend_kafka.c), counts
 * deliveries in flight, and owns the zero timer that hands results produced inside a
 * send or a close to their done callbacks on the next loop turn, so done is always
 * asynchronous. Closing finishes once the implementation is done and that queue is
 * empty; then the implementation is freed and the owner's `closed` runs. */
#include "backend_impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void on_base_closed(uv_handle_t *h)
{
    backend_t *b = h->data;
    void (*closed)(void *) = b->closed;
    void *arg = b->closed_arg;
    b->ops->destroy(b);
    if (closed) closed(arg);
}

static void maybe_finish(backend_t *b)
{
    if (!b->impl_closed || b->head || b->dispatching > 0 || b->base_closed) return;
    b->base_closed = true;
    uv_close((uv_handle_t *)&b->defer, on_base_closed);
}

/* Delivers the results queued so far; results queued meanwhile wait for the next turn. */
static void on_defer(uv_timer_t *t)
{
    backend_t *b = t->data;
    backend_pending_t *p = b->head;
    b->head = b->tail = NULL;
    b->dispatching++;
    while (p) {
        backend_pending_t *next = p->next;
        backend_done_fn done = p->done;
        void *arg = p->arg;
        backend_result_t res = p->res;
        if (p->release) p->release(p);
        backend_complete(b, done, arg, &res);
        p = next;
    }
    b->dispatching--;
    maybe_finish(b);
}

void backend_init(backend_t *b, const backend_ops_t *ops, uv_loop_t *loop)
{
    b->ops = ops;
    b->loop = loop;
    uv_timer_init(loop, &b->defer);
    b->defer.data = b;
}

void backend_complete(backend_t *b, backend_done_fn done, void *arg, const backend_result_t *res)
{
    b->inflight--;
    done(res, arg);
}

void backend_defer(backend_t *b, backend_pending_t *p)
{
    p->next = NULL;
    if (b->tail)
        b->tail->next = p;
    else
        b->head = p;
    b->tail = p;
    if (!uv_is_active((uv_handle_t *)&b->defer)) uv_timer_start(&b->defer, on_defer, 0, 0);
}

void backend_impl_closed(backend_t *b)
{
    b->impl_closed = true;
    maybe_finish(b);
}

void backend_fail(backend_result_t *res, bool retriable, const char *fmt, ...)
{
    memset(res, 0, sizeof *res);
    res->retriable = retriable;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->error, sizeof res->error, fmt, ap);
    va_end(ap);
}

int backend_send(backend_t *b, const char *dst, const char *key, const char *payload, size_t len,
                 backend_done_fn done, void *arg)
{
    if (!b || b->closing || !done) return -1;
    if (b->ops->send(b, dst ? dst : "", key ? key : "", payload, len, done, arg) < 0) return -1;
    b->inflight++; /* done cannot have run yet: it is never called from inside send */
    return 0;
}

int backend_inflight(const backend_t *b)
{
    return b ? b->inflight : 0;
}

void backend_close(backend_t *b, void (*closed)(void *arg), void *arg)
{
    if (!b || b->closing) return;
    b->closing = true;
    b->closed = closed;
    b->closed_arg = arg;
    b->ops->close(b);
}
