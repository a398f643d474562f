/* live: one liveness entry per process (its instance id, the `Owner` of the leases it
 * takes) refreshed with store_live every LIVE_REFRESH_MS. The same call finds the
 * instances whose entry lapsed and releases their work to the lease-expiry paths of
 * the claim scripts, so any live processor, notifier or reaper takes it over. On a
 * clean stop the entry is removed and what is still held is released. */
#include "live.h"

#include <stdlib.h>

#include "log.h"

struct live {
    app_t *app;
    uv_timer_t timer;
    bool in_flight, stopping, left; /* left: the deregistration was sent */
    void (*done)(void *);
    void *done_arg;
};

static void leave(live_t *l);

static void on_closed(uv_handle_t *h)
{
    live_t *l = h->data;
    void (*done)(void *) = l->done;
    void *arg = l->done_arg;
    free(l);
    if (done) done(arg);
}

static void on_reply(store_rc_t rc, const char *const *r, size_t n, void *arg)
{
    live_t *l = arg;
    l->in_flight = false;
    for (size_t i = 0; rc == STORE_OK && i + 3 < n; i += 4) {
        if (l->left)
            log_info("live", "deregistered", "instance=%s downloads=%s callbacks=%s deletions=%s",
                     r[i], r[i + 1], r[i + 2], r[i + 3]);
        else
            log_warn("live", "instance gone, its work released",
                     "instance=%s downloads=%s callbacks=%s deletions=%s", r[i], r[i + 1], r[i + 2],
                     r[i + 3]);
    }
    if (l->stopping) leave(l);
}

/* Sends the deregistration once nothing else is in flight, then closes. */
static void leave(live_t *l)
{
    if (l->in_flight) return;
    if (l->left || !store_up(l->app->store)) {
        if (!uv_is_closing((uv_handle_t *)&l->timer)) uv_close((uv_handle_t *)&l->timer, on_closed);
        return;
    }
    l->left = l->in_flight = true;
    store_live(l->app->store, l->app->instance, 0, LIVE_GAP_MS, on_reply, l);
}

static void refresh(live_t *l)
{
    if (l->in_flight || l->stopping || !store_up(l->app->store)) return;
    l->in_flight = true;
    store_live(l->app->store, l->app->instance, LIVE_DEADLINE_MS, LIVE_GAP_MS, on_reply, l);
}

static void on_timer(uv_timer_t *t)
{
    refresh(t->data);
}

static void on_state(bool up, void *arg)
{
    if (up) refresh(arg);
}

live_t *live_start(app_t *app)
{
    live_t *l = calloc(1, sizeof *l);
    l->app = app;
    uv_timer_init(app->loop, &l->timer);
    l->timer.data = l;
    uv_timer_start(&l->timer, on_timer, LIVE_REFRESH_MS, LIVE_REFRESH_MS);
    store_on_state(app->store, on_state, l);
    refresh(l);
    return l;
}

void live_stop(live_t *l, void (*done)(void *arg), void *arg)
{
    store_forget(l->app->store, l);
    uv_timer_stop(&l->timer);
    l->done = done;
    l->done_arg = arg;
    l->stopping = true;
    leave(l);
}
