/*
 * The relay's counters for /metrics (Prometheus text format 0.0.4):
 * requests by outcome, bytes by direction and the duration of JSON-RPC
 * requests answered through the agent-facing endpoint.  Plain counters in
 * one process-wide struct: the relay is single-threaded.
 */
#ifndef MCPTUN_METRICS_H
#define MCPTUN_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct buf;

/* The outcome of one agent HTTP request (a label of requests_total). */
enum metrics_outcome {
	MO_OK = 0,		/* answered by the upstream, or accepted */
	MO_BAD_REQUEST,		/* 400, 405, 406, 409, 411, 415 */
	MO_UNAUTHORIZED,	/* 401 */
	MO_FORBIDDEN,		/* 403 */
	MO_NOT_FOUND,		/* 404 (path, tunnel, server, session) */
	MO_TOO_LARGE,		/* 413 */
	MO_LIMITED,		/* 429 or 503 for a session limit */
	MO_UNAVAILABLE,		/* tunnel offline, session ended, shutdown */
	MO_UPSTREAM_ERROR,	/* the upstream refused or failed */
	MO_TIMEOUT,		/* no answer within request_timeout */
	MO_CANCELLED,		/* the agent hung up before the answer */
	MO_COUNT
};

enum metrics_dir {
	MD_FROM_AGENTS = 0,	/* request bodies */
	MD_TO_AGENTS,		/* response bodies and SSE events */
	MD_COUNT
};

/* Counts one finished request with outcome o. */
void	metrics_request(enum metrics_outcome o);
/* Adds n bytes in direction d. */
void	metrics_bytes(enum metrics_dir d, uint64_t n);
/* Records the duration of one JSON-RPC request, in milliseconds. */
void	metrics_observe_ms(uint64_t ms);
/* Returns the label value for o ("ok", "timeout", ...). */
const char *metrics_outcome_name(enum metrics_outcome o);

/*
 * Appends the whole exposition to out: the counters above plus the
 * gauges given (tunnels connected, agent sessions) and the tunnel link
 * counters.  Returns 0 or MT_ENOMEM / MT_ETOOBIG from the buffer.
 */
int	metrics_render(struct buf *out, uint64_t tunnels_connected,
	    uint64_t sessions, uint64_t streams, uint64_t bytes_to_tunnels,
	    uint64_t bytes_from_tunnels, uint64_t link_accepts,
	    uint64_t link_rejects, uint64_t early_closes);

/* Clears every counter (unit tests). */
void	metrics_reset(void);

#endif
