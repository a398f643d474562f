/* test_httpd: drives the HTTP server over real loopback sockets. The uv loop (and
 * so the server and the test handler) runs on the main thread; each scenario is a
 * blocking client on a second thread that records its first failure as text, which
 * the main thread asserts on once the loop has finished (cmocka is not
 * thread-safe). At the end of a scenario the client wakes the loop through an
 * async handle, which stops the server and lets uv_run return. */
#include "httpd.h"
#include "log.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define CLI_BUF (256 * 1024)
#define RESP_HEAD 8192
#define RESP_BODY (128 * 1024)

typedef struct fixture fixture_t;
typedef int (*scenario_fn)(fixture_t *f);

struct fixture {
    uv_loop_t loop;
    uv_async_t async;
    httpd_t *h;
    int port;
    httpd_limits_t lim;
    const char *host;
    scenario_fn scenario;
    atomic_int stop_requested;
    atomic_int finished;
    atomic_int stop_done;
    atomic_int handled;
    bool stopped;
    char err[1024];
};

/* ---------- server side (loop thread) ---------- */

typedef struct {
    uv_timer_t timer;
    httpd_req_t *req;
} delayed_t;

static void echo(httpd_req_t *req)
{
    const char *xt = httpd_req_header(req, "x-test");
    size_t cap = req->body_len + strlen(req->path) + strlen(req->query) + 256;
    char *out = malloc(cap);
    int n = snprintf(out, cap, "%s %s q=%s h=%s b=%zu:%s", req->method, req->path, req->query,
                     xt ? xt : "-", req->body_len, req->body);
    httpd_header_t hdrs[] = {{"Content-Type", "text/plain"}, {"X-Target", req->target}};
    httpd_respond(req, 200, hdrs, 2, out, (size_t)n);
    free(out);
}

/* Answers the test paths that are not an echo; false for anything else. */
static bool special(httpd_req_t *req)
{
    char small[160];
    if (strcmp(req->path, "/big") == 0) {
        size_t n = strtoul(req->query, NULL, 10);
        char *b = malloc(n + 1);
        for (size_t i = 0; i < n; i++)
            b[i] = (char)('a' + i % 26);
        httpd_respond(req, 200, NULL, 0, b, n);
        free(b);
    } else if (strcmp(req->path, "/len") == 0) {
        unsigned sum = 0;
        for (size_t i = 0; i < req->body_len; i++)
            sum = sum * 31 + (unsigned char)req->body[i];
        int n = snprintf(small, sizeof small, "len=%zu sum=%u hdrs=%zu", req->body_len, sum,
                         req->n_headers);
        httpd_respond(req, 200, NULL, 0, small, (size_t)n);
    } else if (strcmp(req->path, "/status") == 0) {
        httpd_respond(req, atoi(req->query), NULL, 0, "body", 4);
    } else if (strcmp(req->path, "/bighead") == 0) {
        char *v = malloc(3001);
        memset(v, 'h', 3000);
        v[3000] = 0;
        httpd_header_t hd[] = {{"X-Big", v}, {"Bad\r\nName", "x"}, {"Content-Length", "1"}};
        httpd_respond(req, 200, hd, 3, "ok", 2);
        free(v);
    } else if (strcmp(req->path, "/bigerr") == 0) {
        char *m = malloc(1001);
        memset(m, 'e', 1000);
        m[1000] = 0;
        httpd_respond_error(req, 500, m);
        free(m);
    } else if (strcmp(req->path, "/peer") == 0) {
        httpd_respond(req, 200, NULL, 0, req->peer, strlen(req->peer));
    } else {
        return false;
    }
    return true;
}

static void on_delay_closed(uv_handle_t *h)
{
    free(h);
}

static void on_delay(uv_timer_t *t)
{
    delayed_t *d = (delayed_t *)t;
    echo(d->req);
    uv_close((uv_handle_t *)t, on_delay_closed);
}

static void handler(httpd_req_t *req, void *arg)
{
    fixture_t *f = arg;
    atomic_fetch_add(&f->handled, 1);
    if (strcmp(req->path, "/async") == 0) {
        delayed_t *d = malloc(sizeof *d);
        d->req = req;
        uv_timer_init(&f->loop, &d->timer);
        uv_timer_start(&d->timer, on_delay, (uint64_t)(*req->query ? atoi(req->query) : 100), 0);
        return;
    }
    if (strcmp(req->path, "/notfound") == 0) {
        httpd_respond_error(req, 404, "nope");
        return;
    }
    if (special(req)) return;
    echo(req);
}

static void on_stopped(void *arg)
{
    fixture_t *f = arg;
    atomic_store(&f->stop_done, 1);
}

static void on_async(uv_async_t *a)
{
    fixture_t *f = a->data;
    bool stop = atomic_exchange(&f->stop_requested, 0) || atomic_load(&f->finished);
    if (stop && !f->stopped) {
        f->stopped = true;
        httpd_stop(f->h, on_stopped, f);
    }
    if (atomic_load(&f->finished)) uv_close((uv_handle_t *)a, NULL);
}

static void *client_main(void *arg)
{
    fixture_t *f = arg;
    f->scenario(f);
    atomic_store(&f->finished, 1);
    uv_async_send(&f->async);
    return NULL;
}

/* Runs scenario as a client against a fresh server with the given limits. */
static void run_scenario_on(const char *host, const httpd_limits_t *lim, scenario_fn scenario)
{
    fixture_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_async_init(&f->loop, &f->async, on_async), 0);
    f->async.data = f;
    if (lim) f->lim = *lim;
    f->scenario = scenario;
    char err[256] = "";
    f->h = httpd_start(&f->loop, host, 0, &f->lim, handler, f, err, sizeof err);
    if (!f->h) fail_msg("httpd_start: %s", err);
    f->port = httpd_port(f->h);
    assert_true(f->port > 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, client_main, f), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    pthread_join(th, NULL);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    char msg[sizeof f->err];
    memcpy(msg, f->err, sizeof msg);
    int done = atomic_load(&f->stop_done);
    free(f);
    if (msg[0]) fail_msg("%s", msg);
    assert_true(done);
}

static void run_scenario(const httpd_limits_t *lim, scenario_fn scenario)
{
    run_scenario_on("127.0.0.1", lim, scenario);
}

/* ---------- client side (client thread) ---------- */

#define FAILF(f, ...)                                                                              \
    do {                                                                                           \
        if (!(f)->err[0]) {                                                                        \
            int n_ = snprintf((f)->err, sizeof(f)->err, "%s:%d: ", __FILE__, __LINE__);            \
            snprintf((f)->err + n_, sizeof(f)->err - (size_t)n_, __VA_ARGS__);                     \
        }                                                                                          \
        return -1;                                                                                 \
    } while (0)
