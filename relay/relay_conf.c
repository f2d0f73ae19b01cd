/*
 * mcptun-relay configuration: the schema tables for relay.yaml, their
 * checks, the reference-counted snapshots, and the lookups the relay does
 * on every request (tunnel by name, agent by bearer token, may this agent
 * use that server).  Only SHA-256 hashes of tokens are configured; a
 * presented token is hashed once and compared with every stored hash in
 * constant time.
 */
#include "relay/relay_conf.h"
#include "common/conf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/token.h"
#include "common/xmalloc.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>

#include <ctype.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define KIB	1024LL
#define MIB	(1024LL * 1024)
#define GIB	(1024LL * 1024 * 1024)
#define SEC	1000LL
#define MINUTE	(60 * SEC)
#define HOUR	(60 * MINUTE)

#define ENTRY(k, kd, st, f, fl, h) \
	{ .key = (k), .kind = (kd), .off = offsetof(st, f), .flags = (fl), \
	  .help = (h) }
#define RANGE(k, kd, st, f, fl, mn, mx, h) \
	{ .key = (k), .kind = (kd), .off = offsetof(st, f), .flags = (fl), \
	  .min = (mn), .max = (mx), .help = (h) }
#define TABLE(k, st, f, fl, sc, h) \
	{ .key = (k), .kind = CONF_TABLE, .off = offsetof(st, f), \
	  .flags = (fl), .sub = &(sc), .help = (h) }
#define ARRAY(k, kd, st, f, cnt, fl, sc, h) \
	{ .key = (k), .kind = (kd), .off = offsetof(st, f), \
	  .count_off = offsetof(st, cnt), .flags = (fl), .sub = &(sc), \
	  .help = (h) }
#define END	{ .key = NULL }

static const struct conf_enum log_levels[] = {
	{ "error",	LOG_LVL_ERROR },
	{ "warn",	LOG_LVL_WARN },
	{ "warning",	LOG_LVL_WARN },
	{ "info",	LOG_LVL_INFO },
	{ "debug",	LOG_LVL_DEBUG },
	{ NULL,		0 }
};

/* The node of a secret KEY or, if it came from a file, of KEY_file. */
static const struct conf_node *
secret_node(const struct conf_node *node, const char *key)
{
	char fkey[64];
	const struct conf_node *n;

	if ((n = conf_node_get(node, key)) != NULL)
		return n;
	snprintf(fkey, sizeof(fkey), "%s_file", key);
	return conf_node_get(node, fkey);
}

static const char listen_form[] = "must be ADDR:PORT or [v6addr]:PORT "
    "with ADDR an IP address, localhost or a network interface (host names "
    "are not looked up)";

/*
 * Parses "host:port" or "[v6]:port" into a new host string and a port.
 * The host must be what lws can bind without a lookup: an IP address or
 * a network interface name; "localhost" becomes 127.0.0.1.  lws takes
 * any other name for an interface that is not up yet and binds nothing,
 * while the relay would say it listens.  Returns 0 or MT_EINVAL.
 */
static int
listen_parse(const char *s, char **hostp, int *portp)
{
	const char *colon, *h, *p;
	struct in6_addr a6;
	char *host;
	size_t hlen, i;
	long port = 0;

	if (s[0] == '[') {
		if ((colon = strstr(s, "]:")) == NULL)
			return MT_EINVAL;
		h = s + 1;
		hlen = (size_t)(colon - h);
		p = colon + 2;
	} else {
		if ((colon = strrchr(s, ':')) == NULL ||
		    memchr(s, ':', (size_t)(colon - s)) != NULL)
			return MT_EINVAL;
		h = s;
		hlen = (size_t)(colon - s);
		p = colon + 1;
	}
	if (hlen == 0 || hlen > 255 || *p == '\0' || strlen(p) > 5)
		return MT_EINVAL;
	for (i = 0; i < hlen; i++) {
		if (!isalnum((unsigned char)h[i]) && h[i] != '.' &&
		    h[i] != '-' && h[i] != ':' && h[i] != '_' && h[i] != '%')
			return MT_EINVAL;
	}
	for (; *p != '\0'; p++) {
		if (!isdigit((unsigned char)*p))
			return MT_EINVAL;
		port = port * 10 + (*p - '0');
	}
	if (port < 1 || port > 65535)
		return MT_EINVAL;
	host = xstrndup(h, hlen);
	if (strcmp(host, "localhost") == 0) {
		free(host);
		host = xstrdup("127.0.0.1");
	} else if (inet_pton(AF_INET, host, &a6) != 1 &&
	    inet_pton(AF_INET6, host, &a6) != 1 && strchr(host, '%') == NULL &&
	    if_nametoindex(host) == 0) {
		free(host);
		return MT_EINVAL;
	}
	*hostp = host;
	*portp = (int)port;
	return 0;
}

