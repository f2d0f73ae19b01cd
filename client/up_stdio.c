/*
 * The stdio upstream: one MCP server process per agent session.
 *
 * The command runs from an argv (never a shell), in its own process group,
 * with a minimal inherited environment plus the configured one, optionally
 * inside a bubblewrap sandbox.  Its stdin, stdout and stderr are pipes
 * adopted into lws as raw files on the "mcptun-stdio" protocol, so nothing
 * here blocks: stdout is split into newline-delimited JSON-RPC messages (a
 * line longer than max_line ends the session), writes to stdin are queued
 * and written on WRITEABLE, stderr lines go to the log, rate-limited.
 *
 * A line that passes the server's offload threshold while still arriving
 * is offered to the owner (ops->on_big); if the owner takes it (a large
 * tools/call result), the rest of the line goes to the owner's sink as
 * it is read instead of into memory, and max_line does not apply to it.
 *
 * Exec errors come back through a close-on-exec pipe, so a command that
 * cannot run fails the open with a sentence the agent can read.  Children
 * are reaped by a periodic waitpid(WNOHANG) sweep on an lws timer (we do
 * not own SIGCHLD); a process record outlives its session until the
 * process is reaped, so closing a session never waits: stdin is closed,
 * the group gets SIGTERM, and SIGKILL two seconds later if still alive.
 *
 * Callbacks to the owner (session.c) are made only from lws callbacks and
 * timers, never from inside open/send/close/pause/resume.  The owner may
 * close the upstream from inside any callback, so every entry point holds
 * a busy count and the struct is freed when the last one returns.
 */
#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "client/client_conf.h"
#include "client/offload.h"
#include "client/upstream.h"
#include "client/up_stdio.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC	(1U << 2)
#endif

#define STDIO_READ_CHUNK	65536
#define STDIO_WQ_HIGH		(1024 * 1024)	/* send says MT_EAGAIN above */
#define STDIO_WQ_LOW		(256 * 1024)	/* on_drain once below */
#define STDIO_ERR_LINE		1024		/* longest stderr line logged */
#define STDIO_ERR_RATE		20		/* stderr lines logged per second */
#define STDIO_TERM_MS		2000		/* SIGTERM to SIGKILL */
#define STDIO_REAP_MS		100		/* waitpid sweep period */
#define STDIO_REAP_SOON_MS	5		/* sweep after stdout closed */
#define STDIO_EOF_GRACE_MS	2000		/* stdout closed, still running */
#define STDIO_EXIT_GRACE_MS	500		/* exited, stdout still open */
#define STDIO_BWRAP		"/usr/bin/bwrap"
#define STDIO_DEFAULT_PATH	"/usr/local/bin:/usr/bin:/bin"

enum stdio_fd { STDIO_IN, STDIO_OUT, STDIO_ERR, STDIO_NFD };

/* A spawned process; lives until reaped, even after its session closed. */
struct stdio_child {
	struct stdio_child	*next;
	pid_t			 pid;
	struct upstream		*u;		/* NULL once the session closed */
	uint64_t		 kill_at;	/* SIGKILL due (ms); 0 = none */
	int			 reaped;
	int			 status;	/* waitpid status; -1 unknown */
};

struct upstream {
	const struct server_conf	*sc;
	const struct upstream_ops	*ops;
	void				*arg;
	char				*tag;		/* "server/session" */
	struct stdio_child		*child;
	struct lws			*wsi[STDIO_NFD];
	struct buf			 wq;		/* to the child's stdin */
	struct buf			 rq;		/* from its stdout */
	size_t				 scan;		/* rq bytes without '\n' */
	struct buf			 eq;		/* partial stderr line */
	uint64_t			 max_line;
	size_t				 big_at;	/* offer longer lines */
	int				 big_asked;	/* ... this one was */
	struct offload_sink		*sink;		/* this line goes here */
	lws_sorted_usec_list_t		 sul;		/* deferred work */
	int				 busy;		/* entry points running */
	int				 closed;	/* kind->close() called */
	int				 dead;		/* on_exit due */
	int				 fatal;		/* ... at once, drop output */
	int				 exit_reported;
	int				 paused;
	int				 want_drain;
	int				 out_eof;
	uint64_t			 eof_at;	/* ms when stdout closed */
	uint64_t			 exited_at;	/* ms when reaped */
	char				 why[256];	/* for on_exit */
	uint64_t			 err_window;	/* start of this second */
	unsigned			 err_lines;	/* logged in this second */
	unsigned long			 err_dropped;
};

