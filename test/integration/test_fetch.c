/* fetch integration tests: curlm + fetch on a private uv loop against a spawned
 * test/origin.py. Checks the request on the wire (exact header set via /_requests),
 * gzip handling, redirects, §5.5 error texts and classes, timeouts, size caps, the
 * head hook, cancellation, that done is called once and asynchronously, that a
 * temp file never survives a failure, bodies byte for byte (also with curl paused
 * behind a busy thread pool), proxies, connection reuse and 200 parallel transfers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <yajl/yajl_tree.h>

#include "curlm.h"
#include "fetch.h"
#include "harness.h"
#include "log.h"

typedef struct {
    pid_t pid;
    int port;
    char *dir;
    char base[64];
    int seq;
} env_t;

/* One download: inputs, then what done reported. */
typedef struct {
    /* inputs */
    long timeout_s;
    const char *proxy;
    bool hook;   /* install the head hook */
    bool reject; /* ... and make it fail */
    bool cancel_in_hook;
    size_t mem_limit; /* > 0: keep small bodies in memory */
    /* state */
    fetch_t *f;
    bool started; /* fetch_start has returned */
    char tmp[512];
    char url[512];
    /* results */
    int calls;
    bool sync_done; /* done ran inside fetch_start */
    fetch_result_t res;
    int head_calls;
    size_t head_len;
    unsigned char head0;
} outcome_t;

typedef struct {
    uv_loop_t loop;
    curlm_t *m;
    bool closed;
} rig_t;

/* ---- helpers ---------------------------------------------------------------- */

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static fetch_opts_t opts_default(void)
{
    return (fetch_opts_t){.connect_timeout_ms = 2000,
                          .default_timeout_s = 20,
                          .low_speed_limit = 1,
                          .low_speed_time_s = 10};
}

static void rig_init(rig_t *r, long max_host)
{
    memset(r, 0, sizeof *r);
    assert_int_equal(uv_loop_init(&r->loop), 0);
    r->m = curlm_new(&r->loop, max_host);
    assert_non_null(r->m);
}

static void on_closed(void *arg)
{
    ((rig_t *)arg)->closed = true;
}

static void rig_close(rig_t *r)
{
    curlm_close(r->m, on_closed, r);
    while (!r->closed)
        uv_run(&r->loop, UV_RUN_ONCE);
    uv_run(&r->loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&r->loop), 0); /* every handle released */
}

static bool all_done(outcome_t *o, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (o[i].calls == 0) return false;
    return true;
}

static void rig_wait(rig_t *r, outcome_t *o, size_t n)
{
    while (!all_done(o, n))
        uv_run(&r->loop, UV_RUN_ONCE);
}

static int hook(void *arg, const unsigned char *head, size_t len, char *err, size_t errlen,
                const char **phase, const char **stat)
{
    outcome_t *o = arg;
    o->head_calls++;
    o->head_len = len;
    o->head0 = len ? head[0] : 0;
    if (o->cancel_in_hook) fetch_cancel(o->f);
    if (!o->reject) return 0;
    snprintf(err, errlen, "Expected mime-type to be (image/*), found (application/octet-stream)");
    *phase = "validating mime type";
    *stat = "download.response.mime";
    return -1;
}

static void on_done(fetch_t *f, const fetch_result_t *res, void *arg)
{
    outcome_t *o = arg;
    (void)f;
    if (!o->started) o->sync_done = true;
    o->calls++;
    o->res = *res;
}

static fetch_t *start(rig_t *r, env_t *e, outcome_t *o, const fetch_opts_t *opts, const char *url,
                      const headers_t *job)
{
    snprintf(o->url, sizeof o->url, "%s%s", url[0] == '/' ? e->base : "", url);
    snprintf(o->tmp, sizeof o->tmp, "%s/%d.tmp", e->dir, ++e->seq);
    fetch_req_t req = {.url = o->url,
                       .proxy = o->proxy,
                       .headers = job,
                       .timeout_s = o->timeout_s,
                       .tmp_path = o->tmp,
                       .on_head = o->hook ? hook : NULL,
                       .head_arg = o,
                       .mem_limit = o->mem_limit};
    o->f = fetch_start(&r->loop, r->m, opts, &req, on_done, o);
    o->started = true;
    assert_int_equal(o->calls, 0);
    return o->f;
}

/* done exactly once, never synchronously; the temp file exists iff ok. */
static void check_outcome(const outcome_t *o)
{
    assert_int_equal(o->calls, 1);
    assert_false(o->sync_done);
    assert_int_equal(access(o->tmp, F_OK) == 0, o->res.ok);
}

static void fetch1(env_t *e, outcome_t *o, const fetch_opts_t *opts, const char *url,
                   const headers_t *job)
{
    rig_t r;
    rig_init(&r, 0);
    assert_non_null(start(&r, e, o, opts, url, job));
    rig_wait(&r, o, 1);
    rig_close(&r);
    check_outcome(o);
}

static void fetch_simple(env_t *e, outcome_t *o, const char *url)
{
    fetch_opts_t opts = opts_default();
    fetch1(e, o, &opts, url, NULL);
}

static void check_pattern(const char *path, size_t n)
{
    size_t len = 0;
    char *buf = h_read_file(path, &len);
    assert_non_null(buf);
    assert_int_equal(len, n);
    assert_int_equal(h_pattern_mismatch(buf, n), -1);
    free(buf);
}

static void assert_ok(const outcome_t *o)
{
    if (!o->res.ok) fail_msg("download failed: %s", o->res.error);
}

static void assert_error(const outcome_t *o, const char *expected)
{
    assert_false(o->res.ok);
    assert_string_equal(o->res.error, expected);
}

static void assert_error_has(const outcome_t *o, const char *prefix, const char *part,
                             bool retriable)
{
    assert_false(o->res.ok);
    if (strncmp(o->res.error, prefix, strlen(prefix)) != 0 || !strstr(o->res.error, part))
        fail_msg("unexpected error text: %s", o->res.error);
    assert_int_equal(o->res.retriable, retriable);
    assert_false(o->res.internal);
    const char *tail =
        retriable ? ", retriable: true, internal: false" : ", retriable: false, internal: false";
    size_t el = strlen(o->res.error), tl = strlen(tail);
    assert_true(el > tl && strcmp(o->res.error + el - tl, tail) == 0);
}

