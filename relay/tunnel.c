/*
 * The relay's end of the tunnel links (/tunnel, subprotocol mcptun.1).
 *
 * Each configured tunnel has one struct tunnel for as long as it is
 * configured.  A client link (a WebSocket connection) attaches to it after
 * authenticating with the tunnel's token and sending HELLO; a newer link
 * for the same tunnel replaces the old one.  The tunnel's mux and its
 * streams outlive a link: when the link drops, agent sessions wait up to
 * resume_grace for the client to come back and re-attach their streams
 * (PROTOCOL.md, "Resumption"); after that their owners get on_close.
 *
 * Writes follow the lws rule of one lws_write per WRITEABLE callback: the
 * mux hands out one frame at a time and we ask for another callback while
 * it has more.
 */
#include <libwebsockets.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <mbedtls/oid.h>
#include <mbedtls/x509_crt.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/token.h"
#include "common/u32map.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "proto/frame.h"
#include "proto/mux.h"
#include "relay/relay.h"
#include "relay/relay_conf.h"

struct tstream {
	uint32_t		 id;
	const struct tstream_ops *ops;
	void			*arg;
	int			 opened;	/* OPEN_OK seen */
};

struct tunnel {
	char			*name;
	struct tunnel		*next;
	int			 configured;	/* seen in the latest config */

	struct lws		*wsi;		/* current link, NULL if none */
	int			 ready;		/* HELLO/WELCOME done */
	struct mux		*mux;
	struct u32map		 streams;	/* id -> struct tstream */
	uint32_t		 next_id;
	char			**catalog;
	size_t			 ncatalog;

	uint64_t		 last_rx_ms;
	lws_sorted_usec_list_t	 sul_ping;
	lws_sorted_usec_list_t	 sul_grace;
	uint8_t			*txbuf;		/* LWS_PRE + frame cap */
	size_t			 txcap;
};

/* Per-connection data of a link. */
struct link_pss {
	struct tunnel		*t;		/* NULL until attached */
	struct tunnel		*authed;	/* tunnel the token is for */
	struct buf		 rx;		/* one WebSocket message */
	int			 closing;
	uint16_t		 close_code;
	char			 close_text[96];
};

static struct tunnel *tunnels;
static struct tunnel_stats stats;
static int draining;		/* shutting down: no new links */
/* tunnel_listen: links only on this vhost (NULL: any), with a cert? */
static struct lws_vhost *link_vhost;
static int link_need_cert;

static void tunnel_link_detach(struct tunnel *t);

struct tunnel *
tunnel_find(const char *name)
{
	struct tunnel *t;

	for (t = tunnels; t != NULL; t = t->next)
		if (strcmp(t->name, name) == 0)
			return t;
	return NULL;
}

int
tunnel_online(const struct tunnel *t)
{
	return t->wsi != NULL && t->ready;
}

int
tunnel_has_server(const struct tunnel *t, const char *server)
{
	size_t i;

	for (i = 0; i < t->ncatalog; i++)
		if (strcmp(t->catalog[i], server) == 0)
			return 1;
	return 0;
}

size_t
tunnel_catalog_count(const struct tunnel *t)
{
	return t->ncatalog;
}

const char *
tunnel_catalog_name(const struct tunnel *t, size_t i)
{
	return i < t->ncatalog ? t->catalog[i] : NULL;
}

void
tunnel_get_stats(struct tunnel_stats *st)
{
	struct tunnel *t;

	stats.links_up = 0;
	stats.streams = 0;
	for (t = tunnels; t != NULL; t = t->next) {
		if (tunnel_online(t))
			stats.links_up++;
		stats.streams += t->streams.count;
	}
	*st = stats;
}

/*
 * With tls.client_ca a refused client certificate fails the handshake
 * inside lws' mbedTLS glue, which tells no callback; nor does a client
 * that does not trust the relay's certificate.  All the relay sees is a
 * connection that ends before its request, which a TCP probe also is:
 * so one line at most every EARLY_CLOSE_LOG_MS, with the count.
 */
#define EARLY_CLOSE_LOG_MS	60000

void
tunnel_note_early_close(const char *peer)
{
	static uint64_t last_ms, unlogged;
	uint64_t now = now_ms();
	char more[64] = "";

	stats.early_closes++;
	unlogged++;
	if (last_ms != 0 && now - last_ms < EARLY_CLOSE_LOG_MS)
		return;
	if (unlogged > 1)
		snprintf(more, sizeof(more), " (%" PRIu64 " such since the "
		    "last line)", unlogged);
	log_warnx("tunnel port: a connection from %s ended before its "
	    "request%s: a failed TLS handshake (%sthe client does not trust "
	    "this relay's certificate) or a TCP probe", peer, more,
	    link_need_cert ? "no client certificate, one tls.client_ca did "
	    "not issue, or " : "");
	last_ms = now;
	unlogged = 0;
}

