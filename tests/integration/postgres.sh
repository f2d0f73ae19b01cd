#!/bin/sh
# A private PostgreSQL as an MCP server (issue 5, the postgres half): the
# official SDK client (agent.mjs) -> relay -> WSS link -> client -> the
# built-in postgres adapter -> a real PostgreSQL seeded by pg_seed.  Checks
# the tools (list, describe, query, explain, a curated tool with typed
# parameters), resources, type mapping, the row cap, every escape from the
# read-only transaction (writes, DDL, stacked statements, COMMIT; ...,
# SET TRANSACTION, a SECURITY DEFINER function that writes), with the data
# compared directly with psql before and after; a statement past the
# statement_timeout; and a PostgreSQL restart in the middle of a session.
#
# The adapter is also run directly, as a stdio MCP server (test_pgup
# --stdio), and the tunnel's answers are compared with those.  While the
# client binary has no postgres adapter yet, the checks run against the
# direct server only and the tunnel checks are skipped with a reason.
: "${MCPTUN_TOP:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$MCPTUN_TOP/tests/lib/common.sh"
. "$MCPTUN_TOP/tests/lib/certs.sh"
. "$MCPTUN_TOP/tests/lib/node.sh"
. "$MCPTUN_TOP/tests/lib/pg.sh"
. "$MCPTUN_TOP/tests/lib/tunnel.sh"

PGUP=$MCPTUN_TOP/$B/tests/unit/test_pgup

require_node "postgres: node"
if [ ! -x "$PG_BIN/initdb" ]; then
	skip "postgres" "no PostgreSQL server binaries (PG_BIN=$PG_BIN)"
	finish
fi
if [ ! -x "$PGUP" ]; then
	not_ok "postgres: $B/tests/unit/test_pgup is built"
	finish
fi

# --- the database -----------------------------------------------------------
PG_PORT0=$(free_port)
pg_start "$T/pg" "$PG_PORT0" || { not_ok "PostgreSQL starts"; finish; }
pg_seed || { not_ok "PostgreSQL seeded"; finish; }
# A role that MAY write (so the READ ONLY transaction, not missing
# privileges, is what stops the escapes), a SECURITY DEFINER function with
# a side effect, and a scratch table for the read-write server.
pg_psql "CREATE ROLE mcptun_rw LOGIN" \
    "GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public TO mcptun_rw" \
    "GRANT CREATE ON SCHEMA public TO mcptun_rw" \
    "CREATE TABLE audit_log (id serial PRIMARY KEY, note text)" \
    "GRANT ALL ON audit_log, audit_log_id_seq TO mcptun_rw" \
    'CREATE FUNCTION touch_audit(note text) RETURNS integer LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN INSERT INTO audit_log(note) VALUES (note); RETURN 1; END $$' \
    "GRANT EXECUTE ON FUNCTION touch_audit(text) TO PUBLIC" \
    "CREATE TABLE notes (id integer PRIMARY KEY, body text)" \
    "GRANT ALL ON notes TO mcptun_rw" >/dev/null ||
	{ not_ok "test roles and functions"; finish; }
ok "PostgreSQL started and seeded"

