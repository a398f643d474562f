/* backend_http: the HTTP callback backend (§7.5). Each send is one libcurl easy handle
 * POSTing the JSON payload through the shared curlm driver on the same libuv loop; the
 * multi handle keeps the connection cache, so connections are reused. Every response
 * body is drained by a write callback and released with its handle (W15). The final
 * status decides: 2xx = delivered (redirects followed like Go), anything else or a
 * transport error is a retriable failure; Retry-After on 429/503 becomes
 * retry_after_ms. With backends.http.signing_secret each POST carries the Standard
 * Webhooks headers, HMAC-SHA256 computed with libcrypto. With
 * processor.block_private_networks the SSRF guard (netguard, same allow list as
 * downloads) checks every address a POST connects to; a refusal fails for good. */
#include "backend_impl.h"
#include "log.h"
#include "netguard.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#ifndef DOWNLOADER_VERSION
#define DOWNLOADER_VERSION "dev"
#endif

#define CONNECT_TIMEOUT_MS 10000L
#define MAX_REDIRS 10L
#define KEEPALIVE_S 30L
#define MAXAGE_CONN_S 90L
#define LOOPBACK "localhost,127.0.0.0/8,::1"
#define WHSEC_PREFIX "whsec_"

typedef struct backend_http backend_http_t;

/* One POST; also the deferred result when it ends inside send or close. */
typedef struct http_req {
    backend_pending_t pending; /* first member: release() casts back */
    backend_http_t *h;
    CURL *easy;
    struct curl_slist *headers;
    char status_text[128]; /* "500 Internal Server Error" from the last status line */
    char retry_after[64];  /* Retry-After of the last response */
    char errbuf[CURL_ERROR_SIZE];
    char refused[64]; /* the last address the guard refused, "" when none */
    struct http_req *prev, *next;
} http_req_t;

struct backend_http {
    backend_t base; /* first member */
    curlm_t *m;
    long timeout_ms;
    unsigned char *key; /* HMAC key; NULL: callbacks are not signed */
    size_t keylen;
    http_req_t *reqs; /* transfers running in curlm */
    netguard_t guard; /* SSRF guard; guard.on = false when not configured */
};

/* ---------- small helpers ---------- */

static void req_free(http_req_t *r)
{
    curlm_easy_release(r->h->m, r->easy);
    curl_slist_free_all(r->headers);
    free(r);
}

static void release_req(backend_pending_t *p)
{
    req_free((http_req_t *)p);
}

static void req_link(backend_http_t *h, http_req_t *r)
{
    r->prev = NULL;
    r->next = h->reqs;
    if (h->reqs) h->reqs->prev = r;
    h->reqs = r;
}

static void req_unlink(backend_http_t *h, http_req_t *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        h->reqs = r->next;
    if (r->next) r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

/* Go's %q for a URL (credentials redacted): escapes quotes, backslashes, controls. */
static void quote_url(const char *url, char *out, size_t len)
{
    const char *u = log_redact_url(url ? url : "");
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)u; *p && o + 5 < len; p++) {
        if (*p == '"' || *p == '\\') {
            out[o++] = '\\';
            out[o++] = (char)*p;
        } else if (*p < 0x20 || *p == 0x7f) {
            o += (size_t)snprintf(out + o, len - o, "\\x%02x", *p);
        } else {
            out[o++] = (char)*p;
        }
    }
    out[o] = 0;
}

/* `Post "<url>": <text>`, retriable, like Go's *url.Error. */
static void transport_fail(backend_result_t *res, const char *url, const char *text)
{
    char q[384];
    quote_url(url, q, sizeof q);
    backend_fail(res, true, "Post \"%s\": %s", q, text);
}

/* ---------- Standard Webhooks signing ---------- */

