#!/bin/sh
# make bench: mcptun side by side with what users run instead, all measured
# in one run on loopback, printed as one table (rows = figures, columns =
# paths, ratio columns against the baselines) and written to
# build/bench/results.json.  Figures, never pass/fail (issue 7).
#
#   sh tests/bench/run.sh                  measure, print, write results.json
#   sh tests/bench/run.sh --update-readme  the same, then put the table between
#                                          <!-- bench:begin --> and
#                                          <!-- bench:end --> in README.md
#
# Paths (columns), all reaching the same upstream, tests/bench/benchserver.mjs
# (a raw newline-delimited JSON-RPC MCP server with "echo" and "blob"):
#   direct    the load generator spawns it and speaks stdio to it
#   mcptun    agent -> relay (HTTPS) -> link (WSS) -> client -> stdio
#   sg        supergateway (npm, pinned in tests/node) --stateful, Streamable
#             HTTP on loopback, one stdio child per session like mcptun
#   sg+ssh    the same supergateway reached through ssh -R: a throwaway sshd
#             on a loopback port (keys made in the temp dir), the bridge's
#             port forwarded back by ssh -R as a user would from inside
# Load generators (rows marked [SDK] / [C]), the same for every column:
#   [SDK]  tests/bench/sdkload.mjs, the official TypeScript SDK client
#   [C]    tests/bench/mcpload.c, Streamable HTTP over mbedTLS (or stdio)
#          directly, so the path's own ceiling shows; built here with
#          cc -O2 -I deps/out/include tests/bench/mcpload.c \
#             deps/out/lib/libmbed{tls,x509,crypto}.a \
#             deps/out/lib/{libeverest,libp256m}.a -lm
#
# Knobs (environment): BENCH_CALLS (sequential calls, 2000), BENCH_SESSIONS
# (sessions held open for the memory figure, 200: each holds a Node stdio
# server of ~40 MiB, so 1,000 would need ~40 GiB on top of the daemons),
# BENCH_RATE_SECONDS (4), BENCH_BULK_SECONDS (6), BENCH_HOL_SECONDS (4),
# BENCH_LAT_SECONDS (10: the sequential runs stop there even short of
# BENCH_CALLS; each figure's n is in results.json).
# Openssh is installed from Debian with apt-get when missing (as root).
: "${MCPTUN_TOP:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$MCPTUN_TOP/tests/lib/common.sh"
. "$MCPTUN_TOP/tests/lib/certs.sh"
. "$MCPTUN_TOP/tests/lib/node.sh"

UPDATE_README=0
case ${1:-} in
--update-readme) UPDATE_README=1 ;;
"") ;;
*) echo "usage: $0 [--update-readme]" >&2; exit 2 ;;
esac

CALLS=${BENCH_CALLS:-2000}
NSESS=${BENCH_SESSIONS:-200}
RATE_S=${BENCH_RATE_SECONDS:-4}
BULK_S=${BENCH_BULK_SECONDS:-6}
HOL_S=${BENCH_HOL_SECONDS:-4}
LAT_S=${BENCH_LAT_SECONDS:-10}
BLOB=4194304
STOP_GRACE=3

OUT=$MCPTUN_TOP/build/bench
R=$T/res
mkdir -p "$OUT" "$R"
START_S=$(date +%s)
LOAD0=$(cut -d' ' -f1 /proc/loadavg)

say() { echo "bench: $*" >&2; }

# na FILE REASON: a result that could not be measured, with why.
na() {
	python3 -c 'import json, sys; print(json.dumps({"na": sys.argv[1]}))' \
	    "$2" >"$1"
}

# gen NAME TIMEOUT CMD...: one load-generator run; its JSON goes to
# $R/NAME.json, or {"na": why} when it failed or printed nothing.
gen() {
	_g_name=$1 _g_to=$2
	shift 2
	say "  $_g_name"
	timeout -k 5 "$_g_to" "$@" >"$R/$_g_name.json" 2>"$R/$_g_name.err"
	_g_rc=$?
	if ! python3 -c 'import json, sys; json.load(open(sys.argv[1]))' \
	    "$R/$_g_name.json" 2>/dev/null; then
		if [ $_g_rc = 124 ]; then
			na "$R/$_g_name.json" "timed out after ${_g_to}s"
		else
			na "$R/$_g_name.json" "failed (exit $_g_rc): $(tail -n 3 \
			    "$R/$_g_name.err" | tr '\n' ' ' | cut -c1-200)"
		fi
	fi
}

