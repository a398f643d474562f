/* s3: the object-storage client of the processor (§2.1, §6.7, §6.10): uploads of
 * finished downloads to the configured S3 store or to a job's own bucket, and the
 * reaper's deletions. It owns one curlm (curl multi on the processor's loop), so S3
 * transfers never block the loop and keep their own connection cache and per-host
 * limit. Requests are signed by libcurl (CURLOPT_AWS_SIGV4) with an UNSIGNED-PAYLOAD
 * body hash, so bodies stream: curl pulls them through a read callback from a small
 * buffer that uv_fs_read refills on the thread pool while curl is paused. Files above
 * the multipart threshold go up as CreateMultipartUpload / UploadPart (one part at a
 * time) / CompleteMultipartUpload, aborted on failure. Each request is retried a few
 * times on 5xx, throttling and transport errors; the S3 <Error> body becomes the
 * result's code and text. libcurl 7.88 signs the query string as given, so queries are
 * built in canonical form (sorted, values encoded, "uploads="). */
#include "s3.h"

#include <ctype.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_tree.h>

#include "curlm.h"
#include "log.h"

#ifndef DOWNLOADER_VERSION
#define DOWNLOADER_VERSION "dev"
#endif

#define READ_BUF (128 * 1024)
#define RESP_MAX (16 * 1024)
#define MAX_ATTEMPTS 3
#define RETRY_BASE_MS 250
#define ABORT_TIMEOUT_S 30L
#define KEEPALIVE_S 30L

typedef enum {
    ST_OPEN,
    ST_PUT,
    ST_CREATE,
    ST_PART,
    ST_COMPLETE,
    ST_ABORT,
    ST_DELETE,
    ST_END
} step_t;

struct s3 {
    uv_loop_t *loop;
    curlm_t *m;
    char *scheme, *host, *path; /* the endpoint, split; host NULL for AWS */
    bool path_style;
    char *access, *secret, *token;
    uint64_t threshold, part_size;
    long connect_timeout_ms, low_speed_limit, low_speed_time_s;
    s3_op_t *ops;
    int n_ops;
    bool closing;
    void (*closed)(void *);
    void *closed_arg;
};

struct s3_op {
    s3_t *c;
    step_t step;
    char *bucket, *region, *key, *path, *ctype;
    char **headers;
    s3_done_fn done;
    void *arg;
    s3_result_t res;
    /* the source file and the body range of the current request */
    uv_file fd;
    uint64_t size;
    uv_fs_t fs;
    bool fs_busy;
    char *buf;
    size_t buf_len, buf_pos;
    uint64_t rng_start, rng_end, rd_off;
    int rd_err; /* a failed read (uv error code) */
    bool paused;
    /* multipart */
    char *upload_id;
    unsigned part, nparts;
    uint64_t psize;
    char **etags;
    /* the request in flight */
    CURL *easy;
    struct curl_slist *hdrs;
    char errbuf[CURL_ERROR_SIZE];
    char *resp;
    size_t resp_len;
    char etag[128], bucket_region[64], status_text[96];
    char *post;
    bool req_done; /* curl finished while a read was in flight */
    CURLcode req_rc;
    int attempt;
    uv_timer_t timer;
    bool cancelled, ending;
    s3_op_t *prev, *next;
};

static void start_request(s3_op_t *op);
static void op_end(s3_op_t *op);
static void after_failure(s3_op_t *op);

/* ---------- names and URLs ---------- */

bool s3_valid_bucket(const char *b)
{
    size_t n = b ? strlen(b) : 0;
    if (n < 3 || n > 63 || !isalnum((unsigned char)b[0]) || !isalnum((unsigned char)b[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)b[i]) || isdigit((unsigned char)b[i]) || b[i] == '.' ||
              b[i] == '-'))
            return false;
    return true;
}

bool s3_valid_region(const char *r)
{
    size_t n = r ? strlen(r) : 0;
    if (n == 0 || n > 32) return false;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)r[i]) || isdigit((unsigned char)r[i]) || r[i] == '-'))
            return false;
    return true;
}

void s3_job_key(char *buf, size_t len, const char *id)
{
    snprintf(buf, len, "%.3s/%s", id, id);
}

