/*
 * The strict JSON scanner; see jscan.h.  The rules are jansson 2.14's
 * (load.c, utf.c), taken one by one:
 *   - the top level is an object or an array, with only blanks (space,
 *     tab, CR, LF) around it;
 *   - strings: no raw byte below 0x20, escapes \" \\ \/ \b \f \n \r \t and
 *     \uXXXX, surrogates only as a high-low pair, no \u0000 (jrpc_parse
 *     does not pass JSON_ALLOW_NUL), and strict UTF-8 (no overlong forms,
 *     no encoded surrogates, nothing past U+10FFFF);
 *   - numbers: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?; an integer
 *     must fit a long long ("too big integer") and a real must not
 *     overflow a double ("real number overflow");
 *   - true, false, null; no trailing commas; no duplicate keys in any
 *     object (JSON_REJECT_DUPLICATES).
 * Duplicate keys are found with a 64-bit hash of each decoded key kept on
 * a small stack per open object; equal hashes answer JSCAN_UNSURE, so a
 * collision costs a jansson parse, never a wrong answer.
 */
#include "common/jscan.h"
#include "common/util.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Keys remembered across all open objects. */
#define JSCAN_KEY_STACK	512
#define JSCAN_NOT_WANTED (-2)

struct scan {
	const uint8_t		*s;
	size_t			 len;
	size_t			 pos;
	int			 depth;
	const struct jscan_want	*want;
	size_t			 nwant;
	struct jscan_val	*vals;
	size_t			 nkeys;
	uint64_t		 keys[JSCAN_KEY_STACK];
};

static int scan_value(struct scan *, int, enum jscan_type *, int *);

static int
is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* The 4 hex digits at p (which has at least 4 bytes), or -1. */
static int32_t
hex4(const uint8_t *p)
{
	int32_t v = 0;
	int i, h;

	for (i = 0; i < 4; i++) {
		if ((h = hex_digit(p[i])) < 0)
			return -1;
		v = v << 4 | h;
	}
	return v;
}

static void
skip_blanks(struct scan *sc)
{
	while (sc->pos < sc->len) {
		switch (sc->s[sc->pos]) {
		case ' ':
		case '\t':
		case '\n':
		case '\r':
			sc->pos++;
			continue;
		}
		break;
	}
}

/* The length of the UTF-8 sequence at p (n bytes left), or 0 if invalid. */
static size_t
utf8_seq(const uint8_t *p, size_t n)
{
	size_t size, i;
	uint32_t v;

	if (p[0] < 0xC2 || p[0] > 0xF4)
		return 0;
	size = p[0] < 0xE0 ? 2 : p[0] < 0xF0 ? 3 : 4;
	if (n < size)
		return 0;
	v = p[0] & (size == 2 ? 0x1F : size == 3 ? 0x0F : 0x07);
	for (i = 1; i < size; i++) {
		if (p[i] < 0x80 || p[i] > 0xBF)
			return 0;
		v = v << 6 | (p[i] & 0x3F);
	}
	if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF) ||
	    (size == 3 && v < 0x800) || (size == 4 && v < 0x10000))
		return 0;
	return size;
}

#define REP(b)		(0x0101010101010101ULL * (b))
/* Nonzero if a byte of x is below n (n <= 128). */
#define HASLESS(x, n)	(((x) - REP(n)) & ~(x) & REP(0x80))

/* Nonzero if one of the 8 bytes at p needs a look: " \ < 0x20 >= 0x80. */
static int
special8(const uint8_t *p)
{
	uint64_t x;

	memcpy(&x, p, 8);
	return ((x & REP(0x80)) | HASLESS(x, 0x20) |
	    HASLESS(x ^ REP('"'), 1) | HASLESS(x ^ REP('\\'), 1)) != 0;
}

/*
 * Checks an escape at sc->pos (the backslash), moves past it.  \uXXXX
 * that is a high surrogate must be followed by a low one.
 */