# rss NAME=PID...: a JSON object of resident set sizes in KiB; a PID of the
# form g:PGID sums that process group.
rss() {
	_r_out=""
	for _r_a in "$@"; do
		_r_n=${_r_a%%=*} _r_p=${_r_a#*=}
		case $_r_p in
		g:*) _r_pids=$(pgrep -g "${_r_p#g:}" 2>/dev/null) ;;
		*) _r_pids=$_r_p ;;
		esac
		_r_kb=0
		for _r_q in $_r_pids; do
			_r_v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$_r_q/status" 2>/dev/null)
			_r_kb=$((_r_kb + ${_r_v:-0}))
		done
		_r_out="$_r_out${_r_out:+,}\"$_r_n\":$_r_kb"
	done
	echo "{$_r_out}"
}

# wait_children PID: until PID has no child processes left (the upstreams of
# ended sessions are gone), at most 60 s, so "after the run" and the restart
# start from a settled proxy.
wait_children() {
	_wc_n=0
	while [ -n "$(pgrep -P "$1" 2>/dev/null)" ] && [ $_wc_n -lt 600 ]; do
		sleep 0.1
		_wc_n=$((_wc_n + 1))
	done
}

# hold_sessions COL RSSARGS -- MCPLOAD-TARGET...: opens $NSESS sessions with
# mcpload, takes the RSS of RSSARGS while they are open, ends them.
# Writes $R/COL_sessions.json (mcpload's report) and $R/COL_mem_sessions.json.
hold_sessions() {
	_h_col=$1
	shift
	_h_rss=""
	while [ "$1" != -- ]; do _h_rss="$_h_rss $1"; shift; done
	shift
	say "  $_h_col: $NSESS sessions held open"
	rm -f "$T/hold.fifo"
	mkfifo "$T/hold.fifo"
	"$MCPLOAD" "$@" --mode sessions --sessions "$NSESS" --workers 4 \
	    <"$T/hold.fifo" >"$R/${_h_col}_sessions.json" 2>"$R/${_h_col}_sessions.err" &
	_h_pid=$!
	at_exit "kill -TERM $_h_pid"
	exec 7>"$T/hold.fifo"
	_h_n=0
	while [ ! -s "$R/${_h_col}_sessions.json" ] && [ $_h_n -lt 1800 ] &&
	    kill -0 $_h_pid 2>/dev/null; do
		sleep 0.1
		_h_n=$((_h_n + 1))
	done
	sleep 1		# let the last spawned servers settle
	# shellcheck disable=SC2086
	rss $_h_rss >"$R/${_h_col}_mem_sessions.json"
	exec 7>&-
	_h_n=0
	while kill -0 $_h_pid 2>/dev/null && [ $_h_n -lt 600 ]; do
		sleep 0.1
		_h_n=$((_h_n + 1))
	done
	kill -TERM $_h_pid 2>/dev/null
	wait $_h_pid 2>/dev/null
	[ -s "$R/${_h_col}_sessions.json" ] ||
	    na "$R/${_h_col}_sessions.json" "mcpload could not open the sessions: $(tail -n 2 "$R/${_h_col}_sessions.err" | tr '\n' ' ')"
}

# ---- set-up ---------------------------------------------------------------

say "set-up (node_setup, mcpload, openssh, test CA)"
node_setup || { echo "bench: node_setup failed (npm ci in tests/node)" >&2; exit 1; }
[ -x "$RELAY" ] && [ -x "$CLIENT" ] || {
	echo "bench: $RELAY or $CLIENT missing; run make first" >&2
	exit 1
}
D=$MCPTUN_TOP/deps/out
MCPLOAD=$OUT/mcpload
cc -O2 -Wall -I "$D/include" -o "$MCPLOAD" "$MCPTUN_TOP/tests/bench/mcpload.c" \
    "$D/lib/libmbedtls.a" "$D/lib/libmbedx509.a" "$D/lib/libmbedcrypto.a" \
    "$D/lib/libeverest.a" "$D/lib/libp256m.a" -lm || {
	echo "bench: cannot build tests/bench/mcpload.c" >&2
	exit 1
}
# The SDK generator resolves the SDK through a node_modules next to it.
cp "$MCPTUN_TOP/tests/bench/sdkload.mjs" "$OUT/sdkload.mjs"
ln -sfn "$NODE_DIR/node_modules" "$OUT/node_modules"

