/*
 * The postgres upstream (client/up_postgres.c) driven through a real lws
 * event loop against a real PostgreSQL, without the relay, the link or
 * the session layer.
 *
 *   test_pgup                  cmocka tests; they need PGUP_TEST_DSN (a
 *                              libpq connection string; PGUP_TEST_PASSWORD
 *                              optional) and are skipped without it, with
 *                              a line saying so.  tests/integration/
 *                              postgres.sh runs them against its server.
 *   test_pgup --stdio CONFIG SERVER
 *                              serves SERVER of the client config CONFIG
 *                              as a stdio MCP server (newline-delimited
 *                              JSON-RPC), so the SDK agent can talk to the
 *                              adapter directly: the baseline the tunnel's
 *                              answers are compared with.
 *
 * The adapter's .c files are included, so the test needs no extra objects;
 * upstream.c's error sentence is stubbed here.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "client/up_postgres.c"
#include "client/pgsql.c"

#include <signal.h>
#include <time.h>

/* ---- stubs for client/upstream.c ------------------------------------------ */

static char stub_err[512];

void
upstream_set_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(stub_err, sizeof(stub_err), fmt, ap);
	va_end(ap);
	log_warnx("%s", stub_err);
}

const char *
upstream_take_error(void)
{
	return stub_err;
}

/* ---- an lws loop with the postgres protocol -------------------------------- */

struct harness {
	struct lws_context	*ctx;
	struct lws_vhost	*vh;
	json_t			*inbox;		/* messages from the upstream */
	int			 exits;
	int			 drains;
	int			 done;		/* stdio mode: stdin closed */
	struct upstream		*u;		/* stdio mode */
	const struct upstream_kind *kind;
	char			 line[1 << 16];
	size_t			 linelen;
	int			 stdio;
	lws_sorted_usec_list_t	 tick;
};

static struct harness H;

static void
h_on_message(void *arg, const uint8_t *msg, size_t len)
{
	struct harness *h = arg;
	json_t *m;

	assert_int_equal(msg[len], '\0');
	if (h->stdio) {
		fwrite(msg, 1, len, stdout);
		fputc('\n', stdout);
		fflush(stdout);
		return;
	}
	m = json_loadb((const char *)msg, len, 0, NULL);
	assert_non_null(m);
	json_array_append_new(h->inbox, m);
}

static void
h_on_exit(void *arg, const char *why)
{
	struct harness *h = arg;

	h->exits++;
}

static void
h_on_drain(void *arg)
{
	struct harness *h = arg;

	h->drains++;
}

/* Designated, so optional hooks added to upstream_ops stay NULL. */
static const struct upstream_ops h_ops = {
	.on_message = h_on_message,
	.on_exit = h_on_exit,
	.on_drain = h_on_drain
};

/* Wakes the loop every 10 ms so waits can time out. */
static void
h_tick(lws_sorted_usec_list_t *sul)
{
	lws_sul_schedule(H.ctx, 0, &H.tick, h_tick, 10 * LWS_US_PER_MS);
}

/* stdio mode: the agent's lines on stdin become kind->send calls. */
static int
stdin_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	char buf[8192];
	ssize_t n;
	size_t i;

	if (reason != LWS_CALLBACK_RAW_RX_FILE)
		return 0;
	n = read(0, buf, sizeof(buf));
	if (n <= 0) {
		H.done = 1;
		return -1;
	}
	for (i = 0; i < (size_t)n; i++) {
		if (buf[i] != '\n') {
			if (H.linelen < sizeof(H.line))
				H.line[H.linelen++] = buf[i];
			continue;
		}
		if (H.linelen > 0 && H.u != NULL)
			H.kind->send(H.u, (const uint8_t *)H.line, H.linelen);
		H.linelen = 0;
	}
	return 0;
}

static const struct lws_protocols h_protocols[] = {
	PGUP_PROTOCOL,
	{ "pgup-test-stdin", stdin_cb, 0, 0, 0, NULL, 0 },
	LWS_PROTOCOL_LIST_TERM
};