static void
tunnel_want_write(struct tunnel *t)
{
	if (t->wsi != NULL && mux_has_output(t->mux))
		lws_callback_on_writable(t->wsi);
}

static void
catalog_free(struct tunnel *t)
{
	size_t i;

	for (i = 0; i < t->ncatalog; i++)
		free(t->catalog[i]);
	free(t->catalog);
	t->catalog = NULL;
	t->ncatalog = 0;
}

/* Replaces the catalog from a JSON array of {"name": ...}; 0 or MT_E*. */
static int
catalog_set(struct tunnel *t, const json_t *arr)
{
	size_t i, n;
	const json_t *e, *name;

	if (!json_is_array(arr))
		return MT_EMALFORMED;
	n = json_array_size(arr);
	for (i = 0; i < n; i++) {
		e = json_array_get(arr, i);
		name = json_is_object(e) ? json_object_get(e, "name") : e;
		if (!json_is_string(name) || json_string_length(name) == 0 ||
		    json_string_length(name) > 64)
			return MT_EMALFORMED;
	}
	catalog_free(t);
	t->catalog = xcalloc(n ? n : 1, sizeof(*t->catalog));
	for (i = 0; i < n; i++) {
		e = json_array_get(arr, i);
		name = json_is_object(e) ? json_object_get(e, "name") : e;
		t->catalog[i] = xstrdup(json_string_value(name));
	}
	t->ncatalog = n;
	return 0;
}

/* Ends one stream towards its owner and forgets it. */
static void
tstream_end(struct tunnel *t, struct tstream *ts, uint16_t code,
    const char *text)
{
	const struct tstream_ops *ops = ts->ops;
	void *arg = ts->arg;
	uint32_t id = ts->id;

	u32map_del(&t->streams, id);
	mux_stream_remove(t->mux, id);
	free(ts);
	if (ops->on_close != NULL)
		ops->on_close(arg, code, text);
}

/* Ends every stream of t (link gone for good, tunnel removed). */
static void
tunnel_end_streams(struct tunnel *t, uint16_t code, const char *text)
{
	size_t pos = 0;
	uint32_t id;
	void *v;

	while (u32map_next(&t->streams, &pos, &id, &v))
		tstream_end(t, v, code, text);
}

static void
tunnel_grace_expired(lws_sorted_usec_list_t *sul)
{
	struct tunnel *t = lws_container_of(sul, struct tunnel, sul_grace);

	if (t->wsi != NULL)
		return;
	if (t->streams.count > 0)
		log_info("tunnel %s: client did not come back; ending %zu "
		    "session(s)", t->name, t->streams.count);
	tunnel_end_streams(t, CLOSE_UPSTREAM, "the tunnel's client is offline");
}

static void
tunnel_ping(lws_sorted_usec_list_t *sul)
{
	struct tunnel *t = lws_container_of(sul, struct tunnel, sul_ping);
	const struct relay_conf *conf = relay_conf_current();
	uint64_t now = now_ms();
	uint8_t p[8];

	if (t->wsi == NULL)
		return;
	if (now - t->last_rx_ms > conf->limits.ping_interval_ms +
	    conf->limits.ping_timeout_ms) {
		log_warnx("tunnel %s: link silent for %llu ms; closing it",
		    t->name, (unsigned long long)(now - t->last_rx_ms));
		lws_set_timeout(t->wsi, PENDING_TIMEOUT_USER_OK,
		    LWS_TO_KILL_ASYNC);
		tunnel_link_detach(t);
		return;
	}
	memcpy(p, &now, sizeof(p));
	mux_send_control(t->mux, FRAME_PING, 0, p, sizeof(p));
	tunnel_want_write(t);
	lws_sul_schedule(relay_context(), 0, &t->sul_ping, tunnel_ping,
	    (lws_usec_t)conf->limits.ping_interval_ms * LWS_US_PER_MS);
}

/* The link of t is gone (closed or replaced); start the grace period. */
static void
tunnel_link_detach(struct tunnel *t)
{
	struct link_pss *pss;

	if (t->wsi == NULL)
		return;
	pss = lws_wsi_user(t->wsi);
	if (pss != NULL)
		pss->t = NULL;
	t->wsi = NULL;
	t->ready = 0;
	lws_sul_cancel(&t->sul_ping);
	mux_link_reset(t->mux);
	log_info("tunnel %s: link down; %zu session(s) wait %llu ms for it",
	    t->name, t->streams.count,
	    (unsigned long long)relay_conf_current()->limits.resume_grace_ms);
	lws_sul_schedule(relay_context(), 0, &t->sul_grace,
	    tunnel_grace_expired,
	    (lws_usec_t)relay_conf_current()->limits.resume_grace_ms *
	    LWS_US_PER_MS);
}

