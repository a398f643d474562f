/* job: the job model of §3.1/§4.3. Owns request validation for POST /download (Go's
 * encoding/json syntax check and error texts, then the Job rules of §3.1.1 and the
 * Aggregation rules of §3.1.2, first failure wins), job ids (§3.6), the debug rendering
 * used in API error texts, state names, the request-headers JSON stored in Redis, and
 * the callback payload with its download_url (§7.3, §7.4). The api, storage, processor
 * and notifier build on these; uri and glob supply the URL and mime_type checks. No I/O
 * apart from getrandom(2). */
#include "job.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "glob.h"
#include "uri.h"

#define JSON_MAX_DEPTH 10000 /* Go's maxNestingDepth */
#define RENDER_MAX_DEPTH 256 /* deeper values render as "..." in error texts */
#define GO_MAP_ANY "map[string]interface {}"
#define UTF8_REPLACEMENT "\xEF\xBF\xBD"

/* ---- growable text ---- */

typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} buf_t;

static bool buf_reserve(buf_t *b, size_t extra)
{
    if (b->oom) return false;
    if (b->len + extra + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

static void buf_add(buf_t *b, const char *s, size_t n)
{
    if (!buf_reserve(b, n)) return;
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_adds(buf_t *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

static void buf_addc(buf_t *b, char c)
{
    buf_add(b, &c, 1);
}

static void buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void buf_printf(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !buf_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static void buf_add_quoted(buf_t *b, const char *s, size_t n)
{
    char *q = uri_quote(s, n);
    if (!q)
        b->oom = true;
    else
        buf_adds(b, q);
    free(q);
}

static const char *str_or_empty(const char *s)
{
    return s ? s : "";
}

/* ---- Go encoding/json syntax check (checkValid) with Go's error texts ---- */

enum { PS_OBJ_KEY, PS_OBJ_VALUE, PS_ARR_VALUE };

typedef enum {
    ST_BEGIN_VALUE_OR_EMPTY,
    ST_BEGIN_VALUE,
    ST_BEGIN_STRING_OR_EMPTY,
    ST_BEGIN_STRING,
    ST_END_VALUE,
    ST_END_TOP,
    ST_IN_STRING,
    ST_IN_STRING_ESC,
    ST_ESC_U, /* the four \u digit states must stay in this order */
    ST_ESC_U1,
    ST_ESC_U12,
    ST_ESC_U123,
    ST_NEG, /* number states from here to ST_E0 */
    ST_1,
    ST_0,
    ST_DOT,
    ST_DOT0,
    ST_E,
    ST_ESIGN,
    ST_E0,
    ST_T, /* literal states from here on */
    ST_TR,
    ST_TRU,
    ST_F,
    ST_FA,
    ST_FAL,
    ST_FALS,
    ST_N,
    ST_NU,
    ST_NUL,
    ST_ERROR
} scan_state_t;

typedef struct {
    scan_state_t step;
    unsigned char *stack;
    size_t depth, cap;
    bool end_top;
    buf_t *err;
} scanner_t;

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_hex(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Go's quoteChar: the byte as a rune (Latin-1), single-quoted. */
static void add_quote_char(buf_t *b, unsigned char c)
{
    char utf8[2] = {(char)c, 0};
    size_t n = 1;
    if (c == '\'' || c == '"') {
        buf_adds(b, c == '\'' ? "'\\''" : "'\"'");
        return;
    }
    if (c >= 0x80) {
        utf8[0] = (char)(0xC0 | (c >> 6));
        utf8[1] = (char)(0x80 | (c & 0x3F));
        n = 2;
    }
    char *q = uri_quote(utf8, n);
    if (!q) {
        b->oom = true;
        return;
    }
    buf_addc(b, '\'');
    buf_add(b, q + 1, strlen(q) - 2);
    buf_addc(b, '\'');
    free(q);
}

static int scan_error(scanner_t *s, unsigned char c, const char *context)
{
    buf_adds(s->err, "invalid character ");
    add_quote_char(s->err, c);
    buf_addc(s->err, ' ');
    buf_adds(s->err, context);
    s->step = ST_ERROR;
    return -1;
}

static int scan_push(scanner_t *s, unsigned char c, unsigned char ps)
{
    if (s->depth == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 32;
        unsigned char *p = realloc(s->stack, cap);
        if (!p) {
            buf_adds(s->err, "out of memory");
            return -1;
        }
        s->stack = p;
        s->cap = cap;
    }
    s->stack[s->depth++] = ps;
    return s->depth > JSON_MAX_DEPTH ? scan_error(s, c, "exceeded max depth") : 0;
}

static void scan_pop(scanner_t *s)
{
    s->depth--;
    s->end_top = s->depth == 0;
    s->step = s->end_top ? ST_END_TOP : ST_END_VALUE;
}

/* Each step_* returns 0 (byte consumed), 1 (state changed: feed the byte again), -1. */
static int step_begin_value(scanner_t *s, unsigned char c)
{
    static const char starts[] = "\"-0tfn";
    static const scan_state_t next[] = {ST_IN_STRING, ST_NEG, ST_0, ST_T, ST_F, ST_N};
    const char *hit = c ? strchr(starts, c) : NULL;
    if (is_space(c)) return 0;
    if (c == '{' || c == '[') {
        s->step = c == '{' ? ST_BEGIN_STRING_OR_EMPTY : ST_BEGIN_VALUE_OR_EMPTY;
        return scan_push(s, c, c == '{' ? PS_OBJ_KEY : PS_ARR_VALUE);
    }
    if (hit)
        s->step = next[hit - starts];
    else if (c >= '1' && c <= '9')
        s->step = ST_1;
    else
        return scan_error(s, c, "looking for beginning of value");
    return 0;
}

static int step_end_value(scanner_t *s, unsigned char c)
{
    if (s->depth == 0) {
        s->step = ST_END_TOP;
        s->end_top = true;
        return 1;
    }
    if (is_space(c)) return 0;
    unsigned char *top = &s->stack[s->depth - 1];
    if (*top == PS_OBJ_KEY) {
        if (c != ':') return scan_error(s, c, "after object key");
        *top = PS_OBJ_VALUE;
        s->step = ST_BEGIN_VALUE;
        return 0;
    }
    if (c == ',') {
        if (*top == PS_OBJ_VALUE) *top = PS_OBJ_KEY;
        s->step = *top == PS_OBJ_KEY ? ST_BEGIN_STRING : ST_BEGIN_VALUE;
        return 0;
    }
    if (c == (*top == PS_OBJ_VALUE ? '}' : ']')) {
        scan_pop(s);
        return 0;
    }
    return scan_error(s, c,
                      *top == PS_OBJ_VALUE ? "after object key:value pair" : "after array element");
}

static int step_string(scanner_t *s, unsigned char c)
{
    if (s->step == ST_IN_STRING) {
        if (c == '"')
            s->step = ST_END_VALUE;
        else if (c == '\\')
            s->step = ST_IN_STRING_ESC;
        else if (c < 0x20)
            return scan_error(s, c, "in string literal");
        return 0;
    }
    if (s->step == ST_IN_STRING_ESC) {
        if (c == 'u')
            s->step = ST_ESC_U;
        else if (c && strchr("bfnrt\\/\"", c))
            s->step = ST_IN_STRING;
        else
            return scan_error(s, c, "in string escape code");
        return 0;
    }
    if (!is_hex(c)) return scan_error(s, c, "in \\u hexadecimal character escape");
    s->step = s->step == ST_ESC_U123 ? ST_IN_STRING : s->step + 1;
    return 0;
}

/* Consumes the byte and moves to state next. */
static int take(scanner_t *s, scan_state_t next)
{
    s->step = next;
    return 0;
}

/* Leaves the byte to state next (Go's "return stateX(s, c)"). */
static int pass(scanner_t *s, scan_state_t next)
{
    s->step = next;
    return 1;
}

static int step_number(scanner_t *s, unsigned char c)
{
    bool e = c == 'e' || c == 'E', digit = is_digit(c);
    switch (s->step) {
    case ST_NEG:
        if (!digit) return scan_error(s, c, "in numeric literal");
        return take(s, c == '0' ? ST_0 : ST_1);
    case ST_1:
        return digit ? 0 : pass(s, ST_0);
    case ST_0:
        if (e || c == '.') return take(s, e ? ST_E : ST_DOT);
        return pass(s, ST_END_VALUE);
    case ST_DOT:
        if (!digit) return scan_error(s, c, "after decimal point in numeric literal");
        return take(s, ST_DOT0);
    case ST_DOT0:
        if (e) return take(s, ST_E);
        return digit ? 0 : pass(s, ST_END_VALUE);
    case ST_E:
        return c == '+' || c == '-' ? take(s, ST_ESIGN) : pass(s, ST_ESIGN);
    case ST_ESIGN:
        if (!digit) return scan_error(s, c, "in exponent of numeric literal");
        return take(s, ST_E0);
    default:
        return digit ? 0 : pass(s, ST_END_VALUE);
    }
}

static int step_literal(scanner_t *s, unsigned char c)
{
    static const struct {
        scan_state_t state;
        char want;
        scan_state_t next;
        const char *context;
    } lits[] = {
        {ST_T, 'r', ST_TR, "in literal true (expecting 'r')"},
        {ST_TR, 'u', ST_TRU, "in literal true (expecting 'u')"},
        {ST_TRU, 'e', ST_END_VALUE, "in literal true (expecting 'e')"},
        {ST_F, 'a', ST_FA, "in literal false (expecting 'a')"},
        {ST_FA, 'l', ST_FAL, "in literal false (expecting 'l')"},
        {ST_FAL, 's', ST_FALS, "in literal false (expecting 's')"},
        {ST_FALS, 'e', ST_END_VALUE, "in literal false (expecting 'e')"},
        {ST_N, 'u', ST_NU, "in literal null (expecting 'u')"},
        {ST_NU, 'l', ST_NUL, "in literal null (expecting 'l')"},
        {ST_NUL, 'l', ST_END_VALUE, "in literal null (expecting 'l')"},
    };
    size_t i = 0;
    while (lits[i].state != s->step)
        i++;
    if (c != lits[i].want) return scan_error(s, c, lits[i].context);
    s->step = lits[i].next;
    return 0;
}

static int step_other(scanner_t *s, unsigned char c)
{
    if (s->step >= ST_T) return step_literal(s, c);
    if (s->step >= ST_NEG) return step_number(s, c);
    return step_string(s, c);
}

/* The states right after '[' and '{', which may also see the closing bracket. */
static int step_begin_or_empty(scanner_t *s, unsigned char c)
{
    bool array = s->step == ST_BEGIN_VALUE_OR_EMPTY;
    if (is_space(c)) return 0;
    if (c == (array ? ']' : '}')) {
        s->stack[s->depth - 1] = array ? PS_ARR_VALUE : PS_OBJ_VALUE;
        s->step = ST_END_VALUE;
    } else {
        s->step = array ? ST_BEGIN_VALUE : ST_BEGIN_STRING;
    }
    return 1;
}

static int step_begin_string(scanner_t *s, unsigned char c)
{
    if (is_space(c)) return 0;
    if (c != '"') return scan_error(s, c, "looking for beginning of object key string");
    s->step = ST_IN_STRING;
    return 0;
}

/* Feeds one byte to the scanner: 0, or -1 with the error text set. */
static int scan_byte(scanner_t *s, unsigned char c)
{
    int rc = 1;
    while (rc == 1) {
        switch (s->step) {
        case ST_BEGIN_VALUE_OR_EMPTY:
        case ST_BEGIN_STRING_OR_EMPTY:
            rc = step_begin_or_empty(s, c);
            break;
        case ST_BEGIN_VALUE:
            rc = step_begin_value(s, c);
            break;
        case ST_BEGIN_STRING:
            rc = step_begin_string(s, c);
            break;
        case ST_END_VALUE:
            rc = step_end_value(s, c);
            break;
        case ST_END_TOP:
            rc = is_space(c) ? 0 : scan_error(s, c, "after top-level value");
            break;
        case ST_ERROR:
            rc = -1;
            break;
        default:
            rc = step_other(s, c);
        }
    }
    return rc;
}

/* Go's checkValid: 0, or -1 with Go's SyntaxError text in err. */
static int json_check(const char *data, size_t len, buf_t *err)
{
    scanner_t s = {.step = ST_BEGIN_VALUE, .err = err};
    int rc = 0;
    for (size_t i = 0; i < len && rc == 0; i++)
        rc = scan_byte(&s, (unsigned char)data[i]);
    if (rc == 0 && !s.end_top) rc = scan_byte(&s, ' ');
    if (rc == 0 && !s.end_top) {
        buf_adds(err, "unexpected end of JSON input");
        rc = -1;
    }
    free(s.stack);
    return rc;
}

/* ---- from checked JSON text to a yajl tree, the way Go decodes it ---- */

static unsigned long hex4(const char *s)
{
    unsigned long v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = (unsigned char)s[i];
        v = v << 4 | (unsigned long)(is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return v;
}

/* Copies one escape of a string; lone UTF-16 surrogates become U+FFFD like Go's
 * unquote (yajl would mangle them). Returns the input bytes consumed. */
static size_t copy_escape(const char *s, size_t n, buf_t *out)
{
    if (s[1] != 'u') {
        buf_add(out, s, 2);
        return 2;
    }
    unsigned long cp = hex4(s + 2);
    if (cp >= 0xD800 && cp <= 0xDBFF && n >= 12 && s[6] == '\\' && s[7] == 'u') {
        unsigned long lo = hex4(s + 8);
        if (lo >= 0xDC00 && lo <= 0xDFFF) {
            buf_add(out, s, 12);
            return 12;
        }
    }
    if (cp >= 0xD800 && cp <= 0xDFFF)
        buf_adds(out, UTF8_REPLACEMENT);
    else
        buf_add(out, s, 6);
    return 6;
}

/* Copies one raw string byte sequence; invalid UTF-8 becomes U+FFFD like Go's unquote. */
static size_t copy_string_bytes(const char *s, size_t n, buf_t *out)
{
    size_t w;
    unsigned long r = uri_utf8_decode(s, n, &w);
    if (r == 0xFFFD && w == 1)
        buf_adds(out, UTF8_REPLACEMENT);
    else
        buf_add(out, s, w);
    return w;
}

/* A number literal outside strings: copied; the first one that does not fit a float64
 * is reported as Go's decoder does (`json: cannot unmarshal number 1e400 into ...`). */
static size_t copy_number(const char *s, size_t n, buf_t *out, buf_t *why)
{
    size_t k = 0;
    while (k < n && s[k] && strchr("0123456789+-.eE", s[k]))
        k++;
    buf_add(out, s, k);
    if (why->len || why->oom) return k;
    char *tmp = strndup(s, k);
    if (!tmp) {
        why->oom = true;
        return k;
    }
    errno = 0;
    double d = strtod(tmp, NULL);
    if (errno == ERANGE && isinf(d))
        buf_printf(why, "json: cannot unmarshal number %s into Go value of type float64", tmp);
    free(tmp);
    return k;
}

/* A NUL-terminated copy of checked JSON text for yajl, with Go's string decoding rules
 * applied. NULL with why set on a number overflow or OOM. */
static char *json_prepare(const char *s, size_t n, buf_t *why)
{
    buf_t out = {0};
    bool in_str = false;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (in_str && c == '\\')
            i += copy_escape(s + i, n - i, &out);
        else if (in_str && c >= 0x80)
            i += copy_string_bytes(s + i, n - i, &out);
        else if (!in_str && (c == '-' || is_digit(c)))
            i += copy_number(s + i, n - i, &out, why);
        else {
            if (c == '"') in_str = !in_str;
            buf_addc(&out, (char)c);
            i++;
        }
    }
    if (out.oom || why->oom || why->len) {
        if (out.oom) why->oom = true;
        free(out.p);
        return NULL;
    }
    return out.p ? out.p : strdup("");
}

static const char *top_kind(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && is_space((unsigned char)s[i]))
        i++;
    switch (i < n ? s[i] : 'n') {
    case '{':
        return "object";
    case 'n':
        return "null";
    case '[':
        return "array";
    case '"':
        return "string";
    case 't':
    case 'f':
        return "bool";
    default:
        return "number";
    }
}

/* json.Unmarshal(body, &map[string]interface{}): *root is the object, or NULL for a
 * `null` body. 0, or -1 with Go's error text in why. */
static int json_load(const char *body, size_t len, yajl_val *root, buf_t *why)
{
    char yerr[256] = "";
    *root = NULL;
    if (json_check(body, len, why)) return -1;
    const char *kind = top_kind(body, len);
    if (strcmp(kind, "null") == 0) return 0;
    if (strcmp(kind, "object") != 0) {
        buf_printf(why, "json: cannot unmarshal %s into Go value of type " GO_MAP_ANY, kind);
        return -1;
    }
    char *text = json_prepare(body, len, why);
    if (!text) return -1;
    *root = yajl_tree_parse(text, yerr, sizeof yerr);
    free(text);
    if (*root) return 0;
    buf_printf(why, "json: %s", yerr);
    return -1;
}

/* ---- reading the decoded body like Go's map[string]interface{} ---- */

/* The value of key in obj; the last one when the key repeats (Go map semantics). */
static yajl_val obj_get(yajl_val obj, const char *key)
{
    yajl_val v = NULL;
    if (!obj || !YAJL_IS_OBJECT(obj)) return NULL;
    for (size_t i = 0; i < obj->u.object.len; i++)
        if (strcmp(obj->u.object.keys[i], key) == 0) v = obj->u.object.values[i];
    return v;
}

/* tmp[key].(string): the string, or NULL when absent or not a string. */
static const char *obj_str(yajl_val obj, const char *key)
{
    yajl_val v = obj_get(obj, key);
    return v && YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : NULL;
}

/* v.(float64) */
static bool num_of(yajl_val v, double *d)
{
    if (!v || !YAJL_IS_NUMBER(v)) return false;
    *d = strtod(YAJL_GET_NUMBER(v), NULL);
    return true;
}

/* Go's int(f) on amd64: truncation toward zero; NaN and out-of-range give INT64_MIN. */
static int64_t go_trunc(double d)
{
    if (isnan(d) || d >= 9223372036854775808.0 || d < -9223372036854775808.0) return INT64_MIN;
    return (int64_t)d;
}

/* Go's %T of a decoded JSON value. */
static const char *go_type_name(yajl_val v)
{
    if (!v || YAJL_IS_NULL(v)) return "<nil>";
    if (YAJL_IS_STRING(v)) return "string";
    if (YAJL_IS_NUMBER(v)) return "float64";
    if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)) return "bool";
    if (YAJL_IS_OBJECT(v)) return GO_MAP_ANY;
    return "[]interface {}";
}

/* Go's %v of a float64: strconv 'g' with the shortest round-trip digits, in exponent
 * form when the decimal exponent is < -4 or >= 6 (5, 1.5, 123456, 1.234567e+06, 1e-05). */
static void go_format_float(double d, char *out, size_t len)
{
    char tmp[40], digits[24];
    size_t nd = 0;
    if (d == 0) {
        snprintf(out, len, "%s", signbit(d) ? "-0" : "0");
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, d);
        if (strtod(tmp, NULL) == d) break;
    }
    const char *p = tmp + (tmp[0] == '-');
    for (; *p && *p != 'e'; p++)
        if (*p != '.') digits[nd++] = *p;
    digits[nd] = '\0';
    int e10 = atoi(p + 1), n = (int)nd;
    const char *sign = tmp[0] == '-' ? "-" : "";
    if (e10 < -4 || e10 >= 6)
        snprintf(out, len, "%s%c%s%se%c%02d", sign, digits[0], n > 1 ? "." : "", digits + 1,
                 e10 < 0 ? '-' : '+', abs(e10));
    else if (e10 < 0)
        snprintf(out, len, "%s0.%.*s%s", sign, -e10 - 1, "000", digits);
    else if (n <= e10 + 1)
        snprintf(out, len, "%s%s%.*s", sign, digits, e10 + 1 - n, "00000");
    else
        snprintf(out, len, "%s%.*s.%s", sign, e10 + 1, digits, digits + e10 + 1);
}

/* Keys of an object sorted by name, a repeated key keeping its last value. */
typedef struct {
    const char *key;
    size_t idx;
} keyref_t;

static int keyref_cmp(const void *a, const void *b)
{
    const keyref_t *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c) return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Fills refs (room for every key) and returns how many distinct keys there are. */
static size_t unique_keys(yajl_val obj, keyref_t *refs)
{
    size_t n = obj->u.object.len, m = 0;
    for (size_t i = 0; i < n; i++)
        refs[i] = (keyref_t){obj->u.object.keys[i], i};
    qsort(refs, n, sizeof *refs, keyref_cmp);
    for (size_t i = 0; i < n; i++)
        if (i + 1 == n || strcmp(refs[i].key, refs[i + 1].key) != 0) refs[m++] = refs[i];
    return m;
}

static void render_go(buf_t *b, yajl_val v, int depth);

static void render_map(buf_t *b, yajl_val obj, int depth)
{
    size_t n = obj->u.object.len;
    keyref_t *refs = n ? malloc(n * sizeof *refs) : NULL;
    if (n && !refs) {
        b->oom = true;
        return;
    }
    size_t m = n ? unique_keys(obj, refs) : 0;
    buf_adds(b, "map[");
    for (size_t i = 0; i < m; i++) {
        if (i) buf_addc(b, ' ');
        buf_adds(b, refs[i].key);
        buf_addc(b, ':');
        render_go(b, obj->u.object.values[refs[i].idx], depth + 1);
    }
    buf_addc(b, ']');
    free(refs);
}

static void render_array(buf_t *b, yajl_val arr, int depth)
{
    buf_addc(b, '[');
    for (size_t i = 0; i < arr->u.array.len; i++) {
        if (i) buf_addc(b, ' ');
        render_go(b, arr->u.array.values[i], depth + 1);
    }
    buf_addc(b, ']');
}

/* Go's fmt %s of a decoded JSON value (depth 0 = the argument itself). */
static void render_go(buf_t *b, yajl_val v, int depth)
{
    char num[64];
    if (depth > RENDER_MAX_DEPTH) {
        buf_adds(b, "...");
    } else if (YAJL_IS_STRING(v)) {
        buf_adds(b, v->u.string);
    } else if (YAJL_IS_NUMBER(v)) {
        double d = 0;
        num_of(v, &d);
        go_format_float(d, num, sizeof num);
        buf_printf(b, "%%!s(float64=%s)", num);
    } else if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)) {
        buf_adds(b, YAJL_IS_TRUE(v) ? "%!s(bool=true)" : "%!s(bool=false)");
    } else if (YAJL_IS_NULL(v)) {
        buf_adds(b, depth ? "<nil>" : "%!s(<nil>)");
    } else if (YAJL_IS_OBJECT(v)) {
        render_map(b, v, depth);
    } else {
        render_array(b, v, depth);
    }
}

