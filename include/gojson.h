/* gojson: Go encoding/json compatibility for the API (syntax check and error texts,
 * decoding like json.Unmarshal into map[string]interface{}, Go's renderings of decoded
 * values, UTF-8 repair on output), over yajl trees. */
#ifndef DOWNLOADER_GOJSON_H
#define DOWNLOADER_GOJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

/* Go's %T of a JSON object decoded into interface{}. */
#define GOJSON_MAP_ANY "map[string]interface {}"

/* Growable NUL-terminated text; zero-initialise, free(p) when done. After a failed
 * allocation oom is set and further additions are dropped. */
typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} gojson_buf_t;

void gojson_buf_add(gojson_buf_t *b, const char *s, size_t n);
void gojson_buf_adds(gojson_buf_t *b, const char *s);
void gojson_buf_addc(gojson_buf_t *b, char c);
void gojson_buf_printf(gojson_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Go's checkValid: 0, or -1 with Go's SyntaxError text appended to err (e.g.
 * "invalid character 'm' looking for beginning of value"). */
int gojson_check(const char *data, size_t len, gojson_buf_t *err);

/* A NUL-terminated copy of checked JSON text for yajl with Go's string decoding applied
 * (invalid UTF-8 and lone surrogate escapes become U+FFFD). NULL with why set on a
 * number that overflows float64 ("json: cannot unmarshal number 1e400 into Go value of
 * type float64") or OOM. An escaped NUL (\u0000) decodes to GOJSON_NUL_MARK instead of
 * cutting the C string there. */
char *gojson_prepare(const char *s, size_t n, gojson_buf_t *why);

/* json.Unmarshal(body, &map[string]interface{}): *root is the object (free with
 * yajl_tree_free), or NULL for a `null` body. 0, or -1 with Go's error text in why. */
int gojson_load_object(const char *body, size_t len, yajl_val *root, gojson_buf_t *why);

/* What a decoded string holds where the JSON had an escaped NUL: the CESU-8 bytes of a
 * lone surrogate, which decoding never yields otherwise. Not valid UTF-8: a string that
 * has it must be rejected (gojson_has_nul), never stored. */
#define GOJSON_NUL_MARK "\xED\xB0\x80"
bool gojson_has_nul(const char *s);

/* obj[key]; the last value when the key repeats (Go map semantics). NULL if absent. */
yajl_val gojson_get(yajl_val obj, const char *key);
/* obj[key].(string): the string, or NULL when absent or not a string. */
const char *gojson_get_str(yajl_val obj, const char *key);
/* v.(float64): false when v is not a number. */
bool gojson_num(yajl_val v, double *d);
/* Go's int64(f) on amd64: truncation toward zero; NaN and out of range give INT64_MIN. */
int64_t gojson_trunc(double d);
/* Go's %T of a decoded value ("string", "float64", "bool", "<nil>", ...). */
const char *gojson_type_name(yajl_val v);

/* Go's %v of a float64: the shortest round-trip digits, in exponent form when the
 * decimal exponent is < -4 or >= 6 (5, 1.5, 123456, 1.234567e+06, 1e-05). */
void gojson_format_float(double d, char *out, size_t len);

/* Go's fmt %s of a decoded value: strings as is, %!s(float64=5), map[k:v ...] sorted by
 * key, [a b], %!s(<nil>); nesting deeper than 256 renders as "...". */
void gojson_render(gojson_buf_t *b, yajl_val v);

/* An object's keys sorted by name, a repeated key keeping its last value (idx is the
 * index into obj->u.object). refs needs room for every key; returns the distinct count. */
typedef struct {
    const char *key;
    size_t idx;
} gojson_keyref_t;
size_t gojson_unique_keys(yajl_val obj, gojson_keyref_t *refs);

/* A JSON string value as Go's encoder writes it: invalid UTF-8 becomes U+FFFD. NULL
 * is written as "". */
void gojson_gen_str(yajl_gen g, const char *s);

#endif
