/*
 * Plumbing both daemons share around their lws event loop: signals that
 * wake the loop, lws' own log lines routed into ours, multi-line config
 * errors logged one line each, and the drain at shutdown.
 */
#ifndef MCPTUN_DAEMON_H
#define MCPTUN_DAEMON_H

struct lws_context;

/*
 * Installs handlers for SIGINT/SIGTERM (stop) and SIGHUP (reload) that
 * set a flag and wake the loop of *ctxp (read at signal time; may be NULL
 * until the context exists), and ignores SIGPIPE.  SIGCHLD is left alone:
 * the stdio upstream reaps its children itself.
 */
void daemon_signals(struct lws_context **ctxp);
/* Returns 1 once per SIGHUP received since the last call. */
int daemon_take_hup(void);
/* Returns 1 if SIGINT or SIGTERM was received. */
int daemon_term_requested(void);

/* Routes lws' log lines into ours: errors always, notices with verbose. */
void daemon_lws_logging(int verbose);

/* Logs each line of a multi-line error text (config errors) as an error. */
void daemon_log_lines(const char *text);

/*
 * Starts a timer on ctx's loop that every few seconds hands the heap's
 * free memory back to the kernel (malloc_trim) when there is enough of it:
 * glibc gives back only the top of the heap by itself, so after a burst
 * (a thousand sessions that ended) the freed memory below live blocks
 * stayed resident.  daemon_drain() stops the timer.
 */
void daemon_trim_start(struct lws_context *ctx);

/*
 * Runs the loop of ctx for up to ms milliseconds more, waking every 50 ms,
 * so goodbyes (GOAWAY, CLOSE, error answers) can leave before exit.
 */
void daemon_drain(struct lws_context *ctx, unsigned ms);

#endif
