/*
 * One MCP session per tunnel stream: the client's policy point.
 *
 * The relay can only ask for a server by name; session_open() refuses any
 * name the allowlist (the config) does not hold, and counts sessions
 * against the server's max_sessions.  Every message from the agent is
 * parsed before it goes anywhere: requests are tracked in a pending table
 * (id -> method, tool, start time, deadline) so that
 *   - a tools/call of a tool the server's filter denies is answered with
 *     -32003 here and never reaches the upstream;
 *   - the answer to tools/list is filtered by the same allow/deny lists;
 *   - a request without an answer within limits.request_timeout gets
 *     -32002 (one lws timer per session, armed for the oldest deadline);
 *   - when the upstream exits, every pending request gets -32001 naming
 *     the server and why, and the stream ends with CLOSE_UPSTREAM;
 *   - each completed call is written to the audit log.
 *
 * Backpressure runs both ways: past a high-water mark of bytes queued on
 * the link the upstream is paused until session_drain(); an upstream
 * whose input is full (send says MT_EAGAIN) pauses the stream's receive
 * side until it drains.
 *
 * Lifetime: link.c owns the id -> session map.  The relay closing the
 * stream calls session_close(); a session that ends its own stream calls
 * link_stream_end() and frees itself (link.c forgets it first).  Entry
 * points hold a busy count so the struct is freed only once the last
 * callback that may still touch it has returned.
 *
 * The merged endpoint (server "*"): the stream's session holds a merge
 * (merge.c) instead of an upstream, and the merge opens one member
 * session per server.  A member is an ordinary session, policy and all,
 * whose agent side is the merge rather than the link: what it would send
 * on the stream goes to merge_member_output(), and its end is reported
 * with merge_member_ended() instead of a CLOSE.
 *
 * Reload: session_reconfigure_all() walks the sessions with the new
 * snapshot.  A session of a removed server ends with -32004 and
 * CLOSE_REMOVED; a changed tool filter applies at once and the agent gets
 * notifications/tools/list_changed; changed connection settings leave the
 * session on the upstream it started with until it ends (new sessions get
 * the new settings).
 */
#include <sys/queue.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libwebsockets.h>

#include "client/audit.h"
#include "client/client.h"
#include "client/client_conf.h"
#include "client/merge.h"
#include "client/offload.h"
#include "client/upstream.h"
#include "client/up_stdio.h"
#include "common/err.h"
#include "common/jsonrpc.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "proto/frame.h"

/* Pause the upstream when this much is queued towards the relay. */
#define SESSION_HIGH_WATER	(8 * 1024 * 1024)
/* Longest server or tool name quoted back in a message. */
#define SESSION_NAME_QUOTE	64

/* ---- the pending-request table ----------------------------------------- */

struct pending {
	TAILQ_ENTRY(pending)	 entry;
	json_t			*id;		/* string or integer */
	char			*method;
	char			*tool;		/* tools/call; NULL otherwise */
	uint64_t		 start_ms;	/* monotonic */
	uint64_t		 start_wall_ms;	/* for the audit log */
	uint64_t		 deadline_ms;	/* monotonic; 0 = none */
	size_t			 bytes_in;
	int			 local;		/* answered by offload.c */
	char			*offload_id;	/* for the audit log */
	uint64_t		 offload_bytes;
};

TAILQ_HEAD(pending_list, pending);

struct pending_table {
	struct pending_list	 list;		/* oldest first */
	size_t			 count;
};

static void
pending_init(struct pending_table *t)
{
	TAILQ_INIT(&t->list);
	t->count = 0;
}

/* Returns the entry for id (compared as JSON values), or NULL. */
static struct pending *
pending_find(struct pending_table *t, const json_t *id)
{
	struct pending *p;

	if (id == NULL)
		return NULL;
	TAILQ_FOREACH(p, &t->list, entry)
		if (json_equal(p->id, id))
			return p;
	return NULL;
}

/*
 * Adds a request; returns the new entry, or NULL if id is already
 * pending.  The table keeps its own copies of id, method and tool.
 */
static struct pending *
pending_add(struct pending_table *t, const json_t *id, const char *method,
    const char *tool, uint64_t now, uint64_t timeout_ms, size_t bytes_in)
{
	struct pending *p;

	if (pending_find(t, id) != NULL)
		return NULL;
	p = xcalloc(1, sizeof(*p));
	if ((p->id = json_deep_copy(id)) == NULL)
		fatalx("out of memory copying a request id");
	p->method = xstrdup(method);
	p->tool = tool != NULL ? xstrdup(tool) : NULL;
	p->start_ms = now;
	p->start_wall_ms = now_wall_ms();
	p->deadline_ms = timeout_ms > 0 ? now + timeout_ms : 0;
	p->bytes_in = bytes_in;
	TAILQ_INSERT_TAIL(&t->list, p, entry);
	t->count++;
	return p;
}

/* Unlinks p and frees it. */
static void
pending_remove(struct pending_table *t, struct pending *p)
{
	TAILQ_REMOVE(&t->list, p, entry);
	t->count--;
	json_decref(p->id);
	free(p->method);
	free(p->tool);
	free(p->offload_id);
	free(p);
}

/* The earliest deadline, or 0 if nothing pending has one. */
static uint64_t
pending_next_deadline(const struct pending_table *t)
{
	const struct pending *p;
	uint64_t next = 0;

	TAILQ_FOREACH(p, &t->list, entry)
		if (p->deadline_ms != 0 &&
		    (next == 0 || p->deadline_ms < next))
			next = p->deadline_ms;
	return next;
}

