#!/usr/bin/env node
// A tiny stdio MCP server for the offload tests (tests/integration/offload.sh):
// newline-delimited JSON-RPC written by hand, so a 100 MB result is streamed
// to stdout in pieces instead of being built as one string first.
//
//   node bigserver.mjs             serve MCP on stdin/stdout
//   node bigserver.mjs --gen N     print the text the big tool returns for
//                                  bytes=N (what the test compares against)
//   node bigserver.mjs --line I    print line I of that text
//
// Tools:
//   big {bytes}          a text result of exactly `bytes` bytes of numbered
//                        64-byte lines ("line 00000001 value=... row....\n");
//                        every 1000th line says MATCHME instead of row
//   sized {message_bytes} a text result whose whole JSON-RPC response line
//                        (without its newline) is exactly message_bytes long
//   mixed {bytes}        big's text, then an image item and structuredContent
//                        (to see what is kept beside the stored text)
import { Buffer } from "node:buffer";
import process from "node:process";
import readline from "node:readline";

const LINE = 64;

// Line i (from 1): 63 visible bytes and a newline.
function line(i) {
	const tag = i % 1000 === 0 ? "MATCHME" : "row";
	let s = `line ${String(i).padStart(8, "0")} value=${(i * 7919) % 100003} ${tag} `;
	return s.padEnd(LINE - 1, ".") + "\n";
}

// Calls put(chunk) with the text of big(bytes), in pieces of ~1024 lines.
function generate(bytes, put) {
	let left = bytes;
	let i = 1;
	while (left > 0) {
		let chunk = "";
		for (let k = 0; k < 1024 && left > 0; k++, i++) {
			let l = line(i);
			if (l.length > left)
				l = l.slice(0, left);
			chunk += l;
			left -= l.length;
		}
		if (!put(chunk))
			return i;
	}
	return 0;
}

if (process.argv[2] === "--line") {
	process.stdout.write(line(Number(process.argv[3])));
	process.exit(0);
}
if (process.argv[2] === "--gen") {
	const n = Number(process.argv[3]);
	const out = [];
	generate(n, (c) => { out.push(c); return true; });
	process.stdout.write(out.join(""));
	process.exit(0);
}

// Writes, waiting for stdout to drain when it is full.
let queue = Promise.resolve();
function send(s) {
	queue = queue.then(() => new Promise((resolve) => {
		if (process.stdout.write(s))
			resolve();
		else
			process.stdout.once("drain", resolve);
	}));
	return queue;
}

function reply(id, result) {
	return send(JSON.stringify({ jsonrpc: "2.0", id, result }) + "\n");
}

// The big text as a JSON string's inside, streamed.
async function sendBig(id, bytes, tail) {
	await send(`{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":{"content":[{"type":"text","text":"`);
	let left = bytes, i = 1;
	while (left > 0) {
		let chunk = "";
		for (let k = 0; k < 4096 && left > 0; k++, i++) {
			let l = line(i);
			if (l.length > left)
				l = l.slice(0, left);
			chunk += l;
			left -= l.length;
		}
		await send(JSON.stringify(chunk).slice(1, -1));
	}
	await send(`"}${tail}]}}\n`);
}

const tools = [
	{ name: "big", description: "numbered lines, exactly `bytes` bytes",
	  inputSchema: { type: "object", properties: { bytes: { type: "integer" } }, required: ["bytes"] } },
	{ name: "sized", description: "a response line of exactly message_bytes bytes",
	  inputSchema: { type: "object", properties: { message_bytes: { type: "integer" } }, required: ["message_bytes"] } },
	{ name: "mixed", description: "big's text, an image and structuredContent",
	  inputSchema: { type: "object", properties: { bytes: { type: "integer" } }, required: ["bytes"] } },
];

async function call(id, name, args) {
	if (name === "big")
		return sendBig(id, Number(args?.bytes ?? 0), "");
	if (name === "mixed")
		return sendBig(id, Number(args?.bytes ?? 0),
			`,{"type":"image","data":"iVBORw0KGgo=","mimeType":"image/png"}],"structuredContent":{"rows":[${
			Array.from({ length: 5000 }, (_, k) => `{"n":${k},"s":"${"x".repeat(40)}"}`).join(",")}],"count":5000},"x":[{"y":1}`);
	if (name === "sized") {
		const want = Number(args?.message_bytes ?? 0);
		const head = `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":{"content":[{"type":"text","text":"`;
		const tail = `"}]}}`;
		const n = Math.max(0, want - Buffer.byteLength(head) - tail.length);
		let text = "";
		for (let k = 0; text.length < n; k++)
			text += String.fromCharCode(97 + (k % 26));
		return send(head + text.slice(0, n) + tail + "\n");
	}
	return send(JSON.stringify({ jsonrpc: "2.0", id, error: { code: -32602, message: `unknown tool ${name}` } }) + "\n");
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on("line", (l) => {
	let m;
	try {
		m = JSON.parse(l);
	} catch {
		return;
	}
	if (m.id === undefined || m.method === undefined)
		return;		// notifications, responses
	switch (m.method) {
	case "initialize":
		reply(m.id, {
			protocolVersion: m.params?.protocolVersion ?? "2025-06-18",
			capabilities: { tools: {} },
			serverInfo: { name: "bigserver", version: "1.0.0" },
		});
		break;
	case "ping":
		reply(m.id, {});
		break;
	case "tools/list":
		reply(m.id, { tools });
		break;
	case "tools/call":
		call(m.id, m.params?.name, m.params?.arguments);
		break;
	default:
		send(JSON.stringify({ jsonrpc: "2.0", id: m.id, error: { code: -32601, message: "method not found" } }) + "\n");
	}
});
rl.on("close", () => queue.then(() => process.exit(0)));
