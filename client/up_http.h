/*
 * The HTTP upstream (up_http.c): an MCP Streamable HTTP client for
 * internal servers (type: http), implementing upstream_http.
 *
 * Its connections run on vhosts of their own, one per distinct ca_file
 * (none = the system roots), created on first use with
 * lws_create_vhost(): the client vhost's TLS context is set up for the
 * relay (its CA, maybe a client certificate for mTLS), and neither should
 * apply to an upstream.  So the protocol needs nothing from main.c; adding
 * httpup_protocol (or HTTPUP_PROTOCOL) to the client vhost's protocol list
 * is harmless but not required.
 */
#ifndef MCPTUN_UP_HTTP_H
#define MCPTUN_UP_HTTP_H

#include <stddef.h>

#include <libwebsockets.h>

#define HTTPUP_PROTOCOL_NAME	"mcptun-http"

/* The lws callback of the HTTP upstream protocol. */
int	httpup_callback(struct lws *wsi, enum lws_callback_reasons reason,
	    void *user, void *in, size_t len);

/* An initialiser for a struct lws_protocols array element. */
#define HTTPUP_PROTOCOL \
	{ HTTPUP_PROTOCOL_NAME, httpup_callback, 0, 0, 0, NULL, 0 }

extern const struct lws_protocols httpup_protocol;

/*
 * Frees the DELETEs still waiting (for their host name, or an answer)
 * when the client stops; call before the lws context is destroyed.
 */
void	httpup_shutdown(void);

#endif