/* --- tunnels and agents --------------------------------------------------- */

static int
tunnel_check(struct conf_ctx *ctx, const struct conf_node *node, void *base)
{
	struct relay_tunnel_conf *t = base;

	t->pos = conf_ctx_pos(ctx);
	if (token_hash_parse(t->token_sha256, t->token_hash) != 0)
		return conf_error(ctx, secret_node(node, "token_sha256"),
		    "\"token_sha256\" must be 64 hex digits (the SHA-256 of "
		    "the token)");
	/* X.509 caps a common name at 64 characters (RFC 5280). */
	if (t->client_cert_cn != NULL && (t->client_cert_cn[0] == '\0' ||
	    strlen(t->client_cert_cn) > 64))
		return conf_error(ctx, conf_node_get(node, "client_cert_cn"),
		    "\"client_cert_cn\" must be 1 to 64 characters");
	return 0;
}

static const struct conf_entry tunnel_entries[] = {
	ENTRY("token_sha256", CONF_SECRET, struct relay_tunnel_conf,
	    token_sha256, CONF_REQUIRED,
	    "SHA-256 (hex) of the tunnel token the client presents"),
	ENTRY("client_cert_cn", CONF_STRING, struct relay_tunnel_conf,
	    client_cert_cn, 0,
	    "common name the client's certificate must have (tls.client_ca)"),
	END
};

static const struct conf_schema tunnel_schema = {
	.name = "tunnel",
	.entries = tunnel_entries,
	.size = sizeof(struct relay_tunnel_conf),
	.check = tunnel_check
};

/* Returns 1 if pat is "tunnel/server" or "tunnel/STAR" with valid names. */
static int
allow_pattern_valid(const char *pat)
{
	const char *slash = strchr(pat, '/');
	char tunnel[CONF_NAME_MAX + 1];
	size_t tlen;

	if (slash == NULL || (tlen = (size_t)(slash - pat)) > CONF_NAME_MAX)
		return 0;
	memcpy(tunnel, pat, tlen);
	tunnel[tlen] = '\0';
	if (!conf_valid_name(tunnel, CONF_NAME_MAX))
		return 0;
	return strcmp(slash + 1, "*") == 0 ||
	    conf_valid_name(slash + 1, CONF_NAME_MAX);
}

static int
agent_check(struct conf_ctx *ctx, const struct conf_node *node, void *base)
{
	struct relay_agent_conf *a = base;
	size_t i;

	a->pos = conf_ctx_pos(ctx);
	if (token_hash_parse(a->token_sha256, a->token_hash) != 0)
		return conf_error(ctx, secret_node(node, "token_sha256"),
		    "\"token_sha256\" must be 64 hex digits (the SHA-256 of "
		    "the token)");
	for (i = 0; a->allow != NULL && a->allow[i] != NULL; i++) {
		if (!allow_pattern_valid(a->allow[i]))
			return conf_error(ctx, conf_node_get(node, "allow"),
			    "allow pattern \"%.100s\" must be tunnel/server "
			    "or tunnel/*", a->allow[i]);
	}
	return 0;
}

static const struct conf_entry agent_entries[] = {
	ENTRY("token_sha256", CONF_SECRET, struct relay_agent_conf,
	    token_sha256, CONF_REQUIRED,
	    "SHA-256 (hex) of the agent's bearer token"),
	ENTRY("allow", CONF_STRLIST, struct relay_agent_conf, allow, 0,
	    "servers the agent may use: tunnel/server or tunnel/*"),
	END
};