/* Asks lws to close wsi after sending CLOSE(code, text) on stream 0. */
static void
link_fail(struct lws *wsi, struct link_pss *pss, uint16_t code,
    const char *text)
{
	if (pss->closing)
		return;
	pss->closing = 1;
	pss->close_code = code;
	snprintf(pss->close_text, sizeof(pss->close_text), "%s", text);
	lws_callback_on_writable(wsi);
}

static void
tunnel_on_message(void *arg, uint32_t id, const uint8_t *data, size_t len)
{
	struct tunnel *t = arg;
	struct tstream *ts = u32map_get(&t->streams, id);

	stats.bytes_from_client += len;
	if (ts != NULL && ts->ops->on_message != NULL)
		ts->ops->on_message(ts->arg, data, len);
}

static json_t *
resume_list(const json_t *hello_resume, struct tunnel *t)
{
	json_t *kept = json_array();
	size_t i;
	const json_t *v;

	json_array_foreach(hello_resume, i, v) {
		if (json_is_integer(v) && json_integer_value(v) > 0 &&
		    json_integer_value(v) <= UINT32_MAX &&
		    u32map_get(&t->streams, (uint32_t)json_integer_value(v)))
			json_array_append_new(kept, json_integer(
			    json_integer_value(v)));
	}
	return kept;
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

/* HELLO from the client: check it, answer WELCOME, re-attach streams. */
static int
tunnel_hello(struct tunnel *t, const struct frame *f)
{
	const struct relay_conf *conf = relay_conf_current();
	json_t *hello = NULL, *welcome = NULL, *kept = NULL, *resume;
	json_t *v;
	json_error_t je;
	char *text = NULL;
	size_t pos = 0;
	uint32_t id;
	void *ts;
	int r = MT_EMALFORMED;

	hello = json_loadb((const char *)f->payload, f->len, 0, &je);
	if (!json_is_object(hello)) {
		log_warnx("tunnel %s: HELLO is not a JSON object", t->name);
		goto out;
	}
	v = json_object_get(hello, "version");
	if (!json_is_integer(v) || json_integer_value(v) != MT_PROTO_VERSION) {
		log_warnx("tunnel %s: client speaks protocol version %lld, "
		    "relay speaks %d", t->name, json_is_integer(v) ?
		    (long long)json_integer_value(v) : -1LL, MT_PROTO_VERSION);
		r = MT_EVERSION;
		goto out;
	}
	v = json_object_get(hello, "tunnel");
	if (v != NULL && (!json_is_string(v) ||
	    strcmp(json_string_value(v), t->name) != 0)) {
		log_warnx("tunnel %s: HELLO names tunnel \"%s\", but the token "
		    "is for \"%s\"", t->name, json_is_string(v) ?
		    json_string_value(v) : "?", t->name);
		r = MT_EAUTH;
		goto out;
	}
	if (catalog_set(t, json_object_get(hello, "catalog")) != 0) {
		log_warnx("tunnel %s: HELLO has no valid catalog", t->name);
		goto out;
	}
	v = json_object_get(hello, "window");
	if (json_is_integer(v) && json_integer_value(v) >= 65536 &&
	    json_integer_value(v) <= (1LL << 30))
		mux_set_peer_window(t->mux, (uint32_t)json_integer_value(v));
	v = json_object_get(hello, "chunk");
	if (json_is_integer(v) && json_integer_value(v) >= MUX_PEER_CHUNK_MIN &&
	    json_integer_value(v) <= MUX_PEER_CHUNK_MAX)
		mux_set_peer_chunk(t->mux, (size_t)json_integer_value(v), 0);
	v = json_object_get(hello, "max_message");
	if (json_is_integer(v) && json_integer_value(v) >= MUX_PEER_CHUNK_MIN)
		mux_set_peer_max_message(t->mux, (size_t)json_integer_value(v));

	resume = json_object_get(hello, "resume");
	kept = resume_list(json_is_array(resume) ? resume : NULL, t);
	/* Streams the client no longer has are over. */
	while (u32map_next(&t->streams, &pos, &id, &ts))
		if (!resume_has(kept, id))
			tstream_end(t, ts, CLOSE_UPSTREAM,
			    "the client restarted; the session is lost");

	welcome = json_pack("{s:i, s:I, s:I, s:I, s:I, s:o}",
	    "version", MT_PROTO_VERSION,
	    "window", (json_int_t)conf->limits.window,
	    "chunk", (json_int_t)conf->limits.chunk,
	    "max_message", (json_int_t)conf->limits.max_message,
	    "ping_interval_ms", (json_int_t)conf->limits.ping_interval_ms,
	    "resume", json_incref(kept));
	text = json_dumps(welcome, JSON_COMPACT);
	if (text == NULL) {
		r = MT_ENOMEM;
		goto out;
	}
	mux_send_control(t->mux, FRAME_WELCOME, 0, text, strlen(text));
	t->ready = 1;
	lws_sul_cancel(&t->sul_grace);
	log_info("tunnel %s: link up, %zu server(s) in catalog, %zu "
	    "session(s) resumed", t->name, t->ncatalog, json_array_size(kept));
	r = 0;
 out:
	free(text);
	json_decref(hello);
	json_decref(welcome);
	json_decref(kept);
	return r;
}

static void
tunnel_on_control(void *arg, const struct frame *f)
{
	struct tunnel *t = arg;
	struct link_pss *pss = t->wsi ? lws_wsi_user(t->wsi) : NULL;
	struct tstream *ts;
	const char *text = "";
	size_t tlen = 0;
	uint16_t code = 0;
	char msg[256];
	json_t *j;
	int r;

	if (pss == NULL)
		return;
	if (!t->ready && f->type != FRAME_HELLO) {
		link_fail(t->wsi, pss, CLOSE_PROTOCOL,
		    "the first frame must be HELLO");
		return;
	}
	switch (f->type) {
	case FRAME_HELLO:
		if (t->ready) {
			link_fail(t->wsi, pss, CLOSE_PROTOCOL, "second HELLO");
			return;
		}
		r = tunnel_hello(t, f);
		if (r == MT_EVERSION)
			link_fail(t->wsi, pss, CLOSE_VERSION,
			    "unsupported protocol version");
		else if (r == MT_EAUTH)
			link_fail(t->wsi, pss, CLOSE_AUTH,
			    "HELLO names another tunnel than the token's");
		else if (r != 0)
			link_fail(t->wsi, pss, CLOSE_PROTOCOL, "malformed HELLO");
		break;
	case FRAME_CATALOG:
		j = json_loadb((const char *)f->payload, f->len, 0, NULL);
		if (j == NULL || catalog_set(t,
		    json_object_get(j, "catalog")) != 0)
			link_fail(t->wsi, pss, CLOSE_PROTOCOL,
			    "malformed CATALOG");
		else
			log_info("tunnel %s: catalog now has %zu server(s)",
			    t->name, t->ncatalog);
		json_decref(j);
		break;
	case FRAME_OPEN_OK:
		if ((ts = u32map_get(&t->streams, f->stream)) != NULL &&
		    !ts->opened) {
			ts->opened = 1;
			if (ts->ops->on_open != NULL)
				ts->ops->on_open(ts->arg, 1, 0, "");
		}
		break;
	case FRAME_OPEN_ERR:
	case FRAME_CLOSE:
		if (frame_get_code_text(f, &code, &text, &tlen) != 0)
			break;
		snprintf(msg, sizeof(msg), "%.*s", (int)tlen, text);
		if (f->stream == 0) {
			log_warnx("tunnel %s: client closed the link: %s (%s)",
			    t->name, msg, close_code_str(code));
			/*
			 * A client that leaves on purpose has ended its
			 * upstream sessions: nothing will come back to
			 * resume, so the agents hear it now, not after the
			 * grace period (PROTOCOL.md, "Resumption").
			 */
			if (code == CLOSE_NORMAL || code == CLOSE_SHUTDOWN)
				tunnel_end_streams(t, CLOSE_SHUTDOWN,
				    "the tunnel's client shut down");
			pss->closing = 1;
			pss->close_code = CLOSE_NORMAL;
			pss->close_text[0] = '\0';
			lws_callback_on_writable(t->wsi);
			break;
		}
		if ((ts = u32map_get(&t->streams, f->stream)) == NULL)
			break;
		if (f->type == FRAME_OPEN_ERR && !ts->opened) {
			const struct tstream_ops *ops = ts->ops;
			void *oarg = ts->arg;

			u32map_del(&t->streams, f->stream);
			mux_stream_remove(t->mux, f->stream);
			free(ts);
			if (ops->on_open != NULL)
				ops->on_open(oarg, 0, code, msg);
			break;
		}
		tstream_end(t, ts, code, msg);
		break;
	case FRAME_PING:
		mux_send_control(t->mux, FRAME_PONG, 0, f->payload, f->len);
		break;
	case FRAME_PONG:
		break;
	default:
		log_warnx("tunnel %s: unexpected %s frame from the client",
		    t->name, frame_type_name(f->type));
		link_fail(t->wsi, pss, CLOSE_PROTOCOL, "unexpected frame type");
		break;
	}
	tunnel_want_write(t);
}

static struct tunnel *
tunnel_new(const char *name)
{
	const struct relay_conf *conf = relay_conf_current();
	struct mux_limits lim;
	struct mux_callbacks cb = { .on_message = tunnel_on_message,
	    .on_control = tunnel_on_control };
	struct tunnel *t = xcalloc(1, sizeof(*t));

	t->name = xstrdup(name);
	mux_limits_default(&lim);
	lim.chunk = (uint32_t)conf->limits.chunk;
	lim.window = (uint32_t)conf->limits.window;
	lim.max_msg = conf->limits.max_message;
	lim.max_streams = (uint32_t)conf->limits.streams_per_link;
	lim.budget = conf->limits.link_budget;
	t->mux = mux_new(&lim, &cb, t);
	mux_set_data_max(t->mux, mux_data_fit(lim.chunk, 0));
	u32map_init(&t->streams);
	t->next_id = 1;
	t->txcap = mux_frame_cap(t->mux);
	t->txbuf = xmalloc(LWS_PRE + t->txcap);
	return t;
}

static void
tunnel_free(struct tunnel *t)
{
	if (t->wsi != NULL) {
		struct link_pss *pss = lws_wsi_user(t->wsi);

		link_fail(t->wsi, pss, CLOSE_SHUTDOWN, "tunnel removed");
		pss->t = NULL;
		t->wsi = NULL;
	}
	tunnel_end_streams(t, CLOSE_REMOVED, "the tunnel was removed");
	lws_sul_cancel(&t->sul_ping);
	lws_sul_cancel(&t->sul_grace);
	catalog_free(t);
	u32map_free(&t->streams);
	mux_free(t->mux);
	free(t->txbuf);
	free(t->name);
	free(t);
}

int
tunnel_configure(const struct relay_conf *conf)
{
	struct tunnel *t, **tp;
	size_t i;

	for (t = tunnels; t != NULL; t = t->next)
		t->configured = 0;
	for (i = 0; i < conf->ntunnels; i++) {
		t = tunnel_find(conf->tunnels[i].name);
		if (t == NULL) {
			t = tunnel_new(conf->tunnels[i].name);
			t->next = tunnels;
			tunnels = t;
		}
		t->configured = 1;
	}
	for (tp = &tunnels; *tp != NULL;) {
		t = *tp;
		if (t->configured) {
			tp = &t->next;
			continue;
		}
		log_info("tunnel %s: removed from the configuration", t->name);
		*tp = t->next;
		tunnel_free(t);
	}
	return 0;
}

void
tunnel_shutdown(void)
{
	struct tunnel *t;

	draining = 1;
	for (t = tunnels; t != NULL; t = t->next) {
		if (t->wsi == NULL)
			continue;
		mux_send_code(t->mux, FRAME_GOAWAY, 0, CLOSE_SHUTDOWN,
		    "relay shutting down");
		tunnel_want_write(t);
	}
}

void
tunnel_free_all(void)
{
	struct tunnel *t;

	while ((t = tunnels) != NULL) {
		tunnels = t->next;
		tunnel_free(t);
	}
}

int
tunnel_stream_open(struct tunnel *t, const char *server, const char *agent,
    const char *const *servers, size_t nservers,
    const struct tstream_ops *ops, void *arg, uint32_t *idp)
{
	return tunnel_stream_open2(t, server, agent, servers, nservers, NULL,
	    0, ops, arg, idp);
}

int
tunnel_stream_open2(struct tunnel *t, const char *server, const char *agent,
    const char *const *servers, size_t nservers, const char *const *allow,
    size_t nallow, const struct tstream_ops *ops, void *arg, uint32_t *idp)
{
	json_t *open = NULL, *list;
	struct tstream *ts;
	char *text = NULL;
	uint32_t id;
	size_t i;
	int r;

	if (!tunnel_online(t))
		return MT_ECLOSED;
	do {
		id = t->next_id++;
		if (t->next_id == 0 || t->next_id > 0x7fffffff)
			t->next_id = 1;
	} while (id == 0 || u32map_get(&t->streams, id) != NULL);
	if ((r = mux_stream_add(t->mux, id)) != 0)
		return r;
	open = json_pack("{s:s, s:s}", "server", server, "agent", agent);
	if (servers != NULL) {
		list = json_array();
		for (i = 0; i < nservers; i++)
			json_array_append_new(list, json_string(servers[i]));
		json_object_set_new(open, "servers", list);
	}
	if (allow != NULL) {
		list = json_array();
		for (i = 0; i < nallow; i++)
			json_array_append_new(list, json_string(allow[i]));
		json_object_set_new(open, "allow", list);
	}
	text = json_dumps(open, JSON_COMPACT);
	json_decref(open);
	if (text == NULL) {
		mux_stream_remove(t->mux, id);
		return MT_ENOMEM;
	}
	r = mux_send_control(t->mux, FRAME_OPEN, id, text, strlen(text));
	free(text);
	if (r != 0) {
		mux_stream_remove(t->mux, id);
		return r;
	}
	ts = xcalloc(1, sizeof(*ts));
	ts->id = id;
	ts->ops = ops;
	ts->arg = arg;
	u32map_put(&t->streams, id, ts);
	tunnel_want_write(t);
	*idp = id;
	return 0;
}

int
tunnel_stream_send(struct tunnel *t, uint32_t id, const void *msg, size_t len)
{
	int r;

	if (u32map_get(&t->streams, id) == NULL)
		return MT_ENOTFOUND;
	if ((r = mux_send(t->mux, id, msg, len)) != 0)
		return r;
	stats.bytes_to_client += len;
	tunnel_want_write(t);
	return 0;
}

size_t
tunnel_stream_queued(const struct tunnel *t, uint32_t id)
{
	return mux_stream_queued(t->mux, id);
}

int
tunnel_congested(const struct tunnel *t)
{
	return mux_congested(t->mux);
}

void
tunnel_stream_pause(struct tunnel *t, uint32_t id)
{
	mux_recv_pause(t->mux, id);
}

void
tunnel_stream_resume(struct tunnel *t, uint32_t id)
{
	mux_recv_resume(t->mux, id);
	tunnel_want_write(t);
}

void
tunnel_stream_close(struct tunnel *t, uint32_t id, uint16_t code,
    const char *text)
{
	struct tstream *ts = u32map_del(&t->streams, id);

	if (ts == NULL)
		return;
	free(ts);
	if (t->wsi != NULL)
		mux_stream_finish(t->mux, id, code, text);
	else
		mux_stream_remove(t->mux, id);
	tunnel_want_write(t);
}

/*
 * Finds the tunnel whose token matches the Authorization header: the token
 * is hashed once and compared with every tunnel's hash in constant time,
 * without stopping at a match.
 */
static struct tunnel *
link_authenticate(struct lws *wsi)
{
	const struct relay_conf *conf = relay_conf_current();
	const struct relay_tunnel_conf *match = NULL;
	uint8_t h[TOKEN_HASH_LEN];
	char hdr[512];
	size_t i;
	int n;

	n = lws_hdr_copy(wsi, hdr, sizeof(hdr), WSI_TOKEN_HTTP_AUTHORIZATION);
	if (n <= 7 || strncasecmp(hdr, "Bearer ", 7) != 0)
		goto out;
	if (token_sha256(hdr + 7, h) != 0)
		goto out;
	for (i = 0; i < conf->ntunnels; i++)
		if (ct_equal(h, conf->tunnels[i].token_hash, sizeof(h)))
			match = &conf->tunnels[i];
 out:
	explicit_wipe(hdr, sizeof(hdr));
	explicit_wipe(h, sizeof(h));
	return match != NULL ? tunnel_find(match->name) : NULL;
}

void
tunnel_set_listener(struct lws_vhost *vh, int require_cert)
{
	link_vhost = vh;
	link_need_cert = require_cert;
}

/* 1 if the n bytes at p are printable ASCII (a CN we match and log). */
static int
cn_printable(const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] > 0x7e)
			return 0;
	return 1;
}