int s3_bucket_url(const s3_t *c, const char *bucket, const char *region, char *buf, size_t len)
{
    int n;
    if (!s3_valid_bucket(bucket) || !s3_valid_region(region)) return -1;
    if (c->host && c->path_style)
        n = snprintf(buf, len, "%s://%s%s/%s", c->scheme, c->host, c->path, bucket);
    else if (c->host)
        n = snprintf(buf, len, "%s://%s.%s%s", c->scheme, bucket, c->host, c->path);
    else if (c->path_style)
        n = snprintf(buf, len, "https://s3.%s.amazonaws.com/%s", region, bucket);
    else
        n = snprintf(buf, len, "https://%s.s3.%s.amazonaws.com", bucket, region);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

int s3_object_url(const s3_t *c, const s3_loc_t *loc, char *buf, size_t len)
{
    if (s3_bucket_url(c, loc->bucket, loc->region, buf, len) < 0) return -1;
    size_t n = strlen(buf);
    /* each '/'-separated segment percent-encoded (RFC 3986 unreserved kept), as SigV4 wants */
    for (const char *seg = loc->key;;) {
        size_t sl = strcspn(seg, "/");
        char *esc = curl_easy_escape(NULL, seg, (int)sl);
        int k = esc ? snprintf(buf + n, len - n, "/%s", esc) : -1;
        curl_free(esc);
        if (k < 0 || (size_t)k >= len - n) return -1;
        n += (size_t)k;
        if (!seg[sl]) return 0;
        seg += sl + 1;
    }
}

/* ---------- results ---------- */

static void set_result(s3_result_t *r, bool retriable, bool internal, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_result(s3_result_t *r, bool retriable, bool internal, const char *fmt, ...)
{
    va_list ap;
    r->ok = false;
    r->retriable = retriable;
    r->internal = internal;
    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof r->detail, fmt, ap);
    va_end(ap);
}

/* Text of an XML element (first occurrence, entities decoded, controls blanked). */
static bool xml_text(const char *xml, const char *tag, char *out, size_t len)
{
    char open[64], close[64];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *a = xml ? strstr(xml, open) : NULL;
    const char *b = a ? strstr(a, close) : NULL;
    if (!b || len == 0) return false;
    static const struct {
        const char *ent;
        char ch;
    } ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    size_t o = 0;
    for (const char *p = a + strlen(open); p < b && o + 1 < len;) {
        size_t i = 0, ne = sizeof ents / sizeof ents[0];
        while (i < ne && strncmp(p, ents[i].ent, strlen(ents[i].ent)) != 0)
            i++;
        char *end;
        long cp = p[0] == '&' && p[1] == '#'
                      ? strtol(p + 2 + (p[2] == 'x'), &end, p[2] == 'x' ? 16 : 10)
                      : 0;
        if (i < ne) {
            out[o++] = ents[i].ch;
            p += strlen(ents[i].ent);
        } else if (cp >= 0x20 && cp < 0x7f && *end == ';') { /* &#39; &#x27; */
            out[o++] = (char)cp;
            p = end + 1;
        } else {
            out[o++] = (unsigned char)*p < 0x20 ? ' ' : *p;
            p++;
        }
    }
    out[o] = '\0';
    return true;
}

static bool retriable_code(long status, const char *code)
{
    return status >= 500 || status == 429 || strcmp(code, "SlowDown") == 0 ||
           strcmp(code, "RequestTimeout") == 0 || strcmp(code, "InternalError") == 0;
}

/* An S3 error answer: "<Code>: <Message> (bucket b, region r[; hint])". */
static void s3_error(s3_op_t *op, s3_result_t *r, long status)
{
    char msg[512] = "", hint[160] = "";
    r->status = status;
    if (!xml_text(op->resp, "Code", r->code, sizeof r->code)) r->code[0] = '\0';
    xml_text(op->resp, "Message", msg, sizeof msg);
    if (op->bucket_region[0] && strcmp(op->bucket_region, op->region) != 0)
        snprintf(hint, sizeof hint, "; the bucket is in region %s", op->bucket_region);
    bool retry = retriable_code(status, r->code);
    if (r->code[0])
        set_result(r, retry, false, "%s: %s (bucket %s, region %s%s)", r->code,
                   msg[0] ? msg : "no message", op->bucket, op->region, hint);
    else
        set_result(r, retry, false, "Received status code %s (bucket %s, region %s%s)",
                   op->status_text[0] ? op->status_text : "without text", op->bucket, op->region,
                   hint);
}

static const char *step_method(step_t s)
{
    switch (s) {
    case ST_PUT:
    case ST_PART:
        return "PUT";
    case ST_CREATE:
    case ST_COMPLETE:
        return "POST";
    default:
        return "DELETE";
    }
}

static void transport_error(s3_op_t *op, s3_result_t *r, CURLcode rc)
{
    char url[1200];
    s3_loc_t loc = {op->bucket, op->region, op->key};
    if (s3_object_url(op->c, &loc, url, sizeof url) < 0) snprintf(url, sizeof url, "?");
    set_result(r, true, false, "%s \"%s\": %s (bucket %s, region %s)", step_method(op->step), url,
               op->errbuf[0] ? op->errbuf : curl_easy_strerror(rc), op->bucket, op->region);
}

/* ---------- operations: life cycle ---------- */

static void op_free(s3_op_t *op)
{
    free(op->bucket);
    free(op->region);
    free(op->key);
    free(op->path);
    free(op->ctype);
    s3_headers_free(op->headers);
    free(op->buf);
    free(op->upload_id);
    for (unsigned i = 0; op->etags && i < op->nparts; i++)
        free(op->etags[i]);
    free(op->etags);
    free(op->resp);
    free(op->post);
    free(op);
}

static void close_client(s3_t *c);

static void on_timer_closed(uv_handle_t *h)
{
    s3_op_t *op = h->data;
    s3_t *c = op->c;
    if (op->prev)
        op->prev->next = op->next;
    else
        c->ops = op->next;
    if (op->next) op->next->prev = op->prev;
    c->n_ops--;
    if (op->cancelled) {
        op->res.ok = false;
        op->res.cancelled = true;
        op->res.retriable = true;
    }
    if (op->done) op->done(&op->res, op->arg);
    op_free(op);
    if (c->closing && c->n_ops == 0) close_client(c);
}

static void on_fd_closed(uv_fs_t *req)
{
    s3_op_t *op = req->data;
    uv_fs_req_cleanup(req);
    op->fs_busy = false;
    op->fd = -1;
    op_end(op);
}

/* Releases the file, then reports (from the timer's close callback: never inside the
 * caller's own call). Needs no request and no read in flight. */
static void op_end(s3_op_t *op)
{
    op->ending = true;
    op->step = ST_END;
    if (op->fd >= 0) {
        if (uv_fs_close(op->c->loop, &op->fs, op->fd, on_fd_closed) == 0) {
            op->fs_busy = true;
            return;
        }
        op->fd = -1;
    }
    uv_timer_stop(&op->timer);
    if (!uv_is_closing((uv_handle_t *)&op->timer))
        uv_close((uv_handle_t *)&op->timer, on_timer_closed);
}

static s3_op_t *op_new(s3_t *c, const s3_loc_t *loc, s3_done_fn done, void *arg)
{
    s3_op_t *op = calloc(1, sizeof *op);
    if (!op) return NULL;
    op->c = c;
    op->fd = -1;
    op->done = done;
    op->arg = arg;
    op->bucket = strdup(loc->bucket ? loc->bucket : "");
    op->region = strdup(loc->region ? loc->region : "");
    op->key = strdup(loc->key ? loc->key : "");
    uv_timer_init(c->loop, &op->timer);
    op->timer.data = op;
    op->fs.data = op;
    op->next = c->ops;
    if (c->ops) c->ops->prev = op;
    c->ops = op;
    c->n_ops++;
    return op;
}

/* Checks what every request needs; a problem ends the operation (reported async). */
static bool op_usable(s3_op_t *op)
{
    s3_t *c = op->c;
    if (!op->bucket || !op->region || !op->key) {
        set_result(&op->res, true, true, "out of memory");
    } else if (c->closing) {
        set_result(&op->res, true, true, "the S3 client is closing");
    } else if (!s3_valid_bucket(op->bucket)) {
        set_result(&op->res, false, false,
                   "InvalidBucketName: \"%.64s\" is not a valid S3 bucket name (bucket %.64s, "
                   "region %.32s)",
                   op->bucket, op->bucket, op->region);
    } else if (!s3_valid_region(op->region)) {
        set_result(&op->res, false, false,
                   "InvalidRegion: \"%.32s\" is not a valid region name (bucket %s, region %.32s)",
                   op->region, op->bucket, op->region);
    } else if (!c->access) {
        set_result(&op->res, false, false,
                   "NoCredentials: no S3 credentials (set processor.filestorage.access_key_id and "
                   "secret_access_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) (bucket "
                   "%s, region %s)",
                   op->bucket, op->region);
    } else {
        return true;
    }
    op_end(op);
    return false;
}

/* ---------- the request body: file range through a read buffer ---------- */

static void on_fs_read(uv_fs_t *req);

static int start_read(s3_op_t *op)
{
    uint64_t left = op->rng_end - op->rd_off;
    size_t n = left < READ_BUF ? (size_t)left : READ_BUF;
    if (!op->buf && !(op->buf = malloc(READ_BUF))) { /* taken when the body starts */
        op->rd_err = UV_ENOMEM;
        return -1;
    }
    uv_buf_t b = uv_buf_init(op->buf, (unsigned)n);
    op->buf_len = op->buf_pos = 0;
    int rc = uv_fs_read(op->c->loop, &op->fs, op->fd, &b, 1, (int64_t)op->rd_off, on_fs_read);
    if (rc < 0) {
        op->rd_err = rc;
        return -1;
    }
    op->fs_busy = true;
    return 0;
}

static size_t on_read(char *dst, size_t size, size_t nmemb, void *arg)
{
    s3_op_t *op = arg;
    size_t want = size * nmemb, avail = op->buf_len - op->buf_pos;
    if (op->rd_err) return CURL_READFUNC_ABORT;
    if (avail == 0) {
        if (op->rd_off >= op->rng_end) return 0;
        if (!op->fs_busy && start_read(op) < 0) return CURL_READFUNC_ABORT;
        op->paused = true;
        return CURL_READFUNC_PAUSE;
    }
    size_t k = avail < want ? avail : want;
    memcpy(dst, op->buf + op->buf_pos, k);
    op->buf_pos += k;
    /* the buffer is free again: fetch the next chunk while curl sends this one */
    if (op->buf_pos == op->buf_len && op->rd_off < op->rng_end && !op->fs_busy) start_read(op);
    return k;
}

static int on_seek(void *arg, curl_off_t offset, int origin)
{
    s3_op_t *op = arg;
    if (origin != SEEK_SET || offset < 0 || op->fs_busy ||
        (uint64_t)offset > op->rng_end - op->rng_start)
        return CURL_SEEKFUNC_CANTSEEK;
    op->rd_off = op->rng_start + (uint64_t)offset;
    op->buf_len = op->buf_pos = 0;
    return CURL_SEEKFUNC_OK;
}

static void req_finished(s3_op_t *op, CURLcode rc);
static void after_cancel(s3_op_t *op);

static void on_fs_read(uv_fs_t *req)
{
    s3_op_t *op = req->data;
    ssize_t r = req->result;
    uv_fs_req_cleanup(req);
    op->fs_busy = false;
    if (r < 0)
        op->rd_err = (int)r;
    else if (r == 0)
        op->rd_err = UV_EIO; /* the file is shorter than it was */
    else {
        op->buf_len = (size_t)r;
        op->rd_off += (uint64_t)r;
    }
    if (op->req_done) {
        op->req_done = false;
        req_finished(op, op->req_rc);
    } else if (op->cancelled && !op->easy) {
        after_cancel(op);
    } else if (op->paused && op->easy) {
        op->paused = false;
        curl_easy_pause(op->easy, CURLPAUSE_CONT);
    }
}

/* ---------- one HTTP request ---------- */

static size_t on_write(char *data, size_t size, size_t nmemb, void *arg)
{
    s3_op_t *op = arg;
    size_t n = size * nmemb;
    if (op->resp_len + n > RESP_MAX) return n; /* only error texts and small results matter */
    char *nb = realloc(op->resp, op->resp_len + n + 1);
    if (!nb) return n;
    op->resp = nb;
    memcpy(op->resp + op->resp_len, data, n);
    op->resp_len += n;
    op->resp[op->resp_len] = '\0';
    return n;
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *arg)
{
    s3_op_t *op = arg;
    size_t n = size * nmemb;
    if (curlm_status_line(line, n, op->status_text, sizeof op->status_text))
        op->etag[0] = op->bucket_region[0] = '\0';
    else if (!curlm_header_value(line, n, "ETag", op->etag, sizeof op->etag))
        curlm_header_value(line, n, "x-amz-bucket-region", op->bucket_region,
                           sizeof op->bucket_region);
    return n;
}

static int add_header(s3_op_t *op, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int add_header(s3_op_t *op, const char *fmt, ...)
{
    char *line = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&line, fmt, ap);
    va_end(ap);
    if (n < 0) return -1;
    struct curl_slist *l = curl_slist_append(op->hdrs, line);
    free(line);
    if (!l) return -1;
    op->hdrs = l;
    return 0;
}

/* The query of the current step, canonical as SigV4 wants it. */
static void step_query(const s3_op_t *op, char *q, size_t len)
{
    char *esc = op->upload_id ? curl_easy_escape(NULL, op->upload_id, 0) : NULL;
    const char *id = esc ? esc : "";
    switch (op->step) {
    case ST_CREATE:
        snprintf(q, len, "uploads=");
        break;
    case ST_PART:
        snprintf(q, len, "partNumber=%u&uploadId=%s", op->part, id);
        break;
    case ST_COMPLETE:
    case ST_ABORT:
        snprintf(q, len, "uploadId=%s", id);
        break;
    default:
        q[0] = '\0';
    }
    curl_free(esc);
}

static int build_headers(s3_op_t *op)
{
    s3_t *c = op->c;
    int rc = add_header(op, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
    if (c->token) rc |= add_header(op, "x-amz-security-token: %s", c->token);
    if (op->step == ST_PUT || op->step == ST_CREATE) {
        rc |=
            add_header(op, "Content-Type: %s", op->ctype ? op->ctype : "application/octet-stream");
        for (size_t i = 0; op->headers && op->headers[i]; i++)
            rc |= add_header(op, "%s", op->headers[i]);
    } else if (op->step == ST_COMPLETE) {
        rc |= add_header(op, "Content-Type: application/xml");
    }
    return rc ? -1 : 0;
}

static void set_body(s3_op_t *op, CURL *e)
{
    switch (op->step) {
    case ST_PUT:
    case ST_PART:
        op->rd_off = op->rng_start;
        op->buf_len = op->buf_pos = 0;
        op->rd_err = 0;
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)(op->rng_end - op->rng_start));
        curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(e, CURLOPT_READDATA, op);
        curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(e, CURLOPT_SEEKDATA, op);
        break;
    case ST_CREATE:
    case ST_COMPLETE:
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, op->post ? (long)strlen(op->post) : 0L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, op->post ? op->post : "");
        break;
    default:
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "DELETE");
        if (op->step == ST_ABORT) curl_easy_setopt(e, CURLOPT_TIMEOUT, ABORT_TIMEOUT_S);
    }
}