static const struct conf_schema agent_schema = {
	.name = "agent",
	.entries = agent_entries,
	.size = sizeof(struct relay_agent_conf),
	.check = agent_check
};

/* --- tls, limits, http ---------------------------------------------------- */

static const struct conf_entry tls_entries[] = {
	ENTRY("cert", CONF_STRING, struct relay_tls_conf, cert, 0,
	    "PEM certificate chain"),
	ENTRY("key", CONF_STRING, struct relay_tls_conf, key, 0,
	    "PEM private key"),
	ENTRY("client_ca", CONF_STRING, struct relay_tls_conf, client_ca, 0,
	    "PEM CA; tunnel links (on tunnel_listen) need a certificate it "
	    "issued (mTLS)"),
	END
};

static const struct conf_schema tls_schema = {
	.name = "tls",
	.entries = tls_entries,
	.size = sizeof(struct relay_tls_conf)
};

static void
relay_limits_defaults(void *base)
{
	struct relay_limits *l = base;

	l->max_body = 4 * MIB;
	l->max_message = 16 * MIB;
	l->window = 4 * MIB;
	l->chunk = 64 * KIB;
	l->sessions_per_agent = 64;
	l->sessions_per_tunnel = 256;
	l->streams_per_link = 1024;
	l->request_timeout_ms = 120 * SEC;
	l->session_idle_timeout_ms = 30 * MINUTE;
	l->ping_interval_ms = 15 * SEC;
	l->ping_timeout_ms = 10 * SEC;
	l->resume_grace_ms = 60 * SEC;
	l->queue_limit = 32 * MIB;
	l->link_budget = 64 * MIB;
	l->max_connections = 4096;
}

static int
relay_limits_check(struct conf_ctx *ctx, const struct conf_node *node,
    void *base)
{
	struct relay_limits *l = base;
	int r = 0;

	if (l->chunk > l->window)
		r = conf_error(ctx, conf_node_get(node, "chunk"),
		    "\"chunk\" must not be larger than \"window\"");
	if (l->link_budget < 2 * l->window)
		r = conf_error(ctx, conf_node_get(node, "link_budget"),
		    "\"link_budget\" must be at least twice \"window\", so "
		    "that one stalled stream cannot hold all of it");
	if (l->max_body > l->max_message)
		r = conf_error(ctx, conf_node_get(node, "max_body"),
		    "\"max_body\" must not be larger than \"max_message\"");
	return r;
}

static const struct conf_entry relay_limits_entries[] = {
	RANGE("max_body", CONF_SIZE, struct relay_limits, max_body, 0,
	    1 * KIB, GIB, "largest agent HTTP request body"),
	RANGE("max_message", CONF_SIZE, struct relay_limits, max_message, 0,
	    1 * KIB, GIB, "largest JSON-RPC message"),
	RANGE("window", CONF_SIZE, struct relay_limits, window, 0,
	    4 * KIB, GIB, "per-stream flow-control window"),
	RANGE("chunk", CONF_SIZE, struct relay_limits, chunk, 0,
	    1 * KIB, 16 * MIB, "largest DATA frame payload"),
	RANGE("sessions_per_agent", CONF_INT, struct relay_limits,
	    sessions_per_agent, 0, 1, 1000000, "live sessions per agent"),
	RANGE("sessions_per_tunnel", CONF_INT, struct relay_limits,
	    sessions_per_tunnel, 0, 1, 1000000, "live sessions per tunnel"),
	RANGE("streams_per_link", CONF_INT, struct relay_limits,
	    streams_per_link, 0, 1, 1000000, "open streams per client link"),
	RANGE("request_timeout", CONF_DURATION, struct relay_limits,
	    request_timeout_ms, 0, 100, 24 * HOUR, "answer deadline"),
	RANGE("session_idle_timeout", CONF_DURATION, struct relay_limits,
	    session_idle_timeout_ms, 0, 1 * SEC, 30 * 24 * HOUR,
	    "end agent sessions idle this long"),
	RANGE("ping_interval", CONF_DURATION, struct relay_limits,
	    ping_interval_ms, 0, 100, HOUR, "time between pings"),
	RANGE("ping_timeout", CONF_DURATION, struct relay_limits,
	    ping_timeout_ms, 0, 100, HOUR, "time to wait for a pong"),
	RANGE("resume_grace", CONF_DURATION, struct relay_limits,
	    resume_grace_ms, 0, 0, 24 * HOUR,
	    "keep sessions this long for a client link to come back"),
	RANGE("queue_limit", CONF_SIZE, struct relay_limits, queue_limit, 0,
	    64 * KIB, 16 * GIB, "most bytes queued towards one link"),
	RANGE("link_budget", CONF_SIZE, struct relay_limits, link_budget, 0,
	    64 * KIB, 16 * GIB, "most bytes buffered for one link's streams"),
	RANGE("max_connections", CONF_INT, struct relay_limits,
	    max_connections, 0, 32, 1048576,
	    "open connections (agents and links); read at start"),
	END
};

