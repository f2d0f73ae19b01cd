/*
 * The relay daemon's shared state and the interface between its parts:
 *   tunnel.c  - the /tunnel WebSocket endpoint: one link per tunnel, the
 *               mux, HELLO/WELCOME, catalog, streams, pings, resumption;
 *   http.c    - the agent-facing MCP Streamable HTTP endpoints (/mcp/...),
 *               /healthz and /metrics;
 *   main.c    - options, config, the lws context and the event loop.
 * Single-threaded: everything runs in lws callbacks on one loop.
 */
#ifndef MCPTUN_RELAY_H
#define MCPTUN_RELAY_H

#include <stddef.h>
#include <stdint.h>

struct lws;
struct lws_context;
struct lws_vhost;
struct relay_conf;
struct tunnel;

/* The current config snapshot (never NULL while running). */
const struct relay_conf *relay_conf_current(void);
struct lws_context *relay_context(void);

/* ---- tunnel.c: what the HTTP layer uses ------------------------------ */

/* Callbacks from a tunnel stream to its owner (an MCP session in http.c). */
struct tstream_ops {
	/* The client accepted (ok=1) or refused (ok=0, code/text) the OPEN. */
	void (*on_open)(void *arg, int ok, uint16_t code, const char *text);
	/* One whole JSON-RPC message from the upstream (NUL-terminated). */
	void (*on_message)(void *arg, const uint8_t *msg, size_t len);
	/*
	 * The stream ended: closed by the client (code/text from its CLOSE),
	 * or the link stayed down past resume_grace, or the tunnel was
	 * removed.  No callback follows; the id is dead.
	 */
	void (*on_close)(void *arg, uint16_t code, const char *text);
};

/* Finds a configured tunnel by name; NULL if none. */
struct tunnel *tunnel_find(const char *name);
/* 1 if the tunnel's client link is up. */
int tunnel_online(const struct tunnel *t);
/* 1 if the client's catalog has server (its last HELLO/CATALOG). */
int tunnel_has_server(const struct tunnel *t, const char *server);
/* The client's catalog: number of names and the i-th name. */
size_t tunnel_catalog_count(const struct tunnel *t);
const char *tunnel_catalog_name(const struct tunnel *t, size_t i);

/*
 * Opens a stream to server ("*" plus servers[] for the merged endpoint) on
 * behalf of agent.  Sends OPEN; ops->on_open follows.  Messages may be sent
 * at once (they follow the OPEN in order).  Returns 0 and sets *id, or
 * MT_ECLOSED (tunnel offline), MT_ELIMIT (too many streams).
 */
int tunnel_stream_open(struct tunnel *t, const char *server,
    const char *agent, const char *const *servers, size_t nservers,
    const struct tstream_ops *ops, void *arg, uint32_t *id);
/*
 * As tunnel_stream_open, plus allow[]: the agent's server patterns for
 * this tunnel ("db", "*"), sent in OPEN so the client can show servers a
 * reload adds later on the merged endpoint.
 */
int tunnel_stream_open2(struct tunnel *t, const char *server,
    const char *agent, const char *const *servers, size_t nservers,
    const char *const *allow, size_t nallow, const struct tstream_ops *ops,
    void *arg, uint32_t *id);
/* Queues one whole message; MT_ENOTFOUND if the stream is gone. */
int tunnel_stream_send(struct tunnel *t, uint32_t id, const void *msg,
    size_t len);
/* Bytes queued on the stream towards the client and not yet sent. */
size_t tunnel_stream_queued(const struct tunnel *t, uint32_t id);
/* 1 while the link's queue is over limits.link_budget. */
int tunnel_congested(const struct tunnel *t);
/* Receive backpressure: the agent is not reading; resume when it is. */
void tunnel_stream_pause(struct tunnel *t, uint32_t id);
void tunnel_stream_resume(struct tunnel *t, uint32_t id);
/* Ends the stream (CLOSE after queued data); no more callbacks. */
void tunnel_stream_close(struct tunnel *t, uint32_t id, uint16_t code,
    const char *text);

/* Counters for /metrics. */
struct tunnel_stats {
	uint64_t links_up;	/* tunnels with a link now */
	uint64_t streams;	/* open streams, all tunnels */
	uint64_t bytes_to_client;
	uint64_t bytes_from_client;
	uint64_t link_accepts;
	uint64_t link_rejects;
	uint64_t early_closes;	/* tunnel port: ended before a request */
};
void tunnel_get_stats(struct tunnel_stats *st);
/*
 * A connection to the tunnel listener from peer ended before its HTTP
 * request: counted, and logged at most once a minute (main.c).
 */
void tunnel_note_early_close(const char *peer);

/* The lws protocol callback for "mcptun.1" (tunnel.c). */
int tunnel_callback(struct lws *wsi, int reason, void *user, void *in,
    size_t len);
/* Size of the per-connection user data tunnel_callback wants. */
size_t tunnel_user_size(void);
/* Sets up tunnels from the config (again on reload); 0 or MT_E*. */
int tunnel_configure(const struct relay_conf *conf);
/*
 * Accept links only on vh (the tunnel_listen vhost; NULL: on any) and,
 * with require_cert, only from peers whose certificate the TLS layer
 * verified (tls.client_ca).
 */
void tunnel_set_listener(struct lws_vhost *vh, int require_cert);
/* Sends GOAWAY to every link and closes them (shutdown). */
void tunnel_shutdown(void);
/* Frees every tunnel (after the loop has stopped). */
void tunnel_free_all(void);

/* ---- http.c: what main.c uses ------------------------------------------ */

/* The lws protocol callback for plain HTTP (protocol 0). */
int http_callback(struct lws *wsi, int reason, void *user, void *in,
    size_t len);
/* Size of the per-connection user data http_callback wants. */
size_t http_user_size(void);
/* Ends every agent session (shutdown). */
void http_shutdown(void);
/*
 * After a reload: ends the sessions of agents that are gone or may no
 * longer use their tunnel or server.  Returns how many ended.
 */
size_t http_reconfigure(const struct relay_conf *conf);

#endif
