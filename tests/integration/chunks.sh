#!/bin/sh
# The relay and the client may be configured with different limits.chunk:
# each announces what it receives (HELLO, WELCOME) and the other must send
# DATA frames no larger (proto/PROTOCOL.md, section 7).  Both ways round,
# a 1 MiB answer and a 1 MiB request cross a link whose two ends disagree
# by 16x, through the official SDK, with no link dropped.  Before the
# sender honoured the peer's chunk, the larger side's first big message
# made the other close the link ("frame too large"), and the resumed
# session sent it again, forever.
: "${MCPTUN_TOP:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$MCPTUN_TOP/tests/lib/common.sh"
. "$MCPTUN_TOP/tests/lib/certs.sh"
. "$MCPTUN_TOP/tests/lib/tunnel.sh"
. "$MCPTUN_TOP/tests/lib/node.sh"

require_node "chunk limits"
require_cmd "chunk limits" python3
tunnel_init
ECHO_UP=$MCPTUN_TOP/$B/tests/tools/echo_upstream
MIB=1048576
BIG=$(python3 -c "print('x' * $MIB)")

# round ID NAME RELAY-CHUNK CLIENT-CHUNK
round() {
	_id=$1 _nm=$2
	shift 2
	set -- "$_id" "$@"
	write_relay_conf -o "$T/relay-$1.yaml" - <<Y
limits:
  chunk: $2
Y
	write_client_conf -o "$T/client-$1.yaml" <<Y
offload:
  threshold_tokens: 0
limits:
  chunk: $3
servers:
  up:
    command: $ECHO_UP
Y
	start_bg relay "$RELAY" -c "$T/relay-$1.yaml"
	wait_port "$PORT" 10 || not_ok "$_nm: relay listens"
	start_bg "client-$1" "$CLIENT" -c "$T/client-$1.yaml"
	wait_link "$_nm: client links to the relay"
	printf '[{"op":"callTool","name":"blob","args":{"bytes":%d}},{"op":"callTool","name":"echo","args":{"message":"%s"}}]' \
	    $MIB "$BIG" >"$T/script-$1.json"
	via_relay up "$T/script-$1.json" >"$T/out-$1.jsonl" 2>"$T/agent-$1.err"
	check "$_nm: a 1 MiB answer and a 1 MiB request cross" python3 -c '
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
steps = {x["step"]: x for x in r}
n = int(sys.argv[2])
assert len(steps[1]["result"]["content"][0]["text"]) == n, "answer"
assert len(steps[2]["result"]["content"][0]["text"]) == n, "echo"
' "$T/out-$1.jsonl" $MIB
	check "$_nm: no link dropped" sh -c '! grep -q "closed the link\|link down" "$@"' \
	    - "$T/client-$1.log" "$T/relay.log"
	check "$_nm: no frame refused" sh -c '! grep -qi "too large" "$@"' \
	    - "$T/client-$1.log" "$T/relay.log"
	stop_bg "client-$1"
	stop_bg relay
	mv "$T/relay.log" "$T/relay-$1.log"
}

round c "client's chunk larger" 16KiB 256KiB
round r "relay's chunk larger" 256KiB 16KiB
tokens_unlogged "tokens never logged" "$TOKEN" "$AGENT_TOKEN"
finish
