# The standard relay + client pair of the integration tests (POSIX sh,
# sourced after common.sh and certs.sh).  Most tests need the same thing:
# one relay on a loopback port with the test CA's server certificate,
# tunnel "acme" and agent "claude" allowed on acme/*, and one client linked
# to it serving the test's own servers.  A test that needs an unusual
# config (mTLS, several tunnels per client, ...) writes it inline instead.
#
#   tunnel_init            the test CA (make_test_ca $T/pki; "not ok - test
#                          CA" ends the test if it fails) and:
#       PORT               the relay's port
#       TOKEN              tunnel acme's token
#       AGENT_TOKEN        agent claude's token
#       URL                https://localhost:$PORT/mcp/acme (the merged
#                          endpoint; $URL/SERVER is one server)
#
#   write_relay_conf [OPTIONS] [-]
#       $T/relay.yaml: listen 127.0.0.1:$PORT, the test CA's server
#       certificate, tunnel acme ($TOKEN), agent claude ($AGENT_TOKEN,
#       allow acme/*).  With "-", top-level YAML read from stdin follows
#       (limits:, http: ...).  Options:
#         -o FILE                   write FILE instead
#         -c NAME                   certificate $CERTS/NAME.crt and .key
#                                   (default server)
#         -t NAME TOKEN             another tunnel
#         -a NAME TOKEN ALLOW       another agent; ALLOW is a YAML flow
#                                   list, e.g. '["acme/*"]'
#         -A                        no agent claude (-a claude TOKEN ALLOW
#                                   gives it another allow list)
#
#   write_client_conf [OPTIONS] <<EOF
#       $T/client.yaml: the relay: section for tunnel acme (url on
#       localhost:$PORT, $TOKEN, ca_file the test CA), then stdin as it is:
#       the test's own top-level YAML, its servers: block included.  Options:
#         -o FILE       write FILE instead
#         -p PORT       dial PORT instead of $PORT (a proxy in between)
#         -k TOKEN      tunnel acme's token (default $TOKEN)
#         -c CAFILE     ca_file (default $CERTS/ca.crt)
#
#   start_relay [CONF]     relay as start_bg "relay" with CONF
#                          ($T/relay.yaml); "not ok - relay listens" if
#                          $PORT does not accept within 10 s
#   start_client [NAME [CONF [OPTION...]]]
#                          client as start_bg NAME ("client") with CONF
#                          ($T/client.yaml) and OPTIONs (e.g. -v)
#   wait_link [CHECK [TIMEOUT]] "ok - CHECK" ("client links to the relay")
#                          once relay.log says "tunnel acme: link up"
#                          within TIMEOUT (15 s); else "not ok - CHECK" and
#                          the test ends (nothing after it can work)
#   start_tunnel [CHECK]   start_relay, start_client, wait_link CHECK
#   via_relay SERVER SCRIPT [OPTIONS...]
#                          the SDK agent (node.sh's agent) as claude on
#                          $URL/SERVER, trusting the test CA
#   tokens_unlogged CHECK TOKEN...
#                          ok CHECK if no $T/*.log holds any TOKEN

tunnel_init() {
	make_test_ca "$T/pki" >/dev/null || { not_ok "test CA"; finish; }
	PORT=$(free_port)
	TOKEN=tun-$(openssl rand -hex 16)
	AGENT_TOKEN=agent-$(openssl rand -hex 16)
	URL=https://localhost:$PORT/mcp/acme
}

write_relay_conf() {
	_wr_out=$T/relay.yaml _wr_cert=server _wr_claude=1 _wr_stdin=0
	_wr_tunnels="" _wr_agents=""
	while [ $# -gt 0 ]; do
		case $1 in
		-o) _wr_out=$2; shift 2 ;;
		-c) _wr_cert=$2; shift 2 ;;
		-t) _wr_tunnels="$_wr_tunnels
  $2:
    token_sha256: $("$RELAY" hash-token "$3")"
		    shift 3 ;;
		-a) _wr_agents="$_wr_agents
  $2:
    token_sha256: $("$RELAY" hash-token "$3")
    allow: $4"
		    shift 4 ;;
		-A) _wr_claude=0; shift ;;
		-) _wr_stdin=1; shift ;;
		*) echo "write_relay_conf: bad argument $1" >&2; return 2 ;;
		esac
	done
	if [ $_wr_claude = 1 ]; then
		_wr_agents="
  claude:
    token_sha256: $("$RELAY" hash-token "$AGENT_TOKEN")
    allow: [\"acme/*\"]$_wr_agents"
	fi
	{
		cat <<EOF
listen: 127.0.0.1:$PORT
tls:
  cert: $CERTS/$_wr_cert.crt
  key: $CERTS/$_wr_cert.key
tunnels:
  acme:
    token_sha256: $("$RELAY" hash-token "$TOKEN")$_wr_tunnels
EOF
		if [ -n "$_wr_agents" ]; then
			printf 'agents:%s\n' "$_wr_agents"
		fi
		if [ $_wr_stdin = 1 ]; then
			cat
		fi
	} >"$_wr_out"
}

write_client_conf() {
	_wc_out=$T/client.yaml _wc_port=$PORT _wc_token=$TOKEN
	_wc_ca=$CERTS/ca.crt
	while [ $# -gt 0 ]; do
		case $1 in
		-o) _wc_out=$2 ;;
		-p) _wc_port=$2 ;;
		-k) _wc_token=$2 ;;
		-c) _wc_ca=$2 ;;
		*) echo "write_client_conf: bad argument $1" >&2; return 2 ;;
		esac
		shift 2
	done
	{
		cat <<EOF
relay:
  url: wss://localhost:$_wc_port/tunnel
  tunnel: acme
  token: $_wc_token
  ca_file: $_wc_ca
EOF
		cat
	} >"$_wc_out"
}

start_relay() {
	start_bg relay "$RELAY" -c "${1:-$T/relay.yaml}"
	wait_port "$PORT" 10 || not_ok "relay listens"
}

start_client() {
	_sc_name=${1:-client} _sc_conf=${2:-$T/client.yaml}
	[ $# -gt 2 ] && shift 2 || set --
	start_bg "$_sc_name" "$CLIENT" -c "$_sc_conf" "$@"
}

wait_link() {
	if wait_log "$T/relay.log" 'tunnel acme: link up' "${2:-15}"; then
		ok "${1:-client links to the relay}"
	else
		not_ok "${1:-client links to the relay}"
		finish
	fi
}

start_tunnel() {
	start_relay
	start_client
	wait_link "$@"
}

via_relay() {
	_vr_srv=$1 _vr_script=$2
	shift 2
	agent --url "$URL/$_vr_srv" --token "$AGENT_TOKEN" --ca "$CERTS/ca.crt" \
	    "$@" "$_vr_script"
}

tokens_unlogged() {
	_tu_name=$1 _tu_hit=""
	shift
	for _tu_tok in "$@"; do
		if grep -q -- "$_tu_tok" "$T"/*.log; then
			_tu_hit="$_tu_hit ${_tu_tok%%-*}"
		fi
	done
	if [ -z "$_tu_hit" ]; then
		ok "$_tu_name"
	else
		not_ok "$_tu_name" "found in a log:$_tu_hit"
	fi
}
