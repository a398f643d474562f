/* files: blocking file-system work for stored files, run on the uv thread pool:
 * finalising a download (fsync, image size, mkdir, rename), unlinking, disk usage,
 * sweeping stale temp files.
 * Finalisations submitted during one loop iteration go to the pool together at its end
 * (batches of up to 64, one pool job each); the others are one pool job per call. */
#ifndef DOWNLOADER_FILES_H
#define DOWNLOADER_FILES_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct {
    int err;             /* 0, or the errno of the failed step */
    const char *phase;   /* §5.5 phase of the failure: "syncing to disk", "storing file to
                            default storage backend", ... */
    char detail[256];    /* strerror-style detail */
    bool internal;       /* our own fault (fsync) */
    char image_size[32]; /* "WxH" when asked for and decodable, else "" */
} files_result_t;

typedef void (*files_done_fn)(const files_result_t *res, void *arg);

/* The extended attribute holding a stored file's detected MIME type (GET /files/...). */
#define FILES_XATTR_MIME "user.mime_type"

/* fsync(tmp); with a final path and a non-empty mime (the detected type), store mime as
 * FILES_XATTR_MIME on the file (skipped where the file system has no user xattrs); when
 * image_mime is one of image/jpeg|png|gif, decode the size from the
 * file header (corrupt: size stays "", not an error, W31); mkdir -p the final
 * directory (0755); rename(tmp, final) (copy + unlink across devices). The temp file is
 * removed on any failure. final_path NULL (object storage): only the image size, no
 * fsync, and the temp file stays for the upload. Called on the loop thread; the work
 * starts at the end of the current loop iteration. */
int files_finalize(uv_loop_t *loop, const char *tmp_path, const char *final_path, const char *mime,
                   const char *image_mime, files_done_fn done, void *arg);

/* The same for a body held in memory (a small download): writes data to tmp_path,
 * then fsyncs and measures it through the same descriptor and finalises as above, in
 * the same batch. Takes ownership of data (freed after done) when it returns 0. */
int files_finalize_mem(uv_loop_t *loop, const char *tmp_path, const char *final_path,
                       const char *mime, const char *image_mime, unsigned char *data, size_t len,
                       files_done_fn done, void *arg);

/* unlink(path); a missing file is success. */
int files_unlink(uv_loop_t *loop, const char *path, files_done_fn done, void *arg);

/* Disk usage of the file system holding path, in whole percent
 * ((f_blocks - f_bfree) * 100 / f_blocks), or -errno. */
typedef void (*files_usage_fn)(int percent, void *arg);
int files_disk_usage(uv_loop_t *loop, const char *path, files_usage_fn done, void *arg);

/* Removes "*.tmp" files in dir not modified for older_than_s seconds: leftovers of a
 * processor that was killed mid-download and whose job was finished elsewhere. done
 * gets the number removed, or -errno. */
int files_sweep_tmp(uv_loop_t *loop, const char *dir, long older_than_s, files_usage_fn done,
                    void *arg);

/* The names (without ".tmp") of the temp files files_sweep_tmp would remove, for a
 * caller that decides which go. done gets 0 or -errno, and owns names (free with
 * files_names_free); they are NULL on an error. */
typedef void (*files_list_fn)(int err, char **names, size_t n, void *arg);
int files_list_tmp(uv_loop_t *loop, const char *dir, long older_than_s, files_list_fn done,
                   void *arg);
void files_names_free(char **names, size_t n);

/* Removes <dir>/<name>.tmp for each name (copied) that is still a temp file not
 * modified for older_than_s seconds (one written to since it was listed stays). done
 * gets the number of files removed and their bytes. */
typedef void (*files_removed_fn)(int removed, uint64_t bytes, void *arg);
int files_remove_tmp(uv_loop_t *loop, const char *dir, const char *const *names, size_t n,
                     long older_than_s, files_removed_fn done, void *arg);

/* Final path of a job's file: <root>/<id[0:3]>/<id>. */
void files_job_path(char *buf, size_t len, const char *root, const char *id);

#endif
