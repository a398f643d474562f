/* Unit tests for files: each test runs a private uv loop over a fresh temp directory and
 * checks finalize (move, mkdir -p, image size, failures and temp cleanup, cross-device
 * copy), the batching of finalisations per loop iteration (order, isolation of
 * failures, the batch cap, resubmission from a callback, several loops), unlink, disk
 * usage and the job path layout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "files.h"

#define PHASE_SYNC "syncing to disk"
#define PHASE_STORE "storing file to default storage backend"

/* A complete 3x2 RGB PNG. */
static const uint8_t png_3x2[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44,
    0x52, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x02, 0x08, 0x02, 0x00, 0x00, 0x00, 0x12,
    0x16, 0xf1, 0x4d, 0x00, 0x00, 0x00, 0x10, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8,
    0xcf, 0xc0, 0x00, 0x41, 0x0c, 0x70, 0x16, 0x00, 0x41, 0xd2, 0x05, 0xfb, 0x87, 0xf0, 0xb9,
    0x48, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
};

/* The head of a baseline JPEG: SOI, APP0 (JFIF), SOF0 of 8 wide x 6 high. */
static const uint8_t jpeg_head[] = {
    0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 'J',  'F',  'I',  'F',  0x00, 0x01,
    0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0xff, 0xc0, 0x00, 0x0b,
    0x08, 0x00, 0x06, 0x00, 0x08, 0x01, 0x01, 0x11, 0x00, 0xff, 0xd9,
};

/* A 5x4 GIF89a logical screen without a colour table. */
static const uint8_t gif_5x4[] = {'G', 'I', 'F', '8', '9', 'a', 5, 0, 4, 0, 0, 0, 0, 0x3b};

/* One image of each decodable type and the size decoded from it. */
static const struct {
    const char *mime;
    const uint8_t *data;
    size_t len;
    const char *size;
} images[] = {
    {"image/png", png_3x2, sizeof png_3x2, "3x2"},
    {"image/jpeg", jpeg_head, sizeof jpeg_head, "8x6"},
    {"image/gif", gif_5x4, sizeof gif_5x4, "5x4"},
};
enum { N_IMAGES = sizeof images / sizeof images[0] };

/* ---- fixture ---- */

