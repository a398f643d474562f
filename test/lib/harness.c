/* harness: process, port, redis-server and HTTP helpers shared by the integration
 * tests. Everything here is blocking and test-only. */
#include "harness.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int h_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    if (fd < 0) return -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &l) < 0) {
        close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

int h_wait_port(int port, int timeout_ms)
{
    long end = now_ms() + timeout_ms;
    while (now_ms() < end) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if (ok) return 0;
        usleep(10000);
    }
    return -1;
}

pid_t h_spawn(char *const argv[], const char *logfile, char *const extra_env[])
{
    pid_t pid = fork();
    if (pid != 0) return pid;
    setpgid(0, 0);
    if (logfile) {
        int fd = open(logfile, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
    }
    for (size_t i = 0; extra_env && extra_env[i]; i++)
        putenv(extra_env[i]);
    execvp(argv[0], argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

int h_stop(pid_t pid, int sig, int timeout_ms)
{
    int status = -1;
    if (pid <= 0) return -1;
    kill(pid, sig);
    long end = now_ms() + timeout_ms;
    while (now_ms() < end) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) return status;
        if (r < 0) return -1;
        usleep(5000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

char *h_tmpdir(const char *tag)
{
    char tmpl[256];
    snprintf(tmpl, sizeof tmpl, "/tmp/dltest-%s-XXXXXX", tag ? tag : "x");
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

void h_rmtree(const char *path)
{
    if (path) nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static pid_t redis_spawn(h_redis_t *r, bool aof)
{
    char port[16], log[512], args[sizeof r->args];
    snprintf(port, sizeof port, "%d", r->port);
    snprintf(log, sizeof log, "%s/redis.log", r->dir);
    char *argv[32] = {"redis-server",
                      "--bind",
                      "127.0.0.1",
                      "--port",
                      port,
                      "--dir",
                      r->dir,
                      "--save",
                      "",
                      "--appendonly",
                      aof ? "yes" : "no",
                      "--logfile",
                      log,
                      "--daemonize",
                      "no",
                      NULL};
    size_t n = 15;
    snprintf(args, sizeof args, "%s", r->args);
    char *save = NULL;
    for (char *a = strtok_r(args, " ", &save); a && n + 1 < sizeof argv / sizeof argv[0];
         a = strtok_r(NULL, " ", &save))
        argv[n++] = a;
    argv[n] = NULL;
    return h_spawn(argv, NULL, NULL);
}

static bool redis_aof(const h_redis_t *r)
{
    char p[512];
    snprintf(p, sizeof p, "%s/aof.flag", r->dir);
    return access(p, F_OK) == 0;
}

int h_redis_start(h_redis_t *r, bool aof)
{
    return h_redis_start_ex(r, aof, NULL);
}

int h_redis_start_ex(h_redis_t *r, bool aof, const char *const *args)
{
    size_t used = 0;
    r->args[0] = '\0';
    for (size_t i = 0; args && args[i] && used < sizeof r->args; i++)
        used +=
            (size_t)snprintf(r->args + used, sizeof r->args - used, "%s%s", i ? " " : "", args[i]);
    r->dir = h_tmpdir("redis");
    r->port = h_free_port();
    if (aof) {
        char p[512];
        snprintf(p, sizeof p, "%s/aof.flag", r->dir);
        h_write_file(p, "1");
    }
    r->pid = redis_spawn(r, aof);
    return h_wait_port(r->port, 5000);
}

int h_redis_restart(h_redis_t *r)
{
    r->pid = redis_spawn(r, redis_aof(r));
    return h_wait_port(r->port, 5000);
}

void h_redis_kill(h_redis_t *r)
{
    h_stop(r->pid, SIGKILL, 2000);
    r->pid = 0;
}

void h_redis_stop(h_redis_t *r)
{
    if (r->pid > 0) h_stop(r->pid, SIGTERM, 3000);
    r->pid = 0;
    h_rmtree(r->dir);
    free(r->dir);
    r->dir = NULL;
}

void h_redis_pause(h_redis_t *r)
{
    if (r->pid > 0) kill(r->pid, SIGSTOP);
}

void h_redis_resume(h_redis_t *r)
{
    if (r->pid > 0) kill(r->pid, SIGCONT);
}

redisContext *h_redis_connect(const h_redis_t *r)
{
    redisContext *c = redisConnect("127.0.0.1", r->port);
    if (c && c->err) {
        redisFree(c);
        return NULL;
    }
    return c;
}

redisReply *h_redis(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    return r;
}

long long h_redis_int(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    long long v = -1;
    if (r && r->type == REDIS_REPLY_INTEGER) v = r->integer;
    if (r && r->type == REDIS_REPLY_STRING) v = strtoll(r->str, NULL, 10);
    if (r) freeReplyObject(r);
    return v;
}

char *h_redis_str(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    char *s = NULL;
    if (r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)) s = strdup(r->str);
    if (r) freeReplyObject(r);
    return s;
}

typedef struct {
    char *p;
    size_t n;
} buf_t;

static size_t buf_cb(char *d, size_t sz, size_t nm, void *arg)
{
    buf_t *b = arg;
    size_t len = sz * nm;
    char *np = realloc(b->p, b->n + len + 1);
    if (!np) return 0;
    b->p = np;
    memcpy(b->p + b->n, d, len);
    b->n += len;
    b->p[b->n] = 0;
    return len;
}

int h_http(const char *method, const char *url, const char *body, const char *const *headers,
           h_resp_t *resp)
{
    memset(resp, 0, sizeof *resp);
    CURL *e = curl_easy_init();
    buf_t b = {0}, h = {0};
    struct curl_slist *sl = curl_slist_append(NULL, "Expect:");
    for (size_t i = 0; headers && headers[i]; i++)
        sl = curl_slist_append(sl, headers[i]);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, sl);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, buf_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, buf_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &h);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    if (strcmp(method, "HEAD") == 0) curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    if (body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    CURLcode rc = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &resp->status);
    curl_slist_free_all(sl);
    curl_easy_cleanup(e);
    resp->body = b.p ? b.p : strdup("");
    resp->body_len = b.n;
    resp->headers = h.p ? h.p : strdup("");
    return rc == CURLE_OK ? 0 : -1;
}

void h_resp_free(h_resp_t *r)
{
    free(r->body);
    free(r->headers);
    memset(r, 0, sizeof *r);
}

void h_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

bool h_wait_for(bool (*cond)(void *arg), void *arg, int timeout_ms)
{
    long end = now_ms() + timeout_ms;
    for (;;) {
        if (cond(arg)) return true;
        if (now_ms() >= end) return false;
        usleep(20000);
    }
}

const char *h_bin(void)
{
    const char *b = getenv("DOWNLOADER_BIN");
    return b ? b : "build/downloader";
}

const char *h_src(void)
{
    const char *s = getenv("DOWNLOADER_SRC");
    return s ? s : ".";
}

void h_tool(char *buf, size_t len, const char *name)
{
    const char *t = getenv("DOWNLOADER_TOOLS");
    snprintf(buf, len, "%s/%s", t ? t : "build/test/tools", name);
}

int h_write_file(const char *path, const char *content)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(content, f);
    return fclose(f) == 0 ? 0 : -1;
}

char *h_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    buf_t b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_cb(chunk, 1, n, &b);
    fclose(f);
    if (len) *len = b.n;
    return b.p ? b.p : strdup("");
}

unsigned char h_pattern_byte(size_t i)
{
    return (unsigned char)((i * 31) % 251);
}

long h_pattern_mismatch(const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++)
        if (p[i] != h_pattern_byte(i)) return (long)i;
    return -1;
}

