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
# Paths (columns), all reaching the same upstream, tests/tools/echo_upstream
# (C, newline-delimited JSON-RPC, "echo" and "blob"; ~1 MiB RSS and ~1 ms
# per 4 MiB blob, so the upstream is never what a column measures and 1,000
# sessions, one upstream process each, fit in memory):
#   direct    the load generator spawns it and speaks stdio to it
#   mcptun    agent -> relay (HTTPS) -> link (WSS) -> client -> stdio
#   sg        supergateway (npm, pinned in tests/node) --stateful, Streamable
#             HTTP on loopback, one stdio child per session like mcptun
#   sg+ssh    the same supergateway reached through ssh -R: a throwaway sshd
#             on a loopback port (keys made in the temp dir), the bridge's
#             port forwarded back by ssh -R as a user would from inside
# Floor (footnote, not a column): the latency of each load generator
# against tests/bench/floor.cjs, an HTTPS endpoint answering in-process.
# Postgres rows (a large SELECT of BENCH_PG_ROWS rows from a real PostgreSQL
# started with tests/lib/pg.sh): direct, sg and sg+ssh reach the reference
# server @modelcontextprotocol/server-postgres (pinned in tests/node, stdio)
# as a user would; mcptun reaches its built-in adapter (client/up_postgres.c).
# Offload is off for those rows (the whole result crosses every path); one
# more row times mcptun with offload on (the answer is a resource_link, the
# rows stay in the network).
# Load generators (rows marked [SDK] / [C]), the same for every column:
#   [SDK]  tests/bench/sdkload.mjs, the official TypeScript SDK client
#   [C]    tests/bench/mcpload.c, Streamable HTTP over mbedTLS (or stdio)
#          directly, so the path's own ceiling shows; built here with
#          cc -O2 -I deps/out/include tests/bench/mcpload.c \
#             deps/out/lib/libmbed{tls,x509,crypto}.a \
#             deps/out/lib/{libeverest,libp256m}.a -lm
#
# Knobs (environment): BENCH_CALLS (sequential calls, 2000), BENCH_SESSIONS
# (sessions held open for the memory figure, 1000), BENCH_RATE_SECONDS (4),
# BENCH_BULK_SECONDS (6), BENCH_HOL_SECONDS (4), BENCH_LAT_SECONDS (10: the
# sequential runs stop there even short of BENCH_CALLS; each figure's n is
# in results.json), BENCH_PG_ROWS (200000), BENCH_PG_RUNS (timed queries
# per figure after one warm-up, 5; the figure is their median),
# BENCH_PARTS (which sections run: "direct mcptun sg sgssh pg", all).
# Openssh is installed from Debian with apt-get when missing (as root).
: "${MCPTUN_TOP:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$MCPTUN_TOP/tests/lib/common.sh"
. "$MCPTUN_TOP/tests/lib/certs.sh"
. "$MCPTUN_TOP/tests/lib/node.sh"
. "$MCPTUN_TOP/tests/lib/pg.sh"
. "$MCPTUN_TOP/tests/bench/lib.sh"

UPDATE_README=0
case ${1:-} in
--update-readme) UPDATE_README=1 ;;
"") ;;
*) echo "usage: $0 [--update-readme]" >&2; exit 2 ;;
esac

CALLS=${BENCH_CALLS:-2000}
NSESS=${BENCH_SESSIONS:-1000}
RATE_S=${BENCH_RATE_SECONDS:-4}
BULK_S=${BENCH_BULK_SECONDS:-6}
HOL_S=${BENCH_HOL_SECONDS:-4}
LAT_S=${BENCH_LAT_SECONDS:-10}
PG_ROWS=${BENCH_PG_ROWS:-200000}
PG_RUNS=${BENCH_PG_RUNS:-5}
PARTS=${BENCH_PARTS:-direct mcptun sg sgssh pg}
BLOB=4194304
STOP_GRACE=3

