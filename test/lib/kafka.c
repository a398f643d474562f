/* kafka: mock-cluster process control and a consumer for the integration tests. */
#include "kafka.h"

#include <fcntl.h>
#include <stdbool.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Reads one line from fd within timeout_ms. 0 or -1. */
static int read_line(int fd, char *buf, size_t len, int timeout_ms)
{
    size_t n = 0;
    long end = now_ms() + timeout_ms;
    while (n + 1 < len) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = (int)(end - now_ms());
        if (left <= 0 || poll(&p, 1, left) <= 0) return -1;
        char c;
        if (read(fd, &c, 1) != 1) return -1;
        if (c == '\n') break;
        buf[n++] = c;
    }
    buf[n] = 0;
    return 0;
}

int kmock_start(kmock_t *k, const char *topic)
{
    char tool[512];
    h_tool(tool, sizeof tool, "kafka_mock");
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) return -1;
    k->pid = fork();
    if (k->pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        char *argv[] = {tool, "--topic", (char *)topic, "1", NULL};
        if (!topic) argv[1] = "1", argv[2] = NULL;
        execv(tool, argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    k->in = in[1];
    k->out = out[0];
    char line[sizeof k->bootstrap - 10];
    if (read_line(k->out, line, sizeof line, 10000) < 0 || strncmp(line, "BOOTSTRAP=", 10) != 0)
        return -1;
    snprintf(k->bootstrap, sizeof k->bootstrap, "%s", line + 10);
    return 0;
}

int kmock_cmd(kmock_t *k, const char *cmd)
{
    char line[256];
    if (write(k->in, cmd, strlen(cmd)) < 0 || write(k->in, "\n", 1) != 1) return -1;
    if (read_line(k->out, line, sizeof line, 5000) < 0) return -1;
    return strcmp(line, "OK") == 0 ? 0 : -1;
}

void kmock_stop(kmock_t *k)
{
    if (k->pid <= 0) return;
    close(k->in);
    h_stop(k->pid, SIGTERM, 5000);
    close(k->out);
    k->pid = 0;
}

void kconsumed_free(kconsumed_t *m)
{
    for (int i = 0; i < m->count; i++) {
        free(m->keys[i]);
        free(m->values[i]);
    }
    free(m->keys);
    free(m->values);
}

void kconf_set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
    char err[256];
    assert_int_equal(rd_kafka_conf_set(conf, name, value, err, sizeof err), RD_KAFKA_CONF_OK);
}

static rd_kafka_t *consumer_new(const char *bootstrap, const char *topic)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[256], group[64];
    snprintf(group, sizeof group, "test-%d-%ld", (int)getpid(), now_ms());
    kconf_set(conf, "bootstrap.servers", bootstrap);
    kconf_set(conf, "group.id", group);
    kconf_set(conf, "auto.offset.reset", "earliest");
    kconf_set(conf, "enable.auto.commit", "false");
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    assert_non_null(rk);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(tl, topic, RD_KAFKA_PARTITION_UA);
    assert_int_equal(rd_kafka_subscribe(rk, tl), 0);
    rd_kafka_topic_partition_list_destroy(tl);
    return rk;
}

void kconsume(const char *bootstrap, const char *topic, int want, const char *until_key,
              kconsumed_t *out)
{
    rd_kafka_t *rk = consumer_new(bootstrap, topic);
    out->count = 0;
    out->keys = calloc((size_t)want + 1, sizeof *out->keys);
    out->values = calloc((size_t)want + 1, sizeof *out->values);
    long end = now_ms() + 30000;
    while (out->count < want && now_ms() < end) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m) continue;
        if (!m->err) {
            out->keys[out->count] = strndup(m->key ? m->key : "", m->key_len);
            out->values[out->count] = strndup(m->payload ? m->payload : "", m->len);
            bool last = until_key && strcmp(out->keys[out->count], until_key) == 0;
            out->count++;
            if (last) want = out->count;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp(a, *(const char *const *)b);
}

int kconsume_keys(const char *bootstrap, const char *topic, const char *const *keys, int n,
                  int timeout_ms, int idle_ms, int *counts, char **values)
{
    rd_kafka_t *rk = consumer_new(bootstrap, topic);
    int missing = n, unknown = 0;
    memset(counts, 0, (size_t)n * sizeof *counts);
    if (values) memset(values, 0, (size_t)n * sizeof *values);
    long end = now_ms() + timeout_ms, last = now_ms();
    for (;;) {
        long t = now_ms();
        if (missing > 0 ? t >= end : t - last >= idle_ms) break;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) continue;
        if (!m->err) {
            char *key = strndup(m->key ? m->key : "", m->key_len);
            const char *const *hit = bsearch(key, keys, (size_t)n, sizeof *keys, cmp_key);
            if (hit) {
                size_t i = (size_t)(hit - keys);
                if (counts[i]++ == 0) {
                    missing--;
                    if (values) values[i] = strndup(m->payload ? m->payload : "", m->len);
                }
            } else {
                unknown++;
            }
            free(key);
            last = now_ms();
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return unknown;
}
