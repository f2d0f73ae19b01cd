/*
 * Names on the merged endpoint (client/merge_names.c): "<server>_<tool>"
 * within ^[a-zA-Z0-9_-]{1,64}$, sanitising, truncation with a hash
 * suffix, deterministic and never fatal collision handling, stability of
 * names within a session, reserved names, and dropping a server.
 *
 * merge_names.c is included: it is pure, so the test needs no Makefile
 * entry of its own.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "client/merge_names.c"

static void
test_valid(void **state)
{
	char name[80];

	assert_true(mname_valid("db_query"));
	assert_true(mname_valid("a-b_C9"));
	assert_false(mname_valid(""));
	assert_false(mname_valid("db.query"));
	assert_false(mname_valid("db query"));
	assert_false(mname_valid("d\xc3\xa9j\xc3\xa0"));
	memset(name, 'x', 64);
	name[64] = '\0';
	assert_true(mname_valid(name));
	name[64] = 'x';
	name[65] = '\0';
	assert_false(mname_valid(name));
}

static void
test_compose_plain(void **state)
{
	char out[MNAME_MAX + 1];

	mname_compose("db", "query", 0, out);
	assert_string_equal(out, "db_query");
	mname_compose("everything", "get-sum", 0, out);
	assert_string_equal(out, "everything_get-sum");
	/* Sanitised: dots, slashes, blanks, UTF-8 bytes become '_'. */
	mname_compose("files", "fs.read file/v2", 0, out);
	assert_string_equal(out, "files_fs_read_file_v2");
	mname_compose("files", "caf\xc3\xa9", 0, out);
	assert_string_equal(out, "files_caf__");
	assert_true(mname_valid(out));
	/* An empty upstream name still gives a valid name. */
	mname_compose("files", "", 0, out);
	assert_string_equal(out, "files_");
	assert_true(mname_valid(out));
}

static void
test_compose_long(void **state)
{
	char tool[200], out[MNAME_MAX + 1], again[MNAME_MAX + 1];
	char other[MNAME_MAX + 1];
	size_t i;

	/* Exactly 64: kept as is. */
	memset(tool, 't', 61);
	tool[61] = '\0';
	mname_compose("db", tool, 0, out);
	assert_int_equal(strlen(out), 64);
	assert_int_equal(strncmp(out, "db_ttt", 6), 0);
	assert_null(strchr(out, '-'));
	/* 65: cut, with "-" and six hex digits. */
	memset(tool, 't', 62);
	tool[62] = '\0';
	mname_compose("db", tool, 0, out);
	assert_int_equal(strlen(out), 64);
	assert_true(mname_valid(out));
	assert_int_equal(out[64 - 7], '-');
	for (i = 64 - 6; i < 64; i++)
		assert_non_null(strchr("0123456789abcdef", out[i]));
	/* The same inputs, the same name; another tail, another hash. */
	mname_compose("db", tool, 0, again);
	assert_string_equal(out, again);
	tool[61] = 'u';
	mname_compose("db", tool, 0, other);
	assert_int_equal(strncmp(out, other, 57), 0);
	assert_string_not_equal(out, other);
	/* Very long names of both parts. */
	memset(tool, 'z', 199);
	tool[199] = '\0';
	mname_compose("a-server-name-that-is-long-48-characters-xxxxxxx",
	    tool, 0, out);
	assert_true(mname_valid(out));
	assert_int_equal(strlen(out), 64);
}

static void
test_compose_attempts(void **state)
{
	char a0[MNAME_MAX + 1], a1[MNAME_MAX + 1], a2[MNAME_MAX + 1];

	mname_compose("a", "b_c", 0, a0);
	mname_compose("a", "b_c", 1, a1);
	mname_compose("a", "b_c", 2, a2);
	assert_string_equal(a0, "a_b_c");
	assert_int_equal(strncmp(a1, "a_b_c-", 6), 0);
	assert_int_equal(strlen(a1), 5 + 1 + MNAME_HASHLEN);
	assert_string_not_equal(a1, a2);
	assert_true(mname_valid(a1));
	assert_true(mname_valid(a2));
}

static void
test_collision(void **state)
{
	struct mnames *t = mnames_new();
	const char *servers[] = { "a_b", "a" };
	const char *names[] = { "c", "b_c" };
	const char *out[2], *srv, *nm;

	mnames_assign(t, 2, servers, names, out);
	/* ("a", "b_c") sorts first and keeps the plain name. */
	assert_string_equal(out[1], "a_b_c");
	assert_int_equal(strncmp(out[0], "a_b_c-", 6), 0);
	assert_true(mname_valid(out[0]));
	assert_int_equal(mnames_count(t), 2);
	assert_true(mnames_lookup(t, out[0], &srv, &nm));
	assert_string_equal(srv, "a_b");
	assert_string_equal(nm, "c");
	assert_true(mnames_lookup(t, "a_b_c", &srv, &nm));
	assert_string_equal(srv, "a");
	assert_string_equal(nm, "b_c");
	assert_false(mnames_lookup(t, "a_b_d", &srv, &nm));
	mnames_free(t);
}

