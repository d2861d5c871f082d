#!/usr/bin/env bash
# From a bare Debian/Ubuntu machine with Go to a running cloud: installs the PostgreSQL server
# binaries (and nftables, e2fsprogs, dnsmasq, libvirt and QEMU) if they are missing, starts libvirtd,
# builds ./enjin and execs `enjin up` with this script's arguments. Run it from anywhere; it
# works at the repository root.
#
#   deploy/bootstrap.sh [enjin up flags]
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=()
if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi

# enjin up runs its own managed PostgreSQL from these binaries; a cluster the package may
# start on install is not used.
if compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
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

echo "bootstrap: starting: ./enjin up $*"
exec ./enjin up "$@"
