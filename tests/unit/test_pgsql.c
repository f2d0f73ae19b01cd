/*
 * Unit tests for client/pgsql.c, the pure half of the postgres adapter:
 * the statement screen (comments, blanks, case, nesting), type mapping to
 * JSON, result sets under caps and their text and JSON renderings,
 * curated-tool argument checking, and resource URIs.  The .c is included
 * so the test needs no extra objects.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "client/pgsql.c"

#include <string.h>

/* ---- statement screen ------------------------------------------------------ */

static void
screen_ok(const char *sql)
{
	char why[512] = "";

	if (pgsql_screen(sql, why, sizeof(why)) != 0)
		fail_msg("refused \"%s\": %s", sql, why);
}

static void
screen_refused(const char *sql, const char *kw)
{
	char why[512] = "";

	if (pgsql_screen(sql, why, sizeof(why)) != MT_EDENIED)
		fail_msg("not refused: \"%s\"", sql);
	if (strstr(why, kw) == NULL)
		fail_msg("\"%s\": the reason does not name %s: %s", sql, kw,
		    why);
}

static void
screen_empty(const char *sql)
{
	char why[512] = "";

	if (pgsql_screen(sql, why, sizeof(why)) != MT_EINVAL)
		fail_msg("not empty: \"%s\"", sql);
	assert_non_null(strstr(why, "no statement"));
}

static void
test_screen_allows_queries(void **state)
{
	(void)state;
	screen_ok("SELECT 1");
	screen_ok("  select 1");
	screen_ok("\n\t-- a comment\nSELECT * FROM orders");
	screen_ok("/* c */ WITH x AS (SELECT 1) SELECT * FROM x");
	screen_ok("(SELECT 1) UNION (SELECT 2)");
	screen_ok("EXPLAIN SELECT 1");
	screen_ok("TABLE orders");
	screen_ok("VALUES (1), (2)");
	screen_ok("SHOW search_path");
	screen_ok("SELECT 'BEGIN; COMMIT'");
	/* Only the first keyword is screened; the extended protocol
	 * refuses the second statement. */
	screen_ok("SELECT 1; COMMIT");
	/* Whole words only. */
	screen_ok("do_something()");
	screen_ok("settings");
	screen_ok("ENDPOINT");
	/* Writes are left to the READ ONLY transaction. */
	screen_ok("INSERT INTO t VALUES (1)");
	screen_ok("DROP TABLE t");
}

static void
test_screen_refuses_control(void **state)
{
	(void)state;
	screen_refused("BEGIN", "BEGIN");
	screen_refused("begin;", "BEGIN");
	screen_refused("  Commit", "COMMIT");
	screen_refused("COMMIT; DROP TABLE x", "COMMIT");
	screen_refused("/* x */ commit; drop table x", "COMMIT");
	screen_refused("/* a /* nested */ still comment */ rollback",
	    "ROLLBACK");
	screen_refused("-- c\n  set transaction read write", "SET");
	screen_refused("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
	    "SET");
	screen_refused("\tSeT\nrole postgres", "SET");
	screen_refused("start transaction", "START");
	screen_refused("END", "END");
	screen_refused("abort", "ABORT");
	screen_refused("savepoint a", "SAVEPOINT");
	screen_refused("release a", "RELEASE");
	screen_refused("PREPARE TRANSACTION 'x'", "PREPARE");
	screen_refused("prepare q AS SELECT 1", "PREPARE");
	screen_refused("execute q", "EXECUTE");
	screen_refused("deallocate all", "DEALLOCATE");
	screen_refused("reset all", "RESET");
	screen_refused("discard all", "DISCARD");
	screen_refused("lock table t", "LOCK");
	screen_refused("listen x", "LISTEN");
	screen_refused("unlisten *", "UNLISTEN");
	screen_refused("notify x", "NOTIFY");
	screen_refused("copy t to stdout", "COPY");
	screen_refused("do $$ begin end $$", "DO");
	screen_refused("call p()", "CALL");
	screen_refused("vacuum", "VACUUM");
	screen_refused("checkpoint", "CHECKPOINT");
	screen_refused("load 'x.so'", "LOAD");
	screen_refused("(BEGIN)", "BEGIN");
	screen_refused("--\n--\n/**/begin", "BEGIN");
}

