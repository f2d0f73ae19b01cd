/*
 * The pure half of the postgres adapter: statement screening, type
 * mapping, result sets and their rendering, curated-tool arguments and
 * resource URIs.  Nothing here talks to a database or to lws, so
 * tests/unit/test_pgsql.c exercises all of it directly.  See pgsql.h.
 *
 * Sizes here are bounded by the server's max_rows and max_bytes caps, so
 * allocations use the x* helpers.
 */
#include "client/pgsql.h"
#include "client/client_conf.h"
#include "common/err.h"
#include "common/util.h"
#include "common/xmalloc.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Columns wider than this are not padded, so one long value does not
 * widen every line of the table. */
#define PGSQL_PAD_MAX	60

/* ---- a tiny string builder ---------------------------------------------- */

struct sb {
	char	*s;
	size_t	 len;
	size_t	 cap;
};

static void
sb_add(struct sb *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = b->cap ? b->cap : 256;
		while (b->len + n + 1 > b->cap)
			b->cap *= 2;
		b->s = xrealloc(b->s, b->cap);
	}
	memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void
sb_puts(struct sb *b, const char *p)
{
	sb_add(b, p, strlen(p));
}

static void
sb_pad(struct sb *b, int c, size_t n)
{
	char chunk[64];
	size_t k;

	memset(chunk, c, sizeof(chunk));
	while (n > 0) {
		k = n < sizeof(chunk) ? n : sizeof(chunk);
		sb_add(b, chunk, k);
		n -= k;
	}
}

static char *
sb_take(struct sb *b)
{
	char *s = b->s;

	if (s == NULL)
		s = xstrdup("");
	b->s = NULL;
	b->len = b->cap = 0;
	return s;
}

/* ---- statement screening ------------------------------------------------ */

/*
 * First keywords refused in every access mode: each call runs in a
 * transaction of its own, so transaction control would break out of it,
 * and session state would leak into the next call on a pooled connection.
 */
static const struct {
	const char	*kw;
	const char	*what;
} pgsql_refused[] = {
	{ "BEGIN",	"transaction control" },
	{ "START",	"transaction control" },
	{ "COMMIT",	"transaction control" },
	{ "END",	"transaction control" },
	{ "ROLLBACK",	"transaction control" },
	{ "ABORT",	"transaction control" },
	{ "SAVEPOINT",	"transaction control" },
	{ "RELEASE",	"transaction control" },
	{ "PREPARE",	"a prepared statement or transaction" },
	{ "DEALLOCATE",	"a prepared statement" },
	{ "EXECUTE",	"a prepared statement" },
	{ "SET",	"a session or transaction setting" },
	{ "RESET",	"a session setting" },
	{ "DISCARD",	"session state" },
	{ "LOAD",	"loading a shared library" },
	{ "LOCK",	"explicit locking" },
	{ "LISTEN",	"asynchronous notification" },
	{ "UNLISTEN",	"asynchronous notification" },
	{ "NOTIFY",	"asynchronous notification" },
	{ "COPY",	"COPY (a different protocol)" },
	{ "DO",		"an anonymous code block" },
	{ "CALL",	"a procedure call (procedures may control "
			"transactions)" },
	{ "VACUUM",	"maintenance" },
	{ "CHECKPOINT",	"maintenance" },
	{ NULL,		NULL }
};

const char *
pgsql_skip_blank(const char *sql)
{
	const char *p = sql;
	int depth;

	for (;;) {
		while (*p != '\0' && isspace((unsigned char)*p))
			p++;
		if (p[0] == '-' && p[1] == '-') {
			while (*p != '\0' && *p != '\n')
				p++;
		} else if (p[0] == '/' && p[1] == '*') {
			/* PostgreSQL's block comments nest. */
			depth = 1;
			p += 2;
			while (*p != '\0' && depth > 0) {
				if (p[0] == '/' && p[1] == '*') {
					depth++;
					p += 2;
				} else if (p[0] == '*' && p[1] == '/') {
					depth--;
					p += 2;
				} else
					p++;
			}
		} else
			return p;
	}
}

int
pgsql_screen(const char *sql, char *why, size_t whylen)
{
	const char *p;
	char kw[32];
	size_t n = 0, i;

	p = pgsql_skip_blank(sql);
	/* "(BEGIN)" is not SQL, but look past parentheses all the same. */
	while (*p == '(')
		p = pgsql_skip_blank(p + 1);
	if (*p == '\0' || *p == ';') {
		if (pgsql_skip_blank(*p == ';' ? p + 1 : p)[0] == '\0') {
			snprintf(why, whylen, "the SQL holds no statement");
			return MT_EINVAL;
		}
		return 0;
	}
	while ((isalnum((unsigned char)p[n]) || p[n] == '_') &&
	    n < sizeof(kw) - 1) {
		kw[n] = (char)toupper((unsigned char)p[n]);
		n++;
	}
	kw[n] = '\0';
	for (i = 0; pgsql_refused[i].kw != NULL; i++) {
		if (strcmp(kw, pgsql_refused[i].kw) == 0) {
			snprintf(why, whylen, "refused: %s statements are not "
			    "allowed here (%s). Each call runs as one "
			    "statement in a transaction of its own, which "
			    "mcptun begins and ends; send a single query "
			    "without transaction control or SET.", kw,
			    pgsql_refused[i].what);
			return MT_EDENIED;
		}
	}
	return 0;
}

/* ---- types ---------------------------------------------------------------- */

