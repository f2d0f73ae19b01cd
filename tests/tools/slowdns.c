/*
 * An LD_PRELOAD shim for tests: a DNS server that is slow or broken for
 * chosen names, in front of the real getaddrinfo.  Test code only.
 *
 *   NAME.slow.test   waits SLOWDNS_SECONDS (default 3), answers 127.0.0.1
 *   NAME.fail.test   answers EAI_NONAME at once
 *   NAME.multi.test  answers ::1 first, then 127.0.0.1 (a server on
 *                    127.0.0.1 only is reached through the second); so
 *                    do names in SLOWDNS_MULTI (e.g. "localhost")
 *   names in SLOWDNS_ALSO (comma-separated, e.g. "localhost") wait like
 *                    .slow.test and then resolve as they really do
 *
 * Every lookup of a test name appends "start NAME" when it begins and
 * "done NAME" when it answers to the file SLOWDNS_LOG, so a test can see
 * that a lookup is still pending without measuring time.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef int gai_fn(const char *, const char *, const struct addrinfo *,
    struct addrinfo **);

int	getaddrinfo(const char *, const char *, const struct addrinfo *,
	    struct addrinfo **);

static int
ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int
in_list(const char *name, const char *list)
{
	size_t n = strlen(name);
	const char *p = list;

	while (p != NULL && *p != '\0') {
		if (strncmp(p, name, n) == 0 && (p[n] == ',' || p[n] == '\0'))
			return 1;
		if ((p = strchr(p, ',')) != NULL)
			p++;
	}
	return 0;
}

static void
note(const char *what, const char *name)
{
	const char *path = getenv("SLOWDNS_LOG");
	char line[512];
	int fd, n;

	if (path == NULL)
		return;
	n = snprintf(line, sizeof(line), "%s %s\n", what, name);
	if (n <= 0 || (size_t)n >= sizeof(line))
		return;
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
	    0644)) == -1)
		return;
	if (write(fd, line, (size_t)n) != n) {
		/* A test log: a short write shows as a failed check. */
	}
	close(fd);
}

static void
wait_a_while(void)
{
	const char *s = getenv("SLOWDNS_SECONDS");
	double secs = s != NULL ? atof(s) : 3;

	if (secs > 0)
		usleep((useconds_t)(secs * 1e6));
}

int
getaddrinfo(const char *node, const char *service,
    const struct addrinfo *hints, struct addrinfo **res)
{
	static gai_fn *real;
	struct addrinfo *a = NULL, *b = NULL, *p;
	int r;

	if (real == NULL)
		real = (gai_fn *)dlsym(RTLD_NEXT, "getaddrinfo");
	if (node == NULL)
		return real(node, service, hints, res);
	if (ends_with(node, ".slow.test") ||
	    in_list(node, getenv("SLOWDNS_ALSO"))) {
		note("start", node);
		wait_a_while();
		r = real(ends_with(node, ".slow.test") ? "127.0.0.1" : node,
		    service, hints, res);
		note("done", node);
		return r;
	}
	if (ends_with(node, ".fail.test")) {
		note("start", node);
		note("done", node);
		return EAI_NONAME;
	}
	if (ends_with(node, ".multi.test") ||
	    in_list(node, getenv("SLOWDNS_MULTI"))) {
		note("start", node);
		if ((r = real("::1", service, hints, &a)) != 0)
			a = NULL;
		if ((r = real("127.0.0.1", service, hints, &b)) != 0) {
			if (a != NULL)
				freeaddrinfo(a);
			return r;
		}
		if (a != NULL) {
			for (p = a; p->ai_next != NULL; p = p->ai_next)
				;
			p->ai_next = b;
			b = a;
		}
		*res = b;
		note("done", node);
		return 0;
	}
	return real(node, service, hints, res);
}
