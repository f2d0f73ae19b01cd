# Common harness for mcptun's integration tests (POSIX sh, sourced).
#
# A test script starts like this:
#
#   #!/bin/sh
#   : "${MCPTUN_TOP:=$(cd "$(dirname "$0")/../.." && pwd)}"
#   . "$MCPTUN_TOP/tests/lib/common.sh"
#   . "$MCPTUN_TOP/tests/lib/certs.sh"     # when it needs certificates
#   . "$MCPTUN_TOP/tests/lib/node.sh"      # when it needs the MCP SDK
#   . "$MCPTUN_TOP/tests/lib/pg.sh"        # when it needs PostgreSQL
#   . "$MCPTUN_TOP/tests/lib/tunnel.sh"    # the standard relay + client
#   ...
#   san_check_logs
#   finish
#
# and reports through ok / not_ok / skip / check / expect_eq, which print the
# "ok - NAME", "not ok - NAME", "skip - NAME" lines tests/run.sh counts.
#
# What sourcing gives you:
#   T            a fresh temp dir (mode 0711, so the postgres user can reach a
#                directory made inside it); removed on every exit path
#   RELAY CLIENT paths of the built daemons ($MCPTUN_TOP/$B/mcptun-relay ...)
#   TSCALE       timeout multiplier, a whole number: from the environment
#                (tests/run.sh sets it), else 3 for sanitizer builds (SAN=1)
#                and 1 otherwise
#
#   free_port                  print a free loopback TCP port
#   wait_port PORT [TIMEOUT]   wait until 127.0.0.1:PORT accepts (WAIT_HOST
#                              overrides the host); 1 on timeout
#   wait_log FILE REGEX [TIMEOUT]  wait until FILE has a line matching the
#                              extended REGEX; 1 on timeout
#   start_bg NAME CMD...       run CMD in the background (own process group),
#                              stdout+stderr to $T/NAME.log; sets LAST_PID
#   stop_bg NAME [SIGNAL]      stop it: SIGNAL (default TERM), KILL after a
#                              grace; returns its exit status
#   pid_of NAME                print its pid
#   at_exit 'SHELL CODE'       run at exit, before the processes are killed
#                              (newest first); e.g. pg.sh's pg_stop
#   ok NAME | not_ok NAME [WHY] | skip NAME WHY
#   check NAME CMD...          ok if CMD succeeds, else not ok + its output
#   expect_eq NAME EXPECTED ACTUAL
#   expect_match NAME ERE TEXT ok if TEXT matches the extended regex
#   require_cmd NAME CMD       skip NAME and end the test if CMD is missing
#   san_check_logs             stop every background process (so leak
#                              reports get written), then "not ok - sanitizer
#                              LOG" for each log under $T with an ASan, UBSan
#                              or LSan report
#   finish                     exit 1 if any "not ok" was printed, else 0
#
# Timeouts are in seconds (fractions allowed) and are multiplied by TSCALE.
# A test's own fixed waits (agent sleeps, daemon timeouts, "took less than"
# bounds) scale too: $((N * TSCALE)), or _scale N for fractions.
# On failure the tail of every log under $T is printed, so tests/run.sh shows
# it; KEEP_T=1 keeps the temp dir.

: "${MCPTUN_TOP:?MCPTUN_TOP must be the repository root}"
B=${B:-build/rel}
SAN=${SAN:-0}
RELAY=$MCPTUN_TOP/$B/mcptun-relay
CLIENT=$MCPTUN_TOP/$B/mcptun-client
if [ -z "${TSCALE:-}" ]; then
	if [ "$SAN" = 1 ]; then TSCALE=3; else TSCALE=1; fi
fi
case $TSCALE in
''|*[!0-9]*|0) echo "not ok - harness: TSCALE must be a whole number >= 1, not '$TSCALE'"; exit 1 ;;
esac
# Grace in seconds between TERM and KILL when stopping background processes.
STOP_GRACE=${STOP_GRACE:-5}

