/* Unit tests for uri: the Go url.ParseRequestURI check (§3.7) with Go's exact error
 * texts, the url.Parse + path.Join + String() round trip of §7.4, strconv.Quote and
 * utf8.DecodeRune. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "uri.h"

typedef struct {
    const char *in;
    const char *err; /* NULL: accepted */
} check_case_t;

static void run_checks(const check_case_t *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char err[512] = "";
        int rc = uri_check_request(cases[i].in, err, sizeof err);
        if (!cases[i].err) {
            if (rc != 0) print_error("unexpected rejection of \"%s\": %s\n", cases[i].in, err);
            assert_int_equal(rc, 0);
            continue;
        }
        assert_int_equal(rc, -1);
        assert_string_equal(err, cases[i].err);
    }
}

/* The cases §12 names plus the common accepted forms. */
static void test_reference_cases(void **state)
{
    (void)state;
    static const check_case_t cases[] = {
        {"", "parse \"\": empty url"},
        {"foo", "parse \"foo\": invalid URI for request"},
        {"fijfij", "parse \"fijfij\": invalid URI for request"},
        {"example", "parse \"example\": invalid URI for request"},
        {"http://localhost:8080", NULL},
        {"https://httpbin.org/image/png", NULL},
        {"https://example.org", NULL},
        {"http://localhost/foo?x=1&y=2", NULL},
        {"/x", NULL},
        {"/", NULL},
        {"//x/y", NULL},
        {"*", NULL},
        {"ftp://x", NULL},
        {"localhost:8080", NULL},
        {"mailto:x@y", NULL},
        {"http:", NULL},
        {"http://", NULL},
        {"http://user:pass@host:80/p", NULL},
        {"http://[::1]:80/", NULL},
        {"http://[fe80::1%25en0]:8080/", NULL},
        {"http://x:80:90/", NULL},
        {"http://x/a b", NULL},
        {"http://x/?q=a b", NULL},
        {"http://x/%41%2f", NULL},
        {"http://\xc3\xa9.com/", NULL},
    };
    run_checks(cases, sizeof cases / sizeof cases[0]);
}

static void test_scheme_and_form(void **state)
{
    (void)state;
    static const check_case_t cases[] = {
        {":foo", "parse \":foo\": missing protocol scheme"},
        {"1http://x", "parse \"1http://x\": invalid URI for request"},
        {"+a:b", "parse \"+a:b\": invalid URI for request"},
        {"a_b:c", "parse \"a_b:c\": invalid URI for request"},
        {"?x", "parse \"?x\": invalid URI for request"},
        {"x/y", "parse \"x/y\": invalid URI for request"},
        {"a1+-.b:rest", NULL},
    };
    run_checks(cases, sizeof cases / sizeof cases[0]);
}

static void test_control_chars(void **state)
{
    (void)state;
    static const check_case_t cases[] = {
        {"http://a\nb", "parse \"http://a\\nb\": net/url: invalid control character in URL"},
        {"http://x/\t", "parse \"http://x/\\t\": net/url: invalid control character in URL"},
        {"\x7f", "parse \"\\x7f\": net/url: invalid control character in URL"},
        {"foo\x01", "parse \"foo\\x01\": net/url: invalid control character in URL"},
        {"http://x/\r\n", "parse \"http://x/\\r\\n\": net/url: invalid control character in URL"},
    };
    run_checks(cases, sizeof cases / sizeof cases[0]);
}

static void test_host_and_port(void **state)
{
    (void)state;
    static const check_case_t cases[] = {
        {"http://a b", "parse \"http://a b\": invalid character \" \" in host name"},
        {"http://host#frag", "parse \"http://host#frag\": invalid character \"#\" in host name"},
        {"http://a{b}/", "parse \"http://a{b}/\": invalid character \"{\" in host name"},
        {"http://[::1", "parse \"http://[::1\": missing ']' in host"},
        {"http://[::1/x", "parse \"http://[::1/x\": missing ']' in host"},
        {"http://host:x", "parse \"http://host:x\": invalid port \":x\" after host"},
        {"http://host:8a/", "parse \"http://host:8a/\": invalid port \":8a\" after host"},
        {"http://[::1]x", "parse \"http://[::1]x\": invalid port \"x\" after host"},
        {"http://[::1]:8a", "parse \"http://[::1]:8a\": invalid port \":8a\" after host"},
        {"http://a\"b c", "parse \"http://a\\\"b c\": invalid character \" \" in host name"},
        {"http://%41.com/", "parse \"http://%41.com/\": invalid URL escape \"%41\""},
        {"http://%c3%a9.com/", NULL},
        {"http://h%2/", "parse \"http://h%2/\": invalid URL escape \"%2\""},
        {"http://h%", "parse \"http://h%\": invalid URL escape \"%\""},
        {"http://[fe80::1%25en%200]/", NULL},
        {"http://[fe80::1%25%2F]/",
         "parse \"http://[fe80::1%25%2F]/\": invalid URL escape \"%2F\""},
        {"http://[fe80::1%25a b]/",
         "parse \"http://[fe80::1%25a b]/\": invalid character \" \" in host name"},
    };
    run_checks(cases, sizeof cases / sizeof cases[0]);
}

