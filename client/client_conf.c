/*
 * mcptun-client configuration: the schema tables for client.yaml (and
 * .mcp.json), their checks, and the reference-counted snapshots the daemon
 * swaps on reload.  The generic loading lives in common/conf.c; this file
 * says which keys exist, what they default to and what combinations are
 * wrong.  The allowlist is security policy, so checks here are strict:
 * keys that do not apply to a server's type are errors, not ignored.
 */
#include "client/client_conf.h"
#include "common/conf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"

#include <ctype.h>
#include <fnmatch.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define KIB	1024LL
#define MIB	(1024LL * 1024)
#define GIB	(1024LL * 1024 * 1024)
#define SEC	1000LL
#define MINUTE	(60 * SEC)
#define HOUR	(60 * MINUTE)

#define PG_MAX_PARAMS	100

#define ENTRY(k, kd, st, f, fl, h) \
	{ .key = (k), .kind = (kd), .off = offsetof(st, f), .flags = (fl), \
	  .help = (h) }
#define RANGE(k, kd, st, f, fl, mn, mx, h) \
	{ .key = (k), .kind = (kd), .off = offsetof(st, f), .flags = (fl), \
	  .min = (mn), .max = (mx), .help = (h) }
#define CHOICE(k, st, f, fl, ch, h) \
	{ .key = (k), .kind = CONF_ENUM, .off = offsetof(st, f), \
	  .flags = (fl), .choices = (ch), .help = (h) }
#define TABLE(k, st, f, fl, sc, h) \
	{ .key = (k), .kind = CONF_TABLE, .off = offsetof(st, f), \
	  .flags = (fl), .sub = &(sc), .help = (h) }
#define ARRAY(k, kd, st, f, cnt, fl, sc, h) \
	{ .key = (k), .kind = (kd), .off = offsetof(st, f), \
	  .count_off = offsetof(st, cnt), .flags = (fl), .sub = &(sc), \
	  .help = (h) }
#define END	{ .key = NULL }

#define S_STDIO	(1u << SERVER_STDIO)
#define S_HTTP	(1u << SERVER_HTTP)
#define S_PG	(1u << SERVER_POSTGRES)
#define S_ALL	(S_STDIO | S_HTTP | S_PG)

/* "sse" parses so that it can be refused with a helpful message. */
#define SERVER_SSE	(-1)

static const struct conf_enum server_types[] = {
	{ "stdio",		SERVER_STDIO },
	{ "http",		SERVER_HTTP },
	{ "streamable-http",	SERVER_HTTP },
	{ "postgres",		SERVER_POSTGRES },
	{ "postgresql",		SERVER_POSTGRES },
	{ "sse",		SERVER_SSE },
	{ NULL,			0 }
};

static const struct conf_enum access_modes[] = {
	{ "read-only",	0 },
	{ "read_only",	0 },
	{ "read-write",	1 },
	{ "read_write",	1 },
	{ NULL,		0 }
};

static const struct conf_enum param_types[] = {
	{ "string",	PG_PARAM_STRING },
	{ "integer",	PG_PARAM_INTEGER },
	{ "number",	PG_PARAM_NUMBER },
	{ "boolean",	PG_PARAM_BOOLEAN },
	{ NULL,		0 }
};

static const struct conf_enum log_levels[] = {
	{ "error",	LOG_LVL_ERROR },
	{ "warn",	LOG_LVL_WARN },
	{ "warning",	LOG_LVL_WARN },
	{ "info",	LOG_LVL_INFO },
	{ "debug",	LOG_LVL_DEBUG },
	{ NULL,		0 }
};

/* Tools the postgres adapter provides itself when builtin_tools is on. */
static const char *const pg_builtin_tools[] = {
	"query", "list_schemas", "list_tables", "describe_table", "explain",
	NULL
};

/* Which server keys apply to which types. */
static const struct {
	const char	*key;
	unsigned	 types;
} server_key_types[] = {
	{ "command",		S_STDIO },
	{ "args",		S_STDIO },
	{ "env",		S_STDIO },
	{ "cwd",		S_STDIO },
	{ "max_line",		S_STDIO },
	{ "sandbox",		S_STDIO },
	{ "url",		S_HTTP },
	{ "headers",		S_HTTP },
	{ "ca_file",		S_HTTP },
	{ "dsn",		S_PG },
	{ "password",		S_PG },
	{ "password_file",	S_PG },
	{ "access",		S_PG },
	{ "statement_timeout",	S_PG },
	{ "max_rows",		S_PG },
	{ "max_bytes",		S_PG },
	{ "pool",		S_PG },
	{ "builtin_tools",	S_PG },
	{ "sql_tools",		S_PG },
	{ NULL,			S_ALL }
};

/* --- relay ---------------------------------------------------------------- */

