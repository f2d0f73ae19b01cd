// Preloaded (node --require) into supergateway for the benchmark: it calls
// app.listen(port), which binds every interface, and the benchmark must only
// listen on loopback.  A listen() that names no host gets 127.0.0.1.
"use strict";
const net = require("node:net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
	if (typeof args[0] === "number" || (typeof args[0] === "string" && /^\d+$/.test(args[0]))) {
		if (typeof args[1] !== "string")
			args.splice(1, 0, "127.0.0.1");
	} else if (args[0] && typeof args[0] === "object" && args[0].port !== undefined &&
	    args[0].host === undefined && args[0].path === undefined) {
		args[0] = { ...args[0], host: "127.0.0.1" };
	}
	return listen.apply(this, args);
};
