/*
 * The session layer (client/session.c) with the link and the upstream
 * faked: the pending-request table, tools/list filtering, the allowlist
 * and session limit on open, denied tools/call, request timeouts, an
 * upstream exit failing every pending call, backpressure both ways,
 * malformed input, reload of tool filters, and the audit log lines.
 *
 * session.c and audit.c are included so their static helpers can be
 * tested directly; client_conf.o is linked for real config snapshots.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/stat.h>

#include "client/session.c"
#include "client/merge.c"
#include "client/merge_names.c"
#include "client/audit.c"
#include "client/offload.c"

#define MAXREC	32

/* ---- fakes: the link -------------------------------------------------- */

static struct client_conf *cur;
static struct lws_context *ctx;
static lws_sorted_usec_list_t tick_sul;

static char *to_agent[MAXREC];
static int nto_agent;
static int link_rc;
static size_t queued;
static int congested;
static int stream_ended;
static uint16_t end_code;
static char end_text[256];
static int link_pauses, link_resumes;

const struct client_conf *
client_conf_current(void)
{
	return cur;
}

struct lws_vhost *
client_vhost(void)
{
	return NULL;
}

struct lws_context *
client_context(void)
{
	return ctx;
}

int
link_send(uint32_t stream, const void *msg, size_t len)
{
	if (link_rc != 0)
		return link_rc;
	if (nto_agent < MAXREC)
		to_agent[nto_agent++] = xstrndup(msg, len);
	return 0;
}

size_t
link_queued(uint32_t stream)
{
	return queued;
}

int
link_congested(void)
{
	return congested;
}

void
link_stream_end(uint32_t stream, uint16_t code, const char *text)
{
	stream_ended++;
	end_code = code;
	snprintf(end_text, sizeof(end_text), "%s", text);
}

void
link_pause(uint32_t stream)
{
	link_pauses++;
}

void
link_resume(uint32_t stream)
{
	link_resumes++;
}

/* ---- fakes: the upstream ---------------------------------------------- */

struct upstream {
	const struct upstream_ops	*ops;
	void				*arg;
	char				 server[64];
};

static struct upstream *up;		/* the last one opened */
static char *to_up[MAXREC];
static char to_up_srv[MAXREC][64];	/* which server got to_up[i] */
static int nto_up;
static struct upstream *mups[8];	/* opened by the merged test */
static int nmups;
static int up_send_rc, up_open_fail, up_closes, up_pauses, up_resumes;
static char up_err[256];

void
upstream_set_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(up_err, sizeof(up_err), fmt, ap);
	va_end(ap);
}

const char *
upstream_take_error(void)
{
	static char taken[256];

	snprintf(taken, sizeof(taken), "%s", up_err);
	up_err[0] = '\0';
	return taken;
}

static int
fake_open(struct lws_vhost *vh, const struct server_conf *sc,
    const char *agent, const char *tag, const struct upstream_ops *ops,
    void *arg, struct upstream **out)
{
	if (up_open_fail) {
		upstream_set_error("cannot run %s: No such file or directory",
		    sc->command);
		return MT_EIO;
	}
	up = xcalloc(1, sizeof(*up));
	up->ops = ops;
	up->arg = arg;
	snprintf(up->server, sizeof(up->server), "%s", sc->name);
	*out = up;
	return 0;
}

static int
fake_send(struct upstream *u, const uint8_t *msg, size_t len)
{
	if (up_send_rc != 0 && up_send_rc != MT_EAGAIN)
		return up_send_rc;
	if (nto_up < MAXREC) {
		snprintf(to_up_srv[nto_up], sizeof(to_up_srv[0]), "%s",
		    u->server);
		to_up[nto_up++] = xstrndup((const char *)msg, len);
	}
	return up_send_rc;
}

static void
fake_close(struct upstream *u)
{
	int i;

	up_closes++;
	if (u == up)
		up = NULL;
	for (i = 0; i < nmups; i++)
		if (mups[i] == u)
			mups[i] = NULL;
	free(u);
}

static void
fake_pause(struct upstream *u)
{
	up_pauses++;
}

static void
fake_resume(struct upstream *u)
{
	up_resumes++;
}

/* Not const: the merged test swaps in an open that remembers each one. */
static struct upstream_kind fake_kind = {
	"stdio", fake_open, fake_send, fake_close, fake_pause, fake_resume
};

const struct upstream_kind *
upstream_kind_for(const struct server_conf *sc)
{
	return sc->type == SERVER_STDIO ? &fake_kind : NULL;
}

/* ---- helpers ---------------------------------------------------------- */

static char audit_file[] = "/tmp/mcptun-audit-XXXXXX";

static const char conf_fmt[] =
    "relay:\n"
    "  url: wss://relay.example/tunnel\n"
    "  tunnel: acme\n"
    "  token: abcdefghijklmnopqrstuvwxyz012345\n"
    "audit_log: %s\n"
    "limits:\n"
    "  request_timeout: %s\n"
    "servers:\n"
    "  files:\n"
    "    command: cat\n"
    "    max_sessions: 2\n"
    "    tools:\n"
    "      allow: [\"read_*\", list%s]\n"
    "      deny: [read_secret]\n"
    "  web:\n"
    "    type: http\n"
    "    url: https://wiki.example/mcp\n";

static struct client_conf *
load_conf(const char *timeout, const char *extra_allow, int with_files)
{
	struct client_conf *c = NULL;
	char text[2048], err[1024];
	int r;

	if (with_files)
		snprintf(text, sizeof(text), conf_fmt, audit_file, timeout,
		    extra_allow);
	else	/* the same without the files server */
		snprintf(text, sizeof(text), "relay:\n"
		    "  url: wss://relay.example/tunnel\n"
		    "  tunnel: acme\n"
		    "  token: abcdefghijklmnopqrstuvwxyz012345\n"
		    "audit_log: %s\n"
		    "servers:\n  web:\n    type: http\n"
		    "    url: https://wiki.example/mcp\n", audit_file);
	r = client_conf_load_mem("test.yaml", text, strlen(text), &c, err,
	    sizeof(err));
	if (r != 0)
		print_error("config: %s\n", err);
	assert_int_equal(r, 0);
	return c;
}

