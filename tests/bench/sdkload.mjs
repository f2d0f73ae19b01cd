#!/usr/bin/env node
// Load generator on the official MCP TypeScript SDK client, the code real
// agents run, for tests/bench/run.sh.  The same modes as mcpload.c:
//
//   node sdkload.mjs TARGET --mode MODE [options]
//   TARGET: --url URL [--token T]     Streamable HTTP (for https, run.sh sets
//                                     NODE_EXTRA_CA_CERTS to the test CA)
//           --stdio "CMD ARGS"        the direct baseline over stdio
//   lat   --calls N --warmup W        sequential echo calls, percentiles
//   rate  --sessions S --seconds T    S concurrent sessions calling echo
//   bulk  --bytes B --calls N --seconds T   sequential blob calls, MB/s
//   hol   --calls N --bytes B --seconds T   N echo calls idle, then echo
//                                     calls for T s while another session
//                                     pulls B-byte blobs
//   query --sql SQL --rows R --calls N     one warm-up, then N sequential
//                                     calls of the "query" tool (a Postgres
//                                     MCP server); each answer must hold R
//                                     rows (structuredContent.rows, else the
//                                     text parsed as a JSON array), or be a
//                                     resource_link with --rows 0 (offload)
//
// Prints one JSON object on stdout (times in ms); exit 1 if it could not run.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const o = { calls: 2000, warmup: 200, sessions: 50, seconds: 5,
	bytes: 4 << 20, mode: null, url: null, token: null, stdio: null,
	sql: null, rows: 0 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
	const k = argv[i].replace(/^--/, ""), v = argv[++i];
	if (!(k in o) || v === undefined) {
		console.error(`sdkload: unknown or incomplete option ${argv[i - 1]}`);
		process.exit(1);
	}
	o[k] = typeof o[k] === "number" ? Number(v) : v;
}

async function open() {
	const c = new Client({ name: "sdkload", version: "1.0.0" }, { capabilities: {} });
	let t;
	if (o.stdio) {
		const [command, ...args] = o.stdio.split(" ");
		// The SDK refuses stdio messages over 10 MiB by default; a large
		// query answer (tests/bench/run.sh's Postgres rows) is more.
		t = new StdioClientTransport({ command, args, stderr: "ignore",
			maxBufferSize: 1 << 30 });
	} else {
		const headers = o.token ? { Authorization: `Bearer ${o.token}` } : {};
		t = new StreamableHTTPClientTransport(new URL(o.url), { requestInit: { headers } });
	}
	await c.connect(t);
	return { c, t };
}

async function close(s) {
	try {
		if (s.t.terminateSession)
			await s.t.terminateSession();
	} catch { /* the session may be gone already */ }
	await s.c.close().catch(() => {});
}

const opts = { timeout: 120000 };
const echo = (s) => s.c.callTool({ name: "echo", arguments: { message: "hello mcptun" } },
	undefined, opts);
async function blob(s) {
	const r = await s.c.callTool({ name: "blob", arguments: { bytes: o.bytes } },
		undefined, opts);
	if (r.content[0].text.length !== o.bytes)
		throw new Error(`blob of ${r.content[0].text.length} bytes`);
}

const now = () => performance.now();
function stats(v, errors) {
	v.sort((a, b) => a - b);
	const p = (q) => v.length ? v[Math.min(v.length - 1, Math.max(0, Math.ceil(q * v.length) - 1))] : null;
	const r = (x) => x === null ? null : Math.round(x * 1e4) / 1e4;
	return { n: v.length, errors, p50: r(p(.5)), p90: r(p(.9)), p99: r(p(.99)),
		max: r(v.length ? v[v.length - 1] : null),
		mean: r(v.length ? v.reduce((a, b) => a + b, 0) / v.length : null) };
}

async function timeCalls(s, max, secs) {
	const v = [], end = now() + secs * 1e3;
	let errors = 0;
	while (v.length < max && now() < end) {
		const t = now();
		try {
			await echo(s);
			v.push(now() - t);
		} catch (e) {
			if (++errors > 20)
				break;
		}
	}
	return stats(v, errors);
}

async function lat() {
	const s = await open();
	for (let i = 0; i < o.warmup; i++)
		await echo(s);
	// The client's own CPU per call (user + system, all of its threads):
	// what the figure costs on the agent's side, not the path's.
	const c0 = process.cpuUsage();
	const r = { lat: await timeCalls(s, o.calls, o.seconds) };
	const c = process.cpuUsage(c0);
	r.cpu_ms_per_call = r.lat.n ? Math.round((c.user + c.system) / r.lat.n) / 1e3 : null;
	await close(s);
	return r;
}