static void
test_screen_empty(void **state)
{
	(void)state;
	screen_empty("");
	screen_empty("   \n\t");
	screen_empty("-- only a comment\n");
	screen_empty("/* unterminated");
	screen_empty(";");
	screen_empty(" ; -- x");
}

static void
test_skip_blank(void **state)
{
	(void)state;
	assert_string_equal(pgsql_skip_blank("  x"), "x");
	assert_string_equal(pgsql_skip_blank("-- a\n-- b\nx"), "x");
	assert_string_equal(pgsql_skip_blank("/* a /* b */ c */x"), "x");
	assert_string_equal(pgsql_skip_blank("/* a /* b */ c x"), "");
	assert_string_equal(pgsql_skip_blank("-x"), "-x");
	assert_string_equal(pgsql_skip_blank("/x"), "/x");
}

/* ---- types and values ------------------------------------------------------- */

static char *
dump(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);

	json_decref(j);
	assert_non_null(s);
	return s;
}

static void
value_is(unsigned int oid, const char *text, const char *want)
{
	char *got;

	got = dump(pgsql_value(oid, text, text != NULL ? strlen(text) : 0));
	if (strcmp(got, want) != 0)
		fail_msg("oid %u \"%s\": got %s, want %s", oid,
		    text != NULL ? text : "(null)", got, want);
	free(got);
}

static void
test_values(void **state)
{
	(void)state;
	value_is(23, "42", "42");
	value_is(21, "-7", "-7");
	value_is(26, "16384", "16384");
	value_is(20, "9223372036854775807", "\"9223372036854775807\"");
	value_is(1700, "12.30", "\"12.30\"");
	value_is(1700, "NaN", "\"NaN\"");
	value_is(16, "t", "true");
	value_is(16, "f", "false");
	value_is(701, "3.5", "3.5");
	value_is(700, "-0.25", "-0.25");
	value_is(701, "NaN", "\"NaN\"");
	value_is(701, "Infinity", "\"Infinity\"");
	value_is(3802, "{\"a\": 1, \"b\": [true, null, \"x\"]}",
	    "{\"a\":1,\"b\":[true,null,\"x\"]}");
	value_is(3802, "\"just a string\"", "\"just a string\"");
	value_is(114, "[1", "\"[1\"");
	value_is(17, "\\x000102fffe", "\"AAEC//4=\"");
	value_is(17, "\\x", "\"\"");
	value_is(25, NULL, "null");
	value_is(23, NULL, "null");
	value_is(25, "h\xc3\xa9llo", "\"h\xc3\xa9llo\"");
	value_is(25, "a\xff" "b", "\"a\xef\xbf\xbd" "b\"");
	value_is(1184, "2024-01-01 00:00:00+00", "\"2024-01-01 00:00:00+00\"");
	value_is(1007, "{1,2,3}", "\"{1,2,3}\"");
	value_is(2950, "00000000-0000-4000-8000-000000000001",
	    "\"00000000-0000-4000-8000-000000000001\"");
	/* A value that does not parse as its type stays a string. */
	value_is(23, "x", "\"x\"");
}

static void
test_type_names(void **state)
{
	(void)state;
	assert_string_equal(pgsql_type_name(23), "integer");
	assert_string_equal(pgsql_type_name(1184), "timestamp with time zone");
	assert_string_equal(pgsql_type_name(1007), "integer[]");
	assert_string_equal(pgsql_type_name(1043), "character varying");
	assert_string_equal(pgsql_type_name(3802), "jsonb");
	assert_null(pgsql_type_name(99999));
	assert_int_equal(pgsql_type_kind(99999), PGSQL_KIND_TEXT);
	assert_int_equal(pgsql_type_kind(20), PGSQL_KIND_DECIMAL);
	assert_true(pgsql_type_numeric(1700));
	assert_true(pgsql_type_numeric(23));
	assert_false(pgsql_type_numeric(25));
}

