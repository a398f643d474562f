/* GET /metrics: runs a few jobs through `downloader all` (successes, a 404, a retried
 * 503, a job parked in a slow aggregation whose id needs escaping), then parses the
 * output strictly as Prometheus text format 0.0.4: every line a comment or a sample
 * `name{labels} value`, names and label names well formed, label values properly
 * escaped, TYPE before the samples of its family, each family in one block, no
 * duplicate series, histogram buckets cumulative and ending with +Inf equal to _count.
 * Then checks the values against what happened, that the standard process_* series
 * come per process (this one and a second one known only by its heartbeat), and that
 * Redis going away still gives a parseable answer with downloader_redis_up 0. */
#include <ctype.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "metrics.h"

static h_env_t env;

static int setup(void **state)
{
    (void)state;
    if (h_env_start(&env, "\"shutdown_grace\": 1", NULL, NULL) < 0) return -1;
    return h_env_run(&env, "all") > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    h_env_stop(&env);
    return 0;
}

/* ---------- a strict parser of the exposition format ---------- */

#define MAX_SAMPLES 4096
#define MAX_FAMILIES 256

typedef struct {
    char name[128];
    char labels[1024]; /* canonical "k=v\x1f..." with values unescaped, le excluded */
    char le[32];
    double value;
} sample_t;

typedef struct {
    char name[128];
    char type[16];
    bool help, closed;
} fam_t;

typedef struct {
    sample_t s[MAX_SAMPLES];
    size_t n;
    fam_t f[MAX_FAMILIES];
    size_t nf;
    long current; /* family whose block is open, -1 none */
} expo_t;

static bool is_name(const char *p, size_t len, bool colon)
{
    if (len == 0) return false;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        bool ok = isalpha((unsigned char)c) || c == '_' || (colon && c == ':') ||
                  (i > 0 && isdigit((unsigned char)c));
        if (!ok) return false;
    }
    return true;
}

static fam_t *fam_find(expo_t *e, const char *name)
{
    for (size_t i = 0; i < e->nf; i++)
        if (strcmp(e->f[i].name, name) == 0) return &e->f[i];
    return NULL;
}

/* The family a sample belongs to: histogram samples carry _bucket/_sum/_count. */
static fam_t *fam_of(expo_t *e, const char *sample)
{
    fam_t *f = fam_find(e, sample);
    if (f) return f;
    static const char *suffixes[] = {"_bucket", "_sum", "_count"};
    for (size_t k = 0; k < 3; k++) {
        size_t n = strlen(sample), m = strlen(suffixes[k]);
        if (n <= m || strcmp(sample + n - m, suffixes[k]) != 0) continue;
        char base[128];
        snprintf(base, sizeof base, "%.*s", (int)(n - m), sample);
        f = fam_find(e, base);
        if (f && strcmp(f->type, "histogram") == 0) return f;
    }
    return NULL;
}

static void parse_comment(expo_t *e, const char *line)
{
    char kw[8], name[128], rest[512] = "";
    int n = sscanf(line, "# %7s %127s %511[^\n]", kw, name, rest);
    if (n < 2 || (strcmp(kw, "HELP") != 0 && strcmp(kw, "TYPE") != 0)) return; /* free comment */
    if (!is_name(name, strlen(name), true)) fail_msg("bad metric name in: %s", line);
    fam_t *f = fam_find(e, name);
    if (!f) {
        assert_true(e->nf < MAX_FAMILIES);
        f = &e->f[e->nf++];
        snprintf(f->name, sizeof f->name, "%s", name);
    }
    if (f->closed) fail_msg("family %s continues after another family", name);
    if (strcmp(kw, "HELP") == 0) {
        if (f->help) fail_msg("second HELP for %s", name);
        f->help = true;
    } else {
        if (f->type[0]) fail_msg("second TYPE for %s", name);
        if (strcmp(rest, "counter") && strcmp(rest, "gauge") && strcmp(rest, "histogram") &&
            strcmp(rest, "summary") && strcmp(rest, "untyped"))
            fail_msg("bad type in: %s", line);
        snprintf(f->type, sizeof f->type, "%s", rest);
    }
    if (e->current >= 0 && &e->f[e->current] != f) e->f[e->current].closed = true;
    e->current = f - e->f;
}

