/* files: blocking file-system work for stored files, run on the libuv thread pool with
 * uv_queue_work. The processor finalises downloads with it (§6.7: fsync, image size via
 * imgsize, mkdir -p, rename or copy across devices), the reaper unlinks (§6.10) and the
 * disk checker asks for usage (§6.9); stale temp files (*.tmp in storage_dir not written
 * to for a while) are listed and removed for the processor's sweeps, one scan serving
 * both. Each call allocates one request holding copies of
 * its arguments; the pool thread touches only that request, the done callback runs on
 * the loop thread and the request (with the result it points to) is freed right after
 * it. A call that cannot be queued returns a negative errno and then never calls back
 * (the caller still owns the files).
 * Finalisations are batched: those submitted during one loop iteration wait in a
 * per-loop pending list until a tick (tick.h) at the end of the iteration hands them
 * to the pool as one uv_work_t per at most FILES_BATCH_MAX requests, finalised in turn
 * and completed (done callbacks in submission order) in one after-work callback. The
 * per-loop state is made on the first finalisation and
 * closes itself (its handles and all) once nothing is pending or in the pool, so it
 * never keeps a loop alive or open.
 * A body held in memory is written, fsynced and measured through the one descriptor
 * that created the temp file. A stored file carries its detected MIME type in the
 * extended attribute FILES_XATTR_MIME, which the API's /files/... serves as Content-Type. */
#include "files.h"

#include "imgsize.h"
#include "tick.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/xattr.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define PHASE_SYNC "syncing to disk"
#define PHASE_TMP "creating tmp file"
#define PHASE_STORE "storing file to default storage backend"
#define PHASE_DELETE "deleting file"
#define PHASE_POOL "running file work"

enum { COPY_BUF = 64 * 1024, FILES_BATCH_MAX = 64 };

typedef struct files_loop files_loop_t;

typedef struct files_req {
    uv_work_t work;         /* finalize: only the first request of a batch is queued */
    struct files_req *next; /* finalize: the next request pending or in the batch */
    files_loop_t *fl;       /* finalize: the loop's batching state */
    char *path;             /* finalize: the temp file; unlink/usage: the target */
    char *final_path;       /* finalize only */
    const char *size_mime;  /* finalize: static copy of image_mime when decodable */
    char mime[128];         /* finalize: the detected type, stored as FILES_XATTR_MIME */
    files_done_fn done;
    files_usage_fn usage_done;
    void *arg;
    files_result_t res;
    int percent;    /* usage: the result; sweeps: files removed, or -errno */
    long older_s;   /* sweeps: minimum age of a stale temp file */
    uint64_t bytes; /* sweeps: bytes removed */
    char **names;   /* list/remove: temp file names without ".tmp" */
    size_t n_names, cap_names;
    files_list_fn list_done;
    files_removed_fn removed_done;
    unsigned char *mem; /* finalize_mem: the body to write first (owned) */
    size_t mem_len;
    char paths[]; /* storage for path and final_path */
} files_req_t;

/* Batching state of one loop; lives while finalisations are pending or in the pool. */
struct files_loop {
    uv_loop_t *loop;
    tick_t flush;             /* hands the pending list to the pool at the iteration's end */
    files_req_t *head, *tail; /* pending finalisations, in submission order */
    size_t npending;
    unsigned running;   /* batches in the pool */
    files_loop_t *next; /* in loops */
};

static pthread_mutex_t loops_mu = PTHREAD_MUTEX_INITIALIZER;
static files_loop_t *loops; /* one per loop with finalisations pending or running */

/* ---- requests ---- */

static files_req_t *req_new(const char *path, const char *final_path)
{
    size_t la = strlen(path) + 1, lb = final_path ? strlen(final_path) + 1 : 0;
    files_req_t *r = calloc(1, sizeof *r + la + lb);
    if (!r) return NULL;
    r->path = memcpy(r->paths, path, la);
    if (final_path) r->final_path = memcpy(r->paths + la, final_path, lb);
    r->work.data = r;
    r->res.phase = "";
    return r;
}

static int req_queue(uv_loop_t *loop, files_req_t *r, uv_work_cb work, uv_after_work_cb after)
{
    int rc = uv_queue_work(loop, &r->work, work, after);
    if (rc < 0) {
        files_names_free(r->names, r->n_names);
        free(r);
    }
    return rc;
}

