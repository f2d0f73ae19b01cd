/*
 * The postgres upstream (up_postgres.c): the client itself is the MCP
 * server for one database, on libpq's asynchronous API inside the lws
 * event loop.  Connections are pooled per server (at most sc->pool of
 * them), shared by the agent sessions of that server; every tool call is
 * one statement in a transaction of its own, so a pooled connection
 * carries nothing from one call to the next.
 *
 * Each connection's socket is watched through a dup() of it adopted as a
 * raw file on the "mcptun-postgres" protocol, which must be in the client
 * vhost's protocol list: add PGUP_PROTOCOL to the vhost's struct
 * lws_protocols array, or &pgup_protocol to a pprotocols list.  The
 * protocol's PROTOCOL_INIT records the lws context the pool's timers run
 * on; kind->open fails with a clear sentence until then.
 */
#ifndef MCPTUN_UP_POSTGRES_H
#define MCPTUN_UP_POSTGRES_H

#include <stddef.h>

#include <libwebsockets.h>

#define PGUP_PROTOCOL_NAME	"mcptun-postgres"

/* The lws callback of the postgres protocol. */
int	pgup_callback(struct lws *wsi, enum lws_callback_reasons reason,
	    void *user, void *in, size_t len);

/* An initialiser for a struct lws_protocols array element. */
#define PGUP_PROTOCOL	{ PGUP_PROTOCOL_NAME, pgup_callback, 0, 0, 0, NULL, 0 }

extern const struct lws_protocols pgup_protocol;

struct client_conf;

/*
 * Call with every config the client starts or reloads with: when c names
 * a postgres server, loads libpq (pq_dl.h) unless it is loaded already.
 * Returns 0, or MT_ENOTFOUND after a warning that names the library (the
 * daemon goes on; sessions of postgres servers then fail with the same
 * sentence).
 */
int	pgup_conf_loaded(const struct client_conf *c);

/*
 * Closes every pooled database connection and frees the pools, without
 * callbacks; for shutdown, after the sessions are closed and before
 * lws_context_destroy().  Safe to call more than once.
 */
void	pgup_shutdown(void);

#endif
