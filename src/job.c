/* job: the job model of §3.1/§4.3. Owns request validation for POST /download (the
 * Job rules of §3.1.1 and the Aggregation rules of §3.1.2 over the body as gojson
 * decodes it, first failure wins), job ids (§3.6), the debug rendering used in API
 * error texts, state names, the request-headers JSON stored in Redis, and the callback
 * payload with its download_url (§7.3, §7.4). The api, storage, processor and notifier
 * build on these; gojson supplies Go's JSON syntax errors, decoding and renderings, uri
 * and glob the URL and mime_type checks. No I/O apart from getrandom(2). */
#include "job.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "glob.h"
#include "gojson.h"
#include "uri.h"

static void buf_add_quoted(gojson_buf_t *b, const char *s, size_t n)
{
    char *q = uri_quote(s, n);
    if (!q)
        b->oom = true;
    else
        gojson_buf_adds(b, q);
    free(q);
}

static const char *str_or_empty(const char *s)
{
    return s ? s : "";
}

/* ---- headers ---- */

void job_headers_free(headers_t *h)
{
    if (!h) return;
    for (size_t i = 0; i < h->n; i++) {
        free(h->items[i].name);
        free(h->items[i].value);
    }
    free(h->items);
    h->items = NULL;
    h->n = 0;
}

static int fill_headers(yajl_val obj, const gojson_keyref_t *refs, size_t m, headers_t *h)
{
    h->items = m ? calloc(m, sizeof *h->items) : NULL;
    if (m && !h->items) return -1;
    h->n = m;
    for (size_t i = 0; i < m; i++) {
        h->items[i].name = strdup(refs[i].key);
        h->items[i].value = strdup(obj->u.object.values[refs[i].idx]->u.string);
        if (!h->items[i].name || !h->items[i].value) {
            job_headers_free(h);
            return -1;
        }
    }
    return 0;
}

/* Fills h from an object of strings, sorted by name (a repeated name keeps its last
 * value). -1 when a value is not a string (*bad = the first one in document order) or
 * on OOM (*bad = NULL). */
static int headers_from_object(yajl_val obj, headers_t *h, yajl_val *bad)
{
    size_t n = obj->u.object.len, best = SIZE_MAX;
    gojson_keyref_t *refs = n ? malloc(n * sizeof *refs) : NULL;
    *bad = NULL;
    memset(h, 0, sizeof *h);
    if (n && !refs) return -1;
    size_t m = n ? gojson_unique_keys(obj, refs) : 0;
    for (size_t i = 0; i < m; i++)
        if (!YAJL_IS_STRING(obj->u.object.values[refs[i].idx]) && refs[i].idx < best)
            best = refs[i].idx;
    if (best != SIZE_MAX) *bad = obj->u.object.values[best];
    int rc = best != SIZE_MAX ? -1 : fill_headers(obj, refs, m, h);
    free(refs);
    return rc;
}

static int header_ptr_cmp(const void *a, const void *b)
{
    const header_t *const *x = a, *const *y = b;
    return strcmp(str_or_empty((*x)->name), str_or_empty((*y)->name));
}

/* Pointers to h's items sorted by name (Go prints and marshals maps sorted). NULL when
 * there are none or on OOM. */
static const header_t **headers_sorted(const headers_t *h)
{
    const header_t **v = h->n ? malloc(h->n * sizeof *v) : NULL;
    if (!v) return NULL;
    for (size_t i = 0; i < h->n; i++)
        v[i] = &h->items[i];
    qsort(v, h->n, sizeof *v, header_ptr_cmp);
    return v;
}

/* ---- validation (§3.1.1, §3.1.2) ---- */

typedef struct {
    long limit;
    double rate;
    char *proxy;
    long long bandwidth;
} aggr_t;

typedef struct {
    yajl_val root; /* the body object, NULL for a `null` body */
    job_t *job;
    aggr_t *aggr;
    gojson_buf_t *why; /* the failure reason */
} pctx_t;

typedef int (*step_fn)(pctx_t *c);

static int fail(pctx_t *c, const char *reason)
{
    gojson_buf_adds(c->why, reason);
    return -1;
}

/* Our caps on request fields (docs/api.md, deliberate differences): a longer value is
 * refused at the door instead of becoming a Redis key, a label or a failed download. */