static const struct pgsql_type {
	unsigned int	 oid;
	const char	*name;
	enum pgsql_kind	 kind;
	int		 numeric;
} pgsql_types[] = {
	{ 16,	"boolean",			PGSQL_KIND_BOOL,	0 },
	{ 17,	"bytea",			PGSQL_KIND_BYTEA,	0 },
	{ 18,	"\"char\"",			PGSQL_KIND_TEXT,	0 },
	{ 19,	"name",				PGSQL_KIND_TEXT,	0 },
	{ 20,	"bigint",			PGSQL_KIND_DECIMAL,	1 },
	{ 21,	"smallint",			PGSQL_KIND_INT,		1 },
	{ 22,	"int2vector",			PGSQL_KIND_TEXT,	0 },
	{ 23,	"integer",			PGSQL_KIND_INT,		1 },
	{ 24,	"regproc",			PGSQL_KIND_TEXT,	0 },
	{ 25,	"text",				PGSQL_KIND_TEXT,	0 },
	{ 26,	"oid",				PGSQL_KIND_INT,		1 },
	{ 27,	"tid",				PGSQL_KIND_TEXT,	0 },
	{ 28,	"xid",				PGSQL_KIND_TEXT,	0 },
	{ 29,	"cid",				PGSQL_KIND_TEXT,	0 },
	{ 114,	"json",				PGSQL_KIND_JSON,	0 },
	{ 142,	"xml",				PGSQL_KIND_TEXT,	0 },
	{ 194,	"pg_node_tree",			PGSQL_KIND_TEXT,	0 },
	{ 199,	"json[]",			PGSQL_KIND_TEXT,	0 },
	{ 600,	"point",			PGSQL_KIND_TEXT,	0 },
	{ 601,	"lseg",				PGSQL_KIND_TEXT,	0 },
	{ 602,	"path",				PGSQL_KIND_TEXT,	0 },
	{ 603,	"box",				PGSQL_KIND_TEXT,	0 },
	{ 604,	"polygon",			PGSQL_KIND_TEXT,	0 },
	{ 628,	"line",				PGSQL_KIND_TEXT,	0 },
	{ 650,	"cidr",				PGSQL_KIND_TEXT,	0 },
	{ 700,	"real",				PGSQL_KIND_FLOAT,	1 },
	{ 701,	"double precision",		PGSQL_KIND_FLOAT,	1 },
	{ 705,	"unknown",			PGSQL_KIND_TEXT,	0 },
	{ 718,	"circle",			PGSQL_KIND_TEXT,	0 },
	{ 774,	"macaddr8",			PGSQL_KIND_TEXT,	0 },
	{ 790,	"money",			PGSQL_KIND_DECIMAL,	1 },
	{ 829,	"macaddr",			PGSQL_KIND_TEXT,	0 },
	{ 869,	"inet",				PGSQL_KIND_TEXT,	0 },
	{ 1000,	"boolean[]",			PGSQL_KIND_TEXT,	0 },
	{ 1001,	"bytea[]",			PGSQL_KIND_TEXT,	0 },
	{ 1002,	"\"char\"[]",			PGSQL_KIND_TEXT,	0 },
	{ 1003,	"name[]",			PGSQL_KIND_TEXT,	0 },
	{ 1005,	"smallint[]",			PGSQL_KIND_TEXT,	0 },
	{ 1007,	"integer[]",			PGSQL_KIND_TEXT,	0 },
	{ 1009,	"text[]",			PGSQL_KIND_TEXT,	0 },
	{ 1014,	"character[]",			PGSQL_KIND_TEXT,	0 },
	{ 1015,	"character varying[]",		PGSQL_KIND_TEXT,	0 },
	{ 1016,	"bigint[]",			PGSQL_KIND_TEXT,	0 },
	{ 1021,	"real[]",			PGSQL_KIND_TEXT,	0 },
	{ 1022,	"double precision[]",		PGSQL_KIND_TEXT,	0 },
	{ 1028,	"oid[]",			PGSQL_KIND_TEXT,	0 },
	{ 1033,	"aclitem",			PGSQL_KIND_TEXT,	0 },
	{ 1034,	"aclitem[]",			PGSQL_KIND_TEXT,	0 },
	{ 1041,	"inet[]",			PGSQL_KIND_TEXT,	0 },
	{ 1042,	"character",			PGSQL_KIND_TEXT,	0 },
	{ 1043,	"character varying",		PGSQL_KIND_TEXT,	0 },
	{ 1082,	"date",				PGSQL_KIND_TEXT,	0 },
	{ 1083,	"time without time zone",	PGSQL_KIND_TEXT,	0 },
	{ 1114,	"timestamp without time zone",	PGSQL_KIND_TEXT,	0 },
	{ 1115,	"timestamp without time zone[]", PGSQL_KIND_TEXT,	0 },
	{ 1182,	"date[]",			PGSQL_KIND_TEXT,	0 },
	{ 1183,	"time without time zone[]",	PGSQL_KIND_TEXT,	0 },
	{ 1184,	"timestamp with time zone",	PGSQL_KIND_TEXT,	0 },
	{ 1185,	"timestamp with time zone[]",	PGSQL_KIND_TEXT,	0 },
	{ 1186,	"interval",			PGSQL_KIND_TEXT,	0 },
	{ 1187,	"interval[]",			PGSQL_KIND_TEXT,	0 },
	{ 1231,	"numeric[]",			PGSQL_KIND_TEXT,	0 },
	{ 1266,	"time with time zone",		PGSQL_KIND_TEXT,	0 },
	{ 1560,	"bit",				PGSQL_KIND_TEXT,	0 },
	{ 1562,	"bit varying",			PGSQL_KIND_TEXT,	0 },
	{ 1700,	"numeric",			PGSQL_KIND_DECIMAL,	1 },
	{ 1790,	"refcursor",			PGSQL_KIND_TEXT,	0 },
	{ 2202,	"regprocedure",			PGSQL_KIND_TEXT,	0 },
	{ 2203,	"regoper",			PGSQL_KIND_TEXT,	0 },
	{ 2204,	"regoperator",			PGSQL_KIND_TEXT,	0 },
	{ 2205,	"regclass",			PGSQL_KIND_TEXT,	0 },
	{ 2206,	"regtype",			PGSQL_KIND_TEXT,	0 },
	{ 2249,	"record",			PGSQL_KIND_TEXT,	0 },
	{ 2275,	"cstring",			PGSQL_KIND_TEXT,	0 },
	{ 2278,	"void",				PGSQL_KIND_TEXT,	0 },
	{ 2950,	"uuid",				PGSQL_KIND_TEXT,	0 },
	{ 2951,	"uuid[]",			PGSQL_KIND_TEXT,	0 },
	{ 3220,	"pg_lsn",			PGSQL_KIND_TEXT,	0 },
	{ 3614,	"tsvector",			PGSQL_KIND_TEXT,	0 },
	{ 3615,	"tsquery",			PGSQL_KIND_TEXT,	0 },
	{ 3802,	"jsonb",			PGSQL_KIND_JSON,	0 },
	{ 3807,	"jsonb[]",			PGSQL_KIND_TEXT,	0 },
	{ 3904,	"int4range",			PGSQL_KIND_TEXT,	0 },
	{ 3906,	"numrange",			PGSQL_KIND_TEXT,	0 },
	{ 3908,	"tsrange",			PGSQL_KIND_TEXT,	0 },
	{ 3910,	"tstzrange",			PGSQL_KIND_TEXT,	0 },
	{ 3912,	"daterange",			PGSQL_KIND_TEXT,	0 },
	{ 3926,	"int8range",			PGSQL_KIND_TEXT,	0 },
	{ 4072,	"jsonpath",			PGSQL_KIND_TEXT,	0 },
	{ 4089,	"regnamespace",			PGSQL_KIND_TEXT,	0 },
	{ 4096,	"regrole",			PGSQL_KIND_TEXT,	0 },
};

