/*
 * The pure parts of the output offload (client/offload.c, included so its
 * static helpers can be reached): UTF-8 cutting and the preview, output
 * ids and URIs, the incremental JSON scanner (every document split at
 * every byte must give what jansson gives), the budgeted builder, the
 * probe, a whole message stored and answered, the line index and slices,
 * grep's caps and windows, the spool directory checks, ownership and
 * quota eviction.  No lws loop: client_context() is NULL here, so no
 * timer runs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/stat.h>

#include "client/offload.c"

struct lws_context *
client_context(void)
{
	return NULL;
}

static char tmpdir[] = "/tmp/mcptun-offload-test-XXXXXX";

static int
group_setup(void **state)
{
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
group_teardown(void **state)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* An offload config on a spool directory under tmpdir. */
static struct offload_conf *
conf_for(const char *sub, int64_t tokens, uint64_t quota)
{
	static struct offload_conf oc;
	static char dir[512];

	snprintf(dir, sizeof(dir), "%s/%s", tmpdir, sub);
	memset(&oc, 0, sizeof(oc));
	oc.threshold_tokens = tokens;
	oc.dir = dir;
	oc.max_total_bytes = quota;
	oc.ttl_ms = 3600 * 1000;
	return &oc;
}

/* ---- UTF-8 and the preview ------------------------------------------------ */

static void
test_utf8(void **state)
{
	const uint8_t s[] = "ab\xc3\xa9" "c\xe2\x9c\x93\xf0\x9f\x98\x80";
	uint8_t bad[] = "a\xc3(\xed\xa0\x80\xc0\xaf\xf4\x90\x80\x80z";

	/* Cuts never split a character. */
	assert_int_equal(outf8_cut(s, 2), 2);
	assert_int_equal(outf8_cut(s, 3), 2);		/* inside é */
	assert_int_equal(outf8_cut(s, 4), 4);
	assert_int_equal(outf8_cut(s, 6), 5);		/* inside ✓ */
	assert_int_equal(outf8_cut(s, 7), 5);
	assert_int_equal(outf8_cut(s, 8), 8);
	assert_int_equal(outf8_cut(s, 11), 8);		/* inside the emoji */
	assert_int_equal(outf8_cut(s, 12), 12);
	assert_int_equal(outf8_cut(s, 0), 0);
	/* A slice starting inside a character moves to the next one. */
	assert_int_equal(outf8_skip(s + 3, 9), 1);
	assert_int_equal(outf8_skip(s + 6, 6), 2);
	assert_int_equal(outf8_skip(s, 12), 0);
	/* Lone continuations, surrogates, overlongs, > U+10FFFF: '?'. */
	outf8_fix(bad, sizeof(bad) - 1);
	assert_string_equal((char *)bad, "a?(?????????z");
}

static void
test_preview(void **state)
{
	char text[8192];
	size_t i, n;

	for (i = 0, n = 0; i < 100; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n,
		    "line %03zu\n", i);
	/* 40 lines at most, ending after a newline. */
	assert_int_equal(offload_preview_len((uint8_t *)text, n, 4096, 40),
	    40 * 9);
	/* The byte cap wins, at the last whole line under it. */
	assert_int_equal(offload_preview_len((uint8_t *)text, n, 100, 40),
	    99);
	/* Shorter than both: all of it. */
	assert_int_equal(offload_preview_len((uint8_t *)"ab\ncd", 5, 4096,
	    40), 5);
	/* One long line: cut at a character boundary. */
	memset(text, 'x', 99);
	memcpy(text + 99, "\xc3\xa9\xc3\xa9", 4);
	assert_int_equal(offload_preview_len((uint8_t *)text, 103, 100, 40),
	    99);
	assert_int_equal(offload_preview_len((uint8_t *)text, 103, 101, 40),
	    101);
}

/* ---- ids and URIs: agents never name a path -------------------------------- */

