/*
 * Unit tests for common/token.c (SHA-256 token hashes, constant-time
 * comparison, the CSPRNG) and common/util.c (size and duration parsing,
 * hex helpers, the clocks).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/token.h"
#include "common/util.h"
#include "common/err.h"

#define ABC_HEX \
	"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define EMPTY_HEX \
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define LONG_IN \
	"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
#define LONG_HEX \
	"248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"

static void
test_sha256_vectors(void **state)
{
	char hex[TOKEN_HASH_HEXLEN + 1];

	assert_int_equal(token_sha256_hex("abc", hex), 0);
	assert_string_equal(hex, ABC_HEX);
	assert_int_equal(token_sha256_hex("", hex), 0);
	assert_string_equal(hex, EMPTY_HEX);
	assert_int_equal(token_sha256_hex(LONG_IN, hex), 0);
	assert_string_equal(hex, LONG_HEX);
	assert_int_equal(token_sha256_hex(NULL, hex), MT_EINVAL);
}

static void
test_hash_parse(void **state)
{
	uint8_t h[TOKEN_HASH_LEN], h2[TOKEN_HASH_LEN], keep[TOKEN_HASH_LEN];
	char upper[TOKEN_HASH_HEXLEN + 1], bad[TOKEN_HASH_HEXLEN + 2];
	size_t i;

	assert_int_equal(token_hash_parse(ABC_HEX, h), 0);
	assert_int_equal(h[0], 0xba);
	assert_int_equal(h[31], 0xad);
	/* Case-insensitive. */
	for (i = 0; i < TOKEN_HASH_HEXLEN; i++)
		upper[i] = (char)((ABC_HEX[i] >= 'a') ? ABC_HEX[i] - 32 :
		    ABC_HEX[i]);
	upper[TOKEN_HASH_HEXLEN] = '\0';
	assert_int_equal(token_hash_parse(upper, h2), 0);
	assert_memory_equal(h, h2, sizeof(h));

	/* Errors leave out untouched. */
	memset(keep, 0x5a, sizeof(keep));
	memcpy(h2, keep, sizeof(h2));
	assert_int_equal(token_hash_parse("", h2), MT_EINVAL);
	assert_int_equal(token_hash_parse(NULL, h2), MT_EINVAL);
	assert_int_equal(token_hash_parse("abc", h2), MT_EINVAL);
	memcpy(bad, ABC_HEX, TOKEN_HASH_HEXLEN - 1);
	bad[TOKEN_HASH_HEXLEN - 1] = '\0';		/* 63 digits */
	assert_int_equal(token_hash_parse(bad, h2), MT_EINVAL);
	memcpy(bad, ABC_HEX "0", TOKEN_HASH_HEXLEN + 2);	/* 65 */
	assert_int_equal(token_hash_parse(bad, h2), MT_EINVAL);
	memcpy(bad, ABC_HEX, TOKEN_HASH_HEXLEN + 1);
	bad[10] = 'g';
	assert_int_equal(token_hash_parse(bad, h2), MT_EINVAL);
	bad[10] = ' ';
	assert_int_equal(token_hash_parse(bad, h2), MT_EINVAL);
	memcpy(bad, ABC_HEX, TOKEN_HASH_HEXLEN + 1);
	bad[TOKEN_HASH_HEXLEN - 1] = '\n';
	assert_int_equal(token_hash_parse(bad, h2), MT_EINVAL);
	assert_memory_equal(h2, keep, sizeof(keep));
}

static void
test_verify(void **state)
{
	uint8_t h[TOKEN_HASH_LEN];
	char hex[TOKEN_HASH_HEXLEN + 1];

	assert_int_equal(token_sha256_hex("s3cret-token", hex), 0);
	assert_int_equal(token_hash_parse(hex, h), 0);
	assert_int_equal(token_verify("s3cret-token", h), 1);
	assert_int_equal(token_verify("s3cret-tokeN", h), 0);
	assert_int_equal(token_verify("s3cret-token ", h), 0);
	assert_int_equal(token_verify("", h), 0);
	assert_int_equal(token_verify(NULL, h), 0);
	assert_int_equal(token_verify("s3cret-token", NULL), 0);
	/* The empty token never matches, not even its own hash. */
	assert_int_equal(token_hash_parse(EMPTY_HEX, h), 0);
	assert_int_equal(token_verify("", h), 0);
}