static void test_userinfo_and_path(void **state)
{
    (void)state;
    static const check_case_t cases[] = {
        {"http://user:pa ss@host/", "parse \"http://user:pa ss@host/\": net/url: invalid userinfo"},
        {"http://us\xc3\xa9r@host/",
         "parse \"http://us\xc3\xa9r@host/\": net/url: invalid userinfo"},
        {"http://a%zz@host/", "parse \"http://a%zz@host/\": invalid URL escape \"%zz\""},
        {"http://a%3:b@host/", "parse \"http://a%3:b@host/\": invalid URL escape \"%3\""},
        {"http://a@b@host/", NULL},
        {"http://x/%zz", "parse \"http://x/%zz\": invalid URL escape \"%zz\""},
        {"http://x/%4", "parse \"http://x/%4\": invalid URL escape \"%4\""},
        {"/a%", "parse \"/a%\": invalid URL escape \"%\""},
        {"http://x/a#b%zz", "parse \"http://x/a#b%zz\": invalid URL escape \"%zz\""},
        {"http://x/?q=%zz", NULL},
    };
    run_checks(cases, sizeof cases / sizeof cases[0]);
}

/* Non-ASCII and invalid UTF-8 in the quoted input of the message. */
static void test_error_quoting(void **state)
{
    (void)state;
    static const check_case_t cases[] = {
        {"\xc3\xa9", "parse \"\xc3\xa9\": invalid URI for request"},
        {"\xff", "parse \"\\xff\": invalid URI for request"},
        {"a\\b", "parse \"a\\\\b\": invalid URI for request"},
        {"\xc2\xa0", "parse \"\\u00a0\": invalid URI for request"},
    };
    run_checks(cases, sizeof cases / sizeof cases[0]);
}

static void test_err_buffer_handling(void **state)
{
    (void)state;
    char small[8];
    assert_int_equal(uri_check_request("foo", small, sizeof small), -1);
    assert_string_equal(small, "parse \"");
    assert_int_equal(uri_check_request("foo", NULL, 0), -1);
    assert_int_equal(uri_check_request("/ok", NULL, 0), 0);
    assert_int_equal(uri_check_request(NULL, small, sizeof small), -1);
}

static void expect_quote(const char *in, size_t n, const char *want)
{
    char *q = uri_quote(in, n);
    assert_non_null(q);
    assert_string_equal(q, want);
    free(q);
}

static void test_quote(void **state)
{
    (void)state;
    expect_quote("", 0, "\"\"");
    expect_quote("abc", 3, "\"abc\"");
    expect_quote("a\"b\\c'", 6, "\"a\\\"b\\\\c'\"");
    expect_quote("\a\b\f\n\r\t\v", 7, "\"\\a\\b\\f\\n\\r\\t\\v\"");
    expect_quote("\x01\x1f\x7f", 3, "\"\\x01\\x1f\\x7f\"");
    expect_quote("\0x", 2, "\"\\x00x\"");
    expect_quote("\xc3\xa9\xe2\x98\xba", 5, "\"\xc3\xa9\xe2\x98\xba\"");
    expect_quote("\xf0\x9f\x98\x80", 4, "\"\xf0\x9f\x98\x80\"");
    expect_quote("\xc2\x80\xc2\xa0\xc2\xad", 6, "\"\\u0080\\u00a0\\u00ad\"");
    expect_quote("\xe2\x80\xa8\xef\xbb\xbf", 6, "\"\\u2028\\ufeff\"");
    expect_quote("\xf3\xa0\x80\x81", 4, "\"\\U000e0001\"");
    expect_quote("\xff\xc3", 2, "\"\\xff\\xc3\"");
    expect_quote("\xed\xa0\x80", 3, "\"\\xed\\xa0\\x80\"");
}

static void expect_rune(const char *s, size_t n, unsigned long r, size_t w)
{
    size_t got;
    assert_int_equal(uri_utf8_decode(s, n, &got), r);
    assert_int_equal(got, w);
}

