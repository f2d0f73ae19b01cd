/*
 * The merged endpoint: one MCP session (one tunnel stream, server "*")
 * in front of every server of the tunnel that the agent may see.
 *
 * The merge answers initialize itself once every member has answered its
 * own: capabilities merged (tools, prompts and resources always, with
 * listChanged, since servers can come and go), serverInfo mcptun-merged.
 * Each member is an ordinary session (session.c) whose agent side is this
 * file, so the allowlist, tool filters, deadlines and the audit log work
 * as on a single-server endpoint.
 *
 * Routing:
 *   - tools/list, prompts/list, resources/list, resources/templates/list
 *     fan out to the members and are joined; tools and prompts are renamed
 *     "<server>_<name>" (merge_names.c); a cursor is per server, carried
 *     in one opaque cursor of ours;
 *   - tools/call and prompts/get go back by name, resources/read and
 *     (un)subscribe by URI (a table filled from resources/list answers,
 *     then templates' fixed prefixes), completion/complete by either;
 *   - ping and logging/setLevel are answered here;
 *   - every request sent to a member gets an id of ours (a counter), and a
 *     progress token becomes that id, so members never collide; answers
 *     and progress are mapped back.  Requests from a server (sampling,
 *     elicitation, roots) get an id of ours towards the agent too.
 *   - mcptun_tools, a tool of our own, lists the tools available right
 *     now, for clients that ignore notifications/tools/list_changed.
 *
 * Reload (merge_reconfigure): members of removed servers end (their calls
 * get -32004), new servers the agent may see are opened and initialized,
 * filters apply in the members; the agent gets list_changed whenever what
 * it sees changes.  Which servers it may see: those the relay listed in
 * OPEN, and those matching the agent's patterns from OPEN's "allow".
 *
 * Lifetime: members that end are marked and freed later, from a timer or
 * with the merge; a member is closed from a timer, never inside one of its
 * own callbacks.
 */
#include <sys/queue.h>

#include <fnmatch.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libwebsockets.h>

#include "client/client.h"
#include "client/client_conf.h"
#include "client/merge.h"
#include "client/offload.h"
#include "common/err.h"
#include "common/jsonrpc.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "proto/frame.h"

#define MERGE_FALLBACK_TOOL	"mcptun_tools"
#define MERGE_SERVER_NAME	"mcptun-merged"
#define MERGE_CURSOR_MAX	8192
#define MERGE_DEFAULT_VERSION	"2025-06-18"
#define MERGE_NO_RESOURCE	-32002	/* MCP: resource not found */

enum mstate {
	MB_OPENING = 1,		/* initialize sent, no answer yet */
	MB_READY,
	MB_FAILED		/* could not start, or exited */
};

struct member {
	TAILQ_ENTRY(member)	 entry;
	char			*server;
	struct session		*s;		/* NULL once ended */
	enum mstate		 state;
	int			 removed;	/* not in the allowlist */
	int			 closing;	/* close s from the timer */
	int			 announce;	/* list_changed if READY */
	json_t			*caps;		/* it announced */
	char			*instructions;
	char			*version;	/* protocolVersion */
	char			*why;		/* why FAILED */
	json_t			*queue;		/* till READY */
};

TAILQ_HEAD(member_list, member);

enum agg_kind {
	AGG_INIT = 1,
	AGG_TOOLS,
	AGG_PROMPTS,
	AGG_RESOURCES,
	AGG_TEMPLATES,
	AGG_FALLBACK
};

/* One agent request answered from several members. */
struct agg {
	TAILQ_ENTRY(agg)	 entry;
	enum agg_kind		 kind;
	json_t			*agent_id;
	int			 first_page;	/* no cursor asked */
	size_t			 waiting;
	json_t			*results;	/* server -> result */
	int			 cancelled;
};

enum mop_kind {
	MOP_FORWARD = 1,	/* an agent request, answered through */
	MOP_INIT,		/* a member's initialize */
	MOP_PART,		/* one member's part of an aggregate */
	MOP_QUIET		/* nobody waits (logging/setLevel) */
};

/* A request of ours to a member, by our id. */
struct mop {
	TAILQ_ENTRY(mop)	 entry;
	json_int_t		 id;
	enum mop_kind		 kind;
	struct member		*mb;
	json_t			*agent_id;	/* FORWARD */
	json_t			*agent_token;	/* its progress */
	struct agg		*agg;		/* PART, INIT or NULL */
};

/* A request from a member's server to the agent, by our id. */
struct sreq {
	TAILQ_ENTRY(sreq)	 entry;
	json_int_t		 id;
	struct member		*mb;
	json_t			*up_id;
};

struct merge {
	struct session		*s;
	uint32_t		 stream;
	char			*agent;
	char			**servers;	/* the relay's list */
	char			**allow;	/* patterns, or NULL */
	json_t			*init_params;	/* agent's initialize */
	int			 initialized;	/* answered */
	int			 closing;
	int			 in_reconf;
	int			 npaused;
	json_int_t		 next_id;
	char			*log_level;
	struct member_list	 members;	/* by server name */
	TAILQ_HEAD(, mop)	 mops;
	TAILQ_HEAD(, agg)	 aggs;
	TAILQ_HEAD(, sreq)	 sreqs;
	struct mnames		*tools;
	struct mnames		*prompts;
	json_t			*uris;		/* uri -> server */
	json_t			*templates;	/* [{p, s}, ...] */
	lws_sorted_usec_list_t	 sul;		/* member reaper */
};

static void merge_complete(struct merge *, struct agg *);
static void merge_member_failed(struct merge *, struct member *,
    const char *);
static int merge_member_response(struct merge *, struct member *, json_t *);
static void merge_note_links(struct merge *, struct member *, const json_t *);

/* ---- small helpers ------------------------------------------------------ */

static char **
strv_dup(const char *const *v, size_t n)
{
	char **out = xcalloc(n + 1, sizeof(*out));
	size_t i, k = 0;

	for (i = 0; i < n; i++)
		if (v[i] != NULL && v[i][0] != '\0')
			out[k++] = xstrdup(v[i]);
	return out;
}

