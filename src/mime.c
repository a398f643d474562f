/* mime: MIME sniffing for §6.6 with libmagic in MIME-type-only mode over the first bytes
 * of a body (the processor passes up to 1024). A mime_t wraps one magic cookie with its
 * loaded database; cookies are not thread-safe, so each thread that sniffs owns its own
 * mime_t (mime_thread: one per pool thread, lazily). The matching of the detected type against a
 * job's mime_type lives elsewhere. */
#include "mime.h"

#include <errno.h>
#include <magic.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIME_EMPTY "application/x-empty"
#define MIME_FALLBACK "application/octet-stream"

struct mime {
    magic_t cookie;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || errlen == 0) return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

mime_t *mime_open(char *err, size_t errlen)
{
    char buf[128];
    mime_t *m = calloc(1, sizeof *m);
    if (!m) {
        set_err(err, errlen, "mime: out of memory");
        return NULL;
    }
    m->cookie = magic_open(MAGIC_MIME_TYPE | MAGIC_ERROR);
    if (!m->cookie) {
        set_err(err, errlen, "magic_open: %s", strerror_r(errno, buf, sizeof buf));
        free(m);
        return NULL;
    }
    if (magic_load(m->cookie, NULL) != 0) {
        const char *why = magic_error(m->cookie);
        set_err(err, errlen, "magic_load: %s", why ? why : "cannot load the magic database");
        mime_close(m);
        return NULL;
    }
    return m;
}

void mime_close(mime_t *m)
{
    if (!m) return;
    if (m->cookie) magic_close(m->cookie);
    free(m);
}

static pthread_key_t thread_key;
static pthread_once_t thread_once = PTHREAD_ONCE_INIT;

static void thread_close(void *m)
{
    mime_close(m);
}

static void thread_key_create(void)
{
    (void)pthread_key_create(&thread_key, thread_close);
}

mime_t *mime_thread(void)
{
    pthread_once(&thread_once, thread_key_create);
    mime_t *m = pthread_getspecific(thread_key);
    if (!m && (m = mime_open(NULL, 0)) && pthread_setspecific(thread_key, m) != 0) {
        mime_close(m);
        m = NULL;
    }
    return m;
}

int mime_detect(mime_t *m, const void *data, size_t len, char *out, size_t outlen)
{
    const char *type = NULL;
    if (len == 0)
        type = MIME_EMPTY;
    else if (m && data)
        type = magic_buffer(m->cookie, data, len);
    if (out && outlen > 0) snprintf(out, outlen, "%s", type ? type : MIME_FALLBACK);
    return type && out && outlen > 0 ? 0 : -1;
}
