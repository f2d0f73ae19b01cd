/*
 * Stream multiplexer for one tunnel link; mux.h is the contract and
 * PROTOCOL.md the wire rules.
 *
 * Streams live in a chained hash table keyed by id (power-of-two buckets,
 * doubled whenever there are more streams than buckets), so finding one of
 * many thousands of streams costs O(1).  Three queues drive the sender:
 *
 *   - ctlq: control frames, sent first and in order;
 *   - winq: streams that owe the peer a WINDOW update;
 *   - ring: exactly the streams that can send now (queued data and send
 *     credit, or a pending CLOSE after mux_stream_finish).  The scheduler
 *     pops the head, emits one chunk and puts the stream back at the tail
 *     if it can still send.  Idle and credit-starved streams are not in the
 *     ring, so they cost nothing per frame.
 *   - fastq: the small-message lane.  A stream that becomes ready (or is
 *     put back after a frame) with a whole unsent message of at most
 *     MUX_SMALL bytes next, and credit for all of it, joins fastq instead
 *     of the ring, and fastq goes before the ring, so a small call or
 *     answer waits for no chunk of a bulk stream at all.
 *     To keep bulk streams from starving, fastq may send at most one
 *     chunk's worth of bytes (fast_bytes) between two frames from the
 *     ring; past that the two alternate.  A stream is in at most one of
 *     ring and fastq (in_ring says either; in_fastq which).
 *
 * Each queued message is a single allocation holding the one copy of the
 * caller's bytes; the stream remembers how much of its head message went
 * out, which is what mux_link_reset rewinds.  Incoming chunks are appended
 * to a per-stream reassembly buffer that grows geometrically up to max_msg;
 * a complete message is handed to on_message from that buffer (with a NUL
 * after it), so a received message is copied exactly once.
 *
 * Receive credit: for every stream, recv_avail + owed == our window.  DATA
 * moves bytes from recv_avail to owed; a WINDOW frame moves them back.  A
 * WINDOW is queued once owed reaches half a window, unless the stream is
 * paused.  Because credit is returned while a message is still being
 * reassembled, a message larger than the window gets through, and a sender
 * is blocked only when owed == window, which always queues a WINDOW (or is
 * a deliberate pause).
 *
 * Link budget (receive side): m->held counts what this side holds for the
 * link: every stream's reassembly bytes plus, for paused streams, the bytes
 * received and not credited back (they sit in the slow application's
 * buffers; a byte may be counted in both, which only errs on the safe
 * side).  While held >= budget a stream that is due a WINDOW goes to waitq
 * instead of winq, so the peer runs out of credit after what it already
 * has.  One stream is exempt: the oldest unpaused partial message (the head
 * of rasq, skipping paused streams) always gets credit, so some message can
 * always complete and free its buffer, and over-budget streams never wait
 * on each other in a circle.  Whenever held falls below the budget, or the
 * exempt stream changes, waitq is released in FIFO order.  A paused stream
 * holds at most its window beyond its partial message, so with budget >=
 * window + window, one stalled consumer leaves the others at least a
 * window to work with.
 *
 * Link budget (send side): mux_congested() says the queued unsent bytes of
 * all streams reached the budget; on_link_drain fires once they fall below
 * half of it, so producers paused on a congested link can resume.
 *
 * Callbacks may call back into the mux (send, finish, remove the stream,
 * pause...), but not mux_input or mux_free.  No stream pointer is held
 * across a callback.
 */
#include <sys/queue.h>

#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "proto/frame.h"
#include "proto/mux.h"

#define MUX_DEF_CHUNK		65536
#define MUX_DEF_WINDOW		(4U * 1024 * 1024)
#define MUX_DEF_MAX_MSG		((size_t)16 * 1024 * 1024)
#define MUX_DEF_MAX_STREAMS	1024
#define MUX_DEF_BUDGET		((size_t)64 * 1024 * 1024)
#define MUX_MAX_MAX_MSG		(SIZE_MAX / 4)	/* keeps size sums in range */
#define MUX_HASH_MIN_BITS	6
/* A message this short may take the small-message lane (fastq). */
#define MUX_SMALL		4096
/* A reassembly buffer up to this size is kept for the stream's next message. */
#define MUX_KEEP_RBUF		4096

/* One queued outgoing message: its bytes follow the header. */
struct mux_msg {
	struct mux_msg	*next;
	size_t		 len;
	uint8_t		 data[];
};

/* One queued control frame, already encoded (header and payload). */
struct mux_ctl {
	STAILQ_ENTRY(mux_ctl) entry;
	size_t		 len;
	uint8_t		 frame[];
};