#define CAP_URL 8192
#define CAP_AGGR_ID 256
#define CAP_EXTRA 65536
#define CAP_HEADER_NAME 256
#define CAP_HEADER_VALUE 8192

/* Our door checks of a string field: no escaped NUL (it would cut the value), and at
 * most cap bytes (0: no cap). NULL passes. */
static int door_str(pctx_t *c, const char *field, const char *s, size_t cap)
{
    if (!s) return 0;
    if (gojson_has_nul(s)) {
        gojson_buf_printf(c->why, "%s must not contain a NUL character (\\u0000)", field);
        return -1;
    }
    if (cap && strlen(s) > cap) {
        gojson_buf_printf(c->why, "%s is longer than %zu bytes", field, cap);
        return -1;
    }
    return 0;
}

/* Ours: a URL the service would fetch or post to must be http or https with a host. */
static int door_http(pctx_t *c, const char *field, const char *url)
{
    if (uri_is_http(url)) return 0;
    gojson_buf_printf(c->why, "%s must be an http or https URL with a host", field);
    return -1;
}

/* Replaces *dst with a copy of s (NULL stays NULL). */
static int set_str(pctx_t *c, char **dst, const char *s)
{
    free(*dst);
    *dst = s ? strdup(s) : NULL;
    return s && !*dst ? fail(c, "out of memory") : 0;
}

/* The request-URI check; on failure the reason is prefix + Go's parse error. */
static int check_uri(pctx_t *c, const char *s, const char *prefix)
{
    size_t cap = 8 * strlen(s) + 128;
    char *err = malloc(cap);
    if (!err) return fail(c, "out of memory");
    int rc = uri_check_request(s, err, cap);
    if (rc) gojson_buf_printf(c->why, "%s%s", prefix, err);
    free(err);
    return rc;
}

static int step_url(pctx_t *c)
{
    const char *url = gojson_get_str(c->root, "url");
    if (!url) return fail(c, "URL must be a string");
    if (door_str(c, "url", url, CAP_URL)) return -1;
    if (check_uri(c, url, "Could not parse URL: ") || door_http(c, "url", url)) return -1;
    return set_str(c, &c->job->url, url);
}

static int step_aggr_id(pctx_t *c)
{
    const char *id = gojson_get_str(c->root, "aggr_id");
    if (!id) return fail(c, "aggr_id must be a string");
    if (!*id) return fail(c, "aggr_id cannot be empty");
    if (door_str(c, "aggr_id", id, CAP_AGGR_ID)) return -1;
    return set_str(c, &c->job->aggr_id, id);
}

static int step_s3(pctx_t *c)
{
    const char *region = gojson_get_str(c->root, "s3_region");
    const char *bucket = gojson_get_str(c->root, "s3_bucket");
    bool has_region = region && *region, has_bucket = bucket && *bucket;
    if (door_str(c, "s3_region", region, 0) || door_str(c, "s3_bucket", bucket, 0)) return -1;
    if (set_str(c, &c->job->s3_region, region) || set_str(c, &c->job->s3_bucket, bucket)) return -1;
    if (!has_bucket && has_region) return fail(c, "s3_region provided without an s3_bucket");
    if (!has_region && has_bucket) return fail(c, "s3_bucket provided without an s3_region");
    return 0;
}

static int step_callback_url(pctx_t *c)
{
    const char *url = gojson_get_str(c->root, "callback_url");
    if (!url) return 0;
    if (door_str(c, "callback_url", url, CAP_URL)) return -1;
    if (check_uri(c, url, "Could not parse callback URL: ")) return -1;
    if (door_http(c, "callback_url", url)) return -1;
    return set_str(c, &c->job->callback_url, url);
}

static int fail_both(pctx_t *c, const char *type, const char *dst)
{
    gojson_buf_adds(c->why, "You need to provide both callback_type (");
    buf_add_quoted(c->why, type, strlen(type));
    gojson_buf_adds(c->why, ") and callback_dst (");
    buf_add_quoted(c->why, dst, strlen(dst));
    gojson_buf_addc(c->why, ')');
    return -1;
}

