#!/bin/sh
# make demo: a relay and a client on localhost with the example allowlist in
# examples/demo/, a throwaway test CA, and a real MCP call through the
# tunnel made with the official MCP TypeScript SDK.  Then it prints what you
# need to point your own agent at it, and runs until Ctrl-C.
#
# DEMO_ONESHOT=1 stops after the call (used by the tests).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
B=${B:-build/rel}
RELAY=$top/$B/mcptun-relay
CLIENT=$top/$B/mcptun-client

MCPTUN_TOP=$top
. "$top/tests/lib/certs.sh"
. "$top/tests/lib/node.sh"

DEMO_DIR=$(mktemp -d "${TMPDIR:-/tmp}/mcptun-demo.XXXXXX")
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	for p in $pids; do wait "$p" 2>/dev/null || true; done
	rm -rf "$DEMO_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== mcptun demo (files in $DEMO_DIR)"
printf 'installing the pinned MCP SDK and reference server (npm ci, once)... '
node_setup >"$DEMO_DIR/npm.log" 2>&1 || { echo; cat "$DEMO_DIR/npm.log"; exit 1; }
echo done

make_test_ca "$DEMO_DIR/pki" >/dev/null
DEMO_PORT=${DEMO_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
TUNNEL_TOKEN=$(openssl rand -hex 24)
AGENT_TOKEN=$(openssl rand -hex 24)
(umask 077 && printf '%s\n' "$TUNNEL_TOKEN" >"$DEMO_DIR/tunnel.token")
DEMO_TUNNEL_HASH=$("$RELAY" hash-token "$TUNNEL_TOKEN")
DEMO_AGENT_HASH=$("$RELAY" hash-token "$AGENT_TOKEN")
DEMO_EVERYTHING_JS=$EVERYTHING_JS
export DEMO_DIR DEMO_PORT DEMO_TUNNEL_HASH DEMO_AGENT_HASH DEMO_EVERYTHING_JS

"$RELAY" -n -c "$top/examples/demo/relay.yaml"
"$CLIENT" -n -c "$top/examples/demo/client.yaml"

"$RELAY" -c "$top/examples/demo/relay.yaml" >"$DEMO_DIR/relay.log" 2>&1 &
pids="$pids $!"
"$CLIENT" -c "$top/examples/demo/client.yaml" >"$DEMO_DIR/client.log" 2>&1 &
pids="$pids $!"

i=0
until grep -q 'tunnel demo: link up' "$DEMO_DIR/relay.log" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 100 ]; then
		echo "the link did not come up; logs:"; cat "$DEMO_DIR/relay.log" "$DEMO_DIR/client.log"
		exit 1
	fi
	sleep 0.1
done
echo "== link up:"
sed 's/^/   relay  | /' "$DEMO_DIR/relay.log"
sed 's/^/   client | /' "$DEMO_DIR/client.log"

URL=https://localhost:$DEMO_PORT/mcp/demo/everything
echo
echo "== a real MCP call through the tunnel (official TypeScript SDK client):"
agent --url "$URL" --token "$AGENT_TOKEN" --ca "$DEMO_DIR/pki/ca.crt" \
    "$top/examples/demo/call.json" >"$DEMO_DIR/call.out" 2>"$DEMO_DIR/call.err" || {
	echo "the call failed:"; cat "$DEMO_DIR/call.out" "$DEMO_DIR/call.err"
	tail -n 20 "$DEMO_DIR/relay.log" "$DEMO_DIR/client.log"; exit 1; }
node -e '
const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n");
for (const l of lines) {
  const s = JSON.parse(l);
  if (s.step === 0) continue;
  if (s.error) { console.log("   " + s.label + " -> error " + JSON.stringify(s.error)); continue; }
  if (s.op === "listTools") console.log("   " + s.label + " -> " + s.result.tools.length + " tools: " + s.result.tools.map(t => t.name).slice(0, 6).join(", ") + ", ...");
  else console.log("   " + s.label + " -> " + JSON.stringify((s.result.content || [])[0]?.text));
}' "$DEMO_DIR/call.out"
echo "   audit log (client side, one line per call):"
sed 's/^/     /' "$DEMO_DIR/audit.jsonl" 2>/dev/null | tail -n 3

cat <<EOT

== connect your own agent
   MCP URL:       $URL
   bearer token:  $AGENT_TOKEN
   CA file:       $DEMO_DIR/pki/ca.crt   (a throwaway test CA)

   Claude Code:
     NODE_EXTRA_CA_CERTS=$DEMO_DIR/pki/ca.crt claude mcp add --transport http mcptun-demo $URL --header "Authorization: Bearer $AGENT_TOKEN"

EOT
if [ "${DEMO_ONESHOT:-0}" = 1 ]; then
	exit 0
fi
echo "relay and client are running; Ctrl-C stops both."
while :; do sleep 3600; done