typedef struct {
    char dir[64];   /* fresh mkdtemp directory */
    char root[128]; /* <dir>/store: storage root, not created yet */
    char tmp[128];  /* <dir>/abcdef0123.tmp */
    char final[256];
} fx_t;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rmtree(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    if (!fx) return -1;
    strcpy(fx->dir, "/tmp/files-test-XXXXXX");
    if (!mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    snprintf(fx->root, sizeof fx->root, "%s/store", fx->dir);
    snprintf(fx->tmp, sizeof fx->tmp, "%s/abcdef0123.tmp", fx->dir);
    files_job_path(fx->final, sizeof fx->final, fx->root, "abcdef0123");
    umask(022);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    rmtree(fx->dir);
    free(fx);
    return 0;
}

/* ---- helpers ---- */

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void assert_file_holds(const char *path, const void *data, size_t len)
{
    char buf[4096];
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_int_equal(n, len);
    assert_memory_equal(buf, data, len);
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

typedef struct {
    int calls;
    files_result_t res;
    int percent;
    uv_thread_t thread;
} got_t;

static void on_done(const files_result_t *res, void *arg)
{
    got_t *g = arg;
    g->calls++;
    g->res = *res;
    g->thread = uv_thread_self();
}

static void on_usage(int percent, void *arg)
{
    got_t *g = arg;
    g->calls++;
    g->percent = percent;
    g->thread = uv_thread_self();
}

/* Runs the loop until all work is done; callbacks ran once each, on this thread. */
static void run_loop(uv_loop_t *loop, got_t *got, size_t n)
{
    uv_thread_t me = uv_thread_self();
    assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(got[i].calls, 1);
        assert_true(uv_thread_equal(&me, &got[i].thread));
    }
    assert_int_equal(uv_loop_close(loop), 0);
}

/* mime is both the detected type (stored as FILES_XATTR_MIME) and the type to measure */
static files_result_t finalize(const char *tmp, const char *final, const char *mime)
{
    uv_loop_t loop;
    got_t g = {0};
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(files_finalize(&loop, tmp, final, mime, mime, on_done, &g), 0);
    run_loop(&loop, &g, 1);
    return g.res;
}

/* The type stored on a file, "" when none; skips where the file system has no user xattrs. */
static const char *stored_type(const char *path)
{
    static char v[128];
    ssize_t n = getxattr(path, FILES_XATTR_MIME, v, sizeof v - 1);
    if (n < 0 && errno == ENOTSUP) skip();
    v[n > 0 ? n : 0] = 0;
    return v;
}

static void assert_ok(const files_result_t *res)
{
    assert_int_equal(res->err, 0);
    assert_string_equal(res->phase, "");
    assert_false(res->internal);
}

/* ---- finalize ---- */

static void test_finalize_moves_file(void **state)
{
    fx_t *fx = *state;
    struct stat st;
    write_file(fx->tmp, "hello", 5);
    files_result_t res = finalize(fx->tmp, fx->final, "text/plain");
    assert_ok(&res);
    assert_string_equal(res.image_size, "");
    assert_string_equal(stored_type(fx->final), "text/plain");
    assert_false(exists(fx->tmp));
    assert_true(strstr(fx->final, "/store/abc/abcdef0123") != NULL);
    assert_file_holds(fx->final, "hello", 5);
    assert_int_equal(stat(fx->root, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    char dir[256];
    snprintf(dir, sizeof dir, "%s/abc", fx->root);
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0755);
}

/* A second file into an existing directory, and an existing final file replaced. */
static void test_finalize_existing_dir_and_file(void **state)
{
    fx_t *fx = *state;
    write_file(fx->tmp, "one", 3);
    files_result_t res = finalize(fx->tmp, fx->final, NULL);
    assert_ok(&res);
    write_file(fx->tmp, "two!", 4);
    res = finalize(fx->tmp, fx->final, NULL);
    assert_ok(&res);
    assert_file_holds(fx->final, "two!", 4);
    assert_false(exists(fx->tmp));
}

static void test_finalize_image_sizes(void **state)
{
    fx_t *fx = *state;
    for (size_t i = 0; i < N_IMAGES; i++) {
        write_file(fx->tmp, images[i].data, images[i].len);
        files_result_t res = finalize(fx->tmp, fx->final, images[i].mime);
        assert_ok(&res);
        assert_string_equal(res.image_size, images[i].size);
        assert_file_holds(fx->final, images[i].data, images[i].len);
    }
}

/* An undecodable header is no error: the file is stored without a size (W31). */
static void test_finalize_corrupt_png_no_size(void **state)
{
    fx_t *fx = *state;
    uint8_t bad[sizeof png_3x2];
    memcpy(bad, png_3x2, sizeof bad);
    bad[17] ^= 0x40; /* width damaged: IHDR CRC no longer matches */
    write_file(fx->tmp, bad, sizeof bad);
    files_result_t res = finalize(fx->tmp, fx->final, "image/png");
    assert_ok(&res);
    assert_string_equal(res.image_size, "");
    assert_file_holds(fx->final, bad, sizeof bad);
    write_file(fx->tmp, png_3x2, 20); /* truncated */
    res = finalize(fx->tmp, fx->final, "image/png");
    assert_ok(&res);
    assert_string_equal(res.image_size, "");
}

/* Sizes are decoded only for image/jpeg|png|gif. */
static void test_finalize_size_only_when_asked(void **state)
{
    fx_t *fx = *state;
    const char *mimes[] = {NULL, "", "image/bmp", "application/octet-stream", "image/PNG"};
    for (size_t i = 0; i < sizeof mimes / sizeof mimes[0]; i++) {
        write_file(fx->tmp, png_3x2, sizeof png_3x2);
        files_result_t res = finalize(fx->tmp, fx->final, mimes[i]);
        assert_ok(&res);
        assert_string_equal(res.image_size, "");
    }
}

/* The storage root is a regular file: mkdir fails, the temp file is removed. */
static void test_finalize_mkdir_fails(void **state)
{
    fx_t *fx = *state;
    write_file(fx->root, "not a dir", 9);
    write_file(fx->tmp, png_3x2, sizeof png_3x2);
    files_result_t res = finalize(fx->tmp, fx->final, "image/png");
    assert_int_equal(res.err, ENOTDIR);
    assert_string_equal(res.phase, PHASE_STORE);
    assert_false(res.internal);
    assert_true(strstr(res.detail, "mkdir ") == res.detail);
    assert_non_null(strstr(res.detail, "store"));
    assert_false(exists(fx->tmp));
    assert_false(exists(fx->final));
}

/* The final path is a non-empty directory: rename fails, the temp file is removed. */
static void test_finalize_rename_fails(void **state)
{
    fx_t *fx = *state;
    char inner[300];
    snprintf(inner, sizeof inner, "%s/keep", fx->final);
    assert_int_equal(mkdir(fx->root, 0755), 0);
    char dir[256];
    snprintf(dir, sizeof dir, "%s/abc", fx->root);
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_int_equal(mkdir(fx->final, 0755), 0);
    write_file(inner, "x", 1);
    write_file(fx->tmp, "data", 4);
    files_result_t res = finalize(fx->tmp, fx->final, NULL);
    assert_true(res.err == EISDIR || res.err == ENOTEMPTY || res.err == EEXIST);
    assert_string_equal(res.phase, PHASE_STORE);
    assert_false(res.internal);
    assert_true(strstr(res.detail, "rename ") == res.detail);
    assert_false(exists(fx->tmp));
    assert_true(exists(inner));
}

/* A missing temp file is our own fault, found while syncing. */
static void test_finalize_missing_tmp(void **state)
{
    fx_t *fx = *state;
    files_result_t res = finalize(fx->tmp, fx->final, "image/png");
    assert_int_equal(res.err, ENOENT);
    assert_string_equal(res.phase, PHASE_SYNC);
    assert_true(res.internal);
    assert_non_null(strstr(res.detail, "No such file"));
    assert_false(exists(fx->final));
}

/* /dev/shm (tmpfs) to /tmp: rename gives EXDEV, the file is copied instead. */
static void test_finalize_cross_device(void **state)
{
    fx_t *fx = *state;
    struct stat a, b;
    char tmp[] = "/dev/shm/files-test-XXXXXX";
    if (stat("/dev/shm", &a) < 0 || stat(fx->dir, &b) < 0 || a.st_dev == b.st_dev) skip();
    int fd = mkstemp(tmp);
    if (fd < 0) skip();
    static uint8_t big[200 * 1024 + 7];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 31 + i / 4096);
    memcpy(big, png_3x2, sizeof png_3x2);
    assert_int_equal(write(fd, big, sizeof big), (ssize_t)sizeof big);
    close(fd);
    files_result_t res = finalize(tmp, fx->final, "image/png");
    assert_ok(&res);
    assert_string_equal(res.image_size, "3x2");
    assert_false(exists(tmp));
    char part[300];
    snprintf(part, sizeof part, "%s.part", fx->final);
    assert_false(exists(part));
    FILE *f = fopen(fx->final, "rb");
    assert_non_null(f);
    uint8_t *back = malloc(sizeof big + 1);
    assert_non_null(back);
    assert_int_equal(fread(back, 1, sizeof big + 1, f), sizeof big);
    fclose(f);
    assert_memory_equal(back, big, sizeof big);
    free(back);
    assert_string_equal(stored_type(fx->final), "image/png"); /* the copy carries it too */
}

/* The cross-device copy cannot be written: a store failure, the temp file removed. */
static void test_finalize_cross_device_copy_fails(void **state)
{
    fx_t *fx = *state;
    struct stat a, b;
    char tmp[] = "/dev/shm/files-test-XXXXXX", part[300], dir[256];
    if (stat("/dev/shm", &a) < 0 || stat(fx->dir, &b) < 0 || a.st_dev == b.st_dev) skip();
    int fd = mkstemp(tmp);
    if (fd < 0) skip();
    assert_int_equal(write(fd, "data", 4), 4);
    close(fd);
    snprintf(dir, sizeof dir, "%s/abc", fx->root);
    snprintf(part, sizeof part, "%s.part", fx->final);
    assert_int_equal(mkdir(fx->root, 0755), 0);
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_int_equal(mkdir(part, 0755), 0); /* the copy target is in the way */
    files_result_t res = finalize(tmp, fx->final, NULL);
    assert_int_equal(res.err, EISDIR);
    assert_string_equal(res.phase, PHASE_STORE);
    assert_false(res.internal);
    assert_true(strstr(res.detail, "copy ") == res.detail);
    assert_false(exists(tmp));
    assert_false(exists(fx->final));
}

/* Many finalizes in flight at once, racing to create the same directories. */
static void test_finalize_concurrent(void **state)
{
    fx_t *fx = *state;
    enum { N = 40 };
    char tmps[N][160], finals[N][256];
    got_t got[N] = {0};
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    for (int i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof id, "%s%04d", i % 2 ? "abc" : "xyz", i);
        snprintf(tmps[i], sizeof tmps[i], "%s/%s.tmp", fx->dir, id);
        files_job_path(finals[i], sizeof finals[i], fx->root, id);
        write_file(tmps[i], png_3x2, sizeof png_3x2);
        assert_int_equal(
            files_finalize(&loop, tmps[i], finals[i], NULL, "image/png", on_done, &got[i]), 0);
    }
    run_loop(&loop, got, N);
    for (int i = 0; i < N; i++) {
        assert_ok(&got[i].res);
        assert_string_equal(got[i].res.image_size, "3x2");
        assert_false(exists(tmps[i]));
        assert_file_holds(finals[i], png_3x2, sizeof png_3x2);
    }
}

