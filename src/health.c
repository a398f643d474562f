/* health: the routes a load balancer or a monitor asks. GET /hb is the reference's
 * heartbeat (§3): 200 OK unless the file api.heartbeat_path exists, which takes the
 * instance out of rotation; GET /ready (ours) says whether it holds a Redis connection. */
#include "health.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reply.h"

static const httpd_header_t text[] = {{"Content-Type", "text/plain; charset=utf-8"}};

/* ---------- GET /hb ---------- */

typedef struct {
    uv_fs_t fs;
    httpd_req_t *req;
    char *path;
} hb_t;

static void on_hb_stat(uv_fs_t *fs)
{
    hb_t *h = fs->data;
    if (fs->result == UV_ENOENT) {
        httpd_respond(h->req, 200, text, 1, "OK", 2);
    } else {
        char msg[4200];
        snprintf(msg, sizeof msg, "Service disabled, '%s' exists!", h->path);
        httpd_respond_error(h->req, 503, msg);
    }
    uv_fs_req_cleanup(fs);
    free(h->path);
    free(h);
}

void health_hb(app_t *app, httpd_req_t *req)
{
    const char *path = app->cfg.heartbeat_path;
    if (!path || !*path) {
        httpd_respond(req, 200, text, 1, "OK", 2);
        return;
    }
    hb_t *h = calloc(1, sizeof *h);
    h->req = req;
    h->path = strdup(path);
    h->fs.data = h;
    if (uv_fs_stat(app->loop, &h->fs, h->path, on_hb_stat) < 0) {
        h->fs.result = UV_EIO;
        on_hb_stat(&h->fs);
    }
}

/* ---------- GET /ready ---------- */

/* Readiness, as a load balancer or an orchestrator asks it: 200 once this instance holds
 * a Redis connection, 503 while it has none (at start-up, and during an outage). */
void health_ready(app_t *app, httpd_req_t *req)
{
    if (store_up(app->store))
        httpd_respond(req, 200, text, 1, "OK", 2);
    else
        reply_down(req);
}
