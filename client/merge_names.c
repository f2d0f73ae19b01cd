/*
 * Names on the merged endpoint: every tool (and prompt) of every server
 * behind one MCP session is shown as "<server>_<name>", which must match
 * Claude's ^[a-zA-Z0-9_-]{1,64}$.
 *
 * Upstream names may hold any character and be of any length, so the
 * composed name is sanitised (anything else becomes '_') and, when too
 * long, cut and given a short hash suffix.  Two pairs can still meet on
 * one name ("a_b"+"c" and "a"+"b_c", or two names that sanitise alike):
 * then, in (server, name) order, the first keeps it and the others get a
 * suffix hashed from (server, name, attempt), trying attempts until one
 * is free.  Nothing here fails: any pair gets a valid name.
 *
 * Names are stable for a session: a pair named once keeps its name, even
 * if later pages or servers would have ordered things differently, so an
 * agent's earlier tools/list stays callable.  When a server is removed its
 * names stay behind as tombstones: a call to one is answered "removed"
 * rather than guessed onto another server, and the server gets the same
 * names back if a later reload restores it.
 *
 * The table is a plain array searched linearly; a session shows at most a
 * few hundred tools.  No I/O and no global state, for unit tests.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/merge.h"
#include "common/xmalloc.h"

struct mname {
	char	*exposed;
	char	*server;	/* NULL for a reserved name */
	char	*name;
	int	 gone;		/* its server was removed */
};

struct mnames {
	struct mname	*v;
	size_t		 n;
	size_t		 cap;
	size_t		 pairs;
};

static int
mname_char_ok(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '_' || c == '-';
}

int
mname_valid(const char *name)
{
	size_t i;

	for (i = 0; name[i] != '\0'; i++)
		if (i >= MNAME_MAX || !mname_char_ok((unsigned char)name[i]))
			return 0;
	return i > 0;
}

/* FNV-1a, 64 bits: small, stable across platforms, good enough here. */
static uint64_t
mname_fnv(uint64_t h, const void *p, size_t len)
{
	const unsigned char *s = p;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

void
mname_compose(const char *server, const char *name, unsigned attempt,
    char *out)
{
	static const char hex[] = "0123456789abcdef";
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t n = 0, i, cut;
	char num[16];
	const char *p;

	for (p = server; *p != '\0' && n < MNAME_MAX + 1; p++)
		out[n++] = mname_char_ok((unsigned char)*p) ? *p : '_';
	if (n < MNAME_MAX + 1)
		out[n++] = '_';
	for (p = name; *p != '\0' && n < MNAME_MAX + 1; p++)
		out[n++] = mname_char_ok((unsigned char)*p) ? *p : '_';
	if (attempt == 0 && n <= MNAME_MAX) {
		out[n] = '\0';
		return;
	}
	/* Too long, or taken: cut and add a hash of the whole pair. */
	h = mname_fnv(h, server, strlen(server) + 1);
	h = mname_fnv(h, name, strlen(name) + 1);
	snprintf(num, sizeof(num), "%u", attempt);
	h = mname_fnv(h, num, strlen(num));
	cut = MNAME_MAX - 1 - MNAME_HASHLEN;
	if (n > cut)
		n = cut;
	out[n++] = '-';
	for (i = 0; i < MNAME_HASHLEN; i++)
		out[n++] = hex[(h >> (4 * (MNAME_HASHLEN - 1 - i))) & 0xf];
	out[n] = '\0';
}

struct mnames *
mnames_new(void)
{
	return xcalloc(1, sizeof(struct mnames));
}

void
mnames_free(struct mnames *t)
{
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->n; i++) {
		free(t->v[i].exposed);
		free(t->v[i].server);
		free(t->v[i].name);
	}
	free(t->v);
	free(t);
}

static struct mname *
mnames_find_exposed(const struct mnames *t, const char *exposed)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (strcmp(t->v[i].exposed, exposed) == 0)
			return &t->v[i];
	return NULL;
}