/* Records a failure: detail is "<fmt…>: <strerror(err)>", like Go's os errors. Returns -1. */
static int fail(files_result_t *res, int err, const char *phase, bool internal, const char *fmt,
                ...) __attribute__((format(printf, 5, 6)));

static int fail(files_result_t *res, int err, const char *phase, bool internal, const char *fmt,
                ...)
{
    char msg[128];
    va_list ap;
    size_t n;
    res->err = err;
    res->phase = phase;
    res->internal = internal;
    va_start(ap, fmt);
    vsnprintf(res->detail, sizeof res->detail, fmt, ap);
    va_end(ap);
    n = strlen(res->detail);
    snprintf(res->detail + n, sizeof res->detail - n, ": %s", strerror_r(err, msg, sizeof msg));
    return -1;
}

/* ---- finalize: fsync and image size ---- */

static ssize_t pread_fd(void *ctx, void *buf, size_t size, off_t off)
{
    const int *fd = ctx;
    ssize_t n;
    do
        n = pread(*fd, buf, size, off);
    while (n < 0 && errno == EINTR);
    return n;
}

static const char *decodable_mime(const char *mime)
{
    static const char *const types[] = {"image/jpeg", "image/png", "image/gif"};
    for (size_t i = 0; mime && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(mime, types[i]) == 0) return types[i];
    return NULL;
}

/* Stores the detected type on the file: 0 or an errno. The type is a hint for serving
 * it: a file system without user xattrs (ENOTSUP) gets its files served as
 * application/octet-stream rather than failing downloads. */
static int tag_mime(int fd, const char *mime)
{
    if (!mime[0] || fsetxattr(fd, FILES_XATTR_MIME, mime, strlen(mime), 0) == 0) return 0;
    return errno == ENOTSUP ? 0 : errno;
}

/* fsync(fd) when the file is going to the store and, when asked, the image size
 * (undecodable: left "", not an error). Without a final path (the file goes to object
 * storage) there is nothing to make durable here: no fsync. */
static int sync_and_measure_fd(files_req_t *r, int fd)
{
    unsigned w, h;
    if (r->final_path && fsync(fd) < 0)
        return fail(&r->res, errno, PHASE_SYNC, true, "fsync %s", r->path);
    if (r->size_mime && imgsize_read(r->size_mime, pread_fd, &fd, &w, &h) == 0)
        snprintf(r->res.image_size, sizeof r->res.image_size, "%ux%u", w, h);
    int err = r->final_path ? tag_mime(fd, r->mime) : 0;
    if (err) return fail(&r->res, err, PHASE_SYNC, true, "fsetxattr %s", r->path);
    return 0;
}

/* The same for a temp file already written (a streamed body): opened only when there is
 * something to do. */
static int sync_and_measure(files_req_t *r)
{
    if (!r->final_path && !r->size_mime) return 0;
    /* O_RDONLY suffices for fsetxattr: the owner may set user xattrs on any open fd */
    int fd = open(r->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(&r->res, errno, PHASE_SYNC, true, "open %s", r->path);
    int rc = sync_and_measure_fd(r, fd);
    close(fd);
    return rc;
}

/* ---- finalize: mkdir -p ---- */

/* mkdir(dir, 0755); an existing directory is fine, anything else in the way is ENOTDIR. */
static int mkdir_one(const char *dir)
{
    struct stat st;
    if (mkdir(dir, 0755) == 0) return 0;
    if (errno != EEXIST) return errno;
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
    return ENOTDIR;
}

/* mkdir -p of dir (edited in place, restored on return). The directory itself is tried
 * first, its parents only when it cannot be created for their lack: usually one
 * syscall, since the store root exists and only the <id[0:3]> level is new. */
static int mkdir_parents(char *dir)
{
    int err = mkdir_one(dir);
    if (err != ENOENT) return err;
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) return err;
    *slash = '\0';
    err = mkdir_parents(dir);
    *slash = '/';
    return err ? err : mkdir_one(dir);
}