static struct stdio_child *stdio_children;
static struct lws_context *stdio_ctx;
static lws_sorted_usec_list_t stdio_reap_sul;

/* Variables passed through from the client's own environment. */
static const char *const stdio_inherit[] = {
	"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE",
	"LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TZ", "TMPDIR", NULL
};

static void stdio_reap(lws_sorted_usec_list_t *);
static void stdio_tick(lws_sorted_usec_list_t *);

/* ---- small helpers ----------------------------------------------------- */

static void
stdio_kick_in(struct upstream *u, uint64_t ms)
{
	if (stdio_ctx == NULL || u->closed)
		return;
	lws_sul_schedule(stdio_ctx, 0, &u->sul, stdio_tick,
	    (lws_usec_t)ms * LWS_US_PER_MS);
}

static void
stdio_kick(struct upstream *u)
{
	stdio_kick_in(u, 0);
}

/* Makes sure the waitpid sweep runs within ms. */
static void
stdio_reap_within(uint64_t ms)
{
	lws_usec_t due = lws_now_usecs() + (lws_usec_t)ms * LWS_US_PER_MS;

	if (stdio_ctx == NULL)
		return;
	if (!lws_dll2_is_detached(&stdio_reap_sul.list) &&
	    stdio_reap_sul.us <= due)
		return;
	lws_sul_schedule(stdio_ctx, 0, &stdio_reap_sul, stdio_reap,
	    (lws_usec_t)ms * LWS_US_PER_MS);
}

/* Marks the session dead with why; on_exit follows from the timer. */
static void
stdio_fail(struct upstream *u, int fatal, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
stdio_fail(struct upstream *u, int fatal, const char *fmt, ...)
{
	va_list ap;

	if (u->dead) {
		u->fatal |= fatal;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(u->why, sizeof(u->why), fmt, ap);
	va_end(ap);
	u->dead = 1;
	u->fatal = fatal;
	if (fatal && u->wsi[STDIO_OUT] != NULL)
		lws_rx_flow_control(u->wsi[STDIO_OUT], 0);
	/* The owner logs why when on_exit reaches it. */
	log_debug("[%s] %s", u->tag, u->why);
	stdio_kick(u);
}

static void
stdio_fail_status(struct upstream *u)
{
	int st = u->child->status;

	if (st != -1 && WIFSIGNALED(st))
		stdio_fail(u, 0, "server %s killed by signal %d", u->sc->name,
		    WTERMSIG(st));
	else if (st != -1 && WIFEXITED(st))
		stdio_fail(u, 0, "server %s exited with status %d",
		    u->sc->name, WEXITSTATUS(st));
	else
		stdio_fail(u, 0, "server %s exited", u->sc->name);
}

/* ---- stderr to the log ------------------------------------------------- */

static void
stdio_err_line(struct upstream *u, char *line, size_t len)
{
	uint64_t now = now_ms();
	size_t i;

	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' '))
		len--;
	if (len == 0)
		return;
	if (now - u->err_window >= 1000) {
		if (u->err_dropped > 0)
			log_info("[%s] suppressed %lu stderr lines", u->tag,
			    u->err_dropped);
		u->err_window = now;
		u->err_lines = 0;
		u->err_dropped = 0;
	}
	if (u->err_lines >= STDIO_ERR_RATE) {
		u->err_dropped++;
		return;
	}
	u->err_lines++;
	/* No terminal escapes or other control bytes reach the log. */
	for (i = 0; i < len; i++)
		if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
			line[i] = '?';
		else if ((unsigned char)line[i] == 0x7f)
			line[i] = '?';
	log_info("[%s] %.*s", u->tag, (int)len, line);
}

/* Logs the complete stderr lines in eq (and the rest too if flush). */
static void
stdio_err_lines(struct upstream *u, int flush)
{
	char *p, *nl;
	size_t n;

	for (;;) {
		p = (char *)u->eq.data + u->eq.off;
		n = buf_len(&u->eq);
		if (n == 0)
			break;
		if ((nl = memchr(p, '\n', n)) != NULL) {
			stdio_err_line(u, p, (size_t)(nl - p));
			buf_consume(&u->eq, (size_t)(nl - p) + 1);
		} else if (n >= STDIO_ERR_LINE || flush) {
			stdio_err_line(u, p, n > STDIO_ERR_LINE ?
			    STDIO_ERR_LINE : n);
			buf_consume(&u->eq, n > STDIO_ERR_LINE ?
			    STDIO_ERR_LINE : n);
		} else
			break;
	}
	if (flush && u->err_dropped > 0) {
		log_info("[%s] suppressed %lu stderr lines", u->tag,
		    u->err_dropped);
		u->err_dropped = 0;
	}
}

