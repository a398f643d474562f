/* uri: Go net/url compatibility (§3.7, §7.4 of the reference). Owns the request-URI
 * check that job validation runs on url, callback_url, callback_dst and aggr_proxy (and
 * the processor on its download_url), the url.Parse + path.Join + URL.String() round
 * trip behind the callback's download_url, and two Go text helpers (strconv.Quote and
 * utf8.DecodeRune) that glob and job use to produce Go-identical error texts, the
 * hex form of digests and the last element of a request path.
 * Everything is a pure function over the input bytes; no I/O, no global state. */
#include "uri.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RUNE_ERROR 0xFFFDul

typedef struct {
    const char *p;
    size_t n;
} span_t;

/* Growable NUL-terminated text; after an allocation failure every append is a no-op. */
typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} buf_t;

/* Go's internal encoding modes of net/url that matter here. */
typedef enum { ENC_PATH, ENC_HOST, ENC_ZONE, ENC_USER, ENC_FRAG } enc_t;

/* The raw (still escaped) pieces of a parsed URL, as slices of the input. */
typedef struct {
    span_t scheme, opaque, user, pass, host, path, query;
    bool has_user, has_pass, force_query;
} url_t;

static void buf_add(buf_t *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_addc(buf_t *b, char c)
{
    buf_add(b, &c, 1);
}

static void buf_adds(buf_t *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

/* Hands the text over to the caller (NULL after an allocation failure). */
static char *buf_take(buf_t *b)
{
    if (!b->oom && !b->p) buf_add(b, "", 0);
    if (b->oom) {
        free(b->p);
        return NULL;
    }
    return b->p;
}

static span_t span_from(span_t s, size_t off)
{
    return (span_t){s.p + off, s.n - off};
}

static span_t span_upto(span_t s, size_t end)
{
    return (span_t){s.p, end};
}

static bool span_starts(span_t s, const char *prefix)
{
    size_t n = strlen(prefix);
    return s.n >= n && memcmp(s.p, prefix, n) == 0;
}

/* Index of the first / last c in s, or -1. */
static long span_index(span_t s, char c)
{
    const char *hit = s.n ? memchr(s.p, c, s.n) : NULL;
    return hit ? (long)(hit - s.p) : -1;
}

static long span_last(span_t s, char c)
{
    for (size_t i = s.n; i > 0; i--)
        if (s.p[i - 1] == c) return (long)(i - 1);
    return -1;
}

/* ---- Go text helpers ---- */

static bool in_range(unsigned char c, unsigned char lo, unsigned char hi)
{
    return c >= lo && c <= hi;
}

/* Bounds for the second byte of a multi-byte sequence led by b0 (Go's accept ranges). */
static void second_byte_range(unsigned char b0, unsigned char *lo, unsigned char *hi)
{
    *lo = 0x80;
    *hi = 0xBF;
    if (b0 == 0xE0) *lo = 0xA0;
    if (b0 == 0xED) *hi = 0x9F;
    if (b0 == 0xF0) *lo = 0x90;
    if (b0 == 0xF4) *hi = 0x8F;
}

unsigned long uri_utf8_decode(const char *s, size_t n, size_t *w)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t need;
    unsigned long r;
    unsigned char lo, hi;
    *w = n ? 1 : 0;
    if (n == 0) return RUNE_ERROR;
    if (u[0] < 0x80) return u[0];
    if (in_range(u[0], 0xC2, 0xDF))
        need = 2, r = u[0] & 0x1F;
    else if (in_range(u[0], 0xE0, 0xEF))
        need = 3, r = u[0] & 0x0F;
    else if (in_range(u[0], 0xF0, 0xF4))
        need = 4, r = u[0] & 0x07;
    else
        return RUNE_ERROR;
    if (n < need) return RUNE_ERROR;
    second_byte_range(u[0], &lo, &hi);
    if (!in_range(u[1], lo, hi)) return RUNE_ERROR;
    for (size_t i = 1; i < need; i++) {
        if (i > 1 && !in_range(u[i], 0x80, 0xBF)) return RUNE_ERROR;
        r = (r << 6) | (u[i] & 0x3F);
    }
    *w = need;
    return r;
}

/* Go's strconv.IsPrint, exact for ASCII and Latin-1 and for the common format/space
 * characters above; other unassigned code points are treated as printable. */
static bool go_isprint(unsigned long r)
{
    static const unsigned long np[][2] = {
        {0x0000, 0x001F},   {0x007F, 0x00A0},   {0x00AD, 0x00AD},   {0x0600, 0x0605},
        {0x061C, 0x061C},   {0x06DD, 0x06DD},   {0x070F, 0x070F},   {0x08E2, 0x08E2},
        {0x1680, 0x1680},   {0x180E, 0x180E},   {0x2000, 0x200F},   {0x2028, 0x202F},
        {0x205F, 0x2064},   {0x2066, 0x206F},   {0x3000, 0x3000},   {0xD800, 0xF8FF},
        {0xFDD0, 0xFDEF},   {0xFEFF, 0xFEFF},   {0xFFF0, 0xFFFB},   {0x110BD, 0x110BD},
        {0x1BCA0, 0x1BCA3}, {0x1D173, 0x1D17A}, {0xE0000, 0xE00FF}, {0xF0000, 0x10FFFF},
    };
    if ((r & 0xFFFE) == 0xFFFE) return false;
    for (size_t i = 0; i < sizeof np / sizeof np[0]; i++)
        if (r >= np[i][0] && r <= np[i][1]) return false;
    return true;
}

static void quote_escape(buf_t *b, unsigned long r)
{
    static const char esc[] = "\aa\bb\ff\nn\rr\tt\vv";
    char tmp[24];
    const char *e = r ? strchr(esc, (int)r) : NULL;
    if (e && r < 0x20) {
        tmp[0] = '\\';
        tmp[1] = e[1];
        buf_add(b, tmp, 2);
        return;
    }
    if (r < 0x20 || r == 0x7F)
        snprintf(tmp, sizeof tmp, "\\x%02lx", r);
    else if (r < 0x10000)
        snprintf(tmp, sizeof tmp, "\\u%04lx", r);
    else
        snprintf(tmp, sizeof tmp, "\\U%08lx", r);
    buf_adds(b, tmp);
}

char *uri_quote(const char *s, size_t n)
{
    buf_t b = {0};
    char tmp[8];
    buf_addc(&b, '"');
    for (size_t i = 0, w; i < n; i += w) {
        unsigned long r = uri_utf8_decode(s + i, n - i, &w);
        if (r == RUNE_ERROR && w == 1) {
            snprintf(tmp, sizeof tmp, "\\x%02x", (unsigned char)s[i]);
            buf_adds(&b, tmp);
        } else if (r == '"' || r == '\\') {
            buf_addc(&b, '\\');
            buf_addc(&b, (char)r);
        } else if (go_isprint(r)) {
            buf_add(&b, s + i, w);
        } else {
            quote_escape(&b, r);
        }
    }
    buf_addc(&b, '"');
    return buf_take(&b);
}

/* ---- net/url: escaping rules ---- */

static bool is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static unsigned unhex(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return c - 'A' + 10;
}

/* Reserved characters (RFC 3986 §2.2) that some URL parts may carry unescaped. */
static bool reserved_ok(unsigned char c, enc_t mode)
{
    switch (mode) {
    case ENC_PATH:
        return c != '?';
    case ENC_USER:
        return c != '@' && c != '/' && c != '?' && c != ':';
    case ENC_FRAG:
        return true;
    default:
        return false;
    }
}

/* Go's shouldEscape for the modes above. */
static bool should_escape(unsigned char c, enc_t mode)
{
    if (is_alnum(c)) return false;
    if ((mode == ENC_HOST || mode == ENC_ZONE) && c && strchr("!$&'()*+,;=:[]<>\"", c))
        return false;
    if (c && strchr("-_.~", c)) return false;
    if (c && strchr("$&+,/:;=?@", c)) return !reserved_ok(c, mode);
    if (mode == ENC_FRAG && c && strchr("!()*", c)) return false;
    return true;
}

static void err_quoted(buf_t *why, const char *pre, span_t s, const char *post)
{
    char *q = uri_quote(s.p, s.n);
    buf_adds(why, pre);
    if (q)
        buf_adds(why, q);
    else
        why->oom = true;
    buf_adds(why, post);
    free(q);
}

/* Checks one %XX escape at s[i] (Go's unescape rules); 0 or -1 with why set. */
static int check_escape(span_t s, size_t i, enc_t mode, buf_t *why)
{
    span_t e = {s.p + i, s.n - i < 3 ? s.n - i : 3};
    const unsigned char *u = (const unsigned char *)s.p;
    if (i + 2 >= s.n || !is_hex(u[i + 1]) || !is_hex(u[i + 2])) {
        err_quoted(why, "invalid URL escape ", e, "");
        return -1;
    }
    bool pct25 = memcmp(s.p + i, "%25", 3) == 0;
    if (mode == ENC_HOST && unhex(u[i + 1]) < 8 && !pct25) {
        err_quoted(why, "invalid URL escape ", e, "");
        return -1;
    }
    unsigned char v = (unsigned char)(unhex(u[i + 1]) << 4 | unhex(u[i + 2]));
    if (mode == ENC_ZONE && !pct25 && v != ' ' && should_escape(v, ENC_HOST)) {
        err_quoted(why, "invalid URL escape ", e, "");
        return -1;
    }
    return 0;
}

/* Go's unescape() validation pass. */
static int check_unescape(span_t s, enc_t mode, buf_t *why)
{
    for (size_t i = 0; i < s.n;) {
        unsigned char c = (unsigned char)s.p[i];
        if (c == '%') {
            if (check_escape(s, i, mode, why)) return -1;
            i += 3;
            continue;
        }
        if ((mode == ENC_HOST || mode == ENC_ZONE) && c < 0x80 && should_escape(c, mode)) {
            err_quoted(why, "invalid character ", (span_t){s.p + i, 1}, " in host name");
            return -1;
        }
        i++;
    }
    return 0;
}

/* Decodes %XX escapes of an already validated part. */
static void unescape_into(span_t s, buf_t *out)
{
    const unsigned char *u = (const unsigned char *)s.p;
    for (size_t i = 0; i < s.n; i++) {
        if (u[i] == '%' && i + 2 < s.n && is_hex(u[i + 1]) && is_hex(u[i + 2])) {
            buf_addc(out, (char)(unhex(u[i + 1]) << 4 | unhex(u[i + 2])));
            i += 2;
        } else {
            buf_addc(out, s.p[i]);
        }
    }
}

static void escape_into(const char *s, size_t n, enc_t mode, buf_t *out)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!should_escape(c, mode)) {
            buf_addc(out, (char)c);
            continue;
        }
        char e[3] = {'%', hex[c >> 4], hex[c & 15]};
        buf_add(out, e, 3);
    }
}

