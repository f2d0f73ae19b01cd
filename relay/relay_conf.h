/*
 * mcptun-relay configuration: the listener and its TLS, the tunnels that
 * clients may open, the agents that may use them, limits and the HTTP
 * front's policy.
 *
 * Tokens are never stored, only their SHA-256 (64 hex digits).  A loaded
 * configuration is an immutable, reference-counted snapshot: the daemon
 * loads one, applies overrides with relay_conf_set(), calls
 * relay_conf_check() and publishes it; sessions hold references so a reload
 * can swap snapshots.  The last relay_conf_unref() frees it.
 */
#ifndef MCPTUN_RELAY_CONF_H
#define MCPTUN_RELAY_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/conf.h"

#define RELAY_NAME_MAX	48

struct relay_tls_conf {
	char		*cert;		/* PEM certificate chain */
	char		*key;		/* PEM private key */
	char		*client_ca;	/* NULL, or require client certs on tunnel_listen */
};

/* tunnels.NAME: one client link. */
struct relay_tunnel_conf {
	char		*name;
	char		*token_sha256;	/* 64 hex digits */
	uint8_t		 token_hash[32];
	char		*client_cert_cn; /* NULL, or the CN its client cert must have */
	struct conf_pos	 pos;
};

/* agents.NAME: one agent identity and what it may reach. */
struct relay_agent_conf {
	char		*name;
	char		*token_sha256;	/* 64 hex digits */
	uint8_t		 token_hash[32];
	char		**allow;	/* "tunnel/server" or "tunnel/STAR" */
	struct conf_pos	 pos;
};

/* limits: sizes in bytes, durations in milliseconds. */
struct relay_limits {
	uint64_t	 max_body;		/* 4MiB: agent HTTP request body */
	uint64_t	 max_message;		/* 16MiB */
	uint64_t	 window;		/* 4MiB */
	uint64_t	 chunk;			/* 64KiB */
	int64_t		 sessions_per_agent;	/* 64 */
	int64_t		 sessions_per_tunnel;	/* 256 */
	int64_t		 streams_per_link;	/* 1024 */
	uint64_t	 request_timeout_ms;	/* 120s */
	uint64_t	 session_idle_timeout_ms; /* 30m */
	uint64_t	 ping_interval_ms;	/* 15s */
	uint64_t	 ping_timeout_ms;	/* 10s */
	uint64_t	 resume_grace_ms;	/* 60s */
	uint64_t	 queue_limit;		/* 32MiB */
	uint64_t	 link_budget;		/* 64MiB: per link, see mux.h */
	int64_t		 max_connections;	/* 4096: open sockets, at start */
};

struct relay_http_conf {
	char		**allowed_origins;	/* NULL = only requests without Origin */
	uint64_t	 sse_keepalive_ms;	/* 15s */
};

struct relay_conf {
	int			 refcount;
	char			*path;
	char			*listen;	/* "host:port" as written */
	char			*listen_host;	/* "0.0.0.0", "::1" (no brackets) */
	int			 listen_port;
	/*
	 * NULL: /tunnel is served on listen.  Set: tunnel links have a port
	 * of their own (required for tls.client_ca) and listen serves only
	 * agents.
	 */
	char			*tunnel_listen;
	char			*tunnel_listen_host;
	int			 tunnel_listen_port;
	struct relay_tls_conf	 tls;
	int			 insecure_plaintext;
	char			*public_url;	/* NULL = derived from listen */
	size_t			 ntunnels;
	struct relay_tunnel_conf *tunnels;	/* sorted by name */
	size_t			 nagents;
	struct relay_agent_conf	*agents;	/* sorted by name */
	struct relay_limits	 limits;
	struct relay_http_conf	 http;
	int			 log_level;	/* enum log_level */
	struct conf_pos		 tls_pos;	/* of "tls"; line 0 if absent */
	struct conf_pos		 listen_pos;	/* line 0 if default/overridden */
	struct conf_pos		 tunnel_listen_pos; /* line 0 if absent/overridden */
};

/*
 * Loads and checks the file at path.  On success *out holds a new snapshot
 * with one reference.  Returns 0, MT_ECONFIG with "file:line:col: message"
 * lines in err, or another MT_E* code.
 */
int	 relay_conf_load(const char *path, struct relay_conf **out, char *err,
	    size_t errlen);
/* As relay_conf_load, from memory; name is used in messages. */
int	 relay_conf_load_mem(const char *name, const void *data, size_t len,
	    struct relay_conf **out, char *err, size_t errlen);
/*
 * Overrides one key ("listen", "tunnel_listen", "insecure_plaintext",
 * "tls.cert", ...).
 */
int	 relay_conf_set(struct relay_conf *conf, const char *key,
	    const char *value, char *err, size_t errlen);
/*
 * The checks that overrides may satisfy: listen and tunnel_listen parse
 * and differ, tls.cert and tls.key are set unless insecure_plaintext,
 * tls.client_ca comes with tunnel_listen, and tunnels' client_cert_cn with
 * tls.client_ca.  Call it after overrides.
 */
int	 relay_conf_check(struct relay_conf *conf, char *err, size_t errlen);

struct relay_conf *relay_conf_ref(struct relay_conf *conf);
/* Drops a reference; frees at the last one.  NULL is fine. */
void	 relay_conf_unref(struct relay_conf *conf);

/* Writes every key with a line of help to fp (for --help-config). */
void	 relay_conf_help(FILE *fp);

/* Returns the tunnel called name, or NULL. */
const struct relay_tunnel_conf *relay_conf_tunnel(const struct relay_conf *conf,
	    const char *name);
/*
 * Returns 1 if a link for t may use a client certificate with common name
 * cn (NULL: no certificate): always when t names no client_cert_cn.
 */
int	 relay_tunnel_cert_ok(const struct relay_tunnel_conf *t,
	    const char *cn);
/* Returns 1 if token hashes to the tunnel's token_sha256 (constant time). */
int	 relay_tunnel_token_ok(const struct relay_tunnel_conf *t,
	    const char *token);
/*
 * Hashes token once and compares it with every agent's hash in constant
 * time (no early exit); returns the agent or NULL.
 */
const struct relay_agent_conf *relay_conf_agent_by_token(
	    const struct relay_conf *conf, const char *token);
/*
 * Returns 1 if agent may use server of tunnel.  server NULL asks about the
 * merged endpoint /mcp/<tunnel>: allowed if any pattern names the tunnel;
 * the merged endpoint then shows only servers for which this returns 1.
 */
int	 relay_agent_may_use(const struct relay_agent_conf *agent,
	    const char *tunnel, const char *server);

#endif
