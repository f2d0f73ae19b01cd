# mcptun: plain GNU make.
#
#   make            build mcptun-relay and mcptun-client (and, first, the
#                   static TLS stack in deps/out when it is missing)
#   make test       unit + integration + fuzz smoke; ends "N passed, N failed"
#   make SAN=1 test the same under ASan+UBSan (objects go to build/san)
#   make demo       a relay and a client on localhost with an example allowlist
#   make check-deps say which Debian packages are missing
#
# Objects live in build/ (build/san for SAN=1) with -MMD dependency files.

CC      ?= cc
ifeq ($(origin CC),default)
CC      := cc
endif
VERSION := 0.1.0
DEPS    := $(CURDIR)/deps/out
SAN     ?= 0
WERROR  ?= 0

ifeq ($(SAN),1)
B       := build/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT     := -O1 -g
else
B       := build/rel
SANFLAGS :=
OPT     := -O2 -g
endif

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wpointer-arith -Wcast-qual -Wformat=2 -Wno-unused-parameter
ifeq ($(WERROR),1)
WARN    += -Werror
endif

CPPFLAGS := -I$(DEPS)/include -I. -I/usr/include/postgresql -D_GNU_SOURCE \
            -DMCPTUN_VERSION=\"$(VERSION)\"
CFLAGS  := -std=c11 $(OPT) $(WARN) $(SANFLAGS) -MMD -MP
# Linking is set for idle memory (tests/bench/rss.sh prints where it is).
# Packed relative relocations (DT_RELR) leave the loader far fewer pages
# of relocations to read.  jansson and libyaml are linked in: only what is
# used, and two shared objects fewer to map and relocate.
LDFLAGS := $(SANFLAGS) -Wl,-z,pack-relative-relocs
LWS_LIBS := $(DEPS)/lib/libwebsockets.a $(DEPS)/lib/libmbedtls.a \
            $(DEPS)/lib/libmbedx509.a $(DEPS)/lib/libmbedcrypto.a
# No -lpq: the client dlopen()s libpq only for a postgres server
# (client/pq_dl.c), which keeps its idle RSS small.
LIBS    := $(LWS_LIBS) -Wl,-Bstatic -ljansson -lyaml -Wl,-Bdynamic \
           -ldl -lpthread -lm
# The relay is static-pie (still loaded at a random address): no ld.so and
# no libc.so, of which a process keeps about 1.5 MiB mapped, only the libc
# code it links.  Against the same relay linked dynamically that lowers
# its RSS by about 0.9 MiB but raises its PSS by about 0.65 MiB: the libc
# code it carries is its own, not shared with the host's other processes
# (in a container of its own the two are the same).  STATIC_RELAY=0 links
# it dynamically.  It resolves no names and switches no users, so the glibc warnings about NSS
# functions lws links in (getaddrinfo, getpwnam_r, initgroups...) do not
# apply.  The client stays dynamic: it dlopen()s libpq.  Sanitizer builds
# cannot be static.
STATIC_RELAY ?= 1
ifneq ($(SAN)$(STATIC_RELAY),01)
RELAY_LINK := $(LDFLAGS)
RELAY_LIBS := $(LIBS)
else
RELAY_LINK := $(LDFLAGS) -static-pie
RELAY_LIBS := $(LWS_LIBS) -ljansson -lyaml -lpthread -lm
endif
# deps/build.sh's DEPS_LEVEL names the patch set deps/out was built with;
# raising it there makes existing trees rebuild deps/out.
DEPS_LEVEL := $(shell sed -n 's/^DEPS_LEVEL=//p' deps/build.sh)
DEPSTAMP := $(DEPS)/.mcptun-deps-$(DEPS_LEVEL)

# Debian packages the build and the tests need.
APT_PKGS := build-essential cmake pkg-config libjansson-dev libyaml-dev \
            libpq-dev libcmocka-dev libyajl-dev openssl ca-certificates \
            xz-utils patch bubblewrap postgresql clang libclang-rt-dev \
            procps curl python3

# --- object lists (explicit, by module) --------------------------------
PROTO_SRCS  := proto/frame.c proto/mux.c
COMMON_SRCS := common/log.c common/err.c common/xmalloc.c common/buf.c \
               common/conf.c common/token.c common/backoff.c common/util.c \
               common/jsonrpc.c common/jscan.c common/u32map.c common/daemon.c \
               common/resolve.c
# The daemons' config modules are separate so unit tests and fuzzers can
# link them without the daemons.
RELAY_CONF_SRCS  := relay/relay_conf.c
CLIENT_CONF_SRCS := client/client_conf.c
RELAY_SRCS  := relay/main.c relay/tunnel.c relay/http.c relay/metrics.c \
               relay/mcp_route.c $(RELAY_CONF_SRCS)
CLIENT_SRCS := client/main.c client/link.c client/session.c client/audit.c \
               client/upstream.c client/up_stdio.c client/merge.c \
               client/merge_names.c client/watch.c client/offload.c \
               client/up_postgres.c client/pgsql.c client/pq_dl.c \
               client/up_http.c client/sse.c \
               $(CLIENT_CONF_SRCS)