static void
test_order_independent(void **state)
{
	struct mnames *t1 = mnames_new(), *t2 = mnames_new();
	const char *s1[] = { "x", "x", "x", "y" };
	const char *n1[] = { "a.b", "a b", "a_b", "q" };
	const char *s2[] = { "y", "x", "x", "x" };
	const char *n2[] = { "q", "a_b", "a b", "a.b" };
	const char *o1[4], *o2[4];

	mnames_assign(t1, 4, s1, n1, o1);
	mnames_assign(t2, 4, s2, n2, o2);
	assert_string_equal(o1[0], o2[3]);
	assert_string_equal(o1[1], o2[2]);
	assert_string_equal(o1[2], o2[1]);
	assert_string_equal(o1[3], o2[0]);
	/* "a b" sorts before "a.b" and "a_b": it keeps x_a_b. */
	assert_string_equal(o1[1], "x_a_b");
	assert_string_not_equal(o1[0], o1[2]);
	assert_true(mname_valid(o1[0]) && mname_valid(o1[2]));
	mnames_free(t1);
	mnames_free(t2);
}

static void
test_stable_and_reserved(void **state)
{
	struct mnames *t = mnames_new();
	const char *s1[] = { "a_b" }, *n1[] = { "c" };
	const char *s2[] = { "a", "a_b" }, *n2[] = { "b_c", "c" };
	const char *s3[] = { "mcptun" }, *n3[] = { "tools" };
	const char *out[2], *srv, *nm;

	mnames_reserve(t, "mcptun_tools");
	/* a_b/c named first keeps a_b_c when a/b_c shows up later. */
	mnames_assign(t, 1, s1, n1, out);
	assert_string_equal(out[0], "a_b_c");
	mnames_assign(t, 2, s2, n2, out);
	assert_string_equal(out[1], "a_b_c");
	assert_int_equal(strncmp(out[0], "a_b_c-", 6), 0);
	/* A pair that would take a reserved name gets a suffix. */
	mnames_assign(t, 1, s3, n3, out);
	assert_string_not_equal(out[0], "mcptun_tools");
	assert_int_equal(strncmp(out[0], "mcptun_tools-", 13), 0);
	assert_false(mnames_lookup(t, "mcptun_tools", &srv, &nm));
	assert_int_equal(mnames_count(t), 3);
	assert_string_equal(mnames_exposed(t, "a_b", "c"), "a_b_c");
	assert_null(mnames_exposed(t, "a_b", "d"));
	/* The same pair twice in one call is named once. */
	{
		const char *sd[] = { "d", "d" }, *nd[] = { "x", "x" };

		mnames_assign(t, 2, sd, nd, out);
		assert_string_equal(out[0], "d_x");
		assert_string_equal(out[1], "d_x");
		assert_int_equal(mnames_count(t), 4);
	}
	/* Dropping a server: its names stop resolving but stay taken. */
	mnames_drop_server(t, "a_b");
	assert_int_equal(mnames_count(t), 3);
	assert_false(mnames_lookup(t, "a_b_c", &srv, &nm));
	assert_null(mnames_exposed(t, "a_b", "c"));
	assert_string_equal(mnames_gone(t, "a_b_c"), "a_b");
	assert_null(mnames_gone(t, "d_x"));
	assert_true(mnames_lookup(t, "d_x", &srv, &nm));
	{
		const char *sa[] = { "a" }, *na[] = { "b.c" };

		/* A newcomer cannot take a tombstone's name... */
		mnames_assign(t, 1, sa, na, out);
		assert_int_equal(strncmp(out[0], "a_b_c-", 6), 0);
		assert_int_equal(mnames_count(t), 4);
	}
	/* ...and the server, back, gets its old name. */
	mnames_assign(t, 1, s1, n1, out);
	assert_string_equal(out[0], "a_b_c");
	assert_null(mnames_gone(t, "a_b_c"));
	assert_true(mnames_lookup(t, "a_b_c", &srv, &nm));
	assert_string_equal(srv, "a_b");
	mnames_free(t);
}

static void
test_many_collisions(void **state)
{
	struct mnames *t = mnames_new();
	const char *servers[300], *names[300], *out[300];
	char buf[300][8];
	size_t i, j;

	/* 300 names that all sanitise to s_t__. */
	for (i = 0; i < 300; i++) {
		snprintf(buf[i], sizeof(buf[i]), "t%c%c", (int)(' ' + i % 15),
		    (int)(0x80 + i / 15));
		servers[i] = "s";
		names[i] = buf[i];
	}
	mnames_assign(t, 300, servers, names, out);
	for (i = 0; i < 300; i++) {
		assert_true(mname_valid(out[i]));
		for (j = 0; j < i; j++)
			assert_string_not_equal(out[i], out[j]);
	}
	assert_int_equal(mnames_count(t), 300);
	mnames_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_compose_plain),
		cmocka_unit_test(test_compose_long),
		cmocka_unit_test(test_compose_attempts),
		cmocka_unit_test(test_collision),
		cmocka_unit_test(test_order_independent),
		cmocka_unit_test(test_stable_and_reserved),
		cmocka_unit_test(test_many_collisions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
