#!/bin/sh
# Builds the TLS stack mcptun links statically: mbedTLS 3.6 and
# libwebsockets 4.3.5, from Debian 13 (trixie) *source* packages, into
# deps/out.  The system's apt configuration is never changed: a private apt
# state under deps/apt is used instead, and apt checks every file against the
# signed Sources index.  See ../shared/DEPS.md for why.
#
# Usage: deps/build.sh OUTDIR
set -eu

top=$(cd "$(dirname "$0")" && pwd)
out=${1:-$top/out}
work=$top/work
apt=$top/apt
jobs=$(nproc 2>/dev/null || echo 2)

MBEDTLS_SHA=8fb65fae8dcae5840f793c0a334860a411f884cc537ea290ce1c52bb64ca007a
LWS_SHA=87f99ad32803ed325fceac5327aae1f5c1b417d54ee61ad36cffc8df5f5ab276
# Raise whenever the fixes or patches below change: the Makefile then
# rebuilds deps/out in existing trees (its stamp is .mcptun-deps-LEVEL).
DEPS_LEVEL=2

die() { echo "deps/build.sh: $*" >&2; exit 1; }

mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$work" "$out"

src=/etc/apt/sources.list.d/debian.sources
[ -r "$src" ] || die "$src not found: cannot derive Debian 13 source entries"
# Source entries for trixie derived from the machine's own mirror entries.
sed -e 's/^Types: deb$/Types: deb-src/' \
    -e '/^Suites:/s/bookworm/trixie/g' "$src" > "$apt/trixie.sources"

aptq() {
	apt-get -q -o Dir::Etc::sourcelist="$apt/trixie.sources" \
		-o Dir::Etc::sourceparts=- \
		-o Dir::State::Lists="$apt/lists" \
		-o Dir::Cache="$apt/cache" \
		-o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= \
		-o APT::Sandbox::User=root "$@"
}

cd "$work"
if ! ls mbedtls_3.6*.orig.tar.* >/dev/null 2>&1 || ! ls libwebsockets_4.3.5*.orig.tar.* >/dev/null 2>&1; then
	aptq update >/dev/null || die "apt-get update of the trixie source index failed (is the Debian mirror reachable?)"
	aptq source --download-only mbedtls/trixie >/dev/null 2>&1 || true
	# The lws .dsc may be missing on the mirror and its debian tarball lives
	# in trixie-security: apt exits non-zero after fetching the orig tarball.
	aptq source --download-only libwebsockets/trixie >/dev/null 2>&1 || true
	aptq source --download-only libwebsockets/trixie-security >/dev/null 2>&1 || true
fi

mtar=$(ls mbedtls_3.6*.orig.tar.* 2>/dev/null | head -n1)
ltar=$(ls libwebsockets_4.3.5*.orig.tar.* 2>/dev/null | head -n1)
ldeb=$(ls libwebsockets_4.3.5*.debian.tar.* 2>/dev/null | sort | tail -n1)
[ -n "$mtar" ] || die "mbedtls 3.6 orig tarball not downloaded; trixie now has: $(aptq showsrc mbedtls 2>/dev/null | sed -n 's/^Version: //p' | tr '\n' ' ')"
[ -n "$ltar" ] || die "libwebsockets 4.3.5 orig tarball not downloaded; trixie now has: $(aptq showsrc libwebsockets 2>/dev/null | sed -n 's/^Version: //p' | tr '\n' ' ')"
sum() { sha256sum "$1" | cut -d' ' -f1; }
[ "$(sum "$mtar")" = "$MBEDTLS_SHA" ] || echo "deps/build.sh: note: $mtar differs from the tarball checked in DEPS.md (a new point release?); apt verified it against the signed index" >&2
[ "$(sum "$ltar")" = "$LWS_SHA" ] || echo "deps/build.sh: note: $ltar differs from the tarball checked in DEPS.md; apt verified it against the signed index" >&2

# --- mbedTLS -----------------------------------------------------------
rm -rf mbedtls-src mbedtls-build
mkdir mbedtls-src
tar -xf "$mtar" -C mbedtls-src --strip-components=1
cmake -S mbedtls-src -B mbedtls-build -DCMAKE_BUILD_TYPE=Release \
	-DCMAKE_INSTALL_PREFIX="$out" -DENABLE_TESTING=OFF -DENABLE_PROGRAMS=OFF \
	-DUSE_STATIC_MBEDTLS_LIBRARY=ON -DUSE_SHARED_MBEDTLS_LIBRARY=OFF \
	-DCMAKE_POSITION_INDEPENDENT_CODE=ON >/dev/null
