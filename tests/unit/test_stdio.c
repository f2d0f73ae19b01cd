/*
 * The stdio upstream against real processes: an lws context with the
 * stdio protocol, then cat, sh and friends as MCP servers.  Echo through
 * cat, commands that cannot run, exits and signals mid-session, a line
 * over max_line, stderr rate limiting, backpressure both ways, SIGTERM
 * escalating to SIGKILL, the environment, and the bubblewrap sandbox.
 *
 * up_stdio.c is included so the tests can see its process records.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "client/up_stdio.c"
#include "client/upstream.c"
#include "client/offload.c"

/*
 * upstream.c names every adapter; this test links only the stdio one, so
 * the others are empty stand-ins (never opened here).
 */
const struct upstream_kind upstream_postgres = { .name = "postgres" };
const struct upstream_kind upstream_http = { .name = "http" };

#define MAXMSG	16

struct rec {
	struct upstream	*u;
	int		 nmsg;
	char		*msgs[MAXMSG];
	int		 exited;
	char		 why[256];
	int		 drains;
	int		 close_on_exit;	/* as session.c does */
	int		 close_on_msg;	/* close from inside on_message */
};

static struct lws_context *ctx;

/* offload.c's timers run on the test's loop. */
struct lws_context *
client_context(void)
{
	return ctx;
}
static struct lws_vhost *vh;
static lws_sorted_usec_list_t tick_sul;
static struct server_conf conf;

static const struct lws_protocols protos[] = {
	STDIO_PROTOCOL,
	LWS_PROTOCOL_LIST_TERM
};

static void
rec_on_message(void *arg, const uint8_t *msg, size_t len)
{
	struct rec *r = arg;

	assert_int_equal(strlen((const char *)msg), len);
	if (r->nmsg < MAXMSG)
		r->msgs[r->nmsg] = xstrdup((const char *)msg);
	r->nmsg++;
	if (r->close_on_msg) {
		upstream_stdio.close(r->u);
		r->u = NULL;
	}
}

static void
rec_on_exit(void *arg, const char *why)
{
	struct rec *r = arg;

	assert_int_equal(r->exited, 0);
	r->exited = 1;
	snprintf(r->why, sizeof(r->why), "%s", why);
	if (r->close_on_exit) {
		upstream_stdio.close(r->u);
		r->u = NULL;
	}
}

static void
rec_on_drain(void *arg)
{
	struct rec *r = arg;

	r->drains++;
}

static const struct upstream_ops rec_ops = {
	rec_on_message, rec_on_exit, rec_on_drain, NULL
};

static void
rec_free(struct rec *r)
{
	int i;

	for (i = 0; i < r->nmsg && i < MAXMSG; i++)
		free(r->msgs[i]);
	memset(r, 0, sizeof(*r));
}

/* Keeps lws_service() from sleeping long. */
static void
tick(lws_sorted_usec_list_t *sul)
{
	lws_sul_schedule(ctx, 0, &tick_sul, tick, 10 * LWS_US_PER_MS);
}

/* Runs the loop until *flag becomes nonzero or ms pass; returns *flag. */
static int
run_until(const int *flag, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;

	while ((flag == NULL || !*flag) && now_ms() < end)
		lws_service(ctx, 0);
	return flag != NULL ? *flag : 0;
}

/* Runs the loop until *v >= n or ms pass. */
static int
run_until_n(const int *v, int n, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;

	while (*v < n && now_ms() < end)
		lws_service(ctx, 0);
	return *v >= n;
}

static int no_children;

/* Runs the loop until every process record is gone (reaped). */
static int
run_until_reaped(int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;

	while (stdio_children != NULL && now_ms() < end)
		lws_service(ctx, 0);
	no_children = stdio_children == NULL;
	return no_children;
}

static char *argbuf[16];

static void
mkconf(const char *command, ...)
{
	va_list ap;
	const char *a;
	int n = 0;

	memset(&conf, 0, sizeof(conf));
	conf.name = (char *)(uintptr_t)"t";
	conf.type = SERVER_STDIO;
	conf.command = (char *)(uintptr_t)command;
	conf.max_sessions = 16;
	conf.max_line = 1024 * 1024;
	va_start(ap, command);
	while ((a = va_arg(ap, const char *)) != NULL && n < 15)
		argbuf[n++] = (char *)(uintptr_t)a;
	va_end(ap);
	argbuf[n] = NULL;
	conf.args = argbuf;
}

