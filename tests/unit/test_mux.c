/*
 * Unit tests for proto/mux.c.  Two muxes are wired back to back in memory:
 * frames taken from one side's mux_next_frame are fed to the other side's
 * mux_input, in both directions, so WINDOW credit flows as on a real link.
 * Forged frames (built with frame_put_header) test the receive-side limits.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "proto/frame.h"
#include "proto/mux.h"

#define MiB	(1024 * 1024)

struct event {
	int		 is_msg;	/* 1 message, 0 control frame */
	uint32_t	 stream;
	uint8_t		 type;
	uint16_t	 code;		/* CLOSE/OPEN_ERR/GOAWAY */
	char		 text[64];
	uint8_t		*data;		/* message copy (NUL-terminated) */
	size_t		 len;
};

struct peer {
	struct mux	*m;
	struct event	*ev;
	size_t		 nev;
	size_t		 evcap;
	uint8_t		*frame;		/* scratch for mux_next_frame */
	size_t		 cap;
	/* Counters of what this peer emitted. */
	size_t		 data_frames;
	size_t		 data_bytes;
	size_t		 window_frames;
	/* Test hooks run from on_message. */
	int		 remove_on_msg;
	int		 echo_on_msg;
};

static struct event *
ev_push(struct peer *p)
{
	if (p->nev == p->evcap) {
		p->evcap = p->evcap ? p->evcap * 2 : 16;
		p->ev = realloc(p->ev, p->evcap * sizeof(*p->ev));
		assert_non_null(p->ev);
	}
	memset(&p->ev[p->nev], 0, sizeof(p->ev[0]));
	return &p->ev[p->nev++];
}

static void
on_message(void *arg, uint32_t stream, const uint8_t *data, size_t len)
{
	struct peer *p = arg;
	struct event *e = ev_push(p);

	/* The buffer is NUL-terminated. */
	assert_int_equal(data[len], 0);
	e->is_msg = 1;
	e->stream = stream;
	e->len = len;
	e->data = malloc(len + 1);
	assert_non_null(e->data);
	memcpy(e->data, data, len + 1);
	if (p->echo_on_msg)
		assert_int_equal(mux_send(p->m, stream, data, len), 0);
	if (p->remove_on_msg)
		mux_stream_remove(p->m, stream);
}

static void
on_control(void *arg, const struct frame *f)
{
	struct peer *p = arg;
	struct event *e = ev_push(p);
	const char *text;
	size_t tl;

	e->stream = f->stream;
	e->type = f->type;
	if (f->type == FRAME_CLOSE || f->type == FRAME_OPEN_ERR ||
	    f->type == FRAME_GOAWAY) {
		assert_int_equal(frame_get_code_text(f, &e->code, &text, &tl),
		    0);
		if (tl >= sizeof(e->text))
			tl = sizeof(e->text) - 1;
		memcpy(e->text, text, tl);
	}
}

static void
peer_init(struct peer *p, const struct mux_limits *lim)
{
	struct mux_callbacks cb = { .on_message = on_message,
	    .on_control = on_control };

	memset(p, 0, sizeof(*p));
	p->m = mux_new(lim, &cb, p);
	p->cap = mux_frame_cap(p->m);
	p->frame = malloc(p->cap);
	assert_non_null(p->frame);
}

static void
peer_clear_events(struct peer *p)
{
	size_t i;

	for (i = 0; i < p->nev; i++)
		free(p->ev[i].data);
	p->nev = 0;
}

static void
peer_free(struct peer *p)
{
	peer_clear_events(p);
	free(p->ev);
	free(p->frame);
	mux_free(p->m);
}

/*
 * Moves one frame from -> to.  Returns 1 if a frame moved (its header in
 * *seen if not NULL), 0 if from had nothing to send.
 */
static int
xfer(struct peer *from, struct peer *to, struct frame *seen)
{
	struct frame f;
	size_t len;
	int r, code = -1;

	r = mux_next_frame(from->m, from->frame, from->cap, &len);
	if (r == MT_EAGAIN) {
		assert_false(mux_has_output(from->m));
		return 0;
	}
	assert_int_equal(r, 0);
	assert_int_equal(frame_decode(from->frame, len, from->cap, &f), 0);
	if (f.type == FRAME_DATA) {
		from->data_frames++;
		from->data_bytes += f.len;
	} else if (f.type == FRAME_WINDOW)
		from->window_frames++;
	if (seen != NULL)
		*seen = f;
	r = mux_input(to->m, from->frame, len, &code);
	assert_int_equal(r, 0);
	return 1;
}

/* Moves frames both ways until neither side has anything to send. */
static size_t
pump(struct peer *a, struct peer *b)
{
	size_t n = 0;
	int moved;

	do {
		moved = xfer(a, b, NULL);
		moved += xfer(b, a, NULL);
		n += moved;
	} while (moved);
	return n;
}

static uint8_t *
pattern(size_t len, uint32_t seed)
{
	uint8_t *p = malloc(len ? len : 1);
	size_t i;
	uint32_t x = seed * 2654435761U + 1;

	assert_non_null(p);
	for (i = 0; i < len; i++) {
		x = x * 1103515245U + 12345U;
		p[i] = (uint8_t)(x >> 16);
	}
	return p;
}

static void
pair_init(struct peer *a, struct peer *b, const struct mux_limits *la,
    const struct mux_limits *lb, uint32_t stream)
{
	peer_init(a, la);
	peer_init(b, lb);
	if (stream != 0) {
		assert_int_equal(mux_stream_add(a->m, stream), 0);
		assert_int_equal(mux_stream_add(b->m, stream), 0);
	}
}

/* Builds a frame into buf; returns its length. */
static size_t
forge(uint8_t *buf, uint8_t type, uint16_t flags, uint32_t stream,
    const void *payload, uint32_t len)
{
	frame_put_header(buf, type, flags, stream, len);
	if (len > 0)
		memcpy(buf + FRAME_HDR_LEN, payload, len);
	return FRAME_HDR_LEN + len;
}

/* --- tests ------------------------------------------------------------ */

