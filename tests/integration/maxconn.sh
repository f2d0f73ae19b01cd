#!/bin/sh
# limits.max_connections caps the sockets the relay holds open (and so its
# poll tables): a real relay over TLS with a cap of 32; 40 idle TCP
# connections fill it, the relay says so once, a health check waits in
# the backlog, and once they close the relay says it accepts again and
# answers.  -n refuses a cap below the minimum with the key's position.
# The client sizes its tables from its servers' max_sessions at start: a
# reload that allows more sessions than fit says that it takes a restart,
# and the client stays linked.
: "${MCPTUN_TOP:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$MCPTUN_TOP/tests/lib/common.sh"
. "$MCPTUN_TOP/tests/lib/certs.sh"

require_cmd "max connections" curl
require_cmd "max connections" python3
make_test_ca "$T/pki" >/dev/null || { not_ok "test CA"; finish; }
PORT=$(free_port)
TOKEN=tun-$(openssl rand -hex 16)
cat >"$T/relay.yaml" <<EOF
listen: 127.0.0.1:$PORT
tls:
  cert: $CERTS/server.crt
  key: $CERTS/server.key
tunnels:
  acme:
    token_sha256: $("$RELAY" hash-token "$TOKEN")
limits:
  max_connections: 32
EOF

sed 's/max_connections: 32/max_connections: 8/' "$T/relay.yaml" >"$T/bad.yaml"
"$RELAY" -n -c "$T/bad.yaml" >"$T/bad.out" 2>&1
expect_eq "-n refuses max_connections 8" "$?" 1
check "the error names the key and the range" grep -q \
    'bad.yaml:9:20: "max_connections" must be between 32 and 1048576' \
    "$T/bad.out"

start_bg relay "$RELAY" -c "$T/relay.yaml"
wait_port "$PORT" 10 || not_ok "relay listens"
healthz() {
	curl -sS --max-time "$1" --cacert "$CERTS/ca.crt" \
	    "https://localhost:$PORT/healthz" >/dev/null 2>&1
}
check "healthz before" healthz 5

# 40 plain TCP connections that send nothing; they stay open until
# $T/release appears.
start_bg holder python3 -c '
import os, socket, sys, time
port, rel = int(sys.argv[1]), sys.argv[2]
socks = []
for i in range(40):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    socks.append(s)
print("holding", len(socks), flush=True)
while not os.path.exists(rel):
    time.sleep(0.05)
' "$PORT" "$T/release"
check "40 connections open" wait_log "$T/holder.log" 'holding 40' 10
check "relay says the cap is reached" wait_log "$T/relay.log" \
    'limits.max_connections reached: 29 connections open' 10
if healthz 2; then
	not_ok "healthz waits while the relay is full"
else
	ok "healthz waits while the relay is full"
fi
expect_eq "said once" "$(grep -c 'max_connections reached' "$T/relay.log")" 1

: >"$T/release"
check "relay accepts again" wait_log "$T/relay.log" \
    'accepting connections again' 10
check "healthz after" healthz 5

cat >"$T/client.yaml" <<EOF
relay:
  url: wss://localhost:$PORT/tunnel
  tunnel: acme
  token: $TOKEN
  ca_file: $CERTS/ca.crt
servers:
  files:
    command: cat
EOF
start_bg client "$CLIENT" -c "$T/client.yaml"
check "client links" wait_log "$T/relay.log" 'tunnel acme: link up' 15
echo "    max_sessions: 2000" >>"$T/client.yaml"
check "client says a reload past its tables takes a restart" wait_log \
    "$T/client.log" 'need up to 6064 descriptors, the event loop was sized for [0-9]+ at start' 10
if grep -q 'link down' "$T/relay.log"; then
	not_ok "client stays linked"
else
	ok "client stays linked"
fi

stop_bg client
stop_bg relay
san_check_logs
finish
