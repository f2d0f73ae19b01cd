/*
 * Host-name lookups off the event loop: a queue of names, up to
 * RESOLVE_WORKERS detached threads calling getaddrinfo, and a pipe that
 * wakes the loop when an answer is ready (see resolve.h).
 *
 * Two objects.  A query is one name being looked up; requests for a name
 * already in flight join its query.  A request (struct resolve_req) is one
 * caller waiting for a query, the handle resolve_start gives out.
 *
 * Threads.  The loop thread owns requests, the list of queries in flight
 * (R.all) and each query's list of requests; workers never touch those.
 * A worker reads a query's name and writes its result, nothing else, and
 * the mutex guards the queues between the two (R.waiting, R.done) and a
 * query's state.  A query leaves R.all when its answer is dispatched, or
 * when its last request is cancelled while it still waits in R.waiting; a
 * query being looked up whose requests are all gone is freed when its
 * answer comes.  After resolve_shutdown a worker frees the query it was
 * working on itself, so nobody waits for a DNS server that does not
 * answer.
 *
 * Answers are kept for RESOLVE_CACHE_MS: a session sends its requests
 * on connections of their own, and a slow DNS server should cost it one
 * wait, not one per request.  A cached answer still comes through the
 * pipe and resolve_dispatch, never from inside resolve_start.
 */
#include "common/resolve.h"
#include "common/err.h"
#include "common/xmalloc.h"

#include <sys/queue.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum resolve_state { RS_QUEUED, RS_RUNNING, RS_DONE };

struct resolve_req {
	TAILQ_ENTRY(resolve_req) entry;		/* in q->reqs */
	struct resolve_query	*q;
	resolve_cb		*cb;
	void			*arg;
};

struct resolve_query {
	TAILQ_ENTRY(resolve_query) all;		/* in R.all (loop thread) */
	TAILQ_ENTRY(resolve_query) queue;	/* in R.waiting or R.done */
	TAILQ_HEAD(, resolve_req) reqs;		/* loop thread only */
	char			*name;
	enum resolve_state	 state;		/* under R.mu */
	int			 orphan;	/* shut down: the worker frees */
	struct resolve_result	 res;
};

TAILQ_HEAD(resolve_queries, resolve_query);

/* A recent answer. */
struct resolve_cached {
	char			*name;
	unsigned long long	 until_ms;
	struct resolve_result	 res;
};

static struct {
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	struct resolve_queries	 all;
	struct resolve_queries	 waiting;
	struct resolve_queries	 done;
	size_t			 pending;	/* queries in R.all */
	size_t			 queued;	/* queries in R.waiting */
	int			 workers;	/* threads alive */
	int			 idle;		/* of them, waiting for work */
	int			 stopping;
	int			 rfd, wfd;
	int			 ready;
	resolve_gai_fn		*gai;
	struct resolve_cached	 cache[RESOLVE_CACHE_SIZE];
	size_t			 cache_next;	/* the slot to reuse next */
} R = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.cv = PTHREAD_COND_INITIALIZER,
	.rfd = -1,
	.wfd = -1
};

static unsigned long long
resolve_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000 +
	    (unsigned long long)ts.tv_nsec / 1000000;
}

/* A fresh cached answer for name, or NULL. */
static const struct resolve_result *
resolve_cache_get(const char *name)
{
	unsigned long long now = resolve_now_ms();
	size_t i;

	for (i = 0; i < RESOLVE_CACHE_SIZE; i++)
		if (R.cache[i].name != NULL &&
		    strcmp(R.cache[i].name, name) == 0 &&
		    R.cache[i].until_ms > now)
			return &R.cache[i].res;
	return NULL;
}

/* Keeps a successful answer (replacing the name's older one). */
static void
resolve_cache_put(const char *name, const struct resolve_result *res)
{
	struct resolve_cached *c = NULL;
	size_t i;

	if (res->error != NULL)
		return;
	for (i = 0; i < RESOLVE_CACHE_SIZE && c == NULL; i++)
		if (R.cache[i].name != NULL &&
		    strcmp(R.cache[i].name, name) == 0)
			c = &R.cache[i];
	if (c == NULL) {
		c = &R.cache[R.cache_next];
		R.cache_next = (R.cache_next + 1) % RESOLVE_CACHE_SIZE;
		free(c->name);
		c->name = xstrdup(name);
	}
	c->until_ms = resolve_now_ms() + RESOLVE_CACHE_MS;
	memcpy(&c->res, res, sizeof(c->res));
}

static void
resolve_cache_clear(void)
{
	size_t i;

	for (i = 0; i < RESOLVE_CACHE_SIZE; i++) {
		free(R.cache[i].name);
		R.cache[i].name = NULL;
	}
	R.cache_next = 0;
}

static void
resolve_query_free(struct resolve_query *q)
{
	if (q == NULL)
		return;
	free(q->name);
	free(q);
}

