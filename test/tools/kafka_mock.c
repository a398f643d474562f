/* kafka_mock: a test Kafka broker. Starts librdkafka's mock cluster (hosted by a
 * producer handle, as librdkafka requires) with N brokers on loopback, prints
 * `BOOTSTRAP=<host:port,...>` on stdout, then serves control lines on stdin until
 * SIGTERM/SIGINT or end of stdin. Tests and benchmarks spawn it with pipes and point
 * the downloader's Kafka backend (and their own consumers) at the bootstrap address.
 *
 *   kafka_mock [--topic name:partitions]... [brokers]      (default 1 broker)
 *
 * Control lines (each answered with "OK" or "ERR <reason>" on stdout):
 *   down <broker_id|-1>          disconnect the broker and refuse connections
 *   up <broker_id|-1>            accept connections again
 *   rtt <broker_id|-1> <ms>      delay every response
 *   produce_errors <cnt> <err>   fail the next cnt Produce requests with Kafka error
 *                                code err (e.g. 3 = UNKNOWN_TOPIC_OR_PART)
 *   topic <name> <partitions>    create a topic
 *   topic_error <name> <err>     make Metadata report err for the topic (0 clears) */
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define API_PRODUCE 0 /* Kafka protocol ApiKey of ProduceRequest */

typedef struct {
    char buf[4096];
    size_t len;
} linebuf_t;

static void reply(rd_kafka_resp_err_t err)
{
    if (err)
        printf("ERR %s\n", rd_kafka_err2str(err));
    else
        printf("OK\n");
    fflush(stdout);
}

static rd_kafka_resp_err_t topic_create(rd_kafka_mock_cluster_t *mc, const char *name, int parts)
{
    return rd_kafka_mock_topic_create(mc, name, parts > 0 ? parts : 1, 1);
}

static rd_kafka_resp_err_t produce_errors(rd_kafka_mock_cluster_t *mc, long cnt, long code)
{
    if (cnt <= 0 || cnt > 1000) return RD_KAFKA_RESP_ERR__INVALID_ARG;
    rd_kafka_resp_err_t errs[1000];
    for (long i = 0; i < cnt; i++)
        errs[i] = (rd_kafka_resp_err_t)code;
    rd_kafka_mock_push_request_errors_array(mc, API_PRODUCE, (size_t)cnt, errs);
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* Runs one control line. */
static void command(rd_kafka_mock_cluster_t *mc, const char *line)
{
    char name[256];
    long a = 0, b = 0;
    if (sscanf(line, "down %ld", &a) == 1)
        reply(rd_kafka_mock_broker_set_down(mc, (int32_t)a));
    else if (sscanf(line, "up %ld", &a) == 1)
        reply(rd_kafka_mock_broker_set_up(mc, (int32_t)a));
    else if (sscanf(line, "rtt %ld %ld", &a, &b) == 2)
        reply(rd_kafka_mock_broker_set_rtt(mc, (int32_t)a, (int)b));
    else if (sscanf(line, "produce_errors %ld %ld", &a, &b) == 2)
        reply(produce_errors(mc, a, b));
    else if (sscanf(line, "topic_error %255s %ld", name, &a) == 2) {
        rd_kafka_mock_topic_set_error(mc, name, (rd_kafka_resp_err_t)a);
        reply(RD_KAFKA_RESP_ERR_NO_ERROR);
    } else if (sscanf(line, "topic %255s %ld", name, &a) == 2)
        reply(topic_create(mc, name, (int)a));
    else if (line[0])
        reply(RD_KAFKA_RESP_ERR__INVALID_ARG);
}

/* Reads what stdin has and runs each complete line. Returns -1 at end of input. */
static int read_commands(rd_kafka_mock_cluster_t *mc, linebuf_t *lb)
{
    ssize_t n = read(0, lb->buf + lb->len, sizeof lb->buf - 1 - lb->len);
    if (n < 0) return errno == EINTR || errno == EAGAIN ? 0 : -1;
    if (n == 0) return -1;
    lb->len += (size_t)n;
    char *nl;
    while ((nl = memchr(lb->buf, '\n', lb->len))) {
        *nl = 0;
        command(mc, lb->buf);
        size_t used = (size_t)(nl - lb->buf) + 1;
        memmove(lb->buf, nl + 1, lb->len - used);
        lb->len -= used;
    }
    if (lb->len == sizeof lb->buf - 1) lb->len = 0; /* overlong line: drop it */
    return 0;
}

/* Waits for a termination signal or the end of stdin, serving control lines. */
static void serve(rd_kafka_mock_cluster_t *mc, int sigfd)
{
    linebuf_t lb = {.len = 0};
    struct pollfd fds[2] = {{.fd = sigfd, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
    for (;;) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return;
        }
        if (fds[0].revents) return;
        if (fds[1].revents && read_commands(mc, &lb) < 0) return;
    }
}

/* Blocks SIGTERM/SIGINT (before librdkafka starts its threads) and returns a signalfd. */
static int block_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) return -1;
    signal(SIGPIPE, SIG_IGN);
    return signalfd(-1, &set, SFD_CLOEXEC);
}

static int parse_args(int argc, char **argv, int *brokers)
{
    *brokers = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--topic") == 0 && i + 1 < argc)
            i++;
        else if ((*brokers = atoi(argv[i])) < 1)
            return -1;
    }
    return 0;
}

static int create_topics(rd_kafka_mock_cluster_t *mc, int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--topic") != 0) continue;
        char name[256];
        int parts = 1;
        const char *colon = strchr(argv[++i], ':');
        size_t n = colon ? (size_t)(colon - argv[i]) : strlen(argv[i]);
        snprintf(name, sizeof name, "%.*s", (int)n, argv[i]);
        if (colon) parts = atoi(colon + 1);
        rd_kafka_resp_err_t err = topic_create(mc, name, parts);
        if (err) {
            fprintf(stderr, "kafka_mock: topic %s: %s\n", name, rd_kafka_err2str(err));
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    int brokers;
    if (parse_args(argc, argv, &brokers) < 0) {
        fprintf(stderr, "usage: %s [--topic name:partitions]... [brokers]\n", argv[0]);
        return 2;
    }
    int sigfd = block_signals();
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "4", err,
                      sizeof err); /* no "no bootstrap.servers" notice */
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (sigfd < 0 || !rk) {
        fprintf(stderr, "kafka_mock: %s\n", rk ? strerror(errno) : err);
        if (!rk) rd_kafka_conf_destroy(conf);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
    int rc = mc && create_topics(mc, argc, argv) == 0 ? 0 : 1;
    if (rc == 0) {
        printf("BOOTSTRAP=%s\n", rd_kafka_mock_cluster_bootstraps(mc));
        fflush(stdout);
        serve(mc, sigfd);
    }
    if (mc) rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    close(sigfd);
    return rc;
}
