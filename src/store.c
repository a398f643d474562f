/* store: the only module that talks to Redis. It keeps one command connection and one
 * pub/sub connection (hiredis async on the process's libuv loop), reconnects with
 * backoff, drops a connection whose replies stall (watchdog), and runs the Lua scripts
 * of src/lua (compiled in; lib.lua is prepended to each) by EVALSHA with an EVAL
 * fallback on NOSCRIPT. Everything above it uses the typed operations in store.h;
 * replies are decoded here so no Redis reply escapes this file. */
#include "store.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedded.h"
#include "log.h"
#include "redisuv.h"
#include "sentinel.h"
#include "uri.h"

#define WAKE_CHANNEL "downloader:wake"
#define MAX_LISTENERS 8
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

enum {
    S_AGGREGATIONS,
    S_CB_CLAIM,
    S_CB_FINISH,
    S_CB_RENEW,
    S_CLAIM,
    S_DL_FINISH,
    S_ENQUEUE,
    S_FAILED,
    S_HISTORY,
    S_INSTANCES,
    S_JOB_STATUS,
    S_LIVE,
    S_REAP_CLAIM,
    S_REAP_DONE,
    S_RENEW,
    S_RETRY,
    S_RETRYING,
    S_STATS_GET,
    S_STATS_PUT,
    /* operator control (issue 15) */
    S_AGGR_GET,
    S_AGGR_JOBS,
    S_AGGR_PATCH,
    S_AGGR_PURGE,
    S_CANCEL,
    S_FAILED_PAGE,
    S_FAILED_RETRY,
    S_TMP_ORPHANS, /* the processor's sweep of partial files */
    S_COUNT
};

static const char *script_names[S_COUNT] = {
    "aggregations.lua", "cb_claim.lua",   "cb_finish.lua",  "cb_renew.lua",  "claim.lua",
    "dl_finish.lua",    "enqueue.lua",    "failed.lua",     "history.lua",   "instances.lua",
    "job_status.lua",   "live.lua",       "reap_claim.lua", "reap_done.lua", "renew.lua",
    "retry.lua",        "retrying.lua",   "stats_get.lua",  "stats_put.lua", "aggr_get.lua",
    "aggr_jobs.lua",    "aggr_patch.lua", "aggr_purge.lua", "cancel.lua",    "failed_page.lua",
    "failed_retry.lua", "tmp_orphans.lua"};

typedef struct {
    char *body;
    size_t len;
    char sha[41];
} script_t;

typedef struct {
    void (*fn)();
    void *arg;
} listener_t;

typedef struct conn {
    redisAsyncContext *ac;
    redisuv_dial_t *dial; /* the host name being looked up, before ac exists */
    struct store *s;
    bool up;
    uv_timer_t retry; /* reconnect backoff */
    uint64_t backoff;
} conn_t;

struct store {
    uv_loop_t *loop;
    const config_t *cfg;
    char name[128];
    conn_t cmd, sub;
    char host[256];
    int port;
    sentinel_t *sentinel; /* Sentinel mode: where host:port comes from */
    bool master_known;    /* Sentinel mode: host:port is the master the sentinels named */
    bool ever_up;
    bool listening;      /* a wake or cancel listener: the pub/sub connection is wanted */
    log_outage_t outage; /* the command connection cannot reach host:port */
    uint64_t reconnects;
    uint64_t unreplicated;                  /* enqueues WAIT did not confirm in time */
    struct waiter *wait_queue, **wait_tail; /* enqueues for the next WAIT */
    bool wait_busy;                         /* a WAIT is under way */
    bool unsent; /* the NULL reply being handed out is for a command Redis never ran */
    bool closing;
    bool scripts_ok;
    long pending;
    uint64_t last_progress;
    uv_timer_t watchdog;
    int open_handles;
    void (*closed)(void *);
    void *closed_arg;
    script_t scripts[S_COUNT];
    listener_t wake[MAX_LISTENERS], state[MAX_LISTENERS], cancel[MAX_LISTENERS];
    int n_wake, n_state, n_cancel;
};

typedef void (*reply_fn)(store_t *s, redisReply *r, void *arg);
static void ignore_reply(store_t *s, redisReply *r, void *arg);

/* A command's arguments framed as Redis reads them (RESP: "$<len>\r\n<arg>\r\n" each),
 * back to back in one buffer after room for the "*<count>\r\n" head: the command goes to
 * hiredis whole, with no formatting per argument, and costs a few allocations rather
 * than one per argument. off/len locate each argument (a NOSCRIPT retry copies them). */
#define ARGS_HEAD 24 /* room for "*<count>\r\n", written right-aligned when sent */

typedef struct {
    char *buf;
    size_t used, size;
    size_t *off, *len;
    int n, cap;
} args_t;

typedef struct {
    store_t *s;
    int script;
    args_t a;
    reply_fn fn;
    void *arg;
    bool retried;
} call_t;

/* ---------- argument lists ---------- */

static void *grow(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) {
        log_error("store", "out of memory", "bytes=%zu", n);
        abort();
    }
    return q;
}

/* v in decimal at out (no NUL); the number of digits. */
static size_t fmt_u(char *out, unsigned long long v)
{
    char tmp[20];
    size_t k = 0;
    do
        tmp[k++] = (char)('0' + v % 10);
    while ((v /= 10) > 0);
    for (size_t i = 0; i < k; i++)
        out[i] = tmp[k - 1 - i];
    return k;
}

static void args_addn(args_t *a, const char *p, size_t n)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 16;
        a->off = grow(a->off, (size_t)a->cap * sizeof *a->off);
        a->len = grow(a->len, (size_t)a->cap * sizeof *a->len);
    }
    if (a->used == 0) a->used = ARGS_HEAD;
    size_t need = a->used + n + 25; /* "$", 20 digits, two CRLF */
    if (need > a->size) {
        a->size = a->size ? a->size * 2 : 512;
        if (a->size < need) a->size = need;
        a->buf = grow(a->buf, a->size);
    }
    char *q = a->buf + a->used;
    *q++ = '$';
    q += fmt_u(q, n);
    *q++ = '\r';
    *q++ = '\n';
    memcpy(q, p, n);
    a->off[a->n] = (size_t)(q - a->buf);
    a->len[a->n++] = n;
    q += n;
    *q++ = '\r';
    *q++ = '\n';
    a->used = (size_t)(q - a->buf);
}

static void args_addu(args_t *a, unsigned long long v)
{
    char d[20];
    args_addn(a, d, fmt_u(d, v));
}

static void args_addi(args_t *a, long long v)
{
    char d[21];
    size_t k = 0;
    if (v < 0) d[k++] = '-';
    k += fmt_u(d + k, v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v);
    args_addn(a, d, k);
}

/* The whole command, its head written just before the first argument; *len its size. */
static const char *args_frame(args_t *a, size_t *len)
{
    char head[ARGS_HEAD];
    size_t k = 0;
    head[k++] = '*';
    k += fmt_u(head + k, (unsigned long long)a->n);
    head[k++] = '\r';
    head[k++] = '\n';
    char *start = a->buf + ARGS_HEAD - k;
    memcpy(start, head, k);
    *len = a->used - (ARGS_HEAD - k);
    return start;
}

static void args_add(args_t *a, const char *p)
{
    args_addn(a, p ? p : "", p ? strlen(p) : 0);
}