/*
 * The common name of the peer's certificate, if the TLS layer verified it
 * against tls.client_ca: 0 and cn set ("" if the subject has no single
 * printable CN that fits), or -1 if there is no verified certificate.
 * lws' own CN lookup with mbedTLS joins every subject attribute, so the
 * CN is read from the DER here.
 */
static int
link_peer_cn(struct lws *wsi, char *cn, size_t cnlen)
{
	union lws_tls_cert_info_results *r = NULL, v;
	const mbedtls_x509_name *nm;
	mbedtls_x509_crt crt;
	size_t cap = 8192;
	int found = 0, rc = -1;

	cn[0] = '\0';
	mbedtls_x509_crt_init(&crt);
	if (lws_tls_peer_cert_info(wsi, LWS_TLS_CERT_INFO_VERIFIED, &v,
	    0) != 0 || !v.verified)
		goto out;
	r = xmalloc(sizeof(*r) + cap);
	if (lws_tls_peer_cert_info(wsi, LWS_TLS_CERT_INFO_DER_RAW, r,
	    cap + sizeof(r->ns.name)) != 0 ||
	    mbedtls_x509_crt_parse_der(&crt, (const unsigned char *)r->ns.name,
	    (size_t)r->ns.len) != 0)
		goto out;
	rc = 0;
	for (nm = &crt.subject; nm != NULL; nm = nm->next) {
		if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &nm->oid) != 0)
			continue;
		/* Two CNs are ambiguous: match neither. */
		if (found++ || nm->val.len >= cnlen ||
		    !cn_printable(nm->val.p, nm->val.len)) {
			cn[0] = '\0';
			break;
		}
		memcpy(cn, nm->val.p, nm->val.len);
		cn[nm->val.len] = '\0';
	}
 out:
	mbedtls_x509_crt_free(&crt);
	free(r);
	return rc;
}