static int
stdio_rx_err(struct upstream *u, struct lws *wsi)
{
	uint8_t *p;
	ssize_t n;

	if ((p = buf_reserve(&u->eq, 4096)) == NULL)
		return -1;
	n = read(lws_get_socket_fd(wsi), p, 4096);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		stdio_err_lines(u, 1);
		return -1;
	}
	buf_commit(&u->eq, (size_t)n);
	stdio_err_lines(u, 0);
	return 0;
}

/* ---- stdout: JSON-RPC lines -------------------------------------------- */

/* The line going to the sink: n bytes at p, up to its end if there. */
static void
stdio_to_sink(struct upstream *u, const uint8_t *p, size_t n)
{
	struct offload_sink *k = u->sink;
	const uint8_t *nl;
	size_t len;

	nl = memchr(p, '\n', n);
	len = nl != NULL ? (size_t)(nl - p) : n;
	offload_sink_write(k, p, len);
	buf_consume(&u->rq, nl != NULL ? len + 1 : len);
	if (nl == NULL)
		return;
	/* The whole message went by: the owner gets the answer. */
	u->sink = NULL;
	u->big_asked = 0;
	offload_sink_end(k);
}

/* Hands complete lines to the owner while it wants them. */
static void
stdio_deliver(struct upstream *u)
{
	uint8_t *p, *nl, *s, *e;
	size_t n;

	while (!u->closed && !u->paused && !u->fatal) {
		p = u->rq.data + u->rq.off;
		n = buf_len(&u->rq);
		if (n == 0)
			break;
		if (u->sink != NULL) {
			stdio_to_sink(u, p, n);
			continue;
		}
		nl = memchr(p + u->scan, '\n', n - u->scan);
		if (nl == NULL) {
			u->scan = n;
			if (u->big_at > 0 && n > u->big_at && !u->big_asked &&
			    u->ops->on_big != NULL) {
				u->big_asked = 1;
				u->sink = u->ops->on_big(u->arg, p, n);
				if (u->sink != NULL) {
					/* It has taken these bytes. */
					buf_consume(&u->rq, n);
					u->scan = 0;
					continue;
				}
			}
			if (n > u->max_line)
				stdio_fail(u, 1, "server %s sent a line longer "
				    "than max_line (%llu bytes)", u->sc->name,
				    (unsigned long long)u->max_line);
			break;
		}
		if ((uint64_t)(nl - p) > u->max_line) {
			stdio_fail(u, 1, "server %s sent a line longer than "
			    "max_line (%llu bytes)", u->sc->name,
			    (unsigned long long)u->max_line);
			break;
		}
		s = p;
		e = nl;
		while (s < e && (*s == ' ' || *s == '\t' || *s == '\r'))
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t' ||
		    e[-1] == '\r'))
			e--;
		*e = '\0';
		/* The buffer is not touched until the callback returns. */
		if (e > s)
			u->ops->on_message(u->arg, s, (size_t)(e - s));
		buf_consume(&u->rq, (size_t)(nl - p) + 1);
		u->scan = 0;
		u->big_asked = 0;
	}
}

static int
stdio_has_line(const struct upstream *u)
{
	return buf_len(&u->rq) > 0 &&
	    memchr(buf_ptr(&u->rq), '\n', buf_len(&u->rq)) != NULL;
}

static void
stdio_out_eof(struct upstream *u)
{
	if (u->out_eof)
		return;
	u->out_eof = 1;
	u->eof_at = now_ms();
	/* A last line without a newline still counts. */
	if ((buf_len(&u->rq) > 0 || u->sink != NULL) && !u->fatal)
		(void)buf_append(&u->rq, "\n", 1);
	stdio_reap_within(STDIO_REAP_SOON_MS);
	stdio_kick(u);
}

static int
stdio_rx_out(struct upstream *u, struct lws *wsi)
{
	uint8_t *p;
	ssize_t n;

	if (u->fatal)
		return 0;
	if ((p = buf_reserve(&u->rq, STDIO_READ_CHUNK)) == NULL) {
		stdio_fail(u, 1, "server %s: out of memory reading its output",
		    u->sc->name);
		return 0;
	}
	n = read(lws_get_socket_fd(wsi), p, STDIO_READ_CHUNK);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n < 0) {
		log_warn("[%s] reading stdout", u->tag);
		stdio_out_eof(u);
		return -1;
	}
	if (n == 0) {
		stdio_out_eof(u);
		return -1;
	}
	buf_commit(&u->rq, (size_t)n);
	stdio_deliver(u);
	return 0;
}

