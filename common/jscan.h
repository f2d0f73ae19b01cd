/*
 * A strict, allocation-free JSON scanner for the hot paths.
 *
 * jscan() walks a JSON text once, checks it the way jansson's
 * json_loadb(text, len, JSON_REJECT_DUPLICATES, ...) does (the call behind
 * jrpc_parse) and reports where a few members the caller names lie,
 * without building a tree.  A daemon can then forward a large message as
 * the bytes it received and parse only what it must inspect or edit.
 *
 * The scanner answers JSCAN_OK only for texts jansson accepts and
 * JSCAN_BAD only for texts jansson rejects; when it cannot tell cheaply
 * (nesting deeper than JSCAN_MAX_DEPTH, an object with more than
 * JSCAN_MAX_KEYS members, two keys whose hashes collide, a very long real
 * number) it answers JSCAN_UNSURE, and the caller asks jansson.  Callers
 * take jansson's path for anything but JSCAN_OK, so its error sentences
 * stay the ones agents and logs see.  tests/fuzz/fuzz_jscan.c checks this
 * contract against jansson.
 */
#ifndef MCPTUN_JSCAN_H
#define MCPTUN_JSCAN_H

#include <stddef.h>

#define JSCAN_OK	0
#define JSCAN_BAD	(-1)	/* jansson would reject the text */
#define JSCAN_UNSURE	(-2)	/* cannot tell cheaply: ask jansson */

#define JSCAN_MAX_DEPTH	64	/* nested arrays and objects */
#define JSCAN_MAX_KEYS	64	/* members of one object */
#define JSCAN_MAX_WANT	16	/* members one call can look for */

/* want[].parent of a member of the top-level object. */
#define JSCAN_ROOT	(-1)

enum jscan_type {
	JSCAN_NONE = 0,		/* absent */
	JSCAN_OBJECT,
	JSCAN_ARRAY,
	JSCAN_STRING,
	JSCAN_INTEGER,		/* what jansson stores as an integer */
	JSCAN_REAL,
	JSCAN_TRUE,
	JSCAN_FALSE,
	JSCAN_NULL
};

/*
 * A member to look for: key (ASCII) in the top-level object (parent
 * JSCAN_ROOT) or in the object value of an earlier want (parent is its
 * index), so {"params", ROOT}, {"name", 0} finds params.name.
 */
struct jscan_want {
	const char	*key;
	int		 parent;
};

/* Where a value lies in the text: off and len cover it whole. */
struct jscan_val {
	size_t		 off;
	size_t		 len;		/* strings: with the quotes */
	enum jscan_type	 type;		/* JSCAN_NONE if absent */
	int		 escaped;	/* a string holding a backslash */
};

/*
 * Scans text (len bytes; need not be NUL-terminated) as one JSON text
 * whose top level is an object or an array.  On JSCAN_OK, vals[i] tells
 * where the value of want[i] lies (type JSCAN_NONE if it is absent or a
 * parent is not an object) and *topp, if not NULL, gets the top-level
 * type.  Otherwise returns JSCAN_BAD or JSCAN_UNSURE and leaves vals
 * undefined.  nwant is at most JSCAN_MAX_WANT.  Never reads outside text.
 */
int	jscan(const void *text, size_t len, const struct jscan_want *want,
	    size_t nwant, struct jscan_val *vals, enum jscan_type *topp);

/*
 * Returns 1 if the string value v (from jscan on text) decodes to the C
 * string s, else 0 (also when v is not a string).
 */
int	jscan_str_eq(const void *text, const struct jscan_val *v,
	    const char *s);

/*
 * Decodes the string value v (from jscan on text) into out, which holds
 * at least v->len bytes (a decoded string is never longer than its JSON),
 * adds a NUL and returns the decoded length.
 */
size_t	jscan_str_decode(const void *text, const struct jscan_val *v,
	    char *out);

#endif
