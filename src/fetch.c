/* fetch: one download on top of curlm. It builds the request of §6.5 (merged
 * headers, gzip only when the caller gave no Accept-Encoding, redirects, proxy,
 * timeouts, size cap), streams the body into the temp file with one async uv_fs
 * write in flight at a time (curl is paused while the disk is busy), hands the first
 * FETCH_HEAD_SIZE bytes to the caller's hook (MIME check) and turns whatever happened
 * into a §5.5 result. With the SSRF guard on (fetch_opts_t.block_private_networks),
 * curl's open-socket callback asks netguard about every address curl is about to
 * connect to (origin after DNS, each redirect hop, the proxy) and refuses private
 * ones: that is the final "refused to connect" error. The life of a fetch:
 *   open tmp file -> curl transfer -> wait for the last write -> close
 *   -> (unlink on failure) -> done
 * Every step after fetch_start is a uv callback, so done is always asynchronous.
 *
 * Digests: SHA-256 of every body (recorded for the stored file) and the job's
 * checksum digest (MD5) when it asks for one, updated as the body streams in on the
 * loop; the file is never read again for them.
 *
 * Resume (issue 16): a response with Accept-Ranges: bytes, a strong ETag or a
 * Last-Modified, a known length and no Content-Encoding can be resumed. Before its
 * first body write the temp file gets those validators in the xattr RESUME_XATTR
 * (one thread-pool job), so they survive a kill -9 with the bytes written. A failed
 * attempt that was retriable (reset, timeouts, shutdown, a full disk or a file-size
 * limit) then keeps the file instead of removing it. With req.resume the temp file is
 * opened on the thread pool instead: flock(LOCK_EX) (a file still locked belongs to a
 * stalled earlier holder: it is unlinked and a new one made, so that holder writes
 * into an orphan), the xattr read, the kept bytes digested once and their first
 * FETCH_HEAD_SIZE bytes kept for the MIME hook; the request then carries
 * Range: bytes=<kept>- and If-Range. A 206 whose Content-Range starts at <kept> (and
 * has the recorded length) appends; a 200 starts over (the file is cut before the
 * first write); a 416 or another Content-Range ends the fetch with res.restart. */
#include "fetch.h"
#include "log.h"
#include "netguard.h"
#include "uri.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define FETCH_BUFFER_SIZE 16384L
#define FETCH_MAX_REDIRS 10L
#define FETCH_KEEPALIVE_S 30L
#define FETCH_MAXAGE_CONN_S 90L
#define FETCH_DEFAULT_CONNECT_MS 10000L
#define FETCH_DEFAULT_LOW_SPEED_LIMIT 1L
#define FETCH_DEFAULT_LOW_SPEED_TIME 60L
#define FETCH_WBUF_STEP 4096
#define FETCH_LOOPBACK "localhost,127.0.0.0/8,::1"
#define RESUME_XATTR "user.downloader.resume"
#define VALIDATOR_LEN 256
#define DIGEST_READ (1024 * 1024) /* read size when digesting kept bytes */

typedef enum { ST_OPENING, ST_RUNNING, ST_FINISHING } stage_t;

struct fetch {
    uv_loop_t *loop;
    curlm_t *m;
    CURL *easy;
    struct curl_slist *slist;
    char *url;
    char *tmp_path;
    fetch_done_fn done;
    void *arg;
    fetch_head_fn on_head;
    void *head_arg;
    int64_t max_size;
    stage_t stage;
    bool failed;       /* res holds a failure; the first one wins */
    bool cancel_req;   /* fetch_cancel while opening or inside a curl callback */
    bool in_curl;      /* inside this handle's write callback */
    bool writing;      /* a uv_fs_write is in flight */
    bool paused;       /* the write callback answered CURL_WRITEFUNC_PAUSE */
    bool body_started; /* the write callback saw the final response */
    bool head_done;    /* the hook has been called */
    bool hdr_complete; /* the last response's header block ended */
    bool has_location; /* ... and it carried a Location */
    bool encoded;      /* ... and a Content-Encoding */
    bool decoding;     /* we asked for gzip ourselves (curl decodes) */
    bool in_memory;    /* the body so far is held in wbuf only (mem_limit mode) */
    bool opening;      /* the temp file is being opened mid-transfer */
    bool file_made;    /* the temp file was created (so it must go on failure) */
    size_t mem_limit;
    uv_file fd;
    uv_fs_t req; /* open, writes, close, unlink: never two at once */
    unsigned char *wbuf;
    size_t wcap, wlen, woff;
    uint64_t received; /* body bytes accepted from curl */
    uint64_t written;  /* body bytes on disk */
    int64_t total;
    long status; /* status of the last response line seen */
    long retry_after_ms;
    char status_text[96];
    size_t head_len;
    unsigned char head[FETCH_HEAD_SIZE];
    char errbuf[CURL_ERROR_SIZE];
    EVP_MD_CTX *sha;    /* SHA-256 of the file */
    EVP_MD_CTX *want;   /* the checksum's digest when it is not SHA-256 (MD5), or NULL */
    char *checksum;     /* the expected "algo:hex", NULL when none */
    bool resume_req;    /* req.resume: open through resume_open */
    bool client_range;  /* the job sends its own Range: nothing is ever kept */
    bool accept_ranges; /* the last response: Accept-Ranges: bytes */
    bool has_cr;        /* ... a Content-Range "bytes a-b/t" (cr_start, cr_total) */
    bool keepable;      /* this response can be resumed by a later attempt */
    bool meta_pending;  /* write meta to RESUME_XATTR before the next body write */
    bool meta_set;      /* the temp file carries this response's validators */
    bool trunc_pending; /* started over: cut the kept bytes before the next write */
    bool unmeta;        /* success: drop RESUME_XATTR before the file is stored */
    int work_err;       /* -errno of the last thread-pool job, 0 when fine */
    uv_work_t work;     /* resume_open / prewrite (never two at once, nor with req) */
    uint64_t base;      /* bytes kept: where this attempt's body starts in the file */
    long long cr_start, cr_total;
    char etag[VALIDATOR_LEN], last_modified[VALIDATOR_LEN]; /* last response */
    char v_etag[VALIDATOR_LEN], v_lm[VALIDATOR_LEN];        /* read from the xattr */
    long long v_total;                                      /* ... */
    char meta[2 * VALIDATOR_LEN + 32];                      /* to write */
    netguard_t guard; /* SSRF guard; guard.on = false when not configured */
    char refused[64]; /* the last address the guard refused, "" when none */
    fetch_result_t res;
};

