/*
 * libpq, loaded when it is first needed (pq_dl.c).  mcptun-client does not
 * link libpq: libpq pulls in OpenSSL, GnuTLS (through OpenLDAP), Kerberos,
 * p11-kit and more, about 5 MiB of resident memory that a client without a
 * postgres server in its allowlist never uses.  Instead the first config
 * (at start-up or on reload) that names a postgres server dlopen()s
 * libpq.so.5 and fills the table below; up_postgres.c calls libpq only
 * through it ("libpq.PQfinish(conn)").  The library then stays loaded for
 * the life of the process, even if a reload removes the server again.
 *
 * The code still compiles against libpq-fe.h, so every pointer in the
 * table has the exact type of the function it stands for.
 */
#ifndef MCPTUN_PQ_DL_H
#define MCPTUN_PQ_DL_H

#include <stddef.h>

#include <libpq-fe.h>

/* The shared library, by its soname (the ABI we compile against). */
#define PQ_DL_LIBNAME	"libpq.so.5"

/* Every libpq function mcptun calls; add new ones here. */
#define PQ_DL_FUNCS(X) \
	X(PQclear) X(PQcmdStatus) X(PQconnectPoll) X(PQconnectStartParams) \
	X(PQconninfoFree) X(PQconninfoParse) \
	X(PQconsumeInput) X(PQerrorMessage) X(PQfinish) X(PQflush) \
	X(PQfname) X(PQfreemem) X(PQftype) X(PQgetResult) X(PQgetisnull) \
	X(PQgetlength) X(PQgetvalue) X(PQhost) X(PQisBusy) X(PQlibVersion) \
	X(PQnfields) X(PQnotifies) X(PQntuples) X(PQport) \
	X(PQresultErrorField) X(PQresultErrorMessage) X(PQresultStatus) \
	X(PQsendQuery) X(PQsendQueryParams) X(PQsetSingleRowMode) \
	X(PQsetnonblocking) X(PQsocket) X(PQstatus)

struct pq_dl {
#define PQ_DL_MEMBER(f)	__typeof__(f) *f;
	PQ_DL_FUNCS(PQ_DL_MEMBER)
#undef PQ_DL_MEMBER
};

/* Valid (all pointers set) once pq_dl_load() has returned 0. */
extern struct pq_dl libpq;

/*
 * Loads libpq (PQ_DL_LIBNAME) unless it is loaded already.  Returns 0, or
 * MT_ENOTFOUND with a sentence naming the library and what went wrong in
 * err (the table is then left empty, and a later call tries again).
 */
int	pq_dl_load(char *err, size_t errlen);
/* The same for the library file or soname lib (tests use this). */
int	pq_dl_load_from(const char *lib, char *err, size_t errlen);
/* Returns 1 once libpq is loaded, else 0. */
int	pq_dl_loaded(void);

#endif