/* ---- stdin ------------------------------------------------------------- */

static int
stdio_write(struct upstream *u, struct lws *wsi)
{
	ssize_t n;

	while (buf_len(&u->wq) > 0) {
		n = write(lws_get_socket_fd(wsi), buf_ptr(&u->wq),
		    buf_len(&u->wq));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			/* EPIPE: it closed stdin; its exit will follow. */
			log_debug("[%s] writing stdin: %s", u->tag,
			    strerror(errno));
			buf_reset(&u->wq);
			return -1;
		}
		buf_consume(&u->wq, (size_t)n);
	}
	if (buf_len(&u->wq) > 0)
		lws_callback_on_writable(wsi);
	if (u->want_drain && buf_len(&u->wq) <= STDIO_WQ_LOW && !u->dead) {
		u->want_drain = 0;
		u->ops->on_drain(u->arg);
	}
	return 0;
}

/* ---- timers ------------------------------------------------------------ */

static void
stdio_free(struct upstream *u)
{
	buf_free(&u->wq);
	buf_free(&u->rq);
	buf_free(&u->eq);
	free(u->tag);
	free(u);
}

/* Leaves an entry point; frees u if it was closed meanwhile. */
static void
stdio_release(struct upstream *u)
{
	if (--u->busy == 0 && u->closed)
		stdio_free(u);
}

static void
stdio_step(struct upstream *u)
{
	uint64_t now = now_ms(), next = 0;

	if (!u->paused)
		stdio_deliver(u);
	if (u->closed)
		return;
	if (!u->dead && u->child->reaped) {
		if (u->out_eof || now >= u->exited_at + STDIO_EXIT_GRACE_MS)
			stdio_fail_status(u);
		else
			next = u->exited_at + STDIO_EXIT_GRACE_MS;
	}
	if (!u->dead && u->out_eof && !u->child->reaped) {
		if (now >= u->eof_at + STDIO_EOF_GRACE_MS)
			stdio_fail(u, 0, "server %s closed its standard output",
			    u->sc->name);
		else
			next = u->eof_at + STDIO_EOF_GRACE_MS;
	}
	/* An exit waits until the lines before it were delivered. */
	if (u->dead && !u->exit_reported &&
	    (u->fatal || (!u->paused && !stdio_has_line(u)))) {
		u->exit_reported = 1;
		u->ops->on_exit(u->arg, u->why);
		return;
	}
	if (next > 0 && !u->dead)
		stdio_kick_in(u, next > now ? next - now : 0);
}

static void
stdio_tick(lws_sorted_usec_list_t *sul)
{
	struct upstream *u = lws_container_of(sul, struct upstream, sul);

	u->busy++;
	stdio_step(u);
	stdio_release(u);
}

/* The waitpid sweep: reaps children, escalates to SIGKILL. */
static void
stdio_reap(lws_sorted_usec_list_t *sul)
{
	struct stdio_child *c, **cp;
	uint64_t now = now_ms();
	pid_t r;
	int st;

	for (cp = &stdio_children; (c = *cp) != NULL; ) {
		if (!c->reaped) {
			r = waitpid(c->pid, &st, WNOHANG);
			if (r == c->pid || (r < 0 && errno == ECHILD)) {
				c->reaped = 1;
				c->status = r == c->pid ? st : -1;
				if (c->u != NULL) {
					c->u->exited_at = now;
					stdio_kick(c->u);
				}
			} else if (c->kill_at != 0 && now >= c->kill_at) {
				log_info("pid %d did not exit after SIGTERM; "
				    "sending SIGKILL", (int)c->pid);
				kill(-c->pid, SIGKILL);
				kill(c->pid, SIGKILL);
				c->kill_at = 0;
			}
		}
		if (c->reaped && c->u == NULL) {
			*cp = c->next;
			free(c);
			continue;
		}
		cp = &c->next;
	}
	if (stdio_children != NULL)
		stdio_reap_within(STDIO_REAP_MS);
}

/* ---- spawning ---------------------------------------------------------- */

/* What the child reports through the close-on-exec pipe. */
struct stdio_execerr {
	int	stage;		/* 1 = chdir, 2 = exec */
	int	err;		/* errno */
};

