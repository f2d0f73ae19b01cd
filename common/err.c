/* Sentences for the shared error codes in err.h. */
#include "common/err.h"

const char *
mt_strerror(int code)
{
	switch (code) {
	case MT_OK:		return "success";
	case MT_ENOMEM:		return "out of memory";
	case MT_EINVAL:		return "invalid argument";
	case MT_ESHORT:		return "input is shorter than its header says";
	case MT_ETOOBIG:	return "size limit exceeded";
	case MT_EVERSION:	return "unsupported protocol version";
	case MT_ETYPE:		return "unknown message type";
	case MT_EMALFORMED:	return "malformed input";
	case MT_ENOTFOUND:	return "not found";
	case MT_EDENIED:	return "not allowed";
	case MT_EAUTH:		return "authentication failed";
	case MT_EIO:		return "I/O error";
	case MT_ECONFIG:	return "configuration error";
	case MT_EWINDOW:	return "flow-control window exceeded";
	case MT_ECLOSED:	return "closed";
	case MT_ETIMEOUT:	return "timed out";
	case MT_ELIMIT:		return "limit reached";
	case MT_EUPSTREAM:	return "upstream failed";
	case MT_EAGAIN:		return "try again later";
	case MT_ESTATE:		return "not valid in the current state";
	}
	return "unknown error";
}