static void
strv_free(char **v)
{
	size_t i;

	for (i = 0; v != NULL && v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

/* 1 if the agent may see server: listed by the relay, or a pattern. */
static int
merge_visible(const struct merge *m, const char *server)
{
	size_t i;

	for (i = 0; m->servers[i] != NULL; i++)
		if (strcmp(m->servers[i], server) == 0)
			return 1;
	for (i = 0; m->allow != NULL && m->allow[i] != NULL; i++)
		if (fnmatch(m->allow[i], server, 0) == 0)
			return 1;
	return 0;
}

static struct member *
merge_member(const struct merge *m, const char *server)
{
	struct member *mb;

	TAILQ_FOREACH(mb, &m->members, entry)
		if (!mb->removed && strcmp(mb->server, server) == 0)
			return mb;
	return NULL;
}

static struct member *
merge_member_of(const struct merge *m, const struct session *s)
{
	struct member *mb;

	TAILQ_FOREACH(mb, &m->members, entry)
		if (mb->s == s)
			return mb;
	return NULL;
}

/* Sends msg to the agent; returns link_send()'s code. */
/* Sends the JSON text of one message to the agent. */
static int
merge_send_text(struct merge *m, const void *text, size_t len)
{
	int r;

	if (m->closing)
		return MT_ECLOSED;
	r = link_send(m->stream, text, len);
	if (r != 0 && r != MT_ETOOBIG)
		log_warnx("[*/%u] cannot send to the agent: %s", m->stream,
		    mt_strerror(r));
	return r;
}

static int
merge_send(struct merge *m, const json_t *msg)
{
	size_t len;
	char *text;
	int r;

	if (m->closing)
		return MT_ECLOSED;
	text = jrpc_dump(msg, &len);
	r = merge_send_text(m, text, len);
	free(text);
	return r;
}

static void
merge_result(struct merge *m, const json_t *id, json_t *result)
{
	json_t *msg;

	msg = json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id,
	    "result", result);
	if (msg == NULL)
		fatalx("out of memory building an answer");
	(void)merge_send(m, msg);
	json_decref(msg);
}

static void merge_error(struct merge *, const json_t *, int, const char *,
    ...) __attribute__((format(printf, 4, 5)));

static void
merge_error(struct merge *m, const json_t *id, int code, const char *fmt, ...)
{
	char msg[512], *text;
	va_list ap;
	size_t len;

	if (m->closing)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	text = jrpc_error_text(id, code, msg, &len);
	(void)link_send(m->stream, text, len);
	free(text);
}

static void
merge_notify(struct merge *m, const char *method)
{
	json_t *msg;

	msg = json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method", method);
	(void)merge_send(m, msg);
	json_decref(msg);
}

/* Tells the agent what it sees changed. */
static void
merge_list_changed(struct merge *m)
{
	if (!m->initialized || m->closing)
		return;
	merge_notify(m, "notifications/tools/list_changed");
	merge_notify(m, "notifications/prompts/list_changed");
	merge_notify(m, "notifications/resources/list_changed");
}

/* ---- requests of ours ------------------------------------------------- */

static struct mop *
mop_new(struct merge *m, enum mop_kind kind, struct member *mb)
{
	struct mop *op = xcalloc(1, sizeof(*op));

	op->id = ++m->next_id;
	op->kind = kind;
	op->mb = mb;
	TAILQ_INSERT_TAIL(&m->mops, op, entry);
	return op;
}

static void
mop_free(struct merge *m, struct mop *op)
{
	TAILQ_REMOVE(&m->mops, op, entry);
	json_decref(op->agent_id);
	json_decref(op->agent_token);
	free(op);
}

static struct mop *
mop_find(const struct merge *m, json_int_t id)
{
	struct mop *op;

	TAILQ_FOREACH(op, &m->mops, entry)
		if (op->id == id)
			return op;
	return NULL;
}

static struct agg *
agg_new(struct merge *m, enum agg_kind kind, const json_t *agent_id)
{
	struct agg *a = xcalloc(1, sizeof(*a));

	a->kind = kind;
	a->agent_id = agent_id != NULL ? json_deep_copy(agent_id) : NULL;
	a->results = json_object();
	a->first_page = 1;
	TAILQ_INSERT_TAIL(&m->aggs, a, entry);
	return a;
}

static void
agg_free(struct merge *m, struct agg *a)
{
	TAILQ_REMOVE(&m->aggs, a, entry);
	json_decref(a->agent_id);
	json_decref(a->results);
	free(a);
}

/* One part of a is in (result NULL: that member failed). */
static void
agg_part(struct merge *m, struct agg *a, const struct member *mb,
    json_t *result)
{
	if (result != NULL && mb != NULL)
		json_object_set(a->results, mb->server, result);
	if (a->waiting > 0 && --a->waiting == 0)
		merge_complete(m, a);
}

/*
 * Sends msg (a request, notification or response) to a member: at once
 * when it is READY, queued while it initializes.  A request to a member
 * that failed is answered with an error in its name.
 */
static void
member_send(struct merge *m, struct member *mb, json_t *msg)
{
	char why[384];
	json_t *err;

	switch (mb->state) {
	case MB_READY:
		if (mb->s != NULL) {
			session_member_input(mb->s, msg);
			return;
		}
		break;
	case MB_OPENING:
		json_array_append(mb->queue, msg);
		return;
	case MB_FAILED:
		break;
	}
	if (jrpc_classify(msg) != JRPC_REQUEST)
		return;
	/* Answered as if the member had said it. */
	snprintf(why, sizeof(why), "server %s is not available: %s",
	    mb->server, mb->why != NULL ? mb->why : "it is not running");
	err = json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0",
	    "id", json_object_get(msg, "id"), "error", "code",
	    JRPC_UNAVAILABLE, "message", why);
	if (err == NULL)
		fatalx("out of memory building an error");
	(void)merge_member_response(m, mb, err);
	json_decref(err);
}

/* A request of ours: {"jsonrpc", "id": op->id, "method", "params"}. */
static json_t *
mop_request(const struct mop *op, const char *method, json_t *params)
{
	json_t *msg;

	msg = json_pack("{s:s, s:I, s:s}", "jsonrpc", "2.0", "id",
	    op->id, "method", method);
	if (msg == NULL)
		fatalx("out of memory building a request");
	if (params != NULL)
		json_object_set_new(msg, "params", params);
	return msg;
}

/* ---- members ------------------------------------------------------------- */

static void merge_reap(lws_sorted_usec_list_t *);

static void
merge_reap_soon(struct merge *m)
{
	struct lws_context *ctx = client_context();

	if (ctx != NULL)
		lws_sul_schedule(ctx, 0, &m->sul, merge_reap, 1);
}

static void
member_free(struct member *mb)
{
	json_decref(mb->caps);
	json_decref(mb->queue);
	free(mb->instructions);
	free(mb->version);
	free(mb->why);
	free(mb->server);
	free(mb);
}

/* Adds a member for server (sorted by name), not yet started. */
static struct member *
member_add(struct merge *m, const char *server)
{
	struct member *mb, *o;

	mb = xcalloc(1, sizeof(*mb));
	mb->server = xstrdup(server);
	mb->state = MB_OPENING;
	mb->queue = json_array();
	TAILQ_FOREACH(o, &m->members, entry)
		if (strcmp(o->server, server) > 0)
			break;
	if (o != NULL)
		TAILQ_INSERT_BEFORE(o, mb, entry);
	else
		TAILQ_INSERT_TAIL(&m->members, mb, entry);
	return mb;
}

/*
 * Opens the member's session and sends it the agent's initialize (with
 * our id); init is the aggregate of the agent's initialize, or NULL for a
 * member that a reload added.
 */
static void
member_start(struct merge *m, struct member *mb, struct agg *init)
{
	struct mop *op;
	json_t *req;
	char why[256];
	int code;

	why[0] = '\0';
	mb->state = MB_OPENING;
	code = session_member_open(m, m->stream, mb->server, m->agent, &mb->s,
	    why, sizeof(why));
	if (code != 0) {
		mb->s = NULL;
		log_info("[*/%u] server %s left out: %s", m->stream,
		    mb->server, why);
		merge_member_failed(m, mb, why);
		return;
	}
	op = mop_new(m, MOP_INIT, mb);
	op->agg = init;
	if (init != NULL)
		init->waiting++;
	req = mop_request(op, "initialize", json_deep_copy(m->init_params));
	/* Sent at once: the member is OPENING, which would queue it. */
	session_member_input(mb->s, req);
	json_decref(req);
}

/*
 * mb cannot serve (it did not start, its initialize failed, it exited):
 * what waits for it is answered with why, and requests to it are refused
 * from now on.
 */