static char *get(env_t *e, const char *path)
{
    char url[256];
    h_resp_t resp;
    snprintf(url, sizeof url, "%s%s", e->base, path);
    assert_int_equal(h_http("GET", url, NULL, NULL, &resp), 0);
    assert_int_equal(resp.status, 200);
    free(resp.headers);
    return resp.body;
}

/* The /_requests record whose query is `query` (last one wins). Free the root. */
static yajl_val find_request(env_t *e, const char *query, yajl_val *root)
{
    char *body = get(e, "/_requests");
    char err[256];
    *root = yajl_tree_parse(body, err, sizeof err);
    free(body);
    assert_non_null(*root);
    assert_true(YAJL_IS_ARRAY(*root));
    yajl_val found = NULL;
    for (size_t i = 0; i < (*root)->u.array.len; i++) {
        yajl_val r = (*root)->u.array.values[i];
        const char *qpath[] = {"query", NULL};
        const char *q = YAJL_GET_STRING(yajl_tree_get(r, qpath, yajl_t_string));
        if (q && strcmp(q, query) == 0) found = r;
    }
    assert_non_null(found);
    return found;
}

static const char *req_string(yajl_val r, const char *key)
{
    const char *p[] = {key, NULL};
    yajl_val v = yajl_tree_get(r, p, yajl_t_string);
    return v ? YAJL_GET_STRING(v) : NULL;
}

static long long req_int(yajl_val r, const char *key)
{
    const char *p[] = {key, NULL};
    yajl_val v = yajl_tree_get(r, p, yajl_t_number);
    return v ? YAJL_GET_INTEGER(v) : -1;
}

/* The request recorded under `query` carried exactly these headers (NULL-terminated
 * name, value pairs; names compared case-sensitively: canonical on the wire). */
static void assert_wire_headers(env_t *e, const char *query, const char *const *expected)
{
    yajl_val root;
    yajl_val r = find_request(e, query, &root);
    const char *hp[] = {"headers", NULL};
    yajl_val h = yajl_tree_get(r, hp, yajl_t_object);
    assert_non_null(h);
    size_t n = 0;
    for (; expected[2 * n]; n++) {
        const char *p[] = {expected[2 * n], NULL};
        yajl_val v = yajl_tree_get(h, p, yajl_t_string);
        if (!v) fail_msg("header %s missing", expected[2 * n]);
        if (expected[2 * n + 1]) assert_string_equal(YAJL_GET_STRING(v), expected[2 * n + 1]);
    }
    for (size_t i = 0; i < h->u.object.len; i++) {
        bool known = false;
        for (size_t j = 0; j < n; j++)
            known |= strcmp(h->u.object.keys[i], expected[2 * j]) == 0;
        if (!known) fail_msg("unexpected header on the wire: %s", h->u.object.keys[i]);
    }
    yajl_tree_free(root);
}

static void post(env_t *e, const char *path, const char *body)
{
    char url[256];
    h_resp_t resp;
    snprintf(url, sizeof url, "%s%s", e->base, path);
    assert_int_equal(h_http("POST", url, body, NULL, &resp), 0);
    assert_int_equal(resp.status, 200);
    h_resp_free(&resp);
}

/* ---- setup ------------------------------------------------------------------ */

static int group_setup(void **state)
{
    env_t *e = calloc(1, sizeof *e);
    char origin[1024], port[16];
    if (!e) return -1;
    e->port = h_free_port();
    snprintf(port, sizeof port, "%d", e->port);
    snprintf(origin, sizeof origin, "%s/test/origin.py", h_src());
    char *argv[] = {"python3", origin, "--port", port, NULL};
    e->pid = h_spawn(argv, NULL, NULL);
    if (e->pid <= 0 || h_wait_port(e->port, 10000) != 0) return -1;
    e->dir = h_tmpdir("fetch");
    snprintf(e->base, sizeof e->base, "http://127.0.0.1:%d", e->port);
    *state = e;
    return 0;
}

static int group_teardown(void **state)
{
    env_t *e = *state;
    h_stop(e->pid, SIGTERM, 3000);
    h_rmtree(e->dir);
    free(e->dir);
    free(e);
    return 0;
}

/* ---- request on the wire ---------------------------------------------------- */

static void test_headers_defaults_only(void **state)
{
    env_t *e = *state;
    header_t d[] = {{"user-agent", "downloader-test/1"}, {"X-Default", "d"}};
    headers_t defaults = {d, 2};
    fetch_opts_t opts = opts_default();
    opts.default_headers = &defaults;
    outcome_t o = {0};
    fetch1(e, &o, &opts, "/echo?tag=h1", NULL);
    assert_ok(&o);
    const char *want[] = {"Host",      NULL, "User-Agent",      "downloader-test/1",
                          "X-Default", "d",  "Accept-Encoding", "gzip",
                          NULL};
    assert_wire_headers(e, "tag=h1", want);
}

static void test_headers_job_overrides(void **state)
{
    env_t *e = *state;
    header_t d[] = {{"User-Agent", "default-agent"}, {"x-default", "d"}, {"X-Both", "default"}};
    header_t j[] = {{"user-agent", "job-agent"}, {"x-both", "job"},        {"accept", "image/*"},
                    {"X-JOB-header", "j"},       {"Host", "evil.example"}, {"X-Empty", ""}};
    headers_t defaults = {d, 3}, job = {j, 6};
    fetch_opts_t opts = opts_default();
    opts.default_headers = &defaults;
    outcome_t o = {0};
    fetch1(e, &o, &opts, "/echo?tag=h2", &job);
    assert_ok(&o);
    char host[64];
    snprintf(host, sizeof host, "127.0.0.1:%d", e->port);
    const char *want[] = {"Host",      host,      "User-Agent",      "job-agent",
                          "X-Default", "d",       "X-Both",          "job",
                          "Accept",    "image/*", "X-Job-Header",    "j",
                          "X-Empty",   "",        "Accept-Encoding", "gzip",
                          NULL};
    assert_wire_headers(e, "tag=h2", want);
}

static void test_headers_job_accept_encoding(void **state)
{
    env_t *e = *state;
    header_t j[] = {{"accept-encoding", "identity"}};
    headers_t job = {j, 1};
    fetch_opts_t opts = opts_default();
    outcome_t o = {0};
    fetch1(e, &o, &opts, "/echo?tag=h3", &job);
    assert_ok(&o);
    const char *want[] = {"Host", NULL, "Accept-Encoding", "identity", NULL};
    assert_wire_headers(e, "tag=h3", want);
}

