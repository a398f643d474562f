/* Unit tests for imgsize: JPEG/PNG/GIF headers built here byte by byte, read through
 * memory buffers and through positional readers (short reads, failing, endless inputs),
 * truncated and corrupt variants, and a fixed-seed fuzz loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "imgsize.h"

/* ---- byte buffers ---- */

typedef struct {
    uint8_t *b;
    size_t n, cap;
} buf_t;

static void put(buf_t *b, const void *p, size_t n)
{
    if (n == 0) return;
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->b = realloc(b->b, b->cap);
        assert_non_null(b->b);
    }
    memcpy(b->b + b->n, p, n);
    b->n += n;
}

static void put_u8(buf_t *b, unsigned v)
{
    uint8_t c = (uint8_t)v;
    put(b, &c, 1);
}

static void put_be16(buf_t *b, unsigned v)
{
    put_u8(b, v >> 8);
    put_u8(b, v & 0xff);
}

static void put_be32(buf_t *b, uint32_t v)
{
    put_be16(b, v >> 16);
    put_be16(b, v & 0xffff);
}

/* ---- JPEG ---- */

/* A marker segment: FF <marker> <length incl. itself> <payload>. */
static void jpeg_seg(buf_t *b, unsigned marker, const void *payload, size_t n)
{
    put_u8(b, 0xff);
    put_u8(b, marker);
    put_be16(b, (unsigned)n + 2);
    put(b, payload, n);
}

/* SOFn for one 8-bit component, 1x1 sampling, quantisation table 0. */
static void jpeg_sof(buf_t *b, unsigned marker, unsigned w, unsigned h)
{
    const uint8_t p[] = {8, h >> 8, h & 0xff, w >> 8, w & 0xff, 1, 1, 0x11, 0};
    jpeg_seg(b, marker, p, sizeof p);
}

static void jpeg_app0(buf_t *b)
{
    const uint8_t p[] = {'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0};
    jpeg_seg(b, 0xe0, p, sizeof p);
}

/* APP1 "Exif" whose body would read as a 0x0101 x 0x0101 SOF if scanned blindly. */
static void jpeg_app1(buf_t *b, size_t body)
{
    uint8_t *p = malloc(body);
    assert_non_null(p);
    memset(p, 0x01, body);
    memcpy(p, "Exif\0\0\xff\xc0", body < 8 ? body : 8);
    jpeg_seg(b, 0xe1, p, body);
    free(p);
}

static void jpeg_dqt(buf_t *b)
{
    uint8_t p[65];
    p[0] = 0; /* 8-bit precision, table 0 */
    memset(p + 1, 1, 64);
    jpeg_seg(b, 0xdb, p, sizeof p);
}

/* DC table 0 and AC table 0, each a single 1-bit code: DC category 0, AC EOB. */
static void jpeg_dht(buf_t *b)
{
    uint8_t p[2 * 18] = {0};
    p[0] = 0x00;
    p[1] = 1; /* one code of length 1; symbol p[17] = 0 */
    p[18] = 0x10;
    p[19] = 1;
    jpeg_seg(b, 0xc4, p, sizeof p);
}

/* SOS for one component, the entropy-coded data of an all-grey image, EOI. */
static void jpeg_scan(buf_t *b, unsigned w, unsigned h)
{
    const uint8_t p[] = {1, 1, 0x00, 0, 63, 0};
    size_t bits = 2 * (size_t)((w + 7) / 8) * ((h + 7) / 8);
    jpeg_seg(b, 0xda, p, sizeof p);
    for (size_t i = 0; i < (bits + 7) / 8; i++) /* zero bits, padded with ones at the end */
        put_u8(b, i + 1 < (bits + 7) / 8 || bits % 8 == 0 ? 0x00 : 0xff >> (bits % 8));
    put_be16(b, 0xffd9);
}

/* SOI, APP0, [APP1], DQT, SOF<marker>, DHT, SOS, data, EOI. */
static buf_t jpeg_make(unsigned sof, unsigned w, unsigned h, bool app1)
{
    buf_t b = {0};
    put_be16(&b, 0xffd8);
    jpeg_app0(&b);
    if (app1) jpeg_app1(&b, 120);
    jpeg_dqt(&b);
    jpeg_sof(&b, sof, w, h);
    jpeg_dht(&b);
    jpeg_scan(&b, w, h);
    return b;
}

/* Offset just past the SOF segment of a jpeg_make image without APP1. */
static size_t jpeg_sof_end(void)
{
    return 2 + (2 + 2 + 14) + (2 + 2 + 65) + (2 + 2 + 9);
}

/* ---- PNG ---- */

static uint32_t crc32_png(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0xedb88320u : c >> 1;
    }
    return c ^ 0xffffffffu;
}

