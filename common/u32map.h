/*
 * A small hash map from uint32_t keys (stream ids) to pointers, with
 * open addressing and linear probing.  Keys must not be 0.
 */
#ifndef MCPTUN_U32MAP_H
#define MCPTUN_U32MAP_H

#include <stddef.h>
#include <stdint.h>

struct u32map {
	uint32_t *keys;		/* 0 = empty slot */
	void	**vals;
	size_t	  cap;		/* power of two */
	size_t	  count;
	size_t	  used;		/* count + tombstones */
};

void u32map_init(struct u32map *m);
void u32map_free(struct u32map *m);
/* Returns the value for key, or NULL. */
void *u32map_get(const struct u32map *m, uint32_t key);
/* Sets key to val (replacing); aborts on OOM. */
void u32map_put(struct u32map *m, uint32_t key, void *val);
/* Removes key; returns its value or NULL. */
void *u32map_del(struct u32map *m, uint32_t key);
/*
 * Iteration: *pos starts at 0; returns 1 and sets key and val for the next
 * entry, 0 at the end.  Do not insert while iterating (deleting the
 * current entry is fine).
 */
int u32map_next(const struct u32map *m, size_t *pos, uint32_t *key,
    void **val);

#endif
