/* Growable byte buffer; see buf.h. */
#include "common/buf.h"
#include "common/err.h"

#include <stdlib.h>
#include <string.h>

void
buf_init(struct buf *b, size_t limit)
{
	memset(b, 0, sizeof(*b));
	b->limit = limit;
}

void
buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->off = b->len = b->cap = 0;
}

uint8_t *
buf_reserve(struct buf *b, size_t n)
{
	size_t unread = b->len - b->off, need, ncap;
	uint8_t *p;

	if (b->limit && (n > b->limit || unread > b->limit - n))
		return NULL;
	if (b->cap - b->len >= n)
		return b->data + b->len;
	/* Slide unread bytes to the front before growing. */
	if (b->off > 0) {
		memmove(b->data, b->data + b->off, unread);
		b->off = 0;
		b->len = unread;
		if (b->cap - b->len >= n)
			return b->data + b->len;
	}
	if (unread > SIZE_MAX - n - 1)
		return NULL;
	need = unread + n + 1;	/* room for a NUL for buf_take */
	ncap = b->cap ? b->cap : 256;
	while (ncap < need)
		ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
	if ((p = realloc(b->data, ncap)) == NULL)
		return NULL;
	b->data = p;
	b->cap = ncap;
	return b->data + b->len;
}

void
buf_commit(struct buf *b, size_t n)
{
	b->len += n;
}

int
buf_append(struct buf *b, const void *p, size_t n)
{
	uint8_t *dst;

	if (n == 0)
		return 0;
	if (b->limit && (n > b->limit || buf_len(b) > b->limit - n))
		return MT_ETOOBIG;
	if ((dst = buf_reserve(b, n)) == NULL)
		return MT_ENOMEM;
	memcpy(dst, p, n);
	b->len += n;
	return 0;
}

int
buf_puts(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

void
buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len - b->off) {
		b->off = b->len = 0;
		return;
	}
	b->off += n;
}

void
buf_reset(struct buf *b)
{
	b->off = b->len = 0;
}

uint8_t *
buf_take(struct buf *b, size_t *lenp)
{
	size_t n = buf_len(b);
	uint8_t *p;

	if (n == 0)
		return NULL;
	if (b->off > 0)
		memmove(b->data, b->data + b->off, n);
	if (b->cap < n + 1) {
		if ((p = realloc(b->data, n + 1)) == NULL)
			return NULL;
		b->data = p;
	}
	p = b->data;
	p[n] = '\0';
	*lenp = n;
	b->data = NULL;
	b->off = b->len = b->cap = 0;
	return p;
}
