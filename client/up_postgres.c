/*
 * The postgres upstream: mcptun-client itself is the MCP server for one
 * database, answering initialize, ping and the tools and resources
 * methods with libpq's asynchronous API inside the lws event loop.  Nothing
 * here blocks: connections start with PQconnectStartParams and advance
 * with PQconnectPoll, queries go out with PQsendQuery/PQsendQueryParams
 * and come back through PQconsumeInput/PQisBusy/PQgetResult when lws
 * says the socket is readable.  libpq would look a host name up inside
 * PQconnectPoll, blocking; so a dsn's host name is resolved first on the
 * resolver's threads (common/resolve.h) and libpq gets the addresses as
 * hostaddr, with the name kept as host (for TLS checks and messages).
 * Only a dsn naming several hosts (host=a,b) is left to libpq to
 * resolve, blocking.
 *
 * Three objects:
 *  - a pool per server settings (name, dsn, password, pool size), shared
 *    by that server's agent sessions, of at most sc->pool connections;
 *  - a connection, whose socket is watched through a dup() of it adopted
 *    into lws as a raw file (so lws never reads from it, and closing the
 *    lws side never closes libpq's descriptor);
 *  - a job: one tools/call, resources/list or resources/read request.  A job waits in its
 *    pool's queue until a connection is idle, then runs as
 *	BEGIN READ ONLY; SET LOCAL statement_timeout = N   (simple protocol)
 *	<the statement>				(extended protocol, alone)
 *	ROLLBACK				(COMMIT for read-write)
 *	DISCARD ALL				(nothing leaks to the next job)
 *    The statement goes alone through the extended query protocol, which
 *    refuses a string holding several statements, so "SELECT 1; DROP
 *    TABLE x" fails; the READ ONLY transaction is what stops writes, and
 *    pgsql_screen() refuses transaction control and SET up front as
 *    defence in depth.
 *
 * A job whose connection breaks (the database restarted) is retried once
 * on a fresh connection when that is safe (a read-only transaction, or
 * the statement not sent yet); otherwise the agent gets the error and the
 * next call reconnects.
 *
 * Answers go to the session through a queue flushed from an lws_sul timer,
 * never from inside open/send/close.  The session may close the upstream
 * from inside on_message or on_drain; the free is then deferred until the
 * flush loop has let go of it.
 */
#include "client/up_postgres.h"
#include "client/client_conf.h"
#include "client/pgsql.h"
#include "client/pq_dl.h"
#include "client/up_stdio.h"
#include "client/upstream.h"
#include "common/err.h"
#include "common/jsonrpc.h"
#include "common/log.h"
#include "common/resolve.h"
#include "common/xmalloc.h"

#include <sys/queue.h>
#include <sys/stat.h>

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>

#ifndef MCPTUN_VERSION
#define MCPTUN_VERSION	"0.0.0"
#endif

#define PGUP_CONNECT_TIMEOUT_MS	10000	/* connection set-up */
#define PGUP_GRACE_MS		5000	/* client deadline past the server's */
#define PGUP_CLEANUP_TIMEOUT_MS	10000	/* ROLLBACK/COMMIT/DISCARD ALL */
#define PGUP_HIGH_WATER		16	/* calls in flight before MT_EAGAIN */
#define PGUP_LOW_WATER		8	/* ... and before on_drain */
#define PGUP_MAX_MESSAGE	(16u * 1024 * 1024)
#define PGUP_MAX_TYPES		1024	/* cached user type names per pool */

/* ---- SQL ------------------------------------------------------------------ */

#define PGUP_KIND_CASE \
	"CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned " \
	"table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' " \
	"ELSE 'foreign table' END"

#define PGUP_USER_SCHEMA(n) \
	n ".nspname NOT IN ('pg_catalog', 'information_schema') AND " \
	n ".nspname !~ '^pg_toast' AND " n ".nspname !~ '^pg_temp_'"

static const char pgup_sql_schemas[] =
	"SELECT n.nspname AS schema, "
	"pg_catalog.pg_get_userbyid(n.nspowner) AS owner, "
	"(SELECT count(*) FROM pg_catalog.pg_class c "
	"WHERE c.relnamespace = n.oid "
	"AND c.relkind IN ('r', 'p', 'v', 'm', 'f'))::integer AS tables, "
	"pg_catalog.obj_description(n.oid, 'pg_namespace') AS comment "
	"FROM pg_catalog.pg_namespace n "
	"WHERE " PGUP_USER_SCHEMA("n") " ORDER BY 1";

static const char pgup_sql_tables[] =
	"SELECT n.nspname AS schema, c.relname AS name, "
	PGUP_KIND_CASE " AS kind, "
	"CASE WHEN c.reltuples < 0 THEN NULL "
	"ELSE c.reltuples::float8 END AS estimated_rows, "
	"pg_catalog.obj_description(c.oid, 'pg_class') AS comment "
	"FROM pg_catalog.pg_class c "
	"JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
	"WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') "
	"AND CASE WHEN $1::text IS NULL THEN " PGUP_USER_SCHEMA("n") " "
	"ELSE n.nspname = $1::text END "
	"ORDER BY 1, 2";

/* $1 table (maybe schema-qualified when $2 is NULL), $2 schema. */
static const char pgup_sql_describe[] =
	"WITH t AS (SELECT c.oid, n.nspname, c.relname, c.relkind "
	"FROM pg_catalog.pg_class c "
	"JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
	"WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') "
	"AND CASE WHEN $2::text IS NULL "
	"THEN c.oid = pg_catalog.to_regclass($1::text) "
	"ELSE n.nspname = $2::text AND c.relname = $1::text END) "
	"SELECT json_build_object("
	"'schema', t.nspname, 'table', t.relname, "
	"'kind', " "CASE t.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN "
	"'partitioned table' WHEN 'v' THEN 'view' WHEN 'm' THEN "
	"'materialized view' ELSE 'foreign table' END, "
	"'comment', pg_catalog.obj_description(t.oid, 'pg_class'), "
	"'columns', COALESCE((SELECT json_agg(json_build_object("
	"'name', a.attname, "
	"'type', pg_catalog.format_type(a.atttypid, a.atttypmod), "
	"'nullable', NOT a.attnotnull, "
	"'default', pg_catalog.pg_get_expr(d.adbin, d.adrelid), "
	"'comment', pg_catalog.col_description(t.oid, a.attnum)) "
	"ORDER BY a.attnum) "
	"FROM pg_catalog.pg_attribute a "
	"LEFT JOIN pg_catalog.pg_attrdef d "
	"ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
	"WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped), "
	"'[]'), "
	"'primary_key', COALESCE((SELECT json_agg(a.attname ORDER BY k.ord) "
	"FROM pg_catalog.pg_constraint con "
	"CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY "
	"AS k(attnum, ord) "
	"JOIN pg_catalog.pg_attribute a "
	"ON a.attrelid = con.conrelid AND a.attnum = k.attnum "
	"WHERE con.conrelid = t.oid AND con.contype = 'p'), '[]'), "
	"'foreign_keys', COALESCE((SELECT json_agg(json_build_object("
	"'name', con.conname, "
	"'columns', (SELECT json_agg(a.attname ORDER BY k.ord) "
	"FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord) "
	"JOIN pg_catalog.pg_attribute a "
	"ON a.attrelid = con.conrelid AND a.attnum = k.attnum), "
	"'references', json_build_object('schema', rn.nspname, "
	"'table', rc.relname, "
	"'columns', (SELECT json_agg(a.attname ORDER BY k.ord) "
	"FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, ord) "
	"JOIN pg_catalog.pg_attribute a "
	"ON a.attrelid = con.confrelid AND a.attnum = k.attnum)), "
	"'definition', pg_catalog.pg_get_constraintdef(con.oid, true)) "
	"ORDER BY con.conname) "
	"FROM pg_catalog.pg_constraint con "
	"JOIN pg_catalog.pg_class rc ON rc.oid = con.confrelid "
	"JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace "
	"WHERE con.conrelid = t.oid AND con.contype = 'f'), '[]'), "
	"'referenced_by', COALESCE((SELECT json_agg(json_build_object("
	"'name', con.conname, 'schema', sn.nspname, 'table', sc.relname, "
	"'definition', pg_catalog.pg_get_constraintdef(con.oid, true)) "
	"ORDER BY sn.nspname, sc.relname, con.conname) "
	"FROM pg_catalog.pg_constraint con "
	"JOIN pg_catalog.pg_class sc ON sc.oid = con.conrelid "
	"JOIN pg_catalog.pg_namespace sn ON sn.oid = sc.relnamespace "
	"WHERE con.confrelid = t.oid AND con.contype = 'f'), '[]'), "
	"'constraints', COALESCE((SELECT json_agg(json_build_object("
	"'name', con.conname, "
	"'definition', pg_catalog.pg_get_constraintdef(con.oid, true)) "
	"ORDER BY con.conname) "
	"FROM pg_catalog.pg_constraint con "
	"WHERE con.conrelid = t.oid AND con.contype IN ('c', 'u', 'x')), "
	"'[]'), "
	"'indexes', COALESCE((SELECT json_agg(json_build_object("
	"'name', ic.relname, 'unique', i.indisunique, "
	"'primary', i.indisprimary, "
	"'definition', pg_catalog.pg_get_indexdef(i.indexrelid)) "
	"ORDER BY ic.relname) "
	"FROM pg_catalog.pg_index i "
	"JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid "
	"WHERE i.indrelid = t.oid), '[]')) "
	"FROM t";

static const char pgup_sql_types[] =
	"SELECT t.oid, pg_catalog.format_type(t.oid, NULL) "
	"FROM pg_catalog.pg_type t WHERE t.oid = ANY ($1::pg_catalog.oid[])";

/* ---- objects ---------------------------------------------------------------- */

enum pgup_job_kind {
	PGJ_ROWS,		/* rows as a table: query, curated, lists */
	PGJ_DESCRIBE,		/* describe_table */
	PGJ_EXPLAIN,		/* explain */
	PGJ_RESOURCES,		/* resources/list */
	PGJ_RESOURCE_READ	/* resources/read */
};