static void
test_ids(void **state)
{
	char id[OFFLOAD_ID_LEN + 1];
	const char *q;
	const char *good = "0123456789abcdef0123456789abcdef";

	assert_true(offload_id_valid(good));
	assert_false(offload_id_valid("0123456789ABCDEF0123456789abcdef"));
	assert_false(offload_id_valid("0123456789abcdef0123456789abcde"));
	assert_false(offload_id_valid("0123456789abcdef0123456789abcdef0"));
	assert_false(offload_id_valid("../../../../etc/passwd/0123456789"));
	assert_false(offload_id_valid("0123456789abcdef0123456789abcde/"));
	assert_false(offload_id_valid(""));

	assert_int_equal(offload_parse_ref(good, id, &q), 0);
	assert_string_equal(id, good);
	assert_null(q);
	assert_int_equal(offload_parse_ref("mcptun://offload/"
	    "0123456789abcdef0123456789abcdef?offset=5&length=9", id, &q), 0);
	assert_string_equal(id, good);
	assert_string_equal(q, "offset=5&length=9");
	assert_int_equal(offload_parse_ref("mcptun://offload/../x", id, NULL),
	    MT_EINVAL);
	assert_int_equal(offload_parse_ref("mcptun://offload/"
	    "0123456789abcdef0123456789abcdef/../../x", id, NULL), MT_EINVAL);
	assert_int_equal(offload_parse_ref("file:///etc/passwd", id, NULL),
	    MT_EINVAL);
	assert_int_equal(offload_parse_ref("mcptun://offload/"
	    "0123456789abcdef0123456789abcdeg", id, NULL), MT_EINVAL);
}

/* ---- the scanner, through the builder ------------------------------------- */

struct scan_to_json {
	struct obuild	 b;
	json_t		*v;
};

static void
stj_event(void *arg, const struct oscan *sc, enum oscan_ev ev,
    const char *p, size_t n)
{
	struct scan_to_json *t = arg;

	if (!t->b.active)
		obuild_begin(&t->b, OB_WHOLE, SIZE_MAX / 4, sc->depth);
	obuild_event(&t->b, sc, ev, p, n);
	if (t->b.done)
		t->v = obuild_take(&t->b);
}

/* Scans doc in pieces of step bytes (0: split once at cut). */
static json_t *
scan(const char *doc, size_t len, size_t cut, size_t step, int *rc)
{
	struct scan_to_json t;
	struct oscan sc;
	size_t i, k;

	memset(&t, 0, sizeof(t));
	oscan_init(&sc, stj_event, &t);
	*rc = 0;
	if (step == 0) {
		if ((*rc = oscan_feed(&sc, (const uint8_t *)doc, cut)) == 0)
			*rc = oscan_feed(&sc, (const uint8_t *)doc + cut,
			    len - cut);
	} else
		for (i = 0; i < len && *rc == 0; i += step) {
			k = len - i < step ? len - i : step;
			*rc = oscan_feed(&sc, (const uint8_t *)doc + i, k);
		}
	if (*rc == 0)
		*rc = oscan_finish(&sc);
	obuild_reset(&t.b);
	if (*rc != 0) {
		json_decref(t.v);
		return NULL;
	}
	return t.v;
}

static void
test_scanner_split(void **state)
{
	static const char *const docs[] = {
		"{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"content\":[{\"type\":"
		    "\"text\",\"text\":\"a\\nb\\\"c\\\\d\\/e\\u00e9\\ud83d\\ude00"
		    "\\t\"}],\"isError\":false}}",
		"  [1, -0.5e+3, 0, 1E2, true, false, null, \"\", {}, [], "
		    "[[{\"a\":[{}]}]]]  ",
		"{\"k\\u00e9y\":\"\\u0000\",\"\\u20ac\":[\"\xe2\x82\xac\"]}",
		"\"just a string\"",
		"-12",
		"{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":[1,2,3]}}}}}}}",
	};
	json_t *want, *got;
	json_error_t jerr;
	size_t d, cut, len;
	int rc;

	for (d = 0; d < sizeof(docs) / sizeof(docs[0]); d++) {
		len = strlen(docs[d]);
		want = json_loadb(docs[d], len, JSON_DECODE_ANY |
		    JSON_ALLOW_NUL, &jerr);
		assert_non_null(want);
		for (cut = 0; cut <= len; cut++) {
			got = scan(docs[d], len, cut, 0, &rc);
			assert_int_equal(rc, 0);
			if (!json_equal(want, got))
				fail_msg("doc %zu split at %zu differs", d, cut);
			json_decref(got);
		}
		got = scan(docs[d], len, 0, 1, &rc);	/* byte by byte */
		assert_int_equal(rc, 0);
		assert_true(json_equal(want, got));
		json_decref(got);
		json_decref(want);
	}
}