static char **
stdio_envp(const struct server_conf *sc)
{
	char **envp;
	const char *v;
	size_t n = 0, i, j;

	envp = xcalloc(sizeof(stdio_inherit) / sizeof(stdio_inherit[0]) +
	    sc->env.n + 1, sizeof(*envp));
	for (i = 0; stdio_inherit[i] != NULL; i++) {
		if (conf_map_get(&sc->env, stdio_inherit[i]) != NULL)
			continue;
		if ((v = getenv(stdio_inherit[i])) != NULL)
			envp[n++] = xasprintf("%s=%s", stdio_inherit[i], v);
		else if (strcmp(stdio_inherit[i], "PATH") == 0)
			envp[n++] = xasprintf("PATH=%s", STDIO_DEFAULT_PATH);
	}
	for (j = 0; j < sc->env.n; j++)
		envp[n++] = xasprintf("%s=%s", sc->env.v[j].key,
		    sc->env.v[j].value);
	envp[n] = NULL;
	return envp;
}

static void
stdio_free_strv(char **v)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; v[i] != NULL; i++)
		free_secret(v[i]);	/* env values may be secrets */
	free(v);
}

/*
 * Finds the program to run: a name with a '/' is used as is (relative to
 * the working directory); otherwise it is looked up in the child's PATH.
 * Returns a new string, or NULL with errno set.
 */
static char *
stdio_resolve(const char *cmd, const char *path)
{
	const char *p, *end;
	struct stat st;
	char *cand;
	int saved = ENOENT;

	if (*cmd == '\0') {
		errno = ENOENT;
		return NULL;
	}
	if (strchr(cmd, '/') != NULL)
		return xstrdup(cmd);
	if (path == NULL)
		path = STDIO_DEFAULT_PATH;
	for (p = path; ; p = end + 1) {
		end = strchr(p, ':');
		if (end == NULL)
			end = p + strlen(p);
		cand = end == p ? xasprintf("./%s", cmd) :
		    xasprintf("%.*s/%s", (int)(end - p), p, cmd);
		if (stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
			if (access(cand, X_OK) == 0)
				return cand;
			saved = EACCES;
		}
		free(cand);
		if (*end == '\0')
			break;
	}
	errno = saved;
	return NULL;
}

static const char *
stdio_env_path(char **envp)
{
	size_t i;

	for (i = 0; envp[i] != NULL; i++)
		if (strncmp(envp[i], "PATH=", 5) == 0)
			return envp[i] + 5;
	return NULL;
}

/* The argv to exec: the command's, or bwrap's around it. */
static char **
stdio_argv(const struct server_conf *sc, const char *prog)
{
	size_t nargs = conf_strlist_len(sc->args), n = 0, i, cap;
	char **argv;

	cap = nargs + 2;
	if (sc->sandbox.enabled)
		cap += 32 + 3 * (conf_strlist_len(sc->sandbox.read_only) +
		    conf_strlist_len(sc->sandbox.read_write));
	argv = xcalloc(cap, sizeof(*argv));
	if (sc->sandbox.enabled) {
		static const char *const fixed[] = {
			"bwrap", "--ro-bind", "/", "/", "--dev", "/dev",
			"--proc", "/proc", "--tmpfs", "/tmp", "--unshare-all",
			"--die-with-parent", "--new-session", NULL
		};
		for (i = 0; fixed[i] != NULL; i++)
			argv[n++] = xstrdup(fixed[i]);
		if (sc->sandbox.network)
			argv[n++] = xstrdup("--share-net");
		for (i = 0; sc->sandbox.read_only != NULL &&
		    sc->sandbox.read_only[i] != NULL; i++) {
			argv[n++] = xstrdup("--ro-bind");
			argv[n++] = xstrdup(sc->sandbox.read_only[i]);
			argv[n++] = xstrdup(sc->sandbox.read_only[i]);
		}
		for (i = 0; sc->sandbox.read_write != NULL &&
		    sc->sandbox.read_write[i] != NULL; i++) {
			argv[n++] = xstrdup("--bind");
			argv[n++] = xstrdup(sc->sandbox.read_write[i]);
			argv[n++] = xstrdup(sc->sandbox.read_write[i]);
		}
		if (sc->cwd != NULL) {
			argv[n++] = xstrdup("--chdir");
			argv[n++] = xstrdup(sc->cwd);
		}
		argv[n++] = xstrdup("--");
		argv[n++] = xstrdup(prog);
	} else
		argv[n++] = xstrdup(sc->command);
	for (i = 0; i < nargs; i++)
		argv[n++] = xstrdup(sc->args[i]);
	argv[n] = NULL;
	return argv;
}

