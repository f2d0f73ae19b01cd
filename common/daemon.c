/* Shared daemon plumbing around the lws loop; see daemon.h. */
#include <libwebsockets.h>

#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "common/daemon.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"

static struct lws_context **sig_ctx;
static volatile sig_atomic_t got_term, got_hup;
static struct lws_context *drain_ctx;
static lws_sorted_usec_list_t sul_tick;

/*
 * The trim timer: every DAEMON_TRIM_US, malloc_trim(0) when more than
 * DAEMON_TRIM_MIN bytes of the heap are free.  malloc_trim also releases
 * whole free pages inside the heap (MADV_DONTNEED), not only its top.
 * Checking first keeps the busy case cheap: mallinfo2 only counts.
 */
#define DAEMON_TRIM_US		(10 * LWS_US_PER_SEC)
#define DAEMON_TRIM_MIN		((size_t)256 * 1024)
static struct lws_context *trim_ctx;
static lws_sorted_usec_list_t sul_trim;

static void
on_signal(int sig)
{
	if (sig == SIGHUP)
		got_hup = 1;
	else
		got_term = 1;
	/* lws_cancel_service only writes to a pipe: async-signal-safe. */
	if (sig_ctx != NULL && *sig_ctx != NULL)
		lws_cancel_service(*sig_ctx);
}

void
daemon_signals(struct lws_context **ctxp)
{
	struct sigaction sa;

	sig_ctx = ctxp;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

int
daemon_take_hup(void)
{
	if (!got_hup)
		return 0;
	got_hup = 0;
	return 1;
}

int
daemon_term_requested(void)
{
	return got_term != 0;
}

static void
lws_log_emit(int level, const char *line)
{
	size_t n = strlen(line);

	while (n > 0 && line[n - 1] == '\n')
		n--;
	if (level & LLL_ERR)
		log_warnx("lws: %.*s", (int)n, line);
	else
		log_debug("lws: %.*s", (int)n, line);
}

void
daemon_lws_logging(int verbose)
{
	lws_set_log_level(verbose ? (LLL_ERR | LLL_WARN | LLL_NOTICE) :
	    LLL_ERR, lws_log_emit);
}

void
daemon_log_lines(const char *text)
{
	char *copy = xstrdup(text), *line, *save = NULL;

	for (line = strtok_r(copy, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save))
		log_errorx("%s", line);
	free(copy);
}

/*
 * lws_service can sleep far past a deadline when no socket speaks (a
 * frozen peer); a self-rearming timer wakes it every 50 ms.
 */
static void
drain_tick(lws_sorted_usec_list_t *sul)
{
	lws_sul_schedule(drain_ctx, 0, &sul_tick, drain_tick,
	    50 * LWS_US_PER_MS);
}

static void
trim_cb(lws_sorted_usec_list_t *sul)
{
	struct mallinfo2 mi = mallinfo2();

	if (mi.fordblks > DAEMON_TRIM_MIN)
		malloc_trim(0);
	lws_sul_schedule(trim_ctx, 0, &sul_trim, trim_cb, DAEMON_TRIM_US);
}

void
daemon_trim_start(struct lws_context *ctx)
{
	trim_ctx = ctx;
	lws_sul_schedule(ctx, 0, &sul_trim, trim_cb, DAEMON_TRIM_US);
}

void
daemon_drain(struct lws_context *ctx, unsigned ms)
{
	uint64_t deadline = now_ms() + ms;

	if (trim_ctx != NULL) {
		lws_sul_cancel(&sul_trim);
		trim_ctx = NULL;
	}

	drain_ctx = ctx;
	drain_tick(NULL);
	while (now_ms() < deadline)
		if (lws_service(ctx, 0) < 0)
			break;
	lws_sul_cancel(&sul_tick);
}
