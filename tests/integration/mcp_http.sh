#!/bin/sh
# An internal Streamable HTTP MCP server through the whole tunnel: the
# official SDK client (agent.mjs) -> relay -> WSS link -> client -> the
# HTTP upstream (client/up_http.c) -> the reference server-everything in
# its Streamable HTTP mode, with answers compared to the same server
# reached directly.  Then what the agent reads when the upstream is
# unreachable, slow, answers 5xx or garbage, stops mid-session or is
# restarted (and forgets its sessions), and TLS to the upstream: the right
# CA accepted, a wrong one refused.  Header values never reach the log.
: "${MCPTUN_TOP:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$MCPTUN_TOP/tests/lib/common.sh"
. "$MCPTUN_TOP/tests/lib/certs.sh"
. "$MCPTUN_TOP/tests/lib/node.sh"
. "$MCPTUN_TOP/tests/lib/tunnel.sh"

require_node "mcp_http: node"
tunnel_init
EV1=$(free_port)	# server-everything: the comparisons
EV2=$(free_port)	# server-everything: stopped and restarted
FAKE=$(free_port)	# misbehaving upstreams
TLSP=$(free_port)	# TLS front for EV1
DEAD=$(free_port)	# nothing listens here
SECRET=hdr-$(openssl rand -hex 16)

write_relay_conf - <<EOF
limits:
  request_timeout: 30s
EOF

write_client_conf <<EOF
limits:
  request_timeout: 40s
servers:
  api:
    type: http
    url: http://127.0.0.1:$EV1/mcp
    headers:
      X-Api-Key: $SECRET
    # No mcptun_* tools in its list, so the answers diff clean against
    # the direct ones (tests/integration/offload.sh covers offload).
    offload:
      threshold_tokens: 0
  api2:
    type: http
    url: http://127.0.0.1:$EV2/mcp
  secure:
    type: http
    url: https://localhost:$TLSP/mcp
    ca_file: $CERTS/ca.crt
  wrongca:
    type: http
    url: https://localhost:$TLSP/mcp
    ca_file: $CERTS/other-ca.crt
  systemca:
    type: http
    url: https://localhost:$TLSP/mcp
  down:
    type: http
    url: http://127.0.0.1:$DEAD/mcp
  slow:
    type: http
    url: http://127.0.0.1:$FAKE/hang
    timeout: 2s
  e502:
    type: http
    url: http://127.0.0.1:$FAKE/502
  garbage:
    type: http
    url: http://127.0.0.1:$FAKE/garbage
  notrpc:
    type: http
    url: http://127.0.0.1:$FAKE/notrpc
  html:
    type: http
    url: http://127.0.0.1:$FAKE/html
  hdr:
    type: http
    url: http://127.0.0.1:$FAKE/hdr
    headers:
      X-Api-Key: $SECRET
  json:
    type: http
    url: http://127.0.0.1:$FAKE/json
  flood:
    type: http
    url: http://127.0.0.1:$FAKE/flood
  late:
    type: http
    url: http://127.0.0.1:$FAKE/late
    timeout: 35s
  badsse:
    type: http
    url: http://127.0.0.1:$FAKE/badsse
EOF

# A deliberately bad upstream: one misbehaviour per path.
cat >"$T/fake.mjs" <<'EOF'
import http from "node:http";
import { randomUUID } from "node:crypto";
const port = Number(process.argv[2]);
const sessions = new Map();	/* session id -> negotiated version */

/*
 * A minimal MCP server answering in application/json, 404 per the spec.
 * With flood, tools/call answers with an event stream of 3000 log
 * notifications of 10 kB each before the result, as fast as TCP takes it.
 */