static void
test_small_roundtrip(void **state)
{
	struct peer a, b;

	pair_init(&a, &b, NULL, NULL, 1);
	assert_int_equal(mux_send(a.m, 1, "hello", 5), 0);
	assert_int_equal(mux_stream_queued(a.m, 1), 5);
	assert_int_equal(mux_queued_total(a.m), 5);
	assert_true(mux_has_output(a.m));
	pump(&a, &b);
	assert_int_equal(b.nev, 1);
	assert_true(b.ev[0].is_msg);
	assert_int_equal(b.ev[0].stream, 1);
	assert_int_equal(b.ev[0].len, 5);
	assert_string_equal((char *)b.ev[0].data, "hello");
	assert_int_equal(mux_queued_total(a.m), 0);

	/* And back. */
	assert_int_equal(mux_send(b.m, 1, "{\"ok\":true}", 11), 0);
	pump(&a, &b);
	assert_int_equal(a.nev, 1);
	assert_string_equal((char *)a.ev[0].data, "{\"ok\":true}");
	peer_free(&a);
	peer_free(&b);
}

static void
test_empty_message(void **state)
{
	struct peer a, b;

	pair_init(&a, &b, NULL, NULL, 3);
	assert_int_equal(mux_send(a.m, 3, NULL, 0), 0);
	assert_int_equal(mux_send(a.m, 3, "x", 1), 0);
	pump(&a, &b);
	assert_int_equal(b.nev, 2);
	assert_int_equal(b.ev[0].len, 0);
	assert_int_equal(b.ev[0].data[0], 0);
	assert_int_equal(b.ev[1].len, 1);
	peer_free(&a);
	peer_free(&b);
}

static void
test_big_message(void **state)
{
	struct peer a, b;
	size_t len = 10 * MiB;
	uint8_t *msg = pattern(len, 1);

	pair_init(&a, &b, NULL, NULL, 7);
	assert_int_equal(mux_send(a.m, 7, msg, len), 0);
	pump(&a, &b);
	assert_int_equal(b.nev, 1);
	assert_int_equal(b.ev[0].len, len);
	assert_memory_equal(b.ev[0].data, msg, len);
	/* Bigger than the 4 MiB window: credit must have come back. */
	assert_true(b.window_frames >= 2);
	assert_int_equal(a.data_frames, len / 65536);
	free(msg);
	peer_free(&a);
	peer_free(&b);
}

static void
test_chunking_more(void **state)
{
	struct peer a, b;
	struct mux_limits lim;
	struct frame f;
	uint8_t *msg = pattern(3500, 2);
	uint32_t want[] = { 1000, 1000, 1000, 500 };
	size_t i;

	mux_limits_default(&lim);
	lim.chunk = 1000;
	pair_init(&a, &b, &lim, &lim, 5);
	assert_int_equal(mux_send(a.m, 5, msg, 3500), 0);
	for (i = 0; i < 4; i++) {
		assert_int_equal(xfer(&a, &b, &f), 1);
		assert_int_equal(f.type, FRAME_DATA);
		assert_int_equal(f.stream, 5);
		assert_int_equal(f.len, want[i]);
		assert_int_equal(f.flags & FRAME_F_MORE, i < 3 ? FRAME_F_MORE : 0);
		assert_int_equal(b.nev, i < 3 ? 0 : 1);
	}
	assert_int_equal(xfer(&a, &b, &f), 0);
	assert_memory_equal(b.ev[0].data, msg, 3500);

	/* A message of exactly one chunk has no MORE. */
	assert_int_equal(mux_send(a.m, 5, msg, 1000), 0);
	assert_int_equal(xfer(&a, &b, &f), 1);
	assert_int_equal(f.len, 1000);
	assert_int_equal(f.flags, 0);
	assert_int_equal(b.nev, 2);
	free(msg);
	peer_free(&a);
	peer_free(&b);
}

/*
 * mux_data_fit: a frame of the fitted payload, with the WebSocket header
 * (and mask) it gets, fills whole TLS records (TLS_RECORD_DATA); a mux
 * with that cap cuts a message into frames of exactly that payload, and
 * the peer still gets the message whole.
 */
static size_t
ws_framed(size_t payload, int masked)
{
	size_t len = FRAME_HDR_LEN + payload;

	return len + (len <= 125 ? 2 : len <= 65535 ? 4 : 10) +
	    (masked ? 4 : 0);
}

static void
test_data_fit(void **state)
{
	struct peer a, b;
	struct mux_limits lim;
	struct frame f;
	size_t chunks[] = { 16384, 65536, 100000, 1048576 }, i, n, fit;
	int masked;
	uint8_t *msg = pattern(200000, 7);

	for (i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		for (masked = 0; masked <= 1; masked++) {
			fit = mux_data_fit(chunks[i], masked);
			assert_true(fit <= chunks[i]);
			assert_true(fit >= chunks[i] / 2);
			assert_int_equal(ws_framed(fit, masked) %
			    TLS_RECORD_DATA, 0);
		}
	}
	assert_int_equal(mux_data_fit(65536, 1), 65512);
	assert_int_equal(mux_data_fit(65536, 0), 65516);
	/* Too small a chunk for a whole record: the chunk as it is. */
	assert_int_equal(mux_data_fit(1024, 1), 1024);

	mux_limits_default(&lim);
	lim.chunk = 65536;
	pair_init(&a, &b, &lim, &lim, 5);
	mux_set_data_max(a.m, mux_data_fit(lim.chunk, 1));
	assert_int_equal(mux_send(a.m, 5, msg, 200000), 0);
	for (n = 0; n < 200000; n += f.len) {
		assert_int_equal(xfer(&a, &b, &f), 1);
		assert_int_equal(f.type, FRAME_DATA);
		assert_int_equal(f.len, 200000 - n < 65512 ? 200000 - n : 65512);
	}
	assert_int_equal(b.nev, 1);
	assert_int_equal(b.ev[0].len, 200000);
	assert_memory_equal(b.ev[0].data, msg, 200000);
	free(msg);
	peer_free(&a);
	peer_free(&b);
}

/* A peer that takes smaller chunks than ours gets frames it accepts. */
static void
test_peer_chunk(void **state)
{
	struct peer a, b;
	struct mux_limits la, lb;
	struct frame f;
	size_t n, fit = mux_data_fit(65536, 1);
	uint8_t *msg = pattern(300000, 9);

	mux_limits_default(&la);
	la.chunk = 262144;
	mux_limits_default(&lb);
	lb.chunk = 65536;
	pair_init(&a, &b, &la, &lb, 5);
	mux_set_peer_chunk(a.m, lb.chunk, 1);
	assert_int_equal(mux_send(a.m, 5, msg, 300000), 0);
	for (n = 0; n < 300000; n += f.len) {
		assert_int_equal(xfer(&a, &b, &f), 1);
		assert_int_equal(f.type, FRAME_DATA);
		assert_int_equal(f.len, 300000 - n < fit ? 300000 - n : fit);
	}
	assert_int_equal(b.nev, 1);
	assert_int_equal(b.ev[0].len, 300000);
	assert_memory_equal(b.ev[0].data, msg, 300000);
	peer_free(&a);
	peer_free(&b);
	/* A peer announcing more than our own chunk: ours still bounds. */
	lb.chunk = 1048576;
	pair_init(&a, &b, &la, &lb, 5);
	mux_set_peer_chunk(a.m, lb.chunk, 1);
	assert_int_equal(mux_send(a.m, 5, msg, 300000), 0);
	assert_int_equal(xfer(&a, &b, &f), 1);
	assert_int_equal(f.len, mux_data_fit(262144, 1));
	free(msg);
	peer_free(&a);
	peer_free(&b);
}