/* Arguments that cannot be queued: an error, no callback, the temp file untouched. */
static void test_finalize_bad_args(void **state)
{
    fx_t *fx = *state;
    uv_loop_t loop;
    got_t g = {0};
    write_file(fx->tmp, "x", 1);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_true(files_finalize(NULL, fx->tmp, fx->final, NULL, NULL, on_done, &g) < 0);
    assert_true(files_finalize(&loop, NULL, fx->final, NULL, NULL, on_done, &g) < 0);
    assert_true(files_unlink(&loop, NULL, on_done, &g) < 0);
    assert_true(files_disk_usage(&loop, NULL, on_usage, &g) < 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(g.calls, 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_true(exists(fx->tmp));
}

/* Without a final path (object storage) only the size is measured: the temp file
 * stays for the upload and nothing is created in the store. */
static void test_finalize_measure_only(void **state)
{
    fx_t *fx = *state;
    write_file(fx->tmp, png_3x2, sizeof png_3x2);
    files_result_t res = finalize(fx->tmp, NULL, "image/png");
    assert_ok(&res);
    assert_string_equal(res.image_size, "3x2");
    assert_file_holds(fx->tmp, png_3x2, sizeof png_3x2);
    assert_string_equal(stored_type(fx->tmp), ""); /* object storage: the upload types it */
    assert_false(exists(fx->root));
}

/* A NULL done callback is allowed: the work still happens. */
static void test_finalize_without_callback(void **state)
{
    fx_t *fx = *state;
    uv_loop_t loop;
    write_file(fx->tmp, "x", 1);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(files_finalize(&loop, fx->tmp, fx->final, NULL, NULL, NULL, NULL), 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_file_holds(fx->final, "x", 1);
}

/* ---- unlink ---- */

static files_result_t unlink_path(const char *path)
{
    uv_loop_t loop;
    got_t g = {0};
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(files_unlink(&loop, path, on_done, &g), 0);
    run_loop(&loop, &g, 1);
    return g.res;
}

static void test_unlink(void **state)
{
    fx_t *fx = *state;
    write_file(fx->tmp, "x", 1);
    files_result_t res = unlink_path(fx->tmp);
    assert_ok(&res);
    assert_false(exists(fx->tmp));
    res = unlink_path(fx->tmp); /* already gone: still success */
    assert_ok(&res);
    res = unlink_path(fx->dir); /* a directory cannot be unlinked */
    assert_int_not_equal(res.err, 0);
    assert_string_not_equal(res.phase, "");
    assert_non_null(strstr(res.detail, fx->dir));
    assert_true(exists(fx->dir));
}

/* ---- disk usage ---- */

static int usage_of(const char *path)
{
    uv_loop_t loop;
    got_t g = {0};
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(files_disk_usage(&loop, path, on_usage, &g), 0);
    run_loop(&loop, &g, 1);
    return g.percent;
}

static void test_disk_usage(void **state)
{
    fx_t *fx = *state;
    struct statvfs st;
    int pct = usage_of(fx->dir);
    assert_true(pct >= 0 && pct <= 100);
    assert_int_equal(statvfs(fx->dir, &st), 0);
    int want = (int)((st.f_blocks - st.f_bfree) * 100 / st.f_blocks);
    assert_true(pct >= want - 1 && pct <= want + 1); /* usage may move in between */
    char missing[128];
    snprintf(missing, sizeof missing, "%s/nope", fx->dir);
    assert_int_equal(usage_of(missing), -ENOENT);
}

/* ---- finalize from memory ---- */

static void test_finalize_mem(void **state)
{
    fx_t *fx = *state;
    uv_loop_t loop;
    got_t g = {0};
    unsigned char *data = malloc(sizeof png_3x2);
    memcpy(data, png_3x2, sizeof png_3x2);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(files_finalize_mem(&loop, fx->tmp, fx->final, "image/png", "image/png", data,
                                        sizeof png_3x2, on_done, &g),
                     0);
    run_loop(&loop, &g, 1);
    assert_ok(&g.res);
    assert_string_equal(g.res.image_size, "3x2");
    assert_file_holds(fx->final, png_3x2, sizeof png_3x2);
    assert_string_equal(stored_type(fx->final), "image/png");
    assert_false(exists(fx->tmp));
}

static void test_finalize_mem_fails_cleanly(void **state)
{
    fx_t *fx = *state;
    uv_loop_t loop;
    got_t g = {0};
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s/missing-dir/x.tmp", fx->dir); /* cannot be created */
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(
        files_finalize_mem(&loop, tmp, fx->final, NULL, NULL, malloc(4), 4, on_done, &g), 0);
    run_loop(&loop, &g, 1);
    assert_int_equal(g.res.err, ENOENT);
    assert_string_equal(g.res.phase, "creating tmp file");
    assert_true(g.res.internal);
    assert_false(exists(fx->final));
}

/* ---- finalize: batches per loop iteration ---- */

static int done_seq;       /* done callbacks so far */
static unsigned iteration; /* loop iterations so far, counted by a check handle */

typedef struct {
    got_t got;
    int seq;       /* done_seq when done ran */
    unsigned iter; /* iteration when done ran */
} seen_t;

static void on_seen(const files_result_t *res, void *arg)
{
    seen_t *s = arg;
    on_done(res, &s->got);
    s->seq = done_seq++;
    s->iter = iteration;
}

static void on_iteration(uv_check_t *h)
{
    (void)h;
    iteration++;
}

static unsigned char *dup_mem(const void *data, size_t len)
{
    unsigned char *p = malloc(len ? len : 1);
    assert_non_null(p);
    memcpy(p, data, len);
    return p;
}

static int finalize_mem(uv_loop_t *loop, const char *tmp, const char *final, const char *mime,
                        const void *data, size_t len, seen_t *s)
{
    return files_finalize_mem(loop, tmp, final, NULL, mime, dup_mem(data, len), len, on_seen, s);
}

/* Runs the loop to its end with an iteration counter that does not keep it alive; each
 * of the n callbacks ran once, on this thread, and nothing is left open. */
static void run_counted(uv_loop_t *loop, seen_t *seen, size_t n)
{
    uv_check_t count;
    uv_thread_t me = uv_thread_self();
    uv_check_init(loop, &count);
    uv_check_start(&count, on_iteration);
    uv_unref((uv_handle_t *)&count);
    assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
    uv_close((uv_handle_t *)&count, NULL);
    assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(seen[i].got.calls, 1);
        assert_true(uv_thread_equal(&me, &seen[i].got.thread));
    }
    assert_int_equal(uv_loop_close(loop), 0);
}

/* Small bodies of every kind submitted in one iteration: all stored with their content
 * and image size, completed together in submission order. */
static void test_finalize_mem_batch(void **state)
{
    fx_t *fx = *state;
    enum { N = 12 };
    char tmps[N][160], finals[N][256], text[N][32];
    seen_t seen[N] = {0};
    uv_loop_t loop;
    done_seq = 0;
    iteration = 0;
    assert_int_equal(uv_loop_init(&loop), 0);
    for (int i = 0; i < N; i++) { /* every fourth one is text, the others images */
        char id[32];
        snprintf(id, sizeof id, "%s%04d", i % 3 ? "bat" : "mem", i);
        snprintf(tmps[i], sizeof tmps[i], "%s/%s.tmp", fx->dir, id);
        files_job_path(finals[i], sizeof finals[i], fx->root, id);
        snprintf(text[i], sizeof text[i], "body number %d", i);
        int rc = i % 4 < N_IMAGES ? finalize_mem(&loop, tmps[i], finals[i], images[i % 4].mime,
                                                 images[i % 4].data, images[i % 4].len, &seen[i])
                                  : finalize_mem(&loop, tmps[i], finals[i], "text/plain", text[i],
                                                 strlen(text[i]), &seen[i]);
        assert_int_equal(rc, 0);
    }
    run_counted(&loop, seen, N);
    for (int i = 0; i < N; i++) {
        bool image = i % 4 < N_IMAGES;
        assert_ok(&seen[i].got.res);
        assert_string_equal(seen[i].got.res.image_size, image ? images[i % 4].size : "");
        if (image)
            assert_file_holds(finals[i], images[i % 4].data, images[i % 4].len);
        else
            assert_file_holds(finals[i], text[i], strlen(text[i]));
        assert_false(exists(tmps[i]));
        assert_int_equal(seen[i].seq, i);
        assert_int_equal(seen[i].iter, seen[0].iter);
    }
}

/* One batch where some requests fail: each gets its own result, the others are stored,
 * failed temp files are removed and an object-storage one stays. */
static void test_finalize_batch_failures_isolated(void **state)
{
    fx_t *fx = *state;
    enum { N = 7 };
    char tmps[N][160], finals[N][256], blocker[160];
    seen_t seen[N] = {0};
    uv_loop_t loop;
    for (int i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof id, "%s%04d", i == 1 ? "zzz" : "iso", i);
        snprintf(tmps[i], sizeof tmps[i], "%s/%s.tmp", fx->dir, id);
        files_job_path(finals[i], sizeof finals[i], fx->root, id);
    }
    snprintf(tmps[2], sizeof tmps[2], "%s/missing-dir/x.tmp", fx->dir);
    snprintf(blocker, sizeof blocker, "%s/zzz", fx->root);
    assert_int_equal(mkdir(fx->root, 0755), 0);
    write_file(blocker, "not a dir", 9); /* final directory of [1] */
    write_file(tmps[4], "streamed", 8);
    done_seq = 0;
    char junk[100];
    memset(junk, 'j', sizeof junk);
    write_file(tmps[6], junk, sizeof junk); /* longer than the body: truncated */
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(finalize_mem(&loop, tmps[0], finals[0], NULL, "first", 5, &seen[0]), 0);
    assert_int_equal(
        finalize_mem(&loop, tmps[1], finals[1], "image/png", png_3x2, sizeof png_3x2, &seen[1]), 0);
    assert_int_equal(finalize_mem(&loop, tmps[2], finals[2], NULL, "lost", 4, &seen[2]), 0);
    assert_int_equal(files_finalize(&loop, tmps[3], finals[3], NULL, NULL, on_seen, &seen[3]), 0);
    assert_int_equal(files_finalize(&loop, tmps[4], finals[4], NULL, NULL, on_seen, &seen[4]), 0);
    assert_int_equal(
        finalize_mem(&loop, tmps[5], NULL, "image/gif", gif_5x4, sizeof gif_5x4, &seen[5]), 0);
    assert_int_equal(
        finalize_mem(&loop, tmps[6], finals[6], "image/png", png_3x2, sizeof png_3x2, &seen[6]), 0);
    run_counted(&loop, seen, N);

    assert_ok(&seen[0].got.res);
    assert_file_holds(finals[0], "first", 5);

    assert_int_equal(seen[1].got.res.err, ENOTDIR); /* mkdir blocked by a regular file */
    assert_string_equal(seen[1].got.res.phase, PHASE_STORE);
    assert_false(seen[1].got.res.internal);
    assert_true(strstr(seen[1].got.res.detail, "mkdir ") == seen[1].got.res.detail);
    assert_false(exists(tmps[1]));
    assert_false(exists(finals[1]));

    assert_int_equal(seen[2].got.res.err, ENOENT); /* the temp file cannot be created */
    assert_string_equal(seen[2].got.res.phase, "creating tmp file");
    assert_true(seen[2].got.res.internal);
    assert_true(strstr(seen[2].got.res.detail, "open ") == seen[2].got.res.detail);
    assert_false(exists(finals[2]));

    assert_int_equal(seen[3].got.res.err, ENOENT); /* streamed, but no temp file */
    assert_string_equal(seen[3].got.res.phase, PHASE_SYNC);
    assert_true(seen[3].got.res.internal);
    assert_false(exists(finals[3]));

    assert_ok(&seen[4].got.res);
    assert_file_holds(finals[4], "streamed", 8);
    assert_false(exists(tmps[4]));

    assert_ok(&seen[5].got.res); /* object storage: measured, the temp file stays */
    assert_string_equal(seen[5].got.res.image_size, "5x4");
    assert_file_holds(tmps[5], gif_5x4, sizeof gif_5x4);

    assert_ok(&seen[6].got.res); /* the temp file written over, then stored */
    assert_string_equal(seen[6].got.res.image_size, "3x2");
    assert_file_holds(finals[6], png_3x2, sizeof png_3x2);
    assert_false(exists(tmps[6]));
    for (int i = 0; i < N; i++)
        assert_int_equal(seen[i].seq, i);
}

/* More requests than one batch holds: split into several, every one still completed. */
static void test_finalize_batch_cap(void **state)
{
    fx_t *fx = *state;
    enum { N = 150 };
    static char tmps[N][160], finals[N][256];
    static seen_t seen[N];
    uv_loop_t loop;
    memset(seen, 0, sizeof seen);
    assert_int_equal(uv_loop_init(&loop), 0);
    for (int i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof id, "c%02d%04d", i % 7, i);
        snprintf(tmps[i], sizeof tmps[i], "%s/%s.tmp", fx->dir, id);
        files_job_path(finals[i], sizeof finals[i], fx->root, id);
        assert_int_equal(finalize_mem(&loop, tmps[i], finals[i], NULL, id, strlen(id), &seen[i]),
                         0);
    }
    run_counted(&loop, seen, N);
    for (int i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof id, "c%02d%04d", i % 7, i);
        assert_ok(&seen[i].got.res);
        assert_file_holds(finals[i], id, strlen(id));
        assert_false(exists(tmps[i]));
    }
}

