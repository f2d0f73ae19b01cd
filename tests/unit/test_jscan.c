/*
 * Unit tests for common/jscan.c (the strict JSON scanner) and jrpc_peek in
 * common/jsonrpc.c.  Every verdict is also checked against jansson, with
 * the flags jrpc_parse uses: the scanner may say "unsure", but never the
 * opposite of what jansson says.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/jscan.h"
#include "common/jsonrpc.h"

static const struct jscan_want W[] = {
	{ "id", JSCAN_ROOT },		/* 0 */
	{ "method", JSCAN_ROOT },	/* 1 */
	{ "params", JSCAN_ROOT },	/* 2 */
	{ "name", 2 },			/* 3 */
	{ "result", JSCAN_ROOT },	/* 4 */
};
#define NW (sizeof(W) / sizeof(W[0]))

/* jscan on s (its strlen, or n bytes if n > 0), checked against jansson. */
static int
scan(const char *s, size_t n, struct jscan_val *v, enum jscan_type *top)
{
	json_t *j;
	int r;

	if (n == 0)
		n = strlen(s);
	r = jscan(s, n, W, NW, v, top);
	j = json_loadb(s, n, JSON_REJECT_DUPLICATES, NULL);
	if (r == JSCAN_OK)
		assert_non_null(j);
	if (r == JSCAN_BAD)
		assert_null(j);
	json_decref(j);
	return r;
}

static void
expect(const char *s, int want)
{
	struct jscan_val v[NW];

	if (scan(s, 0, v, NULL) != want) {
		print_error("jscan(%s) != %d\n", s, want);
		fail();
	}
}

/* The bytes of value v of text s, as a C string (static buffer). */
static const char *
span(const char *s, const struct jscan_val *v)
{
	static char buf[256];

	assert_true(v->len < sizeof(buf));
	memcpy(buf, s + v->off, v->len);
	buf[v->len] = '\0';
	return buf;
}

static void
test_valid(void **state)
{
	const char *s = " {\"jsonrpc\":\"2.0\", \"id\" : 7,\"method\":\"tools/call\","
	    "\"params\":{\"name\":\"echo\",\"arguments\":{\"id\":1,"
	    "\"name\":[\"x\"]}}}\r\n";
	struct jscan_val v[NW];
	enum jscan_type top;

	assert_int_equal(scan(s, 0, v, &top), JSCAN_OK);
	assert_int_equal(top, JSCAN_OBJECT);
	assert_int_equal(v[0].type, JSCAN_INTEGER);
	assert_string_equal(span(s, &v[0]), "7");
	assert_int_equal(v[1].type, JSCAN_STRING);
	assert_string_equal(span(s, &v[1]), "\"tools/call\"");
	assert_true(jscan_str_eq(s, &v[1], "tools/call"));
	assert_false(jscan_str_eq(s, &v[1], "tools/cal"));
	assert_int_equal(v[2].type, JSCAN_OBJECT);
	/* params.name, not params.arguments.name */
	assert_int_equal(v[3].type, JSCAN_STRING);
	assert_string_equal(span(s, &v[3]), "\"echo\"");
	assert_int_equal(v[4].type, JSCAN_NONE);

	expect("{}", JSCAN_OK);
	expect("[]", JSCAN_OK);
	expect("[1,-0,0.5,1e3,-2.5E-7,true,false,null,\"\",{},[]]", JSCAN_OK);
	expect("{\"a\":{\"a\":{\"a\":1}}}", JSCAN_OK);
}

static void
test_types(void **state)
{
	const char *s = "{\"id\":1.0,\"method\":null,\"params\":[{\"name\":1}],"
	    "\"result\":-12}";
	struct jscan_val v[NW];

	assert_int_equal(scan(s, 0, v, NULL), JSCAN_OK);
	assert_int_equal(v[0].type, JSCAN_REAL);
	assert_int_equal(v[1].type, JSCAN_NULL);
	assert_int_equal(v[2].type, JSCAN_ARRAY);
	assert_int_equal(v[3].type, JSCAN_NONE);	/* not in an object */
	assert_int_equal(v[4].type, JSCAN_INTEGER);
	assert_string_equal(span(s, &v[4]), "-12");
}

