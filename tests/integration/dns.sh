#!/bin/sh
# Host-name lookups do not stall the client's event loop.  The client
# runs with tests/tools/slowdns.so preloaded: a DNS server that takes
# seconds for *.slow.test names, fails *.fail.test ones and answers
# ::1 then 127.0.0.1 for *.multi.test, and writes "start NAME" / "done
# NAME" lines to a log.  While an HTTP upstream's name is being looked
# up, a stdio server's session through the same client answers (checked
# by the log: its lookup is not done yet when the stdio call is); then
# the HTTP session itself goes through, with the name kept for Host.  A
# name that does not resolve fails that session only, with the reason;
# a name's second address is tried when the first refuses; the relay's
# own name failing to resolve counts as a failed link attempt, and its
# second address is dialled at once when the first refuses.  The same
# for a postgres server named by host name in its dsn (libpq gets the
# addresses as hostaddr), when PostgreSQL is installed.
: "${MCPTUN_TOP:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$MCPTUN_TOP/tests/lib/common.sh"
. "$MCPTUN_TOP/tests/lib/certs.sh"
. "$MCPTUN_TOP/tests/lib/node.sh"
. "$MCPTUN_TOP/tests/lib/pg.sh"
. "$MCPTUN_TOP/tests/lib/tunnel.sh"

require_node "dns: node"
ECHO=$MCPTUN_TOP/$B/tests/tools/echo_upstream
SHIM=$MCPTUN_TOP/$B/tests/tools/slowdns.so
[ -x "$ECHO" ] && [ -f "$SHIM" ] || {
	not_ok "dns: test tools built" "make $B/tests/tools/slowdns.so"
	finish
}
# The shim is loaded ahead of a sanitizer build's runtime.
ASAN_OPTIONS="${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}verify_asan_link_order=0"
export ASAN_OPTIONS
# Long enough for an agent's whole session on a slow machine, and short
# of the postgres upstream's 10 s connect deadline, which the lookup
# counts against.
SLOW=$((2 + 2 * TSCALE))

tunnel_init
API=$(free_port)
pg_try_start
if [ $PG_OK = 1 ]; then
	PG_HOST=db.slow.test pg_server_yaml slowdb >"$T/pg.yaml"
	PG_HOST=db.fail.test pg_server_yaml faildb >>"$T/pg.yaml"
	PG_HOST=db.multi.test pg_server_yaml multidb >>"$T/pg.yaml"
else
	: >"$T/pg.yaml"
fi
write_relay_conf - <<EOF
limits:
  request_timeout: 60s
EOF
write_client_conf <<EOF
limits:
  request_timeout: 60s
servers:
  slowapi:
    type: http
    url: http://api.slow.test:$API/mcp
  failing:
    type: http
    url: http://api.fail.test:$API/mcp
  multi:
    type: http
    url: http://api.multi.test:$API/mcp
  echo:
    command: $ECHO
$(cat "$T/pg.yaml")
EOF

# A minimal MCP server answering in application/json on 127.0.0.1 only,
# whose echo tool also says which Host header it got.
cat >"$T/api.mjs" <<'EOF'
import http from "node:http";
const port = Number(process.argv[2]);
http.createServer((req, res) => {
	let body = "";
	req.on("data", (c) => { body += c; });
	req.on("end", () => {
		const reply = (obj, headers = {}) => {
			res.writeHead(200, { "content-type": "application/json", ...headers });
			res.end(JSON.stringify(obj));
		};
		if (req.method !== "POST") {
			res.writeHead(req.method === "DELETE" ? 200 : 405);
			res.end();
			return;
		}
		const m = JSON.parse(body);
		if (m.id === undefined) {
			res.writeHead(202);
			res.end();
			return;
		}
		let result = {};
		if (m.method === "initialize")
			result = { protocolVersion: m.params.protocolVersion,
			    capabilities: { tools: {} },
			    serverInfo: { name: "api", version: "1.0.0" } };
		else if (m.method === "tools/list")
			result = { tools: [{ name: "echo", inputSchema: { type: "object" } }] };
		else if (m.method === "tools/call")
			result = { content: [{ type: "text",
			    text: `api echo: ${m.params.arguments.message} (host ${req.headers.host})` }] };
		reply({ jsonrpc: "2.0", id: m.id, result }, { "mcp-session-id": "s1" });
	});
}).listen(port, "127.0.0.1", () => console.log(`listening ${port}`));
EOF
start_bg api node "$T/api.mjs" "$API"
wait_port "$API" 10 || not_ok "api server listens"

start_relay
start_bg client env LD_PRELOAD="$SHIM" SLOWDNS_LOG="$T/dns.log" \
    SLOWDNS_SECONDS="$SLOW" "$CLIENT" -c "$T/client.yaml" -v
wait_link

# --- a slow lookup holds up its own session only ---------------------------
via_relay slowapi '[{"op":"callTool","name":"echo","args":{"message":"slow name"}},{"op":"close"}]' \
    >"$T/slow.out" 2>&1 &
slowpid=$!
if wait_log "$T/dns.log" '^start api\.slow\.test$' 20; then
	ok "the HTTP upstream's name is being looked up"
else
	not_ok "the HTTP upstream's name is being looked up"
