/* Redis Sentinel: one master, one replica and three sentinels (Debian's redis-server
 * and redis-sentinel on loopback), and api, processor and notifier as separate
 * processes of the real binary configured with redis.sentinel + master_name (the first
 * sentinel listed is dead, so the list is walked in order; the live ones are named by
 * host name, "localhost", so they are reached through the lookup off the loop).
 *
 *  - ROLE check: a (scripted, test/fake_sentinel.py) sentinel that names the replica is
 *    not believed; the API asks again and settles on the master.
 *  - redis.wait_replicas: a 201 means the replica has the job; with the replica stopped
 *    the answer comes after wait_timeout and is counted as unreplicated.
 *  - failover: jobs run, the test makes sure they reached the replica, SIGKILLs the
 *    master while downloads are in flight, and Sentinel promotes the replica. The
 *    service follows by itself (503 meanwhile, nothing crashes); every job
 *    acknowledged before the failover, and every job posted after it (which needs the
 *    pub/sub wake-ups on the new master), is called back. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define MASTER "dlmaster"
#define N_BEFORE 30
#define N_AFTER 20
#define MAX_JOBS 400

typedef struct {
    pid_t pid;
    int port;
    char dir[600];
} node_t;

static h_env_t env;
static node_t nodes[2]; /* master, replica at start */
static node_t sentinels[3];
static int dead_sentinel_port;
static pid_t api_pid, proc_pid, notif_pid;
static char ids[MAX_JOBS][16];
static int n_ids;

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* ---------- redis nodes and sentinels ---------- */

static int redis_node_start(node_t *n, const char *name, int replicaof)
{
    char port[16], log[700], master[16];
    n->port = h_free_port();
    snprintf(n->dir, sizeof n->dir, "%s/%s", env.dir, name);
    if (mkdir(n->dir, 0755) < 0) return -1;
    snprintf(port, sizeof port, "%d", n->port);
    snprintf(master, sizeof master, "%d", replicaof);
    snprintf(log, sizeof log, "%s/redis.log", n->dir);
    char *argv[] = {"redis-server",
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    port,
                    "--dir",
                    n->dir,
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--logfile",
                    log,
                    "--daemonize",
                    "no",
                    "--replicaof",
                    "127.0.0.1",
                    master,
                    NULL};
    if (!replicaof) argv[15] = NULL;
    n->pid = h_spawn(argv, NULL, NULL);
    return h_wait_port(n->port, 10000);
}

static int sentinel_start(node_t *n, int idx, int master_port)
{
    char conf[800], text[1200], log[700];
    n->port = h_free_port();
    snprintf(n->dir, sizeof n->dir, "%s/sentinel-%d", env.dir, idx);
    if (mkdir(n->dir, 0755) < 0) return -1;
    snprintf(conf, sizeof conf, "%s/sentinel.conf", n->dir);
    snprintf(log, sizeof log, "%s/sentinel.log", n->dir);
    snprintf(text, sizeof text,
             "port %d\nbind 127.0.0.1\ndaemonize no\ndir %s\nlogfile %s\n"
             "sentinel monitor " MASTER " 127.0.0.1 %d 2\n"
             "sentinel down-after-milliseconds " MASTER " 1000\n"
             "sentinel failover-timeout " MASTER " 3000\n"
             "sentinel parallel-syncs " MASTER " 1\n",
             n->port, n->dir, log, master_port);
    if (h_write_file(conf, text) < 0) return -1;
    char *argv[] = {"redis-sentinel", conf, NULL};
    n->pid = h_spawn(argv, NULL, NULL);
    return h_wait_port(n->port, 10000);
}

static redisContext *node_connect(int port)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c && c->err) {
        redisFree(c);
        return NULL;
    }
    if (c) redisSetTimeout(c, tv);
    return c;
}

static long long array_len(int port, const char *cmd)
{
    redisContext *c = node_connect(port);
    if (!c) return -1;
    redisReply *r = redisCommand(c, cmd);
    long long n = r && r->type == REDIS_REPLY_ARRAY ? (long long)r->elements : -1;
    if (r) freeReplyObject(r);
    redisFree(c);
    return n;
}