/* A done callback that submits the next finalisation: the chain runs to its end and the
 * loop closes cleanly. */
typedef struct {
    uv_loop_t *loop;
    fx_t *fx;
    int left;
    int stored;
} chain_t;

static void chain_next(chain_t *c);

static void on_chain(const files_result_t *res, void *arg)
{
    chain_t *c = arg;
    if (res->err == 0) c->stored++;
    if (--c->left > 0) chain_next(c);
}

static void chain_next(chain_t *c)
{
    char final[256];
    snprintf(final, sizeof final, "%s/chain/%d", c->fx->root, c->left);
    assert_int_equal(files_finalize_mem(c->loop, c->fx->tmp, final, NULL, NULL, dup_mem("link", 4),
                                        4, on_chain, c),
                     0);
}

static void test_finalize_from_done_callback(void **state)
{
    fx_t *fx = *state;
    uv_loop_t loop;
    chain_t c = {.loop = &loop, .fx = fx, .left = 5};
    assert_int_equal(uv_loop_init(&loop), 0);
    chain_next(&c);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(c.left, 0);
    assert_int_equal(c.stored, 5);
    for (int i = 1; i <= 5; i++) {
        char final[256];
        snprintf(final, sizeof final, "%s/chain/%d", fx->root, i);
        assert_file_holds(final, "link", 4);
    }
}