/* ---- pure helpers on messages ------------------------------------------ */

/*
 * Removes from result.tools every tool sc's filter does not let through
 * (and every entry without a string name, which could not be called).
 * Returns the number removed.
 */
static size_t
session_filter_tools(json_t *result, const struct server_conf *sc)
{
	json_t *tools, *name;
	size_t i, removed = 0;

	tools = json_object_get(result, "tools");
	if (!json_is_array(tools))
		return 0;
	for (i = 0; i < json_array_size(tools); ) {
		name = json_object_get(json_array_get(tools, i), "name");
		if (!json_is_string(name) ||
		    !server_conf_tool_allowed(sc, json_string_value(name))) {
			json_array_remove(tools, i);
			removed++;
		} else
			i++;
	}
	return removed;
}

/*
 * params.name of a tools/call request, or NULL if missing, not text, or
 * holding a NUL (checked as C text, it would not be the name the server
 * reads).
 */
static const char *
session_call_tool(const json_t *msg)
{
	const json_t *name;

	name = json_object_get(json_object_get(msg, "params"), "name");
	if (!json_is_string(name) ||
	    strlen(json_string_value(name)) != json_string_length(name))
		return NULL;
	return json_string_value(name);
}

/* Copies at most SESSION_NAME_QUOTE printable characters of s to out. */
static const char *
session_quote(const char *s, char *out, size_t outlen)
{
	size_t i, n = 0;

	for (i = 0; s[i] != '\0' && n + 4 < outlen && i < SESSION_NAME_QUOTE;
	    i++)
		out[n++] = (unsigned char)s[i] < 0x20 ||
		    (unsigned char)s[i] >= 0x7f ? '?' : s[i];
	if (s[i] != '\0' && n + 4 < outlen) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
	return out;
}

/* ---- sessions ---------------------------------------------------------- */

struct session {
	TAILQ_ENTRY(session)		 entry;
	uint32_t			 id;
	char				*server;
	char				*agent;
	char				*tag;		/* "server/id" */
	struct client_conf		*conf;		/* opened with */
	const struct server_conf	*sc;		/* in conf */
	struct client_conf		*fconf;		/* filters from */
	const struct server_conf	*fsc;		/* in fconf */
	const struct upstream_kind	*kind;
	struct upstream			*up;
	struct merge			*merge;		/* server "*" */
	struct merge			*parent;	/* a merge's member */
	struct pending_table		 pending;
	lws_sorted_usec_list_t		 sul;		/* request deadlines */
	uint64_t			 okey;		/* owns offloaded outputs */
	int				 busy;
	int				 ended;		/* no more link calls */
	int				 gone;		/* free at busy == 0 */
	int				 up_paused;	/* we paused the upstream */
	int				 link_paused;	/* we paused the stream */
};

static TAILQ_HEAD(, session) sessions = TAILQ_HEAD_INITIALIZER(sessions);

static void session_on_message(void *, const uint8_t *, size_t);
static void session_on_exit(void *, const char *);
static void session_on_drain(void *);
static struct offload_sink *session_on_big(void *, const uint8_t *, size_t);
static offload_done_cb session_local_done;

static const struct upstream_ops session_up_ops = {
	.on_message = session_on_message,
	.on_exit = session_on_exit,
	.on_drain = session_on_drain,
	.on_big = session_on_big,
};

/* client_conf_current() is const; a snapshot reference is not. */
static struct client_conf *
session_conf_ref(const struct client_conf *conf)
{
	return client_conf_ref((struct client_conf *)(uintptr_t)conf);
}

static void
session_free(struct session *s)
{
	struct pending *p;

	while ((p = TAILQ_FIRST(&s->pending.list)) != NULL)
		pending_remove(&s->pending, p);
	if (s->okey != 0)
		offload_owner_end(s->okey);
	merge_free(s->merge);
	client_conf_unref(s->fconf);
	client_conf_unref(s->conf);
	free(s->server);
	free(s->agent);
	free(s->tag);
	free(s);
}

static void
session_hold(struct session *s)
{
	s->busy++;
}

static void
session_release(struct session *s)
{
	if (--s->busy == 0 && s->gone)
		session_free(s);
}

/* Takes s off the list and frees it once no callback is using it. */
static void
session_destroy(struct session *s)
{
	if (s->gone)
		return;
	s->gone = 1;
	lws_sul_cancel(&s->sul);
	TAILQ_REMOVE(&sessions, s, entry);
	if (s->busy == 0)
		session_free(s);
}

static void
session_audit_call(struct session *s, const char *method, const char *tool,
    uint64_t start_ms, uint64_t start_wall_ms, size_t bytes_in,
    const char *outcome, size_t bytes_out, const char *offload_id,
    uint64_t offload_bytes)
{
	const struct client_conf *cur = client_conf_current();
	struct audit_rec r;

	if (cur == NULL || cur->audit_log == NULL)
		return;
	memset(&r, 0, sizeof(r));
	r.time_ms = start_wall_ms;
	r.tunnel = cur->relay.tunnel;
	r.agent = s->agent;
	r.server = s->server;
	r.session = s->id;
	r.method = method;
	r.tool = tool;
	r.duration_ms = now_ms() - start_ms;
	r.bytes_in = bytes_in;
	r.bytes_out = bytes_out;
	r.outcome = outcome;
	r.offload_id = offload_id;
	r.offload_bytes = offload_bytes;
	audit_write(cur->audit_log, &r);
}

