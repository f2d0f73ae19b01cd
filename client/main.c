/*
 * mcptun-client: the private-network side of mcptun.  Keeps one outbound
 * WSS link to mcptun-relay and serves the MCP servers its allowlist names
 * (stdio, HTTP, Postgres) to agents on the other side.  Nothing listens.
 *
 * This file: command line, configuration (load, check, reload on SIGHUP
 * and when the file changes, watch.c), the lws context and the event
 * loop, and orderly shutdown.
 */
#include <libwebsockets.h>

#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/audit.h"
#include "client/client.h"
#include "client/client_conf.h"
#include "client/up_http.h"
#include "client/up_postgres.h"
#include "client/up_stdio.h"
#include "client/watch.h"
#include "common/daemon.h"
#include "common/err.h"
#include "common/log.h"
#include "common/resolve.h"
#include "common/util.h"
#include "common/xmalloc.h"

#define CLIENT_DEFAULT_CONF	"/etc/mcptun/client.yaml"
#define SYSTEM_CA_BUNDLE	"/etc/ssl/certs/ca-certificates.crt"
/*
 * The descriptors the event loop watches, sized from the allowlist at
 * start.  lws sizes two tables by it (by ulimit -n without it), 16 bytes a
 * descriptor and every page touched: 16 MiB of resident memory under the
 * 1048576 many containers set, 128 KiB at 8192.  A session needs at most
 * three (a stdio server's pipes; an http session its connection and its
 * event stream; a postgres pool connection one), so three per allowed
 * session, plus CLIENT_FDS_SPARE for the link and the config watch, with
 * CLIENT_MIN_FDS (room for a reload to add servers) to CLIENT_MAX_FDS.
 */
#define CLIENT_MIN_FDS		1024
#define CLIENT_MAX_FDS		8192
#define CLIENT_FDS_SPARE	64

static struct client_conf *cur_conf;
static struct lws_context *ctx;
static struct lws_vhost *vhost;
static const char *conf_path = CLIENT_DEFAULT_CONF;
static int stopping;

/* Command-line overrides, applied to every load (reloads too). */
struct override {
	const char *key;
	const char *value;
};
static struct override overrides[16];
static size_t noverrides;

const struct client_conf *
client_conf_current(void)
{
	return cur_conf;
}

struct lws_vhost *
client_vhost(void)
{
	return vhost;
}

struct lws_context *
client_context(void)
{
	return ctx;
}

/* ---- host-name lookups (common/resolve.c) ---------------------------- */

#define RESOLVE_PROTOCOL_NAME	"mcptun-resolve"

/* The resolver's wake-up pipe is readable: run the lookups' callbacks. */
static int
resolve_callback(struct lws *wsi, enum lws_callback_reasons reason,
    void *user, void *in, size_t len)
{
	(void)wsi;
	(void)user;
	(void)in;
	(void)len;
	if (reason == LWS_CALLBACK_RAW_RX_FILE)
		(void)resolve_dispatch();
	return 0;
}

/*
 * Starts the resolver and has the loop watch its pipe, through a dup of
 * it: lws closes what it adopted, the resolver closes its own.
 */
static void
resolve_attach(struct lws_vhost *vh)
{
	lws_adopt_desc_t ad;
	int fd;

	if (resolve_init() != 0 ||
	    (fd = fcntl(resolve_fd(), F_DUPFD_CLOEXEC, 3)) == -1)
		fatal("cannot set up host-name lookups");
	memset(&ad, 0, sizeof(ad));
	ad.vh = vh;
	ad.type = LWS_ADOPT_RAW_FILE_DESC;
	ad.fd.filefd = (lws_filefd_type)(intptr_t)fd;
	ad.vh_prot_name = RESOLVE_PROTOCOL_NAME;
	if (lws_adopt_descriptor_vhost_via_info(&ad) == NULL)
		fatalx("cannot watch the host-name lookups' pipe");
}