/* Go's validEncoded: true when s may stand for itself in the given mode. */
static bool valid_encoded(span_t s, enc_t mode)
{
    for (size_t i = 0; i < s.n; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c && strchr("!$&'()*+,;=:@[]%", c)) continue;
        if (should_escape(c, mode)) return false;
    }
    return true;
}

/* ---- net/url: parsing ---- */

static bool valid_optional_port(span_t port)
{
    if (port.n == 0) return true;
    if (port.p[0] != ':') return false;
    for (size_t i = 1; i < port.n; i++)
        if (port.p[i] < '0' || port.p[i] > '9') return false;
    return true;
}

static int check_port(span_t port, buf_t *why)
{
    if (valid_optional_port(port)) return 0;
    err_quoted(why, "invalid port ", port, " after host");
    return -1;
}

/* Index of "%25" inside s, or -1. */
static long find_pct25(span_t s)
{
    for (size_t i = 0; i + 3 <= s.n; i++)
        if (memcmp(s.p + i, "%25", 3) == 0) return (long)i;
    return -1;
}

/* "[v6%25zone]:port" forms (RFC 3986 and 6874). */
static int parse_ip_literal(span_t h, buf_t *why)
{
    long i = span_last(h, ']');
    if (i < 0) {
        buf_adds(why, "missing ']' in host");
        return -1;
    }
    if (check_port(span_from(h, (size_t)i + 1), why)) return -1;
    long zone = find_pct25(span_upto(h, (size_t)i));
    if (zone < 0) return check_unescape(h, ENC_HOST, why);
    if (check_unescape(span_upto(h, (size_t)zone), ENC_HOST, why)) return -1;
    span_t z = {h.p + zone, (size_t)(i - zone)};
    if (check_unescape(z, ENC_ZONE, why)) return -1;
    return check_unescape(span_from(h, (size_t)i), ENC_HOST, why);
}