struct mux_stream {
	uint32_t	 id;
	struct mux_stream *hnext;		/* hash chain */
	TAILQ_ENTRY(mux_stream) ring_entry;
	TAILQ_ENTRY(mux_stream) winq_entry;
	unsigned	 in_ring:1;	/* in the ring or in fastq */
	unsigned	 in_fastq:1;
	unsigned	 in_winq:1;
	unsigned	 paused:1;
	unsigned	 finishing:1;
	unsigned	 in_waitq:1;	/* WINDOW withheld over the budget */
	unsigned	 in_rasq:1;	/* a message is partly received */
	TAILQ_ENTRY(mux_stream) waitq_entry;
	TAILQ_ENTRY(mux_stream) rasq_entry;
	size_t		 held;		/* this stream's part of m->held */

	/* Send side. */
	struct mux_msg	*head, *tail;
	size_t		 sent;		/* bytes of head already sent */
	size_t		 queued;	/* bytes queued and not yet sent */
	uint32_t	 credit;	/* bytes the peer lets us send */
	uint16_t	 close_code;	/* for the CLOSE after finishing */
	char		*close_text;

	/* Receive side. */
	uint32_t	 recv_avail;	/* bytes the peer may still send */
	uint32_t	 owed;		/* received and not yet credited back */
	uint8_t		*rbuf;		/* reassembly; rlen bytes used */
	size_t		 rlen;
	size_t		 rcap;
};

TAILQ_HEAD(mux_stream_q, mux_stream);
STAILQ_HEAD(mux_ctl_q, mux_ctl);

struct mux {
	struct mux_limits	 lim;
	struct mux_callbacks	 cb;
	void			*arg;
	uint32_t		 peer_window;
	size_t			 peer_max_msg;	/* 0: not announced */

	struct mux_stream	**buckets;
	unsigned		 hbits;		/* 1 << hbits buckets */
	uint32_t		 nstreams;

	struct mux_ctl_q	 ctlq;
	struct mux_stream_q	 winq;
	struct mux_stream_q	 ring;
	struct mux_stream_q	 fastq;		/* small messages first */
	size_t			 fast_bytes;	/* sent from fastq since ring */
	struct mux_stream_q	 waitq;		/* WINDOW withheld (budget) */
	struct mux_stream_q	 rasq;		/* partial messages, oldest first */
	size_t			 held;		/* see "Link budget" above */
	size_t			 queued_total;
	int			 congested;	/* queued_total reached budget */
	uint32_t		 drain_id;	/* stream that may have drained */
	size_t			 data_max;	/* DATA payload cap, 0: chunk */
};

void
mux_limits_default(struct mux_limits *lim)
{
	lim->chunk = MUX_DEF_CHUNK;
	lim->window = MUX_DEF_WINDOW;
	lim->max_msg = MUX_DEF_MAX_MSG;
	lim->max_streams = MUX_DEF_MAX_STREAMS;
	lim->budget = MUX_DEF_BUDGET;
}

/* --- stream table ----------------------------------------------------- */

static uint32_t
mux_hash(const struct mux *m, uint32_t id)
{
	/* Fibonacci hashing: sequential ids spread over all buckets. */
	return (uint32_t)(id * 2654435769U) >> (32 - m->hbits);
}

static struct mux_stream *
mux_lookup(const struct mux *m, uint32_t id)
{
	struct mux_stream *s;

	for (s = m->buckets[mux_hash(m, id)]; s != NULL; s = s->hnext)
		if (s->id == id)
			return s;
	return NULL;
}

static void
mux_hash_grow(struct mux *m)
{
	struct mux_stream **old = m->buckets, *s, *next;
	size_t i, oldn = (size_t)1 << m->hbits;
	uint32_t h;

	m->hbits++;
	m->buckets = xcalloc((size_t)1 << m->hbits, sizeof(*m->buckets));
	for (i = 0; i < oldn; i++) {
		for (s = old[i]; s != NULL; s = next) {
			next = s->hnext;
			h = mux_hash(m, s->id);
			s->hnext = m->buckets[h];
			m->buckets[h] = s;
		}
	}
	free(old);
}

static void
mux_hash_unlink(struct mux *m, struct mux_stream *s)
{
	struct mux_stream **pp;

	for (pp = &m->buckets[mux_hash(m, s->id)]; *pp != NULL;
	    pp = &(*pp)->hnext) {
		if (*pp == s) {
			*pp = s->hnext;
			return;
		}
	}
}

/* --- scheduling helpers ----------------------------------------------- */