/* ---- headers ---- */

void job_headers_free(headers_t *h)
{
    if (!h) return;
    for (size_t i = 0; i < h->n; i++) {
        free(h->items[i].name);
        free(h->items[i].value);
    }
    free(h->items);
    h->items = NULL;
    h->n = 0;
}

static int fill_headers(yajl_val obj, const keyref_t *refs, size_t m, headers_t *h)
{
    h->items = m ? calloc(m, sizeof *h->items) : NULL;
    if (m && !h->items) return -1;
    h->n = m;
    for (size_t i = 0; i < m; i++) {
        h->items[i].name = strdup(refs[i].key);
        h->items[i].value = strdup(obj->u.object.values[refs[i].idx]->u.string);
        if (!h->items[i].name || !h->items[i].value) {
            job_headers_free(h);
            return -1;
        }
    }
    return 0;
}

/* Fills h from an object of strings, sorted by name (a repeated name keeps its last
 * value). -1 when a value is not a string (*bad = the first one in document order) or
 * on OOM (*bad = NULL). */
static int headers_from_object(yajl_val obj, headers_t *h, yajl_val *bad)
{
    size_t n = obj->u.object.len, best = SIZE_MAX;
    keyref_t *refs = n ? malloc(n * sizeof *refs) : NULL;
    *bad = NULL;
    memset(h, 0, sizeof *h);
    if (n && !refs) return -1;
    size_t m = n ? unique_keys(obj, refs) : 0;
    for (size_t i = 0; i < m; i++)
        if (!YAJL_IS_STRING(obj->u.object.values[refs[i].idx]) && refs[i].idx < best)
            best = refs[i].idx;
    if (best != SIZE_MAX) *bad = obj->u.object.values[best];
    int rc = best != SIZE_MAX ? -1 : fill_headers(obj, refs, m, h);
    free(refs);
    return rc;
}

