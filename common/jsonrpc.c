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