#define CHECK(f, cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) FAILF(f, "CHECK(%s)", #cond);                                                 \
    } while (0)
#define CHECK_STR(f, got, want)                                                                    \
    do {                                                                                           \
        const char *g_ = (got), *w_ = (want);                                                      \
        if (!g_ || strcmp(g_, w_) != 0)                                                            \
            FAILF(f, "got [%.400s] want [%.400s]", g_ ? g_ : "(null)", w_);                        \
    } while (0)
#define CHECK_INT(f, got, want)                                                                    \
    do {                                                                                           \
        long g_ = (long)(got), w_ = (long)(want);                                                  \
        if (g_ != w_) FAILF(f, "%s = %ld, want %ld", #got, g_, w_);                                \
    } while (0)
#define TRY(f, call)                                                                               \
    do {                                                                                           \
        if ((call) < 0) FAILF(f, "%s failed", #call);                                              \
    } while (0)

typedef struct {
    int fd;
    size_t len;
    char buf[CLI_BUF];
} cli_t;

typedef struct {
    int status;
    char head[RESP_HEAD];
    char body[RESP_BODY];
    size_t body_len;
} resp_t;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Connects to 127.0.0.1:port from the loopback address src (host order; 0: any). */
static int tcp_connect_from(int port, uint32_t src)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in from = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(src)};
    if (src && bind(fd, (struct sockaddr *)&from, sizeof from) < 0) {
        close(fd);
        return -1;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int tcp_connect(int port)
{
    return tcp_connect_from(port, 0);
}

static cli_t *cli_open_from(fixture_t *f, uint32_t src)
{
    cli_t *c = calloc(1, sizeof *c);
    c->fd = tcp_connect_from(f->port, src);
    if (c->fd < 0) {
        free(c);
        return NULL;
    }
    return c;
}

static cli_t *cli_open(fixture_t *f)
{
    cli_t *c = calloc(1, sizeof *c);
    c->fd = tcp_connect(f->port);
    if (c->fd < 0) {
        free(c);
        return NULL;
    }
    return c;
}

static void cli_close(cli_t *c)
{
    if (!c) return;
    close(c->fd);
    free(c);
}

static int cli_send(cli_t *c, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

static int cli_sends(cli_t *c, const char *s)
{
    return cli_send(c, s, strlen(s));
}

/* Reads more into c->buf; -1 on EOF, error or timeout. */
static int cli_fill(cli_t *c)
{
    if (c->len == sizeof c->buf) return -1;
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    if (n <= 0) return -1;
    c->len += (size_t)n;
    return 0;
}

static void cli_consume(cli_t *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* Value of a response header (case-insensitive name) copied into out, or NULL. */
static const char *resp_header(const resp_t *r, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, nl) != 0 || line[nl] != ':') continue;
        const char *v = line + nl + 1;
        while (*v == ' ')
            v++;
        size_t vl = strcspn(v, "\r");
        if (vl >= cap) vl = cap - 1;
        memcpy(out, v, vl);
        out[vl] = 0;
        return out;
    }
    return NULL;
}

/* Reads a status line and headers; returns the body length to expect, or -1. */
static long cli_read_head(cli_t *c, resp_t *r, bool head_req)
{
    char *end;
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
        if (cli_fill(c) < 0) return -1;
    size_t hl = (size_t)(end - c->buf) + 4;
    if (hl >= sizeof r->head) return -1;
    memcpy(r->head, c->buf, hl);
    r->head[hl] = 0;
    cli_consume(c, hl);
    if (sscanf(r->head, "HTTP/1.1 %d ", &r->status) != 1) return -1;
    char v[64];
    long cl = 0;
    if (resp_header(r, "Content-Length", v, sizeof v)) cl = strtol(v, NULL, 10);
    if (head_req || r->status < 200 || r->status == 204 || r->status == 304) cl = 0;
    return cl;
}

/* Reads one response (status line, headers, Content-Length body). */
static int cli_read_resp(cli_t *c, resp_t *r, bool head_req)
{
    long cl = cli_read_head(c, r, head_req);
    if (cl < 0 || (size_t)cl >= sizeof r->body) return -1;
    while (c->len < (size_t)cl)
        if (cli_fill(c) < 0) return -1;
    memcpy(r->body, c->buf, (size_t)cl);
    r->body[cl] = 0;
    r->body_len = (size_t)cl;
    cli_consume(c, (size_t)cl);
    return 0;
}

/* Reads a response with a large /big body and checks its pattern; body length or -1. */
static long cli_read_big(cli_t *c, resp_t *r)
{
    long cl = cli_read_head(c, r, false);
    for (long got = 0; cl >= 0 && got < cl;) {
        if (c->len == 0 && cli_fill(c) < 0) return -1;
        size_t k = c->len < (size_t)(cl - got) ? c->len : (size_t)(cl - got);
        for (size_t i = 0; i < k; i++)
            if (c->buf[i] != (char)('a' + (got + (long)i) % 26)) return -1;
        cli_consume(c, k);
        got += (long)k;
    }
    return cl;
}

/* The server closed the connection (EOF or reset) without sending anything more. */
static bool cli_eof(cli_t *c)
{
    if (c->len) return false;
    char b[256];
    ssize_t n = recv(c->fd, b, sizeof b, 0);
    return n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE));
}

/* Sends req on a fresh connection and reads one response. */
static int roundtrip(fixture_t *f, const char *req, resp_t *r)
{
    cli_t *c = cli_open(f);
    if (!c) return -1;
    int rc = cli_sends(c, req);
    if (rc == 0) rc = cli_read_resp(c, r, false);
    cli_close(c);
    return rc;
}

static int wait_handled(fixture_t *f, int n)
{
    for (int i = 0; i < 3000 && atomic_load(&f->handled) < n; i++)
        sleep_ms(1);
    return atomic_load(&f->handled) >= n ? 0 : -1;
}

static void request_stop(fixture_t *f)
{
    atomic_store(&f->stop_requested, 1);
    uv_async_send(&f->async);
}

static bool valid_imf_date(const char *d)
{
    char day[4], mon[4];
    int dd, yy, h, m, s;
    char tail[8];
    if (strlen(d) != 29) return false;
    if (sscanf(d, "%3s, %2d %3s %4d %2d:%2d:%2d %3s", day, &dd, mon, &yy, &h, &m, &s, tail) != 8)
        return false;
    return strcmp(tail, "GMT") == 0 && d[3] == ',' && yy >= 2020;
}