static void
usage(FILE *f)
{
	fprintf(f,
"usage: mcptun-client [-nv] [-c FILE] [--relay-url URL] [--tunnel NAME]\n"
"                     [--token-file FILE] [--ca-file FILE] [--insecure]\n"
"\n"
"The private-network side of mcptun: dials one outbound WSS link to\n"
"mcptun-relay and serves the MCP servers named in its allowlist (stdio,\n"
"HTTP, Postgres) to agents on the relay.  Nothing listens.\n"
"\n"
"  -c, --config FILE    allowlist/config file, YAML or a Claude .mcp.json\n"
"                       (default " CLIENT_DEFAULT_CONF ")\n"
"  -n, --check          check the configuration and exit (0 = valid)\n"
"  -v, --verbose        debug logging\n"
"      --relay-url URL  wss://HOST:PORT/tunnel (overrides relay.url)\n"
"      --tunnel NAME    tunnel name (overrides relay.tunnel)\n"
"      --token-file F   file holding the tunnel token (relay.token_file);\n"
"                       the environment variable MCPTUN_TOKEN also works\n"
"      --ca-file FILE   CA bundle for the relay's certificate\n"
"      --insecure       allow ws:// (no TLS); never in production\n"
"  -h, --help           this text\n"
"  -V, --version        print the version\n"
"\n"
"The allowlist is reloaded when the file changes and on SIGHUP;\n"
"SIGTERM/SIGINT shut down.\n");
}