/* callback_type / callback_dst, examined only without a callback_url. */
static int step_callback_pair(pctx_t *c)
{
    if (c->job->callback_url) return 0;
    bool bucket = c->job->s3_bucket && *c->job->s3_bucket;
    const char *type = gojson_get_str(c->root, "callback_type");
    const char *dst = gojson_get_str(c->root, "callback_dst");
    yajl_val cb_url = gojson_get(c->root, "callback_url");
    /* ours: a callback_url of the wrong type is what is wrong, not the missing pair */
    if (!type && !bucket && cb_url && !YAJL_IS_NULL(cb_url))
        return fail(c, "callback_url must be a string");
    if (!type && !bucket) return fail(c, "callback_type must be a string");
    if (!dst && !bucket) return fail(c, "callback_dst must be a string");
    if (door_str(c, "callback_type", type, 0) || door_str(c, "callback_dst", dst, CAP_URL))
        return -1;
    if (!bucket && (!*type || !*dst)) return fail_both(c, type, dst);
    if (dst && strncmp(dst, "http", 4) == 0 && check_uri(c, dst, "Could not parse URL: "))
        return -1;
    if (set_str(c, &c->job->callback_type, type)) return -1;
    return set_str(c, &c->job->callback_dst, dst);
}

static int step_extra(pctx_t *c)
{
    const char *extra = gojson_get_str(c->root, "extra");
    if (door_str(c, "extra", extra, CAP_EXTRA)) return -1;
    return set_str(c, &c->job->extra, extra);
}

static int step_mime(pctx_t *c)
{
    yajl_val v = gojson_get(c->root, "mime_type");
    if (!v) return 0;
    if (!YAJL_IS_STRING(v)) return fail(c, "MimeType pattern must be a string");
    const char *list = YAJL_GET_STRING(v);
    if (door_str(c, "mime_type", list, 0)) return -1;
    size_t cap = 4 * strlen(list) + 64;
    char *err = malloc(cap);
    if (!err) return fail(c, "out of memory");
    int rc = glob_mime_list_valid(list, err, cap) ? 0 : fail(c, err);
    free(err);
    return rc ? rc : set_str(c, &c->job->mime_type, list);
}

static int step_max_retries(pctx_t *c)
{
    yajl_val v = gojson_get(c->root, "max_retries");
    double d;
    if (!v) return 0;
    if (!gojson_num(v, &d)) {
        gojson_buf_printf(c->why, "Max retries must be a number, was: %s", gojson_type_name(v));
        return -1;
    }
    int64_t n = gojson_trunc(d);
    if (n < 0) return fail(c, "Max retries must not be negative");
    c->job->max_retries = n > INT_MAX ? INT_MAX : (int)n;
    return 0;
}

static int step_extract(pctx_t *c)
{
    yajl_val v = gojson_get(c->root, "extract_image_size");
    if (!v) return 0;
    if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)) return fail(c, "ExtractImageSize must be a boolean");
    c->job->extract_image_size = YAJL_IS_TRUE(v);
    return 0;
}

/* An optional number field that must be > 0 once truncated as Go does: *out stays as
 * it is when the field is absent. 0, or -1 with the reason set. */
static int positive_field(pctx_t *c, const char *key, const char *not_number,
                          const char *not_positive, int64_t *out)
{
    yajl_val v = gojson_get(c->root, key);
    double d;
    if (!v) return 0;
    if (!gojson_num(v, &d)) return fail(c, not_number);
    int64_t n = gojson_trunc(d);
    if (n <= 0) return fail(c, not_positive);
    *out = n;
    return 0;
}

static int step_timeout(pctx_t *c)
{
    int64_t n = 0;
    if (positive_field(c, "download_timeout", "Download timeout must be a number",
                       "Download timeout must be greater than 0", &n))
        return -1;
    if (n) c->job->download_timeout = n > LONG_MAX ? LONG_MAX : (long)n;
    return 0;
}

/* RFC 9110 token characters, the only ones a field name may have. */
static bool header_name_valid(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *s)))
            return false;
    return true;
}

