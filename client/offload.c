/*
 * Output offload: large tools/call results stay inside the network (see
 * offload.h for what the agent sees).
 *
 * Design.  A result is handled as a byte stream from its first byte, by
 * an incremental JSON scanner of our own (oscan) that emits events with
 * the path of each value and hands string values over in pieces.  The
 * text of result.content[i].text goes straight to the output file; the
 * small parts (the id, isError, non-text content items, a cut-down
 * structuredContent, other result members) are built into jansson values
 * under a byte budget (obuild).  So memory stays bounded by the budget,
 * whatever the size of the result.  yajl was the first candidate, but
 * its lexer gathers a string that spans chunks into one buffer before
 * its callback sees it (measured: a 50 MB text value took 52 MB of RSS),
 * and a large result is nearly always one large string.
 *
 * The same sink serves both ways in:
 *  - streamed (stdio): when a line being read passes the threshold the
 *    upstream calls the session's on_big hook with the bytes so far; the
 *    session checks with offload_probe() that it is the response to a
 *    pending tools/call (the id comes before "result", which every SDK
 *    writes so), opens a sink and the upstream feeds it the rest of the
 *    line instead of accumulating it.  max_line does not apply then.
 *  - whole (any upstream, e.g. postgres results built in memory under
 *    max_bytes): offload_message() feeds the message to a sink at once.
 * At the end the sink builds the answer for the agent: a summary, a
 * preview (the first lines, at most 4 KiB, cut at a line end or else at
 * a UTF-8 character boundary) and a resource_link to
 * mcptun://offload/<id>, then any non-text items kept; it is checked to
 * stay under the threshold.  Text items are joined with a newline when
 * one does not end with one.
 *
 * The spool: one directory per configured path (default
 * $TMPDIR/mcptun-offload-<uid>), created 0700 and refused when it is not
 * ours, not a directory, a symbolic link, or open to group or others.
 * Files are created with openat() on the directory's descriptor, named
 * <32 random hex digits>.out, O_EXCL|O_NOFOLLOW, mode 0600: an id from an
 * agent is only ever looked up in our table, never used as a path.  The
 * quota (max_total_bytes) is checked as bytes are written: other outputs
 * in the directory are evicted oldest first; a single result larger than
 * the quota is abandoned with a clear error.  One lws timer removes
 * outputs at their TTL; ending a session removes its outputs unless
 * keep_after_session (kept files stay on disk for the operator until the
 * TTL or the quota takes them; no other session can read them: ownership
 * is by session, and session keys are never reused).  Files of an
 * earlier run past their TTL are removed when the directory is first
 * used.  The quota bounds the disk at all times, so a result that turns
 * out larger than the quota has evicted older outputs by the time that
 * is known.
 *
 * Reading: mcptun_read (bytes or lines, via a sparse index of every
 * 1024th line start built while writing), mcptun_grep (POSIX extended
 * regular expressions, grep -n -C style output, long lines windowed) and
 * mcptun_outputs run as jobs answered from a timer; grep scans at most
 * OFFLOAD_GREP_SLICE bytes per loop turn so a 100 MB output never holds
 * up other sessions.  Every answer is capped to stay under the threshold.
 *
 * Single-threaded, on the lws loop; file writes are plain write(2) to a
 * local disk.
 */
#include <sys/queue.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <libwebsockets.h>

#include "client/client.h"
#include "client/client_conf.h"
#include "client/offload.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/jsonrpc.h"
#include "common/log.h"
#include "common/token.h"
#include "common/util.h"
#include "common/xmalloc.h"

#define OFFLOAD_PREVIEW_MAX	4096	/* bytes of preview at most */
#define OFFLOAD_PREVIEW_LINES	40
#define OFFLOAD_LINE_STEP	1024	/* one index entry per this many lines */
#define OFFLOAD_WBUF		65536	/* file write buffer */
#define OFFLOAD_KEEP_MIN	2048	/* budget for small parts: at least */
#define OFFLOAD_KEEP_MAX	(1024 * 1024)	/* ... and at most */
#define OFFLOAD_ID_MAX		1024	/* largest request id accepted */
#define OFFLOAD_READ_DEFAULT	32768	/* mcptun_read length by default */
#define OFFLOAD_LINES_DEFAULT	100	/* ... and line_count */
#define OFFLOAD_GREP_SEG	65536	/* regexec sees lines in pieces of this */
#define OFFLOAD_GREP_SHOW	2048	/* longest line shown whole */
#define OFFLOAD_GREP_CONTEXT	10	/* most context lines */
#define OFFLOAD_GREP_MAX	1000	/* most matches */
#define OFFLOAD_GREP_DEFAULT	20
#define OFFLOAD_GREP_SLICE	(8 * 1024 * 1024)	/* bytes per loop turn */
#define OFFLOAD_DIR_RETRY_MS	10000	/* retry an unusable directory */

/* ---- UTF-8 and small pure helpers --------------------------------------- */

/* Length of the UTF-8 sequence led by c, or 0 if c cannot lead one. */
static size_t
outf8_seqlen(uint8_t c)
{
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return 2;
	if (c >= 0xe0 && c <= 0xef)
		return 3;
	if (c >= 0xf0 && c <= 0xf4)
		return 4;
	return 0;
}

/*
 * Length of the valid UTF-8 sequence at p (n bytes available), or 0 if
 * the bytes there are not one (overlong, surrogate, out of range, cut).
 */
static size_t
outf8_valid(const uint8_t *p, size_t n)
{
	size_t len = outf8_seqlen(p[0]), i;

	if (len == 0 || len > n)
		return 0;
	for (i = 1; i < len; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	if (len == 3 && ((p[0] == 0xe0 && p[1] < 0xa0) ||
	    (p[0] == 0xed && p[1] >= 0xa0)))
		return 0;
	if (len == 4 && ((p[0] == 0xf0 && p[1] < 0x90) ||
	    (p[0] == 0xf4 && p[1] >= 0x90)))
		return 0;
	return len;
}

/* Replaces bytes that are not valid UTF-8 by '?', in place. */
static void
outf8_fix(uint8_t *p, size_t n)
{
	size_t i = 0, k;

	while (i < n) {
		if ((k = outf8_valid(p + i, n - i)) == 0) {
			p[i++] = '?';
			continue;
		}
		i += k;
	}
}

/*
 * The largest m <= n such that p[0..m) does not end inside a multi-byte
 * character (so cutting there never splits one).
 */
static size_t
outf8_cut(const uint8_t *p, size_t n)
{
	size_t i, back, len;

	for (back = 1; back <= 4 && back <= n; back++) {
		i = n - back;
		if ((p[i] & 0xc0) == 0x80)
			continue;		/* a continuation byte */
		len = outf8_seqlen(p[i]);
		return len > back ? i : n;
	}
	return n;
}

/* Bytes to skip at p so that a slice starts on a character (at most 3). */
static size_t
outf8_skip(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n && i < 3 && (p[i] & 0xc0) == 0x80; i++)
		;
	return i;
}

/*
 * How much of the n bytes at p to show as a preview: at most max_lines
 * lines and max_bytes bytes, ending after a newline when a whole line
 * fits, else cut at a character boundary.
 */
static size_t
offload_preview_len(const uint8_t *p, size_t n, size_t max_bytes,
    size_t max_lines)
{
	size_t lim = n < max_bytes ? n : max_bytes, i, lines = 0, last_nl = 0;

	for (i = 0; i < lim; i++) {
		if (p[i] != '\n')
			continue;
		last_nl = i + 1;
		if (++lines >= max_lines)
			return last_nl;
	}
	if (lim == n)
		return n;
	if (last_nl > 0)
		return last_nl;
	return outf8_cut(p, lim);
}

/* 1 if s is exactly OFFLOAD_ID_LEN lowercase hex digits. */
static int
offload_id_valid(const char *s)
{
	size_t i;

	if (strnlen(s, OFFLOAD_ID_LEN + 1) != OFFLOAD_ID_LEN)
		return 0;
	for (i = 0; i < OFFLOAD_ID_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' &&
		    s[i] <= 'f')))
			return 0;
	return 1;
}

/*
 * The output id in s, which may be the id itself or its URI
 * (mcptun://offload/<id>, optionally with "?..." after it); copies it to
 * out and returns 0, or MT_EINVAL.  The query part goes to *queryp.
 */
static int
offload_parse_ref(const char *s, char out[OFFLOAD_ID_LEN + 1],
    const char **queryp)
{
	size_t plen = strlen(OFFLOAD_URI_PREFIX);
	const char *q;

	if (queryp != NULL)
		*queryp = NULL;
	if (strncmp(s, OFFLOAD_URI_PREFIX, plen) == 0)
		s += plen;
	q = strchr(s, '?');
	if ((q != NULL ? (size_t)(q - s) : strlen(s)) != OFFLOAD_ID_LEN)
		return MT_EINVAL;
	memcpy(out, s, OFFLOAD_ID_LEN);
	out[OFFLOAD_ID_LEN] = '\0';
	if (!offload_id_valid(out))
		return MT_EINVAL;
	if (queryp != NULL && q != NULL)
		*queryp = q + 1;
	return 0;
}

/* A JSON string of n bytes at p; bytes that are not UTF-8 become '?'. */
static json_t *
ostr(const void *p, size_t n)
{
	uint8_t *copy;
	json_t *j;

	if ((j = json_stringn(p, n)) != NULL)
		return j;
	copy = xmalloc(n + 1);
	memcpy(copy, p, n);
	outf8_fix(copy, n);
	j = json_stringn((const char *)copy, n);
	free(copy);
	if (j == NULL)
		fatalx("out of memory building a JSON string");
	return j;
}

/* ---- the incremental JSON scanner --------------------------------------- */

#define OSCAN_DEPTH_MAX		1024
#define OSCAN_PATH		6	/* levels whose key and index are kept */
#define OSCAN_PATHKEY		32	/* bytes of a path key kept */
#define OSCAN_KEY_MAX		1024	/* longest key passed on (cut beyond) */
#define OSCAN_NUM_MAX		64
#define OSCAN_SBUF		4096

enum oscan_ev {
	OEV_OBJ, OEV_OBJ_END, OEV_ARR, OEV_ARR_END, OEV_KEY,
	OEV_STR, OEV_STR_DATA, OEV_STR_END, OEV_NUM, OEV_TRUE, OEV_FALSE,
	OEV_NULL
};

enum oscan_state {
	OS_VALUE, OS_OBJ_FIRST, OS_OBJ_KEY, OS_COLON, OS_ARR_FIRST, OS_AFTER,
	OS_STR, OS_ESC, OS_UHEX, OS_NUM, OS_LIT, OS_DONE, OS_ERROR
};

struct oscan;

/*
 * One event.  A value's start (OBJ, ARR, STR, NUM, TRUE, FALSE, NULL) is
 * reported with depth that of the container it sits in (its slot: see
 * lv[depth - 1]); OBJ_END and ARR_END likewise, after the container was
 * left; KEY, STR_DATA and STR_END with the same depth as their start.
 */
typedef void oscan_cb(void *arg, const struct oscan *sc, enum oscan_ev ev,
    const char *p, size_t n);

struct oscan_level {
	int		 obj;		/* object (1) or array (0) */
	uint64_t	 index;		/* array: current element */
	char		 key[OSCAN_PATHKEY + 1];	/* object: current key */
	size_t		 keylen;	/* its full length */
};

struct oscan {
	enum oscan_state	 state;
	size_t			 depth;
	struct oscan_level	 lv[OSCAN_PATH];
	uint8_t			 objbits[OSCAN_DEPTH_MAX / 8];
	int			 in_key;
	char			 key[OSCAN_KEY_MAX + 1];
	size_t			 keylen;	/* bytes in key[] */
	size_t			 keyfull;	/* the key's full length */
	char			 tok[OSCAN_NUM_MAX + 1];
	size_t			 toklen;
	const char		*lit;
	size_t			 litpos;
	enum oscan_ev		 litev;
	uint32_t		 hex;
	int			 nhex;
	uint32_t		 hi;		/* pending high surrogate */
	uint8_t			 sbuf[OSCAN_SBUF];
	size_t			 slen;
	oscan_cb		*cb;
	void			*arg;
	uint64_t		 pos;
	char			 err[128];
};

static void
oscan_init(struct oscan *sc, oscan_cb *cb, void *arg)
{
	memset(sc, 0, sizeof(*sc));
	sc->state = OS_VALUE;
	sc->cb = cb;
	sc->arg = arg;
}

/* 1 if the level-th container (0 = outermost) is an object with key. */
static int
oscan_key_is(const struct oscan *sc, size_t level, const char *key)
{
	size_t n = strlen(key);

	return level < sc->depth && level < OSCAN_PATH &&
	    sc->lv[level].obj && sc->lv[level].keylen == n &&
	    memcmp(sc->lv[level].key, key, n) == 0;
}

/* 1 if the level-th container is an array. */
static int
oscan_is_array(const struct oscan *sc, size_t level)
{
	return level < sc->depth && !(sc->objbits[level / 8] &
	    (1u << (level % 8)));
}

