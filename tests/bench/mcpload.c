/*
 * mcpload: a small MCP load generator for mcptun's benchmarks.  It speaks
 * MCP Streamable HTTP directly (HTTP/1.1 keep-alive, over TLS with mbedTLS
 * or in the clear) or newline-delimited JSON-RPC to a spawned stdio server,
 * so every column of tests/bench/run.sh is driven by the same code and the
 * figures show the path's ceiling rather than a Node client's.
 *
 * Concurrency is by fork(), one process per session: this mbedTLS is built
 * without MBEDTLS_THREADING_C, and its PSA key store is global, so threads
 * could not share it.  Each process sets up TLS for itself after the fork.
 *
 * Build (tests/bench/run.sh does this):
 *   cc -O2 -I deps/out/include -o build/bench/mcpload tests/bench/mcpload.c \
 *      deps/out/lib/libmbedtls.a deps/out/lib/libmbedx509.a \
 *      deps/out/lib/libmbedcrypto.a [deps/out/lib/libeverest.a \
 *      deps/out/lib/libp256m.a]
 *
 * Usage:
 *   mcpload TARGET MODE [options]
 * TARGET is one of
 *   --url http[s]://HOST:PORT/PATH [--token T] [--ca FILE]
 *   --stdio "CMD ARGS"             (run as /bin/sh -c "exec CMD ARGS")
 *   --raw HOST:PORT                (raw TCP: send "N\n", read N bytes)
 *   --serve-raw PORT               (the far end of --raw: listens on
 *                                   127.0.0.1:PORT, answers each line "N"
 *                                   with N bytes, until killed)
 * and --accept VALUE replaces the Accept header (default "application/json,
 * text/event-stream", what the SDK sends) for diagnosis.
 * MODE (--mode) and its options:
 *   lat       --calls N --warmup W        sequential echo calls
 *   rate      --sessions S --seconds T     S concurrent sessions, echo calls
 *   bulk      --bytes B --calls N --seconds T   sequential blob calls
 *   hol       --calls N --bytes B --seconds T   N echo calls idle, then
 *                                         echo calls for T seconds while a
 *                                         second session pulls B-byte blobs
 *   sessions  --sessions S [--workers K]  open S sessions, print "ready",
 *                                         hold them until stdin closes, end
 *                                         them (DELETE) and exit
 *   first     --seconds T                 retry open+echo until one succeeds
 *   query     --sql SQL --rows R --calls N [--marker M]
 *                                         one warm-up, then N sequential calls
 *                                         of the "query" tool (a Postgres MCP
 *                                         server); each answer must hold M
 *                                         (default "row-, quote included)
 *                                         exactly R times, once per row in
 *                                         both servers' formats; --rows 0
 *                                         wants a resource_link (offload)
 * Output: one JSON object on stdout; diagnostics on stderr.  Times in ms.
 * Exit status 0, or 1 when the run could not be done at all.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include <psa/crypto.h>

/* ---- options ---------------------------------------------------------- */

static struct {
	const char *url, *token, *ca, *stdio_cmd, *raw, *mode, *accept;
	const char *sql, *marker;
	long rows;
	int serve_port;
	int calls, warmup, sessions, workers;
	double seconds;
	size_t bytes;
	/* parsed from url / raw */
	int tls;
	char host[256], hostport[300], path[1024];
	int port;
} o = { .accept = "application/json, text/event-stream", .marker = "\"row-", .calls = 2000, .warmup = 200, .sessions = 50, .workers = 4,
	.seconds = 5, .bytes = 4u << 20 };

static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "mcpload: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- TLS (per process) ------------------------------------------------- */

static int tls_ready;
static long n_connects;		/* TCP connections opened by this process */
static mbedtls_ssl_config tls_conf;
static mbedtls_x509_crt tls_ca;
static mbedtls_entropy_context tls_entropy;
static mbedtls_ctr_drbg_context tls_drbg;