/* Two loops on one thread keep separate batches: each runs only its own. */
static void test_finalize_two_loops(void **state)
{
    fx_t *fx = *state;
    uv_loop_t a, b;
    seen_t sa = {0}, sb = {0};
    char tmp_b[160], final_b[256];
    snprintf(tmp_b, sizeof tmp_b, "%s/other.tmp", fx->dir);
    files_job_path(final_b, sizeof final_b, fx->root, "other");
    assert_int_equal(uv_loop_init(&a), 0);
    assert_int_equal(uv_loop_init(&b), 0);
    assert_int_equal(finalize_mem(&a, fx->tmp, fx->final, NULL, "on a", 4, &sa), 0);
    assert_int_equal(finalize_mem(&b, tmp_b, final_b, NULL, "on b", 4, &sb), 0);
    run_counted(&b, &sb, 1);
    assert_int_equal(sa.got.calls, 0);
    assert_false(exists(fx->final));
    assert_file_holds(final_b, "on b", 4);
    run_counted(&a, &sa, 1);
    assert_ok(&sa.got.res);
    assert_file_holds(fx->final, "on a", 4);
}

/* ---- stale temp files ---- */

static int sweep(const char *dir, long older_s)
{
    uv_loop_t loop;
    got_t g = {0};
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(files_sweep_tmp(&loop, dir, older_s, on_usage, &g), 0);
    run_loop(&loop, &g, 1);
    return g.percent;
}