static void test_invalid_header_is_final(void **state)
{
    env_t *e = *state;
    header_t j[] = {{"X-Bad", "a\r\nInjected: yes"}};
    headers_t job = {j, 1};
    fetch_opts_t opts = opts_default();
    outcome_t o = {0};
    fetch1(e, &o, &opts, "/echo?tag=h4", &job);
    assert_error(&o, "Error while creating request, net/http: invalid header field value for "
                     "\"X-Bad\", retriable: false, internal: false");
}

/* ---- bodies ----------------------------------------------------------------- */

static void test_gzip_decoded_without_accept_encoding(void **state)
{
    env_t *e = *state;
    outcome_t o = {0};
    fetch_simple(e, &o, "/data/5000?gzip=1");
    assert_ok(&o);
    assert_int_equal(o.res.bytes, 5000);
    check_pattern(o.tmp, 5000);
    unlink(o.tmp);
}

static void test_gzip_raw_with_accept_encoding(void **state)
{
    env_t *e = *state;
    header_t j[] = {{"Accept-Encoding", "gzip"}};
    headers_t job = {j, 1};
    fetch_opts_t opts = opts_default();
    outcome_t o = {0};
    fetch1(e, &o, &opts, "/data/5000?gzip=1", &job);
    assert_ok(&o);
    size_t len;
    char *buf = h_read_file(o.tmp, &len);
    assert_true(len > 2 && len < 5000);
    assert_int_equal((unsigned char)buf[0], 0x1f); /* gzip magic: stored as received */
    assert_int_equal((unsigned char)buf[1], 0x8b);
    free(buf);
    unlink(o.tmp);
}

static void test_one_mib_byte_for_byte(void **state)
{
    env_t *e = *state;
    outcome_t o = {0};
    fetch_simple(e, &o, "/data/1048576");
    assert_ok(&o);
    assert_int_equal(o.res.response_code, 200);
    assert_string_equal(o.res.stat, "download.response.200");
    assert_int_equal(o.res.bytes, 1048576);
    check_pattern(o.tmp, 1048576);
    unlink(o.tmp);
}

/* Keeps the uv thread pool busy so that file writes queue up and curl gets paused. */
typedef struct {
    rig_t *rig;
    uv_timer_t timer;
    int queued, finished;
    bool stop;
} jam_t;

static void jam_work(uv_work_t *w)
{
    (void)w;
    usleep(10000);
}

static void jam_after(uv_work_t *w, int status)
{
    (void)status;
    jam_t *j = w->data;
    j->finished++;
    free(w);
}

static void jam_tick(uv_timer_t *t)
{
    jam_t *j = t->data;
    if (j->stop) return;
    for (int i = 0; i < 4; i++) {
        uv_work_t *w = calloc(1, sizeof *w);
        w->data = j;
        assert_int_equal(uv_queue_work(&j->rig->loop, w, jam_work, jam_after), 0);
        j->queued++;
    }
}

static void test_body_with_busy_thread_pool(void **state)
{
    env_t *e = *state;
    rig_t r;
    rig_init(&r, 0);
    jam_t jam = {.rig = &r};
    uv_timer_init(&r.loop, &jam.timer);
    jam.timer.data = &jam;
    uv_timer_start(&jam.timer, jam_tick, 0, 15);
    fetch_opts_t opts = opts_default();
    outcome_t o = {0};
    assert_non_null(start(&r, e, &o, &opts, "/data/3000000", NULL));
    rig_wait(&r, &o, 1);
    jam.stop = true;
    uv_timer_stop(&jam.timer);
    uv_close((uv_handle_t *)&jam.timer, NULL);
    while (jam.finished < jam.queued)
        uv_run(&r.loop, UV_RUN_ONCE);
    rig_close(&r);
    check_outcome(&o);
    assert_ok(&o);
    check_pattern(o.tmp, 3000000);
    unlink(o.tmp);
}

static void test_empty_body_ok(void **state)
{
    env_t *e = *state;
    outcome_t o = {.hook = true};
    fetch_simple(e, &o, "/data/0");
    assert_ok(&o);
    assert_int_equal(o.res.bytes, 0);
    assert_int_equal(o.head_calls, 1);
    assert_int_equal(o.head_len, 0);
    unlink(o.tmp);
}

static void test_redirects_followed(void **state)
{
    env_t *e = *state;
    outcome_t o = {0};
    fetch_simple(e, &o, "/redirect/9"); /* 10 redirects: the limit */
    assert_ok(&o);
    assert_int_equal(o.res.response_code, 200);
    check_pattern(o.tmp, 10);
    unlink(o.tmp);
}

static void test_too_many_redirects(void **state)
{
    env_t *e = *state;
    outcome_t o = {0};
    fetch_simple(e, &o, "/redirect/10");
    assert_error_has(&o, "Error while performing request, Get \"", "stopped after 10 redirects",
                     true);
    outcome_t l = {0};
    fetch_simple(e, &l, "/loop");
    assert_error_has(&l, "Error while performing request, ", "stopped after 10 redirects", true);
    assert_int_equal(l.res.response_code, 0);
}

static void test_redirect_to_other_scheme(void **state)
{
    env_t *e = *state;
    post(e, "/_script",
         "{\"path\": \"/ftp-redirect\", \"responses\": [{\"status\": 302, \"headers\": "
         "{\"Location\": \"ftp://127.0.0.1/x\"}}]}");
    outcome_t o = {0};
    fetch_simple(e, &o, "/ftp-redirect");
    assert_error_has(&o, "Error while performing request, Get \"", "Protocol \"ftp\" not supported",
                     true);
    post(e, "/_script",
         "{\"path\": \"/file-redirect\", \"responses\": [{\"status\": 302, \"headers\": "
         "{\"Location\": \"file:///etc/passwd\"}}]}");
    outcome_t f = {0};
    fetch_simple(e, &f, "/file-redirect");
    assert_error_has(&f, "Error while performing request, Get \"",
                     "Protocol \"file\" not supported", true);
    assert_int_equal(f.res.bytes, 0);
}

/* ---- SSRF guard --------------------------------------------------------------- */

