/* imgsize: image dimensions from JPEG (SOFn), PNG (IHDR) and GIF (logical screen)
 * headers, for the image_size of a stored download (§6.7). files.c calls imgsize_read
 * with a pread reader while finalising, so only a few small windows of a file are read;
 * imgsize_buf serves memory buffers through the same code. Every read is checked against
 * what the reader returned and the JPEG marker scan is bounded, so corrupt, truncated or
 * hostile input yields -1: never a crash, an out-of-bounds read or an endless loop. */
#include "imgsize.h"

#include <stdint.h>
#include <string.h>

enum {
    WIN_SIZE = 512,           /* bytes per positional read while scanning JPEG markers */
    JPEG_MAX_MARKERS = 1024,  /* markers looked at before giving up on finding a SOFn */
    JPEG_MAX_STRAY = 65536,   /* fill (0xFF) and extraneous bytes tolerated in total */
    PNG_HEAD = 33,            /* signature(8) + IHDR length(4) type(4) data(13) crc(4) */
    GIF_HEAD = 13,            /* signature(6) + logical screen descriptor(7) */
    PNG_MAX_DIM = 0x7fffffff, /* PNG limits width and height to 2^31 - 1 */
};

/* Reads exactly n bytes at off: 0, or -1 on a read error or the end of the input. */
static int read_full(imgsize_read_fn rd, void *ctx, uint8_t *buf, size_t n, off_t off)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = rd(ctx, buf + got, n - got, off + (off_t)got);
        if (r <= 0 || (size_t)r > n - got) return -1;
        got += (size_t)r;
    }
    return 0;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ---- JPEG: a cached window over the reader, then a bounded marker scan ---- */

typedef struct {
    imgsize_read_fn rd;
    void *ctx;
    off_t base; /* input offset of buf[0] */
    size_t len; /* valid bytes in buf */
    uint8_t buf[WIN_SIZE];
} window_t;

/* Refills the window from off, as far as the input goes: 0, or -1 if nothing is left. */
static int win_fill(window_t *w, off_t off)
{
    w->base = off;
    w->len = 0;
    while (w->len < sizeof w->buf) {
        size_t room = sizeof w->buf - w->len;
        ssize_t r = w->rd(w->ctx, w->buf + w->len, room, off + (off_t)w->len);
        if (r < 0 || (size_t)r > room) {
            w->len = 0;
            return -1;
        }
        if (r == 0) break;
        w->len += (size_t)r;
    }
    return w->len > 0 ? 0 : -1;
}

static int win_byte(window_t *w, off_t off, uint8_t *out)
{
    if (off < w->base || off - w->base >= (off_t)w->len) {
        if (win_fill(w, off) < 0) return -1;
    }
    *out = w->buf[off - w->base];
    return 0;
}

static int win_u16be(window_t *w, off_t off, unsigned *out)
{
    uint8_t hi, lo;
    if (win_byte(w, off, &hi) < 0 || win_byte(w, off + 1, &lo) < 0) return -1;
    *out = (unsigned)hi << 8 | lo;
    return 0;
}

/* SOF0..SOF15 minus DHT (C4), JPG (C8) and DAC (CC), which share the range. */
static int jpeg_is_sof(uint8_t m)
{
    return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
}

/* Markers without a length field: TEM, RST0..RST7, SOI. */
static int jpeg_is_standalone(uint8_t m)
{
    return m == 0x01 || (m >= 0xD0 && m <= 0xD8);
}

/* Finds the next marker from *pos, skipping 0xFF fill bytes, stuffed 0xFF00 and (like
 * libjpeg) extraneous bytes, all charged to *stray. *pos ends just after the marker. */
static int jpeg_next_marker(window_t *w, off_t *pos, size_t *stray, uint8_t *marker)
{
    for (;;) {
        uint8_t b, m;
        if (win_byte(w, *pos, &b) < 0) return -1;
        if (b == 0xFF) {
            if (win_byte(w, *pos + 1, &m) < 0) return -1;
            if (m != 0xFF && m != 0x00) {
                *marker = m;
                *pos += 2;
                return 0;
            }
        }
        *pos += 1;
        if (++*stray > JPEG_MAX_STRAY) return -1;
    }
}

/* SOFn segment at pos: length(2) precision(1) height(2) width(2) components(1) then
 * 3 bytes per component. A zero height (defined later by DNL) is not supported. */
static int jpeg_sof(window_t *w, off_t pos, unsigned seglen, unsigned *width, unsigned *height)
{
    unsigned hv, wv;
    uint8_t ncomp, last;
    if (seglen < 8 || win_u16be(w, pos + 3, &hv) < 0 || win_u16be(w, pos + 5, &wv) < 0 ||
        win_byte(w, pos + 7, &ncomp) < 0)
        return -1;
    if (ncomp == 0 || seglen != 8 + 3u * ncomp || win_byte(w, pos + seglen - 1, &last) < 0)
        return -1;
    if (wv == 0 || hv == 0) return -1;
    *width = wv;
    *height = hv;
    return 0;
}

