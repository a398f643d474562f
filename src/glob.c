/* glob: Go 1.18 path.Match (== path/filepath.Match on Linux) and the mime_type list
 * rules of §6.6. Job validation calls glob_mime_list_valid on a request's mime_type;
 * the processor calls glob_mime_check with the type libmagic detected. Like Go 1.16+,
 * a failed match still scans the rest of the pattern, so a malformed pattern is always
 * reported as -1 whatever the name. Pure functions, no global state. */
#include "glob.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uri.h"

#define RUNE_ERROR 0xFFFDul

typedef struct {
    const char *p;
    size_t n;
} span_t;

static void adv(span_t *s, size_t k)
{
    s->p += k;
    s->n -= k;
}

/* Go's scanChunk: skips leading stars into *star and cuts the next star-free chunk
 * (stars inside a class do not count) off *pat. */
static span_t scan_chunk(span_t *pat, bool *star)
{
    bool inrange = false;
    size_t i;
    *star = false;
    while (pat->n && pat->p[0] == '*') {
        adv(pat, 1);
        *star = true;
    }
    for (i = 0; i < pat->n; i++) {
        char c = pat->p[i];
        if (c == '\\' && i + 1 < pat->n)
            i++;
        else if (c == '[')
            inrange = true;
        else if (c == ']')
            inrange = false;
        else if (c == '*' && !inrange)
            break;
    }
    span_t chunk = {pat->p, i};
    adv(pat, i);
    return chunk;
}

/* Go's getEsc: one possibly escaped class character; 0, or -1 for a bad pattern. */
static int get_esc(span_t *chunk, unsigned long *r)
{
    size_t w;
    if (chunk->n == 0 || chunk->p[0] == '-' || chunk->p[0] == ']') return -1;
    if (chunk->p[0] == '\\') {
        adv(chunk, 1);
        if (chunk->n == 0) return -1;
    }
    *r = uri_utf8_decode(chunk->p, chunk->n, &w);
    bool bad = *r == RUNE_ERROR && w == 1;
    adv(chunk, w);
    return bad || chunk->n == 0 ? -1 : 0;
}

/* A "[...]" class at the start of *chunk against rune r: 1 match, 0 none, -1 bad. */
static int match_class(span_t *chunk, unsigned long r)
{
    bool negated = false, match = false;
    int nrange = 0;
    adv(chunk, 1);
    if (chunk->n && chunk->p[0] == '^') {
        negated = true;
        adv(chunk, 1);
    }
    for (;;) {
        unsigned long lo, hi;
        if (chunk->n && chunk->p[0] == ']' && nrange > 0) {
            adv(chunk, 1);
            break;
        }
        if (get_esc(chunk, &lo)) return -1;
        hi = lo;
        if (chunk->p[0] == '-') {
            adv(chunk, 1);
            if (get_esc(chunk, &hi)) return -1;
        }
        if (lo <= r && r <= hi) match = true;
        nrange++;
    }
    return match != negated;
}

/* One pattern element at the start of *chunk against *s. Once failed is set the
 * element is only parsed (Go keeps checking the pattern). 0 or -1 (bad pattern). */
static int match_elem(span_t *chunk, span_t *s, bool *failed)
{
    size_t w = 1;
    unsigned long r = 0;
    char c = chunk->p[0];
    if (c == '[') {
        if (!*failed) r = uri_utf8_decode(s->p, s->n, &w);
        int m = match_class(chunk, r);
        if (m < 0) return -1;
        if (m == 0) *failed = true;
        if (!*failed) adv(s, w);
        return 0;
    }
    if (c == '?') {
        if (!*failed && s->p[0] == '/') *failed = true;
        if (!*failed) {
            uri_utf8_decode(s->p, s->n, &w);
            adv(s, w);
        }
        adv(chunk, 1);
        return 0;
    }
    if (c == '\\') {
        adv(chunk, 1);
        if (chunk->n == 0) return -1;
    }
    if (!*failed && chunk->p[0] != s->p[0]) *failed = true;
    if (!*failed) adv(s, 1);
    adv(chunk, 1);
    return 0;
}

/* Go's matchChunk: 1 when chunk matches a prefix of s (*rest = what is left), 0 when
 * not, -1 for a bad pattern. */
static int match_chunk(span_t chunk, span_t s, span_t *rest)
{
    bool failed = false;
    while (chunk.n) {
        if (!failed && s.n == 0) failed = true;
        if (match_elem(&chunk, &s, &failed)) return -1;
    }
    if (failed) return 0;
    *rest = s;
    return 1;
}

