/*
 * libFuzzer target for the output offload's incremental JSON scanner
 * (client/offload.c, included so its static parts can be reached).
 *
 * Input: one control byte, then the document.  The control byte seeds
 * the chunk sizes (1 to 64 bytes, from a small PRNG) and picks a budget
 * and, for one input in four, the whole sink.  Checks, any failure
 * aborts:
 *  - the document scanned whole and scanned in chunks gives the same
 *    events (string data joined), the same outcome and the same error
 *    text (positions are absolute); on an error the data passed on is a
 *    prefix of the other's;
 *  - depth in events never exceeds the nesting limit, container ends
 *    balance their starts;
 *  - when jansson accepts the document, so does the scanner (unless it
 *    hits one of its documented limits: nesting, number length, key
 *    length) and the value built from its events (obuild, OB_WHOLE) is
 *    json_equal to jansson's;
 *  - a budgeted OB_SHRINK build gives the same value whole and chunked;
 *  - offload_probe() takes any bytes and yields only a string or integer
 *    id;
 *  - the sink: offload_message() (whole) and a sink fed in chunks store
 *    the same bytes and answer the same (output id aside); the answer is
 *    JSON with the document's id.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/offload.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

struct lws_context *
client_context(void)
{
	return NULL;
}

/* ---- event traces ------------------------------------------------------- */

struct trace {
	struct buf	 ev;		/* events, with depth and bytes */
	struct buf	 data;		/* string data, joined */
	struct obuild	 whole;		/* jansson's twin */
	json_t		*v;
	struct obuild	 shrink;	/* budgeted */
	json_t		*sv;
	int		 sdone;
	size_t		 budget;
	size_t		 maxkey;	/* longest key seen */
	size_t		 open;		/* containers open */
};

static void
trace_event(void *arg, const struct oscan *sc, enum oscan_ev ev,
    const char *p, size_t n)
{
	struct trace *t = arg;
	uint8_t hdr[5];
	uint64_t dl;

	if (sc->depth > OSCAN_DEPTH_MAX)
		abort();
	switch (ev) {
	case OEV_OBJ:
	case OEV_ARR:
		t->open++;
		break;
	case OEV_OBJ_END:
	case OEV_ARR_END:
		if (t->open == 0 || sc->depth != t->open - 1)
			abort();
		t->open--;
		break;
	case OEV_KEY:
		if (sc->keyfull > t->maxkey)
			t->maxkey = sc->keyfull;
		if (n > OSCAN_KEY_MAX)
			abort();
		break;
	default:
		break;
	}
	if (ev == OEV_STR_DATA) {
		if (n == 0)
			abort();
		(void)buf_append(&t->data, p, n);
	} else {
		hdr[0] = (uint8_t)ev;
		hdr[1] = (uint8_t)(sc->depth >> 8);
		hdr[2] = (uint8_t)sc->depth;
		hdr[3] = (uint8_t)(n >> 8);
		hdr[4] = (uint8_t)n;
		(void)buf_append(&t->ev, hdr, sizeof(hdr));
		if (p != NULL)
			(void)buf_append(&t->ev, p, n);
		if (ev == OEV_STR_END) {
			/* Where the string's data ended. */
			dl = buf_len(&t->data);
			(void)buf_append(&t->ev, &dl, sizeof(dl));
		}
	}
	if (!t->whole.active && t->v == NULL)
		obuild_begin(&t->whole, OB_WHOLE, SIZE_MAX / 4, sc->depth);
	if (t->whole.active) {
		obuild_event(&t->whole, sc, ev, p, n);
		if (t->whole.done)
			t->v = obuild_take(&t->whole);
	}
	if (!t->shrink.active && !t->sdone)
		obuild_begin(&t->shrink, OB_SHRINK, t->budget, sc->depth);
	if (t->shrink.active) {
		obuild_event(&t->shrink, sc, ev, p, n);
		if (t->shrink.done) {
			t->sv = obuild_take(&t->shrink);
			t->sdone = 1;
		}
	}
}

static void
trace_free(struct trace *t)
{
	buf_free(&t->ev);
	buf_free(&t->data);
	obuild_reset(&t->whole);
	obuild_reset(&t->shrink);
	json_decref(t->v);
	json_decref(t->sv);
}

/* Chunk sizes: 1..64 bytes from a xorshift seeded by the control byte. */
static size_t
next_chunk(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return 1 + *x % 64;
}

