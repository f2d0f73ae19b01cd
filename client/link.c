/*
 * The client's one outbound link to the relay (wss://RELAY/tunnel,
 * subprotocol mcptun.1).
 *
 * Dial with TLS verified against ca_file (or the system roots), send HELLO
 * with the catalog of allowlisted server names, then serve OPENs: each
 * stream becomes a session (session.c) with an upstream behind it.  When
 * the link drops, sessions stay alive for resume_grace and re-attach on
 * the next link (their ids go in HELLO's resume list); reconnects back off
 * exponentially with jitter and never give up.  Pings with a deadline find
 * a dead link, a half-open TCP connection included.
 */
#include <libwebsockets.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>
#include <mbedtls/x509_crt.h>

#include "client/client.h"
#include "client/client_conf.h"
#include "common/backoff.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/resolve.h"
#include "common/token.h"
#include "common/u32map.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "proto/frame.h"
#include "proto/mux.h"

struct link {
	struct lws		*wsi;		/* established link, or NULL */
	struct lws		*connecting;	/* handshake in progress */
	int			 ready;		/* WELCOME received */
	int			 closing;	/* CLOSE sent / being closed */
	uint16_t		 close_code;
	char			 close_text[96];
	struct mux		*mux;
	struct u32map		 sessions;	/* stream id -> struct session */
	struct backoff		 bo;
	struct buf		 rx;
	uint8_t			*txbuf;
	size_t			 txcap;
	uint64_t		 last_rx_ms;
	uint64_t		 attempts;
	int			 tls_up;	/* this attempt got past TLS */
	int			 stopping;
	char			*url;		/* copy for logs */
	struct resolve_req	*lookup;	/* the relay's name, resolving */
	unsigned		 turn;		/* which of its addresses next */
	size_t			 untried;	/* of them, left this round */
	int			 reached;	/* this attempt sent its upgrade */
	lws_sorted_usec_list_t	 sul_connect;
	lws_sorted_usec_list_t	 sul_ping;
	lws_sorted_usec_list_t	 sul_grace;
};

static struct link L;

static void link_schedule_connect(int fast);

static const struct client_limits *
limits(void)
{
	return &client_conf_current()->limits;
}

static void
link_want_write(void)
{
	if (L.wsi != NULL && (mux_has_output(L.mux) || L.closing))
		lws_callback_on_writable(L.wsi);
}

/* ---- what sessions use ------------------------------------------------ */

int
link_send(uint32_t stream, const void *msg, size_t len)
{
	int r;

	if ((r = mux_send(L.mux, stream, msg, len)) != 0)
		return r;
	link_want_write();
	return 0;
}

size_t
link_queued(uint32_t stream)
{
	return mux_stream_queued(L.mux, stream);
}

int
link_congested(void)
{
	return mux_congested(L.mux);
}

void
link_stream_end(uint32_t stream, uint16_t code, const char *text)
{
	struct session *s = u32map_del(&L.sessions, stream);

	if (s == NULL)
		return;
	/* The session asked for this and frees itself after we return. */
	if (L.wsi != NULL && L.ready)
		mux_stream_finish(L.mux, stream, code, text);
	else
		mux_stream_remove(L.mux, stream);
	link_want_write();
}

void
link_pause(uint32_t stream)
{
	mux_recv_pause(L.mux, stream);
}

void
link_resume(uint32_t stream)
{
	mux_recv_resume(L.mux, stream);
	link_want_write();
}

/* ---- sessions --------------------------------------------------------- */

static void
link_drain_one(void *arg, uint32_t id)
{
	struct session *s = u32map_get(&L.sessions, id);

	if (s != NULL)
		session_drain(s);
}

/* The link's queue fell below half the budget: paused upstreams resume. */
static void
link_on_link_drain(void *arg)
{
	/* By stream id: a session may end while it drains. */
	mux_foreach_stream(L.mux, link_drain_one, NULL);
}

static void
link_close_session(uint32_t id)
{
	struct session *s = u32map_del(&L.sessions, id);

	mux_stream_remove(L.mux, id);
	if (s != NULL)
		session_close(s);
}

static void
link_close_all_sessions(void)
{
	size_t pos = 0;
	uint32_t id;
	void *v;

	while (u32map_next(&L.sessions, &pos, &id, &v))
		link_close_session(id);
}

