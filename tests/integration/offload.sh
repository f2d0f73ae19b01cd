#!/bin/sh
# Output offload through the whole tunnel, with the official SDK client
# (tests/node/offload_agent.mjs) -> relay -> link -> client -> a stdio
# server (tests/node/bigserver.mjs) whose "big" tool returns N bytes of
# numbered lines.  A result over the threshold comes back as a summary, a
# preview and a resource_link; mcptun_read (by offset, by lines), mcptun_grep
# and resources/read return exactly the bytes of the original (generated
# here by the same script), compared with tail/head/sed/grep; another
# session or agent is told "not found"; TTL and quota eviction; a result
# just under the threshold passes untouched, one just over is offloaded;
# the spool is 0700 and its files 0600; a spool open to others is refused.
# With PostgreSQL: a query result of several MB from the built-in adapter
# (a whole message, not streamed) is offloaded the same way, the SDK still
# accepts its cut-down structuredContent against the tool's outputSchema,
# and the stored text is byte for byte what the adapter sends unoffloaded.
# Prints (never asserts) the client's peak RSS while offloading 100 MB.
: "${MCPTUN_TOP:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$MCPTUN_TOP/tests/lib/common.sh"
. "$MCPTUN_TOP/tests/lib/certs.sh"
. "$MCPTUN_TOP/tests/lib/node.sh"
. "$MCPTUN_TOP/tests/lib/pg.sh"
. "$MCPTUN_TOP/tests/lib/tunnel.sh"

require_node "offload: node"
pg_try_start
tunnel_init
OTHER_TOKEN=agent-$(openssl rand -hex 16)
BIGSERVER=$NODE_DIR/bigserver.mjs
THRESHOLD=100000		# bytes: threshold_tokens 25000
HUGE=${OFFLOAD_HUGE_BYTES:-104857600}

write_relay_conf -a other "$OTHER_TOKEN" '["acme/*"]' - <<EOF
limits:
  request_timeout: 300s
EOF

mkdir -m 755 "$T/spool-open"
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
  ttl:
    command: node
    args: ["$BIGSERVER"]
    offload:
      dir: $T/spool-ttl
      ttl: 2s
      keep_after_session: false
  quota:
    command: node
    args: ["$BIGSERVER"]
    offload:
      dir: $T/spool-quota
      max_total_bytes: 5000000
      keep_after_session: false
  open:
    command: node
    args: ["$BIGSERVER"]
    offload:
      dir: $T/spool-open
EOF
if [ $PG_OK = 1 ]; then
	{
		pg_server_yaml shop "max_rows: 100000" "max_bytes: 64MiB"
		# The same database unoffloaded: what the adapter itself sends.
		pg_server_yaml shop_direct "max_rows: 100000" "max_bytes: 64MiB" \
		    "offload:" "  threshold_tokens: 0"
	} >>"$T/client.yaml"
fi

start_tunnel
CLIENT_PID=$(pid_of client)
mkdir "$T/out"

# oagent SERVER SCRIPT [OPTIONS...]: one agent session through the relay.
oagent() {
	_oa_srv=$1 _oa_script=$2
	shift 2
	node "$NODE_DIR/offload_agent.mjs" --url "$URL/$_oa_srv" \
	    --token "$AGENT_TOKEN" --ca "$CERTS/ca.crt" --out "$T/out" \
	    "$@" "$_oa_script"
}
# step N OUTPUT: the output line of step N.
step() { printf '%s\n' "$2" | grep "^{\"step\":$1,"; }
hwm() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status"; }