/* A sentinel sees at least one replica in good health (flags exactly "slave"). */
static bool replica_healthy(int port)
{
    redisContext *c = node_connect(port);
    if (!c) return false;
    redisReply *r = redisCommand(c, "SENTINEL REPLICAS " MASTER);
    bool ok = false;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements && !ok; i++) {
        redisReply *e = r->element[i];
        for (size_t k = 0; e->type == REDIS_REPLY_ARRAY && k + 1 < e->elements; k += 2)
            if (strcmp(e->element[k]->str, "flags") == 0)
                ok = strcmp(e->element[k + 1]->str, "slave") == 0;
    }
    if (r) freeReplyObject(r);
    redisFree(c);
    return ok;
}

/* Every sentinel sees a healthy replica and the two other sentinels. */
static bool sentinels_ready(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++)
        if (!replica_healthy(sentinels[i].port) ||
            array_len(sentinels[i].port, "SENTINEL SENTINELS " MASTER) < 2)
            return false;
    return true;
}

static bool replica_synced(void *arg)
{
    redisContext *c = node_connect(*(int *)arg);
    if (!c) return false;
    char *info = h_redis_str(c, "INFO replication");
    bool ok = info && strstr(info, "master_link_status:up");
    free(info);
    redisFree(c);
    return ok;
}

/* The master's port as the sentinels see it (0 when unknown). */
static int current_master(void)
{
    for (int i = 0; i < 3; i++) {
        redisContext *c = node_connect(sentinels[i].port);
        if (!c) continue;
        redisReply *r = redisCommand(c, "SENTINEL get-master-addr-by-name " MASTER);
        int port =
            r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 ? atoi(r->element[1]->str) : 0;
        if (r) freeReplyObject(r);
        redisFree(c);
        if (port) return port;
    }
    return 0;
}

static node_t *node_by_port(int port)
{
    for (int i = 0; i < 2; i++)
        if (nodes[i].port == port) return &nodes[i];
    return NULL;
}

/* ---------- service config ---------- */

/* Replaces the harness's "redis" object with `redis_json` and writes it to path. */
static int write_config(const char *path, const char *redis_json)
{
    char *text = h_read_file(env.config, NULL);
    char *start = text ? strstr(text, "\"redis\": {") : NULL;
    char *end = start ? strchr(start, '}') : NULL;
    if (!end) return -1;
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    fprintf(f, "%.*s\"redis\": %s%s", (int)(start - text), text, redis_json, end + 1);
    fclose(f);
    int rc = h_write_file(path, out);
    free(out);
    free(text);
    return rc;
}

static int setup(void **state)
{
    (void)state;
    if (h_env_start(&env, "\"max_concurrency\": 16, \"shutdown_grace\": 1", NULL, NULL) < 0)
        return -1;
    if (redis_node_start(&nodes[0], "master", 0) < 0) return -1;
    if (redis_node_start(&nodes[1], "replica", nodes[0].port) < 0) return -1;
    if (!h_wait_for(replica_synced, &nodes[1].port, 15000)) return -1;
    for (int i = 0; i < 3; i++)
        if (sentinel_start(&sentinels[i], i, nodes[0].port) < 0) return -1;
    if (!h_wait_for(sentinels_ready, NULL, 30000)) return -1;
    dead_sentinel_port = h_free_port();
    char redis[1024];
    snprintf(redis, sizeof redis,
             "{\"sentinel\": [\"127.0.0.1:%d\", \"localhost:%d\", \"localhost:%d\", "
             "\"localhost:%d\"], \"master_name\": \"" MASTER "\"}",
             dead_sentinel_port, sentinels[0].port, sentinels[1].port, sentinels[2].port);
    if (write_config(env.config, redis) < 0) return -1;
    api_pid = h_env_run(&env, "api");
    proc_pid = h_env_run(&env, "processor");
    notif_pid = h_env_run(&env, "notifier");
    return api_pid > 0 && proc_pid > 0 && notif_pid > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    /* the service first (it may still talk to Redis), then Redis, then the temp dir */
    for (int i = 0; i < env.nprocs; i++)
        h_stop(env.procs[i], SIGTERM, 15000);
    env.nprocs = 0;
    for (int i = 0; i < 3; i++)
        h_stop(sentinels[i].pid, SIGTERM, 5000);
    for (int i = 0; i < 2; i++)
        h_stop(nodes[i].pid, SIGTERM, 5000);
    h_env_stop(&env);
    return 0;
}