/* Creates the directory holding final_path. */
static int make_final_dir(files_req_t *r)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(r->final_path, '/');
    if (!slash || slash == r->final_path) return 0;
    size_t n = (size_t)(slash - r->final_path);
    if (n >= sizeof dir) return fail(&r->res, ENAMETOOLONG, PHASE_STORE, false, "mkdir");
    memcpy(dir, r->final_path, n);
    dir[n] = '\0';
    int err = mkdir_parents(dir);
    return err ? fail(&r->res, err, PHASE_STORE, false, "mkdir %s", dir) : 0;
}

/* ---- finalize: copy across devices ---- */

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return w < 0 ? errno : EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int copy_fd(int in, int out)
{
    char *buf = malloc(COPY_BUF);
    int err = buf ? 0 : ENOMEM;
    while (!err) {
        ssize_t n = read(in, buf, COPY_BUF);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            err = n < 0 ? errno : 0;
            break;
        }
        err = write_all(out, buf, (size_t)n);
    }
    free(buf);
    return err;
}

/* Copies src to a new dst, tags it with mime and fsyncs it: 0 or an errno. */
static int copy_file(const char *src, const char *dst, const char *mime)
{
    int err = 0, in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) return errno;
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (out < 0) {
        err = errno;
        close(in);
        return err;
    }
    err = copy_fd(in, out);
    if (!err) err = tag_mime(out, mime);
    if (!err && fsync(out) < 0) err = errno;
    if (close(out) < 0 && !err) err = errno;
    close(in);
    return err;
}

/* rename failed with EXDEV: copy to "<final>.part", fsync, rename into place, unlink tmp. */
static int copy_across(files_req_t *r)
{
    char part[PATH_MAX];
    int err = 0;
    if (snprintf(part, sizeof part, "%s.part", r->final_path) >= (int)sizeof part)
        err = ENAMETOOLONG;
    if (!err) err = copy_file(r->path, part, r->mime);
    if (!err && rename(part, r->final_path) < 0) err = errno;
    if (err) {
        unlink(part);
        return fail(&r->res, err, PHASE_STORE, false, "copy %s %s", r->path, r->final_path);
    }
    if (unlink(r->path) < 0 && errno != ENOENT) {
        int err = errno;
        log_warn("files", "temp file left after cross-device copy", "path=%s err=%d",
                 log_q(r->path), err);
    }
    return 0;
}

static int store(files_req_t *r)
{
    if (make_final_dir(r) < 0) return -1;
    if (rename(r->path, r->final_path) == 0) return 0;
    if (errno == EXDEV) return copy_across(r);
    return fail(&r->res, errno, PHASE_STORE, false, "rename %s %s", r->path, r->final_path);
}

/* Writes the body held in memory to the temp file, then syncs and measures it through
 * the same descriptor: one open and one close. */
