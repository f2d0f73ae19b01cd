#!/bin/sh
# Client certificates (mTLS) on the tunnel link, between real daemons over
# real TLS: with tunnel_listen and tls.client_ca the relay serves tunnel
# links on a port of their own that requires a certificate from the
# client CA, while agents keep the agent port without one.  A client with
# a valid certificate and token links and an SDK agent call goes through;
# a client without a certificate, or with one from another CA, is refused
# in the TLS handshake with a clear line in its log; a tunnel bound to a
# certificate CN refuses another CN with its right token; each port
# refuses the other's traffic; the relay stays up through all of it.
: "${MCPTUN_TOP:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$MCPTUN_TOP/tests/lib/common.sh"
. "$MCPTUN_TOP/tests/lib/certs.sh"
. "$MCPTUN_TOP/tests/lib/node.sh"

require_node "mtls: node"
make_test_ca "$T/pki" >/dev/null || { not_ok "test CA"; finish; }
PORT=$(free_port)
TPORT=$(free_port)
TOKEN=tun-$(openssl rand -hex 16)
LAB_TOKEN=lab-$(openssl rand -hex 16)
AGENT_TOKEN=agent-$(openssl rand -hex 16)

cat >"$T/relay.yaml" <<EOF
listen: 127.0.0.1:$PORT
tunnel_listen: 127.0.0.1:$TPORT
tls:
  cert: $CERTS/server.crt
  key: $CERTS/server.key
  client_ca: $CERTS/ca.crt
tunnels:
  acme:
    token_sha256: $("$RELAY" hash-token "$TOKEN")
  lab:
    token_sha256: $("$RELAY" hash-token "$LAB_TOKEN")
    client_cert_cn: lab-client
agents:
  claude:
    token_sha256: $("$RELAY" hash-token "$AGENT_TOKEN")
    allow: ["acme/*"]
limits:
  request_timeout: 30s
EOF

# client_conf NAME [PORT [TUNNEL TOKEN]] > file: client certificate NAME
# ("" for none) from $CERTS.
client_conf() {
	cat <<EOF
relay:
  url: wss://localhost:${2:-$TPORT}/tunnel
  tunnel: ${3:-acme}
  token: ${4:-$TOKEN}
  ca_file: $CERTS/ca.crt
EOF
	if [ -n "$1" ]; then
		printf '  client_cert: %s\n  client_key: %s\n' \
		    "$CERTS/$1.crt" "$CERTS/$1.key"
	fi
	cat <<EOF
limits:
  reconnect_min: 200ms
  reconnect_max: 1s
servers:
  everything:
    command: node
    args: ["$EVERYTHING_JS", "stdio"]
    offload:
      threshold_tokens: 0
EOF
}

# tls_probe PORT [CERT]: one HTTPS request to /healthz with Python's TLS
# stack; prints "answered: HTTP/1.1 NNN", "tls refused: REASON" or
# "error: ...".  TLS12=1 caps the probe at TLS 1.2; PROBE_HOST is the name
# it checks the relay's certificate for (an IP address: no SNI).
cat >"$T/probe.py" <<'EOF'
import os, socket, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
if os.environ.get("TLS12"):
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
if len(sys.argv) > 4:
    ctx.load_cert_chain(sys.argv[3], sys.argv[4])
try:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname=os.environ.get("PROBE_HOST", "localhost")) as t:
            t.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            print("answered:", t.recv(100)[:12].decode(errors="replace"))
except ssl.SSLError as e:
    print("tls refused:", e.reason)
except OSError as e:
    print("error:", e)
EOF
tls_probe() {
	if [ -n "${2:-}" ]; then
		python3 "$T/probe.py" "$1" "$CERTS/ca.crt" "$CERTS/$2.crt" \
		    "$CERTS/$2.key"
	else
		python3 "$T/probe.py" "$1" "$CERTS/ca.crt"
	fi
}

# relay_lines REGEX: how many relay log lines match.
relay_lines() { grep -Ec -- "$1" "$T/relay.log"; }

# --- configuration ---------------------------------------------------------
out=$("$RELAY" -n -c "$T/relay.yaml" 2>&1)
expect_match "relay -n accepts tunnel_listen with tls.client_ca" \
    'configuration OK \(2 tunnel' "$out"
grep -v '^tunnel_listen:' "$T/relay.yaml" >"$T/relay-noport.yaml"
out=$("$RELAY" -n -c "$T/relay-noport.yaml" 2>&1); rc=$?
expect_eq "tls.client_ca without tunnel_listen is refused" 1 "$rc"
expect_match "and the refusal says why" \
    '"client_ca" needs "tunnel_listen"' "$out"