static void
session_audit(struct session *s, const struct pending *p,
    const char *outcome, size_t bytes_out)
{
	session_audit_call(s, p->method, p->tool, p->start_ms,
	    p->start_wall_ms, p->bytes_in, outcome, bytes_out, p->offload_id,
	    p->offload_bytes);
}

/* Audits a call that never became pending (denied, malformed). */
static void
session_audit_now(struct session *s, const char *method, const char *tool,
    size_t bytes_in, const char *outcome, size_t bytes_out)
{
	session_audit_call(s, method, tool, now_ms(), now_wall_ms(), bytes_in,
	    outcome, bytes_out, NULL, 0);
}

/*
 * The agent side of a session: the link for a stream's own session, the
 * merge for a member.
 */
static int
session_link_send(struct session *s, const void *msg, size_t len)
{
	if (s->parent != NULL)
		return merge_member_output(s->parent, s, msg, len);
	return link_send(s->id, msg, len);
}

static void
session_link_pause(struct session *s)
{
	if (s->parent != NULL)
		merge_member_pause(s->parent);
	else
		link_pause(s->id);
}

static void
session_link_resume(struct session *s)
{
	if (s->parent != NULL)
		merge_member_resume(s->parent);
	else
		link_resume(s->id);
}

/* Ends the agent side: CLOSE on the stream, or tells the merge. */
static void
session_link_end(struct session *s, uint16_t code, const char *why)
{
	if (s->parent == NULL) {
		link_stream_end(s->id, code, why);
		return;
	}
	if (s->link_paused) {
		s->link_paused = 0;
		merge_member_resume(s->parent);
	}
	merge_member_ended(s->parent, s, code, why);
}

/* Checks the link's queue after sending towards the agent. */
static void
session_check_link(struct session *s)
{
	if (!s->up_paused && s->up != NULL && !s->ended &&
	    (link_queued(s->id) > SESSION_HIGH_WATER || link_congested())) {
		s->up_paused = 1;
		s->kind->pause(s->up);
	}
}

/* Sends a JSON-RPC error for id to the agent; returns its size. */
static size_t
session_reply_error(struct session *s, const json_t *id, int code,
    const char *message)
{
	size_t len;
	char *t;
	int r;

	if (s->ended)
		return 0;
	t = jrpc_error_text(id, code, message, &len);
	if ((r = session_link_send(s, t, len)) != 0)
		log_warnx("[%s] cannot send an error to the agent: %s",
		    s->tag, mt_strerror(r));
	free(t);
	session_check_link(s);
	return len;
}

/* Sends one message to the upstream; 0, or MT_E* (not MT_EAGAIN). */
static int
session_send_up(struct session *s, const void *msg, size_t len)
{
	int r;

	if (s->up == NULL)
		return MT_ECLOSED;
	r = s->kind->send(s->up, msg, len);
	if (r == MT_EAGAIN) {
		/* Queued; stop taking more from the relay until on_drain. */
		if (!s->link_paused) {
			s->link_paused = 1;
			session_link_pause(s);
		}
		r = 0;
	}
	return r;
}

/*
 * Fails every pending request with code and message, ends the stream
 * with close_code and why, closes the upstream and frees s.
 */
static void
session_end(struct session *s, uint16_t close_code, const char *why,
    int code, const char *message, const char *outcome)
{
	struct pending *p;
	size_t n;

	if (s->ended)
		return;
	while ((p = TAILQ_FIRST(&s->pending.list)) != NULL) {
		n = session_reply_error(s, p->id, code, message);
		session_audit(s, p, outcome, n);
		pending_remove(&s->pending, p);
	}
	s->ended = 1;
	if (s->up != NULL) {
		s->kind->close(s->up);
		s->up = NULL;
	}
	session_link_end(s, close_code, why);
	session_destroy(s);
}

static void session_timeout(lws_sorted_usec_list_t *);

/* Arms the timer for the oldest deadline (or disarms it). */
static void
session_arm(struct session *s)
{
	uint64_t next = pending_next_deadline(&s->pending), now;
	struct lws_context *ctx = client_context();

	if (s->gone || ctx == NULL)
		return;
	if (next == 0) {
		lws_sul_cancel(&s->sul);
		return;
	}
	now = now_ms();
	lws_sul_schedule(ctx, 0, &s->sul, session_timeout,
	    (lws_usec_t)(next > now ? next - now : 0) * LWS_US_PER_MS);
}

