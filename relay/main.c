/*
 * mcptun-relay: the cloud side of mcptun.  Accepts tunnel links from
 * mcptun-client on /tunnel and serves each private MCP server to agents as
 * an MCP Streamable HTTP endpoint, all on one TLS port, or with
 * tunnel_listen on two: agents on listen, tunnel links (optionally with
 * client certificates, tls.client_ca) on tunnel_listen.
 *
 * This file: command line, configuration (load, check, reload on SIGHUP),
 * the lws context and its vhosts, the event loop, and orderly shutdown.
 */
#include <libwebsockets.h>

#include <mbedtls/x509_crt.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/daemon.h"
#include "common/err.h"
#include "common/log.h"
#include "common/token.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "relay/relay.h"
#include "relay/relay_conf.h"

#define RELAY_DEFAULT_CONF	"/etc/mcptun/relay.yaml"

static struct relay_conf *cur_conf;
static struct lws_context *ctx;
static const char *conf_path = RELAY_DEFAULT_CONF;
static int stopping;

/*
 * Open connections against limits.max_connections.  lws sizes its poll
 * table by fd_limit_per_thread (8 bytes a slot, plus 8 more for the fd
 * map, all touched at start) and stops accepting while one slot is left;
 * the kernel's listen backlog then holds newcomers.  The table also holds
 * each listener and lws' event pipe.  conns counts the sockets lws
 * accepted (WSI_CREATE/WSI_DESTROY, which lws gives each vhost's protocol
 * 0), so that reaching the cap is said once, and again when there is room.
 */
static unsigned int conns, conns_cap;
static int conns_full;

const struct relay_conf *
relay_conf_current(void)
{
	return cur_conf;
}

struct lws_context *
relay_context(void)
{
	return ctx;
}

static void
usage(FILE *f)
{
	fprintf(f,
"usage: mcptun-relay [-nv] [-c FILE] [--listen HOST:PORT]\n"
"                    [--tunnel-listen HOST:PORT]\n"
"       mcptun-relay hash-token [TOKEN]\n"
"\n"
"The cloud side of mcptun: accepts tunnel links from mcptun-client on\n"
"wss://HOST:PORT/tunnel and serves each private MCP server to agents at\n"
"https://HOST:PORT/mcp/TUNNEL/SERVER (MCP Streamable HTTP).\n"
"\n"
"  -c, --config FILE   configuration file (default " RELAY_DEFAULT_CONF ")\n"
"  -n, --check         check the configuration and exit (0 = valid)\n"
"  -v, --verbose       debug logging\n"
"      --listen H:P    override the listen address\n"
"      --tunnel-listen H:P\n"
"                      override the tunnel_listen address (tunnel links)\n"
"  -h, --help          this text\n"
"  -V, --version       print the version\n"
"\n"
"  hash-token [TOKEN]  print the SHA-256 to put in relay.yaml for a token\n"
"                      (read from standard input when not given)\n"
"\n"
"Signals: SIGHUP reloads the configuration; SIGTERM/SIGINT shut down,\n"
"telling clients to reconnect (GOAWAY).\n");
}

static int
cmd_hash_token(int argc, char **argv)
{
	char line[1024], hex[TOKEN_HASH_HEXLEN + 1];
	const char *tok;
	size_t n;

	if (argc > 2) {
		fprintf(stderr, "usage: mcptun-relay hash-token [TOKEN]\n");
		return 2;
	}
	if (argc == 2)
		tok = argv[1];
	else {
		if (fgets(line, sizeof(line), stdin) == NULL) {
			fprintf(stderr, "mcptun-relay: no token on standard "
			    "input\n");
			return 1;
		}
		n = strlen(line);
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		tok = line;
	}
	if (*tok == '\0') {
		fprintf(stderr, "mcptun-relay: empty token\n");
		return 1;
	}
	if (token_sha256_hex(tok, hex) != 0)
		return 1;
	printf("%s\n", hex);
	explicit_wipe(line, sizeof(line));
	return 0;
}

