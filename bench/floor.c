/* floor: the system-call floor of one rate-limited start on this machine (benchmark 7).
 *
 * A bare loop does, every 1/rate seconds, the input and output that one download start
 * of the processor needs, and nothing else: it sleeps until a timer wakes it, makes a
 * Redis round trip (the claim), fetches one file from the origin over a kept-alive
 * connection, writes it to a new temp file, syncs it, makes the final directory and
 * renames the file into it, and makes a second Redis round trip (the outcome). No
 * libraries, no event loop, no thread pool, no parsing beyond Content-Length.
 *
 * It prints the CPU time (user + system, all of the process) per iteration in
 * microseconds: what the processor's CPU per isolated start is measured against.
 *
 * usage: floor REDIS_PORT ORIGIN_PORT PATH_FMT FILES_DIR N RATE
 *   PATH_FMT: the origin path with one %d (the iteration modulo 1000), e.g. /files/f%04d */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strcasestr */
#endif
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

static int ep;
static char buf[1 << 16];

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static int dial(int port)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct epoll_event e = {.events = EPOLLIN, .data.fd = s};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, s, &e) < 0) die("epoll_ctl");
    return s;
}

/* Sleeps in epoll_wait until fd is readable, as an event loop would. */
static void await(int fd)
{
    struct epoll_event e;
    do {
        if (epoll_wait(ep, &e, 1, -1) < 0) die("epoll_wait");
    } while (e.data.fd != fd);
}

static void redis_round_trip(int s)
{
    static const char cmd[] = "*3\r\n$4\r\nEVAL\r\n$8\r\nreturn 1\r\n$1\r\n0\r\n";
    if (write(s, cmd, sizeof cmd - 1) != (ssize_t)(sizeof cmd - 1)) die("write");
    await(s);
    if (read(s, buf, sizeof buf) <= 0) die("read");
}

/* GET path; returns the body's length, the body at buf + *off. */
static size_t http_get(int s, const char *path, size_t *off)
{
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: origin\r\n\r\n", path);
    if (send(s, req, (size_t)n, 0) != n) die("send");
    size_t got = 0;
    for (;;) {
        await(s);
        ssize_t r = recv(s, buf + got, sizeof buf - 1 - got, 0);
        if (r <= 0) die("recv");
        got += (size_t)r;
        buf[got] = '\0';
        char *end = strstr(buf, "\r\n\r\n"), *cl = strcasestr(buf, "\r\nContent-Length:");
        if (!end || !cl) continue;
        size_t body = strtoul(cl + 17, NULL, 10);
        *off = (size_t)(end + 4 - buf);
        if (got >= *off + body) return body;
    }
}

static void store(const char *dir, int i, const char *data, size_t len)
{
    char tmp[4096], sub[4096], final[4096];
    snprintf(tmp, sizeof tmp, "%s/tmp.%d", dir, i);
    snprintf(sub, sizeof sub, "%s/%d", dir, i);
    snprintf(final, sizeof final, "%s/%d/file", dir, i);
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len || fsync(fd) < 0 || close(fd) < 0)
        die("temp file");
    if (mkdir(sub, 0755) < 0 || rename(tmp, final) < 0) die("store");
}

static double cpu_us(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e6 + u.ru_utime.tv_usec + u.ru_stime.tv_usec;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: floor REDIS_PORT ORIGIN_PORT PATH_FMT FILES_DIR N RATE\n");
        return 2;
    }
    int n = atoi(argv[5]);
    double rate = atof(argv[6]);
    if (n <= 0 || rate <= 0) return 2;
    if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0) die("epoll_create1");
    int redis = dial(atoi(argv[1])), origin = dial(atoi(argv[2]));
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    long iv = (long)(1e9 / rate);
    struct itimerspec t = {.it_interval = {iv / 1000000000, iv % 1000000000},
                           .it_value = {iv / 1000000000, iv % 1000000000}};
    struct epoll_event e = {.events = EPOLLIN, .data.fd = tfd};
    if (tfd < 0 || timerfd_settime(tfd, 0, &t, NULL) < 0 ||
        epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &e) < 0)
        die("timerfd");
    double c0 = cpu_us();
    for (int i = 0; i < n; i++) {
        uint64_t ticks;
        await(tfd);
        if (read(tfd, &ticks, sizeof ticks) != sizeof ticks) die("timerfd read");
        redis_round_trip(redis);
        char path[512];
        size_t off;
        snprintf(path, sizeof path, argv[3], i % 1000);
        size_t len = http_get(origin, path, &off);
        store(argv[4], i, buf + off, len);
        redis_round_trip(redis);
    }
    printf("%.0f\n", (cpu_us() - c0) / n);
    return 0;
}