static void
oscan_fail(struct oscan *sc, uint64_t at, const char *what)
{
	if (sc->state == OS_ERROR)
		return;
	snprintf(sc->err, sizeof(sc->err), "%s at byte %llu", what,
	    (unsigned long long)at);
	sc->state = OS_ERROR;
}

static void
oscan_flush(struct oscan *sc)
{
	if (sc->slen > 0) {
		sc->cb(sc->arg, sc, OEV_STR_DATA, (const char *)sc->sbuf,
		    sc->slen);
		sc->slen = 0;
	}
}

/* String bytes: to the key, or buffered for a STR_DATA event. */
static void
oscan_put(struct oscan *sc, const uint8_t *p, size_t n)
{
	size_t room;

	if (sc->in_key) {
		room = OSCAN_KEY_MAX - sc->keylen;
		if (room > n)
			room = n;
		memcpy(sc->key + sc->keylen, p, room);
		sc->keylen += room;
		sc->keyfull += n;
		return;
	}
	if (sc->slen + n > sizeof(sc->sbuf)) {
		oscan_flush(sc);
		if (n > sizeof(sc->sbuf)) {
			sc->cb(sc->arg, sc, OEV_STR_DATA, (const char *)p, n);
			return;
		}
	}
	memcpy(sc->sbuf + sc->slen, p, n);
	sc->slen += n;
}

static void
oscan_put_cp(struct oscan *sc, uint32_t cp)
{
	uint8_t u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (uint8_t)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (uint8_t)(0xc0 | (cp >> 6));
		u[1] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (uint8_t)(0xe0 | (cp >> 12));
		u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (uint8_t)(0xf0 | (cp >> 18));
		u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 4;
	}
	oscan_put(sc, u, n);
}

/* A high surrogate not followed by a low one stands for U+FFFD. */
static void
oscan_hi_flush(struct oscan *sc)
{
	if (sc->hi != 0) {
		sc->hi = 0;
		oscan_put_cp(sc, 0xfffd);
	}
}

static void
oscan_escaped_cp(struct oscan *sc, uint32_t cp)
{
	if (sc->hi != 0) {
		if (cp >= 0xdc00 && cp <= 0xdfff) {
			cp = 0x10000 + ((sc->hi - 0xd800) << 10) +
			    (cp - 0xdc00);
			sc->hi = 0;
			oscan_put_cp(sc, cp);
			return;
		}
		oscan_hi_flush(sc);
	}
	if (cp >= 0xd800 && cp <= 0xdbff)
		sc->hi = cp;
	else if (cp >= 0xdc00 && cp <= 0xdfff)
		oscan_put_cp(sc, 0xfffd);
	else
		oscan_put_cp(sc, cp);
}

static void
oscan_after(struct oscan *sc)
{
	sc->state = sc->depth == 0 ? OS_DONE : OS_AFTER;
}

static int
oscan_push(struct oscan *sc, int obj, uint64_t at)
{
	struct oscan_level *l;

	if (sc->depth >= OSCAN_DEPTH_MAX) {
		oscan_fail(sc, at, "nested too deeply");
		return -1;
	}
	if (obj)
		sc->objbits[sc->depth / 8] |= (uint8_t)(1u << (sc->depth % 8));
	else
		sc->objbits[sc->depth / 8] &= (uint8_t)~(1u << (sc->depth % 8));
	if (sc->depth < OSCAN_PATH) {
		l = &sc->lv[sc->depth];
		l->obj = obj;
		l->index = 0;
		l->key[0] = '\0';
		l->keylen = 0;
	}
	sc->depth++;
	return 0;
}

static void
oscan_end_container(struct oscan *sc, enum oscan_ev ev)
{
	sc->depth--;
	sc->cb(sc->arg, sc, ev, NULL, 0);
	oscan_after(sc);
}

static void
oscan_str_end(struct oscan *sc)
{
	struct oscan_level *l;
	size_t n;

	if (!sc->in_key) {
		oscan_flush(sc);
		sc->cb(sc->arg, sc, OEV_STR_END, NULL, 0);
		oscan_after(sc);
		return;
	}
	sc->in_key = 0;
	sc->key[sc->keylen] = '\0';
	if (sc->depth - 1 < OSCAN_PATH) {
		l = &sc->lv[sc->depth - 1];
		n = sc->keylen < OSCAN_PATHKEY ? sc->keylen : OSCAN_PATHKEY;
		memcpy(l->key, sc->key, n);
		l->key[n] = '\0';
		l->keylen = sc->keyfull;
	}
	sc->cb(sc->arg, sc, OEV_KEY, sc->key, sc->keylen);
	sc->state = OS_COLON;
}

/* 1 if the n bytes at s are a JSON number. */
static int
oscan_num_ok(const char *s, size_t n)
{
	size_t i = 0;

#define ODIGIT(c)	((c) >= '0' && (c) <= '9')
	if (i < n && s[i] == '-')
		i++;
	if (i >= n)
		return 0;
	if (s[i] == '0')
		i++;
	else if (s[i] >= '1' && s[i] <= '9')
		while (i < n && ODIGIT(s[i]))
			i++;
	else
		return 0;
	if (i < n && s[i] == '.') {
		if (++i >= n || !ODIGIT(s[i]))
			return 0;
		while (i < n && ODIGIT(s[i]))
			i++;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		if (++i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i >= n || !ODIGIT(s[i]))
			return 0;
		while (i < n && ODIGIT(s[i]))
			i++;
	}
#undef ODIGIT
	return i == n;
}

static void
oscan_num_end(struct oscan *sc, uint64_t at)
{
	if (!oscan_num_ok(sc->tok, sc->toklen)) {
		oscan_fail(sc, at, "malformed number");
		return;
	}
	sc->tok[sc->toklen] = '\0';
	sc->cb(sc->arg, sc, OEV_NUM, sc->tok, sc->toklen);
	oscan_after(sc);
}

/* A value starts with c. */
static void
oscan_value(struct oscan *sc, uint8_t c, uint64_t at)
{
	switch (c) {
	case '{':
		sc->cb(sc->arg, sc, OEV_OBJ, NULL, 0);
		if (oscan_push(sc, 1, at) == 0)
			sc->state = OS_OBJ_FIRST;
		return;
	case '[':
		sc->cb(sc->arg, sc, OEV_ARR, NULL, 0);
		if (oscan_push(sc, 0, at) == 0)
			sc->state = OS_ARR_FIRST;
		return;
	case '"':
		sc->cb(sc->arg, sc, OEV_STR, NULL, 0);
		sc->in_key = 0;
		sc->state = OS_STR;
		return;
	case 't':
		sc->lit = "true";
		sc->litev = OEV_TRUE;
		break;
	case 'f':
		sc->lit = "false";
		sc->litev = OEV_FALSE;
		break;
	case 'n':
		sc->lit = "null";
		sc->litev = OEV_NULL;
		break;
	default:
		if (c == '-' || (c >= '0' && c <= '9')) {
			sc->tok[0] = (char)c;
			sc->toklen = 1;
			sc->state = OS_NUM;
			return;
		}
		oscan_fail(sc, at, "unexpected character");
		return;
	}
	sc->litpos = 1;
	sc->state = OS_LIT;
}

static void
oscan_key_start(struct oscan *sc)
{
	sc->in_key = 1;
	sc->keylen = 0;
	sc->keyfull = 0;
	sc->state = OS_STR;
}

/* Scans n more bytes.  Returns 0, or MT_EMALFORMED (see sc->err). */
static int
oscan_feed(struct oscan *sc, const uint8_t *p, size_t n)
{
	size_t i = 0, j;
	uint8_t c;
	int v;

	while (i < n && sc->state != OS_ERROR) {
		c = p[i];
		switch (sc->state) {
		case OS_STR:
			for (j = i; j < n && p[j] >= 0x20 && p[j] != '"' &&
			    p[j] != '\\'; j++)
				;
			if (j > i) {
				oscan_hi_flush(sc);
				oscan_put(sc, p + i, j - i);
				i = j;
			} else if (c == '"') {
				oscan_hi_flush(sc);
				oscan_str_end(sc);
				i++;
			} else if (c == '\\') {
				sc->state = OS_ESC;
				i++;
			} else
				oscan_fail(sc, sc->pos + i,
				    "control character in a string");
			continue;
		case OS_ESC:
			i++;
			if (c == 'u') {
				sc->nhex = 0;
				sc->hex = 0;
				sc->state = OS_UHEX;
				continue;
			}
			oscan_hi_flush(sc);
			switch (c) {
			case '"': case '\\': case '/':
				break;
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'n': c = '\n'; break;
			case 'r': c = '\r'; break;
			case 't': c = '\t'; break;
			default:
				oscan_fail(sc, sc->pos + i - 1, "bad escape");
				continue;
			}
			oscan_put(sc, &c, 1);
			sc->state = OS_STR;
			continue;
		case OS_UHEX:
			if ((v = hex_digit(c)) < 0) {
				oscan_fail(sc, sc->pos + i, "bad \\u escape");
				continue;
			}
			i++;
			sc->hex = (sc->hex << 4) | (uint32_t)v;
			if (++sc->nhex == 4) {
				oscan_escaped_cp(sc, sc->hex);
				sc->state = OS_STR;
			}
			continue;
		case OS_NUM:
			if ((c >= '0' && c <= '9') || c == '.' || c == 'e' ||
			    c == 'E' || c == '+' || c == '-') {
				if (sc->toklen >= OSCAN_NUM_MAX)
					oscan_fail(sc, sc->pos + i,
					    "number too long");
				else
					sc->tok[sc->toklen++] = (char)c;
				i++;
				continue;
			}
			oscan_num_end(sc, sc->pos + i);
			continue;	/* c again, in the new state */
		case OS_LIT:
			if (c != (uint8_t)sc->lit[sc->litpos]) {
				oscan_fail(sc, sc->pos + i, "bad literal");
				continue;
			}
			i++;
			if (sc->lit[++sc->litpos] == '\0') {
				sc->cb(sc->arg, sc, sc->litev, sc->lit,
				    sc->litpos);
				oscan_after(sc);
			}
			continue;
		default:
			break;
		}
		if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
			i++;
			continue;
		}
		switch (sc->state) {
		case OS_VALUE:
			oscan_value(sc, c, sc->pos + i);
			break;
		case OS_OBJ_FIRST:
		case OS_OBJ_KEY:
			if (c == '"')
				oscan_key_start(sc);
			else if (c == '}' && sc->state == OS_OBJ_FIRST)
				oscan_end_container(sc, OEV_OBJ_END);
			else
				oscan_fail(sc, sc->pos + i, "expected a key");
			break;
		case OS_COLON:
			if (c == ':')
				sc->state = OS_VALUE;
			else
				oscan_fail(sc, sc->pos + i, "expected ':'");
			break;
		case OS_ARR_FIRST:
			if (c == ']') {
				oscan_end_container(sc, OEV_ARR_END);
				break;
			}
			sc->state = OS_VALUE;
			continue;	/* c starts the first element */
		case OS_AFTER:
			if (!oscan_is_array(sc, sc->depth - 1)) {
				if (c == ',')
					sc->state = OS_OBJ_KEY;
				else if (c == '}')
					oscan_end_container(sc, OEV_OBJ_END);
				else
					oscan_fail(sc, sc->pos + i,
					    "expected ',' or '}'");
			} else {
				if (c == ',') {
					if (sc->depth - 1 < OSCAN_PATH)
						sc->lv[sc->depth - 1].index++;
					sc->state = OS_VALUE;
				} else if (c == ']')
					oscan_end_container(sc, OEV_ARR_END);
				else
					oscan_fail(sc, sc->pos + i,
					    "expected ',' or ']'");
			}
			break;
		case OS_DONE:
			oscan_fail(sc, sc->pos + i, "data after the end");
			break;
		default:
			break;
		}
		i++;
	}
	if (sc->state != OS_ERROR && !sc->in_key)
		oscan_flush(sc);
	sc->pos += n;
	return sc->state == OS_ERROR ? MT_EMALFORMED : 0;
}

/* The input ended.  Returns 0 if it held one whole value. */
static int
oscan_finish(struct oscan *sc)
{
	if (sc->state == OS_NUM && sc->depth == 0)
		oscan_num_end(sc, sc->pos);
	if (sc->state == OS_DONE)
		return 0;
	if (sc->state != OS_ERROR)
		oscan_fail(sc, sc->pos, "message cut off");
	return MT_EMALFORMED;
}

/* ---- building small values from scanner events -------------------------- */

enum obuild_mode {
	OB_WHOLE,	/* all or nothing: past the budget, nothing */
	OB_SHRINK	/* past the budget, arrays end and strings empty */
};

