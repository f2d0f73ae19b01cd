#!/bin/sh
# make demo, the README's main job, in one-shot mode: the example configs
# load, the link comes up and a real MCP call is answered through it.
: "${MCPTUN_TOP:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$MCPTUN_TOP/tests/lib/common.sh"
. "$MCPTUN_TOP/tests/lib/node.sh"
require_node "make demo"

out=$(cd "$MCPTUN_TOP" && DEMO_ONESHOT=1 B=$B timeout $((60 * TSCALE)) \
    sh examples/demo.sh 2>&1); rc=$?
printf '%s\n' "$out" | sed 's/^/# /'
expect_eq "make demo exits 0" 0 "$rc"
expect_match "demo: link up" 'tunnel demo: link up' "$out"
expect_match "demo: echo answered through the tunnel" \
    'tools/call echo -> "Echo: hello through the tunnel"' "$out"
expect_match "demo: get-sum answered" 'The sum of 20 and 22 is 42' "$out"
expect_match "demo: audit line written" '"outcome":"ok"' "$out"
expect_match "demo: prints a claude mcp add line" \
    'claude mcp add --transport http mcptun-demo https://localhost:[0-9]+/mcp/demo/everything --header "Authorization: Bearer [0-9a-f]{48}"' "$out"
case "$out" in
*Sanitizer*|*"runtime error:"*) not_ok "demo: no sanitizer report" ;;
*) ok "demo: no sanitizer report" ;;
esac
finish