#define REFUSED_LOOPBACK                                                                           \
    "Error while performing request, refused to connect to 127.0.0.1: private or loopback "        \
    "address (processor.block_private_networks), retriable: false, internal: false"

static fetch_opts_t opts_guard(const char *const *allow, size_t n)
{
    fetch_opts_t o = opts_default();
    o.block_private_networks = true;
    o.allow_cidrs = allow;
    o.n_allow_cidrs = n;
    return o;
}

static void test_guard_refuses_loopback(void **state)
{
    env_t *e = *state;
    fetch_opts_t opts = opts_guard(NULL, 0);
    outcome_t o = {0};
    fetch1(e, &o, &opts, "/data/10?tag=guard1", NULL);
    assert_error(&o, REFUSED_LOOPBACK);
    assert_false(o.res.retriable);
    assert_string_equal(o.res.stat, "download.response.blocked");
    assert_int_equal(o.res.response_code, 0);
    /* by name too: every address "localhost" resolves to is refused */
    char url[128];
    snprintf(url, sizeof url, "http://localhost:%d/data/10", e->port);
    outcome_t n = {0};
    fetch1(e, &n, &opts, url, NULL);
    assert_error_has(&n, "Error while performing request, refused to connect to ",
                     "private or loopback address (processor.block_private_networks)", false);
    /* nothing reached the origin */
    char *reqs = get(e, "/_requests");
    assert_null(strstr(reqs, "guard1"));
    free(reqs);
}

static void test_guard_allow_list(void **state)
{
    env_t *e = *state;
    const char *allow[] = {"10.0.0.0/8", "127.0.0.0/8"};
    fetch_opts_t opts = opts_guard(allow, 2);
    outcome_t o = {0};
    fetch1(e, &o, &opts, "/data/10", NULL);
    assert_ok(&o);
    check_pattern(o.tmp, 10);
    unlink(o.tmp);
    /* an invalid entry drops the allow list: closed, not open */
    const char *bad[] = {"127.0.0.0/8", "not a cidr"};
    opts = opts_guard(bad, 2);
    outcome_t b = {0};
    fetch1(e, &b, &opts, "/data/10", NULL);
    assert_error(&b, REFUSED_LOOPBACK);
}

static void test_guard_redirect_to_refused(void **state)
{
    env_t *e = *state;
    char script[512];
    snprintf(script, sizeof script,
             "{\"path\": \"/to-private\", \"responses\": [{\"status\": 302, \"headers\": "
             "{\"Location\": \"http://127.0.0.2:%d/data/10\"}}]}",
             e->port);
    post(e, "/_script", script);
    const char *allow[] = {"127.0.0.1/32"};
    fetch_opts_t opts = opts_guard(allow, 1);
    outcome_t o = {0};
    fetch1(e, &o, &opts, "/to-private", NULL);
    assert_error(&o, "Error while performing request, refused to connect to 127.0.0.2: private or "
                     "loopback address (processor.block_private_networks), retriable: false, "
                     "internal: false");
}

static void test_guard_checks_the_proxy(void **state)
{
    env_t *e = *state;
    fetch_opts_t opts = opts_guard(NULL, 0);
    outcome_t o = {.proxy = e->base}; /* the proxy is on loopback: refused */
    fetch1(e, &o, &opts, "http://proxied.invalid/data/10?tag=guard2", NULL);
    assert_error(&o, REFUSED_LOOPBACK);
    const char *allow[] = {"127.0.0.1"};
    opts = opts_guard(allow, 1);
    outcome_t a = {.proxy = e->base};
    fetch1(e, &a, &opts, "http://proxied.invalid/data/10?tag=guard3", NULL);
    assert_ok(&a);
    unlink(a.tmp);
}

/* ---- statuses --------------------------------------------------------------- */

static void test_404_final(void **state)
{
    env_t *e = *state;
    outcome_t o = {0};
    fetch_simple(e, &o, "/status/404");
    assert_error(&o, "Error while processing response, Received status code 404 Not Found, "
                     "retriable: false, internal: false");
    assert_false(o.res.retriable);
    assert_int_equal(o.res.response_code, 404);
    assert_string_equal(o.res.stat, "download.response.404");
}

static void test_500_retriable(void **state)
{
    env_t *e = *state;
    outcome_t o = {0};
    fetch_simple(e, &o, "/status/500");
    assert_error(&o, "Error while processing response, Received status code 500 Internal Server "
                     "Error, retriable: true, internal: false");
    assert_true(o.res.retriable);
    assert_string_equal(o.res.stat, "download.response.500");
    assert_int_equal(o.res.retry_after_ms, 0);
}

static void test_429_retry_after(void **state)
{
    env_t *e = *state;
    outcome_t o = {0};
    fetch_simple(e, &o, "/status/429?retry_after=3");
    assert_error(&o, "Error while processing response, Received status code 429 Too Many "
                     "Requests, retriable: true, internal: false");
    assert_int_equal(o.res.retry_after_ms, 3000);
    outcome_t t = {0};
    fetch_simple(e, &t, "/status/408?retry_after=1");
    assert_true(t.res.retriable);
    assert_int_equal(t.res.retry_after_ms, 1000);
}

static void test_503_retry_after_date(void **state)
{
    env_t *e = *state;
    char date[64], script[512];
    time_t when = time(NULL) + 30;
    struct tm tm;
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&when, &tm));
    snprintf(script, sizeof script,
             "{\"path\": \"/busy\", \"responses\": [{\"status\": 503, \"headers\": "
             "{\"Retry-After\": \"%s\"}}]}",
             date);
    post(e, "/_script", script);
    outcome_t o = {0};
    fetch_simple(e, &o, "/busy");
    assert_true(o.res.retriable);
    assert_int_equal(o.res.response_code, 503);
    assert_true(o.res.retry_after_ms >= 25000 && o.res.retry_after_ms <= 31000);
}

static void test_non_2xx_final_statuses(void **state)
{
    env_t *e = *state;
    outcome_t o = {0};
    fetch_simple(e, &o, "/status/304");
    assert_error(&o, "Error while processing response, Received status code 304 Not Modified, "
                     "retriable: false, internal: false");
    post(e, "/_script",
         "{\"path\": \"/no-location\", \"responses\": [{\"status\": 302, \"body\": \"x\"}]}");
    outcome_t r = {0};
    fetch_simple(e, &r, "/no-location");
    assert_error(&r, "Error while processing response, Received status code 302 Found, "
                     "retriable: false, internal: false");
    outcome_t n = {0};
    fetch_simple(e, &n, "/status/204");
    assert_ok(&n);
    unlink(n.tmp);
}