static void finish_io(fetch_t *f);

/* ---- results ---------------------------------------------------------------- */

/* A long detail is cut so that the retriable/internal tail is always complete. */
void fetch_format_error(char *buf, size_t len, const char *phase, const char *detail,
                        bool retriable, bool internal)
{
    char tail[48];
    snprintf(tail, sizeof tail, ", retriable: %s, internal: %s", retriable ? "true" : "false",
             internal ? "true" : "false");
    size_t fixed = strlen("Error while , ") + strlen(phase) + strlen(tail);
    size_t dlen = strlen(detail);
    if (len > fixed && dlen > len - 1 - fixed) dlen = len - 1 - fixed;
    snprintf(buf, len, "Error while %s, %.*s%s", phase, (int)dlen, detail, tail);
}

static void fail(fetch_t *f, const char *phase, const char *detail, bool retriable, bool internal,
                 const char *stat)
{
    if (f->failed) return;
    f->failed = true;
    f->res.ok = false;
    f->res.retriable = retriable;
    f->res.internal = internal;
    fetch_format_error(f->res.error, sizeof f->res.error, phase, detail, retriable, internal);
    snprintf(f->res.stat, sizeof f->res.stat, "%s", stat ? stat : "");
}

/* The URL as Go prints it in errors: any password replaced by "***". */
static void redact_url(char *buf, size_t len, const char *url)
{
    const char *scheme = strstr(url, "://");
    const char *auth = scheme ? scheme + 3 : url;
    size_t host_len = strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', host_len);
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (!colon) {
        snprintf(buf, len, "%s", url);
        return;
    }
    snprintf(buf, len, "%.*s***%s", (int)(colon + 1 - url), url, at);
}

/* "Get "<url>": <what>", the shape of Go's transport errors. */
static void transport_detail(const fetch_t *f, char *buf, size_t len, const char *what)
{
    char url[512];
    redact_url(url, sizeof url, f->url);
    snprintf(buf, len, "Get \"%s\": %s", url, what);
}

static const char *curl_text(const fetch_t *f, CURLcode rc)
{
    return f->errbuf[0] ? f->errbuf : curl_easy_strerror(rc);
}

static bool is_2xx(long code)
{
    return code >= 200 && code < 300;
}

/* The origin refused the resume: the caller starts again without it, not an attempt. */
static void fail_restart(fetch_t *f, const char *why)
{
    fail(f, "downloading file", why, true, true, "");
    f->res.restart = true;
}

static void fail_status(fetch_t *f, long code)
{
    char detail[160], stat[48];
    if (code == 416 && f->base > 0) {
        fail_restart(f, "the origin refused the range of the kept bytes (416)");
        return;
    }
    if (code == f->status && f->status_text[0])
        snprintf(detail, sizeof detail, "Received status code %s", f->status_text);
    else
        snprintf(detail, sizeof detail, "Received status code %ld", code);
    snprintf(stat, sizeof stat, "download.response.%ld", code);
    bool retriable = code >= 500 || code == 408 || code == 429;
    fail(f, "processing response", detail, retriable, false, stat);
    f->res.response_code = code;
    if (code == 408 || code == 429 || code == 503) f->res.retry_after_ms = f->retry_after_ms;
}

static void fail_size(fetch_t *f)
{
    char detail[128];
    snprintf(detail, sizeof detail, "file size exceeds max_file_size (%lld bytes)",
             (long long)f->max_size);
    fail(f, "downloading file", detail, false, false, "download.response.body");
    if (is_2xx(f->status)) f->res.response_code = f->status;
}

static void fail_cancel(fetch_t *f)
{
    char detail[640];
    if (f->failed) return; /* an earlier failure stands */
    if (f->body_started) {
        fail(f, "downloading file", "context canceled", true, false, "");
        f->res.response_code = f->status;
    } else {
        transport_detail(f, detail, sizeof detail, "context canceled");
        fail(f, "performing request", detail, true, false, "");
    }
    f->res.cancelled = true;
}

/* Own file errors are internal (do not use up an attempt); body write errors are not,
 * except a full disk (ENOSPC, EDQUOT) or a file-size limit of this host (EFBIG), which
 * are ours as well. */
static void fail_os(fetch_t *f, const char *phase, long err, bool internal)
{
    const char *stat = internal ? "failures" : "download.response.body";
    fail(f, phase, uv_strerror((int)err), true, internal, stat);
}

static bool is_tls_error(CURLcode rc)
{
    switch (rc) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
    case CURLE_USE_SSL_FAILED:
        return true;
    default:
        return false;
    }
}

/* A failure while reading the body of a 2xx answer. */
static void fail_body(fetch_t *f, CURLcode rc)
{
    const char *detail = curl_text(f, rc);
    if (rc == CURLE_PARTIAL_FILE) detail = "unexpected EOF";
    if (rc == CURLE_OPERATION_TIMEDOUT && strncmp(f->errbuf, "Operation timed out", 19) == 0)
        detail = "context deadline exceeded";
    fail(f, "downloading file", detail, true, false, "download.response.body");
}

static void fail_transport(fetch_t *f, CURLcode rc)
{
    char detail[900], what[CURL_ERROR_SIZE + 32];
    if (rc == CURLE_TOO_MANY_REDIRECTS)
        snprintf(what, sizeof what, "stopped after %ld redirects", FETCH_MAX_REDIRS);
    else
        snprintf(what, sizeof what, "%s", curl_text(f, rc));
    transport_detail(f, detail, sizeof detail, what);
    if (is_tls_error(rc)) {
        char tls[1000];
        snprintf(tls, sizeof tls, "TLS Error occured: %s", detail);
        fail(f, "performing request", tls, false, false, "download.response.tls");
        return;
    }
    fail(f, "performing request", detail, true, false, "");
}

/* curl found no address to connect to and the SSRF guard refused at least one of
 * them (origin, redirect hop or proxy): final, never retried. */
static void fail_refused(fetch_t *f)
{
    char detail[192];
    snprintf(detail, sizeof detail, "refused to connect to %s: " NETGUARD_REFUSED_WHY, f->refused);
    fail(f, "performing request", detail, false, false, "download.response.blocked");
}