static void
test_fairness(void **state)
{
	struct peer a, b;
	struct mux_limits la;
	struct frame f;
	size_t biglen = 64 * MiB, achunks = 0, i;
	uint8_t *big = pattern(biglen, 3);
	int got_b = 0;

	mux_limits_default(&la);
	la.max_msg = biglen;
	pair_init(&a, &b, &la, NULL, 1);
	assert_int_equal(mux_stream_add(a.m, 2), 0);
	assert_int_equal(mux_stream_add(b.m, 2), 0);
	assert_int_equal(mux_send(a.m, 1, big, biglen), 0);
	free(big);
	/* Stream A is well under way... */
	for (i = 0; i < 10; i++) {
		assert_int_equal(xfer(&a, &b, NULL), 1);
		while (xfer(&b, &a, NULL))
			;
	}
	/* ...when B queues a small call. */
	assert_int_equal(mux_send(a.m, 2, "small call 100 bytes ........"
	    "...................................................."
	    "...................", 100), 0);
	while (!got_b) {
		assert_int_equal(xfer(&a, &b, &f), 1);
		if (f.type == FRAME_DATA && f.stream == 1)
			achunks++;
		for (i = 0; i < b.nev; i++)
			if (b.ev[i].is_msg && b.ev[i].stream == 2)
				got_b = 1;
		while (xfer(&b, &a, NULL))
			;
	}
	assert_true(achunks <= 3);
	assert_int_equal(b.nev, 1);
	assert_int_equal(b.ev[0].len, 100);
	assert_true(mux_stream_queued(a.m, 1) > biglen - 16 * 65536);
	peer_free(&a);
	peer_free(&b);
}

/*
 * A small message takes the small-message lane: it goes out before the
 * next chunk of a bulk stream that is well under way.
 */
static void
test_small_first(void **state)
{
	struct peer a, b;
	struct mux_limits la;
	struct frame f;
	size_t biglen = 8 * MiB, i;
	uint8_t *big = pattern(biglen, 5);

	mux_limits_default(&la);
	la.max_msg = biglen;
	pair_init(&a, &b, &la, NULL, 1);
	assert_int_equal(mux_stream_add(a.m, 2), 0);
	assert_int_equal(mux_stream_add(b.m, 2), 0);
	assert_int_equal(mux_send(a.m, 1, big, biglen), 0);
	free(big);
	for (i = 0; i < 4; i++) {
		assert_int_equal(xfer(&a, &b, NULL), 1);
		while (xfer(&b, &a, NULL))
			;
	}
	assert_int_equal(mux_send(a.m, 2, "ping", 4), 0);
	assert_int_equal(xfer(&a, &b, &f), 1);
	assert_int_equal(f.type, FRAME_DATA);
	assert_int_equal(f.stream, 2);
	assert_int_equal(b.nev, 1);
	assert_int_equal(b.ev[0].stream, 2);
	assert_int_equal(b.ev[0].len, 4);
	/* A message over MUX_SMALL (4096) waits its turn in the ring. */
	big = pattern(8192, 6);
	assert_int_equal(mux_send(a.m, 2, big, 8192), 0);
	free(big);
	assert_int_equal(xfer(&a, &b, &f), 1);
	assert_int_equal(f.stream, 1);
	assert_int_equal(xfer(&a, &b, &f), 1);
	assert_int_equal(f.stream, 2);
	peer_free(&a);
	peer_free(&b);
}

/*
 * The small-message lane cannot starve a bulk stream: between two of its
 * chunks, at most one chunk's worth of small frames goes out.
 */
static void
test_small_lane_bounded(void **state)
{
	struct peer a, b;
	struct mux_limits la;
	struct frame f;
	size_t biglen = 8 * MiB, i, run = 0, maxrun = 0, bulk = 0;
	size_t smalllen = 1000, nsmall = 300;
	uint8_t *big = pattern(biglen, 7), *small = pattern(smalllen, 8);

	mux_limits_default(&la);
	la.max_msg = biglen;
	pair_init(&a, &b, &la, NULL, 1);
	assert_int_equal(mux_stream_add(a.m, 2), 0);
	assert_int_equal(mux_stream_add(b.m, 2), 0);
	assert_int_equal(mux_send(a.m, 1, big, biglen), 0);
	for (i = 0; i < nsmall; i++)
		assert_int_equal(mux_send(a.m, 2, small, smalllen), 0);
	free(big);
	free(small);
	for (i = 0; i < nsmall + 10; i++) {
		assert_int_equal(xfer(&a, &b, &f), 1);
		while (xfer(&b, &a, NULL))
			;
		if (f.type != FRAME_DATA)
			continue;
		if (f.stream == 1) {
			bulk++;
			run = 0;
		} else if (++run > maxrun)
			maxrun = run;
	}
	/* 65536 bytes of 1012-byte frames: 65 in a row at most. */
	assert_true(maxrun >= 2);
	assert_true(maxrun <= 65536 / (smalllen + FRAME_HDR_LEN) + 1);
	assert_true(bulk >= nsmall / 65);
	peer_free(&a);
	peer_free(&b);
}

static void
test_window_pause(void **state)
{
	struct peer a, b;
	size_t len = 10 * MiB;
	uint8_t *msg = pattern(len, 4);

	pair_init(&a, &b, NULL, NULL, 9);
	mux_recv_pause(b.m, 9);
	assert_int_equal(mux_send(a.m, 9, msg, len), 0);
	pump(&a, &b);
	/* Exactly one window went out, and the sender stopped. */
	assert_int_equal(a.data_bytes, 4 * MiB);
	assert_int_equal(mux_stream_queued(a.m, 9), len - 4 * MiB);
	assert_false(mux_has_output(a.m));
	assert_false(mux_has_output(b.m));
	assert_int_equal(b.window_frames, 0);
	assert_int_equal(b.nev, 0);

	/* Pausing twice or resuming unknown streams is harmless. */
	mux_recv_pause(b.m, 9);
	mux_recv_resume(b.m, 12345);
	mux_recv_resume(b.m, 9);
	assert_true(mux_has_output(b.m));
	pump(&a, &b);
	assert_int_equal(b.nev, 1);
	assert_int_equal(b.ev[0].len, len);
	assert_memory_equal(b.ev[0].data, msg, len);
	assert_int_equal(mux_stream_queued(a.m, 9), 0);
	free(msg);
	peer_free(&a);
	peer_free(&b);
}