static int
h_start(void)
{
	struct lws_context_creation_info info;

	memset(&H, 0, sizeof(H));
	lws_set_log_level(LLL_ERR, NULL);
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
	info.protocols = h_protocols;
	if ((H.ctx = lws_create_context(&info)) == NULL)
		return -1;
	if ((H.vh = lws_get_vhost_by_name(H.ctx, "default")) == NULL)
		return -1;
	H.inbox = json_array();
	H.kind = &upstream_postgres;
	h_tick(NULL);
	/* lws runs PROTOCOL_INIT (where the adapter learns the context)
	 * from the first service. */
	lws_service(H.ctx, 0);
	return 0;
}

static void
h_stop(void)
{
	lws_sul_cancel(&H.tick);
	pgup_shutdown();
	lws_context_destroy(H.ctx);
	json_decref(H.inbox);
	H.ctx = NULL;
}

static int64_t
test_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs the loop for ms milliseconds. */
static void
h_run(int ms)
{
	int64_t end = test_now_ms() + ms;

	while (test_now_ms() < end)
		lws_service(H.ctx, 0);
}

/* Runs the loop until the answer to id arrives (taken out of the inbox). */
static json_t *
h_wait(json_int_t id, int ms)
{
	int64_t end = test_now_ms() + ms;
	json_t *m;
	size_t i;

	for (;;) {
		json_array_foreach(H.inbox, i, m) {
			if (json_integer_value(json_object_get(m, "id")) ==
			    id) {
				json_incref(m);
				json_array_remove(H.inbox, i);
				return m;
			}
		}
		if (test_now_ms() > end)
			fail_msg("no answer to request %lld within %d ms",
			    (long long)id, ms);
		lws_service(H.ctx, 0);
	}
}

static json_int_t next_id = 1;

/* Sends a request and returns the whole answer. */
static json_t *
rpc(struct upstream *u, const char *method, const char *params)
{
	json_int_t id = next_id++;
	char *msg;
	int r;

	msg = xasprintf("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"method\":\"%s\""
	    "%s%s}", (long long)id, method, params != NULL ?
	    ",\"params\":" : "", params != NULL ? params : "");
	r = upstream_postgres.send(u, (const uint8_t *)msg, strlen(msg));
	assert_true(r == 0 || r == MT_EAGAIN);
	free(msg);
	return h_wait(id, 15000);
}

/* tools/call; returns the result object (the answer must be a result). */
static json_t *
tool(struct upstream *u, const char *name, const char *args)
{
	json_t *a, *r;
	char *p;

	p = xasprintf("{\"name\":\"%s\",\"arguments\":%s}", name,
	    args != NULL ? args : "{}");
	a = rpc(u, "tools/call", p);
	free(p);
	if ((r = json_object_get(a, "result")) == NULL) {
		p = json_dumps(a, 0);
		fail_msg("tools/call %s: no result: %s", name, p);
	}
	json_incref(r);
	json_decref(a);
	return r;
}

static const char *
text_of(const json_t *result)
{
	return json_string_value(json_object_get(json_array_get(
	    json_object_get(result, "content"), 0), "text"));
}

static int
is_error(const json_t *result)
{
	return json_is_true(json_object_get(result, "isError"));
}

static void
expect_error(struct upstream *u, const char *name, const char *args,
    const char *want)
{
	json_t *r = tool(u, name, args);

	if (!is_error(r) || strstr(text_of(r), want) == NULL)
		fail_msg("%s %s: expected an error with \"%s\", got: %s", name,
		    args, want, text_of(r));
	json_decref(r);
}

/* ---- the server under test ------------------------------------------------- */

static struct pg_param sc_params[] = {
	{ "lo", PG_PARAM_INTEGER, "first value", 1 },
	{ "hi", PG_PARAM_INTEGER, NULL, 1 },
};

static struct pg_tool sc_tools[] = {
	{ "series", "numbers from lo to hi",
	  "SELECT g AS n, g * 2 AS twice FROM generate_series($1::int, $2::int) "
	  "AS g", 2, sc_params, { 1, 1 } },
};

static struct server_conf SC;

static void
sc_init(const char *dsn)
{
	memset(&SC, 0, sizeof(SC));
	SC.name = "pgt";
	SC.type = SERVER_POSTGRES;
	SC.dsn = (char *)(uintptr_t)dsn;
	SC.password = getenv("PGUP_TEST_PASSWORD");
	SC.statement_timeout_ms = 1000;
	SC.max_rows = 5;
	SC.max_bytes = 1024 * 1024;
	SC.pool = 2;
	SC.builtin_tools = 1;
	SC.nsql_tools = 1;
	SC.sql_tools = sc_tools;
}

