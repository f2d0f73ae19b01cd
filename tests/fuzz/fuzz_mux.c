/*
 * libFuzzer target for proto/mux.c.  The input is a little program: each
 * operation byte picks an action (feed a raw message or a forged DATA or
 * WINDOW frame to mux_input, drain mux_next_frame, queue messages and
 * control frames, pause, finish, add or remove streams, reset the link),
 * and the following bytes are its arguments.  The callbacks call back into
 * the mux the way the link code does.  Small limits make windows, chunking
 * and max_msg bite on short inputs.
 *
 * Checks, beyond "no crash, no sanitizer report": every frame the mux emits
 * decodes, DATA never exceeds a chunk, mux_queued_total equals the sum over
 * streams, the bytes held against the link budget stay in range (and are
 * 0 without streams), and draining always ends with mux_has_output() false.
 *
 * Build: clang -fsanitize=fuzzer,address,undefined (see the Makefile's
 * fuzz rule).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "proto/frame.h"
#include "proto/mux.h"

#define FZ_CHUNK	64
#define FZ_WINDOW	256
#define FZ_MAX_MSG	1024
#define FZ_STREAMS	8
#define FZ_BUDGET	(2 * FZ_WINDOW)	/* the link budget bites too */
#define FZ_IDS		6	/* stream ids 0..5: 0 and unknown ones too */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz {
	const uint8_t	*p;
	size_t		 left;
	struct mux	*m;
	uint8_t		*frame;
	size_t		 cap;
	uint8_t		 scratch[FRAME_HDR_LEN + 4 * FZ_CHUNK];
	size_t		 sum;
};

static uint8_t fz_fill[FZ_MAX_MSG + 16];

static uint8_t
fz_u8(struct fz *z)
{
	uint8_t v;

	if (z->left == 0)
		return 0;
	v = *z->p++;
	z->left--;
	return v;
}

static uint16_t
fz_u16(struct fz *z)
{
	uint8_t hi = fz_u8(z);

	return (uint16_t)(hi << 8 | fz_u8(z));
}

static uint32_t
fz_u32(struct fz *z)
{
	uint32_t hi = fz_u16(z);

	return hi << 16 | fz_u16(z);
}

static void
fz_on_message(void *arg, uint32_t stream, const uint8_t *data, size_t len)
{
	struct fz *z = arg;

	if (data[len] != '\0' || len > FZ_MAX_MSG)
		abort();
	if (len > 0 && data[0] == 'E')
		(void)mux_send(z->m, stream, data, len);
	else if (len > 0 && data[0] == 'R')
		mux_stream_remove(z->m, stream);
	else if (len > 0 && data[0] == 'F')
		mux_stream_finish(z->m, stream, CLOSE_NORMAL, "fuzz");
}

static void
fz_on_control(void *arg, const struct frame *f)
{
	struct fz *z = arg;

	if (f->type == FRAME_OPEN)
		(void)mux_stream_add(z->m, f->stream);
	else if (f->type == FRAME_CLOSE)
		mux_stream_remove(z->m, f->stream);
	else if (f->type == FRAME_PING)
		(void)mux_send_control(z->m, FRAME_PONG, 0, f->payload, f->len);
}

static void
fz_sum_one(void *arg, uint32_t id)
{
	struct fz *z = arg;

	z->sum += mux_stream_queued(z->m, id);
}

static void
fz_check(struct fz *z)
{
	z->sum = 0;
	mux_foreach_stream(z->m, fz_sum_one, z);
	if (z->sum != mux_queued_total(z->m))
		abort();
	/* What the receive side holds: partial messages and paused credit. */
	if (mux_held(z->m) > (size_t)FZ_STREAMS * (FZ_MAX_MSG + FZ_WINDOW))
		abort();
	if (mux_stream_count(z->m) == 0 && mux_held(z->m) != 0)
		abort();
}

/* Emits up to n frames; checks each one. */
static void
fz_drain(struct fz *z, size_t n)
{
	struct frame f;
	size_t len;
	int r;

	while (n-- > 0) {
		r = mux_next_frame(z->m, z->frame, z->cap, &len);
		if (r == MT_EAGAIN) {
			if (mux_has_output(z->m))
				abort();
			return;
		}
		if (r != 0 || len > z->cap)
			abort();
		if (frame_decode(z->frame, len, z->cap, &f) != 0)
			abort();
		if (f.type == FRAME_DATA && f.len > FZ_CHUNK)
			abort();
	}
}

