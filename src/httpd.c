/* httpd: the HTTP/1.1 server. Owns the listening socket, every client connection
 * (libuv TCP handle + timer + http_parser), request parsing into one arena
 * allocation per request, the per-connection FIFO that makes responses leave in
 * request order (pipelining, async handlers), limits and timeouts, and graceful
 * stop. It knows nothing about routes: each complete request goes to the single
 * handler given to httpd_start, which answers with httpd_respond now or later.
 * Everything runs on the loop thread; the only state is in httpd_t and its
 * connections. */
#include "httpd.h"
#include "log.h"
#include "strmap.h"

#include <errno.h>
#include <http_parser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define COMPONENT "httpd"
#define MAX_HEADERS 100                    /* request headers; more -> 431 */
#define MAX_PIPELINE 32                    /* queued requests+writes per connection */
#define RESUME_PIPELINE (MAX_PIPELINE / 2) /* resume reading at or below this */
#define READ_BUF_SIZE (64 * 1024)          /* shared by all connections */
#define REQ_ALLOC_SIZE 4096                /* request struct + inline arena */
#define HEAD_STACK 1024                    /* response head built on the stack */
#define LINGER_MS 2000                     /* drain input after the last response */
#define LISTEN_BACKLOG 1024
#define BODY_PREALLOC (256 * 1024) /* reserved up front from Content-Length */
#define REQ_LINE_OVERHEAD 16       /* method, spaces, version, CRLFs not seen by callbacks */
#define PUMP_CHUNK (64 * 1024)     /* file responses are read and sent in chunks of this */
#define REJECT_LOG_MS 10000        /* refused connections are logged at most this often */
#define PER_CLIENT_DEFAULT 256     /* max_per_client default, at most max_connections / 2 */

enum req_state { R_PARSING, R_HANDLER, R_READY };
enum timer_mode { T_NONE, T_IDLE, T_READ, T_LINGER };
enum last_cb { CB_URL, CB_FIELD, CB_VALUE };

typedef struct conn conn_t;

/* A file response body being sent: one chunk read on the thread pool at a time, the
 * next one only after the socket took the previous, so memory stays bounded. It
 * outlives its connection when a read is in flight at close (c is then NULL). */
typedef struct {
    uv_fs_t fs;
    conn_t *c;
    int fd;
    uint64_t off, left;
    bool reading, waiting;
    char buf[PUMP_CHUNK];
} pump_t;

/* One queued write: the uv request and the bytes it sends, in one allocation. */
typedef struct {
    uv_write_t req;
    conn_t *c;
    size_t off, len;
    char data[];
} wreq_t;

/* A request: public part first, then parse state and the arena. Strings are kept
 * as offsets into the arena while parsing (it may move) and turned into pointers
 * once the message is complete. */
typedef struct req {
    httpd_req_t pub;
    conn_t *c; /* NULL once the connection is gone (respond just frees) */
    struct req *next;
    enum req_state state;
    enum last_cb last_cb;
    bool head, close, ka10, want_continue, continue_sent, headers_done;
    size_t hdr_bytes;
    wreq_t *out;  /* R_READY: the formatted response */
    pump_t *pump; /* R_READY: file body to send after out */
    char *buf;    /* arena: inline_buf or a malloc'd block */
    size_t len, cap;
    size_t url_len, path_off, query_off, body_off;
    size_t n_hdr;
    struct {
        uint32_t name, value;
    } hoff[MAX_HEADERS];
    alignas(max_align_t) char inline_buf[];
} req_t;

_Static_assert(REQ_ALLOC_SIZE > sizeof(req_t) + 512, "REQ_ALLOC_SIZE too small");

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shutdown;
    http_parser parser;
    httpd_t *srv;
    conn_t *prev, *next;
    req_t *head, *tail; /* FIFO in request order */
    req_t *cur;         /* being parsed (always the tail) */
    req_t *done_req;    /* completed by the parser, to dispatch */
    req_t *spare;       /* one recycled request allocation */
    pump_t *pump;       /* file body being sent; blocks later responses */
    int n_fifo, n_handler, n_writes, open_handles, fail_status;
    enum timer_mode tmode;
    bool closing, no_more, draining, lingering, paused, reading, in_feed, peer_eof, fresh;
    char *backlog; /* unparsed input kept while paused */
    size_t backlog_len;
    char peer[64];
    char client[INET6_ADDRSTRLEN + 4]; /* the per-client key: IPv4 address or IPv6 /64 */
    bool counted;                      /* holds one of its client's slots */
};

struct httpd {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_timer_t grace;
    httpd_limits_t lim;
    httpd_handler_fn handler;
    void *arg;
    conn_t *conns;
    strmap_t per_client; /* open connections by client key */
    uint64_t reject_logged_ms;
    long rejected; /* refused since the last log line */
    int n_conns, live, port;
    bool stopping, grace_closing;
    void (*done)(void *arg);
    void *done_arg;
    time_t date_sec;
    char date[40];
    char rbuf[READ_BUF_SIZE];
};

typedef struct {
    int status;
    const httpd_header_t *headers;
    size_t n_headers;
    const char *body;
    size_t len;     /* Content-Length */
    size_t send;    /* body bytes actually sent (0 for HEAD, 204, 304) */
    bool close;     /* Connection: close */
    bool keepalive; /* Connection: keep-alive (HTTP/1.0 client asked) */
} resp_t;

static void conn_close(conn_t *c);
static void conn_flush(conn_t *c);
static void conn_feed(conn_t *c, const char *data, size_t len);
static void conn_after_progress(conn_t *c, bool wrote);

/* ---------- small helpers ---------- */

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static int conn_pending(const conn_t *c)
{
    return c->n_fifo + c->n_writes;
}

static void srv_handle_closed(httpd_t *h)
{
    if (--h->live > 0 || !h->stopping) return;
    void (*done)(void *) = h->done;
    void *arg = h->done_arg;
    strmap_free(&h->per_client);
    free(h);
    if (done) done(arg);
}

static void on_srv_handle_closed(uv_handle_t *handle)
{
    srv_handle_closed(handle->data);
}

static void srv_check_drained(httpd_t *h)
{
    if (!h->stopping || h->conns || h->grace_closing) return;
    h->grace_closing = true;
    uv_close((uv_handle_t *)&h->grace, on_srv_handle_closed);
}

/* ---------- request arena ---------- */