static struct upstream *
open_u(void)
{
	struct upstream *u = NULL;

	assert_int_equal(upstream_postgres.open(H.vh, &SC, "tester", "t1",
	    &h_ops, &H, &u), 0);
	assert_non_null(u);
	return u;
}

static int
group_setup(void **state)
{
	if (getenv("PGUP_TEST_DSN") == NULL)
		return 0;
	sc_init(getenv("PGUP_TEST_DSN"));
	return h_start();
}

static int
group_teardown(void **state)
{
	if (H.ctx != NULL)
		h_stop();
	return 0;
}

#define NEED_DB() do {							\
	if (getenv("PGUP_TEST_DSN") == NULL)				\
		skip();							\
} while (0)

/* ---- tests ---------------------------------------------------------------------- */

static void
test_initialize(void **state)
{
	struct upstream *u;
	json_t *a;

	NEED_DB();
	u = open_u();
	/* Nothing arrives before the loop runs (no callback from open). */
	assert_int_equal(json_array_size(H.inbox), 0);
	a = rpc(u, "initialize", "{\"protocolVersion\":\"2025-03-26\","
	    "\"capabilities\":{},\"clientInfo\":{\"name\":\"t\","
	    "\"version\":\"1\"}}");
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    a, "result"), "protocolVersion")), "2025-03-26");
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    json_object_get(a, "result"), "serverInfo"), "name")),
	    "mcptun-postgres");
	assert_true(json_is_true(json_object_get(json_object_get(
	    json_object_get(json_object_get(a, "result"), "capabilities"),
	    "tools"), "listChanged")));
	json_decref(a);
	a = rpc(u, "initialize", "{\"protocolVersion\":\"1999-01-01\"}");
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    a, "result"), "protocolVersion")), "2025-06-18");
	json_decref(a);
	a = rpc(u, "ping", NULL);
	assert_non_null(json_object_get(a, "result"));
	json_decref(a);
	a = rpc(u, "prompts/list", NULL);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(a,
	    "error"), "code")), -32601);
	json_decref(a);
	upstream_postgres.close(u);
}

static void
test_tools_list(void **state)
{
	struct upstream *u;
	json_t *a, *tools, *t;
	size_t i;
	int seen = 0;

	NEED_DB();
	u = open_u();
	a = rpc(u, "tools/list", NULL);
	tools = json_object_get(json_object_get(a, "result"), "tools");
	assert_int_equal(json_array_size(tools), 6);
	json_array_foreach(tools, i, t) {
		assert_non_null(json_object_get(t, "inputSchema"));
		assert_non_null(json_object_get(t, "outputSchema"));
		if (strcmp(json_string_value(json_object_get(t, "name")),
		    "series") == 0) {
			seen = 1;
			assert_non_null(json_object_get(json_object_get(
			    json_object_get(t, "inputSchema"), "properties"),
			    "lo"));
		}
	}
	assert_true(seen);
	json_decref(a);
	upstream_postgres.close(u);
}

static void
test_query_and_types(void **state)
{
	struct upstream *u;
	json_t *r, *row, *sc;
	char *s;

	NEED_DB();
	u = open_u();
	r = tool(u, "query", "{\"sql\":\"SELECT 1 AS a, 9007199254740993::int8 "
	    "AS b, 1.50::numeric AS c, true AS d, '{\\\"k\\\": [1]}'::jsonb AS "
	    "e, '\\\\x0102'::bytea AS f, NULL::text AS g, 2.5::float8 AS h, "
	    "'simple'::regconfig AS i\"}");
	assert_false(is_error(r));
	sc = json_object_get(r, "structuredContent");
	row = json_array_get(json_object_get(sc, "rows"), 0);
	s = json_dumps(row, JSON_COMPACT | JSON_PRESERVE_ORDER);
	assert_string_equal(s, "{\"a\":1,\"b\":\"9007199254740993\","
	    "\"c\":\"1.50\",\"d\":true,\"e\":{\"k\":[1]},\"f\":\"AQI=\","
	    "\"g\":null,\"h\":2.5,\"i\":\"simple\"}");
	free(s);
	/* A type not in pgsql's table is named by the database. */
	assert_string_equal(json_string_value(json_object_get(json_array_get(
	    json_object_get(sc, "columns"), 8), "type")), "regconfig");
	assert_non_null(strstr(text_of(r), "(1 row)"));
	json_decref(r);
	upstream_postgres.close(u);
}

