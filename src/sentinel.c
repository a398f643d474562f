/* sentinel: the Sentinel half of the Redis-access layer. store.c asks it where the
 * master is (sentinel_resolve) and hears from it when Sentinel moves the master; it
 * never talks to the data nodes itself. Two kinds of hiredis async connections to the
 * sentinels, both on the process's libuv loop:
 *
 *  - a short-lived lookup connection: `SENTINEL get-master-addr-by-name <name>` asked
 *    of the sentinels in list order until one knows the master (each with a timeout);
 *    when all fail, the round is retried with backoff (100 ms doubling to 5 s), and a
 *    warn line names each sentinel with its error (at once, then every 30 s while no
 *    sentinel names the master; the first answer after it is logged at info);
 *  - one long-lived subscription to `+switch-master` on the first sentinel that
 *    accepts (the next one in the list when it drops). An announcement for our master
 *    (`<name> <old-ip> <old-port> <new-ip> <new-port>`) is passed on at once; after
 *    every (re)subscription the master is looked up again, so a failover announced
 *    while we were not listening is not missed.
 *
 * A lookup that was under way while a failover was announced is asked again, so a
 * stale answer never overrides the announcement. Callbacks of a connection we have
 * dropped are recognised (the context no longer matches) and ignored. */
#include "sentinel.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "redisuv.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define QUERY_TIMEOUT_MS 2000
#define SENTINEL_PORT 26379
#define SWITCH_CHANNEL "+switch-master"

typedef struct {
    char host[256];
    int port;
} addr_t;

struct sentinel {
    uv_loop_t *loop;
    addr_t *addrs;
    size_t n;
    char *name;
    sentinel_master_fn fn;
    void *arg;
    bool closing;
    unsigned epoch; /* bumped by every +switch-master for our master */
    /* lookup */
    redisAsyncContext *q;
    redisuv_dial_t *q_dial; /* the sentinel at q_index is being looked up */
    size_t q_index;
    bool q_active; /* a lookup round is under way, or waiting for its retry */
    log_outage_t q_outage;
    char q_errors[1024]; /* "host:port: error; ..." of this round */
    unsigned q_epoch;
    uint64_t q_backoff;
    uv_timer_t q_timer; /* per-sentinel timeout, and the backoff between rounds */
    /* +switch-master subscription */
    redisAsyncContext *sub;
    redisuv_dial_t *sub_dial;
    size_t sub_index;
    bool sub_up;
    uint64_t sub_backoff;
    uv_timer_t sub_timer;
    int open_handles;
    void (*closed)(void *);
    void *closed_arg;
};

static uint64_t next_backoff(uint64_t b)
{
    b = b ? b * 2 : BACKOFF_MIN_MS;
    return b > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : b;
}

void sentinel_split_addr(const char *addr, int def_port, char *host, size_t hostlen, int *port)
{
    const char *colon = strrchr(addr, ':');
    const char *close = strchr(addr, ']');
    if (addr[0] == '[' && close) { /* [::1]:26379 */
        snprintf(host, hostlen, "%.*s", (int)(close - addr - 1), addr + 1);
        *port = close[1] == ':' ? atoi(close + 2) : def_port;
        return;
    }
    if (colon && strchr(addr, ':') != colon) colon = NULL; /* a bare IPv6 literal */
    snprintf(host, hostlen, "%.*s", colon ? (int)(colon - addr) : (int)strlen(addr), addr);
    *port = colon ? atoi(colon + 1) : def_port;
    if (!*host) snprintf(host, hostlen, "localhost");
}

/* Connects to a sentinel: done gets the context or why not (redisuv_dial: a host name is
 * looked up on the thread pool). The dial, if done is still to come, goes to *pending. */
static void dial(sentinel_t *s, const addr_t *a, redisuv_dial_fn done, redisuv_dial_t **pending)
{
    redisuv_dial_t *d = redisuv_dial(s->loop, a->host, a->port, done, s);
    if (d) *pending = d; /* else done has run (and may have dialled the next sentinel) */
}