static void png_chunk(buf_t *b, const char *type, const uint8_t *data, size_t n)
{
    buf_t c = {0};
    put(&c, type, 4);
    put(&c, data, n);
    put_be32(b, (uint32_t)n);
    put(b, c.b, c.n);
    put_be32(b, crc32_png(c.b, c.n));
    free(c.b);
}

/* Signature, IHDR (correct CRC), IEND: enough header for any field values. */
static buf_t png_make(uint32_t w, uint32_t h, uint8_t depth, uint8_t colour)
{
    buf_t b = {0}, ihdr = {0};
    put(&b, "\x89PNG\r\n\x1a\n", 8);
    put_be32(&ihdr, w);
    put_be32(&ihdr, h);
    put(&ihdr, (uint8_t[]){depth, colour, 0, 0, 0}, 5);
    png_chunk(&b, "IHDR", ihdr.b, ihdr.n);
    png_chunk(&b, "IEND", NULL, 0);
    free(ihdr.b);
    return b;
}

/* A complete 3x2 RGB PNG (IHDR, IDAT, IEND). */
static const uint8_t png_3x2[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44,
    0x52, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x02, 0x08, 0x02, 0x00, 0x00, 0x00, 0x12,
    0x16, 0xf1, 0x4d, 0x00, 0x00, 0x00, 0x10, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8,
    0xcf, 0xc0, 0x00, 0x41, 0x0c, 0x70, 0x16, 0x00, 0x41, 0xd2, 0x05, 0xfb, 0x87, 0xf0, 0xb9,
    0x48, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
};

/* ---- GIF ---- */

/* Header, logical screen (global colour table of 2 entries), one 1x1 image, trailer. */
static buf_t gif_make(const char *version, unsigned w, unsigned h)
{
    buf_t b = {0};
    put(&b, version, 6);
    put(&b, (uint8_t[]){w & 0xff, w >> 8, h & 0xff, h >> 8, 0x80, 0, 0}, 7);
    put(&b, (uint8_t[]){0, 0, 0, 0xff, 0xff, 0xff}, 6);
    put(&b, (uint8_t[]){0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0}, 10);
    put(&b, (uint8_t[]){2, 2, 0x44, 0x01, 0, 0x3b}, 6);
    return b;
}

/* ---- readers ---- */

typedef struct {
    const uint8_t *p;
    size_t len;
    size_t step;    /* most bytes returned per call (short reads) */
    size_t calls;   /* calls made */
    size_t bytes;   /* bytes returned in total */
    size_t max_req; /* largest size asked for */
    int fail_at;    /* call number that fails (-1: never) */
} reader_t;

static ssize_t reader_read(void *ctx, void *buf, size_t size, off_t off)
{
    reader_t *r = ctx;
    if ((int)r->calls++ == r->fail_at) return -1;
    if (size > r->max_req) r->max_req = size;
    assert_true(off >= 0);
    if ((size_t)off >= r->len) return 0;
    size_t n = r->len - (size_t)off;
    if (n > size) n = size;
    if (r->step && n > r->step) n = r->step;
    memcpy(buf, r->p + off, n);
    r->bytes += n;
    return (ssize_t)n;
}