# Everything an escape could change, read directly as the superuser.
fingerprint() {
	pg_psql "SELECT (SELECT count(*) FROM customers) || '/' ||
	    (SELECT count(*) FROM orders) || '/' || (SELECT sum(total) FROM orders) || '/' ||
	    (SELECT count(*) FROM order_items) || '/' || (SELECT count(*) FROM products) || '/' ||
	    (SELECT count(*) FROM events) || '/' || (SELECT count(*) FROM audit_log) || '/' ||
	    (SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public') || '/' ||
	    (SELECT count(*) FROM pg_proc WHERE proname = 'evil')"
}
BEFORE=$(fingerprint)

# --- the adapter alone (C harness through a real lws loop) ------------------
if PGUP_TEST_DSN="host=$PG_HOST port=$PG_PORT dbname=$PG_DB user=$PG_USER" \
    PGUP_TEST_PASSWORD=$PG_PASSWORD CMOCKA_MESSAGE_OUTPUT=stdout \
    timeout 120 "$PGUP" >"$T/test_pgup.out" 2>&1 &&
    grep -q '^\[  PASSED  \] 13 test' "$T/test_pgup.out"; then
	ok "adapter tests against a live PostgreSQL (test_pgup, 13 cases)"
else
	not_ok "adapter tests against a live PostgreSQL (test_pgup)"
	grep -e FAILED -e ERROR -e LINE "$T/test_pgup.out" | head -n 20
fi

# --- relay and client -------------------------------------------------------
tunnel_init
write_relay_conf - <<EOF
limits:
  request_timeout: 30s
EOF

RW_DSN="host=$PG_HOST port=$PG_PORT dbname=$PG_DB user=mcptun_rw"
write_client_conf <<EOF
limits:
  request_timeout: 30s
# No mcptun_* tools in the lists, so they equal the direct adapter's
# (tests/integration/offload.sh covers offloading query results).
offload:
  threshold_tokens: 0
servers:
  shop:
    type: postgres
    dsn: "$RW_DSN"
    statement_timeout: 1s
    max_rows: 100
    sql_tools:
      - name: orders_by_status
        description: Orders with a given status, newest first
        sql: SELECT id, customer_id, status, total FROM orders WHERE status = \$1 ORDER BY placed_at DESC LIMIT \$2
        parameters:
          - name: status
            type: string
            description: new, paid, shipped or cancelled
          - name: limit
            type: integer
            required: false
  shop_pw:
    type: postgres
    dsn: "postgresql://$PG_USER@$PG_HOST:$PG_PORT/$PG_DB"
    password: "$PG_PASSWORD"
    max_rows: 3
  shop_rw:
    type: postgres
    dsn: "$RW_DSN"
    access: read-write
    tools:
      allow: [query]
  reports:
    type: postgres
    dsn: "$RW_DSN"
    builtin_tools: false
    sql_tools:
      - name: customer_count
        sql: SELECT count(*) AS n FROM customers
EOF
check "client -n accepts the postgres servers" "$CLIENT" -n -c "$T/client.yaml"

start_tunnel

direct() {
	_dr_srv=$1 _dr_script=$2
	shift 2
	agent --stdio "$PGUP --stdio $T/client.yaml $_dr_srv" --quiet-stderr \
	    "$@" "$_dr_script"
}

# Is the postgres adapter in this client binary yet?
out=$(via_relay shop '[{"op":"ping"}]' 2>&1)
if printf '%s\n' "$out" | grep -q '"step":1,"op":"ping","result"'; then
	VIA=tunnel
	ok "a postgres session opens through the tunnel"
else
	VIA=direct
	skip "postgres through the tunnel" "the client cannot open postgres sessions yet; checks run on the adapter directly ($(printf '%s' "$out" | tr '\n' ' ' | cut -c1-160))"
fi
# run SERVER SCRIPT [OPTIONS]: through the tunnel when it can, else direct.
run() {
	if [ $VIA = tunnel ]; then via_relay "$@"; else direct "$@"; fi
}

# pick FILE STEP WHAT: one field of a step's output line.
#   text     the first content text (or the error message)
#   iserror  "error" for isError results and JSON-RPC errors, else "ok"
#   sc       structuredContent as compact JSON
#   json     the whole result (or error) as compact JSON
#   tools    the names in a tools/list result, space-separated
pick() {
	python3 - "$@" <<'EOF'
import json, sys
path, step, what = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for line in open(path, encoding="utf-8"):
    try:
        o = json.loads(line)
    except ValueError:
        continue
    if o.get("step") != step:
        continue
    r, e = o.get("result"), o.get("error")
    if what == "iserror":
        print("error" if e is not None or (isinstance(r, dict) and r.get("isError")) else "ok")
    elif what == "text":
        if e is not None:
            print(e.get("message", ""))
        else:
            c = r.get("content") or [{}]
            print(c[0].get("text", ""))
    elif what == "tools":
        print(" ".join(t["name"] for t in (r or {}).get("tools", [])))
    elif what == "sc":
        print(json.dumps((r or {}).get("structuredContent"), separators=(",", ":"), sort_keys=True))
    else:
        print(json.dumps(r if e is None else e, separators=(",", ":"), sort_keys=True))
    sys.exit(0)
print("<no step %d>" % step)
EOF
}

# --- tools, resources, queries ------------------------------------------------
run shop '[{"op":"listTools"},
 {"op":"callTool","name":"list_tables","args":{}},
 {"op":"callTool","name":"describe_table","args":{"table":"orders"}},
 {"op":"callTool","name":"query","args":{"sql":"SELECT count(*) AS n, sum(total) AS total FROM orders"}},
 {"op":"callTool","name":"query","args":{"sql":"SELECT * FROM types_demo ORDER BY id"}},
 {"op":"callTool","name":"orders_by_status","args":{"status":"paid"}},
 {"op":"callTool","name":"orders_by_status","args":{"status":"shipped","limit":1}},
 {"op":"callTool","name":"orders_by_status","args":{"status":5}},
 {"op":"callTool","name":"orders_by_status","args":{"status":"paid'"'"' OR '"'"'1'"'"'='"'"'1"}},
 {"op":"callTool","name":"query","args":{"sql":"SELECT id, kind FROM events ORDER BY id"}},
 {"op":"callTool","name":"explain","args":{"sql":"SELECT * FROM orders WHERE customer_id = 2"}},
 {"op":"listResources"},
 {"op":"readResource","uri":"postgres://shop/public/order_items/schema"},
 {"op":"callTool","name":"list_schemas","args":{}},
 {"op":"raw","method":"prompts/list","params":{}},
 {"op":"close"}]' >"$T/main.out" 2>"$T/main.err"
