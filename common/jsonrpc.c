/* JSON-RPC 2.0 helpers; see jsonrpc.h. */
#include "common/jsonrpc.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum jrpc_kind
jrpc_classify(const json_t *msg)
{
	const json_t *v, *method, *id;

	if (!json_is_object(msg))
		return JRPC_INVALID;
	v = json_object_get(msg, "jsonrpc");
	if (!json_is_string(v) || strcmp(json_string_value(v), "2.0") != 0)
		return JRPC_INVALID;
	method = json_object_get(msg, "method");
	id = json_object_get(msg, "id");
	if (id != NULL && !json_is_string(id) && !json_is_integer(id) &&
	    !json_is_null(id))
		return JRPC_INVALID;
	if (method != NULL) {
		if (!json_is_string(method))
			return JRPC_INVALID;
		return id != NULL && !json_is_null(id) ? JRPC_REQUEST :
		    JRPC_NOTIFICATION;
	}
	if (id != NULL && (json_object_get(msg, "result") != NULL ||
	    json_object_get(msg, "error") != NULL))
		return JRPC_RESPONSE;
	return JRPC_INVALID;
}

char *
jrpc_dump(const json_t *msg, size_t *lenp)
{
	char *s = json_dumps(msg, JSON_COMPACT | JSON_ENCODE_ANY);

	if (s == NULL)
		fatalx("out of memory serialising JSON");
	*lenp = strlen(s);
	return s;
}

char *
jrpc_error_text(const json_t *id, int code, const char *message,
    size_t *lenp)
{
	json_t *m;
	char *s;

	m = json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0",
	    "id", id != NULL ? id : json_null(),
	    "error", "code", code, "message", message);
	if (m == NULL)
		fatalx("out of memory building a JSON-RPC error");
	s = jrpc_dump(m, lenp);
	json_decref(m);
	return s;
}

json_t *
jrpc_parse(const void *data, size_t len, char *errtext, size_t errlen)
{
	json_error_t e;
	json_t *m;

	m = json_loadb(data, len, JSON_REJECT_DUPLICATES, &e);
	if (m == NULL && errtext != NULL)
		snprintf(errtext, errlen, "invalid JSON at line %d column %d: %s",
		    e.line, e.column, e.text);
	return m;
}

/* ---- jrpc_peek: the fast path without a tree -------------------------- */

static const struct jscan_want jrpc_want[JRPC_NPARTS] = {
	[JRPC_P_JSONRPC] = { "jsonrpc", JSCAN_ROOT },
	[JRPC_P_ID] = { "id", JSCAN_ROOT },
	[JRPC_P_METHOD] = { "method", JSCAN_ROOT },
	[JRPC_P_RESULT] = { "result", JSCAN_ROOT },
	[JRPC_P_ERROR] = { "error", JSCAN_ROOT },
	[JRPC_P_PARAMS] = { "params", JSCAN_ROOT },
	[JRPC_P_IS_ERROR] = { "isError", JRPC_P_RESULT },
	[JRPC_P_NAME] = { "name", JRPC_P_PARAMS },
	[JRPC_P_URI] = { "uri", JRPC_P_PARAMS },
	[JRPC_P_REQUEST_ID] = { "requestId", JRPC_P_PARAMS },
	[JRPC_P_TOKEN] = { "progressToken", JRPC_P_PARAMS },
	[JRPC_P_META] = { "_meta", JRPC_P_PARAMS },
	[JRPC_P_META_TOKEN] = { "progressToken", JRPC_P_META },
};

/* jrpc_classify's rules on the scanned parts. */
static enum jrpc_kind
jrpc_peek_classify(const struct jrpc_peek *pk)
{
	const struct jscan_val *id = &pk->v[JRPC_P_ID];
	const struct jscan_val *method = &pk->v[JRPC_P_METHOD];

	if (!jscan_str_eq(pk->text, &pk->v[JRPC_P_JSONRPC], "2.0"))
		return JRPC_INVALID;
	if (id->type != JSCAN_NONE && id->type != JSCAN_STRING &&
	    id->type != JSCAN_INTEGER && id->type != JSCAN_NULL)
		return JRPC_INVALID;
	if (method->type != JSCAN_NONE) {
		if (method->type != JSCAN_STRING)
			return JRPC_INVALID;
		return id->type != JSCAN_NONE && id->type != JSCAN_NULL ?
		    JRPC_REQUEST : JRPC_NOTIFICATION;
	}
	if (id->type != JSCAN_NONE &&
	    (pk->v[JRPC_P_RESULT].type != JSCAN_NONE ||
	    pk->v[JRPC_P_ERROR].type != JSCAN_NONE))
		return JRPC_RESPONSE;
	return JRPC_INVALID;
}

int
jrpc_peek(const void *text, size_t len, struct jrpc_peek *pk)
{
	const struct jscan_val *m = &pk->v[JRPC_P_METHOD];
	enum jscan_type top;

	pk->text = text;
	pk->len = len;
	pk->kind = JRPC_INVALID;
	pk->method = NULL;
	pk->id = NULL;
	if (jscan(text, len, jrpc_want, JRPC_NPARTS, pk->v, &top) != JSCAN_OK ||
	    top != JSCAN_OBJECT)
		return 0;
	if (m->type == JSCAN_STRING) {
		if (m->len > sizeof(pk->mbuf))
			return 0;
		jscan_str_decode(text, m, pk->mbuf);
		pk->method = pk->mbuf;
	}
	if (pk->v[JRPC_P_ID].type != JSCAN_NONE &&
	    (pk->id = jrpc_peek_value(pk, JRPC_P_ID)) == NULL)
		return 0;
	pk->kind = jrpc_peek_classify(pk);
	return 1;
}

void
jrpc_peek_done(struct jrpc_peek *pk)
{
	json_decref(pk->id);
	pk->id = NULL;
}

int
jrpc_peek_has(const struct jrpc_peek *pk, enum jrpc_part part)
{
	return pk->v[part].type != JSCAN_NONE;
}

json_t *
jrpc_peek_value(const struct jrpc_peek *pk, enum jrpc_part part)
{
	const struct jscan_val *v = &pk->v[part];

	if (v->type == JSCAN_NONE)
		return NULL;
	/* Checked already: only running out of memory can fail here. */
	return json_loadb(pk->text + v->off, v->len,
	    JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
}

char *
jrpc_peek_strdup(const struct jrpc_peek *pk, enum jrpc_part part)
{
	const struct jscan_val *v = &pk->v[part];
	char *s;

	if (v->type != JSCAN_STRING)
		return NULL;
	s = xmalloc(v->len);
	jscan_str_decode(pk->text, v, s);
	return s;
}
