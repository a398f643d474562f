/* tick: a uv_check handle fires at the end of the iteration in which the tick was
 * armed; a uv_idle handle started alongside keeps poll from blocking, since the check
 * phase comes after poll and a tick armed by a timer callback would otherwise wait for
 * some unrelated event. Whichever runs first disarms both and calls the owner. */
#include "tick.h"

static void fire(tick_t *t)
{
    tick_disarm(t);
    t->fn(t);
}

static void on_check(uv_check_t *h)
{
    fire(h->data);
}

static void on_idle(uv_idle_t *h)
{
    fire(h->data);
}

void tick_init(uv_loop_t *loop, tick_t *t, tick_fn fn)
{
    uv_check_init(loop, &t->check);
    uv_idle_init(loop, &t->idle);
    t->check.data = t->idle.data = t;
    t->fn = fn;
    t->closed = NULL;
    t->open = 2;
}

void tick_arm(tick_t *t)
{
    uv_check_start(&t->check, on_check);
    uv_idle_start(&t->idle, on_idle);
}

void tick_disarm(tick_t *t)
{
    uv_check_stop(&t->check);
    uv_idle_stop(&t->idle);
}

static void on_closed(uv_handle_t *h)
{
    tick_t *t = h->data;
    if (--t->open == 0 && t->closed) t->closed(t);
}

void tick_close(tick_t *t, tick_fn closed)
{
    t->closed = closed;
    uv_close((uv_handle_t *)&t->check, on_closed);
    uv_close((uv_handle_t *)&t->idle, on_closed);
}
