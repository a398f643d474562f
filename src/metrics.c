/* metrics: Prometheus metrics for GET /metrics. It owns a small in-process registry
 * (counters and latency histograms, fixed label sets so cardinality is bounded) that
 * the api, processor and notifier feed with one call where they record an event.
 * Each component's share is published in its instance heartbeat (stats.c calls
 * metrics_gen_json, member "metrics"), so an API renders the series of every live
 * instance of the cluster, labelled with component and process, without processors
 * and notifiers needing a port of their own. Queue depths are read from Redis at
 * scrape time (the 100 largest aggregations, so the output stays bounded). When Redis
 * is away only this process's series are rendered, with downloader_redis_up 0.
 * The standard process_* series (CPU, resident memory, fds, start time) travel the
 * same way: each process reads its own /proc/self when it builds a heartbeat, so a
 * scrape never reads anything of another process but its last heartbeat.
 * Output: text exposition format 0.0.4 (HELP and TYPE before the samples of each
 * family, label values escaped, histogram buckets cumulative and ending in +Inf). */
#include "metrics.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "json.h"
#include "log.h"

#define NB 12               /* histogram buckets besides +Inf */
#define N_STATUS 8          /* distinct POST /download answers tracked */
#define AGGR_SCAN_MAX 10000 /* aggregations read per scrape (as the dashboard does) */
#define AGGR_TOP 100        /* aggregations rendered per scrape */

static const double dl_bounds[NB] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
static const double cb_bounds[NB] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
static const char *dl_outcomes[] = {"success", "failed", "retried", "requeued"};
static const char *classes[] = {"1xx", "2xx",  "3xx",  "4xx",     "5xx",
                                "tls", "mime", "body", "blocked", "none"};
static const char *backends[] = {"http", "kafka", "none"};
static const char *cb_outcomes[] = {"delivered", "retried", "failed", "requeued"};
static const char *components[] = {"api", "processor", "notifier"};
static const char *pushbacks[] = {"429", "503", "timeout"};

#define N_DL 4
#define N_CLASS 10
#define N_BACKEND 3
#define N_CB 4
#define N_PUSH 3

typedef struct {
    uint64_t b[NB + 1]; /* per bucket, not cumulative; b[NB] is (last bound, +Inf) */
    uint64_t sum_ms, count;
} hist_t;

/* This process's registry (one loop thread: no locking). */
static struct {
    int codes[N_STATUS];
    uint64_t enq[N_STATUS];
    int n_codes;
    uint64_t dl[N_DL];
    hist_t dl_h[N_DL];
    uint64_t resp[N_CLASS];
    uint64_t pushback[N_PUSH];
    uint64_t rate_waits;
    uint64_t cb[N_BACKEND][N_CB];
    hist_t cb_h[N_BACKEND];
    bool active[3]; /* components of this process seen (an event or a heartbeat) */
} reg;

/* ---------- recording ---------- */

static void hist_observe(hist_t *h, const double *bounds, uint64_t ms)
{
    double s = (double)ms / 1000.0;
    size_t i = 0;
    while (i < NB && s > bounds[i])
        i++;
    h->b[i]++;
    h->sum_ms += ms;
    h->count++;
}

