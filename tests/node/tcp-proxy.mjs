#!/usr/bin/env node
// A plain TCP forwarder for link tests that can play a dead network:
// SIGUSR2 makes it stop forwarding in both directions while keeping every
// connection open (a half-open link: no FIN, no RST, just silence);
// SIGHUP resumes forwarding.
//
//   node tcp-proxy.mjs LISTEN_PORT TARGET_PORT
//
// Listens on 127.0.0.1 and prints "listening PORT" when ready.
import net from "node:net";

const [lport, tport] = process.argv.slice(2).map(Number);
let frozen = false;
const server = net.createServer((c) => {
	if (frozen) { c.destroy(); return; }
	const u = net.connect(tport, "127.0.0.1");
	c.on("data", (d) => { if (!frozen) u.write(d); });
	u.on("data", (d) => { if (!frozen) c.write(d); });
	const end = () => { if (!frozen) { c.destroy(); u.destroy(); } };
	c.on("close", end); u.on("close", end);
	c.on("error", () => {}); u.on("error", () => {});
});
process.on("SIGUSR2", () => { frozen = true; console.log("frozen"); });
process.on("SIGHUP", () => { frozen = false; console.log("thawed"); });
server.listen(lport, "127.0.0.1", () => console.log("listening " + lport));
