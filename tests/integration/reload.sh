#!/bin/sh
# Changing the allowlist while everything runs (issue 6), seen by the
# official SDK client holding sessions open (tests/node/session.mjs, one
# step at a time through a FIFO while this script edits YAML and sends
# signals):
#   - on the merged endpoint /mcp/acme: a server added by a reload shows
#     up (list_changed arrives, its tool is called in the same session);
#     a tool denied by an edit of the file (no signal: the file watch)
#     disappears and is refused; a removed server's tools go;
#   - a single-server session of a removed server ends with -32004 and
#     the relay answers 404 afterwards;
#   - a long call on an unchanged server, started before the reloads,
#     completes; changed connection settings leave open sessions on their
#     old upstream while new sessions get the new one;
#   - a broken file changes nothing and its position is logged;
#   - 50 reloads in a row under a loop of calls drop no call (and, with
#     SAN=1, leak nothing);
#   - the relay's reload: a revoked agent token is refused at once, its
#     sessions end, a new token works, all without a restart.
: "${MCPTUN_TOP:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$MCPTUN_TOP/tests/lib/common.sh"
. "$MCPTUN_TOP/tests/lib/certs.sh"
. "$MCPTUN_TOP/tests/lib/node.sh"
. "$MCPTUN_TOP/tests/lib/tunnel.sh"

require_node "reload: node"
tunnel_init
# A session agent that died must fail a write, not kill this script.
trap '' PIPE

CLAUDE=$AGENT_TOKEN
BOB=agent-$(openssl rand -hex 16)
CAROL=agent-$(openssl rand -hex 16)

# relay_yaml WHO: the relay's config with agent claude plus bob
# (acme/everything) or carol, written next to the file and renamed over it.
relay_yaml() {
	case $1 in
	bob) write_relay_conf -o "$T/relay.yaml.new" \
	    -a bob "$BOB" '["acme/everything"]' ;;
	carol) write_relay_conf -o "$T/relay.yaml.new" \
	    -a carol "$CAROL" '["acme/*"]' ;;
	esac
	mv "$T/relay.yaml.new" "$T/relay.yaml"
}

# A tiny stdio MCP server (one tool, "hello"), quick to start and stop.
cat >"$T/mini.py" <<'EOF'
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if "id" not in m or "method" not in m:
        continue
    meth, r = m["method"], None
    if meth == "initialize":
        r = {"protocolVersion": m.get("params", {}).get("protocolVersion",
             "2025-06-18"), "capabilities": {"tools": {}},
             "serverInfo": {"name": "mini", "version": "1"}}
    elif meth == "tools/list":
        r = {"tools": [{"name": "hello", "description": "Says hello",
             "inputSchema": {"type": "object"}}]}
    elif meth == "tools/call":
        r = {"content": [{"type": "text", "text": "hello from " + sys.argv[1]}]}
    elif meth == "ping":
        r = {}
    if r is None:
        out = {"jsonrpc": "2.0", "id": m["id"],
               "error": {"code": -32601, "message": "no " + meth}}
    else:
        out = {"jsonrpc": "2.0", "id": m["id"], "result": r}
    print(json.dumps(out), flush=True)
EOF

# client_yaml: the allowlist from the variables below, written next to
# the file and renamed over it (as editors do).
EXTRA=0 DOOMED=1 OPS_DENY='[]' OPS_FOO=one MINI2=0 BROKEN=0
client_yaml() {
	{
		cat <<EOF
audit_log: $T/audit.jsonl
limits:
  request_timeout: 60s
servers:
  everything:
    command: node
    args: ["$EVERYTHING_JS", "stdio"]
  ops:
    command: node
    args: ["$EVERYTHING_JS", "stdio"]
    env:
      FOO: $OPS_FOO
    tools:
      allow: ["echo", "get-sum", "get-env"]
      deny: $OPS_DENY
EOF
		[ "$DOOMED" = 1 ] && cat <<EOF
  doomed:
    command: node
    args: ["$EVERYTHING_JS", "stdio"]
EOF
		[ "$EXTRA" = 1 ] && cat <<EOF
  extra:
    command: python3
    args: ["-u", "$T/mini.py", "extra"]
EOF
		[ "$MINI2" = 1 ] && cat <<EOF
  mini2:
    command: python3
    args: ["-u", "$T/mini.py", "mini2"]
EOF
		[ "$BROKEN" = 1 ] && cat <<EOF
  broken:
    comand: nothing
EOF
	} | write_client_conf -o "$T/client.yaml.new"
	mv "$T/client.yaml.new" "$T/client.yaml"
}

