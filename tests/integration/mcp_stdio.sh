#!/bin/sh
# A stdio MCP server through the whole tunnel: the official SDK client
# (agent.mjs) -> relay (Streamable HTTP) -> WSS link -> client -> the
# reference server-everything spawned over stdio, with answers compared
# to the same server reached directly.  Then the client's policy and
# failure handling seen from the agent: tool filters on tools/list and
# tools/call, an unknown server, a command that does not exist, a server
# that exits mid-session, one that never answers, the session cap, the
# audit log, the bubblewrap sandbox, and no process left behind.
: "${MCPTUN_TOP:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$MCPTUN_TOP/tests/lib/common.sh"
. "$MCPTUN_TOP/tests/lib/certs.sh"
. "$MCPTUN_TOP/tests/lib/node.sh"
. "$MCPTUN_TOP/tests/lib/tunnel.sh"

require_node "mcp_stdio: node"
tunnel_init
# The client's request_timeout: short, so the silent server's -32002 comes
# quickly; scaled, so a slow machine's real servers still initialize.
RT=$((4 * TSCALE))
write_relay_conf - <<EOF
limits:
  request_timeout: 30s
EOF

BWRAP_OK=0
if /usr/bin/bwrap --ro-bind / / --dev /dev --proc /proc --unshare-all \
    --die-with-parent -- /bin/true >/dev/null 2>&1; then
	BWRAP_OK=1
fi

write_client_conf <<EOF
audit_log: $T/audit.jsonl
limits:
  request_timeout: ${RT}s
servers:
  everything:
    command: node
    args: ["$EVERYTHING_JS", "stdio"]
    # No mcptun_* tools in its list, so the answers diff clean against
    # the direct ones (tests/integration/offload.sh covers offload).
    offload:
      threshold_tokens: 0
  limited:
    command: node
    args: ["$EVERYTHING_JS", "stdio"]
    max_sessions: 1
    tools:
      allow: ["echo", "get-*"]
      deny: ["get-env"]
  crashy:
    command: sh
    args: ["-c", "read line; echo 'crashing now' >&2; exit 3"]
  silent:
    command: sh
    args: ["-c", "while read line; do :; done"]
  missing:
    command: mcptun-no-such-command
EOF
if [ $BWRAP_OK = 1 ]; then
	cat >>"$T/client.yaml" <<EOF
  boxed:
    command: node
    args: ["$EVERYTHING_JS", "stdio"]
    sandbox:
      enabled: true
EOF
fi

start_tunnel
CLIENT_PID=$(pid_of client)

# --- the same answers as the server reached directly ------------------------
script='[{"op":"listTools"},
 {"op":"callTool","name":"echo","args":{"message":"hello through the tunnel"}},
 {"op":"callTool","name":"get-sum","args":{"a":2,"b":40}},
 {"op":"listResources"},
 {"op":"readResource","uri":"demo://resource/static/document/architecture.md"},
 {"op":"listPrompts"},
 {"op":"getPrompt","name":"simple-prompt","args":{}},
 {"op":"callToolWithProgress","name":"trigger-long-running-operation","args":{"duration":1,"steps":3}},
 {"op":"sampling","prompt":"hi","text":"fixed answer"},
 {"op":"ping"},
 {"op":"close"}]'
if agent --stdio "$EVERYTHING_STDIO" --quiet-stderr --normalize "$script" \
    >"$T/direct.out" 2>"$T/direct.err"; then
	ok "direct stdio session"
else
	not_ok "direct stdio session"; cat "$T/direct.out" "$T/direct.err"
fi
if via_relay everything "$script" --normalize >"$T/tunnel.out" 2>"$T/tunnel.err"; then
	ok "session through the tunnel"
else
	not_ok "session through the tunnel"; cat "$T/tunnel.out" "$T/tunnel.err"
fi
if diff "$T/direct.out" "$T/tunnel.out" >"$T/diff.out"; then
	ok "tunnel answers equal the direct ones"
else
	not_ok "tunnel answers equal the direct ones"; head -n 40 "$T/diff.out"
fi
expect_eq "echo came back" 1 \
    "$(grep -c 'hello through the tunnel' "$T/tunnel.out")"

