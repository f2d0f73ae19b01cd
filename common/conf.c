/*
 * Table-driven YAML configuration loader; see conf.h.
 *
 * libyaml's event parser builds a small tree (maps, sequences, scalars)
 * that keeps the 1-based line and column of every node.  The tree is then
 * walked against a schema: every key must be one the table names, every
 * value must have the table's kind, and required keys must be present.
 * Errors are collected (at most CONF_MAX_ERRORS) rather than stopping at
 * the first, so one run of "-n" shows every mistake in a file.  Secrets
 * never appear in a message: only key names, positions and environment
 * variable names do.
 */
#include "common/conf.h"
#include "common/err.h"
#include "common/util.h"
#include "common/xmalloc.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#define CONF_MAX_ERRORS		20
#define CONF_MAX_DEPTH		64
#define CONF_MAX_NODES		200000
#define CONF_MAX_FILE		(16 * 1024 * 1024)
#define CONF_MAX_SECRET_FILE	(64 * 1024)
#define CONF_PATH_MAX		512

enum conf_node_type {
	CN_SCALAR,
	CN_MAP,
	CN_SEQ
};

struct conf_node {
	enum conf_node_type	  type;
	struct conf_pos		  pos;
	char			 *str;		/* scalar text, NUL-terminated */
	int			  null;		/* plain "", "~" or "null" */
	struct conf_node	**kids;		/* map: key, value, key, ... */
	size_t			  n;
	size_t			  cap;
};

struct conf_ctx {
	const char		*file;
	char			*errs[CONF_MAX_ERRORS];
	size_t			 nerr;
	size_t			 dropped;
	char			 path[CONF_PATH_MAX];
	struct conf_pos		 anchor;	/* of the table being applied */
	int			 literal;	/* conf_set: no ${} expansion */
};

static int	conf_apply_table(struct conf_ctx *, const struct conf_schema *,
		    const struct conf_node *, const struct conf_node *, void *);
static void	conf_defaults(const struct conf_schema *, void *);

/* --- errors ------------------------------------------------------------- */

/* Replaces control bytes so that a message stays on one line. */
static void
conf_oneline(char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
			*s = '?';
	}
}

static void
conf_verror(struct conf_ctx *ctx, struct conf_pos pos, const char *fmt,
    va_list ap)
{
	char msg[512], *line;

	if (ctx->nerr >= CONF_MAX_ERRORS) {
		ctx->dropped++;
		return;
	}
	vsnprintf(msg, sizeof(msg), fmt, ap);
	conf_oneline(msg);
	if (pos.line != 0)
		line = xasprintf("%s:%u:%u: %s", ctx->file, pos.line, pos.col,
		    msg);
	else
		line = xasprintf("%s: %s", ctx->file, msg);
	ctx->errs[ctx->nerr++] = line;
}

int
conf_error(struct conf_ctx *ctx, const struct conf_node *node,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	conf_verror(ctx, conf_node_pos(node), fmt, ap);
	va_end(ap);
	return MT_ECONFIG;
}

int
conf_error_at(struct conf_ctx *ctx, struct conf_pos pos, const char *fmt,
    ...)
{
	va_list ap;

	va_start(ap, fmt);
	conf_verror(ctx, pos, fmt, ap);
	va_end(ap);
	return MT_ECONFIG;
}

void
conf_format_error(char *err, size_t errlen, const char *file,
    struct conf_pos pos, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	conf_oneline(msg);
	if (pos.line != 0)
		snprintf(err, errlen, "%s:%u:%u: %s", file, pos.line, pos.col,
		    msg);
	else
		snprintf(err, errlen, "%s: %s", file, msg);
}

/* Joins the collected errors into err, one per line, and frees them. */
static void
conf_ctx_finish(struct conf_ctx *ctx, char *err, size_t errlen)
{
	size_t i, used = 0;
	int n;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	for (i = 0; i < ctx->nerr; i++) {
		if (err != NULL && used < errlen) {
			n = snprintf(err + used, errlen - used, "%s%s",
			    i ? "\n" : "", ctx->errs[i]);
			if (n > 0)
				used += (size_t)n;
		}
		free(ctx->errs[i]);
		ctx->errs[i] = NULL;
	}
	if (ctx->dropped > 0 && err != NULL && used < errlen)
		snprintf(err + used, errlen - used, "\n%s: (%zu more errors)",
		    ctx->file, ctx->dropped);
	ctx->nerr = 0;
}

const char *
conf_ctx_file(const struct conf_ctx *ctx)
{
	return ctx->file;
}

const char *
conf_ctx_path(const struct conf_ctx *ctx)
{
	return ctx->path;
}

struct conf_pos
conf_ctx_pos(const struct conf_ctx *ctx)
{
	return ctx->anchor;
}

/* " under PATH" for messages, or "" at the top level. */
static const char *
conf_under(const struct conf_ctx *ctx, char *buf, size_t len)
{
	if (ctx->path[0] == '\0')
		return "";
	snprintf(buf, len, " under %s", ctx->path);
	return buf;
}

/* --- the node tree ------------------------------------------------------ */

static void
conf_node_free(struct conf_node *n)
{
	size_t i;

	if (n == NULL)
		return;
	for (i = 0; i < n->n; i++)
		conf_node_free(n->kids[i]);
	free(n->kids);
	free(n->str);
	free(n);
}

static void
conf_node_add(struct conf_node *parent, struct conf_node *kid)
{
	if (parent->n == parent->cap) {
		parent->cap = parent->cap ? parent->cap * 2 : 8;
		parent->kids = xrealloc(parent->kids,
		    parent->cap * sizeof(*parent->kids));
	}
	parent->kids[parent->n++] = kid;
}