void metrics_enqueue(int http_status)
{
    reg.active[0] = true;
    int i = 0;
    while (i < reg.n_codes && reg.codes[i] != http_status)
        i++;
    if (i == reg.n_codes) {
        if (reg.n_codes == N_STATUS) return;
        reg.codes[reg.n_codes++] = http_status;
    }
    reg.enq[i]++;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

void metrics_download_response(const fetch_result_t *res)
{
    reg.active[1] = true;
    if (res->cancelled) return;
    size_t c = 9; /* none */
    if (ends_with(res->stat, ".tls"))
        c = 5;
    else if (ends_with(res->stat, ".mime"))
        c = 6;
    else if (ends_with(res->stat, ".body"))
        c = 7;
    else if (ends_with(res->stat, ".blocked"))
        c = 8;
    else if (res->response_code >= 100 && res->response_code < 600)
        c = (size_t)(res->response_code / 100 - 1);
    reg.resp[c]++;
}

void metrics_download(metrics_dl_outcome_t outcome, uint64_t elapsed_ms)
{
    reg.active[1] = true;
    reg.dl[outcome]++;
    if (outcome != METRICS_DL_REQUEUED) hist_observe(&reg.dl_h[outcome], dl_bounds, elapsed_ms);
}

void metrics_pushback(const char *cause)
{
    reg.active[1] = true;
    for (size_t i = 0; i < N_PUSH; i++)
        if (strcmp(cause, pushbacks[i]) == 0) reg.pushback[i]++;
}

void metrics_rate_waits(long long n)
{
    reg.active[1] = true;
    if (n > 0) reg.rate_waits += (uint64_t)n;
}

static size_t backend_of(const job_t *j)
{
    const char *type = j->callback_type ? j->callback_type : "";
    if ((j->callback_url && *j->callback_url) || strcmp(type, "http") == 0) return 0;
    return strcmp(type, "kafka") == 0 ? 1 : 2;
}

void metrics_callback(const job_t *job, store_cb_op_t op, uint64_t elapsed_ms)
{
    reg.active[2] = true;
    size_t b = backend_of(job);
    size_t o = op == STORE_CB_DELIVERED ? 0
               : op == STORE_CB_DELAY   ? 1
               : op == STORE_CB_FAILED  ? 2
                                        : 3;
    reg.cb[b][o]++;
    if (op != STORE_CB_REQUEUE) hist_observe(&reg.cb_h[b], cb_bounds, elapsed_ms);
}

/* ---------- heartbeat JSON ---------- */

static void gen_hist(yajl_gen g, const char *key, const hist_t *h)
{
    json_str(g, key);
    yajl_gen_map_open(g);
    json_str(g, "b");
    yajl_gen_array_open(g);
    for (size_t i = 0; i <= NB; i++)
        yajl_gen_integer(g, (long long)h->b[i]);
    yajl_gen_array_close(g);
    json_kv_int(g, "sum_ms", (long long)h->sum_ms);
    json_kv_int(g, "count", (long long)h->count);
    yajl_gen_map_close(g);
}

static void gen_processor(yajl_gen g)
{
    json_str(g, "downloads");
    yajl_gen_map_open(g);
    for (size_t i = 0; i < N_DL; i++)
        json_kv_int(g, dl_outcomes[i], (long long)reg.dl[i]);
    yajl_gen_map_close(g);
    json_str(g, "responses");
    yajl_gen_map_open(g);
    for (size_t i = 0; i < N_CLASS; i++)
        if (reg.resp[i]) json_kv_int(g, classes[i], (long long)reg.resp[i]);
    yajl_gen_map_close(g);
    json_str(g, "download_seconds");
    yajl_gen_map_open(g);
    for (size_t i = 0; i < N_DL; i++)
        if (reg.dl_h[i].count) gen_hist(g, dl_outcomes[i], &reg.dl_h[i]);
    yajl_gen_map_close(g);
    json_str(g, "pushbacks");
    yajl_gen_map_open(g);
    for (size_t i = 0; i < N_PUSH; i++)
        json_kv_int(g, pushbacks[i], (long long)reg.pushback[i]);
    yajl_gen_map_close(g);
    json_kv_int(g, "rate_waits", (long long)reg.rate_waits);
}

static void gen_notifier(yajl_gen g)
{
    json_str(g, "callbacks");
    yajl_gen_map_open(g);
    for (size_t b = 0; b < N_BACKEND; b++) {
        json_str(g, backends[b]);
        yajl_gen_map_open(g);
        for (size_t i = 0; i < N_CB; i++)
            json_kv_int(g, cb_outcomes[i], (long long)reg.cb[b][i]);
        yajl_gen_map_close(g);
    }
    yajl_gen_map_close(g);
    json_str(g, "callback_seconds");
    yajl_gen_map_open(g);
    for (size_t b = 0; b < N_BACKEND; b++)
        if (reg.cb_h[b].count) gen_hist(g, backends[b], &reg.cb_h[b]);
    yajl_gen_map_close(g);
}

static void gen_api(yajl_gen g)
{
    json_str(g, "enqueue");
    yajl_gen_map_open(g);
    for (int i = 0; i < reg.n_codes; i++) {
        char code[16];
        snprintf(code, sizeof code, "%d", reg.codes[i]);
        json_kv_int(g, code, (long long)reg.enq[i]);
    }
    yajl_gen_map_close(g);
}

/* Open descriptors: the entries of /proc/self/fd but the one reading it; -1 without
 * /proc. */
static long long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    long long n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.' && atoi(e->d_name) != dirfd(d);
    closedir(d);
    return n;
}