static int header_ptr_cmp(const void *a, const void *b)
{
    const header_t *const *x = a, *const *y = b;
    return strcmp(str_or_empty((*x)->name), str_or_empty((*y)->name));
}

/* Pointers to h's items sorted by name (Go prints and marshals maps sorted). NULL when
 * there are none or on OOM. */
static const header_t **headers_sorted(const headers_t *h)
{
    const header_t **v = h->n ? malloc(h->n * sizeof *v) : NULL;
    if (!v) return NULL;
    for (size_t i = 0; i < h->n; i++)
        v[i] = &h->items[i];
    qsort(v, h->n, sizeof *v, header_ptr_cmp);
    return v;
}

/* ---- validation (§3.1.1, §3.1.2) ---- */

typedef struct {
    long limit;
    char *proxy;
} aggr_t;

typedef struct {
    yajl_val root; /* the body object, NULL for a `null` body */
    job_t *job;
    aggr_t *aggr;
    buf_t *why; /* the failure reason */
} pctx_t;

typedef int (*step_fn)(pctx_t *c);

static int fail(pctx_t *c, const char *reason)
{
    buf_adds(c->why, reason);
    return -1;
}

/* Replaces *dst with a copy of s (NULL stays NULL). */
static int set_str(pctx_t *c, char **dst, const char *s)
{
    free(*dst);
    *dst = s ? strdup(s) : NULL;
    return s && !*dst ? fail(c, "out of memory") : 0;
}