async function rate() {
	const ss = await Promise.all(Array.from({ length: o.sessions }, open));
	await Promise.all(ss.map((s) => echo(s)));
	let calls = 0, errors = 0;
	const t0 = now(), end = t0 + o.seconds * 1e3;
	await Promise.all(ss.map(async (s) => {
		while (now() < end) {
			try {
				await echo(s);
				calls++;
			} catch {
				if (++errors > 100)
					return;
			}
		}
	}));
	const el = (now() - t0) / 1e3;
	await Promise.all(ss.map(close));
	return { sessions: o.sessions, opened: ss.length, calls, errors,
		seconds: el, calls_per_s: Math.round(calls / o.seconds * 10) / 10 };
}

async function bulk() {
	const s = await open();
	await blob(s);
	const v = [], t0 = now(), end = t0 + o.seconds * 1e3;
	let errors = 0;
	while (v.length < o.calls && now() < end) {
		const t = now();
		try {
			await blob(s);
			v.push(now() - t);
		} catch (e) {
			console.error(`sdkload: ${e.message}`);
			if (++errors > 5)
				break;
		}
	}
	const el = (now() - t0) / 1e3;
	await close(s);
	return { calls: v.length, errors, bytes: o.bytes, seconds: el,
		mb_per_s: v.length * o.bytes / 1048576 / el, lat: stats(v, errors) };
}

async function hol() {
	const [s, b] = await Promise.all([open(), open()]);
	await blob(b);
	for (let i = 0; i < o.warmup; i++)
		await echo(s);
	const idle = await timeCalls(s, o.calls, o.seconds);
	let stop = false, bulkCalls = 0, first;
	const started = new Promise((res) => { first = res; });
	const puller = (async () => {
		while (!stop) {
			await blob(b);
			bulkCalls++;
			first();
		}
	})();
	await started;
	const busy = await timeCalls(s, 200000, o.seconds);
	stop = true;
	await puller;
	await Promise.all([close(s), close(b)]);
	return { idle, busy, bulk_calls: bulkCalls, bytes: o.bytes };
}

// One query call: its rows (checked against --rows) and answer size.
async function queryOnce(s) {
	// 120 s per call is too short for the SDK's own stdio reader on a
	// 30 MB answer on a loaded machine; the run's timeout bounds it.
	const r = await s.c.callTool({ name: "query", arguments: { sql: o.sql } },
		undefined, { timeout: 1800000 });
	if (r.isError)
		throw new Error(`query failed: ${JSON.stringify(r.content).slice(0, 200)}`);
	const c = r.content?.[0] || {};
	if ((r.content || []).some((x) => x.type === "resource_link")) {
		if (o.rows !== 0)
			throw new Error(`a resource_link, not ${o.rows} rows`);
		return { kind: "resource_link", rows: 0, chars: 0 };
	}
	const rows = r.structuredContent?.rows ?? JSON.parse(c.text);
	if (!Array.isArray(rows) || rows.length !== o.rows)
		throw new Error(`${Array.isArray(rows) ? rows.length : "no"} rows, not ${o.rows}`);
	return { kind: r.structuredContent ? "structured" : "text", rows: rows.length,
		chars: (c.text || "").length };
}

async function query() {
	const s = await open();
	const first = await queryOnce(s);
	const v = [];
	for (let i = 0; i < o.calls; i++) {
		const t = now();
		await queryOnce(s);
		v.push(now() - t);
	}
	await close(s);
	const st = stats(v.slice(), 0);
	return { ...first, runs: v.map((x) => Math.round(x * 10) / 10), ms: st,
		rows_per_s: o.rows ? Math.round(o.rows / (st.p50 / 1e3)) : null };
}

const modes = { lat, rate, bulk, hol, query };
if (!modes[o.mode] || (!o.url && !o.stdio)) {
	console.error("sdkload: give --url or --stdio and --mode lat|rate|bulk|hol|query");
	process.exit(1);
}
try {
	console.log(JSON.stringify(await modes[o.mode]()));
	process.exit(0);
} catch (e) {
	console.error(`sdkload: ${o.mode}: ${e.stack || e}`);
	process.exit(1);
}
