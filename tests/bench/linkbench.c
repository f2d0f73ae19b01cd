/*
 * linkbench: the tunnel link alone, against plain TCP carriers (issue 3).
 *
 *   linkbench link --cert F --key F --ca F [options]
 *	The real link code path without the daemons: proto/mux.c and
 *	proto/frame.c over a libwebsockets WSS connection on loopback (TLS
 *	1.2/1.3 by mbedTLS, subprotocol mcptun.1, one lws_write per WRITEABLE
 *	as relay/tunnel.c and client/link.c do, the same receive buffer
 *	sizes), default limits (4 MiB window, 64 KiB chunks).  The process
 *	forks: the child dials like mcptun-client and answers, the parent
 *	listens like mcptun-relay and asks and measures.
 *   linkbench tcp-serve PORT
 *	The answering side for TCP carriers (ssh -R, stunnel, raw loopback).
 *   linkbench tcp HOST:PORT [options]
 *	The asking side over TCP: bulk on one connection, pings on a second
 *	one (over ssh -R both are channels of the one ssh connection).
 *
 * Both sides speak the same tiny protocol: a request is the decimal size
 * N, the answer is N bytes (on the link: one message each way on a stream;
 * on TCP: "N\n" and N raw bytes).  Phases, each reported in the one JSON
 * line on stdout:
 *   bulk	sequential 4 MiB answers for --seconds: MiB/s
 *   idle	--pings sequential 64-byte round trips: p50/p99 in us
 *   busy	the same pings while a bulk transfer runs on another stream
 *		(connection): the head-of-line figure; bulk MiB/s meanwhile
 *
 * Options: --bytes N (4194304) --seconds S (4) --pings N (400);
 * --chunk N and --window N override the link's DATA chunk and per-stream
 * window (limits.chunk, 65536; limits.window, 4194304);
 * --notsent-lowat N sets TCP_NOTSENT_LOWAT on the link's socket (both
 * ends), which keeps the kernel's unsent queue short so that the mux, not
 * the socket buffer, decides what goes next; --rcvbuf N sets SO_RCVBUF on
 * both ends (ends the kernel's autotuning), which bounds what can wait
 * unread at a receiver that cannot keep up.
 * --trace 1 (link only) says on stderr where the pings waited: the
 * answering side stamps each ping answer with when the request reached it,
 * how many frames it wrote before the answer and its socket's send queue;
 * the asking side splits each round trip into its own mux queue, the
 * request's way, the answerer's mux queue and the answer's way back (lws,
 * TLS, both kernels' buffers), for the p50 band, p90-p99 and the top 1%,
 * and gives read/write system calls and CPU per MiB of both sides during
 * the bulk phase (from /proc).
 */
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <linux/sockios.h>

#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "common/buf.h"
#include "common/err.h"
#include "proto/frame.h"
#include "proto/mux.h"

#define PING_BYTES	64
#define MAX_ANSWER	((size_t)16 * 1024 * 1024)
#define S_BULK		1
#define S_PING		3

static size_t opt_bytes = 4194304;
static double opt_seconds = 4;
static int opt_pings = 400;
static uint32_t opt_chunk;		/* 0: the daemons' default */
static uint32_t opt_window;		/* 0: the daemons' default */
static int opt_lowat;			/* TCP_NOTSENT_LOWAT on the link, 0 off */
static int opt_trace;			/* --trace: where busy pings wait */
static int opt_rcvbuf;			/* SO_RCVBUF on the link, 0 autotuned */
static uint8_t *payload;		/* MAX_ANSWER bytes to answer from */

static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "linkbench: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of n sorted values, in microseconds. */
static double
pct_us(const double *v, int n, double p)
{
	int i = (int)(p / 100.0 * n + 0.999999) - 1;

	if (n == 0)
		return -1;
	if (i < 0)
		i = 0;
	if (i >= n)
		i = n - 1;
	return v[i] * 1e6;
}

struct result {
	double	 bulk_mib_s;
	int	 bulk_n;
	double	 idle[2];	/* p50, p99 us */
	double	 busy[2];
	double	 busy_mib_s;
	int	 busy_bulk_n;
};