/* ---- broken transfers ------------------------------------------------------- */

static void test_short_body_unexpected_eof(void **state)
{
    env_t *e = *state;
    outcome_t o = {0};
    fetch_simple(e, &o, "/data/0?lie=42");
    assert_error(&o,
                 "Error while downloading file, unexpected EOF, retriable: true, internal: false");
    assert_string_equal(o.res.stat, "download.response.body");
    assert_int_equal(o.res.response_code, 200);
    outcome_t p = {0};
    fetch_simple(e, &p, "/data/3000?lie=9000");
    assert_error(&p,
                 "Error while downloading file, unexpected EOF, retriable: true, internal: false");
}

static void test_reset_mid_body(void **state)
{
    env_t *e = *state;
    outcome_t o = {0};
    fetch_simple(e, &o, "/data/500000?reset_after=60000");
    assert_error_has(&o, "Error while downloading file, ", "", true);
    assert_string_equal(o.res.stat, "download.response.body");
}

static void test_connection_refused(void **state)
{
    env_t *e = *state;
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", h_free_port());
    outcome_t o = {0};
    fetch_simple(e, &o, url);
    char prefix[256];
    snprintf(prefix, sizeof prefix, "Error while performing request, Get \"%s\": ", url);
    assert_error_has(&o, prefix, "", true);
    assert_int_equal(o.res.response_code, 0);
}

static void test_tls_error_from_curl_code(void **state)
{
    env_t *e = *state;
    char url[128], prefix[256];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/data/10", e->port); /* plain HTTP port */
    outcome_t o = {0};
    fetch_simple(e, &o, url);
    snprintf(prefix, sizeof prefix,
             "Error while performing request, TLS Error occured: Get \"%s\": ", url);
    assert_error_has(&o, prefix, "", false);
    assert_string_equal(o.res.stat, "download.response.tls");
    /* W11: "tls" or "x509" in the URL of a plain transport error is not a TLS error */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/tls/x509", h_free_port());
    outcome_t w = {0};
    fetch_simple(e, &w, url);
    assert_error_has(&w, "Error while performing request, Get \"", "", true);
    assert_string_equal(w.res.stat, "");
}

static void test_stall_low_speed_abort(void **state)
{
    env_t *e = *state;
    fetch_opts_t opts = opts_default();
    opts.low_speed_time_s = 1;
    outcome_t o = {0};
    long t0 = now_ms();
    fetch1(e, &o, &opts, "/data/100?stall=1", NULL);
    long took = now_ms() - t0;
    assert_error_has(&o, "Error while downloading file, ", "", true);
    assert_true(took >= 900 && took < 4000);
}

static void test_timeout_before_headers(void **state)
{
    env_t *e = *state;
    outcome_t o = {.timeout_s = 1};
    long t0 = now_ms();
    fetch_simple(e, &o, "/data/10?delay_ms=4000");
    assert_error_has(&o, "Error while performing request, Get \"", "", true);
    assert_true(now_ms() - t0 < 3000);
    outcome_t h = {.timeout_s = 1};
    fetch_simple(e, &h, "/headers-endless");
    assert_error_has(&h, "Error while performing request, Get \"", "", true);
}

static void test_timeout_during_body(void **state)
{
    env_t *e = *state;
    outcome_t o = {.timeout_s = 1};
    fetch_simple(e, &o, "/data/100000?chunk=1000&chunk_delay_ms=100");
    assert_error(&o, "Error while downloading file, context deadline exceeded, retriable: true, "
                     "internal: false");
}

static void test_max_file_size(void **state)
{
    env_t *e = *state;
    fetch_opts_t opts = opts_default();
    opts.max_file_size = 1000;
    const char *want = "Error while downloading file, file size exceeds max_file_size (1000 "
                       "bytes), retriable: false, internal: false";
    outcome_t cl = {0};
    fetch1(e, &cl, &opts, "/data/5000", NULL);
    assert_error(&cl, want);
    outcome_t chunked = {0};
    fetch1(e, &chunked, &opts, "/data/5000?nocl=1&chunk=300", NULL);
    assert_error(&chunked, want);
    assert_true(chunked.res.bytes <= 1000);
    outcome_t gz = {0};
    fetch1(e, &gz, &opts, "/data/5000?gzip=1", NULL); /* small on the wire, big decoded */
    assert_error(&gz, want);
    outcome_t exact = {0};
    fetch1(e, &exact, &opts, "/data/1000?nocl=1", NULL);
    assert_ok(&exact);
    check_pattern(exact.tmp, 1000);
    unlink(exact.tmp);
}

static void test_unsupported_scheme_and_bad_url(void **state)
{
    env_t *e = *state;
    outcome_t o = {0};
    fetch_simple(e, &o, "ftp://127.0.0.1/file");
    assert_error(&o, "Error while creating request, unsupported protocol scheme \"ftp\", "
                     "retriable: false, internal: false");
    outcome_t b = {0};
    fetch_simple(e, &b, "http://exa mple.com/x");
    assert_error_has(&b, "Error while creating request, parse \"http://exa mple.com/x\": ", "",
                     false);
    outcome_t n = {0};
    fetch_simple(e, &n, "foo");
    assert_error_has(&n, "Error while creating request, ", "", false);
}

/* mem_limit: a small body comes back in memory and no temp file is made. */
static void test_small_body_in_memory(void **state)
{
    env_t *e = *state;
    rig_t r;
    rig_init(&r, 0);
    fetch_opts_t opts = opts_default();
    outcome_t o = {.mem_limit = 16384, .hook = true};
    assert_non_null(start(&r, e, &o, &opts, "/data/5000", NULL));
    rig_wait(&r, &o, 1);
    rig_close(&r);
    assert_int_equal(o.calls, 1);
    assert_false(o.sync_done);
    assert_true(o.res.ok);
    assert_int_equal(o.head_calls, 1);
    assert_non_null(o.res.mem);
    assert_int_equal(o.res.mem_len, 5000);
    assert_int_equal(o.res.bytes, 5000);
    assert_int_equal(h_pattern_mismatch(o.res.mem, 5000), -1);
    assert_int_equal(access(o.tmp, F_OK), -1);
    free(o.res.mem);
}

