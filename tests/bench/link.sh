#!/bin/sh
# The tunnel link alone, against ssh -R and stunnel carrying the same bytes
# in the same run (issue 3's link benchmark).  Figures, never pass/fail.
#
#   sh tests/bench/link.sh        (after make; needs root only to apt-get
#                                  openssh / stunnel4 when they are missing)
#
# tests/bench/linkbench.c is built here against build/rel/libmcptun.a (the
# real proto/mux.c and proto/frame.c) and deps/out (libwebsockets, mbedTLS).
# Carriers, each asked for the same thing, a 4 MiB answer to a tiny request,
# and 64-byte round trips:
#   link      linkbench link: mux over one lws WSS connection on loopback,
#             a dialling child (mcptun-client's role) answers, the listening
#             parent (mcptun-relay's role) asks; TLS with a throwaway CA
#   ssh -R    linkbench tcp through ssh -R to linkbench tcp-serve: a
#             throwaway sshd on a loopback port with keys in the temp dir
#             (as tests/bench/run.sh does); bulk and pings are two channels
#             of the one ssh connection, as two streams share the link
#   stunnel   stunnel4 client -> stunnel4 server -> tcp-serve, TLS with the
#             same CA; one TLS connection per TCP connection, so its
#             "busy" pings do not share a connection with the bulk
#   tcp       plain loopback TCP, the ceiling
# Rounds alternate the carriers (LINK_ROUNDS, 3); the table shows medians
# over rounds and the link's ratio to ssh -R.  Knobs: LINK_SECONDS (3, bulk
# phase per round), LINK_PINGS (300), LINK_BYTES (4194304).
# A/B of the link in the same run: LINK_B_DEPS=DIR builds a second
# linkbench against another deps tree (e.g. a private build with a patched
# libwebsockets), LINK_B_OPTS adds linkbench options to it (e.g.
# "--notsent-lowat 131072"); either adds a "link B" column, run right after
# "link" in every round.  LINK_ONLY=1 skips ssh -R, stunnel and tcp.
# LINK_TRACE=1 passes --trace 1 to the link runs: where the busy pings
# waited, syscalls and CPU per MiB, in $T/res/link*.err (kept with
# KEEP_TMP=1) and summed up at the end.
# CPU per GiB counts linkbench's own processes and, for the TCP carriers,
# the carrier's processes and tcp-serve (from /proc, by process group).
# Writes build/bench/link.json (medians, every run, load average).
: "${MCPTUN_TOP:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$MCPTUN_TOP/tests/lib/common.sh"
. "$MCPTUN_TOP/tests/lib/certs.sh"
. "$MCPTUN_TOP/tests/bench/lib.sh"

ROUNDS=${LINK_ROUNDS:-3}
SECS=${LINK_SECONDS:-3}
PINGS=${LINK_PINGS:-300}
BYTES=${LINK_BYTES:-4194304}
OUT=$MCPTUN_TOP/build/bench
R=$T/res
mkdir -p "$OUT" "$R"
LOAD0=$(cut -d' ' -f1 /proc/loadavg)
say() { echo "link bench: $*" >&2; }

D=$MCPTUN_TOP/deps/out
LIB=$MCPTUN_TOP/build/rel/libmcptun.a
[ -f "$LIB" ] || { echo "link bench: $LIB missing; run make first" >&2; exit 1; }
LB=$OUT/linkbench
# shellcheck disable=SC2046
cc -O2 -std=c11 -D_GNU_SOURCE -Wall -I "$MCPTUN_TOP" -I "$D/include" -o "$LB" \
    "$MCPTUN_TOP/tests/bench/linkbench.c" "$LIB" "$D/lib/libwebsockets.a" \
    "$D/lib/libmbedtls.a" "$D/lib/libmbedx509.a" "$D/lib/libmbedcrypto.a" \
    $(ls "$D/lib/libeverest.a" "$D/lib/libp256m.a" 2>/dev/null) \
    -lpthread -lm || { echo "link bench: cannot build linkbench.c" >&2; exit 1; }
LB_B=""
if [ -n "${LINK_B_DEPS:-}${LINK_B_OPTS:-}" ]; then
	DB=${LINK_B_DEPS:-$D}
	LB_B=$OUT/linkbench-b
	# shellcheck disable=SC2046
	cc -O2 -std=c11 -D_GNU_SOURCE -Wall -I "$MCPTUN_TOP" -I "$DB/include" \
	    -I "$D/include" -o "$LB_B" "$MCPTUN_TOP/tests/bench/linkbench.c" \
	    "$LIB" "$DB/lib/libwebsockets.a" "$D/lib/libmbedtls.a" \
	    "$D/lib/libmbedx509.a" "$D/lib/libmbedcrypto.a" \
	    $(ls "$D/lib/libeverest.a" "$D/lib/libp256m.a" 2>/dev/null) \
	    -lpthread -lm || { echo "link bench: cannot build linkbench.c against $DB" >&2; exit 1; }
fi
TRACE=""
[ -n "${LINK_TRACE:-}" ] && TRACE="--trace 1"
make_test_ca "$T/pki" >/dev/null || { echo "link bench: cannot make the test CA" >&2; exit 1; }