/* Ours: request headers that could never be sent as given are refused at the door. */
static int door_headers(pctx_t *c, const headers_t *h)
{
    for (size_t i = 0; i < h->n; i++) {
        const char *name = h->items[i].name, *value = h->items[i].value;
        if (door_str(c, "request_headers", name, 0) || door_str(c, "request_headers", value, 0))
            return -1;
        if (strlen(name) > CAP_HEADER_NAME) {
            gojson_buf_printf(c->why, "request_headers: a header name is longer than %d bytes",
                              CAP_HEADER_NAME);
            return -1;
        }
        const char *why = !header_name_valid(name) ? "is not a valid header name"
                          : strpbrk(value, "\r\n") ? "has CR or LF in its value"
                                                   : NULL;
        bool too_long = !why && strlen(value) > CAP_HEADER_VALUE;
        if (!why && !too_long) continue;
        gojson_buf_adds(c->why, "request_headers: ");
        buf_add_quoted(c->why, name, strlen(name));
        if (why)
            gojson_buf_printf(c->why, " %s", why);
        else
            gojson_buf_printf(c->why, " has a value longer than %d bytes", CAP_HEADER_VALUE);
        return -1;
    }
    return 0;
}

static int step_headers(pctx_t *c)
{
    yajl_val v = gojson_get(c->root, "request_headers"), bad;
    if (!v) return 0;
    if (!YAJL_IS_OBJECT(v)) return fail(c, "request_headers must be a dictionary");
    if (headers_from_object(v, &c->job->request_headers, &bad) == 0)
        return door_headers(c, &c->job->request_headers);
    if (!bad) return fail(c, "out of memory");
    gojson_buf_adds(
        c->why, "Values of request headers keys must be either strings or ints.Given value is ");
    gojson_render(c->why, bad);
    return -1;
}

bool job_checksum_valid(const char *text)
{
    size_t hex;
    if (strncmp(text, "sha256:", 7) == 0)
        text += 7, hex = 64;
    else if (strncmp(text, "md5:", 4) == 0)
        text += 4, hex = 32;
    else
        return false;
    size_t n = strspn(text, "0123456789abcdefABCDEF");
    return n == hex && text[n] == '\0';
}