/* Resident pages from /proc/self/statm, in bytes; -1 without /proc. */
static long long resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long long size, resident;
    int got = f ? fscanf(f, "%lld %lld", &size, &resident) : 0;
    if (f) fclose(f);
    return got == 2 ? resident * sysconf(_SC_PAGESIZE) : -1;
}

/* This process's resources for the process_* series (member "process"). /proc reads
 * are served from kernel memory, so they stay on the loop; an unknown value (no /proc,
 * no fd limit) is left out and so is its series. */
static void gen_process(yajl_gen g)
{
    struct rusage ru;
    struct rlimit rl;
    long long rss = resident_bytes(), fds = open_fds();
    json_str(g, "process");
    yajl_gen_map_open(g);
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        json_kv_int(g, "cpu_us",
                    (long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
                        ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
    if (rss >= 0) json_kv_int(g, "rss_bytes", rss);
    if (fds >= 0) json_kv_int(g, "open_fds", fds);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        json_kv_int(g, "max_fds", (long long)rl.rlim_cur);
    yajl_gen_map_close(g);
}

void metrics_gen_json(yajl_gen g, const char *component, const app_t *app)
{
    json_str(g, "metrics");
    yajl_gen_map_open(g);
    gen_process(g);
    json_kv_int(g, "redis_reconnects", (long long)store_reconnects(app->store));
    json_kv_int(g, "unreplicated", (long long)store_unreplicated(app->store));
    for (size_t i = 0; i < 3; i++)
        if (strcmp(component, components[i]) == 0) reg.active[i] = true;
    if (strcmp(component, "api") == 0) gen_api(g);
    if (strcmp(component, "processor") == 0) gen_processor(g);
    if (strcmp(component, "notifier") == 0) gen_notifier(g);
    yajl_gen_map_close(g);
}

/* ---------- rendering ---------- */

void metrics_escape(char *out, size_t len, const char *value)
{
    size_t k = 0;
    for (const char *p = value ? value : ""; *p && k + 3 < len; p++) {
        if (*p == '\\' || *p == '"') {
            out[k++] = '\\';
            out[k++] = *p;
        } else if (*p == '\n') {
            out[k++] = '\\';
            out[k++] = 'n';
        } else {
            out[k++] = *p;
        }
    }
    if (len) out[k < len ? k : len - 1] = 0;
}

/* Writes a label value escaped, without a length limit. */
static void put_escaped(FILE *f, const char *v)
{
    for (const char *p = v ? v : ""; *p; p++) {
        if (*p == '\\' || *p == '"') fputc('\\', f);
        if (*p == '\n')
            fputs("\\n", f);
        else
            fputc(*p, f);
    }
}

typedef struct {
    const char *component, *process, *version;
    long long started_ms;
    yajl_val info, m; /* the instance's JSON and its "metrics" member (may be NULL) */
} inst_t;

static yajl_val member(yajl_val o, const char *key)
{
    if (!o || !YAJL_IS_OBJECT(o)) return NULL;
    for (size_t i = 0; i < o->u.object.len; i++)
        if (strcmp(o->u.object.keys[i], key) == 0) return o->u.object.values[i];
    return NULL;
}

static long long num(yajl_val v)
{
    return v && YAJL_IS_INTEGER(v) ? v->u.number.i : 0;
}

static const char *str(yajl_val v)
{
    return v && YAJL_IS_STRING(v) ? v->u.string : "";
}

static void family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{component="..",process="..",<extra>} */
static void series(FILE *f, const char *name, const inst_t *in, const char *extra)
{
    char c[256], p[512];
    metrics_escape(c, sizeof c, in->component);
    metrics_escape(p, sizeof p, in->process);
    fprintf(f, "%s{component=\"%s\",process=\"%s\"%s%s}", name, c, p, extra && *extra ? "," : "",
            extra ? extra : "");
}

/* label="value" with the value escaped. */
static void label(char *buf, size_t len, const char *name, const char *value)
{
    char v[512];
    metrics_escape(v, sizeof v, value);
    snprintf(buf, len, "%s=\"%s\"", name, v);
}

/* A counter family from an object member {key: n} of each instance's metrics. */
static void render_map(FILE *f, const inst_t *in, size_t n, const char *name, const char *help,
                       const char *member_name, const char *label_name)
{
    family(f, name, "counter", help);
    for (size_t i = 0; i < n; i++) {
        yajl_val o = member(in[i].m, member_name);
        for (size_t k = 0; o && YAJL_IS_OBJECT(o) && k < o->u.object.len; k++) {
            char l[600];
            label(l, sizeof l, label_name, o->u.object.keys[k]);
            series(f, name, &in[i], l);
            fprintf(f, " %lld\n", num(o->u.object.values[k]));
        }
    }
}

/* A counter family from {outer: {inner: n}}. */
static void render_map2(FILE *f, const inst_t *in, size_t n, const char *name, const char *help,
                        const char *member_name, const char *outer_label, const char *inner_label)
{
    family(f, name, "counter", help);
    for (size_t i = 0; i < n; i++) {
        yajl_val o = member(in[i].m, member_name);
        for (size_t k = 0; o && YAJL_IS_OBJECT(o) && k < o->u.object.len; k++) {
            yajl_val inner = o->u.object.values[k];
            for (size_t j = 0; YAJL_IS_OBJECT(inner) && j < inner->u.object.len; j++) {
                char a[600], b[600], l[1300];
                label(a, sizeof a, outer_label, o->u.object.keys[k]);
                label(b, sizeof b, inner_label, inner->u.object.keys[j]);
                snprintf(l, sizeof l, "%s,%s", a, b);
                series(f, name, &in[i], l);
                fprintf(f, " %lld\n", num(inner->u.object.values[j]));
            }
        }
    }
}

static void render_one_hist(FILE *f, const char *name, const inst_t *in, const char *l,
                            const double *bounds, yajl_val h)
{
    yajl_val b = member(h, "b");
    if (!b || !YAJL_IS_ARRAY(b) || b->u.array.len != NB + 1) return; /* other bucket layout */
    char bucket[256], extra[1000];
    snprintf(bucket, sizeof bucket, "%s_bucket", name);
    long long cum = 0;
    for (size_t i = 0; i <= NB; i++) {
        char le[32];
        cum += num(b->u.array.values[i]);
        if (i < NB)
            snprintf(le, sizeof le, "%g", bounds[i]);
        else
            snprintf(le, sizeof le, "+Inf");
        snprintf(extra, sizeof extra, "%s,le=\"%s\"", l, le);
        series(f, bucket, in, extra);
        fprintf(f, " %lld\n", cum);
    }
    char sum[256], count[256];
    snprintf(sum, sizeof sum, "%s_sum", name);
    snprintf(count, sizeof count, "%s_count", name);
    series(f, sum, in, l);
    fprintf(f, " %.3f\n", (double)num(member(h, "sum_ms")) / 1000.0);
    series(f, count, in, l);
    fprintf(f, " %lld\n", cum);
}

static void render_hist(FILE *f, const inst_t *in, size_t n, const char *name, const char *help,
                        const char *member_name, const char *label_name, const double *bounds)
{
    family(f, name, "histogram", help);
    for (size_t i = 0; i < n; i++) {
        yajl_val o = member(in[i].m, member_name);
        for (size_t k = 0; o && YAJL_IS_OBJECT(o) && k < o->u.object.len; k++) {
            char l[600];
            label(l, sizeof l, label_name, o->u.object.keys[k]);
            render_one_hist(f, name, &in[i], l, bounds, o->u.object.values[k]);
        }
    }
}

/* A counter family from a number member of each instance's metrics. */
static void render_count(FILE *f, const inst_t *in, size_t n, const char *name, const char *help,
                         const char *member_name)
{
    family(f, name, "counter", help);
    for (size_t i = 0; i < n; i++) {
        yajl_val v = member(in[i].m, member_name);
        if (!v) continue;
        series(f, name, &in[i], NULL);
        fprintf(f, " %lld\n", num(v));
    }
}

/* A gauge family from the heartbeat's "gauges" member of one component. */
static void render_gauge(FILE *f, const inst_t *in, size_t n, const char *name, const char *help,
                         const char *component, const char *gauge)
{
    family(f, name, "gauge", help);
    for (size_t i = 0; i < n; i++) {
        yajl_val v = member(member(in[i].info, "gauges"), gauge);
        if (strcmp(in[i].component, component) != 0 || !v) continue;
        series(f, name, &in[i], NULL);
        fprintf(f, " %lld\n", num(v));
    }
}

/* Per process (a `downloader all` process has three instances: render it once). A
 * family's value is the heartbeat's metrics member `member` ("a.b": member b of
 * object a) divided by `scale`, or the start time, or the build info. */
static void render_processes(FILE *f, const inst_t *in, size_t n)
{
    enum { MEMBER, START, BUILD };
    static const struct {
        const char *name, *type, *help, *member;
        int kind;
        double scale;
    } fam[] = {
        {"downloader_redis_reconnects_total", "counter",
         "Times the process's Redis command connection came back after it had been up.",
         "redis_reconnects", MEMBER, 1},
        {"downloader_enqueue_unreplicated_total", "counter",
         "Jobs acknowledged although WAIT (redis.wait_replicas) timed out.", "unreplicated", MEMBER,
         1},
        {"downloader_process_start_time_seconds", "gauge",
         "Start time of the process (Unix seconds).", NULL, START, 1},
        {"downloader_build_info", "gauge", "Version of the process (value 1).", NULL, BUILD, 1},
        {"process_cpu_seconds_total", "counter", "User and system CPU time of the process.",
         "process.cpu_us", MEMBER, 1e6},
        {"process_resident_memory_bytes", "gauge", "Resident set size of the process.",
         "process.rss_bytes", MEMBER, 1},
        {"process_open_fds", "gauge", "File descriptors the process has open.", "process.open_fds",
         MEMBER, 1},
        {"process_max_fds", "gauge", "The process's limit of open file descriptors.",
         "process.max_fds", MEMBER, 1},
        {"process_start_time_seconds", "gauge", "Start time of the process (Unix seconds).", NULL,
         START, 1},
    };
    for (size_t k = 0; k < sizeof fam / sizeof fam[0]; k++) {
        family(f, fam[k].name, fam[k].type, fam[k].help);
        for (size_t i = 0; i < n; i++) {
            bool seen = false;
            for (size_t j = 0; j < i && !seen; j++)
                seen = strcmp(in[j].process, in[i].process) == 0;
            if (seen) continue;
            char p[512], v[256];
            metrics_escape(p, sizeof p, in[i].process);
            metrics_escape(v, sizeof v, in[i].version);
            if (fam[k].kind == MEMBER) {
                const char *dot = strchr(fam[k].member, '.');
                yajl_val val = in[i].m;
                if (dot) {
                    char outer[32];
                    snprintf(outer, sizeof outer, "%.*s", (int)(dot - fam[k].member),
                             fam[k].member);
                    val = member(member(val, outer), dot + 1);
                } else {
                    val = member(val, fam[k].member);
                }
                if (dot && !val) continue; /* not measured there */
                if (fam[k].scale == 1)
                    fprintf(f, "%s{process=\"%s\"} %lld\n", fam[k].name, p, num(val));
                else
                    fprintf(f, "%s{process=\"%s\"} %.6f\n", fam[k].name, p,
                            (double)num(val) / fam[k].scale);
            } else if (fam[k].kind == START) {
                fprintf(f, "%s{process=\"%s\"} %.3f\n", fam[k].name, p,
                        (double)in[i].started_ms / 1000.0);
            } else {
                fprintf(f, "%s{process=\"%s\",version=\"%s\"} 1\n", fam[k].name, p, v);
            }
        }
    }
}

static void render_instance_count(FILE *f, const inst_t *in, size_t n)
{
    family(f, "downloader_instances", "gauge", "Live instances per component.");
    for (size_t c = 0; c < 3; c++) {
        long long count = 0;
        for (size_t i = 0; i < n; i++)
            count += strcmp(in[i].component, components[c]) == 0;
        fprintf(f, "downloader_instances{component=\"%s\"} %lld\n", components[c], count);
    }
}

static void render_instances(FILE *f, const inst_t *in, size_t n)
{
    render_map(f, in, n, "downloader_jobs_enqueued_total",
               "POST /download answers by HTTP status (201: the job was enqueued).", "enqueue",
               "status");
    render_map(f, in, n, "downloader_downloads_total",
               "Download outcomes: success, failed (for good), retried (failed, retried later), "
               "requeued (interrupted by a shutdown).",
               "downloads", "outcome");
    render_map(f, in, n, "downloader_download_responses_total",
               "Download attempts by status class (1xx..5xx), or tls, mime, body failures, blocked "
               "(private network), or none (no HTTP answer).",
               "responses", "class");
    render_hist(f, in, n, "downloader_download_duration_seconds",
                "Time from claim to outcome of a download attempt, by outcome.", "download_seconds",
                "outcome", dl_bounds);
    render_map(f, in, n, "downloader_aggregation_pauses_total",
               "Origin pushbacks by cause: 429 and 503 pause the aggregation, timeout only "
               "lowers its effective concurrency (as 429 and 503 do with adaptive_limits).",
               "pushbacks", "cause");
    render_count(f, in, n, "downloader_rate_delayed_starts_total",
                 "Download starts that waited for their aggregation's aggr_rate.", "rate_waits");
    render_map2(f, in, n, "downloader_callbacks_total", "Callback outcomes by backend.",
                "callbacks", "backend", "outcome");
    render_hist(f, in, n, "downloader_callback_duration_seconds",
                "Time a callback delivery took, by backend.", "callback_seconds", "backend",
                cb_bounds);
    render_gauge(f, in, n, "downloader_downloads_inflight", "Downloads running in the instance.",
                 "processor", "workers");
    render_gauge(f, in, n, "downloader_callbacks_inflight", "Callbacks being delivered.",
                 "notifier", "inflightCallbacks");
    render_gauge(f, in, n, "downloader_disk_usage_percent", "Usage of processor.storage_dir.",
                 "processor", "diskUsage");
    render_processes(f, in, n);
    render_instance_count(f, in, n);
}

/* ---------- GET /metrics ---------- */

typedef struct {
    app_t *app;
    httpd_req_t *req;
    FILE *f;
    char *buf;
    size_t len;
    store_depths_t d;
} scrape_t;

static void respond(scrape_t *s, bool redis_up)
{
    static const httpd_header_t h[] = {
        {"Content-Type", "text/plain; version=0.0.4; charset=utf-8"}};
    family(s->f, "downloader_redis_up", "gauge",
           "1 while the serving process is connected to the Redis master.");
    fprintf(s->f, "downloader_redis_up %d\n", redis_up ? 1 : 0);
    fclose(s->f);
    httpd_respond(s->req, 200, h, 1, s->buf, s->len);
    free(s->buf);
    free(s);
}

static void inst_from(inst_t *in, yajl_val info)
{
    in->info = info;
    in->m = member(info, "metrics");
    in->component = str(member(info, "component"));
    in->process = str(member(info, "instance"));
    in->version = str(member(info, "version"));
    in->started_ms = num(member(info, "started_ms"));
}

/* This process's share for a component, fresh from memory, parsed as an instance
 * object would be (component, instance, version, started_ms, metrics). */
static yajl_val local_tree(const app_t *app, const char *component)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    yajl_gen_map_open(g);
    json_kv_str(g, "component", component);
    json_kv_str(g, "instance", app->instance);
    json_kv_str(g, "version", DOWNLOADER_VERSION);
    json_kv_int(g, "started_ms", (long long)app->started_ms);
    metrics_gen_json(g, component, app);
    yajl_gen_map_close(g);
    const unsigned char *buf;
    size_t len;
    yajl_gen_get_buf(g, &buf, &len);
    char *text = strndup((const char *)buf, len), err[128];
    yajl_val v = yajl_tree_parse(text, err, sizeof err);
    free(text);
    yajl_gen_free(g);
    return v;
}

static int component_index(const char *c)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(c, components[i]) == 0) return i;
    return -1;
}

