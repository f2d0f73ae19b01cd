/*
 * An incremental parser for Server-Sent Events (the text/event-stream
 * format of the HTML standard), as MCP Streamable HTTP servers use it for
 * answers and for their server-to-client stream.
 *
 * It is pure: the caller feeds bytes as they arrive, split anywhere (even
 * inside a CRLF or a UTF-8 BOM), and pulls complete events out.  Lines end
 * in CRLF, LF or CR; comment lines (":...") and "retry:" and unknown fields
 * are ignored; "data:" lines are joined with "\n"; "event:" gives the type
 * and "id:" the last event id.  Events are only dispatched at a blank line,
 * so an event cut off by the end of the stream is never seen.
 *
 * Size: one event's data, and any single line, may be at most max_event
 * bytes (plus a little for the field name); past that sse_next() fails with
 * MT_ETOOBIG and the parser stays failed.  Memory is bounded by about
 * twice max_event when the caller drains events between feeds.
 */
#ifndef MCPTUN_SSE_H
#define MCPTUN_SSE_H

#include <stddef.h>

struct sse;

struct sse_event {
	const char	*type;	/* the "event:" field, "" when absent */
	const char	*data;	/* data lines joined by "\n", NUL-terminated */
	size_t		 len;	/* of data, without the NUL */
	const char	*id;	/* last event id of the stream, "" if none */
};

/*
 * Returns a new parser that allows events of up to max_event bytes of
 * data, or NULL (out of memory or max_event 0).  Free it with sse_free().
 */
struct sse	*sse_new(size_t max_event);
/* Frees the parser and everything it buffered; NULL is fine. */
void		 sse_free(struct sse *s);
/*
 * Appends n bytes of the stream.  Returns 0, MT_ENOMEM, or MT_ETOOBIG if
 * far more than an event's worth is buffered unparsed (the caller is not
 * draining), or the error the parser already failed with.
 */
int		 sse_feed(struct sse *s, const void *p, size_t n);
/*
 * Parses the next complete event out of what was fed.  Returns 1 and fills
 * *ev (its pointers are valid until the next sse_next, sse_feed or
 * sse_free), 0 when more input is needed, or MT_ETOOBIG (an event or a
 * line over max_event).  An event whose data is empty ("data:" alone) is
 * returned with len 0; one without any data line is not returned.
 */
int		 sse_next(struct sse *s, struct sse_event *ev);
/* Returns the number of bytes fed but not parsed yet. */
size_t		 sse_buffered(const struct sse *s);

#endif
