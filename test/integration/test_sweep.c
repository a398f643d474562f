/* The processor's periodic sweep of orphaned partial files (issue 16 follow-up):
 * with processor.tmp_sweep_interval 1 s, stale <storage_dir>/<id>.tmp files written by
 * hand (old mtimes) go when their job has no hash, succeeded or was purged
 * (DELETE /aggregations/<id>/jobs), and stay while it is Pending (queued in a paused
 * aggregation), while they are fresh, and while Redis is away; a bad
 * tmp_sweep_interval is fatal and named. Real binary, redis-server and
 * test/origin.py. */
#include <fcntl.h>
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

static h_env_t env;
static pid_t processor_pid;

static int setup(void **state)
{
    (void)state;
    if (h_env_start(&env, "\"tmp_sweep_interval\": \"1s\"", NULL, NULL) < 0) return -1;
    return h_env_run(&env, "api") > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    h_env_stop(&env);
    return 0;
}

static long api(const char *method, const char *path, const char *body)
{
    char url[512];
    h_api_url(&env, url, sizeof url, path);
    h_resp_t r;
    long status = h_http(method, url, body, NULL, &r) == 0 ? r.status : -1;
    h_resp_free(&r);
    return status;
}

static void post(const char *aggr, char *id)
{
    char url[256], body[1024];
    h_origin_url(&env, url, sizeof url, "/data/1000");
    snprintf(body, sizeof body,
             "{\"url\":\"%s\",\"aggr_id\":\"%s\",\"aggr_limit\":2,\"callback_url\":\"%s\"}", url,
             aggr, url);
    assert_int_equal(h_post_job(&env, body, id), 201);
}

static void tmp_path(char *buf, size_t len, const char *id)
{
    snprintf(buf, len, "%s/tmp/%s.tmp", env.dir, id);
}

/* <storage_dir>/<id>.tmp of 1000 bytes, last modified age_s seconds ago. */
static void write_tmp(const char *id, time_t age_s)
{
    char path[600], data[1000];
    tmp_path(path, sizeof path, id);
    memset(data, 'p', sizeof data);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, sizeof data), (ssize_t)sizeof data);
    close(fd);
    struct timespec t[2] = {{time(NULL) - age_s, 0}, {time(NULL) - age_s, 0}};
    assert_int_equal(utimensat(AT_FDCWD, path, t, 0), 0);
}

static bool tmp_exists(const char *id)
{
    char path[600];
    struct stat st;
    tmp_path(path, sizeof path, id);
    return stat(path, &st) == 0;
}

static bool gone(void *arg)
{
    for (const char *const *id = arg; *id; id++)
        if (tmp_exists(*id)) return false;
    return true;
}

static bool succeeded(void *arg)
{
    char path[64], url[256];
    snprintf(path, sizeof path, "/download/%s", (const char *)arg);
    h_api_url(&env, url, sizeof url, path);
    h_resp_t r;
    bool ok = false;
    if (h_http("GET", url, NULL, NULL, &r) == 0 && r.status == 200) {
        yajl_val v = h_json(r.body);
        const char *s = v ? h_jstr(v, "download_state") : NULL;
        ok = s && strcmp(s, "Success") == 0;
        yajl_tree_free(v);
    }
    h_resp_free(&r);
    return ok;
}

/* The processor's log holds s. */
static bool logged(const char *s)
{
    char path[600];
    bool found = false;
    for (int i = 0; i < env.nprocs && !found; i++) {
        snprintf(path, sizeof path, "%s/processor-%d.log", env.dir, i);
        size_t len;
        char *text = h_read_file(path, &len);
        found = text && strstr(text, s);
        free(text);
    }
    return found;
}

static const time_t DAY = 86400;