T=$(mktemp -d "${TMPDIR:-/tmp}/mcptun-it.XXXXXX") || {
	echo "not ok - harness: cannot make a temp dir"
	exit 1
}
chmod 711 "$T"
mkdir "$T/.h"            # harness state: pids, failures, ports
: >"$T/.h/fails"
_AT_EXIT=""
_SAN_CHECKED=0

# _scale SECONDS: SECONDS times TSCALE (fractions kept).
_scale() {
	awk -v s="$1" -v k="$TSCALE" 'BEGIN { printf "%g", s * k }'
}

# --- reporting -----------------------------------------------------------

ok() { echo "ok - $1"; }

not_ok() {
	echo "not ok - $1"
	[ $# -gt 1 ] && echo "# $2"
	echo "$1" >>"$T/.h/fails"
	return 0
}

skip() { echo "skip - $1${2:+ # $2}"; }

check() {
	_ck_name=$1
	shift
	if "$@" >"$T/.h/check.out" 2>&1; then
		ok "$_ck_name"
	else
		not_ok "$_ck_name" "command failed (exit $?): $*"
		tail -n 20 "$T/.h/check.out" | sed 's/^/#   /'
	fi
}

expect_eq() {
	if [ "$2" = "$3" ]; then
		ok "$1"
	else
		not_ok "$1" "expected '$2', got '$3'"
	fi
}

expect_match() {
	if printf '%s\n' "$3" | grep -Eq -- "$2"; then
		ok "$1"
	else
		not_ok "$1" "'$3' does not match /$2/"
	fi
}

require_cmd() {
	if ! command -v "$2" >/dev/null 2>&1; then
		skip "$1" "$2 is not installed"
		finish
	fi
}

# --- ports and readiness ---------------------------------------------------

# The kernel picks the port; ports already handed out in this test are
# refused so two calls in a row never return the same one.
free_port() {
	_fp_i=0
	while [ $_fp_i -lt 20 ]; do
		_fp_p=$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])') || return 1
		if ! grep -qx "$_fp_p" "$T/.h/ports" 2>/dev/null; then
			echo "$_fp_p" >>"$T/.h/ports"
			echo "$_fp_p"
			return 0
		fi
		_fp_i=$((_fp_i + 1))
	done
	return 1
}

wait_port() {
	python3 - "${WAIT_HOST:-127.0.0.1}" "$1" "$(_scale "${2:-15}")" <<'EOF'
import socket, sys, time
host, port, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
end = time.monotonic() + limit
while True:
    try:
        socket.create_connection((host, port), timeout=1).close()
        sys.exit(0)
    except OSError:
        if time.monotonic() > end:
            sys.exit(1)
        time.sleep(0.05)
EOF
}

wait_log() {
	_wl_end=$(( $(date +%s) + $(awk -v t="$(_scale "${3:-15}")" 'BEGIN { printf "%d", t + 0.999 }') ))
	while :; do
		if [ -f "$1" ] && grep -Eq -- "$2" "$1"; then
			return 0
		fi
		[ "$(date +%s)" -ge "$_wl_end" ] && return 1
		sleep 0.05
	done
}

# --- background processes ------------------------------------------------

# Each process gets its own process group (setsid, which does not fork here
# because a background job of a non-interactive shell is not a group leader),
# so stopping it also stops whatever it spawned.
start_bg() {
	_sb_name=$1
	shift
	if command -v setsid >/dev/null 2>&1; then
		setsid "$@" >"$T/$_sb_name.log" 2>&1 </dev/null &
	else
		"$@" >"$T/$_sb_name.log" 2>&1 </dev/null &
	fi
	LAST_PID=$!
	echo "$LAST_PID" >"$T/.h/$_sb_name.pid"
	echo "$LAST_PID $_sb_name" >>"$T/.h/pids"
}

pid_of() { cat "$T/.h/$1.pid" 2>/dev/null; }

# _alive PID: whether PID still runs (a zombie counts as gone).
_alive() {
	kill -0 "$1" 2>/dev/null || return 1
	_al_s=$(ps -o stat= -p "$1" 2>/dev/null)
	case "$_al_s" in Z*|"") return 1 ;; esac
	return 0
}

