#!/bin/sh
# The tunnel link between real daemons over real TLS (issue: the tunnel
# link): HELLO/WELCOME with a test CA, TLS 1.3, wrong token with backoff,
# wrong CA and wrong host name refused, relay SIGKILL + restart, client
# restart replacing the old binding, a half-open link found by the ping
# deadline, config checking with -n.
: "${MCPTUN_TOP:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$MCPTUN_TOP/tests/lib/common.sh"
. "$MCPTUN_TOP/tests/lib/certs.sh"
. "$MCPTUN_TOP/tests/lib/tunnel.sh"

tunnel_init
HASH=$("$RELAY" hash-token "$TOKEN")

expect_match "hash-token prints a SHA-256" '^[0-9a-f]{64}$' "$HASH"
expect_eq "hash-token reads stdin too" "$HASH" \
    "$(printf '%s\n' "$TOKEN" | "$RELAY" hash-token)"

# relay_conf CERTNAME FILE: with another tunnel and short liveness limits.
relay_conf() {
	write_relay_conf -o "$2" -c "$1" -t other "other-$(openssl rand -hex 8)" - <<EOF
limits:
  ping_interval: 1s
  ping_timeout: 1s
  resume_grace: 3s
EOF
}
relay_conf server "$T/relay.yaml"
relay_conf wrong-host "$T/relay-wrong.yaml"

# client_conf TOKEN CA [URLPORT] > file
client_conf() {
	write_client_conf -o /dev/stdout -k "$1" -c "$2" -p "${3:-$PORT}" <<EOF
limits:
  ping_interval: 1s
  ping_timeout: 1s
  reconnect_min: 200ms
  reconnect_max: 2s
  resume_grace: 3s
servers:
  files:
    command: cat
  notes:
    command: cat
EOF
}
client_conf "$TOKEN" "$CERTS/ca.crt" >"$T/client.yaml"

# --- config checking ---------------------------------------------------
check "relay -n accepts a good config" "$RELAY" -n -c "$T/relay.yaml"
check "client -n accepts a good config" "$CLIENT" -n -c "$T/client.yaml"
sed 's/^  cert:/  cret:/' "$T/relay.yaml" >"$T/bad-relay.yaml"
out=$("$RELAY" -n -c "$T/bad-relay.yaml" 2>&1); rc=$?
expect_eq "relay -n exits 1 on a bad config" 1 "$rc"
expect_match "relay -n names file:line:col and suggests" \
    'bad-relay\.yaml:3:3: .*"cret".*did you mean "cert"' "$out"
sed 's/^    command: cat$/    comand: cat/' "$T/client.yaml" >"$T/bad-client.yaml"
out=$("$CLIENT" -n -c "$T/bad-client.yaml" 2>&1); rc=$?
expect_eq "client -n exits 1 on a bad config" 1 "$rc"
expect_match "client -n names file:line:col and suggests" \
    'bad-client\.yaml:[0-9]+:[0-9]+: .*"comand".*did you mean "command"' "$out"
check "relay --version" sh -c "'$RELAY' --version | grep -q 'mcptun-relay'"
check "client --help" sh -c "'$CLIENT' --help | grep -q -- '--check'"

# --- link up, TLS 1.3 ----------------------------------------------------
start_relay
start_client
if wait_log "$T/client.log" 'link to .* up' 10; then
	ok "client link comes up"
else
	not_ok "client link comes up"
fi
check "relay sees the catalog" wait_log "$T/relay.log" 'tunnel acme: link up, 2 server' 5
out=$(echo | openssl s_client -connect "127.0.0.1:$PORT" -tls1_3 \
    -CAfile "$CERTS/ca.crt" -servername localhost 2>&1)
expect_match "relay negotiates TLS 1.3" 'TLSv1\.3' "$out"
expect_match "relay certificate verifies" 'Verify return code: 0' "$out"
if grep -q "$TOKEN" "$T"/*.log; then not_ok "token never logged"; else ok "token never logged"; fi

# --- client restart: the new link replaces the old binding ----------------
stop_bg client KILL
start_bg client2 "$CLIENT" -c "$T/client.yaml"
check "restarted client links again" wait_log "$T/client2.log" 'link to .* up' 10

# --- relay SIGKILL and restart: the client comes back ---------------------
stop_bg relay KILL
check "client notices the relay is gone" wait_log "$T/client2.log" \
    'link to .* closed|relay silent|cannot connect' 10
start_bg relay2 "$RELAY" -c "$T/relay.yaml"
wait_port "$PORT" 10
if wait_log "$T/relay2.log" 'tunnel acme: link up' 15; then
	ok "client re-links after relay restart"
else
	not_ok "client re-links after relay restart"
fi
stop_bg client2

# --- wrong token: refused, with backoff ------------------------------------
client_conf "wrong-$TOKEN" "$CERTS/ca.crt" >"$T/client-badtok.yaml"
start_bg badtok "$CLIENT" -c "$T/client-badtok.yaml"
sleep 4
stop_bg badtok
n=$(grep -c 'cannot connect' "$T/badtok.log")
delays=$(sed -n 's/.*reconnecting to .* in \([0-9.]*\) s.*/\1/p' "$T/badtok.log" | tr '\n' ' ')
if [ "$n" -ge 2 ] && [ "$n" -le 12 ]; then
	ok "wrong token refused and retried with backoff ($n attempts in 4 s; delays $delays)"