static int
open_rec(struct rec *r)
{
	return upstream_stdio.open(vh, &conf, "tester", "t/1", &rec_ops, r,
	    &r->u);
}

static int
group_setup(void **state)
{
	struct lws_context_creation_info info;

	lws_set_log_level(LLL_ERR, NULL);
	log_init("test_stdio", LOG_LVL_INFO);
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
	info.protocols = protos;
	if ((ctx = lws_create_context(&info)) == NULL)
		return -1;
	vh = lws_get_vhost_by_name(ctx, "default");
	tick(NULL);
	return vh == NULL ? -1 : 0;
}

static int
group_teardown(void **state)
{
	stdio_shutdown();
	lws_sul_cancel(&tick_sul);
	lws_context_destroy(ctx);
	return 0;
}

static void
test_echo(void **state)
{
	static const char m1[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}";
	static const char m2[] = "{\"jsonrpc\":\"2.0\",\n\"id\":2,\r\n\"method\":\"x\"}";
	struct rec r = { 0 };

	mkconf("cat", NULL);
	assert_int_equal(open_rec(&r), 0);
	assert_non_null(r.u);
	assert_int_equal(upstream_stdio.send(r.u, (const uint8_t *)m1,
	    strlen(m1)), 0);
	assert_int_equal(upstream_stdio.send(r.u, (const uint8_t *)m2,
	    strlen(m2)), 0);
	assert_true(run_until_n(&r.nmsg, 2, 3000));
	run_until(&r.exited, 300);	/* nothing more should happen */
	assert_int_equal(r.nmsg, 2);
	assert_string_equal(r.msgs[0], m1);
	/* Raw newlines (JSON whitespace) are blanked, one message a line. */
	assert_string_equal(r.msgs[1],
	    "{\"jsonrpc\":\"2.0\", \"id\":2,  \"method\":\"x\"}");
	assert_int_equal(r.exited, 0);
	upstream_stdio.close(r.u);
	assert_true(run_until_reaped(3000));
	rec_free(&r);
}

static void
test_not_found(void **state)
{
	struct rec r = { 0 };

	mkconf("mcptun-no-such-command", NULL);
	assert_int_not_equal(open_rec(&r), 0);
	assert_null(r.u);
	assert_string_equal(upstream_take_error(),
	    "cannot run mcptun-no-such-command: No such file or directory");

	/* A path goes to exec; its error comes back through the pipe. */
	mkconf("/nonexistent/mcptun-server", NULL);
	assert_int_not_equal(open_rec(&r), 0);
	assert_string_equal(upstream_take_error(),
	    "cannot run /nonexistent/mcptun-server: No such file or "
	    "directory");

	mkconf("/etc/passwd", NULL);
	assert_int_not_equal(open_rec(&r), 0);
	assert_string_equal(upstream_take_error(),
	    "cannot run /etc/passwd: Permission denied");

	mkconf("cat", NULL);
	conf.cwd = (char *)(uintptr_t)"/nonexistent-dir";
	assert_int_not_equal(open_rec(&r), 0);
	assert_string_equal(upstream_take_error(),
	    "cannot run cat: cannot change to directory /nonexistent-dir: "
	    "No such file or directory");
	/* Failed spawns leave no process behind. */
	assert_null(stdio_children);
}

static void
test_exit_status(void **state)
{
	struct rec r = { 0 };

	mkconf("sh", "-c", "echo '{\"last\":1}'; exit 3", NULL);
	r.close_on_exit = 1;
	assert_int_equal(open_rec(&r), 0);
	assert_true(run_until(&r.exited, 3000));
	assert_string_equal(r.why, "server t exited with status 3");
	/* What it said before exiting is delivered first. */
	assert_int_equal(r.nmsg, 1);
	assert_string_equal(r.msgs[0], "{\"last\":1}");
	assert_null(r.u);
	assert_true(run_until_reaped(1000));
	rec_free(&r);
}

static void
test_signal(void **state)
{
	struct rec r = { 0 };

	mkconf("sh", "-c", "sleep 0.1; kill -9 $$", NULL);
	r.close_on_exit = 1;
	assert_int_equal(open_rec(&r), 0);
	assert_true(run_until(&r.exited, 3000));
	assert_string_equal(r.why, "server t killed by signal 9");
	assert_true(run_until_reaped(1000));
	rec_free(&r);
}

