/*
 * The audit log: one JSON line per completed call, on the data owner's
 * side.  It records who called what and how it went, never arguments or
 * results.  The file is opened lazily (O_APPEND, mode 0600) and reopened
 * when the configured path changes or audit_reopen() is called (SIGHUP,
 * log rotation); "-" means stderr, NULL means no audit log.
 */
#ifndef MCPTUN_AUDIT_H
#define MCPTUN_AUDIT_H

#include <stddef.h>
#include <stdint.h>

struct audit_rec {
	uint64_t	 time_ms;	/* wall clock when the call started */
	const char	*tunnel;
	const char	*agent;
	const char	*server;
	uint32_t	 session;	/* tunnel stream id */
	const char	*method;
	const char	*tool;		/* tools/call only; NULL otherwise */
	uint64_t	 duration_ms;
	uint64_t	 bytes_in;	/* request, from the agent */
	uint64_t	 bytes_out;	/* answer, to the agent */
	const char	*outcome;	/* "ok", "error", "denied", "timeout",
					   "upstream_exit", "cancelled" */
	const char	*offload_id;	/* output stored or read; NULL none */
	uint64_t	 offload_bytes;	/* ... its size, or bytes read */
};

/*
 * Appends r as one line to the audit log at path ("-" = stderr, NULL =
 * none).  Failures are logged (once per path) and otherwise ignored: an
 * unwritable audit log does not stop the calls.
 */
void	audit_write(const char *path, const struct audit_rec *r);

/*
 * Formats r as one JSON line with its newline; returns a new string
 * (caller frees) and its length in *lenp.
 */
char	*audit_format(const struct audit_rec *r, size_t *lenp);

/* Closes the file so the next record opens it again (rotation). */
void	audit_reopen(void);

/* Closes the file (shutdown). */
void	audit_close(void);

#endif