static void
test_bytea_and_base64(void **state)
{
	uint8_t *raw;
	size_t n;
	char *b;

	(void)state;
	raw = pgsql_bytea_decode("a\\\\b\\001\\377",
	    strlen("a\\\\b\\001\\377"), &n);
	assert_non_null(raw);
	assert_int_equal(n, 5);
	assert_memory_equal(raw, "a\\b\001\377", 5);
	free(raw);
	assert_null(pgsql_bytea_decode("\\x0", 3, &n));
	assert_null(pgsql_bytea_decode("\\xzz", 4, &n));
	assert_null(pgsql_bytea_decode("a\\9", 3, &n));

	b = pgsql_base64((const uint8_t *)"", 0);
	assert_string_equal(b, "");
	free(b);
	b = pgsql_base64((const uint8_t *)"f", 1);
	assert_string_equal(b, "Zg==");
	free(b);
	b = pgsql_base64((const uint8_t *)"fo", 2);
	assert_string_equal(b, "Zm8=");
	free(b);
	b = pgsql_base64((const uint8_t *)"foobar", 6);
	assert_string_equal(b, "Zm9vYmFy");
	free(b);
}

/* ---- result sets ------------------------------------------------------------ */

static void
add(struct pgsql_result *r, const char *a, const char *b, const char *c)
{
	const char *v[3] = { a, b, c };
	size_t l[3];
	size_t i;

	for (i = 0; i < 3; i++)
		l[i] = v[i] != NULL ? strlen(v[i]) : 0;
	pgsql_result_add_row(r, v, l);
}

static struct pgsql_result *
sample(uint64_t max_rows, uint64_t max_bytes)
{
	struct pgsql_result *r;

	r = pgsql_result_new(3, max_rows, max_bytes);
	pgsql_result_set_col(r, 0, "id", 23);
	pgsql_result_set_col(r, 1, "name", 25);
	pgsql_result_set_col(r, 2, "total", 1700);
	add(r, "1", "Ada Lovelace", "34.49");
	add(r, "22", "Grace", NULL);
	add(r, "333", "tab\there\nnl", "1234.56");
	return r;
}

static void
test_result_text(void **state)
{
	struct pgsql_result *r;
	char *t;

	(void)state;
	r = sample(0, 0);
	t = pgsql_result_text(r);
	assert_string_equal(t,
	    " id  | name          | total\n"
	    "-----+---------------+---------\n"
	    "   1 | Ada Lovelace  |   34.49\n"
	    "  22 | Grace         |    NULL\n"
	    " 333 | tab\\there\\nnl | 1234.56\n"
	    "(3 rows)\n");
	free(t);
	pgsql_result_free(r);

	r = pgsql_result_new(0, 0, 0);
	pgsql_result_set_command(r, "UPDATE 3");
	t = pgsql_result_text(r);
	assert_string_equal(t, "UPDATE 3\n");
	free(t);
	pgsql_result_free(r);
}

static void
test_result_caps(void **state)
{
	struct pgsql_result *r;
	char *t;

	(void)state;
	r = sample(2, 0);
	add(r, "4", "four", "4");
	assert_int_equal(r->nrows, 2);
	assert_int_equal(r->seen, 4);
	assert_true(r->truncated);
	t = pgsql_result_footer(r);
	assert_string_equal(t, "truncated: showing 2 of 4 rows (max_rows 2)");
	free(t);
	r->incomplete = 1;
	t = pgsql_result_footer(r);
	assert_string_equal(t,
	    "truncated: showing 2 of at least 4 rows (max_rows 2)");
	free(t);
	t = pgsql_result_text(r);
	assert_non_null(strstr(t, "Grace"));
	assert_null(strstr(t, "tab"));
	free(t);
	pgsql_result_free(r);

	/* 1 + 12 + 5 bytes fit in 20; the second row does not. */
	r = sample(0, 20);
	assert_int_equal(r->nrows, 1);
	assert_int_equal(r->seen, 3);
	assert_true(r->by_bytes);
	t = pgsql_result_footer(r);
	assert_string_equal(t, "truncated: showing 1 of 3 rows (max_bytes 20)");
	free(t);
	pgsql_result_free(r);

	r = sample(3, 0);
	assert_false(r->truncated);
	t = pgsql_result_footer(r);
	assert_string_equal(t, "(3 rows)");
	free(t);
	pgsql_result_free(r);
}