static void
test_ct_equal(void **state)
{
	uint8_t a[64], b[64];
	size_t i;

	memset(a, 0x33, sizeof(a));
	memcpy(b, a, sizeof(b));
	assert_int_equal(ct_equal(a, b, sizeof(a)), 1);
	assert_int_equal(ct_equal(a, b, 0), 1);
	for (i = 0; i < sizeof(a); i++) {
		b[i] ^= 0x80;
		assert_int_equal(ct_equal(a, b, sizeof(a)), 0);
		b[i] ^= 0x81;
		assert_int_equal(ct_equal(a, b, sizeof(a)), 0);
		b[i] ^= 0x01;
	}
	assert_int_equal(ct_equal("abc", "abd", 2), 1);
	assert_int_equal(ct_equal("abc", "abd", 3), 0);
}

static void
test_rand_bytes(void **state)
{
	uint8_t a[32], b[32], zero[32], big[5000];
	size_t i, nz;

	memset(zero, 0, sizeof(zero));
	assert_int_equal(rand_bytes(a, sizeof(a)), 0);
	assert_int_equal(rand_bytes(b, sizeof(b)), 0);
	assert_memory_not_equal(a, b, sizeof(a));
	assert_memory_not_equal(a, zero, sizeof(a));
	assert_int_equal(rand_bytes(NULL, 0), 0);
	/* Longer than one DRBG request. */
	memset(big, 0, sizeof(big));
	assert_int_equal(rand_bytes(big, sizeof(big)), 0);
	for (i = nz = 0; i < sizeof(big); i++)
		nz += big[i] != 0;
	assert_true(nz > sizeof(big) * 9 / 10);
	assert_memory_not_equal(big + 1024, big + 2048, 1024);
	assert_memory_not_equal(big + 4000, zero, sizeof(zero));
}

static void
test_rand_after_fork(void **state)
{
	uint8_t parent[16], child[16];
	int fds[2], status;
	pid_t pid;

	assert_int_equal(rand_bytes(parent, 1), 0);	/* seed now */
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		if (rand_bytes(child, sizeof(child)) != 0 ||
		    write(fds[1], child, sizeof(child)) != sizeof(child))
			_exit(1);
		_exit(0);
	}
	close(fds[1]);
	assert_int_equal(rand_bytes(parent, sizeof(parent)), 0);
	assert_int_equal(read(fds[0], child, sizeof(child)), sizeof(child));
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_memory_not_equal(parent, child, sizeof(parent));
}

static void
test_rand_hex_id(void **state)
{
	char ids[64][33], big[2 * 100 + 1];
	size_t i, j;

	for (i = 0; i < 64; i++) {
		assert_int_equal(rand_hex_id(ids[i], 16), 0);
		assert_int_equal(strlen(ids[i]), 32);
		assert_int_equal(strspn(ids[i], "0123456789abcdef"), 32);
		for (j = 0; j < i; j++)
			assert_string_not_equal(ids[i], ids[j]);
	}
	memset(big, 'X', sizeof(big));
	assert_int_equal(rand_hex_id(big, 100), 0);
	assert_int_equal(strlen(big), 200);
	assert_int_equal(strspn(big, "0123456789abcdef"), 200);
	assert_int_equal(rand_hex_id(big, 0), MT_EINVAL);
	assert_int_equal(rand_hex_id(NULL, 4), MT_EINVAL);
}

static void
check_size(const char *s, int want, uint64_t v)
{
	uint64_t out = 0xdeadbeef;

	assert_int_equal(parse_size(s, &out), want);
	assert_true(out == (want == 0 ? v : 0xdeadbeef));
}

