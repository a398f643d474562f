/* What an operator sees when Redis is away (issue 13 §2): the real binary started with
 * a redis.addr where nothing listens says so at the default level at once, naming the
 * address and the error, does not repeat it at every reconnect attempt, and logs at
 * info when Redis comes up; a hung Redis (SIGSTOP) likewise. The same for Sentinel
 * mode when no sentinel can name the master (test/fake_sentinel.py stands in for the
 * sentinel that comes up). redis.addr may name the host: "localhost" connects, and a
 * name that cannot be looked up is reported as such (the lookup runs off the loop;
 * test_redisuv shows that a slow one does not stop it). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

typedef struct {
    const char *log;
    char needle[2][256]; /* both on one line */
    int count;           /* lines found */
} find_t;

/* Counts the log's lines that contain both needles. */
static int count_lines(find_t *f)
{
    size_t len;
    char *text = h_read_file(f->log, &len);
    f->count = 0;
    for (char *line = text, *nl; line && *line; line = nl + 1) {
        nl = strchr(line, '\n');
        if (!nl) break;
        *nl = 0;
        f->count += strstr(line, f->needle[0]) && strstr(line, f->needle[1]);
    }
    free(text);
    return f->count;
}

static bool found(void *arg)
{
    return count_lines(arg) > 0;
}

/* Waits for a line of process pid with `head` after its pid (msg=...) and `fields`. */
static void wait_line(find_t *f, const char *log, pid_t pid, const char *level_component,
                      const char *head, const char *fields, int timeout_ms)
{
    f->log = log;
    snprintf(f->needle[0], sizeof f->needle[0], "%s pid=%d %s", level_component, (int)pid, head);
    snprintf(f->needle[1], sizeof f->needle[1], "%s", fields);
    if (!h_wait_for(found, f, timeout_ms))
        fail_msg("no line \"%s\" with \"%s\" in %s", f->needle[0], f->needle[1], log);
}

static pid_t start_api(const char *dir, const char *redis_json, char *log, size_t loglen)
{
    char cfg[600], json[1024], port[16];
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    snprintf(json, sizeof json, "{\"redis\": %s, \"api\": {}}", redis_json);
    assert_int_equal(h_write_file(cfg, json), 0);
    snprintf(log, loglen, "%s/api.log", dir);
    unlink(log);
    snprintf(port, sizeof port, "%d", h_free_port());
    char *argv[] = {(char *)h_bin(), "api", "-c", cfg, "--host", "127.0.0.1", "-p", port, NULL};
    return h_spawn(argv, log, NULL);
}

/* The API exits cleanly; then its Redis and directory go. */
static void finish(pid_t pid, h_redis_t *r, char *dir)
{
    assert_int_equal(h_stop(pid, SIGTERM, 5000), 0);
    h_redis_stop(r);
    h_rmtree(dir);
    free(dir);
}

static void test_redis_unreachable(void **state)
{
    (void)state;
    h_redis_t r;
    assert_int_equal(h_redis_start(&r, false), 0);
    h_redis_kill(&r); /* keeps the port number: nothing listens there now */
    char *dir = h_tmpdir("outage"), log[700], redis[128];
    snprintf(redis, sizeof redis, "{\"addr\": \"127.0.0.1:%d\"}", r.port);
    pid_t pid = start_api(dir, redis, log, sizeof log);

    find_t warn, up;
    char fields[128];
    snprintf(fields, sizeof fields, "addr=127.0.0.1:%d error=\"Connection refused\"", r.port);
    wait_line(&warn, log, pid, "level=warn component=store", "msg=\"redis unreachable, retrying\"",
              fields, 5000);
    /* reconnects back off from 100 ms: about five attempts in 3 s, one line */
    usleep(3000 * 1000);
    assert_int_equal(count_lines(&warn), 1);

    assert_int_equal(h_redis_restart(&r), 0);
    snprintf(fields, sizeof fields, "addr=127.0.0.1:%d down_ms=", r.port);
    wait_line(&up, log, pid, "level=info component=store", "msg=\"redis reachable again\"", fields,
              10000);
    assert_int_equal(count_lines(&warn), 1);

    finish(pid, &r, dir);
}

/* A hung Redis (SIGSTOP) accepts connections but answers nothing: one warn when it
 * stops answering, not one per reconnect whose handshake stalls, and info when it is
 * back. */