static struct conf_pos
conf_mark_pos(yaml_mark_t m)
{
	struct conf_pos pos;

	pos.line = (unsigned)m.line + 1;
	pos.col = (unsigned)m.column + 1;
	return pos;
}

static int
conf_is_null(const yaml_event_t *ev)
{
	const char *s = (const char *)ev->data.scalar.value;

	if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return 0;
	return ev->data.scalar.length == 0 || strcmp(s, "~") == 0 ||
	    strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
	    strcmp(s, "NULL") == 0;
}

/*
 * Parses len bytes at data into a tree.  Returns 0 and sets *rootp (NULL
 * for an empty stream), or MT_ECONFIG with the error recorded in ctx.
 */
static int
conf_parse(struct conf_ctx *ctx, const void *data, size_t len,
    struct conf_node **rootp)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	struct conf_node *stack[CONF_MAX_DEPTH], *root = NULL, *n, *top;
	size_t depth = 0, nodes = 0;
	int r = MT_ECONFIG, docs = 0, done = 0, have_ev = 0;

	if (!yaml_parser_initialize(&parser)) {
		conf_error_at(ctx, (struct conf_pos){ 0, 0 },
		    "cannot initialise the YAML parser");
		return MT_ENOMEM;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
	while (!done) {
		if (!yaml_parser_parse(&parser, &ev)) {
			if (parser.context != NULL)
				conf_error_at(ctx, conf_mark_pos(parser.problem_mark),
				    "YAML syntax error: %s (%s at line %u)",
				    parser.problem ? parser.problem : "?",
				    parser.context,
				    (unsigned)parser.context_mark.line + 1);
			else
				conf_error_at(ctx, conf_mark_pos(parser.problem_mark),
				    "YAML syntax error: %s",
				    parser.problem ? parser.problem : "?");
			goto out;
		}
		have_ev = 1;
		n = NULL;
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++docs > 1) {
				conf_error_at(ctx, conf_mark_pos(ev.start_mark),
				    "only one YAML document is allowed");
				goto out;
			}
			break;
		case YAML_ALIAS_EVENT:
			conf_error_at(ctx, conf_mark_pos(ev.start_mark),
			    "YAML aliases (*name) are not supported; "
			    "write the value out");
			goto out;
		case YAML_SCALAR_EVENT:
		case YAML_MAPPING_START_EVENT:
		case YAML_SEQUENCE_START_EVENT:
			if (++nodes > CONF_MAX_NODES) {
				conf_error_at(ctx, conf_mark_pos(ev.start_mark),
				    "too many values (more than %d)",
				    CONF_MAX_NODES);
				goto out;
			}
			n = xcalloc(1, sizeof(*n));
			n->pos = conf_mark_pos(ev.start_mark);
			if (ev.type == YAML_SCALAR_EVENT) {
				n->type = CN_SCALAR;
				n->str = xstrndup(
				    (const char *)ev.data.scalar.value,
				    ev.data.scalar.length);
				n->null = conf_is_null(&ev);
			} else if (ev.type == YAML_MAPPING_START_EVENT)
				n->type = CN_MAP;
			else
				n->type = CN_SEQ;
			if (depth == 0) {
				if (root != NULL) {
					/* Cannot happen with one document. */
					conf_node_free(n);
					conf_error_at(ctx, conf_mark_pos(ev.start_mark),
					    "unexpected second top-level value");
					goto out;
				}
				root = n;
			} else {
				top = stack[depth - 1];
				if (top->type == CN_MAP && top->n % 2 == 0 &&
				    n->type != CN_SCALAR) {
					conf_error_at(ctx, n->pos,
					    "keys must be plain strings");
					conf_node_free(n);
					goto out;
				}
				conf_node_add(top, n);
			}
			if (n->type != CN_SCALAR) {
				if (depth == CONF_MAX_DEPTH) {
					conf_error_at(ctx, n->pos,
					    "values nested more than %d deep",
					    CONF_MAX_DEPTH);
					goto out;
				}
				stack[depth++] = n;
			}
			break;
		case YAML_MAPPING_END_EVENT:
		case YAML_SEQUENCE_END_EVENT:
			if (depth > 0)
				depth--;
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
		have_ev = 0;
	}
	*rootp = root;
	root = NULL;
	r = 0;
 out:
	if (have_ev)
		yaml_event_delete(&ev);
	yaml_parser_delete(&parser);
	conf_node_free(root);
	return r;
}

const struct conf_node *
conf_node_key(const struct conf_node *node, const char *key)
{
	size_t i;

	if (node == NULL || node->type != CN_MAP)
		return NULL;
	for (i = 0; i + 1 < node->n; i += 2) {
		if (strcmp(node->kids[i]->str, key) == 0)
			return node->kids[i];
	}
	return NULL;
}

const struct conf_node *
conf_node_get(const struct conf_node *node, const char *key)
{
	size_t i;

	if (node == NULL || node->type != CN_MAP)
		return NULL;
	for (i = 0; i + 1 < node->n; i += 2) {
		if (strcmp(node->kids[i]->str, key) == 0)
			return node->kids[i + 1];
	}
	return NULL;
}

struct conf_pos
conf_node_pos(const struct conf_node *node)
{
	struct conf_pos none = { 0, 0 };

	return node != NULL ? node->pos : none;
}

/* --- small helpers ------------------------------------------------------ */

