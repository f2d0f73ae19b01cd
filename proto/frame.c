/*
 * The tunnel frame codec: header layout, per-type validation and the small
 * fixed payload shapes (see frame.h for the contract and PROTOCOL.md for
 * the wire rules).  Everything here is pure and allocation-free so that it
 * can be fuzzed on its own; every length is checked before it is used.
 */
#include "proto/frame.h"
#include "common/err.h"

#include <string.h>

/* Which stream ids a frame type may carry. */
enum frame_sid {
	SID_ZERO,	/* stream 0 only (link-level frames) */
	SID_NONZERO,	/* a stream, never 0 */
	SID_ANY		/* either */
};

/* Payload length rules for a frame type. */
struct frame_rule {
	const char	*name;
	enum frame_sid	 sid;
	uint32_t	 min;	/* smallest valid payload */
	uint32_t	 max;	/* largest, or 0 for "only max_payload" */
	uint16_t	 flags;	/* flag bits valid on this type */
};

/* Indexed by frame type; entry 0 is never valid. */
static const struct frame_rule frame_rules[FRAME_TYPE_MAX + 1] = {
	[FRAME_HELLO] =    { "HELLO",    SID_ZERO,    1, FRAME_MAX_CONTROL, 0 },
	[FRAME_WELCOME] =  { "WELCOME",  SID_ZERO,    1, FRAME_MAX_CONTROL, 0 },
	[FRAME_CATALOG] =  { "CATALOG",  SID_ZERO,    1, FRAME_MAX_CONTROL, 0 },
	[FRAME_OPEN] =     { "OPEN",     SID_NONZERO, 1, FRAME_MAX_CONTROL, 0 },
	[FRAME_OPEN_OK] =  { "OPEN_OK",  SID_NONZERO, 0, FRAME_MAX_CONTROL, 0 },
	[FRAME_OPEN_ERR] = { "OPEN_ERR", SID_NONZERO, 2, FRAME_MAX_CONTROL, 0 },
	[FRAME_DATA] =     { "DATA",     SID_NONZERO, 0, 0, FRAME_F_MORE },
	[FRAME_WINDOW] =   { "WINDOW",   SID_ANY,     4, 4, 0 },
	[FRAME_CLOSE] =    { "CLOSE",    SID_ANY,     2, FRAME_MAX_CONTROL, 0 },
	[FRAME_GOAWAY] =   { "GOAWAY",   SID_ZERO,    2, FRAME_MAX_CONTROL, 0 },
	[FRAME_PING] =     { "PING",     SID_ZERO,    8, 8, 0 },
	[FRAME_PONG] =     { "PONG",     SID_ZERO,    8, 8, 0 },
};

static uint16_t
frame_get_u16(const uint8_t *src)
{
	return (uint16_t)((src[0] << 8) | src[1]);
}

static void
frame_put_u16(uint8_t *dst, uint16_t v)
{
	dst[0] = (uint8_t)(v >> 8);
	dst[1] = (uint8_t)v;
}

void
frame_put_u32(uint8_t *dst, uint32_t v)
{
	dst[0] = (uint8_t)(v >> 24);
	dst[1] = (uint8_t)(v >> 16);
	dst[2] = (uint8_t)(v >> 8);
	dst[3] = (uint8_t)v;
}

uint32_t
frame_get_u32(const uint8_t *src)
{
	return ((uint32_t)src[0] << 24) | ((uint32_t)src[1] << 16) |
	    ((uint32_t)src[2] << 8) | (uint32_t)src[3];
}

int
frame_decode(const uint8_t *msg, size_t len, size_t max_payload,
    struct frame *out)
{
	const struct frame_rule *rule;
	struct frame f;
	size_t avail;

	if (msg == NULL || out == NULL || len < FRAME_HDR_LEN)
		return MT_ESHORT;
	avail = len - FRAME_HDR_LEN;

	memset(&f, 0, sizeof(f));
	f.version = msg[0];
	f.type = msg[1];
	f.flags = frame_get_u16(msg + 2);
	f.stream = frame_get_u32(msg + 4);
	f.len = frame_get_u32(msg + 8);
	f.payload = msg + FRAME_HDR_LEN;

