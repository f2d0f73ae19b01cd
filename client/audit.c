/*
 * The audit log (see audit.h).  Each record is built with jansson, so
 * every string is escaped however odd the agent's name or the tool's, and
 * written with one write() to a file opened O_APPEND, so lines from
 * concurrent writers do not interleave.  Times are RFC 3339 UTC with
 * milliseconds.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "client/audit.h"
#include "common/log.h"
#include "common/xmalloc.h"

static int audit_fd = -1;
static char *audit_path;	/* what audit_fd is open on */
static int audit_failed;	/* the open of audit_path failed (logged) */

/* A JSON string for s; text that is not UTF-8 is replaced, not dropped. */
static json_t *
audit_str(const char *s)
{
	json_t *j;

	if (s == NULL)
		return json_null();
	if ((j = json_string(s)) == NULL)
		j = json_string("(not UTF-8)");
	return j;
}

static void
audit_time(uint64_t ms, char *out, size_t outlen)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	size_t n;

	gmtime_r(&t, &tm);
	n = strftime(out, outlen, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, outlen - n, ".%03uZ", (unsigned)(ms % 1000));
}

char *
audit_format(const struct audit_rec *r, size_t *lenp)
{
	char when[40], *s, *line;
	json_t *j;
	size_t n;

	audit_time(r->time_ms, when, sizeof(when));
	j = json_object();
	if (j == NULL)
		fatalx("out of memory building an audit record");
	json_object_set_new(j, "time", json_string(when));
	json_object_set_new(j, "tunnel", audit_str(r->tunnel));
	json_object_set_new(j, "agent", audit_str(r->agent));
	json_object_set_new(j, "server", audit_str(r->server));
	json_object_set_new(j, "session", json_integer(r->session));
	json_object_set_new(j, "method", audit_str(r->method));
	if (r->tool != NULL)
		json_object_set_new(j, "tool", audit_str(r->tool));
	json_object_set_new(j, "duration_ms",
	    json_integer((json_int_t)r->duration_ms));
	json_object_set_new(j, "bytes_in",
	    json_integer((json_int_t)r->bytes_in));
	json_object_set_new(j, "bytes_out",
	    json_integer((json_int_t)r->bytes_out));
	json_object_set_new(j, "outcome", audit_str(r->outcome));
	if (r->offload_id != NULL)
		json_object_set_new(j, "offload", json_pack("{s:o, s:I}", "id",
		    audit_str(r->offload_id), "bytes",
		    (json_int_t)r->offload_bytes));
	if ((s = json_dumps(j, JSON_COMPACT)) == NULL)
		fatalx("out of memory formatting an audit record");
	json_decref(j);
	n = strlen(s);
	line = xmalloc(n + 2);
	memcpy(line, s, n);
	line[n++] = '\n';
	line[n] = '\0';
	free(s);
	*lenp = n;
	return line;
}

void
audit_close(void)
{
	if (audit_fd > STDERR_FILENO)
		close(audit_fd);
	audit_fd = -1;
	free(audit_path);
	audit_path = NULL;
	audit_failed = 0;
}

void
audit_reopen(void)
{
	audit_close();
}

/* Makes audit_fd the file at path; 0, or -1 if it cannot be opened. */
static int
audit_open(const char *path)
{
	if (audit_path != NULL && strcmp(audit_path, path) == 0)
		return audit_fd >= 0 ? 0 : -1;
	audit_close();
	audit_path = xstrdup(path);
	if (strcmp(path, "-") == 0) {
		audit_fd = STDERR_FILENO;
		return 0;
	}
	audit_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
	    O_NOCTTY, 0600);
	if (audit_fd < 0) {
		log_warn("audit log %s", path);
		audit_failed = 1;
		return -1;
	}
	return 0;
}

void
audit_write(const char *path, const struct audit_rec *r)
{
	char *line;
	size_t len, off = 0;
	ssize_t n;

	if (path == NULL || *path == '\0')
		return;
	if (audit_open(path) != 0)
		return;
	line = audit_format(r, &len);
	while (off < len) {
		n = write(audit_fd, line + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (!audit_failed)
				log_warn("writing audit log %s", path);
			audit_failed = 1;
			break;
		}
		off += (size_t)n;
	}
	free(line);
}
