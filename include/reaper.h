/* reaper: deletes stored files whose deletion is due (deletion_interval after a
 * delivered callback, or the retention period for jobs kept without delivery). */
#ifndef DOWNLOADER_REAPER_H
#define DOWNLOADER_REAPER_H

#include "app.h"
#include "stats.h"

typedef struct reaper reaper_t;

/* queue: the reap queue key of this processor's store (store_reap_key). */
reaper_t *reaper_start(app_t *app, const char *queue, stats_t *stats);
void reaper_stop(reaper_t *r, void (*done)(void *arg), void *arg);

#endif
