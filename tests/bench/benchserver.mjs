#!/usr/bin/env node
// The MCP server every benchmark column reaches: a raw newline-delimited
// JSON-RPC loop on stdin/stdout, with no SDK and no schema validation, so the
// upstream costs microseconds per call and is never what a column measures.
// It speaks just enough MCP for the SDK client and mcpload.c:
//
//   initialize            echoes the client's protocolVersion, tools capability
//   notifications/*       ignored
//   ping                  {}
//   tools/list            echo, blob
//   tools/call echo       {"content":[{"type":"text","text":<message>}]}
//   tools/call blob       {"content":[{"type":"text","text":"xxxx..."}]}, with
//                         arguments.bytes characters (default 1024, at most
//                         64 MiB); the strings are cached per size
//
// Anything else gets a JSON-RPC error -32601.  A malformed line gets -32700.
// It exits when stdin closes.
//
// `node benchserver.mjs --tcp PORT` is instead the far end of the raw link
// figure: it listens on 127.0.0.1:PORT and answers each line "N" with N
// bytes, so ssh -R can be timed carrying the same 4 MiB messages with no
// MCP around them.
import { createServer } from "node:net";

if (process.argv[2] === "--tcp") {
	const cache = new Map();
	createServer((sock) => {
		let pending = "";
		sock.on("data", (d) => {
			pending += d.toString("latin1");
			let i;
			while ((i = pending.indexOf("\n")) >= 0) {
				const n = Math.min(Number(pending.slice(0, i)) || 0, 64 << 20);
				pending = pending.slice(i + 1);
				if (!cache.has(n))
					cache.set(n, Buffer.alloc(n, 0x61));
				sock.write(cache.get(n));
			}
		});
		sock.on("error", () => sock.destroy());
	}).listen(Number(process.argv[3]), "127.0.0.1");
} else {
	serveStdio();
}

const TOOLS = [
	{
		name: "echo",
		description: "Returns its message.",
		inputSchema: {
			type: "object",
			properties: { message: { type: "string" } },
			required: ["message"],
		},
	},
	{
		name: "blob",
		description: "Returns a text of the requested number of bytes.",
		inputSchema: {
			type: "object",
			properties: { bytes: { type: "integer", minimum: 0 } },
		},
	},
];

const blobs = new Map();
function blobText(n) {
	let s = blobs.get(n);
	if (s === undefined) {
		// A repeating printable pattern: no JSON escaping, not all one byte.
		const pat = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-_";
		s = pat.repeat(Math.ceil(n / pat.length)).slice(0, n);
		if (blobs.size > 8)
			blobs.clear();
		blobs.set(n, s);
	}
	return s;
}

function reply(id, result) {
	process.stdout.write('{"jsonrpc":"2.0","id":' + JSON.stringify(id) +
	    ',"result":' + result + "}\n");
}

function fail(id, code, message) {
	process.stdout.write(JSON.stringify({ jsonrpc: "2.0", id: id ?? null,
	    error: { code, message } }) + "\n");
}

function handle(line) {
	let m;
	try {
		m = JSON.parse(line);
	} catch {
		fail(null, -32700, "parse error");
		return;
	}
	if (m.id === undefined || m.id === null || typeof m.method !== "string")
		return;		// a notification or a response: nothing to say
	const p = m.params || {};
	switch (m.method) {
	case "initialize":
		reply(m.id, JSON.stringify({
			protocolVersion: p.protocolVersion || "2025-06-18",
			capabilities: { tools: {} },
			serverInfo: { name: "mcptun-bench", version: "1.0.0" },
		}));
		return;
	case "ping":
		reply(m.id, "{}");
		return;
	case "tools/list":
		reply(m.id, JSON.stringify({ tools: TOOLS }));
		return;
	case "tools/call": {
		const a = p.arguments || {};
		if (p.name === "echo") {
			reply(m.id, JSON.stringify({ content: [{ type: "text",
			    text: String(a.message ?? "") }] }));
		} else if (p.name === "blob") {
			let n = Number.isInteger(a.bytes) ? a.bytes : 1024;
			n = Math.max(0, Math.min(n, 64 * 1024 * 1024));
			reply(m.id, '{"content":[{"type":"text","text":"' +
			    blobText(n) + '"}]}');
		} else {
			fail(m.id, -32602, "unknown tool " + p.name);
		}
		return;
	}
	default:
		fail(m.id, -32601, "method not found: " + m.method);
	}
}

function serveStdio() {
let buf = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => {
	buf += chunk;
	let i;
	while ((i = buf.indexOf("\n")) >= 0) {
		const line = buf.slice(0, i);
		buf = buf.slice(i + 1);
		if (line.trim() !== "")
			handle(line);
	}
});
process.stdin.on("end", () => process.exit(0));
process.stdout.on("error", () => process.exit(0));
}