static int
scan_escape(struct scan *sc)
{
	const uint8_t *s = sc->s;
	int32_t v, v2;

	if (sc->pos + 1 >= sc->len)
		return JSCAN_BAD;
	switch (s[sc->pos + 1]) {
	case '"': case '\\': case '/': case 'b': case 'f': case 'n':
	case 'r': case 't':
		sc->pos += 2;
		return JSCAN_OK;
	case 'u':
		break;
	default:
		return JSCAN_BAD;
	}
	if (sc->len - sc->pos < 6 || (v = hex4(s + sc->pos + 2)) < 0)
		return JSCAN_BAD;
	sc->pos += 6;
	if (v == 0 || (v >= 0xDC00 && v <= 0xDFFF))
		return JSCAN_BAD;
	if (v < 0xD800 || v > 0xDBFF)
		return JSCAN_OK;
	if (sc->len - sc->pos < 6 || s[sc->pos] != '\\' ||
	    s[sc->pos + 1] != 'u' || (v2 = hex4(s + sc->pos + 2)) < 0 ||
	    v2 < 0xDC00 || v2 > 0xDFFF)
		return JSCAN_BAD;
	sc->pos += 6;
	return JSCAN_OK;
}

/* Checks the string at sc->pos (the opening quote), moves past it. */
static int
scan_string(struct scan *sc, int *escaped)
{
	const uint8_t *s = sc->s;
	size_t n;
	uint8_t c;
	int r;

	*escaped = 0;
	sc->pos++;
	for (;;) {
		while (sc->len - sc->pos >= 8 && !special8(s + sc->pos))
			sc->pos += 8;
		if (sc->pos >= sc->len)
			return JSCAN_BAD;
		c = s[sc->pos];
		if (c == '"') {
			sc->pos++;
			return JSCAN_OK;
		}
		if (c < 0x20)
			return JSCAN_BAD;
		if (c == '\\') {
			*escaped = 1;
			if ((r = scan_escape(sc)) != JSCAN_OK)
				return r;
		} else if (c >= 0x80) {
			if ((n = utf8_seq(s + sc->pos, sc->len - sc->pos)) == 0)
				return JSCAN_BAD;
			sc->pos += n;
		} else
			sc->pos++;
	}
}

/*
 * Decodes one character of a checked string body at *pp into out (up to
 * 4 bytes), moves *pp past it and returns the bytes written.
 */
static size_t
decode_one(const uint8_t **pp, uint8_t *out)
{
	const uint8_t *p = *pp;
	uint32_t v;

	if (p[0] != '\\') {
		out[0] = p[0];
		*pp = p + 1;
		return 1;
	}
	*pp = p + 2;
	switch (p[1]) {
	case 'b': out[0] = '\b'; return 1;
	case 'f': out[0] = '\f'; return 1;
	case 'n': out[0] = '\n'; return 1;
	case 'r': out[0] = '\r'; return 1;
	case 't': out[0] = '\t'; return 1;
	case 'u': break;
	default: out[0] = p[1]; return 1;
	}
	v = (uint32_t)hex4(p + 2);
	*pp = p + 6;
	if (v >= 0xD800 && v <= 0xDBFF) {
		v = ((v - 0xD800) << 10) + ((uint32_t)hex4(p + 8) - 0xDC00) +
		    0x10000;
		*pp = p + 12;
	}
	if (v < 0x80) {
		out[0] = (uint8_t)v;
		return 1;
	}
	if (v < 0x800) {
		out[0] = (uint8_t)(0xC0 | v >> 6);
		out[1] = (uint8_t)(0x80 | (v & 0x3F));
		return 2;
	}
	if (v < 0x10000) {
		out[0] = (uint8_t)(0xE0 | v >> 12);
		out[1] = (uint8_t)(0x80 | (v >> 6 & 0x3F));
		out[2] = (uint8_t)(0x80 | (v & 0x3F));
		return 3;
	}
	out[0] = (uint8_t)(0xF0 | v >> 18);
	out[1] = (uint8_t)(0x80 | (v >> 12 & 0x3F));
	out[2] = (uint8_t)(0x80 | (v >> 6 & 0x3F));
	out[3] = (uint8_t)(0x80 | (v & 0x3F));
	return 4;
}