/* Calls the hook once; a rejection fails the download for good. */
static int run_head_hook(fetch_t *f)
{
    if (f->head_done || !f->on_head) return 0;
    f->head_done = true;
    char err[512] = "";
    const char *phase = "validating mime type", *stat = "download.response.mime";
    if (f->on_head(f->head_arg, f->head, f->head_len, err, sizeof err, &phase, &stat) == 0)
        return 0;
    fail(f, phase ? phase : "validating mime type", err, false, false, stat);
    f->res.response_code = f->status;
    return -1;
}

static void digest_hex(EVP_MD_CTX *ctx, char *hex, size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    hex[0] = '\0';
    if (EVP_DigestFinal_ex(ctx, md, &n) != 1) return;
    if (2 * (size_t)n + 1 > len) n = (unsigned int)((len - 1) / 2);
    uri_hex(md, n, hex);
}

/* The body is complete: its SHA-256 into the result, and the job's checksum compared.
 * A mismatch is final. 0 or -1. */
static int verify_digest(fetch_t *f, long code)
{
    char got[2 * EVP_MAX_MD_SIZE + 1];
    digest_hex(f->sha, f->res.sha256, sizeof f->res.sha256);
    if (!f->checksum) return 0;
    const char *colon = strchr(f->checksum, ':');
    if (f->want)
        digest_hex(f->want, got, sizeof got);
    else
        snprintf(got, sizeof got, "%s", f->res.sha256);
    if (strcmp(colon + 1, got) == 0) return 0;
    char detail[256];
    snprintf(detail, sizeof detail, "checksum mismatch: expected %s, got %.*s:%s", f->checksum,
             (int)(colon - f->checksum), f->checksum, got);
    fail(f, "verifying checksum", detail, false, false, "download.response.checksum");
    f->res.response_code = code;
    return -1;
}

/* Maps the end of the curl transfer onto the result (unless a callback already did). */
static void classify(fetch_t *f, CURLcode rc)
{
    long code = 0;
    curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &code);
    bool final_hdrs = f->hdr_complete && !(f->status / 100 == 3 && f->has_location);
    if (f->failed) return;
    f->res.timed_out = rc == CURLE_OPERATION_TIMEDOUT; /* total or low-speed time */
    if (rc == CURLE_COULDNT_CONNECT && f->refused[0]) {
        fail_refused(f);
    } else if (rc == CURLE_OK && !is_2xx(code)) {
        fail_status(f, code);
    } else if (rc == CURLE_OK) {
        if (run_head_hook(f) != 0 || verify_digest(f, code) != 0) return;
        f->res.ok = true;
        f->res.response_code = code;
        snprintf(f->res.stat, sizeof f->res.stat, "download.response.%ld", code);
    } else if (rc == CURLE_FILESIZE_EXCEEDED && f->status < 400) {
        fail_size(f);
    } else if (!is_tls_error(rc) && (final_hdrs || rc == CURLE_FILESIZE_EXCEEDED)) {
        if (!is_2xx(f->status))
            fail_status(f, f->status);
        else
            fail_body(f, rc);
        f->res.response_code = f->status;
    } else {
        fail_transport(f, rc);
    }
}

/* ---- completion ------------------------------------------------------------- */

static void fetch_free(fetch_t *f)
{
    curlm_easy_release(f->m, f->easy);
    curl_slist_free_all(f->slist);
    netguard_free(&f->guard);
    EVP_MD_CTX_free(f->sha);
    EVP_MD_CTX_free(f->want);
    free(f->checksum);
    free(f->url);
    free(f->tmp_path);
    free(f->wbuf);
    free(f);
}

static void complete(fetch_t *f)
{
    f->res.bytes = f->base + f->received;
    f->res.kept = f->base;
    if (f->res.ok && f->in_memory) { /* hand the body over: no temp file exists */
        f->res.mem = f->wbuf;
        f->res.mem_len = f->wlen;
        f->wbuf = NULL;
    }
    log_debug("fetch", "download finished", "url=%s ok=%d status=%ld bytes=%llu error=%s",
              log_q(log_redact_url(f->url)), f->res.ok, f->res.response_code,
              (unsigned long long)f->res.bytes, log_q(f->res.ok ? "" : f->res.error));
    f->done(f, &f->res, f->arg);
    fetch_free(f);
}

static void on_unlinked(uv_fs_t *req)
{
    fetch_t *f = req->data;
    uv_fs_req_cleanup(req);
    complete(f);
}

static void on_closed(uv_fs_t *req)
{
    fetch_t *f = req->data;
    ssize_t r = req->result;
    uv_fs_req_cleanup(req);
    f->fd = -1;
    if (r < 0) fail_os(f, "syncing to disk", (long)r, true);
    finish_io(f);
}

/* A failed attempt leaves its temp file for the next one when the origin can resume
 * it and the failure may go away (reset, timeouts, shutdown, disk full, file-size
 * limit): not for a refused resume, a final answer, a MIME or checksum rejection. */
static bool keep_partial(fetch_t *f)
{
    f->res.partial_kept =
        f->meta_set && f->written > 0 && !f->res.restart && (f->res.retriable || f->res.cancelled);
    return f->res.partial_kept;
}

static int submit_prewrite(fetch_t *f);

/* After the transfer: wait for the write in flight, close, unlink on failure, done. */
static void finish_io(fetch_t *f)
{
    if (f->writing || f->opening) return; /* on_written / on_opened_late come back here */
    if (f->fd >= 0 && f->res.ok && (f->trunc_pending || f->meta_set)) {
        f->unmeta = f->meta_set; /* the stored file does not need the validators */
        f->meta_set = false;
        if (submit_prewrite(f) == 0) return; /* comes back here */
    }
    if (f->fd >= 0) {
        if (uv_fs_close(f->loop, &f->req, f->fd, on_closed) == 0) return;
        f->fd = -1;
    }
    /* a failure always ends through the (async) unlink, also when no file was made */
    if (!f->res.ok && !keep_partial(f) &&
        uv_fs_unlink(f->loop, &f->req, f->tmp_path, on_unlinked) == 0)
        return;
    complete(f);
}