static void make_old(const char *path, time_t age)
{
    struct timespec t[2] = {{time(NULL) - age, 0}, {time(NULL) - age, 0}};
    assert_int_equal(utimensat(AT_FDCWD, path, t, 0), 0);
}

static void test_sweep_stale_tmp(void **state)
{
    fx_t *fx = *state;
    char old_tmp[300], new_tmp[300], old_other[300], old_dir[300];
    snprintf(old_tmp, sizeof old_tmp, "%s/old.tmp", fx->dir);
    snprintf(new_tmp, sizeof new_tmp, "%s/new.tmp", fx->dir);
    snprintf(old_other, sizeof old_other, "%s/keep.txt", fx->dir);
    snprintf(old_dir, sizeof old_dir, "%s/dir.tmp", fx->dir);
    write_file(old_tmp, "x", 1);
    write_file(new_tmp, "x", 1);
    write_file(old_other, "x", 1);
    assert_int_equal(mkdir(old_dir, 0755), 0);
    make_old(old_tmp, 3600);
    make_old(old_other, 3600);
    make_old(old_dir, 3600);
    assert_int_equal(sweep(fx->dir, 600), 1);
    assert_false(exists(old_tmp)); /* only stale regular *.tmp files go */
    assert_true(exists(new_tmp));
    assert_true(exists(old_other));
    assert_true(exists(old_dir));
    char missing[300];
    snprintf(missing, sizeof missing, "%s/nope", fx->dir);
    assert_int_equal(sweep(missing, 600), -ENOENT);
}