BENCHSRV="node $MCPTUN_TOP/tests/bench/benchserver.mjs"
SG_JS=$NODE_DIR/node_modules/supergateway/dist/index.js
SG_VER=$(sed -n 's/^ *"version": "\(.*\)",$/\1/p' "$NODE_DIR/node_modules/supergateway/package.json" | head -n 1)
SSHD=/usr/sbin/sshd
SSH_NA=""
if [ ! -x $SSHD ] || ! command -v ssh >/dev/null 2>&1 ||
    ! command -v ssh-keygen >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		say "installing openssh-server and openssh-client from Debian (apt-get) for the ssh -R column"
		{ DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client ||
		  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client; }
		} >"$T/apt.log" 2>&1 || SSH_NA="apt-get install openssh-server openssh-client failed"
	else
		SSH_NA="openssh-server is not installed (apt-get install openssh-server openssh-client as root)"
	fi
fi
make_test_ca "$T/pki" >/dev/null || { echo "bench: cannot make the test CA" >&2; exit 1; }

# ---- 1. direct -----------------------------------------------------------

say "direct (stdio)"
gen direct_c_lat 120 "$MCPLOAD" --stdio "$BENCHSRV" --mode lat --calls "$CALLS" --warmup 200 --seconds "$LAT_S"
gen direct_sdk_lat 120 node "$OUT/sdkload.mjs" --stdio "$BENCHSRV" --mode lat --calls "$CALLS" --warmup 200 --seconds "$LAT_S"
gen direct_c_rate 90 "$MCPLOAD" --stdio "$BENCHSRV" --mode rate --sessions 50 --seconds "$RATE_S"
gen direct_sdk_rate 90 node "$OUT/sdkload.mjs" --stdio "$BENCHSRV" --mode rate --sessions 50 --seconds "$RATE_S"
gen direct_c_bulk 60 "$MCPLOAD" --stdio "$BENCHSRV" --mode bulk --bytes $BLOB --calls 40 --seconds "$BULK_S"
gen direct_sdk_bulk 60 node "$OUT/sdkload.mjs" --stdio "$BENCHSRV" --mode bulk --bytes $BLOB --calls 40 --seconds "$BULK_S"
gen direct_c_hol 60 "$MCPLOAD" --stdio "$BENCHSRV" --mode hol --bytes $BLOB --calls 1000 --seconds "$HOL_S"
gen direct_sdk_hol 60 node "$OUT/sdkload.mjs" --stdio "$BENCHSRV" --mode hol --bytes $BLOB --calls 1000 --seconds "$HOL_S"

# An HTTP column's whole set of load figures.
# http_loads COL URL [TOKEN]
http_loads() {
	_hl_c=$1 _hl_u=$2 _hl_t=${3:-}
	set -- --url "$_hl_u"
	[ -n "$_hl_t" ] && set -- "$@" --token "$_hl_t"
	gen "${_hl_c}_c_lat" 120 "$MCPLOAD" "$@" --ca "$CERTS/ca.crt" --mode lat --calls "$CALLS" --warmup 200 --seconds "$LAT_S"
	gen "${_hl_c}_sdk_lat" 120 env NODE_EXTRA_CA_CERTS="$CERTS/ca.crt" node "$OUT/sdkload.mjs" "$@" --mode lat --calls "$CALLS" --warmup 200 --seconds "$LAT_S"
	gen "${_hl_c}_c_rate" 90 "$MCPLOAD" "$@" --ca "$CERTS/ca.crt" --mode rate --sessions 50 --seconds "$RATE_S"
	gen "${_hl_c}_sdk_rate" 90 env NODE_EXTRA_CA_CERTS="$CERTS/ca.crt" node "$OUT/sdkload.mjs" "$@" --mode rate --sessions 50 --seconds "$RATE_S"
	gen "${_hl_c}_c_bulk" 60 "$MCPLOAD" "$@" --ca "$CERTS/ca.crt" --mode bulk --bytes $BLOB --calls 40 --seconds "$BULK_S"
	gen "${_hl_c}_sdk_bulk" 60 env NODE_EXTRA_CA_CERTS="$CERTS/ca.crt" node "$OUT/sdkload.mjs" "$@" --mode bulk --bytes $BLOB --calls 40 --seconds "$BULK_S"
	gen "${_hl_c}_c_hol" 60 "$MCPLOAD" "$@" --ca "$CERTS/ca.crt" --mode hol --bytes $BLOB --calls 1000 --seconds "$HOL_S"
	gen "${_hl_c}_sdk_hol" 60 env NODE_EXTRA_CA_CERTS="$CERTS/ca.crt" node "$OUT/sdkload.mjs" "$@" --mode hol --bytes $BLOB --calls 1000 --seconds "$HOL_S"
}

