/*
 * Counters for /metrics; see metrics.h.  The histogram uses fixed buckets
 * from 5 ms to 5 min, which covers a quick tools/list and a long query.
 * Prometheus buckets are cumulative: a sample counts in every bucket
 * whose bound is at least its value, and in +Inf.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "relay/metrics.h"

static const char *const outcome_names[MO_COUNT] = {
	[MO_OK] = "ok",
	[MO_BAD_REQUEST] = "bad_request",
	[MO_UNAUTHORIZED] = "unauthorized",
	[MO_FORBIDDEN] = "forbidden",
	[MO_NOT_FOUND] = "not_found",
	[MO_TOO_LARGE] = "too_large",
	[MO_LIMITED] = "limited",
	[MO_UNAVAILABLE] = "unavailable",
	[MO_UPSTREAM_ERROR] = "upstream_error",
	[MO_TIMEOUT] = "timeout",
	[MO_CANCELLED] = "cancelled",
};

/* Bucket bounds in milliseconds, ascending; +Inf is implicit. */
static const uint64_t bucket_ms[] = {
	5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000,
	60000, 120000, 300000
};
#define NBUCKETS	(sizeof(bucket_ms) / sizeof(bucket_ms[0]))

static struct {
	uint64_t	requests[MO_COUNT];
	uint64_t	bytes[MD_COUNT];
	uint64_t	buckets[NBUCKETS];	/* not cumulative */
	uint64_t	count;
	uint64_t	sum_ms;
} m;

void
metrics_request(enum metrics_outcome o)
{
	if ((unsigned)o < MO_COUNT)
		m.requests[o]++;
}

void
metrics_bytes(enum metrics_dir d, uint64_t n)
{
	if ((unsigned)d < MD_COUNT)
		m.bytes[d] += n;
}

void
metrics_observe_ms(uint64_t ms)
{
	size_t i;

	for (i = 0; i < NBUCKETS; i++) {
		if (ms <= bucket_ms[i]) {
			m.buckets[i]++;
			break;
		}
	}
	m.count++;
	m.sum_ms += ms;
}

const char *
metrics_outcome_name(enum metrics_outcome o)
{
	if ((unsigned)o >= MO_COUNT)
		return "unknown";
	return outcome_names[o];
}

void
metrics_reset(void)
{
	memset(&m, 0, sizeof(m));
}

static int put(struct buf *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static int
put(struct buf *out, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line))
		return MT_EINVAL;
	return buf_append(out, line, (size_t)n);
}

int
metrics_render(struct buf *out, uint64_t tunnels_connected, uint64_t sessions,
    uint64_t streams, uint64_t bytes_to_tunnels, uint64_t bytes_from_tunnels,
    uint64_t link_accepts, uint64_t link_rejects, uint64_t early_closes)
{
	uint64_t cum = 0;
	size_t i;
	int r = 0;

#define P(...) do { if ((r = put(out, __VA_ARGS__)) != 0) goto out; } while (0)
	P("# HELP mcptun_tunnels_connected Tunnels whose client link is up.\n");
	P("# TYPE mcptun_tunnels_connected gauge\n");
	P("mcptun_tunnels_connected %" PRIu64 "\n", tunnels_connected);
	P("# HELP mcptun_sessions Live agent MCP sessions.\n");
	P("# TYPE mcptun_sessions gauge\n");
	P("mcptun_sessions %" PRIu64 "\n", sessions);
	P("# HELP mcptun_streams Open tunnel streams, all tunnels.\n");
	P("# TYPE mcptun_streams gauge\n");
	P("mcptun_streams %" PRIu64 "\n", streams);
	P("# HELP mcptun_link_accepts_total Tunnel links accepted.\n");
	P("# TYPE mcptun_link_accepts_total counter\n");
	P("mcptun_link_accepts_total %" PRIu64 "\n", link_accepts);
	P("# HELP mcptun_link_rejects_total Tunnel links refused.\n");
	P("# TYPE mcptun_link_rejects_total counter\n");
	P("mcptun_link_rejects_total %" PRIu64 "\n", link_rejects);
	P("# HELP mcptun_tunnel_port_early_closes_total Connections to the "
	    "tunnel listener that ended before a request (failed TLS "
	    "handshakes, TCP probes).\n");
	P("# TYPE mcptun_tunnel_port_early_closes_total counter\n");
	P("mcptun_tunnel_port_early_closes_total %" PRIu64 "\n", early_closes);

	P("# HELP mcptun_requests_total Agent HTTP requests by outcome.\n");
	P("# TYPE mcptun_requests_total counter\n");
	for (i = 0; i < MO_COUNT; i++)
		P("mcptun_requests_total{outcome=\"%s\"} %" PRIu64 "\n",
		    outcome_names[i], m.requests[i]);

	P("# HELP mcptun_bytes_total Bytes carried, by direction.\n");
	P("# TYPE mcptun_bytes_total counter\n");
	P("mcptun_bytes_total{direction=\"from_agents\"} %" PRIu64 "\n",
	    m.bytes[MD_FROM_AGENTS]);
	P("mcptun_bytes_total{direction=\"to_agents\"} %" PRIu64 "\n",
	    m.bytes[MD_TO_AGENTS]);
	P("mcptun_bytes_total{direction=\"to_tunnels\"} %" PRIu64 "\n",
	    bytes_to_tunnels);
	P("mcptun_bytes_total{direction=\"from_tunnels\"} %" PRIu64 "\n",
	    bytes_from_tunnels);

	P("# HELP mcptun_request_duration_seconds Time from an agent's "
	    "JSON-RPC request to its answer.\n");
	P("# TYPE mcptun_request_duration_seconds histogram\n");
	for (i = 0; i < NBUCKETS; i++) {
		cum += m.buckets[i];
		P("mcptun_request_duration_seconds_bucket{le=\"%" PRIu64
		    ".%03" PRIu64 "\"} %" PRIu64 "\n", bucket_ms[i] / 1000,
		    bucket_ms[i] % 1000, cum);
	}
	P("mcptun_request_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n",
	    m.count);
	P("mcptun_request_duration_seconds_sum %" PRIu64 ".%03" PRIu64 "\n",
	    m.sum_ms / 1000, m.sum_ms % 1000);
	P("mcptun_request_duration_seconds_count %" PRIu64 "\n", m.count);
#undef P
 out:
	return r;
}
