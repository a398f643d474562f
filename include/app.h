/* app: what the components of one process share: the loop, the config, the store
 * connection and this process's identity. */
#ifndef DOWNLOADER_APP_H
#define DOWNLOADER_APP_H

#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "store.h"

typedef struct {
    uv_loop_t *loop;
    config_t cfg;
    store_t *store;
    char host[128];
    int pid;
    char instance[192];  /* "<host>-<pid>-<random>", unique per process start */
    uint64_t started_ms; /* wall clock */
} app_t;

/* Fills host, pid, instance and started_ms. */
void app_identity(app_t *app);

/* Wall-clock milliseconds. */
uint64_t app_now_ms(void);

#endif