/*
 * The checks before the token: the link came to the tunnel listener and,
 * with tls.client_ca, brought a verified certificate (cn, for the
 * tunnel's client_cert_cn).  The TLS handshake already refuses peers
 * without one; this holds even if a TLS backend does not.  0 or -1.
 */
static int
link_listener_ok(struct lws *wsi, const char *peer, char *cn, size_t cnlen)
{
	const struct relay_conf *conf = relay_conf_current();

	cn[0] = '\0';
	if (link_vhost != NULL && lws_get_vhost(wsi) != link_vhost) {
		log_warnx("link from %s refused: tunnel links go to "
		    "tunnel_listen (%s), not to the agent port", peer,
		    conf->tunnel_listen != NULL ? conf->tunnel_listen : "?");
		return -1;
	}
	if (link_need_cert && link_peer_cn(wsi, cn, cnlen) != 0) {
		log_warnx("link from %s refused: no verified client "
		    "certificate (tls.client_ca)", peer);
		return -1;
	}
	return 0;
}

/*
 * A tunnel with client_cert_cn takes links only from a certificate with
 * that common name, so a certificate issued for one tunnel cannot carry
 * another tunnel's token.  cn is NULL without client certificates.
 */
static int
link_cert_binding_ok(const struct tunnel *t, const char *cn, const char *peer)
{
	const struct relay_tunnel_conf *tc;

	tc = relay_conf_tunnel(relay_conf_current(), t->name);
	if (relay_tunnel_cert_ok(tc, cn))
		return 0;
	log_warnx("link from %s refused: tunnel %s needs a client certificate "
	    "with CN \"%s\", not \"%.64s\"", peer, t->name,
	    tc != NULL && tc->client_cert_cn != NULL ? tc->client_cert_cn :
	    "?", cn != NULL ? cn : "");
	return -1;
}

