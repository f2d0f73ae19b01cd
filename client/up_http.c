/*
 * The HTTP upstream: an MCP Streamable HTTP client, one client session
 * per agent session, to an internal server named in the allowlist
 * (type: http, url, headers, ca_file, timeout).
 *
 * Every message from the agent becomes one POST on a connection of its
 * own, so several requests may be in flight and a long SSE answer holds
 * back nothing.  The answer is 202 (nothing to deliver), application/json
 * (one message or a batch) or text/event-stream (messages delivered as
 * they arrive).  The upstream's Mcp-Session-Id from the initialize answer
 * and the negotiated MCP-Protocol-Version go on every later request; once
 * initialized, a GET stream carries server-initiated messages (405: the
 * server offers none) and is re-opened with backoff when it drops; close
 * sends a best-effort DELETE and does not wait for it.  Order matters in
 * two places, so messages wait there: nothing is sent while initialize is
 * unanswered (later requests need its session id), and nothing overtakes
 * a notification or response the upstream has not accepted yet.
 *
 * A failed request (unreachable, TLS refused, no answer within the
 * timeout, 4xx/5xx, garbage) becomes a JSON-RPC error for that request id
 * naming the server, and the session goes on.  An upstream that no longer
 * knows our session (404, as the spec says; or 400 naming the session, as
 * the SDK's example servers answer after a restart) ends the agent's
 * session through on_exit, so the agent re-initializes knowingly; this
 * file never re-initializes behind its back.
 *
 * Lifetimes.  A request (struct httpup_req) hangs off its upstream and is
 * bound to its lws connection by the wsi's opaque user data.  Owner
 * callbacks run only from lws callbacks and timers, never inside
 * open/send/close.  The owner may close the upstream from any callback,
 * so the upstream is reference-counted across them (freed by the last
 * unref), and a request in use is only marked doomed and freed when the
 * code using it unwinds.  A request is detached from its wsi before it is
 * freed and the wsi killed asynchronously, so lws never hands back a
 * freed pointer.  Header values (and the session id) are secrets: they
 * are never logged.
 */
#include <libwebsockets.h>

#include <sys/stat.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "client/client.h"
#include "client/client_conf.h"
#include "client/sse.h"
#include "client/up_http.h"
#include "client/up_stdio.h"
#include "client/upstream.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/jsonrpc.h"
#include "common/log.h"
#include "common/resolve.h"
#include "common/xmalloc.h"

#define HTTPUP_SYSTEM_CA	"/etc/ssl/certs/ca-certificates.crt"
#define HTTPUP_TIMEOUT_MS	120000		/* when the config has none */
#define HTTPUP_MAX_MESSAGE	(16u * 1024 * 1024)
#define HTTPUP_HIGH_WATER	(4u * 1024 * 1024)	/* unsent: EAGAIN */
#define HTTPUP_MAX_REQUESTS	32	/* request connections at once */
#define HTTPUP_ERRBODY_MAX	2048	/* kept of an error answer */
#define HTTPUP_DETAIL_MAX	200	/* of it, quoted to the agent */
#define HTTPUP_CHUNK		16384	/* body bytes per write or read */
#define HTTPUP_DELETE_MS	5000
#define HTTPUP_GET_RETRY_MIN_MS	500
#define HTTPUP_GET_RETRY_MAX_MS	30000
#define HTTPUP_GET_SHORT_MS	2000	/* a GET stream ending sooner failed */
#define HTTPUP_SID_MAX		256
#define HTTPUP_VERSION_MAX	32
#define HTTPUP_WHY_MAX		320

enum httpup_method { HU_POST, HU_GET, HU_DELETE };
static const char *const httpup_methods[] = { "POST", "GET", "DELETE" };

enum httpup_body {
	HB_NONE = 0,	/* nothing expected, or discarded */
	HB_JSON,	/* application/json: collected in in */
	HB_SSE,		/* text/event-stream: parsed by sse */
	HB_ERROR	/* a non-2xx answer: its start kept in in */
};

/* One configured header: "Name:" and its (secret) value. */
struct httpup_hdr {
	char	*name;
	char	*value;
};

/*
 * Where and how to connect: shared by an upstream and its requests, so a
 * DELETE can outlive the upstream (and its server_conf).
 */
struct httpup_dest {
	int			 refs;
	struct lws_vhost	*vh;
	char			*name;		/* server name, for messages */
	char			*address;	/* host to connect to */
	int			 numeric;	/* address needs no lookup */
	int			 port;
	int			 tls;
	char			*path;		/* "/mcp?x=1" */
	char			*host;		/* Host header: "host[:port]" */
	char			*shown;		/* URL without query */
	struct httpup_hdr	*hdr;
	size_t			 nhdr;
	uint64_t		 timeout_ms;
	size_t			 max_message;
};

struct upstream;

struct httpup_req {
	lws_dll2_t		 list;		/* in u->reqs */
	struct upstream		*u;		/* NULL: a DELETE after close */
	struct httpup_dest	*dest;
	enum httpup_method	 method;
	struct lws		*wsi;
	int			 started;	/* connection asked for */
	struct resolve_req	*lookup;	/* host name being resolved */
	struct resolve_result	*addrs;		/* its answer */
	size_t			 addr_next;	/* of addrs, the one tried */
	int			 connecting;	/* inside connect_via_info */
	int			 gone;		/* the wsi is destroyed */
	int			 completed;	/* the whole answer arrived */
	int			 headers;	/* answer headers seen */
	int			 status;	/* HTTP status, 0 before */
	int			 had_sid;	/* carried Mcp-Session-Id */
	int			 answered;	/* response to id delivered */
	int			 timed_out;
	int			 bad;		/* garbage; why says what */
	int			 pending;	/* SSE input not parsed yet */
	int			 busy;		/* in use across owner calls */
	int			 doomed;	/* free when busy drops to 0 */

	uint8_t			*body;		/* POST body, until written */
	size_t			 bodylen;
	size_t			 sent;
	size_t			 unsent;	/* counted in u->unsent */
	json_t			*id;		/* request id, NULL otherwise */
	int			 initialize;	/* an initialize request */

	enum httpup_body	 kind;
	char			 ctype[64];	/* media type of the answer */
	struct buf		 in;		/* JSON body or error start */
	struct sse		*sse;
	uint64_t		 est_ms;	/* when the headers came */

	char			*del_sid;	/* DELETE: copies from u */
	char			*del_version;

	char			 fail[128];	/* why the connection failed */
	char			 why[HTTPUP_WHY_MAX];	/* when bad */
	lws_sorted_usec_list_t	 sul_deadline;
	lws_sorted_usec_list_t	 sul_fix;
	lws_sorted_usec_list_t	 sul_retry;	/* the next address */
};

struct upstream {
	struct httpup_dest	*dest;
	const struct upstream_ops *ops;
	void			*arg;
	char			*tag;		/* session tag, for logs */
	int			 refs;
	int			 closed;	/* kind->close was called */
	int			 ended;		/* on_exit was called */
	int			 expired;	/* the upstream forgot us */
	int			 paused;
	int			 eagain;	/* on_drain is owed */
	size_t			 unsent;	/* body bytes not written */
	char			*sid;		/* Mcp-Session-Id */
	char			*version;	/* MCP-Protocol-Version */
	lws_dll2_owner_t	 reqs;		/* in send order */
	struct httpup_req	*get;		/* the GET stream */
	int			 get_off;	/* none offered */
	int			 get_failures;
	uint64_t		 get_delay_ms;
	lws_sorted_usec_list_t	 sul_kick;
	lws_sorted_usec_list_t	 sul_get;
};

/* Client vhosts by CA file: TLS contexts are per vhost in lws. */
struct httpup_vhost {
	char		*ca;		/* NULL: plain http only */
	dev_t		 dev;
	ino_t		 ino;
	time_t		 mtime;
	off_t		 size;
	struct lws_vhost *vh;
};

