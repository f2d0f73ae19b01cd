/*
 * Unit tests for common/resolve.c: host-name lookups on worker threads,
 * answered on the caller's thread through resolve_fd/resolve_dispatch.
 * A fake getaddrinfo holds names starting with "block" until the test
 * opens its gate, so "still pending" is a state the test controls, not a
 * matter of timing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/resolve.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int gate_open;		/* under mu */
static int gai_calls;		/* under mu */
static int gai_inside;		/* blocked in the fake, under mu */

/* Answers, seen on the test's thread. */
static int answers;
static char last_addr[RESOLVE_ADDR_LEN];
static int last_error;

static int
fake_gai(const char *name, const char *service, const struct addrinfo *hints,
    struct addrinfo **res)
{
	pthread_mutex_lock(&mu);
	gai_calls++;
	if (strncmp(name, "block", 5) == 0) {
		gai_inside++;
		pthread_cond_broadcast(&cv);
		while (!gate_open)
			pthread_cond_wait(&cv, &mu);
		gai_inside--;
	}
	pthread_mutex_unlock(&mu);
	if (strncmp(name, "err", 3) == 0)
		return EAI_NONAME;
	return getaddrinfo("127.0.0.1", service, hints, res);
}

static void
set_gate(int open)
{
	pthread_mutex_lock(&mu);
	gate_open = open;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

/* Waits until n lookups sit inside the fake getaddrinfo. */
static void
wait_inside(int n)
{
	pthread_mutex_lock(&mu);
	while (gai_inside < n)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
}

static int
calls(void)
{
	int n;

	pthread_mutex_lock(&mu);
	n = gai_calls;
	pthread_mutex_unlock(&mu);
	return n;
}

static void
on_answer(void *arg, const struct resolve_result *res)
{
	int *count = arg;

	answers++;
	if (count != NULL)
		(*count)++;
	last_error = res->error != NULL;
	if (res->n > 0)
		snprintf(last_addr, sizeof(last_addr), "%s", res->addr[0]);
	else
		last_addr[0] = '\0';
}

/* Dispatches until answers reaches n (or 5 s pass without progress). */
static void
wait_answers(int n)
{
	struct pollfd p;

	while (answers < n) {
		p.fd = resolve_fd();
		p.events = POLLIN;
		assert_int_equal(poll(&p, 1, 5000), 1);
		(void)resolve_dispatch();
	}
}

static int
setup(void **state)
{
	(void)state;
	assert_int_equal(resolve_init(), 0);
	resolve_set_gai(fake_gai);
	set_gate(1);
	pthread_mutex_lock(&mu);
	gai_calls = 0;
	pthread_mutex_unlock(&mu);
	answers = 0;
	last_addr[0] = '\0';
	last_error = 0;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	set_gate(1);
	resolve_shutdown();
	return 0;
}

static void
test_numeric(void **state)
{
	(void)state;
	assert_true(resolve_is_numeric("127.0.0.1"));
	assert_true(resolve_is_numeric("::1"));
	assert_true(resolve_is_numeric("fe80::1"));
	assert_false(resolve_is_numeric("localhost"));
	assert_false(resolve_is_numeric("1.2.3"));
	assert_false(resolve_is_numeric("10.0.0.1.example"));
	assert_false(resolve_is_numeric(""));
	assert_false(resolve_is_numeric(NULL));
}

static void
test_answer(void **state)
{
	struct resolve_req *rq = NULL;

	(void)state;
	assert_int_equal(resolve_start("ok.test", on_answer, NULL, &rq), 0);
	assert_non_null(rq);
	assert_int_equal(answers, 0);		/* never from inside start */
	wait_answers(1);
	assert_false(last_error);
	assert_string_equal(last_addr, "127.0.0.1");
	assert_int_equal(resolve_pending(), 0);
	assert_int_equal(resolve_start("", on_answer, NULL, &rq), MT_EINVAL);
}

static void
test_error(void **state)
{
	struct resolve_req *rq;

	(void)state;
	assert_int_equal(resolve_start("err.test", on_answer, NULL, &rq), 0);
	wait_answers(1);
	assert_true(last_error);
	assert_string_equal(last_addr, "");
	/* Failures are not cached: the next request asks again. */
	assert_int_equal(resolve_start("err.test", on_answer, NULL, &rq), 0);
	wait_answers(2);
	assert_int_equal(calls(), 2);
}

/* Requests for a name in flight share its lookup. */
static void
test_shared(void **state)
{
	struct resolve_req *a, *b;
	int na = 0, nb = 0;

	(void)state;
	set_gate(0);
	assert_int_equal(resolve_start("block-shared", on_answer, &na, &a), 0);
	assert_int_equal(resolve_start("block-shared", on_answer, &nb, &b), 0);
	assert_int_equal(resolve_pending(), 1);
	wait_inside(1);
	set_gate(1);
	wait_answers(2);
	assert_int_equal(na, 1);
	assert_int_equal(nb, 1);
	assert_int_equal(calls(), 1);
}

/* A cancelled request is never answered, even when its lookup ends. */
static void
test_cancel_pending(void **state)
{
	struct resolve_req *a, *b, *c;
	int na = 0, nb = 0, nc = 0;

	(void)state;
	set_gate(0);
	assert_int_equal(resolve_start("block-c1", on_answer, &na, &a), 0);
	assert_int_equal(resolve_start("block-c1", on_answer, &nb, &b), 0);
	assert_int_equal(resolve_start("block-c2", on_answer, &nc, &c), 0);
	wait_inside(2);
	resolve_cancel(a);
	resolve_cancel(c);	/* its lookup runs on, nobody waits */
	assert_int_equal(resolve_pending(), 2);
	set_gate(1);
	wait_answers(1);
	assert_int_equal(na, 0);
	assert_int_equal(nb, 1);
	/* c's lookup ends too; its answer goes nowhere. */
	while (resolve_pending() > 0) {
		struct pollfd p = { resolve_fd(), POLLIN, 0 };

		assert_int_equal(poll(&p, 1, 5000), 1);
		assert_int_equal(resolve_dispatch(), 0);
	}
	assert_int_equal(nc, 0);
	resolve_cancel(NULL);
}

static struct resolve_req *sibling;

/* Cancels the other request of the same lookup, as a closing session. */
static void
on_answer_cancel(void *arg, const struct resolve_result *res)
{
	on_answer(arg, res);
	resolve_cancel(sibling);
	sibling = NULL;
}

static void
test_cancel_in_callback(void **state)
{
	struct resolve_req *a;
	int na = 0, nb = 0;

	(void)state;
	set_gate(0);
	assert_int_equal(resolve_start("block-cb", on_answer_cancel, &na, &a),
	    0);
	assert_int_equal(resolve_start("block-cb", on_answer, &nb, &sibling),
	    0);
	wait_inside(1);
	set_gate(1);
	wait_answers(1);
	assert_int_equal(resolve_dispatch(), 0);
	assert_int_equal(na, 1);
	assert_int_equal(nb, 0);
	assert_null(sibling);
}

/* At most RESOLVE_MAX_PENDING names in flight; a cancel frees a slot. */
static void
test_bound(void **state)
{
	struct resolve_req *rq[RESOLVE_MAX_PENDING + 1];
	char name[32];
	int i, n = 0;

	(void)state;
	set_gate(0);
	for (i = 0; i < RESOLVE_MAX_PENDING; i++) {
		snprintf(name, sizeof(name), "block-%d", i);
		assert_int_equal(resolve_start(name, on_answer, &n, &rq[i]), 0);
	}
	assert_int_equal(resolve_pending(), RESOLVE_MAX_PENDING);
	assert_int_equal(resolve_start("block-over", on_answer, &n,
	    &rq[RESOLVE_MAX_PENDING]), MT_ELIMIT);
	/* A name in flight can still be waited for. */
	assert_int_equal(resolve_start("block-3", on_answer, &n,
	    &rq[RESOLVE_MAX_PENDING]), 0);
	/* The workers hold the first names; the last one still queues. */
	wait_inside(RESOLVE_WORKERS);
	resolve_cancel(rq[RESOLVE_MAX_PENDING - 1]);
	assert_int_equal(resolve_pending(), RESOLVE_MAX_PENDING - 1);
	assert_int_equal(resolve_start("block-over", on_answer, &n,
	    &rq[RESOLVE_MAX_PENDING - 1]), 0);
	set_gate(1);
	wait_answers(RESOLVE_MAX_PENDING + 1);
	assert_int_equal(n, RESOLVE_MAX_PENDING + 1);
	assert_int_equal(resolve_pending(), 0);
	/* The cancelled queued name was never looked up. */
	assert_int_equal(calls(), RESOLVE_MAX_PENDING);
}

/* A fresh answer is reused, still through dispatch. */
static void
test_cache(void **state)
{
	struct resolve_req *rq;

	(void)state;
	assert_int_equal(resolve_start("cached.test", on_answer, NULL, &rq), 0);
	wait_answers(1);
	assert_int_equal(resolve_start("cached.test", on_answer, NULL, &rq), 0);
	assert_int_equal(answers, 1);
	wait_answers(2);
	assert_string_equal(last_addr, "127.0.0.1");
	assert_int_equal(calls(), 1);
}

/* Shutting down with a lookup stuck inside getaddrinfo does not wait. */
static void
test_shutdown_pending(void **state)
{
	struct resolve_req *rq;
	int n = 0;

	(void)state;
	set_gate(0);
	assert_int_equal(resolve_start("block-stuck", on_answer, &n, &rq), 0);
	assert_int_equal(resolve_start("block-queued", on_answer, &n, &rq), 0);
	wait_inside(1);
	resolve_shutdown();
	assert_int_equal(resolve_fd(), -1);
	assert_int_equal(resolve_start("x.test", on_answer, &n, &rq),
	    MT_EINVAL);
	set_gate(1);
	assert_int_equal(n, 0);
}

int
main(void)
{
	/* One group, so that tests/run.sh counts every test. */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_numeric),
		cmocka_unit_test_setup_teardown(test_answer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shared, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_pending, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cancel_in_callback, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shutdown_pending, setup,
		    teardown),
	};

	return cmocka_run_group_tests_name("resolve", tests, NULL, NULL);
}