static reader_t reader_on(const buf_t *b, size_t step)
{
    return (reader_t){.p = b->b, .len = b->n, .step = step, .fail_at = -1};
}

/* An endless input: SOI, then `pattern` repeated forever. */
typedef struct {
    const uint8_t *pattern;
    size_t len;
    size_t calls;
} endless_t;

static ssize_t endless_read(void *ctx, void *buf, size_t size, off_t off)
{
    endless_t *e = ctx;
    uint8_t *out = buf;
    e->calls++;
    for (size_t i = 0; i < size; i++) {
        uint64_t o = (uint64_t)off + i;
        out[i] = o == 0 ? 0xff : o == 1 ? 0xd8 : e->pattern[(o - 2) % e->len];
    }
    return (ssize_t)size;
}

/* ---- assertions ---- */

static void expect_size(const char *mime, const buf_t *b, unsigned ew, unsigned eh)
{
    unsigned w = 0, h = 0;
    assert_int_equal(imgsize_buf(mime, b->b, b->n, &w, &h), 0);
    assert_int_equal(w, ew);
    assert_int_equal(h, eh);
    for (size_t step = 0; step <= 3; step++) {
        reader_t r = reader_on(b, step);
        w = h = 0;
        assert_int_equal(imgsize_read(mime, reader_read, &r, &w, &h), 0);
        assert_int_equal(w, ew);
        assert_int_equal(h, eh);
    }
}

/* imgsize_buf over an exact-size heap copy, so ASan sees any overread. */
static int size_of_copy(const char *mime, const uint8_t *p, size_t n, unsigned *w, unsigned *h)
{
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    if (n) memcpy(copy, p, n);
    int rc = imgsize_buf(mime, copy, n, w, h);
    free(copy);
    return rc;
}

static void expect_fail(const char *mime, const uint8_t *p, size_t n)
{
    unsigned w = 7, h = 7;
    buf_t b = {.b = (uint8_t *)p, .n = n};
    reader_t r = reader_on(&b, 1);
    assert_int_equal(size_of_copy(mime, p, n, &w, &h), -1);
    assert_int_equal(imgsize_read(mime, reader_read, &r, &w, &h), -1);
    assert_int_equal(w, 7); /* untouched on failure */
    assert_int_equal(h, 7);
}

/* Every strict prefix up to `upto` bytes fails. */
static void expect_prefixes_fail(const char *mime, const buf_t *b, size_t upto)
{
    for (size_t n = 0; n < upto && n < b->n; n++)
        expect_fail(mime, b->b, n);
}

/* ---- JPEG tests ---- */

static void test_jpeg_baseline(void **state)
{
    (void)state;
    buf_t b = jpeg_make(0xc0, 772, 258, false);
    expect_size("image/jpeg", &b, 772, 258);
    free(b.b);
}

static void test_jpeg_app1_before_sof(void **state)
{
    (void)state;
    buf_t b = jpeg_make(0xc0, 16, 8, true);
    expect_size("image/jpeg", &b, 16, 8);
    free(b.b);
}

static void test_jpeg_progressive_and_other_sofs(void **state)
{
    (void)state;
    const unsigned sofs[] = {0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xcf};
    for (size_t i = 0; i < sizeof sofs / sizeof sofs[0]; i++) {
        buf_t b = jpeg_make(sofs[i], 640, 480, i % 2 == 0);
        expect_size("image/jpeg", &b, 640, 480);
        free(b.b);
    }
}

/* DHT, JPG and DAC sit in the SOF range but are no frame headers. */
static void test_jpeg_dht_jpg_dac_skipped(void **state)
{
    (void)state;
    const uint8_t sofish[] = {8, 0, 9, 0, 9, 1, 1, 0x11, 0};
    buf_t b = {0};
    put_be16(&b, 0xffd8);
    jpeg_seg(&b, 0xc4, sofish, sizeof sofish);
    jpeg_seg(&b, 0xc8, sofish, sizeof sofish);
    jpeg_seg(&b, 0xcc, sofish, sizeof sofish);
    jpeg_sof(&b, 0xc2, 33, 44);
    expect_size("image/jpeg", &b, 33, 44);
    free(b.b);
}