static struct httpup_vhost *httpup_vhosts;
static size_t httpup_nvhosts;
/* DELETEs sent after their upstream closed, freed at shutdown if left. */
static lws_dll2_owner_t httpup_deletes;

static const struct lws_protocols httpup_protocols[] = {
	HTTPUP_PROTOCOL,
	LWS_PROTOCOL_LIST_TERM
};
const struct lws_protocols httpup_protocol = HTTPUP_PROTOCOL;

static void httpup_kick_soon(struct upstream *);
static void httpup_get_start(struct upstream *);
static void httpup_end(struct upstream *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
static void httpup_error(struct httpup_req *, int, const char *, ...)
    __attribute__((format(printf, 3, 4)));
static void httpup_bad(struct httpup_req *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static uint64_t
httpup_now_ms(void)
{
	return (uint64_t)(lws_now_usecs() / LWS_US_PER_MS);
}

/* Copies src into dst as printable ASCII ('?' for anything else). */
static void
httpup_printable(char *dst, size_t dstlen, const char *src, size_t len)
{
	size_t i;

	if (dstlen == 0)
		return;
	if (len >= dstlen)
		len = dstlen - 1;
	for (i = 0; i < len; i++) {
		if (src[i] == '\n' || src[i] == '\r') {
			len = i;
			break;
		}
		dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] : '?';
	}
	dst[len] = '\0';
}

/* ---- destinations and vhosts ------------------------------------------- */

/*
 * The client vhost for ca (NULL: no CA, for http:// only), created on
 * first use and cached; a CA file replaced on disk gets a new vhost.
 */
static struct lws_vhost *
httpup_vhost(const char *ca)
{
	struct lws_context_creation_info info;
	struct httpup_vhost *hv;
	struct stat st;
	char name[32];
	size_t i;

	memset(&st, 0, sizeof(st));
	if (ca != NULL && stat(ca, &st) == -1)
		return NULL;
	for (i = 0; i < httpup_nvhosts; i++) {
		hv = &httpup_vhosts[i];
		if ((ca == NULL) != (hv->ca == NULL))
			continue;
		if (ca == NULL)
			return hv->vh;
		if (strcmp(hv->ca, ca) == 0 && hv->dev == st.st_dev &&
		    hv->ino == st.st_ino && hv->mtime == st.st_mtime &&
		    hv->size == st.st_size)
			return hv->vh;
	}
	if (client_context() == NULL)
		return NULL;

	snprintf(name, sizeof(name), "mcptun-http-%zu", httpup_nvhosts);
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = httpup_protocols;
	info.vhost_name = name;
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	info.client_ssl_ca_filepath = ca;
	info.connect_timeout_secs = 20;
	info.ka_time = 60;
	info.ka_probes = 3;
	info.ka_interval = 10;

	httpup_vhosts = xrealloc(httpup_vhosts,
	    (httpup_nvhosts + 1) * sizeof(*httpup_vhosts));
	hv = &httpup_vhosts[httpup_nvhosts];
	memset(hv, 0, sizeof(*hv));
	if ((hv->vh = lws_create_vhost(client_context(), &info)) == NULL)
		return NULL;
	hv->ca = ca != NULL ? xstrdup(ca) : NULL;
	hv->dev = st.st_dev;
	hv->ino = st.st_ino;
	hv->mtime = st.st_mtime;
	hv->size = st.st_size;
	httpup_nvhosts++;
	return hv->vh;
}

static void
httpup_dest_unref(struct httpup_dest *d)
{
	size_t i;

	if (d == NULL || --d->refs > 0)
		return;
	for (i = 0; i < d->nhdr; i++) {
		free(d->hdr[i].name);
		free_secret(d->hdr[i].value);
	}
	free(d->hdr);
	free(d->name);
	free(d->address);
	free(d->path);
	free(d->host);
	free(d->shown);
	free(d);
}

/* Whether c may be part of an HTTP header name (RFC 9110 token). */
static int
httpup_tchar(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || (c != '\0' &&
	    strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Headers this file sets itself; a configured one would clash. */
static int
httpup_reserved(const char *name)
{
	static const char *const names[] = {
		"host", "content-type", "content-length", "accept",
		"connection", "transfer-encoding", "mcp-session-id",
		"mcp-protocol-version", "last-event-id", NULL
	};
	size_t i;

	for (i = 0; names[i] != NULL; i++)
		if (strcasecmp(name, names[i]) == 0)
			return 1;
	return 0;
}

/*
 * Splits url into d's address, port, tls, path, Host header and shown
 * form.  Returns 0 or MT_ECONFIG with the reason in why.
 */
static int
httpup_parse_url(struct httpup_dest *d, const char *url, char *why,
    size_t whylen)
{
	const char *p, *auth, *aend, *hend, *q;
	char *end;
	size_t hlen;
	long port;

	if (strncasecmp(url, "http://", 7) == 0) {
		d->tls = 0;
		auth = url + 7;
	} else if (strncasecmp(url, "https://", 8) == 0) {
		d->tls = 1;
		auth = url + 8;
	} else {
		snprintf(why, whylen, "the url must start with http:// "
		    "or https://");
		return MT_ECONFIG;
	}
	aend = auth + strcspn(auth, "/?#");
	if (memchr(auth, '@', (size_t)(aend - auth)) != NULL) {
		snprintf(why, whylen, "credentials in the url are not "
		    "supported (use headers)");
		return MT_ECONFIG;
	}
	if (*auth == '[') {
		if ((hend = memchr(auth, ']', (size_t)(aend - auth))) == NULL) {
			snprintf(why, whylen, "unterminated [ in the url");
			return MT_ECONFIG;
		}
		d->address = xstrndup(auth + 1, (size_t)(hend - auth - 1));
		p = hend + 1;
	} else {
		hend = memchr(auth, ':', (size_t)(aend - auth));
		if (hend == NULL)
			hend = aend;
		d->address = xstrndup(auth, (size_t)(hend - auth));
		p = hend;
	}
	hlen = strlen(d->address);
	if (hlen == 0 || strcspn(d->address, " \t\r\n\"<>\\^`{|}") != hlen) {
		snprintf(why, whylen, "the url has no valid host");
		return MT_ECONFIG;
	}
	port = d->tls ? 443 : 80;
	if (p < aend) {
		if (*p != ':' || p + 1 == aend) {
			snprintf(why, whylen, "the url has a bad port");
			return MT_ECONFIG;
		}
		port = strtol(p + 1, &end, 10);
		if (end != aend || port < 1 || port > 65535) {
			snprintf(why, whylen, "the url has a bad port");
			return MT_ECONFIG;
		}
	}
	d->port = (int)port;
	d->numeric = resolve_is_numeric(d->address);
	d->host = xstrndup(auth, (size_t)(aend - auth));

	/* The path keeps its query, loses any fragment. */
	q = aend + strcspn(aend, "#");
	if (*aend == '/')
		d->path = xstrndup(aend, (size_t)(q - aend));
	else
		d->path = xasprintf("/%.*s", (int)(q - aend), aend);
	if (strcspn(d->path, " \t\r\n") != strlen(d->path)) {
		snprintf(why, whylen, "the url path has white space");
		return MT_ECONFIG;
	}
	d->shown = xasprintf("%s://%s%.*s", d->tls ? "https" : "http",
	    d->host, (int)strcspn(d->path, "?"), d->path);
	return 0;
}

/*
 * A destination for sc, or MT_ECONFIG / MT_EIO after
 * upstream_set_error().
 */
static int
httpup_dest_new(const struct server_conf *sc, struct httpup_dest **out)
{
	const struct client_conf *conf = client_conf_current();
	struct httpup_dest *d;
	const struct conf_pair *h;
	char why[160];
	const char *ca;
	size_t i, j;
	int r;

	d = xcalloc(1, sizeof(*d));
	d->refs = 1;
	d->name = xstrdup(sc->name);
	if (sc->url == NULL) {
		upstream_set_error("upstream %s: no url configured", sc->name);
		r = MT_ECONFIG;
		goto out;
	}
	if ((r = httpup_parse_url(d, sc->url, why, sizeof(why))) != 0) {
		upstream_set_error("upstream %s: %s", sc->name, why);
		goto out;
	}

	d->hdr = xcalloc(sc->headers.n + 1, sizeof(*d->hdr));
	for (i = 0; i < sc->headers.n; i++) {
		h = &sc->headers.v[i];
		for (j = 0; h->key[j] != '\0'; j++)
			if (!httpup_tchar((unsigned char)h->key[j]))
				break;
		if (j == 0 || h->key[j] != '\0') {
			upstream_set_error("upstream %s: \"%s\" is not a valid "
			    "HTTP header name", sc->name, h->key);
			r = MT_ECONFIG;
			goto out;
		}
		for (j = 0; h->value != NULL && h->value[j] != '\0'; j++)
			if (((unsigned char)h->value[j] < 0x20 &&
			    h->value[j] != '\t') || h->value[j] == 0x7f)
				break;
		if (h->value == NULL || h->value[j] != '\0') {
			upstream_set_error("upstream %s: the value of header "
			    "\"%s\" has a control character", sc->name, h->key);
			r = MT_ECONFIG;
			goto out;
		}
		if (httpup_reserved(h->key)) {
			log_warnx("upstream %s: header \"%s\" is set by "
			    "mcptun; the configured one is ignored", sc->name,
			    h->key);
			continue;
		}
		d->hdr[d->nhdr].name = xasprintf("%s:", h->key);
		d->hdr[d->nhdr].value = xstrdup(h->value);
		d->nhdr++;
	}

	d->timeout_ms = sc->timeout_ms;
	if (d->timeout_ms == 0 && conf != NULL)
		d->timeout_ms = conf->limits.request_timeout_ms;
	if (d->timeout_ms == 0)
		d->timeout_ms = HTTPUP_TIMEOUT_MS;
	d->max_message = HTTPUP_MAX_MESSAGE;
	if (conf != NULL && conf->limits.max_message > 0 &&
	    conf->limits.max_message < SIZE_MAX / 4)
		d->max_message = (size_t)conf->limits.max_message;

	ca = NULL;
	if (d->tls)
		ca = sc->ca_file != NULL ? sc->ca_file : HTTPUP_SYSTEM_CA;
	if ((d->vh = httpup_vhost(ca)) == NULL) {
		if (ca != NULL)
			upstream_set_error("upstream %s: cannot use CA file %s "
			    "(missing, or not PEM certificates)", sc->name, ca);
		else
			upstream_set_error("upstream %s: cannot set up HTTP "
			    "client connections", sc->name);
		r = MT_EIO;
		goto out;
	}
	*out = d;
	d = NULL;
	r = 0;
out:
	httpup_dest_unref(d);
	return r;
}

/* ---- upstream references and owner calls -------------------------------- */

static void
httpup_ref(struct upstream *u)
{
	u->refs++;
}

static void
httpup_unref(struct upstream *u)
{
	if (--u->refs > 0)
		return;
	lws_sul_cancel(&u->sul_kick);
	lws_sul_cancel(&u->sul_get);
	free_secret(u->sid);
	free(u->version);
	free(u->tag);
	httpup_dest_unref(u->dest);
	free(u);
}

/* Hands one message (NUL-terminated) to the owner. */
static void
httpup_deliver(struct upstream *u, const char *msg, size_t len)
{
	if (u->closed || u->ended)
		return;
	u->ops->on_message(u->arg, (const uint8_t *)msg, len);
}

/* Tells the owner the upstream session is over (once). */
static void
httpup_end(struct upstream *u, const char *fmt, ...)
{
	char why[HTTPUP_WHY_MAX];
	va_list ap;

	if (u->closed || u->ended)
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_warnx("%s (session %s)", why, u->tag);
	u->ended = 1;
	u->ops->on_exit(u->arg, why);
}

/*
 * Answers rq's request with a JSON-RPC error (once, and only a request:
 * notifications have nobody to answer).  The sentence is also logged.
 */
static void
httpup_error(struct httpup_req *rq, int code, const char *fmt, ...)
{
	char msg[HTTPUP_WHY_MAX];
	va_list ap;
	size_t len;
	char *text;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (rq->u == NULL)
		return;
	log_warnx("%s (session %s)", msg, rq->u->tag);
	if (rq->id == NULL || rq->answered)
		return;
	rq->answered = 1;
	text = jrpc_error_text(rq->id, code, msg, &len);
	httpup_deliver(rq->u, text, len);
	free(text);
}

/* Marks rq's answer as garbage; the error goes out when rq finishes. */
static void
httpup_bad(struct httpup_req *rq, const char *fmt, ...)
{
	va_list ap;

	if (rq->bad)
		return;
	rq->bad = 1;
	va_start(ap, fmt);
	vsnprintf(rq->why, sizeof(rq->why), fmt, ap);
	va_end(ap);
}

/* ---- requests ------------------------------------------------------------ */

static struct httpup_req *
httpup_req_new(struct upstream *u, struct httpup_dest *d,
    enum httpup_method method)
{
	struct httpup_req *rq;

	rq = xcalloc(1, sizeof(*rq));
	rq->u = u;
	rq->dest = d;
	d->refs++;
	rq->method = method;
	buf_init(&rq->in, 0);
	lws_dll2_add_tail(&rq->list, u != NULL ? &u->reqs : &httpup_deletes);
	return rq;
}

/* Stops counting rq's unwritten body against the high-water mark. */
static void
httpup_unsent_drop(struct httpup_req *rq)
{
	if (rq->u != NULL && rq->unsent > 0) {
		rq->u->unsent -= rq->unsent;
		if (rq->u->eagain)
			httpup_kick_soon(rq->u);
	}
	rq->unsent = 0;
}

/*
 * Frees rq: detaches it from its wsi (which is then killed) and from its
 * upstream.  Only when nothing up the stack still uses it (busy == 0).
 */
static void
httpup_req_free(struct httpup_req *rq)
{
	lws_sul_cancel(&rq->sul_deadline);
	lws_sul_cancel(&rq->sul_fix);
	lws_sul_cancel(&rq->sul_retry);
	resolve_cancel(rq->lookup);
	rq->lookup = NULL;
	free(rq->addrs);
	if (rq->wsi != NULL) {
		lws_set_opaque_user_data(rq->wsi, NULL);
		lws_set_timeout(rq->wsi, PENDING_TIMEOUT_USER_OK,
		    LWS_TO_KILL_ASYNC);
		rq->wsi = NULL;
	}
	httpup_unsent_drop(rq);
	if (rq->u != NULL && rq->u->get == rq)
		rq->u->get = NULL;
	lws_dll2_remove(&rq->list);
	free(rq->body);
	json_decref(rq->id);
	buf_free(&rq->in);
	sse_free(rq->sse);
	free_secret(rq->del_sid);
	free(rq->del_version);
	httpup_dest_unref(rq->dest);
	free(rq);
}

/* Frees rq now, or when the code using it unwinds. */
static void
httpup_req_release(struct httpup_req *rq)
{
	if (rq->busy > 0) {
		rq->doomed = 1;
		lws_sul_cancel(&rq->sul_deadline);
		lws_sul_cancel(&rq->sul_fix);
		lws_sul_cancel(&rq->sul_retry);
		resolve_cancel(rq->lookup);
		rq->lookup = NULL;
		httpup_unsent_drop(rq);
		lws_dll2_remove(&rq->list);
		rq->u = NULL;
		return;
	}
	httpup_req_free(rq);
}

/* Ends a busy section on rq; returns 1 if rq was freed. */
static int
httpup_req_unbusy(struct httpup_req *rq)
{
	if (--rq->busy == 0 && rq->doomed) {
		httpup_req_free(rq);
		return 1;
	}
	return 0;
}

static void
httpup_deadline_cb(lws_sorted_usec_list_t *sul)
{
	struct httpup_req *rq = lws_container_of(sul, struct httpup_req,
	    sul_deadline);
	struct upstream *u = rq->u;

	if (u == NULL) {
		/* A DELETE that took too long: forget it. */
		httpup_req_free(rq);
		return;
	}
	rq->timed_out = 1;
	httpup_ref(u);
	rq->busy++;
	/* An answered request whose stream stays open just ends quietly. */
	if (!rq->answered)
		httpup_error(rq, JRPC_TIMEOUT, "upstream %s: no answer from %s "
		    "within %llu ms", rq->dest->name, rq->dest->shown,
		    (unsigned long long)rq->dest->timeout_ms);
	if (!httpup_req_unbusy(rq))
		httpup_kick_soon(u);
	httpup_unref(u);
}

/*
 * lws arms its own wait for the answer (the context's timeout_secs) right
 * after the body is written; the request deadline is ours, so drop it.
 */
static void
httpup_fix_cb(lws_sorted_usec_list_t *sul)
{
	struct httpup_req *rq = lws_container_of(sul, struct httpup_req,
	    sul_fix);

	if (rq->wsi != NULL && !rq->headers)
		lws_set_timeout(rq->wsi, NO_PENDING_TIMEOUT, 0);
}

static void
httpup_arm_deadline(struct httpup_req *rq, uint64_t ms)
{
	lws_sul_schedule(client_context(), 0, &rq->sul_deadline,
	    httpup_deadline_cb, (lws_usec_t)ms * LWS_US_PER_MS);
}

/* rq will not get a connection: report it, or free a lone DELETE. */
static void
httpup_lost(struct httpup_req *rq)
{
	rq->gone = 1;
	rq->wsi = NULL;
	if (rq->u != NULL)
		httpup_kick_soon(rq->u);
	else
		httpup_req_free(rq);	/* a DELETE after close */
}

/*
 * Asks lws for rq's connection to the address to try (the numeric one
 * in the url, or the next one the lookup found), going on to the next
 * address while lws refuses at once.  A failure, even one lws reports
 * from inside the call, leaves rq gone with the reason in fail.
 */
static void
httpup_connect(struct httpup_req *rq)
{
	struct lws_client_connect_info i;
	struct httpup_dest *d = rq->dest;
	struct lws *wsi;

again:
	memset(&i, 0, sizeof(i));
	i.context = client_context();
	i.vhost = d->vh;
	/*
	 * The name stays in i.host: the Host header, SNI and the
	 * certificate's host name check all take it from there.
	 */
	i.address = rq->addrs != NULL ? rq->addrs->addr[rq->addr_next] :
	    d->address;
	i.port = d->port;
	i.ssl_connection = LCCSCF_HTTP_NO_FOLLOW_REDIRECT;
	if (d->tls)
		i.ssl_connection |= LCCSCF_USE_SSL;
	i.path = d->path;
	i.host = d->host;
	i.method = httpup_methods[rq->method];
	i.protocol = HTTPUP_PROTOCOL_NAME;
	i.alpn = "http/1.1";
	i.opaque_user_data = rq;
	i.keep_warm_secs = 1;

	rq->gone = 0;
	rq->fail[0] = '\0';		/* the last address's reason counts */
	rq->connecting = 1;
	wsi = i.context != NULL ? lws_client_connect_via_info(&i) : NULL;
	rq->connecting = 0;
	if (wsi == NULL || rq->gone) {
		rq->gone = 1;
		rq->wsi = NULL;
		if (rq->addrs != NULL && rq->addr_next + 1 < rq->addrs->n) {
			rq->addr_next++;
			goto again;
		}
		if (rq->fail[0] == '\0')
			snprintf(rq->fail, sizeof(rq->fail),
			    "cannot open a connection");
		return;
	}
	rq->wsi = wsi;
}

static void
httpup_retry_cb(lws_sorted_usec_list_t *sul)
{
	struct httpup_req *rq = lws_container_of(sul, struct httpup_req,
	    sul_retry);

	httpup_connect(rq);
	if (rq->gone)
		httpup_lost(rq);
}

/* The host-name lookup for rq is over: connect, or report why not. */
static void
httpup_resolved(void *arg, const struct resolve_result *res)
{
	struct httpup_req *rq = arg;

	rq->lookup = NULL;
	if (res->error != NULL) {
		snprintf(rq->fail, sizeof(rq->fail), "cannot resolve %s: %s",
		    rq->dest->address, res->error);
		httpup_lost(rq);
		return;
	}
	rq->addrs = xmalloc(sizeof(*rq->addrs));
	memcpy(rq->addrs, res, sizeof(*rq->addrs));
	rq->addr_next = 0;
	httpup_connect(rq);
	if (rq->gone)
		httpup_lost(rq);
}

/*
 * Starts rq: its connection, or first the lookup of the host name (on
 * the resolver's threads, so a slow DNS server holds up this request
 * only).  The request's deadline runs from here and covers the lookup.
 * A failure to start leaves rq gone with the reason in fail.
 */
static void
httpup_start(struct httpup_req *rq)
{
	struct httpup_dest *d = rq->dest;
	int r;

	rq->started = 1;
	/* Without the resolver (unit tests), lws looks the name up. */
	if (d->numeric || resolve_fd() == -1)
		httpup_connect(rq);
	else if ((r = resolve_start(d->address, httpup_resolved, rq,
	    &rq->lookup)) != 0) {
		rq->gone = 1;
		snprintf(rq->fail, sizeof(rq->fail), "cannot resolve %s: %s",
		    d->address, r == MT_ELIMIT ? "too many host-name lookups "
		    "in flight" : mt_strerror(r));
	}
	if (rq->gone)
		return;
	if (rq->method == HU_POST)
		httpup_arm_deadline(rq, d->timeout_ms);
	else if (rq->method == HU_DELETE)
		httpup_arm_deadline(rq, HTTPUP_DELETE_MS);
}

/* ---- answers ------------------------------------------------------------ */

/* Notes what the initialize answer negotiated. */
static void
httpup_initialized(struct upstream *u, const json_t *msg)
{
	const json_t *v;
	const char *s;
	size_t i;

	v = json_object_get(json_object_get(msg, "result"),
	    "protocolVersion");
	if (!json_is_string(v))
		return;
	s = json_string_value(v);
	for (i = 0; s[i] != '\0' && i <= HTTPUP_VERSION_MAX; i++)
		if (!httpup_tchar((unsigned char)s[i]))
			return;
	if (i == 0 || i > HTTPUP_VERSION_MAX)
		return;
	free(u->version);
	u->version = xstrdup(s);
}

/* Delivers one parsed message m (its text is text/len if not NULL). */
static void
httpup_deliver_one(struct httpup_req *rq, json_t *m, const char *text,
    size_t len)
{
	struct upstream *u = rq->u;
	char *dump = NULL;

	if (jrpc_classify(m) == JRPC_RESPONSE && rq->id != NULL &&
	    json_equal(json_object_get(m, "id"), rq->id)) {
		if (rq->answered)
			return;		/* we answered it already (timeout) */
		rq->answered = 1;
		if (rq->initialize && json_object_get(m, "result") != NULL)
			httpup_initialized(u, m);
	}
	if (text == NULL) {
		dump = jrpc_dump(m, &len);
		text = dump;
	}
	httpup_deliver(u, text, len);
	free(dump);
}

/*
 * httpup_deliver_one for a single message read with jrpc_peek, without a
 * tree.  Returns 0 if it needs the tree instead (an invalid message, or
 * the answer to initialize, whose result is read).
 */
static int
httpup_deliver_peeked(struct httpup_req *rq, const struct jrpc_peek *pk)
{
	if (pk->kind == JRPC_INVALID || rq->initialize)
		return 0;
	if (pk->kind == JRPC_RESPONSE && rq->id != NULL &&
	    json_equal(pk->id, rq->id)) {
		if (rq->answered)
			return 1;	/* we answered it already (timeout) */
		rq->answered = 1;
	}
	httpup_deliver(rq->u, pk->text, pk->len);
	return 1;
}

/*
 * Handles one JSON text from the upstream (a JSON body or an SSE event's
 * data, NUL-terminated): a message or a batch, each delivered.  Garbage
 * marks a POST's answer bad; on the GET stream it is logged and skipped.
 * A single message is read with jrpc_peek and passed on as it came.
 */
static void
httpup_message(struct httpup_req *rq, const char *text, size_t len)
{
	struct upstream *u = rq->u;
	struct jrpc_peek peek;
	char err[160];
	json_t *m, *e;
	size_t i;
	int done;

	done = jrpc_peek(text, len, &peek) && httpup_deliver_peeked(rq, &peek);
	jrpc_peek_done(&peek);
	if (done)
		return;
	if ((m = jrpc_parse(text, len, err, sizeof(err))) == NULL) {
		if (rq->method == HU_GET) {
			log_warnx("upstream %s: %s sent %s on its event "
			    "stream; skipped", rq->dest->name, rq->dest->shown,
			    err);
			return;
		}
		httpup_bad(rq, "upstream %s: %s answered with %s",
		    rq->dest->name, rq->dest->shown, err);
		return;
	}
	if (json_is_array(m) && json_array_size(m) > 0) {
		json_array_foreach(m, i, e)
			if (jrpc_classify(e) == JRPC_INVALID)
				break;
		if (i == json_array_size(m)) {
			json_array_foreach(m, i, e) {
				if (u->closed || u->ended)
					break;
				httpup_deliver_one(rq, e, NULL, 0);
			}
			goto out;
		}
	} else if (jrpc_classify(m) != JRPC_INVALID) {
		httpup_deliver_one(rq, m, text, len);
		goto out;
	}
	if (rq->method == HU_GET)
		log_warnx("upstream %s: %s sent something that is not a "
		    "JSON-RPC message on its event stream; skipped",
		    rq->dest->name, rq->dest->shown);
	else
		httpup_bad(rq, "upstream %s: %s answered with JSON that is "
		    "not a JSON-RPC message", rq->dest->name, rq->dest->shown);
out:
	json_decref(m);
}

/* One SSE event of rq's stream. */
static void
httpup_event(struct httpup_req *rq, const struct sse_event *ev)
{
	size_t i;

	/* Only "message" events (the default type) carry MCP messages. */
	if (ev->type[0] != '\0' && strcmp(ev->type, "message") != 0)
		return;
	/* Empty data: a priming event for resumption, not a message. */
	for (i = 0; i < ev->len; i++)
		if (strchr(" \t\r\n", ev->data[i]) == NULL)
			break;
	if (i == ev->len)
		return;
	httpup_message(rq, ev->data, ev->len);
	/* Progress on a long call: the deadline counts from the last event. */
	if (rq->method == HU_POST && !rq->timed_out && rq->u != NULL &&
	    !rq->u->closed)
		httpup_arm_deadline(rq, rq->dest->timeout_ms);
}

/*
 * Delivers the SSE events rq has buffered while the owner takes them.
 * Returns -1 if rq was freed meanwhile (the owner closed the upstream).
 */
static int
httpup_pump(struct httpup_req *rq)
{
	struct upstream *u = rq->u;
	struct sse_event ev;
	int r;

	httpup_ref(u);
	rq->busy++;
	while (!u->closed && !u->paused && !u->ended && !rq->bad) {
		if ((r = sse_next(rq->sse, &ev)) == 0) {
			rq->pending = 0;
			break;
		}
		if (r < 0) {
			rq->pending = 0;
			httpup_bad(rq, "upstream %s: %s sent an event larger "
			    "than %zu bytes", rq->dest->name, rq->dest->shown,
			    rq->dest->max_message);
			break;
		}
		httpup_event(rq, &ev);
	}
	if (httpup_req_unbusy(rq)) {
		httpup_unref(u);
		return -1;
	}
	if (rq->bad)
		httpup_kick_soon(u);
	httpup_unref(u);
	return 0;
}

/*
 * The useful part of an error answer for the agent: a JSON-RPC error's
 * message, or the first line of a plain-text body.
 */
static void
httpup_detail(struct httpup_req *rq, char *dst, size_t dstlen)
{
	const json_t *msg;
	json_t *m;
	size_t len = buf_len(&rq->in);

	dst[0] = '\0';
	if (rq->kind != HB_ERROR || len == 0)
		return;
	if ((m = json_loadb((const char *)buf_ptr(&rq->in), len, 0,
	    NULL)) != NULL) {
		msg = json_object_get(json_object_get(m, "error"), "message");
		if (json_is_string(msg))
			httpup_printable(dst, dstlen, json_string_value(msg),
			    strlen(json_string_value(msg)));
		json_decref(m);
		return;
	}
	if (strcmp(rq->ctype, "text/plain") == 0)
		httpup_printable(dst, dstlen, (const char *)buf_ptr(&rq->in),
		    len);
}

/*
 * Whether an error answer to a request carrying our session id says the
 * upstream no longer knows the session: 404 per the spec, or a 400 whose
 * message names the session (the SDK's example servers, after restart).
 */
static int
httpup_forgotten(const struct httpup_req *rq, const char *detail)
{
	if (!rq->had_sid)
		return 0;
	if (rq->status == 404)
		return 1;
	return rq->status == 400 && strcasestr(detail, "session") != NULL;
}

/* A POST is over: deliver what it left to deliver. */
static void
httpup_post_done(struct httpup_req *rq)
{
	struct upstream *u = rq->u;
	struct httpup_dest *d = rq->dest;
	char detail[HTTPUP_DETAIL_MAX + 1];
	uint8_t *text;
	size_t len;

	if (!rq->bad && !rq->timed_out && rq->kind == HB_JSON &&
	    rq->completed) {
		if ((text = buf_take(&rq->in, &len)) != NULL)
			httpup_message(rq, (const char *)text, len);
		free(text);
		if (u->closed)
			return;
	}
	if (rq->status != 0 && (rq->status < 200 || rq->status >= 300)) {
		httpup_detail(rq, detail, sizeof(detail));
		httpup_error(rq, JRPC_UPSTREAM_ERROR, "upstream %s: HTTP %d "
		    "from %s%s%s", d->name, rq->status, d->shown,
		    detail[0] != '\0' ? ": " : "", detail);
		if (!u->closed && httpup_forgotten(rq, detail)) {
			u->expired = 1;
			httpup_end(u, "upstream %s ended the session (HTTP %d)",
			    d->name, rq->status);
		}
		return;
	}
	if (rq->bad) {
		httpup_error(rq, JRPC_UPSTREAM_ERROR, "%s", rq->why);
		return;
	}
	if (rq->timed_out)
		return;
	if (rq->status == 0)
		httpup_error(rq, JRPC_UPSTREAM_ERROR, "upstream %s: cannot "
		    "reach %s: %s", d->name, d->shown, rq->fail[0] != '\0' ?
		    rq->fail : "connection closed before an answer");
	else if (rq->id != NULL && !rq->answered) {
		if (rq->kind == HB_NONE)
			httpup_error(rq, JRPC_UPSTREAM_ERROR, "upstream %s: %s "
			    "answered HTTP %d to a request, without a "
			    "response", d->name, d->shown, rq->status);
		else if (!rq->completed)
			httpup_error(rq, JRPC_UPSTREAM_ERROR, "upstream %s: %s "
			    "closed the connection before its answer was "
			    "complete", d->name, d->shown);
		else
			httpup_error(rq, JRPC_UPSTREAM_ERROR, "upstream %s: %s "
			    "sent no response to the request", d->name,
			    d->shown);
	}
	if (rq->initialize && rq->answered && !u->closed)
		httpup_get_start(u);
}

static void
httpup_get_cb(lws_sorted_usec_list_t *sul)
{
	struct upstream *u = lws_container_of(sul, struct upstream, sul_get);

	httpup_ref(u);
	httpup_get_start(u);
	httpup_unref(u);
}

/* Says why the GET stream failed (it will be retried). */
static void
httpup_get_log(const struct httpup_req *rq, const char *detail)
{
	const struct httpup_dest *d = rq->dest;

	if (rq->status >= 200 && rq->status < 300)
		log_info("upstream %s: event stream from %s lost%s%s; "
		    "reopening", d->name, d->shown, rq->bad ? ": " : "",
		    rq->bad ? rq->why : "");
	else if (rq->status != 0)
		log_info("upstream %s: event stream from %s: HTTP %d%s%s; "
		    "retrying", d->name, d->shown, rq->status,
		    detail[0] != '\0' ? ": " : "", detail);
	else
		log_info("upstream %s: event stream from %s: %s; retrying",
		    d->name, d->shown, rq->fail[0] != '\0' ? rq->fail :
		    "connection closed");
}

/* The GET stream is over: maybe the session too; else open it again. */
static void
httpup_get_done(struct httpup_req *rq)
{
	struct upstream *u = rq->u;
	struct httpup_dest *d = rq->dest;
	char detail[HTTPUP_DETAIL_MAX + 1];
	int failed;

	u->get = NULL;
	if (u->closed || u->ended)
		return;
	if (rq->status == 405) {
		log_debug("upstream %s: %s offers no event stream (HTTP 405)",
		    d->name, d->shown);
		u->get_off = 1;
		return;
	}
	httpup_detail(rq, detail, sizeof(detail));
	if (httpup_forgotten(rq, detail)) {
		u->expired = 1;
		httpup_end(u, "upstream %s ended the session (HTTP %d on its "
		    "event stream%s%s)", d->name, rq->status,
		    detail[0] != '\0' ? ": " : "", detail);
		return;
	}
	if (rq->status >= 200 && rq->status < 300 && rq->kind != HB_SSE) {
		log_warnx("upstream %s: %s answered the event stream request "
		    "with HTTP %d %s; no server-initiated messages",
		    d->name, d->shown, rq->status, rq->ctype);
		u->get_off = 1;
		return;
	}
	failed = rq->kind != HB_SSE || rq->bad ||
	    httpup_now_ms() - rq->est_ms < HTTPUP_GET_SHORT_MS;
	if (!failed) {
		log_debug("upstream %s: event stream from %s ended; "
		    "reopening", d->name, d->shown);
		u->get_failures = 0;
		u->get_delay_ms = HTTPUP_GET_RETRY_MIN_MS;
	} else {
		/* Said once per run of failures; the retries are quiet. */
		if (u->get_failures++ == 0)
			httpup_get_log(rq, detail);
		if (u->get_delay_ms == 0)
			u->get_delay_ms = HTTPUP_GET_RETRY_MIN_MS;
		else if ((u->get_delay_ms *= 2) > HTTPUP_GET_RETRY_MAX_MS)
			u->get_delay_ms = HTTPUP_GET_RETRY_MAX_MS;
	}
	lws_sul_schedule(client_context(), 0, &u->sul_get, httpup_get_cb,
	    (lws_usec_t)u->get_delay_ms * LWS_US_PER_MS);
}

/* Opens the GET stream if the session has one to open. */
static void
httpup_get_start(struct upstream *u)
{
	struct httpup_req *rq;

	if (u->get != NULL || u->get_off || u->sid == NULL || u->closed ||
	    u->ended)
		return;
	rq = httpup_req_new(u, u->dest, HU_GET);
	u->get = rq;
	httpup_start(rq);
	if (rq->gone)
		httpup_kick_soon(u);
}

/* Whether rq has nothing more to do but report. */
static int
httpup_finishable(const struct httpup_req *rq)
{
	if (!rq->started)
		return 0;
	if (rq->pending && !rq->bad)
		return 0;		/* events wait for resume */
	return rq->gone || rq->completed || rq->bad || rq->timed_out;
}

/* Reports the end of rq to the owner and frees it. */
static void
httpup_finish(struct httpup_req *rq)
{
	struct upstream *u = rq->u;

	httpup_ref(u);
	rq->busy++;
	if (rq->method == HU_GET)
		httpup_get_done(rq);
	else
		httpup_post_done(rq);
	rq->busy--;
	httpup_req_free(rq);
	httpup_unref(u);
}

/* Whether rq still holds back the messages queued after it. */
static int
httpup_barrier(const struct httpup_req *rq)
{
	if (rq->initialize)
		return !rq->answered;
	return rq->id == NULL && !rq->headers;
}

/* Starts the POSTs that order and the connection cap allow. */
static void
httpup_start_ready(struct upstream *u)
{
	struct httpup_req *rq;
	struct lws_dll2 *d;
	size_t active = 0;
	int capped = 0;

	for (d = lws_dll2_get_head(&u->reqs); d != NULL; d = d->next) {
		rq = lws_container_of(d, struct httpup_req, list);
		if (rq->method == HU_POST && rq->started && rq->id != NULL)
			active++;
	}
	for (d = lws_dll2_get_head(&u->reqs); d != NULL; d = d->next) {
		rq = lws_container_of(d, struct httpup_req, list);
		if (rq->method != HU_POST)
			continue;
		if (!rq->started) {
			if (rq->id != NULL &&
			    (capped || active >= HTTPUP_MAX_REQUESTS))
				capped = 1;
			else {
				if (rq->id != NULL)
					active++;
				httpup_start(rq);
			}
		}
		if (httpup_barrier(rq))
			break;
	}
}

/*
 * Deferred work: start what may start, deliver buffered events, report
 * finished requests, and tell the owner when there is room again.
 */
static void
httpup_run(struct upstream *u)
{
	struct httpup_req *rq;
	struct lws_dll2 *d;

again:
	if (u->closed)
		return;
	httpup_start_ready(u);
	for (d = lws_dll2_get_head(&u->reqs); d != NULL; d = d->next) {
		rq = lws_container_of(d, struct httpup_req, list);
		if (rq->sse != NULL && rq->pending && !u->paused &&
		    !u->ended) {
			httpup_pump(rq);
			if (u->closed)
				return;
		}
		if (httpup_finishable(rq)) {
			httpup_finish(rq);
			goto again;
		}
	}
	if (u->eagain && u->unsent <= HTTPUP_HIGH_WATER / 2 && !u->ended) {
		u->eagain = 0;
		u->ops->on_drain(u->arg);
	}
}

static void
httpup_kick_cb(lws_sorted_usec_list_t *sul)
{
	struct upstream *u = lws_container_of(sul, struct upstream, sul_kick);

	httpup_ref(u);
	httpup_run(u);
	httpup_unref(u);
}

static void
httpup_kick_soon(struct upstream *u)
{
	if (u->closed)
		return;
	lws_sul_schedule(client_context(), 0, &u->sul_kick, httpup_kick_cb, 1);
}

/* ---- the lws protocol --------------------------------------------------- */

/* Adds one header; nonzero when the handshake buffer is full. */
static int
httpup_hdr(struct lws *wsi, const char *name, const char *value,
    unsigned char **p, unsigned char *end)
{
	return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
	    (const unsigned char *)value, (int)strlen(value), p, end);
}

static int
httpup_handshake(struct httpup_req *rq, struct lws *wsi, void *in, size_t len)
{
	unsigned char **p = (unsigned char **)in, *end = *p + len;
	struct httpup_dest *d = rq->dest;
	const char *sid, *version;
	char clen[24];
	size_t i;

	sid = rq->u != NULL ? rq->u->sid : rq->del_sid;
	version = rq->u != NULL ? rq->u->version : rq->del_version;
	if (rq->method == HU_POST) {
		snprintf(clen, sizeof(clen), "%zu", rq->bodylen);
		if (httpup_hdr(wsi, "content-type:", "application/json", p,
		    end) || httpup_hdr(wsi, "accept:",
		    "application/json, text/event-stream", p, end) ||
		    httpup_hdr(wsi, "content-length:", clen, p, end))
			goto full;
	} else if (rq->method == HU_GET) {
		if (httpup_hdr(wsi, "accept:", "text/event-stream", p, end))
			goto full;
	}
	if (sid != NULL && !rq->initialize) {
		if (httpup_hdr(wsi, "mcp-session-id:", sid, p, end))
			goto full;
		rq->had_sid = 1;
	}
	if (version != NULL && !rq->initialize &&
	    httpup_hdr(wsi, "mcp-protocol-version:", version, p, end))
		goto full;
	for (i = 0; i < d->nhdr; i++)
		if (httpup_hdr(wsi, d->hdr[i].name, d->hdr[i].value, p, end))
			goto full;

	if (rq->method == HU_POST) {
		lws_client_http_body_pending(wsi, 1);
		lws_callback_on_writable(wsi);
	}
	return 0;
full:
	snprintf(rq->fail, sizeof(rq->fail), "the request headers do not "
	    "fit in %zu bytes", len);
	return -1;
}

static int
httpup_write(struct httpup_req *rq, struct lws *wsi)
{
	uint8_t buf[LWS_PRE + HTTPUP_CHUNK];
	size_t n;
	int final;

	if (rq->method != HU_POST || rq->body == NULL)
		return 0;
	n = rq->bodylen - rq->sent;
	if (n > HTTPUP_CHUNK)
		n = HTTPUP_CHUNK;
	final = rq->sent + n == rq->bodylen;
	memcpy(buf + LWS_PRE, rq->body + rq->sent, n);
	if (lws_write(wsi, buf + LWS_PRE, n, final ? LWS_WRITE_HTTP_FINAL :
	    LWS_WRITE_HTTP) != (int)n) {
		snprintf(rq->fail, sizeof(rq->fail), "cannot send the request");
		return -1;
	}
	rq->sent += n;
	if (!final) {
		lws_callback_on_writable(wsi);
		return 0;
	}
	lws_client_http_body_pending(wsi, 0);
	free(rq->body);
	rq->body = NULL;
	httpup_unsent_drop(rq);
	lws_sul_schedule(client_context(), 0, &rq->sul_fix, httpup_fix_cb,
	    LWS_US_PER_MS);
	return 0;
}

/* The answer's status and headers are in. */
static int
httpup_established(struct httpup_req *rq, struct lws *wsi)
{
	struct upstream *u = rq->u;
	char ct[128], sid[HTTPUP_SID_MAX + 1];
	size_t i;
	int n;

	rq->status = (int)lws_http_client_http_response(wsi);
	rq->headers = 1;
	rq->est_ms = httpup_now_ms();
	if (u == NULL)
		return 0;		/* a DELETE: the answer is not read */
	if (u->paused)
		lws_rx_flow_control(wsi, 0);
	httpup_kick_soon(u);		/* may lift a barrier */

	if (lws_hdr_copy(wsi, ct, sizeof(ct), WSI_TOKEN_HTTP_CONTENT_TYPE) < 0)
		ct[0] = '\0';
	ct[strcspn(ct, "; \t")] = '\0';
	for (i = 0; ct[i] != '\0'; i++)
		if (ct[i] >= 'A' && ct[i] <= 'Z')
			ct[i] = (char)(ct[i] - 'A' + 'a');
	httpup_printable(rq->ctype, sizeof(rq->ctype), ct, strlen(ct));

	if (rq->status < 200 || rq->status >= 300) {
		rq->kind = HB_ERROR;
		return 0;
	}
	if (rq->initialize &&
	    (n = lws_hdr_custom_length(wsi, "mcp-session-id:", 15)) > 0) {
		if (n > HTTPUP_SID_MAX || lws_hdr_custom_copy(wsi, sid,
		    sizeof(sid), "mcp-session-id:", 15) != n) {
			httpup_bad(rq, "upstream %s: %s sent a session id "
			    "longer than %d bytes", rq->dest->name,
			    rq->dest->shown, HTTPUP_SID_MAX);
			return 0;
		}
		for (i = 0; i < (size_t)n; i++)
			if (sid[i] < 0x21 || sid[i] > 0x7e)
				break;
		if (i < (size_t)n) {
			explicit_wipe(sid, sizeof(sid));
			httpup_bad(rq, "upstream %s: %s sent a session id with "
			    "characters HTTP does not allow", rq->dest->name,
			    rq->dest->shown);
			return 0;
		}
		free_secret(u->sid);
		u->sid = xstrdup(sid);
		explicit_wipe(sid, sizeof(sid));
	}
	if (rq->status == 202 || rq->status == 204)
		rq->kind = HB_NONE;
	else if (strcmp(rq->ctype, "text/event-stream") == 0) {
		rq->kind = HB_SSE;
		if ((rq->sse = sse_new(rq->dest->max_message)) == NULL)
			httpup_bad(rq, "upstream %s: out of memory",
			    rq->dest->name);
	} else if (strcmp(rq->ctype, "application/json") == 0 &&
	    rq->method == HU_POST)
		rq->kind = HB_JSON;
	else if (rq->method == HU_POST)
		httpup_bad(rq, "upstream %s: %s answered HTTP %d with content "
		    "type \"%s\", not JSON or an event stream", rq->dest->name,
		    rq->dest->shown, rq->status, rq->ctype);
	return 0;
}

/* Answer body bytes (chunked framing already removed). */
static int
httpup_body(struct httpup_req *rq, const void *in, size_t len)
{
	size_t have = buf_len(&rq->in);

	if (rq->u == NULL || rq->bad || rq->timed_out)
		return 0;
	switch (rq->kind) {
	case HB_JSON:
		if (have + len > rq->dest->max_message)
			httpup_bad(rq, "upstream %s: %s sent an answer larger "
			    "than %zu bytes", rq->dest->name, rq->dest->shown,
			    rq->dest->max_message);
		else if (buf_append(&rq->in, in, len) != 0)
			httpup_bad(rq, "upstream %s: out of memory",
			    rq->dest->name);
		if (rq->bad)
			httpup_kick_soon(rq->u);
		return 0;
	case HB_ERROR:
		if (have < HTTPUP_ERRBODY_MAX)
			(void)buf_append(&rq->in, in,
			    len < HTTPUP_ERRBODY_MAX - have ? len :
			    HTTPUP_ERRBODY_MAX - have);
		return 0;
	case HB_SSE:
		if (sse_feed(rq->sse, in, len) != 0) {
			httpup_bad(rq, "upstream %s: %s sent an event larger "
			    "than %zu bytes", rq->dest->name, rq->dest->shown,
			    rq->dest->max_message);
			httpup_kick_soon(rq->u);
			return 0;
		}
		rq->pending = 1;
		if (rq->u->paused)
			return 0;
		return httpup_pump(rq);
	case HB_NONE:
		break;
	}
	return 0;
}

/*
 * Keeps lws's reason for a failed connection, in words: its "conn fail:
 * 111" becomes "Connection refused".
 */
static void
httpup_conn_error(struct httpup_req *rq, const void *in, size_t len)
{
	const char *s = in;
	char text[128];
	long e;

	if (s == NULL) {
		snprintf(rq->fail, sizeof(rq->fail), "connection failed");
		return;
	}
	httpup_printable(text, sizeof(text), s, strnlen(s, len));
	if (strncmp(text, "conn fail: ", 11) == 0 &&
	    (e = strtol(text + 11, NULL, 10)) > 0 && e < 4096)
		snprintf(rq->fail, sizeof(rq->fail), "%s", strerror((int)e));
	else
		snprintf(rq->fail, sizeof(rq->fail), "%s", text);
}

/*
 * Whether rq's connection failed before anything of the request went
 * out, with another address of the host name left to try.
 */
static int
httpup_retryable(const struct httpup_req *rq)
{
	return rq->addrs != NULL && rq->addr_next + 1 < rq->addrs->n &&
	    rq->status == 0 && !rq->headers && rq->sent == 0 &&
	    !rq->timed_out && !rq->doomed && !rq->bad;
}

/* The wsi is being destroyed: rq loses its connection. */
static void
httpup_wsi_gone(struct httpup_req *rq)
{
	rq->wsi = NULL;
	rq->gone = 1;
	lws_sul_cancel(&rq->sul_fix);
	if (rq->connecting)
		return;		/* httpup_connect sees gone */
	if (httpup_retryable(rq)) {
		/* Not from inside lws's destroy callback. */
		rq->gone = 0;
		rq->addr_next++;
		lws_sul_schedule(client_context(), 0, &rq->sul_retry,
		    httpup_retry_cb, 1);
		return;
	}
	httpup_lost(rq);
}

int
httpup_callback(struct lws *wsi, enum lws_callback_reasons reason,
    void *user, void *in, size_t len)
{
	char buf[LWS_PRE + HTTPUP_CHUNK], *px;
	struct httpup_req *rq;
	int n;

	switch (reason) {
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
		if ((rq = lws_get_opaque_user_data(wsi)) == NULL)
			return -1;
		return httpup_handshake(rq, wsi, in, len);
	case LWS_CALLBACK_CLIENT_HTTP_WRITEABLE:
		if ((rq = lws_get_opaque_user_data(wsi)) == NULL)
			return -1;
		return httpup_write(rq, wsi);
	case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP:
		if ((rq = lws_get_opaque_user_data(wsi)) == NULL)
			return -1;
		return httpup_established(rq, wsi);
	case LWS_CALLBACK_RECEIVE_CLIENT_HTTP:
		px = buf + LWS_PRE;
		n = (int)sizeof(buf) - LWS_PRE;
		if (lws_http_client_read(wsi, &px, &n) < 0)
			return -1;
		return 0;
	case LWS_CALLBACK_RECEIVE_CLIENT_HTTP_READ:
		if ((rq = lws_get_opaque_user_data(wsi)) == NULL)
			return -1;
		return httpup_body(rq, in, len);
	case LWS_CALLBACK_COMPLETED_CLIENT_HTTP:
		if ((rq = lws_get_opaque_user_data(wsi)) == NULL)
			return 0;
		rq->completed = 1;
		if (rq->u != NULL)
			httpup_kick_soon(rq->u);
		return 0;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		if ((rq = lws_get_opaque_user_data(wsi)) != NULL &&
		    rq->fail[0] == '\0')
			httpup_conn_error(rq, in, len);
		return 0;
	case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
		return 0;
	case LWS_CALLBACK_WSI_DESTROY:
		if ((rq = lws_get_opaque_user_data(wsi)) != NULL) {
			lws_set_opaque_user_data(wsi, NULL);
			httpup_wsi_gone(rq);
		}
		return 0;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* ---- the upstream kind -------------------------------------------------- */

static int
httpup_open(struct lws_vhost *vh, const struct server_conf *sc,
    const char *agent, const char *session_tag,
    const struct upstream_ops *ops, void *arg, struct upstream **out)
{
	struct httpup_dest *d = NULL;
	struct upstream *u;
	int r;

	(void)vh;
	if ((r = httpup_dest_new(sc, &d)) != 0)
		return r;
	u = xcalloc(1, sizeof(*u));
	u->dest = d;
	u->ops = ops;
	u->arg = arg;
	u->refs = 1;
	u->tag = xstrdup(session_tag != NULL ? session_tag : "-");
	log_debug("upstream %s: session %s for agent %s to %s", sc->name,
	    u->tag, agent != NULL ? agent : "-", d->shown);
	*out = u;
	return 0;
}

static int
httpup_send(struct upstream *u, const uint8_t *msg, size_t len)
{
	struct httpup_req *rq;
	struct jrpc_peek peek;
	const json_t *method;
	json_t *m;

	if (u->closed || u->ended)
		return MT_ECLOSED;
	if (len > u->dest->max_message)
		return MT_ETOOBIG;

	rq = httpup_req_new(u, u->dest, HU_POST);
	rq->body = xmalloc(len);
	memcpy(rq->body, msg, len);
	rq->bodylen = len;
	rq->unsent = len;
	u->unsent += len;
	/*
	 * Not JSON-RPC (or a batch): posted as is, nobody to answer.  A
	 * request's id and method are read without a tree when possible.
	 */
	if (jrpc_peek(msg, len, &peek)) {
		if (peek.kind == JRPC_REQUEST) {
			rq->id = json_incref(peek.id);
			rq->initialize = strcmp(peek.method, "initialize") == 0;
		}
	} else if ((m = jrpc_parse(msg, len, NULL, 0)) != NULL) {
		if (jrpc_classify(m) == JRPC_REQUEST) {
			rq->id = json_incref(json_object_get(m, "id"));
			method = json_object_get(m, "method");
			rq->initialize = strcmp(json_string_value(method),
			    "initialize") == 0;
		}
		json_decref(m);
	}
	jrpc_peek_done(&peek);
	httpup_kick_soon(u);
	if (u->unsent > HTTPUP_HIGH_WATER) {
		u->eagain = 1;
		return MT_EAGAIN;
	}
	return 0;
}

/* Ends the upstream session: DELETE, without waiting for its answer. */
static void
httpup_delete(struct upstream *u)
{
	struct httpup_req *rq;

	rq = httpup_req_new(NULL, u->dest, HU_DELETE);
	rq->del_sid = xstrdup(u->sid);
	rq->del_version = u->version != NULL ? xstrdup(u->version) : NULL;
	httpup_start(rq);
	if (rq->gone)
		httpup_req_free(rq);
}

static void
httpup_close(struct upstream *u)
{
	struct lws_dll2 *d;

	if (u == NULL || u->closed)
		return;
	u->closed = 1;
	lws_sul_cancel(&u->sul_kick);
	lws_sul_cancel(&u->sul_get);
	while ((d = lws_dll2_get_head(&u->reqs)) != NULL)
		httpup_req_release(lws_container_of(d, struct httpup_req,
		    list));
	u->get = NULL;
	if (u->sid != NULL && !u->expired && client_context() != NULL)
		httpup_delete(u);
	log_debug("upstream %s: session %s closed", u->dest->name, u->tag);
	httpup_unref(u);
}

static void
httpup_flow(struct upstream *u, int allow)
{
	struct httpup_req *rq;
	struct lws_dll2 *d;

	for (d = lws_dll2_get_head(&u->reqs); d != NULL; d = d->next) {
		rq = lws_container_of(d, struct httpup_req, list);
		if (rq->wsi != NULL && rq->headers)
			lws_rx_flow_control(rq->wsi, allow);
	}
}

static void
httpup_pause(struct upstream *u)
{
	if (u->closed || u->paused)
		return;
	u->paused = 1;
	log_debug("upstream %s: session %s paused (the agent is slow)",
	    u->dest->name, u->tag);
	httpup_flow(u, 0);
}

static void
httpup_resume(struct upstream *u)
{
	if (u->closed || !u->paused)
		return;
	u->paused = 0;
	log_debug("upstream %s: session %s resumed", u->dest->name, u->tag);
	httpup_flow(u, 1);
	httpup_kick_soon(u);	/* events buffered while paused */
}

void
httpup_shutdown(void)
{
	struct lws_dll2 *d;

	while ((d = lws_dll2_get_head(&httpup_deletes)) != NULL)
		httpup_req_free(lws_container_of(d, struct httpup_req, list));
}

const struct upstream_kind upstream_http = {
	"http",
	httpup_open,
	httpup_send,
	httpup_close,
	httpup_pause,
	httpup_resume
};
