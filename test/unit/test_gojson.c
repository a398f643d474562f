/* Unit tests of gojson: Go's encoding/json syntax errors (checkValid texts), decoding
 * into map[string]interface{} (type errors, float64 overflow, depth, UTF-8 repair and
 * surrogates), reading decoded values (last key wins, %T, int truncation), Go's %s of
 * decoded values with float64 %v, and string output with UTF-8 repair. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gojson.h"

#define GO_MAP GOJSON_MAP_ANY

typedef struct {
    const char *body;
    const char *reason;
} err_case_t;

static void test_syntax_errors(void **state)
{
    (void)state;
    static const err_case_t cases[] = {
        {"", "unexpected end of JSON input"},
        {"  \n", "unexpected end of JSON input"},
        {"meh", "invalid character 'm' looking for beginning of value"},
        {"{\"foo\"}", "invalid character '}' after object key"},
        {"{", "unexpected end of JSON input"},
        {"{\"url\"", "unexpected end of JSON input"},
        {"{\"url\":", "unexpected end of JSON input"},
        {"\"abc", "unexpected end of JSON input"},
        {"{\"a\":1,}", "invalid character '}' looking for beginning of object key string"},
        {"[1,]", "invalid character ']' looking for beginning of value"},
        {"{\"a\" 1}", "invalid character '1' after object key"},
        {"{\"a\":1 \"b\":2}", "invalid character '\"' after object key:value pair"},
        {"[1 2]", "invalid character '2' after array element"},
        {"{} x", "invalid character 'x' after top-level value"},
        {"{}{}", "invalid character '{' after top-level value"},
        {"tru", "invalid character ' ' in literal true (expecting 'e')"},
        {"nul", "invalid character ' ' in literal null (expecting 'l')"},
        {"fals", "invalid character ' ' in literal false (expecting 'e')"},
        {"nx", "invalid character 'x' in literal null (expecting 'u')"},
        {"{\"a\":tx}", "invalid character 'x' in literal true (expecting 'r')"},
        {"{\"a\":fx}", "invalid character 'x' in literal false (expecting 'a')"},
        {"{\"a\":01}", "invalid character '1' after object key:value pair"},
        {"{\"a\":-}", "invalid character '}' in numeric literal"},
        {"-", "invalid character ' ' in numeric literal"},
        {"{\"a\":1.}", "invalid character '}' after decimal point in numeric literal"},
        {"{\"a\":1e}", "invalid character '}' in exponent of numeric literal"},
        {"{\"a\":1e+}", "invalid character '}' in exponent of numeric literal"},
        {"{\"a\":\"\x01\"}", "invalid character '\\x01' in string literal"},
        {"{\"a\":\"\t\"}", "invalid character '\\t' in string literal"},
        {"{\"a\":\"\\q\"}", "invalid character 'q' in string escape code"},
        {"{\"a\":\"\\u12g4\"}", "invalid character 'g' in \\u hexadecimal character escape"},
        {"{'a':1}", "invalid character '\\'' looking for beginning of object key string"},
        {"{\"a\":'x'}", "invalid character '\\'' looking for beginning of value"},
        {"\xff", "invalid character '\xc3\xbf' looking for beginning of value"},
        {"\x80", "invalid character '\\u0080' looking for beginning of value"},
        {"\\", "invalid character '\\\\' looking for beginning of value"},
        {"/*c*/{}", "invalid character '/' looking for beginning of value"},
        {"{\"a\":1}\n\x7f", "invalid character '\\x7f' after top-level value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gojson_buf_t err = {0};
        assert_int_equal(gojson_check(cases[i].body, strlen(cases[i].body), &err), -1);
        if (!err.p || strcmp(err.p, cases[i].reason) != 0)
            fail_msg("%s: got %s, want %s", cases[i].body, err.p, cases[i].reason);
        free(err.p);
    }
    gojson_buf_t err = {0};
    assert_int_equal(gojson_check("{\0}", 3, &err), -1); /* raw bytes, not up to a NUL */
    assert_string_equal(err.p,
                        "invalid character '\\x00' looking for beginning of object key string");
    free(err.p);
    err = (gojson_buf_t){0};
    const char *ok = " {\"a\":[1,-2.5e3,true,null,\"x\"],\"b\":{}} ";
    assert_int_equal(gojson_check(ok, strlen(ok), &err), 0);
}

/* gojson_load_object: 0 with the object (or NULL for null), else Go's error text. */
static int load(const char *body, yajl_val *root, char *why, size_t len)
{
    gojson_buf_t b = {0};
    int rc = gojson_load_object(body, strlen(body), root, &b);
    snprintf(why, len, "%s", b.p ? b.p : "");
    free(b.p);
    return rc;
}

