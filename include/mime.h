/* mime: MIME sniffing with libmagic (MAGIC_MIME_TYPE) over a body prefix. */
#ifndef DOWNLOADER_MIME_H
#define DOWNLOADER_MIME_H

#include <stddef.h>

typedef struct mime mime_t;

/* Opens libmagic and loads its database; NULL with a message in err on failure. */
mime_t *mime_open(char *err, size_t errlen);
void mime_close(mime_t *m);

/* The calling thread's own mime_t, opened at its first call and closed when the thread
 * exits (for thread-pool work); NULL when libmagic cannot be opened. */
mime_t *mime_thread(void);

/* Writes the detected type ("image/png"; "application/x-empty" for len 0) into out.
 * Returns 0, or -1 when libmagic fails (out then holds "application/octet-stream"). */
int mime_detect(mime_t *m, const void *data, size_t len, char *out, size_t outlen);

#endif
