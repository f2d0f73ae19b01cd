/*
 * Server-Sent Events parser; see sse.h.  The input is kept in one buffer
 * and parsed line by line on demand, so a caller that must stop delivering
 * (the agent is slow) simply stops calling sse_next() and nothing is lost.
 * A scan offset remembers how far an unfinished line was searched, so a
 * long line arriving in small pieces is not rescanned from its start.
 */
#include "client/sse.h"
#include "common/buf.h"
#include "common/err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Room for a field name and its colon and space on top of max_event. */
#define SSE_LINE_SLACK	64
/* Unparsed input the caller may leave undrained before sse_feed refuses. */
#define SSE_FEED_SLACK	(256 * 1024)
#define SSE_TYPE_MAX	64
#define SSE_ID_MAX	256

struct sse {
	struct buf	 in;		/* fed, not yet parsed */
	size_t		 scan;		/* bytes of in known to hold no EOL */
	struct buf	 data;		/* data of the event being built */
	char		 type[SSE_TYPE_MAX];
	char		 id[SSE_ID_MAX];
	size_t		 max_event;
	int		 skip_lf;	/* the last line ended in CR */
	int		 started;	/* past the optional BOM */
	int		 dispatched;	/* data/type belong to the last event */
	int		 err;		/* sticky error */
};

static const uint8_t sse_bom[3] = { 0xef, 0xbb, 0xbf };

struct sse *
sse_new(size_t max_event)
{
	struct sse *s;

	if (max_event == 0 || max_event > SIZE_MAX / 4)
		return NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	buf_init(&s->in, 0);
	buf_init(&s->data, 0);
	s->max_event = max_event;
	return s;
}

void
sse_free(struct sse *s)
{
	if (s == NULL)
		return;
	buf_free(&s->in);
	buf_free(&s->data);
	free(s);
}

size_t
sse_buffered(const struct sse *s)
{
	return buf_len(&s->in);
}

int
sse_feed(struct sse *s, const void *p, size_t n)
{
	if (s->err != 0)
		return s->err;
	if (n == 0)
		return 0;
	if (buf_len(&s->in) > 2 * s->max_event + SSE_FEED_SLACK) {
		s->err = MT_ETOOBIG;
		return s->err;
	}
	if (buf_append(&s->in, p, n) != 0)
		return MT_ENOMEM;
	return 0;
}

/* Copies the value v (vlen bytes) into dst of size dstlen, truncating. */
static void
sse_setstr(char *dst, size_t dstlen, const char *v, size_t vlen)
{
	if (vlen >= dstlen)
		vlen = dstlen - 1;
	memcpy(dst, v, vlen);
	dst[vlen] = '\0';
}

/* Handles one non-empty, non-comment line. */
static int
sse_field(struct sse *s, const char *line, size_t len)
{
	const char *colon, *v;
	size_t nlen, vlen;

	if ((colon = memchr(line, ':', len)) != NULL) {
		nlen = (size_t)(colon - line);
		v = colon + 1;
		vlen = len - nlen - 1;
		if (vlen > 0 && *v == ' ') {
			v++;
			vlen--;
		}
	} else {
		nlen = len;
		v = line + len;
		vlen = 0;
	}

	if (nlen == 4 && memcmp(line, "data", 4) == 0) {
		/* The joining "\n" counts; the last one is dropped later. */
		if (buf_len(&s->data) + vlen > s->max_event)
			return MT_ETOOBIG;
		if (buf_append(&s->data, v, vlen) != 0 ||
		    buf_append(&s->data, "\n", 1) != 0)
			return MT_ENOMEM;
	} else if (nlen == 5 && memcmp(line, "event", 5) == 0) {
		sse_setstr(s->type, sizeof(s->type), v, vlen);
	} else if (nlen == 2 && memcmp(line, "id", 2) == 0) {
		/* An id with NUL is ignored; so is one too long to keep. */
		if (memchr(v, '\0', vlen) == NULL && vlen < sizeof(s->id))
			sse_setstr(s->id, sizeof(s->id), v, vlen);
	}
	/* "retry" and unknown fields are ignored. */
	return 0;
}

int
sse_next(struct sse *s, struct sse_event *ev)
{
	const uint8_t *p, *eol;
	size_t n, linelen;
	uint8_t *d;
	int r;

	if (s->err != 0)
		return s->err;
	if (s->dispatched) {
		buf_reset(&s->data);
		s->type[0] = '\0';
		s->dispatched = 0;
	}
	for (;;) {
		p = buf_ptr(&s->in);
		n = buf_len(&s->in);
		if (s->skip_lf) {
			if (n == 0)
				return 0;
			s->skip_lf = 0;
			if (p[0] == '\n') {
				buf_consume(&s->in, 1);
				continue;
			}
		}
		if (!s->started) {
			/* A UTF-8 BOM may open the stream; wait to see it. */
			if (n == 0)
				return 0;
			if (n < sizeof(sse_bom) &&
			    memcmp(p, sse_bom, n) == 0)
				return 0;
			if (memcmp(p, sse_bom, sizeof(sse_bom)) == 0)
				buf_consume(&s->in, sizeof(sse_bom));
			s->started = 1;
			continue;
		}

		/* Find the end of the line: CR or LF, past what we scanned. */
		eol = NULL;
		for (linelen = s->scan; linelen < n; linelen++) {
			if (p[linelen] == '\r' || p[linelen] == '\n') {
				eol = p + linelen;
				break;
			}
		}
		if (eol == NULL) {
			s->scan = n;
			if (n > s->max_event + SSE_LINE_SLACK) {
				s->err = MT_ETOOBIG;
				return s->err;
			}
			return 0;
		}
		s->scan = 0;
		if (linelen > s->max_event + SSE_LINE_SLACK) {
			s->err = MT_ETOOBIG;
			return s->err;
		}
		s->skip_lf = *eol == '\r';

		if (linelen == 0) {
			buf_consume(&s->in, 1);
			if (buf_len(&s->data) == 0) {
				/* No data line: nothing to dispatch. */
				s->type[0] = '\0';
				continue;
			}
			/* Drop the last "\n"; its byte becomes the NUL. */
			d = s->data.data + s->data.off;
			n = buf_len(&s->data) - 1;
			d[n] = '\0';
			ev->type = s->type;
			ev->data = (const char *)d;
			ev->len = n;
			ev->id = s->id;
			s->dispatched = 1;
			return 1;
		}
		r = 0;
		if (p[0] != ':')
			r = sse_field(s, (const char *)p, linelen);
		buf_consume(&s->in, linelen + 1);
		if (r != 0) {
			s->err = r;
			return r;
		}
	}
}
