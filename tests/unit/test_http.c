/*
 * Unit tests for the pure parts of the relay's MCP Streamable HTTP front:
 * relay/mcp_route.c (paths, Accept, Content-Type, bearer tokens, Origin,
 * protocol versions, the JSON-RPC keys that route upstream messages) and
 * relay/metrics.c (the Prometheus exposition).
 *
 * Both files are compiled into this test directly, so it links with
 * nothing but libmcptun.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/buf.h"
#include "common/err.h"
#include "relay/mcp_route.c"
#include "relay/metrics.c"

static void
test_route_paths(void **state)
{
	struct mcp_route r;

	assert_int_equal(mcp_route_parse("/mcp/acme/db", &r), 0);
	assert_int_equal(r.kind, MCP_PATH_SERVER);
	assert_string_equal(r.tunnel, "acme");
	assert_string_equal(r.server, "db");

	assert_int_equal(mcp_route_parse("/mcp/acme/db/", &r), 0);
	assert_int_equal(r.kind, MCP_PATH_SERVER);
	assert_string_equal(r.server, "db");

	assert_int_equal(mcp_route_parse("/mcp/acme", &r), 0);
	assert_int_equal(r.kind, MCP_PATH_MERGED);
	assert_string_equal(r.tunnel, "acme");
	assert_string_equal(r.server, "");
	assert_int_equal(mcp_route_parse("/mcp/acme/", &r), 0);
	assert_int_equal(r.kind, MCP_PATH_MERGED);

	assert_int_equal(mcp_route_parse("/mcp/a-b_c.d/Srv-1", &r), 0);
	assert_string_equal(r.tunnel, "a-b_c.d");
	assert_string_equal(r.server, "Srv-1");

	assert_int_equal(mcp_route_parse("/healthz", &r), 0);
	assert_int_equal(r.kind, MCP_PATH_HEALTHZ);
	assert_int_equal(mcp_route_parse("/metrics", &r), 0);
	assert_int_equal(r.kind, MCP_PATH_METRICS);
	assert_int_equal(mcp_route_parse("/metrics/", &r), 0);
	assert_int_equal(r.kind, MCP_PATH_METRICS);
}

static void
test_route_rejects(void **state)
{
	static const char *const bad[] = {
		"", "/", "/mcp", "/mcp/", "/mcp//", "/mcp//db", "/mcp/a//",
		"/mcp/a/b/c", "/mcp/a/b//", "/mcp/./db", "/mcp/../db",
		"/mcp/a/..", "/mcp/a/.", "/mcp/a b/db", "/mcp/a/d%20b",
		"/mcpx/a/b", "/MCP/a/b", "/tunnel", "/healthzz", "/metric",
		"mcp/a/b", "/mcp/a/b?x=1", "/mcp/\xc3\xa9/db",
		"/mcp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/db",
		NULL
	};
	struct mcp_route r;
	size_t i;

	for (i = 0; bad[i] != NULL; i++) {
		memset(&r, 0x55, sizeof(r));
		assert_int_equal(mcp_route_parse(bad[i], &r), MT_ENOTFOUND);
		assert_int_equal(r.kind, MCP_PATH_NONE);
		assert_string_equal(r.tunnel, "");
	}
	assert_int_equal(mcp_route_parse(NULL, &r), MT_ENOTFOUND);
	/* 48 characters is the longest name. */
	assert_int_equal(mcp_route_parse(
	    "/mcp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/db", &r), 0);
	assert_int_equal(strlen(r.tunnel), MCP_NAME_MAX);
}

static void
test_protocol_versions(void **state)
{
	assert_true(mcp_protocol_version_known("2024-11-05"));
	assert_true(mcp_protocol_version_known("2025-03-26"));
	assert_true(mcp_protocol_version_known("2025-06-18"));
	assert_true(mcp_protocol_version_known("2025-11-25"));
	assert_false(mcp_protocol_version_known(""));
	assert_false(mcp_protocol_version_known("2025-06-18 "));
	assert_false(mcp_protocol_version_known("2025-06-1"));
	assert_false(mcp_protocol_version_known("1999-01-01"));
	assert_false(mcp_protocol_version_known(NULL));
}