static int parse_host(span_t h, buf_t *why)
{
    if (span_starts(h, "[")) return parse_ip_literal(h, why);
    long i = span_last(h, ':');
    if (i >= 0 && check_port(span_from(h, (size_t)i), why)) return -1;
    return check_unescape(h, ENC_HOST, why);
}

static bool valid_userinfo(span_t s)
{
    for (size_t i = 0; i < s.n; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (!is_alnum(c) && !(c && strchr("-._:~!$&'()*+,;=%@", c))) return false;
    }
    return true;
}

static int parse_userinfo(span_t ui, url_t *u, buf_t *why)
{
    if (!valid_userinfo(ui)) {
        buf_adds(why, "net/url: invalid userinfo");
        return -1;
    }
    long colon = span_index(ui, ':');
    u->has_user = true;
    u->user = colon < 0 ? ui : span_upto(ui, (size_t)colon);
    if (check_unescape(u->user, ENC_USER, why)) return -1;
    if (colon < 0) return 0;
    u->has_pass = true;
    u->pass = span_from(ui, (size_t)colon + 1);
    return check_unescape(u->pass, ENC_USER, why);
}

static int parse_authority(span_t a, url_t *u, buf_t *why)
{
    long at = span_last(a, '@');
    u->host = at < 0 ? a : span_from(a, (size_t)at + 1);
    if (parse_host(u->host, why)) return -1;
    if (at < 0) return 0;
    return parse_userinfo(span_upto(a, (size_t)at), u, why);
}

static bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Go's getScheme: splits "scheme:" off s into u->scheme, the remainder into *rest. */
static int get_scheme(span_t s, url_t *u, span_t *rest, buf_t *why)
{
    *rest = s;
    for (size_t i = 0; i < s.n; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (is_alpha(c)) continue;
        if ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.') {
            if (i == 0) return 0;
            continue;
        }
        if (c != ':') return 0;
        if (i == 0) {
            buf_adds(why, "missing protocol scheme");
            return -1;
        }
        u->scheme = span_upto(s, i);
        *rest = span_from(s, i + 1);
        return 0;
    }
    return 0;
}

static void split_query(span_t *rest, url_t *u)
{
    long q = span_index(*rest, '?');
    if (q >= 0 && (size_t)q == rest->n - 1) {
        u->force_query = true;
        rest->n--;
    } else if (q >= 0) {
        u->query = span_from(*rest, (size_t)q + 1);
        rest->n = (size_t)q;
    }
}

static bool has_ctl_byte(span_t s)
{
    for (size_t i = 0; i < s.n; i++)
        if ((unsigned char)s.p[i] < 0x20 || s.p[i] == 0x7F) return true;
    return false;
}

/* A rest that does not start with '/': opaque, or an error for requests and for a
 * relative path whose first segment holds a colon. 1 = done (opaque), 0 = go on. */
static int parse_rootless(span_t rest, bool via_request, url_t *u, buf_t *why)
{
    if (u->scheme.n) {
        u->opaque = rest;
        return 1;
    }
    if (via_request) {
        buf_adds(why, "invalid URI for request");
        return -1;
    }
    long slash = span_index(rest, '/');
    span_t seg = slash < 0 ? rest : span_upto(rest, (size_t)slash);
    if (span_index(seg, ':') >= 0) {
        buf_adds(why, "first path segment in URL cannot contain colon");
        return -1;
    }
    return 0;
}