static const struct conf_schema relay_limits_schema = {
	.name = "limits",
	.entries = relay_limits_entries,
	.size = sizeof(struct relay_limits),
	.defaults = relay_limits_defaults,
	.check = relay_limits_check
};

static void
relay_http_defaults(void *base)
{
	struct relay_http_conf *h = base;

	h->sse_keepalive_ms = 15 * SEC;
}

static const struct conf_entry relay_http_entries[] = {
	ENTRY("allowed_origins", CONF_STRLIST, struct relay_http_conf,
	    allowed_origins, 0,
	    "Origins allowed on /mcp (requests without Origin always are)"),
	RANGE("sse_keepalive", CONF_DURATION, struct relay_http_conf,
	    sse_keepalive_ms, 0, 1 * SEC, HOUR,
	    "interval of SSE keep-alive comments"),
	END
};

static const struct conf_schema relay_http_schema = {
	.name = "http",
	.entries = relay_http_entries,
	.size = sizeof(struct relay_http_conf),
	.defaults = relay_http_defaults
};

/* --- top level ------------------------------------------------------------ */

static void
relay_defaults(void *base)
{
	struct relay_conf *c = base;

	c->listen = xstrdup("0.0.0.0:8443");
	c->log_level = LOG_LVL_INFO;
}

static void
relay_free_derived(void *base)
{
	struct relay_conf *c = base;

	free(c->listen_host);
	c->listen_host = NULL;
	free(c->tunnel_listen_host);
	c->tunnel_listen_host = NULL;
}

static int
tunnel_cmp(const void *a, const void *b)
{
	const struct relay_tunnel_conf *ta = a, *tb = b;

	return strcmp(ta->name, tb->name);
}

static int
agent_cmp(const void *a, const void *b)
{
	const struct relay_agent_conf *aa = a, *ab = b;

	return strcmp(aa->name, ab->name);
}

/* Returns 1 if the tunnel part of pattern names a declared tunnel. */
static int
pattern_tunnel_known(const struct relay_conf *c, const char *pat)
{
	const char *slash = strchr(pat, '/');
	size_t i, tlen = (size_t)(slash - pat);

	for (i = 0; i < c->ntunnels; i++) {
		if (strlen(c->tunnels[i].name) == tlen &&
		    strncmp(c->tunnels[i].name, pat, tlen) == 0)
			return 1;
	}
	return 0;
}

static const char client_ca_needs_port[] = "\"client_ca\" needs "
    "\"tunnel_listen\": tunnel links with client certificates get a port of "
    "their own, so agents on \"listen\" need none";

/* 1 if listen and tunnel_listen would bind the same address and port. */
static int
listen_overlap(const struct relay_conf *c)
{
	static const char *const any[] = { "0.0.0.0", "::", NULL };
	size_t i;

	if (c->listen_port != c->tunnel_listen_port)
		return 0;
	if (strcmp(c->listen_host, c->tunnel_listen_host) == 0)
		return 1;
	for (i = 0; any[i] != NULL; i++)
		if (strcmp(c->listen_host, any[i]) == 0 ||
		    strcmp(c->tunnel_listen_host, any[i]) == 0)
			return 1;
	return 0;
}