static void
test_peer_window(void **state)
{
	struct peer a, b;
	struct mux_limits lb;
	uint8_t *msg = pattern(5000, 5);

	/* b's receive window is 1000, and a was told so in the handshake. */
	mux_limits_default(&lb);
	lb.window = 1000;
	peer_init(&a, NULL);
	peer_init(&b, &lb);
	mux_set_peer_window(a.m, 1000);
	assert_int_equal(mux_stream_add(a.m, 1), 0);
	assert_int_equal(mux_stream_add(b.m, 1), 0);
	assert_int_equal(mux_send(a.m, 1, msg, 5000), 0);
	/* Without b's WINDOW frames, a sends 1000 bytes and stops. */
	while (xfer(&a, &b, NULL))
		;
	assert_int_equal(a.data_bytes, 1000);
	assert_true(mux_has_output(b.m));
	pump(&a, &b);
	assert_int_equal(b.nev, 1);
	assert_memory_equal(b.ev[0].data, msg, 5000);
	free(msg);
	peer_free(&a);
	peer_free(&b);
}

static void
test_window_overrun(void **state)
{
	struct peer b;
	struct mux_limits lim;
	uint8_t buf[FRAME_HDR_LEN + 600], payload[600];
	size_t n;
	int code = -1;

	mux_limits_default(&lim);
	lim.window = 1000;
	peer_init(&b, &lim);
	assert_int_equal(mux_stream_add(b.m, 1), 0);
	memset(payload, 'x', sizeof(payload));
	n = forge(buf, FRAME_DATA, FRAME_F_MORE, 1, payload, 600);
	assert_int_equal(mux_input(b.m, buf, n, &code), 0);
	/* The peer ignores the WINDOW it is owed and sends 600 more. */
	assert_int_equal(mux_input(b.m, buf, n, &code), MT_EWINDOW);
	assert_int_equal(code, CLOSE_WINDOW);
	peer_free(&b);
}

static void
test_too_big(void **state)
{
	struct peer b;
	struct mux_limits lim;
	uint8_t buf[FRAME_HDR_LEN + 600], payload[600];
	size_t n;
	int code = -1;

	mux_limits_default(&lim);
	lim.max_msg = 1000;
	peer_init(&b, &lim);
	assert_int_equal(mux_stream_add(b.m, 1), 0);
	memset(payload, 'x', sizeof(payload));
	n = forge(buf, FRAME_DATA, FRAME_F_MORE, 1, payload, 600);
	assert_int_equal(mux_input(b.m, buf, n, &code), 0);
	assert_int_equal(mux_input(b.m, buf, n, &code), MT_ETOOBIG);
	assert_int_equal(code, CLOSE_TOO_BIG);
	assert_int_equal(b.nev, 0);

	/* Sending over max_msg is refused too. */
	assert_int_equal(mux_send(b.m, 1, payload, 600), 0);
	assert_int_equal(mux_send(b.m, 1, buf, 0), 0);
	{
		uint8_t *big = calloc(1, 1001);

		assert_non_null(big);
		assert_int_equal(mux_send(b.m, 1, big, 1001), MT_ETOOBIG);
		assert_int_equal(mux_send_control(b.m, FRAME_HELLO, 0, big,
		    FRAME_MAX_CONTROL + 1), MT_ETOOBIG);
		free(big);
	}
	peer_free(&b);
}

static void
test_unknown_stream(void **state)
{
	struct peer b;
	uint8_t buf[FRAME_HDR_LEN + 16], inc[4];
	size_t n;
	int code = -1;

	peer_init(&b, NULL);
	assert_int_equal(mux_stream_add(b.m, 1), 0);
	n = forge(buf, FRAME_DATA, 0, 99, "stray", 5);
	assert_int_equal(mux_input(b.m, buf, n, &code), 0);
	frame_put_u32(inc, 1000);
	n = forge(buf, FRAME_WINDOW, 0, 99, inc, 4);
	assert_int_equal(mux_input(b.m, buf, n, &code), 0);
	assert_int_equal(b.nev, 0);
	assert_false(mux_has_output(b.m));
	assert_int_equal(code, -1);
	peer_free(&b);
}

static void
test_decode_errors(void **state)
{
	struct peer b;
	uint8_t buf[FRAME_HDR_LEN + 16];
	size_t n;
	int code = -1;

	peer_init(&b, NULL);
	assert_int_equal(mux_stream_add(b.m, 1), 0);
	n = forge(buf, FRAME_DATA, 0, 1, "abc", 3);
	buf[0] = MT_PROTO_VERSION + 1;
	assert_int_equal(mux_input(b.m, buf, n, &code), MT_EVERSION);
	assert_int_equal(code, CLOSE_VERSION);

	code = -1;
	assert_true(mux_input(b.m, buf, 5, &code) < 0);
	assert_int_equal(code, CLOSE_PROTOCOL);

	code = -1;
	n = forge(buf, FRAME_TYPE_MAX + 1, 0, 0, "abc", 3);
	assert_true(mux_input(b.m, buf, n, &code) < 0);
	assert_int_equal(code, CLOSE_PROTOCOL);

	/* Header says 3 bytes, message carries 2. */
	code = -1;
	n = forge(buf, FRAME_DATA, 0, 1, "abc", 3);
	assert_true(mux_input(b.m, buf, n - 1, &code) < 0);
	assert_int_equal(code, CLOSE_PROTOCOL);
	/* A NULL close_code is fine. */
	assert_true(mux_input(b.m, buf, n - 1, NULL) < 0);
	assert_int_equal(b.nev, 0);
	peer_free(&b);
}

