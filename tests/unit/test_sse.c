/*
 * Unit tests for the Server-Sent Events parser (client/sse.c): every
 * stream is fed whole, one byte at a time and split at every byte
 * boundary, and must give the same events each way; CRLF, CR and LF line
 * ends, comments, multi-line data, ids, a BOM, and events over the size
 * limit.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/sse.h"
#include "common/err.h"

#define OUT_MAX	8192

/*
 * Appends every event available to out as "type|id|data\n" and returns
 * the last sse_next result (0, or an error).
 */
static int
drain(struct sse *s, char *out, size_t outlen)
{
	struct sse_event ev;
	size_t used;
	int r;

	while ((r = sse_next(s, &ev)) == 1) {
		assert_int_equal(strlen(ev.data), ev.len);
		used = strlen(out);
		snprintf(out + used, outlen - used, "%s|%s|%s\n", ev.type,
		    ev.id, ev.data);
	}
	return r;
}

/*
 * Feeds stream in pieces: the cut points are given by cuts[0..ncuts).
 * Returns the first error (or 0) and leaves the events in out.
 */
static int
feed_cut(const char *stream, size_t len, const size_t *cuts, size_t ncuts,
    size_t max, char *out, size_t outlen)
{
	struct sse *s;
	size_t i, from = 0, to;
	int r = 0;

	out[0] = '\0';
	s = sse_new(max);
	assert_non_null(s);
	for (i = 0; i <= ncuts; i++) {
		to = i < ncuts ? cuts[i] : len;
		if ((r = sse_feed(s, stream + from, to - from)) != 0)
			break;
		if ((r = drain(s, out, outlen)) != 0)
			break;
		from = to;
	}
	sse_free(s);
	return r;
}

/* The events of stream fed whole, byte by byte and cut at every point. */
static void
check_stream(const char *stream, size_t max, int want_r, const char *want)
{
	char out[OUT_MAX];
	size_t len = strlen(stream), i, j, cuts[2], *bytes;
	int r;

	r = feed_cut(stream, len, NULL, 0, max, out, sizeof(out));
	assert_int_equal(r, want_r);
	assert_string_equal(out, want);

	bytes = calloc(len + 1, sizeof(*bytes));
	assert_non_null(bytes);
	for (i = 0; i < len; i++)
		bytes[i] = i + 1;
	r = feed_cut(stream, len, bytes, len, max, out, sizeof(out));
	free(bytes);
	assert_int_equal(r, want_r);
	assert_string_equal(out, want);

	for (i = 0; i <= len; i++) {
		cuts[0] = i;
		r = feed_cut(stream, len, cuts, 1, max, out, sizeof(out));
		assert_int_equal(r, want_r);
		assert_string_equal(out, want);
		/* Two cuts: every pair, for CRLF split across three feeds. */
		for (j = i; j <= len && len < 200; j++) {
			cuts[1] = j;
			r = feed_cut(stream, len, cuts, 2, max, out,
			    sizeof(out));
			assert_int_equal(r, want_r);
			assert_string_equal(out, want);
		}
	}
}

static void
test_simple(void **state)
{
	(void)state;
	check_stream("data: {\"a\":1}\n\n", 1024, 0, "||{\"a\":1}\n");
	check_stream("event: message\ndata: x\n\ndata: y\n\n", 1024, 0,
	    "message||x\n||y\n");
	/* No space after the colon; only one space is stripped. */
	check_stream("data:x\n\ndata:  two\n\n", 1024, 0, "||x\n|| two\n");
}

static void
test_line_ends(void **state)
{
	(void)state;
	check_stream("data: a\r\n\r\ndata: b\r\n\r\n", 1024, 0,
	    "||a\n||b\n");
	check_stream("data: a\r\rdata: b\r\r", 1024, 0, "||a\n||b\n");
	check_stream("data: a\r\ndata: b\n\r\n", 1024, 0, "||a\nb\n");
	/* "\r\n" is one line end, "\n\r" two. */
	check_stream("data: a\n\rdata: b\r\n\n", 1024, 0, "||a\n||b\n");
}

static void
test_comments_and_fields(void **state)
{
	(void)state;
	check_stream(": keep-alive\n\n: another\ndata: x\n: inside\n\n",
	    1024, 0, "||x\n");
	check_stream("retry: 1000\nfoo: bar\nid\ndata: x\n\n", 1024, 0,
	    "||x\n");
	/* A field name without a colon is the whole line. */
	check_stream("data\n\n", 1024, 0, "||\n");
	/* An event without data is not dispatched; its type is dropped. */
	check_stream("event: ping\n\ndata: x\n\n", 1024, 0, "||x\n");
}

static void
test_multiline(void **state)
{
	(void)state;
	check_stream("data: {\"a\":\ndata: 1}\n\n", 1024, 0, "||{\"a\":\n1}\n");
	check_stream("data:\ndata:\n\n", 1024, 0, "||\n\n");
	check_stream("data: a\n\n\n\ndata: b\n\n", 1024, 0, "||a\n||b\n");
}

static void
test_ids(void **state)
{
	(void)state;
	check_stream("id: 7\ndata: a\n\ndata: b\n\nid: 8\ndata: c\n\n", 1024, 0,
	    "|7|a\n|7|b\n|8|c\n");
	/* A priming event: an id and empty data. */
	check_stream("id: p1\ndata: \n\n", 1024, 0, "|p1|\n");
	/* An empty id resets it. */
	check_stream("id: 1\ndata: a\n\nid\ndata: b\n\n", 1024, 0,
	    "|1|a\n||b\n");
}