/* Loads, overrides and checks a config; prints errors; NULL on failure. */
static struct relay_conf *
load_conf(const char *path, const char *listen, const char *tlisten)
{
	struct relay_conf *c = NULL;
	char err[4096];

	err[0] = '\0';
	if (relay_conf_load(path, &c, err, sizeof(err)) != 0)
		goto fail;
	if (listen != NULL &&
	    relay_conf_set(c, "listen", listen, err, sizeof(err)) != 0)
		goto fail;
	if (tlisten != NULL && relay_conf_set(c, "tunnel_listen", tlisten, err,
	    sizeof(err)) != 0)
		goto fail;
	if (relay_conf_check(c, err, sizeof(err)) != 0)
		goto fail;
	return c;
 fail:
	/* err holds one "file:line:col: message" line per problem. */
	daemon_log_lines(err);
	relay_conf_unref(c);
	return NULL;
}

/*
 * tls.client_ca must hold exactly one CA certificate: lws hands only the
 * first certificate of the file to mbedTLS, so the others of a bundle
 * would be ignored without a word.  0, or -1 with the reason logged.
 */
static int
client_ca_check(const struct relay_conf *c)
{
	mbedtls_x509_crt crt;
	const mbedtls_x509_crt *p;
	int n = 0, r;

	if (c->tls.client_ca == NULL)
		return 0;
	mbedtls_x509_crt_init(&crt);
	r = mbedtls_x509_crt_parse_file(&crt, c->tls.client_ca);
	for (p = &crt; r == 0 && p != NULL && p->raw.len > 0; p = p->next)
		n++;
	mbedtls_x509_crt_free(&crt);
	if (r != 0 || n == 0) {
		log_errorx("%s: tls.client_ca %s: cannot read a PEM "
		    "certificate from it", c->path, c->tls.client_ca);
		return -1;
	}
	if (n > 1) {
		log_errorx("%s: tls.client_ca %s holds %d certificates; give "
		    "exactly one CA (the TLS library would use only the "
		    "first)", c->path, c->tls.client_ca, n);
		return -1;
	}
	return 0;
}

/* 1 if a and b are both NULL or equal strings. */
static int
str_same(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* Appends name to a ", "-separated list in *list (NULL = empty). */
static void
name_list_add(char **list, const char *name)
{
	char *t;

	t = xasprintf("%s%s%s", *list != NULL ? *list : "",
	    *list != NULL ? ", " : "", name);
	free(*list);
	*list = t;
}

static const struct relay_agent_conf *
find_agent(const struct relay_conf *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->nagents; i++)
		if (strcmp(c->agents[i].name, name) == 0)
			return &c->agents[i];
	return NULL;
}

/* 1 if the agent's token or scopes differ. */
static int
agent_changed(const struct relay_agent_conf *a,
    const struct relay_agent_conf *b)
{
	size_t i;

	if (memcmp(a->token_hash, b->token_hash, sizeof(a->token_hash)) != 0)
		return 1;
	for (i = 0; a->allow != NULL && a->allow[i] != NULL; i++)
		if (b->allow == NULL || b->allow[i] == NULL ||
		    strcmp(a->allow[i], b->allow[i]) != 0)
			return 1;
	return b->allow != NULL && b->allow[i] != NULL;
}

/*
 * Reloads the configuration on SIGHUP: loaded and checked completely
 * first (a broken file changes nothing), then swapped in.  Agents'
 * tokens and scopes apply from their next request (every request is
 * authenticated against the current snapshot); sessions of agents that
 * were removed or narrowed end.  One line says what changed.
 */
