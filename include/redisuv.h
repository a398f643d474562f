/* redisuv: runs a hiredis async context on a libuv loop, in place of hiredis 0.14's
 * libuv adapter, which drops poll errors: a refused connect or a reset connection then
 * hangs forever without a callback. Here a poll error makes hiredis look at the socket,
 * so the failure arrives through the connect or disconnect callback as it should. It
 * also connects without a blocking name lookup (redisuv_dial). Used by the Redis-access
 * layer (store.c, sentinel.c). */
#ifndef DOWNLOADER_REDISUV_H
#define DOWNLOADER_REDISUV_H

#include <hiredis/async.h>
#include <uv.h>

/* Attaches ac to loop. REDIS_OK, or REDIS_ERR (then free ac with redisAsyncFree). */
int redisuv_attach(redisAsyncContext *ac, uv_loop_t *loop);

/* A connect under way: the name lookup that comes first. */
typedef struct redisuv_dial redisuv_dial_t;

/* ac: the connection, attached to the loop, its connect still under way (hiredis' connect
 * callback tells how it ends); or NULL and why (the lookup or the connect failed). */
typedef void (*redisuv_dial_fn)(redisAsyncContext *ac, const char *err, void *arg);

/* Connects to host:port without blocking the loop: hiredis looks a host name up with a
 * blocking getaddrinfo, which would stop the whole process for as long as the resolver
 * takes (seconds when DNS is away); here a name is looked up on the thread pool first
 * and the connect goes to its address (IPv4 first, as hiredis). An IP address connects
 * at once: done is called before this returns, which then returns NULL. Otherwise the
 * dial is returned and done comes later, unless redisuv_dial_abort is called first. */
redisuv_dial_t *redisuv_dial(uv_loop_t *loop, const char *host, int port, redisuv_dial_fn done,
                             void *arg);

/* done will not be called. A lookup already running on the pool finishes there (the
 * resolver cannot be interrupted) and is then discarded. */
void redisuv_dial_abort(redisuv_dial_t *d);

#endif
