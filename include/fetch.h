/* fetch: one download over curlm. Builds the request (§6.5: merged headers, gzip,
 * redirects, proxy, timeouts, size cap), streams the body into the temp file with
 * async uv_fs writes (pausing curl while a write is in flight), hands the first
 * 1,024 bytes to a hook (MIME check) and classifies failures as in §5.5. */
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
    size_t mem_limit; /* > 0: keep a body of at most this many bytes in memory
                         (res.mem) instead of a temp file; a larger body switches
                         to the temp file. 0: always stream to tmp_path */
} fetch_req_t;

typedef struct {
    bool ok;
    bool retriable;
    bool internal;
    bool cancelled;      /* aborted by fetch_cancel: never counts as an attempt */
    long response_code;  /* final HTTP status, 0 when none */
    long retry_after_ms; /* Retry-After of a 408/429/503 answer, 0 when none */
    uint64_t bytes;      /* body bytes written */
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

/* Aborts; done is then called with cancelled = true and retriable = true. */
void fetch_cancel(fetch_t *f);

/* Bytes received so far and the expected total (-1 when unknown). */
void fetch_progress(const fetch_t *f, uint64_t *received, int64_t *total);

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