static void
reset_records(void)
{
	int i;

	for (i = 0; i < nto_agent; i++)
		free(to_agent[i]);
	for (i = 0; i < nto_up; i++)
		free(to_up[i]);
	nto_agent = nto_up = 0;
	link_rc = 0;
	queued = 0;
	congested = 0;
	stream_ended = 0;
	end_code = 0;
	end_text[0] = '\0';
	link_pauses = link_resumes = 0;
	up_send_rc = up_open_fail = up_closes = up_pauses = up_resumes = 0;
}

static void
tick(lws_sorted_usec_list_t *sul)
{
	lws_sul_schedule(ctx, 0, &tick_sul, tick, 10 * LWS_US_PER_MS);
}

static void
run_ms(int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;

	while (now_ms() < end)
		lws_service(ctx, 0);
}

static void
input(struct session *s, const char *text)
{
	session_input(s, (const uint8_t *)text, strlen(text));
}

static void
from_up(const char *text)
{
	char *copy = xstrdup(text);

	up->ops->on_message(up->arg, (const uint8_t *)copy, strlen(copy));
	free(copy);
}

static struct session *
open_files(uint32_t id)
{
	struct session *s = NULL;
	char why[256] = "";

	assert_int_equal(session_open(id, "files", "agent-1", NULL, 0, NULL,
	    0, &s, why, sizeof(why)), 0);
	assert_non_null(s);
	return s;
}

/* The audit log's lines so far, as one string (caller frees). */
static char *
audit_text(void)
{
	FILE *f = fopen(audit_file, "r");
	char *text = xcalloc(1, 65536);
	size_t n;

	assert_non_null(f);
	n = fread(text, 1, 65535, f);
	text[n] = '\0';
	fclose(f);
	return text;
}

static void
audit_truncate(void)
{
	FILE *f = fopen(audit_file, "w");

	assert_non_null(f);
	fclose(f);
}

static int
setup(void **state)
{
	reset_records();
	audit_truncate();
	cur = load_conf("200ms", "", 1);
	return 0;
}

static int
teardown(void **state)
{
	reset_records();
	client_conf_unref(cur);
	cur = NULL;
	audit_close();
	return 0;
}

static int
group_setup(void **state)
{
	struct lws_context_creation_info info;
	static const struct lws_protocols protos[] = {
		{ "dummy", lws_callback_http_dummy, 0, 0, 0, NULL, 0 },
		LWS_PROTOCOL_LIST_TERM
	};
	int fd;

	log_init("test_session", LOG_LVL_ERROR);
	lws_set_log_level(LLL_ERR, NULL);
	if ((fd = mkstemp(audit_file)) < 0)
		return -1;
	close(fd);
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
	info.protocols = protos;
	if ((ctx = lws_create_context(&info)) == NULL)
		return -1;
	tick(NULL);
	return 0;
}

static int
group_teardown(void **state)
{
	lws_sul_cancel(&tick_sul);
	lws_context_destroy(ctx);
	unlink(audit_file);
	return 0;
}

/* ---- the pure parts --------------------------------------------------- */

static void
test_pending_table(void **state)
{
	struct pending_table t;
	struct pending *p1, *p2, *p3;
	json_t *i1 = json_integer(1), *s1 = json_string("1");
	json_t *i2 = json_integer(2), *i9 = json_integer(9);

	pending_init(&t);
	assert_int_equal(pending_next_deadline(&t), 0);
	p1 = pending_add(&t, i1, "tools/call", "read_file", 1000, 500, 10);
	assert_non_null(p1);
	/* "1" and 1 are different ids. */
	p2 = pending_add(&t, s1, "tools/list", NULL, 1100, 100, 20);
	assert_non_null(p2);
	assert_null(pending_add(&t, i1, "ping", NULL, 1200, 100, 5));
	p3 = pending_add(&t, i2, "ping", NULL, 1200, 0, 5);
	assert_non_null(p3);
	assert_int_equal(t.count, 3);
	assert_ptr_equal(pending_find(&t, i1), p1);
	assert_ptr_equal(pending_find(&t, s1), p2);
	assert_null(pending_find(&t, i9));
	assert_null(pending_find(&t, NULL));
	assert_string_equal(p1->tool, "read_file");
	assert_null(p2->tool);
	assert_int_equal(p1->deadline_ms, 1500);
	assert_int_equal(p3->deadline_ms, 0);
	/* The earliest deadline, not the oldest entry's. */
	assert_int_equal(pending_next_deadline(&t), 1200);
	pending_remove(&t, p2);
	assert_int_equal(pending_next_deadline(&t), 1500);
	pending_remove(&t, p1);
	assert_int_equal(pending_next_deadline(&t), 0);
	pending_remove(&t, p3);
	assert_int_equal(t.count, 0);
	assert_true(TAILQ_EMPTY(&t.list));
	json_decref(i1);
	json_decref(s1);
	json_decref(i2);
	json_decref(i9);
}

static void
test_filter_tools(void **state)
{
	const struct server_conf *sc = client_conf_server(cur, "files");
	json_t *result, *tools;
	char *s;

	result = json_loads("{\"tools\":[{\"name\":\"read_file\"},"
	    "{\"name\":\"read_secret\"},{\"name\":\"write_file\"},"
	    "{\"name\":\"list\",\"description\":\"d\"},{\"title\":\"x\"},"
	    "{\"name\":7}],\"nextCursor\":\"c\"}", 0, NULL);
	assert_non_null(result);
	assert_int_equal(session_filter_tools(result, sc), 4);
	tools = json_object_get(result, "tools");
	assert_int_equal(json_array_size(tools), 2);
	s = json_dumps(result, JSON_COMPACT);
	assert_string_equal(s, "{\"tools\":[{\"name\":\"read_file\"},"
	    "{\"name\":\"list\",\"description\":\"d\"}],\"nextCursor\":\"c\"}");
	free(s);
	/* No tools array: nothing to do. */
	assert_int_equal(session_filter_tools(tools, sc), 0);
	json_decref(result);
}

