/*
 * Unit tests for the frame codec (proto/frame.c): a round trip for every
 * frame type, and every way a message can be malformed, each checked for
 * the exact error code frame.h promises.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "proto/frame.h"
#include "common/err.h"

#define BIG	(16u * 1024 * 1024)

/* Builds a raw message with an arbitrary header, bypassing frame_encode. */
static size_t
raw(uint8_t *dst, uint8_t version, uint8_t type, uint16_t flags,
    uint32_t stream, uint32_t declared, const void *payload, size_t len)
{
	frame_put_header(dst, type, flags, stream, declared);
	dst[0] = version;
	if (len > 0)
		memcpy(dst + FRAME_HDR_LEN, payload, len);
	return FRAME_HDR_LEN + len;
}

/* Encodes, decodes and checks every field comes back. */
static void
roundtrip(uint8_t type, uint16_t flags, uint32_t stream, const void *payload,
    uint32_t len)
{
	static uint8_t msg[FRAME_HDR_LEN + 70000];
	struct frame f;
	size_t n;

	n = frame_encode(msg, sizeof(msg), type, flags, stream, payload, len);
	assert_int_equal(n, FRAME_HDR_LEN + len);
	assert_int_equal(frame_decode(msg, n, BIG, &f), 0);
	assert_int_equal(f.version, MT_PROTO_VERSION);
	assert_int_equal(f.type, type);
	assert_int_equal(f.flags, flags);
	assert_int_equal(f.stream, stream);
	assert_int_equal(f.len, len);
	assert_ptr_equal(f.payload, msg + FRAME_HDR_LEN);
	if (len > 0)
		assert_memory_equal(f.payload, payload, len);
}