/* Parses {k="v",...}: returns the position after '}', fills the canonical label string
 * (le kept apart) or fails the test. */
static const char *parse_labels(const char *p, sample_t *s)
{
    assert_true(*p == '{');
    p++;
    char keys[32][64];
    size_t nk = 0, off = 0;
    while (*p != '}') {
        const char *k = p;
        while (*p && *p != '=')
            p++;
        if (!is_name(k, (size_t)(p - k), false) || p - k >= 64)
            fail_msg("bad label name near %s", k);
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)(p - k), k);
        for (size_t i = 0; i < nk; i++)
            if (strcmp(keys[i], key) == 0) fail_msg("label %s twice", key);
        snprintf(keys[nk++], 64, "%s", key);
        if (p[0] != '=' || p[1] != '"') fail_msg("label %s: value not quoted", key);
        p += 2;
        char val[512];
        size_t vn = 0;
        for (; *p != '"'; p++) {
            if (!*p || *p == '\n') fail_msg("unterminated label value for %s", key);
            char c = *p;
            if (c == '\\') {
                p++;
                c = *p == 'n' ? '\n' : *p;
                if (*p != 'n' && *p != '\\' && *p != '"') fail_msg("bad escape \\%c", *p);
            }
            if (vn + 1 < sizeof val) val[vn++] = c;
        }
        val[vn] = 0;
        p++;
        if (strcmp(key, "le") == 0)
            snprintf(s->le, sizeof s->le, "%.31s", val);
        else
            off += (size_t)snprintf(s->labels + off, sizeof s->labels - off, "%s=%s\x1f", key, val);
        if (*p == ',')
            p++;
        else if (*p != '}')
            fail_msg("expected , or } near %s", p);
    }
    return p + 1;
}

static void parse_sample(expo_t *e, const char *line)
{
    assert_true(e->n < MAX_SAMPLES);
    sample_t *s = &e->s[e->n];
    memset(s, 0, sizeof *s);
    const char *p = line;
    while (*p && *p != '{' && *p != ' ')
        p++;
    if (!is_name(line, (size_t)(p - line), true)) fail_msg("bad sample name: %s", line);
    snprintf(s->name, sizeof s->name, "%.*s", (int)(p - line), line);
    if (*p == '{') p = parse_labels(p, s);
    if (*p != ' ') fail_msg("no space before the value: %s", line);
    p++;
    char *end;
    if (strcmp(p, "+Inf") == 0 || strcmp(p, "-Inf") == 0 || strcmp(p, "NaN") == 0)
        s->value = strcmp(p, "NaN") == 0 ? NAN : (p[0] == '+' ? INFINITY : -INFINITY);
    else {
        s->value = strtod(p, &end);
        if (end == p || *end) fail_msg("bad value (or a timestamp we never send): %s", line);
    }
    fam_t *f = fam_of(e, s->name);
    if (!f || !f->type[0]) fail_msg("sample before its TYPE: %s", line);
    if (f->closed || e->current != f - e->f)
        fail_msg("family %s is not one block: %s", f->name, line);
    if (strcmp(f->type, "counter") == 0 && (s->value < 0 || !strstr(s->name, "_total")))
        fail_msg("counter sample: %s", line);
    bool hist = strcmp(f->type, "histogram") == 0;
    if (hist && strcmp(s->name, f->name) == 0)
        fail_msg("histogram sample without suffix: %s", line);
    if (s->le[0] && !(hist && strstr(s->name, "_bucket")))
        fail_msg("le outside a bucket: %s", line);
    if (hist && strstr(s->name, "_bucket") && !s->le[0]) fail_msg("bucket without le: %s", line);
    for (size_t i = 0; i < e->n; i++)
        if (strcmp(e->s[i].name, s->name) == 0 && strcmp(e->s[i].labels, s->labels) == 0 &&
            strcmp(e->s[i].le, s->le) == 0)
            fail_msg("duplicate series: %s", line);
    e->n++;
}