static void
session_timeout(lws_sorted_usec_list_t *sul)
{
	struct session *s = lws_container_of(sul, struct session, sul);
	struct pending *p, *next;
	uint64_t now = now_ms();
	char msg[256], *cancel;
	json_t *note;
	size_t n, clen;
	uint64_t ms;

	session_hold(s);
	for (p = TAILQ_FIRST(&s->pending.list); p != NULL && !s->ended;
	    p = next) {
		next = TAILQ_NEXT(p, entry);
		if (p->deadline_ms == 0 || p->deadline_ms > now)
			continue;
		ms = p->deadline_ms - p->start_ms;
		if (ms % 1000 == 0)
			snprintf(msg, sizeof(msg), "server %s did not answer %s "
			    "within %llu s", s->server, p->method,
			    (unsigned long long)(ms / 1000));
		else
			snprintf(msg, sizeof(msg), "server %s did not answer %s "
			    "within %llu ms", s->server, p->method,
			    (unsigned long long)ms);
		log_info("[%s] %s", s->tag, msg);
		n = session_reply_error(s, p->id, JRPC_TIMEOUT, msg);
		/* Tell the server to stop working on it (MCP cancellation). */
		note = json_pack("{s:s, s:s, s:{s:O, s:s}}", "jsonrpc", "2.0",
		    "method", "notifications/cancelled", "params", "requestId",
		    p->id, "reason", "request timed out");
		if (note != NULL) {
			cancel = jrpc_dump(note, &clen);
			(void)session_send_up(s, cancel, clen);
			free(cancel);
			json_decref(note);
		}
		session_audit(s, p, "timeout", n);
		pending_remove(&s->pending, p);
	}
	session_arm(s);
	session_release(s);
}

/* ---- from the agent ---------------------------------------------------- */

/*
 * A request bound for the upstream (not a local offload tool): checks a
 * tools/call against the filter (tool is params.name, NULL if missing or
 * not text), tracks it as pending and sends raw on.
 */
static void
session_agent_forward(struct session *s, const json_t *id, const char *method,
    const char *tool, const void *raw, size_t rawlen)
{
	char q1[SESSION_NAME_QUOTE + 8], msg[256];
	struct pending *p;
	size_t n;
	int r;

	if (strcmp(method, "tools/call") == 0) {
		if (tool == NULL) {
			n = session_reply_error(s, id, JRPC_INVALID_PARAMS,
			    "tools/call needs params.name");
			session_audit_now(s, method, NULL, rawlen, "error", n);
			return;
		}
		if (!server_conf_tool_allowed(s->fsc, tool)) {
			snprintf(msg, sizeof(msg), "tool %s is not allowed on "
			    "server %s", session_quote(tool, q1, sizeof(q1)),
			    s->server);
			log_info("[%s] agent %s: %s", s->tag, s->agent, msg);
			n = session_reply_error(s, id, JRPC_DENIED, msg);
			session_audit_now(s, method, tool, rawlen, "denied", n);
			return;
		}
	} else
		tool = NULL;
	p = pending_add(&s->pending, id, method, tool, now_ms(),
	    s->fconf->limits.request_timeout_ms, rawlen);
	if ((r = session_send_up(s, raw, rawlen)) != 0) {
		snprintf(msg, sizeof(msg), "server %s cannot take the request: "
		    "%s", s->server, r == MT_ECLOSED ? "it is not running" :
		    mt_strerror(r));
		n = session_reply_error(s, id, JRPC_UPSTREAM_ERROR, msg);
		session_audit(s, p, r == MT_ECLOSED ? "upstream_exit" : "error",
		    n);
		pending_remove(&s->pending, p);
	}
	session_arm(s);
}

static void
session_agent_request(struct session *s, json_t *m, const void *raw,
    size_t rawlen)
{
	const char *method = json_string_value(json_object_get(m, "method"));
	const json_t *id = json_object_get(m, "id");
	struct offload_owner who;
	struct pending *p;

	if (pending_find(&s->pending, id) != NULL) {
		session_reply_error(s, id, JRPC_INVALID_REQUEST,
		    "request id already in use");
		return;
	}
	if (offload_is_local(m, &s->fsc->offload)) {
		/* mcptun_read & co.: answered here from the spool. */
		p = pending_add(&s->pending, id, method, session_call_tool(m),
		    now_ms(), s->fconf->limits.request_timeout_ms, rawlen);
		p->local = 1;
		who = (struct offload_owner){ s->okey, s->agent, s->server };
		offload_call(&s->fsc->offload, &who, m, session_local_done, s);
		session_arm(s);
		return;
	}
	session_agent_forward(s, id, method, session_call_tool(m), raw, rawlen);
}

/*
 * A message from the agent read with jrpc_peek (no tree): requests for the
 * upstream and responses go on as the bytes that came.  Returns 0 if it
 * needs the tree instead: a cancellation, an offload tool (whose name
 * starts with mcptun_, or resources/read), or anything invalid.
 */
static int
session_agent_peeked(struct session *s, const struct jrpc_peek *pk)
{
	char *tool;
	int r;

	switch (pk->kind) {
	case JRPC_RESPONSE:
		if ((r = session_send_up(s, pk->text, pk->len)) != 0)
			log_debug("[%s] response not delivered: %s", s->tag,
			    mt_strerror(r));
		return 1;
	case JRPC_REQUEST:
		break;
	default:
		return 0;
	}
	if (strcmp(pk->method, "resources/read") == 0)
		return 0;
	tool = jrpc_peek_strdup(pk, JRPC_P_NAME);
	if (tool != NULL && (strncmp(tool, "mcptun_", 7) == 0 ||
	    strlen(tool) + 2 != pk->v[JRPC_P_NAME].len)) {
		/* Local tools, and names with escapes, the tree's way. */
		free(tool);
		return 0;
	}
	if (pending_find(&s->pending, pk->id) != NULL)
		session_reply_error(s, pk->id, JRPC_INVALID_REQUEST,
		    "request id already in use");
	else
		session_agent_forward(s, pk->id, pk->method, tool, pk->text,
		    pk->len);
	free(tool);
	return 1;
}