static void
merge_member_failed(struct merge *m, struct member *mb, const char *why)
{
	struct mop *op, *next;
	struct agg *a;
	json_t *q, *msg;
	size_t i;

	mb->state = MB_FAILED;
	free(mb->why);
	mb->why = xstrdup(why);
	/* Queued messages: requests get the error, the rest is dropped. */
	q = mb->queue;
	mb->queue = json_array();
	json_array_foreach(q, i, msg)
		member_send(m, mb, msg);
	json_decref(q);
	/* Requests it will never answer now. */
	for (op = TAILQ_FIRST(&m->mops); op != NULL; op = next) {
		next = TAILQ_NEXT(op, entry);
		if (op->mb != mb)
			continue;
		a = op->agg;
		if (op->kind == MOP_FORWARD)
			merge_error(m, op->agent_id, JRPC_UNAVAILABLE,
			    "server %s is not available: %s", mb->server, why);
		mop_free(m, op);
		/* Completing an aggregate sends, never touches mops. */
		if (a != NULL)
			agg_part(m, a, mb, NULL);
	}
}

/* Forgets a removed member's names and URIs; freed by the timer. */
static void
member_forget(struct merge *m, struct member *mb)
{
	const char *uri;
	json_t *v, *t;
	void *tmp;
	size_t i;

	mb->removed = 1;
	mnames_drop_server(m->tools, mb->server);
	mnames_drop_server(m->prompts, mb->server);
	json_object_foreach_safe(m->uris, tmp, uri, v)
		if (strcmp(json_string_value(v), mb->server) == 0)
			json_object_del(m->uris, uri);
	for (i = 0; i < json_array_size(m->templates); ) {
		t = json_array_get(m->templates, i);
		if (strcmp(json_string_value(json_array_get(t, 1)),
		    mb->server) == 0)
			json_array_remove(m->templates, i);
		else
			i++;
	}
	merge_reap_soon(m);
}

static void
merge_reap(lws_sorted_usec_list_t *sul)
{
	struct merge *m = lws_container_of(sul, struct merge, sul);
	struct member *mb, *next;
	struct session *s;

	for (mb = TAILQ_FIRST(&m->members); mb != NULL; mb = next) {
		next = TAILQ_NEXT(mb, entry);
		if (mb->closing && mb->s != NULL) {
			s = mb->s;
			mb->s = NULL;
			mb->closing = 0;
			session_member_close(s);
		}
		if (mb->removed && mb->s == NULL) {
			TAILQ_REMOVE(&m->members, mb, entry);
			member_free(mb);
		}
	}
}

/* ---- answers from members ------------------------------------------------ */

/* The initialize answer of a member. */
static void
member_initialized(struct merge *m, struct member *mb, struct agg *init,
    const json_t *msg)
{
	json_t *result = json_object_get(msg, "result");
	const char *v;
	json_t *note, *q, *x;
	char why[256];
	size_t i;

	if (!json_is_object(result)) {
		snprintf(why, sizeof(why), "initialize failed: %s",
		    json_string_value(json_object_get(json_object_get(msg,
		    "error"), "message")) != NULL ?
		    json_string_value(json_object_get(json_object_get(msg,
		    "error"), "message")) : "no result");
		if (m->in_reconf)	/* removed while it started */
			log_debug("[*/%u] server %s left out: %s", m->stream,
			    mb->server, why);
		else
			log_info("[*/%u] server %s left out: %s", m->stream,
			    mb->server, why);
		mb->closing = mb->s != NULL;
		merge_reap_soon(m);
		merge_member_failed(m, mb, why);
		if (init != NULL)
			agg_part(m, init, mb, NULL);
		return;
	}
	json_decref(mb->caps);
	mb->caps = json_incref(json_object_get(result, "capabilities"));
	free(mb->instructions);
	mb->instructions = NULL;
	free(mb->version);
	mb->version = NULL;
	if ((v = json_string_value(json_object_get(result,
	    "instructions"))) != NULL)
		mb->instructions = xstrdup(v);
	if ((v = json_string_value(json_object_get(result,
	    "protocolVersion"))) != NULL)
		mb->version = xstrdup(v);
	mb->state = MB_READY;
	note = json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method",
	    "notifications/initialized");
	member_send(m, mb, note);
	json_decref(note);
	if (m->log_level != NULL && json_object_get(mb->caps, "logging")) {
		struct mop *op = mop_new(m, MOP_QUIET, mb);

		x = mop_request(op, "logging/setLevel", json_pack("{s:s}",
		    "level", m->log_level));
		member_send(m, mb, x);
		json_decref(x);
	}
	/* What waited for it, in order. */
	q = mb->queue;
	mb->queue = json_array();
	json_array_foreach(q, i, x)
		member_send(m, mb, x);
	json_decref(q);
	log_debug("[*/%u] server %s ready", m->stream, mb->server);
	if (init != NULL)
		agg_part(m, init, mb, result);
	else if (mb->announce) {
		mb->announce = 0;
		log_debug("[*/%u] server %s added to the merged session",
		    m->stream, mb->server);
		merge_list_changed(m);
	}
}

/* Rewrites msg's id (a response) and sends it to the agent. */
static void
merge_forward_answer(struct merge *m, struct member *mb, json_t *msg,
    json_t *agent_id)
{
	json_object_set(msg, "id", agent_id);
	if (merge_send(m, msg) == MT_ETOOBIG) {
		log_info("[*/%u] the answer of server %s is too large",
		    m->stream, mb->server);
		merge_error(m, agent_id, JRPC_UPSTREAM_ERROR, "the answer of "
		    "server %s is too large", mb->server);
	}
}

static int
merge_member_response(struct merge *m, struct member *mb, json_t *msg)
{
	const json_t *id = json_object_get(msg, "id");
	struct mop *op;
	struct agg *a;

	if (!json_is_integer(id) ||
	    (op = mop_find(m, json_integer_value(id))) == NULL ||
	    op->mb != mb) {
		log_debug("[*/%u] server %s answered a request nobody waits "
		    "for; dropped", m->stream, mb->server);
		return 0;
	}
	switch (op->kind) {
	case MOP_FORWARD:
		merge_note_links(m, mb, json_object_get(msg, "result"));
		merge_forward_answer(m, mb, msg, op->agent_id);
		mop_free(m, op);
		break;
	case MOP_INIT:
		a = op->agg;
		mop_free(m, op);
		member_initialized(m, mb, a, msg);
		break;
	case MOP_PART:
		a = op->agg;
		mop_free(m, op);
		if (json_object_get(msg, "error") != NULL)
			log_debug("[*/%u] server %s: %s failed: %s", m->stream,
			    mb->server, a->kind == AGG_TOOLS ? "tools/list" :
			    "a list request", json_string_value(
			    json_object_get(json_object_get(msg, "error"),
			    "message")));
		agg_part(m, a, mb, json_object_get(msg, "result"));
		break;
	case MOP_QUIET:
		mop_free(m, op);
		break;
	}
	return 0;
}

/* A request from a member's server to the agent (sampling, roots...). */
static int
merge_member_request(struct merge *m, struct member *mb, json_t *msg)
{
	struct sreq *q;
	json_t *pong;

	if (strcmp(json_string_value(json_object_get(msg, "method")),
	    "ping") == 0) {
		pong = json_pack("{s:s, s:O, s:{}}", "jsonrpc", "2.0", "id",
		    json_object_get(msg, "id"), "result");
		member_send(m, mb, pong);
		json_decref(pong);
		return 0;
	}
	q = xcalloc(1, sizeof(*q));
	q->id = ++m->next_id;
	q->mb = mb;
	q->up_id = json_incref(json_object_get(msg, "id"));
	TAILQ_INSERT_TAIL(&m->sreqs, q, entry);
	json_object_set_new(msg, "id", json_integer(q->id));
	return merge_send(m, msg);
}

