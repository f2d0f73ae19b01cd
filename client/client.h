/*
 * The client daemon's parts and the interfaces between them:
 *   link.c    - the one outbound WSS link to the relay: dial, HELLO,
 *               reconnect with backoff, pings, the mux, streams;
 *   session.c - one MCP session per stream: allowlist and tool filters,
 *               pending requests and their deadlines, the audit log, the
 *               upstream adapter behind it;
 *   up_*.c    - upstream adapters (upstream.h);
 *   main.c    - options, config, reload, the lws context, the loop.
 * Single-threaded: everything runs in lws callbacks on one loop, but for
 * host-name lookups (common/resolve.h: worker threads, answers handed
 * back on the loop through a pipe main.c watches).
 */
#ifndef MCPTUN_CLIENT_H
#define MCPTUN_CLIENT_H

#include <stddef.h>
#include <stdint.h>

struct lws;
struct lws_context;
struct lws_protocols;
struct lws_vhost;
struct client_conf;
struct server_conf;
struct session;

/* The current config snapshot (never NULL while running). */
const struct client_conf *client_conf_current(void);
struct lws_vhost *client_vhost(void);
struct lws_context *client_context(void);

/* ---- link.c: what sessions use ---------------------------------------- */

/* Queues one whole message to the relay on stream; 0 or MT_E*. */
int link_send(uint32_t stream, const void *msg, size_t len);
/* Bytes queued on stream towards the relay (for backpressure). */
size_t link_queued(uint32_t stream);
/* 1 while the link's queue is over limits.link_budget: do not add to it. */
int link_congested(void);
/* Ends the stream from this side: CLOSE(code, text) after queued data. */
void link_stream_end(uint32_t stream, uint16_t code, const char *text);
/* Receive backpressure on stream (the upstream is not reading). */
void link_pause(uint32_t stream);
void link_resume(uint32_t stream);

/* ---- link.c: what main.c uses ---------------------------------------- */

/* The lws protocol of the link (subprotocol mcptun.1). */
extern const struct lws_protocols link_protocol;
/* Starts dialling the relay from the current config. */
void link_start(void);
/* Ends every session and closes the link (shutdown). */
void link_stop(void);
/* Frees what link_start made (after the loop has stopped). */
void link_free(void);
/* Tells the relay the catalog changed (after a reload). */
void link_catalog_changed(void);
/* 1 while the link is up (WELCOME received). */
int link_is_up(void);

/* ---- session.c: what link.c uses ---------------------------------------- */

/*
 * The relay opened stream id for agent to server, or "*" for the merged
 * endpoint: then servers[] are the servers the relay lets the agent see
 * and allow[] (may be NULL) the agent's server patterns for this tunnel,
 * so servers a later reload adds can be shown too.  Returns 0 and the new
 * session, or a CLOSE_* code (>0) and a reason in why[] for OPEN_ERR.
 */
int session_open(uint32_t id, const char *server, const char *agent,
    const char *const *servers, size_t nservers, const char *const *allow,
    size_t nallow, struct session **out, char *why, size_t whylen);
/* One whole JSON-RPC message from the agent. */
void session_input(struct session *s, const uint8_t *msg, size_t len);
/* The stream was closed by the relay; free everything. */
void session_close(struct session *s);
/* The link has room again for this session's messages. */
void session_drain(struct session *s);

/* What session_reconfigure() did (bits). */
#define SESSION_RECONF_ENDED	0x01	/* server removed: session ended */
#define SESSION_RECONF_TOOLS	0x02	/* tool filter changed: list_changed */
#define SESSION_RECONF_SETTINGS	0x04	/* settings changed: kept old upstream */
#define SESSION_RECONF_MERGED	0x08	/* a merged session's set changed */
/*
 * Applies a reloaded config to one session: ends it if its server was
 * removed (-32004 to pending calls, CLOSE_REMOVED), applies a changed
 * tool filter at once (and tells the agent), keeps the upstream on
 * changed connection settings.  Returns SESSION_RECONF_* bits.
 */
int session_reconfigure(struct session *s, const struct client_conf *conf);
/* session_reconfigure() on every session; returns how many were affected. */
size_t session_reconfigure_all(const struct client_conf *conf);
/* 1 if a and b have the same tool filter (allow and deny lists). */
int session_filter_equal(const struct server_conf *a,
    const struct server_conf *b);

#endif