static void
test_audit_format(void **state)
{
	struct audit_rec r;
	struct stat st;
	char *line;
	size_t len;

	memset(&r, 0, sizeof(r));
	r.time_ms = 1764411910123ULL;	/* 2025-11-29T10:25:10.123Z */
	r.tunnel = "acme";
	r.agent = "bot\"1\n";
	r.server = "files";
	r.session = 7;
	r.method = "tools/call";
	r.tool = "read_file";
	r.duration_ms = 42;
	r.bytes_in = 100;
	r.bytes_out = 2000;
	r.outcome = "ok";
	line = audit_format(&r, &len);
	assert_string_equal(line, "{\"time\":\"2025-11-29T10:25:10.123Z\","
	    "\"tunnel\":\"acme\",\"agent\":\"bot\\\"1\\n\",\"server\":\"files\","
	    "\"session\":7,\"method\":\"tools/call\",\"tool\":\"read_file\","
	    "\"duration_ms\":42,\"bytes_in\":100,\"bytes_out\":2000,"
	    "\"outcome\":\"ok\"}\n");
	assert_int_equal(len, strlen(line));
	free(line);
	/* No tool key unless there is a tool; bad UTF-8 is replaced. */
	r.tool = NULL;
	r.agent = "\xff\xfe";
	line = audit_format(&r, &len);
	assert_null(strstr(line, "\"tool\""));
	assert_non_null(strstr(line, "\"agent\":\"(not UTF-8)\""));
	free(line);

	/* The file is created 0600 and appended to. */
	unlink(audit_file);
	audit_close();
	audit_write(audit_file, &r);
	audit_write(audit_file, &r);
	assert_int_equal(stat(audit_file, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	line = audit_text();
	assert_non_null(strchr(line, '\n'));
	assert_non_null(strchr(strchr(line, '\n') + 1, '\n'));
	free(line);
}

/* ---- sessions --------------------------------------------------------- */

static void
test_open_refusals(void **state)
{
	struct session *s = NULL, *a, *b;
	char why[256];

	assert_int_equal(session_open(1, "nope", "agent", NULL, 0, NULL, 0,
	    &s, why, sizeof(why)), CLOSE_NOT_FOUND);
	assert_string_equal(why, "unknown server nope");
	assert_null(s);
	/* Whatever the relay sends comes back printable and bounded. */
	assert_int_equal(session_open(1, "a\nb\x1b[31m", "agent", NULL, 0,
	    NULL, 0, &s, why, sizeof(why)), CLOSE_NOT_FOUND);
	assert_string_equal(why, "unknown server a?b?[31m");
	assert_int_equal(session_open(1, "*", "agent", NULL, 0, NULL, 0, &s,
	    why, sizeof(why)), CLOSE_NOT_FOUND);
	assert_string_equal(why, "none of the servers the agent may use is "
	    "in the allowlist");
	assert_int_equal(session_open(1, "web", "agent", NULL, 0, NULL, 0,
	    &s, why, sizeof(why)), CLOSE_UPSTREAM);
	assert_string_equal(why, "server type http not supported yet");

	up_open_fail = 1;
	assert_int_equal(session_open(1, "files", "agent", NULL, 0, NULL, 0,
	    &s, why, sizeof(why)), CLOSE_UPSTREAM);
	assert_string_equal(why, "cannot run cat: No such file or directory");
	up_open_fail = 0;

	a = open_files(1);
	b = open_files(2);
	assert_int_equal(session_open(3, "files", "agent", NULL, 0, NULL, 0,
	    &s, why, sizeof(why)), CLOSE_LIMIT);
	assert_string_equal(why, "server files has reached its limit of 2 "
	    "sessions");
	session_close(a);
	s = open_files(3);	/* room again */
	session_close(b);
	session_close(s);
	assert_int_equal(up_closes, 3);
	assert_int_equal(stream_ended, 0);	/* the relay closed them */
}

static void
test_tools_call(void **state)
{
	struct session *s = open_files(5);
	char *log;

	input(s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
	    "\"params\":{\"name\":\"write_file\",\"arguments\":{}}}");
	assert_int_equal(nto_up, 0);
	assert_int_equal(nto_agent, 1);
	assert_string_equal(to_agent[0], "{\"jsonrpc\":\"2.0\",\"id\":1,"
	    "\"error\":{\"code\":-32003,\"message\":\"tool write_file is not "
	    "allowed on server files\"}}");
	/* Deny wins over allow's glob. */
	input(s, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\","
	    "\"params\":{\"name\":\"read_secret\"}}");
	assert_int_equal(nto_up, 0);
	assert_non_null(strstr(to_agent[1], "-32003"));
	/* No name: refused, not forwarded. */
	input(s, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\","
	    "\"params\":{}}");
	assert_int_equal(nto_up, 0);
	assert_non_null(strstr(to_agent[2], "-32602"));
	/* A tools/call notification would bypass the answer: dropped. */
	input(s, "{\"jsonrpc\":\"2.0\",\"method\":\"tools/call\","
	    "\"params\":{\"name\":\"write_file\"}}");
	assert_int_equal(nto_up, 0);
	assert_int_equal(nto_agent, 3);

	/* Strict parsing: a NUL or a duplicate key never reaches a check. */
	input(s, "{\"jsonrpc\":\"2.0\",\"id\":30,\"method\":\"tools/call\","
	    "\"params\":{\"name\":\"read_x\\u0000write_file\"}}");
	input(s, "{\"jsonrpc\":\"2.0\",\"id\":31,\"method\":\"tools/call\","
	    "\"params\":{\"name\":\"read_file\",\"name\":\"write_file\"}}");
	assert_int_equal(nto_up, 0);
	assert_int_equal(nto_agent, 3);

	/* Allowed: forwarded byte for byte, answer relayed. */
	input(s, "{\"jsonrpc\":\"2.0\", \"id\":\"r4\",\"method\":\"tools/call\","
	    "\"params\":{\"name\":\"read_file\",\"arguments\":{\"x\":\"arg-417\"}}}");
	assert_int_equal(nto_up, 1);
	assert_string_equal(to_up[0], "{\"jsonrpc\":\"2.0\", \"id\":\"r4\","
	    "\"method\":\"tools/call\",\"params\":{\"name\":\"read_file\","
	    "\"arguments\":{\"x\":\"arg-417\"}}}");
	assert_int_equal(s->pending.count, 1);
	from_up("{\"jsonrpc\":\"2.0\",\"id\":\"r4\",\"result\":{\"content\":[]}}");
	assert_int_equal(nto_agent, 4);
	assert_string_equal(to_agent[3], "{\"jsonrpc\":\"2.0\",\"id\":\"r4\","
	    "\"result\":{\"content\":[]}}");
	assert_int_equal(s->pending.count, 0);
	/* A second answer to the same id goes nowhere. */
	from_up("{\"jsonrpc\":\"2.0\",\"id\":\"r4\",\"result\":{}}");
	assert_int_equal(nto_agent, 4);

	session_close(s);
	log = audit_text();
	assert_non_null(strstr(log, "\"method\":\"tools/call\","
	    "\"tool\":\"write_file\""));
	assert_non_null(strstr(log, "\"outcome\":\"denied\""));
	assert_non_null(strstr(log, "\"tool\":\"read_file\""));
	assert_non_null(strstr(log, "\"outcome\":\"ok\""));
	assert_non_null(strstr(log, "\"agent\":\"agent-1\""));
	assert_non_null(strstr(log, "\"tunnel\":\"acme\""));
	assert_non_null(strstr(log, "\"session\":5"));
	/* Never the arguments. */
	assert_null(strstr(log, "arg-417"));
	free(log);
}

static void
test_tools_list_filtered(void **state)
{
	struct session *s = open_files(6);

	input(s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
	assert_int_equal(nto_up, 1);
	/* Not re-serialised: only tools/call is. */
	assert_string_equal(to_up[0],
	    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
	from_up("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":["
	    "{\"name\":\"read_file\",\"inputSchema\":{}},"
	    "{\"name\":\"write_file\",\"inputSchema\":{}},"
	    "{\"name\":\"list\",\"inputSchema\":{}}]}}");
	assert_int_equal(nto_agent, 1);
	/* The filtered list, then offload.c's tools (offload is on). */
	assert_non_null(strstr(to_agent[0], "{\"jsonrpc\":\"2.0\",\"id\":1,"
	    "\"result\":{\"tools\":[{\"name\":\"read_file\",\"inputSchema\":{}},"
	    "{\"name\":\"list\",\"inputSchema\":{}},{\"name\":\"mcptun_read\""));
	assert_non_null(strstr(to_agent[0], "\"name\":\"mcptun_grep\""));
	assert_null(strstr(to_agent[0], "write_file"));
	/* Another method's "tools" is not touched. */
	input(s, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"x/y\"}");
	from_up("{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":["
	    "{\"name\":\"write_file\"}]}}");
	assert_non_null(strstr(to_agent[1], "write_file"));
	session_close(s);
}

static void
test_timeout(void **state)
{
	struct session *s = open_files(7);
	char *log;

	input(s, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\","
	    "\"params\":{\"name\":\"read_file\"}}");
	input(s, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/x\"}");
	run_ms(100);
	assert_int_equal(nto_agent, 0);
	run_ms(250);
	assert_int_equal(nto_agent, 1);
	assert_string_equal(to_agent[0], "{\"jsonrpc\":\"2.0\",\"id\":9,"
	    "\"error\":{\"code\":-32002,\"message\":\"server files did not "
	    "answer tools/call within 200 ms\"}}");
	/* The server is told to stop. */
	assert_int_equal(nto_up, 3);
	assert_string_equal(to_up[2], "{\"jsonrpc\":\"2.0\",\"method\":"
	    "\"notifications/cancelled\",\"params\":{\"requestId\":9,"
	    "\"reason\":\"request timed out\"}}");
	/* Its late answer is dropped. */
	from_up("{\"jsonrpc\":\"2.0\",\"id\":9,\"result\":{}}");
	assert_int_equal(nto_agent, 1);
	assert_int_equal(s->pending.count, 0);
	session_close(s);
	log = audit_text();
	assert_non_null(strstr(log, "\"outcome\":\"timeout\""));
	free(log);
}

static void
test_upstream_exit(void **state)
{
	struct session *s = open_files(8);
	char *log;

	input(s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
	input(s, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}");
	up->ops->on_exit(up->arg, "server files exited with status 3");
	/* s is freed now. */
	assert_int_equal(nto_agent, 2);
	assert_string_equal(to_agent[0], "{\"jsonrpc\":\"2.0\",\"id\":1,"
	    "\"error\":{\"code\":-32001,\"message\":\"server files exited "
	    "with status 3\"}}");
	assert_non_null(strstr(to_agent[1], "\"id\":2"));
	assert_int_equal(stream_ended, 1);
	assert_int_equal(end_code, CLOSE_UPSTREAM);
	assert_string_equal(end_text, "server files exited with status 3");
	assert_int_equal(up_closes, 1);
	assert_null(up);
	log = audit_text();
	assert_non_null(strstr(log, "\"outcome\":\"upstream_exit\""));
	free(log);
	/* Its slot is free again. */
	session_close(open_files(9));
	session_close(open_files(10));
}

static void
test_backpressure(void **state)
{
	struct session *s = open_files(11);

	queued = 9 * 1024 * 1024;
	from_up("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}");
	assert_int_equal(up_pauses, 1);
	from_up("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}");
	assert_int_equal(up_pauses, 1);
	session_drain(s);		/* still full */
	assert_int_equal(up_resumes, 0);
	queued = 1000;
	session_drain(s);
	assert_int_equal(up_resumes, 1);

	/* The whole link over its budget pauses it too, this stream or not. */
	congested = 1;
	from_up("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}");
	assert_int_equal(up_pauses, 2);
	session_drain(s);		/* the link is still congested */
	assert_int_equal(up_resumes, 1);
	congested = 0;
	session_drain(s);
	assert_int_equal(up_resumes, 2);

	up_send_rc = MT_EAGAIN;
	input(s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
	assert_int_equal(link_pauses, 1);
	assert_int_equal(s->pending.count, 1);	/* queued, not failed */
	input(s, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}");
	assert_int_equal(link_pauses, 1);
	up->ops->on_drain(up->arg);
	assert_int_equal(link_resumes, 1);

	/* An upstream that cannot take it: an error, not silence. */
	up_send_rc = MT_ECLOSED;
	input(s, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}");
	assert_int_equal(s->pending.count, 2);
	assert_string_equal(to_agent[nto_agent - 1], "{\"jsonrpc\":\"2.0\","
	    "\"id\":3,\"error\":{\"code\":-32001,\"message\":\"server files "
	    "cannot take the request: it is not running\"}}");

	/* An answer too big for the link becomes an error. */
	up_send_rc = 0;
	link_rc = MT_ETOOBIG;
	from_up("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}");
	link_rc = 0;
	from_up("{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}");
	assert_int_equal(s->pending.count, 0);
	session_close(s);
}

static void
test_malformed(void **state)
{
	struct session *s = open_files(12);

	input(s, "this is not json");
	input(s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\",\"method\":\"b\"}");
	input(s, "{\"jsonrpc\":\"1.0\",\"method\":\"x\"}");
	assert_int_equal(nto_agent, 0);
	assert_int_equal(nto_up, 0);
	input(s, "{\"id\":5,\"method\":\"x\"}");
	assert_int_equal(nto_agent, 1);
	assert_string_equal(to_agent[0], "{\"jsonrpc\":\"2.0\",\"id\":5,"
	    "\"error\":{\"code\":-32600,\"message\":\"invalid JSON-RPC 2.0 "
	    "message\"}}");
	/* A duplicate pending id is refused. */
	input(s, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"ping\"}");
	input(s, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"ping\"}");
	assert_int_equal(nto_up, 1);
	assert_non_null(strstr(to_agent[1], "already in use"));
	/* A batch: each member on its own, with the filter applied. */
	input(s, "[{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/list\"},"
	    "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/call\","
	    "\"params\":{\"name\":\"write_file\"}},"
	    "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}]");
	assert_int_equal(nto_up, 3);
	assert_string_equal(to_up[1],
	    "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/list\"}");
	assert_string_equal(to_up[2],
	    "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
	assert_non_null(strstr(to_agent[2], "-32003"));
	/* Garbage from the server is dropped. */
	from_up("garbage");
	from_up("{\"jsonrpc\":\"2.0\"}");
	assert_int_equal(nto_agent, 3);
	/* Server requests and the agent's answers pass through. */
	from_up("{\"jsonrpc\":\"2.0\",\"id\":\"s1\",\"method\":\"roots/list\"}");
	assert_int_equal(nto_agent, 4);
	input(s, "{\"jsonrpc\":\"2.0\",\"id\":\"s1\",\"result\":{\"roots\":[]}}");
	assert_int_equal(nto_up, 4);
	/* Cancelling a pending request forgets it. */
	input(s, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\","
	    "\"params\":{\"requestId\":6}}");
	assert_int_equal(nto_up, 5);
	assert_int_equal(s->pending.count, 1);	/* 7 is left */
	session_close(s);
}

static void
test_close_audits(void **state)
{
	struct session *s = open_files(13);
	char *log;

	input(s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
	    "\"params\":{\"name\":\"list\"}}");
	session_close(s);
	assert_int_equal(nto_agent, 0);
	assert_int_equal(stream_ended, 0);
	assert_int_equal(up_closes, 1);
	log = audit_text();
	assert_non_null(strstr(log, "\"tool\":\"list\""));
	assert_non_null(strstr(log, "\"outcome\":\"cancelled\""));
	free(log);
}

static void
test_reconfigure(void **state)
{
	struct session *s = open_files(14);
	struct client_conf *next, *gone;

	input(s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
	    "\"params\":{\"name\":\"write_file\"}}");
	assert_int_equal(nto_up, 0);
	/* A reload that allows write_file applies at once. */
	next = load_conf("200ms", ", write_file", 1);
	client_conf_unref(cur);
	cur = next;
	session_reconfigure(s, cur);
	input(s, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\","
	    "\"params\":{\"name\":\"write_file\"}}");
	assert_int_equal(nto_up, 1);
	/* A reload without the server ends the session. */
	gone = load_conf("200ms", "", 0);
	session_reconfigure(s, gone);
	assert_int_equal(stream_ended, 1);
	assert_int_equal(end_code, CLOSE_REMOVED);
	assert_string_equal(end_text, "server files was removed from the "
	    "allowlist");
	assert_non_null(strstr(to_agent[nto_agent - 1], "-32004"));
	assert_int_equal(up_closes, 1);
	client_conf_unref(gone);
}

/* ---- the merged endpoint ---------------------------------------------- */

static int
merged_open(struct lws_vhost *vh, const struct server_conf *sc,
    const char *agent, const char *tag, const struct upstream_ops *ops,
    void *arg, struct upstream **out)
{
	int r = fake_open(vh, sc, agent, tag, ops, arg, out);

	if (r == 0 && nmups < 8)
		mups[nmups++] = *out;
	return r;
}

/* The upstream of server (opened by a merge), or NULL. */
static struct upstream *
mup(const char *server)
{
	int i;

	for (i = nmups - 1; i >= 0; i--)
		if (mups[i] != NULL && strcmp(mups[i]->server, server) == 0)
			return mups[i];
	return NULL;
}

static void
mup_says(const char *server, const char *text)
{
	struct upstream *u = mup(server);
	char *copy = xstrdup(text);

	assert_non_null(u);
	u->ops->on_message(u->arg, (const uint8_t *)copy, strlen(copy));
	free(copy);
}

/* The last message to server, parsed (caller decrefs). */
static json_t *
last_to(const char *server)
{
	int i;

	for (i = nto_up - 1; i >= 0; i--)
		if (strcmp(to_up_srv[i], server) == 0)
			return json_loads(to_up[i], 0, NULL);
	fail_msg("nothing was sent to %s", server);
	return NULL;
}

static json_t *
last_to_agent(void)
{
	assert_true(nto_agent > 0);
	return json_loads(to_agent[nto_agent - 1], 0, NULL);
}

static const char merged_conf[] =
    "relay:\n"
    "  url: wss://relay.example/tunnel\n"
    "  tunnel: acme\n"
    "  token: abcdefghijklmnopqrstuvwxyz012345\n"
    "offload:\n"
    "  threshold_tokens: 0\n"
    "servers:\n"
    "  a:\n"
    "    command: cat\n"
    "  a_b:\n"
    "    command: cat\n"
    "    tools:\n"
    "      deny: [secret]\n"
    "  hidden:\n"
    "    command: cat\n"
    "  web:\n"
    "    type: http\n"
    "    url: https://wiki.example/mcp\n";

static void
test_merged(void **state)
{
	static const char *const servers[] = { "a", "a_b", "web", "zz" };
	struct client_conf *c = NULL, *less = NULL;
	struct session *s = NULL;
	char why[256], err[512], text[512];
	json_int_t ida, idb, id;
	json_t *j, *tools;
	const char *text0;
	size_t i, n;

	assert_int_equal(client_conf_load_mem("m.yaml", merged_conf,
	    strlen(merged_conf), &c, err, sizeof(err)), 0);
	client_conf_unref(cur);
	cur = c;
	nmups = 0;
	fake_kind.open = merged_open;

	/* "hidden" is in the allowlist but not the agent's: never opened. */
	assert_int_equal(session_open(7, "*", "agent", servers, 4, NULL, 0,
	    &s, why, sizeof(why)), 0);
	input(s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\","
	    "\"params\":{\"protocolVersion\":\"2025-06-18\","
	    "\"capabilities\":{},\"clientInfo\":{\"name\":\"t\","
	    "\"version\":\"1\"}}}");
	assert_int_equal(nmups, 2);		/* a, a_b; web has no kind */
	assert_null(mup("hidden"));
	assert_int_equal(nto_agent, 0);		/* waits for both */
	j = last_to("a");
	assert_string_equal(json_string_value(json_object_get(j, "method")),
	    "initialize");
	ida = json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	j = last_to("a_b");
	idb = json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	assert_true(ida != idb);
	snprintf(text, sizeof(text), "{\"jsonrpc\":\"2.0\",\"id\":%lld,"
	    "\"result\":{\"protocolVersion\":\"2025-03-26\",\"capabilities\":"
	    "{\"tools\":{}},\"serverInfo\":{\"name\":\"a\"}}}",
	    (long long)ida);
	mup_says("a", text);
	assert_int_equal(nto_agent, 0);
	snprintf(text, sizeof(text), "{\"jsonrpc\":\"2.0\",\"id\":%lld,"
	    "\"result\":{\"protocolVersion\":\"2025-06-18\",\"capabilities\":"
	    "{\"tools\":{},\"logging\":{}},\"serverInfo\":{\"name\":\"ab\"}}}",
	    (long long)idb);
	mup_says("a_b", text);
	assert_int_equal(nto_agent, 1);
	j = last_to_agent();
	assert_int_equal(json_integer_value(json_object_get(j, "id")), 1);
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    json_object_get(j, "result"), "serverInfo"), "name")),
	    "mcptun-merged");
	assert_true(json_is_true(json_object_get(json_object_get(
	    json_object_get(json_object_get(j, "result"), "capabilities"),
	    "tools"), "listChanged")));
	/* The oldest version a member speaks. */
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    j, "result"), "protocolVersion")), "2025-03-26");
	json_decref(j);
	j = last_to("a");
	assert_string_equal(json_string_value(json_object_get(j, "method")),
	    "notifications/initialized");
	json_decref(j);

	/* tools/list: joined, renamed, collisions resolved, fallback last. */
	input(s, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}");
	j = last_to("a");
	ida = json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	j = last_to("a_b");
	idb = json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	snprintf(text, sizeof(text), "{\"jsonrpc\":\"2.0\",\"id\":%lld,"
	    "\"result\":{\"tools\":[{\"name\":\"c\"},{\"name\":\"secret\"}],"
	    "\"nextCursor\":\"p2\"}}", (long long)idb);
	mup_says("a_b", text);
	snprintf(text, sizeof(text), "{\"jsonrpc\":\"2.0\",\"id\":%lld,"
	    "\"result\":{\"tools\":[{\"name\":\"b_c\"},{\"name\":\"x.y\"}]}}",
	    (long long)ida);
	mup_says("a", text);
	j = last_to_agent();
	assert_int_equal(json_integer_value(json_object_get(j, "id")), 2);
	tools = json_object_get(json_object_get(j, "result"), "tools");
	n = json_array_size(tools);
	assert_int_equal(n, 4);		/* a_b's "secret" is filtered */
	assert_string_equal(json_string_value(json_object_get(json_array_get(
	    tools, 0), "name")), "a_b_c");
	assert_string_equal(json_string_value(json_object_get(json_array_get(
	    tools, 1), "name")), "a_x_y");
	text0 = json_string_value(json_object_get(json_array_get(tools, 2),
	    "name"));
	assert_int_equal(strncmp(text0, "a_b_c-", 6), 0);
	assert_string_equal(json_string_value(json_object_get(json_array_get(
	    tools, 3), "name")), "mcptun_tools");
	for (i = 0; i < n; i++)
		assert_true(mname_valid(json_string_value(json_object_get(
		    json_array_get(tools, i), "name"))));
	/* One cursor of ours, naming a_b's own. */
	text0 = json_string_value(json_object_get(json_object_get(j,
	    "result"), "nextCursor"));
	assert_non_null(text0);
	snprintf(text, sizeof(text), "{\"jsonrpc\":\"2.0\",\"id\":3,"
	    "\"method\":\"tools/list\",\"params\":{\"cursor\":\"%s\"}}", text0);
	json_decref(j);
	i = (size_t)nto_up;
	input(s, text);
	assert_int_equal(nto_up, (int)i + 1);	/* only a_b has more */
	j = last_to("a_b");
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    j, "params"), "cursor")), "p2");
	idb = json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	snprintf(text, sizeof(text), "{\"jsonrpc\":\"2.0\",\"id\":%lld,"
	    "\"result\":{\"tools\":[{\"name\":\"d\"}]}}", (long long)idb);
	mup_says("a_b", text);
	j = last_to_agent();
	tools = json_object_get(json_object_get(j, "result"), "tools");
	assert_int_equal(json_array_size(tools), 1);	/* no fallback again */
	assert_string_equal(json_string_value(json_object_get(json_array_get(
	    tools, 0), "name")), "a_b_d");
	json_decref(j);

	/* A call: the original name, our id and progress token. */
	input(s, "{\"jsonrpc\":\"2.0\",\"id\":\"call-1\",\"method\":"
	    "\"tools/call\",\"params\":{\"name\":\"a_b_c\",\"_meta\":"
	    "{\"progressToken\":\"tok\"}}}");
	j = last_to("a");
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    j, "params"), "name")), "b_c");
	id = json_integer_value(json_object_get(j, "id"));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(
	    json_object_get(j, "params"), "_meta"), "progressToken")), id);
	json_decref(j);
	snprintf(text, sizeof(text), "{\"jsonrpc\":\"2.0\",\"method\":"
	    "\"notifications/progress\",\"params\":{\"progressToken\":%lld,"
	    "\"progress\":1}}", (long long)id);
	mup_says("a", text);
	j = last_to_agent();
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    j, "params"), "progressToken")), "tok");
	json_decref(j);
	snprintf(text, sizeof(text), "{\"jsonrpc\":\"2.0\",\"id\":%lld,"
	    "\"result\":{\"content\":[]}}", (long long)id);
	mup_says("a", text);
	j = last_to_agent();
	assert_string_equal(json_string_value(json_object_get(j, "id")),
	    "call-1");
	json_decref(j);

	/*
	 * An offloaded output's link: reads of its URI, with a range, go to
	 * the member that linked to it first (a server echoing the link does
	 * not draw them away); an id nobody linked to is not found here.
	 */
