/*
 * JSON-RPC 2.0 helpers shared by the relay and the client (jansson).
 */
#ifndef MCPTUN_JSONRPC_H
#define MCPTUN_JSONRPC_H

#include <stddef.h>
#include <jansson.h>

enum jrpc_kind {
	JRPC_INVALID = 0,
	JRPC_REQUEST,		/* method + id */
	JRPC_NOTIFICATION,	/* method, no id */
	JRPC_RESPONSE		/* id + result or error, no method */
};

/* Standard and mcptun error codes (mcptun's in the server-error range). */
#define JRPC_PARSE_ERROR	-32700
#define JRPC_INVALID_REQUEST	-32600
#define JRPC_METHOD_NOT_FOUND	-32601
#define JRPC_INVALID_PARAMS	-32602
#define JRPC_INTERNAL_ERROR	-32603
#define JRPC_UPSTREAM_ERROR	-32001	/* upstream failed, exited, refused */
#define JRPC_TIMEOUT		-32002	/* no answer within request_timeout */
#define JRPC_DENIED		-32003	/* tool or server not allowed */
#define JRPC_UNAVAILABLE	-32004	/* tunnel offline, server removed */
#define JRPC_SESSION_ENDED	-32005	/* the session was ended */

/* Classifies a parsed message (must be a JSON object with "jsonrpc":"2.0"). */
enum jrpc_kind jrpc_classify(const json_t *msg);

/*
 * Returns a newly allocated, compact JSON text of an error response for id
 * (json null if id is NULL), with code and message; *lenp gets its length.
 * The caller frees it with free().
 */
char *jrpc_error_text(const json_t *id, int code, const char *message,
    size_t *lenp);

/* Compact serialisation of msg (caller frees); *lenp gets the length. */
char *jrpc_dump(const json_t *msg, size_t *lenp);

/*
 * Parses one message of len bytes; returns a new reference or NULL (then
 * *errtext, if not NULL, gets jansson's sentence with the column).
 */
json_t *jrpc_parse(const void *data, size_t len, char *errtext,
    size_t errlen);

#endif