static const struct pgsql_type *
pgsql_type_find(unsigned int oid)
{
	size_t lo = 0, hi = sizeof(pgsql_types) / sizeof(pgsql_types[0]), mid;

	/* The table is sorted by oid. */
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (pgsql_types[mid].oid == oid)
			return &pgsql_types[mid];
		if (pgsql_types[mid].oid < oid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

enum pgsql_kind
pgsql_type_kind(unsigned int oid)
{
	const struct pgsql_type *t = pgsql_type_find(oid);

	return t != NULL ? t->kind : PGSQL_KIND_TEXT;
}

int
pgsql_type_numeric(unsigned int oid)
{
	const struct pgsql_type *t = pgsql_type_find(oid);

	return t != NULL && t->numeric;
}

const char *
pgsql_type_name(unsigned int oid)
{
	const struct pgsql_type *t = pgsql_type_find(oid);

	return t != NULL ? t->name : NULL;
}

/* ---- values --------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0. */
static size_t
utf8_seq(const unsigned char *p, size_t n)
{
	unsigned int c;
	size_t len, i;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		c = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		c = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		c = p[0] & 0x07;
	} else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && c < 0x800) || (len == 4 && c < 0x10000) ||
	    c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	return len;
}

json_t *
pgsql_json_string(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	struct sb b = { NULL, 0, 0 };
	json_t *j;
	size_t i = 0, k;

	if ((j = json_stringn(s, len)) != NULL)
		return j;
	/* Not valid UTF-8 (an SQL_ASCII database): replace bad bytes. */
	while (i < len) {
		if ((k = utf8_seq(p + i, len - i)) == 0) {
			sb_add(&b, "\xef\xbf\xbd", 3);
			i++;
		} else {
			sb_add(&b, s + i, k);
			i += k;
		}
	}
	j = json_stringn(b.s != NULL ? b.s : "", b.len);
	free(b.s);
	if (j == NULL)
		j = json_string("");
	return j;
}

uint8_t *
pgsql_bytea_decode(const char *text, size_t len, size_t *outlen)
{
	uint8_t *out;
	size_t i, n = 0;
	int hi, lo;

	out = xmalloc(len + 1);
	if (len >= 2 && text[0] == '\\' && text[1] == 'x') {
		for (i = 2; i < len; i += 2) {
			if (i + 1 >= len || (hi = hex_digit(text[i])) < 0 ||
			    (lo = hex_digit(text[i + 1])) < 0)
				goto bad;
			out[n++] = (uint8_t)(hi << 4 | lo);
		}
	} else {
		/* The escape format: \\ and \ooo, everything else as is. */
		for (i = 0; i < len; i++) {
			if (text[i] != '\\') {
				out[n++] = (uint8_t)text[i];
			} else if (i + 1 < len && text[i + 1] == '\\') {
				out[n++] = '\\';
				i++;
			} else if (i + 3 < len && text[i + 1] >= '0' &&
			    text[i + 1] <= '3' && text[i + 2] >= '0' &&
			    text[i + 2] <= '7' && text[i + 3] >= '0' &&
			    text[i + 3] <= '7') {
				out[n++] = (uint8_t)((text[i + 1] - '0') * 64 +
				    (text[i + 2] - '0') * 8 + (text[i + 3] - '0'));
				i += 3;
			} else
				goto bad;
		}
	}
	*outlen = n;
	return out;
 bad:
	free(out);
	return NULL;
}

