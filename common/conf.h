/*
 * Table-driven YAML configuration loading, shared by both daemons.
 *
 * A configuration is loaded in three phases.  Defaults: every table's
 * defaults hook fills its struct.  Parse with positions: libyaml turns the
 * file into a small tree of maps, sequences and scalars that remembers the
 * line and column of every node, and the tree is mapped onto C structs by
 * schema tables (struct conf_entry) that name each key, its kind and where
 * it lives.  Check: each table's check hook looks at the filled struct and
 * reports what is wrong at the position of the offending key.
 *
 * Errors are single lines, "file:line:col: message"; they never contain the
 * value of a secret.  Strings are expanded from the environment ("${NAME}",
 * "$${" for a literal "${"), and a secret key KEY may instead be given as
 * KEY_file, naming a file that holds it.  JSON is YAML, so a .mcp.json file
 * loads through the same path.
 *
 * The structs the tables describe own all their memory; conf_free() walks
 * the same table to release it, wiping secrets.
 */
#ifndef MCPTUN_CONF_H
#define MCPTUN_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Where a key or value was written; line 0 means "not from a file". */
struct conf_pos {
	unsigned	line;	/* 1-based */
	unsigned	col;	/* 1-based */
};

/* One KEY: value pair of a string map (env, headers). */
struct conf_pair {
	char	*key;
	char	*value;
};

/* A string map in file order; keys are unique. */
struct conf_map {
	size_t			 n;
	struct conf_pair	*v;
};

/* The kinds of value a schema entry may hold, and the C type each fills. */
enum conf_kind {
	CONF_STRING,	/* char *, environment-expanded */
	CONF_SECRET,	/* char *, as STRING; KEY_file accepted; wiped */
	CONF_BOOL,	/* int, 0 or 1 */
	CONF_INT,	/* int64_t */
	CONF_SIZE,	/* uint64_t bytes: "64KiB", "4MiB", "10MB", "512" */
	CONF_DURATION,	/* uint64_t milliseconds: "250ms", "30s", "5m", "2h" */
	CONF_ENUM,	/* int, the value of the matching struct conf_enum */
	CONF_STRLIST,	/* char **, NULL-terminated; NULL when absent */
	CONF_STRMAP,	/* struct conf_map */
	CONF_TABLE,	/* an embedded struct described by sub */
	CONF_NAMED,	/* map NAME -> sub-table: array of structs + size_t count */
	CONF_LIST	/* sequence of sub-tables: array of structs + size_t count */
};

/* Entry flags. */
#define CONF_REQUIRED	0x0001	/* the key must be present (and not null) */
#define CONF_SECRETVAL	0x0002	/* STRMAP: values are secrets (headers) */
#define CONF_SETTING	0x0004	/* counts for conf_equal(..., CONF_SETTING) */

/* One choice of a CONF_ENUM entry; arrays end with a NULL name. */
struct conf_enum {
	const char	*name;
	int		 value;
};

struct conf_ctx;
struct conf_node;
struct conf_schema;

/*
 * One key of a table.  off is the offset of the field in the table's
 * struct.  For CONF_NAMED and CONF_LIST, off is the offset of the array
 * pointer and count_off that of its size_t count, and sub describes one
 * element; a CONF_NAMED element must begin with "char *name".  min and max
 * bound INT, SIZE and DURATION values when max is not 0.
 */
struct conf_entry {
	const char			*key;
	enum conf_kind			 kind;
	size_t				 off;
	size_t				 count_off;
	unsigned			 flags;
	const struct conf_schema	*sub;
	const struct conf_enum		*choices;
	int64_t				 min;
	int64_t				 max;
	const char			*alias;	/* another accepted key */
	const char			*help;
};

/*
 * A table: its entries (ending with a NULL key), the size of its struct
 * (for arrays of elements), and optional hooks.  defaults fills a fresh,
 * zeroed struct before parsing (embedded CONF_TABLE structs get their own
 * defaults first).  check runs when the table appeared in the file and its
 * keys were applied without error, with node the table's map (or, for a
 * null element such as "acme:", its key); it reports problems with
 * conf_error() and returns 0 or MT_ECONFIG.  free releases memory that the
 * struct owns outside its entries (derived fields).
 */
