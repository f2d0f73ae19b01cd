#!/bin/sh
# The relay and the client may be configured with different limits: each
# announces what it receives (HELLO, WELCOME: chunk, max_message) and the
# other must respect it (proto/PROTOCOL.md, section 7).
#   chunk: both ways round, a 1 MiB answer and a 1 MiB request cross a
#   link whose two ends disagree by 16x, through the official SDK.
#   max_message: a request larger than the client takes is refused to
#   that one call (413); the session's next call is answered.
# No link may drop.  Before the sender honoured the peer's limits, the
# first such message made the other side close the link ("frame too
# large", "size limit exceeded"), and the resumed session sent it again,
# forever, for every session of the tunnel.
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

# start_pair ID NAME RELAY-LIMITS CLIENT-LIMITS (YAML flow maps)
start_pair() {
	write_relay_conf -o "$T/relay-$1.yaml" - <<Y
limits: $3
Y
	write_client_conf -o "$T/client-$1.yaml" <<Y
offload:
  threshold_tokens: 0
limits: $4
servers:
  up:
    command: $ECHO_UP
Y
	start_bg relay "$RELAY" -c "$T/relay-$1.yaml"
	wait_port "$PORT" 10 || not_ok "$2: relay listens"
	start_bg "client-$1" "$CLIENT" -c "$T/client-$1.yaml"
	wait_link "$2: client links to the relay"
}

# stop_pair ID NAME: no link dropped and no frame refused, then stop both.
stop_pair() {
	check "$2: no link dropped" sh -c '! grep -q "closed the link\|link down" "$@"' \
	    - "$T/client-$1.log" "$T/relay.log"
	check "$2: no frame refused" sh -c '! grep -qi "frame too large\|size limit" "$@"' \
	    - "$T/client-$1.log" "$T/relay.log"
	stop_bg "client-$1"
	stop_bg relay
	mv "$T/relay.log" "$T/relay-$1.log"
}

# round ID NAME RELAY-CHUNK CLIENT-CHUNK
round() {
	_id=$1 _nm=$2
	start_pair "$_id" "$_nm" "{chunk: $3}" "{chunk: $4}"
	printf '[{"op":"callTool","name":"blob","args":{"bytes":%d}},{"op":"callTool","name":"echo","args":{"message":"%s"}}]' \
	    $MIB "$BIG" >"$T/script-$_id.json"
	via_relay up "$T/script-$_id.json" >"$T/out-$_id.jsonl" 2>"$T/agent-$_id.err"
	check "$_nm: a 1 MiB answer and a 1 MiB request cross" python3 -c '
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
steps = {x["step"]: x for x in r}
n = int(sys.argv[2])
assert len(steps[1]["result"]["content"][0]["text"]) == n, "answer"
assert len(steps[2]["result"]["content"][0]["text"]) == n, "echo"
' "$T/out-$_id.jsonl" $MIB
	stop_pair "$_id" "$_nm"
}

round c "client's chunk larger" 16KiB 256KiB
round r "relay's chunk larger" 256KiB 16KiB

M="client takes 1 MiB messages"
start_pair m "$M" "{}" "{max_message: 1MiB}"
printf '[{"op":"callTool","name":"echo","args":{"message":"%s%s"}},{"op":"callTool","name":"echo","args":{"message":"after"}}]' \
    "$BIG" "$BIG" >"$T/script-m.json"
via_relay up "$T/script-m.json" >"$T/out-m.jsonl" 2>"$T/agent-m.err"
check "$M: a 2 MiB request gets 413, the next call its answer" python3 -c '
import json, sys
steps = {x["step"]: x for x in map(json.loads, open(sys.argv[1]))}
assert steps[1]["error"]["code"] == 413, steps[1]
assert steps[2]["result"]["content"][0]["text"] == "after", steps[2]
' "$T/out-m.jsonl"
check "$M: the agent is told which limit" grep -q \
    "larger than the tunnel.s client accepts (its limits.max_message)" \
    "$T/out-m.jsonl"
check "$M: the relay logs the refused message" grep -q \
    "a message of [0-9]* bytes is more than the tunnel's client takes" \
    "$T/relay.log"
stop_pair m "$M"
tokens_unlogged "tokens never logged" "$TOKEN" "$AGENT_TOKEN"
finish