enum pgc_state {
	PGC_CONNECTING,
	PGC_IDLE,
	PGC_BEGIN,		/* BEGIN ...; SET LOCAL statement_timeout */
	PGC_STMT,		/* the statement, in single-row mode */
	PGC_TYPES,		/* names of types not in pgsql's table */
	PGC_END,		/* ROLLBACK or COMMIT */
	PGC_RESET		/* DISCARD ALL */
};

struct pgup_msg {
	TAILQ_ENTRY(pgup_msg)	 entry;
	char			*text;
	size_t			 len;
};

struct pgup_job {
	TAILQ_ENTRY(pgup_job)	 qentry;	/* pool->waitq */
	TAILQ_ENTRY(pgup_job)	 uentry;	/* u->jobs */
	struct upstream		*u;		/* NULL: nobody waits */
	struct pgup_pool	*pool;
	json_t			*id;
	enum pgup_job_kind	 kind;
	char			*what;		/* tool or method, for logs */
	char			*sql;
	char			**params;
	size_t			 nparams;
	char			*target;	/* table or URI, for messages */
	int			 read_write;
	uint64_t		 timeout_ms;
	uint64_t		 max_rows;
	uint64_t		 max_bytes;
	int			 retries;
	int			 queued;
	struct pgsql_result	*res;
	const char		**vals;		/* row scratch, res->ncols */
	size_t			*lens;
	char			*errtext;	/* set: the call failed */
	char			 sqlstate[6];
};

struct pgup_conn {
	TAILQ_ENTRY(pgup_conn)	 entry;
	struct pgup_pool	*pool;
	PGconn			*pg;
	struct lws		*wsi;		/* watches a dup of the socket */
	dev_t			 sock_dev;	/* which socket the wsi watches */
	ino_t			 sock_ino;
	enum pgc_state		 state;
	struct pgup_job		*job;
	int			 reset_failed;
	unsigned int		 serial;
	struct resolve_req	*lookup;	/* the dsn's host, resolving */
	lws_sorted_usec_list_t	 deadline;
};

struct pgup_type {
	unsigned int	 oid;
	char		*name;
};

struct pgup_pool {
	TAILQ_ENTRY(pgup_pool)	 entry;
	char			*name;
	char			*dsn;
	char			*password;	/* secret */
	int64_t			 size;
	struct lws_vhost	*vh;
	int			 nsessions;
	int			 nconns;
	unsigned int		 serial;
	TAILQ_HEAD(, pgup_conn)	 conns;
	TAILQ_HEAD(, pgup_job)	 waitq;
	struct pgup_type	*types;
	size_t			 ntypes;
	int			 kicking;
	int			 kick_again;
	int			 host_read;	/* lookup_host is set */
	char			*lookup_host;	/* the name to resolve, or NULL */
};

struct upstream {
	const struct server_conf *sc;
	struct pgup_pool	*pool;
	const struct upstream_ops *ops;
	void			*arg;
	char			*agent;
	char			*tag;
	TAILQ_HEAD(, pgup_msg)	 outq;
	TAILQ_HEAD(, pgup_job)	 jobs;
	int			 njobs;
	int			 paused;
	int			 in_cb;
	int			 closed;
	int			 want_drain;
	lws_sorted_usec_list_t	 flush;
};

static struct lws_context *pgup_ctx;
static TAILQ_HEAD(, pgup_pool) pgup_pools =
    TAILQ_HEAD_INITIALIZER(pgup_pools);
static int pgup_down;

static void	pool_kick(struct pgup_pool *);
static int	conn_broken(struct pgup_conn *, const char *);
static int	conn_drain(struct pgup_conn *);
static void	job_finish(struct pgup_job *);

/* ---- small helpers ---------------------------------------------------------- */

/* A libpq message as one line: newlines and tabs folded, trailing blanks cut. */
static char *
one_line(const char *s)
{
	char *out, *p;
	size_t n;

	out = xstrdup(s != NULL && *s != '\0' ? s : "unknown error");
	for (p = out; *p != '\0'; p++) {
		if (*p == '\n' || *p == '\t' || *p == '\r')
			*p = ' ';
	}
	n = strlen(out);
	while (n > 0 && out[n - 1] == ' ')
		out[--n] = '\0';
	/* "a  b" from "a\n\tb": squeeze runs of blanks. */
	for (p = out; (p = strstr(p, "  ")) != NULL;)
		memmove(p, p + 1, strlen(p + 1) + 1);
	return out;
}

static int
str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* ---- session output (deferred to a timer) ------------------------------ */

static void
u_free(struct upstream *u)
{
	free(u->agent);
	free(u->tag);
	free(u);
}

static void
u_flush_cb(lws_sorted_usec_list_t *sul)
{
	struct upstream *u = lws_container_of(sul, struct upstream, flush);
	struct pgup_msg *m;

	u->in_cb++;
	while (!u->closed && !u->paused &&
	    (m = TAILQ_FIRST(&u->outq)) != NULL) {
		TAILQ_REMOVE(&u->outq, m, entry);
		u->ops->on_message(u->arg, (const uint8_t *)m->text, m->len);
		free(m->text);
		free(m);
	}
	if (!u->closed && u->want_drain && u->njobs <= PGUP_LOW_WATER) {
		u->want_drain = 0;
		u->ops->on_drain(u->arg);
	}
	u->in_cb--;
	if (u->closed && u->in_cb == 0)
		u_free(u);
}

static void
u_schedule(struct upstream *u)
{
	if (u->closed || u->paused || pgup_ctx == NULL)
		return;
	lws_sul_schedule(pgup_ctx, 0, &u->flush, u_flush_cb, 0);
}

/* Queues text (a malloc'd, NUL-terminated JSON-RPC message) for u. */
static void
u_queue(struct upstream *u, char *text, size_t len)
{
	struct pgup_msg *m;

	m = xcalloc(1, sizeof(*m));
	m->text = text;
	m->len = len;
	TAILQ_INSERT_TAIL(&u->outq, m, entry);
	u_schedule(u);
}

/* Answers request id with result (a reference is taken over). */
static void
u_reply(struct upstream *u, json_t *id, json_t *result)
{
	json_t *m;
	size_t len;
	char *s;

	m = json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id,
	    "result", result);
	if (m == NULL)
		fatalx("out of memory building a JSON-RPC answer");
	s = jrpc_dump(m, &len);
	json_decref(m);
	u_queue(u, s, len);
}

static void u_error(struct upstream *, const json_t *, int, const char *, ...)
    __attribute__((format(printf, 4, 5)));

static void
u_error(struct upstream *u, const json_t *id, int code, const char *fmt, ...)
{
	va_list ap;
	char *msg, *s;
	size_t len;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		fatalx("out of memory formatting an error");
	va_end(ap);
	s = jrpc_error_text(id, code, msg, &len);
	free(msg);
	u_queue(u, s, len);
}

/* A tools/call result: one text block, structuredContent if any. */
static void
u_tool_result(struct upstream *u, json_t *id, const char *text,
    json_t *structured, int is_error)
{
	json_t *r;

	r = json_pack("{s:[{s:s, s:o}]}", "content", "type", "text", "text",
	    pgsql_json_string(text, strlen(text)));
	if (structured != NULL)
		json_object_set_new(r, "structuredContent", structured);
	if (is_error)
		json_object_set_new(r, "isError", json_true());
	u_reply(u, id, r);
}

static void
u_check_drain(struct upstream *u)
{
	if (u->want_drain && u->njobs <= PGUP_LOW_WATER)
		u_schedule(u);
}

/* ---- jobs ------------------------------------------------------------------ */

static struct pgup_job *
job_new(struct upstream *u, json_t *id, enum pgup_job_kind kind,
    const char *what, const char *sql, int read_write)
{
	const struct server_conf *sc = u->sc;
	struct pgup_job *job;

	job = xcalloc(1, sizeof(*job));
	job->u = u;
	job->pool = u->pool;
	job->id = json_incref(id);
	job->kind = kind;
	job->what = xstrdup(what);
	job->sql = xstrdup(sql);
	job->read_write = read_write;
	job->timeout_ms = sc->statement_timeout_ms;
	job->max_rows = sc->max_rows > 0 ? (uint64_t)sc->max_rows : 0;
	job->max_bytes = sc->max_bytes;
	job->retries = 1;
	TAILQ_INSERT_TAIL(&u->jobs, job, uentry);
	u->njobs++;
	return job;
}

static void
job_clear_result(struct pgup_job *job)
{
	pgsql_result_free(job->res);
	job->res = NULL;
	free(job->vals);
	free(job->lens);
	job->vals = NULL;
	job->lens = NULL;
	free(job->errtext);
	job->errtext = NULL;
	job->sqlstate[0] = '\0';
}

static void
job_free(struct pgup_job *job)
{
	job_clear_result(job);
	json_decref(job->id);
	pgsql_values_free(job->params, job->nparams);
	free(job->what);
	free(job->sql);
	free(job->target);
	free(job);
}

