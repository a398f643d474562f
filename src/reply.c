/* reply: the answers several route modules give alike: JSON bodies with CORS and the
 * 503 for Redis being away. */
#include "reply.h"

static const httpd_header_t json_cors[] = {{"Content-Type", "application/json"},
                                           {"Access-Control-Allow-Origin", "*"}};

void reply_json_buf(httpd_req_t *req, int status, const char *body, size_t len)
{
    httpd_respond(req, status, json_cors, 2, body, len);
}

void reply_json(httpd_req_t *req, int status, yajl_gen g)
{
    const unsigned char *buf;
    size_t len;
    yajl_gen_get_buf(g, &buf, &len);
    reply_json_buf(req, status, (const char *)buf, len);
    yajl_gen_free(g);
}

void reply_down(httpd_req_t *req)
{
    static const httpd_header_t h[] = {{"Content-Type", "text/plain; charset=utf-8"},
                                       {"X-Content-Type-Options", "nosniff"},
                                       {"Access-Control-Allow-Origin", "*"}};
    static const char body[] = REPLY_REDIS_DOWN "\n";
    httpd_respond(req, 503, h, 3, body, sizeof body - 1);
}

void reply_store_error(httpd_req_t *req, bool down, const char *msg)
{
    if (down) return reply_down(req);
    httpd_respond_error(req, 500, msg);
}