static int
relay_check(struct conf_ctx *ctx, const struct conf_node *node, void *base)
{
	struct relay_conf *c = base;
	const struct conf_node *agents = conf_node_get(node, "agents");
	struct relay_agent_conf *a;
	size_t i, j;
	int r = 0;

	c->tls_pos = conf_node_pos(conf_node_key(node, "tls"));
	c->listen_pos = conf_node_pos(conf_node_get(node, "listen"));
	c->tunnel_listen_pos = conf_node_pos(conf_node_get(node,
	    "tunnel_listen"));
	free(c->listen_host);
	c->listen_host = NULL;
	if (listen_parse(c->listen, &c->listen_host, &c->listen_port) != 0)
		r = conf_error_at(ctx, c->listen_pos, "\"listen\" %s",
		    listen_form);
	free(c->tunnel_listen_host);
	c->tunnel_listen_host = NULL;
	if (c->tunnel_listen != NULL && listen_parse(c->tunnel_listen,
	    &c->tunnel_listen_host, &c->tunnel_listen_port) != 0)
		r = conf_error_at(ctx, c->tunnel_listen_pos,
		    "\"tunnel_listen\" %s", listen_form);
	else if (c->tunnel_listen != NULL && c->listen_host != NULL &&
	    listen_overlap(c))
		r = conf_error_at(ctx, c->tunnel_listen_pos, "\"tunnel_listen\" "
		    "must be another port than \"listen\" (%s)", c->listen);
	if (c->tls.client_ca != NULL && c->tunnel_listen == NULL)
		r = conf_error(ctx, conf_node_get(conf_node_get(node, "tls"),
		    "client_ca"), "%s", client_ca_needs_port);
	for (i = 0; i < c->ntunnels; i++) {
		if (c->tunnels[i].client_cert_cn != NULL &&
		    c->tls.client_ca == NULL)
			r = conf_error(ctx, conf_node_get(conf_node_get(
			    conf_node_get(node, "tunnels"), c->tunnels[i].name),
			    "client_cert_cn"), "tunnel \"%s\": \"client_cert_cn\" "
			    "needs tls.client_ca (client certificates)",
			    c->tunnels[i].name);
	}
	if (c->public_url != NULL &&
	    strncmp(c->public_url, "https://", 8) != 0 &&
	    strncmp(c->public_url, "http://", 7) != 0)
		r = conf_error(ctx, conf_node_get(node, "public_url"),
		    "\"public_url\" must start with https:// or http://");
	for (i = 0; i < c->nagents; i++) {
		a = &c->agents[i];
		for (j = 0; a->allow != NULL && a->allow[j] != NULL; j++) {
			if (!pattern_tunnel_known(c, a->allow[j])) {
				r = conf_error(ctx, conf_node_get(
				    conf_node_get(agents, a->name), "allow"),
				    "agent \"%s\": allow pattern \"%.100s\" "
				    "names no tunnel declared under tunnels",
				    a->name, a->allow[j]);
				break;
			}
		}
		for (j = 0; j < i; j++) {
			if (ct_equal(a->token_hash, c->agents[j].token_hash,
			    sizeof(a->token_hash)))
				r = conf_error_at(ctx, a->pos, "agents \"%s\" "
				    "and \"%s\" have the same token; give "
				    "each its own", c->agents[j].name,
				    a->name);
		}
		for (j = 0; j < c->ntunnels; j++) {
			if (ct_equal(a->token_hash, c->tunnels[j].token_hash,
			    sizeof(a->token_hash)))
				r = conf_error_at(ctx, a->pos, "agent \"%s\" "
				    "has the same token as tunnel \"%s\"; "
				    "give each its own", a->name,
				    c->tunnels[j].name);
		}
	}
	if (c->ntunnels > 1)
		qsort(c->tunnels, c->ntunnels, sizeof(*c->tunnels),
		    tunnel_cmp);
	if (c->nagents > 1)
		qsort(c->agents, c->nagents, sizeof(*c->agents), agent_cmp);
	return r;
}