int
conf_valid_name(const char *s, size_t max)
{
	size_t n;

	for (n = 0; s[n] != '\0'; n++) {
		if (!isalnum((unsigned char)s[n]) && s[n] != '_' &&
		    s[n] != '-')
			return 0;
	}
	return n >= 1 && n <= max;
}

const char *
conf_map_get(const struct conf_map *map, const char *key)
{
	size_t i;

	for (i = 0; i < map->n; i++) {
		if (strcmp(map->v[i].key, key) == 0)
			return map->v[i].value;
	}
	return NULL;
}

size_t
conf_strlist_len(char *const *list)
{
	size_t n = 0;

	if (list != NULL)
		while (list[n] != NULL)
			n++;
	return n;
}

/* Levenshtein distance, or a large number for long strings. */
static size_t
conf_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j, d[65], prev, tmp;

	if (la > 64 || lb > 64)
		return 99;
	for (j = 0; j <= lb; j++)
		d[j] = j;
	for (i = 1; i <= la; i++) {
		prev = d[0];
		d[0] = i;
		for (j = 1; j <= lb; j++) {
			tmp = d[j];
			d[j] = prev + (a[i - 1] != b[j - 1]);
			if (d[j - 1] + 1 < d[j])
				d[j] = d[j - 1] + 1;
			if (tmp + 1 < d[j])
				d[j] = tmp + 1;
			prev = tmp;
		}
	}
	return d[lb];
}

/* Returns the valid key nearest to key (edit distance <= 2), or NULL. */
static const char *
conf_suggest(const struct conf_schema *schema, const char *key, char *buf,
    size_t len)
{
	const struct conf_entry *e;
	char cand[80];
	size_t bestd = 3, d;
	int v;

	for (e = schema->entries; e->key != NULL; e++) {
		for (v = 0; v < 3; v++) {
			if (v == 0)
				snprintf(cand, sizeof(cand), "%s", e->key);
			else if (v == 1 && e->alias != NULL)
				snprintf(cand, sizeof(cand), "%s", e->alias);
			else if (v == 2 && e->kind == CONF_SECRET)
				snprintf(cand, sizeof(cand), "%s_file", e->key);
			else
				continue;
			if ((d = conf_distance(key, cand)) < bestd) {
				bestd = d;
				snprintf(buf, len, "%s", cand);
			}
		}
	}
	return bestd <= 2 ? buf : NULL;
}

/* Grows a string buffer whose old contents are wiped (they may be secret). */
static void
conf_sb_put(char **s, size_t *len, size_t *cap, const char *p, size_t n)
{
	char *ns;

	if (*len + n + 1 > *cap) {
		*cap = (*len + n + 1) * 2;
		ns = xmalloc(*cap);
		if (*s != NULL) {
			memcpy(ns, *s, *len);
			explicit_wipe(*s, *len);
			free(*s);
		}
		*s = ns;
	}
	memcpy(*s + *len, p, n);
	*len += n;
	(*s)[*len] = '\0';
}

/*
 * Expands ${NAME} from the environment; "$${" stands for a literal "${".
 * Sets *out to a new string, or records an error at node and returns
 * MT_ECONFIG.  The value itself is never quoted in an error.
 */
static int
conf_expand(struct conf_ctx *ctx, const struct conf_node *node,
    const char *key, const char *in, char **out)
{
	char *s = NULL, name[128];
	const char *p = in, *end, *val;
	size_t len = 0, cap = 0, nlen, i;
	int r = MT_ECONFIG;

	conf_sb_put(&s, &len, &cap, "", 0);
	if (ctx->literal) {
		conf_sb_put(&s, &len, &cap, in, strlen(in));
		goto done;
	}
	while (*p != '\0') {
		if (p[0] == '$' && p[1] == '$' && p[2] == '{') {
			conf_sb_put(&s, &len, &cap, "${", 2);
			p += 3;
			continue;
		}
		if (p[0] != '$' || p[1] != '{') {
			conf_sb_put(&s, &len, &cap, p, 1);
			p++;
			continue;
		}
		end = strchr(p + 2, '}');
		if (end == NULL) {
			conf_error(ctx, node, "unterminated \"${\" in \"%s\" "
			    "(write \"$${\" for a literal \"${\")", key);
			goto out;
		}
		nlen = (size_t)(end - (p + 2));
		if (nlen == 0 || nlen >= sizeof(name) ||
		    (!isalpha((unsigned char)p[2]) && p[2] != '_')) {
			conf_error(ctx, node, "bad environment variable name "
			    "in \"%s\"", key);
			goto out;
		}
		for (i = 0; i < nlen; i++) {
			if (!isalnum((unsigned char)p[2 + i]) &&
			    p[2 + i] != '_') {
				conf_error(ctx, node, "bad environment "
				    "variable name in \"%s\"", key);
				goto out;
			}
			name[i] = p[2 + i];
		}
		name[nlen] = '\0';
		if ((val = getenv(name)) == NULL) {
			conf_error(ctx, node, "environment variable \"%s\" "
			    "is not set (used by \"%s\")", name, key);
			goto out;
		}
		conf_sb_put(&s, &len, &cap, val, strlen(val));
		p = end + 1;
	}
 done:
	*out = s;
	s = NULL;
	r = 0;
 out:
	if (s != NULL) {
		explicit_wipe(s, len);
		free(s);
	}
	return r;
}

