/*
 * A tiny, fast stdio MCP server for link and stress tests: newline-
 * delimited JSON-RPC on stdin/stdout.  Tools:
 *   echo {message}  -> text content equal to message
 *   blob {bytes, seed} -> text content of exactly `bytes` bytes from a
 *                      deterministic pattern (see blob_byte), so a test
 *                      can check the bytes it got without storing them.
 * Starts in about a millisecond, so thousands of sessions (one process
 * each) stay cheap.  Test code only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static char
blob_byte(unsigned long i, unsigned long seed)
{
	static const char alphabet[] =
	    "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

	if (i % 64 == 63)
		return '\n';
	return alphabet[(i * 7 + seed * 13 + i / 64) % 62];
}

static void
reply(json_t *id, json_t *result)
{
	json_t *m = json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id,
	    "result", result);

	json_dumpf(m, stdout, JSON_COMPACT);
	fputc('\n', stdout);
	fflush(stdout);
	json_decref(m);
}

static json_t *
text_result(const char *s, size_t n)
{
	return json_pack("{s:[{s:s, s:s%}]}", "content", "type", "text",
	    "text", s, n);
}

int
main(void)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	while ((n = getline(&line, &cap, stdin)) > 0) {
		json_t *m = json_loadb(line, (size_t)n, 0, NULL), *id, *p;
		const char *method;

		if (m == NULL)
			continue;
		id = json_object_get(m, "id");
		method = json_string_value(json_object_get(m, "method"));
		p = json_object_get(m, "params");
		if (id == NULL || method == NULL) {
			json_decref(m);
			continue;
		}
		if (strcmp(method, "initialize") == 0) {
			json_t *v = json_object_get(p, "protocolVersion");

			reply(id, json_pack("{s:O, s:{s:{}}, s:{s:s, s:s}}",
			    "protocolVersion", v ? v : json_string("2025-06-18"),
			    "capabilities", "tools",
			    "serverInfo", "name", "echo-upstream", "version",
			    "1"));
		} else if (strcmp(method, "tools/list") == 0) {
			reply(id, json_pack("{s:[{s:s, s:{s:s}}, {s:s, s:{s:s}}]}",
			    "tools", "name", "echo", "inputSchema", "type",
			    "object", "name", "blob", "inputSchema", "type",
			    "object"));
		} else if (strcmp(method, "ping") == 0) {
			reply(id, json_object());
		} else if (strcmp(method, "tools/call") == 0) {
			const char *name = json_string_value(json_object_get(p,
			    "name"));
			json_t *a = json_object_get(p, "arguments");

			if (name != NULL && strcmp(name, "blob") == 0) {
				unsigned long len = (unsigned long)json_integer_value(
				    json_object_get(a, "bytes"));
				unsigned long seed = (unsigned long)json_integer_value(
				    json_object_get(a, "seed"));
				char *b = malloc(len + 1);
				unsigned long i;

				for (i = 0; i < len; i++)
					b[i] = blob_byte(i, seed);
				reply(id, text_result(b, len));
				free(b);
			} else {
				const char *msg = json_string_value(
				    json_object_get(a, "message"));

				reply(id, text_result(msg ? msg : "",
				    msg ? strlen(msg) : 0));
			}
		} else {
			json_t *e = json_pack("{s:s, s:O, s:{s:i, s:s}}",
			    "jsonrpc", "2.0", "id", id, "error", "code", -32601,
			    "message", "method not found");

			json_dumpf(e, stdout, JSON_COMPACT);
			fputc('\n', stdout);
			fflush(stdout);
			json_decref(e);
		}
		json_decref(m);
	}
	free(line);
	return 0;
}