/* Fill bytes before markers, standalone markers, stray bytes between segments. */
static void test_jpeg_fill_and_standalone(void **state)
{
    (void)state;
    buf_t b = {0};
    put_be16(&b, 0xffd8);
    put(&b, "\xff\xff\xff", 3);
    jpeg_app0(&b);
    put(&b, "\xff\xd0\xff\x01\xff\x00junk", 10);
    put(&b, "\xff\xff\xff\xff", 4);
    jpeg_sof(&b, 0xc0, 1, 65535);
    expect_size("image/jpeg", &b, 1, 65535);
    free(b.b);
}

static void test_jpeg_truncated(void **state)
{
    (void)state;
    buf_t b = jpeg_make(0xc0, 10, 10, false);
    expect_prefixes_fail("image/jpeg", &b, jpeg_sof_end());
    expect_size("image/jpeg", &(buf_t){.b = b.b, .n = jpeg_sof_end()}, 10, 10);
    free(b.b);
}

static void test_jpeg_corrupt(void **state)
{
    (void)state;
    const char *m = "image/jpeg";
    /* no SOI */
    expect_fail(m, (const uint8_t *)"\xff\xd9\xff\xc0\x00\x0b\x08\x00\x01\x00\x01\x01\x01\x11\x00",
                15);
    /* segment lengths 0 and 1 */
    expect_fail(m, (const uint8_t *)"\xff\xd8\xff\xe0\x00\x00\xff\xc0", 8);
    expect_fail(m, (const uint8_t *)"\xff\xd8\xff\xe0\x00\x01\xff\xc0", 8);
    /* EOI and SOS before any SOF */
    expect_fail(m,
                (const uint8_t *)"\xff\xd8\xff\xd9\xff\xc0\x00\x0b\x08\x00\x01\x00\x01\x01\x01"
                                 "\x11\x00",
                17);
    expect_fail(m,
                (const uint8_t *)"\xff\xd8\xff\xda\x00\x02\xff\xc0\x00\x0b\x08\x00\x01\x00\x01"
                                 "\x01\x01\x11\x00",
                19);
    /* zero width, zero height, zero components, length not matching components */
    expect_fail(m, (const uint8_t *)"\xff\xd8\xff\xc0\x00\x0b\x08\x00\x01\x00\x00\x01\x01\x11\x00",
                15);
    expect_fail(m, (const uint8_t *)"\xff\xd8\xff\xc0\x00\x0b\x08\x00\x00\x00\x01\x01\x01\x11\x00",
                15);
    expect_fail(m, (const uint8_t *)"\xff\xd8\xff\xc0\x00\x08\x08\x00\x01\x00\x01\x00", 12);
    expect_fail(m, (const uint8_t *)"\xff\xd8\xff\xc0\x00\x0b\x08\x00\x01\x00\x01\x03\x01\x11\x00",
                15);
    /* a segment length pointing past the end */
    expect_fail(m, (const uint8_t *)"\xff\xd8\xff\xe1\xff\xff\xff\xc0", 8);
}

/* SOF after three 60000-byte APP1 segments: found while reading only small windows. */
static void test_jpeg_deep_sof_reads_little(void **state)
{
    (void)state;
    buf_t b = {0};
    put_be16(&b, 0xffd8);
    for (int i = 0; i < 3; i++)
        jpeg_app1(&b, 60000);
    jpeg_sof(&b, 0xc0, 1920, 1080);
    jpeg_dht(&b);
    jpeg_scan(&b, 16, 8);
    reader_t r = reader_on(&b, 0);
    unsigned w = 0, h = 0;
    assert_int_equal(imgsize_read("image/jpeg", reader_read, &r, &w, &h), 0);
    assert_int_equal(w, 1920);
    assert_int_equal(h, 1080);
    assert_true(b.n > 180000);
    assert_true(r.bytes < 4096);
    assert_true(r.max_req <= 512);
    free(b.b);
}