static const struct conf_entry relay_entries[] = {
	ENTRY("listen", CONF_STRING, struct relay_conf, listen, 0,
	    "host:port to serve on (default 0.0.0.0:8443)"),
	ENTRY("tunnel_listen", CONF_STRING, struct relay_conf, tunnel_listen,
	    0, "host:port for tunnel links only (needed for tls.client_ca)"),
	TABLE("tls", struct relay_conf, tls, 0, tls_schema,
	    "certificate and key (required unless insecure_plaintext)"),
	ENTRY("insecure_plaintext", CONF_BOOL, struct relay_conf,
	    insecure_plaintext, 0,
	    "serve without TLS (tests, or behind a TLS proxy)"),
	ENTRY("public_url", CONF_STRING, struct relay_conf, public_url, 0,
	    "base URL agents use, for printed URLs"),
	ARRAY("tunnels", CONF_NAMED, struct relay_conf, tunnels, ntunnels, 0,
	    tunnel_schema, "tunnels clients may open, by name"),
	ARRAY("agents", CONF_NAMED, struct relay_conf, agents, nagents, 0,
	    agent_schema, "agent identities, by name"),
	TABLE("limits", struct relay_conf, limits, 0, relay_limits_schema,
	    "sizes, counts and timeouts"),
	TABLE("http", struct relay_conf, http, 0, relay_http_schema,
	    "agent-facing HTTP policy"),
	{ .key = "log_level", .kind = CONF_ENUM,
	  .off = offsetof(struct relay_conf, log_level),
	  .choices = log_levels, .help = "error, warn, info or debug" },
	END
};

static const struct conf_schema relay_schema = {
	.name = "relay",
	.entries = relay_entries,
	.size = sizeof(struct relay_conf),
	.defaults = relay_defaults,
	.check = relay_check,
	.free = relay_free_derived
};

/* --- public API ----------------------------------------------------------- */

static int
relay_conf_finish(const char *name, struct relay_conf *c, int r,
    struct relay_conf **out)
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
relay_conf_load(const char *path, struct relay_conf **out, char *err,
    size_t errlen)
{
	struct relay_conf *c = xcalloc(1, sizeof(*c));

	return relay_conf_finish(path, c,
	    conf_load_file(path, &relay_schema, c, err, errlen), out);
}

int
relay_conf_load_mem(const char *name, const void *data, size_t len,
    struct relay_conf **out, char *err, size_t errlen)
{
	struct relay_conf *c = xcalloc(1, sizeof(*c));

	return relay_conf_finish(name, c,
	    conf_load_mem(name, data, len, &relay_schema, c, err, errlen),
	    out);
}

int
relay_conf_set(struct relay_conf *conf, const char *key, const char *value,
    char *err, size_t errlen)
{
	struct conf_pos none = { 0, 0 };
	int r;

	if ((r = conf_set(&relay_schema, conf, key, value, err, errlen)) != 0)
		return r;
	if (strcmp(key, "listen") == 0)
		conf->listen_pos = none;
	if (strcmp(key, "tunnel_listen") == 0)
		conf->tunnel_listen_pos = none;
	return 0;
}