/* The request-URI check; on failure the reason is prefix + Go's parse error. */
static int check_uri(pctx_t *c, const char *s, const char *prefix)
{
    size_t cap = 8 * strlen(s) + 128;
    char *err = malloc(cap);
    if (!err) return fail(c, "out of memory");
    int rc = uri_check_request(s, err, cap);
    if (rc) buf_printf(c->why, "%s%s", prefix, err);
    free(err);
    return rc;
}

static int step_url(pctx_t *c)
{
    const char *url = obj_str(c->root, "url");
    if (!url) return fail(c, "URL must be a string");
    if (check_uri(c, url, "Could not parse URL: ")) return -1;
    return set_str(c, &c->job->url, url);
}

static int step_aggr_id(pctx_t *c)
{
    const char *id = obj_str(c->root, "aggr_id");
    if (!id) return fail(c, "aggr_id must be a string");
    if (!*id) return fail(c, "aggr_id cannot be empty");
    return set_str(c, &c->job->aggr_id, id);
}

static int step_s3(pctx_t *c)
{
    const char *region = obj_str(c->root, "s3_region");
    const char *bucket = obj_str(c->root, "s3_bucket");
    bool has_region = region && *region, has_bucket = bucket && *bucket;
    if (set_str(c, &c->job->s3_region, region) || set_str(c, &c->job->s3_bucket, bucket)) return -1;
    if (!has_bucket && has_region) return fail(c, "s3_region provided without an s3_bucket");
    if (!has_region && has_bucket) return fail(c, "s3_bucket provided without an s3_region");
    return 0;
}