static void expect_endless_fails(const uint8_t *pattern, size_t len, size_t max_calls)
{
    endless_t e = {.pattern = pattern, .len = len};
    unsigned w = 0, h = 0;
    assert_int_equal(imgsize_read("image/jpeg", endless_read, &e, &w, &h), -1);
    assert_true(e.calls <= max_calls);
}

/* Endless fill bytes, endless empty segments, endless maximal segments: all bounded. */
static void test_jpeg_scan_is_bounded(void **state)
{
    (void)state;
    expect_endless_fails((const uint8_t *)"\xff", 1, 200);
    expect_endless_fails((const uint8_t *)"\xff\xe0\x00\x02", 4, 200);
    expect_endless_fails((const uint8_t *)"\xff\xd0", 2, 200);
    expect_endless_fails((const uint8_t *)"\xff\xfe\xff\xff", 4, 2100);
    expect_endless_fails((const uint8_t *)"junk", 4, 200);
}

/* ---- PNG tests ---- */

static void test_png_sizes(void **state)
{
    (void)state;
    expect_size("image/png", &(buf_t){.b = (uint8_t *)png_3x2, .n = sizeof png_3x2}, 3, 2);
    buf_t b = png_make(640, 480, 8, 6);
    expect_size("image/png", &b, 640, 480);
    free(b.b);
    b = png_make(0x7fffffff, 1, 1, 0);
    expect_size("image/png", &b, 0x7fffffff, 1);
    free(b.b);
    b = png_make(70000, 3, 4, 3);
    expect_size("image/png", &b, 70000, 3);
    free(b.b);
}

static void test_png_truncated(void **state)
{
    (void)state;
    buf_t b = {.b = (uint8_t *)png_3x2, .n = sizeof png_3x2};
    expect_prefixes_fail("image/png", &b, 33);
    expect_size("image/png", &(buf_t){.b = b.b, .n = 33}, 3, 2);
}

static void test_png_corrupt(void **state)
{
    (void)state;
    uint8_t p[sizeof png_3x2];
    const size_t flips[] = {0, 3, 7, 11, 12, 15, 19, 23, 24, 25, 30};
    for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
        memcpy(p, png_3x2, sizeof p);
        p[flips[i]] ^= 0x20; /* signature, length, type, fields or CRC damaged */
        expect_fail("image/png", p, sizeof p);
    }
    /* valid CRCs, invalid fields */
    const uint32_t dims[][2] = {{0, 1}, {1, 0}, {0x80000000u, 1}, {1, 0xffffffffu}};
    for (size_t i = 0; i < 4; i++) {
        buf_t b = png_make(dims[i][0], dims[i][1], 8, 2);
        expect_fail("image/png", b.b, b.n);
        free(b.b);
    }
    const uint8_t bad[][2] = {{3, 0}, {16, 3}, {4, 2}, {1, 6}, {8, 1}, {8, 7}, {0, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        buf_t b = png_make(5, 5, bad[i][0], bad[i][1]);
        expect_fail("image/png", b.b, b.n);
        free(b.b);
    }
}

/* ---- GIF tests ---- */

static void test_gif_sizes(void **state)
{
    (void)state;
    buf_t b = gif_make("GIF89a", 1, 1);
    expect_size("image/gif", &b, 1, 1);
    free(b.b);
    b = gif_make("GIF87a", 300, 200); /* little-endian: 2c 01, c8 00 */
    expect_size("image/gif", &b, 300, 200);
    free(b.b);
    /* no global colour table: the 13-byte header is enough */
    expect_size("image/gif",
                &(buf_t){.b = (uint8_t *)"GIF89a\x02\x01\x04\x03\x00\x00\x00", .n = 13}, 258, 772);
}