static int
relay_link_check(struct conf_ctx *ctx, const struct conf_node *node,
    void *base)
{
	struct relay_link_conf *r = base;

	/* The values are checked by client_conf_check(), after overrides. */
	r->pos = conf_ctx_pos(ctx);
	r->url_pos = conf_node_pos(conf_node_get(node, "url"));
	r->tunnel_pos = conf_node_pos(conf_node_get(node, "tunnel"));
	r->pin_pos = conf_node_pos(conf_node_get(node, "pin_sha256"));
	return 0;
}

static const struct conf_entry relay_link_entries[] = {
	ENTRY("url", CONF_STRING, struct relay_link_conf, url, 0,
	    "wss://host:port/tunnel of the relay"),
	ENTRY("tunnel", CONF_STRING, struct relay_link_conf, tunnel, 0,
	    "tunnel name, as declared in the relay's tunnels"),
	ENTRY("token", CONF_SECRET, struct relay_link_conf, token, 0,
	    "bearer token of the tunnel"),
	ENTRY("ca_file", CONF_STRING, struct relay_link_conf, ca_file, 0,
	    "PEM CA bundle for the relay (default: system roots)"),
	ENTRY("pin_sha256", CONF_STRING, struct relay_link_conf, pin_sha256,
	    0, "SHA-256 of the relay's public key, base64 or hex"),
	ENTRY("client_cert", CONF_STRING, struct relay_link_conf, client_cert,
	    0, "PEM client certificate for mTLS"),
	ENTRY("client_key", CONF_STRING, struct relay_link_conf, client_key,
	    0, "PEM client key for mTLS"),
	ENTRY("insecure", CONF_BOOL, struct relay_link_conf, insecure, 0,
	    "allow ws:// and skip certificate checks (tests only)"),
	END
};

static const struct conf_schema relay_link_schema = {
	.name = "relay",
	.entries = relay_link_entries,
	.size = sizeof(struct relay_link_conf),
	.check = relay_link_check
};

/* --- limits --------------------------------------------------------------- */

static void
client_limits_defaults(void *base)
{
	struct client_limits *l = base;

	l->window = 4 * MIB;
	l->chunk = 64 * KIB;
	l->max_message = 16 * MIB;
	l->queue_limit = 32 * MIB;
	l->link_budget = 64 * MIB;
	l->ping_interval_ms = 15 * SEC;
	l->ping_timeout_ms = 10 * SEC;
	l->reconnect_min_ms = 500;
	l->reconnect_max_ms = 30 * SEC;
	l->request_timeout_ms = 120 * SEC;
	l->resume_grace_ms = 60 * SEC;
}

static int
client_limits_check(struct conf_ctx *ctx, const struct conf_node *node,
    void *base)
{
	struct client_limits *l = base;
	int r = 0;

	if (l->chunk > l->window)
		r = conf_error(ctx, conf_node_get(node, "chunk"),
		    "\"chunk\" must not be larger than \"window\"");
	if (l->link_budget < 2 * l->window)
		r = conf_error(ctx, conf_node_get(node, "link_budget"),
		    "\"link_budget\" must be at least twice \"window\", so "
		    "that one stalled stream cannot hold all of it");
	if (l->chunk > l->max_message)
		r = conf_error(ctx, conf_node_get(node, "chunk"),
		    "\"chunk\" must not be larger than \"max_message\"");
	if (l->reconnect_min_ms > l->reconnect_max_ms)
		r = conf_error(ctx, conf_node_get(node, "reconnect_min"),
		    "\"reconnect_min\" must not be larger than "
		    "\"reconnect_max\"");
	return r;
}

static const struct conf_entry client_limits_entries[] = {
	RANGE("window", CONF_SIZE, struct client_limits, window, 0,
	    4 * KIB, GIB, "per-stream flow-control window"),
	RANGE("chunk", CONF_SIZE, struct client_limits, chunk, 0,
	    1 * KIB, 16 * MIB, "largest DATA frame payload"),
	RANGE("max_message", CONF_SIZE, struct client_limits, max_message, 0,
	    1 * KIB, GIB, "largest JSON-RPC message"),
	RANGE("queue_limit", CONF_SIZE, struct client_limits, queue_limit, 0,
	    64 * KIB, 16 * GIB, "most bytes queued towards the relay"),
	RANGE("link_budget", CONF_SIZE, struct client_limits, link_budget, 0,
	    64 * KIB, 16 * GIB, "most bytes buffered for one link's streams"),
	RANGE("ping_interval", CONF_DURATION, struct client_limits,
	    ping_interval_ms, 0, 100, HOUR, "time between pings"),
	RANGE("ping_timeout", CONF_DURATION, struct client_limits,
	    ping_timeout_ms, 0, 100, HOUR, "time to wait for a pong"),
	RANGE("reconnect_min", CONF_DURATION, struct client_limits,
	    reconnect_min_ms, 0, 10, HOUR, "first reconnect delay"),
	RANGE("reconnect_max", CONF_DURATION, struct client_limits,
	    reconnect_max_ms, 0, 10, HOUR, "longest reconnect delay"),
	RANGE("request_timeout", CONF_DURATION, struct client_limits,
	    request_timeout_ms, 0, 100, 24 * HOUR,
	    "deadline for an upstream answer"),
	RANGE("resume_grace", CONF_DURATION, struct client_limits,
	    resume_grace_ms, 0, 0, 24 * HOUR,
	    "keep upstream sessions this long after the link drops"),
	END
};