/* Reads a secret from path; strips one trailing newline. */
static int
conf_read_secret(struct conf_ctx *ctx, const struct conf_node *node,
    const char *key, const char *path, char **out)
{
	struct stat st;
	char *s = NULL;
	size_t len = 0;
	ssize_t n;
	int fd = -1, r = MT_ECONFIG;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1 ||
	    fstat(fd, &st) == -1) {
		conf_error(ctx, node, "cannot read \"%s_file\" %s: %s", key,
		    path, strerror(errno));
		goto out;
	}
	/* A FIFO or a terminal would block start-up. */
	if (!S_ISREG(st.st_mode)) {
		conf_error(ctx, node, "\"%s_file\" %s is not a regular file",
		    key, path);
		goto out;
	}
	s = xmalloc(CONF_MAX_SECRET_FILE + 1);
	for (;;) {
		n = read(fd, s + len, CONF_MAX_SECRET_FILE + 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			conf_error(ctx, node, "cannot read \"%s_file\" %s: %s",
			    key, path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > CONF_MAX_SECRET_FILE) {
			conf_error(ctx, node, "\"%s_file\" %s is larger than "
			    "%d bytes", key, path, CONF_MAX_SECRET_FILE);
			goto out;
		}
	}
	s[len] = '\0';
	if (memchr(s, '\0', len) != NULL) {
		conf_error(ctx, node, "\"%s_file\" %s contains a NUL byte",
		    key, path);
		goto out;
	}
	if (len > 0 && s[len - 1] == '\n')
		s[--len] = '\0';
	if (len > 0 && s[len - 1] == '\r')
		s[--len] = '\0';
	*out = xstrdup(s);
	r = 0;
 out:
	if (s != NULL) {
		explicit_wipe(s, CONF_MAX_SECRET_FILE + 1);
		free(s);
	}
	if (fd != -1)
		close(fd);
	return r;
}

static const char *
conf_kind_word(const struct conf_entry *e)
{
	switch (e->kind) {
	case CONF_STRING:
	case CONF_SECRET:
		return "a string";
	case CONF_BOOL:
		return "true or false";
	case CONF_INT:
		return "an integer";
	case CONF_SIZE:
		return "a size like 64KiB, 4MiB or 10MB";
	case CONF_DURATION:
		return "a duration like 250ms, 30s, 5m or 2h";
	case CONF_ENUM:
		return "one of the listed words";
	case CONF_STRLIST:
		return "a list of strings";
	case CONF_STRMAP:
		return "a mapping of strings";
	case CONF_TABLE:
	case CONF_NAMED:
		return "a mapping";
	case CONF_LIST:
		return "a list of mappings";
	}
	return "?";
}

/* --- applying values ---------------------------------------------------- */

/* List items may hold expanded secrets (args: ["--token=${T}"]): wipe. */
static void
conf_strlist_free(char **list)
{
	size_t i;

	if (list == NULL)
		return;
	for (i = 0; list[i] != NULL; i++)
		free_secret(list[i]);
	free(list);
}

static void
conf_map_free(struct conf_map *m, int secret)
{
	size_t i;

	for (i = 0; i < m->n; i++) {
		free(m->v[i].key);
		if (secret)
			free_secret(m->v[i].value);
		else
			free(m->v[i].value);
	}
	free(m->v);
	m->v = NULL;
	m->n = 0;
}