/* Returns 1 if s can put a frame on the wire now. */
static int
mux_stream_ready(const struct mux_stream *s)
{
	if (s->head == NULL)
		return s->finishing;	/* only the CLOSE is left */
	/* An empty message needs no credit. */
	return s->credit > 0 || s->head->len == 0;
}

/* Returns 1 if s's next frame is a whole small message it has credit for. */
static int
mux_stream_small(const struct mux_stream *s)
{
	return s->head != NULL && s->sent == 0 && s->head->len <= MUX_SMALL &&
	    s->head->len <= s->credit;
}

/* Takes s out of the ring or fastq, whichever it is in. */
static void
mux_ring_remove(struct mux *m, struct mux_stream *s)
{
	if (!s->in_ring)
		return;
	TAILQ_REMOVE(s->in_fastq ? &m->fastq : &m->ring, s, ring_entry);
	s->in_ring = s->in_fastq = 0;
}

/*
 * Puts s at the tail of fastq (a small message next) or of the ring, or
 * takes it out, as its state says.
 */
static void
mux_ring_update(struct mux *m, struct mux_stream *s)
{
	int ready = mux_stream_ready(s);

	if (ready && !s->in_ring) {
		if (mux_stream_small(s)) {
			TAILQ_INSERT_TAIL(&m->fastq, s, ring_entry);
			s->in_fastq = 1;
		} else
			TAILQ_INSERT_TAIL(&m->ring, s, ring_entry);
		s->in_ring = 1;
	} else if (!ready && s->in_ring)
		mux_ring_remove(m, s);
}

static void
mux_winq_remove(struct mux *m, struct mux_stream *s)
{
	if (s->in_winq) {
		TAILQ_REMOVE(&m->winq, s, winq_entry);
		s->in_winq = 0;
	}
}

static void
mux_waitq_remove(struct mux *m, struct mux_stream *s)
{
	if (s->in_waitq) {
		TAILQ_REMOVE(&m->waitq, s, waitq_entry);
		s->in_waitq = 0;
	}
}

static void
mux_rasq_remove(struct mux *m, struct mux_stream *s)
{
	if (s->in_rasq) {
		TAILQ_REMOVE(&m->rasq, s, rasq_entry);
		s->in_rasq = 0;
	}
}

/* Recomputes s's part of m->held after its rlen, owed or paused changed. */
static void
mux_held_update(struct mux *m, struct mux_stream *s)
{
	size_t h = s->rlen + (s->paused ? s->owed : 0);

	m->held = m->held - s->held + h;
	s->held = h;
}

/* The stream exempt from the budget: the oldest unpaused partial message. */
static struct mux_stream *
mux_budget_exempt(const struct mux *m)
{
	struct mux_stream *s;

	TAILQ_FOREACH(s, &m->rasq, rasq_entry)
		if (!s->paused)
			return s;
	return NULL;
}

/*
 * Queues a WINDOW for s (or withholds it for the budget) if it owes credit:
 * at least half a window, or anything at all when all is set (a resume).
 */
static void
mux_credit_due(struct mux *m, struct mux_stream *s, int all)
{
	uint32_t half = m->lim.window / 2;

	if (half == 0)
		half = 1;
	if (s->paused || s->in_winq || s->owed == 0 ||
	    (!all && s->owed < half))
		return;
	if (m->held >= m->lim.budget && mux_budget_exempt(m) != s) {
		if (!s->in_waitq) {
			TAILQ_INSERT_TAIL(&m->waitq, s, waitq_entry);
			s->in_waitq = 1;
		}
		return;
	}
	mux_waitq_remove(m, s);
	TAILQ_INSERT_TAIL(&m->winq, s, winq_entry);
	s->in_winq = 1;
}

static void
mux_credit_check(struct mux *m, struct mux_stream *s)
{
	mux_credit_due(m, s, 0);
}

/*
 * Gives credit withheld for the budget back once it allows: FIFO while
 * held is below the budget, and to the exempt stream at any time.
 */
static void
mux_budget_release(struct mux *m)
{
	struct mux_stream *s;

	while ((s = TAILQ_FIRST(&m->waitq)) != NULL &&
	    m->held < m->lim.budget) {
		mux_waitq_remove(m, s);
		mux_credit_due(m, s, 1);
	}
	if ((s = mux_budget_exempt(m)) != NULL && s->in_waitq) {
		mux_waitq_remove(m, s);
		mux_credit_due(m, s, 1);
	}
}