static void
test_accept(void **state)
{
	const char *sse = "text/event-stream", *json = "application/json";

	/* What the SDKs send. */
	assert_true(mcp_accept_allows("application/json, text/event-stream",
	    sse));
	assert_true(mcp_accept_allows("application/json, text/event-stream",
	    json));
	assert_true(mcp_accept_names("application/json, text/event-stream",
	    sse));
	/* Absent header: anything goes, but nobody asked for SSE. */
	assert_true(mcp_accept_allows(NULL, sse));
	assert_true(mcp_accept_allows("", json));
	assert_false(mcp_accept_names(NULL, sse));
	/* Wildcards. */
	assert_true(mcp_accept_allows("*/*", sse));
	assert_false(mcp_accept_names("*/*", sse));
	assert_true(mcp_accept_allows("text/*", sse));
	assert_true(mcp_accept_names("text/*;q=0.5", sse));
	assert_false(mcp_accept_allows("text/*", json));
	/* Case, blanks and parameters. */
	assert_true(mcp_accept_names("  Text/Event-Stream ; charset=utf-8 ",
	    sse));
	assert_true(mcp_accept_allows("application/json;q=0.9", json));
	/* q=0 refuses. */
	assert_false(mcp_accept_allows("text/event-stream;q=0", sse));
	assert_false(mcp_accept_allows("text/event-stream; q=0.000", sse));
	assert_true(mcp_accept_allows("text/event-stream; q=0.001", sse));
	assert_false(mcp_accept_allows("application/json, */*;q=0", sse));
	/* Near misses. */
	assert_false(mcp_accept_allows("application/json", sse));
	assert_false(mcp_accept_allows("text/event-streams", sse));
	assert_false(mcp_accept_allows("text/plain, text/html", sse));
	assert_false(mcp_accept_allows(",,,", sse));
	assert_false(mcp_accept_allows("text", sse));
	assert_false(mcp_accept_names("text/event", sse));
}

static void
test_content_type(void **state)
{
	assert_true(mcp_content_type_json(NULL));
	assert_true(mcp_content_type_json(""));
	assert_true(mcp_content_type_json("application/json"));
	assert_true(mcp_content_type_json("Application/JSON; charset=utf-8"));
	assert_true(mcp_content_type_json(" application/json ;charset=UTF-8"));
	assert_false(mcp_content_type_json("application/jsonx"));
	assert_false(mcp_content_type_json("text/plain"));
	assert_false(mcp_content_type_json(
	    "application/x-www-form-urlencoded"));
}

