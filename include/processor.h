/* processor: claims jobs from Redis under leases (global per-aggregation limits,
 * round-robin), downloads them with fetch over one curl multi, checks the MIME type,
 * stores the file and records the outcome; also runs the reaper and the disk guard. */
#ifndef DOWNLOADER_PROCESSOR_H
#define DOWNLOADER_PROCESSOR_H

#include <stddef.h>

#include "app.h"

typedef struct processor processor_t;

/* Verifies storage (writable temp dir, root dir created) and starts. NULL with a
 * message in err on a fatal problem. */
processor_t *processor_start(app_t *app, char *err, size_t errlen);

/* Stops claiming, lets downloads finish within the grace period, requeues the rest
 * without using up an attempt, then releases everything and calls done. */
void processor_stop(processor_t *p, void (*done)(void *arg), void *arg);

#endif
