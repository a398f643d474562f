/* glob: Go path.Match glob semantics, pattern validation, and the mime_type
 * pattern-list rules of §6.6 (comma list, trimmed entries, `!` negation, AND). */
#ifndef DOWNLOADER_GLOB_H
#define DOWNLOADER_GLOB_H

#include <stdbool.h>
#include <stddef.h>

/* 1 match, 0 no match, -1 malformed pattern (Go's ErrBadPattern). Whole-string match;
 * `*` and `?` never match '/'. */
int glob_match(const char *pattern, size_t plen, const char *name, size_t nlen);

/* True when every entry of a comma-separated mime_type list is a valid pattern. On
 * failure writes `Invalid MimeType Pattern, "<entry as written>"` into err. */
bool glob_mime_list_valid(const char *list, char *err, size_t errlen);

/* Checks a detected MIME type against a mime_type list. 0 when every entry holds;
 * otherwise -1 with the first failing entry's message in err:
 * `Expected mime-type to be (<entry>), found (<detected>)` or
 * `Expected mime-type not to be (<entry>) found - (<detected>)`. */
int glob_mime_check(const char *list, const char *detected, char *err, size_t errlen);

#endif