static int
link_path_ok(struct lws *wsi)
{
	char uri[64];

	if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0)
		return 0;
	return strcmp(uri, "/tunnel") == 0;
}

static int
link_write(struct lws *wsi, struct link_pss *pss)
{
	struct tunnel *t = pss->t;
	uint8_t buf[LWS_PRE + FRAME_HDR_LEN + 128];
	size_t len;
	int r;

	if (pss->closing) {
		/* Say why, then let lws close the connection. */
		if (pss->close_code != CLOSE_NORMAL || pss->close_text[0]) {
			uint8_t pl[2 + 96];
			size_t pn = frame_put_code_text(pl, sizeof(pl),
			    pss->close_code, pss->close_text);

			len = frame_encode(buf + LWS_PRE, sizeof(buf) - LWS_PRE,
			    FRAME_CLOSE, 0, 0, pl, (uint32_t)pn);
			lws_write(wsi, buf + LWS_PRE, len, LWS_WRITE_BINARY);
		}
		lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
		return -1;
	}
	if (t == NULL)
		return 0;
	r = mux_next_frame(t->mux, t->txbuf + LWS_PRE, t->txcap, &len);
	if (r == MT_EAGAIN)
		return 0;
	if (r != 0) {
		log_warnx("tunnel %s: cannot build a frame: %s", t->name,
		    mt_strerror(r));
		return -1;
	}
	if (lws_write(wsi, t->txbuf + LWS_PRE, len, LWS_WRITE_BINARY) <
	    (int)len) {
		log_warnx("tunnel %s: write to the link failed", t->name);
		return -1;
	}
	if (mux_has_output(t->mux))
		lws_callback_on_writable(wsi);
	return 0;
}

