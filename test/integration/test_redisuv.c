/* redisuv against a real redis-server: a command issued from a timer callback, with
 * nothing else to wake the loop, is written and answered at once (it used to wait in
 * poll until the next unrelated event); a connection that Redis closes reports
 * through the disconnect callback; and replies built in redisuv's arena (a reply larger
 * than a read and than the arena's chunk, thousands pipelined, nested arrays with nils
 * and integers) reach their callbacks intact and in order. redisuv_dial connects by
 * name, looks a name up off the loop (a resolver that takes 1.5 s does not stop a 50 ms
 * timer), reports a name that cannot be looked up, connects to an IP address within the
 * call, and an aborted dial never calls back. */
#include <dlfcn.h>
#include <netdb.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "harness.h"
#include "redisuv.h"

/* Names under .slow.test take SLOW_MS to look up here and are then unknown: a resolver
 * whose DNS server does not answer. The test binary's getaddrinfo comes before libc's
 * for every caller, hiredis and libuv's pool threads alike. */
#define SLOW_MS 1500
#define SLOW_SUFFIX ".slow.test"

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    size_t n = node ? strlen(node) : 0, k = strlen(SLOW_SUFFIX);
    if (n > k && strcmp(node + n - k, SLOW_SUFFIX) == 0) {
        struct timespec ts = {SLOW_MS / 1000, (SLOW_MS % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        return EAI_NONAME;
    }
    gai_fn real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
    return real(node, service, hints, res);
}

typedef struct {
    uv_loop_t loop;
    redisAsyncContext *ac;
    uv_timer_t issue, limit;
    uint64_t issued_at, replied_at;
    bool replied, disconnected, timed_out;
} rig_t;

static void on_reply(redisAsyncContext *ac, void *reply, void *arg)
{
    (void)ac;
    rig_t *r = arg;
    redisReply *rep = reply;
    if (rep && rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") == 0) {
        r->replied = true;
        r->replied_at = uv_hrtime();
    }
    uv_timer_stop(&r->limit);
}

static void on_issue(uv_timer_t *t)
{
    rig_t *r = t->data;
    r->issued_at = uv_hrtime();
    redisAsyncCommand(r->ac, on_reply, r, "PING");
}

static void on_limit(uv_timer_t *t)
{
    rig_t *r = t->data;
    r->timed_out = true;
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    rig_t *r = ac->data;
    (void)status;
    r->disconnected = true;
}

static void rig_open(rig_t *r, const h_redis_t *redis)
{
    memset(r, 0, sizeof *r);
    assert_int_equal(uv_loop_init(&r->loop), 0);
    r->ac = redisAsyncConnect("127.0.0.1", redis->port);
    assert_non_null(r->ac);
    assert_int_equal(r->ac->err, 0);
    r->ac->data = r;
    assert_int_equal(redisuv_attach(r->ac, &r->loop), REDIS_OK);
    redisAsyncSetDisconnectCallback(r->ac, on_disconnect);
    uv_timer_init(&r->loop, &r->issue);
    uv_timer_init(&r->loop, &r->limit);
    r->issue.data = r->limit.data = r;
    /* connected: a first PING through the loop */
    redisAsyncCommand(r->ac, on_reply, r, "PING");
    while (!r->replied)
        uv_run(&r->loop, UV_RUN_ONCE);
    r->replied = false;
}

static void rig_close(rig_t *r)
{
    uv_close((uv_handle_t *)&r->issue, NULL);
    uv_close((uv_handle_t *)&r->limit, NULL);
    if (!r->disconnected) redisAsyncDisconnect(r->ac);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&r->loop), 0); /* every handle released */
}

static void test_command_from_timer_is_sent_at_once(void **state)
{
    (void)state;
    h_redis_t redis = {0};
    assert_int_equal(h_redis_start(&redis, false), 0);
    rig_t r;
    rig_open(&r, &redis);
    /* on a quiet loop, a PING from a timer; the only other wake-up is 3 s away */
    uv_timer_start(&r.issue, on_issue, 50, 0);
    uv_timer_start(&r.limit, on_limit, 3000, 0);
    while (!r.replied && !r.timed_out)
        uv_run(&r.loop, UV_RUN_ONCE);
    assert_true(r.replied);
    assert_false(r.timed_out);
    uint64_t took_ms = (r.replied_at - r.issued_at) / 1000000;
    print_message("# reply %llu ms after the timer's command\n", (unsigned long long)took_ms);
    assert_true(took_ms < 1000);
    rig_close(&r);
    h_redis_stop(&redis);
}