static void
print_result(const char *carrier, const struct result *r, double cpu)
{
	printf("{\"carrier\":\"%s\",\"bytes\":%zu,\"bulk_mb_per_s\":%.1f,"
	    "\"bulk_n\":%d,\"idle_p50_us\":%.0f,\"idle_p99_us\":%.0f,"
	    "\"busy_p50_us\":%.0f,\"busy_p99_us\":%.0f,"
	    "\"busy_bulk_mb_per_s\":%.1f,\"busy_bulk_n\":%d,\"pings\":%d",
	    carrier, opt_bytes, r->bulk_mib_s, r->bulk_n, r->idle[0],
	    r->idle[1], r->busy[0], r->busy[1], r->busy_mib_s, r->busy_bulk_n,
	    opt_pings);
	if (cpu >= 0)
		printf(",\"cpu_s\":%.2f", cpu);
	printf("}\n");
	fflush(stdout);
}

/* ---- the link: mux over lws ------------------------------------------- */

/*
 * --trace: the answering side stamps each ping answer with what it saw of
 * the previous ping (the answer is built before its own frame is written):
 * when the request arrived, how many frames it wrote before the answer's,
 * when the answer's frame went to lws_write and how full its socket's send
 * queue was then.  CLOCK_MONOTONIC is shared by both processes.
 */
struct ping_stamp {
	double	 t_req;		/* answerer: request delivered by the mux */
	double	 t_write;	/* answerer: answer frame handed to lws_write */
	int32_t	 frames;	/* answerer: frames written in between */
	int32_t	 outq;		/* answerer: SIOCOUTQ after that write */
	int32_t	 nsent;		/* answerer: SIOCOUTQNSD after that write */
	int32_t	 lws_buffered;	/* answerer: lws_send_pipe_choked then */
};

struct ping_trace {
	double	 t0;		/* asker: mux_send of the request */
	double	 t_wr;		/* asker: request frame to lws_write */
	double	 t_recv;	/* asker: answer delivered */
	int32_t	 inq;		/* asker: SIOCINQ when the request went out */
	struct ping_stamp peer;
};

struct side {
	struct lws_context *ctx;
	struct mux	*m;
	struct lws	*wsi;
	uint8_t		*txbuf;
	size_t		 txcap;
	struct buf	 rx;
	int		 closed;
	int		 asker;		/* parent: asks and measures */

	/* Asker state. */
	int		 bulk_on;	/* keep a bulk request outstanding */
	int		 bulk_out;	/* requests outstanding */
	int		 bulk_n;
	size_t		 bulk_bytes;
	int		 ping_out;
	double		 ping_t0;
	double		*rtt;
	int		 nrtt;

	/* --trace */
	struct ping_trace *tr;		/* asker, one per ping */
	int		 ping_wr_pending;	/* asker: request not yet written */
	struct ping_stamp cur, last;	/* answerer */
	int		 ans_pending;	/* answerer: answer not yet written */
};

static struct side S;

static void
side_want_write(void)
{
	if (S.wsi != NULL && mux_has_output(S.m))
		lws_callback_on_writable(S.wsi);
}

static void
ask(uint32_t stream, size_t n)
{
	char req[32];
	int len = snprintf(req, sizeof(req), "%zu", n);

	if (mux_send(S.m, stream, req, (size_t)len) != 0)
		die("mux_send failed");
	side_want_write();
}

static void
on_message(void *arg, uint32_t stream, const uint8_t *data, size_t len)
{
	size_t n;

	if (!S.asker) {
		/* Answer: the requested number of bytes. */
		n = strtoul((const char *)data, NULL, 10);
		if (n > MAX_ANSWER)
			n = MAX_ANSWER;
		if (opt_trace && stream == S_PING &&
		    n >= sizeof(struct ping_stamp)) {
			uint8_t ans[MAX_ANSWER < 4096 ? MAX_ANSWER : 4096];

			if (n > sizeof(ans))
				n = sizeof(ans);
			memcpy(ans, payload, n);
			memcpy(ans, &S.last, sizeof(S.last));
			memset(&S.cur, 0, sizeof(S.cur));
			S.cur.t_req = now_s();
			S.ans_pending = 1;
			if (mux_send(S.m, stream, ans, n) != 0)
				die("mux_send of the answer failed");
			side_want_write();
			return;
		}
		if (mux_send(S.m, stream, payload, n) != 0)
			die("mux_send of the answer failed");
		side_want_write();
		return;
	}
	if (stream == S_BULK) {
		S.bulk_out--;
		S.bulk_n++;
		S.bulk_bytes += len;
		if (S.bulk_on) {
			S.bulk_out++;
			ask(S_BULK, opt_bytes);
		}
	} else if (stream == S_PING) {
		double t = now_s();

		if (S.tr != NULL) {
			S.tr[S.nrtt].t_recv = t;
			/* The stamp is about the previous ping. */
			if (S.nrtt > 0 && len >= sizeof(struct ping_stamp))
				memcpy(&S.tr[S.nrtt - 1].peer, data,
				    sizeof(struct ping_stamp));
		}
		S.rtt[S.nrtt++] = t - S.ping_t0;
		S.ping_out = 0;
	}
}

