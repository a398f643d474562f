/* curlm: owns one libcurl multi handle and runs it on a libuv loop. curl tells us
 * which sockets to watch (CURLMOPT_SOCKETFUNCTION -> one uv_poll_t per socket, kept
 * in curl's per-socket slot via curl_multi_assign) and when to time out
 * (CURLMOPT_TIMERFUNCTION -> one uv_timer_t). After every curl_multi_socket_action
 * finished transfers are collected, removed from the multi and handed back to their
 * owner through the done callback. fetch.c and the callback backends sit on top.
 *
 * A keep-alive connection is watched again by its next transfer: when curl stops
 * watching a socket (CURL_POLL_REMOVE) its uv_poll is parked, still armed for reading,
 * rather than stopped, and found again by fd. Re-arming it for the same events costs
 * no epoll_ctl (stopping and restarting cost two per transfer). A parked socket that
 * turns readable (the server closed it) is stopped; curl's own liveness check finds
 * that out on reuse. curl closes connection sockets through CURLOPT_CLOSESOCKETFUNCTION,
 * so their poll handle is always closed before the fd is; other sockets (the threaded
 * resolver's socket pair, closed directly) are never parked. */
#include "curlm.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_RETRY_AFTER_S (24L * 3600)
#define EASY_POOL 128 /* idle easy handles kept for reuse */

/* One transfer in progress; stored as the easy handle's CURLOPT_PRIVATE. */
typedef struct xfer {
    CURL *easy;
    curlm_done_fn done;
    void *arg;
    bool removed; /* curlm_remove hit curl's recursion guard: remove after the callback */
    bool release; /* curlm_easy_release came meanwhile: pool the handle once removed */
    struct xfer *prev, *next;
} xfer_t;

/* One watched socket; stored in curl's socket slot (curl_multi_assign). */
typedef struct sock {
    uv_poll_t poll;
    curl_socket_t fd;
    curlm_t *m;
    int events;    /* what curl asked for, as UV_READABLE | UV_WRITABLE */
    bool parkable; /* a TCP socket: curl closes it through on_close_socket */
    bool parked;   /* curl does not watch it now (an idle connection in its cache) */
    bool closing;
    struct sock *prev, *next;
} sock_t;

struct curlm {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    xfer_t *xfers;
    sock_t *socks;
    sock_t **byfd; /* open poll handles by fd, to find parked ones again */
    size_t nbyfd;
    int active;
    int handles;           /* live uv handles (timer + polls); m is freed when 0 after close */
    int dispatching;       /* depth of drive() calls: closing is deferred meanwhile */
    int deferred;          /* transfers marked `removed` */
    CURL *pool[EASY_POOL]; /* reset handles: no calloc, buffer malloc and option strdups */
    int pooled;
    bool closing;
    bool closed_multi;
    void (*closed)(void *arg);
    void *closed_arg;
};

static void do_close(curlm_t *m);

static void maybe_free(curlm_t *m)
{
    if (!m->closing || !m->closed_multi || m->handles > 0) return;
    void (*closed)(void *) = m->closed;
    void *arg = m->closed_arg;
    free(m->byfd);
    free(m);
    if (closed) closed(arg);
}

static void on_handle_closed(uv_handle_t *h)
{
    curlm_t *m = h->data;
    if (h->type == UV_POLL) {
        sock_t *s = (sock_t *)h;
        if (s->prev)
            s->prev->next = s->next;
        else
            m->socks = s->next;
        if (s->next) s->next->prev = s->prev;
        free(s);
    }
    m->handles--;
    maybe_free(m);
}

/* The open poll handle of fd, or NULL. */
static sock_t *byfd_get(const curlm_t *m, curl_socket_t fd)
{
    return fd >= 0 && (size_t)fd < m->nbyfd ? m->byfd[fd] : NULL;
}