static void
test_escapes(void **state)
{
	const char *s = "{\"\\u0069d\":\"a\\\"b\\\\c\\/\\n\\u00e9\\ud83d\\ude00\","
	    "\"method\":\"x\"}";
	struct jscan_val v[NW];
	char out[64];
	size_t n;

	/* An escaped key is the key it decodes to. */
	assert_int_equal(scan(s, 0, v, NULL), JSCAN_OK);
	assert_int_equal(v[0].type, JSCAN_STRING);
	assert_true(v[0].escaped);
	n = jscan_str_decode(s, &v[0], out);
	assert_int_equal(n, 13);
	assert_memory_equal(out, "a\"b\\c/\n\xc3\xa9\xf0\x9f\x98\x80", 13);
	assert_true(jscan_str_eq(s, &v[0],
	    "a\"b\\c/\n\xc3\xa9\xf0\x9f\x98\x80"));
	assert_false(v[1].escaped);

	expect("[\"\\b\\f\\r\\t\"]", JSCAN_OK);
	expect("[\"\\x\"]", JSCAN_BAD);
	expect("[\"\\u12\"]", JSCAN_BAD);
	expect("[\"\\u12g4\"]", JSCAN_BAD);
	expect("[\"\\u0000\"]", JSCAN_BAD);		/* no JSON_ALLOW_NUL */
	expect("[\"\\ud800\"]", JSCAN_BAD);		/* lone high */
	expect("[\"\\udc00\"]", JSCAN_BAD);		/* lone low */
	expect("[\"\\ud800\\u0041\"]", JSCAN_BAD);
	expect("[\"\\ud800\\n\"]", JSCAN_BAD);
	expect("[\"\\", JSCAN_BAD);
	expect("[\"a\tb\"]", JSCAN_BAD);		/* raw control */
	expect("[\"\xc3\xa9\"]", JSCAN_OK);
	expect("[\"\xc3\"]", JSCAN_BAD);		/* truncated */
	expect("[\"\xc0\xaf\"]", JSCAN_BAD);		/* overlong */
	expect("[\"\xed\xa0\x80\"]", JSCAN_BAD);	/* surrogate */
	expect("[\"\xf4\x90\x80\x80\"]", JSCAN_BAD);	/* > U+10FFFF */
	expect("[\"\xf0\x9f\x98\x80\"]", JSCAN_OK);
	expect("[\xc3\xa9]", JSCAN_BAD);
}

static void
test_numbers(void **state)
{
	expect("[9223372036854775807]", JSCAN_OK);
	expect("[-9223372036854775808]", JSCAN_OK);
	expect("[9223372036854775808]", JSCAN_BAD);
	expect("[-9223372036854775809]", JSCAN_BAD);
	expect("[123456789012345678901]", JSCAN_BAD);
	expect("[1.7976931348623157e308]", JSCAN_OK);
	expect("[1e309]", JSCAN_BAD);
	expect("[-1e400]", JSCAN_BAD);
	expect("[1e-400]", JSCAN_OK);			/* underflow is fine */
	expect("[0e99999999999]", JSCAN_OK);
	expect("[01]", JSCAN_BAD);
	expect("[-]", JSCAN_BAD);
	expect("[1.]", JSCAN_BAD);
	expect("[.5]", JSCAN_BAD);
	expect("[1e]", JSCAN_BAD);
	expect("[1e+]", JSCAN_BAD);
	expect("[+1]", JSCAN_BAD);
	expect("[1x]", JSCAN_BAD);
	expect("[tru]", JSCAN_BAD);
	expect("[truex]", JSCAN_BAD);
	expect("[nul]", JSCAN_BAD);
}

static void
test_structure(void **state)
{
	expect("", JSCAN_BAD);
	expect("   ", JSCAN_BAD);
	expect("1", JSCAN_BAD);			/* not an object or array */
	expect("\"x\"", JSCAN_BAD);
	expect("null", JSCAN_BAD);
	expect("{} {}", JSCAN_BAD);
	expect("{}x", JSCAN_BAD);
	expect("{\"a\":1,}", JSCAN_BAD);
	expect("[1,]", JSCAN_BAD);
	expect("[,1]", JSCAN_BAD);
	expect("{\"a\" 1}", JSCAN_BAD);
	expect("{a:1}", JSCAN_BAD);
	expect("{\"a\":}", JSCAN_BAD);
	expect("{1:1}", JSCAN_BAD);
	expect("[}", JSCAN_BAD);
	expect("{]", JSCAN_BAD);
	expect("\v{}", JSCAN_BAD);
}

