/*
 * libFuzzer target for the configuration loader: the same bytes are loaded
 * as a client configuration (then checked, as the daemon does after its
 * overrides) and as a relay configuration.  Nothing may crash, hang or
 * leak; errors must be one line each.  Built by the Makefile with clang
 * -fsanitize=fuzzer,address,undefined, linking the common sources and
 * client/client_conf.c and relay/relay_conf.c.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_conf.h"
#include "common/conf.h"
#include "relay/relay_conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* Give ${...} something to find besides HOME and PATH. */
	setenv("MCPTUN_TOKEN", "fuzz-token", 1);
	return 0;
}

/* Every line of an error report must start with the file name. */
static void
fuzz_check_err(const char *err)
{
	const char *p = err;

	while (p != NULL && *p != '\0') {
		if (strncmp(p, "f.yaml", 6) != 0 &&
		    strncmp(p, "relay.url", 9) != 0)
			abort();
		if ((p = strchr(p, '\n')) != NULL)
			p++;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct client_conf *c = NULL;
	struct relay_conf *r = NULL;
	char err[2048];

	if (size > 64 * 1024)
		return 0;
	if (client_conf_load_mem("f.yaml", data, size, &c, err,
	    sizeof(err)) == 0) {
		(void)client_conf_check(c, err, sizeof(err));
		if (c->nservers > 0)
			(void)client_conf_server(c, c->servers[0].name);
		(void)client_conf_set(c, "relay.url", "wss://r/t", err,
		    sizeof(err));
		(void)client_conf_check(c, err, sizeof(err));
		client_conf_unref(client_conf_ref(c));
		client_conf_unref(c);
	} else
		fuzz_check_err(err);
	if (relay_conf_load_mem("f.yaml", data, size, &r, err,
	    sizeof(err)) == 0) {
		(void)relay_conf_check(r, err, sizeof(err));
		(void)relay_conf_agent_by_token(r, "fuzz-token");
		if (r->nagents > 0)
			(void)relay_agent_may_use(&r->agents[0], "acme", NULL);
		if (r->ntunnels > 0)
			(void)relay_tunnel_cert_ok(&r->tunnels[0], "fuzz-cn");
		relay_conf_unref(r);
	} else
		fuzz_check_err(err);
	return 0;
}