static void args_addf(args_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void args_addf(args_t *a, const char *fmt, ...)
{
    char buf[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    args_addn(a, buf, n < 0 ? 0 : (size_t)n);
}

static void args_add_kv(args_t *a, const char *const *kv)
{
    for (size_t i = 0; kv && kv[i] && kv[i + 1]; i += 2) {
        args_add(a, kv[i]);
        args_add(a, kv[i + 1]);
    }
}

static void args_free(args_t *a)
{
    free(a->buf);
    free(a->off);
    free(a->len);
    memset(a, 0, sizeof *a);
}

/* ---------- scripts ---------- */

static const embed_file_t *find_lua(const char *name)
{
    for (const embed_file_t *f = embed_lua; f->name; f++) {
        const char *base = strrchr(f->name, '/');
        if (strcmp(base ? base + 1 : f->name, name) == 0) return f;
    }
    return NULL;
}

static int scripts_init(store_t *s)
{
    const embed_file_t *lib = find_lua("lib.lua");
    for (int i = 0; i < S_COUNT; i++) {
        const embed_file_t *f = find_lua(script_names[i]);
        if (!f || !lib) return -1;
        script_t *sc = &s->scripts[i];
        sc->len = lib->size + 1 + f->size;
        sc->body = malloc(sc->len + 1);
        memcpy(sc->body, lib->data, lib->size);
        sc->body[lib->size] = '\n';
        memcpy(sc->body + lib->size + 1, f->data, f->size);
        sc->body[sc->len] = 0;
        unsigned char md[SHA_DIGEST_LENGTH];
        SHA1((const unsigned char *)sc->body, sc->len, md);
        uri_hex(md, SHA_DIGEST_LENGTH, sc->sha);
    }
    return 0;
}

/* ---------- listeners ---------- */

static void notify_state(store_t *s, bool up)
{
    for (int i = 0; i < s->n_state; i++)
        ((store_state_fn)s->state[i].fn)(up, s->state[i].arg);
}

static void notify_wake(store_t *s, store_wake_t kind)
{
    for (int i = 0; i < s->n_wake; i++)
        ((store_wake_fn)s->wake[i].fn)(kind, s->wake[i].arg);
}

static void conn_connect(store_t *s, conn_t *c);

/* The pub/sub connection is opened for the first wake or cancel listener: an API-only
 * process has none and is not woken by every message published for the others. */
static void listen_start(store_t *s)
{
    if (s->listening) return;
    s->listening = true;
    conn_connect(s, &s->sub);
}

void store_on_wake(store_t *s, store_wake_fn fn, void *arg)
{
    if (s->n_wake < MAX_LISTENERS) s->wake[s->n_wake++] = (listener_t){(void (*)())fn, arg};
    listen_start(s);
}

void store_on_state(store_t *s, store_state_fn fn, void *arg)
{
    if (s->n_state < MAX_LISTENERS) s->state[s->n_state++] = (listener_t){(void (*)())fn, arg};
}

static void forget(listener_t *l, int *n, void *arg)
{
    int k = 0;
    for (int i = 0; i < *n; i++)
        if (l[i].arg != arg) l[k++] = l[i];
    *n = k;
}

void store_on_cancel(store_t *s, store_cancel_msg_fn fn, void *arg)
{
    if (s->n_cancel < MAX_LISTENERS) s->cancel[s->n_cancel++] = (listener_t){(void (*)())fn, arg};
    listen_start(s);
}

void store_forget(store_t *s, void *arg)
{
    forget(s->wake, &s->n_wake, arg);
    forget(s->state, &s->n_state, arg);
    forget(s->cancel, &s->n_cancel, arg);
}

bool store_up(const store_t *s)
{
    return s->cmd.up && !s->closing;
}

uint64_t store_reconnects(const store_t *s)
{
    return s->reconnects;
}

uint64_t store_unreplicated(const store_t *s)
{
    return s->unreplicated;
}

/* ---------- commands ---------- */

static void call_free(call_t *c)
{
    args_free(&c->a);
    free(c);
}

static void on_reply(redisAsyncContext *ac, void *r, void *priv);

static int call_send(call_t *c)
{
    store_t *s = c->s;
    if (!s->cmd.ac || !s->cmd.up) return -1;
    size_t len;
    const char *cmd = args_frame(&c->a, &len);
    if (redisAsyncFormattedCommand(s->cmd.ac, on_reply, c, cmd, len) != REDIS_OK) return -1;
    if (s->pending++ == 0) {
        s->last_progress = uv_now(s->loop);
        uv_timer_again(&s->watchdog);
    }
    return 0;
}

/* NOSCRIPT: the same call as EVAL <body>, the arguments from numkeys on unchanged. */
static void use_eval(call_t *c)
{
    script_t *sc = &c->s->scripts[c->script];
    args_t a = {0};
    args_add(&a, "EVAL");
    args_addn(&a, sc->body, sc->len);
    for (int i = 2; i < c->a.n; i++)
        args_addn(&a, c->a.buf + c->a.off[i], c->a.len[i]);
    args_free(&c->a);
    c->a = a;
}

static void on_reply(redisAsyncContext *ac, void *r, void *priv)
{
    call_t *c = priv;
    store_t *s = c->s;
    redisReply *reply = r;
    if (--s->pending == 0) uv_timer_stop(&s->watchdog);
    s->last_progress = uv_now(s->loop);
    bool unsent = false; /* reply NULL: the answer is lost, or Redis refused to run it */
    if (reply && reply->type == REDIS_REPLY_ERROR && c->script >= 0 && !c->retried &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        c->retried = true;
        use_eval(c);
        if (call_send(c) == 0) return;
        reply = NULL;
        unsent = true;
    }
    if (reply && reply->type == REDIS_REPLY_ERROR && s->sentinel &&
        strncmp(reply->str, "READONLY", 8) == 0 && ac == s->cmd.ac) {
        log_warn("store", "redis node was demoted, asking the sentinels again", "addr=%s:%d",
                 s->host, s->port);
        s->master_known = false;
        redisAsyncFree(ac); /* inside its callback: freed on return, then on_disconnect */
        reply = NULL;
        unsent = true;
    }
    if (reply && reply->type == REDIS_REPLY_ERROR)
        log_warn("store", "redis error", "script=%s error=%s",
                 c->script >= 0 ? script_names[c->script] : "-", log_q(reply->str));
    s->unsent = unsent;
    c->fn(s, reply, c->arg);
    s->unsent = false;
    call_free(c);
}

/* Sends a command (args owned by the call). Calls fn(s, NULL, arg) at once when down. */
static void run(store_t *s, int script, args_t *a, reply_fn fn, void *arg)
{
    call_t *c = calloc(1, sizeof *c);
    c->s = s;
    c->script = script;
    c->a = *a;
    c->fn = fn;
    c->arg = arg;
    memset(a, 0, sizeof *a);
    if (call_send(c) < 0) {
        s->unsent = true;
        fn(s, NULL, arg);
        s->unsent = false;
        call_free(c);
    }
}

/* Starts a script call's argument list: EVALSHA <sha> <numkeys> [keys]. */
static void script_args(store_t *s, args_t *a, int script, int nkeys, const char *const *keys)
{
    args_add(a, "EVALSHA");
    args_add(a, s->scripts[script].sha);
    args_addi(a, nkeys);
    for (int i = 0; i < nkeys; i++)
        args_add(a, keys[i]);
}

/* ---------- connections ---------- */

/* An attempt of the command connection failed: warn at once, then every
 * LOG_OUTAGE_INTERVAL_MS while it lasts (the pub/sub connection fails alike). */
static void conn_failed(store_t *s, const conn_t *c, const char *error)
{
    if (c == &s->cmd && !s->closing && log_outage_failed(&s->outage, uv_now(s->loop)))
        log_warn("store", "redis unreachable, retrying", "addr=%s:%d error=%s attempts=%llu",
                 s->host, s->port, log_q(error), (unsigned long long)s->outage.attempts);
    else
        log_debug("store", "redis connect failed", "addr=%s:%d error=%s", s->host, s->port,
                  log_q(error));
}

static void retry_cb(uv_timer_t *t)
{
    store_t *s = t->data;
    conn_connect(s, t == &s->cmd.retry ? &s->cmd : &s->sub);
}

static void schedule_reconnect(store_t *s, conn_t *c)
{
    if (s->closing) return;
    c->backoff = c->backoff ? c->backoff * 2 : BACKOFF_MIN_MS;
    if (c->backoff > BACKOFF_MAX_MS) c->backoff = BACKOFF_MAX_MS;
    uv_timer_start(&c->retry, retry_cb, c->backoff, 0);
}

static void conn_down(store_t *s, conn_t *c)
{
    bool was_up = c->up;
    c->ac = NULL;
    c->up = false;
    if (s->sentinel) s->master_known = false; /* reconnect where the sentinels say */
    if (c == &s->cmd) {
        s->pending = 0;
        uv_timer_stop(&s->watchdog);
        if (was_up) {
            if (!s->closing)
                log_warn("store", "redis connection lost", "addr=%s:%d", s->host, s->port);
            notify_state(s, false);
        }
    }
    schedule_reconnect(s, c);
}

static void on_sub_message(redisAsyncContext *ac, void *r, void *priv)
{
    (void)ac;
    store_t *s = priv;
    redisReply *m = r;
    if (!m || m->type != REDIS_REPLY_ARRAY || m->elements < 3) return;
    const char *kind = m->element[0]->str;
    if (kind && strcmp(kind, "subscribe") == 0) {
        s->sub.up = true;
        s->sub.backoff = 0;
        notify_wake(s, STORE_WAKE_ALL);
        return;
    }
    if (!kind || strcmp(kind, "message") != 0 || m->element[2]->type != REDIS_REPLY_STRING) return;
    const char *p = m->element[2]->str;
    if (strncmp(p, "cancel:", 7) == 0) { /* cancel.lua: a running job was cancelled */
        for (int i = 0; i < s->n_cancel; i++)
            ((store_cancel_msg_fn)s->cancel[i].fn)(p + 7, s->cancel[i].arg);
        return;
    }
    store_wake_t w = strcmp(p, "dl") == 0     ? STORE_WAKE_DL
                     : strcmp(p, "cb") == 0   ? STORE_WAKE_CB
                     : strcmp(p, "reap") == 0 ? STORE_WAKE_REAP
                     : strcmp(p, "bw") == 0   ? STORE_WAKE_BW
                                              : STORE_WAKE_ALL;
    notify_wake(s, w);
}

static void on_ready_reply(store_t *s, redisReply *r, void *arg)
{
    (void)arg;
    if (!r) return; /* the disconnect path handles it */
    if (r->type == REDIS_REPLY_ERROR) {
        /* connected but not serving, e.g. -LOADING while a restarted Redis reads its data:
         * close and try again after the reconnect backoff rather than wait forever */
        conn_failed(s, &s->cmd, r->str);
        if (s->cmd.ac) redisAsyncDisconnect(s->cmd.ac);
        return;
    }
    s->cmd.backoff = 0;
    if (!s->cmd.up) {
        uint64_t down_ms, attempts;
        s->cmd.up = true;
        if (s->ever_up) s->reconnects++;
        s->ever_up = true;
        if (log_outage_ended(&s->outage, uv_now(s->loop), &down_ms, &attempts))
            log_info("store", "redis reachable again", "addr=%s:%d down_ms=%llu attempts=%llu",
                     s->host, s->port, (unsigned long long)down_ms, (unsigned long long)attempts);
        else
            log_info("store", "redis connected", "addr=%s:%d", s->host, s->port);
        notify_state(s, true);
    }
}

/* Sentinel mode: a node the sentinels named may have been demoted since; use masters only. */
static void on_role_reply(store_t *s, redisReply *r, void *arg)
{
    (void)arg;
    if (!r) return;
    redisReply *e = r->type == REDIS_REPLY_ARRAY && r->elements > 0 ? r->element[0] : NULL;
    const char *role = e && e->type == REDIS_REPLY_STRING ? e->str : "";
    if (strcmp(role, "master") == 0 || !s->cmd.ac) return;
    log_warn("store", "redis node is not a master, asking the sentinels again",
             "addr=%s:%d role=%s", s->host, s->port, log_q(role));
    s->master_known = false;
    redisAsyncFree(s->cmd.ac); /* inside its callback: freed on return, then on_disconnect */
}

static void cmd_handshake(store_t *s)
{
    args_t a = {0};
    /* Sent before `up` is set (call_send checks it), so open the gate for the handshake. */
    s->cmd.up = true;
    if (s->sentinel) {
        args_add(&a, "ROLE");
        run(s, -1, &a, on_role_reply, NULL);
    }
    args_add(&a, "CLIENT");
    args_add(&a, "SETNAME");
    args_add(&a, s->name);
    run(s, -1, &a, ignore_reply, NULL);
    for (int i = 0; i < S_COUNT; i++) {
        args_add(&a, "SCRIPT");
        args_add(&a, "LOAD");
        args_addn(&a, s->scripts[i].body, s->scripts[i].len);
        run(s, -1, &a, i == S_COUNT - 1 ? on_ready_reply : ignore_reply, NULL);
    }
    s->cmd.up = false;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    store_t *s = ac->data;
    conn_t *c = ac == s->cmd.ac ? &s->cmd : &s->sub;
    uv_timer_stop(&c->retry); /* the connect timeout */
    if (status != REDIS_OK) {
        conn_failed(s, c, ac->errstr);
        conn_down(s, c); /* hiredis frees the context after this callback */
        return;
    }
    if (s->cfg->redis_password && *s->cfg->redis_password)
        redisAsyncCommand(c->ac, NULL, NULL, "AUTH %s", s->cfg->redis_password);
    if (c == &s->cmd)
        cmd_handshake(s);
    else
        redisAsyncCommand(c->ac, on_sub_message, s, "SUBSCRIBE " WAKE_CHANNEL);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    store_t *s = ac->data;
    conn_t *c = ac == s->cmd.ac ? &s->cmd : &s->sub;
    conn_down(s, c);
}

static void conn_drop(store_t *s, conn_t *c);

/* A connect that takes longer than redis.command_timeout (an address that went away
 * without a trace) is given up and retried. */
static void connect_timeout_cb(uv_timer_t *t)
{
    store_t *s = t->data;
    conn_t *c = t == &s->cmd.retry ? &s->cmd : &s->sub;
    if (!c->ac || (c->ac->c.flags & REDIS_CONNECTED)) return;
    conn_failed(s, c, "connect timed out (redis.command_timeout)");
    conn_drop(s, c);
}

static void on_dialed(redisAsyncContext *ac, const char *err, void *arg)
{
    conn_t *c = arg;
    store_t *s = c->s;
    c->dial = NULL;
    if (!ac) {
        conn_failed(s, c, err);
        schedule_reconnect(s, c);
        return;
    }
    ac->data = s;
    c->ac = ac;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    uv_timer_start(&c->retry, connect_timeout_cb, s->cfg->redis_command_timeout_ms, 0);
}

/* A host name is looked up first, on the thread pool (redisuv_dial); the connect
 * timeout starts with the connect. */
static void conn_open(store_t *s, conn_t *c)
{
    redisuv_dial_t *d = redisuv_dial(s->loop, s->host, s->port, on_dialed, c);
    if (d) c->dial = d; /* else on_dialed has run */
}

static void conn_connect(store_t *s, conn_t *c)
{
    if (s->closing || c->ac || c->dial || (c == &s->sub && !s->listening)) return;
    if (s->sentinel && !s->master_known) {
        sentinel_resolve(s->sentinel); /* on_master connects */
        return;
    }
    conn_open(s, c);
}

/* ---------- sentinel ---------- */

/* Drops a connection now; listeners hear of it as of any lost connection. */
static void conn_drop(store_t *s, conn_t *c)
{
    if (c->dial) { /* still looking the old host up */
        redisuv_dial_abort(c->dial);
        c->dial = NULL;
        conn_down(s, c);
        return;
    }
    redisAsyncContext *ac = c->ac;
    if (!ac) return;
    bool connected = (ac->c.flags & REDIS_CONNECTED) != 0;
    redisAsyncFree(ac); /* connected: pending calls get NULL replies, then on_disconnect */
    if (!connected) conn_down(s, c); /* a connect in progress ends silently */
}

static void conn_open_now(store_t *s, conn_t *c)
{
    if (s->closing || c->ac || c->dial || (c == &s->sub && !s->listening)) return;
    uv_timer_stop(&c->retry);
    conn_open(s, c);
}

/* The sentinels named the master (switched: a failover announcement). Both connections
 * move to it together, on this loop: commands sent meanwhile fail with STORE_DOWN, so
 * no command can reach the old master once the switch is known (no W24). */
static void on_master(const char *host, int port, bool switched, void *arg)
{
    store_t *s = arg;
    if (s->closing) return;
    if (strcmp(host, s->host) != 0 || port != s->port) {
        const char *msg = switched ? "sentinel switched the redis master" : "redis master moved";
        if (*s->host) log_info("store", msg, "from=%s:%d to=%s:%d", s->host, s->port, host, port);
        conn_drop(s, &s->cmd);
        conn_drop(s, &s->sub);
        snprintf(s->host, sizeof s->host, "%s", host);
        s->port = port;
    }
    s->master_known = true;
    conn_open_now(s, &s->cmd);
    conn_open_now(s, &s->sub);
}

static void watchdog_cb(uv_timer_t *t)
{
    store_t *s = t->data;
    uint64_t limit = s->cfg->redis_command_timeout_ms;
    if (s->pending <= 0 || !s->cmd.ac) return;
    if (uv_now(s->loop) - s->last_progress < limit) return;
    if (s->cmd.up) { /* it was serving: an outage starts, told at once */
        log_warn("store", "redis stopped answering, dropping the connection",
                 "addr=%s:%d pending=%ld timeout_ms=%llu", s->host, s->port, s->pending,
                 (unsigned long long)limit);
        log_outage_failed(&s->outage, uv_now(s->loop));
    } else { /* a reconnect's handshake stalls: one more failed attempt */
        conn_failed(s, &s->cmd, "no answer within redis.command_timeout");
    }
    redisAsyncFree(s->cmd.ac); /* pending callbacks get NULL replies, then on_disconnect */
}

static void split_addr(store_t *s, const char *addr)
{
    const char *colon = strrchr(addr, ':');
    size_t hl = colon ? (size_t)(colon - addr) : strlen(addr);
    if (hl >= sizeof s->host) hl = sizeof s->host - 1;
    memcpy(s->host, addr, hl);
    s->host[hl] = 0;
    if (s->host[0] == '[') { /* [::1]:6379 */
        memmove(s->host, s->host + 1, hl);
        char *e = strchr(s->host, ']');
        if (e) *e = 0;
    }
    if (!*s->host) snprintf(s->host, sizeof s->host, "localhost");
    s->port = colon ? atoi(colon + 1) : 6379;
}

store_t *store_new(uv_loop_t *loop, const config_t *cfg, const char *name)
{
    store_t *s = calloc(1, sizeof *s);
    s->loop = loop;
    s->cfg = cfg;
    s->wait_tail = &s->wait_queue;
    snprintf(s->name, sizeof s->name, "%s", name);
    if (scripts_init(s) < 0) {
        log_error("store", "embedded lua scripts missing", "");
        free(s);
        return NULL;
    }
    uv_timer_init(loop, &s->cmd.retry);
    uv_timer_init(loop, &s->sub.retry);
    uv_timer_init(loop, &s->watchdog);
    s->cmd.retry.data = s->sub.retry.data = s->watchdog.data = s;
    s->cmd.s = s->sub.s = s;
    uint64_t wd = cfg->redis_command_timeout_ms / 2;
    uv_timer_start(&s->watchdog, watchdog_cb, wd ? wd : 1, wd ? wd : 1);
    uv_timer_stop(&s->watchdog);
    if (cfg->master_name && *cfg->master_name && cfg->n_sentinels > 0)
        s->sentinel =
            sentinel_new(loop, cfg->sentinels, cfg->n_sentinels, cfg->master_name, on_master, s);
    else
        split_addr(s, cfg->redis_addr);
    conn_connect(s, &s->cmd);
    return s;
}

static void release(store_t *s)
{
    if (--s->open_handles > 0) return;
    for (int i = 0; i < S_COUNT; i++)
        free(s->scripts[i].body);
    void (*cb)(void *) = s->closed;
    void *arg = s->closed_arg;
    free(s);
    if (cb) cb(arg);
}

static void on_handle_closed(uv_handle_t *h)
{
    release(h->data);
}

static void on_sentinel_closed(void *arg)
{
    release(arg);
}

void store_close(store_t *s, void (*closed)(void *arg), void *arg)
{
    s->closing = true;
    s->closed = closed;
    s->closed_arg = arg;
    if (s->cmd.ac) redisAsyncFree(s->cmd.ac);
    if (s->sub.ac) redisAsyncFree(s->sub.ac);
    if (s->cmd.dial) redisuv_dial_abort(s->cmd.dial);
    if (s->sub.dial) redisuv_dial_abort(s->sub.dial);
    s->open_handles = 3 + (s->sentinel != NULL);
    if (s->sentinel) sentinel_close(s->sentinel, on_sentinel_closed, s);
    uv_close((uv_handle_t *)&s->cmd.retry, on_handle_closed);
    uv_close((uv_handle_t *)&s->sub.retry, on_handle_closed);
    uv_close((uv_handle_t *)&s->watchdog, on_handle_closed);
}

/* ---------- reply helpers ---------- */

static store_rc_t reply_rc(redisReply *r)
{
    if (!r) return STORE_DOWN;
    if (r->type == REDIS_REPLY_ERROR) return STORE_ERROR;
    return STORE_OK;
}

static long long reply_ll(redisReply *r)
{
    if (!r) return 0;
    if (r->type == REDIS_REPLY_INTEGER) return r->integer;
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
        return strtoll(r->str, NULL, 10);
    return 0;
}

static const char *reply_str(redisReply *r)
{
    if (r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)) return r->str;
    return "";
}

/* Collects the string elements [from, end) of an array reply as a C array. */
static const char **reply_strings(redisReply *r, size_t from, size_t *n)
{
    size_t count = r && r->type == REDIS_REPLY_ARRAY && r->elements > from ? r->elements - from : 0;
    const char **out = calloc(count + 1, sizeof *out);
    for (size_t i = 0; i < count; i++) {
        redisReply *e = r->element[from + i];
        out[i] = e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS ? e->str : "";
    }
    *n = count;
    return out;
}

typedef struct {
    void *done;
    void *arg;
} cb_t;

static cb_t *cb_new(void *done, void *arg)
{
    cb_t *c = malloc(sizeof *c);
    c->done = done;
    c->arg = arg;
    return c;
}

/* ---------- job hash encoding ---------- */

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

void store_job_decode(const char *const *kv, size_t n, job_t *job)
{
    for (size_t i = 0; i + 1 < n; i += 2) {
        const char *k = kv[i], *v = kv[i + 1] ? kv[i + 1] : "";
        if (strcmp(k, "ID") == 0)
            snprintf(job->id, sizeof job->id, "%s", v);
        else if (strcmp(k, "URL") == 0)
            job->url = xstrdup(v);
        else if (strcmp(k, "AggrID") == 0)
            job->aggr_id = xstrdup(v);
        else if (strcmp(k, "MaxRetries") == 0)
            job->max_retries = strcmp(v, "null") && *v ? atoi(v) : -1;
        else if (strcmp(k, "DownloadState") == 0)
            job->download_state =
                (dl_state_t)(job_dl_state_parse(v) < 0 ? 0 : job_dl_state_parse(v));
        else if (strcmp(k, "DownloadCount") == 0)
            job->download_count = atoi(v);
        else if (strcmp(k, "DownloadMeta") == 0)
            job->download_meta = xstrdup(v);
        else if (strcmp(k, "CallbackState") == 0)
            job->callback_state =
                (cb_state_t)(job_cb_state_parse(v) < 0 ? 0 : job_cb_state_parse(v));
        else if (strcmp(k, "CallbackType") == 0)
            job->callback_type = xstrdup(v);
        else if (strcmp(k, "CallbackDst") == 0)
            job->callback_dst = xstrdup(v);
        else if (strcmp(k, "CallbackURL") == 0)
            job->callback_url = xstrdup(v);
        else if (strcmp(k, "DownloadURL") == 0)
            job->download_url = xstrdup(v);
        else if (strcmp(k, "CallbackMeta") == 0)
            job->callback_meta = xstrdup(v);
        else if (strcmp(k, "CallbackCount") == 0)
            job->callback_count = atoi(v);
        else if (strcmp(k, "Extra") == 0)
            job->extra = xstrdup(v);
        else if (strcmp(k, "ResponseCode") == 0)
            job->response_code = atoi(v);
        else if (strcmp(k, "MimeType") == 0)
            job->mime_type = xstrdup(v);
        else if (strcmp(k, "ExtractImageSize") == 0)
            job->extract_image_size = strcmp(v, "1") == 0;
        else if (strcmp(k, "ImageSize") == 0)
            job->image_size = xstrdup(v);
        else if (strcmp(k, "DownloadTimeout") == 0)
            job->download_timeout = atol(v);
        else if (strcmp(k, "RequestHeaders") == 0)
            job_headers_from_json(v, &job->request_headers);
        else if (strcmp(k, "S3Bucket") == 0)
            job->s3_bucket = xstrdup(v);
        else if (strcmp(k, "S3Region") == 0)
            job->s3_region = xstrdup(v);
        else if (strcmp(k, "Checksum") == 0)
            job->checksum = xstrdup(v);
        else if (strcmp(k, "Sha256") == 0)
            job->sha256 = xstrdup(v);
        else if (strcmp(k, "Size") == 0)
            job->size = atoll(v);
        else if (strcmp(k, "AggrBandwidth") == 0)
            job->aggr_bandwidth = atoll(v);
        else if (strcmp(k, "StartedAt") == 0) /* claim.lua returns the hash as it was */
            job->tried = true;
    }
}

static void add_field(args_t *a, const char *k, const char *v)
{
    if (!v || !*v) return;
    args_add(a, k);
    args_add(a, v);
}

static void job_encode(args_t *a, const job_t *j)
{
    add_field(a, "ID", j->id);
    add_field(a, "URL", j->url);
    add_field(a, "AggrID", j->aggr_id);
    if (j->max_retries >= 0) {
        args_add(a, "MaxRetries");
        args_addi(a, j->max_retries);
    }
    add_field(a, "DownloadState", "Pending");
    add_field(a, "CallbackURL", j->callback_url);
    add_field(a, "CallbackType", j->callback_type);
    add_field(a, "CallbackDst", j->callback_dst);
    add_field(a, "Extra", j->extra);
    add_field(a, "MimeType", j->mime_type);
    if (j->extract_image_size) add_field(a, "ExtractImageSize", "1");
    if (j->download_timeout > 0) {
        args_add(a, "DownloadTimeout");
        args_addi(a, j->download_timeout);
    }
    if (j->request_headers.n) {
        char *h = job_headers_to_json(&j->request_headers);
        add_field(a, "RequestHeaders", h);
        free(h);
    }
    add_field(a, "S3Bucket", j->s3_bucket);
    add_field(a, "S3Region", j->s3_region);
    add_field(a, "Checksum", j->checksum);
    if (j->aggr_bandwidth > 0) { /* enqueue.lua moves it onto the aggregation */
        args_add(a, "AggrBandwidth");
        args_addi(a, j->aggr_bandwidth);
    }
}

/* ---------- api operations ---------- */

static void done_reply(store_t *s, redisReply *r, void *arg)
{
    (void)s;
    cb_t *c = arg;
    store_rc_t rc = reply_rc(r);
    if (rc == STORE_OK && r->type == REDIS_REPLY_INTEGER && r->integer == 0) rc = STORE_CONFLICT;
    if (rc == STORE_OK && r->type == REDIS_REPLY_INTEGER && r->integer == 2) rc = STORE_CANCELLED;
    if (c->done)
        ((store_done_fn)c->done)(rc, r && r->type == REDIS_REPLY_ERROR ? r->str : NULL, c->arg);
    free(c);
}

/* redis.wait_replicas: an enqueue is answered once the replicas have it (WAIT), or
 * after wait_timeout; a timeout still answers OK (the master has the job) but is logged
 * and counted; a connection lost meanwhile answers DOWN. WAIT blocks the connection, so
 * enqueues are grouped: one WAIT at a time covers every enqueue answered before it was
 * sent, and the enqueues answered meanwhile wait for the next one (group commit). */
typedef struct waiter {
    cb_t *c;
    store_rc_t rc; /* the enqueue's own outcome (OK or REPLAYED) */
    struct waiter *next;
} waiter_t;

static void wait_flush(store_t *s);

static void wait_reply(store_t *s, redisReply *r, void *arg)
{
    waiter_t *batch = arg;
    s->wait_busy = false;
    bool short_ = r && (r->type != REDIS_REPLY_INTEGER || r->integer < s->cfg->redis_wait_replicas);
    size_t n = 0;
    for (waiter_t *w = batch, *next; w; w = next) {
        next = w->next;
        /* no answer to WAIT: the master has the job, but a failover may lose it */
        ((store_done_fn)w->c->done)(r ? w->rc : STORE_UNKNOWN, NULL, w->c->arg);
        free(w->c);
        free(w);
        n++;
    }
    if (short_) {
        s->unreplicated += n;
        log_warn("store", "enqueued jobs not confirmed by the replicas in time",
                 "jobs=%zu replicas=%lld wanted=%d", n,
                 r->type == REDIS_REPLY_INTEGER ? r->integer : -1, s->cfg->redis_wait_replicas);
    }
    if (s->wait_queue) wait_flush(s);
}

static void wait_flush(store_t *s)
{
    /* WAIT blocks this connection: keep it well below the watchdog's limit */
    uint64_t t = s->cfg->redis_wait_timeout_ms, cap = s->cfg->redis_command_timeout_ms / 2;
    waiter_t *batch = s->wait_queue;
    s->wait_queue = NULL;
    s->wait_tail = &s->wait_queue;
    s->wait_busy = true;
    args_t a = {0};
    args_add(&a, "WAIT");
    args_addi(&a, s->cfg->redis_wait_replicas);
    args_addu(&a, (t < cap ? t : cap ? cap : 1));
    run(s, -1, &a, wait_reply, batch);
}

/* An enqueue's callback and the job whose id a replay overwrites (cb_t first: freed as
 * one). */
typedef struct {
    cb_t c;
    job_t *job;
} enq_cb_t;

static void enqueue_reply(store_t *s, redisReply *r, void *arg)
{
    enq_cb_t *e = arg;
    cb_t *c = &e->c;
    store_rc_t rc = !r && !s->unsent ? STORE_UNKNOWN : reply_rc(r);
    if (rc == STORE_OK && r->type == REDIS_REPLY_ARRAY) { /* {"replay"|"mismatch", id} */
        bool replay = r->elements == 2 && strcmp(reply_str(r->element[0]), "replay") == 0;
        rc = replay ? STORE_REPLAYED : STORE_CONFLICT;
        if (replay) snprintf(e->job->id, sizeof e->job->id, "%s", reply_str(r->element[1]));
    } else if (rc == STORE_OK && reply_ll(r) == 0) {
        rc = STORE_EXISTS;
    }
    if ((rc == STORE_OK || rc == STORE_REPLAYED) && s->cfg->redis_wait_replicas > 0) {
        waiter_t *w = calloc(1, sizeof *w);
        w->c = c;
        w->rc = rc;
        *s->wait_tail = w;
        s->wait_tail = &w->next;
        if (!s->wait_busy) wait_flush(s);
        return;
    }
    ((store_done_fn)c->done)(rc, r && r->type == REDIS_REPLY_ERROR ? r->str : NULL, c->arg);
    free(c);
}

void store_enqueue(store_t *s, job_t *job, const store_idem_t *idem, store_done_fn done, void *arg)
{
    args_t a = {0};
    char ik[300]; /* the api allows at most 255 characters */
    const char *keys[] = {ik};
    if (idem) snprintf(ik, sizeof ik, "idem:%s", idem->key);
    script_args(s, &a, S_ENQUEUE, idem ? 1 : 0, keys);
    args_add(&a, job->id);
    args_add(&a, job->aggr_id);
    args_addi(&a, job->aggr_limit);
    args_add(&a, job->aggr_proxy ? "1" : "0");
    args_add(&a, job->aggr_proxy);
    args_addf(&a, "%.17g", job->aggr_rate);
    if (idem) {
        args_add(&a, idem->digest);
        args_addu(&a, idem->ttl_ms);
    }
    job_encode(&a, job);
    enq_cb_t *e = malloc(sizeof *e);
    e->c = (cb_t){(void *)done, arg};
    e->job = job;
    run(s, S_ENQUEUE, &a, enqueue_reply, e);
}

static void retry_reply(store_t *s, redisReply *r, void *arg)
{
    (void)s;
    cb_t *c = arg;
    store_retry_fn done = (store_retry_fn)c->done;
    store_rc_t rc = reply_rc(r);
    if (rc == STORE_OK && (r->type != REDIS_REPLY_ARRAY || r->elements < 1)) rc = STORE_ERROR;
    if (rc != STORE_OK) {
        done(rc, NULL, NULL, c->arg);
    } else if (strcmp(reply_str(r->element[0]), "notfound") == 0) {
        done(STORE_NOTFOUND, NULL, NULL, c->arg);
    } else if (strcmp(reply_str(r->element[0]), "state") == 0) {
        size_t n;
        const char **kv = reply_strings(r, 1, &n);
        job_t job;
        memset(&job, 0, sizeof job);
        job.max_retries = -1;
        store_job_decode(kv, n, &job);
        const char *state = "";
        for (size_t i = 0; i + 1 < n; i += 2)
            if (strcmp(kv[i], "CallbackState") == 0) state = kv[i + 1];
        done(STORE_CONFLICT, &job, state, c->arg);
        job_free(&job);
        free(kv);
    } else {
        done(STORE_OK, NULL, NULL, c->arg);
    }
    free(c);
}

void store_retry_callback(store_t *s, const char *id, store_retry_fn done, void *arg)
{
    args_t a = {0};
    script_args(s, &a, S_RETRY, 0, NULL);
    args_add(&a, id);
    run(s, S_RETRY, &a, retry_reply, cb_new((void *)done, arg));
}

static void hash_reply(store_t *s, redisReply *r, void *arg)
{
    (void)s;
    cb_t *c = arg;
    store_hash_fn done = (store_hash_fn)c->done;
    store_rc_t rc = reply_rc(r);
    if (rc == STORE_OK && r->type != REDIS_REPLY_ARRAY) rc = STORE_ERROR;
    if (rc == STORE_OK && r->elements == 0) rc = STORE_NOTFOUND;
    size_t n = 0;
    const char **kv = rc == STORE_OK ? reply_strings(r, 0, &n) : NULL;
    done(rc, kv, n, -1, c->arg);
    free(kv);
    free(c);
}

static void ignore_reply(store_t *s, redisReply *r, void *arg)
{
    (void)s, (void)r, (void)arg;
}

/* The throttle view {rate, effective limit, paused until ms, waiting} of an
 * aggregation, as throttle_view in lib.lua returns it, from elements e[0..3]. */
static void throttle_from(store_aggr_t *a, redisReply **e)
{
    a->rate = strtod(reply_str(e[0]), NULL);
    a->effective = (long)reply_ll(e[1]);
    a->paused_until_ms = reply_ll(e[2]);
    a->waiting = reply_str(e[3]);
}

static void status_reply(store_t *s, redisReply *r, void *arg)
{
    (void)s;
    cb_t *c = arg;
    store_status_fn done = (store_status_fn)c->done;
    store_rc_t rc = reply_rc(r);
    if (rc == STORE_OK &&
        (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
         r->element[0]->type != REDIS_REPLY_ARRAY || r->element[2]->type != REDIS_REPLY_ARRAY))
        rc = STORE_ERROR;
    if (rc == STORE_OK && r->element[0]->elements == 0) rc = STORE_NOTFOUND;
    size_t n = 0;
    const char **kv = rc == STORE_OK ? reply_strings(r->element[0], 0, &n) : NULL;
    store_aggr_t aggr = {0}, *ap = NULL;
    if (rc == STORE_OK && r->element[2]->elements == 5) {
        ap = &aggr;
        aggr.limit = (long)reply_ll(r->element[2]->element[0]);
        throttle_from(ap, r->element[2]->element + 1);
    }
    done(rc, kv, n, rc == STORE_OK ? reply_ll(r->element[1]) : -1, ap, c->arg);
    free(kv);
    free(c);
}

void store_job_status(store_t *s, const char *id, store_status_fn done, void *arg)
{
    args_t a = {0};
    script_args(s, &a, S_JOB_STATUS, 0, NULL);
    args_add(&a, id);
    run(s, S_JOB_STATUS, &a, status_reply, cb_new((void *)done, arg));
}

void store_stats_get(store_t *s, const char *component, store_hash_fn done, void *arg)
{
    args_t a = {0};
    script_args(s, &a, S_STATS_GET, 0, NULL);
    args_add(&a, component);
    run(s, S_STATS_GET, &a, hash_reply, cb_new((void *)done, arg));
}

static void aggrs_reply(store_t *s, redisReply *r, void *arg)
{
    (void)s;
    cb_t *c = arg;
    store_rc_t rc = reply_rc(r);
    if (rc == STORE_OK && r->type != REDIS_REPLY_ARRAY) rc = STORE_ERROR;
    size_t n = rc == STORE_OK ? r->elements / 10 : 0;
    store_aggr_t *list = calloc(n + 1, sizeof *list);
    for (size_t i = 0; i < n; i++) {
        redisReply **e = r->element + i * 10;
        list[i] = (store_aggr_t){.id = reply_str(e[0]),
                                 .limit = (long)reply_ll(e[1]),
                                 .proxy = reply_str(e[2]),
                                 .ready = reply_ll(e[3]),
                                 .delayed = reply_ll(e[4]),
                                 .inflight = reply_ll(e[5])};
        throttle_from(&list[i], e + 6);
    }
    ((store_aggrs_fn)c->done)(rc, list, n, c->arg);
    free(list);
    free(c);
}

int store_aggr_cmp(const void *x, const void *y)
{
    const store_aggr_t *a = x, *b = y;
    long long sa = a->ready + a->delayed, sb = b->ready + b->delayed;
    if (sa != sb) return sa > sb ? -1 : 1;
    if (a->inflight != b->inflight) return a->inflight > b->inflight ? -1 : 1;
    return strcmp(a->id, b->id);
}

void store_aggregations(store_t *s, size_t max, store_aggrs_fn done, void *arg)
{
    args_t a = {0};
    script_args(s, &a, S_AGGREGATIONS, 0, NULL);
    args_addu(&a, max);
    run(s, S_AGGREGATIONS, &a, aggrs_reply, cb_new((void *)done, arg));
}

static void failed_reply(store_t *s, redisReply *r, void *arg)
{
    (void)s;
    cb_t *c = arg;
    store_rc_t rc = reply_rc(r);
    if (rc == STORE_OK && r->type != REDIS_REPLY_ARRAY) rc = STORE_ERROR;
    size_t n = rc == STORE_OK ? r->elements / 5 : 0;
    store_failed_t *list = calloc(n + 1, sizeof *list);
    for (size_t i = 0; i < n; i++) {
        redisReply **e = r->element + i * 5;
        list[i] = (store_failed_t){reply_str(e[0]), reply_str(e[1]), reply_str(e[2]),
                                   reply_str(e[3]), reply_ll(e[4])};
    }
    ((store_failed_fn)c->done)(rc, list, n, c->arg);
    free(list);
    free(c);
}

void store_failed(store_t *s, size_t max, store_failed_fn done, void *arg)
{
    args_t a = {0};
    script_args(s, &a, S_FAILED, 0, NULL);
    args_addu(&a, max);
    run(s, S_FAILED, &a, failed_reply, cb_new((void *)done, arg));
}

static void retrying_reply(store_t *s, redisReply *r, void *arg)
{
    (void)s;
    cb_t *c = arg;
    store_rc_t rc = reply_rc(r);
    if (rc == STORE_OK && (r->type != REDIS_REPLY_ARRAY || r->elements < 2)) rc = STORE_ERROR;
    size_t n = rc == STORE_OK ? (r->elements - 2) / 6 : 0;
    long long total = rc == STORE_OK ? reply_ll(r->element[0]) : 0;
    long long now = rc == STORE_OK ? reply_ll(r->element[1]) : 0;
    store_retrying_t *list = calloc(n + 1, sizeof *list);
    for (size_t i = 0; i < n; i++) {
        redisReply **e = r->element + 2 + i * 6;
        list[i] = (store_retrying_t){reply_str(e[0]), reply_str(e[1]), reply_str(e[2]),
                                     reply_ll(e[3]),  reply_str(e[4]), reply_ll(e[5])};
    }
    ((store_retrying_fn)c->done)(rc, total, now, list, n, c->arg);
    free(list);
    free(c);
}

void store_retrying(store_t *s, size_t max, store_retrying_fn done, void *arg)
{
    static const char *const keys[] = {"cb:delayed"};
    args_t a = {0};
    script_args(s, &a, S_RETRYING, 1, keys);
    args_addu(&a, max);
    run(s, S_RETRYING, &a, retrying_reply, cb_new((void *)done, arg));
}

static void instances_reply(store_t *s, redisReply *r, void *arg)
{
    (void)s;
    cb_t *c = arg;
    store_rc_t rc = reply_rc(r);
    if (rc == STORE_OK && (r->type != REDIS_REPLY_ARRAY || r->elements < 1)) rc = STORE_ERROR;
    size_t n = rc == STORE_OK ? r->elements - 1 : 0;
    store_instance_t *list = calloc(n + 1, sizeof *list);
    for (size_t i = 0; i < n; i++) {
        redisReply *e = r->element[i + 1];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3) continue;
        list[i] = (store_instance_t){reply_str(e->element[0]), reply_ll(e->element[1]),
                                     reply_str(e->element[2])};
    }
    ((store_instances_fn)c->done)(rc, rc == STORE_OK ? reply_ll(r->element[0]) : 0, list, n,
                                  c->arg);
    free(list);
    free(c);
}