# restart_figure COL T0 URL [TOKEN]: the time from T0 (date +%s%N, taken
# just before the SIGKILL) to the first successful echo call through URL,
# into $R/COL_restart.json.
restart_figure() {
	_rf_c=$1 _rf_t0=$2 _rf_u=$3 _rf_tok=${4:-}
	set -- --url "$_rf_u" --ca "$CERTS/ca.crt"
	[ -n "$_rf_tok" ] && set -- "$@" --token "$_rf_tok"
	"$MCPLOAD" "$@" --mode first --seconds 60 >"$R/${_rf_c}_first.json" 2>"$R/${_rf_c}_first.err"
	_rf_rc=$?
	_rf_t1=$(date +%s%N)
	if [ $_rf_rc = 0 ]; then
		echo "{\"ms\":$(( (_rf_t1 - _rf_t0) / 1000000 ))}" >"$R/${_rf_c}_restart.json"
	else
		na "$R/${_rf_c}_restart.json" "no successful call within 60 s"
	fi
}

# ---- 2. mcptun -------------------------------------------------------------

say "mcptun (relay + client)"
PORT=$(free_port)
TOKEN=tun-$(openssl rand -hex 16)
AGENT_TOKEN=agent-$(openssl rand -hex 16)
cat >"$T/relay.yaml" <<EOF
listen: 127.0.0.1:$PORT
tls:
  cert: $CERTS/server.crt
  key: $CERTS/server.key
tunnels:
  bench:
    token_sha256: $("$RELAY" hash-token "$TOKEN")
agents:
  bench:
    token_sha256: $("$RELAY" hash-token "$AGENT_TOKEN")
    allow: ["bench/*"]
limits:
  sessions_per_agent: 100000
  sessions_per_tunnel: 100000
  streams_per_link: 100000
EOF
cat >"$T/client.yaml" <<EOF
relay:
  url: wss://localhost:$PORT/tunnel
  tunnel: bench
  token: $TOKEN
  ca_file: $CERTS/ca.crt
# Offload off: every column must carry the same 4 MiB, not a preview.
offload:
  threshold_tokens: 0
servers:
  bench:
    command: node
    args: ["$MCPTUN_TOP/tests/bench/benchserver.mjs"]
    max_sessions: 100000
EOF
MCPTUN_URL=https://localhost:$PORT/mcp/bench/bench
start_bg relay "$RELAY" -c "$T/relay.yaml"
RELAY_PID=$LAST_PID
MCPTUN_NA=""
wait_port "$PORT" 10 || MCPTUN_NA="the relay did not listen"
start_bg client "$CLIENT" -c "$T/client.yaml"
CLIENT_PID=$LAST_PID
[ -n "$MCPTUN_NA" ] || wait_log "$T/relay.log" 'tunnel bench: link up' 15 ||
    MCPTUN_NA="the client did not link up"
if [ -z "$MCPTUN_NA" ]; then
	sleep 1
	rss relay=$RELAY_PID client=$CLIENT_PID >"$R/mcptun_mem_idle.json"
	http_loads mcptun "$MCPTUN_URL" "$AGENT_TOKEN"
	# The relay's answers are SSE whenever the agent accepts it; how the
	# same path does with an agent that accepts only JSON (a diagnosis).
	gen mcptun_cjson_lat 120 "$MCPLOAD" --url "$MCPTUN_URL" --token "$AGENT_TOKEN" \
	    --ca "$CERTS/ca.crt" --accept application/json --mode lat --calls "$CALLS" \
	    --warmup 200 --seconds "$LAT_S"
	hold_sessions mcptun relay=$RELAY_PID client=$CLIENT_PID -- \
	    --url "$MCPTUN_URL" --token "$AGENT_TOKEN" --ca "$CERTS/ca.crt"
	wait_children "$CLIENT_PID"
	sleep 1
	rss relay=$RELAY_PID client=$CLIENT_PID >"$R/mcptun_mem_after.json"
	say "  mcptun_restart (SIGKILL the relay, start it, first call)"
	t0=$(date +%s%N)
	kill -KILL "$RELAY_PID"
	wait "$RELAY_PID" 2>/dev/null
	start_bg relay "$RELAY" -c "$T/relay.yaml"
	RELAY_PID=$LAST_PID
	restart_figure mcptun "$t0" "$MCPTUN_URL" "$AGENT_TOKEN"