SSH_NA="" ST_NA=""
if [ -n "${LINK_ONLY:-}" ]; then
	SSH_NA="skipped (LINK_ONLY)" ST_NA="skipped (LINK_ONLY)"
fi
[ -n "$ST_NA" ] || need_pkg stunnel4 stunnel4 || ST_NA="stunnel4 is not installed"

SRV_PORT=$(free_port)
start_bg tcpserve "$LB" tcp-serve "$SRV_PORT"
wait_port "$SRV_PORT" 10 || { echo "link bench: tcp-serve did not listen" >&2; exit 1; }

SSH_FWD=$(free_port)
if [ -z "$SSH_NA" ] && sshd_start; then
	ssh_forward sshR "$SSH_FWD:$SRV_PORT" || SSH_NA=$FWD_NA
fi
[ -n "$SSH_NA" ] && say "ssh -R: n/a: $SSH_NA"

if [ -z "$ST_NA" ]; then
	ST_SRV=$(free_port) ST_CLI=$(free_port)
	cat >"$T/st-server.conf" <<EOF
foreground = yes
pid =
debug = 3
[link]
accept = 127.0.0.1:$ST_SRV
connect = 127.0.0.1:$SRV_PORT
cert = $T/pki/server.crt
key = $T/pki/server.key
EOF
	cat >"$T/st-client.conf" <<EOF
foreground = yes
pid =
debug = 3
[link]
client = yes
accept = 127.0.0.1:$ST_CLI
connect = 127.0.0.1:$ST_SRV
CAfile = $T/pki/ca.crt
verifyChain = yes
checkHost = localhost
EOF
	start_bg stsrv stunnel4 "$T/st-server.conf"
	start_bg stcli stunnel4 "$T/st-client.conf"
	{ wait_port "$ST_SRV" 10 && wait_port "$ST_CLI" 10; } ||
	    ST_NA="stunnel4 did not listen: $(tail -n 2 "$T/stsrv.log" | tr '\n' ' ')"
fi
[ -n "$ST_NA" ] && say "stunnel: n/a: $ST_NA"

# cpu_ticks NAME...: CPU clock ticks used so far by the process groups of
# these start_bg processes (sshd's per-connection child included).
cpu_ticks() {
	_c_pids=""
	for _c_n in "$@"; do
		_c_pids="$_c_pids $(pgrep -g "$(pid_of "$_c_n")" 2>/dev/null)"
	done
	# shellcheck disable=SC2086
	[ -n "${_c_pids# }" ] || { echo 0; return; }
	# shellcheck disable=SC2086
	for _c_p in $_c_pids; do cat "/proc/$_c_p/stat" 2>/dev/null; done |
	    awk '{ sub(/^.*\) /, ""); t += $12 + $13 } END { print t + 0 }'
}
# run NAME CMD...: one run, its JSON line appended to $R/NAME.jsonl, with
# "carrier_cpu_s" added: what the processes of $CARRIER (start_bg names)
# used meanwhile.
run() {
	_r_n=$1
	shift
	say "  $_r_n"
	# shellcheck disable=SC2086
	_r_c0=$(cpu_ticks $CARRIER)
	if ! timeout -k 5 $((SECS * 3 + 60)) "$@" >"$R/one.json" 2>>"$R/$_r_n.err"; then
		say "  $_r_n failed: $(tail -n 2 "$R/$_r_n.err" | tr '\n' ' ')"
		return
	fi
	# shellcheck disable=SC2086
	_r_c1=$(cpu_ticks $CARRIER)
	python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))
r["carrier_cpu_s"] = (int(sys.argv[3]) - int(sys.argv[2])) / float(sys.argv[4])
print(json.dumps(r))' "$R/one.json" "$_r_c0" "$_r_c1" "$(getconf CLK_TCK)" >>"$R/$_r_n.jsonl"
}
OPTS="--bytes $BYTES --seconds $SECS --pings $PINGS"
i=1
while [ $i -le "$ROUNDS" ]; do
	say "round $i of $ROUNDS"
	CARRIER=""
	# shellcheck disable=SC2086
	run link "$LB" link --cert "$T/pki/server.crt" --key "$T/pki/server.key" \
	    --ca "$T/pki/ca.crt" $OPTS $TRACE
	# shellcheck disable=SC2086
	[ -n "$LB_B" ] && run linkB "$LB_B" link --cert "$T/pki/server.crt" \
	    --key "$T/pki/server.key" --ca "$T/pki/ca.crt" $OPTS $TRACE \
	    ${LINK_B_OPTS:-}
	# shellcheck disable=SC2086
	CARRIER="sshd sshR tcpserve"
	[ -z "$SSH_NA" ] && run ssh "$LB" tcp "127.0.0.1:$SSH_FWD" --carrier ssh-R $OPTS
	# shellcheck disable=SC2086
	CARRIER="stsrv stcli tcpserve"
	[ -z "$ST_NA" ] && run stunnel "$LB" tcp "127.0.0.1:$ST_CLI" --carrier stunnel $OPTS
	CARRIER="tcpserve"
	# shellcheck disable=SC2086
	[ -z "${LINK_ONLY:-}" ] && run tcp "$LB" tcp "127.0.0.1:$SRV_PORT" --carrier tcp $OPTS
	i=$((i + 1))
