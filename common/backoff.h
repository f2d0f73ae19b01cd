/*
 * Reconnect delays: a few fast retries, then exponential growth with
 * jitter up to a ceiling, never giving up.
 */
#ifndef MCPTUN_BACKOFF_H
#define MCPTUN_BACKOFF_H

#include <stdint.h>

struct backoff {
	uint64_t min_ms;
	uint64_t max_ms;
	unsigned attempt;	/* failures since the last success */
};

/* Sets the range; attempt starts at 0. */
void backoff_init(struct backoff *b, uint64_t min_ms, uint64_t max_ms);
/*
 * Returns the delay before the next attempt and counts one failure.  The
 * first three attempts wait min_ms (+ up to 50% jitter); after that the
 * delay doubles per attempt, with "equal jitter" (half fixed, half random),
 * capped at max_ms.
 */
uint64_t backoff_next(struct backoff *b);
/* A connection succeeded: start again from the fast retries. */
void backoff_reset(struct backoff *b);

#endif