static void
test_control_first(void **state)
{
	struct peer a, b;
	struct frame f;
	uint8_t ping[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };

	pair_init(&a, &b, NULL, NULL, 1);
	assert_int_equal(mux_send(a.m, 1, "data", 4), 0);
	assert_int_equal(mux_send_control(a.m, FRAME_PING, 0, ping, 8), 0);
	assert_int_equal(mux_send_code(a.m, FRAME_GOAWAY, 0, CLOSE_SHUTDOWN,
	    "draining"), 0);
	assert_int_equal(mux_send_control(a.m, FRAME_DATA, 1, "x", 1),
	    MT_EINVAL);
	/* Frames the peer would reject as malformed are refused here. */
	assert_int_equal(mux_send_control(a.m, FRAME_HELLO, 4, "{}", 2),
	    MT_EINVAL);
	assert_int_equal(mux_send_control(a.m, FRAME_PING, 0, ping, 3),
	    MT_EINVAL);
	assert_int_equal(mux_send_control(a.m, 0, 0, ping, 8), MT_EINVAL);
	assert_int_equal(mux_send_code(a.m, FRAME_OPEN_ERR, 0, 1, "x"),
	    MT_EINVAL);
	assert_int_equal(xfer(&a, &b, &f), 1);
	assert_int_equal(f.type, FRAME_PING);
	assert_memory_equal(f.payload, ping, 8);
	assert_int_equal(xfer(&a, &b, &f), 1);
	assert_int_equal(f.type, FRAME_GOAWAY);
	assert_int_equal(xfer(&a, &b, &f), 1);
	assert_int_equal(f.type, FRAME_DATA);
	assert_int_equal(xfer(&a, &b, &f), 0);

	assert_int_equal(b.nev, 3);
	assert_int_equal(b.ev[0].type, FRAME_PING);
	assert_int_equal(b.ev[1].type, FRAME_GOAWAY);
	assert_int_equal(b.ev[1].code, CLOSE_SHUTDOWN);
	assert_string_equal(b.ev[1].text, "draining");
	assert_true(b.ev[2].is_msg);
	peer_free(&a);
	peer_free(&b);
}

static void
test_finish(void **state)
{
	struct peer a, b;
	struct mux_limits lim;
	uint8_t *msg = pattern(10000, 6);

	mux_limits_default(&lim);
	lim.chunk = 1024;
	pair_init(&a, &b, &lim, &lim, 4);
	assert_int_equal(mux_stream_add(a.m, 8), 0);
	assert_int_equal(mux_stream_add(b.m, 8), 0);
	assert_int_equal(mux_send(a.m, 4, msg, 10000), 0);
	assert_int_equal(mux_send(a.m, 4, "tail", 4), 0);
	mux_stream_finish(a.m, 4, CLOSE_NORMAL, "bye");
	/* A second finish does not change the reason. */
	mux_stream_finish(a.m, 4, CLOSE_INTERNAL, "again");
	assert_int_equal(mux_send(a.m, 4, "late", 4), MT_ENOTFOUND);
	assert_true(mux_stream_exists(a.m, 4));
	/* A stream with nothing queued closes at once. */
	mux_stream_finish(a.m, 8, CLOSE_UPSTREAM, NULL);
	pump(&a, &b);

	assert_false(mux_stream_exists(a.m, 4));
	assert_false(mux_stream_exists(a.m, 8));
	assert_int_equal(mux_stream_count(a.m), 0);
	assert_int_equal(b.nev, 4);
	assert_int_equal(b.ev[0].type, FRAME_CLOSE);
	assert_int_equal(b.ev[0].stream, 8);
	assert_int_equal(b.ev[0].code, CLOSE_UPSTREAM);
	assert_true(b.ev[1].is_msg);
	assert_memory_equal(b.ev[1].data, msg, 10000);
	assert_true(b.ev[2].is_msg);
	assert_string_equal((char *)b.ev[2].data, "tail");
	assert_int_equal(b.ev[3].type, FRAME_CLOSE);
	assert_int_equal(b.ev[3].stream, 4);
	assert_int_equal(b.ev[3].code, CLOSE_NORMAL);
	assert_string_equal(b.ev[3].text, "bye");
	/* Finishing an unknown stream does nothing. */
	mux_stream_finish(a.m, 4, CLOSE_NORMAL, "bye");
	assert_false(mux_has_output(a.m));
	free(msg);
	peer_free(&a);
	peer_free(&b);
}

static void
test_finish_waits_for_credit(void **state)
{
	struct peer a, b;
	size_t len = 6 * MiB;
	uint8_t *msg = pattern(len, 7);

	pair_init(&a, &b, NULL, NULL, 1);
	mux_recv_pause(b.m, 1);
	assert_int_equal(mux_send(a.m, 1, msg, len), 0);
	mux_stream_finish(a.m, 1, CLOSE_NORMAL, "done");
	pump(&a, &b);
	/* Blocked on credit: the CLOSE must not overtake the data. */
	assert_true(mux_stream_exists(a.m, 1));
	assert_int_equal(b.nev, 0);
	mux_recv_resume(b.m, 1);
	pump(&a, &b);
	assert_int_equal(b.nev, 2);
	assert_true(b.ev[0].is_msg);
	assert_memory_equal(b.ev[0].data, msg, len);
	assert_int_equal(b.ev[1].type, FRAME_CLOSE);
	assert_false(mux_stream_exists(a.m, 1));
	free(msg);
	peer_free(&a);
	peer_free(&b);
}

static void
test_link_reset(void **state)
{
	struct peer a, b, c;
	size_t len = 1 * MiB, i;
	uint8_t *msg = pattern(len, 8);
	uint8_t buf[FRAME_HDR_LEN + 16];
	int code;

	memset(buf, 0, sizeof(buf));
	pair_init(&a, &b, NULL, NULL, 2);
	assert_int_equal(mux_send(a.m, 2, msg, len), 0);
	assert_int_equal(mux_send(a.m, 2, "second", 6), 0);
	assert_int_equal(mux_send_control(a.m, FRAME_CATALOG, 0, "{}", 2), 0);
	assert_int_equal(xfer(&a, &b, NULL), 1);	/* the CATALOG */
	for (i = 0; i < 5; i++)
		assert_int_equal(xfer(&a, &b, NULL), 1);
	assert_int_equal(b.nev, 1);
	assert_int_equal(mux_stream_queued(a.m, 2), len + 6 - 5 * 65536);
	assert_int_equal(mux_send_control(a.m, FRAME_PING, 0, buf, 8), 0);

	/* The link drops. */
	mux_link_reset(a.m);
	assert_int_equal(mux_stream_queued(a.m, 2), len + 6);
	assert_int_equal(mux_queued_total(a.m), len + 6);
	assert_true(mux_stream_exists(a.m, 2));

	/* The old receiver forgets its partial message too. */
	mux_link_reset(b.m);
	code = -1;
	assert_int_equal(mux_input(b.m, buf,
	    forge(buf, FRAME_DATA, 0, 2, "x", 1), &code), 0);
	assert_int_equal(b.nev, 2);
	assert_int_equal(b.ev[1].len, 1);

	/* A fresh receiver on the next connection gets both, whole. */
	peer_init(&c, NULL);
	assert_int_equal(mux_stream_add(c.m, 2), 0);
	pump(&a, &c);
	assert_int_equal(c.nev, 2);	/* no stale PING */
	assert_int_equal(c.ev[0].len, len);
	assert_memory_equal(c.ev[0].data, msg, len);
	assert_string_equal((char *)c.ev[1].data, "second");
	assert_int_equal(mux_queued_total(a.m), 0);
	free(msg);
	peer_free(&a);
	peer_free(&b);
	peer_free(&c);
}

