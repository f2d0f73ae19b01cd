/*
 * uint32 -> pointer hash map (open addressing, linear probing, tombstones).
 * Deleted slots keep their key with a NULL value marked by a tombstone
 * bit so probe chains stay intact; the table is rebuilt when tombstones
 * pile up.
 */
#include "common/u32map.h"
#include "common/xmalloc.h"

#include <stdlib.h>
#include <string.h>

/* A slot whose key is set and whose value is this marker was deleted. */
static char u32map_tomb;
#define TOMB ((void *)&u32map_tomb)

static size_t
u32map_slot(uint32_t key, size_t cap)
{
	uint32_t h = key * 2654435761u;

	return (size_t)(h ^ (h >> 16)) & (cap - 1);
}

void
u32map_init(struct u32map *m)
{
	memset(m, 0, sizeof(*m));
}

void
u32map_free(struct u32map *m)
{
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof(*m));
}

static void
u32map_rehash(struct u32map *m, size_t ncap)
{
	struct u32map n;
	size_t i, j;

	n.cap = ncap;
	n.keys = xcalloc(ncap, sizeof(*n.keys));
	n.vals = xcalloc(ncap, sizeof(*n.vals));
	n.count = n.used = 0;
	for (i = 0; i < m->cap; i++) {
		if (m->keys[i] == 0 || m->vals[i] == TOMB)
			continue;
		j = u32map_slot(m->keys[i], ncap);
		while (n.keys[j] != 0)
			j = (j + 1) & (ncap - 1);
		n.keys[j] = m->keys[i];
		n.vals[j] = m->vals[i];
		n.count++;
		n.used++;
	}
	free(m->keys);
	free(m->vals);
	*m = n;
}

void *
u32map_get(const struct u32map *m, uint32_t key)
{
	size_t i;

	if (m->cap == 0 || key == 0)
		return NULL;
	i = u32map_slot(key, m->cap);
	while (m->keys[i] != 0) {
		if (m->keys[i] == key)
			return m->vals[i] == TOMB ? NULL : m->vals[i];
		i = (i + 1) & (m->cap - 1);
	}
	return NULL;
}

void
u32map_put(struct u32map *m, uint32_t key, void *val)
{
	size_t i;

	if (key == 0)
		return;
	if (m->cap == 0 || (m->used + 1) * 4 > m->cap * 3)
		u32map_rehash(m, m->cap == 0 ? 16 :
		    (m->count + 1) * 2 > m->cap ? m->cap * 2 : m->cap);
	i = u32map_slot(key, m->cap);
	while (m->keys[i] != 0) {
		if (m->keys[i] == key) {
			if (m->vals[i] == TOMB)
				m->count++;
			m->vals[i] = val;
			return;
		}
		i = (i + 1) & (m->cap - 1);
	}
	m->keys[i] = key;
	m->vals[i] = val;
	m->count++;
	m->used++;
}

void *
u32map_del(struct u32map *m, uint32_t key)
{
	size_t i;
	void *v;

	if (m->cap == 0 || key == 0)
		return NULL;
	i = u32map_slot(key, m->cap);
	while (m->keys[i] != 0) {
		if (m->keys[i] == key) {
			if (m->vals[i] == TOMB)
				return NULL;
			v = m->vals[i];
			m->vals[i] = TOMB;
			m->count--;
			return v;
		}
		i = (i + 1) & (m->cap - 1);
	}
	return NULL;
}

int
u32map_next(const struct u32map *m, size_t *pos, uint32_t *key, void **val)
{
	while (*pos < m->cap) {
		size_t i = (*pos)++;

		if (m->keys[i] != 0 && m->vals[i] != TOMB) {
			*key = m->keys[i];
			*val = m->vals[i];
			return 1;
		}
	}
	return 0;
}