static int
link_receive(struct lws *wsi, struct link_pss *pss, const void *in,
    size_t len)
{
	struct tunnel *t = pss->t;
	int code = CLOSE_PROTOCOL, r;

	if (pss->closing || t == NULL)
		return 0;
	if (!lws_frame_is_binary(wsi)) {
		link_fail(wsi, pss, CLOSE_PROTOCOL, "text frame on the link");
		return 0;
	}
	if (buf_append(&pss->rx, in, len) != 0) {
		log_warnx("tunnel %s: frame over the size limit", t->name);
		link_fail(wsi, pss, CLOSE_TOO_BIG, "frame too large");
		return 0;
	}
	if (!lws_is_final_fragment(wsi))
		return 0;
	t->last_rx_ms = now_ms();
	r = mux_input(t->mux, buf_ptr(&pss->rx), buf_len(&pss->rx), &code);
	buf_reset(&pss->rx);
	if (r != 0 && pss->t != NULL) {
		log_warnx("tunnel %s: bad frame from the client: %s; closing "
		    "the link", t->name, mt_strerror(r));
		link_fail(wsi, pss, (uint16_t)code, mt_strerror(r));
		return 0;
	}
	if (pss->t != NULL)
		tunnel_want_write(pss->t);
	return 0;
}

static void
link_attach(struct lws *wsi, struct link_pss *pss)
{
	const struct relay_conf *conf = relay_conf_current();
	struct tunnel *t = pss->authed;
	struct link_pss *old;

	if (t->wsi != NULL) {
		/* A newer authenticated link replaces the old one. */
		log_info("tunnel %s: new link replaces the old one", t->name);
		old = lws_wsi_user(t->wsi);
		link_fail(t->wsi, old, CLOSE_REPLACED,
		    "replaced by a newer link");
		tunnel_link_detach(t);
	}
	pss->t = t;
	t->wsi = wsi;
	t->ready = 0;
	t->last_rx_ms = now_ms();
	stats.link_accepts++;
	lws_sul_schedule(relay_context(), 0, &t->sul_ping, tunnel_ping,
	    (lws_usec_t)conf->limits.ping_interval_ms * LWS_US_PER_MS);
}

