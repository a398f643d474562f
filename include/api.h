/* api: the HTTP routes (§3 of the reference plus ours) on top of httpd and store. */
#ifndef DOWNLOADER_API_H
#define DOWNLOADER_API_H

#include <stddef.h>

#include "app.h"

typedef struct api api_t;

/* Listens on host:port (host "" = all interfaces). NULL with err on failure. */
api_t *api_start(app_t *app, const char *host, int port, char *err, size_t errlen);

/* The bound port. */
int api_port(const api_t *a);

/* Graceful stop (httpd_stop), then done. */
void api_stop(api_t *a, void (*done)(void *arg), void *arg);

#endif