struct conf_schema {
	const char		*name;
	const struct conf_entry	*entries;
	size_t			 size;
	void			(*defaults)(void *base);
	int			(*check)(struct conf_ctx *ctx,
				    const struct conf_node *node, void *base);
	void			(*free)(void *base);
};

/*
 * Loads the YAML (or JSON) file at path into base, which the caller has
 * zeroed, following schema.  Runs defaults, parse and the check hooks.
 * Returns 0, or MT_ECONFIG with up to 20 error lines (separated by '\n') in
 * err, or MT_ENOMEM.  On failure base is freed with conf_free() already.
 */
int	 conf_load_file(const char *path, const struct conf_schema *schema,
	    void *base, char *err, size_t errlen);
/* As conf_load_file, from len bytes at data; name is used in messages. */
int	 conf_load_mem(const char *name, const void *data, size_t len,
	    const struct conf_schema *schema, void *base, char *err,
	    size_t errlen);

/*
 * Sets one scalar key, named by its dotted path ("relay.url",
 * "limits.window"), as if it had been written in the file; for overrides
 * from the command line or the environment.  The value is taken literally
 * (no ${} expansion).  Check hooks are not run; the daemon's final check
 * does that.  Returns 0, MT_ENOTFOUND for an unknown key or MT_ECONFIG with
 * a message in err.
 */
int	 conf_set(const struct conf_schema *schema, void *base,
	    const char *path, const char *value, char *err, size_t errlen);

/* Frees everything schema says base owns (not base itself); wipes secrets. */
void	 conf_free(const struct conf_schema *schema, void *base);

/*
 * Returns 1 if every entry of schema carrying all bits of mask (0 = every
 * entry) holds equal values in a and b; sub-tables are compared whole.
 */
int	 conf_equal(const struct conf_schema *schema, const void *a,
	    const void *b, unsigned mask);

/* Writes "key  help" lines for every key of schema, for --help-config. */
void	 conf_help(const struct conf_schema *schema, FILE *fp);

/* Returns the value of key in map, or NULL. */
const char *conf_map_get(const struct conf_map *map, const char *key);
/* Returns the number of strings in a NULL-terminated list (NULL = 0). */
size_t	 conf_strlist_len(char *const *list);

/*
 * For check hooks.  conf_node_get returns the value node of key in the map
 * node (NULL if absent or node is NULL); conf_node_key returns the node of
 * the key itself.  conf_node_pos returns a node's position ({0,0} for NULL).
 */
const struct conf_node *conf_node_get(const struct conf_node *node,
	    const char *key);
const struct conf_node *conf_node_key(const struct conf_node *node,
	    const char *key);
struct conf_pos conf_node_pos(const struct conf_node *node);
/* The name of the file being loaded, for messages. */
const char *conf_ctx_file(const struct conf_ctx *ctx);
/* The dotted path of the table being checked ("servers.files"), or "". */
const char *conf_ctx_path(const struct conf_ctx *ctx);
/*
 * The position of the table being checked: the key that names it
 * ("files:" under servers), or its map for list elements and the top level.
 */
struct conf_pos conf_ctx_pos(const struct conf_ctx *ctx);

/*
 * Records one error at node's position (the file name alone when node is
 * NULL); returns MT_ECONFIG so a hook can write "return conf_error(...)".
 * Never pass a secret value.
 */
int	 conf_error(struct conf_ctx *ctx, const struct conf_node *node,
	    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* As conf_error, at an explicit position. */
int	 conf_error_at(struct conf_ctx *ctx, struct conf_pos pos,
	    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * Formats "file:line:col: message" (or "file: message" when pos.line is 0)
 * into err; for checks that run after loading, from stored positions.
 */
void	 conf_format_error(char *err, size_t errlen, const char *file,
	    struct conf_pos pos, const char *fmt, ...)
	    __attribute__((format(printf, 5, 6)));

/*
 * The keys of a CONF_NAMED map must be names: [A-Za-z0-9_-]{1,48}.
 * conf_valid_name returns 1 if s is one of at most max characters.
 */
#define CONF_NAME_MAX	48
int	 conf_valid_name(const char *s, size_t max);

#endif