/* mem_limit: a body that outgrows it mid-transfer continues into the temp file. */
static void test_large_body_switches_to_file(void **state)
{
    env_t *e = *state;
    rig_t r;
    rig_init(&r, 0);
    fetch_opts_t opts = opts_default();
    outcome_t o = {.mem_limit = 16384};
    assert_non_null(start(&r, e, &o, &opts, "/data/300000?chunk=7000&chunk_delay_ms=1", NULL));
    rig_wait(&r, &o, 1);
    rig_close(&r);
    assert_true(o.res.ok);
    assert_null(o.res.mem);
    assert_int_equal(o.res.bytes, 300000);
    check_pattern(o.tmp, 300000);
    unlink(o.tmp);
}

/* mem_limit: failures leave nothing behind and still complete asynchronously. */
static void test_memory_mode_failure(void **state)
{
    env_t *e = *state;
    rig_t r;
    rig_init(&r, 0);
    fetch_opts_t opts = opts_default();
    outcome_t o = {.mem_limit = 16384};
    assert_non_null(start(&r, e, &o, &opts, "/status/404", NULL));
    rig_wait(&r, &o, 1);
    rig_close(&r);
    assert_int_equal(o.calls, 1);
    assert_false(o.sync_done);
    assert_false(o.res.ok);
    assert_null(o.res.mem);
    assert_int_equal(access(o.tmp, F_OK), -1);
}

/* A file-size limit of this host (EFBIG, here RLIMIT_FSIZE) is ours, like a full disk:
 * internal, so the attempt is not used up; the temp file goes. */
static void test_file_too_large_is_internal(void **state)
{
    env_t *e = *state;
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 100000;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    outcome_t o = {0};
    fetch_simple(e, &o, "/data/300000");
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    assert_error(&o, "Error while downloading file, file too large, retriable: true, "
                     "internal: true");
    assert_true(o.res.internal);
}

static void test_tmp_file_cannot_be_created(void **state)
{
    (void)state;
    rig_t r;
    rig_init(&r, 0);
    fetch_opts_t opts = opts_default();
    outcome_t o = {0};
    fetch_req_t req = {.url = "http://127.0.0.1:1/x", .tmp_path = "/nonexistent-dir/x.tmp"};
    snprintf(o.tmp, sizeof o.tmp, "%s", req.tmp_path);
    o.f = fetch_start(&r.loop, r.m, &opts, &req, on_done, &o);
    o.started = true;
    assert_non_null(o.f);
    rig_wait(&r, &o, 1);
    rig_close(&r);
    check_outcome(&o);
    assert_error(&o, "Error while creating tmp file, no such file or directory, retriable: true, "
                     "internal: true");
    assert_string_equal(o.res.stat, "failures");
}

/* ---- head hook -------------------------------------------------------------- */

static void test_head_hook_sees_first_kib(void **state)
{
    env_t *e = *state;
    outcome_t big = {.hook = true};
    fetch_simple(e, &big, "/data/100000?chunk=700");
    assert_ok(&big);
    assert_int_equal(big.head_calls, 1);
    assert_int_equal(big.head_len, FETCH_HEAD_SIZE);
    unlink(big.tmp);
    outcome_t small = {.hook = true};
    fetch_simple(e, &small, "/file/image.png");
    assert_ok(&small);
    assert_int_equal(small.head_calls, 1);
    assert_int_equal(small.head_len, 75);
    assert_int_equal(small.head0, 0x89);
    unlink(small.tmp);
    outcome_t err = {.hook = true};
    fetch_simple(e, &err, "/status/404");
    assert_int_equal(err.head_calls, 0); /* error bodies are not read */
}

static void test_head_hook_rejects(void **state)
{
    env_t *e = *state;
    outcome_t big = {.hook = true, .reject = true};
    fetch_simple(e, &big, "/data/100000");
    assert_error(&big, "Error while validating mime type, Expected mime-type to be (image/*), "
                       "found (application/octet-stream), retriable: false, internal: false");
    assert_string_equal(big.res.stat, "download.response.mime");
    assert_int_equal(big.res.response_code, 200);
    outcome_t small = {.hook = true, .reject = true};
    fetch_simple(e, &small, "/data/10");
    assert_false(small.res.ok);
    assert_false(small.res.retriable);
    assert_string_equal(small.res.stat, "download.response.mime");
}

/* ---- cancellation ----------------------------------------------------------- */

static void cancel_tick(uv_timer_t *t)
{
    outcome_t *o = t->data;
    if (o->calls == 0) fetch_cancel(o->f);
}

static void cancel_after(env_t *e, outcome_t *o, const char *url, long ms)
{
    rig_t r;
    rig_init(&r, 0);
    fetch_opts_t opts = opts_default();
    assert_non_null(start(&r, e, o, &opts, url, NULL));
    uv_timer_t t;
    if (ms < 0) {
        fetch_cancel(o->f);
    } else {
        uv_timer_init(&r.loop, &t);
        t.data = o;
        uv_timer_start(&t, cancel_tick, (uint64_t)ms, 0);
    }
    rig_wait(&r, o, 1);
    if (ms >= 0) uv_close((uv_handle_t *)&t, NULL);
    rig_close(&r);
    check_outcome(o);
    assert_true(o->res.cancelled);
    assert_true(o->res.retriable);
    assert_false(o->res.internal);
    assert_non_null(strstr(o->res.error, "context canceled"));
}

static void test_cancel(void **state)
{
    env_t *e = *state;
    outcome_t waiting = {0};
    cancel_after(e, &waiting, "/data/10?delay_ms=5000", 300);
    assert_error_has(&waiting, "Error while performing request, Get \"", "context canceled", true);
    outcome_t body = {0};
    cancel_after(e, &body, "/data/100000?chunk=1000&chunk_delay_ms=50", 300);
    assert_error(&body, "Error while downloading file, context canceled, retriable: true, "
                        "internal: false");
    outcome_t stall = {0};
    cancel_after(e, &stall, "/data/100?stall=1", 300);
    outcome_t at_once = {0};
    cancel_after(e, &at_once, "/data/10", -1);
    outcome_t in_hook = {.hook = true, .cancel_in_hook = true};
    cancel_after(e, &in_hook, "/data/100000", 5000);
}