head -n 1 "$T/main.out" >"$T/connect.out"
expect_match "initialize: mcptun-postgres with tools and resources" \
    '"name":"mcptun-postgres".*"resources":\{\}.*"tools":\{"listChanged":true\}|"resources":\{\}.*"tools":\{"listChanged":true\}.*"name":"mcptun-postgres"|"serverInfo":\{"name":"mcptun-postgres"' \
    "$(cat "$T/connect.out")"
tools=$(pick "$T/main.out" 1 json)
missing=""
for t in query list_schemas list_tables describe_table explain orders_by_status; do
	case $tools in
	*"\"name\":\"$t\""*) ;;
	*) missing="$missing $t" ;;
	esac
done
expect_eq "tools/list: the five built-in tools and the curated one" "" "$missing"
expect_match "tools declare inputSchema and outputSchema" \
    '"inputSchema".*"outputSchema"' "$tools"
expect_match "the curated tool's parameters become JSON Schema" \
    '"properties":\{"limit":\{"type":"integer"\},"status":\{"description":"new, paid, shipped or cancelled","type":"string"\}\},"required":\["status"\]' \
    "$tools"
txt=$(pick "$T/main.out" 2 text)
expect_match "list_tables lists the seeded tables" \
    'customers.*events.*order_items.*orders.*products.*types_demo' "$(printf '%s' "$txt" | tr '\n' ' ')"
txt=$(pick "$T/main.out" 3 text)
expect_match "describe_table: columns, types, nullability" \
    'customer_id +\| integer +\| not null' "$txt"
expect_match "describe_table: primary key" 'Primary key: \(id\)' "$txt"
expect_match "describe_table: foreign key" \
    'FOREIGN KEY \(customer_id\) REFERENCES customers\(id\) ON DELETE CASCADE' "$txt"
expect_match "describe_table: referenced by" 'public\.order_items order_items_order_id_fkey' "$txt"
expect_match "describe_table: indexes" 'orders_status_placed_idx: CREATE INDEX' "$txt"
expect_match "describe_table: check constraints" \
    "orders_status_check: CHECK \\(status = ANY" "$txt"
expect_eq "query: bigint and numeric come back as strings" \
    '[{"n":"8","total":"2631.58"}]' \
    "$(pick "$T/main.out" 4 sc | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["rows"], separators=(",",":")))')"
expect_match "query: a readable text table" \
    ' n \| +total.*-+\+-+.* 8 \| 2631\.58.*\(1 row\)' "$(pick "$T/main.out" 4 text | tr '\n' ' ')"