else
	not_ok "wrong token refused and retried with backoff" "$n attempts: $delays"
fi
check "relay logs the wrong token" grep -q 'missing or wrong tunnel token' "$T/relay2.log"
if grep -q 'link to .* up' "$T/badtok.log"; then not_ok "wrong token never links"; else ok "wrong token never links"; fi

# --- wrong CA ---------------------------------------------------------------
client_conf "$TOKEN" "$CERTS/other-ca.crt" >"$T/client-badca.yaml"
start_bg badca "$CLIENT" -c "$T/client-badca.yaml"
sleep 2
stop_bg badca
if grep -q 'link to .* up' "$T/badca.log"; then
	not_ok "client refuses a relay certificate from another CA"
else
	ok "client refuses a relay certificate from another CA"
fi
check "the refusal is logged" grep -q 'cannot connect' "$T/badca.log"

# --- wrong host name --------------------------------------------------------
stop_bg relay2
start_bg relay3 "$RELAY" -c "$T/relay-wrong.yaml"
wait_port "$PORT" 10
start_bg badhost "$CLIENT" -c "$T/client.yaml"
sleep 2
stop_bg badhost
if grep -q 'link to .* up' "$T/badhost.log"; then
	not_ok "client refuses a certificate for another host name"
else
	ok "client refuses a certificate for another host name"
fi
stop_bg relay3

# --- half-open link: the ping deadline finds it -----------------------------
PPORT=$(free_port)
start_bg relay4 "$RELAY" -c "$T/relay.yaml"
wait_port "$PORT" 10
start_bg proxy node "$MCPTUN_TOP/tests/node/tcp-proxy.mjs" "$PPORT" "$PORT"
wait_port "$PPORT" 10
client_conf "$TOKEN" "$CERTS/ca.crt" "$PPORT" >"$T/client-proxy.yaml"
start_bg pclient "$CLIENT" -c "$T/client-proxy.yaml"
if wait_log "$T/pclient.log" 'link to .* up' 10; then
	kill -USR2 "$(pid_of proxy)"
	check "client finds the half-open link by its ping deadline" \
	    wait_log "$T/pclient.log" 'relay silent' 8
	check "relay finds it too" wait_log "$T/relay4.log" 'link silent' 8
	kill -HUP "$(pid_of proxy)"
	check "client re-links through the thawed path" \
	    sh -c "sleep 0.5; grep -c 'link to .* up' '$T/pclient.log' | grep -qv '^1$' || (sleep 5; grep -c 'link to .* up' '$T/pclient.log' | grep -qv '^1$')"
else
	not_ok "client links through the proxy"
fi

# --- SPKI pin -----------------------------------------------------------------
PIN=$(openssl x509 -in "$CERTS/server.crt" -pubkey -noout |
    openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64)
WRONGPIN=$(openssl x509 -in "$CERTS/wrong-host.crt" -pubkey -noout |
    openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64)
{ client_conf "$TOKEN" "$CERTS/ca.crt"; } | sed "s|^  ca_file: .*|&\n  pin_sha256: $PIN|" >"$T/client-pin.yaml"
{ client_conf "$TOKEN" "$CERTS/ca.crt"; } | sed "s|^  ca_file: .*|&\n  pin_sha256: $WRONGPIN|" >"$T/client-badpin.yaml"
start_bg pin "$CLIENT" -c "$T/client-pin.yaml"
check "client with the right SPKI pin links" wait_log "$T/pin.log" 'link to .* up' 10
stop_bg pin
start_bg badpin "$CLIENT" -c "$T/client-badpin.yaml"
check "client with a wrong SPKI pin refuses" wait_log "$T/badpin.log" 'does not match relay.pin_sha256' 10
if grep -q 'link to .* up' "$T/badpin.log"; then not_ok "wrong pin never links"; else ok "wrong pin never links"; fi
stop_bg badpin

# --- SIGTERM: clean exit -------------------------------------------------
stop_bg pclient; rc=$?
expect_eq "client exits 0 on SIGTERM" 0 "$rc"
stop_bg relay4; rc=$?
expect_eq "relay exits 0 on SIGTERM" 0 "$rc"

# --- mTLS needs its own port (tests/integration/mtls.sh covers the rest) -------
sed "s|^  key: .*|&\n  client_ca: $CERTS/ca.crt|" "$T/relay.yaml" >"$T/relay-mtls.yaml"
out=$("$RELAY" -n -c "$T/relay-mtls.yaml" 2>&1); rc=$?
expect_eq "tls.client_ca without tunnel_listen is refused" 1 "$rc"
expect_match "and the refusal says why" '"client_ca" needs "tunnel_listen"' "$out"

san_check_logs
finish