static void sock_close(sock_t *s)
{
    if (s->closing) return;
    if (byfd_get(s->m, s->fd) == s) s->m->byfd[s->fd] = NULL;
    s->closing = true;
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, on_handle_closed);
}

static void xfer_unlink(curlm_t *m, xfer_t *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        m->xfers = x->next;
    if (x->next) x->next->prev = x->prev;
    if (x->removed)
        m->deferred--;
    else
        m->active--;
}

static void pool_put(curlm_t *m, CURL *easy)
{
    if (m->closing || m->pooled == EASY_POOL) {
        curl_easy_cleanup(easy);
        return;
    }
    curl_easy_reset(easy); /* connections stay in the multi's cache */
    m->pool[m->pooled++] = easy;
}

/* Detaches one transfer from the multi without any callback. */
static void xfer_drop(curlm_t *m, xfer_t *x)
{
    curl_multi_remove_handle(m->multi, x->easy);
    curl_easy_setopt(x->easy, CURLOPT_PRIVATE, NULL);
    if (x->release) pool_put(m, x->easy);
    xfer_unlink(m, x);
    free(x);
}

/* Finishes removals that curl refused while it was inside one of its callbacks. */
static void drop_deferred(curlm_t *m)
{
    xfer_t *x = m->xfers;
    while (m->deferred > 0 && x) {
        xfer_t *next = x->next;
        if (x->removed) xfer_drop(m, x);
        x = next;
    }
}

/* Collects finished transfers; each is removed from the multi before its callback. */
static void check_done(curlm_t *m)
{
    CURLMsg *msg;
    int left;
    while (!m->closing && (msg = curl_multi_info_read(m->multi, &left))) {
        if (msg->msg != CURLMSG_DONE) continue;
        CURL *easy = msg->easy_handle;
        CURLcode result = msg->data.result;
        xfer_t *x = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
        if (!x) {
            curl_multi_remove_handle(m->multi, easy);
            continue;
        }
        bool removed = x->removed;
        curlm_done_fn done = x->done;
        void *arg = x->arg;
        xfer_drop(m, x);
        if (!removed) done(easy, result, arg);
    }
}

/* Lets curl act on a socket (or on its timeout) and dispatches what finished. A
 * curlm_close from any callback in between is deferred until the end. */
static void drive(curlm_t *m, curl_socket_t fd, int flags)
{
    int running;
    m->dispatching++;
    if (!m->closing) curl_multi_socket_action(m->multi, fd, flags, &running);
    check_done(m);
    if (!m->closing) drop_deferred(m);
    m->dispatching--;
    if (m->closing && m->dispatching == 0 && !m->closed_multi) do_close(m);
}

/* libuv stops a poll handle that reports an error (POLLERR). curl is then told the
 * socket is ready so that its own recv/send surfaces the real error, and the handle
 * is re-armed if curl still wants the socket. */
static void on_poll(uv_poll_t *h, int status, int events)
{
    sock_t *s = (sock_t *)h;
    curlm_t *m = s->m;
    int flags = 0;
    if (s->parked) { /* an idle connection closed by its server: curl sees it on reuse */
        uv_poll_stop(&s->poll);
        s->events = 0;
        return;
    }
    if (status < 0) events = s->events;
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    /* s may be closed (not freed) by the socket callback inside this call */
    drive(m, s->fd, flags);
    if (status < 0 && !s->closing && !m->closing) uv_poll_start(&s->poll, s->events, on_poll);
}

static void on_timer(uv_timer_t *t)
{
    drive(t->data, CURL_SOCKET_TIMEOUT, 0);
}

/* Records s as the handle of its fd. Returns -1 when the table cannot grow. */
static int byfd_set(curlm_t *m, sock_t *s)
{
    size_t fd = (size_t)s->fd;
    if (fd >= m->nbyfd) {
        size_t n = m->nbyfd ? m->nbyfd : 64;
        while (n <= fd)
            n *= 2;
        sock_t **t = realloc(m->byfd, n * sizeof *t);
        if (!t) return -1;
        memset(t + m->nbyfd, 0, (n - m->nbyfd) * sizeof *t);
        m->byfd = t;
        m->nbyfd = n;
    }
    m->byfd[fd] = s;
    return 0;
}