/* In the child, after fork: never returns. */
static void __attribute__((noreturn))
stdio_child_exec(const struct server_conf *sc, const char *prog,
    char **argv, char **envp, int pin[2], int pout[2], int perr[2],
    int errfd)
{
	struct stdio_execerr ee;
	sigset_t all;
	int sig, fd;
	long maxfd;

	setpgid(0, 0);
	/* Die with the client rather than linger unowned. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	/* lws ignores SIGPIPE; an ignored signal survives exec. */
	for (sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);

	if (dup2(pin[0], STDIN_FILENO) < 0 ||
	    dup2(pout[1], STDOUT_FILENO) < 0 ||
	    dup2(perr[1], STDERR_FILENO) < 0)
		_exit(127);
	/* Nothing of the client's (sockets, other sessions' pipes) leaks. */
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
		maxfd = sysconf(_SC_OPEN_MAX);
		if (maxfd < 0 || maxfd > 65536)
			maxfd = 65536;
		for (fd = 3; fd < maxfd; fd++)
			(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	}
	if (sc->cwd != NULL && chdir(sc->cwd) != 0) {
		ee.stage = 1;
		ee.err = errno;
		(void)!write(errfd, &ee, sizeof(ee));
		_exit(127);
	}
	execve(prog, argv, envp);
	ee.stage = 2;
	ee.err = errno;
	(void)!write(errfd, &ee, sizeof(ee));
	_exit(127);
}

static void
stdio_close_pair(int p[2])
{
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	p[0] = p[1] = -1;
}

/*
 * Starts sc's command; on success fds[] gets the parent's ends (stdin to
 * write, stdout and stderr to read) and *pidp the pid.  Returns 0 or MT_E*
 * with upstream_set_error() called.
 */
static int
stdio_spawn(const struct server_conf *sc, int fds[STDIO_NFD], pid_t *pidp)
{
	int pin[2] = { -1, -1 }, pout[2] = { -1, -1 }, perr[2] = { -1, -1 };
	int pexec[2] = { -1, -1 };
	char **envp = NULL, **argv = NULL, *prog = NULL, *cmd = NULL;
	struct stdio_execerr ee;
	ssize_t n;
	pid_t pid;
	int r = MT_EIO, st;

	envp = stdio_envp(sc);
	if ((cmd = stdio_resolve(sc->command, stdio_env_path(envp))) == NULL) {
		upstream_set_error("cannot run %s: %s", sc->command,
		    strerror(errno));
		goto out;
	}
	if (sc->sandbox.enabled) {
		if (access(STDIO_BWRAP, X_OK) == 0)
			prog = xstrdup(STDIO_BWRAP);
		else if ((prog = stdio_resolve("bwrap", getenv("PATH"))) ==
		    NULL) {
			upstream_set_error("cannot run %s in a sandbox: bwrap: "
			    "%s", sc->command, strerror(errno));
			goto out;
		}
	} else {
		prog = cmd;
		cmd = NULL;
	}
	argv = stdio_argv(sc, cmd != NULL ? cmd : prog);

	if (pipe2(pin, O_CLOEXEC) != 0 || pipe2(pout, O_CLOEXEC) != 0 ||
	    pipe2(perr, O_CLOEXEC) != 0 || pipe2(pexec, O_CLOEXEC) != 0) {
		upstream_set_error("cannot run %s: pipe: %s", sc->command,
		    strerror(errno));
		goto out;
	}
	if ((pid = fork()) < 0) {
		upstream_set_error("cannot run %s: fork: %s", sc->command,
		    strerror(errno));
		goto out;
	}
	if (pid == 0) {
		close(pexec[0]);
		stdio_child_exec(sc, prog, argv, envp, pin, pout, perr,
		    pexec[1]);
	}
	/* Both sides set the group, so a kill(-pid) never misses. */
	(void)setpgid(pid, pid);
	close(pexec[1]);
	pexec[1] = -1;
	do {
		n = read(pexec[0], &ee, sizeof(ee));
	} while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(ee)) {
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		if (ee.stage == 1)
			upstream_set_error("cannot run %s: cannot change to "
			    "directory %s: %s", sc->command, sc->cwd,
			    strerror(ee.err));
		else
			upstream_set_error("cannot run %s: %s",
			    sc->sandbox.enabled ? prog : sc->command,
			    strerror(ee.err));
		goto out;
	}
	fds[STDIO_IN] = pin[1];
	fds[STDIO_OUT] = pout[0];
	fds[STDIO_ERR] = perr[0];
	pin[1] = pout[0] = perr[0] = -1;
	*pidp = pid;
	r = 0;
 out:
	stdio_close_pair(pin);
	stdio_close_pair(pout);
	stdio_close_pair(perr);
	stdio_close_pair(pexec);
	stdio_free_strv(envp);
	stdio_free_strv(argv);
	free(prog);
	free(cmd);
	return r;
}

