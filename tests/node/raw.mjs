#!/usr/bin/env node
// One raw HTTP(S) request for negative tests (401, 403, 404, 405, 413, bad
// TLS ...), where the SDK client would hide the answer.  Prints
//
//   STATUS                    e.g. 401
//   name: value               the selected response headers, one a line
//                             (only those present)
//   (empty line)
//   BODY                      as received, possibly cut by --max-body
//
// or, when no HTTP answer came, one line "ERROR CODE message" (CODE is the
// Node error code, e.g. ECONNREFUSED, ECONNRESET, DEPTH_ZERO_SELF_SIGNED_CERT,
// UNABLE_TO_VERIFY_LEAF_SIGNATURE, ERR_TLS_CERT_ALTNAME_INVALID, ETIMEDOUT)
// and exit status 3.  Exit status 0 whenever an HTTP answer arrived.
//
//   node raw.mjs [options] URL
//   -X METHOD           default GET, or POST when a body is given
//   -H "Name: value"    request header (repeatable)
//   --token T           shorthand for -H "Authorization: Bearer T"
//   -d BODY             request body; --data-file FILE reads it from FILE
//   --data-size N       a JSON-RPC "ping" request padded to N bytes
//   --ca FILE           trust this CA (instead of the system store)
//   --cert FILE --key FILE   client certificate for mTLS
//   --servername NAME   TLS SNI / name to verify (default: the URL host)
//   --show NAME         also print this response header (repeatable);
//                       default set: content-type, www-authenticate,
//                       mcp-session-id, mcp-protocol-version, allow,
//                       retry-after, location, content-length
//   --all-headers       print every response header
//   --timeout MS        give up after MS (default 10000); for a stream
//                       (SSE) answer, print what arrived by then
//   --max-body N        read at most N bytes of the body
//   --mcp               add the headers a Streamable HTTP client sends:
//                       Content-Type: application/json and
//                       Accept: application/json, text/event-stream
import http from "node:http";
import https from "node:https";
import { readFileSync } from "node:fs";

function die(msg) {
	process.stderr.write(`raw.mjs: ${msg}\n`);
	process.exit(2);
}

const o = {
	method: null, headers: {}, body: null, timeout: 10000, show: new Set([
		"content-type", "www-authenticate", "mcp-session-id",
		"mcp-protocol-version", "allow", "retry-after", "location",
		"content-length",
	]),
};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
	const a = argv[i];
	const val = () => (i + 1 < argv.length ? argv[++i] : die(`${a} needs a value`));
	const header = (h) => {
		const c = h.indexOf(":");
		if (c <= 0)
			die(`bad header "${h}"`);
		o.headers[h.slice(0, c).trim()] = h.slice(c + 1).trim();
	};
	switch (a) {
	case "-X": o.method = val(); break;
	case "-H": header(val()); break;
	case "--token": o.headers.Authorization = `Bearer ${val()}`; break;
	case "-d": o.body = Buffer.from(val()); break;
	case "--data-file": o.body = readFileSync(val()); break;
	case "--data-size": {
		const n = Number(val());
		const head = '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_pad":"';
		const tail = '"}}';
		o.body = Buffer.from(head + "x".repeat(Math.max(0, n - head.length - tail.length)) + tail);
		break;
	}
	case "--ca": o.ca = readFileSync(val()); break;
	case "--cert": o.cert = readFileSync(val()); break;
	case "--key": o.key = readFileSync(val()); break;
	case "--servername": o.servername = val(); break;
	case "--show": o.show.add(val().toLowerCase()); break;
	case "--all-headers": o.allHeaders = true; break;
	case "--timeout": o.timeout = Number(val()); break;
	case "--max-body": o.maxBody = Number(val()); break;
	case "--mcp":
		o.headers["Content-Type"] ??= "application/json";
		o.headers.Accept ??= "application/json, text/event-stream";
		break;
	default:
		if (a.startsWith("-") || o.url)
			die(`unexpected argument "${a}"`);
		o.url = new URL(a);
	}
}
if (!o.url)
	die("usage: raw.mjs [-X METHOD] [-H H]... [-d BODY] [--ca FILE] URL");
o.method ??= o.body ? "POST" : "GET";
if (o.body)
	o.headers["Content-Length"] = String(o.body.length);

const tls = o.url.protocol === "https:";
const reqOpts = {
	method: o.method,
	headers: o.headers,
	agent: false,
};
if (tls) {
	if (o.ca)
		reqOpts.ca = o.ca;
	if (o.cert)
		reqOpts.cert = o.cert;
	if (o.key)
		reqOpts.key = o.key;
	if (o.servername)
		reqOpts.servername = o.servername;
}

let printed = false;
let status = null;
const chunks = [];
let got = 0;

function finish() {
	if (printed)
		return;
	printed = true;
	if (status === null)
		return;
	process.stdout.write(Buffer.concat(chunks));
	process.stdout.write("\n");
	process.exit(0);
}

function fail(e) {
	if (status !== null) {
		// The answer started and then broke: show what came.
		finish();
		return;
	}
	if (printed)
		return;
	printed = true;
	process.stdout.write(`ERROR ${e.code ?? "EUNKNOWN"} ${e.message}\n`);
	process.exit(3);
}

const req = (tls ? https : http).request(o.url, reqOpts, (res) => {
	status = res.statusCode;
	let head = `${status}\n`;
	for (let i = 0; i < res.rawHeaders.length; i += 2) {
		const name = res.rawHeaders[i].toLowerCase();
		if (o.allHeaders || o.show.has(name))
			head += `${name}: ${res.rawHeaders[i + 1]}\n`;
	}
	process.stdout.write(head + "\n");
	res.on("data", (c) => {
		if (o.maxBody !== undefined && got + c.length >= o.maxBody) {
			chunks.push(c.subarray(0, o.maxBody - got));
			got = o.maxBody;
			finish();
			return;
		}
		chunks.push(c);
		got += c.length;
	});
	res.on("end", finish);
	res.on("error", fail);
});
req.on("error", fail);
// A total deadline, not the socket's idle timeout: an SSE answer that keeps
// sending must still end.
setTimeout(() => {
	if (status !== null)
		finish();
	else
		fail(Object.assign(new Error(`no answer in ${o.timeout} ms`), { code: "ETIMEDOUT" }));
}, o.timeout).unref();
if (o.body)
	req.write(o.body);
req.end();