static void test_server_close_reports_disconnect(void **state)
{
    (void)state;
    h_redis_t redis = {0};
    assert_int_equal(h_redis_start(&redis, false), 0);
    rig_t r;
    rig_open(&r, &redis);
    redisContext *c = h_redis_connect(&redis);
    assert_non_null(c);
    freeReplyObject(h_redis(c, "CLIENT KILL TYPE normal SKIPME yes"));
    redisFree(c);
    uv_timer_start(&r.limit, on_limit, 3000, 0);
    while (!r.disconnected && !r.timed_out)
        uv_run(&r.loop, UV_RUN_ONCE);
    assert_true(r.disconnected);
    uv_timer_stop(&r.limit);
    rig_close(&r);
    h_redis_stop(&redis);
}

/* ---------- replies through the arena ---------- */

#define N_INCR 3000
#define BIG (300 * 1024 + 7)

typedef struct {
    long long next_incr; /* the INCR reply expected next */
    int pending;
    char *big;
} flood_t;

/* One kind of command: a predicate on its reply and how many replies passed it. */
typedef struct {
    flood_t *f;
    bool (*ok)(flood_t *f, const redisReply *r);
    int passed;
} check_t;

static void on_checked(redisAsyncContext *ac, void *reply, void *arg)
{
    (void)ac;
    check_t *c = arg;
    if (reply && c->ok(c->f, reply)) c->passed++;
    c->f->pending--;
}

static bool incr_ok(flood_t *f, const redisReply *r)
{
    long long want = f->next_incr++;
    return r->type == REDIS_REPLY_INTEGER && r->integer == want;
}

static bool big_ok(flood_t *f, const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING && r->len == BIG && memcmp(r->str, f->big, BIG) == 0 &&
           r->str[BIG] == '\0';
}

/* EVAL returns {7, 'x', {8, {'deep'}}, false}: false becomes a nil element */
static bool nested_ok(flood_t *f, const redisReply *r)
{
    (void)f;
    if (!(r->type == REDIS_REPLY_ARRAY && r->elements == 4 &&
          r->element[0]->type == REDIS_REPLY_INTEGER && r->element[0]->integer == 7 &&
          r->element[1]->type == REDIS_REPLY_STRING && strcmp(r->element[1]->str, "x") == 0 &&
          r->element[2]->type == REDIS_REPLY_ARRAY && r->element[2]->elements == 2 &&
          r->element[3]->type == REDIS_REPLY_NIL))
        return false;
    const redisReply *in = r->element[2];
    return in->element[0]->integer == 8 && in->element[1]->type == REDIS_REPLY_ARRAY &&
           in->element[1]->elements == 1 && strcmp(in->element[1]->element[0]->str, "deep") == 0;
}

static bool mget_ok(flood_t *f, const redisReply *r)
{
    (void)f;
    return r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
           r->element[0]->type == REDIS_REPLY_NIL && r->element[1]->type == REDIS_REPLY_STRING &&
           r->element[1]->len == BIG && r->element[2]->type == REDIS_REPLY_NIL;
}

static void test_replies_through_the_arena(void **state)
{
    (void)state;
    h_redis_t redis = {0};
    assert_int_equal(h_redis_start(&redis, false), 0);
    rig_t r;
    rig_open(&r, &redis);
    flood_t f = {.next_incr = 1};
    check_t incr = {&f, incr_ok, 0}, big = {&f, big_ok, 0}, nested = {&f, nested_ok, 0},
            mget = {&f, mget_ok, 0};
    f.big = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        f.big[i] = (char)('a' + i % 26);
    redisAsyncCommand(r.ac, NULL, NULL, "SET big %b", f.big, (size_t)BIG);
    /* all issued in one iteration: one pipeline, answered in a few large reads */
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N_INCR / 3; i++, f.pending++)
            redisAsyncCommand(r.ac, on_checked, &incr, "INCR n");
        f.pending += 3;
        redisAsyncCommand(r.ac, on_checked, &big, "GET big");
        redisAsyncCommand(r.ac, on_checked, &nested, "EVAL %s 0",
                          "return {7, 'x', {8, {'deep'}}, false}");
        redisAsyncCommand(r.ac, on_checked, &mget, "MGET nope big nope2");
    }
    uv_timer_start(&r.limit, on_limit, 10000, 0);
    while (f.pending > 0 && !r.timed_out)
        uv_run(&r.loop, UV_RUN_ONCE);
    uv_timer_stop(&r.limit);
    assert_int_equal(f.pending, 0);
    assert_int_equal(incr.passed, N_INCR);
    assert_int_equal(big.passed, 3);
    assert_int_equal(nested.passed, 3);
    assert_int_equal(mget.passed, 3);
    free(f.big);
    rig_close(&r);
    h_redis_stop(&redis);
}

/* ---------- redisuv_dial ---------- */

typedef struct {
    uv_loop_t loop;
    uv_timer_t tick;
    uint64_t t0, ticked_ms, dialed_ms;
    int calls;
    redisAsyncContext *ac;
    char err[200];
    bool ponged;
} dial_t;

