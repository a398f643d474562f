/* serve: the files the API serves. GET /<name> answers with the web UI of web/, compiled
 * in (embedded.h); GET /files/<id[0:3]>/<id> with a file of the filesystem store, sent
 * from its descriptor with the MIME type kept as its xattr (files.h), or sniffed and
 * cached on the thread pool when it has none. */
#include "serve.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "embedded.h"
#include "files.h"
#include "job.h"
#include "mime.h"

/* ---------- GET /<name>: the web UI ---------- */

static const char *content_type(const char *name)
{
    static const char *types[][2] = {{".html", "text/html; charset=utf-8"},
                                     {".css", "text/css; charset=utf-8"},
                                     {".js", "text/javascript; charset=utf-8"},
                                     {".svg", "image/svg+xml"},
                                     {".png", "image/png"},
                                     {".ico", "image/x-icon"},
                                     {".json", "application/json"}};
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i][0]) == 0) return types[i][1];
    return "application/octet-stream";
}

void serve_static(app_t *app, httpd_req_t *req)
{
    (void)app;
    const char *path = req->path;
    if (strcmp(path, "/index.html") == 0) {
        static const httpd_header_t loc[] = {{"Location", "/"}};
        httpd_respond(req, 301, loc, 1, NULL, 0);
        return;
    }
    const char *name = strcmp(path, "/") == 0 ? "index.html" : path + 1;
    for (const embed_file_t *f = embed_web; f->name; f++) {
        if (strcmp(f->name, name) != 0) continue;
        httpd_header_t h[] = {{"Content-Type", content_type(f->name)},
                              {"Cache-Control", "no-cache"}};
        httpd_respond(req, 200, h, 2, (const char *)f->data, f->size);
        return;
    }
    httpd_respond_error(req, 404, "404 page not found");
}

/* ---------- GET /files/...: stored files ---------- */

typedef struct {
    uv_fs_t fs;
    uv_work_t work;
    httpd_req_t *req;
    int fd;
    bool regular;
    uint64_t size;
    char type[128]; /* FILES_XATTR_MIME, "" when absent or not a plain type */
} file_t;

/* A stored type becomes a header: only printable ASCII without CR/LF, or nothing. */
static bool header_safe(const char *s)
{
    for (; *s; s++)
        if (*s < 0x20 || *s > 0x7e) return false;
    return true;
}

/* Pool thread: fstat and the type stored as xattr (files.h). A file without one (the
 * processor sniffs only jobs that need the type) is sniffed here like a download, from
 * its first 1024 bytes with this thread's libmagic cookie, and the type cached as the
 * xattr for later serves (a file system without user xattrs just sniffs every time). */
static void file_inspect(uv_work_t *w)
{
    file_t *f = w->data;
    struct stat st;
    f->regular = fstat(f->fd, &st) == 0 && S_ISREG(st.st_mode);
    f->size = f->regular ? (uint64_t)st.st_size : 0;
    if (!f->regular) return;
    ssize_t n = fgetxattr(f->fd, FILES_XATTR_MIME, f->type, sizeof f->type - 1);
    f->type[n > 0 ? n : 0] = 0;
    if (n <= 0) {
        unsigned char head[1024];
        ssize_t len = pread(f->fd, head, sizeof head, 0);
        mime_t *m = mime_thread();
        if (len >= 0 && m && mime_detect(m, head, (size_t)len, f->type, sizeof f->type) == 0)
            (void)fsetxattr(f->fd, FILES_XATTR_MIME, f->type, strlen(f->type), 0);
        else
            f->type[0] = 0;
    }
    if (!header_safe(f->type)) f->type[0] = 0;
}

static void file_inspected(uv_work_t *w, int status)
{
    file_t *f = w->data;
    if (status < 0 || !f->regular) {
        uv_fs_close(NULL, &f->fs, f->fd, NULL);
        httpd_respond_error(f->req, 404, "404 page not found");
    } else {
        const httpd_header_t h[] = {
            {"Content-Type", f->type[0] ? f->type : "application/octet-stream"}};
        httpd_respond_fd(f->req, 200, h, 1, f->fd, f->size);
    }
    free(f);
}

static void on_file_open(uv_fs_t *fs)
{
    file_t *f = fs->data;
    if (fs->result < 0) {
        uv_fs_req_cleanup(fs);
        httpd_respond_error(f->req, 404, "404 page not found");
        free(f);
        return;
    }
    f->fd = (int)fs->result;
    uv_fs_req_cleanup(fs);
    f->work.data = f;
    if (uv_queue_work(fs->loop, &f->work, file_inspect, file_inspected) < 0)
        file_inspected(&f->work, UV_ENOMEM);
}

/* GET /files/<id[0:3]>/<id>: a stored file of the filesystem store. */
void serve_file(app_t *app, httpd_req_t *req)
{
    const char *rest = req->path + strlen("/files/");
    const char *slash = strchr(rest, '/');
    const char *id = slash ? slash + 1 : "";
    size_t idlen = strlen(id);
    if (!slash || slash - rest != 3 || !job_id_valid(id, idlen) || idlen < 3 ||
        strncmp(rest, id, 3) != 0 || !app->cfg.fs_rootdir) {
        httpd_respond_error(req, 404, "404 page not found");
        return;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/%.3s/%s", app->cfg.fs_rootdir, id, id);
    file_t *f = calloc(1, sizeof *f);
    f->req = req;
    f->fs.data = f;
    if (uv_fs_open(app->loop, &f->fs, path, O_RDONLY | O_CLOEXEC, 0, on_file_open) < 0) {
        f->fs.result = UV_ENOENT;
        on_file_open(&f->fs);
    }
}