int h_env_start(h_env_t *e, const char *processor_extra, const char *notifier_extra,
                const char *backends)
{
    return h_env_start_ex(e, processor_extra, notifier_extra, backends, NULL);
}

int h_env_start_ex(h_env_t *e, const char *processor_extra, const char *notifier_extra,
                   const char *backends, const char *api_extra)
{
    h_env_opts_t o = {.processor_extra = processor_extra,
                      .notifier_extra = notifier_extra,
                      .backends = backends,
                      .api_extra = api_extra};
    return h_env_start_opts(e, &o);
}

int h_env_start_opts(h_env_t *e, const h_env_opts_t *o)
{
    const char *processor_extra = o->processor_extra, *notifier_extra = o->notifier_extra;
    const char *backends = o->backends, *api_extra = o->api_extra;
    memset(e, 0, sizeof *e);
    if (h_redis_start_ex(&e->redis, o->redis_aof, o->redis_args) < 0) return -1;
    e->dir = h_tmpdir("env");
    e->origin_port = h_free_port();
    char port[16], script[512], log[600];
    snprintf(port, sizeof port, "%d", e->origin_port);
    snprintf(script, sizeof script, "%s/test/origin.py", h_src());
    snprintf(log, sizeof log, "%s/origin.log", e->dir);
    char *argv[] = {"python3", script, "--port", port, NULL};
    e->origin = h_spawn(argv, log, NULL);
    if (h_wait_port(e->origin_port, 10000) < 0) return -1;
    char *json = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&json, &n);
    fprintf(
        f,
        "{\"redis\": {\"addr\": \"127.0.0.1:%d\"%s%s},\n"
        " \"api\": {\"heartbeat_path\": \"%s/hb\"%s%s},\n"
        " \"processor\": {\"storage_dir\": \"%s/tmp\", \"filestorage\": {\"type\": \"filesystem\", "
        "\"rootdir\": \"%s/files\"}, \"download_url\": \"http://127.0.0.1:%d/files\", "
        "\"stats_interval\": 200, \"lease\": \"3s\", \"retry_base\": \"200ms\", "
        "\"low_speed_time\": 5%s%s},\n"
        " \"notifier\": {\"concurrency\": 16, \"stats_interval\": 200, \"deletion_interval\": 1, "
        "\"lease\": \"3s\", \"retry_base\": \"200ms\"%s%s},\n"
        " \"backends\": %s}\n",
        e->redis.port, o->redis_extra ? ", " : "", o->redis_extra ? o->redis_extra : "", e->dir,
        api_extra ? ", " : "", api_extra ? api_extra : "", e->dir, e->dir, e->origin_port,
        processor_extra ? ", " : "", processor_extra ? processor_extra : "",
        notifier_extra ? ", " : "", notifier_extra ? notifier_extra : "",
        backends ? backends : "{\"http\": {\"timeout\": 5}}");
    fclose(f);
    snprintf(e->config, sizeof e->config, "%s/config.json", e->dir);
    int rc = h_write_file(e->config, json);
    free(json);
    return rc;
}

