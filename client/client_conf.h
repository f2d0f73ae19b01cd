/*
 * mcptun-client configuration: the link to the relay, limits, offload, the
 * audit log and the allowlist of upstream servers.
 *
 * A loaded configuration is an immutable, reference-counted snapshot.  The
 * daemon loads one, applies command-line overrides with client_conf_set(),
 * calls client_conf_check() and publishes it; each session takes a
 * reference, so a reload can swap in a new snapshot while old sessions
 * still hold theirs.  The last client_conf_unref() frees it.
 *
 * The file may be a Claude .mcp.json ({"mcpServers": {...}}): "mcpServers"
 * is accepted as another name for "servers", and the relay section may be
 * absent when command-line overrides supply it (client_conf_check() then
 * requires it).
 *
 * Tool filters use one scheme for every server type:
 *	tools: {allow: [glob...], deny: [glob...]}
 * (allow absent = every tool; deny wins).  Curated SQL tools of a postgres
 * server are a list under "sql_tools".
 */
#ifndef MCPTUN_CLIENT_CONF_H
#define MCPTUN_CLIENT_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/conf.h"

#define SERVER_NAME_MAX		48
#define SQL_TOOL_NAME_MAX	64

enum server_type {
	SERVER_STDIO = 1,
	SERVER_HTTP,
	SERVER_POSTGRES
};

enum pg_param_type {
	PG_PARAM_STRING = 1,
	PG_PARAM_INTEGER,
	PG_PARAM_NUMBER,
	PG_PARAM_BOOLEAN
};

/* relay: how to reach the relay. */
struct relay_link_conf {
	char		*url;		/* wss://host:port/tunnel (ws:// if insecure) */
	char		*tunnel;	/* tunnel name */
	char		*token;		/* secret: bearer token for the tunnel */
	char		*ca_file;	/* NULL = system roots */
	char		*pin_sha256;	/* NULL or base64/hex SPKI SHA-256 */
	uint8_t		 pin[32];	/* decoded pin_sha256 when has_pin */
	int		 has_pin;
	char		*client_cert;	/* optional mTLS */
	char		*client_key;
	int		 insecure;	/* allow ws:// and skip verification */
	struct conf_pos	 pos;		/* of the "relay" key; line 0 if absent */
	struct conf_pos	 url_pos;	/* of the url value; line 0 if overridden */
	struct conf_pos	 tunnel_pos;
	struct conf_pos	 pin_pos;
};

/* limits: sizes in bytes, durations in milliseconds. */
struct client_limits {
	uint64_t	 window;		/* 4MiB: per-stream flow-control window */
	uint64_t	 chunk;			/* 64KiB: largest DATA payload */
	uint64_t	 max_message;		/* 16MiB: largest JSON-RPC message */
	uint64_t	 queue_limit;		/* 32MiB: max bytes queued to the relay */
	uint64_t	 link_budget;		/* 64MiB: per link, see mux.h */
	uint64_t	 ping_interval_ms;	/* 15s */
	uint64_t	 ping_timeout_ms;	/* 10s */
	uint64_t	 reconnect_min_ms;	/* 500ms */
	uint64_t	 reconnect_max_ms;	/* 30s */
	uint64_t	 request_timeout_ms;	/* 120s: upstream answer deadline */
	uint64_t	 resume_grace_ms;	/* 60s: keep upstreams after a drop */
};

/* offload: spill large tool results to a spool directory. */
struct offload_conf {
	int64_t		 threshold_tokens;	/* 100000 (bytes/4); 0 = off */
	char		*dir;			/* NULL = not configured */
	uint64_t	 max_total_bytes;	/* 1GiB quota */
	uint64_t	 ttl_ms;		/* 1h */
	int		 keep_after_session;	/* 0 */
};

/* tools: {allow, deny}; glob patterns, deny wins, allow NULL = all. */
struct tool_filter {
	char		**allow;
	char		**deny;
};

/* sandbox (stdio only): bubblewrap. */
struct sandbox_conf {
	int		 enabled;
	char		**read_only;	/* extra read-only binds */
	char		**read_write;	/* read-write binds */
	int		 network;	/* 0 = no network namespace access */
};

/* One typed parameter of a curated SQL tool; $1 is params[0]. */
struct pg_param {
	char			*name;
	enum pg_param_type	 type;
	char			*description;
	int			 required;
};