static void
link_grace_expired(lws_sorted_usec_list_t *sul)
{
	if (L.ready)
		return;
	if (L.sessions.count > 0)
		log_info("relay did not come back within the grace period; "
		    "ending %zu session(s)", L.sessions.count);
	link_close_all_sessions();
}

/* ---- frames ------------------------------------------------------------ */

static void
link_fail(uint16_t code, const char *text)
{
	if (L.closing || L.wsi == NULL)
		return;
	L.closing = 1;
	L.close_code = code;
	snprintf(L.close_text, sizeof(L.close_text), "%s", text);
	lws_callback_on_writable(L.wsi);
}

static void
link_on_message(void *arg, uint32_t id, const uint8_t *data, size_t len)
{
	struct session *s = u32map_get(&L.sessions, id);

	if (s != NULL)
		session_input(s, data, len);
}

/* The link took enough of stream's queue: a paused upstream may resume. */
static void
link_on_drain(void *arg, uint32_t id)
{
	struct session *s = u32map_get(&L.sessions, id);

	if (s != NULL)
		session_drain(s);
}

static void
link_open(const struct frame *f)
{
	json_t *j, *v, *list;
	const char *server, *agent;
	const char **servers = NULL, **allow = NULL;
	struct session *s = NULL;
	char why[256];
	size_t i, n = 0, nallow = 0;
	int code;

	j = json_loadb((const char *)f->payload, f->len, 0, NULL);
	server = json_string_value(json_object_get(j, "server"));
	agent = json_string_value(json_object_get(j, "agent"));
	if (server == NULL || agent == NULL) {
		json_decref(j);
		link_fail(CLOSE_PROTOCOL, "malformed OPEN");
		return;
	}
	if (u32map_get(&L.sessions, f->stream) != NULL ||
	    mux_stream_add(L.mux, f->stream) != 0) {
		mux_send_code(L.mux, FRAME_OPEN_ERR, f->stream, CLOSE_LIMIT,
		    "stream id in use or too many streams");
		json_decref(j);
		return;
	}
	list = json_object_get(j, "servers");
	if (json_is_array(list)) {
		n = json_array_size(list);
		servers = xcalloc(n ? n : 1, sizeof(*servers));
		json_array_foreach(list, i, v)
			servers[i] = json_is_string(v) ? json_string_value(v) : "";
	}
	/* The agent's server patterns, for servers a reload adds later. */
	list = json_object_get(j, "allow");
	if (json_is_array(list)) {
		nallow = json_array_size(list);
		allow = xcalloc(nallow ? nallow : 1, sizeof(*allow));
		json_array_foreach(list, i, v)
			allow[i] = json_is_string(v) ?
			    json_string_value(v) : "";
	}
	why[0] = '\0';
	code = session_open(f->stream, server, agent, servers, n, allow,
	    nallow, &s, why, sizeof(why));
	if (code != 0 || s == NULL) {
		log_info("stream %u: agent %s asked for server \"%s\": refused "
		    "(%s)", f->stream, agent, server, why[0] ? why :
		    close_code_str((unsigned)code));
		mux_stream_remove(L.mux, f->stream);
		mux_send_code(L.mux, FRAME_OPEN_ERR, f->stream,
		    (uint16_t)(code > 0 ? code : CLOSE_INTERNAL),
		    why[0] ? why : close_code_str((unsigned)code));
	} else {
		u32map_put(&L.sessions, f->stream, s);
		mux_send_control(L.mux, FRAME_OPEN_OK, f->stream, "{}", 2);
		log_debug("stream %u: agent %s opened server %s", f->stream,
		    agent, server);
	}
	free(servers);
	free(allow);
	json_decref(j);
}

static int
resume_has(const json_t *arr, uint32_t id)
{
	size_t i;
	const json_t *v;

	json_array_foreach(arr, i, v)
		if (json_is_integer(v) && json_integer_value(v) == id)
			return 1;
	return 0;
}