/* Base64 (standard alphabet, padding optional) into a malloc'd buffer. 0 or -1. */
static int b64_decode(const char *in, unsigned char **out, size_t *outlen)
{
    size_t n = strlen(in), padded = (n + 3) / 4 * 4;
    char *tmp = malloc(padded + 1);
    unsigned char *buf = malloc(padded / 4 * 3 + 1);
    int m = -1;
    if (tmp && buf) {
        memcpy(tmp, in, n);
        memset(tmp + n, '=', padded - n);
        m = EVP_DecodeBlock(buf, (const unsigned char *)tmp, (int)padded);
        for (size_t i = padded; m > 0 && i > 0 && tmp[i - 1] == '='; i--)
            m--;
        OPENSSL_cleanse(tmp, padded);
    }
    free(tmp);
    if (m <= 0) {
        if (buf) OPENSSL_cleanse(buf, padded / 4 * 3 + 1);
        free(buf);
        return -1;
    }
    *out = buf;
    *outlen = (size_t)m;
    return 0;
}

/* "whsec_<base64>" keys are decoded; any other secret is used as raw bytes. */
static int signing_key(const char *secret, unsigned char **key, size_t *keylen)
{
    size_t plen = strlen(WHSEC_PREFIX);
    if (strncmp(secret, WHSEC_PREFIX, plen) == 0) return b64_decode(secret + plen, key, keylen);
    *keylen = strlen(secret);
    *key = malloc(*keylen);
    if (!*key) return -1;
    memcpy(*key, secret, *keylen);
    return 0;
}

static bool header_safe(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return false;
    return true;
}

/* Appends one raw header line ("K: V", or "K:" to suppress a libcurl default). */
static int add_line(http_req_t *r, const char *line)
{
    struct curl_slist *l = curl_slist_append(r->headers, line);
    if (!l) return -1;
    r->headers = l;
    return 0;
}

static int add_header(http_req_t *r, const char *name, const char *value)
{
    char line[256];
    snprintf(line, sizeof line, "%s: %s", name, value);
    return add_line(r, line);
}

/* v1,<base64 HMAC-SHA256(key, "<id>.<ts>.<body>")>. 0 or -1. */
static int signature(const backend_http_t *h, const char *id, const char *ts, const char *body,
                     size_t len, char *out, size_t outlen)
{
    size_t idl = strlen(id), tsl = strlen(ts), n = idl + tsl + 2 + len;
    unsigned char *msg = malloc(n ? n : 1), mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (!msg) return -1;
    memcpy(msg, id, idl);
    msg[idl] = '.';
    memcpy(msg + idl + 1, ts, tsl);
    msg[idl + 1 + tsl] = '.';
    if (len) memcpy(msg + idl + tsl + 2, body, len);
    bool ok = HMAC(EVP_sha256(), h->key, (int)h->keylen, msg, n, mac, &maclen) != NULL;
    free(msg);
    if (!ok || outlen < 3 + 4 * ((maclen + 2) / 3) + 1) return -1;
    memcpy(out, "v1,", 3);
    EVP_EncodeBlock((unsigned char *)out + 3, mac, (int)maclen);
    return 0;
}

static int sign(const backend_http_t *h, http_req_t *r, const char *id, const char *body,
                size_t len, char *err, size_t errlen)
{
    char ts[24], sig[128];
    snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
    if (!header_safe(id) || strlen(id) > 200) {
        snprintf(err, errlen, "invalid webhook-id (job id)");
        return -1;
    }
    if (signature(h, id, ts, body, len, sig, sizeof sig) < 0 ||
        add_header(r, "webhook-id", id) < 0 || add_header(r, "webhook-timestamp", ts) < 0 ||
        add_header(r, "webhook-signature", sig) < 0) {
        snprintf(err, errlen, "could not sign the callback");
        return -1;
    }
    return 0;
}

/* ---------- curl callbacks ---------- */

/* Drains the response body: it is read and discarded so the connection can be reused. */
static size_t on_write(char *buf, size_t size, size_t n, void *arg)
{
    (void)buf, (void)arg;
    return size * n;
}