function jsonServer(req, res, body, flood) {
	const reply = (status, obj, headers = {}) => {
		res.writeHead(status, { "content-type": "application/json", ...headers });
		res.end(JSON.stringify(obj));
	};
	if (req.method === "GET") {
		res.writeHead(405);
		res.end();
		return;
	}
	const sid = req.headers["mcp-session-id"];
	if (req.method === "DELETE") {
		sessions.delete(sid);
		res.writeHead(200);
		res.end();
		return;
	}
	const m = JSON.parse(body);
	if (m.method === "initialize") {
		const id = randomUUID();
		sessions.set(id, m.params.protocolVersion);
		reply(200, { jsonrpc: "2.0", id: m.id, result: {
		    protocolVersion: m.params.protocolVersion,
		    capabilities: { tools: {} },
		    serverInfo: { name: "fake-json", version: "1.0.0" } } },
		    { "mcp-session-id": id });
		return;
	}
	if (!sessions.has(sid)) {
		reply(404, { jsonrpc: "2.0", id: m.id ?? null,
		    error: { code: -32001, message: "Session not found" } });
		return;
	}
	if (req.headers["mcp-protocol-version"] !== sessions.get(sid)) {
		reply(400, { jsonrpc: "2.0", id: m.id ?? null,
		    error: { code: -32000, message: "wrong MCP-Protocol-Version" } });
		return;
	}
	if (m.id === undefined) {
		res.writeHead(202);
		res.end();
		return;
	}
	if (flood && m.method === "tools/call") {
		res.writeHead(200, { "content-type": "text/event-stream" });
		const pad = "y".repeat(10000);
		let i = 0;
		const more = () => {
			while (i < 3000) {
				const n = { jsonrpc: "2.0", method: "notifications/message",
				    params: { level: "info", data: { i, pad } } };
				i++;
				if (!res.write(`data: ${JSON.stringify(n)}\n\n`)) {
					res.once("drain", more);
					return;
				}
			}
			res.end(`data: ${JSON.stringify({ jsonrpc: "2.0", id: m.id,
			    result: { content: [{ type: "text", text: "sent 3000" }] } })}\n\n`);
		};
		more();
		return;
	}
	let result = {};
	if (m.method === "tools/list")
		result = { tools: [{ name: "forget", description: "ends the session",
		    inputSchema: { type: "object" } }] };
	else if (m.method === "tools/call") {
		sessions.delete(sid);
		result = { content: [{ type: "text", text: "forgotten" }] };
	}
	reply(200, { jsonrpc: "2.0", id: m.id, result });
}

http.createServer((req, res) => {
	let body = "";
	req.on("data", (c) => { body += c; });
	req.on("end", () => {
		switch (req.url) {
		case "/json":
		case "/flood":
			jsonServer(req, res, body, req.url === "/flood");
			return;
		case "/late":
			/* initialize answered after libwebsockets' own 20 s wait */
			setTimeout(() => jsonServer(req, res, body),
			    body.includes('"initialize"') ? 23000 : 0);
			return;
		case "/hang":
			return;		/* never answers */
		case "/502":
			res.writeHead(502, { "content-type": "text/plain" });
			res.end("upstream of the upstream is down\n");
			return;
		case "/garbage":
			res.writeHead(200, { "content-type": "application/json" });
			res.end("this is not json");
			return;
		case "/notrpc":
			res.writeHead(200, { "content-type": "application/json" });
			res.end('{"hello":"world"}');
			return;
		case "/html":
			res.writeHead(200, { "content-type": "text/html" });
			res.end("<html>hi</html>");
			return;
		case "/hdr": {
			/* What the upstream saw, told back in an error. */
			const h = req.headers;
			res.writeHead(503, { "content-type": "text/plain" });
			res.end(`key ${h["x-api-key"] === process.env.SECRET ? "ok" : "missing"}` +
			    ` accept ${h.accept} type ${h["content-type"]}\n`);
			return;
		}
		case "/badsse":
			res.writeHead(200, { "content-type": "text/event-stream" });
			res.end("data: {\"jsonrpc\":\"2.0\",\"id\":0,\n\n");
			return;
		}
		res.writeHead(404);
		res.end();
	});
}).listen(port, "127.0.0.1", () => console.log(`listening ${port}`));
EOF

start_everything_http ev1 "$EV1" || { not_ok "server-everything (1) starts"; finish; }
start_everything_http ev2 "$EV2" || { not_ok "server-everything (2) starts"; finish; }
start_bg fake env SECRET="$SECRET" node "$T/fake.mjs" "$FAKE"
start_bg tlsfront node "$NODE_DIR/https-proxy.mjs" --cert "$CERTS/server.crt" \
    --key "$CERTS/server.key" --port "$TLSP" --to "http://127.0.0.1:$EV1"