done

python3 - "$R" "$OUT/link.json" "$LOAD0 at start, $(cut -d' ' -f1 /proc/loadavg) at end" \
    "$(nproc)" "$ROUNDS" "$SSH_NA" "$ST_NA" \
    "${LINK_B_DEPS:+deps $LINK_B_DEPS }${LINK_B_OPTS:-}" <<'EOF'
import json, os, statistics, sys
res, out, load, nproc, rounds, ssh_na, st_na, b_what = sys.argv[1:9]
keys = ["bulk_mb_per_s", "idle_p50_us", "idle_p99_us", "busy_p50_us",
        "busy_p99_us", "busy_bulk_mb_per_s"]
cols = [("link", "link"), ("ssh", "ssh -R"), ("stunnel", "stunnel"),
        ("tcp", "tcp")]
if b_what:
    cols.insert(1, ("linkB", "link B"))
runs, med = {}, {}
for c, _ in cols:
    p = os.path.join(res, c + ".jsonl")
    rs = []
    if os.path.exists(p):
        for line in open(p):
            try:
                rs.append(json.loads(line))
            except ValueError:
                pass
    runs[c] = rs
    for r in rs:
        moved = (r["bulk_n"] + r["busy_bulk_n"]) * r["bytes"] / 2.0**30
        r["cpu_s_per_gib"] = ((r.get("cpu_s", 0) + r.get("carrier_cpu_s", 0))
                              / moved if moved else None)
    med[c] = {k: statistics.median([r[k] for r in rs]) for k in keys} if rs else None
    if rs and all(r["cpu_s_per_gib"] is not None for r in rs):
        med[c]["cpu_s_per_gib"] = statistics.median(r["cpu_s_per_gib"] for r in rs)
na = {"ssh": ssh_na, "stunnel": st_na}
def ratio(a, b, k):
    if med.get(a) and med.get(b) and med[a].get(k) and med[b].get(k):
        return med[a][k] / med[b][k]
    return None
doc = {"what": "tunnel link alone: 4 MiB answers (MiB/s) and 64-byte round "
       "trips (us), idle and next to a bulk transfer; medians over rounds",
       "nproc": int(nproc), "load": load, "rounds": int(rounds),
       "median": med, "runs": runs,
       "na": {k: v for k, v in na.items() if v}, "link_b": b_what or None,
       "ratio_link_to_ssh": {k: ratio("link", "ssh", k) for k in keys + ["cpu_s_per_gib"]}}
json.dump(doc, open(out, "w"), indent=1)
names = {"bulk_mb_per_s": "bulk MiB/s (4 MiB answers)",
         "idle_p50_us": "64 B round trip p50 us, idle",
         "idle_p99_us": "64 B round trip p99 us, idle",
         "busy_p50_us": "64 B round trip p50 us, during bulk",
         "busy_p99_us": "64 B round trip p99 us, during bulk",
         "busy_bulk_mb_per_s": "bulk MiB/s during the pings",
         "cpu_s_per_gib": "CPU s per GiB moved (both ends + carrier)"}
w = max(len(v) for v in names.values())
print(("%-*s" + " %9s" * len(cols) + " %11s") % ((w, "") +
      tuple(n for _, n in cols) + ("link/ssh",)))
for k in keys + ["cpu_s_per_gib"]:
    row = []
    for c, _ in cols:
        v = med[c].get(k) if med[c] else None
        row.append("%9.1f" % v if v is not None and v < 100 else
                   "%9.0f" % v if v is not None else "%9s" % "n/a")
    r = ratio("link", "ssh", k)
    print("%-*s %s %11s" % (w, names[k], " ".join(row),
          "%.2fx" % r if r is not None else "n/a"))
for c in ("link", "linkB"):
    m = med.get(c)
    if m:
        print("%s: p99 during bulk is %.1fx idle (issue 3 target: within 3x)" %
              (c, m["busy_p99_us"] / m["idle_p99_us"] if m["idle_p99_us"] else 0))
if b_what and med.get("link") and med.get("linkB"):
    print("link B is %s; B/A: %s" % (b_what, ", ".join(
        "%s %.2f" % (k, ratio("linkB", "link", k)) for k in keys +
        ["cpu_s_per_gib"] if ratio("linkB", "link", k) is not None)))
for k, v in na.items():
    if v:
        print("%s: n/a: %s" % (k, v))
print("load average %s, %s CPUs; written to %s" % (load, nproc, out))
EOF
if [ -n "$TRACE" ]; then
	for c in link linkB; do
		[ -f "$R/$c.err" ] || continue
		echo "$c --trace, every round:"
		grep -h -A3 '^trace busy' "$R/$c.err" | grep -v '^--'
		grep -h '^trace bulk' "$R/$c.err"
	done
fi
