/* fuzz_glob: libFuzzer target for glob_match (Go path.Match), glob_mime_list_valid and
 * glob_mime_check (the mime_type list rules). Input: "<pattern or list>\n<name or
 * detected type>"; every function sees the same two strings. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "glob.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const char *nl = memchr(text, '\n', size);
    size_t plen = nl ? (size_t)(nl - text) : size;
    size_t nlen = nl ? size - plen - 1 : 0;
    char *pattern = strndup(text, plen);
    char *name = strndup(nl ? nl + 1 : "", nlen);
    if (!pattern || !name) abort();
    char err[512];
    /* exact lengths (NULs included) for glob_match, C strings for the list functions */
    glob_match(text, plen, nl ? nl + 1 : "", nlen);
    glob_match(pattern, strlen(pattern), name, strlen(name));
    glob_mime_list_valid(pattern, err, sizeof err);
    glob_mime_check(pattern, name, err, sizeof err);
    glob_mime_check(pattern, name, err, 8); /* a short message buffer */
    free(pattern);
    free(name);
    return 0;
}
