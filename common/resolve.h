/*
 * Host-name lookups off the event loop (resolve.c).
 *
 * getaddrinfo() blocks for as long as the DNS server takes (5 s per
 * try when it is dead), and mcptun-client runs every session in one
 * event loop, so names are resolved by a few worker threads instead and
 * the answers handed back on the loop thread: the loop watches
 * resolve_fd() and calls resolve_dispatch() when it is readable, which
 * runs the callbacks.  Lookups of one name at the same time share one
 * getaddrinfo call, so a slow name holds at most one worker, and an
 * answer is reused for RESOLVE_CACHE_MS.
 *
 * Everything but the workers runs on one thread (the loop's); the
 * functions here are not meant to be called from several threads.
 */
#ifndef MCPTUN_RESOLVE_H
#define MCPTUN_RESOLVE_H

#include <stddef.h>

struct addrinfo;

#define RESOLVE_MAX_ADDRS	8	/* addresses kept of one answer */
#define RESOLVE_ADDR_LEN	46	/* INET6_ADDRSTRLEN */
#define RESOLVE_WORKERS		4	/* threads at most */
#define RESOLVE_MAX_PENDING	64	/* distinct names in flight */
#define RESOLVE_CACHE_SIZE	16	/* names whose answer is kept */
#define RESOLVE_CACHE_MS	10000	/* for this long */

/* An answer: numeric addresses in getaddrinfo's order, or an error. */
struct resolve_result {
	const char	*error;		/* NULL, or why the lookup failed */
	size_t		 n;		/* addresses (n > 0 without error) */
	char		 addr[RESOLVE_MAX_ADDRS][RESOLVE_ADDR_LEN];
};

/*
 * Called on the loop thread from resolve_dispatch(), once per request
 * not cancelled; res is valid during the call only.  The request handle
 * is freed by then.
 */
typedef void resolve_cb(void *arg, const struct resolve_result *res);

/* The getaddrinfo the workers call (a unit test may replace it). */
typedef int resolve_gai_fn(const char *, const char *,
    const struct addrinfo *, struct addrinfo **);

struct resolve_req;

/*
 * Sets the resolver up: the wake-up pipe, no threads yet (they start
 * with the first lookup).  Returns 0 or MT_EIO.
 */
int	resolve_init(void);
/*
 * The descriptor to watch for reading; then call resolve_dispatch().
 * -1 before resolve_init().
 */
int	resolve_fd(void);
/*
 * Runs the callbacks of finished lookups.  Returns how many ran.
 */
size_t	resolve_dispatch(void);
/*
 * Starts looking name up (addresses for a TCP connection, IPv4 and
 * IPv6).  On success *out is the request's handle, valid until its
 * callback runs or resolve_cancel(); cb is never called from inside
 * resolve_start.  Returns 0, MT_EINVAL (no resolver, or an empty name)
 * or MT_ELIMIT (RESOLVE_MAX_PENDING names are in flight already).
 */
int	resolve_start(const char *name, resolve_cb *cb, void *arg,
	    struct resolve_req **out);
/*
 * Forgets a request whose callback has not run: it never will, and the
 * handle is freed.  NULL is ignored.
 */
void	resolve_cancel(struct resolve_req *rq);
/* Whether name is a numeric IPv4 or IPv6 address (no lookup needed). */
int	resolve_is_numeric(const char *name);
/* Names in flight (for tests and logs). */
size_t	resolve_pending(void);
/*
 * Cancels every request and lets the workers go: idle ones exit now,
 * one inside getaddrinfo when it returns (the process need not wait).
 */
void	resolve_shutdown(void);
/* Replaces the workers' getaddrinfo (NULL: the real one); for tests. */
void	resolve_set_gai(resolve_gai_fn *fn);

#endif