static void
test_truncation(void **state)
{
	struct upstream *u;
	json_t *r;

	NEED_DB();
	u = open_u();
	r = tool(u, "query", "{\"sql\":\"SELECT g FROM generate_series(1, 20) "
	    "g\"}");
	assert_false(is_error(r));
	assert_non_null(strstr(text_of(r),
	    "truncated: showing 5 of 20 rows (max_rows 5)"));
	assert_true(json_is_true(json_object_get(json_object_get(r,
	    "structuredContent"), "truncated")));
	json_decref(r);
	upstream_postgres.close(u);
}

static void
test_refusals(void **state)
{
	struct upstream *u;
	json_t *r;

	NEED_DB();
	u = open_u();
	expect_error(u, "query", "{\"sql\":\"BEGIN\"}", "refused: BEGIN");
	expect_error(u, "query", "{\"sql\":\"/* x */ COMMIT; DROP TABLE t\"}",
	    "refused: COMMIT");
	expect_error(u, "query", "{\"sql\":\"SET TRANSACTION READ WRITE\"}",
	    "refused: SET");
	expect_error(u, "query", "{\"sql\":\"SELECT 1; SELECT 2\"}",
	    "cannot insert multiple commands into a prepared statement");
	expect_error(u, "query", "{\"sql\":\"CREATE TABLE pgup_t (a int)\"}",
	    "ERROR 25006");
	expect_error(u, "query", "{\"sql\":\"SELECT set_config("
	    "'transaction_read_only', 'off', true)\"}", "ERROR 25001");
	expect_error(u, "query", "{\"sql\":\"SELECT nosuchcol\"}",
	    "ERROR 42703");
	expect_error(u, "query", "{\"sql\":\"   \"}", "no statement");
	expect_error(u, "query", "{}", "missing required argument \"sql\"");
	expect_error(u, "query", "{\"sql\":1}", "must be a string");
	expect_error(u, "query", "{\"sql\":\"SELECT 1\",\"x\":1}",
	    "unknown argument \"x\"");
	/* Still usable. */
	r = tool(u, "query", "{\"sql\":\"SELECT 1 AS one\"}");
	assert_false(is_error(r));
	json_decref(r);
	upstream_postgres.close(u);
}

static void
test_timeout(void **state)
{
	struct upstream *u;
	json_t *r;

	NEED_DB();
	u = open_u();
	expect_error(u, "query", "{\"sql\":\"SELECT pg_sleep(10)\"}",
	    "ERROR 57014");
	r = tool(u, "query", "{\"sql\":\"SELECT 2 AS two\"}");
	assert_false(is_error(r));
	json_decref(r);
	upstream_postgres.close(u);
}

static void
test_curated(void **state)
{
	struct upstream *u;
	json_t *r;

	NEED_DB();
	u = open_u();
	r = tool(u, "series", "{\"lo\":3,\"hi\":4}");
	assert_false(is_error(r));
	assert_int_equal(json_integer_value(json_object_get(json_array_get(
	    json_object_get(json_object_get(r, "structuredContent"), "rows"),
	    1), "twice")), 8);
	json_decref(r);
	expect_error(u, "series", "{\"lo\":\"3\",\"hi\":4}",
	    "\"lo\" must be an integer, not a string");
	expect_error(u, "series", "{\"lo\":3}", "missing required argument");
	upstream_postgres.close(u);
}

