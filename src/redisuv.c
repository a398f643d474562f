/* redisuv: the glue between hiredis' async API and libuv (one uv_poll per Redis
 * connection). It exists because hiredis 0.14's own adapter ignores a poll error (libuv
 * reports a socket error, e.g. a refused connect, once and stops the handle), which
 * leaves the connection hanging with no callback at all. On an error we let hiredis
 * examine the socket: while connecting it reads SO_ERROR and calls the connect
 * callback with the failure; once connected the read fails and it disconnects.
 * Commands issued during a loop iteration are written once, from a tick at
 * the end of that iteration (tick.h), rather than after the next poll reports the socket
 * writable: one write per batch, no epoll_ctl pair, one iteration less per round trip.
 * Only when the socket buffer is full does writing wait for UV_WRITABLE. */
#include "redisuv.h"

#include "tick.h"

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdlib.h>

typedef struct {
    redisAsyncContext *ac; /* NULL once hiredis has cleaned up */
    uv_poll_t poll;
    tick_t flush; /* pending commands are written at the end of the iteration */
    int events;
    int open_handles;
    bool flushing, rewrite; /* inside on_flush; hiredis asked to write again meanwhile */
} redisuv_t;

static void on_poll(uv_poll_t *h, int status, int events)
{
    redisuv_t *e = h->data;
    if (status < 0) { /* libuv has stopped the handle */
        if (e->ac && !(e->ac->c.flags & REDIS_CONNECTED))
            redisAsyncHandleWrite(e->ac); /* connect check: SO_ERROR, connect callback */
        else if (e->ac)
            redisAsyncHandleRead(e->ac); /* the read fails: disconnect callback */
        if (e->ac && e->events) uv_poll_start(&e->poll, e->events, on_poll); /* still alive */
        return;
    }
    if (e->ac && (events & UV_READABLE)) redisAsyncHandleRead(e->ac);
    if (e->ac && (events & UV_WRITABLE)) redisAsyncHandleWrite(e->ac);
}

static void set_events(redisuv_t *e, int events)
{
    e->events = events;
    if (events)
        uv_poll_start(&e->poll, events, on_poll);
    else
        uv_poll_stop(&e->poll);
}

static void add_read(void *p)
{
    redisuv_t *e = p;
    set_events(e, e->events | UV_READABLE);
}

static void del_read(void *p)
{
    redisuv_t *e = p;
    set_events(e, e->events & ~UV_READABLE);
}

static void on_flush(tick_t *t)
{
    redisuv_t *e = t->data;
    e->flushing = true;
    e->rewrite = false;
    if (e->ac) redisAsyncHandleWrite(e->ac);
    e->flushing = false;
    /* the socket took only part of it: wait until it is writable */
    if (e->ac && e->rewrite) set_events(e, e->events | UV_WRITABLE);
}

static void add_write(void *p)
{
    redisuv_t *e = p;
    if (!(e->ac->c.flags & REDIS_CONNECTED)) /* connecting: writable means connected */
        set_events(e, e->events | UV_WRITABLE);
    else if (e->flushing)
        e->rewrite = true;
    else if (!(e->events & UV_WRITABLE))
        tick_arm(&e->flush);
}

static void del_write(void *p)
{
    redisuv_t *e = p;
    e->rewrite = false;
    tick_disarm(&e->flush);
    if (e->events & UV_WRITABLE) set_events(e, e->events & ~UV_WRITABLE);
}

static void release(redisuv_t *e)
{
    if (--e->open_handles == 0) free(e);
}

static void on_closed(uv_handle_t *h)
{
    release(h->data);
}

static void on_flush_closed(tick_t *t)
{
    release(t->data);
}

static void cleanup(void *p)
{
    redisuv_t *e = p;
    e->ac = NULL;
    uv_close((uv_handle_t *)&e->poll, on_closed);
    tick_close(&e->flush, on_flush_closed);
}

int redisuv_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    if (ac->ev.data) return REDIS_ERR;
    redisuv_t *e = calloc(1, sizeof *e);
    if (!e) return REDIS_ERR;
    if (uv_poll_init(loop, &e->poll, ac->c.fd) != 0) {
        free(e);
        return REDIS_ERR;
    }
    tick_init(loop, &e->flush, on_flush);
    e->open_handles = 2; /* the poll handle and the tick */
    e->ac = ac;
    e->poll.data = e;
    e->flush.data = e;
    ac->ev.data = e;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    return REDIS_OK;
}
