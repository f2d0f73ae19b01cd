/*
 * A growable byte buffer with a read offset, for accumulating bytes from a
 * peer and consuming them from the front.  Growth is bounded by a limit set
 * by the owner, so a peer can never make it grow without bound.
 */
#ifndef MCPTUN_BUF_H
#define MCPTUN_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t	*data;
	size_t	 off;	/* first unread byte */
	size_t	 len;	/* end of valid bytes; unread = len - off */
	size_t	 cap;
	size_t	 limit;	/* 0 = unlimited; else max unread bytes */
};

/* Initialises an empty buffer that may hold at most limit unread bytes. */
void buf_init(struct buf *b, size_t limit);
/* Frees the storage; the struct may be reused after buf_init. */
void buf_free(struct buf *b);
/* Number of unread bytes. */
static inline size_t buf_len(const struct buf *b) { return b->len - b->off; }
/* Pointer to the first unread byte (valid until the next append). */
static inline const uint8_t *buf_ptr(const struct buf *b) { return b->data + b->off; }
/* Appends n bytes; MT_ETOOBIG past the limit, MT_ENOMEM; 0 on success. */
int buf_append(struct buf *b, const void *p, size_t n);
/* Appends a NUL-terminated string (without the NUL). */
int buf_puts(struct buf *b, const char *s);
/* Ensures room for n more bytes and returns a pointer to it, or NULL. */
uint8_t *buf_reserve(struct buf *b, size_t n);
/* Marks n reserved bytes as written. */
void buf_commit(struct buf *b, size_t n);
/* Drops n bytes from the front. */
void buf_consume(struct buf *b, size_t n);
/* Drops everything. */
void buf_reset(struct buf *b);
/*
 * Hands the unread bytes to the caller as a malloc'd, NUL-terminated block
 * (length in *lenp) and leaves the buffer empty.  NULL if empty.
 */
uint8_t *buf_take(struct buf *b, size_t *lenp);

#endif