/* Renders the live instances (info JSON as published) and this process's components.
 * This process's counters come from memory, so they are fresh; other instances' are as
 * of their last heartbeat. list may be empty (Redis away). */
static void render_all(scrape_t *s, const store_instance_t *list, size_t n, long long now)
{
    inst_t *in = calloc(n + 3, sizeof *in);
    yajl_val *trees = calloc(2 * n + 3, sizeof *trees);
    size_t k = 0, t = 0;
    bool mine[3] = {false, false, false};
    for (size_t i = 0; i < n; i++) {
        char err[128];
        if (!list[i].name || list[i].live_until < now) continue;
        yajl_val info = yajl_tree_parse(list[i].info_json, err, sizeof err);
        if (!info) continue;
        trees[t++] = info;
        inst_from(&in[k], info);
        int c = component_index(in[k].component);
        if (c >= 0 && strcmp(in[k].process, s->app->instance) == 0) {
            mine[c] = true;
            yajl_val local = local_tree(s->app, components[c]);
            if (local) trees[t++] = local;
            in[k].m = member(local, "metrics");
        }
        k++;
    }
    for (int c = 0; c < 3; c++) {
        if (mine[c] || !reg.active[c]) continue;
        yajl_val local = local_tree(s->app, components[c]);
        if (!local) continue;
        trees[t++] = local;
        inst_from(&in[k++], local);
    }
    render_instances(s->f, in, k);
    for (size_t i = 0; i < t; i++)
        yajl_tree_free(trees[i]);
    free(trees);
    free(in);
}