static void
tls_init(void)
{
	char pers[64];
	int r;

	if (tls_ready)
		return;
	if (psa_crypto_init() != PSA_SUCCESS)
		die("psa_crypto_init failed");
	mbedtls_ssl_config_init(&tls_conf);
	mbedtls_x509_crt_init(&tls_ca);
	mbedtls_entropy_init(&tls_entropy);
	mbedtls_ctr_drbg_init(&tls_drbg);
	snprintf(pers, sizeof pers, "mcpload-%ld", (long)getpid());
	if (mbedtls_ctr_drbg_seed(&tls_drbg, mbedtls_entropy_func, &tls_entropy,
	    (const unsigned char *)pers, strlen(pers)) != 0)
		die("ctr_drbg_seed failed");
	if (mbedtls_ssl_config_defaults(&tls_conf, MBEDTLS_SSL_IS_CLIENT,
	    MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT) != 0)
		die("ssl_config_defaults failed");
	if (o.ca != NULL) {
		if ((r = mbedtls_x509_crt_parse_file(&tls_ca, o.ca)) != 0)
			die("cannot load CA %s (%d)", o.ca, r);
		mbedtls_ssl_conf_ca_chain(&tls_conf, &tls_ca, NULL);
		mbedtls_ssl_conf_authmode(&tls_conf, MBEDTLS_SSL_VERIFY_REQUIRED);
	} else
		mbedtls_ssl_conf_authmode(&tls_conf, MBEDTLS_SSL_VERIFY_NONE);
	mbedtls_ssl_conf_rng(&tls_conf, mbedtls_ctr_drbg_random, &tls_drbg);
#if defined(MBEDTLS_SSL_SESSION_TICKETS)
	mbedtls_ssl_conf_session_tickets(&tls_conf,
	    MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
#endif
	tls_ready = 1;
}

/* ---- connections: a socket (maybe TLS) or a pair of pipes -------------- */

struct conn {
	int rfd, wfd;			/* -1 when closed */
	int tls;
	mbedtls_ssl_context ssl;
	pid_t pid;			/* stdio child, or 0 */
	unsigned char *rb;		/* read buffer */
	size_t roff, rlen, rcap;
};

static int
fd_send(void *ctx, const unsigned char *b, size_t n)
{
	ssize_t w;

	do
		w = send(*(int *)ctx, b, n, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	return w < 0 ? MBEDTLS_ERR_SSL_INTERNAL_ERROR : (int)w;
}

static int
fd_recv(void *ctx, unsigned char *b, size_t n)
{
	ssize_t r;

	do
		r = recv(*(int *)ctx, b, n, 0);
	while (r < 0 && errno == EINTR);
	return r < 0 ? MBEDTLS_ERR_SSL_INTERNAL_ERROR : (int)r;
}

static void
conn_close(struct conn *c)
{
	if (c->tls) {
		if (c->rfd >= 0)
			mbedtls_ssl_close_notify(&c->ssl);
		mbedtls_ssl_free(&c->ssl);
		c->tls = 0;
	}
	if (c->wfd >= 0 && c->wfd != c->rfd)
		close(c->wfd);
	if (c->rfd >= 0)
		close(c->rfd);
	c->rfd = c->wfd = -1;
	if (c->pid > 0) {
		kill(c->pid, SIGTERM);
		waitpid(c->pid, NULL, 0);
		c->pid = 0;
	}
	c->roff = c->rlen = 0;
}

static int
tcp_connect(const char *host, int port)
{
	struct sockaddr_in sa;
	int fd, one = 1;

	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	if (strcmp(host, "localhost") == 0)
		host = "127.0.0.1";
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		die("not a loopback IPv4 address: %s", host);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Opens c to the URL's host; 0 or -1 (with a message when verbose). */
static int
conn_open_url(struct conn *c)
{
	int r;

	c->rfd = c->wfd = tcp_connect(o.host, o.port);
	if (c->rfd < 0)
		return -1;
	n_connects++;
	c->roff = c->rlen = 0;
	if (!o.tls)
		return 0;
	tls_init();
	mbedtls_ssl_init(&c->ssl);
	c->tls = 1;
	if (mbedtls_ssl_setup(&c->ssl, &tls_conf) != 0 ||
	    mbedtls_ssl_set_hostname(&c->ssl, o.host) != 0)
		goto fail;
	mbedtls_ssl_set_bio(&c->ssl, &c->rfd, fd_send, fd_recv, NULL);
	while ((r = mbedtls_ssl_handshake(&c->ssl)) != 0) {
		if (r != MBEDTLS_ERR_SSL_WANT_READ &&
		    r != MBEDTLS_ERR_SSL_WANT_WRITE) {
			char e[128];

			mbedtls_strerror(r, e, sizeof e);
			fprintf(stderr, "mcpload: TLS handshake: %s\n", e);
			goto fail;
		}
	}
	return 0;
fail:
	close(c->rfd);
	c->rfd = c->wfd = -1;
	mbedtls_ssl_free(&c->ssl);
	c->tls = 0;
	return -1;
}

static int
conn_open_stdio(struct conn *c)
{
	int in[2], out[2];
	pid_t pid;
	char *cmd;

	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
		return -1;
	if (asprintf(&cmd, "exec %s", o.stdio_cmd) < 0)
		return -1;
	if ((pid = fork()) < 0)
		return -1;
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	free(cmd);
	close(in[0]);
	close(out[1]);
	c->wfd = in[1];
	c->rfd = out[0];
	c->pid = pid;
	c->roff = c->rlen = 0;
	return 0;
}

static int
conn_write(struct conn *c, const void *p, size_t n)
{
	const unsigned char *b = p;
	int w;

	while (n > 0) {
		if (c->tls) {
			w = mbedtls_ssl_write(&c->ssl, b, n);
			if (w == MBEDTLS_ERR_SSL_WANT_WRITE ||
			    w == MBEDTLS_ERR_SSL_WANT_READ)
				continue;
		} else {
			ssize_t s;

			if (c->pid > 0)
				s = write(c->wfd, b, n);
			else
				s = send(c->wfd, b, n, MSG_NOSIGNAL);
			if (s < 0 && errno == EINTR)
				continue;
			w = s < 0 ? -1 : (int)s;
		}
		if (w <= 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads up to n bytes into b straight from the transport; 0 at EOF. */
static ssize_t
conn_recv(struct conn *c, void *b, size_t n)
{
	if (n > (1u << 30))
		n = 1u << 30;
	for (;;) {
		if (c->tls) {
			int r = mbedtls_ssl_read(&c->ssl, b, n);

			if (r == MBEDTLS_ERR_SSL_WANT_READ ||
			    r == MBEDTLS_ERR_SSL_WANT_WRITE ||
			    r == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
				continue;
			if (r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
				return 0;
			return r < 0 ? -1 : r;
		} else {
			ssize_t r = read(c->rfd, b, n);

			if (r < 0 && errno == EINTR)
				continue;
			return r;
		}
	}
}

/* Makes at least one more byte available in the read buffer; -1 at EOF. */
static int
conn_fill(struct conn *c)
{
	ssize_t r;

	if (c->roff > 0 && c->roff == c->rlen)
		c->roff = c->rlen = 0;
	if (c->rlen == c->rcap) {
		if (c->roff > 0) {
			memmove(c->rb, c->rb + c->roff, c->rlen - c->roff);
			c->rlen -= c->roff;
			c->roff = 0;
		} else {
			c->rcap = c->rcap ? c->rcap * 2 : 65536;
			if ((c->rb = realloc(c->rb, c->rcap)) == NULL)
				die("out of memory");
		}
	}
	r = conn_recv(c, c->rb + c->rlen, c->rcap - c->rlen);
	if (r <= 0)
		return -1;
	c->rlen += (size_t)r;
	return 0;
}

/* Returns the next line (without its LF) and its length, or NULL at EOF. */
static char *
conn_line(struct conn *c, size_t *len)
{
	size_t scanned = 0;
	unsigned char *nl;
	char *line;

	for (;;) {
		nl = memchr(c->rb + c->roff + scanned, '\n',
		    c->rlen - c->roff - scanned);
		if (nl != NULL)
			break;
		scanned = c->rlen - c->roff;
		if (conn_fill(c) < 0)
			return NULL;
	}
	line = (char *)c->rb + c->roff;
	*len = (size_t)(nl - (c->rb + c->roff));
	c->roff += *len + 1;
	*nl = '\0';
	return line;
}

/* Reads exactly n bytes into dst: first what is buffered, then directly. */
static int
conn_read_exact(struct conn *c, unsigned char *dst, size_t n)
{
	size_t have = c->rlen - c->roff;
	ssize_t r;

	if (have > n)
		have = n;
	memcpy(dst, c->rb + c->roff, have);
	c->roff += have;
	dst += have;
	n -= have;
	while (n > 0) {
		if ((r = conn_recv(c, dst, n)) <= 0)
			return -1;
		dst += r;
		n -= (size_t)r;
	}
	return 0;
}

/* ---- a growable byte buffer --------------------------------------------- */

struct buf {
	unsigned char *p;
	size_t len, cap;
};

static void
buf_reserve(struct buf *b, size_t more)
{
	if (b->len + more + 1 <= b->cap)
		return;
	while (b->len + more + 1 > b->cap)
		b->cap = b->cap ? b->cap * 2 : 65536;
	if ((b->p = realloc(b->p, b->cap)) == NULL)
		die("out of memory");
}

/* ---- MCP sessions ------------------------------------------------------- */

struct sess {
	struct conn c;
	char sid[256];
	long next_id;
	struct buf body;		/* last answer's body */
	struct buf req;
	const unsigned char *ans;	/* the last JSON-RPC answer (in body or */
	size_t ans_len;			/* the read buffer), until the next call */
};

struct resp {
	int status;
	int sse;
	int closed;			/* the server ends the connection */
};

/*
 * Sends one HTTP request on s (reconnecting when needed) and reads the whole
 * answer into s->body.  Returns 0 with r filled, or -1 on a transport error.
 */
static int
http_do(struct sess *s, const char *method, const char *json, size_t jlen,
    struct resp *r)
{
	char head[2048];
	int hl, tries;
	long clen = -1;
	int chunked = 0;
	char *line;
	size_t ll;

	memset(r, 0, sizeof *r);
	for (tries = 0; tries < 2; tries++) {
		if (s->c.rfd < 0 && conn_open_url(&s->c) < 0)
			return -1;
		hl = snprintf(head, sizeof head,
		    "%s %s HTTP/1.1\r\nHost: %s\r\n"
		    "Accept: %s\r\n"
		    "MCP-Protocol-Version: 2025-06-18\r\n"
		    "%s%s%s" "%s%s%s"
		    "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
		    method, o.path, o.hostport, o.accept,
		    o.token ? "Authorization: Bearer " : "", o.token ? o.token : "",
		    o.token ? "\r\n" : "",
		    s->sid[0] ? "Mcp-Session-Id: " : "", s->sid,
		    s->sid[0] ? "\r\n" : "", jlen);
		s->req.len = 0;
		buf_reserve(&s->req, (size_t)hl + jlen);
		memcpy(s->req.p, head, (size_t)hl);
		memcpy(s->req.p + hl, json, jlen);
		if (conn_write(&s->c, s->req.p, (size_t)hl + jlen) == 0 &&
		    (line = conn_line(&s->c, &ll)) != NULL)
			break;
		/* A kept-alive connection the server had closed: once more. */
		conn_close(&s->c);
		if (tries == 1)
			return -1;
	}
	if (sscanf(line, "HTTP/1.%*d %d", &r->status) != 1)
		goto fail;
	while ((line = conn_line(&s->c, &ll)) != NULL) {
		char *v;

		if (ll > 0 && line[ll - 1] == '\r')
			line[--ll] = '\0';
		if (ll == 0)
			break;
		if ((v = strchr(line, ':')) == NULL)
			continue;
		*v++ = '\0';
		while (*v == ' ' || *v == '\t')
			v++;
		if (strcasecmp(line, "content-length") == 0)
			clen = strtol(v, NULL, 10);
		else if (strcasecmp(line, "transfer-encoding") == 0)
			chunked = strcasestr(v, "chunked") != NULL;
		else if (strcasecmp(line, "content-type") == 0)
			r->sse = strcasestr(v, "text/event-stream") != NULL;
		else if (strcasecmp(line, "connection") == 0)
			r->closed = strcasestr(v, "close") != NULL;
		else if (strcasecmp(line, "mcp-session-id") == 0)
			snprintf(s->sid, sizeof s->sid, "%s", v);
	}
	if (line == NULL)
		goto fail;
	s->body.len = 0;
	if (chunked) {
		for (;;) {
			unsigned long n;

			if ((line = conn_line(&s->c, &ll)) == NULL)
				goto fail;
			n = strtoul(line, NULL, 16);
			if (n == 0) {
				/* trailers up to the empty line */
				while ((line = conn_line(&s->c, &ll)) != NULL &&
				    !(ll == 0 || (ll == 1 && line[0] == '\r')))
					;
				if (line == NULL)
					goto fail;
				break;
			}
			buf_reserve(&s->body, n);
			if (conn_read_exact(&s->c, s->body.p + s->body.len, n) < 0)
				goto fail;
			s->body.len += n;
			if (conn_line(&s->c, &ll) == NULL)
				goto fail;
		}
	} else if (clen >= 0) {
		buf_reserve(&s->body, (size_t)clen);
		if (conn_read_exact(&s->c, s->body.p, (size_t)clen) < 0)
			goto fail;
		s->body.len = (size_t)clen;
	} else if (r->status == 204 || r->status == 304 ||
	    (r->status >= 100 && r->status < 200)) {
		/* no body */
	} else {
		/* Delimited by the end of the connection. */
		for (;;) {
			size_t have = s->c.rlen - s->c.roff;

			buf_reserve(&s->body, have);
			memcpy(s->body.p + s->body.len, s->c.rb + s->c.roff, have);
			s->body.len += have;
			s->c.roff += have;
			if (conn_fill(&s->c) < 0)
				break;
		}
		r->closed = 1;
	}
	s->body.p[s->body.len] = '\0';
	if (r->closed)
		conn_close(&s->c);
	return 0;
fail:
	conn_close(&s->c);
	return -1;
}

/*
 * Whether a JSON-RPC text carries a result: the key appears near the start
 * of the object for every server here ({"result":... or {"jsonrpc":...,
 * "id":N,"result":...); notifications have "method" instead.
 */
static int
json_kind(const unsigned char *p, size_t n)
{
	size_t lim = n < 160 ? n : 160;

	if (memmem(p, lim, "\"result\"", 8) != NULL)
		return 1;
	if (memmem(p, lim, "\"error\"", 7) != NULL)
		return -1;
	return 0;
}

/*
 * The JSON-RPC answer in s->body: for SSE, the data of the event that holds
 * a result or an error.  Returns 1 result, -1 error, 0 none; s->ans and
 * *len that message.
 */
static int
body_answer(struct sess *s, int sse, size_t *len)
{
	unsigned char *p = s->body.p, *end = p + s->body.len, *d, *e;
	int k;

	if (!sse) {
		s->ans = p;
		*len = s->body.len;
		return json_kind(p, s->body.len);
	}
	while (p < end && (d = memmem(p, (size_t)(end - p), "data:", 5)) != NULL) {
		d += 5;
		if (d < end && *d == ' ')
			d++;
		e = memchr(d, '\n', (size_t)(end - d));
		if (e == NULL)
			e = end;
		if ((k = json_kind(d, (size_t)(e - d))) != 0) {
			s->ans = d;
			*len = (size_t)(e - d);
			return k;
		}
		p = e;
	}
	return 0;
}

/*
 * One JSON-RPC request; returns 0 when a result came back (then s->ans and
 * s->ans_len are that message).
 */
static int
sess_request(struct sess *s, const char *method, const char *params)
{
	char msg[1024];
	int n;
	size_t *len = &s->ans_len;

	s->ans = NULL;
	s->ans_len = 0;
	n = snprintf(msg, sizeof msg,
	    "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"%s\",\"params\":%s}",
	    ++s->next_id, method, params);
	if (o.stdio_cmd != NULL) {
		char *line;
		size_t ll;
		int k;

		msg[n++] = '\n';
		if (conn_write(&s->c, msg, (size_t)n) < 0)
			return -1;
		while ((line = conn_line(&s->c, &ll)) != NULL) {
			if ((k = json_kind((unsigned char *)line, ll)) != 0) {
				s->ans = (unsigned char *)line;
				*len = ll;
				return k > 0 ? 0 : -1;
			}
		}
		return -1;
	} else {
		struct resp r;

		if (http_do(s, "POST", msg, (size_t)n, &r) < 0)
			return -1;
		if (r.status != 200) {
			fprintf(stderr, "mcpload: %s: HTTP %d %.200s\n", method,
			    r.status, s->body.p);
			return -1;
		}
		return body_answer(s, r.sse, len) > 0 ? 0 : -1;
	}
}

static int
sess_notify(struct sess *s, const char *method)
{
	char msg[256];
	int n;

	n = snprintf(msg, sizeof msg, "{\"jsonrpc\":\"2.0\",\"method\":\"%s\"}",
	    method);
	if (o.stdio_cmd != NULL) {
		msg[n++] = '\n';
		return conn_write(&s->c, msg, (size_t)n);
	} else {
		struct resp r;

		if (http_do(s, "POST", msg, (size_t)n, &r) < 0)
			return -1;
		return r.status == 202 || r.status == 200 ? 0 : -1;
	}
}

static void
sess_init(struct sess *s)
{
	memset(s, 0, sizeof *s);
	s->c.rfd = s->c.wfd = -1;
}

/* Opens an MCP session (initialize + initialized); 0 or -1. */
static int
sess_open(struct sess *s)
{
	s->sid[0] = '\0';
	if (o.stdio_cmd != NULL && conn_open_stdio(&s->c) < 0)
		return -1;
	if (sess_request(s, "initialize",
	    "{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},"
	    "\"clientInfo\":{\"name\":\"mcpload\",\"version\":\"1.0\"}}") < 0)
		return -1;
	if (o.stdio_cmd == NULL && s->sid[0] == '\0')
		fprintf(stderr, "mcpload: no Mcp-Session-Id after initialize\n");
	return sess_notify(s, "notifications/initialized");
}

/* Ends the session (DELETE over HTTP) and closes its connection. */
static void
sess_end(struct sess *s, int keep_conn)
{
	struct resp r;

	if (o.stdio_cmd == NULL && s->sid[0] != '\0')
		(void)http_do(s, "DELETE", "", 0, &r);
	s->sid[0] = '\0';
	if (!keep_conn)
		conn_close(&s->c);
}

static int
call_echo(struct sess *s)
{
	return sess_request(s, "tools/call",
	    "{\"name\":\"echo\",\"arguments\":{\"message\":\"hello mcptun\"}}");
}

static int
call_blob(struct sess *s, size_t bytes)
{
	char p[128];

	snprintf(p, sizeof p, "{\"name\":\"blob\",\"arguments\":{\"bytes\":%zu}}",
	    bytes);
	if (sess_request(s, "tools/call", p) < 0)
		return -1;
	if (s->ans_len < bytes) {
		fprintf(stderr, "mcpload: blob answer of %zu bytes < %zu\n",
		    s->ans_len, bytes);
		return -1;
	}
	return 0;
}

/*
 * One call of the "query" tool with o.sql; returns how many times o.marker
 * occurs in the answer (once per row), or -1.  *link is set when the answer
 * is a resource_link (an offloaded result).
 */
static long
call_query(struct sess *s, int *link)
{
	char p[900], *w = p;
	const char *q;
	const unsigned char *a, *end, *m;
	size_t ml = strlen(o.marker);
	long n = 0;

	w += sprintf(w, "{\"name\":\"query\",\"arguments\":{\"sql\":\"");
	for (q = o.sql; *q != '\0' && w < p + sizeof p - 16; q++) {
		if (*q == '"' || *q == '\\')
			*w++ = '\\';
		*w++ = *q < ' ' ? ' ' : *q;
	}
	strcpy(w, "\"}}");
	*link = 0;
	if (sess_request(s, "tools/call", p) < 0)
		return -1;
	a = s->ans;
	end = a + s->ans_len;
	*link = memmem(a, s->ans_len, "\"resource_link\"", 15) != NULL;
	if (memmem(a, s->ans_len, "\"isError\":true", 14) != NULL) {
		fprintf(stderr, "mcpload: query failed: %.300s\n", a);
		return -1;
	}
	while ((m = memmem(a, (size_t)(end - a), o.marker, ml)) != NULL) {
		n++;
		a = m + ml;
	}
	return n;
}

/* ---- statistics ---------------------------------------------------------- */

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
pct(const double *v, int n, double q)
{
	int i = (int)ceil(q * n) - 1;

	if (n == 0)
		return NAN;
	if (i < 0)
		i = 0;
	if (i >= n)
		i = n - 1;
	return v[i];
}

/* CPU time (user + system) of this process so far, ms. */
static double
cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void
print_lat(const char *key, double *v, int n, int errors)
{
	double sum = 0;
	int i;

	qsort(v, (size_t)n, sizeof *v, cmp_d);
	for (i = 0; i < n; i++)
		sum += v[i];
	printf("\"%s\":{\"n\":%d,\"errors\":%d,\"p50\":%.4f,\"p90\":%.4f,"
	    "\"p99\":%.4f,\"max\":%.4f,\"mean\":%.4f}", key, n, errors,
	    pct(v, n, .5), pct(v, n, .9), pct(v, n, .99), n ? v[n - 1] : NAN,
	    n ? sum / n : NAN);
}

/* Times up to max echo calls (stopping after secs); returns how many. */
static int
time_calls(struct sess *s, double *v, int max, double secs, int *errors)
{
	double end = now_ms() + secs * 1e3, t;
	int n = 0;

	while (n < max && now_ms() < end) {
		t = now_ms();
		if (call_echo(s) < 0) {
			(*errors)++;
			if (*errors > 20)
				break;
			continue;
		}
		v[n++] = now_ms() - t;
	}
	return n;
}

/* ---- modes ---------------------------------------------------------------- */

static int
mode_lat(void)
{
	struct sess s;
	double *v = calloc((size_t)o.calls, sizeof *v), cpu;
	int i, n, errors = 0;

	sess_init(&s);
	if (v == NULL || sess_open(&s) < 0)
		die("cannot open a session");
	for (i = 0; i < o.warmup; i++)
		(void)call_echo(&s);
	cpu = cpu_ms();
	n = time_calls(&s, v, o.calls, o.seconds, &errors);
	cpu = cpu_ms() - cpu;
	printf("{");
	print_lat("lat", v, n, errors);
	/* The generator's own CPU per call: what the figure costs on this
	 * side, so a reader can tell the path's share of the latency. */
	printf(",\"cpu_ms_per_call\":%.4f,\"connects\":%ld}\n",
	    n ? cpu / n : NAN, n_connects);
	sess_end(&s, 0);
	return 0;
}

static int
mode_bulk(void)
{
	struct sess s;
	double t0, el, end, lat[4096];
	int n = 0, errors = 0;

	sess_init(&s);
	if (sess_open(&s) < 0)
		die("cannot open a session");
	if (call_blob(&s, o.bytes) < 0)	/* warm-up: caches the text */
		die("blob call failed");
	t0 = now_ms();
	end = t0 + o.seconds * 1e3;
	while (n < o.calls && n < 4096 && now_ms() < end) {
		double t = now_ms();

		if (call_blob(&s, o.bytes) < 0) {
			if (++errors > 5)
				break;
			continue;
		}
		lat[n++] = now_ms() - t;
	}
	el = now_ms() - t0;
	printf("{\"calls\":%d,\"errors\":%d,\"bytes\":%zu,\"seconds\":%.3f,"
	    "\"mb_per_s\":%.3f,", n, errors, o.bytes, el / 1e3,
	    n ? (double)n * (double)o.bytes / (1 << 20) / (el / 1e3) : 0.0);
	print_lat("lat", lat, n, errors);
	printf("}\n");
	sess_end(&s, 0);
	return 0;
}

/* Waits for EOF on fd (the parent's "go" or "stop" pipe). */
static void
wait_eof(int fd)
{
	char b[16];
	ssize_t r;

	while ((r = read(fd, b, sizeof b)) > 0 || (r < 0 && errno == EINTR))
		;
}

static int
mode_rate(void)
{
	int go[2], res[2], i, ok = 0;
	long total = 0, errs = 0;
	double t0, el;
	char b;
	FILE *f;

	if (pipe2(go, O_CLOEXEC) < 0 || pipe2(res, O_CLOEXEC) < 0)
		die("pipe: %s", strerror(errno));
	for (i = 0; i < o.sessions; i++) {
		pid_t p = fork();

		if (p < 0)
			die("fork: %s", strerror(errno));
		if (p == 0) {
			struct sess s;
			long calls = 0, e = 0;
			double end;
			char line[64];
			int n;

			close(go[1]);
			close(res[0]);
			sess_init(&s);
			if (sess_open(&s) < 0) {
				(void)!write(res[1], "E\n", 2);
				_exit(1);
			}
			(void)!write(res[1], "R\n", 2);
			wait_eof(go[0]);
			end = now_ms() + o.seconds * 1e3;
			while (now_ms() < end) {
				if (call_echo(&s) == 0)
					calls++;
				else if (++e > 100)
					break;
			}
			n = snprintf(line, sizeof line, "C %ld %ld\n", calls, e);
			(void)!write(res[1], line, (size_t)n);
			sess_end(&s, 0);
			_exit(0);
		}
	}
	close(go[0]);
	close(res[1]);
	f = fdopen(res[0], "r");
	/* Everyone's session first, so the timed part is calls only. */
	for (i = 0; i < o.sessions; i++) {
		if (fread(&b, 1, 1, f) != 1)
			break;
		if (b == 'R')
			ok++;
		(void)fgetc(f);
	}
	t0 = now_ms();
	close(go[1]);
	for (i = 0; i < ok; i++) {
		long c, e;

		if (fscanf(f, " C %ld %ld", &c, &e) != 2)
			break;
		total += c;
		errs += e;
	}
	el = now_ms() - t0;
	while (wait(NULL) > 0 || errno == EINTR)
		;
	printf("{\"sessions\":%d,\"opened\":%d,\"calls\":%ld,\"errors\":%ld,"
	    "\"seconds\":%.3f,\"calls_per_s\":%.1f}\n", o.sessions, ok, total,
	    errs, el / 1e3, total / (o.seconds));
	return ok == o.sessions ? 0 : 1;
}

static int
mode_hol(void)
{
	struct sess s;
	int go[2], stop[2], rep[2], n, errors = 0, ierr = 0;
	double *idle = calloc((size_t)o.calls, sizeof *idle);
	int busy_max = 200000;
	double *busy = calloc((size_t)busy_max, sizeof *busy);
	long bulk_calls = 0;
	pid_t pid;
	char b;

	if (idle == NULL || busy == NULL || pipe2(go, O_CLOEXEC) < 0 || pipe2(stop, O_CLOEXEC) < 0 ||
	    pipe2(rep, O_CLOEXEC) < 0)
		die("setup failed");
	if ((pid = fork()) == 0) {
		/* The bulk session: pulls blobs from "go" until "stop". */
		struct pollfd pf = { .fd = stop[0], .events = POLLIN };
		long k = 0;

		close(go[1]);
		close(stop[1]);
		close(rep[0]);
		sess_init(&s);
		if (sess_open(&s) < 0 || call_blob(&s, o.bytes) < 0) {
			(void)!write(rep[1], "E", 1);
			_exit(1);
		}
		(void)!write(rep[1], "R", 1);
		wait_eof(go[0]);
		while (poll(&pf, 1, 0) == 0) {
			if (call_blob(&s, o.bytes) < 0)
				break;
			if (k++ == 0)
				(void)!write(rep[1], "F", 1);
		}
		(void)!write(rep[1], &k, sizeof k);
		sess_end(&s, 0);
		_exit(0);
	}
	close(go[0]);
	close(stop[0]);
	close(rep[1]);
	sess_init(&s);
	if (read(rep[0], &b, 1) != 1 || b != 'R' || sess_open(&s) < 0) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
		die("cannot open the two sessions");
	}
	for (n = 0; n < o.warmup; n++)
		(void)call_echo(&s);
	n = time_calls(&s, idle, o.calls, o.seconds, &ierr);
	printf("{");
	print_lat("idle", idle, n, ierr);
	/* Bulk on: wait for the first blob to land so the stream is busy. */
	close(go[1]);
	if (read(rep[0], &b, 1) != 1 || b != 'F')
		fprintf(stderr, "mcpload: the bulk session did not start\n");
	/* By time, not count: the bulk transfer must run the whole phase. */
	n = time_calls(&s, busy, busy_max, o.seconds, &errors);
	close(stop[1]);
	if (read(rep[0], &bulk_calls, sizeof bulk_calls) != sizeof bulk_calls)
		bulk_calls = -1;
	waitpid(pid, NULL, 0);
	printf(",");
	print_lat("busy", busy, n, errors);
	printf(",\"bulk_calls\":%ld,\"bytes\":%zu}\n", bulk_calls, o.bytes);
	sess_end(&s, 0);
	return 0;
}

static int
mode_query(void)
{
	struct sess s;
	double *v = calloc((size_t)o.calls + 1, sizeof *v), t;
	long rows;
	int i, link = 0;
	size_t bytes;

	sess_init(&s);
	if (v == NULL || o.sql == NULL)
		die("query needs --sql");
	if (sess_open(&s) < 0)
		die("cannot open a session");
	for (i = -1; i < o.calls; i++) {	/* -1: the warm-up */
		t = now_ms();
		rows = call_query(&s, &link);
		if (i >= 0)
			v[i] = now_ms() - t;
		if (rows < 0 || (o.rows > 0 && rows != o.rows) ||
		    (o.rows == 0 && !link))
			die("query answer: %ld rows%s, wanted %ld%s", rows,
			    link ? " and a resource_link" : "", o.rows,
			    o.rows ? "" : " and a resource_link");
	}
	bytes = s.ans_len;
	printf("{\"kind\":\"%s\",\"rows\":%ld,\"answer_bytes\":%zu,\"runs\":[",
	    link ? "resource_link" : "rows", o.rows, bytes);
	for (i = 0; i < o.calls; i++)
		printf("%s%.1f", i ? "," : "", v[i]);
	printf("],");
	print_lat("ms", v, o.calls, 0);
	printf(",\"rows_per_s\":%.0f}\n",
	    o.rows > 0 ? (double)o.rows / (pct(v, o.calls, .5) / 1e3) : 0.0);
	sess_end(&s, 0);
	return 0;
}

static int
mode_sessions(void)
{
	int rep[2], hold[2], w, i, ok = 0, bad = 0;
	int per;
	char b;
	double t0 = now_ms();

	if (o.workers < 1)
		o.workers = 1;
	if (o.workers > o.sessions)
		o.workers = o.sessions;
	per = (o.sessions + o.workers - 1) / o.workers;
	if (pipe2(rep, O_CLOEXEC) < 0 || pipe2(hold, O_CLOEXEC) < 0)
		die("pipe");
	for (w = 0; w < o.workers; w++) {
		int lo = w * per, hi = lo + per;

		if (hi > o.sessions)
			hi = o.sessions;
		if (lo >= hi)
			break;
		if (fork() == 0) {
			/*
			 * Over HTTP one kept-alive connection per worker opens
			 * all its sessions (a session is the server's state, not
			 * a connection); over stdio each is its own process.
			 */
			int k, n = hi - lo, http = o.stdio_cmd == NULL;
			struct sess *ss = calloc(http ? 1 : (size_t)n, sizeof *ss);
			char (*sids)[256] = calloc((size_t)n, sizeof *sids);

			close(rep[0]);
			close(hold[1]);
			for (k = 0; k < n; k++) {
				struct sess *s = &ss[http ? 0 : k];
				int r;

				if (k == 0 || !http)
					sess_init(s);
				r = sess_open(s);
				memcpy(sids[k], s->sid, sizeof sids[k]);
				(void)!write(rep[1], r == 0 ? "R" : "E", 1);
			}
			wait_eof(hold[0]);
			for (k = 0; k < n; k++) {
				struct sess *s = &ss[http ? 0 : k];

				memcpy(s->sid, sids[k], sizeof s->sid);
				sess_end(s, http);
			}
			if (http)
				conn_close(&ss[0].c);
			_exit(0);
		}
	}
	close(rep[1]);
	close(hold[0]);
	for (i = 0; i < o.sessions; i++) {
		if (read(rep[0], &b, 1) != 1)
			break;
		if (b == 'R')
			ok++;
		else
			bad++;
	}
	printf("{\"sessions\":%d,\"opened\":%d,\"failed\":%d,\"open_s\":%.3f}\n",
	    o.sessions, ok, bad, (now_ms() - t0) / 1e3);
	fflush(stdout);
	/* Hold until our stdin closes, then end them all. */
	wait_eof(0);
	close(hold[1]);
	while (wait(NULL) > 0 || errno == EINTR)
		;
	return 0;
}

static int
mode_first(void)
{
	double t0 = now_ms(), end = t0 + o.seconds * 1e3;
	int tries = 0;
	struct sess s;

	sess_init(&s);
	while (now_ms() < end) {
		tries++;
		if (sess_open(&s) == 0 && call_echo(&s) == 0) {
			printf("{\"ms\":%.1f,\"tries\":%d}\n", now_ms() - t0, tries);
			sess_end(&s, 0);
			return 0;
		}
		conn_close(&s.c);
		usleep(5000);
	}
	printf("{\"ms\":null,\"tries\":%d}\n", tries);
	return 1;
}

/* Raw TCP: "N\n" out, N bytes back, for the link figure of ssh -R. */
static int
mode_raw(void)
{
	struct conn c = { .rfd = -1, .wfd = -1 };
	unsigned char *b = malloc(o.bytes);
	char req[32];
	int rl, n = 0;
	double t0, end;

	c.rfd = c.wfd = tcp_connect(o.host, o.port);
	if (c.rfd < 0 || b == NULL)
		die("cannot connect to %s", o.hostport);
	rl = snprintf(req, sizeof req, "%zu\n", o.bytes);
	if (conn_write(&c, req, (size_t)rl) < 0 ||
	    conn_read_exact(&c, b, o.bytes) < 0)
		die("raw warm-up failed");
	t0 = now_ms();
	end = t0 + o.seconds * 1e3;
	while (n < o.calls && now_ms() < end) {
		if (conn_write(&c, req, (size_t)rl) < 0 ||
		    conn_read_exact(&c, b, o.bytes) < 0)
			die("raw transfer failed");
		n++;
	}
	printf("{\"calls\":%d,\"bytes\":%zu,\"seconds\":%.3f,\"mb_per_s\":%.3f}\n",
	    n, o.bytes, (now_ms() - t0) / 1e3,
	    (double)n * (double)o.bytes / (1 << 20) / ((now_ms() - t0) / 1e3));
	conn_close(&c);
	return 0;
}

/*
 * The far end of --raw: on 127.0.0.1:o.serve_port, a process per
 * connection answers each line "N" with N bytes (a cached run of 'a'), so
 * ssh -R can be timed carrying the same 4 MiB messages with no MCP around
 * them.  Runs until killed.
 */
static int
serve_raw(void)
{
	struct sockaddr_in sa;
	int ls, fd, one = 1;

	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)o.serve_port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(ls, 16) < 0)
		die("cannot listen on 127.0.0.1:%d: %s", o.serve_port,
		    strerror(errno));
	signal(SIGCHLD, SIG_IGN);	/* no zombies */
	for (;;) {
		struct conn c = { .rfd = -1, .wfd = -1 };
		unsigned char *b = NULL;
		size_t have = 0, n, ll;
		char *line;

		if ((fd = accept(ls, NULL, NULL)) < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			die("accept: %s", strerror(errno));
		}
		if (fork() != 0) {
			close(fd);
			continue;
		}
		close(ls);
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		c.rfd = c.wfd = fd;
		while ((line = conn_line(&c, &ll)) != NULL) {
			n = (size_t)strtoull(line, NULL, 10);
			if (n > (64u << 20))
				n = 64u << 20;
			if (n > have) {
				if ((b = realloc(b, n)) == NULL)
					_exit(1);
				memset(b, 'a', n);
				have = n;
			}
			if (conn_write(&c, b, n) < 0)
				break;
		}
		_exit(0);
	}
}

/* ---- main ----------------------------------------------------------------- */

static void
parse_hostport(const char *hp)
{
	const char *colon = strrchr(hp, ':');

	if (colon == NULL || (size_t)(colon - hp) >= sizeof o.host)
		die("no port in %s", hp);
	memcpy(o.host, hp, (size_t)(colon - hp));
	o.host[colon - hp] = '\0';
	o.port = atoi(colon + 1);
	snprintf(o.hostport, sizeof o.hostport, "%s", hp);
}

static void
parse_url(const char *u)
{
	const char *p, *slash;
	char hp[300];

	if (strncmp(u, "https://", 8) == 0) {
		o.tls = 1;
		p = u + 8;
	} else if (strncmp(u, "http://", 7) == 0)
		p = u + 7;
	else
		die("not an http(s) URL: %s", u);
	slash = strchr(p, '/');
	if (slash == NULL)
		slash = p + strlen(p);
	if ((size_t)(slash - p) >= sizeof hp)
		die("URL too long");
	memcpy(hp, p, (size_t)(slash - p));
	hp[slash - p] = '\0';
	parse_hostport(hp);
	snprintf(o.path, sizeof o.path, "%s", *slash ? slash : "/");
}

int
main(int argc, char **argv)
{
	int i;

	signal(SIGPIPE, SIG_IGN);
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

#define OPT(name) (strcmp(a, name) == 0 && v != NULL && (i++, 1))
		if (OPT("--url"))
			o.url = v;
		else if (OPT("--token"))
			o.token = v;
		else if (OPT("--ca"))
			o.ca = v;
		else if (OPT("--stdio"))
			o.stdio_cmd = v;
		else if (OPT("--raw"))
			o.raw = v;
		else if (OPT("--accept"))
			o.accept = v;
		else if (OPT("--mode"))
			o.mode = v;
		else if (OPT("--calls"))
			o.calls = atoi(v);
		else if (OPT("--warmup"))
			o.warmup = atoi(v);
		else if (OPT("--sessions"))
			o.sessions = atoi(v);
		else if (OPT("--workers"))
			o.workers = atoi(v);
		else if (OPT("--seconds"))
			o.seconds = atof(v);
		else if (OPT("--bytes"))
			o.bytes = (size_t)strtoull(v, NULL, 10);
		else if (OPT("--sql"))
			o.sql = v;
		else if (OPT("--rows"))
			o.rows = atol(v);
		else if (OPT("--marker"))
			o.marker = v;
		else if (OPT("--serve-raw"))
			o.serve_port = atoi(v);
		else
			die("unknown or incomplete option %s (see the header "
			    "of tests/bench/mcpload.c)", a);
#undef OPT
	}
	if (o.serve_port > 0)
		return serve_raw();
	if (o.mode == NULL && o.raw == NULL)
		die("--mode is required");
	if (o.calls < 1)
		o.calls = 1;
	if (o.raw != NULL) {
		parse_hostport(o.raw);
		return mode_raw();
	}
	if (o.url != NULL)
		parse_url(o.url);
	else if (o.stdio_cmd == NULL)
		die("give --url, --stdio or --raw");
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(o.mode, "lat") == 0)
		return mode_lat();
	if (strcmp(o.mode, "rate") == 0)
		return mode_rate();
	if (strcmp(o.mode, "bulk") == 0)
		return mode_bulk();
	if (strcmp(o.mode, "hol") == 0)
		return mode_hol();
	if (strcmp(o.mode, "sessions") == 0)
		return mode_sessions();
	if (strcmp(o.mode, "first") == 0)
		return mode_first();
	if (strcmp(o.mode, "query") == 0)
		return mode_query();
	die("unknown mode %s", o.mode);
	return 1;
}