static void
mux_stream_free(struct mux *m, struct mux_stream *s)
{
	struct mux_msg *msg, *next;

	mux_ring_remove(m, s);
	mux_winq_remove(m, s);
	mux_waitq_remove(m, s);
	mux_rasq_remove(m, s);
	m->held -= s->held;
	mux_hash_unlink(m, s);
	for (msg = s->head; msg != NULL; msg = next) {
		next = msg->next;
		free(msg);
	}
	m->queued_total -= s->queued;
	m->nstreams--;
	free(s->close_text);
	free(s->rbuf);
	free(s);
}

/* --- construction ----------------------------------------------------- */

struct mux *
mux_new(const struct mux_limits *lim, const struct mux_callbacks *cb,
    void *arg)
{
	struct mux *m;

	m = xcalloc(1, sizeof(*m));
	mux_limits_default(&m->lim);
	/* Zero fields keep their defaults. */
	if (lim != NULL) {
		if (lim->chunk != 0)
			m->lim.chunk = lim->chunk;
		if (lim->window != 0)
			m->lim.window = lim->window;
		if (lim->max_msg != 0)
			m->lim.max_msg = lim->max_msg;
		if (lim->max_streams != 0)
			m->lim.max_streams = lim->max_streams;
		if (lim->budget != 0)
			m->lim.budget = lim->budget;
	}
	if (m->lim.max_msg > MUX_MAX_MAX_MSG)
		m->lim.max_msg = MUX_MAX_MAX_MSG;
	if (cb != NULL)
		m->cb = *cb;
	m->arg = arg;
	m->peer_window = m->lim.window;
	m->hbits = MUX_HASH_MIN_BITS;
	m->buckets = xcalloc((size_t)1 << m->hbits, sizeof(*m->buckets));
	STAILQ_INIT(&m->ctlq);
	TAILQ_INIT(&m->winq);
	TAILQ_INIT(&m->ring);
	TAILQ_INIT(&m->fastq);
	TAILQ_INIT(&m->waitq);
	TAILQ_INIT(&m->rasq);
	return m;
}

static void
mux_ctl_clear(struct mux *m)
{
	struct mux_ctl *c;

	while ((c = STAILQ_FIRST(&m->ctlq)) != NULL) {
		STAILQ_REMOVE_HEAD(&m->ctlq, entry);
		free(c);
	}
}

void
mux_free(struct mux *m)
{
	size_t i, n;

	if (m == NULL)
		return;
	n = (size_t)1 << m->hbits;
	for (i = 0; i < n; i++)
		while (m->buckets[i] != NULL)
			mux_stream_free(m, m->buckets[i]);
	mux_ctl_clear(m);
	free(m->buckets);
	free(m);
}

void
mux_set_peer_window(struct mux *m, uint32_t window)
{
	m->peer_window = window;
}

/* --- streams ---------------------------------------------------------- */

int
mux_stream_add(struct mux *m, uint32_t id)
{
	struct mux_stream *s;
	uint32_t h;

	if (id == 0 || mux_lookup(m, id) != NULL)
		return MT_EINVAL;
	if (m->nstreams >= m->lim.max_streams)
		return MT_ELIMIT;
	s = xcalloc(1, sizeof(*s));
	s->id = id;
	s->credit = m->peer_window;
	s->recv_avail = m->lim.window;
	if (m->nstreams + 1 > ((uint32_t)1 << m->hbits) && m->hbits < 31)
		mux_hash_grow(m);
	h = mux_hash(m, id);
	s->hnext = m->buckets[h];
	m->buckets[h] = s;
	m->nstreams++;
	return 0;
}

void
mux_stream_remove(struct mux *m, uint32_t id)
{
	struct mux_stream *s;

	if ((s = mux_lookup(m, id)) != NULL) {
		mux_stream_free(m, s);
		mux_budget_release(m);
	}
}

int
mux_stream_exists(const struct mux *m, uint32_t id)
{
	return mux_lookup(m, id) != NULL;
}

void
mux_stream_finish(struct mux *m, uint32_t id, uint16_t code,
    const char *text)
{
	struct mux_stream *s;

	if ((s = mux_lookup(m, id)) == NULL || s->finishing)
		return;
	s->finishing = 1;
	s->close_code = code;
	s->close_text = xstrdup(text != NULL ? text : "");
	mux_ring_update(m, s);
}

uint32_t
mux_stream_count(const struct mux *m)
{
	return m->nstreams;
}