static const struct conf_schema client_limits_schema = {
	.name = "limits",
	.entries = client_limits_entries,
	.size = sizeof(struct client_limits),
	.defaults = client_limits_defaults,
	.check = client_limits_check
};

/* --- offload -------------------------------------------------------------- */

static void
offload_defaults(void *base)
{
	struct offload_conf *o = base;

	o->threshold_tokens = 100000;
	o->max_total_bytes = 1 * GIB;
	o->ttl_ms = 1 * HOUR;
	o->keep_after_session = 0;
}

/* A server's offload starts "unset"; client_check fills in the global. */
static void
offload_override_defaults(void *base)
{
	struct offload_conf *o = base;

	o->threshold_tokens = -1;
	o->max_total_bytes = UINT64_MAX;
	o->ttl_ms = UINT64_MAX;
	o->keep_after_session = -1;
}

static const struct conf_entry offload_entries[] = {
	RANGE("threshold_tokens", CONF_INT, struct offload_conf,
	    threshold_tokens, 0, 0, 1000000000000LL,
	    "offload results above this many tokens (bytes/4); 0 = never"),
	ENTRY("dir", CONF_STRING, struct offload_conf, dir, 0,
	    "spool directory (mode 0700)"),
	ENTRY("max_total_bytes", CONF_SIZE, struct offload_conf,
	    max_total_bytes, 0, "spool quota"),
	ENTRY("ttl", CONF_DURATION, struct offload_conf, ttl_ms, 0,
	    "delete spooled results after this long"),
	ENTRY("keep_after_session", CONF_BOOL, struct offload_conf,
	    keep_after_session, 0, "keep spooled results when a session ends"),
	END
};

static const struct conf_schema offload_schema = {
	.name = "offload",
	.entries = offload_entries,
	.size = sizeof(struct offload_conf),
	.defaults = offload_defaults
};

static const struct conf_schema offload_override_schema = {
	.name = "offload",
	.entries = offload_entries,
	.size = sizeof(struct offload_conf),
	.defaults = offload_override_defaults
};

/* --- servers -------------------------------------------------------------- */

static const struct conf_entry tool_filter_entries[] = {
	ENTRY("allow", CONF_STRLIST, struct tool_filter, allow, 0,
	    "tool name patterns to expose (default: all)"),
	ENTRY("deny", CONF_STRLIST, struct tool_filter, deny, 0,
	    "tool name patterns to hide and refuse (wins over allow)"),
	END
};

static const struct conf_schema tool_filter_schema = {
	.name = "tools",
	.entries = tool_filter_entries,
	.size = sizeof(struct tool_filter)
};

static const struct conf_entry sandbox_entries[] = {
	ENTRY("enabled", CONF_BOOL, struct sandbox_conf, enabled, 0,
	    "run the command under bubblewrap"),
	ENTRY("read_only", CONF_STRLIST, struct sandbox_conf, read_only, 0,
	    "extra paths bound read-only"),
	ENTRY("read_write", CONF_STRLIST, struct sandbox_conf, read_write, 0,
	    "paths bound read-write"),
	ENTRY("network", CONF_BOOL, struct sandbox_conf, network, 0,
	    "allow network access"),
	END
};

static const struct conf_schema sandbox_schema = {
	.name = "sandbox",
	.entries = sandbox_entries,
	.size = sizeof(struct sandbox_conf)
};

static void
pg_param_defaults(void *base)
{
	struct pg_param *p = base;

	p->required = 1;
}

static int
pg_param_check(struct conf_ctx *ctx, const struct conf_node *node,
    void *base)
{
	struct pg_param *p = base;
	size_t i;

	for (i = 0; p->name[i] != '\0'; i++) {
		if (!isalnum((unsigned char)p->name[i]) && p->name[i] != '_')
			break;
	}
	if (p->name[i] != '\0' || i == 0 || i > 64 ||
	    isdigit((unsigned char)p->name[0]))
		return conf_error(ctx, conf_node_get(node, "name"),
		    "parameter \"name\" must be 1 to 64 letters, digits or "
		    "\"_\", not starting with a digit");
	return 0;
}

