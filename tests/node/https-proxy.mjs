#!/usr/bin/env node
// A minimal TLS-terminating reverse proxy for harness self-tests: puts an
// HTTPS front (certificate from certs.sh) before a plain HTTP server, so the
// agent's --ca handling can be tested before the relay exists.  Streams both
// ways, so Streamable HTTP's SSE answers pass through.
//
//   node https-proxy.mjs --cert FILE --key FILE --port PORT --to http://127.0.0.1:PORT
//
// Listens on 127.0.0.1 only and prints "listening PORT" when ready.
import http from "node:http";
import https from "node:https";
import { readFileSync } from "node:fs";

const a = {};
const argv = process.argv.slice(2);
for (let i = 0; i + 1 < argv.length; i += 2)
	a[argv[i].replace(/^--/, "")] = argv[i + 1];
if (!a.cert || !a.key || !a.port || !a.to) {
	process.stderr.write("usage: https-proxy.mjs --cert F --key F --port P --to URL\n");
	process.exit(2);
}
const to = new URL(a.to);

const server = https.createServer({
	cert: readFileSync(a.cert), key: readFileSync(a.key),
}, (req, res) => {
	const up = http.request({
		host: to.hostname, port: to.port, method: req.method,
		path: req.url, headers: req.headers,
	}, (ur) => {
		res.writeHead(ur.statusCode, ur.headers);
		ur.pipe(res);
	});
	up.on("error", (e) => {
		if (!res.headersSent)
			res.writeHead(502);
		res.end(String(e.message));
	});
	req.pipe(up);
	res.on("close", () => up.destroy());
});
server.listen(Number(a.port), "127.0.0.1", () => console.log(`listening ${a.port}`));
