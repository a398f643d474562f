/* auth: the API's optional bearer token (api.auth_token, api.auth_read). With a token
 * set, POST /download and POST /retry/<id> need "Authorization: Bearer <token>"; the
 * read-only routes need it too when auth_read is on; GET /hb never does. */
#ifndef DOWNLOADER_AUTH_H
#define DOWNLOADER_AUTH_H

#include <stdbool.h>

#include "httpd.h"

/* What a route needs: nothing (GET /hb, for load balancers), the token when
 * api.auth_read is on (reads), or the token whenever one is set (writes). */
typedef enum { AUTH_OPEN = 0, AUTH_READ, AUTH_WRITE } auth_level_t;

/* Does a route of this level need the token? */
bool auth_required(auth_level_t level, bool auth_read);

/* Does an Authorization header value carry exactly this bearer token? The scheme is
 * matched case-insensitively; the token is compared in constant time (SHA-256 of both
 * sides, then CRYPTO_memcmp), so neither its bytes nor its length leak through timing.
 * NULL or "" token: false. */
bool auth_bearer_ok(const char *authorization, const char *token);

/* The check the router makes once it knows the route's level: true when the request
 * may go on. Otherwise it has answered 401 "Unauthorized" with WWW-Authenticate: Bearer
 * and returns false. A NULL or empty token disables authentication. */
bool auth_check(httpd_req_t *req, const char *token, bool auth_read, auth_level_t level);

#endif
