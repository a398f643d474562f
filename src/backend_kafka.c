/* backend_kafka: the Kafka callback backend (§7.6) on librdkafka. One producer built
 * from the backends.kafka properties (config.c has already taken the go.* keys out);
 * each send produces one message to topic = callback_dst with key = job id (consumers
 * deduplicate on it) and a per-message opaque that routes its delivery report to the
 * send's done. librdkafka's main queue (delivery reports, errors, logs) is served on
 * the libuv loop thread: the queue writes a byte to a pipe watched by uv_poll whenever
 * it becomes non-empty, and a slow safety timer polls as well; no thread of ours ever
 * blocks. Every failure is retriable (W16). Closing flushes for up to 5 s in small
 * non-blocking steps, purges what is left (those sends fail) and destroys the producer. */
#include "backend_impl.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FLUSH_MS 5000      /* shutdown flush limit (reference) */
#define PURGE_WAIT_MS 1000 /* after the purge: wait this long for its delivery reports */
#define SAFETY_POLL_MS 1000
#define CLOSE_STEP_MS 50
#define INIT_ERROR "Error while initializing backend kafka. Error details: "

typedef struct backend_kafka backend_kafka_t;

/* One produced message, until its delivery report (or its deferred failure). */
typedef struct kmsg {
    backend_pending_t pending; /* first member: release() casts back */
    struct kmsg *prev, *next;
} kmsg_t;

struct backend_kafka {
    backend_t base; /* first member */
    rd_kafka_t *rk;
    rd_kafka_queue_t *mainq;
    int pipe[2];     /* [0] watched by poll, [1] written by librdkafka */
    uv_poll_t poll;  /* main queue became non-empty */
    uv_timer_t tick; /* safety poll while open; flush steps while closing */
    bool reports;    /* go.delivery.reports */
    kmsg_t *msgs;    /* awaiting their delivery report */
    int nmsgs;
    uint64_t flush_end; /* closing: flush deadline, then purge-wait deadline */
    bool purged;
    bool destroyed;
    int handles; /* open uv handles of ours (poll, tick) */
};

/* ---------- messages ---------- */

static void release_msg(backend_pending_t *p)
{
    free(p);
}

static void msg_link(backend_kafka_t *k, kmsg_t *m)
{
    m->prev = NULL;
    m->next = k->msgs;
    if (k->msgs) k->msgs->prev = m;
    k->msgs = m;
    k->nmsgs++;
}

static void msg_unlink(backend_kafka_t *k, kmsg_t *m)
{
    if (m->prev)
        m->prev->next = m->next;
    else
        k->msgs = m->next;
    if (m->next) m->next->prev = m->prev;
    m->prev = m->next = NULL;
    k->nmsgs--;
}

static void set_error(backend_result_t *res, rd_kafka_resp_err_t err)
{
    backend_fail(res, true, "%s", rd_kafka_err2str(err)); /* every failure is retriable (W16) */
    res->unknown_topic = err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
}

/* ---------- librdkafka callbacks (all run inside rd_kafka_poll on the loop thread) ---------- */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    (void)rk;
    backend_kafka_t *k = opaque;
    kmsg_t *m = msg->_private;
    if (!m) return;
    backend_result_t res;
    if (msg->err)
        set_error(&res, msg->err);
    else
        memset(&res, 0, sizeof res), res.ok = true;
    if (msg->err)
        log_debug("backend_kafka", "callback not delivered", "topic=%s error=%s",
                  log_q(msg->rkt ? rd_kafka_topic_name(msg->rkt) : ""), log_q(res.error));
    msg_unlink(k, m);
    backend_done_fn done = m->pending.done;
    void *arg = m->pending.arg;
    free(m);
    backend_complete(&k->base, done, arg, &res);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk, (void)opaque;
    log_warn("backend_kafka", "kafka client error", "error=%s reason=%s",
             log_q(rd_kafka_err2name((rd_kafka_resp_err_t)err)), log_q(reason));
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    /* connection failures (level 3) are reported again through on_error: warn is enough */
    log_level_t l = level <= 4 ? LOG_WARN : level <= 6 ? LOG_INFO : LOG_DEBUG;
    log_write(l, "backend_kafka", "librdkafka", "facility=%s text=%s", log_q(fac), log_q(buf));
}

