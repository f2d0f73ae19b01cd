#!/usr/bin/env node
// MCP agent CLI for mcptun's integration tests, built on the official
// TypeScript SDK so the tunnel is exercised by the same client code real
// agents use.  It connects over Streamable HTTP (through the relay) or over
// stdio (the direct baseline), runs a JSON script of steps and prints one JSON
// object per step on stdout, so a test can diff the tunnel's answers against
// the direct ones after `normalize.mjs`.
//
//   node agent.mjs --url URL [--token TOKEN] [--ca FILE] [options] SCRIPT
//   node agent.mjs --stdio "CMD ARGS..." [options] SCRIPT
//
// SCRIPT is a file with a JSON array of steps, "-" for stdin, or the JSON
// text itself when it starts with "[".  Options:
//   --header "Name: value"  extra HTTP header (repeatable)
//   --timeout MS            per-request timeout (default 30000)
//   --normalize             print normalised lines (see normalize.mjs)
//   --roots                 declare the roots capability (answers no roots)
//   --stop-on-error         stop at the first failed step
//   --quiet-stderr          hide the stdio server's stderr
//
// Steps (any step may carry "label", echoed in its output line):
//   {"op":"listTools"} {"op":"listResources"} {"op":"listResourceTemplates"}
//   {"op":"listPrompts"} {"op":"ping"}
//   {"op":"callTool","name":"echo","args":{"message":"hi"}}
//   {"op":"readResource","uri":"demo://resource/static/document/architecture.md"}
//   {"op":"getPrompt","name":"simple-prompt","args":{}}
//   {"op":"setLoggingLevel","level":"debug"}
//   {"op":"callToolWithProgress","name":"trigger-long-running-operation",
//    "args":{"duration":1,"steps":3}}      result plus the progress list
//   {"op":"sampling","prompt":"hi","text":"fixed answer"}  calls
//    server-everything's trigger-sampling-request (or "name"/"args"); the
//    client's sampling handler answers "text"
//   {"op":"cancel","name":"trigger-long-running-operation",
//    "args":{"duration":5,"steps":5},"afterMs":300}  aborts the call with an
//    AbortSignal (the SDK sends notifications/cancelled)
//   {"op":"raw","method":"tools/list","params":{}}  any request, loose result
//   {"op":"notify","method":"notifications/roots/list_changed"}
//   {"op":"notifications"}  notifications received so far (then cleared);
//    transport-dependent: over HTTP, server-everything's tools/list_changed
//    sent during initialisation is dropped (no GET stream yet)
//   {"op":"sessionId"}      the Streamable HTTP session id (null on stdio)
//   {"op":"sleep","ms":100}
//   {"op":"waitFile","path":"/tmp/x","ms":60000}  until the file exists (the
//                           test's go-ahead: no guessed sleep); an error
//                           after ms (default 60000)
//   {"op":"close"}          ends the session: DELETE over HTTP, then close
//
// Output: {"step":N,"op":OP,"result":...} or {"step":N,"op":OP,"error":
// {"code":C,"message":M}}; step 0 is the connection (server info and
// capabilities).  Exit status: 0 all steps ok, 1 a step failed, 2 usage or
// connection failure.
//
// TLS: Node's fetch (used by the SDK) takes its extra trust anchors from
// NODE_EXTRA_CA_CERTS, which is read only at process start.  So --ca FILE
// re-runs this script once with NODE_EXTRA_CA_CERTS=FILE set.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import {
	CreateMessageRequestSchema, ElicitRequestSchema, ListRootsRequestSchema,
	ResultSchema,
} from "@modelcontextprotocol/sdk/types.js";
import { normalize } from "./normalize.mjs";

function usage(msg) {
	if (msg)
		process.stderr.write(`agent.mjs: ${msg}\n`);
	process.stderr.write("usage: agent.mjs (--url URL [--token T] [--ca FILE] | --stdio CMD) [options] SCRIPT\n");
	process.exit(2);
}