static int step_callback_url(pctx_t *c)
{
    const char *url = obj_str(c->root, "callback_url");
    if (!url) return 0;
    if (check_uri(c, url, "Could not parse callback URL: ")) return -1;
    return set_str(c, &c->job->callback_url, url);
}

static int fail_both(pctx_t *c, const char *type, const char *dst)
{
    buf_adds(c->why, "You need to provide both callback_type (");
    buf_add_quoted(c->why, type, strlen(type));
    buf_adds(c->why, ") and callback_dst (");
    buf_add_quoted(c->why, dst, strlen(dst));
    buf_addc(c->why, ')');
    return -1;
}

/* callback_type / callback_dst, examined only without a callback_url. */
static int step_callback_pair(pctx_t *c)
{
    if (c->job->callback_url) return 0;
    bool bucket = c->job->s3_bucket && *c->job->s3_bucket;
    const char *type = obj_str(c->root, "callback_type");
    const char *dst = obj_str(c->root, "callback_dst");
    if (!type && !bucket) return fail(c, "callback_type must be a string");
    if (!dst && !bucket) return fail(c, "callback_dst must be a string");
    if (!bucket && (!*type || !*dst)) return fail_both(c, type, dst);
    if (dst && strncmp(dst, "http", 4) == 0 && check_uri(c, dst, "Could not parse URL: "))
        return -1;
    if (set_str(c, &c->job->callback_type, type)) return -1;
    return set_str(c, &c->job->callback_dst, dst);
}