cmake --build mbedtls-build -j"$jobs" >/dev/null
cmake --install mbedtls-build >/dev/null

# --- libwebsockets -----------------------------------------------------
rm -rf lws-src lws-build
mkdir lws-src
tar -xf "$ltar" -C lws-src --strip-components=1
if [ -n "$ldeb" ]; then
	tar -xf "$ldeb" -C lws-src
	if [ -f lws-src/debian/patches/series ]; then
		grep -v '^#' lws-src/debian/patches/series | while read -r p; do
			[ -n "$p" ] || continue
			patch -d lws-src -p1 -s < "lws-src/debian/patches/$p" || die "Debian patch $p did not apply"
		done
	fi
else
	echo "deps/build.sh: warning: no libwebsockets debian tarball (security backports not applied)" >&2
fi

# Fix 1: lws caps mbedTLS at TLS 1.2 when any version is allowed; allow 1.3.
f=lws-src/lib/tls/mbedtls/wrapper/platform/ssl_pm.c
sed -i 's/mbedtls_ssl_conf_max_version(&ssl_pm->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);/mbedtls_ssl_conf_max_tls_version(\&ssl_pm->conf, MBEDTLS_SSL_VERSION_TLS1_3);/' "$f"
grep -q 'mbedtls_ssl_conf_max_tls_version(&ssl_pm->conf, MBEDTLS_SSL_VERSION_TLS1_3)' "$f" || die "TLS 1.3 fix did not apply to $f (upstream source changed?)"
# Fix 2: the client strips ":port" at the first colon, so "::1" becomes an
# empty host name; strip only when there is exactly one colon.
f=lws-src/lib/tls/mbedtls/mbedtls-client.c
sed -i "s/\t\tif (\*p == ':') {/\t\tif (*p == ':' \&\& strchr(hostname, ':') == strrchr(hostname, ':')) {/" "$f"
grep -q "if (\*p == ':' && strchr(hostname, ':') == strrchr(hostname, ':'))" "$f" || die "IPv6 host name fix did not apply to $f (upstream source changed?)"

# Fix 3: the mbedTLS wrapper's SSL_write cuts every write into 1460-byte
# pieces, each its own TLS record and send(): 720 records, 720 send()s and
# 1,440 recv()s per MiB on the link.  Use whole 16 KiB records
# (MBEDTLS_SSL_OUT_CONTENT_LEN); partial writes are handled as before.
f=lws-src/lib/tls/mbedtls/wrapper/library/ssl_lib.c
sed -i 's/^#define SSL_SEND_DATA_MAX_LENGTH 1460$/#define SSL_SEND_DATA_MAX_LENGTH 16384/' "$f"
grep -q '^#define SSL_SEND_DATA_MAX_LENGTH 16384$' "$f" || die "TLS record size fix did not apply to $f (upstream source changed?)"
# Our own patches (deps/patches/*.patch, in name order): see each header.
for p in "$top"/patches/*.patch; do
	[ -f "$p" ] || continue
	patch -d lws-src -p1 -s --no-backup-if-mismatch < "$p" || die "$(basename "$p") did not apply"
done

cmake -S lws-src -B lws-build -DCMAKE_BUILD_TYPE=Release \
	-DCMAKE_INSTALL_PREFIX="$out" -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
	-DLWS_WITH_MBEDTLS=ON -DLWS_MBEDTLS_INCLUDE_DIRS="$out/include" \
	-DMBEDTLS_LIBRARY="$out/lib/libmbedtls.a" \
	-DMBEDX509_LIBRARY="$out/lib/libmbedx509.a" \
	-DMBEDCRYPTO_LIBRARY="$out/lib/libmbedcrypto.a" \
	-DLWS_WITH_SHARED=OFF -DLWS_WITH_STATIC=ON -DLWS_WITHOUT_TESTAPPS=ON \
	-DLWS_WITH_MINIMAL_EXAMPLES=OFF -DLWS_WITH_SPAWN=ON -DLWS_IPV6=ON \
	-DLWS_WITH_HTTP2=OFF >/dev/null
cmake --build lws-build -j"$jobs" >/dev/null
cmake --install lws-build >/dev/null
grep -q 'define LWS_WITH_MBEDTLS' "$out/include/lws_config.h" || die "libwebsockets was not built with mbedTLS"
# The Makefile's stamp: a tree built with an older patch set rebuilds.
rm -f "$out"/.mcptun-deps-*
touch "$out/.mcptun-deps-$DEPS_LEVEL"
echo "deps/build.sh: mbedTLS and libwebsockets installed in $out"