static void
session_agent_notification(struct session *s, json_t *m, const void *raw,
    size_t rawlen)
{
	const char *method = json_string_value(json_object_get(m, "method"));
	const json_t *params = json_object_get(m, "params");
	struct pending *p;
	int r;

	if (strcmp(method, "tools/call") == 0) {
		/* A call must be a request, so the filter can answer it. */
		log_info("[%s] dropped a tools/call without an id", s->tag);
		return;
	}
	if (strcmp(method, "notifications/cancelled") == 0 &&
	    (p = pending_find(&s->pending,
	    json_object_get(params, "requestId"))) != NULL) {
		/* The server need not answer a cancelled request. */
		session_audit(s, p, "cancelled", 0);
		pending_remove(&s->pending, p);
		session_arm(s);
	}
	if ((r = session_send_up(s, raw, rawlen)) != 0)
		log_debug("[%s] notification %s not delivered: %s", s->tag,
		    method, mt_strerror(r));
}

/* One message (raw may be NULL: then m is serialised). */
static void
session_agent_msg(struct session *s, json_t *m, const void *raw,
    size_t rawlen)
{
	const json_t *id;
	char *dumped = NULL;
	int r;

	if (raw == NULL) {
		dumped = jrpc_dump(m, &rawlen);
		raw = dumped;
	}
	switch (jrpc_classify(m)) {
	case JRPC_REQUEST:
		session_agent_request(s, m, raw, rawlen);
		break;
	case JRPC_NOTIFICATION:
		session_agent_notification(s, m, raw, rawlen);
		break;
	case JRPC_RESPONSE:
		/* The agent answering the server (sampling, roots, ping). */
		if ((r = session_send_up(s, raw, rawlen)) != 0)
			log_debug("[%s] response not delivered: %s", s->tag,
			    mt_strerror(r));
		break;
	default:
		id = json_object_get(m, "id");
		if (json_is_string(id) || json_is_integer(id))
			session_reply_error(s, id, JRPC_INVALID_REQUEST,
			    "invalid JSON-RPC 2.0 message");
		else
			log_info("[%s] dropped an invalid JSON-RPC message from "
			    "the agent", s->tag);
		break;
	}
	free(dumped);
}

/* ---- from the upstream ------------------------------------------------- */

/* Sends a message to the agent; a response too big becomes an error. */
static size_t
session_to_agent(struct session *s, const json_t *id, const void *msg,
    size_t len)
{
	char why[128];
	int r;

	if (s->ended)
		return 0;
	r = session_link_send(s, msg, len);
	if (r == MT_ETOOBIG && id != NULL) {
		snprintf(why, sizeof(why), "the answer of server %s is too "
		    "large (%zu bytes)", s->server, len);
		log_info("[%s] %s", s->tag, why);
		return session_reply_error(s, id, JRPC_UPSTREAM_ERROR, why);
	}
	if (r != 0)
		log_warnx("[%s] cannot send to the agent: %s", s->tag,
		    mt_strerror(r));
	session_check_link(s);
	return len;
}

/*
 * A tools/call result larger than the offload threshold, whole in memory:
 * stored in the spool, and *outp (caller frees) is the small answer that
 * replaces it.  Returns 0, or MT_E* to send msg as it is.
 */
static int
session_offload(struct session *s, struct pending *p, const uint8_t *msg,
    size_t len, char **outp, size_t *outlenp)
{
	size_t t = offload_threshold(&s->fsc->offload);
	struct offload_owner who = { s->okey, s->agent, s->server };
	struct offload_info info;
	int r;

	if (t == 0 || len <= t)
		return MT_EINVAL;
	if ((r = offload_message(&s->fsc->offload, &who, p->tool, msg, len,
	    outp, outlenp, &info)) != 0)
		return r;
	if (info.id[0] != '\0') {
		p->offload_id = xstrdup(info.id);
		p->offload_bytes = info.bytes;
	}
	return 0;
}

/*
 * Filters the tools/list answer msg (its tree *mp, built here if NULL) in
 * place; returns 1 if the tree changed and must be sent instead.
 */
static int
session_edit_tools(struct session *s, json_t **mp, const uint8_t *msg,
    size_t len)
{
	json_t *result;

	if (*mp == NULL && (*mp = jrpc_parse(msg, len, NULL, 0)) == NULL)
		return 0;
	result = json_object_get(*mp, "result");
	return session_filter_tools(result, s->fsc) +
	    offload_add_tools(result, &s->fsc->offload) > 0;
}

/*
 * A message from the upstream.  It is read with jrpc_peek: an answer that
 * nothing edits (all but tools/list and offloaded results) and every
 * server request or notification go to the agent as the bytes that came.
 * The tree is built for tools/list, and jansson reads whatever the
 * scanner does not vouch for (so malformed lines are judged as before).
 */
