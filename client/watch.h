/*
 * Watching the allowlist file (watch.c), so an edit is applied without a
 * SIGHUP: inotify on the file's directory (and on the directory of the
 * file a symlink points to), adopted into lws as a raw file on the
 * "mcptun-watch" protocol, which must be in the vhost's protocol list.
 *
 * Every event in those directories arms a 300 ms timer; when it fires the
 * file's contents are hashed and the callback runs only if they differ
 * from the last contents seen.  So editors that write a new file and
 * rename it over the old one, Kubernetes' ..data symlink swaps and bursts
 * of writes all end in one reload, and touching the file in none.
 */
#ifndef MCPTUN_WATCH_H
#define MCPTUN_WATCH_H

#include <libwebsockets.h>

#define WATCH_PROTOCOL_NAME	"mcptun-watch"
#define WATCH_DEBOUNCE_MS	300

extern const struct lws_protocols watch_protocol;

/*
 * Starts watching path; on_change runs from the loop after a change of
 * its contents.  Returns 0, or MT_E* (logged; SIGHUP still works).
 */
int	watch_start(struct lws_vhost *vh, const char *path,
	    void (*on_change)(void));
/* Records the file's contents as seen (after a reload by SIGHUP). */
void	watch_rehash(void);
/* Stops watching (shutdown). */
void	watch_stop(void);

#endif