PROTO_OBJS  := $(PROTO_SRCS:%.c=$(B)/%.o)
COMMON_OBJS := $(COMMON_SRCS:%.c=$(B)/%.o)
RELAY_OBJS  := $(RELAY_SRCS:%.c=$(B)/%.o)
CLIENT_OBJS := $(CLIENT_SRCS:%.c=$(B)/%.o)
LIBCOMMON   := $(B)/libmcptun.a

RELAY_BIN  := $(B)/mcptun-relay
CLIENT_BIN := $(B)/mcptun-client

# Unit tests: one cmocka program per module, tests/unit/test_NAME.c.
UNIT_NAMES := $(patsubst tests/unit/test_%.c,%,$(sort $(wildcard tests/unit/test_*.c)))
UNIT_BINS  := $(UNIT_NAMES:%=$(B)/tests/unit/test_%)

.PHONY: all test unit integration fuzz demo bench clean distclean check-deps deps
all: $(RELAY_BIN) $(CLIENT_BIN) mcptun-relay mcptun-client

# Convenience links at the top of the tree for the release build.
mcptun-relay: $(RELAY_BIN)
	@ln -sf $(RELAY_BIN) $@
mcptun-client: $(CLIENT_BIN)
	@ln -sf $(CLIENT_BIN) $@

check-deps:
	@sh deps/apt.sh check $(APT_PKGS)

deps: $(DEPSTAMP)
$(DEPSTAMP):
	@sh deps/apt.sh install $(APT_PKGS)
	@echo "building mbedTLS 3.6 and libwebsockets 4.3.5 from Debian 13 sources (about 80 s, once)"
	@sh deps/build.sh $(DEPS)

$(B)/%.o: %.c | $(DEPSTAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(LIBCOMMON): $(COMMON_OBJS) $(PROTO_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(RELAY_BIN): $(RELAY_OBJS) $(LIBCOMMON)
	$(CC) $(RELAY_LINK) -o $@ $(RELAY_OBJS) $(LIBCOMMON) $(RELAY_LIBS)

$(CLIENT_BIN): $(CLIENT_OBJS) $(LIBCOMMON)
	$(CC) $(LDFLAGS) -o $@ $(CLIENT_OBJS) $(LIBCOMMON) $(LIBS)

CONF_OBJS := $(RELAY_CONF_SRCS:%.c=$(B)/%.o) $(CLIENT_CONF_SRCS:%.c=$(B)/%.o)
# Extra objects a unit test links (tests of static helpers #include the .c).
UNIT_EXTRA_sse := $(B)/client/sse.o
UNIT_EXTRA_pgup := $(B)/client/pq_dl.o
.SECONDEXPANSION:
.SECONDARY:
$(B)/tests/unit/test_%: $(B)/tests/unit/test_%.o $$(UNIT_EXTRA_$$*) $(CONF_OBJS) $(LIBCOMMON)
	$(CC) $(LDFLAGS) -o $@ $< $(UNIT_EXTRA_$*) $(CONF_OBJS) $(LIBCOMMON) $(LIBS) -lcmocka

# Test helpers built from tests/tools (small programs the integration tests
# run as upstreams).
TOOL_BINS := $(B)/tests/tools/echo_upstream $(B)/tests/tools/slowdns.so
$(B)/tests/tools/%: tests/tools/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(LDFLAGS) -ljansson
# An LD_PRELOAD shim (a slow DNS server); never sanitized: it is loaded
# ahead of the sanitizer runtime.
$(B)/tests/tools/%.so: tests/tools/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -std=c11 -O2 -g $(WARN) -fPIC -shared -o $@ $< -ldl

# --- fuzzing (clang libFuzzer; a short smoke run is part of make test) ---
FUZZ_NAMES := frame mux conf jscan offload
FUZZ_BINS  := $(FUZZ_NAMES:%=build/fuzz/fuzz_%)
FUZZ_SRCS  := $(PROTO_SRCS) $(COMMON_SRCS) $(RELAY_CONF_SRCS) $(CLIENT_CONF_SRCS)
build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_SRCS) | $(DEPSTAMP)
	@mkdir -p $(dir $@)
	clang $(CPPFLAGS) -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined \
	    -o $@ $< $(FUZZ_SRCS) $(LIBS)
build/fuzz/fuzz_offload: client/offload.c client/offload.h
fuzz: $(FUZZ_BINS)

# --- tests --------------------------------------------------------------
# tests/run.sh runs every suite, each test in its own process with a time
# limit, and prints the one summary line.
test: all $(UNIT_BINS) $(FUZZ_BINS) $(TOOL_BINS)
	@B=$(B) SAN=$(SAN) sh tests/run.sh

demo: all
	@sh examples/demo.sh

bench: all $(TOOL_BINS)
	@sh tests/bench/run.sh

clean:
	rm -rf build mcptun-relay mcptun-client
distclean: clean
	rm -rf deps/out deps/work deps/apt tests/node/node_modules

-include $(shell find build -name '*.d' 2>/dev/null)
