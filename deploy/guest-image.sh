#!/usr/bin/env bash
# Builds a bootable test guest for enjin's VMs from Debian's packages alone: OUT_DIR/vmlinuz
# (from linux-image-amd64) and OUT_DIR/initrd.img, a gzipped newc initramfs holding
# busybox-static with its applets, the kernel modules a qemu guest needs, the enjin binary and
# an /init (deploy/guest/init) that brings the guest up and runs `enjin guest`. Nothing is
# downloaded from anywhere but Debian's mirror (apt-get download), and nothing is installed on
# this machine. Run it again and it reuses what it fetched.
#
#   deploy/guest-image.sh [--ring1] OUT_DIR
#
#   --ring1                 the other kind of guest: a VM that can be a ring 1 host running
#                           tenants' apps in sandboxes. It adds the kernel modules for bridges,
#                           veth, VXLAN, nftables (inet, bridge and netdev tables, conntrack,
#                           reject, NAT), loop devices and ext4, which its /init loads; marks
#                           the image (/etc/enjin-kind: ring1) so that /init moves the root onto
#                           a tmpfs (pivot_root cannot leave the initramfs) and mounts cgroup2
#                           with the cpu, memory, pids and io controllers; and adds what busybox
#                           lacks: nft, mke2fs (mkfs.ext4) and iproute2's ip (veth peers, ip
#                           netns). Those three are not Debian's packages fetched like the rest
#                           but COPIED FROM THIS MACHINE, with every shared library ldd lists:
#                           they must be installed here (apt-get install nftables e2fsprogs
#                           iproute2), and the guest gets this machine's versions.
#
#   ENJIN_BIN=FILE          put this enjin binary in the image instead of building one
#                           (it must be static: CGO_ENABLED=0)
#   ENJIN_GUEST_CACHE=DIR   where extracted packages are kept, by version (default
#                           /var/cache/enjin-guest, or ~/.cache/enjin-guest when not root)
set -euo pipefail

say() { echo "guest-image: $*"; }
die() {
	echo "guest-image: $*" >&2
	exit 1
}

kind=plain
if [ "${1:-}" = --ring1 ]; then
	kind=ring1
	shift