/* ---------- serving the main queue from the loop ---------- */

static void drain_pipe(int fd)
{
    char buf[256];
    while (read(fd, buf, sizeof buf) > 0) {
    }
}

static void close_step(backend_kafka_t *k);

static void on_readable(uv_poll_t *p, int status, int events)
{
    (void)status, (void)events;
    backend_kafka_t *k = p->data;
    drain_pipe(k->pipe[0]);
    rd_kafka_poll(k->rk, 0);
    if (k->base.closing) close_step(k);
}

static void on_safety_tick(uv_timer_t *t)
{
    backend_kafka_t *k = t->data;
    rd_kafka_poll(k->rk, 0);
}

/* ---------- closing ---------- */

static void on_handle_closed(uv_handle_t *h)
{
    backend_kafka_t *k = h->data;
    if (--k->handles > 0) return;
    close(k->pipe[0]);
    close(k->pipe[1]);
    backend_impl_closed(&k->base);
}

/* Destroys the producer, fails whatever never got a report, closes our handles. */
static void finish_close(backend_kafka_t *k)
{
    k->destroyed = true;
    uv_poll_stop(&k->poll);
    uv_timer_stop(&k->tick);
    rd_kafka_queue_io_event_enable(k->mainq, -1, NULL, 0);
    rd_kafka_queue_destroy(k->mainq);
    rd_kafka_destroy(k->rk); /* nothing left in flight: returns promptly */
    k->rk = NULL;
    while (k->msgs) {
        kmsg_t *m = k->msgs;
        msg_unlink(k, m);
        set_error(&m->pending.res, RD_KAFKA_RESP_ERR__PURGE_QUEUE);
        backend_defer(&k->base, &m->pending);
    }
    uv_close((uv_handle_t *)&k->poll, on_handle_closed);
    uv_close((uv_handle_t *)&k->tick, on_handle_closed);
}