static int
merge_member_notification(struct merge *m, struct member *mb, json_t *msg)
{
	const char *method = json_string_value(json_object_get(msg, "method"));
	json_t *params = json_object_get(msg, "params"), *tok;
	struct sreq *q;
	struct mop *op;

	if (strcmp(method, "notifications/progress") == 0) {
		tok = json_object_get(params, "progressToken");
		if (!json_is_integer(tok) ||
		    (op = mop_find(m, json_integer_value(tok))) == NULL ||
		    op->mb != mb || op->agent_token == NULL) {
			log_debug("[*/%u] progress for nothing in flight from "
			    "server %s; dropped", m->stream, mb->server);
			return 0;
		}
		json_object_set(params, "progressToken", op->agent_token);
	} else if (strcmp(method, "notifications/cancelled") == 0) {
		/* The server gave up one of its requests to the agent. */
		TAILQ_FOREACH(q, &m->sreqs, entry)
			if (q->mb == mb && json_equal(q->up_id,
			    json_object_get(params, "requestId")))
				break;
		if (q == NULL)
			return 0;
		json_object_set_new(params, "requestId", json_integer(q->id));
		TAILQ_REMOVE(&m->sreqs, q, entry);
		json_decref(q->up_id);
		free(q);
	} else if (strcmp(method, "notifications/message") == 0 &&
	    json_is_object(params) &&
	    json_object_get(params, "logger") == NULL)
		json_object_set_new(params, "logger", json_string(mb->server));
	return merge_send(m, msg);
}

/*
 * Forwards a member's answer to an agent's request (pk, read with
 * jrpc_peek) without a tree: the agent's id is spliced in where the
 * member's id was, the rest goes as it came.  Returns 1 if done, 0 if the
 * answer needs the tree: not a forwarded answer, or one whose result may
 * name resources for merge_note_links (any "resource" or \u escape in
 * the text, a cheap and safe over-estimate).
 */
static int
merge_forward_raw(struct merge *m, struct member *mb,
    const struct jrpc_peek *pk)
{
	const struct jscan_val *idv = &pk->v[JRPC_P_ID];
	struct mop *op;
	char *idtext, *out;
	size_t idlen, outlen;

	if (pk->kind != JRPC_RESPONSE || !json_is_integer(pk->id) ||
	    (op = mop_find(m, json_integer_value(pk->id))) == NULL ||
	    op->mb != mb || op->kind != MOP_FORWARD)
		return 0;
	if (memmem(pk->text, pk->len, "resource", 8) != NULL ||
	    memmem(pk->text, pk->len, "\\u", 2) != NULL)
		return 0;
	idtext = jrpc_dump(op->agent_id, &idlen);
	outlen = pk->len - idv->len + idlen;
	out = xmalloc(outlen);
	memcpy(out, pk->text, idv->off);
	memcpy(out + idv->off, idtext, idlen);
	memcpy(out + idv->off + idlen, pk->text + idv->off + idv->len,
	    pk->len - idv->off - idv->len);
	if (merge_send_text(m, out, outlen) == MT_ETOOBIG) {
		log_info("[*/%u] the answer of server %s is too large",
		    m->stream, mb->server);
		merge_error(m, op->agent_id, JRPC_UPSTREAM_ERROR, "the answer "
		    "of server %s is too large", mb->server);
	}
	free(out);
	free(idtext);
	mop_free(m, op);
	return 1;
}

int
merge_member_output(struct merge *m, struct session *member, const void *msg,
    size_t len)
{
	struct jrpc_peek peek;
	struct member *mb;
	json_t *j;
	int r = 0, done;

	if (m->closing || (mb = merge_member_of(m, member)) == NULL)
		return 0;
	/* One that failed to initialize says nothing until it is closed. */
	if (mb->state == MB_FAILED && mb->closing)
		return 0;
	done = jrpc_peek(msg, len, &peek) && merge_forward_raw(m, mb, &peek);
	jrpc_peek_done(&peek);
	if (done)
		return 0;
	if ((j = jrpc_parse(msg, len, NULL, 0)) == NULL) {
		log_warnx("[*/%u] server %s sent something that is not JSON; "
		    "dropped", m->stream, mb->server);
		return 0;
	}
	switch (jrpc_classify(j)) {
	case JRPC_RESPONSE:
		r = merge_member_response(m, mb, j);
		break;
	case JRPC_REQUEST:
		r = merge_member_request(m, mb, j);
		break;
	case JRPC_NOTIFICATION:
		r = merge_member_notification(m, mb, j);
		break;
	default:
		break;
	}
	json_decref(j);
	return r;
}

void
merge_member_ended(struct merge *m, struct session *member, uint16_t code,
    const char *why)
{
	struct member *mb;

	if ((mb = merge_member_of(m, member)) == NULL)
		return;
	mb->s = NULL;
	mb->closing = 0;
	if (m->closing)
		return;
	merge_member_failed(m, mb, why);
	if (code == CLOSE_REMOVED)
		member_forget(m, mb);
	if (code == CLOSE_REMOVED)	/* the reload's line says it */
		log_debug("[*/%u] server %s left the merged session: %s",
		    m->stream, mb->server, why);
	else
		log_info("[*/%u] server %s left the merged session: %s",
		    m->stream, mb->server, why);
	if (!m->in_reconf)
		merge_list_changed(m);
}

void
merge_member_pause(struct merge *m)
{
	if (m->npaused++ == 0 && !m->closing)
		link_pause(m->stream);
}

void
merge_member_resume(struct merge *m)
{
	if (m->npaused > 0 && --m->npaused == 0 && !m->closing)
		link_resume(m->stream);
}

/* ---- joining answers ---------------------------------------------------- */

/* Cursors: {"server": "its cursor", ...} as hex of compact JSON. */
static char *
merge_cursor_encode(const json_t *cursors)
{
	char *text, *hex;
	size_t len;

	text = jrpc_dump(cursors, &len);
	hex = xmalloc(2 * len + 1);
	hex_encode(text, len, hex);
	free(text);
	return hex;
}

static json_t *
merge_cursor_decode(const char *hex)
{
	size_t n = strlen(hex);
	uint8_t *raw;
	json_t *j = NULL;

	if (n == 0 || n % 2 != 0 || n > MERGE_CURSOR_MAX)
		return NULL;
	raw = xmalloc(n / 2 + 1);
	if (hex_decode(hex, raw, n / 2) == 0)
		j = json_loadb((const char *)raw, n / 2, 0, NULL);
	free(raw);
	if (j != NULL && !json_is_object(j)) {
		json_decref(j);
		j = NULL;
	}
	return j;
}

/* Records a template's fixed prefix for routing URIs, once. */
static void
merge_add_template(struct merge *m, const char *p, size_t len,
    const char *server)
{
	const char *q;
	json_t *t;
	size_t i;

	json_array_foreach(m->templates, i, t) {
		q = json_string_value(json_object_get(t, "p"));
		if (strlen(q) == len && strncmp(q, p, len) == 0 &&
		    strcmp(json_string_value(json_object_get(t, "s")),
		    server) == 0)
			return;
	}
	json_array_append_new(m->templates, json_pack("{s:s%, s:s}", "p", p,
	    len, "s", server));
}

/* 1 if uri names an output offloaded by a member (offload.c). */
static int
merge_is_offload(const char *uri)
{
	return strncmp(uri, OFFLOAD_URI_PREFIX,
	    strlen(OFFLOAD_URI_PREFIX)) == 0;
}

/*
 * An answer that stored an output tells the agent to use mcptun_read &
 * co.; here those tools carry the server's prefix, so say their names.
 */
