/*
 * Unit tests for the lazy libpq loader (client/pq_dl.c): nothing maps
 * libpq before the first load; a library that is missing, or that is not
 * libpq, is refused with a sentence naming it and leaves the table empty;
 * the real one fills every pointer, answers, and stays loaded.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "client/pq_dl.c"

#include <dlfcn.h>
#include <string.h>

/* Returns 1 if libpq is mapped into this process, else 0. */
static int
libpq_mapped(void)
{
	void *h;

	if ((h = dlopen(PQ_DL_LIBNAME, RTLD_NOW | RTLD_NOLOAD)) == NULL)
		return 0;
	dlclose(h);
	return 1;
}

/* Counts the table's NULL pointers. */
static size_t
table_holes(void)
{
	size_t i, n = 0;
	void *p;

	for (i = 0; i < sizeof(pq_dl_syms) / sizeof(pq_dl_syms[0]); i++) {
		memcpy(&p, (char *)&libpq + pq_dl_syms[i].off, sizeof(p));
		if (p == NULL)
			n++;
	}
	return n;
}

static void
test_not_linked(void **state)
{
	/* The test links what the client links: libpq must not be there. */
	assert_int_equal(libpq_mapped(), 0);
	assert_int_equal(pq_dl_loaded(), 0);
	assert_int_equal(table_holes(),
	    sizeof(pq_dl_syms) / sizeof(pq_dl_syms[0]));
}

static void
test_missing(void **state)
{
	char err[512];

	err[0] = '\0';
	assert_int_equal(pq_dl_load_from("libmcptun-no-such-pq.so.5", err,
	    sizeof(err)), MT_ENOTFOUND);
	assert_non_null(strstr(err, "cannot load libmcptun-no-such-pq.so.5"));
	assert_non_null(strstr(err, "libpq5"));
	assert_int_equal(pq_dl_loaded(), 0);
	assert_int_equal(libpq_mapped(), 0);
}

static void
test_not_libpq(void **state)
{
	char err[512];

	/* A real library without libpq's functions (the client links it). */
	err[0] = '\0';
	assert_int_equal(pq_dl_load_from("libjansson.so.4", err, sizeof(err)),
	    MT_ENOTFOUND);
	assert_non_null(strstr(err, "libjansson.so.4 has no PQclear"));
	assert_int_equal(pq_dl_loaded(), 0);
	assert_null(libpq.PQclear);
}

static void
test_load(void **state)
{
	char err[512];
	PGconn *c;

	err[0] = '\0';
	assert_int_equal(pq_dl_load(err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_int_equal(pq_dl_loaded(), 1);
	assert_int_equal(libpq_mapped(), 1);
	assert_int_equal(table_holes(), 0);
	assert_true(libpq.PQlibVersion() >= 100000);
	/* A call that needs no server: a bad conninfo fails at once. */
	c = libpq.PQconnectStartParams((const char *const[]){ "dbname",
	    NULL }, (const char *const[]){ "host=/nonexistent port=x",
	    NULL }, 1);
	assert_non_null(c);
	assert_int_equal(libpq.PQstatus(c), CONNECTION_BAD);
	assert_non_null(strstr(libpq.PQerrorMessage(c), "port"));
	libpq.PQfinish(c);
}

static void
test_stays_loaded(void **state)
{
	char err[64];

	/* Loaded once, for good: another name does not replace it. */
	assert_int_equal(pq_dl_load(err, sizeof(err)), 0);
	assert_int_equal(pq_dl_load_from("libmcptun-no-such-pq.so.5", err,
	    sizeof(err)), 0);
	assert_int_equal(pq_dl_loaded(), 1);
	assert_int_equal(table_holes(), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_not_linked),
		cmocka_unit_test(test_missing),
		cmocka_unit_test(test_not_libpq),
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_stays_loaded),
	};

	return cmocka_run_group_tests_name("pq_dl", tests, NULL, NULL);
}