static const struct conf_entry pg_param_entries[] = {
	ENTRY("name", CONF_STRING, struct pg_param, name, CONF_REQUIRED,
	    "parameter name shown to the agent"),
	CHOICE("type", struct pg_param, type, CONF_REQUIRED, param_types,
	    "string, integer, number or boolean"),
	ENTRY("description", CONF_STRING, struct pg_param, description, 0,
	    "what the parameter means"),
	ENTRY("required", CONF_BOOL, struct pg_param, required, 0,
	    "the agent must give it (default true)"),
	END
};

static const struct conf_schema pg_param_schema = {
	.name = "parameters",
	.entries = pg_param_entries,
	.size = sizeof(struct pg_param),
	.defaults = pg_param_defaults,
	.check = pg_param_check
};

/* Skips a dollar-quoted string at p ("$tag$...$tag$"); NULL if not one. */
static const char *
sql_skip_dollar_quote(const char *p)
{
	const char *t = p + 1, *end;
	size_t tlen;

	while (isalnum((unsigned char)*t) || *t == '_')
		t++;
	if (*t != '$')
		return NULL;
	tlen = (size_t)(t - p) + 1;	/* "$tag$" */
	for (end = t + 1; *end != '\0'; end++) {
		if (*end == '$' && strncmp(end, p, tlen) == 0)
			return end + tlen;
	}
	return end;
}

/*
 * Marks which placeholders $1..$PG_MAX_PARAMS the SQL uses, skipping
 * string literals, quoted identifiers, comments and dollar quotes.  Sets
 * *maxp to the largest placeholder number seen (saturating).
 */
static void
sql_placeholders(const char *sql, unsigned char used[PG_MAX_PARAMS + 1],
    unsigned long *maxp)
{
	const char *p = sql, *q;
	unsigned long n;

	*maxp = 0;
	while (*p != '\0') {
		if (*p == '\'' || *p == '"') {
			q = p + 1;
			while (*q != '\0' && !(*q == *p && q[1] != *p)) {
				if (*q == *p)
					q++;	/* doubled quote */
				q++;
			}
			p = *q != '\0' ? q + 1 : q;
		} else if (p[0] == '-' && p[1] == '-') {
			while (*p != '\0' && *p != '\n')
				p++;
		} else if (p[0] == '/' && p[1] == '*') {
			q = strstr(p + 2, "*/");
			p = q != NULL ? q + 2 : p + strlen(p);
		} else if (p[0] == '$' && isdigit((unsigned char)p[1])) {
			n = 0;
			for (p++; isdigit((unsigned char)*p); p++) {
				if (n < 1000000)
					n = n * 10 + (unsigned long)(*p - '0');
			}
			if (n > *maxp)
				*maxp = n;
			if (n <= PG_MAX_PARAMS)
				used[n] = 1;
		} else if (p[0] == '$' && (p[1] == '$' || p[1] == '_' ||
		    isalpha((unsigned char)p[1])) &&
		    (p == sql || !(isalnum((unsigned char)p[-1]) ||
		    p[-1] == '_')) && (q = sql_skip_dollar_quote(p)) != NULL) {
			p = q;
		} else
			p++;
	}
}

static int
pg_tool_check(struct conf_ctx *ctx, const struct conf_node *node,
    void *base)
{
	struct pg_tool *t = base;
	unsigned char used[PG_MAX_PARAMS + 1];
	unsigned long max;
	size_t i, j;
	int r = 0;

	t->pos = conf_node_pos(node);
	if (!conf_valid_name(t->name, SQL_TOOL_NAME_MAX))
		return conf_error(ctx, conf_node_get(node, "name"),
		    "tool \"name\" must be 1 to %d letters, digits, \"_\" or "
		    "\"-\"", SQL_TOOL_NAME_MAX);
	if (t->nparams > PG_MAX_PARAMS)
		return conf_error(ctx, conf_node_get(node, "parameters"),
		    "at most %d parameters", PG_MAX_PARAMS);
	for (i = 0; i < t->nparams; i++) {
		for (j = 0; j < i; j++) {
			if (strcmp(t->params[i].name, t->params[j].name) == 0)
				return conf_error(ctx,
				    conf_node_get(node, "parameters"),
				    "tool \"%s\": parameter \"%s\" is declared "
				    "twice", t->name, t->params[i].name);
		}
	}
	memset(used, 0, sizeof(used));
	sql_placeholders(t->sql, used, &max);
	if (max > t->nparams)
		return conf_error(ctx, conf_node_get(node, "sql"),
		    "tool \"%s\": the SQL uses $%lu but %zu parameter%s "
		    "declared", t->name, max, t->nparams,
		    t->nparams == 1 ? " is" : "s are");
	for (i = 0; i < t->nparams; i++) {
		if (!used[i + 1])
			r = conf_error(ctx, conf_node_get(node, "sql"),
			    "tool \"%s\": parameter \"%s\" ($%zu) is not used "
			    "in the SQL", t->name, t->params[i].name, i + 1);
	}
	return r;
}