void store_instances(store_t *s, store_instances_fn done, void *arg)
{
    args_t a = {0};
    script_args(s, &a, S_INSTANCES, 0, NULL);
    run(s, S_INSTANCES, &a, instances_reply, cb_new((void *)done, arg));
}

typedef struct {
    store_history_fn done;
    void *arg;
    size_t nfields;
} hist_cb_t;

static void history_reply(store_t *s, redisReply *r, void *arg)
{
    (void)s;
    hist_cb_t *c = arg;
    store_rc_t rc = reply_rc(r);
    if (rc == STORE_OK && (r->type != REDIS_REPLY_ARRAY || r->elements < 1)) rc = STORE_ERROR;
    size_t minutes = rc == STORE_OK ? r->elements - 1 : 0;
    long long *rows = calloc(minutes * c->nfields + 1, sizeof *rows);
    for (size_t m = 0; m < minutes; m++) {
        redisReply *row = r->element[m + 1];
        for (size_t f = 0; row->type == REDIS_REPLY_ARRAY && f < row->elements && f < c->nfields;
             f++)
            rows[m * c->nfields + f] = reply_ll(row->element[f]);
    }
    c->done(rc, rc == STORE_OK ? reply_ll(r->element[0]) : 0, rows, minutes, c->nfields, c->arg);
    free(rows);
    free(c);
}

