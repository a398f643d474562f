/* s3: an asynchronous client for S3-compatible object storage (AWS S3, MinIO, ...)
 * on a libuv loop: uploads that stream from a file (single PUT, or a multipart upload
 * above a threshold) and object deletion, signed by libcurl (CURLOPT_AWS_SIGV4). */
#ifndef DOWNLOADER_S3_H
#define DOWNLOADER_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define S3_MIN_PART_SIZE (5ULL << 20) /* S3's minimum size of a part (but the last) */
#define S3_MAX_PART_SIZE (5ULL << 30) /* and its maximum, also of a single PUT */
#define S3_MAX_PARTS 10000

typedef struct s3 s3_t;
typedef struct s3_op s3_op_t;

typedef struct {
    const char *endpoint;   /* "http[s]://host[:port][/path]"; NULL or "": AWS
                               (https://s3.<region>.amazonaws.com) */
    bool path_style;        /* <endpoint>/<bucket>/<key>, else <bucket>.<host>/<key> */
    const char *access_key; /* NULL: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
                               AWS_SESSION_TOKEN from the environment */
    const char *secret_key;
    bool require_credentials;     /* s3_new fails when none are found */
    uint64_t multipart_threshold; /* files larger than this use a multipart upload */
    uint64_t part_size;           /* bytes per part (grown to stay within S3_MAX_PARTS) */
    long connect_timeout_ms;
    long low_speed_limit;      /* a request slower than this (bytes/s) ... */
    long low_speed_time_s;     /* ... for this long fails (retriable) */
    long max_host_connections; /* per host, 0 = unlimited; more transfers wait in curl */
} s3_opts_t;

/* Where an object is. Bucket and region are checked (S3 naming rules) before use. */
typedef struct {
    const char *bucket;
    const char *region;
    const char *key;
} s3_loc_t;

typedef struct {
    bool ok;
    bool retriable;   /* 5xx, throttling, request timeouts, transport errors */
    bool internal;    /* our side failed (reading the local file) */
    bool cancelled;   /* s3_cancel */
    long status;      /* last HTTP status, 0 when none */
    char code[64];    /* S3 error code ("AccessDenied", "NoSuchBucket", ...) or "" */
    char detail[768]; /* e.g. "AccessDenied: Access Denied (bucket b1, region eu-west-1)" */
} s3_result_t;

/* Called once per operation, always from the loop (never from inside the call that
 * started or cancelled it). */
typedef void (*s3_done_fn)(const s3_result_t *res, void *arg);

/* Strings are copied. Credentials come from opts, else from the environment; the
 * client works without any, but every request then fails (s3_has_credentials).
 * NULL on allocation failure or an invalid endpoint (err says which). */
s3_t *s3_new(uv_loop_t *loop, const s3_opts_t *opts, char *err, size_t errlen);
bool s3_has_credentials(const s3_t *c);

/* Uploads the file at path to loc. content_type: NULL or "" sends
 * application/octet-stream. headers: NULL-terminated "x-amz-meta-k: v" lines or NULL.
 * The file is read with uv_fs_read (thread pool) while curl waits, never whole into
 * memory. A failed multipart upload is aborted. NULL only when out of memory. */
s3_op_t *s3_put_file(s3_t *c, const s3_loc_t *loc, const char *path, const char *content_type,
                     const char *const *headers, s3_done_fn done, void *arg);

/* Deletes an object; a missing object (or bucket) counts as deleted. */
s3_op_t *s3_delete_object(s3_t *c, const s3_loc_t *loc, s3_done_fn done, void *arg);

/* Aborts an operation; done then reports cancelled (a multipart upload is aborted at
 * the server first). */
void s3_cancel(s3_op_t *op);

/* Operations in flight. */
int s3_active(const s3_t *c);

/* Closes the client once no operation is in flight any more (running ones are
 * cancelled and reported first); closed is called when all is released. */
void s3_close(s3_t *c, void (*closed)(void *arg), void *arg);

/* URL of a bucket (no trailing slash) and of an object in it, as addressed by this
 * client: path style "<endpoint>/<bucket>", virtual host "https://<bucket>.s3.<region>.
 * amazonaws.com". 0, or -1 when the bucket or region is invalid or buf is too small. */
int s3_bucket_url(const s3_t *c, const char *bucket, const char *region, char *buf, size_t len);
int s3_object_url(const s3_t *c, const s3_loc_t *loc, char *buf, size_t len);

/* Object key of a job: "<id[0:3]>/<id>", as the filesystem store's relative path. */
void s3_job_key(char *buf, size_t len, const char *id);

/* True when a name satisfies S3's bucket naming rules / a region looks like one. */
bool s3_valid_bucket(const char *bucket);
bool s3_valid_region(const char *region);

/* A job's extra as object metadata (§6.7): it must be a JSON object (or empty: no
 * metadata); string members become "x-amz-meta-<key>: <value>", numbers their
 * truncated integer, other members are dropped. Keys must be HTTP tokens and values
 * printable ASCII. Returns a NULL-terminated malloc'd list (free with s3_headers_free;
 * NULL list for no metadata) and 0, or -1 with the reason in err. */
int s3_meta_from_extra(const char *extra, char ***headers, char *err, size_t errlen);
void s3_headers_free(char **headers);

#endif
