/*
 * Tunnel tokens and randomness.  The relay never stores a token, only its
 * SHA-256, and compares hashes in constant time; tokens are never logged.
 * rand_bytes is the one process-wide CSPRNG (mbedTLS CTR_DRBG seeded from
 * the platform entropy source) for session ids, ping payloads and jitter.
 * Not thread-safe: the daemons are single-threaded.
 */
#ifndef MCPTUN_TOKEN_H
#define MCPTUN_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define TOKEN_HASH_LEN		32	/* SHA-256 */
#define TOKEN_HASH_HEXLEN	64

/* Writes SHA-256(token) to out.  Returns 0 or MT_EINVAL (token NULL). */
int token_sha256(const char *token, uint8_t out[TOKEN_HASH_LEN]);
/*
 * Writes SHA-256(token) as 64 lowercase hex digits and a NUL to out (the
 * form stored in relay.yaml).  Returns 0 or MT_EINVAL.
 */
int token_sha256_hex(const char *token, char out[TOKEN_HASH_HEXLEN + 1]);
/*
 * Parses exactly 64 hex digits (either case, nothing else) into out.
 * Returns 0, or MT_EINVAL with out untouched.
 */
int token_hash_parse(const char *hex, uint8_t out[TOKEN_HASH_LEN]);
/*
 * Returns 1 if SHA-256(token) equals hash, else 0, comparing in constant
 * time.  Never negative, so "if (token_verify(...))" is safe.  A NULL or
 * empty token never matches.
 */
int token_verify(const char *token, const uint8_t hash[TOKEN_HASH_LEN]);

/*
 * Returns 1 if the n bytes at a and b are equal, else 0.  The time taken
 * depends on n only, never on the contents.
 */
int ct_equal(const void *a, const void *b, size_t n);

/*
 * Fills buf with n bytes from the process CSPRNG, seeding it on first use
 * (and again in a forked child).  Returns 0 or MT_EIO if the entropy
 * source or the DRBG failed; buf must then not be used.
 */
int rand_bytes(void *buf, size_t n);
/*
 * Writes 2*nbytes random lowercase hex digits and a NUL to out, which must
 * hold 2*nbytes + 1 bytes.  Returns 0, MT_EINVAL (nbytes 0) or MT_EIO.
 */
int rand_hex_id(char *out, size_t nbytes);

#endif
