/*
 * Pure helpers of the relay's MCP Streamable HTTP front (http.c): the URL
 * space, the request headers MCP cares about (Authorization, Accept,
 * Content-Type, Origin, MCP-Protocol-Version) and the JSON-RPC keys used to
 * route upstream messages to the right HTTP stream.  No I/O, no lws, no
 * global state, so they can be unit-tested and fuzzed on their own.
 */
#ifndef MCPTUN_MCP_ROUTE_H
#define MCPTUN_MCP_ROUTE_H

#include <stddef.h>

#include <jansson.h>

#include "common/jsonrpc.h"

/* Longest tunnel or server name in a path (as RELAY_NAME_MAX). */
#define MCP_NAME_MAX	48

enum mcp_path {
	MCP_PATH_NONE = 0,	/* not ours: 404 */
	MCP_PATH_SERVER,	/* /mcp/<tunnel>/<server> */
	MCP_PATH_MERGED,	/* /mcp/<tunnel> */
	MCP_PATH_HEALTHZ,	/* /healthz */
	MCP_PATH_METRICS	/* /metrics */
};

struct mcp_route {
	enum mcp_path	 kind;
	char		 tunnel[MCP_NAME_MAX + 1];	/* "" unless /mcp */
	char		 server[MCP_NAME_MAX + 1];	/* "" unless SERVER */
};

/*
 * Parses the path of a request (without the query string).  One trailing
 * slash is tolerated.  Names are 1..MCP_NAME_MAX characters of
 * [A-Za-z0-9._-] and not "." or "..".  Returns 0 and fills *r, or
 * MT_ENOTFOUND (r->kind is then MCP_PATH_NONE).
 */
int	mcp_route_parse(const char *path, struct mcp_route *r);

/* Returns 1 if s (len bytes) is a valid tunnel or server name. */
int	mcp_name_ok(const char *s, size_t len);

/*
 * Returns 1 if v is an MCP protocol version this relay speaks
 * (2024-11-05, 2025-03-26, 2025-06-18, 2025-11-25), else 0.
 */
int	mcp_protocol_version_known(const char *v);

/*
 * Returns 1 if the Accept header value accepts the media type type
 * ("text/event-stream"), counting "*" wildcards, 0 if not (also when its
 * q is 0).  A NULL or empty header accepts everything.
 */
int	mcp_accept_allows(const char *accept, const char *type);

/*
 * Returns 1 if the Accept header names type itself or its "major/ *" range
 * (not the catch-all wildcard) with q > 0.  Used to decide whether a client
 * asked for an SSE answer rather than merely tolerating one.
 */
int	mcp_accept_names(const char *accept, const char *type);

/*
 * Returns 1 if a request's Content-Type is acceptable for a JSON-RPC body:
 * absent, or application/json with optional parameters.
 */
int	mcp_content_type_json(const char *ct);

/*
 * Finds the token in an Authorization header value "Bearer TOKEN" (scheme
 * case-insensitive, blanks around the token ignored).  Returns 0 and sets
 * *tok / *toklen to point into authz, or MT_EAUTH.
 */
int	mcp_bearer_token(const char *authz, const char **tok, size_t *toklen);

/*
 * Returns 1 if a request with this Origin header may proceed: origin is
 * NULL (no header), or allowed (NULL-terminated, may be NULL) has an entry
 * equal to it (ASCII case-insensitive, a trailing slash ignored) or "*".
 */
int	mcp_origin_allowed(const char *origin, char *const *allowed);

/*
 * Returns a newly allocated key for a JSON-RPC id (its compact JSON text,
 * so 1 and "1" differ), or NULL if id is NULL or not a string or integer.
 * The caller frees it.
 */
char	*mcp_id_key(const json_t *id);

/*
 * Returns a newly allocated key for the progress token of a message: for a
 * request its params._meta.progressToken, for notifications/progress its
 * params.progressToken; NULL if there is none (or it is not a string or
 * integer).  The caller frees it.
 */
char	*mcp_progress_key(const json_t *msg);

/* mcp_progress_key for a message read with jrpc_peek (no tree). */
char	*mcp_peek_progress_key(const struct jrpc_peek *pk);

/* Returns the method of a request or notification, or NULL. */
const char *mcp_method(const json_t *msg);

/*
 * Returns 1 if the len bytes at s contain a CR or LF (such a message must
 * be re-serialised before it can be one SSE data: line).
 */
int	mcp_has_newline(const void *s, size_t len);

#endif