static int step_extra(pctx_t *c)
{
    return set_str(c, &c->job->extra, obj_str(c->root, "extra"));
}

static int step_mime(pctx_t *c)
{
    yajl_val v = obj_get(c->root, "mime_type");
    if (!v) return 0;
    if (!YAJL_IS_STRING(v)) return fail(c, "MimeType pattern must be a string");
    const char *list = YAJL_GET_STRING(v);
    size_t cap = 4 * strlen(list) + 64;
    char *err = malloc(cap);
    if (!err) return fail(c, "out of memory");
    int rc = glob_mime_list_valid(list, err, cap) ? 0 : fail(c, err);
    free(err);
    return rc ? rc : set_str(c, &c->job->mime_type, list);
}

static int step_max_retries(pctx_t *c)
{
    yajl_val v = obj_get(c->root, "max_retries");
    double d;
    if (!v) return 0;
    if (!num_of(v, &d)) {
        buf_printf(c->why, "Max retries must be a number, was: %s", go_type_name(v));
        return -1;
    }
    int64_t n = go_trunc(d);
    if (n < 0) return fail(c, "Max retries must not be negative");
    c->job->max_retries = n > INT_MAX ? INT_MAX : (int)n;
    return 0;
}

static int step_extract(pctx_t *c)
{
    yajl_val v = obj_get(c->root, "extract_image_size");
    if (!v) return 0;
    if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)) return fail(c, "ExtractImageSize must be a boolean");
    c->job->extract_image_size = YAJL_IS_TRUE(v);
    return 0;
}

static int step_timeout(pctx_t *c)
{
    yajl_val v = obj_get(c->root, "download_timeout");
    double d;
    if (!v) return 0;
    if (!num_of(v, &d)) return fail(c, "Download timeout must be a number");
    int64_t n = go_trunc(d);
    if (n <= 0) return fail(c, "Download timeout must be greater than 0");
    c->job->download_timeout = n > LONG_MAX ? LONG_MAX : (long)n;
    return 0;
}

static int step_headers(pctx_t *c)
{
    yajl_val v = obj_get(c->root, "request_headers"), bad;
    if (!v) return 0;
    if (!YAJL_IS_OBJECT(v)) return fail(c, "request_headers must be a dictionary");
    if (headers_from_object(v, &c->job->request_headers, &bad) == 0) return 0;
    if (!bad) return fail(c, "out of memory");
    buf_adds(c->why,
             "Values of request headers keys must be either strings or ints.Given value is ");
    render_go(c->why, bad, 0);
    return -1;
}

static int step_aggregation_id(pctx_t *c)
{
    const char *id = obj_str(c->root, "aggr_id");
    if (!id) return fail(c, "Aggregation ID must be a string");
    return *id ? 0 : fail(c, "Aggregation ID cannot be empty");
}

static int step_aggr_limit(pctx_t *c)
{
    double d;
    if (!num_of(obj_get(c->root, "aggr_limit"), &d))
        return fail(c, "Aggregation limit must be a number");
    int64_t n = go_trunc(d);
    if (n <= 0) return fail(c, "Aggregation limit must be greater than 0");
    c->aggr->limit = n > LONG_MAX ? LONG_MAX : (long)n;
    return 0;
}

static int step_aggr_proxy(pctx_t *c)
{
    yajl_val v = obj_get(c->root, "aggr_proxy");
    if (!v) return 0;
    if (!YAJL_IS_STRING(v)) return fail(c, "Aggregation proxy must be a string");
    const char *proxy = YAJL_GET_STRING(v);
    if (*proxy && check_uri(c, proxy, "Aggregation proxy must be a valid URI: ")) return -1;
    return set_str(c, &c->aggr->proxy, proxy);
}

/* expiresAt is checked but never stored: clients must not set the lease (W6). */
static int step_expires(pctx_t *c)
{
    yajl_val v = obj_get(c->root, "expiresAt");
    if (v && !YAJL_IS_STRING(v)) return fail(c, "Aggregation expiresAt must be a string");
    return 0;
}

static const step_fn job_steps[] = {
    step_url,  step_aggr_id,     step_s3,      step_callback_url, step_callback_pair, step_extra,
    step_mime, step_max_retries, step_extract, step_timeout,      step_headers,
};

static const step_fn aggr_steps[] = {
    step_aggregation_id,
    step_aggr_limit,
    step_aggr_proxy,
    step_expires,
};

static int run_steps(pctx_t *c, const step_fn *steps, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (steps[i](c)) return -1;
    return 0;
}