static const struct conf_entry pg_tool_entries[] = {
	ENTRY("name", CONF_STRING, struct pg_tool, name, CONF_REQUIRED,
	    "tool name: [A-Za-z0-9_-]{1,64}"),
	ENTRY("description", CONF_STRING, struct pg_tool, description, 0,
	    "what the tool does, shown to the agent"),
	ENTRY("sql", CONF_STRING, struct pg_tool, sql, CONF_REQUIRED,
	    "one statement with $1..$N placeholders"),
	ARRAY("parameters", CONF_LIST, struct pg_tool, params, nparams, 0,
	    pg_param_schema, "the placeholders, in order"),
	END
};

static const struct conf_schema pg_tool_schema = {
	.name = "sql_tools",
	.entries = pg_tool_entries,
	.size = sizeof(struct pg_tool),
	.check = pg_tool_check
};

static void
server_defaults(void *base)
{
	struct server_conf *s = base;

	s->max_sessions = 16;
	s->max_line = 16 * MIB;
	s->statement_timeout_ms = 5 * SEC;
	s->max_rows = 1000;
	s->max_bytes = 1 * MIB;
	s->pool = 4;
	s->builtin_tools = 1;
}

static int
server_check_http(struct conf_ctx *ctx, const struct conf_node *node,
    struct server_conf *s)
{
	size_t i;
	int r = 0;

	if (strncmp(s->url, "http://", 7) != 0 &&
	    strncmp(s->url, "https://", 8) != 0)
		return conf_error(ctx, conf_node_get(node, "url"),
		    "\"url\" must start with http:// or https://");
	if (strchr(s->url, '\n') != NULL || strchr(s->url, '\r') != NULL ||
	    strchr(s->url, ' ') != NULL)
		return conf_error(ctx, conf_node_get(node, "url"),
		    "\"url\" must not contain blanks or line breaks");
	for (i = 0; i < s->headers.n; i++) {
		if (!conf_valid_name(s->headers.v[i].key, 128))
			r = conf_error(ctx, conf_node_get(node, "headers"),
			    "header name \"%.64s\" must be letters, digits "
			    "and \"-\"", s->headers.v[i].key);
		else if (strpbrk(s->headers.v[i].value, "\r\n") != NULL)
			r = conf_error(ctx, conf_node_get(node, "headers"),
			    "the value of header \"%s\" must not contain line "
			    "breaks", s->headers.v[i].key);
	}
	return r;
}

static int
server_check_postgres(struct conf_ctx *ctx, const struct conf_node *node,
    struct server_conf *s)
{
	const char *const *b;
	size_t i, j;

	for (i = 0; i < s->nsql_tools; i++) {
		for (j = 0; j < i; j++) {
			if (strcmp(s->sql_tools[i].name,
			    s->sql_tools[j].name) == 0)
				return conf_error_at(ctx, s->sql_tools[i].pos,
				    "tool \"%s\" is declared twice (first at "
				    "line %u)", s->sql_tools[i].name,
				    s->sql_tools[j].pos.line);
		}
		for (b = pg_builtin_tools; s->builtin_tools && *b; b++) {
			if (strcmp(s->sql_tools[i].name, *b) == 0)
				return conf_error_at(ctx, s->sql_tools[i].pos,
				    "tool \"%s\" has the name of a built-in "
				    "tool; rename it or set builtin_tools: "
				    "false", *b);
		}
	}
	return 0;
}

static int
server_check(struct conf_ctx *ctx, const struct conf_node *node, void *base)
{
	struct server_conf *s = base;
	const struct conf_node *k;
	const char *need = NULL;
	size_t i;

	s->pos = conf_ctx_pos(ctx);
	if ((int)s->type == SERVER_SSE)
		return conf_error(ctx, conf_node_get(node, "type"),
		    "server \"%s\": type \"sse\" (the deprecated HTTP+SSE "
		    "transport) is not supported; use type: http for "
		    "Streamable HTTP", s->name);
	if (s->type == 0) {
		if (s->command != NULL)
			s->type = SERVER_STDIO;
		else if (s->url != NULL)
			s->type = SERVER_HTTP;
		else if (s->dsn != NULL)
			s->type = SERVER_POSTGRES;
		else
			return conf_error_at(ctx, s->pos, "server \"%s\" needs "
			    "\"command\" (stdio), \"url\" (http) or \"dsn\" "
			    "(postgres)", s->name);
	}
	for (i = 0; server_key_types[i].key != NULL; i++) {
		k = conf_node_key(node, server_key_types[i].key);
		if (k != NULL && !(server_key_types[i].types &
		    (1u << s->type)))
			return conf_error(ctx, k, "\"%s\" does not apply to "
			    "a %s server", server_key_types[i].key,
			    server_type_name(s->type));
	}
	switch (s->type) {
	case SERVER_STDIO:
		if (s->command == NULL)
			need = "command";
		break;
	case SERVER_HTTP:
		if (s->url == NULL)
			need = "url";
		break;
	case SERVER_POSTGRES:
		if (s->dsn == NULL)
			need = "dsn";
		break;
	}
	if (need != NULL)
		return conf_error_at(ctx, s->pos, "missing required key \"%s\" "
		    "under %s (type %s)", need, conf_ctx_path(ctx),
		    server_type_name(s->type));
	if (s->type == SERVER_STDIO && s->command[0] == '\0')
		return conf_error(ctx, conf_node_get(node, "command"),
		    "\"command\" is empty");
	if (s->type == SERVER_HTTP)
		return server_check_http(ctx, node, s);
	if (s->type == SERVER_POSTGRES)
		return server_check_postgres(ctx, node, s);
	return 0;
}

