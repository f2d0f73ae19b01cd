/*
 * The mcptun tunnel frame codec (see proto/PROTOCOL.md, the normative spec).
 *
 * One frame per WebSocket binary message: a fixed 12-byte header followed
 * by the payload.  All integers are big-endian.
 *
 *   0       1       2       4               8              12
 *   +-------+-------+-------+---------------+---------------+---------
 *   |version| type  | flags |   stream id   | payload length| payload
 *   +-------+-------+-------+---------------+---------------+---------
 *
 * The codec is pure: no allocation, no I/O.  Decoding checks every length
 * before reading and never reads past the message.
 */
#ifndef MCPTUN_FRAME_H
#define MCPTUN_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define MT_PROTO_VERSION	1
#define MT_SUBPROTOCOL		"mcptun.1"
#define FRAME_HDR_LEN		12
/* Control payloads (JSON, code+text) are never larger than this. */
#define FRAME_MAX_CONTROL	65536

enum frame_type {
	FRAME_HELLO = 1,	/* client -> relay, stream 0, JSON */
	FRAME_WELCOME = 2,	/* relay -> client, stream 0, JSON */
	FRAME_CATALOG = 3,	/* client -> relay, stream 0, JSON */
	FRAME_OPEN = 4,		/* relay -> client, stream != 0, JSON */
	FRAME_OPEN_OK = 5,	/* client -> relay, stream != 0, JSON */
	FRAME_OPEN_ERR = 6,	/* client -> relay, stream != 0, code + text */
	FRAME_DATA = 7,		/* either, stream != 0, bytes (FRAME_F_MORE) */
	FRAME_WINDOW = 8,	/* either, any stream, u32 credit increment */
	FRAME_CLOSE = 9,	/* either; stream != 0 ends a stream, 0 the link */
	FRAME_GOAWAY = 10,	/* relay -> client, stream 0, code + text */
	FRAME_PING = 11,	/* either, stream 0, 8 opaque bytes */
	FRAME_PONG = 12,	/* either, stream 0, the PING's 8 bytes */
	FRAME_TYPE_MAX = 12
};

/* DATA: more chunks of the same message follow. */
#define FRAME_F_MORE		0x0001
#define FRAME_F_KNOWN		FRAME_F_MORE

/* Reason codes carried by CLOSE, OPEN_ERR and GOAWAY. */
enum close_code {
	CLOSE_NORMAL = 0,	/* orderly end */
	CLOSE_PROTOCOL = 1,	/* malformed frame or protocol violation */
	CLOSE_TOO_BIG = 2,	/* frame or message over a limit */
	CLOSE_WINDOW = 3,	/* flow-control window overrun */
	CLOSE_VERSION = 4,	/* unsupported protocol version */
	CLOSE_AUTH = 5,		/* authentication failed */
	CLOSE_REPLACED = 6,	/* a newer link for the same tunnel took over */
	CLOSE_SHUTDOWN = 7,	/* peer is shutting down / draining */
	CLOSE_NOT_FOUND = 8,	/* no such server / stream */
	CLOSE_DENIED = 9,	/* not allowed by the allowlist or a tool filter */
	CLOSE_UPSTREAM = 10,	/* the upstream failed, exited or hung */
	CLOSE_TIMEOUT = 11,	/* a deadline passed */
	CLOSE_LIMIT = 12,	/* a count limit was reached */
	CLOSE_REMOVED = 13,	/* the server was removed by a reload */
	CLOSE_INTERNAL = 14,	/* internal error */
	CLOSE_CODE_MAX = 14
};

/* A decoded frame; payload points into the decoded message. */
struct frame {
	uint8_t		 version;
	uint8_t		 type;
	uint16_t	 flags;
	uint32_t	 stream;
	const uint8_t	*payload;
	uint32_t	 len;
};

/*
 * Decodes one WebSocket message.  Checks: length >= header, the version is
 * MT_PROTO_VERSION (else MT_EVERSION, with *out still filled so the caller
 * can log it), the type is known (MT_ETYPE), unknown flag bits are zero, the
 * payload length equals the remaining bytes (MT_ESHORT / MT_EMALFORMED),
 * the payload is at most max_payload (MT_ETOOBIG), the stream id is 0 or not
 * as the type requires and fixed-size payloads have their size
 * (MT_EMALFORMED).  Returns 0 and fills *out on success.
 */
int frame_decode(const uint8_t *msg, size_t len, size_t max_payload,
    struct frame *out);

/*
 * Writes the 12-byte header for a frame of the given type, flags, stream and
 * payload length at dst (which must have FRAME_HDR_LEN bytes).
 */
void frame_put_header(uint8_t *dst, uint8_t type, uint16_t flags,
    uint32_t stream, uint32_t payload_len);

/*
 * Encodes a whole frame (header + copy of payload) into dst of size cap.
 * Returns the number of bytes written, or 0 if cap is too small.
 */
size_t frame_encode(uint8_t *dst, size_t cap, uint8_t type, uint16_t flags,
    uint32_t stream, const void *payload, uint32_t len);

/* Payload helpers for the small fixed shapes. */

/* WINDOW payload: 4-byte increment.  Writes 4 bytes. */
void frame_put_u32(uint8_t *dst, uint32_t v);
uint32_t frame_get_u32(const uint8_t *src);
/*
 * Code + text payload (CLOSE, OPEN_ERR, GOAWAY): u16 code then UTF-8 text,
 * not NUL-terminated.  frame_put_code_text returns bytes written (2 + text
 * length, text truncated to fit cap) or 0 if cap < 2.
 */
size_t frame_put_code_text(uint8_t *dst, size_t cap, uint16_t code,
    const char *text);
/* Splits a code + text payload; MT_EMALFORMED if shorter than 2 bytes. */
int frame_get_code_text(const struct frame *f, uint16_t *code,
    const char **text, size_t *textlen);

/* Names for logs: "DATA", "CLOSE"...; "UNKNOWN" for others. */
const char *frame_type_name(unsigned type);
/* Sentence for a close code; "unknown reason" for others. */
const char *close_code_str(unsigned code);

#endif
