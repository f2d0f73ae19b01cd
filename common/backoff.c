/* Reconnect backoff with jitter; see backoff.h. */
#include "common/backoff.h"

#include <stdlib.h>

#define BACKOFF_FAST	3

void
backoff_init(struct backoff *b, uint64_t min_ms, uint64_t max_ms)
{
	b->min_ms = min_ms ? min_ms : 1;
	b->max_ms = max_ms < b->min_ms ? b->min_ms : max_ms;
	b->attempt = 0;
}

static uint64_t
backoff_jitter(uint64_t range)
{
	/* Jitter only spreads reconnects apart; it need not be secret. */
	return range ? (uint64_t)random() % (range + 1) : 0;
}

uint64_t
backoff_next(struct backoff *b)
{
	uint64_t d;
	unsigned n;

	if (b->attempt < BACKOFF_FAST) {
		b->attempt++;
		d = b->min_ms + backoff_jitter(b->min_ms / 2);
		return d > b->max_ms ? b->max_ms : d;
	}
	n = b->attempt - BACKOFF_FAST + 1;
	b->attempt++;
	d = b->min_ms;
	while (n-- > 0 && d < b->max_ms)
		d *= 2;
	if (d > b->max_ms)
		d = b->max_ms;
	return d / 2 + backoff_jitter(d / 2);
}

void
backoff_reset(struct backoff *b)
{
	b->attempt = 0;
}
