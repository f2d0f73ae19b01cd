// The floor for the latency rows of tests/bench/run.sh: a Streamable HTTP
// endpoint that answers in-process, with no proxy and no upstream behind
// it, over the same kind of HTTPS leg as the relay's.  What a load
// generator measures against it is its own cost plus Node's HTTPS server:
// no path can answer faster.
//
//   node floor.cjs PORT CERT KEY     (listens on 127.0.0.1:PORT)
//
// initialize and tools/call "echo" are answered as application/json;
// notifications get 202; GET and DELETE get 405 (allowed by the spec).
"use strict";
const https = require("https");
const fs = require("fs");

const [port, cert, key] = process.argv.slice(2);
if (!port || !cert || !key) {
	console.error("usage: node floor.cjs PORT CERT KEY");
	process.exit(2);
}
let sessions = 0;

function answer(m) {
	if (m.method === "initialize")
		return { protocolVersion: m.params.protocolVersion,
			capabilities: { tools: {} },
			serverInfo: { name: "floor", version: "1" } };
	if (m.method === "tools/call" && m.params.name === "echo")
		return { content: [{ type: "text", text: String(m.params.arguments.message) }] };
	return null;
}

const server = https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) },
	(req, res) => {
		if (req.method !== "POST") {
			res.writeHead(405, { allow: "POST" });
			return res.end();
		}
		const parts = [];
		req.on("data", (c) => parts.push(c));
		req.on("end", () => {
			let m;
			try {
				m = JSON.parse(Buffer.concat(parts));
			} catch {
				res.writeHead(400);
				return res.end();
			}
			if (m.id === undefined) {
				res.writeHead(202);
				return res.end();
			}
			const result = answer(m);
			const body = JSON.stringify(result ? { jsonrpc: "2.0", id: m.id, result } :
				{ jsonrpc: "2.0", id: m.id, error: { code: -32601, message: "not here" } });
			const h = { "content-type": "application/json",
				"content-length": Buffer.byteLength(body) };
			if (m.method === "initialize")
				h["mcp-session-id"] = `floor-${++sessions}`;
			res.writeHead(200, h);
			res.end(body);
		});
	});
server.keepAliveTimeout = 65000;
server.listen(Number(port), "127.0.0.1");