char *
pgsql_base64(const uint8_t *p, size_t len)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out, *o;
	size_t i;
	uint32_t v;

	out = o = xmalloc((len + 2) / 3 * 4 + 1);
	for (i = 0; i + 2 < len; i += 3) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*o++ = tab[v >> 18 & 63];
		*o++ = tab[v >> 12 & 63];
		*o++ = tab[v >> 6 & 63];
		*o++ = tab[v & 63];
	}
	if (i < len) {
		v = (uint32_t)p[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)p[i + 1] << 8;
		*o++ = tab[v >> 18 & 63];
		*o++ = tab[v >> 12 & 63];
		*o++ = i + 1 < len ? tab[v >> 6 & 63] : '=';
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

json_t *
pgsql_value(unsigned int oid, const char *text, size_t len)
{
	json_t *j = NULL;
	char *copy, *end, *b64;
	uint8_t *raw;
	size_t rawlen;
	long long ll;
	double d;

	if (text == NULL)
		return json_null();
	switch (pgsql_type_kind(oid)) {
	case PGSQL_KIND_INT:
		copy = xstrndup(text, len);
		errno = 0;
		ll = strtoll(copy, &end, 10);
		if (errno == 0 && end != copy && *end == '\0')
			j = json_integer(ll);
		free(copy);
		break;
	case PGSQL_KIND_FLOAT:
		copy = xstrndup(text, len);
		d = strtod(copy, &end);
		/* NaN and the infinities are not JSON numbers. */
		if (end != copy && *end == '\0' && isfinite(d))
			j = json_real(d);
		free(copy);
		break;
	case PGSQL_KIND_BOOL:
		if (len == 1 && text[0] == 't')
			j = json_true();
		else if (len == 1 && text[0] == 'f')
			j = json_false();
		break;
	case PGSQL_KIND_JSON:
		j = json_loadb(text, len, JSON_DECODE_ANY, NULL);
		break;
	case PGSQL_KIND_BYTEA:
		if ((raw = pgsql_bytea_decode(text, len, &rawlen)) != NULL) {
			b64 = pgsql_base64(raw, rawlen);
			j = json_string(b64);
			free(b64);
			free(raw);
		}
		break;
	case PGSQL_KIND_DECIMAL:
	case PGSQL_KIND_TEXT:
		break;
	}
	if (j == NULL)
		j = pgsql_json_string(text, len);
	return j;
}

/* ---- result sets ---------------------------------------------------------- */

struct pgsql_result *
pgsql_result_new(size_t ncols, uint64_t max_rows, uint64_t max_bytes)
{
	struct pgsql_result *r;

	r = xcalloc(1, sizeof(*r));
	r->ncols = ncols;
	r->names = xcalloc(ncols, sizeof(*r->names));
	r->keys = xcalloc(ncols, sizeof(*r->keys));
	r->oids = xcalloc(ncols, sizeof(*r->oids));
	r->types = xcalloc(ncols, sizeof(*r->types));
	r->max_rows = max_rows;
	r->max_bytes = max_bytes;
	return r;
}

static int
key_taken(const struct pgsql_result *r, size_t upto, const char *key)
{
	size_t i;

	for (i = 0; i < r->ncols; i++) {
		if (i != upto && r->keys[i] != NULL &&
		    strcmp(r->keys[i], key) == 0)
			return 1;
	}
	return 0;
}

void
pgsql_result_set_col(struct pgsql_result *r, size_t i, const char *name,
    unsigned int oid)
{
	const char *tn;
	char *key;
	unsigned int n;

	free(r->names[i]);
	free(r->keys[i]);
	r->keys[i] = NULL;
	r->names[i] = xstrdup(name);
	r->oids[i] = oid;
	key = xstrdup(name);
	for (n = 2; key_taken(r, i, key); n++) {
		free(key);
		key = xasprintf("%s_%u", name, n);
	}
	r->keys[i] = key;
	if ((tn = pgsql_type_name(oid)) != NULL)
		pgsql_result_set_type(r, i, tn);
}

void
pgsql_result_set_type(struct pgsql_result *r, size_t i, const char *type)
{
	free(r->types[i]);
	r->types[i] = xstrdup(type);
}

void
pgsql_result_set_command(struct pgsql_result *r, const char *tag)
{
	free(r->command);
	r->command = tag != NULL && *tag != '\0' ? xstrdup(tag) : NULL;
}

int
pgsql_result_add_row(struct pgsql_result *r, const char *const *vals,
    const size_t *lens)
{
	uint64_t rowbytes = 0;
	size_t i, base;

	r->seen++;
	if (r->truncated)
		return 0;
	for (i = 0; i < r->ncols; i++)
		rowbytes += vals[i] != NULL ? lens[i] : 0;
	if (r->max_rows > 0 && r->nrows >= r->max_rows) {
		r->truncated = 1;
		return 0;
	}
	if (r->max_bytes > 0 && r->bytes + rowbytes > r->max_bytes) {
		r->truncated = 1;
		r->by_bytes = 1;
		return 0;
	}
	if (r->nrows == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 16;
		r->cells = xrealloc(r->cells,
		    r->cap * (r->ncols ? r->ncols : 1) * sizeof(*r->cells));
		r->lens = xrealloc(r->lens,
		    r->cap * (r->ncols ? r->ncols : 1) * sizeof(*r->lens));
	}
	base = r->nrows * r->ncols;
	for (i = 0; i < r->ncols; i++) {
		r->cells[base + i] = vals[i] != NULL ?
		    xstrndup(vals[i], lens[i]) : NULL;
		r->lens[base + i] = vals[i] != NULL ? lens[i] : 0;
	}
	r->nrows++;
	r->bytes += rowbytes;
	return 1;
}

char *
pgsql_result_footer(const struct pgsql_result *r)
{
	if (!r->truncated)
		return xasprintf("(%zu row%s)", r->nrows,
		    r->nrows == 1 ? "" : "s");
	return xasprintf("truncated: showing %zu of %s%llu rows (%s %llu)",
	    r->nrows, r->incomplete ? "at least " : "",
	    (unsigned long long)r->seen,
	    r->by_bytes ? "max_bytes" : "max_rows",
	    (unsigned long long)(r->by_bytes ? r->max_bytes : r->max_rows));
}

/*
 * Appends the display form of a value to b: control characters escaped,
 * invalid UTF-8 replaced.  Returns its width in code points.
 */
static size_t
cell_display(struct sb *b, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	char esc[8];
	size_t i = 0, k, w = 0;

	while (i < len) {
		if (p[i] < 0x20 || p[i] == 0x7f) {
			if (p[i] == '\n')
				snprintf(esc, sizeof(esc), "\\n");
			else if (p[i] == '\t')
				snprintf(esc, sizeof(esc), "\\t");
			else if (p[i] == '\r')
				snprintf(esc, sizeof(esc), "\\r");
			else
				snprintf(esc, sizeof(esc), "\\x%02x", p[i]);
			sb_puts(b, esc);
			w += strlen(esc);
			i++;
		} else if ((k = utf8_seq(p + i, len - i)) == 0) {
			sb_add(b, "\xef\xbf\xbd", 3);
			w++;
			i++;
		} else {
			sb_add(b, s + i, k);
			w++;
			i += k;
		}
	}
	return w;
}

/* Appends r's kept rows to out as an aligned table. */
static void
result_table(struct sb *out, const struct pgsql_result *r)
{
	struct sb cell = { NULL, 0, 0 };
	size_t *width = NULL, *cw = NULL, c, row, w, pad, ncells;
	char **disp = NULL;
	const char *v;

	ncells = (r->nrows + 1) * r->ncols;
	disp = xcalloc(ncells, sizeof(*disp));
	cw = xcalloc(ncells, sizeof(*cw));
	width = xcalloc(r->ncols, sizeof(*width));
	for (row = 0; row <= r->nrows; row++) {
		for (c = 0; c < r->ncols; c++) {
			if (row == 0) {
				v = r->names[c];
				w = cell_display(&cell, v, strlen(v));
			} else if ((v = r->cells[(row - 1) * r->ncols + c]) ==
			    NULL) {
				w = cell_display(&cell, "NULL", 4);
			} else
				w = cell_display(&cell, v,
				    r->lens[(row - 1) * r->ncols + c]);
			disp[row * r->ncols + c] = sb_take(&cell);
			cw[row * r->ncols + c] = w;
			if (w > PGSQL_PAD_MAX)
				w = PGSQL_PAD_MAX;
			if (w > width[c])
				width[c] = w;
		}
	}
	for (row = 0; row <= r->nrows; row++) {
		for (c = 0; c < r->ncols; c++) {
			w = cw[row * r->ncols + c];
			pad = w < width[c] ? width[c] - w : 0;
			sb_puts(out, c == 0 ? " " : " | ");
			if (row > 0 && pgsql_type_numeric(r->oids[c]))
				sb_pad(out, ' ', pad);
			sb_puts(out, disp[row * r->ncols + c]);
			if ((row == 0 || !pgsql_type_numeric(r->oids[c])) &&
			    c + 1 < r->ncols)
				sb_pad(out, ' ', pad);
		}
		sb_puts(out, "\n");
		if (row == 0) {
			for (c = 0; c < r->ncols; c++) {
				if (c > 0)
					sb_puts(out, "+");
				sb_pad(out, '-', width[c] + 2);
			}
			sb_puts(out, "\n");
		}
	}
	for (c = 0; c < ncells; c++)
		free(disp[c]);
	free(disp);
	free(cw);
	free(width);
}

char *
pgsql_result_text(const struct pgsql_result *r)
{
	struct sb out = { NULL, 0, 0 };
	char *footer;

	footer = pgsql_result_footer(r);
	if (r->ncols == 0)
		sb_puts(&out, r->command != NULL ? r->command : footer);
	else {
		result_table(&out, r);
		sb_puts(&out, footer);
	}
	sb_puts(&out, "\n");
	free(footer);
	return sb_take(&out);
}

json_t *
pgsql_result_json(const struct pgsql_result *r)
{
	json_t *o, *cols, *rows, *row, *col;
	size_t c, i;
	char *tn;

	cols = json_array();
	for (c = 0; c < r->ncols; c++) {
		tn = r->types[c] != NULL ? xstrdup(r->types[c]) :
		    xasprintf("oid %u", r->oids[c]);
		col = json_pack("{s:o, s:s}", "name",
		    pgsql_json_string(r->names[c], strlen(r->names[c])),
		    "type", tn);
		if (strcmp(r->keys[c], r->names[c]) != 0)
			json_object_set_new(col, "key",
			    pgsql_json_string(r->keys[c], strlen(r->keys[c])));
		json_array_append_new(cols, col);
		free(tn);
	}
	rows = json_array();
	for (i = 0; i < r->nrows; i++) {
		row = json_object();
		for (c = 0; c < r->ncols; c++)
			json_object_set_new(row, r->keys[c],
			    pgsql_value(r->oids[c],
			    r->cells[i * r->ncols + c],
			    r->lens[i * r->ncols + c]));
		json_array_append_new(rows, row);
	}
	o = json_pack("{s:o, s:o, s:I, s:I, s:b, s:b}", "columns", cols,
	    "rows", rows, "row_count", (json_int_t)r->nrows,
	    "total_rows", (json_int_t)r->seen,
	    "total_rows_exact", !r->incomplete,
	    "truncated", r->truncated);
	if (r->command != NULL)
		json_object_set_new(o, "command", json_string(r->command));
	return o;
}

json_t *
pgsql_result_schema(void)
{
	return json_pack("{s:s, s:{s:{s:s, s:{s:s, s:{s:{s:s}, s:{s:s}, "
	    "s:{s:s}}, s:[s, s]}}, s:{s:s, s:{s:s}}, s:{s:s}, s:{s:s}, "
	    "s:{s:s}, s:{s:s}, s:{s:s}}, s:[s, s, s, s]}",
	    "type", "object",
	    "properties",
	      "columns", "type", "array", "items",
		"type", "object", "properties",
		  "name", "type", "string",
		  "type", "type", "string",
		  "key", "type", "string",
		"required", "name", "type",
	      "rows", "type", "array", "items", "type", "object",
	      "row_count", "type", "integer",
	      "total_rows", "type", "integer",
	      "total_rows_exact", "type", "boolean",
	      "truncated", "type", "boolean",
	      "command", "type", "string",
	    "required", "columns", "rows", "row_count", "truncated");
}

void
pgsql_result_free(struct pgsql_result *r)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < r->ncols; i++) {
		free(r->names[i]);
		free(r->keys[i]);
		free(r->types[i]);
	}
	for (i = 0; i < r->nrows * r->ncols; i++)
		free(r->cells[i]);
	free(r->names);
	free(r->keys);
	free(r->oids);
	free(r->types);
	free(r->cells);
	free(r->lens);
	free(r->command);
	free(r);
}