#define OFFL	"mcptun://offload/0123456789abcdef0123456789abcdef"
	input(s, "{\"jsonrpc\":\"2.0\",\"id\":40,\"method\":\"tools/call\","
	    "\"params\":{\"name\":\"a_x_y\"}}");
	j = last_to("a");
	id = json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	snprintf(text, sizeof(text), "{\"jsonrpc\":\"2.0\",\"id\":%lld,"
	    "\"result\":{\"content\":[{\"type\":\"resource_link\",\"uri\":"
	    "\"" OFFL "\",\"name\":\"o\"}]}}", (long long)id);
	mup_says("a", text);
	j = last_to_agent();
	assert_string_equal(json_string_value(json_object_get(json_array_get(
	    json_object_get(json_object_get(j, "result"), "content"), 1),
	    "text")), "On this endpoint these tools are named a_mcptun_read, "
	    "a_mcptun_grep and a_mcptun_outputs.");
	json_decref(j);
	input(s, "{\"jsonrpc\":\"2.0\",\"id\":41,\"method\":\"tools/call\","
	    "\"params\":{\"name\":\"a_b_d\"}}");
	j = last_to("a_b");
	id = json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	snprintf(text, sizeof(text), "{\"jsonrpc\":\"2.0\",\"id\":%lld,"
	    "\"result\":{\"content\":[{\"type\":\"resource_link\",\"uri\":"
	    "\"" OFFL "\",\"name\":\"o\"}]}}", (long long)id);
	mup_says("a_b", text);
	j = last_to_agent();		/* an echo: no note */
	assert_int_equal(json_array_size(json_object_get(json_object_get(j,
	    "result"), "content")), 1);
	json_decref(j);
	input(s, "{\"jsonrpc\":\"2.0\",\"id\":42,\"method\":"
	    "\"resources/read\",\"params\":{\"uri\":\"" OFFL
	    "?offset=5&length=9\"}}");
	assert_string_equal(to_up_srv[nto_up - 1], "a");
	j = last_to("a");
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    j, "params"), "uri")), OFFL "?offset=5&length=9");
	id = json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	snprintf(text, sizeof(text), "{\"jsonrpc\":\"2.0\",\"id\":%lld,"
	    "\"result\":{\"contents\":[]}}", (long long)id);
	mup_says("a", text);
	assert_non_null(strstr(to_agent[nto_agent - 1], "\"id\":42"));
	i = (size_t)nto_up;
	input(s, "{\"jsonrpc\":\"2.0\",\"id\":43,\"method\":"
	    "\"resources/read\",\"params\":{\"uri\":"
	    "\"mcptun://offload/ffffffffffffffffffffffffffffffff\"}}");
	assert_int_equal(nto_up, (int)i);
	assert_non_null(strstr(to_agent[nto_agent - 1], "\"id\":43"));
	assert_non_null(strstr(to_agent[nto_agent - 1], "-32002"));
	assert_non_null(strstr(to_agent[nto_agent - 1], "Resource not found"));