	if (f.version != MT_PROTO_VERSION) {
		/*
		 * Hand back what we can so the caller can log the peer's
		 * version; the payload is clamped to the bytes we really
		 * have, since its declared length is not to be trusted.
		 */
		if (f.len > avail)
			f.len = (uint32_t)avail;
		*out = f;
		return MT_EVERSION;
	}
	if (f.type == 0 || f.type > FRAME_TYPE_MAX)
		return MT_ETYPE;
	rule = &frame_rules[f.type];
	if ((f.flags & ~rule->flags) != 0)
		return MT_EMALFORMED;
	if (f.len > avail)
		return MT_ESHORT;
	if (f.len < avail)
		return MT_EMALFORMED;
	if (f.len > max_payload)
		return MT_ETOOBIG;
	switch (rule->sid) {
	case SID_ZERO:
		if (f.stream != 0)
			return MT_EMALFORMED;
		break;
	case SID_NONZERO:
		if (f.stream == 0)
			return MT_EMALFORMED;
		break;
	case SID_ANY:
		break;
	}
	if (f.len < rule->min)
		return MT_EMALFORMED;
	if (rule->max != 0 && f.len > rule->max) {
		/* A fixed-size payload of the wrong size is malformed. */
		return rule->min == rule->max ? MT_EMALFORMED : MT_ETOOBIG;
	}
	*out = f;
	return 0;
}

void
frame_put_header(uint8_t *dst, uint8_t type, uint16_t flags,
    uint32_t stream, uint32_t payload_len)
{
	dst[0] = MT_PROTO_VERSION;
	dst[1] = type;
	frame_put_u16(dst + 2, flags);
	frame_put_u32(dst + 4, stream);
	frame_put_u32(dst + 8, payload_len);
}

size_t
frame_encode(uint8_t *dst, size_t cap, uint8_t type, uint16_t flags,
    uint32_t stream, const void *payload, uint32_t len)
{
	/* Written so that FRAME_HDR_LEN + len cannot wrap a 32-bit size_t. */
	if (dst == NULL || cap < FRAME_HDR_LEN || cap - FRAME_HDR_LEN < len)
		return 0;
	if (len > 0 && payload == NULL)
		return 0;
	frame_put_header(dst, type, flags, stream, len);
	if (len > 0)
		memmove(dst + FRAME_HDR_LEN, payload, len);
	return FRAME_HDR_LEN + (size_t)len;
}

size_t
frame_put_code_text(uint8_t *dst, size_t cap, uint16_t code,
    const char *text)
{
	size_t n;

	if (dst == NULL || cap < 2)
		return 0;
	n = text != NULL ? strlen(text) : 0;
	if (n > cap - 2) {
		n = cap - 2;
		/*
		 * Never cut a UTF-8 sequence in half: back up over
		 * continuation bytes to the start of the cut character.
		 */
		while (n > 0 && ((uint8_t)text[n] & 0xc0) == 0x80)
			n--;
	}
	frame_put_u16(dst, code);
	if (n > 0)
		memcpy(dst + 2, text, n);
	return 2 + n;
}

int
frame_get_code_text(const struct frame *f, uint16_t *code,
    const char **text, size_t *textlen)
{
	if (f == NULL || f->len < 2 || f->payload == NULL)
		return MT_EMALFORMED;
	if (code != NULL)
		*code = frame_get_u16(f->payload);
	if (text != NULL)
		*text = (const char *)(f->payload + 2);
	if (textlen != NULL)
		*textlen = f->len - 2;
	return 0;
}

const char *
frame_type_name(unsigned type)
{
	if (type == 0 || type > FRAME_TYPE_MAX)
		return "UNKNOWN";
	return frame_rules[type].name;
}

const char *
close_code_str(unsigned code)
{
	switch (code) {
	case CLOSE_NORMAL:	return "normal close";
	case CLOSE_PROTOCOL:	return "protocol error";
	case CLOSE_TOO_BIG:	return "frame or message too big";
	case CLOSE_WINDOW:	return "flow-control window overrun";
	case CLOSE_VERSION:	return "unsupported protocol version";
	case CLOSE_AUTH:	return "authentication failed";
	case CLOSE_REPLACED:	return "replaced by a newer link";
	case CLOSE_SHUTDOWN:	return "peer is shutting down";
	case CLOSE_NOT_FOUND:	return "no such server or stream";
	case CLOSE_DENIED:	return "not allowed";
	case CLOSE_UPSTREAM:	return "upstream failed";
	case CLOSE_TIMEOUT:	return "timed out";
	case CLOSE_LIMIT:	return "limit reached";
	case CLOSE_REMOVED:	return "server removed by a reload";
	case CLOSE_INTERNAL:	return "internal error";
	}
	return "unknown reason";
}