static void
merge_note_offload(struct merge *m, struct member *mb, json_t *content)
{
	static const char *const tools[] = {
		"mcptun_read", "mcptun_grep", "mcptun_outputs"
	};
	char name[3][MNAME_MAX + 1];
	const char *x;
	size_t i;

	for (i = 0; i < 3; i++) {
		if ((x = mnames_exposed(m->tools, mb->server,
		    tools[i])) != NULL)
			snprintf(name[i], sizeof(name[i]), "%s", x);
		else
			mname_compose(mb->server, tools[i], 0, name[i]);
	}
	json_array_append_new(content, json_pack("{s:s, s:s++++++}", "type",
	    "text", "text", "On this endpoint these tools are named ",
	    name[0], ", ", name[1], " and ", name[2], "."));
}

/*
 * Resources a tool answer links to (resource_link, embedded resource)
 * belong to the server that answered: resources/read finds it by URI.
 * An offloaded output belongs to the member session that stored it, so
 * its URI is routed only that way (merge_route_uri), to the member whose
 * answer linked to it first: another server that echoes the link cannot
 * draw its reads away.
 */
static void
merge_note_links(struct merge *m, struct member *mb, const json_t *result)
{
	json_t *content = json_object_get(result, "content"), *it;
	const char *uri, *type;
	int offloaded = 0;
	size_t i;

	json_array_foreach(content, i, it) {
		type = json_string_value(json_object_get(it, "type"));
		uri = NULL;
		if (type != NULL && strcmp(type, "resource_link") == 0)
			uri = json_string_value(json_object_get(it, "uri"));
		else if (type != NULL && strcmp(type, "resource") == 0)
			uri = json_string_value(json_object_get(
			    json_object_get(it, "resource"), "uri"));
		if (uri == NULL)
			continue;
		if (!merge_is_offload(uri))
			json_object_set_new(m->uris, uri,
			    json_string(mb->server));
		else if (strcmp(type, "resource_link") == 0 &&
		    json_object_get(m->uris, uri) == NULL) {
			/* The first link is the maker's; echoes do not count. */
			json_object_set_new(m->uris, uri,
			    json_string(mb->server));
			offloaded = 1;
		}
	}
	if (offloaded)
		merge_note_offload(m, mb, content);
}

/* The definition of the fallback tool. */
static json_t *
merge_fallback_def(void)
{
	return json_pack("{s:s, s:s, s:{s:s, s:{}}, s:{s:b}}",
	    "name", MERGE_FALLBACK_TOOL,
	    "description", "List the tools this endpoint offers right now. "
	    "Servers and tools can be added or withdrawn while you work; "
	    "call this when a tool is missing, refused or unknown.",
	    "inputSchema", "type", "object", "properties",
	    "annotations", "readOnlyHint", 1);
}

/*
 * Joins the members' pages of a list: items[key] renamed (tools,
 * prompts) or recorded for routing (resources, templates), in server
 * order; next cursors combined.
 */
static json_t *
merge_join_list(struct merge *m, struct agg *a, const char *key)
{
	json_t *out = json_array(), *next = json_object(), *result, *items;
	json_t *it, *copy, *r;
	const char **srv = NULL, **names = NULL, **exposed = NULL;
	struct mnames *table = NULL;
	const char *uri, *c, *brace;
	struct member *mb;
	size_t i, n = 0, k;

	if (a->kind == AGG_TOOLS || a->kind == AGG_FALLBACK)
		table = m->tools;
	else if (a->kind == AGG_PROMPTS)
		table = m->prompts;
	TAILQ_FOREACH(mb, &m->members, entry) {
		if (mb->removed || (result = json_object_get(a->results,
		    mb->server)) == NULL)
			continue;
		items = json_object_get(result, key);
		if (json_is_array(items))
			n += json_array_size(items);
		if ((c = json_string_value(json_object_get(result,
		    "nextCursor"))) != NULL)
			json_object_set_new(next, mb->server, json_string(c));
	}
	if (table != NULL) {
		srv = xcalloc(n + 1, sizeof(*srv));
		names = xcalloc(n + 1, sizeof(*names));
		exposed = xcalloc(n + 1, sizeof(*exposed));
	}
	k = 0;
	TAILQ_FOREACH(mb, &m->members, entry) {
		if (mb->removed || (result = json_object_get(a->results,
		    mb->server)) == NULL)
			continue;
		items = json_object_get(result, key);
		json_array_foreach(items, i, it) {
			if (table != NULL) {
				if (!json_is_string(json_object_get(it,
				    "name")))
					continue;
				srv[k] = mb->server;
				names[k] = json_string_value(
				    json_object_get(it, "name"));
				k++;
			} else if (a->kind == AGG_RESOURCES &&
			    (uri = json_string_value(json_object_get(it,
			    "uri"))) != NULL) {
				if (json_object_get(m->uris, uri) == NULL)
					json_object_set_new(m->uris, uri,
					    json_string(mb->server));
			} else if (a->kind == AGG_TEMPLATES &&
			    (uri = json_string_value(json_object_get(it,
			    "uriTemplate"))) != NULL &&
			    (brace = strchr(uri, '{')) != NULL &&
			    brace > uri)
				merge_add_template(m, uri,
				    (size_t)(brace - uri), mb->server);
			if (table == NULL)
				json_array_append(out, it);
		}
	}
	if (table != NULL) {
		mnames_assign(table, k, srv, names, exposed);
		k = 0;
		TAILQ_FOREACH(mb, &m->members, entry) {
			if (mb->removed || (result = json_object_get(
			    a->results, mb->server)) == NULL)
				continue;
			items = json_object_get(result, key);
			json_array_foreach(items, i, it) {
				if (!json_is_string(json_object_get(it,
				    "name")))
					continue;
				copy = json_copy(it);
				json_object_set_new(copy, "name",
				    json_string(exposed[k++]));
				json_array_append_new(out, copy);
			}
		}
	}
	free(srv);
	free(names);
	free(exposed);
	r = json_object();
	json_object_set_new(r, key, out);
	if (json_object_size(next) > 0) {
		c = merge_cursor_encode(next);
		json_object_set_new(r, "nextCursor", json_string(c));
		free((char *)(uintptr_t)c);
	}
	json_decref(next);
	return r;
}

/* The answer to the agent's initialize, once every member has spoken. */
static json_t *
merge_init_result(struct merge *m)
{
	const char *want, *version;
	json_t *caps, *res, *subscribe = json_false();
	struct member *mb;
	char *names = NULL, *ins = NULL, *t;
	int logging = 0, completions = 0;

	want = json_string_value(json_object_get(m->init_params,
	    "protocolVersion"));
	version = want != NULL ? want : MERGE_DEFAULT_VERSION;
	TAILQ_FOREACH(mb, &m->members, entry) {
		if (mb->removed || mb->state != MB_READY)
			continue;
		if (mb->version != NULL && strlen(mb->version) == 10 &&
		    strcmp(mb->version, version) < 0)
			version = mb->version;
		if (json_object_get(mb->caps, "logging") != NULL)
			logging = 1;
		if (json_object_get(mb->caps, "completions") != NULL)
			completions = 1;
		if (json_is_true(json_object_get(json_object_get(mb->caps,
		    "resources"), "subscribe"))) {
			json_decref(subscribe);
			subscribe = json_true();
		}
		t = xasprintf("%s%s%s", names != NULL ? names : "",
		    names != NULL ? ", " : "", mb->server);
		free(names);
		names = t;
		if (mb->instructions != NULL) {
			t = xasprintf("%s\n\n%s: %s", ins != NULL ? ins : "",
			    mb->server, mb->instructions);
			free(ins);
			ins = t;
		}
	}
	caps = json_pack("{s:{s:b}, s:{s:b}, s:{s:b, s:o}}",
	    "tools", "listChanged", 1,
	    "prompts", "listChanged", 1,
	    "resources", "listChanged", 1, "subscribe", subscribe);
	if (logging)
		json_object_set_new(caps, "logging", json_object());
	if (completions)
		json_object_set_new(caps, "completions", json_object());
	t = xasprintf("One endpoint for the MCP servers %s of this tunnel, "
	    "through mcptun. Tools and prompts are named <server>_<name>. "
	    "Servers and tools can change while you work: on "
	    "notifications/tools/list_changed list the tools again, or call "
	    "the tool %s to see what is available now.%s",
	    names != NULL ? names : "(none right now)", MERGE_FALLBACK_TOOL,
	    ins != NULL ? ins : "");
	res = json_pack("{s:s, s:o, s:{s:s, s:s}, s:s}",
	    "protocolVersion", version, "capabilities", caps,
	    "serverInfo", "name", MERGE_SERVER_NAME, "version", MCPTUN_VERSION,
	    "instructions", t);
	free(t);
	free(names);
	free(ins);
	return res;
}