/* Stops curl (outside its callbacks) and finishes with the recorded failure. */
static void abort_transfer(fetch_t *f)
{
    if (f->stage != ST_RUNNING) return;
    curlm_remove(f->m, f->easy);
    f->stage = ST_FINISHING;
    finish_io(f);
}

static void on_curl_done(CURL *easy, CURLcode rc, void *arg)
{
    (void)easy;
    fetch_t *f = arg;
    if (f->cancel_req) fail_cancel(f);
    classify(f, rc);
    f->stage = ST_FINISHING;
    finish_io(f);
}

/* ---- body ------------------------------------------------------------------- */

static void on_written(uv_fs_t *req);

/* ---- temp file preparation on the thread pool --------------------------------- */

static void on_prewritten(uv_work_t *w, int status);

/* Before a body write: cut the kept bytes (started over) and record the validators;
 * after a success: drop them. A file system without user xattrs only loses resume. */
static void prewrite_work(uv_work_t *w)
{
    fetch_t *f = w->data;
    f->work_err = 0;
    if (f->trunc_pending && ftruncate(f->fd, 0) < 0) f->work_err = -errno;
    if (f->meta_pending && fsetxattr(f->fd, RESUME_XATTR, f->meta, strlen(f->meta), 0) == 0)
        f->meta_set = true;
    if (f->unmeta) fremovexattr(f->fd, RESUME_XATTR);
}

static int submit_prewrite(fetch_t *f)
{
    f->work.data = f;
    if (uv_queue_work(f->loop, &f->work, prewrite_work, on_prewritten) != 0) {
        fail(f, "downloading file", "cannot queue work", true, true, "failures");
        return -1;
    }
    f->writing = true;
    return 0;
}

static int submit_write(fetch_t *f)
{
    if (f->trunc_pending || f->meta_pending) return submit_prewrite(f);
    uv_buf_t b = uv_buf_init((char *)f->wbuf + f->woff, (unsigned)(f->wlen - f->woff));
    int rc = uv_fs_write(f->loop, &f->req, f->fd, &b, 1, (int64_t)f->written, on_written);
    if (rc != 0) {
        fail_os(f, "downloading file", rc, false);
        return -1;
    }
    f->writing = true;
    return 0;
}

/* Lets curl go on after a write; it may call the write callback right here. */
static void resume(fetch_t *f)
{
    f->paused = false;
    CURLcode rc = curl_easy_pause(f->easy, CURLPAUSE_CONT);
    if (f->cancel_req) fail_cancel(f);
    if (rc != CURLE_OK && !f->failed) fail_body(f, rc);
    if (f->failed) abort_transfer(f);
}

/* An idle transfer holds no write buffer (slow downloads spend most time idle). */
static void release_buffer(fetch_t *f)
{
    free(f->wbuf);
    f->wbuf = NULL;
    f->wcap = f->wlen = f->woff = 0;
}

/* No write in flight any more: go on with what the transfer was waiting for. */
static void io_settled(fetch_t *f)
{
    release_buffer(f);
    if (f->stage == ST_FINISHING)
        finish_io(f);
    else if (f->failed)
        abort_transfer(f);
    else if (f->paused)
        resume(f);
}

static void on_written(uv_fs_t *req)
{
    fetch_t *f = req->data;
    ssize_t r = req->result;
    uv_fs_req_cleanup(req);
    f->writing = false;
    if (r < 0) {
        fail_os(f, "downloading file", (long)r, r == UV_ENOSPC || r == -EDQUOT || r == UV_EFBIG);
    } else {
        f->written += (uint64_t)r;
        f->woff += (size_t)r;
        if (f->woff < f->wlen && !f->failed && submit_write(f) == 0) return; /* short write */
    }
    io_settled(f);
}

static void on_prewritten(uv_work_t *w, int status)
{
    fetch_t *f = w->data;
    (void)status;
    f->writing = false;
    f->trunc_pending = f->meta_pending = f->unmeta = false;
    if (f->work_err) fail_os(f, "downloading file", f->work_err, true);
    if (!f->failed && f->wlen > f->woff && submit_write(f) == 0) return; /* the held chunk */
    io_settled(f);
}

static void on_opened_late(uv_fs_t *req);

/* The body outgrew mem_limit: open the temp file now; what is held gets written once it
 * is open, and curl stays paused meanwhile. */
static int switch_to_file(fetch_t *f)
{
    int flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
    f->in_memory = false;
    if (uv_fs_open(f->loop, &f->req, f->tmp_path, flags, 0644, on_opened_late) != 0) {
        fail(f, "creating tmp file", "cannot open the temp file", true, true, "failures");
        return -1;
    }
    f->opening = true;
    return 0;
}

static void on_opened_late(uv_fs_t *req)
{
    fetch_t *f = req->data;
    ssize_t r = req->result;
    uv_fs_req_cleanup(req);
    f->opening = false;
    if (r >= 0) {
        f->fd = (uv_file)r;
        f->file_made = true;
    } else {
        fail_os(f, "creating tmp file", (long)r, true);
    }
    if (!f->failed && f->wlen > f->woff && submit_write(f) == 0) return; /* on_written goes on */
    io_settled(f);
}

/* Grows the write buffer to hold `need` bytes (in FETCH_WBUF_STEP steps). */
static int wbuf_reserve(fetch_t *f, size_t need)
{
    if (need <= f->wcap) return 0;
    size_t cap = (need + FETCH_WBUF_STEP - 1) / FETCH_WBUF_STEP * FETCH_WBUF_STEP;
    unsigned char *nb = realloc(f->wbuf, cap);
    if (!nb) {
        fail(f, "downloading file", "out of memory", true, true, "failures");
        return -1;
    }
    f->wbuf = nb;
    f->wcap = cap;
    return 0;
}

/* mem_limit mode: append to the body held in memory. */
static int hold_chunk(fetch_t *f, const char *data, size_t len)
{
    size_t need = f->wlen + len;
    if (wbuf_reserve(f, need) < 0) return -1;
    memcpy(f->wbuf + f->wlen, data, len);
    f->wlen = need;
    return need > f->mem_limit ? switch_to_file(f) : 0;
}

static int keep_chunk(fetch_t *f, const char *data, size_t len)
{
    if (f->in_memory) return hold_chunk(f, data, len);
    if (wbuf_reserve(f, len) < 0) return -1;
    memcpy(f->wbuf, data, len);
    f->wlen = len;
    f->woff = 0;
    return submit_write(f);
}