static const struct conf_entry server_entries[] = {
	CHOICE("type", struct server_conf, type, CONF_SETTING, server_types,
	    "stdio (default with command), http, postgres"),
	ENTRY("command", CONF_STRING, struct server_conf, command,
	    CONF_SETTING, "stdio: program to run (argv[0], no shell)"),
	ENTRY("args", CONF_STRLIST, struct server_conf, args, CONF_SETTING,
	    "stdio: arguments"),
	{ .key = "env", .kind = CONF_STRMAP,
	  .off = offsetof(struct server_conf, env),
	  .flags = CONF_SETTING | CONF_SECRETVAL,
	  .help = "stdio: extra environment variables" },
	ENTRY("cwd", CONF_STRING, struct server_conf, cwd, CONF_SETTING,
	    "stdio: working directory"),
	RANGE("max_sessions", CONF_INT, struct server_conf, max_sessions, 0,
	    1, 100000, "most concurrent agent sessions on this server"),
	RANGE("max_line", CONF_SIZE, struct server_conf, max_line, 0,
	    1 * KIB, GIB, "stdio: longest JSON-RPC line"),
	TABLE("sandbox", struct server_conf, sandbox, CONF_SETTING,
	    sandbox_schema, "stdio: bubblewrap sandbox"),
	ENTRY("url", CONF_STRING, struct server_conf, url, CONF_SETTING,
	    "http: MCP endpoint URL"),
	{ .key = "headers", .kind = CONF_STRMAP,
	  .off = offsetof(struct server_conf, headers),
	  .flags = CONF_SETTING | CONF_SECRETVAL,
	  .help = "http: extra request headers" },
	ENTRY("ca_file", CONF_STRING, struct server_conf, ca_file,
	    CONF_SETTING, "http: PEM CA bundle for https"),
	RANGE("timeout", CONF_DURATION, struct server_conf, timeout_ms, 0,
	    100, 24 * HOUR, "answer deadline (default limits.request_timeout)"),
	ENTRY("dsn", CONF_STRING, struct server_conf, dsn, CONF_SETTING,
	    "postgres: libpq connection string"),
	ENTRY("password", CONF_SECRET, struct server_conf, password,
	    CONF_SETTING, "postgres: password"),
	CHOICE("access", struct server_conf, read_write, CONF_SETTING,
	    access_modes, "postgres: read-only (default) or read-write"),
	RANGE("statement_timeout", CONF_DURATION, struct server_conf,
	    statement_timeout_ms, 0, 1, 24 * HOUR,
	    "postgres: per-statement timeout"),
	RANGE("max_rows", CONF_INT, struct server_conf, max_rows, 0, 1,
	    100000000, "postgres: most rows returned"),
	RANGE("max_bytes", CONF_SIZE, struct server_conf, max_bytes, 0,
	    1 * KIB, GIB, "postgres: most result bytes returned"),
	RANGE("pool", CONF_INT, struct server_conf, pool, CONF_SETTING, 1,
	    256, "postgres: connections"),
	ENTRY("builtin_tools", CONF_BOOL, struct server_conf, builtin_tools,
	    0, "postgres: offer query, list_tables, describe_table, explain"),
	ARRAY("sql_tools", CONF_LIST, struct server_conf, sql_tools,
	    nsql_tools, 0, pg_tool_schema, "postgres: curated SQL tools"),
	TABLE("tools", struct server_conf, tools, 0, tool_filter_schema,
	    "tool filter: {allow, deny}"),
	TABLE("offload", struct server_conf, offload, 0,
	    offload_override_schema, "offload settings for this server"),
	END
};

static const struct conf_schema server_schema = {
	.name = "server",
	.entries = server_entries,
	.size = sizeof(struct server_conf),
	.defaults = server_defaults,
	.check = server_check
};

/* --- top level ------------------------------------------------------------ */

static void
client_defaults(void *base)
{
	struct client_conf *c = base;

	c->log_level = LOG_LVL_INFO;
}

static int
server_cmp(const void *a, const void *b)
{
	const struct server_conf *sa = a, *sb = b;

	return strcmp(sa->name, sb->name);
}

