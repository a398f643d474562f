/* auth: the optional bearer-token check of the API (api.auth_token, api.auth_read).
 * api.c's route table gives each route a level; this module decides what a level needs,
 * compares the token in constant time with libcrypto, and answers 401 in Go http.Error
 * style plus WWW-Authenticate. Nothing here logs the token or the Authorization header. */
#include "auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>
#include <strings.h>

#include "log.h"

#define AUTH_SCHEME "Bearer"

bool auth_required(auth_level_t level, bool auth_read)
{
    return level == AUTH_WRITE || (level == AUTH_READ && auth_read);
}

static bool digest(const char *s, unsigned char out[EVP_MAX_MD_SIZE])
{
    unsigned int n = 0;
    return EVP_Digest(s, strlen(s), out, &n, EVP_sha256(), NULL) == 1 && n == 32;
}

bool auth_bearer_ok(const char *authorization, const char *token)
{
    unsigned char want[EVP_MAX_MD_SIZE], got[EVP_MAX_MD_SIZE];
    size_t sl = strlen(AUTH_SCHEME);
    if (!authorization || !token || !*token) return false;
    if (strncasecmp(authorization, AUTH_SCHEME, sl) != 0 || authorization[sl] != ' ') return false;
    const char *given = authorization + sl;
    while (*given == ' ')
        given++;
    /* hashing both sides first makes the comparison independent of either length */
    if (!digest(token, want) || !digest(given, got)) return false;
    return CRYPTO_memcmp(want, got, 32) == 0;
}

static void respond_unauthorized(httpd_req_t *req)
{
    static const httpd_header_t h[] = {{"Content-Type", "text/plain; charset=utf-8"},
                                       {"X-Content-Type-Options", "nosniff"},
                                       {"WWW-Authenticate", "Bearer"}};
    static const char body[] = "Unauthorized\n";
    httpd_respond(req, 401, h, sizeof h / sizeof h[0], body, sizeof body - 1);
}

bool auth_check(httpd_req_t *req, const char *token, bool auth_read, auth_level_t level)
{
    if (!token || !*token || !auth_required(level, auth_read)) return true;
    if (auth_bearer_ok(httpd_req_header(req, "Authorization"), token)) return true;
    log_debug("api", "unauthorized request", "peer=%s method=%s path=%s", log_q(req->peer),
              log_q(req->method), log_q(req->path));
    respond_unauthorized(req);
    return false;
}
