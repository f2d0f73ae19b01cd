/*
 * Pure helpers of the MCP Streamable HTTP front; see mcp_route.h.
 *
 * Everything here works on strings that a peer sent, so every parser
 * checks lengths before it reads and none of them allocates except the
 * key builders, whose results the caller frees.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "common/err.h"
#include "relay/mcp_route.h"

static const char *const mcp_versions[] = {
	"2024-11-05",
	"2025-03-26",
	"2025-06-18",
	"2025-11-25",
	NULL
};

int
mcp_name_ok(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > MCP_NAME_MAX)
		return 0;
	if ((len == 1 && s[0] == '.') ||
	    (len == 2 && s[0] == '.' && s[1] == '.'))
		return 0;
	for (i = 0; i < len; i++) {
		if (!isalnum((unsigned char)s[i]) && s[i] != '.' &&
		    s[i] != '_' && s[i] != '-')
			return 0;
	}
	return 1;
}

/* Copies a checked name of len bytes into dst (MCP_NAME_MAX + 1 bytes). */
static int
route_name(char *dst, const char *s, size_t len)
{
	if (!mcp_name_ok(s, len))
		return 0;
	memcpy(dst, s, len);
	dst[len] = '\0';
	return 1;
}

int
mcp_route_parse(const char *path, struct mcp_route *r)
{
	const char *p, *slash;
	size_t len;

	memset(r, 0, sizeof(*r));
	if (path == NULL)
		return MT_ENOTFOUND;
	len = strlen(path);
	/* One trailing slash is tolerated ("/mcp/t/s/"), but not "/". */
	if (len > 1 && path[len - 1] == '/')
		len--;
	if (len == 8 && strncmp(path, "/healthz", 8) == 0) {
		r->kind = MCP_PATH_HEALTHZ;
		return 0;
	}
	if (len == 8 && strncmp(path, "/metrics", 8) == 0) {
		r->kind = MCP_PATH_METRICS;
		return 0;
	}
	if (len <= 5 || strncmp(path, "/mcp/", 5) != 0)
		return MT_ENOTFOUND;
	p = path + 5;
	len -= 5;
	slash = memchr(p, '/', len);
	if (slash == NULL) {
		if (!route_name(r->tunnel, p, len))
			goto bad;
		r->kind = MCP_PATH_MERGED;
		return 0;
	}
	if (!route_name(r->tunnel, p, (size_t)(slash - p)))
		goto bad;
	len -= (size_t)(slash - p) + 1;
	p = slash + 1;
	if (memchr(p, '/', len) != NULL || !route_name(r->server, p, len))
		goto bad;
	r->kind = MCP_PATH_SERVER;
	return 0;
 bad:
	memset(r, 0, sizeof(*r));
	return MT_ENOTFOUND;
}

int
mcp_protocol_version_known(const char *v)
{
	size_t i;

	if (v == NULL)
		return 0;
	for (i = 0; mcp_versions[i] != NULL; i++)
		if (strcmp(v, mcp_versions[i]) == 0)
			return 1;
	return 0;
}

static int
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * Parses the q parameter in the parameters of one media range (params,
 * plen bytes, starting after the type).  Returns 0 if q is present and
 * zero ("q=0", "q=0.0", "q=0.000"), else 1.
 */
static int
accept_q_nonzero(const char *params, size_t plen)
{
	const char *p = params, *end = params + plen, *v;

	while (p < end) {
		while (p < end && (*p == ';' || is_blank(*p)))
			p++;
		if (end - p >= 2 && (p[0] == 'q' || p[0] == 'Q') &&
		    p[1] == '=') {
			v = p + 2;
			if (v >= end || *v != '0')
				return 1;
			for (v++; v < end && *v != ';' && !is_blank(*v); v++)
				if (*v != '.' && *v != '0')
					return 1;
			return 0;
		}
		while (p < end && *p != ';')
			p++;
	}
	return 1;
}

/*
 * Walks the media ranges of an Accept value; for each one with q > 0 asks
 * whether it covers type.  wild says whether "* / *" counts.
 */
static int
accept_scan(const char *accept, const char *type, int wild)
{
	const char *p, *end, *semi, *tslash;
	size_t tlen = strlen(type), mlen, majlen;

	tslash = strchr(type, '/');
	majlen = tslash != NULL ? (size_t)(tslash - type) : tlen;
	for (p = accept; *p != '\0'; p = *end == ',' ? end + 1 : end) {
		end = strchr(p, ',');
		if (end == NULL)
			end = p + strlen(p);
		while (p < end && is_blank(*p))
			p++;
		semi = memchr(p, ';', (size_t)(end - p));
		if (semi == NULL)
			semi = end;
		mlen = (size_t)(semi - p);
		while (mlen > 0 && is_blank(p[mlen - 1]))
			mlen--;
		if (mlen == 0 || !accept_q_nonzero(semi, (size_t)(end - semi)))
			continue;
		if (mlen == tlen && strncasecmp(p, type, tlen) == 0)
			return 1;
		if (mlen == majlen + 2 && strncasecmp(p, type, majlen) == 0 &&
		    p[majlen] == '/' && p[majlen + 1] == '*')
			return 1;
		if (wild && mlen == 3 && strncmp(p, "*/*", 3) == 0)
			return 1;
	}
	return 0;
}

