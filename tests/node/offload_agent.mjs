#!/usr/bin/env node
// The agent side of tests/integration/offload.sh, on the official SDK client
// (like agent.mjs), for scripts whose later steps use what an earlier step
// got back: the id of an offloaded output.
//
//   node offload_agent.mjs --url URL --token T [--ca FILE] --out DIR
//        [--var NAME=VALUE]... SCRIPT
//
// Steps (SCRIPT is a JSON array, as agent.mjs takes):
//   {"op":"call","name":N,"args":{...},"save":"P"}   tools/call
//   {"op":"read","uri":U,"save":"P"}                  resources/read
//   {"op":"listTools"} {"op":"sleep","ms":N}
// Strings in args and uri have $ID and $URI replaced by the id and URI of
// the last resource_link mcptun://offload/... seen (or --var values).  With
// "save", each text item of the answer goes to DIR/P.N (N from 0) and the
// link's id to DIR/P.id.  Each step prints one JSON line {step, op,
// result|error}; exit status 1 if a step failed.
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const o = { vars: {}, timeout: 120000 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
	const a = argv[i];
	switch (a) {
	case "--url": o.url = argv[++i]; break;
	case "--token": o.token = argv[++i]; break;
	case "--ca": o.ca = resolve(argv[++i]); break;
	case "--out": o.out = argv[++i]; break;
	case "--timeout": o.timeout = Number(argv[++i]); break;
	case "--var": {
		const [k, ...v] = argv[++i].split("=");
		o.vars[k] = v.join("=");
		break;
	}
	default: o.script = a;
	}
}
if (!o.url || !o.out || !o.script) {
	process.stderr.write("usage: offload_agent.mjs --url URL --token T [--ca FILE] --out DIR SCRIPT\n");
	process.exit(2);
}
// Node's fetch reads extra CAs only at start-up (see agent.mjs).
if (o.ca && process.env.NODE_EXTRA_CA_CERTS !== o.ca) {
	const r = spawnSync(process.execPath, process.argv.slice(1), {
		stdio: "inherit", env: { ...process.env, NODE_EXTRA_CA_CERTS: o.ca },
	});
	process.exit(r.status ?? 2);
}

const steps = JSON.parse(o.script);
const vars = { ...o.vars };
const subst = (v) => typeof v === "string"
	? v.replace(/\$(ID|URI)/g, (_, k) => vars[k] ?? `$${k}`)
	: Array.isArray(v) ? v.map(subst)
	: v && typeof v === "object" ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, subst(x)]))
	: v;

function note(items, save) {
	const texts = [];
	for (const c of items ?? []) {
		if (c.type === "resource_link" && c.uri?.startsWith("mcptun://offload/")) {
			vars.URI = c.uri;
			vars.ID = c.uri.slice("mcptun://offload/".length);
			if (save)
				writeFileSync(join(o.out, `${save}.id`), vars.ID);
		}
		if (typeof c.text === "string")
			texts.push(c.text);
	}
	if (save)
		texts.forEach((t, k) => writeFileSync(join(o.out, `${save}.${k}`), t));
}

const headers = o.token ? { Authorization: `Bearer ${o.token}` } : {};
const transport = new StreamableHTTPClientTransport(new URL(o.url), { requestInit: { headers } });
const client = new Client({ name: "mcptun-offload-test", version: "1.0.0" }, { capabilities: {} });
const opts = { timeout: o.timeout };
let failed = false;
try {
	await client.connect(transport, opts);
} catch (e) {
	console.log(JSON.stringify({ step: 0, op: "connect", error: { message: String(e?.message ?? e) } }));
	process.exit(2);
}
for (let i = 0; i < steps.length; i++) {
	const s = steps[i];
	const base = { step: i + 1, op: s.op };
	try {
		let result;
		switch (s.op) {
		case "call":
			result = await client.callTool({ name: s.name, arguments: subst(s.args ?? {}) }, undefined, opts);
			note(result.content, s.save);
			break;
		case "read":
			result = await client.readResource({ uri: subst(s.uri) }, opts);
			note(result.contents, s.save);
			break;
		case "listTools":
			result = await client.listTools({}, opts);
			break;
		case "sleep":
			await new Promise((r) => setTimeout(r, s.ms ?? 100));
			result = {};
			break;
		default:
			throw new Error(`unknown op ${s.op}`);
		}
		// Big texts are saved, not printed.
		const shown = JSON.stringify(result, (k, v) =>
			typeof v === "string" && v.length > 4096 ? `<${v.length} chars>` : v);
		console.log(`{"step":${base.step},"op":"${s.op}","result":${shown}}`);
	} catch (e) {
		failed = true;
		console.log(JSON.stringify({ ...base, error: { code: e?.code ?? null, message: String(e?.message ?? e) } }));
	}
}
await transport.terminateSession().catch(() => {});
await client.close().catch(() => {});
process.exitCode = failed ? 1 : 0;
setTimeout(() => process.exit(process.exitCode), 200).unref();