/* A 206 appends only when it starts where the kept bytes end, unencoded, and for the
 * length recorded with them. */
static bool range_fits(const fetch_t *f)
{
    return f->has_cr && !f->encoded && f->cr_start == (long long)f->base &&
           (f->v_total <= 0 || f->cr_total == f->v_total);
}

static void digest_reset(fetch_t *f)
{
    EVP_DigestInit_ex(f->sha, EVP_sha256(), NULL);
    if (f->want) EVP_DigestInit_ex(f->want, EVP_md5(), NULL);
}

/* The origin answered 200 to the range request: the whole file comes again. */
static void start_over(fetch_t *f)
{
    f->base = 0;
    f->written = 0;
    f->head_len = 0;
    f->trunc_pending = true;
    digest_reset(f);
}

/* Whether a later attempt may resume this response, and the validators to record. */
static void decide_keep(fetch_t *f, long code, long long cl)
{
    long long whole = f->base > 0 ? f->cr_total : cl;
    bool strong = f->etag[0] == '"';
    f->keepable = !f->client_range && !f->encoded && f->accept_ranges && whole > 0 &&
                  (strong || f->last_modified[0]) && (code == 200 || f->base > 0);
    if (!f->keepable) return;
    if (f->base > 0) { /* If-Range held: the validators on the file are this response's */
        f->meta_set = true;
        return;
    }
    snprintf(f->meta, sizeof f->meta, "%lld\n%s\n%s\n", whole, strong ? f->etag : "",
             f->last_modified);
    f->meta_pending = true;
}

/* First body bytes: the final answer is known now; error bodies are not read. */
static int start_body(fetch_t *f)
{
    long code = 0;
    curl_off_t cl = -1;
    f->body_started = true;
    curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &code);
    if (!is_2xx(code)) {
        fail_status(f, code);
        return -1;
    }
    curl_easy_getinfo(f->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
    f->total = (f->decoding && f->encoded) ? -1 : (int64_t)cl;
    if (f->base > 0 && code == 206 && !range_fits(f)) {
        fail_restart(f, "the Content-Range of the answer does not fit the kept bytes");
        return -1;
    }
    if (f->base > 0 && code != 206) start_over(f);
    if (f->base > 0) f->total = f->cr_total;
    decide_keep(f, code, (long long)cl);
    /* resumed: the MIME hook sees the first bytes of the file, read from the kept part */
    return f->head_len == FETCH_HEAD_SIZE ? run_head_hook(f) : 0;
}

static int collect_head(fetch_t *f, const char *data, size_t len)
{
    size_t room = FETCH_HEAD_SIZE - f->head_len;
    size_t n = len < room ? len : room;
    memcpy(f->head + f->head_len, data, n);
    f->head_len += n;
    if (f->head_len < FETCH_HEAD_SIZE) return 0;
    return run_head_hook(f);
}

static size_t write_body(fetch_t *f, const char *data, size_t len)
{
    if (f->cancel_req) fail_cancel(f);
    if (f->failed) return 0;
    if (f->writing || f->opening) {
        f->paused = true;
        return CURL_WRITEFUNC_PAUSE;
    }
    if (!f->body_started && start_body(f) != 0) return 0;
    if (len == 0) return 0;
    if (f->max_size > 0 && f->base + f->received + len > (uint64_t)f->max_size) {
        fail_size(f);
        return 0;
    }
    if (collect_head(f, data, len) != 0) return 0;
    EVP_DigestUpdate(f->sha, data, len);
    if (f->want) EVP_DigestUpdate(f->want, data, len);
    if (f->cancel_req) fail_cancel(f); /* the hook may have cancelled */
    if (f->failed || keep_chunk(f, data, len) != 0) return 0;
    f->received += len;
    return len;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *arg)
{
    fetch_t *f = arg;
    bool outer = f->in_curl;
    f->in_curl = true;
    size_t r = write_body(f, data, size * nmemb);
    f->in_curl = outer;
    return r;
}

/* ---- response headers ------------------------------------------------------- */

static void on_status_line(fetch_t *f, const char *line, size_t len)
{
    const char *sp = memchr(line, ' ', len);
    f->retry_after_ms = 0;
    f->hdr_complete = f->has_location = f->encoded = false;
    f->accept_ranges = f->has_cr = false;
    f->etag[0] = f->last_modified[0] = '\0';
    f->status = 0;
    f->status_text[0] = 0;
    if (!sp) return;
    while (sp < line + len && *sp == ' ')
        sp++;
    size_t n = (size_t)(line + len - sp);
    while (n > 0 && (sp[n - 1] == '\r' || sp[n - 1] == '\n'))
        n--;
    snprintf(f->status_text, sizeof f->status_text, "%.*s", (int)n, sp);
    f->status = strtol(f->status_text, NULL, 10);
}

static bool header_is(const char *line, size_t len, const char *name)
{
    size_t n = strlen(name);
    return len > n && line[n] == ':' && strncasecmp(line, name, n) == 0;
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *arg)
{
    fetch_t *f = arg;
    size_t len = size * nmemb;
    char v[128];
    if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        on_status_line(f, line, len);
    } else if (len <= 2 && len > 0 && (line[0] == '\r' || line[0] == '\n')) {
        f->hdr_complete = true;
    } else if (header_is(line, len, "Location")) {
        f->has_location = true;
    } else if (header_is(line, len, "Content-Encoding")) {
        f->encoded = true;
    } else if (curlm_header_value(line, len, "Retry-After", v, sizeof v)) {
        f->retry_after_ms = curlm_retry_after_ms(v, time(NULL));
    } else if (curlm_header_value(line, len, "Accept-Ranges", v, sizeof v)) {
        f->accept_ranges = strcasecmp(v, "bytes") == 0;
    } else if (curlm_header_value(line, len, "ETag", f->etag, sizeof f->etag)) {
    } else if (curlm_header_value(line, len, "Last-Modified", f->last_modified,
                                  sizeof f->last_modified)) {
    } else if (curlm_header_value(line, len, "Content-Range", v, sizeof v)) {
        long long end;
        f->has_cr = sscanf(v, "bytes %lld-%lld/%lld", &f->cr_start, &end, &f->cr_total) == 3 &&
                    f->cr_total > end && end >= f->cr_start;
    }
    return len;
}