function parseArgs(argv) {
	const o = { headers: {}, timeout: 30000 };
	for (let i = 0; i < argv.length; i++) {
		const a = argv[i];
		const val = () => {
			if (i + 1 >= argv.length)
				usage(`${a} needs a value`);
			return argv[++i];
		};
		switch (a) {
		case "--url": o.url = val(); break;
		case "--token": o.token = val(); break;
		case "--ca": o.ca = resolve(val()); break;
		case "--stdio": o.stdio = val(); break;
		case "--header": {
			const h = val();
			const c = h.indexOf(":");
			if (c <= 0)
				usage(`bad header "${h}"`);
			o.headers[h.slice(0, c).trim()] = h.slice(c + 1).trim();
			break;
		}
		case "--timeout": o.timeout = Number(val()); break;
		case "--normalize": o.normalize = true; break;
		case "--roots": o.roots = true; break;
		case "--stop-on-error": o.stopOnError = true; break;
		case "--quiet-stderr": o.quietStderr = true; break;
		default:
			if (a.startsWith("--") || o.script !== undefined)
				usage(`unexpected argument "${a}"`);
			o.script = a;
		}
	}
	if (!o.url === !o.stdio)
		usage("give exactly one of --url and --stdio");
	if (o.script === undefined)
		usage("no script");
	return o;
}

const opts = parseArgs(process.argv.slice(2));

// See the TLS note at the top: re-run with the CA file in the environment.
if (opts.ca && process.env.NODE_EXTRA_CA_CERTS !== opts.ca) {
	const r = spawnSync(process.execPath, process.argv.slice(1), {
		stdio: "inherit",
		env: { ...process.env, NODE_EXTRA_CA_CERTS: opts.ca },
	});
	process.exit(r.status ?? 2);
}

function loadScript(s) {
	const text = s.trimStart().startsWith("[") ? s
		: readFileSync(s === "-" ? 0 : s, "utf8");
	const steps = JSON.parse(text);
	if (!Array.isArray(steps))
		usage("the script must be a JSON array of steps");
	return steps;
}

let steps;
try {
	steps = loadScript(opts.script);
} catch (e) {
	usage(`cannot read script: ${e.message}`);
}

function emit(obj) {
	process.stdout.write(JSON.stringify(opts.normalize ? normalize(obj) : obj) + "\n");
}

function errorObject(e) {
	const o = { code: e?.code ?? null, message: String(e?.message ?? e) };
	if (e?.data !== undefined)
		o.data = e.data;
	return o;
}

// Everything the server sends us unasked is kept for the "notifications" step.
const notifications = [];
const wireProgress = [];
const samplingRequests = [];
let samplingText = "This is a fixed test answer.";

const capabilities = { sampling: {}, elicitation: {} };
if (opts.roots)
	capabilities.roots = { listChanged: true };
const client = new Client({ name: "mcptun-test-agent", version: "1.0.0" },
	{ capabilities });

client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
	samplingRequests.push(req.params);
	return {
		model: "mcptun-test-model",
		role: "assistant",
		stopReason: "endTurn",
		content: { type: "text", text: samplingText },
	};
});
client.setRequestHandler(ElicitRequestSchema, async () => ({ action: "decline" }));
if (opts.roots)
	client.setRequestHandler(ListRootsRequestSchema, async () => ({ roots: [] }));
client.fallbackNotificationHandler = async (n) => {
	notifications.push({ method: n.method, params: n.params });
};

let transport;
if (opts.url) {
	const headers = { ...opts.headers };
	if (opts.token)
		headers.Authorization = `Bearer ${opts.token}`;
	transport = new StreamableHTTPClientTransport(new URL(opts.url), {
		requestInit: { headers },
	});
} else {
	const argv = opts.stdio.trim().split(/\s+/);
	transport = new StdioClientTransport({
		command: argv[0],
		args: argv.slice(1),
		env: { ...process.env },
		stderr: opts.quietStderr ? "ignore" : "inherit",
	});
}

const reqOpts = { timeout: opts.timeout };