/* The text mcptun_tools answers: one line per tool available now. */
static json_t *
merge_fallback_result(struct merge *m, struct agg *a)
{
	json_t *list, *tools, *it, *res;
	struct member *mb;
	const char *d, *nl;
	char *text = xstrdup(""), *t;
	size_t i, missing = 0;

	list = merge_join_list(m, a, "tools");
	tools = json_object_get(list, "tools");
	json_array_foreach(tools, i, it) {
		d = json_string_value(json_object_get(it, "description"));
		if (d == NULL)
			d = "";
		nl = strchr(d, '\n');
		t = xasprintf("%s- %s%s%.*s\n", text,
		    json_string_value(json_object_get(it, "name")),
		    *d != '\0' ? ": " : "",
		    (int)(nl != NULL ? (size_t)(nl - d) : strlen(d)), d);
		free(text);
		text = t;
	}
	TAILQ_FOREACH(mb, &m->members, entry) {
		if (mb->removed || mb->state != MB_FAILED)
			continue;
		t = xasprintf("%s%s%s (%s)", text, missing++ == 0 ?
		    "\nNot available now: " : ", ", mb->server,
		    mb->why != NULL ? mb->why : "not running");
		free(text);
		text = t;
	}
	t = xasprintf("%zu tool(s) available now%s:\n%s%s", json_array_size(
	    tools), json_object_get(list, "nextCursor") != NULL ?
	    " (first pages; tools/list has the rest)" : "", text,
	    missing > 0 ? "\n" : "");
	res = json_pack("{s:[{s:s, s:s}]}", "content", "type", "text",
	    "text", t);
	free(t);
	free(text);
	json_decref(list);
	return res;
}

static void
merge_complete(struct merge *m, struct agg *a)
{
	json_t *res = NULL, *fallback;

	if (a->cancelled || m->closing) {
		agg_free(m, a);
		return;
	}
	switch (a->kind) {
	case AGG_INIT:
		res = merge_init_result(m);
		m->initialized = 1;
		break;
	case AGG_TOOLS:
		res = merge_join_list(m, a, "tools");
		if (a->first_page && (fallback = merge_fallback_def()) != NULL)
			json_array_append_new(json_object_get(res, "tools"),
			    fallback);
		break;
	case AGG_PROMPTS:
		res = merge_join_list(m, a, "prompts");
		break;
	case AGG_RESOURCES:
		res = merge_join_list(m, a, "resources");
		break;
	case AGG_TEMPLATES:
		res = merge_join_list(m, a, "resourceTemplates");
		break;
	case AGG_FALLBACK:
		res = merge_fallback_result(m, a);
		break;
	}
	merge_result(m, a->agent_id, res);
	agg_free(m, a);
}

/* ---- from the agent ------------------------------------------------------ */

/* 1 if mb can take part in a fan-out of method (by its capabilities). */
static int
member_offers(const struct member *mb, enum agg_kind kind)
{
	const char *cap;

	if (mb->removed || mb->state == MB_FAILED)
		return 0;
	if (mb->state == MB_OPENING || mb->caps == NULL)
		return 1;
	switch (kind) {
	case AGG_TOOLS:
	case AGG_FALLBACK:
		cap = "tools";
		break;
	case AGG_PROMPTS:
		cap = "prompts";
		break;
	default:
		cap = "resources";
		break;
	}
	return json_object_get(mb->caps, cap) != NULL;
}

/* tools/list, prompts/list, resources/list, resources/templates/list. */
static void
merge_fanout(struct merge *m, const json_t *id, enum agg_kind kind,
    const char *method, const json_t *params)
{
	const char *cursor = json_string_value(json_object_get(params,
	    "cursor"));
	json_t *cursors = NULL, *req, *p;
	struct member *mb;
	struct agg *a;
	struct mop *op;

	if (cursor != NULL && (cursors = merge_cursor_decode(cursor)) ==
	    NULL) {
		merge_error(m, id, JRPC_INVALID_PARAMS, "invalid cursor");
		return;
	}
	a = agg_new(m, kind, id);
	a->first_page = cursors == NULL;
	a->waiting = 1;		/* held until every part is sent */
	TAILQ_FOREACH(mb, &m->members, entry) {
		if (!member_offers(mb, kind))
			continue;
		p = json_object();
		if (cursors != NULL) {
			if (json_object_get(cursors, mb->server) == NULL) {
				json_decref(p);
				continue;
			}
			json_object_set(p, "cursor",
			    json_object_get(cursors, mb->server));
		}
		op = mop_new(m, MOP_PART, mb);
		op->agg = a;
		a->waiting++;
		req = mop_request(op, method, p);
		member_send(m, mb, req);
		json_decref(req);
	}
	json_decref(cursors);
	agg_part(m, a, NULL, NULL);
}

/*
 * The member for a resource URI: listed, then templates, then the one.
 * An offloaded output's URI (with or without "?offset=..."), only to the
 * member whose answer linked to it: NULL if none did in this session.
 */
static struct member *
merge_route_uri(struct merge *m, const char *uri)
{
	const char *server = json_string_value(json_object_get(m->uris, uri));
	struct member *mb, *only = NULL;
	const char *best = NULL, *p;
	size_t i, blen = 0, n = 0;
	json_t *t;
	char *base;

	if (server == NULL && merge_is_offload(uri)) {
		base = xstrndup(uri, strcspn(uri, "?#"));
		server = json_string_value(json_object_get(m->uris, base));
		free(base);
		return server != NULL ? merge_member(m, server) : NULL;
	}
	if (server != NULL)
		return merge_member(m, server);
	json_array_foreach(m->templates, i, t) {
		p = json_string_value(json_object_get(t, "p"));
		if (strncmp(uri, p, strlen(p)) == 0 && strlen(p) > blen) {
			blen = strlen(p);
			best = json_string_value(json_object_get(t, "s"));
		}
	}
	if (best != NULL)
		return merge_member(m, best);
	TAILQ_FOREACH(mb, &m->members, entry) {
		if (!mb->removed && mb->caps != NULL &&
		    json_object_get(mb->caps, "resources") != NULL) {
			only = mb;
			n++;
		}
	}
	return n == 1 ? only : NULL;
}

/*
 * The member and original name for an exposed tool or prompt name: from
 * the table, else "<server>_<name>" with the longest member name that
 * fits (a call made without listing first).
 */
