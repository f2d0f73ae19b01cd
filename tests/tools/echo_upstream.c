/*
 * A tiny, fast stdio MCP server for link and stress tests: newline-
 * delimited JSON-RPC on stdin/stdout.  Tools:
 *   echo {message}  -> text content equal to message
 *   blob {bytes, seed} -> text content of exactly `bytes` bytes from a
 *                      deterministic pattern (see blob_escaped), so a test
 *                      can check the bytes it got without storing them.
 * Starts in about a millisecond, so thousands of sessions (one process
 * each) stay cheap, and answers a 4 MiB blob in a few milliseconds (the
 * escaped text of the last size and seed asked for is kept and written
 * as is), so make bench can use it as every column's upstream without it
 * being what a column measures.  Test code only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* The last blob answered, as the inside of a JSON string. */
static struct {
	char		*esc;
	size_t		 esc_len;
	unsigned long	 len, seed;
} cache;

/*
 * The escaped JSON text of blob (len, seed).  Byte i of the blob is '\n'
 * when i % 64 == 63, else alphabet[(i * 7 + seed * 13 + i / 64) % 62]
 * (tests/node/stress.mjs checks against the same formula); written here a
 * 64-byte line at a time, each '\n' as the two bytes \n.
 */
static int
blob_escaped(unsigned long len, unsigned long seed)
{
	static const char alphabet[] =
	    "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
	unsigned long i, j, line, k;
	char *p;

	if (cache.esc != NULL && cache.len == len && cache.seed == seed)
		return 0;
	free(cache.esc);
	cache.esc = malloc(len + len / 64 + 1);
	if (cache.esc == NULL)
		return -1;
	p = cache.esc;
	for (i = 0; i < len; i += 64) {
		line = i / 64;
		k = (i * 7 + seed * 13 + line) % 62;
		for (j = i; j < len && j < i + 63; j++) {
			*p++ = alphabet[k];
			k = k + 7 >= 62 ? k + 7 - 62 : k + 7;
		}
		if (i + 63 < len) {
			*p++ = '\\';
			*p++ = 'n';
		}
	}
	cache.esc_len = (size_t)(p - cache.esc);
	cache.len = len;
	cache.seed = seed;
	return 0;
}

/* Answers a blob call with the cached text, no JSON tree in between. */
static int
reply_blob(json_t *id, unsigned long len, unsigned long seed)
{
	char *ids;

	if (blob_escaped(len, seed) < 0)
		return -1;
	ids = json_dumps(id, JSON_COMPACT | JSON_ENCODE_ANY);
	if (ids == NULL)
		return -1;
	printf("{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"content\":"
	    "[{\"type\":\"text\",\"text\":\"", ids);
	fwrite(cache.esc, 1, cache.esc_len, stdout);
	fputs("\"}]}}\n", stdout);
	fflush(stdout);
	free(ids);
	return 0;
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

static void
reply_error(json_t *id, int code, const char *message)
{
	json_t *e = json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0",
	    "id", id, "error", "code", code, "message", message);

	json_dumpf(e, stdout, JSON_COMPACT);
	fputc('\n', stdout);
	fflush(stdout);
	json_decref(e);
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

				if (reply_blob(id, len, seed) < 0)
					reply_error(id, -32603, "out of memory");
			} else {
				const char *msg = json_string_value(
				    json_object_get(a, "message"));

				reply(id, text_result(msg ? msg : "",
				    msg ? strlen(msg) : 0));
			}
		} else {
			reply_error(id, -32601, "method not found");
		}
		json_decref(m);
	}
	free(line);
	return 0;
}