static void set_options(s3_op_t *op, CURL *e, const char *url)
{
    s3_t *c = op->c;
    char sigv4[64];
    snprintf(sigv4, sizeof sigv4, "aws:amz:%s:s3", op->region);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "downloader/" DOWNLOADER_VERSION);
    curl_easy_setopt(e, CURLOPT_AWS_SIGV4, sigv4);
    curl_easy_setopt(e, CURLOPT_USERNAME, c->access);
    curl_easy_setopt(e, CURLOPT_PASSWORD, c->secret);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, op->hdrs);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, c->low_speed_limit);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, c->low_speed_time_s);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, KEEPALIVE_S);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, op);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, op);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, op->errbuf);
    set_body(op, e);
}

static void request_done(CURL *easy, CURLcode rc, void *arg);

/* Frees the easy handle; the response body stays readable until the next request. */
static void release_request(s3_op_t *op)
{
    if (op->c->m)
        curlm_easy_release(op->c->m, op->easy);
    else if (op->easy)
        curl_easy_cleanup(op->easy);
    op->easy = NULL;
    curl_slist_free_all(op->hdrs);
    op->hdrs = NULL;
    op->paused = false;
}

static void start_request(s3_op_t *op)
{
    char url[1600], q[600];
    s3_loc_t loc = {op->bucket, op->region, op->key};
    size_t n;
    op->errbuf[0] = op->etag[0] = op->bucket_region[0] = op->status_text[0] = '\0';
    free(op->resp);
    op->resp = NULL;
    op->resp_len = 0;
    if (s3_object_url(op->c, &loc, url, sizeof url) < 0) {
        set_result(&op->res, false, false, "object URL too long (bucket %s, region %s)", op->bucket,
                   op->region);
        after_failure(op);
        return;
    }
    step_query(op, q, sizeof q);
    n = strlen(url);
    if (q[0]) snprintf(url + n, sizeof url - n, "?%s", q);
    op->easy = curlm_easy(op->c->m);
    if (!op->easy || build_headers(op) < 0) {
        release_request(op);
        set_result(&op->res, true, true, "out of memory");
        after_failure(op);
        return;
    }
    set_options(op, op->easy, url);
    if (curlm_add(op->c->m, op->easy, request_done, op) < 0) {
        release_request(op);
        set_result(&op->res, true, true, "could not start the transfer");
        after_failure(op);
    }
}

