/* serve: static files of the embedded web UI and stored files of the filesystem store.
 * api.c's route table dispatches to these handlers (auth and 405 are decided there). */
#ifndef DOWNLOADER_SERVE_H
#define DOWNLOADER_SERVE_H

#include "app.h"
#include "httpd.h"

/* GET /<name>, any path no other route takes: a file of web/ ("/" is index.html;
 * /index.html redirects to "/"), else 404. */
void serve_static(app_t *app, httpd_req_t *req);

/* GET /files/<id[0:3]>/<id>: a stored file with its MIME type, else 404. */
void serve_file(app_t *app, httpd_req_t *req);

#endif
