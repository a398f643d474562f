/* fetch: one download over curlm. Builds the request (§6.5: merged headers, gzip,
 * redirects, proxy, timeouts, size cap), streams the body into the temp file with
 * async uv_fs writes (pausing curl while a write is in flight), hands the first
 * 1,024 bytes of the file to a hook (MIME check), digests the body while it streams
 * (SHA-256, and MD5 when the job's checksum asks for it) and classifies failures as
 * in §5.5. An attempt that ends early keeps its temp file when the origin can resume
 * it (Accept-Ranges: bytes and a strong ETag or a Last-Modified, stored in the
 * file's user.downloader.resume xattr); a later attempt with `resume` asks for the
 * rest with Range / If-Range. */
#ifndef DOWNLOADER_FETCH_H
#define DOWNLOADER_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "curlm.h"
#include "job.h"

#define FETCH_HEAD_SIZE 1024

typedef struct {
    long connect_timeout_ms;          /* always set (default 10000) */
    long default_timeout_s;           /* whole-request bound when the job gives none; 0 = none */
    long low_speed_limit;             /* bytes/s below which ... (default 1) */
    long low_speed_time_s;            /* ... for this long aborts (default 60) */
    int64_t max_file_size;            /* bytes, 0 = unlimited; larger bodies fail for good */
    const headers_t *default_headers; /* processor.request_headers */
    /* SSRF guard (processor.block_private_networks / allow_cidrs): when on, every
     * address curl connects to (origin, redirect target or proxy) must be public or
     * inside an allowed CIDR, else the download fails for good. The CIDR strings are
     * parsed (copied) by fetch_start; config validates them, and should one still be
     * invalid the allow list is dropped (fails closed). */
    bool block_private_networks;
    const char *const *allow_cidrs;
    size_t n_allow_cidrs;
} fetch_opts_t;

/* Hook called once with the first min(FETCH_HEAD_SIZE, body size) bytes, when they
 * are complete (or the body ended successfully shorter). Return 0 to go on, or -1
 * after writing a detail message into err to fail the download for good; `phase` is
 * the §5.5 phase text to use (e.g. "validating mime type") and `stat` the stat key. */
typedef int (*fetch_head_fn)(void *arg, const unsigned char *head, size_t len, char *err,
                             size_t errlen, const char **phase, const char **stat);

typedef struct {
    const char *url;
    const char *proxy;        /* aggregation proxy; NULL or "" = environment proxies */
    const headers_t *headers; /* the job's request_headers (may be NULL) */
    long timeout_s;           /* the job's download_timeout, 0 = opts default */
    const char *tmp_path;     /* created/truncated; removed again on any failure */
    fetch_head_fn on_head;    /* NULL when no check is needed */
    void *head_arg;
    size_t mem_limit;     /* > 0: keep a body of at most this many bytes in memory
                             (res.mem) instead of a temp file; a larger body switches
                             to the temp file. 0: always stream to tmp_path */
    const char *checksum; /* "sha256:<hex>" / "md5:<hex>" the body must have; NULL = none */
    bool resume;          /* an earlier attempt may have kept tmp_path: open it on the thread pool
                             (lock, validators, digest of the kept bytes) and ask for the rest.
                             mem_limit is then ignored */
} fetch_req_t;

typedef struct {
    bool ok;
    bool retriable;
    bool internal;
    bool cancelled;      /* aborted by fetch_cancel: never counts as an attempt */
    bool timed_out;      /* the transfer hit its timeout or the low-speed limit */
    long response_code;  /* final HTTP status, 0 when none */
    long retry_after_ms; /* Retry-After of a 408/429/503 answer, 0 when none */
    bool restart;        /* the origin refused the resume (416, or a Content-Range that
                            does not fit): start again without it, not an attempt */
    bool partial_kept;   /* failed, and the temp file stays for a later attempt to resume */
    uint64_t bytes;      /* size of the file: kept bytes + body bytes of this attempt */
    uint64_t kept;       /* bytes this attempt resumed from (kept by earlier attempts) */
    char sha256[65];     /* ok: hex SHA-256 of the whole file */
    char error[1024];    /* "Error while <phase>, <detail>, retriable: <b>, internal: <b>" */
    char stat[48];       /* stat counter to bump ("download.response.404"), "" for none */
    unsigned char *mem;  /* ok and the body stayed in memory (see mem_limit): the body,
                            owned by the done callback (free it); no temp file exists */
    size_t mem_len;
} fetch_result_t;

typedef struct fetch fetch_t;
typedef void (*fetch_done_fn)(fetch_t *f, const fetch_result_t *res, void *arg);

/* Starts a download. `done` is always called exactly once, asynchronously, after the
 * temp file is closed (and removed unless res->ok). The fetch_t is freed after done
 * returns. Returns NULL only on allocation failure. Strings in req are copied. */
fetch_t *fetch_start(uv_loop_t *loop, curlm_t *m, const fetch_opts_t *opts, const fetch_req_t *req,
                     fetch_done_fn done, void *arg);

/* Caps the transfer's receive speed (CURLOPT_MAX_RECV_SPEED_LARGE), bytes/s; 0 = none.
 * Takes effect at once, also in the middle of a transfer. */
void fetch_set_max_speed(fetch_t *f, int64_t bytes_per_s);

/* Aborts; done is then called with cancelled = true and retriable = true. */
void fetch_cancel(fetch_t *f);

/* Bytes of the file so far (kept + received), the expected total (-1 when unknown)
 * and the bytes kept from earlier attempts. */
void fetch_progress(const fetch_t *f, uint64_t *received, int64_t *total, uint64_t *kept);

/* Merges default and job headers as §6.5 says (job replaces default, names compared
 * case-insensitively, canonical capitalisation) into a curl_slist-ready list of
 * "Name: value" strings (malloc'd array, count in *n; free with fetch_headers_free).
 * Exposed for tests. */
char **fetch_merge_headers(const headers_t *defaults, const headers_t *job, size_t *n);
void fetch_headers_free(char **list, size_t n);

/* Formats the §5.5 error text. */
void fetch_format_error(char *buf, size_t len, const char *phase, const char *detail,
                        bool retriable, bool internal);

#endif
