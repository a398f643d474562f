/* api: the HTTP API's route table (§3 of the reference plus ours) and the dispatch through
 * it, which decides auth and 405 for every route; the handlers are in intake, health,
 * dashboard, control, metrics and serve. Starts and stops the API's httpd. */
#ifndef DOWNLOADER_API_H
#define DOWNLOADER_API_H

#include <stddef.h>

#include "app.h"
#include "auth.h"
#include "httpd.h"

typedef struct api api_t;

/* A route handler; it answers req (now or later) with httpd_respond*. */
typedef void (*api_handler_fn)(app_t *app, httpd_req_t *req);

/* One entry of the route table: method ("GET" also serves HEAD, "*" any), path pattern
 * (exact, or a prefix when it ends in '*'), handler and the auth level it needs. */
typedef struct {
    const char *method;
    const char *pattern;
    api_handler_fn handler;
    auth_level_t auth;
} api_route_t;

/* What the table says about a request: the entry to run (NULL: the path's route does
 * not implement the method: 405), the auth level to check first (the entry's, or the
 * strictest of the route's when none) and, only when there is no entry, the route's
 * methods for the Allow header. */
typedef struct {
    const api_route_t *route;
    auth_level_t auth;
    char allow[96];
} api_match_t;

/* Looks a request up in a table (the first matching pattern is the route). */
api_match_t api_route_match(const api_route_t *table, size_t n, const char *method,
                            const char *path);

/* The auth level the API's own table gives method + path (AUTH_WRITE for NULL). */
auth_level_t api_route_auth(const char *method, const char *path);

/* Listens on host:port (host "" = all interfaces). NULL with err on failure. */
api_t *api_start(app_t *app, const char *host, int port, char *err, size_t errlen);

/* The bound port. */
int api_port(const api_t *a);

/* Graceful stop (httpd_stop), then done. */
void api_stop(api_t *a, void (*done)(void *arg), void *arg);

#endif
