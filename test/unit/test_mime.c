/* Unit tests for mime: libmagic MIME types of small PNG, JPEG, GIF, BMP, PDF, text,
 * binary and empty buffers, plus the fallbacks and output truncation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mime.h"

/* A complete 3x2 RGB PNG. */
static const uint8_t png_3x2[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44,
    0x52, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x02, 0x08, 0x02, 0x00, 0x00, 0x00, 0x12,
    0x16, 0xf1, 0x4d, 0x00, 0x00, 0x00, 0x10, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8,
    0xcf, 0xc0, 0x00, 0x41, 0x0c, 0x70, 0x16, 0x00, 0x41, 0xd2, 0x05, 0xfb, 0x87, 0xf0, 0xb9,
    0x48, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
};

/* The head of a baseline JPEG: SOI, APP0 (JFIF 1.01), SOF0 8x8 grey. */
static const uint8_t jpeg_head[] = {
    0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 'J',  'F',  'I',  'F',  0x00, 0x01,
    0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0xff, 0xc0, 0x00, 0x0b,
    0x08, 0x00, 0x08, 0x00, 0x08, 0x01, 0x01, 0x11, 0x00, 0xff, 0xd9,
};

/* A 1x1 GIF89a: header, 2-colour global table, image descriptor, LZW data, trailer. */
static const uint8_t gif_1x1[] = {
    'G',  'I',  'F',  '8',  '9',  'a',  0x01, 0x00, 0x01, 0x00, 0x80, 0x00,
    0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
};

/* A 1x1 24-bit BMP: file header, BITMAPINFOHEADER, one padded pixel row. */
static const uint8_t bmp_1x1[] = {
    'B',  'M',  0x3a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x36, 0x00, 0x00, 0x00, 0x28,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x18, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x13, 0x0b, 0x00, 0x00, 0x13, 0x0b, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x00,
};

static const char pdf_head[] =
    "%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n";

static int setup(void **state)
{
    char err[256] = "";
    mime_t *m = mime_open(err, sizeof err);
    if (!m) print_error("mime_open: %s\n", err);
    *state = m;
    return m ? 0 : -1;
}

static int teardown(void **state)
{
    mime_close(*state);
    return 0;
}

static void expect_type(mime_t *m, const void *data, size_t len, const char *want)
{
    char out[128];
    memset(out, 'x', sizeof out);
    assert_int_equal(mime_detect(m, data, len, out, sizeof out), 0);
    assert_string_equal(out, want);
}

static void test_images(void **state)
{
    expect_type(*state, png_3x2, sizeof png_3x2, "image/png");
    expect_type(*state, jpeg_head, sizeof jpeg_head, "image/jpeg");
    expect_type(*state, gif_1x1, sizeof gif_1x1, "image/gif");
    expect_type(*state, bmp_1x1, sizeof bmp_1x1, "image/bmp");
}

/* Only the prefix matters: a PNG cut after its signature and IHDR is still a PNG. */
static void test_image_prefixes(void **state)
{
    expect_type(*state, png_3x2, 33, "image/png");
    expect_type(*state, gif_1x1, 13, "image/gif");
}

static void test_documents_and_text(void **state)
{
    const char text[] = "hello, world\nthis is plain text\n";
    expect_type(*state, pdf_head, sizeof pdf_head - 1, "application/pdf");
    expect_type(*state, text, sizeof text - 1, "text/plain");
}

static void test_binary_is_octet_stream(void **state)
{
    uint8_t bin[256];
    for (size_t i = 0; i < sizeof bin; i++)
        bin[i] = (uint8_t)(i * 167 + 13);
    bin[0] = 0x00;
    bin[1] = 0x9a;
    expect_type(*state, bin, sizeof bin, "application/octet-stream");
}

static void test_empty(void **state)
{
    expect_type(*state, "", 0, "application/x-empty");
    expect_type(*state, NULL, 0, "application/x-empty");
    expect_type(NULL, NULL, 0, "application/x-empty");
}

static void test_output_handling(void **state)
{
    char out[8];
    assert_int_equal(mime_detect(*state, png_3x2, sizeof png_3x2, out, sizeof out), 0);
    assert_string_equal(out, "image/p"); /* truncated, still terminated */
    assert_int_equal(mime_detect(*state, png_3x2, sizeof png_3x2, NULL, 0), -1);
    assert_int_equal(mime_detect(*state, png_3x2, sizeof png_3x2, out, 0), -1);
}

/* Without a handle or data there is nothing to sniff: the octet-stream fallback. */
static void test_failure_fallback(void **state)
{
    char out[64];
    assert_int_equal(mime_detect(NULL, png_3x2, sizeof png_3x2, out, sizeof out), -1);
    assert_string_equal(out, "application/octet-stream");
    assert_int_equal(mime_detect(*state, NULL, 10, out, sizeof out), -1);
    assert_string_equal(out, "application/octet-stream");
}

/* Handles are independent; closing NULL is harmless; err may be NULL. */
static void test_open_close(void **state)
{
    (void)state;
    mime_t *a = mime_open(NULL, 0), *b = mime_open(NULL, 0);
    assert_non_null(a);
    assert_non_null(b);
    expect_type(a, gif_1x1, sizeof gif_1x1, "image/gif");
    mime_close(a);
    expect_type(b, png_3x2, sizeof png_3x2, "image/png");
    mime_close(b);
    mime_close(NULL);
}

/* A database that cannot be loaded (MAGIC names the default path): NULL and a message. */
static void test_open_fails_without_database(void **state)
{
    char err[256] = "";
    (void)state;
    assert_int_equal(setenv("MAGIC", "/nonexistent/downloader-test.mgc", 1), 0);
    mime_t *m = mime_open(err, sizeof err);
    unsetenv("MAGIC");
    assert_null(m);
    assert_non_null(strstr(err, "magic_load"));
    m = mime_open(NULL, 0); /* the default database again */
    assert_non_null(m);
    mime_close(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_images, setup, teardown),
        cmocka_unit_test_setup_teardown(test_image_prefixes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_documents_and_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_is_octet_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_handling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_fallback, setup, teardown),
        cmocka_unit_test(test_open_close),
        cmocka_unit_test(test_open_fails_without_database),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
