/*
 * Output offload (offload.c): a tools/call result larger than the
 * server's threshold (offload.threshold_tokens, counted as bytes/4 of the
 * response) stays inside the network.  Its text goes to a file in the
 * spool directory and the agent gets a short answer instead: how big it
 * was, a preview, and a resource_link to mcptun://offload/<id>.  The
 * agent reads what it needs with the tools added to the server's list
 * (mcptun_read, mcptun_grep, mcptun_outputs) or resources/read of the URI.
 *
 * Every stored output belongs to one agent session (struct offload_owner);
 * any other session or agent is told "not found".  Outputs go at TTL,
 * oldest first when the directory's quota needs room, and when their
 * session ends (unless keep_after_session).
 *
 * Two ways in, one format out:
 *  - offload_message(): a response already whole in memory (any upstream
 *    kind; postgres and http results arrive so);
 *  - a sink (offload_sink_*): an upstream that reads a message in pieces
 *    (stdio) hands the rest of a large message to the sink as it arrives,
 *    so it never sits whole in memory; see on_big in upstream.h.
 */
#ifndef MCPTUN_OFFLOAD_H
#define MCPTUN_OFFLOAD_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct offload_conf;
struct offload_sink;

#define OFFLOAD_ID_LEN		32	/* hex digits of an output id */
#define OFFLOAD_URI_PREFIX	"mcptun://offload/"

/* Who a stored output belongs to: one agent session. */
struct offload_owner {
	uint64_t	 key;		/* from offload_owner_key() */
	const char	*agent;
	const char	*server;
};

/* What an offload or a read did, for the audit log. */
struct offload_info {
	char		 id[OFFLOAD_ID_LEN + 1];	/* "" if none */
	uint64_t	 bytes;		/* stored, or read from the output */
};

/*
 * Called with the answer that goes to the agent in place of a large
 * result (or a JSON-RPC error for its id), or with a local tool's answer.
 * reply is valid during the call only.
 */
typedef void offload_done_cb(void *arg, const uint8_t *reply, size_t len,
    const struct offload_info *info);

/* The size in bytes past which results are offloaded; 0 = never. */
size_t	 offload_threshold(const struct offload_conf *oc);

/* A new owner key for a session (never 0, never reused). */
uint64_t offload_owner_key(void);
/*
 * The session with key ended: cancels its local tool calls (no callback
 * is made for them afterwards) and removes its outputs, except those
 * stored with keep_after_session (they stay until TTL or quota).
 */
void	 offload_owner_end(uint64_t key);

/*
 * A whole response msg (len bytes, over the threshold) to the tools/call
 * of tool.  Stores its text and returns 0 with *replyp (caller frees) the
 * small answer for the agent, or a JSON-RPC error for the response's id
 * when the output could not be stored (larger than the quota, malformed).
 * Returns MT_EINVAL if msg is not a result (pass it on as is) or MT_EIO
 * if the spool directory cannot be used (logged).
 */
int	 offload_message(const struct offload_conf *oc,
	    const struct offload_owner *who, const char *tool,
	    const uint8_t *msg, size_t len, char **replyp, size_t *replylenp,
	    struct offload_info *info);

/*
 * Looks at the first len bytes of a message still arriving.  Returns 0
 * and sets *idp (a new reference) if it is a JSON-RPC response whose
 * "result" object has begun after its id (a string or an integer);
 * otherwise MT_EINVAL (not one: read it into memory as usual).
 */
int	 offload_probe(const uint8_t *head, size_t len, json_t **idp);

/*
 * A sink for the response to the tools/call of tool, written in pieces
 * with offload_sink_write() from its first byte.  At the end of the
 * message offload_sink_end() calls done(arg, ...) once with the answer
 * for the agent and frees the sink; offload_sink_abort() frees it without
 * a call and removes what was stored (the message was cut off).  Returns
 * NULL if the spool directory cannot be used (logged).
 */
struct offload_sink *offload_sink_open(const struct offload_conf *oc,
	    const struct offload_owner *who, const char *tool,
	    offload_done_cb *done, void *arg);
void	 offload_sink_write(struct offload_sink *k, const uint8_t *p,
	    size_t n);
void	 offload_sink_end(struct offload_sink *k);
void	 offload_sink_abort(struct offload_sink *k);

/* The answer for an output could not be delivered: remove the output. */
void	 offload_discard(uint64_t key, const char *id);

/*
 * Returns 1 if req is answered here rather than by the server: a
 * tools/call of mcptun_read, mcptun_grep or mcptun_outputs, or a
 * resources/read of an mcptun://offload/ URI, while oc offloads.
 */
int	 offload_is_local(const json_t *req, const struct offload_conf *oc);
/*
 * Answers the local request req (see offload_is_local) for who: done is
 * called later from a timer, never from inside this call, unless the
 * owner ends first.
 */
void	 offload_call(const struct offload_conf *oc,
	    const struct offload_owner *who, const json_t *req,
	    offload_done_cb *done, void *arg);
/*
 * Appends the local tools to a tools/list result (the last page: one
 * without nextCursor) while oc offloads.  Returns how many were added.
 */
size_t	 offload_add_tools(json_t *result, const struct offload_conf *oc);

#endif