fi
[ $# -eq 1 ] && [ -n "$1" ] || die "usage: deploy/guest-image.sh [--ring1] OUT_DIR"
out=$1
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=/var/cache/enjin-guest
if [ "$(id -u)" -ne 0 ]; then cache=${XDG_CACHE_HOME:-$HOME/.cache}/enjin-guest; fi
cache=${ENJIN_GUEST_CACHE:-$cache}
# The modules a q35 guest needs: virtio devices, fw_cfg (the metadata) and the ACPI power
# button with the input device acpid reads. Their dependencies come from modules.dep.
modules="virtio_pci virtio_net virtio_blk virtio_console qemu_fw_cfg button evdev"
# The ring1 kind's, for what enjin ring1 does (supervisors/sandbox, portguard, netseg,
# apphost): bridges with netfilter on them, veth, VXLAN; nftables with the expressions its
# rules use (ct state, reject and tcp reset in inet and bridge tables, limit, NAT with
# masquerade; sets, maps, counters and the netdev family are in nf_tables itself); loop
# devices and ext4 for apps' HOME images (crc32c for ext4's checksums: the generic one, as
# crc32c-intel needs SSE4.2, which qemu's default CPU lacks).
ring1_modules="bridge br_netfilter veth vxlan nf_tables nf_conntrack nf_nat nft_ct nft_reject
	nft_reject_inet nft_reject_ipv4 nft_reject_ipv6 nft_reject_bridge nft_meta_bridge nft_limit
	nft_nat nft_masq nft_chain_nat loop ext4 crc32c_generic"
# ...and the programs busybox has none of (or a weaker one: its ip makes no veth peer and no
# netns), copied from this machine with their libraries.
ring1_tools="nft mke2fs ip"

for tool in apt-get apt-cache dpkg-deb gzip flock; do
	command -v "$tool" >/dev/null || die "needs $tool (a Debian or Ubuntu machine)"
done
if [ "$kind" = ring1 ]; then
	command -v ldd >/dev/null || die "--ring1 needs ldd (libc-bin)"
	for tool in $ring1_tools; do
		PATH=$PATH:/usr/sbin:/sbin command -v "$tool" >/dev/null ||
			die "--ring1 copies $tool from this machine, which has none: apt-get install nftables e2fsprogs iproute2"
	done
fi
if [ -n "${ENJIN_BIN:-}" ]; then
	[ -f "$ENJIN_BIN" ] && [ -x "$ENJIN_BIN" ] || die "ENJIN_BIN=$ENJIN_BIN is not an executable file"
elif ! command -v go >/dev/null; then
	die "needs go to build enjin (or set ENJIN_BIN)"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$cache" || die "cannot make the cache $cache (set ENJIN_GUEST_CACHE)"
# One build at a time fills the cache; others wait for it.
exec 9>"$cache/.lock"
flock 9 || die "cannot lock $cache/.lock"

sudo=()
if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi

# candidate PKG prints the version apt would install of PKG, reading the package lists once
# if apt knows none (a fresh machine has no lists).
candidate() {
	local v
	v=$(apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: //p')
	if [ -z "$v" ] || [ "$v" = "(none)" ]; then
		"${sudo[@]}" apt-get update -qq >/dev/null 2>&1 || die "apt-get update failed"
		v=$(apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: //p')
	fi
	[ -n "$v" ] && [ "$v" != "(none)" ] || die "apt knows no version of $1"
	echo "$v"
}

# fetch PKG VERSION extracts that package into $cache/PKG_VERSION once and sets $fetched to it.
fetch() {
	local pkg=$1 ver=$2
	fetched=$cache/${pkg}_${ver//:/%3a}
	if [ -e "$fetched/.complete" ]; then
		say "$pkg $ver: cached in $fetched"
		return
	fi
	say "$pkg $ver: downloading"
	mkdir -p "$work/$pkg"
	(cd "$work/$pkg" && apt-get download -q "$pkg=$ver") >"$work/apt.log" 2>&1 ||
		{ cat "$work/apt.log" >&2; die "apt-get download $pkg=$ver failed"; }
	rm -rf "$fetched" && mkdir -p "$fetched"
	dpkg-deb -x "$work/$pkg/"*.deb "$fetched" || die "dpkg-deb -x $pkg failed"
	rm -rf "$fetched/usr/share/doc" "$work/$pkg"
}

# busybox-static: one binary, every applet.
ver=$(candidate busybox-static)
fetch busybox-static "$ver"
bbdir=$fetched
touch "$bbdir/.complete"
bb=$bbdir/bin/busybox
[ -x "$bb" ] || die "busybox-static has no bin/busybox"

# The kernel: linux-image-amd64 is a metapackage naming the real one.
meta_ver=$(candidate linux-image-amd64)
kpkg=$(apt-cache show "linux-image-amd64=$meta_ver" | sed -n 's/^Depends: \(linux-image-[^ ,]*\).*/\1/p' | head -n1)
[ -n "$kpkg" ] || die "linux-image-amd64 $meta_ver names no linux-image package"
ver=$(candidate "$kpkg")
fetch "$kpkg" "$ver"
kdir=$fetched
kver=$(ls "$kdir/lib/modules" 2>/dev/null | head -n1)
[ -n "$kver" ] && [ -f "$kdir/boot/vmlinuz-$kver" ] || die "$kpkg has no kernel in $kdir"
if [ ! -e "$kdir/.complete" ]; then
	# The package ships no modules.dep (its postinst makes one); busybox's depmod makes ours.
	say "$kpkg: indexing modules"
	"$bb" depmod -b "$kdir" "$kver" || die "depmod $kver failed"
	touch "$kdir/.complete"
fi
kmods=$kdir/lib/modules/$kver

# The enjin binary, static, so it runs on a root file system of busybox alone.
if [ -n "${ENJIN_BIN:-}" ]; then
	enjin=$ENJIN_BIN
	say "enjin: $enjin"
else
	say "enjin: building with $(go version | cut -d' ' -f3)"
	enjin=$work/enjin
	(cd "$repo" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$enjin" ./cmd/enjin) ||
		die "go build ./cmd/enjin failed"
fi

# The root file system.
if [ "$kind" = ring1 ]; then
	ring1_modules=$(echo $ring1_modules)
	say "initramfs (ring1): busybox, $modules $ring1_modules, $ring1_tools, enjin"
	modules="$modules $ring1_modules"
else
	say "initramfs: busybox, $modules, enjin"
fi
root=$work/root
mkdir -p "$root"/{bin,dev,etc/acpi/PWRF,proc,sys,tmp,var/log,var/run,www,lib/modules/"$kver"}
ln -s bin "$root/sbin"
mkdir -p "$root/usr" && ln -s ../bin "$root/usr/bin" && ln -s ../bin "$root/usr/sbin"
cp "$bb" "$root/bin/busybox"
for applet in $("$bb" --list); do
	[ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
cp "$enjin" "$root/bin/enjin"
install -m 0755 "$repo/deploy/guest/init" "$root/init"
install -m 0755 "$repo/deploy/guest/power-button" "$root/etc/acpi/PWRF/00000080"
install -m 0755 "$repo/deploy/guest/udhcpc" "$root/etc/udhcpc.script"

# Each wanted module with everything modules.dep says it needs, and the lines of modules.dep
# that busybox's modprobe reads to load them in order.
: >"$work/modules.dep"
for m in $modules; do
	line=$(grep -E "/${m//_/[-_]}\.ko:" "$kmods/modules.dep" | head -n1) ||
		grep -qE "/${m//_/[-_]}\.ko$" "$kmods/modules.builtin" ||
		die "module $m is neither in $kpkg nor built in"
	if [ -z "$line" ]; then # built into the kernel
		[ "$kind" = plain ] || say "$m: built into $kpkg"
		continue
	fi
	echo "$line" >>"$work/modules.dep"
	# What the ring1 kind's /init loads (it names those that did not load).
	if [ "$kind" = ring1 ] && [[ " $ring1_modules " == *" $m "* ]]; then
		echo "${m//-/_}" >>"$root/etc/enjin-modules"
	fi
	for f in ${line/:/}; do
		mkdir -p "$root/lib/modules/$kver/$(dirname "$f")"
		cp "$kmods/$f" "$root/lib/modules/$kver/$f"
	done
done
for f in $(tr -d : <"$work/modules.dep"); do
	grep -E "^$f:" "$kmods/modules.dep"
done | sort -u >"$root/lib/modules/$kver/modules.dep"
cp "$kmods/modules.builtin" "$root/lib/modules/$kver/"

if [ "$kind" = ring1 ]; then
	# The aliases of the modules in the image, for what the kernel asks modprobe for itself
	# (nft-expr-*, crypto-*, …) beyond what /init loads.
	sed 's/.*\///; s/\.ko:.*//; s/-/_/g' "$root/lib/modules/$kver/modules.dep" | sort -u >"$work/names"
	awk 'NR == FNR { want[$1] = 1; next } $1 == "alias" && want[$3]' "$work/names" "$kmods/modules.alias" \
		>"$root/lib/modules/$kver/modules.alias"

	# nft, mke2fs (also as mkfs.ext4, which makes it make ext4) and iproute2's ip, in place of
	# busybox's applets of those names, each with the libraries ldd lists at the paths it
	# lists them (the dynamic loader's included), so they run as they do here.
	for tool in $ring1_tools; do
		bin=$(PATH=$PATH:/usr/sbin:/sbin command -v "$tool")
		rm -f "$root/bin/$tool"
		cp -L "$bin" "$root/bin/$tool" || die "cannot copy $bin"
		libs=$(ldd "$bin") || die "ldd $bin failed: is it a dynamic executable of this machine?"
		if grep -q 'not found' <<<"$libs"; then die "$bin lacks libraries here: $(grep 'not found' <<<"$libs" | xargs)"; fi
		for lib in $(echo "$libs" | grep -o '/[^ ]*'); do
			[ -e "$root$lib" ] && continue
			mkdir -p "$root$(dirname "$lib")"
			cp -L "$lib" "$root$lib" || die "cannot copy $lib (for $bin)"
		done
	done
	rm -f "$root/bin/mkfs.ext4" && ln -s mke2fs "$root/bin/mkfs.ext4"
	# mke2fs's defaults for ext4, ip's names of tables and protocols, and the protocol and
	# service names nft reads (meta l4proto tcp): this machine's, as the programs are.
	for f in /etc/mke2fs.conf /etc/iproute2 /etc/protocols /etc/services; do
		if [ -e "$f" ]; then cp -a "$f" "$root/etc/"; fi
	done
	# Where ip netns keeps its namespaces (/run/netns).
	mkdir -p "$root/run"
	# /init reads the kind: ring1 moves the root to a tmpfs and mounts cgroup2.
	echo ring1 >"$root/etc/enjin-kind"
fi

# Owned by root whoever runs this; newc is the format the kernel unpacks.
mkdir -p "$out"
(cd "$root" && find . | sort | "$bb" cpio -o -H newc -R 0:0 2>/dev/null) | gzip -6n >"$out/.initrd.img.tmp" ||
	die "making the initramfs failed"
cp "$kdir/boot/vmlinuz-$kver" "$out/.vmlinuz.tmp"
mv -f "$out/.vmlinuz.tmp" "$out/vmlinuz"
mv -f "$out/.initrd.img.tmp" "$out/initrd.img"
say "done: $out/vmlinuz ($kpkg $(du -h "$out/vmlinuz" | cut -f1)), $out/initrd.img ($(du -h "$out/initrd.img" | cut -f1))"
