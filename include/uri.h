/* uri: Go url.ParseRequestURI-compatible check (§3.7 of the reference). */
#ifndef DOWNLOADER_URI_H
#define DOWNLOADER_URI_H

#include <stdbool.h>
#include <stddef.h>

/* Returns 0 when s passes, -1 otherwise with Go's error text in err, e.g.
 * `parse "": empty url`, `parse "foo": invalid URI for request`,
 * `parse "http://a b": invalid character " " in host name`. */
int uri_check_request(const char *s, char *err, size_t errlen);

/* Ours: does s start with http:// or https:// (scheme in any case) and a non-empty
 * host? What the service can fetch or post to; anything else never succeeds. */
bool uri_is_http(const char *s);

/* Go url.Parse(base), then Path = path.Join(Path, elem), then URL.String(): the
 * download_url rule of §7.4 (path cleaned and re-escaped, query and fragment kept).
 * Returns a malloc'd string, NULL when base does not parse (or out of memory). */
char *uri_join_path(const char *base, const char *elem);

/* Go text helpers shared with glob and job for Go-compatible error texts. */

/* strconv.Quote of the n bytes at s (as printed by %q and %#v): malloc'd, NULL on OOM. */
char *uri_quote(const char *s, size_t n);

/* utf8.DecodeRune: the rune at s[0..n) and its width in *w; an invalid or truncated
 * sequence gives 0xFFFD with width 1 (width 0 when n is 0). */
unsigned long uri_utf8_decode(const char *s, size_t n, size_t *w);

/* Lowercase hex of the n bytes at in into out (2n + 1 bytes, NUL-terminated): digests
 * as the job hash and the Idempotency-Key record keep them. */
void uri_hex(const unsigned char *in, size_t n, char *out);

/* Where the last '/'-separated element of path starts (trailing slashes are skipped,
 * so it may run on to them): how the reference takes the id of /retry/<id> and the
 * name of /stats/<name>. */
const char *uri_last_element(const char *path);

#endif