struct obuild {
	int		 active;
	enum obuild_mode mode;
	size_t		 base;		/* scanner depth of the value's slot */
	size_t		 budget, used;
	int		 over;		/* OB_WHOLE: given up */
	int		 shrunk;	/* OB_SHRINK: something left out */
	json_t		**stack;	/* containers being read */
	char		**keys;		/* ... the member key, for objects */
	size_t		 sp, cap;
	struct buf	 str;		/* string value being read */
	int		 str_on;
	int		 str_cut;	/* ... ignoring the rest of it */
	int		 skipping;	/* ignoring a value */
	size_t		 skip_base;	/* ... whose slot is at this depth */
	json_t		*value;		/* the result, once done */
	int		 done;
};

static void
obuild_reset(struct obuild *b)
{
	size_t i;

	for (i = 0; i < b->sp; i++) {
		json_decref(b->stack[i]);
		free(b->keys[i]);
	}
	free(b->stack);
	free(b->keys);
	buf_free(&b->str);
	json_decref(b->value);
	memset(b, 0, sizeof(*b));
}

static void
obuild_begin(struct obuild *b, enum obuild_mode mode, size_t budget,
    size_t base)
{
	obuild_reset(b);
	b->active = 1;
	b->mode = mode;
	b->budget = budget;
	b->base = base;
	buf_init(&b->str, 0);
}

/* OB_WHOLE past its budget: drop everything, wait for the value's end. */
static void
obuild_giveup(struct obuild *b)
{
	size_t i;

	for (i = 0; i < b->sp; i++) {
		json_decref(b->stack[i]);
		free(b->keys[i]);
	}
	b->sp = 0;
	b->over = 1;
	b->str_on = 0;
	b->skipping = 1;
	b->skip_base = b->base;
}

/* A finished value v whose slot is at depth d. */
static void
obuild_attach(struct obuild *b, json_t *v, size_t d)
{
	json_t *parent;

	if (d == b->base || b->sp == 0) {
		b->value = v;
		b->done = 1;
		return;
	}
	parent = b->stack[b->sp - 1];
	if (json_is_object(parent)) {
		json_object_set_new(parent, b->keys[b->sp - 1] != NULL ?
		    b->keys[b->sp - 1] : "", v);
		free(b->keys[b->sp - 1]);
		b->keys[b->sp - 1] = NULL;
	} else
		json_array_append_new(parent, v);
}

static json_t *
obuild_number(const char *p, size_t n)
{
	char tok[OSCAN_NUM_MAX + 1], *end;
	long long ll;
	json_t *v;

	memcpy(tok, p, n);
	tok[n] = '\0';
	if (strpbrk(tok, ".eE") == NULL) {
		errno = 0;
		ll = strtoll(tok, &end, 10);
		if (errno == 0 && *end == '\0')
			return json_integer(ll);
	}
	/*
	 * A real out of range (1e999) is infinite, which jansson cannot
	 * hold: null, as JSON.stringify writes it, rather than no value.
	 */
	return (v = json_real(strtod(tok, NULL))) != NULL ? v : json_null();
}

/* A value starts at slot depth d. */
static void
obuild_value(struct obuild *b, enum oscan_ev ev, size_t d, const char *p,
    size_t n)
{
	json_t *parent = b->sp > 0 ? b->stack[b->sp - 1] : NULL, *v;
	int cut = 0;

	if (b->mode == OB_SHRINK && parent != NULL && b->used > b->budget) {
		if (json_is_array(parent) || b->used > 2 * b->budget) {
			b->shrunk = 1;
			if (json_is_object(parent)) {
				free(b->keys[b->sp - 1]);
				b->keys[b->sp - 1] = NULL;
			}
			if (ev == OEV_OBJ || ev == OEV_ARR || ev == OEV_STR) {
				b->skipping = 1;
				b->skip_base = d;
			}
			return;
		}
		cut = 1;	/* an object member: kept, but empty */
	}
	switch (ev) {
	case OEV_OBJ:
	case OEV_ARR:
		if (b->sp == b->cap) {
			b->cap = b->cap ? b->cap * 2 : 8;
			b->stack = xrealloc(b->stack, b->cap * sizeof(*b->stack));
			b->keys = xrealloc(b->keys, b->cap * sizeof(*b->keys));
		}
		b->stack[b->sp] = ev == OEV_OBJ ? json_object() : json_array();
		b->keys[b->sp] = NULL;
		b->sp++;
		b->used += 2;
		return;
	case OEV_STR:
		b->str_on = 1;
		b->str_cut = cut;
		b->shrunk |= cut;
		buf_reset(&b->str);
		b->used += 2;
		return;
	case OEV_NUM:
		v = obuild_number(p, n);
		break;
	case OEV_TRUE:
		v = json_true();
		break;
	case OEV_FALSE:
		v = json_false();
		break;
	default:
		v = json_null();
		break;
	}
	b->used += n + 1;
	obuild_attach(b, v, d);
}

static void
obuild_event(struct obuild *b, const struct oscan *sc, enum oscan_ev ev,
    const char *p, size_t n)
{
	size_t d = sc->depth, room;
	json_t *v;

	if (b->skipping) {
		if ((ev == OEV_OBJ_END || ev == OEV_ARR_END ||
		    ev == OEV_STR_END) && d == b->skip_base) {
			b->skipping = 0;
			if (b->over) {
				b->value = NULL;
				b->done = 1;
			}
		}
		return;
	}
	switch (ev) {
	case OEV_KEY:
		if (b->sp > 0) {
			free(b->keys[b->sp - 1]);
			b->keys[b->sp - 1] = xstrndup(p, n);
		}
		b->used += n + 3;
		break;
	case OEV_STR_DATA:
		if (!b->str_on || b->str_cut)
			break;
		if (b->used + n > b->budget) {
			if (b->mode == OB_WHOLE) {
				obuild_giveup(b);
				return;
			}
			room = b->budget > b->used ? b->budget - b->used : 0;
			(void)buf_append(&b->str, p, room);
			b->used += room;
			b->str_cut = 1;
			b->shrunk = 1;
			break;
		}
		(void)buf_append(&b->str, p, n);
		b->used += n;
		break;
	case OEV_STR_END:
		if (!b->str_on)
			break;
		b->str_on = 0;
		room = buf_len(&b->str);
		if (b->str_cut && room > 0)	/* an empty buf has no data */
			room = outf8_cut(buf_ptr(&b->str), room);
		v = ostr(buf_len(&b->str) > 0 ? buf_ptr(&b->str) :
		    (const uint8_t *)"", room);
		buf_reset(&b->str);
		obuild_attach(b, v, d);
		break;
	case OEV_OBJ_END:
	case OEV_ARR_END:
		if (b->sp == 0)
			break;
		v = b->stack[--b->sp];
		free(b->keys[b->sp]);
		obuild_attach(b, v, d);
		break;
	default:
		obuild_value(b, ev, d, p, n);
		break;
	}
	if (b->mode == OB_WHOLE && b->used > b->budget && !b->done)
		obuild_giveup(b);
}

/* Takes the built value (NULL if given up); the builder is idle again. */
static json_t *
obuild_take(struct obuild *b)
{
	json_t *v = b->value;

	b->value = NULL;
	obuild_reset(b);
	return v;
}

/* ---- the spool ----------------------------------------------------------- */

struct odir {
	TAILQ_ENTRY(odir)	 entry;
	char			*path;
	int			 fd;		/* -1: not usable now */
	uint64_t		 failed_ms;	/* when it was last refused */
	uint64_t		 total;		/* bytes of outputs in it */
	int			 cleaned;	/* stale files removed */
};

struct oentry {
	TAILQ_ENTRY(oentry)	 entry;		/* all outputs, oldest first */
	char			 id[OFFLOAD_ID_LEN + 1];
	struct odir		*dir;
	uint64_t		 owner;
	char			*agent;
	char			*server;
	char			*tool;
	uint64_t		 size;
	uint64_t		 newlines;
	uint64_t		*index;		/* start of every STEPth line */
	size_t			 nindex, capindex;
	uint64_t		 created_ms;
	uint64_t		 ttl_ms;	/* 0 = none */
	uint64_t		 expires_ms;	/* 0 = writing, or no TTL */
	uint64_t		 quota;
	uint64_t		 msg_bytes;	/* the response it stands for */
	int			 keep;
	int			 writing;
	int			 fd;		/* while writing */
	uint8_t			*wbuf;
	size_t			 wlen;
	uint8_t			 head[OFFLOAD_PREVIEW_MAX];
	size_t			 headlen;
	uint8_t			 last;		/* last byte written */
	uint8_t			 first;		/* first non-blank byte, 0 none */
	const char		*mime;
};

static TAILQ_HEAD(, odir) odirs = TAILQ_HEAD_INITIALIZER(odirs);
static TAILQ_HEAD(, oentry) oentries = TAILQ_HEAD_INITIALIZER(oentries);
static lws_sorted_usec_list_t osweep_sul;
static uint64_t oowner_next;

static void offload_sweep_arm(void);

size_t
offload_threshold(const struct offload_conf *oc)
{
	if (oc == NULL || oc->threshold_tokens <= 0)
		return 0;
	if ((uint64_t)oc->threshold_tokens > SIZE_MAX / 4)
		return SIZE_MAX;
	return (size_t)oc->threshold_tokens * 4;
}

uint64_t
offload_owner_key(void)
{
	return ++oowner_next;
}

/* Removes files of an earlier run that are past ttl_ms. */
static void
odir_clean(struct odir *d, uint64_t ttl_ms)
{
	char name[OFFLOAD_ID_LEN + 8];
	struct dirent *de;
	struct stat st;
	uint64_t now = now_wall_ms();
	DIR *dp;
	int fd;

	d->cleaned = 1;
	if (ttl_ms == 0 || (fd = dup(d->fd)) < 0)
		return;
	if ((dp = fdopendir(fd)) == NULL) {
		close(fd);
		return;
	}
	rewinddir(dp);
	while ((de = readdir(dp)) != NULL) {
		if (strlen(de->d_name) != OFFLOAD_ID_LEN + 4 ||
		    strcmp(de->d_name + OFFLOAD_ID_LEN, ".out") != 0)
			continue;
		memcpy(name, de->d_name, OFFLOAD_ID_LEN);
		name[OFFLOAD_ID_LEN] = '\0';
		if (!offload_id_valid(name) ||
		    fstatat(d->fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		if ((uint64_t)st.st_mtime * 1000 + ttl_ms < now &&
		    unlinkat(d->fd, de->d_name, 0) == 0)
			log_info("offload: removed %s/%s left by an earlier run",
			    d->path, de->d_name);
	}
	closedir(dp);
}

/*
 * Opens (creating it 0700 if missing) the spool directory at path and
 * checks that it is ours alone.  Returns the descriptor, or -1 with a
 * sentence in why.
 */
static int
odir_open(const char *path, char *why, size_t whylen)
{
	struct stat st;
	int fd;

	if (mkdir(path, 0700) != 0 && errno != EEXIST) {
		snprintf(why, whylen, "cannot create it: %s", strerror(errno));
		return -1;
	}
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ELOOP || (errno == ENOTDIR && lstat(path, &st) ==
		    0 && S_ISLNK(st.st_mode)))
			snprintf(why, whylen, "it is a symbolic link");
		else
			snprintf(why, whylen, "%s", errno == ENOTDIR ?
			    "it is not a directory" : strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0) {
		snprintf(why, whylen, "%s", strerror(errno));
		goto bad;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(why, whylen, "it is not a directory");
		goto bad;
	}
	if (st.st_uid != geteuid()) {
		snprintf(why, whylen, "it is owned by uid %u, not by this "
		    "process (uid %u)", (unsigned)st.st_uid,
		    (unsigned)geteuid());
		goto bad;
	}
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		snprintf(why, whylen, "group or others may use it (mode "
		    "%04o); it must be 0700", (unsigned)(st.st_mode & 07777));
		goto bad;
	}
	return fd;
 bad:
	close(fd);
	return -1;
}

/* The spool directory of oc, usable, or NULL (logged). */
static struct odir *
odir_get(const struct offload_conf *oc)
{
	char defpath[256], why[160];
	const char *path = oc->dir, *tmp;
	struct odir *d;
	uint64_t now = now_ms();

	if (path == NULL || *path == '\0') {
		if ((tmp = getenv("TMPDIR")) == NULL || *tmp != '/')
			tmp = "/tmp";
		snprintf(defpath, sizeof(defpath), "%s/mcptun-offload-%u", tmp,
		    (unsigned)geteuid());
		path = defpath;
	}
	TAILQ_FOREACH(d, &odirs, entry)
		if (strcmp(d->path, path) == 0)
			break;
	if (d == NULL) {
		d = xcalloc(1, sizeof(*d));
		d->path = xstrdup(path);
		d->fd = -1;
		TAILQ_INSERT_TAIL(&odirs, d, entry);
	}
	if (d->fd >= 0)
		return d;
	if (d->failed_ms != 0 && now - d->failed_ms < OFFLOAD_DIR_RETRY_MS)
		return NULL;
	if ((d->fd = odir_open(path, why, sizeof(why))) < 0) {
		d->failed_ms = now;
		log_warnx("offload: spool directory %s refused: %s; large "
		    "results are not offloaded", path, why);
		return NULL;
	}
	d->failed_ms = 0;
	if (!d->cleaned)
		odir_clean(d, oc->ttl_ms);
	return d;
}