void store_history(store_t *s, const char *component, int minutes, const char *const *fields,
                   size_t nfields, store_history_fn done, void *arg)
{
    args_t a = {0};
    script_args(s, &a, S_HISTORY, 0, NULL);
    args_add(&a, component);
    args_addi(&a, minutes);
    for (size_t i = 0; i < nfields; i++)
        args_add(&a, fields[i]);
    hist_cb_t *c = malloc(sizeof *c);
    *c = (hist_cb_t){done, arg, nfields};
    run(s, S_HISTORY, &a, history_reply, c);
}

static void depths_reply(store_t *s, redisReply *r, void *arg)
{
    (void)s;
    cb_t *c = arg;
    store_rc_t rc = reply_rc(r);
    store_depths_t d = {0};
    if (rc == STORE_OK && (r->type != REDIS_REPLY_ARRAY || r->elements != 6)) rc = STORE_ERROR;
    if (rc == STORE_OK)
        d = (store_depths_t){reply_ll(r->element[0]), reply_ll(r->element[1]),
                             reply_ll(r->element[2]), reply_ll(r->element[3]),
                             reply_ll(r->element[4]), reply_ll(r->element[5])};
    ((store_depths_fn)c->done)(rc, &d, c->arg);
    free(c);
}

void store_depths(store_t *s, store_depths_fn done, void *arg)
{
    static const char *cmds[][2] = {{"ZCARD", "delayed"},   {"ZCARD", "leases"},
                                    {"LLEN", "cb:q"},       {"ZCARD", "cb:delayed"},
                                    {"ZCARD", "cb:leases"}, {"SCARD", "aggrs"}};
    args_t a = {0};
    args_add(&a, "MULTI");
    run(s, -1, &a, ignore_reply, NULL);
    for (size_t i = 0; i < 6; i++) {
        args_add(&a, cmds[i][0]);
        args_add(&a, cmds[i][1]);
        run(s, -1, &a, ignore_reply, NULL);
    }
    args_add(&a, "EXEC");
    run(s, -1, &a, depths_reply, cb_new((void *)done, arg));
}