/* ---- request headers (§6.5) ------------------------------------------------- */

/* Go's textproto.CanonicalMIMEHeaderKey: names with non-token bytes stay as given. */
static bool token_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", c);
}

static char *canonical_name(const char *name)
{
    char *out = strdup(name);
    if (!out) return NULL;
    for (const char *p = name; *p; p++)
        if (!token_char((unsigned char)*p)) return out;
    bool upper = true;
    for (char *p = out; *p; p++) {
        if (upper && *p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
        else if (!upper && *p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
        upper = *p == '-';
    }
    return out;
}

typedef struct {
    char *name;
    const char *value;
} merged_t;

static int merge_one(merged_t *m, size_t *n, const header_t *h)
{
    if (!h->name) return 0;
    char *name = canonical_name(h->name);
    if (!name) return -1;
    if (strcmp(name, "Host") == 0) {
        free(name);
        return 0;
    }
    for (size_t i = 0; i < *n; i++) {
        if (strcmp(m[i].name, name) == 0) {
            free(name);
            m[i].value = h->value ? h->value : "";
            return 0;
        }
    }
    m[*n].name = name;
    m[*n].value = h->value ? h->value : "";
    (*n)++;
    return 0;
}

/* "Name: value", or "Name;" which makes curl send an empty value. */
static char *format_header(const merged_t *h)
{
    const char *v = h->value;
    while (*v == ' ' || *v == '\t')
        v++;
    size_t vlen = strlen(v);
    while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
        vlen--;
    size_t len = strlen(h->name) + vlen + 3;
    char *s = malloc(len);
    if (!s) return NULL;
    if (vlen == 0)
        snprintf(s, len, "%s;", h->name);
    else
        snprintf(s, len, "%s: %.*s", h->name, (int)vlen, v);
    return s;
}

void fetch_headers_free(char **list, size_t n)
{
    if (!list) return;
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

static char **format_all(merged_t *m, size_t n)
{
    char **out = calloc(n + 1, sizeof *out);
    for (size_t i = 0; out && i < n; i++) {
        out[i] = format_header(&m[i]);
        if (!out[i]) {
            fetch_headers_free(out, i);
            return NULL;
        }
    }
    return out;
}

char **fetch_merge_headers(const headers_t *defaults, const headers_t *job, size_t *n)
{
    size_t cap = (defaults ? defaults->n : 0) + (job ? job->n : 0), count = 0;
    merged_t *m = calloc(cap + 1, sizeof *m);
    char **out = NULL;
    int rc = m ? 0 : -1;
    for (size_t i = 0; rc == 0 && defaults && i < defaults->n; i++)
        rc = merge_one(m, &count, &defaults->items[i]);
    for (size_t i = 0; rc == 0 && job && i < job->n; i++)
        rc = merge_one(m, &count, &job->items[i]);
    if (rc == 0) out = format_all(m, count);
    for (size_t i = 0; m && i < count; i++)
        free(m[i].name);
    free(m);
    *n = out ? count : 0;
    return out;
}

/* Go refuses to send what would break the header block. 0 or -1 (message in err). */
static int check_headers(const headers_t *h, char *err, size_t errlen)
{
    for (size_t i = 0; h && i < h->n; i++) {
        const char *name = h->items[i].name ? h->items[i].name : "";
        const char *value = h->items[i].value ? h->items[i].value : "";
        bool ok = name[0] != 0;
        for (const char *p = name; ok && *p; p++)
            ok = token_char((unsigned char)*p);
        if (!ok) {
            snprintf(err, errlen, "net/http: invalid header field name \"%s\"", name);
            return -1;
        }
        for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
            if ((*p < 0x20 && *p != '\t') || *p == 0x7f) {
                snprintf(err, errlen, "net/http: invalid header field value for \"%s\"", name);
                return -1;
            }
        }
    }
    return 0;
}

static int append(fetch_t *f, const char *line)
{
    struct curl_slist *l = curl_slist_append(f->slist, line);
    if (!l) return -2;
    f->slist = l;
    return 0;
}

static bool has_header(char **list, size_t n, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < n; i++)
        if (strncmp(list[i], name, len) == 0 && (list[i][len] == ':' || list[i][len] == ';'))
            return true;
    return false;
}

/* Builds the curl header list. 0, -1 (message in err) or -2 (out of memory). */
static int build_headers(fetch_t *f, const headers_t *defaults, const headers_t *job, char *err,
                         size_t errlen)
{
    size_t n;
    if (check_headers(defaults, err, errlen) != 0 || check_headers(job, err, errlen) != 0)
        return -1;
    char **list = fetch_merge_headers(defaults, job, &n);
    if (!list) return -2;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = append(f, list[i]);
    if (rc == 0 && !has_header(list, n, "Accept")) rc = append(f, "Accept:");
    if (rc == 0 && !has_header(list, n, "Expect")) rc = append(f, "Expect:");
    f->client_range = has_header(list, n, "Range");
    f->decoding = rc == 0 && !has_header(list, n, "Accept-Encoding");
    fetch_headers_free(list, n);
    return rc;
}

/* ---- request ---------------------------------------------------------------- */

/* Only absolute http(s) URLs with a host. 0, -1 (Go-like message in err) or -2. */
static int check_url(const char *url, char *err, size_t errlen)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    int rc = -1;
    if (!u) return -2;
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
    if (uc != CURLUE_OK)
        snprintf(err, errlen, "parse \"%s\": %s", url, curl_url_strerror(uc));
    else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
             (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0))
        snprintf(err, errlen, "unsupported protocol scheme \"%s\"", scheme ? scheme : "");
    else if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host[0])
        snprintf(err, errlen, "http: no Host in request URL");
    else
        rc = 0;
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return rc;
}

/* The aggregation proxy for every request (NO_PROXY does not apply, as with Go's
 * http.ProxyURL); socks5 resolves names at the proxy as Go's dialer does. */
