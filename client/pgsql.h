/*
 * The pure half of the postgres adapter (pgsql.c): everything that can be
 * decided without a database connection, so it can be unit-tested alone.
 *
 *  - Screening a statement before it is sent: the first keyword, after
 *    blanks and SQL comments, must not be a transaction-control or
 *    session-changing command.  This is defence in depth; the READ ONLY
 *    transaction and the one-statement extended query protocol that
 *    up_postgres.c uses are the real guards.
 *  - Mapping PostgreSQL text-format values to JSON by type OID.
 *  - Collecting a result set under the row and byte caps, and rendering it
 *    as an aligned text table and as MCP structuredContent.
 *  - Checking and binding the arguments of a curated SQL tool.
 *  - Table-schema resource URIs: postgres://SERVER/SCHEMA/TABLE/schema.
 */
#ifndef MCPTUN_PGSQL_H
#define MCPTUN_PGSQL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct pg_tool;

/* ---- statement screening ------------------------------------------------ */

/*
 * Returns a pointer to the first character of sql that is neither white
 * space nor part of a comment ("-- ..." to the end of the line, or a
 * possibly nested block comment).  An unterminated block comment skips to
 * the end of the string.
 */
const char *pgsql_skip_blank(const char *sql);

/*
 * Decides whether sql may be sent.  Returns 0 if it may, MT_EINVAL if it
 * holds no statement at all, MT_EDENIED if its first keyword is refused.
 * On refusal or emptiness a sentence for the agent goes to why.
 */
int	pgsql_screen(const char *sql, char *why, size_t whylen);

/* ---- types and values ---------------------------------------------------- */

/* How a column's values become JSON. */
enum pgsql_kind {
	PGSQL_KIND_TEXT = 0,	/* JSON string (dates, uuid, arrays, ...) */
	PGSQL_KIND_INT,		/* int2, int4, oid: JSON integer */
	PGSQL_KIND_FLOAT,	/* float4, float8: JSON number (NaN: string) */
	PGSQL_KIND_DECIMAL,	/* int8, numeric, money: JSON string */
	PGSQL_KIND_BOOL,	/* JSON true/false */
	PGSQL_KIND_JSON,	/* json, jsonb: the parsed value */
	PGSQL_KIND_BYTEA	/* base64 JSON string */
};

/* The kind of type oid (PGSQL_KIND_TEXT for anything unknown). */
enum pgsql_kind pgsql_type_kind(unsigned int oid);
/* Returns 1 if values of type oid read best right-aligned (numbers). */
int	pgsql_type_numeric(unsigned int oid);
/*
 * Returns the format_type() name of a built-in type ("integer",
 * "timestamp with time zone", "text[]", ...), or NULL if oid is not in the
 * built-in table (user types: ask the database).
 */
const char *pgsql_type_name(unsigned int oid);

/*
 * Returns a new JSON value for one text-format value of type oid, len
 * bytes at text; text NULL is SQL NULL (json null).  Never returns NULL:
 * a value that does not parse as its type falls back to a JSON string.
 */
json_t	*pgsql_value(unsigned int oid, const char *text, size_t len);

/*
 * A JSON string of len bytes at s; bytes that are not valid UTF-8 are
 * replaced with U+FFFD, so any database encoding yields valid JSON.
 */
json_t	*pgsql_json_string(const char *s, size_t len);

/*
 * Decodes bytea text output, hex ("\x0001ff") or the old escape format,
 * into a new buffer (*outlen bytes; caller frees).  NULL if malformed.
 */
uint8_t	*pgsql_bytea_decode(const char *text, size_t len, size_t *outlen);
/* Returns a new NUL-terminated base64 (RFC 4648, padded) text of p. */
char	*pgsql_base64(const uint8_t *p, size_t len);

/* ---- result sets --------------------------------------------------------- */

/*
 * A result set under caps: rows are kept until max_rows rows or max_bytes
 * bytes of values are reached; later rows are only counted.  Column keys
 * are the column names made unique ("id", "id_2", ...), since row objects
 * in structuredContent are keyed by them.
 */