/* Fills a server's unset offload settings from the global ones. */
static void
offload_merge(struct offload_conf *o, const struct offload_conf *g)
{
	if (o->threshold_tokens < 0)
		o->threshold_tokens = g->threshold_tokens;
	if (o->dir == NULL && g->dir != NULL)
		o->dir = xstrdup(g->dir);
	if (o->max_total_bytes == UINT64_MAX)
		o->max_total_bytes = g->max_total_bytes;
	if (o->ttl_ms == UINT64_MAX)
		o->ttl_ms = g->ttl_ms;
	if (o->keep_after_session < 0)
		o->keep_after_session = g->keep_after_session;
}

static int
client_check(struct conf_ctx *ctx, const struct conf_node *node, void *base)
{
	struct client_conf *c = base;
	size_t i;

	for (i = 0; i < c->nservers; i++) {
		offload_merge(&c->servers[i].offload, &c->offload);
		if (c->servers[i].timeout_ms == 0)
			c->servers[i].timeout_ms = c->limits.request_timeout_ms;
	}
	if (c->nservers > 1)
		qsort(c->servers, c->nservers, sizeof(*c->servers),
		    server_cmp);
	return 0;
}

static const struct conf_entry client_entries[] = {
	TABLE("relay", struct client_conf, relay, 0, relay_link_schema,
	    "how to reach the relay"),
	TABLE("limits", struct client_conf, limits, 0, client_limits_schema,
	    "sizes and timeouts"),
	ENTRY("audit_log", CONF_STRING, struct client_conf, audit_log, 0,
	    "JSON-lines audit log file; \"-\" = stderr"),
	CHOICE("log_level", struct client_conf, log_level, 0, log_levels,
	    "error, warn, info or debug"),
	TABLE("offload", struct client_conf, offload, 0, offload_schema,
	    "spool large tool results"),
	{ .key = "servers", .alias = "mcpServers", .kind = CONF_NAMED,
	  .off = offsetof(struct client_conf, servers),
	  .count_off = offsetof(struct client_conf, nservers),
	  .sub = &server_schema,
	  .help = "the allowlist: upstream MCP servers by name" },
	END
};

static const struct conf_schema client_schema = {
	.name = "client",
	.entries = client_entries,
	.size = sizeof(struct client_conf),
	.defaults = client_defaults,
	.check = client_check
};

/* --- public API ----------------------------------------------------------- */

static int
client_conf_finish(const char *name, struct client_conf *c, int r,
    struct client_conf **out)
{
	if (r != 0) {
		free(c);
		return r;
	}
	c->refcount = 1;
	c->path = xstrdup(name);
	*out = c;
	return 0;
}

int
client_conf_load(const char *path, struct client_conf **out, char *err,
    size_t errlen)
{
	struct client_conf *c = xcalloc(1, sizeof(*c));

	return client_conf_finish(path, c,
	    conf_load_file(path, &client_schema, c, err, errlen), out);
}

int
client_conf_load_mem(const char *name, const void *data, size_t len,
    struct client_conf **out, char *err, size_t errlen)
{
	struct client_conf *c = xcalloc(1, sizeof(*c));

	return client_conf_finish(name, c,
	    conf_load_mem(name, data, len, &client_schema, c, err, errlen),
	    out);
}

int
client_conf_set(struct client_conf *conf, const char *key,
    const char *value, char *err, size_t errlen)
{
	struct conf_pos none = { 0, 0 };
	int r;

	if ((r = conf_set(&client_schema, conf, key, value, err,
	    errlen)) != 0)
		return r;
	/* An overridden value was not written in the file. */
	if (strcmp(key, "relay.url") == 0)
		conf->relay.url_pos = none;
	else if (strcmp(key, "relay.tunnel") == 0)
		conf->relay.tunnel_pos = none;
	else if (strcmp(key, "relay.pin_sha256") == 0)
		conf->relay.pin_pos = none;
	return 0;
}

static int
b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

/* Decodes a SHA-256 pin: 64 hex digits or 43/44 base64 characters. */
static int
pin_decode(const char *s, uint8_t out[32])
{
	uint8_t tmp[33];
	uint32_t acc = 0;
	size_t len, i, n = 0;
	int bits = 0, v;

	if (strncmp(s, "sha256//", 8) == 0)
		s += 8;
	len = strlen(s);
	if (len == 64)
		return hex_decode(s, out, 32);
	if (len == 44 && s[43] == '=')
		len = 43;
	if (len != 43)
		return MT_EINVAL;
	for (i = 0; i < len; i++) {
		if ((v = b64val((unsigned char)s[i])) < 0)
			return MT_EINVAL;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n < sizeof(tmp))
				tmp[n++] = (uint8_t)(acc >> bits);
		}
	}
	if (n != 32)
		return MT_EINVAL;
	memcpy(out, tmp, 32);
	return 0;
}