else
	say "  mcptun: n/a: $MCPTUN_NA"
	for f in mem_idle mem_after; do na "$R/mcptun_$f.json" "$MCPTUN_NA"; done
fi
stop_bg client
stop_bg relay

# ---- 3. supergateway ---------------------------------------------------------

# start_sg NAME PORT: supergateway --stateful on 127.0.0.1:PORT (loopback.cjs
# keeps its app.listen(port) off the other interfaces); sets SG_PID.
start_sg() {
	start_bg "$1" node --require "$MCPTUN_TOP/tests/bench/loopback.cjs" "$SG_JS" \
	    --stdio "$BENCHSRV" --outputTransport streamableHttp --port "$2" \
	    --stateful --logLevel none
	SG_PID=$LAST_PID
	wait_port "$2" 20
}

say "supergateway $SG_VER (stateful Streamable HTTP)"
SG_PORT=$(free_port)
SG_URL=http://127.0.0.1:$SG_PORT/mcp
if [ ! -f "$SG_JS" ]; then
	SG_NA="supergateway is not in tests/node/node_modules"
elif start_sg sg "$SG_PORT"; then
	SG_NA=""
else
	SG_NA="supergateway did not listen: $(tail -n 2 "$T/sg.log" | tr '\n' ' ')"
fi
if [ -z "$SG_NA" ]; then
	sleep 1
	rss supergateway=$SG_PID >"$R/sg_mem_idle.json"
	http_loads sg "$SG_URL"
	hold_sessions sg supergateway=$SG_PID -- --url "$SG_URL"
	wait_children "$SG_PID"
	sleep 1
	rss supergateway=$SG_PID >"$R/sg_mem_after.json"
	say "  sg_restart (SIGKILL supergateway, start it, first call)"
	t0=$(date +%s%N)
	kill -KILL "-$SG_PID" 2>/dev/null || kill -KILL "$SG_PID"
	wait "$SG_PID" 2>/dev/null
	start_bg sg node --require "$MCPTUN_TOP/tests/bench/loopback.cjs" "$SG_JS" \
	    --stdio "$BENCHSRV" --outputTransport streamableHttp --port "$SG_PORT" \
	    --stateful --logLevel none
	SG_PID=$LAST_PID
	restart_figure sg "$t0" "$SG_URL"
	stop_bg sg
else
	say "  sg: n/a: $SG_NA"
	for f in mem_idle mem_after; do na "$R/sg_$f.json" "$SG_NA"; done
fi

# ---- 4. supergateway through ssh -R, and the raw link figure -----------------

say "supergateway through ssh -R"
SSH_DIR=$T/ssh
SSH_PORT=$(free_port)
FWD_PORT=$(free_port)
RAW_PORT=$(free_port)
RAWFWD_PORT=$(free_port)
SG2_PORT=$(free_port)
SGSSH_URL=http://127.0.0.1:$FWD_PORT/mcp
start_bg rawsrv node "$MCPTUN_TOP/tests/bench/benchserver.mjs" --tcp "$RAW_PORT"
wait_port "$RAW_PORT" 10 || true
if [ -z "$SSH_NA" ] && [ -n "$SG_NA" ]; then SSH_NA=$SG_NA; fi
if [ -z "$SSH_NA" ]; then
	mkdir -p "$SSH_DIR" /run/sshd
	chmod 700 "$SSH_DIR"
	ssh-keygen -q -t ed25519 -N '' -f "$SSH_DIR/host_key" </dev/null &&
	ssh-keygen -q -t ed25519 -N '' -f "$SSH_DIR/user_key" </dev/null &&
	cp "$SSH_DIR/user_key.pub" "$SSH_DIR/authorized_keys" &&
	chmod 600 "$SSH_DIR/authorized_keys" || SSH_NA="ssh-keygen failed"
	cat >"$SSH_DIR/sshd_config" <<EOF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $SSH_DIR/host_key
