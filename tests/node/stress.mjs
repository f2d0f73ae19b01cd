#!/usr/bin/env node
// Stress for the tunnel: many short MCP sessions (one stream each) and a
// few large transfers at the same time, every payload checked byte for
// byte.  Speaks Streamable HTTP directly with fetch (not the SDK) so that
// thousands of sessions stay cheap; the upstream is tests/tools/echo_upstream.
//
//   NODE_EXTRA_CA_CERTS=ca.crt node stress.mjs URL TOKEN SHORT LARGE CONC BYTES
//
// Prints one JSON line with counts; exits 1 if any session failed or any
// payload differed.
const [url, token, nShort, nLarge, conc, bytes] = process.argv.slice(2);
const SHORT = Number(nShort), LARGE = Number(nLarge), CONC = Number(conc);
const BYTES = Number(bytes);

function blobByte(i, seed) {
	const a = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
	if (i % 64 === 63) return "\n";
	return a[(i * 7 + seed * 13 + Math.floor(i / 64)) % 62];
}
function blobText(n, seed) {
	const parts = new Array(n);
	for (let i = 0; i < n; i++) parts[i] = blobByte(i, seed);
	return parts.join("");
}

async function post(sid, msg) {
	const h = {
		"Content-Type": "application/json",
		"Accept": "application/json, text/event-stream",
		"Authorization": "Bearer " + token,
		"MCP-Protocol-Version": "2025-06-18",
	};
	if (sid) h["Mcp-Session-Id"] = sid;
	const r = await fetch(url, { method: "POST", headers: h, body: JSON.stringify(msg) });
	const text = await r.text();
	if (r.status === 202) return { status: 202, sid: r.headers.get("mcp-session-id") };
	if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${text.slice(0, 200)}`);
	let body = text;
	if ((r.headers.get("content-type") || "").startsWith("text/event-stream")) {
		// The last "data:" event carrying our id is the response.
		const events = text.split(/\r?\n\r?\n/).map((e) => e.split(/\r?\n/)
		    .filter((l) => l.startsWith("data:")).map((l) => l.slice(5).replace(/^ /, "")).join("\n"))
		    .filter((d) => d.length > 0).map((d) => JSON.parse(d));
		body = events.find((e) => e.id === msg.id);
		return { status: 200, sid: r.headers.get("mcp-session-id"), msg: body };
	}
	return { status: 200, sid: r.headers.get("mcp-session-id"), msg: JSON.parse(body) };
}

async function open() {
	const r = await post(null, { jsonrpc: "2.0", id: 0, method: "initialize",
	    params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "stress", version: "1" } } });
	if (!r.sid) throw new Error("no Mcp-Session-Id");
	await post(r.sid, { jsonrpc: "2.0", method: "notifications/initialized" });
	return r.sid;
}
async function close(sid) {
	await fetch(url, { method: "DELETE", headers: { "Authorization": "Bearer " + token, "Mcp-Session-Id": sid } });
}
async function callText(sid, id, name, args) {
	const r = await post(sid, { jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args } });
	if (!r.msg || !r.msg.result) throw new Error("bad answer: " + JSON.stringify(r.msg).slice(0, 200));
	return r.msg.result.content[0].text;
}

const stats = { short_ok: 0, short_bad: 0, large_ok: 0, large_bad: 0, retries: 0, errors: [], short_ms: [] };

// A short session whose HTTP connection fails outright (fetch throws, no
// answer at all) is tried once more and counted in "retries"; a wrong
// answer or an HTTP error is never retried.  Each session is counted once,
// after its answer, and closed (DELETE, tried twice) whatever happened, so
// a retry leaves no session open behind it.
const fetchFailed = (e) => String(e).startsWith("TypeError: fetch failed");
const note = (prefix, e) => {
	if (stats.errors.length < 5) stats.errors.push(prefix + String(e) + (e.cause ? " (" + String(e.cause) + ")" : ""));
};
async function closeQuietly(sid) {
	for (let i = 0; i < 2; i++) {
		try { await close(sid); return; } catch (e) { if (!fetchFailed(e)) return; }
	}
}
async function shortOne(k, again = true) {
	let sid = null;
	try {
		sid = await open();
		const msg = "m" + k + "-" + "x".repeat(k % 200) + "-\u00e9\u4e2d";
		const t0 = performance.now();
		const got = await callText(sid, 1, "echo", { message: msg });
		stats.short_ms.push(performance.now() - t0);
		if (got === msg) stats.short_ok++; else stats.short_bad++;
	} catch (e) {
		if (sid !== null) await closeQuietly(sid);
		if (again && fetchFailed(e)) {
			stats.retries++;
			note("retried: ", e);
			return shortOne(k, false);
		}
		stats.short_bad++;
		note("", e);
		return;
	}
	await closeQuietly(sid);
}
async function largeOne(k) {
	try {
		const sid = await open();
		for (let j = 0; j < 3; j++) {
			const seed = k * 10 + j;
			const got = await callText(sid, j + 1, "blob", { bytes: BYTES, seed });
			if (got === blobText(BYTES, seed)) stats.large_ok++; else stats.large_bad++;
		}
		await close(sid);
	} catch (e) { stats.large_bad++; if (stats.errors.length < 5) stats.errors.push(String(e) + (e.cause ? " (" + String(e.cause) + ")" : "")); }
}

const large = [];
for (let k = 0; k < LARGE; k++) large.push(largeOne(k));
let next = 0;
async function worker() { while (next < SHORT) await shortOne(next++); }
const workers = [];
for (let w = 0; w < CONC; w++) workers.push(worker());
await Promise.all([...workers, ...large]);
stats.short_ms.sort((a, b) => a - b);
const p = (q) => stats.short_ms.length ? Math.round(stats.short_ms[Math.floor(q * (stats.short_ms.length - 1))] * 10) / 10 : null;
const out = { short_ok: stats.short_ok, short_bad: stats.short_bad, large_ok: stats.large_ok,
    large_bad: stats.large_bad, retries: stats.retries, short_call_ms_p50: p(0.5), short_call_ms_p99: p(0.99), errors: stats.errors };
console.log(JSON.stringify(out));
process.exit(stats.short_bad || stats.large_bad || stats.short_ok !== SHORT || stats.large_ok !== 3 * LARGE ? 1 : 0);