static void
test_bom(void **state)
{
	(void)state;
	check_stream("\xef\xbb\xbf" "data: a\n\n", 1024, 0, "||a\n");
	/* Only at the very start. */
	check_stream("data: a\n\n\xef\xbb\xbf" "data: b\n\n", 1024, 0,
	    "||a\n");
}

static void
test_incomplete(void **state)
{
	(void)state;
	/* An event cut off by the end of the stream is never dispatched. */
	check_stream("data: a\n\ndata: b\n", 1024, 0, "||a\n");
	check_stream("data: a\n\ndata: b", 1024, 0, "||a\n");
}

static void
test_too_big(void **state)
{
	char stream[256];

	(void)state;
	/* Exactly max bytes of data is fine, one more is not. */
	check_stream("data: 0123456789\n\n", 10, 0, "||0123456789\n");
	check_stream("data: 0123456789A\n\n", 10, MT_ETOOBIG, "");
	/* Joined lines count with their "\n". */
	check_stream("data: 01234\ndata: 5678\n\n", 10, 0, "||01234\n5678\n");
	check_stream("data: 01234\ndata: 56789\n\n", 10, MT_ETOOBIG, "");
	/* Events before the big one are delivered. */
	check_stream("data: a\n\ndata: 0123456789A\n\n", 10, MT_ETOOBIG,
	    "||a\n");

	/* A line without an end, longer than the limit, fails early. */
	memset(stream, 'x', sizeof(stream) - 1);
	stream[sizeof(stream) - 1] = '\0';
	memcpy(stream, "data: ", 6);
	check_stream(stream, 16, MT_ETOOBIG, "");
	/* A long comment is a long line too. */
	stream[0] = ':';
	check_stream(stream, 16, MT_ETOOBIG, "");

	/* Many small events add up to more than max: fine. */
	check_stream("data: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\n", 3, 0,
	    "||1\n||2\n||3\n||4\n");
}

static void
test_sticky_error(void **state)
{
	struct sse_event ev;
	struct sse *s;

	(void)state;
	assert_null(sse_new(0));
	s = sse_new(4);
	assert_non_null(s);
	assert_int_equal(sse_feed(s, "data: 12345\n\n", 13), 0);
	assert_int_equal(sse_next(s, &ev), MT_ETOOBIG);
	assert_int_equal(sse_next(s, &ev), MT_ETOOBIG);
	assert_int_equal(sse_feed(s, "data: 1\n\n", 9), MT_ETOOBIG);
	sse_free(s);
	sse_free(NULL);
}

static void
test_pull_later(void **state)
{
	struct sse_event ev;
	struct sse *s;

	(void)state;
	/*
	 * A paused caller leaves events in the parser and pulls them later;
	 * the data pointer stays valid until the next call.
	 */
	s = sse_new(1024);
	assert_non_null(s);
	assert_int_equal(sse_feed(s, "data: a\n\ndata: b\n\nda", 20), 0);
	assert_int_equal(sse_buffered(s), 20);
	assert_int_equal(sse_next(s, &ev), 1);
	assert_string_equal(ev.data, "a");
	assert_int_equal(sse_feed(s, "ta: c\n\n", 7), 0);
	assert_string_equal(ev.data, "a");
	assert_int_equal(sse_next(s, &ev), 1);
	assert_string_equal(ev.data, "b");
	assert_int_equal(sse_next(s, &ev), 1);
	assert_string_equal(ev.data, "c");
	assert_int_equal(sse_next(s, &ev), 0);
	assert_int_equal(sse_buffered(s), 0);
	sse_free(s);
}

static void
test_large_event(void **state)
{
	struct sse_event ev;
	struct sse *s;
	char *big;
	size_t n = 200000, i;

	(void)state;
	/* A big event arriving in small pieces: linear, and intact. */
	big = malloc(n + 16);
	assert_non_null(big);
	memcpy(big, "data: ", 6);
	for (i = 6; i < n + 6; i++)
		big[i] = (char)('a' + i % 26);
	memcpy(big + n + 6, "\n\n", 2);
	s = sse_new(n);
	assert_non_null(s);
	for (i = 0; i < n + 8; i += 7) {
		assert_int_equal(sse_feed(s, big + i,
		    i + 7 <= n + 8 ? 7 : n + 8 - i), 0);
		if (i + 7 < n + 8)
			assert_int_equal(sse_next(s, &ev), 0);
	}
	assert_int_equal(sse_next(s, &ev), 1);
	assert_int_equal(ev.len, n);
	assert_memory_equal(ev.data, big + 6, n);
	sse_free(s);
	free(big);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple),
		cmocka_unit_test(test_line_ends),
		cmocka_unit_test(test_comments_and_fields),
		cmocka_unit_test(test_multiline),
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_bom),
		cmocka_unit_test(test_incomplete),
		cmocka_unit_test(test_too_big),
		cmocka_unit_test(test_sticky_error),
		cmocka_unit_test(test_pull_later),
		cmocka_unit_test(test_large_event),
	};

	return cmocka_run_group_tests_name("sse", tests, NULL, NULL);
}