async function runStep(s) {
	switch (s.op) {
	case "listTools": return client.listTools(s.params, reqOpts);
	case "listResources": return client.listResources(s.params, reqOpts);
	case "listResourceTemplates": return client.listResourceTemplates(s.params, reqOpts);
	case "listPrompts": return client.listPrompts(s.params, reqOpts);
	case "ping": return client.ping(reqOpts);
	case "readResource": return client.readResource({ uri: s.uri }, reqOpts);
	case "getPrompt":
		return client.getPrompt({ name: s.name, arguments: s.args ?? {} }, reqOpts);
	case "setLoggingLevel": return client.setLoggingLevel(s.level, reqOpts);
	case "callTool":
		return client.callTool({ name: s.name, arguments: s.args ?? {} },
			undefined, reqOpts);
	case "callToolWithProgress": {
		// The SDK hands notifications to their handlers a tick later than
		// responses, so its onprogress callback can miss the last progress
		// sent just before the result.  Count what came over the wire
		// instead (see the tap in connect), which is in arrival order.
		wireProgress.length = 0;
		const result = await client.callTool(
			{ name: s.name, arguments: s.args ?? {} }, undefined,
			{ ...reqOpts, onprogress: () => {} });
		const progress = wireProgress.splice(0).map(({ progressToken, ...p }) => p);
		return { result, progress };
	}
	case "sampling": {
		if (s.text !== undefined)
			samplingText = s.text;
		samplingRequests.length = 0;
		const result = await client.callTool({
			name: s.name ?? "trigger-sampling-request",
			arguments: s.args ?? { prompt: s.prompt ?? "Say hello", maxTokens: 50 },
		}, undefined, reqOpts);
		return { result, samplingRequests: [...samplingRequests] };
	}
	case "cancel": {
		const ac = new AbortController();
		const t0 = Date.now();
		const timer = setTimeout(() => ac.abort("cancelled by test"), s.afterMs ?? 300);
		try {
			const result = await client.callTool(
				{ name: s.name ?? "trigger-long-running-operation",
				  arguments: s.args ?? { duration: 5, steps: 5 } },
				undefined, { ...reqOpts, signal: ac.signal });
			// Finished before the abort: report it, the test decides.
			return { cancelled: false, result };
		} catch (e) {
			if (!ac.signal.aborted)
				throw e;
			return { cancelled: true, reason: String(e?.message ?? e), elapsedMs: Date.now() - t0 };
		} finally {
			clearTimeout(timer);
		}
	}
	case "raw":
		return client.request({ method: s.method, params: s.params }, ResultSchema, reqOpts);
	case "notify":
		await client.notification({ method: s.method, params: s.params });
		return {};
	case "notifications": {
		const out = notifications.splice(0);
		return { notifications: out };
	}
	case "sessionId": return { sessionId: transport.sessionId ?? null };
	case "sleep":
		await new Promise((r) => setTimeout(r, s.ms ?? 100));
		return {};
	case "waitFile": {
		const limit = s.ms ?? 60000, end = Date.now() + limit;
		while (!existsSync(s.path)) {
			if (Date.now() > end)
				throw new Error(`${s.path} did not appear within ${limit} ms`);
			await new Promise((r) => setTimeout(r, 50));
		}
		return {};
	}
	case "close": {
		// Only the HTTP transport has a session to end (DELETE); the
		// output is the same for both so tunnel and stdio runs diff clean.
		if (transport.terminateSession)
			await transport.terminateSession();
		await client.close();
		return { closed: true };
	}
	default:
		throw Object.assign(new Error(`unknown op "${s.op}"`), { code: "EUSAGE" });
	}
}

// The SDK reports late progress notifications (see callToolWithProgress) and
// similar harmless protocol noise through onerror; keep it off stdout.
client.onerror = (e) => process.stderr.write(`agent.mjs: ${e?.message ?? e}\n`);

let failed = false;
try {
	await client.connect(transport, reqOpts);
	// Tap incoming messages in the order they arrive, before the SDK
	// dispatches them.
	const dispatch = transport.onmessage;
	transport.onmessage = (msg, extra) => {
		if (msg?.method === "notifications/progress")
			wireProgress.push(msg.params);
		return dispatch.call(transport, msg, extra);
	};
	emit({
		step: 0, op: "connect", result: {
			serverInfo: client.getServerVersion(),
			capabilities: client.getServerCapabilities(),
			instructions: client.getInstructions() ?? null,
		},
	});
} catch (e) {
	emit({ step: 0, op: "connect", error: errorObject(e) });
	process.exit(2);
}

let closed = false;
for (let i = 0; i < steps.length; i++) {
	const s = steps[i];
	const base = { step: i + 1, op: s.op };
	if (s.label !== undefined)
		base.label = s.label;
	try {
		const result = await runStep(s);
		emit({ ...base, result });
		if (s.op === "close")
			closed = true;
	} catch (e) {
		failed = true;
		emit({ ...base, error: errorObject(e) });
		if (opts.stopOnError)
			break;
	}
	if (closed)
		break;
}
if (!closed)
	await client.close().catch(() => {});
process.exitCode = failed ? 1 : 0;
// A stdio child or an open SSE stream must not keep us alive.
setTimeout(() => process.exit(process.exitCode), 200).unref();