rows=$(pick "$T/main.out" 5 sc)
expect_match "types: numeric string, bytea base64, jsonb parsed" \
    '"b":"AAEC//4=".*"j":\{"a":1,"b":\[true,null,"x"\],"c":\{"d":1\.5\}\}.*"n":"12345678901234567890\.0123456789"' "$rows"
expect_match "types: int8 string, float8 number, bool, uuid" \
    '"big":"9223372036854775807".*"f":3\.141592653589793.*"flag":true.*"u":"00000000-0000-4000-8000-000000000001"' "$rows"
expect_match "types: NULL is null, NaN and Infinity stay strings" \
    '"f":"Infinity".*"flag":null.*"n":"NaN"' "$rows"
expect_match "types: column types named" \
    '\{"name":"tstz","type":"timestamp with time zone"\}.*\{"name":"arr","type":"integer\[\]"\}' "$rows"
expect_match "curated tool with a parameter" \
    '"row_count":3,.*"rows":\[\{"customer_id":4,"id":7,"status":"paid","total":"1259.06"\}' "$(pick "$T/main.out" 6 sc)"
expect_match "curated tool with an optional integer" '"row_count":1,' "$(pick "$T/main.out" 7 sc)"
expect_match "curated tool: parameter types checked before sending" \
    'argument "status" must be a string, not an integer' "$(pick "$T/main.out" 8 text)"
expect_match "curated tool: a parameter is data, never SQL" '"row_count":0,' "$(pick "$T/main.out" 9 sc)"
txt=$(pick "$T/main.out" 10 text)
expect_match "a capped result says it was truncated and how many rows" \
    'truncated: showing 100 of 10000 rows \(max_rows 100\)' "$txt"
expect_match "... and so does structuredContent" \
    '"row_count":100,.*"total_rows":10000,"total_rows_exact":true,"truncated":true' "$(pick "$T/main.out" 10 sc)"
expect_match "explain: a plan without running it" 'Scan .*on public\.orders|Scan on orders' "$(pick "$T/main.out" 11 text)"
expect_match "table schemas as resources" \
    'postgres://shop/public/orders/schema' "$(pick "$T/main.out" 12 json)"
expect_match "a table schema resource reads as JSON" \
    'application/json.*order_items_product_idx' "$(pick "$T/main.out" 13 json)"
expect_match "list_schemas" 'public' "$(pick "$T/main.out" 14 text)"
expect_match "unknown method: -32601" '"code":-32601' "$(pick "$T/main.out" 15 json)"

# --- password from the config; max_rows ------------------------------------------
run shop_pw '[{"op":"callTool","name":"query","args":{"sql":"SELECT id, name FROM customers ORDER BY id"}},{"op":"close"}]' \
    >"$T/pw.out" 2>"$T/pw.err"
expect_match "password from the config: connects as $PG_USER" \
    'truncated: showing 3 of 5 rows \(max_rows 3\)' "$(pick "$T/pw.out" 1 text)"

# --- every escape refused, data unchanged -----------------------------------------
cat >"$T/escapes.json" <<'EOF'
[{"op":"callTool","name":"query","args":{"sql":"INSERT INTO customers VALUES (9, 'X', 'x@example.com', 'XX', now())"}},
 {"op":"callTool","name":"query","args":{"sql":"UPDATE orders SET total = 0"}},
 {"op":"callTool","name":"query","args":{"sql":"DELETE FROM order_items"}},
 {"op":"callTool","name":"query","args":{"sql":"DROP TABLE events"}},
 {"op":"callTool","name":"query","args":{"sql":"CREATE FUNCTION evil() RETURNS int LANGUAGE sql AS 'SELECT 1'"}},
 {"op":"callTool","name":"query","args":{"sql":"TRUNCATE orders"}},
 {"op":"callTool","name":"query","args":{"sql":"SELECT 1; DELETE FROM orders"}},
 {"op":"callTool","name":"query","args":{"sql":"COMMIT; DROP TABLE customers"}},
 {"op":"callTool","name":"query","args":{"sql":"SET TRANSACTION READ WRITE"}},
 {"op":"callTool","name":"query","args":{"sql":"/* hi */ -- there\n set transaction read write; delete from orders"}},
 {"op":"callTool","name":"query","args":{"sql":"SELECT touch_audit('escaped')"}},
 {"op":"callTool","name":"query","args":{"sql":"SELECT set_config('transaction_read_only', 'off', true), touch_audit('x')"}},
 {"op":"callTool","name":"query","args":{"sql":"WITH d AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM d"}},
 {"op":"callTool","name":"query","args":{"sql":"COPY orders TO STDOUT"}},
 {"op":"callTool","name":"query","args":{"sql":"DO $$ BEGIN DELETE FROM orders; END $$"}},
 {"op":"callTool","name":"query","args":{"sql":"ROLLBACK; BEGIN READ WRITE; DELETE FROM orders"}},
 {"op":"callTool","name":"explain","args":{"sql":"DELETE FROM orders"}},
 {"op":"callTool","name":"query","args":{"sql":"SELECT count(*) AS n FROM orders"}},
 {"op":"close"}]
