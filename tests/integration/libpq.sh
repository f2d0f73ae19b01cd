#!/bin/sh
# libpq is loaded only when a postgres server needs it (issue 3, the
# client's idle memory): the client binary does not link libpq; a client
# without a postgres server never maps it; a reload that adds one maps it
# and the new server answers at once; a client that starts with one maps it
# from the start; and where libpq cannot be loaded (masked with bubblewrap)
# the client says so naming the library, links anyway, and a session of
# the postgres server fails with that sentence.  No database is needed:
# initialize, ping and tools/list are answered without a connection.
: "${MCPTUN_TOP:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$MCPTUN_TOP/tests/lib/common.sh"
. "$MCPTUN_TOP/tests/lib/certs.sh"
. "$MCPTUN_TOP/tests/lib/node.sh"
. "$MCPTUN_TOP/tests/lib/tunnel.sh"

require_cmd "libpq: readelf" readelf
require_node "libpq: node"

# mapped PID: 0 if libpq is mapped into process PID, else 1.
mapped() { grep -q 'libpq\.so' "/proc/$1/maps"; }

out=$(readelf -d "$CLIENT" | grep NEEDED)
expect_match "client binary needs libc" 'libc\.so' "$out"
if printf '%s\n' "$out" | grep -q libpq; then
	not_ok "client binary does not link libpq" "$out"
else
	ok "client binary does not link libpq"
fi

tunnel_init
write_relay_conf
write_client_conf -o "$T/plain.yaml" <<CONF
servers:
  files:
    command: cat
CONF
# Port 9 (discard) is closed on loopback: the database is never reached.
{ cat "$T/plain.yaml"; cat <<CONF
  db:
    type: postgres
    dsn: "host=127.0.0.1 port=9 dbname=app user=reader connect_timeout=2"
CONF
} >"$T/pg.yaml"
ping_db() {
	via_relay db '[{"op":"ping"},{"op":"listTools"},{"op":"close"}]' 2>&1
}

start_relay

# --- no postgres server: never mapped, also not after a reload ------------
cp "$T/plain.yaml" "$T/client.yaml"
start_client
CPID=$LAST_PID
check "client links" wait_log "$T/client.log" 'link to .* up' 10
if mapped "$CPID"; then
	not_ok "libpq not mapped without a postgres server"
else
	ok "libpq not mapped without a postgres server"
fi

# --- a reload that adds one maps it, and its sessions work ----------------
cp "$T/pg.yaml" "$T/client.yaml.new"
mv "$T/client.yaml.new" "$T/client.yaml"
kill -HUP "$CPID"
check "reload adds db" wait_log "$T/client.log" 'reload \(.*\): added db' 10
if mapped "$CPID"; then
	ok "libpq mapped after a reload adds a postgres server"
else
	not_ok "libpq mapped after a reload adds a postgres server"
fi
out=$(ping_db)
expect_match "the added postgres server answers ping" \
    '"step":1,"op":"ping","result"' "$out"
expect_match "... and lists its tools" '"name":"list_tables"' "$out"
stop_bg client

# --- started with one: mapped from the start ---------------------------------
start_client client2 "$T/pg.yaml"
check "client with a postgres server links" \
    wait_log "$T/client2.log" 'link to .* up' 10
if mapped "$LAST_PID"; then
	ok "libpq mapped at start with a postgres server"
else
	not_ok "libpq mapped at start with a postgres server"
fi
stop_bg client2

# --- libpq missing: a warning naming it, the link, a clear session error ---
LIBPQ=$(ldconfig -p | sed -n 's/^[[:space:]]*libpq\.so\.5 .*=> //p' | head -n 1)
if [ -z "$LIBPQ" ] || ! command -v bwrap >/dev/null 2>&1; then
	skip "libpq missing" "needs bwrap and libpq.so.5 in ldconfig -p"
else
	LIBPQ=$(readlink -f "$LIBPQ")
	# /dev/null over the library file, everything else as it is.
	NOLIBPQ="bwrap --dev-bind / / --ro-bind /dev/null $LIBPQ"
	out=$($NOLIBPQ "$CLIENT" -n -c "$T/pg.yaml" 2>&1); rc=$?
	expect_eq "-n without libpq: the config is still valid" 0 "$rc"
	expect_match "-n without libpq: a warning names the library" \
	    'postgres server "db": cannot load libpq\.so\.5 \(is libpq5 installed\?\)' \
	    "$out"
	start_bg client3 $NOLIBPQ "$CLIENT" -c "$T/pg.yaml"
	check "client without libpq still links" \
	    wait_log "$T/client3.log" 'link to .* up' 10
	check "client without libpq: the warning is logged" \
	    grep -q 'cannot load libpq\.so\.5' "$T/client3.log"
	out=$(ping_db)
	expect_match "without libpq a postgres session fails naming libpq" \
	    'libpq\.so\.5' "$out"
	stop_bg client3
fi

san_check_logs
finish