static void
fz_input(struct fz *z, const uint8_t *msg, size_t len)
{
	int code = -1;

	if (mux_input(z->m, msg, len, &code) != 0) {
		if (code < 0 || code > CLOSE_CODE_MAX)
			abort();
		/* The link would be closed; the next one starts afresh. */
		mux_link_reset(z->m);
	}
}

static void
fz_step(struct fz *z, uint8_t op)
{
	size_t n;
	uint32_t id;
	uint16_t flags;

	switch (op % 11) {
	case 0:		/* a raw message */
		n = fz_u16(z);
		if (n > z->left)
			n = z->left;
		fz_input(z, z->p, n);
		z->p += n;
		z->left -= n;
		break;
	case 1:		/* a well-formed DATA frame */
		id = fz_u8(z) % FZ_IDS;
		flags = fz_u8(z) & FRAME_F_MORE;
		n = fz_u8(z) % (sizeof(z->scratch) - FRAME_HDR_LEN + 1);
		if (n > z->left)
			n = z->left;
		frame_put_header(z->scratch, FRAME_DATA, flags, id,
		    (uint32_t)n);
		memcpy(z->scratch + FRAME_HDR_LEN, z->p, n);
		z->p += n;
		z->left -= n;
		fz_input(z, z->scratch, FRAME_HDR_LEN + n);
		break;
	case 2:		/* a WINDOW frame */
		id = fz_u8(z) % FZ_IDS;
		frame_put_header(z->scratch, FRAME_WINDOW, 0, id, 4);
		frame_put_u32(z->scratch + FRAME_HDR_LEN, fz_u32(z));
		fz_input(z, z->scratch, FRAME_HDR_LEN + 4);
		break;
	case 3:
		fz_drain(z, fz_u8(z));
		break;
	case 4:
		mux_link_reset(z->m);
		break;
	case 5:		/* queue a message */
		id = fz_u8(z) % FZ_IDS;
		n = fz_u16(z) % (FZ_MAX_MSG + 8);
		fz_fill[0] = fz_u8(z);
		(void)mux_send(z->m, id, fz_fill, n);
		break;
	case 6:
		id = fz_u8(z) % FZ_IDS;
		if (fz_u8(z) & 1)
			mux_recv_pause(z->m, id);
		else
			mux_recv_resume(z->m, id);
		break;
	case 7:
		id = fz_u8(z) % FZ_IDS;
		mux_stream_finish(z->m, id, fz_u16(z), "finish");
		break;
	case 8:		/* a control frame, sometimes of a bad type */
		id = fz_u8(z) % FZ_IDS;
		n = fz_u8(z);
		if (n & 1)
			(void)mux_send_code(z->m, (uint8_t)(n >> 1), id,
			    fz_u16(z), "because");
		else
			(void)mux_send_control(z->m, (uint8_t)(n >> 1), id,
			    fz_fill, fz_u8(z));
		break;
	case 9:
		id = fz_u8(z) % FZ_IDS;
		if (fz_u8(z) & 1)
			(void)mux_stream_add(z->m, id);
		else
			mux_stream_remove(z->m, id);
		break;
	case 10:
		mux_set_peer_window(z->m, fz_u16(z));
		break;
	}
	fz_check(z);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mux_limits lim;
	struct mux_callbacks cb = { .on_message = fz_on_message,
	    .on_control = fz_on_control };
	struct fz z;
	uint32_t id;

	memset(&z, 0, sizeof(z));
	z.p = data;
	z.left = size;
	memset(fz_fill, 'E', sizeof(fz_fill));
	lim.chunk = FZ_CHUNK;
	lim.window = FZ_WINDOW;
	lim.max_msg = FZ_MAX_MSG;
	lim.max_streams = FZ_STREAMS;
	lim.budget = FZ_BUDGET;
	z.m = mux_new(&lim, &cb, &z);
	z.cap = mux_frame_cap(z.m);
	if ((z.frame = malloc(z.cap)) == NULL)
		abort();
	for (id = 1; id <= 3; id++)
		(void)mux_stream_add(z.m, id);
	(void)mux_send(z.m, 1, "hello", 5);

	while (z.left > 0)
		fz_step(&z, fz_u8(&z));
	/* Everything queued must drain (credit permitting) and stop. */
	fz_drain(&z, 100000);
	fz_check(&z);

	free(z.frame);
	mux_free(z.m);
	return 0;
}