static void render_aggr_family(FILE *f, const store_aggr_t *a, size_t n, const char *name,
                               const char *help, int which)
{
    family(f, name, "gauge", help);
    for (size_t i = 0; i < n; i++) {
        long long v = which == 0   ? a[i].ready
                      : which == 1 ? a[i].delayed
                      : which == 2 ? a[i].inflight
                      : which == 3 ? a[i].limit
                      : which == 4 ? a[i].effective
                                   : a[i].paused_until_ms > 0;
        fprintf(f, "%s{aggr=\"", name);
        put_escaped(f, a[i].id); /* any length: ids are the clients' */
        fprintf(f, "\"} %lld\n", v);
    }
}

static void render_queues(FILE *f, const store_depths_t *d, long long ready)
{
    family(f, "downloader_download_queue_jobs", "gauge",
           "Download jobs by state, all aggregations (ready: waiting in their queues).");
    if (ready >= 0) fprintf(f, "downloader_download_queue_jobs{state=\"ready\"} %lld\n", ready);
    fprintf(f, "downloader_download_queue_jobs{state=\"delayed\"} %lld\n", d->dl_delayed);
    fprintf(f, "downloader_download_queue_jobs{state=\"running\"} %lld\n", d->dl_leased);
    family(f, "downloader_callback_queue_jobs", "gauge", "Callbacks by state.");
    fprintf(f, "downloader_callback_queue_jobs{state=\"ready\"} %lld\n", d->cb_ready);
    fprintf(f, "downloader_callback_queue_jobs{state=\"delayed\"} %lld\n", d->cb_delayed);
    fprintf(f, "downloader_callback_queue_jobs{state=\"running\"} %lld\n", d->cb_leased);
    family(f, "downloader_aggregations", "gauge",
           "Aggregations with queued, delayed or running work.");
    fprintf(f, "downloader_aggregations %lld\n", d->aggregations);
}

