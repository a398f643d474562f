/* redisuv: runs a hiredis async context on a libuv loop, in place of hiredis 0.14's
 * libuv adapter, which drops poll errors: a refused connect or a reset connection then
 * hangs forever without a callback. Here a poll error makes hiredis look at the socket,
 * so the failure arrives through the connect or disconnect callback as it should. Used
 * by the Redis-access layer (store.c, sentinel.c). */
#ifndef DOWNLOADER_REDISUV_H
#define DOWNLOADER_REDISUV_H

#include <hiredis/async.h>
#include <uv.h>

/* Attaches ac to loop. REDIS_OK, or REDIS_ERR (then free ac with redisAsyncFree). */
int redisuv_attach(redisAsyncContext *ac, uv_loop_t *loop);

#endif