static int arena_reserve(req_t *r, size_t extra)
{
    if (r->cap - r->len >= extra) return 0;
    size_t need = r->len + extra;
    size_t cap = r->cap * 2 > need ? r->cap * 2 : need;
    char *nb;
    if (r->buf == r->inline_buf) {
        nb = malloc(cap);
        if (nb) memcpy(nb, r->buf, r->len);
    } else {
        nb = realloc(r->buf, cap);
    }
    if (!nb) return -1;
    r->buf = nb;
    r->cap = cap;
    return 0;
}

static int arena_append(req_t *r, const char *data, size_t n)
{
    if (arena_reserve(r, n) < 0) return -1;
    memcpy(r->buf + r->len, data, n);
    r->len += n;
    return 0;
}

static int arena_nul(req_t *r)
{
    return arena_append(r, "", 1);
}

static void pump_free(pump_t *p)
{
    if (p->fd >= 0) close(p->fd);
    free(p);
}

static void req_free(req_t *r)
{
    if (r->pump) pump_free(r->pump);
    if (r->buf != r->inline_buf) free(r->buf);
    free(r->out);
    free(r);
}

/* Frees r, or keeps it as the connection's spare when it has no extra memory. */
static void req_release(conn_t *c, req_t *r)
{
    if (c && !c->spare && r->buf == r->inline_buf && !r->out) {
        c->spare = r;
        return;
    }
    req_free(r);
}

static req_t *req_new(conn_t *c)
{
    req_t *r = c->spare;
    c->spare = NULL;
    if (!r) r = malloc(REQ_ALLOC_SIZE);
    if (!r) return NULL;
    memset(&r->pub, 0, sizeof r->pub);
    memcpy(r->pub.peer, c->peer, sizeof r->pub.peer);
    r->c = c;
    r->next = NULL;
    r->state = R_PARSING;
    r->last_cb = CB_URL;
    r->head = r->close = r->ka10 = false;
    r->want_continue = r->continue_sent = r->headers_done = false;
    r->hdr_bytes = REQ_LINE_OVERHEAD;
    r->out = NULL;
    r->pump = NULL;
    r->buf = r->inline_buf;
    r->len = 0;
    r->cap = REQ_ALLOC_SIZE - offsetof(req_t, inline_buf);
    r->url_len = r->path_off = r->query_off = r->body_off = 0;
    r->n_hdr = 0;
    return r;
}

/* ---------- FIFO ---------- */

static void fifo_push(conn_t *c, req_t *r)
{
    r->next = NULL;
    if (c->tail)
        c->tail->next = r;
    else
        c->head = r;
    c->tail = r;
    c->n_fifo++;
}

static req_t *fifo_pop(conn_t *c)
{
    req_t *r = c->head;
    c->head = r->next;
    if (!c->head) c->tail = NULL;
    r->next = NULL;
    c->n_fifo--;
    return r;
}

static void fifo_drop_tail(conn_t *c)
{
    req_t *r = c->tail, *prev = NULL;
    for (req_t *p = c->head; p != r; p = p->next)
        prev = p;
    if (prev)
        prev->next = NULL;
    else
        c->head = NULL;
    c->tail = prev;
    c->n_fifo--;
    req_release(c, r);
}

/* ---------- status text and response head ---------- */

