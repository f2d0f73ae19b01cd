/*
 * The agent-facing side of the relay: MCP Streamable HTTP (2025-03-26,
 * 2025-06-18, 2025-11-25) on /mcp/<tunnel>/<server> and on the merged
 * endpoint /mcp/<tunnel>, plus /healthz and /metrics.
 *
 * Two kinds of object live here.  An MCP session (struct mcps) is created
 * by an initialize POST, is named by a random 128-bit Mcp-Session-Id, is
 * bound to the agent that created it and owns one tunnel stream; it lives
 * in a table and outlives any one HTTP connection.  An HTTP exchange
 * (struct hconn) is one request on one lws connection: a POST waiting for
 * the upstream's answer, the session's GET stream, or a plain answer.
 * Exchanges that wait register themselves with their session and
 * unregister when lws drops them; a session that ends detaches all of its
 * exchanges at once, and is freed later from a timer, never inside the
 * callback that ended it (as tmux does with its clients).
 *
 * Every request is authenticated with the agent's bearer token and checked
 * against the agent's allowlist; a session id is never proof of identity,
 * so a session of another agent answers 404 like an unknown one.
 *
 * Answers are written on LWS_CALLBACK_HTTP_WRITEABLE, one lws_write per
 * callback and at most HTTP_WRITE_CHUNK bytes at a time.  When an agent
 * does not read and more than HTTP_PAUSE_AT bytes wait for it, the tunnel
 * stream is paused until the backlog drains below HTTP_RESUME_AT.
 */
#include <libwebsockets.h>

#include <sys/queue.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/jsonrpc.h"
#include "common/log.h"
#include "common/token.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "proto/frame.h"
#include "relay/mcp_route.h"
#include "relay/metrics.h"
#include "relay/relay.h"
#include "relay/relay_conf.h"

/* Two full TLS records (see TLS_RECORD_DATA). */
#define HTTP_WRITE_CHUNK	(2 * TLS_RECORD_DATA)
#define HTTP_PAUSE_AT		(1024 * 1024)
#define HTTP_RESUME_AT		(256 * 1024)
#define HTTP_BACKLOG_MAX	64		/* messages kept for a GET */
#define HTTP_BACKLOG_BYTES	(1024 * 1024)
#define HTTP_DISCARD_MAX	(64ULL * 1024 * 1024)
#define HTTP_SWEEP_US		(1 * LWS_USEC_PER_SEC)
#define HTTP_HDR_MAX		4096		/* longest header we copy */
#define SESSION_ID_BYTES	16
#define SESSION_ID_LEN		(2 * SESSION_ID_BYTES)
#define JRPC_CANCELLED		-32800		/* as LSP: request cancelled */

enum hc_method { HM_OTHER = 0, HM_GET, HM_POST, HM_DELETE, HM_OPTIONS };

enum hc_state {
	HC_NEW = 0,	/* headers being checked */
	HC_BODY,	/* reading a POST body */
	HC_WAIT,	/* a request went upstream; waiting for its answer */
	HC_STREAM,	/* the session's GET stream */
	HC_RESPOND,	/* the answer is decided and being written */
	HC_DONE		/* the transaction is over */
};

struct mcps;

/* One HTTP exchange: a request and its answer. */
struct hconn {
	struct lws		*wsi;
	enum hc_state		 state;
	enum hc_method		 method;
	struct mcp_route	 route;
	char			*agent;		/* authenticated agent */
	char			 sid[SESSION_ID_LEN + 1]; /* request's, or "" */
	char			*origin;	/* allowed Origin, for CORS */
	int			 want_sse;	/* Accept asks for SSE */
	uint64_t		 content_length;
	struct buf		 body;
	uint64_t		 t0_ms;

	/* Registration with a session. */
	struct mcps		*sess;
	TAILQ_ENTRY(hconn)	 entry;
	int			 paused;	/* counted in sess->npaused */

	/* The request waiting for an answer (idkey != NULL). */
	json_t			*req_id;
	char			*idkey;
	char			*progkey;
	int			 is_init;

	/* The answer. */
	int			 status;
	const char		*ctype;		/* NULL: no body */
	int			 sse;		/* an event stream */
	int			 hdrs_ready;	/* status and type decided */
	int			 hdrs_sent;
	int			 chunk_end;	/* SSE: the last chunk went out */
	int			 final;		/* out holds all that is left */
	int			 close_after;
	int			 www_auth;	/* 1 missing, 2 invalid token */
	const char		*allow;
	int			 preflight;
	int			 retry_after;	/* seconds, 0 = none */
	char			 set_sid[SESSION_ID_LEN + 1];
	struct buf		 out;
	enum metrics_outcome	 outcome;
	int			 uncounted;	/* /healthz, /metrics */

	lws_sorted_usec_list_t	 sul_timeout;
	lws_sorted_usec_list_t	 sul_keepalive;
};

/* What lws keeps per connection: the exchange is heap-allocated. */
struct hc_slot {
	struct hconn		*hc;
};

/* A message kept for the next GET stream. */
struct qmsg {
	TAILQ_ENTRY(qmsg)	 entry;
	size_t			 len;
	char			 data[];
};

/* One MCP session. */
struct mcps {
	char			 id[SESSION_ID_LEN + 1];
	char			*agent;
	char			*tunnel;
	char			*server;	/* "*" for the merged endpoint */
	struct tunnel		*t;
	uint32_t		 stream;
	int			 live;		/* the stream is ours to close */
	int			 opened;	/* OPEN_OK seen */
	int			 dead;
	int			 npaused;
	uint64_t		 last_ms;
	TAILQ_HEAD(hconn_list, hconn) conns;	/* oldest first */
	struct hconn		*get;
	TAILQ_HEAD(, qmsg)	 backlog;
	size_t			 nbacklog;
	size_t			 backlog_bytes;
	TAILQ_ENTRY(mcps)	 entry;		/* sessions or graveyard */
};

static TAILQ_HEAD(, mcps) sessions = TAILQ_HEAD_INITIALIZER(sessions);
static TAILQ_HEAD(, mcps) graveyard = TAILQ_HEAD_INITIALIZER(graveyard);
static size_t nsessions;
static int shutting_down;
static lws_sorted_usec_list_t sul_reap;
static lws_sorted_usec_list_t sul_sweep;
static int sweep_armed;
/* Room for HTTP/1.1 chunk framing around one write: "%x\r\n" ... "\r\n0\r\n\r\n". */
#define CHUNK_FRAMING		32
#define HTTP_HDRS_MAX		2048	/* status line and headers */
/*
 * The most payload one SSE write carries: "7ff6\r\n", 32,758 bytes and
 * "\r\n" make exactly HTTP_WRITE_CHUNK, two full TLS records.  A whole
 * HTTP_WRITE_CHUNK of payload would add 8 framing bytes, and so a third,
 * tiny record (its own encryption and write syscall) to every write of a
 * large answer.
 */
#define SSE_CHUNK_MAX		(HTTP_WRITE_CHUNK - 8)
static uint8_t txbuf[LWS_PRE + HTTP_WRITE_CHUNK + CHUNK_FRAMING];

static void mcps_on_open(void *, int, uint16_t, const char *);
static void mcps_on_message(void *, const uint8_t *, size_t);
static void mcps_on_close(void *, uint16_t, const char *);

static const struct tstream_ops mcps_ops = {
	mcps_on_open, mcps_on_message, mcps_on_close
};

/* ---- small helpers -------------------------------------------------- */

static const char *
short_id(const char *id)
{
	static char s[9];

	snprintf(s, sizeof(s), "%.8s", id);
	return s;
}

static char *
hdr_dup(struct lws *wsi, enum lws_token_indexes tok)
{
	char *s;
	int n;

	if ((n = lws_hdr_total_length(wsi, tok)) <= 0 || n > HTTP_HDR_MAX)
		return NULL;
	s = xmalloc((size_t)n + 1);
	if (lws_hdr_copy(wsi, s, n + 1, tok) < 0) {
		free(s);
		return NULL;
	}
	return s;
}

/* A custom header by its lowercase name with the colon ("mcp-session-id:"). */
static char *
hdr_custom_dup(struct lws *wsi, const char *name)
{
	int n, nlen = (int)strlen(name);
	char *s;

	if ((n = lws_hdr_custom_length(wsi, name, nlen)) < 0 ||
	    n > HTTP_HDR_MAX)
		return NULL;
	s = xmalloc((size_t)n + 1);
	if (lws_hdr_custom_copy(wsi, s, n + 1, name, nlen) < 0) {
		free(s);
		return NULL;
	}
	return s;
}

static enum hc_method
hc_method_of(struct lws *wsi)
{
	if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0)
		return HM_POST;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0)
		return HM_GET;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_DELETE_URI) > 0)
		return HM_DELETE;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_OPTIONS_URI) > 0)
		return HM_OPTIONS;
	return HM_OTHER;
}

