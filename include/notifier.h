/* notifier: claims finished jobs' callbacks from Redis under leases and delivers them
 * through the http or kafka backend, with retries and backoff. */
#ifndef DOWNLOADER_NOTIFIER_H
#define DOWNLOADER_NOTIFIER_H

#include <stddef.h>

#include "app.h"

typedef struct notifier notifier_t;

notifier_t *notifier_start(app_t *app, char *err, size_t errlen);

/* Stops claiming, lets deliveries finish within the grace period, requeues the rest,
 * flushes Kafka (up to 5 s), then calls done. */
void notifier_stop(notifier_t *n, void (*done)(void *arg), void *arg);

#endif
