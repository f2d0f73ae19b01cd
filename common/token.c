/*
 * Token hashing, constant-time comparison and the process CSPRNG; see
 * token.h.  Token bytes and their hashes are wiped from the stack after
 * use so that a later stack read (a bug elsewhere) cannot leak them.
 */
#include "common/token.h"
#include "common/util.h"
#include "common/err.h"

#include <string.h>
#include <unistd.h>

#include <mbedtls/sha256.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>

/* Personalisation string for the DRBG (mixed into the seed). */
#define TOKEN_DRBG_PERS	"mcptun rand_bytes"

static struct {
	int				 ready;
	pid_t				 pid;
	mbedtls_entropy_context		 entropy;
	mbedtls_ctr_drbg_context	 drbg;
} token_rng;

int
token_sha256(const char *token, uint8_t out[TOKEN_HASH_LEN])
{
	if (token == NULL || out == NULL)
		return MT_EINVAL;
	if (mbedtls_sha256((const unsigned char *)token, strlen(token), out,
	    0) != 0)
		return MT_EINVAL;
	return 0;
}

int
token_sha256_hex(const char *token, char out[TOKEN_HASH_HEXLEN + 1])
{
	uint8_t h[TOKEN_HASH_LEN];
	int r;

	if (out == NULL)
		return MT_EINVAL;
	if ((r = token_sha256(token, h)) != 0)
		return r;
	hex_encode(h, sizeof(h), out);
	mem_wipe(h, sizeof(h));
	return 0;
}

int
token_hash_parse(const char *hex, uint8_t out[TOKEN_HASH_LEN])
{
	return hex_decode(hex, out, TOKEN_HASH_LEN);
}

int
ct_equal(const void *a, const void *b, size_t n)
{
	const volatile uint8_t *pa = a, *pb = b;
	uint8_t diff = 0;
	size_t i;

	/*
	 * Accumulate every difference and decide once at the end; volatile
	 * keeps the compiler from turning this into an early-exit memcmp.
	 */
	for (i = 0; i < n; i++)
		diff |= pa[i] ^ pb[i];
	return diff == 0;
}

int
token_verify(const char *token, const uint8_t hash[TOKEN_HASH_LEN])
{
	uint8_t h[TOKEN_HASH_LEN];
	int ok;

	if (token == NULL || *token == '\0' || hash == NULL)
		return 0;
	if (token_sha256(token, h) != 0)
		return 0;
	ok = ct_equal(h, hash, sizeof(h));
	mem_wipe(h, sizeof(h));
	return ok;
}

/* Seeds the DRBG on first use, and reseeds after a fork. */
static int
token_rng_ready(void)
{
	pid_t pid = getpid();

	if (token_rng.ready) {
		if (token_rng.pid == pid)
			return 0;
		/*
		 * A forked child shares the parent's DRBG state and would
		 * repeat its output; mix in fresh entropy first.
		 */
		if (mbedtls_ctr_drbg_reseed(&token_rng.drbg, NULL, 0) != 0)
			return MT_EIO;
		token_rng.pid = pid;
		return 0;
	}
	mbedtls_entropy_init(&token_rng.entropy);
	mbedtls_ctr_drbg_init(&token_rng.drbg);
	if (mbedtls_ctr_drbg_seed(&token_rng.drbg, mbedtls_entropy_func,
	    &token_rng.entropy, (const unsigned char *)TOKEN_DRBG_PERS,
	    sizeof(TOKEN_DRBG_PERS) - 1) != 0) {
		mbedtls_ctr_drbg_free(&token_rng.drbg);
		mbedtls_entropy_free(&token_rng.entropy);
		return MT_EIO;
	}
	token_rng.pid = pid;
	token_rng.ready = 1;
	return 0;
}

int
rand_bytes(void *buf, size_t n)
{
	uint8_t *p = buf;
	size_t chunk;
	int r;

	if (n == 0)
		return 0;
	if (buf == NULL)
		return MT_EINVAL;
	if ((r = token_rng_ready()) != 0)
		return r;
	/* The DRBG hands out at most MBEDTLS_CTR_DRBG_MAX_REQUEST per call. */
	while (n > 0) {
		chunk = n < MBEDTLS_CTR_DRBG_MAX_REQUEST ? n :
		    MBEDTLS_CTR_DRBG_MAX_REQUEST;
		if (mbedtls_ctr_drbg_random(&token_rng.drbg, p, chunk) != 0)
			return MT_EIO;
		p += chunk;
		n -= chunk;
	}
	return 0;
}

int
rand_hex_id(char *out, size_t nbytes)
{
	uint8_t b[32];
	size_t chunk;
	int r = 0;

	if (out == NULL || nbytes == 0)
		return MT_EINVAL;
	/* Fill in pieces so that any length works without allocating. */
	while (nbytes > 0) {
		chunk = nbytes < sizeof(b) ? nbytes : sizeof(b);
		if ((r = rand_bytes(b, chunk)) != 0)
			goto out;
		hex_encode(b, chunk, out);
		out += 2 * chunk;
		nbytes -= chunk;
	}
 out:
	mem_wipe(b, sizeof(b));
	return r;
}