static void
test_catalog_tools(void **state)
{
	struct upstream *u;
	json_t *r, *a;

	NEED_DB();
	u = open_u();
	r = tool(u, "list_schemas", NULL);
	assert_false(is_error(r));
	assert_non_null(strstr(text_of(r), "public"));
	json_decref(r);
	r = tool(u, "list_tables", "{\"schema\":\"pg_catalog\"}");
	assert_false(is_error(r));
	json_decref(r);
	r = tool(u, "describe_table", "{\"table\":\"pg_catalog.pg_namespace\"}");
	assert_false(is_error(r));
	assert_non_null(strstr(text_of(r), "nspname"));
	assert_non_null(strstr(text_of(r), "Indexes:"));
	json_decref(r);
	r = tool(u, "describe_table", "{\"table\":\"pg_namespace\","
	    "\"schema\":\"pg_catalog\"}");
	assert_false(is_error(r));
	json_decref(r);
	expect_error(u, "describe_table", "{\"table\":\"no_such_table\"}",
	    "no table or view named \"no_such_table\"");
	r = tool(u, "explain", "{\"sql\":\"SELECT * FROM pg_class\"}");
	assert_false(is_error(r));
	assert_non_null(strstr(text_of(r), "Seq Scan on"));
	assert_true(json_is_array(json_object_get(json_object_get(r,
	    "structuredContent"), "plan")));
	json_decref(r);
	a = rpc(u, "resources/read",
	    "{\"uri\":\"postgres://pgt/pg_catalog/pg_namespace/schema\"}");
	assert_non_null(strstr(json_string_value(json_object_get(
	    json_array_get(json_object_get(json_object_get(a, "result"),
	    "contents"), 0), "text")), "\"nspname\""));
	json_decref(a);
	a = rpc(u, "resources/read",
	    "{\"uri\":\"postgres://pgt/public/nothing_here/schema\"}");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(a,
	    "error"), "code")), -32002);
	json_decref(a);
	a = rpc(u, "resources/list", NULL);
	assert_true(json_is_array(json_object_get(json_object_get(a, "result"),
	    "resources")));
	json_decref(a);
	a = rpc(u, "tools/call", "{\"name\":\"nope\"}");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(a,
	    "error"), "code")), JRPC_INVALID_PARAMS);
	json_decref(a);
	upstream_postgres.close(u);
}

/* The connection dies under a statement: retried once, then reported. */
static void
test_connection_lost(void **state)
{
	struct upstream *u;
	json_t *r;

	NEED_DB();
	u = open_u();
	expect_error(u, "query", "{\"sql\":\"SELECT pg_terminate_backend("
	    "pg_backend_pid())\"}", "connection");
	r = tool(u, "query", "{\"sql\":\"SELECT 3 AS three\"}");
	assert_false(is_error(r));
	json_decref(r);
	upstream_postgres.close(u);
}

/* Several calls at once share the pool; answers match their ids. */
static void
test_concurrent(void **state)
{
	struct upstream *u;
	char *msg;
	json_t *a;
	int i;

	NEED_DB();
	u = open_u();
	for (i = 0; i < 6; i++) {
		msg = xasprintf("{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":"
		    "\"tools/call\",\"params\":{\"name\":\"query\","
		    "\"arguments\":{\"sql\":\"SELECT %d AS v, pg_sleep(0.05)\"}}}",
		    1000 + i, i);
		assert_int_equal(upstream_postgres.send(u, (const uint8_t *)msg,
		    strlen(msg)), 0);
		free(msg);
	}
	for (i = 0; i < 6; i++) {
		a = h_wait(1000 + i, 15000);
		assert_int_equal(json_integer_value(json_object_get(
		    json_array_get(json_object_get(json_object_get(
		    json_object_get(a, "result"), "structuredContent"),
		    "rows"), 0), "v")), i);
		json_decref(a);
	}
	upstream_postgres.close(u);
}

/* Closing with a call in flight: no callback after close, pool fine. */
static void
test_close_in_flight(void **state)
{
	struct upstream *u;
	const char *msg = "{\"jsonrpc\":\"2.0\",\"id\":77,\"method\":"
	    "\"tools/call\",\"params\":{\"name\":\"query\",\"arguments\":"
	    "{\"sql\":\"SELECT pg_sleep(0.3)\"}}}";
	json_t *r;

	NEED_DB();
	u = open_u();
	assert_int_equal(upstream_postgres.send(u, (const uint8_t *)msg,
	    strlen(msg)), 0);
	h_run(50);
	upstream_postgres.close(u);
	h_run(600);
	assert_int_equal(json_array_size(H.inbox), 0);
	u = open_u();
	r = tool(u, "query", "{\"sql\":\"SELECT 4 AS four\"}");
	assert_false(is_error(r));
	json_decref(r);
	upstream_postgres.close(u);
}