/* A sentinel's fresh context gets its callbacks; false (and it is freed) when the first
 * command cannot even be queued. */
static bool ctx_setup(sentinel_t *s, redisAsyncContext *ac, redisConnectCallback *on_conn,
                      redisDisconnectCallback *on_disc, redisCallbackFn *on_reply, const char *cmd)
{
    ac->data = s;
    redisAsyncSetConnectCallback(ac, on_conn);
    redisAsyncSetDisconnectCallback(ac, on_disc);
    if (redisAsyncCommand(ac, on_reply, s, cmd, s->name) == REDIS_OK) return true;
    redisAsyncFree(ac);
    return false;
}

/* ---------- lookup ---------- */

static void q_next(sentinel_t *s);

/* Drops the lookup connection; its pending callbacks then see a foreign context. */
static void q_drop(sentinel_t *s)
{
    redisAsyncContext *ac = s->q;
    s->q = NULL;
    uv_timer_stop(&s->q_timer);
    if (ac) redisAsyncFree(ac);
}

static void q_round(sentinel_t *s)
{
    s->q_index = 0;
    s->q_errors[0] = 0;
    s->q_epoch = s->epoch;
    q_next(s);
}

static void on_q_retry(uv_timer_t *t)
{
    q_round(t->data);
}

/* Notes why the sentinel at q_index could not name the master, for the warn line. */
static void q_note(sentinel_t *s, const char *why)
{
    const addr_t *a = &s->addrs[s->q_index];
    size_t used = strlen(s->q_errors);
    snprintf(s->q_errors + used, sizeof s->q_errors - used, "%s%s:%d: %s", used ? "; " : "",
             a->host, a->port, why);
    log_debug("sentinel", "sentinel could not name the master", "addr=%s:%d error=%s", a->host,
              a->port, log_q(why));
}

/* The sentinel at q_index could not answer: go on with the next one. `hiredis_frees`
 * is true when hiredis is already releasing the context. */
static void q_failed(sentinel_t *s, const redisAsyncContext *ac, bool hiredis_frees,
                     const char *why)
{
    if (!ac || ac != s->q || s->closing) return;
    q_note(s, why);
    if (hiredis_frees) {
        s->q = NULL;
        uv_timer_stop(&s->q_timer);
    } else {
        q_drop(s);
    }
    s->q_index++;
    q_next(s);
}

static void on_q_timeout(uv_timer_t *t)
{
    sentinel_t *s = t->data;
    q_failed(s, s->q, false, "timeout");
}

static void on_q_connect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK) q_failed(ac->data, ac, true, ac->errstr);
}

static void on_q_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    q_failed(ac->data, ac, true, "disconnected");
}

static bool is_str(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS;
}

static void q_answered(sentinel_t *s, const char *host, int port)
{
    if (s->q_epoch != s->epoch) { /* a failover was announced meanwhile: ask again */
        q_round(s);
        return;
    }
    uint64_t down_ms, attempts;
    if (log_outage_ended(&s->q_outage, uv_now(s->loop), &down_ms, &attempts))
        log_info("sentinel", "sentinels reachable again",
                 "master_name=%s master=%s:%d down_ms=%llu attempts=%llu", s->name, host, port,
                 (unsigned long long)down_ms, (unsigned long long)attempts);
    s->q_active = false;
    s->q_backoff = 0;
    s->fn(host, port, false, s->arg);
}

static void on_q_reply(redisAsyncContext *ac, void *r, void *priv)
{
    sentinel_t *s = priv;
    redisReply *reply = r;
    if (ac != s->q || s->closing) return;
    if (!reply) {
        q_failed(s, ac, true, "connection lost");
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 || !is_str(reply->element[0]) ||
        !is_str(reply->element[1])) {
        q_failed(s, ac, false, reply->type == REDIS_REPLY_ERROR ? reply->str : "master unknown");
        return;
    }
    char host[256];
    snprintf(host, sizeof host, "%s", reply->element[0]->str);
    int port = atoi(reply->element[1]->str);
    const addr_t *a = &s->addrs[s->q_index];
    log_debug("sentinel", "master looked up", "master_name=%s addr=%s:%d via=%s:%d", s->name, host,
              port, a->host, a->port);
    q_drop(s); /* inside its callback: hiredis frees it when we return */
    q_answered(s, host, port);
}