static void
test_long_line(void **state)
{
	struct rec r = { 0 };
	uint64_t t0;

	mkconf("sh", "-c", "echo '{\"ok\":1}'; head -c 5000 /dev/zero | "
	    "tr '\\0' a; echo; echo '{\"never\":1}'; exec sleep 30", NULL);
	conf.max_line = 1024;
	r.close_on_exit = 1;
	assert_int_equal(open_rec(&r), 0);
	assert_true(run_until(&r.exited, 3000));
	assert_string_equal(r.why, "server t sent a line longer than "
	    "max_line (1024 bytes)");
	assert_int_equal(r.nmsg, 1);
	/* SIGTERM ends the sleep at once, without waiting for SIGKILL. */
	t0 = now_ms();
	assert_true(run_until_reaped(3000));
	assert_true(now_ms() - t0 < 1500);
	rec_free(&r);
}

static void
test_sigkill_escalation(void **state)
{
	struct rec r = { 0 };
	uint64_t t0;

	mkconf("sh", "-c", "trap '' TERM; echo '{}'; "
	    "while :; do sleep 0.05; done", NULL);
	assert_int_equal(open_rec(&r), 0);
	assert_true(run_until(&r.nmsg, 3000));
	t0 = now_ms();
	upstream_stdio.close(r.u);
	assert_true(run_until_reaped(5000));
	assert_true(now_ms() - t0 >= STDIO_TERM_MS - 100);
	assert_int_equal(r.exited, 0);	/* no callback after close */
	rec_free(&r);
}

static void
test_close_inside_callback(void **state)
{
	struct rec r = { 0 };

	mkconf("sh", "-c", "printf '{\"a\":1}\\n{\"b\":2}\\n{\"c\":3}\\n'; "
	    "exec sleep 30", NULL);
	r.close_on_msg = 1;
	assert_int_equal(open_rec(&r), 0);
	run_until(&r.nmsg, 3000);
	run_until(NULL, 200);
	assert_int_equal(r.nmsg, 1);
	assert_int_equal(r.exited, 0);
	assert_true(run_until_reaped(3000));
	rec_free(&r);
}

static void
test_stderr_rate_limit(void **state)
{
	struct rec r = { 0 };

	mkconf("sh", "-c", "i=0; while [ $i -lt 50 ]; do echo noise $i >&2; "
	    "i=$((i+1)); done; echo '{\"done\":1}'; exec sleep 30", NULL);
	assert_int_equal(open_rec(&r), 0);
	run_until(&r.nmsg, 3000);
	run_until(NULL, 100);
	assert_int_equal(r.u->err_lines, STDIO_ERR_RATE);
	assert_int_equal(r.u->err_dropped, 50 - STDIO_ERR_RATE);
	upstream_stdio.close(r.u);
	assert_true(run_until_reaped(3000));
	rec_free(&r);
}

static void
test_pause_resume(void **state)
{
	static const char m[] = "{\"x\":1}";
	struct rec r = { 0 };

	mkconf("cat", NULL);
	assert_int_equal(open_rec(&r), 0);
	upstream_stdio.pause(r.u);
	assert_int_equal(upstream_stdio.send(r.u, (const uint8_t *)m,
	    strlen(m)), 0);
	run_until(NULL, 300);
	assert_int_equal(r.nmsg, 0);
	upstream_stdio.resume(r.u);
	assert_int_equal(r.nmsg, 0);	/* never from inside resume */
	assert_true(run_until(&r.nmsg, 2000));
	assert_string_equal(r.msgs[0], m);
	upstream_stdio.close(r.u);
	assert_true(run_until_reaped(3000));
	rec_free(&r);
}

static void
test_pause_bounds_memory(void **state)
{
	struct rec r = { 0 };
	size_t held;

	/* A server that never stops talking, to an agent that is not reading. */
	mkconf("sh", "-c", "exec yes '{\"jsonrpc\":\"2.0\",\"method\":\"n\"}'",
	    NULL);
	assert_int_equal(open_rec(&r), 0);
	upstream_stdio.pause(r.u);
	run_until(NULL, 300);
	held = buf_len(&r.u->rq);
	assert_int_equal(r.nmsg, 0);
	run_until(NULL, 300);
	/* Reading stopped: at most a chunk or two, not everything it wrote. */
	assert_true(buf_len(&r.u->rq) == held);
	assert_true(held <= 2 * STDIO_READ_CHUNK);
	upstream_stdio.resume(r.u);
	assert_true(run_until_n(&r.nmsg, 1000, 3000));
	upstream_stdio.close(r.u);
	assert_true(run_until_reaped(3000));
	rec_free(&r);
}

