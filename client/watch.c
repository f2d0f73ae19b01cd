/*
 * The allowlist file watch: inotify on the directories that hold the
 * file, adopted into the lws loop, debounced, and filtered by a hash of
 * the file's contents so only a real change reloads.  See watch.h.
 */
#include <sys/inotify.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libwebsockets.h>
#include <mbedtls/sha256.h>

#include "client/client.h"
#include "client/watch.h"
#include "common/err.h"
#include "common/log.h"
#include "common/xmalloc.h"

#define WATCH_MASK	(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | \
			    IN_CREATE | IN_DELETE | IN_ATTRIB | IN_MODIFY | \
			    IN_DELETE_SELF | IN_MOVE_SELF)
#define WATCH_MAX_BYTES	(16 * 1024 * 1024)

struct watch {
	struct lws		*wsi;
	int			 fd;
	char			*path;
	void			(*on_change)(void);
	uint8_t			 hash[32];
	int			 have_hash;	/* 0: unreadable when seen */
	int			 missing_logged;
	lws_sorted_usec_list_t	 sul;
};

static struct watch W = { .fd = -1 };

/*
 * Hashes the file's contents into h; returns 0, or MT_EIO (errno set)
 * if it cannot be read now (an editor may be between unlink and rename).
 */
static int
watch_hash(const char *path, uint8_t *h)
{
	mbedtls_sha256_context c;
	unsigned char buf[8192];
	size_t total = 0;
	ssize_t n;
	int fd, rc = MT_EIO;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return MT_EIO;
	mbedtls_sha256_init(&c);
	if (mbedtls_sha256_starts(&c, 0) != 0)
		goto out;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		total += (size_t)n;
		if (total > WATCH_MAX_BYTES) {
			errno = EFBIG;
			goto out;
		}
		if (mbedtls_sha256_update(&c, buf, (size_t)n) != 0)
			goto out;
	}
	if (n == 0 && mbedtls_sha256_finish(&c, h) == 0)
		rc = 0;
 out:
	mbedtls_sha256_free(&c);
	close(fd);
	return rc;
}

void
watch_rehash(void)
{
	if (W.path != NULL)
		W.have_hash = watch_hash(W.path, W.hash) == 0;
}

static void
watch_fire(lws_sorted_usec_list_t *sul)
{
	uint8_t h[32];

	if (watch_hash(W.path, h) != 0) {
		if (!W.missing_logged)
			log_warn("config watch: cannot read %s; keeping the "
			    "running allowlist", W.path);
		W.missing_logged = 1;
		W.have_hash = 0;
		return;
	}
	W.missing_logged = 0;
	if (W.have_hash && memcmp(h, W.hash, sizeof(h)) == 0) {
		log_debug("config watch: %s unchanged", W.path);
		return;
	}
	memcpy(W.hash, h, sizeof(h));
	W.have_hash = 1;
	W.on_change();
}

/* Reads (and forgets) the pending events; arms the debounce timer. */
static void
watch_events(void)
{
	/* The events only say "look again": their contents do not matter. */
	char buf[4096] __attribute__((aligned(8)));
	ssize_t n;

	while ((n = read(W.fd, buf, sizeof(buf))) > 0)
		;
	if (n == -1 && errno != EAGAIN && errno != EINTR)
		log_warn("config watch: reading inotify events");
	lws_sul_schedule(lws_get_context(W.wsi), 0, &W.sul, watch_fire,
	    (lws_usec_t)WATCH_DEBOUNCE_MS * LWS_US_PER_MS);
}

static int
watch_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	switch (reason) {
	case LWS_CALLBACK_RAW_RX_FILE:
		if (wsi != W.wsi)
			return -1;
		watch_events();
		return 0;
	case LWS_CALLBACK_RAW_CLOSE_FILE:
		if (wsi == W.wsi) {
			W.wsi = NULL;
			W.fd = -1;
			lws_sul_cancel(&W.sul);
		}
		return 0;
	default:
		return 0;
	}
}

const struct lws_protocols watch_protocol = {
	.name = WATCH_PROTOCOL_NAME,
	.callback = watch_callback,
};

/* Adds a watch on the directory holding file; 0 or -1 (logged). */
static int
watch_dir_of(int fd, const char *file)
{
	char *copy = xstrdup(file), *dir;
	int r = 0;

	dir = dirname(copy);
	if (inotify_add_watch(fd, dir, WATCH_MASK) == -1) {
		log_warn("config watch: cannot watch %s", dir);
		r = -1;
	} else
		log_debug("config watch: watching %s", dir);
	free(copy);
	return r;
}

int
watch_start(struct lws_vhost *vh, const char *path,
    void (*on_change)(void))
{
	lws_adopt_desc_t ad;
	char real[PATH_MAX];
	int fd;

	if ((fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) == -1) {
		log_warn("config watch: inotify unavailable; reload with "
		    "SIGHUP");
		return MT_EIO;
	}
	if (watch_dir_of(fd, path) != 0) {
		close(fd);
		return MT_EIO;
	}
	/* A symlink's target may live elsewhere (a mounted ConfigMap). */
	if (realpath(path, real) != NULL && strcmp(real, path) != 0)
		(void)watch_dir_of(fd, real);
	memset(&ad, 0, sizeof(ad));
	ad.vh = vh;
	ad.type = LWS_ADOPT_RAW_FILE_DESC;
	ad.fd.filefd = (lws_filefd_type)(intptr_t)fd;
	ad.vh_prot_name = WATCH_PROTOCOL_NAME;
	if ((W.wsi = lws_adopt_descriptor_vhost_via_info(&ad)) == NULL) {
		log_warnx("config watch: cannot adopt the inotify descriptor; "
		    "reload with SIGHUP");
		close(fd);
		return MT_EIO;
	}
	W.fd = fd;
	W.path = xstrdup(path);
	W.on_change = on_change;
	watch_rehash();
	log_debug("config watch: on %s", path);
	return 0;
}

void
watch_stop(void)
{
	lws_sul_cancel(&W.sul);
	if (W.wsi != NULL) {
		lws_set_timeout(W.wsi, PENDING_TIMEOUT_KILLED_BY_PARENT,
		    LWS_TO_KILL_ASYNC);
		W.wsi = NULL;
	}
	free(W.path);
	W.path = NULL;
	W.fd = -1;
}