EOF
run shop "$T/escapes.json" >"$T/escapes.out" 2>"$T/escapes.err"
i=1
for name in "INSERT:25006" "UPDATE:25006" "DELETE:25006" "DROP TABLE:25006" \
    "CREATE FUNCTION:25006" "TRUNCATE:25006" \
    "stacked statements:cannot insert multiple commands into a prepared statement" \
    "COMMIT; DROP TABLE:refused: COMMIT" "SET TRANSACTION READ WRITE:refused: SET" \
    "SET after comments:refused: SET" \
    "a SECURITY DEFINER function that writes:25006" \
    "set_config(transaction_read_only):25001" \
    "a data-modifying CTE:25006" "COPY:refused: COPY" "DO:refused: DO" \
    "ROLLBACK; BEGIN READ WRITE:refused: ROLLBACK"; do
	what=${name%%:*} want=${name#*:}
	r=$(pick "$T/escapes.out" $i iserror)
	txt=$(pick "$T/escapes.out" $i text)
	if [ "$r" = error ] && printf '%s' "$txt" | grep -q -- "$want"; then
		ok "escape refused: $what ($(printf '%s' "$txt" | head -n 1 | cut -c1-70))"
	else
		not_ok "escape refused: $what" "$r: $txt"
	fi
	i=$((i + 1))
done
expect_eq "explain of a DELETE plans it without running it" ok "$(pick "$T/escapes.out" 17 iserror)"
expect_eq "the session is still usable after the refusals" \
    '{"n":"8"}' "$(pick "$T/escapes.out" 18 sc | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["rows"][0], separators=(",",":")))')"
expect_eq "data unchanged (checked directly with psql)" "$BEFORE" "$(fingerprint)"

# --- read-write only when the config says so ---------------------------------------
run shop_rw '[{"op":"listTools"},
 {"op":"callTool","name":"query","args":{"sql":"INSERT INTO notes VALUES (1, '"'"'written'"'"')"}},
 {"op":"callTool","name":"query","args":{"sql":"SELECT body FROM notes"}},
 {"op":"callTool","name":"list_tables","args":{}},
 {"op":"close"}]' >"$T/rw.out" 2>"$T/rw.err"
expect_match "access: read-write commits" 'INSERT 0 1' "$(pick "$T/rw.out" 2 text)"
expect_eq "... as psql sees" written "$(pg_psql "SELECT body FROM notes WHERE id = 1")"
expect_eq "tool filter: only query is listed" query "$(pick "$T/rw.out" 1 tools)"
expect_eq "tool filter: list_tables refused" error "$(pick "$T/rw.out" 4 iserror)"

run reports '[{"op":"listTools"},{"op":"callTool","name":"customer_count","args":{}},{"op":"callTool","name":"query","args":{"sql":"SELECT 1"}},{"op":"close"}]' \
    >"$T/reports.out" 2>"$T/reports.err"
expect_eq "builtin_tools: false leaves only the curated tools" \
    customer_count "$(pick "$T/reports.out" 1 tools)"
expect_match "... which work" '"rows":\[\{"n":"5"\}\]' "$(pick "$T/reports.out" 2 sc)"
expect_eq "... and query is not there" error "$(pick "$T/reports.out" 3 iserror)"