size_t
tunnel_user_size(void)
{
	return sizeof(struct link_pss);
}

int
tunnel_callback(struct lws *wsi, int reason, void *user, void *in,
    size_t len)
{
	struct link_pss *pss = user;
	const struct relay_conf *conf;
	char peer[64], cn[80];

	switch (reason) {
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		lws_get_peer_simple(wsi, peer, sizeof(peer));
		if (draining) {
			log_info("link from %s refused: shutting down", peer);
			return -1;
		}
		if (link_listener_ok(wsi, peer, cn, sizeof(cn)) != 0) {
			stats.link_rejects++;
			return -1;
		}
		if (!link_path_ok(wsi)) {
			log_warnx("link from %s refused: not on /tunnel", peer);
			stats.link_rejects++;
			return -1;
		}
		if ((pss->authed = link_authenticate(wsi)) == NULL) {
			log_warnx("link from %s refused: missing or wrong "
			    "tunnel token", peer);
			stats.link_rejects++;
			return -1;
		}
		if (link_cert_binding_ok(pss->authed, link_need_cert ? cn :
		    NULL, peer) != 0) {
			pss->authed = NULL;
			stats.link_rejects++;
			return -1;
		}
		if (cn[0] != '\0')
			log_info("link from %s authenticated for tunnel %s "
			    "(client certificate CN \"%.64s\")", peer,
			    pss->authed->name, cn);
		else
			log_info("link from %s authenticated for tunnel %s",
			    peer, pss->authed->name);
		return 0;
	case LWS_CALLBACK_ESTABLISHED:
		conf = relay_conf_current();
		buf_init(&pss->rx, FRAME_HDR_LEN + (conf->limits.chunk >
		    FRAME_MAX_CONTROL ? conf->limits.chunk : FRAME_MAX_CONTROL));
		if (pss->authed == NULL)
			return -1;
		sock_limit_unsent(lws_get_socket_fd(wsi), LINK_UNSENT_MAX);
		link_attach(wsi, pss);
		return 0;
	case LWS_CALLBACK_RECEIVE:
		return link_receive(wsi, pss, in, len);
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return link_write(wsi, pss);
	case LWS_CALLBACK_CLOSED:
		if (pss->t != NULL && pss->t->wsi == wsi)
			tunnel_link_detach(pss->t);
		buf_free(&pss->rx);
		return 0;
	default:
		break;
	}
	return 0;
}
