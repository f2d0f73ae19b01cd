#!/usr/bin/env node
// A long-lived MCP agent for mcptun's reload tests, on the official
// TypeScript SDK: it holds one Streamable HTTP session open while the
// test edits YAML files and sends signals, and takes its steps one JSON
// line at a time from a file or FIFO, so the shell decides when each
// happens.
//
//   node session.mjs --url URL [--token T] [--ca FILE] [--timeout MS] STEPS
//
// STEPS is a path (a FIFO the test keeps open for writing, or a file);
// the session ends at EOF or after {"op":"close"}.  Steps (each may carry
// "label", echoed back; "async":true runs it without waiting, its line
// comes when it finishes):
//   {"op":"listTools"} {"op":"listPrompts"} {"op":"listResources"} {"op":"ping"}
//   {"op":"callTool","name":"everything_echo","args":{"message":"hi"}}
//   {"op":"callToolWithProgress","name":"...","args":{...}}  result + progress
//   {"op":"loop","name":"...","args":{...},"count":N}  N calls in a row;
//      result {"ok":K,"failed":[errors...]}
//   {"op":"getPrompt","name":"...","args":{}}
//   {"op":"readResource","uri":"..."}
//   {"op":"sessionId"} {"op":"sleep","ms":100} {"op":"close"}
//
// Output, one JSON object per line on stdout:
//   {"step":N,"op":OP,"result":...} or {"step":N,"op":OP,"error":{...}}
//   {"event":"notification","method":M,"params":P}  as they arrive
//   {"event":"connected","serverInfo":...}          after initialize
//   {"event":"end"}                                  before exit
//
// TLS: as agent.mjs, --ca re-runs this script with NODE_EXTRA_CA_CERTS.
import { spawnSync } from "node:child_process";
import { createReadStream } from "node:fs";
import { resolve } from "node:path";
import { createInterface } from "node:readline";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

function usage(msg) {
	if (msg)
		process.stderr.write(`session.mjs: ${msg}\n`);
	process.stderr.write("usage: session.mjs --url URL [--token T] [--ca FILE] [--timeout MS] STEPS\n");
	process.exit(2);
}

const opts = { timeout: 30000 };
{
	const argv = process.argv.slice(2);
	for (let i = 0; i < argv.length; i++) {
		const a = argv[i];
		const val = () => {
			if (i + 1 >= argv.length)
				usage(`${a} needs a value`);
			return argv[++i];
		};
		switch (a) {
		case "--url": opts.url = val(); break;
		case "--token": opts.token = val(); break;
		case "--ca": opts.ca = resolve(val()); break;
		case "--timeout": opts.timeout = Number(val()); break;
		default:
			if (a.startsWith("--") || opts.steps !== undefined)
				usage(`unexpected argument "${a}"`);
			opts.steps = a;
		}
	}
	if (!opts.url || !opts.steps)
		usage("--url and STEPS are required");
}

if (opts.ca && process.env.NODE_EXTRA_CA_CERTS !== opts.ca) {
	const r = spawnSync(process.execPath, process.argv.slice(1), {
		stdio: "inherit",
		env: { ...process.env, NODE_EXTRA_CA_CERTS: opts.ca },
	});
	process.exit(r.status ?? 2);
}

function emit(obj) {
	process.stdout.write(JSON.stringify(obj) + "\n");
}

function errorObject(e) {
	const o = { code: e?.code ?? null, message: String(e?.message ?? e) };
	if (e?.data !== undefined)
		o.data = e.data;
	return o;
}

const client = new Client({ name: "mcptun-reload-agent", version: "1.0.0" },
	{ capabilities: {} });
client.fallbackNotificationHandler = async (n) => {
	emit({ event: "notification", method: n.method, params: n.params ?? null });
};
client.onerror = (e) => process.stderr.write(`session.mjs: ${e?.message ?? e}\n`);

const headers = {};
if (opts.token)
	headers.Authorization = `Bearer ${opts.token}`;
const transport = new StreamableHTTPClientTransport(new URL(opts.url),
	{ requestInit: { headers } });
const reqOpts = { timeout: opts.timeout, resetTimeoutOnProgress: true };
let closed = false;

async function runStep(s) {
	switch (s.op) {
	case "listTools": return client.listTools(s.params, reqOpts);
	case "listPrompts": return client.listPrompts(s.params, reqOpts);
	case "listResources": return client.listResources(s.params, reqOpts);
	case "ping": return client.ping(reqOpts);
	case "callTool":
		return client.callTool({ name: s.name, arguments: s.args ?? {} },
			undefined, reqOpts);
	case "callToolWithProgress": {
		const progress = [];
		const result = await client.callTool(
			{ name: s.name, arguments: s.args ?? {} }, undefined,
			{ ...reqOpts, onprogress: (p) => progress.push(p) });
		return { result, progress: progress.length };
	}
	case "loop": {
		let ok = 0;
		const failed = [];
		for (let i = 0; i < (s.count ?? 1); i++) {
			try {
				const r = await client.callTool({ name: s.name,
					arguments: s.args ?? {} }, undefined, reqOpts);
				if (r.isError)
					failed.push({ i, isError: true, content: r.content });
				else
					ok++;
			} catch (e) {
				failed.push({ i, ...errorObject(e) });
			}
			if (s.pauseMs)
				await new Promise((r) => setTimeout(r, s.pauseMs));
		}
		return { ok, failed };
	}
	case "getPrompt":
		return client.getPrompt({ name: s.name, arguments: s.args ?? {} }, reqOpts);
	case "readResource": return client.readResource({ uri: s.uri }, reqOpts);
	case "sessionId": return { sessionId: transport.sessionId ?? null };
	case "sleep":
		await new Promise((r) => setTimeout(r, s.ms ?? 100));
		return {};
	case "close":
		closed = true;
		if (transport.terminateSession)
			await transport.terminateSession().catch(() => {});
		await client.close();
		return { closed: true };
	default:
		throw Object.assign(new Error(`unknown op "${s.op}"`), { code: "EUSAGE" });
	}
}

async function step(n, s) {
	const base = { step: n, op: s.op };
	if (s.label !== undefined)
		base.label = s.label;
	try {
		emit({ ...base, result: await runStep(s) });
	} catch (e) {
		emit({ ...base, error: errorObject(e) });
	}
}

try {
	await client.connect(transport, reqOpts);
	emit({ event: "connected", serverInfo: client.getServerVersion(),
		capabilities: client.getServerCapabilities() });
} catch (e) {
	emit({ event: "connect-failed", error: errorObject(e) });
	process.exit(2);
}

const pending = [];
const rl = createInterface({ input: createReadStream(opts.steps), crlfDelay: Infinity });
let n = 0;
for await (const line of rl) {
	if (line.trim() === "")
		continue;
	let s;
	try {
		s = JSON.parse(line);
	} catch (e) {
		emit({ step: ++n, op: null, error: { code: "EUSAGE", message: `bad step: ${e.message}` } });
		continue;
	}
	const p = step(++n, s);
	if (s.async)
		pending.push(p);
	else
		await p;
	if (closed)
		break;
}
await Promise.all(pending);
if (!closed)
	await client.close().catch(() => {});
emit({ event: "end" });
setTimeout(() => process.exit(0), 200).unref();
