# Shared by the benches that compare against ssh -R (tests/bench/run.sh and
# tests/bench/link.sh; POSIX sh, sourced after tests/lib/common.sh).
#
#   need_pkg CMD PKGS     CMD is on PATH, or (as root, with apt-get) PKGS
#                         are installed from Debian (log in $T/apt.log);
#                         1 if CMD is still missing
#   sshd_start            a throwaway sshd on a free loopback port: host and
#                         user keys and sshd_config in $T/ssh, root may log
#                         in with the user key, TCP forwarding on; runs as
#                         start_bg "sshd".  Sets SSH_DIR, SSH_PORT and
#                         SSHD_PID; on failure returns 1 with SSH_NA saying
#                         why.  Installs openssh when missing (need_pkg).
#   ssh_forward NAME PORT:TARGET...
#                         ssh -R 127.0.0.1:PORT:127.0.0.1:TARGET for each
#                         pair over one connection to that sshd, as
#                         start_bg NAME (LAST_PID); waits until the first
#                         PORT accepts; on failure returns 1 with FWD_NA
#                         saying why
#
# Benches print figures; nothing here reports ok / not ok.

SSHD=/usr/sbin/sshd

need_pkg() {
	command -v "$1" >/dev/null 2>&1 && return 0
	[ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 || return 1
	echo "bench: installing $2 from Debian (apt-get)" >&2
	{ DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $2 ||
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $2; }
	} >>"$T/apt.log" 2>&1
	command -v "$1" >/dev/null 2>&1
}

sshd_start() {
	SSH_NA=""
	if ! need_pkg ssh "openssh-server openssh-client" || [ ! -x "$SSHD" ] ||
	    ! command -v ssh-keygen >/dev/null 2>&1; then
		SSH_NA="openssh-server is not installed (apt-get install openssh-server openssh-client as root)"
		return 1
	fi
	SSH_DIR=$T/ssh
	SSH_PORT=$(free_port)
	mkdir -p "$SSH_DIR" /run/sshd
	chmod 700 "$SSH_DIR"
	if ! { ssh-keygen -q -t ed25519 -N '' -f "$SSH_DIR/host_key" </dev/null &&
	    ssh-keygen -q -t ed25519 -N '' -f "$SSH_DIR/user_key" </dev/null &&
	    cp "$SSH_DIR/user_key.pub" "$SSH_DIR/authorized_keys" &&
	    chmod 600 "$SSH_DIR/authorized_keys"; }; then
		SSH_NA="ssh-keygen failed"
		return 1
	fi
	cat >"$SSH_DIR/sshd_config" <<EOF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $SSH_DIR/host_key
PidFile $SSH_DIR/sshd.pid
AuthorizedKeysFile $SSH_DIR/authorized_keys
PermitRootLogin yes
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding yes
GatewayPorts no
X11Forwarding no
PrintMotd no
LogLevel ERROR
EOF
	start_bg sshd "$SSHD" -D -e -f "$SSH_DIR/sshd_config"
	SSHD_PID=$LAST_PID
	if ! wait_port "$SSH_PORT" 10; then
		SSH_NA="sshd did not listen: $(tail -n 2 "$T/sshd.log" | tr '\n' ' ')"
		return 1
	fi
}

ssh_forward() {
	_sf_name=$1
	shift
	_sf_first="" _sf_args=""
	for _sf_pair in "$@"; do
		[ -n "$_sf_first" ] || _sf_first=${_sf_pair%%:*}
		_sf_args="$_sf_args -R 127.0.0.1:${_sf_pair%%:*}:127.0.0.1:${_sf_pair#*:}"
	done
	FWD_NA=""
	# shellcheck disable=SC2086
	start_bg "$_sf_name" ssh -N -T -o StrictHostKeyChecking=no \
	    -o UserKnownHostsFile=/dev/null -o BatchMode=yes \
	    -o ExitOnForwardFailure=yes -o LogLevel=ERROR -i "$SSH_DIR/user_key" \
	    -p "$SSH_PORT" $_sf_args root@127.0.0.1
	if ! wait_port "$_sf_first" 15; then
		FWD_NA="ssh -R did not forward: $(tail -n 3 "$T/$_sf_name.log" | tr '\n' ' ')"
		return 1
	fi
}