/* The port opens before the first Redis connection: GET /ready answers 200 once it is up. */
static bool api_ready(void *arg)
{
    char url[256];
    h_resp_t r;
    h_api_url(arg, url, sizeof url, "/ready");
    bool ok = h_http("GET", url, NULL, NULL, &r) == 0 && r.status == 200;
    h_resp_free(&r);
    return ok;
}

pid_t h_env_run(h_env_t *e, const char *command)
{
    char log[600], port[16];
    bool api = strcmp(command, "api") == 0 || strcmp(command, "all") == 0;
    snprintf(log, sizeof log, "%s/%s-%d.log", e->dir, command, e->nprocs);
    if (api) e->api_port = h_free_port();
    snprintf(port, sizeof port, "%d", e->api_port);
    char *argv[] = {
        (char *)h_bin(), (char *)command, "-c", e->config, "--host", "127.0.0.1", "-p", port, NULL};
    if (!api) argv[4] = NULL;
    static char test_time[] = "DOWNLOADER_TEST_TIME=1";
    char *env[] = {test_time, NULL};
    pid_t pid = h_spawn(argv, log, env);
    if (e->nprocs < 16) e->procs[e->nprocs++] = pid;
    if (api && h_wait_port(e->api_port, 10000) < 0) return -1;
    if (api && !h_wait_for(api_ready, e, 10000)) return -1;
    return pid;
}

int h_env_kill(h_env_t *e, pid_t pid, int sig, int timeout_ms)
{
    for (int i = 0; i < e->nprocs; i++)
        if (e->procs[i] == pid) e->procs[i] = 0;
    return h_stop(pid, sig, timeout_ms);
}

void h_env_stop(h_env_t *e)
{
    for (int i = 0; i < e->nprocs; i++)
        h_stop(e->procs[i], SIGTERM, 15000);
    if (e->origin > 0) h_stop(e->origin, SIGTERM, 3000);
    h_redis_stop(&e->redis);
    if (getenv("KEEP_TEST_DIRS"))
        fprintf(stderr, "kept %s\n", e->dir);
    else
        h_rmtree(e->dir);
    free(e->dir);
    e->dir = NULL;
}

