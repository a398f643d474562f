/* httpd: HTTP/1.1 server on libuv + http-parser. Keep-alive, pipelining (responses
 * in request order), Content-Length and chunked bodies, limits and timeouts, graceful
 * stop. Knows nothing about routes: every complete request goes to one handler. */
#ifndef DOWNLOADER_HTTPD_H
#define DOWNLOADER_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct {
    size_t max_body;          /* bytes; larger bodies get 413 (default 1 MiB) */
    size_t max_header;        /* bytes of request line + headers; then 431 (default 16 KiB) */
    uint64_t read_timeout_ms; /* a started request must be fully read within (default 10 s) */
    uint64_t idle_timeout_ms; /* keep-alive connection with nothing pending (default 60 s) */
    int max_connections;      /* further connections are accepted and closed (default 10000) */
    int max_per_client;       /* from one client (IPv4 address, IPv6 /64); further ones are
                                 accepted and closed (default 256, at most max_connections/2) */
    uint64_t stop_grace_ms;   /* httpd_stop waits this long for in-flight requests (default 10 s) */
} httpd_limits_t;

typedef struct {
    const char *name;
    const char *value;
} httpd_header_t;

typedef struct httpd httpd_t;

/* One parsed request. Valid from the handler call until httpd_respond(); the handler
 * must call httpd_respond exactly once, now or later (after async work). If the
 * client goes away first, httpd_respond still has to be called and just frees. */
typedef struct httpd_req {
    const char *method; /* "GET", "POST", ... */
    const char *target; /* raw request target as sent, e.g. "/stats/x?y" */
    const char *path;   /* target's path, percent-decoded, without the query */
    const char *query;  /* raw query after '?', or "" */
    const httpd_header_t *headers;
    size_t n_headers;
    const char *body; /* NUL-terminated for convenience; body_len excludes it */
    size_t body_len;
    char peer[64]; /* client address "ip:port" */
    void *udata;   /* free for the handler's use */
} httpd_req_t;

typedef void (*httpd_handler_fn)(httpd_req_t *req, void *arg);

/* Fills defaults for every zero field. */
void httpd_limits_default(httpd_limits_t *l);

/* Binds host:port (host "" or NULL = all interfaces; IPv4 or IPv6 literal or name)
 * and starts serving. Returns NULL with a message in err on failure. */
httpd_t *httpd_start(uv_loop_t *loop, const char *host, int port, const httpd_limits_t *limits,
                     httpd_handler_fn handler, void *arg, char *err, size_t errlen);

/* The port actually bound (useful with port 0). */
int httpd_port(const httpd_t *h);

/* Case-insensitive request header lookup; NULL when absent. */
const char *httpd_req_header(const httpd_req_t *req, const char *name);

/* Sends the response for req and releases it. Adds Content-Length, Date and
 * Connection headers. `headers` may be NULL. body may be NULL when len is 0. */
void httpd_respond(httpd_req_t *req, int status, const httpd_header_t *headers, size_t n_headers,
                   const char *body, size_t len);

/* Sends `size` bytes read from the open file descriptor fd (read asynchronously on the
 * thread pool in chunks, so memory stays bounded) and closes fd afterwards. */
void httpd_respond_fd(httpd_req_t *req, int status, const httpd_header_t *headers, size_t n_headers,
                      int fd, uint64_t size);

/* Go http.Error style: text/plain; charset=utf-8, X-Content-Type-Options: nosniff,
 * body = msg + "\n". */
void httpd_respond_error(httpd_req_t *req, int status, const char *msg);

/* 405 "Invalid request method" in that style, with Allow: allow. */
void httpd_respond_405(httpd_req_t *req, const char *allow);

/* Stops accepting, closes idle connections, lets in-flight requests finish for up to
 * stop_grace_ms, then closes everything and calls done (once all handles are closed). */
void httpd_stop(httpd_t *h, void (*done)(void *arg), void *arg);

/* Reason phrase for a status code ("Not Found"). */
const char *httpd_status_text(int status);

#endif
