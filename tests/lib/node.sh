# Node side of the integration tests (sourced after common.sh): the pinned
# MCP SDK client (agent.mjs), the raw HTTP helper and the reference servers
# from tests/node/package-lock.json.
#
#   node_setup            npm ci in tests/node unless node_modules holds what
#                         package-lock.json pins; 1 if that fails
#   require_node NAME     node_setup, or "skip - NAME" and end the test
#   agent ARGS...         node tests/node/agent.mjs ARGS (see its header):
#                           agent --url URL --token T [--ca FILE] SCRIPT
#                           agent --stdio "$EVERYTHING_STDIO" SCRIPT
#   raw_http ARGS...      node tests/node/raw.mjs ARGS (see its header):
#                           raw_http --ca "$CERTS/ca.crt" -X POST --mcp -d '{}' URL
#   normalize [FILE...]   node tests/node/normalize.mjs (sorted keys, volatile
#                         values replaced) for diffing agent outputs
#   start_everything_http NAME PORT
#                         server-everything in Streamable HTTP mode on PORT
#                         (endpoint http://127.0.0.1:PORT/mcp), waits for it
#
# How the reference servers start (node_modules/.bin has the same as
# mcp-server-everything / mcp-server-postgres):
#   stdio:            node $EVERYTHING_JS stdio        ($EVERYTHING_STDIO)
#   Streamable HTTP:  PORT=N node $EVERYTHING_JS streamableHttp
#                     -> http://HOST:N/mcp (binds all interfaces; PORT
#                     defaults to 3001; "sse" is the old SSE mode)
#   postgres (stdio): node $PG_MCP_JS postgresql://USER:PW@HOST:PORT/DB
#                     (one read-only "query" tool, table schemas as resources)
# server-everything's tools of note: echo, get-sum, trigger-long-running-
# operation (progress notifications when a progressToken is given; it does
# not stop on cancel), trigger-sampling-request (sends sampling/createMessage
# to the client; only listed when the client declares sampling, which
# agent.mjs does), trigger-elicitation-request, get-tiny-image,
# toggle-simulated-logging.

NODE_DIR=$MCPTUN_TOP/tests/node
EVERYTHING_JS=$NODE_DIR/node_modules/@modelcontextprotocol/server-everything/dist/index.js
EVERYTHING_STDIO="node $EVERYTHING_JS stdio"
PG_MCP_JS=$NODE_DIR/node_modules/@modelcontextprotocol/server-postgres/dist/index.js

node_setup() {
	command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || {
		echo "node_setup: node and npm are needed" >&2
		return 1
	}
	# One npm ci at a time per checkout: tests of other checkouts or a
	# parallel run must not interleave in the same node_modules.
	_ns_lock=${TMPDIR:-/tmp}/mcptun-npm-$(printf '%s' "$NODE_DIR" | cksum | cut -d' ' -f1).lock
	(
		command -v flock >/dev/null 2>&1 && flock -w 600 9
		# A copy of the lock file npm ci last installed: compared by
		# content, since a checkout's time stamps say nothing (a new git
		# worktree's lock file is newer than a node_modules it shares).
		_ns_stamp=$NODE_DIR/node_modules/.mcptun-package-lock.json
		if cmp -s "$NODE_DIR/package-lock.json" "$_ns_stamp"; then
			exit 0
		fi
		echo "# node_setup: npm ci in $NODE_DIR"
		cd "$NODE_DIR" && npm ci --no-audit --no-fund >"$T/npm-ci.out" 2>&1 || {
			echo "node_setup: npm ci failed:" >&2
			tail -n 30 "$T/npm-ci.out" >&2
			exit 1
		}
		cp "$NODE_DIR/package-lock.json" "$_ns_stamp"
	) 9>"$_ns_lock"
}

require_node() {
	node_setup || {
		skip "$1" "node_setup failed (no node/npm, or npm ci failed)"
		finish
	}
}

agent() { node "$NODE_DIR/agent.mjs" "$@"; }
raw_http() { node "$NODE_DIR/raw.mjs" "$@"; }
normalize() { node "$NODE_DIR/normalize.mjs" "$@"; }

start_everything_http() {
	start_bg "$1" env PORT="$2" node "$EVERYTHING_JS" streamableHttp
	wait_port "$2" 20
}