static int jpeg_size(imgsize_read_fn rd, void *ctx, unsigned *width, unsigned *height)
{
    window_t w = {.rd = rd, .ctx = ctx, .base = 0, .len = 0};
    unsigned soi, seglen;
    off_t pos = 2;
    size_t stray = 0;
    if (win_u16be(&w, 0, &soi) < 0 || soi != 0xFFD8) return -1;
    for (int i = 0; i < JPEG_MAX_MARKERS; i++) {
        uint8_t m;
        if (jpeg_next_marker(&w, &pos, &stray, &m) < 0) return -1;
        if (jpeg_is_standalone(m)) continue;
        if (m == 0xD9 || m == 0xDA) return -1; /* EOI or SOS before any SOFn */
        if (win_u16be(&w, pos, &seglen) < 0 || seglen < 2) return -1;
        if (jpeg_is_sof(m)) return jpeg_sof(&w, pos, seglen, width, height);
        pos += seglen;
    }
    return -1;
}

/* ---- PNG: signature, then an IHDR chunk with a valid CRC and sane fields ---- */

static uint32_t crc32_png(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return c ^ 0xffffffffu;
}

/* Bit depth allowed for the colour type (PNG spec table 11.1). */
static int png_depth_ok(uint8_t depth, uint8_t colour)
{
    switch (colour) {
    case 0:
        return depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16;
    case 3:
        return depth == 1 || depth == 2 || depth == 4 || depth == 8;
    case 2:
    case 4:
    case 6:
        return depth == 8 || depth == 16;
    default:
        return 0;
    }
}

static int png_size(imgsize_read_fn rd, void *ctx, unsigned *width, unsigned *height)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    uint8_t b[PNG_HEAD];
    if (read_full(rd, ctx, b, sizeof b, 0) < 0) return -1;
    if (memcmp(b, sig, sizeof sig) != 0 || be32(b + 8) != 13 || memcmp(b + 12, "IHDR", 4) != 0)
        return -1;
    if (crc32_png(b + 12, 17) != be32(b + 29)) return -1;
    uint32_t wv = be32(b + 16), hv = be32(b + 20);
    if (wv == 0 || hv == 0 || wv > PNG_MAX_DIM || hv > PNG_MAX_DIM) return -1;
    if (!png_depth_ok(b[24], b[25]) || b[26] != 0 || b[27] != 0 || b[28] > 1) return -1;
    *width = wv;
    *height = hv;
    return 0;
}

/* ---- GIF: GIF87a/GIF89a logical screen size (little-endian) ---- */

static int gif_size(imgsize_read_fn rd, void *ctx, unsigned *width, unsigned *height)
{
    uint8_t b[GIF_HEAD], last;
    if (read_full(rd, ctx, b, sizeof b, 0) < 0) return -1;
    if (memcmp(b, "GIF87a", 6) != 0 && memcmp(b, "GIF89a", 6) != 0) return -1;
    unsigned wv = (unsigned)b[7] << 8 | b[6], hv = (unsigned)b[9] << 8 | b[8];
    if (wv == 0 || hv == 0) return -1;
    if (b[10] & 0x80) { /* a global colour table follows: it must be there in full */
        off_t table = (off_t)3 << ((b[10] & 7) + 1);
        if (read_full(rd, ctx, &last, 1, GIF_HEAD + table - 1) < 0) return -1;
    }
    *width = wv;
    *height = hv;
    return 0;
}

int imgsize_read(const char *mime, imgsize_read_fn rd, void *ctx, unsigned *w, unsigned *h)
{
    if (!mime || !rd || !w || !h) return -1;
    if (strcmp(mime, "image/jpeg") == 0) return jpeg_size(rd, ctx, w, h);
    if (strcmp(mime, "image/png") == 0) return png_size(rd, ctx, w, h);
    if (strcmp(mime, "image/gif") == 0) return gif_size(rd, ctx, w, h);
    return -1;
}

/* ---- memory buffers through the same reader interface ---- */

typedef struct {
    const uint8_t *data;
    size_t len;
} membuf_t;

static ssize_t membuf_read(void *ctx, void *buf, size_t size, off_t off)
{
    const membuf_t *m = ctx;
    if (off < 0) return -1;
    if ((uint64_t)off >= m->len) return 0;
    size_t n = m->len - (size_t)off;
    if (n > size) n = size;
    memcpy(buf, m->data + off, n);
    return (ssize_t)n;
}

int imgsize_buf(const char *mime, const void *data, size_t len, unsigned *w, unsigned *h)
{
    membuf_t m = {.data = data, .len = len};
    if (!data) return -1;
    return imgsize_read(mime, membuf_read, &m, w, h);
}