wait_port "$FAKE" 10 || not_ok "fake upstream listens"
wait_port "$TLSP" 10 || not_ok "TLS front listens"

start_relay
start_client client "$T/client.yaml" -v
wait_link

# Until the HTTP upstream is linked in, there is nothing to test here.
out=$(via_relay api '[{"op":"ping"},{"op":"close"}]' 2>&1)
case $out in
*"server type http not supported yet"*)
	skip "mcp_http" "this mcptun-client is built without the HTTP upstream"
	finish ;;
esac

# Runs in the background while the rest goes on; checked at the end.
via_relay late '[{"op":"ping"},{"op":"close"}]' --timeout 60000 \
    >"$T/late.out" 2>&1 &
late=$!

# --- the same answers as the server reached directly ------------------------
script='[{"op":"listTools"},
 {"op":"callTool","name":"echo","args":{"message":"hello through the tunnel"}},
 {"op":"callTool","name":"get-sum","args":{"a":2,"b":40}},
 {"op":"listResources"},
 {"op":"listResourceTemplates"},
 {"op":"readResource","uri":"demo://resource/static/document/architecture.md"},
 {"op":"listPrompts"},
 {"op":"getPrompt","name":"simple-prompt","args":{}},
 {"op":"callToolWithProgress","name":"trigger-long-running-operation","args":{"duration":1,"steps":3}},
 {"op":"sampling","prompt":"hi","text":"fixed answer"},
 {"op":"callTool","name":"get-tiny-image","args":{}},
 {"op":"ping"},
 {"op":"close"}]'
if agent --url "http://127.0.0.1:$EV1/mcp" --normalize "$script" \
    >"$T/direct.out" 2>"$T/direct.err"; then
	ok "direct Streamable HTTP session"
else
	not_ok "direct Streamable HTTP session"; cat "$T/direct.out" "$T/direct.err"
fi
if via_relay api "$script" --normalize >"$T/tunnel.out" 2>"$T/tunnel.err"; then
	ok "session through the tunnel to an HTTP upstream"
else
	not_ok "session through the tunnel to an HTTP upstream"
	cat "$T/tunnel.out" "$T/tunnel.err"
fi
if diff "$T/direct.out" "$T/tunnel.out" >"$T/diff.out"; then
	ok "tunnel answers equal the direct ones"
else
	not_ok "tunnel answers equal the direct ones"; head -n 40 "$T/diff.out"
fi
expect_eq "echo came back" 1 \
    "$(grep -c 'hello through the tunnel' "$T/tunnel.out")"
expect_match "progress notifications came through" \
    '"op":"callToolWithProgress","result":\{"progress":\[\{"progress":1,' \
    "$(cat "$T/tunnel.out")"
out=$(via_relay hdr '[{"op":"ping"}]' 2>&1)
expect_match "the upstream gets the configured header and MCP's" \
    'key ok accept application/json, text/event-stream type application/json' "$out"
check "the session was ended with DELETE" \
    wait_log "$T/ev1.log" 'Received session termination request' 5

# Several calls in flight at once on one session, answered out of order.
out=$(via_relay api '[{"op":"callToolWithProgress","name":"trigger-long-running-operation","args":{"duration":2,"steps":2},"label":"long"},{"op":"close"}]' 2>&1 &
	sleep 0.3
	via_relay api '[{"op":"callTool","name":"echo","args":{"message":"fast"}},{"op":"close"}]' 2>&1
	wait)
expect_match "a fast call is not held back by a long one" 'Echo: fast' "$out"

# A request and an answer larger than one write or read.
awk 'BEGIN { s = ""; for (i = 0; i < 150000; i++) s = s "x";
    printf "[{\"op\":\"callTool\",\"name\":\"echo\",\"args\":{\"message\":\"%s\"}},{\"op\":\"close\"}]\n", s }' \
    >"$T/big.json"
via_relay api "$T/big.json" >"$T/big.out" 2>"$T/big.err"
expect_eq "a 150 kB message both ways" 150006 \
    "$(grep -o 'Echo: x*' "$T/big.out" | tr -d '\n' | wc -c)"