/* Aggregation rules; on success job->aggr_limit/aggr_proxy are replaced. */
static int validate_aggr(yajl_val root, job_t *job, buf_t *why)
{
    aggr_t a = {0};
    pctx_t c = {root, job, &a, why};
    if (run_steps(&c, aggr_steps, sizeof aggr_steps / sizeof aggr_steps[0])) {
        free(a.proxy);
        return -1;
    }
    job->aggr_limit = a.limit;
    free(job->aggr_proxy);
    job->aggr_proxy = a.proxy;
    return 0;
}

static void write_err(char *err, size_t errlen, const char *body, size_t len, const char *what,
                      const buf_t *why)
{
    if (!err || !errlen) return;
    snprintf(err, errlen, "Error unmarshalling body '%.*s' to %s: %s",
             (int)(len > INT_MAX ? INT_MAX : len), body, what,
             why->p && !why->oom ? why->p : "out of memory");
}

job_err_t job_parse(const char *body, size_t len, job_t *job, char *err, size_t errlen)
{
    buf_t why = {0};
    yajl_val root = NULL;
    job_err_t rc = JOB_OK;
    pctx_t c = {NULL, job, NULL, &why};
    memset(job, 0, sizeof *job);
    job->max_retries = -1;
    if (!body) {
        body = "";
        len = 0;
    }
    if (json_load(body, len, &root, &why)) rc = JOB_ERR_JOB;
    c.root = root;
    if (rc == JOB_OK && run_steps(&c, job_steps, sizeof job_steps / sizeof job_steps[0]))
        rc = JOB_ERR_JOB;
    if (rc == JOB_OK && validate_aggr(root, job, &why)) rc = JOB_ERR_AGGR;
    if (rc != JOB_OK) {
        write_err(err, errlen, body, len, rc == JOB_ERR_JOB ? "Job" : "Aggregation", &why);
        job_free(job);
    }
    yajl_tree_free(root);
    free(why.p);
    return rc;
}

job_err_t job_parse_aggr(const char *body, size_t len, job_t *job, char *err, size_t errlen)
{
    buf_t why = {0};
    yajl_val root = NULL;
    job_err_t rc = JOB_OK;
    if (!body) {
        body = "";
        len = 0;
    }
    if (json_load(body, len, &root, &why) || validate_aggr(root, job, &why)) rc = JOB_ERR_AGGR;
    if (rc != JOB_OK) write_err(err, errlen, body, len, "Aggregation", &why);
    yajl_tree_free(root);
    free(why.p);
    return rc;
}

void job_free(job_t *job)
{
    if (!job) return;
    char **strs[] = {&job->url,          &job->aggr_id,    &job->callback_url,  &job->callback_type,
                     &job->callback_dst, &job->extra,      &job->mime_type,     &job->s3_bucket,
                     &job->s3_region,    &job->aggr_proxy, &job->download_meta, &job->callback_meta,
                     &job->download_url, &job->image_size};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        free(*strs[i]);
    job_headers_free(&job->request_headers);
    memset(job, 0, sizeof *job);
}

/* ---- ids ---- */

static void base64url(const unsigned char *in, size_t n, char *out)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        size_t rem = n - i, chars = rem >= 3 ? 4 : rem + 1;
        unsigned long v = (unsigned long)in[i] << 16;
        if (rem > 1) v |= (unsigned long)in[i + 1] << 8;
        if (rem > 2) v |= in[i + 2];
        for (size_t k = 0; k < chars; k++)
            out[o++] = tbl[(v >> (18 - 6 * k)) & 63];
    }
    out[o] = '\0';
}

/* Random bytes for ids, fetched from getrandom(2) 64 ids at a time (per thread). */
enum { ID_RAW = 10, ID_POOL = 64 * ID_RAW };
static _Thread_local unsigned char id_pool[ID_POOL];
static _Thread_local size_t id_left;