static struct member *
merge_route_name(struct merge *m, struct mnames *table, const char *name,
    const char **orig)
{
	const char *server, *n;
	struct member *mb, *best = NULL;
	size_t len, blen = 0;

	if (mnames_lookup(table, name, &server, &n)) {
		*orig = n;
		return merge_member(m, server);
	}
	/* Never guess a removed server's name onto another server. */
	if (mnames_gone(table, name) != NULL)
		return NULL;
	TAILQ_FOREACH(mb, &m->members, entry) {
		len = strlen(mb->server);
		if (!mb->removed && strncmp(name, mb->server, len) == 0 &&
		    name[len] == '_' && len > blen) {
			best = mb;
			blen = len;
		}
	}
	if (best != NULL)
		*orig = name + blen + 1;
	return best;
}

/* Sends the agent's request msg (modified copy) to mb with our id. */
static void
merge_forward(struct merge *m, struct member *mb, json_t *msg)
{
	json_t *params = json_object_get(msg, "params");
	json_t *meta = json_object_get(params, "_meta");
	json_t *tok = json_object_get(meta, "progressToken");
	struct mop *op;

	op = mop_new(m, MOP_FORWARD, mb);
	op->agent_id = json_deep_copy(json_object_get(msg, "id"));
	if (tok != NULL) {
		op->agent_token = json_deep_copy(tok);
		json_object_set_new(meta, "progressToken",
		    json_integer(op->id));
	}
	json_object_set_new(msg, "id", json_integer(op->id));
	member_send(m, mb, msg);
}

static void
merge_initialize(struct merge *m, const json_t *msg)
{
	const struct client_conf *cur = client_conf_current();
	const json_t *params = json_object_get(msg, "params");
	struct member *mb;
	struct agg *a;
	size_t i;

	if (m->init_params != NULL) {
		merge_error(m, json_object_get(msg, "id"), JRPC_INVALID_REQUEST,
		    "this session is already initialized");
		return;
	}
	m->init_params = json_is_object(params) ? json_deep_copy(params) :
	    json_object();
	a = agg_new(m, AGG_INIT, json_object_get(msg, "id"));
	a->waiting = 1;
	for (i = 0; cur != NULL && i < cur->nservers; i++)
		if (merge_visible(m, cur->servers[i].name))
			(void)member_add(m, cur->servers[i].name);
	TAILQ_FOREACH(mb, &m->members, entry)
		member_start(m, mb, a);
	agg_part(m, a, NULL, NULL);
}

static void
merge_request(struct merge *m, json_t *msg)
{
	const char *method = json_string_value(json_object_get(msg, "method"));
	const json_t *id = json_object_get(msg, "id");
	json_t *params = json_object_get(msg, "params"), *copy, *ref;
	const char *name, *orig = NULL, *uri;
	struct member *mb;
	struct agg *a;
	struct mop *op;
	json_t *req;

	if (strcmp(method, "initialize") == 0) {
		merge_initialize(m, msg);
		return;
	}
	if (m->init_params == NULL) {
		merge_error(m, id, JRPC_INVALID_REQUEST, "the session is not "
		    "initialized: send initialize first");
		return;
	}
	if (strcmp(method, "ping") == 0) {
		merge_result(m, id, json_object());
		return;
	}
	if (strcmp(method, "tools/list") == 0) {
		merge_fanout(m, id, AGG_TOOLS, method, params);
		return;
	}
	if (strcmp(method, "prompts/list") == 0) {
		merge_fanout(m, id, AGG_PROMPTS, method, params);
		return;
	}
	if (strcmp(method, "resources/list") == 0) {
		merge_fanout(m, id, AGG_RESOURCES, method, params);
		return;
	}
	if (strcmp(method, "resources/templates/list") == 0) {
		merge_fanout(m, id, AGG_TEMPLATES, method, params);
		return;
	}
	if (strcmp(method, "logging/setLevel") == 0) {
		free(m->log_level);
		m->log_level = json_string_value(json_object_get(params,
		    "level")) != NULL ? xstrdup(json_string_value(
		    json_object_get(params, "level"))) : NULL;
		TAILQ_FOREACH(mb, &m->members, entry) {
			if (mb->removed || mb->state != MB_READY ||
			    json_object_get(mb->caps, "logging") == NULL)
				continue;
			op = mop_new(m, MOP_QUIET, mb);
			req = mop_request(op, method, json_deep_copy(params));
			member_send(m, mb, req);
			json_decref(req);
		}
		merge_result(m, id, json_object());
		return;
	}
	copy = json_deep_copy(msg);
	params = json_object_get(copy, "params");
	mb = NULL;
	if (strcmp(method, "tools/call") == 0 ||
	    strcmp(method, "prompts/get") == 0) {
		name = json_string_value(json_object_get(params, "name"));
		if (name == NULL) {
			merge_error(m, id, JRPC_INVALID_PARAMS, "%s needs "
			    "params.name", method);
			goto out;
		}
		if (method[0] == 't' &&
		    strcmp(name, MERGE_FALLBACK_TOOL) == 0) {
			a = agg_new(m, AGG_FALLBACK, id);
			a->waiting = 1;
			TAILQ_FOREACH(mb, &m->members, entry) {
				if (!member_offers(mb, AGG_FALLBACK))
					continue;
				op = mop_new(m, MOP_PART, mb);
				op->agg = a;
				a->waiting++;
				req = mop_request(op, "tools/list",
				    json_object());
				member_send(m, mb, req);
				json_decref(req);
			}
			agg_part(m, a, NULL, NULL);
			goto out;
		}
		mb = merge_route_name(m, method[0] == 't' ? m->tools :
		    m->prompts, name, &orig);
		if (mb == NULL && (orig = mnames_gone(method[0] == 't' ?
		    m->tools : m->prompts, name)) != NULL) {
			merge_error(m, id, JRPC_UNAVAILABLE, "%s %s is gone: "
			    "server %s was removed from the allowlist",
			    method[0] == 't' ? "tool" : "prompt", name, orig);
			goto out;
		}
		if (mb == NULL) {
			merge_error(m, id, JRPC_INVALID_PARAMS, "unknown %s "
			    "%s; list them again (or call %s): the servers of "
			    "this endpoint may have changed", method[0] == 't' ?
			    "tool" : "prompt", name, MERGE_FALLBACK_TOOL);
			goto out;
		}
		json_object_set_new(params, "name", json_string(orig));
	} else if (strcmp(method, "resources/read") == 0 ||
	    strcmp(method, "resources/subscribe") == 0 ||
	    strcmp(method, "resources/unsubscribe") == 0) {
		uri = json_string_value(json_object_get(params, "uri"));
		if (uri != NULL && merge_is_offload(uri) &&
		    (mb = merge_route_uri(m, uri)) == NULL) {
			/* As the member would say: never another's data. */
			merge_error(m, id, MERGE_NO_RESOURCE, "Resource not "
			    "found: %.80s", uri);
			goto out;
		}
		if (uri == NULL || (mb == NULL &&
		    (mb = merge_route_uri(m, uri)) == NULL)) {
			merge_error(m, id, JRPC_INVALID_PARAMS, "unknown "
			    "resource %s; list the resources first",
			    uri != NULL ? uri : "(no uri)");
			goto out;
		}
	} else if (strcmp(method, "completion/complete") == 0) {
		ref = json_object_get(params, "ref");
		name = json_string_value(json_object_get(ref, "name"));
		uri = json_string_value(json_object_get(ref, "uri"));
		if (name != NULL && (mb = merge_route_name(m, m->prompts, name,
		    &orig)) != NULL)
			json_object_set_new(ref, "name", json_string(orig));
		else if (uri != NULL)
			mb = merge_route_uri(m, uri);
		if (mb == NULL) {
			merge_error(m, id, JRPC_INVALID_PARAMS, "unknown "
			    "reference for completion");
			goto out;
		}
	} else {
		merge_error(m, id, JRPC_METHOD_NOT_FOUND, "Method not found: "
		    "%s", method);
		goto out;
	}
	merge_forward(m, mb, copy);
 out:
	json_decref(copy);
}

