/*
 * Unit tests for the configuration loader (common/conf.c) and the two
 * daemon schemas (client/client_conf.c, relay/relay_conf.c): every example
 * file loads, every class of mistake gives its exact "file:line:col:
 * message" line, ${ENV} and KEY_file work, secrets stay out of messages,
 * and snapshots are reference-counted.  Files are written with mkstemp.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/client_conf.h"
#include "common/conf.h"
#include "common/err.h"
#include "common/token.h"
#include "relay/relay_conf.h"

#define HASH_A	"c695b42d79a2420ca858fe997c67cab0749a72f3875834c654113b9cb2219478"
#define HASH_B	"0ea9f0dd8fde893877f1233dce8c560019fcf01424a0a1eba2ee7406933150ce"

static char errbuf[4096];

/* Writes text to a new temp file; returns its malloc'd path. */
static char *
write_temp(const char *text, const char *suffix)
{
	char *path;
	int fd;

	if (asprintf(&path, "%s/mcptun-test-XXXXXX%s",
	    getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", suffix) < 0)
		fail();
	fd = mkstemps(path, (int)strlen(suffix));
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static int
load_client(const char *text, struct client_conf **out)
{
	return client_conf_load_mem("x.yaml", text, strlen(text), out, errbuf,
	    sizeof(errbuf));
}

static int
load_relay(const char *text, struct relay_conf **out)
{
	return relay_conf_load_mem("x.yaml", text, strlen(text), out, errbuf,
	    sizeof(errbuf));
}

/* Loading text as a client config fails with exactly want. */
static void
client_fails(const char *text, const char *want)
{
	struct client_conf *c = NULL;

	assert_int_equal(load_client(text, &c), MT_ECONFIG);
	assert_null(c);
	assert_string_equal(errbuf, want);
}

/* Loading works but client_conf_check fails with exactly want. */
static void
client_check_fails(const char *text, const char *want)
{
	struct client_conf *c = NULL;

	assert_int_equal(load_client(text, &c), 0);
	assert_int_equal(client_conf_check(c, errbuf, sizeof(errbuf)),
	    MT_ECONFIG);
	assert_string_equal(errbuf, want);
	client_conf_unref(c);
}

static void
relay_fails(const char *text, const char *want)
{
	struct relay_conf *c = NULL;

	assert_int_equal(load_relay(text, &c), MT_ECONFIG);
	assert_null(c);
	assert_string_equal(errbuf, want);
}

static char *
example(const char *name)
{
	const char *top = getenv("MCPTUN_TOP");
	char *path;

	if (asprintf(&path, "%s/examples/%s", top ? top : ".", name) < 0)
		fail();
	return path;
}

static void
set_example_env(void)
{
	setenv("MCPTUN_TOKEN", "tunnel-token", 1);
	setenv("WIKI_TOKEN", "wiki-token", 1);
	setenv("PGPASSWORD", "pg-pass", 1);
}

/* --- examples ------------------------------------------------------------ */

static void
test_example_jumphost(void **state)
{
	struct client_conf *c = NULL;
	const struct server_conf *s;
	char *path = example("client-jumphost.yaml");

	set_example_env();
	assert_int_equal(client_conf_load(path, &c, errbuf, sizeof(errbuf)),
	    0);
	assert_string_equal(errbuf, "");
	assert_int_equal(client_conf_check(c, errbuf, sizeof(errbuf)), 0);
	assert_string_equal(c->relay.token, "tunnel-token");
	assert_int_equal(c->nservers, 3);
	/* Sorted by name. */
	assert_string_equal(c->servers[0].name, "db");
	assert_string_equal(c->servers[1].name, "files");
	assert_string_equal(c->servers[2].name, "wiki");

	s = client_conf_server(c, "files");
	assert_non_null(s);
	assert_int_equal(s->type, SERVER_STDIO);
	assert_string_equal(s->command, "npx");
	assert_int_equal(conf_strlist_len(s->args), 3);
	assert_string_equal(s->args[2], "/srv/shared");
	assert_true(s->sandbox.enabled);
	assert_int_equal(server_conf_tool_allowed(s, "read_file"), 1);
	assert_int_equal(server_conf_tool_allowed(s, "write_file"), 0);
	assert_int_equal(s->offload.threshold_tokens, 100000);
	assert_string_equal(s->offload.dir, "/var/spool/mcptun");
	assert_int_equal(s->timeout_ms, 120000);

	s = client_conf_server(c, "wiki");
	assert_non_null(s);
	assert_int_equal(s->type, SERVER_HTTP);
	assert_string_equal(conf_map_get(&s->headers, "Authorization"),
	    "Bearer wiki-token");
	assert_int_equal(s->timeout_ms, 60000);
	assert_int_equal(server_conf_tool_allowed(s, "search"), 1);
	assert_int_equal(server_conf_tool_allowed(s, "delete_page"), 0);

	s = client_conf_server(c, "db");
	assert_non_null(s);
	assert_int_equal(s->type, SERVER_POSTGRES);
	assert_string_equal(s->password, "pg-pass");
	assert_int_equal(s->read_write, 0);
	assert_int_equal(s->statement_timeout_ms, 5000);
	assert_int_equal(s->max_bytes, 1024 * 1024);
	assert_int_equal(s->nsql_tools, 1);
	assert_int_equal(s->sql_tools[0].nparams, 2);
	assert_int_equal(s->sql_tools[0].params[0].type, PG_PARAM_INTEGER);
	assert_int_equal(s->sql_tools[0].params[0].required, 1);
	assert_int_equal(s->sql_tools[0].params[1].required, 0);
	assert_non_null(server_conf_sql_tool(s, "orders_by_customer"));
	assert_int_equal(s->offload.threshold_tokens, 20000);
	assert_string_equal(s->offload.dir, "/var/spool/mcptun");
	assert_int_equal(server_conf_tool_allowed(s, "explain"), 0);

	assert_null(client_conf_server(c, "nope"));
	assert_int_equal(c->limits.reconnect_min_ms, 500);
	assert_int_equal(c->offload.max_total_bytes, 1024ULL * 1024 * 1024);
	client_conf_unref(c);
	free(path);
}

static void
test_example_sidecar(void **state)
{
	struct client_conf *c = NULL;
	char *path = example("client-sidecar.yaml");

	set_example_env();
	assert_int_equal(client_conf_load(path, &c, errbuf, sizeof(errbuf)),
	    0);
	assert_int_equal(client_conf_check(c, errbuf, sizeof(errbuf)), 0);
	assert_int_equal(c->nservers, 1);
	assert_int_equal(c->servers[0].type, SERVER_POSTGRES);
	assert_non_null(strstr(c->servers[0].sql_tools[0].sql, "$1"));
	client_conf_unref(c);
	free(path);
}

static void
test_example_mcp_json(void **state)
{
	struct client_conf *c = NULL;
	char *path = example("claude.mcp.json"), want[512];
	const struct server_conf *s;

	set_example_env();
	assert_int_equal(client_conf_load(path, &c, errbuf, sizeof(errbuf)),
	    0);
	assert_int_equal(c->nservers, 3);
	s = client_conf_server(c, "files");
	assert_non_null(s);
	assert_int_equal(s->type, SERVER_STDIO);
	assert_string_equal(conf_map_get(&s->env, "NODE_OPTIONS"),
	    "--max-old-space-size=256");
	s = client_conf_server(c, "wiki");
	assert_int_equal(s->type, SERVER_HTTP);

	/* No relay section: the check wants it from the command line. */
	snprintf(want, sizeof(want), "%s: missing required key \"relay\" "
	    "(its url, tunnel and token may also come from the command "
	    "line)", path);
	assert_int_equal(client_conf_check(c, errbuf, sizeof(errbuf)),
	    MT_ECONFIG);
	assert_string_equal(errbuf, want);
	assert_int_equal(client_conf_set(c, "relay.url",
	    "wss://relay.example:8443/tunnel", errbuf, sizeof(errbuf)), 0);
	assert_int_equal(client_conf_set(c, "relay.tunnel", "acme", errbuf,
	    sizeof(errbuf)), 0);
	assert_int_equal(client_conf_set(c, "relay.token", "t0k", errbuf,
	    sizeof(errbuf)), 0);
	assert_int_equal(client_conf_check(c, errbuf, sizeof(errbuf)), 0);
	client_conf_unref(c);
	free(path);
}

static void
test_example_relay(void **state)
{
	struct relay_conf *c = NULL;
	const struct relay_agent_conf *a;
	char *path = example("relay.yaml");

	assert_int_equal(relay_conf_load(path, &c, errbuf, sizeof(errbuf)),
	    0);
	assert_string_equal(errbuf, "");
	assert_int_equal(relay_conf_check(c, errbuf, sizeof(errbuf)), 0);
	assert_string_equal(c->listen_host, "0.0.0.0");
	assert_int_equal(c->listen_port, 8443);
	assert_int_equal(c->ntunnels, 2);
	assert_int_equal(c->nagents, 2);
	assert_int_equal(c->limits.session_idle_timeout_ms, 30 * 60 * 1000);
	assert_int_equal(c->limits.max_connections, 4096);
	assert_int_equal(conf_strlist_len(c->http.allowed_origins), 1);

	assert_non_null(relay_conf_tunnel(c, "acme"));
	assert_null(relay_conf_tunnel(c, "nope"));
	assert_int_equal(relay_tunnel_token_ok(relay_conf_tunnel(c, "acme"),
	    "acme-example-token"), 1);
	assert_int_equal(relay_tunnel_token_ok(relay_conf_tunnel(c, "acme"),
	    "lab-example-token"), 0);

	a = relay_conf_agent_by_token(c, "claude-example-token");
	assert_non_null(a);
	assert_string_equal(a->name, "claude");
	assert_null(relay_conf_agent_by_token(c, "wrong"));
	assert_null(relay_conf_agent_by_token(c, ""));
	assert_int_equal(relay_agent_may_use(a, "acme", "db"), 1);
	assert_int_equal(relay_agent_may_use(a, "lab", "files"), 1);
	assert_int_equal(relay_agent_may_use(a, "lab", "db"), 0);
	assert_int_equal(relay_agent_may_use(a, "lab", NULL), 1);
	a = relay_conf_agent_by_token(c, "reporting-example-token");
	assert_non_null(a);
	assert_int_equal(relay_agent_may_use(a, "acme", "db"), 1);
	assert_int_equal(relay_agent_may_use(a, "acme", "files"), 0);
	assert_int_equal(relay_agent_may_use(a, "lab", NULL), 0);
	relay_conf_unref(c);
	free(path);
}

/* --- error classes --------------------------------------------------------- */

static void
test_unknown_key(void **state)
{
	client_fails(
	    "servers:\n"
	    "  files:\n"
	    "    comand: npx\n",
	    "x.yaml:3:5: unknown key \"comand\" under servers.files "
	    "(did you mean \"command\"?)");
	client_fails("relya:\n  url: x\n",
	    "x.yaml:1:1: unknown key \"relya\" (did you mean \"relay\"?)");
	client_fails("servers:\n  a:\n    command: x\n    zzzzzz: 1\n",
	    "x.yaml:4:5: unknown key \"zzzzzz\" under servers.a");
	client_fails("relay:\n  tokn_file: /x\n",
	    "x.yaml:2:3: unknown key \"tokn_file\" under relay "
	    "(did you mean \"token_file\"?)");
}

static void
test_all_errors_collected(void **state)
{
	client_fails("relya: 1\nlimits:\n  windw: 4MiB\n",
	    "x.yaml:1:1: unknown key \"relya\" (did you mean \"relay\"?)\n"
	    "x.yaml:3:3: unknown key \"windw\" under limits "
	    "(did you mean \"window\"?)");
}

static void
test_missing_key(void **state)
{
	relay_fails("tls: {cert: a, key: b}\ntunnels:\n  acme: {}\n",
	    "x.yaml:3:3: missing required key \"token_sha256\" under "
	    "tunnels.acme");
	relay_fails("tunnels:\n  acme:\n",
	    "x.yaml:2:3: missing required key \"token_sha256\" under "
	    "tunnels.acme");
	client_check_fails("log_level: info\nrelay:\n  tunnel: acme\n",
	    "x.yaml:2:1: missing required key \"url\" under relay");
	client_fails("servers:\n  db:\n    type: postgres\n",
	    "x.yaml:2:3: missing required key \"dsn\" under servers.db "
	    "(type postgres)");
	client_fails("servers:\n  q: {}\n",
	    "x.yaml:2:3: server \"q\" needs \"command\" (stdio), \"url\" "
	    "(http) or \"dsn\" (postgres)");
}

static void
test_bad_type(void **state)
{
	client_fails("limits:\n  window: [1]\n",
	    "x.yaml:2:11: \"window\" must be a size like 64KiB, 4MiB or 10MB");
	client_fails("relay:\n  insecure: maybe\n",
	    "x.yaml:2:13: \"insecure\" must be true or false");
	client_fails("servers:\n  a:\n    command: x\n    args: x\n",
	    "x.yaml:4:11: \"args\" must be a list of strings");
	client_fails("servers:\n  a:\n    command: x\n    max_sessions: "
	    "lots\n",
	    "x.yaml:4:19: \"max_sessions\" must be an integer");
	client_fails("servers:\n  a:\n    command: x\n    max_sessions: 0\n",
	    "x.yaml:4:19: \"max_sessions\" must be between 1 and 100000");
	client_fails("servers: [a, b]\n",
	    "x.yaml:1:10: \"servers\" must be a mapping of names");
	client_fails("log_level: loud\n",
	    "x.yaml:1:12: \"log_level\" must be one of: error, warn, "
	    "warning, info, debug");
	client_fails("- a\n- b\n",
	    "x.yaml:1:1: the top level must be a mapping of keys");
	client_fails("", "x.yaml: the file is empty");
	client_fails("servers:\n  a:\n    url: https://x/\n    command: y\n",
	    "x.yaml:3:5: \"url\" does not apply to a stdio server");
}

static void
test_bad_size_duration(void **state)
{
	client_fails("limits:\n  chunk: 64XB\n",
	    "x.yaml:2:10: \"chunk\" must be a size like 64KiB, 4MiB or 10MB");
	client_fails("limits:\n  ping_interval: 5 parsecs\n",
	    "x.yaml:2:18: \"ping_interval\" must be a duration like 250ms, "
	    "30s, 5m or 2h");
	client_fails("limits:\n  chunk: 1MiB\n  window: 64KiB\n",
	    "x.yaml:2:10: \"chunk\" must not be larger than \"window\"");
}

static void
test_env_unset(void **state)
{
	unsetenv("MCPTUN_NOPE");
	client_fails("relay:\n  url: wss://r/tunnel\n  token: ${MCPTUN_NOPE}\n",
	    "x.yaml:3:10: environment variable \"MCPTUN_NOPE\" is not set "
	    "(used by \"token\")");
	client_fails("relay:\n  token: ${oops\n",
	    "x.yaml:2:10: unterminated \"${\" in \"token\" (write \"$${\" "
	    "for a literal \"${\")");
}

static void
test_env_expansion(void **state)
{
	struct client_conf *c = NULL;

	setenv("MCPTUN_T_HOST", "relay.example", 1);
	setenv("MCPTUN_T_SECRET", "s3cr3t", 1);
	assert_int_equal(load_client(
	    "relay:\n"
	    "  url: wss://${MCPTUN_T_HOST}:8443/tunnel\n"
	    "  tunnel: acme\n"
	    "  token: \"${MCPTUN_T_SECRET}\"\n"
	    "servers:\n"
	    "  a:\n"
	    "    command: echo\n"
	    "    args: [\"$${HOME}\", \"${MCPTUN_T_HOST}\", \"$$x\"]\n"
	    "    env: {PASS: \"p-${MCPTUN_T_SECRET}\", EMPTY: }\n", &c), 0);
	assert_int_equal(client_conf_check(c, errbuf, sizeof(errbuf)), 0);
	assert_string_equal(c->relay.url, "wss://relay.example:8443/tunnel");
	assert_string_equal(c->relay.token, "s3cr3t");
	assert_string_equal(c->servers[0].args[0], "${HOME}");
	assert_string_equal(c->servers[0].args[1], "relay.example");
	assert_string_equal(c->servers[0].args[2], "$$x");
	assert_string_equal(conf_map_get(&c->servers[0].env, "PASS"),
	    "p-s3cr3t");
	assert_string_equal(conf_map_get(&c->servers[0].env, "EMPTY"), "");
	client_conf_unref(c);
}

static void
test_secret_file(void **state)
{
	struct client_conf *c = NULL;
	char *sec = write_temp("from-file\n", ""), *text, want[512];

	if (asprintf(&text, "relay:\n  url: wss://r/t\n  tunnel: a\n"
	    "  token_file: %s\n", sec) < 0)
		fail();
	assert_int_equal(load_client(text, &c), 0);
	assert_string_equal(c->relay.token, "from-file");
	client_conf_unref(c);
	free(text);

	/* Both forms at once. */
	if (asprintf(&text, "relay:\n  token: x\n  token_file: %s\n",
	    sec) < 0)
		fail();
	client_fails(text, "x.yaml:3:3: give either \"token\" or "
	    "\"token_file\", not both");
	free(text);

	/* Unreadable. */
	client_fails("relay:\n  token_file: /nonexistent/mcptun/t\n",
	    "x.yaml:2:15: cannot read \"token_file\" /nonexistent/mcptun/t: "
	    "No such file or directory");

	/* Relay hashes may come from files too. */
	unlink(sec);
	free(sec);
	sec = write_temp(HASH_A "\n", "");
	if (asprintf(&text, "insecure_plaintext: true\ntunnels:\n"
	    "  acme: {token_sha256_file: %s}\n", sec) < 0)
		fail();
	{
		struct relay_conf *r = NULL;

		assert_int_equal(load_relay(text, &r), 0);
		assert_int_equal(relay_conf_check(r, errbuf, sizeof(errbuf)),
		    0);
		assert_int_equal(relay_tunnel_token_ok(r->tunnels,
		    "acme-example-token"), 1);
		relay_conf_unref(r);
	}
	free(text);
	unlink(sec);
	free(sec);
	(void)want;
}

static void
test_secret_not_printed(void **state)
{
	/* A bad secret value must not appear in the message. */
	relay_fails("tunnels:\n  acme: {token_sha256: hunter2hunter2}\n",
	    "x.yaml:2:24: \"token_sha256\" must be 64 hex digits (the SHA-256 "
	    "of the token)");
	assert_null(strstr(errbuf, "hunter2"));
}

static void
test_duplicate_key(void **state)
{
	client_fails("servers:\n  a:\n    command: x\n    command: y\n",
	    "x.yaml:4:5: duplicate key \"command\" under servers.a (first at "
	    "line 3)");
	client_fails("servers:\n  a: {command: x}\n  a: {command: y}\n",
	    "x.yaml:3:3: duplicate key \"a\" under servers (first at line 2)");
	client_fails("servers: {}\nmcpServers: {}\n",
	    "x.yaml:2:1: \"servers\" and \"mcpServers\" are the same key; give "
	    "only one");
}

static void
test_yaml_syntax(void **state)
{
	client_fails("servers:\n  a: [1, 2\n",
	    "x.yaml:3:1: YAML syntax error: did not find expected ',' or ']' "
	    "(while parsing a flow sequence at line 2)");
	client_fails("a: b: c\n",
	    "x.yaml:1:5: YAML syntax error: mapping values are not allowed in "
	    "this context");
	client_fails("a: &x 1\nb: *x\n",
	    "x.yaml:2:4: YAML aliases (*name) are not supported; write the "
	    "value out");
	client_fails("a: 1\n---\nb: 2\n",
	    "x.yaml:2:1: only one YAML document is allowed");
	client_fails("{\"mcpServers\": {\"a\": {\"command\" \"x\"}}}",
	    "x.yaml:1:33: YAML syntax error: did not find expected ',' or '}' "
	    "(while parsing a flow mapping at line 1)");
}

static void
test_bad_server_name(void **state)
{
	client_fails("servers:\n  \"a b\": {command: x}\n",
	    "x.yaml:2:3: bad name \"a b\" under servers (use 1 to 48 letters, "
	    "digits, \"_\" or \"-\")");
	client_fails("mcpServers:\n  a.b: {command: x}\n",
	    "x.yaml:2:3: bad name \"a.b\" under mcpServers (use 1 to 48 "
	    "letters, digits, \"_\" or \"-\")");
}

static void
test_sse_refused(void **state)
{
	client_fails("servers:\n  old:\n    type: sse\n    url: http://x/sse\n",
	    "x.yaml:3:11: server \"old\": type \"sse\" (the deprecated "
	    "HTTP+SSE transport) is not supported; use type: http for "
	    "Streamable HTTP");
	client_fails("servers:\n  h:\n    type: http\n    url: ftp://x/\n",
	    "x.yaml:4:10: \"url\" must start with http:// or https://");
}

static void
test_placeholders(void **state)
{
	client_fails(
	    "servers:\n"
	    "  db:\n"
	    "    dsn: dbname=x\n"
	    "    sql_tools:\n"
	    "      - name: t\n"
	    "        sql: SELECT $1, $3\n"
	    "        parameters:\n"
	    "          - {name: a, type: integer}\n"
	    "          - {name: b, type: string}\n",
	    "x.yaml:6:14: tool \"t\": the SQL uses $3 but 2 parameters are "
	    "declared");
	client_fails(
	    "servers:\n"
	    "  db:\n"
	    "    dsn: dbname=x\n"
	    "    sql_tools:\n"
	    "      - name: t\n"
	    "        sql: \"SELECT '$2', $1 -- $2\"\n"
	    "        parameters:\n"
	    "          - {name: a, type: integer}\n"
	    "          - {name: b, type: string}\n",
	    "x.yaml:6:14: tool \"t\": parameter \"b\" ($2) is not used in the "
	    "SQL");
	client_fails(
	    "servers:\n"
	    "  db:\n"
	    "    dsn: dbname=x\n"
	    "    sql_tools:\n"
	    "      - name: t\n"
	    "        sql: SELECT $1\n"
	    "        parameters:\n"
	    "          - {name: a, type: date}\n",
	    "x.yaml:8:29: \"type\" must be one of: string, integer, number, "
	    "boolean");
	client_fails(
	    "servers:\n"
	    "  db:\n"
	    "    dsn: dbname=x\n"
	    "    sql_tools:\n"
	    "      - {name: query, sql: SELECT 1}\n",
	    "x.yaml:5:9: tool \"query\" has the name of a built-in tool; "
	    "rename it or set builtin_tools: false");
	client_fails(
	    "servers:\n"
	    "  db:\n"
	    "    dsn: dbname=x\n"
	    "    sql_tools:\n"
	    "      - {sql: SELECT 1}\n",
	    "x.yaml:5:9: missing required key \"name\" under "
	    "servers.db.sql_tools[0]");
}

static void
test_placeholders_skipped(void **state)
{
	struct client_conf *c = NULL;

	/* $N inside strings, identifiers, comments and $$ quotes is text. */
	assert_int_equal(load_client(
	    "servers:\n"
	    "  db:\n"
	    "    dsn: dbname=x\n"
	    "    sql_tools:\n"
	    "      - name: t\n"
	    "        sql: |\n"
	    "          SELECT '$7', \"$8\", $$ $9 $$, $tag$ $9 $tag$, $1 -- $4\n"
	    "          /* $5 */ FROM x WHERE y = $2::int\n"
	    "        parameters:\n"
	    "          - {name: a, type: string}\n"
	    "          - {name: b, type: integer}\n", &c), 0);
	assert_int_equal(c->servers[0].sql_tools[0].nparams, 2);
	client_conf_unref(c);
}

static void
test_ws_needs_insecure(void **state)
{
	struct client_conf *c = NULL;

	client_check_fails("relay:\n  url: ws://r:80/tunnel\n  tunnel: a\n"
	    "  token: t\n",
	    "x.yaml:2:8: \"url\" uses ws:// without TLS; set insecure: true "
	    "to allow it");
	client_check_fails("relay:\n  url: https://r/tunnel\n  tunnel: a\n"
	    "  token: t\n",
	    "x.yaml:2:8: \"url\" must be wss://host[:port]/path (or ws:// "
	    "with insecure: true)");
	client_check_fails("relay:\n  url: wss://r/t\n  tunnel: a\n"
	    "  token: t\n  pin_sha256: nope\n",
	    "x.yaml:5:15: \"pin_sha256\" must be a SHA-256 in base64 (44 "
	    "characters) or hex (64 digits)");
	assert_int_equal(load_client("relay:\n  url: ws://r:80/tunnel\n"
	    "  tunnel: a\n  token: t\n  insecure: true\n"
	    "  pin_sha256: 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
	    &c), 0);
	assert_int_equal(client_conf_check(c, errbuf, sizeof(errbuf)), 0);
	assert_int_equal(c->relay.has_pin, 1);
	assert_int_equal(c->relay.pin[0], 0xe3);
	assert_int_equal(c->relay.pin[31], 0x55);
	/* An override is checked without a position. */
	assert_int_equal(client_conf_set(c, "relay.insecure", "false", errbuf,
	    sizeof(errbuf)), 0);
	assert_int_equal(client_conf_set(c, "relay.url", "ws://q/t", errbuf,
	    sizeof(errbuf)), 0);
	assert_int_equal(client_conf_check(c, errbuf, sizeof(errbuf)),
	    MT_ECONFIG);
	assert_string_equal(errbuf, "x.yaml: \"url\" uses ws:// without TLS; "
	    "set insecure: true to allow it");
	assert_int_equal(client_conf_set(c, "limits.window", "lots", errbuf,
	    sizeof(errbuf)), MT_ECONFIG);
	assert_string_equal(errbuf, "limits.window: \"window\" must be a size "
	    "like 64KiB, 4MiB or 10MB");
	assert_int_equal(client_conf_set(c, "limits.nope", "1", errbuf,
	    sizeof(errbuf)), MT_ENOTFOUND);
	client_conf_unref(c);
}

#define LISTEN_FORM "must be ADDR:PORT or [v6addr]:PORT with ADDR an IP " \
    "address, localhost or a network interface (host names are not " \
    "looked up)"

static void
test_relay_errors(void **state)
{
	struct relay_conf *c = NULL;

	relay_fails("tls: {cert: a, key: b}\nlisten: nowhere\n",
	    "x.yaml:2:9: \"listen\" " LISTEN_FORM);
	relay_fails("listen: \"[::1]:99999\"\n",
	    "x.yaml:1:9: \"listen\" " LISTEN_FORM);
	/* lws would take a host name for an interface and bind nothing. */
	relay_fails("listen: relay.example.com:8443\n",
	    "x.yaml:1:9: \"listen\" " LISTEN_FORM);
	assert_int_equal(load_relay("listen: localhost:8443\n", &c), 0);
	assert_string_equal(c->listen_host, "127.0.0.1");
	relay_conf_unref(c);
	c = NULL;
	assert_int_equal(load_relay("listen: lo:8443\n", &c), 0);
	assert_string_equal(c->listen_host, "lo");
	relay_conf_unref(c);
	c = NULL;
	relay_fails("tunnels:\n  acme: {token_sha256: " HASH_A "}\n"
	    "agents:\n  c:\n    token_sha256: " HASH_B "\n"
	    "    allow: [\"lab/*\"]\n",
	    "x.yaml:6:12: agent \"c\": allow pattern \"lab/*\" names no tunnel "
	    "declared under tunnels");
	relay_fails("agents:\n  c:\n    token_sha256: " HASH_B "\n"
	    "    allow: [\"acme\"]\n",
	    "x.yaml:4:12: allow pattern \"acme\" must be tunnel/server or "
	    "tunnel/*");
	relay_fails("tunnels:\n  acme: {token_sha256: " HASH_A "}\n"
	    "agents:\n  c: {token_sha256: " HASH_A "}\n",
	    "x.yaml:4:3: agent \"c\" has the same token as tunnel \"acme\"; "
	    "give each its own");

	relay_fails("limits:\n  max_connections: 31\n",
	    "x.yaml:2:20: \"max_connections\" must be between 32 and 1048576");
	relay_fails("limits:\n  max_connections: 2000000\n",
	    "x.yaml:2:20: \"max_connections\" must be between 32 and 1048576");
	assert_int_equal(load_relay("limits:\n  max_connections: 100\n", &c),
	    0);
	assert_int_equal(c->limits.max_connections, 100);
	relay_conf_unref(c);
	c = NULL;

	assert_int_equal(load_relay("listen: \"[::1]:8443\"\n", &c), 0);
	assert_string_equal(c->listen_host, "::1");
	/* The default caps lws' poll tables (see relay/main.c fd_limit). */
	assert_int_equal(c->limits.max_connections, 4096);
	assert_int_equal(relay_conf_check(c, errbuf, sizeof(errbuf)),
	    MT_ECONFIG);
	assert_string_equal(errbuf, "x.yaml: missing required key \"cert\" "
	    "under tls (or set insecure_plaintext: true behind a TLS proxy)");
	assert_int_equal(relay_conf_set(c, "insecure_plaintext", "true",
	    errbuf, sizeof(errbuf)), 0);
	assert_int_equal(relay_conf_set(c, "listen", "127.0.0.1:9000",
	    errbuf, sizeof(errbuf)), 0);
	assert_int_equal(relay_conf_check(c, errbuf, sizeof(errbuf)), 0);
	assert_string_equal(c->listen_host, "127.0.0.1");
	assert_int_equal(c->listen_port, 9000);
	relay_conf_unref(c);
}

/* The separate tunnel port and client certificates (mTLS). */
static void
test_relay_mtls(void **state)
{
	struct relay_conf *c = NULL;
	const struct relay_tunnel_conf *t;

	relay_fails("tunnel_listne: 127.0.0.1:9444\n",
	    "x.yaml:1:1: unknown key \"tunnel_listne\" (did you mean "
	    "\"tunnel_listen\"?)");
	relay_fails("tunnels:\n  acme:\n    token_sha256: " HASH_A "\n"
	    "    client_cert_c: x\n",
	    "x.yaml:4:5: unknown key \"client_cert_c\" under tunnels.acme "
	    "(did you mean \"client_cert_cn\"?)");
	relay_fails("listen: 127.0.0.1:9443\ntunnel_listen: nowhere\n",
	    "x.yaml:2:16: \"tunnel_listen\" " LISTEN_FORM);
	relay_fails("listen: 127.0.0.1:9443\ntunnel_listen: 127.0.0.1:9443\n",
	    "x.yaml:2:16: \"tunnel_listen\" must be another port than "
	    "\"listen\" (127.0.0.1:9443)");
	/* A wildcard address takes the port on every address. */
	relay_fails("listen: 127.0.0.1:9443\ntunnel_listen: \"[::]:9443\"\n",
	    "x.yaml:2:16: \"tunnel_listen\" must be another port than "
	    "\"listen\" (127.0.0.1:9443)");
	relay_fails("tls:\n  cert: a\n  key: b\n  client_ca: ca.pem\n",
	    "x.yaml:4:14: \"client_ca\" needs \"tunnel_listen\": tunnel "
	    "links with client certificates get a port of their own, so "
	    "agents on \"listen\" need none");
	relay_fails("tunnel_listen: 127.0.0.1:9444\n"
	    "tunnels:\n  acme:\n    token_sha256: " HASH_A "\n"
	    "    client_cert_cn: acme-client\n",
	    "x.yaml:5:21: tunnel \"acme\": \"client_cert_cn\" needs "
	    "tls.client_ca (client certificates)");
	relay_fails("tls: {cert: a, key: b, client_ca: c}\n"
	    "tunnel_listen: 127.0.0.1:9444\n"
	    "tunnels:\n  acme:\n    token_sha256: " HASH_A "\n"
	    "    client_cert_cn: \"\"\n",
	    "x.yaml:6:21: \"client_cert_cn\" must be 1 to 64 characters");

	/* Another address on the same port is fine. */
	assert_int_equal(load_relay("listen: 127.0.0.1:9443\n"
	    "tunnel_listen: 127.0.0.2:9443\ninsecure_plaintext: true\n", &c),
	    0);
	assert_int_equal(relay_conf_check(c, errbuf, sizeof(errbuf)), 0);
	relay_conf_unref(c);
	c = NULL;

	assert_int_equal(load_relay("listen: 127.0.0.1:9443\n"
	    "tunnel_listen: \"[::1]:9444\"\n"
	    "tls: {cert: a, key: b, client_ca: c}\n"
	    "tunnels:\n  acme:\n    token_sha256: " HASH_A "\n"
	    "    client_cert_cn: acme-client\n"
	    "  lab: {token_sha256: " HASH_B "}\n", &c), 0);
	assert_int_equal(relay_conf_check(c, errbuf, sizeof(errbuf)), 0);
	assert_string_equal(c->tunnel_listen_host, "::1");
	assert_int_equal(c->tunnel_listen_port, 9444);
	assert_string_equal(c->tls.client_ca, "c");
	t = relay_conf_tunnel(c, "acme");
	assert_non_null(t);
	assert_int_equal(relay_tunnel_cert_ok(t, "acme-client"), 1);
	assert_int_equal(relay_tunnel_cert_ok(t, "acme-client2"), 0);
	assert_int_equal(relay_tunnel_cert_ok(t, "acme"), 0);
	assert_int_equal(relay_tunnel_cert_ok(t, ""), 0);
	assert_int_equal(relay_tunnel_cert_ok(t, NULL), 0);
	t = relay_conf_tunnel(c, "lab");
	assert_int_equal(relay_tunnel_cert_ok(t, NULL), 1);
	assert_int_equal(relay_tunnel_cert_ok(t, "anyone"), 1);
	assert_int_equal(relay_tunnel_cert_ok(NULL, "x"), 0);

	/* Overrides are checked again: --listen onto the tunnel port. */
	assert_int_equal(relay_conf_set(c, "listen", "[::1]:9444", errbuf,
	    sizeof(errbuf)), 0);
	assert_int_equal(relay_conf_check(c, errbuf, sizeof(errbuf)),
	    MT_ECONFIG);
	assert_string_equal(errbuf, "x.yaml:2:16: \"tunnel_listen\" must be "
	    "another port than \"listen\" ([::1]:9444)");
	assert_int_equal(relay_conf_set(c, "tunnel_listen", "localhost:9445",
	    errbuf, sizeof(errbuf)), 0);
	assert_int_equal(relay_conf_check(c, errbuf, sizeof(errbuf)), 0);
	/* lws binds addresses or interfaces, not names. */
	assert_string_equal(c->tunnel_listen_host, "127.0.0.1");
	assert_int_equal(c->tunnel_listen_port, 9445);
	assert_int_equal(relay_conf_set(c, "tunnel_listen", "bad", errbuf,
	    sizeof(errbuf)), 0);
	assert_int_equal(relay_conf_check(c, errbuf, sizeof(errbuf)),
	    MT_ECONFIG);
	assert_string_equal(errbuf, "x.yaml: \"tunnel_listen\" " LISTEN_FORM);
	relay_conf_unref(c);
}

static void
test_refcount_and_equal(void **state)
{
	struct client_conf *a = NULL, *b = NULL;
	const char *t1 =
	    "servers:\n"
	    "  s: {command: x, args: [1], tools: {allow: [a]}}\n"
	    "  h: {url: \"http://h/\", headers: {A: b}}\n";
	const char *t2 =
	    "servers:\n"
	    "  s: {command: x, args: [1], tools: {allow: [b]}}\n"
	    "  h: {url: \"http://h/\", headers: {A: c}}\n";

	assert_int_equal(load_client(t1, &a), 0);
	assert_int_equal(load_client(t2, &b), 0);
	assert_int_equal(a->refcount, 1);
	assert_ptr_equal(client_conf_ref(a), a);
	assert_int_equal(a->refcount, 2);
	client_conf_unref(a);
	assert_int_equal(a->refcount, 1);
	/* Tool filters are not connection settings; headers are. */
	assert_int_equal(server_conf_equal_settings(
	    client_conf_server(a, "s"), client_conf_server(b, "s")), 1);
	assert_int_equal(server_conf_equal_settings(
	    client_conf_server(a, "h"), client_conf_server(b, "h")), 0);
	assert_int_equal(server_conf_equal_settings(
	    client_conf_server(a, "h"), client_conf_server(a, "s")), 0);
	assert_int_equal(server_conf_tool_allowed(client_conf_server(a, "s"),
	    "a"), 1);
	assert_int_equal(server_conf_tool_allowed(client_conf_server(b, "s"),
	    "a"), 0);
	client_conf_unref(a);
	client_conf_unref(b);
	client_conf_unref(NULL);
}

static void
test_load_file_errors(void **state)
{
	struct client_conf *c = NULL;
	char *path = write_temp("servers:\n  a:\n    comand: x\n", ".yaml");
	char want[512];

	assert_int_equal(client_conf_load(path, &c, errbuf, sizeof(errbuf)),
	    MT_ECONFIG);
	snprintf(want, sizeof(want), "%s:3:5: unknown key \"comand\" under "
	    "servers.a (did you mean \"command\"?)", path);
	assert_string_equal(errbuf, want);
	unlink(path);
	assert_int_equal(client_conf_load(path, &c, errbuf, sizeof(errbuf)),
	    MT_ECONFIG);
	snprintf(want, sizeof(want), "%s: cannot open: No such file or "
	    "directory", path);
	assert_string_equal(errbuf, want);
	assert_null(c);
	free(path);
}

static void
test_help(void **state)
{
	char buf[65536];
	size_t n;
	FILE *fp = tmpfile();

	assert_non_null(fp);
	client_conf_help(fp);
	relay_conf_help(fp);
	rewind(fp);
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	buf[n] = '\0';
	fclose(fp);
	assert_non_null(strstr(buf, "servers.NAME.command "));
	assert_non_null(strstr(buf, "servers.NAME.sql_tools[].parameters[].type "));
	assert_non_null(strstr(buf, "relay.token_file "));
	assert_non_null(strstr(buf, "agents.NAME.allow "));
	assert_non_null(strstr(buf, "(required)"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_example_jumphost),
		cmocka_unit_test(test_example_sidecar),
		cmocka_unit_test(test_example_mcp_json),
		cmocka_unit_test(test_example_relay),
		cmocka_unit_test(test_unknown_key),
		cmocka_unit_test(test_all_errors_collected),
		cmocka_unit_test(test_missing_key),
		cmocka_unit_test(test_bad_type),
		cmocka_unit_test(test_bad_size_duration),
		cmocka_unit_test(test_env_unset),
		cmocka_unit_test(test_env_expansion),
		cmocka_unit_test(test_secret_file),
		cmocka_unit_test(test_secret_not_printed),
		cmocka_unit_test(test_duplicate_key),
		cmocka_unit_test(test_yaml_syntax),
		cmocka_unit_test(test_bad_server_name),
		cmocka_unit_test(test_sse_refused),
		cmocka_unit_test(test_placeholders),
		cmocka_unit_test(test_placeholders_skipped),
		cmocka_unit_test(test_ws_needs_insecure),
		cmocka_unit_test(test_relay_errors),
		cmocka_unit_test(test_relay_mtls),
		cmocka_unit_test(test_refcount_and_equal),
		cmocka_unit_test(test_load_file_errors),
		cmocka_unit_test(test_help),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