static bool is_tcp(curl_socket_t fd)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0) return false;
    return sa.ss_family == AF_INET || sa.ss_family == AF_INET6;
}

static sock_t *sock_new(curlm_t *m, curl_socket_t fd)
{
    sock_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->fd = fd;
    s->m = m;
    if (byfd_set(m, s) < 0 || uv_poll_init_socket(m->loop, &s->poll, fd) != 0) {
        if (byfd_get(m, fd) == s) m->byfd[fd] = NULL;
        free(s);
        return NULL;
    }
    s->poll.data = m;
    s->parkable = is_tcp(fd);
    s->next = m->socks;
    if (m->socks) m->socks->prev = s;
    m->socks = s;
    m->handles++;
    return s;
}

/* The handle of fd: the one curl assigned, else a parked one, else a new one. */
static sock_t *sock_find(curlm_t *m, curl_socket_t fd, sock_t *assigned)
{
    sock_t *s = assigned;
    if (!s) s = byfd_get(m, fd);
    if (!s) s = sock_new(m, fd);
    if (s && s != assigned) curl_multi_assign(m->multi, fd, s);
    if (s) s->parked = false;
    return s;
}

/* Sets what a handle watches; re-arming the same events costs no syscall. */
static int sock_watch(sock_t *s, int events)
{
    if (events == s->events && uv_is_active((uv_handle_t *)&s->poll)) return 0;
    s->events = events;
    return uv_poll_start(&s->poll, events, on_poll) == 0 ? 0 : -1;
}

/* CURLMOPT_SOCKETFUNCTION: start, change or stop watching one socket. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    curlm_t *m = userp;
    sock_t *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            curl_multi_assign(m->multi, fd, NULL);
            s->parked = s->parkable && !m->closing;
            if (!s->parked || sock_watch(s, UV_READABLE) < 0) sock_close(s);
        }
        return 0;
    }
    s = sock_find(m, fd, s);
    if (!s) return -1;
    int events = 0;
    if (what & CURL_POLL_IN) events |= UV_READABLE;
    if (what & CURL_POLL_OUT) events |= UV_WRITABLE;
    return sock_watch(s, events);
}

/* CURLOPT_CLOSESOCKETFUNCTION: the poll handle goes before the fd can be reused. */
static int on_close_socket(void *clientp, curl_socket_t fd)
{
    curlm_t *m = clientp;
    sock_t *s = byfd_get(m, fd);
    if (s) sock_close(s);
    return close(fd);
}

/* CURLMOPT_TIMERFUNCTION: never calls into curl from here; 0 runs on the loop. */
static int on_timeout_change(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    curlm_t *m = userp;
    if (timeout_ms < 0) return uv_timer_stop(&m->timer) == 0 ? 0 : -1;
    return uv_timer_start(&m->timer, on_timer, (uint64_t)timeout_ms, 0) == 0 ? 0 : -1;
}

curlm_t *curlm_new(uv_loop_t *loop, long max_host_connections)
{
    curlm_t *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->loop = loop;
    m->multi = curl_multi_init();
    if (!m->multi || uv_timer_init(loop, &m->timer) != 0) {
        if (m->multi) curl_multi_cleanup(m->multi);
        free(m);
        return NULL;
    }
    m->timer.data = m;
    m->handles = 1;
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, on_timeout_change);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
    if (max_host_connections > 0)
        curl_multi_setopt(m->multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_host_connections);
    return m;
}