static void on_q_dialed(redisAsyncContext *ac, const char *err, void *arg)
{
    sentinel_t *s = arg;
    s->q_dial = NULL;
    if (ac && ctx_setup(s, ac, on_q_connect, on_q_disconnect, on_q_reply,
                        "SENTINEL get-master-addr-by-name %s")) {
        s->q = ac;
        uv_timer_start(&s->q_timer, on_q_timeout, QUERY_TIMEOUT_MS, 0);
        return;
    }
    q_note(s, ac ? "cannot send" : err);
    s->q_index++;
    q_next(s);
}

static void q_next(sentinel_t *s)
{
    if (s->closing || s->q_dial) return;
    if (s->q_index < s->n) {
        dial(s, &s->addrs[s->q_index], on_q_dialed, &s->q_dial);
        return;
    }
    if (log_outage_failed(&s->q_outage, uv_now(s->loop)))
        log_warn("sentinel", "no sentinel could name the master, retrying",
                 "master_name=%s sentinels=%zu errors=%s attempts=%llu", s->name, s->n,
                 log_q(s->q_errors), (unsigned long long)s->q_outage.attempts);
    s->q_backoff = next_backoff(s->q_backoff);
    uv_timer_start(&s->q_timer, on_q_retry, s->q_backoff, 0);
}

void sentinel_resolve(sentinel_t *s)
{
    if (s->closing || s->q_active) return;
    s->q_active = true;
    q_round(s);
}

/* ---------- +switch-master subscription ---------- */

static void sub_connect(sentinel_t *s);

static void on_sub_retry(uv_timer_t *t)
{
    sub_connect(t->data);
}

/* The subscription is gone: try the next sentinel after a backoff. */
static void sub_lost(sentinel_t *s)
{
    const addr_t *a = &s->addrs[s->sub_index];
    if (s->sub_up) log_warn("sentinel", "sentinel connection lost", "addr=%s:%d", a->host, a->port);
    s->sub = NULL;
    s->sub_up = false;
    s->sub_index = (s->sub_index + 1) % s->n;
    s->sub_backoff = next_backoff(s->sub_backoff);
    uv_timer_start(&s->sub_timer, on_sub_retry, s->sub_backoff, 0);
}

static void on_sub_connect(const redisAsyncContext *ac, int status)
{
    sentinel_t *s = ac->data;
    if (status != REDIS_OK && ac == s->sub && !s->closing) sub_lost(s);
}

static void on_sub_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    sentinel_t *s = ac->data;
    if (ac == s->sub && !s->closing) sub_lost(s);
}

/* "<master> <old-ip> <old-port> <new-ip> <new-port>" for our master: passed on. */
static void on_switch(sentinel_t *s, const char *payload)
{
    char name[256], old_ip[256], old_port[16], ip[256];
    int port;
    if (sscanf(payload, "%255s %255s %15s %255s %d", name, old_ip, old_port, ip, &port) != 5 ||
        strcmp(name, s->name) != 0)
        return;
    s->epoch++;
    log_info("sentinel", "sentinel switched the master", "master_name=%s from=%s:%s to=%s:%d",
             s->name, old_ip, old_port, ip, port);
    s->fn(ip, port, true, s->arg);
}