/* ---------- processor ---------- */

/* A claim script's reply is {entries, next_due, next_lease, now[, next_throttled,
 * rate_waits, ready_left]} (the last three from claim.lua only). Returns the entries (NULL with *rc
 * set when the reply has another shape) and fills the times. */
static redisReply *claim_shape(redisReply *r, store_rc_t *rc, store_claim_times_t *t)
{
    *rc = reply_rc(r);
    if (*rc == STORE_OK && (r->type != REDIS_REPLY_ARRAY || r->elements < 4 ||
                            r->element[0]->type != REDIS_REPLY_ARRAY))
        *rc = STORE_ERROR;
    if (*rc != STORE_OK) return NULL;
    *t = (store_claim_times_t){
        reply_ll(r->element[1]), reply_ll(r->element[2]), reply_ll(r->element[3]), 0, 0, -1};
    if (r->elements >= 7) {
        t->next_throttled = reply_ll(r->element[4]);
        t->rate_waits = reply_ll(r->element[5]);
        t->ready_left = reply_ll(r->element[6]);
    }
    return r->element[0];
}

/* Decodes a job hash held as field/value elements [from, end) of an array reply. */
static void decode_entry(redisReply *e, size_t from, job_t *job)
{
    size_t kn;
    const char **kv = reply_strings(e, from, &kn);
    job->max_retries = -1;
    store_job_decode(kv, kn, job);
    free(kv);
}

