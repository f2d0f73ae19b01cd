/*
 * The merged endpoint (/mcp/<tunnel>): one MCP session in front of every
 * server of the tunnel the agent may use.
 *
 * Two halves:
 *   merge_names.c - pure: how "<server>_<tool>" names are made within
 *                   ^[a-zA-Z0-9_-]{1,64}$ (sanitised, truncated with a
 *                   hash suffix, collisions resolved deterministically)
 *                   and the per-session table that maps them back;
 *   merge.c       - the router: a merged session owns one member session
 *                   (session.c) per server, answers initialize and ping
 *                   itself, fans list requests out and joins the answers,
 *                   routes calls back by name or URI, and remaps request
 *                   ids and progress tokens so members never collide.
 * Policy (allowlist, tool filters, timeouts, audit) stays in session.c:
 * each member is an ordinary session whose "agent side" is the merge.
 */
#ifndef MCPTUN_MERGE_H
#define MCPTUN_MERGE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct client_conf;
struct merge;
struct session;

/* ---- merge_names.c ------------------------------------------------------ */

#define MNAME_MAX	64	/* Claude's limit for a tool name */
#define MNAME_HASHLEN	6	/* hex digits of a disambiguating suffix */

/* Returns 1 if name matches ^[a-zA-Z0-9_-]{1,64}$. */
int	 mname_valid(const char *name);
/*
 * Writes to out (MNAME_MAX + 1 bytes) the exposed name of (server, name):
 * "server_name" with every character outside [A-Za-z0-9_-] replaced by
 * '_'.  With attempt > 0, or when that does not fit in MNAME_MAX, the
 * text is cut and "-" plus MNAME_HASHLEN hex digits of a hash of (server,
 * name, attempt) is appended, so the result is always valid and the same
 * inputs always give the same output.
 */
void	 mname_compose(const char *server, const char *name, unsigned attempt,
	    char *out);

/* A table exposed name <-> (server, original name); opaque. */
struct mnames;

struct mnames *mnames_new(void);
void	 mnames_free(struct mnames *t);
/* Keeps exposed for ourselves (e.g. "mcptun_tools"); no pair maps to it. */
void	 mnames_reserve(struct mnames *t, const char *exposed);
/*
 * Names n pairs (servers[i], names[i]).  A pair named before keeps its
 * name, so names stay stable within a session.  New pairs are taken in
 * (server, name) order and get mname_compose(attempt 0), or the first
 * attempt that is free: the outcome depends only on the table and the
 * set of pairs, never on their order in the call, and never fails.
 * out[i] points into the table and lives until the pair is dropped.
 */
void	 mnames_assign(struct mnames *t, size_t n, const char *const *servers,
	    const char *const *names, const char **out);
/*
 * Looks up an exposed name: returns 1 and sets *server and *name (into
 * the table), or 0 if unknown or reserved.
 */
int	 mnames_lookup(const struct mnames *t, const char *exposed,
	    const char **server, const char **name);
/* The exposed name of a pair (NULL if unknown or its server is gone). */
const char *mnames_exposed(const struct mnames *t, const char *server,
	    const char *name);
/*
 * Marks every pair of server gone (it was removed): their names no longer
 * resolve, but stay taken, and come back if the server's pairs do.
 */
void	 mnames_drop_server(struct mnames *t, const char *server);
/* The server an exposed name belonged to if that server is gone, or NULL. */
const char *mnames_gone(const struct mnames *t, const char *exposed);
/* Number of live pairs (reserved names and gone pairs not counted). */
size_t	 mnames_count(const struct mnames *t);

/* ---- merge.c: what session.c uses ------------------------------------- */

/*
 * A new merge for the merged session s on stream, for agent.  servers[]
 * is the relay's list from OPEN; allow[] (may be NULL) the agent's server
 * patterns for this tunnel, so servers added by a later reload can be
 * shown.  Members are opened when the agent sends initialize.  Returns
 * the merge, or NULL with a sentence in why when no server is visible.
 */
struct merge *merge_new(struct session *s, uint32_t stream, const char *agent,
	    const char *const *servers, size_t nservers,
	    const char *const *allow, size_t nallow,
	    const struct client_conf *conf, char *why, size_t whylen);
/* One message (not a batch) from the agent. */
void	 merge_input(struct merge *m, json_t *msg);
/* The link has room again: drain every member. */
void	 merge_drain(struct merge *m);
/*
 * The config was reloaded: members of removed servers end, new visible
 * servers are opened, filters apply; the agent is told with list_changed
 * when its tool set changes.  Returns 1 if the session was affected.
 */
int	 merge_reconfigure(struct merge *m, const struct client_conf *conf);
/* The relay closed the stream: end every member quietly. */
void	 merge_close(struct merge *m);
/* Frees m (after merge_close); members are already gone. */
void	 merge_free(struct merge *m);

/* ---- merge.c: what member sessions (session.c) call ------------------- */

/* A member's message towards the agent; 0 or link_send()'s error. */
int	 merge_member_output(struct merge *m, struct session *member,
	    const void *msg, size_t len);
/* The member ended (upstream exit, removal); it frees itself after. */
void	 merge_member_ended(struct merge *m, struct session *member,
	    uint16_t code, const char *why);
/* A member's upstream is full / has room: pause or resume the stream. */
void	 merge_member_pause(struct merge *m);
void	 merge_member_resume(struct merge *m);

/* ---- session.c: what merge.c uses ------------------------------------- */

/*
 * Opens a member session to server for a merge (policy as for a stream:
 * allowlist, max_sessions, upstream start).  Returns 0 and *out, or a
 * CLOSE_* code with a sentence in why.
 */
int	 session_member_open(struct merge *m, uint32_t stream,
	    const char *server, const char *agent, struct session **out,
	    char *why, size_t whylen);
/* One message from the merge, through the member's policy. */
void	 session_member_input(struct session *s, json_t *msg);
/* Ends a member quietly (the agent went away), as session_close. */
void	 session_member_close(struct session *s);
/* The member's server entry (for its filters); NULL once ended. */
const struct server_conf *session_member_server(const struct session *s);

#endif