/* Reads a token file (one line); NULL and a log line on failure. */
static char *
read_token_file(const char *path)
{
	char buf[1024];
	FILE *f;
	size_t n;

	if ((f = fopen(path, "r")) == NULL) {
		log_warn("cannot read token file %s", path);
		return NULL;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	if (n == 0) {
		log_warnx("token file %s is empty", path);
		return NULL;
	}
	return xstrdup(buf);
}

/* Loads, overrides and checks a config; logs errors; NULL on failure. */
static struct client_conf *
load_conf(const char *path)
{
	struct client_conf *c = NULL;
	char err[4096];
	const char *env;
	size_t i;

	err[0] = '\0';
	if (client_conf_load(path, &c, err, sizeof(err)) != 0)
		goto fail;
	for (i = 0; i < noverrides; i++)
		if (client_conf_set(c, overrides[i].key, overrides[i].value,
		    err, sizeof(err)) != 0)
			goto fail;
	if (c->relay.token == NULL && (env = getenv("MCPTUN_TOKEN")) != NULL &&
	    *env != '\0' &&
	    client_conf_set(c, "relay.token", env, err, sizeof(err)) != 0)
		goto fail;
	if (client_conf_check(c, err, sizeof(err)) != 0)
		goto fail;
	/* libpq is loaded only now, and only for a postgres server. */
	(void)pgup_conf_loaded(c);
	return c;
 fail:
	daemon_log_lines(err);
	client_conf_unref(c);
	return NULL;
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

/*
 * The descriptors c's servers can use at once (see CLIENT_MIN_FDS), at
 * most CLIENT_MAX_FDS.
 */
static unsigned int
fds_needed(const struct client_conf *c)
{
	uint64_t n = CLIENT_FDS_SPARE;
	size_t i;

	for (i = 0; i < c->nservers; i++)
		n += 3 * (uint64_t)c->servers[i].max_sessions;
	if (n < CLIENT_MIN_FDS)
		n = CLIENT_MIN_FDS;
	return n > CLIENT_MAX_FDS ? CLIENT_MAX_FDS : (unsigned int)n;
}

/* The size of lws' tables, set at start (fd_limit). */
static unsigned int fds_sized;

/*
 * Reloads the allowlist (why: "SIGHUP" or "file changed").  The new file
 * is loaded and checked completely first; a broken one leaves everything
 * as it was.  Then the snapshot is swapped, sessions are told
 * (session_reconfigure_all) and the relay gets CATALOG.  One line says
 * what changed and how many sessions it touched.
 */
static void
reload(const char *why)
{
	const struct server_conf *o, *n;
	struct client_conf *c, *old;
	char *added = NULL, *removed = NULL, *tools = NULL, *settings = NULL;
	size_t i, affected;

	if ((c = load_conf(conf_path)) == NULL) {
		log_warnx("reload (%s) of %s failed; keeping the running "
		    "allowlist", why, conf_path);
		watch_rehash();		/* the watch need not say it again */
		return;
	}
	if (strcmp(c->relay.url, cur_conf->relay.url) != 0)
		log_warnx("reload: a new relay url takes a restart; still "
		    "using %s", cur_conf->relay.url);
	if (fds_needed(c) > fds_sized)
		log_warnx("reload: the servers' max_sessions now need up to "
		    "%u descriptors, the event loop was sized for %u at start; "
		    "sessions beyond that fail until a restart", fds_needed(c),
		    fds_sized);
	for (i = 0; i < c->nservers; i++) {
		n = &c->servers[i];
		if ((o = client_conf_server(cur_conf, n->name)) == NULL)
			name_list_add(&added, n->name);
		else {
			if (!session_filter_equal(o, n))
				name_list_add(&tools, n->name);
			if (!server_conf_equal_settings(o, n))
				name_list_add(&settings, n->name);
		}
	}
	for (i = 0; i < cur_conf->nservers; i++)
		if (client_conf_server(c, cur_conf->servers[i].name) == NULL)
			name_list_add(&removed, cur_conf->servers[i].name);
	/* Sessions hold their own references to the old snapshot. */
	old = cur_conf;
	cur_conf = c;
	audit_reopen();
	affected = session_reconfigure_all(c);
	client_conf_unref(old);
	watch_rehash();
	link_catalog_changed();
	if (added == NULL && removed == NULL && tools == NULL &&
	    settings == NULL)
		log_info("reload (%s): no server changed (%zu in the "
		    "allowlist); %zu session(s) affected", why, c->nservers,
		    affected);
	else
		log_info("reload (%s): added %s; removed %s; tools changed %s; "
		    "settings changed %s%s; %zu session(s) affected", why,
		    added != NULL ? added : "-", removed != NULL ? removed : "-",
		    tools != NULL ? tools : "-",
		    settings != NULL ? settings : "-", settings != NULL ?
		    " (open sessions keep their old upstream until they end, "
		    "new ones use the new settings)" : "", affected);
	free(added);
	free(removed);
	free(tools);
	free(settings);
}

static void
reload_on_change(void)
{
	reload("file changed");
}

static int
ctl_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	if (reason != LWS_CALLBACK_EVENT_WAIT_CANCELLED)
		return 0;
	if (daemon_take_hup())
		reload("SIGHUP");
	if (daemon_term_requested() && !stopping) {
		stopping = 1;
		log_info("shutting down");
		link_stop();
	}
	return 0;
}


/*
 * lws's fd_limit_per_thread for this process: fds_needed(c) when the
 * process may open more, else 0 (lws then sizes by the limit, which is
 * smaller; a value above it would only make lws's poll table larger).
 */
static unsigned int
fd_limit(const struct client_conf *c)
{
	long l = sysconf(_SC_OPEN_MAX);

	fds_sized = fds_needed(c);
	if (l > 0 && (unsigned long)l <= fds_sized) {
		fds_sized = (unsigned int)l;
		return 0;
	}
	return fds_sized;
}

static void
add_override(const char *key, const char *value)
{
	if (noverrides >= sizeof(overrides) / sizeof(overrides[0]))
		fatalx("too many command-line overrides");
	overrides[noverrides].key = key;
	overrides[noverrides].value = value;
	noverrides++;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config",	required_argument,	NULL, 'c' },
		{ "check",	no_argument,		NULL, 'n' },
		{ "verbose",	no_argument,		NULL, 'v' },
		{ "relay-url",	required_argument,	NULL, 'U' },
		{ "tunnel",	required_argument,	NULL, 'T' },
		{ "token-file",	required_argument,	NULL, 'K' },
		{ "ca-file",	required_argument,	NULL, 'A' },
		{ "insecure",	no_argument,		NULL, 'I' },
		{ "help",	no_argument,		NULL, 'h' },
		{ "version",	no_argument,		NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct lws_protocols protocols[7];
	struct lws_context_creation_info info;
	char *token = NULL;
	int check = 0, verbose = 0, ch;

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
		case 'U':
			add_override("relay.url", optarg);
			break;
		case 'T':
			add_override("relay.tunnel", optarg);
			break;
		case 'K':
			if ((token = read_token_file(optarg)) == NULL)
				return 1;
			add_override("relay.token", token);
			break;
		case 'A':
			add_override("relay.ca_file", optarg);
			break;
		case 'I':
			add_override("relay.insecure", "true");
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("mcptun-client %s (protocol %s)\n",
			    MCPTUN_VERSION, "mcptun.1");
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
	log_init("client", verbose ? LOG_LVL_DEBUG : LOG_LVL_INFO);
	if ((cur_conf = load_conf(conf_path)) == NULL) {
		free_secret(token);
		return 1;
	}
	if (check) {
		printf("%s: configuration OK (%zu server(s))\n", conf_path,
		    cur_conf->nservers);
		client_conf_unref(cur_conf);
		free_secret(token);
		return 0;
	}
	if (!verbose)
		log_set_level((enum log_level)cur_conf->log_level);

	daemon_signals(&ctx);

	daemon_lws_logging(verbose);

	memset(protocols, 0, sizeof(protocols));
	protocols[0] = link_protocol;
	protocols[1] = stdio_protocol;
	protocols[2].name = "mcptun-ctl";
	protocols[2].callback = ctl_callback;
	protocols[3] = watch_protocol;
	protocols[4] = pgup_protocol;
	protocols[5].name = RESOLVE_PROTOCOL_NAME;
	protocols[5].callback = resolve_callback;

	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.vhost_name = "mcptun-client";
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	info.client_ssl_ca_filepath = cur_conf->relay.ca_file != NULL ?
	    cur_conf->relay.ca_file : SYSTEM_CA_BUNDLE;
	info.client_ssl_cert_filepath = cur_conf->relay.client_cert;
	info.client_ssl_private_key_filepath = cur_conf->relay.client_key;
	info.fd_limit_per_thread = fd_limit(cur_conf);
	info.timeout_secs = 20;
	info.connect_timeout_secs = 20;
	info.ka_time = 60;
	info.ka_probes = 3;
	info.ka_interval = 10;

	if ((ctx = lws_create_context(&info)) == NULL)
		fatalx("cannot create the event loop (bad CA file %s?)",
		    info.client_ssl_ca_filepath);
	vhost = lws_get_vhost_by_name(ctx, "mcptun-client");
	if (vhost == NULL)
		fatalx("no vhost");
	log_info("mcptun-client %s: %zu server(s) allowlisted, relay %s",
	    MCPTUN_VERSION, cur_conf->nservers, cur_conf->relay.url);
	resolve_attach(vhost);
	link_start();
	(void)watch_start(vhost, conf_path, reload_on_change);
	daemon_trim_start(ctx);

	while (!stopping) {
		if (lws_service(ctx, 0) < 0)
			break;
	}
	watch_stop();
	daemon_drain(ctx, 1000);
	link_free();
	httpup_shutdown();
	pgup_shutdown();
	stdio_shutdown();
	lws_context_destroy(ctx);
	resolve_shutdown();
	audit_close();
	ctx = NULL;
	client_conf_unref(cur_conf);
	free_secret(token);
	log_info("stopped");
	return 0;
}