static uint64_t since_ms(const dial_t *d)
{
    return (uv_hrtime() - d->t0) / 1000000;
}

static void on_dialed(redisAsyncContext *ac, const char *err, void *arg)
{
    dial_t *d = arg;
    d->calls++;
    d->dialed_ms = since_ms(d);
    d->ac = ac;
    snprintf(d->err, sizeof d->err, "%s", err ? err : "");
    if (ac) ac->data = d;
}

static void on_tick(uv_timer_t *t)
{
    dial_t *d = t->data;
    d->ticked_ms = since_ms(d);
}

static void on_dial_pong(redisAsyncContext *ac, void *reply, void *arg)
{
    (void)ac;
    redisReply *r = reply;
    dial_t *d = arg;
    d->ponged = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
}

static void dial_open(dial_t *d)
{
    memset(d, 0, sizeof *d);
    assert_int_equal(uv_loop_init(&d->loop), 0);
    uv_timer_init(&d->loop, &d->tick);
    d->tick.data = d;
    d->t0 = uv_hrtime();
}

static void dial_close(dial_t *d)
{
    uv_close((uv_handle_t *)&d->tick, NULL);
    if (d->ac) redisAsyncDisconnect(d->ac);
    uv_run(&d->loop, UV_RUN_DEFAULT); /* also waits for a lookup still on the pool */
    assert_int_equal(uv_loop_close(&d->loop), 0);
}

/* Dials host at a fresh Redis: a name (done comes later, from the pool) or an IP
 * address (done within the call); then a PING goes through the connection. */
static void dial_and_ping(const char *host, bool by_name)
{
    h_redis_t redis = {0};
    assert_int_equal(h_redis_start(&redis, false), 0);
    dial_t d;
    dial_open(&d);
    redisuv_dial_t *pending = redisuv_dial(&d.loop, host, redis.port, on_dialed, &d);
    assert_int_equal(pending != NULL, by_name);
    assert_int_equal(d.calls, by_name ? 0 : 1);
    while (d.calls == 0)
        uv_run(&d.loop, UV_RUN_ONCE);
    assert_non_null(d.ac);
    redisAsyncCommand(d.ac, on_dial_pong, &d, "PING");
    while (!d.ponged)
        uv_run(&d.loop, UV_RUN_ONCE);
    dial_close(&d);
    h_redis_stop(&redis);
}

static void test_dial_by_name(void **state)
{
    (void)state;
    dial_and_ping("localhost", true);
}

static void test_dial_ip_connects_within_the_call(void **state)
{
    (void)state;
    dial_and_ping("127.0.0.1", false);
}

/* The lookup takes 1.5 s; a 50 ms timer started with it fires on time, and the dial
 * ends with the lookup's error (hiredis' own connect would block the loop for 1.5 s). */
static void test_dial_looks_up_off_the_loop(void **state)
{
    (void)state;
    dial_t d;
    dial_open(&d);
    uv_timer_start(&d.tick, on_tick, 50, 0);
    redisuv_dial_t *pending = redisuv_dial(&d.loop, "redis" SLOW_SUFFIX, 6379, on_dialed, &d);
    while (d.calls == 0 || d.ticked_ms == 0)
        uv_run(&d.loop, UV_RUN_ONCE);
    print_message("# timer at %llu ms, lookup failed at %llu ms: %s\n",
                  (unsigned long long)d.ticked_ms, (unsigned long long)d.dialed_ms, d.err);
    assert_true(d.ticked_ms > 0 && d.ticked_ms < SLOW_MS / 2);
    assert_true(d.dialed_ms >= SLOW_MS - 50);
    assert_non_null(pending); /* a name is never looked up within the call */
    assert_null(d.ac);
    assert_non_null(strstr(d.err, "cannot look the host up"));
    dial_close(&d);
}

static void test_dial_abort(void **state)
{
    (void)state;
    dial_t d;
    dial_open(&d);
    redisuv_dial_t *dial = redisuv_dial(&d.loop, "gone" SLOW_SUFFIX, 6379, on_dialed, &d);
    assert_non_null(dial);
    redisuv_dial_abort(dial);
    dial_close(&d); /* the loop ends once the lookup is over, without a call */
    assert_int_equal(d.calls, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_command_from_timer_is_sent_at_once),
        cmocka_unit_test(test_server_close_reports_disconnect),
        cmocka_unit_test(test_replies_through_the_arena),
        cmocka_unit_test(test_dial_by_name),
        cmocka_unit_test(test_dial_ip_connects_within_the_call),
        cmocka_unit_test(test_dial_looks_up_off_the_loop),
        cmocka_unit_test(test_dial_abort),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