int
relay_conf_check(struct relay_conf *conf, char *err, size_t errlen)
{
	char *host = NULL;
	int port;

	if (conf->listen == NULL ||
	    listen_parse(conf->listen, &host, &port) != 0) {
		conf_format_error(err, errlen, conf->path, conf->listen_pos,
		    "\"listen\" %s", listen_form);
		return MT_ECONFIG;
	}
	free(conf->listen_host);
	conf->listen_host = host;
	conf->listen_port = port;
	free(conf->tunnel_listen_host);
	conf->tunnel_listen_host = NULL;
	if (conf->tunnel_listen != NULL) {
		if (listen_parse(conf->tunnel_listen, &host, &port) != 0) {
			conf_format_error(err, errlen, conf->path,
			    conf->tunnel_listen_pos, "\"tunnel_listen\" %s",
			    listen_form);
			return MT_ECONFIG;
		}
		conf->tunnel_listen_host = host;
		conf->tunnel_listen_port = port;
		if (listen_overlap(conf)) {
			conf_format_error(err, errlen, conf->path,
			    conf->tunnel_listen_pos, "\"tunnel_listen\" must "
			    "be another port than \"listen\" (%s)",
			    conf->listen);
			return MT_ECONFIG;
		}
	}
	if (conf->tls.client_ca != NULL && conf->tunnel_listen == NULL) {
		conf_format_error(err, errlen, conf->path, conf->tls_pos,
		    "%s", client_ca_needs_port);
		return MT_ECONFIG;
	}
	if (!conf->insecure_plaintext &&
	    (conf->tls.cert == NULL || conf->tls.key == NULL)) {
		conf_format_error(err, errlen, conf->path, conf->tls_pos,
		    "missing required key \"%s\" under tls (or set "
		    "insecure_plaintext: true behind a TLS proxy)",
		    conf->tls.cert == NULL ? "cert" : "key");
		return MT_ECONFIG;
	}
	if (conf->insecure_plaintext && conf->tls.client_ca != NULL) {
		conf_format_error(err, errlen, conf->path, conf->tls_pos,
		    "\"client_ca\" needs TLS; it cannot be used with "
		    "insecure_plaintext");
		return MT_ECONFIG;
	}
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	return 0;
}

struct relay_conf *
relay_conf_ref(struct relay_conf *conf)
{
	conf->refcount++;
	return conf;
}

void
relay_conf_unref(struct relay_conf *conf)
{
	if (conf == NULL || --conf->refcount > 0)
		return;
	conf_free(&relay_schema, conf);
	free(conf->path);
	explicit_wipe(conf, sizeof(*conf));
	free(conf);
}

const struct relay_tunnel_conf *
relay_conf_tunnel(const struct relay_conf *conf, const char *name)
{
	struct relay_tunnel_conf key;

	if (conf->ntunnels == 0)
		return NULL;
	memset(&key, 0, sizeof(key));
	key.name = (char *)(uintptr_t)name;
	return bsearch(&key, conf->tunnels, conf->ntunnels,
	    sizeof(*conf->tunnels), tunnel_cmp);
}

int
relay_tunnel_cert_ok(const struct relay_tunnel_conf *t, const char *cn)
{
	if (t == NULL)
		return 0;
	if (t->client_cert_cn == NULL)
		return 1;
	return cn != NULL && strcmp(cn, t->client_cert_cn) == 0;
}

int
relay_tunnel_token_ok(const struct relay_tunnel_conf *t, const char *token)
{
	if (t == NULL || token == NULL)
		return 0;
	return token_verify(token, t->token_hash) == 1;
}

const struct relay_agent_conf *
relay_conf_agent_by_token(const struct relay_conf *conf, const char *token)
{
	const struct relay_agent_conf *found = NULL;
	uint8_t h[TOKEN_HASH_LEN];
	size_t i;
	int match;

	if (token == NULL || token[0] == '\0' ||
	    token_sha256(token, h) != 0)
		return NULL;
	/* Visit every agent so the time does not say which one matched. */
	for (i = 0; i < conf->nagents; i++) {
		match = ct_equal(h, conf->agents[i].token_hash, sizeof(h));
		if (match && found == NULL)
			found = &conf->agents[i];
	}
	explicit_wipe(h, sizeof(h));
	return found;
}

int
relay_agent_may_use(const struct relay_agent_conf *agent,
    const char *tunnel, const char *server)
{
	const char *pat, *slash;
	size_t i, tlen;

	if (agent == NULL || tunnel == NULL || agent->allow == NULL)
		return 0;
	tlen = strlen(tunnel);
	for (i = 0; agent->allow[i] != NULL; i++) {
		pat = agent->allow[i];
		if ((slash = strchr(pat, '/')) == NULL ||
		    (size_t)(slash - pat) != tlen ||
		    strncmp(pat, tunnel, tlen) != 0)
			continue;
		if (server == NULL || strcmp(slash + 1, "*") == 0 ||
		    strcmp(slash + 1, server) == 0)
			return 1;
	}
	return 0;
}

void
relay_conf_help(FILE *fp)
{
	conf_help(&relay_schema, fp);
}