static int write_mem(files_req_t *r)
{
    int fd = open(r->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return fail(&r->res, errno, PHASE_TMP, true, "open %s", r->path);
    int err = write_all(fd, (const char *)r->mem, r->mem_len);
    int rc =
        err ? fail(&r->res, err, PHASE_TMP, true, "write %s", r->path) : sync_and_measure_fd(r, fd);
    if (close(fd) < 0 && rc == 0) rc = fail(&r->res, errno, PHASE_TMP, true, "write %s", r->path);
    return rc;
}

/* One finalisation, on a pool thread; the temp file is removed on any failure. */
static void finalize_one(files_req_t *r)
{
    int rc = r->mem ? write_mem(r) : sync_and_measure(r);
    if (rc == 0 && (!r->final_path || store(r) == 0)) return;
    unlink(r->path);
}

/* Shared completion for finalize and unlink. Cancellation never happens (the uv_work_t
 * is private) but is reported as a failure rather than ignored. */
static void result_done(uv_work_t *w, int status)
{
    files_req_t *r = w->data;
    if (status < 0) fail(&r->res, -status, PHASE_POOL, true, "uv_queue_work");
    if (r->done) r->done(&r->res, r->arg);
    free(r->mem);
    free(r);
}

/* ---- finalize: batches per loop iteration ---- */

static void loop_closed(tick_t *t)
{
    free(t->data);
}

static void on_flush(tick_t *t);

/* The loop's batching state, made on first use; NULL when out of memory. */
static files_loop_t *loop_get(uv_loop_t *loop)
{
    pthread_mutex_lock(&loops_mu);
    files_loop_t *fl = loops;
    while (fl && fl->loop != loop)
        fl = fl->next;
    if (!fl && (fl = calloc(1, sizeof *fl))) {
        fl->loop = loop;
        tick_init(loop, &fl->flush, on_flush);
        fl->flush.data = fl;
        fl->next = loops;
        loops = fl;
    }
    pthread_mutex_unlock(&loops_mu);
    return fl;
}

/* Closes the state once nothing is pending or running; a later call makes a new one. */
static void loop_release(files_loop_t *fl)
{
    if (fl->head || fl->running) return;
    pthread_mutex_lock(&loops_mu);
    files_loop_t **pp = &loops;
    while (*pp != fl)
        pp = &(*pp)->next;
    *pp = fl->next;
    pthread_mutex_unlock(&loops_mu);
    tick_close(&fl->flush, loop_closed);
}

static void batch_work(uv_work_t *w)
{
    for (files_req_t *r = w->data; r; r = r->next)
        finalize_one(r);
}

/* Calls each request's done in submission order and frees it. */
static void batch_finish(files_req_t *r, int status)
{
    while (r) {
        files_req_t *next = r->next;
        result_done(&r->work, status);
        r = next;
    }
}

static void batch_done(uv_work_t *w, int status)
{
    files_req_t *r = w->data;
    files_loop_t *fl = r->fl;
    fl->running--;
    batch_finish(r, status);
    loop_release(fl);
}

/* Detaches the first n requests of list as one batch; returns the rest. */
static files_req_t *batch_cut(files_req_t *list, size_t n)
{
    while (--n > 0 && list->next)
        list = list->next;
    files_req_t *rest = list->next;
    list->next = NULL;
    return rest;
}

/* Queues one batch; the requests were promised a callback, so a refusal completes them
 * with a failure rather than dropping them. */
static void batch_queue(files_loop_t *fl, files_req_t *batch)
{
    int rc = uv_queue_work(fl->loop, &batch->work, batch_work, batch_done);
    if (rc < 0)
        batch_finish(batch, rc);
    else
        fl->running++;
}

/* The pending list goes to the pool in batches of equal size, at most FILES_BATCH_MAX
 * each. Requests made by done callbacks meanwhile wait for the next flush. */
static void on_flush(tick_t *t)
{
    files_loop_t *fl = t->data;
    files_req_t *list = fl->head;
    size_t n = fl->npending, nbatch = (n + FILES_BATCH_MAX - 1) / FILES_BATCH_MAX;
    fl->head = fl->tail = NULL;
    fl->npending = 0;
    while (list) {
        files_req_t *batch = list;
        list = batch_cut(batch, (n + nbatch - 1) / nbatch);
        batch_queue(fl, batch);
    }
    loop_release(fl);
}

/* Appends r to the loop's pending list, flushed at the end of this iteration. */
static void pending_add(files_loop_t *fl, files_req_t *r)
{
    r->fl = fl;
    if (fl->tail)
        fl->tail->next = r;
    else
        fl->head = r;
    fl->tail = r;
    fl->npending++;
    tick_arm(&fl->flush);
}

static int finalize(uv_loop_t *loop, const char *tmp_path, const char *final_path, const char *mime,
                    const char *image_mime, unsigned char *data, size_t len, files_done_fn done,
                    void *arg)
{
    if (!loop || !tmp_path) return UV_EINVAL;
    files_req_t *r = req_new(tmp_path, final_path);
    if (!r) return UV_ENOMEM;
    files_loop_t *fl = loop_get(loop);
    if (!fl) {
        free(r); /* not queued: the caller keeps data */
        return UV_ENOMEM;
    }
    r->size_mime = decodable_mime(image_mime);
    snprintf(r->mime, sizeof r->mime, "%s", mime ? mime : "");
    r->done = done;
    r->arg = arg;
    r->mem = data;
    r->mem_len = len;
    pending_add(fl, r);
    return 0;
}

int files_finalize(uv_loop_t *loop, const char *tmp_path, const char *final_path, const char *mime,
                   const char *image_mime, files_done_fn done, void *arg)
{
    return finalize(loop, tmp_path, final_path, mime, image_mime, NULL, 0, done, arg);
}

int files_finalize_mem(uv_loop_t *loop, const char *tmp_path, const char *final_path,
                       const char *mime, const char *image_mime, unsigned char *data, size_t len,
                       files_done_fn done, void *arg)
{
    return finalize(loop, tmp_path, final_path, mime, image_mime, data, len, done, arg);
}

/* ---- unlink ---- */

static void unlink_work(uv_work_t *w)
{
    files_req_t *r = w->data;
    if (unlink(r->path) < 0 && errno != ENOENT)
        fail(&r->res, errno, PHASE_DELETE, false, "remove %s", r->path);
}

int files_unlink(uv_loop_t *loop, const char *path, files_done_fn done, void *arg)
{
    if (!loop || !path) return UV_EINVAL;
    files_req_t *r = req_new(path, NULL);
    if (!r) return UV_ENOMEM;
    r->done = done;
    r->arg = arg;
    return req_queue(loop, r, unlink_work, result_done);
}

/* ---- disk usage ---- */

/* floor(used * 100 / blocks) without overflowing used * 100. */
static int usage_percent(fsblkcnt_t blocks, fsblkcnt_t bfree)
{
    if (blocks == 0) return 0;
    fsblkcnt_t used = bfree < blocks ? blocks - bfree : 0;
    return (int)(used / blocks * 100 + used % blocks * 100 / blocks);
}

static void usage_work(uv_work_t *w)
{
    files_req_t *r = w->data;
    struct statvfs st;
    r->percent = statvfs(r->path, &st) < 0 ? -errno : usage_percent(st.f_blocks, st.f_bfree);
}

static void usage_done(uv_work_t *w, int status)
{
    files_req_t *r = w->data;
    if (r->usage_done) r->usage_done(status < 0 ? status : r->percent, r->arg);
    free(r);
}

int files_disk_usage(uv_loop_t *loop, const char *path, files_usage_fn done, void *arg)
{
    if (!loop || !path) return UV_EINVAL;
    files_req_t *r = req_new(path, NULL);
    if (!r) return UV_ENOMEM;
    r->usage_done = done;
    r->arg = arg;
    return req_queue(loop, r, usage_work, usage_done);
}

/* ---- stale temp files ---- */

/* A regular "*.tmp" file in dirfd not modified since cutoff; *st gets its status. */
static bool stale_tmp(int dirfd, const char *name, time_t cutoff, struct stat *st)
{
    size_t l = strlen(name);
    if (l < 5 || strcmp(name + l - 4, ".tmp") != 0) return false;
    if (fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st->st_mode)) return false;
    return st->st_mtime <= cutoff;
}