static void
test_many_streams(void **state)
{
	struct peer a, b;
	struct mux_limits lim;
	uint32_t n = 5000, i, id;
	char text[64];
	unsigned char *seen = calloc(n + 1, 1);
	size_t k;

	assert_non_null(seen);
	mux_limits_default(&lim);
	lim.max_streams = 10000;
	pair_init(&a, &b, &lim, &lim, 0);
	for (i = 1; i <= n; i++) {
		/* Spread ids over the whole range. */
		id = i * 7919;
		assert_int_equal(mux_stream_add(a.m, id), 0);
		assert_int_equal(mux_stream_add(b.m, id), 0);
		snprintf(text, sizeof(text), "message for stream %u", id);
		assert_int_equal(mux_send(a.m, id, text, strlen(text)), 0);
	}
	assert_int_equal(mux_stream_count(a.m), n);
	pump(&a, &b);
	assert_int_equal(b.nev, n);
	for (k = 0; k < b.nev; k++) {
		id = b.ev[k].stream;
		assert_int_equal(id % 7919, 0);
		assert_true(id / 7919 >= 1 && id / 7919 <= n);
		assert_false(seen[id / 7919]);
		seen[id / 7919] = 1;
		snprintf(text, sizeof(text), "message for stream %u", id);
		assert_string_equal((char *)b.ev[k].data, text);
	}
	for (i = 1; i <= n; i += 2)
		mux_stream_remove(a.m, i * 7919);
	assert_int_equal(mux_stream_count(a.m), n / 2);
	assert_true(mux_stream_exists(a.m, 2 * 7919));
	assert_false(mux_stream_exists(a.m, 7919));
	free(seen);
	peer_free(&a);
	peer_free(&b);
}

static void
test_max_streams(void **state)
{
	struct peer a;
	struct mux_limits lim;

	mux_limits_default(&lim);
	lim.max_streams = 3;
	peer_init(&a, &lim);
	assert_int_equal(mux_stream_add(a.m, 0), MT_EINVAL);
	assert_int_equal(mux_stream_add(a.m, 1), 0);
	assert_int_equal(mux_stream_add(a.m, 1), MT_EINVAL);
	assert_int_equal(mux_stream_add(a.m, 2), 0);
	assert_int_equal(mux_stream_add(a.m, 3), 0);
	assert_int_equal(mux_stream_add(a.m, 4), MT_ELIMIT);
	mux_stream_remove(a.m, 2);
	mux_stream_remove(a.m, 2);
	assert_int_equal(mux_stream_add(a.m, 4), 0);
	assert_int_equal(mux_stream_count(a.m), 3);
	assert_int_equal(mux_send(a.m, 2, "x", 1), MT_ENOTFOUND);
	assert_int_equal(mux_stream_queued(a.m, 2), 0);
	peer_free(&a);
}

static void
test_queued_accounting(void **state)
{
	struct peer a;

	peer_init(&a, NULL);
	assert_int_equal(mux_stream_add(a.m, 1), 0);
	assert_int_equal(mux_stream_add(a.m, 2), 0);
	assert_int_equal(mux_send(a.m, 1, "aaaa", 4), 0);
	assert_int_equal(mux_send(a.m, 2, "bbbbbb", 6), 0);
	assert_int_equal(mux_send(a.m, 2, "cc", 2), 0);
	assert_int_equal(mux_stream_queued(a.m, 2), 8);
	assert_int_equal(mux_queued_total(a.m), 12);
	mux_stream_remove(a.m, 2);
	assert_int_equal(mux_queued_total(a.m), 4);
	/* Freeing a mux with queued data and control frames leaks nothing. */
	assert_int_equal(mux_send_code(a.m, FRAME_CLOSE, 1, 0, "x"), 0);
	peer_free(&a);
}

static int drains;
static uint32_t drain_stream;

static void
on_drain_count(void *arg, uint32_t stream)
{
	drains++;
	drain_stream = stream;
}

/* on_drain fires once when a stream's queue falls below the low-water mark. */
static void
test_drain_callback(void **state)
{
	struct mux_callbacks cb = { .on_drain = on_drain_count };
	struct mux *m = mux_new(NULL, &cb, NULL);
	size_t big = 2 * MUX_DRAIN_LOWAT, cap = mux_frame_cap(m), len;
	uint8_t *msg = calloc(1, big), *out = malloc(cap);
	int frames = 0;

	drains = 0;
	assert_int_equal(mux_stream_add(m, 5), 0);
	assert_int_equal(mux_send(m, 5, msg, big), 0);
	/* The default credit (4 MiB) covers the whole 2 MiB message. */
	while (mux_next_frame(m, out, cap, &len) == 0) {
		frames++;
		if (drains == 0)
			assert_true(mux_stream_queued(m, 5) >= MUX_DRAIN_LOWAT);
	}
	assert_int_equal(drains, 1);
	assert_int_equal(drain_stream, 5);
	assert_int_equal(mux_stream_queued(m, 5), 0);
	assert_true(frames >= 32);
	/* A small message never crosses the mark: no callback. */
	assert_int_equal(mux_send(m, 5, "x", 1), 0);
	while (mux_next_frame(m, out, cap, &len) == 0)
		;
	assert_int_equal(drains, 1);
	free(msg);
	free(out);
	mux_free(m);
}