int
client_conf_check(struct client_conf *conf, char *err, size_t errlen)
{
	struct relay_link_conf *r = &conf->relay;
	const char *p = conf->path, *rest;

	if (r->url == NULL && r->tunnel == NULL && r->token == NULL &&
	    r->pos.line == 0) {
		conf_format_error(err, errlen, p, r->pos, "missing required "
		    "key \"relay\" (its url, tunnel and token may also come "
		    "from the command line)");
		return MT_ECONFIG;
	}
	if (r->url == NULL || r->tunnel == NULL || r->token == NULL) {
		conf_format_error(err, errlen, p, r->pos, "missing required "
		    "key \"%s\" under relay", r->url == NULL ? "url" :
		    r->tunnel == NULL ? "tunnel" : "token");
		return MT_ECONFIG;
	}
	if (strncmp(r->url, "wss://", 6) == 0)
		rest = r->url + 6;
	else if (strncmp(r->url, "ws://", 5) == 0)
		rest = r->url + 5;
	else
		rest = NULL;
	if (rest == NULL || *rest == '\0' || *rest == '/' ||
	    strpbrk(r->url, " \r\n") != NULL) {
		conf_format_error(err, errlen, p, r->url_pos, "\"url\" must be "
		    "wss://host[:port]/path (or ws:// with insecure: true)");
		return MT_ECONFIG;
	}
	if (strncmp(r->url, "ws://", 5) == 0 && !r->insecure) {
		conf_format_error(err, errlen, p, r->url_pos, "\"url\" uses "
		    "ws:// without TLS; set insecure: true to allow it");
		return MT_ECONFIG;
	}
	if (!conf_valid_name(r->tunnel, CONF_NAME_MAX)) {
		conf_format_error(err, errlen, p, r->tunnel_pos, "\"tunnel\" "
		    "must be 1 to %d letters, digits, \"_\" or \"-\"",
		    CONF_NAME_MAX);
		return MT_ECONFIG;
	}
	if (r->token[0] == '\0') {
		conf_format_error(err, errlen, p, r->pos, "\"token\" is empty");
		return MT_ECONFIG;
	}
	r->has_pin = 0;
	if (r->pin_sha256 != NULL) {
		if (pin_decode(r->pin_sha256, r->pin) != 0) {
			conf_format_error(err, errlen, p, r->pin_pos,
			    "\"pin_sha256\" must be a SHA-256 in base64 (44 "
			    "characters) or hex (64 digits)");
			return MT_ECONFIG;
		}
		r->has_pin = 1;
	}
	if ((r->client_cert == NULL) != (r->client_key == NULL)) {
		conf_format_error(err, errlen, p, r->pos, "\"client_cert\" and "
		    "\"client_key\" must be given together");
		return MT_ECONFIG;
	}
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	return 0;
}

struct client_conf *
client_conf_ref(struct client_conf *conf)
{
	conf->refcount++;
	return conf;
}

void
client_conf_unref(struct client_conf *conf)
{
	if (conf == NULL || --conf->refcount > 0)
		return;
	conf_free(&client_schema, conf);
	free(conf->path);
	explicit_wipe(conf, sizeof(*conf));
	free(conf);
}

const struct server_conf *
client_conf_server(const struct client_conf *conf, const char *name)
{
	struct server_conf key;

	if (conf->nservers == 0)
		return NULL;
	memset(&key, 0, sizeof(key));
	key.name = (char *)(uintptr_t)name;
	return bsearch(&key, conf->servers, conf->nservers,
	    sizeof(*conf->servers), server_cmp);
}

int
server_conf_equal_settings(const struct server_conf *a,
    const struct server_conf *b)
{
	return a->type == b->type &&
	    conf_equal(&server_schema, a, b, CONF_SETTING);
}

int
server_conf_tool_allowed(const struct server_conf *s, const char *tool)
{
	size_t i;

	for (i = 0; s->tools.deny != NULL && s->tools.deny[i] != NULL; i++) {
		if (fnmatch(s->tools.deny[i], tool, 0) == 0)
			return 0;
	}
	if (s->tools.allow == NULL)
		return 1;
	for (i = 0; s->tools.allow[i] != NULL; i++) {
		if (fnmatch(s->tools.allow[i], tool, 0) == 0)
			return 1;
	}
	return 0;
}

const char *
server_type_name(enum server_type type)
{
	switch (type) {
	case SERVER_STDIO:
		return "stdio";
	case SERVER_HTTP:
		return "http";
	case SERVER_POSTGRES:
		return "postgres";
	}
	return "unknown";
}

const struct pg_tool *
server_conf_sql_tool(const struct server_conf *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->nsql_tools; i++) {
		if (strcmp(s->sql_tools[i].name, name) == 0)
			return &s->sql_tools[i];
	}
	return NULL;
}

void
client_conf_help(FILE *fp)
{
	conf_help(&client_schema, fp);
}