static const struct {
    int code;
    const char *text;
} status_texts[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {102, "Processing"},
    {103, "Early Hints"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {203, "Non-Authoritative Information"},
    {204, "No Content"},
    {205, "Reset Content"},
    {206, "Partial Content"},
    {207, "Multi-Status"},
    {208, "Already Reported"},
    {226, "IM Used"},
    {300, "Multiple Choices"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {305, "Use Proxy"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {407, "Proxy Authentication Required"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Request Entity Too Large"},
    {414, "Request URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Requested Range Not Satisfiable"},
    {417, "Expectation Failed"},
    {418, "I'm a teapot"},
    {421, "Misdirected Request"},
    {422, "Unprocessable Entity"},
    {423, "Locked"},
    {424, "Failed Dependency"},
    {425, "Too Early"},
    {426, "Upgrade Required"},
    {428, "Precondition Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {451, "Unavailable For Legal Reasons"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
    {506, "Variant Also Negotiates"},
    {507, "Insufficient Storage"},
    {508, "Loop Detected"},
    {510, "Not Extended"},
    {511, "Network Authentication Required"},
};

const char *httpd_status_text(int status)
{
    for (size_t i = 0; i < sizeof status_texts / sizeof status_texts[0]; i++)
        if (status_texts[i].code == status) return status_texts[i].text;
    return "";
}

/* Bounded writer: copies while it fits, always counts, so a too-small first try
 * tells the exact size for the second. */
typedef struct {
    char *p;
    size_t cap, n;
} wbuf_t;

static void put(wbuf_t *w, const char *s, size_t n)
{
    if (w->n + n <= w->cap) memcpy(w->p + w->n, s, n);
    w->n += n;
}

static void puts_(wbuf_t *w, const char *s)
{
    put(w, s, strlen(s));
}

static void put_u64(wbuf_t *w, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(w, tmp + i, sizeof tmp - i);
}

static const char *srv_date(httpd_t *h)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    if (now == h->date_sec) return h->date;
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(h->date, sizeof h->date, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7],
             tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
             tm.tm_sec);
    h->date_sec = now;
    return h->date;
}

/* Headers httpd writes itself; the handler's copies are dropped. */
static bool header_reserved(const char *name)
{
    return strcasecmp(name, "content-length") == 0 || strcasecmp(name, "connection") == 0 ||
           strcasecmp(name, "date") == 0 || strcasecmp(name, "transfer-encoding") == 0;
}

static bool header_safe(const httpd_header_t *hd)
{
    if (!hd->name || !hd->value || !*hd->name) return false;
    if (strpbrk(hd->name, ":\r\n \t") || strpbrk(hd->value, "\r\n")) return false;
    return !header_reserved(hd->name);
}

static bool status_has_body(int status)
{
    return status >= 200 && status != 204 && status != 304;
}

/* Writes the status line and headers; returns the full length (may exceed cap). */
static size_t build_head(httpd_t *h, const resp_t *rs, char *dst, size_t cap)
{
    wbuf_t w = {dst, cap, 0};
    puts_(&w, "HTTP/1.1 ");
    put_u64(&w, (uint64_t)rs->status);
    put(&w, " ", 1);
    puts_(&w, httpd_status_text(rs->status));
    put(&w, "\r\n", 2);
    for (size_t i = 0; i < rs->n_headers; i++) {
        if (!header_safe(&rs->headers[i])) continue;
        puts_(&w, rs->headers[i].name);
        put(&w, ": ", 2);
        puts_(&w, rs->headers[i].value);
        put(&w, "\r\n", 2);
    }
    puts_(&w, "Date: ");
    puts_(&w, srv_date(h));
    if (status_has_body(rs->status)) {
        puts_(&w, "\r\nContent-Length: ");
        put_u64(&w, rs->len);
    }
    if (rs->close)
        puts_(&w, "\r\nConnection: close");
    else if (rs->keepalive)
        puts_(&w, "\r\nConnection: keep-alive");
    put(&w, "\r\n\r\n", 4);
    return w.n;
}

/* ---------- writing ---------- */

static wreq_t *wreq_new(size_t len)
{
    wreq_t *w = malloc(sizeof *w + len);
    if (!w) return NULL;
    w->c = NULL;
    w->off = 0;
    w->len = len;
    return w;
}

static void on_write(uv_write_t *req, int status)
{
    wreq_t *w = (wreq_t *)req;
    conn_t *c = w->c;
    free(w);
    c->n_writes--;
    if (c->closing) return;
    if (status < 0) {
        log_debug(COMPONENT, "write failed", "peer=%s err=%s", c->peer, uv_err_name(status));
        conn_close(c);
        return;
    }
    conn_after_progress(c, true);
}

static int conn_queue(conn_t *c, wreq_t *w)
{
    w->c = c;
    uv_buf_t b = {.base = w->data + w->off, .len = w->len - w->off};
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc < 0) {
        free(w);
        return rc;
    }
    c->n_writes++;
    return 0;
}

/* Sends w (taking ownership): try_write when nothing is queued, queue the rest. */
static int conn_send_w(conn_t *c, wreq_t *w)
{
    if (c->n_writes == 0) {
        uv_buf_t b = {.base = w->data, .len = w->len};
        int rc = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (rc >= 0 && (size_t)rc == w->len) {
            free(w);
            return 0;
        }
        if (rc < 0 && rc != UV_EAGAIN) {
            free(w);
            return rc;
        }
        w->off = rc > 0 ? (size_t)rc : 0;
    }
    return conn_queue(c, w);
}

/* Sends bufs (not owned): try_write first, copy what is left into one wreq. */
static int conn_send_bufs(conn_t *c, const uv_buf_t *bufs, unsigned n)
{
    size_t total = 0, done = 0;
    for (unsigned i = 0; i < n; i++)
        total += bufs[i].len;
    if (c->n_writes == 0) {
        int rc = uv_try_write((uv_stream_t *)&c->tcp, bufs, n);
        if (rc < 0 && rc != UV_EAGAIN) return rc;
        done = rc > 0 ? (size_t)rc : 0;
    }
    if (done == total) return 0;
    wreq_t *w = wreq_new(total - done);
    if (!w) return UV_ENOMEM;
    size_t skip = done, o = 0;
    for (unsigned i = 0; i < n; i++) {
        size_t s = skip < bufs[i].len ? skip : bufs[i].len;
        skip -= s;
        memcpy(w->data + o, bufs[i].base + s, bufs[i].len - s);
        o += bufs[i].len - s;
    }
    return conn_queue(c, w);
}

static void send_continue(conn_t *c, req_t *r)
{
    static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
    r->continue_sent = true;
    uv_buf_t b = {.base = (char *)msg, .len = sizeof msg - 1};
    if (conn_send_bufs(c, &b, 1) < 0) conn_close(c);
}

static void pump_next(conn_t *c);

/* Writes every response at the head of the FIFO that is ready, in order. */
static void conn_flush(conn_t *c)
{
    while (!c->closing && c->head && !c->pump) {
        req_t *r = c->head;
        if (r->state == R_PARSING) {
            if (r->want_continue && !r->continue_sent) send_continue(c, r);
            break;
        }
        if (r->state != R_READY) break;
        fifo_pop(c);
        wreq_t *w = r->out;
        pump_t *p = r->pump;
        r->out = NULL;
        r->pump = NULL;
        req_release(c, r);
        if (conn_send_w(c, w) < 0) {
            if (p) pump_free(p);
            conn_close(c);
            return;
        }
        if (p) {
            c->pump = p;
            p->c = c;
            pump_next(c);
            return;
        }
    }
    if (!c->closing) conn_after_progress(c, false);
}

/* ---------- timers, reading state, closing ---------- */

static void on_conn_handle_closed(uv_handle_t *handle)
{
    conn_t *c = handle->data;
    httpd_t *h = c->srv;
    if (--c->open_handles == 0) {
        if (c->spare) req_free(c->spare);
        free(c->backlog);
        free(c);
    }
    srv_handle_closed(h);
}

/* Closes now: handler-owned requests are detached, everything else freed. */
static void conn_close(conn_t *c)
{
    if (c->closing) return;
    c->closing = true;
    httpd_t *h = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    h->n_conns--;
    if (c->counted) strmap_add(&h->per_client, c->client, -1);
    c->counted = false;
    while (c->head) {
        req_t *r = fifo_pop(c);
        if (r->state == R_HANDLER)
            r->c = NULL;
        else
            req_free(r);
    }
    c->cur = c->done_req = NULL;
    c->n_handler = 0;
    if (c->pump) {
        c->pump->c = NULL;
        if (!c->pump->reading) pump_free(c->pump);
        c->pump = NULL;
    }
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
    srv_check_drained(h);
}

static void on_timer(uv_timer_t *t);

static void conn_timer_set(conn_t *c, enum timer_mode mode, uint64_t ms)
{
    c->tmode = mode;
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

/* No partial request: idle timer while nothing waits on the handler (also guards
 * a peer that stops reading our writes), no timer while the handler works. */
static void conn_update_timer(conn_t *c, bool progress)
{
    if (c->closing || c->lingering || c->cur) return;
    if (c->n_handler > 0) {
        if (c->tmode != T_NONE) uv_timer_stop(&c->timer);
        c->tmode = T_NONE;
        return;
    }
    if (c->tmode == T_IDLE && !progress) return;
    const httpd_limits_t *l = &c->srv->lim;
    uint64_t ms = c->fresh ? min_u64(l->idle_timeout_ms, l->read_timeout_ms) : l->idle_timeout_ms;
    conn_timer_set(c, T_IDLE, ms);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    conn_t *c = handle->data;
    buf->base = c->srv->rbuf;
    buf->len = sizeof c->srv->rbuf;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void conn_read_start(conn_t *c)
{
    if (c->reading || c->closing) return;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
        conn_close(c);
        return;
    }
    c->reading = true;
}

static void conn_read_stop(conn_t *c)
{
    if (!c->reading || c->closing) return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    conn_t *c = req->data;
    if (!c->closing && status < 0) conn_close(c);
}

/* After the last response: FIN, then read and discard until the peer closes (or a
 * short timeout) so unread input does not turn our close into a reset that could
 * destroy the response in flight. */
static void conn_linger(conn_t *c)
{
    c->lingering = true;
    c->no_more = true;
    c->shutdown.data = c;
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
        conn_close(c);
        return;
    }
    conn_read_start(c);
    if (!c->closing) conn_timer_set(c, T_LINGER, min_u64(LINGER_MS, c->srv->lim.read_timeout_ms));
}

/* Resumes reading once enough queued work drained; parses the saved input first. */
static void conn_maybe_resume(conn_t *c)
{
    if (!c->paused || c->in_feed || c->closing || c->no_more) return;
    if (conn_pending(c) > RESUME_PIPELINE) return;
    c->paused = false;
    char *bl = c->backlog;
    size_t n = c->backlog_len;
    c->backlog = NULL;
    c->backlog_len = 0;
    if (bl) {
        conn_feed(c, bl, n);
        free(bl);
    }
    if (!c->closing && !c->paused && !c->no_more) conn_read_start(c);
}

/* Called whenever requests or writes finished: close, resume or re-arm timers. */
static void conn_after_progress(conn_t *c, bool wrote)
{
    if (c->closing || c->lingering) return;
    if (c->pump) {
        if (c->pump->waiting && c->n_writes == 0) {
            c->pump->waiting = false;
            pump_next(c);
        }
        if (!c->closing) conn_update_timer(c, wrote);
        return;
    }
    if (c->no_more && !c->head && c->n_writes == 0) {
        if (c->peer_eof)
            conn_close(c);
        else
            conn_linger(c);
        return;
    }
    conn_maybe_resume(c);
    conn_update_timer(c, wrote);
}

static void resp_send_or_queue(conn_t *c, req_t *r, resp_t *rs);

/* Answers the request being parsed (or a new FIFO entry) with an error and stops
 * reading; the connection closes once it and everything before it is written. */
static void conn_fail(conn_t *c, int status)
{
    req_t *r = c->cur;
    if (!r) {
        r = req_new(c);
        if (!r) {
            conn_close(c);
            return;
        }
        fifo_push(c, r);
    }
    c->cur = NULL;
    c->no_more = true;
    conn_read_stop(c);
    free(c->backlog);
    c->backlog = NULL;
    c->backlog_len = 0;
    log_debug(COMPONENT, "bad request", "peer=%s status=%d", c->peer, status);
    r->state = R_HANDLER;
    r->close = true;
    c->n_handler++;
    httpd_respond_error(&r->pub, status, httpd_status_text(status));
}

static void on_timer(uv_timer_t *t)
{
    conn_t *c = t->data;
    enum timer_mode mode = c->tmode;
    c->tmode = T_NONE;
    if (mode == T_READ) {
        if (c->cur)
            conn_fail(c, 408);
        else
            conn_update_timer(c, true);
        return;
    }
    if (mode != T_NONE) conn_close(c);
}

/* ---------- parser callbacks ---------- */

static req_t *cb_req(http_parser *p)
{
    conn_t *c = p->data;
    return c->closing ? NULL : c->cur;
}

static int fail_cb(http_parser *p, int status)
{
    conn_t *c = p->data;
    c->fail_status = status;
    return -1;
}

static int count_header(http_parser *p, req_t *r, size_t n)
{
    r->hdr_bytes += n;
    if (r->hdr_bytes > ((conn_t *)p->data)->srv->lim.max_header) return fail_cb(p, 431);
    return 0;
}

static int on_message_begin(http_parser *p)
{
    conn_t *c = p->data;
    if (c->closing || c->no_more) return -1;
    req_t *r = req_new(c);
    if (!r) return fail_cb(p, 503);
    fifo_push(c, r);
    c->cur = r;
    c->fresh = false;
    conn_timer_set(c, T_READ, c->srv->lim.read_timeout_ms);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    req_t *r = cb_req(p);
    if (!r || count_header(p, r, len) < 0) return -1;
    return arena_append(r, at, len) < 0 ? fail_cb(p, 503) : 0;
}

static int end_url(req_t *r)
{
    r->url_len = r->len;
    return arena_nul(r);
}

/* Ends a header value: trailing blanks trimmed, NUL-terminated. */
static int end_value(req_t *r)
{
    size_t start = r->hoff[r->n_hdr - 1].value;
    while (r->len > start && (r->buf[r->len - 1] == ' ' || r->buf[r->len - 1] == '\t'))
        r->len--;
    return arena_nul(r);
}

static int start_value(req_t *r)
{
    if (arena_nul(r) < 0) return -1;
    r->hoff[r->n_hdr - 1].value = (uint32_t)r->len;
    r->last_cb = CB_VALUE;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    req_t *r = cb_req(p);
    if (!r || count_header(p, r, len) < 0) return -1;
    /* http-parser (non-strict build) takes a space into the name ("Host : x");
     * RFC 9112 section 5.1 says to reject whitespace before the colon with 400 */
    if (memchr(at, ' ', len) || memchr(at, '\t', len)) return fail_cb(p, 400);
    if (r->headers_done) return 0; /* chunked trailers: counted, ignored */
    if (r->last_cb != CB_FIELD) {
        int rc = r->last_cb == CB_URL ? end_url(r) : end_value(r);
        if (rc < 0) return fail_cb(p, 503);
        if (r->n_hdr == MAX_HEADERS) return fail_cb(p, 431);
        r->hoff[r->n_hdr].name = (uint32_t)r->len;
        r->hoff[r->n_hdr].value = (uint32_t)r->len;
        r->n_hdr++;
        r->last_cb = CB_FIELD;
        if (count_header(p, r, 4) < 0) return -1; /* ": " and CRLF */
    }
    return arena_append(r, at, len) < 0 ? fail_cb(p, 503) : 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    req_t *r = cb_req(p);
    if (!r || count_header(p, r, len) < 0) return -1;
    if (r->headers_done) return 0;
    if (r->last_cb == CB_URL) return fail_cb(p, 400);
    if (r->last_cb == CB_FIELD && start_value(r) < 0) return fail_cb(p, 503);
    return arena_append(r, at, len) < 0 ? fail_cb(p, 503) : 0;
}

static int end_headers(req_t *r)
{
    if (r->last_cb == CB_URL) return end_url(r);
    if (r->last_cb == CB_FIELD && start_value(r) < 0) return -1;
    return end_value(r);
}

static int unhex(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Appends the percent-decoded src[0..n) plus NUL; -1 on a bad escape or %00. */
static int append_decoded(req_t *r, size_t src, size_t n)
{
    if (arena_reserve(r, n + 1) < 0) return -1;
    const char *s = r->buf + src;
    char *d = r->buf + r->len;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            d[o++] = s[i];
            continue;
        }
        if (i + 2 >= n) return -1;
        int a = unhex(s[i + 1]), b = unhex(s[i + 2]);
        if (a < 0 || b < 0 || (a == 0 && b == 0)) return -1;
        d[o++] = (char)(a * 16 + b);
        i += 2;
    }
    d[o] = '\0';
    r->len += o + 1;
    return 0;
}

static int append_copy(req_t *r, size_t src, size_t n)
{
    if (arena_reserve(r, n + 1) < 0) return -1;
    memcpy(r->buf + r->len, r->buf + src, n);
    r->len += n;
    return arena_nul(r);
}

/* Fills path (decoded) and query (raw) from the target; -1 when it is invalid. */
static int split_target(req_t *r, bool is_connect)
{
    const char *u = r->buf;
    size_t n = r->url_len, ps = 0, pl = 0, qs = 0, ql = 0;
    bool root = false;
    if (is_connect) {
        /* authority-form: no path, no query */
    } else if (n > 0 && (u[0] == '/' || u[0] == '*')) {
        while (pl < n && u[pl] != '?' && u[pl] != '#')
            pl++;
        if (pl < n && u[pl] == '?') {
            qs = pl + 1;
            while (qs + ql < n && u[qs + ql] != '#')
                ql++;
        }
    } else {
        struct http_parser_url pu;
        http_parser_url_init(&pu);
        if (n > UINT16_MAX || http_parser_parse_url(u, n, 0, &pu) != 0) return -1;
        root = !(pu.field_set & (1 << UF_PATH));
        ps = pu.field_data[UF_PATH].off;
        pl = root ? 0 : pu.field_data[UF_PATH].len;
        if (pu.field_set & (1 << UF_QUERY)) {
            qs = pu.field_data[UF_QUERY].off;
            ql = pu.field_data[UF_QUERY].len;
        }
    }
    r->path_off = r->len;
    int rc = root ? arena_append(r, "/", 2) : append_decoded(r, ps, pl);
    if (rc < 0) return -1;
    r->query_off = r->len;
    return append_copy(r, qs, ql);
}

static bool expects_continue(const req_t *r)
{
    for (size_t i = 0; i < r->n_hdr; i++)
        if (strcasecmp(r->buf + r->hoff[i].name, "expect") == 0 &&
            strcasecmp(r->buf + r->hoff[i].value, "100-continue") == 0)
            return true;
    return false;
}

static int on_headers_complete(http_parser *p)
{
    req_t *r = cb_req(p);
    if (!r) return -1;
    conn_t *c = p->data;
    if (end_headers(r) < 0) return fail_cb(p, 503);
    r->headers_done = true;
    if (p->http_major != 1) return fail_cb(p, 505);
    r->head = p->method == HTTP_HEAD;
    if (split_target(r, p->method == HTTP_CONNECT) < 0) return fail_cb(p, 400);
    bool chunked = p->flags & F_CHUNKED;
    bool has_len = !chunked && p->content_length != UINT64_MAX;
    if (has_len && p->content_length > c->srv->lim.max_body) return fail_cb(p, 413);
    bool has_body = chunked || (has_len && p->content_length > 0);
    r->want_continue = has_body && p->http_minor >= 1 && expects_continue(r);
    size_t extra = (r->n_hdr + 1) * sizeof(httpd_header_t) + alignof(httpd_header_t);
    size_t want = has_len ? (size_t)min_u64(p->content_length, BODY_PREALLOC) : 0;
    if (want && arena_reserve(r, want + 1 + extra) < 0) return fail_cb(p, 503);
    r->body_off = r->len;
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    req_t *r = cb_req(p);
    if (!r) return -1;
    size_t have = r->len - r->body_off, max = ((conn_t *)p->data)->srv->lim.max_body;
    if (len > max || have > max - len) return fail_cb(p, 413);
    return arena_append(r, at, len) < 0 ? fail_cb(p, 503) : 0;
}

/* Turns arena offsets into the public pointers; the arena never moves after. */
static int req_finish(req_t *r, const http_parser *p)
{
    r->pub.body_len = r->len - r->body_off;
    size_t al = alignof(httpd_header_t), hsz = r->n_hdr * sizeof(httpd_header_t);
    if (arena_nul(r) < 0 || arena_reserve(r, hsz + al) < 0) return -1;
    size_t pad = (al - (uintptr_t)(r->buf + r->len) % al) % al;
    httpd_header_t *hd = (httpd_header_t *)(void *)(r->buf + r->len + pad);
    r->len += pad + hsz;
    for (size_t i = 0; i < r->n_hdr; i++) {
        hd[i].name = r->buf + r->hoff[i].name;
        hd[i].value = r->buf + r->hoff[i].value;
    }
    r->pub.method = http_method_str((enum http_method)p->method);
    r->pub.target = r->buf;
    r->pub.path = r->buf + r->path_off;
    r->pub.query = r->buf + r->query_off;
    r->pub.headers = r->n_hdr ? hd : NULL;
    r->pub.n_headers = r->n_hdr;
    r->pub.body = r->buf + r->body_off;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    req_t *r = cb_req(p);
    if (!r) return -1;
    conn_t *c = p->data;
    if (req_finish(r, p) < 0) return fail_cb(p, 503);
    c->cur = NULL;
    c->done_req = r;
    bool ka = http_should_keep_alive(p) && !p->upgrade && !c->draining;
    r->ka10 = ka && p->http_minor == 0;
    if (!ka) {
        r->close = true;
        c->no_more = true;
        conn_read_stop(c);
    }
    http_parser_pause(p, 1); /* dispatch from conn_feed, outside the parser */
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---------- feeding input ---------- */

static void conn_dispatch(conn_t *c)
{
    req_t *r = c->done_req;
    if (!r) return;
    c->done_req = NULL;
    r->state = R_HANDLER;
    c->n_handler++;
    c->srv->handler(&r->pub, c->srv->arg);
}

/* Too much queued: stop reading, keep the unparsed rest for later. */
static void conn_pause(conn_t *c, const char *data, size_t len)
{
    c->paused = true;
    conn_read_stop(c);
    if (len == 0) return;
    c->backlog = malloc(len);
    if (!c->backlog) {
        conn_close(c);
        return;
    }
    memcpy(c->backlog, data, len);
    c->backlog_len = len;
}

static int parse_error_status(conn_t *c, enum http_errno e)
{
    int st = c->fail_status;
    c->fail_status = 0;
    if (st) return st;
    return e == HPE_HEADER_OVERFLOW ? 431 : 400;
}

static void conn_feed(conn_t *c, const char *data, size_t len)
{
    c->in_feed = true;
    while (len > 0 && !c->closing && !c->no_more) {
        size_t n = http_parser_execute(&c->parser, &parser_settings, data, len);
        data += n;
        len -= n;
        if (c->closing) break;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            conn_dispatch(c);
            if (!c->closing && !c->no_more && conn_pending(c) >= MAX_PIPELINE) {
                conn_pause(c, data, len);
                break;
            }
        } else if (e != HPE_OK || n == 0) {
            conn_fail(c, parse_error_status(c, e));
            break;
        }
    }
    c->in_feed = false;
    if (!c->closing) conn_flush(c);
}

/* The peer closed its side: answer what is complete, drop a partial request. */
static void conn_on_eof(conn_t *c)
{
    c->peer_eof = true;
    c->no_more = true;
    conn_read_stop(c);
    if (c->cur) {
        c->cur = NULL;
        fifo_drop_tail(c);
    }
    conn_after_progress(c, false);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = s->data;
    if (c->closing || nread == 0) return;
    if (nread > 0) {
        if (!c->lingering && !c->no_more && !c->paused) conn_feed(c, buf->base, (size_t)nread);
        return;
    }
    if (c->lingering || nread != UV_EOF) {
        conn_close(c);
        return;
    }
    conn_on_eof(c);
}

/* ---------- accepting ---------- */

/* Sets c->peer ("ip:port") and c->client: the IPv4 address, or the /64 of an IPv6
 * one (one host commonly holds a whole /64). */
static void peer_name(conn_t *c)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    snprintf(c->peer, sizeof c->peer, "?");
    snprintf(c->client, sizeof c->client, "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) < 0) return;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        uv_ip4_name(a, ip, sizeof ip);
        snprintf(c->peer, sizeof c->peer, "%s:%d", ip, ntohs(a->sin_port));
        snprintf(c->client, sizeof c->client, "%s", ip);
        return;
    }
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    uv_ip6_name(a6, ip, sizeof ip);
    port = ntohs(a6->sin6_port);
    if (strncmp(ip, "::ffff:", 7) == 0 && strchr(ip + 7, '.')) {
        snprintf(c->peer, sizeof c->peer, "%s:%d", ip + 7, port);
        snprintf(c->client, sizeof c->client, "%s", ip + 7);
        return;
    }
    snprintf(c->peer, sizeof c->peer, "[%s]:%d", ip, port);
    memset(a6->sin6_addr.s6_addr + 8, 0, 8);
    uv_ip6_name(a6, ip, sizeof ip);
    snprintf(c->client, sizeof c->client, "%s/64", ip);
}