/* One non-blocking flush step: serves reports; on the deadline purges the rest. */
static void close_step(backend_kafka_t *k)
{
    if (k->destroyed) return;
    rd_kafka_flush(k->rk, 0);
    int left = rd_kafka_outq_len(k->rk);
    if (left == 0 && k->nmsgs == 0) {
        finish_close(k);
        return;
    }
    uint64_t now = uv_now(k->base.loop);
    if (now < k->flush_end) return;
    if (k->purged) {
        finish_close(k);
        return;
    }
    log_warn("backend_kafka", "flush incomplete, purging", "timeout_ms=%d unflushed=%d", FLUSH_MS,
             left > k->nmsgs ? left : k->nmsgs);
    rd_kafka_purge(k->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    k->purged = true;
    k->flush_end = now + PURGE_WAIT_MS;
    rd_kafka_poll(k->rk, 0);
}

static void on_close_tick(uv_timer_t *t)
{
    close_step(t->data);
}

static void kafka_close(backend_t *b)
{
    backend_kafka_t *k = (backend_kafka_t *)b;
    /* steps run from the loop, never here: close may be called inside a delivery report */
    uv_update_time(b->loop);
    k->flush_end = uv_now(b->loop) + FLUSH_MS;
    uv_timer_start(&k->tick, on_close_tick, 0, CLOSE_STEP_MS);
}

static void kafka_destroy(backend_t *b)
{
    free(b);
}

/* ---------- sending ---------- */

static int kafka_send(backend_t *b, const char *dst, const char *key, const char *payload,
                      size_t len, backend_done_fn done, void *arg)
{
    backend_kafka_t *k = (backend_kafka_t *)b;
    kmsg_t *m = calloc(1, sizeof *m);
    if (!m) return -1;
    m->pending.done = done;
    m->pending.arg = arg;
    m->pending.release = release_msg;
    rd_kafka_resp_err_t err = rd_kafka_producev(
        k->rk, RD_KAFKA_V_TOPIC(dst), RD_KAFKA_V_KEY(key, strlen(key)),
        RD_KAFKA_V_VALUE((void *)payload, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_OPAQUE(k->reports ? m : NULL), RD_KAFKA_V_END);
    if (err) {
        set_error(&m->pending.res, err);
        backend_defer(b, &m->pending);
    } else if (!k->reports) {
        /* go.delivery.reports=false: librdkafka reports nothing, so an accepted produce
         * counts as delivered (the message may still be lost; the operator chose this) */
        m->pending.res.ok = true;
        backend_defer(b, &m->pending);
    } else {
        msg_link(k, m);
    }
    return 0;
}

/* ---------- creation ---------- */

static rd_kafka_conf_t *make_conf(const config_t *cfg, backend_kafka_t *k, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char e[512];
    for (size_t i = 0; i < cfg->n_kafka_props; i++) {
        const config_kv_t *kv = &cfg->kafka_props[i];
        if (rd_kafka_conf_set(conf, kv->name, kv->value, e, sizeof e) != RD_KAFKA_CONF_OK) {
            snprintf(err, errlen, INIT_ERROR "%s", e);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    /* logs go to the main queue too, so they are written from the loop thread */
    rd_kafka_conf_set(conf, "log.queue", "true", e, sizeof e);
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_error_cb(conf, on_error);
    if (k->reports) rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, k);
    return conf;
}

/* Producer + main queue wired to a non-blocking pipe. 0, or -1 with err. */
static int open_producer(backend_kafka_t *k, const config_t *cfg, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = make_conf(cfg, k, err, errlen);
    if (!conf) return -1;
    char e[512];
    k->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof e);
    if (!k->rk) {
        snprintf(err, errlen, INIT_ERROR "%s", e);
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    if (pipe2(k->pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
        snprintf(err, errlen, INIT_ERROR "pipe: %s", strerror(errno));
        rd_kafka_destroy(k->rk);
        return -1;
    }
    k->mainq = rd_kafka_queue_get_main(k->rk);
    rd_kafka_set_log_queue(k->rk, NULL);
    rd_kafka_queue_io_event_enable(k->mainq, k->pipe[1], "1", 1);
    return 0;
}

static void close_producer(backend_kafka_t *k)
{
    rd_kafka_queue_io_event_enable(k->mainq, -1, NULL, 0);
    rd_kafka_queue_destroy(k->mainq);
    rd_kafka_destroy(k->rk);
    close(k->pipe[0]);
    close(k->pipe[1]);
}

static const backend_ops_t kafka_ops = {kafka_send, kafka_close, kafka_destroy};

backend_t *backend_kafka_new(uv_loop_t *loop, const config_t *cfg, char *err, size_t errlen)
{
    backend_kafka_t *k = calloc(1, sizeof *k);
    if (!k) {
        snprintf(err, errlen, INIT_ERROR "out of memory");
        return NULL;
    }
    k->reports = cfg->kafka_delivery_reports;
    if (open_producer(k, cfg, err, errlen) < 0) {
        free(k);
        return NULL;
    }
    if (uv_poll_init(loop, &k->poll, k->pipe[0]) != 0) {
        snprintf(err, errlen, INIT_ERROR "cannot watch the event pipe");
        close_producer(k);
        free(k);
        return NULL;
    }
    uv_timer_init(loop, &k->tick);
    k->poll.data = k->tick.data = k;
    k->handles = 2;
    backend_init(&k->base, &kafka_ops, loop);
    uv_poll_start(&k->poll, UV_READABLE, on_readable);
    uv_timer_start(&k->tick, on_safety_tick, SAFETY_POLL_MS, SAFETY_POLL_MS);
    log_info("backend_kafka", "started", "properties=%zu delivery_reports=%d", cfg->n_kafka_props,
             k->reports);
    return &k->base;
}
