/* strmap: a small open-addressing map from strings to counters. */
#ifndef DOWNLOADER_STRMAP_H
#define DOWNLOADER_STRMAP_H

#include <stddef.h>

typedef struct {
    char *key;
    long long value;
} strmap_entry_t;

typedef struct {
    strmap_entry_t *slots;
    size_t cap, used, live; /* used counts tombstones too */
} strmap_t;

/* Adds delta to key's value (creating it at 0) and returns the new value. An entry
 * that drops to 0 is removed. */
long long strmap_add(strmap_t *m, const char *key, long long delta);
long long strmap_get(const strmap_t *m, const char *key);
/* Number of keys with a non-zero value. */
size_t strmap_size(const strmap_t *m);
void strmap_free(strmap_t *m);

#endif