static void
test_send_backpressure(void **state)
{
	struct rec r = { 0 };
	char *big;
	size_t n = 64 * 1024;
	int i, res = 0;

	/* Reads nothing for a while, then everything. */
	mkconf("sh", "-c", "sleep 0.3; exec cat >/dev/null", NULL);
	assert_int_equal(open_rec(&r), 0);
	big = xmalloc(n);
	memset(big, 'a', n);
	for (i = 0; i < 64 && res == 0; i++)
		res = upstream_stdio.send(r.u, (const uint8_t *)big, n);
	assert_int_equal(res, MT_EAGAIN);
	assert_true(i < 64);
	assert_int_equal(r.drains, 0);
	assert_true(run_until(&r.drains, 5000));
	assert_int_equal(r.drains, 1);
	free(big);
	upstream_stdio.close(r.u);
	assert_true(run_until_reaped(3000));
	rec_free(&r);
}

static void
test_environment(void **state)
{
	struct conf_pair pairs[] = {
		{ (char *)(uintptr_t)"FOO", (char *)(uintptr_t)"bar" },
	};
	struct rec r = { 0 };

	setenv("MCPTUN_TEST_SECRET", "leak", 1);
	mkconf("sh", "-c", "echo \"$FOO:${MCPTUN_TEST_SECRET:-none}:"
	    "${PATH:+path}:$(pwd)\"", NULL);
	conf.env.n = 1;
	conf.env.v = pairs;
	conf.cwd = (char *)(uintptr_t)"/tmp";
	r.close_on_exit = 1;
	assert_int_equal(open_rec(&r), 0);
	assert_true(run_until(&r.exited, 3000));
	assert_int_equal(r.nmsg, 1);
	/* Configured env in, the client's own secrets out. */
	assert_string_equal(r.msgs[0], "bar:none:path:/tmp");
	assert_true(run_until_reaped(1000));
	rec_free(&r);
}

static void
test_sandbox(void **state)
{
	char *rw[] = { NULL, NULL };
	char dir[] = "/var/tmp/mcptun-sbx.XXXXXX", script[512];
	struct rec r = { 0 };

	if (access(STDIO_BWRAP, X_OK) != 0)
		skip();
	assert_non_null(mkdtemp(dir));
	rw[0] = dir;
	snprintf(script, sizeof(script),
	    "touch /etc/mcptun-x 2>/dev/null && echo etc-writable || "
	    "echo etc-readonly; ls -A /tmp | wc -l; "
	    "touch %s/ok && echo rw-ok; "
	    "tail -n +3 /proc/net/dev | wc -l", dir);
	mkconf("sh", "-c", script, NULL);
	conf.sandbox.enabled = 1;
	conf.sandbox.read_write = rw;
	r.close_on_exit = 1;
	assert_int_equal(open_rec(&r), 0);
	assert_true(run_until(&r.exited, 5000));
	assert_string_equal(r.why, "server t exited with status 0");
	assert_int_equal(r.nmsg, 4);
	assert_string_equal(r.msgs[0], "etc-readonly");
	assert_string_equal(r.msgs[1], "0");	/* a private /tmp */
	assert_string_equal(r.msgs[2], "rw-ok");
	/* A network namespace of its own: loopback only. */
	assert_string_equal(r.msgs[3], "1");
	assert_true(run_until_reaped(1000));
	rec_free(&r);
	snprintf(script, sizeof(script), "%s/ok", dir);
	assert_int_equal(unlink(script), 0);
	assert_int_equal(rmdir(dir), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_echo),
		cmocka_unit_test(test_not_found),
		cmocka_unit_test(test_exit_status),
		cmocka_unit_test(test_signal),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_sigkill_escalation),
		cmocka_unit_test(test_close_inside_callback),
		cmocka_unit_test(test_stderr_rate_limit),
		cmocka_unit_test(test_pause_resume),
		cmocka_unit_test(test_pause_bounds_memory),
		cmocka_unit_test(test_send_backpressure),
		cmocka_unit_test(test_environment),
		cmocka_unit_test(test_sandbox),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