static void
link_welcome(const struct frame *f)
{
	json_t *j, *v, *resume;
	size_t pos = 0, kept = 0;
	uint32_t id;
	void *s;

	j = json_loadb((const char *)f->payload, f->len, 0, NULL);
	v = json_object_get(j, "version");
	if (!json_is_integer(v) || json_integer_value(v) != MT_PROTO_VERSION) {
		log_warnx("relay speaks protocol version %lld, this client %d",
		    json_is_integer(v) ? (long long)json_integer_value(v) : -1LL,
		    MT_PROTO_VERSION);
		json_decref(j);
		link_fail(CLOSE_VERSION, "unsupported protocol version");
		return;
	}
	v = json_object_get(j, "window");
	if (json_is_integer(v) && json_integer_value(v) >= 65536 &&
	    json_integer_value(v) <= (1LL << 30))
		mux_set_peer_window(L.mux, (uint32_t)json_integer_value(v));
	v = json_object_get(j, "chunk");
	if (json_is_integer(v) && json_integer_value(v) >= MUX_PEER_CHUNK_MIN &&
	    json_integer_value(v) <= MUX_PEER_CHUNK_MAX)
		mux_set_peer_chunk(L.mux, (size_t)json_integer_value(v), 1);
	v = json_object_get(j, "max_message");
	if (json_is_integer(v) && json_integer_value(v) >= MUX_PEER_CHUNK_MIN)
		mux_set_peer_max_message(L.mux, (size_t)json_integer_value(v));
	resume = json_object_get(j, "resume");
	while (u32map_next(&L.sessions, &pos, &id, &s)) {
		if (json_is_array(resume) && resume_has(resume, id))
			kept++;
		else
			link_close_session(id);
	}
	json_decref(j);
	L.ready = 1;
	backoff_reset(&L.bo);
	lws_sul_cancel(&L.sul_grace);
	log_info("link to %s up (%zu session(s) resumed)", L.url, kept);
}

static void
link_on_control(void *arg, const struct frame *f)
{
	const char *text = "";
	size_t tlen = 0;
	uint16_t code = 0;

	if (!L.ready && f->type != FRAME_WELCOME && f->type != FRAME_CLOSE &&
	    f->type != FRAME_PING) {
		link_fail(CLOSE_PROTOCOL, "the first frame must be WELCOME");
		return;
	}
	switch (f->type) {
	case FRAME_WELCOME:
		if (L.ready) {
			link_fail(CLOSE_PROTOCOL, "second WELCOME");
			break;
		}
		link_welcome(f);
		break;
	case FRAME_OPEN:
		link_open(f);
		break;
	case FRAME_CLOSE:
		if (frame_get_code_text(f, &code, &text, &tlen) != 0)
			break;
		if (f->stream == 0) {
			log_warnx("relay closed the link: %.*s (%s)", (int)tlen,
			    text, close_code_str(code));
			if (code == CLOSE_AUTH || code == CLOSE_VERSION)
				L.attempts += 3;	/* back off harder */
			link_fail(CLOSE_NORMAL, "");
			break;
		}
		link_close_session(f->stream);
		break;
	case FRAME_GOAWAY:
		if (frame_get_code_text(f, &code, &text, &tlen) != 0)
			break;
		log_info("relay going away (%.*s); reconnecting", (int)tlen,
		    text);
		link_fail(CLOSE_NORMAL, "");
		break;
	case FRAME_PING:
		mux_send_control(L.mux, FRAME_PONG, 0, f->payload, f->len);
		break;
	case FRAME_PONG:
		break;
	default:
		log_warnx("unexpected %s frame from the relay",
		    frame_type_name(f->type));
		link_fail(CLOSE_PROTOCOL, "unexpected frame type");
		break;
	}
	link_want_write();
}

/* ---- HELLO and catalog -------------------------------------------------- */

static json_t *
catalog_json(void)
{
	const struct client_conf *c = client_conf_current();
	json_t *arr = json_array();
	size_t i;

	for (i = 0; i < c->nservers; i++)
		json_array_append_new(arr, json_pack("{s:s}", "name",
		    c->servers[i].name));
	return arr;
}

static void
link_send_hello(void)
{
	const struct client_conf *c = client_conf_current();
	json_t *hello, *resume = json_array();
	size_t pos = 0;
	uint32_t id;
	void *s;
	char *text;

	while (u32map_next(&L.sessions, &pos, &id, &s))
		json_array_append_new(resume, json_integer(id));
	hello = json_pack("{s:i, s:s, s:s, s:I, s:I, s:I, s:o, s:o}",
	    "version", MT_PROTO_VERSION,
	    "tunnel", c->relay.tunnel,
	    "client", "mcptun-client/" MCPTUN_VERSION,
	    "window", (json_int_t)c->limits.window,
	    "chunk", (json_int_t)c->limits.chunk,
	    "max_message", (json_int_t)c->limits.max_message,
	    "catalog", catalog_json(),
	    "resume", resume);
	text = json_dumps(hello, JSON_COMPACT);
	json_decref(hello);
	if (text == NULL)
		fatalx("out of memory building HELLO");
	mux_send_control(L.mux, FRAME_HELLO, 0, text, strlen(text));
	free(text);
	link_want_write();
}

