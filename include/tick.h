/* tick: runs a callback once at the end of the current loop iteration, to batch the
 * work of one iteration (Redis commands in redisuv, file finalisations in files). */
#ifndef DOWNLOADER_TICK_H
#define DOWNLOADER_TICK_H

#include <uv.h>

typedef struct tick tick_t;
typedef void (*tick_fn)(tick_t *t);

struct tick {
    uv_check_t check; /* the end of the iteration */
    uv_idle_t idle;   /* keeps poll from blocking while armed */
    tick_fn fn;
    tick_fn closed;
    int open;
    void *data; /* the owner's */
};

/* fn runs on the loop each time the tick fires. */
void tick_init(uv_loop_t *loop, tick_t *t, tick_fn fn);

/* fn runs once at the end of this iteration; armed from a timer, idle or close callback
 * (or before uv_run) it runs before the loop would wait in poll. Disarmed when it runs. */
void tick_arm(tick_t *t);
void tick_disarm(tick_t *t);

/* Closes the tick's handles; closed runs once both are closed. */
void tick_close(tick_t *t, tick_fn closed);

#endif