cat "$CERTS/other-ca.crt" "$CERTS/ca.crt" >"$T/bundle.crt"
sed "s|client_ca: .*|client_ca: $T/bundle.crt|" "$T/relay.yaml" >"$T/relay-bundle.yaml"
out=$("$RELAY" -n -c "$T/relay-bundle.yaml" 2>&1); rc=$?
expect_eq "a client_ca bundle is refused (lws would use its first CA only)" 1 "$rc"
expect_match "and the refusal says why" 'holds 2 certificates; give exactly one CA' "$out"

# --- relay up: two ports ------------------------------------------------------
start_bg relay "$RELAY" -c "$T/relay.yaml"
RELAY_PID=$LAST_PID
wait_port "$PORT" 10 || not_ok "relay listens on the agent port"
wait_port "$TPORT" 10 || not_ok "relay listens on the tunnel port"
check "relay logs the tunnel port with mTLS" wait_log "$T/relay.log" \
    "tunnel links on wss://127.0.0.1:$TPORT/tunnel with client certificates" 5

# --- TLS level: the tunnel port wants a certificate from the client CA ------
# With SNI (a host name) and without (an IP address): lws' mbedTLS wrapper
# sets the verify mode on different paths for the two (relay/main.c).
for host in localhost 127.0.0.1; do
	export PROBE_HOST=$host
	out=$(tls_probe "$TPORT")
	expect_match "tunnel port ($host): no certificate, TLS 1.3 handshake refused" \
	    '^tls refused' "$out"
	out=$(TLS12=1 tls_probe "$TPORT")
	case $out in
	"tls refused"*|"error: "*) ok "tunnel port ($host): no certificate, TLS 1.2 handshake refused ($out)" ;;
	*) not_ok "tunnel port ($host): no certificate, TLS 1.2 handshake refused" "$out" ;;
	esac
	out=$(tls_probe "$TPORT" other-client)
	expect_match "tunnel port ($host): certificate from another CA refused" \
	    '^tls refused' "$out"
	out=$(TLS12=1 tls_probe "$TPORT" other-client)
	expect_match "tunnel port ($host): another CA refused with TLS 1.2 too" \
	    '^tls refused' "$out"
	out=$(tls_probe "$TPORT" client)
	expect_match "tunnel port ($host): a valid certificate gets an HTTP answer (404: only /tunnel)" \
	    '^answered: HTTP/1.1 404' "$out"
done
unset PROBE_HOST
out=$(tls_probe "$PORT")
expect_match "agent port: no client certificate needed" \
    '^answered: HTTP/1.1 200' "$out"
expect_eq "no link attempt reached the relay's link code" 0 \
    "$(relay_lines 'link from')"

# --- a client with a valid certificate and token links ----------------------
client_conf client >"$T/client.yaml"
start_bg client "$CLIENT" -c "$T/client.yaml"
if wait_log "$T/relay.log" 'tunnel acme: link up' 15; then
	ok "client with certificate and token links"
else
	not_ok "client with certificate and token links"
	finish
fi
check "relay logs the certificate's CN" grep -q \
    'authenticated for tunnel acme (client certificate CN "mcptun-test-client")' \
    "$T/relay.log"

URL=https://localhost:$PORT/mcp/acme/everything
out=$(agent --url "$URL" --token "$AGENT_TOKEN" --ca "$CERTS/ca.crt" \
    '[{"op":"callTool","name":"echo","args":{"message":"through mtls"}},{"op":"close"}]' 2>&1)
expect_match "SDK agent call goes through the mTLS link (agent has no cert)" \
    '"step":1,"op":"callTool","result".*Echo: through mtls' "$out"

# The tunnel port serves no agent endpoint.
out=$(python3 - "$TPORT" "$CERTS" <<'EOF'
import socket, ssl, sys
port, d = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=d + "/ca.crt")
ctx.load_cert_chain(d + "/client.crt", d + "/client.key")
with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
    with ctx.wrap_socket(s, server_hostname="localhost") as t:
        t.sendall(b"POST /mcp/acme/everything HTTP/1.1\r\nHost: localhost\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
        print(t.recv(100)[:12].decode(errors="replace"))
EOF
)
expect_match "tunnel port does not serve /mcp" '^HTTP/1.1 404' "$out"

# --- refused clients ----------------------------------------------------------
before=$(relay_lines 'link from')
client_conf "" >"$T/client-nocert.yaml"
start_bg nocert "$CLIENT" -c "$T/client-nocert.yaml"
check "client without a certificate: a clear line in its log" \
    wait_log "$T/nocert.log" 'cannot connect to .*if the relay requires client certificates \(tls.client_ca\), set relay.client_cert and relay.client_key' 10
