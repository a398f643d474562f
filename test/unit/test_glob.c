/* Unit tests for glob: Go 1.18 path.Match semantics (including ErrBadPattern for
 * malformed patterns, even when the match fails early), and the mime_type list rules
 * of §6.6 / §10.6 with their exact messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "glob.h"

typedef struct {
    const char *pattern, *name;
    int want; /* 1 match, 0 no match, -1 bad pattern */
} match_case_t;

static void run_matches(const match_case_t *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int got = glob_match(cases[i].pattern, strlen(cases[i].pattern), cases[i].name,
                             strlen(cases[i].name));
        if (got != cases[i].want)
            print_error("glob_match(\"%s\", \"%s\") = %d, want %d\n", cases[i].pattern,
                        cases[i].name, got, cases[i].want);
        assert_int_equal(got, cases[i].want);
    }
}

/* Go's path.Match test table (Go 1.18). */
static void test_go_match_table(void **state)
{
    (void)state;
    static const match_case_t cases[] = {
        {"abc", "abc", 1},
        {"*", "abc", 1},
        {"*c", "abc", 1},
        {"a*", "a", 1},
        {"a*", "abc", 1},
        {"a*", "ab/c", 0},
        {"a*/b", "abc/b", 1},
        {"a*/b", "a/c/b", 0},
        {"a*b*c*d*e*/f", "axbxcxdxe/f", 1},
        {"a*b*c*d*e*/f", "axbxcxdxexxx/f", 1},
        {"a*b*c*d*e*/f", "axbxcxdxe/xxx/f", 0},
        {"a*b*c*d*e*/f", "axbxcxdxexxx/fff", 0},
        {"a*b?c*x", "abxbbxdbxebxczzx", 1},
        {"a*b?c*x", "abxbbxdbxebxczzy", 0},
        {"ab[c]", "abc", 1},
        {"ab[b-d]", "abc", 1},
        {"ab[e-g]", "abc", 0},
        {"ab[^c]", "abc", 0},
        {"ab[^b-d]", "abc", 0},
        {"ab[^e-g]", "abc", 1},
        {"a\\*b", "a*b", 1},
        {"a\\*b", "ab", 0},
        {"a?b",
         "a\xe2\x98\xba"
         "b",
         1},
        {"a[^a]b",
         "a\xe2\x98\xba"
         "b",
         1},
        {"a???b",
         "a\xe2\x98\xba"
         "b",
         0},
        {"a[^a][^a][^a]b",
         "a\xe2\x98\xba"
         "b",
         0},
        {"[a-\xce\xb6]*", "\xce\xb1", 1},
        {"*[a-\xce\xb6]", "A", 0},
        {"a?b", "a/b", 0},
        {"a*b", "a/b", 0},
        {"[\\]a]", "]", 1},
        {"[\\-]", "-", 1},
        {"[x\\-]", "x", 1},
        {"[x\\-]", "-", 1},
        {"[x\\-]", "z", 0},
        {"[\\-x]", "x", 1},
        {"[\\-x]", "-", 1},
        {"[\\-x]", "a", 0},
        {"[]a]", "]", -1},
        {"[-]", "-", -1},
        {"[x-]", "x", -1},
        {"[x-]", "-", -1},
        {"[x-]", "z", -1},
        {"[-x]", "x", -1},
        {"[-x]", "-", -1},
        {"[-x]", "a", -1},
        {"\\", "a", -1},
        {"[a-b-c]", "a", -1},
        {"[", "a", -1},
        {"[^", "a", -1},
        {"[^bc", "a", -1},
        {"a[", "a", -1},
        {"a[", "ab", -1},
        {"a[", "x", -1},
        {"a/b[", "x", -1},
        {"*x", "xxx", 1},
    };
    run_matches(cases, sizeof cases / sizeof cases[0]);
}

/* MIME-shaped names: `*` never crosses '/', so `*` alone never matches a type. */
static void test_mime_shapes(void **state)
{
    (void)state;
    static const match_case_t cases[] = {
        {"image/*", "image/png", 1},
        {"image/*", "image/", 1},
        {"image/*", "text/plain", 0},
        {"*", "image/png", 0},
        {"*", "", 1},
        {"*/*", "image/png", 1},
        {"*/*", "application/vnd.ms-excel", 1},
        {"*/*", "a/b/c", 0},
        {"", "", 1},
        {"", "image/png", 0},
        {"image/jpeg", "image/jpeg", 1},
        {"image/jpeg", "Image/jpeg", 0},
        {"image/[jp]*", "image/png", 1},
        {"image/[!p]*", "image/png", 1},
        {"image/[!p]*", "image/x", 0},
        {"image/???", "image/png", 1},
        {"image/????", "image/png", 0},
        {"*/*", "*", 0},
        {"*[", "*", -1},
        {"x*\\", "*", -1},
    };
    run_matches(cases, sizeof cases / sizeof cases[0]);
}