/* checksum (issue 16): stored in lower case, the way the digest is printed. */
static int step_checksum(pctx_t *c)
{
    yajl_val v = gojson_get(c->root, "checksum");
    if (!v) return 0;
    if (!YAJL_IS_STRING(v) || !job_checksum_valid(YAJL_GET_STRING(v)))
        return fail(c, "checksum must be \"sha256:<64 hex digits>\" or \"md5:<32 hex digits>\"");
    if (set_str(c, &c->job->checksum, YAJL_GET_STRING(v))) return -1;
    for (char *p = c->job->checksum; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return 0;
}

static int step_aggregation_id(pctx_t *c)
{
    const char *id = gojson_get_str(c->root, "aggr_id");
    if (!id) return fail(c, "Aggregation ID must be a string");
    return *id ? 0 : fail(c, "Aggregation ID cannot be empty");
}

static int step_aggr_limit(pctx_t *c)
{
    double d;
    if (!gojson_num(gojson_get(c->root, "aggr_limit"), &d))
        return fail(c, "Aggregation limit must be a number");
    /* ours: out of int64 range and fractions are named as such, not truncated */
    if (d >= 9223372036854775808.0) return fail(c, "Aggregation limit is out of range");
    int64_t n = gojson_trunc(d);
    if (n <= 0) return fail(c, "Aggregation limit must be greater than 0");
    if ((double)n != d) return fail(c, "Aggregation limit must be a whole number");
    c->aggr->limit = n > LONG_MAX ? LONG_MAX : (long)n;
    return 0;
}

/* aggr_rate: ours, not the reference's; optional, starts per second, may be fractional. */
static int step_aggr_rate(pctx_t *c)
{
    yajl_val v = gojson_get(c->root, "aggr_rate");
    double d;
    if (!v || YAJL_IS_NULL(v)) return 0;
    if (!gojson_num(v, &d) || !isfinite(d))
        return fail(c, "Aggregation rate (aggr_rate) must be a number");
    if (d < 0) return fail(c, "Aggregation rate (aggr_rate) must not be negative");
    c->aggr->rate = d;
    return 0;
}

static int step_aggr_proxy(pctx_t *c)
{
    yajl_val v = gojson_get(c->root, "aggr_proxy");
    if (!v) return 0;
    if (!YAJL_IS_STRING(v)) return fail(c, "Aggregation proxy must be a string");
    const char *proxy = YAJL_GET_STRING(v);
    if (door_str(c, "aggr_proxy", proxy, CAP_URL)) return -1;
    if (*proxy && check_uri(c, proxy, "Aggregation proxy must be a valid URI: ")) return -1;
    return set_str(c, &c->aggr->proxy, proxy);
}

/* aggr_bandwidth (issue 16): bytes per second for the whole aggregation. */
static int step_aggr_bandwidth(pctx_t *c)
{
    int64_t n = 0;
    if (positive_field(c, "aggr_bandwidth", "aggr_bandwidth must be a number (bytes per second)",
                       "aggr_bandwidth must be greater than 0", &n))
        return -1;
    c->aggr->bandwidth = n;
    return 0;
}

/* expiresAt is checked but never stored: clients must not set the lease (W6). */
static int step_expires(pctx_t *c)
{
    yajl_val v = gojson_get(c->root, "expiresAt");
    if (v && !YAJL_IS_STRING(v)) return fail(c, "Aggregation expiresAt must be a string");
    return 0;
}

static const step_fn job_steps[] = {
    step_url,  step_aggr_id,     step_s3,      step_callback_url, step_callback_pair, step_extra,
    step_mime, step_max_retries, step_extract, step_timeout,      step_headers,       step_checksum,
};

static const step_fn aggr_steps[] = {
    step_aggregation_id, step_aggr_limit,     step_aggr_rate,
    step_aggr_proxy,     step_aggr_bandwidth, step_expires,
};

static int run_steps(pctx_t *c, const step_fn *steps, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (steps[i](c)) return -1;
    return 0;
}

/* Aggregation rules; on success job->aggr_limit/aggr_rate/aggr_proxy/aggr_bandwidth are
 * replaced. */
static int validate_aggr(yajl_val root, job_t *job, gojson_buf_t *why)
{
    aggr_t a = {0};
    pctx_t c = {root, job, &a, why};
    if (run_steps(&c, aggr_steps, sizeof aggr_steps / sizeof aggr_steps[0])) {
        free(a.proxy);
        return -1;
    }
    job->aggr_limit = a.limit;
    job->aggr_rate = a.rate;
    job->aggr_bandwidth = a.bandwidth;
    free(job->aggr_proxy);
    job->aggr_proxy = a.proxy;
    return 0;
}

static void write_err(char *err, size_t errlen, const char *body, size_t len, const char *what,
                      const gojson_buf_t *why)
{
    if (!err || !errlen) return;
    snprintf(err, errlen, "Error unmarshalling body '%.*s' to %s: %s",
             (int)(len > INT_MAX ? INT_MAX : len), body, what,
             why->p && !why->oom ? why->p : "out of memory");
}

job_err_t job_parse(const char *body, size_t len, job_t *job, char *err, size_t errlen)
{
    gojson_buf_t why = {0};
    yajl_val root = NULL;
    job_err_t rc = JOB_OK;
    pctx_t c = {NULL, job, NULL, &why};
    memset(job, 0, sizeof *job);
    job->max_retries = -1;
    if (!body) {
        body = "";
        len = 0;
    }
    if (gojson_load_object(body, len, &root, &why)) rc = JOB_ERR_JOB;
    c.root = root;
    if (rc == JOB_OK && run_steps(&c, job_steps, sizeof job_steps / sizeof job_steps[0]))
        rc = JOB_ERR_JOB;
    if (rc == JOB_OK && validate_aggr(root, job, &why)) rc = JOB_ERR_AGGR;
    if (rc != JOB_OK) {
        write_err(err, errlen, body, len, rc == JOB_ERR_JOB ? "Job" : "Aggregation", &why);
        job_free(job);
    }
    yajl_tree_free(root);
    free(why.p);
    return rc;
}

job_err_t job_parse_aggr(const char *body, size_t len, job_t *job, char *err, size_t errlen)
{
    gojson_buf_t why = {0};
    yajl_val root = NULL;
    job_err_t rc = JOB_OK;
    if (!body) {
        body = "";
        len = 0;
    }
    if (gojson_load_object(body, len, &root, &why) || validate_aggr(root, job, &why))
        rc = JOB_ERR_AGGR;
    if (rc != JOB_OK) write_err(err, errlen, body, len, "Aggregation", &why);
    yajl_tree_free(root);
    free(why.p);
    return rc;
}

void job_free(job_t *job)
{
    if (!job) return;
    char **strs[] = {&job->url,          &job->aggr_id,    &job->callback_url,  &job->callback_type,
                     &job->callback_dst, &job->extra,      &job->mime_type,     &job->s3_bucket,
                     &job->s3_region,    &job->aggr_proxy, &job->download_meta, &job->callback_meta,
                     &job->download_url, &job->image_size, &job->checksum,      &job->sha256};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        free(*strs[i]);
    job_headers_free(&job->request_headers);
    memset(job, 0, sizeof *job);
}

/* ---- ids ---- */

static void base64url(const unsigned char *in, size_t n, char *out)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        size_t rem = n - i, chars = rem >= 3 ? 4 : rem + 1;
        unsigned long v = (unsigned long)in[i] << 16;
        if (rem > 1) v |= (unsigned long)in[i + 1] << 8;
        if (rem > 2) v |= in[i + 2];
        for (size_t k = 0; k < chars; k++)
            out[o++] = tbl[(v >> (18 - 6 * k)) & 63];
    }
    out[o] = '\0';
}

