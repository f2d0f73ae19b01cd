/*
 * libFuzzer target for the JSON scanner (common/jscan.c) and jrpc_peek,
 * checked against jansson, which they stand in for on the hot paths:
 *   - jscan says OK only if jansson (as jrpc_parse calls it) accepts the
 *     text, and BAD only if jansson rejects it;
 *   - on OK, every member it reports is the one jansson has (same presence,
 *     same type, and its bytes parse to an equal value), string helpers
 *     decode as jansson does, and jrpc_peek classifies as jrpc_classify;
 *   - it never reads outside the input (ASan: libFuzzer hands over a
 *     buffer of exactly size bytes).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/jscan.h"
#include "common/jsonrpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct jscan_want want[] = {
	{ "id", JSCAN_ROOT },		/* 0 */
	{ "method", JSCAN_ROOT },	/* 1 */
	{ "params", JSCAN_ROOT },	/* 2 */
	{ "name", 2 },			/* 3 */
	{ "a", JSCAN_ROOT },		/* 4 */
	{ "b", 4 },			/* 5 */
	{ "", JSCAN_ROOT },		/* 6 */
	{ "\xc3\xa9", JSCAN_ROOT },	/* 7: an escaped key may match */
};
#define NWANT (sizeof(want) / sizeof(want[0]))

static int
type_matches(enum jscan_type t, const json_t *v)
{
	switch (t) {
	case JSCAN_OBJECT: return json_is_object(v);
	case JSCAN_ARRAY: return json_is_array(v);
	case JSCAN_STRING: return json_is_string(v);
	case JSCAN_INTEGER: return json_is_integer(v);
	case JSCAN_REAL: return json_is_real(v);
	case JSCAN_TRUE: return json_is_true(v);
	case JSCAN_FALSE: return json_is_false(v);
	case JSCAN_NULL: return json_is_null(v);
	default: return 0;
	}
}

static void
check_member(const uint8_t *data, const struct jscan_val *v, const json_t *jv)
{
	json_t *again;
	char *dec;
	size_t n;

	if ((v->type == JSCAN_NONE) != (jv == NULL))
		abort();
	if (jv == NULL)
		return;
	if (!type_matches(v->type, jv))
		abort();
	again = json_loadb((const char *)data + v->off, v->len,
	    JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
	if (again == NULL || !json_equal(again, jv))
		abort();
	json_decref(again);
	if (v->type != JSCAN_STRING)
		return;
	dec = malloc(v->len);
	n = jscan_str_decode(data, v, dec);
	if (n != json_string_length(jv) ||
	    memcmp(dec, json_string_value(jv), n) != 0 ||
	    !jscan_str_eq(data, v, json_string_value(jv)))
		abort();
	free(dec);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jscan_val vals[NWANT];
	struct jrpc_peek pk;
	enum jscan_type top = JSCAN_NONE;
	const json_t *params, *a;
	json_t *j;
	int r, ok;

	j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	r = jscan(data, size, want, NWANT, vals, &top);
	if (r == JSCAN_OK && j == NULL)
		abort();
	if (r == JSCAN_BAD && j != NULL)
		abort();
	if (r == JSCAN_OK) {
		if (!type_matches(top, j))
			abort();
		params = json_object_get(j, "params");
		a = json_object_get(j, "a");
		check_member(data, &vals[0], json_object_get(j, "id"));
		check_member(data, &vals[1], json_object_get(j, "method"));
		check_member(data, &vals[2], params);
		check_member(data, &vals[3], json_object_get(params, "name"));
		check_member(data, &vals[4], a);
		check_member(data, &vals[5], json_object_get(a, "b"));
		check_member(data, &vals[6], json_object_get(j, ""));
		check_member(data, &vals[7], json_object_get(j, "\xc3\xa9"));
	}
	ok = jrpc_peek(data, size, &pk);
	if (ok) {
		if (j == NULL || !json_is_object(j) ||
		    pk.kind != jrpc_classify(j))
			abort();
		if ((pk.id == NULL) != (json_object_get(j, "id") == NULL) ||
		    (pk.id != NULL && !json_equal(pk.id,
		    json_object_get(j, "id"))))
			abort();
		if (pk.method != NULL && (!json_is_string(json_object_get(j,
		    "method")) || strcmp(pk.method, json_string_value(
		    json_object_get(j, "method"))) != 0))
			abort();
	}
	jrpc_peek_done(&pk);
	json_decref(j);
	return 0;
}