static resp_t *new_resp(void)
{
    return calloc(1, sizeof(resp_t));
}

/* ---------- scenarios ---------- */

static int sc_simple_get(fixture_t *f)
{
    resp_t *r = new_resp();
    cli_t *c = cli_open(f);
    CHECK(f, c);
    TRY(f, cli_sends(c, "GET /hello?x=1 HTTP/1.1\r\nHost: t\r\nX-TEST:  v1  \r\n\r\n"));
    TRY(f, cli_read_resp(c, r, false));
    CHECK_INT(f, r->status, 200);
    CHECK(f, strncmp(r->head, "HTTP/1.1 200 OK\r\n", 17) == 0);
    CHECK_STR(f, r->body, "GET /hello q=x=1 h=v1 b=0:");
    char v[128];
    CHECK_STR(f, resp_header(r, "Content-Length", v, sizeof v), "26");
    CHECK_STR(f, resp_header(r, "Content-Type", v, sizeof v), "text/plain");
    CHECK_STR(f, resp_header(r, "X-Target", v, sizeof v), "/hello?x=1");
    CHECK(f, resp_header(r, "Date", v, sizeof v) && valid_imf_date(v));
    CHECK(f, !resp_header(r, "Connection", v, sizeof v));
    cli_close(c);
    free(r);
    return 0;
}

static int sc_post_content_length(fixture_t *f)
{
    resp_t *r = new_resp();
    TRY(f, roundtrip(f,
                     "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n"
                     "hello world",
                     r));
    CHECK_INT(f, r->status, 200);
    CHECK_STR(f, r->body, "POST /echo q= h=- b=11:hello world");
    free(r);
    return 0;
}

static int sc_chunked(fixture_t *f)
{
    resp_t *r = new_resp();
    TRY(f, roundtrip(f,
                     "POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: y\r\n\r\n",
                     r));
    CHECK_INT(f, r->status, 200);
    CHECK_STR(f, r->body, "POST /c q= h=- b=11:hello world");
    free(r);
    return 0;
}

static int sc_pipelined_async(fixture_t *f)
{
    resp_t *r = new_resp();
    cli_t *c = cli_open(f);
    CHECK(f, c);
    TRY(f, cli_sends(c, "GET /async?150 HTTP/1.1\r\nHost: t\r\n\r\n"
                        "GET /second HTTP/1.1\r\nHost: t\r\n\r\n"
                        "POST /third HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"));
    TRY(f, cli_read_resp(c, r, false));
    CHECK_STR(f, r->body, "GET /async q=150 h=- b=0:");
    TRY(f, cli_read_resp(c, r, false));
    CHECK_STR(f, r->body, "GET /second q= h=- b=0:");
    TRY(f, cli_read_resp(c, r, false));
    CHECK_STR(f, r->body, "POST /third q= h=- b=3:abc");
    CHECK_INT(f, atomic_load(&f->handled), 3);
    cli_close(c);
    free(r);
    return 0;
}