int
mcp_accept_allows(const char *accept, const char *type)
{
	if (accept == NULL || *accept == '\0')
		return 1;
	return accept_scan(accept, type, 1);
}

int
mcp_accept_names(const char *accept, const char *type)
{
	if (accept == NULL || *accept == '\0')
		return 0;
	return accept_scan(accept, type, 0);
}

int
mcp_content_type_json(const char *ct)
{
	static const char json[] = "application/json";
	size_t n = sizeof(json) - 1;

	if (ct == NULL)
		return 1;
	while (is_blank(*ct))
		ct++;
	if (*ct == '\0')
		return 1;
	if (strncasecmp(ct, json, n) != 0)
		return 0;
	ct += n;
	while (is_blank(*ct))
		ct++;
	return *ct == '\0' || *ct == ';';
}

int
mcp_bearer_token(const char *authz, const char **tok, size_t *toklen)
{
	const char *p, *e;

	if (authz == NULL)
		return MT_EAUTH;
	p = authz;
	while (is_blank(*p))
		p++;
	if (strncasecmp(p, "Bearer", 6) != 0 || !is_blank(p[6]))
		return MT_EAUTH;
	p += 6;
	while (is_blank(*p))
		p++;
	e = p + strlen(p);
	while (e > p && is_blank(e[-1]))
		e--;
	if (e == p)
		return MT_EAUTH;
	/* A token is one word (RFC 6750 b64token); no inner blanks. */
	if (memchr(p, ' ', (size_t)(e - p)) != NULL ||
	    memchr(p, '\t', (size_t)(e - p)) != NULL)
		return MT_EAUTH;
	*tok = p;
	*toklen = (size_t)(e - p);
	return 0;
}

int
mcp_origin_allowed(const char *origin, char *const *allowed)
{
	size_t olen, alen;

	if (origin == NULL)
		return 1;
	if (allowed == NULL)
		return 0;
	olen = strlen(origin);
	if (olen > 1 && origin[olen - 1] == '/')
		olen--;
	for (; *allowed != NULL; allowed++) {
		if (strcmp(*allowed, "*") == 0)
			return 1;
		alen = strlen(*allowed);
		if (alen > 1 && (*allowed)[alen - 1] == '/')
			alen--;
		if (alen == olen && strncasecmp(*allowed, origin, olen) == 0)
			return 1;
	}
	return 0;
}

static char *
key_of(const json_t *v)
{
	if (v == NULL || (!json_is_string(v) && !json_is_integer(v)))
		return NULL;
	/* NULL only when out of memory; callers treat that as "no key". */
	return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

char *
mcp_id_key(const json_t *id)
{
	return key_of(id);
}

const char *
mcp_method(const json_t *msg)
{
	const json_t *m = json_object_get(msg, "method");

	return json_is_string(m) ? json_string_value(m) : NULL;
}

char *
mcp_progress_key(const json_t *msg)
{
	const json_t *params, *meta;
	const char *method;

	if ((method = mcp_method(msg)) == NULL)
		return NULL;
	params = json_object_get(msg, "params");
	if (!json_is_object(params))
		return NULL;
	if (strcmp(method, "notifications/progress") == 0)
		return key_of(json_object_get(params, "progressToken"));
	if (json_object_get(msg, "id") == NULL)
		return NULL;
	meta = json_object_get(params, "_meta");
	if (!json_is_object(meta))
		return NULL;
	return key_of(json_object_get(meta, "progressToken"));
}

/* key_of for a part of a peeked message. */
static char *
peek_key_of(const struct jrpc_peek *pk, enum jrpc_part part)
{
	json_t *v;
	char *k;

	if ((v = jrpc_peek_value(pk, part)) == NULL)
		return NULL;
	k = key_of(v);
	json_decref(v);
	return k;
}

char *
mcp_peek_progress_key(const struct jrpc_peek *pk)
{
	if (pk->method == NULL ||
	    pk->v[JRPC_P_PARAMS].type != JSCAN_OBJECT)
		return NULL;
	if (strcmp(pk->method, "notifications/progress") == 0)
		return peek_key_of(pk, JRPC_P_TOKEN);
	if (!jrpc_peek_has(pk, JRPC_P_ID) ||
	    pk->v[JRPC_P_META].type != JSCAN_OBJECT)
		return NULL;
	return peek_key_of(pk, JRPC_P_META_TOKEN);
}

int
mcp_has_newline(const void *s, size_t len)
{
	return memchr(s, '\n', len) != NULL || memchr(s, '\r', len) != NULL;
}