/* ---------- jobs ---------- */

static long post_to(int port, const char *path, int k, char *id)
{
    char url[512], cb[256], body[2048], api[256];
    h_origin_url(&env, url, sizeof url, path);
    h_origin_url(&env, cb, sizeof cb, "/callback/s");
    snprintf(body, sizeof body,
             "{\"url\":\"%s\",\"aggr_id\":\"sent-%d\",\"aggr_limit\":2,\"callback_url\":\"%s\"}",
             url, k % 3, cb);
    snprintf(api, sizeof api, "http://127.0.0.1:%d/download", port);
    h_resp_t r;
    long st = h_http("POST", api, body, NULL, &r) == 0 ? r.status : -1;
    const char *p = strstr(r.body ? r.body : "", "\"id\":\"");
    if (id && st == 201 && p) snprintf(id, 15, "%.14s", p + 6);
    h_resp_free(&r);
    return st;
}

/* Posts a job on the service's API and remembers it when acknowledged. */
static long post(const char *path)
{
    char id[16];
    long st = post_to(env.api_port, path, n_ids, id);
    if (st == 201 && n_ids < MAX_JOBS) snprintf(ids[n_ids++], 16, "%s", id);
    return st;
}

static bool alive(pid_t pid)
{
    int status;
    return waitpid(pid, &status, WNOHANG) == 0;
}

typedef struct {
    int from, to, missing;
} cbwait_t;

static bool all_called_back(void *arg)
{
    cbwait_t *w = arg;
    yajl_val list = h_origin_json(&env, "/_callbacks");
    w->missing = 0;
    for (int i = w->from; i < w->to; i++) {
        bool found = false;
        char needle[64];
        snprintf(needle, sizeof needle, "\"job_id\":\"%s\"", ids[i]);
        for (size_t k = 0; list && YAJL_IS_ARRAY(list) && k < list->u.array.len && !found; k++) {
            yajl_val cb = list->u.array.values[k];
            const char *body = h_jstr(cb, "body");
            found = body && strstr(body, needle) && h_jint(cb, "status") == 200;
        }
        w->missing += !found;
    }
    if (list) yajl_tree_free(list);
    return w->missing == 0;
}

static bool log_has(const char *name, const char *needle)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s", env.dir, name);
    char *text = h_read_file(path, NULL);
    bool ok = text && strstr(text, needle);
    free(text);
    return ok;
}

/* The largest value of the samples starting with `prefix` on an API's /metrics, or -1. */
static long long metric(int port, const char *prefix)
{
    char url[256];
    h_resp_t r;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
    long long v = -1;
    if (h_http("GET", url, NULL, NULL, &r) == 0) {
        for (const char *line = r.body; line && *line; line = strchr(line, '\n')) {
            line += *line == '\n';
            if (strncmp(line, prefix, strlen(prefix)) != 0) continue;
            const char *sp = line + strcspn(line, " \n");
            if (*sp == ' ' && atoll(sp + 1) > v) v = atoll(sp + 1);
        }
    }
    h_resp_free(&r);
    return v;
}

/* ---------- tests ---------- */

/* The API answers without 503 once its Redis connection is up. */
static bool api_up(void *arg)
{
    char url[256];
    h_resp_t r;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ready", *(int *)arg);
    bool ok = h_http("GET", url, NULL, NULL, &r) == 0 && r.status == 200;
    h_resp_free(&r);
    return ok;
}