/* Go's parse(rawURL, viaRequest) without the fragment; 0 or -1 with the reason in why. */
static int parse_url(span_t s, bool via_request, url_t *u, buf_t *why)
{
    span_t rest;
    memset(u, 0, sizeof *u);
    if (has_ctl_byte(s)) {
        buf_adds(why, "net/url: invalid control character in URL");
        return -1;
    }
    if (s.n == 0 && via_request) {
        buf_adds(why, "empty url");
        return -1;
    }
    if (s.n == 1 && s.p[0] == '*') {
        u->path = s;
        return 0;
    }
    if (get_scheme(s, u, &rest, why)) return -1;
    split_query(&rest, u);
    if (!span_starts(rest, "/")) {
        int rc = parse_rootless(rest, via_request, u, why);
        if (rc) return rc > 0 ? 0 : -1;
    }
    bool authority = u->scheme.n || (!via_request && !span_starts(rest, "///"));
    if (authority && span_starts(rest, "//")) {
        span_t a = span_from(rest, 2);
        long slash = span_index(a, '/');
        rest = slash < 0 ? span_from(a, a.n) : span_from(a, (size_t)slash);
        if (slash >= 0) a = span_upto(a, (size_t)slash);
        if (parse_authority(a, u, why)) return -1;
    }
    u->path = rest;
    return check_unescape(rest, ENC_PATH, why);
}

int uri_check_request(const char *s, char *err, size_t errlen)
{
    span_t in = {s ? s : "", s ? strlen(s) : 0};
    url_t u;
    buf_t why = {0};
    int rc = parse_url(in, true, &u, &why);
    if (rc != 0 && err && errlen) {
        char *q = uri_quote(in.p, in.n);
        snprintf(err, errlen, "parse %s: %s", q ? q : "\"\"",
                 why.p && !why.oom ? why.p : "out of memory");
        free(q);
    }
    free(why.p);
    return rc;
}

/* ---- path.Clean / path.Join and URL.String() ---- */

/* A ".." element of path.Clean: drops the last element written, or keeps ".." in a
 * relative path with nothing left to drop. */
static void clean_dotdot(buf_t *out, bool rooted, size_t *dotdot)
{
    size_t w = out->len;
    if (w > *dotdot) {
        for (w--; w > *dotdot && out->p[w] != '/'; w--) {
        }
        out->len = w;
        out->p[w] = '\0';
    } else if (!rooted) {
        if (w > 0) buf_addc(out, '/');
        buf_add(out, "..", 2);
        *dotdot = out->len;
    }
}

/* Go's path.Clean of p into the empty buffer out. */
static void path_clean(const char *p, size_t n, buf_t *out)
{
    bool rooted = n > 0 && p[0] == '/';
    size_t r = rooted ? 1 : 0, dotdot = r;
    if (rooted) buf_addc(out, '/');
    while (r < n && !out->oom) {
        if (p[r] == '/') {
            r++;
        } else if (p[r] == '.' && (r + 1 == n || p[r + 1] == '/')) {
            r++;
        } else if (p[r] == '.' && p[r + 1] == '.' && (r + 2 == n || p[r + 2] == '/')) {
            r += 2;
            clean_dotdot(out, rooted, &dotdot);
        } else {
            if (out->len != (rooted ? 1u : 0u)) buf_addc(out, '/');
            for (; r < n && p[r] != '/'; r++)
                buf_addc(out, p[r]);
        }
    }
    if (out->len == 0) buf_addc(out, '.');
}

/* Go's path.Join(a, b). */
static void path_join(const char *a, size_t an, const char *b, buf_t *out)
{
    buf_t tmp = {0};
    size_t bn = strlen(b);
    if (an == 0 && bn == 0) return;
    if (an) {
        buf_add(&tmp, a, an);
        buf_addc(&tmp, '/');
    }
    buf_add(&tmp, b, bn);
    if (tmp.oom)
        out->oom = true;
    else
        path_clean(tmp.p, tmp.len, out);
    free(tmp.p);
}

static void add_lower(buf_t *out, span_t s)
{
    for (size_t i = 0; i < s.n; i++) {
        char c = s.p[i];
        buf_addc(out, (char)(c >= 'A' && c <= 'Z' ? c + 32 : c));
    }
}

/* Appends the escaped form of a raw (escaped) part after decoding it. */
static void add_reescaped(buf_t *out, span_t raw, enc_t mode)
{
    buf_t dec = {0};
    unescape_into(raw, &dec);
    if (dec.oom)
        out->oom = true;
    else
        escape_into(dec.p ? dec.p : "", dec.len, mode, out);
    free(dec.p);
}