static void claim_reply(store_t *s, redisReply *r, void *arg)
{
    (void)s;
    cb_t *c = arg;
    store_claim_fn done = (store_claim_fn)c->done;
    store_rc_t rc;
    store_claim_times_t t = {0};
    redisReply *list = claim_shape(r, &rc, &t);
    store_claimed_t *jobs = list ? calloc(list->elements + 1, sizeof *jobs) : NULL;
    size_t n = 0;
    for (size_t i = 0; list && i < list->elements; i++) {
        redisReply *e = list->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3) continue;
        store_claimed_t *cl = &jobs[n++];
        decode_entry(e, 3, &cl->job);
        snprintf(cl->job.id, sizeof cl->job.id, "%s", reply_str(e->element[0]));
        free(cl->job.aggr_id);
        cl->job.aggr_id = strdup(reply_str(e->element[1]));
        cl->proxy = strdup(reply_str(e->element[2]));
        for (size_t k = 3; k + 1 < e->elements; k += 2) /* claim.lua appends it last */
            if (strcmp(reply_str(e->element[k]), "AggrProcs") == 0)
                cl->bw_procs = atoll(reply_str(e->element[k + 1]));
    }
    done(rc, jobs, n, &t, c->arg);
    free(c);
}

void store_claim(store_t *s, const char *owner, int n, uint64_t lease_ms, int max_lost,
                 uint64_t retention_ms, store_claim_fn done, void *arg)
{
    args_t a = {0};
    script_args(s, &a, S_CLAIM, 0, NULL);
    args_addu(&a, lease_ms);
    args_addi(&a, n);
    args_add(&a, owner);
    args_addi(&a, max_lost);
    args_addu(&a, retention_ms);
    run(s, S_CLAIM, &a, claim_reply, cb_new((void *)done, arg));
}

static void bw_procs_reply(store_t *s, redisReply *r, void *arg)
{
    (void)s;
    cb_t *c = arg;
    store_rc_t rc = reply_rc(r);
    ((store_count_fn)c->done)(rc, rc == STORE_OK ? reply_ll(r) : 0, c->arg);
    free(c);
}

