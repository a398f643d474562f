/* kafka: test helpers for librdkafka's mock cluster (build/test/tools/kafka_mock):
 * start and control it, and consume what the service produced. */
#ifndef DOWNLOADER_TEST_KAFKA_H
#define DOWNLOADER_TEST_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <sys/types.h>

typedef struct {
    pid_t pid;
    int in, out; /* its stdin (control lines) and stdout (replies) */
    char bootstrap[512];
} kmock_t;

/* Starts the mock with one broker and the given "topic:partitions" (or NULL). 0 or -1. */
int kmock_start(kmock_t *k, const char *topic);
/* Sends one control line ("down 1", "up 1", ...); 0 when the mock answered OK. */
int kmock_cmd(kmock_t *k, const char *cmd);
void kmock_stop(kmock_t *k);

typedef struct {
    int count;
    char **keys, **values;
} kconsumed_t;

/* Sets a property or fails the test. */
void kconf_set(rd_kafka_conf_t *conf, const char *name, const char *value);
/* Consumes messages of topic from the beginning until `want` arrived, or one keyed
 * until_key (when not NULL), or 30 s passed. */
void kconsume(const char *bootstrap, const char *topic, int want, const char *until_key,
              kconsumed_t *out);
void kconsumed_free(kconsumed_t *m);

/* Consumes topic from the beginning until every one of the n keys arrived at least once
 * or timeout_ms passed, then until idle_ms pass without a message (to count late
 * duplicates). counts[i]: messages keyed keys[i]; values[i] (when values is not NULL):
 * the first such message's payload (malloc'd, NULL when none). Returns the number of
 * messages whose key is not among keys. keys must be sorted (strcmp). */
int kconsume_keys(const char *bootstrap, const char *topic, const char *const *keys, int n,
                  int timeout_ms, int idle_ms, int *counts, char **values);

#endif