static void test_gif_truncated_and_corrupt(void **state)
{
    (void)state;
    buf_t b = gif_make("GIF89a", 9, 9);
    expect_prefixes_fail("image/gif", &b, 13 + 6); /* header + the 2-entry colour table */
    b.b[3] = '9';
    expect_fail("image/gif", b.b, b.n); /* GIF99a */
    free(b.b);
    b = gif_make("GIF88a", 9, 9);
    expect_fail("image/gif", b.b, b.n);
    free(b.b);
    b = gif_make("GIF89a", 0, 9);
    expect_fail("image/gif", b.b, b.n);
    free(b.b);
    b = gif_make("GIF89a", 9, 0);
    expect_fail("image/gif", b.b, b.n);
    free(b.b);
    /* a 256-entry global colour table announced but missing */
    expect_fail("image/gif", (const uint8_t *)"GIF89a\x01\x00\x01\x00\x87\x00\x00\x00\x00\x00", 16);
}

/* ---- API edges ---- */

static void test_unsupported_and_bad_args(void **state)
{
    (void)state;
    buf_t png = png_make(2, 2, 8, 2);
    unsigned w, h;
    assert_int_equal(imgsize_buf("image/bmp", png.b, png.n, &w, &h), -1);
    assert_int_equal(imgsize_buf("image/png ", png.b, png.n, &w, &h), -1);
    assert_int_equal(imgsize_buf("image/jpeg", png.b, png.n, &w, &h), -1); /* wrong type */
    assert_int_equal(imgsize_buf(NULL, png.b, png.n, &w, &h), -1);
    assert_int_equal(imgsize_buf("image/png", NULL, png.n, &w, &h), -1);
    assert_int_equal(imgsize_buf("image/png", png.b, png.n, NULL, &h), -1);
    assert_int_equal(imgsize_buf("image/png", png.b, png.n, &w, NULL), -1);
    assert_int_equal(imgsize_read("image/png", NULL, NULL, &w, &h), -1);
    assert_int_equal(imgsize_buf("image/png", png.b, 0, &w, &h), -1);
    free(png.b);
}

/* A reader error anywhere before the answer is a failure. */
static void test_reader_errors(void **state)
{
    (void)state;
    buf_t imgs[3] = {jpeg_make(0xc0, 5, 5, true), png_make(5, 5, 8, 2), gif_make("GIF89a", 5, 5)};
    const char *mimes[3] = {"image/jpeg", "image/png", "image/gif"};
    for (int i = 0; i < 3; i++) {
        for (int fail_at = 0; fail_at < 40; fail_at++) {
            reader_t r = reader_on(&imgs[i], 1);
            r.fail_at = fail_at;
            unsigned w = 0, h = 0;
            int rc = imgsize_read(mimes[i], reader_read, &r, &w, &h);
            assert_int_equal(rc, (int)r.calls > fail_at ? -1 : 0);
        }
        free(imgs[i].b);
    }
}

/* A reader that claims more bytes than asked for is treated as broken. */
static ssize_t liar_read(void *ctx, void *buf, size_t size, off_t off)
{
    (void)ctx;
    (void)off;
    memset(buf, 0xff, size);
    return (ssize_t)size + 1;
}

static void test_lying_reader(void **state)
{
    (void)state;
    unsigned w, h;
    assert_int_equal(imgsize_read("image/jpeg", liar_read, NULL, &w, &h), -1);
    assert_int_equal(imgsize_read("image/png", liar_read, NULL, &w, &h), -1);
    assert_int_equal(imgsize_read("image/gif", liar_read, NULL, &w, &h), -1);
}