void h_api_url(const h_env_t *e, char *buf, size_t len, const char *path)
{
    snprintf(buf, len, "http://127.0.0.1:%d%s", e->api_port, path);
}

void h_origin_url(const h_env_t *e, char *buf, size_t len, const char *path)
{
    snprintf(buf, len, "http://127.0.0.1:%d%s", e->origin_port, path);
}

long h_post_job(const h_env_t *e, const char *json, char *id)
{
    char url[256];
    h_resp_t r;
    h_api_url(e, url, sizeof url, "/download");
    if (h_http("POST", url, json, NULL, &r) < 0) {
        h_resp_free(&r);
        return -1;
    }
    long status = r.status;
    const char *p = strstr(r.body, "\"id\":\"");
    if (id && status == 201 && p) snprintf(id, 15, "%.14s", p + 6);
    h_resp_free(&r);
    return status;
}

yajl_val h_json(const char *text)
{
    char err[256];
    return text ? yajl_tree_parse(text, err, sizeof err) : NULL;
}

static yajl_val member(yajl_val obj, const char *key)
{
    const char *path[] = {key, NULL};
    return obj ? yajl_tree_get(obj, path, yajl_t_any) : NULL;
}

const char *h_jstr(yajl_val obj, const char *key)
{
    yajl_val v = member(obj, key);
    return v && YAJL_IS_STRING(v) ? v->u.string : NULL;
}

long long h_jint(yajl_val obj, const char *key)
{
    yajl_val v = member(obj, key);
    return v && YAJL_IS_INTEGER(v) ? v->u.number.i : -1;
}

int h_jbool(yajl_val obj, const char *key)
{
    yajl_val v = member(obj, key);
    return v && YAJL_IS_TRUE(v) ? 1 : v && YAJL_IS_FALSE(v) ? 0 : -1;
}

yajl_val h_origin_json(const h_env_t *e, const char *path)
{
    char url[512];
    h_resp_t r;
    h_origin_url(e, url, sizeof url, path);
    yajl_val v = h_http("GET", url, NULL, NULL, &r) == 0 ? h_json(r.body) : NULL;
    h_resp_free(&r);
    return v;
}

long h_origin_post(const h_env_t *e, const char *path, const char *json)
{
    char url[512];
    h_resp_t r;
    h_origin_url(e, url, sizeof url, path);
    long st = h_http("POST", url, json, NULL, &r) == 0 ? r.status : -1;
    h_resp_free(&r);
    return st;
}

int h_duplicates(const h_env_t *e, const char (*ids)[16], int n)
{
    int dup = 0;
    for (int i = 0; i < n; i++) {
        int ok = 0;
        h_callbacks(e, ids[i], &ok, NULL);
        dup += ok > 1 ? ok - 1 : 0;
    }
    return dup;
}

int h_callbacks(const h_env_t *e, const char *job_id, int *ok, yajl_val *payload)
{
    yajl_val list = h_origin_json(e, "/_callbacks");
    int n = 0, good = 0;
    if (payload) *payload = NULL;
    for (size_t i = 0; list && YAJL_IS_ARRAY(list) && i < list->u.array.len; i++) {
        yajl_val cb = list->u.array.values[i];
        yajl_val body = h_json(h_jstr(cb, "body"));
        const char *id = h_jstr(body, "job_id");
        if (id && strcmp(id, job_id) == 0) {
            n++;
            if (h_jint(cb, "status") == 200) {
                good++;
                if (payload) {
                    if (*payload) yajl_tree_free(*payload);
                    *payload = body;
                    body = NULL;
                }
            }
        }
        if (body) yajl_tree_free(body);
    }
    if (list) yajl_tree_free(list);
    if (ok) *ok = good;
    return n;
}

yajl_val h_wait_callback(const h_env_t *e, const char *job_id, int timeout_ms)
{
    long end = now_ms() + timeout_ms;
    for (;;) {
        int ok = 0;
        yajl_val p = NULL;
        h_callbacks(e, job_id, &ok, &p);
        if (ok > 0) return p;
        if (now_ms() > end) return NULL;
        usleep(50000);
    }
}