static void
session_on_message(void *arg, const uint8_t *msg, size_t len)
{
	struct session *s = arg;
	struct jrpc_peek peek;
	enum jrpc_kind kind;
	const json_t *id;
	json_t *m = NULL, *result;
	const char *outcome;
	struct pending *p;
	char errtext[160], *dumped = NULL;
	const void *out = msg;
	size_t outlen = len;
	int has_result, failed;

	if (s->ended)
		return;
	session_hold(s);
	if (jrpc_peek(msg, len, &peek)) {
		kind = peek.kind;
		id = peek.id;
		has_result = jrpc_peek_has(&peek, JRPC_P_RESULT);
		failed = jrpc_peek_has(&peek, JRPC_P_ERROR) ||
		    peek.v[JRPC_P_IS_ERROR].type == JSCAN_TRUE;
	} else if ((m = jrpc_parse(msg, len, errtext, sizeof(errtext))) ==
	    NULL) {
		log_warnx("[%s] server sent a line that is not JSON (%s); "
		    "dropped", s->tag, errtext);
		goto out;
	} else {
		kind = jrpc_classify(m);
		id = json_object_get(m, "id");
		result = json_object_get(m, "result");
		has_result = result != NULL;
		failed = json_object_get(m, "error") != NULL ||
		    json_is_true(json_object_get(result, "isError"));
	}
	switch (kind) {
	case JRPC_RESPONSE:
		if ((p = pending_find(&s->pending, id)) == NULL) {
			/* Timed out or cancelled already: the agent moved on. */
			log_debug("[%s] dropped a response to no pending "
			    "request", s->tag);
			break;
		}
		outcome = failed ? "error" : "ok";
		if (strcmp(p->method, "tools/list") == 0 && has_result &&
		    session_edit_tools(s, &m, msg, len)) {
			dumped = jrpc_dump(m, &outlen);
			out = dumped;
		} else if (p->tool != NULL && !p->local && has_result &&
		    session_offload(s, p, msg, len, &dumped, &outlen) == 0) {
			out = dumped;
			if (p->offload_id == NULL)
				outcome = "error";	/* not stored; says why */
		}
		outlen = session_to_agent(s, id, out, outlen);
		session_audit(s, p, outcome, outlen);
		pending_remove(&s->pending, p);
		session_arm(s);
		break;
	case JRPC_REQUEST:
	case JRPC_NOTIFICATION:
		/* Progress, logging, list_changed, sampling, elicitation... */
		session_to_agent(s, NULL, msg, len);
		break;
	default:
		log_warnx("[%s] server sent an invalid JSON-RPC message; "
		    "dropped", s->tag);
		break;
	}
 out:
	free(dumped);
	jrpc_peek_done(&peek);
	json_decref(m);
	session_release(s);
}

static void
session_on_exit(void *arg, const char *why)
{
	struct session *s = arg;

	session_hold(s);
	log_info("[%s] %s; ending the session", s->tag, why);
	session_end(s, CLOSE_UPSTREAM, why, JRPC_UPSTREAM_ERROR, why,
	    "upstream_exit");
	session_release(s);
}

static void
session_on_drain(void *arg)
{
	struct session *s = arg;

	if (s->link_paused && !s->ended) {
		s->link_paused = 0;
		session_link_resume(s);
	}
}

/*
 * An answer made by offload.c (a large result's stand-in, or a local
 * tool's answer) goes to the agent like the server's would, tagged for
 * the audit log.  stored: info names an output made for it, which goes
 * if nobody waits for the answer any more.
 */
static void
session_answer_here(struct session *s, const uint8_t *reply, size_t len,
    const struct offload_info *info, int stored)
{
	struct pending *p;
	json_t *m;

	if (s->ended || (m = jrpc_parse(reply, len, NULL, 0)) == NULL)
		return;
	p = pending_find(&s->pending, json_object_get(m, "id"));
	json_decref(m);
	if (p == NULL) {
		if (stored && info->id[0] != '\0')
			offload_discard(s->okey, info->id);
		return;
	}
	p->local = 1;
	if (info->id[0] != '\0') {
		free(p->offload_id);
		p->offload_id = xstrdup(info->id);
		p->offload_bytes = info->bytes;
	}
	session_on_message(s, reply, len);
}

static void
session_local_done(void *arg, const uint8_t *reply, size_t len,
    const struct offload_info *info)
{
	session_answer_here(arg, reply, len, info, 0);
}

static void
session_offloaded(void *arg, const uint8_t *reply, size_t len,
    const struct offload_info *info)
{
	session_answer_here(arg, reply, len, info, 1);
}

/*
 * A message from the upstream passed the offload threshold while still
 * arriving: if it answers a pending tools/call, the rest goes to a sink
 * in the spool rather than into memory (offload.c).
 */
static struct offload_sink *
session_on_big(void *arg, const uint8_t *head, size_t len)
{
	struct session *s = arg;
	struct offload_owner who = { s->okey, s->agent, s->server };
	struct offload_sink *k;
	struct pending *p;
	json_t *id;

	if (s->ended || offload_probe(head, len, &id) != 0)
		return NULL;
	p = pending_find(&s->pending, id);
	json_decref(id);
	if (p == NULL || p->tool == NULL || p->local ||
	    (k = offload_sink_open(&s->fsc->offload, &who, p->tool,
	    session_offloaded, s)) == NULL)
		return NULL;
	log_debug("[%s] the result of tool %s passed %zu bytes; storing it "
	    "as it arrives", s->tag, p->tool, len);
	offload_sink_write(k, head, len);
	return k;
}

/* ---- opening ----------------------------------------------------------- */

static size_t
session_count(const char *server)
{
	const struct session *s;
	size_t n = 0;

	TAILQ_FOREACH(s, &sessions, entry)
		if (!s->ended && strcmp(s->server, server) == 0)
			n++;
	return n;
}