/* ---- describe_table and explain as text ------------------------------- */

static const char *
jstr(const json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));

	return v != NULL ? v : "";
}

/* Appends "  name: definition" lines for the objects in a, under title. */
static void
describe_list(struct sb *b, const json_t *a, const char *title, int qualify)
{
	const json_t *v;
	size_t i;

	if (!json_is_array(a) || json_array_size(a) == 0)
		return;
	sb_puts(b, title);
	sb_puts(b, ":\n");
	for (i = 0; i < json_array_size(a); i++) {
		v = json_array_get(a, i);
		sb_puts(b, "  ");
		if (qualify) {
			sb_puts(b, jstr(v, "schema"));
			sb_puts(b, ".");
			sb_puts(b, jstr(v, "table"));
			sb_puts(b, " ");
		}
		sb_puts(b, jstr(v, "name"));
		sb_puts(b, ": ");
		sb_puts(b, jstr(v, "definition"));
		sb_puts(b, "\n");
	}
}

char *
pgsql_describe_text(const json_t *d)
{
	struct sb b = { NULL, 0, 0 };
	struct pgsql_result *r;
	const json_t *cols, *col, *pk, *def;
	const char *kind, *vals[4];
	size_t lens[4], i, k;

	kind = jstr(d, "kind");
	if (*kind != '\0') {
		sb_add(&b, kind, 1);
		b.s[b.len - 1] = (char)toupper((unsigned char)kind[0]);
		sb_puts(&b, kind + 1);
		sb_puts(&b, " ");
	}
	sb_puts(&b, jstr(d, "schema"));
	sb_puts(&b, ".");
	sb_puts(&b, jstr(d, "table"));
	sb_puts(&b, "\n");
	if (json_is_string(json_object_get(d, "comment"))) {
		sb_puts(&b, "Comment: ");
		sb_puts(&b, jstr(d, "comment"));
		sb_puts(&b, "\n");
	}
	cols = json_object_get(d, "columns");
	r = pgsql_result_new(4, 0, 0);
	pgsql_result_set_col(r, 0, "column", 25);
	pgsql_result_set_col(r, 1, "type", 25);
	pgsql_result_set_col(r, 2, "nullable", 25);
	pgsql_result_set_col(r, 3, "default", 25);
	for (i = 0; json_is_array(cols) && i < json_array_size(cols); i++) {
		col = json_array_get(cols, i);
		def = json_object_get(col, "default");
		vals[0] = jstr(col, "name");
		vals[1] = jstr(col, "type");
		vals[2] = json_is_false(json_object_get(col, "nullable")) ?
		    "not null" : "null";
		vals[3] = json_is_string(def) ? json_string_value(def) : "";
		for (k = 0; k < 4; k++)
			lens[k] = strlen(vals[k]);
		pgsql_result_add_row(r, vals, lens);
	}
	sb_puts(&b, "\n");
	result_table(&b, r);
	pgsql_result_free(r);
	pk = json_object_get(d, "primary_key");
	if (json_is_array(pk) && json_array_size(pk) > 0) {
		sb_puts(&b, "Primary key: (");
		for (i = 0; i < json_array_size(pk); i++) {
			if (i > 0)
				sb_puts(&b, ", ");
			sb_puts(&b, json_string_value(json_array_get(pk, i)) ?
			    json_string_value(json_array_get(pk, i)) : "");
		}
		sb_puts(&b, ")\n");
	}
	describe_list(&b, json_object_get(d, "foreign_keys"), "Foreign keys", 0);
	describe_list(&b, json_object_get(d, "referenced_by"), "Referenced by",
	    1);
	describe_list(&b, json_object_get(d, "constraints"), "Constraints", 0);
	describe_list(&b, json_object_get(d, "indexes"), "Indexes", 0);
	return sb_take(&b);
}