static void test_redis_hung(void **state)
{
    (void)state;
    h_redis_t r;
    assert_int_equal(h_redis_start(&r, false), 0);
    char *dir = h_tmpdir("outage"), log[700], redis[128], fields[128];
    snprintf(redis, sizeof redis, "{\"addr\": \"127.0.0.1:%d\", \"command_timeout\": \"1s\"}",
             r.port);
    pid_t pid = start_api(dir, redis, log, sizeof log);
    find_t conn, hung, retry, up;
    snprintf(fields, sizeof fields, "addr=127.0.0.1:%d", r.port);
    wait_line(&conn, log, pid, "level=info component=store", "msg=\"redis connected\"", fields,
              5000);
    assert_int_equal(kill(r.pid, SIGSTOP), 0);
    /* the API's next heartbeat (every 5 s) finds it */
    wait_line(&hung, log, pid, "level=warn component=store",
              "msg=\"redis stopped answering, dropping the connection\"", fields, 10000);
    usleep(4000 * 1000); /* reconnects connect, then their handshakes stall for 1 s each */
    assert_int_equal(kill(r.pid, SIGCONT), 0);
    snprintf(fields, sizeof fields, "addr=127.0.0.1:%d down_ms=", r.port);
    wait_line(&up, log, pid, "level=info component=store", "msg=\"redis reachable again\"", fields,
              10000);
    assert_int_equal(count_lines(&hung), 1);
    retry = (find_t){.log = log, .needle = {"msg=\"redis unreachable, retrying\"", "level=warn"}};
    assert_int_equal(count_lines(&retry), 0); /* within 30 s of the first warn */

    finish(pid, &r, dir);
}

static void test_no_sentinel_names_the_master(void **state)
{
    (void)state;
    h_redis_t r;
    assert_int_equal(h_redis_start(&r, false), 0);
    int sport = h_free_port();
    char *dir = h_tmpdir("outage"), log[700], redis[256];
    snprintf(redis, sizeof redis, "{\"sentinel\": [\"127.0.0.1:%d\"], \"master_name\": \"m\"}",
             sport);
    pid_t pid = start_api(dir, redis, log, sizeof log);

    find_t warn, up;
    char fields[128];
    snprintf(fields, sizeof fields, "errors=\"127.0.0.1:%d: Connection refused\"", sport);
    wait_line(&warn, log, pid, "level=warn component=sentinel",
              "msg=\"no sentinel could name the master, retrying\" master_name=m", fields, 5000);

    char script[512], fport[16], answers[64];
    snprintf(script, sizeof script, "%s/test/fake_sentinel.py", h_src());
    snprintf(fport, sizeof fport, "%d", sport);
    snprintf(answers, sizeof answers, "127.0.0.1:%d", r.port);
    char *fargv[] = {"python3", script, "--port", fport, "--answers", answers, NULL};
    pid_t fake = h_spawn(fargv, NULL, NULL);
    snprintf(fields, sizeof fields, "master=127.0.0.1:%d down_ms=", r.port);
    wait_line(&up, log, pid, "level=info component=sentinel", "msg=\"sentinels reachable again\"",
              fields, 15000);
    assert_int_equal(count_lines(&warn), 1);

    h_stop(fake, SIGTERM, 2000);
    finish(pid, &r, dir);
}

static void test_redis_by_host_name(void **state)
{
    (void)state;
    h_redis_t r;
    assert_int_equal(h_redis_start(&r, false), 0);
    char *dir = h_tmpdir("outage"), log[700], redis[128], fields[128];
    snprintf(redis, sizeof redis, "{\"addr\": \"localhost:%d\"}", r.port);
    pid_t pid = start_api(dir, redis, log, sizeof log);
    find_t conn;
    snprintf(fields, sizeof fields, "addr=localhost:%d", r.port);
    wait_line(&conn, log, pid, "level=info component=store", "msg=\"redis connected\"", fields,
              5000);
    finish(pid, &r, dir);
}

static void test_redis_host_unknown(void **state)
{
    (void)state;
    h_redis_t r;
    assert_int_equal(h_redis_start(&r, false), 0); /* not used: finish() stops it */
    char *dir = h_tmpdir("outage"), log[700];
    pid_t pid = start_api(dir, "{\"addr\": \"no-such-host.invalid:6379\"}", log, sizeof log);
    find_t warn;
    wait_line(&warn, log, pid, "level=warn component=store", "msg=\"redis unreachable, retrying\"",
              "addr=no-such-host.invalid:6379 error=\"cannot look the host up: ", 30000);
    finish(pid, &r, dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis_unreachable),
        cmocka_unit_test(test_redis_hung),
        cmocka_unit_test(test_redis_by_host_name),
        cmocka_unit_test(test_redis_host_unknown),
        cmocka_unit_test(test_no_sentinel_names_the_master),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