# wait_count FILE REGEX N [TIMEOUT]: until FILE has at least N matching lines.
wait_count() {
	_wc_end=$(( $(date +%s) + $(awk -v t="$(_scale "${4:-15}")" 'BEGIN { printf "%d", t + 0.999 }') ))
	while :; do
		[ "$(grep -Ec -- "$2" "$1" 2>/dev/null || echo 0)" -ge "$3" ] && return 0
		[ "$(date +%s)" -ge "$_wc_end" ] && return 1
		sleep 0.05
	done
}
count() { grep -Ec -- "$2" "$1" 2>/dev/null || true; }

# sess_start NAME FD URL TOKEN: a session.mjs agent reading steps from the
# FIFO $T/NAME.in, kept open on file descriptor FD (3..9).  Step numbers
# are counted in $T/NAME.n (the helpers run in command substitutions).
sess_start() {
	mkfifo "$T/$1.in"
	start_bg "$1" node "$NODE_DIR/session.mjs" --url "$3" --token "$4" \
	    --ca "$CERTS/ca.crt" --timeout $((60000 * TSCALE)) "$T/$1.in"
	eval "exec $2>\"\$T/\$1.in\""
	echo "$2 0" >"$T/$1.n"
}
# sess_send NAME STEP: sends one step; sets STEP_N to its number.
sess_send() {
	read -r _ss_fd STEP_N <"$T/$1.n"
	STEP_N=$((STEP_N + 1))
	echo "$_ss_fd $STEP_N" >"$T/$1.n"
	eval "printf '%s\n' \"\$2\" >&$_ss_fd" 2>/dev/null
}
# sess_wait NAME N [TIMEOUT]: prints the output line of step N.
sess_wait() {
	wait_log "$T/$1.log" "^\\{\"step\":$2," "${3:-30}" || true
	grep "^{\"step\":$2," "$T/$1.log" | head -n 1
}
# sess NAME STEP [TIMEOUT]: sends a step and prints its output line.
sess() {
	sess_send "$1" "$2"
	sess_wait "$1" "$STEP_N" "$3"
}
sess_end() {
	read -r _se_fd _se_n <"$T/$1.n"
	eval "exec $_se_fd>&-"
	wait_log "$T/$1.log" '"event":"end"' 15 || true
}

relay_yaml "bob"
client_yaml
start_tunnel
CPID=$(pid_of client)
RPID=$(pid_of relay)
hup_client() {
	_hc_n=$(count "$T/client.log" 'reload \(|reload .* failed')
	kill -HUP "$CPID"
	wait_count "$T/client.log" 'reload \(|reload .* failed' $((_hc_n + 1)) 20
}

# --- a merged session and a single-server one ---------------------------
sess_start S 3 "$URL" "$CLAUDE"
sess_start D 4 "$URL/doomed" "$CLAUDE"
if wait_log "$T/S.log" '"event":"connected".*"name":"mcptun-merged"' 40 &&
    wait_log "$T/D.log" '"event":"connected"' 40; then
	ok "SDK sessions on the merged endpoint and on doomed"
else
	not_ok "SDK sessions on the merged endpoint and on doomed"
	finish
fi
expect_match "merged endpoint declares tools.listChanged" \
    '"tools":\{"listChanged":true\}' "$(grep '"event":"connected"' "$T/S.log")"
out=$(sess S '{"op":"listTools"}')
expect_match "merged tools/list has every server's tools" \
    '"doomed_echo".*"everything_echo".*"ops_echo".*"mcptun_tools"' "$out"