static void
on_control(void *arg, const struct frame *f)
{
}

static int
side_receive(struct lws *wsi, const void *in, size_t len)
{
	int code = 0, r;

	if (buf_append(&S.rx, in, len) != 0)
		die("frame too large");
	if (!lws_is_final_fragment(wsi))
		return 0;
	r = mux_input(S.m, buf_ptr(&S.rx), buf_len(&S.rx), &code);
	buf_reset(&S.rx);
	if (r != 0)
		die("mux_input: %s (close code %d)", mt_strerror(r), code);
	side_want_write();
	return 0;
}

static int
side_write(struct lws *wsi)
{
	size_t len;
	int r;

	r = mux_next_frame(S.m, S.txbuf + LWS_PRE, S.txcap, &len);
	if (r == MT_EAGAIN)
		return 0;
	if (r != 0)
		die("mux_next_frame: %s", mt_strerror(r));
	if (opt_trace) {
		uint8_t *h = S.txbuf + LWS_PRE;
		uint32_t id = (uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 |
		    (uint32_t)h[6] << 8 | h[7];
		int fd = lws_get_socket_fd(wsi), v = 0;

		if (S.asker && id == S_PING && S.ping_wr_pending) {
			S.ping_wr_pending = 0;
			S.tr[S.nrtt].t_wr = now_s();
			if (ioctl(fd, SIOCINQ, &v) == 0)
				S.tr[S.nrtt].inq = v;
		} else if (!S.asker && S.ans_pending) {
			if (id == S_PING && h[1] == FRAME_DATA) {
				S.ans_pending = 0;
				S.cur.t_write = now_s();
			} else
				S.cur.frames++;
		}
	}
	if (lws_write(wsi, S.txbuf + LWS_PRE, len, LWS_WRITE_BINARY) <
	    (int)len)
		die("lws_write failed");
	if (opt_trace && !S.asker && S.cur.t_write != 0 && S.last.t_req !=
	    S.cur.t_req) {
		int fd = lws_get_socket_fd(wsi), v = 0;

		if (ioctl(fd, SIOCOUTQ, &v) == 0)
			S.cur.outq = v;
		if (ioctl(fd, SIOCOUTQNSD, &v) == 0)
			S.cur.nsent = v;
		S.cur.lws_buffered = lws_send_pipe_choked(wsi);
		S.last = S.cur;
	}
	if (mux_has_output(S.m))
		lws_callback_on_writable(wsi);
	return 0;
}

static int
link_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	switch (reason) {
	case LWS_CALLBACK_ESTABLISHED:
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		S.wsi = wsi;
		if (opt_lowat > 0 && setsockopt(lws_get_socket_fd(wsi),
		    IPPROTO_TCP, TCP_NOTSENT_LOWAT, &opt_lowat,
		    sizeof(opt_lowat)) != 0)
			die("TCP_NOTSENT_LOWAT: %s", strerror(errno));
		if (opt_rcvbuf > 0 && setsockopt(lws_get_socket_fd(wsi),
		    SOL_SOCKET, SO_RCVBUF, &opt_rcvbuf,
		    sizeof(opt_rcvbuf)) != 0)
			die("SO_RCVBUF: %s", strerror(errno));
		side_want_write();
		return 0;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		S.closed = -1;
		return 0;
	case LWS_CALLBACK_RECEIVE:
	case LWS_CALLBACK_CLIENT_RECEIVE:
		return side_receive(wsi, in, len);
	case LWS_CALLBACK_SERVER_WRITEABLE:
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		if (S.closed)
			return -1;
		return side_write(wsi);
	case LWS_CALLBACK_CLOSED:
	case LWS_CALLBACK_CLIENT_CLOSED:
		S.closed = 1;
		S.wsi = NULL;
		return 0;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static struct lws_protocols link_protocols[] = {
	{ "http", lws_callback_http_dummy, 0, 0, 0, NULL, 0 },
	{ "mcptun.1", link_cb, 0, 128 * 1024, 0, NULL, 0 },
	LWS_PROTOCOL_LIST_TERM
};

static void
side_init(int asker)
{
	struct mux_callbacks cb = { .on_message = on_message,
	    .on_control = on_control };
	struct mux_limits lim;

	memset(&S, 0, sizeof(S));
	S.asker = asker;
	mux_limits_default(&lim);	/* the daemons' default limits */
	if (opt_chunk != 0)
		lim.chunk = opt_chunk;
	if (opt_window != 0)
		lim.window = opt_window;
	S.m = mux_new(&lim, &cb, NULL);
	if (mux_stream_add(S.m, S_BULK) != 0 ||
	    mux_stream_add(S.m, S_PING) != 0)
		die("mux_stream_add failed");
	S.txcap = mux_frame_cap(S.m);
	S.txbuf = malloc(LWS_PRE + S.txcap);
	S.rtt = calloc((size_t)opt_pings, sizeof(double));
	if (opt_trace && asker &&
	    (S.tr = calloc((size_t)opt_pings + 1, sizeof(*S.tr))) == NULL)
		die("out of memory");
	if (S.txbuf == NULL || S.rtt == NULL)
		die("out of memory");
	buf_init(&S.rx, FRAME_HDR_LEN + (lim.chunk > FRAME_MAX_CONTROL ?
	    lim.chunk : FRAME_MAX_CONTROL));
}

static void
service_until(int *flag, int want)
{
	while (*flag != want && !S.closed)
		lws_service(S.ctx, 0);
	if (S.closed)
		die("the link closed early");
}

static pid_t child_pid;

static double
cpu_seconds(int who)
{
	struct rusage ru;

	getrusage(who, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* CPU seconds used so far by process pid (from /proc). */
static double
proc_cpu(pid_t pid)
{
	char path[64], line[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	if (fgets(line, sizeof(line), f) != NULL &&
	    (p = strrchr(line, ')')) != NULL)
		sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
		    &ut, &st);
	fclose(f);
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Read and write system calls of process pid so far (/proc/PID/io). */
static void
proc_sysc(pid_t pid, double *r, double *w)
{
	char path[64], line[128];
	FILE *f;

	*r = *w = 0;
	snprintf(path, sizeof(path), "/proc/%d/io", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		sscanf(line, "syscr: %lf", r);
		sscanf(line, "syscw: %lf", w);
	}
	fclose(f);
}

static int
cmp_trace(const void *a, const void *b)
{
	const struct ping_trace *x = a, *y = b;
	double dx = x->t_recv - x->t0, dy = y->t_recv - y->t0;

	return dx < dy ? -1 : dx > dy;
}

/*
 * --trace: where the pings of one phase waited, on stderr.  Columns, all in
 * us: q = asker's mux queue (mux_send to lws_write of the request), req =
 * request on the wire and in the answerer's receive path, mux = answerer's
 * mux queue (frames = chunks it wrote first), wire = answer from lws_write
 * to delivery (lws, TLS, both kernels' buffers, the asker's reading and
 * decrypting); outq/unsent = answerer's SIOCOUTQ/SIOCOUTQNSD right after
 * the answer's lws_write, inq = asker's SIOCINQ as its request went out.
 */
static void
trace_report(const char *phase, int n, double mib_s, double cpu_self,
    double cpu_peer)
{
	struct ping_trace *t;
	int i, k, from[3], cnt[3];
	const char *name[3] = { "p50 band", "p90-p99 ", "top 1%  " };
	double q, rq, mx, w, fr, oq, ns, iq, lb;

	/* The last ping has no stamp from the answerer. */
	n--;
	if (S.tr == NULL || n < 10)
		return;
	qsort(S.tr, (size_t)n, sizeof(*S.tr), cmp_trace);
	from[0] = n * 45 / 100; cnt[0] = n / 10;
	from[1] = n * 90 / 100; cnt[1] = n * 9 / 100;
	from[2] = n * 99 / 100; cnt[2] = n - from[2];
	fprintf(stderr, "trace %s: %d pings, bulk %.0f MiB/s, CPU asker %.0f%% "
	    "answerer %.0f%%\n", phase, n, mib_s, cpu_self * 100,
	    cpu_peer * 100);
	for (k = 0; k < 3; k++) {
		q = rq = mx = w = fr = oq = ns = iq = lb = 0;
		if (cnt[k] < 1)
			cnt[k] = 1;
		for (i = from[k]; i < from[k] + cnt[k] && i < n; i++) {
			t = &S.tr[i];
			q += t->t_wr - t->t0;
			rq += t->peer.t_req - t->t_wr;
			mx += t->peer.t_write - t->peer.t_req;
			w += t->t_recv - t->peer.t_write;
			fr += t->peer.frames;
			oq += t->peer.outq;
			ns += t->peer.nsent;
			iq += t->inq;
			lb += t->peer.lws_buffered;
		}
		fprintf(stderr, "  %s rtt %6.0f = q %4.0f + req %5.0f + mux %5.0f "
		    "(%.1f frames) + wire %5.0f us; outq %.0f KiB unsent %.0f KiB, "
		    "asker inq %.0f KiB, choked %.0f%%; wire x MiB/s = %.0f KiB\n",
		    name[k], (q + rq + mx + w) / cnt[k] * 1e6, q / cnt[k] * 1e6,
		    rq / cnt[k] * 1e6, mx / cnt[k] * 1e6, fr / cnt[k],
		    w / cnt[k] * 1e6, oq / cnt[k] / 1024, ns / cnt[k] / 1024,
		    iq / cnt[k] / 1024, lb / cnt[k] * 100,
		    w / cnt[k] * mib_s * 1024);
	}
}

/* Runs pings sequentially; returns how many. */
static int
link_pings(int n)
{
	int i;

	S.nrtt = 0;
	if (S.tr != NULL)
		memset(S.tr, 0, (size_t)opt_pings * sizeof(*S.tr));
	for (i = 0; i < n; i++) {
		S.ping_out = 1;
		S.ping_t0 = now_s();
		if (S.tr != NULL) {
			S.tr[i].t0 = S.ping_t0;
			S.ping_wr_pending = 1;
		}
		ask(S_PING, PING_BYTES);
		service_until(&S.ping_out, 0);
	}
	return S.nrtt;
}

static void
link_asker(struct result *r)
{
	double t0, el, c0, p0, sr[2], sw[2];
	int n;

	/* Warm-up: TLS, buffers, credit. */
	S.bulk_out = 1;
	ask(S_BULK, opt_bytes);
	service_until(&S.bulk_out, 0);
	link_pings(20);

	/* Bulk alone. */
	S.bulk_n = 0;
	S.bulk_bytes = 0;
	S.bulk_on = 1;
	S.bulk_out = 1;
	proc_sysc(getpid(), &sr[0], &sw[0]);
	proc_sysc(child_pid, &sr[1], &sw[1]);
	c0 = cpu_seconds(RUSAGE_SELF);
	p0 = proc_cpu(child_pid);
	t0 = now_s();
	ask(S_BULK, opt_bytes);
	while (now_s() - t0 < opt_seconds && !S.closed)
		lws_service(S.ctx, 0);
	el = now_s() - t0;
	S.bulk_on = 0;
	r->bulk_n = S.bulk_n;
	r->bulk_mib_s = (double)S.bulk_bytes / (1 << 20) / el;
	if (opt_trace) {
		double mib = (double)S.bulk_bytes / (1 << 20), r1, w1, r2, w2;

		proc_sysc(getpid(), &r1, &w1);
		proc_sysc(child_pid, &r2, &w2);
		fprintf(stderr, "trace bulk: %.0f MiB/s; per MiB: asker "
		    "%.0f reads %.0f writes %.1f ms CPU, answerer %.0f reads "
		    "%.0f writes %.1f ms CPU\n", r->bulk_mib_s,
		    (r1 - sr[0]) / mib, (w1 - sw[0]) / mib,
		    (cpu_seconds(RUSAGE_SELF) - c0) / mib * 1e3,
		    (r2 - sr[1]) / mib, (w2 - sw[1]) / mib,
		    (proc_cpu(child_pid) - p0) / mib * 1e3);
	}
	service_until(&S.bulk_out, 0);

	/* Pings, idle. */
	n = link_pings(opt_pings);
	trace_report("idle", n, 0, 0, 0);
	qsort(S.rtt, (size_t)n, sizeof(double), cmp_double);
	r->idle[0] = pct_us(S.rtt, n, 50);
	r->idle[1] = pct_us(S.rtt, n, 99);

	/* Pings next to a bulk stream. */
	S.bulk_n = 0;
	S.bulk_bytes = 0;
	S.bulk_on = 1;
	S.bulk_out = 1;
	ask(S_BULK, opt_bytes);
	/* Let the bulk stream fill the pipe first. */
	t0 = now_s();
	while (now_s() - t0 < 0.2 && !S.closed)
		lws_service(S.ctx, 0);
	S.bulk_n = 0;
	S.bulk_bytes = 0;
	c0 = cpu_seconds(RUSAGE_SELF);
	p0 = proc_cpu(child_pid);
	t0 = now_s();
	n = link_pings(opt_pings);
	el = now_s() - t0;
	S.bulk_on = 0;
	r->busy_bulk_n = S.bulk_n;
	r->busy_mib_s = (double)S.bulk_bytes / (1 << 20) / el;
	trace_report("busy", n, r->busy_mib_s,
	    (cpu_seconds(RUSAGE_SELF) - c0) / el,
	    (proc_cpu(child_pid) - p0) / el);
	qsort(S.rtt, (size_t)n, sizeof(double), cmp_double);
	r->busy[0] = pct_us(S.rtt, n, 50);
	r->busy[1] = pct_us(S.rtt, n, 99);
	service_until(&S.bulk_out, 0);
}

static int
free_tcp_port(void)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &al) != 0)
		die("cannot find a free port");
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* The dialling, answering side (mcptun-client's role). */
static void
link_child(int port, const char *ca)
{
	struct lws_context_creation_info info;
	struct lws_client_connect_info ci;
	int tries;

	side_init(0);
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = link_protocols + 1;
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	info.client_ssl_ca_filepath = ca;
	if ((S.ctx = lws_create_context(&info)) == NULL)
		die("child: lws_create_context failed");
	for (tries = 0; tries < 100; tries++) {
		memset(&ci, 0, sizeof(ci));
		ci.context = S.ctx;
		ci.address = "127.0.0.1";
		ci.port = port;
		ci.path = "/tunnel";
		ci.host = "localhost";
		ci.origin = "localhost";
		ci.protocol = "mcptun.1";
		ci.local_protocol_name = "mcptun.1";
		ci.ssl_connection = LCCSCF_USE_SSL;
		S.closed = 0;
		if (lws_client_connect_via_info(&ci) == NULL)
			die("child: cannot start a connection");
		while (S.wsi == NULL && S.closed == 0)
			lws_service(S.ctx, 0);
		if (S.wsi != NULL)
			break;
		usleep(50000);
	}
	if (S.wsi == NULL)
		die("child: cannot connect to the parent");
	while (!S.closed)
		lws_service(S.ctx, 0);
	lws_context_destroy(S.ctx);
	exit(0);
}

static int
mode_link(const char *cert, const char *key, const char *ca)
{
	struct lws_context_creation_info info;
	struct result r;
	pid_t pid;
	int port = free_tcp_port(), st;
	double cpu;

	fflush(stdout);
	if ((pid = fork()) < 0)
		die("fork failed");
	if (pid == 0)
		link_child(port, ca);
	child_pid = pid;
	side_init(1);
	memset(&info, 0, sizeof(info));
	info.port = port;
	info.iface = "127.0.0.1";
	info.protocols = link_protocols;
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
	    LWS_SERVER_OPTION_DISABLE_IPV6;
	info.ssl_cert_filepath = cert;
	info.ssl_private_key_filepath = key;
	info.pt_serv_buf_size = 64 * 1024;	/* as mcptun-relay */
	if ((S.ctx = lws_create_context(&info)) == NULL) {
		kill(pid, SIGTERM);
		die("lws_create_context failed (certificate?)");
	}
	while (S.wsi == NULL) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			die("the dialling child exited");
		lws_service(S.ctx, 0);
	}
	memset(&r, 0, sizeof(r));
	link_asker(&r);
	/* Close: the child exits when the link does. */
	S.closed = 1;
	lws_callback_on_writable(S.wsi);
	lws_service(S.ctx, 0);
	lws_context_destroy(S.ctx);
	if (waitpid(pid, &st, 0) != pid)
		die("waitpid failed");
	cpu = cpu_seconds(RUSAGE_SELF) + cpu_seconds(RUSAGE_CHILDREN);
	print_result("mcptun-link", &r, cpu);
	return 0;
}

/* ---- TCP carriers -------------------------------------------------------- */

static int
write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	ssize_t w;

	while (n > 0) {
		if ((w = write(fd, b, n)) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

static int
read_exact(int fd, void *p, size_t n)
{
	uint8_t *b = p;
	ssize_t r;

	while (n > 0) {
		if ((r = read(fd, b, n)) <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			return -1;
		}
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

static void
nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void *
serve_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char line[32];
	size_t i, n;

	nodelay(fd);
	for (;;) {
		/* One byte at a time: requests are tiny and never pipelined. */
		for (i = 0; i < sizeof(line) - 1; i++) {
			if (read_exact(fd, &line[i], 1) != 0)
				goto out;
			if (line[i] == '\n')
				break;
		}
		line[i] = '\0';
		n = strtoul(line, NULL, 10);
		if (n > MAX_ANSWER)
			n = MAX_ANSWER;
		if (write_all(fd, payload, n) != 0)
			break;
	}
 out:
	close(fd);
	return NULL;
}

static void __attribute__((noreturn))
mode_tcp_serve(int port)
{
	struct sockaddr_in a;
	pthread_t t;
	int fd, c, one = 1;

	signal(SIGPIPE, SIG_IGN);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    listen(fd, 16) != 0)
		die("cannot listen on 127.0.0.1:%d", port);
	for (;;) {
		if ((c = accept(fd, NULL, NULL)) < 0) {
			if (errno == EINTR)
				continue;
			die("accept failed");
		}
		if (pthread_create(&t, NULL, serve_conn, (void *)(intptr_t)c)
		    != 0)
			die("pthread_create failed");
		pthread_detach(t);
	}
}

static const char *tcp_host;
static int tcp_port;

static int
tcp_dial(void)
{
	struct sockaddr_in a;
	int fd;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)tcp_port);
	if (inet_pton(AF_INET, tcp_host, &a.sin_addr) != 1)
		die("bad address %s", tcp_host);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
		die("cannot connect to %s:%d", tcp_host, tcp_port);
	nodelay(fd);
	return fd;
}

static int
tcp_ask(int fd, uint8_t *buf, size_t n)
{
	char req[32];
	int len = snprintf(req, sizeof(req), "%zu\n", n);

	if (write_all(fd, req, (size_t)len) != 0 || read_exact(fd, buf, n) != 0)
		die("transfer failed");
	return 0;
}

struct bulk_run {
	int		 fd;
	uint8_t		*buf;
	volatile int	 stop;
	int		 n;
};

static void *
bulk_thread(void *arg)
{
	struct bulk_run *b = arg;

	while (!b->stop) {
		tcp_ask(b->fd, b->buf, opt_bytes);
		b->n++;
	}
	return NULL;
}

static int
tcp_pings(int fd, double *rtt, int n)
{
	uint8_t buf[PING_BYTES];
	double t0;
	int i;

	for (i = 0; i < n; i++) {
		t0 = now_s();
		tcp_ask(fd, buf, PING_BYTES);
		rtt[i] = now_s() - t0;
	}
	return n;
}

static int
mode_tcp(const char *carrier)
{
	struct bulk_run b;
	struct result r;
	pthread_t t;
	double *rtt = calloc((size_t)opt_pings, sizeof(double)), t0, el;
	int pfd, n = 0;

	memset(&b, 0, sizeof(b));
	memset(&r, 0, sizeof(r));
	if ((b.buf = malloc(opt_bytes)) == NULL || rtt == NULL)
		die("out of memory");
	b.fd = tcp_dial();
	pfd = tcp_dial();
	tcp_ask(b.fd, b.buf, opt_bytes);
	tcp_pings(pfd, rtt, opt_pings < 20 ? opt_pings : 20);

	t0 = now_s();
	while (now_s() - t0 < opt_seconds) {
		tcp_ask(b.fd, b.buf, opt_bytes);
		n++;
	}
	el = now_s() - t0;
	r.bulk_n = n;
	r.bulk_mib_s = (double)n * (double)opt_bytes / (1 << 20) / el;

	n = tcp_pings(pfd, rtt, opt_pings);
	qsort(rtt, (size_t)n, sizeof(double), cmp_double);
	r.idle[0] = pct_us(rtt, n, 50);
	r.idle[1] = pct_us(rtt, n, 99);

	if (pthread_create(&t, NULL, bulk_thread, &b) != 0)
		die("pthread_create failed");
	usleep(200000);
	b.n = 0;
	t0 = now_s();
	n = tcp_pings(pfd, rtt, opt_pings);
	el = now_s() - t0;
	r.busy_bulk_n = b.n;
	b.stop = 1;
	pthread_join(t, NULL);
	r.busy_mib_s = (double)r.busy_bulk_n * (double)opt_bytes / (1 << 20) /
	    el;
	qsort(rtt, (size_t)n, sizeof(double), cmp_double);
	r.busy[0] = pct_us(rtt, n, 50);
	r.busy[1] = pct_us(rtt, n, 99);
	close(b.fd);
	close(pfd);
	/* This side only; link.sh adds the carrier's and tcp-serve's. */
	print_result(carrier, &r, cpu_seconds(RUSAGE_SELF));
	return 0;
}

/* ---- main ------------------------------------------------------------------ */

static void
usage(void)
{
	fprintf(stderr, "usage: linkbench link --cert F --key F --ca F [opts]\n"
	    "       linkbench tcp-serve PORT\n"
	    "       linkbench tcp HOST:PORT [--carrier NAME] [opts]\n"
	    "opts: --bytes N --seconds S --pings N --notsent-lowat N --chunk N --window N\n"
	    "      --trace 1 --rcvbuf N (link)\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *cert = NULL, *key = NULL, *ca = NULL, *carrier = "tcp";
	char *colon;
	int i;

	if (argc < 2)
		usage();
	if ((payload = malloc(MAX_ANSWER)) == NULL)
		die("out of memory");
	for (i = 0; (size_t)i < MAX_ANSWER; i++)
		payload[i] = (uint8_t)('a' + i % 26);
	lws_set_log_level(LLL_ERR, NULL);
	if (strcmp(argv[1], "tcp-serve") == 0) {
		if (argc != 3)
			usage();
		mode_tcp_serve(atoi(argv[2]));
	}
	for (i = 2; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (argv[i][0] != '-') {
			if (strcmp(argv[1], "tcp") != 0 || tcp_host != NULL)
				usage();
			tcp_host = argv[i];
			continue;
		}
		if (v == NULL)
			usage();
		if (strcmp(argv[i], "--cert") == 0)
			cert = v;
		else if (strcmp(argv[i], "--key") == 0)
			key = v;
		else if (strcmp(argv[i], "--ca") == 0)
			ca = v;
		else if (strcmp(argv[i], "--carrier") == 0)
			carrier = v;
		else if (strcmp(argv[i], "--bytes") == 0)
			opt_bytes = strtoul(v, NULL, 10);
		else if (strcmp(argv[i], "--seconds") == 0)
			opt_seconds = atof(v);
		else if (strcmp(argv[i], "--pings") == 0)
			opt_pings = atoi(v);
		else if (strcmp(argv[i], "--window") == 0)
			opt_window = (uint32_t)strtoul(v, NULL, 10);
		else if (strcmp(argv[i], "--chunk") == 0)
			opt_chunk = (uint32_t)strtoul(v, NULL, 10);
		else if (strcmp(argv[i], "--notsent-lowat") == 0)
			opt_lowat = atoi(v);
		else if (strcmp(argv[i], "--trace") == 0)
			opt_trace = atoi(v);
		else if (strcmp(argv[i], "--rcvbuf") == 0)
			opt_rcvbuf = atoi(v);
		else
			usage();
		i++;
	}
	if (opt_bytes == 0 || opt_bytes > MAX_ANSWER - 1024 || opt_pings < 1)
		usage();
	if (strcmp(argv[1], "link") == 0) {
		if (cert == NULL || key == NULL || ca == NULL)
			usage();
		return mode_link(cert, key, ca);
	}
	if (strcmp(argv[1], "tcp") == 0) {
		if (tcp_host == NULL || (colon = strrchr(tcp_host, ':')) == NULL)
			usage();
		*colon = '\0';
		tcp_port = atoi(colon + 1);
		return mode_tcp(carrier);
	}
	usage();
	return 2;
}