/* Paused: answers wait; resumed: they come. */
static void
test_pause(void **state)
{
	struct upstream *u;
	const char *msg = "{\"jsonrpc\":\"2.0\",\"id\":88,\"method\":\"ping\"}";
	json_t *a;

	NEED_DB();
	u = open_u();
	upstream_postgres.pause(u);
	assert_int_equal(upstream_postgres.send(u, (const uint8_t *)msg,
	    strlen(msg)), 0);
	h_run(100);
	assert_int_equal(json_array_size(H.inbox), 0);
	upstream_postgres.resume(u);
	a = h_wait(88, 2000);
	json_decref(a);
	/* Garbage gets a parse error, not a crash. */
	assert_int_equal(upstream_postgres.send(u, (const uint8_t *)"{nope", 5),
	    0);
	h_run(50);
	assert_int_equal(json_array_size(H.inbox), 1);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(
	    json_array_get(H.inbox, 0), "error"), "code")), JRPC_PARSE_ERROR);
	json_array_clear(H.inbox);
	upstream_postgres.close(u);
}

/* A database that cannot be reached: a clear error, no hang. */
static void
test_unreachable(void **state)
{
	struct server_conf bad;
	struct upstream *u = NULL;
	json_t *r;

	NEED_DB();
	bad = SC;
	bad.name = "down";
	bad.dsn = "host=127.0.0.1 port=1 dbname=x connect_timeout=2";
	assert_int_equal(upstream_postgres.open(H.vh, &bad, "tester", "t2",
	    &h_ops, &H, &u), 0);
	r = tool(u, "query", "{\"sql\":\"SELECT 1\"}");
	assert_true(is_error(r));
	assert_non_null(strstr(text_of(r), "cannot connect to the database"));
	json_decref(r);
	upstream_postgres.close(u);
	assert_int_equal(H.exits, 0);
}

/* ---- stdio mode ---------------------------------------------------------------- */

static int
stdio_main(const char *path, const char *name)
{
	struct client_conf *conf = NULL;
	const struct server_conf *sc;
	lws_sock_file_fd_type fd;
	char err[4096];

	signal(SIGPIPE, SIG_IGN);
	log_init("pgup", LOG_LVL_INFO);
	if (client_conf_load(path, &conf, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	if ((sc = client_conf_server(conf, name)) == NULL ||
	    sc->type != SERVER_POSTGRES) {
		fprintf(stderr, "%s: no postgres server \"%s\"\n", path, name);
		return 2;
	}
	if (h_start() != 0)
		return 2;
	H.stdio = 1;
	if (upstream_postgres.open(H.vh, sc, "stdio", "stdio", &h_ops, &H,
	    &H.u) != 0)
		return 2;
	fd.filefd = 0;
	if (lws_adopt_descriptor_vhost(H.vh, LWS_ADOPT_RAW_FILE_DESC, fd,
	    "pgup-test-stdin", NULL) == NULL)
		return 2;
	while (!H.done)
		lws_service(H.ctx, 0);
	/* Let answers in flight reach stdout before going. */
	h_run(300);
	upstream_postgres.close(H.u);
	h_stop();
	client_conf_unref(conf);
	return 0;
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_initialize),
		cmocka_unit_test(test_tools_list),
		cmocka_unit_test(test_query_and_types),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_curated),
		cmocka_unit_test(test_catalog_tools),
		cmocka_unit_test(test_connection_lost),
		cmocka_unit_test(test_concurrent),
		cmocka_unit_test(test_close_in_flight),
		cmocka_unit_test(test_pause),
		cmocka_unit_test(test_unreachable),
	};

	if (argc == 4 && strcmp(argv[1], "--stdio") == 0)
		return stdio_main(argv[2], argv[3]);
	if (getenv("PGUP_TEST_DSN") == NULL)
		printf("skip - test_pgup: PGUP_TEST_DSN is not set (no "
		    "PostgreSQL); tests/integration/postgres.sh runs these\n");
	else
		log_init("pgup", LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