static void
test_reentrant_callbacks(void **state)
{
	struct peer a, b;

	pair_init(&a, &b, NULL, NULL, 1);
	assert_int_equal(mux_stream_add(a.m, 2), 0);
	assert_int_equal(mux_stream_add(b.m, 2), 0);
	/* b echoes stream 1; b removes stream 2 from inside on_message. */
	b.echo_on_msg = 1;
	assert_int_equal(mux_send(a.m, 1, "ping", 4), 0);
	pump(&a, &b);
	assert_int_equal(a.nev, 1);
	assert_string_equal((char *)a.ev[0].data, "ping");
	b.echo_on_msg = 0;
	b.remove_on_msg = 1;
	assert_int_equal(mux_send(a.m, 2, "bye", 3), 0);
	assert_int_equal(mux_send(a.m, 2, "ignored", 7), 0);
	pump(&a, &b);
	assert_false(mux_stream_exists(b.m, 2));
	assert_int_equal(b.nev, 2);
	assert_string_equal((char *)b.ev[1].data, "bye");
	peer_free(&a);
	peer_free(&b);
}

static void
remove_each(void *arg, uint32_t id)
{
	struct peer *p = arg;

	/* Remove this stream and the one after it. */
	mux_stream_remove(p->m, id);
	mux_stream_remove(p->m, id + 1);
	p->data_frames++;	/* count calls */
}

static void
test_foreach(void **state)
{
	struct peer a;
	uint32_t i;

	peer_init(&a, NULL);
	for (i = 1; i <= 100; i++)
		assert_int_equal(mux_stream_add(a.m, i), 0);
	mux_foreach_stream(a.m, remove_each, &a);
	assert_int_equal(mux_stream_count(a.m), 0);
	assert_true(a.data_frames >= 50 && a.data_frames <= 100);
	peer_free(&a);
}

/* --- link budget ------------------------------------------------------ */

#define B_WIN	65536
#define B_CHUNK	4096

static void
budget_limits(struct mux_limits *lim, size_t budget)
{
	mux_limits_default(lim);
	lim->chunk = B_CHUNK;
	lim->window = B_WIN;
	lim->budget = budget;
}

/* Messages b got on stream. */
static size_t
msgs_on(const struct peer *p, uint32_t stream)
{
	size_t i, n = 0;

	for (i = 0; i < p->nev; i++)
		if (p->ev[i].is_msg && p->ev[i].stream == stream)
			n++;
	return n;
}

/*
 * Eight streams each send a message of four windows at once.  Returns the
 * most the receiver held at any time; every message must arrive intact.
 */
static size_t
budget_run(size_t budget)
{
	struct mux_limits lim;
	struct peer a, b;
	size_t len = 4 * B_WIN, max = 0, i;
	uint8_t *msg[8];
	uint32_t id;
	int moved;

	budget_limits(&lim, budget);
	pair_init(&a, &b, &lim, &lim, 0);
	for (id = 1; id <= 8; id++) {
		assert_int_equal(mux_stream_add(a.m, id), 0);
		assert_int_equal(mux_stream_add(b.m, id), 0);
		msg[id - 1] = pattern(len, id);
		assert_int_equal(mux_send(a.m, id, msg[id - 1], len), 0);
	}
	do {
		moved = xfer(&a, &b, NULL);
		if (mux_held(b.m) > max)
			max = mux_held(b.m);
		moved += xfer(&b, &a, NULL);
	} while (moved);
	assert_int_equal(b.nev, 8);
	for (i = 0; i < 8; i++) {
		id = b.ev[i].stream;
		assert_int_equal(b.ev[i].len, len);
		assert_memory_equal(b.ev[i].data, msg[id - 1], len);
	}
	assert_int_equal(mux_held(b.m), 0);
	for (i = 0; i < 8; i++)
		free(msg[i]);
	peer_free(&a);
	peer_free(&b);
	return max;
}

/*
 * Many streams whose partial messages add up to more than the budget: the
 * receiver stops granting credit but for the oldest partial message, so
 * the total it holds stays near the budget (at most one window per stream
 * beyond it, plus the message that is allowed to finish), and everything
 * still arrives.  Without a budget round-robin holds nearly all of it.
 */
static void
test_budget_reassembly(void **state)
{
	size_t unbounded = budget_run((size_t)1 << 40);
	size_t bounded = budget_run(2 * B_WIN);

	assert_true(unbounded > 7 * 4 * B_WIN);
	assert_true(bounded > 2 * B_WIN);	/* it was exercised */
	assert_true(bounded <= 2 * B_WIN + 8 * B_WIN + 4 * B_WIN);
	assert_true(bounded < unbounded / 2);
}

/*
 * Stalled consumers (paused streams) that fill the budget: a stream of
 * small messages gets no more credit once its first window is used (the
 * sender stops with data queued), while a big message still completes
 * (it is the oldest partial one).  When one consumer reads again, credit
 * flows; with budget = 2 windows, the one stalled stream left (holding a
 * window) no longer blocks anybody.
 */
static void
test_budget_stalled(void **state)
{
	struct mux_limits lim;
	struct peer a, b;
	uint8_t small[B_CHUNK], *big;
	size_t i, biglen = 4 * B_WIN;
	uint32_t id;

	budget_limits(&lim, 2 * B_WIN);
	pair_init(&a, &b, &lim, &lim, 0);
	for (id = 1; id <= 4; id++) {
		assert_int_equal(mux_stream_add(a.m, id), 0);
		assert_int_equal(mux_stream_add(b.m, id), 0);
	}
	memset(small, 'x', sizeof(small));
	/* Streams 1 and 2: consumers that stop reading, a window each. */
	mux_recv_pause(b.m, 1);
	mux_recv_pause(b.m, 2);
	for (i = 0; i < 2 * (B_WIN / B_CHUNK); i++)
		assert_int_equal(mux_send(a.m, 1 + (uint32_t)(i & 1), small,
		    sizeof(small)), 0);
	pump(&a, &b);
	assert_int_equal(mux_held(b.m), 2 * B_WIN);

	/* Stream 4: 40 small messages, 2.5 windows; only one gets through. */
	for (i = 0; i < 40; i++)
		assert_int_equal(mux_send(a.m, 4, small, sizeof(small)), 0);
	pump(&a, &b);
	assert_int_equal(msgs_on(&b, 4), B_WIN / B_CHUNK);
	assert_int_equal(mux_stream_queued(a.m, 4),
	    (40 - B_WIN / B_CHUNK) * B_CHUNK);
	assert_false(mux_has_output(a.m));	/* the sender stopped */
	assert_false(mux_has_output(b.m));	/* no credit granted */

	/* Stream 3: a message of 4 windows still completes. */
	big = pattern(biglen, 3);
	assert_int_equal(mux_send(a.m, 3, big, biglen), 0);
	pump(&a, &b);
	assert_int_equal(msgs_on(&b, 3), 1);
	assert_memory_equal(b.ev[b.nev - 1].data, big, biglen);
	assert_int_equal(msgs_on(&b, 4), B_WIN / B_CHUNK);	/* still held */

	/* Consumer 1 reads again: the withheld credit is released. */
	mux_recv_resume(b.m, 1);
	assert_int_equal(mux_held(b.m), B_WIN);
	pump(&a, &b);
	assert_int_equal(msgs_on(&b, 4), 40);
	assert_int_equal(mux_stream_queued(a.m, 4), 0);

	/* Stream 2 is still stalled: 10 more windows pass next to it. */
	for (i = 0; i < 10 * (B_WIN / B_CHUNK); i++)
		assert_int_equal(mux_send(a.m, 4, small, sizeof(small)), 0);
	pump(&a, &b);
	assert_int_equal(msgs_on(&b, 4), 40 + 10 * (B_WIN / B_CHUNK));
	assert_int_equal(mux_held(b.m), B_WIN);
	free(big);
	peer_free(&a);
	peer_free(&b);
}