/* Counts a refused connection; logs at most every REJECT_LOG_MS, so that a flood of
 * connections does not become a flood of log lines. */
static void note_reject(httpd_t *h, const char *why, const char *client)
{
    h->rejected++;
    uint64_t now = uv_now(h->loop);
    if (h->reject_logged_ms && now - h->reject_logged_ms < REJECT_LOG_MS) return;
    h->reject_logged_ms = now;
    log_warn(COMPONENT, "connections refused",
             "reason=%s client=%s refused=%ld max_connections=%d max_connections_per_client=%d",
             why, log_q(client), h->rejected, h->lim.max_connections, h->lim.max_per_client);
    h->rejected = 0;
}

static void on_reject_closed(uv_handle_t *handle)
{
    httpd_t *h = handle->data;
    free(handle);
    srv_handle_closed(h);
}

/* Over max_connections (or out of memory): accept and close at once. */
static void conn_reject(httpd_t *h)
{
    uv_tcp_t *t = malloc(sizeof *t);
    if (!t || uv_tcp_init(h->loop, t) < 0) {
        free(t);
        log_error(COMPONENT, "cannot reject connection", "port=%d", h->port);
        return;
    }
    t->data = h;
    h->live++;
    (void)uv_accept((uv_stream_t *)&h->listener, (uv_stream_t *)t);
    uv_close((uv_handle_t *)t, on_reject_closed);
    note_reject(h, "max_connections", "");
}

