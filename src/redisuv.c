/* redisuv: the glue between hiredis' async API and libuv (one uv_poll per Redis
 * connection). It exists because hiredis 0.14's own adapter ignores a poll error (libuv
 * reports a socket error, e.g. a refused connect, once and stops the handle), which
 * leaves the connection hanging with no callback at all. On an error we let hiredis
 * examine the socket: while connecting it reads SO_ERROR and calls the connect
 * callback with the failure; once connected the read fails and it disconnects.
 * Commands issued during a loop iteration are written once, from a tick at
 * the end of that iteration (tick.h), rather than after the next poll reports the socket
 * writable: one write per batch, no epoll_ctl pair, one iteration less per round trip.
 * Only when the socket buffer is full does writing wait for UV_WRITABLE.
 * Reading drains the socket: hiredis' own read takes 16 KiB per readable event, so a
 * deep pipeline of large replies (claims) would take several loop iterations to reach
 * a small reply queued behind them; we read until the socket is empty (bounded per
 * event), feed hiredis' reader and dispatch every complete reply at once.
 * Reply objects come from a per-connection arena instead of one malloc per element:
 * hiredis builds one reply at a time and frees it (its root) right after the callback
 * that receives it, so freeing the root simply empties the arena. Callbacks never keep
 * a reply (hiredis frees it anyway).
 * Connecting (redisuv_dial) looks a host name up with uv_getaddrinfo on the thread pool,
 * so that hiredis' own blocking getaddrinfo only ever sees an IP address. */
#include "redisuv.h"

#include "tick.h"

#include <arpa/inet.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <stdio.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READ_CHUNK (64 * 1024)
#define READ_MAX_CHUNKS 16 /* per readable event: other handles get their turn */
#define ARENA_CHUNK (64 * 1024)

/* Exported by hiredis 0.14 (and declared by later versions): parses what the reader
 * holds and runs the callbacks of the complete replies. */
void redisProcessCallbacks(redisAsyncContext *ac);

/* Bump allocator for the reply under construction; what does not fit the chunk is
 * malloc'ed and listed in `big`. */
typedef struct big {
    struct big *next;
    max_align_t data[];
} big_t;

typedef struct {
    size_t used;
    big_t *big;
    _Alignas(max_align_t) char chunk[ARENA_CHUNK];
} arena_t;

typedef struct {
    redisAsyncContext *ac; /* NULL once hiredis has cleaned up */
    arena_t arena;
    uv_poll_t poll;
    tick_t flush; /* pending commands are written at the end of the iteration */
    int events;
    int open_handles;
    bool flushing, rewrite; /* inside on_flush; hiredis asked to write again meanwhile */
    char rbuf[READ_CHUNK];
} redisuv_t;

/* ---------- reply objects ---------- */

/* The root object carries its arena in front of it, for freeObject. */
typedef struct {
    arena_t *arena;
    max_align_t pad[];
} root_t;

static void *arena_alloc(arena_t *a, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    if (a->used + n <= ARENA_CHUNK) {
        void *p = a->chunk + a->used;
        a->used += n;
        return p;
    }
    big_t *b = malloc(sizeof *b + n);
    if (!b) return NULL;
    b->next = a->big;
    a->big = b;
    return b->data;
}

static void arena_reset(arena_t *a)
{
    for (big_t *b = a->big, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    a->big = NULL;
    a->used = 0;
}

/* A reply object of the given type, linked into its parent array. */
static redisReply *reply_new(const redisReadTask *task, int type, size_t extra)
{
    arena_t *a = task->privdata;
    redisReply *r;
    if (task->parent) {
        r = arena_alloc(a, sizeof *r + extra);
    } else {
        root_t *root = arena_alloc(a, sizeof *root + sizeof *r + extra);
        if (!root) return NULL;
        root->arena = a;
        r = (redisReply *)root->pad;
    }
    if (!r) return NULL;
    memset(r, 0, sizeof *r);
    r->type = type;
    if (task->parent) ((redisReply *)task->parent->obj)->element[task->idx] = r;
    return r;
}

static void *create_string(const redisReadTask *task, char *str, size_t len)
{
    redisReply *r = reply_new(task, task->type, len + 1);
    if (!r) return NULL;
    r->str = (char *)(r + 1);
    memcpy(r->str, str, len);
    r->str[len] = '\0';
    r->len = len;
    return r;
}

static void *create_array(const redisReadTask *task, int n)
{
    redisReply *r =
        reply_new(task, REDIS_REPLY_ARRAY, n > 0 ? (size_t)n * sizeof(redisReply *) : 0);
    if (!r) return NULL;
    if (n > 0) r->element = (redisReply **)(r + 1);
    r->elements = n > 0 ? (size_t)n : 0;
    return r;
}

static void *create_integer(const redisReadTask *task, long long v)
{
    redisReply *r = reply_new(task, REDIS_REPLY_INTEGER, 0);
    if (r) r->integer = v;
    return r;
}

static void *create_nil(const redisReadTask *task)
{
    return reply_new(task, REDIS_REPLY_NIL, 0); /* a nil bulk or array */
}

/* hiredis frees only roots: the whole reply goes at once. */
static void free_object(void *obj)
{
    root_t *root = (root_t *)((char *)obj - offsetof(root_t, pad));
    arena_reset(root->arena);
}

static redisReplyObjectFunctions arena_fns = {
    create_string, create_array, create_integer, create_nil, free_object,
};

/* ---------- reading ---------- */

/* Reads what the socket holds into hiredis' reader, then dispatches the replies. EOF,
 * a read error and anything before the connection is up go through hiredis' own read,
 * which reports them (disconnect callback). */
static void read_all(redisuv_t *e)
{
    redisContext *c = &e->ac->c;
    if (!(c->flags & REDIS_CONNECTED)) {
        redisAsyncHandleRead(e->ac);
        return;
    }
    for (int i = 0; i < READ_MAX_CHUNKS; i++) {
        ssize_t n = read(c->fd, e->rbuf, sizeof e->rbuf);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) break;
        if (n <= 0) {
            redisProcessCallbacks(e->ac); /* what arrived before the error, then the error */
            if (e->ac) redisAsyncHandleRead(e->ac);
            return;
        }
        if (redisReaderFeed(c->reader, e->rbuf, (size_t)n) != REDIS_OK) {
            redisAsyncDisconnect(e->ac);
            return;
        }
        if ((size_t)n < sizeof e->rbuf) break;
    }
    redisProcessCallbacks(e->ac);
}

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
    if (e->ac && (events & UV_READABLE)) read_all(e);
    if (e->ac && (events & UV_WRITABLE)) redisAsyncHandleWrite(e->ac);
}