/* ---------- steps ---------- */

static void on_retry(uv_timer_t *t)
{
    start_request(t->data);
}

static void retry_or_fail(s3_op_t *op)
{
    if (op->res.retriable && !op->res.internal && op->attempt + 1 < MAX_ATTEMPTS &&
        !op->cancelled && !op->c->closing) {
        uint64_t delay = (uint64_t)RETRY_BASE_MS << op->attempt;
        op->attempt++;
        log_debug("s3", "request failed, retrying", "bucket=%s key=%s attempt=%d error=%s",
                  op->bucket, log_q(op->key), op->attempt, log_q(op->res.detail));
        uv_timer_start(&op->timer, on_retry, delay, 0);
        return;
    }
    after_failure(op);
}

/* A failure that stays: abort a multipart upload first (its own result is ignored). */
static void after_failure(s3_op_t *op)
{
    if (op->upload_id && op->step != ST_ABORT && !op->c->closing) {
        op->step = ST_ABORT;
        op->attempt = 0;
        start_request(op);
        return;
    }
    op_end(op);
}

static void after_cancel(s3_op_t *op)
{
    set_result(&op->res, true, false, "cancelled");
    after_failure(op);
}

static void begin_body_step(s3_op_t *op, step_t step, uint64_t start, uint64_t end)
{
    op->step = step;
    op->attempt = 0;
    op->rng_start = start;
    op->rng_end = end;
    start_request(op);
}