OUT=$MCPTUN_TOP/build/bench
R=$T/res
mkdir -p "$OUT" "$R"
START_S=$(date +%s)
LOAD0=$(cut -d' ' -f1 /proc/loadavg)

say() { echo "bench: $*" >&2; }

# part NAME: whether BENCH_PARTS asks for that section.
part() {
	case " $PARTS " in
	*" $1 "*) return 0 ;;
	*) return 1 ;;
	esac
}

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

# hold_sessions COL PARENT RSSARGS -- MCPLOAD-TARGET...: opens $NSESS
# sessions with mcpload, takes the RSS of RSSARGS and counts PARENT's child
# processes (the upstreams) while they are open, ends them.  Writes
# $R/COL_sessions.json (mcpload's report, plus "upstreams") and
# $R/COL_mem_sessions.json.
hold_sessions() {
	_h_col=$1 _h_parent=$2
	shift 2
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
	_h_kids=$(pgrep -c -P "$_h_parent" 2>/dev/null)
	exec 7>&-
	_h_n=0
	while kill -0 $_h_pid 2>/dev/null && [ $_h_n -lt 600 ]; do
		sleep 0.1
		_h_n=$((_h_n + 1))
	done
	kill -TERM $_h_pid 2>/dev/null
	wait $_h_pid 2>/dev/null
	if [ -s "$R/${_h_col}_sessions.json" ]; then
		python3 -c 'import json, sys
d = json.load(open(sys.argv[1])); d["upstreams"] = int(sys.argv[2] or 0)
json.dump(d, open(sys.argv[1], "w"))' "$R/${_h_col}_sessions.json" "$_h_kids"
	else
		na "$R/${_h_col}_sessions.json" "mcpload could not open the sessions: $(tail -n 2 "$R/${_h_col}_sessions.err" | tr '\n' ' ')"
	fi
}

# ---- set-up ---------------------------------------------------------------

