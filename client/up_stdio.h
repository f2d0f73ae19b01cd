/*
 * The stdio upstream (up_stdio.c): one spawned MCP server process per
 * agent session, newline-delimited JSON-RPC on its stdin and stdout, its
 * stderr to the log.  The pipes are adopted into lws as raw files on the
 * "mcptun-stdio" protocol, which must be in the client vhost's protocol
 * list: add STDIO_PROTOCOL to the vhost's struct lws_protocols array, or
 * &stdio_protocol to a pprotocols list.
 *
 * Also here, until it moves into upstream.h: the open-error sentence
 * every kind sets for session.c to put in OPEN_ERR.
 */
#ifndef MCPTUN_UP_STDIO_H
#define MCPTUN_UP_STDIO_H

#include <stddef.h>

#include <libwebsockets.h>

#define STDIO_PROTOCOL_NAME	"mcptun-stdio"

/* The lws callback of the stdio protocol. */
int	stdio_callback(struct lws *wsi, enum lws_callback_reasons reason,
	    void *user, void *in, size_t len);

/* An initialiser for a struct lws_protocols array element. */
#define STDIO_PROTOCOL	{ STDIO_PROTOCOL_NAME, stdio_callback, 0, 0, 0, NULL, 0 }

extern const struct lws_protocols stdio_protocol;

/*
 * Kills (SIGKILL) and reaps every stdio server process still running,
 * without callbacks; for shutdown, after the sessions were closed and
 * before the lws context is destroyed.
 */
void	stdio_shutdown(void);

/* ---- upstream.c ---------------------------------------------------------- */

/*
 * Records why the kind->open() about to fail failed, as a sentence for the
 * agent ("cannot run foo: No such file or directory"); also logged.
 */
void	upstream_set_error(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2)));
/* Takes the last sentence set (or "" if none) and clears it. */
const char *upstream_take_error(void);

#endif