static const struct relay_agent_conf *
agent_by_name(const struct relay_conf *conf, const char *name)
{
	size_t i;

	for (i = 0; i < conf->nagents; i++)
		if (strcmp(conf->agents[i].name, name) == 0)
			return &conf->agents[i];
	return NULL;
}

/*
 * The server parts of agent's "tunnel/server" patterns for tunnel (they
 * point into the config); *np gets their number.  Caller frees the array.
 */
static const char **
agent_patterns(const struct relay_agent_conf *ag, const char *tunnel,
    size_t *np)
{
	const char **v;
	const char *slash;
	size_t i, n = 0, tlen = strlen(tunnel);

	for (i = 0; ag->allow != NULL && ag->allow[i] != NULL; i++)
		;
	v = xcalloc(i + 1, sizeof(*v));
	for (i = 0; ag->allow != NULL && ag->allow[i] != NULL; i++) {
		if ((slash = strchr(ag->allow[i], '/')) != NULL &&
		    (size_t)(slash - ag->allow[i]) == tlen &&
		    strncmp(ag->allow[i], tunnel, tlen) == 0)
			v[n++] = slash + 1;
	}
	*np = n;
	return v;
}

static const char *
close_reason(uint16_t code)
{
	switch (code) {
	case CLOSE_NORMAL:
		return "the session was ended";
	case CLOSE_NOT_FOUND:
		return "no such server";
	case CLOSE_DENIED:
		return "not allowed by the tunnel's allowlist";
	case CLOSE_UPSTREAM:
		return "the MCP server exited or failed";
	case CLOSE_TIMEOUT:
		return "a deadline passed";
	case CLOSE_LIMIT:
		return "a limit was reached";
	case CLOSE_REMOVED:
		return "the server was removed from the tunnel";
	case CLOSE_SHUTDOWN:
		return "the tunnel's client is shutting down";
	case CLOSE_TOO_BIG:
		return "a message was too large";
	default:
		return "the tunnel stream failed";
	}
}

/* ---- answers -------------------------------------------------------- */

/* Tracks how much waits for the agent and pauses or resumes the stream. */
static void
hc_pressure(struct hconn *hc)
{
	struct mcps *s = hc->sess;
	size_t n = buf_len(&hc->out);

	if (s == NULL)
		return;
	if (!hc->paused && n > HTTP_PAUSE_AT) {
		hc->paused = 1;
		if (s->npaused++ == 0 && s->live) {
			log_debug("session %s: agent reads slowly (%zu bytes "
			    "waiting); pausing its stream", short_id(s->id), n);
			tunnel_stream_pause(s->t, s->stream);
		}
	} else if (hc->paused && n < HTTP_RESUME_AT) {
		hc->paused = 0;
		if (--s->npaused == 0 && s->live) {
			log_debug("session %s: agent caught up; resuming its "
			    "stream", short_id(s->id));
			tunnel_stream_resume(s->t, s->stream);
		}
	}
}

/*
 * Decides a complete answer: status, type and body (copied).  The headers
 * and body go out on the following WRITEABLE callbacks.
 */
static void
hc_respond(struct hconn *hc, int status, const char *ctype, const void *body,
    size_t len, enum metrics_outcome o)
{
	hc->status = status;
	hc->ctype = ctype;
	hc->sse = 0;
	hc->hdrs_ready = 1;
	hc->final = 1;
	hc->outcome = o;
	buf_reset(&hc->out);
	if (len > 0 && buf_append(&hc->out, body, len) != 0) {
		log_warnx("http: out of memory for a %zu-byte answer", len);
		hc->close_after = 1;
	}
	hc->state = HC_RESPOND;
	hc_pressure(hc);
	lws_callback_on_writable(hc->wsi);
}