/* A sentinel that names the replica first: the API must check the node with ROLE, ask
 * again and settle on the real master. */
static void test_role_check(void **state)
{
    (void)state;
    int master = current_master();
    assert_true(master > 0);
    int replica = nodes[0].port == master ? nodes[1].port : nodes[0].port;
    char answers[128], fport[16], script[600], cfg[700], redis[256], port[16], log[700];
    int sport = h_free_port();
    snprintf(fport, sizeof fport, "%d", sport);
    snprintf(answers, sizeof answers, "127.0.0.1:%d,127.0.0.1:%d", replica, master);
    snprintf(script, sizeof script, "%s/test/fake_sentinel.py", h_src());
    char *fargv[] = {"python3", script, "--port", fport, "--answers", answers, NULL};
    pid_t fake = h_spawn(fargv, NULL, NULL);
    assert_int_equal(h_wait_port(sport, 10000), 0);

    snprintf(cfg, sizeof cfg, "%s/config-role.json", env.dir);
    snprintf(redis, sizeof redis, "{\"sentinel\": [\"127.0.0.1:%d\"], \"master_name\": \"x\"}",
             sport);
    assert_int_equal(write_config(cfg, redis), 0);
    int aport = h_free_port();
    snprintf(port, sizeof port, "%d", aport);
    snprintf(log, sizeof log, "%s/api-role.log", env.dir);
    char *argv[] = {(char *)h_bin(), "api", "-c", cfg, "--host", "127.0.0.1", "-p", port, NULL};
    pid_t pid = h_spawn(argv, log, NULL);
    assert_int_equal(h_wait_port(aport, 10000), 0);
    assert_true(h_wait_for(api_up, &aport, 15000));
    char id[16];
    assert_int_equal(post_to(aport, "/data/10", 0, id), 201);
    redisContext *m = node_connect(master);
    assert_non_null(m);
    assert_int_equal(h_redis_int(m, "EXISTS job:%s", id), 1);
    redisFree(m);
    assert_true(log_has("api-role.log", "redis node is not a master"));
    h_stop(pid, SIGTERM, 10000);
    h_stop(fake, SIGTERM, 3000);
}

/* A second API in plain mode on the master with redis.wait_replicas = 1. */
static void test_wait_replicas(void **state)
{
    (void)state;
    char cfg[700], redis[512], port[16], log[700];
    snprintf(cfg, sizeof cfg, "%s/config-wait.json", env.dir);
    snprintf(redis, sizeof redis,
             "{\"addr\": \"127.0.0.1:%d\", \"wait_replicas\": 1, \"wait_timeout\": 1000}",
             nodes[0].port);
    assert_int_equal(write_config(cfg, redis), 0);
    int wport = h_free_port();
    snprintf(port, sizeof port, "%d", wport);
    snprintf(log, sizeof log, "%s/api-wait.log", env.dir);
    char *argv[] = {(char *)h_bin(), "api", "-c", cfg, "--host", "127.0.0.1", "-p", port, NULL};
    pid_t pid = h_spawn(argv, log, NULL);
    assert_int_equal(h_wait_port(wport, 10000), 0);
    assert_true(h_wait_for(api_up, &wport, 10000));
    redisContext *rep = node_connect(nodes[1].port);
    assert_non_null(rep);

    /* acknowledged means on the replica; and what it costs */
    char id[16];
    long t0 = now_ms();
    for (int i = 0; i < 20; i++) {
        assert_int_equal(post_to(wport, "/data/10", i, id), 201);
        if (h_redis_int(rep, "EXISTS job:%s", id) != 1)
            fail_msg("job %d acknowledged but not on the replica (unreplicated: %lld)", i,
                     metric(wport, "downloader_enqueue_unreplicated_total{"));
    }
    long with_wait = now_ms() - t0;
    t0 = now_ms();
    for (int i = 0; i < 20; i++)
        assert_int_equal(post_to(env.api_port, "/data/10", i, NULL), 201);
    long without = now_ms() - t0;
    printf("# POST /download over 20 requests: %.2f ms each with WAIT 1, %.2f ms without\n",
           with_wait / 20.0, without / 20.0);

    /* replica stopped: answered after wait_timeout, counted */
    long long unrep = metric(wport, "downloader_enqueue_unreplicated_total{");
    kill(nodes[1].pid, SIGSTOP);
    t0 = now_ms();
    long st = post_to(wport, "/data/10", 0, NULL);
    long took = now_ms() - t0;
    kill(nodes[1].pid, SIGCONT);
    assert_int_equal(st, 201);
    if (took < 950) fail_msg("answered after %ld ms, before wait_timeout", took);
    assert_int_equal(metric(wport, "downloader_enqueue_unreplicated_total{"), unrep + 1);
    redisFree(rep);
    h_stop(pid, SIGTERM, 10000);
    assert_true(h_wait_for(replica_synced, &nodes[1].port, 15000));
    assert_true(h_wait_for(sentinels_ready, NULL, 30000));
}