static struct oentry *
oentry_find(uint64_t owner, const char *agent, const char *id)
{
	struct oentry *e;

	TAILQ_FOREACH(e, &oentries, entry)
		if (strcmp(e->id, id) == 0)
			break;
	/* Another session's output is "not found", like no output. */
	if (e == NULL || e->writing || e->owner != owner ||
	    strcmp(e->agent, agent != NULL ? agent : "") != 0)
		return NULL;
	return e;
}

static void
oentry_free(struct oentry *e)
{
	free(e->agent);
	free(e->server);
	free(e->tool);
	free(e->index);
	free(e->wbuf);
	free(e);
}

/* Deletes e's file and forgets it. */
static void
oentry_remove(struct oentry *e, const char *why)
{
	char name[OFFLOAD_ID_LEN + 8];

	snprintf(name, sizeof(name), "%s.out", e->id);
	if (e->fd >= 0)
		close(e->fd);
	if (e->dir->fd >= 0 && unlinkat(e->dir->fd, name, 0) != 0 &&
	    errno != ENOENT)
		log_warn("offload: removing %s/%s", e->dir->path, name);
	if (why != NULL)
		log_info("offload: output %s (%llu bytes, tool %s) removed: %s",
		    e->id, (unsigned long long)e->size, e->tool, why);
	e->dir->total -= e->size;
	TAILQ_REMOVE(&oentries, e, entry);
	oentry_free(e);
}

/*
 * Makes room for n more bytes of e within its quota, evicting the oldest
 * other outputs in its directory.  Returns 0 or MT_ETOOBIG (e alone is
 * larger than the quota).
 */
static int
oentry_room(struct oentry *e, uint64_t n)
{
	struct oentry *o, *next;

	if (e->size + n > e->quota)
		return MT_ETOOBIG;
	for (o = TAILQ_FIRST(&oentries); o != NULL &&
	    e->dir->total + n > e->quota; o = next) {
		next = TAILQ_NEXT(o, entry);
		if (o == e || o->dir != e->dir || o->writing)
			continue;
		oentry_remove(o, "the spool quota needed room");
	}
	return e->dir->total + n > e->quota ? MT_ETOOBIG : 0;
}

/* A new output for who, open for writing; NULL if the spool is unusable. */
static struct oentry *
oentry_new(const struct offload_conf *oc, const struct offload_owner *who,
    const char *tool)
{
	char name[OFFLOAD_ID_LEN + 8];
	struct oentry *e;
	struct odir *d;
	int tries;

	if ((d = odir_get(oc)) == NULL)
		return NULL;
	e = xcalloc(1, sizeof(*e));
	e->dir = d;
	e->fd = -1;
	for (tries = 0; tries < 4 && e->fd < 0; tries++) {
		if (rand_hex_id(e->id, OFFLOAD_ID_LEN / 2) != 0)
			break;
		snprintf(name, sizeof(name), "%s.out", e->id);
		e->fd = openat(d->fd, name, O_WRONLY | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC, 0600);
		if (e->fd < 0 && errno != EEXIST)
			break;
	}
	if (e->fd < 0) {
		log_warn("offload: cannot create an output in %s", d->path);
		free(e);
		return NULL;
	}
	e->owner = who->key;
	e->agent = xstrdup(who->agent != NULL ? who->agent : "");
	e->server = xstrdup(who->server != NULL ? who->server : "");
	e->tool = xstrdup(tool != NULL ? tool : "");
	e->quota = oc->max_total_bytes;
	e->ttl_ms = oc->ttl_ms;
	e->keep = oc->keep_after_session > 0;
	e->writing = 1;
	e->created_ms = now_ms();
	e->wbuf = xmalloc(OFFLOAD_WBUF);
	e->capindex = 16;
	e->index = xcalloc(e->capindex, sizeof(*e->index));
	e->index[e->nindex++] = 0;
	TAILQ_INSERT_TAIL(&oentries, e, entry);
	return e;
}

/* Adds the line starts in p (n bytes at file offset base) to e's index. */
static void
oentry_index(struct oentry *e, const uint8_t *p, size_t n, uint64_t base)
{
	const uint8_t *s = p, *nl;

	while ((nl = memchr(s, '\n', n - (size_t)(s - p))) != NULL) {
		if (++e->newlines % OFFLOAD_LINE_STEP == 0) {
			if (e->nindex == e->capindex) {
				e->capindex *= 2;
				e->index = xrealloc(e->index, e->capindex *
				    sizeof(*e->index));
			}
			e->index[e->nindex++] = base + (uint64_t)(nl - p) + 1;
		}
		s = nl + 1;
	}
}

static int
oentry_flush(struct oentry *e)
{
	size_t off = 0;
	ssize_t w;

	while (off < e->wlen) {
		w = write(e->fd, e->wbuf + off, e->wlen - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			log_warn("offload: writing %s/%s.out", e->dir->path,
			    e->id);
			return MT_EIO;
		}
		off += (size_t)w;
	}
	e->wlen = 0;
	return 0;
}

/* Appends n bytes of text to e.  Returns 0, MT_ETOOBIG or MT_EIO. */
static int
oentry_write(struct oentry *e, const uint8_t *p, size_t n)
{
	size_t i, k;
	int r;

	if (n == 0)
		return 0;
	if ((r = oentry_room(e, n)) != 0)
		return r;
	if (e->headlen < sizeof(e->head)) {
		k = sizeof(e->head) - e->headlen;
		if (k > n)
			k = n;
		memcpy(e->head + e->headlen, p, k);
		e->headlen += k;
	}
	for (i = 0; e->first == 0 && i < n; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\n' &&
		    p[i] != '\r')
			e->first = p[i];
	oentry_index(e, p, n, e->size);
	e->size += n;
	e->dir->total += n;
	e->last = p[n - 1];
	while (n > 0) {
		k = OFFLOAD_WBUF - e->wlen;
		if (k > n)
			k = n;
		memcpy(e->wbuf + e->wlen, p, k);
		e->wlen += k;
		p += k;
		n -= k;
		if (e->wlen == OFFLOAD_WBUF && (r = oentry_flush(e)) != 0)
			return r;
	}
	return 0;
}

/* Writing ended well: the output becomes readable.  0 or MT_EIO. */
static int
oentry_done(struct oentry *e)
{
	int r;

	if ((r = oentry_flush(e)) != 0)
		return r;
	close(e->fd);
	e->fd = -1;
	free(e->wbuf);
	e->wbuf = NULL;
	e->writing = 0;
	e->mime = e->first == '{' || e->first == '[' ? "application/json" :
	    "text/plain";
	e->expires_ms = e->ttl_ms > 0 ? now_ms() + e->ttl_ms : 0;
	offload_sweep_arm();
	return 0;
}

/* Lines in e: newlines, plus one for a last line without one. */
static uint64_t
oentry_lines(const struct oentry *e)
{
	return e->newlines + (e->size > 0 && e->last != '\n' ? 1 : 0);
}

static void
offload_sweep(lws_sorted_usec_list_t *sul)
{
	struct oentry *e, *next;
	uint64_t now = now_ms();

	for (e = TAILQ_FIRST(&oentries); e != NULL; e = next) {
		next = TAILQ_NEXT(e, entry);
		if (e->expires_ms != 0 && e->expires_ms <= now)
			oentry_remove(e, "its TTL passed");
	}
	offload_sweep_arm();
}

static void
offload_sweep_arm(void)
{
	struct lws_context *ctx = client_context();
	const struct oentry *e;
	uint64_t next = 0, now = now_ms();

	if (ctx == NULL)
		return;
	TAILQ_FOREACH(e, &oentries, entry)
		if (e->expires_ms != 0 && (next == 0 || e->expires_ms < next))
			next = e->expires_ms;
	if (next == 0) {
		lws_sul_cancel(&osweep_sul);
		return;
	}
	lws_sul_schedule(ctx, 0, &osweep_sul, offload_sweep,
	    (lws_usec_t)(next > now ? next - now : 0) * LWS_US_PER_MS);
}

void
offload_discard(uint64_t key, const char *id)
{
	struct oentry *e;

	TAILQ_FOREACH(e, &oentries, entry)
		if (e->owner == key && strcmp(e->id, id) == 0) {
			oentry_remove(e, "its answer could not be delivered");
			return;
		}
}

/* ---- the sink: a result, as it arrives ----------------------------------- */

enum osink_where {
	OW_NONE, OW_ID, OW_ISERROR, OW_STRUCT, OW_EXTRA, OW_ITEMKEY
};

struct offload_sink {
	struct oscan		 sc;
	struct obuild		 b;
	enum osink_where	 where;		/* what b is building */
	char			*bkey;		/* ... under which key */
	struct oentry		*e;
	size_t			 threshold;
	size_t			 keep_max;	/* budget for small parts */
	size_t			 kept_used;
	char			*tool;
	char			*server;
	uint64_t		 bytes;		/* of the message */
	json_t			*id;
	int			 is_error;
	json_t			*item;		/* content item being read */
	int			 item_text;	/* ... it had text */
	int			 in_text;	/* in a text member's string */
	unsigned		 text_items;
	json_t			*kept;		/* non-text items kept */
	unsigned		 dropped;	/* ... and dropped (too big) */
	json_t			*structured;
	int			 struct_cut;
	json_t			*extra;		/* other result members */
	unsigned		 extra_dropped;
	int			 not_result;	/* "error" or "method" seen */
	int			 failed;	/* stopped storing (why) */
	char			 why[256];
	offload_done_cb		*done;
	void			*arg;
};