void
link_catalog_changed(void)
{
	json_t *j;
	char *text;

	if (L.wsi == NULL || !L.ready)
		return;		/* the next HELLO carries it */
	j = json_pack("{s:o}", "catalog", catalog_json());
	text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (text == NULL)
		return;
	mux_send_control(L.mux, FRAME_CATALOG, 0, text, strlen(text));
	free(text);
	link_want_write();
}

/* ---- connection ------------------------------------------------------- */

static void
link_ping(lws_sorted_usec_list_t *sul)
{
	uint64_t now = now_ms();
	uint8_t p[8];

	if (L.wsi == NULL)
		return;
	if (now - L.last_rx_ms > limits()->ping_interval_ms +
	    limits()->ping_timeout_ms) {
		log_warnx("relay silent for %llu ms; the link is dead, "
		    "reconnecting", (unsigned long long)(now - L.last_rx_ms));
		lws_set_timeout(L.wsi, PENDING_TIMEOUT_USER_OK,
		    LWS_TO_KILL_ASYNC);
		return;
	}
	memcpy(p, &now, sizeof(p));
	mux_send_control(L.mux, FRAME_PING, 0, p, sizeof(p));
	link_want_write();
	lws_sul_schedule(lws_get_context(L.wsi), 0, &L.sul_ping, link_ping,
	    (lws_usec_t)limits()->ping_interval_ms * LWS_US_PER_MS);
}

/*
 * Dials the relay at address, a numeric one the relay's host name
 * resolved to (NULL: the url's host, itself numeric).  The name stays in
 * the Host header, the SNI and the certificate check.
 */
static void
link_dial(const char *address)
{
	const struct client_conf *c = client_conf_current();
	struct lws_client_connect_info i;
	const char *proto, *addr, *path;
	char *u, pathbuf[512];
	int port;

	u = xstrdup(c->relay.url);
	if (lws_parse_uri(u, &proto, &addr, &port, &path) != 0) {
		log_errorx("cannot parse relay url %s", c->relay.url);
		free(u);
		link_schedule_connect(0);
		return;
	}
	snprintf(pathbuf, sizeof(pathbuf), "/%s", path);
	memset(&i, 0, sizeof(i));
	i.context = client_context();
	i.vhost = client_vhost();
	i.address = address != NULL ? address : addr;
	i.port = port;
	i.path = pathbuf;
	i.host = addr;
	i.origin = addr;
	i.protocol = MT_SUBPROTOCOL;
	i.local_protocol_name = MT_SUBPROTOCOL;
	i.ssl_connection = strcmp(proto, "wss") == 0 ? LCCSCF_USE_SSL : 0;
	i.pwsi = &L.connecting;
	L.tls_up = 0;
	L.reached = 0;
	log_debug("connecting to %s%s%s (attempt %llu)", c->relay.url,
	    address != NULL ? " at " : "", address != NULL ? address : "",
	    (unsigned long long)L.attempts);
	if (lws_client_connect_via_info(&i) == NULL) {
		L.connecting = NULL;
		log_warnx("cannot start a connection to %s", c->relay.url);
		link_schedule_connect(0);
	}
	free(u);
}

/* The relay's host name resolved (or not): dial, or count a failure. */
static void
link_resolved(void *arg, const struct resolve_result *res)
{
	(void)arg;
	L.lookup = NULL;
	if (L.stopping || L.wsi != NULL || L.connecting != NULL)
		return;
	if (res->error != NULL) {
		log_warnx("cannot connect to %s: cannot resolve its host "
		    "name: %s", L.url, res->error);
		L.untried = 0;
		link_schedule_connect(0);
		return;
	}
	/*
	 * Attempts take the addresses in turn, so a dead one is passed;
	 * within a round, one that cannot be reached is followed by the
	 * next at once, as lws does with the names it resolves itself.
	 */
	if (L.untried == 0 || L.untried > res->n)
		L.untried = res->n;
	L.untried--;
	link_dial(res->addr[L.turn++ % res->n]);
}