/* A curated SQL tool of a postgres server. */
struct pg_tool {
	char		*name;
	char		*description;
	char		*sql;
	size_t		 nparams;
	struct pg_param	*params;
	struct conf_pos	 pos;
};

struct server_conf {
	char			*name;		/* [A-Za-z0-9_-]{1,48} */
	enum server_type	 type;
	struct conf_pos		 pos;		/* of the server's name key */

	/* stdio */
	char			*command;
	char			**args;		/* NULL-terminated, argv[1..] */
	struct conf_map		 env;		/* values are secrets */
	char			*cwd;
	int64_t			 max_sessions;	/* 16 */
	uint64_t		 max_line;	/* 16MiB */
	struct sandbox_conf	 sandbox;

	/* http ("streamable-http") */
	char			*url;
	struct conf_map		 headers;	/* values are secrets */
	char			*ca_file;
	uint64_t		 timeout_ms;	/* default limits.request_timeout */

	/* postgres */
	char			*dsn;
	char			*password;	/* secret; NULL = dsn/.pgpass */
	int			 read_write;	/* access: read-only (0) / read-write */
	uint64_t		 statement_timeout_ms;	/* 5s */
	int64_t			 max_rows;	/* 1000 */
	uint64_t		 max_bytes;	/* 1MiB */
	int64_t			 pool;		/* 4 */
	int			 builtin_tools;	/* 1: query, list_tables, ... */
	size_t			 nsql_tools;
	struct pg_tool		*sql_tools;

	/* every type */
	struct tool_filter	 tools;
	struct offload_conf	 offload;	/* global offload, overridden */
};

struct client_conf {
	int			 refcount;
	char			*path;		/* file name as given */
	struct relay_link_conf	 relay;
	struct client_limits	 limits;
	char			*audit_log;	/* NULL = none; "-" = stderr */
	int			 log_level;	/* enum log_level */
	struct offload_conf	 offload;
	size_t			 nservers;
	struct server_conf	*servers;	/* sorted by name */
};

/*
 * Loads and checks the file at path (everything except what
 * client_conf_check() checks).  On success *out holds a new snapshot with
 * one reference.  Returns 0, MT_ECONFIG with "file:line:col: message" lines
 * in err, or another MT_E* code.
 */
int	 client_conf_load(const char *path, struct client_conf **out,
	    char *err, size_t errlen);
/* As client_conf_load, from memory; name is used in messages. */
int	 client_conf_load_mem(const char *name, const void *data, size_t len,
	    struct client_conf **out, char *err, size_t errlen);
/*
 * Overrides one key ("relay.url", "relay.tunnel", "relay.token",
 * "relay.insecure", "log_level", "limits.window", ...) before
 * client_conf_check(); only on a snapshot not yet shared.
 */
int	 client_conf_set(struct client_conf *conf, const char *key,
	    const char *value, char *err, size_t errlen);
/*
 * The checks that overrides may satisfy: relay url, tunnel and token are
 * set; the url is wss:// (ws:// only with insecure).  Call it after the
 * overrides, also when there are none.  Returns 0 or MT_ECONFIG.
 */
int	 client_conf_check(struct client_conf *conf, char *err, size_t errlen);

/* Takes a reference; returns conf. */
struct client_conf *client_conf_ref(struct client_conf *conf);
/* Drops a reference; frees at the last one.  NULL is fine. */
void	 client_conf_unref(struct client_conf *conf);

/* Writes every key with a line of help to fp (for --help-config). */
void	 client_conf_help(FILE *fp);

/* Returns the server called name, or NULL. */
const struct server_conf *client_conf_server(const struct client_conf *conf,
	    const char *name);
/*
 * Returns 1 if a and b connect to their upstream the same way (type,
 * command, args, env, cwd, sandbox, url, headers, ca_file, dsn, password,
 * access, pool, ...), so a reload may keep their live upstream sessions.
 * Tool filters and offload settings are not connection settings.
 */
int	 server_conf_equal_settings(const struct server_conf *a,
	    const struct server_conf *b);
/* Returns 1 if the server's tool filter lets tool through. */
int	 server_conf_tool_allowed(const struct server_conf *s,
	    const char *tool);
/* Returns "stdio", "http" or "postgres". */
const char *server_type_name(enum server_type type);
/* Returns the curated SQL tool called name, or NULL. */
const struct pg_tool *server_conf_sql_tool(const struct server_conf *s,
	    const char *name);

#endif