static void
test_scanner_errors(void **state)
{
	static const char *const bad[] = {
		"{\"a\":}", "[1,]", "{\"a\" 1}", "\"\x01\"", "01", "tru",
		"{}x", "[", "{\"a\":1,}", "\"\\x\"", "\"\\u12G4\"", "1.",
		"-", "1e", "{1:2}", "[}", "}", "",
	};
	json_t *v;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = scan(bad[i], strlen(bad[i]), 0, 1, &rc);
		if (rc != MT_EMALFORMED)
			fail_msg("\"%s\" was accepted", bad[i]);
		assert_null(v);
	}
	/* A real out of range is null (as JSON.stringify), not lost. */
	v = scan("{\"a\":1e999,\"b\":[-1E400,2]}", 26, 0, 1, &rc);
	assert_int_equal(rc, 0);
	assert_true(json_is_null(json_object_get(v, "a")));
	assert_true(json_is_null(json_array_get(json_object_get(v, "b"), 0)));
	assert_int_equal(json_integer_value(json_array_get(json_object_get(v,
	    "b"), 1)), 2);
	json_decref(v);
	/* A lone surrogate is not an error: it stands for U+FFFD. */
	v = scan("\"a\\ud800b\\udc00\"", 16, 0, 1, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(json_string_value(v),
	    "a\xef\xbf\xbd" "b\xef\xbf\xbd");
	json_decref(v);
}

static void
test_builder_budget(void **state)
{
	struct scan_to_json t;
	struct oscan sc;
	char doc[65536];
	size_t n = 0, i;
	json_t *rows;

	n += (size_t)snprintf(doc + n, sizeof(doc) - n, "{\"rows\":[");
	for (i = 0; i < 1000; i++)
		n += (size_t)snprintf(doc + n, sizeof(doc) - n,
		    "%s{\"n\":%zu,\"s\":\"xxxxxxxxxxxxxxxxxxxx\"}", i ? "," : "",
		    i);
	n += (size_t)snprintf(doc + n, sizeof(doc) - n, "],\"count\":1000,"
	    "\"name\":\"a long name that does not fit\",\"more\":[1,2]}");

	/* Shrink: arrays end, later strings empty, scalars stay. */
	memset(&t, 0, sizeof(t));
	oscan_init(&sc, NULL, NULL);
	obuild_begin(&t.b, OB_SHRINK, 1000, 0);
	sc.cb = stj_event;
	sc.arg = &t;
	t.b.active = 1;
	assert_int_equal(oscan_feed(&sc, (uint8_t *)doc, n), 0);
	assert_int_equal(oscan_finish(&sc), 0);
	assert_true(t.b.shrunk || t.v != NULL);
	assert_non_null(t.v);
	rows = json_object_get(t.v, "rows");
	assert_true(json_array_size(rows) > 5);
	assert_true(json_array_size(rows) < 100);
	assert_int_equal(json_integer_value(json_object_get(t.v, "count")),
	    1000);
	assert_string_equal(json_string_value(json_object_get(t.v, "name")),
	    "");
	assert_int_equal(json_array_size(json_object_get(t.v, "more")), 0);
	json_decref(t.v);

	/* Whole: over the budget, nothing. */
	memset(&t, 0, sizeof(t));
	oscan_init(&sc, stj_event, &t);
	obuild_begin(&t.b, OB_WHOLE, 1000, 0);
	assert_int_equal(oscan_feed(&sc, (uint8_t *)doc, n), 0);
	assert_true(t.b.done || t.v == NULL);
	assert_null(t.v);
	obuild_reset(&t.b);
}

/* ---- the probe ------------------------------------------------------------- */

