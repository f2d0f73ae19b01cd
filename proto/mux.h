/*
 * Stream multiplexer for one tunnel link: per-stream send queues with
 * credit-based flow control, round-robin chunk scheduling, a priority queue
 * for control frames, and reassembly of chunked DATA messages.
 *
 * Pure logic on top of frame.c: no sockets, no lws, no clock.  The link
 * code feeds it received WebSocket messages (mux_input) and, whenever the
 * socket is writeable, asks it for the next frame to send (mux_next_frame).
 *
 * A mux outlives a single connection: after the link drops, mux_link_reset
 * forgets what was in flight on the wire (partial reassembly, control frames,
 * credit) but keeps every stream and its unsent messages, so that streams
 * can re-attach on the next connection (see PROTOCOL.md, "Resumption").
 *
 * Flow control (receive side): bytes are counted against the stream's window
 * as they arrive and credited back with WINDOW frames once at least half a
 * window is owed.  Credit is owed for bytes the mux has buffered for
 * reassembly or delivered, unless the application paused the stream with
 * mux_recv_pause (its consumer is slow): then credit is withheld until
 * mux_recv_resume, so the peer can have at most one window in flight.
 *
 * Flow control (send side): a stream sends DATA only while it has credit.
 * The scheduler takes one chunk from one stream at a time, round-robin, so
 * a large message waits behind at most one chunk per other busy stream.
 * A stream whose next message is small (at most 4 KiB, unsent, covered by
 * credit) is served from a small-message lane ahead of the round-robin,
 * up to one chunk's worth of such frames between two round-robin chunks,
 * so a small call or answer waits for no bulk chunk and bulk never starves.
 *
 * Link budget (no wire change; PROTOCOL.md section 4): lim.budget caps both
 * what the receive side holds for the whole link (reassembly buffers and
 * the unconsumed bytes of paused streams) and, as a signal to producers,
 * what the send side has queued.  Over it, the receiver withholds WINDOW
 * frames (except for the oldest partial message, so something always
 * completes), and mux_congested() tells producers to back off until
 * on_link_drain.
 */
#ifndef MCPTUN_MUX_H
#define MCPTUN_MUX_H

#include <stddef.h>
#include <stdint.h>

#include "proto/frame.h"

struct mux;

struct mux_limits {
	uint32_t chunk;		/* max DATA payload per frame (default 65536) */
	uint32_t window;	/* our receive window per stream, bytes (default 4 MiB) */
	size_t	 max_msg;	/* max reassembled message (default 16 MiB) */
	uint32_t max_streams;	/* max concurrent streams (default 1024) */
	size_t	 budget;	/* per-link budget, bytes (default 64 MiB) */
};

struct mux_callbacks {
	/*
	 * A complete message arrived on stream.  data is owned by the mux and
	 * valid only during the call; it is NUL-terminated for convenience
	 * (len excludes the NUL).
	 */
	void (*on_message)(void *arg, uint32_t stream, const uint8_t *data,
	    size_t len);
	/*
	 * Any frame that is neither DATA nor WINDOW (HELLO, OPEN, CLOSE,
	 * PING...).  The payload points into the received message and is
	 * valid only during the call.
	 */
	void (*on_control)(void *arg, const struct frame *f);
	/*
	 * Optional: the bytes queued on stream fell below MUX_DRAIN_LOWAT
	 * (from at or above it), so a producer paused for backpressure may
	 * resume.  Called from mux_next_frame after the frame is built; it
	 * may queue more on any stream.
	 */
	void (*on_drain)(void *arg, uint32_t stream);
	/*
	 * Optional: the bytes queued on all streams fell below half the
	 * budget after mux_congested() said 1; producers paused for the link
	 * may resume.  Called from mux_next_frame (whatever it returns); it
	 * may queue more on any stream.
	 */
	void (*on_link_drain)(void *arg);
};

/* Low-water mark of queued bytes for on_drain. */
#define MUX_DRAIN_LOWAT		(1024 * 1024)

/*
 * The most a link's TCP socket should hold unsent (sock_limit_unsent):
 * about two default chunks, so the socket never runs dry between two
 * writeable callbacks, while everything beyond that waits in the mux,
 * where the small-message lane can still overtake it.
 */
#define LINK_UNSENT_MAX		(128 * 1024)

/* Fills lim with the defaults above. */
void mux_limits_default(struct mux_limits *lim);

/* Returns a new mux (never NULL; aborts on OOM).  cb is copied. */
struct mux *mux_new(const struct mux_limits *lim,
    const struct mux_callbacks *cb, void *arg);
/* Frees the mux, every stream and every queued message. */
void mux_free(struct mux *m);

/*
 * Sets the peer's initial per-stream receive window (from HELLO/WELCOME).
 * Applies to streams opened afterwards and to every stream on
 * mux_link_reset.  Default: the same as our own window.
 */
void mux_set_peer_window(struct mux *m, uint32_t window);

/*
 * Feeds one received WebSocket message.  Returns 0, or a negative MT_E*
 * code after which the link must be closed; then *close_code (if not NULL)
 * holds the CLOSE reason to send (CLOSE_PROTOCOL, CLOSE_TOO_BIG,
 * CLOSE_WINDOW, CLOSE_VERSION).  DATA and WINDOW for streams the mux does
 * not know are ignored (they may be in flight after a close).
 */
int mux_input(struct mux *m, const uint8_t *msg, size_t len, int *close_code);

/* Stream table.  Ids are chosen by the opener (the relay). */