static void set_proxy(CURL *e, const char *proxy)
{
    if (proxy && proxy[0]) {
        curl_easy_setopt(e, CURLOPT_NOPROXY, "");
        if (strncasecmp(proxy, "socks5://", 9) == 0) {
            size_t len = strlen(proxy) + 2;
            char *p = malloc(len);
            if (p) {
                snprintf(p, len, "socks5h://%s", proxy + 9);
                curl_easy_setopt(e, CURLOPT_PROXY, p);
                free(p);
                return;
            }
        }
        curl_easy_setopt(e, CURLOPT_PROXY, proxy);
        return;
    }
    /* environment proxies (read by libcurl), but never for loopback, like Go */
    const char *env = getenv("no_proxy");
    if (!env || !env[0]) env = getenv("NO_PROXY");
    if (env && strcmp(env, "*") == 0) {
        curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
        return;
    }
    char noproxy[1024];
    snprintf(noproxy, sizeof noproxy, "%s%s%s", FETCH_LOOPBACK, env && env[0] ? "," : "",
             env ? env : "");
    curl_easy_setopt(e, CURLOPT_NOPROXY, noproxy);
}

/* curl is about to open a connection (origin, redirect hop or proxy): the SSRF
 * guard's checkpoint, installed only when the guard is on. Checking the address
 * actually connected to defeats DNS rebinding and redirects to private hosts. */
static curl_socket_t on_opensocket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
    fetch_t *f = arg;
    netguard_class_t cls;
    (void)purpose;
    int fd = netguard_socket(&f->guard, a->family, a->socktype, a->protocol, &a->addr, a->addrlen,
                             &cls, f->refused, sizeof f->refused);
    if (fd == -2)
        log_debug("fetch", "connection refused by the SSRF guard", "url=%s address=%s class=%s",
                  log_q(log_redact_url(f->url)), f->refused, log_q(netguard_class_name(cls)));
    return fd < 0 ? CURL_SOCKET_BAD : fd;
}

static long or_default(long v, long def)
{
    return v > 0 ? v : def;
}

static void set_options(fetch_t *f, const fetch_opts_t *o, const fetch_req_t *r)
{
    CURL *e = f->easy;
    curl_easy_setopt(e, CURLOPT_URL, f->url);
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, f->slist);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, FETCH_MAX_REDIRS);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, FETCH_KEEPALIVE_S);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, FETCH_KEEPALIVE_S);
    curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, FETCH_MAXAGE_CONN_S);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, FETCH_BUFFER_SIZE);
    curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     or_default(o->connect_timeout_ms, FETCH_DEFAULT_CONNECT_MS));
    long timeout = r->timeout_s > 0 ? r->timeout_s : o->default_timeout_s;
    if (timeout > 0) curl_easy_setopt(e, CURLOPT_TIMEOUT, timeout);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT,
                     or_default(o->low_speed_limit, FETCH_DEFAULT_LOW_SPEED_LIMIT));
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME,
                     or_default(o->low_speed_time_s, FETCH_DEFAULT_LOW_SPEED_TIME));
    if (f->max_size > 0) curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)f->max_size);
    if (f->decoding)
        curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "gzip");
    else
        curl_easy_setopt(e, CURLOPT_HTTP_CONTENT_DECODING, 0L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, f);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, f->errbuf);
    if (f->guard.on) {
        curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_opensocket);
        curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, f);
    }
    set_proxy(e, r->proxy);
}

/* 0, -1 (request cannot be built, message in err) or -2 (out of memory). */
static int build_request(fetch_t *f, const fetch_opts_t *o, const fetch_req_t *r, char *err,
                         size_t errlen)
{
    int rc = check_url(f->url, err, errlen);
    if (rc == 0) rc = build_headers(f, o->default_headers, r->headers, err, errlen);
    if (rc != 0) return rc;
    f->easy = curlm_easy(f->m);
    if (!f->easy) return -2;
    set_options(f, o, r);
    return 0;
}

/* ---- lifecycle -------------------------------------------------------------- */

static void on_opened(uv_fs_t *req)
{
    fetch_t *f = req->data;
    ssize_t r = req->result;
    uv_fs_req_cleanup(req);
    if (r >= 0) f->fd = (uv_file)r;
    if (f->cancel_req)
        fail_cancel(f);
    else if (r < 0)
        fail_os(f, "creating tmp file", (long)r, true);
    else if (curlm_add(f->m, f->easy, on_curl_done, f) != 0)
        fail(f, "performing request", "cannot start the transfer", true, true, "failures");
    if (f->failed) {
        f->stage = ST_FINISHING;
        finish_io(f);
        return;
    }
    f->stage = ST_RUNNING;
}

/* The validators an earlier attempt recorded, and the kept bytes digested once (their
 * first FETCH_HEAD_SIZE bytes kept for the MIME hook). 0, or -1: start over. */
static int resume_load(fetch_t *f, int fd)
{
    char meta[sizeof f->meta];
    struct stat st;
    ssize_t n = fgetxattr(fd, RESUME_XATTR, meta, sizeof meta - 1);
    if (n <= 0 || fstat(fd, &st) < 0) return -1;
    meta[n] = '\0';
    char *etag = strchr(meta, '\n'), *lm = etag ? strchr(etag + 1, '\n') : NULL;
    if (!lm || !strchr(lm + 1, '\n')) return -1;
    *etag++ = *lm++ = '\0';
    *strchr(lm, '\n') = '\0';
    f->v_total = atoll(meta);
    if (st.st_size <= 0 || st.st_size >= f->v_total || (!*etag && !*lm)) return -1;
    snprintf(f->v_etag, sizeof f->v_etag, "%s", etag);
    snprintf(f->v_lm, sizeof f->v_lm, "%s", lm);
    unsigned char *buf = malloc(DIGEST_READ);
    uint64_t off = 0, size = (uint64_t)st.st_size;
    while (buf && off < size) {
        ssize_t r = pread(fd, buf, DIGEST_READ, (off_t)off);
        if (r <= 0) break;
        if (off < FETCH_HEAD_SIZE) {
            size_t h = FETCH_HEAD_SIZE - off < (uint64_t)r ? FETCH_HEAD_SIZE - off : (size_t)r;
            memcpy(f->head + off, buf, h);
            f->head_len = off + h;
        }
        EVP_DigestUpdate(f->sha, buf, (size_t)r);
        if (f->want) EVP_DigestUpdate(f->want, buf, (size_t)r);
        off += (uint64_t)r;
    }
    free(buf);
    if (off < size) return -1;
    f->base = f->written = size;
    return 0;
}