/* Appends one plan node and its children, psql's text EXPLAIN style. */
static void
explain_node(struct sb *b, const json_t *n, int depth)
{
	static const char *const details[] = {
		"Index Cond", "Recheck Cond", "Hash Cond", "Merge Cond",
		"Join Filter", "Filter", "Sort Key", "Group Key", NULL
	};
	const json_t *v, *plans;
	const char *jt;
	size_t i, k;
	char num[128];
	int indent = depth == 0 ? 0 : 2 + (depth - 1) * 6;

	sb_pad(b, ' ', (size_t)indent);
	if (depth > 0)
		sb_puts(b, "->  ");
	sb_puts(b, jstr(n, "Node Type"));
	jt = jstr(n, "Join Type");
	if (*jt != '\0' && strcmp(jt, "Inner") != 0) {
		sb_puts(b, " (");
		sb_puts(b, jt);
		sb_puts(b, ")");
	}
	if (*jstr(n, "Index Name") != '\0') {
		sb_puts(b, " using ");
		sb_puts(b, jstr(n, "Index Name"));
	}
	if (*jstr(n, "Relation Name") != '\0') {
		sb_puts(b, " on ");
		if (*jstr(n, "Schema") != '\0') {
			sb_puts(b, jstr(n, "Schema"));
			sb_puts(b, ".");
		}
		sb_puts(b, jstr(n, "Relation Name"));
		if (*jstr(n, "Alias") != '\0' &&
		    strcmp(jstr(n, "Alias"), jstr(n, "Relation Name")) != 0) {
			sb_puts(b, " ");
			sb_puts(b, jstr(n, "Alias"));
		}
	}
	if (json_is_number(json_object_get(n, "Total Cost"))) {
		snprintf(num, sizeof(num), "  (cost=%.2f..%.2f rows=%.0f "
		    "width=%.0f)",
		    json_number_value(json_object_get(n, "Startup Cost")),
		    json_number_value(json_object_get(n, "Total Cost")),
		    json_number_value(json_object_get(n, "Plan Rows")),
		    json_number_value(json_object_get(n, "Plan Width")));
		sb_puts(b, num);
	}
	sb_puts(b, "\n");
	for (k = 0; details[k] != NULL; k++) {
		if ((v = json_object_get(n, details[k])) == NULL)
			continue;
		sb_pad(b, ' ', (size_t)indent + (depth > 0 ? 6 : 2));
		sb_puts(b, details[k]);
		sb_puts(b, ": ");
		if (json_is_array(v)) {
			for (i = 0; i < json_array_size(v); i++) {
				if (i > 0)
					sb_puts(b, ", ");
				sb_puts(b, json_string_value(
				    json_array_get(v, i)) != NULL ?
				    json_string_value(json_array_get(v, i)) :
				    "?");
			}
		} else
			sb_puts(b, json_string_value(v) != NULL ?
			    json_string_value(v) : "?");
		sb_puts(b, "\n");
	}
	plans = json_object_get(n, "Plans");
	for (i = 0; json_is_array(plans) && i < json_array_size(plans); i++)
		explain_node(b, json_array_get(plans, i), depth + 1);
}