static void test_orphans_go_resumable_stay(void **state)
{
    (void)state;
    char pending[16], purged[16], done[16];
    /* queued before any processor runs, in paused aggregations: Pending for good */
    post("sw-held", pending);
    post("sw-purge", purged);
    assert_int_equal(api("PATCH", "/aggregations/sw-held", "{\"paused\":true}"), 200);
    assert_int_equal(api("PATCH", "/aggregations/sw-purge", "{\"paused\":true}"), 200);
    processor_pid = h_env_run(&env, "processor");
    assert_true(processor_pid > 0);
    post("sw-done", done);
    assert_true(h_wait_for(succeeded, done, 15000));

    const char *unknown = "SweepNoSuchJob1";
    write_tmp(unknown, DAY);
    write_tmp(done, DAY);
    write_tmp(pending, DAY);
    write_tmp(purged, DAY);
    const char *first[] = {unknown, done, NULL};
    assert_true(h_wait_for(gone, first, 15000));
    /* the same round saw these and kept them: their jobs may still resume here */
    assert_true(tmp_exists(pending));
    assert_true(tmp_exists(purged));
    assert_true(h_wait_for((bool (*)(void *))logged, "count=2 bytes=2000", 5000));

    /* a fresh file is no orphan yet, whatever its job; a stale one next to it goes */
    const char *fresh = "SweepFreshJob01", *old = "SweepOldJob0001";
    write_tmp(fresh, 0);
    write_tmp(old, DAY);
    const char *second[] = {old, NULL};
    assert_true(h_wait_for(gone, second, 15000));
    assert_true(tmp_exists(fresh));
    assert_true(tmp_exists(pending));
    assert_true(tmp_exists(purged));

    /* a purge publishes nothing per job: the next round finds the hash gone */
    assert_int_equal(api("DELETE", "/aggregations/sw-purge/jobs", NULL), 200);
    const char *third[] = {purged, NULL};
    assert_true(h_wait_for(gone, third, 15000));
    assert_true(tmp_exists(pending));
    assert_true(tmp_exists(fresh));
}

/* Without Redis' answer nothing is removed; the first round after it is back does. */
static void test_redis_away_removes_nothing(void **state)
{
    (void)state;
    const char *orphan = "SweepRedisAway1";
    h_redis_kill(&env.redis);
    write_tmp(orphan, DAY);
    h_sleep_ms(3500); /* three rounds due */
    assert_true(tmp_exists(orphan));
    assert_int_equal(h_redis_restart(&env.redis), 0);
    const char *ids[] = {orphan, NULL};
    assert_true(h_wait_for(gone, ids, 20000));
}

/* A bad processor.tmp_sweep_interval: exit status 1, the message names the key. */
static void test_bad_interval_is_fatal(void **state)
{
    (void)state;
    const char *bad[] = {"\"soon\"", "0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t len;
        char *cfg = h_read_file(env.config, &len);
        assert_non_null(cfg);
        const char *key = "\"tmp_sweep_interval\": \"1s\"";
        char *at = strstr(cfg, key), path[600], log[600], doc[8192];
        assert_non_null(at);
        snprintf(doc, sizeof doc, "%.*s\"tmp_sweep_interval\": %s%s", (int)(at - cfg), cfg, bad[i],
                 at + strlen(key));
        free(cfg);
        snprintf(path, sizeof path, "%s/bad-%zu.json", env.dir, i);
        snprintf(log, sizeof log, "%s/bad-%zu.log", env.dir, i);
        assert_int_equal(h_write_file(path, doc), 0);
        char *argv[] = {(char *)h_bin(), "processor", "-c", path, NULL};
        pid_t pid = h_spawn(argv, log, NULL);
        assert_true(pid > 0);
        int status = h_stop(pid, 0, 10000);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 1);
        char *out = h_read_file(log, &len);
        assert_non_null(out);
        if (!strstr(out, "processor.tmp_sweep_interval must be")) fail_msg("log: %s", out);
        free(out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_orphans_go_resumable_stay),
        cmocka_unit_test(test_redis_away_removes_nothing),
        cmocka_unit_test(test_bad_interval_is_fatal),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