/* Thread pool: open (or adopt) the temp file of an earlier attempt on this host. */
static void resume_work(uv_work_t *w)
{
    fetch_t *f = w->data;
    f->work_err = 0;
    int fd = open(f->tmp_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0) {
        /* a stalled earlier holder still writes it: leave it that inode */
        close(fd);
        unlink(f->tmp_path);
        fd = open(f->tmp_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) flock(fd, LOCK_EX | LOCK_NB);
    } else if (fd >= 0 && resume_load(f, fd) < 0) {
        f->head_len = 0;
        f->base = f->written = 0;
        digest_reset(f);
        if (ftruncate(fd, 0) < 0) {
            close(fd);
            fd = -errno;
        }
    }
    if (fd < 0) f->work_err = fd == -1 ? -errno : fd;
    f->fd = fd < 0 ? -1 : fd;
}

static int add_range_headers(fetch_t *f)
{
    char line[VALIDATOR_LEN + 32];
    snprintf(line, sizeof line, "Range: bytes=%llu-", (unsigned long long)f->base);
    if (append(f, line) != 0) return -1;
    snprintf(line, sizeof line, "If-Range: %s", f->v_etag[0] ? f->v_etag : f->v_lm);
    if (append(f, line) != 0) return -1;
    curl_easy_setopt(f->easy, CURLOPT_HTTPHEADER, f->slist);
    return 0;
}

static void on_resume_opened(uv_work_t *w, int status)
{
    fetch_t *f = w->data;
    (void)status;
    if (f->fd >= 0) f->file_made = true;
    if (f->cancel_req)
        fail_cancel(f);
    else if (f->work_err)
        fail_os(f, "creating tmp file", f->work_err, true);
    else if (f->base > 0 && add_range_headers(f) != 0)
        fail(f, "creating request", "out of memory", true, true, "failures");
    else if (curlm_add(f->m, f->easy, on_curl_done, f) != 0)
        fail(f, "performing request", "cannot start the transfer", true, true, "failures");
    if (f->base > 0)
        log_debug("fetch", "resuming", "url=%s kept=%llu", log_q(log_redact_url(f->url)),
                  (unsigned long long)f->base);
    if (f->failed) {
        f->stage = ST_FINISHING;
        finish_io(f);
        return;
    }
    f->stage = ST_RUNNING;
}

static fetch_t *fetch_alloc(uv_loop_t *loop, curlm_t *m, const fetch_opts_t *opts,
                            const fetch_req_t *req, fetch_done_fn done, void *arg)
{
    fetch_t *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->loop = loop;
    f->m = m;
    f->done = done;
    f->arg = arg;
    f->on_head = req->on_head;
    f->head_arg = req->head_arg;
    f->max_size = opts->max_file_size;
    f->fd = -1;
    f->total = -1;
    f->req.data = f;
    f->url = strdup(req->url ? req->url : "");
    f->tmp_path = strdup(req->tmp_path ? req->tmp_path : "");
    netguard_setup(&f->guard, opts->block_private_networks, opts->allow_cidrs, opts->n_allow_cidrs);
    f->resume_req = req->resume;
    f->sha = EVP_MD_CTX_new();
    bool md5 = req->checksum && strncmp(req->checksum, "md5:", 4) == 0;
    if (md5) f->want = EVP_MD_CTX_new();
    if (req->checksum) f->checksum = strdup(req->checksum);
    if (!f->sha || (md5 && !f->want) || (req->checksum && !f->checksum)) {
        fetch_free(f);
        return NULL;
    }
    digest_reset(f);
    if (!f->url || !f->tmp_path) {
        fetch_free(f);
        return NULL;
    }
    return f;
}

fetch_t *fetch_start(uv_loop_t *loop, curlm_t *m, const fetch_opts_t *opts, const fetch_req_t *req,
                     fetch_done_fn done, void *arg)
{
    fetch_t *f = fetch_alloc(loop, m, opts, req, done, arg);
    if (!f) return NULL;
    char err[600] = "";
    int rc = build_request(f, opts, req, err, sizeof err);
    if (rc == -2) {
        fetch_free(f);
        return NULL;
    }
    if (rc == -1) { /* nothing to open: report through the (async) unlink */
        fail(f, "creating request", err, false, false, "");
        f->stage = ST_FINISHING;
        if (uv_fs_unlink(loop, &f->req, f->tmp_path, on_unlinked) == 0) return f;
        fetch_free(f);
        return NULL;
    }
    if (req->resume) {
        f->stage = ST_OPENING;
        f->work.data = f;
        if (uv_queue_work(loop, &f->work, resume_work, on_resume_opened) == 0) return f;
        fetch_free(f);
        return NULL;
    }
    if (req->mem_limit > 0) { /* no temp file unless the body outgrows mem_limit */
        f->in_memory = true;
        f->mem_limit = req->mem_limit;
        if (curlm_add(m, f->easy, on_curl_done, f) == 0) {
            f->stage = ST_RUNNING;
            return f;
        }
        fail(f, "performing request", "cannot start the transfer", true, true, "failures");
        f->stage = ST_FINISHING;
        if (uv_fs_unlink(loop, &f->req, f->tmp_path, on_unlinked) == 0) return f;
        fetch_free(f);
        return NULL;
    }
    f->stage = ST_OPENING;
    int flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
    if (uv_fs_open(loop, &f->req, f->tmp_path, flags, 0644, on_opened) == 0) return f;
    fetch_free(f);
    return NULL;
}

void fetch_set_max_speed(fetch_t *f, int64_t bytes_per_s)
{
    curl_easy_setopt(f->easy, CURLOPT_MAX_RECV_SPEED_LARGE, (curl_off_t)bytes_per_s);
}

void fetch_cancel(fetch_t *f)
{
    if (f->stage == ST_FINISHING) return; /* the outcome is already decided */
    if (f->stage == ST_OPENING || f->in_curl) {
        f->cancel_req = true; /* on_opened / the write callback finish the job */
        return;
    }
    curlm_remove(f->m, f->easy);
    fail_cancel(f);
    f->stage = ST_FINISHING;
    finish_io(f);
}

void fetch_progress(const fetch_t *f, uint64_t *received, int64_t *total, uint64_t *kept)
{
    if (received) *received = f->base + f->received;
    if (total) *total = f->total;
    if (kept) *kept = f->base;
}