static void test_load_errors(void **state)
{
    (void)state;
    static const err_case_t cases[] = {
        {"meh", "invalid character 'm' looking for beginning of value"},
        {"[1,2]", "json: cannot unmarshal array into Go value of type " GO_MAP},
        {" []", "json: cannot unmarshal array into Go value of type " GO_MAP},
        {"\"x\"", "json: cannot unmarshal string into Go value of type " GO_MAP},
        {"12", "json: cannot unmarshal number into Go value of type " GO_MAP},
        {"-1e999", "json: cannot unmarshal number into Go value of type " GO_MAP},
        {"true", "json: cannot unmarshal bool into Go value of type " GO_MAP},
        {"{\"a\":1e400}", "json: cannot unmarshal number 1e400 into Go value of type float64"},
        {"{\"u\":5,\"x\":[{\"y\":-1E+999}]}",
         "json: cannot unmarshal number -1E+999 into Go value of type float64"},
        {"{\"x\":1e309,\"y\":2e309}",
         "json: cannot unmarshal number 1e309 into Go value of type float64"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char why[512];
        yajl_val root = NULL;
        assert_int_equal(load(cases[i].body, &root, why, sizeof why), -1);
        assert_null(root);
        assert_string_equal(why, cases[i].reason);
    }
    char why[64];
    yajl_val root = (yajl_val)1;
    assert_int_equal(load(" null\n", &root, why, sizeof why), 0);
    assert_null(root);
}

static char *repeat(const char *a, size_t na, const char *b, size_t nb)
{
    char *s = malloc(na + nb + 1);
    assert_non_null(s);
    memset(s, a[0], na);
    memset(s + na, b[0], nb);
    s[na + nb] = '\0';
    return s;
}

static void test_depth(void **state)
{
    (void)state;
    char *deep = repeat("[", 10001, "]", 10001);
    char why[256];
    yajl_val root = NULL;
    assert_int_equal(load(deep, &root, why, sizeof why), -1);
    assert_string_equal(why, "invalid character '[' exceeded max depth");
    free(deep);
    deep = repeat("[", 10000, "]", 10000);
    assert_int_equal(load(deep, &root, why, sizeof why), -1);
    assert_string_equal(why, "json: cannot unmarshal array into Go value of type " GO_MAP);
    free(deep);
    /* 1 object + 9999 arrays = depth 10000: accepted */
    char *arr = repeat("[", 9999, "]", 9999);
    size_t n = strlen(arr) + 256;
    char *body = malloc(n);
    assert_non_null(body);
    snprintf(body, n, "{\"x\":%s}", arr);
    assert_int_equal(load(body, &root, why, sizeof why), 0);
    assert_non_null(gojson_get(root, "x"));
    yajl_tree_free(root);
    free(body);
    free(arr);
}

/* Go's string decoding: invalid UTF-8 and lone surrogates become U+FFFD. */
static void test_string_decoding(void **state)
{
    (void)state;
    static const struct {
        const char *json, *want;
    } cases[] = {
        {"\"caf\xc3\xa9\"", "caf\xc3\xa9"},
        {"\"caf\\u00e9\"", "caf\xc3\xa9"},
        {"\"a\xff"
         "b\"",
         "a\xef\xbf\xbd"
         "b"},
        {"\"\xed\xa0\x80\"", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80"},
        {"\"\\ud800\"", "\xef\xbf\xbd"},
        {"\"\\udc00x\"", "\xef\xbf\xbdx"},
        {"\"\\ud800\\u0041\"", "\xef\xbf\xbd"
                               "A"},
        {"\"\\ud800\\ud800\\udc00\"", "\xef\xbf\xbd\xf0\x90\x80\x80"},
        {"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\/\b\f\n\r\t"},
        {"\"\x7f\"", "\x7f"},
        /* an escaped NUL leaves a mark instead of cutting the string */
        {"\"a\\u0000b\"", "a" GOJSON_NUL_MARK "b"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[512], why[256];
        yajl_val root;
        snprintf(body, sizeof body, "{\"s\":%s}", cases[i].json);
        assert_int_equal(load(body, &root, why, sizeof why), 0);
        assert_string_equal(gojson_get_str(root, "s"), cases[i].want);
        assert_int_equal(gojson_has_nul(gojson_get_str(root, "s")),
                         i == sizeof cases / sizeof cases[0] - 1);
        yajl_tree_free(root);
    }
}

/* Reading decoded values as Go's interface{}: last key wins, %T, int truncation. */
static void test_read(void **state)
{
    (void)state;
    char why[256];
    yajl_val root;
    assert_int_equal(load("{\"a\":1,\"b\":\"x\",\"a\":\"y\",\"n\":null,\"t\":true,"
                          "\"o\":{},\"l\":[],\"f\":-2.7}",
                          &root, why, sizeof why),
                     0);
    assert_string_equal(gojson_get_str(root, "a"), "y");
    assert_null(gojson_get_str(root, "t"));
    assert_null(gojson_get(root, "missing"));
    assert_null(gojson_get(NULL, "a"));
    assert_string_equal(gojson_type_name(gojson_get(root, "b")), "string");
    assert_string_equal(gojson_type_name(gojson_get(root, "f")), "float64");
    assert_string_equal(gojson_type_name(gojson_get(root, "t")), "bool");
    assert_string_equal(gojson_type_name(gojson_get(root, "n")), "<nil>");
    assert_string_equal(gojson_type_name(NULL), "<nil>");
    assert_string_equal(gojson_type_name(gojson_get(root, "o")), GO_MAP);
    assert_string_equal(gojson_type_name(gojson_get(root, "l")), "[]interface {}");
    double d = 0;
    assert_true(gojson_num(gojson_get(root, "f"), &d));
    assert_true(d == -2.7);
    assert_false(gojson_num(gojson_get(root, "b"), &d));
    assert_int_equal(gojson_trunc(d), -2);
    assert_int_equal(gojson_trunc(0.99), 0);
    assert_true(gojson_trunc(9223372036854775808.0) == INT64_MIN);
    assert_true(gojson_trunc(-1e300) == INT64_MIN);
    assert_true(gojson_trunc(NAN) == INT64_MIN);
    yajl_tree_free(root);
}

static void test_format_float(void **state)
{
    (void)state;
    static const struct {
        double d;
        const char *want;
    } cases[] = {
        {5, "5"},
        {1.5e6, "1.5e+06"},
        {0.00001, "1e-05"},
        {0.0001, "0.0001"},
        {0.1, "0.1"},
        {100, "100"},
        {123456, "123456"},
        {1234567, "1.234567e+06"},
        {-2.5, "-2.5"},
        {-0.0, "-0"},
        {0, "0"},
        {1e21, "1e+21"},
        {1e-300, "1e-300"},
        {12345678901234567890.0, "1.2345678901234567e+19"},
        {0.1 + 0.2, "0.30000000000000004"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[64];
        gojson_format_float(cases[i].d, out, sizeof out);
        assert_string_equal(out, cases[i].want);
    }
}

/* Go's fmt %s of decoded values, as the request_headers error text shows them. */
static void test_render(void **state)
{
    (void)state;
    static const err_case_t cases[] = {
        {"5", "%!s(float64=5)"},
        {"true", "%!s(bool=true)"},
        {"false", "%!s(bool=false)"},
        {"null", "%!s(<nil>)"},
        {"\"text\"", "text"},
        {"{\"b\":1,\"a\":\"x\",\"b\":2}", "map[a:x b:%!s(float64=2)]"},
        {"{}", "map[]"},
        {"[1,\"x\",null,true,{}]", "[%!s(float64=1) x <nil> %!s(bool=true) map[]]"},
        {"{\"k\":[{\"z\":null}]}", "map[k:[map[z:<nil>]]]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[256], why[256];
        yajl_val root;
        snprintf(body, sizeof body, "{\"v\":%s}", cases[i].body);
        assert_int_equal(load(body, &root, why, sizeof why), 0);
        gojson_buf_t b = {0};
        gojson_render(&b, gojson_get(root, "v"));
        assert_string_equal(b.p, cases[i].reason);
        free(b.p);
        yajl_tree_free(root);
    }
    /* nesting past 256 levels renders as "..." */
    char *deep = repeat("[", 300, "]", 300);
    size_t n = strlen(deep) + 16;
    char *body = malloc(n), why[64];
    assert_non_null(body);
    snprintf(body, n, "{\"v\":%s}", deep);
    yajl_val root;
    assert_int_equal(load(body, &root, why, sizeof why), 0);
    gojson_buf_t b = {0};
    gojson_render(&b, gojson_get(root, "v"));
    assert_non_null(strstr(b.p, "[...]"));
    size_t open = 0;
    for (const char *p = b.p; *p; p++)
        open += *p == '[';
    assert_int_equal(open, 257); /* depths 0..256, then "..." */
    free(b.p);
    yajl_tree_free(root);
    free(body);
    free(deep);
}

/* Output: invalid UTF-8 becomes U+FFFD as Go's encoder writes it; NULL is "". */
static void test_gen_str(void **state)
{
    (void)state;
    yajl_gen g = yajl_gen_alloc(NULL);
    yajl_gen_array_open(g);
    gojson_gen_str(g, "ok\xc3\xa9");
    gojson_gen_str(g, "a\xff"
                      "b");
    gojson_gen_str(g, NULL);
    yajl_gen_array_close(g);
    const unsigned char *out;
    size_t len;
    yajl_gen_get_buf(g, &out, &len);
    assert_string_equal((const char *)out, "[\"ok\xc3\xa9\",\"a\xef\xbf\xbd"
                                           "b\",\"\"]");
    yajl_gen_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_syntax_errors), cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_depth),         cmocka_unit_test(test_string_decoding),
        cmocka_unit_test(test_read),          cmocka_unit_test(test_format_float),
        cmocka_unit_test(test_render),        cmocka_unit_test(test_gen_str),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