/* Makes sure every write so far reached the replica: a write of our own, then WAIT. */
static void assert_replicated(int master_port)
{
    redisContext *m = node_connect(master_port);
    assert_non_null(m);
    freeReplyObject(h_redis(m, "SET sentinel-test-probe %d", n_ids));
    assert_int_equal(h_redis_int(m, "WAIT 1 5000"), 1);
    redisFree(m);
}

static void test_failover(void **state)
{
    (void)state;
    int base = n_ids;
    for (int i = 0; i < N_BEFORE; i++)
        assert_int_equal(post("/data/5000?delay_ms=150"), 201);
    int master = current_master();
    assert_true(master > 0);
    assert_replicated(master);
    node_t *victim = node_by_port(master);
    assert_non_null(victim);

    /* kill the master while downloads are in flight; probe the API meanwhile */
    long t0 = now_ms();
    h_stop(victim->pid, SIGKILL, 2000);
    victim->pid = 0;
    int down = 0, other = 0;
    long st = 0, recovered = -1;
    while (now_ms() - t0 < 45000) {
        st = post("/data/100");
        if (st == 201) {
            recovered = now_ms() - t0;
            break;
        }
        if (st == 503)
            down++;
        else
            other++;
        usleep(100000);
    }
    printf("# failover: API answered 503 %d times, back after %ld ms (SIGKILL of the master to "
           "the first 201)\n",
           down, recovered);
    assert_true(recovered > 0);
    assert_true(down > 0);
    assert_int_equal(other, 0);
    assert_true(current_master() != master);

    /* everything acknowledged before the failover completes */
    cbwait_t w = {base, n_ids, 0};
    if (!h_wait_for(all_called_back, &w, 60000)) fail_msg("%d jobs without a callback", w.missing);

    /* new jobs on the new master: needs the re-subscribed wake-ups */
    int after = n_ids;
    for (int i = 0; i < N_AFTER; i++)
        assert_int_equal(post("/data/2000"), 201);
    cbwait_t w2 = {after, n_ids, 0};
    if (!h_wait_for(all_called_back, &w2, 30000))
        fail_msg("%d jobs without a callback", w2.missing);
    printf("# failover: %d jobs called back, %d duplicate callbacks (at-least-once)\n",
           n_ids - base, h_duplicates(&env, (const char(*)[16])ids, n_ids));

    assert_true(alive(api_pid) && alive(proc_pid) && alive(notif_pid));
    assert_true(metric(env.api_port, "downloader_redis_reconnects_total{") >= 1);
    assert_true(log_has("api-0.log", "sentinel switched the redis master"));
    assert_true(log_has("processor-1.log", "sentinel switched the redis master"));
    assert_true(log_has("notifier-2.log", "sentinel switched the redis master"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_role_check),
        cmocka_unit_test(test_wait_replicas),
        cmocka_unit_test(test_failover),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