static void test_embedded_lengths(void **state)
{
    (void)state;
    /* Only plen/nlen bytes count. */
    assert_int_equal(glob_match("image/*XYZ", 7, "image/pngJUNK", 9), 1);
    assert_int_equal(glob_match("a\0b", 3, "a\0b", 3), 1);
    assert_int_equal(glob_match("a?b", 3, "a\0b", 3), 1);
    /* An invalid UTF-8 byte in a class is a bad pattern; in the name it is U+FFFD. */
    assert_int_equal(glob_match("[\xff]", 3, "a", 1), -1);
    assert_int_equal(glob_match("[^a]", 4, "\xff", 1), 1);
    assert_int_equal(glob_match("?", 1, "\xff", 1), 1);
}

static void expect_list_valid(const char *list)
{
    char err[128] = "";
    if (!glob_mime_list_valid(list, err, sizeof err)) print_error("%s: %s\n", list, err);
    assert_true(glob_mime_list_valid(list, err, sizeof err));
}

static void expect_list_invalid(const char *list, const char *msg)
{
    char err[128] = "";
    assert_false(glob_mime_list_valid(list, err, sizeof err));
    assert_string_equal(err, msg);
}

/* TestPatternValidation and §6.6. */
static void test_list_validation(void **state)
{
    (void)state;
    expect_list_valid("");
    expect_list_valid("image/*");
    expect_list_valid("!application/xml");
    expect_list_valid("!image/vnd.adobe.photoshop,image/*");
    expect_list_valid("image/jpeg,image/png");
    expect_list_valid(" image/png , !image/gif ");
    expect_list_valid("image/*,");
    expect_list_valid("*/*");
    expect_list_valid("[\\]a]");
    expect_list_invalid("[]a]", "Invalid MimeType Pattern, \"[]a]\"");
    expect_list_invalid("\\", "Invalid MimeType Pattern, \"\\\\\"");
    expect_list_invalid("!\\", "Invalid MimeType Pattern, \"!\\\\\"");
    expect_list_invalid("image/*, ![]a] ", "Invalid MimeType Pattern, \"![]a]\"");
    expect_list_invalid("image/png,[", "Invalid MimeType Pattern, \"[\"");
    expect_list_invalid("image/[", "Invalid MimeType Pattern, \"image/[\"");
    expect_list_invalid("a[,b[", "Invalid MimeType Pattern, \"a[\"");
    expect_list_valid("[\x01]");
    expect_list_invalid("\t[\x01", "Invalid MimeType Pattern, \"[\\x01\"");
    expect_list_invalid("x[\"-]", "Invalid MimeType Pattern, \"x[\\\"-]\"");
}

static void test_list_validation_err_buffer(void **state)
{
    (void)state;
    char err[10];
    assert_false(glob_mime_list_valid("[]a]", err, sizeof err));
    assert_string_equal(err, "Invalid M");
    assert_false(glob_mime_list_valid("[]a]", NULL, 0));
    assert_true(glob_mime_list_valid(NULL, NULL, 0));
}

static void expect_check_ok(const char *list, const char *type)
{
    char err[128] = "";
    int rc = glob_mime_check(list, type, err, sizeof err);
    if (rc) print_error("%s vs %s: %s\n", list, type, err);
    assert_int_equal(rc, 0);
}

static void expect_check_fail(const char *list, const char *type, const char *msg)
{
    char err[128] = "";
    assert_int_equal(glob_mime_check(list, type, err, sizeof err), -1);
    assert_string_equal(err, msg);
}

/* TestWhitelist, TestBlacklistOnly, TestCheck, W30 and the message formats. */
static void test_list_check(void **state)
{
    (void)state;
    expect_check_ok("image/jpeg", "image/jpeg");
    expect_check_ok("image/*", "image/png");
    expect_check_ok("*/*", "application/pdf");
    expect_check_ok("!image/vnd.adobe.photoshop,!image/png", "image/jpeg");
    expect_check_ok("!image/vnd.adobe.photoshop,image/jpeg", "image/jpeg");
    expect_check_ok(" image/jpeg ", "image/jpeg");
    expect_check_ok("\xc2\xa0image/jpeg\xe3\x80\x80", "image/jpeg");
    expect_check_ok("![]a]", "]");
    expect_check_fail("*", "image/png", "Expected mime-type to be (*), found (image/png)");
    expect_check_fail("image/jpeg", "image/png",
                      "Expected mime-type to be (image/jpeg), found (image/png)");
    expect_check_fail("image/jpeg,image/png", "image/png",
                      "Expected mime-type to be (image/jpeg), found (image/png)");
    expect_check_fail("image/jpeg,image/png", "image/jpeg",
                      "Expected mime-type to be (image/png), found (image/jpeg)");
    expect_check_fail("!image/png", "image/png",
                      "Expected mime-type not to be (image/png) found - (image/png)");
    expect_check_fail(" !image/* ,image/png", "image/png",
                      "Expected mime-type not to be (image/*) found - (image/png)");
    expect_check_fail("image/*,", "image/png", "Expected mime-type to be (), found (image/png)");
    expect_check_fail("image/jpeg", "application/x-empty",
                      "Expected mime-type to be (image/jpeg), found (application/x-empty)");
    expect_check_fail("[]a]", "]", "Expected mime-type to be ([]a]), found (])");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_go_match_table),
        cmocka_unit_test(test_mime_shapes),
        cmocka_unit_test(test_embedded_lengths),
        cmocka_unit_test(test_list_validation),
        cmocka_unit_test(test_list_validation_err_buffer),
        cmocka_unit_test(test_list_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