void
mux_foreach_stream(const struct mux *m, void (*fn)(void *arg, uint32_t id),
    void *arg)
{
	struct mux_stream *s;
	uint32_t *ids, n = 0, i;
	size_t b, nb = (size_t)1 << m->hbits;

	if (m->nstreams == 0)
		return;
	/*
	 * Snapshot the ids first: fn may add or remove streams, which can
	 * rehash the table under our feet.
	 */
	ids = xcalloc(m->nstreams, sizeof(*ids));
	for (b = 0; b < nb; b++)
		for (s = m->buckets[b]; s != NULL; s = s->hnext)
			ids[n++] = s->id;
	for (i = 0; i < n; i++)
		if (mux_lookup(m, ids[i]) != NULL)
			fn(arg, ids[i]);
	free(ids);
}

/* --- sending ---------------------------------------------------------- */

int
mux_send(struct mux *m, uint32_t id, const void *data, size_t len)
{
	struct mux_stream *s;
	struct mux_msg *msg;

	if ((s = mux_lookup(m, id)) == NULL || s->finishing)
		return MT_ENOTFOUND;
	if (len > m->lim.max_msg ||
	    (m->peer_max_msg != 0 && len > m->peer_max_msg))
		return MT_ETOOBIG;
	if ((msg = malloc(sizeof(*msg) + len)) == NULL)
		return MT_ENOMEM;
	msg->next = NULL;
	msg->len = len;
	if (len > 0)
		memcpy(msg->data, data, len);
	if (s->tail != NULL)
		s->tail->next = msg;
	else
		s->head = msg;
	s->tail = msg;
	s->queued += len;
	m->queued_total += len;
	if (m->queued_total >= m->lim.budget)
		m->congested = 1;
	mux_ring_update(m, s);
	return 0;
}

size_t
mux_stream_queued(const struct mux *m, uint32_t id)
{
	const struct mux_stream *s;

	if ((s = mux_lookup(m, id)) == NULL)
		return 0;
	return s->queued;
}

size_t
mux_queued_total(const struct mux *m)
{
	return m->queued_total;
}

int
mux_congested(const struct mux *m)
{
	/* Live, so removed streams end it even before the next frame. */
	return m->congested && m->queued_total >= m->lim.budget / 2;
}

size_t
mux_held(const struct mux *m)
{
	return m->held;
}

/*
 * Returns a control frame with its header written and room for len payload
 * bytes, or NULL.
 */
static struct mux_ctl *
mux_ctl_alloc(uint8_t type, uint32_t stream, size_t len)
{
	struct mux_ctl *c;

	if ((c = malloc(sizeof(*c) + FRAME_HDR_LEN + len)) == NULL)
		return NULL;
	c->len = FRAME_HDR_LEN + len;
	frame_put_header(c->frame, type, 0, stream, (uint32_t)len);
	return c;
}

/*
 * Queues c if the peer's decoder would accept it (stream id as the type
 * requires, fixed payload sizes); otherwise frees it.  Catching a caller's
 * mistake here beats having the peer close the whole link over it.
 */
static int
mux_ctl_push(struct mux *m, struct mux_ctl *c)
{
	struct frame f;
	int r;

	if ((r = frame_decode(c->frame, c->len, FRAME_MAX_CONTROL, &f)) != 0) {
		free(c);
		return r == MT_ETOOBIG ? MT_ETOOBIG : MT_EINVAL;
	}
	STAILQ_INSERT_TAIL(&m->ctlq, c, entry);
	return 0;
}

int
mux_send_control(struct mux *m, uint8_t type, uint32_t stream,
    const void *payload, size_t len)
{
	struct mux_ctl *c;

	if (type == FRAME_DATA || type == 0 || type > FRAME_TYPE_MAX)
		return MT_EINVAL;
	if (len > FRAME_MAX_CONTROL)
		return MT_ETOOBIG;
	if ((c = mux_ctl_alloc(type, stream, len)) == NULL)
		return MT_ENOMEM;
	if (len > 0)
		memcpy(c->frame + FRAME_HDR_LEN, payload, len);
	return mux_ctl_push(m, c);
}

int
mux_send_code(struct mux *m, uint8_t type, uint32_t stream, uint16_t code,
    const char *text)
{
	struct mux_ctl *c;
	size_t len;

	if (type == FRAME_DATA || type == 0 || type > FRAME_TYPE_MAX)
		return MT_EINVAL;
	if (text == NULL)
		text = "";
	/* Long texts are truncated to fit a control frame. */
	len = strlen(text);
	if (len > FRAME_MAX_CONTROL - 2)
		len = FRAME_MAX_CONTROL - 2;
	if ((c = mux_ctl_alloc(type, stream, len + 2)) == NULL)
		return MT_ENOMEM;
	(void)frame_put_code_text(c->frame + FRAME_HDR_LEN, len + 2, code,
	    text);
	return mux_ctl_push(m, c);
}