# --- tool filters -----------------------------------------------------------
out=$(via_relay limited '[{"op":"listTools"},{"op":"callTool","name":"echo","args":{"message":"x"}},{"op":"callTool","name":"get-tiny-image","args":{}},{"op":"callTool","name":"get-env","args":{}},{"op":"callTool","name":"trigger-long-running-operation","args":{"duration":1,"steps":1}},{"op":"close"}]' 2>"$T/limited.err")
tools=$(printf '%s\n' "$out" | grep '"step":1,')
expect_match "tools/list keeps allowed tools" '"name":"echo".*"name":"get-sum"|"name":"get-sum".*"name":"echo"' "$tools"
case $tools in
*'"name":"get-env"'*|*'"name":"trigger-'*) not_ok "tools/list hides denied and unlisted tools" "$tools" ;;
*) ok "tools/list hides denied and unlisted tools" ;;
esac
expect_match "allowed call works" '"step":2,"op":"callTool","result"' "$out"
expect_match "allowed glob works" '"step":3,"op":"callTool","result"' "$out"
expect_match "denied tool is refused with -32003" \
    '"step":4,.*"code":-32003,.*tool get-env is not allowed on server limited' "$out"
expect_match "unlisted tool is refused with -32003" \
    '"step":5,.*"code":-32003,.*tool trigger-long-running-operation is not allowed on server limited' "$out"

# --- refusals and failures --------------------------------------------------
# The relay refuses names outside the client's catalog; the client's own
# refusal (a relay that asks anyway) is in tests/unit/test_session.c.
out=$(via_relay nope '[{"op":"ping"}]' 2>&1)
expect_match "unknown server is refused" 'no server \\"nope\\"|unknown server nope' "$out"
out=$(via_relay missing '[{"op":"ping"}]' 2>&1)
expect_match "missing command: the agent reads why" \
    'cannot run mcptun-no-such-command: No such file or directory' "$out"
out=$(via_relay crashy '[{"op":"ping"}]' 2>&1)
expect_match "server exiting mid-session: the agent reads why" \
    'server crashy exited with status 3' "$out"
check "its stderr reaches the log, tagged" \
    wait_log "$T/client.log" '\[crashy/[0-9]+\] crashing now' 5
out=$(via_relay silent '[{"op":"ping"}]' --timeout $(( (RT + 16) * 1000 )) 2>&1)
expect_match "server that never answers: -32002 after request_timeout" \
    "server silent did not answer initialize within ($RT s|${RT}000 ms)" "$out"

# max_sessions: 1 -- a second concurrent session is refused.  The first
# holds its session until this script says so (no guessed sleeps).
via_relay limited '[{"op":"waitFile","path":"'"$T/hold.done"'","ms":'"$((60000 * TSCALE))"'},{"op":"close"}]' \
    >"$T/hold.out" 2>&1 &
holder=$!
wait_log "$T/hold.out" '^\{"step":0,"op":"connect","result"' 30 ||
    not_ok "the first session of limited opens"
out=$(via_relay limited '[{"op":"ping"}]' 2>&1)
: >"$T/hold.done"
expect_match "session cap per server" 'limit of 1 sessions' "$out"
wait $holder

# --- sandbox ----------------------------------------------------------------
if [ $BWRAP_OK = 1 ]; then
	out=$(via_relay boxed '[{"op":"callTool","name":"echo","args":{"message":"boxed"}},{"op":"close"}]' 2>&1)
	expect_match "sandboxed server answers" 'boxed' "$out"
	check "client logs the sandbox" wait_log "$T/client.log" 'in a bwrap sandbox' 2
else
	skip "sandboxed server answers" "bwrap cannot run here"
fi

# --- audit log --------------------------------------------------------------
if [ -f "$T/audit.jsonl" ]; then
	expect_eq "audit log is 0600" 600 "$(stat -c %a "$T/audit.jsonl")"
	expect_match "audit: a successful call" \
	    '"server":"everything".*"method":"tools/call","tool":"echo".*"outcome":"ok"' \
	    "$(cat "$T/audit.jsonl")"
	expect_match "audit: the denied call" \
	    '"server":"limited".*"tool":"get-env".*"outcome":"denied"' \
	    "$(cat "$T/audit.jsonl")"
	expect_match "audit: the timeout" \
	    '"server":"silent","session":[0-9]+,"method":"initialize".*"outcome":"timeout"' \
	    "$(cat "$T/audit.jsonl")"
	expect_match "audit: agent and tunnel named" \
	    '"tunnel":"acme","agent":"claude"' "$(head -n 1 "$T/audit.jsonl")"
	if grep -q 'hello through the tunnel' "$T/audit.jsonl"; then
		not_ok "audit: no arguments or results"
	else
		ok "audit: no arguments or results"
	fi
else
	not_ok "audit log written"
fi

# --- nothing left behind ----------------------------------------------------
left=""
i=0
while [ $i -lt 50 ]; do
	left=$(pgrep -P "$CLIENT_PID" || true)
	[ -z "$left" ] && break
	sleep 0.1
	i=$((i + 1))
done
expect_eq "every server process was reaped" "" "$left"
tokens_unlogged "token never logged" "$TOKEN"

san_check_logs
finish