static int sc_byte_by_byte(fixture_t *f)
{
    static const char req[] = "POST /bytes?a=b HTTP/1.1\r\nHost: t\r\nX-Test: split\r\n"
                              "Content-Length: 5\r\n\r\n12345"
                              "POST /ch HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "3\r\nabc\r\n0\r\n\r\n";
    resp_t *r = new_resp();
    cli_t *c = cli_open(f);
    CHECK(f, c);
    for (size_t i = 0; i < sizeof req - 1; i++) {
        TRY(f, cli_send(c, req + i, 1));
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    TRY(f, cli_read_resp(c, r, false));
    CHECK_STR(f, r->body, "POST /bytes q=a=b h=split b=5:12345");
    TRY(f, cli_read_resp(c, r, false));
    CHECK_STR(f, r->body, "POST /ch q= h=- b=3:abc");
    cli_close(c);
    free(r);
    return 0;
}

static int sc_body_too_large(fixture_t *f)
{
    resp_t *r = new_resp();
    char *big = malloc(70000);
    int n = snprintf(big, 70000, "POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 60000\r\n\r\n");
    memset(big + n, 'x', 60000);
    cli_t *c = cli_open(f);
    CHECK(f, c);
    TRY(f, cli_send(c, big, (size_t)n + 60000));
    TRY(f, cli_read_resp(c, r, false));
    CHECK_INT(f, r->status, 413);
    char v[64];
    CHECK_STR(f, resp_header(r, "Connection", v, sizeof v), "close");
    CHECK(f, cli_eof(c));
    cli_close(c);
    /* chunked: the limit is found while reading the body */
    c = cli_open(f);
    CHECK(f, c);
    TRY(f, cli_sends(c, "POST /big HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"));
    memset(big, 'y', 60000);
    for (int i = 0; i < 3; i++) {
        TRY(f, cli_sends(c, "320\r\n")); /* 800 bytes */
        TRY(f, cli_send(c, big, 800));
        TRY(f, cli_sends(c, "\r\n"));
    }
    TRY(f, cli_read_resp(c, r, false));
    CHECK_INT(f, r->status, 413);
    CHECK(f, cli_eof(c));
    cli_close(c);
    CHECK_INT(f, atomic_load(&f->handled), 0);
    free(big);
    free(r);
    return 0;
}

static int sc_headers_too_large(fixture_t *f)
{
    resp_t *r = new_resp();
    char *big = malloc(8000);
    int n = snprintf(big, 8000, "GET / HTTP/1.1\r\nX-Big: ");
    memset(big + n, 'a', 3000);
    strcpy(big + n + 3000, "\r\n\r\n");
    cli_t *c = cli_open(f);
    CHECK(f, c);
    TRY(f, cli_sends(c, big));
    TRY(f, cli_read_resp(c, r, false));
    CHECK_INT(f, r->status, 431);
    CHECK_STR(f, r->body, "Request Header Fields Too Large\n");
    CHECK(f, cli_eof(c));
    cli_close(c);
    /* too many (small) headers */
    n = snprintf(big, 8000, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 120; i++)
        n += snprintf(big + n, 8000 - (size_t)n, "H%d: v\r\n", i);
    snprintf(big + n, 8000 - (size_t)n, "\r\n");
    TRY(f, roundtrip(f, big, r));
    CHECK_INT(f, r->status, 431);
    CHECK_INT(f, atomic_load(&f->handled), 0);
    free(big);
    free(r);
    return 0;
}

static int sc_garbage(fixture_t *f)
{
    resp_t *r = new_resp();
    cli_t *c = cli_open(f);
    CHECK(f, c);
    TRY(f, cli_send(c, "\x16\x03\x01\x00\xa5garbage\r\n\r\n", 16));
    TRY(f, cli_read_resp(c, r, false));
    CHECK_INT(f, r->status, 400);
    CHECK_STR(f, r->body, "Bad Request\n");
    char v[64];
    CHECK_STR(f, resp_header(r, "Connection", v, sizeof v), "close");
    CHECK(f, cli_eof(c));
    cli_close(c);
    TRY(f, roundtrip(f, "GET /a%zz HTTP/1.1\r\n\r\n", r));
    CHECK_INT(f, r->status, 400);
    TRY(f, roundtrip(f, "GET /a%00b HTTP/1.1\r\n\r\n", r));
    CHECK_INT(f, r->status, 400);
    TRY(f, roundtrip(f, "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", r));
    CHECK_INT(f, r->status, 400);
    /* a good request before the garbage is still answered first */
    c = cli_open(f);
    CHECK(f, c);
    TRY(f, cli_sends(c, "GET /ok HTTP/1.1\r\n\r\nBLAH BLAH\r\n\r\n"));
    TRY(f, cli_read_resp(c, r, false));
    CHECK_INT(f, r->status, 200);
    TRY(f, cli_read_resp(c, r, false));
    CHECK_INT(f, r->status, 400);
    CHECK(f, cli_eof(c));
    cli_close(c);
    free(r);
    return 0;
}

static int sc_read_timeout(fixture_t *f)
{
    resp_t *r = new_resp();
    cli_t *c = cli_open(f);
    CHECK(f, c);
    int64_t t0 = now_ms();
    TRY(f, cli_sends(c, "GET / HTTP/1.1\r\nHost: t\r\n"));
    TRY(f, cli_read_resp(c, r, false));
    int64_t dt = now_ms() - t0;
    CHECK_INT(f, r->status, 408);
    CHECK(f, dt >= 250 && dt < 3000);
    CHECK(f, cli_eof(c));
    cli_close(c);
    free(r);
    return 0;
}

static int sc_idle_timeout(fixture_t *f)
{
    resp_t *r = new_resp();
    cli_t *c = cli_open(f);
    CHECK(f, c);
    TRY(f, cli_sends(c, "GET / HTTP/1.1\r\n\r\n"));
    TRY(f, cli_read_resp(c, r, false));
    int64_t t0 = now_ms();
    CHECK(f, cli_eof(c));
    int64_t dt = now_ms() - t0;
    CHECK(f, dt >= 200 && dt < 3000);
    cli_close(c);
    free(r);
    return 0;
}

static int sc_keepalive_reuse(fixture_t *f)
{
    resp_t *r = new_resp();
    cli_t *c = cli_open(f);
    CHECK(f, c);
    for (int i = 0; i < 5; i++) {
        char req[128], want[128];
        snprintf(req, sizeof req, "GET /k%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
        snprintf(want, sizeof want, "GET /k%d q= h=- b=0:", i);
        TRY(f, cli_sends(c, req));
        TRY(f, cli_read_resp(c, r, false));
        CHECK_STR(f, r->body, want);
    }
    /* HEAD keeps Content-Length but sends no body; the next response must follow */
    TRY(f, cli_sends(c, "HEAD /h HTTP/1.1\r\n\r\nGET /after HTTP/1.1\r\n\r\n"));
    TRY(f, cli_read_resp(c, r, true));
    char v[64];
    CHECK_INT(f, atoi(resp_header(r, "Content-Length", v, sizeof v) ? v : "0"),
              strlen("HEAD /h q= h=- b=0:"));
    TRY(f, cli_read_resp(c, r, false));
    CHECK_STR(f, r->body, "GET /after q= h=- b=0:");
    /* Connection: close from the client */
    TRY(f, cli_sends(c, "GET /last HTTP/1.1\r\nConnection: close\r\n\r\n"));
    TRY(f, cli_read_resp(c, r, false));
    CHECK_STR(f, resp_header(r, "Connection", v, sizeof v), "close");
    CHECK(f, cli_eof(c));
    cli_close(c);
    free(r);
    return 0;
}

static int sc_http10(fixture_t *f)
{
    resp_t *r = new_resp();
    char v[64];
    cli_t *c = cli_open(f);
    CHECK(f, c);
    TRY(f, cli_sends(c, "GET /old HTTP/1.0\r\n\r\n"));
    TRY(f, cli_read_resp(c, r, false));
    CHECK_STR(f, r->body, "GET /old q= h=- b=0:");
    CHECK_STR(f, resp_header(r, "Connection", v, sizeof v), "close");
    CHECK(f, cli_eof(c));
    cli_close(c);
    c = cli_open(f);
    CHECK(f, c);
    for (int i = 0; i < 2; i++) {
        TRY(f, cli_sends(c, "GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
        TRY(f, cli_read_resp(c, r, false));
        CHECK_STR(f, r->body, "GET /ka q= h=- b=0:");
        CHECK_STR(f, resp_header(r, "Connection", v, sizeof v), "keep-alive");
    }
    cli_close(c);
    free(r);
    return 0;
}

static int sc_expect_continue(fixture_t *f)
{
    resp_t *r = new_resp();
    cli_t *c = cli_open(f);
    CHECK(f, c);
    TRY(f, cli_sends(c, "POST /up HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                        "Content-Length: 5\r\n\r\n"));
    TRY(f, cli_read_resp(c, r, false));
    CHECK_INT(f, r->status, 100);
    CHECK_STR(f, r->head, "HTTP/1.1 100 Continue\r\n\r\n");
    TRY(f, cli_sends(c, "hello"));
    TRY(f, cli_read_resp(c, r, false));
    CHECK_INT(f, r->status, 200);
    CHECK_STR(f, r->body, "POST /up q= h=- b=5:hello");
    cli_close(c);
    /* too big: rejected before the body is sent */
    c = cli_open(f);
    CHECK(f, c);
    TRY(f, cli_sends(c, "POST /up HTTP/1.1\r\nExpect: 100-continue\r\n"
                        "Content-Length: 100000\r\n\r\n"));
    TRY(f, cli_read_resp(c, r, false));
    CHECK_INT(f, r->status, 413);
    CHECK(f, cli_eof(c));
    cli_close(c);
    free(r);
    return 0;
}

/* Retries (for about a second) until a connection from src is served: GET /d's
 * response is in r. NULL when none was. */
static cli_t *cli_open_when_free(fixture_t *f, uint32_t src, resp_t *r)
{
    for (int i = 0; i < 100; i++) {
        cli_t *c = cli_open_from(f, src);
        if (c && cli_sends(c, "GET /d HTTP/1.1\r\n\r\n") == 0 && cli_read_resp(c, r, false) == 0)
            return c;
        cli_close(c);
        sleep_ms(10);
    }
    return NULL;
}

static int sc_max_connections(fixture_t *f)
{
    resp_t *r = new_resp();
    cli_t *a = cli_open(f), *b = cli_open(f);
    CHECK(f, a && b);
    TRY(f, cli_sends(a, "GET /a HTTP/1.1\r\n\r\n"));
    TRY(f, cli_read_resp(a, r, false));
    TRY(f, cli_sends(b, "GET /b HTTP/1.1\r\n\r\n"));
    TRY(f, cli_read_resp(b, r, false));
    cli_t *c = cli_open(f);
    CHECK(f, c);
    cli_sends(c, "GET /c HTTP/1.1\r\n\r\n"); /* may fail: the server closes at once */
    CHECK(f, cli_eof(c));
    cli_close(c);
    TRY(f, cli_sends(a, "GET /a2 HTTP/1.1\r\n\r\n"));
    TRY(f, cli_read_resp(a, r, false));
    CHECK_STR(f, r->body, "GET /a2 q= h=- b=0:");
    cli_close(b);
    /* a slot is free again once b is gone */
    c = cli_open_when_free(f, 0, r);
    CHECK(f, c);
    CHECK_STR(f, r->body, "GET /d q= h=- b=0:");
    cli_close(c);
    cli_close(a);
    free(r);
    return 0;
}

#define LOOPBACK_1 0x7f000001u /* 127.0.0.1 */
#define LOOPBACK_2 0x7f000002u /* 127.0.0.2 */

/* Issue 13: one client holding its maximum of idle connections neither gets more nor
 * keeps another client (a load balancer's /hb) out. */
static int sc_per_client(fixture_t *f)
{
    resp_t *r = new_resp();
    cli_t *held[3];
    for (int i = 0; i < 3; i++) {
        held[i] = cli_open_from(f, LOOPBACK_1);
        CHECK(f, held[i]);
        TRY(f, cli_sends(held[i], "GET /a HTTP/1.1\r\n\r\n"));
        TRY(f, cli_read_resp(held[i], r, false)); /* accepted and counted */
    }
    cli_t *extra = cli_open_from(f, LOOPBACK_1);
    CHECK(f, extra);
    cli_sends(extra, "GET /x HTTP/1.1\r\n\r\n"); /* may fail: closed at once */
    CHECK(f, cli_eof(extra));
    cli_close(extra);
    cli_t *lb = cli_open_from(f, LOOPBACK_2);
    CHECK(f, lb);
    TRY(f, cli_sends(lb, "GET /hb HTTP/1.1\r\n\r\n"));
    TRY(f, cli_read_resp(lb, r, false));
    CHECK_INT(f, r->status, 200);
    CHECK_STR(f, r->body, "GET /hb q= h=- b=0:");
    cli_close(lb);
    /* the held connections still work, and a freed slot is the client's again */
    TRY(f, cli_sends(held[0], "GET /a2 HTTP/1.1\r\n\r\n"));
    TRY(f, cli_read_resp(held[0], r, false));
    CHECK_STR(f, r->body, "GET /a2 q= h=- b=0:");
    cli_close(held[1]);
    cli_t *again = cli_open_when_free(f, LOOPBACK_1, r);
    CHECK(f, again);
    CHECK_STR(f, r->body, "GET /d q= h=- b=0:");
    cli_close(again);
    cli_close(held[0]);
    cli_close(held[2]);
    free(r);
    return 0;
}

/* RFC 9112 section 5.1: whitespace between a field name and the colon is a 400. */
static int sc_space_before_colon(fixture_t *f)
{
    resp_t *r = new_resp();
    static const char *bad[] = {"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
                                "GET / HTTP/1.1\r\nHost\t: x\r\n\r\n",
                                "GET / HTTP/1.1\r\nA: b\r\nX-Y  : z\r\n\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        TRY(f, roundtrip(f, bad[i], r));
        CHECK_INT(f, r->status, 400);
    }
    TRY(f, roundtrip(f, "GET / HTTP/1.1\r\nHost:  x \r\n\r\n", r));
    CHECK_INT(f, r->status, 200);
    free(r);
    return 0;
}

static int sc_stop_inflight(fixture_t *f)
{
    resp_t *r = new_resp();
    cli_t *idle = cli_open(f), *busy = cli_open(f);
    CHECK(f, idle && busy);
    TRY(f, cli_sends(idle, "GET /i HTTP/1.1\r\n\r\n"));
    TRY(f, cli_read_resp(idle, r, false));
    TRY(f, cli_sends(busy, "GET /async?300 HTTP/1.1\r\n\r\n"));
    TRY(f, wait_handled(f, 2));
    request_stop(f);
    CHECK(f, cli_eof(idle));
    TRY(f, cli_read_resp(busy, r, false));
    CHECK_INT(f, r->status, 200);
    CHECK_STR(f, r->body, "GET /async q=300 h=- b=0:");
    char v[64];
    CHECK_STR(f, resp_header(r, "Connection", v, sizeof v), "close");
    CHECK(f, cli_eof(busy));
    CHECK(f, tcp_connect(f->port) < 0);
    for (int i = 0; i < 2000 && !atomic_load(&f->stop_done); i++)
        sleep_ms(1);
    CHECK(f, atomic_load(&f->stop_done));
    cli_close(idle);
    cli_close(busy);
    free(r);
    return 0;
}

static int sc_stop_grace_expires(fixture_t *f)
{
    cli_t *c = cli_open(f);
    CHECK(f, c);
    TRY(f, cli_sends(c, "GET /async?400 HTTP/1.1\r\n\r\n"));
    TRY(f, wait_handled(f, 1));
    int64_t t0 = now_ms();
    request_stop(f);
    CHECK(f, cli_eof(c)); /* closed at the grace, before the handler answers */
    CHECK(f, now_ms() - t0 < 350);
    cli_close(c);
    return 0;
}

static int sc_client_gone(fixture_t *f)
{
    cli_t *c = cli_open(f);
    CHECK(f, c);
    TRY(f, cli_sends(c, "GET /async?100 HTTP/1.1\r\n\r\nGET /x HTTP/1.1\r\n\r\n"));
    TRY(f, wait_handled(f, 1));
    struct linger lg = {1, 0}; /* close with RST */
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    cli_close(c);
    c = cli_open(f);
    CHECK(f, c);
    TRY(f, cli_sends(c, "GET /async?100 HTTP/1.1\r\n\r\n"));
    shutdown(c->fd, SHUT_WR); /* half-close: the answer still comes */
    resp_t *r = new_resp();
    TRY(f, cli_read_resp(c, r, false));
    CHECK_STR(f, r->body, "GET /async q=100 h=- b=0:");
    CHECK(f, cli_eof(c));
    cli_close(c);
    sleep_ms(150); /* let the first async answer hit the closed connection */
    free(r);
    return 0;
}

static int sc_path_decoding(fixture_t *f)
{
    resp_t *r = new_resp();
    char v[256];
    TRY(f, roundtrip(f, "GET /a%20b/c%2Fd?x=1%202&y HTTP/1.1\r\n\r\n", r));
    CHECK_STR(f, r->body, "GET /a b/c/d q=x=1%202&y h=- b=0:");
    CHECK_STR(f, resp_header(r, "X-Target", v, sizeof v), "/a%20b/c%2Fd?x=1%202&y");
    TRY(f, roundtrip(f, "GET http://example.com:8080/p%41th?q=1 HTTP/1.1\r\n\r\n", r));
    CHECK_STR(f, r->body, "GET /pAth q=q=1 h=- b=0:");
    TRY(f, roundtrip(f, "GET http://example.com HTTP/1.1\r\n\r\n", r));
    CHECK_STR(f, r->body, "GET / q= h=- b=0:");
    TRY(f, roundtrip(f, "OPTIONS * HTTP/1.1\r\n\r\n", r));
    CHECK_STR(f, r->body, "OPTIONS * q= h=- b=0:");
    TRY(f, roundtrip(f, "GET /p?a=%zz#frag HTTP/1.1\r\n\r\n", r));
    CHECK_STR(f, r->body, "GET /p q=a=%zz h=- b=0:");
    free(r);
    return 0;
}

static int sc_error_response(fixture_t *f)
{
    resp_t *r = new_resp();
    char v[128];
    TRY(f, roundtrip(f, "GET /notfound HTTP/1.1\r\n\r\n", r));
    CHECK_INT(f, r->status, 404);
    CHECK(f, strncmp(r->head, "HTTP/1.1 404 Not Found\r\n", 24) == 0);
    CHECK_STR(f, r->body, "nope\n");
    CHECK_STR(f, resp_header(r, "Content-Type", v, sizeof v), "text/plain; charset=utf-8");
    CHECK_STR(f, resp_header(r, "X-Content-Type-Options", v, sizeof v), "nosniff");
    CHECK_STR(f, resp_header(r, "Content-Length", v, sizeof v), "5");
    free(r);
    return 0;
}

/* 100 pipelined requests in one write (more than the per-connection queue), some
 * answered late: all answers arrive, in order. */
static int sc_many_pipelined(fixture_t *f)
{
    enum { N = 100 };
    char *all = malloc(N * 64);
    size_t n = 0;
    for (int i = 0; i < N; i++)
        n += (size_t)sprintf(
            all + n, i % 7 == 0 ? "GET /async?%d HTTP/1.1\r\n\r\n" : "GET /p?%d HTTP/1.1\r\n\r\n",
            i % 7 == 0 ? 5 + i % 3 : i);
    cli_t *c = cli_open(f);
    CHECK(f, c);
    TRY(f, cli_send(c, all, n));
    resp_t *r = new_resp();
    for (int i = 0; i < N; i++) {
        char want[64];
        if (i % 7 == 0)
            snprintf(want, sizeof want, "GET /async q=%d h=- b=0:", 5 + i % 3);
        else
            snprintf(want, sizeof want, "GET /p q=%d h=- b=0:", i);
        TRY(f, cli_read_resp(c, r, false));
        CHECK_STR(f, r->body, want);
    }
    cli_close(c);
    free(r);
    free(all);
    return 0;
}

static uint32_t rnd(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Valid pipelines split at random points, then mutated requests on fresh
 * connections: the server answers or rejects, never hangs or crashes. */
static int sc_fuzz(fixture_t *f)
{
    static const char *reqs[] = {
        "GET /f1?a=1 HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /f2 HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd",
        "POST /f3 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n1\r\nz\r\n0\r\n\r\n",
    };
    static const char *want[] = {"GET /f1 q=a=1 h=- b=0:", "POST /f2 q= h=- b=4:abcd",
                                 "POST /f3 q= h=- b=3:xyz"};
    uint32_t seed = 0x12345678;
    resp_t *r = new_resp();
    char buf[2048];
    for (int round = 0; round < 20; round++) {
        size_t n = 0;
        int kinds[12];
        for (int i = 0; i < 12; i++) {
            kinds[i] = (int)(rnd(&seed) % 3);
            n += (size_t)snprintf(buf + n, sizeof buf - n, "%s", reqs[kinds[i]]);
        }
        cli_t *c = cli_open(f);
        CHECK(f, c);
        for (size_t off = 0; off < n;) {
            size_t k = 1 + rnd(&seed) % 40;
            if (k > n - off) k = n - off;
            TRY(f, cli_send(c, buf + off, k));
            off += k;
            struct timespec ts = {0, 100000};
            nanosleep(&ts, NULL);
        }
        for (int i = 0; i < 12; i++) {
            TRY(f, cli_read_resp(c, r, false));
            CHECK_STR(f, r->body, want[kinds[i]]);
        }
        cli_close(c);
    }
    for (int round = 0; round < 300; round++) {
        int n = snprintf(buf, sizeof buf, "%s", reqs[round % 3]);
        int flips = 1 + (int)(rnd(&seed) % 4);
        for (int i = 0; i < flips; i++)
            buf[rnd(&seed) % (uint32_t)n] = (char)(rnd(&seed) & 0xff);
        cli_t *c = cli_open(f);
        CHECK(f, c);
        cli_send(c, buf, (size_t)n);
        shutdown(c->fd, SHUT_WR);
        char sink[4096];
        ssize_t got;
        while ((got = recv(c->fd, sink, sizeof sink, 0)) > 0)
            ;
        if (got < 0 && errno != ECONNRESET) FAILF(f, "round %d: no close: %.200s", round, buf);
        cli_close(c);
    }
    TRY(f, roundtrip(f, reqs[0], r));
    CHECK_STR(f, r->body, want[0]);
    free(r);
    return 0;
}

/* Large bodies both ways: the request arena grows, responses leave through
 * partial try_write + uv_write, and a pipelined answer waits behind them. */
static int sc_large_bodies(fixture_t *f)
{
    enum { BODY = 300000 };
    resp_t *r = new_resp();
    char *req = malloc(BODY + 8192);
    int n = snprintf(req, 8192, "POST /len HTTP/1.1\r\nContent-Length: %d\r\n", BODY);
    for (int i = 0; i < 5; i++) {
        n += snprintf(req + n, 8192 - (size_t)n, "X-H%d: ", i);
        memset(req + n, 'v', 1000);
        n += 1000;
        n += snprintf(req + n, 8192 - (size_t)n, "\r\n");
    }
    n += snprintf(req + n, 8192 - (size_t)n, "\r\n");
    unsigned sum = 0;
    for (int i = 0; i < BODY; i++) {
        req[n + i] = (char)(i * 7);
        sum = sum * 31 + (unsigned char)req[n + i];
    }
    cli_t *c = cli_open(f);
    CHECK(f, c);
    TRY(f, cli_send(c, req, (size_t)n + BODY));
    TRY(f, cli_read_resp(c, r, false));
    char want[128];
    snprintf(want, sizeof want, "len=%d sum=%u hdrs=6", BODY, sum);
    CHECK_STR(f, r->body, want);
    TRY(f, cli_sends(c, "GET /big?8000000 HTTP/1.1\r\n\r\nGET /big?3000000 HTTP/1.1\r\n\r\n"
                        "GET /after HTTP/1.1\r\n\r\n"));
    sleep_ms(200); /* let the server fill the socket buffers */
    CHECK_INT(f, cli_read_big(c, r), 8000000);
    CHECK_INT(f, cli_read_big(c, r), 3000000);
    TRY(f, cli_read_resp(c, r, false));
    CHECK_STR(f, r->body, "GET /after q= h=- b=0:");
    cli_close(c);
    free(req);
    free(r);
    return 0;
}

static int sc_odd_responses(fixture_t *f)
{
    resp_t *r = new_resp();
    char v[4096];
    cli_t *c = cli_open(f);
    CHECK(f, c);
    TRY(f, cli_sends(c, "GET /status?204 HTTP/1.1\r\n\r\nGET /status?304 HTTP/1.1\r\n\r\n"
                        "GET /status?42 HTTP/1.1\r\n\r\nGET /bighead HTTP/1.1\r\n\r\n"
                        "GET /bigerr HTTP/1.1\r\n\r\nGET /peer HTTP/1.1\r\n\r\n"));
    TRY(f, cli_read_resp(c, r, false));
    CHECK_INT(f, r->status, 204);
    CHECK(f, !resp_header(r, "Content-Length", v, sizeof v));
    TRY(f, cli_read_resp(c, r, false));
    CHECK_INT(f, r->status, 304);
    TRY(f, cli_read_resp(c, r, false));
    CHECK_INT(f, r->status, 500);
    CHECK_STR(f, r->body, "body");
    TRY(f, cli_read_resp(c, r, false));
    CHECK_STR(f, r->body, "ok");
    CHECK_INT(f, strlen(resp_header(r, "X-Big", v, sizeof v) ? v : ""), 3000);
    CHECK(f, !strstr(r->head, "Bad"));
    CHECK_STR(f, resp_header(r, "Content-Length", v, sizeof v), "2");
    TRY(f, cli_read_resp(c, r, false));
    CHECK_INT(f, r->status, 500);
    CHECK_INT(f, r->body_len, 1001);
    TRY(f, cli_read_resp(c, r, false));
    CHECK(f, strncmp(r->body, "127.0.0.1:", 10) == 0);
    cli_close(c);
    free(r);
    return 0;
}

/* A partial request followed by EOF, and a connection that never sends. */
static int sc_partial_then_eof(fixture_t *f)
{
    cli_t *c = cli_open(f);
    CHECK(f, c);
    TRY(f, cli_sends(c, "POST /x HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"));
    shutdown(c->fd, SHUT_WR);
    CHECK(f, cli_eof(c));
    cli_close(c);
    c = cli_open(f);
    CHECK(f, c);
    int64_t t0 = now_ms();
    CHECK(f, cli_eof(c)); /* fresh connections get min(idle, read) timeout */
    CHECK(f, now_ms() - t0 >= 250);
    cli_close(c);
    CHECK_INT(f, atomic_load(&f->handled), 0);
    return 0;
}

/* Listening on all interfaces ("::" dual-stack, or 0.0.0.0). */
static int sc_any_host(fixture_t *f)
{
    resp_t *r = new_resp();
    TRY(f, roundtrip(f, "GET /peer HTTP/1.1\r\n\r\n", r));
    CHECK(f, strncmp(r->body, "127.0.0.1:", 10) == 0);
    free(r);
    return 0;
}

/* A client that pipelines a lot and never reads: the server stops reading at its
 * queue bound, drops the connection after idle_timeout without write progress,
 * and keeps serving others meanwhile. */
static int sc_slow_reader(fixture_t *f)
{
    enum { N = 200, SIZE = 200000 };
    static const char one[] = "GET /big?200000 HTTP/1.1\r\n\r\n";
    char *all = malloc(N * sizeof one);
    for (int i = 0; i < N; i++)
        memcpy(all + (size_t)i * (sizeof one - 1), one, sizeof one - 1);
    cli_t *c = cli_open(f);
    CHECK(f, c);
    TRY(f, cli_send(c, all, N * (sizeof one - 1)));
    sleep_ms(800);
    resp_t *r = new_resp();
    TRY(f, roundtrip(f, "GET /other HTTP/1.1\r\n\r\n", r));
    CHECK_STR(f, r->body, "GET /other q= h=- b=0:");
    long total = 0;
    char *sink = malloc(1 << 16);
    ssize_t got;
    while ((got = recv(c->fd, sink, 1 << 16, 0)) > 0)
        total += got;
    CHECK(f, got == 0 || errno == ECONNRESET);
    CHECK(f, total < (long)N * SIZE);
    CHECK(f, atomic_load(&f->handled) < N);
    cli_close(c);
    free(sink);
    free(all);
    free(r);
    return 0;
}

/* ---------- cmocka tests ---------- */

static void test_simple_get(void **state)
{
    (void)state;
    run_scenario(NULL, sc_simple_get);
}

static void test_post_content_length(void **state)
{
    (void)state;
    run_scenario(NULL, sc_post_content_length);
}

static void test_chunked(void **state)
{
    (void)state;
    run_scenario(NULL, sc_chunked);
}

static void test_pipelined_async(void **state)
{
    (void)state;
    run_scenario(NULL, sc_pipelined_async);
}

static void test_byte_by_byte(void **state)
{
    (void)state;
    run_scenario(NULL, sc_byte_by_byte);
}

static void test_body_too_large(void **state)
{
    (void)state;
    httpd_limits_t l = {.max_body = 1024};
    run_scenario(&l, sc_body_too_large);
}

static void test_headers_too_large(void **state)
{
    (void)state;
    httpd_limits_t l = {.max_header = 2048};
    run_scenario(&l, sc_headers_too_large);
}

static void test_garbage(void **state)
{
    (void)state;
    run_scenario(NULL, sc_garbage);
}

static void test_read_timeout(void **state)
{
    (void)state;
    httpd_limits_t l = {.read_timeout_ms = 300};
    run_scenario(&l, sc_read_timeout);
}

static void test_idle_timeout(void **state)
{
    (void)state;
    httpd_limits_t l = {.idle_timeout_ms = 300};
    run_scenario(&l, sc_idle_timeout);
}

static void test_keepalive_reuse(void **state)
{
    (void)state;
    run_scenario(NULL, sc_keepalive_reuse);
}

static void test_http10(void **state)
{
    (void)state;
    run_scenario(NULL, sc_http10);
}

static void test_expect_continue(void **state)
{
    (void)state;
    httpd_limits_t l = {.max_body = 1024};
    run_scenario(&l, sc_expect_continue);
}

static void test_max_connections(void **state)
{
    (void)state;
    /* the total cap alone: one client may take both (the default would allow one) */
    httpd_limits_t l = {.max_connections = 2, .max_per_client = 2};
    run_scenario(&l, sc_max_connections);
}

static void test_per_client(void **state)
{
    (void)state;
    httpd_limits_t l = {.max_connections = 10, .max_per_client = 3};
    run_scenario(&l, sc_per_client);
}

static void test_space_before_colon(void **state)
{
    (void)state;
    run_scenario(NULL, sc_space_before_colon);
}

static void test_stop_inflight(void **state)
{
    (void)state;
    run_scenario(NULL, sc_stop_inflight);
}

static void test_stop_grace_expires(void **state)
{
    (void)state;
    httpd_limits_t l = {.stop_grace_ms = 100};
    run_scenario(&l, sc_stop_grace_expires);
}

static void test_client_gone(void **state)
{
    (void)state;
    run_scenario(NULL, sc_client_gone);
}

static void test_path_decoding(void **state)
{
    (void)state;
    run_scenario(NULL, sc_path_decoding);
}

static void test_error_response(void **state)
{
    (void)state;
    run_scenario(NULL, sc_error_response);
}

static void test_many_pipelined(void **state)
{
    (void)state;
    run_scenario(NULL, sc_many_pipelined);
}

static void test_fuzz(void **state)
{
    (void)state;
    httpd_limits_t l = {.read_timeout_ms = 2000};
    run_scenario(&l, sc_fuzz);
}

static void test_large_bodies(void **state)
{
    (void)state;
    run_scenario(NULL, sc_large_bodies);
}

static void test_odd_responses(void **state)
{
    (void)state;
    run_scenario(NULL, sc_odd_responses);
}

static void test_partial_then_eof(void **state)
{
    (void)state;
    httpd_limits_t l = {.read_timeout_ms = 300};
    run_scenario(&l, sc_partial_then_eof);
}

static void test_any_host(void **state)
{
    (void)state;
    run_scenario_on(NULL, NULL, sc_any_host);
}

static void test_slow_reader(void **state)
{
    (void)state;
    httpd_limits_t l = {.idle_timeout_ms = 300};
    run_scenario(&l, sc_slow_reader);
}

static void on_done_flag(void *arg)
{
    *(int *)arg = 1;
}

static void noop_handler(httpd_req_t *req, void *arg)
{
    (void)arg;
    httpd_respond(req, 204, NULL, 0, NULL, 0);
}

static void test_bind_in_use(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    char err[256] = "";
    httpd_t *a = httpd_start(&loop, "127.0.0.1", 0, NULL, noop_handler, NULL, err, sizeof err);
    assert_non_null(a);
    httpd_t *b =
        httpd_start(&loop, "127.0.0.1", httpd_port(a), NULL, noop_handler, NULL, err, sizeof err);
    assert_null(b);
    assert_true(strstr(err, "bind") != NULL);
    assert_null(
        httpd_start(&loop, "no.such.host.invalid", 0, NULL, noop_handler, NULL, err, sizeof err));
    assert_null(httpd_start(&loop, NULL, 70000, NULL, noop_handler, NULL, err, sizeof err));
    int done = 0;
    httpd_stop(a, on_done_flag, &done);
    httpd_stop(a, on_done_flag, &done); /* ignored with a warning */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(done, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_status_text(void **state)
{
    (void)state;
    assert_string_equal(httpd_status_text(200), "OK");
    assert_string_equal(httpd_status_text(404), "Not Found");
    assert_string_equal(httpd_status_text(413), "Request Entity Too Large");
    assert_string_equal(httpd_status_text(431), "Request Header Fields Too Large");
    assert_string_equal(httpd_status_text(503), "Service Unavailable");
    assert_string_equal(httpd_status_text(799), "");
}

static void test_limits_default(void **state)
{
    (void)state;
    httpd_limits_t l = {.max_body = 5};
    httpd_limits_default(&l);
    assert_int_equal(l.max_body, 5);
    assert_int_equal(l.max_header, 16 * 1024);
    assert_int_equal(l.read_timeout_ms, 10000);
    assert_int_equal(l.idle_timeout_ms, 60000);
    assert_int_equal(l.max_connections, 10000);
    assert_int_equal(l.stop_grace_ms, 10000);
}

int main(void)
{
    log_init();
    alarm(300); /* a hung loop fails the run instead of blocking it */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_text),
        cmocka_unit_test(test_limits_default),
        cmocka_unit_test(test_bind_in_use),
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_post_content_length),
        cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_pipelined_async),
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_body_too_large),
        cmocka_unit_test(test_headers_too_large),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_read_timeout),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_keepalive_reuse),
        cmocka_unit_test(test_http10),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_max_connections),
        cmocka_unit_test(test_per_client),
        cmocka_unit_test(test_space_before_colon),
        cmocka_unit_test(test_stop_inflight),
        cmocka_unit_test(test_stop_grace_expires),
        cmocka_unit_test(test_client_gone),
        cmocka_unit_test(test_path_decoding),
        cmocka_unit_test(test_error_response),
        cmocka_unit_test(test_many_pipelined),
        cmocka_unit_test(test_fuzz),
        cmocka_unit_test(test_large_bodies),
        cmocka_unit_test(test_odd_responses),
        cmocka_unit_test(test_partial_then_eof),
        cmocka_unit_test(test_any_host),
        cmocka_unit_test(test_slow_reader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