static void
test_probe(void **state)
{
	const char *yes = "{\"jsonrpc\":\"2.0\",\"id\":\"req-1\",\"result\":"
	    "{\"content\":[{\"type\":\"text\",\"text\":\"abc";
	json_t *id = NULL;

	assert_int_equal(offload_probe((const uint8_t *)yes, strlen(yes), &id), 0);
	assert_string_equal(json_string_value(id), "req-1");
	json_decref(id);
	id = NULL;
	/* Integer ids, leading blanks, other key orders before result. */
	yes = " \r\n{\"id\":42,\"jsonrpc\":\"2.0\",\"result\":{\"x\":\"";
	assert_int_equal(offload_probe((const uint8_t *)yes, strlen(yes), &id), 0);
	assert_int_equal(json_integer_value(id), 42);
	json_decref(id);
	id = NULL;
	/* The id after the result: cannot tell yet. */
	yes = "{\"jsonrpc\":\"2.0\",\"result\":{\"content\":[{\"text\":\"";
	assert_int_equal(offload_probe((const uint8_t *)yes, strlen(yes), &id),
	    MT_EINVAL);
	/* Errors, requests, notifications, garbage. */
	yes = "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"message\":\"";
	assert_int_equal(offload_probe((const uint8_t *)yes, strlen(yes), &id),
	    MT_EINVAL);
	yes = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"result\":{";
	assert_int_equal(offload_probe((const uint8_t *)yes, strlen(yes), &id),
	    MT_EINVAL);
	yes = "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"aaaa";
	assert_int_equal(offload_probe((const uint8_t *)yes, strlen(yes), &id),
	    MT_EINVAL);
	yes = "[{\"id\":1,\"result\":{";
	assert_int_equal(offload_probe((const uint8_t *)yes, strlen(yes), &id),
	    MT_EINVAL);
	yes = "{\"id\":1,,\"result\":{";
	assert_int_equal(offload_probe((const uint8_t *)yes, strlen(yes), &id),
	    MT_EINVAL);
	assert_null(id);
}

/* ---- a whole message stored and answered -----------------------------------*/

static char *
read_file(const char *path, size_t *lenp)
{
	struct buf b;
	uint8_t chunk[4096];
	ssize_t r;
	int fd;

	buf_init(&b, 0);
	assert_true((fd = open(path, O_RDONLY)) >= 0);
	while ((r = read(fd, chunk, sizeof(chunk))) > 0)
		buf_append(&b, chunk, (size_t)r);
	close(fd);
	return (char *)buf_take(&b, lenp);
}