static void
osink_fail(struct offload_sink *k, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
osink_fail(struct offload_sink *k, const char *fmt, ...)
{
	va_list ap;

	if (k->failed)
		return;
	k->failed = 1;
	va_start(ap, fmt);
	vsnprintf(k->why, sizeof(k->why), fmt, ap);
	va_end(ap);
}

static void
osink_text(struct offload_sink *k, const void *p, size_t n)
{
	int r;

	if (k->failed)
		return;
	if ((r = oentry_write(k->e, p, n)) == MT_ETOOBIG)
		osink_fail(k, "the result of tool %s (more than %llu bytes) is "
		    "larger than the offload quota (%llu bytes), so it was not "
		    "stored", k->tool, (unsigned long long)k->e->size,
		    (unsigned long long)k->e->quota);
	else if (r != 0)
		osink_fail(k, "the result of tool %s could not be stored "
		    "(write error on the client)", k->tool);
}

/* The value b finished building goes where it was meant to. */
static void
osink_built(struct offload_sink *k)
{
	json_t *v;
	int shrunk = k->b.shrunk;
	size_t used = k->b.used;

	v = obuild_take(&k->b);
	switch (k->where) {
	case OW_ID:
		if (json_is_string(v) || json_is_integer(v)) {
			json_decref(k->id);
			k->id = v;
			v = NULL;
		}
		break;
	case OW_ISERROR:
		k->is_error = json_is_true(v);
		break;
	case OW_STRUCT:
		if (v != NULL) {
			json_decref(k->structured);
			k->structured = v;
			v = NULL;
			k->struct_cut = shrunk;
		}
		break;
	case OW_EXTRA:
		if (v == NULL)
			k->extra_dropped++;
		else {
			if (k->extra == NULL)
				k->extra = json_object();
			json_object_set_new(k->extra, k->bkey, v);
			k->kept_used += used;
			v = NULL;
		}
		break;
	case OW_ITEMKEY:
		if (v == NULL) {
			/* Too big to keep: the item goes. */
			json_decref(k->item);
			k->item = NULL;
		} else if (k->item != NULL) {
			json_object_set_new(k->item, k->bkey, v);
			k->kept_used += used;
			v = NULL;
		}
		break;
	default:
		break;
	}
	json_decref(v);
	free(k->bkey);
	k->bkey = NULL;
	k->where = OW_NONE;
}

static void
osink_build(struct offload_sink *k, enum osink_where where,
    enum obuild_mode mode, size_t budget, const struct oscan *sc,
    enum oscan_ev ev, const char *p, size_t n)
{
	obuild_begin(&k->b, mode, budget, sc->depth);
	k->where = where;
	free(k->bkey);
	k->bkey = where == OW_EXTRA || where == OW_ITEMKEY ?
	    xstrndup(sc->key, sc->keylen) : NULL;
	obuild_event(&k->b, sc, ev, p, n);
	if (k->b.done)
		osink_built(k);
}

static size_t
osink_room(const struct offload_sink *k)
{
	return k->kept_used < k->keep_max ? k->keep_max - k->kept_used : 0;
}

static void
osink_event(void *arg, const struct oscan *sc, enum oscan_ev ev,
    const char *p, size_t n)
{
	struct offload_sink *k = arg;
	size_t d = sc->depth;
	int start = ev == OEV_OBJ || ev == OEV_ARR || ev == OEV_STR ||
	    ev == OEV_NUM || ev == OEV_TRUE || ev == OEV_FALSE ||
	    ev == OEV_NULL;

	if (k->b.active) {
		obuild_event(&k->b, sc, ev, p, n);
		if (k->b.done)
			osink_built(k);
		return;
	}
	if (k->in_text) {
		if (ev == OEV_STR_DATA)
			osink_text(k, p, n);
		else if (ev == OEV_STR_END)
			k->in_text = 0;
		return;
	}
	if (ev == OEV_KEY || !start) {
		/* The end of a content item. */
		if (ev == OEV_OBJ_END && d == 3 && oscan_key_is(sc, 1,
		    "content") && oscan_key_is(sc, 0, "result")) {
			if (k->item != NULL && !k->item_text)
				json_array_append(k->kept, k->item);
			else if (k->item == NULL && !k->item_text)
				k->dropped++;
			json_decref(k->item);
			k->item = NULL;
		}
		return;
	}
	switch (d) {
	case 0:
		if (ev != OEV_OBJ)
			k->not_result = 1;
		return;
	case 1:
		if (oscan_key_is(sc, 0, "id"))
			osink_build(k, OW_ID, OB_WHOLE, OFFLOAD_ID_MAX, sc, ev,
			    p, n);
		else if (oscan_key_is(sc, 0, "result")) {
			if (ev != OEV_OBJ)
				k->not_result = 1;
		} else {
			if (oscan_key_is(sc, 0, "error") ||
			    oscan_key_is(sc, 0, "method"))
				k->not_result = 1;
			osink_build(k, OW_NONE, OB_WHOLE, 0, sc, ev, p, n);
		}
		return;
	default:
		break;
	}
	if (!oscan_key_is(sc, 0, "result")) {
		/* Inside error or params: nothing of ours. */
		return;
	}
	if (d == 2) {
		if (oscan_key_is(sc, 1, "content") && ev == OEV_ARR)
			return;		/* its items follow */
		if (oscan_key_is(sc, 1, "isError"))
			osink_build(k, OW_ISERROR, OB_WHOLE, 16, sc, ev, p, n);
		else if (oscan_key_is(sc, 1, "structuredContent"))
			osink_build(k, OW_STRUCT, OB_SHRINK, k->keep_max / 4,
			    sc, ev, p, n);
		else if (oscan_key_is(sc, 1, "content"))
			osink_build(k, OW_NONE, OB_WHOLE, 0, sc, ev, p, n);
		else
			osink_build(k, OW_EXTRA, OB_WHOLE, osink_room(k), sc,
			    ev, p, n);
		return;
	}
	if (!oscan_key_is(sc, 1, "content") || !oscan_is_array(sc, 2)) {
		return;
	}
	if (d == 3) {
		/* A content item starts. */
		json_decref(k->item);
		k->item = NULL;
		k->item_text = 0;
		if (ev == OEV_OBJ)
			k->item = json_object();
		else
			osink_build(k, OW_NONE, OB_WHOLE, 0, sc, ev, p, n);
		return;
	}
	if (d == 4 && oscan_key_is(sc, 3, "text") && ev == OEV_STR) {
		if (k->e->size > 0 && k->e->last != '\n')
			osink_text(k, "\n", 1);
		k->item_text = 1;
		k->in_text = 1;
		k->text_items++;
		return;
	}
	if (d == 4)
		osink_build(k, OW_ITEMKEY, OB_WHOLE, osink_room(k), sc, ev, p,
		    n);
}

static struct offload_sink *
osink_new(const struct offload_conf *oc, const struct offload_owner *who,
    const char *tool)
{
	struct offload_sink *k;
	struct oentry *e;

	if ((e = oentry_new(oc, who, tool)) == NULL)
		return NULL;
	k = xcalloc(1, sizeof(*k));
	k->e = e;
	k->threshold = offload_threshold(oc);
	k->keep_max = k->threshold / 4;
	if (k->keep_max < OFFLOAD_KEEP_MIN)
		k->keep_max = OFFLOAD_KEEP_MIN;
	if (k->keep_max > OFFLOAD_KEEP_MAX)
		k->keep_max = OFFLOAD_KEEP_MAX;
	k->tool = xstrdup(tool != NULL ? tool : "?");
	k->server = xstrdup(who->server != NULL ? who->server : "?");
	k->kept = json_array();
	oscan_init(&k->sc, osink_event, k);
	return k;
}

static void
osink_free(struct offload_sink *k)
{
	if (k == NULL)
		return;
	obuild_reset(&k->b);
	free(k->bkey);
	free(k->tool);
	free(k->server);
	json_decref(k->id);
	json_decref(k->item);
	json_decref(k->kept);
	json_decref(k->structured);
	json_decref(k->extra);
	free(k);
}

static void
osink_feed(struct offload_sink *k, const uint8_t *p, size_t n)
{
	k->bytes += n;
	if (k->sc.state == OS_ERROR)
		return;
	if (oscan_feed(&k->sc, p, n) != 0)
		osink_fail(k, "server %s sent a malformed result for tool %s "
		    "(%s)", k->server, k->tool, k->sc.err);
}

static void
ohuman(uint64_t n, char *out, size_t outlen)
{
	if (n >= 10ULL * 1024 * 1024)
		snprintf(out, outlen, "%llu MiB", (unsigned long long)(n >>
		    20));
	else if (n >= 10 * 1024)
		snprintf(out, outlen, "%llu KiB", (unsigned long long)(n >>
		    10));
	else
		snprintf(out, outlen, "%llu bytes", (unsigned long long)n);
}

/*
 * The answer for the agent, from a sink whose message ended: what was
 * stored and how to read it, with a preview (preview_max bytes at most)
 * and the parts kept when keep is set.
 */
static json_t *
osink_result(struct offload_sink *k, size_t preview_max, int keep)
{
	struct oentry *e = k->e;
	char size[32], *text, *link_desc, notes[256] = "";
	size_t plen;
	json_t *res, *content, *v;
	const char *key;

	plen = offload_preview_len(e->head, e->headlen < e->size ?
	    e->headlen : (size_t)e->size, preview_max, OFFLOAD_PREVIEW_LINES);
	ohuman(k->bytes, size, sizeof(size));
	if (k->dropped > 0 || (!keep && json_array_size(k->kept) > 0))
		snprintf(notes, sizeof(notes), " %u non-text content item(s) "
		    "were too large to forward and were left out.",
		    k->dropped + (keep ? 0 :
		    (unsigned)json_array_size(k->kept)));
	if (k->structured != NULL && (k->struct_cut || !keep))
		snprintf(notes + strlen(notes), sizeof(notes) - strlen(notes),
		    " structuredContent was %s; the text holds the full "
		    "result.", keep ? "cut down to fit" : "left out");
	text = xasprintf("The result of tool %s was %s (%llu bytes of text "
	    "in %llu lines), more than this server sends at once (%zu bytes), "
	    "so mcptun stored it inside the private network as output %s "
	    "(%s%s). Read parts of it with the tool mcptun_read (id, then "
	    "offset and length in bytes, or start_line and line_count), "
	    "search it with mcptun_grep (id, pattern: an extended regular "
	    "expression), list this session's outputs with mcptun_outputs. "
	    "%s%s",
	    k->tool, size, (unsigned long long)e->size,
	    (unsigned long long)oentry_lines(e), k->threshold, e->id,
	    OFFLOAD_URI_PREFIX, e->id, plen > 0 ? "Its first lines follow." :
	    "", notes);
	content = json_array();
	json_array_append_new(content, json_pack("{s:s, s:o}", "type",
	    "text", "text", ostr(text, strlen(text))));
	free(text);
	if (plen > 0)
		json_array_append_new(content, json_pack("{s:s, s:o}", "type",
		    "text", "text", ostr(e->head, plen)));
	link_desc = xasprintf("Output of tool %s (%llu bytes, %llu lines), "
	    "stored by mcptun inside the private network", k->tool,
	    (unsigned long long)e->size, (unsigned long long)oentry_lines(e));
	v = json_pack("{s:s, s:s+, s:s+, s:o, s:s, s:I}", "type",
	    "resource_link", "uri", OFFLOAD_URI_PREFIX, e->id,
	    "name", "mcptun-offload-", e->id,
	    "description", ostr(link_desc, strlen(link_desc)),
	    "mimeType", e->mime, "size", (json_int_t)e->size);
	free(link_desc);
	json_array_append_new(content, v);
	if (keep)
		json_array_extend(content, k->kept);
	res = json_object();
	if (keep && k->extra != NULL)
		json_object_foreach(k->extra, key, v)
			if (strcmp(key, "content") != 0 &&
			    strcmp(key, "isError") != 0)
				json_object_set(res, key, v);
	json_object_set_new(res, "content", content);
	if (keep && k->structured != NULL)
		json_object_set(res, "structuredContent", k->structured);
	if (k->is_error)
		json_object_set_new(res, "isError", json_true());
	return res;
}

/*
 * Ends k's message: returns the answer for the agent (caller frees) and
 * fills info, or NULL if there is no id to answer.  The output stays
 * stored only if the answer is a result.
 */
static char *
osink_finish(struct offload_sink *k, size_t *lenp, struct offload_info *info)
{
	struct oentry *e = k->e;
	json_t *msg, *res;
	size_t len, preview;
	char *out = NULL;
	int keep;

	memset(info, 0, sizeof(*info));
	if (k->sc.state != OS_ERROR && oscan_finish(&k->sc) != 0)
		osink_fail(k, "server %s sent a malformed result for tool %s "
		    "(%s)", k->server, k->tool, k->sc.err);
	if (!k->failed && k->not_result)
		osink_fail(k, "server %s sent an unexpected answer to tools/call "
		    "%s", k->server, k->tool);
	if (!k->failed && k->text_items == 0)
		osink_fail(k, "the result of tool %s (%llu bytes) holds no text "
		    "to store, and is too large to send", k->tool,
		    (unsigned long long)k->bytes);
	if (!k->failed && oentry_done(e) != 0)
		osink_fail(k, "the result of tool %s could not be stored "
		    "(write error on the client)", k->tool);
	e->msg_bytes = k->bytes;
	if (k->id == NULL) {
		oentry_remove(e, NULL);
		k->e = NULL;
		return NULL;
	}
	if (k->failed) {
		log_info("offload: %s", k->why);
		out = jrpc_error_text(k->id, JRPC_UPSTREAM_ERROR, k->why, lenp);
		oentry_remove(e, NULL);
		k->e = NULL;
		return out;
	}
	/* Smaller and smaller until it fits under the threshold. */
	preview = k->threshold / 4 < OFFLOAD_PREVIEW_MAX ?
	    k->threshold / 4 : OFFLOAD_PREVIEW_MAX;
	for (keep = 1; ; keep = 0) {
		res = osink_result(k, preview, keep);
		msg = json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id",
		    k->id, "result", res);
		out = jrpc_dump(msg, &len);
		json_decref(msg);
		if (len <= k->threshold || (!keep && preview == 0))
			break;
		free(out);
		if (!keep)
			preview /= 4;
		if (preview < 64)
			preview = 0;
	}
	log_info("offload: tool %s on %s: %llu bytes stored as %s (%llu "
	    "lines); the agent got %zu bytes", k->tool, k->server,
	    (unsigned long long)e->size, e->id,
	    (unsigned long long)oentry_lines(e), len);
	snprintf(info->id, sizeof(info->id), "%s", e->id);
	info->bytes = e->size;
	k->e = NULL;
	*lenp = len;
	return out;
}

/* ---- the ways in ---------------------------------------------------------- */

/* What offload_probe() looks for at the top level of a message. */
struct oprobe {
	struct obuild	 b;
	json_t		*id;
	int		 result;	/* "result" began after the id */
	int		 bad;		/* not a result */
};

/* The id's value was built. */
static void
oprobe_took(struct oprobe *pr)
{
	json_t *v = obuild_take(&pr->b);

	if (json_is_string(v) || json_is_integer(v)) {
		json_decref(pr->id);
		pr->id = v;
	} else
		json_decref(v);
}

static void
oprobe_event(void *arg, const struct oscan *sc, enum oscan_ev ev,
    const char *p, size_t n)
{
	struct oprobe *pr = arg;

	if (pr->b.active) {
		obuild_event(&pr->b, sc, ev, p, n);
		if (pr->b.done)
			oprobe_took(pr);
		return;
	}
	if (sc->depth != 1 || ev == OEV_KEY || ev == OEV_STR_DATA ||
	    ev == OEV_STR_END || ev == OEV_OBJ_END || ev == OEV_ARR_END)
		return;
	if (oscan_key_is(sc, 0, "id")) {
		obuild_begin(&pr->b, OB_WHOLE, OFFLOAD_ID_MAX, sc->depth);
		obuild_event(&pr->b, sc, ev, p, n);
		if (pr->b.done)
			oprobe_took(pr);
	} else if (oscan_key_is(sc, 0, "result")) {
		if (ev == OEV_OBJ && pr->id != NULL)
			pr->result = 1;
		else
			pr->bad = 1;
	} else if (oscan_key_is(sc, 0, "error") ||
	    oscan_key_is(sc, 0, "method"))
		pr->bad = 1;
}