int curlm_add(curlm_t *m, CURL *easy, curlm_done_fn done, void *arg)
{
    if (m->closing || !done) return -1;
    xfer_t *x = calloc(1, sizeof *x);
    if (!x) return -1;
    x->easy = easy;
    x->done = done;
    x->arg = arg;
    curl_easy_setopt(easy, CURLOPT_PRIVATE, x);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, m);
    if (curl_multi_add_handle(m->multi, easy) != CURLM_OK) {
        curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
        free(x);
        return -1;
    }
    x->next = m->xfers;
    if (m->xfers) m->xfers->prev = x;
    m->xfers = x;
    m->active++;
    return 0;
}

void curlm_remove(curlm_t *m, CURL *easy)
{
    xfer_t *x = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
    if (!x || x->removed) return;
    if (curl_multi_remove_handle(m->multi, easy) == CURLM_RECURSIVE_API_CALL) {
        x->removed = true; /* inside a curl callback: finished by drive() */
        m->active--;
        m->deferred++;
        return;
    }
    curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
    xfer_unlink(m, x);
    free(x);
}

CURL *curlm_easy(curlm_t *m)
{
    return m->pooled > 0 ? m->pool[--m->pooled] : curl_easy_init();
}

void curlm_easy_release(curlm_t *m, CURL *easy)
{
    xfer_t *x = NULL;
    if (!easy) return;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
    if (x && !x->removed) curlm_remove(m, easy);
    x = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
    if (x)
        x->release = true; /* still in the multi until drive() finishes the removal */
    else
        pool_put(m, easy);
}

int curlm_active(const curlm_t *m)
{
    return m->active;
}

static void do_close(curlm_t *m)
{
    while (m->xfers)
        xfer_drop(m, m->xfers);
    uv_timer_stop(&m->timer);
    curl_multi_cleanup(m->multi); /* may still report CURL_POLL_REMOVE */
    while (m->pooled > 0)
        curl_easy_cleanup(m->pool[--m->pooled]);
    m->multi = NULL;
    m->closed_multi = true;
    for (sock_t *s = m->socks; s; s = s->next)
        sock_close(s);
    uv_close((uv_handle_t *)&m->timer, on_handle_closed);
}

void curlm_close(curlm_t *m, void (*closed)(void *arg), void *arg)
{
    if (m->closing) return;
    m->closing = true;
    m->closed = closed;
    m->closed_arg = arg;
    if (m->dispatching == 0) do_close(m);
}

/* ---------- response header lines ---------- */

static void copy_trimmed(char *dst, size_t dstlen, const char *src, size_t n)
{
    while (n > 0 && isspace((unsigned char)*src))
        src++, n--;
    while (n > 0 && isspace((unsigned char)src[n - 1]))
        n--;
    if (n >= dstlen) n = dstlen - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

bool curlm_status_line(const char *line, size_t len, char *dst, size_t dstlen)
{
    if (len < 5 || memcmp(line, "HTTP/", 5) != 0) return false;
    const char *sp = memchr(line, ' ', len);
    size_t off = sp ? (size_t)(sp - line) : len;
    copy_trimmed(dst, dstlen, line + off, len - off);
    return true;
}

bool curlm_header_value(const char *line, size_t len, const char *name, char *dst, size_t dstlen)
{
    size_t n = strlen(name);
    if (len <= n || line[n] != ':' || strncasecmp(line, name, n) != 0) return false;
    copy_trimmed(dst, dstlen, line + n + 1, len - n - 1);
    return true;
}

long curlm_retry_after_ms(const char *v, time_t now)
{
    long long s;
    if (isdigit((unsigned char)v[0])) {
        char *end;
        s = strtoll(v, &end, 10);
        if (*end) return 0;
    } else {
        time_t t = v[0] ? curl_getdate(v, NULL) : -1;
        if (t == -1 || t <= now) return 0;
        s = (long long)(t - now);
    }
    return (long)(s > MAX_RETRY_AFTER_S ? MAX_RETRY_AFTER_S : s) * 1000;
}
