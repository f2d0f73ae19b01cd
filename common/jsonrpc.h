/*
 * JSON-RPC 2.0 helpers shared by the relay and the client (jansson).
 */
#ifndef MCPTUN_JSONRPC_H
#define MCPTUN_JSONRPC_H

#include <stddef.h>
#include <jansson.h>

#include "common/jscan.h"

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

/*
 * The members of a message that the daemons look at without a tree
 * (jrpc_peek): top-level ones and a few inside "result" and "params".
 */
enum jrpc_part {
	JRPC_P_JSONRPC = 0,
	JRPC_P_ID,
	JRPC_P_METHOD,
	JRPC_P_RESULT,
	JRPC_P_ERROR,
	JRPC_P_PARAMS,
	JRPC_P_IS_ERROR,	/* result.isError */
	JRPC_P_NAME,		/* params.name */
	JRPC_P_URI,		/* params.uri */
	JRPC_P_REQUEST_ID,	/* params.requestId */
	JRPC_P_TOKEN,		/* params.progressToken */
	JRPC_P_META,		/* params._meta */
	JRPC_P_META_TOKEN,	/* params._meta.progressToken */
	JRPC_NPARTS
};

/* Longest method name jrpc_peek copies out; a longer one means "parse". */
#define JRPC_METHOD_MAX	128

/* What jrpc_peek learnt about one message; see there. */
struct jrpc_peek {
	const char		*text;		/* the message, not owned */
	size_t			 len;
	enum jrpc_kind		 kind;		/* as jrpc_classify says */
	const char		*method;	/* NULL if none or not text */
	json_t			*id;		/* NULL if absent; owned */
	struct jscan_val	 v[JRPC_NPARTS];
	char			 mbuf[JRPC_METHOD_MAX];
};

/*
 * Looks at one message without building a tree.  Returns 1 if text is a
 * JSON object that jrpc_parse would accept: then *pk says its kind (what
 * jrpc_classify would say of the parsed message, JRPC_INVALID included),
 * its method and id (a small parsed copy) and where the parts lie.
 * Returns 0 for anything else (malformed, a batch, too deep or odd for
 * the scanner, a method longer than JRPC_METHOD_MAX - 1): then the caller
 * uses jrpc_parse as before, which also gives the error sentence.  Either
 * way the caller calls jrpc_peek_done(pk) afterwards.
 */
int jrpc_peek(const void *text, size_t len, struct jrpc_peek *pk);

/* Frees what jrpc_peek kept (the id). */
void jrpc_peek_done(struct jrpc_peek *pk);

/* Returns 1 if part is present in the message. */
int jrpc_peek_has(const struct jrpc_peek *pk, enum jrpc_part part);

/*
 * Returns a new reference to the value of part (parsed from its bytes),
 * or NULL if it is absent.
 */
json_t *jrpc_peek_value(const struct jrpc_peek *pk, enum jrpc_part part);

/*
 * Returns a newly allocated copy of the string value of part, or NULL if
 * it is absent or not a string.  The caller frees it.
 */
char *jrpc_peek_strdup(const struct jrpc_peek *pk, enum jrpc_part part);

#endif
