#!/bin/sh
# Streams over the link (issue: the tunnel link): thousands of short
# sessions and a few large transfers interleave with byte-exact payloads;
# a link that drops and comes back loses no call (resumption); GOAWAY at
# relay shutdown.
: "${MCPTUN_TOP:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$MCPTUN_TOP/tests/lib/common.sh"
. "$MCPTUN_TOP/tests/lib/certs.sh"
. "$MCPTUN_TOP/tests/lib/node.sh"
. "$MCPTUN_TOP/tests/lib/tunnel.sh"
require_node "streams"

ECHO=$MCPTUN_TOP/$B/tests/tools/echo_upstream
[ -x "$ECHO" ] || { not_ok "echo upstream built" "$ECHO missing"; finish; }

tunnel_init
PPORT=$(free_port)
write_relay_conf - <<EOF
limits:
  sessions_per_agent: 4000
  sessions_per_tunnel: 4000
  streams_per_link: 4096
  resume_grace: 20s
  ping_interval: 5s
  ping_timeout: 5s
EOF
# The client reaches the relay through a TCP proxy the test can kill.
write_client_conf -p "$PPORT" <<EOF
limits:
  reconnect_min: 200ms
  reconnect_max: 1s
  resume_grace: 20s
# The 4 MiB blobs must cross the link, not be offloaded (offload.sh).
offload:
  threshold_tokens: 0
servers:
  echo:
    command: $ECHO
    max_sessions: 4000
EOF

start_relay
start_bg proxy node "$MCPTUN_TOP/tests/node/tcp-proxy.mjs" "$PPORT" "$PORT"
wait_port "$PPORT" 10
start_client
wait_link "link up" 10

# --- many short streams and a few large ones -----------------------------
NSHORT=2000
[ "$SAN" = 1 ] && NSHORT=500
out=$(NODE_EXTRA_CA_CERTS=$CERTS/ca.crt timeout $((300 * TSCALE)) node \
    "$NODE_DIR/stress.mjs" "$URL/echo" "$AGENT_TOKEN" "$NSHORT" 3 16 4194304 2>&1); rc=$?
echo "# stress: $out"
expect_eq "$NSHORT short sessions and 3x3 4 MiB transfers, byte-exact" 0 "$rc"
expect_match "every short echo matched" "\"short_ok\":$NSHORT,\"short_bad\":0" "$out"
expect_match "every 4 MiB blob matched" '"large_ok":9,"large_bad":0' "$out"
# Only this client's children count: other runs on the machine may have
# echo_upstream processes of their own.  (pgrep -x matches the process
# name, not this shell's command line.)
CPID=$(pid_of client)
check "every upstream process was reaped" sh -c \
    "sleep 3; ! pgrep -P $CPID -x echo_upstream >/dev/null || { sleep 5; ! pgrep -P $CPID -x echo_upstream >/dev/null; }"

# --- resumption: a dropped link loses no call ------------------------------
# The agent calls, waits while the link is cut, calls during the gap, and
# calls again after it is back; all three must be answered.  It goes on
# when this script says the link is down (no guessed sleeps).
cat >"$T/resume.json" <<EOF
[
 {"op": "callTool", "name": "echo", "args": {"message": "before"}, "label": "before"},
 {"op": "waitFile", "path": "$T/link.down", "ms": $((60000 * TSCALE))},
 {"op": "callTool", "name": "echo", "args": {"message": "during"}, "label": "during"},
 {"op": "callTool", "name": "echo", "args": {"message": "after"}, "label": "after"}
]
EOF
via_relay echo "$T/resume.json" --timeout 30000 >"$T/resume.out" 2>"$T/resume.err" &
apid=$!
wait_log "$T/resume.out" '"label":"before"' 30 || true
stop_bg proxy KILL
check "client sees the link drop" wait_log "$T/client.log" 'link to .* closed' 5
: >"$T/link.down"
sleep 2.5	# the "during" call is sent while the link is down
start_bg proxy2 node "$MCPTUN_TOP/tests/node/tcp-proxy.mjs" "$PPORT" "$PORT"
wait_port "$PPORT" 10
wait $apid; rc=$?
cat "$T/resume.out" | sed 's/^/# /'
expect_eq "agent session survives the drop" 0 "$rc"
for w in before during after; do
	expect_match "call '$w' answered" "\"label\":\"$w\".*\"text\":\"$w\"" \
	    "$(grep "\"label\":\"$w\"" "$T/resume.out")"
done
check "relay logs the resumed session" \
    wait_log "$T/relay.log" 'link up, .* 1 session\(s\) resumed' 10

# --- a client that shuts down ends its sessions at once (no grace wait) -----
# The second call goes once the client is stopped (no guessed sleeps).
via_relay echo '[{"op":"callTool","name":"echo","args":{"message":"x"}},{"op":"waitFile","path":"'"$T/client.stopped"'","ms":'"$((60000 * TSCALE))"'},{"op":"callTool","name":"echo","args":{"message":"y"}}]' \
    --timeout 30000 >"$T/shut.out" 2>&1 &
apid=$!
wait_log "$T/shut.out" '^\{"step":1,' 30 || true
stop_bg client
t0=$(date +%s)
: >"$T/client.stopped"
wait $apid
t1=$(date +%s)
check "relay ends the sessions of a client that shut down" \
    grep -q 'the tunnel.s client shut down' "$T/relay.log"
if [ $((t1 - t0)) -lt 15 ] && grep -q '"step":3.*"error"' "$T/shut.out"; then
	ok "the agent's next call fails at once, not after resume_grace"
else
	not_ok "the agent's next call fails at once, not after resume_grace" \
	    "$((t1 - t0)) s: $(tail -n 2 "$T/shut.out")"
fi

# --- GOAWAY: relay shutdown tells the client -------------------------------
start_client client3
check "a new client links" wait_log "$T/client3.log" 'link to .* up' 10
stop_bg relay
check "client hears GOAWAY on relay shutdown" grep -q 'relay going away' "$T/client3.log"

san_check_logs
finish