static void next_part(s3_op_t *op)
{
    uint64_t start = (uint64_t)(op->part - 1) * op->psize;
    uint64_t end = start + op->psize < op->size ? start + op->psize : op->size;
    begin_body_step(op, ST_PART, start, end);
}

/* The CompleteMultipartUpload body. ETags are hex in quotes: only &<> need escaping. */
static char *complete_xml(const s3_op_t *op)
{
    char *xml = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&xml, &n);
    if (!f) return NULL;
    fputs("<CompleteMultipartUpload>", f);
    for (unsigned i = 0; i < op->nparts; i++) {
        fprintf(f, "<Part><PartNumber>%u</PartNumber><ETag>", i + 1);
        for (const char *p = op->etags[i]; *p; p++) {
            if (*p == '&')
                fputs("&amp;", f);
            else if (*p == '<')
                fputs("&lt;", f);
            else if (*p == '>')
                fputs("&gt;", f);
            else
                fputc(*p, f);
        }
        fputs("</ETag></Part>", f);
    }
    fputs("</CompleteMultipartUpload>", f);
    fclose(f);
    return xml;
}

static void created(s3_op_t *op)
{
    char id[512];
    if (!xml_text(op->resp, "UploadId", id, sizeof id) || !id[0]) {
        set_result(&op->res, false, false,
                   "InvalidResponse: no UploadId in the CreateMultipartUpload answer (bucket %s, "
                   "region %s)",
                   op->bucket, op->region);
        op_end(op);
        return;
    }
    op->upload_id = strdup(id);
    op->etags = calloc(op->nparts, sizeof *op->etags);
    if (!op->upload_id || !op->etags) {
        set_result(&op->res, true, true, "out of memory");
        after_failure(op);
        return;
    }
    op->part = 1;
    next_part(op);
}

