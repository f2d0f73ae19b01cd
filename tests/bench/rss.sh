#!/bin/sh
# Idle memory of mcptun-relay and mcptun-client: a relay and a client with
# the test CA, linked, no sessions; after RSS_IDLE seconds (5) each
# process's smaps is summed by mapping (tests/bench/smaps.py).  Figures,
# never pass/fail.  Two client configs:
#   plain     a jump host with a stdio and an http server
#   postgres  the same plus a postgres server (libpq is loaded)
#
#   sh tests/bench/rss.sh            (B=build/san for the SAN build)
: "${MCPTUN_TOP:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$MCPTUN_TOP/tests/lib/common.sh"
. "$MCPTUN_TOP/tests/lib/certs.sh"
. "$MCPTUN_TOP/tests/lib/tunnel.sh"

IDLE=${RSS_IDLE:-5}
tunnel_init
write_relay_conf -A
write_client_conf -o "$T/plain.yaml" <<CONF
audit_log: $T/audit.jsonl
servers:
  files:
    type: stdio
    command: cat
  wiki:
    type: http
    url: http://127.0.0.1:9/mcp
CONF
cp "$T/plain.yaml" "$T/postgres.yaml"
cat >>"$T/postgres.yaml" <<CONF
  db:
    type: postgres
    dsn: "host=127.0.0.1 port=9 dbname=app user=reader"
    access: read-only
CONF

start_bg relay "$RELAY" -c "$T/relay.yaml"
wait_port "$PORT" 10 || { echo "rss: relay does not listen" >&2; exit 1; }
for c in plain postgres; do
	start_bg "client-$c" ${RSS_WRAP:-} "$CLIENT" -c "$T/$c.yaml"
	if ! wait_log "$T/client-$c.log" 'link to .* up' 10; then
		echo "rss: client ($c) does not link" >&2
		cat "$T/client-$c.log" >&2
		exit 1
	fi
	sleep "$IDLE"
	echo "== mcptun-client, $c config, linked and idle ${IDLE}s"
	python3 "$MCPTUN_TOP/tests/bench/smaps.py" "$(pid_of "client-$c")"; [ -n "$RSS_HOOK" ] && sh -c "$RSS_HOOK" - "$(pid_of "client-$c")"
	stop_bg "client-$c"
done
echo "== mcptun-relay, one tunnel, idle"
python3 "$MCPTUN_TOP/tests/bench/smaps.py" "$(pid_of relay)"
stop_bg relay