/* Checks every histogram series: le ascending, cumulative, +Inf last and == _count. */
static void check_histograms(const expo_t *e)
{
    for (size_t k = 0; k < e->nf; k++) {
        const fam_t *f = &e->f[k];
        if (strcmp(f->type, "histogram") != 0) continue;
        char bucket[160], count[160];
        snprintf(bucket, sizeof bucket, "%s_bucket", f->name);
        snprintf(count, sizeof count, "%s_count", f->name);
        for (size_t i = 0; i < e->n; i++) {
            if (strcmp(e->s[i].name, count) != 0) continue;
            double last_le = -INFINITY, last = 0;
            bool inf = false;
            int buckets = 0;
            for (size_t j = 0; j < e->n; j++) {
                const sample_t *b = &e->s[j];
                if (strcmp(b->name, bucket) != 0 || strcmp(b->labels, e->s[i].labels) != 0)
                    continue;
                if (inf) fail_msg("%s: bucket after +Inf", f->name);
                double le = strcmp(b->le, "+Inf") == 0 ? INFINITY : strtod(b->le, NULL);
                if (le <= last_le) fail_msg("%s: le not ascending", f->name);
                if (b->value < last) fail_msg("%s: buckets not cumulative", f->name);
                last_le = le;
                last = b->value;
                inf = isinf(le);
                buckets++;
            }
            if (!inf) fail_msg("%s: no +Inf bucket", f->name);
            if (last != e->s[i].value)
                fail_msg("%s: +Inf bucket %g != _count %g", f->name, last, e->s[i].value);
            assert_true(buckets >= 2);
        }
    }
}

static void expo_parse(expo_t *e, char *text)
{
    memset(e, 0, sizeof *e);
    e->current = -1;
    size_t len = strlen(text);
    assert_true(len > 0 && text[len - 1] == '\n');
    for (char *line = text, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = 0;
        if (strchr(line, '\r')) fail_msg("CR in output");
        if (line[0] == '#')
            parse_comment(e, line);
        else if (line[0])
            parse_sample(e, line);
    }
    check_histograms(e);
}

/* Sum of a family's samples whose canonical labels contain every "k=v" given. */
static double value_of(const expo_t *e, const char *name, const char *const *want)
{
    double sum = 0;
    for (size_t i = 0; i < e->n; i++) {
        if (strcmp(e->s[i].name, name) != 0) continue;
        bool ok = true;
        for (size_t k = 0; want && want[k] && ok; k++) {
            char needle[600];
            snprintf(needle, sizeof needle, "%s\x1f", want[k]);
            ok = strstr(e->s[i].labels, needle) != NULL;
        }
        if (ok) sum += e->s[i].value;
    }
    return sum;
}

static bool has_family(const expo_t *e, const char *name, const char *type)
{
    for (size_t i = 0; i < e->nf; i++)
        if (strcmp(e->f[i].name, name) == 0) return strcmp(e->f[i].type, type) == 0;
    return false;
}