static void
test_roundtrip_all_types(void **state)
{
	const char *json = "{\"version\":1,\"tunnel\":\"t\"}";
	uint8_t w[4], ping[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, ct[64];
	size_t ctlen;

	roundtrip(FRAME_HELLO, 0, 0, json, (uint32_t)strlen(json));
	roundtrip(FRAME_WELCOME, 0, 0, json, (uint32_t)strlen(json));
	roundtrip(FRAME_CATALOG, 0, 0, "{\"catalog\":[]}", 14);
	roundtrip(FRAME_OPEN, 0, 7, "{\"server\":\"db\"}", 15);
	roundtrip(FRAME_OPEN_OK, 0, 7, "{}", 2);
	roundtrip(FRAME_OPEN_OK, 0, 7, NULL, 0);
	ctlen = frame_put_code_text(ct, sizeof(ct), CLOSE_NOT_FOUND, "nope");
	roundtrip(FRAME_OPEN_ERR, 0, 7, ct, (uint32_t)ctlen);
	roundtrip(FRAME_DATA, 0, 7, "{\"jsonrpc\":\"2.0\"}", 17);
	roundtrip(FRAME_DATA, FRAME_F_MORE, 0xffffffffu, "abc", 3);
	roundtrip(FRAME_DATA, 0, 1, NULL, 0);
	frame_put_u32(w, 65536);
	roundtrip(FRAME_WINDOW, 0, 3, w, 4);
	roundtrip(FRAME_WINDOW, 0, 0, w, 4);
	ctlen = frame_put_code_text(ct, sizeof(ct), CLOSE_NORMAL, "");
	roundtrip(FRAME_CLOSE, 0, 3, ct, (uint32_t)ctlen);
	roundtrip(FRAME_CLOSE, 0, 0, ct, (uint32_t)ctlen);
	ctlen = frame_put_code_text(ct, sizeof(ct), CLOSE_SHUTDOWN, "drain");
	roundtrip(FRAME_GOAWAY, 0, 0, ct, (uint32_t)ctlen);
	roundtrip(FRAME_PING, 0, 0, ping, 8);
	roundtrip(FRAME_PONG, 0, 0, ping, 8);
}

static void
test_roundtrip_control_max(void **state)
{
	static uint8_t big[FRAME_MAX_CONTROL];

	memset(big, 'x', sizeof(big));
	roundtrip(FRAME_HELLO, 0, 0, big, FRAME_MAX_CONTROL);
	roundtrip(FRAME_CLOSE, 0, 9, big, FRAME_MAX_CONTROL);
}

static void
test_header_layout(void **state)
{
	uint8_t h[FRAME_HDR_LEN];
	const uint8_t want[FRAME_HDR_LEN] = {
		0x01, 0x07, 0x00, 0x01, 0x12, 0x34, 0x56, 0x78,
		0x00, 0x01, 0x00, 0x02
	};

	frame_put_header(h, FRAME_DATA, FRAME_F_MORE, 0x12345678, 0x10002);
	assert_memory_equal(h, want, sizeof(want));
	assert_int_equal(frame_get_u32(want + 4), 0x12345678);
}

static void
test_encode_cap(void **state)
{
	uint8_t buf[FRAME_HDR_LEN + 4];

	assert_int_equal(frame_encode(buf, FRAME_HDR_LEN - 1, FRAME_PING, 0,
	    0, NULL, 0), 0);
	assert_int_equal(frame_encode(buf, FRAME_HDR_LEN + 3, FRAME_DATA, 0,
	    1, "abcd", 4), 0);
	assert_int_equal(frame_encode(buf, sizeof(buf), FRAME_DATA, 0, 1,
	    "abcd", 4), FRAME_HDR_LEN + 4);
	/* A huge declared length must not wrap the capacity check. */
	assert_int_equal(frame_encode(buf, sizeof(buf), FRAME_DATA, 0, 1,
	    "abcd", 0xffffffffu), 0);
}

static void
test_short_header(void **state)
{
	uint8_t msg[FRAME_HDR_LEN];
	struct frame f;
	size_t i;

	frame_put_header(msg, FRAME_OPEN_OK, 0, 1, 0);
	for (i = 0; i < FRAME_HDR_LEN; i++)
		assert_int_equal(frame_decode(msg, i, BIG, &f), MT_ESHORT);
	assert_int_equal(frame_decode(msg, FRAME_HDR_LEN, BIG, &f), 0);
	assert_int_equal(frame_decode(NULL, 0, BIG, &f), MT_ESHORT);
}

static void
test_length_mismatch(void **state)
{
	uint8_t msg[64];
	struct frame f;
	size_t n;

	/* Declares more than the message holds. */
	n = raw(msg, 1, FRAME_DATA, 0, 1, 10, "abcde", 5);
	assert_int_equal(frame_decode(msg, n, BIG, &f), MT_ESHORT);
	n = raw(msg, 1, FRAME_DATA, 0, 1, 0xffffffffu, "abcde", 5);
	assert_int_equal(frame_decode(msg, n, BIG, &f), MT_ESHORT);
	/* Declares less: trailing garbage. */
	n = raw(msg, 1, FRAME_DATA, 0, 1, 4, "abcde", 5);
	assert_int_equal(frame_decode(msg, n, BIG, &f), MT_EMALFORMED);
	n = raw(msg, 1, FRAME_DATA, 0, 1, 0, "abcde", 5);
	assert_int_equal(frame_decode(msg, n, BIG, &f), MT_EMALFORMED);
}

static void
test_bad_version(void **state)
{
	uint8_t msg[64];
	struct frame f;
	size_t n;

	memset(&f, 0, sizeof(f));
	n = raw(msg, 2, FRAME_HELLO, 0, 0, 2, "{}", 2);
	assert_int_equal(frame_decode(msg, n, BIG, &f), MT_EVERSION);
	/* *out is filled so that the caller can log what the peer sent. */
	assert_int_equal(f.version, 2);
	assert_int_equal(f.type, FRAME_HELLO);
	assert_int_equal(f.len, 2);
	n = raw(msg, 0, FRAME_HELLO, 0, 0, 2, "{}", 2);
	assert_int_equal(frame_decode(msg, n, BIG, &f), MT_EVERSION);
	assert_int_equal(f.version, 0);
	/* Even with a lying length, the payload stays inside the message. */
	n = raw(msg, 255, 99, 0, 0, 1000, "{}", 2);
	assert_int_equal(frame_decode(msg, n, BIG, &f), MT_EVERSION);
	assert_int_equal(f.version, 255);
	assert_true(f.len <= 2);
}

static void
test_unknown_type(void **state)
{
	const uint8_t types[] = { 0, 13, 14, 100, 255 };
	uint8_t msg[64];
	struct frame f;
	size_t i, n;

	for (i = 0; i < sizeof(types); i++) {
		n = raw(msg, 1, types[i], 0, 0, 2, "{}", 2);
		assert_int_equal(frame_decode(msg, n, BIG, &f), MT_ETYPE);
		n = raw(msg, 1, types[i], 0, 5, 0, NULL, 0);
		assert_int_equal(frame_decode(msg, n, BIG, &f), MT_ETYPE);
	}
}

static void
test_flags(void **state)
{
	uint8_t msg[64], ping[8] = { 0 };
	struct frame f;
	size_t n;
	unsigned bit;

	/* Every unknown bit on DATA is refused. */
	for (bit = 1; bit < 16; bit++) {
		n = raw(msg, 1, FRAME_DATA, (uint16_t)(1u << bit), 1, 1, "x",
		    1);
		assert_int_equal(frame_decode(msg, n, BIG, &f),
		    MT_EMALFORMED);
	}
	n = raw(msg, 1, FRAME_DATA, 0xffff, 1, 1, "x", 1);
	assert_int_equal(frame_decode(msg, n, BIG, &f), MT_EMALFORMED);
	/* MORE only on DATA. */
	n = raw(msg, 1, FRAME_PING, FRAME_F_MORE, 0, 8, ping, 8);
	assert_int_equal(frame_decode(msg, n, BIG, &f), MT_EMALFORMED);
	n = raw(msg, 1, FRAME_HELLO, FRAME_F_MORE, 0, 2, "{}", 2);
	assert_int_equal(frame_decode(msg, n, BIG, &f), MT_EMALFORMED);
	n = raw(msg, 1, FRAME_OPEN, FRAME_F_MORE, 1, 2, "{}", 2);
	assert_int_equal(frame_decode(msg, n, BIG, &f), MT_EMALFORMED);
	n = raw(msg, 1, FRAME_CLOSE, FRAME_F_MORE, 1, 2, "\0\0", 2);
	assert_int_equal(frame_decode(msg, n, BIG, &f), MT_EMALFORMED);
	n = raw(msg, 1, FRAME_DATA, FRAME_F_MORE, 1, 1, "x", 1);
	assert_int_equal(frame_decode(msg, n, BIG, &f), 0);
	assert_int_equal(f.flags, FRAME_F_MORE);
}

static void
test_stream_rule(void **state)
{
	const uint8_t zero[] = { FRAME_HELLO, FRAME_WELCOME, FRAME_CATALOG,
	    FRAME_GOAWAY, FRAME_PING, FRAME_PONG };
	const uint8_t nonzero[] = { FRAME_OPEN, FRAME_OPEN_OK, FRAME_OPEN_ERR,
	    FRAME_DATA };
	const uint8_t any[] = { FRAME_WINDOW, FRAME_CLOSE };
	uint8_t msg[64], pl[8] = { 0, 1, 2, 3, 4, 5, 6, 7 };
	struct frame f;
	size_t i, n;

	/* pl is valid as JSON-ish bytes, a code+text, a window and a ping. */
	for (i = 0; i < sizeof(zero); i++) {
		n = raw(msg, 1, zero[i], 0, 0, 8, pl, 8);
		assert_int_equal(frame_decode(msg, n, BIG, &f), 0);
		n = raw(msg, 1, zero[i], 0, 1, 8, pl, 8);
		assert_int_equal(frame_decode(msg, n, BIG, &f),
		    MT_EMALFORMED);
	}
	for (i = 0; i < sizeof(nonzero); i++) {
		n = raw(msg, 1, nonzero[i], 0, 1, 8, pl, 8);
		assert_int_equal(frame_decode(msg, n, BIG, &f), 0);
		n = raw(msg, 1, nonzero[i], 0, 0, 8, pl, 8);
		assert_int_equal(frame_decode(msg, n, BIG, &f),
		    MT_EMALFORMED);
	}
	for (i = 0; i < sizeof(any); i++) {
		n = raw(msg, 1, any[i], 0, 0, 4, pl, 4);
		assert_int_equal(frame_decode(msg, n, BIG, &f), 0);
		n = raw(msg, 1, any[i], 0, 0xffffffffu, 4, pl, 4);
		assert_int_equal(frame_decode(msg, n, BIG, &f), 0);
	}
}

/* Checks that type decodes with payload length len iff ok. */
static void
check_size(uint8_t type, uint32_t stream, size_t len, int want)
{
	static uint8_t msg[FRAME_HDR_LEN + FRAME_MAX_CONTROL + 16];
	static uint8_t pl[FRAME_MAX_CONTROL + 16];
	struct frame f;
	size_t n;

	n = raw(msg, 1, type, 0, stream, (uint32_t)len, pl, len);
	assert_int_equal(frame_decode(msg, n, BIG, &f), want);
}

static void
test_fixed_sizes(void **state)
{
	size_t i;

	for (i = 0; i <= 12; i++) {
		check_size(FRAME_WINDOW, 1, i, i == 4 ? 0 : MT_EMALFORMED);
		check_size(FRAME_PING, 0, i, i == 8 ? 0 : MT_EMALFORMED);
		check_size(FRAME_PONG, 0, i, i == 8 ? 0 : MT_EMALFORMED);
	}
	for (i = 0; i < 3; i++) {
		check_size(FRAME_CLOSE, 1, i, i >= 2 ? 0 : MT_EMALFORMED);
		check_size(FRAME_OPEN_ERR, 1, i, i >= 2 ? 0 : MT_EMALFORMED);
		check_size(FRAME_GOAWAY, 0, i, i >= 2 ? 0 : MT_EMALFORMED);
	}
	check_size(FRAME_HELLO, 0, 0, MT_EMALFORMED);
	check_size(FRAME_WELCOME, 0, 0, MT_EMALFORMED);
	check_size(FRAME_CATALOG, 0, 0, MT_EMALFORMED);
	check_size(FRAME_OPEN, 1, 0, MT_EMALFORMED);
	check_size(FRAME_OPEN_OK, 1, 0, 0);
	check_size(FRAME_DATA, 1, 0, 0);
}

static void
test_control_max(void **state)
{
	const uint8_t types[] = { FRAME_HELLO, FRAME_WELCOME, FRAME_CATALOG,
	    FRAME_OPEN, FRAME_OPEN_OK, FRAME_OPEN_ERR, FRAME_CLOSE,
	    FRAME_GOAWAY };
	size_t i;
	uint32_t sid;

	for (i = 0; i < sizeof(types); i++) {
		sid = types[i] >= FRAME_OPEN && types[i] <= FRAME_OPEN_ERR;
		check_size(types[i], sid, FRAME_MAX_CONTROL, 0);
		check_size(types[i], sid, FRAME_MAX_CONTROL + 1, MT_ETOOBIG);
	}
	/* DATA is bounded only by max_payload. */
	check_size(FRAME_DATA, 1, FRAME_MAX_CONTROL + 1, 0);
}

static void
test_max_payload(void **state)
{
	uint8_t msg[FRAME_HDR_LEN + 100], pl[100];
	struct frame f;
	size_t n;

	memset(pl, 'a', sizeof(pl));
	n = raw(msg, 1, FRAME_DATA, 0, 1, 100, pl, 100);
	assert_int_equal(frame_decode(msg, n, 100, &f), 0);
	assert_int_equal(frame_decode(msg, n, 99, &f), MT_ETOOBIG);
	assert_int_equal(frame_decode(msg, n, 0, &f), MT_ETOOBIG);
	n = raw(msg, 1, FRAME_HELLO, 0, 0, 10, pl, 10);
	assert_int_equal(frame_decode(msg, n, 9, &f), MT_ETOOBIG);
	/* An empty payload always fits. */
	n = raw(msg, 1, FRAME_OPEN_OK, 0, 1, 0, NULL, 0);
	assert_int_equal(frame_decode(msg, n, 0, &f), 0);
}

static void
test_out_untouched_on_error(void **state)
{
	uint8_t msg[64];
	struct frame f;
	size_t n;

	memset(&f, 0xa5, sizeof(f));
	n = raw(msg, 1, FRAME_DATA, 0, 0, 1, "x", 1);
	assert_int_equal(frame_decode(msg, n, BIG, &f), MT_EMALFORMED);
	assert_int_equal(f.type, 0xa5);
	assert_int_equal(f.stream, 0xa5a5a5a5u);
}

static void
test_code_text(void **state)
{
	uint8_t buf[64], msg[128];
	struct frame f;
	const char *text;
	size_t n, tl;
	uint16_t code;

	n = frame_put_code_text(buf, sizeof(buf), 0xbeef, "hello");
	assert_int_equal(n, 7);
	assert_int_equal(buf[0], 0xbe);
	assert_int_equal(buf[1], 0xef);
	assert_memory_equal(buf + 2, "hello", 5);

	n = frame_encode(msg, sizeof(msg), FRAME_CLOSE, 0, 4, buf, (uint32_t)n);
	assert_int_equal(frame_decode(msg, n, BIG, &f), 0);
	assert_int_equal(frame_get_code_text(&f, &code, &text, &tl), 0);
	assert_int_equal(code, 0xbeef);
	assert_int_equal(tl, 5);
	assert_memory_equal(text, "hello", 5);

	/* Empty and NULL text. */
	assert_int_equal(frame_put_code_text(buf, sizeof(buf), 3, ""), 2);
	assert_int_equal(frame_put_code_text(buf, sizeof(buf), 3, NULL), 2);
	f.payload = buf;
	f.len = 2;
	assert_int_equal(frame_get_code_text(&f, &code, &text, &tl), 0);
	assert_int_equal(code, 3);
	assert_int_equal(tl, 0);
	/* Too short. */
	f.len = 1;
	code = 77;
	assert_int_equal(frame_get_code_text(&f, &code, &text, &tl),
	    MT_EMALFORMED);
	assert_int_equal(code, 77);
	f.len = 0;
	assert_int_equal(frame_get_code_text(&f, &code, &text, &tl),
	    MT_EMALFORMED);
}

static void
test_code_text_truncation(void **state)
{
	uint8_t buf[16];

	memset(buf, 0xff, sizeof(buf));
	assert_int_equal(frame_put_code_text(buf, 0, 1, "abc"), 0);
	assert_int_equal(frame_put_code_text(buf, 1, 1, "abc"), 0);
	assert_int_equal(buf[0], 0xff);
	assert_int_equal(frame_put_code_text(buf, 2, 1, "abc"), 2);
	assert_int_equal(frame_put_code_text(buf, 4, 1, "abc"), 4);
	assert_memory_equal(buf + 2, "ab", 2);
	assert_int_equal(buf[4], 0xff);
	assert_int_equal(frame_put_code_text(buf, 5, 1, "abc"), 5);
	assert_int_equal(frame_put_code_text(buf, 16, 1, "abc"), 5);
	/* "é" is two bytes; it is dropped whole, never cut in half. */
	assert_int_equal(frame_put_code_text(buf, 4, 1, "a\xc3\xa9"), 3);
	assert_int_equal(frame_put_code_text(buf, 5, 1, "a\xc3\xa9"), 5);
	/* A four-byte character at the cut. */
	assert_int_equal(frame_put_code_text(buf, 5, 1,
	    "a\xf0\x9f\x98\x80"), 3);
	assert_int_equal(frame_put_code_text(buf, 7, 1,
	    "a\xf0\x9f\x98\x80"), 7);
}

static void
test_names(void **state)
{
	unsigned i;

	assert_string_equal(frame_type_name(FRAME_DATA), "DATA");
	assert_string_equal(frame_type_name(FRAME_OPEN_ERR), "OPEN_ERR");
	assert_string_equal(frame_type_name(FRAME_PONG), "PONG");
	assert_string_equal(frame_type_name(0), "UNKNOWN");
	assert_string_equal(frame_type_name(13), "UNKNOWN");
	assert_string_equal(frame_type_name(~0u), "UNKNOWN");
	for (i = 1; i <= FRAME_TYPE_MAX; i++)
		assert_string_not_equal(frame_type_name(i), "UNKNOWN");
	for (i = 0; i <= CLOSE_CODE_MAX; i++)
		assert_string_not_equal(close_code_str(i), "unknown reason");
	assert_string_equal(close_code_str(CLOSE_CODE_MAX + 1),
	    "unknown reason");
	assert_string_equal(close_code_str(65535), "unknown reason");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_all_types),
		cmocka_unit_test(test_roundtrip_control_max),
		cmocka_unit_test(test_header_layout),
		cmocka_unit_test(test_encode_cap),
		cmocka_unit_test(test_short_header),
		cmocka_unit_test(test_length_mismatch),
		cmocka_unit_test(test_bad_version),
		cmocka_unit_test(test_unknown_type),
		cmocka_unit_test(test_flags),
		cmocka_unit_test(test_stream_rule),
		cmocka_unit_test(test_fixed_sizes),
		cmocka_unit_test(test_control_max),
		cmocka_unit_test(test_max_payload),
		cmocka_unit_test(test_out_untouched_on_error),
		cmocka_unit_test(test_code_text),
		cmocka_unit_test(test_code_text_truncation),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests_name("frame", tests, NULL, NULL);
}