int
offload_probe(const uint8_t *head, size_t len, json_t **idp)
{
	struct oprobe pr;
	struct oscan *sc;
	int r = MT_EINVAL;

	memset(&pr, 0, sizeof(pr));
	sc = xmalloc(sizeof(*sc));
	oscan_init(sc, oprobe_event, &pr);
	if (oscan_feed(sc, head, len) == 0 && sc->depth > 0 &&
	    pr.result && !pr.bad && pr.id != NULL) {
		*idp = pr.id;
		pr.id = NULL;
		r = 0;
	}
	json_decref(pr.id);
	obuild_reset(&pr.b);
	free(sc);
	return r;
}

struct offload_sink *
offload_sink_open(const struct offload_conf *oc,
    const struct offload_owner *who, const char *tool, offload_done_cb *done,
    void *arg)
{
	struct offload_sink *k;

	if (offload_threshold(oc) == 0 ||
	    (k = osink_new(oc, who, tool)) == NULL)
		return NULL;
	k->done = done;
	k->arg = arg;
	return k;
}

void
offload_sink_write(struct offload_sink *k, const uint8_t *p, size_t n)
{
	osink_feed(k, p, n);
}

void
offload_sink_end(struct offload_sink *k)
{
	struct offload_info info;
	char *reply;
	size_t len = 0;

	reply = osink_finish(k, &len, &info);
	if (reply == NULL)
		log_info("offload: a result of tool %s from %s had no id; "
		    "dropped", k->tool, k->server);
	else if (k->done != NULL)
		k->done(k->arg, (const uint8_t *)reply, len, &info);
	free(reply);
	osink_free(k);
}

void
offload_sink_abort(struct offload_sink *k)
{
	if (k == NULL)
		return;
	if (k->e != NULL)
		oentry_remove(k->e, NULL);
	k->e = NULL;
	osink_free(k);
}

int
offload_message(const struct offload_conf *oc,
    const struct offload_owner *who, const char *tool, const uint8_t *msg,
    size_t len, char **replyp, size_t *replylenp, struct offload_info *info)
{
	struct offload_sink *k;
	size_t outlen = 0;
	char *out;

	if (offload_threshold(oc) == 0)
		return MT_EINVAL;
	if ((k = osink_new(oc, who, tool)) == NULL)
		return MT_EIO;
	osink_feed(k, msg, len);
	if (k->not_result) {
		offload_sink_abort(k);
		return MT_EINVAL;
	}
	out = osink_finish(k, &outlen, info);
	osink_free(k);
	if (out == NULL)
		return MT_EINVAL;
	*replyp = out;
	*replylenp = outlen;
	return 0;
}

/* ---- reading: the local tools ------------------------------------------- */

/* Bytes c takes in a JSON string. */
static size_t
ocost(uint8_t c)
{
	if (c == '"' || c == '\\')
		return 2;
	if (c < 0x20)
		return c == '\n' || c == '\t' || c == '\r' || c == '\b' ||
		    c == '\f' ? 2 : 6;
	return 1;
}

/* The longest prefix of p whose JSON-escaped size is at most cap. */
static size_t
ocost_prefix(const uint8_t *p, size_t n, size_t cap)
{
	size_t i, used = 0;

	for (i = 0; i < n; i++) {
		used += ocost(p[i]);
		if (used > cap)
			break;
	}
	return i;
}

/* The most data bytes one answer carries for a threshold. */
static size_t
oanswer_cap(size_t threshold)
{
	size_t cap = threshold / 2;

	cap = cap > 2048 ? cap - 1024 : 1024;
	return cap;
}

/* Appends n bytes of fd at off to out.  0 or MT_EIO. */
static int
oread_at(int fd, uint64_t off, size_t n, struct buf *out)
{
	uint8_t *p;
	ssize_t r;

	if (n == 0)
		return 0;
	if ((p = buf_reserve(out, n)) == NULL)
		return MT_ENOMEM;
	while (n > 0) {
		r = pread(fd, p, n, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return MT_EIO;
		buf_commit(out, (size_t)r);
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

/* Where line (1-based) of e starts, or e->size past the end. */
static int
oline_start(int fd, const struct oentry *e, uint64_t line, uint64_t *offp)
{
	uint64_t k = (line - 1) / OFFLOAD_LINE_STEP, skip, pos;
	uint8_t chunk[65536];
	const uint8_t *s, *nl;
	ssize_t r;

	if (k >= e->nindex)
		k = e->nindex - 1;
	pos = e->index[k];
	skip = (line - 1) - k * OFFLOAD_LINE_STEP;
	while (skip > 0 && pos < e->size) {
		r = pread(fd, chunk, sizeof(chunk), (off_t)pos);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return MT_EIO;
		s = chunk;
		while (skip > 0 && (nl = memchr(s, '\n',
		    (size_t)(chunk + r - s))) != NULL) {
			skip--;
			s = nl + 1;
		}
		pos += skip > 0 ? (uint64_t)r : (uint64_t)(s - chunk);
	}
	*offp = skip > 0 ? e->size : pos;
	return 0;
}

/* One slice of an output: its bytes and a sentence saying which. */
struct oslice {
	struct buf	 data;
	char		 note[512];
	uint64_t	 off;		/* where data starts */
};

static int
oopen(const struct oentry *e)
{
	char name[OFFLOAD_ID_LEN + 8];
	int fd;

	snprintf(name, sizeof(name), "%s.out", e->id);
	if ((fd = openat(e->dir->fd, name, O_RDONLY | O_NOFOLLOW |
	    O_CLOEXEC)) < 0)
		log_warn("offload: opening %s/%s", e->dir->path, name);
	return fd;
}

/* Bytes [off, off + len) of e, adjusted to whole characters, capped. */
static int
oslice_bytes(int fd, const struct oentry *e, uint64_t off, uint64_t len,
    size_t cap, struct oslice *sl)
{
	size_t n, skip;
	uint8_t *p;
	int r;

	if (off >= e->size) {
		snprintf(sl->note, sizeof(sl->note), "Output %s has %llu "
		    "bytes; offset %llu is at or past its end.", e->id,
		    (unsigned long long)e->size, (unsigned long long)off);
		return 0;
	}
	if (len > e->size - off)
		len = e->size - off;
	if (len > cap)
		len = cap;
	if ((r = oread_at(fd, off, (size_t)len, &sl->data)) != 0)
		return r;
	p = sl->data.data + sl->data.off;
	skip = outf8_skip(p, buf_len(&sl->data));
	n = ocost_prefix(p + skip, buf_len(&sl->data) - skip, cap);
	if (off + skip + n < e->size)
		n = outf8_cut(p + skip, n);
	memmove(p, p + skip, n);
	sl->data.len = sl->data.off + n;
	sl->off = off + skip;
	snprintf(sl->note, sizeof(sl->note), "Output %s: %zu bytes from "
	    "offset %llu of %llu.%s %s", e->id, n,
	    (unsigned long long)sl->off, (unsigned long long)e->size,
	    skip > 0 ? " (The start moved forward to a character "
	    "boundary.)" : "", sl->off + n < e->size ? "" : "That is the end.");
	if (sl->off + n < e->size)
		snprintf(sl->note + strlen(sl->note), sizeof(sl->note) -
		    strlen(sl->note), "Continue with offset=%llu.",
		    (unsigned long long)(sl->off + n));
	return 0;
}

/* Lines [line, line + count) of e, as many whole lines as fit in cap. */
static int
oslice_lines(int fd, const struct oentry *e, uint64_t line, uint64_t count,
    size_t cap, struct oslice *sl)
{
	uint64_t start, pos, end, got = 0, lines = oentry_lines(e);
	size_t cost = 0, i, chunk, n;
	const uint8_t *p;
	int r, over = 0;

	if ((r = oline_start(fd, e, line, &start)) != 0)
		return r;
	if (start >= e->size) {
		snprintf(sl->note, sizeof(sl->note), "Output %s has %llu "
		    "lines; line %llu is past its end.", e->id,
		    (unsigned long long)lines, (unsigned long long)line);
		return 0;
	}
	end = pos = start;
	while (got < count && pos < e->size && !over) {
		chunk = e->size - pos < 65536 ? (size_t)(e->size - pos) : 65536;
		n = buf_len(&sl->data);
		if ((r = oread_at(fd, pos, chunk, &sl->data)) != 0)
			return r;
		p = sl->data.data + sl->data.off + n;
		for (i = 0; i < chunk; i++) {
			cost += ocost(p[i]);
			if (cost > cap) {
				over = 1;
				break;
			}
			if (p[i] == '\n') {
				end = pos + i + 1;
				if (++got == count)
					break;
			}
		}
		if (!over && got < count && pos + chunk == e->size &&
		    end < e->size) {
			end = e->size;		/* a last line without '\n' */
			got++;
		}
		pos += chunk;
	}
	sl->off = start;
	if (got == 0) {
		/* The first line alone does not fit: its first part. */
		n = ocost_prefix(sl->data.data + sl->data.off,
		    buf_len(&sl->data), cap);
		n = outf8_cut(sl->data.data + sl->data.off, n);
		sl->data.len = sl->data.off + n;
		snprintf(sl->note, sizeof(sl->note), "Output %s: line %llu is "
		    "too long for one answer; these are its first %zu bytes "
		    "(from offset %llu). Continue with offset=%llu.", e->id,
		    (unsigned long long)line, n, (unsigned long long)start,
		    (unsigned long long)(start + n));
		return 0;
	}
	sl->data.len = sl->data.off + (size_t)(end - start);
	snprintf(sl->note, sizeof(sl->note), "Output %s: lines %llu to %llu "
	    "of %llu (%llu bytes from offset %llu).%s", e->id,
	    (unsigned long long)line, (unsigned long long)(line + got - 1),
	    (unsigned long long)lines, (unsigned long long)(end - start),
	    (unsigned long long)start, end >= e->size ? " That is the end." :
	    "");
	if (end < e->size)
		snprintf(sl->note + strlen(sl->note), sizeof(sl->note) -
		    strlen(sl->note), " Continue with start_line=%llu.",
		    (unsigned long long)(line + got));
	return 0;
}

/* ---- grep ----------------------------------------------------------------- */

struct ogrep_line {
	uint64_t	 no;
	char		*text;
	size_t		 len;
};

struct ogrep {
	int		 fd;
	uint64_t	 size, off;	/* file size, next byte to read */
	regex_t		 re;
	unsigned	 context, max;
	size_t		 cap;		/* output, escaped */
	struct buf	 seg;		/* the current line, or a piece */
	uint64_t	 line_off;	/* where the current line starts */
	uint64_t	 seg_off;	/* where seg starts */
	uint64_t	 lineno;	/* current line, from 1 */
	struct buf	 first;		/* its first bytes */
	int		 hit;		/* it matched */
	char		*win;		/* ... this part of it (long lines) */
	uint64_t	 win_off;
	struct ogrep_line ring[OFFLOAD_GREP_CONTEXT];
	unsigned	 nring;
	unsigned	 after;		/* context lines still to print */
	uint64_t	 last;		/* last line printed; 0 = none */
	unsigned	 matches;
	struct buf	 out;
	size_t		 outcost;
	int		 full;		/* out reached cap */
	int		 done;
};

static void
ogrep_free(struct ogrep *g)
{
	unsigned i;

	if (g == NULL)
		return;
	if (g->fd >= 0)
		close(g->fd);
	regfree(&g->re);
	buf_free(&g->seg);
	buf_free(&g->first);
	buf_free(&g->out);
	free(g->win);
	for (i = 0; i < g->nring; i++)
		free(g->ring[i].text);
	free(g);
}

/* Appends one output line; sets full (and done) when it would not fit. */
static void
ogrep_emit(struct ogrep *g, uint64_t no, char sep, const char *text,
    size_t len)
{
	char pre[32];
	size_t cost = 0, i, plen;

	if (g->full)
		return;
	plen = (size_t)snprintf(pre, sizeof(pre), "%s%llu%c",
	    g->context > 0 && g->last != 0 && no > g->last + 1 ? "--\n" : "",
	    (unsigned long long)no, sep);
	for (i = 0; i < len; i++)
		cost += ocost((uint8_t)text[i]);
	cost += plen + 2;
	if (g->outcost + cost > g->cap) {
		g->full = 1;
		g->done = 1;
		return;
	}
	(void)buf_append(&g->out, pre, plen);
	(void)buf_append(&g->out, text, len);
	(void)buf_append(&g->out, "\n", 1);
	g->outcost += cost;
	g->last = no;
}

/* What to print of the current line (len bytes in all): caller frees. */
static char *
ogrep_show(struct ogrep *g, uint64_t len, int as_hit, size_t *outlen)
{
	const uint8_t *p = buf_ptr(&g->first);
	size_t n;
	char *s;

	if (len <= OFFLOAD_GREP_SHOW) {
		*outlen = (size_t)len;
		return xstrndup((const char *)p, (size_t)len);
	}
	if (as_hit && g->win != NULL)
		s = xasprintf("%s [line of %llu bytes at offset %llu; this part "
		    "from offset %llu]", g->win, (unsigned long long)len,
		    (unsigned long long)g->line_off,
		    (unsigned long long)g->win_off);
	else {
		n = outf8_cut(p, OFFLOAD_GREP_SHOW);
		s = xasprintf("%.*s... [line of %llu bytes at offset %llu]",
		    (int)n, (const char *)p, (unsigned long long)len,
		    (unsigned long long)g->line_off);
	}
	*outlen = strlen(s);
	return s;
}

/* Tries the pattern on seg (a line, or a piece of a long one). */
static void
ogrep_segment(struct ogrep *g)
{
	size_t n = buf_len(&g->seg), k, start, len, avail;
	regmatch_t m;
	uint8_t *p;

	if (g->seg_off == g->line_off)
		(void)buf_append(&g->first, buf_ptr(&g->seg),
		    n < OFFLOAD_GREP_SHOW + 8 ? n : OFFLOAD_GREP_SHOW + 8);
	if (g->hit || g->matches >= g->max)
		goto out;
	if ((p = buf_reserve(&g->seg, 1)) == NULL)
		goto out;
	*p = '\0';
	p = g->seg.data + g->seg.off;
	if (regexec(&g->re, (const char *)p, 1, &m, 0) != 0)
		goto out;
	g->hit = 1;
	/* A window around the match, for lines too long to show. */
	start = (size_t)m.rm_so > 256 ? (size_t)m.rm_so - 256 : 0;
	start += outf8_skip(p + start, n - start);
	avail = n - start;
	len = avail < OFFLOAD_GREP_SHOW ? avail : OFFLOAD_GREP_SHOW;
	k = outf8_cut(p + start, len);
	free(g->win);
	g->win = xasprintf("%s%.*s%s", start > 0 || g->seg_off > g->line_off ?
	    "..." : "", (int)k, (const char *)p + start, "...");
	g->win_off = g->seg_off + start;
 out:
	g->seg_off += n;
	buf_reset(&g->seg);
}

/* The current line (len bytes) ended. */
static void
ogrep_line_end(struct ogrep *g, uint64_t len)
{
	struct ogrep_line *l;
	char *s;
	size_t n;
	unsigned i;

	if (g->matches >= g->max) {
		/* Trailing context after the last match (as grep -m). */
		if (g->after > 0) {
			s = ogrep_show(g, len, 0, &n);
			ogrep_emit(g, g->lineno, '-', s, n);
			free(s);
			g->after--;
		}
		if (g->after == 0)
			g->done = 1;
	} else if (g->hit) {
		for (i = 0; i < g->nring; i++) {
			l = &g->ring[i];
			if (l->no > g->last)
				ogrep_emit(g, l->no, '-', l->text, l->len);
			free(l->text);
		}
		g->nring = 0;
		s = ogrep_show(g, len, 1, &n);
		ogrep_emit(g, g->lineno, ':', s, n);
		free(s);
		if (!g->full)
			g->matches++;
		g->after = g->context;
		if (g->matches >= g->max && g->after == 0)
			g->done = 1;
	} else if (g->after > 0) {
		s = ogrep_show(g, len, 0, &n);
		ogrep_emit(g, g->lineno, '-', s, n);
		free(s);
		g->after--;
	} else if (g->context > 0) {
		if (g->nring == g->context) {
			free(g->ring[0].text);
			memmove(g->ring, g->ring + 1, (g->nring - 1) *
			    sizeof(g->ring[0]));
			g->nring--;
		}
		l = &g->ring[g->nring++];
		l->no = g->lineno;
		l->text = ogrep_show(g, len, 0, &l->len);
	}
	g->lineno++;
	g->line_off += len + 1;
	g->seg_off = g->line_off;
	g->hit = 0;
	free(g->win);
	g->win = NULL;
	buf_reset(&g->first);
}

/* Scans up to slice more bytes.  Returns 1 when done, 0 to go on. */
static int
ogrep_run(struct ogrep *g, size_t slice)
{
	uint8_t chunk[65536];
	const uint8_t *p, *nl;
	size_t left, k, room;
	ssize_t r;

	while (!g->done && slice > 0) {
		if (g->off >= g->size) {
			if (g->line_off < g->size) {
				ogrep_segment(g);
				ogrep_line_end(g, g->size - g->line_off);
			}
			g->done = 1;
			break;
		}
		r = pread(g->fd, chunk, sizeof(chunk), (off_t)g->off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			g->done = 1;
			break;
		}
		g->off += (uint64_t)r;
		slice = slice > (size_t)r ? slice - (size_t)r : 0;
		p = chunk;
		left = (size_t)r;
		while (left > 0 && !g->done) {
			nl = memchr(p, '\n', left);
			k = nl != NULL ? (size_t)(nl - p) : left;
			while (k > 0) {
				room = OFFLOAD_GREP_SEG - buf_len(&g->seg);
				if (room > k)
					room = k;
				(void)buf_append(&g->seg, p, room);
				p += room;
				left -= room;
				k -= room;
				if (buf_len(&g->seg) == OFFLOAD_GREP_SEG)
					ogrep_segment(g);
			}
			if (nl == NULL)
				break;
			ogrep_segment(g);
			ogrep_line_end(g, (uint64_t)(nl - chunk) + g->off -
			    (uint64_t)r - g->line_off);
			p = nl + 1;
			left--;
		}
	}
	return g->done;
}

/* ---- local calls ----------------------------------------------------------- */

struct ojob {
	TAILQ_ENTRY(ojob)	 entry;
	lws_sorted_usec_list_t	 sul;
	uint64_t		 owner;
	offload_done_cb		*done;
	void			*arg;
	json_t			*id;
	size_t			 threshold;
	struct ogrep		*g;
	char			 oid[OFFLOAD_ID_LEN + 1];
	uint64_t		 lines;		/* of the output grepped */
	char			*reply;		/* ready to go */
	size_t			 replylen;
	struct offload_info	 info;
};

static TAILQ_HEAD(, ojob) ojobs = TAILQ_HEAD_INITIALIZER(ojobs);

static void
ojob_free(struct ojob *j)
{
	ogrep_free(j->g);
	json_decref(j->id);
	free(j->reply);
	free(j);
}

/* A result with a note and, if data is not NULL, the data as text. */
static json_t *
oresult(const char *note, const void *data, size_t n, int is_error)
{
	json_t *content, *res;

	content = json_array();
	json_array_append_new(content, json_pack("{s:s, s:o}", "type", "text",
	    "text", ostr(note, strlen(note))));
	if (data != NULL)
		json_array_append_new(content, json_pack("{s:s, s:o}", "type",
		    "text", "text", ostr(data, n)));
	res = json_pack("{s:o}", "content", content);
	if (is_error)
		json_object_set_new(res, "isError", json_true());
	return res;
}

/* Puts the answer {id, result: res} (res taken) into j. */
static void
ojob_answer(struct ojob *j, json_t *res)
{
	json_t *msg;

	msg = json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", j->id,
	    "result", res);
	free(j->reply);
	j->reply = jrpc_dump(msg, &j->replylen);
	json_decref(msg);
}

static void
ojob_error(struct ojob *j, int code, const char *message)
{
	free(j->reply);
	j->reply = jrpc_error_text(j->id, code, message, &j->replylen);
}

static void
ojob_not_found(struct ojob *j, const char *ref)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "No output %.64s in this session (it may "
	    "have expired or been removed; mcptun_outputs lists what is "
	    "stored).", ref);
	ojob_answer(j, oresult(msg, NULL, 0, 1));
}

