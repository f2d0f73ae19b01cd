#!/bin/sh
# Checks for (or installs) the Debian packages mcptun builds and tests with.
#   deps/apt.sh check PKG...    list the missing ones, exit 1 if any
#   deps/apt.sh install PKG...  install the missing ones as root, or say
#                               exactly what to install when not root
set -eu
mode=$1; shift
missing=""
for p in "$@"; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in *"ok installed"*) ;; *) missing="$missing $p" ;; esac
done
[ -z "$missing" ] && exit 0
if [ "$mode" = check ]; then
	echo "missing Debian packages:$missing"
	exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "mcptun needs these Debian packages:$missing" >&2
	echo "install them with: sudo apt-get install -y$missing" >&2
	exit 1
fi
echo "installing Debian packages:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null || { echo "deps/apt.sh: apt-get update failed" >&2; exit 1; }
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null || {
	echo "deps/apt.sh: apt-get install failed for:$missing" >&2; exit 1; }