/* ---- transport -------------------------------------------------------------- */

static void test_aggregation_proxy(void **state)
{
    env_t *e = *state;
    outcome_t o = {.proxy = e->base};
    fetch_simple(e, &o, "http://proxied.invalid/data/10?tag=px1");
    assert_ok(&o);
    check_pattern(o.tmp, 10);
    unlink(o.tmp);
    yajl_val root;
    yajl_val r = find_request(e, "tag=px1", &root);
    assert_string_equal(req_string(r, "target"), "http://proxied.invalid/data/10?tag=px1");
    yajl_tree_free(root);
}

static void test_environment_proxy(void **state)
{
    env_t *e = *state;
    setenv("http_proxy", e->base, 1);
    outcome_t o = {0};
    fetch_simple(e, &o, "http://proxied.invalid/data/10?tag=px2");
    assert_ok(&o);
    unlink(o.tmp);
    setenv("http_proxy", "http://127.0.0.1:1", 1); /* dead, but loopback is never proxied */
    outcome_t l = {0};
    fetch_simple(e, &l, "/data/10?tag=px3");
    unsetenv("http_proxy");
    assert_ok(&l);
    unlink(l.tmp);
    yajl_val root;
    yajl_val r = find_request(e, "tag=px2", &root);
    assert_string_equal(req_string(r, "target"), "http://proxied.invalid/data/10?tag=px2");
    yajl_tree_free(root);
}

/* The origin's TCP connection number of the request whose query is `query`. */
static long long conn_of(env_t *e, const char *query)
{
    yajl_val root;
    long long conn = req_int(find_request(e, query, &root), "conn");
    yajl_tree_free(root);
    return conn;
}

static void test_connection_reused(void **state)
{
    env_t *e = *state;
    rig_t r;
    rig_init(&r, 0);
    fetch_opts_t opts = opts_default();
    outcome_t a = {0}, b = {0};
    start(&r, e, &a, &opts, "/data/10?tag=re1", NULL);
    rig_wait(&r, &a, 1);
    start(&r, e, &b, &opts, "/data/10?tag=re2", NULL);
    rig_wait(&r, &b, 1);
    rig_close(&r);
    assert_ok(&a);
    assert_ok(&b);
    unlink(a.tmp);
    unlink(b.tmp);
    long long ca = conn_of(e, "tag=re1"), cb = conn_of(e, "tag=re2");
    assert_true(ca > 0);
    assert_int_equal(ca, cb);
}

static void on_idle_over(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

static double cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

/* An idle keep-alive connection stays watched between transfers (curlm parks its poll
 * handle). When the server drops it, the loop must not spin on the readable socket,
 * and the next transfer must notice the dead connection and open a new one. */
static void test_idle_connection_dropped_by_server(void **state)
{
    env_t *e = *state;
    rig_t r;
    rig_init(&r, 0);
    fetch_opts_t opts = opts_default();
    outcome_t a = {0}, b = {0};
    start(&r, e, &a, &opts, "/data/10?tag=dr1&close_idle_ms=50", NULL);
    rig_wait(&r, &a, 1);
    bool over = false;
    uv_timer_t idle;
    uv_timer_init(&r.loop, &idle);
    idle.data = &over;
    uv_timer_start(&idle, on_idle_over, 400, 0);
    double c0 = cpu_ms();
    while (!over)
        uv_run(&r.loop, UV_RUN_ONCE);
    double spent = cpu_ms() - c0;
    uv_close((uv_handle_t *)&idle, NULL);
    print_message("# %.1f ms CPU while the dropped connection sat idle for 400 ms\n", spent);
    assert_true(spent < 100);
    start(&r, e, &b, &opts, "/data/10?tag=dr2", NULL);
    rig_wait(&r, &b, 1);
    rig_close(&r);
    assert_ok(&a);
    assert_ok(&b);
    unlink(a.tmp);
    unlink(b.tmp);
    long long ca = conn_of(e, "tag=dr1&close_idle_ms=50"), cb = conn_of(e, "tag=dr2");
    assert_true(ca > 0 && cb > 0);
    assert_true(ca != cb);
}

static long long aggr_stat(env_t *e, const char *aggr, const char *key)
{
    char *body = get(e, "/_stats");
    char err[256];
    yajl_val root = yajl_tree_parse(body, err, sizeof err);
    free(body);
    const char *p[] = {aggr, key, NULL};
    yajl_val v = yajl_tree_get(root, p, yajl_t_number);
    long long n = v ? YAJL_GET_INTEGER(v) : -1;
    yajl_tree_free(root);
    return n;
}

static void test_max_host_connections(void **state)
{
    env_t *e = *state;
    rig_t r;
    rig_init(&r, 2);
    fetch_opts_t opts = opts_default();
    outcome_t o[8];
    memset(o, 0, sizeof o);
    for (int i = 0; i < 8; i++)
        start(&r, e, &o[i], &opts, "/data/100?delay_ms=100&aggr=mh", NULL);
    rig_wait(&r, o, 8);
    rig_close(&r);
    for (int i = 0; i < 8; i++) {
        assert_ok(&o[i]);
        unlink(o[i].tmp);
    }
    assert_int_equal(aggr_stat(e, "mh", "count"), 8);
    assert_true(aggr_stat(e, "mh", "max") <= 2);
}

static void test_200_concurrent(void **state)
{
    env_t *e = *state;
    enum { N = 200 };
    rig_t r;
    rig_init(&r, 0);
    fetch_opts_t opts = opts_default();
    outcome_t *o = calloc(N, sizeof *o);
    long t0 = now_ms();
    for (int i = 0; i < N; i++)
        assert_non_null(
            start(&r, e, &o[i], &opts, "/data/20000?chunk=4000&chunk_delay_ms=50&aggr=c200", NULL));
    rig_wait(&r, o, N);
    long took = now_ms() - t0;
    rig_close(&r);
    for (int i = 0; i < N; i++) {
        check_outcome(&o[i]);
        assert_ok(&o[i]);
        check_pattern(o[i].tmp, 20000);
        unlink(o[i].tmp);
    }
    free(o);
    assert_int_equal(aggr_stat(e, "c200", "count"), N);
    assert_true(aggr_stat(e, "c200", "max") > N / 2);
    print_message("200 concurrent transfers of 20 kB (slow origin) took %ld ms\n", took);
}

/* ---- curlm on its own ------------------------------------------------------- */

typedef struct {
    int done_calls;
    rig_t *rig;
    bool close_in_done;
} raw_t;

static void raw_done(CURL *easy, CURLcode rc, void *arg)
{
    raw_t *x = arg;
    (void)easy, (void)rc;
    x->done_calls++;
    if (x->close_in_done) curlm_close(x->rig->m, on_closed, x->rig);
}

static size_t sink(char *d, size_t s, size_t n, void *arg)
{
    (void)d, (void)arg;
    return s * n;
}

static CURL *raw_easy(env_t *e, const char *path)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", e->base, path);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    return c;
}