/* ---- fuzz ---- */

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Buffer and short-read paths agree, and a success has non-zero dimensions. */
static void check_consistent(const uint8_t *p, size_t n, size_t step)
{
    static const char *const mimes[] = {"image/jpeg", "image/png", "image/gif"};
    for (int m = 0; m < 3; m++) {
        unsigned w1 = 0, h1 = 0, w2 = 0, h2 = 0;
        buf_t b = {.b = (uint8_t *)p, .n = n};
        reader_t r = reader_on(&b, step);
        int rc1 = size_of_copy(mimes[m], p, n, &w1, &h1);
        int rc2 = imgsize_read(mimes[m], reader_read, &r, &w2, &h2);
        assert_int_equal(rc1, rc2);
        assert_true(rc1 == 0 || rc1 == -1);
        if (rc1 == 0) {
            assert_true(w1 > 0 && h1 > 0);
            assert_int_equal(w1, w2);
            assert_int_equal(h1, h2);
        }
    }
}

/* Random bytes behind each format's magic, FF-rich for JPEG. */
static void test_fuzz_garbage(void **state)
{
    (void)state;
    uint64_t seed = 0x9e3779b97f4a7c15u;
    uint8_t p[400];
    for (int i = 0; i < 4000; i++) {
        size_t n = xorshift(&seed) % sizeof p;
        for (size_t k = 0; k < n; k++) {
            uint64_t x = xorshift(&seed);
            p[k] = (i % 4 == 3 && x % 3 == 0) ? 0xff : (uint8_t)(x >> 24);
        }
        const char *prefix[] = {"", "\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR", "GIF89a", "\xff\xd8"};
        size_t plen = i % 4 == 1 ? 16 : strlen(prefix[i % 4]);
        memcpy(p, prefix[i % 4], plen < n ? plen : n);
        check_consistent(p, n, 1 + xorshift(&seed) % 7);
    }
}

/* Valid images with a few bytes changed and a random length. */
static void test_fuzz_mutations(void **state)
{
    (void)state;
    uint64_t seed = 12345;
    buf_t imgs[4] = {jpeg_make(0xc2, 300, 200, true),
                     png_make(300, 200, 8, 2),
                     gif_make("GIF89a", 300, 200),
                     {.b = (uint8_t *)png_3x2, .n = sizeof png_3x2}};
    size_t max = 0;
    for (int i = 0; i < 4; i++)
        max = imgs[i].n > max ? imgs[i].n : max;
    uint8_t *p = malloc(max);
    assert_non_null(p);
    for (int i = 0; i < 4000; i++) {
        const buf_t *src = &imgs[i % 4];
        memcpy(p, src->b, src->n);
        int flips = 1 + (int)(xorshift(&seed) % 4);
        for (int f = 0; f < flips; f++)
            p[xorshift(&seed) % src->n] = (uint8_t)xorshift(&seed);
        size_t n = xorshift(&seed) % 2 ? src->n : xorshift(&seed) % (src->n + 1);
        check_consistent(p, n, 1 + xorshift(&seed) % 5);
    }
    free(p);
    for (int i = 0; i < 3; i++)
        free(imgs[i].b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jpeg_baseline),
        cmocka_unit_test(test_jpeg_app1_before_sof),
        cmocka_unit_test(test_jpeg_progressive_and_other_sofs),
        cmocka_unit_test(test_jpeg_dht_jpg_dac_skipped),
        cmocka_unit_test(test_jpeg_fill_and_standalone),
        cmocka_unit_test(test_jpeg_truncated),
        cmocka_unit_test(test_jpeg_corrupt),
        cmocka_unit_test(test_jpeg_deep_sof_reads_little),
        cmocka_unit_test(test_jpeg_scan_is_bounded),
        cmocka_unit_test(test_png_sizes),
        cmocka_unit_test(test_png_truncated),
        cmocka_unit_test(test_png_corrupt),
        cmocka_unit_test(test_gif_sizes),
        cmocka_unit_test(test_gif_truncated_and_corrupt),
        cmocka_unit_test(test_unsupported_and_bad_args),
        cmocka_unit_test(test_reader_errors),
        cmocka_unit_test(test_lying_reader),
        cmocka_unit_test(test_fuzz_garbage),
        cmocka_unit_test(test_fuzz_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
