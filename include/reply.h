/* reply: the answers the route modules share (JSON with CORS, Redis away). Built on
 * httpd only; api.c's route modules (intake, dashboard, control, ...) use it. */
#ifndef DOWNLOADER_REPLY_H
#define DOWNLOADER_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <yajl/yajl_gen.h>

#include "httpd.h"

/* The text of every 503 for Redis being away. */
#define REPLY_REDIS_DOWN "Service unavailable: Redis is not reachable, try again later"

/* status with a JSON body and Access-Control-Allow-Origin: *. */
void reply_json_buf(httpd_req_t *req, int status, const char *body, size_t len);

/* reply_json_buf with what g generated; frees g. */
void reply_json(httpd_req_t *req, int status, yajl_gen g);

/* 503 REPLY_REDIS_DOWN as httpd_respond_error sends it, plus CORS, so that a dashboard
 * merging several hosts can tell "Redis down" from "host unreachable". */
void reply_down(httpd_req_t *req);

/* A Redis call that failed: reply_down when Redis is away (down), else 500 with msg. */
void reply_store_error(httpd_req_t *req, bool down, const char *msg);

#endif