static void
test_result_json(void **state)
{
	struct pgsql_result *r;
	char *s;

	(void)state;
	r = pgsql_result_new(3, 0, 0);
	pgsql_result_set_col(r, 0, "a", 23);
	pgsql_result_set_col(r, 1, "a", 3802);
	pgsql_result_set_col(r, 2, "x", 16385);
	add(r, "1", "{\"k\": [1]}", "v");
	add(r, NULL, NULL, NULL);
	s = dump(pgsql_result_json(r));
	assert_string_equal(s,
	    "{\"columns\":[{\"name\":\"a\",\"type\":\"integer\"},"
	    "{\"name\":\"a\",\"type\":\"jsonb\",\"key\":\"a_2\"},"
	    "{\"name\":\"x\",\"type\":\"oid 16385\"}],"
	    "\"rows\":[{\"a\":1,\"a_2\":{\"k\":[1]},\"x\":\"v\"},"
	    "{\"a\":null,\"a_2\":null,\"x\":null}],"
	    "\"row_count\":2,\"total_rows\":2,\"total_rows_exact\":true,"
	    "\"truncated\":false}");
	free(s);
	pgsql_result_set_type(r, 2, "mood");
	s = dump(pgsql_result_json(r));
	assert_non_null(strstr(s, "{\"name\":\"x\",\"type\":\"mood\"}"));
	free(s);
	pgsql_result_free(r);
	s = dump(pgsql_result_schema());
	assert_non_null(strstr(s, "\"required\":[\"columns\",\"rows\","
	    "\"row_count\",\"truncated\"]"));
	free(s);
}

static void
test_result_long_cells(void **state)
{
	struct pgsql_result *r;
	const char *v[2];
	size_t l[2];
	char big[201], *t, *line2;

	(void)state;
	memset(big, 'x', 200);
	big[200] = '\0';
	r = pgsql_result_new(2, 0, 0);
	pgsql_result_set_col(r, 0, "long", 25);
	pgsql_result_set_col(r, 1, "n", 23);
	v[0] = big;
	v[1] = "1";
	l[0] = 200;
	l[1] = 1;
	pgsql_result_add_row(r, v, l);
	v[0] = "short";
	l[0] = 5;
	pgsql_result_add_row(r, v, l);
	t = pgsql_result_text(r);
	/* The long value is not padded to; short ones pad to 60. */
	line2 = strstr(t, " short");
	assert_non_null(line2);
	assert_int_equal(strchr(line2, '|') - line2, 62);
	free(t);
	pgsql_result_free(r);
}

/* ---- curated tools ---------------------------------------------------------- */

static struct pg_param tparams[] = {
	{ "name", PG_PARAM_STRING, "customer name", 1 },
	{ "limit", PG_PARAM_INTEGER, NULL, 0 },
	{ "ratio", PG_PARAM_NUMBER, NULL, 0 },
	{ "paid", PG_PARAM_BOOLEAN, NULL, 0 },
};

static struct pg_tool ttool = {
	"orders_of", "Orders of a customer",
	"SELECT * FROM orders WHERE name = $1 LIMIT $2 -- $3 $4", 4, tparams,
	{ 1, 1 }
};

static int
bind(const char *args, char ***values, char *err, size_t errlen)
{
	json_t *a = args != NULL ? json_loads(args, JSON_ALLOW_NUL, NULL) :
	    NULL;
	int r;

	if (args != NULL)
		assert_non_null(a);
	r = pgsql_tool_bind(&ttool, a, values, err, errlen);
	json_decref(a);
	return r;
}

static void
bind_fails(const char *args, const char *want)
{
	char err[256] = "", **v = NULL;

	if (bind(args, &v, err, sizeof(err)) != MT_EINVAL)
		fail_msg("accepted %s", args != NULL ? args : "(none)");
	if (strstr(err, want) == NULL)
		fail_msg("%s: \"%s\" does not say \"%s\"", args, err, want);
	assert_null(v);
}