/* An attempt failed: the relay's next address now, or back off. */
static void
link_attempt_failed(void)
{
	if (L.untried > 0 && !L.reached) {
		link_schedule_connect(1);
		return;
	}
	L.untried = 0;
	link_schedule_connect(0);
}

/*
 * Starts an attempt: a host name is resolved first, off the event loop
 * (a slow DNS server must not stall the sessions and their link).
 */
static void
link_connect(lws_sorted_usec_list_t *sul)
{
	const struct client_conf *c = client_conf_current();
	const char *proto, *addr, *path;
	char *u;
	int port, r;

	if (L.stopping || L.wsi != NULL || L.connecting != NULL ||
	    L.lookup != NULL)
		return;
	L.attempts++;
	u = xstrdup(c->relay.url);
	if (lws_parse_uri(u, &proto, &addr, &port, &path) != 0 ||
	    resolve_is_numeric(addr)) {
		free(u);
		link_dial(NULL);	/* which says what is wrong with it */
		return;
	}
	if ((r = resolve_start(addr, link_resolved, NULL, &L.lookup)) != 0) {
		log_warnx("cannot connect to %s: cannot resolve its host "
		    "name: %s", L.url, mt_strerror(r));
		link_schedule_connect(0);
	} else
		log_debug("resolving %s (attempt %llu)", addr,
		    (unsigned long long)L.attempts);
	free(u);
}

static void
link_schedule_connect(int fast)
{
	uint64_t d;

	if (L.stopping)
		return;
	d = fast ? 0 : backoff_next(&L.bo);
	if (!fast)
		log_info("reconnecting to %s in %.1f s", L.url, (double)d / 1000);
	lws_sul_schedule(client_context(), 0,
	    &L.sul_connect, link_connect, (lws_usec_t)d * LWS_US_PER_MS);
}

/* The link is gone: keep sessions for the grace period, reconnect. */
static void
link_down(int was_ready)
{
	L.wsi = NULL;
	L.ready = 0;
	L.closing = 0;
	buf_reset(&L.rx);
	lws_sul_cancel(&L.sul_ping);
	mux_link_reset(L.mux);
	if (L.stopping)
		return;
	if (L.sessions.count > 0)
		lws_sul_schedule(client_context(), 0,
		    &L.sul_grace, link_grace_expired,
		    (lws_usec_t)limits()->resume_grace_ms * LWS_US_PER_MS);
	link_schedule_connect(0);
}

static int
link_write(struct lws *wsi)
{
	uint8_t buf[LWS_PRE + FRAME_HDR_LEN + 128];
	size_t len;
	int r;

	if (L.closing) {
		if (L.close_code != CLOSE_NORMAL || L.close_text[0]) {
			uint8_t pl[2 + 96];
			size_t pn = frame_put_code_text(pl, sizeof(pl),
			    L.close_code, L.close_text);

			len = frame_encode(buf + LWS_PRE, sizeof(buf) - LWS_PRE,
			    FRAME_CLOSE, 0, 0, pl, (uint32_t)pn);
			lws_write(wsi, buf + LWS_PRE, len, LWS_WRITE_BINARY);
		}
		lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
		return -1;
	}
	r = mux_next_frame(L.mux, L.txbuf + LWS_PRE, L.txcap, &len);
	if (r == MT_EAGAIN)
		return 0;
	if (r != 0)
		return -1;
	if (lws_write(wsi, L.txbuf + LWS_PRE, len, LWS_WRITE_BINARY) <
	    (int)len) {
		log_warnx("write to the relay failed");
		return -1;
	}
	if (mux_has_output(L.mux))
		lws_callback_on_writable(wsi);
	return 0;
}

static int
link_receive(struct lws *wsi, const void *in, size_t len)
{
	int code = CLOSE_PROTOCOL, r;

	if (L.closing)
		return 0;
	if (!lws_frame_is_binary(wsi)) {
		link_fail(CLOSE_PROTOCOL, "text frame on the link");
		return 0;
	}
	if (buf_append(&L.rx, in, len) != 0) {
		link_fail(CLOSE_TOO_BIG, "frame too large");
		return 0;
	}
	if (!lws_is_final_fragment(wsi))
		return 0;
	L.last_rx_ms = now_ms();
	r = mux_input(L.mux, buf_ptr(&L.rx), buf_len(&L.rx), &code);
	buf_reset(&L.rx);
	if (r != 0) {
		log_warnx("bad frame from the relay: %s; closing the link",
		    mt_strerror(r));
		link_fail((uint16_t)code, mt_strerror(r));
		return 0;
	}
	link_want_write();
	return 0;
}