static void
test_message(void **state)
{
	struct offload_owner who = { 0, "claude", "files" };
	struct offload_conf *oc = conf_for("spool-msg", 1000, 1 << 20);
	struct offload_info info;
	struct stat st;
	char *reply = NULL, *msg, *file, path[600];
	const char *text;
	json_t *m, *content, *link;
	size_t len, flen;
	struct buf b;
	int i;

	who.key = offload_owner_key();
	buf_init(&b, 0);
	buf_puts(&b, "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"content\":["
	    "{\"type\":\"text\",\"text\":\"");
	for (i = 1; i <= 100; i++) {
		snprintf(path, sizeof(path), "row %d \\u00e9\\n", i);
		buf_puts(&b, path);
	}
	buf_puts(&b, "\"},{\"type\":\"image\",\"data\":\"AAAA\",\"mimeType\":"
	    "\"image/png\"},{\"text\":\"second\",\"type\":\"text\"}],"
	    "\"structuredContent\":{\"n\":1},\"isError\":true}}");
	msg = (char *)buf_take(&b, &len);
	assert_int_equal(offload_message(oc, &who, "query", (uint8_t *)msg,
	    len, &reply, &len, &info), 0);
	free(msg);
	assert_int_equal(strlen(info.id), OFFLOAD_ID_LEN);
	m = json_loadb(reply, len, 0, NULL);
	assert_non_null(m);
	assert_int_equal(json_integer_value(json_object_get(m, "id")), 3);
	content = json_object_get(json_object_get(m, "result"), "content");
	text = json_string_value(json_object_get(json_array_get(content, 0),
	    "text"));
	assert_non_null(strstr(text, "The result of tool query was"));
	assert_non_null(strstr(text, info.id));
	/* The preview: 40 whole lines (under threshold/4 = 1000 bytes). */
	text = json_string_value(json_object_get(json_array_get(content, 1),
	    "text"));
	assert_non_null(text);
	assert_int_equal(strlen(text), 9 * 9 + 31 * 10);	/* 40 lines */
	assert_int_equal(text[strlen(text) - 1], '\n');
	assert_int_equal(strncmp(text, "row 1 \xc3\xa9\nrow 2 \xc3\xa9\n", 18),
	    0);
	link = json_array_get(content, 2);
	assert_string_equal(json_string_value(json_object_get(link, "type")),
	    "resource_link");
	assert_string_equal(json_string_value(json_object_get(link, "uri")) +
	    strlen(OFFLOAD_URI_PREFIX), info.id);
	assert_int_equal(json_integer_value(json_object_get(link, "size")),
	    info.bytes);
	/* The image is kept; isError too. */
	assert_string_equal(json_string_value(json_object_get(
	    json_array_get(content, 3), "type")), "image");
	assert_true(json_is_true(json_object_get(json_object_get(m, "result"),
	    "isError")));
	json_decref(m);
	free(reply);

	/* On disk: 0700 directory, 0600 file, the two texts joined. */
	assert_int_equal(stat(oc->dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	snprintf(path, sizeof(path), "%s/%s.out", oc->dir, info.id);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	file = read_file(path, &flen);
	assert_int_equal(flen, info.bytes);
	if (memcmp(file, "row 1 \xc3\xa9\nrow 2", 14) != 0)
		fail_msg("file starts with %.20s", file);
	assert_string_equal(file + flen - 17, "row 100 \xc3\xa9\nsecond");
	free(file);

	/* The session ends: the output goes. */
	offload_owner_end(who.key);
	assert_int_equal(stat(path, &st), -1);

	/* Not a result: left alone.  No text: an error for the id. */
	msg = "{\"jsonrpc\":\"2.0\",\"id\":4,\"error\":{\"code\":1,"
	    "\"message\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}}";
	assert_int_equal(offload_message(oc, &who, "query", (uint8_t *)msg,
	    strlen(msg), &reply, &len, &info), MT_EINVAL);
	msg = "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{\"content\":[{\"type\":"
	    "\"image\",\"data\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}]}}";
	assert_int_equal(offload_message(oc, &who, "query", (uint8_t *)msg,
	    strlen(msg), &reply, &len, &info), 0);
	assert_non_null(strstr(reply, "\"id\":5,\"error\":"));
	assert_non_null(strstr(reply, "holds no text to store"));
	assert_string_equal(info.id, "");
	free(reply);
	/* Malformed: an error for the id, nothing stored. */
	msg = "{\"jsonrpc\":\"2.0\",\"id\":6,\"result\":{\"content\":[{\"text\":"
	    "\"abc\\q\"}]}}";
	assert_int_equal(offload_message(oc, &who, "query", (uint8_t *)msg,
	    strlen(msg), &reply, &len, &info), 0);
	assert_non_null(strstr(reply, "malformed result for tool query (bad "
	    "escape at byte"));
	free(reply);
	assert_true(TAILQ_EMPTY(&oentries));
}

/* Stores text as one output of who in oc; returns it. */
static struct oentry *
store(struct offload_conf *oc, struct offload_owner *who, const char *text,
    size_t len)
{
	struct oentry *e;
	size_t i, k;

	assert_non_null(e = oentry_new(oc, who, "t"));
	/* In odd pieces, so the index sees newlines at every boundary. */
	for (i = 0; i < len; i += k) {
		k = 1 + (i * 7) % 13;
		if (k > len - i)
			k = len - i;
		assert_int_equal(oentry_write(e, (const uint8_t *)text + i, k),
		    0);
	}
	assert_int_equal(oentry_done(e), 0);
	return e;
}

static void
test_lines(void **state)
{
	struct offload_owner who = { 0, "claude", "files" };
	struct offload_conf *oc = conf_for("spool-lines", 1000, 1 << 24);
	struct oslice sl;
	struct oentry *e;
	struct buf b;
	char line[64], *text;
	uint64_t off, want;
	size_t len, i;
	int fd;

	who.key = offload_owner_key();
	buf_init(&b, 0);
	for (i = 1; i <= 5000; i++) {
		/* Lines of varying length. */
		snprintf(line, sizeof(line), "%zu:%.*s\n", i, (int)(i % 17),
		    "abcdefghijklmnopq");
		buf_puts(&b, line);
	}
	buf_puts(&b, "last line without a newline");
	text = (char *)buf_take(&b, &len);
	e = store(oc, &who, text, len);
	assert_int_equal(e->size, len);
	assert_int_equal(oentry_lines(e), 5001);
	/* One index entry per 1024 lines, each at a line start. */
	assert_int_equal(e->nindex, 5);
	for (i = 1; i < e->nindex; i++)
		assert_int_equal(text[e->index[i] - 1], '\n');
	assert_true((fd = oopen(e)) >= 0);
	for (i = 1; i <= 5002; i += 97) {
		assert_int_equal(oline_start(fd, e, i, &off), 0);
		if (i == 5001)
			want = (uint64_t)(strrchr(text, '\n') - text) + 1;
		else if (i > 5001)
			want = len;
		else {
			snprintf(line, sizeof(line), "\n%zu:", i);
			want = i == 1 ? 0 :
			    (uint64_t)(strstr(text, line) - text) + 1;
		}
		if (off != want)
			fail_msg("line %zu starts at %llu, not %llu", i,
			    (unsigned long long)off, (unsigned long long)want);
	}
	/* Lines 1024..1026: exact bytes. */
	memset(&sl, 0, sizeof(sl));
	buf_init(&sl.data, 0);
	assert_int_equal(oslice_lines(fd, e, 1024, 3, 1000, &sl), 0);
	assert_int_equal(buf_len(&sl.data), 3 + 3 * 6 + 3 + 4 + 5);
	assert_int_equal(memcmp(buf_ptr(&sl.data), "1024:abcd\n1025:abcde\n"
	    "1026:abcdef\n", buf_len(&sl.data)), 0);
	assert_non_null(strstr(sl.note, "Continue with start_line=1027."));
	/* Capped: whole lines under the cap. */
	buf_reset(&sl.data);
	assert_int_equal(oslice_lines(fd, e, 1, 5000, 100, &sl), 0);
	assert_true(buf_len(&sl.data) <= 100);
	assert_int_equal(buf_ptr(&sl.data)[buf_len(&sl.data) - 1], '\n');
	/* The last line, with no newline, and past the end. */
	buf_reset(&sl.data);
	assert_int_equal(oslice_lines(fd, e, 5001, 10, 1000, &sl), 0);
	assert_int_equal(buf_len(&sl.data), 27);
	assert_non_null(strstr(sl.note, "That is the end."));
	buf_reset(&sl.data);
	assert_int_equal(oslice_lines(fd, e, 6000, 10, 1000, &sl), 0);
	assert_int_equal(buf_len(&sl.data), 0);
	assert_non_null(strstr(sl.note, "past its end"));
	/* Bytes, capped, escaped size counted. */
	buf_reset(&sl.data);
	assert_int_equal(oslice_bytes(fd, e, 10, 1000, 50, &sl), 0);
	assert_true(buf_len(&sl.data) < 50);
	assert_int_equal(memcmp(buf_ptr(&sl.data), text + 10,
	    buf_len(&sl.data)), 0);
	close(fd);
	buf_free(&sl.data);
	free(text);
	offload_owner_end(who.key);
}

static void
test_grep(void **state)
{
	struct offload_owner who = { 0, "claude", "files" };
	struct offload_conf *oc = conf_for("spool-grep", 1000, 1 << 24);
	struct ogrep *g;
	struct oentry *e;
	struct buf b;
	char line[128], *text;
	const char *out;
	size_t len, i;

	who.key = offload_owner_key();
	buf_init(&b, 0);
	for (i = 1; i <= 3000; i++) {
		snprintf(line, sizeof(line), "%zu %s\n", i, i % 100 == 0 ?
		    "HIT" : "miss");
		buf_puts(&b, line);
	}
	/* A line of 200 KB with a match past its first 64 KB piece. */
	for (i = 0; i < 200000; i++)
		buf_append(&b, i == 150000 ? "H" : i == 150001 ? "I" :
		    i == 150002 ? "T" : "-", 1);
	buf_puts(&b, "\nend\n");
	text = (char *)buf_take(&b, &len);
	e = store(oc, &who, text, len);

#define GREP_NEW(pat, c_, m_, k_) do {				\
	g = xcalloc(1, sizeof(*g));					\
	assert_int_equal(regcomp(&g->re, pat, REG_EXTENDED), 0);	\
	g->fd = oopen(e);						\
	g->size = e->size;						\
	g->context = c_;						\
	g->max = m_;							\
	g->cap = k_;							\
	g->lineno = 1;							\
	buf_init(&g->seg, 0);						\
	buf_init(&g->first, 0);						\
	buf_init(&g->out, 0);						\
} while (0)

	/* max_matches, with context; small slices must not matter. */
	GREP_NEW("HIT", 1, 3, 100000);
	while (!ogrep_run(g, 100))
		;
	(void)buf_append(&g->out, "", 1);
	out = (const char *)buf_ptr(&g->out);
	assert_string_equal(out, "99-99 miss\n100:100 HIT\n101-101 miss\n--\n"
	    "199-199 miss\n200:200 HIT\n201-201 miss\n--\n299-299 miss\n"
	    "300:300 HIT\n301-301 miss\n");
	assert_int_equal(g->matches, 3);
	ogrep_free(g);

	/* The size cap stops it, with whole lines. */
	GREP_NEW("HIT", 0, 1000, 60);
	while (!ogrep_run(g, 1 << 20))
		;
	assert_true(g->full);
	assert_true(g->outcost <= 60);
	assert_int_equal(g->matches, 4);	/* 13 bytes each, escaped */
	ogrep_free(g);

	/* The long line: a window around the match, with its offset. */
	GREP_NEW("^-+HIT", 0, 10, 100000);
	while (!ogrep_run(g, 1 << 20))
		;
	assert_int_equal(g->matches, 1);
	(void)buf_append(&g->out, "", 1);
	out = (const char *)buf_ptr(&g->out);
	snprintf(line, sizeof(line), "3001:");
	assert_int_equal(strncmp(out, line, 5), 0);
	assert_non_null(strstr(out, "[line of 200000 bytes at offset"));
	ogrep_free(g);
	GREP_NEW("HIT-", 0, 10, 100000);
	while (!ogrep_run(g, 1 << 20))
		;
	assert_int_equal(g->matches, 1);
	(void)buf_append(&g->out, "", 1);
	out = (const char *)buf_ptr(&g->out);
	assert_non_null(strstr(out, "3001:..."));
	assert_non_null(strstr(out, "-HIT-"));
	snprintf(line, sizeof(line), "this part from offset %zu]",
	    (size_t)(strstr(text, "HIT-") - text) - 256);
	assert_non_null(strstr(out, line));
	/* The last line and its context. */
	ogrep_free(g);
	GREP_NEW("^end$", 1, 10, 100000);
	while (!ogrep_run(g, 1 << 20))
		;
	(void)buf_append(&g->out, "", 1);
	out = (const char *)buf_ptr(&g->out);
	assert_non_null(strstr(out, "3001-------"));
	assert_non_null(strstr(out, "... [line of 200000 bytes at offset"));
	assert_non_null(strstr(out, "\n3002:end\n"));
	ogrep_free(g);
#undef GREP_NEW
	free(text);
	offload_owner_end(who.key);
}

/* ---- the spool directory --------------------------------------------------- */

static void
test_dir_checks(void **state)
{
	char path[600], link[600], why[160];
	struct stat st;
	int fd;

	/* Made 0700 when missing. */
	snprintf(path, sizeof(path), "%s/new", tmpdir);
	assert_true((fd = odir_open(path, why, sizeof(why))) >= 0);
	close(fd);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	/* Open to the group: refused. */
	snprintf(path, sizeof(path), "%s/open", tmpdir);
	assert_int_equal(mkdir(path, 0750), 0);
	assert_int_equal(chmod(path, 0750), 0);
	assert_int_equal(odir_open(path, why, sizeof(why)), -1);
	assert_string_equal(why, "group or others may use it (mode 0750); it "
	    "must be 0700");
	/* A symbolic link to a good directory: refused. */
	snprintf(link, sizeof(link), "%s/link", tmpdir);
	snprintf(path, sizeof(path), "%s/new", tmpdir);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(odir_open(link, why, sizeof(why)), -1);
	assert_string_equal(why, "it is a symbolic link");
	/* A file. */
	snprintf(path, sizeof(path), "%s/file", tmpdir);
	assert_true((fd = open(path, O_CREAT | O_WRONLY, 0600)) >= 0);
	close(fd);
	assert_int_equal(odir_open(path, why, sizeof(why)), -1);
	assert_string_equal(why, "it is not a directory");
	/* Someone else's (only root can make one here). */
	if (geteuid() == 0) {
		snprintf(path, sizeof(path), "%s/theirs", tmpdir);
		assert_int_equal(mkdir(path, 0700), 0);
		assert_int_equal(chown(path, 65534, 65534), 0);
		assert_int_equal(odir_open(path, why, sizeof(why)), -1);
		assert_string_equal(why, "it is owned by uid 65534, not by this "
		    "process (uid 0)");
	}
	/* A missing parent. */
	snprintf(path, sizeof(path), "%s/no/such", tmpdir);
	assert_int_equal(odir_open(path, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "cannot create it"));
}

static void
test_owner_and_quota(void **state)
{
	struct offload_owner a = { 0, "claude", "files" };
	struct offload_owner b = { 0, "claude", "files" };
	struct offload_conf *oc = conf_for("spool-quota", 1000, 250);
	struct oentry *e1, *e2, *e3, *e4;
	char text[200];
	char id1[OFFLOAD_ID_LEN + 1], path[600];
	struct stat st;

	a.key = offload_owner_key();
	b.key = offload_owner_key();
	memset(text, 'x', sizeof(text));
	e1 = store(oc, &a, text, 100);
	snprintf(id1, sizeof(id1), "%s", e1->id);
	/* Only the owner, as the same agent, finds it. */
	assert_ptr_equal(oentry_find(a.key, "claude", id1), e1);
	assert_null(oentry_find(b.key, "claude", id1));
	assert_null(oentry_find(a.key, "other", id1));
	assert_null(oentry_find(a.key, NULL, id1));
	/* The quota (250): a third 100 evicts the oldest, any owner. */
	e2 = store(oc, &b, text, 100);
	e3 = store(oc, &a, text, 100);
	assert_null(oentry_find(a.key, "claude", id1));
	assert_ptr_equal(oentry_find(b.key, "claude", e2->id), e2);
	assert_ptr_equal(oentry_find(a.key, "claude", e3->id), e3);
	snprintf(path, sizeof(path), "%s/%s.out", oc->dir, id1);
	assert_int_equal(stat(path, &st), -1);
	/* Ending a's session leaves b's output. */
	snprintf(id1, sizeof(id1), "%s", e3->id);
	offload_owner_end(a.key);
	assert_null(oentry_find(a.key, "claude", id1));
	assert_ptr_equal(oentry_find(b.key, "claude", e2->id), e2);
	/* One result larger than the quota alone: refused (after evicting). */
	assert_non_null(e4 = oentry_new(oc, &a, "t"));
	assert_int_equal(oentry_write(e4, (uint8_t *)text, 200), 0);
	assert_int_equal(oentry_write(e4, (uint8_t *)text, 51), MT_ETOOBIG);
	assert_ptr_equal(TAILQ_FIRST(&oentries), e4);
	oentry_remove(e4, NULL);
	assert_true(TAILQ_EMPTY(&oentries));
	/* keep_after_session: stays (for the TTL and the quota). */
	oc->keep_after_session = 1;
	e1 = store(oc, &a, text, 10);
	offload_owner_end(a.key);
	assert_false(TAILQ_EMPTY(&oentries));
	oentry_remove(e1, NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_preview),
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_scanner_split),
		cmocka_unit_test(test_scanner_errors),
		cmocka_unit_test(test_builder_budget),
		cmocka_unit_test(test_probe),
		cmocka_unit_test(test_message),
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_grep),
		cmocka_unit_test(test_dir_checks),
		cmocka_unit_test(test_owner_and_quota),
	};

	log_init("test", LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
