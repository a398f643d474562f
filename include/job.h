/* job: the job model (§3.1 / §4.3 of the reference), request validation, ids,
 * the debug rendering and the callback payload. No I/O here. */
#ifndef DOWNLOADER_JOB_H
#define DOWNLOADER_JOB_H

#include <stdbool.h>
#include <stddef.h>

#define JOB_ID_LEN 14
#define JOB_DEFAULT_MAX_RETRIES 2
#define AGGR_DEFAULT_LIMIT 4

typedef struct {
    char *name;
    char *value;
} header_t;

typedef struct {
    header_t *items;
    size_t n;
} headers_t;

typedef enum { DL_PENDING = 0, DL_IN_PROGRESS, DL_SUCCESS, DL_FAILED } dl_state_t;
/* CB_NONE is the empty CallbackState ("" until the download finishes). */
typedef enum { CB_NONE = 0, CB_PENDING, CB_IN_PROGRESS, CB_FAILED } cb_state_t;

typedef struct job {
    char id[JOB_ID_LEN + 1];
    /* client fields; strings are heap copies, NULL when absent */
    char *url;
    char *aggr_id;
    char *callback_url;  /* legacy: implies type http */
    char *callback_type; /* only when callback_url is absent */
    char *callback_dst;
    char *extra;
    char *mime_type;
    int max_retries; /* -1: not given (default JOB_DEFAULT_MAX_RETRIES) */
    bool extract_image_size;
    long download_timeout; /* seconds, 0 = not given */
    headers_t request_headers;
    char *s3_bucket;
    char *s3_region;
    char *checksum; /* "sha256:<64 hex>" or "md5:<32 hex>" (lower case), NULL when not asked */
    /* aggregation fields of the request */
    long aggr_limit;
    double aggr_rate;         /* starts per second, 0 = no rate limit (also when absent) */
    char *aggr_proxy;         /* NULL when absent, "" allowed */
    long long aggr_bandwidth; /* bytes/s for the whole aggregation, 0 = not given */
    /* state, as stored in Redis */
    dl_state_t download_state;
    int download_count;
    char *download_meta; /* final download error text */
    cb_state_t callback_state;
    int callback_count;
    char *callback_meta;
    char *download_url; /* processor's base URL at success (never the joined URL) */
    int response_code;
    char *image_size; /* "WxH" or NULL */
    char *sha256;     /* of the stored file (64 hex), NULL before success */
    long long size;   /* of the stored file, bytes */
    bool tried;       /* claimed before (an earlier attempt may have kept a partial file) */
} job_t;

/* Result of job_parse(). */
typedef enum { JOB_OK = 0, JOB_ERR_JOB, JOB_ERR_AGGR } job_err_t;

/* Validates a POST /download body as the reference does (§3.1.1 then §3.1.2, first
 * failure wins). On error writes the complete response message into err, e.g.
 * "Error unmarshalling body '<body>' to Job: URL must be a string" or
 * "... to Aggregation: Aggregation limit must be greater than 0". The job's id is
 * left empty. Returns JOB_OK and fills *job (free with job_free) on success; on error
 * the job is freed and zeroed. The message is cut to errlen: 10 * len + 512 bytes always
 * holds it whole (Go-quoted URLs and %!s(float64=…) renderings can outgrow the body). */
job_err_t job_parse(const char *body, size_t len, job_t *job, char *err, size_t errlen);

/* Only the Aggregation half of job_parse (§3.1.2), for callers that must run it after
 * id generation as the reference does. On success replaces job->aggr_limit,
 * job->aggr_rate, job->aggr_proxy and job->aggr_bandwidth and touches nothing else; on failure
 * returns JOB_ERR_AGGR with "Error unmarshalling body '<body>' to Aggregation: <reason>" in err
 * and leaves the job as it was. Same err sizing as job_parse. */
job_err_t job_parse_aggr(const char *body, size_t len, job_t *job, char *err, size_t errlen);

/* Frees every heap field and zeroes the struct. */
void job_free(job_t *job);

/* Fills id with 14 base64url characters from 10 bytes of getrandom(2), which is read
 * for 64 ids at a time. 0 or -errno. */
int job_new_id(char id[JOB_ID_LEN + 1]);

/* True when the job has a callback (callback_url or callback_dst non-empty). */
bool job_has_callback(const job_t *job);

/* Effective max retries (the job's, or the default). */
int job_max_retries(const job_t *job);

/* Reference debug rendering (§3.1 <job-string>) into buf. Returns buf. */
char *job_to_string(const job_t *job, char *buf, size_t len);

/* State names as stored in Redis ("Pending", "InProgress", "Success", "Failed", ""),
 * and back (unknown text gives -1). */
const char *job_dl_state_name(dl_state_t s);
const char *job_cb_state_name(cb_state_t s);
int job_dl_state_parse(const char *s);
int job_cb_state_parse(const char *s);

/* Request headers as a JSON object text (malloc'd, "null" when none) and back.
 * job_headers_from_json returns 0, or -1 when the text is not an object of strings. */
char *job_headers_to_json(const headers_t *h);
int job_headers_from_json(const char *json, headers_t *h);
void job_headers_free(headers_t *h);

/* download_url of the callback (§7.4): base joined with "<id[0:3]>/<id>", path
 * cleaned, query and fragment kept. Returns malloc'd string, NULL on a bad base. */
char *job_file_url(const char *base, const char *id);

/* Whether s[0:len) can be a job id (1..64 of [A-Za-z0-9_-]; ours are 14 base64url). */
bool job_id_valid(const char *s, size_t len);

/* Whether text is a valid checksum field: "sha256:" + 64 or "md5:" + 32 hex digits. */
bool job_checksum_valid(const char *text);

/* Callback payload (§7.3), exactly the 10 keys, as malloc'd JSON (len in *len); a job
 * that asked for a checksum also gets "sha256" and "size" of the stored file.
 * Returns NULL when the download state is neither Success nor Failed (W14). */
char *job_callback_payload(const job_t *job, size_t *len);

#endif