/* A stalled stream's partial message does not keep the exemption. */
static void
test_budget_paused_partial(void **state)
{
	struct mux_limits lim;
	struct peer a, b;
	uint8_t *m1, *m2;
	size_t len = 4 * B_WIN;

	budget_limits(&lim, 2 * B_WIN);
	pair_init(&a, &b, &lim, &lim, 1);
	assert_int_equal(mux_stream_add(a.m, 2), 0);
	assert_int_equal(mux_stream_add(b.m, 2), 0);
	m1 = pattern(len, 1);
	m2 = pattern(len, 2);
	/* Stream 1 starts a big message and its consumer stalls mid-way. */
	assert_int_equal(mux_send(a.m, 1, m1, len), 0);
	while (mux_held(b.m) < 2 * B_WIN) {
		assert_int_equal(xfer(&a, &b, NULL), 1);
		(void)xfer(&b, &a, NULL);
	}
	mux_recv_pause(b.m, 1);
	assert_true(mux_held(b.m) >= 2 * B_WIN);	/* over the budget */
	/* Stream 2's big message is now the oldest unpaused one. */
	assert_int_equal(mux_send(a.m, 2, m2, len), 0);
	pump(&a, &b);
	assert_int_equal(msgs_on(&b, 2), 1);
	assert_int_equal(msgs_on(&b, 1), 0);
	assert_true(mux_stream_queued(a.m, 1) > 0);
	mux_recv_resume(b.m, 1);
	pump(&a, &b);
	assert_int_equal(msgs_on(&b, 1), 1);
	assert_memory_equal(b.ev[1].data, m1, len);
	assert_int_equal(mux_held(b.m), 0);
	free(m1);
	free(m2);
	peer_free(&a);
	peer_free(&b);
}

static int link_drains;

static void
on_link_drain_count(void *arg)
{
	link_drains++;
}

/*
 * Send side: queued bytes over the budget make the mux congested (so
 * producers back off) until they fall below half of it.
 */
static void
test_budget_congested(void **state)
{
	struct mux_limits lim;
	struct mux_callbacks cb = { .on_link_drain = on_link_drain_count };
	struct mux *m;
	size_t cap, len, part = 300 * 1024;
	uint8_t *msg = calloc(1, part), *out;

	mux_limits_default(&lim);
	lim.budget = MiB;
	m = mux_new(&lim, &cb, NULL);
	cap = mux_frame_cap(m);
	out = malloc(cap);
	link_drains = 0;
	assert_int_equal(mux_stream_add(m, 1), 0);
	assert_int_equal(mux_stream_add(m, 2), 0);
	assert_int_equal(mux_send(m, 1, msg, part), 0);
	assert_int_equal(mux_send(m, 2, msg, part), 0);
	assert_int_equal(mux_send(m, 1, msg, part), 0);
	assert_false(mux_congested(m));
	assert_int_equal(mux_send(m, 2, msg, part), 0);	/* 1.2 MiB */
	assert_true(mux_congested(m));
	while (mux_congested(m)) {
		assert_int_equal(link_drains, 0);
		assert_true(mux_queued_total(m) >= MiB / 2 - 65536);
		assert_int_equal(mux_next_frame(m, out, cap, &len), 0);
	}
	assert_int_equal(link_drains, 1);
	assert_true(mux_queued_total(m) < MiB / 2);
	while (mux_next_frame(m, out, cap, &len) == 0)
		;
	assert_int_equal(link_drains, 1);

	/* Removing the streams that filled it ends it too, with no DATA. */
	assert_int_equal(mux_send(m, 1, msg, part), 0);
	assert_int_equal(mux_send(m, 1, msg, part), 0);
	assert_int_equal(mux_send(m, 1, msg, part), 0);
	assert_int_equal(mux_send(m, 1, msg, part), 0);
	assert_true(mux_congested(m));
	mux_stream_remove(m, 1);
	assert_false(mux_congested(m));
	assert_int_equal(mux_next_frame(m, out, cap, &len), MT_EAGAIN);
	assert_int_equal(link_drains, 2);
	free(msg);
	free(out);
	mux_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_small_roundtrip),
		cmocka_unit_test(test_empty_message),
		cmocka_unit_test(test_big_message),
		cmocka_unit_test(test_chunking_more),
		cmocka_unit_test(test_data_fit),
		cmocka_unit_test(test_peer_chunk),
		cmocka_unit_test(test_fairness),
		cmocka_unit_test(test_small_first),
		cmocka_unit_test(test_small_lane_bounded),
		cmocka_unit_test(test_window_pause),
		cmocka_unit_test(test_peer_window),
		cmocka_unit_test(test_window_overrun),
		cmocka_unit_test(test_too_big),
		cmocka_unit_test(test_unknown_stream),
		cmocka_unit_test(test_decode_errors),
		cmocka_unit_test(test_control_first),
		cmocka_unit_test(test_finish),
		cmocka_unit_test(test_drain_callback),
		cmocka_unit_test(test_finish_waits_for_credit),
		cmocka_unit_test(test_link_reset),
		cmocka_unit_test(test_many_streams),
		cmocka_unit_test(test_max_streams),
		cmocka_unit_test(test_queued_accounting),
		cmocka_unit_test(test_reentrant_callbacks),
		cmocka_unit_test(test_foreach),
		cmocka_unit_test(test_budget_reassembly),
		cmocka_unit_test(test_budget_stalled),
		cmocka_unit_test(test_budget_paused_partial),
		cmocka_unit_test(test_budget_congested),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