/* The periodic sweep's halves: the list names exactly what the start-up sweep would
 * remove; removal takes only the named files still stale, and counts their bytes. */
typedef struct {
    got_t g;
    char **names;
    size_t n;
    uint64_t bytes;
} listed_t;

static void on_listed(int err, char **names, size_t n, void *arg)
{
    listed_t *l = arg;
    on_usage(err, &l->g);
    l->names = names;
    l->n = n;
}

static void on_removed(int removed, uint64_t bytes, void *arg)
{
    listed_t *l = arg;
    on_usage(removed, &l->g);
    l->bytes = bytes;
}

static bool listed(const listed_t *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->names[i], name) == 0) return true;
    return false;
}

static void test_list_and_remove_stale_tmp(void **state)
{
    fx_t *fx = *state;
    const char *files[] = {"a.tmp", "b.tmp", "c.tmp", "new.tmp", "keep.txt"};
    char path[300];
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s/%s", fx->dir, files[i]);
        write_file(path, "abcde", (size_t)i + 1);
        if (strcmp(files[i], "new.tmp") != 0) make_old(path, 3600);
    }
    snprintf(path, sizeof path, "%s/dir.tmp", fx->dir);
    assert_int_equal(mkdir(path, 0755), 0);
    make_old(path, 3600);
    uv_loop_t loop;
    listed_t l = {0};
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(files_list_tmp(&loop, fx->dir, 600, on_listed, &l), 0);
    run_loop(&loop, &l.g, 1);
    assert_int_equal(l.g.percent, 0);
    assert_int_equal(l.n, 3);
    assert_true(listed(&l, "a") && listed(&l, "b") && listed(&l, "c"));
    files_names_free(l.names, l.n);

    /* b was written to since (no longer stale), d never existed: a and c go */
    snprintf(path, sizeof path, "%s/b.tmp", fx->dir);
    make_old(path, 0);
    const char *names[] = {"a", "b", "c", "d"};
    listed_t r = {0};
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(files_remove_tmp(&loop, fx->dir, names, 4, 600, on_removed, &r), 0);
    run_loop(&loop, &r.g, 1);
    assert_int_equal(r.g.percent, 2);
    assert_int_equal(r.bytes, 1 + 3);
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s/%s", fx->dir, files[i]);
        assert_int_equal(exists(path), i == 0 || i == 2 ? false : true);
    }

    listed_t e = {0};
    snprintf(path, sizeof path, "%s/nope", fx->dir);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(files_list_tmp(&loop, path, 600, on_listed, &e), 0);
    run_loop(&loop, &e.g, 1);
    assert_int_equal(e.g.percent, -ENOENT);
    assert_null(e.names);
}