/* uv_poll_start removes the fd from epoll at once and adds it back at the next poll,
 * even for the same events: hiredis asks for reading on every command, so an unchanged
 * set on an active handle is left alone (two epoll_ctl calls per command saved). */
static void set_events(redisuv_t *e, int events)
{
    if (events == e->events && (!events || uv_is_active((uv_handle_t *)&e->poll))) return;
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
    if (--e->open_handles > 0) return;
    arena_reset(&e->arena);
    free(e);
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
    ac->c.reader->fn = &arena_fns;
    ac->c.reader->privdata = &e->arena;
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

/* ---------- connecting ---------- */

struct redisuv_dial {
    uv_getaddrinfo_t req;
    uv_loop_t *loop;
    int port;
    redisuv_dial_fn done; /* NULL: aborted */
    void *arg;
};

/* Connects to an IP address (hiredis' getaddrinfo returns at once) and attaches. */
static void connect_ip(uv_loop_t *loop, const char *ip, int port, redisuv_dial_fn done, void *arg)
{
    redisAsyncContext *ac = redisAsyncConnect(ip, port);
    char err[160];
    if (!ac || ac->err) {
        snprintf(err, sizeof err, "%s", ac ? ac->errstr : "out of memory");
        if (ac) redisAsyncFree(ac);
        done(NULL, err, arg);
        return;
    }
    if (redisuv_attach(ac, loop) != REDIS_OK) {
        redisAsyncFree(ac);
        done(NULL, "out of memory", arg);
        return;
    }
    done(ac, NULL, arg);
}

static void on_lookup(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    redisuv_dial_t *d = req->data;
    const struct addrinfo *pick = NULL;
    for (const struct addrinfo *a = res; a && !pick; a = a->ai_next)
        if (a->ai_family == AF_INET) pick = a;
    for (const struct addrinfo *a = res; a && !pick; a = a->ai_next)
        if (a->ai_family == AF_INET6) pick = a;
    char ip[INET6_ADDRSTRLEN] = "", err[160];
    if (pick) {
        const void *in = pick->ai_family == AF_INET
                             ? (const void *)&((struct sockaddr_in *)pick->ai_addr)->sin_addr
                             : (const void *)&((struct sockaddr_in6 *)pick->ai_addr)->sin6_addr;
        inet_ntop(pick->ai_family, in, ip, sizeof ip);
    }
    uv_freeaddrinfo(res);
    if (d->done && *ip) {
        connect_ip(d->loop, ip, d->port, d->done, d->arg);
    } else if (d->done) {
        snprintf(err, sizeof err, "cannot look the host up: %s",
                 status < 0 ? uv_strerror(status) : "no IP address");
        d->done(NULL, err, d->arg);
    }
    free(d);
}

redisuv_dial_t *redisuv_dial(uv_loop_t *loop, const char *host, int port, redisuv_dial_fn done,
                             void *arg)
{
    unsigned char bin[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, host, bin) == 1 || inet_pton(AF_INET6, host, bin) == 1) {
        connect_ip(loop, host, port, done, arg);
        return NULL;
    }
    redisuv_dial_t *d = calloc(1, sizeof *d);
    if (!d) {
        done(NULL, "out of memory", arg);
        return NULL;
    }
    d->loop = loop;
    d->port = port;
    d->done = done;
    d->arg = arg;
    d->req.data = d;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rc = uv_getaddrinfo(loop, &d->req, on_lookup, host, NULL, &hints);
    if (rc < 0) {
        free(d);
        char err[160];
        snprintf(err, sizeof err, "cannot look the host up: %s", uv_strerror(rc));
        done(NULL, err, arg);
        return NULL;
    }
    return d;
}

void redisuv_dial_abort(redisuv_dial_t *d)
{
    d->done = NULL;
    uv_cancel((uv_req_t *)&d->req); /* still queued: on_lookup comes with UV_ECANCELED */
}