static void
merge_cancelled(struct merge *m, const json_t *msg)
{
	const json_t *params = json_object_get(msg, "params");
	const json_t *rid = json_object_get(params, "requestId");
	struct mop *op;
	struct agg *a;
	json_t *note;

	TAILQ_FOREACH(a, &m->aggs, entry)
		if (a->agent_id != NULL && json_equal(a->agent_id, rid))
			a->cancelled = 1;
	TAILQ_FOREACH(op, &m->mops, entry)
		if (op->kind == MOP_FORWARD && json_equal(op->agent_id, rid))
			break;
	if (op == NULL)
		return;
	note = json_deep_copy(msg);
	json_object_set_new(json_object_get(note, "params"), "requestId",
	    json_integer(op->id));
	member_send(m, op->mb, note);
	json_decref(note);
	mop_free(m, op);
}

void
merge_input(struct merge *m, json_t *msg)
{
	const char *method;
	struct member *mb, *next;
	struct sreq *q;
	json_t *copy;

	if (m->closing)
		return;
	switch (jrpc_classify(msg)) {
	case JRPC_REQUEST:
		merge_request(m, msg);
		break;
	case JRPC_NOTIFICATION:
		method = json_string_value(json_object_get(msg, "method"));
		if (strcmp(method, "notifications/initialized") == 0)
			break;	/* each member got its own */
		if (strcmp(method, "notifications/cancelled") == 0) {
			merge_cancelled(m, msg);
			break;
		}
		/* roots/list_changed and the like: every member hears it. */
		for (mb = TAILQ_FIRST(&m->members); mb != NULL; mb = next) {
			next = TAILQ_NEXT(mb, entry);
			if (!mb->removed && mb->state != MB_FAILED)
				member_send(m, mb, msg);
		}
		break;
	case JRPC_RESPONSE:
		/* The agent answers a server's request: back to that one. */
		TAILQ_FOREACH(q, &m->sreqs, entry)
			if (json_is_integer(json_object_get(msg, "id")) &&
			    json_integer_value(json_object_get(msg, "id")) ==
			    q->id)
				break;
		if (q == NULL) {
			log_debug("[*/%u] the agent answered a request nobody "
			    "waits for; dropped", m->stream);
			break;
		}
		TAILQ_REMOVE(&m->sreqs, q, entry);
		copy = json_deep_copy(msg);
		json_object_set(copy, "id", q->up_id);
		if (!q->mb->removed)
			member_send(m, q->mb, copy);
		json_decref(copy);
		json_decref(q->up_id);
		free(q);
		break;
	default:
		if (json_is_string(json_object_get(msg, "id")) ||
		    json_is_integer(json_object_get(msg, "id")))
			merge_error(m, json_object_get(msg, "id"),
			    JRPC_INVALID_REQUEST, "invalid JSON-RPC 2.0 "
			    "message");
		break;
	}
}

/* ---- what session.c calls ---------------------------------------------- */

struct merge *
merge_new(struct session *s, uint32_t stream, const char *agent,
    const char *const *servers, size_t nservers, const char *const *allow,
    size_t nallow, const struct client_conf *conf, char *why, size_t whylen)
{
	struct merge *m;
	size_t i, n = 0;

	m = xcalloc(1, sizeof(*m));
	m->s = s;
	m->stream = stream;
	m->agent = xstrdup(agent);
	m->servers = strv_dup(servers, nservers);
	m->allow = allow != NULL ? strv_dup(allow, nallow) : NULL;
	TAILQ_INIT(&m->members);
	TAILQ_INIT(&m->mops);
	TAILQ_INIT(&m->aggs);
	TAILQ_INIT(&m->sreqs);
	m->tools = mnames_new();
	mnames_reserve(m->tools, MERGE_FALLBACK_TOOL);
	m->prompts = mnames_new();
	m->uris = json_object();
	m->templates = json_array();
	for (i = 0; i < conf->nservers; i++)
		if (merge_visible(m, conf->servers[i].name))
			n++;
	if (n == 0 && m->allow == NULL) {
		snprintf(why, whylen, "none of the servers the agent may use "
		    "is in the allowlist");
		merge_free(m);
		return NULL;
	}
	return m;
}

void
merge_drain(struct merge *m)
{
	struct member *mb;

	TAILQ_FOREACH(mb, &m->members, entry)
		if (mb->s != NULL)
			session_drain(mb->s);
}

int
merge_reconfigure(struct merge *m, const struct client_conf *conf)
{
	const struct server_conf *sc;
	struct member *mb, *next;
	int changed = 0, added = 0, what;
	size_t i;

	if (m->init_params == NULL || m->closing)
		return 0;	/* members open at initialize, from conf */
	m->in_reconf = 1;
	for (mb = TAILQ_FIRST(&m->members); mb != NULL; mb = next) {
		next = TAILQ_NEXT(mb, entry);
		if (mb->removed)
			continue;
		sc = client_conf_server(conf, mb->server);
		if (mb->s != NULL && !mb->closing) {
			what = session_reconfigure(mb->s, conf);
			if (what & (SESSION_RECONF_ENDED |
			    SESSION_RECONF_TOOLS))
				changed = 1;
		} else if (sc == NULL) {
			/* It had failed; now it is gone for good. */
			member_forget(m, mb);
			changed = 1;
		} else if (mb->state == MB_FAILED && !mb->closing) {
			/* Retry a server that could not start. */
			mb->announce = 1;
			member_start(m, mb, NULL);
		}
	}
	for (i = 0; i < conf->nservers; i++) {
		if (!merge_visible(m, conf->servers[i].name) ||
		    merge_member(m, conf->servers[i].name) != NULL)
			continue;
		/* list_changed goes out when it is ready to be listed. */
		mb = member_add(m, conf->servers[i].name);
		mb->announce = 1;
		member_start(m, mb, NULL);
		added = 1;
	}
	m->in_reconf = 0;
	if (changed)
		merge_list_changed(m);
	return changed || added;
}

void
merge_close(struct merge *m)
{
	struct member *mb;
	struct session *s;

	m->closing = 1;
	lws_sul_cancel(&m->sul);
	TAILQ_FOREACH(mb, &m->members, entry) {
		if ((s = mb->s) == NULL)
			continue;
		mb->s = NULL;
		session_member_close(s);
	}
}

void
merge_free(struct merge *m)
{
	struct member *mb;
	struct mop *op;
	struct agg *a;
	struct sreq *q;

	if (m == NULL)
		return;
	lws_sul_cancel(&m->sul);
	while ((op = TAILQ_FIRST(&m->mops)) != NULL)
		mop_free(m, op);
	while ((a = TAILQ_FIRST(&m->aggs)) != NULL)
		agg_free(m, a);
	while ((q = TAILQ_FIRST(&m->sreqs)) != NULL) {
		TAILQ_REMOVE(&m->sreqs, q, entry);
		json_decref(q->up_id);
		free(q);
	}
	while ((mb = TAILQ_FIRST(&m->members)) != NULL) {
		TAILQ_REMOVE(&m->members, mb, entry);
		member_free(mb);
	}
	mnames_free(m->tools);
	mnames_free(m->prompts);
	json_decref(m->uris);
	json_decref(m->templates);
	json_decref(m->init_params);
	strv_free(m->servers);
	strv_free(m->allow);
	free(m->log_level);
	free(m->agent);
	free(m);
}