case $out in
*'"ops_get-tiny-image"'*) not_ok "merged tools/list applies ops' filter" ;;
*) ok "merged tools/list applies ops' filter" ;;
esac
out=$(sess S '{"op":"callTool","name":"ops_get-env"}')
expect_match "ops runs with FOO=one" 'FOO.{0,6}one' "$out"

# Calls started before the reloads: one of ~8 s on an unchanged server
# through the merged session, and one on doomed (which goes away) that
# must outlast the reloads up to doomed's removal, however slow the
# machine (and under the agent's request timeout, 60 s times TSCALE).
sess_send S '{"op":"callToolWithProgress","async":true,"label":"long","name":"everything_trigger-long-running-operation","args":{"duration":8,"steps":8}}'
LONG_N=$STEP_N
sess_send D '{"op":"callTool","async":true,"name":"trigger-long-running-operation","args":{"duration":'"$((50 * TSCALE))"',"steps":5}}'
DOOMED_N=$STEP_N
sleep 1

# --- add a server -----------------------------------------------------------
notes=$(count "$T/S.log" 'notifications/tools/list_changed')
EXTRA=1 client_yaml
hup_client
expect_match "one reload line: added extra" \
    'reload \(SIGHUP\): added extra; removed -; tools changed -; settings changed -; [0-9]+ session\(s\) affected' \
    "$(grep 'reload (' "$T/client.log" | tail -n 1)"
if wait_count "$T/S.log" 'notifications/tools/list_changed' $((notes + 1)) 20; then
	ok "added server: list_changed reaches the SDK client"
else
	not_ok "added server: list_changed reaches the SDK client"
fi
out=$(sess S '{"op":"listTools"}')
expect_match "added server's tool is listed" '"name":"extra_hello"' "$out"
out=$(sess S '{"op":"callTool","name":"extra_hello"}')
expect_match "added server's tool is called in the same session" \
    'hello from extra' "$out"

# --- deny a tool and change settings: by editing the file, no signal -----
notes=$(count "$T/S.log" 'notifications/tools/list_changed')
n=$(count "$T/client.log" 'reload \(file changed\)')
EXTRA=1 OPS_DENY='["echo"]' OPS_FOO=two client_yaml
if wait_count "$T/client.log" 'reload \(file changed\)' $((n + 1)) 10; then
	ok "the file watch reloads an edited allowlist"
else
	not_ok "the file watch reloads an edited allowlist"
fi
expect_match "one reload line: ops' tools and settings changed" \
    'reload \(file changed\): added -; removed -; tools changed ops; settings changed ops \(open sessions keep their old upstream until they end, new ones use the new settings\); [0-9]+ session\(s\) affected' \
    "$(grep 'reload (' "$T/client.log" | tail -n 1)"
if wait_count "$T/S.log" 'notifications/tools/list_changed' $((notes + 1)) 10; then
	ok "denied tool: list_changed reaches the SDK client"
else
	not_ok "denied tool: list_changed reaches the SDK client"
fi
out=$(sess S '{"op":"listTools"}')
case $out in
*'"ops_echo"'*) not_ok "denied tool disappears from tools/list" "$out" ;;
*'"ops_get-sum"'*) ok "denied tool disappears from tools/list" ;;
*) not_ok "denied tool disappears from tools/list" "$out" ;;
esac
out=$(sess S '{"op":"callTool","name":"ops_echo","args":{"message":"x"}}')
expect_match "denied tool is refused with -32003" \
    '"code":-32003.*tool echo is not allowed on server ops' "$out"
out=$(sess S '{"op":"callTool","name":"ops_get-env"}')
expect_match "open session keeps its old upstream (FOO=one)" \
    'FOO.{0,6}one' "$out"
out=$(agent --url "$URL" --token "$CLAUDE" --ca "$CERTS/ca.crt" \
    '[{"op":"callTool","name":"ops_get-env"},{"op":"close"}]' 2>&1)
expect_match "a new session gets the new settings (FOO=two)" \
    'FOO.{0,6}two' "$out"

