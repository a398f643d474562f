/* fuzz_http: libFuzzer target for the HTTP server (src/httpd.c: http-parser callbacks,
 * request arena, pipelining, limits, error answers) and the API router (src/api.c,
 * the auth check, job parsing behind POST /download). One process-wide libuv loop
 * runs the real api_start() on a loopback port, with an auth token set (read routes
 * open) and Redis unreachable, so store-backed routes answer 503 at once. Each input
 * is written as-is over a fresh TCP connection, the client half-closes, reads every
 * answer, and the loop runs until the server has closed its side of the connection
 * and released it: nothing of one input survives into the next. Nothing is
 * refactored for the fuzzer; a connection costs a few syscalls, so it runs thousands
 * of inputs per second. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "api.h"
#include "app.h"
#include "config.h"
#include "log.h"
#include "store.h"

#define FUZZ_TOKEN "fuzz-token"
#define HANG_MS 10000 /* a connection the server never closes is a bug: abort */

static app_t app;
static int port;

static const char config_json[] =
    "{\"redis\": {\"addr\": \"127.0.0.1:1\"},"
    " \"api\": {\"auth_token\": \"" FUZZ_TOKEN "\", \"heartbeat_path\": \"/nonexistent/fuzz-hb\","
    "          \"max_body\": 65536, \"max_header\": 4096},"
    " \"processor\": {\"filestorage\": {\"rootdir\": \"/nonexistent/fuzz-files\"}}}";

static void die(const char *what)
{
    fprintf(stderr, "fuzz_http: %s\n", what);
    abort();
}

static void init(void)
{
    char err[512];
    log_set_level(LOG_ERROR);
    signal(SIGPIPE, SIG_IGN);
    if (config_parse(config_json, strlen(config_json), CONFIG_API, &app.cfg, err, sizeof err) < 0)
        die(err);
    app.loop = uv_default_loop();
    app_identity(&app);
    app.store = store_new(app.loop, &app.cfg, "fuzz");
    if (!app.store) die("store_new failed");
    api_t *a = api_start(&app, "127.0.0.1", 0, err, sizeof err);
    if (!a) die(err);
    port = api_port(a);
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static int client_connect(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("connect failed");
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* Waits for the client socket or the loop (at most its next timer, capped). */
static void wait_events(int fd, short client_events)
{
    int t = uv_backend_timeout(app.loop);
    struct pollfd p[2] = {{.fd = fd, .events = client_events},
                          {.fd = uv_backend_fd(app.loop), .events = POLLIN}};
    poll(p, 2, t < 0 || t > 20 ? 20 : t); /* a negative fd is ignored */
}

/* Reads whatever arrived; 1 once the server closed (EOF or reset). */
static int drain(int fd)
{
    char buf[65536];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n > 0) continue;
        if (n == 0) return 1;
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : 1;
    }
}

static void count_tcp(uv_handle_t *h, void *arg)
{
    if (h->type == UV_TCP) ++*(int *)arg;
}

/* Connections still open or closing on the server side (the listener excluded). */
static int server_conns(void)
{
    int n = 0;
    uv_walk(app.loop, count_tcp, &n);
    return n - 1;
}

/* Sends the input, half-closes, and reads until the server closed the connection. */
static void exchange(int fd, const uint8_t *data, size_t size, long deadline)
{
    size_t off = 0;
    bool shut = false;
    while (!drain(fd)) {
        if (off < size) {
            ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
            if (n > 0)
                off += (size_t)n;
            else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                off = size;
        }
        if (off == size && !shut) {
            shutdown(fd, SHUT_WR);
            shut = true;
        }
        uv_run(app.loop, UV_RUN_NOWAIT);
        if (now_ms() > deadline) die("the server did not close the connection");
        wait_events(fd, (short)(POLLIN | (off < size ? POLLOUT : 0)));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!port) init();
    long deadline = now_ms() + HANG_MS;
    int fd = client_connect();
    exchange(fd, data, size, deadline);
    close(fd);
    /* let the server finish: close callbacks, handler work in flight */
    do {
        uv_run(app.loop, UV_RUN_NOWAIT);
        if (now_ms() > deadline) die("the server did not release the connection");
        if (server_conns() > 0 || app.loop->active_reqs.count > 0) wait_events(-1, 0);
    } while (server_conns() > 0 || app.loop->active_reqs.count > 0);
    return 0;
}