/* ---- the upstream_kind ------------------------------------------------- */

static void stdio_close(struct upstream *);

static int
stdio_open(struct lws_vhost *vh, const struct server_conf *sc,
    const char *agent, const char *session_tag,
    const struct upstream_ops *ops, void *arg, struct upstream **out)
{
	struct upstream *u = NULL;
	struct stdio_child *c;
	lws_adopt_desc_t ad;
	int fds[STDIO_NFD] = { -1, -1, -1 }, k, fl;
	pid_t pid;
	int r;

	if (sc->command == NULL || *sc->command == '\0') {
		upstream_set_error("server %s has no command", sc->name);
		return MT_ECONFIG;
	}
	if (vh == NULL || lws_vhost_name_to_protocol(vh,
	    STDIO_PROTOCOL_NAME) == NULL) {
		upstream_set_error("cannot run %s: the %s protocol is not "
		    "in the vhost", sc->command, STDIO_PROTOCOL_NAME);
		return MT_ESTATE;
	}
	if ((r = stdio_spawn(sc, fds, &pid)) != 0)
		return r;

	u = xcalloc(1, sizeof(*u));
	u->sc = sc;
	u->ops = ops;
	u->arg = arg;
	u->tag = xstrdup(session_tag != NULL ? session_tag : sc->name);
	u->max_line = sc->max_line > 0 ? sc->max_line : 16 * 1024 * 1024;
	u->big_at = offload_threshold(&sc->offload);
	buf_init(&u->wq, 0);
	buf_init(&u->rq, 0);
	buf_init(&u->eq, 0);
	c = xcalloc(1, sizeof(*c));
	c->pid = pid;
	c->u = u;
	c->status = -1;
	c->next = stdio_children;
	stdio_children = c;
	u->child = c;

	for (k = 0; k < STDIO_NFD; k++) {
		if ((fl = fcntl(fds[k], F_GETFL)) != -1)
			(void)fcntl(fds[k], F_SETFL, fl | O_NONBLOCK);
		memset(&ad, 0, sizeof(ad));
		ad.vh = vh;
		ad.type = LWS_ADOPT_RAW_FILE_DESC;
		ad.fd.filefd = (lws_filefd_type)(intptr_t)fds[k];
		ad.vh_prot_name = STDIO_PROTOCOL_NAME;
		ad.opaque = u;
		if ((u->wsi[k] = lws_adopt_descriptor_vhost_via_info(&ad)) ==
		    NULL) {
			upstream_set_error("cannot run %s: cannot adopt its "
			    "pipes", sc->command);
			for (; k < STDIO_NFD; k++)
				close(fds[k]);
			stdio_close(u);
			return MT_EIO;
		}
		fds[k] = -1;
	}
	if (stdio_ctx == NULL)
		stdio_ctx = lws_get_context(u->wsi[STDIO_OUT]);
	stdio_reap_within(STDIO_REAP_MS);
	log_info("[%s] started %s for %s (pid %d)%s", u->tag, sc->command,
	    agent != NULL ? agent : "?", (int)pid,
	    sc->sandbox.enabled ? " in a bwrap sandbox" : "");
	*out = u;
	return 0;
}

static int
stdio_send(struct upstream *u, const uint8_t *msg, size_t len)
{
	uint8_t *dst;
	size_t i;

	if (u->closed || u->dead || u->wsi[STDIO_IN] == NULL)
		return MT_ECLOSED;
	if (len > u->max_line)
		return MT_ETOOBIG;
	if ((dst = buf_reserve(&u->wq, len + 1)) == NULL)
		return MT_ENOMEM;
	/*
	 * Raw CR and LF can only be whitespace in valid JSON (inside strings
	 * they are escaped), so blanking them keeps one message per line.
	 */
	for (i = 0; i < len; i++)
		dst[i] = msg[i] == '\n' || msg[i] == '\r' ? ' ' : msg[i];
	dst[len] = '\n';
	buf_commit(&u->wq, len + 1);
	lws_callback_on_writable(u->wsi[STDIO_IN]);
	if (buf_len(&u->wq) > STDIO_WQ_HIGH) {
		u->want_drain = 1;
		return MT_EAGAIN;
	}
	return 0;
}