fi
out=$(via_relay echo '[{"op":"callTool","name":"echo","args":{"message":"not held up"}},{"op":"close"}]' 2>&1)
pending=1
grep -q '^done api\.slow\.test$' "$T/dns.log" && pending=0
expect_match "a stdio session answers meanwhile" '"text":"not held up"' "$out"
expect_eq "... while the slow lookup is still pending" 1 "$pending"
wait $slowpid
expect_match "the slow name's session then goes through, Host naming it" \
    "api echo: slow name \\(host api.slow.test:$API\\)" "$(cat "$T/slow.out")"
# The session's later requests reuse the answer.
expect_eq "one lookup for the whole session" 1 \
    "$(grep -c '^start api\.slow\.test$' "$T/dns.log")"

# --- a name that does not resolve -----------------------------------------
out=$(via_relay failing '[{"op":"ping"}]' 2>&1)
expect_match "a name that does not resolve fails its session, saying why" \
    'cannot resolve api\.fail\.test' "$out"
check "... and the client logs it" \
    grep -q 'upstream failing: cannot reach http://api.fail.test:[0-9]*/mcp: cannot resolve api.fail.test' "$T/client.log"
out=$(via_relay echo '[{"op":"callTool","name":"echo","args":{"message":"still fine"}},{"op":"close"}]' 2>&1)
expect_match "... and nothing else" '"text":"still fine"' "$out"

# --- the next address when the first refuses -------------------------------
out=$(via_relay multi '[{"op":"callTool","name":"echo","args":{"message":"second address"}},{"op":"close"}]' 2>&1)
expect_match "a name's second address is tried when the first refuses" \
    "api echo: second address \\(host api.multi.test:$API\\)" "$out"

# --- postgres ----------------------------------------------------------------
if [ $PG_OK = 1 ]; then
	via_relay slowdb '[{"op":"callTool","name":"query","args":{"sql":"SELECT 6 * 7 AS answer"}},{"op":"close"}]' \
	    >"$T/slowdb.out" 2>&1 &
	slowpid=$!
	if wait_log "$T/dns.log" '^start db\.slow\.test$' 20; then
		ok "postgres: the dsn's host name is being looked up"
	else
		not_ok "postgres: the dsn's host name is being looked up"
	fi
	out=$(via_relay echo '[{"op":"callTool","name":"echo","args":{"message":"not held up by postgres"}},{"op":"close"}]' 2>&1)
	pending=1
	grep -q '^done db\.slow\.test$' "$T/dns.log" && pending=0
	expect_match "postgres: a stdio session answers meanwhile" \
	    '"text":"not held up by postgres"' "$out"
	expect_eq "... while the slow lookup is still pending" 1 "$pending"
	wait $slowpid
	expect_match "postgres: the query then runs" 'answer.*42' \
	    "$(cat "$T/slowdb.out")"
	check "... connected by the name, at its address" \
	    grep -q 'postgres slowdb: connection 1 up (db.slow.test:' "$T/client.log"
	out=$(via_relay faildb '[{"op":"callTool","name":"query","args":{"sql":"SELECT 1"}},{"op":"close"}]' 2>&1)
	expect_match "postgres: a name that does not resolve fails the call, saying why" \
	    'cannot connect to the database: cannot resolve db\.fail\.test' "$out"
	out=$(via_relay multidb '[{"op":"callTool","name":"query","args":{"sql":"SELECT 6 * 7 AS answer"}},{"op":"close"}]' 2>&1)
	expect_match "postgres: libpq tries the name's second address" \
	    'answer.*42' "$out"
else
	skip "dns: postgres" "no PostgreSQL server binaries (see $T/pg.out)"
fi

# --- the relay's own name ---------------------------------------------------
sed "s#wss://localhost:#wss://relay.fail.test:#" "$T/client.yaml" \
    >"$T/client2.yaml"
start_bg client2 env LD_PRELOAD="$SHIM" SLOWDNS_LOG="$T/dns2.log" \
    "$CLIENT" -c "$T/client2.yaml" -v
check "the relay's name not resolving is a failed link attempt" \
    wait_log "$T/client2.log" 'cannot resolve its host name' 10
check "... retried with backoff" \
    wait_log "$T/client2.log" 'resolving relay.fail.test \(attempt 3\)' 20
expect_eq "... one lookup per attempt" 1 "$(awk '
    /^start relay\.fail\.test$/ { n++ } END { print (n >= 2) }' "$T/dns2.log")"
stop_bg client2

# localhost as ::1 first, then 127.0.0.1, where the relay listens.  The
# main client leaves first: the relay keeps one link per tunnel.
stop_bg client
start_bg client3 env LD_PRELOAD="$SHIM" SLOWDNS_LOG="$T/dns3.log" \
    SLOWDNS_MULTI=localhost "$CLIENT" -c "$T/client.yaml" -v
check "the relay's second address is dialled when the first refuses" \
    wait_log "$T/client3.log" 'connected to wss://localhost:[0-9]*/tunnel; sending HELLO' 15
check "... at once, not after a backoff" \
    sh -c '! grep -q "reconnecting to" "$1"' - "$T/client3.log"
check "... after the first was refused" \
    grep -q 'connecting to wss://localhost:[0-9]*/tunnel at ::1' "$T/client3.log"
stop_bg client3

finish