# --- a spec-conformant server answering in application/json -----------------
out=$(via_relay json '[{"op":"listTools"},{"op":"ping"},{"op":"callTool","name":"forget","args":{}},{"op":"ping"},{"op":"ping"}]' 2>&1)
expect_match "JSON answers, session id and protocol version" \
    '"step":1,"op":"listTools","result":\{"tools":\[\{"name":"forget"' "$out"
expect_match "notifications get 202, requests their answer" \
    '"step":2,"op":"ping","result":\{\}' "$out"
expect_match "404 to our session id: the request fails naming the server" \
    '"step":4,.*upstream json: HTTP 404 from http://127.0.0.1:[0-9]+/json: Session not found' "$out"
expect_match "... and the agent's session is ended, not re-initialized" \
    '"step":5,.*-32005.*Session not found' "$out"
check "the client says the upstream ended the session" \
    grep -q 'upstream json ended the session (HTTP 404)' "$T/client.log"

# --- backpressure -----------------------------------------------------------
# 30 MB of notifications: more than the link queues, so the session pauses
# the upstream (its connection stops being read) and resumes it as the
# agent catches up; every notification arrives, in order, then the result.
via_relay flood '[{"op":"callTool","name":"x","args":{}},{"op":"notifications"},{"op":"close"}]' \
    --timeout 60000 >"$T/flood.out" 2>"$T/flood.err"
out=$(node -e '
const ls = require("fs").readFileSync(process.argv[1], "utf8").trim()
    .split("\n").map((l) => JSON.parse(l));
const r = ls.find((l) => l.step === 1), n = ls.find((l) => l.step === 2);
const idx = n?.result?.notifications?.map((x) => x.params.data.i) ?? [];
console.log(JSON.stringify(r?.result ?? r?.error), idx.length,
    idx.every((v, k) => v === k) ? "in-order" : "out-of-order");
' "$T/flood.out" 2>&1)
expect_match "a flood to a slower agent: all of it, in order, then the result" \
    'sent 3000.* 3000 in-order' "$out"
# Whether the link fills up depends on which side is slower (not so under
# sanitizers, where the client is).
if grep -q 'upstream flood: session .* paused' "$T/client.log"; then
	check "the paused upstream was resumed" \
	    grep -q 'upstream flood: session .* resumed' "$T/client.log"
else
	skip "the paused upstream was resumed" "the link never filled up here"
fi

# --- TLS to the upstream ---------------------------------------------------
out=$(via_relay secure '[{"op":"callTool","name":"echo","args":{"message":"over tls"}},{"op":"close"}]' 2>&1)
expect_match "https upstream with the test CA" 'Echo: over tls' "$out"
out=$(via_relay wrongca '[{"op":"ping"}]' 2>&1)
expect_match "https upstream with the wrong CA is refused, naming the server" \
    'upstream wrongca: cannot reach https://localhost:[0-9]+/mcp' "$out"
out=$(via_relay systemca '[{"op":"ping"}]' 2>&1)
expect_match "the test CA is not among the system roots" \
    'upstream systemca: cannot reach' "$out"

# --- upstreams that fail ---------------------------------------------------
out=$(via_relay down '[{"op":"ping"}]' 2>&1)
expect_match "unreachable upstream: the agent reads why" \
    "upstream down: cannot reach http://127.0.0.1:$DEAD/mcp" "$out"
start=$(date +%s)
out=$(via_relay slow '[{"op":"ping"}]' 2>&1)
took=$(( $(date +%s) - start ))
expect_match "slow upstream: -32002 after its timeout" \
    '"code":-32002.*upstream slow: no answer from http://127.0.0.1:[0-9]+/hang within 2000 ms' "$out"
if [ "$took" -lt 15 ]; then ok "the per-server timeout applies ($took s)"; else not_ok "the per-server timeout applies" "$took s"; fi
out=$(via_relay e502 '[{"op":"ping"}]' 2>&1)
expect_match "5xx: the status and the server in the error" \
    "upstream e502: HTTP 502 from http://127.0.0.1:$FAKE/502: upstream of the upstream is down" "$out"
out=$(via_relay garbage '[{"op":"ping"}]' 2>&1)
expect_match "a body that is not JSON" 'upstream garbage: .* answered with invalid JSON' "$out"
out=$(via_relay notrpc '[{"op":"ping"}]' 2>&1)
expect_match "JSON that is not JSON-RPC" 'upstream notrpc: .*not a JSON-RPC message' "$out"
out=$(via_relay html '[{"op":"ping"}]' 2>&1)
expect_match "a content type that is neither JSON nor SSE" \
    'upstream html: .*content type \\"text/html\\"' "$out"
out=$(via_relay badsse '[{"op":"ping"}]' 2>&1)
expect_match "an SSE event that is not JSON" 'upstream badsse: .*invalid JSON' "$out"
out=$(via_relay api '[{"op":"callTool","name":"echo","args":{"message":"still fine"}},{"op":"close"}]' 2>&1)
expect_match "the good upstream is unaffected" 'Echo: still fine' "$out"

# --- upstream stopped mid-session, then restarted ----------------------------
# The session waits for this script's go-ahead files, not for guessed
# sleeps: "while down" is sent once the upstream is dead, "after restart"
# once the new one listens, however slow the machine.
wait_ms=$((60000 * TSCALE))
via_relay api2 '[{"op":"callTool","name":"echo","args":{"message":"before"}},
 {"op":"waitFile","path":"'"$T/ev2.down"'","ms":'"$wait_ms"'},
 {"op":"callTool","name":"echo","args":{"message":"while down"}},
 {"op":"waitFile","path":"'"$T/ev2.up"'","ms":'"$wait_ms"'},
 {"op":"callTool","name":"echo","args":{"message":"after restart"}},
 {"op":"callTool","name":"echo","args":{"message":"after the end"}}]' \
    --timeout 60000 >"$T/midsession.out" 2>&1 &
