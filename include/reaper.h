/* reaper: deletes stored files whose deletion is due (deletion_interval after a
 * delivered callback, or the retention period for jobs kept without delivery). */
#ifndef DOWNLOADER_REAPER_H
#define DOWNLOADER_REAPER_H

#include "app.h"
#include "s3.h"
#include "stats.h"

typedef struct reaper reaper_t;

/* queue: the reap queue key of this processor's store (store_reap_key). s3 NULL: files
 * are unlinked under processor.filestorage.rootdir; else objects "<id[0:3]>/<id>" are
 * deleted from bucket (signed for region) through s3, which must outlive the reaper. */
reaper_t *reaper_start(app_t *app, const char *queue, stats_t *stats, s3_t *s3, const char *bucket,
                       const char *region);
void reaper_stop(reaper_t *r, void (*done)(void *arg), void *arg);

#endif
