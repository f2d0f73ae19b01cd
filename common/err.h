/*
 * One error-code enum for all of mcptun.  Functions that can fail return 0
 * or a negative MT_E* code; mt_strerror() turns a code into a sentence.
 */
#ifndef MCPTUN_ERR_H
#define MCPTUN_ERR_H

enum mt_err {
	MT_OK = 0,
	MT_ENOMEM = -1,		/* allocation failed */
	MT_EINVAL = -2,		/* invalid argument */
	MT_ESHORT = -3,		/* input shorter than its header says */
	MT_ETOOBIG = -4,	/* size limit exceeded */
	MT_EVERSION = -5,	/* unsupported protocol version */
	MT_ETYPE = -6,		/* unknown frame or message type */
	MT_EMALFORMED = -7,	/* malformed input */
	MT_ENOTFOUND = -8,	/* no such thing (server, stream, session) */
	MT_EDENIED = -9,	/* not allowed by policy */
	MT_EAUTH = -10,		/* authentication failed */
	MT_EIO = -11,		/* system I/O error; see errno */
	MT_ECONFIG = -12,	/* configuration error */
	MT_EWINDOW = -13,	/* flow-control window exceeded */
	MT_ECLOSED = -14,	/* the link, stream or session is closed */
	MT_ETIMEOUT = -15,	/* deadline passed */
	MT_ELIMIT = -16,	/* a configured count limit was reached */
	MT_EUPSTREAM = -17,	/* upstream failed or misbehaved */
	MT_EAGAIN = -18,	/* no room right now; try again later */
	MT_ESTATE = -19,	/* operation not valid in the current state */
	MT_ERR_MIN = -20
};

/* Returns a static sentence describing code; never NULL. */
const char *mt_strerror(int code);

#endif