mid=$!
via_relay api '[{"op":"sleep","ms":3000},{"op":"callTool","name":"echo","args":{"message":"bystander"}},{"op":"close"}]' \
    >"$T/bystander.out" 2>&1 &
by=$!
wait_log "$T/midsession.out" 'Echo: before' 30 || not_ok "the first call of the session"
stop_bg ev2 KILL
: >"$T/ev2.down"
wait_log "$T/midsession.out" '"step":3,' 60
start_everything_http ev2b "$EV2" || not_ok "server-everything (2) restarts"
: >"$T/ev2.up"
wait $mid
wait $by
out=$(cat "$T/midsession.out")
expect_match "before the stop: fine" 'Echo: before' "$out"
expect_match "upstream stopped: a clear error naming the server" \
    "\"step\":3,.*upstream api2: cannot reach http://127.0.0.1:$EV2/mcp" "$out"
# The restarted server no longer knows the session: the next call reads
# the upstream's own answer naming the server, or (when the client's event
# stream noticed first) the relay's 404 for the ended session; either way
# the session is over and a new one is needed.
expect_match "upstream restarted: the old session is ended, clearly" \
    '"step":5,.*"error".*(upstream api2: HTTP 400 from .*No valid session ID|-32005.*Session not found)' "$out"
# Step 6 follows step 5's answer at once, so it may meet the session at
# the client before the teardown (the upstream refuses it again), at the
# relay while the teardown is on its way (the relay ends the request with
# the session) or after it (404): an error in every case, never an echo.
expect_match "after the end, the session stays ended" '"step":6,"op":"callTool","error"' "$out"
if printf '%s\n' "$out" | grep -q 'Echo: after the end'; then
	not_ok "after the end, no echo comes back" "$(grep '"step":6' "$T/midsession.out")"
else
	ok "after the end, no echo comes back"
fi
expect_match "other sessions are unaffected" 'Echo: bystander' "$(cat "$T/bystander.out")"
check "the client logs why the session ended" \
    grep -q 'upstream api2 ended the session' "$T/client.log"
out=$(via_relay api2 '[{"op":"callTool","name":"echo","args":{"message":"new session"}},{"op":"close"}]' 2>&1)
expect_match "after the restart a new session works" 'Echo: new session' "$out"

wait $late
expect_match "an answer slower than lws's reply timeout, within the server's" \
    '"step":1,"op":"ping","result":\{\}' "$(cat "$T/late.out")"

# --- secrets ----------------------------------------------------------------
if grep -q -e "$SECRET" -e "$TOKEN" "$T/client.log" "$T/relay.log"; then
	not_ok "header values and tokens never logged"
else
	ok "header values and tokens never logged"
fi

san_check_logs
finish
