#!/usr/bin/env bash
# From a bare Debian/Ubuntu machine with Go to a running cloud: installs the PostgreSQL server
# binaries (and nftables, e2fsprogs, dnsmasq, libvirt and QEMU) if they are missing, starts libvirtd,
# builds ./enjin and execs `enjin up` with this script's arguments. Run it from anywhere; it
# works at the repository root.
#
# With --join, the machine joins a running cloud as a ring 1 node instead: ring 0's API URL
# and the file holding the one-time join token (as `POST /v1/nodes/{node}/join-token` answers;
# never the token itself: a command line is readable by every user of the machine). No
# PostgreSQL is installed; the rest of the arguments go to `enjin ring1`.
#
# With --systemd, where systemd runs the machine, it installs ring 0 and ring 1 as services
# instead (deploy/systemd/install.sh: enjin-ring0 on the machine's PostgreSQL, enjin-ring1
# joined to it as node NODE, default the host name) and returns once both are started.
#
#   deploy/bootstrap.sh [enjin up flags]
#   deploy/bootstrap.sh --join URL TOKEN-FILE [enjin ring1 flags]
#   deploy/bootstrap.sh --systemd [NODE]
set -euo pipefail

join_url= join_file= systemd=
if [ "${1:-}" = "--systemd" ]; then
	# Checked before anything is installed: without systemd there is nothing to install into.
	pid1=$(cat /proc/1/comm 2>/dev/null || echo unknown)
	if [ "$pid1" != systemd ] || ! command -v systemctl >/dev/null; then
		echo "bootstrap: --systemd: systemd does not run this machine (PID 1 is $pid1); run deploy/bootstrap.sh without it: enjin up runs the whole cloud in the foreground" >&2
		exit 1
	fi
	systemd=1
	shift
elif [ "${1:-}" = "--join" ]; then
	if [ $# -lt 3 ] || [ ! -r "$3" ]; then
		echo "bootstrap: --join URL TOKEN-FILE: ring 0's API and a readable file with the join token" >&2
		exit 2
	fi
	join_url=$2 join_file=$(realpath "$3") # named from here, read from the repository root
	shift 3
fi
cd "$(dirname "$0")/.."

sudo=()
if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi

# enjin up runs its own managed PostgreSQL from these binaries; a cluster the package may
# start on install is not used. A joining ring 1 node needs none.
if [ -n "$join_url" ]; then
	:
elif compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
	echo "bootstrap: postgresql server binaries present"
else
	echo "bootstrap: installing postgresql (apt-get)…"
	"${sudo[@]}" apt-get update
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --no-install-recommends postgresql
	if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
		echo "bootstrap: postgresql installed but no /usr/lib/postgresql/*/bin/initdb" >&2
		exit 1
	fi
fi

# nftables: the firewall that keeps app instances off the host's services.
if command -v nft >/dev/null; then
	echo "bootstrap: nftables present"
else
	echo "bootstrap: installing nftables (apt-get)…"
	"${sudo[@]}" apt-get update
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nftables
fi

# e2fsprogs: each app's HOME is an ext4 image of its own, loop-mounted.
if ! command -v mkfs.ext4 >/dev/null; then
	echo "bootstrap: installing e2fsprogs (apt-get)…"
	"${sudo[@]}" apt-get update
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends e2fsprogs
fi

# dnsmasq: the DHCP server of tenant networks made with --dhcp.
if [ ! -x /usr/sbin/dnsmasq ]; then
	echo "bootstrap: installing dnsmasq-base (apt-get)…"
	"${sudo[@]}" apt-get update
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends dnsmasq-base
fi

# libvirt and QEMU: ring 1 runs tenants' VMs through libvirtd. The script installs them if
# missing and starts virtlogd and libvirtd if they do not answer.
deploy/libvirt.sh
echo "bootstrap: libvirtd answers on /var/run/libvirt/libvirt-sock"

if ! command -v go >/dev/null; then
	echo "bootstrap: no 'go' on PATH; install Go 1.26 or later (https://go.dev/doc/install) and run this again" >&2
	exit 1
fi

echo "bootstrap: building ./enjin with $(go version)…"
go build -buildvcs=true -o ./enjin ./cmd/enjin 2>/dev/null || go build -o ./enjin ./cmd/enjin

if [ -n "$systemd" ]; then
	echo "bootstrap: installing enjin-ring0 and enjin-ring1 as systemd services"
	exec "${sudo[@]}" deploy/systemd/install.sh "$@"
fi
if [ -n "$join_url" ]; then
	echo "bootstrap: joining the cloud at $join_url: ./enjin ring1 --join-file $join_file --ring0 $join_url $*"
	exec ./enjin ring1 --join-file "$join_file" --ring0 "$join_url" "$@"
fi
echo "bootstrap: starting: ./enjin up $*"
exec ./enjin up "$@"