/* Fills q->res from getaddrinfo; runs on a worker, without the lock. */
static void
resolve_lookup(struct resolve_query *q, resolve_gai_fn *gai)
{
	struct addrinfo hints, *ai = NULL, *p;
	struct resolve_result *res = &q->res;
	char text[RESOLVE_ADDR_LEN];
	const void *a;
	size_t i;
	int r;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	r = gai(q->name, NULL, &hints, &ai);
	if (r != 0) {
		/* gai_strerror's sentences are static in glibc. */
		res->error = r == EAI_SYSTEM ? "system error" : gai_strerror(r);
		return;
	}
	for (p = ai; p != NULL && res->n < RESOLVE_MAX_ADDRS; p = p->ai_next) {
		if (p->ai_family == AF_INET)
			a = &((const struct sockaddr_in *)(const void *)
			    p->ai_addr)->sin_addr;
		else if (p->ai_family == AF_INET6)
			a = &((const struct sockaddr_in6 *)(const void *)
			    p->ai_addr)->sin6_addr;
		else
			continue;
		if (inet_ntop(p->ai_family, a, text, sizeof(text)) == NULL)
			continue;
		for (i = 0; i < res->n; i++)
			if (strcmp(res->addr[i], text) == 0)
				break;
		if (i == res->n)
			memcpy(res->addr[res->n++], text, sizeof(text));
	}
	if (ai != NULL)
		freeaddrinfo(ai);
	if (res->n == 0)
		res->error = "no IPv4 or IPv6 address";
}

static void *
resolve_worker(void *unused)
{
	struct resolve_query *q;
	resolve_gai_fn *gai;
	char one = 1;
	ssize_t w;

	(void)unused;
	pthread_mutex_lock(&R.mu);
	for (;;) {
		while (!R.stopping && TAILQ_EMPTY(&R.waiting)) {
			R.idle++;
			pthread_cond_wait(&R.cv, &R.mu);
			R.idle--;
		}
		if (R.stopping)
			break;
		q = TAILQ_FIRST(&R.waiting);
		TAILQ_REMOVE(&R.waiting, q, queue);
		R.queued--;
		q->state = RS_RUNNING;
		gai = R.gai != NULL ? R.gai : getaddrinfo;
		pthread_mutex_unlock(&R.mu);

		resolve_lookup(q, gai);

		pthread_mutex_lock(&R.mu);
		if (q->orphan) {
			resolve_query_free(q);
			continue;
		}
		q->state = RS_DONE;
		TAILQ_INSERT_TAIL(&R.done, q, queue);
		/* A full pipe (EAGAIN) has a wake-up in it already. */
		w = write(R.wfd, &one, 1);
		(void)w;
	}
	R.workers--;
	pthread_mutex_unlock(&R.mu);
	return NULL;
}

/* Starts one more worker; called with R.mu held.  Returns 0 or MT_EIO. */
static int
resolve_spawn(void)
{
	pthread_attr_t attr;
	pthread_t t;
	sigset_t all, old;
	int r;

	/* Signals stay with the loop thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	r = pthread_create(&t, &attr, resolve_worker, NULL);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0)
		return MT_EIO;
	R.workers++;
	return 0;
}

int
resolve_init(void)
{
	int fds[2];

	if (R.ready)
		return 0;
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == -1)
		return MT_EIO;
	pthread_mutex_lock(&R.mu);
	TAILQ_INIT(&R.all);
	TAILQ_INIT(&R.waiting);
	TAILQ_INIT(&R.done);
	R.pending = 0;
	R.queued = 0;
	R.stopping = 0;
	R.rfd = fds[0];
	R.wfd = fds[1];
	R.ready = 1;
	pthread_mutex_unlock(&R.mu);
	return 0;
}

int
resolve_fd(void)
{
	return R.ready ? R.rfd : -1;
}

int
resolve_is_numeric(const char *name)
{
	unsigned char a[sizeof(struct in6_addr)];

	return name != NULL && (inet_pton(AF_INET, name, a) == 1 ||
	    inet_pton(AF_INET6, name, a) == 1);
}

size_t
resolve_pending(void)
{
	return R.pending;
}

void
resolve_set_gai(resolve_gai_fn *fn)
{
	pthread_mutex_lock(&R.mu);
	R.gai = fn;
	pthread_mutex_unlock(&R.mu);
}

int
resolve_start(const char *name, resolve_cb *cb, void *arg,
    struct resolve_req **out)
{
	const struct resolve_result *hit;
	struct resolve_query *q;
	struct resolve_req *rq;
	ssize_t w;
	char one = 1;
	int r = 0;

	if (!R.ready || R.stopping || name == NULL || name[0] == '\0' ||
	    cb == NULL)
		return MT_EINVAL;
	TAILQ_FOREACH(q, &R.all, all)
		if (strcmp(q->name, name) == 0)
			break;
	if (q == NULL) {
		if (R.pending >= RESOLVE_MAX_PENDING)
			return MT_ELIMIT;
		q = xcalloc(1, sizeof(*q));
		q->name = xstrdup(name);
		TAILQ_INIT(&q->reqs);
		pthread_mutex_lock(&R.mu);
		if ((hit = resolve_cache_get(name)) != NULL) {
			/* Answered already: through the pipe all the same. */
			memcpy(&q->res, hit, sizeof(q->res));
			q->state = RS_DONE;
			TAILQ_INSERT_TAIL(&R.done, q, queue);
			w = write(R.wfd, &one, 1);
			(void)w;
		} else {
			/*
			 * Each idle worker (woken or not yet) takes one
			 * queued name; one more than they can take needs
			 * another worker, while there may be more.
			 */
			if (R.queued + 1 > (size_t)R.idle &&
			    R.workers < RESOLVE_WORKERS &&
			    resolve_spawn() != 0 && R.workers == 0)
				r = MT_EIO;
			if (r == 0) {
				q->state = RS_QUEUED;
				TAILQ_INSERT_TAIL(&R.waiting, q, queue);
				R.queued++;
				pthread_cond_signal(&R.cv);
			}
		}
		pthread_mutex_unlock(&R.mu);
		if (r != 0) {
			resolve_query_free(q);
			return r;
		}
		TAILQ_INSERT_TAIL(&R.all, q, all);
		R.pending++;
	}
	rq = xcalloc(1, sizeof(*rq));
	rq->q = q;
	rq->cb = cb;
	rq->arg = arg;
	TAILQ_INSERT_TAIL(&q->reqs, rq, entry);
	*out = rq;
	return 0;
}

