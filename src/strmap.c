/* strmap: string-keyed counters with linear probing and tombstones; used for
 * per-aggregation bookkeeping inside one process. */
#include "strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static char tombstone[1];

static size_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (size_t)h;
}

static strmap_entry_t *find(const strmap_t *m, const char *key, strmap_entry_t **free_slot)
{
    *free_slot = NULL;
    if (!m->cap) return NULL;
    for (size_t i = hash(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        strmap_entry_t *e = &m->slots[i];
        if (!e->key) {
            if (!*free_slot) *free_slot = e;
            return NULL;
        }
        if (e->key == tombstone) {
            if (!*free_slot) *free_slot = e;
        } else if (strcmp(e->key, key) == 0) {
            return e;
        }
    }
}

static void grow(strmap_t *m)
{
    strmap_t n = {calloc(m->cap ? m->cap * 2 : 64, sizeof *n.slots), m->cap ? m->cap * 2 : 64, 0,
                  0};
    for (size_t i = 0; i < m->cap; i++) {
        strmap_entry_t *e = &m->slots[i], *slot;
        if (!e->key || e->key == tombstone) continue;
        find(&n, e->key, &slot);
        *slot = *e;
        n.used++;
        n.live++;
    }
    free(m->slots);
    *m = n;
}

long long strmap_add(strmap_t *m, const char *key, long long delta)
{
    if ((m->used + 1) * 4 >= m->cap * 3) grow(m);
    strmap_entry_t *slot, *e = find(m, key, &slot);
    if (!e) {
        if (delta == 0) return 0;
        if (!slot->key) m->used++;
        slot->key = strdup(key);
        slot->value = 0;
        m->live++;
        e = slot;
    }
    e->value += delta;
    long long v = e->value;
    if (v == 0) {
        free(e->key);
        e->key = tombstone;
        m->live--;
    }
    return v;
}

long long strmap_get(const strmap_t *m, const char *key)
{
    strmap_entry_t *slot, *e = find(m, key, &slot);
    return e ? e->value : 0;
}

size_t strmap_size(const strmap_t *m)
{
    return m->live;
}

void strmap_free(strmap_t *m)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key && m->slots[i].key != tombstone) free(m->slots[i].key);
    free(m->slots);
    memset(m, 0, sizeof *m);
}