static void
reload(void)
{
	const struct relay_agent_conf *oa;
	struct relay_conf *c, *old;
	char *t_add = NULL, *t_del = NULL, *a_add = NULL, *a_del = NULL;
	char *a_chg = NULL;
	size_t i, ended;

	if ((c = load_conf(conf_path, NULL, NULL)) == NULL) {
		log_warnx("reload (SIGHUP) of %s failed; keeping the running "
		    "configuration", conf_path);
		return;
	}
	if (strcmp(c->listen_host, cur_conf->listen_host) != 0 ||
	    c->listen_port != cur_conf->listen_port)
		log_warnx("reload: a new listen address takes a restart; "
		    "still listening on %s", cur_conf->listen);
	if (!str_same(c->tunnel_listen, cur_conf->tunnel_listen) ||
	    !str_same(c->tls.client_ca, cur_conf->tls.client_ca))
		log_warnx("reload: a new tunnel_listen or tls.client_ca takes "
		    "a restart; tunnel links still go to %s", cur_conf->
		    tunnel_listen != NULL ? cur_conf->tunnel_listen :
		    cur_conf->listen);
	for (i = 0; i < c->ntunnels; i++)
		if (relay_conf_tunnel(cur_conf, c->tunnels[i].name) == NULL)
			name_list_add(&t_add, c->tunnels[i].name);
	for (i = 0; i < cur_conf->ntunnels; i++)
		if (relay_conf_tunnel(c, cur_conf->tunnels[i].name) == NULL)
			name_list_add(&t_del, cur_conf->tunnels[i].name);
	for (i = 0; i < c->nagents; i++) {
		if ((oa = find_agent(cur_conf, c->agents[i].name)) == NULL)
			name_list_add(&a_add, c->agents[i].name);
		else if (agent_changed(oa, &c->agents[i]))
			name_list_add(&a_chg, c->agents[i].name);
	}
	for (i = 0; i < cur_conf->nagents; i++)
		if (find_agent(c, cur_conf->agents[i].name) == NULL)
			name_list_add(&a_del, cur_conf->agents[i].name);
	if (c->limits.max_connections != cur_conf->limits.max_connections)
		log_warnx("reload: a new limits.max_connections takes a "
		    "restart; still %lld", (long long)cur_conf->limits.
		    max_connections);
	/* The new listen/TLS settings need a restart; keep the running ones. */
	old = cur_conf;
	cur_conf = c;
	log_set_level((enum log_level)c->log_level);
	tunnel_configure(c);
	ended = http_reconfigure(c);
	relay_conf_unref(old);
	log_info("reload (SIGHUP): tunnels added %s, removed %s; agents added "
	    "%s, removed %s, changed %s; %zu session(s) of removed or "
	    "narrowed agents ended", t_add ? t_add : "-", t_del ? t_del : "-",
	    a_add ? a_add : "-", a_del ? a_del : "-", a_chg ? a_chg : "-",
	    ended);
	free(t_add);
	free(t_del);
	free(a_add);
	free(a_del);
	free(a_chg);
}


/* Protocol 2 only exists to hear lws_cancel_service() from the handler. */
static int
ctl_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	if (reason != LWS_CALLBACK_EVENT_WAIT_CANCELLED)
		return 0;
	if (daemon_take_hup())
		reload();
	if (daemon_term_requested() && !stopping) {
		stopping = 1;
		log_info("shutting down: telling clients to reconnect");
		tunnel_shutdown();
		http_shutdown();
	}
	return 0;
}

static void
conn_count(enum lws_callback_reasons reason)
{
	if (reason == LWS_CALLBACK_WSI_CREATE)
		conns++;
	else if (conns > 0)
		conns--;
	if (conns_cap == 0)
		return;
	if (!conns_full && conns >= conns_cap) {
		conns_full = 1;
		log_warnx("limits.max_connections reached: %u connections "
		    "open; new ones wait in the listen backlog until one "
		    "closes (raise limits.max_connections and ulimit -n for "
		    "more)", conns);
	} else if (conns_full && conns < conns_cap - conns_cap / 10) {
		conns_full = 0;
		log_info("accepting connections again (%u open)", conns);
	}
}

