/* fuzz_job: libFuzzer target for job_parse (the POST /download body validation, §3.1)
 * and what the API and notifier do with a parsed job: the debug rendering, the
 * aggregation re-parse, the header JSON round trip, the download_url and the
 * callback payload. Input: the raw request body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"

static void use_job(job_t *job, const char *body, size_t len, char *err, size_t errlen)
{
    char buf[4096];
    job_to_string(job, buf, sizeof buf);
    job_parse_aggr(body, len, job, err, errlen);
    char *hj = job_headers_to_json(&job->request_headers);
    headers_t h = {0};
    if (hj && job_headers_from_json(hj, &h) == 0) job_headers_free(&h);
    free(hj);
    memcpy(job->id, "NSb4FOAs9fVaQw", JOB_ID_LEN + 1);
    char *fu = job_file_url("http://127.0.0.1:8000/files", job->id);
    free(fu);
    job->download_state = DL_FAILED;
    size_t plen = 0;
    free(job_callback_payload(job, &plen));
    job_has_callback(job);
    job_max_retries(job);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t errlen = 10 * size + 512; /* what the API gives it */
    char *err = malloc(errlen);
    job_t job;
    memset(&job, 0, sizeof job);
    if (job_parse((const char *)data, size, &job, err, errlen) == JOB_OK)
        use_job(&job, (const char *)data, size, err, errlen);
    job_free(&job);
    free(err);
    return 0;
}
