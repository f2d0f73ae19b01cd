/*
 * libFuzzer target for the frame codec.  Every input is decoded with a
 * generous and a tight payload limit; a frame that decodes must re-encode
 * to exactly the same bytes (the codec has one canonical form), and
 * code+text payloads are split and rebuilt.  Any mismatch aborts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/frame.h"
#include "common/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t fuzz_out[FRAME_HDR_LEN + 1024 * 1024];

/* Checks a code+text payload splits and rebuilds byte for byte. */
static void
fuzz_code_text(const struct frame *f)
{
	uint8_t ct[FRAME_MAX_CONTROL + 2];
	const char *text;
	size_t tl, n;
	uint16_t code;
	char *s;

	if (frame_get_code_text(f, &code, &text, &tl) != 0) {
		if (f->len >= 2)
			abort();
		return;
	}
	if (f->len < 2 || tl != f->len - 2 || text != (const char *)f->payload + 2)
		abort();
	(void)close_code_str(code);
	/* Text with an embedded NUL is cut there by frame_put_code_text. */
	if (tl + 1 > sizeof(ct) || memchr(text, '\0', tl) != NULL)
		return;
	if ((s = malloc(tl + 1)) == NULL)
		return;
	memcpy(s, text, tl);
	s[tl] = '\0';
	n = frame_put_code_text(ct, sizeof(ct), code, s);
	if (n != f->len || memcmp(ct, f->payload, n) != 0)
		abort();
	/* Truncation never writes past cap. */
	n = frame_put_code_text(ct, 2 + tl / 2, code, s);
	if (n > 2 + tl / 2 || n < 2)
		abort();
	free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct frame f, g;
	size_t n;
	int r;

	(void)frame_decode(data, size, size > 64 ? size / 2 : 0, &g);
	memset(&f, 0, sizeof(f));
	r = frame_decode(data, size, sizeof(fuzz_out), &f);
	(void)frame_type_name(f.type);
	if (r == MT_EVERSION) {
		/* The payload handed back must lie inside the input. */
		if (f.payload != data + FRAME_HDR_LEN ||
		    f.len > size - FRAME_HDR_LEN)
			abort();
		return 0;
	}
	if (r != 0)
		return 0;
	if (size != FRAME_HDR_LEN + (size_t)f.len)
		abort();
	n = frame_encode(fuzz_out, sizeof(fuzz_out), f.type, f.flags,
	    f.stream, f.payload, f.len);
	if (n != size || memcmp(fuzz_out, data, size) != 0)
		abort();
	/* The re-encoded frame decodes to the same fields. */
	if (frame_decode(fuzz_out, n, sizeof(fuzz_out), &g) != 0 ||
	    g.type != f.type || g.flags != f.flags || g.stream != f.stream ||
	    g.len != f.len)
		abort();
	if (f.type == FRAME_WINDOW)
		(void)frame_get_u32(f.payload);
	/* Exercise the code+text splitter on every type, not only its own. */
	fuzz_code_text(&f);
	return 0;
}