int
mux_has_output(const struct mux *m)
{
	return !STAILQ_EMPTY(&m->ctlq) || !TAILQ_EMPTY(&m->winq) ||
	    !TAILQ_EMPTY(&m->ring) || !TAILQ_EMPTY(&m->fastq);
}

void
mux_set_data_max(struct mux *m, size_t data_max)
{
	m->data_max = data_max;
}

void
mux_set_peer_max_message(struct mux *m, size_t max_msg)
{
	m->peer_max_msg = max_msg;
}

void
mux_set_peer_chunk(struct mux *m, size_t chunk, int masked)
{
	if (chunk > m->lim.chunk)
		chunk = m->lim.chunk;
	m->data_max = mux_data_fit(chunk, masked);
}

size_t
mux_data_fit(size_t chunk, int masked)
{
	size_t total, mask = masked ? 4 : 0, ws, len;

	/* The most a frame of chunk can take: 10 bytes of header. */
	total = (chunk + FRAME_HDR_LEN + 10 + mask) / TLS_RECORD_DATA *
	    TLS_RECORD_DATA;
	for (; total >= TLS_RECORD_DATA; total -= TLS_RECORD_DATA) {
		for (ws = 2; ws <= 10; ws += ws == 2 ? 2 : 6) {
			len = total - ws - mask;	/* the message */
			if ((ws == 2 && len > 125) ||
			    (ws == 4 && (len < 126 || len > 65535)) ||
			    (ws == 10 && len < 65536))
				continue;
			if (len > FRAME_HDR_LEN && len - FRAME_HDR_LEN <= chunk &&
			    len - FRAME_HDR_LEN >= chunk / 2)
				return len - FRAME_HDR_LEN;
		}
	}
	return chunk;
}

size_t
mux_frame_cap(const struct mux *m)
{
	size_t max = m->lim.chunk;

	if (max < FRAME_MAX_CONTROL)
		max = FRAME_MAX_CONTROL;
	return FRAME_HDR_LEN + max;
}

/*
 * Emits the next frame of stream s (the ring's head): one DATA chunk, or
 * the CLOSE of a finishing stream whose data has all gone, after which the
 * stream is forgotten.
 */
static int
mux_next_data(struct mux *m, struct mux_stream *s, uint8_t *dst, size_t cap,
    size_t *lenp)
{
	struct mux_msg *msg = s->head;
	size_t n, room;
	int more;

	if (cap < FRAME_HDR_LEN + 2)
		return MT_EINVAL;
	room = cap - FRAME_HDR_LEN;
	if (msg == NULL) {
		if (room > FRAME_MAX_CONTROL)
			room = FRAME_MAX_CONTROL;
		n = frame_put_code_text(dst + FRAME_HDR_LEN, room,
		    s->close_code, s->close_text);
		frame_put_header(dst, FRAME_CLOSE, 0, s->id, (uint32_t)n);
		*lenp = FRAME_HDR_LEN + n;
		mux_stream_free(m, s);
		mux_budget_release(m);
		return 0;
	}

	if (s->queued >= MUX_DRAIN_LOWAT)
		m->drain_id = s->id;
	n = msg->len - s->sent;
	if (n > m->lim.chunk)
		n = m->lim.chunk;
	if (m->data_max != 0 && n > m->data_max)
		n = m->data_max;
	if (n > s->credit)
		n = s->credit;
	if (n > room)
		n = room;
	more = s->sent + n < msg->len;
	frame_put_header(dst, FRAME_DATA, more ? FRAME_F_MORE : 0, s->id,
	    (uint32_t)n);
	if (n > 0)
		memcpy(dst + FRAME_HDR_LEN, msg->data + s->sent, n);
	*lenp = FRAME_HDR_LEN + n;
	s->sent += n;
	s->credit -= (uint32_t)n;
	s->queued -= n;
	m->queued_total -= n;
	if (!more) {
		s->head = msg->next;
		if (s->head == NULL)
			s->tail = NULL;
		s->sent = 0;
		free(msg);
	}
	/* To the back of the ring or fastq, if it can still send. */
	mux_ring_remove(m, s);
	mux_ring_update(m, s);
	return 0;
}

static int mux_next_frame_1(struct mux *, uint8_t *, size_t, size_t *);