static void
test_truncated(void **state)
{
	const char *s = "{\"jsonrpc\":\"2.0\",\"id\":\"x\\u00e9\",\"result\":"
	    "{\"content\":[{\"type\":\"text\",\"text\":\"a\\\"b\"}],"
	    "\"n\":-1.5e3,\"t\":true}}";
	struct jscan_val v[NW];
	size_t n, len = strlen(s);
	char *copy;

	/* Every proper prefix is malformed; each in an exact-size buffer. */
	assert_int_equal(jscan(s, 0, W, NW, v, NULL), JSCAN_BAD);
	for (n = 1; n < len; n++) {
		copy = malloc(n);
		memcpy(copy, s, n);
		assert_int_equal(scan(copy, n, v, NULL), JSCAN_BAD);
		free(copy);
	}
	assert_int_equal(scan(s, len, v, NULL), JSCAN_OK);
}

static void
test_duplicates(void **state)
{
	/* jrpc_parse rejects duplicates at any depth: never "OK". */
	const char *dups[] = {
		"{\"id\":1,\"id\":2}",
		"{\"a\":1,\"\\u0061\":2}",
		"{\"x\":[{\"k\":1,\"k\":1}]}",
		"{\"p\":{\"q\":{\"r\":{\"\":1,\"\":2}}}}",
	};
	struct jscan_val v[NW];
	size_t i;

	for (i = 0; i < sizeof(dups) / sizeof(dups[0]); i++)
		assert_int_not_equal(scan(dups[i], 0, v, NULL), JSCAN_OK);
	/* The same key in different objects is fine. */
	expect("{\"k\":{\"k\":1},\"j\":[{\"k\":1},{\"k\":2}]}", JSCAN_OK);
	expect("{\"a\":1,\"A\":2,\"a \":3}", JSCAN_OK);
}

static void
test_limits(void **state)
{
	struct jscan_val v[NW];
	char *s;
	size_t i, n;
	int depth = JSCAN_MAX_DEPTH + 10;

	/* Deeper than the scanner goes: jansson decides. */
	s = malloc(2 * (size_t)depth + 1);
	for (i = 0; i < (size_t)depth; i++) {
		s[i] = '[';
		s[2 * (size_t)depth - 1 - i] = ']';
	}
	s[2 * (size_t)depth] = '\0';
	assert_int_equal(scan(s, 0, v, NULL), JSCAN_UNSURE);
	free(s);
	/* An object with more keys than it tracks: jansson decides. */
	s = malloc(16 * (JSCAN_MAX_KEYS + 2) + 4);
	n = 0;
	s[n++] = '{';
	for (i = 0; i < JSCAN_MAX_KEYS + 1; i++)
		n += (size_t)sprintf(s + n, "%s\"k%zu\":%zu", i ? "," : "", i,
		    i);
	s[n++] = '}';
	s[n] = '\0';
	assert_int_equal(scan(s, 0, v, NULL), JSCAN_UNSURE);
	free(s);
	/* jansson skips one NUL after a number: jansson decides. */
	assert_int_equal(scan("[1\0]", 4, v, NULL), JSCAN_UNSURE);
	assert_int_equal(scan("[\"a\0\"]", 5, v, NULL), JSCAN_BAD);
}

