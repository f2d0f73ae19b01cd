/*
 * Upstream adapters: each kind (stdio, http, postgres) implements one
 * interface, so the session layer above does not care what kind of MCP
 * server it talks to.  One upstream instance serves one agent session
 * (one tunnel stream).
 *
 * Contract: after kind->close(u) returns, no callback for u is made again.
 * Callbacks are never made from inside kind->open/send/close.
 */
#ifndef MCPTUN_UPSTREAM_H
#define MCPTUN_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>

struct lws_context;
struct lws_vhost;
struct offload_sink;
struct server_conf;
struct upstream;

/* What an upstream reports to its owner (client/session.c). */
struct upstream_ops {
	/* One whole JSON-RPC message from the upstream (NUL-terminated). */
	void (*on_message)(void *arg, const uint8_t *msg, size_t len);
	/*
	 * The upstream is gone (exited, crashed, connection lost); why is a
	 * sentence for the agent and the log.  The owner then closes u.
	 */
	void (*on_exit)(void *arg, const char *why);
	/* The upstream can take more input (after send returned MT_EAGAIN). */
	void (*on_drain)(void *arg);
	/*
	 * Optional (NULL = never asked).  A message still arriving has
	 * passed offload_threshold() of the server's offload settings;
	 * head holds its first len bytes.  Returns a sink (offload.h) that
	 * has taken head: the upstream then writes the rest of the message
	 * into it as it arrives, with no size limit, and ends it with
	 * offload_sink_end() (which reports to the owner) or, if the
	 * message is cut off or the upstream closed, offload_sink_abort().
	 * NULL: read the message into memory as usual.
	 */
	struct offload_sink *(*on_big)(void *arg, const uint8_t *head,
	    size_t len);
};

struct upstream_kind {
	const char *name;	/* "stdio", "http", "postgres" */
	/*
	 * Starts a session with the server described by sc for agent.
	 * Returns 0 and sets *out, or MT_E* (and logs why).  sc stays valid
	 * while u lives (the caller holds a config reference).
	 */
	int (*open)(struct lws_vhost *vh, const struct server_conf *sc,
	    const char *agent, const char *session_tag,
	    const struct upstream_ops *ops, void *arg, struct upstream **out);
	/*
	 * Sends one JSON-RPC message from the agent.  Returns 0, MT_EAGAIN
	 * (queued but over the high-water mark: stop sending until on_drain),
	 * MT_ECLOSED or MT_ETOOBIG.
	 */
	int (*send)(struct upstream *u, const uint8_t *msg, size_t len);
	/* Ends the session (SIGTERM/SIGKILL, DELETE, ...) and frees u. */
	void (*close)(struct upstream *u);
	/* Stop/restart reading from the upstream (the agent is slow). */
	void (*pause)(struct upstream *u);
	void (*resume)(struct upstream *u);
};

extern const struct upstream_kind upstream_stdio;
extern const struct upstream_kind upstream_http;
extern const struct upstream_kind upstream_postgres;

/* The kind for sc's type, or NULL. */
const struct upstream_kind *upstream_kind_for(const struct server_conf *sc);

#endif