/* ---- job path ---- */

static void test_job_path(void **state)
{
    (void)state;
    char buf[64];
    files_job_path(buf, sizeof buf, "/var/store", "abcdef");
    assert_string_equal(buf, "/var/store/abc/abcdef");
    files_job_path(buf, sizeof buf, "/var/store//", "abcdef");
    assert_string_equal(buf, "/var/store/abc/abcdef");
    files_job_path(buf, sizeof buf, "/", "abcdef");
    assert_string_equal(buf, "/abc/abcdef");
    files_job_path(buf, sizeof buf, "rel", "ab");
    assert_string_equal(buf, "rel/ab/ab");
    files_job_path(buf, sizeof buf, "", "abcd");
    assert_string_equal(buf, "abc/abcd");
    files_job_path(buf, 8, "/var/store", "abcdef"); /* truncated, terminated */
    assert_string_equal(buf, "/var/st");
    files_job_path(buf, sizeof buf, NULL, "abcdef");
    assert_string_equal(buf, "");
    files_job_path(NULL, 0, "/x", "abcdef");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_finalize_moves_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finalize_measure_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finalize_existing_dir_and_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finalize_image_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finalize_corrupt_png_no_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finalize_size_only_when_asked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finalize_mkdir_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finalize_rename_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finalize_missing_tmp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finalize_cross_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finalize_cross_device_copy_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finalize_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finalize_bad_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finalize_without_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finalize_mem, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finalize_mem_fails_cleanly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finalize_mem_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finalize_batch_failures_isolated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finalize_batch_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finalize_from_done_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finalize_two_loops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_stale_tmp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_and_remove_stale_tmp, setup, teardown),
        cmocka_unit_test(test_job_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