typedef void (*stale_visit_fn)(files_req_t *r, int dirfd, const char *name, const struct stat *st);

/* Calls visit for every stale temp file in r->path (older than r->older_s): the one
 * test both sweeps apply. 0, or -errno when the directory cannot be read. */
static int stale_scan(files_req_t *r, stale_visit_fn visit)
{
    DIR *d = opendir(r->path);
    if (!d) return -errno;
    time_t cutoff = time(NULL) - r->older_s;
    struct stat st;
    struct dirent *e;
    while ((e = readdir(d)))
        if (stale_tmp(dirfd(d), e->d_name, cutoff, &st)) visit(r, dirfd(d), e->d_name, &st);
    closedir(d);
    return 0;
}

/* Removes one stale temp file, counting it and its bytes. */
static void remove_stale(files_req_t *r, int dirfd, const char *name, const struct stat *st)
{
    if (unlinkat(dirfd, name, 0) < 0) return;
    r->percent++;
    r->bytes += (uint64_t)st->st_size;
}

static void sweep_work(uv_work_t *w)
{
    files_req_t *r = w->data;
    int rc = stale_scan(r, remove_stale);
    if (rc < 0) r->percent = rc;
}

/* A request about the temp files in dir older than older_s; NULL when out of memory. */
static files_req_t *stale_req(const char *dir, long older_s, void *arg)
{
    files_req_t *r = req_new(dir, NULL);
    if (!r) return NULL;
    r->arg = arg;
    r->older_s = older_s;
    return r;
}

