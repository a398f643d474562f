/* gojson: Go's encoding/json as the reference's clients see it. The syntax check
 * (checkValid) with Go's SyntaxError texts, decoding a body into a yajl tree the way
 * json.Unmarshal into map[string]interface{} does (invalid UTF-8 and lone surrogates
 * become U+FFFD, float64 overflow is an error), reading that tree like Go's
 * interface values (type names, int(f) truncation), Go's fmt %s / %v of decoded values
 * for error texts, and JSON string output with Go's encoder's UTF-8 repair. It also
 * owns the growable text those write into. No I/O. */
#include "gojson.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "uri.h"

#define JSON_MAX_DEPTH 10000 /* Go's maxNestingDepth */
#define RENDER_MAX_DEPTH 256 /* deeper values render as "..." in error texts */
#define UTF8_REPLACEMENT "\xEF\xBF\xBD"

/* ---- growable text ---- */

static bool buf_reserve(gojson_buf_t *b, size_t extra)
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

void gojson_buf_add(gojson_buf_t *b, const char *s, size_t n)
{
    if (!buf_reserve(b, n)) return;
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void gojson_buf_adds(gojson_buf_t *b, const char *s)
{
    gojson_buf_add(b, s, strlen(s));
}

void gojson_buf_addc(gojson_buf_t *b, char c)
{
    gojson_buf_add(b, &c, 1);
}

void gojson_buf_printf(gojson_buf_t *b, const char *fmt, ...)
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
    gojson_buf_t *err;
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
static void add_quote_char(gojson_buf_t *b, unsigned char c)
{
    char utf8[2] = {(char)c, 0};
    size_t n = 1;
    if (c == '\'' || c == '"') {
        gojson_buf_adds(b, c == '\'' ? "'\\''" : "'\"'");
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
    gojson_buf_addc(b, '\'');
    gojson_buf_add(b, q + 1, strlen(q) - 2);
    gojson_buf_addc(b, '\'');
    free(q);
}

static int scan_error(scanner_t *s, unsigned char c, const char *context)
{
    gojson_buf_adds(s->err, "invalid character ");
    add_quote_char(s->err, c);
    gojson_buf_addc(s->err, ' ');
    gojson_buf_adds(s->err, context);
    s->step = ST_ERROR;
    return -1;
}

static int scan_push(scanner_t *s, unsigned char c, unsigned char ps)
{
    if (s->depth == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 32;
        unsigned char *p = realloc(s->stack, cap);
        if (!p) {
            gojson_buf_adds(s->err, "out of memory");
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
int gojson_check(const char *data, size_t len, gojson_buf_t *err)
{
    scanner_t s = {.step = ST_BEGIN_VALUE, .err = err};
    int rc = 0;
    for (size_t i = 0; i < len && rc == 0; i++)
        rc = scan_byte(&s, (unsigned char)data[i]);
    if (rc == 0 && !s.end_top) rc = scan_byte(&s, ' ');
    if (rc == 0 && !s.end_top) {
        gojson_buf_adds(err, "unexpected end of JSON input");
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
 * unquote (yajl would mangle them). An escaped NUL, which would cut yajl's C string,
 * becomes a lone low surrogate: yajl decodes that to GOJSON_NUL_MARK, which no other
 * input can produce once lone surrogates and invalid UTF-8 are replaced. Returns the
 * input bytes consumed. */
static size_t copy_escape(const char *s, size_t n, gojson_buf_t *out)
{
    if (s[1] != 'u') {
        gojson_buf_add(out, s, 2);
        return 2;
    }
    unsigned long cp = hex4(s + 2);
    if (cp == 0) {
        gojson_buf_adds(out, "\\udc00");
        return 6;
    }
    if (cp >= 0xD800 && cp <= 0xDBFF && n >= 12 && s[6] == '\\' && s[7] == 'u') {
        unsigned long lo = hex4(s + 8);
        if (lo >= 0xDC00 && lo <= 0xDFFF) {
            gojson_buf_add(out, s, 12);
            return 12;
        }
    }
    if (cp >= 0xD800 && cp <= 0xDFFF)
        gojson_buf_adds(out, UTF8_REPLACEMENT);
    else
        gojson_buf_add(out, s, 6);
    return 6;
}

/* Copies one raw string byte sequence; invalid UTF-8 becomes U+FFFD like Go's unquote. */
static size_t copy_string_bytes(const char *s, size_t n, gojson_buf_t *out)
{
    size_t w;
    unsigned long r = uri_utf8_decode(s, n, &w);
    if (r == 0xFFFD && w == 1)
        gojson_buf_adds(out, UTF8_REPLACEMENT);
    else
        gojson_buf_add(out, s, w);
    return w;
}

/* A number literal outside strings: copied; the first one that does not fit a float64
 * is reported as Go's decoder does (`json: cannot unmarshal number 1e400 into ...`). */
static size_t copy_number(const char *s, size_t n, gojson_buf_t *out, gojson_buf_t *why)
{
    size_t k = 0;
    while (k < n && s[k] && strchr("0123456789+-.eE", s[k]))
        k++;
    gojson_buf_add(out, s, k);
    if (why->len || why->oom) return k;
    char *tmp = strndup(s, k);
    if (!tmp) {
        why->oom = true;
        return k;
    }
    errno = 0;
    double d = strtod(tmp, NULL);
    if (errno == ERANGE && isinf(d))
        gojson_buf_printf(why, "json: cannot unmarshal number %s into Go value of type float64",
                          tmp);
    free(tmp);
    return k;
}

/* A NUL-terminated copy of checked JSON text for yajl, with Go's string decoding rules
 * applied. NULL with why set on a number overflow or OOM. */
char *gojson_prepare(const char *s, size_t n, gojson_buf_t *why)
{
    gojson_buf_t out = {0};
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
            gojson_buf_addc(&out, (char)c);
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
int gojson_load_object(const char *body, size_t len, yajl_val *root, gojson_buf_t *why)
{
    char yerr[256] = "";
    *root = NULL;
    if (gojson_check(body, len, why)) return -1;
    const char *kind = top_kind(body, len);
    if (strcmp(kind, "null") == 0) return 0;
    if (strcmp(kind, "object") != 0) {
        gojson_buf_printf(why, "json: cannot unmarshal %s into Go value of type " GOJSON_MAP_ANY,
                          kind);
        return -1;
    }
    char *text = gojson_prepare(body, len, why);
    if (!text) return -1;
    *root = yajl_tree_parse(text, yerr, sizeof yerr);
    free(text);
    if (*root) return 0;
    gojson_buf_printf(why, "json: %s", yerr);
    return -1;
}

/* ---- reading the decoded body like Go's map[string]interface{} ---- */

/* The value of key in obj; the last one when the key repeats (Go map semantics). */
yajl_val gojson_get(yajl_val obj, const char *key)
{
    yajl_val v = NULL;
    if (!obj || !YAJL_IS_OBJECT(obj)) return NULL;
    for (size_t i = 0; i < obj->u.object.len; i++)
        if (strcmp(obj->u.object.keys[i], key) == 0) v = obj->u.object.values[i];
    return v;
}

/* tmp[key].(string): the string, or NULL when absent or not a string. */
const char *gojson_get_str(yajl_val obj, const char *key)
{
    yajl_val v = gojson_get(obj, key);
    return v && YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : NULL;
}

/* v.(float64) */
bool gojson_num(yajl_val v, double *d)
{
    if (!v || !YAJL_IS_NUMBER(v)) return false;
    *d = strtod(YAJL_GET_NUMBER(v), NULL);
    return true;
}

/* Go's int(f) on amd64: truncation toward zero; NaN and out-of-range give INT64_MIN. */
int64_t gojson_trunc(double d)
{
    if (isnan(d) || d >= 9223372036854775808.0 || d < -9223372036854775808.0) return INT64_MIN;
    return (int64_t)d;
}

/* Go's %T of a decoded JSON value. */
const char *gojson_type_name(yajl_val v)
{
    if (!v || YAJL_IS_NULL(v)) return "<nil>";
    if (YAJL_IS_STRING(v)) return "string";
    if (YAJL_IS_NUMBER(v)) return "float64";
    if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)) return "bool";
    if (YAJL_IS_OBJECT(v)) return GOJSON_MAP_ANY;
    return "[]interface {}";
}

/* Go's %v of a float64: strconv 'g' with the shortest round-trip digits, in exponent
 * form when the decimal exponent is < -4 or >= 6 (5, 1.5, 123456, 1.234567e+06, 1e-05). */
void gojson_format_float(double d, char *out, size_t len)
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

static int keyref_cmp(const void *a, const void *b)
{
    const gojson_keyref_t *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c) return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Fills refs (room for every key) and returns how many distinct keys there are. */
size_t gojson_unique_keys(yajl_val obj, gojson_keyref_t *refs)
{
    size_t n = obj->u.object.len, m = 0;
    for (size_t i = 0; i < n; i++)
        refs[i] = (gojson_keyref_t){obj->u.object.keys[i], i};
    qsort(refs, n, sizeof *refs, keyref_cmp);
    for (size_t i = 0; i < n; i++)
        if (i + 1 == n || strcmp(refs[i].key, refs[i + 1].key) != 0) refs[m++] = refs[i];
    return m;
}

static void render_go(gojson_buf_t *b, yajl_val v, int depth);

static void render_map(gojson_buf_t *b, yajl_val obj, int depth)
{
    size_t n = obj->u.object.len;
    gojson_keyref_t *refs = n ? malloc(n * sizeof *refs) : NULL;
    if (n && !refs) {
        b->oom = true;
        return;
    }
    size_t m = n ? gojson_unique_keys(obj, refs) : 0;
    gojson_buf_adds(b, "map[");
    for (size_t i = 0; i < m; i++) {
        if (i) gojson_buf_addc(b, ' ');
        gojson_buf_adds(b, refs[i].key);
        gojson_buf_addc(b, ':');
        render_go(b, obj->u.object.values[refs[i].idx], depth + 1);
    }
    gojson_buf_addc(b, ']');
    free(refs);
}

static void render_array(gojson_buf_t *b, yajl_val arr, int depth)
{
    gojson_buf_addc(b, '[');
    for (size_t i = 0; i < arr->u.array.len; i++) {
        if (i) gojson_buf_addc(b, ' ');
        render_go(b, arr->u.array.values[i], depth + 1);
    }
    gojson_buf_addc(b, ']');
}

/* Go's fmt %s of a decoded JSON value (depth 0 = the argument itself). */
static void render_go(gojson_buf_t *b, yajl_val v, int depth)
{
    char num[64];
    if (depth > RENDER_MAX_DEPTH) {
        gojson_buf_adds(b, "...");
    } else if (YAJL_IS_STRING(v)) {
        gojson_buf_adds(b, v->u.string);
    } else if (YAJL_IS_NUMBER(v)) {
        double d = 0;
        gojson_num(v, &d);
        gojson_format_float(d, num, sizeof num);
        gojson_buf_printf(b, "%%!s(float64=%s)", num);
    } else if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)) {
        gojson_buf_adds(b, YAJL_IS_TRUE(v) ? "%!s(bool=true)" : "%!s(bool=false)");
    } else if (YAJL_IS_NULL(v)) {
        gojson_buf_adds(b, depth ? "<nil>" : "%!s(<nil>)");
    } else if (YAJL_IS_OBJECT(v)) {
        render_map(b, v, depth);
    } else {
        render_array(b, v, depth);
    }
}

static bool utf8_valid(const char *s, size_t n)
{
    size_t w;
    for (size_t i = 0; i < n; i += w)
        if (uri_utf8_decode(s + i, n - i, &w) == 0xFFFD && w == 1) return false;
    return true;
}

/* Emits a JSON string; invalid UTF-8 becomes U+FFFD as Go's encoder does. */
void gojson_gen_str(yajl_gen g, const char *s)
{
    gojson_buf_t fixed = {0};
    s = s ? s : "";
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

bool gojson_has_nul(const char *s)
{
    return s && strstr(s, GOJSON_NUL_MARK) != NULL;
}

void gojson_render(gojson_buf_t *b, yajl_val v)
{
    render_go(b, v, 0);
}