# It keeps trying: lws drops an attempt whose handshake write fails
# (EPIPE when the relay closed first) without a connection error, which
# once left the client waiting for ever.
tries=0
for _ in $(seq $((20 * TSCALE))); do
	tries=$(grep -c 'reconnecting to' "$T/nocert.log")
	[ "$tries" -ge 4 ] && break
	sleep 0.5
done
if [ "$tries" -ge 4 ]; then
	ok "client without a certificate keeps retrying ($tries attempts)"
else
	not_ok "client without a certificate keeps retrying" "$tries retries logged"
fi
stop_bg nocert
if grep -q 'link to .* up' "$T/nocert.log"; then
	not_ok "client without a certificate never links"
else
	ok "client without a certificate never links"
fi

client_conf other-client >"$T/client-otherca.yaml"
start_bg otherca "$CLIENT" -c "$T/client-otherca.yaml"
check "client with another CA's certificate: a clear line in its log" \
    wait_log "$T/otherca.log" 'cannot connect to .*it did not accept .*other-client.crt \(issued by another CA' 10
sleep 1
stop_bg otherca
if grep -q 'link to .* up' "$T/otherca.log"; then
	not_ok "client with another CA's certificate never links"
else
	ok "client with another CA's certificate never links"
fi
expect_eq "both were refused in TLS, before the relay read a request" \
    "$before" "$(relay_lines 'link from')"
# The relay cannot see why a handshake failed, but it sees the connection
# end before a request: one line (at most one a minute) and a counter.
check "relay logs connections that ended in the handshake" grep -q \
    'tunnel port: a connection from 127.0.0.1 ended before its request.*: a failed TLS handshake (no client certificate, one tls.client_ca did not issue' \
    "$T/relay.log"
n=$(relay_lines 'tunnel port: a connection from')
if [ "$n" -le 2 ]; then
	ok "that line comes at most once a minute ($n in this test)"
else
	not_ok "that line comes at most once a minute" "$n lines"
fi
early=$(raw_http --ca "$CERTS/ca.crt" "https://localhost:$PORT/metrics" |
    sed -n 's/^mcptun_tunnel_port_early_closes_total //p')
# Eight refused probes above (four per host), then two refused clients:
# at least ten.
if [ "${early:-0}" -ge 10 ]; then
	ok "/metrics counts them ($early)"
else
	not_ok "/metrics counts them" "mcptun_tunnel_port_early_closes_total: '${early}'"
fi

# A tunnel bound to a certificate CN: the right token with another CN.
client_conf client "$TPORT" lab "$LAB_TOKEN" >"$T/client-lab.yaml"
start_bg lab "$CLIENT" -c "$T/client-lab.yaml"
check "tunnel bound to CN lab-client refuses CN mcptun-test-client" \
    wait_log "$T/relay.log" 'refused: tunnel lab needs a client certificate with CN "lab-client", not "mcptun-test-client"' 10
stop_bg lab
if grep -q 'tunnel lab: link up' "$T/relay.log"; then
	not_ok "the lab token alone does not link with another certificate"
else
	ok "the lab token alone does not link with another certificate"
fi

# The agent port refuses tunnel links when they have their own port.
client_conf client "$PORT" >"$T/client-agentport.yaml"
start_bg agentport "$CLIENT" -c "$T/client-agentport.yaml"
check "agent port refuses tunnel links, saying where they go" \
    wait_log "$T/relay.log" "refused: tunnel links go to tunnel_listen \\(127.0.0.1:$TPORT\\)" 10
stop_bg agentport
if grep -q 'link to .* up' "$T/agentport.log"; then
	not_ok "no link on the agent port"
else
	ok "no link on the agent port"
fi

# --- the relay stayed up and the good link still works -------------------------
if kill -0 "$RELAY_PID" 2>/dev/null; then
	ok "relay stays up through the refusals"
else
	not_ok "relay stays up through the refusals"
fi
out=$(agent --url "$URL" --token "$AGENT_TOKEN" --ca "$CERTS/ca.crt" \
    '[{"op":"callTool","name":"get-sum","args":{"a":2,"b":40}},{"op":"close"}]' 2>&1)
expect_match "agent call after the refusals still goes through" \
    '"step":1,"op":"callTool","result".*42' "$out"
expect_eq "the good link was never dropped" 1 \
    "$(relay_lines 'tunnel acme: link up')"

stop_bg client; rc=$?
expect_eq "client exits 0 on SIGTERM" 0 "$rc"
stop_bg relay; rc=$?
expect_eq "relay exits 0 on SIGTERM" 0 "$rc"

san_check_logs
finish