void
resolve_cancel(struct resolve_req *rq)
{
	struct resolve_query *q;
	int drop = 0;

	if (rq == NULL)
		return;
	q = rq->q;
	TAILQ_REMOVE(&q->reqs, rq, entry);
	free(rq);
	if (!TAILQ_EMPTY(&q->reqs))
		return;
	/* Nobody waits for it: a query not started yet goes now. */
	pthread_mutex_lock(&R.mu);
	if (q->state == RS_QUEUED) {
		TAILQ_REMOVE(&R.waiting, q, queue);
		R.queued--;
		drop = 1;
	}
	pthread_mutex_unlock(&R.mu);
	if (drop) {
		TAILQ_REMOVE(&R.all, q, all);
		R.pending--;
		resolve_query_free(q);
	}
}

size_t
resolve_dispatch(void)
{
	struct resolve_queries done;
	struct resolve_query *q;
	struct resolve_req *rq;
	resolve_cb *cb;
	char drain[64];
	size_t n = 0;
	void *arg;

	if (!R.ready)
		return 0;
	while (read(R.rfd, drain, sizeof(drain)) > 0)
		;
	TAILQ_INIT(&done);
	pthread_mutex_lock(&R.mu);
	while ((q = TAILQ_FIRST(&R.done)) != NULL) {
		TAILQ_REMOVE(&R.done, q, queue);
		TAILQ_INSERT_TAIL(&done, q, queue);
	}
	pthread_mutex_unlock(&R.mu);

	while ((q = TAILQ_FIRST(&done)) != NULL) {
		TAILQ_REMOVE(&done, q, queue);
		TAILQ_REMOVE(&R.all, q, all);
		R.pending--;
		resolve_cache_put(q->name, &q->res);
		/*
		 * A callback may cancel other requests of this query (its
		 * session ended), so take them one at a time from the head.
		 */
		while ((rq = TAILQ_FIRST(&q->reqs)) != NULL) {
			TAILQ_REMOVE(&q->reqs, rq, entry);
			cb = rq->cb;
			arg = rq->arg;
			free(rq);
			cb(arg, &q->res);
			n++;
		}
		resolve_query_free(q);
	}
	return n;
}

void
resolve_shutdown(void)
{
	struct resolve_query *q;
	struct resolve_req *rq;

	if (!R.ready)
		return;
	pthread_mutex_lock(&R.mu);
	R.stopping = 1;
	pthread_cond_broadcast(&R.cv);
	while ((q = TAILQ_FIRST(&R.all)) != NULL) {
		TAILQ_REMOVE(&R.all, q, all);
		while ((rq = TAILQ_FIRST(&q->reqs)) != NULL) {
			TAILQ_REMOVE(&q->reqs, rq, entry);
			free(rq);
		}
		if (q->state == RS_RUNNING) {
			q->orphan = 1;
			continue;
		}
		if (q->state == RS_QUEUED) {
			TAILQ_REMOVE(&R.waiting, q, queue);
			R.queued--;
		} else
			TAILQ_REMOVE(&R.done, q, queue);
		resolve_query_free(q);
	}
	R.pending = 0;
	resolve_cache_clear();
	close(R.rfd);
	close(R.wfd);
	R.rfd = R.wfd = -1;
	R.ready = 0;
	pthread_mutex_unlock(&R.mu);
}