/* Adds stream id; MT_ELIMIT at max_streams, MT_EINVAL if 0 or present. */
int mux_stream_add(struct mux *m, uint32_t id);
/* Forgets stream id at once, dropping its queue; no frame is sent. */
void mux_stream_remove(struct mux *m, uint32_t id);
/* Returns 1 if stream id exists. */
int mux_stream_exists(const struct mux *m, uint32_t id);
/*
 * Caps the payload of the DATA frames m builds at data_max (0: the chunk
 * limit alone, the default).  See mux_data_fit.
 */
void mux_set_data_max(struct mux *m, size_t data_max);
/*
 * The peer's announced "chunk" (what it receives at most in one DATA
 * frame): DATA frames m builds carry at most the smaller of it and m's
 * own chunk, fitted as mux_data_fit does.  masked: whether m's frames go
 * in masked WebSocket messages (the client's).
 */
void mux_set_peer_chunk(struct mux *m, size_t chunk, int masked);
/*
 * The peer's announced "max_message": mux_send refuses a longer message
 * with MT_ETOOBIG (the caller answers that one request with an error)
 * instead of sending what the peer would close the link over.
 */
void mux_set_peer_max_message(struct mux *m, size_t max_msg);
/* The "chunk" values a HELLO or WELCOME may announce (the configs' range). */
#define MUX_PEER_CHUNK_MIN	1024
#define MUX_PEER_CHUNK_MAX	(16 * 1024 * 1024)
/*
 * The DATA payload, at most chunk, for which a whole frame inside one
 * WebSocket message (2 or 4 or 10 bytes of header, 4 more when masked)
 * fills whole TLS records (TLS_RECORD_DATA); chunk itself when no such size
 * of at least half the chunk exists.  A 64 KiB chunk plus the framing
 * would otherwise need a fifth, tiny record per frame: its own encryption,
 * its own write syscall, and two more read syscalls at the peer.
 */
size_t mux_data_fit(size_t chunk, int masked);

/*
 * Ends stream id gracefully: a CLOSE(code, text) is sent after every
 * message already queued on it, then the stream is forgotten.  Messages
 * queued afterwards are refused.
 */
void mux_stream_finish(struct mux *m, uint32_t id, uint16_t code,
    const char *text);

/*
 * Queues a copy of one whole message on stream id.  Returns 0,
 * MT_ENOTFOUND (no such stream, or finishing), MT_ETOOBIG (over max_msg)
 * or MT_ENOMEM.  The caller applies backpressure with mux_stream_queued.
 */
int mux_send(struct mux *m, uint32_t id, const void *data, size_t len);
/* Bytes queued on stream id and not yet sent (0 if unknown). */
size_t mux_stream_queued(const struct mux *m, uint32_t id);
/* Bytes queued on all streams and not yet sent. */
size_t mux_queued_total(const struct mux *m);
/*
 * 1 once the bytes queued on all streams reached the budget, until they
 * fall below half of it: producers should not queue more meanwhile.
 * on_link_drain fires from the next mux_next_frame call after that (the
 * link's pings guarantee there is one).  mux_send itself never refuses
 * for the budget.
 */
int mux_congested(const struct mux *m);
/* Bytes the receive side holds against the budget (for tests, metrics). */
size_t mux_held(const struct mux *m);

/*
 * Queues a control frame (any type but DATA); control frames are sent
 * before any DATA, in order.  Returns 0, MT_ETOOBIG (over
 * FRAME_MAX_CONTROL or the type's limit), MT_EINVAL (a frame frame_decode
 * would reject: DATA, unknown type, wrong stream id or payload size) or
 * MT_ENOMEM.
 */
int mux_send_control(struct mux *m, uint8_t type, uint32_t stream,
    const void *payload, size_t len);
/* Convenience: a CLOSE/OPEN_ERR/GOAWAY with code and text. */
int mux_send_code(struct mux *m, uint8_t type, uint32_t stream,
    uint16_t code, const char *text);

/* Receive-side backpressure; see the comment at the top. */
void mux_recv_pause(struct mux *m, uint32_t id);
void mux_recv_resume(struct mux *m, uint32_t id);

/* Returns 1 if mux_next_frame would produce a frame now. */
int mux_has_output(const struct mux *m);
/*
 * Writes the next frame to send into dst (cap >= FRAME_HDR_LEN + chunk,
 * or FRAME_HDR_LEN + FRAME_MAX_CONTROL for control frames) and sets *len.
 * Order: control frames, then WINDOW updates owed, then one DATA frame:
 * a small whole message from the small-message lane (see the top), or one
 * chunk from the next stream in round-robin order that has queued data
 * and credit.
 * Returns 0, or MT_EAGAIN when there is nothing to send.
 */
int mux_next_frame(struct mux *m, uint8_t *dst, size_t cap, size_t *len);
/* Buffer size that is always enough for mux_next_frame. */
size_t mux_frame_cap(const struct mux *m);

/*
 * The link dropped: forget partial reassemblies, queued control frames and
 * owed WINDOW updates; rewind any message that was partly sent so that it
 * is sent whole again; reset every stream's send credit to the peer's
 * initial window and its receive window to ours.  Streams and their unsent
 * messages stay.
 */
void mux_link_reset(struct mux *m);

/* Calls fn for each stream id (for HELLO's resume list, shutdown...). */
void mux_foreach_stream(const struct mux *m,
    void (*fn)(void *arg, uint32_t id), void *arg);
/* Number of streams. */
uint32_t mux_stream_count(const struct mux *m);

#endif