static void on_aggrs(store_rc_t rc, const store_aggr_t *list, size_t n, void *arg)
{
    scrape_t *s = arg;
    if (rc != STORE_OK) {
        render_queues(s->f, &s->d, -1);
        respond(s, rc != STORE_DOWN);
        return;
    }
    store_aggr_t *sorted = malloc((n + 1) * sizeof *sorted);
    memcpy(sorted, list, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, store_aggr_cmp);
    long long ready = 0;
    for (size_t i = 0; i < n; i++)
        ready += sorted[i].ready;
    render_queues(s->f, &s->d, ready);
    size_t top = n < AGGR_TOP ? n : AGGR_TOP;
    render_aggr_family(s->f, sorted, top, "downloader_aggregation_ready_jobs",
                       "Jobs waiting in the queue of an aggregation (the 100 largest).", 0);
    render_aggr_family(s->f, sorted, top, "downloader_aggregation_delayed_jobs",
                       "Retries waiting for their time (the 100 largest aggregations).", 1);
    render_aggr_family(s->f, sorted, top, "downloader_aggregation_inflight_downloads",
                       "Downloads running now, all processors (the 100 largest aggregations).", 2);
    render_aggr_family(s->f, sorted, top, "downloader_aggregation_limit",
                       "Concurrency limit of an aggregation (the 100 largest).", 3);
    render_aggr_family(s->f, sorted, top, "downloader_aggregation_effective_limit",
                       "Concurrency allowed now: the limit, or less after origin pushback "
                       "(adaptive_limits; the 100 largest aggregations).",
                       4);
    render_aggr_family(s->f, sorted, top, "downloader_aggregation_paused",
                       "1 while an aggregation is paused after a 429/503 (the 100 largest).", 5);
    free(sorted);
    respond(s, true);
}

static void on_depths(store_rc_t rc, const store_depths_t *d, void *arg)
{
    scrape_t *s = arg;
    if (rc != STORE_OK) {
        respond(s, rc != STORE_DOWN);
        return;
    }
    s->d = *d;
    store_aggregations(s->app->store, AGGR_SCAN_MAX, on_aggrs, s);
}

static void on_instances(store_rc_t rc, long long now, const store_instance_t *list, size_t n,
                         void *arg)
{
    scrape_t *s = arg;
    render_all(s, list, rc == STORE_OK ? n : 0, now);
    if (rc != STORE_OK) {
        respond(s, rc != STORE_DOWN);
        return;
    }
    store_depths(s->app->store, on_depths, s);
}

void metrics_serve(app_t *app, httpd_req_t *req)
{
    scrape_t *s = calloc(1, sizeof *s);
    s->app = app;
    s->req = req;
    s->f = open_memstream(&s->buf, &s->len);
    if (!s->f) {
        free(s);
        httpd_respond_error(req, 500, "out of memory");
        return;
    }
    store_instances(app->store, on_instances, s);
}