/*
 * Checks the relay certificate's public key against relay.pin_sha256
 * (SHA-256 of the DER SubjectPublicKeyInfo, as HPKP and curl's
 * --pinnedpubkey use).  Called before the handshake headers go out, so a
 * relay with a CA-valid certificate but the wrong key never sees the
 * token.  Returns 0 if there is no pin or it matches.
 */
static int
link_check_pin(struct lws *wsi)
{
	const struct client_conf *c = client_conf_current();
	union lws_tls_cert_info_results *r = NULL;
	mbedtls_x509_crt crt;
	unsigned char spki[2048], h[32];
	size_t cap = 8192;
	int n, rc = -1;

	if (!c->relay.has_pin)
		return 0;
	mbedtls_x509_crt_init(&crt);
	r = xmalloc(sizeof(*r) + cap);
	if (lws_tls_peer_cert_info(wsi, LWS_TLS_CERT_INFO_DER_RAW, r,
	    cap + sizeof(r->ns.name)) != 0) {
		log_warnx("relay pin: cannot read the relay's certificate");
		goto out;
	}
	if (mbedtls_x509_crt_parse_der(&crt, (const unsigned char *)r->ns.name,
	    (size_t)r->ns.len) != 0) {
		log_warnx("relay pin: cannot parse the relay's certificate");
		goto out;
	}
	/* mbedtls writes the DER at the end of the buffer. */
	n = mbedtls_pk_write_pubkey_der(&crt.pk, spki, sizeof(spki));
	if (n <= 0 || mbedtls_sha256(spki + sizeof(spki) - n, (size_t)n, h,
	    0) != 0) {
		log_warnx("relay pin: cannot hash the relay's public key");
		goto out;
	}
	if (!ct_equal(h, c->relay.pin, sizeof(h))) {
		log_errorx("relay pin: the relay's public key does not match "
		    "relay.pin_sha256; refusing to send the token");
		goto out;
	}
	rc = 0;
 out:
	mbedtls_x509_crt_free(&crt);
	free(r);
	return rc;
}

/*
 * Logs why a connection attempt failed.  A relay that refuses our client
 * certificate makes the TLS handshake fail or, with TLS 1.3, where the
 * client finishes first, closes the connection before any HTTP answer,
 * as it does for a wrong tunnel token or while it shuts down; lws reports
 * all of these as a bare "mbedtls connect" or read failure.  The relay
 * logs the last two but cannot log a refused certificate, so name it.
 */
static void
link_log_connect_error(const char *in)
{
	const struct client_conf *c = client_conf_current();
	const char *why = in != NULL ? in : "connection failed", *what;

	if (L.tls_up && (strcmp(why, "read failed") == 0 ||
	    strcmp(why, "Closed before conn") == 0))
		what = "the relay closed the connection";
	else if (strncmp(why, "mbedtls connect", 15) == 0)
		what = "the TLS handshake failed";
	else {
		log_warnx("cannot connect to %s: %s", L.url, why);
		return;
	}
	if (c->relay.client_cert == NULL)
		log_warnx("cannot connect to %s: %s (%s); if the relay "
		    "requires client certificates (tls.client_ca), set "
		    "relay.client_cert and relay.client_key; a wrong token "
		    "or a relay shutting down shows in the relay's log",
		    L.url, what, why);
	else
		log_warnx("cannot connect to %s: %s (%s); if the relay "
		    "requires client certificates, it did not accept %s "
		    "(issued by another CA than its tls.client_ca, or "
		    "expired?); a wrong token or a relay shutting down shows "
		    "in the relay's log", L.url, what, why,
		    c->relay.client_cert);
}