static int id_refill(void)
{
    size_t got = 0;
    while (got < sizeof id_pool) {
        ssize_t n = getrandom(id_pool + got, sizeof id_pool - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -errno;
        got += (size_t)n;
    }
    id_left = sizeof id_pool;
    return 0;
}

int job_new_id(char id[JOB_ID_LEN + 1])
{
    if (id_left < ID_RAW) {
        int rc = id_refill();
        if (rc < 0) return rc;
    }
    unsigned char *raw = id_pool + sizeof id_pool - id_left;
    base64url(raw, ID_RAW, id);
    memset(raw, 0, ID_RAW); /* each random byte is used once */
    id_left -= ID_RAW;
    return 0;
}

bool job_has_callback(const job_t *job)
{
    return (job->callback_url && *job->callback_url) || (job->callback_dst && *job->callback_dst);
}

int job_max_retries(const job_t *job)
{
    return job->max_retries < 0 ? JOB_DEFAULT_MAX_RETRIES : job->max_retries;
}

/* ---- debug rendering ---- */

/* snprintf at buf+pos; returns the new position (clamped to the buffer). */
static size_t cat(char *buf, size_t len, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static size_t cat(char *buf, size_t len, size_t pos, const char *fmt, ...)
{
    va_list ap;
    if (pos + 1 >= len) return pos;
    va_start(ap, fmt);
    int n = vsnprintf(buf + pos, len - pos, fmt, ap);
    va_end(ap);
    if (n < 0) return pos;
    return pos + (size_t)n < len ? pos + (size_t)n : len - 1;
}

static size_t cat_headers(char *buf, size_t len, size_t pos, const headers_t *h)
{
    const header_t **sorted = headers_sorted(h);
    for (size_t i = 0; i < h->n; i++) {
        const header_t *it = sorted ? sorted[i] : &h->items[i];
        pos = cat(buf, len, pos, "%s%s:%s", i ? " " : "", str_or_empty(it->name),
                  str_or_empty(it->value));
    }
    free(sorted);
    return pos;
}

char *job_to_string(const job_t *job, char *buf, size_t len)
{
    if (!buf || !len) return buf;
    buf[0] = '\0';
    size_t pos = cat(buf, len, 0,
                     "Job{ID:%s, Aggr:%s, URL:%s, ExtractImageSize:%s, ImageSize: %s, "
                     "callback_url:%s, callback_type:%s, callback_dst:%s, Timeout:%ld, "
                     "RequestHeaders:map[",
                     job->id, str_or_empty(job->aggr_id), str_or_empty(job->url),
                     job->extract_image_size ? "true" : "false", str_or_empty(job->image_size),
                     str_or_empty(job->callback_url), str_or_empty(job->callback_type),
                     str_or_empty(job->callback_dst), job->download_timeout);
    pos = cat_headers(buf, len, pos, &job->request_headers);
    cat(buf, len, pos, "], DownloadURL:%s}", str_or_empty(job->download_url));
    return buf;
}

/* ---- state names ---- */

static const char *const dl_names[] = {"Pending", "InProgress", "Success", "Failed"};
static const char *const cb_names[] = {"", "Pending", "InProgress", "Failed"};

const char *job_dl_state_name(dl_state_t s)
{
    return (unsigned)s < 4 ? dl_names[s] : "";
}

const char *job_cb_state_name(cb_state_t s)
{
    return (unsigned)s < 4 ? cb_names[s] : "";
}

static int name_index(const char *const *names, const char *s)
{
    for (int i = 0; s && i < 4; i++)
        if (strcmp(names[i], s) == 0) return i;
    return -1;
}

int job_dl_state_parse(const char *s)
{
    return name_index(dl_names, s);
}

int job_cb_state_parse(const char *s)
{
    return name_index(cb_names, s);
}

/* ---- JSON output ---- */

static bool utf8_valid(const char *s, size_t n)
{
    size_t w;
    for (size_t i = 0; i < n; i += w)
        if (uri_utf8_decode(s + i, n - i, &w) == 0xFFFD && w == 1) return false;
    return true;
}

/* Emits a JSON string; invalid UTF-8 becomes U+FFFD as Go's encoder does. */
static void gen_str(yajl_gen g, const char *s)
{
    buf_t fixed = {0};
    s = str_or_empty(s);
    size_t n = strlen(s);
    if (!utf8_valid(s, n)) {
        for (size_t i = 0; i < n;)
            i += copy_string_bytes(s + i, n - i, &fixed);
        if (!fixed.oom) {
            s = fixed.p;
            n = fixed.len;
        }
    }
    yajl_gen_string(g, (const unsigned char *)s, n);
    free(fixed.p);
}

static void gen_kv(yajl_gen g, const char *key, const char *value)
{
    gen_str(g, key);
    gen_str(g, value);
}

static void gen_kb(yajl_gen g, const char *key, bool value)
{
    gen_str(g, key);
    yajl_gen_bool(g, value);
}

/* The generator's output as a malloc'd string (length in *len). */
static char *gen_take(yajl_gen g, size_t *len)
{
    const unsigned char *out;
    size_t n;
    char *res = NULL;
    if (yajl_gen_get_buf(g, &out, &n) == yajl_gen_status_ok && (res = malloc(n + 1))) {
        memcpy(res, out, n);
        res[n] = '\0';
        if (len) *len = n;
    }
    yajl_gen_free(g);
    return res;
}

char *job_headers_to_json(const headers_t *h)
{
    if (!h || h->n == 0) return strdup("null");
    const header_t **sorted = headers_sorted(h);
    yajl_gen g = sorted ? yajl_gen_alloc(NULL) : NULL;
    if (!g) {
        free(sorted);
        return NULL;
    }
    yajl_gen_map_open(g);
    for (size_t i = 0; i < h->n; i++)
        gen_kv(g, sorted[i]->name, sorted[i]->value);
    yajl_gen_map_close(g);
    free(sorted);
    return gen_take(g, NULL);
}

int job_headers_from_json(const char *json, headers_t *h)
{
    char yerr[128];
    yajl_val bad, v = json ? yajl_tree_parse(json, yerr, sizeof yerr) : NULL;
    int rc = -1;
    memset(h, 0, sizeof *h);
    if (v && YAJL_IS_NULL(v))
        rc = 0;
    else if (v && YAJL_IS_OBJECT(v))
        rc = headers_from_object(v, h, &bad);
    yajl_tree_free(v);
    return rc;
}

char *job_file_url(const char *base, const char *id)
{
    if (!base || !id) return NULL;
    size_t n = strlen(id), k = n < 3 ? n : 3;
    char *rel = malloc(k + n + 2);
    if (!rel) return NULL;
    snprintf(rel, k + n + 2, "%.*s/%s", (int)k, id, id);
    char *url = uri_join_path(base, rel);
    free(rel);
    return url;
}

char *job_callback_payload(const job_t *job, size_t *len)
{
    bool ok = job->download_state == DL_SUCCESS;
    if (!ok && job->download_state != DL_FAILED) return NULL;
    char *dl = ok ? job_file_url(job->download_url, job->id) : NULL;
    yajl_gen g = yajl_gen_alloc(NULL);
    if (!g) {
        free(dl);
        return NULL;
    }
    yajl_gen_map_open(g);
    gen_kb(g, "success", ok);
    gen_kv(g, "error", job->download_meta);
    gen_kv(g, "extra", job->extra);
    gen_kv(g, "image_size", job->image_size);
    gen_kv(g, "resource_url", job->url);
    gen_kv(g, "download_url", dl);
    gen_kv(g, "job_id", job->id);
    gen_str(g, "response_code");
    yajl_gen_integer(g, job->response_code);
    gen_kb(g, "delivered", true);
    gen_kv(g, "delivery_error", "");
    yajl_gen_map_close(g);
    free(dl);
    return gen_take(g, len);
}
