/* health: the heartbeat and readiness routes. api.c's route table dispatches to them
 * (both are open to anyone). */
#ifndef DOWNLOADER_HEALTH_H
#define DOWNLOADER_HEALTH_H

#include "app.h"
#include "httpd.h"

/* GET /hb (any method): 200 "OK", or 503 naming api.heartbeat_path while it exists. */
void health_hb(app_t *app, httpd_req_t *req);

/* GET /ready: 200 "OK" while a Redis connection is held, else 503. */
void health_ready(app_t *app, httpd_req_t *req);

#endif