static int
link_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	const struct client_conf *c;
	char hdr[600];
	unsigned char **p, *end;
	int was;

	switch (reason) {
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
		c = client_conf_current();
		if (lws_is_ssl(wsi) && link_check_pin(wsi) != 0)
			return -1;
		L.tls_up = lws_is_ssl(wsi);
		L.reached = 1;
		p = (unsigned char **)in;
		end = (*p) + len;
		snprintf(hdr, sizeof(hdr), "Bearer %s", c->relay.token);
		if (lws_add_http_header_by_token(wsi,
		    WSI_TOKEN_HTTP_AUTHORIZATION, (unsigned char *)hdr,
		    (int)strlen(hdr), p, end)) {
			explicit_wipe(hdr, sizeof(hdr));
			return -1;
		}
		explicit_wipe(hdr, sizeof(hdr));
		return 0;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		L.connecting = NULL;
		link_log_connect_error(in);
		if (L.wsi == NULL)
			link_attempt_failed();
		return 0;
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		L.connecting = NULL;
		L.untried = 0;
		L.wsi = wsi;
		L.ready = 0;
		L.closing = 0;
		L.last_rx_ms = now_ms();
		sock_limit_unsent(lws_get_socket_fd(wsi), LINK_UNSENT_MAX);
		c = client_conf_current();
		buf_free(&L.rx);
		buf_init(&L.rx, FRAME_HDR_LEN + (c->limits.chunk >
		    FRAME_MAX_CONTROL ? c->limits.chunk : FRAME_MAX_CONTROL));
		log_debug("connected to %s; sending HELLO", L.url);
		link_send_hello();
		lws_sul_schedule(lws_get_context(wsi), 0, &L.sul_ping,
		    link_ping, (lws_usec_t)limits()->ping_interval_ms *
		    LWS_US_PER_MS);
		return 0;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		if (wsi != L.wsi)
			return -1;
		return link_receive(wsi, in, len);
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		if (wsi != L.wsi)
			return -1;
		return link_write(wsi);
	case LWS_CALLBACK_CLIENT_CLOSED:
		if (wsi != L.wsi)
			return 0;
		was = L.ready;
		log_warnx("link to %s closed", L.url);
		link_down(was);
		return 0;
	case LWS_CALLBACK_WSI_DESTROY:
		/*
		 * Every wsi ends here (link_protocol is protocols[0]).  lws
		 * drops an attempt without CONNECTION_ERROR when a write
		 * fails during the handshake (EPIPE: a relay that refused
		 * our certificate closed first), and never clears
		 * L.connecting, which would block every later attempt.
		 */
		if (wsi != L.connecting)
			return 0;
		L.connecting = NULL;
		link_log_connect_error("Closed before conn");
		if (L.wsi == NULL)
			link_attempt_failed();
		return 0;
	default:
		break;
	}
	return 0;
}

const struct lws_protocols link_protocol = {
	.name = MT_SUBPROTOCOL,
	.callback = link_callback,
	.per_session_data_size = 0,
	.rx_buffer_size = 128 * 1024,
};

void
link_start(void)
{
	const struct client_conf *c = client_conf_current();
	struct mux_limits lim;
	struct mux_callbacks cb = { .on_message = link_on_message,
	    .on_control = link_on_control, .on_drain = link_on_drain,
	    .on_link_drain = link_on_link_drain };

	memset(&L, 0, sizeof(L));
	mux_limits_default(&lim);
	lim.chunk = (uint32_t)c->limits.chunk;
	lim.window = (uint32_t)c->limits.window;
	lim.max_msg = c->limits.max_message;
	lim.budget = c->limits.link_budget;
	L.mux = mux_new(&lim, &cb, NULL);
	mux_set_data_max(L.mux, mux_data_fit(lim.chunk, 1));
	u32map_init(&L.sessions);
	L.txcap = mux_frame_cap(L.mux);
	L.txbuf = xmalloc(LWS_PRE + L.txcap);
	L.url = xstrdup(c->relay.url);
	buf_init(&L.rx, FRAME_HDR_LEN + FRAME_MAX_CONTROL);
	backoff_init(&L.bo, c->limits.reconnect_min_ms,
	    c->limits.reconnect_max_ms);
	link_schedule_connect(1);
}

void
link_stop(void)
{
	L.stopping = 1;
	resolve_cancel(L.lookup);
	L.lookup = NULL;
	lws_sul_cancel(&L.sul_connect);
	lws_sul_cancel(&L.sul_grace);
	lws_sul_cancel(&L.sul_ping);
	link_close_all_sessions();
	if (L.wsi != NULL)
		link_fail(CLOSE_SHUTDOWN, "client shutting down");
}

void
link_free(void)
{
	resolve_cancel(L.lookup);
	L.lookup = NULL;
	link_close_all_sessions();
	u32map_free(&L.sessions);
	mux_free(L.mux);
	buf_free(&L.rx);
	free(L.txbuf);
	free(L.url);
	memset(&L, 0, sizeof(L));
}

int
link_is_up(void)
{
	return L.ready;
}