char *
pgsql_explain_text(const json_t *plan)
{
	struct sb b = { NULL, 0, 0 };
	const json_t *top = plan, *n;

	if (json_is_array(top))
		top = json_array_get(top, 0);
	n = json_object_get(top, "Plan");
	if (!json_is_object(n))
		return xstrdup("(no plan)\n");
	explain_node(&b, n, 0);
	return sb_take(&b);
}

/* ---- curated tools ---------------------------------------------------------- */

static const char *
param_type_name(enum pg_param_type t)
{
	switch (t) {
	case PG_PARAM_STRING:	return "string";
	case PG_PARAM_INTEGER:	return "integer";
	case PG_PARAM_NUMBER:	return "number";
	case PG_PARAM_BOOLEAN:	return "boolean";
	}
	return "string";
}

static const char *
json_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:	return "an object";
	case JSON_ARRAY:	return "an array";
	case JSON_STRING:	return "a string";
	case JSON_INTEGER:	return "an integer";
	case JSON_REAL:		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:	return "a boolean";
	case JSON_NULL:		return "null";
	}
	return "something else";
}

json_t *
pgsql_tool_input_schema(const struct pg_tool *t)
{
	json_t *props, *req, *p;
	size_t i;

	props = json_object();
	req = json_array();
	for (i = 0; i < t->nparams; i++) {
		p = json_pack("{s:s}", "type",
		    param_type_name(t->params[i].type));
		if (t->params[i].description != NULL)
			json_object_set_new(p, "description",
			    json_string(t->params[i].description));
		json_object_set_new(props, t->params[i].name, p);
		if (t->params[i].required)
			json_array_append_new(req,
			    json_string(t->params[i].name));
	}
	return json_pack("{s:s, s:o, s:o, s:b}", "type", "object",
	    "properties", props, "required", req,
	    "additionalProperties", 0);
}

void
pgsql_values_free(char **values, size_t n)
{
	size_t i;

	if (values == NULL)
		return;
	for (i = 0; i < n; i++)
		free(values[i]);
	free(values);
}

