/* sentinel: finds the Redis master through Redis Sentinel and follows failovers. Part
 * of the Redis-access layer: store.c is its only user, and it talks to the sentinels
 * only (never to the data nodes). Everything runs on the process's libuv loop. */
#ifndef DOWNLOADER_SENTINEL_H
#define DOWNLOADER_SENTINEL_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

typedef struct sentinel sentinel_t;

/* The master's address as the sentinels report it: the answer to sentinel_resolve
 * (switched false) or a +switch-master announcement for our master (switched true). */
typedef void (*sentinel_master_fn)(const char *host, int port, bool switched, void *arg);

/* Starts following `master_name` through the sentinels ("host:port", tried in list
 * order). Subscribes to +switch-master at once; the master is looked up on
 * sentinel_resolve. Never fails for unreachable sentinels: it keeps trying. */
sentinel_t *sentinel_new(uv_loop_t *loop, char *const *addrs, size_t n, const char *master_name,
                         sentinel_master_fn fn, void *arg);

/* Asks the sentinels (in list order, the first that knows the master answers) for the
 * master's address; the answer arrives through fn. Calls while a lookup is under way or
 * waiting for its retry backoff join it. */
void sentinel_resolve(sentinel_t *s);

/* Drops the sentinel connections; `closed` runs once everything is released. */
void sentinel_close(sentinel_t *s, void (*closed)(void *arg), void *arg);

/* Splits "host:port", "[v6]:port" or "host" (then the port is def_port). Exposed for
 * tests. */
void sentinel_split_addr(const char *addr, int def_port, char *host, size_t hostlen, int *port);

#endif