static void on_sub_msg(redisAsyncContext *ac, void *r, void *priv)
{
    sentinel_t *s = priv;
    redisReply *m = r;
    if (ac != s->sub || s->closing || !m || m->type != REDIS_REPLY_ARRAY || m->elements < 3 ||
        !is_str(m->element[0]))
        return;
    const char *kind = m->element[0]->str;
    if (strcmp(kind, "subscribe") == 0) {
        const addr_t *a = &s->addrs[s->sub_index];
        s->sub_up = true;
        s->sub_backoff = 0;
        uv_timer_stop(&s->sub_timer);
        log_info("sentinel", "following failovers", "master_name=%s sentinel=%s:%d", s->name,
                 a->host, a->port);
        sentinel_resolve(s); /* a switch may have happened while we were not listening */
    } else if (strcmp(kind, "message") == 0 && is_str(m->element[2])) {
        on_switch(s, m->element[2]->str);
    }
}

/* No confirmed subscription in time (a sentinel that went away without a trace). */
static void on_sub_timeout(uv_timer_t *t)
{
    sentinel_t *s = t->data;
    redisAsyncContext *ac = s->sub;
    if (!ac || s->sub_up) return;
    s->sub = NULL;
    redisAsyncFree(ac); /* its callbacks now see a foreign context */
    sub_lost(s);
}

static void on_sub_dialed(redisAsyncContext *ac, const char *err, void *arg)
{
    sentinel_t *s = arg;
    s->sub_dial = NULL;
    if (!ac || !ctx_setup(s, ac, on_sub_connect, on_sub_disconnect, on_sub_msg,
                          "SUBSCRIBE " SWITCH_CHANNEL)) {
        const addr_t *a = &s->addrs[s->sub_index];
        log_debug("sentinel", "sentinel connect failed", "addr=%s:%d error=%s", a->host, a->port,
                  log_q(ac ? "cannot send" : err));
        sub_lost(s);
        return;
    }
    s->sub = ac;
    uv_timer_start(&s->sub_timer, on_sub_timeout, QUERY_TIMEOUT_MS, 0);
}

static void sub_connect(sentinel_t *s)
{
    if (s->closing || s->sub || s->sub_dial) return;
    dial(s, &s->addrs[s->sub_index], on_sub_dialed, &s->sub_dial);
}

/* ---------- life cycle ---------- */

sentinel_t *sentinel_new(uv_loop_t *loop, char *const *addrs, size_t n, const char *master_name,
                         sentinel_master_fn fn, void *arg)
{
    if (n == 0 || !master_name || !*master_name) return NULL;
    sentinel_t *s = calloc(1, sizeof *s);
    s->loop = loop;
    s->addrs = calloc(n, sizeof *s->addrs);
    s->n = n;
    for (size_t i = 0; i < n; i++)
        sentinel_split_addr(addrs[i], SENTINEL_PORT, s->addrs[i].host, sizeof s->addrs[i].host,
                            &s->addrs[i].port);
    s->name = strdup(master_name);
    s->fn = fn;
    s->arg = arg;
    uv_timer_init(loop, &s->q_timer);
    uv_timer_init(loop, &s->sub_timer);
    s->q_timer.data = s->sub_timer.data = s;
    sub_connect(s);
    return s;
}

static void on_timer_closed(uv_handle_t *h)
{
    sentinel_t *s = h->data;
    if (--s->open_handles > 0) return;
    void (*cb)(void *) = s->closed;
    void *arg = s->closed_arg;
    free(s->addrs);
    free(s->name);
    free(s);
    if (cb) cb(arg);
}

void sentinel_close(sentinel_t *s, void (*closed)(void *arg), void *arg)
{
    s->closing = true;
    s->closed = closed;
    s->closed_arg = arg;
    redisAsyncContext *q = s->q, *sub = s->sub;
    s->q = s->sub = NULL;
    if (q) redisAsyncFree(q);
    if (sub) redisAsyncFree(sub);
    if (s->q_dial) redisuv_dial_abort(s->q_dial);
    if (s->sub_dial) redisuv_dial_abort(s->sub_dial);
    s->open_handles = 2;
    uv_close((uv_handle_t *)&s->q_timer, on_timer_closed);
    uv_close((uv_handle_t *)&s->sub_timer, on_timer_closed);
}