/* Turns v into the text for parameter p; NULL and err on a type error. */
static char *
param_text(const struct pg_param *p, const json_t *v, char *err,
    size_t errlen)
{
	double d;

	switch (p->type) {
	case PG_PARAM_STRING:
		if (!json_is_string(v))
			break;
		if (strlen(json_string_value(v)) != json_string_length(v)) {
			snprintf(err, errlen, "argument \"%s\" must not contain "
			    "NUL characters", p->name);
			return NULL;
		}
		return xstrdup(json_string_value(v));
	case PG_PARAM_INTEGER:
		if (json_is_integer(v))
			return xasprintf("%lld",
			    (long long)json_integer_value(v));
		if (json_is_real(v)) {
			d = json_real_value(v);
			if (d == floor(d) && fabs(d) < 9007199254740992.0)
				return xasprintf("%.0f", d);
		}
		break;
	case PG_PARAM_NUMBER:
		if (json_is_integer(v))
			return xasprintf("%lld",
			    (long long)json_integer_value(v));
		if (json_is_real(v))
			return xasprintf("%.17g", json_real_value(v));
		break;
	case PG_PARAM_BOOLEAN:
		if (json_is_boolean(v))
			return xstrdup(json_is_true(v) ? "true" : "false");
		break;
	}
	snprintf(err, errlen, "argument \"%s\" must be %s %s, not %s",
	    p->name, p->type == PG_PARAM_INTEGER ? "an" : "a",
	    param_type_name(p->type), json_is_real(v) &&
	    p->type == PG_PARAM_INTEGER ? "a fraction" : json_type_name(v));
	return NULL;
}

int
pgsql_tool_bind(const struct pg_tool *t, json_t *args, char ***valuesp,
    char *err, size_t errlen)
{
	char **values = NULL;
	const char *key;
	json_t *v;
	size_t i;
	int r = MT_EINVAL;

	if (args != NULL && !json_is_object(args)) {
		snprintf(err, errlen, "the arguments must be a JSON object");
		goto out;
	}
	if (args != NULL) {
		json_object_foreach(args, key, v) {
			for (i = 0; i < t->nparams; i++) {
				if (strcmp(t->params[i].name, key) == 0)
					break;
			}
			if (i == t->nparams) {
				snprintf(err, errlen, "unknown argument "
				    "\"%.64s\" (tool \"%s\" takes %s%s)", key,
				    t->name, t->nparams ? "" : "none",
				    t->nparams ? "the arguments in its "
				    "inputSchema" : "");
				goto out;
			}
		}
	}
	values = xcalloc(t->nparams ? t->nparams : 1, sizeof(*values));
	for (i = 0; i < t->nparams; i++) {
		v = args != NULL ? json_object_get(args, t->params[i].name) :
		    NULL;
		if (v == NULL || json_is_null(v)) {
			if (t->params[i].required) {
				snprintf(err, errlen, "missing required "
				    "argument \"%s\" (%s)", t->params[i].name,
				    param_type_name(t->params[i].type));
				goto out;
			}
			continue;
		}
		if ((values[i] = param_text(&t->params[i], v, err,
		    errlen)) == NULL)
			goto out;
	}
	*valuesp = values;
	values = NULL;
	r = 0;
 out:
	pgsql_values_free(values, t->nparams);
	return r;
}

/* ---- resources ---------------------------------------------------------- */

static void
uri_encode(struct sb *b, const char *s)
{
	const unsigned char *p;
	char esc[4];

	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' ||
		    *p == '~')
			sb_add(b, (const char *)p, 1);
		else {
			snprintf(esc, sizeof(esc), "%%%02X", *p);
			sb_add(b, esc, 3);
		}
	}
}

char *
pgsql_resource_uri(const char *server, const char *schema,
    const char *table)
{
	struct sb b = { NULL, 0, 0 };

	sb_puts(&b, "postgres://");
	uri_encode(&b, server);
	sb_puts(&b, "/");
	uri_encode(&b, schema);
	sb_puts(&b, "/");
	uri_encode(&b, table);
	sb_puts(&b, "/schema");
	return sb_take(&b);
}

/* Decodes n bytes of a path segment; NULL if malformed or empty. */
static char *
uri_decode(const char *s, size_t n)
{
	char *out;
	size_t i, k = 0;
	int hi, lo;

	if (n == 0)
		return NULL;
	out = xmalloc(n + 1);
	for (i = 0; i < n; i++) {
		if (s[i] != '%') {
			out[k++] = s[i];
			continue;
		}
		if (i + 2 >= n)
			goto bad;
		if ((hi = hex_digit(s[i + 1])) < 0 || (lo = hex_digit(s[i + 2])) < 0 ||
		    (hi == 0 && lo == 0))
			goto bad;
		out[k++] = (char)(hi << 4 | lo);
		i += 2;
	}
	out[k] = '\0';
	return out;
 bad:
	free(out);
	return NULL;
}

int
pgsql_resource_parse(const char *uri, const char *server, char **schemap,
    char **tablep)
{
	char *prefix, *schema = NULL, *table = NULL;
	const char *p, *slash1, *slash2;
	struct sb b = { NULL, 0, 0 };
	int r = MT_ENOTFOUND;

	sb_puts(&b, "postgres://");
	uri_encode(&b, server);
	sb_puts(&b, "/");
	prefix = sb_take(&b);
	if (strncmp(uri, prefix, strlen(prefix)) != 0)
		goto out;
	p = uri + strlen(prefix);
	if ((slash1 = strchr(p, '/')) == NULL ||
	    (slash2 = strchr(slash1 + 1, '/')) == NULL ||
	    strcmp(slash2, "/schema") != 0)
		goto out;
	if ((schema = uri_decode(p, (size_t)(slash1 - p))) == NULL ||
	    (table = uri_decode(slash1 + 1, (size_t)(slash2 - slash1 - 1))) ==
	    NULL)
		goto out;
	*schemap = schema;
	*tablep = table;
	schema = table = NULL;
	r = 0;
 out:
	free(prefix);
	free(schema);
	free(table);
	return r;
}
