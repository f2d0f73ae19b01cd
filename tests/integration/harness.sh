#!/bin/sh
# Self-test of the integration-test harness, run before any daemon test can
# mean anything: the test PKI verifies, a private PostgreSQL starts, seeds and
# answers, and the SDK agent sees the same tools of the reference server over
# stdio, over Streamable HTTP, and over HTTPS trusted through --ca.  It needs
# no mcptun binary, so it also proves CI installed what the tests need.
: "${MCPTUN_TOP:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$MCPTUN_TOP/tests/lib/common.sh"
. "$MCPTUN_TOP/tests/lib/certs.sh"
. "$MCPTUN_TOP/tests/lib/pg.sh"
. "$MCPTUN_TOP/tests/lib/node.sh"

# --- certificates --------------------------------------------------------
if make_test_ca "$T/pki"; then
	ok "certs: made"
	check "certs: server and client chain to the test CA" \
	    openssl verify -CAfile "$CERTS/ca.crt" "$CERTS/server.crt" "$CERTS/client.crt"
	check "certs: server matches localhost and 127.0.0.1" sh -c '
	    openssl verify -CAfile "$1/ca.crt" -verify_hostname localhost "$1/server.crt" &&
	    openssl verify -CAfile "$1/ca.crt" -verify_ip 127.0.0.1 "$1/server.crt"' - "$CERTS"
	check "certs: other CA does not verify the server" sh -c \
	    '! openssl verify -CAfile "$1/other-ca.crt" "$1/server.crt"' - "$CERTS"
	check "certs: wrong-host fails host-name check" sh -c \
	    '! openssl verify -CAfile "$1/ca.crt" -verify_hostname localhost "$1/wrong-host.crt"' - "$CERTS"
	expect_eq "certs: keys are 0600" 600 "$(stat -c %a "$CERTS/server.key")"
else
	not_ok "certs: made"
fi

# --- PostgreSQL ------------------------------------------------------------
pgport=$(free_port)
if pg_start "$T/pg" "$pgport"; then
	ok "pg: started on 127.0.0.1:$pgport"
	check "pg: seeded" pg_seed
	expect_eq "pg: events has 10000 rows" 10000 "$(pg_psql 'SELECT count(*) FROM events')"
	expect_eq "pg: join over foreign keys" "Ada Lovelace|2" \
	    "$(pg_psql "SELECT c.name, count(*) FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id = 1 GROUP BY c.name")"
	check "pg: password role logs in over TCP" \
	    "$PG_BIN/psql" "$PG_URL" -X -A -t -c 'SELECT 1'
	check "pg: wrong password is refused" sh -c \
	    '! "$3/psql" "postgresql://$1:wrong@127.0.0.1:$2/mcptun" -X -A -t -c "SELECT 1"' - "$PG_USER" "$PG_PORT" "$PG_BIN"
else
	not_ok "pg: started"
fi

# --- MCP agent against server-everything -----------------------------------
# The answers of the three transports must be the same after normalising.
script='[{"op":"listTools"},{"op":"callTool","name":"echo","args":{"message":"hi"}},{"op":"ping"},{"op":"close"}]'
if node_setup; then
	ok "node: npm ci from the lock file"
	if agent --stdio "$EVERYTHING_STDIO" --quiet-stderr --normalize "$script" >"$T/stdio.out" 2>"$T/agent-stdio.err"; then
		ok "agent: stdio session"
	else
		not_ok "agent: stdio session"; cat "$T/stdio.out" "$T/agent-stdio.err"
	fi
	ntools=$(grep -c '"name":"echo"' "$T/stdio.out")
	expect_eq "agent: stdio tools list has echo" 1 "$ntools"

	hport=$(free_port)
	if start_everything_http everything "$hport"; then
		ok "everything: streamableHttp up on $hport"
		if agent --url "http://127.0.0.1:$hport/mcp" --token test-token --normalize "$script" \
		    >"$T/http.out" 2>"$T/agent-http.err"; then
			ok "agent: Streamable HTTP session"
		else
			not_ok "agent: Streamable HTTP session"; cat "$T/http.out" "$T/agent-http.err"
		fi
		check "agent: stdio and HTTP answers are equal" diff "$T/stdio.out" "$T/http.out"

		# HTTPS in front of it, trusted only through --ca.
		sport=$(free_port)
		start_bg tls-proxy node "$NODE_DIR/https-proxy.mjs" --cert "$CERTS/server.crt" \
		    --key "$CERTS/server.key" --port "$sport" --to "http://127.0.0.1:$hport"
		if wait_log "$T/tls-proxy.log" '^listening' 10; then
			if agent --url "https://localhost:$sport/mcp" --ca "$CERTS/ca.crt" --normalize "$script" \
			    >"$T/https.out" 2>"$T/agent-https.err"; then
				ok "agent: HTTPS with --ca"
			else
				not_ok "agent: HTTPS with --ca"; cat "$T/https.out" "$T/agent-https.err"
			fi
			check "agent: stdio and HTTPS answers are equal" diff "$T/stdio.out" "$T/https.out"
			check "agent: HTTPS without --ca is refused" sh -c \
			    '! node "$1/agent.mjs" --url "https://localhost:$2/mcp" "[]" >/dev/null 2>&1' - "$NODE_DIR" "$sport"
			r=$(raw_http --ca "$CERTS/ca.crt" "https://localhost:$sport/mcp")
			expect_eq "raw: GET without session answers 400" 400 "$(printf '%s\n' "$r" | head -n 1)"
			r=$(raw_http --ca "$CERTS/other-ca.crt" "https://localhost:$sport/mcp")
			expect_match "raw: other CA is refused" '^ERROR ' "$r"
		else
			not_ok "https-proxy: started"
		fi
	else
		not_ok "everything: streamableHttp up"
	fi
else
	not_ok "node: npm ci from the lock file"
fi

san_check_logs
finish