static void job_set_error(struct pgup_job *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

/* Records why job failed (the first reason wins). */
static void
job_set_error(struct pgup_job *job, const char *fmt, ...)
{
	va_list ap;

	if (job->errtext != NULL)
		return;
	va_start(ap, fmt);
	if (vasprintf(&job->errtext, fmt, ap) == -1)
		fatalx("out of memory formatting an error");
	va_end(ap);
}

/* Records an SQL error result as "ERROR SQLSTATE: message" + DETAIL/HINT. */
static void
job_set_sql_error(struct pgup_job *job, const PGresult *res)
{
	const char *sev, *state, *msg, *detail, *hint, *pos;
	char *text, *t;

	if (job->errtext != NULL)
		return;
	sev = libpq.PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	if (sev == NULL &&
	    (sev = libpq.PQresultErrorField(res, PG_DIAG_SEVERITY)) == NULL)
		sev = "ERROR";
	if ((state = libpq.PQresultErrorField(res, PG_DIAG_SQLSTATE)) == NULL)
		state = "XX000";
	msg = libpq.PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	if (msg == NULL)
		msg = libpq.PQresultErrorMessage(res);
	detail = libpq.PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	hint = libpq.PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
	pos = libpq.PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
	snprintf(job->sqlstate, sizeof(job->sqlstate), "%s", state);
	text = xasprintf("%s %s: %s", sev, state, msg);
	if (pos != NULL) {
		t = xasprintf("%s (at character %s)", text, pos);
		free(text);
		text = t;
	}
	if (detail != NULL) {
		t = xasprintf("%s\nDETAIL: %s", text, detail);
		free(text);
		text = t;
	}
	if (hint != NULL) {
		t = xasprintf("%s\nHINT: %s", text, hint);
		free(text);
		text = t;
	}
	if (strcmp(state, "57014") == 0) {
		t = xasprintf("%s\nThe statement ran past this server's "
		    "statement_timeout of %llu ms.", text,
		    (unsigned long long)job->timeout_ms);
		free(text);
		text = t;
	} else if (strcmp(state, "25006") == 0 && !job->read_write) {
		t = xasprintf("%s\nThis server is read-only: every statement "
		    "runs in a READ ONLY transaction.", text);
		free(text);
		text = t;
	}
	job->errtext = text;
}

/* The first cell of the job's result parsed as JSON, or NULL. */
static json_t *
job_json_cell(const struct pgup_job *job)
{
	const struct pgsql_result *r = job->res;

	if (r == NULL || r->nrows < 1 || r->ncols < 1 || r->cells[0] == NULL)
		return NULL;
	return json_loadb(r->cells[0], r->lens[0], JSON_DECODE_ANY, NULL);
}

static void
job_answer_resources(struct upstream *u, struct pgup_job *job)
{
	const struct pgsql_result *r = job->res;
	json_t *list, *res;
	const char *schema, *table, *kind, *comment;
	char *uri, *name, *desc;
	size_t i;

	list = json_array();
	for (i = 0; r != NULL && r->ncols >= 5 && i < r->nrows; i++) {
		schema = r->cells[i * r->ncols];
		table = r->cells[i * r->ncols + 1];
		kind = r->cells[i * r->ncols + 2];
		comment = r->cells[i * r->ncols + 4];
		if (schema == NULL || table == NULL)
			continue;
		uri = pgsql_resource_uri(u->sc->name, schema, table);
		name = xasprintf("%s.%s", schema, table);
		desc = comment != NULL ? xasprintf("%s %s: %s", kind, name,
		    comment) : xasprintf("Columns, keys and indexes of %s %s",
		    kind, name);
		res = json_pack("{s:s, s:o, s:o, s:s}", "uri", uri,
		    "name", pgsql_json_string(name, strlen(name)),
		    "description", pgsql_json_string(desc, strlen(desc)),
		    "mimeType", "application/json");
		json_array_append_new(list, res);
		free(uri);
		free(name);
		free(desc);
	}
	u_reply(u, job->id, json_pack("{s:o}", "resources", list));
}

/* Turns a finished job into its answer to u. */
static void
job_answer(struct upstream *u, struct pgup_job *job)
{
	json_t *j, *structured;
	char *text;

	switch (job->kind) {
	case PGJ_ROWS:
		if (job->errtext != NULL || job->res == NULL) {
			u_tool_result(u, job->id, job->errtext != NULL ?
			    job->errtext : "no result", NULL, 1);
			break;
		}
		text = pgsql_result_text(job->res);
		u_tool_result(u, job->id, text, pgsql_result_json(job->res), 0);
		free(text);
		break;
	case PGJ_DESCRIBE:
		if (job->errtext != NULL) {
			u_tool_result(u, job->id, job->errtext, NULL, 1);
			break;
		}
		if ((j = job_json_cell(job)) == NULL) {
			if (job->res != NULL && job->res->truncated)
				u_tool_result(u, job->id, "the description is "
				    "larger than this server's max_bytes", NULL,
				    1);
			else {
				text = xasprintf("no table or view named "
				    "\"%s\" (list_tables shows what there is)",
				    job->target);
				u_tool_result(u, job->id, text, NULL, 1);
				free(text);
			}
			break;
		}
		text = pgsql_describe_text(j);
		u_tool_result(u, job->id, text, j, 0);
		free(text);
		break;
	case PGJ_EXPLAIN:
		if (job->errtext != NULL || (j = job_json_cell(job)) == NULL) {
			u_tool_result(u, job->id, job->errtext != NULL ?
			    job->errtext : "no plan", NULL, 1);
			break;
		}
		text = pgsql_explain_text(j);
		structured = json_pack("{s:o}", "plan", j);
		u_tool_result(u, job->id, text, structured, 0);
		free(text);
		break;
	case PGJ_RESOURCES:
		if (job->errtext != NULL)
			u_error(u, job->id, JRPC_UPSTREAM_ERROR, "%s",
			    job->errtext);
		else
			job_answer_resources(u, job);
		break;
	case PGJ_RESOURCE_READ:
		if (job->errtext != NULL) {
			u_error(u, job->id, JRPC_UPSTREAM_ERROR, "%s",
			    job->errtext);
			break;
		}
		if ((j = job_json_cell(job)) == NULL) {
			u_error(u, job->id, -32002, "Resource not found: %s",
			    job->target);
			break;
		}
		text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		json_decref(j);
		if (text == NULL)
			fatalx("out of memory serialising a table description");
		u_reply(u, job->id, json_pack("{s:[{s:s, s:s, s:o}]}",
		    "contents", "uri", job->target, "mimeType",
		    "application/json", "text",
		    pgsql_json_string(text, strlen(text))));
		free(text);
		break;
	}
}

/* The job is done (answered or failed): answer whoever waits, free it. */
static void
job_finish(struct pgup_job *job)
{
	struct upstream *u = job->u;

	if (u != NULL) {
		TAILQ_REMOVE(&u->jobs, job, uentry);
		u->njobs--;
		job->u = NULL;
		log_debug("postgres %s: %s %s", u->sc->name, job->what,
		    job->errtext != NULL ? "failed" : "done");
		job_answer(u, job);
		u_check_drain(u);
	}
	job_free(job);
}

/* Queues job on its pool; the pool runs it when a connection is idle. */
static void
job_submit(struct pgup_job *job)
{
	TAILQ_INSERT_TAIL(&job->pool->waitq, job, qentry);
	job->queued = 1;
	pool_kick(job->pool);
}

/* ---- connections ------------------------------------------------------------ */

static void
conn_unwatch(struct pgup_conn *c)
{
	if (c->wsi == NULL)
		return;
	lws_set_opaque_user_data(c->wsi, NULL);
	lws_wsi_close(c->wsi, LWS_TO_KILL_ASYNC);
	c->wsi = NULL;
}

/*
 * Watches libpq's current socket: a dup() of it, adopted into lws as a
 * raw file, so lws polls it but never reads from or closes libpq's own
 * descriptor.
 */
static int
conn_watch(struct pgup_conn *c)
{
	lws_adopt_desc_t ad;
	struct stat st;
	int fd, dfd;

	conn_unwatch(c);
	if ((fd = libpq.PQsocket(c->pg)) < 0 || fstat(fd, &st) == -1)
		return MT_EIO;
	if ((dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) == -1)
		return MT_EIO;
	memset(&ad, 0, sizeof(ad));
	ad.vh = c->pool->vh;
	ad.type = LWS_ADOPT_RAW_FILE_DESC;
	ad.fd.filefd = (lws_filefd_type)dfd;
	ad.vh_prot_name = PGUP_PROTOCOL_NAME;
	ad.opaque = c;
	/* On failure lws has closed dfd. */
	if ((c->wsi = lws_adopt_descriptor_vhost_via_info(&ad)) == NULL)
		return MT_EIO;
	lws_set_opaque_user_data(c->wsi, c);
	c->sock_dev = st.st_dev;
	c->sock_ino = st.st_ino;
	return 0;
}

/* Whether libpq has moved to another socket (the next address to try). */
static int
conn_socket_changed(const struct pgup_conn *c)
{
	struct stat st;
	int fd;

	if ((fd = libpq.PQsocket(c->pg)) < 0 || fstat(fd, &st) == -1)
		return 0;
	return c->wsi == NULL || st.st_dev != c->sock_dev ||
	    st.st_ino != c->sock_ino;
}

static void
conn_deadline_cb(lws_sorted_usec_list_t *sul)
{
	struct pgup_conn *c = lws_container_of(sul, struct pgup_conn,
	    deadline);
	char why[128];

	if (c->state == PGC_CONNECTING) {
		snprintf(why, sizeof(why), "no connection within %d s",
		    PGUP_CONNECT_TIMEOUT_MS / 1000);
	} else {
		snprintf(why, sizeof(why), "no answer from the database in "
		    "time (the server's statement_timeout plus %d s)",
		    PGUP_GRACE_MS / 1000);
		if (c->job != NULL)
			c->job->retries = 0;
	}
	conn_broken(c, why);
}

static void
conn_set_deadline(struct pgup_conn *c, uint64_t ms)
{
	lws_sul_schedule(pgup_ctx, 0, &c->deadline, conn_deadline_cb,
	    (lws_usec_t)ms * LWS_US_PER_MS);
}

/* Frees c (its job, if any, must have been dealt with). */
static void
conn_free(struct pgup_conn *c)
{
	struct pgup_pool *p = c->pool;

	lws_sul_cancel(&c->deadline);
	resolve_cancel(c->lookup);
	c->lookup = NULL;
	conn_unwatch(c);
	TAILQ_REMOVE(&p->conns, c, entry);
	p->nconns--;
	if (c->pg != NULL)
		libpq.PQfinish(c->pg);
	free(c);
}

/* Fails every job waiting on p with the same sentence. */
static void
pool_fail_waiting(struct pgup_pool *p, const char *why)
{
	struct pgup_job *job;

	while ((job = TAILQ_FIRST(&p->waitq)) != NULL) {
		TAILQ_REMOVE(&p->waitq, job, qentry);
		job->queued = 0;
		job_set_error(job, "%s", why);
		job_finish(job);
	}
}

/*
 * The connection is unusable: retry its job on another one if that is
 * safe, else fail the job; free c.  Always returns -1 (c is gone).
 */
static int
conn_broken(struct pgup_conn *c, const char *why)
{
	struct pgup_pool *p = c->pool;
	struct pgup_job *job = c->job;
	int was_connecting = c->state == PGC_CONNECTING;
	int sent = c->state != PGC_BEGIN;
	char *line, *msg;

	line = one_line(why);
	c->job = NULL;
	if (was_connecting) {
		log_warnx("postgres %s: cannot connect: %s", p->name, line);
		msg = xasprintf("cannot connect to the database: %s", line);
	} else {
		log_warnx("postgres %s: connection %u lost: %s", p->name,
		    c->serial, line);
		msg = xasprintf("the connection to the database was lost "
		    "(%s); the next call reconnects", line);
	}
	conn_free(c);
	if (job != NULL) {
		if (job->u == NULL)
			job_free(job);
		else if (job->retries > 0 && (!job->read_write || !sent) &&
		    !pgup_down) {
			job->retries--;
			job_clear_result(job);
			log_info("postgres %s: retrying %s on a new connection",
			    p->name, job->what);
			TAILQ_INSERT_HEAD(&p->waitq, job, qentry);
			job->queued = 1;
		} else {
			free(job->errtext);
			job->errtext = NULL;
			job_set_error(job, "%s", msg);
			job_finish(job);
		}
	}
	/*
	 * A connection that never came up takes the waiting calls with it,
	 * rather than have the pool try again and again while the database
	 * is down; the next call tries afresh.
	 */
	if (was_connecting)
		pool_fail_waiting(p, msg);
	free(msg);
	free(line);
	pool_kick(p);
	return -1;
}

/* Sends pending output; asks lws for POLLOUT while libpq has some. */
static int
conn_flush(struct pgup_conn *c)
{
	int r;

	if ((r = libpq.PQflush(c->pg)) < 0)
		return conn_broken(c, libpq.PQerrorMessage(c->pg));
	if (r > 0 && c->wsi != NULL)
		lws_callback_on_writable(c->wsi);
	return 0;
}

/*
 * Sends one query: simple protocol (several statements allowed; only our
 * own fixed text goes this way) or extended protocol with text params,
 * optionally in single-row mode.  Returns 0 or -1 (c is gone).
 */
static int
conn_send(struct pgup_conn *c, const char *sql, int extended, size_t n,
    char *const *params, int single_row)
{
	int ok;

	if (extended)
		ok = libpq.PQsendQueryParams(c->pg, sql, (int)n, NULL,
		    (const char *const *)params, NULL, NULL, 0);
	else
		ok = libpq.PQsendQuery(c->pg, sql);
	if (!ok)
		return conn_broken(c, libpq.PQerrorMessage(c->pg));
	if (single_row && !libpq.PQsetSingleRowMode(c->pg))
		log_debug("postgres %s: no single-row mode", c->pool->name);
	return conn_flush(c);
}

/* Back to the pool.  Always returns -1 (c may be gone). */
static int
conn_idle(struct pgup_conn *c)
{
	c->state = PGC_IDLE;
	lws_sul_cancel(&c->deadline);
	pool_kick(c->pool);
	return -1;
}

static int
conn_start_job(struct pgup_conn *c, struct pgup_job *job)
{
	char sql[160];

	c->job = job;
	c->state = PGC_BEGIN;
	conn_set_deadline(c, job->timeout_ms + PGUP_GRACE_MS);
	snprintf(sql, sizeof(sql), "BEGIN %s; SET LOCAL statement_timeout "
	    "= %llu", job->read_write ? "READ WRITE" : "READ ONLY",
	    (unsigned long long)job->timeout_ms);
	log_debug("postgres %s: %s on connection %u", c->pool->name,
	    job->what, c->serial);
	return conn_send(c, sql, 0, 0, NULL, 0);
}

/*
 * Ends the job's transaction: COMMIT for a read-write statement that
 * succeeded and is still wanted, ROLLBACK otherwise.  Read-only calls and
 * failures are answered now; a COMMIT is answered once it succeeded.
 */
static int
conn_end(struct pgup_conn *c)
{
	struct pgup_job *job = c->job;
	int commit;

	commit = job != NULL && job->read_write && job->errtext == NULL &&
	    job->u != NULL;
	if (job != NULL && !commit) {
		c->job = NULL;
		job_finish(job);
	}
	c->state = PGC_END;
	conn_set_deadline(c, PGUP_CLEANUP_TIMEOUT_MS);
	return conn_send(c, commit ? "COMMIT" : "ROLLBACK", 0, 0, NULL, 0);
}

static const char *
pool_type_cached(const struct pgup_pool *p, unsigned int oid)
{
	size_t i;

	for (i = 0; i < p->ntypes; i++) {
		if (p->types[i].oid == oid)
			return p->types[i].name;
	}
	return NULL;
}

static void
pool_type_add(struct pgup_pool *p, unsigned int oid, const char *name)
{
	if (pool_type_cached(p, oid) != NULL || p->ntypes >= PGUP_MAX_TYPES)
		return;
	p->types = xrealloc(p->types, (p->ntypes + 1) * sizeof(*p->types));
	p->types[p->ntypes].oid = oid;
	p->types[p->ntypes].name = xstrdup(name);
	p->ntypes++;
}

/*
 * Names the result's columns of types pgsql does not know, from the
 * pool's cache or by asking the database.  Returns 1 if nothing needs
 * asking, else what conn_send returns.
 */
static int
conn_types(struct pgup_conn *c)
{
	struct pgsql_result *r = c->job->res;
	const char *name;
	char *list = NULL, *t;
	size_t i;
	int rc;

	for (i = 0; i < r->ncols; i++) {
		if (r->types[i] != NULL)
			continue;
		if ((name = pool_type_cached(c->pool, r->oids[i])) != NULL) {
			pgsql_result_set_type(r, i, name);
			continue;
		}
		t = xasprintf("%s%s%u", list != NULL ? list : "{",
		    list != NULL ? "," : "", r->oids[i]);
		free(list);
		list = t;
	}
	if (list == NULL)
		return 1;
	t = xasprintf("%s}", list);
	free(list);
	c->state = PGC_TYPES;
	rc = conn_send(c, pgup_sql_types, 1, 1, &t, 0);
	free(t);
	return rc;
}

/* One result of the current phase.  Returns 0 or -1 (c is gone). */
static int
conn_result(struct pgup_conn *c, PGresult *res)
{
	struct pgup_job *job = c->job;
	ExecStatusType st = libpq.PQresultStatus(res);
	const char *state;
	char *why = NULL;
	int i, n, k, lost = 0;
	size_t j;

	if (st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR ||
	    st == PGRES_BAD_RESPONSE) {
		state = libpq.PQresultErrorField(res, PG_DIAG_SQLSTATE);
		/* Connection exceptions and administrator shutdowns. */
		if (state != NULL && (strncmp(state, "08", 2) == 0 ||
		    strncmp(state, "57P0", 4) == 0))
			lost = 1;
		if (c->state == PGC_STMT && job != NULL && job->res != NULL &&
		    job->res->truncated && state != NULL &&
		    strcmp(state, "57014") == 0) {
			/* Out of time while counting rows past the cap. */
			job->res->incomplete = 1;
		} else if (c->state == PGC_RESET) {
			c->reset_failed = 1;
		} else if (c->state == PGC_TYPES) {
			log_debug("postgres %s: type names: %s", c->pool->name,
			    libpq.PQresultErrorMessage(res));
		} else if (job != NULL)
			job_set_sql_error(job, res);
		if (lost)
			why = one_line(libpq.PQresultErrorMessage(res));
	} else if (c->state == PGC_STMT && job != NULL) {
		switch (st) {
		case PGRES_SINGLE_TUPLE:
		case PGRES_TUPLES_OK:
		case PGRES_COMMAND_OK:
		case PGRES_EMPTY_QUERY:
			if (job->res == NULL) {
				n = libpq.PQnfields(res);
				job->res = pgsql_result_new((size_t)n,
				    job->max_rows, job->max_bytes);
				for (i = 0; i < n; i++)
					pgsql_result_set_col(job->res,
					    (size_t)i, libpq.PQfname(res, i),
					    libpq.PQftype(res, i));
				job->vals = xcalloc((size_t)n + 1,
				    sizeof(*job->vals));
				job->lens = xcalloc((size_t)n + 1,
				    sizeof(*job->lens));
			}
			for (k = 0; k < libpq.PQntuples(res); k++) {
				for (j = 0; j < job->res->ncols; j++) {
					i = (int)j;
					job->vals[j] =
					    libpq.PQgetisnull(res, k, i) ?
					    NULL : libpq.PQgetvalue(res, k, i);
					job->lens[j] =
					    (size_t)libpq.PQgetlength(res, k, i);
				}
				pgsql_result_add_row(job->res, job->vals,
				    job->lens);
			}
			if (st != PGRES_SINGLE_TUPLE)
				pgsql_result_set_command(job->res,
				    libpq.PQcmdStatus(res));
			break;
		case PGRES_COPY_IN:
		case PGRES_COPY_OUT:
		case PGRES_COPY_BOTH:
			job_set_error(job, "COPY is not supported");
			job->retries = 0;
			why = xstrdup("COPY started");
			lost = 1;
			break;
		default:
			break;
		}
	} else if (c->state == PGC_TYPES && st == PGRES_TUPLES_OK &&
	    job != NULL && job->res != NULL) {
		for (k = 0; k < libpq.PQntuples(res); k++) {
			pool_type_add(c->pool,
			    (unsigned int)strtoul(libpq.PQgetvalue(res, k, 0),
			    NULL, 10), libpq.PQgetvalue(res, k, 1));
		}
		for (j = 0; j < job->res->ncols; j++) {
			if (job->res->types[j] == NULL &&
			    pool_type_cached(c->pool, job->res->oids[j]) !=
			    NULL)
				pgsql_result_set_type(job->res, j,
				    pool_type_cached(c->pool,
				    job->res->oids[j]));
		}
	}
	libpq.PQclear(res);
	if (!lost && libpq.PQstatus(c->pg) == CONNECTION_BAD) {
		lost = 1;
		why = one_line(libpq.PQerrorMessage(c->pg));
	}
	if (lost) {
		conn_broken(c, why != NULL ? why : "connection lost");
		free(why);
		return -1;
	}
	return 0;
}

/* The current phase's results are all in: start the next phase. */
static int
conn_phase_done(struct pgup_conn *c)
{
	struct pgup_job *job = c->job;
	int r;

	switch (c->state) {
	case PGC_BEGIN:
		if (job == NULL || job->u == NULL || job->errtext != NULL)
			return conn_end(c);
		c->state = PGC_STMT;
		return conn_send(c, job->sql, 1, job->nparams, job->params, 1);
	case PGC_STMT:
		if (job != NULL && job->u != NULL && job->errtext == NULL &&
		    job->res != NULL && (r = conn_types(c)) <= 0)
			return r;
		return conn_end(c);
	case PGC_TYPES:
		return conn_end(c);
	case PGC_END:
		if (job != NULL) {
			c->job = NULL;
			job_finish(job);
		}
		c->state = PGC_RESET;
		c->reset_failed = 0;
		return conn_send(c, "DISCARD ALL", 0, 0, NULL, 0);
	case PGC_RESET:
		if (c->reset_failed)
			return conn_broken(c, "DISCARD ALL failed");
		return conn_idle(c);
	case PGC_CONNECTING:
	case PGC_IDLE:
		break;
	}
	return 0;
}

/* Takes every result libpq has ready.  Returns 0 or -1 (c is gone). */
static int
conn_drain(struct pgup_conn *c)
{
	PGnotify *nt;
	PGresult *res;

	for (;;) {
		if (c->state == PGC_CONNECTING)
			return 0;
		if (c->state == PGC_IDLE) {
			/* Input while idle: notices, or the server leaving. */
			while ((nt = libpq.PQnotifies(c->pg)) != NULL)
				libpq.PQfreemem(nt);
			if (libpq.PQstatus(c->pg) == CONNECTION_BAD)
				return conn_broken(c,
				    libpq.PQerrorMessage(c->pg));
			return 0;
		}
		if (libpq.PQisBusy(c->pg))
			return 0;
		if ((res = libpq.PQgetResult(c->pg)) == NULL) {
			if (conn_phase_done(c) < 0)
				return -1;
			continue;
		}
		if (conn_result(c, res) < 0)
			return -1;
	}
}

/* Advances the connection set-up.  Returns 0 or -1 (c is gone). */
static int
conn_connect_poll(struct pgup_conn *c)
{
	PostgresPollingStatusType st;

	st = libpq.PQconnectPoll(c->pg);
	if (st != PGRES_POLLING_FAILED && conn_socket_changed(c) &&
	    conn_watch(c) != 0)
		return conn_broken(c, "cannot watch the database socket");
	switch (st) {
	case PGRES_POLLING_WRITING:
		if (c->wsi != NULL)
			lws_callback_on_writable(c->wsi);
		return 0;
	case PGRES_POLLING_READING:
		return 0;
	case PGRES_POLLING_OK:
		if (libpq.PQsetnonblocking(c->pg, 1) != 0)
			return conn_broken(c, libpq.PQerrorMessage(c->pg));
		log_info("postgres %s: connection %u up (%s:%s, %d of at most "
		    "%lld)", c->pool->name, c->serial, libpq.PQhost(c->pg),
		    libpq.PQport(c->pg), c->pool->nconns,
		    (long long)c->pool->size);
		return conn_idle(c);
	case PGRES_POLLING_FAILED:
	default:
		return conn_broken(c, libpq.PQerrorMessage(c->pg));
	}
}

static int
conn_readable(struct pgup_conn *c)
{
	if (c->state == PGC_CONNECTING)
		return conn_connect_poll(c);
	if (!libpq.PQconsumeInput(c->pg))
		return conn_broken(c, libpq.PQerrorMessage(c->pg));
	if (c->state != PGC_IDLE && conn_flush(c) < 0)
		return -1;
	return conn_drain(c);
}

static int
conn_writable(struct pgup_conn *c)
{
	if (c->state == PGC_CONNECTING)
		return conn_connect_poll(c);
	if (conn_flush(c) < 0)
		return -1;
	return conn_drain(c);
}

/*
 * The host name p's dsn (or PGHOST) has libpq look up, if any: one host
 * that is neither an address nor a socket directory, and no hostaddr.
 * NULL for a dsn libpq cannot parse: it says why when it connects.
 */
static const char *
pool_lookup_host(struct pgup_pool *p)
{
	PQconninfoOption *opts, *o;
	const char *host = NULL, *addr = NULL;

	if (p->host_read)
		return p->lookup_host;
	p->host_read = 1;
	if ((opts = libpq.PQconninfoParse(p->dsn, NULL)) == NULL)
		return NULL;
	for (o = opts; o->keyword != NULL; o++) {
		if (strcmp(o->keyword, "host") == 0)
			host = o->val;
		else if (strcmp(o->keyword, "hostaddr") == 0)
			addr = o->val;
	}
	if (host == NULL || host[0] == '\0')
		host = getenv("PGHOST");
	if (addr == NULL || addr[0] == '\0')
		addr = getenv("PGHOSTADDR");
	if (host != NULL && host[0] != '\0' && host[0] != '/' &&
	    host[0] != '@' && (addr == NULL || addr[0] == '\0') &&
	    !resolve_is_numeric(host)) {
		if (strchr(host, ',') == NULL)
			p->lookup_host = xstrdup(host);
		else
			log_info("postgres %s: several hosts in the dsn; libpq "
			    "looks their names up itself, which blocks the "
			    "client while it waits for DNS", p->name);
	}
	libpq.PQconninfoFree(opts);
	return p->lookup_host;
}

/*
 * Has libpq start c's connection; res (NULL: none) holds the addresses
 * the dsn's host name resolved to, given as hostaddr with the name as
 * host for each, so libpq tries them in turn as it would have.  The
 * password goes to libpq as a keyword of its own, never through a
 * formatted connection string.  Returns 0, or MT_EUPSTREAM with the
 * reason in why (c is left to the caller).
 */
static int
conn_begin(struct pgup_conn *c, const struct resolve_result *res,
    char *why, size_t whylen)
{
	struct pgup_pool *p = c->pool;
	const char *kw[8], *val[8];
	char *hosts = NULL, *addrs = NULL, *t, *line;
	size_t i;
	int n = 0, r = MT_EUPSTREAM;

	kw[n] = "dbname";
	val[n++] = p->dsn;
	if (p->password != NULL) {
		kw[n] = "password";
		val[n++] = p->password;
	}
	if (res != NULL) {
		for (i = 0; i < res->n; i++) {
			t = xasprintf("%s%s%s", hosts != NULL ? hosts : "",
			    hosts != NULL ? "," : "", p->lookup_host);
			free(hosts);
			hosts = t;
			t = xasprintf("%s%s%s", addrs != NULL ? addrs : "",
			    addrs != NULL ? "," : "", res->addr[i]);
			free(addrs);
			addrs = t;
		}
		kw[n] = "host";
		val[n++] = hosts;
		kw[n] = "hostaddr";
		val[n++] = addrs;
	}
	/* After dbname, so these win over the dsn: JSON needs UTF-8. */
	kw[n] = "client_encoding";
	val[n++] = "UTF8";
	kw[n] = "fallback_application_name";
	val[n++] = "mcptun";
	kw[n] = NULL;
	val[n] = NULL;

	if ((c->pg = libpq.PQconnectStartParams(kw, val, 1)) == NULL) {
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	if (libpq.PQstatus(c->pg) == CONNECTION_BAD) {
		line = one_line(libpq.PQerrorMessage(c->pg));
		snprintf(why, whylen, "%s", line);
		free(line);
		goto out;
	}
	if (conn_watch(c) != 0) {
		snprintf(why, whylen, "cannot watch the database socket (is "
		    "the %s protocol in the client's vhost?)",
		    PGUP_PROTOCOL_NAME);
		goto out;
	}
	/* PQconnectPoll's loop starts as if it had said WRITING. */
	lws_callback_on_writable(c->wsi);
	log_debug("postgres %s: connection %u starting", p->name, c->serial);
	r = 0;
out:
	free(hosts);
	free(addrs);
	return r;
}

/* The dsn's host name resolved (or not): connect, or fail as one would. */
static void
conn_resolved(void *arg, const struct resolve_result *res)
{
	struct pgup_conn *c = arg;
	char why[512];

	c->lookup = NULL;
	if (res->error != NULL) {
		snprintf(why, sizeof(why), "cannot resolve %s: %s",
		    c->pool->lookup_host, res->error);
		(void)conn_broken(c, why);
		return;
	}
	if (conn_begin(c, res, why, sizeof(why)) != 0)
		(void)conn_broken(c, why);
}

/*
 * Starts a new connection for p: at once, or after its host name is
 * resolved off the event loop.  The deadline covers the lookup.  Returns
 * 0, or MT_EUPSTREAM with the reason in why.
 */
static int
conn_open(struct pgup_pool *p, char *why, size_t whylen)
{
	struct pgup_conn *c;
	const char *host;
	int r;

	c = xcalloc(1, sizeof(*c));
	c->pool = p;
	c->state = PGC_CONNECTING;
	c->serial = ++p->serial;
	TAILQ_INSERT_TAIL(&p->conns, c, entry);
	p->nconns++;
	/* Without the resolver (unit tests), libpq looks the name up. */
	if ((host = pool_lookup_host(p)) == NULL || resolve_fd() == -1)
		r = conn_begin(c, NULL, why, whylen);
	else if ((r = resolve_start(host, conn_resolved, c,
	    &c->lookup)) != 0) {
		snprintf(why, whylen, "cannot resolve %s: %s", host,
		    r == MT_ELIMIT ? "too many host-name lookups in flight" :
		    mt_strerror(r));
		r = MT_EUPSTREAM;
	} else
		log_debug("postgres %s: connection %u: resolving %s", p->name,
		    c->serial, host);
	if (r != 0) {
		conn_free(c);
		return MT_EUPSTREAM;
	}
	conn_set_deadline(c, PGUP_CONNECT_TIMEOUT_MS);
	return 0;
}

/* ---- pools ------------------------------------------------------------------- */

static struct pgup_pool *
pool_get(struct lws_vhost *vh, const struct server_conf *sc)
{
	struct pgup_pool *p;

	TAILQ_FOREACH(p, &pgup_pools, entry) {
		if (p->vh == vh && strcmp(p->name, sc->name) == 0 &&
		    str_eq(p->dsn, sc->dsn) &&
		    str_eq(p->password, sc->password) && p->size == sc->pool)
			return p;
	}
	p = xcalloc(1, sizeof(*p));
	p->name = xstrdup(sc->name);
	p->dsn = xstrdup(sc->dsn);
	p->password = sc->password != NULL ? xstrdup(sc->password) : NULL;
	p->size = sc->pool > 0 ? sc->pool : 1;
	p->vh = vh;
	TAILQ_INIT(&p->conns);
	TAILQ_INIT(&p->waitq);
	TAILQ_INSERT_TAIL(&pgup_pools, p, entry);
	return p;
}

static void
pool_free(struct pgup_pool *p)
{
	size_t i;

	TAILQ_REMOVE(&pgup_pools, p, entry);
	for (i = 0; i < p->ntypes; i++)
		free(p->types[i].name);
	free(p->types);
	free(p->name);
	free(p->dsn);
	free(p->lookup_host);
	free_secret(p->password);
	free(p);
}

/* Hands waiting jobs to idle connections and opens connections. */
static void
pool_dispatch(struct pgup_pool *p)
{
	struct pgup_conn *c, *next;
	struct pgup_job *job;
	char why[512];
	int waiting, connecting;

	if (p->nsessions == 0 || pgup_down) {
		/* Nobody left to serve: close what is not busy. */
		for (c = TAILQ_FIRST(&p->conns); c != NULL; c = next) {
			next = TAILQ_NEXT(c, entry);
			if (c->state == PGC_IDLE ||
			    c->state == PGC_CONNECTING)
				conn_free(c);
		}
	}
	while ((job = TAILQ_FIRST(&p->waitq)) != NULL) {
		if (pgup_down) {
			pool_fail_waiting(p, "the client is shutting down");
			return;
		}
		TAILQ_FOREACH(c, &p->conns, entry) {
			if (c->state == PGC_IDLE)
				break;
		}
		if (c != NULL) {
			TAILQ_REMOVE(&p->waitq, job, qentry);
			job->queued = 0;
			/* On failure the job is retried or failed there. */
			conn_start_job(c, job);
			continue;
		}
		waiting = connecting = 0;
		TAILQ_FOREACH(job, &p->waitq, qentry)
			waiting++;
		TAILQ_FOREACH(c, &p->conns, entry) {
			if (c->state == PGC_CONNECTING)
				connecting++;
		}
		while (connecting < waiting && p->nconns < p->size) {
			if (conn_open(p, why, sizeof(why)) != 0) {
				log_warnx("postgres %s: cannot connect: %s",
				    p->name, why);
				if (connecting == 0 && p->nconns == 0) {
					char *msg = xasprintf("cannot connect "
					    "to the database: %s", why);

					pool_fail_waiting(p, msg);
					free(msg);
				}
				break;
			}
			connecting++;
		}
		break;
	}
}

/*
 * Runs the pool after anything changed.  Re-entry (a connection failing
 * while being handed a job) just asks the outer call to go round again.
 * Frees p when no session, connection or job is left; callers must not
 * touch p afterwards.
 */
static void
pool_kick(struct pgup_pool *p)
{
	if (p->kicking) {
		p->kick_again = 1;
		return;
	}
	p->kicking = 1;
	do {
		p->kick_again = 0;
		pool_dispatch(p);
	} while (p->kick_again);
	p->kicking = 0;
	if (p->nsessions == 0 && TAILQ_EMPTY(&p->conns) &&
	    TAILQ_EMPTY(&p->waitq))
		pool_free(p);
}

/* ---- MCP: tools --------------------------------------------------------------- */

struct pgup_builtin {
	const char	*name;
	const char	*title;
	const char	*input;		/* inputSchema, JSON */
	int		 writes;	/* follows the server's access mode */
};

static const struct pgup_builtin pgup_builtins[] = {
	{ "query", "Run SQL",
	  "{\"type\":\"object\",\"properties\":{\"sql\":{\"type\":\"string\","
	  "\"description\":\"One SQL statement\"}},\"required\":[\"sql\"],"
	  "\"additionalProperties\":false}", 1 },
	{ "list_schemas", "List schemas",
	  "{\"type\":\"object\",\"properties\":{},"
	  "\"additionalProperties\":false}", 0 },
	{ "list_tables", "List tables",
	  "{\"type\":\"object\",\"properties\":{\"schema\":{\"type\":"
	  "\"string\",\"description\":\"Only this schema (default: every "
	  "schema except the system ones)\"}},"
	  "\"additionalProperties\":false}", 0 },
	{ "describe_table", "Describe a table",
	  "{\"type\":\"object\",\"properties\":{\"table\":{\"type\":"
	  "\"string\",\"description\":\"Table or view name, optionally "
	  "schema-qualified (public.orders)\"},\"schema\":{\"type\":"
	  "\"string\",\"description\":\"Schema of the table (default: the "
	  "search path)\"}},\"required\":[\"table\"],"
	  "\"additionalProperties\":false}", 0 },
	{ "explain", "Explain a query plan",
	  "{\"type\":\"object\",\"properties\":{\"sql\":{\"type\":\"string\","
	  "\"description\":\"One SQL statement to plan (it is not run)\"}},"
	  "\"required\":[\"sql\"],\"additionalProperties\":false}", 0 },
	{ NULL, NULL, NULL, 0 }
};

static const char pgup_describe_schema[] =
	"{\"type\":\"object\",\"properties\":{"
	"\"schema\":{\"type\":\"string\"},\"table\":{\"type\":\"string\"},"
	"\"kind\":{\"type\":\"string\"},"
	"\"comment\":{\"type\":[\"string\",\"null\"]},"
	"\"columns\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
	"\"properties\":{\"name\":{\"type\":\"string\"},"
	"\"type\":{\"type\":\"string\"},\"nullable\":{\"type\":\"boolean\"},"
	"\"default\":{\"type\":[\"string\",\"null\"]},"
	"\"comment\":{\"type\":[\"string\",\"null\"]}},"
	"\"required\":[\"name\",\"type\",\"nullable\"]}},"
	"\"primary_key\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
	"\"foreign_keys\":{\"type\":\"array\"},"
	"\"referenced_by\":{\"type\":\"array\"},"
	"\"constraints\":{\"type\":\"array\"},"
	"\"indexes\":{\"type\":\"array\"}},"
	"\"required\":[\"schema\",\"table\",\"kind\",\"columns\"]}";

static const char pgup_explain_schema[] =
	"{\"type\":\"object\",\"properties\":{\"plan\":{\"type\":\"array\"}},"
	"\"required\":[\"plan\"]}";

static const struct pgup_builtin *
builtin_find(const char *name)
{
	const struct pgup_builtin *b;

	for (b = pgup_builtins; b->name != NULL; b++) {
		if (strcmp(b->name, name) == 0)
			return b;
	}
	return NULL;
}

static json_t *
json_const(const char *text)
{
	json_t *j;

	if ((j = json_loads(text, 0, NULL)) == NULL)
		fatalx("postgres: bad built-in JSON schema");
	return j;
}

static char *
builtin_description(const struct server_conf *sc, const char *name)
{
	const char *mode = sc->read_write ? "read-write" : "read-only";

	if (strcmp(name, "query") == 0)
		return xasprintf("Run one SQL statement on the PostgreSQL "
		    "database \"%s\" (%s) and return its rows as a table. "
		    "The statement runs alone in a %s transaction with a "
		    "%llu ms statement timeout; no transaction control, SET "
		    "or several statements. Results are capped at %lld rows "
		    "and %llu bytes; a capped result says it was truncated.",
		    sc->name, mode, sc->read_write ? "READ WRITE" :
		    "READ ONLY", (unsigned long long)sc->statement_timeout_ms,
		    (long long)sc->max_rows,
		    (unsigned long long)sc->max_bytes);
	if (strcmp(name, "list_schemas") == 0)
		return xasprintf("List the schemas of database \"%s\" with "
		    "their owners and table counts.", sc->name);
	if (strcmp(name, "list_tables") == 0)
		return xasprintf("List the tables and views of database "
		    "\"%s\" (all user schemas, or one), with estimated row "
		    "counts and comments.", sc->name);
	if (strcmp(name, "describe_table") == 0)
		return xasprintf("Describe a table or view of database \"%s\": "
		    "columns with types, nullability and defaults, primary "
		    "key, foreign keys (both ways), constraints and indexes.",
		    sc->name);
	return xasprintf("Show the query plan PostgreSQL would use for one "
	    "SQL statement on database \"%s\" (EXPLAIN without ANALYZE: the "
	    "statement is not run).", sc->name);
}

static json_t *
tool_entry(const char *name, const char *title, const char *desc,
    json_t *input, json_t *output, int read_only)
{
	json_t *t;

	t = json_pack("{s:s, s:o, s:o, s:{s:b, s:b}}", "name", name,
	    "description", pgsql_json_string(desc, strlen(desc)),
	    "inputSchema", input,
	    "annotations", "readOnlyHint", read_only, "openWorldHint", 0);
	if (title != NULL)
		json_object_set_new(t, "title", json_string(title));
	if (output != NULL)
		json_object_set_new(t, "outputSchema", output);
	return t;
}

static json_t *
tools_list(const struct server_conf *sc)
{
	const struct pgup_builtin *b;
	const struct pg_tool *t;
	json_t *tools, *out;
	char *desc;
	size_t i;

	tools = json_array();
	for (b = pgup_builtins; sc->builtin_tools && b->name != NULL; b++) {
		if (!server_conf_tool_allowed(sc, b->name))
			continue;
		if (strcmp(b->name, "describe_table") == 0)
			out = json_const(pgup_describe_schema);
		else if (strcmp(b->name, "explain") == 0)
			out = json_const(pgup_explain_schema);
		else
			out = pgsql_result_schema();
		desc = builtin_description(sc, b->name);
		json_array_append_new(tools, tool_entry(b->name, b->title, desc,
		    json_const(b->input), out,
		    !(b->writes && sc->read_write)));
		free(desc);
	}
	for (i = 0; i < sc->nsql_tools; i++) {
		t = &sc->sql_tools[i];
		if (!server_conf_tool_allowed(sc, t->name))
			continue;
		json_array_append_new(tools, tool_entry(t->name, NULL,
		    t->description != NULL ? t->description : t->sql,
		    pgsql_tool_input_schema(t), pgsql_result_schema(),
		    !sc->read_write));
	}
	return json_pack("{s:o}", "tools", tools);
}

/* Checks that args holds only keys from allowed (NULL-terminated). */
static int
args_only(json_t *args, const char *const *allowed, char *err,
    size_t errlen)
{
	const char *key;
	json_t *v;
	size_t i;

	if (args == NULL)
		return 0;
	json_object_foreach(args, key, v) {
		for (i = 0; allowed[i] != NULL; i++) {
			if (strcmp(allowed[i], key) == 0)
				break;
		}
		if (allowed[i] == NULL) {
			snprintf(err, errlen, "unknown argument \"%.64s\"",
			    key);
			return MT_EINVAL;
		}
	}
	return 0;
}

/* A string argument; *out NULL when absent and optional. */
static int
arg_string(json_t *args, const char *key, int required, const char **out,
    char *err, size_t errlen)
{
	json_t *v = args != NULL ? json_object_get(args, key) : NULL;

	*out = NULL;
	if (v == NULL || json_is_null(v)) {
		if (!required)
			return 0;
		snprintf(err, errlen, "missing required argument \"%s\" "
		    "(string)", key);
		return MT_EINVAL;
	}
	if (!json_is_string(v) ||
	    strlen(json_string_value(v)) != json_string_length(v)) {
		snprintf(err, errlen, "argument \"%s\" must be a string", key);
		return MT_EINVAL;
	}
	*out = json_string_value(v);
	return 0;
}

/* Builds the job for built-in tool b; NULL with err on a bad argument. */
static struct pgup_job *
builtin_job(struct upstream *u, json_t *id, const struct pgup_builtin *b,
    json_t *args, char *err, size_t errlen)
{
	static const char *const a_sql[] = { "sql", NULL };
	static const char *const a_none[] = { NULL };
	static const char *const a_schema[] = { "schema", NULL };
	static const char *const a_table[] = { "table", "schema", NULL };
	const struct server_conf *sc = u->sc;
	struct pgup_job *job = NULL;
	const char *sql, *schema, *table;
	char *text;

	if (strcmp(b->name, "query") == 0) {
		if (args_only(args, a_sql, err, errlen) != 0 ||
		    arg_string(args, "sql", 1, &sql, err, errlen) != 0 ||
		    pgsql_screen(sql, err, errlen) != 0)
			return NULL;
		job = job_new(u, id, PGJ_ROWS, b->name, sql, sc->read_write);
	} else if (strcmp(b->name, "list_schemas") == 0) {
		if (args_only(args, a_none, err, errlen) != 0)
			return NULL;
		job = job_new(u, id, PGJ_ROWS, b->name, pgup_sql_schemas, 0);
	} else if (strcmp(b->name, "list_tables") == 0) {
		if (args_only(args, a_schema, err, errlen) != 0 ||
		    arg_string(args, "schema", 0, &schema, err, errlen) != 0)
			return NULL;
		job = job_new(u, id, PGJ_ROWS, b->name, pgup_sql_tables, 0);
		job->nparams = 1;
		job->params = xcalloc(1, sizeof(*job->params));
		job->params[0] = schema != NULL ? xstrdup(schema) : NULL;
	} else if (strcmp(b->name, "describe_table") == 0) {
		if (args_only(args, a_table, err, errlen) != 0 ||
		    arg_string(args, "table", 1, &table, err, errlen) != 0 ||
		    arg_string(args, "schema", 0, &schema, err, errlen) != 0)
			return NULL;
		job = job_new(u, id, PGJ_DESCRIBE, b->name, pgup_sql_describe,
		    0);
		job->nparams = 2;
		job->params = xcalloc(2, sizeof(*job->params));
		job->params[0] = xstrdup(table);
		job->params[1] = schema != NULL ? xstrdup(schema) : NULL;
		job->target = schema != NULL ? xasprintf("%s.%s", schema,
		    table) : xstrdup(table);
	} else if (strcmp(b->name, "explain") == 0) {
		if (args_only(args, a_sql, err, errlen) != 0 ||
		    arg_string(args, "sql", 1, &sql, err, errlen) != 0 ||
		    pgsql_screen(sql, err, errlen) != 0)
			return NULL;
		/* Planning only, so read-only whatever the access mode. */
		text = xasprintf("EXPLAIN (FORMAT JSON) %s", sql);
		job = job_new(u, id, PGJ_EXPLAIN, b->name, text, 0);
		free(text);
	}
	return job;
}

static void
h_tools_call(struct upstream *u, json_t *id, json_t *params)
{
	const struct server_conf *sc = u->sc;
	const struct pgup_builtin *b = NULL;
	const struct pg_tool *t = NULL;
	struct pgup_job *job = NULL;
	const char *name;
	json_t *args;
	char err[512];
	char **values;

	name = json_string_value(json_object_get(params, "name"));
	args = json_object_get(params, "arguments");
	if (name == NULL) {
		u_error(u, id, JRPC_INVALID_PARAMS, "tools/call needs "
		    "params.name");
		return;
	}
	if (args != NULL && json_is_null(args))
		args = NULL;
	if (args != NULL && !json_is_object(args)) {
		u_error(u, id, JRPC_INVALID_PARAMS, "tools/call: "
		    "params.arguments must be an object");
		return;
	}
	if (sc->builtin_tools)
		b = builtin_find(name);
	if (b == NULL)
		t = server_conf_sql_tool(sc, name);
	if (b == NULL && t == NULL) {
		u_error(u, id, JRPC_INVALID_PARAMS, "Unknown tool: %s", name);
		return;
	}
	if (!server_conf_tool_allowed(sc, name)) {
		u_error(u, id, JRPC_DENIED, "tool \"%s\" of server \"%s\" is "
		    "not allowed by the client's allowlist", name, sc->name);
		return;
	}
	err[0] = '\0';
	if (b != NULL)
		job = builtin_job(u, id, b, args, err, sizeof(err));
	else if (pgsql_tool_bind(t, args, &values, err, sizeof(err)) == 0) {
		job = job_new(u, id, PGJ_ROWS, t->name, t->sql,
		    sc->read_write);
		job->params = values;
		job->nparams = t->nparams;
	}
	if (job == NULL) {
		u_tool_result(u, id, err[0] != '\0' ? err : "invalid arguments",
		    NULL, 1);
		return;
	}
	job_submit(job);
}

/* ---- MCP: the other methods --------------------------------------------------- */

static const char *const pgup_versions[] = {
	"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", NULL
};

static void
h_initialize(struct upstream *u, json_t *id, json_t *params)
{
	const char *want, *version = "2025-06-18";
	const struct server_conf *sc = u->sc;
	char *instructions;
	size_t i;

	want = json_string_value(json_object_get(params, "protocolVersion"));
	for (i = 0; want != NULL && pgup_versions[i] != NULL; i++) {
		if (strcmp(want, pgup_versions[i]) == 0)
			version = pgup_versions[i];
	}
	instructions = xasprintf("PostgreSQL database \"%s\", %s. Every call "
	    "runs one statement in a transaction of its own with a %llu ms "
	    "statement timeout; results are capped at %lld rows and %llu "
	    "bytes. Start with list_tables and describe_table. Table "
	    "schemas are also resources.", sc->name, sc->read_write ?
	    "read-write" : "read-only",
	    (unsigned long long)sc->statement_timeout_ms,
	    (long long)sc->max_rows, (unsigned long long)sc->max_bytes);
	u_reply(u, id, json_pack("{s:s, s:{s:{s:b}, s:{}}, s:{s:s, s:s}, "
	    "s:o}", "protocolVersion", version,
	    "capabilities", "tools", "listChanged", 1, "resources",
	    "serverInfo", "name", "mcptun-postgres", "version", MCPTUN_VERSION,
	    "instructions", pgsql_json_string(instructions,
	    strlen(instructions))));
	free(instructions);
}

static void
h_resources_list(struct upstream *u, json_t *id, json_t *params)
{
	struct pgup_job *job;

	job = job_new(u, id, PGJ_RESOURCES, "resources/list",
	    pgup_sql_tables, 0);
	job->nparams = 1;
	job->params = xcalloc(1, sizeof(*job->params));
	job_submit(job);
}

static void
h_resource_templates(struct upstream *u, json_t *id, json_t *params)
{
	char *tmpl;

	tmpl = xasprintf("postgres://%s/{schema}/{table}/schema", u->sc->name);
	u_reply(u, id, json_pack("{s:[{s:s, s:s, s:s, s:s}]}",
	    "resourceTemplates", "uriTemplate", tmpl, "name", "table-schema",
	    "description", "Columns, keys and indexes of one table or view, "
	    "as JSON", "mimeType", "application/json"));
	free(tmpl);
}

static void
h_resources_read(struct upstream *u, json_t *id, json_t *params)
{
	struct pgup_job *job;
	const char *uri;
	char *schema, *table;

	uri = json_string_value(json_object_get(params, "uri"));
	if (uri == NULL) {
		u_error(u, id, JRPC_INVALID_PARAMS, "resources/read needs "
		    "params.uri");
		return;
	}
	if (pgsql_resource_parse(uri, u->sc->name, &schema, &table) != 0) {
		u_error(u, id, -32002, "Resource not found: %s", uri);
		return;
	}
	job = job_new(u, id, PGJ_RESOURCE_READ, "resources/read",
	    pgup_sql_describe, 0);
	job->nparams = 2;
	job->params = xcalloc(2, sizeof(*job->params));
	job->params[0] = table;
	job->params[1] = schema;
	job->target = xstrdup(uri);
	job_submit(job);
}

static void
h_ping(struct upstream *u, json_t *id, json_t *params)
{
	u_reply(u, id, json_object());
}

static void
h_tools_list(struct upstream *u, json_t *id, json_t *params)
{
	u_reply(u, id, tools_list(u->sc));
}

static const struct {
	const char	*method;
	void		(*fn)(struct upstream *, json_t *, json_t *);
} pgup_methods[] = {
	{ "initialize",			h_initialize },
	{ "ping",			h_ping },
	{ "tools/list",			h_tools_list },
	{ "tools/call",			h_tools_call },
	{ "resources/list",		h_resources_list },
	{ "resources/templates/list",	h_resource_templates },
	{ "resources/read",		h_resources_read },
	{ NULL,				NULL }
};

/* notifications/cancelled: forget the call; nobody wants its answer. */
static void
u_cancel(struct upstream *u, const json_t *rid)
{
	struct pgup_job *job;

	TAILQ_FOREACH(job, &u->jobs, uentry) {
		if (json_equal(job->id, rid))
			break;
	}
	if (job == NULL)
		return;
	TAILQ_REMOVE(&u->jobs, job, uentry);
	u->njobs--;
	job->u = NULL;
	log_debug("postgres %s: %s cancelled", u->sc->name, job->what);
	if (job->queued) {
		TAILQ_REMOVE(&job->pool->waitq, job, qentry);
		job_free(job);
	}
	/* A running job finishes on its connection and is dropped. */
	u_check_drain(u);
}

static void
u_message(struct upstream *u, json_t *m)
{
	const char *method;
	json_t *id, *params;
	size_t i;

	method = json_string_value(json_object_get(m, "method"));
	id = json_object_get(m, "id");
	params = json_object_get(m, "params");
	if (!json_is_object(params))
		params = NULL;
	switch (jrpc_classify(m)) {
	case JRPC_REQUEST:
		for (i = 0; pgup_methods[i].method != NULL; i++) {
			if (strcmp(pgup_methods[i].method, method) == 0) {
				pgup_methods[i].fn(u, id, params);
				return;
			}
		}
		u_error(u, id, JRPC_METHOD_NOT_FOUND, "Method not found: %s",
		    method);
		break;
	case JRPC_NOTIFICATION:
		if (strcmp(method, "notifications/cancelled") == 0 &&
		    params != NULL &&
		    json_object_get(params, "requestId") != NULL)
			u_cancel(u, json_object_get(params, "requestId"));
		break;
	case JRPC_RESPONSE:
		break;		/* we never ask the agent anything */
	case JRPC_INVALID:
	default:
		if (id != NULL && !json_is_string(id) && !json_is_integer(id))
			id = NULL;
		u_error(u, id, JRPC_INVALID_REQUEST, "not a JSON-RPC 2.0 "
		    "request");
		break;
	}
}

/* ---- the upstream kind --------------------------------------------------------- */

static int
pgup_open(struct lws_vhost *vh, const struct server_conf *sc,
    const char *agent, const char *session_tag,
    const struct upstream_ops *ops, void *arg, struct upstream **out)
{
	struct upstream *u;
	char why[512];

	if (sc->type != SERVER_POSTGRES || sc->dsn == NULL) {
		upstream_set_error("server \"%s\" is not a postgres server",
		    sc->name);
		return MT_EINVAL;
	}
	if (pgup_ctx == NULL || pgup_down ||
	    lws_vhost_name_to_protocol(vh, PGUP_PROTOCOL_NAME) == NULL) {
		upstream_set_error("postgres server \"%s\": the %s protocol "
		    "is not running on this vhost", sc->name,
		    PGUP_PROTOCOL_NAME);
		return MT_ESTATE;
	}
	if (pq_dl_load(why, sizeof(why)) != 0) {
		upstream_set_error("postgres server \"%s\": %s", sc->name,
		    why);
		return MT_EUPSTREAM;
	}
	u = xcalloc(1, sizeof(*u));
	u->sc = sc;
	u->ops = ops;
	u->arg = arg;
	u->agent = xstrdup(agent != NULL ? agent : "");
	u->tag = xstrdup(session_tag != NULL ? session_tag : "");
	TAILQ_INIT(&u->outq);
	TAILQ_INIT(&u->jobs);
	u->pool = pool_get(vh, sc);
	u->pool->nsessions++;
	log_debug("postgres %s: session %s for %s", sc->name, u->tag,
	    u->agent);
	*out = u;
	return 0;
}

static int
pgup_send(struct upstream *u, const uint8_t *msg, size_t len)
{
	char err[256];
	json_t *m;
	char *s;
	size_t slen;

	if (u->closed)
		return MT_ECLOSED;
	if (len > PGUP_MAX_MESSAGE)
		return MT_ETOOBIG;
	if ((m = jrpc_parse(msg, len, err, sizeof(err))) == NULL) {
		s = jrpc_error_text(NULL, JRPC_PARSE_ERROR, err, &slen);
		u_queue(u, s, slen);
		return 0;
	}
	u_message(u, m);
	json_decref(m);
	if (u->njobs >= PGUP_HIGH_WATER) {
		u->want_drain = 1;
		return MT_EAGAIN;
	}
	return 0;
}

static void
pgup_close(struct upstream *u)
{
	struct pgup_pool *p = u->pool;
	struct pgup_job *job;
	struct pgup_msg *m;

	if (u->closed)
		return;
	u->closed = 1;
	while ((job = TAILQ_FIRST(&u->jobs)) != NULL) {
		TAILQ_REMOVE(&u->jobs, job, uentry);
		job->u = NULL;
		if (job->queued) {
			TAILQ_REMOVE(&p->waitq, job, qentry);
			job_free(job);
		}
		/* Running jobs finish on their connection, then go. */
	}
	u->njobs = 0;
	while ((m = TAILQ_FIRST(&u->outq)) != NULL) {
		TAILQ_REMOVE(&u->outq, m, entry);
		free(m->text);
		free(m);
	}
	lws_sul_cancel(&u->flush);
	log_debug("postgres %s: session %s closed", u->sc->name, u->tag);
	u->pool = NULL;
	p->nsessions--;
	pool_kick(p);
	if (u->in_cb == 0)
		u_free(u);
}

static void
pgup_pause(struct upstream *u)
{
	u->paused = 1;
}

static void
pgup_resume(struct upstream *u)
{
	u->paused = 0;
	if (!TAILQ_EMPTY(&u->outq) || u->want_drain)
		u_schedule(u);
}

const struct upstream_kind upstream_postgres = {
	.name = "postgres",
	.open = pgup_open,
	.send = pgup_send,
	.close = pgup_close,
	.pause = pgup_pause,
	.resume = pgup_resume
};

/* ---- lws glue ------------------------------------------------------------------ */

int
pgup_conf_loaded(const struct client_conf *c)
{
	char why[512];
	size_t i;
	int rc;

	if (pq_dl_loaded())
		return 0;
	for (i = 0; i < c->nservers; i++)
		if (c->servers[i].type == SERVER_POSTGRES)
			break;
	if (i == c->nservers)
		return 0;
	if ((rc = pq_dl_load(why, sizeof(why))) != 0) {
		log_warnx("postgres server \"%s\": %s; its sessions will "
		    "fail", c->servers[i].name, why);
		return rc;
	}
	log_debug("postgres server \"%s\": loaded %s (libpq %d)",
	    c->servers[i].name, PQ_DL_LIBNAME, libpq.PQlibVersion());
	return 0;
}

void
pgup_shutdown(void)
{
	struct pgup_pool *p, *pnext;
	struct pgup_conn *c;
	struct pgup_job *job;

	pgup_down = 1;
	for (p = TAILQ_FIRST(&pgup_pools); p != NULL; p = pnext) {
		pnext = TAILQ_NEXT(p, entry);
		while ((c = TAILQ_FIRST(&p->conns)) != NULL) {
			if ((job = c->job) != NULL) {
				c->job = NULL;
				if (job->u != NULL) {
					TAILQ_REMOVE(&job->u->jobs, job,
					    uentry);
					job->u->njobs--;
				}
				job_free(job);
			}
			conn_free(c);
		}
		while ((job = TAILQ_FIRST(&p->waitq)) != NULL) {
			TAILQ_REMOVE(&p->waitq, job, qentry);
			if (job->u != NULL) {
				TAILQ_REMOVE(&job->u->jobs, job, uentry);
				job->u->njobs--;
			}
			job_free(job);
		}
		/* Pools still referenced by a session go with its close. */
		if (p->nsessions == 0)
			pool_free(p);
	}
}

int
pgup_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	struct pgup_pool *p;
	struct pgup_conn *c;

	switch (reason) {
	case LWS_CALLBACK_PROTOCOL_INIT:
		pgup_ctx = lws_get_context(wsi);
		pgup_down = 0;
		break;
	case LWS_CALLBACK_PROTOCOL_DESTROY:
		/*
		 * The context is going: its wsis are closed or about to be,
		 * so let go of them without touching them.
		 */
		TAILQ_FOREACH(p, &pgup_pools, entry) {
			TAILQ_FOREACH(c, &p->conns, entry)
				c->wsi = NULL;
		}
		pgup_shutdown();
		pgup_ctx = NULL;
		break;
	case LWS_CALLBACK_RAW_RX_FILE:
		/* A socket we let go of: let lws close its dup. */
		if ((c = lws_get_opaque_user_data(wsi)) == NULL)
			return -1;
		conn_readable(c);
		break;
	case LWS_CALLBACK_RAW_WRITEABLE_FILE:
		if ((c = lws_get_opaque_user_data(wsi)) == NULL)
			return -1;
		conn_writable(c);
		break;
	case LWS_CALLBACK_RAW_CLOSE_FILE:
		if ((c = lws_get_opaque_user_data(wsi)) != NULL &&
		    c->wsi == wsi) {
			lws_set_opaque_user_data(wsi, NULL);
			c->wsi = NULL;
			conn_broken(c, "the database socket was closed");
		}
		break;
	default:
		break;
	}
	return 0;
}

const struct lws_protocols pgup_protocol = PGUP_PROTOCOL;