static void
test_parse_size(void **state)
{
	check_size("0", 0, 0);
	check_size("123", 0, 123);
	check_size("123B", 0, 123);
	check_size("64KiB", 0, 65536);
	check_size("4MiB", 0, 4194304);
	check_size("1GiB", 0, 1073741824);
	check_size("2TiB", 0, 2ULL << 40);
	check_size("10KB", 0, 10000);
	check_size("10MB", 0, 10000000);
	check_size("3GB", 0, 3000000000ULL);
	check_size("4M", 0, 4194304);
	check_size("64K", 0, 65536);
	check_size("1G", 0, 1ULL << 30);
	check_size("64kib", 0, 65536);
	check_size("4 MiB", 0, 4194304);
	check_size("18446744073709551615", 0, UINT64_MAX);

	check_size("18446744073709551616", MT_ETOOBIG, 0);
	check_size("99999999999999999999", MT_ETOOBIG, 0);
	check_size("17179869184GiB", MT_ETOOBIG, 0);
	check_size("", MT_EINVAL, 0);
	check_size(NULL, MT_EINVAL, 0);
	check_size("MiB", MT_EINVAL, 0);
	check_size("-1", MT_EINVAL, 0);
	check_size("+1", MT_EINVAL, 0);
	check_size(" 1", MT_EINVAL, 0);
	check_size("1 ", MT_EINVAL, 0);
	check_size("1.5MiB", MT_EINVAL, 0);
	check_size("4Mi", MT_EINVAL, 0);
	check_size("4MiBs", MT_EINVAL, 0);
	check_size("4 MiB ", MT_EINVAL, 0);
	check_size("4XB", MT_EINVAL, 0);
	check_size("0x10", MT_EINVAL, 0);
	assert_int_equal(parse_size("1", NULL), MT_EINVAL);
}

static void
check_dur(const char *s, int want, uint64_t v)
{
	uint64_t out = 0xdeadbeef;

	assert_int_equal(parse_duration_ms(s, &out), want);
	assert_true(out == (want == 0 ? v : 0xdeadbeef));
}

static void
test_parse_duration(void **state)
{
	check_dur("250ms", 0, 250);
	check_dur("30s", 0, 30000);
	check_dur("5m", 0, 300000);
	check_dur("2h", 0, 7200000);
	check_dur("1d", 0, 86400000);
	check_dur("15", 0, 15000);
	check_dur("0", 0, 0);
	check_dur("10 s", 0, 10000);
	check_dur("10S", 0, 10000);
	check_dur("18446744073709551615ms", 0, UINT64_MAX);

	check_dur("18446744073709551615", MT_ETOOBIG, 0);
	check_dur("18446744073709551616ms", MT_ETOOBIG, 0);
	check_dur("", MT_EINVAL, 0);
	check_dur(NULL, MT_EINVAL, 0);
	check_dur("s", MT_EINVAL, 0);
	check_dur("1.5s", MT_EINVAL, 0);
	check_dur("-5s", MT_EINVAL, 0);
	check_dur("5 ", MT_EINVAL, 0);
	check_dur("5sec", MT_EINVAL, 0);
	check_dur("5w", MT_EINVAL, 0);
	check_dur("1h30m", MT_EINVAL, 0);
}

static void
test_hex(void **state)
{
	const uint8_t in[] = { 0x00, 0x01, 0xab, 0xff };
	uint8_t out[4];
	char hex[9];

	hex_encode(in, sizeof(in), hex);
	assert_string_equal(hex, "0001abff");
	hex_encode(in, 0, hex);
	assert_string_equal(hex, "");
	assert_int_equal(hex_decode("0001ABff", out, 4), 0);
	assert_memory_equal(out, in, 4);
	assert_int_equal(hex_decode("0001abf", out, 4), MT_EINVAL);
	assert_int_equal(hex_decode("0001abff0", out, 4), MT_EINVAL);
	assert_int_equal(hex_decode("", out, 0), 0);
}

static void
test_clock(void **state)
{
	uint64_t a, b;

	a = now_ms();
	usleep(20 * 1000);
	b = now_ms();
	assert_true(b >= a + 15);
	assert_true(b < a + 5000);
	/* After 2020-01-01. */
	assert_true(now_wall_ms() > 1577836800000ULL);
}

static void
test_mem_wipe(void **state)
{
	uint8_t b[16], zero[16];

	memset(b, 0xee, sizeof(b));
	memset(zero, 0, sizeof(zero));
	mem_wipe(b, sizeof(b));
	assert_memory_equal(b, zero, sizeof(b));
	mem_wipe(NULL, 0);
}

int
main(void)
{
	/* One group, so that tests/run.sh counts every test. */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha256_vectors),
		cmocka_unit_test(test_hash_parse),
		cmocka_unit_test(test_verify),
		cmocka_unit_test(test_ct_equal),
		cmocka_unit_test(test_rand_bytes),
		cmocka_unit_test(test_rand_after_fork),
		cmocka_unit_test(test_rand_hex_id),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_parse_duration),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_clock),
		cmocka_unit_test(test_mem_wipe),
	};

	return cmocka_run_group_tests_name("token+util", tests, NULL, NULL);
}