int files_sweep_tmp(uv_loop_t *loop, const char *dir, long older_than_s, files_usage_fn done,
                    void *arg)
{
    if (!loop || !dir) return UV_EINVAL;
    files_req_t *r = stale_req(dir, older_than_s, arg);
    if (!r) return UV_ENOMEM;
    r->usage_done = done;
    return req_queue(loop, r, sweep_work, usage_done);
}

void files_names_free(char **names, size_t n)
{
    for (size_t i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
}

/* Records a stale temp file's name without ".tmp" (out of memory: it is left out). */
static void list_stale(files_req_t *r, int dirfd, const char *name, const struct stat *st)
{
    (void)dirfd;
    (void)st;
    if (r->n_names == r->cap_names) {
        size_t cap = r->cap_names ? 2 * r->cap_names : 64;
        char **names = realloc(r->names, cap * sizeof *names);
        if (!names) return;
        r->names = names;
        r->cap_names = cap;
    }
    char *id = strndup(name, strlen(name) - 4);
    if (id) r->names[r->n_names++] = id;
}

static void list_work(uv_work_t *w)
{
    files_req_t *r = w->data;
    r->percent = stale_scan(r, list_stale);
}

static void list_done(uv_work_t *w, int status)
{
    files_req_t *r = w->data;
    int err = status < 0 ? status : r->percent;
    if (err < 0) {
        files_names_free(r->names, r->n_names);
        r->names = NULL;
        r->n_names = 0;
    }
    r->list_done(err, r->names, r->n_names, r->arg);
    free(r);
}

int files_list_tmp(uv_loop_t *loop, const char *dir, long older_than_s, files_list_fn done,
                   void *arg)
{
    if (!loop || !dir || !done) return UV_EINVAL;
    files_req_t *r = stale_req(dir, older_than_s, arg);
    if (!r) return UV_ENOMEM;
    r->list_done = done;
    return req_queue(loop, r, list_work, list_done);
}

/* Each named file, if it is still a stale temp file (the test stale_scan applies). */
static void remove_work(uv_work_t *w)
{
    files_req_t *r = w->data;
    int fd = open(r->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    time_t cutoff = time(NULL) - r->older_s;
    char name[NAME_MAX + 1];
    struct stat st;
    for (size_t i = 0; i < r->n_names; i++)
        if (snprintf(name, sizeof name, "%s.tmp", r->names[i]) < (int)sizeof name &&
            stale_tmp(fd, name, cutoff, &st))
            remove_stale(r, fd, name, &st);
    close(fd);
}

static void remove_done(uv_work_t *w, int status)
{
    files_req_t *r = w->data;
    if (r->removed_done) r->removed_done(status < 0 ? 0 : r->percent, r->bytes, r->arg);
    files_names_free(r->names, r->n_names);
    free(r);
}

int files_remove_tmp(uv_loop_t *loop, const char *dir, const char *const *names, size_t n,
                     long older_than_s, files_removed_fn done, void *arg)
{
    if (!loop || !dir || (n && !names)) return UV_EINVAL;
    files_req_t *r = stale_req(dir, older_than_s, arg);
    if (!r) return UV_ENOMEM;
    r->names = calloc(n ? n : 1, sizeof *r->names);
    for (size_t i = 0; r->names && i < n; i++) {
        if (!(r->names[i] = strdup(names[i]))) break;
        r->n_names++;
    }
    if (!r->names || r->n_names < n) {
        files_names_free(r->names, r->n_names);
        free(r);
        return UV_ENOMEM;
    }
    r->removed_done = done;
    return req_queue(loop, r, remove_work, remove_done);
}

/* ---- paths ---- */

void files_job_path(char *buf, size_t len, const char *root, const char *id)
{
    if (!buf || len == 0) return;
    if (!root || !id) {
        buf[0] = '\0';
        return;
    }
    size_t n = strlen(root);
    while (n > 1 && root[n - 1] == '/')
        n--;
    const char *sep = n == 0 || (n == 1 && root[0] == '/') ? "" : "/";
    snprintf(buf, len, "%.*s%s%.3s/%s", (int)n, root, sep, id, id);
}