/* Random bytes for ids, fetched from getrandom(2) 64 ids at a time (per thread). */
enum { ID_RAW = 10, ID_POOL = 64 * ID_RAW };
static _Thread_local unsigned char id_pool[ID_POOL];
static _Thread_local size_t id_left;

static int id_refill(void)
{
    size_t got = 0;
    while (got < sizeof id_pool) {
        ssize_t n = getrandom(id_pool + got, sizeof id_pool - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -errno;
        got += (size_t)n;
    }
    id_left = sizeof id_pool;
    return 0;
}

int job_new_id(char id[JOB_ID_LEN + 1])
{
    if (id_left < ID_RAW) {
        int rc = id_refill();
        if (rc < 0) return rc;
    }
    unsigned char *raw = id_pool + sizeof id_pool - id_left;
    base64url(raw, ID_RAW, id);
    memset(raw, 0, ID_RAW); /* each random byte is used once */
    id_left -= ID_RAW;
    return 0;
}

bool job_has_callback(const job_t *job)
{
    return (job->callback_url && *job->callback_url) || (job->callback_dst && *job->callback_dst);
}

int job_max_retries(const job_t *job)
{
    return job->max_retries < 0 ? JOB_DEFAULT_MAX_RETRIES : job->max_retries;
}

/* ---- debug rendering ---- */

/* snprintf at buf+pos; returns the new position (clamped to the buffer). */
static size_t cat(char *buf, size_t len, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static size_t cat(char *buf, size_t len, size_t pos, const char *fmt, ...)
{
    va_list ap;
    if (pos + 1 >= len) return pos;
    va_start(ap, fmt);
    int n = vsnprintf(buf + pos, len - pos, fmt, ap);
    va_end(ap);
    if (n < 0) return pos;
    return pos + (size_t)n < len ? pos + (size_t)n : len - 1;
}

static size_t cat_headers(char *buf, size_t len, size_t pos, const headers_t *h)
{
    const header_t **sorted = headers_sorted(h);
    for (size_t i = 0; i < h->n; i++) {
        const header_t *it = sorted ? sorted[i] : &h->items[i];
        pos = cat(buf, len, pos, "%s%s:%s", i ? " " : "", str_or_empty(it->name),
                  str_or_empty(it->value));
    }
    free(sorted);
    return pos;
}

char *job_to_string(const job_t *job, char *buf, size_t len)
{
    if (!buf || !len) return buf;
    buf[0] = '\0';
    size_t pos = cat(buf, len, 0,
                     "Job{ID:%s, Aggr:%s, URL:%s, ExtractImageSize:%s, ImageSize: %s, "
                     "callback_url:%s, callback_type:%s, callback_dst:%s, Timeout:%ld, "
                     "RequestHeaders:map[",
                     job->id, str_or_empty(job->aggr_id), str_or_empty(job->url),
                     job->extract_image_size ? "true" : "false", str_or_empty(job->image_size),
                     str_or_empty(job->callback_url), str_or_empty(job->callback_type),
                     str_or_empty(job->callback_dst), job->download_timeout);
    pos = cat_headers(buf, len, pos, &job->request_headers);
    cat(buf, len, pos, "], DownloadURL:%s}", str_or_empty(job->download_url));
    return buf;
}

/* ---- state names ---- */

static const char *const dl_names[] = {"Pending", "InProgress", "Success", "Failed"};
static const char *const cb_names[] = {"", "Pending", "InProgress", "Failed"};

const char *job_dl_state_name(dl_state_t s)
{
    return (unsigned)s < 4 ? dl_names[s] : "";
}

const char *job_cb_state_name(cb_state_t s)
{
    return (unsigned)s < 4 ? cb_names[s] : "";
}

static int name_index(const char *const *names, const char *s)
{
    for (int i = 0; s && i < 4; i++)
        if (strcmp(names[i], s) == 0) return i;
    return -1;
}

int job_dl_state_parse(const char *s)
{
    return name_index(dl_names, s);
}

int job_cb_state_parse(const char *s)
{
    return name_index(cb_names, s);
}

/* ---- JSON output ---- */

static void gen_kv(yajl_gen g, const char *key, const char *value)
{
    gojson_gen_str(g, key);
    gojson_gen_str(g, value);
}

static void gen_kb(yajl_gen g, const char *key, bool value)
{
    gojson_gen_str(g, key);
    yajl_gen_bool(g, value);
}

/* The generator's output as a malloc'd string (length in *len). */
static char *gen_take(yajl_gen g, size_t *len)
{
    const unsigned char *out;
    size_t n;
    char *res = NULL;
    if (yajl_gen_get_buf(g, &out, &n) == yajl_gen_status_ok && (res = malloc(n + 1))) {
        memcpy(res, out, n);
        res[n] = '\0';
        if (len) *len = n;
    }
    yajl_gen_free(g);
    return res;
}

char *job_headers_to_json(const headers_t *h)
{
    if (!h || h->n == 0) return strdup("null");
    const header_t **sorted = headers_sorted(h);
    yajl_gen g = sorted ? yajl_gen_alloc(NULL) : NULL;
    if (!g) {
        free(sorted);
        return NULL;
    }
    yajl_gen_map_open(g);
    for (size_t i = 0; i < h->n; i++)
        gen_kv(g, sorted[i]->name, sorted[i]->value);
    yajl_gen_map_close(g);
    free(sorted);
    return gen_take(g, NULL);
}

int job_headers_from_json(const char *json, headers_t *h)
{
    char yerr[128];
    yajl_val bad, v = json ? yajl_tree_parse(json, yerr, sizeof yerr) : NULL;
    int rc = -1;
    memset(h, 0, sizeof *h);
    if (v && YAJL_IS_NULL(v))
        rc = 0;
    else if (v && YAJL_IS_OBJECT(v))
        rc = headers_from_object(v, h, &bad);
    yajl_tree_free(v);
    return rc;
}

char *job_file_url(const char *base, const char *id)
{
    if (!base || !id) return NULL;
    size_t n = strlen(id), k = n < 3 ? n : 3;
    char *rel = malloc(k + n + 2);
    if (!rel) return NULL;
    snprintf(rel, k + n + 2, "%.*s/%s", (int)k, id, id);
    char *url = uri_join_path(base, rel);
    free(rel);
    return url;
}

char *job_callback_payload(const job_t *job, size_t *len)
{
    bool ok = job->download_state == DL_SUCCESS;
    if (!ok && job->download_state != DL_FAILED) return NULL;
    char *dl = ok ? job_file_url(job->download_url, job->id) : NULL;
    yajl_gen g = yajl_gen_alloc(NULL);
    if (!g) {
        free(dl);
        return NULL;
    }
    yajl_gen_map_open(g);
    gen_kb(g, "success", ok);
    gen_kv(g, "error", job->download_meta);
    gen_kv(g, "extra", job->extra);
    gen_kv(g, "image_size", job->image_size);
    gen_kv(g, "resource_url", job->url);
    gen_kv(g, "download_url", dl);
    gen_kv(g, "job_id", job->id);
    gojson_gen_str(g, "response_code");
    yajl_gen_integer(g, job->response_code);
    gen_kb(g, "delivered", true);
    gen_kv(g, "delivery_error", "");
    if (job->checksum && *job->checksum) { /* only who asked: the reference keys stay 10 */
        gen_kv(g, "sha256", ok ? job->sha256 : "");
        gojson_gen_str(g, "size");
        yajl_gen_integer(g, ok ? job->size : 0);
    }
    yajl_gen_map_close(g);
    free(dl);
    return gen_take(g, len);
}

bool job_id_valid(const char *s, size_t len)
{
    if (len == 0 || len > 64) return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}
