#!/usr/bin/env node
// Normaliser for agent.mjs output, so the answers that came through the
// tunnel can be compared with `diff` against the answers of a direct stdio
// session.  Each input line is one JSON object; each output line is the same
// object with its keys sorted and every volatile value (UUIDs, timestamps,
// session ids, progress tokens, timings) replaced by a fixed placeholder.
//
//   node normalize.mjs [FILE...]        (no FILE: read stdin)
//
// Lines that are not JSON are passed through unchanged, so a stray log line
// shows up in the diff instead of being hidden.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

// Keys whose values differ from run to run whatever the transport.
const VOLATILE_KEYS = new Set([
	"sessionId", "mcp-session-id", "progressToken", "requestId", "taskId",
	"createdAt", "lastUpdatedAt", "timestamp", "elapsedMs", "ms", "pid",
]);

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;
const ISO_TS = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?/g;
// "Date.now()"-style epoch milliseconds inside text (13 digits, 2001..2286).
const EPOCH_MS = /\b1\d{12}\b/g;

function normString(s) {
	return s.replace(UUID, "<uuid>").replace(ISO_TS, "<time>")
		.replace(EPOCH_MS, "<epoch>");
}

// normalize(value) returns a new value with sorted keys and placeholders.
export function normalize(v) {
	if (Array.isArray(v))
		return v.map(normalize);
	if (v !== null && typeof v === "object") {
		const out = {};
		for (const k of Object.keys(v).sort()) {
			if (VOLATILE_KEYS.has(k) && v[k] !== undefined && v[k] !== null)
				out[k] = "<volatile>";
			else
				out[k] = normalize(v[k]);
		}
		return out;
	}
	if (typeof v === "string")
		return normString(v);
	return v;
}

// normalizeLine(text) normalises one output line; non-JSON is returned as is.
export function normalizeLine(line) {
	if (line.trim() === "")
		return line;
	try {
		return JSON.stringify(normalize(JSON.parse(line)));
	} catch {
		return line;
	}
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
	const files = process.argv.slice(2);
	const texts = files.length ? files.map((f) => readFileSync(f, "utf8"))
		: [readFileSync(0, "utf8")];
	for (const text of texts)
		for (const line of text.split("\n"))
			if (line !== "")
				process.stdout.write(normalizeLine(line) + "\n");
}