/* Scans doc whole (seed 0) or in chunks; returns the outcome. */
static int
scan(struct oscan *sc, struct trace *t, const uint8_t *doc, size_t len,
    uint32_t seed, size_t budget)
{
	size_t i, k;
	int rc = 0;

	memset(t, 0, sizeof(*t));
	buf_init(&t->ev, 0);
	buf_init(&t->data, 0);
	t->budget = budget;
	oscan_init(sc, trace_event, t);
	if (seed == 0)
		rc = oscan_feed(sc, doc, len);
	else
		for (i = 0; i < len && rc == 0; i += k) {
			k = next_chunk(&seed);
			if (k > len - i)
				k = len - i;
			rc = oscan_feed(sc, doc + i, k);
		}
	if (rc == 0)
		rc = oscan_finish(sc);
	if ((rc == 0) != (sc->state == OS_DONE))
		abort();
	return rc;
}

static int
same_json(const json_t *a, const json_t *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return json_equal(a, b);
}

/* 1 if the scanner stopped at one of its documented limits. */
static int
at_limit(const struct oscan *sc, const struct trace *t)
{
	return strncmp(sc->err, "nested too deeply", 17) == 0 ||
	    strncmp(sc->err, "number too long", 15) == 0 ||
	    t->maxkey > OSCAN_KEY_MAX;
}