struct pgsql_result {
	size_t		  ncols;
	char		**names;	/* as PostgreSQL named them */
	char		**keys;		/* unique keys for row objects */
	unsigned int	 *oids;
	char		**types;	/* type names, NULL until known */
	size_t		  nrows;	/* rows kept */
	size_t		  cap;		/* rows allocated */
	char		**cells;	/* nrows * ncols; NULL = SQL NULL */
	size_t		 *lens;
	uint64_t	  seen;		/* rows the server sent */
	uint64_t	  bytes;	/* value bytes kept */
	uint64_t	  max_rows;
	uint64_t	  max_bytes;
	int		  truncated;	/* a cap was hit */
	int		  by_bytes;	/* ... and it was max_bytes */
	int		  incomplete;	/* the server stopped before the end */
	char		 *command;	/* command tag ("UPDATE 3"), or NULL */
};

/* A new empty result of ncols columns with the given caps (0 = none). */
struct pgsql_result *pgsql_result_new(size_t ncols, uint64_t max_rows,
	    uint64_t max_bytes);
/* Sets column i's name and type oid (before any row is added). */
void	 pgsql_result_set_col(struct pgsql_result *r, size_t i,
	    const char *name, unsigned int oid);
/* Sets column i's type name (copied). */
void	 pgsql_result_set_type(struct pgsql_result *r, size_t i,
	    const char *type);
/*
 * Offers one row (ncols values, NULL = SQL NULL, lens[i] bytes each).
 * Returns 1 if it was kept, 0 if it was only counted (a cap was reached).
 */
int	 pgsql_result_add_row(struct pgsql_result *r,
	    const char *const *vals, const size_t *lens);
/* Sets the command tag (copied), for statements that return no rows. */
void	 pgsql_result_set_command(struct pgsql_result *r, const char *tag);
/*
 * The footer line: "(3 rows)", or "truncated: showing 10 of 250 rows
 * (max_rows 10)", or "... of at least 250 rows ..." when the server
 * stopped early.  Caller frees.
 */
char	*pgsql_result_footer(const struct pgsql_result *r);
/*
 * Renders the kept rows as an aligned text table (psql-like, NULL shown
 * as "NULL", control characters escaped) followed by the footer.  Caller
 * frees.
 */
char	*pgsql_result_text(const struct pgsql_result *r);
/*
 * Returns a new structuredContent object: {columns: [{name, type}],
 * rows: [{key: value}], row_count, truncated} (+ command when set).
 * row_count is the number of rows shown.
 */
json_t	*pgsql_result_json(const struct pgsql_result *r);
/* The outputSchema that pgsql_result_json() objects satisfy. */
json_t	*pgsql_result_schema(void);
void	 pgsql_result_free(struct pgsql_result *r);

/* ---- describe_table and explain ------------------------------------- */

/*
 * Renders a table description (the object describe_table returns:
 * schema, table, kind, comment, columns, primary_key, foreign_keys,
 * referenced_by, constraints, indexes) as readable text.  Caller frees.
 */
char	*pgsql_describe_text(const json_t *desc);
/*
 * Renders an EXPLAIN (FORMAT JSON) plan as an indented tree with costs,
 * like psql's text format.  Caller frees.
 */
char	*pgsql_explain_text(const json_t *plan);

/* ---- curated tools ------------------------------------------------------- */

/* Returns a new inputSchema (JSON Schema) for t's typed parameters. */
json_t	*pgsql_tool_input_schema(const struct pg_tool *t);
/*
 * Checks args (a JSON object or NULL) against t's parameters and turns
 * them into text values for $1..$N: *valuesp gets an array of t->nparams
 * strings (NULL = SQL NULL), freed with pgsql_values_free().  Returns 0,
 * or MT_EINVAL with a sentence for the agent in err.
 */
int	 pgsql_tool_bind(const struct pg_tool *t, json_t *args,
	    char ***valuesp, char *err, size_t errlen);
void	 pgsql_values_free(char **values, size_t n);

/* ---- resources ----------------------------------------------------------- */

/*
 * Returns the URI of a table's schema resource,
 * "postgres://SERVER/SCHEMA/TABLE/schema" with SCHEMA and TABLE
 * percent-encoded.  Caller frees.
 */
char	*pgsql_resource_uri(const char *server, const char *schema,
	    const char *table);
/*
 * Parses uri as made by pgsql_resource_uri() for server.  Returns 0 and
 * sets *schemap and *tablep (caller frees), or MT_ENOTFOUND.
 */
int	 pgsql_resource_parse(const char *uri, const char *server,
	    char **schemap, char **tablep);

#endif