/* The "//userinfo@host" part of URL.String(). */
static void add_authority(buf_t *out, const url_t *u, bool has_host, size_t path_len)
{
    if (!u->scheme.n && !has_host && !u->has_user) return;
    if (has_host || path_len || u->has_user) buf_add(out, "//", 2);
    if (u->has_user) {
        add_reescaped(out, u->user, ENC_USER);
        if (u->has_pass) {
            buf_addc(out, ':');
            add_reescaped(out, u->pass, ENC_USER);
        }
        buf_addc(out, '@');
    }
    add_reescaped(out, u->host, ENC_HOST);
}

/* The path part of URL.String() for the decoded path p (EscapedPath of a changed Path). */
static void add_path(buf_t *out, const buf_t *p, bool has_host)
{
    buf_t ep = {0};
    const char *path = p->p ? p->p : "";
    if (strcmp(path, "*") == 0)
        buf_addc(&ep, '*');
    else
        escape_into(path, p->len, ENC_PATH, &ep);
    if (ep.len && ep.p[0] != '/' && has_host) buf_addc(out, '/');
    if (out->len == 0 && ep.len) {
        char *colon = memchr(ep.p, ':', ep.len);
        if (colon && !memchr(ep.p, '/', (size_t)(colon - ep.p))) buf_add(out, "./", 2);
    }
    if (ep.oom)
        out->oom = true;
    else
        buf_add(out, ep.p ? ep.p : "", ep.len);
    free(ep.p);
}

static void add_fragment(buf_t *out, span_t frag)
{
    buf_t dec = {0};
    unescape_into(frag, &dec);
    if (dec.len) {
        buf_addc(out, '#');
        if (valid_encoded(frag, ENC_FRAG))
            buf_add(out, frag.p, frag.n);
        else
            escape_into(dec.p, dec.len, ENC_FRAG, out);
    }
    if (dec.oom) out->oom = true;
    free(dec.p);
}

/* URL.String() of u with its Path replaced by path.Join(Path, elem). */
static char *url_string_joined(const url_t *u, span_t frag, const char *elem)
{
    buf_t out = {0}, host = {0}, path = {0}, joined = {0};
    add_lower(&out, u->scheme);
    if (u->scheme.n) buf_addc(&out, ':');
    if (u->opaque.n) {
        buf_add(&out, u->opaque.p, u->opaque.n);
    } else {
        unescape_into(u->host, &host);
        unescape_into(u->path, &path);
        path_join(path.p ? path.p : "", path.len, elem, &joined);
        add_authority(&out, u, host.len > 0, joined.len);
        add_path(&out, &joined, host.len > 0);
        if (host.oom || path.oom || joined.oom) out.oom = true;
    }
    if (u->force_query || u->query.n) {
        buf_addc(&out, '?');
        buf_add(&out, u->query.p, u->query.n);
    }
    add_fragment(&out, frag);
    free(host.p);
    free(path.p);
    free(joined.p);
    return buf_take(&out);
}

char *uri_join_path(const char *base, const char *elem)
{
    if (!base || !elem) return NULL;
    span_t all = {base, strlen(base)};
    long hash = span_index(all, '#');
    span_t before = hash < 0 ? all : span_upto(all, (size_t)hash);
    span_t frag = hash < 0 ? span_from(all, all.n) : span_from(all, (size_t)hash + 1);
    url_t u;
    buf_t why = {0};
    int rc = parse_url(before, false, &u, &why);
    if (rc == 0) rc = check_unescape(frag, ENC_FRAG, &why);
    free(why.p);
    return rc == 0 ? url_string_joined(&u, frag, elem) : NULL;
}

bool uri_is_http(const char *s)
{
    size_t n = strncasecmp(s, "http://", 7) == 0 ? 7 : strncasecmp(s, "https://", 8) == 0 ? 8 : 0;
    if (!n) return false;
    const char *host = s + n, *end = host + strcspn(host, "/?#");
    for (const char *p = host; p < end; p++)
        if (*p == '@') host = p + 1; /* the host follows the last '@' of the authority */
    return host < end && *host != ':';
}

void uri_hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

const char *uri_last_element(const char *path)
{
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        len--;
    const char *p = path + len;
    while (p > path && p[-1] != '/')
        p--;
    return p;
}