static void
stdio_close(struct upstream *u)
{
	struct stdio_child *c;
	int k;

	if (u == NULL || u->closed)
		return;
	u->closed = 1;
	lws_sul_cancel(&u->sul);
	/* A large message cut off: what it stored goes, no callback. */
	offload_sink_abort(u->sink);
	u->sink = NULL;
	for (k = 0; k < STDIO_NFD; k++) {
		if (u->wsi[k] == NULL)
			continue;
		/* Its callbacks see no owner and close it. */
		lws_set_opaque_user_data(u->wsi[k], NULL);
		lws_set_timeout(u->wsi[k], PENDING_TIMEOUT_KILLED_BY_PARENT,
		    LWS_TO_KILL_ASYNC);
		u->wsi[k] = NULL;
	}
	stdio_err_lines(u, 1);
	c = u->child;
	c->u = NULL;
	if (!c->reaped) {
		kill(-c->pid, SIGTERM);
		c->kill_at = now_ms() + STDIO_TERM_MS;
		stdio_reap_within(STDIO_REAP_MS);
	}
	log_debug("[%s] closed", u->tag);
	if (u->busy == 0)
		stdio_free(u);
}

static void
stdio_pause(struct upstream *u)
{
	if (u->closed || u->paused)
		return;
	u->paused = 1;
	if (u->wsi[STDIO_OUT] != NULL)
		lws_rx_flow_control(u->wsi[STDIO_OUT], 0);
}

static void
stdio_resume(struct upstream *u)
{
	if (u->closed || !u->paused)
		return;
	u->paused = 0;
	if (u->wsi[STDIO_OUT] != NULL && !u->fatal)
		lws_rx_flow_control(u->wsi[STDIO_OUT], 1);
	/* Lines already read go out from the timer, not from here. */
	stdio_kick(u);
}

const struct upstream_kind upstream_stdio = {
	.name = "stdio",
	.open = stdio_open,
	.send = stdio_send,
	.close = stdio_close,
	.pause = stdio_pause,
	.resume = stdio_resume,
};

/* ---- the lws protocol -------------------------------------------------- */

int
stdio_callback(struct lws *wsi, enum lws_callback_reasons reason,
    void *user, void *in, size_t len)
{
	struct upstream *u;
	int k, r = 0;

	switch (reason) {
	case LWS_CALLBACK_PROTOCOL_INIT:
		if (stdio_ctx == NULL)
			stdio_ctx = lws_get_context(wsi);
		return 0;
	case LWS_CALLBACK_PROTOCOL_DESTROY:
		lws_sul_cancel(&stdio_reap_sul);
		stdio_ctx = NULL;
		return 0;
	case LWS_CALLBACK_RAW_RX_FILE:
	case LWS_CALLBACK_RAW_WRITEABLE_FILE:
	case LWS_CALLBACK_RAW_CLOSE_FILE:
		break;
	default:
		return 0;
	}
	u = lws_get_opaque_user_data(wsi);
	for (k = 0; u != NULL && k < STDIO_NFD && u->wsi[k] != wsi; k++)
		;
	if (u == NULL || k == STDIO_NFD)	/* its session is gone */
		return reason == LWS_CALLBACK_RAW_CLOSE_FILE ? 0 : -1;

	u->busy++;
	switch (reason) {
	case LWS_CALLBACK_RAW_RX_FILE:
		if (k == STDIO_OUT)
			r = stdio_rx_out(u, wsi);
		else if (k == STDIO_ERR)
			r = stdio_rx_err(u, wsi);
		break;
	case LWS_CALLBACK_RAW_WRITEABLE_FILE:
		if (k == STDIO_IN)
			r = stdio_write(u, wsi);
		break;
	default:	/* LWS_CALLBACK_RAW_CLOSE_FILE */
		u->wsi[k] = NULL;
		if (k == STDIO_OUT)
			stdio_out_eof(u);
		else if (k == STDIO_ERR)
			stdio_err_lines(u, 1);
		break;
	}
	stdio_release(u);
	return r;
}

const struct lws_protocols stdio_protocol = STDIO_PROTOCOL;

void
stdio_shutdown(void)
{
	struct stdio_child *c, **cp;
	int st;

	for (cp = &stdio_children; (c = *cp) != NULL; ) {
		if (!c->reaped) {
			kill(-c->pid, SIGKILL);
			kill(c->pid, SIGKILL);
			while (waitpid(c->pid, &st, 0) < 0 && errno == EINTR)
				;
			c->reaped = 1;
			c->status = st;
		}
		/* A session still open keeps its record until it closes. */
		if (c->u != NULL) {
			cp = &c->next;
			continue;
		}
		*cp = c->next;
		free(c);
	}
	if (stdio_ctx != NULL)
		lws_sul_cancel(&stdio_reap_sul);
}
