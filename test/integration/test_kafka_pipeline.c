/* End to end with Kafka callbacks: `downloader all` against a private redis-server,
 * the test origin, and librdkafka's mock cluster reached over loopback TCP. A job's
 * callback must arrive on topic callback_dst with the job id as key and the §7.3
 * payload, also when the broker was down for a while (retries, W16). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "kafka.h"

static h_env_t env;
static kmock_t kmock;

static int setup(void **state)
{
    (void)state;
    char backends[1024];
    if (kmock_start(&kmock, "callbacks:2") < 0) {
        fprintf(stderr, "kafka_mock did not start\n");
        return -1;
    }
    snprintf(backends, sizeof backends,
             "{\"http\": {\"timeout\": 5}, \"kafka\": {\"bootstrap.servers\": \"%s\", "
             "\"message.timeout.ms\": 1500, \"go.delivery.reports\": true}}",
             kmock.bootstrap);
    if (h_env_start(&env, NULL, "\"max_attempts\": 20", backends) < 0) return -1;
    return h_env_run(&env, "all") < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    h_env_stop(&env);
    kmock_stop(&kmock);
    return 0;
}

static void post_kafka_job(const char *path, const char *extra, char *id)
{
    char url[256], body[1024];
    h_origin_url(&env, url, sizeof url, path);
    snprintf(body, sizeof body,
             "{\"url\":\"%s\",\"aggr_id\":\"k\",\"aggr_limit\":2,\"callback_type\":\"kafka\","
             "\"callback_dst\":\"callbacks\",\"extra\":\"%s\"}",
             url, extra);
    assert_int_equal(h_post_job(&env, body, id), 201);
}

/* Finds the message keyed id among those consumed; returns its parsed payload. */
static yajl_val find(const kconsumed_t *got, const char *id)
{
    for (int i = 0; i < got->count; i++)
        if (strcmp(got->keys[i], id) == 0) return h_json(got->values[i]);
    return NULL;
}

static void test_kafka_callback_payload_and_key(void **state)
{
    (void)state;
    char id[16], url[256];
    post_kafka_job("/file/image.png", "via-kafka", id);
    kconsumed_t got;
    kconsume(kmock.bootstrap, "callbacks", 64, id, &got);
    yajl_val p = find(&got, id);
    assert_non_null(p);
    assert_int_equal(p->u.object.len, 10);
    assert_int_equal(h_jbool(p, "success"), 1);
    assert_string_equal(h_jstr(p, "job_id"), id);
    assert_string_equal(h_jstr(p, "extra"), "via-kafka");
    h_origin_url(&env, url, sizeof url, "/file/image.png");
    assert_string_equal(h_jstr(p, "resource_url"), url);
    assert_int_equal(h_jint(p, "response_code"), 200);
    assert_int_equal(h_jbool(p, "delivered"), 1);
    yajl_tree_free(p);
    kconsumed_free(&got);
}

static void test_kafka_broker_down_then_up(void **state)
{
    (void)state;
    char id[16];
    assert_int_equal(kmock_cmd(&kmock, "down 1"), 0);
    post_kafka_job("/data/100", "after-outage", id);
    sleep(4); /* deliveries time out (message.timeout.ms 1.5 s) and are retried */
    assert_int_equal(kmock_cmd(&kmock, "up 1"), 0);
    kconsumed_t got;
    kconsume(kmock.bootstrap, "callbacks", 64, id, &got);
    yajl_val p = find(&got, id);
    assert_non_null(p);
    assert_string_equal(h_jstr(p, "extra"), "after-outage");
    yajl_tree_free(p);
    kconsumed_free(&got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kafka_callback_payload_and_key),
        cmocka_unit_test(test_kafka_broker_down_then_up),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