static struct mname *
mnames_find_pair(const struct mnames *t, const char *server, const char *name)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (t->v[i].server != NULL &&
		    strcmp(t->v[i].server, server) == 0 &&
		    strcmp(t->v[i].name, name) == 0)
			return &t->v[i];
	return NULL;
}

static void
mnames_add(struct mnames *t, const char *exposed, const char *server,
    const char *name)
{
	struct mname *e;

	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->v = xrealloc(t->v, t->cap * sizeof(*t->v));
	}
	e = &t->v[t->n++];
	e->exposed = xstrdup(exposed);
	e->server = server != NULL ? xstrdup(server) : NULL;
	e->name = name != NULL ? xstrdup(name) : NULL;
	e->gone = 0;
	if (server != NULL)
		t->pairs++;
}

void
mnames_reserve(struct mnames *t, const char *exposed)
{
	if (mnames_find_exposed(t, exposed) == NULL)
		mnames_add(t, exposed, NULL, NULL);
}

struct mpair {
	const char	*server;
	const char	*name;
	size_t		 idx;
};

static int
mpair_cmp(const void *a, const void *b)
{
	const struct mpair *x = a, *y = b;
	int c;

	if ((c = strcmp(x->server, y->server)) != 0)
		return c;
	return strcmp(x->name, y->name);
}

void
mnames_assign(struct mnames *t, size_t n, const char *const *servers,
    const char *const *names, const char **out)
{
	struct mpair *todo;
	struct mname *e;
	char cand[MNAME_MAX + 1];
	size_t i, k = 0;
	unsigned attempt;

	todo = xcalloc(n ? n : 1, sizeof(*todo));
	for (i = 0; i < n; i++) {
		if ((e = mnames_find_pair(t, servers[i], names[i])) != NULL) {
			if (e->gone) {		/* its server came back */
				e->gone = 0;
				t->pairs++;
			}
			out[i] = e->exposed;
		} else {
			todo[k].server = servers[i];
			todo[k].name = names[i];
			todo[k].idx = i;
			k++;
		}
	}
	qsort(todo, k, sizeof(*todo), mpair_cmp);
	for (i = 0; i < k; i++) {
		/* The same pair twice in one batch: named once. */
		if ((e = mnames_find_pair(t, todo[i].server,
		    todo[i].name)) == NULL) {
			for (attempt = 0; ; attempt++) {
				mname_compose(todo[i].server, todo[i].name,
				    attempt, cand);
				if (mnames_find_exposed(t, cand) == NULL)
					break;
			}
			mnames_add(t, cand, todo[i].server, todo[i].name);
		}
	}
	/* The strings stay put when the array grows; look them up last. */
	for (i = 0; i < k; i++)
		out[todo[i].idx] = mnames_find_pair(t, todo[i].server,
		    todo[i].name)->exposed;
	free(todo);
}

int
mnames_lookup(const struct mnames *t, const char *exposed,
    const char **server, const char **name)
{
	const struct mname *e = mnames_find_exposed(t, exposed);

	if (e == NULL || e->server == NULL || e->gone)
		return 0;
	*server = e->server;
	*name = e->name;
	return 1;
}

const char *
mnames_gone(const struct mnames *t, const char *exposed)
{
	const struct mname *e = mnames_find_exposed(t, exposed);

	return e != NULL && e->gone ? e->server : NULL;
}

const char *
mnames_exposed(const struct mnames *t, const char *server, const char *name)
{
	const struct mname *e = mnames_find_pair(t, server, name);

	return e != NULL && !e->gone ? e->exposed : NULL;
}

void
mnames_drop_server(struct mnames *t, const char *server)
{
	size_t i;

	for (i = 0; i < t->n; i++) {
		if (t->v[i].server != NULL && !t->v[i].gone &&
		    strcmp(t->v[i].server, server) == 0) {
			t->v[i].gone = 1;
			t->pairs--;
		}
	}
}

size_t
mnames_count(const struct mnames *t)
{
	return t->pairs;
}