static void test_utf8_decode(void **state)
{
    (void)state;
    expect_rune("", 0, 0xFFFD, 0);
    expect_rune("a", 1, 'a', 1);
    expect_rune("\xc3\xa9", 2, 0xE9, 2);
    expect_rune("\xe2\x98\xba", 3, 0x263A, 3);
    expect_rune("\xf0\x9f\x98\x80", 4, 0x1F600, 4);
    expect_rune("\xef\xbf\xbd", 3, 0xFFFD, 3);
    expect_rune("\xc3", 1, 0xFFFD, 1);             /* truncated */
    expect_rune("\xc0\x80", 2, 0xFFFD, 1);         /* overlong */
    expect_rune("\xe0\x80\x80", 3, 0xFFFD, 1);     /* overlong */
    expect_rune("\xed\xa0\x80", 3, 0xFFFD, 1);     /* surrogate */
    expect_rune("\xf4\x90\x80\x80", 4, 0xFFFD, 1); /* > U+10FFFF */
    expect_rune("\x80", 1, 0xFFFD, 1);
    expect_rune("\xe2\x28\xa1", 3, 0xFFFD, 1);
}

static void expect_join(const char *base, const char *elem, const char *want)
{
    char *got = uri_join_path(base, elem);
    if (!want) {
        assert_null(got);
        return;
    }
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

/* §7.4 examples and Go's cleaning/escaping rules. */
static void test_join_path(void **state)
{
    (void)state;
    const char *rel = "6QE/6QEywYsd0jrKAg";
    expect_join("http://localhost/foo", rel, "http://localhost/foo/6QE/6QEywYsd0jrKAg");
    expect_join("http://cdn/x/", rel, "http://cdn/x/6QE/6QEywYsd0jrKAg");
    expect_join("http://h", rel, "http://h/6QE/6QEywYsd0jrKAg");
    expect_join("http://h/", rel, "http://h/6QE/6QEywYsd0jrKAg");
    expect_join("http://h/a//b/../c?x=1#frag", rel, "http://h/a/c/6QE/6QEywYsd0jrKAg?x=1#frag");
    expect_join("http://h/a?", rel, "http://h/a/6QE/6QEywYsd0jrKAg?");
    expect_join("https://h:8443/a%20b", "x", "https://h:8443/a%20b/x");
    expect_join("http://h/a!b", "x", "http://h/a%21b/x");
    expect_join("http://h/a%2Fb", "x", "http://h/a/b/x");
    expect_join("HTTP://h/", "x", "http://h/x");
    expect_join("http://user:p%40ss@h/", "x", "http://user:p%40ss@h/x");
    expect_join("http://@h/", "x", "http://@h/x");
    expect_join("http://h/#a b", "x", "http://h/x#a%20b");
    expect_join("http://h/#a!b", "x", "http://h/x#a!b");
    expect_join("http://[fe80::1%25en0]:80/", "x", "http://[fe80::1%25en0]:80/x");
    expect_join("http://\xc3\xa9.com/", "x", "http://%C3%A9.com/x");
    expect_join("/files", "x", "/files/x");
    expect_join("a/../../b", "x", "../b/x");
    expect_join("/../x", "y", "/x/y");
    expect_join("http://h/a/b/../../..", "x", "http://h/x");
    expect_join("http://h/a/./b/.", "..", "http://h/a");
    expect_join("http://h", "", "http://h");
    expect_join("localhost:8080", "x", "localhost:8080");
    expect_join("http://a b/", "x", NULL);
    expect_join("http://[::1", "x", NULL);
    expect_join("http://h/%zz", "x", NULL);
    expect_join("http://h/#%zz", "x", NULL);
    expect_join(NULL, "x", NULL);
}

/* Lowercase, two digits per byte, NUL-terminated; nothing but the NUL for no bytes. */
static void test_hex(void **state)
{
    (void)state;
    const unsigned char in[] = {0x00, 0x0f, 0xa5, 0xff, 0x10};
    char out[2 * sizeof in + 1];
    memset(out, 'x', sizeof out);
    uri_hex(in, sizeof in, out);
    assert_string_equal(out, "000fa5ff10");
    uri_hex(in, 0, out);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_cases),
        cmocka_unit_test(test_scheme_and_form),
        cmocka_unit_test(test_control_chars),
        cmocka_unit_test(test_host_and_port),
        cmocka_unit_test(test_userinfo_and_path),
        cmocka_unit_test(test_error_quoting),
        cmocka_unit_test(test_err_buffer_handling),
        cmocka_unit_test(test_quote),
        cmocka_unit_test(test_utf8_decode),
        cmocka_unit_test(test_join_path),
        cmocka_unit_test(test_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