static void part_done(s3_op_t *op)
{
    if (!op->etag[0] || !(op->etags[op->part - 1] = strdup(op->etag))) {
        set_result(&op->res, false, false,
                   "InvalidResponse: no ETag for part %u (bucket %s, region %s)", op->part,
                   op->bucket, op->region);
        after_failure(op);
        return;
    }
    if (++op->part <= op->nparts) {
        next_part(op);
        return;
    }
    free(op->post);
    op->post = complete_xml(op);
    op->step = ST_COMPLETE;
    op->attempt = 0;
    if (!op->post) {
        set_result(&op->res, true, true, "out of memory");
        after_failure(op);
        return;
    }
    start_request(op);
}

static void succeeded(s3_op_t *op)
{
    op->res = (s3_result_t){.ok = true};
    free(op->upload_id);
    op->upload_id = NULL;
    op_end(op);
}

static void step_ok(s3_op_t *op)
{
    switch (op->step) {
    case ST_CREATE:
        created(op);
        break;
    case ST_PART:
        part_done(op);
        break;
    case ST_ABORT:
        op_end(op);
        break;
    default:
        succeeded(op);
    }
}

/* Classifies a finished request into r; true when the step worked. */
static bool classify(s3_op_t *op, CURLcode rc, s3_result_t *r)
{
    long status = 0;
    memset(r, 0, sizeof *r);
    if (rc != CURLE_OK && op->rd_err) {
        set_result(r, true, true, "reading %s: %s", op->path, uv_strerror(op->rd_err));
        return false;
    }
    if (rc != CURLE_OK) {
        transport_error(op, r, rc);
        return false;
    }
    curl_easy_getinfo(op->easy, CURLINFO_RESPONSE_CODE, &status);
    r->status = status;
    bool deleting = op->step == ST_DELETE || op->step == ST_ABORT;
    if (status == 404 && deleting) return true;
    if (status >= 200 && status <= 299) {
        /* CompleteMultipartUpload may fail after its 200 */
        if (op->step != ST_COMPLETE || !op->resp || !strstr(op->resp, "<Error>")) return true;
    }
    s3_error(op, r, status);
    return false;
}

static void req_finished(s3_op_t *op, CURLcode rc)
{
    s3_result_t r;
    bool ok = classify(op, rc, &r);
    release_request(op);
    if (op->cancelled) {
        after_cancel(op);
        return;
    }
    if (ok) {
        step_ok(op);
        return;
    }
    if (op->step == ST_ABORT) {
        log_warn("s3", "could not abort a multipart upload", "bucket=%s key=%s error=%s",
                 op->bucket, log_q(op->key), log_q(r.detail));
        op_end(op);
        return;
    }
    op->res = r;
    retry_or_fail(op);
}

/* curlm: a request finished; wait for a read still in flight before going on. */
static void request_done(CURL *easy, CURLcode rc, void *arg)
{
    (void)easy;
    s3_op_t *op = arg;
    if (op->fs_busy) {
        op->req_done = true;
        op->req_rc = rc;
        return;
    }
    req_finished(op, rc);
}

/* ---------- put ---------- */

static void on_stat(uv_fs_t *req)
{
    s3_op_t *op = req->data;
    ssize_t r = req->result;
    uint64_t size = (uint64_t)req->statbuf.st_size;
    uv_fs_req_cleanup(req);
    op->fs_busy = false;
    if (op->cancelled) {
        after_cancel(op);
        return;
    }
    if (r < 0) {
        set_result(&op->res, true, true, "stat %s: %s", op->path, uv_strerror((int)r));
        op_end(op);
        return;
    }
    op->size = size;
    if (size <= op->c->threshold) {
        begin_body_step(op, ST_PUT, 0, size);
        return;
    }
    uint64_t min = (size + S3_MAX_PARTS - 1) / S3_MAX_PARTS;
    op->psize = op->c->part_size > min ? op->c->part_size : min;
    op->nparts = (unsigned)((size + op->psize - 1) / op->psize);
    op->step = ST_CREATE;
    op->attempt = 0;
    start_request(op);
}