static void conn_accept(httpd_t *h, conn_t *c)
{
    c->srv = h;
    uv_tcp_init(h->loop, &c->tcp);
    uv_timer_init(h->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open_handles = 2;
    h->live += 2;
    c->next = h->conns;
    if (h->conns) h->conns->prev = c;
    h->conns = c;
    h->n_conns++;
    if (uv_accept((uv_stream_t *)&h->listener, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    peer_name(c);
    /* one client cannot take every slot: the others (a load balancer's /hb) still get in */
    if (strmap_add(&h->per_client, c->client, 1) > h->lim.max_per_client) {
        strmap_add(&h->per_client, c->client, -1);
        note_reject(h, "max_connections_per_client", c->client);
        conn_close(c);
        return;
    }
    c->counted = true;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->fresh = true;
    conn_read_start(c);
    conn_update_timer(c, true);
}

static void on_connection(uv_stream_t *server, int status)
{
    httpd_t *h = server->data;
    if (status < 0) {
        log_warn(COMPONENT, "accept failed", "err=%s", uv_err_name(status));
        return;
    }
    if (h->stopping) return;
    conn_t *c = h->n_conns < h->lim.max_connections ? calloc(1, sizeof *c) : NULL;
    if (!c) {
        conn_reject(h);
        return;
    }
    conn_accept(h, c);
}

/* ---------- binding ---------- */

static void set_err(char *err, size_t errlen, const char *fmt, const char *a, int port,
                    const char *why)
{
    if (err && errlen) snprintf(err, errlen, fmt, a, port, why);
}

static int bind_one(const struct sockaddr *sa, socklen_t salen, bool dual)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1, zero = 0;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (dual) (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (bind(fd, sa, salen) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* A bound socket for host:port (all interfaces: "::" dual-stack, else 0.0.0.0). */
static int listen_socket(const char *host, int port, char *err, size_t errlen)
{
    const char *node = host && *host ? host : NULL;
    int fd = -EADDRNOTAVAIL;
    if (!node) {
        struct sockaddr_in6 a6;
        struct sockaddr_in a4;
        uv_ip6_addr("::", port, &a6);
        uv_ip4_addr("0.0.0.0", port, &a4);
        fd = bind_one((struct sockaddr *)&a6, sizeof a6, true);
        if (fd < 0) fd = bind_one((struct sockaddr *)&a4, sizeof a4, false);
    } else {
        struct addrinfo hints = {.ai_family = AF_UNSPEC,
                                 .ai_socktype = SOCK_STREAM,
                                 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
        struct addrinfo *res = NULL;
        char ps[8];
        snprintf(ps, sizeof ps, "%d", port);
        int gai = getaddrinfo(node, ps, &hints, &res);
        if (gai != 0) {
            set_err(err, errlen, "resolve %s:%d: %s", node, port, gai_strerror(gai));
            return -1;
        }
        for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next)
            fd = bind_one(ai->ai_addr, ai->ai_addrlen, false);
        freeaddrinfo(res);
    }
    if (fd < 0) set_err(err, errlen, "bind %s:%d: %s", node ? node : "*", port, strerror(-fd));
    return fd < 0 ? -1 : fd;
}

/* ---------- public API ---------- */

void httpd_limits_default(httpd_limits_t *l)
{
    if (!l) return;
    if (!l->max_body) l->max_body = 1024 * 1024;
    if (!l->max_header) l->max_header = 16 * 1024;
    if (!l->read_timeout_ms) l->read_timeout_ms = 10000;
    if (!l->idle_timeout_ms) l->idle_timeout_ms = 60000;
    if (l->max_connections <= 0) l->max_connections = 10000;
    if (l->max_per_client <= 0) {
        l->max_per_client = l->max_connections / 2;
        if (l->max_per_client > PER_CLIENT_DEFAULT) l->max_per_client = PER_CLIENT_DEFAULT;
        if (l->max_per_client < 1) l->max_per_client = 1;
    }
    if (!l->stop_grace_ms) l->stop_grace_ms = 10000;
}

/* Closes both server handles; h is freed by the close callbacks (no done). */
static void srv_abort(httpd_t *h)
{
    h->stopping = true;
    h->grace_closing = true;
    uv_close((uv_handle_t *)&h->listener, on_srv_handle_closed);
    uv_close((uv_handle_t *)&h->grace, on_srv_handle_closed);
}

/* libuv writes with write(2): a peer that went away must give EPIPE, not kill the
 * process. Only a default disposition is changed; a handler set by main stays. */
static void ignore_sigpipe(void)
{
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL) {
        struct sigaction sa = {.sa_handler = SIG_IGN};
        sigemptyset(&sa.sa_mask);
        sigaction(SIGPIPE, &sa, NULL);
    }
}

httpd_t *httpd_start(uv_loop_t *loop, const char *host, int port, const httpd_limits_t *limits,
                     httpd_handler_fn handler, void *arg, char *err, size_t errlen)
{
    if (!loop || !handler || port < 0 || port > 65535) {
        set_err(err, errlen, "httpd_start %s:%d: %s", host ? host : "", port, "invalid argument");
        return NULL;
    }
    int fd = listen_socket(host, port, err, errlen);
    if (fd < 0) return NULL;
    ignore_sigpipe();
    httpd_t *h = calloc(1, sizeof *h);
    if (!h) {
        close(fd);
        set_err(err, errlen, "httpd_start %s:%d: %s", host ? host : "", port, "out of memory");
        return NULL;
    }
    h->loop = loop;
    h->handler = handler;
    h->arg = arg;
    if (limits) h->lim = *limits;
    httpd_limits_default(&h->lim);
    uv_tcp_init(loop, &h->listener);
    uv_timer_init(loop, &h->grace);
    h->listener.data = h->grace.data = h;
    h->live = 2;
    int rc = uv_tcp_open(&h->listener, fd);
    if (rc < 0) close(fd);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&h->listener, LISTEN_BACKLOG, on_connection);
    if (rc < 0) {
        set_err(err, errlen, "listen %s:%d: %s", host ? host : "*", port, uv_strerror(rc));
        srv_abort(h);
        return NULL;
    }
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getsockname(&h->listener, (struct sockaddr *)&ss, &len) == 0)
        h->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    return h;
}

int httpd_port(const httpd_t *h)
{
    return h ? h->port : -1;
}

const char *httpd_req_header(const httpd_req_t *req, const char *name)
{
    if (!req || !name) return NULL;
    for (size_t i = 0; i < req->n_headers; i++)
        if (strcasecmp(req->headers[i].name, name) == 0) return req->headers[i].value;
    return NULL;
}

/* Immediate path when r is next in line and nothing is queued: head from the stack
 * and the caller's body go out in one try_write; otherwise one wreq is built. */
static void resp_send_or_queue(conn_t *c, req_t *r, resp_t *rs)
{
    char stack[HEAD_STACK];
    size_t hl = build_head(c->srv, rs, stack, sizeof stack);
    bool now = c->head == r && c->n_writes == 0;
    if (now && hl <= sizeof stack) {
        uv_buf_t bufs[2] = {{.base = stack, .len = hl},
                            {.base = (char *)rs->body, .len = rs->send}};
        fifo_pop(c);
        int rc = conn_send_bufs(c, bufs, rs->send ? 2 : 1);
        req_release(c, r);
        if (rc < 0) conn_close(c);
        return;
    }
    wreq_t *w = wreq_new(hl + rs->send);
    if (!w) {
        r->state = R_READY; /* conn_close frees it */
        conn_close(c);
        return;
    }
    if (hl <= sizeof stack)
        memcpy(w->data, stack, hl);
    else
        build_head(c->srv, rs, w->data, hl);
    if (rs->send) memcpy(w->data + hl, rs->body, rs->send);
    r->out = w;
    r->state = R_READY;
}

void httpd_respond(httpd_req_t *req, int status, const httpd_header_t *headers, size_t n_headers,
                   const char *body, size_t len)
{
    if (!req) return;
    req_t *r = (req_t *)req;
    if (r->state != R_HANDLER) {
        log_warn(COMPONENT, "httpd_respond on a request already answered", "status=%d", status);
        return;
    }
    conn_t *c = r->c;
    if (!c) {
        req_free(r);
        return;
    }
    c->n_handler--;
    if (status < 200 || status > 999) {
        log_warn(COMPONENT, "invalid response status", "status=%d", status);
        status = 500;
    }
    resp_t rs = {.status = status,
                 .headers = headers,
                 .n_headers = headers ? n_headers : 0,
                 .body = body,
                 .len = body ? len : 0};
    rs.send = r->head || !status_has_body(status) ? 0 : rs.len;
    rs.close = r->close || (c->no_more && !r->next);
    rs.keepalive = !rs.close && r->ka10;
    resp_send_or_queue(c, r, &rs);
    if (!c->closing) conn_flush(c);
}

/* ---------- file responses ---------- */

static void pump_done(conn_t *c)
{
    pump_free(c->pump);
    c->pump = NULL;
    conn_flush(c);
}

static void on_pump_read(uv_fs_t *fs)
{
    pump_t *p = fs->data;
    ssize_t n = fs->result;
    uv_fs_req_cleanup(fs);
    p->reading = false;
    conn_t *c = p->c;
    if (!c) {
        pump_free(p);
        return;
    }
    if (n <= 0) { /* the file shrank or failed: cut the response short */
        log_warn(COMPONENT, "file response read failed", "peer=%s err=%s", c->peer,
                 n < 0 ? uv_err_name((int)n) : "EOF");
        conn_close(c);
        return;
    }
    p->off += (uint64_t)n;
    p->left -= (uint64_t)n;
    uv_buf_t b = {.base = p->buf, .len = (size_t)n};
    if (conn_send_bufs(c, &b, 1) < 0) {
        conn_close(c);
        return;
    }
    if (c->n_writes > 0)
        p->waiting = true; /* conn_after_progress resumes once the socket took it */
    else
        pump_next(c);
}

static void pump_next(conn_t *c)
{
    pump_t *p = c->pump;
    if (p->left == 0) {
        pump_done(c);
        return;
    }
    size_t want = p->left < PUMP_CHUNK ? (size_t)p->left : PUMP_CHUNK;
    uv_buf_t b = {.base = p->buf, .len = want};
    p->fs.data = p;
    p->reading = true;
    if (uv_fs_read(c->srv->loop, &p->fs, p->fd, &b, 1, (int64_t)p->off, on_pump_read) < 0) {
        p->reading = false;
        conn_close(c);
    }
}

void httpd_respond_fd(httpd_req_t *req, int status, const httpd_header_t *headers, size_t n_headers,
                      int fd, uint64_t size)
{
    req_t *r = (req_t *)req;
    if (!r || r->state != R_HANDLER || !r->c) {
        if (r && r->state == R_HANDLER) req_free(r);
        close(fd);
        return;
    }
    conn_t *c = r->c;
    pump_t *p = malloc(sizeof *p);
    if (!p) {
        close(fd);
        httpd_respond_error(req, 500, "Internal Server Error");
        return;
    }
    c->n_handler--;
    resp_t rs = {
        .status = status, .headers = headers, .n_headers = headers ? n_headers : 0, .len = size};
    rs.close = r->close || (c->no_more && !r->next);
    rs.keepalive = !rs.close && r->ka10;
    size_t hl = build_head(c->srv, &rs, NULL, 0);
    wreq_t *w = wreq_new(hl);
    if (!w) {
        free(p);
        close(fd);
        r->state = R_READY;
        conn_close(c);
        return;
    }
    build_head(c->srv, &rs, w->data, hl);
    p->c = NULL;
    p->fd = fd;
    p->off = 0;
    p->left = r->head || !status_has_body(status) ? 0 : size;
    p->reading = p->waiting = false;
    r->out = w;
    r->pump = p;
    r->state = R_READY;
    conn_flush(c);
}

void httpd_respond_error(httpd_req_t *req, int status, const char *msg)
{
    static const httpd_header_t hdrs[] = {
        {"Content-Type", "text/plain; charset=utf-8"},
        {"X-Content-Type-Options", "nosniff"},
    };
    if (!msg) msg = "";
    size_t n = strlen(msg);
    char stack[256];
    char *b = n < sizeof stack ? stack : malloc(n + 1);
    if (!b) {
        httpd_respond(req, status, hdrs, 2, msg, n);
        return;
    }
    memcpy(b, msg, n);
    b[n] = '\n';
    httpd_respond(req, status, hdrs, 2, b, n + 1);
    if (b != stack) free(b);
}

/* ---------- stopping ---------- */

static void conn_drain(conn_t *c)
{
    if (c->closing || c->lingering) return;
    c->draining = true;
    if (!c->head && c->n_writes == 0 && !c->pump) {
        conn_close(c);
        return;
    }
    if (c->cur) return; /* finish reading it; it is answered with Connection: close */
    c->no_more = true;
    conn_read_stop(c);
    conn_after_progress(c, false);
}

static void on_grace(uv_timer_t *t)
{
    httpd_t *h = t->data;
    if (h->conns) log_warn(COMPONENT, "stop grace expired", "open_connections=%d", h->n_conns);
    while (h->conns)
        conn_close(h->conns);
    srv_check_drained(h);
}

void httpd_stop(httpd_t *h, void (*done)(void *arg), void *arg)
{
    if (!h) return;
    if (h->stopping) {
        log_warn(COMPONENT, "httpd_stop called twice", "port=%d", h->port);
        return;
    }
    h->stopping = true;
    h->done = done;
    h->done_arg = arg;
    uv_close((uv_handle_t *)&h->listener, on_srv_handle_closed);
    for (conn_t *c = h->conns, *next; c; c = next) {
        next = c->next;
        conn_drain(c);
    }
    if (h->conns) uv_timer_start(&h->grace, on_grace, h->lim.stop_grace_ms, 0);
    srv_check_drained(h);
}

void httpd_respond_405(httpd_req_t *req, const char *allow)
{
    const httpd_header_t h[] = {{"Content-Type", "text/plain; charset=utf-8"},
                                {"X-Content-Type-Options", "nosniff"},
                                {"Allow", allow}};
    static const char body[] = "Invalid request method\n";
    httpd_respond(req, 405, h, 3, body, sizeof body - 1);
}