#undef OFFL

	/* The filter of a_b still holds through the merge. */
	input(s, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\","
	    "\"params\":{\"name\":\"a_b_secret\"}}");
	assert_non_null(strstr(to_agent[nto_agent - 1], "-32003"));
	assert_non_null(strstr(to_agent[nto_agent - 1], "tool secret is not "
	    "allowed on server a_b"));
	/* Unknown, and on a server that could not start. */
	input(s, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\","
	    "\"params\":{\"name\":\"nope\"}}");
	assert_non_null(strstr(to_agent[nto_agent - 1], "-32602"));
	input(s, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/call\","
	    "\"params\":{\"name\":\"web_search\"}}");
	assert_non_null(strstr(to_agent[nto_agent - 1], "-32004"));
	assert_non_null(strstr(to_agent[nto_agent - 1], "server web is not "
	    "available: server type http not supported yet"));
	/* ping is ours. */
	i = (size_t)nto_up;
	input(s, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\"}");
	assert_int_equal(nto_up, (int)i);
	assert_string_equal(to_agent[nto_agent - 1],
	    "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}");

	/* Both servers ask the agent something with id 0: no collision. */
	mup_says("a", "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":"
	    "\"sampling/createMessage\",\"params\":{}}");
	j = last_to_agent();
	ida = json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	mup_says("a_b", "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":"
	    "\"sampling/createMessage\",\"params\":{}}");
	j = last_to_agent();
	idb = json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	assert_true(ida != idb);
	snprintf(text, sizeof(text), "{\"jsonrpc\":\"2.0\",\"id\":%lld,"
	    "\"result\":{\"model\":\"m\"}}", (long long)idb);
	i = (size_t)nto_up;
	input(s, text);
	assert_int_equal(nto_up, (int)i + 1);
	assert_string_equal(to_up_srv[nto_up - 1], "a_b");
	j = last_to("a_b");
	assert_int_equal(json_integer_value(json_object_get(j, "id")), 0);
	json_decref(j);

	/* A reload without a_b: its pending call gets -32004, list_changed. */
	input(s, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/call\","
	    "\"params\":{\"name\":\"a_b_d\"}}");
	snprintf(text, sizeof(text), "%s", merged_conf);
	*strstr(text, "  a_b:\n") = '\0';
	strncat(text, "  web:\n    type: http\n    url: https://w.example/\n",
	    sizeof(text) - strlen(text) - 1);
	assert_int_equal(client_conf_load_mem("m.yaml", text, strlen(text),
	    &less, err, sizeof(err)), 0);
	client_conf_unref(cur);
	cur = less;
	n = (size_t)nto_agent;
	assert_int_equal(session_reconfigure(s, cur), SESSION_RECONF_MERGED);
	assert_true((size_t)nto_agent >= n + 2);
	assert_non_null(strstr(to_agent[n], "\"id\":8"));
	assert_non_null(strstr(to_agent[n], "server a_b was removed from the "
	    "allowlist"));
	assert_non_null(strstr(to_agent[n + 1],
	    "notifications/tools/list_changed"));
	assert_int_equal(stream_ended, 0);	/* the merged stream stays */
	assert_int_equal(up_closes, 1);
	/* Not guessed onto server a as tool "b_d". */
	i = (size_t)nto_up;
	input(s, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\","
	    "\"params\":{\"name\":\"a_b_d\"}}");
	assert_int_equal(nto_up, (int)i);
	assert_non_null(strstr(to_agent[nto_agent - 1], "-32004"));
	assert_non_null(strstr(to_agent[nto_agent - 1], "tool a_b_d is gone: "
	    "server a_b was removed from the allowlist"));
	run_ms(20);	/* the reaper frees the removed member */

	/* a exits: calls to it are refused, a reload starts it again. */
	n = (size_t)nto_agent;
	mup("a")->ops->on_exit(mup("a")->arg, "server a exited with status 1");
	assert_int_equal(up_closes, 2);
	assert_true((size_t)nto_agent > n);
	assert_non_null(strstr(to_agent[n], "notifications/tools/list_changed"));
	input(s, "{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"tools/call\","
	    "\"params\":{\"name\":\"a_x_y\"}}");
	assert_non_null(strstr(to_agent[nto_agent - 1], "server a is not "
	    "available: server a exited with status 1"));
	i = (size_t)nmups;
	assert_int_equal(session_reconfigure(s, cur), 0);
	assert_int_equal(nmups, (int)i + 1);
	j = last_to("a");
	id = json_integer_value(json_object_get(j, "id"));
	assert_string_equal(json_string_value(json_object_get(j, "method")),
	    "initialize");
	json_decref(j);
	n = (size_t)nto_agent;
	snprintf(text, sizeof(text), "{\"jsonrpc\":\"2.0\",\"id\":%lld,"
	    "\"result\":{\"protocolVersion\":\"2025-06-18\",\"capabilities\":"
	    "{\"tools\":{}},\"instructions\":\"again\"}}", (long long)id);
	mup_says("a", text);
	assert_non_null(strstr(to_agent[n], "notifications/tools/list_changed"));
	input(s, "{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"tools/call\","
	    "\"params\":{\"name\":\"a_x_y\"}}");
	j = last_to("a");
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    j, "params"), "name")), "x.y");
	json_decref(j);

	session_close(s);
	assert_int_equal(up_closes, 3);
	fake_kind.open = fake_open;
}