static void on_open(uv_fs_t *req)
{
    s3_op_t *op = req->data;
    ssize_t r = req->result;
    uv_fs_req_cleanup(req);
    op->fs_busy = false;
    if (r >= 0) op->fd = (uv_file)r;
    if (op->cancelled) {
        after_cancel(op);
        return;
    }
    if (r < 0) {
        set_result(&op->res, true, true, "open %s: %s", op->path, uv_strerror((int)r));
        op_end(op);
        return;
    }
    if (uv_fs_fstat(op->c->loop, &op->fs, op->fd, on_stat) < 0) {
        set_result(&op->res, true, true, "stat %s: could not queue", op->path);
        op_end(op);
        return;
    }
    op->fs_busy = true;
}

static char **copy_list(const char *const *l)
{
    size_t n = 0;
    while (l && l[n])
        n++;
    char **out = calloc(n + 1, sizeof *out);
    for (size_t i = 0; out && i < n; i++)
        if (!(out[i] = strdup(l[i]))) {
            s3_headers_free(out);
            return NULL;
        }
    return out;
}

s3_op_t *s3_put_file(s3_t *c, const s3_loc_t *loc, const char *path, const char *content_type,
                     const char *const *headers, s3_done_fn done, void *arg)
{
    s3_op_t *op = op_new(c, loc, done, arg);
    if (!op) return NULL;
    op->path = strdup(path ? path : "");
    op->ctype = content_type && *content_type ? strdup(content_type) : NULL;
    op->headers = copy_list(headers);
    op->step = ST_OPEN;
    if (!op->path || !op->headers) {
        set_result(&op->res, true, true, "out of memory");
        op_end(op);
        return op;
    }
    if (!op_usable(op)) return op;
    if (uv_fs_open(c->loop, &op->fs, op->path, O_RDONLY | O_CLOEXEC, 0, on_open) < 0) {
        set_result(&op->res, true, true, "open %s: could not queue", op->path);
        op_end(op);
        return op;
    }
    op->fs_busy = true;
    return op;
}

s3_op_t *s3_delete_object(s3_t *c, const s3_loc_t *loc, s3_done_fn done, void *arg)
{
    s3_op_t *op = op_new(c, loc, done, arg);
    if (!op) return NULL;
    op->step = ST_DELETE;
    if (op_usable(op)) start_request(op);
    return op;
}

void s3_cancel(s3_op_t *op)
{
    if (!op || op->cancelled || op->ending) return;
    op->cancelled = true;
    if (op->easy && !op->req_done) {
        curlm_remove(op->c->m, op->easy);
        release_request(op);
        if (!op->fs_busy) after_cancel(op); /* else on_fs_read goes on */
        return;
    }
    if (uv_is_active((uv_handle_t *)&op->timer)) {
        uv_timer_stop(&op->timer);
        after_cancel(op);
    }
    /* else an open, stat or read is in flight: its callback sees the flag */
}

int s3_active(const s3_t *c)
{
    return c->n_ops;
}

/* ---------- the client ---------- */

static char *dup_or_null(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

/* "http[s]://host[:port][/path]" into scheme, host and path (no trailing '/'). */
static int parse_endpoint(s3_t *c, const char *ep, char *err, size_t errlen)
{
    const char *rest;
    if (strncmp(ep, "https://", 8) == 0)
        rest = ep + 8;
    else if (strncmp(ep, "http://", 7) == 0)
        rest = ep + 7;
    else
        rest = NULL;
    size_t hl = rest ? strcspn(rest, "/") : 0;
    if (!rest || hl == 0 || strpbrk(ep, "@?# ") != NULL) {
        snprintf(err, errlen,
                 "config: processor.filestorage.endpoint must be an http or https URL without "
                 "credentials, query or fragment (e.g. http://127.0.0.1:9000)");
        return -1;
    }
    c->scheme = strndup(ep, (size_t)(rest - ep) - 3);
    c->host = strndup(rest, hl);
    size_t pl = strlen(rest + hl);
    while (pl > 0 && rest[hl + pl - 1] == '/')
        pl--;
    c->path = strndup(rest + hl, pl);
    return 0;
}

static void load_credentials(s3_t *c, const s3_opts_t *o)
{
    if (o->access_key && *o->access_key) {
        c->access = strdup(o->access_key);
        c->secret = strdup(o->secret_key ? o->secret_key : "");
        return;
    }
    const char *ak = getenv("AWS_ACCESS_KEY_ID"), *sk = getenv("AWS_SECRET_ACCESS_KEY");
    if (!ak || !*ak || !sk) return;
    c->access = strdup(ak);
    c->secret = strdup(sk);
    c->token = dup_or_null(getenv("AWS_SESSION_TOKEN"));
}

static void client_free(s3_t *c)
{
    free(c->scheme);
    free(c->host);
    free(c->path);
    free(c->access);
    if (c->secret) memset(c->secret, 0, strlen(c->secret));
    free(c->secret);
    free(c->token);
    free(c);
}

s3_t *s3_new(uv_loop_t *loop, const s3_opts_t *o, char *err, size_t errlen)
{
    s3_t *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->loop = loop;
    c->path_style = o->path_style;
    c->threshold = o->multipart_threshold;
    c->part_size = o->part_size < S3_MIN_PART_SIZE ? S3_MIN_PART_SIZE : o->part_size;
    c->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 10000;
    c->low_speed_limit = o->low_speed_limit;
    c->low_speed_time_s = o->low_speed_time_s;
    if (o->endpoint && *o->endpoint && parse_endpoint(c, o->endpoint, err, errlen) < 0) {
        client_free(c);
        return NULL;
    }
    load_credentials(c, o);
    if (o->require_credentials && !c->access) {
        snprintf(err, errlen,
                 "config: processor.filestorage: no S3 credentials: set access_key_id and "
                 "secret_access_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the "
                 "environment");
        client_free(c);
        return NULL;
    }
    c->m = curlm_new(loop, o->max_host_connections);
    if (!c->m) {
        snprintf(err, errlen, "out of memory");
        client_free(c);
        return NULL;
    }
    return c;
}

bool s3_has_credentials(const s3_t *c)
{
    return c->access != NULL;
}

static void on_curlm_closed(void *arg)
{
    s3_t *c = arg;
    void (*closed)(void *) = c->closed;
    void *closed_arg = c->closed_arg;
    client_free(c);
    if (closed) closed(closed_arg);
}

static void close_client(s3_t *c)
{
    curlm_t *m = c->m;
    c->m = NULL;
    if (m) curlm_close(m, on_curlm_closed, c);
}

void s3_close(s3_t *c, void (*closed)(void *arg), void *arg)
{
    if (c->closing) return;
    c->closing = true;
    c->closed = closed;
    c->closed_arg = arg;
    for (s3_op_t *op = c->ops; op; op = op->next)
        s3_cancel(op);
    if (c->n_ops == 0) close_client(c);
}

/* ---------- metadata from a job's extra ---------- */

void s3_headers_free(char **headers)
{
    for (size_t i = 0; headers && headers[i]; i++)
        free(headers[i]);
    free(headers);
}

static bool token_char(unsigned char ch)
{
    return ch > 0x20 && ch < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", ch);
}

static bool meta_name_ok(const char *k)
{
    if (!*k) return false;
    for (const unsigned char *p = (const unsigned char *)k; *p; p++)
        if (!token_char(*p)) return false;
    return true;
}

static bool meta_value_ok(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p < 0x20 || *p > 0x7e) return false;
    return true;
}

