/* API integration tests of HTTP abuse found by the issue 13 probe: one client address
 * holding its maximum of idle connections (api.max_connections_per_client) does not
 * lock out another client's GET /hb, and a space before a header colon is a 400. The
 * real binary (`downloader api`) against a private redis-server; clients connect from
 * 127.0.0.1 and 127.0.0.2 (both loopback on Linux). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define PER_CLIENT 4

static h_env_t env;

static int setup(void **state)
{
    (void)state;
    if (h_env_start_ex(&env, NULL, NULL, NULL,
                       "\"max_connections\": 50, \"max_connections_per_client\": 4") < 0)
        return -1;
    return h_env_run(&env, "api") < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    h_env_stop(&env);
    return 0;
}

/* A connection to the API from the loopback address src ("127.0.0.2"). */
static int connect_from(const char *src)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in from = {.sin_family = AF_INET}, to = {.sin_family = AF_INET};
    inet_pton(AF_INET, src, &from.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    to.sin_port = htons((uint16_t)env.api_port);
    assert_int_equal(bind(fd, (struct sockaddr *)&from, sizeof from), 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&to, sizeof to), 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* Sends req and reads one response head; the status, or 0 when the server closed. */
static int exchange(int fd, const char *req, char *buf, size_t cap)
{
    (void)send(fd, req, strlen(req), MSG_NOSIGNAL);
    size_t len = 0;
    while (len + 1 < cap) {
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end) {
            const char *cl = strstr(buf, "Content-Length: ");
            size_t body = cl ? strtoul(cl + 16, NULL, 10) : 0;
            if (len >= (size_t)(end + 4 - buf) + body) return atoi(buf + 9);
        }
    }
    return 0;
}

static void test_one_client_cannot_lock_out_hb(void **state)
{
    (void)state;
    char buf[4096];
    int held[PER_CLIENT];
    static const char hb[] = "GET /hb HTTP/1.1\r\nHost: x\r\n\r\n";
    for (int i = 0; i < PER_CLIENT; i++) {
        /* the harness's own port probe may still hold a slot for a moment */
        int st = 0;
        for (int tries = 0; tries < 50 && st != 200; tries++) {
            held[i] = connect_from("127.0.0.1");
            st = exchange(held[i], hb, buf, sizeof buf);
            if (st != 200) {
                close(held[i]);
                usleep(50 * 1000);
            }
        }
        assert_int_equal(st, 200); /* kept alive, now idle */
    }
    int extra = connect_from("127.0.0.1");
    assert_int_equal(exchange(extra, hb, buf, sizeof buf), 0); /* closed at once */
    close(extra);
    int lb = connect_from("127.0.0.2");
    assert_int_equal(exchange(lb, hb, buf, sizeof buf), 200);
    close(lb);
    for (int i = 0; i < PER_CLIENT; i++)
        close(held[i]);
}

static void test_space_before_colon(void **state)
{
    (void)state;
    char buf[4096];
    int fd = connect_from("127.0.0.3");
    assert_int_equal(exchange(fd, "GET /hb HTTP/1.1\r\nHost : x\r\n\r\n", buf, sizeof buf), 400);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_client_cannot_lock_out_hb),
        cmocka_unit_test(test_space_before_colon),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