# --- statement_timeout --------------------------------------------------------------
# Timed from the session's connect line to the call's answer, so a slow
# start of node and the SDK under load does not count, only the call.
SLEEP=$((10 * TSCALE))
run shop '[{"op":"callTool","name":"query","args":{"sql":"SELECT pg_sleep('"$SLEEP"')"}},
 {"op":"callTool","name":"query","args":{"sql":"SELECT 42 AS answer"}},{"op":"close"}]' \
    >"$T/timeout.out" 2>"$T/timeout.err" &
tpid=$!
wait_log "$T/timeout.out" '^\{"step":0,' 60
t0=$(date +%s.%N)
wait_log "$T/timeout.out" '^\{"step":1,' $((SLEEP + 30))
t1=$(date +%s.%N)
wait $tpid
took=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
expect_match "pg_sleep($SLEEP) past a 1 s statement_timeout: SQLSTATE 57014" \
    'ERROR 57014: canceling statement due to statement timeout' "$(pick "$T/timeout.out" 1 text)"
if awk -v t="$took" -v s="$SLEEP" 'BEGIN { exit !(t < s - 1) }'; then
	ok "... well before the sleep would end ($took s for the call)"
else
	not_ok "... well before the sleep would end" "$took s for the call"
fi
expect_match "the next call works" '"answer":42' "$(pick "$T/timeout.out" 2 sc)"

# --- PostgreSQL restarted mid-session ----------------------------------------------
run shop '[{"op":"callTool","name":"query","args":{"sql":"SELECT 1 AS before_restart"}},
 {"op":"sleep","ms":5000},
 {"op":"callTool","name":"query","args":{"sql":"SELECT 2 AS after_restart"}},
 {"op":"callTool","name":"query","args":{"sql":"SELECT 3 AS again"}},
 {"op":"close"}]' >"$T/restart.out" 2>"$T/restart.err" &
agent_pid=$!
if wait_log "$T/restart.out" '"step":1,' 30; then
	pg_restart && ok "PostgreSQL restarted mid-session" || not_ok "PostgreSQL restarted mid-session"
else
	not_ok "the restart session started" "$(cat "$T/restart.err")"
fi
wait $agent_pid
expect_match "before the restart" '"before_restart":1' "$(pick "$T/restart.out" 1 sc)"
expect_match "after the restart the next call works" '"after_restart":2' "$(pick "$T/restart.out" 3 sc)"
expect_match "... and the one after" '"again":3' "$(pick "$T/restart.out" 4 sc)"

# --- the tunnel answers as the adapter does directly ---------------------------------
if [ $VIA = tunnel ]; then
	cmp_script='[{"op":"listTools"},
	 {"op":"callTool","name":"describe_table","args":{"table":"customers"}},
	 {"op":"callTool","name":"query","args":{"sql":"SELECT * FROM types_demo ORDER BY id"}},
	 {"op":"callTool","name":"query","args":{"sql":"DELETE FROM orders"}},
	 {"op":"callTool","name":"orders_by_status","args":{"status":"new"}},
	 {"op":"listResources"},{"op":"ping"},{"op":"close"}]'
	direct shop "$cmp_script" --normalize >"$T/cmp-direct.out" 2>"$T/cmp-direct.err"
	via_relay shop "$cmp_script" --normalize >"$T/cmp-tunnel.out" 2>"$T/cmp-tunnel.err"
	if [ -s "$T/cmp-direct.out" ] && diff "$T/cmp-direct.out" "$T/cmp-tunnel.out" >"$T/cmp.diff"; then
		ok "tunnel answers equal the direct adapter's"
	else
		not_ok "tunnel answers equal the direct adapter's"; head -n 30 "$T/cmp.diff"
	fi
	check "client logs the pool connection" grep -q 'postgres shop: connection [0-9]* up' "$T/client.log"
else
	skip "tunnel answers equal the direct adapter's" "no postgres adapter in the client yet"
fi

if grep -F -q "$PG_PASSWORD" "$T"/*.log "$T"/*.err 2>/dev/null; then
	not_ok "the database password is never logged"
else
	ok "the database password is never logged"
fi
if grep -q "$TOKEN" "$T"/*.log; then not_ok "token never logged"; else ok "token never logged"; fi

san_check_logs
finish