/* Keeps the status text and Retry-After of the last response (redirects reset them). */
static size_t on_header(char *buf, size_t size, size_t n, void *arg)
{
    http_req_t *r = arg;
    size_t len = size * n;
    if (curlm_status_line(buf, len, r->status_text, sizeof r->status_text))
        r->retry_after[0] = 0;
    else
        curlm_header_value(buf, len, "Retry-After", r->retry_after, sizeof r->retry_after);
    return len;
}

/* curl is about to open a connection (destination, redirect hop or proxy): the SSRF
 * guard's checkpoint, installed only when the guard is on. */
static curl_socket_t on_opensocket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
    http_req_t *r = arg;
    netguard_class_t cls;
    (void)purpose;
    int fd = netguard_socket(&r->h->guard, a->family, a->socktype, a->protocol, &a->addr,
                             a->addrlen, &cls, r->refused, sizeof r->refused);
    if (fd == -2)
        log_debug("backend_http", "connection refused by the SSRF guard", "address=%s class=%s",
                  r->refused, log_q(netguard_class_name(cls)));
    return fd < 0 ? CURL_SOCKET_BAD : fd;
}

/* ---------- one POST ---------- */

static void set_proxy(CURL *e)
{
    /* environment proxies (libcurl reads them), never for loopback, like Go */
    const char *env = getenv("no_proxy");
    if (!env || !env[0]) env = getenv("NO_PROXY");
    char noproxy[1024];
    if (env && strcmp(env, "*") == 0)
        snprintf(noproxy, sizeof noproxy, "*");
    else
        snprintf(noproxy, sizeof noproxy, "%s%s%s", LOOPBACK, env && env[0] ? "," : "",
                 env ? env : "");
    curl_easy_setopt(e, CURLOPT_NOPROXY, noproxy);
}

static void set_options(const backend_http_t *h, http_req_t *r, const char *url,
                        const char *payload, size_t len)
{
    CURL *e = r->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, payload ? payload : "");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "downloader/" DOWNLOADER_VERSION);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    /* libcurl's default, like Go: 301/302/303 turn the POST into a GET, 307/308 keep it */
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, MAX_REDIRS);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, h->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, KEEPALIVE_S);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, KEEPALIVE_S);
    curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, MAXAGE_CONN_S);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    if (h->guard.on) {
        curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_opensocket);
        curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, r);
    }
    set_proxy(e);
}

/* Builds the easy handle and headers. 0, or -1 with a reason in err. */
static int req_prepare(const backend_http_t *h, http_req_t *r, const char *url, const char *key,
                       const char *payload, size_t len, char *err, size_t errlen)
{
    r->easy = curlm_easy(h->m);
    /* Go sends neither Expect (no 100-continue round trip) nor Accept */
    if (!r->easy || add_line(r, "Content-Type: application/json") < 0 ||
        add_line(r, "Expect:") < 0 || add_line(r, "Accept:") < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (h->key && sign(h, r, key, payload, len, err, errlen) < 0) return -1;
    set_options(h, r, url, payload, len);
    return 0;
}

static void status_result(http_req_t *r, backend_result_t *res)
{
    long code = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
    if (code >= 200 && code <= 299) {
        memset(res, 0, sizeof *res);
        res->ok = true;
        res->status = code;
        return;
    }
    if (r->status_text[0])
        backend_fail(res, true, "Received Status: %s", r->status_text);
    else
        backend_fail(res, true, "Received Status: %ld", code);
    res->status = code;
    if (code == 429 || code == 503)
        res->retry_after_ms = curlm_retry_after_ms(r->retry_after, time(NULL));
}

/* curlm: the transfer finished (removed from the multi). */
static void on_done(CURL *easy, CURLcode rc, void *arg)
{
    http_req_t *r = arg;
    backend_http_t *h = r->h;
    backend_result_t res;
    char *url = NULL;
    curl_easy_getinfo(easy, CURLINFO_EFFECTIVE_URL, &url);
    if (rc == CURLE_OK) {
        status_result(r, &res);
    } else if (rc == CURLE_COULDNT_CONNECT && r->refused[0]) {
        /* no usable address: the guard refused at least one; final, like downloads */
        char q[384];
        quote_url(url, q, sizeof q);
        backend_fail(&res, false, "Post \"%s\": refused to connect to %s: " NETGUARD_REFUSED_WHY, q,
                     r->refused);
    } else {
        transport_fail(&res, url, r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc));
    }
    if (!res.ok)
        log_debug("backend_http", "callback not delivered", "url=%s error=%s",
                  log_q(log_redact_url(url)), log_q(res.error));
    req_unlink(h, r);
    backend_done_fn done = r->pending.done;
    void *done_arg = r->pending.arg;
    req_free(r);
    backend_complete(&h->base, done, done_arg, &res);
}