void store_bw_procs(store_t *s, const char *aggr, store_count_fn done, void *arg)
{
    args_t a = {0};
    args_add(&a, "HLEN");
    args_addf(&a, "bwp:%s", aggr);
    run(s, -1, &a, bw_procs_reply, cb_new((void *)done, arg));
}

void store_claimed_free(store_claimed_t *c)
{
    job_free(&c->job);
    free(c->proxy);
    c->proxy = NULL;
}

static void lost_reply(store_t *s, redisReply *r, void *arg)
{
    (void)s;
    cb_t *c = arg;
    store_rc_t rc = reply_rc(r);
    size_t n = 0;
    const char **lost = rc == STORE_OK ? reply_strings(r, 0, &n) : NULL;
    ((store_lost_fn)c->done)(rc, lost, n, c->arg);
    free(lost);
    free(c);
}

static void renew(store_t *s, int script, const char *owner, uint64_t lease_ms,
                  const char *const *members, size_t n, store_lost_fn done, void *arg)
{
    args_t a = {0};
    script_args(s, &a, script, 0, NULL);
    args_addu(&a, lease_ms);
    args_add(&a, owner);
    for (size_t i = 0; i < n; i++)
        args_add(&a, members[i]);
    run(s, script, &a, lost_reply, cb_new((void *)done, arg));
}

void store_renew(store_t *s, const char *owner, uint64_t lease_ms, const char *const *members,
                 size_t n, store_lost_fn done, void *arg)
{
    renew(s, S_RENEW, owner, lease_ms, members, n, done, arg);
}

void store_tmp_orphans(store_t *s, const char *const *ids, size_t n, store_lost_fn done, void *arg)
{
    args_t a = {0};
    args_add(&a, "EVALSHA");
    args_add(&a, s->scripts[S_TMP_ORPHANS].sha);
    args_addu(&a, n);
    for (size_t i = 0; i < n; i++) /* KEYS: job:<id> of each */
        args_addf(&a, "job:%s", ids[i]);
    for (size_t i = 0; i < n; i++) /* ARGV: the ids, what the reply names */
        args_add(&a, ids[i]);
    run(s, S_TMP_ORPHANS, &a, lost_reply, cb_new((void *)done, arg));
}

void store_dl_finish(store_t *s, const char *id, const char *aggr, const char *owner,
                     store_dl_op_t op, uint64_t delay_ms, uint64_t retention_ms,
                     const store_origin_t *origin, const char *const *kv, store_done_fn done,
                     void *arg)
{
    static const char *ops[] = {"done", "delay", "requeue"};
    args_t a = {0};
    script_args(s, &a, S_DL_FINISH, 0, NULL);
    args_add(&a, id);
    args_add(&a, aggr);
    args_add(&a, owner);
    args_add(&a, ops[op]);
    args_addu(&a, delay_ms);
    args_addu(&a, retention_ms);
    args_add(&a, origin->signal ? origin->signal : "");
    args_addu(&a, origin->retry_after_ms);
    args_addu(&a, origin->max_pause_ms);
    args_add(&a, origin->adaptive ? "1" : "0");
    args_add_kv(&a, kv);
    run(s, S_DL_FINISH, &a, done_reply, cb_new((void *)done, arg));
}

/* ---------- notifier ---------- */

static void cb_claim_reply(store_t *s, redisReply *r, void *arg)
{
    (void)s;
    cb_t *c = arg;
    store_rc_t rc;
    store_claim_times_t t = {0};
    redisReply *list = claim_shape(r, &rc, &t);
    size_t n = list ? list->elements : 0;
    job_t *jobs = list ? calloc(n + 1, sizeof *jobs) : NULL;
    for (size_t i = 0; i < n; i++)
        decode_entry(list->element[i], 0, &jobs[i]);
    ((store_cb_claim_fn)c->done)(rc, jobs, n, t.next_due, t.next_lease, t.now, c->arg);
    free(c);
}

void store_cb_claim(store_t *s, const char *owner, int n, uint64_t lease_ms, store_cb_claim_fn done,
                    void *arg)
{
    args_t a = {0};
    script_args(s, &a, S_CB_CLAIM, 0, NULL);
    args_addu(&a, lease_ms);
    args_addi(&a, n);
    args_add(&a, owner);
    run(s, S_CB_CLAIM, &a, cb_claim_reply, cb_new((void *)done, arg));
}

void store_cb_renew(store_t *s, const char *owner, uint64_t lease_ms, const char *const *ids,
                    size_t n, store_lost_fn done, void *arg)
{
    renew(s, S_CB_RENEW, owner, lease_ms, ids, n, done, arg);
}

void store_cb_finish(store_t *s, const char *id, const char *owner, store_cb_op_t op,
                     uint64_t delay_ms, uint64_t retention_ms, uint64_t deletion_ms,
                     const char *const *kv, store_done_fn done, void *arg)
{
    static const char *ops[] = {"delivered", "delay", "failed", "requeue"};
    args_t a = {0};
    script_args(s, &a, S_CB_FINISH, 0, NULL);
    args_add(&a, id);
    args_add(&a, owner);
    args_add(&a, ops[op]);
    args_addu(&a, delay_ms);
    args_addu(&a, retention_ms);
    args_addu(&a, deletion_ms);
    args_addu(&a, s->cfg->history_ms);
    args_add_kv(&a, kv);
    run(s, S_CB_FINISH, &a, done_reply, cb_new((void *)done, arg));
}

/* ---------- reaper ---------- */

static void reap_reply(store_t *s, redisReply *r, void *arg)
{
    (void)s;
    cb_t *c = arg;
    store_rc_t rc = reply_rc(r);
    if (rc == STORE_OK && (r->type != REDIS_REPLY_ARRAY || r->elements < 3)) rc = STORE_ERROR;
    size_t n = 0;
    const char **ids = rc == STORE_OK ? reply_strings(r->element[0], 0, &n) : NULL;
    ((store_reap_fn)c->done)(rc, ids, n, rc == STORE_OK ? reply_ll(r->element[1]) : 0,
                             rc == STORE_OK ? reply_ll(r->element[2]) : 0, c->arg);
    free(ids);
    free(c);
}

/* The keys of a reap script: the queue and the owner's held entries (live.lua). */
static void reap_args(store_t *s, args_t *a, int script, const char *queue, const char *owner)
{
    char held[256];
    snprintf(held, sizeof held, "live:reap:%s", owner);
    const char *keys[] = {queue, held};
    script_args(s, a, script, 2, keys);
}

void store_reap_claim(store_t *s, const char *queue, const char *owner, int n, uint64_t lease_ms,
                      store_reap_fn done, void *arg)
{
    args_t a = {0};
    reap_args(s, &a, S_REAP_CLAIM, queue, owner);
    args_addu(&a, lease_ms);
    args_addi(&a, n);
    run(s, S_REAP_CLAIM, &a, reap_reply, cb_new((void *)done, arg));
}

static void count_reply(store_t *s, redisReply *r, void *arg)
{
    (void)s;
    cb_t *c = arg;
    ((store_done_fn)c->done)(reply_rc(r), r && r->type == REDIS_REPLY_ERROR ? r->str : NULL,
                             c->arg);
    free(c);
}

void store_reap_done(store_t *s, const char *queue, const char *owner, long long deadline,
                     const char *const *ids, size_t n, store_done_fn done, void *arg)
{
    args_t a = {0};
    reap_args(s, &a, S_REAP_DONE, queue, owner);
    args_addi(&a, deadline);
    for (size_t i = 0; i < n; i++)
        args_add(&a, ids[i]);
    run(s, S_REAP_DONE, &a, count_reply, cb_new((void *)done, arg));
}

/* ---------- stats ---------- */

void store_stats_put(store_t *s, const char *component, const char *instance, uint64_t live_ms,
                     uint64_t keep_ms, const char *info_json, const char *const *kv,
                     store_done_fn done, void *arg)
{
    args_t a = {0};
    script_args(s, &a, S_STATS_PUT, 0, NULL);
    args_add(&a, component);
    args_add(&a, instance);
    args_addu(&a, live_ms);
    args_addu(&a, keep_ms);
    args_add(&a, info_json);
    args_add_kv(&a, kv);
    run(s, S_STATS_PUT, &a, count_reply, cb_new((void *)done, arg));
}

/* ---------- liveness ---------- */

void store_live(store_t *s, const char *owner, uint64_t live_ms, uint64_t gap_ms,
                store_lost_fn done, void *arg)
{
    static const char *const keys[] = {"live", "live:last", "leases", "cb:leases", "live:released"};
    args_t a = {0};
    script_args(s, &a, S_LIVE, 5, keys);
    args_add(&a, owner);
    args_addu(&a, live_ms);
    args_addu(&a, gap_ms);
    run(s, S_LIVE, &a, lost_reply, cb_new((void *)done, arg));
}

void store_reap_key(char *buf, size_t len, const char *download_url)
{
    snprintf(buf, len, "reap:%s", download_url ? download_url : "");
}

/* ---------- operator control: cancel, aggregations, failed lists (issue 15) ---------- */

/* {"ok", ...} or {"<status>"}: the status word, and rc for the common ones. */
static store_rc_t status_rc(redisReply *r, const char **word)
{
    store_rc_t rc = reply_rc(r);
    *word = "";
    if (rc == STORE_OK && (r->type != REDIS_REPLY_ARRAY || r->elements < 1)) rc = STORE_ERROR;
    if (rc != STORE_OK) return rc;
    *word = reply_str(r->element[0]);
    if (strcmp(*word, "ok") == 0) return STORE_OK;
    return strcmp(*word, "notfound") == 0 ? STORE_NOTFOUND : STORE_CONFLICT;
}