/*
 * Opens a session to server on stream id, for a stream (parent NULL) or
 * as a member of a merge.  Returns 0 and *out, or a CLOSE_* code with a
 * sentence in why.
 */
static int
session_start(uint32_t id, const char *server, const char *agent,
    struct merge *parent, struct session **out, char *why, size_t whylen)
{
	const struct client_conf *cur = client_conf_current();
	const struct server_conf *sc;
	const struct upstream_kind *kind;
	struct session *s;
	char q[SESSION_NAME_QUOTE + 8];
	const char *e;
	int r;

	if (cur == NULL || (sc = client_conf_server(cur, server)) == NULL) {
		snprintf(why, whylen, "unknown server %s",
		    session_quote(server, q, sizeof(q)));
		return CLOSE_NOT_FOUND;
	}
	if (sc->max_sessions > 0 &&
	    session_count(sc->name) >= (size_t)sc->max_sessions) {
		snprintf(why, whylen, "server %s has reached its limit of "
		    "%lld sessions", sc->name, (long long)sc->max_sessions);
		return CLOSE_LIMIT;
	}
	if ((kind = upstream_kind_for(sc)) == NULL) {
		snprintf(why, whylen, "server type %s not supported yet",
		    server_type_name(sc->type));
		return CLOSE_UPSTREAM;
	}

	s = xcalloc(1, sizeof(*s));
	s->id = id;
	s->server = xstrdup(sc->name);
	s->agent = xstrdup(agent != NULL ? agent : "");
	s->tag = xasprintf("%s/%u", sc->name, id);
	s->conf = session_conf_ref(cur);
	s->sc = sc;
	s->fconf = session_conf_ref(cur);
	s->fsc = sc;
	s->kind = kind;
	s->parent = parent;
	s->okey = offload_owner_key();
	pending_init(&s->pending);
	(void)upstream_take_error();
	if ((r = kind->open(client_vhost(), sc, s->agent, s->tag,
	    &session_up_ops, s, &s->up)) != 0) {
		e = upstream_take_error();
		if (*e != '\0')
			snprintf(why, whylen, "%s", e);
		else
			snprintf(why, whylen, "cannot start server %s: %s",
			    sc->name, mt_strerror(r));
		session_free(s);
		return CLOSE_UPSTREAM;
	}
	TAILQ_INSERT_TAIL(&sessions, s, entry);
	log_info("[%s] %ssession opened for agent %s", s->tag,
	    parent != NULL ? "merged " : "", s->agent);
	*out = s;
	return 0;
}

/* The session of the merged endpoint: a merge, no upstream of its own. */
static int
session_open_merged(uint32_t id, const char *agent,
    const char *const *servers, size_t nservers, const char *const *allow,
    size_t nallow, struct session **out, char *why, size_t whylen)
{
	const struct client_conf *cur = client_conf_current();
	struct session *s;

	if (cur == NULL) {
		snprintf(why, whylen, "no configuration");
		return CLOSE_INTERNAL;
	}
	s = xcalloc(1, sizeof(*s));
	s->id = id;
	s->server = xstrdup("*");
	s->agent = xstrdup(agent != NULL ? agent : "");
	s->tag = xasprintf("*/%u", id);
	s->conf = session_conf_ref(cur);
	s->fconf = session_conf_ref(cur);
	pending_init(&s->pending);
	if ((s->merge = merge_new(s, id, s->agent, servers, nservers, allow,
	    nallow, cur, why, whylen)) == NULL) {
		session_free(s);
		return CLOSE_NOT_FOUND;
	}
	TAILQ_INSERT_TAIL(&sessions, s, entry);
	log_info("[%s] merged session opened for agent %s", s->tag, s->agent);
	*out = s;
	return 0;
}

/* ---- what link.c calls ------------------------------------------------- */

int
session_open(uint32_t id, const char *server, const char *agent,
    const char *const *servers, size_t nservers, const char *const *allow,
    size_t nallow, struct session **out, char *why, size_t whylen)
{
	if (strcmp(server, "*") == 0)
		return session_open_merged(id, agent, servers, nservers, allow,
		    nallow, out, why, whylen);
	return session_start(id, server, agent, NULL, out, why, whylen);
}

void
session_input(struct session *s, const uint8_t *msg, size_t len)
{
	struct jrpc_peek peek;
	char errtext[160];
	json_t *m;
	size_t i;
	int done;

	if (s->ended)
		return;
	session_hold(s);
	if (s->merge == NULL) {
		done = jrpc_peek(msg, len, &peek) &&
		    session_agent_peeked(s, &peek);
		jrpc_peek_done(&peek);
		if (done)
			goto out;
	}
	if ((m = jrpc_parse(msg, len, errtext, sizeof(errtext))) == NULL) {
		log_info("[%s] dropped a message from the agent that is not "
		    "JSON: %s", s->tag, errtext);
		goto out;
	}
	if (s->merge != NULL) {
		if (json_is_array(m)) {
			for (i = 0; i < json_array_size(m) && !s->ended; i++)
				merge_input(s->merge, json_array_get(m, i));
		} else
			merge_input(s->merge, m);
	} else if (json_is_array(m)) {
		/* A JSON-RPC batch: each member on its own. */
		for (i = 0; i < json_array_size(m) && !s->ended; i++)
			session_agent_msg(s, json_array_get(m, i), NULL, 0);
	} else
		session_agent_msg(s, m, msg, len);
	json_decref(m);
 out:
	session_release(s);
}

