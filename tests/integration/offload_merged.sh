#!/bin/sh
# Output offload on the merged endpoint (/mcp/<tunnel>), with the official
# SDK client (tests/node/offload_agent.mjs) -> relay -> link -> client ->
# two stdio servers (tests/node/bigserver.mjs) and, with PostgreSQL, the
# built-in postgres adapter.  A result over the threshold through the
# prefixed tool (big_big, shop_query) comes back as a summary, a preview
# and a resource_link; the prefixed big_mcptun_read (by offset, by lines),
# big_mcptun_grep, big_mcptun_outputs and resources/read of the URI (with
# and without ?offset&length) through the merged endpoint return exactly
# the bytes of the original, compared with tail/head/sed/grep.  The output
# stays bound to the session that made it: the other server's tools in
# the same merged session, another merged session, another agent and the
# single-server endpoint are all told "not found", never the data.
: "${MCPTUN_TOP:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$MCPTUN_TOP/tests/lib/common.sh"
. "$MCPTUN_TOP/tests/lib/certs.sh"
. "$MCPTUN_TOP/tests/lib/node.sh"
. "$MCPTUN_TOP/tests/lib/pg.sh"
. "$MCPTUN_TOP/tests/lib/tunnel.sh"

require_node "offload_merged: node"
pg_try_start
tunnel_init
OTHER_TOKEN=agent-$(openssl rand -hex 16)
BIGSERVER=$NODE_DIR/bigserver.mjs
THRESHOLD=100000		# bytes: threshold_tokens 25000

write_relay_conf -a other "$OTHER_TOKEN" '["acme/*"]' - <<EOF
limits:
  request_timeout: 300s
EOF

write_client_conf <<EOF
audit_log: $T/audit.jsonl
limits:
  request_timeout: 300s
offload:
  threshold_tokens: 25000
  dir: $T/spool
  keep_after_session: true
servers:
  big:
    command: node
    args: ["$BIGSERVER"]
  small:
    command: node
    args: ["$BIGSERVER"]
EOF
if [ $PG_OK = 1 ]; then
	{
		pg_server_yaml shop "max_rows: 100000" "max_bytes: 64MiB"
		# The same database unoffloaded: what the adapter itself sends.
		pg_server_yaml shopdirect "max_rows: 100000" "max_bytes: 64MiB" \
		    "offload:" "  threshold_tokens: 0"
	} >>"$T/client.yaml"
fi

start_tunnel
mkdir "$T/out"

# magent URL TOKEN SCRIPT [OPTIONS...]: one agent session through the relay.
magent() {
	_ma_url=$1 _ma_tok=$2 _ma_script=$3
	shift 3
	node "$NODE_DIR/offload_agent.mjs" --url "$_ma_url" --token "$_ma_tok" \
	    --ca "$CERTS/ca.crt" --out "$T/out" "$@" "$_ma_script"
}
# step N OUTPUT: the output line of step N.
step() { printf '%s\n' "$2" | grep "^{\"step\":$1,"; }