# _signal PID SIG: the process group if PID leads one, else PID alone.
# (dash's kill takes no "--", so the group is written "-PID" directly.)
_signal() {
	kill -"$2" "-$1" 2>/dev/null || kill -"$2" "$1" 2>/dev/null
}

stop_bg() {
	_st_pid=$(pid_of "$1")
	[ -n "$_st_pid" ] || return 127
	_signal "$_st_pid" "${2:-TERM}"
	_st_n=0
	_st_max=$(awk -v g="$(_scale "$STOP_GRACE")" 'BEGIN { printf "%d", g * 20 }')
	while _alive "$_st_pid" && [ $_st_n -lt "$_st_max" ]; do
		sleep 0.05
		_st_n=$((_st_n + 1))
	done
	if _alive "$_st_pid"; then
		echo "# $1 (pid $_st_pid) ignored SIG${2:-TERM}; killing it"
		_signal "$_st_pid" KILL
	fi
	wait "$_st_pid" 2>/dev/null
	_st_rc=$?
	# Whatever else is left in its group goes too.
	kill -KILL "-$_st_pid" 2>/dev/null
	rm -f "$T/.h/$1.pid"
	return $_st_rc
}

# _stop_all: stop every background process still running, all at once.
_stop_all() {
	[ -f "$T/.h/pids" ] || return 0
	_sa_list=""
	while read -r _sa_pid _sa_name; do
		if [ -f "$T/.h/$_sa_name.pid" ] && _alive "$_sa_pid"; then
			_signal "$_sa_pid" TERM
			_sa_list="$_sa_list $_sa_pid"
		fi
	done <"$T/.h/pids"
	_sa_n=0
	_sa_max=$(awk -v g="$(_scale "$STOP_GRACE")" 'BEGIN { printf "%d", g * 20 }')
	for _sa_pid in $_sa_list; do
		while _alive "$_sa_pid" && [ $_sa_n -lt "$_sa_max" ]; do
			sleep 0.05
			_sa_n=$((_sa_n + 1))
		done
		if _alive "$_sa_pid"; then
			echo "# pid $_sa_pid ignored SIGTERM; killing it"
			_signal "$_sa_pid" KILL
		fi
		wait "$_sa_pid" 2>/dev/null
		kill -KILL "-$_sa_pid" 2>/dev/null
	done
	rm -f "$T/.h/pids"
}

at_exit() { _AT_EXIT="$1
$_AT_EXIT"; }

# --- end of test -----------------------------------------------------------

san_check_logs() {
	_stop_all
	_SAN_CHECKED=1
	for _sc_log in $(find "$T" -name '*.log' -type f 2>/dev/null | sort); do
		if grep -q -e 'ERROR: AddressSanitizer' -e 'runtime error:' \
		    -e 'LeakSanitizer' "$_sc_log"; then
			_sc_name=${_sc_log#"$T"/}
			not_ok "sanitizer ${_sc_name%.log}"
			grep -B2 -A25 -e 'Sanitizer' -e 'runtime error:' "$_sc_log" |
			    head -n 60 | sed 's/^/#   /'
		fi
	done
}

finish() {
	[ $_SAN_CHECKED = 1 ] || san_check_logs
	if [ -s "$T/.h/fails" ]; then
		exit 1
	fi
	exit 0
}

_cleanup() {
	_cl_rc=$?
	trap '' INT TERM
	set +e
	# at_exit hooks, newest first (each line is one hook).
	printf '%s\n' "$_AT_EXIT" | while IFS= read -r _cl_hook; do
		[ -n "$_cl_hook" ] && eval "$_cl_hook" >/dev/null 2>&1
	done
	_stop_all
	if [ -s "$T/.h/fails" ] || [ $_cl_rc -ne 0 ]; then
		for _cl_log in $(find "$T" -name '*.log' -type f 2>/dev/null | sort); do
			echo "# --- ${_cl_log#"$T"/} (last 25 lines) ---"
			tail -n 25 "$_cl_log" | sed 's/^/#   /'
		done
	fi
	if [ "${KEEP_T:-0}" = 1 ]; then
		echo "# temp dir kept: $T"
	else
		rm -rf "$T"
	fi
	exit $_cl_rc
}
trap _cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
