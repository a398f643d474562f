/* imgsize: width and height from JPEG (SOFn), PNG (IHDR) and GIF headers. */
#ifndef DOWNLOADER_IMGSIZE_H
#define DOWNLOADER_IMGSIZE_H

#include <stddef.h>
#include <sys/types.h>

/* Reads at most `size` bytes at offset `off` into buf; returns bytes read or -1. */
typedef ssize_t (*imgsize_read_fn)(void *ctx, void *buf, size_t size, off_t off);

/* Decodes the dimensions of an image of the given MIME type ("image/jpeg",
 * "image/png", "image/gif") through a positional reader (so JPEG markers deep in a
 * file are found without reading it whole). 0 on success, -1 if unsupported or corrupt. */
int imgsize_read(const char *mime, imgsize_read_fn rd, void *ctx, unsigned *w, unsigned *h);

/* Same over a memory buffer. */
int imgsize_buf(const char *mime, const void *data, size_t len, unsigned *w, unsigned *h);

#endif