# --- reading an offloaded output through the merged endpoint ------------------
N=3000000
node "$BIGSERVER" --gen $N >"$T/exp"
NOSUCH=$(openssl rand -hex 16)
out=$(magent "$URL" "$AGENT_TOKEN" "[{\"op\":\"listTools\"},
 {\"op\":\"call\",\"name\":\"big_big\",\"args\":{\"bytes\":$N},\"save\":\"r\"},
 {\"op\":\"call\",\"name\":\"big_mcptun_read\",\"args\":{\"id\":\"\$ID\",\"offset\":1000000,\"length\":20000},\"save\":\"off\"},
 {\"op\":\"call\",\"name\":\"big_mcptun_read\",\"args\":{\"id\":\"\$URI\",\"start_line\":20001,\"line_count\":150},\"save\":\"lines\"},
 {\"op\":\"call\",\"name\":\"big_mcptun_grep\",\"args\":{\"id\":\"\$ID\",\"pattern\":\"MATCHME\",\"context\":1,\"max_matches\":5},\"save\":\"grep\"},
 {\"op\":\"call\",\"name\":\"big_mcptun_outputs\",\"args\":{},\"save\":\"outs\"},
 {\"op\":\"read\",\"uri\":\"\$URI\",\"save\":\"res\"},
 {\"op\":\"read\",\"uri\":\"\$URI?offset=1234567&length=4321\",\"save\":\"resq\"},
 {\"op\":\"call\",\"name\":\"small_mcptun_read\",\"args\":{\"id\":\"\$ID\",\"length\":64},\"save\":\"cross\"},
 {\"op\":\"read\",\"uri\":\"mcptun://offload/$NOSUCH\"},
 {\"op\":\"read\",\"uri\":\"mcptun://offload/$NOSUCH?offset=0&length=10\"},
 {\"op\":\"call\",\"name\":\"small_big\",\"args\":{\"bytes\":200000},\"save\":\"s\"},
 {\"op\":\"read\",\"uri\":\"\$URI?length=64\",\"save\":\"sres\"}]" 2>"$T/merged.err")
printf '%s\n' "$out" >"$T/merged.out"
ID=$(cat "$T/out/r.id" 2>/dev/null)
SID=$(cat "$T/out/s.id" 2>/dev/null)
expect_match "merged: tools/list offers the prefixed offload tools of each server" \
    '"name":"big_big".*"name":"big_mcptun_read".*"name":"big_mcptun_grep".*"name":"big_mcptun_outputs".*"name":"small_mcptun_read"' \
    "$(step 1 "$out")"
expect_match "merged: a 3 MB result is a small answer with a resource_link" \
    "\\($N bytes of text in 46875 lines\\).*\"uri\":\"mcptun://offload/$ID\".*\"size\":$N,\"type\":\"resource_link\"" \
    "$(step 2 "$out")"
check "merged: the answer is under the threshold" \
    test "$(step 2 "$out" | wc -c)" -lt $THRESHOLD
expect_eq "merged: the answer names the prefixed tools" \
    "On this endpoint these tools are named big_mcptun_read, big_mcptun_grep and big_mcptun_outputs." \
    "$(cat "$T/out/r.2" 2>/dev/null)"
head -n 40 "$T/exp" >"$T/exp.preview"
check "merged: preview, the first 40 lines" cmp "$T/out/r.1" "$T/exp.preview"
tail -c +1000001 "$T/exp" | head -c 20000 >"$T/exp.off"
check "merged: big_mcptun_read by offset: exact bytes" cmp "$T/out/off.1" "$T/exp.off"
sed -n '20001,20150p' "$T/exp" >"$T/exp.lines"
check "merged: big_mcptun_read by lines (id as URI): exact lines" \
    cmp "$T/out/lines.1" "$T/exp.lines"
grep -n -E -C1 -m5 MATCHME "$T/exp" >"$T/exp.grep"
check "merged: big_mcptun_grep: as grep -n -C1 -m5" cmp "$T/out/grep.1" "$T/exp.grep"
expect_match "merged: big_mcptun_outputs lists it" \
    "\"id\":\"$ID\",\"uri\":\"mcptun://offload/$ID\",\"tool\":\"big\",\"bytes\":$N" \
    "$(cat "$T/out/outs.1" 2>/dev/null)"
# resources/read without a range answers the first bytes, a bounded slice.
res=$(wc -c <"$T/out/res.0" 2>/dev/null || echo 0)
head -c "${res:-0}" "$T/exp" >"$T/exp.res"
check "merged: resources/read of the URI: the first bytes, bounded" sh -c \
    "[ ${res:-0} -gt 1000 ] && [ ${res:-0} -lt $THRESHOLD ] && cmp '$T/out/res.0' '$T/exp.res'"
tail -c +1234568 "$T/exp" | head -c 4321 >"$T/exp.resq"
check "merged: resources/read ?offset&length: exact bytes" cmp "$T/out/resq.0" "$T/exp.resq"
expect_match "merged: the other server's tool does not see it (bound to its session)" \
    "No output $ID in this session.*\"isError\":true" "$(step 9 "$out")"
expect_match "merged: resources/read of an unknown output: not found" \
    '"code":-32002,"message":"[^"]*Resource not found' "$(step 10 "$out")"
expect_match "merged: ... with a range: not found" \
    '"code":-32002,"message":"[^"]*Resource not found' "$(step 11 "$out")"
expect_match "merged: a second server's output in the same session" \
    "\"uri\":\"mcptun://offload/$SID\".*\"size\":200000,\"type\":\"resource_link\"" \
    "$(step 12 "$out")"
head -c 64 "$T/exp" >"$T/exp.s64"
check "merged: resources/read routes each URI to its server" \
    cmp "$T/out/sres.0" "$T/exp.s64"
expect_eq "merged: no step failed but the two refused reads" 2 \
    "$(printf '%s\n' "$out" | grep -c '"error":')"
check "merged: stored bytes are the original" cmp "$T/spool/$ID.out" "$T/exp"

# --- another session, another agent, the single-server endpoint --------------
out=$(magent "$URL" "$AGENT_TOKEN" '[{"op":"call","name":"big_mcptun_read","args":{"id":"$ID","length":64},"save":"o1"},
 {"op":"call","name":"big_mcptun_grep","args":{"id":"$ID","pattern":"line"},"save":"o2"},
 {"op":"read","uri":"mcptun://offload/$ID","save":"o3"},
 {"op":"read","uri":"mcptun://offload/$ID?offset=0&length=64","save":"o4"},
 {"op":"call","name":"big_mcptun_outputs","args":{},"save":"o5"}]' --var ID="$ID" 2>&1)
printf '%s\n' "$out" >"$T/other-session.out"
expect_match "another merged session: big_mcptun_read not found" \
    "No output $ID in this session.*\"isError\":true" "$(step 1 "$out")"
expect_match "another merged session: big_mcptun_grep not found" \
    "No output $ID.*\"isError\":true" "$(step 2 "$out")"
expect_match "another merged session: resources/read not found" \
    '"code":-32002,"message":"[^"]*Resource not found' "$(step 3 "$out")"
expect_match "another merged session: resources/read with a range not found" \
    '"code":-32002,"message":"[^"]*Resource not found' "$(step 4 "$out")"
case $(cat "$T/out/o5.1" 2>/dev/null; step 5 "$out") in
*"$ID"*) not_ok "another merged session: its outputs list is without it" ;;
*) ok "another merged session: its outputs list is without it" ;;
esac
out2=$(magent "$URL" "$OTHER_TOKEN" '[{"op":"call","name":"big_mcptun_read","args":{"id":"$ID","length":64}},
 {"op":"read","uri":"mcptun://offload/$ID"}]' --var ID="$ID" 2>&1)
expect_match "another agent (merged): not found" \
    "No output $ID.*\"isError\":true" "$(step 1 "$out2")"
expect_match "another agent (merged): resources/read not found" \
    '"code":-32002,"message":"[^"]*Resource not found' "$(step 2 "$out2")"
out3=$(magent "$URL/big" "$AGENT_TOKEN" '[{"op":"call","name":"mcptun_read","args":{"id":"$ID","length":64}},
 {"op":"read","uri":"mcptun://offload/$ID"}]' --var ID="$ID" 2>&1)
expect_match "single-server endpoint: not found" \
    "No output $ID in this session.*\"isError\":true" "$(step 1 "$out3")"
expect_match "single-server endpoint: resources/read not found" \
    '"code":-32002,"message":"[^"]*Resource not found' "$(step 2 "$out3")"
if printf '%s\n%s\n%s\n' "$out" "$out2" "$out3" | grep -q 'line 00000001' ||
    cat "$T/out"/o[1-5].* 2>/dev/null | grep -q 'line 00000001'; then
	not_ok "no data leaks to other sessions"
else
	ok "no data leaks to other sessions"
fi

# --- postgres through the merged endpoint --------------------------------------
if [ $PG_OK = 1 ]; then
	SQL="SELECT id, kind, customer_id, payload, ts FROM events ORDER BY id"
	out=$(magent "$URL" "$AGENT_TOKEN" "[{\"op\":\"call\",\"name\":\"shopdirect_query\",\"args\":{\"sql\":\"$SQL\"},\"save\":\"pgorig\"}]" 2>&1)
	pgsize=$(wc -c <"$T/out/pgorig.0" 2>/dev/null || echo 0)
	check "postgres (merged): the unoffloaded result is several MB" \
	    test "${pgsize:-0}" -gt 1000000
	out=$(magent "$URL" "$AGENT_TOKEN" "[{\"op\":\"listTools\"},
	 {\"op\":\"call\",\"name\":\"shop_query\",\"args\":{\"sql\":\"$SQL\"},\"save\":\"pg\"},
	 {\"op\":\"call\",\"name\":\"shop_mcptun_read\",\"args\":{\"id\":\"\$ID\",\"start_line\":5000,\"line_count\":100},\"save\":\"pglines\"},
	 {\"op\":\"call\",\"name\":\"shop_mcptun_read\",\"args\":{\"id\":\"\$ID\",\"offset\":123456,\"length\":7777},\"save\":\"pgoff\"},
	 {\"op\":\"call\",\"name\":\"shop_mcptun_grep\",\"args\":{\"id\":\"\$ID\",\"pattern\":\"^ +77[0-9]{2} \",\"max_matches\":50,\"context\":2},\"save\":\"pggrep\"},
	 {\"op\":\"read\",\"uri\":\"\$URI?offset=777777&length=3333\",\"save\":\"pgres\"}]" 2>&1)
	printf '%s\n' "$out" >"$T/pg.steps"
	PGID=$(cat "$T/out/pg.id" 2>/dev/null)
	expect_match "postgres (merged): a small answer with a resource_link (SDK checked outputSchema)" \
	    "\"size\":$pgsize,\"type\":\"resource_link\".*\"structuredContent\":\\{\"columns\":\\[" \
	    "$(step 2 "$out")"
	check "postgres (merged): stored text is what the adapter sends" \
	    cmp "$T/spool/$PGID.out" "$T/out/pgorig.0"
	sed -n '5000,5099p' "$T/out/pgorig.0" >"$T/exp.pglines"
	check "postgres (merged): shop_mcptun_read by lines" cmp "$T/out/pglines.1" "$T/exp.pglines"
	tail -c +123457 "$T/out/pgorig.0" | head -c 7777 >"$T/exp.pgoff"
	check "postgres (merged): shop_mcptun_read by offset" cmp "$T/out/pgoff.1" "$T/exp.pgoff"
	grep -n -E -C2 -m50 '^ +77[0-9]{2} ' "$T/out/pgorig.0" >"$T/exp.pggrep"
	check "postgres (merged): shop_mcptun_grep" cmp "$T/out/pggrep.1" "$T/exp.pggrep"
	tail -c +777778 "$T/out/pgorig.0" | head -c 3333 >"$T/exp.pgres"
	check "postgres (merged): resources/read ?offset&length" cmp "$T/out/pgres.0" "$T/exp.pgres"
	check "postgres (merged): no step failed" \
	    test -z "$(printf '%s\n' "$out" | grep '"error":')"
else
	skip "postgres (merged): query result offload" "no PostgreSQL here ($(tail -n 1 "$T/pg.out" 2>/dev/null))"
fi

# --- audit ------------------------------------------------------------------------
expect_match "audit: the offload through the merged endpoint (id, size)" \
    "\"tool\":\"big\".*\"outcome\":\"ok\",\"offload\":\\{\"id\":\"$ID\",\"bytes\":$N\\}" \
    "$(cat "$T/audit.jsonl")"
expect_match "audit: a read through the merged endpoint (id, bytes read)" \
    "\"tool\":\"mcptun_read\".*\"offload\":\\{\"id\":\"$ID\",\"bytes\":20000\\}" \
    "$(cat "$T/audit.jsonl")"

san_check_logs
finish