/* After a failed match: -1 if the rest of the pattern is malformed, else 0. */
static int check_rest(span_t pat)
{
    span_t dummy, empty = {"", 0};
    while (pat.n) {
        bool star;
        span_t chunk = scan_chunk(&pat, &star);
        if (match_chunk(chunk, empty, &dummy) < 0) return -1;
    }
    return 0;
}

/* The star before chunk swallows 1.. non-'/' bytes: 1 (name advanced), 0, -1. */
static int match_after_star(span_t chunk, bool last, span_t *name)
{
    for (size_t i = 0; i < name->n && name->p[i] != '/'; i++) {
        span_t t, sub = {name->p + i + 1, name->n - i - 1};
        int rc = match_chunk(chunk, sub, &t);
        if (rc < 0) return -1;
        if (rc == 0 || (last && t.n > 0)) continue;
        *name = t;
        return 1;
    }
    return 0;
}

int glob_match(const char *pattern, size_t plen, const char *name, size_t nlen)
{
    span_t pat = {pattern, plen}, s = {name, nlen};
    while (pat.n) {
        bool star;
        span_t t, chunk = scan_chunk(&pat, &star);
        if (star && chunk.n == 0) return s.n && memchr(s.p, '/', s.n) ? 0 : 1;
        int rc = match_chunk(chunk, s, &t);
        if (rc == 1 && (t.n == 0 || pat.n > 0)) {
            s = t;
            continue;
        }
        if (rc < 0) return -1;
        if (star) {
            rc = match_after_star(chunk, pat.n == 0, &s);
            if (rc < 0) return -1;
            if (rc > 0) continue;
        }
        return check_rest(pat);
    }
    return s.n == 0;
}

/* ---- mime_type lists (§6.6) ---- */

/* Go's unicode.IsSpace. */
static bool is_space_rune(unsigned long r)
{
    if (r == ' ' || (r >= '\t' && r <= '\r') || r == 0x85 || r == 0xA0) return true;
    return r == 0x1680 || (r >= 0x2000 && r <= 0x200A) || r == 0x2028 || r == 0x2029 ||
           r == 0x202F || r == 0x205F || r == 0x3000;
}

/* Go's strings.TrimSpace of s. */
static span_t trim_space(span_t s)
{
    size_t w, end = 0, start = s.n;
    for (size_t i = 0; i < s.n; i += w) {
        unsigned long r = uri_utf8_decode(s.p + i, s.n - i, &w);
        if (is_space_rune(r)) continue;
        if (start == s.n) start = i;
        end = i + w;
    }
    if (start == s.n) return (span_t){s.p, 0};
    return (span_t){s.p + start, end - start};
}

/* The next comma-separated entry of *list (trimmed); false when the list is used up. */
static bool next_entry(span_t *list, bool *more, span_t *entry)
{
    if (!*more) return false;
    const char *comma = list->n ? memchr(list->p, ',', list->n) : NULL;
    size_t n = comma ? (size_t)(comma - list->p) : list->n;
    *entry = trim_space((span_t){list->p, n});
    *more = comma != NULL;
    adv(list, comma ? n + 1 : n);
    return true;
}

/* Splits a leading '!' off an entry. */
static span_t entry_check(span_t entry, bool *negate)
{
    *negate = entry.n && entry.p[0] == '!';
    if (*negate) adv(&entry, 1);
    return entry;
}

bool glob_mime_list_valid(const char *list, char *err, size_t errlen)
{
    span_t rest = {list ? list : "", list ? strlen(list) : 0}, entry;
    bool more = true, negate;
    while (next_entry(&rest, &more, &entry)) {
        span_t check = entry_check(entry, &negate);
        if (glob_match(check.p, check.n, "*", 1) >= 0) continue;
        if (err && errlen) {
            char *q = uri_quote(entry.p, entry.n);
            snprintf(err, errlen, "Invalid MimeType Pattern, %s", q ? q : "\"\"");
            free(q);
        }
        return false;
    }
    return true;
}

int glob_mime_check(const char *list, const char *detected, char *err, size_t errlen)
{
    span_t rest = {list ? list : "", list ? strlen(list) : 0}, entry;
    const char *found = detected ? detected : "";
    bool more = true, negate;
    while (next_entry(&rest, &more, &entry)) {
        span_t check = entry_check(entry, &negate);
        bool match = glob_match(check.p, check.n, found, strlen(found)) == 1;
        if (match != negate) continue;
        if (err && errlen && negate)
            snprintf(err, errlen, "Expected mime-type not to be (%.*s) found - (%s)", (int)check.n,
                     check.p, found);
        else if (err && errlen)
            snprintf(err, errlen, "Expected mime-type to be (%.*s), found (%s)", (int)check.n,
                     check.p, found);
        return -1;
    }
    return 0;
}