int
mux_next_frame(struct mux *m, uint8_t *dst, size_t cap, size_t *lenp)
{
	int r = mux_next_frame_1(m, dst, cap, lenp);

	/*
	 * Checked on every call, not only after DATA: removed streams can
	 * empty the queue too, and then only control frames may follow.
	 */
	if (m->congested && m->queued_total < m->lim.budget / 2) {
		m->congested = 0;
		if (m->cb.on_link_drain != NULL)
			m->cb.on_link_drain(m->arg);
	}
	return r;
}

static int
mux_next_frame_1(struct mux *m, uint8_t *dst, size_t cap, size_t *lenp)
{
	struct mux_ctl *c;
	struct mux_stream *s;

	if ((c = STAILQ_FIRST(&m->ctlq)) != NULL) {
		if (cap < c->len)
			return MT_EINVAL;
		STAILQ_REMOVE_HEAD(&m->ctlq, entry);
		memcpy(dst, c->frame, c->len);
		*lenp = c->len;
		free(c);
		return 0;
	}
	if ((s = TAILQ_FIRST(&m->winq)) != NULL) {
		if (cap < FRAME_HDR_LEN + 4)
			return MT_EINVAL;
		mux_winq_remove(m, s);
		frame_put_header(dst, FRAME_WINDOW, 0, s->id, 4);
		frame_put_u32(dst + FRAME_HDR_LEN, s->owed);
		*lenp = FRAME_HDR_LEN + 4;
		s->recv_avail += s->owed;
		s->owed = 0;
		return 0;
	}
	/*
	 * fastq first, unless it has had a chunk's worth since the ring's
	 * last frame (then the ring, if it has anyone).
	 */
	s = TAILQ_FIRST(&m->fastq);
	if (s == NULL || (m->fast_bytes >= m->lim.chunk &&
	    !TAILQ_EMPTY(&m->ring)))
		s = TAILQ_FIRST(&m->ring);
	if (s != NULL) {
		int r, drained = 0, fast = s->in_fastq;
		uint32_t id;

		m->drain_id = 0;
		r = mux_next_data(m, s, dst, cap, lenp);
		if (r == 0 && fast)
			m->fast_bytes += *lenp;
		else if (r == 0)
			m->fast_bytes = 0;
		/* s may be gone (a CLOSE frees it); look the id up again. */
		if ((id = m->drain_id) != 0) {
			struct mux_stream *d = mux_lookup(m, id);

			drained = d != NULL && d->queued < MUX_DRAIN_LOWAT;
			m->drain_id = 0;
		}
		if (r == 0 && drained && m->cb.on_drain != NULL)
			m->cb.on_drain(m->arg, id);
		return r;
	}
	return MT_EAGAIN;
}

/* --- receiving -------------------------------------------------------- */

void
mux_recv_pause(struct mux *m, uint32_t id)
{
	struct mux_stream *s;

	if ((s = mux_lookup(m, id)) == NULL)
		return;
	s->paused = 1;
	mux_winq_remove(m, s);
	mux_waitq_remove(m, s);
	mux_held_update(m, s);
	/* It may have been the exempt stream. */
	mux_budget_release(m);
}

void
mux_recv_resume(struct mux *m, uint32_t id)
{
	struct mux_stream *s;

	if ((s = mux_lookup(m, id)) == NULL || !s->paused)
		return;
	s->paused = 0;
	mux_held_update(m, s);
	/* Release everything withheld, even under half a window. */
	mux_credit_due(m, s, 1);
	mux_budget_release(m);
}

/* Makes room for n more bytes (plus a NUL) in s's reassembly buffer. */
static int
mux_rbuf_reserve(struct mux *m, struct mux_stream *s, size_t n, int more)
{
	size_t need = s->rlen + n + 1, ncap;
	uint8_t *p;

	if (need <= s->rcap)
		return 0;
	/*
	 * Grow geometrically so a long message costs O(n) copies in all.  A
	 * message that is known to continue starts with room for two chunks.
	 */
	ncap = s->rcap * 2;
	if (more && ncap < need * 2)
		ncap = need * 2;
	if (ncap < need)
		ncap = need;
	if (ncap > m->lim.max_msg + 1)
		ncap = m->lim.max_msg + 1;
	if ((p = realloc(s->rbuf, ncap)) == NULL)
		return MT_ENOMEM;
	s->rbuf = p;
	s->rcap = ncap;
	return 0;
}