/* Servers a reload adds show up when the agent's patterns allow them. */
static void
test_merged_allow(void **state)
{
	static const char base[] =
	    "relay:\n"
	    "  url: wss://relay.example/tunnel\n"
	    "  tunnel: acme\n"
	    "  token: abcdefghijklmnopqrstuvwxyz012345\n"
	    "servers:\n"
	    "  a:\n"
	    "    command: cat\n";
	static const char *const servers[] = { "a" };
	static const char *const allow[] = { "a*" };
	struct client_conf *c = NULL;
	struct session *s = NULL;
	char why[256], err[512], text[512];
	json_int_t id;
	json_t *j;
	size_t n;

	assert_int_equal(client_conf_load_mem("m.yaml", base, strlen(base),
	    &c, err, sizeof(err)), 0);
	client_conf_unref(cur);
	cur = c;
	nmups = 0;
	fake_kind.open = merged_open;
	assert_int_equal(session_open(9, "*", "agent", servers, 1, allow, 1,
	    &s, why, sizeof(why)), 0);
	input(s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\","
	    "\"params\":{}}");
	j = last_to("a");
	id = json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	snprintf(text, sizeof(text), "{\"jsonrpc\":\"2.0\",\"id\":%lld,"
	    "\"result\":{\"capabilities\":{\"tools\":{}}}}", (long long)id);
	mup_says("a", text);
	assert_int_equal(nto_agent, 1);

	snprintf(text, sizeof(text), "%s  ab:\n    command: cat\n"
	    "  zz:\n    command: cat\n", base);
	assert_int_equal(client_conf_load_mem("m.yaml", text, strlen(text),
	    &c, err, sizeof(err)), 0);
	client_conf_unref(cur);
	cur = c;
	assert_int_equal(session_reconfigure(s, cur), SESSION_RECONF_MERGED);
	assert_int_equal(nmups, 2);		/* ab, not zz */
	assert_non_null(mup("ab"));
	assert_null(mup("zz"));
	j = last_to("ab");
	id = json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	n = (size_t)nto_agent;
	snprintf(text, sizeof(text), "{\"jsonrpc\":\"2.0\",\"id\":%lld,"
	    "\"result\":{\"capabilities\":{\"tools\":{}}}}", (long long)id);
	mup_says("ab", text);
	assert_true((size_t)nto_agent > n);
	assert_non_null(strstr(to_agent[n], "notifications/tools/list_changed"));
	session_close(s);
	assert_int_equal(up_closes, 2);
	fake_kind.open = fake_open;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pending_table, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_filter_tools, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_audit_format, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_open_refusals, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_tools_call, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_tools_list_filtered, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upstream_exit, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_backpressure, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_close_audits, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_reconfigure, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_merged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_merged_allow, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