/* One member as a header line, or NULL when it is dropped (not a string or number). */
static int meta_line(const char *k, yajl_val v, char **line, char *err, size_t errlen)
{
    char num[32];
    const char *text = NULL;
    *line = NULL;
    if (YAJL_IS_STRING(v)) {
        text = v->u.string;
    } else if (YAJL_IS_INTEGER(v)) {
        snprintf(num, sizeof num, "%lld", v->u.number.i);
        text = num;
    } else if (YAJL_IS_DOUBLE(v) && isfinite(v->u.number.d) && fabs(v->u.number.d) < 9.2e18) {
        snprintf(num, sizeof num, "%lld", (long long)trunc(v->u.number.d));
        text = num;
    }
    if (!text) return 0;
    if (!meta_name_ok(k)) {
        snprintf(err, errlen, "extra key \"%.64s\" is not a valid S3 metadata name", k);
        return -1;
    }
    if (!meta_value_ok(text)) {
        snprintf(err, errlen,
                 "extra value of \"%.64s\" must be printable US-ASCII to be S3 metadata", k);
        return -1;
    }
    if (asprintf(line, "x-amz-meta-%s: %s", k, text) < 0) {
        *line = NULL;
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static const char *json_kind(yajl_val v)
{
    if (YAJL_IS_STRING(v)) return "a string";
    if (YAJL_IS_NUMBER(v)) return "a number";
    if (YAJL_IS_ARRAY(v)) return "an array";
    if (YAJL_IS_NULL(v)) return "null";
    return "a boolean";
}

int s3_meta_from_extra(const char *extra, char ***headers, char *err, size_t errlen)
{
    char perr[256] = "";
    *headers = NULL;
    if (!extra || !*extra) return 0;
    yajl_val root = yajl_tree_parse(extra, perr, sizeof perr);
    if (!root || !YAJL_IS_OBJECT(root)) {
        char *nl = strchr(perr, '\n');
        if (nl) *nl = '\0';
        if (root)
            snprintf(err, errlen, "extra must be a JSON object for a job with s3_bucket, not %s",
                     json_kind(root));
        else
            snprintf(err, errlen,
                     "extra must be a JSON object for a job with s3_bucket (invalid JSON: %s)",
                     perr);
        yajl_tree_free(root);
        return -1;
    }
    size_t n = root->u.object.len, k = 0;
    char **out = calloc(n + 1, sizeof *out);
    int rc = out ? 0 : -1;
    if (!out) snprintf(err, errlen, "out of memory");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = meta_line(root->u.object.keys[i], root->u.object.values[i], &out[k], err, errlen);
        if (out[k]) k++;
    }
    yajl_tree_free(root);
    if (rc < 0 || k == 0) {
        s3_headers_free(out);
        out = NULL;
    }
    *headers = out;
    return rc;
}