static void close_tick(uv_timer_t *t)
{
    rig_t *r = t->data;
    curlm_close(r->m, on_closed, r);
    uv_close((uv_handle_t *)t, NULL);
}

static void test_curlm_close_with_transfers(void **state)
{
    env_t *e = *state;
    rig_t r;
    rig_init(&r, 0);
    raw_t x = {.rig = &r};
    CURL *a = raw_easy(e, "/data/100?stall=1"), *b = raw_easy(e, "/data/10?delay_ms=3000");
    assert_int_equal(curlm_add(r.m, a, raw_done, &x), 0);
    assert_int_equal(curlm_add(r.m, b, raw_done, &x), 0);
    assert_int_equal(curlm_active(r.m), 2);
    uv_timer_t t;
    uv_timer_init(&r.loop, &t);
    t.data = &r;
    uv_timer_start(&t, close_tick, 300, 0);
    while (!r.closed)
        uv_run(&r.loop, UV_RUN_ONCE);
    uv_run(&r.loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&r.loop), 0);
    assert_int_equal(x.done_calls, 0); /* removed without callbacks */
    curl_easy_cleanup(a);
    curl_easy_cleanup(b);
}

static void test_curlm_remove_and_close_in_done(void **state)
{
    env_t *e = *state;
    rig_t r;
    rig_init(&r, 0);
    raw_t removed = {.rig = &r}, closing = {.rig = &r, .close_in_done = true};
    CURL *a = raw_easy(e, "/data/10?delay_ms=200"), *b = raw_easy(e, "/data/10");
    assert_int_equal(curlm_add(r.m, a, raw_done, &removed), 0);
    assert_int_equal(curlm_add(r.m, b, raw_done, &closing), 0);
    curlm_remove(r.m, a);
    assert_int_equal(curlm_active(r.m), 1);
    while (!r.closed)
        uv_run(&r.loop, UV_RUN_ONCE);
    uv_run(&r.loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&r.loop), 0);
    assert_int_equal(removed.done_calls, 0);
    assert_int_equal(closing.done_calls, 1);
    curl_easy_cleanup(a);
    curl_easy_cleanup(b);
}

static void test_progress(void **state)
{
    env_t *e = *state;
    rig_t r;
    rig_init(&r, 0);
    fetch_opts_t opts = opts_default();
    outcome_t o = {0};
    start(&r, e, &o, &opts, "/data/50000?chunk=5000&chunk_delay_ms=100", NULL);
    uint64_t got = 0;
    int64_t total = 0;
    long end = now_ms() + 5000;
    while (o.calls == 0 && got == 0 && now_ms() < end) {
        uv_run(&r.loop, UV_RUN_ONCE);
        if (o.calls == 0) fetch_progress(o.f, &got, &total, NULL);
    }
    assert_true(got > 0 && got < 50000);
    assert_int_equal(total, 50000);
    rig_wait(&r, &o, 1);
    rig_close(&r);
    assert_ok(&o);
    unlink(o.tmp);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    log_init(); /* DOWNLOADER_LOG_LEVEL=debug shows every download */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_headers_defaults_only),
        cmocka_unit_test(test_headers_job_overrides),
        cmocka_unit_test(test_headers_job_accept_encoding),
        cmocka_unit_test(test_invalid_header_is_final),
        cmocka_unit_test(test_gzip_decoded_without_accept_encoding),
        cmocka_unit_test(test_gzip_raw_with_accept_encoding),
        cmocka_unit_test(test_one_mib_byte_for_byte),
        cmocka_unit_test(test_body_with_busy_thread_pool),
        cmocka_unit_test(test_empty_body_ok),
        cmocka_unit_test(test_redirects_followed),
        cmocka_unit_test(test_too_many_redirects),
        cmocka_unit_test(test_redirect_to_other_scheme),
        cmocka_unit_test(test_guard_refuses_loopback),
        cmocka_unit_test(test_guard_allow_list),
        cmocka_unit_test(test_guard_redirect_to_refused),
        cmocka_unit_test(test_guard_checks_the_proxy),
        cmocka_unit_test(test_404_final),
        cmocka_unit_test(test_500_retriable),
        cmocka_unit_test(test_429_retry_after),
        cmocka_unit_test(test_503_retry_after_date),
        cmocka_unit_test(test_non_2xx_final_statuses),
        cmocka_unit_test(test_short_body_unexpected_eof),
        cmocka_unit_test(test_reset_mid_body),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_tls_error_from_curl_code),
        cmocka_unit_test(test_stall_low_speed_abort),
        cmocka_unit_test(test_timeout_before_headers),
        cmocka_unit_test(test_timeout_during_body),
        cmocka_unit_test(test_max_file_size),
        cmocka_unit_test(test_unsupported_scheme_and_bad_url),
        cmocka_unit_test(test_file_too_large_is_internal),
        cmocka_unit_test(test_tmp_file_cannot_be_created),
        cmocka_unit_test(test_small_body_in_memory),
        cmocka_unit_test(test_large_body_switches_to_file),
        cmocka_unit_test(test_memory_mode_failure),
        cmocka_unit_test(test_head_hook_sees_first_kib),
        cmocka_unit_test(test_head_hook_rejects),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_aggregation_proxy),
        cmocka_unit_test(test_environment_proxy),
        cmocka_unit_test(test_connection_reused),
        cmocka_unit_test(test_idle_connection_dropped_by_server),
        cmocka_unit_test(test_max_host_connections),
        cmocka_unit_test(test_200_concurrent),
        cmocka_unit_test(test_curlm_close_with_transfers),
        cmocka_unit_test(test_curlm_remove_and_close_in_done),
        cmocka_unit_test(test_progress),
    };
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    curl_global_cleanup();
    return rc;
}