static void cancel_reply(store_t *s, redisReply *r, void *arg)
{
    (void)s;
    cb_t *c = arg;
    const char *word;
    store_rc_t rc = status_rc(r, &word);
    const char *state = rc == STORE_OK && r->elements > 1 ? reply_str(r->element[1]) : word;
    ((store_cancel_fn)c->done)(rc, state, c->arg);
    free(c);
}

void store_cancel(store_t *s, const char *id, uint64_t keep_ms, store_cancel_fn done, void *arg)
{
    char key[96];
    snprintf(key, sizeof key, "job:%s", id);
    const char *keys[] = {key};
    args_t a = {0};
    script_args(s, &a, S_CANCEL, 1, keys);
    args_add(&a, id);
    args_addu(&a, (keep_ms ? keep_ms : 1));
    run(s, S_CANCEL, &a, cancel_reply, cb_new((void *)done, arg));
}

/* EVALSHA <script> n <keys of one aggregation>: each key is the prefix with the
 * aggregation id appended when it ends in ':', else the prefix itself. */
static void aggr_script_args(store_t *s, args_t *a, int script, const char *aggr,
                             const char *const *prefixes, int n)
{
    args_add(a, "EVALSHA");
    args_add(a, s->scripts[script].sha);
    args_addi(a, n);
    for (int i = 0; i < n; i++) {
        size_t n = strlen(prefixes[i]);
        if (n && prefixes[i][n - 1] == ':')
            args_addf(a, "%s%s", prefixes[i], aggr);
        else
            args_add(a, prefixes[i]);
    }
}

typedef struct {
    cb_t c;
    char id[1024];
} aggr_call_t;

static void aggr_info_reply(store_t *s, redisReply *r, void *arg)
{
    (void)s;
    aggr_call_t *c = arg;
    const char *word;
    store_rc_t rc = status_rc(r, &word);
    if (rc == STORE_OK && r->elements < 8) rc = STORE_ERROR;
    store_aggr_info_t info = {c->id, 0, "0", "", false, 0, 0, 0};
    if (rc == STORE_OK) {
        redisReply **e = r->element;
        info = (store_aggr_info_t){c->id,           (long)reply_ll(e[1]), reply_str(e[2]),
                                   reply_str(e[3]), reply_ll(e[4]) != 0,  reply_ll(e[5]),
                                   reply_ll(e[6]),  reply_ll(e[7])};
    }
    ((store_aggr_info_fn)c->c.done)(rc, &info, c->c.arg);
    free(c);
}

static aggr_call_t *aggr_call(const char *aggr, void *done, void *arg)
{
    aggr_call_t *c = calloc(1, sizeof *c);
    c->c = (cb_t){done, arg};
    snprintf(c->id, sizeof c->id, "%s", aggr);
    return c;
}

void store_aggr_get(store_t *s, const char *aggr, store_aggr_info_fn done, void *arg)
{
    static const char *const keys[] = {"aggrs", "aggr:", "q:"};
    args_t a = {0};
    aggr_script_args(s, &a, S_AGGR_GET, aggr, keys, 3);
    args_add(&a, aggr);
    run(s, S_AGGR_GET, &a, aggr_info_reply, aggr_call(aggr, (void *)done, arg));
}

void store_aggr_patch(store_t *s, const char *aggr, long limit, const char *rate, int paused,
                      store_aggr_info_fn done, void *arg)
{
    static const char *const keys[] = {"aggrs", "aggr:", "ready", "q:", "throttled"};
    args_t a = {0};
    aggr_script_args(s, &a, S_AGGR_PATCH, aggr, keys, 5);
    args_add(&a, aggr);
    if (limit > 0)
        args_addi(&a, limit);
    else
        args_add(&a, "");
    args_add(&a, rate ? rate : "");
    args_add(&a, paused < 0 ? "" : paused ? "1" : "0");
    run(s, S_AGGR_PATCH, &a, aggr_info_reply, aggr_call(aggr, (void *)done, arg));
}

/* {next_cursor, {{row}, ...}}: the rows' string elements as a C array, per row. */
static redisReply *page_rows(redisReply *r, store_rc_t *rc, const char **next)
{
    *next = "";
    if (*rc == STORE_OK && (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
                            r->element[1]->type != REDIS_REPLY_ARRAY))
        *rc = STORE_ERROR;
    if (*rc != STORE_OK) return NULL;
    *next = reply_str(r->element[0]);
    return r->element[1];
}

/* The rows of a page as a C array of n structs of `size` bytes (calloc'd, n + 1), each
 * filled by fill from a row of at least `min` elements (shorter rows stay zeroed). */
static void *page_decode(redisReply *r, store_rc_t *rc, const char **next, size_t *n, size_t size,
                         size_t min, void (*fill)(redisReply **e, void *out))
{
    redisReply *rows = page_rows(r, rc, next);
    *n = rows ? rows->elements : 0;
    char *list = calloc(*n + 1, size);
    for (size_t i = 0; i < *n; i++) {
        redisReply *row = rows->element[i];
        if (row->type == REDIS_REPLY_ARRAY && row->elements >= min)
            fill(row->element, list + i * size);
    }
    return list;
}

static void job_row_fill(redisReply **e, void *out)
{
    *(store_job_row_t *)out =
        (store_job_row_t){reply_str(e[0]), reply_str(e[1]), reply_ll(e[2]),  reply_ll(e[3]),
                          reply_ll(e[4]),  reply_ll(e[5]),  reply_str(e[6]), reply_str(e[7])};
}

static void jobs_reply(store_t *s, redisReply *r, void *arg)
{
    (void)s;
    cb_t *c = arg;
    store_rc_t rc = reply_rc(r);
    const char *next;
    size_t n;
    store_job_row_t *list = page_decode(r, &rc, &next, &n, sizeof *list, 8, job_row_fill);
    ((store_jobs_fn)c->done)(rc, list, n, next, c->arg);
    free(list);
    free(c);
}

void store_aggr_jobs(store_t *s, const char *aggr, const char *state, long offset, long count,
                     store_jobs_fn done, void *arg)
{
    static const char *const keys[] = {"q:", "delayed:", "running:"};
    args_t a = {0};
    aggr_script_args(s, &a, S_AGGR_JOBS, aggr, keys, 3);
    args_add(&a, state);
    args_addi(&a, offset);
    args_addi(&a, count);
    run(s, S_AGGR_JOBS, &a, jobs_reply, cb_new((void *)done, arg));
}

static void purge_reply(store_t *s, redisReply *r, void *arg)
{
    (void)s;
    cb_t *c = arg;
    store_rc_t rc = reply_rc(r);
    if (rc == STORE_OK && (r->type != REDIS_REPLY_ARRAY || r->elements != 2)) rc = STORE_ERROR;
    ((store_purge_fn)c->done)(rc, rc == STORE_OK ? reply_ll(r->element[0]) : 0,
                              rc == STORE_OK ? reply_ll(r->element[1]) : 0, c->arg);
    free(c);
}

void store_aggr_purge(store_t *s, const char *aggr, int chunk, store_purge_fn done, void *arg)
{
    static const char *const keys[] = {"q:", "delayed:", "aggr:"};
    args_t a = {0};
    aggr_script_args(s, &a, S_AGGR_PURGE, aggr, keys, 3);
    args_add(&a, aggr);
    args_addi(&a, chunk);
    run(s, S_AGGR_PURGE, &a, purge_reply, cb_new((void *)done, arg));
}

static void failed_row_fill(redisReply **e, void *out)
{
    *(store_failed_t *)out = (store_failed_t){reply_str(e[0]), reply_str(e[1]), reply_str(e[2]),
                                              reply_str(e[3]), reply_ll(e[4])};
}

static void failed_page_reply(store_t *s, redisReply *r, void *arg)
{
    (void)s;
    cb_t *c = arg;
    store_rc_t rc = reply_rc(r);
    const char *next;
    size_t n;
    store_failed_t *list = page_decode(r, &rc, &next, &n, sizeof *list, 5, failed_row_fill);
    ((store_failed_page_fn)c->done)(rc, list, n, next, c->arg);
    free(list);
    free(c);
}

void store_failed_page(store_t *s, bool callbacks, long offset, long count,
                       store_failed_page_fn done, void *arg)
{
    const char *keys[] = {callbacks ? "cb:failed" : "dl:failed"};
    args_t a = {0};
    script_args(s, &a, S_FAILED_PAGE, 1, keys);
    args_add(&a, callbacks ? "callback" : "download");
    args_addi(&a, offset);
    args_addi(&a, count);
    run(s, S_FAILED_PAGE, &a, failed_page_reply, cb_new((void *)done, arg));
}

static void number_reply(store_t *s, redisReply *r, void *arg)
{
    (void)s;
    cb_t *c = arg;
    ((store_count_fn)c->done)(reply_rc(r), reply_ll(r), c->arg);
    free(c);
}

void store_failed_retry(store_t *s, bool callbacks, const char *const *ids, size_t n,
                        store_count_fn done, void *arg)
{
    const char *keys[] = {callbacks ? "cb:failed" : "dl:failed"};
    args_t a = {0};
    script_args(s, &a, S_FAILED_RETRY, 1, keys);
    args_add(&a, callbacks ? "callback" : "download");
    for (size_t i = 0; i < n; i++)
        args_add(&a, ids[i]);
    run(s, S_FAILED_RETRY, &a, number_reply, cb_new((void *)done, arg));
}