static int
mux_input_data(struct mux *m, const struct frame *f, int *codep)
{
	struct mux_stream *s;
	uint32_t id = f->stream;
	uint8_t *p;
	size_t len, cap;
	int more = (f->flags & FRAME_F_MORE) != 0, r;

	if ((s = mux_lookup(m, id)) == NULL)
		return 0;	/* may be in flight after a close */
	if (f->len > s->recv_avail) {
		*codep = CLOSE_WINDOW;
		return MT_EWINDOW;
	}
	if (f->len > m->lim.max_msg - s->rlen) {
		*codep = CLOSE_TOO_BIG;
		return MT_ETOOBIG;
	}
	if ((r = mux_rbuf_reserve(m, s, f->len, more)) != 0) {
		*codep = CLOSE_INTERNAL;
		return r;
	}
	if (f->len > 0)
		memcpy(s->rbuf + s->rlen, f->payload, f->len);
	s->rlen += f->len;
	s->recv_avail -= f->len;
	s->owed += f->len;
	if (more && !s->in_rasq) {
		TAILQ_INSERT_TAIL(&m->rasq, s, rasq_entry);
		s->in_rasq = 1;
	}
	mux_held_update(m, s);
	mux_credit_check(m, s);
	if (more)
		return 0;

	/*
	 * Detach the buffer before the callback: it may remove the stream.
	 * A small buffer is given back afterwards for the next message.
	 */
	p = s->rbuf;
	len = s->rlen;
	cap = s->rcap;
	s->rbuf = NULL;
	s->rlen = s->rcap = 0;
	mux_rasq_remove(m, s);
	mux_held_update(m, s);
	mux_budget_release(m);
	p[len] = '\0';
	if (m->cb.on_message != NULL)
		m->cb.on_message(m->arg, id, p, len);
	if (cap <= MUX_KEEP_RBUF && (s = mux_lookup(m, id)) != NULL &&
	    s->rbuf == NULL) {
		s->rbuf = p;
		s->rcap = cap;
	} else
		free(p);
	return 0;
}

static int
mux_input_window(struct mux *m, const struct frame *f, int *codep)
{
	struct mux_stream *s;
	uint32_t inc;

	if (f->len != 4) {
		*codep = CLOSE_PROTOCOL;
		return MT_EMALFORMED;
	}
	if ((s = mux_lookup(m, f->stream)) == NULL)
		return 0;
	inc = frame_get_u32(f->payload);
	/* Saturate: too much credit only hurts the peer that granted it. */
	if (inc > UINT32_MAX - s->credit)
		s->credit = UINT32_MAX;
	else
		s->credit += inc;
	mux_ring_update(m, s);
	return 0;
}

int
mux_input(struct mux *m, const uint8_t *msg, size_t len, int *close_code)
{
	struct frame f;
	size_t maxp = m->lim.chunk;
	int r, code = CLOSE_PROTOCOL;

	if (maxp < FRAME_MAX_CONTROL)
		maxp = FRAME_MAX_CONTROL;
	if ((r = frame_decode(msg, len, maxp, &f)) != 0) {
		if (r == MT_EVERSION)
			code = CLOSE_VERSION;
		else if (r == MT_ETOOBIG)
			code = CLOSE_TOO_BIG;
		goto out;
	}
	switch (f.type) {
	case FRAME_DATA:
		r = mux_input_data(m, &f, &code);
		break;
	case FRAME_WINDOW:
		r = mux_input_window(m, &f, &code);
		break;
	default:
		if (m->cb.on_control != NULL)
			m->cb.on_control(m->arg, &f);
		break;
	}
 out:
	if (r != 0 && close_code != NULL)
		*close_code = code;
	return r;
}

/* --- link reset ------------------------------------------------------- */

void
mux_link_reset(struct mux *m)
{
	struct mux_stream *s;
	size_t b, nb = (size_t)1 << m->hbits;

	mux_ctl_clear(m);
	while ((s = TAILQ_FIRST(&m->winq)) != NULL)
		mux_winq_remove(m, s);
	while ((s = TAILQ_FIRST(&m->waitq)) != NULL)
		mux_waitq_remove(m, s);
	while ((s = TAILQ_FIRST(&m->rasq)) != NULL)
		mux_rasq_remove(m, s);
	for (b = 0; b < nb; b++) {
		for (s = m->buckets[b]; s != NULL; s = s->hnext) {
			/* The peer never saw the end of this one: resend it. */
			s->queued += s->sent;
			m->queued_total += s->sent;
			s->sent = 0;
			s->credit = m->peer_window;
			s->recv_avail = m->lim.window;
			s->owed = 0;
			s->rlen = 0;
			mux_held_update(m, s);
			if (s->rcap > MUX_KEEP_RBUF) {
				free(s->rbuf);
				s->rbuf = NULL;
				s->rcap = 0;
			}
			mux_ring_update(m, s);
		}
	}
	if (m->queued_total >= m->lim.budget)
		m->congested = 1;
}