static void
test_bearer(void **state)
{
	const char *tok = NULL;
	size_t len = 0;

	assert_int_equal(mcp_bearer_token("Bearer abc.def-1", &tok, &len), 0);
	assert_int_equal(len, 9);
	assert_memory_equal(tok, "abc.def-1", 9);
	assert_int_equal(mcp_bearer_token("bearer   xyz  ", &tok, &len), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(tok, "xyz", 3);
	assert_int_equal(mcp_bearer_token("BEARER\tq", &tok, &len), 0);
	assert_int_equal(len, 1);

	tok = NULL;
	assert_int_equal(mcp_bearer_token(NULL, &tok, &len), MT_EAUTH);
	assert_int_equal(mcp_bearer_token("", &tok, &len), MT_EAUTH);
	assert_int_equal(mcp_bearer_token("Bearer", &tok, &len), MT_EAUTH);
	assert_int_equal(mcp_bearer_token("Bearer   ", &tok, &len), MT_EAUTH);
	assert_int_equal(mcp_bearer_token("Bearerabc", &tok, &len), MT_EAUTH);
	assert_int_equal(mcp_bearer_token("Basic dXNlcjpwdw==", &tok, &len),
	    MT_EAUTH);
	assert_int_equal(mcp_bearer_token("Bearer a b", &tok, &len), MT_EAUTH);
	/* Out-parameters are untouched on failure. */
	assert_null(tok);
}

static void
test_origin(void **state)
{
	char *allowed[] = { "https://app.example.com", "http://localhost:3000/",
	    NULL };
	char *star[] = { "*", NULL };

	assert_true(mcp_origin_allowed(NULL, NULL));
	assert_true(mcp_origin_allowed(NULL, allowed));
	assert_false(mcp_origin_allowed("https://app.example.com", NULL));
	assert_true(mcp_origin_allowed("https://app.example.com", allowed));
	assert_true(mcp_origin_allowed("HTTPS://APP.EXAMPLE.COM", allowed));
	assert_true(mcp_origin_allowed("http://localhost:3000", allowed));
	assert_true(mcp_origin_allowed("https://app.example.com/", allowed));
	assert_false(mcp_origin_allowed("https://app.example.com.evil",
	    allowed));
	assert_false(mcp_origin_allowed("http://app.example.com", allowed));
	assert_false(mcp_origin_allowed("http://localhost:30001", allowed));
	assert_false(mcp_origin_allowed("null", allowed));
	assert_false(mcp_origin_allowed("", allowed));
	assert_true(mcp_origin_allowed("https://anything", star));
}

static json_t *
J(const char *text)
{
	json_t *j = json_loads(text, 0, NULL);

	assert_non_null(j);
	return j;
}

static void
test_id_keys(void **state)
{
	json_t *a = json_integer(1), *b = json_string("1"), *c = json_real(1.5);
	char *ka, *kb;

	ka = mcp_id_key(a);
	kb = mcp_id_key(b);
	assert_non_null(ka);
	assert_non_null(kb);
	/* 1 and "1" are different ids. */
	assert_string_not_equal(ka, kb);
	assert_string_equal(ka, "1");
	assert_string_equal(kb, "\"1\"");
	assert_null(mcp_id_key(c));
	assert_null(mcp_id_key(NULL));
	assert_null(mcp_id_key(json_null()));
	free(ka);
	free(kb);
	json_decref(a);
	json_decref(b);
	json_decref(c);
}

static void
test_progress_keys(void **state)
{
	json_t *req, *note, *other, *bad;
	char *k1, *k2;

	req = J("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\","
	    "\"params\":{\"name\":\"x\",\"_meta\":{\"progressToken\":\"t-1\"}}}");
	note = J("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\","
	    "\"params\":{\"progressToken\":\"t-1\",\"progress\":1}}");
	k1 = mcp_progress_key(req);
	k2 = mcp_progress_key(note);
	assert_non_null(k1);
	assert_non_null(k2);
	assert_string_equal(k1, k2);
	free(k1);
	free(k2);
	json_decref(req);
	json_decref(note);

	/* Integer tokens match integers, not strings. */
	req = J("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
	    "\"params\":{\"_meta\":{\"progressToken\":5}}}");
	note = J("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\","
	    "\"params\":{\"progressToken\":\"5\"}}");
	k1 = mcp_progress_key(req);
	k2 = mcp_progress_key(note);
	assert_string_not_equal(k1, k2);
	free(k1);
	free(k2);
	json_decref(req);
	json_decref(note);

	/* No token, other methods, malformed params. */
	other = J("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\","
	    "\"params\":{\"progressToken\":\"t\"}}");
	assert_null(mcp_progress_key(other));
	json_decref(other);
	bad = J("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
	    "\"params\":{\"_meta\":{\"progressToken\":{\"x\":1}}}}");
	assert_null(mcp_progress_key(bad));
	json_decref(bad);
	bad = J("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
	    "\"params\":[1]}");
	assert_null(mcp_progress_key(bad));
	json_decref(bad);
	bad = J("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}");
	assert_null(mcp_progress_key(bad));
	assert_null(mcp_method(bad));
	json_decref(bad);
	/* A notification other than progress with _meta: no key. */
	bad = J("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/x\","
	    "\"params\":{\"_meta\":{\"progressToken\":\"t\"}}}");
	assert_null(mcp_progress_key(bad));
	json_decref(bad);
}

static void
test_newline(void **state)
{
	assert_false(mcp_has_newline("{\"a\":\"\\n\"}", 10));
	assert_true(mcp_has_newline("{\n}", 3));
	assert_true(mcp_has_newline("{\r}", 3));
	assert_false(mcp_has_newline("", 0));
}

static void
test_metrics(void **state)
{
	struct buf b;
	char *text;
	size_t len;

	metrics_reset();
	metrics_request(MO_OK);
	metrics_request(MO_OK);
	metrics_request(MO_TIMEOUT);
	metrics_request(MO_COUNT);	/* ignored */
	metrics_bytes(MD_FROM_AGENTS, 100);
	metrics_bytes(MD_TO_AGENTS, 2500);
	metrics_observe_ms(3);		/* le 0.005 */
	metrics_observe_ms(200);	/* le 0.250 */
	metrics_observe_ms(999999);	/* +Inf only */

	buf_init(&b, 0);
	assert_int_equal(metrics_render(&b, 2, 5, 7, 11, 13, 17, 19, 23), 0);
	text = (char *)buf_take(&b, &len);
	assert_non_null(text);
	assert_non_null(strstr(text, "\nmcptun_tunnels_connected 2\n"));
	assert_non_null(strstr(text, "\nmcptun_sessions 5\n"));
	assert_non_null(strstr(text,
	    "\nmcptun_tunnel_port_early_closes_total 23\n"));
	assert_non_null(strstr(text,
	    "\nmcptun_requests_total{outcome=\"ok\"} 2\n"));
	assert_non_null(strstr(text,
	    "\nmcptun_requests_total{outcome=\"timeout\"} 1\n"));
	assert_non_null(strstr(text,
	    "\nmcptun_requests_total{outcome=\"cancelled\"} 0\n"));
	assert_non_null(strstr(text,
	    "\nmcptun_bytes_total{direction=\"from_agents\"} 100\n"));
	assert_non_null(strstr(text,
	    "\nmcptun_bytes_total{direction=\"to_agents\"} 2500\n"));
	assert_non_null(strstr(text,
	    "\nmcptun_bytes_total{direction=\"to_tunnels\"} 11\n"));
	assert_non_null(strstr(text, "\n# TYPE mcptun_request_duration_seconds "
	    "histogram\n"));
	assert_non_null(strstr(text,
	    "\nmcptun_request_duration_seconds_bucket{le=\"0.005\"} 1\n"));
	assert_non_null(strstr(text,
	    "\nmcptun_request_duration_seconds_bucket{le=\"0.100\"} 1\n"));
	assert_non_null(strstr(text,
	    "\nmcptun_request_duration_seconds_bucket{le=\"0.250\"} 2\n"));
	assert_non_null(strstr(text,
	    "\nmcptun_request_duration_seconds_bucket{le=\"300.000\"} 2\n"));
	assert_non_null(strstr(text,
	    "\nmcptun_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
	assert_non_null(strstr(text,
	    "\nmcptun_request_duration_seconds_count 3\n"));
	assert_non_null(strstr(text,
	    "\nmcptun_request_duration_seconds_sum 1000.202\n"));
	assert_string_equal(metrics_outcome_name(MO_CANCELLED), "cancelled");
	assert_string_equal(metrics_outcome_name(MO_COUNT), "unknown");
	free(text);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_route_paths),
		cmocka_unit_test(test_route_rejects),
		cmocka_unit_test(test_protocol_versions),
		cmocka_unit_test(test_accept),
		cmocka_unit_test(test_content_type),
		cmocka_unit_test(test_bearer),
		cmocka_unit_test(test_origin),
		cmocka_unit_test(test_id_keys),
		cmocka_unit_test(test_progress_keys),
		cmocka_unit_test(test_newline),
		cmocka_unit_test(test_metrics),
	};

	return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