static int
conf_parse_bool(const char *s, int *out)
{
	static const char *yes[] = { "true", "yes", "on", NULL };
	static const char *no[] = { "false", "no", "off", NULL };
	size_t i;

	for (i = 0; yes[i] != NULL; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return MT_EINVAL;
}

static int
conf_parse_int(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (*s == '\0' || isspace((unsigned char)*s))
		return MT_EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return MT_EINVAL;
	*out = v;
	return 0;
}

/* Applies one scalar value; node is the value node. */
static int
conf_apply_scalar(struct conf_ctx *ctx, const struct conf_entry *e,
    const struct conf_node *node, const char *text, void *base)
{
	char *field = (char *)base + e->off, *s = NULL;
	const struct conf_enum *c;
	int64_t iv;
	uint64_t uv;
	int bv, r = MT_ECONFIG;
	char list[256];
	size_t used;

	switch (e->kind) {
	case CONF_STRING:
	case CONF_SECRET:
		if (conf_expand(ctx, node, e->key, text, &s) != 0)
			goto out;
		if (e->kind == CONF_SECRET)
			free_secret(*(char **)field);
		else
			free(*(char **)field);
		*(char **)field = s;
		break;
	case CONF_BOOL:
		if (conf_parse_bool(text, &bv) != 0) {
			conf_error(ctx, node, "\"%s\" must be true or false",
			    e->key);
			goto out;
		}
		*(int *)field = bv;
		break;
	case CONF_INT:
		if (conf_parse_int(text, &iv) != 0) {
			conf_error(ctx, node, "\"%s\" must be an integer",
			    e->key);
			goto out;
		}
		if (e->max != 0 && (iv < e->min || iv > e->max)) {
			conf_error(ctx, node, "\"%s\" must be between %lld "
			    "and %lld", e->key, (long long)e->min,
			    (long long)e->max);
			goto out;
		}
		*(int64_t *)field = iv;
		break;
	case CONF_SIZE:
	case CONF_DURATION:
		if ((e->kind == CONF_SIZE && parse_size(text, &uv) != 0) ||
		    (e->kind == CONF_DURATION &&
		    parse_duration_ms(text, &uv) != 0)) {
			conf_error(ctx, node, "\"%s\" must be %s", e->key,
			    conf_kind_word(e));
			goto out;
		}
		if (e->max != 0 && (uv < (uint64_t)e->min ||
		    uv > (uint64_t)e->max)) {
			conf_error(ctx, node, "\"%s\" must be between %llu "
			    "and %llu %s", e->key,
			    (unsigned long long)e->min,
			    (unsigned long long)e->max,
			    e->kind == CONF_SIZE ? "bytes" : "ms");
			goto out;
		}
		*(uint64_t *)field = uv;
		break;
	case CONF_ENUM:
		for (c = e->choices; c->name != NULL; c++) {
			if (strcasecmp(text, c->name) == 0) {
				*(int *)field = c->value;
				break;
			}
		}
		if (c->name == NULL) {
			list[0] = '\0';
			used = 0;
			for (c = e->choices; c->name != NULL; c++) {
				if (used >= sizeof(list))
					break;
				used += (size_t)snprintf(list + used,
				    sizeof(list) - used, "%s%s",
				    c == e->choices ? "" : ", ", c->name);
			}
			conf_error(ctx, node, "\"%s\" must be one of: %s",
			    e->key, list);
			goto out;
		}
		break;
	default:
		conf_error(ctx, node, "\"%s\" must be %s", e->key,
		    conf_kind_word(e));
		goto out;
	}
	r = 0;
 out:
	return r;
}

/* Appends a path component ("servers", "files", "[0]") to ctx->path. */
static size_t
conf_path_push(struct conf_ctx *ctx, const char *comp, int index)
{
	size_t old = strlen(ctx->path);

	if (index >= 0)
		snprintf(ctx->path + old, sizeof(ctx->path) - old, "[%d]",
		    index);
	else
		snprintf(ctx->path + old, sizeof(ctx->path) - old, "%s%.64s",
		    old ? "." : "", comp);
	return old;
}

static int
conf_apply_value(struct conf_ctx *ctx, const struct conf_entry *e,
    const struct conf_node *knode, const struct conf_node *v, void *base)
{
	char *field = (char *)base + e->off, **list = NULL, *s = NULL;
	struct conf_map *map;
	const struct conf_node *k2;
	size_t i, j, n, old, size;
	char *elems;
	int r = MT_ECONFIG, failed = 0;

	switch (e->kind) {
	case CONF_STRING:
	case CONF_SECRET:
	case CONF_BOOL:
	case CONF_INT:
	case CONF_SIZE:
	case CONF_DURATION:
	case CONF_ENUM:
		if (v->type != CN_SCALAR) {
			conf_error(ctx, v, "\"%s\" must be %s", e->key,
			    conf_kind_word(e));
			goto out;
		}
		r = conf_apply_scalar(ctx, e, v, v->str, base);
		goto out;
	case CONF_STRLIST:
		if (v->type != CN_SEQ) {
			conf_error(ctx, v, "\"%s\" must be a list of strings",
			    e->key);
			goto out;
		}
		list = xcalloc(v->n + 1, sizeof(*list));
		for (i = 0; i < v->n; i++) {
			if (v->kids[i]->type != CN_SCALAR) {
				conf_error(ctx, v->kids[i], "\"%s\" must be a "
				    "list of strings", e->key);
				goto out;
			}
			if (conf_expand(ctx, v->kids[i], e->key,
			    v->kids[i]->str, &list[i]) != 0)
				goto out;
		}
		conf_strlist_free(*(char ***)field);
		*(char ***)field = list;
		list = NULL;
		break;
	case CONF_STRMAP:
		if (v->type != CN_MAP) {
			conf_error(ctx, v, "\"%s\" must be a mapping of "
			    "strings", e->key);
			goto out;
		}
		map = (struct conf_map *)field;
		conf_map_free(map, e->flags & CONF_SECRETVAL);
		map->v = xcalloc(v->n / 2 + 1, sizeof(*map->v));
		for (i = 0; i + 1 < v->n; i += 2) {
			k2 = v->kids[i];
			for (j = 0; j < i; j += 2) {
				if (strcmp(v->kids[j]->str, k2->str) == 0)
					break;
			}
			if (j < i) {
				conf_error(ctx, k2, "duplicate key \"%.64s\" "
				    "in \"%s\" (first at line %u)", k2->str,
				    e->key, v->kids[j]->pos.line);
				failed = 1;
				continue;
			}
			if (v->kids[i + 1]->type != CN_SCALAR) {
				conf_error(ctx, v->kids[i + 1], "values of "
				    "\"%s\" must be strings", e->key);
				failed = 1;
				continue;
			}
			s = NULL;
			if (v->kids[i + 1]->null)
				s = xstrdup("");
			else if (conf_expand(ctx, v->kids[i + 1], e->key,
			    v->kids[i + 1]->str, &s) != 0) {
				failed = 1;
				continue;
			}
			map->v[map->n].key = xstrdup(k2->str);
			map->v[map->n].value = s;
			map->n++;
		}
		if (failed)
			goto out;
		break;
	case CONF_TABLE:
		if (v->type != CN_MAP) {
			conf_error(ctx, v, "\"%s\" must be a mapping", e->key);
			goto out;
		}
		old = conf_path_push(ctx, knode->str, -1);
		r = conf_apply_table(ctx, e->sub, v, knode, field);
		ctx->path[old] = '\0';
		goto out;
	case CONF_NAMED:
	case CONF_LIST:
		if (e->kind == CONF_NAMED && v->type != CN_MAP) {
			conf_error(ctx, v, "\"%s\" must be a mapping of names",
			    e->key);
			goto out;
		}
		if (e->kind == CONF_LIST && v->type != CN_SEQ) {
			conf_error(ctx, v, "\"%s\" must be a list of mappings",
			    e->key);
			goto out;
		}
		n = e->kind == CONF_NAMED ? v->n / 2 : v->n;
		size = e->sub->size;
		elems = xcalloc(n + 1, size);
		*(void **)field = elems;
		*(size_t *)((char *)base + e->count_off) = n;
		for (i = 0; i < n; i++)
			conf_defaults(e->sub, elems + i * size);
		old = conf_path_push(ctx, knode->str, -1);
		for (i = 0; i < n; i++) {
			const struct conf_node *ek, *ev;
			size_t mark = strlen(ctx->path);

			if (e->kind == CONF_NAMED) {
				ek = v->kids[2 * i];
				ev = v->kids[2 * i + 1];
				*(char **)(elems + i * size) = xstrdup(ek->str);
				for (j = 0; j < 2 * i; j += 2) {
					if (strcmp(v->kids[j]->str,
					    ek->str) == 0)
						break;
				}
				if (j < 2 * i) {
					conf_error(ctx, ek, "duplicate key "
					    "\"%.64s\" under %s (first at line "
					    "%u)", ek->str, ctx->path,
					    v->kids[j]->pos.line);
					failed = 1;
					continue;
				}
				if (!conf_valid_name(ek->str, CONF_NAME_MAX)) {
					conf_error(ctx, ek, "bad name "
					    "\"%.64s\" under %s (use 1 to %d "
					    "letters, digits, \"_\" or \"-\")",
					    ek->str, ctx->path, CONF_NAME_MAX);
					failed = 1;
					continue;
				}
				conf_path_push(ctx, ek->str, -1);
			} else {
				ek = ev = v->kids[i];
				conf_path_push(ctx, "", (int)i);
			}
			if (!ev->null && ev->type != CN_MAP) {
				conf_error(ctx, ev, "%s must be a mapping",
				    ctx->path);
				failed = 1;
			} else if (conf_apply_table(ctx, e->sub,
			    ev->null ? NULL : ev, ek, elems + i * size) != 0)
				failed = 1;
			ctx->path[mark] = '\0';
		}
		ctx->path[old] = '\0';
		if (failed)
			goto out;
		break;
	}
	r = 0;
 out:
	if (list != NULL) {
		for (i = 0; list[i] != NULL; i++)
			free_secret(list[i]);
		free(list);
	}
	return r;
}

static int
conf_key_matches(const struct conf_entry *e, const char *key, int *is_file)
{
	size_t kl = strlen(e->key);

	*is_file = 0;
	if (strcmp(key, e->key) == 0)
		return 1;
	if (e->alias != NULL && strcmp(key, e->alias) == 0)
		return 1;
	if (e->kind == CONF_SECRET && strncmp(key, e->key, kl) == 0 &&
	    strcmp(key + kl, "_file") == 0) {
		*is_file = 1;
		return 1;
	}
	return 0;
}

/*
 * Applies the map node (NULL = an empty table) to base.  anchor is the node
 * of the table's key, for "missing key" errors.
 */
static int
conf_apply_table(struct conf_ctx *ctx, const struct conf_schema *schema,
    const struct conf_node *map, const struct conf_node *anchor, void *base)
{
	const struct conf_entry *e;
	const struct conf_node *k, *v, *given, *given_v, *file_k, *file_v;
	struct conf_pos saved = ctx->anchor;
	char under[CONF_PATH_MAX + 16], sugg[80], *path = NULL, *secret;
	const char *best;
	size_t i, j, nerr = ctx->nerr + ctx->dropped, n = map ? map->n : 0;
	int is_file;

	ctx->anchor = conf_node_pos(anchor);
	/* Every key must be known and appear once. */
	for (i = 0; i + 1 < n; i += 2) {
		k = map->kids[i];
		for (j = 0; j < i; j += 2) {
			if (strcmp(map->kids[j]->str, k->str) == 0)
				break;
		}
		if (j < i) {
			conf_error(ctx, k, "duplicate key \"%.64s\"%s (first "
			    "at line %u)", k->str,
			    conf_under(ctx, under, sizeof(under)),
			    map->kids[j]->pos.line);
			continue;
		}
		for (e = schema->entries; e->key != NULL; e++) {
			if (conf_key_matches(e, k->str, &is_file))
				break;
		}
		if (e->key != NULL)
			continue;
		best = conf_suggest(schema, k->str, sugg, sizeof(sugg));
		if (best != NULL)
			conf_error(ctx, k, "unknown key \"%.64s\"%s (did you "
			    "mean \"%s\"?)", k->str,
			    conf_under(ctx, under, sizeof(under)), best);
		else
			conf_error(ctx, k, "unknown key \"%.64s\"%s", k->str,
			    conf_under(ctx, under, sizeof(under)));
	}

	for (e = schema->entries; e->key != NULL; e++) {
		given = given_v = file_k = file_v = NULL;
		for (i = 0; i + 1 < n; i += 2) {
			k = map->kids[i];
			v = map->kids[i + 1];
			if (!conf_key_matches(e, k->str, &is_file))
				continue;
			/* Only the first of duplicate keys counts. */
			for (j = 0; j < i; j += 2) {
				if (strcmp(map->kids[j]->str, k->str) == 0)
					break;
			}
			if (j < i)
				continue;
			if (is_file) {
				file_k = k;
				file_v = v;
			} else if (given != NULL) {
				conf_error(ctx, k, "\"%s\" and \"%s\" are the "
				    "same key; give only one", given->str,
				    k->str);
			} else {
				given = k;
				given_v = v;
			}
		}
		if (given_v != NULL && given_v->null)
			given = given_v = NULL;
		if (file_v != NULL && file_v->null)
			file_k = file_v = NULL;
		if (given != NULL && file_k != NULL) {
			conf_error(ctx, file_k, "give either \"%s\" or "
			    "\"%s\", not both", given->str, file_k->str);
			continue;
		}
		if (file_k != NULL) {
			if (file_v->type != CN_SCALAR) {
				conf_error(ctx, file_v, "\"%s\" must be a "
				    "file name", file_k->str);
				continue;
			}
			path = NULL;
			secret = NULL;
			if (conf_expand(ctx, file_v, file_k->str, file_v->str,
			    &path) == 0 && conf_read_secret(ctx, file_v,
			    e->key, path, &secret) == 0) {
				free_secret(*(char **)((char *)base + e->off));
				*(char **)((char *)base + e->off) = secret;
			}
			free(path);
			continue;
		}
		if (given == NULL) {
			if (e->flags & CONF_REQUIRED)
				conf_error_at(ctx, ctx->anchor, "missing "
				    "required key \"%s\"%s", e->key,
				    conf_under(ctx, under, sizeof(under)));
			continue;
		}
		conf_apply_value(ctx, e, given, given_v, base);
	}

	if (ctx->nerr + ctx->dropped == nerr && schema->check != NULL)
		schema->check(ctx, map != NULL ? map : anchor, base);
	ctx->anchor = saved;
	return ctx->nerr + ctx->dropped == nerr ? 0 : MT_ECONFIG;
}

/* --- phases ------------------------------------------------------------- */

static void
conf_defaults(const struct conf_schema *schema, void *base)
{
	const struct conf_entry *e;

	for (e = schema->entries; e->key != NULL; e++) {
		if (e->kind == CONF_TABLE)
			conf_defaults(e->sub, (char *)base + e->off);
	}
	if (schema->defaults != NULL)
		schema->defaults(base);
}

int
conf_load_mem(const char *name, const void *data, size_t len,
    const struct conf_schema *schema, void *base, char *err, size_t errlen)
{
	struct conf_ctx ctx;
	struct conf_node *root = NULL;
	int r = MT_ECONFIG;

	memset(&ctx, 0, sizeof(ctx));
	ctx.file = name;
	conf_defaults(schema, base);
	if ((r = conf_parse(&ctx, data, len, &root)) != 0)
		goto out;
	r = MT_ECONFIG;
	if (root == NULL || (root->type == CN_SCALAR && root->null)) {
		conf_error_at(&ctx, (struct conf_pos){ 0, 0 },
		    "the file is empty");
		goto out;
	}
	if (root->type != CN_MAP) {
		conf_error(&ctx, root, "the top level must be a mapping of "
		    "keys");
		goto out;
	}
	if (conf_apply_table(&ctx, schema, root, root, base) != 0)
		goto out;
	r = 0;
 out:
	if (r != 0 && ctx.nerr == 0)
		conf_error_at(&ctx, (struct conf_pos){ 0, 0 }, "%s",
		    mt_strerror(r));
	if (r != 0) {
		conf_ctx_finish(&ctx, err, errlen);
		conf_free(schema, base);
	} else if (err != NULL && errlen > 0)
		err[0] = '\0';
	conf_node_free(root);
	return r;
}

int
conf_load_file(const char *path, const struct conf_schema *schema,
    void *base, char *err, size_t errlen)
{
	struct stat st;
	char *data = NULL;
	size_t len = 0;
	ssize_t n;
	int fd = -1, r = MT_ECONFIG;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1) {
		conf_format_error(err, errlen, path, (struct conf_pos){ 0, 0 },
		    "cannot open: %s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > CONF_MAX_FILE) {
		conf_format_error(err, errlen, path, (struct conf_pos){ 0, 0 },
		    "not a regular file of at most %d bytes", CONF_MAX_FILE);
		goto out;
	}
	data = xmalloc((size_t)st.st_size + 1);
	while (len < (size_t)st.st_size) {
		n = read(fd, data + len, (size_t)st.st_size - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			conf_format_error(err, errlen, path,
			    (struct conf_pos){ 0, 0 }, "cannot read: %s",
			    strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	r = conf_load_mem(path, data, len, schema, base, err, errlen);
 out:
	free(data);
	if (fd != -1)
		close(fd);
	return r;
}

int
conf_set(const struct conf_schema *schema, void *base, const char *path,
    const char *value, char *err, size_t errlen)
{
	struct conf_ctx ctx;
	struct conf_node node;
	const struct conf_entry *e = NULL;
	char *copy = NULL, *comp, *next;
	int r = MT_ENOTFOUND;

	memset(&ctx, 0, sizeof(ctx));
	memset(&node, 0, sizeof(node));
	ctx.file = path;
	ctx.literal = 1;
	copy = xstrdup(path);
	for (comp = copy; comp != NULL; comp = next) {
		if ((next = strchr(comp, '.')) != NULL)
			*next++ = '\0';
		for (e = schema->entries; e->key != NULL; e++) {
			if (strcmp(e->key, comp) == 0)
				break;
		}
		if (e->key == NULL) {
			conf_format_error(err, errlen, path,
			    (struct conf_pos){ 0, 0 }, "unknown key");
			goto out;
		}
		if (next == NULL)
			break;
		if (e->kind != CONF_TABLE) {
			conf_format_error(err, errlen, path,
			    (struct conf_pos){ 0, 0 }, "unknown key");
			goto out;
		}
		base = (char *)base + e->off;
		schema = e->sub;
	}
	node.type = CN_SCALAR;
	if (conf_apply_scalar(&ctx, e, &node, value, base) != 0) {
		r = MT_ECONFIG;
		conf_ctx_finish(&ctx, err, errlen);
		goto out;
	}
	r = 0;
 out:
	free(copy);
	return r;
}

/* --- freeing and comparing ---------------------------------------------- */

void
conf_free(const struct conf_schema *schema, void *base)
{
	const struct conf_entry *e;
	char *field, *elems;
	size_t i, n;

	for (e = schema->entries; e->key != NULL; e++) {
		field = (char *)base + e->off;
		switch (e->kind) {
		case CONF_STRING:
			free(*(char **)field);
			*(char **)field = NULL;
			break;
		case CONF_SECRET:
			free_secret(*(char **)field);
			*(char **)field = NULL;
			break;
		case CONF_STRLIST:
			conf_strlist_free(*(char ***)field);
			*(char ***)field = NULL;
			break;
		case CONF_STRMAP:
			conf_map_free((struct conf_map *)field,
			    e->flags & CONF_SECRETVAL);
			break;
		case CONF_TABLE:
			conf_free(e->sub, field);
			break;
		case CONF_NAMED:
		case CONF_LIST:
			elems = *(char **)field;
			n = *(size_t *)((char *)base + e->count_off);
			for (i = 0; elems != NULL && i < n; i++) {
				if (e->kind == CONF_NAMED)
					free(*(char **)(elems +
					    i * e->sub->size));
				conf_free(e->sub, elems + i * e->sub->size);
			}
			free(elems);
			*(char **)field = NULL;
			*(size_t *)((char *)base + e->count_off) = 0;
			break;
		default:
			break;
		}
	}
	if (schema->free != NULL)
		schema->free(base);
}

static int
conf_str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

int
conf_equal(const struct conf_schema *schema, const void *a, const void *b,
    unsigned mask)
{
	const struct conf_entry *e;
	const char *fa, *fb, *ea, *eb;
	const struct conf_map *ma, *mb;
	char *const *la, *const *lb;
	size_t i, n;

	for (e = schema->entries; e->key != NULL; e++) {
		if ((e->flags & mask) != mask)
			continue;
		fa = (const char *)a + e->off;
		fb = (const char *)b + e->off;
		switch (e->kind) {
		case CONF_STRING:
		case CONF_SECRET:
			if (!conf_str_eq(*(char *const *)fa,
			    *(char *const *)fb))
				return 0;
			break;
		case CONF_BOOL:
		case CONF_ENUM:
			if (*(const int *)fa != *(const int *)fb)
				return 0;
			break;
		case CONF_INT:
		case CONF_SIZE:
		case CONF_DURATION:
			if (memcmp(fa, fb, sizeof(uint64_t)) != 0)
				return 0;
			break;
		case CONF_STRLIST:
			la = *(char **const *)fa;
			lb = *(char **const *)fb;
			if ((la == NULL) != (lb == NULL) ||
			    conf_strlist_len(la) != conf_strlist_len(lb))
				return 0;
			for (i = 0; la != NULL && la[i] != NULL; i++) {
				if (strcmp(la[i], lb[i]) != 0)
					return 0;
			}
			break;
		case CONF_STRMAP:
			ma = (const struct conf_map *)fa;
			mb = (const struct conf_map *)fb;
			if (ma->n != mb->n)
				return 0;
			for (i = 0; i < ma->n; i++) {
				if (!conf_str_eq(mb->v[i].value,
				    conf_map_get(ma, mb->v[i].key)))
					return 0;
			}
			break;
		case CONF_TABLE:
			if (!conf_equal(e->sub, fa, fb, 0))
				return 0;
			break;
		case CONF_NAMED:
		case CONF_LIST:
			n = *(const size_t *)((const char *)a + e->count_off);
			if (n != *(const size_t *)((const char *)b +
			    e->count_off))
				return 0;
			ea = *(char *const *)fa;
			eb = *(char *const *)fb;
			for (i = 0; i < n; i++) {
				if (e->kind == CONF_NAMED && !conf_str_eq(
				    *(char *const *)(ea + i * e->sub->size),
				    *(char *const *)(eb + i * e->sub->size)))
					return 0;
				if (!conf_equal(e->sub, ea + i * e->sub->size,
				    eb + i * e->sub->size, 0))
					return 0;
			}
			break;
		}
	}
	return 1;
}

static void
conf_help_walk(const struct conf_schema *schema, const char *prefix,
    FILE *fp)
{
	const struct conf_entry *e;
	char key[CONF_PATH_MAX];

	for (e = schema->entries; e->key != NULL; e++) {
		if (e->kind == CONF_NAMED)
			snprintf(key, sizeof(key), "%s%s.NAME", prefix, e->key);
		else if (e->kind == CONF_LIST)
			snprintf(key, sizeof(key), "%s%s[]", prefix, e->key);
		else
			snprintf(key, sizeof(key), "%s%s", prefix, e->key);
		fprintf(fp, "%-34s %s%s\n", key, e->help ? e->help : "",
		    (e->flags & CONF_REQUIRED) ? " (required)" : "");
		if (e->kind == CONF_SECRET)
			fprintf(fp, "%s_file%*s a file holding %s instead\n",
			    key, strlen(key) + 5 < 34 ?
			    (int)(34 - strlen(key) - 5) : 0, "", e->key);
		if (e->sub != NULL) {
			strncat(key, ".", sizeof(key) - strlen(key) - 1);
			conf_help_walk(e->sub, key, fp);
		}
	}
}

void
conf_help(const struct conf_schema *schema, FILE *fp)
{
	conf_help_walk(schema, "", fp);
}