static void
test_huge_string(void **state)
{
	size_t n = 8 * 1024 * 1024 + 3, i;
	const char *head = "{\"jsonrpc\":\"2.0\",\"id\":42,\"result\":{\"content\":"
	    "[{\"type\":\"text\",\"text\":\"";
	const char *tail = "\"}],\"isError\":false}}";
	size_t hl = strlen(head), tl = strlen(tail), len = hl + n + tl;
	struct jscan_val v[NW];
	char *s = malloc(len);

	memcpy(s, head, hl);
	for (i = 0; i < n; i++)
		s[hl + i] = (char)('a' + i % 26);
	/* Escapes and UTF-8 spread through it, some across 8-byte words. */
	for (i = 1000; i + 12 < n; i += 100003) {
		memcpy(s + hl + i, "\\\"\xc3\xa9\\u00e9\\n", 12);
	}
	memcpy(s + hl + n, tail, tl);
	assert_int_equal(scan(s, len, v, NULL), JSCAN_OK);
	assert_int_equal(v[0].type, JSCAN_INTEGER);
	assert_int_equal(v[4].type, JSCAN_OBJECT);
	assert_int_equal(v[4].off, hl - strlen("{\"content\":[{\"type\":"
	    "\"text\",\"text\":\""));
	assert_int_equal(v[4].len, len - v[4].off - 1);
	/* A raw control character deep inside is still caught. */
	s[hl + n - 5] = '\x01';
	assert_int_equal(scan(s, len, v, NULL), JSCAN_BAD);
	free(s);
}

static void
peek_kind(const char *s, enum jrpc_kind want)
{
	struct jrpc_peek pk;
	json_t *j = jrpc_parse(s, strlen(s), NULL, 0);

	assert_int_equal(jrpc_peek(s, strlen(s), &pk), 1);
	assert_int_equal(pk.kind, want);
	assert_non_null(j);
	assert_int_equal(jrpc_classify(j), want);
	json_decref(j);
	jrpc_peek_done(&pk);
}

static void
test_peek(void **state)
{
	const char *s = "{\"jsonrpc\":\"2.0\",\"id\":\"r\\u0031\",\"method\":"
	    "\"notifications/\\u0070rogress\",\"params\":{\"progressToken\":5,"
	    "\"_meta\":{\"progressToken\":\"t\"}}}";
	struct jrpc_peek pk;
	json_t *v;
	char *str;

	assert_int_equal(jrpc_peek(s, strlen(s), &pk), 1);
	assert_int_equal(pk.kind, JRPC_REQUEST);
	assert_string_equal(pk.method, "notifications/progress");
	assert_true(json_is_string(pk.id));
	assert_string_equal(json_string_value(pk.id), "r1");
	v = jrpc_peek_value(&pk, JRPC_P_TOKEN);
	assert_int_equal(json_integer_value(v), 5);
	json_decref(v);
	str = jrpc_peek_strdup(&pk, JRPC_P_META_TOKEN);
	assert_string_equal(str, "t");
	free(str);
	assert_false(jrpc_peek_has(&pk, JRPC_P_RESULT));
	jrpc_peek_done(&pk);

	peek_kind("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}", JRPC_RESPONSE);
	peek_kind("{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{}}",
	    JRPC_RESPONSE);
	peek_kind("{\"jsonrpc\":\"2.0\",\"method\":\"x\"}", JRPC_NOTIFICATION);
	peek_kind("{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"x\"}",
	    JRPC_NOTIFICATION);
	peek_kind("{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"x\"}",
	    JRPC_INVALID);
	peek_kind("{\"jsonrpc\":\"2.1\",\"id\":1,\"method\":\"x\"}",
	    JRPC_INVALID);
	peek_kind("{\"jsonrpc\":\"2\\u002e0\",\"id\":1,\"method\":\"x\"}",
	    JRPC_REQUEST);
	peek_kind("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":7}", JRPC_INVALID);
	peek_kind("{\"jsonrpc\":\"2.0\",\"id\":1}", JRPC_INVALID);

	/* What the scanner will not vouch for goes to jansson. */
	assert_int_equal(jrpc_peek("[{}]", 4, &pk), 0);
	jrpc_peek_done(&pk);
	assert_int_equal(jrpc_peek("{\"id\":1", 7, &pk), 0);
	jrpc_peek_done(&pk);
	assert_int_equal(jrpc_peek("{\"a\":1,\"a\":1}", 13, &pk), 0);
	jrpc_peek_done(&pk);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_types),
		cmocka_unit_test(test_escapes),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_structure),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_huge_string),
		cmocka_unit_test(test_peek),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