static int
http_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	if (reason == LWS_CALLBACK_WSI_CREATE ||
	    reason == LWS_CALLBACK_WSI_DESTROY)
		conn_count(reason);
	return http_callback(wsi, (int)reason, user, in, len);
}

static int
tunnel_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	return tunnel_callback(wsi, (int)reason, user, in, len);
}

/*
 * Protocol 0 of the tunnel listener: it serves no HTTP and no WebSocket
 * but mcptun.1 (whose upgrade lws hands to tunnel_cb).
 */
static int
tunnel_port_http_cb(struct lws *wsi, enum lws_callback_reasons reason,
    void *user, void *in, size_t len)
{
	char *peer;

	switch (reason) {
	/*
	 * Each connection carries its peer's address (opaque user data)
	 * until its request shows up; one that ends first has failed the
	 * TLS handshake or never spoke (tunnel_note_early_close).
	 */
	case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
		peer = xcalloc(1, 64);
		lws_get_peer_simple(wsi, peer, 64);
		lws_set_opaque_user_data(wsi, peer);
		break;
	case LWS_CALLBACK_WSI_CREATE:
		conn_count(reason);
		break;
	case LWS_CALLBACK_WSI_DESTROY:
		conn_count(reason);
		if ((peer = lws_get_opaque_user_data(wsi)) != NULL) {
			lws_set_opaque_user_data(wsi, NULL);
			tunnel_note_early_close(peer);
			free(peer);
		}
		return 0;
	case LWS_CALLBACK_FILTER_HTTP_CONNECTION:
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		free(lws_get_opaque_user_data(wsi));
		lws_set_opaque_user_data(wsi, NULL);
		break;
	case LWS_CALLBACK_HTTP:
		if (lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND,
		    "this port serves only tunnel links (wss /tunnel)"))
			return -1;
		return lws_http_transaction_completed(wsi);
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		/* A WebSocket without the mcptun.1 subprotocol. */
		return -1;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/*
 * lws's fd_limit_per_thread: limits.max_connections when the process may
 * open more, else 0 (lws then sizes its tables by the process's fd limit,
 * which is smaller).  Sets conns_cap, the accepted sockets at which lws
 * stops accepting: the table less the listeners, the event pipe and the
 * one slot lws keeps free.
 */
static unsigned int
fd_limit(const struct relay_conf *c)
{
	long open_max = sysconf(_SC_OPEN_MAX);
	unsigned int lim, reserved = c->tunnel_listen != NULL ? 4 : 3;

	lim = (unsigned int)c->limits.max_connections;
	if (open_max > 0 && (unsigned long)open_max <= lim) {
		conns_cap = (unsigned int)open_max > reserved ?
		    (unsigned int)open_max - reserved : 0;
		return 0;
	}
	conns_cap = lim - reserved;
	return lim;
}

/*
 * A listener's options: lws serves TLS on a vhost only with
 * DO_SSL_GLOBAL_INIT in its own options (it ignores the certificate
 * otherwise); no IPv6 socket for an IPv4 address.
 */
static uint64_t
listen_options(const char *host)
{
	uint64_t o = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;

	if (strchr(host, ':') == NULL)
		o |= LWS_SERVER_OPTION_DISABLE_IPV6;
	return o;
}

/*
 * Creates the vhosts: "mcptun-relay" on listen for agents (and for tunnel
 * links when there is no tunnel_listen), and with tunnel_listen,
 * "mcptun-tunnel" for tunnel links only, which with tls.client_ca
 * requires a client certificate issued by it.  0 or -1 (logged).
 */
static int
create_vhosts(struct lws_context_creation_info *info)
{
	static struct lws_protocols agent_p[4], tunnel_p[3];
	const struct relay_conf *c = cur_conf;
	struct lws_vhost *vh;

	agent_p[0].name = "http";
	agent_p[0].callback = http_cb;
	agent_p[0].per_session_data_size = http_user_size();
	/*
	 * mcptun.1 stays on the agent port even when links have their own:
	 * tunnel_cb then refuses them there with a line saying where to go.
	 */
	agent_p[1].name = "mcptun.1";
	agent_p[1].callback = tunnel_cb;
	agent_p[1].per_session_data_size = tunnel_user_size();
	agent_p[1].rx_buffer_size = 128 * 1024;
	agent_p[2].name = "mcptun-ctl";
	agent_p[2].callback = ctl_callback;

	info->port = c->listen_port;
	info->iface = c->listen_host;
	info->protocols = agent_p;
	info->vhost_name = "mcptun-relay";
	info->options = listen_options(c->listen_host);
	if ((vh = lws_create_vhost(ctx, info)) == NULL) {
		log_errorx("cannot listen on %s (address in use, bad "
		    "certificate or key?)", c->listen);
		return -1;
	}
	if (c->tunnel_listen == NULL) {
		tunnel_set_listener(NULL, 0);
		return 0;
	}

	tunnel_p[0].name = "http";
	tunnel_p[0].callback = tunnel_port_http_cb;
	tunnel_p[1] = agent_p[1];
	info->port = c->tunnel_listen_port;
	info->iface = c->tunnel_listen_host;
	info->protocols = tunnel_p;
	info->vhost_name = "mcptun-tunnel";
	info->options = listen_options(c->tunnel_listen_host);
	if (c->tls.client_ca != NULL) {
		/*
		 * lws' mbedTLS wrapper maps OpenSSL verify modes on its own,
		 * in two places.  REQUIRE_VALID_OPENSSL_CLIENT_CERT alone
		 * sets SSL_VERIFY_FAIL_IF_NO_PEER_CERT, which a handshake
		 * whose SNI selected the vhost gets as
		 * MBEDTLS_SSL_VERIFY_REQUIRED but one without SNI (a client
		 * that dials an IP address) as VERIFY_OPTIONAL: no
		 * certificate, or one from another CA, gets through.  With
		 * PEER_CERT_NOT_REQUIRED added the mode is SSL_VERIFY_PEER,
		 * which both places map to VERIFY_REQUIRED.
		 * tests/integration/mtls.sh checks both with and without SNI,
		 * and tunnel.c checks the verified certificate again.
		 */
		info->options |= LWS_SERVER_OPTION_REQUIRE_VALID_OPENSSL_CLIENT_CERT |
		    LWS_SERVER_OPTION_PEER_CERT_NOT_REQUIRED;
		info->ssl_ca_filepath = c->tls.client_ca;
	}
	if ((vh = lws_create_vhost(ctx, info)) == NULL) {
		log_errorx("cannot listen on %s for tunnel links (address in "
		    "use, bad certificate, key or tls.client_ca?)",
		    c->tunnel_listen);
		return -1;
	}
	tunnel_set_listener(vh, c->tls.client_ca != NULL);
	return 0;
}


int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config",	required_argument,	NULL, 'c' },
		{ "check",	no_argument,		NULL, 'n' },
		{ "verbose",	no_argument,		NULL, 'v' },
		{ "listen",	required_argument,	NULL, 'L' },
		{ "tunnel-listen", required_argument,	NULL, 'T' },
		{ "help",	no_argument,		NULL, 'h' },
		{ "version",	no_argument,		NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct lws_context_creation_info info;
	const char *listen = NULL, *tlisten = NULL;
	int check = 0, verbose = 0, ch;

	if (argc > 1 && strcmp(argv[1], "hash-token") == 0)
		return cmd_hash_token(argc - 1, argv + 1);

	while ((ch = getopt_long(argc, argv, "c:nvhV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			conf_path = optarg;
			break;
		case 'n':
			check = 1;
			break;
		case 'v':
			verbose = 1;
			break;
		case 'L':
			listen = optarg;
			break;
		case 'T':
			tlisten = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("mcptun-relay %s (protocol %s)\n", MCPTUN_VERSION,
			    "mcptun.1");
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	log_init("relay", verbose ? LOG_LVL_DEBUG : LOG_LVL_INFO);
	if ((cur_conf = load_conf(conf_path, listen, tlisten)) == NULL)
		return 1;
	if (client_ca_check(cur_conf) != 0) {
		relay_conf_unref(cur_conf);
		return 1;
	}
	if (check) {
		printf("%s: configuration OK (%zu tunnel(s), %zu agent(s))\n",
		    conf_path, cur_conf->ntunnels, cur_conf->nagents);
		relay_conf_unref(cur_conf);
		return 0;
	}
	if (!verbose)
		log_set_level((enum log_level)cur_conf->log_level);

	daemon_signals(&ctx);

	daemon_lws_logging(verbose);

	memset(&info, 0, sizeof(info));
	/* The context only; create_vhosts() makes the listeners. */
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
	    LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
	if (!cur_conf->insecure_plaintext) {
		info.ssl_cert_filepath = cur_conf->tls.cert;
		info.ssl_private_key_filepath = cur_conf->tls.key;
	} else
		log_warnx("serving WITHOUT TLS (insecure_plaintext): only "
		    "behind a TLS-terminating proxy or for tests");
	info.max_http_header_data = 8192;
	/* lws' default of 4 caps how many agents can be mid-headers at once. */
	info.max_http_header_pool = 64;
	/*
	 * The service buffer lws reads into: one TLS record (16 KiB) is
	 * the most an mbedTLS read gives, so a bigger one only cost
	 * resident memory (lws zeroes it at start); 64 KiB measured no
	 * faster for 4 MiB answers.
	 */
	info.pt_serv_buf_size = 16 * 1024;
	info.fd_limit_per_thread = fd_limit(cur_conf);
	info.timeout_secs = 20;
	/*
	 * How long an idle agent connection stays open between requests.
	 * lws' default, 5 s, is barely above Node's fetch (4 s): an agent
	 * whose event loop runs late sends its next POST on a connection the
	 * relay is closing and gets "other side closed" (seen under load in
	 * tests/integration/streams.sh).  Idle clients close first when the
	 * server waits longer than they do (nginx 75 s, cloud balancers 60 s).
	 */
	info.keepalive_timeout = 65;
	info.ka_time = 60;
	info.ka_probes = 3;
	info.ka_interval = 10;

	if ((ctx = lws_create_context(&info)) == NULL) {
		log_errorx("cannot create the event loop");
		relay_conf_unref(cur_conf);
		return 1;
	}
	if (create_vhosts(&info) != 0) {
		lws_context_destroy(ctx);
		relay_conf_unref(cur_conf);
		return 1;
	}
	tunnel_configure(cur_conf);
	log_info("mcptun-relay %s listening on %s://%s (%zu tunnel(s), %zu "
	    "agent(s))", MCPTUN_VERSION, cur_conf->insecure_plaintext ?
	    "http" : "https", cur_conf->listen, cur_conf->ntunnels,
	    cur_conf->nagents);
	if (cur_conf->tunnel_listen != NULL)
		log_info("tunnel links on %s://%s/tunnel%s", cur_conf->
		    insecure_plaintext ? "ws" : "wss", cur_conf->tunnel_listen,
		    cur_conf->tls.client_ca != NULL ? " with client "
		    "certificates (mTLS)" : "");
	daemon_trim_start(ctx);

	while (!stopping) {
		if (lws_service(ctx, 0) < 0)
			break;
	}
	daemon_drain(ctx, 1000);
	tunnel_free_all();
	lws_context_destroy(ctx);
	ctx = NULL;
	relay_conf_unref(cur_conf);
	log_info("stopped");
	return 0;
}