# --- remove a server ------------------------------------------------------
notes=$(count "$T/S.log" 'notifications/tools/list_changed')
EXTRA=1 OPS_DENY='["echo"]' OPS_FOO=two DOOMED=0 client_yaml
hup_client
expect_match "one reload line: removed doomed, sessions counted" \
    'reload \(SIGHUP\): added -; removed doomed; tools changed -; settings changed -; [2-9] session\(s\) affected' \
    "$(grep 'reload (' "$T/client.log" | tail -n 1)"
out=$(sess_wait D "$DOOMED_N" 30)
expect_match "removed server: its call ends with -32004 and says why" \
    '"code":-32004,"message":"(MCP error -32004: )?server doomed was removed from the allowlist"' \
    "$out"
out=$(sess D '{"op":"ping"}')
expect_match "removed server: the relay answers 404 afterwards" \
    '"error".*(404|Session not found|ended)' "$out"
if wait_count "$T/S.log" 'notifications/tools/list_changed' $((notes + 1)) 10; then
	ok "removed server: list_changed on the merged session"
else
	not_ok "removed server: list_changed on the merged session"
fi
out=$(sess S '{"op":"listTools"}')
case $out in
*'"doomed_'*) not_ok "removed server's tools are gone" ;;
*'"everything_echo"'*) ok "removed server's tools are gone" ;;
*) not_ok "removed server's tools are gone" "$out" ;;
esac
out=$(sess S '{"op":"callTool","name":"doomed_echo","args":{"message":"x"}}')
expect_match "a call to a removed server's tool is refused" \
    '"error".*(unknown tool doomed_echo|doomed)' "$out"

# --- broken YAML -------------------------------------------------------------
EXTRA=1 OPS_DENY='["echo"]' OPS_FOO=two DOOMED=0 BROKEN=1 client_yaml
hup_client
line=$(grep -n 'comand:' "$T/client.yaml" | cut -d: -f1)
expect_match "broken file: the error has file:line:col" \
    "client\\.yaml:$line:5: .*comand" "$(cat "$T/client.log")"
expect_match "broken file: the running allowlist is kept" \
    'reload \(SIGHUP\) of .* failed; keeping the running allowlist' \
    "$(cat "$T/client.log")"
out=$(sess S '{"op":"listTools"}')
expect_match "broken file: tools unchanged" \
    '"everything_echo".*"extra_hello"' "$out"
out=$(sess S '{"op":"callTool","name":"extra_hello"}')
expect_match "broken file: calls still work" 'hello from extra' "$out"

# --- the long call on the unchanged server ------------------------------------
out=$(sess_wait S "$LONG_N" 20)
expect_match "long call started before the reloads completes normally" \
    '"label":"long","result":\{"result":\{"content":\[\{"type":"text","text":"Long running operation completed.*"progress":8' \
    "$out"

# --- 50 reloads under load --------------------------------------------------
EXTRA=1 OPS_DENY='["echo"]' OPS_FOO=two DOOMED=0 BROKEN=0 client_yaml
hup_client
sess_start L 5 "$URL/everything" "$CLAUDE"
wait_log "$T/L.log" '"event":"connected"' 40 || not_ok "load session on everything"
sess_send S '{"op":"loop","async":true,"name":"everything_echo","args":{"message":"m"},"count":300,"pauseMs":5}'
LOOP_S=$STEP_N
sess_send L '{"op":"loop","async":true,"name":"echo","args":{"message":"s"},"count":300,"pauseMs":5}'
LOOP_L=$STEP_N
n0=$(count "$T/client.log" 'reload \(')
i=0
while [ $i -lt 50 ]; do
	MINI2=$((i % 2)) EXTRA=1 OPS_DENY="$([ $((i % 3)) = 0 ] && echo '[]' || echo '["echo"]')" \
	    OPS_FOO=two DOOMED=0 client_yaml
	kill -HUP "$CPID"
	sleep 0.1
	i=$((i + 1))
done
MINI2=0 EXTRA=1 OPS_DENY='["echo"]' OPS_FOO=two DOOMED=0 client_yaml
hup_client
n1=$(count "$T/client.log" 'reload \(')
if [ $((n1 - n0)) -ge 50 ]; then
	ok "50 reloads in a row ($((n1 - n0)) reload lines)"
else
	not_ok "50 reloads in a row" "only $((n1 - n0)) reload lines"
