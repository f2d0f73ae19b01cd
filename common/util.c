/*
 * Small shared helpers; see util.h.  Parsers here read config values, so
 * they are strict: no signs, no fractions, no silent overflow, no
 * trailing junk.  Digits are parsed by hand because strtoull accepts
 * leading blanks and a minus sign and wraps negative values.
 */
#include "common/util.h"
#include "common/err.h"

#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <ctype.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct util_unit {
	const char	*name;
	uint64_t	 mult;
};

/* "" (no unit) is handled by the caller, since its meaning differs. */
static const struct util_unit size_units[] = {
	{ "b",		1ULL },
	{ "k",		1ULL << 10 },
	{ "kib",	1ULL << 10 },
	{ "kb",		1000ULL },
	{ "m",		1ULL << 20 },
	{ "mib",	1ULL << 20 },
	{ "mb",		1000ULL * 1000 },
	{ "g",		1ULL << 30 },
	{ "gib",	1ULL << 30 },
	{ "gb",		1000ULL * 1000 * 1000 },
	{ "t",		1ULL << 40 },
	{ "tib",	1ULL << 40 },
	{ "tb",		1000ULL * 1000 * 1000 * 1000 },
	{ NULL,		0 }
};

static const struct util_unit duration_units[] = {
	{ "ms",		1ULL },
	{ "s",		1000ULL },
	{ "m",		60ULL * 1000 },
	{ "h",		60ULL * 60 * 1000 },
	{ "d",		24ULL * 60 * 60 * 1000 },
	{ NULL,		0 }
};

/*
 * Parses "<digits>[blanks]<unit>" with the unit looked up in units; an
 * empty unit multiplies by bare_mult.  Returns 0 and sets *out, or
 * MT_EINVAL / MT_ETOOBIG.
 */
static int
util_parse_scaled(const char *s, const struct util_unit *units,
    uint64_t bare_mult, uint64_t *out)
{
	const struct util_unit *u;
	uint64_t v = 0, mult;
	const char *p;

	if (s == NULL || out == NULL || !isdigit((unsigned char)*s))
		return MT_EINVAL;
	for (p = s; isdigit((unsigned char)*p); p++) {
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return MT_ETOOBIG;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0') {
		/* Blanks after a bare number are trailing junk. */
		if (p != s && (p[-1] == ' ' || p[-1] == '\t'))
			return MT_EINVAL;
		mult = bare_mult;
	} else {
		for (u = units; u->name != NULL; u++)
			if (strcasecmp(p, u->name) == 0)
				break;
		if (u->name == NULL)
			return MT_EINVAL;
		mult = u->mult;
	}
	if (v != 0 && mult > UINT64_MAX / v)
		return MT_ETOOBIG;
	*out = v * mult;
	return 0;
}

int
parse_size(const char *s, uint64_t *out)
{
	return util_parse_scaled(s, size_units, 1, out);
}

int
parse_duration_ms(const char *s, uint64_t *out)
{
	return util_parse_scaled(s, duration_units, 1000, out);
}

static uint64_t
util_clock_ms(clockid_t id)
{
	struct timespec ts;

	if (clock_gettime(id, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t
now_ms(void)
{
	return util_clock_ms(CLOCK_MONOTONIC);
}

uint64_t
now_wall_ms(void)
{
	return util_clock_ms(CLOCK_REALTIME);
}

void
hex_encode(const void *src, size_t n, char *dst)
{
	static const char digits[] = "0123456789abcdef";
	const uint8_t *p = src;
	size_t i;

	for (i = 0; i < n; i++) {
		dst[2 * i] = digits[p[i] >> 4];
		dst[2 * i + 1] = digits[p[i] & 0x0f];
	}
	dst[2 * n] = '\0';
}

int
hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
hex_decode(const char *hex, uint8_t *dst, size_t n)
{
	size_t i;
	int hi, lo;

	if (hex == NULL || dst == NULL || strnlen(hex, 2 * n + 1) != 2 * n)
		return MT_EINVAL;
	/* Validate everything first so that dst is untouched on error. */
	for (i = 0; i < 2 * n; i++)
		if (hex_digit((unsigned char)hex[i]) < 0)
			return MT_EINVAL;
	for (i = 0; i < n; i++) {
		hi = hex_digit((unsigned char)hex[2 * i]);
		lo = hex_digit((unsigned char)hex[2 * i + 1]);
		dst[i] = (uint8_t)((hi << 4) | lo);
	}
	return 0;
}

void
mem_wipe(void *p, size_t n)
{
	if (p != NULL && n > 0)
		explicit_bzero(p, n);
}

int
sock_limit_unsent(int fd, int bytes)
{
#ifdef TCP_NOTSENT_LOWAT
	return setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &bytes,
	    sizeof(bytes));
#else
	(void)fd;
	(void)bytes;
	return -1;
#endif
}