PidFile $SSH_DIR/sshd.pid
AuthorizedKeysFile $SSH_DIR/authorized_keys
PermitRootLogin yes
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding yes
GatewayPorts no
X11Forwarding no
PrintMotd no
LogLevel ERROR
EOF
fi
if [ -z "$SSH_NA" ]; then
	start_bg sshd $SSHD -D -e -f "$SSH_DIR/sshd_config"
	SSHD_PID=$LAST_PID
	wait_port "$SSH_PORT" 10 || SSH_NA="sshd did not listen: $(tail -n 2 "$T/sshd.log" | tr '\n' ' ')"
fi
if [ -z "$SSH_NA" ]; then
	start_sg sg2 "$SG2_PORT" || SSH_NA="the second supergateway did not listen"
fi
if [ -z "$SSH_NA" ]; then
	start_bg sshR ssh -N -T -o StrictHostKeyChecking=no \
	    -o UserKnownHostsFile=/dev/null -o BatchMode=yes \
	    -o ExitOnForwardFailure=yes -o LogLevel=ERROR -i "$SSH_DIR/user_key" \
	    -p "$SSH_PORT" -R "127.0.0.1:$FWD_PORT:127.0.0.1:$SG2_PORT" \
	    -R "127.0.0.1:$RAWFWD_PORT:127.0.0.1:$RAW_PORT" root@127.0.0.1
	SSHC_PID=$LAST_PID
	wait_port "$FWD_PORT" 15 || SSH_NA="ssh -R did not forward: $(tail -n 3 "$T/sshR.log" | tr '\n' ' ')"
fi
if [ -z "$SSH_NA" ]; then
	sleep 1
	MEMARGS="supergateway=$SG_PID sshd=g:$SSHD_PID ssh=$SSHC_PID"
	# shellcheck disable=SC2086
	rss $MEMARGS >"$R/sgssh_mem_idle.json"
	http_loads sgssh "$SGSSH_URL"
	# shellcheck disable=SC2086
	hold_sessions sgssh $MEMARGS -- --url "$SGSSH_URL"
	wait_children "$SG_PID"
	sleep 1
	# shellcheck disable=SC2086
	rss $MEMARGS >"$R/sgssh_mem_after.json"
	say "  raw link: 4 MiB messages over loopback TCP and over ssh -R"
	gen raw_direct 60 "$MCPLOAD" --raw "127.0.0.1:$RAW_PORT" --bytes $BLOB --calls 200 --seconds "$BULK_S"
	gen raw_ssh 60 "$MCPLOAD" --raw "127.0.0.1:$RAWFWD_PORT" --bytes $BLOB --calls 200 --seconds "$BULK_S"
	na "$R/sgssh_restart.json" "ssh -R does not reconnect by itself (autossh or a loop would)"
	stop_bg sshR
	stop_bg sg2
	stop_bg sshd
else
	say "  sg+ssh: n/a: $SSH_NA"
	for f in mem_idle mem_after restart; do na "$R/sgssh_$f.json" "$SSH_NA"; done
	gen raw_direct 60 "$MCPLOAD" --raw "127.0.0.1:$RAW_PORT" --bytes $BLOB --calls 200 --seconds "$BULK_S"
	na "$R/raw_ssh.json" "$SSH_NA"
fi
stop_bg rawsrv

# ---- the table ----------------------------------------------------------------

say "done in $(( $(date +%s) - START_S )) s"
README_ARG=""
[ $UPDATE_README = 1 ] && README_ARG=$MCPTUN_TOP/README.md
MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
python3 "$MCPTUN_TOP/tests/bench/table.py" --res "$R" --out "$OUT/results.json" \
    --nproc "$(nproc)" --model "$MODEL" --sessions "$NSESS" --calls "$CALLS" --lat-seconds "$LAT_S" \
    --load "$LOAD0 at start, $(cut -d' ' -f1 /proc/loadavg) at end" \
    --sg-version "$SG_VER" --seconds "$(( $(date +%s) - START_S ))" \
    ${MCPTUN_NA:+--na-mcptun "$MCPTUN_NA"} ${SG_NA:+--na-sg "$SG_NA"} \
    ${SSH_NA:+--na-sgssh "$SSH_NA"} \
    ${README_ARG:+--readme "$README_ARG"} ||
    { echo "bench: table.py failed" >&2; exit 1; }
sh "$MCPTUN_TOP/tests/bench/link.sh" || say "tests/bench/link.sh failed (the link-only figures)"
exit 0