static void
test_tool_bind(void **state)
{
	char err[256] = "", **v = NULL;

	(void)state;
	assert_int_equal(bind("{\"name\":\"Ada\",\"limit\":5,\"ratio\":1.5,"
	    "\"paid\":true}", &v, err, sizeof(err)), 0);
	assert_string_equal(v[0], "Ada");
	assert_string_equal(v[1], "5");
	assert_string_equal(v[2], "1.5");
	assert_string_equal(v[3], "true");
	pgsql_values_free(v, 4);

	assert_int_equal(bind("{\"name\":\"O'Brien; DROP TABLE x\","
	    "\"limit\":3.0,\"ratio\":2,\"paid\":null}", &v, err,
	    sizeof(err)), 0);
	assert_string_equal(v[0], "O'Brien; DROP TABLE x");
	assert_string_equal(v[1], "3");
	assert_string_equal(v[2], "2");
	assert_null(v[3]);
	pgsql_values_free(v, 4);

	bind_fails(NULL, "missing required argument \"name\"");
	bind_fails("{}", "missing required argument \"name\" (string)");
	bind_fails("{\"name\":null}", "missing required");
	bind_fails("{\"name\":7}", "\"name\" must be a string, not an integer");
	bind_fails("{\"name\":\"a\",\"limit\":\"5\"}",
	    "\"limit\" must be an integer, not a string");
	bind_fails("{\"name\":\"a\",\"limit\":2.5}",
	    "\"limit\" must be an integer, not a fraction");
	bind_fails("{\"name\":\"a\",\"ratio\":\"1\"}",
	    "\"ratio\" must be a number");
	bind_fails("{\"name\":\"a\",\"paid\":1}",
	    "\"paid\" must be a boolean, not an integer");
	bind_fails("{\"name\":\"a\",\"evil\":1}", "unknown argument \"evil\"");
	bind_fails("{\"name\":\"a\\u0000b\"}", "NUL");
	bind_fails("[1]", "must be a JSON object");
}

static void
test_tool_schema(void **state)
{
	char *s;

	(void)state;
	s = dump(pgsql_tool_input_schema(&ttool));
	assert_string_equal(s, "{\"type\":\"object\",\"properties\":{"
	    "\"name\":{\"type\":\"string\",\"description\":\"customer name\"},"
	    "\"limit\":{\"type\":\"integer\"},\"ratio\":{\"type\":\"number\"},"
	    "\"paid\":{\"type\":\"boolean\"}},\"required\":[\"name\"],"
	    "\"additionalProperties\":false}");
	free(s);
}

/* ---- resources -------------------------------------------------------------- */

static void
test_resource_uri(void **state)
{
	char *uri, *schema, *table;

	(void)state;
	uri = pgsql_resource_uri("shop", "public", "orders");
	assert_string_equal(uri, "postgres://shop/public/orders/schema");
	assert_int_equal(pgsql_resource_parse(uri, "shop", &schema, &table), 0);
	assert_string_equal(schema, "public");
	assert_string_equal(table, "orders");
	free(schema);
	free(table);
	assert_int_equal(pgsql_resource_parse(uri, "other", &schema, &table),
	    MT_ENOTFOUND);
	free(uri);

	uri = pgsql_resource_uri("shop", "my schema", "a/b%");
	assert_string_equal(uri, "postgres://shop/my%20schema/a%2Fb%25/schema");
	assert_int_equal(pgsql_resource_parse(uri, "shop", &schema, &table), 0);
	assert_string_equal(schema, "my schema");
	assert_string_equal(table, "a/b%");
	free(schema);
	free(table);
	free(uri);

	assert_int_equal(pgsql_resource_parse("postgres://shop/public/orders",
	    "shop", &schema, &table), MT_ENOTFOUND);
	assert_int_equal(pgsql_resource_parse("postgres://shop//orders/schema",
	    "shop", &schema, &table), MT_ENOTFOUND);
	assert_int_equal(pgsql_resource_parse("postgres://shop/a/b/c/schema",
	    "shop", &schema, &table), MT_ENOTFOUND);
	assert_int_equal(pgsql_resource_parse("postgres://shop/a%2/b/schema",
	    "shop", &schema, &table), MT_ENOTFOUND);
	assert_int_equal(pgsql_resource_parse("postgres://shop/a%00/b/schema",
	    "shop", &schema, &table), MT_ENOTFOUND);
	assert_int_equal(pgsql_resource_parse("http://shop/a/b/schema",
	    "shop", &schema, &table), MT_ENOTFOUND);
}