/* FNV-1a over the decoded bytes of the checked string body [p, e). */
static uint64_t
key_hash(const uint8_t *p, const uint8_t *e, int escaped)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	uint8_t buf[4];
	size_t n, i;

	while (p < e) {
		if (!escaped) {
			h = (h ^ *p++) * 0x100000001b3ULL;
			continue;
		}
		n = decode_one(&p, buf);
		for (i = 0; i < n; i++)
			h = (h ^ buf[i]) * 0x100000001b3ULL;
	}
	return h;
}

/* 1 if the checked string body [p, e) decodes to s. */
static int
body_eq(const uint8_t *p, const uint8_t *e, int escaped, const char *s)
{
	size_t slen = strlen(s), n, at = 0;
	uint8_t buf[4];

	if (!escaped)
		return (size_t)(e - p) == slen && memcmp(p, s, slen) == 0;
	while (p < e) {
		n = decode_one(&p, buf);
		if (at + n > slen || memcmp(s + at, buf, n) != 0)
			return 0;
		at += n;
	}
	return at == slen;
}

/*
 * A real number's text [p, p + n): 1 if strtod overflows on it, as
 * jansson's jsonp_strtod would report.  -1 if too long to check here.
 */
static int
real_overflows(const uint8_t *p, size_t n)
{
	char buf[64];
	double d;

	if (n >= sizeof(buf))
		return -1;
	memcpy(buf, p, n);
	buf[n] = '\0';
	errno = 0;
	d = strtod(buf, NULL);
	return (d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE;
}

/* Checks the number at sc->pos, moves past it; *type gets its kind. */
static int
scan_number(struct scan *sc, enum jscan_type *type)
{
	static const char maxpos[] = "9223372036854775807";
	static const char maxneg[] = "9223372036854775808";
	const uint8_t *s = sc->s;
	size_t start = sc->pos, istart, ndig;
	long expo = 0;
	int neg = 0, real = 0, eneg = 0, r;

	if (s[sc->pos] == '-') {
		neg = 1;
		sc->pos++;
	}
	istart = sc->pos;
	if (sc->pos >= sc->len)
		return JSCAN_BAD;
	if (s[sc->pos] == '0') {
		sc->pos++;
		if (sc->pos < sc->len && is_digit(s[sc->pos]))
			return JSCAN_BAD;
	} else if (is_digit(s[sc->pos])) {
		while (sc->pos < sc->len && is_digit(s[sc->pos]))
			sc->pos++;
	} else
		return JSCAN_BAD;
	ndig = sc->pos - istart;
	if (sc->pos < sc->len && s[sc->pos] == '.') {
		sc->pos++;
		if (sc->pos >= sc->len || !is_digit(s[sc->pos]))
			return JSCAN_BAD;
		while (sc->pos < sc->len && is_digit(s[sc->pos]))
			sc->pos++;
		real = 1;
	}
	if (sc->pos < sc->len && (s[sc->pos] == 'e' || s[sc->pos] == 'E')) {
		sc->pos++;
		if (sc->pos < sc->len && (s[sc->pos] == '+' ||
		    s[sc->pos] == '-'))
			eneg = s[sc->pos++] == '-';
		if (sc->pos >= sc->len || !is_digit(s[sc->pos]))
			return JSCAN_BAD;
		while (sc->pos < sc->len && is_digit(s[sc->pos])) {
			if (expo < 100000)
				expo = expo * 10 + (s[sc->pos] - '0');
			sc->pos++;
		}
		real = 1;
	}
	if (!real) {
		*type = JSCAN_INTEGER;
		if (ndig < 19)
			return JSCAN_OK;
		if (ndig > 19 || memcmp(s + istart, neg ? maxneg : maxpos,
		    19) > 0)
			return JSCAN_BAD;
		return JSCAN_OK;
	}
	*type = JSCAN_REAL;
	/* Below 10^308 whatever the digits: no overflow possible. */
	if ((long)ndig + (eneg ? -expo : expo) <= 308)
		return JSCAN_OK;
	if ((r = real_overflows(s + start, sc->pos - start)) < 0)
		return JSCAN_UNSURE;
	return r ? JSCAN_BAD : JSCAN_OK;
}

/* Checks a literal (true, false, null) at sc->pos. */
static int
scan_literal(struct scan *sc, const char *word, enum jscan_type t,
    enum jscan_type *type)
{
	size_t n = strlen(word);

	if (sc->len - sc->pos < n || memcmp(sc->s + sc->pos, word, n) != 0)
		return JSCAN_BAD;
	sc->pos += n;
	*type = t;
	return JSCAN_OK;
}

/* The want that the member named by body [p, e) of object self is. */
static int
match_want(const struct scan *sc, int self, const uint8_t *p,
    const uint8_t *e, int escaped)
{
	size_t i;

	for (i = 0; i < sc->nwant; i++)
		if (sc->want[i].parent == self &&
		    sc->vals[i].type == JSCAN_NONE &&
		    body_eq(p, e, escaped, sc->want[i].key))
			return (int)i;
	return JSCAN_NOT_WANTED;
}

/* Checks the object at sc->pos; self: its want index, or NOT_WANTED. */
static int
scan_object(struct scan *sc, int self)
{
	size_t kbase = sc->nkeys, kstart, vstart, i;
	enum jscan_type type;
	uint64_t h;
	int r, esc, vesc, child;

	sc->pos++;
	skip_blanks(sc);
	if (sc->pos < sc->len && sc->s[sc->pos] == '}') {
		sc->pos++;
		return JSCAN_OK;
	}
	for (;;) {
		skip_blanks(sc);
		if (sc->pos >= sc->len || sc->s[sc->pos] != '"')
			return JSCAN_BAD;
		kstart = sc->pos;
		if ((r = scan_string(sc, &esc)) != JSCAN_OK)
			return r;
		h = key_hash(sc->s + kstart + 1, sc->s + sc->pos - 1, esc);
		for (i = kbase; i < sc->nkeys; i++)
			if (sc->keys[i] == h)
				return JSCAN_UNSURE;
		if (sc->nkeys - kbase >= JSCAN_MAX_KEYS ||
		    sc->nkeys >= JSCAN_KEY_STACK)
			return JSCAN_UNSURE;
		sc->keys[sc->nkeys++] = h;
		child = self == JSCAN_NOT_WANTED ? JSCAN_NOT_WANTED :
		    match_want(sc, self, sc->s + kstart + 1,
		    sc->s + sc->pos - 1, esc);
		skip_blanks(sc);
		if (sc->pos >= sc->len || sc->s[sc->pos] != ':')
			return JSCAN_BAD;
		sc->pos++;
		skip_blanks(sc);
		vstart = sc->pos;
		if ((r = scan_value(sc, child, &type, &vesc)) != JSCAN_OK)
			return r;
		if (child >= 0) {
			sc->vals[child].off = vstart;
			sc->vals[child].len = sc->pos - vstart;
			sc->vals[child].type = type;
			sc->vals[child].escaped = vesc;
		}
		skip_blanks(sc);
		if (sc->pos >= sc->len)
			return JSCAN_BAD;
		if (sc->s[sc->pos] == '}')
			break;
		if (sc->s[sc->pos] != ',')
			return JSCAN_BAD;
		sc->pos++;
	}
	sc->pos++;
	sc->nkeys = kbase;
	return JSCAN_OK;
}

static int
scan_array(struct scan *sc)
{
	enum jscan_type type;
	int r, esc;

	sc->pos++;
	skip_blanks(sc);
	if (sc->pos < sc->len && sc->s[sc->pos] == ']') {
		sc->pos++;
		return JSCAN_OK;
	}
	for (;;) {
		skip_blanks(sc);
		if ((r = scan_value(sc, JSCAN_NOT_WANTED, &type, &esc)) !=
		    JSCAN_OK)
			return r;
		skip_blanks(sc);
		if (sc->pos >= sc->len)
			return JSCAN_BAD;
		if (sc->s[sc->pos] == ']')
			break;
		if (sc->s[sc->pos] != ',')
			return JSCAN_BAD;
		sc->pos++;
	}
	sc->pos++;
	return JSCAN_OK;
}

/*
 * Checks the value at sc->pos (blanks skipped); self is its want index
 * (or NOT_WANTED, or ROOT for the top level).  *type gets its type and
 * *escaped whether it is a string holding a backslash.
 */
static int
scan_value(struct scan *sc, int self, enum jscan_type *type, int *escaped)
{
	int r;

	*escaped = 0;
	if (sc->pos >= sc->len)
		return JSCAN_BAD;
	switch (sc->s[sc->pos]) {
	case '{':
	case '[':
		if (sc->depth >= JSCAN_MAX_DEPTH)
			return JSCAN_UNSURE;
		sc->depth++;
		if (sc->s[sc->pos] == '{') {
			*type = JSCAN_OBJECT;
			r = scan_object(sc, self);
		} else {
			*type = JSCAN_ARRAY;
			r = scan_array(sc);
		}
		sc->depth--;
		return r;
	case '"':
		*type = JSCAN_STRING;
		return scan_string(sc, escaped);
	case 't':
		r = scan_literal(sc, "true", JSCAN_TRUE, type);
		break;
	case 'f':
		r = scan_literal(sc, "false", JSCAN_FALSE, type);
		break;
	case 'n':
		r = scan_literal(sc, "null", JSCAN_NULL, type);
		break;
	default:
		if (sc->s[sc->pos] != '-' && !is_digit(sc->s[sc->pos]))
			return JSCAN_BAD;
		r = scan_number(sc, type);
		break;
	}
	/*
	 * jansson reads one byte past a number or a literal and puts it back;
	 * a NUL put back that way is skipped ([1\0] loads).  Let it decide.
	 */
	if (r == JSCAN_OK && sc->pos < sc->len && sc->s[sc->pos] == '\0')
		return JSCAN_UNSURE;
	return r;
}

int
jscan(const void *text, size_t len, const struct jscan_want *want,
    size_t nwant, struct jscan_val *vals, enum jscan_type *topp)
{
	struct scan sc;
	enum jscan_type type;
	size_t i;
	int r, esc;

	if (nwant > JSCAN_MAX_WANT)
		return JSCAN_UNSURE;
	sc.s = text;
	sc.len = len;
	sc.pos = 0;
	sc.depth = 0;
	sc.want = want;
	sc.nwant = nwant;
	sc.vals = vals;
	sc.nkeys = 0;
	for (i = 0; i < nwant; i++)
		memset(&vals[i], 0, sizeof(vals[i]));
	skip_blanks(&sc);
	if (sc.pos >= len || (sc.s[sc.pos] != '{' && sc.s[sc.pos] != '['))
		return JSCAN_BAD;
	if ((r = scan_value(&sc, JSCAN_ROOT, &type, &esc)) != JSCAN_OK)
		return r;
	skip_blanks(&sc);
	if (sc.pos != len)
		return JSCAN_BAD;
	if (topp != NULL)
		*topp = type;
	return JSCAN_OK;
}

int
jscan_str_eq(const void *text, const struct jscan_val *v, const char *s)
{
	const uint8_t *p = (const uint8_t *)text + v->off;

	if (v->type != JSCAN_STRING)
		return 0;
	return body_eq(p + 1, p + v->len - 1, v->escaped, s);
}

size_t
jscan_str_decode(const void *text, const struct jscan_val *v, char *out)
{
	const uint8_t *p = (const uint8_t *)text + v->off + 1;
	const uint8_t *e = (const uint8_t *)text + v->off + v->len - 1;
	size_t n = 0;

	if (!v->escaped) {
		n = (size_t)(e - p);
		memcpy(out, p, n);
	} else
		while (p < e)
			n += decode_one(&p, (uint8_t *)out + n);
	out[n] = '\0';
	return n;
}