static int http_send(backend_t *b, const char *dst, const char *key, const char *payload,
                     size_t len, backend_done_fn done, void *arg)
{
    backend_http_t *h = (backend_http_t *)b;
    http_req_t *r = calloc(1, sizeof *r);
    if (!r) return -1;
    r->h = h;
    r->pending.done = done;
    r->pending.arg = arg;
    r->pending.release = release_req;
    char err[128];
    if (req_prepare(h, r, dst, key, payload, len, err, sizeof err) < 0) {
        transport_fail(&r->pending.res, dst, err);
        backend_defer(b, &r->pending);
        return 0;
    }
    if (curlm_add(h->m, r->easy, on_done, r) < 0) {
        transport_fail(&r->pending.res, dst, "could not start the transfer");
        backend_defer(b, &r->pending);
        return 0;
    }
    req_link(h, r);
    return 0;
}

/* Aborts the POSTs still running; each completes (next turn) as a retriable failure. */
static void http_close(backend_t *b)
{
    backend_http_t *h = (backend_http_t *)b;
    while (h->reqs) {
        http_req_t *r = h->reqs;
        req_unlink(h, r);
        char *url = NULL;
        curl_easy_getinfo(r->easy, CURLINFO_EFFECTIVE_URL, &url);
        transport_fail(&r->pending.res, url, "aborted: the http backend is closing");
        curlm_remove(h->m, r->easy);
        backend_defer(b, &r->pending);
    }
    backend_impl_closed(b);
}

static void http_destroy(backend_t *b)
{
    backend_http_t *h = (backend_http_t *)b;
    if (h->key) OPENSSL_cleanse(h->key, h->keylen);
    free(h->key);
    netguard_free(&h->guard);
    free(h);
}

static const backend_ops_t http_ops = {http_send, http_close, http_destroy};

backend_t *backend_http_new(uv_loop_t *loop, curlm_t *m, const config_t *cfg, char *err,
                            size_t errlen)
{
    backend_http_t *h = calloc(1, sizeof *h);
    if (!h || !m) {
        snprintf(err, errlen, h ? "http backend: no curl driver" : "out of memory");
        free(h);
        return NULL;
    }
    h->m = m;
    h->timeout_ms =
        cfg->http_timeout_ms > (uint64_t)0x7fffffff ? 0x7fffffffL : (long)cfg->http_timeout_ms;
    const char *secret = cfg->http_signing_secret;
    if (secret && secret[0] && signing_key(secret, &h->key, &h->keylen) < 0) {
        snprintf(err, errlen,
                 "config: backends.http.signing_secret is not valid base64 after \"whsec_\"");
        free(h);
        return NULL;
    }
    netguard_setup(&h->guard, cfg->block_private_networks, (const char *const *)cfg->allow_cidrs,
                   cfg->n_allow_cidrs);
    backend_init(&h->base, &http_ops, loop);
    log_info("backend_http", "started", "timeout_ms=%ld signed=%d ssrf_guard=%d", h->timeout_ms,
             h->key != NULL, h->guard.on);
    return &h->base;
}