static char *scrape(char *ctype, size_t ctlen)
{
    char url[256];
    h_resp_t r;
    h_api_url(&env, url, sizeof url, "/metrics");
    assert_int_equal(h_http("GET", url, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    const char *ct = strcasestr(r.headers, "content-type:");
    assert_non_null(ct);
    snprintf(ctype, ctlen, "%.*s", (int)strcspn(ct, "\r\n"), ct);
    char *body = r.body;
    r.body = NULL;
    h_resp_free(&r);
    return body;
}

/* ---------- tests ---------- */

static void test_escape(void **state)
{
    (void)state;
    char out[64];
    metrics_escape(out, sizeof out, "a\"b\\c\nd");
    assert_string_equal(out, "a\\\"b\\\\c\\nd");
    metrics_escape(out, 4, "abcdef");
    assert_string_equal(out, "a");
}

static void post(const char *path, const char *aggr, int limit, char *id)
{
    char url[512], cb[256], body[2048];
    h_origin_url(&env, url, sizeof url, path);
    h_origin_url(&env, cb, sizeof cb, "/callback/m");
    snprintf(body, sizeof body,
             "{\"url\":\"%s\",\"aggr_id\":\"%s\",\"aggr_limit\":%d,\"callback_url\":\"%s\","
             "\"max_retries\":1}",
             url, aggr, limit, cb);
    assert_int_equal(h_post_job(&env, body, id), 201);
}

typedef struct {
    expo_t *e;
    const char *name;
    const char *const *labels;
    double min;
} wait_t;

static bool reached(void *arg)
{
    wait_t *w = arg;
    char ct[256];
    char *body = scrape(ct, sizeof ct);
    expo_parse(w->e, body);
    free(body);
    return value_of(w->e, w->name, w->labels) >= w->min;
}

static void test_metrics_format_and_values(void **state)
{
    (void)state;
    char id[16], slow_a[16], slow_b[16];
    for (int i = 0; i < 5; i++)
        post("/data/1000", "m-ok", 2, id);
    post("/status/404", "m-bad", 1, id);
    assert_int_equal(h_origin_post(&env, "/_script",
                                   "{\"path\": \"/data/77\", \"responses\": [{\"status\": 503}]}"),
                     200);
    post("/data/77", "m-retry", 1, id);
    /* a slow aggregation whose id needs escaping: one running, one waiting */
    const char *weird = "we\\\"ird\\\\agg";
    post("/data/1000?chunk=1&chunk_delay_ms=500", weird, 1, slow_a);
    post("/data/1000?chunk=1&chunk_delay_ms=500", weird, 1, slow_b);
    assert_int_equal(h_post_job(&env, "{}", NULL), 400);

    static expo_t e;
    const char *delivered[] = {"backend=http", "outcome=delivered", NULL};
    wait_t w = {&e, "downloader_callbacks_total", delivered, 7};
    assert_true(h_wait_for(reached, &w, 30000));
    const char *running[] = {"aggr=we\"ird\\agg", NULL};
    wait_t w2 = {&e, "downloader_aggregation_inflight_downloads", running, 1};
    assert_true(h_wait_for(reached, &w2, 15000));
    wait_t w3 = {&e, "downloader_downloads_inflight", NULL, 1}; /* as of the next heartbeat */
    assert_true(h_wait_for(reached, &w3, 15000));

    char ct[256];
    char *body = scrape(ct, sizeof ct);
    assert_non_null(strstr(ct, "text/plain; version=0.0.4"));
    expo_parse(&e, body);
    free(body);

    const char *st201[] = {"status=201", "component=api", NULL};
    const char *st400[] = {"status=400", NULL};
    assert_true(value_of(&e, "downloader_jobs_enqueued_total", st201) >= 9);
    assert_true(value_of(&e, "downloader_jobs_enqueued_total", st400) >= 1);
    const char *ok[] = {"outcome=success", NULL}, *bad[] = {"outcome=failed", NULL},
               *retried[] = {"outcome=retried", NULL};
    assert_true(value_of(&e, "downloader_downloads_total", ok) >= 6);
    assert_true(value_of(&e, "downloader_downloads_total", bad) >= 1);
    assert_true(value_of(&e, "downloader_downloads_total", retried) >= 1);
    const char *c2[] = {"class=2xx", NULL}, *c4[] = {"class=4xx", NULL},
               *c5[] = {"class=5xx", NULL};
    assert_true(value_of(&e, "downloader_download_responses_total", c2) >= 6);
    assert_true(value_of(&e, "downloader_download_responses_total", c4) >= 1);
    assert_true(value_of(&e, "downloader_download_responses_total", c5) >= 1);
    assert_true(value_of(&e, "downloader_download_duration_seconds_count", ok) ==
                value_of(&e, "downloader_downloads_total", ok));
    const char *http[] = {"backend=http", NULL};
    assert_true(value_of(&e, "downloader_callback_duration_seconds_count", http) >= 7);
    assert_true(has_family(&e, "downloader_download_duration_seconds", "histogram"));
    assert_true(has_family(&e, "downloader_callback_duration_seconds", "histogram"));
    assert_true(has_family(&e, "downloader_redis_reconnects_total", "counter"));
    assert_true(value_of(&e, "downloader_downloads_inflight", NULL) >= 1);
    const char *ready[] = {"aggr=we\"ird\\agg", NULL};
    assert_true(value_of(&e, "downloader_aggregation_ready_jobs", ready) == 1);
    assert_true(value_of(&e, "downloader_aggregation_limit", ready) == 1);
    const char *qready[] = {"state=ready", NULL}, *qrun[] = {"state=running", NULL};
    assert_true(value_of(&e, "downloader_download_queue_jobs", qready) >= 1);
    assert_true(value_of(&e, "downloader_download_queue_jobs", qrun) >= 1);
    const char *procs[] = {"component=processor", NULL};
    assert_true(value_of(&e, "downloader_instances", procs) == 1);
    assert_true(value_of(&e, "downloader_redis_up", NULL) == 1);
}

/* Samples of a family, one per process: their process label values into procs. */
static size_t processes_of(const expo_t *e, const char *name, char procs[][128], size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < e->n && n < max; i++) {
        if (strcmp(e->s[i].name, name) != 0) continue;
        const char *p = strstr(e->s[i].labels, "process=");
        assert_non_null(p);
        snprintf(procs[n++], 128, "%.*s", (int)strcspn(p + 8, "\x1f"), p + 8);
    }
    return n;
}

static bool two_processes(void *arg)
{
    expo_t *e = arg;
    char ct[256], procs[4][128];
    char *body = scrape(ct, sizeof ct);
    expo_parse(e, body);
    free(body);
    return processes_of(e, "process_open_fds", procs, 4) == 2;
}

static void test_process_metrics(void **state)
{
    (void)state;
    /* a second process: its series reach this API only through its heartbeat */
    pid_t pid = h_env_run(&env, "processor");
    assert_true(pid > 0);
    static expo_t e;
    assert_true(h_wait_for(two_processes, &e, 15000));
    assert_true(has_family(&e, "process_cpu_seconds_total", "counter"));
    static const char *const gauges[] = {"process_resident_memory_bytes", "process_open_fds",
                                         "process_max_fds", "process_start_time_seconds"};
    for (size_t i = 0; i < 4; i++)
        assert_true(has_family(&e, gauges[i], "gauge"));
    char procs[4][128];
    assert_int_equal(processes_of(&e, "process_cpu_seconds_total", procs, 4), 2);
    assert_string_not_equal(procs[0], procs[1]);
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0); /* the children inherit it */
    double now = (double)time(NULL);
    for (size_t k = 0; k < 2; k++) {
        char label[600];
        snprintf(label, sizeof label, "process=%s", procs[k]);
        const char *want[] = {label, NULL};
        double cpu = value_of(&e, "process_cpu_seconds_total", want);
        double rss = value_of(&e, "process_resident_memory_bytes", want);
        double fds = value_of(&e, "process_open_fds", want);
        double max = value_of(&e, "process_max_fds", want);
        double start = value_of(&e, "process_start_time_seconds", want);
        if (!(cpu > 0 && cpu < 600 && rss > 1e6 && rss < 4e9 && fds >= 5 && fds < max &&
              max == (double)rl.rlim_cur && start > now - 600 && start <= now + 1))
            fail_msg("%s: cpu %g rss %g fds %g max %g start %g (now %g)", procs[k], cpu, rss, fds,
                     max, start, now);
        assert_true(value_of(&e, "downloader_process_start_time_seconds", want) == start);
    }
    assert_int_equal(h_env_kill(&env, pid, SIGTERM, 5000), 0);
}

static void test_metrics_without_redis(void **state)
{
    (void)state;
    h_redis_kill(&env.redis);
    char ct[256];
    char *body = scrape(ct, sizeof ct);
    static expo_t e;
    expo_parse(&e, body);
    free(body);
    assert_true(value_of(&e, "downloader_redis_up", NULL) == 0);
    const char *st201[] = {"status=201", NULL};
    assert_true(value_of(&e, "downloader_jobs_enqueued_total", st201) >= 9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_metrics_format_and_values),
        cmocka_unit_test(test_process_metrics),
        cmocka_unit_test(test_metrics_without_redis),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