/* A JSON-RPC error answer with an HTTP status. */
static void
hc_error(struct hconn *hc, int status, const json_t *id, int code,
    enum metrics_outcome o, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void
hc_error(struct hconn *hc, int status, const json_t *id, int code,
    enum metrics_outcome o, const char *fmt, ...)
{
	char msg[512], peer[64] = "?", *text;
	va_list ap;
	size_t len;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (status == 401 || status == 403) {
		/* Refusals are worth a line: who knocked (never the token). */
		lws_get_peer_simple(hc->wsi, peer, sizeof(peer));
		log_info("http: %d for %s%s%s from %s: %s", status,
		    hc->route.tunnel[0] != '\0' ? hc->route.tunnel : "-",
		    hc->route.server[0] != '\0' ? "/" : "", hc->route.server,
		    peer, msg);
	} else
		log_debug("http: %d %s", status, msg);
	text = jrpc_error_text(id, code, msg, &len);
	hc_respond(hc, status, "application/json", text, len, o);
	free(text);
}

/* Starts an SSE answer (headers on the next WRITEABLE). */
static void
hc_sse_begin(struct hconn *hc)
{
	if (hc->hdrs_ready)
		return;
	hc->status = 200;
	hc->ctype = "text/event-stream";
	hc->sse = 1;
	hc->hdrs_ready = 1;
	lws_callback_on_writable(hc->wsi);
}

/*
 * Queues one message as an SSE event.  A message with a line break inside
 * is serialised again (compactly) so that it fits one data: line.
 */
static void
hc_sse_event(struct hconn *hc, const void *msg, size_t len, const json_t *j)
{
	char *re = NULL;
	json_t *parsed = NULL;
	int r;

	hc_sse_begin(hc);
	if (mcp_has_newline(msg, len)) {
		if (j == NULL)
			j = parsed = jrpc_parse(msg, len, NULL, 0);
		if (j == NULL)
			return;
		re = jrpc_dump(j, &len);
		msg = re;
	}
	r = buf_puts(&hc->out, "event: message\ndata: ");
	if (r == 0)
		r = buf_append(&hc->out, msg, len);
	if (r == 0)
		r = buf_puts(&hc->out, "\n\n");
	if (r != 0)
		log_warnx("http: cannot queue a %zu-byte event: %s", len,
		    mt_strerror(r));
	free(re);
	json_decref(parsed);
	hc_pressure(hc);
	lws_callback_on_writable(hc->wsi);
}

/* Ends an SSE stream once what is queued has gone out. */
static void
hc_sse_end(struct hconn *hc)
{
	hc_sse_begin(hc);
	hc->final = 1;
	hc->state = HC_RESPOND;
	lws_callback_on_writable(hc->wsi);
}

/* Forgets the pending request of hc (its answer has been decided). */
static void
hc_unpend(struct hconn *hc, enum metrics_outcome o)
{
	if (hc->idkey == NULL)
		return;
	free(hc->idkey);
	hc->idkey = NULL;
	free(hc->progkey);
	hc->progkey = NULL;
	lws_sul_cancel(&hc->sul_timeout);
	hc->outcome = o;
	metrics_observe_ms(now_ms() - hc->t0_ms);
}

/*
 * Delivers the answer to the pending request of hc: as the SSE event that
 * ends the stream when one has begun (a progress notification, a server
 * request or a keep-alive went first), else as an application/json body.
 * An agent that accepts both gets JSON for a plain answer: the spec lets
 * the server choose, and JSON spares the agent an event-stream parser per
 * call (the SDK client's SSE path costs it more than the whole tunnel).
 */
static void
hc_answer(struct hconn *hc, const void *msg, size_t len, const json_t *j,
    enum metrics_outcome o)
{
	hc_unpend(hc, o);
	if (hc->hdrs_ready) {
		hc_sse_event(hc, msg, len, j);
		hc_sse_end(hc);
		hc->outcome = o;
	} else
		hc_respond(hc, 200, "application/json", msg, len, o);
}

/* Answers the pending request of hc with a JSON-RPC error. */
static void
hc_answer_error(struct hconn *hc, int status, int code,
    enum metrics_outcome o, const char *message)
{
	char *text;
	size_t len;

	text = jrpc_error_text(hc->req_id, code, message, &len);
	hc_unpend(hc, o);
	if (hc->is_init)
		hc->set_sid[0] = '\0';
	if (hc->hdrs_ready) {
		hc_sse_event(hc, text, len, NULL);
		hc_sse_end(hc);
		hc->outcome = o;
	} else
		hc_respond(hc, status, "application/json", text, len, o);
	free(text);
}

/* ---- sessions ------------------------------------------------------- */

static void
reap_cb(lws_sorted_usec_list_t *sul)
{
	struct mcps *s;
	struct qmsg *q;

	while ((s = TAILQ_FIRST(&graveyard)) != NULL) {
		TAILQ_REMOVE(&graveyard, s, entry);
		while ((q = TAILQ_FIRST(&s->backlog)) != NULL) {
			TAILQ_REMOVE(&s->backlog, q, entry);
			free(q);
		}
		free(s->agent);
		free(s->tunnel);
		free(s->server);
		free(s);
	}
}

static void sweep_cb(lws_sorted_usec_list_t *);

static void
sweep_arm(void)
{
	struct lws_context *ctx = relay_context();

	if (sweep_armed || ctx == NULL)
		return;
	sweep_armed = 1;
	lws_sul_schedule(ctx, 0, &sul_sweep, sweep_cb, HTTP_SWEEP_US);
}

/* Detaches hc from its session (no message is sent). */
static void
hc_detach(struct hconn *hc)
{
	struct mcps *s = hc->sess;

	if (s == NULL)
		return;
	TAILQ_REMOVE(&s->conns, hc, entry);
	if (s->get == hc)
		s->get = NULL;
	if (hc->paused) {
		hc->paused = 0;
		if (--s->npaused == 0 && s->live)
			tunnel_stream_resume(s->t, s->stream);
	}
	s->last_ms = now_ms();
	hc->sess = NULL;
}

/*
 * Ends session s: forgets its id (later requests get 404), closes its
 * stream if it is still ours (code, with message as the text), answers
 * every waiting request with a JSON-RPC error (jcode, message; status for
 * an initialize still waiting) and ends its event streams.  The memory is
 * freed from a timer, so callers up the stack may still look at s.
 */
static void
mcps_kill(struct mcps *s, uint16_t code, int jcode, int init_status,
    enum metrics_outcome o, const char *message)
{
	struct hconn *hc;

	if (s->dead)
		return;
	s->dead = 1;
	TAILQ_REMOVE(&sessions, s, entry);
	nsessions--;
	log_info("session %s (agent %s, %s/%s) ended: %s", short_id(s->id),
	    s->agent, s->tunnel, s->server, message);
	if (s->live) {
		s->live = 0;
		tunnel_stream_close(s->t, s->stream, code, message);
	}
	while ((hc = TAILQ_FIRST(&s->conns)) != NULL) {
		hc_detach(hc);
		if (hc->final)
			continue;
		if (hc->idkey != NULL)
			hc_answer_error(hc, hc->is_init ? init_status : 200,
			    jcode, o, message);
		else if (hc->hdrs_ready)
			hc_sse_end(hc);
	}
	TAILQ_INSERT_TAIL(&graveyard, s, entry);
	if (relay_context() != NULL)
		lws_sul_schedule(relay_context(), 0, &sul_reap, reap_cb, 1);
}

static void
sweep_cb(lws_sorted_usec_list_t *sul)
{
	const struct relay_conf *conf = relay_conf_current();
	uint64_t now = now_ms(), idle = conf->limits.session_idle_timeout_ms;
	struct mcps *s, *next;

	sweep_armed = 0;
	for (s = TAILQ_FIRST(&sessions); s != NULL; s = next) {
		next = TAILQ_NEXT(s, entry);
		if (idle == 0 || !TAILQ_EMPTY(&s->conns) ||
		    now - s->last_ms < idle)
			continue;
		mcps_kill(s, CLOSE_TIMEOUT, JRPC_SESSION_ENDED, 404,
		    MO_UNAVAILABLE, "the session was idle for too long");
	}
	if (nsessions > 0)
		sweep_arm();
}

/* Sends notifications/cancelled for a request of s upstream. */
static void
mcps_cancel(struct mcps *s, const json_t *id, const char *reason)
{
	json_t *m;
	char *text;
	size_t len;

	if (!s->live || id == NULL)
		return;
	m = json_pack("{s:s, s:s, s:{s:O, s:s}}", "jsonrpc", "2.0",
	    "method", "notifications/cancelled", "params", "requestId", id,
	    "reason", reason);
	if (m == NULL)
		return;
	text = jrpc_dump(m, &len);
	json_decref(m);
	(void)tunnel_stream_send(s->t, s->stream, text, len);
	free(text);
}

/* The session called id, if it belongs to this agent and endpoint. */
static struct mcps *
mcps_find(const char *id, const char *agent, const struct mcp_route *r)
{
	const char *server = r->kind == MCP_PATH_MERGED ? "*" : r->server;
	struct mcps *s;

	if (id[0] == '\0')
		return NULL;
	TAILQ_FOREACH(s, &sessions, entry) {
		if (strcmp(s->id, id) != 0)
			continue;
		if (strcmp(s->agent, agent) != 0 ||
		    strcmp(s->tunnel, r->tunnel) != 0 ||
		    strcmp(s->server, server) != 0)
			return NULL;
		return s;
	}
	return NULL;
}

static struct hconn *
mcps_pending(struct mcps *s, const char *key)
{
	struct hconn *hc;

	TAILQ_FOREACH(hc, &s->conns, entry)
		if (hc->idkey != NULL && strcmp(hc->idkey, key) == 0)
			return hc;
	return NULL;
}

/* Keeps a message for the next GET stream; drops the oldest when full. */
static void
mcps_backlog(struct mcps *s, const void *msg, size_t len)
{
	struct qmsg *q;

	if (len > HTTP_BACKLOG_BYTES) {
		log_warnx("session %s: dropped a %zu-byte server message: no "
		    "stream to carry it", short_id(s->id), len);
		return;
	}
	while (s->nbacklog >= HTTP_BACKLOG_MAX ||
	    s->backlog_bytes + len > HTTP_BACKLOG_BYTES) {
		q = TAILQ_FIRST(&s->backlog);
		TAILQ_REMOVE(&s->backlog, q, entry);
		s->nbacklog--;
		s->backlog_bytes -= q->len;
		log_warnx("session %s: dropped a queued server message: the "
		    "agent has no GET stream open", short_id(s->id));
		free(q);
	}
	q = xmalloc(sizeof(*q) + len + 1);
	q->len = len;
	memcpy(q->data, msg, len);
	q->data[len] = '\0';
	TAILQ_INSERT_TAIL(&s->backlog, q, entry);
	s->nbacklog++;
	s->backlog_bytes += len;
}

static void
mcps_on_open(void *arg, int ok, uint16_t code, const char *text)
{
	struct mcps *s = arg;
	struct hconn *hc;
	char msg[384];
	int status, jcode;
	enum metrics_outcome o;

	if (s->dead)
		return;
	if (ok) {
		s->opened = 1;
		return;
	}
	/* After OPEN_ERR the stream is gone: nothing to close. */
	s->live = 0;
	switch (code) {
	case CLOSE_NOT_FOUND:
		status = 404;
		jcode = JRPC_UNAVAILABLE;
		o = MO_NOT_FOUND;
		break;
	case CLOSE_DENIED:
		status = 403;
		jcode = JRPC_DENIED;
		o = MO_FORBIDDEN;
		break;
	case CLOSE_LIMIT:
		status = 503;
		jcode = JRPC_UNAVAILABLE;
		o = MO_LIMITED;
		break;
	default:
		status = 502;
		jcode = JRPC_UPSTREAM_ERROR;
		o = MO_UPSTREAM_ERROR;
		break;
	}
	snprintf(msg, sizeof(msg), "the tunnel's client refused the session: "
	    "%s%s%s", close_reason(code), text != NULL && *text != '\0' ?
	    ": " : "", text != NULL ? text : "");
	TAILQ_FOREACH(hc, &s->conns, entry) {
		if (hc->is_init && hc->idkey != NULL) {
			hc_answer_error(hc, status, jcode, o, msg);
			break;
		}
	}
	mcps_kill(s, CLOSE_NORMAL, jcode, status, o, msg);
}

static void
mcps_on_close(void *arg, uint16_t code, const char *text)
{
	struct mcps *s = arg;
	char msg[384];

	if (s->dead)
		return;
	s->live = 0;
	snprintf(msg, sizeof(msg), "the MCP session ended: %s%s%s",
	    close_reason(code), text != NULL && *text != '\0' ? ": " : "",
	    text != NULL ? text : "");
	mcps_kill(s, CLOSE_NORMAL, code == CLOSE_UPSTREAM ?
	    JRPC_UPSTREAM_ERROR : JRPC_UNAVAILABLE, 502,
	    code == CLOSE_UPSTREAM ? MO_UPSTREAM_ERROR : MO_UNAVAILABLE, msg);
}

/*
 * Routes a server-initiated request or notification to a stream.  pk is
 * its progress key (or NULL), has_id whether it carries an id; j is its
 * tree if one was built (else NULL).
 */
static void
mcps_route_server_msg(struct mcps *s, const uint8_t *msg, size_t len,
    const json_t *j, const char *pk, int has_id)
{
	struct hconn *hc, *target = NULL;

	if (pk != NULL && !has_id) {
		TAILQ_FOREACH(hc, &s->conns, entry) {
			if (!hc->final && hc->want_sse && hc->progkey != NULL &&
			    strcmp(hc->progkey, pk) == 0) {
				target = hc;
				break;
			}
		}
	}
	if (target == NULL) {
		TAILQ_FOREACH_REVERSE(hc, &s->conns, hconn_list, entry) {
			if (!hc->final && hc->want_sse && hc->idkey != NULL) {
				target = hc;
				break;
			}
		}
	}
	if (target == NULL && s->get != NULL && !s->get->final)
		target = s->get;
	if (target != NULL)
		hc_sse_event(target, msg, len, j);
	else
		mcps_backlog(s, msg, len);
}

/*
 * A message from the MCP server.  Most are only routed, so they are read
 * with jrpc_peek (no tree) and forwarded as the bytes that came; jansson
 * parses only what the scanner will not vouch for, which also keeps its
 * verdict on malformed text.
 */
static void
mcps_on_message(void *arg, const uint8_t *msg, size_t len)
{
	struct mcps *s = arg;
	struct jrpc_peek peek;
	struct hconn *hc;
	enum jrpc_kind kind;
	const json_t *id;
	json_t *j = NULL;
	char *key;
	int failed_init, has_error;

	if (s->dead)
		return;
	s->last_ms = now_ms();
	if (jrpc_peek(msg, len, &peek)) {
		kind = peek.kind;
		id = peek.id;
		has_error = jrpc_peek_has(&peek, JRPC_P_ERROR);
	} else if ((j = jrpc_parse(msg, len, NULL, 0)) == NULL) {
		log_warnx("session %s: the MCP server sent %zu bytes that are "
		    "not JSON; dropped", short_id(s->id), len);
		goto out;
	} else {
		kind = jrpc_classify(j);
		id = json_object_get(j, "id");
		has_error = json_object_get(j, "error") != NULL;
	}
	switch (kind) {
	case JRPC_RESPONSE:
		key = mcp_id_key(id);
		hc = key != NULL ? mcps_pending(s, key) : NULL;
		free(key);
		if (hc == NULL) {
			log_debug("session %s: answer to a request nobody waits "
			    "for (timed out or cancelled); dropped",
			    short_id(s->id));
			break;
		}
		failed_init = hc->is_init && has_error;
		if (failed_init)
			hc->set_sid[0] = '\0';
		hc_answer(hc, msg, len, j, MO_OK);
		if (failed_init)
			mcps_kill(s, CLOSE_NORMAL, JRPC_SESSION_ENDED, 502,
			    MO_UPSTREAM_ERROR, "initialize failed upstream");
		break;
	case JRPC_REQUEST:
	case JRPC_NOTIFICATION:
		key = j != NULL ? mcp_progress_key(j) :
		    mcp_peek_progress_key(&peek);
		mcps_route_server_msg(s, msg, len, j, key, id != NULL);
		free(key);
		break;
	default:
		log_warnx("session %s: the MCP server sent something that is "
		    "not JSON-RPC 2.0; dropped", short_id(s->id));
		break;
	}
 out:
	jrpc_peek_done(&peek);
	json_decref(j);
}

/* ---- timers of an exchange ------------------------------------------ */

static void
hc_timeout_cb(lws_sorted_usec_list_t *sul)
{
	struct hconn *hc = lws_container_of(sul, struct hconn, sul_timeout);
	struct mcps *s = hc->sess;
	json_t *id = hc->req_id != NULL ? json_incref(hc->req_id) : NULL;
	char msg[128];

	if (hc->idkey == NULL || s == NULL) {
		json_decref(id);
		return;
	}
	snprintf(msg, sizeof(msg), "no answer from the MCP server within "
	    "%" PRIu64 " ms", relay_conf_current()->limits.request_timeout_ms);
	log_info("session %s: %s", short_id(s->id), msg);
	if (hc->is_init) {
		hc_answer_error(hc, 504, JRPC_TIMEOUT, MO_TIMEOUT, msg);
		mcps_kill(s, CLOSE_TIMEOUT, JRPC_TIMEOUT, 504, MO_TIMEOUT, msg);
	} else {
		hc_answer_error(hc, 200, JRPC_TIMEOUT, MO_TIMEOUT, msg);
		mcps_cancel(s, id, "the relay's request timeout passed");
	}
	json_decref(id);
}

static void
hc_keepalive_cb(lws_sorted_usec_list_t *sul)
{
	struct hconn *hc = lws_container_of(sul, struct hconn, sul_keepalive);
	uint64_t every = relay_conf_current()->http.sse_keepalive_ms;

	if (hc->final || hc->state == HC_DONE)
		return;
	hc_sse_begin(hc);
	if (buf_len(&hc->out) == 0) {
		(void)buf_puts(&hc->out, ": keepalive\n\n");
		lws_callback_on_writable(hc->wsi);
	}
	if (every > 0)
		lws_sul_schedule(lws_get_context(hc->wsi), 0,
		    &hc->sul_keepalive, hc_keepalive_cb,
		    (lws_usec_t)every * 1000);
}

static void
hc_keepalive_arm(struct hconn *hc)
{
	uint64_t every = relay_conf_current()->http.sse_keepalive_ms;

	if (every > 0)
		lws_sul_schedule(lws_get_context(hc->wsi), 0,
		    &hc->sul_keepalive, hc_keepalive_cb,
		    (lws_usec_t)every * 1000);
}

/* ---- requests ------------------------------------------------------- */

/*
 * Creates a session for an initialize request (msg, already classified)
 * and sends it upstream.  Answers hc itself on failure.
 */
static void
hc_initialize(struct hconn *hc, json_t *msg)
{
	const struct relay_conf *conf = relay_conf_current();
	const struct relay_agent_conf *ag;
	const char **servers = NULL, **allow = NULL;
	struct tunnel *t;
	struct mcps *s = NULL, *o;
	size_t i, n, nserv = 0, nallow = 0, per_agent = 0, per_tunnel = 0;
	const char *name;
	int r;

	if ((ag = agent_by_name(conf, hc->agent)) == NULL) {
		hc_error(hc, 401, NULL, JRPC_DENIED, MO_UNAUTHORIZED,
		    "the agent is no longer configured");
		goto out;
	}
	if ((t = tunnel_find(hc->route.tunnel)) == NULL) {
		hc_error(hc, 404, NULL, JRPC_UNAVAILABLE, MO_NOT_FOUND,
		    "no tunnel called \"%s\"", hc->route.tunnel);
		goto out;
	}
	if (!tunnel_online(t)) {
		hc->retry_after = 5;
		hc_error(hc, 503, NULL, JRPC_UNAVAILABLE, MO_UNAVAILABLE,
		    "tunnel \"%s\" is offline: its client is not connected",
		    hc->route.tunnel);
		goto out;
	}
	if (hc->route.kind == MCP_PATH_MERGED) {
		n = tunnel_catalog_count(t);
		servers = xcalloc(n + 1, sizeof(*servers));
		for (i = 0; i < n; i++) {
			name = tunnel_catalog_name(t, i);
			if (relay_agent_may_use(ag, hc->route.tunnel, name))
				servers[nserv++] = name;
		}
		if (nserv == 0) {
			hc_error(hc, 404, NULL, JRPC_UNAVAILABLE, MO_NOT_FOUND,
			    "tunnel \"%s\" offers no server that this agent "
			    "may use", hc->route.tunnel);
			goto out;
		}
	} else if (!tunnel_has_server(t, hc->route.server)) {
		hc_error(hc, 404, NULL, JRPC_UNAVAILABLE, MO_NOT_FOUND,
		    "tunnel \"%s\" has no server \"%s\"", hc->route.tunnel,
		    hc->route.server);
		goto out;
	}
	TAILQ_FOREACH(o, &sessions, entry) {
		if (strcmp(o->agent, hc->agent) == 0)
			per_agent++;
		if (strcmp(o->tunnel, hc->route.tunnel) == 0)
			per_tunnel++;
	}
	if (conf->limits.sessions_per_agent > 0 &&
	    per_agent >= (uint64_t)conf->limits.sessions_per_agent) {
		hc_error(hc, 429, NULL, JRPC_UNAVAILABLE, MO_LIMITED,
		    "agent \"%s\" already has %zu sessions (sessions_per_agent); "
		    "end one with DELETE first", hc->agent, per_agent);
		goto out;
	}
	if (conf->limits.sessions_per_tunnel > 0 &&
	    per_tunnel >= (uint64_t)conf->limits.sessions_per_tunnel) {
		hc_error(hc, 503, NULL, JRPC_UNAVAILABLE, MO_LIMITED,
		    "tunnel \"%s\" already carries %zu sessions "
		    "(sessions_per_tunnel); try again later", hc->route.tunnel,
		    per_tunnel);
		goto out;
	}

	s = xcalloc(1, sizeof(*s));
	TAILQ_INIT(&s->conns);
	TAILQ_INIT(&s->backlog);
	if (rand_hex_id(s->id, SESSION_ID_BYTES) != 0) {
		hc_error(hc, 500, NULL, JRPC_INTERNAL_ERROR, MO_UNAVAILABLE,
		    "cannot draw a session id");
		goto out;
	}
	s->agent = xstrdup(hc->agent);
	s->tunnel = xstrdup(hc->route.tunnel);
	s->server = xstrdup(hc->route.kind == MCP_PATH_MERGED ? "*" :
	    hc->route.server);
	s->t = t;
	s->last_ms = now_ms();
	if (hc->route.kind == MCP_PATH_MERGED)
		allow = agent_patterns(ag, hc->route.tunnel, &nallow);
	r = tunnel_stream_open2(t, s->server, s->agent,
	    hc->route.kind == MCP_PATH_MERGED ? servers : NULL, nserv,
	    allow, nallow, &mcps_ops, s, &s->stream);
	if (r != 0) {
		if (r == MT_ECLOSED) {
			hc->retry_after = 5;
			hc_error(hc, 503, NULL, JRPC_UNAVAILABLE, MO_UNAVAILABLE,
			    "tunnel \"%s\" is offline: its client is not "
			    "connected", hc->route.tunnel);
		} else
			hc_error(hc, 503, NULL, JRPC_UNAVAILABLE, MO_LIMITED,
			    "cannot open a stream on tunnel \"%s\": %s",
			    hc->route.tunnel, mt_strerror(r));
		goto out;
	}
	s->live = 1;
	TAILQ_INSERT_TAIL(&sessions, s, entry);
	nsessions++;
	log_info("session %s: agent %s opened %s/%s", short_id(s->id),
	    s->agent, s->tunnel, s->server);
	sweep_arm();

	hc->is_init = 1;
	memcpy(hc->set_sid, s->id, sizeof(hc->set_sid));
	hc->sess = s;
	TAILQ_INSERT_TAIL(&s->conns, hc, entry);
	hc->req_id = json_incref(json_object_get(msg, "id"));
	hc->idkey = mcp_id_key(hc->req_id);
	hc->state = HC_WAIT;
	if ((r = tunnel_stream_send(t, s->stream, buf_ptr(&hc->body),
	    buf_len(&hc->body))) != 0) {
		mcps_kill(s, CLOSE_INTERNAL, JRPC_UNAVAILABLE, 502,
		    MO_UNAVAILABLE, "cannot send to the tunnel");
		s = NULL;
		goto out;
	}
	s = NULL;	/* the table owns it */
	if (relay_conf_current()->limits.request_timeout_ms > 0)
		lws_sul_schedule(lws_get_context(hc->wsi), 0, &hc->sul_timeout,
		    hc_timeout_cb, (lws_usec_t)relay_conf_current()->
		    limits.request_timeout_ms * 1000);
	if (hc->want_sse)
		hc_keepalive_arm(hc);
 out:
	if (s != NULL) {
		free(s->agent);
		free(s->tunnel);
		free(s->server);
		free(s);
	}
	free(servers);
	free(allow);
}

/* The agent cancelled one of its requests: end the exchange waiting for it. */
static void
hc_agent_cancelled(struct mcps *s, const json_t *msg)
{
	const json_t *params = json_object_get(msg, "params");
	struct hconn *hc;
	char *key;

	if ((key = mcp_id_key(json_object_get(params, "requestId"))) == NULL)
		return;
	if ((hc = mcps_pending(s, key)) != NULL && !hc->is_init)
		hc_answer_error(hc, 200, JRPC_CANCELLED, MO_CANCELLED,
		    "the request was cancelled by the client");
	free(key);
}

/*
 * The tree of a POST body that jrpc_peek has vouched for (so it parses);
 * NULL only when out of memory.
 */
static json_t *
hc_body_tree(struct hconn *hc, json_t **msgp)
{
	if (*msgp == NULL)
		*msgp = jrpc_parse(buf_ptr(&hc->body), buf_len(&hc->body), NULL,
		    0);
	return *msgp;
}

/*
 * A whole POST body has arrived.  It is read with jrpc_peek, so a large
 * request goes on as the bytes that came; the tree is built only for
 * initialize and cancellations, and jansson reads whatever the scanner
 * does not vouch for (its error sentence is the one the agent gets).
 */
static void
hc_post(struct hconn *hc)
{
	const struct relay_conf *conf = relay_conf_current();
	struct jrpc_peek peek;
	char errtext[160];
	const char *method;
	enum jrpc_kind kind;
	json_t *id = NULL;
	struct mcps *s;
	json_t *msg = NULL;
	size_t queued;
	int r;

	metrics_bytes(MD_FROM_AGENTS, buf_len(&hc->body));
	if (jrpc_peek(buf_ptr(&hc->body), buf_len(&hc->body), &peek)) {
		kind = peek.kind;
		id = peek.id;
		method = peek.method;
	} else {
		msg = jrpc_parse(buf_ptr(&hc->body), buf_len(&hc->body),
		    errtext, sizeof(errtext));
		if (msg == NULL) {
			hc_error(hc, 400, NULL, JRPC_PARSE_ERROR,
			    MO_BAD_REQUEST, "Parse error: %s", errtext);
			goto out;
		}
		if (json_is_array(msg)) {
			hc_error(hc, 400, NULL, JRPC_INVALID_REQUEST,
			    MO_BAD_REQUEST, "JSON-RPC batches are not "
			    "supported: send one message per POST");
			goto out;
		}
		kind = jrpc_classify(msg);
		id = id;
		method = mcp_method(msg);
	}
	if (kind == JRPC_INVALID) {
		hc_error(hc, 400, id, JRPC_INVALID_REQUEST, MO_BAD_REQUEST,
		    "Invalid Request: not a JSON-RPC 2.0 message");
		goto out;
	}
	if (hc->sid[0] == '\0') {
		if (kind != JRPC_REQUEST || strcmp(method, "initialize") != 0) {
			hc_error(hc, 400, id, JRPC_INVALID_REQUEST,
			    MO_BAD_REQUEST, "Bad Request: no Mcp-Session-Id "
			    "header; a session starts with an initialize "
			    "request");
			goto out;
		}
		if (hc_body_tree(hc, &msg) == NULL) {
			hc_error(hc, 500, id, JRPC_INTERNAL_ERROR,
			    MO_BAD_REQUEST, "out of memory");
			goto out;
		}
		hc_initialize(hc, msg);
		goto out;
	}
	if ((s = mcps_find(hc->sid, hc->agent, &hc->route)) == NULL) {
		hc_error(hc, 404, id,
		    JRPC_SESSION_ENDED, MO_NOT_FOUND, "Session not found: it "
		    "expired or was ended; send initialize for a new one");
		goto out;
	}
	s->last_ms = now_ms();
	if (kind == JRPC_REQUEST && strcmp(method, "initialize") == 0) {
		hc_error(hc, 400, id,
		    JRPC_INVALID_REQUEST, MO_BAD_REQUEST,
		    "Bad Request: this session is already initialized");
		goto out;
	}
	/*
	 * The mux leaves backpressure towards the client to us: refuse what
	 * would queue more than queue_limit on the stream.  While the link
	 * is down that means the session cannot catch up, so it ends
	 * (PROTOCOL.md, "Resumption"); with the link up the client is only
	 * slow, so the agent is told to retry.
	 */
	queued = tunnel_stream_queued(s->t, s->stream);
	if ((conf->limits.queue_limit > 0 &&
	    queued + buf_len(&hc->body) > conf->limits.queue_limit) ||
	    tunnel_congested(s->t)) {
		if (!tunnel_online(s->t) && !tunnel_congested(s->t)) {
			mcps_kill(s, CLOSE_LIMIT, JRPC_UNAVAILABLE, 503,
			    MO_LIMITED, "too much was queued while the "
			    "tunnel's client was offline (queue_limit)");
			hc_error(hc, 404, id,
			    JRPC_SESSION_ENDED, MO_LIMITED, "Session not found: "
			    "it ended because too much was queued while the "
			    "tunnel's client was offline; send initialize for a "
			    "new one");
		} else {
			hc->retry_after = 1;
			hc_error(hc, 503, id,
			    JRPC_UNAVAILABLE, MO_LIMITED, "the tunnel is "
			    "congested: %zu bytes wait for its client "
			    "(queue_limit, link_budget); retry shortly", queued);
		}
		goto out;
	}
	if (kind != JRPC_REQUEST) {
		if (kind == JRPC_NOTIFICATION &&
		    strcmp(method, "notifications/cancelled") == 0 &&
		    hc_body_tree(hc, &msg) != NULL)
			hc_agent_cancelled(s, msg);
		r = tunnel_stream_send(s->t, s->stream, buf_ptr(&hc->body),
		    buf_len(&hc->body));
		if (r == MT_ENOTFOUND)
			goto gone;
		if (r != 0)
			goto refused;
		hc_respond(hc, 202, NULL, NULL, 0, MO_OK);
		goto out;
	}
	hc->req_id = json_incref(id);
	if ((hc->idkey = mcp_id_key(hc->req_id)) == NULL) {
		hc_error(hc, 400, NULL, JRPC_INVALID_REQUEST, MO_BAD_REQUEST,
		    "Invalid Request: the id must be a string or an integer");
		goto out;
	}
	if (mcps_pending(s, hc->idkey) != NULL) {
		free(hc->idkey);
		hc->idkey = NULL;
		hc_error(hc, 400, hc->req_id, JRPC_INVALID_REQUEST,
		    MO_BAD_REQUEST, "Invalid Request: a request with this id "
		    "is already in progress in this session");
		goto out;
	}
	hc->progkey = msg != NULL ? mcp_progress_key(msg) :
	    mcp_peek_progress_key(&peek);
	hc->sess = s;
	TAILQ_INSERT_TAIL(&s->conns, hc, entry);
	hc->state = HC_WAIT;
	if ((r = tunnel_stream_send(s->t, s->stream, buf_ptr(&hc->body),
	    buf_len(&hc->body))) != 0) {
		hc_detach(hc);
		free(hc->idkey);
		hc->idkey = NULL;
		free(hc->progkey);
		hc->progkey = NULL;
		if (r == MT_ENOTFOUND)
			goto gone;
		goto refused;
	}
	if (conf->limits.request_timeout_ms > 0)
		lws_sul_schedule(lws_get_context(hc->wsi), 0, &hc->sul_timeout,
		    hc_timeout_cb, (lws_usec_t)conf->limits.request_timeout_ms *
		    1000);
	if (hc->want_sse)
		hc_keepalive_arm(hc);
	goto out;
 refused:
	if (r == MT_ETOOBIG) {
		/* The client announced a smaller max_message than ours. */
		log_info("session %s: a message of %zu bytes is more than the "
		    "tunnel's client takes; refused with 413", short_id(s->id),
		    buf_len(&hc->body));
		hc_error(hc, 413, id, JRPC_UPSTREAM_ERROR, MO_TOO_LARGE,
		    "the message (%zu bytes) is larger than the tunnel's "
		    "client accepts (its limits.max_message)",
		    buf_len(&hc->body));
		goto out;
	}
	hc_error(hc, 502, id, JRPC_UPSTREAM_ERROR, MO_UPSTREAM_ERROR,
	    "the tunnel did not take the message: %s", mt_strerror(r));
	goto out;
 gone:
	/* The stream vanished under us: the session is over. */
	s->live = 0;
	mcps_kill(s, CLOSE_NORMAL, JRPC_SESSION_ENDED, 404, MO_NOT_FOUND,
	    "the tunnel stream is gone");
	hc_error(hc, 404, id, JRPC_SESSION_ENDED,
	    MO_NOT_FOUND, "Session not found: its tunnel stream ended; send "
	    "initialize for a new one");
 out:
	jrpc_peek_done(&peek);
	json_decref(msg);
}

/* GET /healthz and GET /metrics. */
static void
hc_infra(struct hconn *hc)
{
	struct tunnel_stats st;
	struct buf b;
	char *text;
	int r;

	hc->uncounted = 1;
	if (hc->method != HM_GET) {
		hc->allow = "GET";
		hc_error(hc, 405, NULL, JRPC_INVALID_REQUEST, MO_BAD_REQUEST,
		    "Method Not Allowed");
		return;
	}
	tunnel_get_stats(&st);
	if (hc->route.kind == MCP_PATH_HEALTHZ) {
		text = xasprintf("{\"status\":\"ok\",\"tunnels_online\":%" PRIu64
		    ",\"sessions\":%zu}\n", st.links_up, nsessions);
		hc_respond(hc, 200, "application/json", text, strlen(text),
		    MO_OK);
		free(text);
		return;
	}
	buf_init(&b, 0);
	r = metrics_render(&b, st.links_up, nsessions, st.streams,
	    st.bytes_to_client, st.bytes_from_client, st.link_accepts,
	    st.link_rejects, st.early_closes);
	if (r != 0)
		hc_error(hc, 500, NULL, JRPC_INTERNAL_ERROR, MO_UNAVAILABLE,
		    "cannot render metrics: %s", mt_strerror(r));
	else
		hc_respond(hc, 200, "text/plain; version=0.0.4; charset=utf-8",
		    buf_ptr(&b), buf_len(&b), MO_OK);
	buf_free(&b);
}

/*
 * Authenticates the request; on success sets hc->agent and returns the
 * agent's config, else answers 401 and returns NULL.
 */
static const struct relay_agent_conf *
hc_auth(struct hconn *hc, const struct relay_conf *conf)
{
	const struct relay_agent_conf *ag = NULL;
	char *authz, *token = NULL;
	const char *tok;
	size_t toklen;

	authz = hdr_dup(hc->wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
	if (authz == NULL || mcp_bearer_token(authz, &tok, &toklen) != 0) {
		hc->www_auth = 1;
		hc_error(hc, 401, NULL, JRPC_DENIED, MO_UNAUTHORIZED,
		    "Unauthorized: send Authorization: Bearer <agent token>");
		goto out;
	}
	token = xstrndup(tok, toklen);
	if ((ag = relay_conf_agent_by_token(conf, token)) == NULL) {
		hc->www_auth = 2;
		hc_error(hc, 401, NULL, JRPC_DENIED, MO_UNAUTHORIZED,
		    "Unauthorized: the bearer token is not valid");
		goto out;
	}
	hc->agent = xstrdup(ag->name);
 out:
	free_secret(token);
	free_secret(authz);
	return ag;
}

/* Checks the Origin header (DNS rebinding); 0 or answered 403. */
static int
hc_origin(struct hconn *hc, const struct relay_conf *conf)
{
	char *origin = hdr_dup(hc->wsi, WSI_TOKEN_ORIGIN);

	if (!mcp_origin_allowed(origin, conf->http.allowed_origins)) {
		hc_error(hc, 403, NULL, JRPC_DENIED, MO_FORBIDDEN,
		    "Forbidden: Origin \"%.100s\" is not allowed", origin);
		free(origin);
		return -1;
	}
	hc->origin = origin;
	return 0;
}

/* OPTIONS: a CORS preflight from an allowed Origin. */
static void
hc_preflight(struct hconn *hc)
{
	if (hc->origin == NULL) {
		hc->allow = "GET, POST, DELETE, OPTIONS";
		hc_respond(hc, 204, NULL, NULL, 0, MO_OK);
		return;
	}
	hc->preflight = 1;
	hc_respond(hc, 204, NULL, NULL, 0, MO_OK);
}

/* GET on an MCP endpoint: the session's server-to-client stream. */
static void
hc_get(struct hconn *hc, char *accept)
{
	struct mcps *s;
	struct qmsg *q;

	if (!mcp_accept_allows(accept, "text/event-stream")) {
		hc_error(hc, 406, NULL, JRPC_INVALID_REQUEST, MO_BAD_REQUEST,
		    "Not Acceptable: GET opens an event stream; Accept must "
		    "allow text/event-stream");
		return;
	}
	if (hc->sid[0] == '\0') {
		hc_error(hc, 400, NULL, JRPC_INVALID_REQUEST, MO_BAD_REQUEST,
		    "Bad Request: GET needs the Mcp-Session-Id header");
		return;
	}
	if ((s = mcps_find(hc->sid, hc->agent, &hc->route)) == NULL) {
		hc_error(hc, 404, NULL, JRPC_SESSION_ENDED, MO_NOT_FOUND,
		    "Session not found: it expired or was ended; send "
		    "initialize for a new one");
		return;
	}
	if (s->get != NULL) {
		hc_error(hc, 409, NULL, JRPC_INVALID_REQUEST, MO_BAD_REQUEST,
		    "Conflict: this session already has a GET stream open");
		return;
	}
	s->last_ms = now_ms();
	hc->sess = s;
	hc->want_sse = 1;
	s->get = hc;
	TAILQ_INSERT_TAIL(&s->conns, hc, entry);
	hc->state = HC_STREAM;
	hc_sse_begin(hc);
	while ((q = TAILQ_FIRST(&s->backlog)) != NULL) {
		TAILQ_REMOVE(&s->backlog, q, entry);
		s->nbacklog--;
		s->backlog_bytes -= q->len;
		hc_sse_event(hc, q->data, q->len, NULL);
		free(q);
	}
	hc_keepalive_arm(hc);
	/* The stream may last hours: give back the header table now. */
	lws_http_mark_sse(hc->wsi);
}

/* DELETE on an MCP endpoint: the agent ends its session. */
static void
hc_delete(struct hconn *hc)
{
	struct mcps *s;

	if (hc->sid[0] == '\0') {
		hc_error(hc, 400, NULL, JRPC_INVALID_REQUEST, MO_BAD_REQUEST,
		    "Bad Request: DELETE needs the Mcp-Session-Id header");
		return;
	}
	if ((s = mcps_find(hc->sid, hc->agent, &hc->route)) == NULL) {
		hc_error(hc, 404, NULL, JRPC_SESSION_ENDED, MO_NOT_FOUND,
		    "Session not found: it expired or was ended");
		return;
	}
	mcps_kill(s, CLOSE_NORMAL, JRPC_SESSION_ENDED, 404, MO_UNAVAILABLE,
	    "the agent ended the session");
	hc_respond(hc, 204, NULL, NULL, 0, MO_OK);
}

/*
 * lws does not answer "Expect: 100-continue" (curl sends it for bodies
 * over 1 MiB and then waits a second): say so ourselves once the body is
 * wanted.  Refusals before this point are final answers instead, which
 * the client takes as "do not send the body".
 */
static void
hc_continue(struct hconn *hc)
{
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
	uint8_t buf[LWS_PRE + sizeof(cont)];
	char *expect;

	if ((expect = hdr_dup(hc->wsi, WSI_TOKEN_HTTP_EXPECT)) == NULL)
		return;
	if (strcasecmp(expect, "100-continue") == 0) {
		memcpy(buf + LWS_PRE, cont, sizeof(cont) - 1);
		if (lws_write(hc->wsi, buf + LWS_PRE, sizeof(cont) - 1,
		    LWS_WRITE_RAW) < 0)
			log_debug("http: cannot write 100 Continue");
	}
	free(expect);
}

/* POST headers: decide what can be decided before the body arrives. */
static void
hc_post_headers(struct hconn *hc, const struct relay_conf *conf, char *accept)
{
	char *ct, clen[32];
	char *end;

	ct = hdr_dup(hc->wsi, WSI_TOKEN_HTTP_CONTENT_TYPE);
	if (!mcp_content_type_json(ct)) {
		hc_error(hc, 415, NULL, JRPC_INVALID_REQUEST, MO_BAD_REQUEST,
		    "Unsupported Media Type: POST a JSON-RPC message as "
		    "application/json");
		free(ct);
		return;
	}
	free(ct);
	if (!mcp_accept_allows(accept, "application/json") &&
	    !mcp_accept_allows(accept, "text/event-stream")) {
		hc_error(hc, 406, NULL, JRPC_INVALID_REQUEST, MO_BAD_REQUEST,
		    "Not Acceptable: Accept must allow application/json or "
		    "text/event-stream");
		return;
	}
	hc->want_sse = mcp_accept_names(accept, "text/event-stream");
	if (lws_hdr_copy(hc->wsi, clen, sizeof(clen),
	    WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0) {
		hc->close_after = 1;
		hc_error(hc, 411, NULL, JRPC_INVALID_REQUEST, MO_BAD_REQUEST,
		    "Length Required: send a Content-Length header");
		return;
	}
	hc->content_length = strtoull(clen, &end, 10);
	if (*end != '\0' || clen[0] == '-') {
		hc->close_after = 1;
		hc_error(hc, 400, NULL, JRPC_INVALID_REQUEST, MO_BAD_REQUEST,
		    "Bad Request: malformed Content-Length");
		return;
	}
	if (hc->content_length > conf->limits.max_body) {
		if (hc->content_length > HTTP_DISCARD_MAX)
			hc->close_after = 1;
		hc_error(hc, 413, NULL, JRPC_INVALID_REQUEST, MO_TOO_LARGE,
		    "Payload Too Large: the body has %" PRIu64 " bytes; the "
		    "limit is %" PRIu64, hc->content_length,
		    conf->limits.max_body);
		return;
	}
	/*
	 * Whether the session exists, the tunnel is online and the server is
	 * in its catalog is checked once the body is in: a malformed message
	 * is a 400 whatever the state of the tunnel.
	 */
	buf_init(&hc->body, (size_t)conf->limits.max_body);
	/* lws calls BODY_COMPLETION even for an explicit zero length. */
	hc->state = HC_BODY;
	hc_continue(hc);
}

/* LWS_CALLBACK_HTTP: a request's headers are in. */
static int
hc_request(struct lws *wsi, struct hc_slot *slot, const char *uri)
{
	const struct relay_conf *conf = relay_conf_current();
	const struct relay_agent_conf *ag;
	struct hconn *hc;
	char *accept = NULL, *v = NULL;

	hc = xcalloc(1, sizeof(*hc));
	hc->wsi = wsi;
	hc->t0_ms = now_ms();
	hc->method = hc_method_of(wsi);
	buf_init(&hc->body, 1);
	buf_init(&hc->out, 0);
	slot->hc = hc;

	if (mcp_route_parse(uri, &hc->route) != 0) {
		hc_error(hc, 404, NULL, JRPC_INVALID_REQUEST, MO_NOT_FOUND,
		    "Not Found: the MCP endpoints are /mcp/<tunnel>/<server> "
		    "and /mcp/<tunnel>");
		goto out;
	}
	if (hc->route.kind == MCP_PATH_HEALTHZ ||
	    hc->route.kind == MCP_PATH_METRICS) {
		hc_infra(hc);
		goto out;
	}
	if (hc_origin(hc, conf) != 0)
		goto out;
	if (hc->method == HM_OPTIONS) {
		hc_preflight(hc);
		goto out;
	}
	if (hc->method == HM_OTHER) {
		hc->allow = "GET, POST, DELETE";
		hc_error(hc, 405, NULL, JRPC_INVALID_REQUEST, MO_BAD_REQUEST,
		    "Method Not Allowed: use POST, GET or DELETE");
		goto out;
	}
	if (shutting_down) {
		hc->close_after = 1;
		hc_error(hc, 503, NULL, JRPC_UNAVAILABLE, MO_UNAVAILABLE,
		    "the relay is shutting down");
		goto out;
	}
	if ((ag = hc_auth(hc, conf)) == NULL)
		goto out;
	v = hdr_custom_dup(wsi, "mcp-protocol-version:");
	if (v != NULL && !mcp_protocol_version_known(v)) {
		hc_error(hc, 400, NULL, JRPC_INVALID_REQUEST, MO_BAD_REQUEST,
		    "Bad Request: unsupported MCP-Protocol-Version \"%.40s\" "
		    "(supported: 2024-11-05, 2025-03-26, 2025-06-18, "
		    "2025-11-25)", v);
		goto out;
	}
	if (!relay_agent_may_use(ag, hc->route.tunnel,
	    hc->route.kind == MCP_PATH_MERGED ? NULL : hc->route.server)) {
		hc_error(hc, 403, NULL, JRPC_DENIED, MO_FORBIDDEN,
		    "Forbidden: agent \"%s\" may not use %s%s%s", hc->agent,
		    hc->route.tunnel, hc->route.kind == MCP_PATH_SERVER ?
		    "/" : "", hc->route.server);
		goto out;
	}
	if (tunnel_find(hc->route.tunnel) == NULL) {
		hc_error(hc, 404, NULL, JRPC_UNAVAILABLE, MO_NOT_FOUND,
		    "Not Found: no tunnel called \"%s\"", hc->route.tunnel);
		goto out;
	}
	free(v);
	if ((v = hdr_custom_dup(wsi, "mcp-session-id:")) != NULL) {
		/* Ours are 32 hex digits; anything else cannot match. */
		snprintf(hc->sid, sizeof(hc->sid), "%s",
		    strlen(v) == SESSION_ID_LEN ? v : "-");
	}
	accept = hdr_dup(wsi, WSI_TOKEN_HTTP_ACCEPT);
	switch (hc->method) {
	case HM_GET:
		hc_get(hc, accept);
		break;
	case HM_DELETE:
		hc_delete(hc);
		break;
	case HM_POST:
		hc_post_headers(hc, conf, accept);
		break;
	default:
		break;
	}
 out:
	free(accept);
	free(v);
	return 0;
}

/* ---- writing -------------------------------------------------------- */

/*
 * Writes the status line and headers.  An answer that is whole and fits
 * one write (HTTP_WRITE_CHUNK) goes with them, so the agent gets one wakeup
 * instead of the headers now and the body a poll cycle later; returns 1
 * then (the body is sent), 0 when only the headers went, -1 on error.
 */
static int
hc_write_headers(struct hconn *hc)
{
	uint8_t *start = txbuf + LWS_PRE, *p = start,
	    *end = start + HTTP_HDRS_MAX;
	struct lws *wsi = hc->wsi;
	const char *www;
	size_t hlen, n;

#define H(name, value) do {						\
	if (lws_add_http_header_by_name(wsi, (const unsigned char *)(name), \
	    (const unsigned char *)(value), (int)strlen(value), &p, end))	\
		return -1;						\
} while (0)
	if (hc->status == 204) {
		if (lws_add_http_header_status(wsi, 204, &p, end))
			return -1;
	} else if (hc->sse) {
		/*
		 * An event stream has no length.  lws would answer it with
		 * "connection: close", costing the agent a new TCP and TLS
		 * handshake for every request; chunked encoding (framed in
		 * hc_writeable) keeps the connection for the next one.
		 */
		if (lws_add_http_header_status(wsi, (unsigned)hc->status, &p,
		    end))
			return -1;
		H("content-type:", "text/event-stream");
		H("transfer-encoding:", "chunked");
	} else if (lws_add_http_common_headers(wsi, (unsigned)hc->status,
	    hc->ctype, hc->sse ? LWS_ILLEGAL_HTTP_CONTENT_LEN :
	    (lws_filepos_t)buf_len(&hc->out), &p, end))
		return -1;
	if (hc->set_sid[0] != '\0')
		H("mcp-session-id:", hc->set_sid);
	if (hc->www_auth) {
		www = hc->www_auth == 2 ?
		    "Bearer realm=\"mcptun\", error=\"invalid_token\"" :
		    "Bearer realm=\"mcptun\"";
		H("www-authenticate:", www);
	}
	if (hc->allow != NULL)
		H("allow:", hc->allow);
	if (hc->retry_after > 0) {
		char ra[16];

		snprintf(ra, sizeof(ra), "%d", hc->retry_after);
		H("retry-after:", ra);
	}
	if (hc->sse) {
		H("cache-control:", "no-cache");
		H("x-accel-buffering:", "no");
	} else if (hc->ctype != NULL)
		H("cache-control:", "no-store");
	if (hc->origin != NULL) {
		H("access-control-allow-origin:", hc->origin);
		H("vary:", "Origin");
		H("access-control-expose-headers:", "Mcp-Session-Id");
		if (hc->preflight) {
			H("access-control-allow-methods:",
			    "GET, POST, DELETE, OPTIONS");
			H("access-control-allow-headers:", "Authorization, "
			    "Content-Type, Accept, Mcp-Session-Id, "
			    "MCP-Protocol-Version, Last-Event-ID");
			H("access-control-max-age:", "600");
		}
	}
	if (hc->close_after && !hc->sse)
		H("connection:", "close");
#undef H
	if (lws_finalize_http_header(wsi, &p, end))
		return -1;
	hlen = (size_t)(p - start);
	n = buf_len(&hc->out);
	if (hc->sse || !hc->final || n == 0 ||
	    hlen + n > HTTP_WRITE_CHUNK) {
		if (lws_write(wsi, start, hlen, LWS_WRITE_HTTP_HEADERS) !=
		    (int)hlen)
			return -1;
		return 0;
	}
	memcpy(p, buf_ptr(&hc->out), n);
	if (lws_write(wsi, start, hlen + n, LWS_WRITE_HTTP_FINAL) !=
	    (int)(hlen + n))
		return -1;
	buf_consume(&hc->out, n);
	metrics_bytes(MD_TO_AGENTS, n);
	hc_pressure(hc);
	return 1;
}

/* The whole answer has gone out: end the transaction. */
static int
hc_complete(struct hconn *hc)
{
	struct lws *wsi = hc->wsi;

	hc->state = HC_DONE;
	lws_sul_cancel(&hc->sul_keepalive);
	if (hc->close_after)
		return -1;
	/* May free our user data (and hc, via DROP_PROTOCOL): return now. */
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int
hc_writeable(struct hc_slot *slot)
{
	struct hconn *hc = slot->hc;
	size_t n;
	int last;

	if (hc == NULL || hc->state == HC_DONE || !hc->hdrs_ready)
		return 0;
	if (!hc->hdrs_sent) {
		int r = hc_write_headers(hc);

		if (r < 0)
			return -1;
		hc->hdrs_sent = 1;
		if (r == 1)
			return hc_complete(hc);
		if (buf_len(&hc->out) > 0 || hc->ctype != NULL)
			lws_callback_on_writable(hc->wsi);
		else if (hc->final)
			return hc_complete(hc);
		return 0;
	}
	if (hc->sse && hc->final && buf_len(&hc->out) == 0 && !hc->chunk_end) {
		/* Nothing left but the last (empty) chunk. */
		hc->chunk_end = 1;
		memcpy(txbuf + LWS_PRE, "0\r\n\r\n", 5);
		if (lws_write(hc->wsi, txbuf + LWS_PRE, 5, LWS_WRITE_HTTP) < 0)
			return -1;
		return hc_complete(hc);
	}
	if ((n = buf_len(&hc->out)) > 0) {
		size_t off = 0, len;

		if (n > (hc->sse ? SSE_CHUNK_MAX : HTTP_WRITE_CHUNK))
			n = hc->sse ? SSE_CHUNK_MAX : HTTP_WRITE_CHUNK;
		last = hc->final && n == buf_len(&hc->out);
		if (hc->sse)
			off = (size_t)snprintf((char *)txbuf + LWS_PRE,
			    CHUNK_FRAMING, "%zx\r\n", n);
		memcpy(txbuf + LWS_PRE + off, buf_ptr(&hc->out), n);
		len = off + n;
		if (hc->sse) {
			memcpy(txbuf + LWS_PRE + len, "\r\n", 2);
			len += 2;
			if (last) {
				memcpy(txbuf + LWS_PRE + len, "0\r\n\r\n", 5);
				len += 5;
				hc->chunk_end = 1;
			}
		}
		if (lws_write(hc->wsi, txbuf + LWS_PRE, len, last && !hc->sse ?
		    LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < 0)
			return -1;
		buf_consume(&hc->out, n);
		metrics_bytes(MD_TO_AGENTS, n);
		hc_pressure(hc);
		if (buf_len(&hc->out) > 0) {
			lws_callback_on_writable(hc->wsi);
			return 0;
		}
	}
	if (hc->final)
		return hc_complete(hc);
	return 0;
}

/* lws is done with the exchange (transaction over or connection gone). */
static void
hc_release(struct hc_slot *slot)
{
	struct hconn *hc = slot->hc;
	struct mcps *s;

	if (hc == NULL)
		return;
	slot->hc = NULL;
	if ((s = hc->sess) != NULL) {
		hc_detach(hc);
		if (hc->idkey != NULL) {
			/* The agent hung up before the answer. */
			hc->outcome = MO_CANCELLED;
			if (hc->is_init)
				mcps_kill(s, CLOSE_NORMAL, JRPC_SESSION_ENDED,
				    404, MO_CANCELLED, "the agent hung up "
				    "before initialize was answered");
			else
				mcps_cancel(s, hc->req_id, "the agent's HTTP "
				    "connection closed");
		}
	} else if (hc->state == HC_BODY || hc->state == HC_WAIT)
		hc->outcome = MO_CANCELLED;
	if (hc->idkey != NULL)
		metrics_observe_ms(now_ms() - hc->t0_ms);
	if (!hc->uncounted)
		metrics_request(hc->outcome);
	lws_sul_cancel(&hc->sul_timeout);
	lws_sul_cancel(&hc->sul_keepalive);
	buf_free(&hc->body);
	buf_free(&hc->out);
	json_decref(hc->req_id);
	free(hc->idkey);
	free(hc->progkey);
	free(hc->agent);
	free(hc->origin);
	free(hc);
}

/* ---- the lws protocol ----------------------------------------------- */

int
http_callback(struct lws *wsi, int reason, void *user, void *in, size_t len)
{
	struct hc_slot *slot = user;
	struct hconn *hc;
	int r;

	switch (reason) {
	case LWS_CALLBACK_HTTP:
		if (slot == NULL)
			return -1;
		hc_release(slot);	/* never expected; be safe */
		return hc_request(wsi, slot, in);
	case LWS_CALLBACK_HTTP_BODY:
		if (slot == NULL || (hc = slot->hc) == NULL ||
		    hc->state != HC_BODY)
			return 0;
		if ((r = buf_append(&hc->body, in, len)) != 0) {
			hc->close_after = 1;
			hc_error(hc, 413, NULL, JRPC_INVALID_REQUEST,
			    MO_TOO_LARGE, "Payload Too Large: the limit is %"
			    PRIu64 " bytes",
			    relay_conf_current()->limits.max_body);
		}
		return 0;
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		if (slot == NULL || (hc = slot->hc) == NULL ||
		    hc->state != HC_BODY)
			return 0;
		hc_post(hc);
		if (hc->state == HC_WAIT)
			lws_http_headers_detach(wsi);
		return 0;
	case LWS_CALLBACK_HTTP_WRITEABLE:
		if (slot == NULL)
			return 0;
		return hc_writeable(slot);
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
	case LWS_CALLBACK_CLOSED_HTTP:
		if (slot != NULL)
			hc_release(slot);
		return 0;
	default:
		return 0;
	}
}

size_t
http_user_size(void)
{
	return sizeof(struct hc_slot);
}

size_t
http_reconfigure(const struct relay_conf *conf)
{
	const struct relay_agent_conf *ag;
	struct mcps *s, *next;
	size_t n = 0;

	for (s = TAILQ_FIRST(&sessions); s != NULL; s = next) {
		next = TAILQ_NEXT(s, entry);
		ag = agent_by_name(conf, s->agent);
		if (ag != NULL && relay_agent_may_use(ag, s->tunnel,
		    strcmp(s->server, "*") == 0 ? NULL : s->server))
			continue;
		mcps_kill(s, CLOSE_NORMAL, JRPC_SESSION_ENDED, 404,
		    MO_UNAVAILABLE, ag == NULL ? "the agent was removed from "
		    "the relay's configuration" : "the agent may no longer "
		    "use this endpoint");
		n++;
	}
	return n;
}

void
http_shutdown(void)
{
	struct mcps *s;

	shutting_down = 1;
	while ((s = TAILQ_FIRST(&sessions)) != NULL)
		mcps_kill(s, CLOSE_SHUTDOWN, JRPC_UNAVAILABLE, 503,
		    MO_UNAVAILABLE, "the relay is shutting down");
	lws_sul_cancel(&sul_sweep);
	sweep_armed = 0;
	/* Nothing up the stack holds a session here: free them now. */
	lws_sul_cancel(&sul_reap);
	reap_cb(&sul_reap);
}