fi
out=$(sess_wait S "$LOOP_S" 120)
expect_match "under reloads: no call dropped on the merged session" \
    '"result":\{"ok":300,"failed":\[\]\}' "$out"
out=$(sess_wait L "$LOOP_L" 120)
expect_match "under reloads: no call dropped on a single-server session" \
    '"result":\{"ok":300,"failed":\[\]\}' "$out"
out=$(sess S '{"op":"callTool","name":"everything_get-sum","args":{"a":20,"b":22}}')
expect_match "merged session still answers after the reloads" \
    'The sum of 20 and 22 is 42' "$out"
kids=$(pgrep -P "$CPID" -f 'mini.py mini2' | wc -l)
expect_eq "no mini2 process left after the reloads" 0 "$kids"
if kill -0 "$CPID" 2>/dev/null; then ok "client survived"; else not_ok "client survived"; fi

# --- relay: revoke a token, add one, no restart ------------------------------
sess_start B 6 "$URL/everything" "$BOB"
wait_log "$T/B.log" '"event":"connected"' 40 || not_ok "bob's session"
out=$(sess B '{"op":"callTool","name":"echo","args":{"message":"bob"}}')
expect_match "bob can call before the reload" 'Echo: bob' "$out"
out=$(agent --url "$URL/everything" --token "$CAROL" --ca "$CERTS/ca.crt" \
    '[{"op":"ping"}]' 2>&1)
expect_match "carol is refused before the reload" '401|Unauthorized' "$out"
# A broken relay file first: nothing changes, the position is logged.
cp "$T/relay.yaml" "$T/relay.yaml.good"
printf 'agents:\n  eve:\n    token_sha256: nothex\n' >>"$T/relay.yaml"
n=$(count "$T/relay.log" 'reload \(SIGHUP\)')
kill -HUP "$RPID"
wait_count "$T/relay.log" 'reload \(SIGHUP\)' $((n + 1)) 10 ||
    not_ok "relay reloads on SIGHUP"
expect_match "relay: a broken file is refused with file:line:col" \
    'relay\.yaml:[0-9]+:[0-9]+: ' "$(cat "$T/relay.log")"
expect_match "relay: ... and the running configuration kept" \
    'reload \(SIGHUP\) of .* failed; keeping the running configuration' \
    "$(cat "$T/relay.log")"
out=$(sess B '{"op":"callTool","name":"echo","args":{"message":"bob2"}}')
expect_match "relay: bob still works after the broken file" 'Echo: bob2' "$out"
relay_yaml "carol"
n=$(count "$T/relay.log" 'reload \(SIGHUP\)')
kill -HUP "$RPID"
wait_count "$T/relay.log" 'reload \(SIGHUP\)' $((n + 1)) 10 ||
    not_ok "relay reloads on SIGHUP"
expect_match "relay: one reload line says what changed" \
    'reload \(SIGHUP\): tunnels added -, removed -; agents added carol, removed bob, changed -; 1 session\(s\) of removed or narrowed agents ended' \
    "$(grep 'reload (SIGHUP):' "$T/relay.log" | tail -n 1)"
expect_match "relay: bob's session ended" \
    'agent bob.*ended: the agent was removed|session .* \(agent bob.*ended: the agent was removed' \
    "$(cat "$T/relay.log")"
out=$(sess B '{"op":"callTool","name":"echo","args":{"message":"bob"}}')
expect_match "revoked token is refused at its next request" \
    '401|Unauthorized|not valid' "$out"
out=$(agent --url "$URL/everything" --token "$CAROL" --ca "$CERTS/ca.crt" \
    '[{"op":"callTool","name":"echo","args":{"message":"carol"}},{"op":"close"}]' 2>&1)
expect_match "new token works without a restart" 'Echo: carol' "$out"
out=$(sess S '{"op":"callTool","name":"everything_echo","args":{"message":"still"}}')
expect_match "claude's merged session survives the relay reload" \
    'Echo: still' "$out"

sess_end S
sess_end D
sess_end L
sess_end B
tokens_unlogged "token never logged" "$TOKEN"
san_check_logs
finish