/*
 * Reads args[key] as a whole number >= min into *out.  Returns 1 if
 * present, 0 if absent, -1 (with err) if not such a number.
 */
static int
oarg_uint(const json_t *args, const char *key, uint64_t min, uint64_t *out,
    char *err, size_t errlen)
{
	const json_t *v = json_object_get(args, key);
	double d;

	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_integer(v) && json_integer_value(v) >= 0 &&
	    (uint64_t)json_integer_value(v) >= min) {
		*out = (uint64_t)json_integer_value(v);
		return 1;
	}
	if (json_is_real(v) && (d = json_real_value(v)) >= (double)min &&
	    d < 1e18 && d == (double)(uint64_t)d) {
		*out = (uint64_t)d;
		return 1;
	}
	snprintf(err, errlen, "%s must be a whole number of at least %llu",
	    key, (unsigned long long)min);
	return -1;
}

/* The output args.id names (an id or its URI) for the job's owner. */
static struct oentry *
ojob_entry(struct ojob *j, const char *agent, const json_t *args)
{
	const char *ref = json_string_value(json_object_get(args, "id"));
	char id[OFFLOAD_ID_LEN + 1];
	struct oentry *e;

	if (ref == NULL) {
		ojob_answer(j, oresult("mcptun: give the output's id (or its "
		    "mcptun://offload/ URI) as \"id\".", NULL, 0, 1));
		return NULL;
	}
	if (offload_parse_ref(ref, id, NULL) != 0 ||
	    (e = oentry_find(j->owner, agent, id)) == NULL) {
		ojob_not_found(j, ref);
		return NULL;
	}
	snprintf(j->info.id, sizeof(j->info.id), "%s", e->id);
	return e;
}

/* mcptun_read and resources/read: a slice by bytes or by lines. */
static int
ojob_slice(struct ojob *j, const struct oentry *e, const json_t *args,
    struct oslice *sl, char *err, size_t errlen)
{
	uint64_t off = 0, len = OFFLOAD_READ_DEFAULT, line = 1;
	uint64_t count = OFFLOAD_LINES_DEFAULT;
	size_t cap = oanswer_cap(j->threshold);
	int a, b, c, d, fd, r;

	if ((a = oarg_uint(args, "offset", 0, &off, err, errlen)) < 0 ||
	    (b = oarg_uint(args, "length", 1, &len, err, errlen)) < 0 ||
	    (c = oarg_uint(args, "start_line", 1, &line, err, errlen)) < 0 ||
	    (d = oarg_uint(args, "line_count", 1, &count, err, errlen)) < 0)
		return MT_EINVAL;
	if ((a || b) && (c || d)) {
		snprintf(err, errlen, "give either offset/length or "
		    "start_line/line_count, not both");
		return MT_EINVAL;
	}
	if ((fd = oopen(e)) < 0) {
		snprintf(err, errlen, "output %s cannot be read on the client",
		    e->id);
		return MT_EIO;
	}
	if (c || d)
		r = oslice_lines(fd, e, line, count, cap, sl);
	else
		r = oslice_bytes(fd, e, off, len, cap, sl);
	close(fd);
	if (r != 0)
		snprintf(err, errlen, "output %s cannot be read on the client",
		    e->id);
	j->info.bytes = buf_len(&sl->data);
	return r;
}

static void
otool_read(struct ojob *j, const char *agent, const json_t *args)
{
	struct oslice sl;
	struct oentry *e;
	char err[160];

	if ((e = ojob_entry(j, agent, args)) == NULL)
		return;
	memset(&sl, 0, sizeof(sl));
	buf_init(&sl.data, 0);
	if (ojob_slice(j, e, args, &sl, err, sizeof(err)) != 0)
		ojob_answer(j, oresult(err, NULL, 0, 1));
	else
		ojob_answer(j, oresult(sl.note, buf_len(&sl.data) > 0 ?
		    buf_ptr(&sl.data) : NULL, buf_len(&sl.data), 0));
	buf_free(&sl.data);
}

static void
otool_grep(struct ojob *j, const char *agent, const json_t *args)
{
	const char *pat = json_string_value(json_object_get(args, "pattern"));
	uint64_t context = 0, max = OFFLOAD_GREP_DEFAULT;
	struct oentry *e;
	struct ogrep *g;
	char err[256];
	int r, flags = REG_EXTENDED;

	if ((e = ojob_entry(j, agent, args)) == NULL)
		return;
	if (pat == NULL || strlen(pat) != json_string_length(
	    json_object_get(args, "pattern")) || strlen(pat) > 1024) {
		ojob_answer(j, oresult("mcptun_grep: give \"pattern\", an "
		    "extended regular expression of at most 1024 bytes.", NULL,
		    0, 1));
		return;
	}
	if (oarg_uint(args, "context", 0, &context, err, sizeof(err)) < 0 ||
	    oarg_uint(args, "max_matches", 1, &max, err, sizeof(err)) < 0) {
		ojob_answer(j, oresult(err, NULL, 0, 1));
		return;
	}
	if (context > OFFLOAD_GREP_CONTEXT)
		context = OFFLOAD_GREP_CONTEXT;
	if (max > OFFLOAD_GREP_MAX)
		max = OFFLOAD_GREP_MAX;
	if (json_is_true(json_object_get(args, "ignore_case")))
		flags |= REG_ICASE;
	g = xcalloc(1, sizeof(*g));
	g->fd = -1;
	if ((r = regcomp(&g->re, pat, flags)) != 0) {
		regerror(r, &g->re, err, sizeof(err));
		free(g);
		ojob_answer(j, oresult(err, NULL, 0, 1));
		return;
	}
	if ((g->fd = oopen(e)) < 0) {
		ogrep_free(g);
		ojob_answer(j, oresult("mcptun_grep: the output cannot be read "
		    "on the client", NULL, 0, 1));
		return;
	}
	g->size = e->size;
	g->context = (unsigned)context;
	g->max = (unsigned)max;
	g->cap = oanswer_cap(j->threshold);
	g->lineno = 1;
	buf_init(&g->seg, 0);
	buf_init(&g->first, 0);
	buf_init(&g->out, 0);
	j->g = g;
	snprintf(j->oid, sizeof(j->oid), "%s", e->id);
	j->lines = oentry_lines(e);
}