/* ---- describe and explain text ---------------------------------------------- */

static void
test_describe_text(void **state)
{
	json_t *d;
	char *t;

	(void)state;
	d = json_loads("{\"schema\":\"public\",\"table\":\"orders\","
	    "\"kind\":\"table\",\"comment\":null,"
	    "\"columns\":[{\"name\":\"id\",\"type\":\"integer\","
	    "\"nullable\":false,\"default\":null},"
	    "{\"name\":\"note\",\"type\":\"text\",\"nullable\":true,"
	    "\"default\":\"'x'::text\"}],"
	    "\"primary_key\":[\"id\"],"
	    "\"foreign_keys\":[{\"name\":\"fk\",\"definition\":"
	    "\"FOREIGN KEY (c) REFERENCES customers(id)\"}],"
	    "\"referenced_by\":[{\"name\":\"r\",\"schema\":\"public\","
	    "\"table\":\"items\",\"definition\":\"FOREIGN KEY (o) "
	    "REFERENCES orders(id)\"}],"
	    "\"constraints\":[],"
	    "\"indexes\":[{\"name\":\"orders_pkey\",\"definition\":"
	    "\"CREATE UNIQUE INDEX orders_pkey ON public.orders USING btree "
	    "(id)\"}]}", 0, NULL);
	assert_non_null(d);
	t = pgsql_describe_text(d);
	assert_non_null(strstr(t, "Table public.orders\n"));
	assert_non_null(strstr(t, " id     | integer | not null |"));
	assert_non_null(strstr(t, " note   | text    | null     | 'x'::text\n"));
	assert_non_null(strstr(t, "Primary key: (id)\n"));
	assert_non_null(strstr(t, "Foreign keys:\n  fk: FOREIGN KEY (c) "
	    "REFERENCES customers(id)\n"));
	assert_non_null(strstr(t, "Referenced by:\n  public.items r: "));
	assert_null(strstr(t, "Constraints"));
	assert_non_null(strstr(t, "Indexes:\n  orders_pkey: CREATE UNIQUE"));
	free(t);
	json_decref(d);
}

static void
test_explain_text(void **state)
{
	json_t *p;
	char *t;

	(void)state;
	p = json_loads("[{\"Plan\":{\"Node Type\":\"Hash Join\","
	    "\"Join Type\":\"Left\",\"Startup Cost\":1.09,\"Total Cost\":2.2,"
	    "\"Plan Rows\":8,\"Plan Width\":40,\"Hash Cond\":\"(a = b)\","
	    "\"Plans\":[{\"Node Type\":\"Seq Scan\",\"Relation Name\":"
	    "\"orders\",\"Schema\":\"public\",\"Alias\":\"o\","
	    "\"Startup Cost\":0,\"Total Cost\":1.08,\"Plan Rows\":8,"
	    "\"Plan Width\":36,\"Filter\":\"(status = 'paid')\"}]}}]", 0, NULL);
	assert_non_null(p);
	t = pgsql_explain_text(p);
	assert_string_equal(t,
	    "Hash Join (Left)  (cost=1.09..2.20 rows=8 width=40)\n"
	    "  Hash Cond: (a = b)\n"
	    "  ->  Seq Scan on public.orders o  (cost=0.00..1.08 rows=8 "
	    "width=36)\n"
	    "        Filter: (status = 'paid')\n");
	free(t);
	json_decref(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_screen_allows_queries),
		cmocka_unit_test(test_screen_refuses_control),
		cmocka_unit_test(test_screen_empty),
		cmocka_unit_test(test_skip_blank),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_type_names),
		cmocka_unit_test(test_bytea_and_base64),
		cmocka_unit_test(test_result_text),
		cmocka_unit_test(test_result_caps),
		cmocka_unit_test(test_result_json),
		cmocka_unit_test(test_result_long_cells),
		cmocka_unit_test(test_tool_bind),
		cmocka_unit_test(test_tool_schema),
		cmocka_unit_test(test_resource_uri),
		cmocka_unit_test(test_describe_text),
		cmocka_unit_test(test_explain_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