static void
check_scanner(const uint8_t *doc, size_t len, uint8_t ctl)
{
	static struct oscan a, b;	/* large: not on the stack */
	struct trace ta, tb;
	size_t n, budget = 16 + (size_t)(ctl >> 2) * 8;
	json_error_t jerr;
	json_t *want;
	int ra, rb;

	ra = scan(&a, &ta, doc, len, 0, budget);
	rb = scan(&b, &tb, doc, len, 0x9e3779b9u * (ctl + 1u), budget);
	if (ra != rb || strcmp(a.err, b.err) != 0)
		abort();
	if (buf_len(&ta.ev) != buf_len(&tb.ev) || (buf_len(&ta.ev) > 0 &&
	    memcmp(buf_ptr(&ta.ev), buf_ptr(&tb.ev), buf_len(&ta.ev)) != 0))
		abort();
	n = buf_len(&ta.data) < buf_len(&tb.data) ? buf_len(&ta.data) :
	    buf_len(&tb.data);
	if (n > 0 && memcmp(buf_ptr(&ta.data), buf_ptr(&tb.data), n) != 0)
		abort();
	if (ra == 0) {
		if (buf_len(&ta.data) != buf_len(&tb.data) || ta.open != 0 ||
		    ta.v == NULL || !json_equal(ta.v, tb.v) ||
		    !same_json(ta.sv, tb.sv))
			abort();
	}
	/*
	 * jansson stops at a raw NUL after a top-level number ("0\0" loads
	 * as 0); the scanner rightly refuses it, so such input is not
	 * compared.
	 */
	want = memchr(doc, '\0', len) != NULL ? NULL : json_loadb((const
	    char *)doc, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (want != NULL && !at_limit(&a, &ta)) {
		if (ra != 0 || !json_equal(want, ta.v))
			abort();
	}
	json_decref(want);
	trace_free(&ta);
	trace_free(&tb);
}

static void
check_probe(const uint8_t *doc, size_t len)
{
	json_t *id = NULL;

	if (offload_probe(doc, len, &id) == 0) {
		if (!json_is_string(id) && !json_is_integer(id))
			abort();
		json_decref(id);
	} else if (id != NULL)
		abort();
}

/* ---- the sink ------------------------------------------------------------ */

static char spool[] = "/tmp/mcptun-fuzz-offload-XXXXXX";
static int spool_ok;

struct answer {
	char			*reply;
	size_t			 len;
	struct offload_info	 info;
	int			 calls;
};

static void
sink_done(void *arg, const uint8_t *reply, size_t len,
    const struct offload_info *info)
{
	struct answer *an = arg;

	an->calls++;
	free(an->reply);
	an->reply = xmalloc(len + 1);
	memcpy(an->reply, reply, len);
	an->reply[len] = '\0';
	an->len = len;
	an->info = *info;
}

/* The stored text of output id, or NULL. */
static void *
stored(const char *id, size_t *lenp)
{
	char path[sizeof(spool) + OFFLOAD_ID_LEN + 8];
	struct buf b;
	uint8_t chunk[4096];
	ssize_t r;
	int fd;

	snprintf(path, sizeof(path), "%s/%s.out", spool, id);
	if ((fd = open(path, O_RDONLY)) < 0)
		return NULL;
	buf_init(&b, 0);
	while ((r = read(fd, chunk, sizeof(chunk))) > 0)
		(void)buf_append(&b, chunk, (size_t)r);
	close(fd);
	*lenp = 0;
	if (buf_len(&b) == 0) {
		buf_free(&b);
		return xstrdup("");
	}
	return buf_take(&b, lenp);
}

/* reply with every occurrence of id replaced by x's. */
static void
unid(char *reply, const char *id)
{
	char *s;

	if (id[0] == '\0')
		return;
	while ((s = strstr(reply, id)) != NULL)
		memset(s, 'x', OFFLOAD_ID_LEN);
}

static void
check_answer(const char *reply, size_t len, const uint8_t *doc,
    size_t doclen)
{
	json_t *msg, *orig, *id;
	json_error_t jerr;

	/* An id may hold \u0000, as the upstream wrote it. */
	if ((msg = json_loadb(reply, len, JSON_ALLOW_NUL, &jerr)) == NULL)
		abort();
	/*
	 * The answer carries the id the document had, when it parses and
	 * its (last) id is one the sink takes: an integer or a short string.
	 */
	orig = json_loadb((const char *)doc, doclen, JSON_DECODE_ANY |
	    JSON_ALLOW_NUL, &jerr);
	id = json_object_get(orig, "id");
	if ((json_is_integer(id) || (json_is_string(id) &&
	    json_string_length(id) < 512)) &&
	    !json_equal(id, json_object_get(msg, "id")))
		abort();
	json_decref(orig);
	json_decref(msg);
}

static void
check_sink(const uint8_t *doc, size_t len, uint8_t ctl)
{
	static uint64_t key;
	struct offload_conf oc;
	struct offload_owner who;
	struct offload_info info;
	struct offload_sink *k;
	struct answer an;
	uint8_t *s1, *s2;
	size_t l1 = 0, l2 = 0, i, c, outlen = 0;
	uint32_t seed = 0x85ebca6bu * (ctl + 1u);
	char *out = NULL;
	int r;

	if (!spool_ok)
		return;
	memset(&oc, 0, sizeof(oc));
	oc.threshold_tokens = (int64_t)1 << (2 * (ctl >> 6) + 2);
	oc.dir = spool;
	oc.max_total_bytes = 1 << 20;
	oc.ttl_ms = 3600 * 1000;
	who = (struct offload_owner){ ++key, "agent", "server" };
	memset(&info, 0, sizeof(info));
	r = offload_message(&oc, &who, "tool", doc, len, &out, &outlen, &info);
	memset(&an, 0, sizeof(an));
	if ((k = offload_sink_open(&oc, &who, "tool", sink_done, &an)) == NULL)
		abort();
	for (i = 0; i < len; i += c) {
		c = next_chunk(&seed);
		if (c > len - i)
			c = len - i;
		offload_sink_write(k, doc + i, c);
	}
	offload_sink_end(k);
	if (r == 0) {
		if (an.calls != 1 || strcmp(an.info.id[0] != '\0' ?
		    "stored" : "none", info.id[0] != '\0' ? "stored" :
		    "none") != 0 || an.info.bytes != info.bytes)
			abort();
		check_answer(out, outlen, doc, len);
		check_answer(an.reply, an.len, doc, len);
		if (info.id[0] != '\0') {
			s1 = stored(info.id, &l1);
			s2 = stored(an.info.id, &l2);
			if (s1 == NULL || s2 == NULL || l1 != l2 ||
			    l1 != info.bytes || memcmp(s1, s2, l1) != 0)
				abort();
			free(s1);
			free(s2);
		}
		unid(out, info.id);
		unid(an.reply, an.info.id);
		if (outlen != an.len || strcmp(out, an.reply) != 0)
			abort();
	} else if (r != MT_EINVAL)
		abort();
	free(out);
	free(an.reply);
	offload_owner_end(who.key);
}

static void
spool_rm(void)
{
	if (spool_ok)
		(void)rmdir(spool);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_init("fuzz", LOG_LVL_ERROR);
	if (mkdtemp(spool) != NULL) {
		spool_ok = 1;
		atexit(spool_rm);
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	check_scanner(data + 1, size - 1, data[0]);
	check_probe(data + 1, size - 1);
	if ((data[0] & 3) == 0)
		check_sink(data + 1, size - 1, data[0]);
	return 0;
}
