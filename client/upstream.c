/*
 * Picks the upstream adapter for a server's type, and holds the little
 * state every kind shares: the sentence explaining why the last open
 * failed (session.c sends it back in OPEN_ERR).  Kinds that are not built yet have no entry, so a
 * session to such a server is refused with a clear sentence.
 */
#include "client/client_conf.h"
#include "client/upstream.h"
#include "client/up_stdio.h"
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>

static char upstream_errbuf[512];

const struct upstream_kind *
upstream_kind_for(const struct server_conf *sc)
{
	switch (sc->type) {
	case SERVER_STDIO:
		return &upstream_stdio;
	case SERVER_POSTGRES:
		return &upstream_postgres;
	case SERVER_HTTP:
		return &upstream_http;
	default:	/* http and postgres: not built yet */
		return NULL;
	}
}

void
upstream_set_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(upstream_errbuf, sizeof(upstream_errbuf), fmt, ap);
	va_end(ap);
	log_warnx("%s", upstream_errbuf);
}

const char *
upstream_take_error(void)
{
	static char taken[sizeof(upstream_errbuf)];

	snprintf(taken, sizeof(taken), "%s", upstream_errbuf);
	upstream_errbuf[0] = '\0';
	return taken;
}
