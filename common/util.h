/*
 * Small helpers shared by both daemons: parsing human-friendly sizes and
 * durations from the config files, a monotonic millisecond clock, hex
 * encoding and wiping secrets from memory.
 */
#ifndef MCPTUN_UTIL_H
#define MCPTUN_UTIL_H

#include <stddef.h>
#include <stdint.h>

/*
 * Parses a byte size: a decimal number with an optional unit, optionally
 * separated by blanks.  Binary units: "K"/"KiB" (1024), "M"/"MiB", "G"/"GiB",
 * "T"/"TiB"; decimal units: "KB" (1000), "MB", "GB", "TB"; "B" is bytes.
 * Units are case-insensitive.  Returns 0 and sets *out, MT_EINVAL for bad
 * syntax (empty, sign, fraction, unknown unit, trailing junk) or
 * MT_ETOOBIG if the value does not fit in 64 bits.
 */
int parse_size(const char *s, uint64_t *out);

/*
 * Parses a duration into milliseconds: a decimal number with an optional
 * unit "ms", "s", "m", "h" or "d" (case-insensitive, blanks allowed
 * before the unit); a bare number means seconds.  Returns 0 and sets *out,
 * MT_EINVAL for bad syntax or MT_ETOOBIG on overflow.
 */
int parse_duration_ms(const char *s, uint64_t *out);

/* Milliseconds on CLOCK_MONOTONIC: for deadlines and intervals only. */
uint64_t now_ms(void);
/* Milliseconds since the Unix epoch (CLOCK_REALTIME): for logs and audit. */
uint64_t now_wall_ms(void);

/*
 * Writes n bytes from src as 2*n lowercase hex digits and a NUL to dst,
 * which must hold 2*n + 1 bytes.
 */
void hex_encode(const void *src, size_t n, char *dst);
/* The value of one hex digit (either case), or -1. */
int hex_digit(int c);
/*
 * Decodes exactly 2*n hex digits (either case) from hex into n bytes at
 * dst.  hex must be exactly 2*n characters long (NUL-terminated).
 * Returns 0, or MT_EINVAL (dst untouched).
 */
int hex_decode(const char *hex, uint8_t *dst, size_t n);

/* Zeroes n bytes at p in a way the compiler may not optimise away. */
void mem_wipe(void *p, size_t n);

/*
 * The application bytes one full TLS record carries when mbedTLS writes
 * it: 2^14 of plaintext, less the content-type byte TLS 1.3 puts inside
 * (a TLS 1.2 record would carry one more).  A write of a multiple of it
 * goes out as that many full records; one byte more costs a whole extra
 * record (its own encryption, padding and write syscall).
 */
#define TLS_RECORD_DATA		16383

/*
 * Bounds the bytes a TCP socket keeps queued but not yet sent
 * (TCP_NOTSENT_LOWAT): poll reports it writable only below that, so a
 * writer that fills it whenever it is writable holds the rest in its own
 * queue, where a later, more urgent message can still go first.  Leaves
 * the in-flight window (what the network can carry) alone.  Best effort:
 * returns -1 where the option is missing (not TCP, old kernel).
 */
int sock_limit_unsent(int fd, int bytes);

#endif