void
session_close(struct session *s)
{
	struct pending *p;

	if (s->ended)
		return;
	/* The agent is gone: nobody to answer, but the calls are logged. */
	s->ended = 1;
	session_hold(s);
	while ((p = TAILQ_FIRST(&s->pending.list)) != NULL) {
		session_audit(s, p, "cancelled", 0);
		pending_remove(&s->pending, p);
	}
	if (s->merge != NULL)
		merge_close(s->merge);
	if (s->up != NULL) {
		s->kind->close(s->up);
		s->up = NULL;
	}
	log_info("[%s] session closed", s->tag);
	session_destroy(s);
	session_release(s);
}

void
session_drain(struct session *s)
{
	if (s->ended)
		return;
	if (s->merge != NULL) {
		merge_drain(s->merge);
		return;
	}
	if (!s->up_paused || s->up == NULL)
		return;
	if (link_queued(s->id) <= SESSION_HIGH_WATER && !link_congested()) {
		s->up_paused = 0;
		s->kind->resume(s->up);
	}
}

/* 1 if two NULL-terminated string lists hold the same strings in order. */
static int
session_strlist_equal(char *const *a, char *const *b)
{
	size_t i;

	if (a == NULL || b == NULL)
		return a == b;
	for (i = 0; a[i] != NULL && b[i] != NULL; i++)
		if (strcmp(a[i], b[i]) != 0)
			return 0;
	return a[i] == NULL && b[i] == NULL;
}

int
session_filter_equal(const struct server_conf *a, const struct server_conf *b)
{
	return session_strlist_equal(a->tools.allow, b->tools.allow) &&
	    session_strlist_equal(a->tools.deny, b->tools.deny);
}

/* Tells the agent its tool list changed (notifications/tools/list_changed). */
static void
session_notify_tools_changed(struct session *s)
{
	static const char note[] = "{\"jsonrpc\":\"2.0\","
	    "\"method\":\"notifications/tools/list_changed\"}";

	if (s->ended)
		return;
	(void)session_to_agent(s, NULL, note, sizeof(note) - 1);
}

int
session_reconfigure(struct session *s, const struct client_conf *conf)
{
	const struct server_conf *nsc;
	char why[128];
	int what = 0;

	if (s->ended)
		return 0;
	if (s->merge != NULL)
		return merge_reconfigure(s->merge, conf) ? SESSION_RECONF_MERGED :
		    0;
	if ((nsc = client_conf_server(conf, s->server)) == NULL) {
		snprintf(why, sizeof(why), "server %s was removed from the "
		    "allowlist", s->server);
		/* The reload's one line counts it; details for debugging. */
		log_debug("[%s] %s; ending the session", s->tag, why);
		session_hold(s);
		session_end(s, CLOSE_REMOVED, why, JRPC_UNAVAILABLE, why,
		    "error");
		session_release(s);
		return SESSION_RECONF_ENDED;
	}
	if (!session_filter_equal(s->fsc, nsc))
		what |= SESSION_RECONF_TOOLS;
	if (!server_conf_equal_settings(s->sc, nsc)) {
		what |= SESSION_RECONF_SETTINGS;
		log_debug("[%s] server %s's connection settings changed; this "
		    "session keeps the upstream it started with until it ends",
		    s->tag, s->server);
	}
	/*
	 * Tool filters and the request timeout apply at once; the upstream
	 * keeps the settings it was started with (the snapshot in s->conf).
	 */
	client_conf_unref(s->fconf);
	s->fconf = session_conf_ref(conf);
	s->fsc = nsc;
	if ((what & SESSION_RECONF_TOOLS) && s->parent == NULL) {
		log_debug("[%s] tool filter changed; telling the agent",
		    s->tag);
		session_notify_tools_changed(s);
	}
	return what;
}

size_t
session_reconfigure_all(const struct client_conf *conf)
{
	struct session *s, **v;
	size_t n = 0, i, affected = 0;

	TAILQ_FOREACH(s, &sessions, entry)
		n++;
	if (n == 0)
		return 0;
	/* Sessions may end (and members come and go) while we walk them. */
	v = xcalloc(n, sizeof(*v));
	n = 0;
	TAILQ_FOREACH(s, &sessions, entry) {
		if (s->parent != NULL || s->ended)
			continue;
		session_hold(s);
		v[n++] = s;
	}
	for (i = 0; i < n; i++) {
		if ((session_reconfigure(v[i], conf) &
		    (SESSION_RECONF_ENDED | SESSION_RECONF_TOOLS |
		    SESSION_RECONF_MERGED)) != 0)
			affected++;
		session_release(v[i]);
	}
	free(v);
	return affected;
}

/* ---- what merge.c calls ------------------------------------------------ */

int
session_member_open(struct merge *m, uint32_t stream, const char *server,
    const char *agent, struct session **out, char *why, size_t whylen)
{
	return session_start(stream, server, agent, m, out, why, whylen);
}

void
session_member_input(struct session *s, json_t *msg)
{
	if (s->ended)
		return;
	session_hold(s);
	session_agent_msg(s, msg, NULL, 0);
	session_release(s);
}

void
session_member_close(struct session *s)
{
	session_close(s);
}

const struct server_conf *
session_member_server(const struct session *s)
{
	return s->ended ? NULL : s->fsc;
}