# --- memory: a 100 MB result ------------------------------------------------
before=$(hwm "$CLIENT_PID")
t0=$(date +%s.%N)
out=$(oagent big "[{\"op\":\"call\",\"name\":\"big\",\"args\":{\"bytes\":$HUGE},\"save\":\"huge\"},
 {\"op\":\"call\",\"name\":\"mcptun_grep\",\"args\":{\"id\":\"\$ID\",\"pattern\":\"^line 01600000 \"},\"save\":\"hugegrep\"}]" 2>"$T/huge.err")
t1=$(date +%s.%N)
after=$(hwm "$CLIENT_PID")
expect_match "100 MB result: a small answer with a resource_link" \
    "\"uri\":\"mcptun://offload/[0-9a-f]{32}\".*\"size\":$HUGE,\"type\":\"resource_link\"" \
    "$(step 1 "$out")"
expect_eq "100 MB result: grep finds line 1600000" \
    "1600000:$(node "$BIGSERVER" --line 1600000)" \
    "$(cat "$T/out/hugegrep.1" 2>/dev/null)"
# A figure, not a check: run.sh shows only ok/not ok lines, so it rides on one.
fig="client VmHWM ${before} kB before, ${after} kB after (+$((after - before)) kB) offloading a $HUGE-byte result ($(awk -v a="$after" -v h="$HUGE" 'BEGIN { printf "%.1f%%", a * 1024 * 100 / h }') of its size); $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s for the call and a grep over it"
echo "# memory: $fig"
ok "figure (not asserted): $fig"

# --- reading an offloaded output ----------------------------------------------
N=3000000
node "$BIGSERVER" --gen $N >"$T/exp"
out=$(oagent big "[
 {\"op\":\"call\",\"name\":\"big\",\"args\":{\"bytes\":$N},\"save\":\"r\"},
 {\"op\":\"call\",\"name\":\"mcptun_read\",\"args\":{\"id\":\"\$ID\",\"offset\":1000000,\"length\":20000},\"save\":\"off\"},
 {\"op\":\"call\",\"name\":\"mcptun_read\",\"args\":{\"id\":\"\$URI\",\"start_line\":20001,\"line_count\":150},\"save\":\"lines\"},
 {\"op\":\"call\",\"name\":\"mcptun_grep\",\"args\":{\"id\":\"\$ID\",\"pattern\":\"MATCHME\",\"context\":1,\"max_matches\":5},\"save\":\"grep\"},
 {\"op\":\"call\",\"name\":\"mcptun_grep\",\"args\":{\"id\":\"\$ID\",\"pattern\":\"value=4(2|3)[0-9]{3} \",\"max_matches\":7},\"save\":\"grep2\"},
 {\"op\":\"call\",\"name\":\"mcptun_outputs\",\"args\":{},\"save\":\"outs\"},
 {\"op\":\"read\",\"uri\":\"\$URI?offset=64&length=128\",\"save\":\"res\"},
 {\"op\":\"call\",\"name\":\"mcptun_read\",\"args\":{\"id\":\"\$ID\",\"offset\":2999990,\"length\":100},\"save\":\"tail\"},
 {\"op\":\"call\",\"name\":\"mcptun_read\",\"args\":{\"id\":\"\$ID\",\"start_line\":1,\"line_count\":100000},\"save\":\"capped\"},
 {\"op\":\"call\",\"name\":\"sized\",\"args\":{\"message_bytes\":$THRESHOLD},\"save\":\"under\"},
 {\"op\":\"call\",\"name\":\"sized\",\"args\":{\"message_bytes\":$((THRESHOLD + 1))},\"save\":\"over\"},
 {\"op\":\"call\",\"name\":\"mixed\",\"args\":{\"bytes\":500000},\"save\":\"mixed\"},
 {\"op\":\"listTools\"}]" 2>"$T/read.err")
printf '%s\n' "$out" >"$T/read.out"
ID=$(cat "$T/out/r.id" 2>/dev/null)
expect_match "3 MB result: summary, preview and resource_link" \
    "\"text\":\"The result of tool big was [^(]*\\($N bytes of text in 46875 lines\\).*mcptun://offload/$ID.*\"name\":\"mcptun-offload-$ID\",\"uri\":\"mcptun://offload/$ID\".*\"mimeType\":\"text/plain\",\"size\":$N,\"type\":\"resource_link\"" \
    "$(step 1 "$out")"
head -n 40 "$T/exp" >"$T/exp.preview"
check "preview: the first 40 lines" cmp "$T/out/r.1" "$T/exp.preview"
check "answer under the threshold" test "$(step 1 "$out" | wc -c)" -lt $THRESHOLD
tail -c +1000001 "$T/exp" | head -c 20000 >"$T/exp.off"
check "mcptun_read by offset: exact bytes" cmp "$T/out/off.1" "$T/exp.off"
expect_match "mcptun_read by offset: says where to continue" \
    "20000 bytes from offset 1000000 of $N\\. *Continue with offset=1020000\\." \
    "$(cat "$T/out/off.0" 2>/dev/null)"
sed -n '20001,20150p' "$T/exp" >"$T/exp.lines"
check "mcptun_read by lines (id as URI): exact lines" cmp "$T/out/lines.1" "$T/exp.lines"
grep -n -E -C1 -m5 MATCHME "$T/exp" >"$T/exp.grep"
check "mcptun_grep with context: as grep -n -C1 -m5" cmp "$T/out/grep.1" "$T/exp.grep"
grep -n -E -m7 'value=4(2|3)[0-9]{3} ' "$T/exp" >"$T/exp.grep2"
check "mcptun_grep extended regex: as grep -n -E -m7" cmp "$T/out/grep2.1" "$T/exp.grep2"
expect_match "mcptun_outputs lists it" \
    "\"id\":\"$ID\",\"uri\":\"mcptun://offload/$ID\",\"tool\":\"big\",\"bytes\":$N,\"lines\":46875" \
    "$(cat "$T/out/outs.1" 2>/dev/null)"
tail -c +65 "$T/exp" | head -c 128 >"$T/exp.res"
check "resources/read ?offset&length: exact bytes" cmp "$T/out/res.0" "$T/exp.res"
tail -c 10 "$T/exp" >"$T/exp.tail"
check "mcptun_read at the end: the last bytes" cmp "$T/out/tail.1" "$T/exp.tail"
capped=$(wc -c <"$T/out/capped.1" 2>/dev/null)
check "mcptun_read capped under the threshold, whole lines" sh -c \
    "[ ${capped:-0} -gt 0 ] && [ ${capped:-0} -lt $THRESHOLD ] && [ \$(( ${capped:-0} % 64 )) = 0 ]"
expect_match "mcptun_read capped: says where to continue" \
    "Continue with start_line=$(( ${capped:-0} / 64 + 1 ))\\." \
    "$(cat "$T/out/capped.0" 2>/dev/null)"
# The whole response line of "sized" is exactly the threshold: untouched.
under=$(step 10 "$out")
case $under in
*resource_link*) not_ok "a result of exactly the threshold passes untouched" ;;
*) if [ "$(wc -c <"$T/out/under.0")" -gt $((THRESHOLD - 100)) ] &&
      [ "$(tr -d 'a-z' <"$T/out/under.0" | wc -c)" = 0 ]; then
	ok "a result of exactly the threshold passes untouched"
   else
	not_ok "a result of exactly the threshold passes untouched" "$under"
   fi ;;
esac
expect_match "one byte more is offloaded" '"type":"resource_link"' \
    "$(step 11 "$out")"
mixed=$(step 12 "$out")
expect_match "non-text content is kept beside the stored text" \
    '"type":"image","data":"iVBORw0KGgo=","mimeType":"image/png"' "$mixed"
expect_match "structuredContent cut down to fit, scalars kept" \
    '"structuredContent":\{"rows":\[\{"n":0,.*"count":5000\}' "$mixed"
expect_match "other result members kept" '"x":\[\{"y":1\}\]' "$mixed"
tools=$(step 13 "$out")
expect_match "tools/list offers mcptun_read, mcptun_grep, mcptun_outputs" \
    '"name":"big".*"name":"mcptun_read".*"name":"mcptun_grep".*"name":"mcptun_outputs"' \
    "$tools"
check "no step failed" test -z "$(printf '%s\n' "$out" | grep '"error":')"

# --- the spool on disk --------------------------------------------------------
expect_eq "spool directory is 0700" 700 "$(stat -c %a "$T/spool")"
modes=$(find "$T/spool" -type f -exec stat -c %a {} + | sort -u | tr '\n' ' ')
expect_eq "spooled files are 0600" "600 " "$modes"
check "kept after the session (keep_after_session): the original bytes" \
    cmp "$T/spool/$ID.out" "$T/exp"
case $(ls "$T/spool") in
*"$ID.out"*) ok "file named by the unguessable id" ;;
*) not_ok "file named by the unguessable id" ;;
esac

# --- ownership ----------------------------------------------------------------
out=$(oagent big '[{"op":"call","name":"mcptun_read","args":{"id":"$ID"},"save":"other"},
 {"op":"read","uri":"mcptun://offload/$ID"}]' --var ID="$ID" 2>&1)
expect_match "another session: not found" \
    "No output $ID in this session.*\"isError\":true" "$(step 1 "$out")"
expect_match "another session: resources/read not found" \
    '"code":-32002,"message":"[^"]*Resource not found' "$(step 2 "$out")"
out=$(node "$NODE_DIR/offload_agent.mjs" --url "$URL/big" --token "$OTHER_TOKEN" \
    --ca "$CERTS/ca.crt" --out "$T/out" --var ID="$ID" \
    '[{"op":"call","name":"mcptun_grep","args":{"id":"$ID","pattern":"line"}}]' 2>&1)
expect_match "another agent: not found" "No output $ID.*\"isError\":true" \
    "$(step 1 "$out")"
if grep -q 'line 00000001' "$T/out/other.0" 2>/dev/null ||
    printf '%s' "$out" | grep -q 'line 00000001'; then
	not_ok "no data leaks to other sessions"
else
	ok "no data leaks to other sessions"
fi

# --- TTL ------------------------------------------------------------------------
out=$(oagent ttl '[{"op":"call","name":"big","args":{"bytes":300000},"save":"t"},
 {"op":"call","name":"mcptun_read","args":{"id":"$ID","length":64},"save":"t1"},
 {"op":"sleep","ms":3500},
 {"op":"call","name":"mcptun_read","args":{"id":"$ID","length":64},"save":"t2"}]' 2>&1)
expect_eq "TTL: readable before" "$(head -n 1 "$T/exp")" "$(cat "$T/out/t1.1" 2>/dev/null)"
expect_match "TTL: gone after" 'No output.*"isError":true' "$(step 4 "$out")"
check "TTL: the file was removed" wait_log "$T/client.log" \
    "output $(cat "$T/out/t.id" 2>/dev/null) \\(300000 bytes, tool big\\) removed: its TTL passed" 2
expect_eq "TTL: spool empty" "" "$(ls "$T/spool-ttl")"

# --- quota ------------------------------------------------------------------------
# (A result that turns out larger than the quota has evicted older
# outputs by the time that is known: the quota bounds the disk, always.)
out=$(oagent quota '[{"op":"call","name":"big","args":{"bytes":6000000}},
 {"op":"call","name":"big","args":{"bytes":3000000},"save":"qa"},
 {"op":"call","name":"big","args":{"bytes":3000000},"save":"qb"},
 {"op":"call","name":"mcptun_read","args":{"id":"$ID","length":64},"save":"qb1"},
 {"op":"call","name":"mcptun_outputs","args":{},"save":"qouts"},
 {"op":"sleep","ms":300}]' 2>&1)
QA=$(cat "$T/out/qa.id" 2>/dev/null)
QB=$(cat "$T/out/qb.id" 2>/dev/null)
check "quota: the oldest output was evicted" wait_log "$T/client.log" \
    "output $QA \\(3000000 bytes, tool big\\) removed: the spool quota needed room" 2
expect_eq "quota: the newer one still reads" "$(head -n 1 "$T/exp")" \
    "$(cat "$T/out/qb1.1" 2>/dev/null)"
expect_match "quota: one result larger than the quota is a clear error" \
    'larger than the offload quota \(5000000 bytes\), so it was not stored' \
    "$(step 1 "$out")"
expect_match "quota: only the newer output is listed" "\"id\":\"$QB\"" \
    "$(cat "$T/out/qouts.1" 2>/dev/null)"
case $(cat "$T/out/qouts.1" 2>/dev/null) in
*"$QA"*) not_ok "quota: the evicted output is not listed" ;;
*) ok "quota: the evicted output is not listed" ;;
esac
sleep 0.5
expect_eq "session ended: its outputs were removed" "" "$(ls "$T/spool-quota")"

# --- a spool directory open to others is refused ----------------------------------
out=$(oagent open '[{"op":"call","name":"big","args":{"bytes":300000},"save":"open"}]' 2>&1)
case $(step 1 "$out") in
*resource_link*) not_ok "spool 0755: not used" ;;
*) expect_eq "spool 0755: not used, the result passes as before" 300000 \
    "$(wc -c <"$T/out/open.0" 2>/dev/null)" ;;
esac
check "spool 0755: refused with a clear log line" wait_log "$T/client.log" \
    "spool directory $T/spool-open refused: group or others may use it \\(mode 0755\\); it must be 0700" 2

# --- postgres: a whole query result -------------------------------------------------
if [ $PG_OK = 1 ]; then
	SQL="SELECT id, kind, customer_id, payload, ts FROM events ORDER BY id"
	out=$(oagent shop_direct "[{\"op\":\"call\",\"name\":\"query\",\"args\":{\"sql\":\"$SQL\"},\"save\":\"pgorig\"}]" 2>&1)
	pgsize=$(wc -c <"$T/out/pgorig.0" 2>/dev/null || echo 0)
	check "postgres: the unoffloaded result is several MB" test "${pgsize:-0}" -gt 1000000
	out=$(oagent shop "[{\"op\":\"listTools\"},
	 {\"op\":\"call\",\"name\":\"query\",\"args\":{\"sql\":\"$SQL\"},\"save\":\"pg\"},
	 {\"op\":\"call\",\"name\":\"mcptun_read\",\"args\":{\"id\":\"\$ID\",\"start_line\":5000,\"line_count\":100},\"save\":\"pglines\"},
	 {\"op\":\"call\",\"name\":\"mcptun_read\",\"args\":{\"id\":\"\$ID\",\"offset\":123456,\"length\":7777},\"save\":\"pgoff\"},
	 {\"op\":\"call\",\"name\":\"mcptun_grep\",\"args\":{\"id\":\"\$ID\",\"pattern\":\"^ +77[0-9]{2} \",\"max_matches\":50,\"context\":2},\"save\":\"pggrep\"}]" 2>&1)
	printf '%s\n' "$out" >"$T/pg.steps"
	PGID=$(cat "$T/out/pg.id" 2>/dev/null)
	expect_match "postgres: a small answer with a resource_link (SDK checked outputSchema)" \
	    "\"size\":$pgsize,\"type\":\"resource_link\".*\"structuredContent\":\\{\"columns\":\\[" \
	    "$(step 2 "$out")"
	check "postgres: stored text is what the adapter sends" \
	    cmp "$T/spool/$PGID.out" "$T/out/pgorig.0"
	sed -n '5000,5099p' "$T/out/pgorig.0" >"$T/exp.pglines"
	check "postgres: mcptun_read by lines" cmp "$T/out/pglines.1" "$T/exp.pglines"
	tail -c +123457 "$T/out/pgorig.0" | head -c 7777 >"$T/exp.pgoff"
	check "postgres: mcptun_read by offset" cmp "$T/out/pgoff.1" "$T/exp.pgoff"
	grep -n -E -C2 -m50 '^ +77[0-9]{2} ' "$T/out/pgorig.0" >"$T/exp.pggrep"
	check "postgres: mcptun_grep" cmp "$T/out/pggrep.1" "$T/exp.pggrep"
	check "postgres: no step failed" test -z "$(printf '%s\n' "$out" | grep '"error":')"
else
	skip "postgres: query result offload" "no PostgreSQL here ($(tail -n 1 "$T/pg.out" 2>/dev/null))"
fi

# --- audit ----------------------------------------------------------------------
expect_match "audit: the offload (id, size)" \
    "\"tool\":\"big\".*\"outcome\":\"ok\",\"offload\":\\{\"id\":\"$ID\",\"bytes\":$N\\}" \
    "$(cat "$T/audit.jsonl")"
expect_match "audit: each read (id, bytes read)" \
    "\"tool\":\"mcptun_read\".*\"offload\":\\{\"id\":\"$ID\",\"bytes\":20000\\}" \
    "$(cat "$T/audit.jsonl")"
if grep -q 'line 0000' "$T/audit.jsonl"; then
	not_ok "audit: no result data"
else
	ok "audit: no result data"
fi

san_check_logs
finish