/* The grep ended: its answer. */
static void
ogrep_answer(struct ojob *j)
{
	struct ogrep *g = j->g;
	char note[384];

	if (g->matches == 0)
		snprintf(note, sizeof(note), "Output %s: no line matches.",
		    j->oid);
	else
		snprintf(note, sizeof(note), "Output %s: %u matching line%s "
		    "(lines numbered from 1, as grep -n%s).%s%s", j->oid,
		    g->matches, g->matches == 1 ? "" : "s",
		    g->context > 0 ? " -C" : "",
		    g->full ? " The answer reached its size cap; narrow the "
		    "pattern, lower max_matches or read with mcptun_read." : "",
		    !g->full && g->matches >= g->max ? " Stopped at "
		    "max_matches." : "");
	outf8_fix(g->out.data + g->out.off, buf_len(&g->out));
	j->info.bytes = buf_len(&g->out);
	ojob_answer(j, oresult(note, buf_len(&g->out) > 0 ? buf_ptr(&g->out) :
	    NULL, buf_len(&g->out), 0));
	ogrep_free(g);
	j->g = NULL;
}

static void
otool_outputs(struct ojob *j, const char *agent)
{
	const struct oentry *e;
	size_t cap = oanswer_cap(j->threshold), n = 0, total = 0;
	uint64_t now = now_ms();
	json_t *list, *o;
	char *text, *note;

	list = json_array();
	TAILQ_FOREACH(e, &oentries, entry) {
		if (e->writing || e->owner != j->owner ||
		    strcmp(e->agent, agent != NULL ? agent : "") != 0)
			continue;
		n++;
		o = json_pack("{s:s, s:s+, s:s, s:I, s:I, s:I, s:s}", "id",
		    e->id, "uri", OFFLOAD_URI_PREFIX, e->id, "tool", e->tool,
		    "bytes", (json_int_t)e->size, "lines",
		    (json_int_t)oentry_lines(e), "age_s",
		    (json_int_t)((now - e->created_ms) / 1000), "mimeType",
		    e->mime);
		if (e->expires_ms != 0)
			json_object_set_new(o, "expires_in_s",
			    json_integer((json_int_t)(e->expires_ms > now ?
			    (e->expires_ms - now) / 1000 : 0)));
		total += 200;
		if (total > cap) {
			json_decref(o);
			continue;
		}
		json_array_append_new(list, o);
	}
	text = json_dumps(list, JSON_COMPACT);
	note = xasprintf("%zu stored output%s in this session%s.", n,
	    n == 1 ? "" : "s", json_array_size(list) < n ?
	    " (the list is cut to fit)" : "");
	ojob_answer(j, oresult(note, text, strlen(text), 0));
	free(text);
	free(note);
	json_decref(list);
}

/* resources/read of mcptun://offload/<id>[?offset=&length=...]. */
static void
oresource_read(struct ojob *j, const char *agent, const char *uri)
{
	char id[OFFLOAD_ID_LEN + 1], err[160], key[16], *end;
	const char *query, *s, *eq, *amp;
	struct oslice sl;
	struct oentry *e;
	json_t *args, *res;
	unsigned long long v;
	size_t klen;

	if (offload_parse_ref(uri, id, &query) != 0 ||
	    (e = oentry_find(j->owner, agent, id)) == NULL) {
		snprintf(err, sizeof(err), "Resource not found: %.80s", uri);
		ojob_error(j, -32002, err);	/* MCP: resource not found */
		return;
	}
	snprintf(j->info.id, sizeof(j->info.id), "%s", e->id);
	args = json_object();
	for (s = query; s != NULL && *s != '\0'; s = amp != NULL ? amp + 1 :
	    NULL) {
		amp = strchr(s, '&');
		eq = strchr(s, '=');
		if (eq == NULL || (amp != NULL && eq > amp))
			continue;
		klen = (size_t)(eq - s);
		if (klen >= sizeof(key))
			continue;
		memcpy(key, s, klen);
		key[klen] = '\0';
		errno = 0;
		v = strtoull(eq + 1, &end, 10);
		if (errno == 0 && end != eq + 1 && (*end == '&' ||
		    *end == '\0') && v < (1ULL << 62))
			json_object_set_new(args, key, json_integer(
			    (json_int_t)v));
	}
	memset(&sl, 0, sizeof(sl));
	buf_init(&sl.data, 0);
	if (ojob_slice(j, e, args, &sl, err, sizeof(err)) != 0)
		ojob_error(j, JRPC_INVALID_PARAMS, err);
	else {
		res = json_pack("{s:[{s:s, s:s, s:o}]}", "contents", "uri",
		    uri, "mimeType", e->mime, "text", ostr(buf_len(&sl.data) >
		    0 ? buf_ptr(&sl.data) : (const uint8_t *)"",
		    buf_len(&sl.data)));
		ojob_answer(j, res);
	}
	buf_free(&sl.data);
	json_decref(args);
}

static void
ojob_tick(lws_sorted_usec_list_t *sul)
{
	struct ojob *j = lws_container_of(sul, struct ojob, sul);
	struct lws_context *ctx = client_context();

	if (j->g != NULL && !ogrep_run(j->g, OFFLOAD_GREP_SLICE) &&
	    ctx != NULL) {
		lws_sul_schedule(ctx, 0, &j->sul, ojob_tick, 1);
		return;
	}
	if (j->g != NULL)
		ogrep_answer(j);
	TAILQ_REMOVE(&ojobs, j, entry);
	if (j->reply != NULL)
		j->done(j->arg, (const uint8_t *)j->reply, j->replylen,
		    &j->info);
	ojob_free(j);
}

int
offload_is_local(const json_t *req, const struct offload_conf *oc)
{
	const char *method = json_string_value(json_object_get(req, "method"));
	const json_t *params = json_object_get(req, "params");
	const char *s;

	if (method == NULL || offload_threshold(oc) == 0)
		return 0;
	if (strcmp(method, "tools/call") == 0) {
		s = json_string_value(json_object_get(params, "name"));
		return s != NULL && (strcmp(s, "mcptun_read") == 0 ||
		    strcmp(s, "mcptun_grep") == 0 ||
		    strcmp(s, "mcptun_outputs") == 0);
	}
	if (strcmp(method, "resources/read") == 0) {
		s = json_string_value(json_object_get(params, "uri"));
		return s != NULL && strncmp(s, OFFLOAD_URI_PREFIX,
		    strlen(OFFLOAD_URI_PREFIX)) == 0;
	}
	return 0;
}

void
offload_call(const struct offload_conf *oc, const struct offload_owner *who,
    const json_t *req, offload_done_cb *done, void *arg)
{
	const char *method = json_string_value(json_object_get(req, "method"));
	const json_t *params = json_object_get(req, "params"), *args;
	struct lws_context *ctx = client_context();
	const char *name;
	struct ojob *j;

	j = xcalloc(1, sizeof(*j));
	j->owner = who->key;
	j->done = done;
	j->arg = arg;
	j->id = json_incref(json_object_get(req, "id"));
	j->threshold = offload_threshold(oc);
	if (method != NULL && strcmp(method, "resources/read") == 0)
		oresource_read(j, who->agent, json_string_value(
		    json_object_get(params, "uri")));
	else {
		name = json_string_value(json_object_get(params, "name"));
		args = json_object_get(params, "arguments");
		if (name == NULL)
			ojob_error(j, JRPC_INVALID_PARAMS, "no tool name");
		else if (strcmp(name, "mcptun_read") == 0)
			otool_read(j, who->agent, args);
		else if (strcmp(name, "mcptun_grep") == 0)
			otool_grep(j, who->agent, args);
		else
			otool_outputs(j, who->agent);
	}
	TAILQ_INSERT_TAIL(&ojobs, j, entry);
	if (ctx != NULL)
		lws_sul_schedule(ctx, 0, &j->sul, ojob_tick, 0);
}

void
offload_owner_end(uint64_t key)
{
	struct oentry *e, *enext;
	struct ojob *j, *jnext;

	for (j = TAILQ_FIRST(&ojobs); j != NULL; j = jnext) {
		jnext = TAILQ_NEXT(j, entry);
		if (j->owner != key)
			continue;
		TAILQ_REMOVE(&ojobs, j, entry);
		lws_sul_cancel(&j->sul);
		ojob_free(j);
	}
	for (e = TAILQ_FIRST(&oentries); e != NULL; e = enext) {
		enext = TAILQ_NEXT(e, entry);
		if (e->owner == key && !e->writing && !e->keep)
			oentry_remove(e, "its session ended");
	}
	offload_sweep_arm();
}

/* ---- the tools' definitions ------------------------------------------------ */

static const char offload_tools_json[] =
    "["
    "{\"name\":\"mcptun_read\",\"title\":\"Read a stored output\","
    "\"description\":\"Reads part of a large tool output that mcptun stored "
    "inside the private network instead of sending it whole (the tool's "
    "answer names it with an id and a resource_link mcptun://offload/<id>). "
    "Give either offset and length in bytes, or start_line and line_count "
    "(lines count from 1). Each answer is capped in size; its first text "
    "says which part it holds and where to continue.\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{"
    "\"id\":{\"type\":\"string\",\"description\":\"the output id, or its "
    "mcptun://offload/ URI\"},"
    "\"offset\":{\"type\":\"integer\",\"minimum\":0,\"description\":"
    "\"first byte, from 0\"},"
    "\"length\":{\"type\":\"integer\",\"minimum\":1,\"description\":"
    "\"bytes to read (default 32768)\"},"
    "\"start_line\":{\"type\":\"integer\",\"minimum\":1,\"description\":"
    "\"first line, from 1\"},"
    "\"line_count\":{\"type\":\"integer\",\"minimum\":1,\"description\":"
    "\"lines to read (default 100)\"}},"
    "\"required\":[\"id\"]},"
    "\"annotations\":{\"readOnlyHint\":true,\"openWorldHint\":false}},"
    "{\"name\":\"mcptun_grep\",\"title\":\"Search a stored output\","
    "\"description\":\"Searches a large tool output that mcptun stored "
    "inside the private network for lines matching a POSIX extended "
    "regular expression; answers like grep -n (matching lines as N:text, "
    "context lines as N-text, -- between groups). Very long lines are "
    "shown as a window around the match with its byte offset.\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{"
    "\"id\":{\"type\":\"string\",\"description\":\"the output id, or its "
    "mcptun://offload/ URI\"},"
    "\"pattern\":{\"type\":\"string\",\"description\":\"POSIX extended "
    "regular expression\"},"
    "\"context\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":10,"
    "\"description\":\"lines of context before and after each match "
    "(default 0)\"},"
    "\"max_matches\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":1000,"
    "\"description\":\"stop after this many matching lines (default 20)\"},"
    "\"ignore_case\":{\"type\":\"boolean\"}},"
    "\"required\":[\"id\",\"pattern\"]},"
    "\"annotations\":{\"readOnlyHint\":true,\"openWorldHint\":false}},"
    "{\"name\":\"mcptun_outputs\",\"title\":\"List stored outputs\","
    "\"description\":\"Lists the large tool outputs mcptun stored for this "
    "session: id, URI, tool, size in bytes and lines, age and time left "
    "in seconds.\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{}},"
    "\"annotations\":{\"readOnlyHint\":true,\"openWorldHint\":false}}"
    "]";

size_t
offload_add_tools(json_t *result, const struct offload_conf *oc)
{
	json_t *tools = json_object_get(result, "tools"), *ours;
	json_error_t jerr;
	size_t n;

	if (offload_threshold(oc) == 0 || !json_is_array(tools) ||
	    json_is_string(json_object_get(result, "nextCursor")))
		return 0;
	if ((ours = json_loads(offload_tools_json, 0, &jerr)) == NULL)
		fatalx("offload: tool definitions: %s", jerr.text);
	n = json_array_size(ours);
	json_array_extend(tools, ours);
	json_decref(ours);
	return n;
}