say "set-up (node_setup, mcpload, openssh, test CA)"
node_setup || { echo "bench: node_setup failed (npm ci in tests/node)" >&2; exit 1; }
ECHO_UP=$MCPTUN_TOP/$B/tests/tools/echo_upstream
[ -x "$RELAY" ] && [ -x "$CLIENT" ] && [ -x "$ECHO_UP" ] || {
	echo "bench: $RELAY, $CLIENT or $ECHO_UP missing; run make bench (or make all $B/tests/tools/echo_upstream) first" >&2
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

BENCHSRV=$ECHO_UP
SG_JS=$NODE_DIR/node_modules/supergateway/dist/index.js
SG_VER=$(sed -n 's/^ *"version": "\(.*\)",$/\1/p' "$NODE_DIR/node_modules/supergateway/package.json" | head -n 1)
SSH_NA=""
make_test_ca "$T/pki" >/dev/null || { echo "bench: cannot make the test CA" >&2; exit 1; }

# ---- 1. direct -----------------------------------------------------------

if part direct; then
say "direct (stdio)"
gen direct_c_lat 120 "$MCPLOAD" --stdio "$BENCHSRV" --mode lat --calls "$CALLS" --warmup 200 --seconds "$LAT_S"
gen direct_sdk_lat 120 node "$OUT/sdkload.mjs" --stdio "$BENCHSRV" --mode lat --calls "$CALLS" --warmup 200 --seconds "$LAT_S"
gen direct_c_rate 90 "$MCPLOAD" --stdio "$BENCHSRV" --mode rate --sessions 50 --seconds "$RATE_S"
gen direct_sdk_rate 90 node "$OUT/sdkload.mjs" --stdio "$BENCHSRV" --mode rate --sessions 50 --seconds "$RATE_S"
gen direct_c_bulk 60 "$MCPLOAD" --stdio "$BENCHSRV" --mode bulk --bytes $BLOB --calls 40 --seconds "$BULK_S"
gen direct_sdk_bulk 60 node "$OUT/sdkload.mjs" --stdio "$BENCHSRV" --mode bulk --bytes $BLOB --calls 40 --seconds "$BULK_S"
gen direct_c_hol 60 "$MCPLOAD" --stdio "$BENCHSRV" --mode hol --bytes $BLOB --calls 1000 --seconds "$HOL_S"
gen direct_sdk_hol 60 node "$OUT/sdkload.mjs" --stdio "$BENCHSRV" --mode hol --bytes $BLOB --calls 1000 --seconds "$HOL_S"
# The latency floor of an HTTPS column: each generator against an endpoint
# that answers in-process (tests/bench/floor.cjs), in the footnotes.
say "floor (an HTTPS endpoint answering in-process)"
FLOOR_PORT=$(free_port)
start_bg floor node "$MCPTUN_TOP/tests/bench/floor.cjs" "$FLOOR_PORT" \
    "$CERTS/server.crt" "$CERTS/server.key"
if wait_port "$FLOOR_PORT" 10; then
	set -- --url "https://localhost:$FLOOR_PORT/mcp" --mode lat --calls "$CALLS" --warmup 200 --seconds "$LAT_S"
	gen floor_c_lat 120 "$MCPLOAD" --ca "$CERTS/ca.crt" "$@"
	gen floor_sdk_lat 120 env NODE_EXTRA_CA_CERTS="$CERTS/ca.crt" node "$OUT/sdkload.mjs" "$@"
else
	for f in floor_c_lat floor_sdk_lat; do na "$R/$f.json" "floor.cjs did not listen"; done
fi
stop_bg floor
fi

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

TOKEN=tun-$(openssl rand -hex 16)
AGENT_TOKEN=agent-$(openssl rand -hex 16)

# relay_conf FILE PORT [EXTRA-LIMITS]: the relay's configuration, the bench
# tunnel and agent, limits high enough for BENCH_SESSIONS.
relay_conf() {
	cat >"$1" <<EOF
listen: 127.0.0.1:$2
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
${3:-}
EOF
}

# client_head FILE PORT: the client's relay and offload sections; the
# caller appends the rest.  Offload is off: every column must carry the
# same bytes, not a preview.
client_head() {
	cat >"$1" <<EOF
relay:
  url: wss://localhost:$2/tunnel
  tunnel: bench
  token: $TOKEN
  ca_file: $CERTS/ca.crt
offload:
  threshold_tokens: 0
  dir: $T/offload
EOF
}

# start_mcptun PORT: relay and client on $T/relay.yaml and $T/client.yaml;
# sets RELAY_PID, CLIENT_PID and MCPTUN_NA (empty when the link is up).
start_mcptun() {
	start_bg relay "$RELAY" -c "$T/relay.yaml"
	RELAY_PID=$LAST_PID
	MCPTUN_NA=""
	wait_port "$1" 10 || MCPTUN_NA="the relay did not listen"
	start_bg client "$CLIENT" -c "$T/client.yaml"
	CLIENT_PID=$LAST_PID
	[ -n "$MCPTUN_NA" ] ||
	    wait_log "$T/relay.log" 'tunnel bench: link up' 15 ||
	    MCPTUN_NA="the client did not link up"
}

MCPTUN_NA=""
if part mcptun; then
say "mcptun (relay + client)"
PORT=$(free_port)
relay_conf "$T/relay.yaml" "$PORT"
client_head "$T/client.yaml" "$PORT"
cat >>"$T/client.yaml" <<EOF
servers:
  bench:
    command: $ECHO_UP
    max_sessions: 100000
EOF
MCPTUN_URL=https://localhost:$PORT/mcp/bench/bench
start_mcptun "$PORT"
if [ -z "$MCPTUN_NA" ]; then
	sleep 1
	rss relay=$RELAY_PID client=$CLIENT_PID >"$R/mcptun_mem_idle.json"
	http_loads mcptun "$MCPTUN_URL" "$AGENT_TOKEN"
	hold_sessions mcptun "$CLIENT_PID" relay=$RELAY_PID client=$CLIENT_PID -- \
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
fi

# ---- 3. supergateway ---------------------------------------------------------

# start_sg NAME PORT [UPSTREAM-CMD] [nowait]: supergateway --stateful on
# 127.0.0.1:PORT (loopback.cjs keeps its app.listen(port) off the other
# interfaces) for UPSTREAM-CMD (default the bench upstream); sets SG_PID.
start_sg() {
	start_bg "$1" node --require "$MCPTUN_TOP/tests/bench/loopback.cjs" "$SG_JS" \
	    --stdio "${3:-$BENCHSRV}" --outputTransport streamableHttp --port "$2" \
	    --stateful --logLevel none
	SG_PID=$LAST_PID
	[ "${4:-}" = nowait ] || wait_port "$2" 20
}

SG_NA=""
[ -f "$SG_JS" ] || SG_NA="supergateway is not in tests/node/node_modules"
if part sg; then
say "supergateway $SG_VER (stateful Streamable HTTP)"
SG_PORT=$(free_port)
SG_URL=http://127.0.0.1:$SG_PORT/mcp
if [ -z "$SG_NA" ] && ! start_sg sg "$SG_PORT"; then
	SG_NA="supergateway did not listen: $(tail -n 2 "$T/sg.log" | tr '\n' ' ')"
fi
if [ -z "$SG_NA" ]; then
	sleep 1
	rss supergateway=$SG_PID >"$R/sg_mem_idle.json"
	http_loads sg "$SG_URL"
	hold_sessions sg "$SG_PID" supergateway=$SG_PID -- --url "$SG_URL"
	wait_children "$SG_PID"
	sleep 1
	rss supergateway=$SG_PID >"$R/sg_mem_after.json"
	say "  sg_restart (SIGKILL supergateway, start it, first call)"
	t0=$(date +%s%N)
	kill -KILL "-$SG_PID" 2>/dev/null || kill -KILL "$SG_PID"
	wait "$SG_PID" 2>/dev/null
	start_sg sg "$SG_PORT" "" nowait
	restart_figure sg "$t0" "$SG_URL"
	stop_bg sg
else
	say "  sg: n/a: $SG_NA"
	for f in mem_idle mem_after; do na "$R/sg_$f.json" "$SG_NA"; done
fi
fi

# ---- 4. supergateway through ssh -R, and the raw link figure -----------------

# sshd is set up when the sg+ssh or the Postgres section runs, and kept
# until both are done.
part sgssh || part pg || SSH_NA="not measured (BENCH_PARTS)"
FWD_PORT=$(free_port)
RAW_PORT=$(free_port)
RAWFWD_PORT=$(free_port)
SG2_PORT=$(free_port)
SGSSH_URL=http://127.0.0.1:$FWD_PORT/mcp
if [ -z "$SSH_NA" ] && [ -n "$SG_NA" ]; then SSH_NA=$SG_NA; fi
[ -n "$SSH_NA" ] || sshd_start
SSHD_NA=$SSH_NA
if part sgssh; then
say "supergateway through ssh -R"
start_bg rawsrv "$MCPLOAD" --serve-raw "$RAW_PORT"
wait_port "$RAW_PORT" 10 || true
if [ -z "$SSH_NA" ]; then
	start_sg sg2 "$SG2_PORT" || SSH_NA="the second supergateway did not listen"
fi
if [ -z "$SSH_NA" ]; then
	ssh_forward sshR "$FWD_PORT:$SG2_PORT" "$RAWFWD_PORT:$RAW_PORT" ||
	    SSH_NA=$FWD_NA
	SSHC_PID=$LAST_PID
fi
if [ -z "$SSH_NA" ]; then
	sleep 1
	MEMARGS="supergateway=$SG_PID sshd=g:$SSHD_PID ssh=$SSHC_PID"
	# shellcheck disable=SC2086
	rss $MEMARGS >"$R/sgssh_mem_idle.json"
	http_loads sgssh "$SGSSH_URL"
	# shellcheck disable=SC2086
	hold_sessions sgssh "$SG_PID" $MEMARGS -- --url "$SGSSH_URL"
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
else
	say "  sg+ssh: n/a: $SSH_NA"
	for f in mem_idle mem_after restart; do na "$R/sgssh_$f.json" "$SSH_NA"; done
	gen raw_direct 60 "$MCPLOAD" --raw "127.0.0.1:$RAW_PORT" --bytes $BLOB --calls 200 --seconds "$BULK_S"
	na "$R/raw_ssh.json" "$SSH_NA"
fi
stop_bg rawsrv
fi

# ---- 5. Postgres: rows per second for a large query ---------------------------

# pg_gens COL TIMEOUT TARGET...: both generators' query figures for COL, the
# answers checked to hold PG_ROWS rows.
pg_gens() {
	_pg_c=$1 _pg_to=$2
	shift 2
	gen "${_pg_c}_c_pg" "$_pg_to" "$MCPLOAD" "$@" --ca "$CERTS/ca.crt" \
	    --mode query --sql "$PG_SQL" --rows "$PG_ROWS" --calls "$PG_RUNS"
	gen "${_pg_c}_sdk_pg" "$_pg_to" env NODE_EXTRA_CA_CERTS="$CERTS/ca.crt" \
	    node "$OUT/sdkload.mjs" "$@" --mode query --sql "$PG_SQL" \
	    --rows "$PG_ROWS" --calls "$PG_RUNS"
}

PG_NA=""
PG_SQL="SELECT id, name, qty, price, created_at FROM bench_rows ORDER BY id"
if part pg; then
say "postgres: $PG_ROWS rows, $PG_RUNS timed queries per figure"
if [ ! -x "$PG_BIN/initdb" ]; then
	PG_NA="no PostgreSQL server binaries (PG_BIN=$PG_BIN)"
elif ! pg_start "$T/pg" "$(free_port)" >"$T/pg_start.log" 2>&1; then
	PG_NA="PostgreSQL did not start: $(tail -n 2 "$T/pg_start.log" | tr '\n' ' ')"
elif ! pg_psql "CREATE TABLE bench_rows (id integer PRIMARY KEY, name text NOT NULL, qty integer NOT NULL, price numeric(10,2) NOT NULL, created_at timestamptz NOT NULL)" \
    "INSERT INTO bench_rows SELECT i, 'row-' || i, i % 1000, (i % 100000) / 100.0, timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second' FROM generate_series(1, $PG_ROWS) AS i" \
    "GRANT SELECT ON bench_rows TO $PG_USER" "ANALYZE bench_rows" >"$T/pg_seed.log" 2>&1; then
	PG_NA="cannot seed bench_rows: $(tail -n 2 "$T/pg_seed.log" | tr '\n' ' ')"
elif [ ! -f "$PG_MCP_JS" ]; then
	PG_NA="@modelcontextprotocol/server-postgres is not in tests/node/node_modules"
fi
fi
MCPTUN_NA0=$MCPTUN_NA
if part pg && [ -z "$PG_NA" ]; then
	# Every path logs in as the same password role over TCP.
	PG_REF="node $PG_MCP_JS $PG_URL"
	PG_VER=$(sed -n 's/^ *"version": "\(.*\)",$/\1/p' \
	    "$(dirname "$PG_MCP_JS")/../package.json" | head -n 1)
	say "  direct: server-postgres $PG_VER over stdio"
	pg_gens direct 1800 --stdio "$PG_REF"

	say "  mcptun: the built-in adapter"
	PG_TPORT=$(free_port)
	relay_conf "$T/relay.yaml" "$PG_TPORT" "  max_message: 256MiB
  max_body: 256MiB
  request_timeout: 300s"
	client_head "$T/client.yaml" "$PG_TPORT"
	cat >>"$T/client.yaml" <<EOF
limits:
  max_message: 256MiB
  request_timeout: 300s
servers:
  pg:
    type: postgres
    dsn: "host=$PG_HOST port=$PG_PORT dbname=$PG_DB user=$PG_USER"
    password: "$PG_PASSWORD"
    max_rows: 100000000
    max_bytes: 1GiB
  pgoff:
    type: postgres
    dsn: "host=$PG_HOST port=$PG_PORT dbname=$PG_DB user=$PG_USER"
    password: "$PG_PASSWORD"
    max_rows: 100000000
    max_bytes: 1GiB
    offload:
      threshold_tokens: 100000
EOF
	start_mcptun "$PG_TPORT"
	if [ -z "$MCPTUN_NA" ]; then
		pg_gens mcptun 1800 --url "https://localhost:$PG_TPORT/mcp/bench/pg" \
		    --token "$AGENT_TOKEN"
		say "  mcptun: offload on (the default 100,000 tokens)"
		for g in c sdk; do
			if [ $g = c ]; then
				set -- "$MCPLOAD" --ca "$CERTS/ca.crt"
			else
				set -- env NODE_EXTRA_CA_CERTS="$CERTS/ca.crt" node "$OUT/sdkload.mjs"
			fi
			gen "mcptun_${g}_pgoff" 600 "$@" \
			    --url "https://localhost:$PG_TPORT/mcp/bench/pgoff" \
			    --token "$AGENT_TOKEN" --mode query --sql "$PG_SQL" \
			    --rows 0 --calls "$PG_RUNS"
		done
	else
		for f in c_pg sdk_pg c_pgoff sdk_pgoff; do na "$R/mcptun_$f.json" "$MCPTUN_NA"; done
	fi
	stop_bg client
	stop_bg relay

	if [ -z "$SG_NA" ]; then
		say "  sg: server-postgres behind supergateway"
		PG_SGPORT=$(free_port)
		if start_sg sgpg "$PG_SGPORT" "$PG_REF"; then
			pg_gens sg 1800 --url "http://127.0.0.1:$PG_SGPORT/mcp"
		else
			for f in c_pg sdk_pg; do na "$R/sg_$f.json" "supergateway did not listen"; done
		fi
		stop_bg sgpg
	fi
	if [ -z "$SSHD_NA" ]; then
		say "  sg+ssh: the same through ssh -R"
		PG_SG2PORT=$(free_port)
		PG_FWDPORT=$(free_port)
		_pgs_na=""
		start_sg sgpg2 "$PG_SG2PORT" "$PG_REF" || _pgs_na="supergateway did not listen"
		if [ -z "$_pgs_na" ]; then
			ssh_forward sshRpg "$PG_FWDPORT:$PG_SG2PORT" || _pgs_na=$FWD_NA
		fi
		if [ -z "$_pgs_na" ]; then
			pg_gens sgssh 1800 --url "http://127.0.0.1:$PG_FWDPORT/mcp"
		else
			for f in c_pg sdk_pg; do na "$R/sgssh_$f.json" "$_pgs_na"; done
		fi
		stop_bg sshRpg
		stop_bg sgpg2
	fi
	pg_stop
fi
MCPTUN_NA=$MCPTUN_NA0
[ -n "${SSHD_PID:-}" ] && stop_bg sshd

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
    --pg-rows "$PG_ROWS" --pg-runs "$PG_RUNS" ${PG_NA:+--na-pg "$PG_NA"} \
    --pg-ref "server-postgres ${PG_VER:-?}" \
    ${README_ARG:+--readme "$README_ARG"} ||
    { echo "bench: table.py failed" >&2; exit 1; }
sh "$MCPTUN_TOP/tests/bench/link.sh" || say "tests/bench/link.sh failed (the link-only figures)"
exit 0
